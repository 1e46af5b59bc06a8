//! A client of the engine's management API (the Platform API), for the commands that drive an
//! engine over HTTP as a user's script would: `wharf up` (its local destination) and the
//! benchmarks (`wharf bench engine`, `wharf bench soak`). It calls the same routes as anyone
//! else and imports nothing from the server side of this crate.

use serde_json::{Value, json};

/// Why a management API call gave no usable answer: which call, what came back, and what to
/// check.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No HTTP answer at all.
    #[error(
        "the engine API at {base} did not answer: {reason}; check that the engine is running there"
    )]
    Unreachable { base: String, reason: String },
    /// An answer that is not the JSON envelope every route answers with.
    #[error("the engine API answered {path} with something other than JSON: {reason}")]
    NotJson { path: String, reason: String },
    /// A refusal, with the first of the envelope's `errors` (or the whole body).
    #[error("the engine API answered {status} to {path}: {message}")]
    Refused {
        path: String,
        status: u16,
        message: String,
    },
    /// A 2xx answer without what the caller looked for.
    #[error("the engine API's answer to {path} has no {what}")]
    Missing { path: String, what: &'static str },
}

/// The management API of the engine at `base` (`http://host:port`), with a management key.
#[derive(Clone)]
pub struct ManagementClient {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl ManagementClient {
    pub fn new(http: reqwest::Client, base: impl Into<String>, key: impl Into<String>) -> Self {
        ManagementClient {
            http,
            base: base.into(),
            key: key.into(),
        }
    }

    /// One call to `path` (under `/platform/v1`); the envelope's `payload` on 2xx.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        payload: Option<Value>,
    ) -> Result<Value, ApiError> {
        self.call_at(method, &format!("/platform/v1{path}"), payload)
            .await
    }

    /// `GET` of a whole path (e.g. `/platform/v2/environments/{id}/alerts`).
    pub async fn get(&self, path: &str) -> Result<Value, ApiError> {
        self.call_at(reqwest::Method::GET, path, None).await
    }

    /// `POST` of `payload` to a whole path.
    pub async fn post(&self, path: &str, payload: Value) -> Result<Value, ApiError> {
        self.call_at(reqwest::Method::POST, path, Some(payload))
            .await
    }

    /// `PATCH` of `payload` to a whole path.
    pub async fn patch(&self, path: &str, payload: Value) -> Result<Value, ApiError> {
        self.call_at(reqwest::Method::PATCH, path, Some(payload))
            .await
    }

    /// `DELETE` of a whole path.
    pub async fn delete(&self, path: &str) -> Result<Value, ApiError> {
        self.call_at(reqwest::Method::DELETE, path, None).await
    }

    /// One call to a whole path; the envelope's `payload` on 2xx.
    async fn call_at(
        &self,
        method: reqwest::Method,
        path: &str,
        payload: Option<Value>,
    ) -> Result<Value, ApiError> {
        let path = path.to_owned();
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key);
        if let Some(payload) = payload {
            request = request.json(&json!({"meta": {"version": "1.0.0"}, "payload": payload}));
        }
        let response = request.send().await.map_err(|e| ApiError::Unreachable {
            base: self.base.clone(),
            reason: wharf_protocol::error_chain(&e),
        })?;
        let status = response.status();
        let body: Value = response.json().await.map_err(|e| ApiError::NotJson {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        if status.is_success() {
            Ok(body["payload"].clone())
        } else {
            let message = match body["errors"][0]["message"].as_str() {
                Some(message) => message.to_owned(),
                None => body.to_string(),
            };
            Err(ApiError::Refused {
                path,
                status: status.as_u16(),
                message,
            })
        }
    }

    /// The id of the (first) organization's Development environment.
    pub async fn development(&self) -> Result<String, ApiError> {
        self.environment("Development").await
    }

    /// The id of the (first) organization's environment with `flag` (`Development`,
    /// `Staging`, `Production`).
    pub async fn environment(&self, flag: &str) -> Result<String, ApiError> {
        let orgs = self
            .call(reqwest::Method::GET, "/organizations", None)
            .await?;
        let org = text(
            &orgs["organizations"][0]["id"],
            "/organizations",
            "organization",
        )?;
        let path = format!("/organizations/{org}/environments");
        let envs = self.call(reqwest::Method::GET, &path, None).await?;
        let found = envs["environments"]
            .as_array()
            .and_then(|e| e.iter().find(|e| e["environmentFlag"] == flag))
            .map(|e| &e["id"])
            .unwrap_or(&Value::Null);
        text(
            found,
            &path,
            "environment of that flag (Development, Staging or Production)",
        )
    }

    /// The destinations of environment `env`, as the API shows them.
    pub async fn destinations(&self, env: &str) -> Result<Vec<Value>, ApiError> {
        let list = self
            .call(
                reqwest::Method::GET,
                &format!("/environments/{env}/destinations"),
                None,
            )
            .await?;
        Ok(list["destinations"].as_array().cloned().unwrap_or_default())
    }

    /// Creates a destination in environment `env`; returns it as the API shows it.
    pub async fn create_destination(
        &self,
        env: &str,
        name: &str,
        endpoint: &str,
        token: &str,
    ) -> Result<Value, ApiError> {
        let created = self
            .call(
                reqwest::Method::POST,
                &format!("/environments/{env}/destinations"),
                Some(json!({"name": name, "endpoint": endpoint, "verificationToken": token})),
            )
            .await?;
        Ok(created["destination"].clone())
    }

    /// Verify and Save of destination `id`, with `change` (a new endpoint or token, or `{}`).
    pub async fn verify(&self, id: &str, change: Value) -> Result<(), ApiError> {
        self.call(
            reqwest::Method::POST,
            &format!("/destinations/{id}/verify"),
            Some(change),
        )
        .await
        .map(drop)
    }

    /// Creates a destination in environment `env` and verifies it; returns its id.
    pub async fn verified_destination(
        &self,
        env: &str,
        name: &str,
        endpoint: &str,
        token: &str,
    ) -> Result<String, ApiError> {
        let created = self.create_destination(env, name, endpoint, token).await?;
        let id = text(&created["id"], "/destinations", "destination id")?;
        self.verify(&id, json!({})).await?;
        Ok(id)
    }
}

/// `value` as a string, or the error saying the answer to `path` lacks `what`.
fn text(value: &Value, path: &str, what: &'static str) -> Result<String, ApiError> {
    value
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| ApiError::Missing {
            path: format!("/platform/v1{path}"),
            what,
        })
}
