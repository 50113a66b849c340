//! What the status page shows, as plain data: the HTML pages render it and the JSON API
//! serializes it, so both always say the same. Built from the wire status that `quern status`
//! gets ([`crate::status`]), under the state lock, and then handed on without it. A job's spec
//! is shown without anything that may be a secret: the userinfo of URLs, and the values of
//! parameters whose names look like credentials.

use crate::heartbeat::{GONE_WORKERS_SHOWN_FOR, GoneWorker};
use crate::state::State;
use crate::status::{cluster_status, job_status};
use quern_proto::ids::{JobId, WorkerId};
use quern_proto::names;
use quern_proto::{AttemptInfo, AttemptState, Counters, JobSpec, JobStatus};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Instant;

/// One job, as the job list shows it.
#[derive(Serialize, Debug, Clone)]
pub struct JobSummary {
    pub id: String,
    pub name: String,
    /// `running`, `succeeded` or `failed`.
    pub state: &'static str,
    pub map_tasks: u32,
    pub maps_done: u32,
    pub reduce_tasks: u32,
    pub reduces_done: u32,
    pub elapsed_ms: u64,
    pub inputs: Vec<String>,
    pub output: String,
    pub error: String,
}

/// One job in full, as its own page shows it.
#[derive(Serialize, Debug, Clone)]
pub struct JobDetail {
    #[serde(flatten)]
    pub summary: JobSummary,
    /// The engine's counters, by name.
    pub counters: BTreeMap<&'static str, u64>,
    /// The job code's own counters, by name.
    pub user_counters: BTreeMap<String, u64>,
    pub spec: BTreeMap<String, String>,
    pub excluded_workers: Vec<String>,
    pub attempts: Vec<AttemptView>,
}

#[derive(Serialize, Debug, Clone)]
pub struct AttemptView {
    /// `m-00003`, `r-00000`, `s-00001`.
    pub task: String,
    pub attempt_id: u64,
    pub worker: String,
    /// `running`, `succeeded`, `failed` or `killed`.
    pub state: &'static str,
    /// Since the job was submitted.
    pub start_ms: u64,
    /// So far, for one still running.
    pub duration_ms: u64,
    pub backup: bool,
    pub error: String,
}

#[derive(Serialize, Debug, Clone)]
pub struct WorkerView {
    pub id: String,
    pub address: String,
    pub slots: u32,
    pub running: u32,
    /// `ready`, `registering` (no assignment stream yet), `lost` or `left`.
    pub state: &'static str,
    /// Milliseconds since its last heartbeat.
    pub last_heartbeat_ms: u64,
}

/// Every job the coordinator still shows, newest first.
pub fn jobs(state: &State) -> Vec<JobSummary> {
    state
        .jobs
        .values()
        .rev()
        .map(|job| summary(&job_status(job, false)))
        .collect()
}

/// Job `id` in full, if the coordinator still has it.
pub fn job(state: &State, id: JobId) -> Option<JobDetail> {
    let status = job_status(state.jobs.get(&id)?, true);
    Some(detail(&status))
}

/// Workers connected now, then those that went lately, newest first.
pub fn workers(state: &State) -> Vec<WorkerView> {
    let now = Instant::now();
    let mut views: Vec<WorkerView> = cluster_status(state)
        .workers
        .into_iter()
        .map(|w| {
            let last_seen = w
                .worker_id
                .parse::<WorkerId>()
                .ok()
                .and_then(|id| state.workers.get(&id))
                .map_or(now, |worker| worker.last_seen);
            WorkerView {
                state: if w.ready { "ready" } else { "registering" },
                last_heartbeat_ms: millis_since(now, last_seen),
                id: w.worker_id,
                address: w.address,
                slots: w.slots,
                running: w.running,
            }
        })
        .collect();
    let recent = state
        .gone_workers
        .iter()
        .rev()
        .filter(|w| now.duration_since(w.gone_at) <= GONE_WORKERS_SHOWN_FOR);
    views.extend(recent.map(|w| gone(w, now)));
    views
}

fn gone(worker: &GoneWorker, now: Instant) -> WorkerView {
    WorkerView {
        id: worker.id.to_string(),
        address: worker.address.clone(),
        slots: worker.slots,
        running: 0,
        state: if worker.lost { "lost" } else { "left" },
        last_heartbeat_ms: millis_since(now, worker.last_seen),
    }
}

fn millis_since(now: Instant, then: Instant) -> u64 {
    now.saturating_duration_since(then).as_millis() as u64
}

fn summary(status: &JobStatus) -> JobSummary {
    let spec = status.spec.clone().unwrap_or_default();
    JobSummary {
        id: status.job_id.clone(),
        name: spec.job_name.clone(),
        state: names::job_state(status.state),
        map_tasks: status.map_tasks,
        maps_done: status.maps_done,
        reduce_tasks: status.reduce_tasks,
        reduces_done: status.reduces_done,
        elapsed_ms: status.elapsed_ms,
        inputs: spec
            .inputs
            .iter()
            .map(|url| without_userinfo(url))
            .collect(),
        output: without_userinfo(&spec.output),
        error: status.error.clone(),
    }
}

fn detail(status: &JobStatus) -> JobDetail {
    let counters = status.counters.clone().unwrap_or_default();
    JobDetail {
        summary: summary(status),
        user_counters: counters.user.clone().into_iter().collect(),
        counters: engine_counters(&counters),
        spec: spec_shown(&status.spec.clone().unwrap_or_default()),
        excluded_workers: status.excluded_workers.clone(),
        attempts: status
            .attempts
            .iter()
            .map(|a| attempt(a, status.elapsed_ms))
            .collect(),
    }
}

fn attempt(info: &AttemptInfo, job_elapsed_ms: u64) -> AttemptView {
    let state = info.state();
    let duration_ms = match state {
        AttemptState::Running => job_elapsed_ms.saturating_sub(info.start_ms),
        _ => info.duration_ms,
    };
    AttemptView {
        task: names::task(info.kind, info.task),
        attempt_id: info.attempt_id,
        worker: info.worker.clone(),
        state: names::attempt_state(info.state),
        start_ms: info.start_ms,
        duration_ms,
        backup: info.backup,
        error: info.error.clone(),
    }
}

fn engine_counters(c: &Counters) -> BTreeMap<&'static str, u64> {
    BTreeMap::from([
        ("input_records", c.input_records),
        ("input_bytes", c.input_bytes),
        ("map_output_records", c.map_output_records),
        ("combine_output_records", c.combine_output_records),
        ("shuffle_bytes", c.shuffle_bytes),
        ("reduce_input_groups", c.reduce_input_groups),
        ("output_records", c.output_records),
        ("output_bytes", c.output_bytes),
        ("spills", c.spills),
    ])
}

/// The spec, field by field, with nothing that may be a secret.
fn spec_shown(spec: &JobSpec) -> BTreeMap<String, String> {
    let mut shown = BTreeMap::from([
        ("job_name".to_string(), spec.job_name.clone()),
        ("output".to_string(), without_userinfo(&spec.output)),
        ("reducers".to_string(), spec.reducers.to_string()),
        ("split_size".to_string(), spec.split_size.to_string()),
        ("overwrite".to_string(), spec.overwrite.to_string()),
        (
            "sort_buffer_bytes".to_string(),
            spec.sort_buffer_bytes.to_string(),
        ),
        ("max_attempts".to_string(), spec.max_attempts.to_string()),
        (
            "max_line_bytes".to_string(),
            spec.max_line_bytes.to_string(),
        ),
        (
            "max_worker_losses".to_string(),
            spec.max_worker_losses.to_string(),
        ),
        (
            "task_timeout_ms".to_string(),
            spec.task_timeout_ms.to_string(),
        ),
        (
            "speculative".to_string(),
            spec.speculative.map_or("default".into(), |s| s.to_string()),
        ),
        ("total_order".to_string(), spec.total_order.to_string()),
        (
            "input_format".to_string(),
            spec.input_format().as_str_name().to_lowercase(),
        ),
    ]);
    for (i, input) in spec.inputs.iter().enumerate() {
        shown.insert(format!("input[{i}]"), without_userinfo(input));
    }
    for (key, value) in &spec.params {
        let value = if looks_secret(key) {
            "(hidden)".to_string()
        } else {
            value.clone()
        };
        shown.insert(format!("param {key}"), value);
    }
    shown
}

/// Whether a parameter's name says it may hold a credential.
fn looks_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "secret",
        "token",
        "password",
        "passwd",
        "credential",
        "key",
        "auth",
    ]
    .iter()
    .any(|word| key.contains(word))
}

/// `url` without a `user:password@` part.
fn without_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_urls_and_params_are_not_shown() {
        assert_eq!(
            without_userinfo("s3://AKIA:s3cr3t@bucket/in/*.txt"),
            "s3://***@bucket/in/*.txt"
        );
        assert_eq!(without_userinfo("/data/a@b.txt"), "/data/a@b.txt");
        assert_eq!(
            without_userinfo("file:///data/a@b.txt"),
            "file:///data/a@b.txt"
        );
        let spec = JobSpec {
            inputs: vec!["https://u:p@host/x".into()],
            params: [
                ("aws_secret_access_key".to_string(), "s3cr3t".to_string()),
                ("pattern".to_string(), "the".to_string()),
            ]
            .into(),
            ..JobSpec::default()
        };
        let shown = spec_shown(&spec);
        assert_eq!(shown["input[0]"], "https://***@host/x");
        assert_eq!(shown["param aws_secret_access_key"], "(hidden)");
        assert_eq!(shown["param pattern"], "the");
        assert!(!shown.values().any(|v| v.contains("s3cr3t")));
    }
}
