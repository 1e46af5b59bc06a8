#!/usr/bin/env python3
"""What held up the SQLite inbox writer: each gap between two committed batches longer than a
threshold, and what the writer was blocked in (docs/experiments/destination-p99.md).

Usage: benches/writer_stalls.py PERF_DATA SERVER_LOG WRITER_TID [THRESHOLD_MS=40]

Collect the inputs during a load (e.g. wrk at 64 connections) on a server started with
`RUST_LOG=warn,wharf_store=trace ... destination serve --log-format json 2>SERVER_LOG` (the
writer logs every committed batch at trace and every WAL restart's pause at debug), with
  perf record -e sched:sched_switch -g -p SERVER_PID -o PERF_DATA -- sleep 30
and WRITER_TID from `ps -L -o tid,comm -p SERVER_PID` (`inbox-writer`). For each gap it takes
the longest stretch between two of the writer's switch-outs inside the gap, and classifies the
kernel stack it left the CPU with. A gap while the writer waited on a futex means no request
reached it: the HTTP workers or the load generator were held up, not the storage.
"""
import collections
import datetime
import json
import re
import subprocess
import sys
import time

perf_data, log, writer = sys.argv[1], sys.argv[2], int(sys.argv[3])
threshold = float(sys.argv[4]) / 1000 if len(sys.argv) > 4 else 0.04
# perf's timestamps count from boot; the log's are wall-clock.
boot = time.time() - float(open("/proc/uptime").read().split()[0])

script = subprocess.run(["perf", "script", "-i", perf_data, "-F", "tid,time,trace,ip,sym"],
                        capture_output=True, text=True, check=True).stdout
switches = []  # (time, state, kernel symbols) of each switch-out of the writer
for block in script.split("\n\n"):
    lines = [l for l in block.strip().split("\n") if l.strip()]
    m = lines and re.match(r"\s*(\d+)\s+([\d.]+):\s+prev_comm=.* prev_state=(\S+)", lines[0])
    if m and int(m[1]) == writer:
        switches.append((float(m[2]), m[3], [l.split()[-1] for l in lines[1:]]))


def why(state, stack):
    s = " ".join(stack)
    if "fdatasync" in s or "fsync" in s:
        if "ext4_write_inode" in s:
            return "fdatasync: writing the file's inode, waits for its inode-table block's I/O"
        if "__filemap_fdatawait_range" in s:
            return "fdatasync: waits for pages already under writeback"
        if "fsync_buffers_list" in s:
            return "fdatasync: waits for the file's metadata buffers (a growing file)"
        if "blkdev_issue_flush" in s or "submit_bio_wait" in s:
            return "fdatasync: the device's cache flush"
        return "fdatasync: " + " <- ".join(stack[2:7])
    if "ext4_block_write_begin" in s:
        return "pwrite: waits for a block under writeback"
    if "futex" in s:
        return "idle: no request reached the writer (futex)"
    if state.startswith("R"):
        return "preempted: waiting for a CPU"
    return f"{state}: " + " <- ".join(stack[2:7])


commits, restarts = [], []
for line in open(log):
    try:
        r = json.loads(line)
    except ValueError:
        continue
    t = datetime.datetime.fromisoformat(r["timestamp"].replace("Z", "+00:00")).timestamp() - boot
    message = r.get("fields", {}).get("message")
    if message == "inbox batch committed":
        commits.append(t)
    elif message == "WAL restarted":
        restarts.append((t, r["fields"]["pause_ms"] / 1000))

total, count = collections.Counter(), collections.Counter()
first, last = switches[0][0], switches[-1][0]
for a, b in zip(commits, commits[1:]):
    if b - a < threshold or a < first or b > last:
        continue
    inside = [s for s in switches if a - 0.001 <= s[0] <= b]
    longest, at = max(((nxt[0] - cur[0], cur) for cur, nxt in zip(inside, inside[1:] + [(b,)])),
                      default=(0, None))
    # A restart's pause is the writer's RESTART checkpoint: SQLite syncs inbox.db in it.
    pause = max((p for t, p in restarts if a - 0.01 <= t <= b + 0.01), default=0)
    if pause > (b - a) / 2:
        reason = "WAL restart: the RESTART checkpoint syncs inbox.db"
    elif at is None:
        reason = "running (no switch-out recorded)"
    else:
        reason = why(at[1], at[2])
    total[reason] += b - a
    count[reason] += 1
    print(f"{a:.3f}: {1000 * (b - a):6.1f} ms without a commit (longest off-CPU {1000 * longest:5.1f} ms): {reason}")
print()
for reason, seconds in total.most_common():
    print(f"{count[reason]:3d} stalls, {1000 * seconds:6.0f} ms in all: {reason}")
