"""WAL bytes per message for the destination inbox's schema, with Python's sqlite3 (no server).

Usage: python3 benches/experiments/wal_bytes.py VARIANT PAGE_SIZE ROWS_BEFORE
  VARIANT: current (migration 1: unique index on destination + duplicate key; the product
           until migration 6), hash (an index on a 64-bit hash of the key instead), nodedup
           (no such index), keys (migration 6: no such index, the appended `inbox_keys`
           index the writer reads its map of duplicate keys from; the product now)
  Env BODY: body bytes (default 2048). Fills the inbox with ROWS_BEFORE messages with random
  keys, checkpoints, then commits 500 batches of 20 and reports the WAL they wrote.
Message ids are time-ordered (uuid1 here, UUID v7 in the product), duplicate keys random (v4).
The table is a copy of crates/store/src/sqlite/mod.rs INBOX_MIGRATIONS[0]; keep them alike.
"""
import sqlite3, os, uuid, time, sys
variant = sys.argv[1]; page = int(sys.argv[2]); n_pre = int(sys.argv[3])
path = f"/tmp/wal-bytes-db-{variant}-{page}.sqlite"
for s in ("", "-wal", "-shm"):
    try: os.remove(path+s)
    except FileNotFoundError: pass
c = sqlite3.connect(path, isolation_level=None)
c.execute(f"PRAGMA page_size={page}")
c.execute("PRAGMA journal_mode=WAL"); c.execute("PRAGMA synchronous=FULL"); c.execute("PRAGMA wal_autocheckpoint=0")
uniq = "UNIQUE (destination, duplicate_key)," if variant == "current" else ""
# Only the hash variant has the key_hash column (and its index); the others are migration 1.
hashed = variant == "hash"
extra = "CREATE INDEX inbox_key_hash ON inbox (key_hash);" if hashed else ""
if variant == "keys":
    extra = "CREATE INDEX inbox_keys ON inbox (id, destination, duplicate_key);"
c.executescript(f"""CREATE TABLE inbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT, message_id TEXT NOT NULL UNIQUE, destination TEXT NOT NULL,
        duplicate_key TEXT NOT NULL, kind TEXT NOT NULL, status TEXT NOT NULL, data_model TEXT, event_type TEXT,
        log_id TEXT, content_type TEXT NOT NULL, body BLOB NOT NULL, malformed_reason TEXT, received_at INTEGER NOT NULL,
        forward_attempts INTEGER NOT NULL DEFAULT 0, {"key_hash INTEGER," if hashed else ""} last_error TEXT, forwarded_at INTEGER,
        {uniq} CHECK(1));
    CREATE INDEX inbox_pending ON inbox (destination, id) WHERE status = 'received';"""+extra)
body = os.urandom(1024).hex().encode()[:int(os.environ.get("BODY","2048"))]
def batch(k):
    c.execute("BEGIN IMMEDIATE")
    for _ in range(k):
        lid = str(uuid.uuid4())
        row = (str(uuid.uuid1()), "Bench", "log:"+lid, "data_model", "received", "PatientAdmin", "Arrival", lid, "application/json", body, 1)
        if hashed:
            c.execute("INSERT INTO inbox (message_id,destination,duplicate_key,kind,status,data_model,event_type,log_id,content_type,body,received_at,key_hash) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
              row + (hash(lid) & 0x7fffffffffffffff,))
        else:
            c.execute("INSERT OR IGNORE INTO inbox (message_id,destination,duplicate_key,kind,status,data_model,event_type,log_id,content_type,body,received_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)", row)
    c.execute("COMMIT")
for i in range(n_pre // 500): batch(500)
c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
t = time.perf_counter()
for i in range(500): batch(20)
dt = time.perf_counter() - t
wal = os.path.getsize(path+"-wal")
print(f"{variant} page={page} pre={n_pre}: WAL bytes/msg {wal/10000:.0f}  frames/commit {wal/(page+24)/500:.1f}  {dt/500*1000:.2f} ms/commit")
