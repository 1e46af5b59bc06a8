#!/usr/bin/env bash
# Log search at 1 million logs (docs/BENCHMARKS.md, "Log search"): builds the store's
# bench_search example in release mode and runs it on a fresh SQLite store (and, with
# --postgres URL, on PostgreSQL: give it an empty schema of its own).
#   benches/search.sh                      # SQLite, 1,000,000 logs
#   benches/search.sh --logs 200000        # smaller
#   benches/search.sh --postgres 'postgres://postgres@127.0.0.1:5432/test?options=-csearch_path%3Dbench'
set -euo pipefail
cd "$(dirname "$0")/.."
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg); commit $(git rev-parse --short HEAD); $(date -u +%FT%TZ)"
BENCH_DIR="${BENCH_DIR:-${CARGO_TARGET_DIR:-$(pwd)/target}}"
mkdir -p "$BENCH_DIR"
BENCH_DIR="$BENCH_DIR" cargo run --release -q -p wharf-store --example bench_search -- "$@"
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
