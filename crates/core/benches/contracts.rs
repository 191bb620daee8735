//! Micro-benchmarks of contract checks: an order (the body `warren perf --json-body` sends)
//! against the schema of `scripts/bench/order-schema.json`, valid and not, next to parsing the
//! body alone. Run with `cargo bench -p warren-core --bench contracts`.

use divan::{black_box, Bencher};
use warren_core::contract::{Compatibility, Contract, OnViolation, Scope};

fn main() {
    divan::main();
}

const SCHEMA: &str = include_str!("../../../scripts/bench/order-schema.json");

/// An order of `size` bytes, shaped as `warren perf --json-body` shapes it.
fn order(size: usize, region: &str) -> Vec<u8> {
    let head = format!(
        r#"{{"t":"00000000001234567890","order":{{"id":12345,"region":"{region}","total":99.5,"currency":"EUR","items":[{{"sku":"A-1","qty":2}},{{"sku":"B-7","qty":1}}]}},"pad":""#
    );
    let mut body = head.into_bytes();
    let pad = size.saturating_sub(body.len() + 2);
    body.resize(body.len() + pad, b'x');
    body.extend_from_slice(br#""}"#);
    body
}

fn contract() -> Contract {
    let scope = Scope {
        exchange: "orders".into(),
        routing_key: None,
        message_type: None,
        content_type: Some("application/json".into()),
        max_body_bytes: None,
    };
    let schema = serde_json::from_str(SCHEMA).expect("the schema is JSON");
    Contract::new("order", "/", scope, Compatibility::Backward, OnViolation::Reject, schema).expect("a valid schema")
}

#[divan::bench(args = [1024, 10 * 1024])]
fn parse_only(bencher: Bencher, size: usize) {
    let body = order(size, "eu");
    bencher.bench_local(|| serde_json::from_slice::<serde_json::Value>(black_box(&body)).is_ok());
}

#[divan::bench(args = [1024, 10 * 1024])]
fn check_valid(bencher: Bencher, size: usize) {
    let (c, body) = (contract(), order(size, "eu"));
    assert_eq!(c.check(Some("application/json"), &body), Ok(1));
    bencher.bench_local(|| c.check(black_box(Some("application/json")), black_box(&body)).is_ok());
}

#[divan::bench(args = [1024, 10 * 1024])]
fn check_violating(bencher: Bencher, size: usize) {
    let (c, body) = (contract(), order(size, "mars"));
    assert!(c.check(Some("application/json"), &body).is_err());
    bencher.bench_local(|| c.check(black_box(Some("application/json")), black_box(&body)).is_err());
}
