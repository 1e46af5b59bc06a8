#!/usr/bin/env python3
"""Where a process's threads spend their time during a load: running, waiting for a CPU, or
neither (blocked on the disk, a lock or a channel).

Usage: benches/experiments/run_queue.py PID [seconds=5]

Reads /proc/PID/task/*/schedstat (time on a CPU, time runnable but waiting in a run queue)
before and after, and prints both per thread name as a share of one CPU. Meanwhile it samples
the state of the thread named `inbox-writer`, if there is one, every 0.5 ms (R running or
runnable, D waiting for the disk, S asleep, here waiting for work), and prints the machine's
CPU split from /proc/stat over the same time. Run it while a load is on, for example against
the server and the load generator of `benches/destination.sh` (docs/BENCHMARKS.md, "Where the
goal stands, and what p99 follows from").
"""
import collections
import os
import sys
import time

STAT_FIELDS = "user nice system idle iowait irq softirq steal".split()


def threads(pid):
    """(name, ns on a CPU, ns waiting in a run queue) per thread id of `pid`."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            name = open(f"/proc/{pid}/task/{tid}/comm").read().strip()
            on_cpu, waiting, _ = map(int, open(f"/proc/{pid}/task/{tid}/schedstat").read().split())
        except FileNotFoundError:  # the thread ended between listdir and open
            continue
        out[tid] = (name, on_cpu, waiting)
    return out


def machine():
    return [int(v) for v in open("/proc/stat").readline().split()[1 : 1 + len(STAT_FIELDS)]]


def main():
    pid = int(sys.argv[1])
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 5.0
    before, cpu_before, start = threads(pid), machine(), time.monotonic()
    writers = [tid for tid, (name, _, _) in before.items() if name == "inbox-writer"]
    states = collections.Counter()
    while time.monotonic() - start < seconds:
        for tid in writers:
            try:
                stat = open(f"/proc/{pid}/task/{tid}/stat").read()
            except FileNotFoundError:
                continue
            states[stat[stat.rindex(")") + 2]] += 1
        time.sleep(0.0005)
    after, cpu_after = threads(pid), machine()
    elapsed = time.monotonic() - start

    by_name = collections.defaultdict(lambda: [0, 0])
    for tid, (name, on_cpu, waiting) in after.items():
        if tid in before:
            by_name[name][0] += on_cpu - before[tid][1]
            by_name[name][1] += waiting - before[tid][2]
    print(f"{'thread':<18}{'on a CPU':>10}{'waiting for a CPU':>20}   (share of one CPU)")
    for name, (on_cpu, waiting) in sorted(by_name.items()):
        if on_cpu or waiting:
            print(f"{name:<18}{on_cpu / 1e9 / elapsed:>10.1%}{waiting / 1e9 / elapsed:>20.1%}")
    if states:
        total = sum(states.values())
        print("inbox-writer states:", ", ".join(f"{s} {n / total:.0%}" for s, n in states.most_common()))
    delta = [b - a for a, b in zip(cpu_before, cpu_after)]
    print("machine:", ", ".join(f"{n} {d / sum(delta):.1%}" for n, d in zip(STAT_FIELDS, delta)))


if __name__ == "__main__":
    main()
