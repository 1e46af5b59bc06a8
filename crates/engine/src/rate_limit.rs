//! Rate limits on what the engine serves to others: ingestion (`POST /endpoint`), the
//! management API (`/platform/v1/...`) and the dashboard's sign-in form. Each client may make
//! `rate_limit_requests` requests per `rate_limit_window` (Redox's limit, PROTOCOL.md section 6:
//! 10,000 per 5 minutes); beyond that it gets 429 with `Retry-After` (whole seconds until its
//! next request would pass) and an error body in the API's envelope, counted in
//! `wharf_rate_limited_total{kind}`.
//!
//! **Who is a client.** The key a request authenticates with, when it is a valid source or
//! management key: many systems behind one NAT or proxy then keep a budget each. Otherwise the
//! peer address, an IPv6 peer by its /64 (one subscriber usually holds a whole /64, so per
//! address it could take a fresh budget for every request). A key that is not valid counts as
//! its address, or a stranger could make up a new key for every request.
//!
//! **The algorithm** is a sliding window kept in [`BUCKETS`] + 1 counters per client, each
//! counting the allowed requests of one `window / BUCKETS` slice of time. A request passes
//! while the counters of the slices that overlap the last `window` (the current slice and the
//! [`BUCKETS`] before it) sum to less than the limit. That includes the whole oldest slice,
//! part of which is already older than the window, so the limit errs on the strict side: no
//! client ever gets more than `limit` requests into any `window`, and a slot frees at most one
//! slice (5 % of the window) later than an exact log of timestamps would free it. Refused
//! requests are not counted. `Retry-After` says when the oldest counted slices leave the
//! window and free a slot. The counters cost about a hundred bytes per client, where an exact
//! log would hold 10,000 timestamps.
//!
//! **Bounded memory.** A client whose counted slices have all left the window is in exactly the
//! state of a client never seen, so such entries are swept (at most once per window) without
//! changing any answer: the map holds only clients active within the last window. A flood of
//! distinct addresses is capped at [`MAX_CLIENTS`] entries (about 15 MB): when full, the half
//! of the entries idle longest are dropped, which can only let those clients in sooner, never
//! refuse anyone wrongly.

use crate::app::{Engine, EngineError, find_secret};
use crate::http::bearer;
use axum::extract::{ConnectInfo, Request};

use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most clients tracked at once; see the module header for what happens beyond.
pub const MAX_CLIENTS: usize = 100_000;

/// Slices per window: the window's resolution (a slot frees at most `window / BUCKETS` late).
pub const BUCKETS: u64 = 20;

/// Counters per client: the slices overlapping the last window.
const SLOTS: usize = BUCKETS as usize + 1;

/// One client, as the limit counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Client {
    /// The n-th configured source key.
    SourceKey(usize),
    /// The n-th configured management key.
    ManagementKey(usize),
    /// A peer address (IPv6: its /64).
    Address(IpAddr),
}

impl Client {
    /// A peer address as a client: IPv4 (also when IPv4-mapped) as is, IPv6 by its /64.
    pub fn address(ip: IpAddr) -> Client {
        match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Client::Address(IpAddr::V4(v4)),
                None => {
                    let s = v6.segments();
                    Client::Address(IpAddr::V6(Ipv6Addr::new(
                        s[0], s[1], s[2], s[3], 0, 0, 0, 0,
                    )))
                }
            },
            v4 => Client::Address(v4),
        }
    }
}

/// One client's allowed requests per slice, in a ring indexed by slice number.
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
}

/// The limiter: a few counters per client.
pub(crate) struct RateLimiter {
    limit: u32,
    window: Duration,
    /// `window / BUCKETS`.
    slice: Duration,
    /// Slice numbers count from here.
    epoch: Instant,
    clients: Mutex<Clients>,
}

struct Clients {
    counts: HashMap<Client, Counts>,
    /// The slice at or after which the next sweep of idle clients runs.
    next_sweep: u64,
}

impl RateLimiter {
    /// `limit` requests per `window`; `None` when `limit` is 0 (no limit).
    pub fn new(limit: u32, window: Duration) -> Option<RateLimiter> {
        Self::starting(limit, window, Instant::now())
    }

    /// As [`RateLimiter::new`], with slices counted from `epoch` (no `check` may be earlier).
    fn starting(limit: u32, window: Duration, epoch: Instant) -> Option<RateLimiter> {
        (limit > 0).then(|| RateLimiter {
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

    /// Counts a request of `client` at `now`: `Ok` if it may pass, else how long until a
    /// request of it would.
    pub fn check(&self, client: Client, now: Instant) -> Result<(), Duration> {
        let slice = self.slice_of(now);
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if slice >= clients.next_sweep {
            clients
                .counts
                .retain(|_, c| c.last + (SLOTS as u64) > slice);
            clients.next_sweep = slice + SLOTS as u64;
        }
        if !clients.counts.contains_key(&client) && clients.counts.len() >= MAX_CLIENTS {
            shed(&mut clients.counts, slice);
        }
        let counts = clients.counts.entry(client).or_insert(Counts {
            last: slice,
            per_slice: [0; SLOTS],
        });
        counts.advance(slice);
        let total = counts.total();
        if total < u64::from(self.limit) {
            counts.per_slice[(slice % SLOTS as u64) as usize] += 1;
            return Ok(());
        }
        // Refused: find the oldest slices whose leaving the window frees a slot.
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
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.clients.lock().unwrap().counts.len()
    }

    /// What a refused client is told.
    fn message(&self, retry_after: u64) -> String {
        let window = self.window.as_secs();
        let window = if window >= 60 && window.is_multiple_of(60) {
            format!("{} minutes", window / 60)
        } else {
            format!("{:?}", self.window)
        };
        format!(
            "too many requests: each client may make {} requests per {window}; retry in {retry_after} s",
            self.limit
        )
    }
}

/// Makes room in a full map: drops every idle entry, then, if that was not enough, the half
/// of the entries idle longest.
fn shed(counts: &mut HashMap<Client, Counts>, slice: u64) {
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

/// Which limited surface a request is for, as the metric's `kind` label; `None` for what is
/// not limited (health, readiness and metrics for monitoring; the dashboard's pages behind a
/// session).
fn kind(path: &str) -> Option<&'static str> {
    if path == "/endpoint" {
        Some("ingestion")
    } else if path == "/platform/v1" || path.starts_with("/platform/v1/") {
        Some("management")
    } else if path == "/dashboard/signin" {
        Some("dashboard_signin")
    } else {
        None
    }
}

/// Who sent `request`: its valid key, else its peer address.
fn client(engine: &Engine, request: &Request) -> Client {
    if let Some(presented) = bearer(request.headers()) {
        let sources = engine.config.sources.iter().map(|s| s.api_key.as_str());
        if let Some(i) = find_secret(presented, sources) {
            return Client::SourceKey(i);
        }
        let managers = engine.config.api_keys.iter().map(String::as_str);
        if let Some(i) = find_secret(presented, managers) {
            return Client::ManagementKey(i);
        }
    }
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
        .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    Client::address(peer)
}

/// What the middleware holds: the engine (its keys and metrics) and the limiter.
#[derive(Clone)]
pub(crate) struct Limited {
    pub engine: Engine,
    /// `None` when the limit is turned off.
    pub limiter: Option<std::sync::Arc<RateLimiter>>,
}

impl Limited {
    pub fn new(engine: Engine) -> Limited {
        let limiter = RateLimiter::new(
            engine.config.rate_limit_requests,
            engine.config.rate_limit_window,
        )
        .map(std::sync::Arc::new);
        Limited { engine, limiter }
    }
}

/// The middleware: refuses a limited client's request with 429 before anything reads it.
pub(crate) async fn layer(
    axum::extract::State(Limited { engine, limiter }): axum::extract::State<Limited>,
    request: Request,
    next: Next,
) -> Response {
    let (Some(limiter), Some(kind)) = (&limiter, kind(request.uri().path())) else {
        return next.run(request).await;
    };
    let who = client(&engine, &request);
    let Err(wait) = limiter.check(who, Instant::now()) else {
        return next.run(request).await;
    };
    // Whole seconds, rounded up: a client that waits exactly this long gets through.
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let seconds = seconds.max(1);
    engine.metrics.rate_limited(kind);
    tracing::debug!(?who, kind, retry_after = seconds, "rate limited");
    EngineError::TooManyRequests {
        message: limiter.message(seconds),
        retry_after: seconds,
    }
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Client = Client::SourceKey(0);
    const B: Client = Client::ManagementKey(0);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_limit_per_window_then_429_until_a_slot_frees() {
        let t0 = Instant::now();
        // 5 per 2 s: slices of 100 ms.
        let limiter = RateLimiter::starting(5, Duration::from_secs(2), t0).unwrap();
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
    fn spread_requests_free_one_slot_at_a_time() {
        let t0 = Instant::now();
        let limiter = RateLimiter::starting(3, Duration::from_secs(2), t0).unwrap();
        for at in [0, 500, 1000] {
            assert_eq!(limiter.check(A, t0 + ms(at)), Ok(()));
        }
        // The request at 0 leaves the window (with its slice) at 2.1 s; the one at 500 at 2.6 s.
        assert_eq!(limiter.check(A, t0 + ms(1200)), Err(ms(900)));
        assert_eq!(limiter.check(A, t0 + ms(2100)), Ok(()));
        assert_eq!(limiter.check(A, t0 + ms(2100)), Err(ms(500)));
    }

    #[test]
    fn never_more_than_the_limit_in_any_window() {
        // 10,000 per 5 minutes, offered one request every 7 ms for 15 minutes: every window of
        // 5 minutes holds at most 10,000 allowed requests, and the sustained rate is close to it.
        let t0 = Instant::now();
        let window = Duration::from_secs(300);
        let limiter = RateLimiter::starting(10_000, window, t0).unwrap();
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
    fn refused_requests_do_not_count() {
        let t0 = Instant::now();
        let limiter = RateLimiter::starting(2, Duration::from_secs(10), t0).unwrap();
        assert!(limiter.check(A, t0).is_ok() && limiter.check(A, t0).is_ok());
        for _ in 0..100 {
            assert_eq!(limiter.check(A, t0 + ms(100)), Err(ms(10_400)));
        }
        assert!(limiter.check(A, t0 + ms(10_500)).is_ok());
    }

    #[test]
    fn idle_clients_are_forgotten() {
        let t0 = Instant::now();
        let limiter = RateLimiter::starting(3, Duration::from_secs(1), t0).unwrap();
        for i in 0..1000u16 {
            let ip = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, (i >> 8) as u8, i as u8));
            limiter.check(Client::address(ip), t0).unwrap();
        }
        assert_eq!(limiter.tracked(), 1000);
        limiter.check(A, t0 + Duration::from_secs(3)).unwrap();
        assert_eq!(
            limiter.tracked(),
            1,
            "only the client active within the window is kept"
        );
    }

    #[test]
    fn a_flood_of_addresses_stays_bounded() {
        let t0 = Instant::now();
        let limiter = RateLimiter::starting(10_000, Duration::from_secs(300), t0).unwrap();
        for i in 0..(MAX_CLIENTS as u32 + 5_000) {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0b00_0000 + i));
            limiter
                .check(
                    Client::address(ip),
                    t0 + Duration::from_millis(u64::from(i)),
                )
                .unwrap();
        }
        assert!(limiter.tracked() <= MAX_CLIENTS, "{}", limiter.tracked());
    }

    #[test]
    fn ipv6_peers_count_by_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(Client::address(a), Client::address(b));
        assert_ne!(Client::address(a), Client::address(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(
            Client::address(mapped),
            Client::Address("192.0.2.7".parse().unwrap())
        );
    }

    #[test]
    fn zero_turns_the_limit_off_and_kinds_are_by_path() {
        assert!(RateLimiter::new(0, Duration::from_secs(1)).is_none());
        assert_eq!(kind("/endpoint"), Some("ingestion"));
        assert_eq!(kind("/platform/v1/organizations"), Some("management"));
        assert_eq!(kind("/dashboard/signin"), Some("dashboard_signin"));
        for free in [
            "/healthz",
            "/readyz",
            "/metrics",
            "/dashboard/logs",
            "/platform/v10",
        ] {
            assert_eq!(kind(free), None, "{free}");
        }
    }
}
