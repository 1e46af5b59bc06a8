//! Remembering credentials that may be used only once (a SigV4 signature, a JWT Bearer token)
//! for as long as they could otherwise still be accepted, so a captured request cannot be
//! sent again.
//!
//! Keys are kept as SHA-256 digests: every entry costs the same small, fixed amount of memory
//! whatever the sender put in it, and nothing secret is held in the clear. Expired entries are
//! dropped in expiry order from a heap as new ones arrive, so each use costs O(log n) rather
//! than a scan of everything remembered (at 1,000 requests a second for a 10-minute window,
//! n is 600,000: a scan per request would be the server's main work).

use crate::clock::Clock;
use sha2::{Digest, Sha256};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Mutex;

type Key = [u8; 32];

/// Credentials seen, each until its expiry (Unix seconds).
#[derive(Debug, Default)]
pub struct SeenOnce {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    expiries: HashMap<Key, u64>,
    /// Every key once, ordered by the expiry it was recorded with.
    by_expiry: BinaryHeap<Reverse<(u64, Key)>>,
}

impl SeenOnce {
    /// Records the credential made of `parts` until `expires_at` (Unix seconds). Returns false
    /// when it was already recorded and has not expired: the caller refuses it as a replay.
    ///
    /// `parts` are hashed with their lengths, so `["ab", "c"]` and `["a", "bc"]` differ; put a
    /// fixed label first (`b"sigv4"`) so different kinds of credential never collide.
    pub fn first_use(&self, parts: &[&[u8]], expires_at: u64, clock: &dyn Clock) -> bool {
        let now = clock.unix_seconds();
        let key = digest(parts);
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.forget_expired(now);
        if inner.expiries.get(&key).is_some_and(|&exp| exp > now) {
            return false;
        }
        inner.expiries.insert(key, expires_at);
        inner.by_expiry.push(Reverse((expires_at, key)));
        true
    }

    /// How many credentials are remembered (for tests and metrics).
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .expiries
            .len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The key a credential made of `parts` is remembered by: SHA-256 over the parts, each prefixed
/// with its length, so `["ab", "c"]` and `["a", "bc"]` differ. Also the key of a memory kept
/// elsewhere (a database shared by several servers), so both remember the same thing.
pub fn digest(parts: &[&[u8]]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    hasher.finalize().into()
}

impl Inner {
    fn forget_expired(&mut self, now: u64) {
        while let Some(Reverse((exp, key))) = self.by_expiry.peek().copied() {
            if exp > now {
                break;
            }
            self.by_expiry.pop();
            // Only if it was not recorded again with a later expiry since.
            if self.expiries.get(&key) == Some(&exp) {
                self.expiries.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use std::time::Duration;

    #[test]
    fn a_credential_is_accepted_once_until_it_expires() {
        let clock = ManualClock::at_unix(1_000);
        let seen = SeenOnce::default();
        assert!(seen.first_use(&[b"sigv4", b"abc"], 1_600, &clock));
        assert!(!seen.first_use(&[b"sigv4", b"abc"], 1_600, &clock));
        assert!(seen.first_use(&[b"sigv4", b"abd"], 1_600, &clock));
        assert!(
            seen.first_use(&[b"jwt", b"abc"], 1_600, &clock),
            "kinds do not collide"
        );
        assert!(
            seen.first_use(&[b"sigv4a", b"bc"], 1_600, &clock),
            "parts are length-prefixed"
        );
        clock.advance(Duration::from_secs(599));
        assert!(!seen.first_use(&[b"sigv4", b"abc"], 1_600, &clock));
        clock.advance(Duration::from_secs(1));
        assert!(seen.first_use(&[b"sigv4", b"abc"], 2_200, &clock));
        assert_eq!(seen.len(), 1, "the others were forgotten at their expiry");
    }

    #[test]
    fn forgetting_is_by_expiry_order_whatever_the_insertion_order() {
        let clock = ManualClock::at_unix(0);
        let seen = SeenOnce::default();
        for (i, exp) in [50u64, 10, 40, 20, 30].into_iter().enumerate() {
            assert!(seen.first_use(&[&[i as u8]], exp, &clock));
        }
        clock.advance(Duration::from_secs(25));
        assert!(seen.first_use(&[b"new"], 100, &clock));
        assert_eq!(
            seen.len(),
            4,
            "10 and 20 forgotten; 30, 40, 50 and the new one kept"
        );
        assert!(!seen.first_use(&[&[0u8]], 50, &clock), "50 still held");
        assert!(seen.first_use(&[&[1u8]], 50, &clock), "10 forgotten");
    }
}
