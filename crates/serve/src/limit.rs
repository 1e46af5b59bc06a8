//! A sliding-window counter per client, shared by both servers' limits: the engine's request
//! rate limit (`wharf-engine`'s `rate_limit`) and the destination's failed-authentication
//! limit. Generic over what identifies a client (a key, a peer address).
//!
//! **The algorithm** is a sliding window kept in [`BUCKETS`] + 1 counters per client, each
//! counting the events of one `window / BUCKETS` slice of time. A client is under its limit
//! while the counters of the slices that overlap the last `window` (the current slice and the
//! [`BUCKETS`] before it) sum to less than the limit. That includes the whole oldest slice,
//! part of which is already older than the window, so the limit errs on the strict side: no
//! client ever gets more than `limit` events into any `window`, and a slot frees at most one
//! slice (5 % of the window) later than an exact log of timestamps would free it. The wait
//! returned to a refused client says when the oldest counted slices leave the window and free
//! a slot. The counters cost about a hundred bytes per client, where an exact log would hold
//! `limit` timestamps.
//!
//! Two ways to count: [`SlidingWindow::check`] counts an event only if it is allowed (a rate
//! limit on requests: refused requests are not counted); [`SlidingWindow::blocked`] only looks,
//! and [`SlidingWindow::count`] counts unconditionally (a limit on failures: look before
//! serving, count once the request has failed).
//!
//! **Bounded memory.** A client whose counted slices have all left the window is in exactly the
//! state of a client never seen, so such entries are swept (at most once per window) without
//! changing any answer: the map holds only clients counted within the last window, and looking
//! never adds an entry. A flood of distinct clients is capped at [`MAX_CLIENTS`] entries (about
//! 15 MB): when full, the half of the entries idle longest are dropped, which can only let
//! those clients in sooner, never refuse anyone wrongly.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most clients tracked at once; see the module header for what happens beyond.
pub const MAX_CLIENTS: usize = 100_000;

/// Slices per window: the window's resolution (a slot frees at most `window / BUCKETS` late).
pub const BUCKETS: u64 = 20;

/// Counters per client: the slices overlapping the last window.
const SLOTS: usize = BUCKETS as usize + 1;

/// A peer address as limits count it: IPv4 (also when IPv4-mapped) as is, IPv6 by its /64.
/// One subscriber usually holds a whole /64, so per address it could take a fresh budget for
/// every request.
pub fn client_address(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

/// One client's events per slice, in a ring indexed by slice number.
#[derive(Clone, Copy)]
struct Counts {
    /// The newest slice counted (the ring holds `last - BUCKETS ..= last`).
    last: u64,
    per_slice: [u32; SLOTS],
}

impl Counts {
    /// Moves the ring forward to `slice`, zeroing the slices that left the window.
    fn advance(&mut self, slice: u64) {
        if slice <= self.last {
            return;
        }
        if slice - self.last >= SLOTS as u64 {
            self.per_slice = [0; SLOTS];
        } else {
            for s in self.last + 1..=slice {
                self.per_slice[(s % SLOTS as u64) as usize] = 0;
            }
        }
        self.last = slice;
    }

    fn total(&self) -> u64 {
        self.per_slice.iter().map(|&n| u64::from(n)).sum()
    }

    fn add(&mut self, slice: u64) {
        let n = &mut self.per_slice[(slice % SLOTS as u64) as usize];
        *n = n.saturating_add(1);
    }
}

/// `limit` events per `window` for each client `K`.
pub struct SlidingWindow<K> {
    limit: u32,
    window: Duration,
    /// `window / BUCKETS`.
    slice: Duration,
    /// Slice numbers count from here.
    epoch: Instant,
    clients: Mutex<Clients<K>>,
}

struct Clients<K> {
    counts: HashMap<K, Counts>,
    /// The slice at or after which the next sweep of idle clients runs.
    next_sweep: u64,
}

impl<K: Eq + Hash + Copy> SlidingWindow<K> {
    /// `limit` events per `window`; `None` when `limit` is 0 (no limit).
    pub fn new(limit: u32, window: Duration) -> Option<Self> {
        Self::starting(limit, window, Instant::now())
    }

    /// As [`SlidingWindow::new`], with slices counted from `epoch` (no call may pass an
    /// earlier `now`); for tests that drive time themselves.
    pub fn starting(limit: u32, window: Duration, epoch: Instant) -> Option<Self> {
        (limit > 0).then(|| SlidingWindow {
            limit,
            window,
            slice: (window / BUCKETS as u32).max(Duration::from_millis(1)),
            epoch,
            clients: Mutex::new(Clients {
                counts: HashMap::new(),
                next_sweep: 0,
            }),
        })
    }

    /// The events allowed per window.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// The window.
    pub fn window(&self) -> Duration {
        self.window
    }

    fn slice_of(&self, now: Instant) -> u64 {
        (now.saturating_duration_since(self.epoch).as_nanos() / self.slice.as_nanos()) as u64
    }

    /// When slice `s` stops counting: when the window no longer overlaps it.
    fn expiry_of(&self, s: u64) -> Instant {
        let nanos = self.slice.as_nanos() * u128::from(s + SLOTS as u64);
        let after = Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
        self.epoch
            .checked_add(after)
            .unwrap_or_else(|| Instant::now() + self.window)
    }

    /// Counts an event of `client` at `now` if it is under its limit: `Ok` if it may pass,
    /// else how long until one would (and nothing is counted).
    pub fn check(&self, client: K, now: Instant) -> Result<(), Duration> {
        let slice = self.slice_of(now);
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        let counts = clients.entry(client, slice);
        counts.advance(slice);
        self.wait(counts, slice, now)?;
        counts.add(slice);
        Ok(())
    }

    /// Whether `client` is at its limit at `now`, without counting anything: `Err` says how
    /// long until it is not.
    pub fn blocked(&self, client: K, now: Instant) -> Result<(), Duration> {
        let slice = self.slice_of(now);
        let clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        let Some(mut counts) = clients.counts.get(&client).copied() else {
            return Ok(());
        };
        counts.advance(slice);
        self.wait(&counts, slice, now)
    }

    /// Counts an event of `client` at `now`, whether or not it is over its limit.
    pub fn count(&self, client: K, now: Instant) {
        let slice = self.slice_of(now);
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        let counts = clients.entry(client, slice);
        counts.advance(slice);
        counts.add(slice);
    }

    /// `Ok` while `counts` are under the limit; else the wait until the oldest counted slices
    /// leave the window and free a slot.
    fn wait(&self, counts: &Counts, slice: u64, now: Instant) -> Result<(), Duration> {
        let total = counts.total();
        if total < u64::from(self.limit) {
            return Ok(());
        }
        let mut remaining = total;
        for s in slice.saturating_sub(BUCKETS)..=slice {
            remaining -= u64::from(counts.per_slice[(s % SLOTS as u64) as usize]);
            if remaining < u64::from(self.limit) {
                return Err(self.expiry_of(s).saturating_duration_since(now));
            }
        }
        // Only when the limit shrank below what is counted: wait out the whole window.
        Err(self.window)
    }

    /// Clients tracked now (for tests).
    pub fn tracked(&self) -> usize {
        self.clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .counts
            .len()
    }
}

impl<K: Eq + Hash + Copy> Clients<K> {
    /// `client`'s counters, sweeping idle clients first when due and making room when full.
    fn entry(&mut self, client: K, slice: u64) -> &mut Counts {
        if slice >= self.next_sweep {
            self.counts.retain(|_, c| c.last + (SLOTS as u64) > slice);
            self.next_sweep = slice + SLOTS as u64;
        }
        if !self.counts.contains_key(&client) && self.counts.len() >= MAX_CLIENTS {
            shed(&mut self.counts, slice);
        }
        self.counts.entry(client).or_insert(Counts {
            last: slice,
            per_slice: [0; SLOTS],
        })
    }
}

/// Makes room in a full map: drops every idle entry, then, if that was not enough, the half
/// of the entries idle longest.
fn shed<K: Eq + Hash>(counts: &mut HashMap<K, Counts>, slice: u64) {
    counts.retain(|_, c| c.last + (SLOTS as u64) > slice);
    if counts.len() < MAX_CLIENTS {
        return;
    }
    let mut lasts: Vec<u64> = counts.values().map(|c| c.last).collect();
    let middle = lasts.len() / 2;
    let (_, median, _) = lasts.select_nth_unstable(middle);
    let median = *median;
    counts.retain(|_, c| c.last > median);
}

/// Whole seconds to announce in `Retry-After` for a wait, rounded up and at least 1: a client
/// that waits exactly this long gets through.
pub fn retry_after_seconds(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    type Limiter = SlidingWindow<u8>;
    const A: u8 = 1;
    const B: u8 = 2;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_limit_per_window_then_refused_until_a_slot_frees() {
        let t0 = Instant::now();
        // 5 per 2 s: slices of 100 ms.
        let limiter = Limiter::starting(5, Duration::from_secs(2), t0).unwrap();
        for _ in 0..5 {
            assert_eq!(limiter.check(A, t0 + ms(50)), Ok(()));
        }
        // The five were counted in the slice [0, 100 ms); it leaves the window at 2.1 s.
        assert_eq!(limiter.check(A, t0 + ms(50)), Err(ms(2050)));
        assert_eq!(limiter.check(A, t0 + ms(1500)), Err(ms(600)));
        // Another client is not affected.
        assert_eq!(limiter.check(B, t0 + ms(60)), Ok(()));
        assert!(limiter.check(A, t0 + ms(2099)).is_err());
        for _ in 0..5 {
            assert_eq!(limiter.check(A, t0 + ms(2100)), Ok(()));
        }
        assert!(limiter.check(A, t0 + ms(2100)).is_err());
    }

    #[test]
    fn spread_events_free_one_slot_at_a_time() {
        let t0 = Instant::now();
        let limiter = Limiter::starting(3, Duration::from_secs(2), t0).unwrap();
        for at in [0, 500, 1000] {
            assert_eq!(limiter.check(A, t0 + ms(at)), Ok(()));
        }
        // The event at 0 leaves the window (with its slice) at 2.1 s; the one at 500 at 2.6 s.
        assert_eq!(limiter.check(A, t0 + ms(1200)), Err(ms(900)));
        assert_eq!(limiter.check(A, t0 + ms(2100)), Ok(()));
        assert_eq!(limiter.check(A, t0 + ms(2100)), Err(ms(500)));
    }

    #[test]
    fn never_more_than_the_limit_in_any_window() {
        // 10,000 per 5 minutes, offered one event every 7 ms for 15 minutes: every window of
        // 5 minutes holds at most 10,000 allowed events, and the sustained rate is close to it.
        let t0 = Instant::now();
        let window = Duration::from_secs(300);
        let limiter = Limiter::starting(10_000, window, t0).unwrap();
        let mut allowed: Vec<Duration> = Vec::new();
        for i in 0..(900_000 / 7) {
            let at = ms(i * 7);
            if limiter.check(A, t0 + at).is_ok() {
                allowed.push(at);
            }
        }
        let mut start = 0;
        for end in 0..allowed.len() {
            while allowed[end] - allowed[start] >= window {
                start += 1;
            }
            assert!(
                end - start < 10_000,
                "{} in a window ending at {:?}",
                end - start + 1,
                allowed[end]
            );
        }
        assert!(allowed.len() >= 28_500, "{}", allowed.len());
    }

    #[test]
    fn refused_checks_do_not_count() {
        let t0 = Instant::now();
        let limiter = Limiter::starting(2, Duration::from_secs(10), t0).unwrap();
        assert!(limiter.check(A, t0).is_ok() && limiter.check(A, t0).is_ok());
        for _ in 0..100 {
            assert_eq!(limiter.check(A, t0 + ms(100)), Err(ms(10_400)));
        }
        assert!(limiter.check(A, t0 + ms(10_500)).is_ok());
    }

    #[test]
    fn looking_counts_nothing_and_counting_always_counts() {
        let t0 = Instant::now();
        let limiter = Limiter::starting(3, Duration::from_secs(2), t0).unwrap();
        for _ in 0..100 {
            assert_eq!(limiter.blocked(A, t0), Ok(()));
        }
        assert_eq!(limiter.tracked(), 0, "looking adds no entry");
        for _ in 0..3 {
            assert_eq!(limiter.blocked(A, t0), Ok(()));
            limiter.count(A, t0);
        }
        assert_eq!(limiter.blocked(A, t0 + ms(50)), Err(ms(2050)));
        // Counting past the limit keeps the client blocked until those slices leave too.
        limiter.count(A, t0 + ms(1000));
        assert!(limiter.blocked(A, t0 + ms(2100)).is_ok());
        limiter.count(A, t0 + ms(2100));
        limiter.count(A, t0 + ms(2100));
        assert_eq!(limiter.blocked(A, t0 + ms(2100)), Err(ms(1000)));
        assert_eq!(limiter.blocked(B, t0 + ms(2100)), Ok(()));
    }

    #[test]
    fn idle_clients_are_forgotten() {
        let t0 = Instant::now();
        let limiter = SlidingWindow::starting(3, Duration::from_secs(1), t0).unwrap();
        for i in 0..1000u16 {
            let ip = IpAddr::V4(Ipv4Addr::new(10, 0, (i >> 8) as u8, i as u8));
            limiter.check(ip, t0).unwrap();
        }
        assert_eq!(limiter.tracked(), 1000);
        let a = IpAddr::V4(Ipv4Addr::LOCALHOST);
        limiter.check(a, t0 + Duration::from_secs(3)).unwrap();
        assert_eq!(
            limiter.tracked(),
            1,
            "only the client active within the window is kept"
        );
    }

    #[test]
    fn a_flood_of_clients_stays_bounded() {
        let t0 = Instant::now();
        let limiter = SlidingWindow::starting(10_000, Duration::from_secs(300), t0).unwrap();
        for i in 0..(MAX_CLIENTS as u32 + 5_000) {
            let ip = IpAddr::V4(Ipv4Addr::from(0x0b00_0000 + i));
            limiter.count(ip, t0 + Duration::from_millis(u64::from(i)));
        }
        assert!(limiter.tracked() <= MAX_CLIENTS, "{}", limiter.tracked());
    }

    #[test]
    fn ipv6_peers_count_by_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_address(a), client_address(b));
        assert_ne!(client_address(a), client_address(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(
            client_address(mapped),
            "192.0.2.7".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn zero_turns_the_limit_off_and_retry_after_rounds_up() {
        assert!(Limiter::new(0, Duration::from_secs(1)).is_none());
        assert_eq!(retry_after_seconds(ms(0)), 1);
        assert_eq!(retry_after_seconds(ms(1000)), 1);
        assert_eq!(retry_after_seconds(ms(1001)), 2);
    }
}
