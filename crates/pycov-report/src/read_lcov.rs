//! Reading LCOV tracefiles (from pycov, coverage.py or any other tool) into
//! the coverage model, for merging.
//!
//! Each `SF` record gives a file; its `DA` lines are its statements and those
//! with a count above zero ran. Other records (`TN`, `FN`, `FNDA`, `BRDA`,
//! totals...) carry nothing line coverage needs and are skipped. Relative
//! `SF` paths are taken from `base`, the directory the report was made in.

use std::path::Path;

use pycov_core::select::lexical_join;
use pycov_core::{CoverageData, DataMeta, FileCoverage};

use crate::{parse_count, parse_line, LineBudget};

/// Why an LCOV tracefile cannot be read; `line` is 1-based.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LcovError {
    /// A record pycov needs is malformed.
    #[error("line {line}: {problem}")]
    Malformed {
        /// The tracefile line.
        line: usize,
        /// What is wrong.
        problem: String,
    },
    /// No `SF` record at all.
    #[error("no SF record: not an LCOV tracefile")]
    NoRecords,
}

/// Whether `text` looks like an LCOV tracefile: its first record is one
/// LCOV starts with.
pub fn looks_like_lcov(text: &str) -> bool {
    text.lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .is_some_and(|line| line.starts_with("TN:") || line.starts_with("SF:"))
}

/// Reads a tracefile. Files named by several records get the union of them.
pub fn read_lcov(text: &str, base: &Path) -> Result<CoverageData, LcovError> {
    let mut data = CoverageData::new(DataMeta {
        producer: "LCOV".into(),
        python: String::new(),
    });
    let mut current: Option<(String, FileCoverage)> = None;
    let mut records = 0usize;
    let mut budget = LineBudget::for_input(text.len());
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let raw = raw.trim_end_matches('\r');
        let malformed = |problem: String| LcovError::Malformed { line, problem };
        let (kind, value) = raw.split_once(':').unwrap_or((raw, ""));
        match kind {
            "SF" => {
                if current.is_some() {
                    return Err(malformed("SF before the previous end_of_record".into()));
                }
                if value.is_empty() {
                    return Err(malformed("SF without a path".into()));
                }
                let path = lexical_join(base, Path::new(value))
                    .to_string_lossy()
                    .into_owned();
                current = Some((path, FileCoverage::default()));
                records += 1;
            }
            "DA" => {
                let Some((_, file)) = current.as_mut() else {
                    return Err(malformed("DA outside an SF record".into()));
                };
                let mut fields = value.split(',');
                let number = fields.next().unwrap_or("");
                let count = fields.next().unwrap_or("");
                let lineno = parse_line(number).map_err(|e| malformed(format!("DA {e}")))?;
                let hits = parse_count(count)
                    .ok_or_else(|| malformed(format!("DA count {count:?} is not a number")))?;
                budget
                    .insert(&mut file.statements, lineno)
                    .map_err(malformed)?;
                if hits > 0 {
                    budget
                        .insert(&mut file.executed, lineno)
                        .map_err(malformed)?;
                }
            }
            "end_of_record" => {
                let Some((path, file)) = current.take() else {
                    return Err(malformed("end_of_record without SF".into()));
                };
                data.union_lines(path, file);
            }
            _ => {}
        }
    }
    if current.is_some() {
        return Err(LcovError::Malformed {
            line: text.lines().count(),
            problem: "the last record has no end_of_record".into(),
        });
    }
    if records == 0 {
        return Err(LcovError::NoRecords);
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lcov::write_lcov;
    use crate::report_files;
    use crate::testing::{assert_same_lines, lines, numbers};

    #[test]
    fn da_records_give_statements_and_executed_lines() {
        let text = "TN:\nSF:pkg/a.py\nFN:1,f\nFNDA:0,f\nDA:1,1\nDA:2,0\nDA:4,3,abc\nLF:3\nLH:2\nend_of_record\n\
                    SF:/abs/b.py\nDA:1,0\nend_of_record\nSF:pkg/a.py\nDA:7,1\nend_of_record\n";
        let data = read_lcov(text, Path::new("/proj")).expect("read");
        let a = data.get("/proj/pkg/a.py").expect("a");
        assert_eq!(numbers(&a.statements), [1, 2, 4, 7]);
        assert_eq!(numbers(&a.executed), [1, 4, 7]);
        let b = data.get("/abs/b.py").expect("b");
        assert_eq!(
            (numbers(&b.statements), numbers(&b.executed)),
            (vec![1], vec![])
        );
    }

    #[test]
    fn what_pycov_writes_reads_back_the_same() {
        let mut data = CoverageData::default();
        data.insert(
            "/proj/pkg/a.py".into(),
            FileCoverage {
                statements: lines(&[1, 2, 3, 10, 4000]),
                executed: lines(&[1, 3, 4000]),
                ..FileCoverage::default()
            },
        );
        data.insert("/proj/empty.py".into(), FileCoverage::default());
        let mut out = Vec::new();
        write_lcov(&report_files(&data, "/proj"), &mut out).expect("write");
        let back =
            read_lcov(&String::from_utf8(out).expect("utf-8"), Path::new("/proj")).expect("read");
        assert_same_lines(&data, &back);
    }

    #[test]
    fn bad_records_are_errors_with_their_line() {
        let base = Path::new("/p");
        let err = read_lcov("SF:a.py\nDA:4000000000,1\nend_of_record\n", base).expect_err("big");
        assert!(matches!(err, LcovError::Malformed { line: 2, .. }), "{err}");
        assert!(err.to_string().contains("4000000000"), "{err}");
        for bad in [
            "SF:a.py\nDA:0,1\nend_of_record\n",
            "SF:a.py\nDA:x,1\nend_of_record\n",
            "SF:a.py\nDA:3,many\nend_of_record\n",
            "DA:3,1\n",
            "SF:a.py\nDA:3,1\n",
            "SF:a.py\nSF:b.py\n",
            "end_of_record\n",
        ] {
            assert!(read_lcov(bad, base).is_err(), "{bad:?}");
        }
        assert_eq!(read_lcov("TN:\n", base), Err(LcovError::NoRecords));
        // Huge line numbers in many records: refused before gigabytes are asked for.
        let hostile: String = (0..2000)
            .map(|i| format!("SF:f{i}.py\nDA:16000000,1\nend_of_record\n"))
            .collect();
        let err = read_lcov(&hostile, base).expect_err("memory");
        assert!(err.to_string().contains("more memory"), "{err}");
        assert!(looks_like_lcov("\nTN:x\nSF:a\n") && !looks_like_lcov("<?xml"));
    }
}
