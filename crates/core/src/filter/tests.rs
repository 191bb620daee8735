//! The filter language on messages made by hand: every operator, SQL's three-valued logic, body
//! paths, headers and properties, and refusals with the position of the error.

use super::*;
use serde_json::json;
use std::collections::HashMap;

/// A message for the tests: properties, headers and maybe a JSON body.
#[derive(Default)]
struct Msg {
    properties: HashMap<&'static str, Value<'static>>,
    headers: HashMap<&'static str, Value<'static>>,
    body: Option<serde_json::Value>,
}

impl Subject for Msg {
    fn property(&self, name: &str) -> Option<Value<'_>> {
        self.properties.get(name).copied()
    }
    fn header(&self, name: &str) -> Option<Value<'_>> {
        self.headers.get(name).copied()
    }
    fn body(&self) -> Option<&serde_json::Value> {
        self.body.as_ref()
    }
}

fn order() -> Msg {
    let mut m = Msg::default();
    m.properties.insert("routing_key", Value::Str("orders.created"));
    m.properties.insert("content_type", Value::Str("application/json"));
    m.properties.insert("priority", Value::Int(5));
    m.headers.insert("region", Value::Str("eu"));
    m.headers.insert("x-retries", Value::Int(2));
    m.headers.insert("vip", Value::Bool(true));
    m.body = Some(json!({"order": {"total": 150.5, "items": [{"sku": "A1", "qty": 3}], "coupon": null},
                         "customer": "Ada O'Brien", "express": false}));
    m
}

fn check(filter: &str, m: &Msg) -> bool {
    Filter::parse(filter).unwrap_or_else(|e| panic!("{filter}: {e}")).matches(m)
}

#[test]
fn comparisons_and_arithmetic_on_every_kind_of_value() {
    let m = order();
    for yes in [
        "body.order.total > 100",
        "body.order.total * 2 >= 301",
        "body.order.items[0].qty = 3",
        "body.order.items[0].sku = 'A1'",
        "priority BETWEEN 1 AND 9",
        "priority + 1 = 6 AND priority - 1 = 4 AND priority % 2 = 1 AND priority / 2 = 2.5",
        "routing_key <> 'orders.cancelled'",
        "routing_key != 'orders.cancelled'",
        "headers['x-retries'] < 3",
        "region = 'eu'",
        "headers.region = 'eu'",
        "vip = TRUE",
        "vip",
        "NOT body.express",
        "body.customer = 'Ada O''Brien'",
        "-priority = -5",
        "content_type LIKE 'application/%'",
        "region IN ('us', 'eu')",
        "region NOT IN ('us', 'asia')",
        "priority NOT BETWEEN 6 AND 9",
        "body.order.coupon IS NULL",
        "body.order.missing IS NULL",
        "body.order IS NOT NULL",
        "EXISTS(body.order.coupon)",
        "EXISTS body.order.total",
        "NOT EXISTS(body.order.gift)",
        "(region = 'us' OR region = 'eu') AND priority > 1",
        "1e2 = 100",
        ".5 < 1",
    ] {
        assert!(check(yes, &m), "{yes} should match");
    }
    for no in [
        "body.order.total < 100",
        "region = 'us'",
        "priority BETWEEN 6 AND 9",
        "content_type LIKE 'text/%'",
        "region IN ('us', 'asia')",
        "body.express",
        "body.order IS NULL",
        "EXISTS(body.order.gift)",
        "priority = '5'",
    ] {
        assert!(!check(no, &m), "{no} should not match");
    }
}

#[test]
fn unknown_is_neither_true_nor_false() {
    let m = order();
    // A missing header compared is unknown: neither it nor its negation matches.
    assert!(!check("missing = 1", &m));
    assert!(!check("NOT (missing = 1)", &m));
    assert!(!check("missing NOT IN ('a')", &m));
    // Unknown OR true is true; unknown AND false is false, so its negation matches.
    assert!(check("missing = 1 OR region = 'eu'", &m));
    assert!(check("NOT (missing = 1 AND region = 'us')", &m));
    // An IN list with NULL: no match is unknown.
    assert!(!check("NOT (region IN ('us', NULL))", &m));
    // Division by zero and overflow give no value.
    assert!(!check("priority / 0 = 0", &m));
    assert!(check("(priority / 0) IS NULL", &m));
    assert!(check("9223372036854775807 * 2 > 9223372036854775807", &m), "overflow goes to doubles");
    assert!(check("(-9223372036854775807 - 1) / -1 > 0", &m), "no panic at the edge of i64");
    assert!(check("((-9223372036854775807 - 1) % -1) IS NULL OR TRUE", &m));
}

#[test]
fn a_body_that_is_not_json_has_no_fields() {
    let mut m = order();
    m.body = None;
    assert!(!check("body.order.total > 100", &m));
    assert!(check("body.order.total IS NULL", &m));
    assert!(check("region = 'eu'", &m), "the rest of the message still counts");
    assert!(Filter::parse("body.order.total > 100").unwrap().reads_body());
    assert!(!Filter::parse("region = 'eu'").unwrap().reads_body());
}

#[test]
fn bad_filters_are_refused_with_where_and_why() {
    let cases = [
        ("", 0, "empty"),
        ("region = ", 9, "expected a value"),
        ("region = 'eu", 9, "unterminated"),
        ("priority > 1 AND", 16, "expected a value"),
        ("(region = 'eu'", 14, "expected ')'"),
        ("region IN ()", 11, "literal"),
        ("region LIKE 5", 12, "string pattern"),
        ("region = 'eu' junk", 14, "unexpected 'junk'"),
        ("priority # 1", 9, "unexpected character"),
        ("headers = 1", 0, "header's name"),
        ("AND = 1", 0, "keyword"),
        ("region NOT = 'x'", 11, "BETWEEN, IN or LIKE"),
        ("x LIKE 'a' ESCAPE 'ab'", 18, "one-character"),
    ];
    for (text, position, why) in cases {
        let e = Filter::parse(text).unwrap_err();
        assert_eq!(e.position, position, "{text}: {e}");
        assert!(e.message.contains(why), "{text}: {e}");
    }
    let deep = format!("{}1 = 1{}", "(".repeat(100), ")".repeat(100));
    assert!(Filter::parse(&deep).unwrap_err().message.contains("nested"));
    assert!(Filter::parse(&"a".repeat(MAX_FILTER_LEN + 1)).unwrap_err().message.contains("longer"));
    let list = (0..=MAX_IN_LIST).map(|i| i.to_string()).collect::<Vec<_>>().join(",");
    assert!(Filter::parse(&format!("x IN ({list})")).unwrap_err().message.contains("at most"));
}

#[test]
fn keywords_are_case_insensitive_and_names_are_not() {
    let m = order();
    assert!(check("region in ('eu') and not vip = false", &m));
    assert!(!check("Region = 'eu'", &m), "header names are exact");
}
