//! Paths inside the simulated filesystem: every call normalises its path to `a/b/c` (no
//! leading slash, the root is the empty string), the key of the directory and entry maps.

use crate::{Result, VfsError};
use std::io::ErrorKind;
use std::path::Path;

/// Normalises a path to `a/b/c` (no leading slash); the root is the empty string.
pub(super) fn normalize(op: &'static str, path: &Path) -> Result<String> {
    // The common case without walking `Components`: UTF-8, at most one leading and one
    // trailing slash, and no empty, `.` or `..` component in between. Then the normal form
    // is the text between those slashes (what the walk below would join).
    if let Some(text) = path.to_str() {
        let inner = text.strip_prefix('/').unwrap_or(text);
        let inner = inner.strip_suffix('/').unwrap_or(inner);
        if inner.is_empty()
            || inner
                .split('/')
                .all(|part| !part.is_empty() && part != "." && part != "..")
        {
            return Ok(inner.to_string());
        }
    }
    walk(op, path)
}

/// [`normalize`] by walking the path's components (any path).
fn walk(op: &'static str, path: &Path) -> Result<String> {
    use std::path::Component;
    let mut out = String::with_capacity(path.as_os_str().len());
    for component in path.components() {
        match component {
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                return Err(VfsError::new(
                    op,
                    path,
                    ErrorKind::InvalidInput,
                    "`..` is not supported",
                ))
            }
            Component::Normal(name) => {
                let Some(name) = name.to_str() else {
                    return Err(VfsError::new(
                        op,
                        path,
                        ErrorKind::InvalidInput,
                        "path is not UTF-8",
                    ));
                };
                if !out.is_empty() {
                    out.push('/');
                }
                out.push_str(name);
            }
        }
    }
    Ok(out)
}

/// Splits a normalised path into (parent, name).
pub(super) fn split(norm: &str) -> (&str, &str) {
    match norm.rfind('/') {
        Some(i) => (&norm[..i], &norm[i + 1..]),
        None => ("", norm),
    }
}

pub(super) fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quick_form_is_the_walked_form() {
        let parts = [
            "",
            "/",
            "//",
            ".",
            "..",
            "a",
            "db",
            "000012.sst",
            "x.y",
            "..z",
            ".hidden",
        ];
        let mut checked = 0;
        for a in parts {
            for b in parts {
                for c in ["", "/", "a", "."] {
                    let text = format!("{a}/{b}{c}");
                    for candidate in [text.clone(), format!("/{text}"), text.replace('/', "")] {
                        let path = Path::new(&candidate);
                        let walked = walk("test", path).map_err(|e| e.to_string());
                        let quick = normalize("test", path).map_err(|e| e.to_string());
                        assert_eq!(quick, walked, "{candidate:?}");
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 1000);
        assert_eq!(
            normalize("t", Path::new("/db/000012.sst")).unwrap(),
            "db/000012.sst"
        );
        assert_eq!(normalize("t", Path::new("db/./x/")).unwrap(), "db/x");
        assert!(normalize("t", Path::new("db/../x")).is_err());
    }
}
