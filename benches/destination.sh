#!/usr/bin/env bash
# The destination benchmark (issue 28): durable acknowledgements of ~2 KiB messages, each case
# against a ceiling measured in the same run, rounds alternating so the machine's noise hits
# both alike. Prints the table of docs/BENCHMARKS.md (medians of the rounds).
#
#   serial   one connection (what Redox's one-in-flight delivery gives a destination): acks/s
#            and p99, against the disk's serial 2 KiB append + fdatasync on the same
#            filesystem (benches/disk_ceiling.py; the same over a preallocated file, as SQLite's
#            reused WAL is written, is shown below the table); both as the machine is and with
#            every CPU kept busy at nice 19 ("CPUs kept busy", see the loop below)
#   64       64 connections: acks/s, mean and p99, against the same server's /healthz rate at
#            64 connections
#   pg       the same two on a server whose inbox is in PostgreSQL, against PostgreSQL's own
#            serial commit rate (pgbench: a one-row INSERT of 2 KiB + COMMIT on one connection)
#
# Usage: benches/destination.sh [--rounds 3] [--seconds 10] [--warmup 2] [--nice -5]
#                               [--postgres URL | --no-postgres]
# The servers, wrk and pgbench run at --nice (-5 by default, when permitted: root), so the
# builds other engineers run beside them at nice 0 take less of the CPUs from the measured
# processes and their ceilings alike; --nice 0 measures the machine as it is. (The inbox
# writer sets its own nice -10 and the checkpointer 19, crates/store/src/priority.rs.)
# PostgreSQL: --postgres URL, else WHARF_BENCH_DATABASE_URL, else
# postgres://postgres@127.0.0.1:5432/test when it answers; skipped when none does. The script
# works in a schema of its own there and drops it at the end.
# WHARF_BENCH_BIN=path runs that wharf binary instead of building this checkout's (release).
# WHARF_BENCH_CONFIG="key = value" adds top-level keys to the servers' configuration.
# Needs wrk, python3, curl; psql and pgbench for the PostgreSQL cases. Per-round figures go to
# $CARGO_TARGET_DIR (or target)/bench/destination-rounds.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=3 seconds=10 warmup=2 pg_url=${WHARF_BENCH_DATABASE_URL:-} pg=auto prio=-5
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --nice) prio=$2; shift 2 ;;
    --postgres) pg_url=$2; pg=yes; shift 2 ;;
    --no-postgres) pg=no; shift ;;
    *) echo "usage: $0 [--rounds N] [--seconds S] [--warmup S] [--nice N] [--postgres URL | --no-postgres]" >&2; exit 2 ;;
  esac
done
if [ "$pg" = auto ]; then
  pg_url=${pg_url:-postgres://postgres@127.0.0.1:5432/test}
  if psql "$pg_url" -qtAc 'SELECT 1' >/dev/null 2>&1; then pg=yes; else pg=no; fi
fi

target=${CARGO_TARGET_DIR:-target}
if [ -n "${WHARF_BENCH_BIN:-}" ]; then
  wharf=$WHARF_BENCH_BIN
else
  cargo build --release -p wharf --quiet
  wharf=$target/release/wharf
fi
out=$target/bench
mkdir -p "$out"
rows=$out/destination-rounds.jsonl
: > "$rows"

# A disk-backed directory: the ceiling must be measured on the filesystem the inbox is on
# (/tmp may be a tmpfs, where fdatasync costs nothing).
work=$(mktemp -d "${WHARF_BENCH_DIR:-/var/tmp}/wharf-bench.XXXXXX")
token=bench-token-0123456789abcdef-0123456789abcdef
servers=()
spinners=()
schema=""
cleanup() {
  for pid in "${spinners[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${servers[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  if [ -n "$schema" ]; then
    PGOPTIONS="-c client_min_messages=warning" psql "$pg_url" -q -c "DROP SCHEMA $schema CASCADE" || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# start_server NAME [DATABASE_LINE]: a destination server on a free port with a fresh data
# directory and one destination at /redox; sets $port.
start_server() {
  local name=$1 database=${2:-}
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  cat > "$work/$name.toml" <<TOML
listen = "127.0.0.1:$port"
data_dir = "$work/$name"
$database
${WHARF_BENCH_CONFIG:-}
[[destinations]]
name = "Bench"
path = "/redox"
environment = "Development"
verification_token = "$token"
TOML
  RUST_LOG=warn nice -n "$prio" "$wharf" destination serve --config "$work/$name.toml" 2>"$work/$name.log" &
  servers+=($!)
  for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "the $name server did not start:" >&2
  cat "$work/$name.log" >&2
  exit 1
}

start_server sqlite
sqlite_port=$port
if [ "$pg" = yes ]; then
  schema="bench_$(python3 -c 'import uuid; print(uuid.uuid4().hex[:12])')"
  psql "$pg_url" -q -c "CREATE SCHEMA $schema" \
    -c "CREATE TABLE $schema.commit_ceiling (id bigserial PRIMARY KEY, body text NOT NULL)"
  case "$pg_url" in *\?*) sep='&' ;; *) sep='?' ;; esac
  start_server postgres "database_url = \"${pg_url}${sep}options=-csearch_path%3D$schema\""
  pg_port=$port
  echo "INSERT INTO $schema.commit_ceiling (body) VALUES (repeat('x', 2048));" > "$work/commit.sql"
fi

# record ROUND CASE JSON: one line of the per-round file.
record() {
  python3 -c 'import json,sys; r=json.loads(sys.argv[3]); r.update(round=int(sys.argv[1]), case=sys.argv[2]); print(json.dumps(r))' \
    "$1" "$2" "$3" >> "$rows"
}

# load ROUND CASE CONNECTIONS URL ARGS...: wrk against URL (a warm-up, then the measured run).
load() {
  local round=$1 case=$2 connections=$3 url=$4
  shift 4
  local threads=2
  [ "$connections" -eq 1 ] && threads=1
  # The warm-up's acknowledgements are recorded too, for the count of kept messages at the end.
  if [ "$warmup" != 0 ]; then
    record "$round" "${case}_warmup" "$(nice -n "$prio" wrk -t"$threads" -c"$connections" -d"${warmup}s" \
      -s benches/destination.lua "$url" -- "$@" | sed -n 's/^JSON //p')"
  fi
  local base=${url%/*}
  curl -fs "$base/metrics" > "$work/metrics.before"
  local figures
  figures=$(nice -n "$prio" wrk -t"$threads" -c"$connections" -d"${seconds}s" --timeout 10s \
    -s benches/destination.lua "$url" -- "$@" | sed -n 's/^JSON //p')
  curl -fs "$base/metrics" > "$work/metrics.after"
  # The same requests as the server timed them (wharf_http_request_duration_seconds, from its
  # handler's start to its answer): a tail the server does not see is the machine's scheduling
  # of the load generator and of the HTTP workers, not the storage.
  record "$round" "$case" "$(python3 - "$work/metrics.before" "$work/metrics.after" "$figures" <<'PY'
import json, re, sys
def buckets(path):
    out, total = {}, {}
    for line in open(path):
        m = re.match(r'wharf_http_request_duration_seconds_(bucket|sum|count)\{(?:le="([^"]+)",)?route="destination"\} (\S+)', line)
        if m and m[1] == "bucket":
            out[float(m[2])] = float(m[3])
        elif m:
            total[m[1]] = float(m[3])
    return out, total
(b0, t0), (b1, t1) = buckets(sys.argv[1]), buckets(sys.argv[2])
r = json.loads(sys.argv[3])
n = t1.get("count", 0) - t0.get("count", 0)
if n > 0:
    r["server_mean_ms"] = round(1000 * (t1["sum"] - t0.get("sum", 0)) / n, 3)
    r["server_p99_le_ms"] = next(1000 * le for le in sorted(b1) if b1[le] - b0.get(le, 0) >= 0.99 * n)
print(json.dumps(r))
PY
)"
}

# pgbench's commits, with each transaction's latency logged for the p99.
commit_ceiling() {
  local round=$1
  (cd "$work" && rm -f pgbench_log.* && nice -n "$prio" pgbench -n -c1 -T "$seconds" -f commit.sql -l "$pg_url" >pgbench.out 2>&1)
  record "$round" pg_commit "$(python3 - "$work" <<'PY'
import glob, json, re, sys
work = sys.argv[1]
text = open(f"{work}/pgbench.out").read()
tps = float(re.search(r"tps = ([\d.]+)", text).group(1))
lat = sorted(int(line.split()[2]) for f in glob.glob(f"{work}/pgbench_log.*") for line in open(f))
print(json.dumps({"requests": len(lat), "per_second": tps, "mean_ms": sum(lat) / len(lat) / 1000,
                  "p99_ms": lat[min(len(lat) - 1, int(0.99 * len(lat)))] / 1000, "errors": 0}))
PY
)"
}

# One busy loop per CPU at the lowest priority (nice 19): the CPUs never idle, and anything
# else that wants one gets it at once.
spin_start() {
  for _ in $(seq "$(nproc)"); do
    nice -n 19 sh -c 'while :; do :; done' &
    spinners+=($!)
  done
}
spin_stop() {
  kill "${spinners[@]}" 2>/dev/null || true
  wait "${spinners[@]}" 2>/dev/null || true
  spinners=()
}

sqlite=http://127.0.0.1:$sqlite_port
for round in $(seq "$rounds"); do
  # The machine's load when the round starts: other work on the same CPUs shows here.
  record "$round" load "{\"loadavg_1m\": $(cut -d' ' -f1 /proc/loadavg)}"
  # The serial cases twice: as they are, and with every CPU kept busy by a loop at nice 19.
  # On the 2-vCPU machine of docs/BENCHMARKS.md a serial fdatasync loop ran 300/s as it was
  # and 4,200/s with such loops beside it: how soon a thread waiting for the disk runs again
  # depends on what else the CPUs do, so both the ceiling and Wharf are measured both ways.
  for spun in "" _busy; do
    [ -n "$spun" ] && spin_start
    # At the inbox writer's priority (nice -10 when permitted, crates/store/src/priority.rs),
    # so other work on the machine delays the ceiling's wake-ups no more than the writer's.
    for mode in append overwrite; do
      record "$round" "disk_$mode$spun" "$(nice -n -10 python3 benches/disk_ceiling.py "$work" "$seconds" 2048 "$mode" \
        2>/dev/null | sed -n 's/^JSON //p')"
    done
    load "$round" "sqlite_serial$spun" 1 "$sqlite/redox" post "$token" 2048
    [ -n "$spun" ] && spin_stop
  done
  load "$round" healthz_64 64 "$sqlite/healthz" get
  load "$round" sqlite_64 64 "$sqlite/redox" post "$token" 2048
  if [ "$pg" = yes ]; then
    commit_ceiling "$round"
    # And at 64 connections: what PostgreSQL's own group commit reaches with the same inserts.
    record "$round" pg_commit_64 "{\"per_second\": $(nice -n "$prio" pgbench -n -c64 -j2 -T "$seconds" -f "$work/commit.sql" "$pg_url" 2>/dev/null \
      | sed -n 's/^tps = \([0-9.]*\).*/\1/p')}"
    load "$round" pg_serial 1 "http://127.0.0.1:$pg_port/redox" post "$token" 2048
    load "$round" pg_64 64 "http://127.0.0.1:$pg_port/redox" post "$token" 2048
  fi
  echo "round $round of $rounds done" >&2
done
record 0 load "{\"loadavg_1m\": $(cut -d' ' -f1 /proc/loadavg)}"
# Nothing acknowledged may be missing: each server's count of kept messages (/metrics) against
# the 2xx answers wrk counted (a request cut off at a run's end may be kept unanswered).
kept() { curl -fs "http://127.0.0.1:$1/metrics" | awk '/^wharf_inbox_messages/ {n += $2} END {print n + 0}'; }
record 0 kept "{\"sqlite\": $(kept "$sqlite_port"), \"pg\": $([ "$pg" = yes ] && kept "$pg_port" || echo 0)}"

python3 - "$rows" "$rounds" "$seconds" <<'PY'
import json, statistics, sys
from collections import defaultdict
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
by = defaultdict(dict)
for r in rows:
    by[r["case"]][r["round"]] = r
rounds = sorted(by["disk_append"])
loads = [by["load"][n]["loadavg_1m"] for n in sorted(by["load"])]

def fig(case, key):
    return [by[case][n][key] for n in rounds]

def span(xs, fmt):
    if len(xs) == 1:
        return fmt(xs[0])
    return f"{fmt(min(xs))}-{fmt(max(xs))} (median {fmt(statistics.median(xs))})"

def rate(x): return f"{x:,.0f}"
def ms(x): return f"{x:.2f} ms"

def ratio(case, ceiling, key="per_second"):
    # Per round, then the median: each round's ceiling met the same machine as its figure.
    return statistics.median(by[case][n][key] / by[ceiling][n][key] for n in rounds)

table = [("case", "Wharf", "same-run ceiling", "ratio (goal)")]
for spun, how in (("", ""), ("_busy", ", CPUs kept busy")):
    table.append((f"serial (1 connection) durable acks/s{how}", span(fig("sqlite_serial" + spun, "per_second"), rate),
                  "serial 2 KiB append + fdatasync: " + span(fig("disk_append" + spun, "per_second"), rate),
                  f"{ratio('sqlite_serial' + spun, 'disk_append' + spun):.2f} (>= 0.8)"))
    table.append((f"serial p99{how}", span(fig("sqlite_serial" + spun, "p99_ms"), ms) + "; inside the server <= "
                  + span(fig("sqlite_serial" + spun, "server_p99_le_ms"), lambda x: f"{x:g} ms"),
                  "append + fdatasync p99: " + span(fig("disk_append" + spun, "p99_ms"), ms),
                  f"{ratio('sqlite_serial' + spun, 'disk_append' + spun, 'p99_ms'):.1f}x (p99 <= 2 ms)"))
table.append(("64 connections durable acks/s", span(fig("sqlite_64", "per_second"), rate),
              "the server's /healthz at 64: " + span(fig("healthz_64", "per_second"), rate),
              f"{ratio('sqlite_64', 'healthz_64'):.2f} (>= 0.40)"))
p99_mean = statistics.median(by["sqlite_64"][n]["p99_ms"] / by["sqlite_64"][n]["mean_ms"] for n in rounds)
table.append(("64 connections mean / p99", span(fig("sqlite_64", "mean_ms"), ms) + " / " + span(fig("sqlite_64", "p99_ms"), ms),
              "64 / rate: " + span([64000 / by["sqlite_64"][n]["per_second"] for n in rounds], ms)
              + "; inside the server: mean " + span(fig("sqlite_64", "server_mean_ms"), ms) + ", p99 <= "
              + span(fig("sqlite_64", "server_p99_le_ms"), lambda x: f"{x:g} ms"),
              f"p99 = {p99_mean:.1f}x mean (<= 4x)"))
if "pg_commit" in by:
    table.append(("PostgreSQL: serial durable acks/s", span(fig("pg_serial", "per_second"), rate),
                  "PostgreSQL's serial INSERT + COMMIT: " + span(fig("pg_commit", "per_second"), rate),
                  f"{ratio('pg_serial', 'pg_commit'):.2f} (>= 0.7)"))
    table.append(("PostgreSQL: serial p99", span(fig("pg_serial", "p99_ms"), ms),
                  "INSERT + COMMIT p99: " + span(fig("pg_commit", "p99_ms"), ms),
                  f"{ratio('pg_serial', 'pg_commit', 'p99_ms'):.1f}x"))
    table.append(("PostgreSQL: 64 connections durable acks/s", span(fig("pg_64", "per_second"), rate),
                  "PostgreSQL's serial INSERT + COMMIT (above)",
                  f"{ratio('pg_64', 'pg_commit'):.2f} (>= 0.7)"))
    table.append(("", "", "the same INSERT + COMMIT at 64 connections (pgbench -c64): "
                  + span(fig("pg_commit_64", "per_second"), rate), f"{ratio('pg_64', 'pg_commit_64'):.2f}"))
    pg_p99_mean = statistics.median(by["pg_64"][n]["p99_ms"] / by["pg_64"][n]["mean_ms"] for n in rounds)
    table.append(("PostgreSQL: 64 connections mean / p99", span(fig("pg_64", "mean_ms"), ms) + " / " + span(fig("pg_64", "p99_ms"), ms),
                  "inside the server: mean " + span(fig("pg_64", "server_mean_ms"), ms) + ", p99 <= "
                  + span(fig("pg_64", "server_p99_le_ms"), lambda x: f"{x:g} ms"),
                  f"p99 = {pg_p99_mean:.1f}x mean"))
print(f"{len(rounds)} rounds of {sys.argv[3]} s, alternating; figures: lowest-highest round (median); "
      f"ratios: median of the rounds' own ratios")
print("| " + " | ".join(table[0]) + " |")
print("|---|---|---|---|")
for row in table[1:]:
    print("| " + " | ".join(row) + " |")
errors = sum(r.get("errors", 0) + r.get("non_2xx", 0) for r in rows)
print(f"errors and non-2xx answers, all cases: {errors}")
for store, cases in (("sqlite", ("sqlite_serial", "sqlite_serial_busy", "sqlite_64")), ("pg", ("pg_serial", "pg_64"))):
    acked = sum(r["requests"] - r.get("non_2xx", 0) for r in rows
                if r["case"] in cases or r["case"] in [c + "_warmup" for c in cases])
    if acked:
        kept = by["kept"][0][store]
        print(f"{store}: {kept:,} messages kept, {acked:,} acknowledged"
              + ("" if kept >= acked else "  ** FEWER KEPT THAN ACKNOWLEDGED **"))
print("1-minute load average at each round's start and at the end (2 CPUs): "
      + ", ".join(f"{x:.1f}" for x in loads))
for mode in ("append", "overwrite", "append_busy", "overwrite_busy"):
    print(f"disk ceiling, {mode}: {span(fig('disk_' + mode, 'per_second'), rate)}/s, fdatasync alone p99 "
          f"{span(fig('disk_' + mode, 'fdatasync_p99_ms'), ms)}; everything else per write "
          f"{span(fig('disk_' + mode, 'besides_fdatasync_us'), lambda x: f'{x:.1f} us')}")
PY
