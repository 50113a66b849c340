//! The Quern worker: registers with the coordinator, runs the map and reduce tasks it is given,
//! serves its map outputs to reducers, and heartbeats.
//!
//! The data path, in file order:
//! - map side: [`input_format`] (records of a split: [`split_reader`]'s lines, [`decompress`]ed
//!   if need be, or the job's own format) → [`map_input`] (a map's objects in turn: one, or a
//!   packed split's small files) → [`map`] (the task) → [`map_output`]
//!   (partition, [`sort_buffer`], combine, [`spill`], merge) → [`shuffle_server`];
//! - reduce side: [`map_locations`] → [`shuffle_fetch`] → [`merge`] (k-way, grouped by key) → [`reduce`] →
//!   [`part_file`] → [`commit`] (only the accepted attempt's part file becomes final);
//! - a map-only job (`--reducers 0`): [`input_format`] → [`map`] → [`part_file`] → [`commit`];
//! - a total-order job first runs [`sample`] tasks, whose keys set the maps' partitions.
//!
//! Around it: [`record`] (the framing of records on disk and on the wire), [`task`] (running and
//! reporting attempts), [`attempt`] (what an attempt releases however it ends), [`session`]
//! (registration, assignments and heartbeats), [`work_dir`] (a worker's own directory, and
//! removing those crashed workers left), [`context`] and [`error`]; [`failpoint`] injects faults
//! for end-to-end tests (a corrupt map output, a worker paused before its commit) and does nothing
//! unless their environment variables are set.

pub mod attempt;
pub mod codec;
pub mod commit;
pub mod context;
pub mod decompress;
pub mod error;
pub mod failpoint;
pub mod input_format;
pub mod map;
pub mod map_input;
pub mod map_locations;
pub mod map_output;
pub mod memory;
pub mod merge;
pub mod merge_passes;
pub mod open_files;
pub mod part_file;
pub mod record;
pub mod reduce;
pub mod sample;
pub mod session;
pub mod shuffle_fetch;
pub mod shuffle_server;
pub mod sort_buffer;
pub mod spill;
pub mod split_reader;
pub mod task;
#[cfg(test)]
pub(crate) mod testing;
pub mod work_dir;

pub use session::{DEFAULT_ORPHAN_GRACE, WorkerConfig, WorkerError, run};
