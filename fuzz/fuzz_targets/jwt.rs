//! Fuzzes a bearer token through the JWT parser and verifier, and the same bytes as a JWKS
//! document; the body is `wharf_fuzz_targets::jwt`, which CI also replays on stable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wharf_fuzz_targets::jwt(data));
