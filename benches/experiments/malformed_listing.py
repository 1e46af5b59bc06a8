#!/usr/bin/env python3
"""Times the status page's list of recent malformed messages on a large inbox, before and
after inbox migration 4 (usage: benches/experiments/malformed_listing.py ROWS). Builds the inbox with
Python's sqlite3 in the schema of migrations 1-3, so no server is needed."""
import os, re, sqlite3, sys, time, uuid
rows = int(sys.argv[1])
src = open(os.path.join(os.path.dirname(__file__), '../../crates/store/src/sqlite/mod.rs')).read()
i = src.index('pub const INBOX_MIGRATIONS'); j = src.index('\n];', i)
migs = re.findall(r'"((?:[^"\\]|\\.)*)"', src[i:j], re.S)
path = os.path.join(os.environ.get('TMPDIR', '/tmp'), 'malformed_listing.db')
for suffix in ('', '-wal', '-shm'):
    if os.path.exists(path + suffix): os.remove(path + suffix)
c = sqlite3.connect(path)
c.execute('PRAGMA journal_mode=WAL')
for m in migs[:3]: c.executescript(m)
body = b'{"Meta":{}}' + b' ' * 2037
with c:
    c.executemany("INSERT INTO inbox (message_id, destination, duplicate_key, kind, status, content_type, body, received_at, forwarded_at) VALUES (?, 'Bench', ?, 'data_model', 'forwarded', 'application/json', ?, 0, 0)",
                  ((str(uuid.uuid4()), str(uuid.uuid4()), body) for _ in range(rows)))
old = "SELECT id FROM inbox WHERE (?1 IS NULL OR status = ?1) ORDER BY id DESC LIMIT ?2"
new = "SELECT id FROM inbox WHERE (CAST(?1 AS TEXT) IS NULL OR destination = ?1) AND id > ?2 AND id < ?3 AND status = 'malformed' ORDER BY id DESC LIMIT ?4"
def timed(f):
    runs = []
    for _ in range(5):
        t = time.perf_counter(); f(); runs.append(time.perf_counter() - t)
    return sorted(runs)[2]
print(f"{rows} forwarded rows, no malformed ones")
print(f"before (status as a parameter, no index): median of 5 = {timed(lambda: c.execute(old, ('malformed', 20)).fetchall())*1000:.1f} ms")
t = time.perf_counter(); c.executescript(migs[3]); print(f"migration 4 (index build): {(time.perf_counter()-t)*1000:.0f} ms")
print(f"after: median of 5 = {timed(lambda: c.execute(new, (None, -2**63, 2**63-1, 20)).fetchall())*1000:.3f} ms")
print(c.execute("EXPLAIN QUERY PLAN " + new, (None, 0, 0, 20)).fetchall())
