//! Modified UTF-7 for mailbox names (RFC 3501 5.1.3).
//!
//! Printable ASCII stands for itself except `&`, written `&-`; anything else
//! is UTF-16BE in base64 (with `,` for `/`, no padding) between `&` and `-`.

use base64::Engine;
use base64::alphabet::Alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

fn engine() -> GeneralPurpose {
    // The alphabet is a constant of the RFC; building it cannot fail.
    let alphabet =
        Alphabet::new("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,")
            .expect("RFC 3501 modified base64 alphabet is valid");
    GeneralPurpose::new(
        &alphabet,
        GeneralPurposeConfig::new()
            .with_encode_padding(false)
            .with_decode_padding_mode(DecodePaddingMode::RequireNone)
            .with_decode_allow_trailing_bits(false),
    )
}

/// A name as it travels on the wire.
pub fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut pending: Vec<u16> = Vec::new();
    let flush = |pending: &mut Vec<u16>, out: &mut String| {
        if pending.is_empty() {
            return;
        }
        let bytes: Vec<u8> = pending.iter().flat_map(|unit| unit.to_be_bytes()).collect();
        out.push('&');
        out.push_str(&engine().encode(bytes));
        out.push('-');
        pending.clear();
    };
    for c in name.chars() {
        if (' '..='~').contains(&c) {
            flush(&mut pending, &mut out);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut units = [0u16; 2];
            pending.extend_from_slice(c.encode_utf16(&mut units));
        }
    }
    flush(&mut pending, &mut out);
    out
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("mailbox name is not valid modified UTF-7")]
pub struct InvalidName;

/// A name from the wire. Raw UTF-8 (sent by clients that never heard of
/// modified UTF-7) is accepted as it is.
pub fn decode(wire: &[u8]) -> Result<String, InvalidName> {
    let text = std::str::from_utf8(wire).map_err(|_| InvalidName)?;
    if !text.is_ascii() {
        // The same rule as for encoded names: a control character here
        // would make a name that its own LIST form (encoded) cannot reach.
        if text.chars().any(char::is_control) {
            return Err(InvalidName);
        }
        return Ok(text.to_owned());
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let dash = after.find('-').ok_or(InvalidName)?;
        let encoded = &after[..dash];
        if encoded.is_empty() {
            out.push('&');
        } else {
            let bytes = engine().decode(encoded).map_err(|_| InvalidName)?;
            if bytes.len() % 2 != 0 {
                return Err(InvalidName);
            }
            let units: Vec<u16> = bytes
                .chunks_exact(2)
                .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
                .collect();
            let decoded = String::from_utf16(&units).map_err(|_| InvalidName)?;
            // Printable ASCII must be written directly (RFC 3501 5.1.3).
            if decoded.chars().any(|c| (' '..='~').contains(&c)) {
                return Err(InvalidName);
            }
            out.push_str(&decoded);
        }
        rest = &after[dash + 1..];
    }
    out.push_str(rest);
    if out.chars().any(char::is_control) {
        return Err(InvalidName);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_examples_round_trip() {
        assert_eq!(
            encode("~peter/mail/台北/日本語"),
            "~peter/mail/&U,BTFw-/&ZeVnLIqe-"
        );
        assert_eq!(
            decode(b"~peter/mail/&U,BTFw-/&ZeVnLIqe-").unwrap(),
            "~peter/mail/台北/日本語"
        );
    }

    #[test]
    fn ampersands_are_escaped() {
        assert_eq!(encode("Tom & Jerry"), "Tom &- Jerry");
        assert_eq!(decode(b"Tom &- Jerry").unwrap(), "Tom & Jerry");
    }

    #[test]
    fn accented_and_astral_characters_round_trip() {
        for name in ["Entwürfe", "Éléments envoyés", "📬 inbox", "a&b/ü&ü"] {
            assert_eq!(decode(encode(name).as_bytes()).unwrap(), name);
        }
    }

    #[test]
    fn malformed_names_are_refused() {
        for bad in [&b"&"[..], b"a&ZeVn", b"&ZQ-", b"&AGEAYgBj-", b"x\x01y"] {
            assert_eq!(decode(bad), Err(InvalidName), "{bad:?}");
        }
    }

    #[test]
    fn raw_utf8_is_accepted() {
        assert_eq!(decode("Gelöscht".as_bytes()).unwrap(), "Gelöscht");
    }

    #[test]
    fn raw_utf8_names_with_control_characters_are_refused() {
        assert_eq!(decode("é\u{1}".as_bytes()), Err(InvalidName));
        assert_eq!(decode("ü\r\n".as_bytes()), Err(InvalidName));
        let name = decode("Grüße".as_bytes()).unwrap();
        assert_eq!(decode(encode(&name).as_bytes()), Ok(name));
    }
}
