//! The dashboard sign-in's own limits, apart from the general rate limit (`crate::rate_limit`,
//! 10,000 requests per 5 minutes, far too many password guesses):
//!
//! * **Failed sign-ins per client address**: `signin_max_failures` (10) failures within
//!   `signin_failure_window` (15 minutes) lock the address out; while locked out, every
//!   sign-in from it is refused with 429 and `Retry-After` before anything is checked. The
//!   first lockout lasts one window; each further lockout that follows within a window of the
//!   last one ending lasts twice as long as the one before (growing backoff, at most
//!   [`MAX_LOCKOUT`]). A successful sign-in forgets the address's failures, not its lockouts.
//!   Addresses are counted as the rate limit counts them (IPv6 by its /64).
//! * **Password verifications at once**: argon2 takes about 19 MiB per verification, so at most
//!   `signin_concurrent_hashes` (2) run at a time; a sign-in that would need another is refused
//!   with 429 and `Retry-After: 1` instead of waiting, so a burst of guesses neither queues
//!   without bound nor grows the engine's memory.
//!
//! Memory is bounded: an address whose failures have left the window and that is not locked
//! out is in the state of one never seen, so such entries are swept when the map is full; if
//! it is still full (a flood of distinct addresses), the entries not locked out are dropped,
//! which can only let those addresses try sooner.

use crate::rate_limit::Client;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The longest lockout, however often an address is locked out again.
pub const MAX_LOCKOUT: Duration = Duration::from_secs(24 * 60 * 60);
/// Most addresses tracked at once.
pub const MAX_ADDRESSES: usize = 100_000;

/// The sign-in's limits, shared by every sign-in request.
pub(crate) struct SigninLimits {
    max_failures: usize,
    window: Duration,
    hashes: Arc<Semaphore>,
    addresses: Mutex<HashMap<Client, Failures>>,
}

#[derive(Default)]
struct Failures {
    /// Failures within the window, oldest first (at most `max_failures`).
    times: VecDeque<Instant>,
    /// Locked out until then.
    locked_until: Option<Instant>,
    /// Lockouts in a row: each lasts twice the one before.
    lockouts: u32,
}

impl SigninLimits {
    pub fn new(max_failures: u32, window: Duration, concurrent_hashes: usize) -> SigninLimits {
        SigninLimits {
            max_failures: max_failures.max(1) as usize,
            window,
            hashes: Arc::new(Semaphore::new(concurrent_hashes.max(1))),
            addresses: Mutex::new(HashMap::new()),
        }
    }

    fn addresses(&self) -> std::sync::MutexGuard<'_, HashMap<Client, Failures>> {
        self.addresses.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `Err(wait)` while `address` is locked out.
    pub fn check(&self, address: IpAddr, now: Instant) -> Result<(), Duration> {
        match self
            .addresses()
            .get(&Client::address(address))
            .and_then(|f| f.locked_until)
        {
            Some(until) if until > now => Err(until - now),
            _ => Ok(()),
        }
    }

    /// A permit to run one password verification, or `None` when as many run already.
    pub fn hash_permit(&self) -> Option<OwnedSemaphorePermit> {
        self.hashes.clone().try_acquire_owned().ok()
    }

    /// Counts a failed sign-in from `address`; returns the lockout it started, if it did.
    pub fn failed(&self, address: IpAddr, now: Instant) -> Option<Duration> {
        let key = Client::address(address);
        let mut addresses = self.addresses();
        if !addresses.contains_key(&key) && addresses.len() >= MAX_ADDRESSES {
            self.sweep(&mut addresses, now);
        }
        let entry = addresses.entry(key).or_default();
        if let Some(until) = entry.locked_until
            && now >= until + self.window
        {
            // A whole window without a lockout since the last one ended: forgiven.
            entry.lockouts = 0;
            entry.locked_until = None;
        }
        while entry
            .times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            entry.times.pop_front();
        }
        entry.times.push_back(now);
        if entry.times.len() < self.max_failures {
            return None;
        }
        entry.times.clear();
        let lockout = self
            .window
            .checked_mul(1u32 << entry.lockouts.min(16))
            .unwrap_or(MAX_LOCKOUT)
            .min(MAX_LOCKOUT);
        entry.lockouts = entry.lockouts.saturating_add(1);
        entry.locked_until = Some(now + lockout);
        Some(lockout)
    }

    /// A successful sign-in from `address`: its failures are forgotten (its lockouts are not).
    pub fn succeeded(&self, address: IpAddr) {
        if let Some(entry) = self.addresses().get_mut(&Client::address(address)) {
            entry.times.clear();
        }
    }

    fn sweep(&self, addresses: &mut HashMap<Client, Failures>, now: Instant) {
        let window = self.window;
        let locked = |f: &Failures| f.locked_until.is_some_and(|u| now < u + window);
        addresses.retain(|_, f| {
            locked(f)
                || f.times
                    .back()
                    .is_some_and(|t| now.duration_since(*t) < window)
        });
        if addresses.len() >= MAX_ADDRESSES {
            addresses.retain(|_, f| locked(f));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    #[test]
    fn the_tenth_failure_in_a_window_locks_the_address_out_with_growing_lockouts() {
        let window = Duration::from_secs(900);
        let limits = SigninLimits::new(10, window, 2);
        let start = Instant::now();
        for n in 0..9 {
            assert_eq!(limits.failed(A, start + Duration::from_secs(n)), None);
            assert!(limits.check(A, start + Duration::from_secs(n)).is_ok());
        }
        let at = start + Duration::from_secs(9);
        assert_eq!(limits.failed(A, at), Some(window));
        assert_eq!(limits.check(A, at), Err(window));
        assert!(
            limits.check(B, at).is_ok(),
            "other addresses are not locked out"
        );
        // Once it ends, ten more failures lock it out for twice as long.
        let later = at + window;
        assert!(limits.check(A, later).is_ok());
        for n in 0..9 {
            assert_eq!(limits.failed(A, later + Duration::from_secs(n)), None);
        }
        assert_eq!(
            limits.failed(A, later + Duration::from_secs(9)),
            Some(window * 2)
        );
        // A quiet window after a lockout ends forgives it.
        let quiet = later + Duration::from_secs(9) + window * 2 + window;
        for n in 0..9 {
            assert_eq!(limits.failed(A, quiet + Duration::from_secs(n)), None);
        }
        assert_eq!(
            limits.failed(A, quiet + Duration::from_secs(9)),
            Some(window)
        );
    }

    #[test]
    fn failures_leave_the_window_and_a_success_forgets_them() {
        let window = Duration::from_secs(60);
        let limits = SigninLimits::new(3, window, 2);
        let start = Instant::now();
        limits.failed(A, start);
        limits.failed(A, start + Duration::from_secs(1));
        // The first two have left the window: this is the first of a new count.
        assert_eq!(limits.failed(A, start + Duration::from_secs(70)), None);
        assert_eq!(limits.failed(A, start + Duration::from_secs(71)), None);
        limits.succeeded(A);
        assert_eq!(limits.failed(A, start + Duration::from_secs(72)), None);
        assert_eq!(limits.failed(A, start + Duration::from_secs(73)), None);
        assert!(limits.failed(A, start + Duration::from_secs(74)).is_some());
    }

    #[test]
    fn ipv6_addresses_count_by_their_64_and_hashes_are_bounded() {
        let limits = SigninLimits::new(2, Duration::from_secs(60), 2);
        let now = Instant::now();
        limits.failed("2001:db8::1".parse().unwrap(), now);
        limits.failed("2001:db8::2".parse().unwrap(), now);
        assert!(limits.check("2001:db8::3".parse().unwrap(), now).is_err());
        let first = limits.hash_permit().unwrap();
        let _second = limits.hash_permit().unwrap();
        assert!(limits.hash_permit().is_none(), "a third waits for none");
        drop(first);
        assert!(limits.hash_permit().is_some());
    }
}
