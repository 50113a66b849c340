//! The Quern SDK: everything a job author touches.
//!
//! - [`context`]: the task a piece of job code runs in, and the job's parameters.
//! - [`counter`]: user counters that job code adds to, counted once per task.
//! - [`key`]: order-preserving key encoding, so the engine sorts keys by comparing bytes; tuple
//!   keys for a secondary sort.
//! - [`value`]: the value codec (serde + bincode 2), behind one module so it can be swapped.
//! - [`text`]: how keys and values are written as `key<TAB>value` output lines.
//! - [`map`]: the [`Mapper`] and the [`Emitter`] it writes pairs to.
//! - [`reduce`]: the [`Reducer`] (or [`GroupReducer`]) and the [`Output`] it writes lines to.
//! - [`job`]: the `Combiner` and `Partitioner` traits and [`job::JobDef`], which binds a job's
//!   pieces under a name and says how its reduce input is grouped.
//! - [`total_order`]: partitions of contiguous key ranges, cut by a sample of the keys.
//! - [`engine`]: the byte-level interface the worker drives; a typed job is erased to it.
//! - [`input`]: how a job's input becomes records: lines, whole files, length-delimited records,
//!   or a [`input::RecordFormat`] of one's own; compressed input.
//! - [`registry`]: the named jobs a binary carries.
//! - [`local`]: an in-process runner for unit-testing a job without a cluster.
//! - [`prelude`]: what job code needs in scope, in one import.
//! - `map_combine`: folds a job's values by its combiner as the mapper emits them.
//! - [`error`]: the error type user code and codecs return.

#![warn(missing_docs)]

pub mod context;
pub mod counter;
pub mod engine;
pub mod error;
pub mod input;
pub mod job;
pub mod key;
pub mod local;
pub mod map;
mod map_combine;
pub mod prelude;
pub mod reduce;
pub mod registry;
pub mod text;
pub mod total_order;
pub mod value;

pub use context::{InputCursor, InputSplit, MapInput, Params, TaskContext};
pub use counter::{Counter, UserCounters};
pub use engine::{JobEngine, MapSink, TextSink, ValueStream};
pub use error::JobError;
pub use input::{InputFormat, RecordFormat};
pub use job::{Combiner, HashPartitioner, JobDef, NoReducer, Partitioner};
pub use key::{CompositeKey, Key, KeyEncode, KeyParts};
pub use map::{Emitter, Mapper};
pub use reduce::{GroupReducer, Grouped, Output, ReduceStage, Reducer};
pub use registry::JobRegistry;
pub use text::TextFormat;
pub use value::Value;

/// The serde crate the SDK's values travel with, so a job's own value types derive it without a
/// dependency of their own: `#[derive(quern_sdk::serde::Serialize, quern_sdk::serde::Deserialize)]`
/// with `#[serde(crate = "quern_sdk::serde")]`.
pub use serde;
