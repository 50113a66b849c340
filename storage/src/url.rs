//! Storage URLs. A plain path or `file://` URL is local disk; `s3://bucket/key` is S3-compatible
//! storage. The client makes every local path absolute before a job leaves it, since the
//! coordinator and workers run elsewhere. A [`Location`] is a parsed URL bound to its
//! `object_store` store; nothing below this module knows which kind of store it holds.

use crate::StorageError;
use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use object_store::multipart::MultipartStore;
use object_store::path::Path;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

/// A parsed storage URL. Glob characters are kept as they are (they are not URL-encoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageUrl {
    /// An absolute local path.
    Local(PathBuf),
    /// An object key, or key prefix, in a bucket.
    S3 { bucket: String, key: String },
}

impl StorageUrl {
    /// Parses `text`: `s3://bucket/key`, `file:///abs/path`, or a plain path (made absolute
    /// against the current directory).
    pub fn parse(text: &str) -> Result<Self, StorageError> {
        let invalid = |reason: &str| StorageError::InvalidUrl {
            url: text.to_string(),
            reason: reason.to_string(),
        };
        if text.is_empty() {
            return Err(invalid("empty"));
        }
        let path = match text.split_once("://") {
            Some(("s3", rest)) => {
                let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.is_empty() {
                    return Err(invalid("no bucket; the form is s3://BUCKET/KEY"));
                }
                return Ok(StorageUrl::S3 {
                    bucket: bucket.to_string(),
                    key: key.to_string(),
                });
            }
            Some(("file", rest)) if rest.starts_with('/') => PathBuf::from(rest),
            Some(("file", _)) => return Err(invalid("a file:// URL needs an absolute path")),
            Some((scheme, _)) => return Err(invalid(&format!("unsupported scheme '{scheme}'"))),
            None => std::path::absolute(text).map_err(|e| invalid(&e.to_string()))?,
        };
        Ok(StorageUrl::Local(normalize(&path)))
    }

    /// Binds the URL to its store.
    pub fn locate(&self) -> Result<Location, StorageError> {
        match self {
            StorageUrl::Local(path) => {
                let object_path =
                    Path::from_absolute_path(path).map_err(|e| StorageError::InvalidUrl {
                        url: self.to_string(),
                        reason: e.to_string(),
                    })?;
                Ok(Location {
                    store: local_store(),
                    multipart: None,
                    endpoint: Arc::from("local disk"),
                    path: object_path,
                    url: self.clone(),
                })
            }
            StorageUrl::S3 { bucket, key } => {
                let client = crate::s3::client(bucket, self)?;
                // Keys as S3 lists them, unencoded (Path::from would percent-encode `%`, `~`, …).
                let path = Path::parse(key.trim_end_matches('/')).map_err(|e| {
                    StorageError::InvalidUrl {
                        url: self.to_string(),
                        reason: e.to_string(),
                    }
                })?;
                Ok(Location {
                    store: client.store.clone(),
                    multipart: Some(client.store),
                    endpoint: client.endpoint,
                    path,
                    url: self.clone(),
                })
            }
        }
    }

    /// The URL of `relative` below this one.
    pub fn join(&self, relative: &str) -> StorageUrl {
        match self {
            StorageUrl::Local(path) => StorageUrl::Local(path.join(relative)),
            StorageUrl::S3 { bucket, key } => {
                let key = if key.is_empty() || key.ends_with('/') {
                    format!("{key}{relative}")
                } else {
                    format!("{key}/{relative}")
                };
                StorageUrl::S3 {
                    bucket: bucket.clone(),
                    key,
                }
            }
        }
    }

    /// The URL up to the last `/` before the first glob character, if the URL has one.
    pub fn glob_base(&self) -> Option<StorageUrl> {
        let text = self.to_string();
        let first = text.find(['*', '?', '['])?;
        let slash = text[..first].rfind('/')?;
        StorageUrl::parse(&text[..slash]).ok()
    }
}

impl std::fmt::Display for StorageUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StorageUrl::Local(path) => write!(f, "file://{}", path.display()),
            StorageUrl::S3 { bucket, key } => write!(f, "s3://{bucket}/{key}"),
        }
    }
}

/// Resolves `.` and `..` lexically, as object store paths have no such segments.
fn normalize(path: &std::path::Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// One local-disk store for the whole process.
fn local_store() -> Arc<dyn ObjectStore> {
    static STORE: OnceLock<Arc<dyn ObjectStore>> = OnceLock::new();
    STORE
        .get_or_init(|| Arc::new(LocalFileSystem::new()))
        .clone()
}

/// A URL bound to the store that serves it.
#[derive(Clone)]
pub struct Location {
    pub store: Arc<dyn ObjectStore>,
    /// Object stores with multipart uploads that can be held open until commit (S3).
    pub(crate) multipart: Option<Arc<dyn MultipartStore>>,
    /// Where the store is, for error messages: an S3 endpoint, or "local disk".
    pub(crate) endpoint: Arc<str>,
    pub path: Path,
    pub url: StorageUrl,
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Location({} at {})", self.url, self.endpoint)
    }
}

impl Location {
    /// The location of an object path in the same store, for error messages and task specs.
    pub fn url_of(&self, path: &Path) -> StorageUrl {
        match &self.url {
            StorageUrl::Local(_) => StorageUrl::Local(PathBuf::from(format!("/{path}"))),
            StorageUrl::S3 { bucket, .. } => StorageUrl::S3 {
                bucket: bucket.clone(),
                key: path.to_string(),
            },
        }
    }

    /// Turns an `object_store` error on `url` into a [`StorageError`] that says what went wrong.
    pub fn error(
        &self,
        url: &StorageUrl,
    ) -> impl FnOnce(object_store::Error) -> StorageError + use<> {
        let (url, endpoint) = (url.clone(), self.endpoint.clone());
        move |e| StorageError::classify(&url, &endpoint, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths_become_absolute_file_urls() {
        let url = StorageUrl::parse("data/books").unwrap();
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(url, StorageUrl::Local(cwd.join("data/books")));
        assert_eq!(
            url.to_string(),
            format!("file://{}", cwd.join("data/books").display())
        );
    }

    #[test]
    fn dot_segments_are_resolved() {
        let url = StorageUrl::parse("file:///data/./books/../logs/x").unwrap();
        assert_eq!(url, StorageUrl::Local(PathBuf::from("/data/logs/x")));
    }

    #[test]
    fn file_urls_keep_glob_characters() {
        let url = StorageUrl::parse("file:///data/logs/*/part-?").unwrap();
        assert_eq!(url, StorageUrl::Local(PathBuf::from("/data/logs/*/part-?")));
        let base = url.glob_base().unwrap();
        assert_eq!(base, StorageUrl::Local(PathBuf::from("/data/logs")));
    }

    #[test]
    fn s3_urls_split_into_bucket_and_key() {
        let url = StorageUrl::parse("s3://logs/2026/*/part-*").unwrap();
        let expected = StorageUrl::S3 {
            bucket: "logs".into(),
            key: "2026/*/part-*".into(),
        };
        assert_eq!(url, expected);
        assert_eq!(url.to_string(), "s3://logs/2026/*/part-*");
        let base = StorageUrl::S3 {
            bucket: "logs".into(),
            key: "2026".into(),
        };
        assert_eq!(url.glob_base().unwrap(), base);
        let bucket_only = StorageUrl::parse("s3://books").unwrap();
        assert_eq!(
            bucket_only.join("_SUCCESS").to_string(),
            "s3://books/_SUCCESS"
        );
        let prefix = StorageUrl::parse("s3://books/out/").unwrap();
        assert_eq!(
            prefix.join("part-r-00000").to_string(),
            "s3://books/out/part-r-00000"
        );
    }

    #[test]
    fn unknown_schemes_relative_file_urls_and_bucketless_s3_urls_are_refused() {
        let err = StorageUrl::parse("ftp://host/x").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid storage URL 'ftp://host/x': unsupported scheme 'ftp'"
        );
        assert!(StorageUrl::parse("file://relative").is_err());
        let err = StorageUrl::parse("s3:///key").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid storage URL 's3:///key': no bucket; the form is s3://BUCKET/KEY"
        );
    }
}
