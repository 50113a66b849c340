//! The jobs built into the stock `quern` binary.
//!
//! - [`wordcount`]: counts whitespace-separated tokens, with a combiner.
//!
//! A user's own job binary follows the same shape: define jobs with the SDK, put them in a
//! [`quern_sdk::JobRegistry`], and hand the registry to the `quern` CLI's `main_with`.

pub mod wordcount;

use quern_sdk::JobRegistry;

/// Every built-in job.
pub fn registry() -> JobRegistry {
    let mut registry = JobRegistry::new();
    registry.register(wordcount::job());
    registry
}
