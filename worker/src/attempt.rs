//! What a running attempt owns and must give back when it ends, however it ends: its blocking
//! thread, its background tasks and its local directory.
//!
//! It also owns its [`Progress`], which heartbeats carry to the coordinator: an attempt whose
//! progress stands still for the job's task timeout is hung, and the coordinator fails it.
//!
//! An attempt is cancelled by dropping its future (see [`crate::task`]). Dropping a future stops
//! it at its next `.await`, but it cannot stop a `spawn_blocking` closure, nor a task it spawned:
//! those run to the end unless told. So an attempt holds the [`DropGuard`] of a
//! [`CancellationToken`] that its blocking loops check, an [`AbortOnDropHandle`] for each task it
//! spawns (both from tokio-util), and an [`AttemptDir`] that removes its directory once nothing
//! uses it any more.
//!
//! [`DropGuard`]: tokio_util::sync::DropGuard
//! [`AbortOnDropHandle`]: tokio_util::task::AbortOnDropHandle

use quern_sdk::JobError;
use quern_sdk::engine::RecordSource;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use tokio_util::sync::CancellationToken;

/// Records a map reads between two looks at its cancellation token.
const RECORDS_PER_CHECK: u32 = 256;

/// The error a blocking loop returns when it sees its attempt's token cancelled.
pub fn cancelled() -> JobError {
    JobError::Io(std::io::Error::new(
        std::io::ErrorKind::Interrupted,
        "the attempt was cancelled",
    ))
}

/// How far an attempt has got: records and bytes, shared by its future, its blocking thread and
/// the heartbeat that reports it. Updated in batches, so the cost is one atomic add per batch.
#[derive(Debug, Default)]
pub struct Progress {
    records: AtomicU64,
    bytes: AtomicU64,
}

impl Progress {
    pub fn add(&self, records: u64, bytes: u64) {
        self.records.fetch_add(records, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Records and bytes so far.
    pub fn get(&self) -> (u64, u64) {
        (
            self.records.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }
}

/// A map's records that fail with [`cancelled`] once the attempt is cancelled, so that a mapper
/// stops within a few records of it, and that count the attempt's [`Progress`] as they go.
pub struct CancellableRecords<L> {
    pub inner: L,
    cancel: CancellationToken,
    progress: Arc<Progress>,
    until_check: u32,
    /// Records, and their bytes, handed out since the last check.
    lines: u64,
    bytes: u64,
}

impl<L> CancellableRecords<L> {
    pub fn new(inner: L, cancel: CancellationToken, progress: Arc<Progress>) -> Self {
        CancellableRecords {
            inner,
            cancel,
            progress,
            until_check: 0,
            lines: 0,
            bytes: 0,
        }
    }
}

impl<L: RecordSource> RecordSource for CancellableRecords<L> {
    fn next_record(&mut self) -> Result<Option<(u64, &[u8])>, JobError> {
        if self.until_check == 0 {
            if self.cancel.is_cancelled() {
                return Err(cancelled());
            }
            let lines = std::mem::take(&mut self.lines);
            self.progress.add(lines, std::mem::take(&mut self.bytes));
            self.until_check = RECORDS_PER_CHECK;
        }
        self.until_check -= 1;
        let line = self.inner.next_record()?;
        if let Some((_, bytes)) = &line {
            self.lines += 1;
            self.bytes += bytes.len() as u64;
        }
        Ok(line)
    }
}

/// An attempt's local directory, shared (in an `Arc`) by the attempt's future and its blocking
/// thread; it is removed when the last of them lets go, unless [`AttemptDir::keep`] was called.
/// So a failed or cancelled attempt leaves nothing behind, and the directory is never removed
/// under a blocking thread that still writes to it.
pub struct AttemptDir {
    path: PathBuf,
    keep: AtomicBool,
}

impl AttemptDir {
    /// Creates `path` (and its parents).
    pub fn create(path: PathBuf) -> std::io::Result<Arc<AttemptDir>> {
        std::fs::create_dir_all(&path)?;
        Ok(Arc::new(AttemptDir {
            path,
            keep: AtomicBool::new(false),
        }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Leaves the directory in place: it holds a map output that the shuffle now serves.
    pub fn keep(&self) {
        self.keep.store(true, Ordering::Relaxed);
    }
}

impl Drop for AttemptDir {
    fn drop(&mut self) {
        if self.keep.load(Ordering::Relaxed) {
            return;
        }
        let path = std::mem::take(&mut self.path);
        let remove = move || match std::fs::remove_dir_all(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(dir = %path.display(), error = %e, "cannot remove an attempt's directory")
            }
        };
        // Off the async threads: a slow disk must not stall the runtime.
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(remove)),
            Err(_) => remove(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::wait_until_gone;

    #[tokio::test]
    async fn an_attempt_dir_goes_when_its_last_holder_does_unless_kept() {
        let work = tempfile::tempdir().unwrap();
        let dir = AttemptDir::create(work.path().join("job/map-00000-1")).unwrap();
        std::fs::write(dir.path().join("spill-0"), b"data").unwrap();
        let other = dir.clone();
        drop(dir);
        assert!(work.path().join("job/map-00000-1/spill-0").exists());
        drop(other);
        wait_until_gone(&work.path().join("job/map-00000-1")).await;

        let kept = AttemptDir::create(work.path().join("job/map-00001-2")).unwrap();
        kept.keep();
        drop(kept);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert!(work.path().join("job/map-00001-2").is_dir());
    }

    #[test]
    fn cancellable_records_count_progress_and_stop_soon_after_the_flag() {
        struct Endless(Vec<u8>);
        impl RecordSource for Endless {
            fn next_record(&mut self) -> Result<Option<(u64, &[u8])>, JobError> {
                Ok(Some((0, &self.0)))
            }
        }
        let cancel = CancellationToken::new();
        let progress = Arc::new(Progress::default());
        let mut lines =
            CancellableRecords::new(Endless(b"xy".to_vec()), cancel.clone(), progress.clone());
        for _ in 0..1000 {
            assert!(lines.next_record().is_ok());
        }
        // Counted at each check, every RECORDS_PER_CHECK records: 768 of the 1000 so far.
        let counted = 3 * u64::from(RECORDS_PER_CHECK);
        assert_eq!(progress.get(), (counted, 2 * counted));
        drop(cancel.clone().drop_guard());
        let read = (0..=RECORDS_PER_CHECK)
            .take_while(|_| lines.next_record().is_ok())
            .count();
        assert!(read < RECORDS_PER_CHECK as usize + 1, "read {read} lines");
        assert!(lines.next_record().is_err());
    }
}
