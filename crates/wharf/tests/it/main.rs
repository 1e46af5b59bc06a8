//! Integration tests of the `wharf` binary itself: configuration mistakes, Redox's side in
//! miniature (`verify`, `send`), the inbox listing, and crash safety under SIGKILL.

mod auth;
mod cli;
mod crash;
mod faults;
mod ops;
mod shared_database;
mod soak;
mod ssrf;
mod up;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

pub const TOKEN: &str = "cli-token-0123456789abcdef";

pub fn wharf() -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_wharf"));
    command.env_remove("RUST_LOG").kill_on_drop(true);
    command
}

pub async fn run(args: &[&str]) -> Output {
    wharf().args(args).output().await.unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Writes a destination config for one Development destination at `/redox`.
pub fn write_config(dir: &Path, port: u16, extra: &str) -> std::path::PathBuf {
    let path = dir.join("destination.toml");
    std::fs::write(
        &path,
        format!(
            "listen = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\n[[destinations]]\nname = \"Acme\"\npath = \"/redox\"\nenvironment = \"Development\"\nverification_token = \"{TOKEN}\"\n{extra}\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    path
}

/// Waits until the server at `addr` answers its health check.
pub async fn wait_healthy(addr: SocketAddr) {
    let client = reqwest::Client::new();
    for _ in 0..500 {
        if let Ok(r) = client.get(format!("http://{addr}/healthz")).send().await
            && r.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("server at {addr} did not become healthy");
}
