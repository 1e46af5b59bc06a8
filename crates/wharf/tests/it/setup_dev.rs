//! The README's set-up command (`scripts/setup-dev`) on a pretend machine: which install
//! commands each missing piece makes it issue, as root and as a user, and that a second run
//! issues none. The cases and their stand-ins are in `scripts/test-setup-dev`; this runs them
//! with the rest of the suite, so `cargo test` checks the set-up command too.

#[test]
fn setup_dev_installs_what_is_missing_and_nothing_twice() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/test-setup-dev");
    let out = std::process::Command::new("bash")
        .arg(script)
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Every case ran (a case list cut short by a typo would otherwise pass).
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("ok: ")).count(),
        10,
        "{stdout}"
    );
}
