//! Fuzzes an HTTP request (as text) through the SigV4 verifier, and sign-then-verify; the body is
//! `wharf_fuzz_targets::sigv4`, which CI also replays on stable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wharf_fuzz_targets::sigv4(data));
