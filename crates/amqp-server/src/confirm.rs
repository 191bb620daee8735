//! Publisher confirms of one channel: each publish gets a sequence number and an outcome (ack
//! now, ack once the store has fsynced it, or nack); outcomes are sent in order as few frames as
//! possible: one `basic.ack(multiple)` per run of acks, one `basic.nack` per refusal. The store's
//! writer thread settles outcomes and wakes the connection task, which writes the frames.

use crate::outbound::Outbound;
use amqp_codec::{encode_method, BasicAck, BasicNack, Method};
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::sync::Notify;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Pending,
    Ack,
    Nack,
}

/// Channels of one connection with confirms ready to send, and the wake-up for its task.
#[derive(Default)]
pub struct ConfirmWake {
    ready: Mutex<Vec<u16>>,
    pub notify: Notify,
}

impl ConfirmWake {
    fn mark(&self, channel: u16) {
        let mut ready = self.ready.lock();
        if !ready.contains(&channel) {
            ready.push(channel);
        }
        drop(ready);
        self.notify.notify_one();
    }

    /// Channels marked since the last call.
    pub fn take_ready(&self) -> Vec<u16> {
        std::mem::take(&mut *self.ready.lock())
    }
}

/// The confirm state of one channel in confirm mode.
pub struct ConfirmLog {
    channel: u16,
    wake: Arc<ConfirmWake>,
    state: Mutex<State>,
}

struct State {
    /// Sequence number of `outcomes[0]`; every publish before it is confirmed to the client.
    base: u64,
    outcomes: VecDeque<Outcome>,
}

impl ConfirmLog {
    pub fn new(channel: u16, wake: Arc<ConfirmWake>) -> Arc<ConfirmLog> {
        Arc::new(ConfirmLog { channel, wake, state: Mutex::new(State { base: 1, outcomes: VecDeque::new() }) })
    }

    /// Registers the next publish as pending; returns its sequence number. Register before the
    /// message can reach the store, so that its settlement always finds it.
    pub fn reserve(&self) -> u64 {
        let mut st = self.state.lock();
        st.outcomes.push_back(Outcome::Pending);
        st.base + st.outcomes.len() as u64 - 1
    }

    /// The connection task decided publish `seq` itself (ack now, or nack); the connection
    /// flushes after its read batch, so no wake-up is needed.
    pub fn resolve(&self, seq: u64, ack: bool) {
        self.set(seq, ack);
    }

    /// The store settled publish `seq` (called on the writer thread): wakes the connection
    /// when this lets frames go out.
    pub fn settle(&self, seq: u64, durable: bool) {
        if self.set(seq, durable) {
            self.wake.mark(self.channel);
        }
    }

    /// Sets the outcome of `seq`; returns whether it is the front (frames may go out now).
    fn set(&self, seq: u64, ack: bool) -> bool {
        let mut st = self.state.lock();
        let Some(i) = seq.checked_sub(st.base) else { return false };
        if let Some(o) = st.outcomes.get_mut(i as usize) {
            // A nack is final: a publish a full queue refused stays nacked once it is durable.
            if *o != Outcome::Nack {
                *o = if ack { Outcome::Ack } else { Outcome::Nack };
            }
        }
        i == 0
    }

    /// Whether some confirms could be sent now.
    pub fn has_ready(&self) -> bool {
        self.state.lock().outcomes.front().is_some_and(|o| *o != Outcome::Pending)
    }

    /// Writes the frames for every settled publish at the front; returns how many publishes
    /// were acked.
    pub fn flush(&self, out: &Outbound) -> u64 {
        let (frames, acked) = self.drain_frames();
        if !frames.is_empty() {
            out.write(|b| {
                for f in &frames {
                    encode_method(b, self.channel, f);
                }
            });
        }
        acked
    }

    /// The frames confirming every settled publish at the front, which are then forgotten, and
    /// how many of those were acks.
    fn drain_frames(&self) -> (Vec<Method>, u64) {
        let mut frames: Vec<Method> = Vec::new();
        let mut acked = 0;
        {
            let mut st = self.state.lock();
            let mut ack_upto = None;
            while let Some(&o) = st.outcomes.front() {
                let seq = st.base;
                match o {
                    Outcome::Pending => break,
                    Outcome::Ack => {
                        ack_upto = Some(seq);
                        acked += 1;
                    }
                    Outcome::Nack => {
                        if let Some(upto) = ack_upto.take() {
                            frames.push(Method::BasicAck(BasicAck { delivery_tag: upto, multiple: true }));
                        }
                        frames.push(Method::BasicNack(BasicNack {
                            delivery_tag: seq,
                            multiple: false,
                            requeue: false,
                        }));
                    }
                }
                st.outcomes.pop_front();
                st.base += 1;
            }
            if let Some(upto) = ack_upto {
                frames.push(Method::BasicAck(BasicAck { delivery_tag: upto, multiple: true }));
            }
        }
        (frames, acked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_go_out_in_order_and_coalesced() {
        let wake = Arc::new(ConfirmWake::default());
        let log = ConfirmLog::new(1, wake.clone());
        for seq in 1..=5 {
            assert_eq!(log.reserve(), seq);
        }
        log.resolve(1, true);
        log.resolve(3, true);
        log.resolve(4, false);
        log.resolve(5, true);
        assert!(wake.take_ready().is_empty(), "the connection's own decisions wake nobody");
        assert!(log.has_ready());
        let ack = |tag| Method::BasicAck(BasicAck { delivery_tag: tag, multiple: true });
        let nack = |tag| Method::BasicNack(BasicNack { delivery_tag: tag, multiple: false, requeue: false });
        assert_eq!(log.drain_frames(), (vec![ack(1)], 1), "seq 2 holds back the rest");
        assert!(!log.has_ready());
        log.settle(3, true); // already settled: no change, no wake-up of the front
        assert!(wake.take_ready().is_empty());
        log.settle(2, false);
        assert_eq!(wake.take_ready(), vec![1]);
        assert_eq!(log.drain_frames(), (vec![nack(2), ack(3), nack(4), ack(5)], 2));
        assert_eq!(log.drain_frames(), (vec![], 0));
        assert_eq!(log.reserve(), 6);
        log.resolve(6, true);
        assert_eq!(log.drain_frames(), (vec![ack(6)], 1));
    }
}
