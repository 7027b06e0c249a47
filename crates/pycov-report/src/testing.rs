//! What the crate's tests share.

use pycov_core::{CoverageData, LineNo, LineSet};

/// The set of these line numbers.
pub(crate) fn lines(ns: &[u32]) -> LineSet {
    ns.iter().filter_map(|&n| LineNo::new(n)).collect()
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
