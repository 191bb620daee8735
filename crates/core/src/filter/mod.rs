//! Content filters: expressions over a message's properties, headers and JSON body, in the
//! family of JMS message selectors and Azure Service Bus SQL filters, that bindings (`x-filter`),
//! HTTP pull receives and push subscriptions use to take only the messages they match.
//!
//! Grammar (keywords are case-insensitive; `docs/filters.md` has it with examples):
//!
//! ```text
//! expr        := or
//! or          := and ("OR" and)*
//! and         := not ("AND" not)*
//! not         := "NOT" not | predicate
//! predicate   := sum [ compare ]
//! compare     := ("=" | "<>" | "!=" | "<" | "<=" | ">" | ">=") sum
//!              | ["NOT"] "BETWEEN" sum "AND" sum
//!              | ["NOT"] "IN" "(" literal ("," literal)* ")"
//!              | ["NOT"] "LIKE" string ["ESCAPE" string]
//!              | "IS" ["NOT"] "NULL"
//! sum         := product (("+" | "-") product)*
//! product     := unary (("*" | "/" | "%") unary)*
//! unary       := ("-" | "+") unary | primary
//! primary     := literal | path | "EXISTS" "(" path ")" | "(" expr ")"
//! literal     := number | string | "TRUE" | "FALSE" | "NULL"
//! path        := name ("." name | "[" (integer | string) "]")*
//! ```
//!
//! A path starting with `body` reads the JSON body; `headers` (or `headers['x-name']`) a header;
//! `routing_key`, `exchange` and the basic properties (`content_type`, `message_id`, `type`,
//! `priority`, ...) their values; any other bare name is a header, as in JMS. Comparisons follow
//! SQL's three-valued logic: anything compared with a missing value (NULL) is unknown, `NOT`
//! unknown is unknown, and a message matches only when the whole expression is true. A body that
//! is not JSON has no fields. Strings compare with strings, numbers with numbers (integers
//! exactly, otherwise as doubles); a comparison of a string with a number is unknown.

mod eval;
mod like;
mod parse;
mod print;

pub use eval::{Subject, Value};
pub use parse::{parse_path, Expr, FilterError, Literal, Op, Path, Root, Step};

/// Longest expression accepted, in bytes.
pub const MAX_FILTER_LEN: usize = 4096;
/// Deepest nesting of an expression (parentheses, operators).
pub const MAX_DEPTH: usize = 64;
/// Most values in one `IN (...)` list.
pub const MAX_IN_LIST: usize = 1024;

/// A checked, parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    expr: Expr,
    /// Whether any path reads the body (so routing parses it only for such filters).
    reads_body: bool,
    text: String,
}

impl Filter {
    /// Parses `text`; the error says what is wrong and at which byte.
    pub fn parse(text: &str) -> Result<Filter, FilterError> {
        let expr = parse::parse(text)?;
        let reads_body = expr.reads_body();
        Ok(Filter { expr, reads_body, text: text.to_owned() })
    }

    /// Whether the filter matches `subject` (true only when the expression is true).
    pub fn matches(&self, subject: &dyn Subject) -> bool {
        eval::truth(&self.expr, subject) == Some(true)
    }

    pub fn reads_body(&self) -> bool {
        self.reads_body
    }

    /// The expression as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn expr(&self) -> &Expr {
        &self.expr
    }
}

#[cfg(test)]
mod reference;
#[cfg(test)]
mod tests;
