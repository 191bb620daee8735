//! Micro-benchmarks of routing: a topic exchange with many bindings (exact words, `*` and `#`
//! patterns) matching one routing key, and a direct exchange for comparison; filters on bodies,
//! LIKE among them.
//! Run with `cargo bench -p warren-core`.

use amqp_codec::FieldTable;
use divan::{black_box, Bencher};
use warren_core::exchange::ExchangeKind;
use warren_core::routing::{Binding, Bindings};

fn main() {
    divan::main();
}

/// `n` bindings in the shapes topic users write: per-region exact keys, `*` wildcards, and a
/// few `#` catch-alls.
fn topic_bindings(n: usize) -> Bindings<u32> {
    let mut b = Bindings::new(ExchangeKind::Topic);
    for i in 0..n {
        let key = match i % 10 {
            0 => format!("region{}.#", i % 97),
            1..=4 => format!("region{}.store{}.*", i % 97, i),
            _ => format!("region{}.store{}.orders.created", i % 97, i),
        };
        let binding = Binding { destination: i as u32, routing_key: key.as_str().into(), arguments: FieldTable::new() };
        b.add(binding).expect("a valid binding");
    }
    b
}

#[divan::bench(args = [10, 1_000, 100_000])]
fn topic_route_one_key(bencher: Bencher, n: usize) {
    let b = topic_bindings(n);
    bencher.bench_local(|| {
        let mut hits = 0u32;
        b.route(black_box("region7.store7.orders.created"), None, &mut |_| true, &mut |_| hits += 1);
        hits
    });
}

#[divan::bench(args = [10, 1_000, 100_000])]
fn direct_route_one_key(bencher: Bencher, n: usize) {
    let mut b = Bindings::new(ExchangeKind::Direct);
    for i in 0..n {
        let key = format!("queue-{i}");
        b.add(Binding { destination: i as u32, routing_key: key.as_str().into(), arguments: FieldTable::new() })
            .expect("a valid binding");
    }
    bencher.bench_local(|| {
        let mut hits = 0u32;
        b.route(black_box("queue-7"), None, &mut |_| true, &mut |_| hits += 1);
        hits
    });
}

/// A message for the filter benchmarks: its body parsed as JSON at most once, on first use, as
/// the broker's message view does.
struct Body {
    raw: Vec<u8>,
    parsed: std::cell::OnceCell<Option<serde_json::Value>>,
}

impl warren_core::filter::Subject for Body {
    fn property(&self, name: &str) -> Option<warren_core::filter::Value<'_>> {
        (name == "routing_key").then_some(warren_core::filter::Value::Str("orders"))
    }
    fn header(&self, _: &str) -> Option<warren_core::filter::Value<'_>> {
        None
    }
    fn body(&self) -> Option<&serde_json::Value> {
        self.parsed.get_or_init(|| serde_json::from_slice(&self.raw).ok()).as_ref()
    }
}

/// A JSON order of about `size` bytes (its `notes` pad it out).
fn order_body(size: usize) -> Vec<u8> {
    let pad = "x".repeat(size.saturating_sub(60));
    format!(r#"{{"order": {{"total": 150, "region": "eu", "notes": "{pad}"}}}}"#).into_bytes()
}

/// `n` bindings on one direct key, each with its own body filter (one in ten admits the
/// message): routing one message evaluates all of them and parses the body once.
#[divan::bench(args = [(1, 100), (100, 100), (10_000, 100), (1, 10_240), (100, 10_240), (10_000, 10_240)])]
fn direct_route_filtered(bencher: Bencher, (n, size): (usize, usize)) {
    let mut b = Bindings::new(ExchangeKind::Direct);
    for i in 0..n {
        let mut arguments = FieldTable::new();
        let expr = format!("body.order.total > {} AND body.order.region IN ('eu', 'us')", (i % 10) * 20);
        arguments.insert("x-filter", amqp_codec::FieldValue::LongStr(expr.into_bytes().into()));
        b.add(Binding { destination: i as u32, routing_key: "orders".into(), arguments }).expect("a valid filter");
    }
    let raw = order_body(size);
    bencher.bench_local(|| {
        let message = Body { raw: raw.clone(), parsed: std::cell::OnceCell::new() };
        let mut hits = 0u32;
        b.route(black_box("orders"), None, &mut |f| f.matches(&message), &mut |_| hits += 1);
        hits
    });
}

/// A LIKE filter on a body field of about `size` bytes (`notes`), with a short pattern and a
/// long one (past one 64-bit word of pattern positions).
#[divan::bench(args = [(8, 100), (8, 10_240), (200, 100), (200, 10_240)])]
fn like_filter(bencher: Bencher, (pattern_len, size): (usize, usize)) {
    let pattern = format!("%{}y%", "x".repeat(pattern_len.saturating_sub(3)));
    let filter = warren_core::filter::Filter::parse(&format!("body.order.notes LIKE '{pattern}'")).expect("a filter");
    let message = Body { raw: order_body(size), parsed: std::cell::OnceCell::new() };
    bencher.bench_local(|| filter.matches(black_box(&message)));
}
