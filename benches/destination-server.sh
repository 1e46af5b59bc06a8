# Sourced by the destination benchmarks (benches/destination.sh,
# benches/experiments/restart_pauses.sh): builds the release binary and starts one destination
# server on a free port with a fresh data directory, the benchmark's token and one destination
# at /redox, then waits until it answers /healthz. Stops it (and removes what it made) on exit.
#
# Reads: WHARF_BENCH_BIN (a wharf binary to run instead of building this checkout's, to compare
# two builds alternately in one session), WHARF_BENCH_DATABASE_URL (PostgreSQL, in a schema of
# its own, dropped at the end), WHARF_BENCH_CONFIG (extra top-level keys),
# WHARF_BENCH_SERVER_ENV (variables for the server only), and from the caller server_rust_log
# (default "warn") and server_log_in_work (when set, the server's log goes to $work/server.log
# instead of the terminal).
# Sets: wharf (the binary), work (a temporary directory), port, token, server (its PID).

if [ -n "${WHARF_BENCH_BIN:-}" ]; then
  wharf=$WHARF_BENCH_BIN
else
  cargo build --release -p wharf --quiet
  wharf=target/release/wharf
fi
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
token=bench-token-0123456789abcdef-0123456789abcdef
database=""
cleanup_schema=""
if [ -n "${WHARF_BENCH_DATABASE_URL:-}" ]; then
  schema="bench_$(python3 -c 'import uuid; print(uuid.uuid4().hex[:12])')"
  psql "$WHARF_BENCH_DATABASE_URL" -q -c "CREATE SCHEMA $schema"
  cleanup_schema="psql \"$WHARF_BENCH_DATABASE_URL\" -q -c 'DROP SCHEMA $schema CASCADE'"
  case "$WHARF_BENCH_DATABASE_URL" in *\?*) sep='&' ;; *) sep='?' ;; esac
  database="database_url = \"${WHARF_BENCH_DATABASE_URL}${sep}options=-csearch_path%3D$schema\""
fi
cat > "$work/destination.toml" <<TOML
listen = "127.0.0.1:$port"
data_dir = "$work/data"
$database
${WHARF_BENCH_CONFIG:-}
[[destinations]]
name = "Bench"
path = "/redox"
environment = "Development"
verification_token = "$token"
TOML

server_log=/dev/stderr
if [ -n "${server_log_in_work:-}" ]; then server_log="$work/server.log"; fi
# shellcheck disable=SC2086 # word splitting of the NAME=value list is intended
env ${WHARF_BENCH_SERVER_ENV:-} RUST_LOG="${server_rust_log:-warn}" "$wharf" destination serve \
  --config "$work/destination.toml" 2>"$server_log" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$work"; eval "$cleanup_schema"' EXIT
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
