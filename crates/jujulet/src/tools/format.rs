//! Juju's `--format smart|yaml|json` output (juju/cmd `output`): smart prints
//! strings as-is, booleans as True/False, nothing for nil or ""; yaml is
//! yaml.v2-shaped (keys sorted, non-string-looking strings quoted); json is
//! compact with sorted keys and a trailing newline.

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Smart,
    Yaml,
    Json,
}

impl Format {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "smart" => Some(Self::Smart),
            "yaml" => Some(Self::Yaml),
            "json" => Some(Self::Json),
            _ => None,
        }
    }
}

/// The bytes a tool prints for `value` (empty for "print nothing").
pub fn render(value: &Value, format: Format) -> String {
    match format {
        Format::Json => {
            // serde_json's Map is a BTreeMap here, so keys come out sorted.
            let mut s = serde_json::to_string(&sorted(value)).unwrap_or_else(|_| "null".into());
            s.push('\n');
            s
        }
        Format::Yaml => match value {
            Value::Null => String::new(),
            v => {
                let mut s = yaml(v);
                s.push('\n');
                s
            }
        },
        Format::Smart => match value {
            Value::Null => String::new(),
            Value::String(s) if s.is_empty() => String::new(),
            Value::String(s) => format!("{s}\n"),
            Value::Bool(b) => if *b { "True\n" } else { "False\n" }.to_owned(),
            Value::Array(items) if items.iter().all(Value::is_string) => {
                if items.is_empty() {
                    return String::new();
                }
                let lines: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
                format!("{}\n", lines.join("\n"))
            }
            v => format!("{}\n", yaml(v)),
        },
    }
}

fn sorted(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), sorted(&m[k])))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// YAML for `v` without a trailing newline.
pub fn yaml(v: &Value) -> String {
    let mut out = String::new();
    match v {
        Value::Object(m) if !m.is_empty() => emit_map(v, 0, &mut out),
        Value::Array(a) if !a.is_empty() => emit_list(v, 0, &mut out),
        Value::String(s) if s.contains('\n') => {
            out.push_str(&block(s, 0));
        }
        other => out.push_str(&scalar(other)),
    }
    while out.ends_with('\n') {
        out.pop();
    }
    out
}

fn pad(n: usize) -> String {
    " ".repeat(n)
}

fn emit_map(v: &Value, indent: usize, out: &mut String) {
    let Value::Object(m) = v else { return };
    let mut keys: Vec<&String> = m.keys().collect();
    keys.sort();
    for k in keys {
        let val = &m[k];
        out.push_str(&pad(indent));
        out.push_str(&quote_if_needed(k));
        out.push(':');
        emit_value_after_key(val, indent, out);
    }
}

fn emit_value_after_key(val: &Value, indent: usize, out: &mut String) {
    match val {
        Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            emit_map(val, indent + 2, out);
        }
        // yaml.v2 does not indent a list under its key.
        Value::Array(a) if !a.is_empty() => {
            out.push('\n');
            emit_list(val, indent, out);
        }
        Value::String(s) if s.contains('\n') => {
            out.push(' ');
            out.push_str(&block(s, indent + 2));
        }
        other => {
            out.push(' ');
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
}

fn emit_list(v: &Value, indent: usize, out: &mut String) {
    let Value::Array(items) = v else { return };
    for item in items {
        out.push_str(&pad(indent));
        out.push('-');
        match item {
            Value::Object(m) if !m.is_empty() => {
                // First key on the dash line, the rest aligned under it.
                let mut inner = String::new();
                emit_map(item, indent + 2, &mut inner);
                out.push(' ');
                out.push_str(&inner[indent + 2..]);
            }
            Value::Array(a) if !a.is_empty() => {
                let mut inner = String::new();
                emit_list(item, indent + 2, &mut inner);
                out.push(' ');
                out.push_str(&inner[indent + 2..]);
            }
            Value::String(s) if s.contains('\n') => {
                out.push(' ');
                out.push_str(&block(s, indent + 2));
            }
            other => {
                out.push(' ');
                out.push_str(&scalar(other));
                out.push('\n');
            }
        }
    }
}

/// A literal block (`|` keeps one trailing newline, `|-` none).
fn block(s: &str, indent: usize) -> String {
    let trailing = s.ends_with('\n');
    let body = s.strip_suffix('\n').unwrap_or(s);
    if body.ends_with('\n') || body.starts_with(' ') || body.lines().any(|l| l.ends_with(' ')) {
        // Shapes a literal block can't round-trip: fall back to a quoted string.
        return format!("{}\n", double_quoted(s));
    }
    let mut out = String::from(if trailing { "|\n" } else { "|-\n" });
    for line in body.split('\n') {
        if !line.is_empty() {
            out.push_str(&pad(indent.max(2)));
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

fn scalar(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => quote_if_needed(s),
        Value::Array(_) => "[]".into(),
        Value::Object(_) => "{}".into(),
    }
}

fn quote_if_needed(s: &str) -> String {
    if needs_quotes(s) {
        double_quoted(s)
    } else {
        s.to_owned()
    }
}

fn double_quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\x{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Whether a plain scalar would read back as something other than this string.
fn needs_quotes(s: &str) -> bool {
    if s.is_empty() || s.trim() != s {
        return true;
    }
    let lower = s.to_ascii_lowercase();
    if matches!(
        lower.as_str(),
        "true"
            | "false"
            | "yes"
            | "no"
            | "on"
            | "off"
            | "y"
            | "n"
            | "null"
            | "~"
            | ".inf"
            | "-.inf"
            | "+.inf"
            | ".nan"
    ) {
        return true;
    }
    if looks_numeric(s) {
        return true;
    }
    let first = s.chars().next().unwrap_or(' ');
    if "-?:,[]{}#&*!|>'\"%@`".contains(first) {
        // "-x" and "?x" style plain scalars are legal but ambiguous enough; quote.
        return true;
    }
    s.contains(": ") || s.contains(" #") || s.ends_with(':') || s.chars().any(char::is_control)
}

fn looks_numeric(s: &str) -> bool {
    let t = s.strip_prefix(['+', '-']).unwrap_or(s).replace('_', "");
    if t.is_empty() {
        return false;
    }
    if let Some(h) = t.strip_prefix("0x") {
        return !h.is_empty() && h.chars().all(|c| c.is_ascii_hexdigit());
    }
    if t.parse::<f64>().is_ok() && t.chars().any(|c| c.is_ascii_digit()) {
        return !t.contains("inf") && !t.contains("nan");
    }
    // Sexagesimal (1:20) and dates read as non-strings in YAML 1.1.
    let is_date = t.len() == 10
        && t.char_indices().all(|(i, c)| {
            if i == 4 || i == 7 {
                c == '-'
            } else {
                c.is_ascii_digit()
            }
        });
    is_date
        || (t.contains(':')
            && t.split(':')
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit())))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::needless_pass_by_value)]
    use super::*;
    use serde_json::json;

    #[test]
    fn smart() {
        assert_eq!(render(&json!("x"), Format::Smart), "x\n");
        assert_eq!(render(&json!(""), Format::Smart), "");
        assert_eq!(render(&json!(null), Format::Smart), "");
        assert_eq!(render(&json!(true), Format::Smart), "True\n");
        assert_eq!(render(&json!(42), Format::Smart), "42\n");
        assert_eq!(render(&json!(["a", "b"]), Format::Smart), "a\nb\n");
        assert_eq!(
            render(&json!({"b": "1", "a": "x y"}), Format::Smart),
            "a: x y\nb: \"1\"\n"
        );
        assert_eq!(render(&json!("pew\npew\n"), Format::Smart), "pew\npew\n\n");
    }

    #[test]
    fn yaml_shapes() {
        assert_eq!(render(&json!({}), Format::Yaml), "{}\n");
        assert_eq!(render(&json!([]), Format::Yaml), "[]\n");
        assert_eq!(
            render(&json!({"k": "a\nb"}), Format::Yaml),
            "k: |-\n  a\n  b\n"
        );
        assert_eq!(
            render(&json!({"m": {"x": true}, "l": ["1", 2]}), Format::Yaml),
            "l:\n- \"1\"\n- 2\nm:\n  x: true\n"
        );
        assert_eq!(
            render(&json!([{"a": "1", "b": "x"}]), Format::Yaml),
            "- a: \"1\"\n  b: x\n"
        );
        for s in [
            "yes",
            "null",
            "1.5",
            "0x1f",
            "",
            " x",
            "a: b",
            "-x",
            "2024-01-01",
        ] {
            assert!(needs_quotes(s), "{s:?}");
        }
        for s in ["abc", "127.0.0.1", "postgresql://u:p@h/db", "a-b"] {
            assert!(!needs_quotes(s), "{s:?}");
        }
    }

    #[test]
    fn json() {
        assert_eq!(render(&json!(null), Format::Json), "null\n");
        assert_eq!(
            render(&json!({"b": 1, "a": [true]}), Format::Json),
            "{\"a\":[true],\"b\":1}\n"
        );
    }
}
