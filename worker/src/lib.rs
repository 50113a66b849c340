//! Quern worker.
pub mod record;
pub mod split_reader;
pub mod merge;
pub mod map_output;
pub mod sort_buffer;
pub mod spill;
