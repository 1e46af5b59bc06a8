#!/usr/bin/env python3
"""The disk's serial durable-append rate, the ceiling of benches/destination.sh's serial case.

Usage: benches/disk_ceiling.py DIRECTORY SECONDS [BYTES=2048] [append|overwrite]

Appends BYTES to a new file in DIRECTORY and fdatasyncs it, one after the other, for SECONDS
(as a serial sender waits for each durable acknowledgement before the next), then prints one
line `JSON {...}`: appends per second, the mean and p99 of one append + fdatasync, the p99 of
the fdatasync alone, and the mean time of everything else per append (the write() call and
the loop's own bookkeeping: a few microseconds against the fdatasync's hundreds, so Python is
not what limits the rate). The file is removed at the end.

`overwrite` writes over a file made and synced beforehand instead, so no fdatasync has to
journal a new file size: what SQLite's WAL does once it is reused from its start (the inbox
restarts it at `wal_reset_bytes`), and the cheaper of the two.
"""
import json
import os
import sys
import time

directory, seconds = sys.argv[1], float(sys.argv[2])
size = int(sys.argv[3]) if len(sys.argv) > 3 else 2048
mode = sys.argv[4] if len(sys.argv) > 4 else "append"
path = os.path.join(directory, "disk-ceiling.bin")
block = b"x" * size
if mode == "overwrite":
    # More than a 10 s run writes at the rates seen here (6,000 a second); the offset wraps
    # around if a run writes more.
    room = 256 << 20
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    chunk = b"\0" * (1 << 20)
    for _ in range(room >> 20):
        os.write(fd, chunk)
    os.fsync(fd)
    os.lseek(fd, 0, os.SEEK_SET)
else:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)
whole, syncs = [], []
clock = time.perf_counter
start = clock()
end = start + seconds
t0 = start
offset = 0
while t0 < end:
    if mode == "overwrite":
        os.pwrite(fd, block, offset)
        offset = (offset + size) % room
    else:
        os.write(fd, block)
    t1 = clock()
    os.fdatasync(fd)
    t2 = clock()
    whole.append(t2 - t0)
    syncs.append(t2 - t1)
    t0 = t2
elapsed = t0 - start
os.close(fd)
os.remove(path)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


print("JSON " + json.dumps({
    "requests": len(whole),
    "seconds": round(elapsed, 3),
    "per_second": round(len(whole) / elapsed, 1),
    "mean_ms": round(1000 * sum(whole) / len(whole), 3),
    "p99_ms": round(1000 * pct(whole, 99), 3),
    "fdatasync_p99_ms": round(1000 * pct(syncs, 99), 3),
    "besides_fdatasync_us": round(1e6 * (sum(whole) - sum(syncs)) / len(whole), 1),
}))
