#!/usr/bin/env python3
"""Engine benchmark (issue 27): each goal beside a ceiling measured in the same run.

Usage: benches/engine.py [--rounds N] [--backend sqlite|postgres|both] [--bin target/release/wharf]

Everything runs on this machine over real sockets:
  * the sink is nginx (not Wharf): it answers 200 to every POST, echoes the GET challenge of
    Verify and Save, counts requests (stub_status) and logs each one's arrival ($msec $uri);
  * the sources are `wharf bench load` (closed loop, or open loop with --rate), the same
    generator that drives the ceilings;
  * the engine is `wharf engine serve` on a fresh data directory (SQLite) or a fresh schema
    (PostgreSQL at $WHARF_BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/test).

Per round and backend it measures, in this order (every destination gets its own path, so the
nginx log tells whose delivery each line is, and per destination the k-th delivery is the k-th
message sent to it: the queue is first in, first out):
  1. ceiling: the destination server's durable acks, 64 connections, ~2 KiB (same backend);
     ingestion: the engine at 64 connections, each message to one of 100 destinations.
  2. one destination, 64 connections for 10 s: accepted/s, delivered by the time ingestion
     stopped, end to end (first request to last delivery), order of arrival at the sink.
  3. backlog: 20,000 queued behind a paused queue, resumed: drain rate; ceiling: one serial
     client POSTing the same bodies to the same nginx.
  4. fan-out: each message to 50 destinations: deliveries/s end to end.
  5. latency, open loop: 500/s and 1,000/s to one destination, 5,000/s across 100: due time at
     the source to arrival at nginx, p50/p99/max, delivered vs offered.
  6. memory and disk: 200,000 messages queued across 100 paused destinations, then drained;
     peak RSS (VmHWM) of the engine over the whole run; store size against the bodies' bytes.
Results: a table on stdout and JSON lines in target/bench/engine-*.jsonl.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BODY = 2048
MANAGEMENT_KEY = "bench-management-key-" + uuid.uuid4().hex
SOURCE_KEY = "bench-source-key-" + uuid.uuid4().hex
TOKEN = "bench-verification-token-" + uuid.uuid4().hex
MASTER_KEY = os.urandom(32).hex()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_http(url, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except Exception:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not answer within {timeout} s")


class Nginx:
    def __init__(self, work):
        self.dir = os.path.join(work, "nginx")
        os.makedirs(os.path.join(self.dir, "logs"))
        self.port = free_port()
        self.log = os.path.join(self.dir, "logs", "deliveries.log")
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""
worker_processes 1;
daemon off;
pid {self.dir}/nginx.pid;
error_log {self.dir}/logs/error.log warn;
events {{ worker_connections 4096; }}
http {{
  log_format arrival '$msec $uri';
  access_log off;
  client_body_buffer_size 64k;
  client_body_temp_path {self.dir}/body;
  keepalive_requests 10000000;
  server {{
    listen 127.0.0.1:{self.port} reuseport backlog=4096;
    location = /status {{ stub_status; }}
    location / {{
      access_log {self.log} arrival buffer=256k flush=1s;
      if ($arg_challenge) {{ return 200 $arg_challenge; }}
      return 200 '';
    }}
    location /ceiling {{ return 200 ''; }}
  }}
}}
""")
        self.proc = subprocess.Popen(["nginx", "-c", conf, "-p", self.dir],
                                     stderr=subprocess.DEVNULL)
        wait_http(f"http://127.0.0.1:{self.port}/status")

    polls = 0

    def requests(self):
        """Requests nginx served that were not these polls of its status (each counts
        itself)."""
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.port}/status").read().decode()
        self.polls += 1
        return int(text.splitlines()[2].split()[2]) - self.polls

    def arrivals(self, since):
        """(arrival seconds, uri) of every logged delivery at or after `since` (epoch s)."""
        time.sleep(1.2)  # the log's buffer is flushed every second
        out = []
        with open(self.log) as f:
            for line in f:
                at, uri = line.split()
                if float(at) >= since:
                    out.append((float(at), uri))
        return out

    def stop(self):
        self.proc.send_signal(signal.SIGQUIT)
        self.proc.wait()


class Bench:
    def __init__(self, wharf, work, backend, database_url):
        self.wharf, self.work, self.backend = wharf, work, backend
        self.database_url = database_url
        self.schema = None

    # -- the load generator --------------------------------------------------------------
    def load(self, url, concurrency, token=None, duration="10s", messages=None, rate=None,
             destinations=(), fan_out=False, send_log=None, body=BODY, warmup="2s"):
        cmd = [self.wharf, "bench", "load", url, "--concurrency", str(concurrency),
               "--duration", duration, "--warmup", warmup, "--body-bytes", str(body)]
        if token:
            cmd += ["--token", token]
        if messages:
            cmd += ["--messages", str(messages)]
        if rate:
            cmd += ["--rate", str(rate)]
        if destinations:
            cmd += ["--destinations", ",".join(destinations)]
        if fan_out:
            cmd.append("--fan-out")
        if send_log:
            cmd += ["--send-log", send_log]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True,
                             env=dict(os.environ, RUST_LOG="warn")).stdout
        return json.loads(out.strip().splitlines()[-1])

    # -- PostgreSQL schemas ----------------------------------------------------------------
    def database(self):
        if self.backend != "postgres":
            return ""
        self.schema = "bench_" + uuid.uuid4().hex[:12]
        subprocess.run(["psql", self.database_url, "-q", "-c", f"CREATE SCHEMA {self.schema}"],
                       check=True)
        sep = "&" if "?" in self.database_url else "?"
        return (f'database_url = "{self.database_url}{sep}options=-csearch_path%3D'
                f'{self.schema}"\n')

    def drop_schema(self):
        if self.schema:
            subprocess.run(["psql", self.database_url, "-q", "-c",
                            f"DROP SCHEMA {self.schema} CASCADE"], check=True)
            self.schema = None

    def store_bytes(self, data_dir):
        if self.backend == "postgres":
            sql = (f"SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace n "
                   f"ON n.oid = c.relnamespace WHERE n.nspname = '{self.schema}' AND c.relkind = 'r'")
            out = subprocess.run(["psql", self.database_url, "-At", "-c", sql], check=True,
                                 capture_output=True, text=True).stdout.strip()
            return int(out or 0)
        # The database file only: the WAL is a journal, reused from its start once it passes
        # its reset size (reported apart, as wal_bytes).
        return os.path.getsize(os.path.join(data_dir, "engine.db"))

    def wal_bytes(self, data_dir):
        if self.backend == "postgres":
            return 0
        path = os.path.join(data_dir, "engine.db-wal")
        return os.path.getsize(path) if os.path.exists(path) else 0

    # -- the ceiling: the destination server's durable acks ----------------------------------
    def destination_ceiling(self):
        port = free_port()
        data = tempfile.mkdtemp(dir=self.work)
        conf = os.path.join(data, "destination.toml")
        with open(conf, "w") as f:
            f.write(f'listen = "127.0.0.1:{port}"\ndata_dir = "{data}/data"\n{self.database()}'
                    f'[[destinations]]\nname = "Bench"\npath = "/redox"\n'
                    f'environment = "Development"\nverification_token = "{TOKEN}"\n')
        proc = subprocess.Popen([self.wharf, "destination", "serve", "--config", conf],
                                env=dict(os.environ, RUST_LOG="warn"))
        try:
            wait_http(f"http://127.0.0.1:{port}/healthz")
            return self.load(f"http://127.0.0.1:{port}/redox", 64, token=TOKEN)
        finally:
            proc.terminate()
            proc.wait()
            self.drop_schema()

    # -- the engine --------------------------------------------------------------------------
    def start_engine(self):
        self.port = free_port()
        self.data = os.path.join(tempfile.mkdtemp(dir=self.work), "data")
        conf = os.path.join(self.work, "engine.toml")
        with open(conf, "w") as f:
            f.write(f'listen = "127.0.0.1:{self.port}"\ndata_dir = "{self.data}"\n'
                    f'{self.database()}api_keys = ["{MANAGEMENT_KEY}"]\n'
                    f'master_key = "{MASTER_KEY}"\nallow_private_endpoints = true\n'
                    f'rate_limit_requests = 0\n'
                    f'[[sources]]\nname = "bench"\napi_key = "{SOURCE_KEY}"\n')
        self.engine = subprocess.Popen([self.wharf, "engine", "serve", "--config", conf],
                                       env=dict(os.environ, RUST_LOG="warn"))
        wait_http(f"http://127.0.0.1:{self.port}/healthz")

    def stop_engine(self):
        self.engine.terminate()
        self.engine.wait()
        self.drop_schema()

    def peak_rss_mib(self):
        with open(f"/proc/{self.engine.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024

    def api(self, method, path, body=None):
        data = json.dumps({"payload": body}).encode() if body is not None else None
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/platform/v1{path}",
                                     data=data, method=method)
        req.add_header("authorization", f"Bearer {MANAGEMENT_KEY}")
        req.add_header("content-type", "application/json")
        return json.loads(urllib.request.urlopen(req).read())["payload"]

    def destinations(self, nginx, count):
        org = self.api("GET", "/organizations")["organizations"][0]["id"]
        envs = self.api("GET", f"/organizations/{org}/environments")["environments"]
        dev = next(e["id"] for e in envs if e["environmentFlag"] == "Development")
        ids = []
        for i in range(count):
            d = self.api("POST", f"/environments/{dev}/destinations", {
                "name": f"sink {i}", "endpoint": f"http://127.0.0.1:{nginx.port}/d{i}",
                "verificationToken": TOKEN, "verificationMethod": "GET"})["destination"]
            self.api("POST", f"/destinations/{d['id']}/verify", {})
            ids.append(d["id"])
        return ids

    def pause(self, ids, paused):
        for i in ids:
            self.api("POST", f"/destinations/{i}/queue/{'pause' if paused else 'resume'}", {})

    def ingest_url(self):
        return f"http://127.0.0.1:{self.port}/endpoint"


def wait_delivered(nginx, target, timeout=600):
    """Polls nginx until it has served `target` requests (its own polls included); returns
    the time it got there."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if nginx.requests() >= target:
            return time.time()
        time.sleep(0.01)
    raise SystemExit(f"deliveries did not arrive within {timeout} s")


def latencies(arrivals, sends, index_to_path):
    """Matches the k-th arrival at each path with the k-th message sent to it."""
    by_path = {}
    for at, uri in arrivals:
        by_path.setdefault(uri, []).append(at)
    sent = {}
    for which, due_us, _done in sends:
        sent.setdefault(index_to_path[which], []).append(due_us / 1e6)
    out = []
    for path, dues in sent.items():
        got = by_path.get(path, [])
        for due, at in zip(dues, got):
            out.append((at - due) * 1000)
    return sorted(out)


def pct(values, p):
    if not values:
        return float("nan")
    return values[min(len(values) - 1, max(0, int(len(values) * p + 0.999999) - 1))]


def read_sends(path):
    with open(path) as f:
        return [tuple(int(x) for x in line.split()) for line in f]


def one_round(wharf, work, backend, database_url, phases=frozenset(range(1, 7))):
    b = Bench(wharf, work, backend, database_url)
    r = {"backend": backend, "date": time.strftime("%Y-%m-%d")}
    if 1 in phases:
        r["ceiling_destination_acks"] = b.destination_ceiling()["per_second"]
    nginx = Nginx(tempfile.mkdtemp(dir=work))
    b.start_engine()
    try:
        ids = b.destinations(nginx, 100)
        bodies = 0
        path = {i: f"/d{i}" for i in range(100)}

        if 1 in phases:
            # 1. ingestion, each message to one of 100 destinations.
            start = nginx.requests()
            res = b.load(b.ingest_url(), 64, token=SOURCE_KEY, destinations=ids)
            r["ingest_per_s"] = res["per_second"]
            r["ingest_errors"] = res["errors"]
            bodies += res["ok_total"]
            wait_delivered(nginx, start + res["ok_total"])

        r["peak_rss_mib_before_2"] = round(b.peak_rss_mib())
        if 2 in phases:
            # 2. one destination, 64 connections, 10 s.
            start = nginx.requests()
            t0 = time.time()
            res = b.load(b.ingest_url(), 64, token=SOURCE_KEY, destinations=[ids[0]], warmup="0s")
            stopped = nginx.requests() - start
            accepted = res["ok_total"]
            bodies += accepted
            done = wait_delivered(nginx, start + accepted)
            r["one_accepted_per_s"] = res["per_second"]
            r["one_delivered_while_ingesting"] = round(stopped / max(accepted, 1), 3)
            r["one_end_to_end_per_s"] = round(accepted / (done - t0))
            arrivals = [a for a in nginx.arrivals(t0) if a[1] == "/d0"]
            r["one_delivered"] = len(arrivals)

        r["peak_rss_mib_before_3"] = round(b.peak_rss_mib())
        if 3 in phases:
            # 3. backlog drain against one serial client to the same nginx.
            r["ceiling_serial_client"] = b.load(f"http://127.0.0.1:{nginx.port}/ceiling", 1,
                                                duration="5s")["per_second"]
            b.pause([ids[1]], True)
            res = b.load(b.ingest_url(), 64, token=SOURCE_KEY, destinations=[ids[1]],
                         messages=20000)
            start = nginx.requests()
            t0 = time.time()
            b.pause([ids[1]], False)
            done = wait_delivered(nginx, start + res["ok"])
            bodies += res["ok"]
            r["drain_per_s"] = round(res["ok"] / (done - t0))

        r["peak_rss_mib_before_4"] = round(b.peak_rss_mib())
        if 4 in phases:
            # 4. fan-out x50.
            start = nginx.requests()
            t0 = time.time()
            res = b.load(b.ingest_url(), 16, token=SOURCE_KEY, destinations=ids[:50], fan_out=True,
                         messages=1000)
            done = wait_delivered(nginx, start + res["ok"] * 50)
            bodies += res["ok"]
            r["fanout_accepted_per_s"] = res["per_second"]
            r["fanout_deliveries_per_s"] = round(res["ok"] * 50 / (done - t0))

        r["peak_rss_mib_before_5"] = round(b.peak_rss_mib())
        if 5 in phases:
            # 5. latency, open loop.
            for name, rate, targets in (("lat500", 500, ids[2:3]), ("lat1000", 1000, ids[3:4]),
                                        ("lat5000x100", 5000, ids)):
                send_log = os.path.join(work, f"{name}.sends")
                start = nginx.requests()
                t0 = time.time()
                res = b.load(b.ingest_url(), 64, token=SOURCE_KEY, destinations=targets, rate=rate,
                             duration="10s", warmup="0s", send_log=send_log)
                delivered_by_end = nginx.requests() - start
                wait_delivered(nginx, start + res["ok_total"])
                bodies += res["ok_total"]
                sends = read_sends(send_log)
                index_path = {k: path[ids.index(t)] for k, t in enumerate(targets)}
                lat = latencies(nginx.arrivals(t0), sends, index_path)
                r[name] = {"offered_per_s": rate, "accepted": res["ok"], "errors": res["errors"],
                           "delivered_within_run": round(delivered_by_end / max(res["ok_total"], 1), 3),
                           "p50_ms": round(pct(lat, 0.5), 2), "p99_ms": round(pct(lat, 0.99), 2),
                           "max_ms": round(lat[-1], 2) if lat else None,
                           "ingest_p99_ms": res["p99_ms"]}

        r["peak_rss_mib_before_6"] = round(b.peak_rss_mib())
        if 6 in phases:
            # 6. 200,000 queued across 100 destinations, then drained.
            b.pause(ids, True)
            res = b.load(b.ingest_url(), 64, token=SOURCE_KEY, destinations=ids, messages=200000)
            start = nginx.requests()
            t0 = time.time()
            b.pause(ids, False)
            done = wait_delivered(nginx, start + res["ok"], timeout=900)
            r["ingest_paused_per_s"] = res["per_second"]
            r["drain200k_per_s"] = round(res["ok"] / (done - t0))
            r["peak_rss_mib"] = round(b.peak_rss_mib())
            bodies += res["ok"]
            r["store_bytes"] = b.store_bytes(b.data)
            r["wal_bytes"] = b.wal_bytes(b.data)
            r["bodies_bytes"] = bodies * BODY
    finally:
        b.stop_engine()
        nginx.stop()
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--backend", default="both", choices=["sqlite", "postgres", "both"])
    ap.add_argument("--bin", default=None)
    ap.add_argument("--phases", default="1,2,3,4,5,6",
                    help="which of the measurements 1-6 to run (for profiling one of them)")
    args = ap.parse_args()
    if shutil.which("nginx") is None:
        raise SystemExit("nginx is needed: apt-get install -y nginx")
    wharf = args.bin
    if wharf is None:
        subprocess.run(["cargo", "build", "--release", "-p", "wharf", "--quiet"], cwd=ROOT,
                       check=True)
        wharf = os.path.join(ROOT, "target", "release", "wharf")
    database_url = os.environ.get("WHARF_BENCH_DATABASE_URL",
                                  "postgres://postgres@127.0.0.1:5432/test")
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    out_dir = os.path.join(ROOT, "target", "bench")
    os.makedirs(out_dir, exist_ok=True)
    results = {b: [] for b in backends}
    with tempfile.TemporaryDirectory() as work:
        for n in range(args.rounds):
            for backend in backends:
                r = one_round(wharf, work, backend, database_url,
                              frozenset(int(p) for p in args.phases.split(",")))
                results[backend].append(r)
                with open(os.path.join(out_dir, f"engine-{backend}.jsonl"), "a") as f:
                    f.write(json.dumps(r) + "\n")
                print(f"round {n + 1} {backend}: {json.dumps(r)}", file=sys.stderr)
    for backend, rows in results.items():
        report(backend, rows)


def report(backend, rows):
    def med(key, sub=None):
        vals = [((r.get(key) or {}).get(sub) if sub else r.get(key)) for r in rows]
        vals = [v for v in vals if v is not None]
        return statistics.median(vals) if vals else float("nan")
    body_bytes = med("bodies_bytes")
    print(f"\n## {backend}: median of {len(rows)} round(s), {rows[0]['date']}")
    print(f"{'goal':<58}{'Wharf':>12}{'ceiling/goal':>16}{'ratio':>8}")
    line = lambda name, v, c, ratio=True: print(
        f"{name:<58}{v:>12,.0f}{c:>16,.0f}{(v / c if ratio and c else float('nan')):>8.2f}")
    line("1. ingestion msgs/s, 64 conns, queues paused (ceiling: destination acks)",
         med("ingest_paused_per_s"), med("ceiling_destination_acks"))
    line("1. the same while delivering to 100 destinations", med("ingest_per_s"),
         med("ceiling_destination_acks"))
    line("2. one destination: end to end msgs/s (goal)", med("one_end_to_end_per_s"),
         3300 if backend == "sqlite" else 2200)
    print(f"{'2. one destination: accepted msgs/s':<58}{med('one_accepted_per_s'):>12,.0f}")
    print(f"{'2. delivered while ingesting (goal >= 0.25)':<58}"
          f"{med('one_delivered_while_ingesting'):>12.3f}")
    line("2. backlog drain msgs/s (ceiling: serial client) ", med("drain_per_s"),
         med("ceiling_serial_client"))
    line("3. fan-out x50 deliveries/s end to end (goal)", med("fanout_deliveries_per_s"),
         14000 if backend == "sqlite" else 7000)
    for name, goal in (("lat500", 5), ("lat1000", 5), ("lat5000x100", 20)):
        print(f"{'4. ' + name + ' p50 / p99 / max ms (goal p99 <= ' + str(goal) + ')':<58}"
              f"{med(name, 'p50_ms'):>8.2f} / {med(name, 'p99_ms'):.2f} / {med(name, 'max_ms'):.1f}"
              f"   delivered within run {med(name, 'delivered_within_run'):.3f}")
    line("5. peak RSS MiB (goal <= 200)", med("peak_rss_mib"), 200)
    line("5. 200k drain across 100 destinations msgs/s", med("drain200k_per_s"), 1, ratio=False)
    print(f"{'5. store bytes / bodies bytes (goal <= 1.5)':<58}"
          f"{med('store_bytes') / 1e6:>10,.0f}MB{body_bytes / 1e6:>14,.0f}MB"
          f"{med('store_bytes') / body_bytes if body_bytes else float('nan'):>8.2f}")
    print(f"{'5. SQLite WAL file after the run (MB)':<58}{med('wal_bytes') / 1e6:>10,.0f}MB")


if __name__ == "__main__":
    main()
