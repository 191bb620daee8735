//! A connection's outgoing bytes: one shared buffer that the connection task and every queue
//! delivering to this connection encode frames into, and the writer task that drains it to the
//! socket in large writes, sends heartbeats, and resumes deliveries paused by the watermark.

use bytes::BytesMut;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;
use tokio::time::Instant;
use warren_broker::registry::{count, ConnectionStats};
use warren_broker::Queue;

pub struct Outbound {
    buf: Mutex<BytesMut>,
    wake_writer: Notify,
    drained: Notify,
    /// Queues that stopped delivering because the buffer was over the watermark.
    paused: Mutex<Vec<Arc<Queue>>>,
    high_watermark_bytes: usize,
    frame_max: AtomicU32,
    /// Heartbeat interval agreed in tune-ok, seconds; 0 = none.
    heartbeat_s: AtomicU32,
    /// Set when the connection ends: the writer flushes what is buffered and stops.
    closing: AtomicBool,
    /// Set when the socket is gone: output is discarded.
    dead: AtomicBool,
    /// While set, the writer leaves the buffer alone: a reply must not reach the client before
    /// the change it reports is durable (see `Connection::await_definitions`).
    held: AtomicBool,
    /// Where writes are counted, once the connection is registered.
    stats: OnceLock<Arc<ConnectionStats>>,
    /// Set when the client closed the connection: the writer leaves the socket open (no FIN)
    /// for the client to close, as RabbitMQ does (a client reading EOF right after close-ok
    /// may report it as an error).
    linger: AtomicBool,
}

impl Outbound {
    pub fn new(high_watermark_bytes: usize, frame_max: u32) -> Arc<Outbound> {
        Arc::new(Outbound {
            // Grows with the first output; an idle connection holds next to nothing.
            buf: Mutex::new(BytesMut::new()),
            wake_writer: Notify::new(),
            drained: Notify::new(),
            paused: Mutex::new(Vec::new()),
            high_watermark_bytes,
            frame_max: AtomicU32::new(frame_max),
            heartbeat_s: AtomicU32::new(0),
            closing: AtomicBool::new(false),
            dead: AtomicBool::new(false),
            held: AtomicBool::new(false),
            stats: OnceLock::new(),
            linger: AtomicBool::new(false),
        })
    }

    /// After the last write, keep the socket open instead of shutting its write side.
    pub fn linger(&self) {
        self.linger.store(true, Ordering::Release);
    }

    pub fn count_into(&self, stats: Arc<ConnectionStats>) {
        let _ = self.stats.set(stats);
    }

    pub fn frame_max(&self) -> u32 {
        self.frame_max.load(Ordering::Relaxed)
    }

    pub fn set_heartbeat_s(&self, heartbeat_s: u16) {
        self.heartbeat_s.store(heartbeat_s as u32, Ordering::Relaxed);
        self.wake_writer.notify_one();
    }

    pub fn set_frame_max(&self, frame_max: u32) {
        self.frame_max.store(frame_max, Ordering::Relaxed);
    }

    /// Encode frames into the buffer and wake the writer. Frames written in one call stay together.
    pub fn write(&self, encode: impl FnOnce(&mut BytesMut)) {
        if self.dead.load(Ordering::Relaxed) {
            return;
        }
        encode(&mut self.buf.lock());
        self.wake_writer.notify_one();
    }

    pub fn over_watermark(&self) -> bool {
        self.buf.lock().len() >= self.high_watermark_bytes
    }

    /// Remember a queue to resume once the buffer drains.
    pub fn pause(&self, queue: &Arc<Queue>) {
        let mut paused = self.paused.lock();
        if !paused.iter().any(|q| Arc::ptr_eq(q, queue)) {
            paused.push(queue.clone());
        }
    }

    /// Wait until the buffer is under the watermark (the reader calls this before reading more).
    pub async fn wait_drained(&self) {
        loop {
            let notified = self.drained.notified();
            if !self.over_watermark() || self.dead.load(Ordering::Relaxed) {
                return;
            }
            notified.await;
        }
    }

    /// Ask the writer to flush and finish.
    pub fn close(&self) {
        self.closing.store(true, Ordering::Release);
        self.wake_writer.notify_one();
    }

    /// Keep everything written from now on in the buffer until [`Outbound::release`].
    pub fn hold(&self) {
        let _buf = self.buf.lock();
        self.held.store(true, Ordering::Relaxed);
    }

    /// Let the writer send what was held.
    pub fn release(&self) {
        self.held.store(false, Ordering::Relaxed);
        self.wake_writer.notify_one();
    }

    fn take(&self, spare: &mut BytesMut) -> bool {
        let mut buf = self.buf.lock();
        // Set and cleared with the buffer locked (or before a wake-up), so never half seen.
        if buf.is_empty() || self.held.load(Ordering::Relaxed) {
            return false;
        }
        std::mem::swap(&mut *buf, spare);
        true
    }
}

/// Drain `out` to `socket` until the connection closes or the socket fails. Sends a heartbeat
/// frame whenever nothing was written for `heartbeat`. Returns the socket, so that a lingering
/// connection's socket stays open until its owner drops it.
pub async fn run_writer<W: AsyncWrite + Unpin>(out: Arc<Outbound>, mut socket: W) -> W {
    let mut chunk = BytesMut::new();
    let mut last_write = Instant::now();
    loop {
        if out.take(&mut chunk) {
            if socket.write_all(&chunk).await.is_err() {
                break;
            }
            if let Some(stats) = out.stats.get() {
                count(&stats.send_oct, chunk.len() as u64);
                count(&stats.send_cnt, 1);
            }
            chunk.clear();
            last_write = Instant::now();
            resume_paused(&out);
            continue;
        }
        if out.closing.load(Ordering::Acquire) {
            break;
        }
        let wake = out.wake_writer.notified();
        let heartbeat_s = out.heartbeat_s.load(Ordering::Relaxed);
        match (heartbeat_s > 0).then(|| Duration::from_secs(heartbeat_s as u64)) {
            Some(interval) => {
                tokio::select! {
                    _ = wake => {}
                    _ = tokio::time::sleep_until(last_write + interval) => {
                        let mut hb = BytesMut::new();
                        amqp_codec::encode_heartbeat(&mut hb);
                        if socket.write_all(&hb).await.is_err() {
                            break;
                        }
                        last_write = Instant::now();
                    }
                }
            }
            None => wake.await,
        }
    }
    let _ = socket.flush().await;
    if !out.linger.load(Ordering::Acquire) {
        let _ = socket.shutdown().await;
    }
    out.dead.store(true, Ordering::Release);
    out.buf.lock().clear();
    out.drained.notify_waiters();
    out.paused.lock().clear();
    socket
}

fn resume_paused(out: &Outbound) {
    if out.over_watermark() {
        return;
    }
    out.drained.notify_waiters();
    let paused = std::mem::take(&mut *out.paused.lock());
    for q in paused {
        q.dispatch();
    }
}
