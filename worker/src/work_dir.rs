//! A worker's default work directory, and the removal of those that crashed workers left.
//!
//! A worker without `--work-dir` works in a fresh `$TMPDIR/quern-worker/worker-XXXXXX/`, which
//! holds a `lock` file reading `quern worker PID` that the worker keeps locked (`flock`) for its
//! whole life. A worker that stops removes its own directory; one that is killed (SIGKILL, out of
//! memory) cannot, and its map outputs would pile up run after run. So a starting worker removes,
//! in the background, the directories beside its own whose lock nobody holds: the kernel drops a
//! process's locks when it dies, however it dies, so a lock that can be taken means a dead worker
//! (and, unlike a pid, cannot be fooled by pid reuse). Only what is provably a worker directory
//! is removed: a real directory (not a link) named `worker-…`, owned by this user, holding a
//! regular `lock` file with that content. Anything else in the base stays, and at most
//! [`MAX_SCANNED`] entries are looked at per start.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

/// The directory under `$TMPDIR` that holds workers' directories.
const BASE: &str = "quern-worker";
const PREFIX: &str = "worker-";
const LOCK: &str = "lock";
const LOCK_TEXT: &str = "quern worker ";
/// Entries of the base looked at when a worker starts, so a cluttered base cannot stall it.
const MAX_SCANNED: usize = 1000;

/// A worker's own temporary work directory: removed on drop, locked while it lives.
pub struct OwnWorkDir {
    // Dropped in order: the directory goes before its lock is released.
    dir: tempfile::TempDir,
    _lock: Option<File>,
}

impl OwnWorkDir {
    /// Creates a fresh work directory under `temp` (the system's temporary directory), and
    /// starts removing those of dead workers beside it. Where the shared base cannot be used
    /// (another user's, or a link), falls back to a plain temporary directory, unlocked.
    pub fn create(temp: &Path) -> std::io::Result<OwnWorkDir> {
        let base = temp.join(BASE);
        let shared = match Self::create_in(&base) {
            Ok(own) => return Ok(own),
            Err(e) => e,
        };
        let dir = tempfile::Builder::new()
            .prefix("quern-worker-")
            .tempdir_in(temp)?;
        tracing::warn!(base = %base.display(), error = %shared, "cannot use the shared base of work directories; those of crashed workers will not be removed");
        Ok(OwnWorkDir { dir, _lock: None })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    fn create_in(base: &Path) -> std::io::Result<OwnWorkDir> {
        // Not recursive: a missing temporary directory is the user's to fix, not ours to make.
        match std::fs::DirBuilder::new().mode(0o700).create(base) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
            _ => {}
        }
        if std::fs::symlink_metadata(base)?.file_type().is_symlink() {
            return Err(std::io::Error::other("it is a symbolic link"));
        }
        let dir = tempfile::Builder::new().prefix(PREFIX).tempdir_in(base)?;
        let mut lock = File::create_new(dir.path().join(LOCK))?;
        // Locked before it says whose it is: a lock file with content is always a locked one
        // while its worker lives.
        lock.try_lock()?;
        writeln!(lock, "{LOCK_TEXT}{}", std::process::id())?;
        let owner = lock.metadata()?.uid();
        // Only in a base of our own: others' directories are not ours to judge.
        if std::fs::symlink_metadata(base)?.uid() == owner {
            let dead = dead_siblings(base, dir.path(), owner);
            if !dead.is_empty() {
                std::thread::spawn(move || {
                    for (dir, lock) in dead {
                        remove_dead(&dir, lock);
                    }
                });
            }
        }
        Ok(OwnWorkDir {
            dir,
            _lock: Some(lock),
        })
    }
}

/// The directories in `base`, other than `own`, of workers that died, each with its lock held.
fn dead_siblings(base: &Path, own: &Path, owner: u32) -> Vec<(PathBuf, File)> {
    let Ok(entries) = std::fs::read_dir(base) else {
        return Vec::new();
    };
    entries
        .take(MAX_SCANNED)
        .filter_map(Result::ok)
        .filter(|entry| {
            entry
                .file_name()
                .to_str()
                .is_some_and(|name| name.starts_with(PREFIX))
        })
        .map(|entry| entry.path())
        .filter(|path| path != own)
        .filter_map(|path| dead_lock(&path, owner).map(|lock| (path, lock)))
        .collect()
}

/// The lock of the worker directory `dir`, taken now; None unless `dir` provably is a worker
/// directory of `owner` and its worker is dead.
fn dead_lock(dir: &Path, owner: u32) -> Option<File> {
    // symlink_metadata: a link is not a directory here.
    let meta = std::fs::symlink_metadata(dir).ok()?;
    if !meta.is_dir() || meta.uid() != owner {
        return None;
    }
    let path = dir.join(LOCK);
    let meta = std::fs::symlink_metadata(&path).ok()?;
    if !meta.is_file() || meta.uid() != owner || meta.len() > 64 {
        return None;
    }
    let mut lock = File::open(&path).ok()?;
    let mut text = String::new();
    (&mut lock).take(64).read_to_string(&mut text).ok()?;
    let pid = text.strip_prefix(LOCK_TEXT)?.strip_suffix('\n')?;
    pid.parse::<u32>().ok()?;
    lock.try_lock().ok()?;
    Some(lock)
}

/// Removes a dead worker's directory, its lock file last, so that a removal cut short still
/// leaves a provable worker directory for the next worker to finish.
fn remove_dead(dir: &Path, lock: File) {
    let removed = (|| {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_name() == LOCK {
                continue;
            }
            // Never follows a link: a link is removed, not what it points to.
            if entry.file_type()?.is_dir() {
                std::fs::remove_dir_all(entry.path())?;
            } else {
                std::fs::remove_file(entry.path())?;
            }
        }
        std::fs::remove_file(dir.join(LOCK))?;
        std::fs::remove_dir(dir)
    })();
    drop(lock);
    match removed {
        Ok(()) => {
            tracing::info!(dir = %dir.display(), "removed the work directory of a worker that died")
        }
        // Another worker starting at the same moment removed it first.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot remove the work directory of a worker that died")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::wait_until_gone;

    /// A directory as a worker killed mid-job leaves it: map output and an unlocked lock.
    fn dead_worker_dir(base: &Path, name: &str) -> PathBuf {
        let dir = base.join(name);
        std::fs::create_dir_all(dir.join("job-1-0001/map-00000-1")).unwrap();
        std::fs::write(dir.join("job-1-0001/map-00000-1/output"), b"map output").unwrap();
        std::fs::write(dir.join(LOCK), "quern worker 4000000\n").unwrap();
        dir
    }

    #[tokio::test]
    async fn a_starting_worker_removes_dead_workers_directories_and_nothing_else() {
        let temp = tempfile::tempdir().unwrap();
        let base = temp.path().join(BASE);
        let live = OwnWorkDir::create(temp.path()).unwrap();
        assert!(live.path().starts_with(&base));
        let dead = [
            dead_worker_dir(&base, "worker-dead1"),
            dead_worker_dir(&base, "worker-dead2"),
        ];
        // Not provably a dead worker's directory.
        let no_lock = base.join("worker-nolock");
        std::fs::create_dir_all(no_lock.join("data")).unwrap();
        let odd_lock = dead_worker_dir(&base, "worker-oddlock");
        std::fs::write(odd_lock.join(LOCK), "my thesis\n").unwrap();
        let other_name = dead_worker_dir(&base, "notes");
        let elsewhere = dead_worker_dir(temp.path(), "elsewhere");
        std::os::unix::fs::symlink(&elsewhere, base.join("worker-link")).unwrap();
        std::fs::write(base.join("worker-file"), "a file").unwrap();

        let next = OwnWorkDir::create(temp.path()).unwrap();
        for dir in &dead {
            wait_until_gone(dir).await;
        }
        for kept in [&no_lock, &odd_lock, &other_name, &elsewhere] {
            assert!(kept.join("job-1-0001").exists() || kept.join("data").exists());
        }
        assert!(base.join("worker-link").exists() && base.join("worker-file").exists());
        // A live worker's directory stays, whoever starts.
        assert!(live.path().join(LOCK).is_file());
        let (live_path, next_path) = (live.path().to_path_buf(), next.path().to_path_buf());
        drop(live);
        drop(next);
        assert!(!live_path.exists() && !next_path.exists());
    }
}
