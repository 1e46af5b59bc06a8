//! A small, real file system for the full-disk tests: a tmpfs of a given size mounted on a
//! fresh directory, grown while mounted (space returns), unmounted when dropped. Mounting
//! needs root (or CAP_SYS_ADMIN), as in CI; elsewhere [`SmallDisk::mount`] says SKIPPED and
//! gives `None`, so the test returns instead of passing without testing anything silently.

use std::path::{Path, PathBuf};

/// A tmpfs mounted on a directory, unmounted (lazily: a server may still hold its files) when
/// dropped.
pub struct SmallDisk {
    mount: PathBuf,
}

impl SmallDisk {
    /// Mounts a tmpfs of `size` (`"2m"`) on `at` (created), or `None` where mounting is not
    /// allowed.
    pub fn mount(at: &Path, size: &str) -> Option<SmallDisk> {
        let mount = at.to_owned();
        std::fs::create_dir_all(&mount).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&mount)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            eprintln!(
                "SKIPPED: cannot mount a tmpfs here (needs root); the real full-disk test did not run"
            );
            return None;
        }
        Some(SmallDisk { mount })
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        &self.mount
    }

    /// Grows (or shrinks) it while mounted.
    pub fn resize(&self, size: &str) {
        let status = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.mount)
            .status()
            .unwrap();
        assert!(status.success(), "remount failed");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.mount)
            .status();
    }
}
