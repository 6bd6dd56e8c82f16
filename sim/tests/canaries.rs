//! The engine canaries (`.ci/canaries` builds and sweeps each one): here, only that every
//! patch still applies to the current code and says which violations it must cause, so a
//! refactor that moves the code they patch fails fast instead of in CI's last step.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

#[test]
fn every_canary_applies_and_names_its_expected_violations() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = root.join("sim/tests/canaries");
    let mut patches: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "patch"))
        .collect();
    patches.sort();
    assert!(
        patches.len() >= 4,
        "the issue asks for at least four canaries"
    );
    for patch in patches {
        let text = std::fs::read_to_string(&patch).unwrap();
        let expect = text
            .lines()
            .find_map(|line| line.strip_prefix("Expect: "))
            .unwrap_or_else(|| panic!("{}: no Expect: line", patch.display()));
        assert!(!expect.trim().is_empty(), "{}", patch.display());
        let output = Command::new("git")
            .arg("apply")
            .arg("--check")
            .arg(&patch)
            .current_dir(&root)
            .output()
            .expect("git runs");
        assert!(
            output.status.success(),
            "{} no longer applies: {}",
            patch.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
