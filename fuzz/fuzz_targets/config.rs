//! Fuzzes a configuration file through both servers' config loaders; the body is
//! `wharf_fuzz_targets::config`, which CI also replays on stable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wharf_fuzz_targets::config(data));
