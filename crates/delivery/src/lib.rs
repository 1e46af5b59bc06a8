//! The sending side of the protocol, shared by everything in Wharf that calls a destination.
//!
//! * [`client`]: the outbound HTTP client (no redirects, optional extra CA) and how its errors
//!   are described to a person.
//! * [`push`]: one delivery attempt and what it found.
//! * [`ssrf`]: which addresses the engine refuses to call, checked after resolving.
//! * [`verify`]: Verify and Save (docs/PROTOCOL.md section 2) as the sender performs it.
//!
//! The engine's durable push worker joins this crate with issue 3's delivery work, so the
//! destination's forwarder and the engine share one implementation.

pub mod client;
pub mod push;
pub mod ssrf;
pub mod verify;

pub use client::{describe_transport_error, error_chain};
pub use verify::{Method, VerifyFailure, verify};
