//! User counters: named totals that job code adds to from map, combine or reduce
//! (`ctx.counter("grep.matches").add(1)`). A task's counters travel with its success report;
//! the coordinator keeps those of the one attempt per task whose output the job used, so totals
//! count each task exactly once, however many attempts ran.

use crate::JobError;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Most distinct user counters one task may have (Hadoop's `mapreduce.job.counters.max`).
pub const MAX_COUNTERS: usize = 120;
/// Longest user counter name, in bytes.
pub const MAX_COUNTER_NAME: usize = 128;

/// One named counter. Cheap to clone; a hot loop can keep it instead of looking the name up for
/// every record.
#[derive(Clone, Debug, Default)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// Adds one.
    pub fn increment(&self) {
        self.add(1);
    }

    /// The count so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The user counters of one task attempt, by name. Clones share the same counters.
#[derive(Clone, Debug, Default)]
pub struct UserCounters(Arc<Mutex<BTreeMap<String, Counter>>>);

impl UserCounters {
    /// The counter `name`, made (at zero) on first use.
    pub fn counter(&self, name: &str) -> Counter {
        let mut counters = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(counter) = counters.get(name) {
            return counter.clone();
        }
        counters.entry(name.to_string()).or_default().clone()
    }

    /// Every counter's count, by name; an error naming the problem if the task made more than
    /// [`MAX_COUNTERS`] counters or one with an empty or over-long name.
    pub fn totals(&self) -> Result<BTreeMap<String, u64>, JobError> {
        let counters = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if counters.len() > MAX_COUNTERS {
            return Err(JobError::user(format!(
                "the task made {} user counters; at most {MAX_COUNTERS} are kept",
                counters.len()
            )));
        }
        for name in counters.keys() {
            if name.is_empty() || name.len() > MAX_COUNTER_NAME {
                return Err(JobError::user(format!(
                    "user counter name '{name}' must be 1 to {MAX_COUNTER_NAME} bytes"
                )));
            }
        }
        Ok(counters
            .iter()
            .map(|(name, counter)| (name.clone(), counter.get()))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_add_under_their_names_and_clones_share_them() {
        let counters = UserCounters::default();
        let matches = counters.counter("grep.matches");
        matches.add(2);
        counters.clone().counter("grep.matches").increment();
        counters.counter("lines.empty");
        let totals = counters.totals().unwrap();
        assert_eq!(
            totals.into_iter().collect::<Vec<_>>(),
            [
                ("grep.matches".to_string(), 3),
                ("lines.empty".to_string(), 0)
            ]
        );
    }

    #[test]
    fn too_many_counters_or_a_bad_name_is_an_error_naming_it() {
        let counters = UserCounters::default();
        counters.counter("");
        assert_eq!(
            counters.totals().unwrap_err().to_string(),
            "job code failed: user counter name '' must be 1 to 128 bytes"
        );
        let counters = UserCounters::default();
        for i in 0..=MAX_COUNTERS {
            counters.counter(&format!("c{i}"));
        }
        assert_eq!(
            counters.totals().unwrap_err().to_string(),
            "job code failed: the task made 121 user counters; at most 120 are kept"
        );
    }
}
