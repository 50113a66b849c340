//! Ranged reads of a listed input object, each checked against what listing saw of it (its size
//! and [`Version`]): an object that changed since fails the read with
//! [`StorageError::InputChanged`], naming it, instead of handing a task bytes of two versions.
//!
//! - On an object store every ranged GET carries `If-Match` with the listed ETag, so a server that
//!   honours it refuses a replaced object. The size and ETag the response reports are compared as
//!   well, for servers that ignore `If-Match` (or list no ETag: then the modification time is).
//! - A local file is read with `std::fs`, not object_store, since `LocalFileSystem` refuses to
//!   open names ending in `#` and digits (`chapter#1`), which listing yields (see [`crate::list`]).
//!   Each read opens the file and compares its size, device, inode and modification time with
//!   the listing's before reading, as `LocalFileSystem` would for `If-Match` (its ETag is inode,
//!   mtime and size).

use crate::list::{InputObject, Version};
use crate::read_buffer;
use crate::{Location, StorageError, StorageUrl};
use bytes::Bytes;
use object_store::{GetOptions, GetRange, ObjectStore};
use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

/// The version of a local file: its device, inode and modification time (to the nanosecond). A
/// file rewritten in place gets a new mtime; one replaced (an editor's save, `mv`) a new inode.
pub(crate) fn local_version(meta: &std::fs::Metadata) -> String {
    format!(
        "{:x}-{:x}-{}.{:09}",
        meta.dev(),
        meta.ino(),
        meta.mtime(),
        meta.mtime_nsec()
    )
}

/// An input object to read ranges of, checked on every read against `object` as listed.
#[derive(Debug, Clone)]
pub struct InputSource {
    object: InputObject,
    place: Place,
}

#[derive(Debug, Clone)]
enum Place {
    Local(PathBuf),
    Store(Location),
}

impl InputSource {
    pub fn new(object: InputObject) -> Result<Self, StorageError> {
        let place = match &object.url {
            StorageUrl::Local(path) => Place::Local(path.clone()),
            StorageUrl::S3 { .. } => Place::Store(object.url.locate()?),
        };
        Ok(InputSource { object, place })
    }

    pub fn url(&self) -> &StorageUrl {
        &self.object.url
    }

    /// Whether the object is a local file, which [`InputSource::read_local_range`] reads.
    pub fn is_local(&self) -> bool {
        matches!(self.place, Place::Local(_))
    }

    /// Bytes `range` of a local file, checked as [`InputSource::read_range`] checks them, read
    /// on the calling thread, which must be one that may block; None for an object in a store.
    /// A map of many small local files reads them so, on its own thread: handing each file's
    /// read to another thread and back cost more than the read.
    pub fn read_local_range(&self, range: Range<u64>) -> Option<Result<Bytes, StorageError>> {
        match &self.place {
            Place::Local(path) => Some(self.read_local(path, range)),
            Place::Store(_) => None,
        }
    }

    /// Bytes `range` of the object, which must lie within its listed size.
    pub async fn read_range(&self, range: Range<u64>) -> Result<Bytes, StorageError> {
        match &self.place {
            Place::Local(path) => {
                let (source, file) = (self.clone(), path.clone());
                tokio::task::spawn_blocking(move || source.read_local(&file, range))
                    .await
                    .map_err(|e| StorageError::LocalInput {
                        path: path.clone(),
                        source: std::io::Error::other(e.to_string()),
                    })?
            }
            Place::Store(location) => self.read_store(location, range).await,
        }
    }

    fn read_local(&self, path: &std::path::Path, range: Range<u64>) -> Result<Bytes, StorageError> {
        let io_error = |source: std::io::Error| match source.kind() {
            std::io::ErrorKind::NotFound => StorageError::ObjectNotFound {
                url: self.object.url.to_string(),
            },
            _ => StorageError::LocalInput {
                path: path.to_path_buf(),
                source,
            },
        };
        let mut file = std::fs::File::open(path).map_err(io_error)?;
        let meta = file.metadata().map_err(io_error)?;
        self.check_size(meta.len())?;
        if let Version::Tag(listed) = &self.object.version
            && *listed != local_version(&meta)
        {
            return Err(self.changed(
                "it was rewritten or replaced (its inode or modification time differs)".to_string(),
            ));
        }
        // Read into spare capacity, not a zeroed buffer: zeroing it first wrote every byte of
        // the input twice. A chunk-sized buffer is one an earlier read filled.
        let len = range.end - range.start;
        let mut buf = read_buffer::buffer_for(len as usize);
        file.seek(SeekFrom::Start(range.start)).map_err(io_error)?;
        file.take(len).read_to_end(&mut buf).map_err(io_error)?;
        if (buf.len() as u64) < len {
            return Err(self.changed("it became shorter while it was read".to_string()));
        }
        Ok(read_buffer::into_bytes(buf))
    }

    async fn read_store(
        &self,
        location: &Location,
        range: Range<u64>,
    ) -> Result<Bytes, StorageError> {
        let if_match = match &self.object.version {
            Version::Tag(tag) => Some(tag.clone()),
            Version::Modified(_) | Version::Unknown => None,
        };
        let options = GetOptions {
            range: Some(GetRange::Bounded(range)),
            if_match,
            ..GetOptions::default()
        };
        let got = location
            .store
            .get_opts(&location.path, options)
            .await
            .map_err(|e| match e {
                object_store::Error::Precondition { .. } => {
                    self.changed("it was replaced (its ETag no longer matches)".to_string())
                }
                e => location.error(&self.object.url)(e),
            })?;
        self.check_size(got.meta.size)?;
        match (&self.object.version, &got.meta.e_tag) {
            (Version::Tag(listed), Some(now)) if listed != now => {
                return Err(self.changed(format!(
                    "it was replaced (ETag {listed} when listed, {now} now)"
                )));
            }
            (Version::Modified(listed), _) if got.meta.last_modified.timestamp() > *listed => {
                return Err(self.changed("it was modified after it was listed".to_string()));
            }
            _ => {}
        }
        got.bytes().await.map_err(location.error(&self.object.url))
    }

    fn check_size(&self, size: u64) -> Result<(), StorageError> {
        if size == self.object.size {
            return Ok(());
        }
        Err(self.changed(format!(
            "it was {} bytes when listed and is {size} bytes now",
            self.object.size
        )))
    }

    fn changed(&self, reason: String) -> StorageError {
        StorageError::InputChanged {
            url: self.object.url.to_string(),
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::list_inputs;
    use std::io::Write as _;

    async fn listed(path: &std::path::Path) -> InputSource {
        let url = StorageUrl::Local(path.to_path_buf());
        let mut objects = list_inputs(&url).await.unwrap();
        InputSource::new(objects.remove(0)).unwrap()
    }

    #[tokio::test]
    async fn files_with_any_name_are_read_by_range() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["chapter#1", "x[1].txt", "100%", "a b", "naïve ü", "x%20y"] {
            let path = dir.path().join(name);
            std::fs::write(&path, format!("0123456789 {name}\n")).unwrap();
            let source = listed(&path).await;
            assert_eq!(source.read_range(2..5).await.unwrap(), &b"234"[..]);
        }
    }

    #[tokio::test]
    async fn an_appended_file_fails_the_read_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log#3");
        std::fs::write(&path, "one\n").unwrap();
        let source = listed(&path).await;
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"two\n")
            .unwrap();
        let err = source.read_range(0..4).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "input file://{} changed after the job was submitted: it was 4 bytes when listed and is 8 bytes now",
                path.display()
            )
        );
    }

    #[tokio::test]
    async fn a_file_replaced_by_one_of_the_same_size_fails_the_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data");
        std::fs::write(&path, "old\n").unwrap();
        let source = listed(&path).await;
        let other = dir.path().join("other");
        std::fs::write(&other, "new\n").unwrap();
        std::fs::rename(&other, &path).unwrap();
        let err = source.read_range(0..4).await.unwrap_err();
        assert!(
            matches!(&err, StorageError::InputChanged { reason, .. } if reason.contains("replaced")),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_removed_file_is_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gone");
        std::fs::write(&path, "x\n").unwrap();
        let source = listed(&path).await;
        std::fs::remove_file(&path).unwrap();
        let err = source.read_range(0..2).await.unwrap_err();
        assert!(matches!(err, StorageError::ObjectNotFound { .. }), "{err}");
    }
}
