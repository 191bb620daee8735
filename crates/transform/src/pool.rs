//! The broker's side of transforms: up to `workers` worker processes, each serving one request
//! at a time over its pipes. A request that finds every worker busy waits (at most
//! `max_waiting` of them; beyond, it fails at once as busy). A request past its deadline kills
//! its worker (SIGKILL: jaq cannot be interrupted) and fails as a timeout; a worker that dies
//! fails its request as crashed. Either way the next request starts a fresh worker, so a bad
//! program costs its own messages and the time of one worker, never the broker.

use crate::protocol::{Request, Response, RunResult, MAX_FRAME_BYTES};
use serde_json::Value;
use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::Semaphore;

/// How to start workers and how many.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    /// The program to run (the `warren` binary) and its arguments (`transform-worker`).
    pub command: PathBuf,
    pub args: Vec<String>,
    pub workers: usize,
    /// Requests that may wait for a worker.
    pub max_waiting: usize,
    /// Address space a worker may use (`RLIMIT_AS`): a program that builds a huge value fails
    /// its own allocation and dies, instead of pressing the machine's memory.
    pub memory_limit_bytes: Option<u64>,
}

/// What one run may take.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub timeout_ms: u64,
    pub max_outputs: usize,
    pub max_output_bytes: usize,
}

/// Why a run gave no outputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The program failed on this input (an `error`, a bad path, too many or too large outputs),
    /// or does not compile.
    Program(String),
    /// It ran past its deadline; its worker was killed.
    Timeout { after_ms: u64 },
    /// Its worker died (e.g. the program recursed without end).
    Crashed(String),
    /// Every worker was busy and too many requests were waiting.
    Busy,
    /// No worker could be started.
    Unavailable(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Program(text) => write!(f, "{text}"),
            Failure::Timeout { after_ms } => write!(f, "the program ran past its {after_ms} ms budget and was stopped"),
            Failure::Crashed(why) => write!(f, "the program crashed its worker ({why})"),
            Failure::Busy => write!(f, "every transform worker is busy"),
            Failure::Unavailable(why) => write!(f, "no transform worker could be started: {why}"),
        }
    }
}

/// One version of a transform: its id (unique per version, so workers never run a stale one),
/// program and lookup tables.
#[derive(Debug, Clone)]
pub struct Program {
    pub id: u64,
    pub text: Arc<str>,
    pub lookup: Arc<Value>,
}

/// Counts since the start.
#[derive(Debug, Default)]
pub struct PoolStats {
    pub runs: AtomicU64,
    pub failures: AtomicU64,
    pub timeouts: AtomicU64,
    pub crashes: AtomicU64,
    pub started: AtomicU64,
}

pub struct Pool {
    options: PoolOptions,
    idle: Mutex<Vec<Worker>>,
    permits: Semaphore,
    waiting: AtomicUsize,
    /// Ids for programs that are only checked (counting down from the top, away from the
    /// broker's ids).
    next_check_id: AtomicU64,
    pub stats: PoolStats,
}

struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
    defined: HashSet<u64>,
}

impl Pool {
    pub fn new(options: PoolOptions) -> Arc<Pool> {
        let permits = Semaphore::new(options.workers.max(1));
        Arc::new(Pool {
            options,
            idle: Mutex::new(Vec::new()),
            permits,
            waiting: AtomicUsize::new(0),
            next_check_id: AtomicU64::new(u64::MAX),
            stats: PoolStats::default(),
        })
    }

    /// Runs `program` on `input` within `limits`.
    pub async fn run(&self, program: &Program, input: Value, limits: Limits) -> Result<Vec<Value>, Failure> {
        self.stats.runs.fetch_add(1, Ordering::Relaxed);
        let run = Request::Run {
            id: program.id,
            input,
            max_outputs: limits.max_outputs,
            max_output_bytes: limits.max_output_bytes,
        };
        let result = self.with_worker(program, Some(run), limits.timeout_ms).await;
        if result.is_err() {
            self.stats.failures.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    /// Runs `program` on each of `inputs` with one request to one worker, within `limits`
    /// for the whole batch; one result per input. A batch that times out or crashes its worker
    /// is run again input by input, so that only the input at fault fails.
    pub async fn run_many(
        &self,
        program: &Program,
        inputs: Vec<Value>,
        limits: Limits,
    ) -> Vec<Result<Vec<Value>, Failure>> {
        if inputs.len() == 1 {
            let input = inputs.into_iter().next().expect("one input");
            return vec![self.run(program, input, limits).await];
        }
        self.stats.runs.fetch_add(inputs.len() as u64, Ordering::Relaxed);
        let many = Request::RunMany {
            id: program.id,
            inputs: inputs.clone(),
            max_outputs: limits.max_outputs,
            max_output_bytes: limits.max_output_bytes,
        };
        let results = match self.with_worker_raw(program, Some(many), limits.timeout_ms).await {
            Ok(Response::Results { results }) if results.len() == inputs.len() => results,
            Ok(Response::Failed { error }) | Err(Failure::Program(error)) => {
                self.stats.failures.fetch_add(inputs.len() as u64, Ordering::Relaxed);
                return inputs.iter().map(|_| Err(Failure::Program(error.clone()))).collect();
            }
            Err(Failure::Timeout { .. } | Failure::Crashed(_)) | Ok(_) => {
                let mut one_by_one = Vec::with_capacity(inputs.len());
                for input in inputs {
                    one_by_one.push(self.run(program, input, limits).await);
                }
                return one_by_one;
            }
            Err(other) => return inputs.iter().map(|_| Err(other.clone())).collect(),
        };
        results
            .into_iter()
            .map(|r| match r {
                RunResult::Outputs(values) => Ok(values),
                RunResult::Failed(error) => {
                    self.stats.failures.fetch_add(1, Ordering::Relaxed);
                    Err(Failure::Program(error))
                }
            })
            .collect()
    }

    /// Whether `text` compiles with `lookup` (in a worker: compiling runs jaq too).
    pub async fn check(&self, text: &str, lookup: &Value, timeout_ms: u64) -> Result<(), Failure> {
        let id = self.next_check_id.fetch_sub(1, Ordering::Relaxed);
        let program = Program { id, text: text.into(), lookup: Arc::new(lookup.clone()) };
        self.with_worker(&program, None, timeout_ms).await.map(|_| ())
    }

    /// Defines `program` in a worker (if it has not yet) and sends it `run`, if any.
    async fn with_worker(
        &self,
        program: &Program,
        run: Option<Request>,
        timeout_ms: u64,
    ) -> Result<Vec<Value>, Failure> {
        match self.with_worker_raw(program, run, timeout_ms).await? {
            Response::Outputs { values } => Ok(values),
            Response::Defined => Ok(Vec::new()),
            Response::Failed { error } => Err(Failure::Program(error)),
            Response::Results { .. } => Err(Failure::Crashed("a worker answered out of turn".into())),
        }
    }

    /// [`Pool::with_worker`], answering the worker's response as it is.
    async fn with_worker_raw(
        &self,
        program: &Program,
        run: Option<Request>,
        timeout_ms: u64,
    ) -> Result<Response, Failure> {
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.options.max_waiting + self.options.workers {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(Failure::Busy);
        }
        let permit = self.permits.acquire().await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        let _permit = permit.map_err(|_| Failure::Unavailable("the pool is closed".into()))?;
        let idle = self.idle.lock().expect("pool lock").pop();
        let mut worker = match idle {
            Some(w) => w,
            None => self.spawn()?,
        };
        let exchange = tokio::time::timeout(Duration::from_millis(timeout_ms), worker.serve(program, run)).await;
        match exchange {
            Err(_) => {
                self.stats.timeouts.fetch_add(1, Ordering::Relaxed);
                // Dropping the worker kills it (kill_on_drop); tokio reaps it.
                Err(Failure::Timeout { after_ms: timeout_ms })
            }
            Ok(Err(io)) => {
                self.stats.crashes.fetch_add(1, Ordering::Relaxed);
                let status = worker.child.try_wait().ok().flatten();
                let why = match status {
                    Some(status) => format!("it exited: {status}"),
                    None => io.to_string(),
                };
                Err(Failure::Crashed(why))
            }
            Ok(Ok(outcome)) => {
                self.idle.lock().expect("pool lock").push(worker);
                outcome
            }
        }
    }

    fn spawn(&self) -> Result<Worker, Failure> {
        let mut command = Command::new(&self.options.command);
        if let Some(limit) = self.options.memory_limit_bytes {
            let limit = libc::rlimit { rlim_cur: limit as libc::rlim_t, rlim_max: limit as libc::rlim_t };
            // SAFETY: between fork and exec the closure only makes one async-signal-safe call
            // (setrlimit) on a value it owns, and allocates nothing.
            unsafe {
                command.pre_exec(move || {
                    if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = command
            .args(&self.options.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| Failure::Unavailable(format!("{}: {e}", self.options.command.display())))?;
        self.stats.started.fetch_add(1, Ordering::Relaxed);
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        Ok(Worker { child, stdin, stdout, defined: HashSet::new() })
    }
}

impl Worker {
    /// Defines `program` if this worker has not, then sends `run` (if any) and answers its
    /// response (`Defined` without one). The outer `Err` is a broken worker; the inner one the
    /// program's failure to compile.
    async fn serve(&mut self, program: &Program, run: Option<Request>) -> std::io::Result<Result<Response, Failure>> {
        if !self.defined.contains(&program.id) {
            let define = Request::Define {
                id: program.id,
                program: program.text.to_string(),
                lookup: (*program.lookup).clone(),
            };
            match self.call(&define).await? {
                Response::Defined => {
                    self.defined.insert(program.id);
                }
                Response::Failed { error } => return Ok(Err(Failure::Program(error))),
                _ => return Err(std::io::Error::other("a worker answered out of turn")),
            }
        }
        let Some(run) = run else { return Ok(Ok(Response::Defined)) };
        match self.call(&run).await? {
            Response::Defined => Err(std::io::Error::other("a worker answered out of turn")),
            response => Ok(Ok(response)),
        }
    }

    async fn call(&mut self, request: &Request) -> std::io::Result<Response> {
        let bytes = serde_json::to_vec(request).map_err(std::io::Error::other)?;
        let mut frame = Vec::with_capacity(bytes.len() + 4);
        frame.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        frame.extend_from_slice(&bytes);
        self.stdin.write_all(&frame).await?;
        self.stdin.flush().await?;
        let mut len = [0u8; 4];
        self.stdout.read_exact(&mut len).await?;
        let len = u32::from_be_bytes(len) as usize;
        if len > MAX_FRAME_BYTES {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "a frame too large"));
        }
        let mut body = vec![0; len];
        self.stdout.read_exact(&mut body).await?;
        serde_json::from_slice(&body).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }
}
