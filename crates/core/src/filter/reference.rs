//! A property test: random filters, written out as text and parsed back, decide as a reference
//! evaluator does on random messages. The reference is written apart from the evaluator: values
//! as plain enums, and every connective as an explicit truth table.

use super::parse::{Expr, Literal, Op, Path, Root};
use super::{Filter, Subject, Value};
use proptest::prelude::*;
use std::collections::HashMap;

/// Truth in three values.
#[derive(Debug, Clone, Copy, PartialEq)]
enum T3 {
    T,
    F,
    U,
}

#[derive(Debug, Clone, PartialEq)]
enum RV {
    Missing,
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

const T3_AND: [[T3; 3]; 3] = [[T3::T, T3::F, T3::U], [T3::F, T3::F, T3::F], [T3::U, T3::F, T3::U]];
const T3_OR: [[T3; 3]; 3] = [[T3::T, T3::T, T3::T], [T3::T, T3::F, T3::U], [T3::T, T3::U, T3::U]];

fn idx(t: T3) -> usize {
    match t {
        T3::T => 0,
        T3::F => 1,
        T3::U => 2,
    }
}

fn not3(t: T3) -> T3 {
    match t {
        T3::T => T3::F,
        T3::F => T3::T,
        T3::U => T3::U,
    }
}

fn num(v: &RV) -> Option<f64> {
    match v {
        RV::Int(i) => Some(*i as f64),
        RV::Float(f) => Some(*f),
        _ => None,
    }
}

fn eval(e: &Expr, env: &HashMap<String, RV>) -> RV {
    match e {
        Expr::Literal(Literal::Null) => RV::Null,
        Expr::Literal(Literal::Bool(b)) => RV::Bool(*b),
        Expr::Literal(Literal::Int(i)) => RV::Int(*i),
        Expr::Literal(Literal::Float(f)) => RV::Float(*f),
        Expr::Literal(Literal::Str(s)) => RV::Str(s.clone()),
        Expr::Path(Path { root: Root::Header(h), .. }) => env.get(h).cloned().unwrap_or(RV::Missing),
        Expr::Neg(x) => match eval(x, env) {
            RV::Int(i) => RV::Int(-i),
            RV::Float(f) => RV::Float(-f),
            _ => RV::Null,
        },
        Expr::Binary(op @ (Op::Add | Op::Sub | Op::Mul | Op::Div), a, b) => {
            let (a, b) = (eval(a, env), eval(b, env));
            match (&a, &b, op) {
                (RV::Int(x), RV::Int(y), Op::Add) => RV::Int(x + y),
                (RV::Int(x), RV::Int(y), Op::Sub) => RV::Int(x - y),
                (RV::Int(x), RV::Int(y), Op::Mul) => RV::Int(x * y),
                (RV::Int(_), RV::Int(0), Op::Div) => RV::Null,
                (RV::Int(x), RV::Int(y), Op::Div) if x % y == 0 => RV::Int(x / y),
                _ => match (num(&a), num(&b)) {
                    (Some(x), Some(y)) => {
                        let r = match op {
                            Op::Add => x + y,
                            Op::Sub => x - y,
                            Op::Mul => x * y,
                            _ => x / y,
                        };
                        if r.is_finite() {
                            RV::Float(r)
                        } else {
                            RV::Null
                        }
                    }
                    _ => RV::Null,
                },
            }
        }
        other => match truth(other, env) {
            T3::T => RV::Bool(true),
            T3::F => RV::Bool(false),
            T3::U => RV::Null,
        },
    }
}

/// -1, 0, 1 as a comparison's outcome, or None when the pair does not compare.
fn cmp(a: &RV, b: &RV) -> Option<i8> {
    let sign = |o: std::cmp::Ordering| o as i8;
    match (a, b) {
        (RV::Int(x), RV::Int(y)) => Some(sign(x.cmp(y))),
        (RV::Str(x), RV::Str(y)) => Some(sign(x.cmp(y))),
        (RV::Bool(x), RV::Bool(y)) => Some(sign(x.cmp(y))),
        _ => Some(sign(num(a)?.partial_cmp(&num(b)?)?)),
    }
}

fn compare(op: Op, a: &RV, b: &RV) -> T3 {
    if matches!(a, RV::Bool(_)) && !matches!(op, Op::Eq | Op::Ne) {
        return T3::U;
    }
    let Some(c) = cmp(a, b) else { return T3::U };
    let holds = match op {
        Op::Eq => c == 0,
        Op::Ne => c != 0,
        Op::Lt => c < 0,
        Op::Le => c <= 0,
        Op::Gt => c > 0,
        _ => c >= 0,
    };
    if holds {
        T3::T
    } else {
        T3::F
    }
}

fn truth(e: &Expr, env: &HashMap<String, RV>) -> T3 {
    let negate_if = |t: T3, n: bool| if n { not3(t) } else { t };
    match e {
        Expr::Not(x) => not3(truth(x, env)),
        Expr::And(a, b) => T3_AND[idx(truth(a, env))][idx(truth(b, env))],
        Expr::Or(a, b) => T3_OR[idx(truth(a, env))][idx(truth(b, env))],
        Expr::Binary(op @ (Op::Eq | Op::Ne | Op::Lt | Op::Le | Op::Gt | Op::Ge), a, b) => {
            compare(*op, &eval(a, env), &eval(b, env))
        }
        Expr::Between { value, low, high, negated } => {
            let v = eval(value, env);
            let inside = T3_AND[idx(compare(Op::Ge, &v, &eval(low, env)))][idx(compare(Op::Le, &v, &eval(high, env)))];
            negate_if(inside, *negated)
        }
        Expr::In { value, list, negated } => {
            let v = eval(value, env);
            if matches!(v, RV::Null | RV::Missing) {
                return T3::U;
            }
            let outcomes: Vec<T3> =
                list.iter().map(|l| compare(Op::Eq, &v, &eval(&Expr::Literal(l.clone()), env))).collect();
            let found = if outcomes.contains(&T3::T) {
                T3::T
            } else if outcomes.contains(&T3::U) {
                T3::U
            } else {
                T3::F
            };
            negate_if(found, *negated)
        }
        Expr::Like { value, pattern, negated, .. } => match eval(value, env) {
            // Patterns here are a literal prefix and a trailing '%', or exact text.
            RV::Str(s) => {
                let hit = match pattern.strip_suffix('%') {
                    Some(prefix) => s.starts_with(prefix),
                    None => s == *pattern,
                };
                negate_if(if hit { T3::T } else { T3::F }, *negated)
            }
            _ => T3::U,
        },
        Expr::IsNull { value, negated } => {
            let null = matches!(eval(value, env), RV::Null | RV::Missing);
            if null != *negated {
                T3::T
            } else {
                T3::F
            }
        }
        Expr::Exists(Path { root: Root::Header(h), .. }) => {
            if env.contains_key(h) {
                T3::T
            } else {
                T3::F
            }
        }
        other => match eval(other, env) {
            RV::Bool(true) => T3::T,
            RV::Bool(false) => T3::F,
            _ => T3::U,
        },
    }
}

struct Env(HashMap<String, RV>);

impl Subject for Env {
    fn property(&self, _: &str) -> Option<Value<'_>> {
        None
    }
    fn header(&self, name: &str) -> Option<Value<'_>> {
        Some(match self.0.get(name)? {
            RV::Missing => return None,
            RV::Null => Value::Null,
            RV::Bool(b) => Value::Bool(*b),
            RV::Int(i) => Value::Int(*i),
            RV::Float(f) => Value::Float(*f),
            RV::Str(s) => Value::Str(s),
        })
    }
    fn body(&self) -> Option<&serde_json::Value> {
        None
    }
}

fn literal() -> impl Strategy<Value = Literal> {
    prop_oneof![
        Just(Literal::Null),
        any::<bool>().prop_map(Literal::Bool),
        (-3i64..4).prop_map(Literal::Int),
        (-6i32..7).prop_map(|n| Literal::Float(n as f64 / 2.0)),
        prop_oneof![Just("a"), Just("ab"), Just("b"), Just("")].prop_map(|s| Literal::Str(s.to_owned())),
    ]
}

fn header() -> impl Strategy<Value = Path> {
    prop_oneof![Just("x"), Just("y"), Just("z")]
        .prop_map(|h| Path { root: Root::Header(h.to_owned()), steps: Vec::new() })
}

fn expr() -> impl Strategy<Value = Expr> {
    let leaf = prop_oneof![literal().prop_map(Expr::Literal), header().prop_map(Expr::Path)];
    leaf.prop_recursive(4, 32, 3, |inner| {
        let boxed = || inner.clone().prop_map(Box::new);
        let compare_op =
            prop_oneof![Just(Op::Eq), Just(Op::Ne), Just(Op::Lt), Just(Op::Le), Just(Op::Gt), Just(Op::Ge)];
        let arith_op = prop_oneof![Just(Op::Add), Just(Op::Sub), Just(Op::Mul), Just(Op::Div)];
        prop_oneof![
            boxed().prop_map(Expr::Not),
            boxed().prop_map(Expr::Neg),
            (boxed(), boxed()).prop_map(|(a, b)| Expr::And(a, b)),
            (boxed(), boxed()).prop_map(|(a, b)| Expr::Or(a, b)),
            (compare_op, boxed(), boxed()).prop_map(|(op, a, b)| Expr::Binary(op, a, b)),
            (arith_op, boxed(), boxed()).prop_map(|(op, a, b)| Expr::Binary(op, a, b)),
            (boxed(), boxed(), boxed(), any::<bool>()).prop_map(|(value, low, high, negated)| Expr::Between {
                value,
                low,
                high,
                negated
            }),
            (boxed(), prop::collection::vec(literal(), 1..4), any::<bool>())
                .prop_map(|(value, list, negated)| Expr::In { value, list, negated }),
            (boxed(), prop_oneof![Just("a%"), Just("ab"), Just("%"), Just("")], any::<bool>())
                .prop_map(|(value, p, negated)| Expr::Like { value, pattern: p.to_owned(), escape: None, negated }),
            (boxed(), any::<bool>()).prop_map(|(value, negated)| Expr::IsNull { value, negated }),
            header().prop_map(Expr::Exists),
        ]
    })
}

fn env() -> impl Strategy<Value = HashMap<String, RV>> {
    let value = prop_oneof![
        Just(RV::Missing),
        Just(RV::Null),
        any::<bool>().prop_map(RV::Bool),
        (-3i64..4).prop_map(RV::Int),
        (-6i32..7).prop_map(|n| RV::Float(n as f64 / 2.0)),
        prop_oneof![Just("a"), Just("ab"), Just("abc"), Just("b")].prop_map(|s| RV::Str(s.to_owned())),
    ];
    (value.clone(), value.clone(), value).prop_map(|(x, y, z)| {
        [("x", x), ("y", y), ("z", z)]
            .into_iter()
            .filter(|(_, v)| *v != RV::Missing)
            .map(|(k, v)| (k.to_owned(), v))
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn the_evaluator_decides_as_the_reference_does(e in expr(), env in env()) {
        let text = e.to_string();
        let filter = Filter::parse(&text).map_err(|err| TestCaseError::fail(format!("{text}: {err}")))?;
        let expected = truth(&e, &env) == T3::T;
        prop_assert_eq!(filter.matches(&Env(env.clone())), expected, "{} with {:?}", text, env);
    }
}
