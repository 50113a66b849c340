//! Why a task attempt failed. A failed attempt is reported to the coordinator (which retries it
//! elsewhere); it never takes the worker down. The report carries the error on one line
//! ([`quern_proto::error_chain`]): a gRPC cause reads as its message or its short cause
//! (`connection refused`), never as tonic's debug dump.

use quern_proto::FailureKind;
use quern_sdk::JobError;
use quern_sdk::input::InputError;
use quern_storage::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("this worker does not have job '{name}'")]
    UnknownJob { name: String },
    #[error("assignment has no {0}")]
    MissingField(&'static str),
    /// A job id that is not one: it never reaches a path on this worker's disk.
    #[error("'{0}' is not a job id")]
    InvalidJobId(String),
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
    #[error("cannot fetch map output m-{map_task:05} from {worker} ({address})")]
    Fetch {
        /// The map task whose output it is, which is what a user knows it by.
        map_task: u32,
        /// The attempt that wrote it: the coordinator re-runs the map when this attempt's output
        /// is the one it still hands out.
        map_attempt: u64,
        /// The peer worker's id and URL.
        worker: String,
        address: String,
        #[source]
        source: tonic::Status,
    },
    /// A fetched segment did not match the checksum its holder wrote: the map runs again.
    #[error(
        "map output m-{map_task:05} (attempt {map_attempt}) from {worker} ({address}) is corrupt: {reason}"
    )]
    CorruptMapOutput {
        map_task: u32,
        map_attempt: u64,
        worker: String,
        address: String,
        reason: String,
    },
    /// A peer refused to serve map output (bad credentials, an unknown call): a configuration
    /// error on one side or the other, not a lost map output.
    #[error("{address} refused to serve map output of attempt {map_attempt}")]
    FetchRefused {
        map_attempt: u64,
        address: String,
        #[source]
        source: tonic::Status,
    },
    #[error("coordinator call failed")]
    Coordinator(#[source] tonic::Status),
    /// The coordinator's map output events do not hold together (see [`crate::map_locations`]).
    #[error("the coordinator's map output events are inconsistent: {0}")]
    BadLocations(String),
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

    /// How the coordinator should take this failure: a lost map output, a deterministic failure
    /// that no retry can mend, or the task's own error.
    pub fn failure_kind(&self) -> FailureKind {
        let input = |e: &(dyn std::error::Error + 'static)| {
            e.is::<InputError>()
                || e.downcast_ref::<StorageError>()
                    .is_some_and(StorageError::is_deterministic)
        };
        match self {
            TaskError::Fetch { .. } => FailureKind::Fetch,
            TaskError::CorruptMapOutput { .. } => FailureKind::CorruptMapOutput,
            TaskError::Storage(e) if e.is_deterministic() => FailureKind::Fatal,
            TaskError::Job(JobError::Input(e)) if input(e.as_ref()) => FailureKind::Fatal,
            _ => FailureKind::Task,
        }
    }

    /// The map attempt whose output this error says could not be fetched whole, if any.
    pub fn failed_map_attempt(&self) -> Option<u64> {
        match self {
            TaskError::Fetch { map_attempt, .. }
            | TaskError::CorruptMapOutput { map_attempt, .. } => Some(*map_attempt),
            _ => None,
        }
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
