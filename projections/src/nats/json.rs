//! JSON written the way Go's `encoding/json` writes it, so that what Plinth publishes is byte
//! for byte what an Infratographer service's `json.Marshal` of the same message would be:
//! no whitespace, map keys sorted by their bytes, and Go's string escapes (HTML-safe `<`, `>`,
//! `&`, the JavaScript line separators U+2028 and U+2029, `\b` and `\f` short forms as since Go
//! 1.22, other control characters as lower-case `\u00xx`).

use serde_json::Value;

/// Appends `s` as a JSON string.
pub(crate) fn string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Appends `value` as Go writes a `map[string]interface{}` decoded from it: objects with their
/// keys sorted (at every depth), numbers as written.
pub(crate) fn value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                self::value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                string(out, key);
                out.push(':');
                self::value(out, item);
            }
            out.push('}');
        }
    }
}

/// Appends a list of strings (`[]` when empty, as Go writes an empty, non-nil slice).
pub(crate) fn strings<S: AsRef<str>>(out: &mut String, items: &[S]) {
    out.push('[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        string(out, item.as_ref());
    }
    out.push(']');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn s(text: &str) -> String {
        let mut out = String::new();
        string(&mut out, text);
        out
    }

    #[test]
    fn strings_are_escaped_as_go_does() {
        // Expected bytes as Go 1.22+ `json.Marshal` prints them.
        assert_eq!(s("plain"), r#""plain""#);
        assert_eq!(s("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(s("<b>&</b>"), r#""\u003cb\u003e\u0026\u003c/b\u003e""#);
        assert_eq!(s("\n\r\t\u{8}\u{c}"), r#""\n\r\t\b\f""#);
        assert_eq!(s("\u{1}\u{1f}\u{7f}"), "\"\\u0001\\u001f\u{7f}\"");
        assert_eq!(s("\u{2028}\u{2029}é"), "\"\\u2028\\u2029é\"");
    }

    #[test]
    fn objects_sort_their_keys_at_every_depth() {
        let mut out = String::new();
        value(
            &mut out,
            &json!({"b": 1, "a": {"z": [true, null], "B": "x"}, "_": 2.5}),
        );
        assert_eq!(out, r#"{"_":2.5,"a":{"B":"x","z":[true,null]},"b":1}"#);
    }

    #[test]
    fn lists_of_strings() {
        let mut out = String::new();
        strings::<&str>(&mut out, &[]);
        strings(&mut out, &["a", "b"]);
        assert_eq!(out, r#"[]["a","b"]"#);
    }
}
