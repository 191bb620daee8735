//! `Idempotency-Key`: a retried publish with the same key (and user and vhost) within the
//! window gets the first publish's answer instead of publishing again. Bounded in keys.

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

    /// Remembers that `key` published message `id`.
    pub fn remember(&self, key: String, id: String) {
        let mut st = self.state.lock();
        self.expire(&mut st);
        while st.order.len() >= self.max {
            let Some((_, old)) = st.order.pop_front() else { break };
            st.by_key.remove(&old);
        }
        let now = Instant::now();
        st.order.push_back((now, key.clone()));
        st.by_key.insert(key, (now, id));
    }

    fn expire(&self, st: &mut State) {
        while st.order.front().is_some_and(|(at, _)| at.elapsed() >= self.window) {
            let (_, key) = st.order.pop_front().expect("front exists");
            st.by_key.remove(&key);
        }
    }
}
