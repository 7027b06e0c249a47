//! Numbers as coverage.py prints them: percentages, Python float reprs,
//! missing-line ranges, natural sort keys.

use std::cmp::Ordering;

use pycov_core::{Counts, LineSet};

/// The covered percentage (100 when there is nothing to cover).
pub fn percent(counts: &Counts) -> f64 {
    if counts.statements == 0 {
        100.0
    } else {
        100.0 * counts.executed as f64 / counts.statements as f64
    }
}

/// coverage.py's `display_covered`: `precision` digits, but never "0" or
/// "100" unless exactly so. Rust's `{:.N}` rounds half-to-even on the binary
/// value, as Python's `round` + `format` do.
pub fn display_percent(pc: f64, precision: usize) -> String {
    let near0 = 1.0 / 10f64.powi(precision as i32);
    let pc = if 0.0 < pc && pc < near0 {
        near0
    } else if (100.0 - near0) < pc && pc < 100.0 {
        100.0 - near0
    } else {
        pc
    };
    format!("{pc:.precision$}")
}

/// Python's `round(x, digits)`.
pub fn python_round(x: f64, digits: usize) -> f64 {
    format!("{x:.digits$}").parse().unwrap_or(x)
}

/// coverage.py's `should_fail_under` and its message: `Some(message)` when
/// `total` is below `fail_under` at the shown precision.
pub fn fail_under(total: f64, fail_under: f64, precision: usize) -> Option<String> {
    let digits = fail_under_precision(fail_under, precision);
    let fails = if fail_under == 100.0 {
        total != 100.0
    } else {
        python_round(total, digits) < fail_under
    };
    if !fails {
        return None;
    }
    let shown_total = if fail_under == 100.0 && total != 100.0 {
        display_percent(total, digits)
    } else {
        format!("{:.digits$}", python_round(total, digits))
    };
    Some(format!(
        "total of {shown_total} is less than fail-under={fail_under:.digits$}"
    ))
}

/// At least as many digits as the threshold itself has.
fn fail_under_precision(fail_under: f64, precision: usize) -> usize {
    if fail_under.fract() == 0.0 {
        return precision;
    }
    let repr = python_float_repr(fail_under);
    let decimals = repr.split_once('.').map_or(0, |(_, frac)| frac.len());
    precision.max(decimals)
}

/// Python's `repr(float)`: the shortest string that round-trips, in fixed
/// notation for exponents from -4 to 15, else scientific (`1e-05`).
pub fn python_float_repr(x: f64) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    if x == 0.0 {
        return if x.is_sign_negative() {
            "-0.0".into()
        } else {
            "0.0".into()
        };
    }
    // `{:e}` gives the shortest round-trip digits: "6.666666666666667e1".
    let sci = format!("{x:e}");
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if negative { "-" } else { "" };
    if (-4..16).contains(&exponent) {
        let point = exponent + 1;
        let text = if point <= 0 {
            format!("0.{}{}", "0".repeat((-point) as usize), digits)
        } else if point as usize >= digits.len() {
            format!("{}{}.0", digits, "0".repeat(point as usize - digits.len()))
        } else {
            format!(
                "{}.{}",
                &digits[..point as usize],
                &digits[point as usize..]
            )
        };
        format!("{sign}{text}")
    } else {
        let mantissa = if digits.len() > 1 {
            format!("{}.{}", &digits[..1], &digits[1..])
        } else {
            digits
        };
        let exp_sign = if exponent < 0 { '-' } else { '+' };
        format!("{sign}{mantissa}e{exp_sign}{:02}", exponent.abs())
    }
}

/// coverage.py's `format_lines`: missing statements as ranges, where a range
/// runs over consecutive *statements* (blank lines between do not break it):
/// `1-2, 5-11, 13-14`.
pub fn format_missing(statements: &LineSet, missing: &LineSet) -> String {
    let mut pieces = Vec::new();
    let mut range: Option<(u32, u32)> = None;
    for statement in statements.iter() {
        if missing.contains(statement) {
            let line = statement.get();
            range = Some(range.map_or((line, line), |(start, _)| (start, line)));
        } else if let Some(done) = range.take() {
            pieces.push(done);
        }
    }
    pieces.extend(range);
    pieces
        .iter()
        .map(|&(start, end)| {
            if start == end {
                start.to_string()
            } else {
                format!("{start}-{end}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// coverage.py's `human_sorted`: digit runs compare as numbers, then the
/// whole string breaks ties.
pub fn human_cmp(a: &str, b: &str) -> Ordering {
    let (ka, kb) = (human_chunks(a), human_chunks(b));
    for (x, y) in ka.iter().zip(&kb) {
        let ord = match (x, y) {
            (Chunk::Number(x), Chunk::Number(y)) => compare_digits(x, y),
            (Chunk::Text(x), Chunk::Text(y)) => x.cmp(y),
            (Chunk::Number(_), Chunk::Text(_)) => Ordering::Less,
            (Chunk::Text(_), Chunk::Number(_)) => Ordering::Greater,
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    ka.len().cmp(&kb.len()).then_with(|| a.cmp(b))
}

#[derive(Debug)]
enum Chunk<'a> {
    Text(&'a str),
    /// A run of ASCII digits, compared by value (of any length).
    Number(&'a str),
}

/// Two digit runs compared as the integers they spell.
fn compare_digits(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// `re.split(r"(\d+)", s)` with the numbers parsed: always text, number,
/// text, ... (text possibly empty).
fn human_chunks(s: &str) -> Vec<Chunk<'_>> {
    let mut chunks = Vec::new();
    let mut start = 0;
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() {
            chunks.push(Chunk::Text(&s[start..i]));
            let digits_start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            chunks.push(Chunk::Number(&s[digits_start..i]));
            start = i;
        } else {
            i += 1;
        }
    }
    chunks.push(Chunk::Text(&s[start..]));
    chunks
}

/// coverage.py's `neutralize_control`: characters Python does not call
/// printable become `?`: controls, separators other than the space, format
/// characters (bidirectional overrides, zero-width ones), private-use and
/// noncharacters. What is left is safe in XML 1.0, LCOV and a terminal.
pub fn neutralize_control(text: &str) -> String {
    if !text.chars().any(is_unprintable) {
        return text.to_owned();
    }
    text.chars()
        .map(|c| if is_unprintable(c) { '?' } else { c })
        .collect()
}

fn is_unprintable(c: char) -> bool {
    let code = c as u32;
    c.is_control()
        || (c.is_whitespace() && c != ' ')
        || is_format_character(code)
        || matches!(code, 0xE000..=0xF8FF | 0xF0000..=0x10FFFF)
        || matches!(code, 0xFDD0..=0xFDEF)
        || code & 0xFFFE == 0xFFFE
}

/// Unicode's format characters (general category Cf).
fn is_format_character(code: u32) -> bool {
    matches!(
        code,
        0xAD | 0x600..=0x605
            | 0x61C
            | 0x6DD
            | 0x70F
            | 0x890..=0x891
            | 0x8E2
            | 0x180E
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x2064
            | 0x2066..=0x206F
            | 0xFEFF
            | 0xFFF9..=0xFFFB
            | 0x110BD
            | 0x110CD
            | 0x13430..=0x1343F
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0001
            | 0xE0020..=0xE007F
    )
}

/// Appends the decimal digits of `n` (reports write millions of numbers).
pub fn push_uint(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &digit in &digits[start..] {
        out.push(char::from(digit));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::lines;

    #[test]
    fn percentages_never_round_to_0_or_100() {
        assert_eq!(display_percent(99.6, 0), "99");
        assert_eq!(display_percent(0.4, 0), "1");
        assert_eq!(display_percent(100.0, 0), "100");
        assert_eq!(display_percent(0.0, 2), "0.00");
        assert_eq!(display_percent(12.5, 0), "12");
        assert_eq!(display_percent(13.5, 0), "14");
        assert_eq!(display_percent(2.675, 2), "2.67");
        assert_eq!(display_percent(200.0 / 3.0, 1), "66.7");
    }

    #[test]
    fn float_repr_matches_python() {
        for (x, expected) in [
            (100.0, "100.0"),
            (200.0 / 3.0, "66.66666666666667"),
            (50.0, "50.0"),
            (5e-05, "5e-05"),
            (0.0001, "0.0001"),
            (1e16, "1e+16"),
            (1234567.5, "1234567.5"),
            (0.1 + 0.2, "0.30000000000000004"),
        ] {
            assert_eq!(python_float_repr(x), expected);
        }
    }

    #[test]
    fn fail_under_uses_the_shown_precision() {
        assert_eq!(
            fail_under(56.0, 90.0, 0),
            Some("total of 56 is less than fail-under=90".into())
        );
        assert_eq!(fail_under(89.6, 90.0, 0), None);
        assert_eq!(
            fail_under(89.4, 90.0, 0),
            Some("total of 89 is less than fail-under=90".into())
        );
        assert_eq!(
            fail_under(89.94, 89.95, 0),
            Some("total of 89.94 is less than fail-under=89.95".into())
        );
        assert_eq!(
            fail_under(99.99, 100.0, 0),
            Some("total of 99 is less than fail-under=100".into())
        );
        assert_eq!(fail_under(100.0, 100.0, 0), None);
    }

    #[test]
    fn missing_ranges_span_non_statement_lines() {
        let statements = lines(&[1, 2, 3, 4, 5, 10, 11, 12, 13, 14]);
        let missing = lines(&[1, 2, 5, 10, 11, 13, 14]);
        assert_eq!(format_missing(&statements, &missing), "1-2, 5-11, 13-14");
        assert_eq!(format_missing(&statements, &lines(&[3])), "3");
        assert_eq!(format_missing(&statements, &LineSet::new()), "");
    }

    #[test]
    fn human_sorting() {
        let mut names = vec!["z10.py", "z2.py", "a.py", "z2a.py", "Z1.py", "z02.py"];
        names.sort_by(|a, b| human_cmp(a, b));
        assert_eq!(
            names,
            vec!["Z1.py", "a.py", "z02.py", "z2.py", "z2a.py", "z10.py"]
        );
        let long = "9".repeat(60);
        assert_eq!(
            human_cmp(&format!("a{long}"), &format!("a1{long}")),
            Ordering::Less
        );
    }

    #[test]
    fn control_characters_are_neutralized() {
        assert_eq!(neutralize_control("a\x1b[31mb\tc"), "a?[31mb?c");
        assert_eq!(neutralize_control("é.py"), "é.py");
        assert_eq!(
            neutralize_control("a\u{202e}b\u{200b}c\u{e000}d\u{fffe}e\u{2028}f"),
            "a?b?c?d?e?f"
        );
    }

    #[test]
    fn integers_as_decimal() {
        for n in [0u64, 7, 10, 1234567890, u64::MAX] {
            let mut out = String::from("x");
            push_uint(&mut out, n);
            assert_eq!(out, format!("x{n}"));
        }
    }
}
