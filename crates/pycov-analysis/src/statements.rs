//! coverage.py 7.17.4's statement model (`parser.PythonParser`), computed
//! from the source text and the raw line numbers of its code objects.
//!
//! coverage.py combines three views of a file; so does this module:
//! - the bytecode's line numbers (`co_lines()` of every code object), which
//!   the caller provides: they must come from the interpreter that ran the
//!   code, because they differ between Python versions;
//! - tokens: multi-line statements (mapped to their first line) and pragma
//!   exclusions that extend over a whole suite;
//! - the statement tree: docstrings, decorators and `def`/`class` spans,
//!   irrefutable `case` clauses. coverage.py gets these from `ast`; here they
//!   come from the logical lines, which carry the same information.

use pycov_core::{CodeRegion, ExcludeRules, LineNo, LineRanges, LineSet, RegionKind};

use crate::tokenize::{tokenize, Kind, Token, TokenizeError};

/// The source could not be analysed.
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    /// Not Python at the token level (coverage.py's `NotPython`).
    #[error(transparent)]
    Tokenize(#[from] TokenizeError),
    /// The exclusion regexes could not finish on this text.
    #[error(transparent)]
    Exclusion(#[from] pycov_core::ExcludeMatchError),
}

/// The result of analysing one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceAnalysis {
    /// Executable statements, by first line.
    pub statements: LineSet,
    /// Excluded lines, by first line.
    pub excluded: LineSet,
    /// Multi-line statements as inclusive `(first, last)` line ranges, sorted.
    multiline: Vec<(u32, u32)>,
    /// Number of lines, as Python's `str.splitlines()` counts them.
    pub line_count: u32,
    /// Functions and classes, in source order (coverage.py's `code_regions`).
    pub regions: Vec<CodeRegion>,
}

impl SourceAnalysis {
    /// Serialises the analysis (for a cache); [`SourceAnalysis::decode`]
    /// reads it back.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.statements.encode_into(&mut out);
        self.excluded.encode_into(&mut out);
        out.extend_from_slice(&(self.multiline.len() as u32).to_le_bytes());
        for (first, last) in &self.multiline {
            out.extend_from_slice(&first.to_le_bytes());
            out.extend_from_slice(&last.to_le_bytes());
        }
        out.extend_from_slice(&self.line_count.to_le_bytes());
        out.extend_from_slice(&(self.regions.len() as u32).to_le_bytes());
        for region in &self.regions {
            out.push(u8::from(region.kind == RegionKind::Class));
            out.extend_from_slice(&(region.name.len() as u32).to_le_bytes());
            out.extend_from_slice(region.name.as_bytes());
            out.extend_from_slice(&region.start.get().to_le_bytes());
            out.extend_from_slice(&(region.lines.ranges().len() as u32).to_le_bytes());
            for (first, last) in region.lines.ranges() {
                out.extend_from_slice(&first.get().to_le_bytes());
                out.extend_from_slice(&last.get().to_le_bytes());
            }
        }
        out
    }

    /// Reads what [`SourceAnalysis::encode`] wrote; `None` if malformed.
    pub fn decode(bytes: &[u8]) -> Option<SourceAnalysis> {
        let mut pos = 0usize;
        let statements = LineSet::decode_from(bytes, &mut pos).ok()?;
        let excluded = LineSet::decode_from(bytes, &mut pos).ok()?;
        let u32_at = |pos: &mut usize| -> Option<u32> {
            let raw = bytes.get(*pos..*pos + 4)?;
            *pos += 4;
            Some(u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]))
        };
        let ranges = u32_at(&mut pos)? as usize;
        if ranges > bytes.len() / 8 {
            return None;
        }
        let mut multiline = Vec::with_capacity(ranges);
        for _ in 0..ranges {
            multiline.push((u32_at(&mut pos)?, u32_at(&mut pos)?));
        }
        if multiline.windows(2).any(|w| w[0].1 >= w[1].0) {
            return None;
        }
        let line_count = u32_at(&mut pos)?;
        let count = u32_at(&mut pos)? as usize;
        let mut regions = Vec::with_capacity(count.min(bytes.len() / 13));
        for _ in 0..count {
            let kind = match *bytes.get(pos)? {
                0 => RegionKind::Function,
                1 => RegionKind::Class,
                _ => return None,
            };
            pos += 1;
            let name_len = u32_at(&mut pos)? as usize;
            let name = std::str::from_utf8(bytes.get(pos..pos.checked_add(name_len)?)?)
                .ok()?
                .to_owned();
            pos += name_len;
            let start = LineNo::new(u32_at(&mut pos)?)?;
            let pairs = u32_at(&mut pos)? as usize;
            let mut lines = Vec::with_capacity(pairs.min(bytes.len() / 8));
            for _ in 0..pairs {
                lines.push((
                    LineNo::new(u32_at(&mut pos)?)?,
                    LineNo::new(u32_at(&mut pos)?)?,
                ));
            }
            regions.push(CodeRegion {
                kind,
                name,
                start,
                lines: LineRanges::from_pairs(lines)?,
            });
        }
        if pos != bytes.len() {
            return None;
        }
        Some(SourceAnalysis {
            statements,
            excluded,
            multiline,
            line_count,
            regions,
        })
    }

    /// The first line of the statement that contains `line`.
    pub fn first_line(&self, line: LineNo) -> LineNo {
        let n = line.get();
        let index = self.multiline.partition_point(|&(first, _)| first <= n);
        match index.checked_sub(1).map(|i| self.multiline[i]) {
            Some((first, last)) if n <= last => LineNo::new(first).unwrap_or(line),
            _ => line,
        }
    }

    /// Maps every line to its statement's first line.
    pub fn first_lines(&self, lines: &LineSet) -> LineSet {
        if self.multiline.is_empty() {
            return lines.clone();
        }
        lines.iter().map(|l| self.first_line(l)).collect()
    }

    /// Turns the raw lines a tracer saw into executed statements, as
    /// coverage.py's `translate_lines(...) & statements`.
    pub fn executed(&self, raw_executed: &LineSet) -> LineSet {
        let mut executed = self.first_lines(raw_executed);
        executed.intersect_with(&self.statements);
        executed
    }
}

/// Analyses `text` (newlines normalised to `\n`, form feeds to spaces, as
/// coverage.py reads sources). `code_lines` are the line numbers of every
/// code object compiled from it (see [`crate::linetable`]); `exclude` the
/// exclusion regexes.
pub fn analyze(
    text: &str,
    code_lines: &LineSet,
    exclude: &ExcludeRules,
) -> Result<SourceAnalysis, AnalysisError> {
    let tokens = tokenize(text)?;
    let multiline = multiline_ranges(&tokens);
    let mut analysis = SourceAnalysis {
        statements: LineSet::new(),
        excluded: LineSet::new(),
        multiline,
        line_count: count_lines(text),
        regions: Vec::new(),
    };

    // `lines_matching` runs before the multi-line map exists, so the regex
    // matches are not mapped to first lines here (they are below).
    let mut excluded = lines_matching(text, exclude)?;
    let empty = exclude_suites(&tokens, &mut excluded);
    let raw_statements = if empty {
        LineSet::new()
    } else {
        code_lines.clone()
    };
    analysis.excluded = analysis.first_lines(&excluded);

    let tree = LogicalLines::new(&tokens);
    let docstrings = tree.apply_tree_rules(&raw_statements, &mut analysis.excluded);
    analysis.regions = tree.regions();

    let mut ignore = analysis.excluded.clone();
    ignore.union_with(&docstrings);
    let starts = raw_statements.difference(&ignore);
    let mut statements = analysis.first_lines(&starts);
    statements.subtract(&ignore);
    analysis.statements = statements;
    Ok(analysis)
}

/// `len(text.splitlines())`: `\n` (`\r` is already normalised away) and
/// the other separators Python's `str.splitlines` knows end lines too.
fn count_lines(text: &str) -> u32 {
    let breaks = text
        .chars()
        .filter(|c| {
            matches!(
                c,
                '\n' | '\x0b'
                    | '\x0c'
                    | '\x1c'
                    | '\x1d'
                    | '\x1e'
                    | '\u{85}'
                    | '\u{2028}'
                    | '\u{2029}'
            )
        })
        .count();
    let unterminated = !text.is_empty()
        && !text.ends_with([
            '\n', '\x0b', '\x0c', '\x1c', '\x1d', '\x1e', '\u{85}', '\u{2028}', '\u{2029}',
        ]);
    u32::try_from(breaks + usize::from(unterminated)).unwrap_or(u32::MAX)
}

fn line(n: u32) -> Option<LineNo> {
    LineNo::new(n)
}

fn insert_range(set: &mut LineSet, first: u32, last: u32) {
    set.extend((first..=last).filter_map(line));
}

/// `multiline_map_from_tokens`: a statement that ends (its `NEWLINE`) on
/// another line than its first token spans all lines in between.
fn multiline_ranges(tokens: &[Token<'_>]) -> Vec<(u32, u32)> {
    let mut ranges = Vec::new();
    let mut first_line = 0u32;
    for token in tokens {
        if token.kind == Kind::Newline {
            if first_line != 0 && token.end_line != first_line {
                ranges.push((first_line, token.end_line));
            }
            first_line = 0;
        }
        if token.is_significant() && first_line == 0 {
            first_line = token.start_line;
        }
    }
    ranges
}

/// `lines_matching`: every line touched by a match of the exclusion regexes.
fn lines_matching(
    text: &str,
    exclude: &ExcludeRules,
) -> Result<LineSet, pycov_core::ExcludeMatchError> {
    let mut lines = LineSet::new();
    let mut counted_to = 0usize;
    let mut newlines_before = 0u32;
    for (start, end) in exclude.find_matches(text)? {
        newlines_before += count_newlines(&text.as_bytes()[counted_to..start]);
        counted_to = start;
        let end_line = newlines_before + count_newlines(&text.as_bytes()[start..end]);
        insert_range(&mut lines, newlines_before + 1, end_line + 1);
    }
    Ok(lines)
}

fn count_newlines(bytes: &[u8]) -> u32 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u32
}

/// The token pass of `PythonParser._raw_parse`: a `:` at bracket depth 0 on
/// a statement with an excluded line starts an excluded suite, which lasts
/// while statements are indented deeper. Returns whether the file has no
/// code at all.
fn exclude_suites(tokens: &[Token<'_>], excluded: &mut LineSet) -> bool {
    let mut indent = 0i64;
    let mut exclude_indent = 0i64;
    let mut excluding = false;
    let mut first_line = 0u32;
    let mut empty = true;
    let mut nesting = 0i64;
    for token in tokens {
        match token.kind {
            Kind::Indent => indent += 1,
            Kind::Dedent => indent -= 1,
            Kind::Op => {
                if token.text == ":" && nesting == 0 {
                    let should_exclude = (first_line..=token.end_line)
                        .filter_map(line)
                        .any(|l| excluded.contains(l));
                    if !excluding && should_exclude {
                        excluded.extend(line(token.end_line));
                        exclude_indent = indent;
                        excluding = true;
                    }
                } else if matches!(token.text, "(" | "[" | "{") {
                    nesting += 1;
                } else if matches!(token.text, ")" | "]" | "}") {
                    nesting -= 1;
                }
            }
            Kind::Newline => first_line = 0,
            _ => {}
        }
        if token.is_significant() {
            empty = false;
            if first_line == 0 {
                first_line = token.start_line;
                if excluding && indent <= exclude_indent {
                    excluding = false;
                }
                if excluding {
                    excluded.extend(line(token.end_line));
                }
            }
        }
    }
    empty
}

/// A logical line: its code tokens (no comments or layout) and its depth.
#[derive(Clone, Copy, Debug)]
struct Logical {
    start: usize,
    end: usize,
    depth: usize,
}

/// The file as a sequence of logical lines, which is all the statement tree
/// coverage.py's `ast` rules need: a compound statement's body is either on
/// its own line after the header's `:` or the deeper lines that follow.
struct LogicalLines<'t, 'a> {
    tokens: Vec<&'t Token<'a>>,
    lines: Vec<Logical>,
}

impl<'t, 'a> LogicalLines<'t, 'a> {
    fn new(all: &'t [Token<'a>]) -> LogicalLines<'t, 'a> {
        let mut tokens = Vec::new();
        let mut lines = Vec::new();
        let mut depth = 0usize;
        let mut start = 0usize;
        for token in all {
            match token.kind {
                Kind::Indent => depth += 1,
                Kind::Dedent => depth = depth.saturating_sub(1),
                Kind::Newline => {
                    if tokens.len() > start {
                        lines.push(Logical {
                            start,
                            end: tokens.len(),
                            depth,
                        });
                    }
                    start = tokens.len();
                }
                _ if token.is_significant() => tokens.push(token),
                _ => {}
            }
        }
        LogicalLines { tokens, lines }
    }

    fn toks(&self, line: &Logical) -> &[&'t Token<'a>] {
        &self.tokens[line.start..line.end]
    }

    /// The body of the compound statement at `index`: `Inline(tokens)` after
    /// the header's `:`, or `Block(first, last)` logical-line indices.
    fn body(&self, index: usize) -> Option<Body<'_, 't, 'a>> {
        let header = self.lines[index];
        let toks = self.toks(&header);
        let colon = header_colon(toks)?;
        if colon + 1 < toks.len() {
            return Some(Body::Inline(&toks[colon + 1..]));
        }
        let first = index + 1;
        let mut last = first;
        while self.lines.get(last).is_some_and(|l| l.depth > header.depth) {
            last += 1;
        }
        (last > first).then_some(Body::Block(first, last - 1))
    }

    fn first_token_line(&self, index: usize) -> u32 {
        self.toks(&self.lines[index])[0].start_line
    }

    fn last_token_line(&self, index: usize) -> u32 {
        let toks = self.toks(&self.lines[index]);
        toks[toks.len() - 1].end_line
    }

    fn body_span(&self, body: &Body<'_, 't, 'a>) -> (u32, u32) {
        match body {
            Body::Inline(toks) => (toks[0].start_line, toks[toks.len() - 1].end_line),
            Body::Block(first, last) => {
                (self.first_token_line(*first), self.last_token_line(*last))
            }
        }
    }

    /// The first simple statement of a body, as tokens.
    fn first_statement<'b>(&'b self, body: &Body<'b, 't, 'a>) -> &'b [&'t Token<'a>] {
        let toks = match body {
            Body::Inline(toks) => toks,
            Body::Block(first, _) => self.toks(&self.lines[*first]),
        };
        let end = first_top_level(toks, |t| t.is_op(";")).unwrap_or(toks.len());
        &toks[..end]
    }

    /// Walks the statements in source order (parents before children, as
    /// coverage.py's `walk_statement_nodes`), applying the decorator and
    /// `case` exclusion rules to `excluded`. Returns the docstring lines.
    fn apply_tree_rules(&self, raw_statements: &LineSet, excluded: &mut LineSet) -> LineSet {
        let mut docstrings = LineSet::new();
        if !self.lines.is_empty() {
            let module_first = self.toks(&self.lines[0]);
            let end = first_top_level(module_first, |t| t.is_op(";")).unwrap_or(module_first.len());
            add_docstring(&module_first[..end], &mut docstrings);
        }
        // Open blocks: (depth of the header, whether it is a `match`).
        let mut open: Vec<(usize, bool)> = Vec::new();
        for index in 0..self.lines.len() {
            let logical = self.lines[index];
            while open
                .last()
                .is_some_and(|&(depth, _)| depth >= logical.depth)
            {
                open.pop();
            }
            let in_match = open.last().is_some_and(|&(_, is_match)| is_match);
            let toks = self.toks(&logical);
            let body = self.body(index);
            let is_def = toks[0].is_name("def")
                || toks[0].is_name("class")
                || (toks[0].is_name("async") && toks.get(1).is_some_and(|t| t.is_name("def")));
            if is_def {
                if let Some(body) = &body {
                    self.def_rules(index, body, excluded, &mut docstrings);
                }
            } else if in_match && toks[0].is_name("case") {
                if let Some(body) = &body {
                    self.case_rule(toks, body, raw_statements, excluded);
                }
            }
            if let Some(Body::Block(..)) = body {
                let is_match = toks[0].is_name("match") && toks.len() > 1;
                open.push((logical.depth, is_match));
            }
        }
        docstrings
    }

    /// coverage.py's `RegionFinder`: every function and class with its
    /// qualified name and lines, with the same set operations in the same
    /// order (a function's body lines go to the class directly around it and
    /// come off the nearest enclosing function; a finished class's lines come
    /// off every enclosing class).
    fn regions(&self) -> Vec<CodeRegion> {
        struct Open {
            depth: usize,
            kind: RegionKind,
            name: String,
            index: usize,
        }
        let mut regions: Vec<(RegionKind, String, u32, LineSet)> = Vec::new();
        let mut open: Vec<Open> = Vec::new();
        let close = |open: &mut Vec<Open>,
                     regions: &mut Vec<(RegionKind, String, u32, LineSet)>,
                     depth: usize| {
            while open.last().is_some_and(|o| o.depth >= depth) {
                let Some(done) = open.pop() else { break };
                if done.kind == RegionKind::Class {
                    let lines = regions[done.index].3.clone();
                    for ancestor in open.iter().rev().filter(|a| a.kind == RegionKind::Class) {
                        regions[ancestor.index].3.subtract(&lines);
                    }
                }
            }
        };
        for index in 0..self.lines.len() {
            let logical = self.lines[index];
            close(&mut open, &mut regions, logical.depth);
            let toks = self.toks(&logical);
            let (kind, name_at) = if toks[0].is_name("def") {
                (RegionKind::Function, 1)
            } else if toks[0].is_name("async") && toks.get(1).is_some_and(|t| t.is_name("def")) {
                (RegionKind::Function, 2)
            } else if toks[0].is_name("class") {
                (RegionKind::Class, 1)
            } else {
                continue;
            };
            let (Some(name), Some(body)) = (toks.get(name_at), self.body(index)) else {
                continue;
            };
            let start = toks[0].start_line;
            let mut lines = LineSet::new();
            if kind == RegionKind::Function {
                let (first, last) = self.body_span(&body);
                insert_range(&mut lines, first, last);
                if let Some(parent) = open.last().filter(|o| o.kind == RegionKind::Class) {
                    regions[parent.index].3.union_with(&lines);
                }
                if let Some(function) = open.iter().rev().find(|o| o.kind == RegionKind::Function) {
                    regions[function.index].3.subtract(&lines);
                }
            }
            let qualified = open
                .iter()
                .map(|o| o.name.as_str())
                .chain([name.text])
                .collect::<Vec<_>>()
                .join(".");
            regions.push((kind, qualified, start, lines));
            open.push(Open {
                depth: logical.depth,
                kind,
                name: name.text.to_owned(),
                index: regions.len() - 1,
            });
        }
        close(&mut open, &mut regions, 0);
        regions
            .into_iter()
            .filter_map(|(kind, name, start, lines)| {
                Some(CodeRegion {
                    kind,
                    name,
                    start: line(start)?,
                    lines: LineRanges::from_set(&lines),
                })
            })
            .collect()
    }

    fn def_rules(
        &self,
        index: usize,
        body: &Body<'_, 't, 'a>,
        excluded: &mut LineSet,
        docstrings: &mut LineSet,
    ) {
        let logical = self.lines[index];
        let def_line = self.first_token_line(index);
        let mut first = def_line;
        let mut previous = index;
        while previous > 0 {
            previous -= 1;
            let candidate = self.lines[previous];
            if candidate.depth != logical.depth || !self.toks(&candidate)[0].is_op("@") {
                break;
            }
            first = self.first_token_line(previous);
        }
        let (_, end) = self.body_span(body);
        let hit = (first..=def_line)
            .filter_map(line)
            .any(|l| excluded.contains(l));
        if hit {
            insert_range(excluded, first, end);
        }
        add_docstring(self.first_statement(body), docstrings);
    }

    fn case_rule(
        &self,
        header: &[&'t Token<'a>],
        body: &Body<'_, 't, 'a>,
        raw_statements: &LineSet,
        excluded: &mut LineSet,
    ) {
        let Some(colon) = header_colon(header) else {
            return;
        };
        let pattern_end = first_top_level(&header[..colon], |t| t.is_name("if")).unwrap_or(colon);
        let guarded = pattern_end != colon;
        let pattern = &header[1..pattern_end];
        if guarded || pattern.is_empty() || !is_irrefutable(pattern) {
            return;
        }
        let (body_first, body_last) = self.body_span(body);
        let mut body_statements = LineSet::new();
        for l in (body_first..=body_last).filter_map(line) {
            if raw_statements.contains(l) {
                body_statements.insert(l);
            }
        }
        if !body_statements.is_empty() && body_statements.is_subset(excluded) {
            let first = pattern[0].start_line;
            let last = pattern[pattern.len() - 1].end_line;
            insert_range(excluded, first, last);
        }
    }
}

enum Body<'s, 't, 'a> {
    Inline(&'s [&'t Token<'a>]),
    Block(usize, usize),
}

/// Positions of tokens matching `pred` at bracket depth 0.
fn top_level_positions(toks: &[&Token<'_>], pred: impl Fn(&Token<'_>) -> bool) -> Vec<usize> {
    let mut depth = 0i64;
    let mut found = Vec::new();
    for (i, t) in toks.iter().enumerate() {
        if depth == 0 && pred(t) {
            found.push(i);
        }
        if t.kind == Kind::Op {
            match t.text {
                "(" | "[" | "{" => depth += 1,
                ")" | "]" | "}" => depth -= 1,
                _ => {}
            }
        }
    }
    found
}

/// The first token matching `pred` at bracket depth 0.
fn first_top_level(toks: &[&Token<'_>], pred: impl Fn(&Token<'_>) -> bool) -> Option<usize> {
    top_level_positions(toks, pred).first().copied()
}

/// The `:` that ends a compound statement's header.
fn header_colon(toks: &[&Token<'_>]) -> Option<usize> {
    first_top_level(toks, |t| t.is_op(":"))
}

/// Adds the lines of `statement` if it is a docstring: only string literals
/// (no bytes, no f-strings), optionally in balanced parentheses.
fn add_docstring(statement: &[&Token<'_>], docstrings: &mut LineSet) {
    let opening = statement.iter().take_while(|t| t.is_op("(")).count();
    let closing = statement.iter().rev().take_while(|t| t.is_op(")")).count();
    if opening != closing || statement.len() <= 2 * opening {
        return;
    }
    let strings = &statement[opening..statement.len() - closing];
    let all_plain_strings = strings.iter().all(|t| {
        t.kind == Kind::String && {
            let prefix = t.text.split(['\'', '"']).next().unwrap_or("");
            !prefix.contains(['b', 'B', 'f', 'F', 't', 'T'])
        }
    });
    if all_plain_strings {
        let first = statement[0].start_line;
        let last = statement[statement.len() - 1].end_line;
        insert_range(docstrings, first, last);
    }
}

/// coverage.py's `_case_is_irrefutable` on pattern tokens (guard already
/// ruled out): strip or-patterns to their last alternative, then `as`
/// captures, and see whether a bare name or `_` is left.
fn is_irrefutable(mut pattern: &[&Token<'_>]) -> bool {
    // `while isinstance(pattern, ast.MatchOr): pattern = pattern.patterns[-1]`
    loop {
        let bars = top_level_positions(pattern, |t| t.is_op("|"));
        if let Some(&last_bar) = bars.last() {
            pattern = &pattern[last_bar + 1..];
            continue;
        }
        match unwrap_group(pattern) {
            Some(inner) if first_top_level(inner, |t| t.is_op("|")).is_some() => {
                pattern = inner;
            }
            _ => break,
        }
    }
    // `while isinstance(pattern, ast.MatchAs) and pattern.pattern is not None`
    loop {
        if let Some(inner) = unwrap_group(pattern) {
            if first_top_level(inner, |t| t.is_op("|")).is_some() {
                return false;
            }
            pattern = inner;
            continue;
        }
        let n = pattern.len();
        if n >= 3 && pattern[n - 2].is_name("as") && pattern[n - 1].kind == Kind::Name {
            pattern = &pattern[..n - 2];
            continue;
        }
        break;
    }
    pattern.len() == 1
        && pattern[0].kind == Kind::Name
        && !matches!(pattern[0].text, "None" | "True" | "False")
}

/// `( P )` with `P` a single pattern (not empty, no top-level comma: those
/// are sequence patterns).
fn unwrap_group<'s, 't, 'a>(pattern: &'s [&'t Token<'a>]) -> Option<&'s [&'t Token<'a>]> {
    let n = pattern.len();
    if n < 3 || !pattern[0].is_op("(") || !pattern[n - 1].is_op(")") {
        return None;
    }
    // The opening parenthesis must close at the very end.
    let mut depth = 0i64;
    for (i, t) in pattern.iter().enumerate() {
        if t.kind == Kind::Op {
            match t.text {
                "(" | "[" | "{" => depth += 1,
                ")" | "]" | "}" => depth -= 1,
                _ => {}
            }
        }
        if depth == 0 && i != n - 1 {
            return None;
        }
    }
    let inner = &pattern[1..n - 1];
    if first_top_level(inner, |t| t.is_op(",")).is_some() {
        return None;
    }
    Some(inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ns: &[u32]) -> LineSet {
        ns.iter().filter_map(|&n| LineNo::new(n)).collect()
    }

    fn nums(s: &LineSet) -> Vec<u32> {
        s.iter().map(LineNo::get).collect()
    }

    /// Analyse with `code_lines` standing in for the bytecode's lines.
    fn run(text: &str, code_lines: &[u32]) -> (Vec<u32>, Vec<u32>) {
        let analysis = analyze(text, &set(code_lines), &ExcludeRules::default()).expect("analyses");
        (nums(&analysis.statements), nums(&analysis.excluded))
    }

    #[test]
    fn multiline_statements_map_to_their_first_line() {
        let text = "x = [\n    1,\n    2,\n]\ny = 3\n";
        let analysis = analyze(text, &set(&[1, 2, 3, 5]), &ExcludeRules::default()).expect("ok");
        assert_eq!(nums(&analysis.statements), vec![1, 5]);
        assert_eq!(analysis.first_line(LineNo::new(4).expect("l")).get(), 1);
        assert_eq!(nums(&analysis.executed(&set(&[3, 5, 9]))), vec![1, 5]);
    }

    #[test]
    fn docstrings_are_not_statements() {
        let text = "\"\"\"Module\ndoc.\"\"\"\nclass A:\n    '''Class doc.'''\n    x = 1\ndef f():\n    (\"doc\")\n    return b'x'\n";
        // Lines as CPython 3.12 reports them (module doc at 1, class doc at 4).
        let (statements, _) = run(text, &[1, 3, 4, 5, 6, 7, 8]);
        assert_eq!(statements, vec![3, 5, 6, 8]);
        // Not docstrings: bytes, f-strings, a string that is not first.
        let text = "x = 1\n'not a docstring'\ndef f():\n    b'bytes'\ndef g():\n    f'{x}'\n";
        let (statements, _) = run(text, &[1, 2, 3, 4, 5, 6]);
        assert_eq!(statements, vec![1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn pragma_excludes_a_whole_suite() {
        let text = "if x:  # pragma: no cover\n    a = 1\n    b = 2\nc = 3\n";
        let (statements, excluded) = run(text, &[1, 2, 3, 4]);
        assert_eq!(statements, vec![4]);
        assert_eq!(excluded, vec![1, 2, 3]);
    }

    #[test]
    fn excluded_decorator_excludes_the_function() {
        let text = "@decorate  # pragma: no cover\n@other(\n    1)\ndef f(\n    a):\n    return a\n\nx = 1\n";
        let (statements, excluded) = run(text, &[1, 2, 3, 4, 6, 8]);
        assert_eq!(statements, vec![8]);
        assert_eq!(excluded, vec![1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn ellipsis_bodies_and_type_checking() {
        let text = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import os\ndef f(x) -> int: ...\nclass P:\n    def m(self):\n        ...\n";
        let (statements, excluded) = run(text, &[1, 2, 3, 4, 5, 6, 7]);
        // As in coverage.py (checked against 7.17.4): the `...` regex's `\s*`
        // spans newlines, so `def m(self):` followed by a `...` line is
        // excluded, and the match after the last `...` reaches line 8.
        assert_eq!(statements, vec![1, 5]);
        assert_eq!(excluded, vec![2, 3, 4, 6, 7, 8]);
    }

    #[test]
    fn irrefutable_case_with_excluded_body() {
        let text = "match x:\n    case 1:\n        a()\n    case _:  \n        raise E  # pragma: no cover\n";
        let (statements, excluded) = run(text, &[1, 2, 3, 4, 5]);
        assert_eq!(statements, vec![1, 2, 3]);
        assert_eq!(excluded, vec![4, 5]);
        // A refutable case keeps its line.
        let text = "match x:\n    case 1:\n        a()\n    case 2:\n        raise E  # pragma: no cover\n";
        let (statements, _) = run(text, &[1, 2, 3, 4, 5]);
        assert_eq!(statements, vec![1, 2, 3, 4]);
    }

    #[test]
    fn irrefutable_patterns() {
        let check = |pattern: &str| {
            let text = format!("{pattern}\n");
            let tokens = tokenize(&text).expect("tokens");
            let refs: Vec<&Token<'_>> = tokens.iter().filter(|t| t.is_significant()).collect();
            is_irrefutable(&refs)
        };
        for yes in [
            "_",
            "x",
            "(_)",
            "_ as y",
            "a | b | _",
            "(x as y) as z",
            "1 | (2 | y)",
        ] {
            assert!(check(yes), "{yes}");
        }
        for no in [
            "1",
            "None",
            "a.b",
            "Point()",
            "[_]",
            "(x,)",
            "(a | _) as y",
            "{'k': _}",
            "()",
        ] {
            assert!(!check(no), "{no}");
        }
    }

    #[test]
    fn empty_files_have_no_statements() {
        assert_eq!(run("# just a comment\n\n", &[1]).0, Vec::<u32>::new());
        assert_eq!(run("", &[1]).0, Vec::<u32>::new());
    }

    #[test]
    fn semicolon_after_docstring_drops_the_line() {
        // coverage.py drops the docstring's whole line, statements included.
        let (statements, _) = run("def f(): 'doc'; return 1\nf()\n", &[1, 2]);
        assert_eq!(statements, vec![2]);
    }

    fn region_summary(text: &str) -> Vec<(RegionKind, String, u32, Vec<u32>)> {
        let analysis = analyze(text, &LineSet::new(), &ExcludeRules::default()).expect("analyses");
        analysis
            .regions
            .iter()
            .map(|r| {
                (
                    r.kind,
                    r.name.clone(),
                    r.start.get(),
                    nums(&r.lines.to_set()),
                )
            })
            .collect()
    }

    #[test]
    fn regions_follow_coverage_py() {
        // coverage.py 7.17.4's code_regions gives exactly this for this text.
        let text = "\
class A:
    x = 1

    def m(self):
        y = 1

        def inner():
            return 2
        return inner

    class B:
        def n(self): return 3

@decorated
async def g():
    if True:
        def nested(): pass
    return 4
";
        use RegionKind::{Class, Function};
        assert_eq!(
            region_summary(text),
            vec![
                (Class, "A".into(), 1, vec![5, 6, 7, 8, 9]),
                (Function, "A.m".into(), 4, vec![5, 6, 7, 9]),
                (Function, "A.m.inner".into(), 7, vec![8]),
                (Class, "A.B".into(), 11, vec![12]),
                (Function, "A.B.n".into(), 12, vec![12]),
                (Function, "g".into(), 15, vec![16, 18]),
                (Function, "g.nested".into(), 17, vec![17]),
            ]
        );
        let analysis = analyze(text, &LineSet::new(), &ExcludeRules::default()).expect("analyses");
        assert_eq!(analysis.line_count, 18);
    }

    #[test]
    fn line_count_is_splitlines() {
        assert_eq!(count_lines(""), 0);
        assert_eq!(count_lines("a\nb\n"), 2);
        assert_eq!(count_lines("a\nb"), 2);
        assert_eq!(count_lines("s = 'x\u{2028}y'\n"), 2);
    }

    #[test]
    fn encode_decode_round_trip() {
        let text = "x = [\n  1,\n]\ndef f():  # pragma: no cover\n    pass\n";
        let analysis = analyze(text, &set(&[1, 2, 4, 5]), &ExcludeRules::default()).expect("ok");
        let bytes = analysis.encode();
        assert_eq!(SourceAnalysis::decode(&bytes), Some(analysis));
        for len in 0..bytes.len() {
            assert_eq!(SourceAnalysis::decode(&bytes[..len]), None);
        }
    }

    #[test]
    fn syntax_errors_are_reported() {
        let err = analyze("x = (\n", &LineSet::new(), &ExcludeRules::default()).expect_err("bad");
        assert!(
            matches!(err, AnalysisError::Tokenize(TokenizeError { line: 2, .. })),
            "{err}"
        );
    }
}
