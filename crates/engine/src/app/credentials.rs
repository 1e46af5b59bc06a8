//! Auth credentials (docs/PROTOCOL.md section 5): how the engine authenticates itself to a
//! destination.
//!
//! A credential accepts exactly its strategy's fields ([`Strategy::fields`], spelled as
//! Redox's `availableFields`). The non-secret ones are stored as a JSON object; the secret ones
//! as one JSON object sealed with the master key (context `authcredential:{id}`) and shown
//! only as `has<Field>` booleans ([`public_fields`]). Strategies where the engine signs (SMART
//! Backend, JWT Bearer, the GCP JWT grant, GoogleWIF) take a PKCS#8 PEM or have one generated;
//! the PEM is sealed with the other secrets and its `kid` and `algorithm` are stored in the
//! clear, so what is signed later is fixed when the key is saved.
//!
//! Requests arrive as a JSON object of fields (the API's body, the dashboard's form), because
//! which fields exist depends on the strategy; each is checked against the strategy's catalogue
//! here, once.

use super::{Engine, EngineError};
use serde_json::{Map, Value, json};
use wharf_auth::keys::{KeyError, SigningKey, algorithm_name, parse_algorithm};
use wharf_auth::strategy::{Field, Strategy, has_name};
use wharf_store::engine::{AuthCredentialRecord, CredentialDeletion, EnvironmentRecord};

/// Fields every credential has, beside its strategy's.
pub const COMMON: &[&str] = &["name", "environmentId", "authStrategy"];
/// Fields that must be http(s) URLs.
const URL_FIELDS: &[&str] = &[
    "url",
    "tokenUrl",
    "token_url",
    "service_account_impersonation_url",
];
/// `string[]` fields that may also be given as one space- or comma-separated string.
const LIST_FIELDS: &[&str] = &["scopes", "delegates"];
const CONTENT_TYPES: &[&str] = &["application/x-www-form-urlencoded", "application/json"];

/// A credential as the delivery code uses it, secrets opened. Its `Debug` shows the secrets'
/// names, never their values.
pub struct Credential {
    pub id: String,
    pub strategy: Strategy,
    /// The non-secret fields, including `kid` and `algorithm` for key-holding strategies.
    pub fields: Map<String, Value>,
    /// The secret fields (e.g. `clientSecret`, `secretKey`, `privateKey`), opened.
    pub secrets: Map<String, Value>,
    /// Changes whenever the credential does: a key for caches of tokens obtained with it.
    pub updated_at: i64,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secrets: Map<String, Value> = self
            .secrets
            .keys()
            .map(|k| (k.clone(), Value::String("<redacted>".into())))
            .collect();
        f.debug_struct("Credential")
            .field("id", &self.id)
            .field("strategy", &self.strategy)
            .field("fields", &self.fields)
            .field("secrets", &secrets)
            .field("updated_at", &self.updated_at)
            .finish()
    }
}

impl Credential {
    /// The signing key of a key-holding strategy, with its stored algorithm and kid; `None`
    /// for the other strategies.
    pub fn signing_key(&self) -> Result<Option<SigningKey>, KeyError> {
        if !self.strategy.holds_private_key() {
            return Ok(None);
        }
        let Some(pem) = self.secrets.get("privateKey").and_then(Value::as_str) else {
            return Ok(None);
        };
        let algorithm = self
            .fields
            .get("algorithm")
            .and_then(Value::as_str)
            .map(parse_algorithm)
            .transpose()?;
        let kid = self.fields.get("kid").and_then(Value::as_str);
        let default = parse_algorithm(default_rsa(self.strategy))?;
        SigningKey::from_pem(pem, algorithm, default, kid).map(Some)
    }
}

/// The credential `id` of this engine's organization, secrets opened; `None` if there is none.
pub async fn load_credential(engine: &Engine, id: &str) -> Result<Option<Credential>, EngineError> {
    let id = id.to_owned();
    let Some(record) = engine
        .db(move |s| s.auth_credential(&id))
        .await?
        .filter(|c| c.organization_id == engine.organization.id)
    else {
        return Ok(None);
    };
    opened(engine, &record).map(Some)
}

/// The context that seals a credential's secrets (so a blob copied into another record does
/// not open).
fn secrets_context(id: &str) -> String {
    format!("authcredential:{id}")
}

/// A stored credential with its secrets opened.
pub fn opened(engine: &Engine, record: &AuthCredentialRecord) -> Result<Credential, EngineError> {
    let strategy = record.strategy;
    let fields = object(&record.fields).ok_or_else(|| {
        EngineError::internal(format!(
            "auth credential {} has unreadable fields",
            record.id
        ))
    })?;
    let secrets = match &record.secrets {
        None => Map::new(),
        Some(sealed) => {
            let plain = engine
                .config
                .master_key
                .open(&secrets_context(&record.id), sealed)
                .map_err(|e| {
                    EngineError::internal(format!("auth credential {}: {e}", record.id))
                })?;
            std::str::from_utf8(&plain)
                .ok()
                .and_then(object)
                .ok_or_else(|| {
                    EngineError::internal(format!(
                        "auth credential {} has unreadable secrets",
                        record.id
                    ))
                })?
        }
    };
    Ok(Credential {
        id: record.id.clone(),
        strategy,
        fields,
        secrets,
        updated_at: record.updated_at,
    })
}

fn object(text: &str) -> Option<Map<String, Value>> {
    match serde_json::from_str(text) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    }
}

/// The algorithm an RSA key signs with unless told otherwise: SMART Backend asks for RS384.
fn default_rsa(strategy: Strategy) -> &'static str {
    if strategy == Strategy::SmartBackend {
        "RS384"
    } else {
        "RS256"
    }
}

/// The algorithm of a generated key: ES384 for SMART Backend, RS256 for the others.
fn default_generated(strategy: Strategy) -> &'static str {
    if strategy == Strategy::SmartBackend {
        "ES384"
    } else {
        "RS256"
    }
}

/// Where a credential's JWKS is published.
pub fn jwks_url(engine: &Engine, id: &str) -> String {
    format!(
        "{}/platform/v1/authcredentials/{id}/jwks",
        engine.public_url()
    )
}

/// What may be shown of a credential's strategy fields: the non-secret ones, `has<Field>` for
/// every secret one, and `jwksUrl` for a key-holding strategy. The API and the dashboard both
/// show only this, so neither can show a secret.
pub fn public_fields(
    engine: &Engine,
    record: &AuthCredentialRecord,
    credential: &Credential,
) -> Map<String, Value> {
    let strategy = credential.strategy;
    let mut out = Map::new();
    for (name, value) in &credential.fields {
        if strategy.field(name).is_some_and(|f| !f.secret) {
            out.insert(name.clone(), value.clone());
        }
    }
    for field in strategy.fields().iter().filter(|f| f.secret) {
        out.insert(
            has_name(field.name),
            Value::Bool(credential.secrets.contains_key(field.name)),
        );
    }
    if strategy.holds_private_key() {
        out.insert(
            "jwksUrl".into(),
            Value::String(jwks_url(engine, &record.id)),
        );
    }
    out
}

/// An environment of this organization, if it is one.
async fn environment(
    engine: &Engine,
    id: String,
) -> Result<Option<EnvironmentRecord>, EngineError> {
    Ok(engine
        .db(move |s| s.environment(&id))
        .await?
        .filter(|e| e.organization_id == engine.organization.id))
}

/// A credential of this organization, or `NotFound`.
pub async fn stored(engine: &Engine, id: &str) -> Result<AuthCredentialRecord, EngineError> {
    let lookup = id.to_owned();
    engine
        .db(move |s| s.auth_credential(&lookup))
        .await?
        .filter(|c| c.organization_id == engine.organization.id)
        .ok_or_else(|| EngineError::not_found(format!("auth credential {id}")))
}

/// An environment's credentials, each with its secrets opened.
pub async fn list(
    engine: &Engine,
    env_id: &str,
) -> Result<Vec<(AuthCredentialRecord, Credential)>, EngineError> {
    let env = environment(engine, env_id.to_owned())
        .await?
        .ok_or_else(|| EngineError::not_found(format!("environment {env_id}")))?;
    let records = engine.db(move |s| s.auth_credentials(&env.id)).await?;
    records
        .into_iter()
        .map(|record| {
            let credential = opened(engine, &record)?;
            Ok((record, credential))
        })
        .collect()
}

/// One credential with its secrets opened.
pub async fn read(
    engine: &Engine,
    id: &str,
) -> Result<(AuthCredentialRecord, Credential), EngineError> {
    let record = stored(engine, id).await?;
    let credential = opened(engine, &record)?;
    Ok((record, credential))
}

/// A required, non-empty string among the common fields.
fn text(fields: &Map<String, Value>, key: &str) -> Result<Option<String>, EngineError> {
    match fields.get(key) {
        None => Ok(None),
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.clone())),
        Some(_) => Err(EngineError::bad_request(format!(
            "`{key}` must be a non-empty string"
        ))),
    }
}

fn strategy_keys() -> String {
    Strategy::ALL.map(Strategy::key).join(", ")
}

/// Refuses fields that are neither common nor the strategy's, naming the allowed ones.
fn only_strategy_fields(
    strategy: Strategy,
    fields: &Map<String, Value>,
) -> Result<(), EngineError> {
    let unknown = fields
        .keys()
        .find(|k| !COMMON.contains(&k.as_str()) && strategy.field(k).is_none());
    match unknown {
        Some(unknown) => {
            let allowed: Vec<&str> = COMMON
                .iter()
                .copied()
                .chain(strategy.fields().iter().map(|f| f.name))
                .collect();
            Err(EngineError::bad_request(format!(
                "unknown field `{unknown}` for authStrategy {strategy}; expected one of: {}",
                allowed.join(", ")
            )))
        }
        None => Ok(()),
    }
}

/// Checks one field's value against its type and rules; returns it normalized.
fn checked(field: &Field, value: &Value) -> Result<Value, EngineError> {
    let name = field.name;
    let wrong = |what: &str| EngineError::bad_request(format!("`{name}` must be {what}"));
    let value = match (field.kind, value) {
        ("string", Value::String(s)) if !s.trim().is_empty() => value.clone(),
        ("string", _) => return Err(wrong("a non-empty string")),
        ("integer", Value::Number(n)) if n.as_u64().is_some_and(|n| n > 0) => value.clone(),
        ("integer", _) => return Err(wrong("a positive integer")),
        ("boolean", Value::Bool(_)) => value.clone(),
        // Redox's own examples send booleans as strings (`"noBasic": "true"`).
        ("boolean", Value::String(s)) if s == "true" || s == "false" => Value::Bool(s == "true"),
        ("boolean", _) => return Err(wrong("true or false")),
        ("string[]", Value::String(s)) if LIST_FIELDS.contains(&name) => Value::Array(
            s.split(|c: char| c == ',' || c.is_whitespace())
                .filter(|p| !p.is_empty())
                .map(|p| Value::String(p.to_owned()))
                .collect(),
        ),
        ("string[]", Value::Array(items))
            if items
                .iter()
                .all(|i| i.as_str().is_some_and(|s| !s.trim().is_empty())) =>
        {
            value.clone()
        }
        ("string[]", _) => {
            return Err(wrong(
                "an array of non-empty strings (or one space- or comma-separated string)",
            ));
        }
        (kind, _) => {
            return Err(EngineError::internal(format!(
                "field {name} has an unknown type {kind}"
            )));
        }
    };
    let s = value.as_str().unwrap_or_default();
    if URL_FIELDS.contains(&name) {
        let url = reqwest::Url::parse(s)
            .map_err(|e| EngineError::bad_request(format!("`{name}` {s:?} is not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(wrong("an http:// or https:// URL with a host"));
        }
    }
    match name {
        "grantType" if s != "client_credentials" => {
            return Err(wrong(
                "client_credentials (the only grant this strategy uses)",
            ));
        }
        "contentType" if !CONTENT_TYPES.contains(&s) => {
            return Err(wrong(&format!("one of {}", CONTENT_TYPES.join(", "))));
        }
        "algorithm" => {
            parse_algorithm(s).map_err(|e| EngineError::bad_request(format!("`{name}`: {e}")))?;
        }
        "lifetime"
            if !s
                .strip_suffix('s')
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())) =>
        {
            return Err(wrong("a number of seconds like \"3600s\""));
        }
        _ => {}
    }
    Ok(value)
}

/// A credential's fields and opened secrets, being changed by a request.
struct Draft {
    fields: Map<String, Value>,
    secrets: Map<String, Value>,
}

/// Applies the request's strategy fields to `draft`: a value sets, `null` removes (refused for
/// required fields and the private key). Then settles the signing key and checks that every
/// required field is present.
fn apply(
    strategy: Strategy,
    input: &Map<String, Value>,
    draft: &mut Draft,
    creating: bool,
) -> Result<(), EngineError> {
    for (name, value) in input {
        let Some(field) = strategy.field(name) else {
            continue;
        };
        let target = if field.secret {
            &mut draft.secrets
        } else {
            &mut draft.fields
        };
        if value.is_null() {
            if field.name == "privateKey" && !creating {
                return Err(EngineError::bad_request(
                    "`privateKey` cannot be removed: send a new PEM to replace the key",
                ));
            }
            if field.required && !creating {
                return Err(EngineError::bad_request(format!(
                    "`{name}` cannot be null: {strategy} requires it"
                )));
            }
            target.remove(name);
        } else {
            target.insert(name.clone(), checked(field, value)?);
        }
    }
    if strategy.holds_private_key() {
        settle_key(strategy, input, draft)?;
    }
    let missing: Vec<&str> = strategy
        .fields()
        .iter()
        .filter(|f| f.required)
        .filter(|f| {
            let held = if f.secret {
                &draft.secrets
            } else {
                &draft.fields
            };
            !held.contains_key(f.name)
        })
        .map(|f| f.name)
        .collect();
    if !missing.is_empty() {
        return Err(EngineError::bad_request(format!(
            "{strategy} requires {}",
            missing
                .iter()
                .map(|m| format!("`{m}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(())
}

/// Loads (a new PEM, or the stored one with a changed `algorithm` or `kid`) or generates the
/// signing key, and records its PEM, kid and algorithm in the draft.
fn settle_key(
    strategy: Strategy,
    input: &Map<String, Value>,
    draft: &mut Draft,
) -> Result<(), EngineError> {
    let bad = |e: KeyError| EngineError::bad_request(e.to_string());
    let new_pem = input.get("privateKey").is_some_and(Value::is_string);
    // A new PEM starts from its own defaults unless the request says otherwise; the stored key
    // keeps its algorithm and kid unless the request changes them.
    let setting = |name: &str| -> Option<String> {
        if input.contains_key(name) || !new_pem {
            draft
                .fields
                .get(name)
                .and_then(Value::as_str)
                .map(str::to_owned)
        } else {
            None
        }
    };
    let algorithm = setting("algorithm")
        .as_deref()
        .map(parse_algorithm)
        .transpose()
        .map_err(bad)?;
    let kid = setting("kid");
    let key = match draft.secrets.get("privateKey").and_then(Value::as_str) {
        Some(pem) => {
            let default = parse_algorithm(default_rsa(strategy)).map_err(bad)?;
            SigningKey::from_pem(pem, algorithm, default, kid.as_deref()).map_err(bad)?
        }
        None => {
            let algorithm = match algorithm {
                Some(a) => a,
                None => parse_algorithm(default_generated(strategy)).map_err(bad)?,
            };
            SigningKey::generate(algorithm, kid.as_deref())
                .map_err(|e| EngineError::internal(e.to_string()))?
        }
    };
    draft
        .secrets
        .insert("privateKey".into(), json!(key.private_pem()));
    draft.fields.insert("kid".into(), json!(key.kid()));
    draft
        .fields
        .insert("algorithm".into(), json!(algorithm_name(key.algorithm())));
    Ok(())
}

/// Seals the draft into the record and saves it (inserts it when `creating`).
async fn save(
    engine: &Engine,
    mut record: AuthCredentialRecord,
    draft: Draft,
    creating: bool,
) -> Result<(AuthCredentialRecord, Credential), EngineError> {
    record.fields = Value::Object(draft.fields.clone()).to_string();
    record.secrets = if draft.secrets.is_empty() {
        None
    } else {
        let plain = Value::Object(draft.secrets.clone()).to_string();
        Some(
            engine
                .config
                .master_key
                .seal(&secrets_context(&record.id), plain.as_bytes()),
        )
    };
    let credential = Credential {
        id: record.id.clone(),
        strategy: record.strategy,
        fields: draft.fields,
        secrets: draft.secrets,
        updated_at: record.updated_at,
    };
    let stored = record.clone();
    if creating {
        engine
            .db(move |s| s.insert_auth_credential(&stored))
            .await?;
    } else if !engine
        .db(move |s| s.update_auth_credential(&stored))
        .await?
    {
        // Deleted while this request was being handled.
        return Err(EngineError::not_found(format!(
            "auth credential {}",
            record.id
        )));
    }
    if !creating {
        // Queues being drained present the credential they read: make them read it again.
        engine.signals.changed();
    }
    Ok((record, credential))
}

/// Creates a credential from the request's fields (`name`, `environmentId`, `authStrategy` and
/// that strategy's fields), checked, secrets sealed.
pub async fn create(
    engine: &Engine,
    input: &Map<String, Value>,
) -> Result<(AuthCredentialRecord, Credential), EngineError> {
    let strategy_key = text(input, "authStrategy")?.ok_or_else(|| {
        EngineError::bad_request(format!(
            "`authStrategy` is required: one of {}",
            strategy_keys()
        ))
    })?;
    let strategy = Strategy::from_key(&strategy_key).ok_or_else(|| {
        EngineError::bad_request(format!(
            "unknown authStrategy {strategy_key:?}; expected one of: {}",
            strategy_keys()
        ))
    })?;
    only_strategy_fields(strategy, input)?;
    let name =
        text(input, "name")?.ok_or_else(|| EngineError::bad_request("`name` is required"))?;
    let env_id = text(input, "environmentId")?
        .ok_or_else(|| EngineError::bad_request("`environmentId` is required"))?;
    let env = environment(engine, env_id.clone()).await?.ok_or_else(|| {
        EngineError::bad_request(format!(
            "`environmentId` {env_id} is not an environment of this organization"
        ))
    })?;
    let mut draft = Draft {
        fields: Map::new(),
        secrets: Map::new(),
    };
    apply(strategy, input, &mut draft, true)?;
    let now = engine.now_millis();
    let record = AuthCredentialRecord {
        id: uuid::Uuid::new_v4().to_string(),
        organization_id: engine.organization.id.clone(),
        environment_id: env.id.clone(),
        name,
        strategy,
        fields: String::new(),
        secrets: None,
        created_at: now,
        updated_at: now,
    };
    let (record, credential) = save(engine, record, draft, true).await?;
    tracing::info!(credential = %record.id, strategy = %strategy, environment = %env.flag, "auth credential created");
    Ok((record, credential))
}

/// Changes some fields of a credential (same checks as creating it; a secret left out keeps
/// its value); `authStrategy` and `environmentId` cannot change.
pub async fn update(
    engine: &Engine,
    id: &str,
    input: &Map<String, Value>,
) -> Result<(AuthCredentialRecord, Credential), EngineError> {
    let mut record = stored(engine, id).await?;
    let credential = opened(engine, &record)?;
    let strategy = credential.strategy;
    if let Some(asked) = input.get("authStrategy")
        && asked.as_str() != Some(strategy.key())
    {
        return Err(EngineError::bad_request(format!(
            "`authStrategy` cannot change (this credential is {strategy}); create a new credential with POST /platform/v1/authcredentials instead"
        )));
    }
    if let Some(asked) = input.get("environmentId")
        && asked.as_str() != Some(record.environment_id.as_str())
    {
        return Err(EngineError::bad_request(
            "`environmentId` cannot change; create a new credential in that environment instead",
        ));
    }
    only_strategy_fields(strategy, input)?;
    if let Some(name) = text(input, "name")? {
        record.name = name;
    }
    let mut draft = Draft {
        fields: credential.fields,
        secrets: credential.secrets,
    };
    apply(strategy, input, &mut draft, false)?;
    // Strictly increasing, so caches keyed by it see every change.
    record.updated_at = engine.now_millis().max(record.updated_at + 1);
    let (record, credential) = save(engine, record, draft, false).await?;
    tracing::info!(credential = %record.id, "auth credential updated");
    Ok((record, credential))
}

/// Deletes a credential unless a destination links it (409 naming them).
pub async fn delete(engine: &Engine, id: &str) -> Result<(), EngineError> {
    let record = stored(engine, id).await?;
    let target = record.id.clone();
    match engine
        .db(move |s| s.delete_auth_credential(&target))
        .await?
    {
        CredentialDeletion::Deleted => {
            tracing::info!(credential = %record.id, "auth credential deleted");
            Ok(())
        }
        CredentialDeletion::NotFound => Err(EngineError::not_found(format!(
            "auth credential {}",
            record.id
        ))),
        CredentialDeletion::InUse(destinations) => Err(EngineError::conflict(format!(
            "auth credential {} is used by destination(s) {}; unlink them first with PATCH /platform/v1/destinations/{{id}} {{\"authCredential\": null}}",
            record.id,
            destinations.join(", ")
        ))),
    }
}

/// The public half of a credential's signing key; `NotFound` unless it holds one.
pub async fn signing_key(engine: &Engine, id: &str) -> Result<SigningKey, EngineError> {
    let what = format!("auth credential {id} with a signing key");
    let credential = load_credential(engine, id)
        .await?
        .ok_or_else(|| EngineError::not_found(what.clone()))?;
    credential
        .signing_key()
        .map_err(|e| EngineError::internal(format!("auth credential {id}: {e}")))?
        .ok_or_else(|| EngineError::not_found(what))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_a_secret() {
        let mut secrets = Map::new();
        secrets.insert("clientSecret".into(), json!("hunter2-secret"));
        let credential = Credential {
            id: "c1".into(),
            strategy: Strategy::OAuth2Legged,
            fields: Map::from_iter([("clientId".to_owned(), json!("client"))]),
            secrets,
            updated_at: 1,
        };
        let shown = format!("{credential:?}");
        assert!(shown.contains("clientSecret") && shown.contains("client"));
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn lists_are_normalized_and_types_checked() {
        let scopes = Strategy::SmartBackend.field("scopes").unwrap();
        assert_eq!(
            checked(scopes, &json!(" a,b  c ,")).unwrap(),
            json!(["a", "b", "c"])
        );
        assert!(checked(scopes, &json!(["a", ""])).is_err());
        let lifetime = Strategy::JwtBearer.field("lifetimeSeconds").unwrap();
        assert!(checked(lifetime, &json!(0)).is_err());
        assert!(checked(lifetime, &json!(1.5)).is_err());
        assert_eq!(checked(lifetime, &json!(60)).unwrap(), json!(60));
        let url = Strategy::SmartBackend.field("url").unwrap();
        assert!(checked(url, &json!("https://x.example/token")).is_ok());
        assert!(checked(url, &json!("file:///etc/passwd")).is_err());
    }
}

/// What trying a credential showed: the headers it adds to a request, with secret parts
/// shortened (an access token or a session token is a secret; the scheme, the signed headers
/// and the first characters are enough to see it works).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trial {
    pub headers: Vec<(String, String)>,
}

/// The address the trial request is built for: never sent, only signed or authorized.
const TRIAL_URL: &str = "https://destination.invalid/wharf-credential-test";

/// Tries credential `id` as the delivery path would: a token strategy fetches a new access
/// token from its token endpoint (the cached one is dropped first), a signing strategy signs
/// a request to [`TRIAL_URL`]. Nothing is sent to a destination. `Ok(Err(reason))` when the
/// credential does not work, with the reason (the token endpoint's answer, a bad key).
pub async fn try_out(
    engine: &Engine,
    id: &str,
) -> Result<Result<Trial, super::error::SendError>, EngineError> {
    let (_, credential) = read(engine, id).await?;
    engine.presenter.forget_token(&credential).await;
    let url = reqwest::Url::parse(TRIAL_URL).expect("the trial URL is valid");
    let outgoing = super::present::Outgoing {
        method: "POST",
        url: &url,
        content_type: wharf_protocol::CONTENT_TYPE_JSON,
        token: None,
        body: b"{}",
    };
    let tried = engine
        .presenter
        .headers(engine, &credential, outgoing)
        .await
        .map(|headers| Trial {
            headers: headers
                .into_iter()
                .filter(|(name, _)| !name.eq_ignore_ascii_case("content-type"))
                .map(|(name, value)| {
                    let shown = shorten_header(&name, &value);
                    (name, shown)
                })
                .collect(),
        });
    tracing::info!(credential = %id, works = tried.is_ok(), "auth credential tried");
    Ok(tried)
}

/// A header value as a trial shows it: secrets cut to their first characters.
fn shorten_header(name: &str, value: &str) -> String {
    let cut = |secret: &str| {
        let head: String = secret.chars().take(8).collect();
        format!("{head}… ({} characters)", secret.chars().count())
    };
    if name.eq_ignore_ascii_case("x-amz-security-token") {
        return format!("(the session token, {} characters)", value.chars().count());
    }
    if !name.eq_ignore_ascii_case("authorization") {
        return value.to_owned();
    }
    if let Some(token) = value.strip_prefix("Bearer ") {
        return format!("Bearer {}", cut(token));
    }
    match value.split_once("Signature=") {
        Some((scope, signature)) => format!("{scope}Signature={}", cut(signature)),
        None => cut(value),
    }
}

#[cfg(test)]
mod trial_tests {
    use super::shorten_header;

    #[test]
    fn a_trial_shows_no_whole_secret() {
        assert_eq!(
            shorten_header("authorization", "Bearer abcdefghijklmnop"),
            "Bearer abcdefgh… (16 characters)"
        );
        let signed = shorten_header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKID/20261208/us-east-1/execute-api/aws4_request, SignedHeaders=host, Signature=0123456789abcdef",
        );
        assert!(
            signed.starts_with("AWS4-HMAC-SHA256 Credential=AKID/"),
            "{signed}"
        );
        assert!(
            signed.ends_with("Signature=01234567… (16 characters)"),
            "{signed}"
        );
        assert_eq!(
            shorten_header("X-Amz-Security-Token", "session-secret"),
            "(the session token, 14 characters)"
        );
        assert_eq!(
            shorten_header("x-amz-date", "20261208T000000Z"),
            "20261208T000000Z"
        );
    }
}
