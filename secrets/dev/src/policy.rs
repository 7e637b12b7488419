//! ACL policies: the subset of OpenBao's HCL that Peregrine's components write, and the
//! path-capability check of a request against a token's policies.
//!
//! Accepted: `path "<pattern>" { capabilities = ["...", ...] }` blocks, `#`, `//` and `/* */`
//! comments. A pattern is a literal path, optionally ending in `*` (a prefix). Everything else
//! OpenBao knows (`+` segment globs, `allowed_parameters`, `min_wrapping_ttl`, ...) is refused
//! with [`PolicyError::Unsupported`] when the policy is written, so a rule is never silently
//! dropped and least privilege holds in development as it does against OpenBao.

use serde::{Deserialize, Serialize};

/// The longest policy text accepted.
pub const POLICY_BYTES_MAX: usize = 16 * 1024;
/// The most `path` blocks in one policy.
pub const RULES_MAX: usize = 256;

/// A set of capabilities, one bit each.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities(u8);

impl Capabilities {
    /// Create a path that does not exist yet.
    pub const CREATE: Capabilities = Capabilities(1);
    /// Read.
    pub const READ: Capabilities = Capabilities(1 << 1);
    /// Write a path that exists (and every action endpoint: sign, encrypt, ...).
    pub const UPDATE: Capabilities = Capabilities(1 << 2);
    /// Delete.
    pub const DELETE: Capabilities = Capabilities(1 << 3);
    /// List.
    pub const LIST: Capabilities = Capabilities(1 << 4);
    /// Root-protected paths (`sys/seal`).
    pub const SUDO: Capabilities = Capabilities(1 << 5);
    /// Deny: overrides everything else on the path.
    pub const DENY: Capabilities = Capabilities(1 << 6);
    /// Patch.
    pub const PATCH: Capabilities = Capabilities(1 << 7);

    fn named(name: &str) -> Option<Capabilities> {
        Some(match name {
            "create" => Capabilities::CREATE,
            "read" => Capabilities::READ,
            "update" => Capabilities::UPDATE,
            "delete" => Capabilities::DELETE,
            "list" => Capabilities::LIST,
            "sudo" => Capabilities::SUDO,
            "deny" => Capabilities::DENY,
            "patch" => Capabilities::PATCH,
            _ => return None,
        })
    }

    /// Both sets.
    pub fn union(self, other: Capabilities) -> Capabilities {
        Capabilities(self.0 | other.0)
    }

    /// Whether every capability of `needed` is here (and no `deny`).
    pub fn allows(self, needed: Capabilities) -> bool {
        self.0 & Capabilities::DENY.0 == 0 && self.0 & needed.0 == needed.0
    }
}

/// One `path` block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    /// The path, without the trailing `*` of a prefix rule.
    pub path: String,
    /// Whether the pattern ended in `*`: every path starting with `path` matches.
    pub prefix: bool,
    /// What the rule grants.
    pub capabilities: Capabilities,
}

/// A parsed ACL policy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// The text as written (returned on read).
    pub text: String,
    /// Its rules, in order.
    pub rules: Vec<Rule>,
}

/// Why a policy was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// Not HCL this parser reads: `expected` at byte `offset`.
    #[error("failed to parse policy: at byte {offset}: expected {expected}")]
    Syntax {
        /// Byte offset in the text.
        offset: usize,
        /// What was expected there.
        expected: &'static str,
    },
    /// Valid OpenBao HCL, but a construct the dev store does not enforce.
    #[error("failed to parse policy: {0} is not supported by the dev secret store")]
    Unsupported(String),
    /// A capability OpenBao does not know.
    #[error("failed to parse policy: invalid capability {0:?}")]
    Capability(String),
    /// Longer than [`POLICY_BYTES_MAX`] or more blocks than [`RULES_MAX`].
    #[error("failed to parse policy: above {POLICY_BYTES_MAX} bytes or {RULES_MAX} paths")]
    TooLarge,
}

/// The capabilities `rules` give on `path`: the exact rules if any match, else the longest
/// matching prefix; rules with the same pattern (from several policies) add up, as in
/// OpenBao.
pub fn capabilities<'a>(rules: impl Iterator<Item = &'a Rule> + Clone, path: &str) -> Capabilities {
    let exact = rules
        .clone()
        .filter(|rule| !rule.prefix && rule.path == path);
    let granted = exact.fold(None, |sum: Option<Capabilities>, rule| {
        Some(sum.unwrap_or_default().union(rule.capabilities))
    });
    if let Some(granted) = granted {
        return granted;
    }
    let prefixes = rules.filter(|rule| rule.prefix && path.starts_with(&rule.path));
    let longest = prefixes.clone().map(|rule| rule.path.len()).max();
    let Some(longest) = longest else {
        return Capabilities::default();
    };
    prefixes
        .filter(|rule| rule.path.len() == longest)
        .fold(Capabilities::default(), |sum, rule| {
            sum.union(rule.capabilities)
        })
}

/// Parses the HCL subset.
pub fn parse(text: &str) -> Result<Policy, PolicyError> {
    if text.len() > POLICY_BYTES_MAX {
        return Err(PolicyError::TooLarge);
    }
    let mut lexer = Lexer { text, at: 0 };
    let mut rules = Vec::new();
    while let Some(word) = lexer.word_or_end()? {
        if word != "path" {
            return Err(PolicyError::Unsupported(format!("the top-level {word:?}")));
        }
        if rules.len() == RULES_MAX {
            return Err(PolicyError::TooLarge);
        }
        rules.push(parse_path_block(&mut lexer)?);
    }
    Ok(Policy {
        text: text.to_owned(),
        rules,
    })
}

fn parse_path_block(lexer: &mut Lexer<'_>) -> Result<Rule, PolicyError> {
    let pattern = lexer.string()?;
    let (path, prefix) = match pattern.strip_suffix('*') {
        Some(path) => (path.to_owned(), true),
        None => (pattern.clone(), false),
    };
    if path.contains(['*', '+']) {
        return Err(PolicyError::Unsupported(format!(
            "the glob in {pattern:?} (only a trailing `*` is)"
        )));
    }
    lexer.punct(b'{', "`{`")?;
    let mut capabilities = Capabilities::default();
    while !lexer.try_punct(b'}') {
        let word = lexer.word()?;
        if word != "capabilities" {
            return Err(PolicyError::Unsupported(format!(
                "{word:?} in a path block"
            )));
        }
        lexer.punct(b'=', "`=`")?;
        lexer.punct(b'[', "`[`")?;
        while !lexer.try_punct(b']') {
            let name = lexer.string()?;
            let named = Capabilities::named(&name).ok_or(PolicyError::Capability(name))?;
            capabilities = capabilities.union(named);
            if !lexer.try_punct(b',') {
                lexer.punct(b']', "`,` or `]`")?;
                break;
            }
        }
    }
    Ok(Rule {
        path,
        prefix,
        capabilities,
    })
}

/// A cursor over the policy text that skips blanks and comments.
struct Lexer<'a> {
    text: &'a str,
    at: usize,
}

impl Lexer<'_> {
    fn error(&self, expected: &'static str) -> PolicyError {
        PolicyError::Syntax {
            offset: self.at,
            expected,
        }
    }

    fn rest(&self) -> &[u8] {
        &self.text.as_bytes()[self.at..]
    }

    /// Skips blanks and comments; an unclosed `/*` is a syntax error.
    fn skip(&mut self) -> Result<(), PolicyError> {
        loop {
            let rest = self.rest();
            if rest.first().is_some_and(u8::is_ascii_whitespace) {
                self.at += 1;
            } else if rest.starts_with(b"#") || rest.starts_with(b"//") {
                let line = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
                self.at += line;
            } else if rest.starts_with(b"/*") {
                let close = self.text[self.at + 2..]
                    .find("*/")
                    .ok_or_else(|| self.error("`*/`"))?;
                self.at += close + 4;
            } else {
                return Ok(());
            }
        }
    }

    fn word_or_end(&mut self) -> Result<Option<&str>, PolicyError> {
        self.skip()?;
        if self.rest().is_empty() {
            return Ok(None);
        }
        self.word().map(Some)
    }

    fn word(&mut self) -> Result<&str, PolicyError> {
        self.skip()?;
        let start = self.at;
        let len = self
            .rest()
            .iter()
            .take_while(|&&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            .count();
        if len == 0 {
            return Err(self.error("a name"));
        }
        self.at += len;
        Ok(&self.text[start..self.at])
    }

    /// A double-quoted string; escapes are refused (no path or capability needs one).
    fn string(&mut self) -> Result<String, PolicyError> {
        self.skip()?;
        if !self.rest().starts_with(b"\"") {
            return Err(self.error("a quoted string"));
        }
        let body = &self.text[self.at + 1..];
        let close = body.find('"').ok_or_else(|| self.error("a closing `\"`"))?;
        let value = &body[..close];
        if value.contains(['\\', '\n']) || value.contains("${") {
            return Err(PolicyError::Unsupported(format!(
                "the escape or template in {value:?}"
            )));
        }
        self.at += close + 2;
        Ok(value.to_owned())
    }

    fn try_punct(&mut self, punct: u8) -> bool {
        if self.skip().is_err() {
            return false;
        }
        if self.rest().first() == Some(&punct) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn punct(&mut self, punct: u8, expected: &'static str) -> Result<(), PolicyError> {
        self.skip()?;
        if self.try_punct(punct) {
            Ok(())
        } else {
            Err(self.error(expected))
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        /// Any text, and any text made of the grammar's own pieces, parses or is refused
        /// with a typed error: no panic, no out-of-bounds slice on a multi-byte character.
        #[test]
        fn any_text_parses_or_is_refused(text in "\\PC{0,200}") {
            let _ = parse(&text);
        }

        #[test]
        fn grammar_shaped_text_parses_or_is_refused(
            pieces in proptest::collection::vec(
                prop_oneof![
                    Just("path"), Just("\"kv/data/*\""), Just("\"a/+\""), Just("{"), Just("}"),
                    Just("["), Just("]"), Just("="), Just(","), Just("capabilities"),
                    Just("\"read\""), Just("\"deny\""), Just("#c\n"), Just("//c\n"),
                    Just("/*"), Just("*/"), Just(" "), Just("\n"), Just("é"), Just("\""),
                ],
                0..40,
            )
        ) {
            let text = pieces.concat();
            if let Ok(policy) = parse(&text) {
                prop_assert!(policy.rules.len() <= RULES_MAX);
                prop_assert_eq!(parse(&policy.text), Ok(policy.clone()));
            }
        }
    }

    #[test]
    fn the_policies_peregrine_writes_parse_into_their_rules() {
        let wallet = "path \"kv/data/seeds/*\" {\n  capabilities = [\"create\", \"read\"]\n}\n";
        let policy = parse(wallet).unwrap_or_default();
        assert_eq!(policy.rules.len(), 1);
        let rules = policy.rules.iter();
        let granted = capabilities(rules.clone(), "kv/data/seeds/eth");
        assert!(granted.allows(Capabilities::CREATE.union(Capabilities::READ)));
        assert!(!granted.allows(Capabilities::UPDATE));
        assert_eq!(
            capabilities(rules, "kv/data/other"),
            Capabilities::default()
        );

        let identity = "# comment\npath \"t/sign/jwt\" { capabilities = [\"update\"] }\n\
                        path \"t/keys/jwt\" { capabilities = [\"read\"] } // trailing\n";
        let policy = parse(identity).unwrap_or_default();
        assert_eq!(policy.rules.len(), 2);
        let granted = capabilities(policy.rules.iter(), "t/sign/jwt");
        assert!(granted.allows(Capabilities::UPDATE));
        assert!(!capabilities(policy.rules.iter(), "t/sign/jwt2").allows(Capabilities::UPDATE));
    }

    #[test]
    fn exact_beats_prefix_and_the_longest_prefix_wins() {
        let text = "path \"a/*\" { capabilities = [\"read\", \"update\"] }\n\
                    path \"a/b/*\" { capabilities = [\"read\"] }\n\
                    path \"a/b/c\" { capabilities = [\"deny\"] }\n";
        let policy = parse(text).unwrap_or_default();
        let rules = policy.rules.iter();
        assert!(capabilities(rules.clone(), "a/x").allows(Capabilities::UPDATE));
        assert!(!capabilities(rules.clone(), "a/b/x").allows(Capabilities::UPDATE));
        assert!(capabilities(rules.clone(), "a/b/x").allows(Capabilities::READ));
        assert!(!capabilities(rules, "a/b/c").allows(Capabilities::READ));
    }

    #[test]
    fn constructs_outside_the_subset_are_typed_errors() {
        let unsupported = [
            "path \"a/+/b\" { capabilities = [\"read\"] }",
            "path \"a/*/b\" { capabilities = [\"read\"] }",
            "path \"a\" { capabilities = [\"read\"] allowed_parameters = {} }",
            "name = \"x\"",
            "path \"a/${identity.entity.id}\" { capabilities = [\"read\"] }",
        ];
        for text in unsupported {
            assert!(
                matches!(parse(text), Err(PolicyError::Unsupported(_))),
                "{text}"
            );
        }
        assert!(matches!(
            parse("path \"a\" { capabilities = [\"fly\"] }"),
            Err(PolicyError::Capability(_))
        ));
        for text in [
            "{ garbage",
            "path a { }",
            "path \"a\" {",
            "/* open",
            "path \"a\" { capabilities = [\"read\" }",
        ] {
            assert!(
                matches!(parse(text), Err(PolicyError::Syntax { .. })),
                "{text}"
            );
        }
        assert_eq!(
            parse(&" ".repeat(POLICY_BYTES_MAX + 1)),
            Err(PolicyError::TooLarge)
        );
        // Comments and multi-byte characters at the edges of the text.
        for text in [
            "/**/",
            "/* é */",
            "#",
            "//",
            "# é",
            "path \"é\" { capabilities = [] }",
        ] {
            assert!(parse(text).is_ok(), "{text}");
        }
    }
}
