//! The coordinator's journal, kept in `--state-dir`: an append-only log of what a restarted
//! coordinator needs to go on. Each record (a [`JournalEntry`]) is framed with its length and
//! CRC-32C, and is on disk (fsynced) before the coordinator acknowledges what it records: a job is
//! journaled before its submit is answered. Replaying it on start gives the jobs that had not
//! ended, which run again under their own ids, and the attempt ids earlier incarnations used. A
//! torn last record (a crash mid-write) is dropped. Each start compacts the log to what is still
//! needed, so it stays as small as the set of unfinished jobs.
//!
//! An append-only file with checksums was chosen over an embedded database (redb, SQLite): the
//! coordinator writes a few small records per job and reads them only at start, and the format
//! is the wire's own (prost). Everything goes through [`Journal`], so a replicated store (etcd,
//! or a Kubernetes Lease with shared storage) could stand in for a hot standby.

use prost::Message;
use quern_proto::ids::JobId;
use quern_proto::journal_entry::Entry;
use quern_proto::{JobSpec, JournalEntry, JournalJob, JournalJobEnded, JournalStart};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

const FILE: &str = "journal";
/// Attempt ids each incarnation may use: each start takes the block past the last one journaled.
pub const ATTEMPT_BLOCK: u64 = 1 << 32;
/// Length and checksum before each record.
const HEADER: usize = 8;

/// A journal call failed; names the file.
#[derive(Debug, thiserror::Error)]
#[error("cannot use the journal {path}: {source}")]
pub struct JournalError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// What replaying the journal gives a starting coordinator.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Jobs accepted and not ended, oldest first, with their normalized specs.
    pub jobs: Vec<(JobId, JobSpec)>,
    /// This incarnation's attempt ids begin past this.
    pub attempt_base: u64,
}

pub struct Journal {
    file: File,
    path: PathBuf,
}

impl Journal {
    /// Opens (or starts) the journal in `dir`, replays it, and compacts it to this start and the
    /// jobs not ended.
    pub fn open(dir: &Path, incarnation: u64) -> Result<(Journal, Recovered), JournalError> {
        let path = dir.join(FILE);
        let fail = |source| JournalError {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(fail)?;
        let recovered = replay(&read(&path).map_err(fail)?);
        let start = JournalStart {
            incarnation,
            attempt_base: recovered.attempt_base,
        };
        let mut compacted = frame(&JournalEntry {
            entry: Some(Entry::Start(start)),
        });
        for (id, spec) in &recovered.jobs {
            compacted.extend(frame(&submitted(*id, spec)));
        }
        replace(dir, &path, &compacted).map_err(fail)?;
        let file = OpenOptions::new().append(true).open(&path).map_err(fail)?;
        Ok((Journal { file, path }, recovered))
    }

    /// Journals job `id`, accepted with `spec`; returns once it is on disk.
    pub fn job_submitted(&mut self, id: JobId, spec: &JobSpec) -> Result<(), JournalError> {
        self.append(&submitted(id, spec))
    }

    /// Journals that job `id` ended: a restart does not resume it.
    pub fn job_ended(&mut self, id: JobId) -> Result<(), JournalError> {
        let ended = JournalJobEnded {
            job_id: id.to_string(),
        };
        self.append(&JournalEntry {
            entry: Some(Entry::Ended(ended)),
        })
    }

    fn append(&mut self, entry: &JournalEntry) -> Result<(), JournalError> {
        let written = self.file.write_all(&frame(entry));
        written
            .and_then(|()| self.file.sync_data())
            .map_err(|source| JournalError {
                path: self.path.clone(),
                source,
            })
    }
}

fn submitted(id: JobId, spec: &JobSpec) -> JournalEntry {
    let job = JournalJob {
        job_id: id.to_string(),
        spec: Some(spec.clone()),
    };
    JournalEntry {
        entry: Some(Entry::Submitted(job)),
    }
}

/// `entry` as it lies on disk: its length and CRC-32C (little-endian), then its bytes.
fn frame(entry: &JournalEntry) -> Vec<u8> {
    let body = entry.encode_to_vec();
    let mut framed = Vec::with_capacity(HEADER + body.len());
    framed.extend((body.len() as u32).to_le_bytes());
    framed.extend(crc32c::crc32c(&body).to_le_bytes());
    framed.extend(body);
    framed
}

/// The records of the journal at `path` (none if there is none yet), up to the first that is
/// torn or does not match its checksum.
fn read(path: &Path) -> std::io::Result<Vec<JournalEntry>> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut entries = Vec::new();
    let mut rest = bytes.as_slice();
    while rest.len() >= HEADER {
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
        let Some(body) = rest.get(HEADER..HEADER + len) else {
            break;
        };
        let Ok(entry) = JournalEntry::decode(body)
            .map_err(drop)
            .and_then(|entry| (crc32c::crc32c(body) == crc).then_some(entry).ok_or(()))
        else {
            break;
        };
        entries.push(entry);
        rest = &rest[HEADER + len..];
    }
    if !rest.is_empty() {
        tracing::warn!(path = %path.display(), bytes = rest.len(), "dropping a torn or damaged end of the journal");
    }
    Ok(entries)
}

/// The jobs not ended, oldest first, and the attempt base for a new incarnation.
fn replay(entries: &[JournalEntry]) -> Recovered {
    let mut recovered = Recovered::default();
    let mut last_base = None;
    for entry in entries.iter().filter_map(|e| e.entry.as_ref()) {
        match entry {
            Entry::Start(start) => last_base = last_base.max(Some(start.attempt_base)),
            Entry::Submitted(job) => {
                if let (Ok(id), Some(spec)) = (job.job_id.parse(), &job.spec) {
                    recovered.jobs.push((id, spec.clone()));
                }
            }
            Entry::Ended(ended) => recovered
                .jobs
                .retain(|(id, _)| id.to_string() != ended.job_id),
        }
    }
    recovered.attempt_base = last_base.map_or(0, |base| base + ATTEMPT_BLOCK);
    recovered
}

/// Writes `bytes` as the file at `path` atomically: a temporary file, synced, renamed over it,
/// and the directory synced.
fn replace(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let temporary = dir.join(format!("{FILE}.new"));
    let mut file = File::create(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)?;
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(n: u32) -> (JobId, JobSpec) {
        let id = JobId {
            incarnation: 1,
            number: n,
        };
        let spec = JobSpec {
            job_name: format!("job {n}"),
            reducers: n,
            ..JobSpec::default()
        };
        (id, spec)
    }

    #[test]
    fn a_restart_gets_the_jobs_not_ended_and_a_fresh_block_of_attempt_ids() {
        let dir = tempfile::tempdir().unwrap();
        let (mut journal, first) = Journal::open(dir.path(), 1).unwrap();
        assert!(first.jobs.is_empty());
        assert_eq!(first.attempt_base, 0);
        for n in 1..=3 {
            let (id, spec) = job(n);
            journal.job_submitted(id, &spec).unwrap();
        }
        journal.job_ended(job(2).0).unwrap();
        drop(journal);

        let (journal, second) = Journal::open(dir.path(), 2).unwrap();
        assert_eq!(second.jobs, vec![job(1), job(3)]);
        assert_eq!(second.attempt_base, ATTEMPT_BLOCK);
        drop(journal);
        let (_, third) = Journal::open(dir.path(), 3).unwrap();
        assert_eq!(third.jobs, vec![job(1), job(3)], "compaction keeps them");
        assert_eq!(third.attempt_base, 2 * ATTEMPT_BLOCK);
    }

    #[test]
    fn a_torn_or_damaged_last_record_is_dropped_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (mut journal, _) = Journal::open(dir.path(), 1).unwrap();
        journal.job_submitted(job(1).0, &job(1).1).unwrap();
        journal.job_submitted(job(2).0, &job(2).1).unwrap();
        drop(journal);
        let path = dir.path().join(FILE);
        let whole = std::fs::read(&path).unwrap();
        // A crash in the middle of the last record's write.
        std::fs::write(&path, &whole[..whole.len() - 3]).unwrap();
        let (_, recovered) = Journal::open(dir.path(), 2).unwrap();
        assert_eq!(recovered.jobs, vec![job(1)]);
        // A flipped byte in the last record.
        let (mut journal, _) = Journal::open(dir.path(), 3).unwrap();
        journal.job_submitted(job(4).0, &job(4).1).unwrap();
        drop(journal);
        let mut damaged = std::fs::read(&path).unwrap();
        let last = damaged.len() - 2;
        damaged[last] ^= 0xff;
        std::fs::write(&path, &damaged).unwrap();
        let (_, recovered) = Journal::open(dir.path(), 4).unwrap();
        assert_eq!(recovered.jobs, vec![job(1)]);
    }
}
