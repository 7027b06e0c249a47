//! coverage.py's JSON report (format 3: with per-file `functions` and
//! `classes`), in its layout: `json.dump` with Python's separators
//! (`", "`, `": "`, or 4-space indentation when pretty).

use std::io::Write;

use pycov_core::{Counts, LineNo, RegionKind};

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
    let mut json = JsonWriter::new(options.pretty);
    json.begin('{');
    json.key("meta");
    json.begin('{');
    json.key("format");
    json.uint(u64::from(FORMAT));
    json.key("version");
    json.string(&options.version);
    json.key("timestamp");
    json.string(&options.timestamp);
    json.key("branch_coverage");
    json.raw("false");
    json.key("show_contexts");
    json.raw("false");
    json.end('}');
    json.key("files");
    json.begin('{');
    for file in files {
        let coverage = file.coverage;
        json.key(&file.name);
        json.begin('{');
        json.key("executed_lines");
        json.lines(&coverage.executed.intersection(&coverage.statements));
        json.key("summary");
        json.summary(&file.counts, options.precision);
        json.key("missing_lines");
        json.lines(&coverage.missing());
        json.key("excluded_lines");
        json.lines(&coverage.excluded);
        for (kind, plural) in [
            (RegionKind::Function, "functions"),
            (RegionKind::Class, "classes"),
        ] {
            json.key(plural);
            json.begin('{');
            for (name, region, narrowed) in named_regions(coverage, kind) {
                json.key(&name);
                json.region(&narrowed, region.start.get(), options.precision);
            }
            let outside = outside_regions(coverage, kind);
            let start = outside.bounds().map_or(1, |(first, _)| first.get());
            json.key("");
            json.region(&Narrowed::new(coverage, &outside), start, options.precision);
            json.end('}');
        }
        json.end('}');
        json.flush_to(out, FLUSH_AT)?;
    }
    json.end('}');
    json.key("totals");
    json.summary(&totals, options.precision);
    json.end('}');
    json.flush_to(out, 0)?;
    Ok(totals)
}

/// Bytes of output gathered before they are handed to the writer.
const FLUSH_AT: usize = 1 << 20;

/// Writes JSON as Python's `json.dump` lays it out: `", "` and `": "`
/// separators, or one item per line indented by 4 spaces per level when
/// pretty; empty containers stay `[]` / `{}`.
struct JsonWriter {
    text: String,
    pretty: bool,
    depth: usize,
    /// No item written yet in the innermost open container.
    first: bool,
}

impl JsonWriter {
    fn new(pretty: bool) -> Self {
        JsonWriter {
            text: String::new(),
            pretty,
            depth: 0,
            first: true,
        }
    }

    fn flush_to(&mut self, out: &mut impl Write, at_least: usize) -> std::io::Result<()> {
        if self.text.len() >= at_least {
            out.write_all(self.text.as_bytes())?;
            self.text.clear();
        }
        Ok(())
    }

    fn newline(&mut self) {
        self.text.push('\n');
        for _ in 0..self.depth {
            self.text.push_str("    ");
        }
    }

    /// Starts the next item of the innermost container.
    fn item(&mut self) {
        if !self.first {
            self.text.push(',');
            if !self.pretty {
                self.text.push(' ');
            }
        }
        if self.pretty {
            self.newline();
        }
        self.first = false;
    }

    fn begin(&mut self, open: char) {
        self.text.push(open);
        self.depth += 1;
        self.first = true;
    }

    fn end(&mut self, close: char) {
        self.depth -= 1;
        if self.pretty && !self.first {
            self.newline();
        }
        self.text.push(close);
        // The container was an item of its parent.
        self.first = false;
    }

    fn key(&mut self, key: &str) {
        self.item();
        quote(key, &mut self.text);
        self.text.push_str(": ");
    }

    fn raw(&mut self, text: &str) {
        self.text.push_str(text);
    }

    fn uint(&mut self, n: u64) {
        push_uint(&mut self.text, n);
    }

    fn string(&mut self, s: &str) {
        quote(s, &mut self.text);
    }

    fn lines(&mut self, lines: impl IntoIterator<Item = LineNo>) {
        self.begin('[');
        for line in lines {
            self.item();
            push_uint(&mut self.text, u64::from(line.get()));
        }
        self.end(']');
    }

    fn summary(&mut self, counts: &Counts, precision: usize) {
        let pc = percent(counts);
        let shown = display_percent(pc, precision);
        let float = python_float_repr(pc);
        self.begin('{');
        self.key("covered_lines");
        self.uint(counts.executed as u64);
        self.key("num_statements");
        self.uint(counts.statements as u64);
        self.key("percent_covered");
        self.raw(&float);
        self.key("percent_covered_display");
        self.string(&shown);
        self.key("missing_lines");
        self.uint(counts.missing as u64);
        self.key("excluded_lines");
        self.uint(counts.excluded as u64);
        self.key("percent_statements_covered");
        self.raw(&float);
        self.key("percent_statements_covered_display");
        self.string(&shown);
        self.end('}');
    }

    fn region(&mut self, narrowed: &Narrowed, start: u32, precision: usize) {
        self.begin('{');
        self.key("executed_lines");
        self.lines(narrowed.executed.iter().copied());
        self.key("summary");
        self.summary(&narrowed.counts(), precision);
        self.key("missing_lines");
        self.lines(narrowed.missing.iter().copied());
        self.key("excluded_lines");
        self.lines(narrowed.excluded.iter().copied());
        self.key("start_line");
        self.uint(u64::from(start));
        self.end('}');
    }
}

/// A JSON string as Python's `json.dumps` (ensure_ascii) writes it.
fn quote(s: &str, out: &mut String) {
    out.push('"');
    if s.bytes()
        .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\')
    {
        out.push_str(s);
        out.push('"');
        return;
    }
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
    use crate::testing::lines;
    use pycov_core::{CoverageData, FileCoverage};

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
