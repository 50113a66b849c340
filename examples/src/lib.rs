//! The jobs built into the stock `quern` binary.
//!
//! - [`wordcount`]: counts whitespace-separated tokens, with a combiner.
//! - [`grep`]: the lines holding `-D pattern=STR`, with their file and offset.
//! - [`indexer`]: an inverted index, each word with the files that hold it.
//! - [`join`]: a reduce-side inner join of two inputs, told apart by `-D left=PREFIX`.
//! - [`sort`]: every line, sorted bytewise across the part files (total order).
//!
//! A user's own job binary follows the same shape: define jobs with the SDK, put them in a
//! [`quern_sdk::JobRegistry`], and hand the registry to the `quern` CLI's `main_with`.

pub mod grep;
pub mod indexer;
pub mod join;
pub mod sort;
pub mod wordcount;

use quern_sdk::JobRegistry;

/// Every built-in job.
pub fn registry() -> JobRegistry {
    let mut registry = JobRegistry::new();
    registry.register(wordcount::job());
    registry.register_factory(grep::NAME, grep::job);
    registry.register(indexer::job());
    registry.register_factory(join::NAME, join::job);
    registry.register(sort::job());
    registry
}
