//! CPU priority of the store's own threads: the group-commit writer ahead, the WAL checkpointer
//! behind.
//!
//! Every durable acknowledgement waits for the writer's next commit, while the checkpointer's
//! work (copying WAL pages into the database file) can wait for idle CPU. On a busy machine the
//! scheduler otherwise shares the CPUs evenly, and a checkpoint burst that takes the writer's
//! turn delays every request in the batch by a whole time slice. Measured on the 2-core
//! benchmark machine (`docs/experiments/destination-throughput.md`, "Thread priorities"): ack
//! p99 12-15 ms with both at the default priority, 9-10 ms with the checkpointer at nice 19 and
//! the writer at nice -10.
//!
//! Lowering a thread's priority needs no privilege; raising one needs `CAP_SYS_NICE` (root,
//! or a container granted it), so without it the writer simply stays at the default. Neither
//! is an error: priority is a tuning, not a requirement.
//!
//! On Linux the nice value belongs to each thread, and `setpriority(PRIO_PROCESS, 0, ..)`
//! changes only the calling one. Elsewhere it would change the whole process, so there these
//! functions do nothing.

/// The writer's nice value when the process may raise priorities.
pub(crate) const WRITER_NICE: i32 = -10;
/// The checkpointer's nice value: the lowest there is.
pub(crate) const CHECKPOINTER_NICE: i32 = 19;

/// Sets the calling thread's nice value, and says whether it took effect.
pub(crate) fn set_current_thread_nice(nice: i32, thread: &str) -> bool {
    #[cfg(target_os = "linux")]
    {
        match rustix::process::setpriority_process(None, nice) {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!(thread, nice, error = %e, "could not change this thread's CPU priority; it keeps the default");
                false
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (nice, thread);
        false
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// Reads the calling thread's own nice value from procfs (field 19 of `stat`).
    fn own_nice() -> i32 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        after_name.split(' ').nth(16).unwrap().parse().unwrap()
    }

    #[test]
    fn lowers_only_the_calling_thread() {
        let before = own_nice();
        let lowered = std::thread::spawn(|| {
            assert!(set_current_thread_nice(CHECKPOINTER_NICE, "test"));
            own_nice()
        })
        .join()
        .unwrap();
        assert_eq!(lowered, CHECKPOINTER_NICE);
        assert_eq!(own_nice(), before, "the other threads keep their priority");
    }
}
