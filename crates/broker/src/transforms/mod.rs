//! Transforms as broker objects: named jq programs in a vhost, with lookup tables and a budget
//! (time, outputs, bytes), durable in the definitions log and run by the worker pool of
//! `warren_transform` (never in the broker's own process). The set is replaced whole on a
//! change and read without locks; each version gets a program id of its own, so a worker never
//! runs a stale one. `view.rs` turns a message into the JSON a program reads and its outputs
//! back into messages.

pub mod view;

use crate::durable::transform_defs as keys;
use crate::Broker;
use arc_swap::ArcSwap;
use serde_json::Value;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use warren_core::AmqpError;
use warren_transform::{Failure, Limits, Pool, Program};

/// The exchange argument naming the transform messages go through before routing.
pub const TRANSFORM_ARG: &str = "x-transform";
/// Most transforms a broker keeps; the largest program and lookup tables.
pub const MAX_TRANSFORMS: usize = 1_000;
pub const MAX_PROGRAM_BYTES: usize = 64 * 1024;
pub const MAX_LOOKUP_BYTES: usize = 4 << 20;

/// The `[transforms]` section of the configuration: the workers that run transforms, and the
/// budgets a transform may ask for with their defaults.
#[derive(Debug, Clone, Copy, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TransformSettings {
    /// Worker processes (each runs one batch at a time).
    pub workers: usize,
    /// A transform's time budget when it names none, and the most it may name, ms.
    pub default_timeout_ms: u64,
    pub max_timeout_ms: u64,
    /// Outputs of one run, by default and at most.
    pub default_max_outputs: usize,
    pub max_outputs: usize,
    /// Bytes of JSON one run may output, by default and at most.
    pub default_max_output_bytes: usize,
    pub max_output_bytes: usize,
    /// Messages that may wait for a worker; beyond, they fail at once as busy (publishers stop
    /// being read at half of it).
    pub max_waiting: usize,
    /// Address space of one worker (RLIMIT_AS), bytes.
    pub worker_memory_bytes: u64,
}

impl TransformSettings {
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=64).contains(&self.workers) {
            return Err("transforms.workers must be 1 to 64".into());
        }
        let fits = self.default_timeout_ms >= 1
            && self.default_timeout_ms <= self.max_timeout_ms
            && self.default_max_outputs <= self.max_outputs
            && self.default_max_output_bytes <= self.max_output_bytes;
        if !fits {
            return Err("transforms: each default must be at least 1 ms (timeouts) and at most its maximum".into());
        }
        if self.worker_memory_bytes < 64 << 20 {
            return Err("transforms.worker_memory_bytes must be at least 64 MiB".into());
        }
        Ok(())
    }
}

impl Default for TransformSettings {
    fn default() -> Self {
        TransformSettings {
            workers: 2,
            default_timeout_ms: 1_000,
            max_timeout_ms: 30_000,
            default_max_outputs: 100,
            max_outputs: 10_000,
            default_max_output_bytes: 1 << 20,
            max_output_bytes: 16 << 20,
            max_waiting: 10_000,
            worker_memory_bytes: 512 << 20,
        }
    }
}

/// One transform, at its latest version.
#[derive(Debug, Clone)]
pub struct Transform {
    pub vhost: String,
    pub name: String,
    pub version: u32,
    pub program: Program,
    pub limits: Limits,
    /// What it did, over all its versions since the start.
    pub counts: Arc<TransformCounts>,
}

/// Messages a transform ran on, the messages it made, and the runs that failed.
#[derive(Debug, Default)]
pub struct TransformCounts {
    pub runs: AtomicU64,
    pub outputs: AtomicU64,
    pub failures: AtomicU64,
}

impl TransformCounts {
    fn count(&self, results: &[Result<Vec<Value>, Failure>]) {
        let outputs: usize = results.iter().map(|r| r.as_ref().map_or(0, Vec::len)).sum();
        let failures = results.iter().filter(|r| r.is_err()).count();
        self.runs.fetch_add(results.len() as u64, Ordering::Relaxed);
        self.outputs.fetch_add(outputs as u64, Ordering::Relaxed);
        self.failures.fetch_add(failures as u64, Ordering::Relaxed);
    }
}

impl Transform {
    /// The transform as its definition says, with a fresh program id.
    pub fn new(vhost: &str, name: &str, version: u32, text: String, lookup: Value, limits: Limits) -> Transform {
        let program = Program { id: next_program_id(), text: text.into(), lookup: Arc::new(lookup) };
        Transform {
            vhost: vhost.to_owned(),
            name: name.to_owned(),
            version,
            program,
            limits,
            counts: Default::default(),
        }
    }
}

fn next_program_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Every transform of a broker.
#[derive(Debug, Clone, Default)]
pub struct Transforms(Vec<Arc<Transform>>);

impl Transforms {
    pub fn all(&self) -> &[Arc<Transform>] {
        &self.0
    }

    pub fn get(&self, vhost: &str, name: &str) -> Option<&Arc<Transform>> {
        self.0.iter().find(|t| t.vhost == vhost && t.name == name)
    }
}

/// The transforms and the pool that runs them, shared by every vhost.
pub struct TransformBook {
    set: ArcSwap<Transforms>,
    pool: Option<Arc<Pool>>,
    pub settings: TransformSettings,
    /// Messages handed to transforms and not yet routed or dead-lettered; above half of
    /// `max_waiting`, publishers stop being read (see [`TransformBook::wait_for_room`]).
    in_flight: AtomicUsize,
    drained: tokio::sync::Notify,
    /// Where runs wait to be batched (started on first use, on the runtime that uses it; its
    /// length is bounded by the in-flight gate).
    jobs: std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<Job>>,
}

/// Messages one worker request carries at most.
pub const MAX_BATCH: usize = 64;

/// One message waiting for its transform.
struct Job {
    transform: Arc<Transform>,
    input: Value,
    reply: tokio::sync::oneshot::Sender<Result<Vec<Value>, Failure>>,
}

/// Starts the dispatcher: it takes every run waiting, groups them by program (in the order
/// they came), and sends each group to a worker in requests of at most [`MAX_BATCH`]; the
/// pool runs as many at once as it has workers. A request per message would cost a pipe round
/// trip each; batching spreads it over the group.
fn dispatch(pool: Arc<Pool>, workers: usize) -> tokio::sync::mpsc::UnboundedSender<Job> {
    let (jobs, mut waiting) = tokio::sync::mpsc::unbounded_channel::<Job>();
    // A batch is formed only when a worker is free for it: while all are busy, messages gather
    // into the next batches instead of queueing one by one.
    let free = Arc::new(tokio::sync::Semaphore::new(workers.max(1)));
    tokio::spawn(async move {
        while let Some(first) = waiting.recv().await {
            let Ok(turn) = free.clone().acquire_owned().await else { return };
            let mut taken = vec![first];
            while taken.len() < MAX_BATCH * 8 {
                match waiting.try_recv() {
                    Ok(job) => taken.push(job),
                    Err(_) => break,
                }
            }
            let mut groups: Vec<Vec<Job>> = Vec::new();
            for job in taken {
                match groups
                    .iter_mut()
                    .find(|g| g[0].transform.program.id == job.transform.program.id && g.len() < MAX_BATCH)
                {
                    Some(group) => group.push(job),
                    None => groups.push(vec![job]),
                }
            }
            // The first group has the free worker; the others wait their turn as well.
            let mut turn = Some(turn);
            for group in groups {
                let pool = pool.clone();
                let turn = match turn.take() {
                    Some(turn) => turn,
                    None => match free.clone().acquire_owned().await {
                        Ok(turn) => turn,
                        Err(_) => return,
                    },
                };
                tokio::spawn(async move {
                    let _turn = turn;
                    let transform = group[0].transform.clone();
                    let (inputs, replies): (Vec<Value>, Vec<_>) = group.into_iter().map(|j| (j.input, j.reply)).unzip();
                    let results = pool.run_many(&transform.program, inputs, transform.limits).await;
                    for (reply, result) in replies.into_iter().zip(results) {
                        let _ = reply.send(result);
                    }
                });
            }
        }
    });
    jobs
}

fn stopped() -> Failure {
    Failure::Unavailable("the transform dispatcher stopped".into())
}

/// Messages on their way through a transform; counted in flight until dropped.
pub struct InFlight(Arc<TransformBook>, usize);

impl Drop for InFlight {
    fn drop(&mut self) {
        let left = self.0.in_flight.fetch_sub(self.1, Ordering::AcqRel) - self.1;
        if left <= self.0.high_watermark() {
            self.0.drained.notify_waiters();
        }
    }
}

impl TransformBook {
    pub fn new(settings: TransformSettings, pool: Option<Arc<Pool>>) -> TransformBook {
        TransformBook {
            set: ArcSwap::from_pointee(Transforms::default()),
            pool,
            settings,
            in_flight: AtomicUsize::new(0),
            drained: tokio::sync::Notify::new(),
            jobs: std::sync::OnceLock::new(),
        }
    }

    fn high_watermark(&self) -> usize {
        (self.settings.max_waiting / 2).max(self.settings.workers)
    }

    /// Counts `messages` handed to a transform until the returned guard is dropped.
    pub fn begin(self: &Arc<Self>, messages: usize) -> InFlight {
        self.in_flight.fetch_add(messages, Ordering::AcqRel);
        InFlight(self.clone(), messages)
    }

    /// Messages in transforms now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Waits while more messages are in transforms than the workers can take in good time:
    /// publishing connections stop being read, as for the disk, instead of messages failing
    /// as busy.
    pub async fn wait_for_room(&self) {
        // Every publisher's read passes here: the common case takes no lock (a Notify waiter
        // registers under one).
        if self.in_flight.load(Ordering::Acquire) <= self.high_watermark() {
            return;
        }
        loop {
            let notified = self.drained.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.in_flight.load(Ordering::Acquire) <= self.high_watermark() {
                return;
            }
            notified.await;
        }
    }

    pub fn get(&self, vhost: &str, name: &str) -> Option<Arc<Transform>> {
        self.set.load().get(vhost, name).cloned()
    }

    /// Runs `transform` on `input` in a worker. Messages that come together go to a worker
    /// together, up to [`MAX_BATCH`] per request (see [`dispatch`]).
    pub async fn run(&self, transform: &Arc<Transform>, input: Value) -> Result<Vec<Value>, Failure> {
        self.run_all(transform, vec![input]).await.pop().unwrap_or_else(|| Err(stopped()))
    }

    /// Runs `transform` on each of `inputs` (all handed to the dispatcher at once, so they
    /// share batches); the results in the same order.
    pub async fn run_all(&self, transform: &Arc<Transform>, inputs: Vec<Value>) -> Vec<Result<Vec<Value>, Failure>> {
        let Some(pool) = &self.pool else {
            let none = || Err(Failure::Unavailable("this broker runs no transform workers".into()));
            return inputs.iter().map(|_| none()).collect();
        };
        let jobs = self.jobs.get_or_init(|| dispatch(pool.clone(), self.settings.workers));
        let mut answers = Vec::with_capacity(inputs.len());
        for input in inputs {
            let (reply, answer) = tokio::sync::oneshot::channel();
            let sent = jobs.send(Job { transform: transform.clone(), input, reply }).is_ok();
            answers.push(sent.then_some(answer));
        }
        let mut results = Vec::with_capacity(answers.len());
        for answer in answers {
            results.push(match answer {
                Some(answer) => answer.await.unwrap_or_else(|_| Err(stopped())),
                None => Err(stopped()),
            });
        }
        transform.counts.count(&results);
        results
    }

    /// The pool's counts, if it has one.
    pub fn pool(&self) -> Option<&Arc<Pool>> {
        self.pool.as_ref()
    }

    fn replace(&self, all: Vec<Arc<Transform>>) {
        self.set.store(Arc::new(Transforms(all)));
    }
}

impl Broker {
    /// Every transform, as they are now.
    pub fn transforms(&self) -> Arc<Transforms> {
        self.inner.transforms.set.load_full()
    }

    pub fn transform_book(&self) -> &Arc<TransformBook> {
        &self.inner.transforms
    }

    /// Whether `program` compiles (with `lookup` as `$lookup`), in a worker.
    pub async fn check_transform(&self, program: &str, lookup: &Value) -> Result<(), String> {
        if program.len() > MAX_PROGRAM_BYTES {
            return Err(format!("a program is at most {MAX_PROGRAM_BYTES} bytes"));
        }
        let lookup_bytes = serde_json::to_vec(lookup).map(|b| b.len()).unwrap_or(usize::MAX);
        if lookup_bytes > MAX_LOOKUP_BYTES {
            return Err(format!("lookup tables are at most {MAX_LOOKUP_BYTES} bytes of JSON"));
        }
        let book = &self.inner.transforms;
        let Some(pool) = &book.pool else { return Err("this broker runs no transform workers".into()) };
        pool.check(program, lookup, book.settings.max_timeout_ms).await.map_err(|e| e.to_string())
    }

    /// Adds or replaces a transform (checked with [`Broker::check_transform`] first), durably;
    /// true if it is new.
    pub fn put_transform(&self, mut transform: Transform) -> Result<bool, AmqpError> {
        if self.vhost(&transform.vhost).is_none() {
            return Err(AmqpError::not_found(format!("no vhost '{}'", transform.vhost)));
        }
        let _changing = self.inner.policy_changes.lock();
        let current = self.transforms();
        let existing = current.get(&transform.vhost, &transform.name);
        let created = existing.is_none();
        if let Some(existing) = existing {
            transform.counts = existing.counts.clone();
        }
        if created && current.all().len() >= MAX_TRANSFORMS {
            return Err(AmqpError::not_allowed(format!("the broker holds {MAX_TRANSFORMS} transforms, its limit")));
        }
        let change = (keys::transform_key(&transform.vhost, &transform.name), Some(keys::transform_value(&transform)));
        self.submit_defs(vec![change]);
        let mut all: Vec<_> =
            current.0.iter().filter(|t| !(t.vhost == transform.vhost && t.name == transform.name)).cloned().collect();
        all.push(Arc::new(transform));
        self.inner.transforms.replace(all);
        Ok(created)
    }

    /// Deletes a transform; false if there was none.
    pub fn delete_transform(&self, vhost: &str, name: &str) -> bool {
        let _changing = self.inner.policy_changes.lock();
        let current = self.transforms();
        if current.get(vhost, name).is_none() {
            return false;
        }
        self.submit_defs(vec![(keys::transform_key(vhost, name), None)]);
        self.inner
            .transforms
            .replace(current.0.iter().filter(|t| !(t.vhost == vhost && t.name == name)).cloned().collect());
        true
    }

    /// A deleted vhost's transforms go with it.
    pub(crate) fn drop_vhost_transforms(&self, vhost: &str) -> Vec<crate::durable::defs::Change> {
        let _changing = self.inner.policy_changes.lock();
        let current = self.transforms();
        let changes = current
            .0
            .iter()
            .filter(|t| t.vhost == vhost)
            .map(|t| (keys::transform_key(vhost, &t.name), None))
            .collect();
        self.inner.transforms.replace(current.0.iter().filter(|t| t.vhost != vhost).cloned().collect());
        changes
    }

    /// At start: the stored transforms.
    pub(crate) fn restore_transforms(&self, stored: Vec<Transform>) {
        self.inner.transforms.replace(stored.into_iter().map(Arc::new).collect());
    }
}
