//! The engine side of SigV4: the headers to add to a request so an AWS-style destination
//! accepts it.
//!
//! Signing is delegated to `aws-sigv4` (docs/ARCHITECTURE.md, "Decisions"): the AWS SDK's own
//! signer is the reference every AWS-compatible verifier is tested against. This module only
//! chooses its settings and guards its inputs.

use std::borrow::Cow;
use std::fmt;
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings, sign as aws_sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;

/// The credential fields of the `AwsSigv4` strategy (docs/PROTOCOL.md section 5).
#[derive(Clone, PartialEq, Eq)]
pub struct SigningCredentials {
    /// `accessKey`.
    pub access_key: String,
    /// `secretKey`; never printed.
    pub secret_key: String,
    /// `sessionToken`, for temporary credentials; sent and signed as `x-amz-security-token`.
    pub session_token: Option<String>,
    /// `awsRegion`, e.g. `us-east-1`.
    pub region: String,
    /// `serviceName`, e.g. `execute-api`.
    pub service: String,
}

impl fmt::Debug for SigningCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningCredentials")
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .field("region", &self.region)
            .field("service", &self.service)
            .finish()
    }
}

/// Why a request could not be signed. Messages name the field or header to fix and never
/// contain a secret, a token or the URL (whose query may carry one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// A credential field is empty.
    #[error("the AwsSigv4 credential has an empty {0}; fill it in")]
    EmptyField(&'static str),
    /// The URL is not an absolute `http` or `https` URL, or is not percent-encoded.
    #[error(
        "the URL cannot be signed: {0}; pass the absolute, percent-encoded URL the request is sent to"
    )]
    InvalidUrl(&'static str),
    /// A header passed in is one `sign` adds itself.
    #[error("the {0} header is added by signing; leave it out of the headers passed to sign()")]
    ReservedHeader(String),
    /// A header name or value is not valid HTTP.
    #[error(
        "the {0} header has an invalid name or value; header values must be visible ASCII or spaces"
    )]
    InvalidHeader(String),
    /// `aws-sigv4` refused the request for another reason.
    #[error("the request cannot be signed ({0})")]
    Signer(String),
}

/// Headers `sign` returns; passing them in as well would sign them twice.
const RESERVED_HEADERS: [&str; 4] = [
    "authorization",
    "x-amz-date",
    "x-amz-content-sha256",
    "x-amz-security-token",
];

/// Headers never signed even when passed in: hop-by-hop headers and ones that proxies and
/// HTTP clients rewrite, so signing them would make delivery fail for reasons outside the
/// sender's control. The union of `aws-sigv4`'s default list and botocore's.
const UNSIGNED_HEADERS: [&str; 12] = [
    "authorization",
    "connection",
    "expect",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "x-amzn-trace-id",
];

/// Whether the signature covers the body through an `x-amz-content-sha256` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PayloadHeader {
    /// Send and sign `x-amz-content-sha256` (what Wharf always does).
    Send,
    /// Sign the body hash without sending it, as AWS's test vectors other than S3's do.
    #[cfg(test)]
    Omit,
}

/// Signs a request with AWS Signature Version 4 and returns the headers to add:
/// `authorization`, `x-amz-date`, `x-amz-content-sha256` and, with a session token,
/// `x-amz-security-token`.
///
/// `url` is the full URL as it will be sent (scheme, host, optional port, percent-encoded path
/// and query; with reqwest, `Url::as_str()`), because the destination checks the path and
/// query it receives. `headers` are the other headers the request will carry (for example
/// `content-type`); they are all signed except hop-by-hop and proxy-rewritten ones
/// (`user-agent`, `transfer-encoding`, ...). `host`, `x-amz-date` and `x-amz-content-sha256`
/// are always signed. `body` is the exact body bytes. `now` is the signing time; the
/// destination accepts it within 5 minutes of its own clock.
pub fn sign(
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: &[u8],
    credentials: &SigningCredentials,
    now: SystemTime,
) -> Result<Vec<(String, String)>, SignError> {
    sign_with(
        method,
        url,
        headers,
        body,
        credentials,
        now,
        PayloadHeader::Send,
    )
}

pub(crate) fn sign_with(
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: &[u8],
    credentials: &SigningCredentials,
    now: SystemTime,
    payload_header: PayloadHeader,
) -> Result<Vec<(String, String)>, SignError> {
    for (field, value) in [
        ("accessKey", &credentials.access_key),
        ("secretKey", &credentials.secret_key),
        ("awsRegion", &credentials.region),
        ("serviceName", &credentials.service),
    ] {
        if value.is_empty() {
            return Err(SignError::EmptyField(field));
        }
    }
    check_url(url)?;
    for (name, value) in headers {
        let lowercase = name.to_ascii_lowercase();
        if RESERVED_HEADERS.contains(&lowercase.as_str()) {
            return Err(SignError::ReservedHeader(lowercase));
        }
        if http::HeaderName::from_bytes(name.as_bytes()).is_err()
            || http::HeaderValue::from_str(value).is_err()
        {
            return Err(SignError::InvalidHeader(shorten(&lowercase)));
        }
    }

    let identity: Identity = Credentials::new(
        &credentials.access_key,
        &credentials.secret_key,
        credentials.session_token.clone(),
        None,
        "wharf",
    )
    .into();

    // Defaults are the non-S3 rules: double-encoded, normalized path; session token signed.
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = match payload_header {
        PayloadHeader::Send => PayloadChecksumKind::XAmzSha256,
        #[cfg(test)]
        PayloadHeader::Omit => PayloadChecksumKind::NoHeader,
    };
    settings.excluded_headers = Some(UNSIGNED_HEADERS.iter().map(|h| Cow::Borrowed(*h)).collect());

    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&credentials.region)
        .name(&credentials.service)
        .time(now)
        .settings(settings)
        .build()
        .map_err(|e| SignError::Signer(e.to_string()))?
        .into();
    let request = SignableRequest::new(
        method,
        url,
        headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str())),
        SignableBody::Bytes(body),
    )
    .map_err(|_| SignError::InvalidUrl("it is not a valid URI"))?;
    let (instructions, _signature) = aws_sign(request, &params)
        .map_err(|e| SignError::Signer(e.to_string()))?
        .into_parts();
    let (added, _query) = instructions.into_parts();
    Ok(added
        .into_iter()
        .map(|header| (header.name().to_owned(), header.value().to_owned()))
        .collect())
}

/// `aws-sigv4` panics on a URL without an authority, so that is checked here first.
fn check_url(url: &str) -> Result<(), SignError> {
    let uri: http::Uri = url
        .parse()
        .map_err(|_| SignError::InvalidUrl("it is not a valid, percent-encoded URI"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(SignError::InvalidUrl("its scheme is not http or https")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(SignError::InvalidUrl("it has no host"));
    }
    Ok(())
}

fn shorten(name: &str) -> String {
    if name.len() <= 64 {
        name.to_owned()
    } else {
        format!("{}...", &name[..name.floor_char_boundary(64)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sigv4::test_vectors;

    fn vector_credentials(context: &test_vectors::Context) -> SigningCredentials {
        SigningCredentials {
            access_key: context.access_key.clone(),
            secret_key: context.secret_key.clone(),
            session_token: context.session_token.clone(),
            region: context.region.clone(),
            service: context.service.clone(),
        }
    }

    /// Our use of `aws-sigv4` (URL handling, header filtering, token, settings) reproduces the
    /// published `Authorization` of every AWS vector it can express. Vectors signed without
    /// `x-amz-content-sha256` are signed with [`PayloadHeader::Omit`], which differs from the
    /// public `sign` only in that one setting; the public `sign` is checked on the vectors
    /// that do send it in `tests/sigv4.rs`.
    #[test]
    fn reproduces_the_aws_test_suite() {
        let mut checked = Vec::new();
        for vector in test_vectors::aws_vectors() {
            if vector.signer_exclusion().is_some() {
                continue;
            }
            let request = vector.request();
            let url = format!("https://{}{}", request.host(), request.target);
            // The older vectors carry an X-Amz-Date in the unsigned request; the signer adds
            // its own from `now`, so it is left out here.
            let headers: Vec<(String, String)> = request
                .header_list
                .iter()
                .filter(|(name, _)| {
                    !name.eq_ignore_ascii_case("host") && !name.eq_ignore_ascii_case("x-amz-date")
                })
                .cloned()
                .collect();
            let payload = if vector.context.sign_body {
                PayloadHeader::Send
            } else {
                PayloadHeader::Omit
            };
            let added = sign_with(
                request.method.as_str(),
                &url,
                &headers,
                &request.body,
                &vector_credentials(&vector.context),
                vector.context.now,
                payload,
            )
            .unwrap_or_else(|e| panic!("{}: {e}", vector.name));
            let authorization = added
                .iter()
                .find(|(name, _)| name == "authorization")
                .map(|(_, value)| value.as_str());
            assert_eq!(
                authorization,
                Some(vector.expected_authorization().as_str()),
                "{}",
                vector.name
            );
            checked.push(vector.name);
        }
        assert!(
            checked.len() >= 28,
            "only {} vectors: {checked:?}",
            checked.len()
        );
    }

    #[test]
    fn adds_exactly_the_documented_headers() {
        let mut credentials = SigningCredentials {
            access_key: "AKIDEXAMPLE".into(),
            secret_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
            region: "us-east-1".into(),
            service: "execute-api".into(),
        };
        let now = test_vectors::parse_rfc3339("2024-05-01T12:00:00Z");
        let names = |added: Vec<(String, String)>| {
            let mut names: Vec<String> = added.into_iter().map(|(n, _)| n).collect();
            names.sort();
            names
        };
        let added = sign(
            "GET",
            "https://dest.example.com/redox",
            &[],
            b"",
            &credentials,
            now,
        )
        .unwrap();
        assert_eq!(
            names(added),
            ["authorization", "x-amz-content-sha256", "x-amz-date"]
        );
        credentials.session_token = Some("token-value".into());
        let added = sign(
            "GET",
            "https://dest.example.com/redox",
            &[],
            b"",
            &credentials,
            now,
        )
        .unwrap();
        let token = added
            .iter()
            .find(|(n, _)| n == "x-amz-security-token")
            .map(|(_, v)| v.as_str());
        assert_eq!(token, Some("token-value"));
        let authorization = &added.iter().find(|(n, _)| n == "authorization").unwrap().1;
        assert!(
            authorization.contains(
                "SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token,"
            ),
            "{authorization}"
        );
    }

    #[test]
    fn hop_by_hop_and_proxy_headers_are_not_signed() {
        let credentials = SigningCredentials {
            access_key: "AK".into(),
            secret_key: "SK".into(),
            session_token: None,
            region: "us-east-1".into(),
            service: "execute-api".into(),
        };
        let headers = vec![
            ("Content-Type".to_owned(), "application/json".to_owned()),
            ("User-Agent".to_owned(), "wharf/0.1".to_owned()),
            ("Connection".to_owned(), "keep-alive".to_owned()),
            ("Transfer-Encoding".to_owned(), "chunked".to_owned()),
        ];
        let added = sign(
            "POST",
            "https://dest.example.com:8443/redox",
            &headers,
            b"{}",
            &credentials,
            SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_714_564_800),
        )
        .unwrap();
        let authorization = &added.iter().find(|(n, _)| n == "authorization").unwrap().1;
        assert!(
            authorization
                .contains("SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date,"),
            "{authorization}"
        );
    }

    #[test]
    fn bad_inputs_are_refused_with_what_to_fix() {
        let credentials = SigningCredentials {
            access_key: "AK".into(),
            secret_key: "very-secret".into(),
            session_token: Some("very-secret-token".into()),
            region: "us-east-1".into(),
            service: "execute-api".into(),
        };
        let now = SystemTime::UNIX_EPOCH;
        let sign_url = |url: &str| sign("GET", url, &[], b"", &credentials, now);
        assert!(matches!(
            sign_url("/relative"),
            Err(SignError::InvalidUrl(_))
        ));
        assert!(matches!(
            sign_url("ftp://host/x"),
            Err(SignError::InvalidUrl(_))
        ));
        assert!(matches!(
            sign_url("https://host/a b"),
            Err(SignError::InvalidUrl(_))
        ));
        let reserved = [("X-Amz-Date".to_owned(), "20240101T000000Z".to_owned())];
        assert_eq!(
            sign("GET", "https://host/", &reserved, b"", &credentials, now),
            Err(SignError::ReservedHeader("x-amz-date".into()))
        );
        let invalid = [("X-Bad".to_owned(), "line\nbreak".to_owned())];
        assert_eq!(
            sign("GET", "https://host/", &invalid, b"", &credentials, now),
            Err(SignError::InvalidHeader("x-bad".into()))
        );
        let mut empty = credentials.clone();
        empty.region.clear();
        let error = sign("GET", "https://host/", &[], b"", &empty, now).unwrap_err();
        assert_eq!(error, SignError::EmptyField("awsRegion"));
        assert!(error.to_string().contains("awsRegion"));

        let shown = format!("{credentials:?}");
        assert!(!shown.contains("very-secret"), "{shown}");
        assert!(shown.contains("AK"));
    }
}
