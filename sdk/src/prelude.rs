//! What job code needs in scope, in one import: `use quern_sdk::prelude::*;` (or
//! `use quern::prelude::*;` from the `quern` crate): the traits a job implements, the types its
//! methods take and return, [`JobDef`] to bind them and [`JobRegistry`] to carry them.

pub use crate::context::{InputSplit, Params, TaskContext};
pub use crate::error::JobError;
pub use crate::job::{
    Combiner, Emitter, GroupReducer, Grouped, HashPartitioner, JobDef, Mapper, Output, Partitioner,
    Reducer,
};
pub use crate::key::{Key, KeyEncode};
pub use crate::registry::JobRegistry;
pub use crate::text::TextFormat;
pub use crate::value::Value;
