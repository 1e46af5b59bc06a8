//! Fuzzes a POST body through the Verify and Save challenge parser; the body is
//! `wharf_fuzz_targets::challenge`, which CI also replays on stable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wharf_fuzz_targets::challenge(data));
