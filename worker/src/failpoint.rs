//! Test only: damages a map output on purpose, so that an end-to-end test can prove that the
//! shuffle's CRC-32C catches a corrupt map output and the coordinator runs that map again
//! (`tests/map_output_integrity.rs`). A no-op unless `QUERN_TEST_CORRUPT_MAP_OUTPUT` is set; the
//! environment is read once per process.
//!
//! With `QUERN_TEST_CORRUPT_MAP_OUTPUT=N` and `QUERN_TEST_CORRUPT_MARKER=PATH`, the attempt of map
//! task `N` that creates the file `PATH` (with `create_new`, so one attempt wins across all the
//! workers that share the path) flips the first byte of every non-empty partition of its output
//! file, after writing it and before reporting success. Later attempts find the marker and leave
//! their output alone, so the re-run's output is sound. The marker, rather than an attempt number
//! or a flag in the process, is what tells a first attempt from a re-run on another worker; without
//! it the failpoint stays off. A map output file has no header (partition offsets and checksums
//! live in memory and travel with each fetched chunk), so every byte flipped is record data that
//! the reduce of that partition fetches and checks.

use crate::spill::Run;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

const TASK_VAR: &str = "QUERN_TEST_CORRUPT_MAP_OUTPUT";
const MARKER_VAR: &str = "QUERN_TEST_CORRUPT_MARKER";

static CORRUPT_MAP_OUTPUT: LazyLock<Option<CorruptMapOutput>> =
    LazyLock::new(CorruptMapOutput::from_env);

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

/// Creates `marker`; false if it already exists.
fn claim(marker: &Path) -> io::Result<bool> {
    match OpenOptions::new().write(true).create_new(true).open(marker) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!("test failpoint: cannot create {}: {e}", marker.display()),
        )),
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

    /// A run of three partitions, the middle one empty.
    fn run_with_an_empty_partition(dir: &Path) -> Run {
        let mut writer = RunWriter::create(&dir.join("output"), 3).unwrap();
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
