#!/usr/bin/env bash
# Upper bounds for the destination benchmark (issue 2): how far would the durable-ack ratio go
# if parts of the storage path cost nothing? Applies storage-bounds.patch (a throwaway patch that
# adds BOUND_* switches to the SQLite inbox, each of which gives up something the product must
# not: durability, the body, duplicate detection, storage itself, or SQLite for a bare segment
# file), runs benches/destination.sh once per variant, and reverts the patch. Not for production
# builds.
#
# Usage: benches/experiments/storage-bounds.sh [rounds=3] [seconds=6] [concurrency=64]
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-3}
seconds=${2:-6}
concurrency=${3:-64}
patch=benches/experiments/storage-bounds.patch
if ! git diff --quiet -- crates/store; then
  echo "crates/store has uncommitted changes; commit or stash them first" >&2
  exit 2
fi
git apply "$patch"
trap 'git apply -R "$patch"' EXIT
run() {
  echo "== $1" >&2
  env "${@:2}" benches/destination.sh "$rounds" "$seconds" "$concurrency" 2>/dev/null \
    | grep -E "durable acks / ceiling|per round"
}
run "product (synchronous=FULL, body, duplicate-key index)"
run "no body, no duplicate-key index (durable rows of metadata only)" BOUND_NO_BODY=1 BOUND_NO_DEDUP_INDEX=1
run "no fsync (synchronous=OFF; not durable)" BOUND_NO_FSYNC=1
run "tmpfs data directory (writes to memory; not durable)" TMPDIR=/dev/shm
run "no fsync, no body, no duplicate-key index" BOUND_NO_FSYNC=1 BOUND_NO_BODY=1 BOUND_NO_DEDUP_INDEX=1
run "append-only segment file + in-memory duplicate keys (one write + fdatasync per batch)" BOUND_SEGMENT=1
run "no storage at all (the writer answers without writing)" BOUND_NO_WRITE=1
