//! Sources: the systems that send data into one environment, made through the API or the
//! dashboard (create, list, read, rename, delete) or from the configuration's `[[sources]]`
//! (kept in step at every start, listed like the others, changed only in the configuration).
//!
//! A source made here gets an `apiKey` (256 random bits), shown once in the answer to its
//! creation and kept only as its SHA-256: a key that is lost is replaced by deleting the
//! source and creating it again. A presented key is looked up by its digest (a lookup by the
//! hash of a random 256-bit value tells a guesser nothing) and compared again in constant
//! time. A `[[sources]]` entry's key stays in the configuration and is compared as before;
//! an entry without `environment` has a source in each of the three environments.
//!
//! A source may also send with a bearer token of an OAuth API key of its environment
//! (`crate::app::token`), naming itself in `Meta.Source.ID`.

use super::token::{self, TokenHolder};
use super::{Engine, EngineError, find_secret};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;
use wharf_store::engine::{EnvironmentRecord, SourceRecord};

/// How long an authenticated source's records are kept at hand for ingestion: every message
/// would otherwise read them from the store. Local changes clear it at once.
const CACHE_TTL: Duration = Duration::from_secs(1);

/// Who is sending, as known from the request's headers (before its body is read).
#[derive(Debug, Clone)]
pub enum Sender {
    /// A source key: the source's records (several for a `[[sources]]` entry of every
    /// environment).
    Sources(Arc<[SourceRecord]>),
    /// An OAuth API key's token: the source is named in the message (`Meta.Source.ID`).
    Token(TokenHolder),
}

/// Authenticated senders by the SHA-256 of their key, with when they were read.
pub type SenderCache =
    std::sync::Mutex<std::collections::HashMap<[u8; 32], (Arc<[SourceRecord]>, Instant)>>;

fn unauthorized(message: &str) -> EngineError {
    EngineError::Unauthorized(message.to_owned())
}

/// The sender of a request with this bearer credential: a configured source key (constant
/// time, against every one), a source's `apiKey` (by digest, then compared in constant time),
/// or an access token from `/v2/auth/token`.
pub async fn authenticate(engine: &Engine, key: Option<&str>) -> Result<Sender, EngineError> {
    let Some(presented) = key else {
        return Err(unauthorized(
            "missing source key: send Authorization: Bearer <source apiKey or access token>",
        ));
    };
    if token::is_token(presented) {
        return token::check(engine, presented).map(Sender::Token);
    }
    let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
    if let Some((records, at)) = engine
        .senders
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&digest)
        && at.elapsed() < CACHE_TTL
    {
        return Ok(Sender::Sources(records.clone()));
    }
    let records = if let Some(index) = find_secret(
        presented,
        engine.config.sources.iter().map(|s| s.api_key.as_str()),
    ) {
        let org = engine.organization.id.clone();
        let name = engine.config.sources[index].name.clone();
        engine.db(move |s| s.config_sources(&org, &name)).await?
    } else {
        let lookup = digest.to_vec();
        let found = engine
            .db(move |s| s.source_by_key_digest(&lookup))
            .await?
            .filter(|s| s.organization_id == engine.organization.id)
            .filter(|s| {
                s.api_key_digest
                    .as_deref()
                    .is_some_and(|kept| bool::from(kept.ct_eq(&digest)))
            });
        found.into_iter().collect()
    };
    if records.is_empty() {
        tracing::warn!(reason = "wrong_source_key", "ingestion refused");
        return Err(unauthorized("the source key is not valid"));
    }
    let records: Arc<[SourceRecord]> = records.into();
    engine
        .senders
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(digest, (records.clone(), Instant::now()));
    Ok(Sender::Sources(records))
}

/// Forgets every authenticated sender (a source was changed or deleted here).
fn forget_senders(engine: &Engine) {
    engine
        .senders
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clear();
}

/// Makes the configuration's `[[sources]]` sources of the store: one per environment each
/// names (every environment when it names none), renamed to match. Run at start.
pub async fn sync_config(engine: &Engine) -> Result<(), EngineError> {
    let environments = super::destinations::environments(engine).await?;
    for source in &engine.config.sources {
        let org = engine.organization.id.clone();
        let name = source.name.clone();
        let existing = engine.db(move |s| s.config_sources(&org, &name)).await?;
        for env in environments
            .iter()
            .filter(|e| source.environment.is_none_or(|flag| flag == e.flag))
        {
            if existing.iter().any(|s| s.environment_id == env.id) {
                continue;
            }
            let now = engine.now_millis();
            let record = SourceRecord {
                id: uuid::Uuid::new_v4().to_string(),
                organization_id: engine.organization.id.clone(),
                environment_id: env.id.clone(),
                name: source.name.clone(),
                api_key_digest: None,
                config_name: Some(source.name.clone()),
                created_at: now,
                updated_at: now,
            };
            engine.db(move |s| s.insert_source(&record)).await?;
            tracing::info!(source = %source.name, environment = %env.flag, "source from the configuration");
        }
    }
    Ok(())
}

/// Creates a source in `env` and returns it with its `apiKey` (shown this once).
pub async fn create(
    engine: &Engine,
    env: &EnvironmentRecord,
    name: Option<String>,
) -> Result<(SourceRecord, String), EngineError> {
    let name = checked_name(name.ok_or_else(|| {
        EngineError::bad_request("`name` is required: it names the source in logs and Meta.Source")
    })?)?;
    let api_key = crate::secrets::random_key();
    let now = engine.now_millis();
    let record = SourceRecord {
        id: uuid::Uuid::new_v4().to_string(),
        organization_id: engine.organization.id.clone(),
        environment_id: env.id.clone(),
        name,
        api_key_digest: Some(Sha256::digest(api_key.as_bytes()).to_vec()),
        config_name: None,
        created_at: now,
        updated_at: now,
    };
    let stored = record.clone();
    engine.db(move |s| s.insert_source(&stored)).await?;
    tracing::info!(source = %record.id, environment = %env.flag, "source created");
    Ok((record, api_key))
}

fn checked_name(name: String) -> Result<String, EngineError> {
    if name.trim().is_empty() {
        return Err(EngineError::bad_request("`name` must not be empty"));
    }
    Ok(name)
}

/// A source of this organization with its environment, or `NotFound`.
pub async fn read(
    engine: &Engine,
    id: &str,
) -> Result<(SourceRecord, EnvironmentRecord), EngineError> {
    let lookup = id.to_owned();
    let record = engine
        .db(move |s| s.source(&lookup))
        .await?
        .filter(|s| s.organization_id == engine.organization.id)
        .ok_or_else(|| EngineError::not_found(format!("source {id}")))?;
    let env = super::destinations::environment(engine, &record.environment_id).await?;
    Ok((record, env))
}

/// The sources of one environment, oldest first.
pub async fn list(
    engine: &Engine,
    env_id: &str,
) -> Result<(EnvironmentRecord, Vec<SourceRecord>), EngineError> {
    let env = super::destinations::environment(engine, env_id).await?;
    let lookup = env.id.clone();
    let sources = engine.db(move |s| s.sources(&lookup)).await?;
    Ok((env, sources))
}

/// Renames a source (its key and subscriptions stay). A `[[sources]]` source is renamed in
/// the configuration only.
pub async fn rename(
    engine: &Engine,
    id: &str,
    name: Option<String>,
) -> Result<(SourceRecord, EnvironmentRecord), EngineError> {
    let (mut record, env) = read(engine, id).await?;
    let Some(name) = name else {
        return Ok((record, env));
    };
    if record.config_name.is_some() {
        return Err(EngineError::conflict(format!(
            "source {id} comes from the engine's configuration ([[sources]] name = {:?}): rename it there and restart",
            record.name
        )));
    }
    record.name = checked_name(name)?;
    record.updated_at = engine.now_millis();
    let stored = record.clone();
    if !engine.db(move |s| s.update_source(&stored)).await? {
        return Err(EngineError::not_found(format!("source {id}")));
    }
    forget_senders(engine);
    Ok((record, env))
}

/// Deletes a source, its key and its subscriptions (messages it already sent stay queued). A
/// `[[sources]]` source is removed from the configuration instead.
pub async fn delete(engine: &Engine, id: &str) -> Result<(), EngineError> {
    let (record, _) = read(engine, id).await?;
    if record.config_name.is_some() {
        return Err(EngineError::conflict(format!(
            "source {id} comes from the engine's configuration ([[sources]] name = {:?}): remove it there and restart",
            record.name
        )));
    }
    let lookup = id.to_owned();
    if !engine.db(move |s| s.delete_source(&lookup)).await? {
        return Err(EngineError::not_found(format!("source {id}")));
    }
    forget_senders(engine);
    super::subscriptions::forget_routes(engine);
    engine.signals.changed();
    tracing::info!(source = %id, "source deleted");
    Ok(())
}
