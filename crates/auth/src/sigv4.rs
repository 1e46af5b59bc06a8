//! AWS Signature Version 4, both directions: the engine signs requests to a destination
//! configured with the `AwsSigv4` strategy, and the destination verifies them
//! (docs/PROTOCOL.md section 5).
//!
//! * Signing ([`sign`]) is done by the `aws-sigv4` crate, the AWS SDK's own signer, with its
//!   non-S3 defaults plus `x-amz-content-sha256`: we choose settings, it computes.
//! * Verifying ([`Verifier`]) is ours, because `aws-sigv4` cannot verify. It rebuilds the
//!   canonical request from exactly the signed headers, recomputes the signature and compares
//!   in constant time. Its canonicalization rules (in `canonical`) copy `aws-sigv4`'s, and the
//!   tests hold it to AWS's published test suite, to requests signed by `aws-sigv4`
//!   (round-trip property test) and to requests signed by botocore, an independent
//!   implementation (`tests/fixtures/sigv4/botocore/`, made by `scripts/sigv4_fixtures.py`).
//!
//! Time is always passed in (`now`), never read from the system clock.

mod canonical;
mod signer;
#[cfg(test)]
mod test_vectors;
mod verifier;

pub use signer::{SignError, SigningCredentials, sign};
pub use verifier::{DEFAULT_MAX_SKEW, Verified, Verifier, VerifyError};
