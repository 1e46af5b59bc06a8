#!/usr/bin/env python3
"""Per-thread CPU of a running destination server during one closed-loop load.

Usage: benches/experiments/thread_cpu.py SERVER_PID URL [seconds=8]

Runs `wharf bench load` against URL (with the benchmark's token and a 2,048-byte body unless
URL ends in /healthz), reads /proc/SERVER_PID/task/*/stat before and after the measured part,
and prints each server thread's CPU and context switches per answered request, the machine's
idle share and context switches per request (all processes), and the load generator's own CPU
per request (its whole run, warm-up included, divided by the requests
it made in all). Start the server as benches/destination.sh does (same token); WHARF_BIN
overrides target/release/wharf.
"""
import collections
import json
import os
import subprocess
import sys
import time

TOKEN = "bench-token-0123456789abcdef-0123456789abcdef"
WARMUP_S = 2


def threads(pid):
    """CPU ticks (user + system) and context switches (voluntary + not) per thread name of
    process `pid`."""
    ticks, switches = collections.Counter(), collections.Counter()
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = open(f"/proc/{pid}/task/{tid}/stat").read()
            status = open(f"/proc/{pid}/task/{tid}/status").read()
        except FileNotFoundError:  # the thread ended between listdir and open
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        ticks[name] += int(fields[11]) + int(fields[12])
        for line in status.splitlines():
            if "ctxt_switches:" in line:
                switches[name] += int(line.split()[1])
    return ticks, switches


def machine():
    """(idle + iowait ticks, all ticks, context switches) from /proc/stat."""
    lines = open("/proc/stat").read().splitlines()
    values = list(map(int, lines[0].split()[1:]))
    ctxt = next(int(line.split()[1]) for line in lines if line.startswith("ctxt "))
    return values[3] + values[4], sum(values), ctxt


def main():
    pid, url = sys.argv[1], sys.argv[2]
    seconds = int(sys.argv[3]) if len(sys.argv) > 3 else 8
    wharf = os.environ.get("WHARF_BIN", "target/release/wharf")
    tick = os.sysconf("SC_CLK_TCK")
    args = [wharf, "bench", "load", url, "--concurrency", "64",
            "--duration", f"{seconds}s", "--warmup", f"{WARMUP_S}s"]
    if not url.endswith("/healthz"):
        args += ["--token", TOKEN, "--body-bytes", "2048"]
    load = subprocess.Popen(args, stdout=subprocess.PIPE)
    time.sleep(WARMUP_S + 0.2)
    (before, sw_before), (idle0, total0, ctxt0) = threads(pid), machine()
    out = load.communicate()[0]
    (after, sw_after), (idle1, total1, ctxt1) = threads(pid), machine()
    result = json.loads(out)
    answered = result["ok"]
    print(f"{url}: {result['per_second']:.0f}/s, p50 {result['p50_ms']} ms, "
          f"p99 {result['p99_ms']} ms, machine idle {100 * (idle1 - idle0) / (total1 - total0):.1f} %, "
          f"{(ctxt1 - ctxt0) / answered:.2f} context switches per request")
    for name in sorted(after, key=lambda n: before.get(n, 0) - after[n]):
        cpu = (after[name] - before.get(name, 0)) / tick
        if cpu > 0:
            switches = (sw_after[name] - sw_before.get(name, 0)) / answered
            print(f"  {name:<20} {cpu:6.2f} s  {1e6 * cpu / answered:6.1f} us per request"
                  f"  {switches:5.2f} switches per request")
    spent = os.times()
    generator = spent.children_user + spent.children_system
    made = answered * (1 + WARMUP_S / seconds)  # the warm-up ran at about the same rate
    print(f"  load generator       {generator:6.2f} s  {1e6 * generator / made:6.1f} us per request")


if __name__ == "__main__":
    main()
