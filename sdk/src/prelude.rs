//! What job code needs in scope, in one import: `use quern_sdk::prelude::*;` (or
//! `use quern::prelude::*;` from the `quern` crate): the traits a job implements, the types its
//! methods take and return, [`JobDef`] to bind them and [`JobRegistry`] to carry them.

pub use crate::context::{InputSplit, MapInput, Params, TaskContext};
pub use crate::error::JobError;
pub use crate::job::{Combiner, HashPartitioner, JobDef, Partitioner};
pub use crate::key::{Key, KeyEncode};
pub use crate::map::{Emitter, Mapper};
pub use crate::reduce::{GroupReducer, Grouped, Output, Reducer};
pub use crate::registry::JobRegistry;
pub use crate::text::TextFormat;
pub use crate::value::Value;
