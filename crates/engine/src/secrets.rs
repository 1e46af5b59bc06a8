//! Secrets at rest: sealed with AES-256-GCM (aws-lc-rs) under a key derived from the
//! configured master key, bound to the record and field they belong to (so a sealed value
//! copied into another record does not open).

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256};

/// The shortest master key accepted: anything shorter is guessable.
pub const MIN_MASTER_KEY_LEN: usize = 32;

/// The key that seals every secret the engine stores.
pub struct MasterKey {
    key: LessSafeKey,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

/// A sealed value that does not open: wrong master key, or tampered with.
#[derive(Debug, thiserror::Error)]
#[error(
    "a stored secret cannot be opened: the master key differs from the one it was sealed with, or the database was altered"
)]
pub struct OpenError;

impl MasterKey {
    /// Derives the AES-256 key from the configured master key text.
    pub fn new(master_key: &str) -> Self {
        let digest = Sha256::new()
            .chain_update(b"wharf master key v1\0")
            .chain_update(master_key.as_bytes())
            .finalize();
        let unbound = UnboundKey::new(&AES_256_GCM, &digest).expect("32 bytes is an AES-256 key");
        MasterKey {
            key: LessSafeKey::new(unbound),
        }
    }

    /// Seals `plaintext` for `context` (record id and field). Output: nonce || ciphertext || tag.
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .expect("the system random generator works");
        let mut sealed = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut sealed,
            )
            .expect("sealing a buffer in memory cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        out
    }

    /// Opens a value sealed by [`seal`](Self::seal) with the same `context`.
    pub fn open(&self, context: &str, sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
        if sealed.len() < NONCE_LEN {
            return Err(OpenError);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| OpenError)?;
        let mut buffer = ciphertext.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut buffer)
            .map_err(|_| OpenError)?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens_only_in_context_and_with_the_key() {
        let key = MasterKey::new("0123456789abcdef0123456789abcdef");
        let sealed = key.seal("d1/verificationToken", b"s3cret");
        assert!(!sealed.windows(6).any(|w| w == b"s3cret"));
        assert_eq!(
            key.open("d1/verificationToken", &sealed).unwrap(),
            b"s3cret"
        );
        assert!(key.open("d2/verificationToken", &sealed).is_err());
        let other = MasterKey::new("another-master-key-another-master-key");
        assert!(other.open("d1/verificationToken", &sealed).is_err());
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(key.open("d1/verificationToken", &tampered).is_err());
        assert_ne!(
            key.seal("c", b"x"),
            key.seal("c", b"x"),
            "fresh nonce each time"
        );
    }
}
