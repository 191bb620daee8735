//! The worker pool with real worker processes: programs run with their lookup tables and
//! bounds, failures say why, and a program that loops or crashes costs only its worker.

use serde_json::{json, Value};
use std::sync::Arc;
use warren_transform::{Failure, Limits, Pool, PoolOptions, Program};

fn pool(workers: usize) -> Arc<Pool> {
    Pool::new(PoolOptions {
        command: env!("CARGO_BIN_EXE_warren-transform-worker").into(),
        args: Vec::new(),
        workers,
        max_waiting: 16,
        memory_limit_bytes: Some(128 << 20),
    })
}

fn program(id: u64, text: &str, lookup: Value) -> Program {
    Program { id, text: text.into(), lookup: Arc::new(lookup) }
}

const LIMITS: Limits = Limits { timeout_ms: 5_000, max_outputs: 10, max_output_bytes: 4096 };

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn programs_run_with_their_lookup_tables_and_bounds() {
    let pool = pool(1);
    let input = json!({"body": {"sku": "A-1", "qty": 2, "lines": [1, 2, 3]}, "routing_key": "orders"});
    let enrich =
        program(1, r#"{body: {item: $lookup.names[.body.sku], qty: .body.qty}}"#, json!({"names": {"A-1": "anvil"}}));
    assert_eq!(pool.run(&enrich, input.clone(), LIMITS).await, Ok(vec![json!({"body": {"item": "anvil", "qty": 2}})]));
    let split = program(2, ".body.lines[] | {body: .}", json!(null));
    assert_eq!(pool.run(&split, input.clone(), LIMITS).await.unwrap().len(), 3);
    let few = Limits { max_outputs: 2, ..LIMITS };
    assert!(
        matches!(pool.run(&split, input.clone(), few).await, Err(Failure::Program(t)) if t.contains("more than 2 outputs"))
    );
    let small = Limits { max_output_bytes: 10, ..LIMITS };
    assert!(
        matches!(pool.run(&enrich, input.clone(), small).await, Err(Failure::Program(t)) if t.contains("over 10 bytes"))
    );
    let fails = program(3, r#"error("no such warehouse")"#, json!(null));
    assert!(
        matches!(pool.run(&fails, input.clone(), LIMITS).await, Err(Failure::Program(t)) if t.contains("no such warehouse"))
    );
    assert!(
        matches!(pool.check("{body: .body.", &json!(null), 5_000).await, Err(Failure::Program(t)) if t.contains("does not parse"))
    );
    assert!(
        matches!(pool.check("nosuchfunction(1)", &json!(null), 5_000).await, Err(Failure::Program(t)) if t.contains("compile"))
    );
    assert_eq!(pool.check(".body", &json!(null), 5_000).await, Ok(()));
    assert_eq!(pool.stats.started.load(std::sync::atomic::Ordering::Relaxed), 1, "one worker served it all");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_that_loops_or_crashes_costs_only_its_worker() {
    let pool = pool(1);
    let ok = program(1, ".body + 1", json!(null));
    let input = json!({"body": 1});
    let spins = program(2, "def f: f; f", json!(null));
    let short = Limits { timeout_ms: 300, ..LIMITS };
    assert_eq!(pool.run(&spins, input.clone(), short).await, Err(Failure::Timeout { after_ms: 300 }));
    assert_eq!(pool.run(&ok, input.clone(), LIMITS).await, Ok(vec![json!(2)]), "a fresh worker after the kill");
    let recurses = program(3, "def f: 1 + f; f", json!(null));
    assert!(matches!(pool.run(&recurses, input.clone(), LIMITS).await, Err(Failure::Crashed(_))));
    assert_eq!(pool.run(&ok, input.clone(), LIMITS).await, Ok(vec![json!(2)]), "and after the crash");
    let hoards = program(4, "[range(1e10)] | length", json!(null));
    assert!(matches!(pool.run(&hoards, input.clone(), LIMITS).await, Err(Failure::Crashed(_))), "bounded in memory");
    assert_eq!(pool.run(&ok, input.clone(), LIMITS).await, Ok(vec![json!(2)]));
    let stats = &pool.stats;
    let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!((load(&stats.timeouts), load(&stats.crashes), load(&stats.started)), (1, 2, 4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_fails_only_the_inputs_at_fault() {
    let pool = pool(1);
    let picky = program(1, r#"if .n == 3 then error("three") else .n * 10 end"#, json!(null));
    let inputs: Vec<Value> = (1..=4).map(|n| json!({"n": n})).collect();
    let results = pool.run_many(&picky, inputs, LIMITS).await;
    assert_eq!(results[0], Ok(vec![json!(10)]));
    assert!(matches!(&results[2], Err(Failure::Program(t)) if t.contains("three")));
    assert_eq!(results[3], Ok(vec![json!(40)]));
    // One input spins: the batch runs past its budget, and the inputs are run again one by one.
    let spins_on_zero = program(2, "def f: f; if .n == 0 then f else .n end", json!(null));
    let short = Limits { timeout_ms: 300, ..LIMITS };
    let results = pool.run_many(&spins_on_zero, vec![json!({"n": 5}), json!({"n": 0}), json!({"n": 7})], short).await;
    assert_eq!(results[0], Ok(vec![json!(5)]));
    assert_eq!(results[1], Err(Failure::Timeout { after_ms: 300 }));
    assert_eq!(results[2], Ok(vec![json!(7)]));
}
