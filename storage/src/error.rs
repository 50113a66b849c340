//! Storage errors. Each names the URL it concerns, so a user can tell which input or output is
//! wrong.

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("invalid storage URL '{url}': {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("input path does not exist: {url}")]
    NotFound { url: String },
    #[error("input matches no files: {url}")]
    NoMatch { url: String },
    #[error(
        "output {url} already holds a finished job (_SUCCESS exists); choose another output or pass --overwrite"
    )]
    OutputExists { url: String },
    #[error("cannot clean up {}", path.display())]
    Local {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("storage error on {url}")]
    Store {
        url: String,
        #[source]
        source: object_store::Error,
    },
}

impl StorageError {
    pub fn store(url: impl Into<String>) -> impl FnOnce(object_store::Error) -> StorageError {
        let url = url.into();
        move |source| StorageError::Store { url, source }
    }
}
