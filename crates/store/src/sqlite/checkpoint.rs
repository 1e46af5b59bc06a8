//! WAL checkpointing that does not stall the group-commit writer.
//!
//! SQLite's automatic checkpoint runs inside the commit that crosses the threshold, so every
//! request waiting on that commit waits for the checkpoint too (measured: p99 13 ms against
//! 4 ms without it). Instead the writer's connection has automatic checkpoints off, and:
//!
//! * a **checkpointer thread** with its own connection runs a PASSIVE checkpoint (which never
//!   blocks the writer) every [`INTERVAL`] while commits arrive, copying WAL pages into the
//!   database file in the background;
//! * under continuous writes a PASSIVE checkpoint never catches up with the WAL's tail, so the
//!   WAL would grow without end (measured: 226 MB after 9 s of load). When the WAL passes
//!   the reset size (`WriterOptions::wal_reset_bytes`, 512 MiB by default), the checkpointer
//!   copies again without pausing until a run finds little new, then asks the **writer** to
//!   run a RESTART checkpoint between two batches. Only the last few frames are left to copy,
//!   and the WAL starts again from its beginning, reusing the file instead of growing it.
//!   The pause is mostly one sync of the database file: SQLite syncs it in a checkpoint only when
//!   the checkpoint reached the WAL's end, which a PASSIVE run under continuous writes never does,
//!   so the RESTART syncs every page copied since the last one (measured 4-93 ms with a 128 MiB
//!   reset size, about once a second at full load on the benchmark machine; 4-146 ms every 3 s or
//!   so with 512 MiB). The pause falls on every request in flight, so fewer, longer pauses touch
//!   fewer requests: the larger default cut the benchmark's p99 by about a third. Syncing the
//!   database file from the checkpointer after each run cut the pause to 4-5 ms but raised p99 (its
//!   flushes delayed the WAL's commits instead), and neither starting the file's writeback early
//!   (`sync_file_range` after each run) nor syncing it just before asking for the restart lowered
//!   p99, so none of those is done (`docs/experiments/destination-p99.md`). Each restart's
//!   pause is logged at `debug`;
//! * the checkpointer runs at the lowest CPU priority (`priority`), so its copying waits for
//!   idle CPU instead of taking turns from the writer. On a machine saturated for long it may
//!   then never catch up; once the WAL passes [`BEHIND_FACTOR`] times the reset size, the
//!   writer is asked to RESTART anyway and copies the rest itself (one long pause instead of a
//!   WAL that grows without end).

use rusqlite::Connection;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// How often the checkpointer runs while commits keep arriving.
pub const INTERVAL: Duration = Duration::from_millis(200);

/// Pages not yet copied below which the checkpointer counts as caught up.
pub const CAUGHT_UP_BYTES: i64 = 1024 * 1024;
/// How many times the reset size the WAL may reach before the writer restarts it even though
/// the checkpointer has not caught up.
pub const BEHIND_FACTOR: i64 = 4;

/// What the writer and the checkpointer share.
#[derive(Debug, Default)]
pub(crate) struct WalState {
    /// Held by whoever checkpoints, so the writer's RESTART waits for a PASSIVE run in progress
    /// to end instead of meeting it inside SQLite's busy handler, which sleeps in steps of
    /// whole milliseconds.
    checkpointing: std::sync::Mutex<()>,
    commits: AtomicU64,
    reset_wanted: AtomicBool,
    stopped: AtomicBool,
}

impl WalState {
    pub(crate) fn committed(&self) {
        self.commits.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn take_reset_request(&self) -> bool {
        self.reset_wanted.swap(false, Ordering::Relaxed)
    }

    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
    }
}

pub(crate) enum SpawnError {
    Sqlite(rusqlite::Error),
    Thread(std::io::Error),
}

/// Turns off automatic checkpoints on the writer's connection and starts the checkpointer on
/// `own`, a second connection to the same database.
pub(crate) fn spawn(
    name: &'static str,
    writer: &mut Connection,
    own: Connection,
    reset_bytes: i64,
) -> Result<Arc<WalState>, SpawnError> {
    writer
        .pragma_update(None, "wal_autocheckpoint", 0)
        .map_err(SpawnError::Sqlite)?;
    let page_size: i64 = own
        .pragma_query_value(None, "page_size", |r| r.get(0))
        .map_err(SpawnError::Sqlite)?;
    let state = Arc::new(WalState::default());
    let shared = state.clone();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || run(name, own, page_size, reset_bytes, &shared))
        .map_err(SpawnError::Thread)?;
    Ok(state)
}

fn run(name: &str, conn: Connection, page_size: i64, reset_bytes: i64, state: &WalState) {
    crate::priority::set_current_thread_nice(crate::priority::CHECKPOINTER_NICE, name);
    let mut seen = state.commits.load(Ordering::Relaxed);
    let mut catching_up = false;
    let mut last_frames = 0;
    while !state.stopped.load(Ordering::Relaxed) {
        if !catching_up {
            std::thread::sleep(INTERVAL);
        }
        let now = state.commits.load(Ordering::Relaxed);
        if now == seen && !catching_up {
            continue;
        }
        seen = now;
        // Columns: busy flag, frames in the WAL, frames copied into the database.
        let result = {
            let _turn = state
                .checkpointing
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
            })
        };
        match result {
            Ok((frames, copied)) if frames * page_size > reset_bytes => {
                // Frames the writer added while the previous run was copying. Copy again at
                // once until a run finds little new, so the writer's RESTART (which requests
                // wait on) has only that little to copy.
                let fresh = if frames >= last_frames {
                    frames - last_frames
                } else {
                    frames
                };
                last_frames = frames;
                let next = after_run(frames, copied, fresh, page_size, reset_bytes);
                catching_up = next.catching_up;
                if next.reset {
                    state.reset_wanted.store(true, Ordering::Relaxed);
                }
            }
            Ok((frames, _)) => {
                last_frames = frames;
                catching_up = false;
            }
            Err(e) => {
                catching_up = false;
                tracing::warn!(error = %e, "WAL checkpoint failed; will retry");
            }
        }
    }
}

/// What the checkpointer does after a run that found the WAL past the reset size.
#[derive(Debug, PartialEq)]
struct NextStep {
    /// Copy again at once instead of sleeping.
    catching_up: bool,
    /// Ask the writer to RESTART the WAL.
    reset: bool,
}

/// `frames` in the WAL, `copied` of them in the database, `fresh` added since the last run.
fn after_run(frames: i64, copied: i64, fresh: i64, page_size: i64, reset_bytes: i64) -> NextStep {
    let catching_up = copied < frames || fresh * page_size > CAUGHT_UP_BYTES;
    let far_behind = frames * page_size > BEHIND_FACTOR * reset_bytes;
    NextStep {
        catching_up,
        reset: !catching_up || far_behind,
    }
}

/// Run by the writer between batches: finish the checkpoint and make the next commit write
/// from the start of the WAL.
pub(crate) fn restart(conn: &Connection, state: &WalState) {
    let _turn = state
        .checkpointing
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let started = std::time::Instant::now();
    let result = conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(()));
    // Every request waiting for the writer waits this long; the log explains a latency spike.
    tracing::debug!(
        pause_ms = started.elapsed().as_secs_f64() * 1000.0,
        "WAL restarted"
    );
    if let Err(e) = result {
        tracing::warn!(error = %e, "WAL restart checkpoint failed; the WAL keeps growing until the next one");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: i64 = 4096;
    const RESET: i64 = 128 * 1024 * 1024;

    #[test]
    fn restarts_once_caught_up_and_when_far_behind() {
        let pages = |bytes: i64| bytes / PAGE;
        // Past the reset size, everything copied, little new: restart now.
        assert_eq!(
            after_run(pages(RESET) + 10, pages(RESET) + 10, 10, PAGE, RESET),
            NextStep {
                catching_up: false,
                reset: true
            }
        );
        // Past the reset size but behind: copy again, no restart yet.
        assert_eq!(
            after_run(pages(2 * RESET), pages(RESET), pages(RESET), PAGE, RESET),
            NextStep {
                catching_up: true,
                reset: false
            }
        );
        // A checkpointer that never catches up (starved of CPU at nice 19): once the WAL is
        // BEHIND_FACTOR times the reset size, the writer restarts it anyway.
        let huge = pages(BEHIND_FACTOR * RESET) + 1;
        assert_eq!(
            after_run(huge, huge / 2, huge / 2, PAGE, RESET),
            NextStep {
                catching_up: true,
                reset: true
            }
        );
    }
}
