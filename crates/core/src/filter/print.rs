//! A filter written back as text that parses to the same expression (every operation in
//! parentheses): for error messages, listings and the parser's round-trip tests.

use super::parse::{Expr, Literal, Op, Path, Root, Step};
use std::fmt;

fn quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Null => write!(f, "NULL"),
            Literal::Bool(b) => write!(f, "{}", if *b { "TRUE" } else { "FALSE" }),
            Literal::Int(i) => write!(f, "{i}"),
            Literal::Float(x) => write!(f, "{x:e}"),
            Literal::Str(s) => write!(f, "{}", quoted(s)),
        }
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.root {
            Root::Body => write!(f, "body")?,
            Root::Header(h) => write!(f, "headers[{}]", quoted(h))?,
            Root::Property(p) => write!(f, "{p}")?,
        }
        for step in &self.steps {
            match step {
                Step::Key(k) => write!(f, "[{}]", quoted(k))?,
                Step::Index(i) => write!(f, "[{i}]")?,
            }
        }
        Ok(())
    }
}

impl Op {
    pub fn symbol(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "<>",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Add => "+",
            Op::Sub => "-",
            Op::Mul => "*",
            Op::Div => "/",
            Op::Rem => "%",
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let not = |negated: bool| if negated { "NOT " } else { "" };
        match self {
            Expr::Literal(l) => write!(f, "{l}"),
            Expr::Path(p) => write!(f, "{p}"),
            Expr::Exists(p) => write!(f, "EXISTS({p})"),
            Expr::Neg(e) => write!(f, "(-{e})"),
            Expr::Not(e) => write!(f, "(NOT {e})"),
            Expr::And(a, b) => write!(f, "({a} AND {b})"),
            Expr::Or(a, b) => write!(f, "({a} OR {b})"),
            Expr::Binary(op, a, b) => write!(f, "({a} {} {b})", op.symbol()),
            Expr::Between { value, low, high, negated } => {
                write!(f, "({value} {}BETWEEN {low} AND {high})", not(*negated))
            }
            Expr::In { value, list, negated } => {
                let list: Vec<String> = list.iter().map(ToString::to_string).collect();
                write!(f, "({value} {}IN ({}))", not(*negated), list.join(", "))
            }
            Expr::Like { value, pattern, escape, negated } => {
                write!(f, "({value} {}LIKE {}", not(*negated), quoted(pattern))?;
                if let Some(e) = escape {
                    write!(f, " ESCAPE {}", quoted(&e.to_string()))?;
                }
                write!(f, ")")
            }
            Expr::IsNull { value, negated } => write!(f, "({value} IS {}NULL)", not(*negated)),
        }
    }
}
