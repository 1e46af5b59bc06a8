//! Wharf's auth strategies, both directions, as pure code.
//!
//! The engine is the client that obtains and presents credentials; the destination is the
//! server that checks them (docs/PROTOCOL.md section 5). Everything here is signing, verifying and
//! deciding: no HTTP server, no database, no network I/O. Callers fetch JWKS documents and
//! token responses themselves and hand the bytes in; every time-dependent check reads a
//! [`clock::Clock`] so tests can move time without sleeping.
//!
//! | module | owns |
//! |---|---|
//! | [`clock`] | the injectable clock |
//! | [`strategy`] | the six strategy keys, their fields, which fields are secret |
//! | [`client`] | the engine's token requests, signed assertions, token responses, token cache |
//! | [`keys`] | private signing keys (PEM or generated) and the JWKS publishing them |
//! | [`jwks`] | public verification keys, algorithm pinned per key, refresh policy |
//! | [`jwt`] | verifying JWTs: signature, issuer, audience, expiry, not-before, jti |
//! | [`oauth`] | token endpoint requests, issued bearer tokens, jti replay, client secrets |
//! | [`replay`] | single-use credentials (SigV4 signatures, JWT Bearer tokens) remembered until they expire |
//! | [`sigv4`] | AWS Signature Version 4: signing (engine) and verifying (destination) |

pub mod client;
pub mod clock;
pub mod jwks;
pub mod jwt;
pub mod keys;
pub mod oauth;
pub mod replay;
pub mod sigv4;
pub mod strategy;

pub use clock::{Clock, ManualClock, SystemClock};
