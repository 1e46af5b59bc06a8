#!/usr/bin/env bash
# Destination benchmark (issue 2): durable acknowledgements of ~2 KB messages at concurrency 64,
# against the server's cheapest route (GET /healthz) as the HTTP ceiling, in the same run.
#
# Usage: benches/destination.sh [rounds=5] [seconds=10] [concurrency=64]
# With WHARF_BENCH_DATABASE_URL=postgres://... the server keeps its inbox in PostgreSQL instead
# of SQLite: the script creates a schema of its own there (with psql) and drops it at the end.
# WHARF_BENCH_SERVER_ENV="NAME=value ..." sets environment variables for the server only (not
# for the load generator), for experiments such as TOKIO_WORKER_THREADS or a patch's switches.
# WHARF_BENCH_CONFIG="key = value" adds top-level keys to the server's configuration file (for
# example "wal_reset_bytes = 134217728" to compare another WAL reset size).
# WHARF_BENCH_BIN=path runs that wharf binary (server and load generator) instead of building
# this checkout, for comparing two builds alternately.
# Rounds alternate ceiling and messages so machine noise hits both alike; the summary is the
# median of the rounds. Results go to stdout and to target/bench/destination-*.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
seconds=${2:-10}
concurrency=${3:-64}

out=target/bench
mkdir -p "$out"
# shellcheck source=benches/destination-server.sh
source benches/destination-server.sh

ceiling="$out/destination-ceiling.jsonl"
acks="$out/destination-acks.jsonl"
: > "$ceiling"
: > "$acks"
for round in $(seq "$rounds"); do
  "$wharf" bench load "http://127.0.0.1:$port/healthz" --concurrency "$concurrency" \
    --duration "${seconds}s" --warmup 2s >> "$ceiling"
  "$wharf" bench load "http://127.0.0.1:$port/redox" --token "$token" --body-bytes 2048 \
    --concurrency "$concurrency" --duration "${seconds}s" --warmup 2s >> "$acks"
  echo "round $round done" >&2
done
kept=$(RUST_LOG=warn "$wharf" destination inbox --config "$work/destination.toml" --json --limit 100000000 \
  | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')

python3 - "$ceiling" "$acks" "$kept" <<'PY'
import json, statistics, sys
def load(path):
    return [json.loads(line) for line in open(path) if line.strip()]
ceiling, acks, kept = load(sys.argv[1]), load(sys.argv[2]), int(sys.argv[3])
def med(rows, key):
    return statistics.median(r[key] for r in rows)
# The load is a closed loop, so the mean latency is the concurrency over the rate (Little's
# law); p99 over that mean shows how much of p99 is the rate and how much the tail.
def p99_over_mean(rows):
    return statistics.median(r['p99_ms'] / (1000 * r['concurrency'] / r['per_second']) for r in rows)
print(f"{'route':<34}{'req/s (median)':>16}{'p50 ms':>10}{'p99 ms':>10}{'p99/mean':>10}{'errors':>8}")
for name, rows in (("GET /healthz (ceiling)", ceiling), ("POST /redox 2 KB (durable ack)", acks)):
    print(f"{name:<34}{med(rows,'per_second'):>16.0f}{med(rows,'p50_ms'):>10.2f}{med(rows,'p99_ms'):>10.2f}{p99_over_mean(rows):>10.2f}{sum(r['errors'] for r in rows):>8}")
ratio = med(acks, 'per_second') / med(ceiling, 'per_second')
print(f"durable acks / ceiling = {ratio:.1%} (goal >= 50%); ack p99 = {med(acks,'p99_ms'):.2f} ms (goal <= 10 ms)")
print("per round (ceiling, acks):", [r['per_second'] for r in ceiling], [r['per_second'] for r in acks])
acked = sum(r['ok'] for r in acks)
print(f"messages in the inbox after the run: {kept} (measured acks: {acked}; warm-up acks are kept too)")
PY
