//! LCOV tracefiles in the subset every consumer accepts (FORMATS.md §3.3):
//! lcov 1.16 and 2.x (including 2.x's consistency checks), genhtml,
//! diff-cover, Codecov, Coveralls.
//!
//! Per file: `SF`, then `FN:<def line>,<name>` (the two-field form: no end
//! line, so lcov 2.x has no range to find "inconsistent" with a `def` line
//! that ran at import), `FNDA`, `FNF`, `FNH`, `DA` for every statement,
//! `LF`, `LH`, `end_of_record`. Functions and their names follow
//! coverage.py's LCOV report: regions with statements, ordered by their
//! first line, a repeated name suffixed with `@<line>`; a function counts as
//! hit when any of its statements ran.

use std::collections::HashSet;
use std::io::Write;

use pycov_core::{Counts, RegionKind};

use crate::numbers::{neutralize_control, push_uint};
use crate::{total, Narrowed, ReportError, ReportFile};

/// Writes the tracefile; files in name order. Returns the totals.
pub fn write_lcov(files: &[ReportFile<'_>], out: &mut impl Write) -> Result<Counts, ReportError> {
    if files.is_empty() {
        return Err(ReportError::NoData);
    }
    let mut ordered: Vec<&ReportFile<'_>> = files.iter().collect();
    ordered.sort_by(|a, b| a.name.cmp(&b.name));
    let mut text = String::new();
    for file in ordered {
        write_file(file, &mut text);
    }
    out.write_all(text.as_bytes())?;
    Ok(total(files))
}

fn write_file(file: &ReportFile<'_>, text: &mut String) {
    use std::fmt::Write as _;
    let coverage = file.coverage;
    let _ = writeln!(text, "SF:{}", field(&file.name));

    let mut functions: Vec<(u32, u32, &str, Narrowed)> = coverage
        .regions
        .iter()
        .filter(|r| r.kind == RegionKind::Function)
        .filter_map(|r| {
            let (first, last) = r.lines.bounds()?;
            Some((
                r.start.min(first).get(),
                r.start.max(last).get(),
                r.name.as_str(),
                Narrowed::new(coverage, &r.lines),
            ))
        })
        .filter(|(_, _, _, narrowed)| !narrowed.statements.is_empty())
        .collect();
    functions.sort_by(|a, b| (a.0, a.1, a.2).cmp(&(b.0, b.1, b.2)));
    let mut seen = HashSet::new();
    let named: Vec<(u32, String, bool)> = functions
        .iter()
        .map(|(first, _, name, narrowed)| {
            let mut name = field(name);
            if !seen.insert(name.clone()) {
                name = format!("{name}@{first}");
            }
            (*first, name, !narrowed.executed.is_empty())
        })
        .collect();
    for (first, name, _) in &named {
        let _ = writeln!(text, "FN:{first},{name}");
    }
    for (_, name, hit) in &named {
        let _ = writeln!(text, "FNDA:{},{name}", u8::from(*hit));
    }
    let _ = writeln!(text, "FNF:{}", named.len());
    let _ = writeln!(
        text,
        "FNH:{}",
        named.iter().filter(|(_, _, hit)| *hit).count()
    );

    for line in &coverage.statements {
        text.push_str("DA:");
        push_uint(text, u64::from(line.get()));
        text.push_str(if coverage.executed.contains(line) {
            ",1\n"
        } else {
            ",0\n"
        });
    }
    let counts = file.counts;
    let _ = writeln!(text, "LF:{}", counts.statements);
    let _ = writeln!(text, "LH:{}", counts.executed);
    text.push_str("end_of_record\n");
}

/// LCOV has no escaping: a newline in a name would start a fake record.
fn field(text: &str) -> String {
    neutralize_control(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report_files;
    use crate::testing::lines;
    use pycov_core::{CodeRegion, CoverageData, FileCoverage, LineNo, LineRanges};

    fn function(name: &str, start: u32, body: &[u32]) -> CodeRegion {
        CodeRegion {
            kind: RegionKind::Function,
            name: name.into(),
            start: LineNo::new(start).expect("line"),
            lines: LineRanges::from_set(&lines(body)),
        }
    }

    fn render(data: &CoverageData) -> String {
        let mut out = Vec::new();
        write_lcov(&report_files(data, "/p"), &mut out).expect("written");
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn records_for_functions_and_lines() {
        let mut data = CoverageData::default();
        data.insert(
            "/p/pkg/mod.py".into(),
            FileCoverage {
                statements: lines(&[1, 2, 3, 5, 6, 8, 9]),
                executed: lines(&[1, 2, 3, 5, 8]),
                line_count: 9,
                regions: vec![
                    function("used", 2, &[3]),
                    function("unused", 5, &[6]),
                    function("used", 8, &[9]),
                    function("empty", 7, &[7]),
                ],
                ..FileCoverage::default()
            },
        );
        data.insert("/p/empty.py".into(), FileCoverage::default());
        insta::assert_snapshot!(render(&data), @r"
        SF:empty.py
        FNF:0
        FNH:0
        LF:0
        LH:0
        end_of_record
        SF:pkg/mod.py
        FN:2,used
        FN:5,unused
        FN:8,used@8
        FNDA:1,used
        FNDA:0,unused
        FNDA:0,used@8
        FNF:3
        FNH:1
        DA:1,1
        DA:2,1
        DA:3,1
        DA:5,1
        DA:6,0
        DA:8,1
        DA:9,0
        LF:7
        LH:5
        end_of_record
        ");
    }

    #[test]
    fn hostile_names_stay_on_one_line() {
        let mut data = CoverageData::default();
        data.insert(
            "/p/we\nird\r&<>\".py".into(),
            FileCoverage {
                statements: lines(&[1]),
                executed: lines(&[1]),
                line_count: 1,
                regions: vec![function("f\nFN:1,fake", 1, &[1])],
                ..FileCoverage::default()
            },
        );
        let text = render(&data);
        assert!(
            text.starts_with("SF:we?ird?&<>\".py\nFN:1,f?FN:1,fake\n"),
            "{text}"
        );
        assert_eq!(text.lines().filter(|l| l.starts_with("SF:")).count(), 1);
    }
}
