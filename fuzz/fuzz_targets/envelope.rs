//! Fuzzes a request body through the envelope classifier and the engine's stamping; the body is
//! `wharf_fuzz_targets::envelope`, which CI also replays on stable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wharf_fuzz_targets::envelope(data));
