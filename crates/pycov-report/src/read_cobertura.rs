//! Reading Cobertura XML (from pycov, coverage.py or any other tool) into
//! the coverage model, for merging.
//!
//! Only what line coverage needs is read: the `<source>` roots and, per
//! `<class filename="...">`, its `<line number=".." hits=".."/>` records
//! (those under `<methods>` repeat them and are skipped). A class file name
//! is taken from the first source root under which it exists, else from the
//! first root, else from `base`.
//!
//! The scanner knows XML's five predefined entities and character
//! references, nothing else: a DOCTYPE with an internal subset (where entity
//! declarations live, and with them "billion laughs" expansion) is refused,
//! and so is any other entity reference. Nothing is ever expanded.

use std::collections::BTreeMap;
use std::path::Path;

use pycov_core::select::lexical_join;
use pycov_core::{CoverageData, DataMeta, FileCoverage};

use crate::{parse_count, parse_line, LineBudget};

/// Why a Cobertura file cannot be read; `line` is 1-based.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("line {line}: {problem}")]
pub struct CoberturaError {
    /// The XML line.
    pub line: usize,
    /// What is wrong.
    pub problem: String,
}

/// Whether `text` looks like XML (so possibly Cobertura).
pub fn looks_like_xml(text: &str) -> bool {
    text.trim_start_matches('\u{feff}')
        .trim_start()
        .starts_with('<')
}

enum Token<'a> {
    Open {
        name: &'a str,
        attributes: &'a str,
        empty: bool,
    },
    Close(&'a str),
    Text(&'a str),
}

struct Scanner<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Scanner<'a> {
    fn error(&self, at: usize, problem: impl Into<String>) -> CoberturaError {
        CoberturaError {
            line: self.text[..at.min(self.text.len())].matches('\n').count() + 1,
            problem: problem.into(),
        }
    }

    /// The end (exclusive) of what starts at `from` and ends with `end`.
    fn through(&self, from: usize, end: &str, what: &str) -> Result<usize, CoberturaError> {
        self.text[from..]
            .find(end)
            .map(|i| from + i + end.len())
            .ok_or_else(|| self.error(from, format!("unterminated {what}")))
    }

    fn next(&mut self) -> Result<Option<Token<'a>>, CoberturaError> {
        loop {
            let rest = &self.text[self.pos..];
            if rest.is_empty() {
                return Ok(None);
            }
            let start = self.pos;
            if !rest.starts_with('<') {
                let end = rest.find('<').map_or(self.text.len(), |i| start + i);
                self.pos = end;
                return Ok(Some(Token::Text(&self.text[start..end])));
            }
            if rest.starts_with("<!--") {
                self.pos = self.through(start, "-->", "comment")?;
            } else if rest.starts_with("<?") {
                self.pos = self.through(start, "?>", "processing instruction")?;
            } else if rest.starts_with("<![CDATA[") {
                let end = self.through(start, "]]>", "CDATA section")?;
                self.pos = end;
                return Ok(Some(Token::Text(&self.text[start + 9..end - 3])));
            } else if rest.starts_with("<!DOCTYPE") {
                let end = self.through(start, ">", "DOCTYPE")?;
                if self.text[start..end].contains('[') {
                    return Err(self.error(
                        start,
                        "a DOCTYPE with an internal subset (entity declarations) is not accepted",
                    ));
                }
                self.pos = end;
            } else if rest.starts_with("<!") {
                return Err(self.error(start, "unexpected markup declaration"));
            } else if let Some(close) = rest.strip_prefix("</") {
                let end = close
                    .find('>')
                    .ok_or_else(|| self.error(start, "unterminated end tag"))?;
                self.pos = start + 2 + end + 1;
                return Ok(Some(Token::Close(close[..end].trim())));
            } else {
                // A start tag ends at the first '>' outside quotes.
                let mut quote = None;
                let mut end = None;
                for (i, c) in rest.char_indices().skip(1) {
                    match (quote, c) {
                        (None, '"' | '\'') => quote = Some(c),
                        (Some(q), c) if c == q => quote = None,
                        (None, '>') => {
                            end = Some(i);
                            break;
                        }
                        (None, '<') => return Err(self.error(start, "'<' inside a tag")),
                        _ => {}
                    }
                }
                let end = end.ok_or_else(|| self.error(start, "unterminated tag"))?;
                let inner = &rest[1..end];
                let (inner, empty) = match inner.strip_suffix('/') {
                    Some(inner) => (inner, true),
                    None => (inner, false),
                };
                let name_end = inner
                    .find(|c: char| c.is_whitespace())
                    .unwrap_or(inner.len());
                self.pos = start + end + 1;
                return Ok(Some(Token::Open {
                    name: &inner[..name_end],
                    attributes: &inner[name_end..],
                    empty,
                }));
            }
        }
    }
}

/// Replaces XML's predefined entities and character references; anything
/// else is an error.
fn unescape(raw: &str) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let semi = after
            .find(';')
            .ok_or_else(|| "an '&' without ';'".to_string())?;
        let name = &after[..semi];
        let decoded = match name {
            "lt" => '<',
            "gt" => '>',
            "amp" => '&',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let number = if let Some(hex) = name.strip_prefix("#x") {
                    u32::from_str_radix(hex, 16).ok()
                } else if let Some(dec) = name.strip_prefix('#') {
                    dec.parse().ok()
                } else {
                    return Err(format!("unknown entity &{name}; (only XML's own are read)"));
                };
                number
                    .and_then(char::from_u32)
                    .ok_or_else(|| format!("bad character reference &{name};"))?
            }
        };
        out.push(decoded);
        rest = &after[semi + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The attributes of a start tag, unescaped.
fn attributes(raw: &str) -> Result<Vec<(&str, String)>, String> {
    let mut found = Vec::new();
    let mut rest = raw.trim_start();
    while !rest.is_empty() {
        let eq = rest
            .find('=')
            .ok_or_else(|| format!("attribute without a value: {rest:?}"))?;
        let name = rest[..eq].trim();
        let value = rest[eq + 1..].trim_start();
        let quote = value
            .chars()
            .next()
            .filter(|c| *c == '"' || *c == '\'')
            .ok_or_else(|| format!("attribute {name} is not quoted"))?;
        let close = value[1..]
            .find(quote)
            .ok_or_else(|| format!("attribute {name} is not closed"))?;
        found.push((name, unescape(&value[1..1 + close])?));
        rest = value[1 + close + 1..].trim_start();
    }
    Ok(found)
}

/// Reads a Cobertura report. Classes naming the same file are unioned.
pub fn read_cobertura(text: &str, base: &Path) -> Result<CoverageData, CoberturaError> {
    let text = text.trim_start_matches('\u{feff}');
    let mut scanner = Scanner { text, pos: 0 };
    let mut sources: Vec<String> = Vec::new();
    let mut classes: BTreeMap<String, FileCoverage> = BTreeMap::new();
    let mut current_class: Option<String> = None;
    let mut stack: Vec<&str> = Vec::new();
    let (mut open_methods, mut open_classes) = (0usize, 0usize);
    let mut budget = LineBudget::for_input(text.len());
    let mut saw_root = false;
    let mut source_text: Option<String> = None;
    loop {
        let at = scanner.pos;
        let Some(token) = scanner.next()? else {
            break;
        };
        let fail = |problem: String| scanner.error(at, problem);
        match token {
            Token::Open {
                name,
                attributes: raw,
                empty,
            } => {
                if stack.is_empty() {
                    if saw_root || name != "coverage" {
                        return Err(fail(format!(
                            "the root element is <{name}>, not Cobertura's <coverage>"
                        )));
                    }
                    saw_root = true;
                }
                let attrs = attributes(raw).map_err(&fail)?;
                let get = |key: &str| attrs.iter().find(|(k, _)| *k == key).map(|(_, v)| v);
                let in_method = open_methods > 0;
                match name {
                    "source" if !empty => source_text = Some(String::new()),
                    "class" => {
                        let file = get("filename")
                            .filter(|f| !f.is_empty())
                            .ok_or_else(|| fail("a <class> without filename".into()))?;
                        classes.entry(file.clone()).or_default();
                        current_class = Some(file.clone());
                    }
                    "line" if !in_method && stack.last() == Some(&"lines") => {
                        let Some(file) = current_class
                            .as_ref()
                            .filter(|_| open_classes > 0)
                            .and_then(|name| classes.get_mut(name))
                        else {
                            return Err(fail("a <line> outside a <class>".into()));
                        };
                        let number = get("number").map(String::as_str).unwrap_or("");
                        let line = parse_line(number).map_err(&fail)?;
                        let hits = get("hits").map(String::as_str).unwrap_or("");
                        let ran = parse_count(hits)
                            .ok_or_else(|| fail(format!("hits {hits:?} is not a number")))?
                            > 0;
                        budget.insert(&mut file.statements, line).map_err(&fail)?;
                        if ran {
                            budget.insert(&mut file.executed, line).map_err(&fail)?;
                        }
                    }
                    _ => {}
                }
                if !empty {
                    stack.push(name);
                    match name {
                        "method" => open_methods += 1,
                        "class" => open_classes += 1,
                        _ => {}
                    }
                }
            }
            Token::Close(name) => {
                if stack.pop() != Some(name) {
                    return Err(fail(format!("</{name}> does not close the open element")));
                }
                match name {
                    "method" => open_methods -= 1,
                    "class" => open_classes -= 1,
                    _ => {}
                }
                if name == "source" {
                    if let Some(root) = source_text.take() {
                        let root = root.trim().to_owned();
                        if !root.is_empty() {
                            sources.push(root);
                        }
                    }
                }
            }
            Token::Text(raw) => {
                let value = unescape(raw).map_err(&fail)?;
                if let Some(root) = source_text.as_mut() {
                    root.push_str(&value);
                } else if !value.trim().is_empty() && stack.is_empty() {
                    return Err(fail("text outside the root element".into()));
                }
            }
        }
    }
    if !saw_root {
        return Err(scanner.error(0, "no <coverage> element: not Cobertura XML"));
    }
    if let Some(open) = stack.last() {
        return Err(scanner.error(text.len(), format!("<{open}> is not closed")));
    }
    let roots: Vec<std::path::PathBuf> = sources
        .iter()
        .map(|root| lexical_join(base, Path::new(root)))
        .collect();
    let mut data = CoverageData::new(DataMeta {
        producer: "Cobertura".into(),
        python: String::new(),
    });
    for (name, file) in classes {
        let name = Path::new(&name);
        let path = roots
            .iter()
            .map(|root| lexical_join(root, name))
            .find(|candidate| candidate.exists())
            .or_else(|| roots.first().map(|root| lexical_join(root, name)))
            .unwrap_or_else(|| lexical_join(base, name));
        data.union_lines(path.to_string_lossy().into_owned(), file);
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report_files;
    use crate::testing::{assert_same_lines, lines, numbers};
    use crate::xml::{write_xml, XmlOptions};

    #[test]
    fn coverage_pys_xml_reads_as_its_lines() {
        let text = include_str!("../testdata/coveragepy-7.17.4-nobranch.xml");
        let data = read_cobertura(text, Path::new("/elsewhere")).expect("read");
        assert!(data.totals().statements > 0);
        for (path, file) in data.files() {
            assert!(path.starts_with("/home/user/sample/"), "{path}");
            assert!(file.executed.iter().all(|l| file.statements.contains(l)));
        }
        let lines_valid = text
            .split("lines-valid=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .and_then(|n| n.parse::<usize>().ok());
        assert_eq!(Some(data.totals().statements), lines_valid);
    }

    #[test]
    fn what_pycov_writes_reads_back_the_same() {
        let mut data = CoverageData::default();
        data.insert(
            "/proj/pkg/a&<b>\"c'.py".into(),
            FileCoverage {
                statements: lines(&[1, 2, 3, 10, 4000]),
                executed: lines(&[1, 3, 4000]),
                ..FileCoverage::default()
            },
        );
        data.insert(
            "/proj/b.py".into(),
            FileCoverage {
                statements: lines(&[1]),
                ..FileCoverage::default()
            },
        );
        let options = XmlOptions {
            version: "0".into(),
            timestamp_ms: 0,
            source_roots: vec!["/proj".into()],
            base_dir: "/proj".into(),
            ..XmlOptions::default()
        };
        let mut out = Vec::new();
        write_xml(&report_files(&data, "/proj"), &options, &mut out).expect("write");
        let text = String::from_utf8(out).expect("utf-8");
        let back = read_cobertura(&text, Path::new("/other")).expect("read");
        assert_eq!(back.len(), data.len());
        assert_same_lines(&data, &back);
    }

    #[test]
    fn entity_declarations_and_unknown_entities_are_refused() {
        let bomb = "<?xml version=\"1.0\"?>\n<!DOCTYPE coverage [<!ENTITY a \"aaaa\"><!ENTITY b \"&a;&a;\">]>\n\
                    <coverage><sources><source>&b;</source></sources></coverage>";
        let err = read_cobertura(bomb, Path::new("/")).expect_err("bomb");
        assert_eq!(err.line, 2);
        assert!(err.problem.contains("internal subset"), "{err}");
        let unknown = "<coverage><sources><source>&b;</source></sources></coverage>";
        assert!(read_cobertura(unknown, Path::new("/"))
            .expect_err("entity")
            .problem
            .contains("&b;"));
        // An external DTD reference, as Java tools write, is fine.
        let java =
            "<!DOCTYPE coverage SYSTEM \"http://cobertura.sourceforge.net/xml/coverage-04.dtd\">\n\
                    <coverage><packages><package><classes><class filename=\"a.py\"><methods/>\
                    <lines><line number=\"2\" hits=\"3\"/></lines></class></classes></package>\
                    </packages></coverage>";
        let data = read_cobertura(java, Path::new("/p")).expect("java");
        let a = data.get("/p/a.py").expect("a");
        assert_eq!(
            (numbers(&a.statements), numbers(&a.executed)),
            (vec![2], vec![2])
        );
    }

    #[test]
    fn bad_documents_are_errors_with_their_line() {
        let cases = [
            "<report/>",
            "<coverage><class filename=\"a.py\"><lines><line number=\"4000000000\" hits=\"1\"/></lines></class></coverage>",
            "<coverage><class filename=\"a.py\"><lines><line number=\"3\" hits=\"x\"/></lines></class></coverage>",
            "<coverage><class><lines/></class></coverage>",
            "<coverage><class filename=\"a.py\"></coverage>",
            "<coverage><sources>",
            "<coverage a=b/>",
            "not xml",
        ];
        for case in cases {
            assert!(read_cobertura(case, Path::new("/")).is_err(), "{case}");
        }
        let big = read_cobertura(cases[1], Path::new("/")).expect_err("big");
        assert!(big.problem.contains("4000000000"), "{big}");
        let classes: String = (0..2000)
            .map(|i| format!("<class filename=\"f{i}.py\"><lines><line number=\"16000000\" hits=\"1\"/></lines></class>"))
            .collect();
        let hostile = format!("<coverage>{classes}</coverage>");
        let err = read_cobertura(&hostile, Path::new("/")).expect_err("memory");
        assert!(err.problem.contains("more memory"), "{err}");
        // Deep nesting is linear, not quadratic.
        let deep = format!(
            "<coverage>{}{}</coverage>",
            "<a>".repeat(100_000),
            "</a>".repeat(100_000)
        );
        assert!(read_cobertura(&deep, Path::new("/")).is_ok());
    }
}
