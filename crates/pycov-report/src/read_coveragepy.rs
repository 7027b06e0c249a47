//! Reading coverage.py's `.coverage` SQLite data (schema 7, coverage.py
//! 7.x) into the coverage model, for merging.
//!
//! coverage.py stores what ran, not what could have: every file comes back
//! with its executed lines and no statements. Line data is `line_bits`
//! (numbits: bit `n % 8` of byte `n / 8` is line `n`), branch data `arc`
//! rows whose positive ends are the lines that ran; all contexts are
//! unioned. Relative paths (`relative_files = true`) are taken from `base`.

use std::collections::HashMap;
use std::path::Path;

use pycov_core::select::lexical_join;
use pycov_core::{CoverageData, DataMeta, FileCoverage, LineNo, LineSet};

use crate::LineBudget;
use rusqlite::{Connection, OpenFlags};

/// The `coverage_schema` version this reader knows.
pub const SCHEMA_VERSION: i64 = 7;

/// Why a `.coverage` file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum CoveragePyError {
    /// SQLite could not read it, or it lacks coverage.py's tables.
    #[error("not readable as coverage.py data: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Written by a coverage.py whose schema pycov does not know.
    #[error(
        "coverage.py data schema {found}; pycov reads schema {SCHEMA_VERSION} (coverage.py 7)"
    )]
    Schema {
        /// The version in the file.
        found: i64,
    },
    /// Line numbers far beyond what the file's size can justify.
    #[error("{problem}")]
    TooLarge {
        /// What is wrong.
        problem: String,
    },
    /// A line number outside what a line can be.
    #[error("{path}: line {line} is not a line from 1 to {}", LineNo::MAX)]
    BadLine {
        /// The file the line belongs to.
        path: String,
        /// The number found.
        line: i64,
    },
}

/// Reads the executed lines of every file in a `.coverage` file.
pub fn read_coveragepy(file: &Path, base: &Path) -> Result<CoverageData, CoveragePyError> {
    let db = Connection::open_with_flags(file, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let version: i64 = db.query_row("select version from coverage_schema", [], |row| row.get(0))?;
    if version != SCHEMA_VERSION {
        return Err(CoveragePyError::Schema { found: version });
    }
    let version_text: Option<String> = db
        .query_row("select value from meta where key = 'version'", [], |row| {
            row.get(0)
        })
        .ok();
    let mut data = CoverageData::new(DataMeta {
        producer: format!("coverage.py {}", version_text.unwrap_or_default()),
        python: String::new(),
    });
    let mut paths = HashMap::new();
    {
        let mut files = db.prepare("select id, path from file")?;
        let rows = files.query_map([], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
        })?;
        for row in rows {
            let (id, path) = row?;
            let path = lexical_join(base, Path::new(&path))
                .to_string_lossy()
                .into_owned();
            paths.insert(id, path);
        }
    }
    let mut executed: HashMap<i64, LineSet> = HashMap::new();
    let size = std::fs::metadata(file).map_or(0, |m| m.len());
    let mut budget = LineBudget::for_input(usize::try_from(size).unwrap_or(usize::MAX));
    let mut add = |id: i64, line: i64| -> Result<(), CoveragePyError> {
        // Arcs start at -code_line (entry) and end there (exit).
        if line <= 0 || !paths.contains_key(&id) {
            return Ok(());
        }
        let lineno = u32::try_from(line)
            .ok()
            .and_then(LineNo::new)
            .ok_or_else(|| CoveragePyError::BadLine {
                path: paths.get(&id).cloned().unwrap_or_default(),
                line,
            })?;
        budget
            .insert(executed.entry(id).or_default(), lineno)
            .map_err(|problem| CoveragePyError::TooLarge { problem })
    };
    {
        let mut bits = db.prepare("select file_id, numbits from line_bits")?;
        let rows = bits.query_map([], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?))
        })?;
        for row in rows {
            let (id, numbits) = row?;
            for (index, byte) in numbits.iter().enumerate() {
                for bit in 0..8 {
                    if byte & (1 << bit) != 0 {
                        add(id, (index * 8 + bit) as i64)?;
                    }
                }
            }
        }
    }
    {
        let mut arcs = db.prepare("select file_id, fromno, tono from arc")?;
        let rows = arcs.query_map([], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, i64>(2)?,
            ))
        })?;
        for row in rows {
            let (id, from, to) = row?;
            add(id, from)?;
            add(id, to)?;
        }
    }
    for (id, path) in paths {
        // Two rows can name one file (`a.py` and `/base/a.py`).
        data.union_lines(
            path,
            FileCoverage {
                executed: executed.remove(&id).unwrap_or_default(),
                ..FileCoverage::default()
            },
        );
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database(version: i64, statements: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Connection::open(dir.path().join(".coverage")).expect("open");
        db.execute_batch(&format!(
            "create table coverage_schema (version integer);
             insert into coverage_schema values ({version});
             create table meta (key text, value text, unique (key));
             insert into meta values ('version', '7.17.4');
             create table file (id integer primary key, path text, unique (path));
             create table line_bits (file_id integer, context_id integer, numbits blob);
             create table arc (file_id integer, context_id integer, fromno integer, tono integer);
             {statements}"
        ))
        .expect("schema");
        dir
    }

    fn numbers(data: &CoverageData, path: &str) -> Vec<u32> {
        data.get(path)
            .map(|f| f.executed.iter().map(LineNo::get).collect())
            .unwrap_or_default()
    }

    #[test]
    fn numbits_and_arcs_give_executed_lines() {
        // Lines 1 and 9: byte 0 bit 1, byte 1 bit 1; a second context adds 3.
        let dir = database(
            7,
            "insert into file values (1, '/p/a.py'), (2, 'rel/b.py');
             insert into line_bits values (1, 1, x'0202'), (1, 2, x'08');
             insert into arc values (2, 1, -1, 2), (2, 1, 2, 5), (2, 1, 5, -1);",
        );
        let data =
            read_coveragepy(&dir.path().join(".coverage"), Path::new("/base")).expect("read");
        assert_eq!(numbers(&data, "/p/a.py"), [1, 3, 9]);
        assert_eq!(numbers(&data, "/base/rel/b.py"), [2, 5]);
        assert!(data.files().all(|(_, f)| f.statements.is_empty()));
        assert_eq!(data.meta.producer, "coverage.py 7.17.4");
    }

    #[test]
    fn other_schemas_and_bad_lines_are_errors() {
        let old = database(6, "");
        let err =
            read_coveragepy(&old.path().join(".coverage"), Path::new("/")).expect_err("schema 6");
        assert!(matches!(err, CoveragePyError::Schema { found: 6 }), "{err}");
        let huge = database(
            7,
            "insert into file values (1, '/p/a.py'); insert into arc values (1, 1, 4000000000, -1);",
        );
        let err =
            read_coveragepy(&huge.path().join(".coverage"), Path::new("/")).expect_err("line");
        assert!(err.to_string().contains("4000000000"), "{err}");
        let other = tempfile::tempdir().expect("tempdir");
        let db = Connection::open(other.path().join("x.db")).expect("open");
        db.execute_batch("create table t (x integer);")
            .expect("table");
        let err =
            read_coveragepy(&other.path().join("x.db"), Path::new("/")).expect_err("not coverage");
        assert!(
            err.to_string()
                .starts_with("not readable as coverage.py data"),
            "{err}"
        );
    }
}
