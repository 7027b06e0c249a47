//! Turning coverage data into the reports people and CI systems read.
//!
//! Every writer takes the files to report (see [`report_files`]) and a
//! `&mut impl Write`; choosing and opening the output is the caller's job.
//!
//! ```
//! use pycov_core::{CoverageData, FileCoverage, LineNo, LineSet};
//! use pycov_report::{report_files, text::{write_text, TextOptions}};
//!
//! let lines = |ns: &[u32]| ns.iter().filter_map(|&n| LineNo::new(n)).collect::<LineSet>();
//! let mut data = CoverageData::default();
//! data.insert("/proj/app.py".into(), FileCoverage {
//!     statements: lines(&[1, 2, 3, 4]),
//!     executed: lines(&[1, 2]),
//!     ..FileCoverage::default()
//! });
//! let files = report_files(&data, "/proj");
//! let mut out = Vec::new();
//! write_text(&files, &TextOptions { show_missing: true, ..TextOptions::default() }, &mut out).unwrap();
//! assert!(String::from_utf8(out).unwrap().contains("app.py       4      2    50%   3-4"));
//! ```

pub mod json;
pub mod numbers;
pub mod text;

use pycov_core::{Counts, CoverageData, FileCoverage};

/// Why a report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// Nothing to report (coverage.py's `NoDataError`).
    #[error("no data to report")]
    NoData,
    /// Writing the output failed.
    #[error("writing the report: {0}")]
    Io(#[from] std::io::Error),
}

/// One file as reports show it.
#[derive(Clone, Debug)]
pub struct ReportFile<'a> {
    /// The name shown: relative to the report's directory when inside it.
    pub name: String,
    /// The absolute path measured.
    pub path: &'a str,
    /// Its coverage.
    pub coverage: &'a FileCoverage,
    /// Its counts.
    pub counts: Counts,
}

/// The files of `data` in path order, named relative to `relative_to`
/// (coverage.py's `relative_filename`: only files inside it are shortened).
pub fn report_files<'a>(data: &'a CoverageData, relative_to: &str) -> Vec<ReportFile<'a>> {
    let prefix = if relative_to.ends_with('/') {
        relative_to.to_owned()
    } else {
        format!("{relative_to}/")
    };
    data.files()
        .map(|(path, coverage)| ReportFile {
            name: path.strip_prefix(&prefix).unwrap_or(path).to_owned(),
            path,
            coverage,
            counts: coverage.counts(),
        })
        .collect()
}

/// The sum over `files`.
pub fn total(files: &[ReportFile<'_>]) -> Counts {
    files.iter().map(|f| f.counts).sum()
}
