//! The error that user code, codecs and the engine interface return.

/// A failure inside a job's own code or data: it fails the task attempt, never the process.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Key bytes that do not decode as the job's key type.
    #[error("cannot decode a key: {reason}")]
    KeyDecode {
        /// What was wrong with them.
        reason: String,
    },
    /// Value bytes that do not decode as the job's value type.
    #[error("cannot decode a value")]
    ValueDecode(#[source] bincode::error::DecodeError),
    /// A value that cannot be encoded.
    #[error("cannot encode a value")]
    ValueEncode(#[source] bincode::error::EncodeError),
    /// The job's own code failed, saying why (see [`JobError::user`]).
    #[error("job code failed: {0}")]
    User(String),
    /// A job parameter is missing or does not parse (see [`crate::Params`]).
    #[error("{0}")]
    Param(String),
    /// The split's input could not be read (a storage error, a line over the length limit).
    #[error("cannot read the input")]
    Input(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The engine's own I/O under a job's call (a spill file, a fetched segment).
    #[error("I/O error in the task's local data")]
    Io(#[source] std::io::Error),
}

impl JobError {
    /// An error raised by a job's own logic, with a message for the task history.
    pub fn user(message: impl Into<String>) -> Self {
        JobError::User(message.into())
    }
}

impl From<std::io::Error> for JobError {
    /// An I/O error; one that carries a `JobError` is that error: the engine hands a record
    /// format its input through [`std::io::Read`], whose errors carry the storage or
    /// decompression failure underneath (see [`crate::input::RecordInput`]).
    fn from(e: std::io::Error) -> Self {
        if !e.get_ref().is_some_and(|inner| inner.is::<JobError>()) {
            return JobError::Io(e);
        }
        let inner = e.into_inner().map(|inner| inner.downcast::<JobError>());
        *inner
            .expect("checked above that it carries an error")
            .expect("checked above that it is a JobError")
    }
}
