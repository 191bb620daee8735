//! Evaluating a filter against one message, with SQL's three-valued logic (`None` is unknown).
//! Values borrow from the message and the expression: evaluation allocates nothing.

use super::like::like;
use super::parse::{Expr, Literal, Op, Path, Root, Step};
use std::cmp::Ordering;

/// A value a filter reads or computes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
    /// An array, object or table: present, but neither compared nor computed with.
    Other,
}

/// What a filter looks at: implemented by the broker over a message (its properties and
/// headers decoded once, its body parsed as JSON at most once, and only if asked).
pub trait Subject {
    /// `routing_key`, `exchange` or a basic property; `None` if the message has none.
    fn property(&self, name: &str) -> Option<Value<'_>>;
    /// A header by name; `None` if there is none.
    fn header(&self, name: &str) -> Option<Value<'_>>;
    /// The body as JSON; `None` if it is not JSON.
    fn body(&self) -> Option<&serde_json::Value>;
}

fn json_value(v: &serde_json::Value) -> Value<'_> {
    match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => n.as_f64().map_or(Value::Null, Value::Float),
        },
        serde_json::Value::String(s) => Value::Str(s),
        _ => Value::Other,
    }
}

impl Path {
    /// Where the path leads in `subject`; `None` if nothing is there.
    pub fn read<'s>(&self, subject: &'s dyn Subject) -> Option<Value<'s>> {
        lookup(self, subject)
    }
}

/// Where `path` leads in `subject`; `None` if nothing is there.
fn lookup<'s>(path: &Path, subject: &'s dyn Subject) -> Option<Value<'s>> {
    match &path.root {
        Root::Property(name) if path.steps.is_empty() => subject.property(name),
        Root::Header(name) if path.steps.is_empty() => subject.header(name),
        Root::Body => {
            let mut at = subject.body()?;
            for step in &path.steps {
                at = match step {
                    Step::Key(k) => at.as_object()?.get(k)?,
                    Step::Index(i) => at.as_array()?.get(*i)?,
                };
            }
            Some(json_value(at))
        }
        // Properties and headers are not structured: nothing is below them.
        _ => None,
    }
}

fn literal(l: &Literal) -> Value<'_> {
    match l {
        Literal::Null => Value::Null,
        Literal::Bool(b) => Value::Bool(*b),
        Literal::Int(i) => Value::Int(*i),
        Literal::Float(f) => Value::Float(*f),
        Literal::Str(s) => Value::Str(s),
    }
}

/// The value of `expr` (a missing value is `Null`).
pub fn value<'a>(expr: &'a Expr, subject: &'a dyn Subject) -> Value<'a> {
    match expr {
        Expr::Literal(l) => literal(l),
        Expr::Path(p) => lookup(p, subject).unwrap_or(Value::Null),
        Expr::Neg(e) => match value(e, subject) {
            Value::Int(i) => i.checked_neg().map_or(Value::Float(-(i as f64)), Value::Int),
            Value::Float(f) => Value::Float(-f),
            _ => Value::Null,
        },
        Expr::Binary(op @ (Op::Add | Op::Sub | Op::Mul | Op::Div | Op::Rem), a, b) => {
            arithmetic(*op, value(a, subject), value(b, subject))
        }
        _ => match truth(expr, subject) {
            Some(b) => Value::Bool(b),
            None => Value::Null,
        },
    }
}

fn as_f64(v: Value<'_>) -> Option<f64> {
    match v {
        Value::Int(i) => Some(i as f64),
        Value::Float(f) => Some(f),
        _ => None,
    }
}

fn arithmetic<'a>(op: Op, a: Value<'a>, b: Value<'a>) -> Value<'a> {
    if let (Value::Int(x), Value::Int(y)) = (a, b) {
        let exact = match op {
            Op::Add => x.checked_add(y),
            Op::Sub => x.checked_sub(y),
            Op::Mul => x.checked_mul(y),
            Op::Div if y == 0 => return Value::Null,
            Op::Div => (x.checked_rem(y) == Some(0)).then(|| x.checked_div(y)).flatten(),
            Op::Rem if y == 0 => return Value::Null,
            _ => x.checked_rem(y),
        };
        if let Some(v) = exact {
            return Value::Int(v);
        }
    }
    let (Some(x), Some(y)) = (as_f64(a), as_f64(b)) else { return Value::Null };
    let r = match op {
        Op::Add => x + y,
        Op::Sub => x - y,
        Op::Mul => x * y,
        Op::Div => x / y,
        _ => x % y,
    };
    if r.is_finite() {
        Value::Float(r)
    } else {
        Value::Null
    }
}

/// How `a` compares with `b`: numbers with numbers, strings with strings, booleans only for
/// (in)equality; anything else is unknown.
fn compare(a: Value<'_>, b: Value<'_>) -> Option<Ordering> {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Some(x.cmp(&y)),
        (Value::Str(x), Value::Str(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(&y)),
        _ => as_f64(a)?.partial_cmp(&as_f64(b)?),
    }
}

fn comparison(op: Op, a: Value<'_>, b: Value<'_>) -> Option<bool> {
    if matches!(a, Value::Bool(_)) && !matches!(op, Op::Eq | Op::Ne) {
        return None;
    }
    let ord = compare(a, b)?;
    Some(match op {
        Op::Eq => ord == Ordering::Equal,
        Op::Ne => ord != Ordering::Equal,
        Op::Lt => ord == Ordering::Less,
        Op::Le => ord != Ordering::Greater,
        Op::Gt => ord == Ordering::Greater,
        _ => ord != Ordering::Less,
    })
}

fn and(a: Option<bool>, b: impl FnOnce() -> Option<bool>) -> Option<bool> {
    match a {
        Some(false) => Some(false),
        a => match (a, b()) {
            (_, Some(false)) => Some(false),
            (Some(true), Some(true)) => Some(true),
            _ => None,
        },
    }
}

fn or(a: Option<bool>, b: impl FnOnce() -> Option<bool>) -> Option<bool> {
    match a {
        Some(true) => Some(true),
        a => match (a, b()) {
            (_, Some(true)) => Some(true),
            (Some(false), Some(false)) => Some(false),
            _ => None,
        },
    }
}

fn negate(v: Option<bool>, negated: bool) -> Option<bool> {
    if negated {
        v.map(|b| !b)
    } else {
        v
    }
}

/// Whether `expr` holds for `subject`: `Some(true)`, `Some(false)`, or `None` (unknown).
pub fn truth(expr: &Expr, subject: &dyn Subject) -> Option<bool> {
    match expr {
        Expr::Not(e) => truth(e, subject).map(|b| !b),
        Expr::And(a, b) => and(truth(a, subject), || truth(b, subject)),
        Expr::Or(a, b) => or(truth(a, subject), || truth(b, subject)),
        Expr::Binary(op @ (Op::Eq | Op::Ne | Op::Lt | Op::Le | Op::Gt | Op::Ge), a, b) => {
            comparison(*op, value(a, subject), value(b, subject))
        }
        Expr::Between { value: v, low, high, negated } => {
            let v = value(v, subject);
            let inside =
                and(comparison(Op::Ge, v, value(low, subject)), || comparison(Op::Le, v, value(high, subject)));
            negate(inside, *negated)
        }
        Expr::In { value: v, list, negated } => {
            let v = value(v, subject);
            if v == Value::Null {
                return None;
            }
            let mut unknown = false;
            for l in list {
                match comparison(Op::Eq, v, literal(l)) {
                    Some(true) => return negate(Some(true), *negated),
                    None => unknown = true,
                    Some(false) => {}
                }
            }
            negate(if unknown { None } else { Some(false) }, *negated)
        }
        Expr::Like { value: v, pattern, escape, negated } => match value(v, subject) {
            Value::Str(s) => negate(Some(like(s, pattern, *escape)), *negated),
            _ => None,
        },
        Expr::IsNull { value: v, negated } => {
            let missing =
                matches!(v.as_ref(), Expr::Path(p) if lookup(p, subject).is_none()) || value(v, subject) == Value::Null;
            Some(missing != *negated)
        }
        Expr::Exists(path) => Some(lookup(path, subject).is_some()),
        other => match value(other, subject) {
            Value::Bool(b) => Some(b),
            _ => None,
        },
    }
}
