//! Quern's storage layer. Everything the engine reads or writes outside a worker's local disk goes
//! through here, and through `object_store`, so local disk and object stores share one code path.
//!
//! - [`url`]: parses input and output URLs (plain paths, `file://`, `s3://`) into a store and a
//!   path; `s3` configures S3-compatible stores from the environment.
//! - [`list`]: expands inputs (files, directories, globs) into the objects to split, with the
//!   size and version each had when listed.
//! - [`read`]: ranged reads of a listed input object, failing if it changed since; the buffers
//!   local reads fill are kept for the next read (`read_buffer`).
//! - [`compression`]: which input objects are compressed (`.gz`, `.zst`), by their names.
//! - [`commit`]: the output committer: only the attempt the coordinator accepts makes its part file
//!   final (a rename on local disk, completing the multipart upload on S3); `_SUCCESS` comes last.
//! - [`overwrite`]: what `--overwrite` may delete (a previous job's output, nothing else), and
//!   the rule that no job writes where it reads; [`remove_output`] deletes a job's output.
//! - [`error`]: what goes wrong, naming the URL it went wrong on.

pub mod commit;
pub mod compression;
pub mod error;
pub mod list;
pub mod overwrite;
pub mod read;
mod read_buffer;
mod s3;
pub mod url;

pub use commit::{OutputDir, PartKind, PartUpload, PendingPart};
pub use compression::Compression;
pub use error::StorageError;
pub use list::{InputObject, Version, list_inputs};
pub use overwrite::{check_output_apart, remove_output};
pub use read::InputSource;
pub use read_buffer::READ_BUFFER_BYTES;
pub use url::{Location, StorageUrl};
