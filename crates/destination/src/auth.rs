//! Authenticating a request by its verification token (docs/PROTOCOL.md section 3).
//!
//! The token may arrive as `verification-token: <token>` or `Authorization: Bearer <token>`
//! (Redox sends both when no auth credential is linked). Every value presented must match, in
//! constant time; presenting none is "missing" (401), presenting a wrong one is "wrong" (403).
//! An `Authorization` header with another scheme is left for the auth credential strategies.

use http::HeaderMap;
use http::header::AUTHORIZATION;
use wharf_protocol::{VERIFICATION_TOKEN_HEADER, VerificationToken};

/// What the headers of a request say about its sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenCheck {
    /// No token presented.
    Missing,
    /// Every token presented matches.
    Valid,
    /// At least one token presented does not match.
    Wrong,
}

/// Checks the verification token a request carries, for a destination with or without an auth
/// strategy. With a strategy, `Authorization` belongs to the strategy, so only the
/// `verification-token` header counts; without a configured token (allowed only with a
/// strategy) there is nothing to check here.
pub fn check(headers: &HeaderMap, token: Option<&VerificationToken>, strategy: bool) -> TokenCheck {
    match token {
        None => TokenCheck::Valid,
        Some(token) if strategy => check_token_header(headers, token),
        Some(token) => check_headers(headers, token),
    }
}

/// Checks only the `verification-token` header.
pub fn check_token_header(headers: &HeaderMap, token: &VerificationToken) -> TokenCheck {
    let mut presented = 0;
    let mut all_match = true;
    for value in headers.get_all(VERIFICATION_TOKEN_HEADER) {
        presented += 1;
        all_match &= token.matches(value.as_bytes());
    }
    match (presented, all_match) {
        (0, _) => TokenCheck::Missing,
        (_, true) => TokenCheck::Valid,
        (_, false) => TokenCheck::Wrong,
    }
}

/// Checks the verification token carried by the request's headers.
pub fn check_headers(headers: &HeaderMap, token: &VerificationToken) -> TokenCheck {
    let mut presented = 0;
    let mut all_match = true;
    for value in headers.get_all(VERIFICATION_TOKEN_HEADER) {
        presented += 1;
        // `&=` rather than `&&`: check every value, so timing does not depend on which failed.
        all_match &= token.matches(value.as_bytes());
    }
    for value in headers.get_all(AUTHORIZATION) {
        if let Some(bearer) = bearer(value.as_bytes()) {
            presented += 1;
            all_match &= token.matches(bearer);
        }
    }
    match (presented, all_match) {
        (0, _) => TokenCheck::Missing,
        (_, true) => TokenCheck::Valid,
        (_, false) => TokenCheck::Wrong,
    }
}

/// The credentials of an `Authorization: Bearer` header (scheme compared case-insensitively,
/// as RFC 9110 requires).
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(7)?;
    if scheme.eq_ignore_ascii_case(b"bearer ") {
        Some(rest.trim_ascii())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn header_or_bearer_authenticates() {
        let t = VerificationToken::new("tok").unwrap();
        assert_eq!(check_headers(&headers(&[]), &t), TokenCheck::Missing);
        assert_eq!(
            check_headers(&headers(&[("verification-token", "tok")]), &t),
            TokenCheck::Valid
        );
        assert_eq!(
            check_headers(&headers(&[("authorization", "Bearer tok")]), &t),
            TokenCheck::Valid
        );
        assert_eq!(
            check_headers(&headers(&[("authorization", "bearer tok")]), &t),
            TokenCheck::Valid
        );
        assert_eq!(
            check_headers(
                &headers(&[
                    ("verification-token", "tok"),
                    ("authorization", "Bearer tok")
                ]),
                &t
            ),
            TokenCheck::Valid
        );
    }

    #[test]
    fn any_wrong_value_is_wrong() {
        let t = VerificationToken::new("tok").unwrap();
        assert_eq!(
            check_headers(&headers(&[("verification-token", "tok2")]), &t),
            TokenCheck::Wrong
        );
        assert_eq!(
            check_headers(
                &headers(&[
                    ("verification-token", "tok"),
                    ("authorization", "Bearer nope")
                ]),
                &t
            ),
            TokenCheck::Wrong
        );
        assert_eq!(
            check_headers(
                &headers(&[("verification-token", "tok"), ("verification-token", "x")]),
                &t
            ),
            TokenCheck::Wrong
        );
    }

    #[test]
    fn with_a_strategy_only_the_token_header_counts() {
        let t = VerificationToken::new("tok").unwrap();
        let h = headers(&[
            ("verification-token", "tok"),
            ("authorization", "Bearer oauth"),
        ]);
        assert_eq!(check(&h, Some(&t), true), TokenCheck::Valid);
        assert_eq!(check(&h, Some(&t), false), TokenCheck::Wrong);
        let h = headers(&[("authorization", "Bearer tok")]);
        assert_eq!(check(&h, Some(&t), true), TokenCheck::Missing);
        assert_eq!(check(&h, None, true), TokenCheck::Valid);
    }

    #[test]
    fn other_schemes_are_not_tokens() {
        let t = VerificationToken::new("tok").unwrap();
        assert_eq!(
            check_headers(&headers(&[("authorization", "Basic dG9rOg==")]), &t),
            TokenCheck::Missing
        );
        assert_eq!(
            check_headers(&headers(&[("authorization", "Bear")]), &t),
            TokenCheck::Missing
        );
    }
}
