//! Message transforms: named jq programs (run by jaq) over a JSON view of a message. Programs
//! are compiled and run only in worker processes (`worker.rs`), which the broker drives through
//! a bounded pool (`pool.rs`) over pipes (`protocol.rs`): jaq has no step limit and overflows the
//! stack on unbounded recursion (which aborts a process), so a program that loops is stopped by
//! killing its worker at its deadline, and one that crashes costs only its worker.

pub mod pool;
pub mod protocol;
pub mod worker;

pub use pool::{Failure, Limits, Pool, PoolOptions, Program};
