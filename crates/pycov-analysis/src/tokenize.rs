//! A Python tokenizer, exact in the places coverage.py's statement model
//! looks at: where logical lines start and end (`NEWLINE` versus `NL`),
//! indentation (`INDENT` / `DEDENT`), comments, brackets, the `:` operator
//! and string literals, including 3.12 f-strings that nest quotes.
//!
//! f-strings are returned as one `String` token, as Python 3.11 does; 3.12+
//! splits them into parts, but every part lies inside the same statement, so
//! the statement model cannot tell the difference.

/// Token kinds, as `tokenize.tok_name` spells them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An identifier or keyword.
    Name,
    /// A numeric literal.
    Number,
    /// A string literal (with its prefix), f-strings included.
    String,
    /// An operator or delimiter.
    Op,
    /// A `#` comment (without the newline).
    Comment,
    /// The end of a logical line.
    Newline,
    /// A newline that does not end a logical line.
    Nl,
    /// More indentation than the enclosing block.
    Indent,
    /// Back to an enclosing block's indentation.
    Dedent,
    /// The end of the input.
    EndMarker,
}

/// One token: its kind, its text and the lines it starts and ends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Token<'a> {
    /// What kind of token.
    pub kind: Kind,
    /// The token's text (empty for `DEDENT` and `ENDMARKER`).
    pub text: &'a str,
    /// 1-based line of the first character.
    pub start_line: u32,
    /// 1-based line of the last character.
    pub end_line: u32,
}

impl Token<'_> {
    /// Whether this token is code: not whitespace, a comment, a newline or an
    /// indentation change (coverage.py's `ttext.strip() and toktype != COMMENT`).
    pub fn is_significant(&self) -> bool {
        matches!(
            self.kind,
            Kind::Name | Kind::Number | Kind::String | Kind::Op
        )
    }

    /// Whether this is the operator `op`.
    pub fn is_op(&self, op: &str) -> bool {
        self.kind == Kind::Op && self.text == op
    }

    /// Whether this is the name `name`.
    pub fn is_name(&self, name: &str) -> bool {
        self.kind == Kind::Name && self.text == name
    }
}

/// The source is not valid Python at the token level.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message} at line {line}")]
pub struct TokenizeError {
    /// 1-based line where the problem was found.
    pub line: u32,
    /// What is wrong.
    pub message: String,
}

/// Splits `text` (newlines already normalised to `\n`) into tokens.
pub fn tokenize(text: &str) -> Result<Vec<Token<'_>>, TokenizeError> {
    let mut lexer = Lexer {
        text,
        src: text.as_bytes(),
        pos: 0,
        line: 1,
        brackets: 0,
        indents: vec![0],
        at_line_start: true,
        logical_line_has_code: false,
        tokens: Vec::with_capacity(text.len() / 4),
    };
    lexer.run()?;
    Ok(lexer.tokens)
}

struct Lexer<'a> {
    text: &'a str,
    src: &'a [u8],
    pos: usize,
    line: u32,
    brackets: usize,
    indents: Vec<usize>,
    at_line_start: bool,
    logical_line_has_code: bool,
    tokens: Vec<Token<'a>>,
}

const TRIPLE_OPS: [&str; 5] = ["**=", "//=", ">>=", "<<=", "..."];
const DOUBLE_OPS: [&str; 19] = [
    "**", "//", ">>", "<<", "<=", ">=", "==", "!=", "->", "+=", "-=", "*=", "/=", "%=", "&=", "|=",
    "^=", "@=", ":=",
];

fn is_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

fn is_name_char(b: u8) -> bool {
    is_name_start(b) || b.is_ascii_digit()
}

/// The prefix of a string literal, if `name` is one (`rb`, `f`, `Rt`, ...).
fn is_string_prefix(name: &[u8]) -> bool {
    if name.is_empty() || name.len() > 2 {
        return false;
    }
    let mut seen = [false; 4]; // r, b/u, f/t
    for &c in name {
        match c.to_ascii_lowercase() {
            b'r' if !seen[0] => seen[0] = true,
            b'b' | b'u' | b'f' | b't' if !seen[1] => seen[1] = true,
            _ => return false,
        }
    }
    // `u` combines with nothing.
    !(name.len() == 2 && name.iter().any(|c| c.eq_ignore_ascii_case(&b'u')))
}

impl<'a> Lexer<'a> {
    fn peek(&self, ahead: usize) -> Option<u8> {
        self.src.get(self.pos + ahead).copied()
    }

    fn error(&self, message: &str) -> TokenizeError {
        TokenizeError {
            line: self.line,
            message: message.to_owned(),
        }
    }

    fn push(&mut self, kind: Kind, start: usize, start_line: u32) {
        self.tokens.push(Token {
            kind,
            text: &self.text[start..self.pos],
            start_line,
            end_line: self.line,
        });
        if matches!(kind, Kind::Name | Kind::Number | Kind::String | Kind::Op) {
            self.logical_line_has_code = true;
        }
    }

    fn run(&mut self) -> Result<(), TokenizeError> {
        loop {
            if self.at_line_start {
                self.at_line_start = false;
                self.indentation()?;
            }
            // Whitespace between tokens.
            while let Some(b' ' | b'\t' | b'\x0c') = self.peek(0) {
                self.pos += 1;
            }
            let Some(c) = self.peek(0) else {
                return self.finish();
            };
            let start = self.pos;
            let start_line = self.line;
            match c {
                b'#' => {
                    while self.peek(0).is_some_and(|b| b != b'\n') {
                        self.pos += 1;
                    }
                    self.push(Kind::Comment, start, start_line);
                }
                b'\n' => {
                    self.pos += 1;
                    let kind = if self.brackets == 0 && self.logical_line_has_code {
                        Kind::Newline
                    } else {
                        Kind::Nl
                    };
                    self.push(kind, start, start_line);
                    if kind == Kind::Newline {
                        self.logical_line_has_code = false;
                    }
                    self.line += 1;
                    self.at_line_start = self.brackets == 0;
                }
                b'\\' => {
                    if self.peek(1) != Some(b'\n') {
                        return Err(
                            self.error("unexpected character after line continuation character")
                        );
                    }
                    self.pos += 2;
                    self.line += 1;
                }
                b'"' | b'\'' => {
                    self.string_body(0)?;
                    self.push(Kind::String, start, start_line);
                }
                b'0'..=b'9' => {
                    self.number();
                    self.push(Kind::Number, start, start_line);
                }
                b'.' if self.peek(1).is_some_and(|b| b.is_ascii_digit()) => {
                    self.number();
                    self.push(Kind::Number, start, start_line);
                }
                c if is_name_start(c) => {
                    while self.peek(0).is_some_and(is_name_char) {
                        self.pos += 1;
                    }
                    let prefix = &self.src[start..self.pos];
                    if matches!(self.peek(0), Some(b'"' | b'\'')) && is_string_prefix(prefix) {
                        self.string_body(prefix.len())?;
                        self.push(Kind::String, start, start_line);
                    } else {
                        self.push(Kind::Name, start, start_line);
                    }
                }
                _ => {
                    self.operator()?;
                    self.push(Kind::Op, start, start_line);
                }
            }
        }
    }

    /// At the start of a physical line outside brackets: emit INDENT or
    /// DEDENTs, unless the line is blank or only a comment.
    fn indentation(&mut self) -> Result<(), TokenizeError> {
        let mut column = 0usize;
        let mut end = self.pos;
        loop {
            match self.src.get(end) {
                Some(b' ') => column += 1,
                Some(b'\t') => column = (column / 8 + 1) * 8,
                Some(b'\x0c') => column = 0,
                _ => break,
            }
            end += 1;
        }
        match self.src.get(end) {
            None | Some(b'#' | b'\n') => return Ok(()),
            // A continuation line does not change indentation.
            Some(b'\\') if self.src.get(end + 1) == Some(&b'\n') => return Ok(()),
            _ => {}
        }
        let current = *self.indents.last().unwrap_or(&0);
        if column > current {
            self.indents.push(column);
            let start = self.pos;
            self.pos = end;
            self.push_layout(Kind::Indent, start);
        } else if column < current {
            while self.indents.last().is_some_and(|&i| i > column) {
                self.indents.pop();
                self.tokens.push(Token {
                    kind: Kind::Dedent,
                    text: "",
                    start_line: self.line,
                    end_line: self.line,
                });
            }
            if self.indents.last() != Some(&column) {
                return Err(self.error("unindent does not match any outer indentation level"));
            }
        }
        Ok(())
    }

    fn push_layout(&mut self, kind: Kind, start: usize) {
        self.tokens.push(Token {
            kind,
            text: &self.text[start..self.pos],
            start_line: self.line,
            end_line: self.line,
        });
    }

    fn finish(&mut self) -> Result<(), TokenizeError> {
        if self.brackets > 0 {
            return Err(self.error("unexpected EOF in multi-line statement"));
        }
        if self.logical_line_has_code {
            self.tokens.push(Token {
                kind: Kind::Newline,
                text: "",
                start_line: self.line,
                end_line: self.line,
            });
            self.logical_line_has_code = false;
        }
        while self.indents.len() > 1 {
            self.indents.pop();
            self.tokens.push(Token {
                kind: Kind::Dedent,
                text: "",
                start_line: self.line,
                end_line: self.line,
            });
        }
        self.tokens.push(Token {
            kind: Kind::EndMarker,
            text: "",
            start_line: self.line,
            end_line: self.line,
        });
        Ok(())
    }

    fn number(&mut self) {
        let radix_prefix = self.peek(0) == Some(b'0')
            && matches!(self.peek(1), Some(b'x' | b'X' | b'o' | b'O' | b'b' | b'B'));
        if radix_prefix {
            self.pos += 2;
            while self
                .peek(0)
                .is_some_and(|b| b.is_ascii_hexdigit() || b == b'_')
            {
                self.pos += 1;
            }
            return;
        }
        // Underscores only between digits: `1.__class__` is `1.` then a name.
        let digits = |lexer: &mut Lexer<'_>| loop {
            match lexer.peek(0) {
                Some(b'0'..=b'9') => lexer.pos += 1,
                Some(b'_') if lexer.peek(1).is_some_and(|b| b.is_ascii_digit()) => lexer.pos += 2,
                _ => break,
            }
        };
        digits(self);
        if self.peek(0) == Some(b'.') {
            self.pos += 1;
            digits(self);
        }
        if matches!(self.peek(0), Some(b'e' | b'E')) {
            let sign = usize::from(matches!(self.peek(1), Some(b'+' | b'-')));
            if self.peek(1 + sign).is_some_and(|b| b.is_ascii_digit()) {
                self.pos += 1 + sign;
                digits(self);
            }
        }
        if matches!(self.peek(0), Some(b'j' | b'J')) {
            self.pos += 1;
        }
    }

    fn operator(&mut self) -> Result<(), TokenizeError> {
        let rest = &self.text[self.pos..];
        if let Some(op) = TRIPLE_OPS.iter().find(|op| rest.starts_with(**op)) {
            self.pos += op.len();
            return Ok(());
        }
        if let Some(op) = DOUBLE_OPS.iter().find(|op| rest.starts_with(**op)) {
            self.pos += op.len();
            return Ok(());
        }
        let c = self.src[self.pos];
        match c {
            b'(' | b'[' | b'{' => self.brackets += 1,
            b')' | b']' | b'}' => self.brackets = self.brackets.saturating_sub(1),
            b'+' | b'-' | b'*' | b'/' | b'%' | b'@' | b'&' | b'|' | b'^' | b'~' | b'<' | b'>'
            | b',' | b':' | b';' | b'.' | b'=' | b'!' => {}
            _ => {
                let ch = rest.chars().next().unwrap_or('?');
                return Err(self.error(&format!("invalid character {ch:?}")));
            }
        }
        self.pos += 1;
        Ok(())
    }

    /// Lexes a string literal whose prefix (`prefix_len` bytes) has been
    /// consumed; `self.pos` is at the opening quote.
    fn string_body(&mut self, prefix_len: usize) -> Result<(), TokenizeError> {
        let prefix = &self.src[self.pos - prefix_len..self.pos];
        let raw = prefix.iter().any(|c| c.eq_ignore_ascii_case(&b'r'));
        let formatted = prefix
            .iter()
            .any(|c| c.eq_ignore_ascii_case(&b'f') || c.eq_ignore_ascii_case(&b't'));
        let quote = self.src[self.pos];
        let triple = self.peek(1) == Some(quote) && self.peek(2) == Some(quote);
        self.pos += if triple { 3 } else { 1 };
        loop {
            let Some(c) = self.peek(0) else {
                return Err(self.error("unterminated string literal"));
            };
            if c == quote {
                if !triple {
                    self.pos += 1;
                    return Ok(());
                }
                if self.peek(1) == Some(quote) && self.peek(2) == Some(quote) {
                    self.pos += 3;
                    return Ok(());
                }
                self.pos += 1;
                continue;
            }
            match c {
                b'\n' => {
                    if !triple {
                        return Err(self.error("unterminated string literal"));
                    }
                    self.line += 1;
                    self.pos += 1;
                }
                b'\\' => self.escape(raw, formatted),
                b'{' if formatted => {
                    if self.peek(1) == Some(b'{') {
                        self.pos += 2;
                    } else {
                        self.pos += 1;
                        self.replacement_field()?;
                    }
                }
                _ => self.pos += 1,
            }
        }
    }

    /// A backslash inside a string: it hides the next character from the
    /// lexer, except that braces of an f-string stay braces, and `\N{...}`
    /// names a character.
    fn escape(&mut self, raw: bool, formatted: bool) {
        match self.peek(1) {
            Some(b'{' | b'}') if formatted => self.pos += 1,
            Some(b'N') if formatted && !raw && self.peek(2) == Some(b'{') => {
                self.pos += 3;
                while self.peek(0).is_some_and(|b| b != b'}' && b != b'\n') {
                    self.pos += 1;
                }
                if self.peek(0) == Some(b'}') {
                    self.pos += 1;
                }
            }
            Some(b'\n') => {
                self.line += 1;
                self.pos += 2;
            }
            Some(_) => self.pos += 2,
            None => self.pos += 1,
        }
    }

    /// The expression part of an f-string replacement field, after its `{`;
    /// consumes up to and including the matching `}`.
    fn replacement_field(&mut self) -> Result<(), TokenizeError> {
        let mut depth = 0usize;
        loop {
            let Some(c) = self.peek(0) else {
                return Err(self.error("unterminated f-string"));
            };
            match c {
                b'\n' => {
                    self.line += 1;
                    self.pos += 1;
                }
                b'#' => {
                    while self.peek(0).is_some_and(|b| b != b'\n') {
                        self.pos += 1;
                    }
                }
                b'\\' => self.escape(true, false),
                b'"' | b'\'' => self.string_body(0)?,
                b'(' | b'[' | b'{' => {
                    depth += 1;
                    self.pos += 1;
                }
                b')' | b']' => {
                    depth = depth.saturating_sub(1);
                    self.pos += 1;
                }
                b'}' => {
                    self.pos += 1;
                    if depth == 0 {
                        return Ok(());
                    }
                    depth -= 1;
                }
                b'!' if self.peek(1) == Some(b'=') => self.pos += 2,
                b':' if depth == 0 => {
                    self.pos += 1;
                    return self.format_spec();
                }
                c if is_name_start(c) => {
                    let start = self.pos;
                    while self.peek(0).is_some_and(is_name_char) {
                        self.pos += 1;
                    }
                    let prefix = &self.src[start..self.pos];
                    if matches!(self.peek(0), Some(b'"' | b'\'')) && is_string_prefix(prefix) {
                        self.string_body(prefix.len())?;
                    }
                }
                _ => self.pos += 1,
            }
        }
    }

    /// The format spec of a replacement field, after its `:`; consumes up to
    /// and including the field's closing `}`.
    fn format_spec(&mut self) -> Result<(), TokenizeError> {
        loop {
            let Some(c) = self.peek(0) else {
                return Err(self.error("unterminated f-string"));
            };
            match c {
                b'}' => {
                    self.pos += 1;
                    return Ok(());
                }
                b'{' => {
                    self.pos += 1;
                    self.replacement_field()?;
                }
                b'\n' => {
                    self.line += 1;
                    self.pos += 1;
                }
                b'\\' => self.escape(false, true),
                _ => self.pos += 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<(Kind, String, u32, u32)> {
        tokenize(text)
            .expect("tokenizes")
            .into_iter()
            .map(|t| (t.kind, t.text.to_owned(), t.start_line, t.end_line))
            .collect()
    }

    fn summary(text: &str) -> String {
        tokenize(text)
            .expect("tokenizes")
            .iter()
            .map(|t| match t.kind {
                Kind::Newline => "NEWLINE".to_string(),
                Kind::Nl => "NL".to_string(),
                Kind::Indent => "INDENT".to_string(),
                Kind::Dedent => "DEDENT".to_string(),
                Kind::EndMarker => "END".to_string(),
                Kind::Comment => "#".to_string(),
                _ => t.text.to_string(),
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn logical_lines_and_indentation() {
        assert_eq!(
            summary("if x:\n    y = (1,\n  2)\n\n# c\nz\n"),
            "if x : NEWLINE INDENT y = ( 1 , NL 2 ) NEWLINE NL # NL DEDENT z NEWLINE END"
        );
        assert_eq!(summary("a = 1 + \\\n  2\n"), "a = 1 + 2 NEWLINE END");
        assert_eq!(
            summary("x\n\tif a:\n\t\tb\n"),
            "x NEWLINE INDENT if a : NEWLINE INDENT b NEWLINE DEDENT DEDENT END"
        );
    }

    #[test]
    fn operators_are_longest_match() {
        assert_eq!(
            summary("a:=b!=c->d**=e...\n"),
            "a := b != c -> d **= e ... NEWLINE END"
        );
        assert_eq!(summary("x[1:2]\n"), "x [ 1 : 2 ] NEWLINE END");
    }

    #[test]
    fn numbers() {
        assert_eq!(
            summary("1.e5+.5j+0xfe+1_0+1if x else 2\n"),
            "1.e5 + .5j + 0xfe + 1_0 + 1 if x else 2 NEWLINE END"
        );
        assert_eq!(summary("1.__class__\n"), "1. __class__ NEWLINE END");
        assert_eq!(summary("1e+5\n"), "1e+5 NEWLINE END");
    }

    #[test]
    fn strings_and_their_lines() {
        let tokens = kinds("s = '''a\nb'''\nt = rb'\\'' \"x\\\ny\"\n");
        assert_eq!(tokens[2], (Kind::String, "'''a\nb'''".into(), 1, 2));
        assert_eq!(tokens[6], (Kind::String, "rb'\\''".into(), 3, 3));
        assert_eq!(tokens[7], (Kind::String, "\"x\\\ny\"".into(), 3, 4));
        assert_eq!(tokens[8].0, Kind::Newline);
        assert_eq!(tokens[8].2, 4);
        assert_eq!(
            summary("rb = 1\nu'x'\nbr'y'\n"),
            "rb = 1 NEWLINE u'x' NEWLINE br'y' NEWLINE END"
        );
    }

    #[test]
    fn fstrings_nest_quotes_and_braces() {
        assert_eq!(
            summary("f\"{x[\"a\"]}\" + 1\n"),
            "f\"{x[\"a\"]}\" + 1 NEWLINE END"
        );
        assert_eq!(
            summary("f'{x:>{w}}' + f'{{' + f'{a!r}' + f'{a!=b}'\n"),
            "f'{x:>{w}}' + f'{{' + f'{a!r}' + f'{a!=b}' NEWLINE END"
        );
        assert_eq!(
            summary("f'''{\n  x # c\n}'''\n"),
            "f'''{\n  x # c\n}''' NEWLINE END"
        );
        assert_eq!(summary("f'{f\"{1}\"}'\n"), "f'{f\"{1}\"}' NEWLINE END");
        assert_eq!(summary("f'\\N{DASH}{x}'\n"), "f'\\N{DASH}{x}' NEWLINE END");
        assert_eq!(summary("rf'\\{x}'\n"), "rf'\\{x}' NEWLINE END");
        assert_eq!(
            summary("f'{ {1: 2}[1] }'\n"),
            "f'{ {1: 2}[1] }' NEWLINE END"
        );
    }

    #[test]
    fn errors() {
        assert!(tokenize("x = 'abc\n").is_err());
        assert!(tokenize("x = (\n").is_err());
        assert!(tokenize("if x:\n    a\n  b\n").is_err());
        assert!(tokenize("a $ b\n").is_err());
        let err = tokenize("\n\nx = '''\n").expect_err("unterminated");
        assert_eq!(err.line, 4);
    }

    #[test]
    fn missing_final_newline_still_ends_the_line() {
        assert_eq!(summary("x = 1"), "x = 1 NEWLINE END");
        assert_eq!(summary(""), "END");
        assert_eq!(summary("# only a comment"), "# END");
    }
}
