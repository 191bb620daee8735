//! `Idempotency-Key`: a retried publish with the same key (and user and vhost) within the
//! window gets the first publish's answer instead of publishing again. Bounded in message ids
//! remembered: a batch's key weighs as many as its messages.

use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

pub struct Keys {
    max: usize,
    window: Duration,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    by_key: HashMap<String, (Instant, String)>,
    order: VecDeque<(Instant, String)>,
    /// Message ids remembered, over all keys.
    ids: usize,
}

/// Message ids in a remembered answer (a batch's are separated by commas).
fn ids_in(answer: &str) -> usize {
    1 + answer.bytes().filter(|b| *b == b',').count()
}

impl State {
    fn forget(&mut self, key: &str) {
        if let Some((_, answer)) = self.by_key.remove(key) {
            self.ids -= ids_in(&answer);
        }
    }
}

impl Keys {
    pub fn new(max: usize, window: Duration) -> Keys {
        Keys { max, window, state: Mutex::new(State::default()) }
    }

    /// The message id published earlier under `key`, if still within the window.
    pub fn get(&self, key: &str) -> Option<String> {
        let mut st = self.state.lock();
        self.expire(&mut st);
        st.by_key.get(key).map(|(_, id)| id.clone())
    }

    /// Remembers that `key` published message `id` (or a batch's ids, comma-separated).
    pub fn remember(&self, key: String, id: String) {
        let mut st = self.state.lock();
        self.expire(&mut st);
        st.forget(&key);
        let weight = ids_in(&id);
        if weight > self.max {
            return;
        }
        while st.ids + weight > self.max {
            let Some((at, old)) = st.order.pop_front() else { break };
            if st.by_key.get(&old).is_some_and(|(when, _)| *when == at) {
                st.forget(&old);
            }
        }
        let now = Instant::now();
        st.order.push_back((now, key.clone()));
        st.ids += weight;
        st.by_key.insert(key, (now, id));
    }

    fn expire(&self, st: &mut State) {
        while st.order.front().is_some_and(|(at, _)| at.elapsed() >= self.window) {
            let (at, key) = st.order.pop_front().expect("front exists");
            // A key remembered again since is younger than this entry of the order.
            if st.by_key.get(&key).is_some_and(|(when, _)| *when == at) {
                st.forget(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_weighs_as_many_ids_as_it_holds() {
        let keys = Keys::new(4, Duration::from_secs(60));
        keys.remember("a".into(), "1".into());
        keys.remember("b".into(), "2,3".into());
        assert_eq!(keys.get("a").as_deref(), Some("1"));
        // 3 + 2 > 4: the oldest goes, then the next, until the batch fits.
        keys.remember("c".into(), "4,5".into());
        assert_eq!(
            (keys.get("a"), keys.get("b").as_deref(), keys.get("c").as_deref()),
            (None, Some("2,3"), Some("4,5"))
        );
        // Remembered again: its old weight is given back first.
        keys.remember("c".into(), "6".into());
        keys.remember("d".into(), "7".into());
        assert_eq!((keys.get("b").as_deref(), keys.get("c").as_deref()), (Some("2,3"), Some("6")));
        // More ids than the whole bound: not remembered, and nothing else is pushed out.
        keys.remember("e".into(), "1,2,3,4,5".into());
        assert_eq!((keys.get("e"), keys.get("d").as_deref()), (None, Some("7")));
    }
}
