//! What a destination's strategy remembers beyond one request: the single-use credentials it
//! accepted (SigV4 signatures, JWT `jti`s, JWT Bearer tokens without a `jti`) and the access
//! tokens its token endpoint issued. On SQLite, where one server owns the inbox, single-use
//! credentials are remembered in this process (and issued tokens in the guard's
//! `IssuedTokens`). When several servers share a PostgreSQL database, both go to the database
//! too (`replay_seen`, `issued_tokens`): a request captured on its way to one server cannot be
//! replayed once to each of the others, and a token issued by one server is good at all of
//! them (behind a load balancer the next request may reach another).
//!
//! Both memories use the same keys (`wharf_auth::replay::digest` of the same parts) for the
//! same time. Each destination's keys are scoped by its path, as a guard's memory is its own on
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
                blocking(move || shared.first_use(&key, expires_at, now)).await
            }
        }
    }

    /// Shares an access token this server's token endpoint issued (to `client_id`, registered
    /// as `registration`, until `expires_at`) with the other servers of the database; nothing
    /// to do on SQLite.
    pub async fn record_token(
        &self,
        token: &str,
        client_id: &str,
        registration: [u8; 32],
        expires_at: u64,
    ) -> Result<(), Unavailable> {
        let Memory::Shared(shared) = &self.memory else {
            return Ok(());
        };
        let key = digest(&[b"access-token", token.as_bytes()]);
        let (shared, scope, client_id) = (shared.clone(), self.scope.clone(), client_id.to_owned());
        blocking(move || shared.record_token(&key, &scope, &client_id, &registration, expires_at))
            .await
    }

    /// Whether another server of the database issued `token`, it has not expired, and its
    /// client is still registered as it was then (`registration` gives the digest of a client's
    /// registration here; a rotated secret revokes the old secret's tokens): `None` when no
    /// server issued it (or on SQLite), `Some(false)` when it expired or was revoked.
    pub async fn issued_elsewhere(
        &self,
        token: &str,
        clock: &dyn Clock,
        registration: impl Fn(&str) -> Option<[u8; 32]>,
    ) -> Result<Option<bool>, Unavailable> {
        let Memory::Shared(shared) = &self.memory else {
            return Ok(None);
        };
        let key = digest(&[b"access-token", token.as_bytes()]);
        let (shared, scope) = (shared.clone(), self.scope.clone());
        let now = clock.unix_seconds();
        let found = blocking(move || shared.issued_token(&key, &scope)).await?;
        Ok(found.map(|t| {
            t.expires_at > now
                && registration(&t.client_id).is_some_and(|r| r.as_slice() == t.registration)
        }))
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

/// Runs a store call on a blocking thread (a database round trip does not belong on the async
/// workers); any failure is [`Unavailable`], logged.
async fn blocking<T: Send + 'static>(
    call: impl FnOnce() -> Result<T, wharf_store::StoreError> + Send + 'static,
) -> Result<T, Unavailable> {
    match tokio::task::spawn_blocking(call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "the shared credential memory cannot answer; answered 503");
            Err(Unavailable)
        }
        Err(e) => {
            tracing::error!(error = %e, "a shared credential check did not finish; answered 503");
            Err(Unavailable)
        }
    }
}
