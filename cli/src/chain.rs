//! Job chaining: jobs run one after another, each over the output of the one before, through
//! the same client as `quern submit --wait`. Every step is checked (job known, parameters valid)
//! before the first runs. A step's output that the next step reads, an intermediate, is written
//! beside the final output, as `OUTPUT.step-N`, and deleted once the step that reads it has
//! succeeded; if that step fails, the intermediate is kept, and the error names it.
//!
//! ```no_run
//! # async fn example(registry: quern_sdk::JobRegistry) -> anyhow::Result<()> {
//! use quern::chain::{Chain, Step};
//!
//! let chain = Chain::new(Step::new("wordcount")).then(Step::new("grep").param("pattern", "love"));
//! // On a running cluster:
//! let mut client = quern::client::connect("http://127.0.0.1:7070", None, &Default::default()).await?;
//! chain.run(&mut client, "http://127.0.0.1:7070", &registry, &["books/"], "counts-of-love").await?;
//! // Or on a cluster in this process:
//! chain.run_local(registry, 2, &["books/"], "counts-of-love-2").await?;
//! # Ok(()) }
//! ```

use crate::args::JobArgs;
use crate::client::{self, Client};
use crate::embedded::LocalCluster;
use crate::progress::Progress;
use anyhow::{Context as _, Result, bail};
use quern_proto::{JobSpec, JobState, JobStatus};
use quern_sdk::JobRegistry;
use quern_storage::StorageUrl;
use std::time::Duration;

/// How long a step waits for a coordinator that stopped answering, as `quern submit --wait`
/// does by default.
const RECONNECT: Duration = Duration::from_secs(60);

/// One job of a chain: which job, with what parameters and reducers; the chain gives its input
/// and output. Everything else is as `quern submit` defaults it (`QUERN_*` variables included).
#[derive(Clone, Debug)]
pub struct Step {
    job: String,
    params: Vec<(String, String)>,
    reducers: Option<u32>,
    split_size: Option<u64>,
}

impl Step {
    /// Job `job`, with no parameters and its default reducers.
    pub fn new(job: impl Into<String>) -> Step {
        Step {
            job: job.into(),
            params: Vec::new(),
            reducers: None,
            split_size: None,
        }
    }

    /// Adds job parameter `key=value` (`-D key=value`).
    pub fn param(mut self, key: impl Into<String>, value: impl Into<String>) -> Step {
        self.params.push((key.into(), value.into()));
        self
    }

    /// Runs with `reducers` reduce partitions (`--reducers`).
    pub fn reducers(self, reducers: u32) -> Step {
        let reducers = Some(reducers);
        Step { reducers, ..self }
    }

    /// Cuts the step's input into splits of `bytes` (`--split-size`).
    pub fn split_size(self, bytes: u64) -> Step {
        let split_size = Some(bytes);
        Step { split_size, ..self }
    }

    /// The step's job arguments, reading `inputs` and writing `output`: the command line's,
    /// with its defaults.
    fn job_args(&self, inputs: &[String], output: &str) -> Result<JobArgs> {
        use clap::{Args as _, FromArgMatches as _};
        let mut words = vec![self.job.clone(), "--output".into(), output.into()];
        for input in inputs {
            words.extend(["--input".into(), input.clone()]);
        }
        let command = JobArgs::augment_args(clap::Command::new("step").no_binary_name(true));
        let matches = command.try_get_matches_from(words)?;
        let mut args = JobArgs::from_arg_matches(&matches)?;
        args.params.extend(self.params.iter().cloned());
        args.reducers = self.reducers.or(args.reducers);
        args.split_size = self.split_size.unwrap_or(args.split_size);
        Ok(args)
    }
}

/// Jobs run one after another, each over the output of the one before.
#[derive(Clone, Debug)]
pub struct Chain {
    steps: Vec<Step>,
}

impl Chain {
    /// A chain of one job, `first`, which reads the chain's inputs.
    pub fn new(first: Step) -> Chain {
        Chain { steps: vec![first] }
    }

    /// Adds `step`, which reads the output of the step before.
    pub fn then(mut self, step: Step) -> Chain {
        self.steps.push(step);
        self
    }

    /// Runs the chain over `inputs` into `output`, on the cluster at `address` that `client`
    /// talks to, with job specs checked against `registry`; returns every step's final status.
    pub async fn run(
        &self,
        client: &mut Client,
        address: &str,
        registry: &JobRegistry,
        inputs: &[&str],
        output: &str,
    ) -> Result<Vec<JobStatus>> {
        let specs = self.specs(registry, inputs, output)?;
        let mut statuses = Vec::new();
        for (index, spec) in specs.into_iter().enumerate() {
            let failed = self.failed_step(index, &spec);
            let input = (index > 0).then(|| spec.inputs.clone());
            let status = run_step(client, address, spec).await.context(failed)?;
            statuses.push(status);
            if let Some(input) = input {
                remove_intermediate(&input).await?;
            }
        }
        Ok(statuses)
    }

    /// What to say if step `index`, `spec`, fails: which step, and that its input is kept if it
    /// is an intermediate.
    fn failed_step(&self, index: usize, spec: &JobSpec) -> String {
        let step = format!("step {} of {}", index + 1, self.steps.len());
        match index {
            0 => format!("{step} ({}) failed", spec.job_name),
            _ => format!(
                "{step} ({}) failed; its input, the intermediate output {}, is kept",
                spec.job_name,
                spec.inputs.join(", ")
            ),
        }
    }

    /// Runs the chain as [`Chain::run`] does, on a cluster of `workers` workers started in this
    /// process for it, carrying the jobs of `registry`.
    pub async fn run_local(
        &self,
        registry: JobRegistry,
        workers: u32,
        inputs: &[&str],
        output: &str,
    ) -> Result<Vec<JobStatus>> {
        let mut cluster = LocalCluster::start(registry.clone(), workers).await?;
        let mut client = cluster.connect().await?;
        let address = cluster.address().to_string();
        let work = self.run(&mut client, &address, &registry, inputs, output);
        let outcome = cluster.drive(work).await;
        cluster.stop().await;
        outcome
    }

    /// Every step's job spec, checked, each reading the output of the one before.
    fn specs(&self, registry: &JobRegistry, inputs: &[&str], output: &str) -> Result<Vec<JobSpec>> {
        let last = self.steps.len() - 1;
        let mut step_inputs: Vec<String> = inputs.iter().map(|i| i.to_string()).collect();
        let mut specs = Vec::new();
        for (index, step) in self.steps.iter().enumerate() {
            let step_output = match index == last {
                true => output.to_string(),
                false => intermediate(output, index),
            };
            let mut args = step.job_args(&step_inputs, &step_output)?;
            // An intermediate a failed chain left is replaced when the chain runs again.
            args.overwrite = index != last;
            let spec = client::job_spec(&args, registry)
                .with_context(|| format!("step {} of the chain", index + 1))?;
            step_inputs = vec![spec.output.clone()];
            specs.push(spec);
        }
        Ok(specs)
    }
}

/// Submits `spec` and waits for the job; an error unless it succeeded.
async fn run_step(client: &mut Client, address: &str, spec: JobSpec) -> Result<JobStatus> {
    let submitted = client::submit(client, address, spec).await?;
    let status = client::wait(
        client,
        address,
        &submitted.job_id,
        RECONNECT,
        &mut Progress::off(),
    )
    .await?;
    if status.state != JobState::Succeeded as i32 {
        bail!("job {}: {}", status.job_id, status.error);
    }
    Ok(status)
}

/// Where step `index` writes when a later step reads it: beside `output`.
fn intermediate(output: &str, index: usize) -> String {
    format!("{}.step-{}", output.trim_end_matches('/'), index + 1)
}

/// Deletes the intermediate output `input` (one URL) a step has read.
async fn remove_intermediate(input: &[String]) -> Result<()> {
    for url in input {
        quern_storage::remove_output(&StorageUrl::parse(url)?)
            .await
            .with_context(|| format!("cannot remove the intermediate output {url}"))?;
    }
    Ok(())
}
