//! Presenting a destination's auth credential on an outgoing request (docs/PROTOCOL.md section 5):
//! the headers each strategy adds, and the access tokens the token-based strategies fetch and
//! cache.
//!
//! * `AwsSigv4` signs the exact request (method, URL, `content-type`, `verification-token`,
//!   body).
//! * `JWT_Bearer` signs a fresh short-lived JWT for every request.
//! * `OAuth_2.0_2-legged`, `SMART_Backend`, `OAuth_2.0_JWT_Bearer_GCP` and `GoogleWIF` fetch an
//!   access token from the credential's token endpoint and send it as `Authorization: Bearer`.
//!   The token is cached per credential until shortly before it expires; a 401 from the
//!   destination drops it ([`Presenter::forget_token`]) so the next request fetches a new one.
//!
//! Token endpoints are URLs users type, so they are reached through the same SSRF-checked,
//! pinned clients as destinations. A failing token endpoint fails the attempt with the reason.

use super::credentials::Credential;
use super::{Engine, SendError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wharf_auth::client::{self as oauth_client, TokenCache, TokenRequest};
use wharf_auth::clock::Clock;
use wharf_auth::keys::SigningKey;
use wharf_auth::sigv4;
use wharf_auth::strategy::Strategy;

/// How long a token endpoint may take.
const TOKEN_TIMEOUT: Duration = Duration::from_secs(30);
/// How much of a failing token endpoint's answer is quoted in the attempt's error.
const TOKEN_ERROR_EXCERPT: usize = 300;
/// The most of a token endpoint's answer that is read: an access token answer is a few KiB.
const MAX_TOKEN_ANSWER_BYTES: usize = 1 << 20;

/// An outgoing request, as the destination will receive it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outgoing<'a> {
    pub method: &'a str,
    pub url: &'a reqwest::Url,
    pub content_type: &'a str,
    /// The verification token, sent as the `verification-token` header (and so signed).
    pub token: Option<&'a str>,
    pub body: &'a [u8],
}

/// What one credential keeps between requests.
struct Runtime {
    /// The credential's `updated_at` when this was built: a changed credential starts afresh.
    updated_at: i64,
    key: Option<SigningKey>,
    tokens: TokenCache,
}

/// Access tokens and parsed keys per credential.
#[derive(Default)]
pub(crate) struct Presenter {
    runtimes: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Runtime>>>>,
}

impl Presenter {
    fn runtime(&self, credential: &Credential) -> Arc<tokio::sync::Mutex<Runtime>> {
        let mut all = self.runtimes.lock().unwrap_or_else(|p| p.into_inner());
        all.entry(credential.id.clone())
            .or_insert_with(|| {
                Arc::new(tokio::sync::Mutex::new(Runtime {
                    updated_at: i64::MIN,
                    key: None,
                    tokens: TokenCache::default(),
                }))
            })
            .clone()
    }

    /// Drops the cached access token of a credential (after the destination answered 401).
    pub async fn forget_token(&self, credential: &Credential) {
        self.runtime(credential).lock().await.tokens.forget();
    }

    /// The headers `credential` adds to `request`.
    pub async fn headers(
        &self,
        engine: &Engine,
        credential: &Credential,
        request: Outgoing<'_>,
    ) -> Result<Vec<(String, String)>, SendError> {
        let clock = engine.clock.as_ref();
        let runtime = self.runtime(credential);
        // Held across a token fetch on purpose: concurrent requests for one credential wait
        // for one fetch instead of each hitting the token endpoint.
        let mut runtime = runtime.lock().await;
        if runtime.updated_at != credential.updated_at {
            runtime.key = credential.signing_key().map_err(SendError::Key)?;
            runtime.tokens.forget();
            runtime.updated_at = credential.updated_at;
        }
        let field = |name: &str| credential.fields.get(name).and_then(|v| v.as_str());
        let secret = |name: &str| credential.secrets.get(name).and_then(|v| v.as_str());
        let key = || runtime.key.clone().ok_or(SendError::NoKey);
        let bearer = |token: &str| vec![("authorization".to_string(), format!("Bearer {token}"))];
        match credential.strategy {
            Strategy::AwsSigv4 => {
                let credentials = sigv4::SigningCredentials {
                    access_key: field("accessKey").unwrap_or_default().to_string(),
                    secret_key: secret("secretKey").unwrap_or_default().to_string(),
                    session_token: secret("sessionToken").map(str::to_string),
                    region: field("awsRegion").unwrap_or_default().to_string(),
                    service: field("serviceName").unwrap_or_default().to_string(),
                };
                let mut headers =
                    vec![("content-type".to_string(), request.content_type.to_string())];
                if let Some(token) = request.token {
                    headers.push((
                        wharf_protocol::VERIFICATION_TOKEN_HEADER.to_string(),
                        token.to_string(),
                    ));
                }
                let signed = sigv4::sign(
                    request.method,
                    request.url.as_str(),
                    &headers,
                    request.body,
                    &credentials,
                    clock.now(),
                )?;
                Ok(signed)
            }
            Strategy::JwtBearer => {
                let token = oauth_client::jwt_bearer_token(&credential.fields, &key()?, clock)?;
                Ok(bearer(&token))
            }
            Strategy::OAuth2Legged
            | Strategy::SmartBackend
            | Strategy::OAuthJwtBearerGcp
            | Strategy::GoogleWif => {
                if let Some(token) = runtime.tokens.get(clock) {
                    return Ok(bearer(token));
                }
                let fetched = fetch_token(engine, credential, key().ok(), clock).await?;
                runtime.tokens.put(&fetched, clock);
                Ok(bearer(&fetched.token))
            }
        }
    }
}

/// Whether a 401 from the destination may be cured by fetching a new access token.
pub(crate) fn refetches_on_401(strategy: Strategy) -> bool {
    matches!(
        strategy,
        Strategy::OAuth2Legged
            | Strategy::SmartBackend
            | Strategy::OAuthJwtBearerGcp
            | Strategy::GoogleWif
    )
}

async fn fetch_token(
    engine: &Engine,
    credential: &Credential,
    key: Option<SigningKey>,
    clock: &dyn Clock,
) -> Result<oauth_client::FetchedToken, SendError> {
    let fields = &credential.fields;
    let need_key = || key.clone().ok_or(SendError::NoKey);
    match credential.strategy {
        Strategy::OAuth2Legged => {
            let request = oauth_client::oauth_2_legged_request(fields, &credential.secrets)?;
            let body = post(engine, &request).await?;
            let name = |f: &str, default: &'static str| {
                fields
                    .get(f)
                    .and_then(|v| v.as_str())
                    .filter(|s| !s.is_empty())
                    .unwrap_or(default)
                    .to_string()
            };
            let default_seconds = fields
                .get("defaultExpirationSeconds")
                .and_then(|v| v.as_u64())
                .unwrap_or(3600);
            oauth_client::read_token_response(
                &body,
                &name("accessTokenName", "access_token"),
                &name("expiresFieldName", "expires_in"),
                default_seconds,
            )
            .map_err(|source| SendError::TokenAnswer {
                endpoint: "token endpoint",
                url: request.url.clone(),
                source,
            })
        }
        Strategy::SmartBackend => {
            let request = oauth_client::smart_request(fields, &need_key()?, clock)?;
            read_standard(&request, &post(engine, &request).await?)
        }
        Strategy::OAuthJwtBearerGcp => {
            let request = oauth_client::gcp_request(fields, &need_key()?, clock)?;
            read_standard(&request, &post(engine, &request).await?)
        }
        Strategy::GoogleWif => {
            let issuer = engine.public_url();
            let request = oauth_client::wif_exchange_request(fields, &need_key()?, &issuer, clock)?;
            let sts = read_standard(&request, &post(engine, &request).await?)?;
            match oauth_client::wif_impersonation_request(fields, &sts.token) {
                None => Ok(sts),
                Some(impersonate) => {
                    let body = post(engine, &impersonate).await?;
                    oauth_client::read_impersonation_response(&body, clock).map_err(|source| {
                        SendError::TokenAnswer {
                            endpoint: "impersonation endpoint",
                            url: impersonate.url.clone(),
                            source,
                        }
                    })
                }
            }
        }
        Strategy::AwsSigv4 | Strategy::JwtBearer => {
            Err(SendError::NoAccessToken(credential.strategy.key()))
        }
    }
}

fn read_standard(
    request: &TokenRequest,
    body: &[u8],
) -> Result<oauth_client::FetchedToken, SendError> {
    oauth_client::read_token_response(body, "access_token", "expires_in", 3600).map_err(|source| {
        SendError::TokenAnswer {
            endpoint: "token endpoint",
            url: request.url.clone(),
            source,
        }
    })
}

/// POSTs a token request through an SSRF-checked client; a non-2xx answer is an error that
/// quotes the beginning of the endpoint's answer (an OAuth error body says what is wrong).
async fn post(engine: &Engine, request: &TokenRequest) -> Result<Vec<u8>, SendError> {
    let url = reqwest::Url::parse(&request.url).map_err(|e| SendError::NotUrl {
        what: "the token endpoint",
        url: request.url.clone(),
        reason: e.to_string(),
    })?;
    let client =
        engine
            .client_for(&url)
            .await
            .map_err(|source| SendError::TokenEndpointRefused {
                url: url.to_string(),
                source,
            })?;
    let mut builder = client
        .post(url.clone())
        .timeout(TOKEN_TIMEOUT)
        .header(reqwest::header::CONTENT_TYPE, request.content_type)
        .header(reqwest::header::ACCEPT, "application/json");
    for (name, value) in &request.headers {
        builder = builder.header(name, value);
    }
    let response = builder
        .body(request.body.clone())
        .send()
        .await
        .map_err(|e| SendError::TokenEndpointFailed {
            url: url.to_string(),
            reason: wharf_delivery::client::describe_transport_error(&e),
        })?;
    let status = response.status();
    let body = wharf_delivery::client::read_limited(response, MAX_TOKEN_ANSWER_BYTES)
        .await
        .map_err(|e| SendError::TokenEndpointFailed {
            url: url.to_string(),
            reason: format!("its answer could not be read: {e}"),
        })?;
    if !status.is_success() {
        let excerpt =
            String::from_utf8_lossy(&body[..body.len().min(TOKEN_ERROR_EXCERPT)]).into_owned();
        return Err(SendError::TokenEndpointStatus {
            url: url.to_string(),
            status: status.as_u16(),
            excerpt,
        });
    }
    Ok(body)
}

/// The credential linked to a destination record, if any.
pub(crate) async fn linked_credential(
    engine: &Engine,
    record: &wharf_store::engine::DestinationRecord,
) -> Result<Option<Credential>, SendError> {
    let Some(id) = &record.auth_credential else {
        return Ok(None);
    };
    super::credentials::load_credential(engine, id)
        .await
        .map_err(|_| SendError::CredentialUnreadable(id.clone()))?
        .map(Some)
        .ok_or_else(|| SendError::CredentialGone(id.clone()))
}

/// POSTs `body` to a destination with its verification token and, if linked, its auth
/// credential. When a token-based credential's request is answered 401, the cached access
/// token is dropped, a new one fetched, and the request sent once more; the second answer
/// stands.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn push(
    engine: &Engine,
    client: &reqwest::Client,
    url: &reqwest::Url,
    token: &str,
    credential: Option<&Credential>,
    content_type: &str,
    body: Vec<u8>,
    timeout: Duration,
    keep: usize,
) -> wharf_delivery::push::PushOutcome {
    push_marked(
        engine,
        client,
        url,
        token,
        credential,
        &[],
        content_type,
        body,
        timeout,
        keep,
    )
    .await
}

/// [`push`] with `marks` added to the request's headers as they are, after the credential's
/// (the delivery worker's `wharf-resend` on a resent log). Not signed by a signing strategy:
/// a mark says how Wharf sends, not what.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn push_marked(
    engine: &Engine,
    client: &reqwest::Client,
    url: &reqwest::Url,
    token: &str,
    credential: Option<&Credential>,
    marks: &[(String, String)],
    content_type: &str,
    body: Vec<u8>,
    timeout: Duration,
    keep: usize,
) -> wharf_delivery::push::PushOutcome {
    use wharf_delivery::push::{Credentials, push};
    let Some(credential) = credential else {
        return push(
            client,
            url,
            Credentials {
                token: Some(token),
                headers: marks,
            },
            content_type,
            body,
            timeout,
            keep,
        )
        .await;
    };
    let mut retried = false;
    loop {
        let outgoing = Outgoing {
            method: "POST",
            url,
            content_type,
            token: Some(token),
            body: &body,
        };
        let mut headers = match engine.presenter.headers(engine, credential, outgoing).await {
            Ok(headers) => headers,
            Err(reason) => return failed(&reason),
        };
        headers.extend(marks.iter().cloned());
        let credentials = Credentials {
            token: Some(token),
            headers: &headers,
        };
        let outcome = push(
            client,
            url,
            credentials,
            content_type,
            body.clone(),
            timeout,
            keep,
        )
        .await;
        if outcome.status == Some(401) && !retried && refetches_on_401(credential.strategy) {
            tracing::info!(credential = %credential.id, "destination answered 401: fetching a new access token and retrying once");
            engine.presenter.forget_token(credential).await;
            retried = true;
            continue;
        }
        return outcome;
    }
}

/// Verify and Save with the verification token and, if linked, the auth credential (with
/// the same one-retry rule on 401 as [`push`]).
pub(crate) async fn verify(
    engine: &Engine,
    client: &reqwest::Client,
    url: &reqwest::Url,
    token: &str,
    method: wharf_delivery::Method,
    credential: Option<&Credential>,
) -> Result<(), SendError> {
    use wharf_delivery::verify::{Challenge, VerifyFailure, send};
    let Some(credential) = credential else {
        return wharf_delivery::verify(client, url, token, method)
            .await
            .map_err(SendError::Verify);
    };
    let mut retried = false;
    loop {
        let challenge = Challenge::new(url, token, method);
        let outgoing = Outgoing {
            method: challenge.method_name(),
            url: &challenge.url,
            content_type: wharf_protocol::CONTENT_TYPE_JSON,
            // The challenge carries the token as a header too (besides its body or query), so
            // a signing strategy (SigV4) signs it like on every other request.
            token: Some(challenge.token()),
            body: &challenge.body,
        };
        let headers = engine
            .presenter
            .headers(engine, credential, outgoing)
            .await?;
        match send(client, &challenge, &headers).await {
            Err(VerifyFailure::Status(401, _))
                if !retried && refetches_on_401(credential.strategy) =>
            {
                engine.presenter.forget_token(credential).await;
                retried = true;
            }
            other => return other.map_err(SendError::Verify),
        }
    }
}

/// An attempt that never reached the destination, with the reason (kept on the attempt as
/// text, as the destination's own errors are).
pub fn failed(reason: &SendError) -> wharf_delivery::push::PushOutcome {
    wharf_delivery::push::PushOutcome {
        status: None,
        error: Some(reason.to_string()),
        response: Vec::new(),
        truncated: false,
        duration: std::time::Duration::ZERO,
    }
}
