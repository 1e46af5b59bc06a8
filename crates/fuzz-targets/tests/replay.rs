//! Replays the fuzz corpora on stable Rust, so CI runs every fuzz target without nightly.
//!
//! * every file of `fuzz/corpus/<target>/` goes through its target once (the seeds, and any
//!   crash a fuzzer found and that was fixed: they are kept there as regression inputs);
//! * then a small, deterministic mutation run: each seed is mutated a few hundred times with a
//!   fixed-seed generator (bit flips, byte insertions and deletions, splices with other
//!   seeds, interesting values). It is no substitute for libFuzzer's coverage guidance, but it
//!   catches the shallow panics on every CI run. `WHARF_FUZZ_ITERATIONS` raises the count for
//!   a longer local run.
//!
//! A failure names the target and the file, or prints the mutated input as hex: save it into
//! the corpus directory, fix the code, and the replay keeps it fixed.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use wharf_fuzz_targets::{TARGETS, run};

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target)
}

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = corpus_dir(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read the corpus {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let bytes = std::fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect()
}

#[test]
fn every_corpus_file_passes_its_target() {
    for target in TARGETS {
        let files = corpus(target);
        assert!(
            files.len() >= 20,
            "the {target} corpus has only {} seeds; it should keep at least 20",
            files.len()
        );
        for (path, bytes) in files {
            if catch_unwind(AssertUnwindSafe(|| run(target, &bytes))).is_err() {
                panic!("fuzz target {target} failed on {}", path.display());
            }
        }
    }
}

#[test]
fn unknown_targets_are_reported() {
    assert!(!run("no-such-target", b""));
}

/// xorshift64*: deterministic, so a failure reproduces on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const INTERESTING: &[&[u8]] = &[
    b"\x00",
    b"\xff",
    b"\xc3\x28",
    b"\xed\xa0\x80",
    b"\"",
    b"\\",
    b"\\u0000",
    b"\\ud800",
    b"{",
    b"}",
    b"[",
    b"]",
    b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
    b"null",
    b"-0",
    b"1e309",
    b"18446744073709551616",
    b"%",
    b"%zz",
    b"%2F",
    b"?",
    b"&",
    b"=",
    b"/../",
    b"\r\n",
    b"\n\n",
    b":",
    b";",
    b",",
    b" ",
    b"\t",
    b".",
    b"==",
    b"\"Meta\":",
    b"\"challenge\":",
    b"\"resourceType\":\"Bundle\"",
    b"[[destinations]]\n",
    b"= 1\n",
    b"= \"\"\n",
    b"= []\n",
    b"= {}\n",
];

fn mutate(rng: &mut Rng, input: &[u8], others: &[Vec<u8>]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(7) {
            0 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] ^= 1 << rng.below(8);
            }
            1 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] = rng.next() as u8;
            }
            2 if !out.is_empty() => {
                let len = 1 + rng.below(16.min(out.len() - at.min(out.len())).max(1));
                let end = (at + len).min(out.len());
                out.drain(at.min(end)..end);
            }
            3 => {
                let value = INTERESTING[rng.below(INTERESTING.len())];
                out.splice(at..at, value.iter().copied());
            }
            4 if !others.is_empty() => {
                let other = &others[rng.below(others.len())];
                let from = rng.below(other.len() + 1);
                let to = from + rng.below(other.len() - from + 1);
                out.splice(at..at, other[from..to].iter().copied());
            }
            5 if !out.is_empty() => {
                // Repeat a slice: deep nesting, long values.
                let from = rng.below(out.len());
                let to = (from + 1 + rng.below(8)).min(out.len());
                let piece = out[from..to].to_vec();
                for _ in 0..rng.below(64) {
                    out.splice(at..at, piece.iter().copied());
                }
            }
            _ => out.truncate(at),
        }
    }
    out
}

#[test]
fn mutated_seeds_pass_their_targets() {
    let iterations: usize = std::env::var("WHARF_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    for (t, target) in TARGETS.into_iter().enumerate() {
        let seeds: Vec<Vec<u8>> = corpus(target).into_iter().map(|(_, b)| b).collect();
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (t as u64 + 1));
        for seed in &seeds {
            for _ in 0..iterations {
                let input = mutate(&mut rng, seed, &seeds);
                if catch_unwind(AssertUnwindSafe(|| run(target, &input))).is_err() {
                    panic!(
                        "fuzz target {target} failed on a mutated seed; save this input (hex) \
                         into fuzz/corpus/{target}/ and fix the code:\n{}",
                        hex(&input)
                    );
                }
            }
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The seeds must reach the success paths, or the fuzzer would explore refusals only.
#[test]
fn signed_seeds_verify() {
    use std::time::{Duration, SystemTime};
    use wharf_fuzz_targets::*;
    let bytes = std::fs::read(corpus_dir("sigv4").join("aws-signed-get-vanilla")).unwrap();
    let request = parse_request(&bytes).unwrap();
    let verifier = wharf_auth::sigv4::Verifier::new(
        SIGV4_REGION,
        SIGV4_SERVICE,
        [(SIGV4_ACCESS_KEY.to_owned(), SIGV4_SECRET_KEY.to_owned())],
    );
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(SIGV4_TIME_UNIX);
    verifier
        .verify(
            &request.method,
            &request.target,
            &request.headers,
            &request.body,
            now,
        )
        .expect("AWS's signed example verifies");

    let token = std::fs::read_to_string(corpus_dir("jwt").join("valid")).unwrap();
    let rules = wharf_auth::jwt::Rules::new(vec![JWT_ISSUER.into()], vec![JWT_AUDIENCE.into()]);
    let keys = wharf_auth::jwks::KeySet::from_jwks_bytes(
        &std::fs::read(corpus_dir("jwt").join("jwks-own")).unwrap(),
    )
    .unwrap();
    let clock = wharf_auth::ManualClock::at_unix(JWT_NOW_UNIX);
    wharf_auth::jwt::verify(&token, &keys, &rules, &clock).expect("the valid seed verifies");
}
