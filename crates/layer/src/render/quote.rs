//! Quoting for the files the layer writes: systemd unit words and Python literals.
//!
//! Both functions are total: every `&str` gets a quoted form that reads back as
//! exactly the same string and never spans more than one line. Callers still
//! reject NUL earlier (systemd cannot carry it in an argument).

use std::fmt::Write as _;

/// Quote one word of an `ExecStart=` (or `ExecReload=`) command line for systemd.
///
/// The word is written in double quotes with C-style escapes, so systemd's
/// word splitting (`EXTRACT_UNQUOTE|EXTRACT_CUNESCAPE`) returns it as one argv
/// element. `%` becomes `%%` (specifiers are expanded on the whole line before
/// it is split) and `$` becomes `$$` (environment expansion at exec time).
/// Control characters (newline, CR, tab, DEL…) become `\xNN`, so the quoted
/// word can never end the line, and its last character is always the closing
/// quote, so it can never be read as a line continuation.
pub fn systemd_quote(word: &str) -> String {
    let mut out = String::with_capacity(word.len() + 2);
    out.push('"');
    for c in word.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '%' => out.push_str("%%"),
            '$' => out.push_str("$$"),
            c if c.is_control() => {
                // C1 controls (U+0080..U+009F) are escaped too: systemd takes
                // \xNN as a byte, so write their UTF-8 bytes one by one.
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    let _ = write!(out, "\\x{b:02x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// One `ExecStart=` word: bare when it is made only of characters systemd
/// never interprets (letters, digits and `/ . _ - + @ : , =`), otherwise
/// [`systemd_quote`]d. Keeps the common case readable.
pub fn systemd_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(c, '/' | '.' | '_' | '-' | '+' | '@' | ':' | ',' | '=')
        });
    if plain {
        word.to_owned()
    } else {
        systemd_quote(word)
    }
}

/// A Python string literal for `s`.
///
/// This is the JSON encoding of the string: the escapes serde_json writes
/// (`\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t` and `\u00XX` for the other
/// characters below U+0020; everything else verbatim) are all valid in a
/// Python `"..."` literal with the same meaning. We additionally escape
/// U+007F..U+009F and the Unicode line separators as `\uXXXX`, which Python
/// also reads, so the literal is plain printable text on one line. The
/// integration test feeds every rendered literal to the real python3.
pub fn python_str(s: &str) -> String {
    let json = serde_json::Value::String(s.to_owned()).to_string();
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if c.is_control() || c == '\u{2028}' || c == '\u{2029}' {
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systemd_quote_escapes_what_systemd_would_interpret() {
        assert_eq!(systemd_quote("plain"), r#""plain""#);
        assert_eq!(systemd_quote(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(systemd_quote("50%$HOME"), r#""50%%$$HOME""#);
        assert_eq!(systemd_quote("a\nb\r\t"), r#""a\x0ab\x0d\x09""#);
        assert_eq!(systemd_quote("\u{85}"), r#""\xc2\x85""#);
        assert_eq!(systemd_quote(";"), r#"";""#);
        assert_eq!(systemd_quote(""), r#""""#);
    }

    #[test]
    fn systemd_word_is_bare_only_when_safe() {
        assert_eq!(systemd_word("--config"), "--config");
        assert_eq!(
            systemd_word("--forwarded-allow-ips=*"),
            r#""--forwarded-allow-ips=*""#
        );
        assert_eq!(systemd_word(";"), r#"";""#);
        assert_eq!(systemd_word(""), r#""""#);
    }

    #[test]
    fn python_str_is_one_printable_line() {
        assert_eq!(python_str("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(
            python_str("x\ny\u{7f}\u{2028}é"),
            "\"x\\ny\\u007f\\u2028é\""
        );
    }
}
