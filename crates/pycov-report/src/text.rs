//! The terminal table, laid out as coverage.py's `SummaryReporter`: plain
//! text (optionally coloured), Markdown, or just the total.

use std::cmp::Ordering;
use std::io::Write;
use std::str::FromStr;

use pycov_core::Counts;

use crate::numbers::{
    display_percent, fail_under, format_missing, human_cmp, neutralize_control, percent,
};
use crate::{total, ReportError, ReportFile};

/// What the report looks like.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TextFormat {
    /// coverage.py's table.
    #[default]
    Text,
    /// A Markdown table (for pull-request comments and job summaries).
    Markdown,
    /// Only the total percentage.
    Total,
}

impl FromStr for TextFormat {
    type Err = String;

    fn from_str(value: &str) -> Result<TextFormat, String> {
        match value {
            "text" => Ok(TextFormat::Text),
            "markdown" => Ok(TextFormat::Markdown),
            "total" => Ok(TextFormat::Total),
            other => Err(format!("Unknown report format choice: '{other}'")),
        }
    }
}

/// The column rows are sorted by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SortColumn {
    /// File name, in natural order.
    #[default]
    Name,
    /// Number of statements.
    Stmts,
    /// Number of missing statements.
    Miss,
    /// Covered percentage.
    Cover,
}

/// `--sort`: a column, ascending or (with a `-` prefix) descending.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SortOrder {
    /// The column.
    pub column: SortColumn,
    /// Largest first.
    pub descending: bool,
}

impl FromStr for SortOrder {
    type Err = String;

    /// coverage.py's spelling: `name`, `stmts`, `miss`, `cover`, any case,
    /// optionally prefixed by `-` (descending) or `+`.
    fn from_str(value: &str) -> Result<SortOrder, String> {
        let lower = value.to_lowercase();
        let (descending, name) = match lower.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, lower.strip_prefix('+').unwrap_or(&lower)),
        };
        let column = match name {
            "name" => SortColumn::Name,
            "stmts" => SortColumn::Stmts,
            "miss" => SortColumn::Miss,
            "cover" => SortColumn::Cover,
            _ => return Err(format!("Invalid sorting option: '{value}'")),
        };
        Ok(SortOrder { column, descending })
    }
}

/// Options of the text report.
#[derive(Clone, Debug, Default)]
pub struct TextOptions {
    /// Add the `Missing` column (`-m`).
    pub show_missing: bool,
    /// Leave out files with full coverage.
    pub skip_covered: bool,
    /// Leave out files without statements.
    pub skip_empty: bool,
    /// Digits after the decimal point.
    pub precision: usize,
    /// Row order.
    pub sort: SortOrder,
    /// Table, Markdown or total.
    pub format: TextFormat,
    /// Colour the text table with ANSI escapes (for a terminal).
    pub colour: bool,
    /// The `--fail-under` threshold, to colour a total below it.
    pub fail_under: Option<f64>,
}

/// One file's row before layout.
struct Row {
    name: String,
    counts: Counts,
    percent: f64,
    cover: String,
    missing: String,
}

/// How a cell is coloured.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Style {
    Plain,
    Bold,
    Good,
    Partial,
    Bad,
}

impl Style {
    fn for_percent(pc: f64) -> Style {
        if pc >= 100.0 {
            Style::Good
        } else if pc <= 0.0 {
            Style::Bad
        } else {
            Style::Partial
        }
    }

    fn escape(self) -> &'static str {
        match self {
            Style::Plain => "",
            Style::Bold => "\x1b[1m",
            Style::Good => "\x1b[32m",
            Style::Partial => "\x1b[33m",
            Style::Bad => "\x1b[31m",
        }
    }
}

/// Writes the report; returns the total counts (for `--fail-under`).
pub fn write_text(
    files: &[ReportFile<'_>],
    options: &TextOptions,
    out: &mut impl Write,
) -> Result<Counts, ReportError> {
    if files.is_empty() {
        return Err(ReportError::NoData);
    }
    let totals = total(files);
    let total_percent = percent(&totals);
    let total_cover = display_percent(total_percent, options.precision);
    if options.format == TextFormat::Total {
        write_line(out, &total_cover)?;
        return Ok(totals);
    }

    let mut skipped_covered = 0usize;
    let mut skipped_empty = 0usize;
    let mut rows = Vec::new();
    for file in files {
        if options.skip_covered && file.counts.missing == 0 {
            skipped_covered += 1;
        } else if options.skip_empty && file.counts.statements == 0 {
            skipped_empty += 1;
        } else {
            let pc = percent(&file.counts);
            rows.push(Row {
                name: neutralize_control(&file.name),
                counts: file.counts,
                percent: pc,
                cover: display_percent(pc, options.precision),
                missing: if options.show_missing {
                    format_missing(&file.coverage.statements, &file.coverage.missing())
                } else {
                    String::new()
                },
            });
        }
    }
    sort_rows(&mut rows, options.sort);

    let mut end_lines = Vec::new();
    if options.skip_covered && skipped_covered > 0 {
        end_lines.push(String::new());
        end_lines.push(format!(
            "{} skipped due to complete coverage.",
            plural(skipped_covered, "file")
        ));
    }
    if options.skip_empty && skipped_empty > 0 {
        end_lines.push(String::new());
        end_lines.push(format!("{} skipped.", plural(skipped_empty, "empty file")));
    }
    let table = Table {
        rows: &rows,
        totals: &totals,
        total_cover: &total_cover,
        total_style: match options.fail_under {
            Some(minimum) if fail_under(total_percent, minimum, options.precision).is_some() => {
                Style::Bad
            }
            Some(_) => Style::Good,
            None => Style::Bold,
        },
        show_missing: options.show_missing,
        colour: options.colour,
    };
    match options.format {
        TextFormat::Markdown => table.write_markdown(out)?,
        _ => table.write_text(out)?,
    }
    for line in &end_lines {
        write_line(out, line)?;
    }
    Ok(totals)
}

fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// coverage.py's order: natural by name, or by a number with the name
/// breaking ties; descending reverses both.
fn sort_rows(rows: &mut [Row], order: SortOrder) {
    let by_number = |a: &Row, b: &Row, key: &dyn Fn(&Row) -> f64| {
        key(a)
            .partial_cmp(&key(b))
            .unwrap_or(Ordering::Equal)
            .then_with(|| a.name.cmp(&b.name))
    };
    let compare = |a: &Row, b: &Row| match order.column {
        SortColumn::Name => human_cmp(&a.name, &b.name),
        SortColumn::Stmts => by_number(a, b, &|r| r.counts.statements as f64),
        SortColumn::Miss => by_number(a, b, &|r| r.counts.missing as f64),
        SortColumn::Cover => by_number(a, b, &|r| r.percent),
    };
    if order.descending {
        rows.sort_by(|a, b| compare(b, a));
    } else {
        rows.sort_by(compare);
    }
}

/// The rows and the total, ready to lay out.
struct Table<'a> {
    rows: &'a [Row],
    totals: &'a Counts,
    total_cover: &'a str,
    total_style: Style,
    show_missing: bool,
    colour: bool,
}

impl Table<'_> {
    fn write_text(&self, out: &mut impl Write) -> std::io::Result<()> {
        let name_width = self
            .rows
            .iter()
            .map(|r| r.name.chars().count())
            .chain([5])
            .max()
            .unwrap_or(5)
            + 1;
        let cover_width = self
            .rows
            .iter()
            .map(|r| r.cover.len() + 2)
            .chain([(self.total_cover.len() + 2).max(" Cover".len()) + 1])
            .max()
            .unwrap_or(7);
        let mut header = format!(
            "{}{:>7}{:>7}{:>cover_width$}",
            pad_right("Name", name_width),
            "Stmts",
            "Miss",
            "Cover"
        );
        if self.show_missing {
            header.push_str(&format!("{:>10}", "Missing"));
        }
        let rule = "-".repeat(header.chars().count());
        write_line(out, &header)?;
        write_line(out, &rule)?;
        let cover_cell = |cover: &str| format!("{cover:>width$}%", width = cover_width - 1);
        for row in self.rows {
            let mut cells = vec![
                (pad_right(&row.name, name_width), Style::Plain),
                (format!("{:>7}", row.counts.statements), Style::Plain),
                (format!("{:>7}", row.counts.missing), Style::Plain),
                (cover_cell(&row.cover), Style::for_percent(row.percent)),
            ];
            if self.show_missing {
                cells.push((format!("   {}", pad_right(&row.missing, 9)), Style::Bad));
            }
            write_line(out, &self.styled(&cells))?;
        }
        if !self.rows.is_empty() {
            write_line(out, &rule)?;
        }
        let cells = [
            (pad_right("TOTAL", name_width), Style::Bold),
            (format!("{:>7}", self.totals.statements), Style::Bold),
            (format!("{:>7}", self.totals.missing), Style::Bold),
            (cover_cell(self.total_cover), self.total_style),
        ];
        write_line(out, &self.styled(&cells))
    }

    /// The cells joined, each coloured when colour is on; padding stays
    /// outside the escapes so trailing spaces can still be trimmed.
    fn styled(&self, cells: &[(String, Style)]) -> String {
        let mut line = String::new();
        for (text, style) in cells {
            let content = text.trim();
            if !self.colour || *style == Style::Plain || content.is_empty() {
                line.push_str(text);
                continue;
            }
            let leading = text.len() - text.trim_start().len();
            let trailing = text.len() - text.trim_end().len();
            line.push_str(&text[..leading]);
            line.push_str(style.escape());
            line.push_str(content);
            line.push_str("\x1b[0m");
            line.push_str(&text[text.len() - trailing..]);
        }
        line
    }

    /// coverage.py's `report_markdown`.
    fn write_markdown(&self, out: &mut impl Write) -> std::io::Result<()> {
        let name_width = self
            .rows
            .iter()
            .map(|r| escape_markdown(&r.name).chars().count())
            .chain(["**TOTAL**".len()])
            .max()
            .unwrap_or(9)
            + 1;
        let cover_width = (self.total_cover.len() + 6).max(" Cover ".len());
        let mut header_items = vec![
            format!("| {}|", pad_right("Name", name_width)),
            format!("{:>9} |", "Stmts"),
            format!("{:>9} |", "Miss"),
            format!("{:>cover_width$} |", "Cover"),
        ];
        if self.show_missing {
            header_items.push(format!("{:>10} |", "Missing"));
        }
        let mut rule_items = vec![right_justify(
            "- |",
            header_items[0].chars().count() - 1,
            '-',
        )];
        for item in &header_items[1..] {
            rule_items.push(right_justify("-: |", item.chars().count() - 1, '-'));
        }
        write_line(out, &header_items.concat())?;
        write_line(out, &format!("|{}", rule_items.join(" ")))?;
        for row in self.rows {
            let mut line = format!(
                "| {}|{:>9} |{:>9} |{:>width$}% |",
                pad_right(&escape_markdown(&row.name), name_width),
                row.counts.statements,
                row.counts.missing,
                escape_markdown(&row.cover),
                width = cover_width - 1
            );
            if self.show_missing {
                line.push_str(&format!("{:>10} |", escape_markdown(&row.missing)));
            }
            write_line(out, &line)?;
        }
        let mut line = format!(
            "|{} |{:>9} |{:>9} |{:>cover_width$} |",
            pad_right(" **TOTAL**", name_width),
            format!(" **{}**", self.totals.statements),
            format!(" **{}**", self.totals.missing),
            format!(" **{}%**", self.total_cover),
        );
        if self.show_missing {
            line.push_str(&format!("{:>10} |", ""));
        }
        write_line(out, &line)
    }
}

/// coverage.py escapes Markdown punctuation except `.,/-`.
fn escape_markdown(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii_punctuation() && !matches!(c, '.' | ',' | '/' | '-') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// Python's `str.rjust(width, fill)`.
fn right_justify(text: &str, width: usize, fill: char) -> String {
    let len = text.chars().count();
    let mut out: String = std::iter::repeat_n(fill, width.saturating_sub(len)).collect();
    out.push_str(text);
    out
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
    use crate::testing::file;
    use pycov_core::CoverageData;

    fn sample() -> CoverageData {
        let mut data = CoverageData::default();
        let mut add = |path: &str, statements: &[u32], executed: &[u32]| {
            data.insert(path.to_owned(), file(statements, executed));
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
