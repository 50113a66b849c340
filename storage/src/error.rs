//! Storage errors. Each names the URL or endpoint it concerns, so a user can tell which input,
//! output or server is wrong; none carries credentials.

use crate::StorageUrl;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("invalid storage URL '{url}': {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("cannot set up storage for {url} at {endpoint}: {reason}")]
    Config {
        url: String,
        endpoint: String,
        reason: String,
    },
    #[error("input path does not exist: {url}")]
    NotFound { url: String },
    #[error("input matches no files: {url}")]
    NoMatch { url: String },
    #[error("object not found: {url}")]
    ObjectNotFound { url: String },
    #[error("bucket '{bucket}' does not exist at {endpoint}")]
    NoBucket { bucket: String, endpoint: String },
    #[error(
        "{endpoint} refused the credentials for {url} (check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
    )]
    CredentialsRefused { url: String, endpoint: String },
    #[error("cannot reach {endpoint} for {url}")]
    Unreachable {
        url: String,
        endpoint: String,
        #[source]
        source: object_store::Error,
    },
    #[error(
        "output {url} already holds a finished job (_SUCCESS exists); choose another output or pass --overwrite"
    )]
    OutputExists { url: String },
    #[error(
        "output {url} holds part files of an earlier run; choose another output or pass --overwrite"
    )]
    OutputHasParts { url: String },
    #[error("cannot commit {url} for attempt {attempt}: no multipart upload was opened for it")]
    NoUpload { url: String, attempt: u64 },
    #[error("a line at byte {offset} of {url} is longer than the {limit}-byte limit")]
    LineTooLong {
        url: String,
        offset: u64,
        limit: u64,
    },
    #[error("input {url} changed after the job was submitted: {reason}")]
    InputChanged { url: String, reason: String },
    #[error("cannot read {}", path.display())]
    LocalInput {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("input file name is not UTF-8: {path}")]
    NonUtf8Name { path: String },
    #[error(
        "--overwrite refused: output {url} holds '{entry}', which is not job output \
         (only _SUCCESS, part-r-NNNNN, part-m-NNNNN and _temporary/ are replaced); \
         move it away or choose another output"
    )]
    NotJobOutput { url: String, entry: String },
    #[error("--overwrite refused: output {url} is {what}, not a directory")]
    OutputNotADirectory { url: String, what: &'static str },
    #[error("output {output} is, or is inside, input {input}; a job must not write where it reads")]
    OutputInsideInput { output: String, input: String },
    #[error(
        "input {input} is inside output {output}, which --overwrite would delete; choose another output"
    )]
    InputInsideOutput { output: String, input: String },
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
    /// Whether the same read fails the same way on any worker (a line over the limit, an input
    /// that changed since it was listed), so that retrying the task elsewhere is pointless.
    pub fn is_deterministic(&self) -> bool {
        matches!(
            self,
            StorageError::LineTooLong { .. } | StorageError::InputChanged { .. }
        )
    }

    /// Says what an `object_store` error on `url` at `endpoint` means.
    pub fn classify(url: &StorageUrl, endpoint: &str, e: object_store::Error) -> StorageError {
        let url_text = url.to_string();
        let chain = quern_proto::source_chain(&e);
        match e {
            object_store::Error::NotFound { .. } if chain.contains("NoSuchBucket") => {
                no_bucket(url, endpoint)
            }
            object_store::Error::NotFound { .. } => StorageError::ObjectNotFound { url: url_text },
            object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. } => StorageError::CredentialsRefused {
                url: url_text,
                endpoint: endpoint.to_string(),
            },
            _ if chain.contains("NoSuchBucket") => no_bucket(url, endpoint),
            // Listings report statuses as generic errors.
            _ if chain.contains("403 Forbidden") || chain.contains("401 Unauthorized") => {
                StorageError::CredentialsRefused {
                    url: url_text,
                    endpoint: endpoint.to_string(),
                }
            }
            _ if is_unreachable(&chain) => StorageError::Unreachable {
                url: url_text,
                endpoint: endpoint.to_string(),
                source: e,
            },
            source => StorageError::Store {
                url: url_text,
                source,
            },
        }
    }
}

fn no_bucket(url: &StorageUrl, endpoint: &str) -> StorageError {
    let bucket = match url {
        StorageUrl::S3 { bucket, .. } => bucket.clone(),
        StorageUrl::Local(_) => String::new(),
    };
    StorageError::NoBucket {
        bucket,
        endpoint: endpoint.to_string(),
    }
}

/// Whether the request never got an answer (refused, timed out, reset before a response).
fn is_unreachable(chain: &str) -> bool {
    [
        "error sending request",
        "Connection refused",
        "tcp connect error",
        "connect timeout",
        "dns error",
    ]
    .iter()
    .any(|needle| chain.contains(needle))
}
