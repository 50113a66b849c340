//! How a map task's input becomes the records its mapper sees: the job's [`InputFormat`].
//!
//! - [`InputFormat::Lines`] (the default): text lines, `\n`-terminated, a `\r` before the `\n`
//!   dropped; each at its byte offset. The only format the coordinator cuts into byte ranges
//!   (splits of about `--split-size`): a line belongs to the split where it starts.
//! - [`InputFormat::WholeFile`]: each input file as one record, at offset 0 (Hadoop's
//!   `WholeFileInputFormat`). A file larger than `--max-line` fails its task, naming it.
//! - [`InputFormat::LengthDelimited`]: a file of records, each a 4-byte big-endian length `n`
//!   followed by `n` bytes; a record's offset is that of its length. A record longer than
//!   `--max-line`, or a file that ends inside a record, fails the task, naming the file and the
//!   record's offset.
//! - [`InputFormat::Custom`]: a [`RecordFormat`] of one's own.
//!
//! Every format but lines reads each file whole, in one map task. Whatever the format, an input
//! whose name ends in `.gz` (gzip, multi-member too) or `.zst` (zstd) is decompressed as it is
//! read, and read whole, in one map task (a compressed stream cannot start in its middle);
//! offsets are then offsets in the decompressed bytes.
//!
//! A format of one's own implements [`RecordFormat`]: given a file's bytes (decompressed), it
//! hands out records as a [`RecordSource`]. The job declares it with
//! `JobDef::input(InputFormat::custom(MyFormat))`; it runs in the worker that runs the job, so it
//! needs no registering beyond the job's own. The built-in whole-file and length-delimited
//! readers are written against the same trait (`sdk/src/input/`), and serve as examples.

mod length_delimited;
mod whole_file;

pub use crate::engine::RecordSource;
use crate::error::JobError;
use std::io::BufRead;
use std::sync::Arc;

/// How a job's input is cut into records (see the [module docs](self)).
#[derive(Clone, Default)]
pub enum InputFormat {
    /// Text lines, split across map tasks by byte ranges.
    #[default]
    Lines,
    /// Each file as one record, at offset 0.
    WholeFile,
    /// Records of a 4-byte big-endian length and that many bytes.
    LengthDelimited,
    /// A format of one's own; each file is read whole by one map task.
    Custom(Arc<dyn RecordFormat>),
}

impl InputFormat {
    /// A format of one's own.
    pub fn custom(format: impl RecordFormat) -> Self {
        InputFormat::Custom(Arc::new(format))
    }

    /// Whether an (uncompressed) object may be cut into byte ranges read by separate map tasks:
    /// only lines may; every other format reads each file whole.
    pub fn splits_objects(&self) -> bool {
        matches!(self, InputFormat::Lines)
    }

    /// The format's name, for messages: `lines`, `whole-file`, `length-delimited`, or a custom
    /// format's own.
    pub fn name(&self) -> &str {
        match self {
            InputFormat::Lines => "lines",
            InputFormat::WholeFile => "whole-file",
            InputFormat::LengthDelimited => "length-delimited",
            InputFormat::Custom(format) => format.name(),
        }
    }

    /// The reader of a format that reads whole files; None for lines, which the engine reads by
    /// splits itself.
    pub fn reader(&self) -> Option<&dyn RecordFormat> {
        match self {
            InputFormat::Lines => None,
            InputFormat::WholeFile => Some(&whole_file::WholeFileFormat),
            InputFormat::LengthDelimited => Some(&length_delimited::LengthDelimitedFormat),
            InputFormat::Custom(format) => Some(format.as_ref()),
        }
    }
}

impl std::fmt::Debug for InputFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What a [`RecordFormat`] reads: one whole input file.
pub struct RecordInput<'a> {
    /// The file's bytes from its start, decompressed if it is compressed. A read error carries
    /// the engine's own error (a storage failure, a corrupt compressed stream): `?` turns it
    /// back into that [`JobError`], which fails the task as it should.
    pub bytes: Box<dyn BufRead + 'a>,
    /// The file's URL, for errors to name.
    pub url: String,
    /// The file's size in bytes when known before reading (an uncompressed file's).
    pub size: Option<u64>,
    /// The longest record allowed (`--max-line`): a reader fails on a longer one rather than
    /// hold it (see [`InputError::RecordTooLong`]).
    pub max_record: u64,
}

/// A record format of one's own: turns a file's bytes into records (see the [module
/// docs](self)).
pub trait RecordFormat: Send + Sync + 'static {
    /// The format's name, for messages.
    fn name(&self) -> &str;
    /// The records of `input`, in order, each `(offset, bytes)`.
    fn open<'a>(&self, input: RecordInput<'a>) -> Result<Box<dyn RecordSource + 'a>, JobError>;
}

/// Input that cannot be read as records, the same way on every try and every worker: the task
/// fails at once instead of being retried (wrap it in [`JobError::Input`]).
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// A whole file over the record limit.
    #[error("{url} is {size} bytes, over the {limit}-byte record limit (--max-line)")]
    FileTooLarge {
        /// The file.
        url: String,
        /// Its size, or `more than N` where it is compressed and was read only that far.
        size: String,
        /// The limit.
        limit: u64,
    },
    /// A record over the record limit.
    #[error(
        "the record at byte {offset} of {url} is {size} bytes, over the {limit}-byte limit \
         (--max-line)"
    )]
    RecordTooLong {
        /// The file.
        url: String,
        /// Where the record starts.
        offset: u64,
        /// Its length.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A file that is not what its format says it is.
    #[error("{url} is not valid {format}")]
    Corrupt {
        /// The file.
        url: String,
        /// What it should have been: `gzip`, `zstd`, `length-delimited records`.
        format: String,
        /// What is wrong, where.
        #[source]
        source: std::io::Error,
    },
    /// A map task given part of a file that its format reads whole: the job was submitted by a
    /// client that did not say the job's input format.
    #[error(
        "the task was given bytes {start}..{end} of {url} ({size} bytes), but {why} is read \
         whole; submit the job with a client that knows it"
    )]
    PartOfWhole {
        /// The file.
        url: String,
        /// The split's first byte.
        start: u64,
        /// The split's end.
        end: u64,
        /// The file's size.
        size: u64,
        /// Why it is read whole: `a compressed file`, `whole-file input`.
        why: String,
    },
}

impl InputError {
    /// A [`InputError::Corrupt`] error: `url` is not valid `format`, because `what`.
    pub fn corrupt(url: &str, format: &str, what: String) -> JobError {
        JobError::Input(Box::new(InputError::Corrupt {
            url: url.to_string(),
            format: format.to_string(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, what),
        }))
    }
}

impl From<InputError> for JobError {
    fn from(e: InputError) -> Self {
        JobError::Input(Box::new(e))
    }
}

#[cfg(test)]
mod tests;
