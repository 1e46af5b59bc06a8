#!/usr/bin/env bash
# Where the destination benchmark's p99 comes from: one closed-loop load of 2 KB messages at
# concurrency 64 against a fresh server started as benches/destination.sh starts it, then
#  * the load generator's figures (req/s, p50, p99, max),
#  * the server's own share of requests answered within 2, 4, 8, 16, 32 and 64 ms
#    (wharf_http_request_duration_seconds from /metrics: the time inside the server),
#  * every WAL restart's pause (the writer's `WAL restarted` debug log).
#
# Usage: benches/experiments/restart_pauses.sh [seconds=10]
# WHARF_BENCH_CONFIG, WHARF_BENCH_SERVER_ENV and WHARF_BENCH_DATABASE_URL as for
# benches/destination.sh, e.g.
#   WHARF_BENCH_CONFIG="wal_reset_bytes = 134217728" benches/experiments/restart_pauses.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-10}
server_rust_log=warn,wharf_store=debug
server_log_in_work=1
# shellcheck source=benches/destination-server.sh
source benches/destination-server.sh
"$wharf" bench load "http://127.0.0.1:$port/redox" --token "$token" --body-bytes 2048 \
  --concurrency 64 --duration "${seconds}s" --warmup 2s > "$work/load.json"
curl -fs "http://127.0.0.1:$port/metrics" > "$work/metrics"
python3 - "$work/load.json" "$work/metrics" "$work/server.log" <<'PY'
import json, re, sys
load = json.load(open(sys.argv[1]))
print(f"client: {load['per_second']:.0f} req/s, p50 {load['p50_ms']} ms, p99 {load['p99_ms']} ms, "
      f"max {load['max_ms']} ms, errors {load['errors']}")
buckets = {}
for line in open(sys.argv[2]):
    m = re.match(r'wharf_http_request_duration_seconds_bucket\{le="([^"]+)",route="destination"\} (\S+)', line)
    if m:
        buckets[m.group(1)] = float(m.group(2))
total = buckets["+Inf"]
shares = [f"<= {float(le) * 1000:g} ms {100 * buckets[le] / total:.2f} %"
          for le in ("0.002", "0.004", "0.008", "0.016", "0.032", "0.064")]
print("server: " + ", ".join(shares))
pauses = [float(m.group(1)) for m in re.finditer(r"WAL restarted pause_ms=([0-9.]+)", open(sys.argv[3]).read())]
print(f"WAL restarts: {len(pauses)}, pauses ms: " + " ".join(f"{p:.1f}" for p in pauses))
PY
