//! The filter language's lexer and recursive-descent parser (see the grammar in `mod.rs`), with
//! the byte position of every error and bounds on length, depth and list sizes.

use super::{MAX_DEPTH, MAX_FILTER_LEN, MAX_IN_LIST};
use std::fmt;

/// What a filter says.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Literal(Literal),
    Path(Path),
    Exists(Path),
    Neg(Box<Expr>),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Binary(Op, Box<Expr>, Box<Expr>),
    Between { value: Box<Expr>, low: Box<Expr>, high: Box<Expr>, negated: bool },
    In { value: Box<Expr>, list: Vec<Literal>, negated: bool },
    Like { value: Box<Expr>, pattern: String, escape: Option<char>, negated: bool },
    IsNull { value: Box<Expr>, negated: bool },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

/// Where a path starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Root {
    Body,
    /// A header by name.
    Header(String),
    /// `routing_key`, `exchange` or a basic property.
    Property(String),
}

/// A value's place in the message: a root, then object keys or array indexes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    pub root: Root,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Key(String),
    Index(usize),
}

/// A refused filter: what is wrong, at which byte of the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    pub position: usize,
    pub message: String,
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid filter at byte {}: {}", self.position, self.message)
    }
}

/// Names that are a message's own values rather than headers.
pub const PROPERTIES: &[&str] = &[
    "routing_key",
    "exchange",
    "content_type",
    "content_encoding",
    "delivery_mode",
    "priority",
    "correlation_id",
    "reply_to",
    "expiration",
    "message_id",
    "timestamp",
    "type",
    "user_id",
    "app_id",
];

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(Literal),
    Str(String),
    Name(String),
    Sym(&'static str),
    End,
}

struct Lexer<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    fn error(&self, at: usize, message: impl Into<String>) -> FilterError {
        FilterError { position: at, message: message.into() }
    }

    /// The next token and where it starts.
    fn next(&mut self) -> Result<(Tok, usize), FilterError> {
        let bytes = self.text.as_bytes();
        while self.pos < bytes.len() && bytes[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
        let start = self.pos;
        let Some(&c) = bytes.get(self.pos) else { return Ok((Tok::End, start)) };
        if c.is_ascii_digit() || (c == b'.' && bytes.get(self.pos + 1).is_some_and(u8::is_ascii_digit)) {
            return self.number(start);
        }
        if c == b'\'' || c == b'"' {
            return self.string(start, c).map(|s| (Tok::Str(s), start));
        }
        if c.is_ascii_alphabetic() || c == b'_' || c == b'$' {
            while self.pos < bytes.len()
                && (bytes[self.pos].is_ascii_alphanumeric() || b"_$".contains(&bytes[self.pos]))
            {
                self.pos += 1;
            }
            return Ok((Tok::Name(self.text[start..self.pos].to_owned()), start));
        }
        const SYMBOLS: &[&str] =
            &["<>", "!=", "<=", ">=", "=", "<", ">", "+", "-", "*", "/", "%", "(", ")", ",", ".", "[", "]"];
        for s in SYMBOLS {
            if self.text[self.pos..].starts_with(s) {
                self.pos += s.len();
                return Ok((Tok::Sym(s), start));
            }
        }
        let ch = self.text[self.pos..].chars().next().unwrap_or('?');
        Err(self.error(start, format!("unexpected character '{ch}'")))
    }

    fn number(&mut self, start: usize) -> Result<(Tok, usize), FilterError> {
        let bytes = self.text.as_bytes();
        let mut float = false;
        while self.pos < bytes.len() {
            let b = bytes[self.pos];
            if b.is_ascii_digit() {
                self.pos += 1;
            } else if b == b'.' && !float {
                float = true;
                self.pos += 1;
            } else if (b == b'e' || b == b'E') && self.pos > start {
                float = true;
                self.pos += 1;
                if matches!(bytes.get(self.pos), Some(b'+' | b'-')) {
                    self.pos += 1;
                }
            } else {
                break;
            }
        }
        let text = &self.text[start..self.pos];
        let literal = if float {
            text.parse::<f64>().ok().filter(|f| f.is_finite()).map(Literal::Float)
        } else {
            text.parse::<i64>().ok().map(Literal::Int)
        };
        literal.map(|l| (Tok::Num(l), start)).ok_or_else(|| self.error(start, format!("bad number '{text}'")))
    }

    /// A quoted string; the quote is doubled to stand for itself, as in SQL.
    fn string(&mut self, start: usize, quote: u8) -> Result<String, FilterError> {
        let mut out = String::new();
        self.pos += 1;
        let rest = &self.text[self.pos..];
        let mut chars = rest.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if c as u32 == quote as u32 {
                if chars.peek().is_some_and(|(_, n)| *n as u32 == quote as u32) {
                    chars.next();
                    out.push(c);
                    continue;
                }
                self.pos += i + 1;
                return Ok(out);
            }
            out.push(c);
        }
        Err(self.error(start, "unterminated string"))
    }
}

struct Parser<'a> {
    lexer: Lexer<'a>,
    tok: Tok,
    at: usize,
    depth: usize,
}

/// Parses a filter's text.
pub fn parse(text: &str) -> Result<Expr, FilterError> {
    if text.len() > MAX_FILTER_LEN {
        return Err(FilterError { position: MAX_FILTER_LEN, message: format!("longer than {MAX_FILTER_LEN} bytes") });
    }
    let mut lexer = Lexer { text, pos: 0 };
    let (tok, at) = lexer.next()?;
    let mut p = Parser { lexer, tok, at, depth: 0 };
    if p.tok == Tok::End {
        return Err(p.error("empty filter"));
    }
    let expr = p.or()?;
    if p.tok != Tok::End {
        return Err(p.error(format!("unexpected {}", p.describe())));
    }
    Ok(expr)
}

/// Parses a path alone (`body.order.lines`, `headers.region`), as a filter would read it.
pub fn parse_path(text: &str) -> Result<Path, FilterError> {
    if text.len() > MAX_FILTER_LEN {
        return Err(FilterError { position: MAX_FILTER_LEN, message: format!("longer than {MAX_FILTER_LEN} bytes") });
    }
    let mut lexer = Lexer { text, pos: 0 };
    let (tok, at) = lexer.next()?;
    let mut p = Parser { lexer, tok, at, depth: 0 };
    let path = p.path()?;
    if p.tok != Tok::End {
        return Err(p.error(format!("unexpected {} after the path", p.describe())));
    }
    Ok(path)
}

fn is_keyword(tok: &Tok, word: &str) -> bool {
    matches!(tok, Tok::Name(n) if n.eq_ignore_ascii_case(word))
}

const KEYWORDS: &[&str] =
    &["AND", "OR", "NOT", "BETWEEN", "IN", "LIKE", "ESCAPE", "IS", "NULL", "TRUE", "FALSE", "EXISTS"];

impl Parser<'_> {
    fn error(&self, message: impl Into<String>) -> FilterError {
        FilterError { position: self.at, message: message.into() }
    }

    fn describe(&self) -> String {
        match &self.tok {
            Tok::End => "end of filter".into(),
            Tok::Name(n) => format!("'{n}'"),
            Tok::Sym(s) => format!("'{s}'"),
            Tok::Str(s) => format!("string '{s}'"),
            Tok::Num(_) => "number".into(),
        }
    }

    fn bump(&mut self) -> Result<Tok, FilterError> {
        let (tok, at) = self.lexer.next()?;
        self.at = at;
        Ok(std::mem::replace(&mut self.tok, tok))
    }

    fn keyword(&mut self, word: &str) -> Result<bool, FilterError> {
        if is_keyword(&self.tok, word) {
            self.bump()?;
            return Ok(true);
        }
        Ok(false)
    }

    fn expect_keyword(&mut self, word: &str) -> Result<(), FilterError> {
        if self.keyword(word)? {
            return Ok(());
        }
        Err(self.error(format!("expected {word}, found {}", self.describe())))
    }

    fn symbol(&mut self, s: &str) -> Result<bool, FilterError> {
        if self.tok == Tok::Sym(symbol_of(s)) {
            self.bump()?;
            return Ok(true);
        }
        Ok(false)
    }

    fn expect_symbol(&mut self, s: &str) -> Result<(), FilterError> {
        if self.symbol(s)? {
            return Ok(());
        }
        Err(self.error(format!("expected '{s}', found {}", self.describe())))
    }

    fn nested<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T, FilterError>) -> Result<T, FilterError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error(format!("nested deeper than {MAX_DEPTH}")));
        }
        let out = f(self);
        self.depth -= 1;
        out
    }

    fn or(&mut self) -> Result<Expr, FilterError> {
        self.nested(|p| {
            let mut left = p.and()?;
            while p.keyword("OR")? {
                let right = p.and()?;
                left = Expr::Or(Box::new(left), Box::new(right));
            }
            Ok(left)
        })
    }

    fn and(&mut self) -> Result<Expr, FilterError> {
        let mut left = self.not()?;
        while self.keyword("AND")? {
            let right = self.not()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Expr, FilterError> {
        if self.keyword("NOT")? {
            return self.nested(|p| Ok(Expr::Not(Box::new(p.not()?))));
        }
        self.predicate()
    }

    fn predicate(&mut self) -> Result<Expr, FilterError> {
        let value = self.sum()?;
        let op = match &self.tok {
            Tok::Sym("=") => Some(Op::Eq),
            Tok::Sym("<>") | Tok::Sym("!=") => Some(Op::Ne),
            Tok::Sym("<") => Some(Op::Lt),
            Tok::Sym("<=") => Some(Op::Le),
            Tok::Sym(">") => Some(Op::Gt),
            Tok::Sym(">=") => Some(Op::Ge),
            _ => None,
        };
        if let Some(op) = op {
            self.bump()?;
            let right = self.sum()?;
            return Ok(Expr::Binary(op, Box::new(value), Box::new(right)));
        }
        if self.keyword("IS")? {
            let negated = self.keyword("NOT")?;
            self.expect_keyword("NULL")?;
            return Ok(Expr::IsNull { value: Box::new(value), negated });
        }
        let negated = self.keyword("NOT")?;
        if self.keyword("BETWEEN")? {
            let low = self.sum()?;
            self.expect_keyword("AND")?;
            let high = self.sum()?;
            return Ok(Expr::Between { value: Box::new(value), low: Box::new(low), high: Box::new(high), negated });
        }
        if self.keyword("IN")? {
            self.expect_symbol("(")?;
            let mut list = vec![self.literal()?];
            while self.symbol(",")? {
                if list.len() >= MAX_IN_LIST {
                    return Err(self.error(format!("an IN list holds at most {MAX_IN_LIST} values")));
                }
                list.push(self.literal()?);
            }
            self.expect_symbol(")")?;
            return Ok(Expr::In { value: Box::new(value), list, negated });
        }
        if self.keyword("LIKE")? {
            let at = self.at;
            let Tok::Str(pattern) = self.bump()? else {
                return Err(FilterError { position: at, message: "LIKE takes a string pattern".into() });
            };
            let mut escape = None;
            if self.keyword("ESCAPE")? {
                let at = self.at;
                match self.bump()? {
                    Tok::Str(e) if e.chars().count() == 1 => escape = e.chars().next(),
                    _ => {
                        return Err(FilterError { position: at, message: "ESCAPE takes a one-character string".into() })
                    }
                }
            }
            return Ok(Expr::Like { value: Box::new(value), pattern, escape, negated });
        }
        if negated {
            return Err(self.error(format!("expected BETWEEN, IN or LIKE after NOT, found {}", self.describe())));
        }
        Ok(value)
    }

    fn sum(&mut self) -> Result<Expr, FilterError> {
        let mut left = self.product()?;
        loop {
            let op = match self.tok {
                Tok::Sym("+") => Op::Add,
                Tok::Sym("-") => Op::Sub,
                _ => return Ok(left),
            };
            self.bump()?;
            let right = self.product()?;
            left = Expr::Binary(op, Box::new(left), Box::new(right));
        }
    }

    fn product(&mut self) -> Result<Expr, FilterError> {
        let mut left = self.unary()?;
        loop {
            let op = match self.tok {
                Tok::Sym("*") => Op::Mul,
                Tok::Sym("/") => Op::Div,
                Tok::Sym("%") => Op::Rem,
                _ => return Ok(left),
            };
            self.bump()?;
            let right = self.unary()?;
            left = Expr::Binary(op, Box::new(left), Box::new(right));
        }
    }

    fn unary(&mut self) -> Result<Expr, FilterError> {
        if self.symbol("-")? {
            return self.nested(|p| Ok(Expr::Neg(Box::new(p.unary()?))));
        }
        if self.symbol("+")? {
            return self.nested(|p| p.unary());
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, FilterError> {
        if self.symbol("(")? {
            let inner = self.or()?;
            self.expect_symbol(")")?;
            return Ok(inner);
        }
        if self.keyword("EXISTS")? {
            let parenthesised = self.symbol("(")?;
            let path = self.path()?;
            if parenthesised {
                self.expect_symbol(")")?;
            }
            return Ok(Expr::Exists(path));
        }
        match &self.tok {
            Tok::Num(_) | Tok::Str(_) => Ok(Expr::Literal(self.literal()?)),
            Tok::Name(n) if ["TRUE", "FALSE", "NULL"].iter().any(|k| n.eq_ignore_ascii_case(k)) => {
                Ok(Expr::Literal(self.literal()?))
            }
            Tok::Name(_) => Ok(Expr::Path(self.path()?)),
            _ => Err(self.error(format!("expected a value, found {}", self.describe()))),
        }
    }

    fn literal(&mut self) -> Result<Literal, FilterError> {
        let negative = self.symbol("-")?;
        let at = self.at;
        let literal = match self.bump()? {
            Tok::Num(Literal::Int(i)) => Literal::Int(if negative { -i } else { i }),
            Tok::Num(Literal::Float(f)) => Literal::Float(if negative { -f } else { f }),
            Tok::Str(s) if !negative => Literal::Str(s),
            Tok::Name(n) if !negative && n.eq_ignore_ascii_case("TRUE") => Literal::Bool(true),
            Tok::Name(n) if !negative && n.eq_ignore_ascii_case("FALSE") => Literal::Bool(false),
            Tok::Name(n) if !negative && n.eq_ignore_ascii_case("NULL") => Literal::Null,
            _ => return Err(FilterError { position: at, message: "expected a literal value".into() }),
        };
        Ok(literal)
    }

    fn path(&mut self) -> Result<Path, FilterError> {
        let at = self.at;
        let Tok::Name(first) = self.bump()? else {
            return Err(FilterError { position: at, message: "expected a name".into() });
        };
        if KEYWORDS.iter().any(|k| first.eq_ignore_ascii_case(k)) {
            return Err(FilterError { position: at, message: format!("'{first}' is a keyword, not a name") });
        }
        let mut steps = Vec::new();
        loop {
            if self.symbol(".")? {
                let at = self.at;
                match self.bump()? {
                    Tok::Name(n) => steps.push(Step::Key(n)),
                    _ => return Err(FilterError { position: at, message: "expected a name after '.'".into() }),
                }
            } else if self.symbol("[")? {
                let at = self.at;
                match self.bump()? {
                    Tok::Num(Literal::Int(i)) if i >= 0 => steps.push(Step::Index(i as usize)),
                    Tok::Str(s) => steps.push(Step::Key(s)),
                    _ => return Err(FilterError { position: at, message: "expected an index or a quoted key".into() }),
                }
                self.expect_symbol("]")?;
            } else {
                break;
            }
        }
        let root = match first.as_str() {
            "body" => Root::Body,
            "headers" => match steps.first() {
                Some(Step::Key(k)) => {
                    let name = k.clone();
                    steps.remove(0);
                    Root::Header(name)
                }
                _ => {
                    return Err(FilterError { position: at, message: "headers is followed by a header's name".into() })
                }
            },
            name if PROPERTIES.contains(&name) => Root::Property(name.to_owned()),
            name => Root::Header(name.to_owned()),
        };
        Ok(Path { root, steps })
    }
}

/// The static form of a symbol, as the lexer produces it.
fn symbol_of(s: &str) -> &'static str {
    const ALL: &[&str] =
        &["<>", "!=", "<=", ">=", "=", "<", ">", "+", "-", "*", "/", "%", "(", ")", ",", ".", "[", "]"];
    ALL.iter().find(|a| **a == s).copied().unwrap_or("")
}

impl Expr {
    /// Whether some path of the expression reads the body.
    pub fn reads_body(&self) -> bool {
        match self {
            Expr::Literal(_) => false,
            Expr::Path(p) | Expr::Exists(p) => p.root == Root::Body,
            Expr::Neg(e) | Expr::Not(e) => e.reads_body(),
            Expr::And(a, b) | Expr::Or(a, b) | Expr::Binary(_, a, b) => a.reads_body() || b.reads_body(),
            Expr::Between { value, low, high, .. } => value.reads_body() || low.reads_body() || high.reads_body(),
            Expr::In { value, .. } | Expr::Like { value, .. } | Expr::IsNull { value, .. } => value.reads_body(),
        }
    }
}
