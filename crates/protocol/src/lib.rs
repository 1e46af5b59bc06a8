//! The wire contract of Redox-style destination delivery, as pure types and rules.
//!
//! Both halves of Wharf (the engine that pushes and the destination that receives) speak the
//! protocol described in `docs/PROTOCOL.md`; this crate is the one place its rules live. It does no
//! I/O and has no async: everything here can be tested with plain values.
//!
//! * [`envelope`]: what a message body is (Redox data model, FHIR message bundle, query) and its
//!   duplicate key.
//! * [`challenge`]: the Verify and Save challenge, from both ends.
//! * [`token`]: the verification token and its constant-time comparison.
//! * [`environment`]: Development, Staging and Production.
//! * [`errors`]: Redox-shaped `Meta.Errors` bodies.
//! * [`ladder`]: durations in configs and Redox's retry ladder.
//! * [`platform`]: Redox's Platform API values as types (data format, log status and type, ...).
//! * [`report`]: an error and its causes on one line, as every crate says errors.

pub mod challenge;
pub mod envelope;
pub mod environment;
pub mod errors;
pub mod ladder;
pub mod platform;
pub mod report;
pub mod token;

pub use envelope::{DuplicateKey, Envelope, EnvelopeError, EnvelopeKind, Interaction};
pub use environment::Environment;
pub use report::error_chain;
pub use token::VerificationToken;

/// The `Content-Type` of Redox data model messages.
pub const CONTENT_TYPE_JSON: &str = "application/json";
/// The `Content-Type` of FHIR messages.
pub const CONTENT_TYPE_FHIR_JSON: &str = "application/fhir+json";
/// Header that carries the verification token on every request (docs/PROTOCOL.md section 3).
pub const VERIFICATION_TOKEN_HEADER: &str = "verification-token";
/// Header on every delivery attempt of a log an operator resent, holding how many times it
/// was resent (1 for the first resend). Absent on first deliveries and their automatic
/// retries. A receiver that drops retries by Log ID (which a resend keeps) delivers a
/// resend again: **Wharf's addition** (docs/PROTOCOL.md section 4), Redox documents none.
pub const RESEND_HEADER: &str = "wharf-resend";
/// Header Redox sends to identify itself on the verification request.
pub const APPLICATION_NAME_HEADER: &str = "application-name";
/// The value of [`APPLICATION_NAME_HEADER`] Redox sends.
pub const APPLICATION_NAME: &str = "RedoxEngine";
/// Bodies up to this size must be accepted (docs/PROTOCOL.md section 4): 40 MiB.
pub const MAX_BODY_BYTES: usize = 40 * 1024 * 1024;
