//! Commands received over MQTT, parsed from payloads anyone on the broker may send.

/// Longest part of a rejected payload quoted in the warning, in characters.
pub const QUOTE_CHARS: usize = 40;

/// A `detect/set` payload that is neither `ON` nor `OFF`; its text is the warning: the payload
/// quoted (escaped, cut to [`QUOTE_CHARS`] characters) and what is expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ignoring {quoted:?}{} (expected ON or OFF)", bytes_in_all(*.total))]
pub struct DetectError {
    /// The payload as text (lossy UTF-8, trimmed), cut to [`QUOTE_CHARS`] characters.
    pub quoted: String,
    /// The payload's length in bytes when the quote was cut, else `None`.
    pub total: Option<usize>,
}

fn bytes_in_all(total: Option<usize>) -> String {
    total.map_or_else(String::new, |n| format!(" ({n} bytes in all)"))
}

/// Parses a `<prefix>/<camera>/detect/set` payload: `ON` / `OFF` (any case, surrounding white
/// space ignored) → `Ok(true)` / `Ok(false)`. Anything else is a [`DetectError`].
pub fn parse_detect(payload: &[u8]) -> Result<bool, DetectError> {
    let text = String::from_utf8_lossy(payload);
    let text = text.trim();
    if text.eq_ignore_ascii_case("ON") {
        return Ok(true);
    }
    if text.eq_ignore_ascii_case("OFF") {
        return Ok(false);
    }
    let quoted: String = text.chars().take(QUOTE_CHARS).collect();
    let total = (text.chars().count() > QUOTE_CHARS).then_some(payload.len());
    Err(DetectError { quoted, total })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_off_in_any_case_and_nothing_else() {
        assert_eq!(parse_detect(b" on\n"), Ok(true));
        assert_eq!(parse_detect(b"OFF"), Ok(false));
        assert_eq!(parse_detect(b"oFf"), Ok(false));
        for bad in [&b""[..], b"ONN", b"1", b"\xff\xfe", b"O N"] {
            assert!(parse_detect(bad).is_err(), "{bad:?}");
        }
        let e = parse_detect(&[b'x'; 1000]).unwrap_err().to_string();
        assert!(e.contains("1000 bytes in all") && e.len() < 120, "{e}");
    }
}
