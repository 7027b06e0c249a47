//! Validated options for `pycov run`, shared by the command line and the runner.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::{ExcludeRules, FilePatterns, Selection};

/// What `pycov run` executes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunTarget {
    /// `pycov run path/to/script.py`
    Script(PathBuf),
    /// `pycov run -m package.module`
    Module(String),
}

/// Everything `pycov run` needs, resolved from flags, `[tool.pycov]` and
/// defaults, and validated.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The program to run.
    pub target: RunTarget,
    /// Its arguments (`sys.argv[1:]`), any bytes the OS allows.
    pub args: Vec<OsString>,
    /// The data file (absolute); with `parallel`, the base of the name.
    pub data_file: PathBuf,
    /// Write `<data file>.<host>.<pid>.<random>` ([`crate::parallel`]).
    pub parallel: bool,
    /// Measure the Python subprocesses the program starts too.
    pub subprocesses: bool,
    /// Store paths relative to the current directory in the data file.
    pub relative_files: bool,
    /// Which files to measure.
    pub selection: Selection,
    /// Which lines to exclude.
    pub exclude: ExcludeRules,
}

/// The environment variable through which `pycov run --subprocesses` hands
/// [`ProcessStart`] to the Python processes its program starts.
pub const PROCESS_START_VARIABLE: &str = "PYCOV_PROCESS_START";

/// What a measured subprocess needs to measure itself as its run does: the
/// run's data file, its token, and the selection and exclusions resolved
/// against the run's directory (a child may start anywhere).
#[derive(Clone, Debug)]
pub struct ProcessStart {
    /// The run's data file (the base of the children's names).
    pub data_file: PathBuf,
    /// Marks the children's data files as this run's ([`crate::parallel`]).
    pub run_token: String,
    /// The run's canonical current directory.
    pub cwd: PathBuf,
    /// Which files to measure.
    pub selection: Selection,
    /// Which lines to exclude.
    pub exclude: ExcludeRules,
    /// Store paths relative to `cwd`.
    pub relative_files: bool,
}

/// A [`PROCESS_START_VARIABLE`] value pycov cannot use.
#[derive(Debug, thiserror::Error)]
#[error("bad {PROCESS_START_VARIABLE}: {0}")]
pub struct ProcessStartError(String);

const PROCESS_START_HEADER: &str = "pycov-process-start 1";

impl ProcessStart {
    /// The text for [`PROCESS_START_VARIABLE`]: a header line, then one
    /// `key value` line per item, `\` and newlines escaped. `None` when a
    /// path is not UTF-8 (an environment value cannot carry it portably).
    pub fn encode(&self) -> Option<String> {
        let mut out = String::from(PROCESS_START_HEADER);
        let mut put = |key: &str, value: &str| {
            out.push('\n');
            out.push_str(key);
            out.push(' ');
            for c in value.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    c => out.push(c),
                }
            }
        };
        put("data_file", self.data_file.to_str()?);
        put("run_token", &self.run_token);
        put("cwd", self.cwd.to_str()?);
        for dir in &self.selection.source_dirs {
            put("source_dir", dir.to_str()?);
        }
        for package in &self.selection.source_packages {
            put("source_package", package);
        }
        for pattern in self.selection.include.patterns() {
            put("include", pattern);
        }
        for pattern in self.selection.omit.patterns() {
            put("omit", pattern);
        }
        for pattern in self.exclude.patterns() {
            put("exclude", pattern);
        }
        if self.relative_files {
            put("relative_files", "true");
        }
        Some(out)
    }

    /// Reads what [`ProcessStart::encode`] wrote, compiling the patterns
    /// against the run's directory as the run did.
    pub fn decode(text: &str) -> Result<ProcessStart, ProcessStartError> {
        let bad = |what: String| ProcessStartError(what);
        let mut lines = text.split('\n');
        if lines.next() != Some(PROCESS_START_HEADER) {
            return Err(bad("written by another pycov version".to_owned()));
        }
        let (mut data_file, mut run_token, mut cwd) = (None, None, None);
        let mut relative_files = false;
        let mut selection = Selection::default();
        let (mut include, mut omit, mut exclude) = (Vec::new(), Vec::new(), Vec::new());
        for line in lines {
            let (key, raw) = line
                .split_once(' ')
                .ok_or_else(|| bad(format!("line {line:?}")))?;
            let value = unescape(raw).ok_or_else(|| bad(format!("line {line:?}")))?;
            match key {
                "data_file" => data_file = Some(PathBuf::from(value)),
                "run_token" => run_token = Some(value),
                "cwd" => cwd = Some(PathBuf::from(value)),
                "source_dir" => selection.source_dirs.push(PathBuf::from(value)),
                "source_package" => selection.source_packages.push(value),
                "include" => include.push(value),
                "omit" => omit.push(value),
                "exclude" => exclude.push(value),
                "relative_files" => relative_files = value == "true",
                other => return Err(bad(format!("unknown item {other:?}"))),
            }
        }
        let missing = |what: &str| bad(format!("no {what}"));
        let cwd = cwd.ok_or_else(|| missing("cwd"))?;
        selection.include = FilePatterns::new(&include, &cwd).map_err(|e| bad(e.to_string()))?;
        selection.omit = FilePatterns::new(&omit, &cwd).map_err(|e| bad(e.to_string()))?;
        Ok(ProcessStart {
            data_file: data_file.ok_or_else(|| missing("data_file"))?,
            run_token: run_token
                .filter(|t| !t.is_empty() && t.chars().all(|c| c.is_ascii_alphanumeric()))
                .ok_or_else(|| missing("run_token"))?,
            cwd,
            selection,
            exclude: ExcludeRules::new(&exclude).map_err(|e| bad(e.to_string()))?,
            relative_files,
        })
    }
}

fn unescape(raw: &str) -> Option<String> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next()? {
                '\\' => out.push('\\'),
                'n' => out.push('\n'),
                _ => return None,
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_start_round_trips() {
        let cwd = PathBuf::from("/work/a dir\nwith newline\\");
        let start = ProcessStart {
            data_file: cwd.join(".pycov"),
            run_token: "s0123abcd".to_owned(),
            cwd: cwd.clone(),
            selection: Selection {
                source_dirs: vec![cwd.join("src")],
                source_packages: vec!["pkg.sub".to_owned()],
                include: FilePatterns::new(&["*/x/*".to_owned()], &cwd).expect("include"),
                omit: FilePatterns::new(&["tests/*".to_owned()], &cwd).expect("omit"),
            },
            exclude: ExcludeRules::new(&["no\\s+cover".to_owned()]).expect("exclude"),
            relative_files: true,
        };
        let text = start.encode().expect("UTF-8 paths");
        let back = ProcessStart::decode(&text).expect("decodes");
        assert_eq!(back.data_file, start.data_file);
        assert_eq!(back.run_token, start.run_token);
        assert_eq!(back.cwd, cwd);
        assert_eq!(back.selection.source_dirs, start.selection.source_dirs);
        assert_eq!(back.selection.source_packages, ["pkg.sub"]);
        assert_eq!(back.selection.include.patterns(), ["*/x/*"]);
        assert_eq!(back.selection.omit.patterns(), ["tests/*"]);
        assert_eq!(back.exclude.patterns(), ["no\\s+cover"]);
        assert!(back.relative_files);
        assert_eq!(back.encode().as_deref(), Some(text.as_str()));
    }

    #[test]
    fn process_start_patterns_are_anchored_at_the_runs_directory() {
        let text = "pycov-process-start 1\ndata_file /p/.pycov\nrun_token s1\ncwd /p\nomit tests/*";
        let start = ProcessStart::decode(text).expect("decodes");
        assert!(start.selection.omit.is_match("/p/tests/t.py"));
        assert!(!start.selection.omit.is_match("/elsewhere/tests/t.py"));
    }

    #[test]
    fn bad_process_start_values_are_refused() {
        for text in [
            "",
            "pycov-process-start 99\ncwd /",
            "pycov-process-start 1\ncwd /\ndata_file /d",
            "pycov-process-start 1\ncwd /\ndata_file /d\nrun_token a/b",
            "pycov-process-start 1\ncwd /\ndata_file /d\nrun_token s1\nbogus 1",
            "pycov-process-start 1\ncwd /\ndata_file /d\nrun_token s1\nexclude (",
            "pycov-process-start 1\ncwd \\x",
        ] {
            assert!(ProcessStart::decode(text).is_err(), "{text:?}");
        }
    }
}
