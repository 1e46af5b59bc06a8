//! OAuth API keys (Redox's `apikeys`, one environment each): the public keys a client signs
//! its token requests with (`crate::app::token`), kept as a JWK set or found at a JWKS URL.
//! The key's id is the client ID (`iss` and `sub` of its assertions).
//!
//! Only public keys are kept: a JWK with a private member (`d`, `p`, `q`, ...) or a symmetric
//! key is refused, and every key needs `kid` and `kty`, as Redox requires. When both a URL and
//! a set are given, the URL is used (Redox: "only the URL is used"); the set is kept as sent.

use super::{Engine, EngineError};
use serde_json::Value;
use wharf_auth::jwks::KeySet;
use wharf_store::engine::{ApiKeyRecord, EnvironmentRecord};

/// What a create or update asks for; `None` leaves a field as it is (create: unset).
#[derive(Debug, Default)]
pub struct ApiKeyChanges {
    pub name: Option<String>,
    /// `Some(None)`: remove the URL.
    pub jwks_url: Option<Option<String>>,
    /// `Some(None)`: remove the set.
    pub jwk_set: Option<Option<Value>>,
}

/// JWK members that only a private (or symmetric) key has.
const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Checks a JWK set as sent and returns its JSON text: `{"keys": [...]}`, each key public,
/// with `kid` and `kty`, at least one usable for RS384/ES384 signatures.
fn checked_set(set: &Value) -> Result<String, EngineError> {
    let bad = |why: String| EngineError::bad_request(format!("`jwkSet` {why}"));
    let keys = set
        .get("keys")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("must be an object with a `keys` array".into()))?;
    for (i, key) in keys.iter().enumerate() {
        let Some(object) = key.as_object() else {
            return Err(bad(format!("keys[{i}] is not an object")));
        };
        for member in ["kid", "kty"] {
            if object
                .get(member)
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                return Err(bad(format!("keys[{i}].{member} is required")));
            }
        }
        if let Some(member) = PRIVATE_MEMBERS.iter().find(|m| object.contains_key(**m)) {
            return Err(bad(format!(
                "keys[{i}] has `{member}`: send the public key only, never the private or a shared secret"
            )));
        }
    }
    let text = set.to_string();
    KeySet::from_jwks_bytes(text.as_bytes()).map_err(|e| bad(e.to_string()))?;
    Ok(text)
}

/// Checks a JWKS URL: absolute http(s). Its host is checked against the SSRF rules each time
/// it is fetched.
fn checked_url(url: &str) -> Result<String, EngineError> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| EngineError::bad_request(format!("`jwksURL` is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "https" | "http") {
        return Err(EngineError::bad_request(
            "`jwksURL` must be an https:// URL",
        ));
    }
    Ok(url.to_owned())
}

fn apply(record: &mut ApiKeyRecord, changes: ApiKeyChanges) -> Result<(), EngineError> {
    if let Some(name) = changes.name {
        if name.trim().is_empty() {
            return Err(EngineError::bad_request("`name` must not be empty"));
        }
        record.name = name;
    }
    if let Some(url) = changes.jwks_url {
        record.jwks_url = url.as_deref().map(checked_url).transpose()?;
    }
    if let Some(set) = changes.jwk_set {
        record.jwk_set = set.as_ref().map(checked_set).transpose()?;
    }
    Ok(())
}

/// Creates an OAuth API key in `env`; `name` is required.
pub async fn create(
    engine: &Engine,
    env: &EnvironmentRecord,
    changes: ApiKeyChanges,
) -> Result<ApiKeyRecord, EngineError> {
    if changes.name.is_none() {
        return Err(EngineError::bad_request(
            "`name` is required: it tells your keys apart",
        ));
    }
    let now = engine.now_millis();
    let mut record = ApiKeyRecord {
        id: uuid::Uuid::new_v4().to_string(),
        organization_id: engine.organization.id.clone(),
        environment_id: env.id.clone(),
        name: String::new(),
        jwks_url: None,
        jwk_set: None,
        created_at: now,
        updated_at: now,
    };
    apply(&mut record, changes)?;
    let stored = record.clone();
    engine.db(move |s| s.insert_apikey(&stored)).await?;
    tracing::info!(apikey = %record.id, environment = %env.flag, "OAuth API key created");
    Ok(record)
}

/// An OAuth API key of this organization with its environment, or `NotFound`.
pub async fn read(
    engine: &Engine,
    id: &str,
) -> Result<(ApiKeyRecord, EnvironmentRecord), EngineError> {
    let lookup = id.to_owned();
    let record = engine
        .db(move |s| s.apikey(&lookup))
        .await?
        .filter(|k| k.organization_id == engine.organization.id)
        .ok_or_else(|| EngineError::not_found(format!("apikey {id}")))?;
    let env = super::destinations::environment(engine, &record.environment_id).await?;
    Ok((record, env))
}

/// The OAuth API keys of one environment, oldest first.
pub async fn list(
    engine: &Engine,
    env_id: &str,
) -> Result<(EnvironmentRecord, Vec<ApiKeyRecord>), EngineError> {
    let env = super::destinations::environment(engine, env_id).await?;
    let lookup = env.id.clone();
    let keys = engine.db(move |s| s.apikeys(&lookup)).await?;
    Ok((env, keys))
}

/// Changes an OAuth API key (partial update). Its keys are fetched afresh at the next token
/// request.
pub async fn update(
    engine: &Engine,
    id: &str,
    changes: ApiKeyChanges,
) -> Result<(ApiKeyRecord, EnvironmentRecord), EngineError> {
    let (mut record, env) = read(engine, id).await?;
    apply(&mut record, changes)?;
    record.updated_at = engine.now_millis();
    let stored = record.clone();
    if !engine.db(move |s| s.update_apikey(&stored)).await? {
        return Err(EngineError::not_found(format!("apikey {id}")));
    }
    engine.oauth.forget_keys(id);
    Ok((record, env))
}

/// Deletes an OAuth API key: no new token is issued for it (tokens already issued live out
/// their five minutes).
pub async fn delete(engine: &Engine, id: &str) -> Result<(), EngineError> {
    read(engine, id).await?;
    let lookup = id.to_owned();
    if !engine.db(move |s| s.delete_apikey(&lookup)).await? {
        return Err(EngineError::not_found(format!("apikey {id}")));
    }
    engine.oauth.forget_keys(id);
    tracing::info!(apikey = %id, "OAuth API key deleted");
    Ok(())
}
