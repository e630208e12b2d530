//! Hook-name patterns with `{a,b}` alternation, expanded once at registration
//! (the cartesian product, as charms.reactive's `@hook` does).

use thiserror::Error;

/// A hook-name pattern, e.g. `{postgres,mongo}-relation-{joined,changed}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookPattern {
    source: String,
    names: Vec<String>,
}

/// A pattern whose braces do not balance.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("hook pattern {pattern:?}: {problem}")]
pub struct PatternError {
    pattern: String,
    problem: &'static str,
}

/// Alternations multiply; a bound keeps a hostile pattern from exhausting memory.
const MAX_EXPANSION: usize = 4096;

impl HookPattern {
    /// Parses and expands `pattern`.
    pub fn parse(pattern: &str) -> Result<Self, PatternError> {
        let err = |problem| PatternError {
            pattern: pattern.to_owned(),
            problem,
        };
        let mut names = vec![String::new()];
        let mut rest = pattern;
        while !rest.is_empty() {
            match rest.find(['{', '}']) {
                None => {
                    for n in &mut names {
                        n.push_str(rest);
                    }
                    rest = "";
                }
                Some(i) if rest.as_bytes()[i] == b'}' => return Err(err("unbalanced '}'")),
                Some(i) => {
                    let (lit, group) = rest.split_at(i);
                    for n in &mut names {
                        n.push_str(lit);
                    }
                    let end = group.find('}').ok_or_else(|| err("unclosed '{'"))?;
                    let inner = &group[1..end];
                    if inner.contains('{') {
                        return Err(err("nested '{'"));
                    }
                    let alternatives: Vec<&str> = inner.split(',').collect();
                    if names.len() * alternatives.len() > MAX_EXPANSION {
                        return Err(err("expands to too many hook names"));
                    }
                    names = names
                        .iter()
                        .flat_map(|n| alternatives.iter().map(move |a| format!("{n}{a}")))
                        .collect();
                    rest = &group[end + 1..];
                }
            }
        }
        Ok(HookPattern {
            source: pattern.to_owned(),
            names,
        })
    }

    /// Whether `hook` is one of the names the pattern expands to (exact match,
    /// never a substring: a handler for `relation-changed` must not fire on
    /// `db-relation-changed`).
    pub fn matches(&self, hook: &str) -> bool {
        self.names.iter().any(|n| n == hook)
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::needless_pass_by_value)]
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn expands_alternations() {
        let p = HookPattern::parse("{postgres,mongo}-relation-{joined,changed}").unwrap();
        for h in [
            "postgres-relation-joined",
            "postgres-relation-changed",
            "mongo-relation-joined",
            "mongo-relation-changed",
        ] {
            assert!(p.matches(h), "{h}");
        }
        assert!(!p.matches("postgres-relation-broken"));
        assert!(!p.matches("relation-joined"));
    }

    #[test]
    fn plain_names_match_exactly() {
        let p = HookPattern::parse("relation-changed").unwrap();
        assert!(p.matches("relation-changed"));
        assert!(!p.matches("db-relation-changed"));
    }

    #[test]
    fn rejects_bad_braces() {
        assert_eq!(
            HookPattern::parse("a{b").unwrap_err().problem,
            "unclosed '{'"
        );
        assert_eq!(
            HookPattern::parse("a}b").unwrap_err().problem,
            "unbalanced '}'"
        );
        assert_eq!(
            HookPattern::parse("{a{b}}").unwrap_err().problem,
            "nested '{'"
        );
        let bomb = "{a,b,c,d}".repeat(8);
        assert!(HookPattern::parse(&bomb).is_err());
    }

    proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(crate::fuzz_cases(256)))]
        #[test]
        fn never_panics(s in ".{0,64}") {
            let _ = HookPattern::parse(&s);
        }
    }
}
