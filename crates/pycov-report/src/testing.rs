//! What the crate's tests share.

use pycov_core::{CoverageData, FileCoverage, LineNo, LineSet};

/// The set of these line numbers.
pub(crate) fn lines(ns: &[u32]) -> LineSet {
    ns.iter().filter_map(|&n| LineNo::new(n)).collect()
}

/// A file with these statements and executed lines.
pub(crate) fn file(statements: &[u32], executed: &[u32]) -> FileCoverage {
    FileCoverage {
        statements: lines(statements),
        executed: lines(executed),
        ..FileCoverage::default()
    }
}

/// The line numbers of a set.
pub(crate) fn numbers(set: &LineSet) -> Vec<u32> {
    set.iter().map(LineNo::get).collect()
}

/// Every file of `written` comes back in `read` with the same statements
/// and executed lines.
pub(crate) fn assert_same_lines(written: &CoverageData, read: &CoverageData) {
    for (path, file) in written.files() {
        let back = read.get(path).expect(path);
        assert_eq!(back.statements, file.statements, "{path}");
        assert_eq!(back.executed, file.executed, "{path}");
    }
}
