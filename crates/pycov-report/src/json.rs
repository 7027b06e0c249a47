//! coverage.py's JSON report (format 3: with per-file `functions` and
//! `classes`), in its layout: `json.dump` with Python's separators
//! (`", "`, `": "`, or 4-space indentation when pretty).

use std::io::Write;

use pycov_core::{Counts, LineNo, LineSet, RegionKind};

use crate::numbers::{display_percent, percent, push_uint, python_float_repr};
use crate::{named_regions, outside_regions, total, Narrowed, ReportError, ReportFile};

/// The JSON format version (coverage.py's 3 has function and class regions).
pub const FORMAT: u32 = 3;

/// Options and provenance of the JSON report.
#[derive(Clone, Debug, Default)]
pub struct JsonOptions {
    /// Indent with 4 spaces.
    pub pretty: bool,
    /// Digits of the `*_display` percentages.
    pub precision: usize,
    /// `meta.version`: the producing tool's version.
    pub version: String,
    /// `meta.timestamp`: local time, ISO 8601 without zone.
    pub timestamp: String,
}

/// A JSON value, just enough to write coverage.py's report.
enum Value {
    Int(usize),
    Float(f64),
    Str(String),
    Bool(bool),
    Ints(Vec<u32>),
    Object(Vec<(String, Value)>),
}

/// Writes the report; returns the totals (for `--fail-under`).
pub fn write_json(
    files: &[ReportFile<'_>],
    options: &JsonOptions,
    out: &mut impl Write,
) -> Result<Counts, ReportError> {
    if files.is_empty() {
        return Err(ReportError::NoData);
    }
    let totals = total(files);
    let meta = Value::Object(vec![
        ("format".into(), Value::Int(FORMAT as usize)),
        ("version".into(), Value::Str(options.version.clone())),
        ("timestamp".into(), Value::Str(options.timestamp.clone())),
        ("branch_coverage".into(), Value::Bool(false)),
        ("show_contexts".into(), Value::Bool(false)),
    ]);
    let lines = |set: &LineSet| Value::Ints(set.iter().map(|l| l.get()).collect());
    let list = |lines: &[LineNo]| Value::Ints(lines.iter().map(|l| l.get()).collect());
    let entries = files
        .iter()
        .map(|file| {
            let coverage = file.coverage;
            let mut body = vec![
                (
                    "executed_lines".into(),
                    lines(&coverage.executed.intersection(&coverage.statements)),
                ),
                ("summary".into(), summary(&file.counts, options.precision)),
                ("missing_lines".into(), lines(&coverage.missing())),
                ("excluded_lines".into(), lines(&coverage.excluded)),
            ];
            for (kind, plural) in [
                (RegionKind::Function, "functions"),
                (RegionKind::Class, "classes"),
            ] {
                let region_entry = |narrowed: &Narrowed, start: u32| {
                    Value::Object(vec![
                        ("executed_lines".into(), list(&narrowed.executed)),
                        (
                            "summary".into(),
                            summary(&narrowed.counts(), options.precision),
                        ),
                        ("missing_lines".into(), list(&narrowed.missing)),
                        ("excluded_lines".into(), list(&narrowed.excluded)),
                        ("start_line".into(), Value::Int(start as usize)),
                    ])
                };
                let mut regions: Vec<(String, Value)> = named_regions(coverage, kind)
                    .iter()
                    .map(|(name, region, narrowed)| {
                        (name.clone(), region_entry(narrowed, region.start.get()))
                    })
                    .collect();
                let outside = outside_regions(coverage, kind);
                let start = outside.bounds().map_or(1, |(first, _)| first.get());
                regions.push((
                    String::new(),
                    region_entry(&Narrowed::new(coverage, &outside), start),
                ));
                body.push((plural.into(), Value::Object(regions)));
            }
            (file.name.clone(), Value::Object(body))
        })
        .collect();
    let report = Value::Object(vec![
        ("meta".into(), meta),
        ("files".into(), Value::Object(entries)),
        ("totals".into(), summary(&totals, options.precision)),
    ]);
    let mut text = String::new();
    render(&report, options.pretty, 0, &mut text);
    out.write_all(text.as_bytes())?;
    Ok(totals)
}

fn summary(counts: &Counts, precision: usize) -> Value {
    let pc = percent(counts);
    Value::Object(vec![
        ("covered_lines".into(), Value::Int(counts.executed)),
        ("num_statements".into(), Value::Int(counts.statements)),
        ("percent_covered".into(), Value::Float(pc)),
        (
            "percent_covered_display".into(),
            Value::Str(display_percent(pc, precision)),
        ),
        ("missing_lines".into(), Value::Int(counts.missing)),
        ("excluded_lines".into(), Value::Int(counts.excluded)),
        ("percent_statements_covered".into(), Value::Float(pc)),
        (
            "percent_statements_covered_display".into(),
            Value::Str(display_percent(pc, precision)),
        ),
    ])
}

fn render(value: &Value, pretty: bool, depth: usize, out: &mut String) {
    match value {
        Value::Int(n) => push_uint(out, *n as u64),
        Value::Float(x) => out.push_str(&python_float_repr(*x)),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Str(s) => quote(s, out),
        Value::Ints(items) => {
            sequence(out, pretty, depth, '[', ']', items.len(), |i, out| {
                push_uint(out, u64::from(items[i]));
            });
        }
        Value::Object(entries) => {
            sequence(out, pretty, depth, '{', '}', entries.len(), |i, out| {
                let (key, value) = &entries[i];
                quote(key, out);
                out.push_str(": ");
                render(value, pretty, depth + 1, out);
            });
        }
    }
}

/// `json.dump`'s layout of a list or dict: `[a, b]` compact, or one item
/// per line indented by 4 spaces per level; empty ones stay `[]` / `{}`.
fn sequence(
    out: &mut String,
    pretty: bool,
    depth: usize,
    open: char,
    close: char,
    len: usize,
    mut item: impl FnMut(usize, &mut String),
) {
    out.push(open);
    if len == 0 {
        out.push(close);
        return;
    }
    let indent = |out: &mut String, levels: usize| {
        for _ in 0..levels {
            out.push_str("    ");
        }
    };
    for i in 0..len {
        if i > 0 {
            out.push(',');
            if !pretty {
                out.push(' ');
            }
        }
        if pretty {
            out.push('\n');
            indent(out, depth + 1);
        }
        item(i, out);
    }
    if pretty {
        out.push('\n');
        indent(out, depth);
    }
    out.push(close);
}

/// A JSON string as Python's `json.dumps` (ensure_ascii) writes it.
fn quote(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report_files;
    use pycov_core::{CoverageData, FileCoverage, LineNo, LineSet};

    fn lines(ns: &[u32]) -> LineSet {
        ns.iter().filter_map(|&n| LineNo::new(n)).collect()
    }

    fn render_report(pretty: bool) -> String {
        let mut data = CoverageData::default();
        data.insert(
            "/p/a\"é.py".into(),
            FileCoverage {
                statements: lines(&[1, 2, 3]),
                executed: lines(&[1, 2]),
                excluded: lines(&[5]),
                ..FileCoverage::default()
            },
        );
        data.insert("/p/empty.py".into(), FileCoverage::default());
        let mut out = Vec::new();
        let options = JsonOptions {
            pretty,
            precision: 0,
            version: "0.1.0".into(),
            timestamp: "2026-11-25T18:47:27.738760".into(),
        };
        write_json(&report_files(&data, "/p"), &options, &mut out).expect("report");
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn compact_layout_is_pythons() {
        insta::assert_snapshot!(render_report(false), @r#"{"meta": {"format": 3, "version": "0.1.0", "timestamp": "2026-11-25T18:47:27.738760", "branch_coverage": false, "show_contexts": false}, "files": {"a\"\u00e9.py": {"executed_lines": [1, 2], "summary": {"covered_lines": 2, "num_statements": 3, "percent_covered": 66.66666666666667, "percent_covered_display": "67", "missing_lines": 1, "excluded_lines": 1, "percent_statements_covered": 66.66666666666667, "percent_statements_covered_display": "67"}, "missing_lines": [3], "excluded_lines": [5], "functions": {"": {"executed_lines": [1, 2], "summary": {"covered_lines": 2, "num_statements": 3, "percent_covered": 66.66666666666667, "percent_covered_display": "67", "missing_lines": 1, "excluded_lines": 1, "percent_statements_covered": 66.66666666666667, "percent_statements_covered_display": "67"}, "missing_lines": [3], "excluded_lines": [5], "start_line": 1}}, "classes": {"": {"executed_lines": [1, 2], "summary": {"covered_lines": 2, "num_statements": 3, "percent_covered": 66.66666666666667, "percent_covered_display": "67", "missing_lines": 1, "excluded_lines": 1, "percent_statements_covered": 66.66666666666667, "percent_statements_covered_display": "67"}, "missing_lines": [3], "excluded_lines": [5], "start_line": 1}}}, "empty.py": {"executed_lines": [], "summary": {"covered_lines": 0, "num_statements": 0, "percent_covered": 100.0, "percent_covered_display": "100", "missing_lines": 0, "excluded_lines": 0, "percent_statements_covered": 100.0, "percent_statements_covered_display": "100"}, "missing_lines": [], "excluded_lines": [], "functions": {"": {"executed_lines": [], "summary": {"covered_lines": 0, "num_statements": 0, "percent_covered": 100.0, "percent_covered_display": "100", "missing_lines": 0, "excluded_lines": 0, "percent_statements_covered": 100.0, "percent_statements_covered_display": "100"}, "missing_lines": [], "excluded_lines": [], "start_line": 1}}, "classes": {"": {"executed_lines": [], "summary": {"covered_lines": 0, "num_statements": 0, "percent_covered": 100.0, "percent_covered_display": "100", "missing_lines": 0, "excluded_lines": 0, "percent_statements_covered": 100.0, "percent_statements_covered_display": "100"}, "missing_lines": [], "excluded_lines": [], "start_line": 1}}}}, "totals": {"covered_lines": 2, "num_statements": 3, "percent_covered": 66.66666666666667, "percent_covered_display": "67", "missing_lines": 1, "excluded_lines": 1, "percent_statements_covered": 66.66666666666667, "percent_statements_covered_display": "67"}}"#);
    }

    #[test]
    fn pretty_layout_indents_by_four() {
        let text = render_report(true);
        assert!(
            text.starts_with("{\n    \"meta\": {\n        \"format\": 3,\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "\"executed_lines\": [\n                1,\n                2\n            ],"
            ),
            "{text}"
        );
        assert!(text.contains("\"executed_lines\": [],"), "{text}");
        assert!(text.ends_with("\n    }\n}"), "{text}");
    }
}
