//! Where a destination's strategy remembers the single-use credentials it accepted (SigV4
//! signatures, JWT `jti`s, JWT Bearer tokens without a `jti`): in this process's memory on
//! SQLite, where one server owns the inbox; in the PostgreSQL database when several servers
//! share it (`replay_seen`), so a request captured on its way to one of them cannot be replayed
//! once to each of the others.
//!
//! Both remember the same keys (`wharf_auth::replay::digest` of the same parts) for the same
//! time. Each destination's keys are scoped by its path, as a guard's memory is its own on
//! SQLite. When the database cannot answer, the request is refused with 503 and
//! `Retry-After` ([`Unavailable`]): accepting it could let a replay through, and a 500 would
//! tell the sender the request itself was wrong.

use wharf_auth::clock::Clock;
use wharf_auth::replay::{SeenOnce, digest};
use wharf_store::SharedReplays;

/// The database could not say whether a credential was used before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unavailable;

impl Unavailable {
    /// What the refused sender is told.
    pub const REASON: &'static str = "cannot check this credential against replays now: the database is unavailable; retry shortly";
    /// `Retry-After` of the 503, seconds.
    pub const RETRY_AFTER: u32 = 5;
}

/// One destination's memory of single-use credentials.
pub(crate) struct Replays {
    /// The destination's path: the first part of every key.
    scope: String,
    memory: Memory,
}

enum Memory {
    Process(SeenOnce),
    Shared(SharedReplays),
}

impl Replays {
    /// In this process's memory (`shared` = `None`), or in the shared database.
    pub fn new(scope: &str, shared: Option<SharedReplays>) -> Self {
        Self {
            scope: scope.to_owned(),
            memory: match shared {
                Some(shared) => Memory::Shared(shared),
                None => Memory::Process(SeenOnce::default()),
            },
        }
    }

    /// Records the credential made of `parts` until `expires_at` (Unix seconds): `Ok(true)` the
    /// first time, `Ok(false)` for a replay within that time.
    pub async fn first_use(
        &self,
        parts: &[&[u8]],
        expires_at: u64,
        clock: &dyn Clock,
    ) -> Result<bool, Unavailable> {
        let mut scoped: Vec<&[u8]> = Vec::with_capacity(parts.len() + 1);
        scoped.push(self.scope.as_bytes());
        scoped.extend_from_slice(parts);
        match &self.memory {
            Memory::Process(seen) => Ok(seen.first_use(&scoped, expires_at, clock)),
            Memory::Shared(shared) => {
                let key = digest(&scoped);
                let now = clock.unix_seconds();
                let shared = shared.clone();
                // The store blocks (a database round trip): not on the async workers.
                let answer =
                    tokio::task::spawn_blocking(move || shared.first_use(&key, expires_at, now))
                        .await;
                match answer {
                    Ok(Ok(first)) => Ok(first),
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "cannot check a credential against replays; answered 503");
                        Err(Unavailable)
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "the replay check did not finish; answered 503");
                        Err(Unavailable)
                    }
                }
            }
        }
    }

    /// Records a `jti` of `issuer`'s until the token carrying it would be refused as expired
    /// anyway (its `exp` plus the leeway): remembering it longer buys nothing.
    pub async fn first_jti(
        &self,
        issuer: &str,
        jti: &str,
        exp: u64,
        clock: &dyn Clock,
    ) -> Result<bool, Unavailable> {
        self.first_use(
            &[b"jti", issuer.as_bytes(), jti.as_bytes()],
            exp.saturating_add(wharf_auth::jwt::DEFAULT_LEEWAY_SECONDS),
            clock,
        )
        .await
    }
}
