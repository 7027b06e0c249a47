//! Reading source text the way coverage.py does (`python.get_python_source`).

use std::borrow::Cow;

/// What [`decode_source`] could not do by itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decoded {
    /// The text, ready for [`crate::analyze`].
    Text(String),
    /// The file declares this (non-UTF-8) encoding; decode with the
    /// interpreter's codec, then call [`finish_text`].
    Foreign(String),
}

/// Normalises newlines (`\r\n`, `\r` to `\n`) and form feeds (to spaces),
/// as coverage.py does on the raw bytes before decoding.
pub fn normalize_bytes(bytes: &[u8]) -> Cow<'_, [u8]> {
    if !bytes.iter().any(|&b| b == b'\r' || b == b'\x0c') {
        return Cow::Borrowed(bytes);
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\r' => {
                out.push(b'\n');
                if bytes.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
            }
            b'\x0c' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    Cow::Owned(out)
}

/// Decodes normalised source bytes: UTF-8 (with or without a BOM, invalid
/// sequences replaced), unless a PEP 263 coding cookie names another
/// encoding.
pub fn decode_source(bytes: &[u8]) -> Decoded {
    if let Some(rest) = bytes.strip_prefix(b"\xef\xbb\xbf") {
        return Decoded::Text(finish_text(String::from_utf8_lossy(rest).into_owned()));
    }
    match coding_cookie(bytes) {
        Some(encoding) if !is_utf8_name(&encoding) => Decoded::Foreign(encoding),
        _ => Decoded::Text(finish_text(String::from_utf8_lossy(bytes).into_owned())),
    }
}

/// Ensures decoded text ends with a newline, as coverage.py does.
pub fn finish_text(mut text: String) -> String {
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text
}

fn is_utf8_name(encoding: &str) -> bool {
    let normal = encoding.to_ascii_lowercase().replace('_', "-");
    normal == "utf-8" || normal == "utf8" || normal.starts_with("utf-8-")
}

/// The encoding named by a coding cookie in the first two lines
/// (`tokenize.detect_encoding`: the second line counts only if the first is
/// blank or a comment).
pub fn coding_cookie(bytes: &[u8]) -> Option<String> {
    let mut lines = bytes.split(|&b| b == b'\n');
    let first = lines.next()?;
    if let Some(name) = cookie_in_line(first) {
        return Some(name);
    }
    let first_trimmed: Vec<u8> = first
        .iter()
        .copied()
        .skip_while(|b| matches!(b, b' ' | b'\t' | b'\x0c'))
        .collect();
    if !(first_trimmed.is_empty() || first_trimmed[0] == b'#') {
        return None;
    }
    cookie_in_line(lines.next()?)
}

/// `^[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)`
fn cookie_in_line(line: &[u8]) -> Option<String> {
    let line = std::str::from_utf8(line).ok()?;
    let comment = line
        .trim_start_matches([' ', '\t', '\x0c'])
        .strip_prefix('#')?;
    let at = comment.find("coding")?;
    let after = &comment[at + "coding".len()..];
    let after = after.strip_prefix([':', '='])?;
    let name: String = after
        .trim_start_matches([' ', '\t'])
        .chars()
        .take_while(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .collect();
    (!name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newlines_and_form_feeds() {
        assert_eq!(&*normalize_bytes(b"a\r\nb\rc\x0cd\n"), b"a\nb\nc d\n");
        assert!(matches!(normalize_bytes(b"plain\n"), Cow::Borrowed(_)));
    }

    #[test]
    fn decoding() {
        assert_eq!(decode_source(b"x = 1"), Decoded::Text("x = 1\n".into()));
        assert_eq!(
            decode_source(b"\xef\xbb\xbfx\n"),
            Decoded::Text("x\n".into())
        );
        assert_eq!(
            decode_source(b"# -*- coding: latin-1 -*-\nx = '\xe9'\n"),
            Decoded::Foreign("latin-1".into())
        );
        assert_eq!(
            decode_source(b"#!/usr/bin/python\n# vim: set fileencoding=utf-8 :\n"),
            Decoded::Text("#!/usr/bin/python\n# vim: set fileencoding=utf-8 :\n".into())
        );
        // A cookie on line 2 after code does not count.
        assert_eq!(coding_cookie(b"x = 1\n# coding: latin-1\n"), None);
        assert_eq!(
            decode_source(b"x = '\xff'\n"),
            Decoded::Text("x = '\u{fffd}'\n".into())
        );
    }
}
