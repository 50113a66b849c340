//! The named jobs a binary carries. Workers advertise these names to the coordinator, which gives a
//! task only to a worker that has its job.

use crate::engine::JobEngine;
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Clone, Default)]
pub struct JobRegistry {
    jobs: BTreeMap<String, Arc<dyn JobEngine>>,
}

impl JobRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a job under its own name, replacing any job of the same name.
    pub fn register(&mut self, job: impl JobEngine) -> &mut Self {
        self.jobs.insert(job.name().to_string(), Arc::new(job));
        self
    }

    pub fn get(&self, name: &str) -> Option<Arc<dyn JobEngine>> {
        self.jobs.get(name).cloned()
    }

    /// Job names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.jobs.keys().cloned().collect()
    }
}
