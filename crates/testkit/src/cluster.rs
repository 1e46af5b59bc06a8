//! A private PostgreSQL cluster for outage tests: a server of the test's own, which it may
//! stop (SIGSTOP), kill (SIGKILL) and start again without disturbing any other test.
//!
//! [`PgCluster::init`] runs `initdb` in a temporary directory (trust authentication, superuser
//! `postgres`, no fsync: the data only has to survive the postmaster's death, not the
//! machine's), starts `postgres` on a free port of 127.0.0.1 with its socket in that directory,
//! waits until it accepts connections and creates the database `test`. [`PgCluster::url`]
//! names it. Then:
//!
//! * [`pause`](PgCluster::pause) / [`resume`](PgCluster::resume): SIGSTOP / SIGCONT the
//!   postmaster and every process it started (backends included, or the connections already
//!   open would keep working): a server that hangs, with its sockets open.
//! * [`kill`](PgCluster::kill): SIGKILL the postmaster and every process it started, and wait
//!   until they are gone: a crash. Connections see their sockets close.
//! * [`start`](PgCluster::start): start the postmaster again on the same data directory
//!   (crash recovery included) and wait until it accepts connections;
//!   [`spawn`](PgCluster::spawn) starts it without waiting, for a test that polls
//!   [`accepts_connections`](PgCluster::accepts_connections) itself to time what follows.
//! * Dropping it kills the server and removes the directory.
//!
//! The binaries are taken from `WHARF_TEST_PG_BIN` if set, else the newest
//! `/usr/lib/postgresql/<version>/bin` (Debian's layout), else `PATH`. `initdb` and `postgres`
//! refuse to run as root, so when the tests run as root (CI containers) both run as the
//! `postgres` user, which owns the directory. Without the binaries the test fails, saying how
//! to install them: a skipped outage test would look green while testing nothing.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a start may take (initdb excluded) before the test fails.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A PostgreSQL server of this test's own, on 127.0.0.1 (see the module's documentation).
pub struct PgCluster {
    bin: PathBuf,
    /// The temporary directory: `data/` (the cluster), `socket/`, `postgres.log`.
    dir: tempfile::TempDir,
    port: u16,
    /// The user the server runs as when the tests run as root: (uid, gid).
    owner: Option<(u32, u32)>,
    postmaster: Option<Child>,
}

impl std::fmt::Debug for PgCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgCluster")
            .field("dir", &self.dir.path())
            .field("port", &self.port)
            .field("pid", &self.postmaster.as_ref().map(Child::id))
            .finish()
    }
}

impl PgCluster {
    /// Creates a cluster in a fresh temporary directory, starts it and creates the database
    /// `test`. Panics, saying why, when PostgreSQL is not installed or does not start.
    pub fn init() -> PgCluster {
        let bin = binaries();
        let dir = tempfile::Builder::new()
            .prefix("wharf-pg-")
            .tempdir()
            .expect("a temporary directory for the cluster");
        let owner = if rustix::process::geteuid().is_root() {
            Some(postgres_user())
        } else {
            None
        };
        let socket = dir.path().join("socket");
        std::fs::create_dir(&socket).unwrap();
        if let Some((uid, gid)) = owner {
            for path in [dir.path(), socket.as_path()] {
                std::os::unix::fs::chown(path, Some(uid), Some(gid))
                    .unwrap_or_else(|e| panic!("cannot give {} to postgres: {e}", path.display()));
            }
        }
        let port = free_port();
        let mut cluster = PgCluster {
            bin,
            dir,
            port,
            owner,
            postmaster: None,
        };
        let output = cluster
            .command("initdb")
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "-N",
                "-D",
            ])
            .arg(cluster.data_dir())
            .output()
            .unwrap_or_else(|e| panic!("cannot run initdb in {}: {e}", cluster.bin.display()));
        assert!(
            output.status.success(),
            "initdb failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        cluster.start();
        cluster.sql("postgres", "CREATE DATABASE test");
        cluster
    }

    /// The database `test`, as the superuser `postgres` (trust authentication).
    pub fn url(&self) -> String {
        self.url_of("test")
    }

    fn url_of(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// The TCP port it listens on (the same across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The cluster's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The postmaster's process id. Panics when it is not running.
    pub fn pid(&self) -> u32 {
        self.postmaster
            .as_ref()
            .expect("the cluster is not running")
            .id()
    }

    /// Whether a postmaster started by this cluster is running (it may be paused).
    pub fn is_running(&self) -> bool {
        self.postmaster.is_some()
    }

    /// What the server logged so far (for a failing test's message).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    /// Starts the postmaster on the data directory and returns at once (it may still be
    /// recovering). Panics if one is already running.
    pub fn spawn(&mut self) {
        assert!(self.postmaster.is_none(), "the cluster is already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        if let Some((uid, gid)) = self.owner {
            // The log is written by the server's own process.
            let _ = std::os::unix::fs::chown(self.log_path(), Some(uid), Some(gid));
        }
        let child = self
            .command("postgres")
            .arg("-D")
            .arg(self.data_dir())
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-k")
            .arg(self.dir.path().join("socket"))
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=200",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start postgres in {}: {e}", self.bin.display()));
        self.postmaster = Some(child);
    }

    /// Starts the postmaster on the data directory (after [`kill`](Self::kill): with crash
    /// recovery) and waits until it accepts connections. Panics, with the server's log, if
    /// it does not within a minute.
    pub fn start(&mut self) {
        self.spawn();
        let deadline = Instant::now() + START_TIMEOUT;
        while !self.accepts_connections() {
            if let Some(child) = self.postmaster.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.postmaster = None;
                panic!("postgres exited ({status}) while starting:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "postgres did not accept connections within {START_TIMEOUT:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the server accepts a connection and answers a query now (1 s at most).
    pub fn accepts_connections(&self) -> bool {
        let url = self.url_of("postgres");
        run_client(url, |client| async move {
            client.simple_query("SELECT 1").await.is_ok()
        })
        .unwrap_or(false)
    }

    /// Stops the server in its tracks (SIGSTOP to the postmaster, then to every process it
    /// started): connections stay open and nothing answers.
    pub fn pause(&self) {
        let postmaster = self.pid();
        signal(postmaster, rustix::process::Signal::STOP);
        for child in descendants(postmaster) {
            signal(child, rustix::process::Signal::STOP);
        }
    }

    /// Lets a paused server carry on (SIGCONT to every process it started, then to itself).
    pub fn resume(&self) {
        let postmaster = self.pid();
        for child in descendants(postmaster) {
            signal(child, rustix::process::Signal::CONT);
        }
        signal(postmaster, rustix::process::Signal::CONT);
    }

    /// Kills the server as a crash would (SIGKILL to the postmaster and every process it
    /// started, paused or not), and waits until they are all gone, so it can be started again
    /// at once.
    pub fn kill(&mut self) {
        let Some(mut child) = self.postmaster.take() else {
            return;
        };
        let postmaster = child.id();
        let children = descendants(postmaster);
        signal(postmaster, rustix::process::Signal::KILL);
        for &pid in &children {
            signal(pid, rustix::process::Signal::KILL);
        }
        let _ = child.wait();
        // The children were reparented when the postmaster died; the new postmaster refuses to
        // start while one of them still holds the old shared memory.
        let deadline = Instant::now() + Duration::from_secs(10);
        while children.iter().any(|&pid| alive(pid)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Runs `sql` on `database` (test setup), panicking on failure.
    fn sql(&self, database: &str, sql: &str) {
        let sql = sql.to_owned();
        let result = run_client(self.url_of(database), |client| async move {
            client.batch_execute(&sql).await.map_err(|e| e.to_string())
        });
        match result {
            Some(Ok(())) => {}
            Some(Err(e)) => panic!("{e}"),
            None => panic!("cannot connect to the cluster:\n{}", self.log()),
        }
    }

    /// `program` from the binaries' directory, run as the cluster's owner from its directory.
    fn command(&self, program: &str) -> Command {
        use std::os::unix::process::CommandExt;
        let mut command = Command::new(self.bin.join(program));
        command.current_dir(self.dir.path());
        command.env_remove("PGDATA").env("LC_ALL", "C");
        if let Some((uid, gid)) = self.owner {
            command.uid(uid).gid(gid);
        }
        command
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Connects to `url` (1 s at most) on a thread with a runtime of its own (so this works from
/// sync and async tests alike) and runs `work`; `None` if the connection failed.
fn run_client<T, F>(
    url: String,
    work: impl FnOnce(tokio_postgres::Client) -> F + Send + 'static,
) -> Option<T>
where
    T: Send + 'static,
    F: std::future::Future<Output = T>,
{
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let connect = tokio_postgres::connect(&url, tokio_postgres::NoTls);
            let (client, connection) = tokio::time::timeout(Duration::from_secs(1), connect)
                .await
                .ok()?
                .ok()?;
            tokio::spawn(connection);
            tokio::time::timeout(Duration::from_secs(1), work(client))
                .await
                .ok()
        })
    })
    .join()
    .unwrap()
}

/// The directory of `initdb` and `postgres`.
fn binaries() -> PathBuf {
    if let Some(dir) = std::env::var_os("WHARF_TEST_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return bin;
    }
    if let Some(dir) = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .find(|dir| dir.join("initdb").exists())
    {
        return dir;
    }
    panic!(
        "this test starts a PostgreSQL server of its own and found no initdb: install PostgreSQL \
         (`apt-get install -y postgresql`) or point WHARF_TEST_PG_BIN at the directory holding \
         initdb and postgres"
    )
}

/// The `postgres` user's uid and gid, from /etc/passwd.
fn postgres_user() -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.len() > 3 && fields[0] == "postgres")
                .then(|| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
                .flatten()
        })
        .expect(
            "running as root, the cluster must run as the user `postgres` (initdb refuses root), \
             and there is none: install PostgreSQL's server package, or run the tests as another user",
        )
}

/// A port free on 127.0.0.1 now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn signal(pid: u32, signal: rustix::process::Signal) {
    if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
        // A process that is gone already is no failure.
        let _ = rustix::process::kill_process(pid, signal);
    }
}

/// Every process below `root` (children, their children...), from /proc.
fn descendants(root: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            Some((pid, parent_of(&entry.path())?))
        })
        .collect();
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parents
                .iter()
                .filter(|(_, p)| *p == parent)
                .map(|(pid, _)| *pid),
        );
        i += 1;
    }
    found.remove(0);
    found
}

/// The parent pid in `/proc/<pid>/stat` (after the command name, which may hold spaces).
fn parent_of(proc_dir: &Path) -> Option<u32> {
    let stat = std::fs::read_to_string(proc_dir.join("stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(1)?.parse().ok()
}

/// Whether `pid` exists and has not exited (a zombie has).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rfind(')')
            .and_then(|i| stat.get(i + 2..i + 3))
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}
