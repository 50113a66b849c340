//! Where journal records live: the [`JournalStore`] interface, and [`FileStore`], the local
//! append-only file behind `--state-dir`.

use prost::Message;
use quern_proto::JournalEntry;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Length and checksum before each record.
const HEADER: usize = 8;

/// A journal store call failed; names the store.
#[derive(Debug, thiserror::Error)]
#[error("cannot use the journal {place}: {source}")]
pub struct JournalError {
    pub place: String,
    #[source]
    pub source: std::io::Error,
}

/// The records of a journal, in order. Everything a coordinator keeps across restarts goes
/// through these three calls, so a replicated store (etcd, a Kubernetes Lease with shared
/// storage) can stand in for the local file.
pub trait JournalStore: Send {
    /// Every record kept, oldest first.
    fn load(&mut self) -> Result<Vec<JournalEntry>, JournalError>;
    /// Adds `entry` after the others. With `durable`, returns once it, and every record before
    /// it, would survive a crash of this machine.
    fn append(&mut self, entry: &JournalEntry, durable: bool) -> Result<(), JournalError>;
    /// Replaces every record with `entries`, atomically and durably (compaction).
    fn replace(&mut self, entries: &[JournalEntry]) -> Result<(), JournalError>;
}

/// The journal as one local file: records framed with their length and CRC-32C (little-endian),
/// appended, and fsynced when durable.
pub struct FileStore {
    dir: PathBuf,
    path: PathBuf,
    file: Option<File>,
}

const FILE: &str = "journal";

impl FileStore {
    /// The journal file in `dir`, which is created if need be.
    pub fn open(dir: &Path) -> Result<FileStore, JournalError> {
        let store = FileStore {
            dir: dir.to_path_buf(),
            path: dir.join(FILE),
            file: None,
        };
        std::fs::create_dir_all(dir).map_err(|e| store.error(e))?;
        Ok(store)
    }

    fn error(&self, source: std::io::Error) -> JournalError {
        JournalError {
            place: self.path.display().to_string(),
            source,
        }
    }

    fn appending(&mut self) -> std::io::Result<&mut File> {
        if self.file.is_none() {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
            self.file = Some(file);
        }
        Ok(self.file.as_mut().expect("opened above"))
    }
}

impl JournalStore for FileStore {
    fn load(&mut self) -> Result<Vec<JournalEntry>, JournalError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.error(e)),
        };
        let (entries, damaged) = unframe(&bytes);
        if damaged > 0 {
            tracing::warn!(path = %self.path.display(), bytes = damaged, "dropping a torn or damaged end of the journal");
        }
        Ok(entries)
    }

    fn append(&mut self, entry: &JournalEntry, durable: bool) -> Result<(), JournalError> {
        let framed = frame(entry);
        let written = self.appending().and_then(|file| {
            file.write_all(&framed)?;
            if durable {
                file.sync_data()?;
            }
            Ok(())
        });
        written.map_err(|e| self.error(e))
    }

    fn replace(&mut self, entries: &[JournalEntry]) -> Result<(), JournalError> {
        self.file = None;
        let bytes: Vec<u8> = entries.iter().flat_map(frame).collect();
        replace_file(&self.dir, &self.path, &bytes).map_err(|e| self.error(e))
    }
}

/// `entry` as it lies on disk: its length and CRC-32C, then its bytes.
fn frame(entry: &JournalEntry) -> Vec<u8> {
    let body = entry.encode_to_vec();
    let mut framed = Vec::with_capacity(HEADER + body.len());
    framed.extend((body.len() as u32).to_le_bytes());
    framed.extend(crc32c::crc32c(&body).to_le_bytes());
    framed.extend(body);
    framed
}

/// The records in `bytes`, up to the first that is torn or does not match its checksum, and
/// how many bytes were left after them.
fn unframe(bytes: &[u8]) -> (Vec<JournalEntry>, usize) {
    let mut entries = Vec::new();
    let mut rest = bytes;
    while rest.len() >= HEADER {
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
        let Some(body) = rest.get(HEADER..HEADER + len) else {
            break;
        };
        if crc32c::crc32c(body) != crc {
            break;
        }
        let Ok(entry) = JournalEntry::decode(body) else {
            break;
        };
        entries.push(entry);
        rest = &rest[HEADER + len..];
    }
    (entries, rest.len())
}

/// Writes `bytes` as the file at `path` atomically: a temporary file, synced, renamed over it,
/// and the directory synced.
fn replace_file(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
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
    use quern_proto::journal_entry::Entry;
    use quern_proto::{JournalJobEnded, JournalStart};

    fn start(n: u64) -> JournalEntry {
        JournalEntry {
            entry: Some(Entry::Start(JournalStart {
                incarnation: n,
                attempt_base: 0,
            })),
        }
    }

    fn ended(n: u32) -> JournalEntry {
        JournalEntry {
            entry: Some(Entry::Ended(JournalJobEnded {
                job_id: format!("job-1-{n:04}"),
            })),
        }
    }

    #[test]
    fn a_torn_or_damaged_last_record_is_dropped_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = FileStore::open(dir.path()).unwrap();
        assert!(store.load().unwrap().is_empty());
        store.replace(&[start(1)]).unwrap();
        store.append(&ended(1), true).unwrap();
        store.append(&ended(2), false).unwrap();
        assert_eq!(store.load().unwrap(), [start(1), ended(1), ended(2)]);
        let path = dir.path().join(FILE);
        let whole = std::fs::read(&path).unwrap();

        // A crash in the middle of the last record's write.
        std::fs::write(&path, &whole[..whole.len() - 3]).unwrap();
        assert_eq!(store.load().unwrap(), [start(1), ended(1)]);
        // A flipped byte in the last record.
        let mut damaged = whole.clone();
        let last = damaged.len() - 2;
        damaged[last] ^= 0xff;
        std::fs::write(&path, &damaged).unwrap();
        assert_eq!(store.load().unwrap(), [start(1), ended(1)]);
    }

    #[test]
    fn replacing_keeps_only_the_new_records_and_appends_go_after_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = FileStore::open(dir.path()).unwrap();
        store.append(&ended(1), true).unwrap();
        store.replace(&[start(2)]).unwrap();
        store.append(&ended(3), true).unwrap();
        let mut reopened = FileStore::open(dir.path()).unwrap();
        assert_eq!(reopened.load().unwrap(), [start(2), ended(3)]);
    }
}
