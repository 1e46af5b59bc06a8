//! The SQLite inbox's duplicate keys, held in memory by the writer.
//!
//! A retry of a message already kept (same destination and duplicate key, docs/PROTOCOL.md
//! section 4) must be answered with the first copy's message id and not kept twice. A unique
//! index on `(destination, duplicate_key)` did that until inbox migration 6, but Redox's log
//! ids are random UUIDs, so every new message landed on a random page of that index: about 1.4
//! index pages (4 KB each) written to the WAL and checkpointed again per message, half of the
//! WAL's bytes, for an index only the writer ever read (`docs/experiments/destination-throughput.md`,
//! "Duplicate keys in memory").
//!
//! The writer is the only connection that inserts into the inbox, so it can know every key
//! itself: this map from a hash of (destination, duplicate key) to the row ids holding that
//! hash, filled from the `inbox_keys` index when the inbox opens (an index on `id` first, so
//! new entries are appended to it instead of scattered). The map is only a pointer: a hit is
//! always confirmed by reading the row, which makes hash collisions harmless and copes with
//! rows deleted behind the writer's back (`wharf destination inbox --discard` runs in another
//! process). What the map costs: about 40 bytes of memory per message in the inbox, and a scan
//! of `inbox_keys` when the inbox opens (`docs/OPERATIONS.md`).
//!
//! The hash is SipHash with a key drawn at start (std's `RandomState`), so senders cannot
//! choose keys that collide on purpose.

use rusqlite::{Connection, OptionalExtension, params};
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::{BuildHasher, Hasher, RandomState};

/// Row ids by the hash of their (destination, duplicate key).
pub(crate) struct DuplicateKeys {
    hasher: RandomState,
    /// The usual case: one row per hash.
    one: HashMap<u64, i64>,
    /// Hashes shared by more than one row (a collision, or a row deleted behind the writer's
    /// back and a new one kept since): every row id but the one in `one`.
    more: HashMap<u64, Vec<i64>>,
}

/// The key's hash, worked out once per message and used for every step of its lookup.
#[derive(Clone, Copy)]
pub(crate) struct KeyHash(u64);

/// A row found for a duplicate key.
pub(crate) struct Existing {
    pub id: i64,
    pub message_id: String,
}

impl DuplicateKeys {
    /// Reads every row's key from the inbox (through `inbox_keys`, which holds nothing else).
    pub(crate) fn load(conn: &Connection) -> rusqlite::Result<Self> {
        let mut keys = DuplicateKeys::empty();
        let mut stmt = conn.prepare(
            "SELECT id, destination, duplicate_key FROM inbox INDEXED BY inbox_keys ORDER BY id",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let id: i64 = row.get(0)?;
            let hash = keys.hash(row.get_ref(1)?.as_str()?, row.get_ref(2)?.as_str()?);
            keys.insert(hash, id);
        }
        Ok(keys)
    }

    fn empty() -> Self {
        DuplicateKeys {
            hasher: RandomState::new(),
            one: HashMap::new(),
            more: HashMap::new(),
        }
    }

    pub(crate) fn hash(&self, destination: &str, duplicate_key: &str) -> KeyHash {
        let mut h = self.hasher.build_hasher();
        // Length-prefixed, so ("ab", "c") and ("a", "bc") hash apart.
        h.write_usize(destination.len());
        h.write(destination.as_bytes());
        h.write(duplicate_key.as_bytes());
        KeyHash(h.finish())
    }

    /// The row already kept under (destination, duplicate key), read inside the writer's
    /// transaction (so rows this batch inserted count). Row ids the map holds for rows that
    /// are gone go to `gone`, for the caller to forget once its transaction has committed: a
    /// row this same transaction deleted comes back if it rolls back.
    pub(crate) fn find(
        &self,
        conn: &Connection,
        hash: KeyHash,
        destination: &str,
        duplicate_key: &str,
        gone: &mut Vec<(KeyHash, i64)>,
    ) -> rusqlite::Result<Option<Existing>> {
        let Some(&first) = self.one.get(&hash.0) else {
            return Ok(None);
        };
        let candidates =
            std::iter::once(first).chain(self.more.get(&hash.0).into_iter().flatten().copied());
        let mut read = conn.prepare_cached(
            "SELECT message_id, destination = ?2 AND duplicate_key = ?3 FROM inbox WHERE id = ?1",
        )?;
        for id in candidates {
            match read
                .query_row(params![id, destination, duplicate_key], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, bool>(1)?))
                })
                .optional()?
            {
                Some((message_id, true)) => return Ok(Some(Existing { id, message_id })),
                Some((_, false)) => {} // another key with the same hash
                None => gone.push((hash, id)),
            }
        }
        Ok(None)
    }

    /// Records that row `id` holds the key hashed to `hash`.
    pub(crate) fn insert(&mut self, hash: KeyHash, id: i64) {
        match self.one.entry(hash.0) {
            Entry::Vacant(slot) => {
                slot.insert(id);
            }
            Entry::Occupied(_) => self.more.entry(hash.0).or_default().push(id),
        }
    }

    /// Forgets that row `id` holds the key hashed to `hash` (deleted, or never committed).
    pub(crate) fn remove(&mut self, hash: KeyHash, id: i64) {
        let Entry::Occupied(mut first) = self.one.entry(hash.0) else {
            return;
        };
        let Entry::Occupied(mut rest) = self.more.entry(hash.0) else {
            if *first.get() == id {
                first.remove();
            }
            return;
        };
        if *first.get() == id {
            let ids = rest.get_mut();
            first.insert(ids.pop().expect("`more` holds no empty lists"));
        } else {
            rest.get_mut().retain(|&other| other != id);
        }
        if rest.get().is_empty() {
            rest.remove();
        }
    }

    /// How many rows the map points at.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.one.len() + self.more.values().map(Vec::len).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_sharing_a_hash_are_all_kept_and_removed_one_by_one() {
        let mut k = DuplicateKeys::empty();
        let h = KeyHash(7);
        k.insert(h, 1);
        k.insert(h, 2);
        k.insert(h, 3);
        assert_eq!(k.len(), 3);
        k.remove(h, 1); // the one in `one`: replaced from `more`
        assert_eq!(k.len(), 2);
        assert!(k.one.contains_key(&7));
        k.remove(h, 9); // not there: nothing changes
        assert_eq!(k.len(), 2);
        k.remove(h, 2);
        k.remove(h, 3);
        assert_eq!(k.len(), 0);
        assert!(k.more.is_empty(), "no empty lists are left behind");
    }

    #[test]
    fn destination_and_key_are_hashed_apart() {
        let k = DuplicateKeys::empty();
        assert_ne!(k.hash("ab", "c").0, k.hash("a", "bc").0);
        assert_eq!(k.hash("a", "bc").0, k.hash("a", "bc").0);
    }
}
