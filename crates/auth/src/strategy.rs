//! The six auth strategy keys and the fields each one takes (docs/PROTOCOL.md section 5).
//!
//! The engine's `GET /platform/v1/authcredentials/strategies` lists this catalogue, its
//! create and update routes accept exactly these fields, and it seals every field marked
//! `secret` with the master key (read back only as `has<Field>`).

use serde::Serialize;

/// An auth strategy, by the key Redox uses for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Strategy {
    #[serde(rename = "AwsSigv4")]
    AwsSigv4,
    #[serde(rename = "GoogleWIF")]
    GoogleWif,
    #[serde(rename = "OAuth_2.0_2-legged")]
    OAuth2Legged,
    #[serde(rename = "OAuth_2.0_JWT_Bearer_GCP")]
    OAuthJwtBearerGcp,
    #[serde(rename = "SMART_Backend")]
    SmartBackend,
    #[serde(rename = "JWT_Bearer")]
    JwtBearer,
}

/// One field a strategy takes.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Field {
    pub name: &'static str,
    /// Must be present when the credential is created.
    pub required: bool,
    /// Sealed at rest and never returned; reads show `has<Name>` instead.
    pub secret: bool,
    /// `string`, `integer`, `boolean` or `string[]`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub description: &'static str,
}

const fn field(
    name: &'static str,
    required: bool,
    secret: bool,
    kind: &'static str,
    description: &'static str,
) -> Field {
    Field {
        name,
        required,
        secret,
        kind,
        description,
    }
}

/// Fields shared by the strategies where the engine holds a private key.
const PRIVATE_KEY: Field = field(
    "privateKey",
    false,
    true,
    "string",
    "PKCS#8 PEM private key (RSA or EC P-256/P-384); omit to have the engine generate one",
);
const KEY_ID: Field = field(
    "kid",
    false,
    false,
    "string",
    "key id placed in the JWT header and the published JWKS; generated when omitted",
);
const ALGORITHM: Field = field(
    "algorithm",
    false,
    false,
    "string",
    "RS256, RS384, ES256 or ES384; defaults to the strategy's usual algorithm for the key",
);
const SCOPES: Field = field(
    "scopes",
    false,
    false,
    "string[]",
    "scopes requested with the token",
);

const AWS_SIGV4: &[Field] = &[
    field("accessKey", true, false, "string", "AWS access key id"),
    field("secretKey", true, true, "string", "AWS secret access key"),
    field(
        "serviceName",
        true,
        false,
        "string",
        "service in the credential scope, e.g. execute-api",
    ),
    field(
        "awsRegion",
        true,
        false,
        "string",
        "region in the credential scope, e.g. us-east-1",
    ),
    field(
        "sessionToken",
        false,
        true,
        "string",
        "temporary session token, sent as X-Amz-Security-Token",
    ),
];

const OAUTH_2_LEGGED: &[Field] = &[
    field(
        "grantType",
        false,
        false,
        "string",
        "only client_credentials (the default)",
    ),
    field("url", true, false, "string", "token endpoint URL"),
    field("clientId", true, false, "string", "client id"),
    field("clientSecret", true, true, "string", "client secret"),
    SCOPES,
    field(
        "audience",
        false,
        false,
        "string",
        "audience parameter sent to the token endpoint",
    ),
    field(
        "resource",
        false,
        false,
        "string",
        "resource parameter (RFC 8707) sent to the token endpoint",
    ),
    field(
        "contentType",
        false,
        false,
        "string",
        "application/x-www-form-urlencoded (default) or application/json",
    ),
    field(
        "noBasic",
        false,
        false,
        "boolean",
        "send the client id and secret in the body instead of HTTP Basic",
    ),
    field(
        "grantTypeName",
        false,
        false,
        "string",
        "name of the grant type parameter (default grant_type)",
    ),
    field(
        "clientIdName",
        false,
        false,
        "string",
        "name of the client id parameter (default client_id)",
    ),
    field(
        "clientSecretName",
        false,
        false,
        "string",
        "name of the client secret parameter (default client_secret)",
    ),
    field(
        "accessTokenName",
        false,
        false,
        "string",
        "name of the token in the response (default access_token)",
    ),
    field(
        "expiresFieldName",
        false,
        false,
        "string",
        "name of the lifetime in seconds in the response (default expires_in)",
    ),
    field(
        "customFieldName",
        false,
        false,
        "string",
        "name of one extra parameter sent to the token endpoint",
    ),
    field(
        "customFieldValue",
        false,
        true,
        "string",
        "value of that extra parameter",
    ),
    field(
        "defaultExpirationSeconds",
        false,
        false,
        "integer",
        "token lifetime assumed when the response gives none (default 3600)",
    ),
    // Redox lists these four among the strategy's availableFields; Wharf accepts and keeps
    // them so Redox's own bodies are taken as they are, but its client_credentials grant sends
    // none of them (no password grant, no refresh tokens: a new token is fetched instead).
    field(
        "username",
        false,
        false,
        "string",
        "accepted as Redox takes it; not sent (client_credentials only)",
    ),
    field(
        "password",
        false,
        true,
        "string",
        "accepted as Redox takes it, sealed; not sent (client_credentials only)",
    ),
    field(
        "refreshTokenName",
        false,
        false,
        "string",
        "accepted as Redox takes it; not used (an expired token is fetched anew)",
    ),
    field(
        "refreshGrantType",
        false,
        false,
        "string",
        "accepted as Redox takes it; not used (an expired token is fetched anew)",
    ),
];

const SMART_BACKEND: &[Field] = &[
    field(
        "url",
        true,
        false,
        "string",
        "token endpoint URL; also the client assertion's aud",
    ),
    field(
        "clientId",
        true,
        false,
        "string",
        "client id: the assertion's iss and sub",
    ),
    PRIVATE_KEY,
    KEY_ID,
    ALGORITHM,
    SCOPES,
];

const JWT_BEARER: &[Field] = &[
    field("issuer", true, false, "string", "iss of every JWT"),
    field("audience", true, false, "string", "aud of every JWT"),
    field(
        "subject",
        false,
        false,
        "string",
        "sub of every JWT (default: the issuer)",
    ),
    field(
        "lifetimeSeconds",
        false,
        false,
        "integer",
        "lifetime of each JWT (default 300)",
    ),
    PRIVATE_KEY,
    KEY_ID,
    ALGORITHM,
];

const OAUTH_JWT_BEARER_GCP: &[Field] = &[
    field(
        "serviceAccountEmail",
        true,
        false,
        "string",
        "the assertion's iss (the service account)",
    ),
    field(
        "tokenUrl",
        false,
        false,
        "string",
        "token endpoint URL (default https://oauth2.googleapis.com/token)",
    ),
    PRIVATE_KEY,
    KEY_ID,
    ALGORITHM,
    SCOPES,
];

const GOOGLE_WIF: &[Field] = &[
    field(
        "audience",
        true,
        false,
        "string",
        "the workload identity pool provider (aud of the subject token, audience of the exchange)",
    ),
    field(
        "token_url",
        false,
        false,
        "string",
        "security token service URL (default https://sts.googleapis.com/v1/token)",
    ),
    field(
        "sts_scope",
        false,
        false,
        "string",
        "scope requested from the token service (default https://www.googleapis.com/auth/cloud-platform)",
    ),
    field(
        "scope",
        false,
        false,
        "string",
        "scope requested when impersonating",
    ),
    field(
        "service_account_impersonation_url",
        false,
        false,
        "string",
        "generateAccessToken or generateIdToken URL of a service account to impersonate",
    ),
    field(
        "delegates",
        false,
        false,
        "string[]",
        "delegation chain for impersonation",
    ),
    field(
        "lifetime",
        false,
        false,
        "string",
        "impersonated token lifetime, e.g. 3600s",
    ),
    field(
        "idTokenAudience",
        false,
        false,
        "string",
        "with a generateIdToken impersonation URL: the ID token's audience (default: audience)",
    ),
    field(
        "subjectIssuer",
        false,
        false,
        "string",
        "iss of the subject token the engine signs (default: the engine's public URL)",
    ),
    PRIVATE_KEY,
    KEY_ID,
    ALGORITHM,
];

impl Strategy {
    /// Every strategy, in the order the API lists them.
    pub const ALL: [Strategy; 6] = [
        Strategy::AwsSigv4,
        Strategy::GoogleWif,
        Strategy::OAuth2Legged,
        Strategy::OAuthJwtBearerGcp,
        Strategy::SmartBackend,
        Strategy::JwtBearer,
    ];

    /// The key Redox uses for this strategy.
    pub fn key(self) -> &'static str {
        match self {
            Strategy::AwsSigv4 => "AwsSigv4",
            Strategy::GoogleWif => "GoogleWIF",
            Strategy::OAuth2Legged => "OAuth_2.0_2-legged",
            Strategy::OAuthJwtBearerGcp => "OAuth_2.0_JWT_Bearer_GCP",
            Strategy::SmartBackend => "SMART_Backend",
            Strategy::JwtBearer => "JWT_Bearer",
        }
    }

    /// The strategy with this key, if any.
    pub fn from_key(key: &str) -> Option<Strategy> {
        Strategy::ALL.into_iter().find(|s| s.key() == key)
    }

    /// The fields this strategy takes.
    pub fn fields(self) -> &'static [Field] {
        match self {
            Strategy::AwsSigv4 => AWS_SIGV4,
            Strategy::GoogleWif => GOOGLE_WIF,
            Strategy::OAuth2Legged => OAUTH_2_LEGGED,
            Strategy::OAuthJwtBearerGcp => OAUTH_JWT_BEARER_GCP,
            Strategy::SmartBackend => SMART_BACKEND,
            Strategy::JwtBearer => JWT_BEARER,
        }
    }

    /// The field called `name`, if this strategy takes it.
    pub fn field(self, name: &str) -> Option<&'static Field> {
        self.fields().iter().find(|f| f.name == name)
    }

    /// Whether the engine holds a private key for this strategy and publishes its JWKS.
    pub fn holds_private_key(self) -> bool {
        self.field("privateKey").is_some()
    }
}

impl std::fmt::Display for Strategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.key())
    }
}

/// The read-back name of a secret field: `secretKey` -> `hasSecretKey`.
pub fn has_name(field: &str) -> String {
    let mut chars = field.chars();
    match chars.next() {
        Some(first) => format!("has{}{}", first.to_ascii_uppercase(), chars.as_str()),
        None => "has".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_serialize_as_redox_spells_them() {
        for s in Strategy::ALL {
            assert_eq!(Strategy::from_key(s.key()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.key());
        }
        assert_eq!(Strategy::from_key("Basic"), None);
    }

    #[test]
    fn secrets_are_marked_and_named_for_read_back() {
        assert!(Strategy::AwsSigv4.field("secretKey").unwrap().secret);
        assert!(!Strategy::AwsSigv4.field("accessKey").unwrap().secret);
        assert!(Strategy::OAuth2Legged.field("clientSecret").unwrap().secret);
        assert_eq!(has_name("secretKey"), "hasSecretKey");
        assert!(Strategy::SmartBackend.holds_private_key());
        assert!(!Strategy::OAuth2Legged.holds_private_key());
    }
}
