//! Test only: faults injected on purpose, so that end-to-end tests can drive real processes into
//! the states they prove the system survives. Each is a no-op unless its environment variable is
//! set, and the environment is read once per process. Each fires for the first attempt to claim a
//! marker file (created with `create_new`, so one attempt wins across all the workers that share
//! the path); later attempts find the marker and go on normally. The marker, rather than an
//! attempt number or a flag in the process, is what tells a first attempt from a re-run on another
//! worker.
//!
//! - **A corrupt map output** (`tests/map_output_integrity.rs`): with
//!   `QUERN_TEST_CORRUPT_MAP_OUTPUT=N` and `QUERN_TEST_CORRUPT_MARKER=PATH`, the attempt of map
//!   task `N` that claims `PATH` flips the first byte of every non-empty partition of its output
//!   file, after writing it and before reporting success, so the shuffle's CRC-32C must catch it
//!   and the coordinator run that map again. Without the marker variable the failpoint stays off.
//!   A map output file has no header (partition offsets and checksums live in memory and travel
//!   with each fetched chunk), so every byte flipped is record data that the reduce of that
//!   partition fetches and checks.
//! - **A worker paused while holding a finished part** (`tests/commit_fencing.rs`): with
//!   `QUERN_TEST_STOP_BEFORE_COMMIT=PATH`, the reduce attempt that claims `PATH` after finishing
//!   its part file, just before it asks the coordinator to commit it, writes who it is to the
//!   marker (`JOB r-NNNNN ATTEMPT`, one line) and stops its whole process with SIGSTOP. The test
//!   lets the coordinator declare the worker lost and a replacement commit, then sends SIGCONT.
//!   The resumed attempt asks to commit as if nothing happened; once its commit has ended (and a
//!   refused part was discarded) it appends how it ended to the marker (`refused`, `committed` or
//!   `failed: ERROR`, one line), which is the test's signal that it has acted.

use crate::error::TaskError;
use crate::spill::Run;
use quern_proto::Assignment;
use quern_proto::failpoint::{append, claim, stop_this_process};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::LazyLock;

const TASK_VAR: &str = "QUERN_TEST_CORRUPT_MAP_OUTPUT";
const MARKER_VAR: &str = "QUERN_TEST_CORRUPT_MARKER";
const STOP_VAR: &str = "QUERN_TEST_STOP_BEFORE_COMMIT";

static CORRUPT_MAP_OUTPUT: LazyLock<Option<CorruptMapOutput>> =
    LazyLock::new(CorruptMapOutput::from_env);

/// The marker of the stop-before-commit failpoint, if it is on.
static STOP_BEFORE_COMMIT: LazyLock<Option<PathBuf>> =
    LazyLock::new(|| std::env::var_os(STOP_VAR).map(PathBuf::from));

/// Test only (see the module docs): called when map task `task` has written `run`, before the
/// attempt reports success. Does nothing unless `QUERN_TEST_CORRUPT_MAP_OUTPUT` is set.
pub fn after_map_output(task: u32, run: &Run) -> io::Result<()> {
    match CORRUPT_MAP_OUTPUT.as_ref() {
        Some(failpoint) => failpoint.apply(task, run),
        None => Ok(()),
    }
}

/// Which map's output to damage, and the marker that says it was done.
struct CorruptMapOutput {
    task: u32,
    marker: PathBuf,
}

impl CorruptMapOutput {
    fn from_env() -> Option<CorruptMapOutput> {
        let task = std::env::var(TASK_VAR).ok()?;
        match (task.trim().parse(), std::env::var_os(MARKER_VAR)) {
            (Ok(task), Some(marker)) => Some(CorruptMapOutput {
                task,
                marker: marker.into(),
            }),
            _ => {
                tracing::warn!(
                    value = %task,
                    "{TASK_VAR} needs a map task number and {MARKER_VAR}; the failpoint is off"
                );
                None
            }
        }
    }

    /// Damages `run` if it is map task `self.task`'s and this attempt is the first to claim the
    /// marker.
    fn apply(&self, task: u32, run: &Run) -> io::Result<()> {
        if task != self.task || !claim(&self.marker)? {
            return Ok(());
        }
        tracing::warn!(task, path = %run.path.display(), "test failpoint: corrupting a map output");
        flip_partition_starts(run).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("test failpoint: cannot corrupt {}: {e}", run.path.display()),
            )
        })
    }
}

/// Test only (see the module docs): called by a reduce attempt whose part file is finished, just
/// before it asks to commit it. If `QUERN_TEST_STOP_BEFORE_COMMIT` is set and this attempt is the
/// first to claim its marker, stops this whole process with SIGSTOP and returns true once it is
/// continued; otherwise returns false at once.
pub fn stop_before_commit(reduce: &Assignment) -> io::Result<bool> {
    let Some(marker) = STOP_BEFORE_COMMIT.as_ref() else {
        return Ok(false);
    };
    if !claim(marker)? {
        return Ok(false);
    }
    let who = format!(
        "{} r-{:05} {}\n",
        reduce.job_id, reduce.task, reduce.attempt_id
    );
    append(marker, &who)?;
    tracing::warn!(marker = %marker.display(), "test failpoint: stopping this worker before its commit");
    if let Err(e) = stop_this_process() {
        tracing::warn!(error = %e, "test failpoint: cannot stop this process");
    }
    tracing::warn!("test failpoint: continued; asking to commit");
    Ok(true)
}

/// Test only: after [`stop_before_commit`] returned true, appends to its marker how the resumed
/// attempt's commit ended: `refused`, `committed` or `failed: ERROR`, on one line.
pub fn resumed_commit_ended(result: &Result<(), TaskError>) {
    let Some(marker) = STOP_BEFORE_COMMIT.as_ref() else {
        return;
    };
    let outcome = match result {
        Ok(()) => "committed".to_string(),
        Err(TaskError::CommitDenied) => "refused".to_string(),
        Err(e) => format!("failed: {}", quern_proto::error_chain(e)),
    };
    if let Err(e) = append(marker, &format!("{outcome}\n")) {
        tracing::warn!(error = %e, "test failpoint: cannot record the commit's outcome");
    }
}

/// Flips every bit of the first byte of each non-empty partition in `run`'s file.
fn flip_partition_starts(run: &Run) -> io::Result<()> {
    let mut file = OpenOptions::new().read(true).write(true).open(&run.path)?;
    for bounds in run.offsets.windows(2).filter(|w| w[1] > w[0]) {
        flip_byte(&mut file, bounds[0])?;
    }
    Ok(())
}

fn flip_byte(file: &mut File, offset: u64) -> io::Result<()> {
    let mut byte = [0u8];
    file.seek(SeekFrom::Start(offset))?;
    file.read_exact(&mut byte)?;
    byte[0] ^= 0xff;
    file.seek(SeekFrom::Start(offset))?;
    file.write_all(&byte)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spill::RunWriter;
    use std::path::Path;

    /// A run of three partitions, the middle one empty.
    fn run_with_an_empty_partition(dir: &Path) -> Run {
        let mut writer =
            RunWriter::create(&dir.join("output"), 3, crate::codec::Codec::None).unwrap();
        writer.start_partition(0).unwrap();
        writer.write(b"apple", b"1").unwrap();
        writer.start_partition(2).unwrap();
        writer.write(b"cherry", b"22").unwrap();
        writer.finish().unwrap()
    }

    #[test]
    fn only_the_first_attempt_of_the_named_map_is_corrupted() {
        let dir = tempfile::tempdir().unwrap();
        let run = run_with_an_empty_partition(dir.path());
        let original = std::fs::read(&run.path).unwrap();
        let failpoint = CorruptMapOutput {
            task: 3,
            marker: dir.path().join("marker"),
        };

        failpoint.apply(2, &run).unwrap();
        assert_eq!(std::fs::read(&run.path).unwrap(), original, "another map");
        assert!(!failpoint.marker.exists());

        failpoint.apply(3, &run).unwrap();
        let damaged = std::fs::read(&run.path).unwrap();
        let mut expected = original.clone();
        expected[0] ^= 0xff;
        expected[run.offsets[2] as usize] ^= 0xff;
        assert_eq!(damaged, expected);
        assert!(failpoint.marker.is_file());
        for p in [0, 2] {
            let (start, end) = (run.offsets[p] as usize, run.offsets[p + 1] as usize);
            assert_ne!(crc32c::crc32c(&damaged[start..end]), run.crcs[p], "{p}");
        }

        failpoint.apply(3, &run).unwrap();
        assert_eq!(std::fs::read(&run.path).unwrap(), damaged, "a re-run");
    }
}
