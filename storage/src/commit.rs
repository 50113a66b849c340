//! The output committer, Hadoop's layout: `OUTPUT/part-r-NNNNN`, then `OUTPUT/_SUCCESS` last.
//!
//! A reduce attempt streams its part file to `OUTPUT/_temporary/attempt-A/part-r-NNNNN` with a
//! multipart upload ([`PartUpload`]), then holds it as a [`PendingPart`] while it asks the
//! coordinator for permission. Only the accepted attempt [`PendingPart::commit`]s, an atomic
//! rename onto the final name; every other attempt [`PendingPart::abort`]s, deleting its own
//! temporary object. So exactly one attempt's output per partition reaches the final names.

use crate::{Location, StorageError, StorageUrl};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
use std::sync::Arc;

const SUCCESS: &str = "_SUCCESS";
const TEMPORARY: &str = "_temporary";
/// Uploads of a part go out in chunks of this size.
const UPLOAD_CHUNK: usize = 8 << 20;
/// Chunks that may be in flight before a writer waits.
const UPLOADS_IN_FLIGHT: usize = 2;

/// The final name of a reduce partition's output, `part-r-00000`.
pub fn part_name(partition: u32) -> String {
    format!("part-r-{partition:05}")
}

/// A job's output directory.
#[derive(Debug, Clone)]
pub struct OutputDir {
    location: Location,
}

impl OutputDir {
    pub fn open(url: &StorageUrl) -> Result<Self, StorageError> {
        Ok(OutputDir {
            location: url.locate()?,
        })
    }

    pub fn url(&self) -> &StorageUrl {
        &self.location.url
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

    fn error(&self) -> impl FnOnce(object_store::Error) -> StorageError {
        StorageError::store(self.location.url.to_string())
    }

    /// Checks the output before a job starts: a finished job's output is refused unless
    /// `overwrite`, in which case everything under the output is removed first.
    pub async fn prepare(&self, overwrite: bool) -> Result<(), StorageError> {
        let finished = match self.store().head(&self.child(SUCCESS)).await {
            Ok(_) => true,
            Err(object_store::Error::NotFound { .. }) => false,
            Err(e) => return Err(self.error()(e)),
        };
        if finished && !overwrite {
            return Err(StorageError::OutputExists {
                url: self.location.url.to_string(),
            });
        }
        if overwrite {
            self.delete_below(&self.location.path).await?;
        }
        Ok(())
    }

    /// Starts the upload of one attempt's part file.
    pub async fn create_part(
        &self,
        partition: u32,
        attempt: u64,
    ) -> Result<PartUpload, StorageError> {
        let temp = self.child(&format!(
            "{TEMPORARY}/attempt-{attempt}/{}",
            part_name(partition)
        ));
        let upload = self
            .store()
            .put_multipart(&temp)
            .await
            .map_err(self.error())?;
        Ok(PartUpload {
            writer: WriteMultipart::new_with_chunk_size(upload, UPLOAD_CHUNK),
            pending: PendingPart {
                store: self.store().clone(),
                temp,
                final_path: self.child(&part_name(partition)),
                url: self.location.url.join(&part_name(partition)),
            },
            bytes: 0,
        })
    }

    /// Writes `_SUCCESS`, holding `manifest`. Call only after every partition committed.
    pub async fn write_success(&self, manifest: Vec<u8>) -> Result<(), StorageError> {
        self.store()
            .put(&self.child(SUCCESS), manifest.into())
            .await
            .map_err(self.error())?;
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
        }
    }

    async fn delete_below(&self, prefix: &Path) -> Result<(), StorageError> {
        let listed = self
            .store()
            .list(Some(prefix))
            .map_ok(|meta| meta.location)
            .boxed_stream();
        self.store()
            .delete_stream(listed)
            .try_collect::<Vec<_>>()
            .await
            .map_err(self.error())?;
        Ok(())
    }
}

trait BoxedStream: futures::Stream + Sized + Send + 'static {
    fn boxed_stream(self) -> futures::stream::BoxStream<'static, Self::Item> {
        Box::pin(self)
    }
}
impl<S: futures::Stream + Send + 'static> BoxedStream for S {}

/// One attempt's part file being written.
pub struct PartUpload {
    writer: WriteMultipart,
    pending: PendingPart,
    bytes: u64,
}

impl PartUpload {
    /// Appends `data`, waiting while too many chunks are in flight.
    pub async fn write(&mut self, data: &[u8]) -> Result<(), StorageError> {
        self.writer
            .wait_for_capacity(UPLOADS_IN_FLIGHT)
            .await
            .map_err(StorageError::store(self.pending.url.to_string()))?;
        self.writer.write(data);
        self.bytes += data.len() as u64;
        Ok(())
    }

    /// Bytes written so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Finishes the upload under the temporary name; the part is not yet visible.
    pub async fn finish(self) -> Result<PendingPart, StorageError> {
        let url = self.pending.url.to_string();
        self.writer
            .finish()
            .await
            .map_err(StorageError::store(url))?;
        Ok(self.pending)
    }

    /// Gives up on the upload, leaving nothing behind.
    pub async fn abort(self) -> Result<(), StorageError> {
        let url = self.pending.url.to_string();
        self.writer.abort().await.map_err(StorageError::store(url))
    }
}

/// A finished, not yet visible part file: commit it or abort it.
pub struct PendingPart {
    store: Arc<dyn ObjectStore>,
    temp: Path,
    final_path: Path,
    url: StorageUrl,
}

impl PendingPart {
    /// Makes this attempt's output the partition's final part file.
    pub async fn commit(self) -> Result<(), StorageError> {
        self.store
            .rename(&self.temp, &self.final_path)
            .await
            .map_err(StorageError::store(self.url.to_string()))
    }

    /// Discards this attempt's output.
    pub async fn abort(self) -> Result<(), StorageError> {
        match self.store.delete(&self.temp).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(StorageError::store(self.url.to_string())(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn pending(out: &OutputDir, partition: u32, attempt: u64, text: &str) -> PendingPart {
        let mut part = out.create_part(partition, attempt).await.unwrap();
        part.write(text.as_bytes()).await.unwrap();
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
        winner.commit().await.unwrap();
        loser.abort().await.unwrap();
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
