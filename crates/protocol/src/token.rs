//! The verification token: a shared secret between the engine and one destination.
//!
//! It is compared in constant time and never printed: `Debug` shows only that a token exists.

use sha2::{Digest, Sha256};
use std::fmt;
use subtle::ConstantTimeEq;

/// A destination's verification token (docs/PROTOCOL.md sections 2 and 3).
#[derive(Clone, PartialEq, Eq)]
pub struct VerificationToken(String);

/// Why a string cannot be a verification token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the verification token is empty")]
    Empty,
    #[error(
        "the verification token may only contain visible ASCII characters (it travels in an HTTP header)"
    )]
    NotVisibleAscii,
}

impl VerificationToken {
    /// Validates a token: non-empty visible ASCII, because it travels in the
    /// `verification-token` header and must be representable there byte for byte.
    pub fn new(token: impl Into<String>) -> Result<Self, TokenError> {
        let token = token.into();
        if token.is_empty() {
            return Err(TokenError::Empty);
        }
        if !token.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            return Err(TokenError::NotVisibleAscii);
        }
        Ok(VerificationToken(token))
    }

    /// The secret itself, for putting on the wire. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Compares a presented value with this token in constant time.
    ///
    /// Both sides are hashed first so that neither the position of the first differing byte
    /// nor the length of the real token leaks through timing.
    pub fn matches(&self, presented: &[u8]) -> bool {
        let expected = Sha256::digest(self.0.as_bytes());
        let presented = Sha256::digest(presented);
        expected.ct_eq(&presented).into()
    }
}

impl fmt::Debug for VerificationToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("VerificationToken(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_only_the_exact_token() {
        let token = VerificationToken::new("s3cret-token").unwrap();
        assert!(token.matches(b"s3cret-token"));
        assert!(!token.matches(b"s3cret-tokeN"));
        assert!(!token.matches(b"s3cret-toke"));
        assert!(!token.matches(b""));
    }

    #[test]
    fn rejects_empty_and_header_unsafe_tokens() {
        assert_eq!(VerificationToken::new(""), Err(TokenError::Empty));
        assert_eq!(
            VerificationToken::new("has space"),
            Err(TokenError::NotVisibleAscii)
        );
        assert_eq!(
            VerificationToken::new("line\nbreak"),
            Err(TokenError::NotVisibleAscii)
        );
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let token = VerificationToken::new("s3cret-token").unwrap();
        assert!(!format!("{token:?}").contains("s3cret"));
    }
}
