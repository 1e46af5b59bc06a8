//! A client of a running engine's Platform API, as an operator (or `wharf up`) calls it: a
//! base URL and a management key, Redox's envelope on the way in and out, and the answer's
//! error message on failure.

use serde_json::{Value, json};

pub struct EngineApi {
    base: String,
    key: String,
    client: reqwest::Client,
}

impl EngineApi {
    /// The engine at `base` (e.g. `http://127.0.0.1:8080`), with management key `key`.
    pub fn new(base: &str, key: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            key: key.to_owned(),
            client: reqwest::Client::new(),
        }
    }

    /// Calls `path` (e.g. `/platform/v1/organizations`); answers the `payload` of a success,
    /// or what the engine said went wrong.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key);
        if let Some(body) = body {
            request = request.json(&json!({"meta": {"version": "1.0.0"}, "payload": body}));
        }
        let response = request.send().await.map_err(|e| {
            format!(
                "the engine API at {} did not answer: {}",
                self.base,
                wharf_delivery::client::describe_transport_error(&e)
            )
        })?;
        let status = response.status();
        let body: Value = response
            .json()
            .await
            .map_err(|e| format!("the engine API answered garbage: {e}"))?;
        if status.is_success() {
            Ok(body["payload"].clone())
        } else {
            let message = body["errors"][0]["message"]
                .as_str()
                .map_or_else(|| body.to_string(), str::to_owned);
            Err(format!("the engine API answered {status}: {message}"))
        }
    }

    pub async fn get(&self, path: &str) -> Result<Value, String> {
        self.call(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Result<Value, String> {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Result<Value, String> {
        self.call(reqwest::Method::PATCH, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Result<Value, String> {
        self.call(reqwest::Method::DELETE, path, None).await
    }

    /// The id of the organization's environment with `flag` (`Development`, `Staging`,
    /// `Production`).
    pub async fn environment(&self, flag: &str) -> Result<String, String> {
        let orgs = self.get("/platform/v1/organizations").await?;
        let org = orgs["organizations"][0]["id"]
            .as_str()
            .ok_or("the engine has no organization")?
            .to_owned();
        let envs = self
            .get(&format!("/platform/v1/organizations/{org}/environments"))
            .await?;
        envs["environments"]
            .as_array()
            .and_then(|e| e.iter().find(|e| e["environmentFlag"] == flag))
            .and_then(|e| e["id"].as_str())
            .map(str::to_owned)
            .ok_or_else(|| {
                format!(
                    "the organization has no {flag} environment: use Development, Staging or Production"
                )
            })
    }
}
