//! Private storage on disk: every SQLite database holds PHI (message bodies) or sealed secrets,
//! so its data directory is created `0700` and its files `0600`, and a server refuses to start
//! on a directory or file that other users of the machine could read, saying which `chmod`
//! fixes it. (A process-wide umask of `077` is set by the `wharf` binary as well; these checks
//! hold without it, for embedders and tests.)

use crate::StoreError;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Permission bits that let the group or other users in.
const SHARED_BITS: u32 = 0o077;

/// Creates `dir` (and missing parents) readable by its owner only, or checks that an existing
/// one is. An existing directory that is still empty (made by `mkdir` or a temporary-directory
/// helper under a looser umask) holds nothing yet, so it is narrowed to `0700` instead.
pub fn dir(dir: &Path) -> Result<(), StoreError> {
    let io = |source| StoreError::DataDir {
        path: dir.to_owned(),
        source,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io)?;
    let empty = std::fs::read_dir(dir).map_err(io)?.next().is_none();
    if empty {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
    }
    check(dir, "700")
}

/// Creates the database file `path` readable by its owner only (SQLite gives its `-wal` and
/// `-shm` files the database file's permissions), or checks that an existing one, and its
/// `-wal` and `-shm` files, are.
pub fn database_file(path: &Path) -> Result<(), StoreError> {
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(source) => {
            return Err(StoreError::DataDir {
                path: path.to_owned(),
                source,
            });
        }
    }
    check(path, "600")?;
    for suffix in ["-wal", "-shm"] {
        let mut companion = path.as_os_str().to_owned();
        companion.push(suffix);
        let companion = Path::new(&companion);
        if companion.exists() {
            check(companion, "600")?;
        }
    }
    Ok(())
}

/// Opening options for other files kept beside a database (lock files): owner only.
pub fn file_options() -> std::fs::OpenOptions {
    let mut options = std::fs::OpenOptions::new();
    options.mode(0o600);
    options
}

fn check(path: &Path, wanted: &'static str) -> Result<(), StoreError> {
    let metadata = std::fs::metadata(path).map_err(|source| StoreError::DataDir {
        path: path.to_owned(),
        source,
    })?;
    let mode = metadata.permissions().mode() & 0o777;
    if mode & SHARED_BITS != 0 {
        return Err(StoreError::Exposed {
            path: path.to_owned(),
            mode,
            wanted,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn directories_and_files_are_created_for_their_owner_only() {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("a/b");
        dir(&data).unwrap();
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&root.path().join("a")), 0o700);
        let db = data.join("x.db");
        database_file(&db).unwrap();
        assert_eq!(mode(&db), 0o600);
        // Opening again checks and keeps what is there.
        database_file(&db).unwrap();
        dir(&data).unwrap();
    }

    #[test]
    fn what_others_could_read_is_refused_with_the_fix() {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("data");
        std::fs::create_dir(&data).unwrap();
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
        // Empty: nothing to protect yet, so it is narrowed.
        dir(&data).unwrap();
        assert_eq!(mode(&data), 0o700);
        // Not empty: refused, with the fix.
        std::fs::write(data.join("engine.db"), b"").unwrap();
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
        let e = dir(&data).unwrap_err().to_string();
        assert!(e.contains("mode 755") && e.contains("chmod 700"), "{e}");
        std::fs::remove_file(data.join("engine.db")).unwrap();
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
        let db = data.join("x.db");
        std::fs::write(&db, b"").unwrap();
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = database_file(&db).unwrap_err().to_string();
        assert!(e.contains("mode 644") && e.contains("chmod 600"), "{e}");
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o600)).unwrap();
        let wal = data.join("x.db-wal");
        std::fs::write(&wal, b"").unwrap();
        std::fs::set_permissions(&wal, std::fs::Permissions::from_mode(0o640)).unwrap();
        let e = database_file(&db).unwrap_err().to_string();
        assert!(e.contains("x.db-wal"), "{e}");
    }
}
