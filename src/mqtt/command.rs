//! Commands received over MQTT, parsed from payloads anyone on the broker may send.

/// Longest part of a rejected payload quoted in the warning, in characters.
const QUOTE_CHARS: usize = 40;

/// Parses a `<prefix>/<camera>/detect/set` payload: `ON` / `OFF` (any case, surrounding white
/// space ignored) → `Ok(true)` / `Ok(false)`. Anything else is an `Err` with the text for the
/// warning: the payload quoted (escaped, cut to 40 characters) and what is expected.
pub fn parse_detect(payload: &[u8]) -> Result<bool, String> {
    let text = String::from_utf8_lossy(payload);
    let text = text.trim();
    if text.eq_ignore_ascii_case("ON") {
        return Ok(true);
    }
    if text.eq_ignore_ascii_case("OFF") {
        return Ok(false);
    }
    let quoted: String = text.chars().take(QUOTE_CHARS).collect();
    let more = if text.chars().count() > QUOTE_CHARS {
        format!(" ({} bytes in all)", payload.len())
    } else {
        String::new()
    };
    Err(format!("ignoring {quoted:?}{more} (expected ON or OFF)"))
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
        let e = parse_detect(&[b'x'; 1000]).unwrap_err();
        assert!(e.contains("1000 bytes in all") && e.len() < 120, "{e}");
    }
}
