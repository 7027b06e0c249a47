//! The coverage model: what ran, per file, and what could have.

use std::collections::BTreeMap;

use crate::{CodeRegion, LineSet};

/// A hash of a source file's bytes, to tell whether data still matches the
/// file on disk.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SourceHash(pub [u8; 16]);

impl SourceHash {
    /// The hash of `source` (xxh3-128: fast, and collisions only matter for
    /// stale-data warnings).
    pub fn of(source: &[u8]) -> SourceHash {
        SourceHash(xxhash_rust::xxh3::xxh3_128(source).to_le_bytes())
    }

    /// Lowercase hex, for messages and reports.
    pub fn to_hex(&self) -> String {
        to_hex(&self.0)
    }
}

impl std::fmt::Debug for SourceHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SourceHash({})", self.to_hex())
    }
}

/// `bytes` as lowercase hex.
pub fn to_hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

/// Coverage of one source file.
///
/// `statements` and `excluded` come from analysing the source (they are
/// disjoint); `executed` holds the statements that ran, so it is a subset of
/// `statements`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileCoverage {
    /// Hash of the source bytes that were analysed.
    pub source_hash: SourceHash,
    /// Executable statements (first lines of multi-line statements).
    pub statements: LineSet,
    /// Lines excluded from measurement (pragmas, configured patterns).
    pub excluded: LineSet,
    /// Statements that ran.
    pub executed: LineSet,
    /// Number of lines in the source.
    pub line_count: u32,
    /// Its functions and classes, in source order.
    pub regions: Vec<CodeRegion>,
}

impl FileCoverage {
    /// Statements that did not run.
    pub fn missing(&self) -> LineSet {
        self.statements.difference(&self.executed)
    }

    /// The counts a report needs.
    pub fn counts(&self) -> Counts {
        let statements = self.statements.len();
        let executed = self.executed.intersection(&self.statements).len();
        Counts {
            files: 1,
            statements,
            executed,
            missing: statements - executed,
            excluded: self.excluded.len(),
        }
    }
}

/// Line counts of a file or a total.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Number of files summed.
    pub files: usize,
    /// Executable statements.
    pub statements: usize,
    /// Statements that ran.
    pub executed: usize,
    /// Statements that did not run.
    pub missing: usize,
    /// Excluded lines.
    pub excluded: usize,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, other: Counts) {
        self.files += other.files;
        self.statements += other.statements;
        self.executed += other.executed;
        self.missing += other.missing;
        self.excluded += other.excluded;
    }
}

impl std::iter::Sum for Counts {
    fn sum<I: Iterator<Item = Counts>>(iter: I) -> Counts {
        let mut total = Counts::default();
        for counts in iter {
            total += counts;
        }
        total
    }
}

/// Where a data set came from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DataMeta {
    /// The tool and version that measured, e.g. `pycov 0.1.0`.
    pub producer: String,
    /// The interpreter that ran the code, e.g. `CPython 3.12.1`.
    pub python: String,
}

/// Coverage of many files, keyed by absolute path, ordered by path.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CoverageData {
    /// Provenance.
    pub meta: DataMeta,
    files: BTreeMap<String, FileCoverage>,
}

/// Two inputs disagree on a file's statements, so they cannot be merged
/// without inventing coverage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MergeConflict {
    /// The file both inputs measured.
    pub path: String,
}

impl CoverageData {
    /// An empty data set.
    pub fn new(meta: DataMeta) -> CoverageData {
        CoverageData {
            meta,
            files: BTreeMap::new(),
        }
    }

    /// Adds or replaces one file.
    pub fn insert(&mut self, path: String, file: FileCoverage) {
        self.files.insert(path, file);
    }

    /// The coverage of `path`, if measured.
    pub fn get(&self, path: &str) -> Option<&FileCoverage> {
        self.files.get(path)
    }

    /// Files in path order.
    pub fn files(&self) -> impl Iterator<Item = (&str, &FileCoverage)> {
        self.files.iter().map(|(path, file)| (path.as_str(), file))
    }

    /// Files in path order, changeable.
    pub(crate) fn files_mut(
        &mut self,
    ) -> std::collections::btree_map::IterMut<'_, String, FileCoverage> {
        self.files.iter_mut()
    }

    /// Files in path order, by value.
    pub fn into_files(self) -> impl Iterator<Item = (String, FileCoverage)> {
        self.files.into_iter()
    }

    /// The number of files.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether no file was measured.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The same data with each file's path replaced by `rename(path)`; files
    /// that land on one path are merged, and reported where their
    /// statements differ (the first one's stays).
    pub fn rename_files(
        self,
        mut rename: impl FnMut(&str) -> String,
    ) -> (CoverageData, Vec<MergeConflict>) {
        let mut renamed = CoverageData::new(self.meta);
        let mut conflicts = Vec::new();
        for (path, file) in self.files {
            let new_path = rename(&path);
            let mut one = BTreeMap::new();
            one.insert(new_path, file);
            conflicts.extend(renamed.merge(CoverageData {
                meta: DataMeta::default(),
                files: one,
            }));
        }
        (renamed, conflicts)
    }

    /// Unions `other` into `self`: executed lines are OR-ed per file. A file
    /// whose statements differ between the two is left as it was in `self`
    /// and reported as a conflict.
    pub fn merge(&mut self, other: CoverageData) -> Vec<MergeConflict> {
        if self.files.is_empty() && self.meta == DataMeta::default() {
            self.meta = other.meta;
        }
        let mut conflicts = Vec::new();
        for (path, theirs) in other.files {
            match self.files.get_mut(&path) {
                None => {
                    self.files.insert(path, theirs);
                }
                Some(mine) if mine.statements == theirs.statements => {
                    mine.executed.union_with(&theirs.executed);
                    mine.excluded.union_with(&theirs.excluded);
                    // Data read from a version-1 file has no regions.
                    if mine.regions.is_empty() && !theirs.regions.is_empty() {
                        mine.regions = theirs.regions;
                    }
                    mine.line_count = mine.line_count.max(theirs.line_count);
                }
                Some(_) => conflicts.push(MergeConflict { path }),
            }
        }
        conflicts
    }

    /// Adds a file read from another tool's report, or, if one report names
    /// it twice, unions its statements and executed lines into the first.
    pub fn union_lines(&mut self, path: String, file: FileCoverage) {
        match self.files.get_mut(&path) {
            Some(known) => {
                known.statements.union_with(&file.statements);
                known.executed.union_with(&file.executed);
            }
            None => {
                self.files.insert(path, file);
            }
        }
    }

    /// Unions data whose statements another tool decided (LCOV, Cobertura):
    /// a file already here keeps its statements and gains the other's
    /// executed lines among them; a new file comes as it is.
    pub fn merge_foreign(&mut self, other: CoverageData) {
        self.merge_executed_lines(other, true);
    }

    /// Unions data that knows what ran but not what could have (coverage.py's
    /// `.coverage`): a file already here gains the executed lines among its
    /// statements; the paths of files not here are returned, not added.
    pub fn merge_executed(&mut self, other: CoverageData) -> Vec<String> {
        self.merge_executed_lines(other, false)
    }

    /// What both foreign merges share; returns the files left out.
    fn merge_executed_lines(&mut self, other: CoverageData, add_new: bool) -> Vec<String> {
        let mut left_out = Vec::new();
        for (path, theirs) in other.files {
            match self.files.get_mut(&path) {
                Some(mine) => {
                    let mut ran = theirs.executed;
                    ran.intersect_with(&mine.statements);
                    mine.executed.union_with(&ran);
                }
                None if add_new => {
                    self.files.insert(path, theirs);
                }
                None => left_out.push(path),
            }
        }
        left_out
    }

    /// Sum of all files' counts.
    pub fn totals(&self) -> Counts {
        self.files.values().map(FileCoverage::counts).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LineNo;

    fn lines(ns: &[u32]) -> LineSet {
        ns.iter().map(|&n| LineNo::new(n).expect("line")).collect()
    }

    fn file(statements: &[u32], executed: &[u32]) -> FileCoverage {
        FileCoverage {
            source_hash: SourceHash::of(b"x"),
            statements: lines(statements),
            executed: lines(executed),
            ..FileCoverage::default()
        }
    }

    #[test]
    fn counts_and_missing() {
        let f = file(&[1, 2, 3, 5], &[1, 5]);
        assert_eq!(f.missing(), lines(&[2, 3]));
        let counts = f.counts();
        assert_eq!(
            (counts.statements, counts.executed, counts.missing),
            (4, 2, 2)
        );
    }

    #[test]
    fn foreign_data_adds_executed_lines_among_known_statements() {
        let mut a = CoverageData::default();
        a.insert("/x.py".into(), file(&[1, 2, 3], &[1]));
        let mut b = CoverageData::default();
        b.insert("/x.py".into(), file(&[1, 2, 4], &[2, 4]));
        b.insert("/z.py".into(), file(&[1, 5], &[5]));
        a.merge_foreign(b);
        let x = a.get("/x.py").expect("x");
        assert_eq!(
            (x.statements.clone(), x.executed.clone()),
            (lines(&[1, 2, 3]), lines(&[1, 2]))
        );
        let z = a.get("/z.py").expect("z");
        assert_eq!(
            (z.statements.clone(), z.executed.clone()),
            (lines(&[1, 5]), lines(&[5]))
        );
    }

    #[test]
    fn merge_unions_executed_and_reports_conflicts() {
        let mut a = CoverageData::default();
        a.insert("/x.py".into(), file(&[1, 2, 3], &[1]));
        a.insert("/y.py".into(), file(&[1, 2], &[1]));
        let mut b = CoverageData::default();
        b.insert("/x.py".into(), file(&[1, 2, 3], &[3]));
        b.insert("/y.py".into(), file(&[1, 2, 4], &[4]));
        b.insert("/z.py".into(), file(&[1], &[1]));
        let conflicts = a.merge(b);
        assert_eq!(
            conflicts,
            vec![MergeConflict {
                path: "/y.py".into()
            }]
        );
        assert_eq!(
            a.get("/x.py").map(|f| f.executed.clone()),
            Some(lines(&[1, 3]))
        );
        assert_eq!(
            a.get("/y.py").map(|f| f.executed.clone()),
            Some(lines(&[1]))
        );
        assert_eq!(a.len(), 3);
        assert_eq!(a.totals().statements, 3 + 2 + 1);
    }

    #[test]
    fn source_hash_is_stable() {
        assert_eq!(SourceHash::of(b"abc"), SourceHash::of(b"abc"));
        assert_ne!(SourceHash::of(b"abc"), SourceHash::of(b"abd"));
        assert_eq!(SourceHash::of(b"").to_hex().len(), 32);
    }

    /// Data over a shared set of files whose statements depend only on the
    /// path (as for runs of one checkout), with random executed lines.
    fn arbitrary_data() -> impl proptest::strategy::Strategy<Value = CoverageData> {
        use proptest::prelude::*;
        proptest::collection::btree_map(
            0u32..6,
            (
                proptest::collection::vec(1u32..300, 0..30),
                proptest::collection::vec(1u32..300, 0..5),
            ),
            0..6,
        )
        .prop_map(|files| {
            let mut data = CoverageData::default();
            for (id, (executed, excluded)) in files {
                let statements: Vec<u32> = (1..300).filter(|n| n % (id + 2) == 0).collect();
                data.insert(
                    format!("/p/f{id}.py"),
                    FileCoverage {
                        statements: lines(&statements),
                        executed: lines(&executed),
                        excluded: lines(&excluded),
                        ..FileCoverage::default()
                    },
                );
            }
            data
        })
    }

    fn merged(parts: &[&CoverageData]) -> CoverageData {
        let mut out = CoverageData::default();
        for part in parts {
            assert!(out.merge((*part).clone()).is_empty());
        }
        out
    }

    proptest::proptest! {
        #[test]
        fn merge_is_commutative(a in arbitrary_data(), b in arbitrary_data()) {
            proptest::prop_assert_eq!(merged(&[&a, &b]), merged(&[&b, &a]));
        }

        #[test]
        fn merge_is_associative(a in arbitrary_data(), b in arbitrary_data(), c in arbitrary_data()) {
            let ab = merged(&[&a, &b]);
            let bc = merged(&[&b, &c]);
            proptest::prop_assert_eq!(merged(&[&ab, &c]), merged(&[&a, &bc]));
        }

        #[test]
        fn merge_is_idempotent(a in arbitrary_data(), b in arbitrary_data()) {
            let ab = merged(&[&a, &b]);
            proptest::prop_assert_eq!(merged(&[&ab, &b]), ab.clone());
            proptest::prop_assert_eq!(merged(&[&a, &a]), a);
        }
    }
}
