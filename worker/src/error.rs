//! Why a task attempt failed. A failed attempt is reported to the coordinator (which retries it
//! elsewhere); it never takes the worker down. The report carries the error on one line
//! ([`quern_proto::error_chain`]): a gRPC cause reads as its message or its short cause
//! (`connection refused`), never as tonic's debug dump.

use quern_sdk::JobError;
use quern_storage::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("this worker does not have job '{name}'")]
    UnknownJob { name: String },
    #[error("assignment has no {0}")]
    MissingField(&'static str),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Job(#[from] JobError),
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("job code panicked: {0}")]
    Panicked(String),
    #[error("cannot fetch map output m-{map_task:05} from {address}")]
    Fetch {
        /// The map task whose output it is, which is what a user knows it by.
        map_task: u32,
        /// The attempt that wrote it: the coordinator re-runs the map when this attempt's output
        /// is the one it still hands out.
        map_attempt: u64,
        /// The peer worker's URL.
        address: String,
        #[source]
        source: tonic::Status,
    },
    #[error("coordinator call failed")]
    Coordinator(#[source] tonic::Status),
    #[error("the coordinator did not let this attempt commit (another attempt won)")]
    CommitDenied,
    #[error("cancelled")]
    Cancelled,
}

impl TaskError {
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> TaskError {
        let context = context.into();
        move |source| TaskError::Io { context, source }
    }

    /// Turns a failed `spawn_blocking` into the attempt's error.
    pub fn from_join(e: tokio::task::JoinError) -> TaskError {
        if !e.is_panic() {
            return TaskError::Cancelled;
        }
        let panic = e.into_panic();
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "non-text panic payload".to_string());
        TaskError::Panicked(message)
    }
}
