//! A growing delay after failed logins from one address: each failure doubles the wait before
//! the next refusal from there is answered (100 ms, 200 ms, ... at most 5 s), which slows a
//! password guesser to a few attempts a second per address while a user who mistyped barely
//! notices. A success, or ten quiet minutes, forgets the address. Bounded in addresses.

use parking_lot::Mutex;
use rustc_hash::FxHashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Addresses remembered at most; beyond, the one failed longest ago is forgotten.
pub const MAX_ADDRESSES: usize = 10_000;
/// The first delay, and the longest.
const FIRST_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(5);
/// How long an address's failures are remembered after its last one.
const MEMORY: Duration = Duration::from_secs(600);

#[derive(Debug, Default)]
pub struct LoginFailures {
    by_address: Mutex<FxHashMap<IpAddr, (u32, Instant)>>,
    /// Addresses held, read without the lock (successful logins skip it while none failed).
    held: AtomicUsize,
}

impl LoginFailures {
    pub fn failed(&self, ip: IpAddr) {
        let now = Instant::now();
        let mut map = self.by_address.lock();
        if map.len() >= MAX_ADDRESSES && !map.contains_key(&ip) {
            map.retain(|_, (_, at)| now.duration_since(*at) < MEMORY);
            if map.len() >= MAX_ADDRESSES {
                if let Some(oldest) = map.iter().min_by_key(|(_, (_, at))| *at).map(|(ip, _)| *ip) {
                    map.remove(&oldest);
                }
            }
        }
        let entry = map.entry(ip).or_insert((0, now));
        *entry = (entry.0.saturating_add(1), now);
        self.held.store(map.len(), Ordering::Relaxed);
    }

    pub fn succeeded(&self, ip: IpAddr) {
        if self.held.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut map = self.by_address.lock();
        map.remove(&ip);
        self.held.store(map.len(), Ordering::Relaxed);
    }

    /// How long a refusal to `ip` waits now.
    pub fn delay(&self, ip: IpAddr) -> Duration {
        if self.held.load(Ordering::Relaxed) == 0 {
            return Duration::ZERO;
        }
        match self.by_address.lock().get(&ip) {
            Some((n, at)) if at.elapsed() < MEMORY => delay_after(*n),
            _ => Duration::ZERO,
        }
    }
}

/// The wait after `failures` failures in a row.
fn delay_after(failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    FIRST_DELAY.saturating_mul(1u32 << (failures - 1).min(16)).min(MAX_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_doubles_per_failure_up_to_its_bound_and_a_success_resets_it() {
        let f = LoginFailures::default();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        assert_eq!(f.delay(a), Duration::ZERO);
        f.failed(a);
        assert_eq!(f.delay(a), Duration::from_millis(100));
        f.failed(a);
        f.failed(a);
        assert_eq!(f.delay(a), Duration::from_millis(400));
        assert_eq!(f.delay(b), Duration::ZERO, "per address");
        for _ in 0..40 {
            f.failed(a);
        }
        assert_eq!(f.delay(a), MAX_DELAY);
        f.succeeded(a);
        assert_eq!(f.delay(a), Duration::ZERO);
        for i in 0..(MAX_ADDRESSES as u32 + 5) {
            f.failed(IpAddr::from(i.to_be_bytes()));
        }
        assert_eq!(f.held.load(Ordering::Relaxed), MAX_ADDRESSES, "bounded");
    }
}
