//! Rendering keys and values for explanations.
//!
//! Keys and values are arbitrary bytes. A violation must be readable in a terminal and must not
//! drown the reader in a 4 KiB value, so: bytes that are valid UTF-8 without control characters
//! are shown as a quoted string, anything else as hex; either is cut to [`MAX_SHOWN`] bytes,
//! and a cut value is followed by its full length.

/// How many bytes of a key or value an explanation shows.
pub const MAX_SHOWN: usize = 64;

/// Shows `bytes` as a quoted string (`"abc"`) if they are printable UTF-8, else as hex
/// (`0x00ff`); values longer than [`MAX_SHOWN`] bytes are cut (`…`) and followed by their
/// length, e.g. `"aaaa…" (4096 bytes)`.
pub fn printable(bytes: &[u8]) -> String {
    let cut = bytes.len() > MAX_SHOWN;
    let shown = match std::str::from_utf8(bytes) {
        Ok(text) if !text.chars().any(char::is_control) => {
            let mut end = 0;
            for (index, ch) in text.char_indices() {
                let next = index + ch.len_utf8();
                if next > MAX_SHOWN {
                    break;
                }
                end = next;
            }
            let ellipsis = if cut { "…" } else { "" };
            format!("\"{}{ellipsis}\"", &text[..end])
        }
        _ => {
            let mut hex = String::with_capacity(2 + 2 * MAX_SHOWN + 3);
            hex.push_str("0x");
            for byte in bytes.iter().take(MAX_SHOWN) {
                hex.push_str(&format!("{byte:02x}"));
            }
            if cut {
                hex.push('…');
            }
            hex
        }
    };
    if cut {
        format!("{shown} ({} bytes)", bytes.len())
    } else {
        shown
    }
}

/// Like [`printable`], with `<absent>` for a key that holds no value.
pub fn printable_opt(value: Option<&[u8]>) -> String {
    value.map_or_else(|| "<absent>".to_owned(), printable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_quoted() {
        assert_eq!(printable(b"key-1"), "\"key-1\"");
        assert_eq!(printable(b""), "\"\"");
        assert_eq!(printable_opt(None), "<absent>");
        assert_eq!(printable_opt(Some(b"v")), "\"v\"");
    }

    #[test]
    fn binary_and_control_bytes_are_hex() {
        assert_eq!(printable(&[0, 1, 0xff]), "0x0001ff");
        assert_eq!(printable(b"a\nb"), "0x610a62");
    }

    #[test]
    fn long_values_are_cut_with_their_length() {
        let long = vec![b'a'; 200];
        let shown = printable(&long);
        assert_eq!(shown, format!("\"{}…\" (200 bytes)", "a".repeat(MAX_SHOWN)));
        let binary = vec![0u8; 100];
        let shown = printable(&binary);
        assert!(shown.starts_with("0x0000"));
        assert!(shown.ends_with("… (100 bytes)"));
        let digits = shown
            .trim_start_matches("0x")
            .split('…')
            .next()
            .unwrap_or_default();
        assert_eq!(digits.len(), 2 * MAX_SHOWN);
    }

    #[test]
    fn multibyte_characters_are_not_split() {
        let text = "é".repeat(40); // 80 bytes, 2 per char
        let shown = printable(text.as_bytes());
        assert_eq!(shown, format!("\"{}…\" (80 bytes)", "é".repeat(32)));
    }
}
