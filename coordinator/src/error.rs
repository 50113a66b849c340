//! What the coordinator refuses, and the one place where each becomes a gRPC status.

pub use quern_proto::error_chain;
use quern_storage::StorageError;
use tonic::{Code, Status};

#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    #[error("invalid job: {0}")]
    InvalidJob(String),
    #[error("unknown job id '{0}'")]
    UnknownJob(String),
    #[error("unknown worker '{0}'; register first")]
    UnknownWorker(String),
    #[error("output {output} is in use by {holder}")]
    OutputBusy { output: String, holder: String },
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("{what} timed out after {seconds} s")]
    Timeout { what: String, seconds: u64 },
    #[error("missing field '{0}'")]
    MissingField(&'static str),
    #[error(transparent)]
    Journal(#[from] crate::journal::JournalError),
    #[error("cannot make a secret: {0}")]
    NoRandomness(#[from] getrandom::Error),
}

impl From<CoordinatorError> for Status {
    fn from(e: CoordinatorError) -> Status {
        let code = match &e {
            CoordinatorError::InvalidJob(_) | CoordinatorError::MissingField(_) => {
                Code::InvalidArgument
            }
            CoordinatorError::UnknownJob(_) => Code::NotFound,
            CoordinatorError::UnknownWorker(_) => Code::FailedPrecondition,
            CoordinatorError::OutputBusy { .. } => Code::AlreadyExists,
            CoordinatorError::Timeout { .. } => Code::DeadlineExceeded,
            CoordinatorError::Journal(_) | CoordinatorError::NoRandomness(_) => Code::Unavailable,
            CoordinatorError::Storage(s) => match s {
                StorageError::InvalidUrl { .. }
                | StorageError::Config { .. }
                | StorageError::NonUtf8Name { .. }
                | StorageError::OutputInsideInput { .. }
                | StorageError::InputInsideOutput { .. } => Code::InvalidArgument,
                StorageError::NotFound { .. }
                | StorageError::NoMatch { .. }
                | StorageError::ObjectNotFound { .. }
                | StorageError::NoBucket { .. } => Code::NotFound,
                StorageError::OutputExists { .. }
                | StorageError::OutputHasParts { .. }
                | StorageError::NotJobOutput { .. }
                | StorageError::OutputNotADirectory { .. } => Code::AlreadyExists,
                StorageError::CredentialsRefused { .. } => Code::PermissionDenied,
                StorageError::LineTooLong { .. } | StorageError::InputChanged { .. } => {
                    Code::InvalidArgument
                }
                StorageError::Unreachable { .. }
                | StorageError::Store { .. }
                | StorageError::Local { .. }
                | StorageError::LocalInput { .. } => Code::Unavailable,
                StorageError::NoUpload { .. } => Code::FailedPrecondition,
            },
        };
        Status::new(code, error_chain(&e))
    }
}
