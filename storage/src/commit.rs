//! The output committer, Hadoop's layout: `OUTPUT/part-r-NNNNN` (or `part-m-NNNNN`, written by
//! the maps of a map-only job), then `OUTPUT/_SUCCESS` last.
//!
//! A reduce attempt streams its part file with a [`PartUpload`], then holds the finished upload as
//! a [`PendingPart`] and asks the coordinator to commit it. The coordinator makes it final itself
//! with [`OutputDir::commit_part`], for one attempt per partition only; every other attempt
//! [`PendingPart::abort`]s its own. So exactly one attempt's output per partition reaches the
//! final name, and no worker ever can on its own. Two protocols sit behind that one interface:
//! - local disk: the upload goes to `OUTPUT/_temporary/attempt-A/part-r-NNNNN`; commit is an atomic
//!   rename onto the final name, abort a delete;
//! - S3, which has no rename (copy-then-delete is slow and not atomic): the upload is a multipart
//!   upload to the final key whose parts are sent but which is not completed; commit completes it
//!   with the part ids the attempt reports, abort aborts it. No copy, no delete, no orphaned parts.

use crate::overwrite::PreviousOutput;
use crate::{Location, StorageError, StorageUrl};
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{MultipartId, ObjectStore, ObjectStoreExt, WriteMultipart};
use std::sync::Arc;

pub(crate) const SUCCESS: &str = "_SUCCESS";
pub(crate) const TEMPORARY: &str = "_temporary";
/// Bytes per uploaded part (S3 wants at least 5 MiB for all parts but the last).
const PART_SIZE: usize = 8 << 20;
/// Local-disk chunks that may be in flight before a writer waits.
const UPLOADS_IN_FLIGHT: usize = 2;

/// Which tasks write a job's part files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PartKind {
    /// Reduce partitions: `part-r-00000`.
    #[default]
    Reduce,
    /// The maps of a map-only job: `part-m-00000`.
    Map,
}

impl PartKind {
    /// The final name of part `index`: `part-r-00000` or `part-m-00000`.
    pub fn name(self, index: u32) -> String {
        match self {
            PartKind::Reduce => format!("part-r-{index:05}"),
            PartKind::Map => format!("part-m-{index:05}"),
        }
    }
}

/// A job's output directory (or key prefix).
#[derive(Debug, Clone)]
pub struct OutputDir {
    location: Location,
    parts: PartKind,
}

impl OutputDir {
    /// The output directory at `url`, whose part files reduces write.
    pub fn open(url: &StorageUrl) -> Result<Self, StorageError> {
        Ok(OutputDir {
            location: url.locate()?,
            parts: PartKind::Reduce,
        })
    }

    /// The output directory at `url` of a job with `reducers` reduce partitions: part files
    /// of its reduces, or of its maps if it has none (a map-only job).
    pub fn of_job(url: &str, reducers: u32) -> Result<Self, StorageError> {
        let parts = match reducers {
            0 => PartKind::Map,
            _ => PartKind::Reduce,
        };
        Ok(OutputDir {
            parts,
            ..OutputDir::open(&StorageUrl::parse(url)?)?
        })
    }

    fn part_name(&self, index: u32) -> String {
        self.parts.name(index)
    }

    fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.location.store
    }

    fn child(&self, relative: &str) -> Path {
        relative
            .split('/')
            .fold(self.location.path.clone(), |path, part| {
                path.clone().join(part)
            })
    }

    fn error(&self, relative: &str) -> impl FnOnce(object_store::Error) -> StorageError + use<> {
        self.location.error(&self.location.url.join(relative))
    }

    /// Checks the output before a job starts: it must be writable (a probe object is written and
    /// removed), and a finished job's output is refused unless `overwrite`, in which case that
    /// output is removed first. `overwrite` removes job output only: an output holding anything
    /// else is refused and left as it is (see [`crate::overwrite`]).
    pub async fn prepare(&self, overwrite: bool) -> Result<(), StorageError> {
        // One listing names a missing bucket (some servers create one on a first write), and
        // shows a finished job, or part files an earlier run left that a new job's parts must
        // not mix with.
        let listed = self
            .store()
            .list_with_delimiter(Some(&self.location.path))
            .await
            .map_err(self.error(""))?;
        let names: Vec<&str> = listed
            .objects
            .iter()
            .filter_map(|o| o.location.filename())
            .collect();
        let url = self.location.url.to_string();
        if !overwrite && names.contains(&SUCCESS) {
            return Err(StorageError::OutputExists { url });
        }
        if !overwrite && names.iter().any(|name| name.starts_with("part-")) {
            return Err(StorageError::OutputHasParts { url });
        }
        let previous = match overwrite {
            true => Some(PreviousOutput::find(&self.location).await?),
            false => None,
        };
        self.probe_write().await?;
        if let Some(previous) = previous {
            previous.remove(&self.location).await?;
        }
        Ok(())
    }

    async fn probe_write(&self) -> Result<(), StorageError> {
        let name = format!("_quern-probe-{}", std::process::id());
        let probe = self.child(&name);
        self.store()
            .put(&probe, b"probe".to_vec().into())
            .await
            .map_err(self.error(&name))?;
        self.store().delete(&probe).await.map_err(self.error(&name))
    }

    /// Opens the multipart upload of a partition's part file, where the store holds uploads
    /// open until commit (S3); None elsewhere. The coordinator calls this, so it knows every
    /// upload id and can abort the upload of an attempt that never commits.
    pub async fn open_upload(&self, partition: u32) -> Result<Option<String>, StorageError> {
        let Some(multipart) = &self.location.multipart else {
            return Ok(None);
        };
        let name = self.part_name(partition);
        let id = multipart
            .create_multipart(&self.child(&name))
            .await
            .map_err(self.error(&name))?;
        Ok(Some(id))
    }

    /// Where an attempt stages its part file on a store without multipart uploads held open.
    fn staged_path(&self, partition: u32, attempt: u64) -> Path {
        self.child(&format!(
            "{TEMPORARY}/attempt-{attempt}/{}",
            self.part_name(partition)
        ))
    }

    /// Makes attempt `attempt`'s part file the partition's output: completes its multipart
    /// upload `upload_id` from `part_ids` (S3), or renames its staged file. The coordinator calls
    /// this, for the one attempt per partition it chose.
    pub async fn commit_part(
        &self,
        partition: u32,
        attempt: u64,
        upload_id: Option<&str>,
        part_ids: Vec<String>,
    ) -> Result<(), StorageError> {
        let name = self.part_name(partition);
        let final_path = self.child(&name);
        match (&self.location.multipart, upload_id) {
            (Some(multipart), Some(id)) => {
                let parts = part_ids
                    .into_iter()
                    .map(|content_id| PartId { content_id })
                    .collect();
                multipart
                    .complete_multipart(&final_path, &id.to_string(), parts)
                    .await
                    .map(|_| ())
                    .map_err(self.error(&name))
            }
            (Some(_), None) => Err(StorageError::NoUpload {
                url: self.location.url.join(&name).to_string(),
                attempt,
            }),
            (None, _) => self
                .store()
                .rename(&self.staged_path(partition, attempt), &final_path)
                .await
                .map_err(self.error(&name)),
        }
    }

    /// Starts the upload of one attempt's part file: on S3 into the upload `upload_id` (one is
    /// opened if None), elsewhere under a temporary name.
    pub async fn create_part(
        &self,
        partition: u32,
        attempt: u64,
        upload_id: Option<String>,
    ) -> Result<PartUpload, StorageError> {
        let name = self.part_name(partition);
        let url = self.location.url.join(&name);
        let final_path = self.child(&name);
        let writer = match &self.location.multipart {
            Some(multipart) => {
                let id = match upload_id {
                    Some(id) => id,
                    None => multipart
                        .create_multipart(&final_path)
                        .await
                        .map_err(self.error(&name))?,
                };
                PartWriter::Multipart {
                    multipart: multipart.clone(),
                    id,
                    parts: Vec::new(),
                    buffer: Vec::with_capacity(PART_SIZE),
                }
            }
            None => {
                let temp = self.staged_path(partition, attempt);
                let upload = self
                    .store()
                    .put_multipart(&temp)
                    .await
                    .map_err(self.error(&name))?;
                PartWriter::Staged {
                    writer: WriteMultipart::new_with_chunk_size(upload, PART_SIZE),
                    temp,
                }
            }
        };
        Ok(PartUpload {
            writer,
            target: PartTarget {
                location: self.location.clone(),
                final_path,
                url,
            },
            bytes: 0,
        })
    }

    /// Aborts a multipart upload of a part file that an attempt started but never committed (its
    /// worker died, or its job failed). An upload that was completed or aborted already is fine.
    pub async fn abort_upload(&self, partition: u32, upload_id: &str) -> Result<(), StorageError> {
        let Some(multipart) = &self.location.multipart else {
            return Ok(());
        };
        let name = self.part_name(partition);
        match multipart
            .abort_multipart(&self.child(&name), &upload_id.to_string())
            .await
        {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error(&name)(e)),
        }
    }

    /// Of `partitions`, those whose part file is in the output: committed (only a commit makes a
    /// part file appear under its final name).
    pub async fn committed_parts(
        &self,
        partitions: impl IntoIterator<Item = u32>,
    ) -> Result<Vec<u32>, StorageError> {
        let mut committed = Vec::new();
        for partition in partitions {
            let name = self.part_name(partition);
            match self.store().head(&self.child(&name)).await {
                Ok(_) => committed.push(partition),
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.error(&name)(e)),
            }
        }
        Ok(committed)
    }

    /// Sizes of the committed part files, by name.
    pub async fn part_sizes(&self, partitions: u32) -> Result<Vec<(String, u64)>, StorageError> {
        let mut sizes = Vec::with_capacity(partitions as usize);
        for partition in 0..partitions {
            let name = self.part_name(partition);
            let head = self
                .store()
                .head(&self.child(&name))
                .await
                .map_err(self.error(&name))?;
            sizes.push((name, head.size));
        }
        Ok(sizes)
    }

    /// Writes `_SUCCESS`, holding `manifest`. Call only after every partition committed.
    pub async fn write_success(&self, manifest: Vec<u8>) -> Result<(), StorageError> {
        self.store()
            .put(&self.child(SUCCESS), manifest.into())
            .await
            .map_err(self.error(SUCCESS))?;
        Ok(())
    }

    /// Removes what attempts left under `_temporary/` (losers that never aborted, dead workers).
    pub async fn discard_temporary(&self) -> Result<(), StorageError> {
        match self.location.url.join(TEMPORARY) {
            // A local store keeps directories; remove the whole tree, not only its files.
            StorageUrl::Local(dir) => match tokio::fs::remove_dir_all(&dir).await {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(StorageError::Local {
                    path: dir,
                    source: e,
                }),
            },
            StorageUrl::S3 { .. } => self.delete_below(&self.child(TEMPORARY)).await,
        }
    }

    async fn delete_below(&self, prefix: &Path) -> Result<(), StorageError> {
        let listed = self.store().list(Some(prefix)).map_ok(|meta| meta.location);
        self.store()
            .delete_stream(Box::pin(listed))
            .try_collect::<Vec<_>>()
            .await
            .map_err(self.error(""))?;
        Ok(())
    }
}

enum PartWriter {
    /// Local disk: a staged object under `_temporary/`.
    Staged { writer: WriteMultipart, temp: Path },
    /// S3: an open multipart upload to the final key.
    Multipart {
        multipart: Arc<dyn MultipartStore>,
        id: MultipartId,
        parts: Vec<PartId>,
        buffer: Vec<u8>,
    },
}

/// Where a part file ends up: its store, final path and URL.
struct PartTarget {
    location: Location,
    final_path: Path,
    url: StorageUrl,
}

impl PartTarget {
    fn error(&self) -> impl FnOnce(object_store::Error) -> StorageError + use<> {
        self.location.error(&self.url)
    }
}

/// One attempt's part file being written.
pub struct PartUpload {
    writer: PartWriter,
    target: PartTarget,
    bytes: u64,
}

impl PartUpload {
    /// The multipart upload id, where the store holds one open until commit (S3).
    pub fn upload_id(&self) -> Option<&str> {
        match &self.writer {
            PartWriter::Multipart { id, .. } => Some(id),
            PartWriter::Staged { .. } => None,
        }
    }

    /// Appends `data`; memory stays bounded by one part. A staged part takes the bytes as they
    /// are, uncopied.
    pub async fn write(&mut self, data: Bytes) -> Result<(), StorageError> {
        self.bytes += data.len() as u64;
        match &mut self.writer {
            PartWriter::Staged { writer, .. } => {
                writer
                    .wait_for_capacity(UPLOADS_IN_FLIGHT)
                    .await
                    .map_err(self.target.error())?;
                writer.put(data);
            }
            PartWriter::Multipart {
                multipart,
                id,
                parts,
                buffer,
            } => {
                buffer.extend_from_slice(&data);
                while buffer.len() >= PART_SIZE {
                    let rest = buffer.split_off(PART_SIZE);
                    let full = std::mem::replace(buffer, rest);
                    let part = multipart
                        .put_part(&self.target.final_path, id, parts.len(), full.into())
                        .await
                        .map_err(self.target.error())?;
                    parts.push(part);
                }
            }
        }
        Ok(())
    }

    /// Bytes written so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Finishes the upload without making it visible under the final name.
    pub async fn finish(self) -> Result<PendingPart, StorageError> {
        let error = self.target.error();
        let commit = match self.writer {
            PartWriter::Staged { writer, temp } => {
                writer.finish().await.map_err(error)?;
                Commit::Rename { temp }
            }
            PartWriter::Multipart {
                multipart,
                id,
                mut parts,
                buffer,
            } => {
                // The last part may be short; an empty output still needs one (empty) part.
                if !buffer.is_empty() || parts.is_empty() {
                    let part = multipart
                        .put_part(&self.target.final_path, &id, parts.len(), buffer.into())
                        .await
                        .map_err(error)?;
                    parts.push(part);
                }
                Commit::Complete {
                    multipart,
                    id,
                    parts,
                }
            }
        };
        Ok(PendingPart {
            commit,
            target: self.target,
        })
    }

    /// Gives up on the upload, leaving nothing behind.
    pub async fn abort(self) -> Result<(), StorageError> {
        let error = self.target.error();
        match self.writer {
            PartWriter::Staged { writer, .. } => writer.abort().await.map_err(error),
            PartWriter::Multipart { multipart, id, .. } => multipart
                .abort_multipart(&self.target.final_path, &id)
                .await
                .map_err(error),
        }
    }
}

enum Commit {
    Rename {
        temp: Path,
    },
    Complete {
        multipart: Arc<dyn MultipartStore>,
        id: MultipartId,
        parts: Vec<PartId>,
    },
}

/// A finished, not yet visible part file: commit it or abort it.
pub struct PendingPart {
    commit: Commit,
    target: PartTarget,
}

impl PendingPart {
    /// The ids of the uploaded parts, in order, that the coordinator needs to complete the
    /// upload (S3); none for a staged file.
    pub fn part_ids(&self) -> Vec<String> {
        match &self.commit {
            Commit::Rename { .. } => Vec::new(),
            Commit::Complete { parts, .. } => parts.iter().map(|p| p.content_id.clone()).collect(),
        }
    }

    /// Discards this attempt's output.
    pub async fn abort(self) -> Result<(), StorageError> {
        let target = &self.target;
        let result = match self.commit {
            Commit::Rename { temp } => target.location.store.delete(&temp).await,
            Commit::Complete { multipart, id, .. } => {
                multipart.abort_multipart(&target.final_path, &id).await
            }
        };
        match result {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(target.error()(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn pending(out: &OutputDir, partition: u32, attempt: u64, text: &str) -> PendingPart {
        let mut part = out.create_part(partition, attempt, None).await.unwrap();
        part.write(Bytes::copy_from_slice(text.as_bytes()))
            .await
            .unwrap();
        part.finish().await.unwrap()
    }

    #[tokio::test]
    async fn only_the_committed_attempt_reaches_the_final_name() {
        let dir = tempfile::tempdir().unwrap();
        let out = OutputDir::open(&StorageUrl::Local(dir.path().join("out"))).unwrap();
        out.prepare(false).await.unwrap();
        let loser = pending(&out, 3, 7, "loser\n").await;
        let winner = pending(&out, 3, 8, "winner\n").await;
        assert!(!dir.path().join("out/part-r-00003").exists());
        out.commit_part(3, 8, None, winner.part_ids())
            .await
            .unwrap();
        loser.abort().await.unwrap();
        // The winner's own abort, had its commit answer been lost, leaves the committed file.
        winner.abort().await.unwrap();
        out.write_success(b"{}".to_vec()).await.unwrap();
        out.discard_temporary().await.unwrap();
        let text = std::fs::read_to_string(dir.path().join("out/part-r-00003")).unwrap();
        assert_eq!(text, "winner\n");
        let mut names: Vec<_> = std::fs::read_dir(dir.path().join("out"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["_SUCCESS", "part-r-00003"]);
    }

    #[tokio::test]
    async fn committed_parts_are_those_under_their_final_name() {
        let dir = tempfile::tempdir().unwrap();
        let out = OutputDir::open(&StorageUrl::Local(dir.path().join("out"))).unwrap();
        out.prepare(false).await.unwrap();
        pending(&out, 0, 1, "zero").await;
        let staged = pending(&out, 2, 2, "two").await;
        out.commit_part(2, 2, None, staged.part_ids())
            .await
            .unwrap();
        assert_eq!(out.committed_parts(0..3).await.unwrap(), [2]);
    }

    #[tokio::test]
    async fn part_files_of_an_earlier_run_are_refused_unless_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let url = StorageUrl::Local(dir.path().to_path_buf());
        std::fs::write(dir.path().join("part-r-00005"), "stale\n").unwrap();
        let out = OutputDir::open(&url).unwrap();
        let err = out.prepare(false).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "output {url} holds part files of an earlier run; choose another output or pass --overwrite"
            )
        );
        out.prepare(true).await.unwrap();
        assert!(!dir.path().join("part-r-00005").exists());
    }

    #[tokio::test]
    async fn finished_output_is_refused_unless_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let url = StorageUrl::Local(dir.path().to_path_buf());
        std::fs::write(dir.path().join("_SUCCESS"), "").unwrap();
        std::fs::write(dir.path().join("part-r-00000"), "old\n").unwrap();
        let out = OutputDir::open(&url).unwrap();
        let err = out.prepare(false).await.unwrap_err();
        assert!(err.to_string().contains("_SUCCESS exists"), "{err}");
        out.prepare(true).await.unwrap();
        assert!(!dir.path().join("part-r-00000").exists());
        assert!(!dir.path().join("_SUCCESS").exists());
    }
}
