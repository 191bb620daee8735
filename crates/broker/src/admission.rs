//! Who may open a connection now, on AMQP and HTTP alike: a rate of new connections per source
//! address (a token bucket each, in a bounded map), and a bound on AMQP connections that have not
//! finished their handshake (with the handshake's time bound, what keeps a slow or silent
//! client from holding sockets without ever logging in).

use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Addresses whose rate is tracked at most. When the map is full, buckets that have refilled
/// (their address was quiet for a second) make room; if none has, the newcomer is let in
/// untracked: the connection limits still bound it, and a crowd of addresses cannot lock out
/// the rest by filling the map.
pub const MAX_TRACKED_ADDRESSES: usize = 10_000;

/// Why a new connection was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Its address opened more connections in the last second than the rate allows.
    RateLimited,
    /// Too many connections are still in their handshake.
    TooManyHandshakes,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refusal::RateLimited => "connection rate limit of its address reached",
            Refusal::TooManyHandshakes => "too many connections in their handshake",
        })
    }
}

pub struct Admission {
    /// New connections per second per address (and the burst), 0 for no limit.
    rate_per_s: u32,
    max_handshaking: usize,
    handshaking: Arc<AtomicUsize>,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// A connection counted as still in its handshake until this drops.
pub struct Handshaking(Arc<AtomicUsize>);

impl Drop for Handshaking {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Admission {
    pub fn new(rate_per_s: u32, max_handshaking: usize) -> Admission {
        Admission {
            rate_per_s,
            max_handshaking,
            handshaking: Arc::new(AtomicUsize::new(0)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one of `peer`'s connections per second, if its rate allows.
    pub fn check_rate(&self, peer: IpAddr) -> Result<(), Refusal> {
        self.check_rate_at(peer, Instant::now())
    }

    fn check_rate_at(&self, peer: IpAddr, now: Instant) -> Result<(), Refusal> {
        if self.rate_per_s == 0 {
            return Ok(());
        }
        let rate = f64::from(self.rate_per_s);
        let refill = |b: &Bucket| (b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate).min(rate);
        let mut buckets = self.buckets.lock();
        if !buckets.contains_key(&peer) && buckets.len() >= MAX_TRACKED_ADDRESSES {
            buckets.retain(|_, b| refill(b) < rate);
            if buckets.len() >= MAX_TRACKED_ADDRESSES {
                return Ok(());
            }
        }
        let bucket = buckets.entry(peer).or_insert(Bucket { tokens: rate, at: now });
        let tokens = refill(bucket);
        if tokens < 1.0 {
            return Err(Refusal::RateLimited);
        }
        *bucket = Bucket { tokens: tokens - 1.0, at: now };
        Ok(())
    }

    /// Counts a connection as in its handshake, if there is room.
    pub fn start_handshake(&self) -> Result<Handshaking, Refusal> {
        let previous = self.handshaking.fetch_add(1, Ordering::AcqRel);
        let ticket = Handshaking(self.handshaking.clone());
        if previous >= self.max_handshaking {
            return Err(Refusal::TooManyHandshakes);
        }
        Ok(ticket)
    }

    /// Connections in their handshake now.
    pub fn handshaking(&self) -> usize {
        self.handshaking.load(Ordering::Acquire)
    }

    /// Addresses whose rate is tracked now.
    pub fn tracked_addresses(&self) -> usize {
        self.buckets.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn an_address_gets_its_rate_and_burst_and_no_more() {
        let admission = Admission::new(5, 10);
        let t0 = Instant::now();
        for _ in 0..5 {
            admission.check_rate_at(ip(1), t0).unwrap();
        }
        assert_eq!(admission.check_rate_at(ip(1), t0), Err(Refusal::RateLimited));
        // Another address has its own bucket.
        admission.check_rate_at(ip(2), t0).unwrap();
        // A fifth of a second later, one more.
        let later = t0 + Duration::from_millis(200);
        admission.check_rate_at(ip(1), later).unwrap();
        assert_eq!(admission.check_rate_at(ip(1), later), Err(Refusal::RateLimited));
    }

    #[test]
    fn the_map_of_addresses_stays_bounded() {
        let admission = Admission::new(1, 10);
        let t0 = Instant::now();
        for n in 0..MAX_TRACKED_ADDRESSES as u32 {
            admission.check_rate_at(IpAddr::from(n.to_be_bytes()), t0).unwrap();
        }
        // Full of addresses that all just connected: a newcomer is let in untracked.
        admission.check_rate_at(ip(200), t0).unwrap();
        assert_eq!(admission.tracked_addresses(), MAX_TRACKED_ADDRESSES);
        // A second later every bucket has refilled: they make room.
        admission.check_rate_at(ip(200), t0 + Duration::from_secs(1)).unwrap();
        assert_eq!(admission.tracked_addresses(), 1);
    }

    #[test]
    fn handshakes_in_progress_are_bounded_and_given_back() {
        let admission = Admission::new(0, 2);
        let a = admission.start_handshake().unwrap();
        let _b = admission.start_handshake().unwrap();
        assert_eq!(admission.start_handshake().err(), Some(Refusal::TooManyHandshakes));
        assert_eq!(admission.handshaking(), 2, "a refused attempt holds nothing");
        drop(a);
        assert!(admission.start_handshake().is_ok());
    }
}
