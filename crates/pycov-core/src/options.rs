//! Validated options for `pycov run`, shared by the command line and the runner.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::{ExcludeRules, Selection};

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
    /// Where to write the data (absolute).
    pub data_file: PathBuf,
    /// Which files to measure.
    pub selection: Selection,
    /// Which lines to exclude.
    pub exclude: ExcludeRules,
}
