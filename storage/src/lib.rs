//! Quern's storage layer. Everything the engine reads or writes outside a worker's local disk goes
//! through here, and through `object_store`, so local disk and object stores share one code path.
//!
//! - [`url`]: parses input and output URLs (plain paths, `file://`) into a store and a path.
//! - [`list`]: expands inputs (files, directories, globs) into the objects to split.
//! - [`commit`]: the output committer: part files written under a temporary name, made final only
//!   for the attempt the coordinator accepts, and `_SUCCESS` written last.
//! - [`error`]: what goes wrong, naming the URL it went wrong on.

pub mod commit;
pub mod error;
pub mod list;
pub mod url;

pub use commit::{OutputDir, PartUpload, PendingPart};
pub use error::StorageError;
pub use list::{InputObject, list_inputs};
pub use url::{Location, StorageUrl};
