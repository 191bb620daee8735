//! Micro-benchmarks of routing: a topic exchange with many bindings (exact words, `*` and `#`
//! patterns) matching one routing key, and a direct exchange for comparison.
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
        b.route(black_box("region7.store7.orders.created"), None, &mut |_| hits += 1);
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
        b.route(black_box("queue-7"), None, &mut |_| hits += 1);
        hits
    });
}
