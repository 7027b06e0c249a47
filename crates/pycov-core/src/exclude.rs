//! Line exclusion patterns (`exclude_lines`, `exclude_also`), compiled once.

use std::sync::{Arc, OnceLock};

use thiserror::Error;

/// coverage.py 7.17.4's default exclusion regexes (`config.DEFAULT_EXCLUDE`).
pub const DEFAULT_EXCLUDE: &[&str] = &[
    r"#\s*(pragma|PRAGMA)[:\s]?\s*(no|NO)\s*(cover|COVER)",
    r"^\s*(((async )?def .*?)?[\])]+(\s*->.*?)?:\s*)?\.\.\.\s*(#|$)",
    r"^\s*if (typing\.)?TYPE_CHECKING:",
];

/// A pattern that does not compile.
#[derive(Debug, Error)]
#[error("invalid exclusion regex {pattern:?}: {reason}")]
pub struct ExcludePatternError {
    /// The pattern as given.
    pub pattern: String,
    /// The regex engine's complaint.
    pub reason: String,
}

/// The exclusion regexes met text they cannot finish matching in time.
#[derive(Debug, Error)]
#[error("the exclusion regexes hit the regex engine's backtracking limit")]
pub struct ExcludeMatchError;

/// The regexes that exclude source lines from measurement, joined as
/// coverage.py joins them and matched in multi-line mode over the whole text.
#[derive(Clone, Debug)]
pub struct ExcludeRules {
    patterns: Vec<String>,
    /// The joined regex's source; `None` without patterns.
    joined: Option<String>,
    /// The joined regex, compiled on first use when the patterns are the
    /// defaults (a fraction of a millisecond at every start otherwise).
    /// Shared by clones.
    regex: Arc<OnceLock<Option<fancy_regex::Regex>>>,
}

impl Default for ExcludeRules {
    fn default() -> ExcludeRules {
        let defaults: Vec<String> = DEFAULT_EXCLUDE.iter().map(|p| p.to_string()).collect();
        // The defaults are known to compile.
        ExcludeRules::new(&defaults).unwrap_or(ExcludeRules {
            patterns: defaults,
            joined: None,
            regex: Arc::default(),
        })
    }
}

impl ExcludeRules {
    /// Compiles `patterns` (Python `re` syntax; the common subset with
    /// fancy-regex, plus `\Z`). coverage.py's defaults, known to compile,
    /// are compiled when first used.
    pub fn new(patterns: &[String]) -> Result<ExcludeRules, ExcludePatternError> {
        let only_defaults = patterns.iter().eq(DEFAULT_EXCLUDE.iter());
        let mut parts = Vec::with_capacity(patterns.len());
        for pattern in patterns {
            let translated = translate_python_regex(pattern);
            if !only_defaults {
                // Check each pattern alone, so the error names the bad one.
                fancy_regex::Regex::new(&translated).map_err(|e| ExcludePatternError {
                    pattern: pattern.clone(),
                    reason: e.to_string(),
                })?;
            }
            parts.push(translated);
        }
        let joined = match parts.len() {
            0 => None,
            1 => Some(format!("(?m){}", parts[0])),
            _ => Some(format!(
                "(?m){}",
                parts
                    .iter()
                    .map(|p| format!("(?:{p})"))
                    .collect::<Vec<_>>()
                    .join("|")
            )),
        };
        let regex = Arc::new(OnceLock::new());
        if !only_defaults {
            let compiled = joined
                .as_deref()
                .map(fancy_regex::Regex::new)
                .transpose()
                .map_err(|e| ExcludePatternError {
                    pattern: patterns.join(" | "),
                    reason: e.to_string(),
                })?;
            let _ = regex.set(compiled);
        }
        Ok(ExcludeRules {
            patterns: patterns.to_vec(),
            joined,
            regex,
        })
    }

    /// The defaults plus `also` (coverage.py's `exclude_also`).
    pub fn defaults_and(also: &[String]) -> Result<ExcludeRules, ExcludePatternError> {
        let mut patterns: Vec<String> = DEFAULT_EXCLUDE.iter().map(|p| p.to_string()).collect();
        patterns.extend(also.iter().cloned());
        ExcludeRules::new(&patterns)
    }

    /// The patterns as given.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }

    /// Byte ranges of the matches in `text`, in order, non-overlapping. A
    /// pattern that backtracks without end gives an error rather than a hang
    /// or a silently partial answer.
    pub fn find_matches(&self, text: &str) -> Result<Vec<(usize, usize)>, ExcludeMatchError> {
        let regex = self.regex.get_or_init(|| {
            // Only the defaults get here uncompiled; a test shows they compile.
            self.joined
                .as_deref()
                .and_then(|joined| fancy_regex::Regex::new(joined).ok())
        });
        let Some(regex) = regex else {
            return Ok(Vec::new());
        };
        regex
            .find_iter(text)
            .map(|found| {
                found
                    .map(|m| (m.start(), m.end()))
                    .map_err(|_| ExcludeMatchError)
            })
            .collect()
    }
}

/// Rewrites the bits of Python `re` syntax that fancy-regex spells
/// differently: `\Z` (end of text) is `\z`.
fn translate_python_regex(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('Z') => out.push_str("\\z"),
                Some(next) => {
                    out.push('\\');
                    out.push(next);
                }
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every line a match touches, as coverage.py's `lines_matching`.
    fn matched_lines(rules: &ExcludeRules, text: &str) -> Vec<usize> {
        let line_of = |offset: usize| text[..offset].matches('\n').count() + 1;
        let mut lines: Vec<usize> = rules
            .find_matches(text)
            .expect("no backtracking limit")
            .into_iter()
            .flat_map(|(start, end)| line_of(start)..=line_of(end))
            .collect();
        lines.dedup();
        lines
    }

    #[test]
    fn default_rules() {
        let rules = ExcludeRules::default();
        let text = "a = 1  # pragma: no cover\nb = 2\nif TYPE_CHECKING:\n    import x\ndef f(): ...\nx = '...'\n#PRAGMA NO COVER\n";
        assert_eq!(matched_lines(&rules, text), vec![1, 3, 5, 7]);
        // As in Python's `re`, `\s*` after `...` runs on into the next line's `#`.
        assert_eq!(matched_lines(&rules, "  ...\n# x\n"), vec![1, 2]);
    }

    #[test]
    fn configured_rules_and_errors() {
        let rules = ExcludeRules::defaults_and(&[
            "raise NotImplementedError".into(),
            r"^if __name__ == .__main__.:\Z".into(),
        ])
        .expect("valid");
        assert_eq!(rules.patterns().len(), 5);
        assert_eq!(
            matched_lines(&rules, "x\n    raise NotImplementedError()\n"),
            vec![2]
        );
        let err = ExcludeRules::new(&["(unclosed".into()]).expect_err("invalid");
        assert!(err.to_string().contains("(unclosed"), "{err}");
        let none = ExcludeRules::new(&[]).expect("empty");
        assert!(none.find_matches("anything").expect("matched").is_empty());
        // Catastrophic backtracking is an error, not a hang or a partial answer.
        let explosive = ExcludeRules::new(&[r"(a|aa)+\1b".into()]).expect("valid");
        assert!(explosive.find_matches(&"a".repeat(60)).is_err());
    }
}
