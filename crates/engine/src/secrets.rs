//! Secrets at rest: sealed with AES-256-GCM (aws-lc-rs) under a key derived from the
//! configured master key, bound to the record and field they belong to (so a sealed value
//! copied into another record does not open).
//!
//! **The master key is 256 random bits**, written as 64 hex digits (`openssl rand -hex 32`)
//! or base64 of 32 bytes, and the sealing key is derived from those bits with HKDF-SHA256. A
//! passphrase is refused: with a copy of the database, a guessable master key would open every
//! verification token, so no derivation is asked to make a weak one strong. Keys with few
//! distinct bytes (`000...`, `0123...` repeated) are refused, and the example configuration
//! ships none (it names an environment variable).
//!
//! Values sealed by Wharf before this rule were sealed under a SHA-256 derivation of the key's
//! text ("v1"); they still open, under the same master key text, and new values are sealed
//! with the HKDF key.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hkdf::{HKDF_SHA256, Salt};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine as _;
use sha2::{Digest, Sha256};

/// How many bytes the master key must decode to.
pub const MASTER_KEY_BYTES: usize = 32;

/// Fewest distinct byte values among the key's 32: random keys have about 30; a key made by
/// repeating a short pattern has far fewer.
const MIN_DISTINCT_BYTES: usize = 16;

/// The key that seals every secret the engine stores.
pub struct MasterKey {
    key: LessSafeKey,
    /// The pre-HKDF derivation, only to open values sealed before it.
    v1: LessSafeKey,
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

/// Why a configured master key is refused (the text says what to do instead).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}: generate one with `openssl rand -hex 32`")]
pub struct WeakKey(&'static str);

impl MasterKey {
    /// The master key from its configured text: 64 hex digits or base64 of 32 random bytes.
    pub fn parse(text: &str) -> Result<Self, WeakKey> {
        let text = text.trim();
        let bytes = decode(text).ok_or(WeakKey(
            "must be 256 random bits written as 64 hex digits (or base64 of 32 bytes)",
        ))?;
        let mut distinct = bytes.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.len() < MIN_DISTINCT_BYTES {
            return Err(WeakKey(
                "does not look random (too few distinct bytes): use a key from a random generator",
            ));
        }
        let prk = Salt::new(HKDF_SHA256, b"wharf master key v2").extract(&bytes);
        let okm = prk
            .expand(&[b"aes-256-gcm sealing"], &AES_256_GCM)
            .expect("AES-256-GCM's key length is a valid HKDF output length");
        let digest = Sha256::new()
            .chain_update(b"wharf master key v1\0")
            .chain_update(text.as_bytes())
            .finalize();
        let v1 = UnboundKey::new(&AES_256_GCM, &digest).expect("32 bytes is an AES-256 key");
        Ok(MasterKey {
            key: LessSafeKey::new(UnboundKey::from(okm)),
            v1: LessSafeKey::new(v1),
        })
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
        // GCM's tag decides which key sealed it: a value sealed under the other key (or
        // altered) fails to authenticate, so trying both cannot open a wrong value.
        for key in [&self.key, &self.v1] {
            let mut buffer = ciphertext.to_vec();
            let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| OpenError)?;
            if let Ok(plain) = key.open_in_place(nonce, Aad::from(context.as_bytes()), &mut buffer)
            {
                return Ok(plain.to_vec());
            }
        }
        Err(OpenError)
    }
}

/// 256 fresh random bits as 64 hex digits: a master key, or any secret Wharf generates
/// (management and source keys, verification tokens).
pub fn random_key() -> String {
    let mut bytes = [0u8; MASTER_KEY_BYTES];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system random generator works");
    hex::encode(bytes)
}

/// The key's bytes, if `text` is 64 hex digits or base64 (standard or URL-safe, padded or
/// not) of exactly 32 bytes.
fn decode(text: &str) -> Option<[u8; MASTER_KEY_BYTES]> {
    let bytes = if text.len() == 2 * MASTER_KEY_BYTES && text.bytes().all(|b| b.is_ascii_hexdigit())
    {
        hex::decode(text).ok()?
    } else {
        let unpadded = text.trim_end_matches('=');
        base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(unpadded)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(unpadded))
            .ok()?
    };
    bytes.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A test key: 32 distinct bytes, never used outside tests.
    pub(crate) const TEST_KEY: &str =
        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    #[test]
    fn seals_and_opens_only_in_context_and_with_the_key() {
        let key = MasterKey::parse(TEST_KEY).unwrap();
        let sealed = key.seal("d1/verificationToken", b"s3cret");
        assert!(!sealed.windows(6).any(|w| w == b"s3cret"));
        assert_eq!(
            key.open("d1/verificationToken", &sealed).unwrap(),
            b"s3cret"
        );
        assert!(key.open("d2/verificationToken", &sealed).is_err());
        let other =
            MasterKey::parse("60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752")
                .unwrap();
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

    #[test]
    fn only_256_random_bits_are_a_master_key() {
        let refused = |text: &str| MasterKey::parse(text).unwrap_err().to_string();
        // Passphrases, however long, and the old example value.
        assert!(
            refused("change-me-9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08")
                .contains("64 hex digits")
        );
        assert!(refused("correct horse battery staple correct horse battery").contains("64 hex"));
        // 31 and 33 bytes.
        assert!(refused(&TEST_KEY[..62]).contains("64 hex"));
        assert!(refused(&format!("{TEST_KEY}00")).contains("64 hex"));
        // Patterns and published keys.
        assert!(refused(&"0123456789abcdef".repeat(4)).contains("random"));
        assert!(refused(&"00".repeat(32)).contains("random"));
        assert!(refused(&"ab".repeat(32)).contains("random"));
        // Hex in either case, and base64 of the same bytes, are the same key.
        let bytes = hex::decode(TEST_KEY).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
        let sealed = MasterKey::parse(TEST_KEY).unwrap().seal("c", b"x");
        for text in [
            TEST_KEY.to_uppercase(),
            b64.clone(),
            b64.trim_end_matches('=').to_owned(),
        ] {
            assert_eq!(
                MasterKey::parse(&text).unwrap().open("c", &sealed).unwrap(),
                b"x"
            );
        }
        assert!(refused(&format!("  {b64}x")).contains("64 hex"));
    }

    #[test]
    fn values_sealed_under_the_old_derivation_still_open() {
        // What Wharf sealed before HKDF: AES-256-GCM under SHA-256("wharf master key v1\0" || text).
        let digest = Sha256::new()
            .chain_update(b"wharf master key v1\0")
            .chain_update(TEST_KEY.as_bytes())
            .finalize();
        let old = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &digest).unwrap());
        let nonce = [7u8; NONCE_LEN];
        let mut sealed = b"token".to_vec();
        old.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&b"d1/verificationToken"[..]),
            &mut sealed,
        )
        .unwrap();
        let stored = [nonce.to_vec(), sealed].concat();
        let key = MasterKey::parse(TEST_KEY).unwrap();
        assert_eq!(key.open("d1/verificationToken", &stored).unwrap(), b"token");
        // New values are sealed under the HKDF key, which the old derivation cannot open.
        let fresh = key.seal("c", b"x");
        let (n, ct) = fresh.split_at(NONCE_LEN);
        let mut buffer = ct.to_vec();
        assert!(
            old.open_in_place(
                Nonce::try_assume_unique_for_key(n).unwrap(),
                Aad::from(&b"c"[..]),
                &mut buffer
            )
            .is_err()
        );
    }
}
