//! Which files are measured: coverage.py's `--source`, `--include` and
//! `--omit` rules, compiled once.

use std::path::{Component, Path, PathBuf};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use thiserror::Error;

/// A bad `--include` / `--omit` pattern.
#[derive(Debug, Error)]
#[error("invalid file pattern {pattern:?}: {reason}")]
pub struct PatternError {
    /// The pattern as given.
    pub pattern: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Where the running interpreter keeps code that is never measured by default.
#[derive(Clone, Debug, Default)]
pub struct InterpreterPaths {
    /// The standard library (`sysconfig` `stdlib`, `platstdlib`).
    pub stdlib: Vec<PathBuf>,
    /// Installed packages (`purelib`, `platlib`, `scripts`, site-packages).
    pub third_party: Vec<PathBuf>,
    /// pycov's own Python package.
    pub own: Vec<PathBuf>,
}

/// Compiled `--include` / `--omit` patterns, with the text they came from.
#[derive(Clone, Debug, Default)]
pub struct FilePatterns {
    patterns: Vec<String>,
    set: Option<GlobSet>,
}

impl FilePatterns {
    /// Compiles coverage.py-style patterns; relative ones are anchored at
    /// `cwd` too.
    pub fn new(patterns: &[String], cwd: &Path) -> Result<FilePatterns, PatternError> {
        Ok(FilePatterns {
            patterns: patterns.to_vec(),
            set: compile_globs(patterns, cwd)?,
        })
    }

    /// The patterns as given.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }

    /// Whether no pattern was given.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether `path` matches any pattern (never, without patterns).
    pub fn is_match(&self, path: &str) -> bool {
        self.set.as_ref().is_some_and(|set| set.is_match(path))
    }
}

/// What the user asked to measure, validated.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    /// `--source` entries that are directories (absolute, canonical).
    pub source_dirs: Vec<PathBuf>,
    /// `--source` entries that are importable package or module names.
    pub source_packages: Vec<String>,
    /// `--include` patterns (ignored when a source is given, as in coverage.py).
    pub include: FilePatterns,
    /// `--omit` patterns.
    pub omit: FilePatterns,
}

impl Selection {
    /// Whether `--include` was given but is ignored because a source was.
    pub fn include_ignored(&self) -> bool {
        !self.include.is_empty()
            && (!self.source_dirs.is_empty() || !self.source_packages.is_empty())
    }
}

/// The verdict on one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Measure it.
    Measure,
    /// Leave it alone, for this reason.
    Skip(&'static str),
}

/// Decides, once per file, whether it is measured.
#[derive(Debug, Clone)]
pub struct FileSelector {
    source_dirs: Vec<String>,
    source_packages: Vec<String>,
    include: Option<FilePatterns>,
    omit: FilePatterns,
    stdlib: Vec<String>,
    third_party: Vec<String>,
    source_in_third_party: Vec<String>,
    own: Vec<String>,
}

impl FileSelector {
    /// Combines the user's `selection` with the interpreter's layout. `cwd`
    /// (canonical) is measured when neither a source nor an include pattern
    /// is given.
    pub fn new(selection: &Selection, cwd: &Path, interpreter: &InterpreterPaths) -> FileSelector {
        let spec = selection;
        let mut source_dirs: Vec<String> = spec.source_dirs.iter().map(|p| path_str(p)).collect();
        if source_dirs.is_empty() && spec.source_packages.is_empty() && spec.include.is_empty() {
            source_dirs.push(path_str(cwd));
        }
        let has_source = !source_dirs.is_empty() || !spec.source_packages.is_empty();
        let include = (!has_source).then(|| spec.include.clone());
        let third_party: Vec<String> = interpreter
            .third_party
            .iter()
            .map(|p| path_str(p))
            .collect();
        let source_in_third_party = source_dirs
            .iter()
            .filter(|dir| tree_match(&third_party, dir))
            .cloned()
            .collect();
        FileSelector {
            source_dirs,
            source_packages: spec.source_packages.clone(),
            include,
            omit: spec.omit.clone(),
            stdlib: interpreter.stdlib.iter().map(|p| path_str(p)).collect(),
            third_party,
            source_in_third_party,
            own: interpreter.own.iter().map(|p| path_str(p)).collect(),
        }
    }

    /// The source directories measured (the current directory by default).
    pub fn source_dirs(&self) -> &[String] {
        &self.source_dirs
    }

    /// Decides about `path` (absolute, canonical). `module` is the module's
    /// `__name__` (used for package sources).
    pub fn decide(&self, path: &str, module: Option<&str>) -> Decision {
        if tree_match(&self.own, path) {
            return Decision::Skip("is part of pycov");
        }
        if !self.source_dirs.is_empty() || !self.source_packages.is_empty() {
            let in_package = module.is_some_and(|m| self.matching_package(m).is_some());
            if !in_package && !tree_match(&self.source_dirs, path) {
                return Decision::Skip("falls outside the --source spec");
            }
            if tree_match(&self.third_party, path) && !tree_match(&self.source_in_third_party, path)
            {
                return Decision::Skip("inside --source, but is third-party");
            }
        } else if let Some(include) = &self.include {
            if !include.is_match(path) {
                return Decision::Skip("falls outside the --include patterns");
            }
        } else {
            if tree_match(&self.third_party, path) {
                return Decision::Skip("is a third-party module");
            }
            if tree_match(&self.stdlib, path) {
                return Decision::Skip("is in the stdlib");
            }
        }
        if self.is_omitted(path) {
            return Decision::Skip("is inside an --omit pattern");
        }
        Decision::Measure
    }

    /// Whether decisions need module names (a package was given as source).
    pub fn has_source_packages(&self) -> bool {
        !self.source_packages.is_empty()
    }

    /// The `--source` package that `module` belongs to, if any.
    pub fn matching_package(&self, module: &str) -> Option<&str> {
        self.source_packages
            .iter()
            .find(|pkg| {
                module == pkg.as_str()
                    || module
                        .strip_prefix(pkg.as_str())
                        .is_some_and(|rest| rest.starts_with('.'))
            })
            .map(String::as_str)
    }

    /// Whether `path` matches an `--omit` pattern.
    pub fn is_omitted(&self, path: &str) -> bool {
        self.omit.is_match(path)
    }
}

fn path_str(path: &Path) -> String {
    let s = path.to_string_lossy().into_owned();
    if s.len() > 1 {
        s.trim_end_matches('/').to_owned()
    } else {
        s
    }
}

/// coverage.py's `TreeMatcher`: `path` is one of `roots` or lies below one.
fn tree_match(roots: &[String], path: &str) -> bool {
    roots.iter().any(|root| {
        path.strip_prefix(root.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/') || root.ends_with('/'))
    })
}

/// Compiles coverage.py-style file patterns into one glob set.
fn compile_globs(patterns: &[String], cwd: &Path) -> Result<Option<GlobSet>, PatternError> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut builder = GlobSetBuilder::new();
    for pattern in patterns {
        let mut forms = vec![pattern.clone()];
        // As coverage.py's prep_patterns: a pattern that does not start with a
        // wildcard also matches relative to the current directory.
        if !pattern.starts_with(['*', '?']) {
            forms.push(path_str(&lexical_join(cwd, Path::new(pattern))));
        }
        for form in forms {
            let translated = translate_glob(&form).map_err(|reason| PatternError {
                pattern: pattern.clone(),
                reason,
            })?;
            let glob = GlobBuilder::new(&translated)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| PatternError {
                    pattern: pattern.clone(),
                    reason: e.kind().to_string(),
                })?;
            builder.add(glob);
        }
    }
    builder.build().map(Some).map_err(|e| PatternError {
        pattern: patterns.join(", "),
        reason: e.kind().to_string(),
    })
}

/// `base.join(rel)` with `.` and `..` resolved lexically, without looking
/// at the file system (Python's `os.path.abspath`).
pub fn lexical_join(base: &Path, rel: &Path) -> PathBuf {
    let mut out = if rel.is_absolute() {
        PathBuf::new()
    } else {
        base.to_path_buf()
    };
    for component in rel.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Translates coverage.py's glob dialect (`files._glob_to_regex`) into
/// globset syntax: a pattern without a slash matches a file name anywhere,
/// `*` stays within one path component, a leading `*/` matches any prefix, a
/// trailing `/*` matches everything below, `**/` any number of directories.
fn translate_glob(pattern: &str) -> Result<String, String> {
    let mut pattern = pattern.replace('\\', "/");
    if !pattern.contains('/') {
        pattern = format!("**/{pattern}");
    }
    if pattern.contains("***") {
        return Err("can't include '***'".into());
    }
    if pattern.contains("**/**") {
        return Err("can't include '**/**'".into());
    }
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '*' {
            let start = i;
            while i < chars.len() && chars[i] == '*' {
                i += 1;
            }
            let stars = i - start;
            let before_slash = start == 0 || chars[start - 1] == '/';
            let after_slash = i == chars.len() || chars[i] == '/';
            if stars >= 2 && !(before_slash && after_slash) {
                return Err("'**' must be a whole path component".into());
            }
            if start == 0 && i < chars.len() && chars[i] == '/' {
                // Leading "*/" or "**/": any prefix, or none.
                out.push_str("**/");
                i += 1;
            } else if i == chars.len() && start > 0 && chars[start - 1] == '/' {
                // Trailing "/*": everything below.
                out.push_str("**");
            } else if stars >= 2 {
                out.push_str("**");
            } else {
                out.push('*');
            }
            continue;
        }
        match c {
            '?' => out.push('?'),
            '[' => {
                let close = chars[i + 1..]
                    .iter()
                    .position(|&ch| ch == ']')
                    .ok_or_else(|| "can't have a single '['".to_string())?;
                out.extend(&chars[i..=i + 1 + close]);
                i += close + 2;
                continue;
            }
            ']' => return Err("can't have a single ']'".into()),
            '{' | '}' | '\\' | '!' => {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
        i += 1;
    }
    Ok(out)
}

/// Files in `dir` that could have been imported: as coverage.py's
/// `find_python_files`, sub-directories need an `__init__.py` (unless
/// `namespace_packages`), and names must look like Python modules. Sorted.
pub fn find_python_files(dir: &Path, namespace_packages: bool) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut walker = walkdir::WalkDir::new(dir).follow_links(false).into_iter();
    while let Some(entry) = walker.next() {
        let Ok(entry) = entry else { continue };
        let path = entry.path();
        if entry.file_type().is_dir() {
            if entry.depth() > 0 && !namespace_packages && !path.join("__init__.py").is_file() {
                walker.skip_current_dir();
            }
            continue;
        }
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if looks_like_module(name) {
            found.push(path.to_path_buf());
        }
    }
    found.sort();
    found
}

/// `[^.#~!$@%^&*()+=,]+\.pyw?` as a full match.
fn looks_like_module(name: &str) -> bool {
    let stem = name
        .strip_suffix(".py")
        .or_else(|| name.strip_suffix(".pyw"));
    stem.is_some_and(|stem| {
        !stem.is_empty() && !stem.contains(|c: char| ".#~!$@%^&*()+=,".contains(c))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interpreter() -> InterpreterPaths {
        InterpreterPaths {
            stdlib: vec!["/py/lib/python3.12".into()],
            third_party: vec![
                "/py/lib/python3.12/site-packages".into(),
                "/proj/.venv/lib/python3.12/site-packages".into(),
            ],
            own: vec!["/proj/.venv/lib/python3.12/site-packages/pycov".into()],
        }
    }

    fn patterns(globs: &[&str]) -> FilePatterns {
        let globs: Vec<String> = globs.iter().map(|g| g.to_string()).collect();
        FilePatterns::new(&globs, Path::new("/proj")).expect("valid patterns")
    }

    fn selector(selection: Selection) -> FileSelector {
        FileSelector::new(&selection, Path::new("/proj"), &interpreter())
    }

    #[test]
    fn default_measures_the_current_directory_without_installed_code() {
        let s = selector(Selection::default());
        assert_eq!(s.decide("/proj/a.py", None), Decision::Measure);
        assert_eq!(s.decide("/proj/pkg/b.py", Some("pkg.b")), Decision::Measure);
        assert!(matches!(s.decide("/projx/a.py", None), Decision::Skip(_)));
        assert!(matches!(s.decide("/other/a.py", None), Decision::Skip(_)));
        assert!(matches!(
            s.decide("/proj/.venv/lib/python3.12/site-packages/six.py", None),
            Decision::Skip("inside --source, but is third-party")
        ));
        assert!(matches!(
            s.decide(
                "/proj/.venv/lib/python3.12/site-packages/pycov/__init__.py",
                None
            ),
            Decision::Skip("is part of pycov")
        ));
    }

    #[test]
    fn source_packages_match_by_module_name() {
        let s = selector(Selection {
            source_packages: vec!["toolz".into()],
            ..Selection::default()
        });
        assert_eq!(
            s.decide("/anywhere/toolz/x.py", Some("toolz.x")),
            Decision::Measure
        );
        assert_eq!(
            s.decide("/anywhere/toolz/__init__.py", Some("toolz")),
            Decision::Measure
        );
        assert!(matches!(
            s.decide("/anywhere/toolzy.py", Some("toolzy")),
            Decision::Skip(_)
        ));
        assert!(matches!(
            s.decide("/proj/a.py", Some("a")),
            Decision::Skip(_)
        ));
    }

    #[test]
    fn include_applies_only_without_source() {
        let s = selector(Selection {
            include: patterns(&["*/lib/*"]),
            ..Selection::default()
        });
        assert_eq!(s.decide("/x/lib/y/z.py", None), Decision::Measure);
        assert!(matches!(s.decide("/proj/a.py", None), Decision::Skip(_)));
        let spec = Selection {
            include: patterns(&["*/lib/*"]),
            source_dirs: vec!["/proj".into()],
            ..Selection::default()
        };
        assert!(spec.include_ignored());
        assert_eq!(selector(spec).decide("/proj/a.py", None), Decision::Measure);
    }

    #[test]
    fn omit_patterns_follow_coverage_glob_rules() {
        let s = selector(Selection {
            omit: patterns(&["*/tests/*", "setup.py", "pkg/gen_*.py"]),
            ..Selection::default()
        });
        assert!(s.is_omitted("/proj/tests/test_a.py"));
        assert!(s.is_omitted("/proj/tests/deep/test_a.py"));
        assert!(s.is_omitted("/proj/sub/setup.py"));
        assert!(s.is_omitted("/proj/pkg/gen_1.py"));
        assert!(!s.is_omitted("/proj/pkg/sub/gen_1.py"));
        assert!(!s.is_omitted("/proj/testsx/a.py"));
        assert!(!s.is_omitted("/proj/a.py"));
    }

    #[test]
    fn bad_patterns_are_errors() {
        for bad in ["a***", "x**/y", "a/**b", "[abc", "a]b"] {
            let err = FilePatterns::new(&[bad.to_string()], Path::new("/proj")).expect_err(bad);
            assert!(err.to_string().contains(bad), "{err}");
        }
    }

    #[test]
    fn module_file_names() {
        assert!(looks_like_module("a.py"));
        assert!(looks_like_module("a_b2.pyw"));
        assert!(!looks_like_module(".#a.py"));
        assert!(!looks_like_module("a.b.py"));
        assert!(!looks_like_module("a.pyc"));
        assert!(!looks_like_module(".py"));
    }

    #[test]
    fn unimported_files_need_package_directories() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        for (path, body) in [
            ("top.py", ""),
            ("pkg/__init__.py", ""),
            ("pkg/mod.py", ""),
            ("pkg/sub/__init__.py", ""),
            ("pkg/sub/deep.py", ""),
            ("scripts/tool.py", ""),
            ("pkg/notes.txt", ""),
        ] {
            let full = root.join(path);
            std::fs::create_dir_all(full.parent().expect("parent")).expect("mkdir");
            std::fs::write(full, body).expect("write");
        }
        let rel = |paths: Vec<PathBuf>| -> Vec<String> {
            paths
                .iter()
                .map(|p| {
                    p.strip_prefix(root)
                        .expect("under root")
                        .to_string_lossy()
                        .into_owned()
                })
                .collect()
        };
        assert_eq!(
            rel(find_python_files(root, false)),
            vec![
                "pkg/__init__.py",
                "pkg/mod.py",
                "pkg/sub/__init__.py",
                "pkg/sub/deep.py",
                "top.py"
            ]
        );
        assert!(rel(find_python_files(root, true)).contains(&"scripts/tool.py".to_string()));
    }
}
