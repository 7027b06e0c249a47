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
pub mod lcov;
pub mod numbers;
pub mod read_cobertura;
pub mod read_coveragepy;
pub mod read_lcov;
#[cfg(test)]
mod testing;
pub mod text;
pub mod xml;

use pycov_core::{CodeRegion, Counts, CoverageData, FileCoverage, LineNo, LineRanges, RegionKind};

/// How much bitset memory a reader of another tool's report may use: a
/// line number costs a bit of every line below it, so a small hostile file
/// could otherwise ask for gigabytes. 16 MiB plus 8 bytes per input byte is
/// far beyond what real reports need.
#[derive(Debug)]
pub(crate) struct LineBudget {
    words_left: usize,
}

impl LineBudget {
    pub(crate) fn for_input(bytes: usize) -> LineBudget {
        LineBudget {
            words_left: (1 << 21) + bytes,
        }
    }

    /// Adds `line` to `set` if the budget allows the growth it needs.
    pub(crate) fn insert(
        &mut self,
        set: &mut pycov_core::LineSet,
        line: LineNo,
    ) -> Result<(), String> {
        let needed = (line.get() as usize / 64 + 1).saturating_sub(set.words().len());
        if needed > self.words_left {
            return Err(format!(
                "line {} would need more memory than a report of this size can justify",
                line.get()
            ));
        }
        self.words_left -= needed;
        set.insert(line);
        Ok(())
    }
}

/// A line number as another tool's report writes it.
pub(crate) fn parse_line(text: &str) -> Result<LineNo, String> {
    text.parse::<u64>()
        .ok()
        .and_then(|n| u32::try_from(n).ok())
        .and_then(LineNo::new)
        .ok_or_else(|| {
            format!(
                "line number {text:?} is not a line from 1 to {}",
                LineNo::MAX
            )
        })
}

/// An execution count as another tool's report writes it: a non-negative
/// integer, or a float some producers write (`1.0`), or `-` for "not
/// measured".
pub(crate) fn parse_count(text: &str) -> Option<u64> {
    if text == "-" {
        return Some(0);
    }
    if let Ok(n) = text.parse::<u64>() {
        return Some(n);
    }
    text.parse::<f64>()
        .ok()
        .filter(|x| x.is_finite() && *x >= 0.0)
        .map(|x| x.ceil() as u64)
}

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

/// The part of a file's coverage that lies in some lines (coverage.py's
/// `AnalysisNarrower`), as ascending line lists: a region costs its own
/// size, not its file's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Narrowed {
    /// Statements in the lines.
    pub statements: Vec<LineNo>,
    /// Of those, the ones that ran.
    pub executed: Vec<LineNo>,
    /// Of those, the ones that did not.
    pub missing: Vec<LineNo>,
    /// Excluded lines in the lines.
    pub excluded: Vec<LineNo>,
}

impl Narrowed {
    /// `coverage`, restricted to `lines`.
    pub fn new(coverage: &FileCoverage, lines: &LineRanges) -> Narrowed {
        let last = coverage
            .statements
            .last()
            .max(coverage.excluded.last())
            .map_or(0, LineNo::get);
        let mut narrowed = Narrowed::default();
        for line in lines.lines_up_to(last) {
            if coverage.statements.contains(line) {
                narrowed.statements.push(line);
                if coverage.executed.contains(line) {
                    narrowed.executed.push(line);
                } else {
                    narrowed.missing.push(line);
                }
            } else if coverage.excluded.contains(line) {
                narrowed.excluded.push(line);
            }
        }
        narrowed
    }

    /// The counts of the narrowed part.
    pub fn counts(&self) -> Counts {
        Counts {
            files: 1,
            statements: self.statements.len(),
            executed: self.executed.len(),
            missing: self.missing.len(),
            excluded: self.excluded.len(),
        }
    }
}

/// The regions of one kind with their names as coverage.py's JSON report
/// shows them, in order of their start line: a name that appears twice
/// keeps it for the first region with statements; the others get
/// `@<start line>` appended.
pub fn named_regions(
    file: &FileCoverage,
    kind: RegionKind,
) -> Vec<(String, &CodeRegion, Narrowed)> {
    let mut regions: Vec<(&CodeRegion, Narrowed)> = file
        .regions
        .iter()
        .filter(|r| r.kind == kind)
        .map(|r| (r, Narrowed::new(file, &r.lines)))
        .collect();
    regions.sort_by_key(|(r, _)| r.start);
    let with_statements: std::collections::HashSet<&str> = regions
        .iter()
        .filter(|(_, n)| !n.statements.is_empty())
        .map(|(r, _)| r.name.as_str())
        .collect();
    let mut used = std::collections::HashSet::new();
    regions
        .into_iter()
        .map(|(region, narrowed)| {
            let plain = region.name.clone();
            let taken = used.contains(&plain)
                || (with_statements.contains(plain.as_str()) && narrowed.statements.is_empty());
            let name = if taken {
                format!("{plain}@{}", region.start)
            } else {
                plain
            };
            used.insert(name.clone());
            (name, region, narrowed)
        })
        .collect()
}

/// The lines of `file` outside every region of `kind` (coverage.py's
/// `outside_lines`: all lines of the source not claimed by one).
pub fn outside_regions(file: &FileCoverage, kind: RegionKind) -> LineRanges {
    LineRanges::complement(
        file.regions
            .iter()
            .filter(|r| r.kind == kind)
            .map(|r| &r.lines),
        last_line(file),
    )
}

/// The file's last line: its line count, or for data written without one
/// (data file version 1) the highest line the data mentions.
fn last_line(file: &FileCoverage) -> u32 {
    [&file.statements, &file.executed, &file.excluded]
        .into_iter()
        .filter_map(|lines| lines.last())
        .map(LineNo::get)
        .fold(file.line_count, u32::max)
}
