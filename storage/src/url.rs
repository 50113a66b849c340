//! Storage URLs. A plain path or `file://` URL is local disk; the client makes every local path
//! absolute before a job leaves it, since the coordinator and workers run elsewhere. A
//! [`Location`] is a parsed URL bound to its `object_store` store; nothing below this module
//! knows which kind of store it holds.

use crate::StorageError;
use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

/// A parsed storage URL. Glob characters are kept as they are (they are not URL-encoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageUrl {
    /// An absolute local path.
    Local(PathBuf),
}

impl StorageUrl {
    /// Parses `text`: `file:///abs/path`, or a plain path (made absolute against the current
    /// directory).
    pub fn parse(text: &str) -> Result<Self, StorageError> {
        let invalid = |reason: &str| StorageError::InvalidUrl {
            url: text.to_string(),
            reason: reason.to_string(),
        };
        if text.is_empty() {
            return Err(invalid("empty"));
        }
        let path = match text.split_once("://") {
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
                    path: object_path,
                    url: self.clone(),
                })
            }
        }
    }

    /// The URL of `relative` below this one.
    pub fn join(&self, relative: &str) -> StorageUrl {
        match self {
            StorageUrl::Local(path) => StorageUrl::Local(path.join(relative)),
        }
    }
}

impl std::fmt::Display for StorageUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StorageUrl::Local(path) => write!(f, "file://{}", path.display()),
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
#[derive(Debug, Clone)]
pub struct Location {
    pub store: Arc<dyn ObjectStore>,
    pub path: Path,
    pub url: StorageUrl,
}

impl Location {
    /// The location of an object path in the same store, for error messages and task specs.
    pub fn url_of(&self, path: &Path) -> StorageUrl {
        match &self.url {
            StorageUrl::Local(_) => StorageUrl::Local(PathBuf::from(format!("/{path}"))),
        }
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
    }

    #[test]
    fn unknown_schemes_and_relative_file_urls_are_refused() {
        let err = StorageUrl::parse("ftp://host/x").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid storage URL 'ftp://host/x': unsupported scheme 'ftp'"
        );
        assert!(StorageUrl::parse("file://relative").is_err());
    }
}
