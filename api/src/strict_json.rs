//! Refuses JSON that two parsers could read differently (RFC 8259 leaves it to each; RFC 7493,
//! I-JSON, forbids it): a duplicate key in an object at any depth (serde keeps the last, many
//! validating proxies the first), a lone UTF-16 surrogate in a `\u` escape (not a character:
//! each parser replaces, drops or refuses it), and an integer no 64-bit integer holds (serde
//! turns it silently into a nearby float, so the stored value is not the one sent).
//!
//! It runs over the raw bytes after `serde_json` has found them well-formed, so it only looks
//! for these three things; keys are compared after their escapes are decoded (`"a"` and
//! `"\u0061"` are the same key).

use std::collections::HashSet;

/// Where in the document a problem is, for the message: `data.name`, `data.items[2]`.
#[derive(Debug)]
enum Frame {
    Object {
        keys: HashSet<Vec<u8>>,
        /// The key whose value comes next, or the last one read.
        key: Option<Vec<u8>>,
        expect_key: bool,
    },
    Array {
        index: usize,
    },
}

/// Reads a request body as `T`, refusing it (400) when it is malformed (`invalid {what}: …`) or
/// could be read two ways (`ambiguous JSON: …`). Every route that reads a JSON body reads it
/// through here, so none can skip the check.
pub(crate) fn from_body<T: serde::de::DeserializeOwned>(
    body: &[u8],
    what: &str,
) -> Result<T, crate::error::ApiError> {
    use crate::error::ApiError;
    let ambiguous = |e: String| ApiError::BadRequest(format!("ambiguous JSON: {e}"));
    let value = serde_json::from_slice(body).map_err(|e| {
        // serde refuses a lone surrogate as "unexpected end of hex escape": say what it is.
        match check(body) {
            Err(problem) => ambiguous(problem),
            Ok(()) => ApiError::BadRequest(format!("invalid {what}: {e}")),
        }
    })?;
    // Well-formed, but maybe readable two ways (a proxy that checked the first of two keys).
    check(body).map_err(ambiguous)?;
    Ok(value)
}

/// Checks a well-formed JSON document; the error names the problem and where it is.
pub(crate) fn check(bytes: &[u8]) -> Result<(), String> {
    let mut stack: Vec<Frame> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'{' => {
                stack.push(Frame::Object {
                    keys: HashSet::new(),
                    key: None,
                    expect_key: true,
                });
                i += 1;
            }
            b'[' => {
                stack.push(Frame::Array { index: 0 });
                i += 1;
            }
            b'}' | b']' => {
                stack.pop();
                i += 1;
            }
            b',' => {
                match stack.last_mut() {
                    Some(Frame::Object { expect_key, .. }) => *expect_key = true,
                    Some(Frame::Array { index }) => *index += 1,
                    None => {}
                }
                i += 1;
            }
            b'"' => {
                let (text, end) =
                    string(bytes, i + 1).map_err(|e| format!("{e} at {}", path(&stack)))?;
                i = end;
                if let Some(Frame::Object {
                    keys,
                    key,
                    expect_key,
                }) = stack.last_mut()
                {
                    if *expect_key {
                        *expect_key = false;
                        if !keys.insert(text.clone()) {
                            *key = Some(text);
                            return Err(format!("duplicate key at {}", path(&stack)));
                        }
                        *key = Some(text);
                    }
                }
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < bytes.len()
                    && matches!(bytes[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    i += 1;
                }
                let number = std::str::from_utf8(&bytes[start..i]).unwrap_or_default();
                let integer = !number.contains(['.', 'e', 'E']);
                if integer && number.parse::<i64>().is_err() && number.parse::<u64>().is_err() {
                    return Err(format!(
                        "the integer {number} at {} is out of range (a 64-bit integer at most)",
                        path(&stack)
                    ));
                }
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// Decodes the string starting after its opening quote at `start`: its bytes (escapes
/// decoded, as UTF-8) and the index after its closing quote.
fn string(bytes: &[u8], start: usize) -> Result<(Vec<u8>, usize), String> {
    let mut out = Vec::new();
    let mut i = start;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => return Ok((out, i + 1)),
            b'\\' => {
                let escaped = *bytes.get(i + 1).ok_or("an unterminated string")?;
                i += 2;
                let simple = match escaped {
                    b'n' => Some(b'\n'),
                    b't' => Some(b'\t'),
                    b'r' => Some(b'\r'),
                    b'b' => Some(8),
                    b'f' => Some(12),
                    b'u' => None,
                    other => Some(other),
                };
                if let Some(byte) = simple {
                    out.push(byte);
                    continue;
                }
                let unit = hex4(bytes, i)?;
                i += 4;
                let ch = match unit {
                    0xD800..=0xDBFF => {
                        let low = (bytes.get(i..i + 2) == Some(b"\\u"))
                            .then(|| hex4(bytes, i + 2))
                            .transpose()?
                            .filter(|low| (0xDC00..=0xDFFF).contains(low))
                            .ok_or_else(|| format!("a lone UTF-16 surrogate \\u{unit:04X}"))?;
                        i += 6;
                        0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
                    }
                    0xDC00..=0xDFFF => {
                        return Err(format!("a lone UTF-16 surrogate \\u{unit:04X}"))
                    }
                    unit => unit,
                };
                let ch = char::from_u32(ch).ok_or("an invalid \\u escape")?;
                out.extend_from_slice(ch.encode_utf8(&mut [0; 4]).as_bytes());
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    Err("an unterminated string".into())
}

fn hex4(bytes: &[u8], at: usize) -> Result<u32, String> {
    bytes
        .get(at..at + 4)
        .and_then(|h| std::str::from_utf8(h).ok())
        .and_then(|h| u32::from_str_radix(h, 16).ok())
        .ok_or_else(|| "an invalid \\u escape".to_owned())
}

/// `data.items[2].name`, or `the top level`.
fn path(stack: &[Frame]) -> String {
    let mut out = String::new();
    for frame in stack {
        match frame {
            Frame::Object { key: Some(key), .. } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(&String::from_utf8_lossy(key));
            }
            Frame::Object { key: None, .. } => {}
            Frame::Array { index } => out.push_str(&format!("[{index}]")),
        }
    }
    if out.is_empty() {
        "the top level".into()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn ordinary_documents_pass() {
        for ok in [
            r#"{"type":"CreateTenant","data":{"name":"a","description":"\"x\" \\ \u00e9 \ud83d\ude00"}}"#,
            r#"{"a":{"k":1},"b":{"k":2},"c":[{"k":1},{"k":2}]}"#,
            r#"{"n":-9223372036854775808,"m":18446744073709551615,"f":1.5e300,"g":-0.0}"#,
            r#"[1,"a",true,null,{"a":[]}]"#,
            r#""text""#,
        ] {
            assert_eq!(check(ok.as_bytes()), Ok(()), "{ok}");
        }
    }

    #[test]
    fn a_duplicate_key_at_any_depth_is_named() {
        let top = check(br#"{"type":"A","type":"B"}"#).unwrap_err();
        assert_eq!(top, "duplicate key at type");
        let deep =
            check(br#"{"data":{"items":[{"x":1},{"y":{"name":"a","name":"b"}}]}}"#).unwrap_err();
        assert_eq!(deep, "duplicate key at data.items[1].y.name");
        let escaped = check(br#"{"data":{"name":"a","\u006eame":"b"}}"#).unwrap_err();
        assert_eq!(escaped, "duplicate key at data.name");
    }

    #[test]
    fn lone_surrogates_are_refused() {
        for bad in [
            r#"{"name":"\ud800"}"#,
            r#"{"name":"\udc00x"}"#,
            r#"{"name":"\ud800\u0041"}"#,
            r#"{"\udfff":1}"#,
        ] {
            let error = check(bad.as_bytes()).unwrap_err();
            assert!(error.contains("lone UTF-16 surrogate"), "{bad}: {error}");
        }
    }

    #[test]
    fn integers_past_64_bits_are_refused() {
        let error = check(br#"{"data":{"n":18446744073709551616}}"#).unwrap_err();
        assert_eq!(
            error,
            "the integer 18446744073709551616 at data.n is out of range (a 64-bit integer at most)"
        );
        assert!(check(br#"[-9223372036854775809]"#).is_err());
    }
}
