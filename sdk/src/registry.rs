//! The named jobs a binary carries. Workers advertise these names to the coordinator, which gives a
//! task only to a worker that has its job. A job is registered as a factory that builds it from
//! the job's parameters, so that every task, on every worker, builds the job its spec asks for.

use crate::JobError;
use crate::context::Params;
use crate::engine::JobEngine;
use std::collections::BTreeMap;
use std::sync::Arc;

type Factory = Arc<dyn Fn(&Params) -> Result<Arc<dyn JobEngine>, JobError> + Send + Sync>;

/// The jobs a binary carries, by name.
#[derive(Clone, Default)]
pub struct JobRegistry {
    jobs: BTreeMap<String, Factory>,
}

impl JobRegistry {
    /// A registry with no jobs.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a job that takes no parameters, under its own name, replacing any job of the same
    /// name.
    pub fn register(&mut self, job: impl JobEngine) -> &mut Self {
        let name = job.name().to_string();
        let job: Arc<dyn JobEngine> = Arc::new(job);
        self.jobs
            .insert(name, Arc::new(move |_: &Params| Ok(job.clone())));
        self
    }

    /// Adds job `name`, built by `build` from the job's parameters for every task (an error,
    /// such as a missing parameter, fails the submit and the task).
    pub fn register_factory<J: JobEngine>(
        &mut self,
        name: impl Into<String>,
        build: impl Fn(&Params) -> Result<J, JobError> + Send + Sync + 'static,
    ) -> &mut Self {
        let factory: Factory = Arc::new(move |params: &Params| {
            build(params).map(|job| Arc::new(job) as Arc<dyn JobEngine>)
        });
        self.jobs.insert(name.into(), factory);
        self
    }

    /// Whether this binary has job `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.jobs.contains_key(name)
    }

    /// Job `name` as `params` make it; None if this binary has no such job.
    pub fn build(
        &self,
        name: &str,
        params: &Params,
    ) -> Option<Result<Arc<dyn JobEngine>, JobError>> {
        self.jobs.get(name).map(|factory| factory(params))
    }

    /// Job `name` with no parameters, if this binary has it.
    pub fn get(&self, name: &str) -> Option<Arc<dyn JobEngine>> {
        self.build(name, &Params::default())?.ok()
    }

    /// Job names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.jobs.keys().cloned().collect()
    }
}
