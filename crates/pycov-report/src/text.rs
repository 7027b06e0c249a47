//! The terminal table, laid out as coverage.py's `SummaryReporter`.

use std::io::Write;

use pycov_core::Counts;

use crate::numbers::{display_percent, format_missing, human_cmp, neutralize_control, percent};
use crate::{total, ReportError, ReportFile};

/// Options of the text report.
#[derive(Clone, Debug, Default)]
pub struct TextOptions {
    /// Add the `Missing` column (`-m`).
    pub show_missing: bool,
    /// Leave out files with full coverage.
    pub skip_covered: bool,
    /// Digits after the decimal point.
    pub precision: usize,
}

/// Writes the table; returns the total counts (for `--fail-under`).
pub fn write_text(
    files: &[ReportFile<'_>],
    options: &TextOptions,
    out: &mut impl Write,
) -> Result<Counts, ReportError> {
    if files.is_empty() {
        return Err(ReportError::NoData);
    }
    let totals = total(files);
    let mut skipped = 0usize;
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut names: Vec<&ReportFile<'_>> = files.iter().collect();
    names.sort_by(|a, b| human_cmp(&a.name, &b.name));
    for file in names {
        if options.skip_covered && file.counts.missing == 0 {
            skipped += 1;
            continue;
        }
        let mut row = vec![
            neutralize_control(&file.name),
            file.counts.statements.to_string(),
            file.counts.missing.to_string(),
            display_percent(percent(&file.counts), options.precision),
        ];
        if options.show_missing {
            row.push(format_missing(
                &file.coverage.statements,
                &file.coverage.missing(),
            ));
        }
        rows.push(row);
    }
    let mut header = vec!["Name", "Stmts", "Miss", "Cover"];
    if options.show_missing {
        header.push("Missing");
    }
    let mut total_row = vec![
        "TOTAL".to_owned(),
        totals.statements.to_string(),
        totals.missing.to_string(),
        display_percent(percent(&totals), options.precision),
    ];
    if options.show_missing {
        total_row.push(String::new());
    }

    let name_width = rows
        .iter()
        .map(|r| r[0].chars().count())
        .chain([5])
        .max()
        .unwrap_or(5)
        + 1;
    let cover_width = rows
        .iter()
        .map(|r| r[3].len() + 2)
        .chain([(total_row[3].len() + 2).max(" Cover".len()) + 1])
        .max()
        .unwrap_or(7);
    let cell = |column: &str, value: &str, is_header: bool| -> String {
        match column {
            "Name" => pad_right(value, name_width),
            "Cover" if is_header => format!("{value:>cover_width$}"),
            "Cover" => format!("{value:>width$}%", width = cover_width - 1),
            "Missing" if is_header => format!("{value:>10}"),
            "Missing" => format!("   {}", pad_right(value, 9)),
            _ => format!("{value:>7}"),
        }
    };
    let header_line: String = header.iter().map(|h| cell(h, h, true)).collect();
    let rule = "-".repeat(header_line.chars().count());
    write_line(out, &header_line)?;
    write_line(out, &rule)?;
    for row in &rows {
        let line: String = header
            .iter()
            .zip(row)
            .map(|(h, v)| cell(h, v, false))
            .collect();
        write_line(out, &line)?;
    }
    if !rows.is_empty() {
        write_line(out, &rule)?;
    }
    let line: String = header
        .iter()
        .zip(&total_row)
        .map(|(h, v)| cell(h, v, false))
        .collect();
    write_line(out, &line)?;
    if options.skip_covered && skipped > 0 {
        let noun = if skipped == 1 { "file" } else { "files" };
        write_line(out, "")?;
        write_line(
            out,
            &format!("{skipped} {noun} skipped due to complete coverage."),
        )?;
    }
    Ok(totals)
}

fn pad_right(value: &str, width: usize) -> String {
    let len = value.chars().count();
    if len >= width {
        value.to_owned()
    } else {
        format!("{value}{}", " ".repeat(width - len))
    }
}

/// coverage.py strips trailing spaces from every line.
fn write_line(out: &mut impl Write, line: &str) -> std::io::Result<()> {
    out.write_all(line.trim_end().as_bytes())?;
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report_files;
    use pycov_core::{CoverageData, FileCoverage, LineNo, LineSet};

    fn lines(ns: &[u32]) -> LineSet {
        ns.iter().filter_map(|&n| LineNo::new(n)).collect()
    }

    fn sample() -> CoverageData {
        let mut data = CoverageData::default();
        let mut add = |path: &str, statements: &[u32], executed: &[u32]| {
            data.insert(
                path.to_owned(),
                FileCoverage {
                    statements: lines(statements),
                    executed: lines(executed),
                    ..FileCoverage::default()
                },
            );
        };
        add("/p/main.py", &[1, 2, 3, 4, 5], &[1, 2, 3, 4, 5]);
        add("/p/pkg/__init__.py", &[], &[]);
        add(
            "/p/pkg/mod.py",
            &[1, 2, 3, 4, 7, 8, 9, 10, 13, 14, 15, 16, 17],
            &[1, 2, 3, 7, 13, 14, 17],
        );
        add(
            "/p/pkg/sub/deep.py",
            &[1, 3, 4, 5, 6, 7, 10, 11],
            &[1, 3, 10, 11],
        );
        data
    }

    fn render(options: &TextOptions) -> String {
        let data = sample();
        let mut out = Vec::new();
        write_text(&report_files(&data, "/p"), options, &mut out).expect("report");
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn layout_matches_coverage_py() {
        // `coverage report -m` of ../shared/formats/examples, coverage 7.17.4.
        insta::assert_snapshot!(render(&TextOptions { show_missing: true, ..TextOptions::default() }), @r"
        Name              Stmts   Miss  Cover   Missing
        -----------------------------------------------
        main.py               5      0   100%
        pkg/__init__.py       0      0   100%
        pkg/mod.py           13      6    54%   4, 8-10, 15-16
        pkg/sub/deep.py       8      4    50%   4-7
        -----------------------------------------------
        TOTAL                26     10    62%
        ");
    }

    #[test]
    fn skip_covered_and_precision() {
        // `coverage report --skip-covered --precision=2`, same project.
        insta::assert_snapshot!(render(&TextOptions { skip_covered: true, precision: 2, ..TextOptions::default() }), @r"
        Name              Stmts   Miss   Cover
        --------------------------------------
        pkg/mod.py           13      6  53.85%
        pkg/sub/deep.py       8      4  50.00%
        --------------------------------------
        TOTAL                26     10  61.54%

        2 files skipped due to complete coverage.
        ");
    }

    #[test]
    fn no_files_is_no_data() {
        let data = CoverageData::default();
        let err = write_text(
            &report_files(&data, "/p"),
            &TextOptions::default(),
            &mut Vec::new(),
        )
        .expect_err("empty");
        assert_eq!(err.to_string(), "no data to report");
    }
}
