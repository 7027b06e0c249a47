//! Path remapping for merged data: coverage.py's `[paths]` (`PathAliases`).
//!
//! Data measured in a container (`/builds/x/project/pkg/a.py`) or on another
//! OS (`C:\ci\project\pkg\a.py`) is mapped onto the local checkout by rules
//! whose first entry is the local root and whose other entries are glob
//! patterns for the roots elsewhere. The first rule that matches the start of
//! a path and gives a file that exists wins; without a match the path stays.

use std::path::Path;

use fancy_regex::Regex;
use thiserror::Error;

use crate::select::lexical_join;

/// Whether a path stored in coverage data is relative (written with
/// `relative_files`): not absolute on POSIX or Windows, whatever this
/// machine's OS.
pub fn is_relative_path(path: &str) -> bool {
    !is_absolute_anywhere(path)
}

/// `path` relative to `root` with `/` separators, for data written with
/// `relative_files`; paths outside `root` stay as they are.
pub fn relative_to_root(path: &str, root: &Path) -> String {
    match Path::new(path).strip_prefix(root) {
        Ok(relative) if !relative.as_os_str().is_empty() => relative
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/"),
        _ => path.to_owned(),
    }
}

/// A stored path made absolute: relative ones are taken from `root`.
pub fn resolve_from_root(path: &str, root: &Path) -> String {
    if is_relative_path(path) {
        lexical_join(root, Path::new(path))
            .to_string_lossy()
            .into_owned()
    } else {
        path.to_owned()
    }
}

/// Why a `[paths]` entry cannot be used.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PathAliasError {
    /// A pattern ends with `*`: it would match a whole tree, not its root.
    #[error("path pattern {0:?} must not end with a wildcard")]
    EndsWithWildcard(String),
    /// The result is a pattern, not a path.
    #[error("path result {0:?} must not contain wildcards")]
    WildcardInResult(String),
    /// The pattern uses glob syntax coverage.py rejects.
    #[error("path pattern {pattern:?} can't include {detail}")]
    BadPattern {
        /// The pattern as configured.
        pattern: String,
        /// What is wrong with it.
        detail: String,
    },
}

#[derive(Debug)]
struct Rule {
    regex: Regex,
    result: String,
}

/// The remapping rules, in the order they were added.
#[derive(Debug, Default)]
pub struct PathAliases {
    rules: Vec<Rule>,
}

impl PathAliases {
    /// No rules: every path maps to itself.
    pub fn new() -> PathAliases {
        PathAliases::default()
    }

    /// Builds the rules of `[paths]`: in every entry, each pattern after the
    /// first maps onto the first. Relative patterns are taken from `cwd`.
    pub fn from_config<'a>(
        entries: impl IntoIterator<Item = &'a [String]>,
        cwd: &Path,
    ) -> Result<PathAliases, PathAliasError> {
        let mut aliases = PathAliases::new();
        for entry in entries {
            if let Some((result, patterns)) = entry.split_first() {
                for pattern in patterns {
                    aliases.add(pattern, result, cwd)?;
                }
            }
        }
        Ok(aliases)
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Adds a rule: paths starting with a match of `pattern` get that part
    /// replaced by `result`.
    pub fn add(&mut self, pattern: &str, result: &str, cwd: &Path) -> Result<(), PathAliasError> {
        let separator = separator_of(pattern);
        let mut trimmed = pattern.to_owned();
        if trimmed.len() > 1 {
            trimmed = trimmed.trim_end_matches(['/', '\\']).to_owned();
        }
        if trimmed.ends_with('*') {
            return Err(PathAliasError::EndsWithWildcard(pattern.to_owned()));
        }
        if !trimmed.starts_with('*') && !is_absolute_anywhere(&format!("{trimmed}{separator}")) {
            trimmed = lexical_join(cwd, Path::new(&trimmed))
                .to_string_lossy()
                .into_owned();
        }
        if !trimmed.ends_with(separator) {
            trimmed.push(separator);
        }
        let body = glob_to_regex(&trimmed).map_err(|detail| PathAliasError::BadPattern {
            pattern: pattern.to_owned(),
            detail,
        })?;
        let regex =
            Regex::new(&format!("(?i)^(?:{body})")).map_err(|err| PathAliasError::BadPattern {
                pattern: pattern.to_owned(),
                detail: err.to_string(),
            })?;
        if result.contains(['*', '?']) {
            return Err(PathAliasError::WildcardInResult(result.to_owned()));
        }
        let result_separator = separator_of(result);
        let mut result = result.trim_end_matches(['/', '\\']).to_owned();
        result.push(result_separator);
        self.rules.push(Rule { regex, result });
        Ok(())
    }

    /// `path` through the first rule that matches it and gives a path for
    /// which `exists` holds; `None` when no rule applies.
    pub fn map(&self, path: &str, cwd: &Path, exists: impl Fn(&str) -> bool) -> Option<String> {
        for rule in &self.rules {
            let Ok(Some(found)) = rule.regex.find(path) else {
                continue;
            };
            let rest = &path[found.end()..];
            let from = separator_of(path);
            let to = separator_of(&rule.result);
            let mut mapped = format!("{}{}", rule.result, rest.replace(from, &to.to_string()));
            // POSIX results are normalised (`.`, `..`) and made absolute;
            // Windows ones are left as written.
            if mapped.starts_with('/') || !is_absolute_anywhere(&mapped) {
                mapped = lexical_join(cwd, Path::new(&mapped))
                    .to_string_lossy()
                    .into_owned();
            }
            if exists(&mapped) {
                return Some(mapped);
            }
        }
        None
    }
}

/// The separator a path uses: its first slash or backslash, else `/`.
fn separator_of(path: &str) -> char {
    path.chars().find(|&c| c == '/' || c == '\\').unwrap_or('/')
}

/// Absolute on POSIX or Windows (`/x`, `\x`, `C:\x`, `C:/x`, `\\server`).
fn is_absolute_anywhere(path: &str) -> bool {
    let bytes = path.as_bytes();
    matches!(bytes.first(), Some(b'/' | b'\\'))
        || (bytes.len() >= 3
            && bytes[0].is_ascii_alphabetic()
            && bytes[1] == b':'
            && matches!(bytes[2], b'/' | b'\\'))
}

/// coverage.py's `_glob_to_regex` for one pattern, as a regex body: either
/// slash matches both separators, `*` stays within a component, `**/` spans
/// directories, a leading `*/` matches any prefix.
fn glob_to_regex(pattern: &str) -> Result<String, String> {
    let mut pattern = pattern.replace('\\', "/");
    if !pattern.contains('/') {
        pattern = format!("**/{pattern}");
    }
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let stars = chars[i..].iter().take_while(|&&c| c == '*').count();
        if stars >= 3 {
            return Err("'***'".into());
        }
        if stars == 2 {
            let before_ok = i == 0 || chars[i - 1] == '/';
            let after_ok = i + 2 == chars.len() || chars[i + 2] == '/';
            if !before_ok || !after_ok {
                return Err("'**' inside a path component".into());
            }
            if chars[i..].starts_with(&['*', '*', '/', '*', '*']) {
                return Err("'**/**'".into());
            }
        }
        if i == 0 && stars > 0 && chars.get(stars) == Some(&'/') {
            out.push_str(r"(.*[/\\])?");
            i += stars + 1;
        } else if stars == 2 && chars.get(i + 2) == Some(&'/') {
            out.push_str(r"(.*[/\\])?");
            i += 3;
        } else if stars > 0 {
            out.push_str(r"[^/\\]*");
            i += stars;
        } else {
            match chars[i] {
                '/' => out.push_str(r"[/\\]"),
                '?' => out.push_str(r"[^/\\]"),
                '[' => {
                    let close = chars[i + 1..]
                        .iter()
                        .position(|&c| c == ']')
                        .ok_or_else(|| "a single '['".to_string())?;
                    out.extend(&chars[i..=i + 1 + close]);
                    i += close + 2;
                    continue;
                }
                ']' => return Err("a single ']'".into()),
                c if c.is_ascii_alphanumeric() || c == '_' || c == '-' => out.push(c),
                c => {
                    let mut buf = [0u8; 4];
                    out.push_str(&fancy_regex::escape(c.encode_utf8(&mut buf)));
                }
            }
            i += 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_paths_go_relative_and_back() {
        let root = Path::new("/builds/x/project");
        assert_eq!(
            relative_to_root("/builds/x/project/pkg/a.py", root),
            "pkg/a.py"
        );
        assert_eq!(relative_to_root("/elsewhere/b.py", root), "/elsewhere/b.py");
        assert_eq!(
            relative_to_root("/builds/x/project", root),
            "/builds/x/project"
        );
        assert_eq!(
            relative_to_root("/builds/x/projectile/c.py", root),
            "/builds/x/projectile/c.py"
        );
        let here = Path::new("/home/me/checkout");
        assert_eq!(
            resolve_from_root("pkg/a.py", here),
            "/home/me/checkout/pkg/a.py"
        );
        assert_eq!(
            resolve_from_root("/elsewhere/b.py", here),
            "/elsewhere/b.py"
        );
        for windows in ["C:\\ci\\a.py", "c:/ci/a.py", "\\\\server\\share\\a.py"] {
            assert!(!is_relative_path(windows), "{windows}");
            assert_eq!(resolve_from_root(windows, here), windows);
        }
        assert!(is_relative_path("a.py") && is_relative_path("C:a.py"));
        assert!(!is_relative_path("\\\\share\\a.py") && !is_relative_path("\\a.py"));
    }

    fn aliases(rules: &[(&str, &str)]) -> PathAliases {
        let mut aliases = PathAliases::new();
        for (pattern, result) in rules {
            aliases
                .add(pattern, result, Path::new("/work"))
                .expect("rule");
        }
        aliases
    }

    fn always(_: &str) -> bool {
        true
    }

    #[test]
    fn container_roots_map_onto_the_checkout() {
        let a = aliases(&[("/builds/*/project", "/home/me/project")]);
        assert_eq!(
            a.map("/builds/x/project/pkg/a.py", Path::new("/"), always),
            Some("/home/me/project/pkg/a.py".into())
        );
        assert_eq!(a.map("/elsewhere/pkg/a.py", Path::new("/"), always), None);
    }

    #[test]
    fn windows_paths_take_the_result_separator() {
        let a = aliases(&[(r"C:\ci\project\", "/src/project")]);
        assert_eq!(
            a.map(r"c:\CI\project\pkg\a.py", Path::new("/"), always),
            Some("/src/project/pkg/a.py".into())
        );
    }

    #[test]
    fn leading_wildcards_match_any_prefix() {
        let a = aliases(&[("*/site-packages", "/src")]);
        assert_eq!(
            a.map(
                "/venv/lib/python3.12/site-packages/pkg/a.py",
                Path::new("/"),
                always
            ),
            Some("/src/pkg/a.py".into())
        );
        let b = aliases(&[("/ci/**/src", "/here/src")]);
        assert_eq!(
            b.map("/ci/a/b/src/m.py", Path::new("/"), always),
            Some("/here/src/m.py".into())
        );
    }

    #[test]
    fn a_rule_whose_result_does_not_exist_gives_way_to_the_next() {
        let a = aliases(&[("/ci/project", "/missing"), ("/ci/project", "/present")]);
        let exists = |p: &str| p.starts_with("/present");
        assert_eq!(
            a.map("/ci/project/a.py", Path::new("/"), exists),
            Some("/present/a.py".into())
        );
    }

    #[test]
    fn relative_results_are_made_absolute() {
        let a = aliases(&[("/ci/project", ".")]);
        assert_eq!(
            a.map("/ci/project/pkg/a.py", Path::new("/home/me/p"), always),
            Some("/home/me/p/pkg/a.py".into())
        );
    }

    #[test]
    fn relative_patterns_start_at_the_working_directory() {
        let a = aliases(&[("build/lib", "src")]);
        assert_eq!(
            a.map("/work/build/lib/a.py", Path::new("/work"), always),
            Some("/work/src/a.py".into())
        );
    }

    #[test]
    fn bad_rules_are_errors() {
        let mut a = PathAliases::new();
        let cwd = Path::new("/");
        assert!(matches!(
            a.add("/ci/*", "/src", cwd),
            Err(PathAliasError::EndsWithWildcard(_))
        ));
        assert!(matches!(
            a.add("/ci/x", "/src/*", cwd),
            Err(PathAliasError::WildcardInResult(_))
        ));
        assert!(matches!(
            a.add("/ci/a***b/x", "/src", cwd),
            Err(PathAliasError::BadPattern { .. })
        ));
        assert!(matches!(
            a.add("/ci/[ab/x", "/src", cwd),
            Err(PathAliasError::BadPattern { .. })
        ));
        assert!(a.is_empty());
    }
}
