//! The threads that run the engine's store operations ([`super::Engine::db`]).
//!
//! Store calls block (SQLite, and PostgreSQL through the store's own runtime), so they run off
//! the async threads. Why threads of our own instead of tokio's blocking pool: the engine has
//! two runtimes (the server's and the delivery worker's), each with its own pool, and a pool
//! starts a new thread whenever a call arrives before the previous call's thread is idle again.
//! Draining 100 queues, the engine reached 72 threads, each holding an allocator heap of its
//! own, and peak RSS went past 200 MiB (docs/experiments/engine-throughput.md, "Memory"). A
//! fixed set of [`THREADS`] threads, started on first use, keeps that bounded; callers beyond
//! them wait their turn in [`super::Engine::db`].

use super::EngineError;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};

/// Store operations that run at once.
pub(crate) const THREADS: usize = 8;

type Job = Box<dyn FnOnce() + Send>;

/// The store threads' queue. Dropping it ends them once their current job is done.
#[derive(Default)]
pub(crate) struct StoreThreads {
    jobs: OnceLock<Result<mpsc::Sender<Job>, EngineError>>,
}

impl StoreThreads {
    /// Runs `job` on a store thread. Fails only if the threads could not be started.
    pub(crate) fn run(&self, job: Job) -> Result<(), EngineError> {
        let jobs = self
            .jobs
            .get_or_init(start)
            .as_ref()
            .map_err(Clone::clone)?;
        jobs.send(job)
            .map_err(|_| EngineError::internal("the store threads have stopped"))
    }
}

fn start() -> Result<mpsc::Sender<Job>, EngineError> {
    let (tx, rx) = mpsc::channel::<Job>();
    let rx = Arc::new(Mutex::new(rx));
    for n in 0..THREADS {
        let rx = rx.clone();
        std::thread::Builder::new()
            .name(format!("wharf-store-{n}"))
            .spawn(move || serve(&rx))
            .map_err(|e| EngineError::internal(format!("could not start a store thread: {e}")))?;
    }
    Ok(tx)
}

fn serve(jobs: &Mutex<mpsc::Receiver<Job>>) {
    loop {
        let job = jobs.lock().unwrap_or_else(|p| p.into_inner()).recv();
        let Ok(job) = job else { return };
        // A panicking operation fails its caller (its answer channel is dropped), not the
        // thread: the pool keeps its size.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
    }
}
