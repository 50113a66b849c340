//! `quern status --json` and `quern status JOB --json`: the views `report` prints as tables, as
//! JSON for scripts. The field names are part of the interface (README.md lists them): a field
//! may be added, never renamed. States and task kinds are the words the tables use, counters
//! the names of the summary's; a job with no error (or nothing to wait for) has `null` there.

use quern_proto::names;
use quern_proto::{AttemptInfo, ClusterStatusResponse, Counters, JobStatus, WorkerInfo};
use serde::Serialize;
use std::collections::BTreeMap;

/// The cluster: every worker, and every job the coordinator keeps (without attempts).
#[derive(Serialize)]
pub struct ClusterJson<'a> {
    pub workers: Vec<WorkerJson<'a>>,
    pub jobs: Vec<JobJson<'a>>,
}

#[derive(Serialize)]
pub struct WorkerJson<'a> {
    pub id: &'a str,
    pub address: &'a str,
    pub slots: u32,
    pub running: u32,
    /// Its assignment stream is open: it can be given tasks.
    pub ready: bool,
    /// The job names compiled into it.
    pub jobs: &'a [String],
}

#[derive(Serialize)]
pub struct JobJson<'a> {
    pub id: &'a str,
    pub name: &'a str,
    /// `running`, `succeeded` or `failed`.
    pub state: &'static str,
    pub elapsed_ms: u64,
    pub inputs: &'a [String],
    pub output: &'a str,
    pub maps: Tasks,
    pub reduces: Tasks,
    pub counters: CountersJson,
    /// The job code's own counters, by name.
    pub user_counters: &'a BTreeMap<String, u64>,
    pub error: Option<&'a str>,
    /// Why a running job makes no progress, when the coordinator can tell.
    pub waiting: Option<&'a str>,
    pub excluded_workers: &'a [String],
    /// Every attempt, in the order they started; only in the view of one job.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<Vec<AttemptJson<'a>>>,
}

#[derive(Serialize)]
pub struct Tasks {
    pub done: u32,
    pub total: u32,
}

/// The engine's counters, summed over the attempts that count.
#[derive(Serialize)]
pub struct CountersJson {
    pub input_records: u64,
    pub input_bytes: u64,
    pub map_output_records: u64,
    pub combine_output_records: u64,
    pub spills: u64,
    pub shuffle_bytes: u64,
    pub reduce_input_groups: u64,
    pub output_records: u64,
    pub output_bytes: u64,
}

#[derive(Serialize)]
pub struct AttemptJson<'a> {
    /// `map`, `reduce` or `sample`.
    pub kind: &'static str,
    pub task: u32,
    pub attempt: u64,
    pub worker: &'a str,
    /// `running`, `succeeded`, `failed` or `killed`.
    pub state: &'static str,
    /// Milliseconds after the job was submitted.
    pub start_ms: u64,
    /// Zero while running.
    pub duration_ms: u64,
    /// Started while another attempt of its task ran (speculative).
    pub backup: bool,
    pub error: Option<&'a str>,
}

/// Nothing to say is `null`, not `""`.
fn non_empty(text: &str) -> Option<&str> {
    (!text.is_empty()).then_some(text)
}

fn counters(c: &Counters) -> CountersJson {
    CountersJson {
        input_records: c.input_records,
        input_bytes: c.input_bytes,
        map_output_records: c.map_output_records,
        combine_output_records: c.combine_output_records,
        spills: c.spills,
        shuffle_bytes: c.shuffle_bytes,
        reduce_input_groups: c.reduce_input_groups,
        output_records: c.output_records,
        output_bytes: c.output_bytes,
    }
}

fn attempt(a: &AttemptInfo) -> AttemptJson<'_> {
    AttemptJson {
        kind: names::task_kind(a.kind),
        task: a.task,
        attempt: a.attempt_id,
        worker: &a.worker,
        state: names::attempt_state(a.state),
        start_ms: a.start_ms,
        duration_ms: a.duration_ms,
        backup: a.backup,
        error: non_empty(&a.error),
    }
}

/// The counters of a status without any (an older coordinator's), as zeros.
static NO_COUNTERS: std::sync::LazyLock<Counters> = std::sync::LazyLock::new(Counters::default);

/// One job; with `attempts` its attempt history (which the status must carry).
pub fn job(status: &JobStatus, attempts: bool) -> JobJson<'_> {
    let spec = status.spec.as_ref();
    let c = status.counters.as_ref().unwrap_or(&NO_COUNTERS);
    JobJson {
        id: &status.job_id,
        name: spec.map_or("", |s| s.job_name.as_str()),
        state: names::job_state(status.state),
        elapsed_ms: status.elapsed_ms,
        inputs: spec.map_or(&[], |s| s.inputs.as_slice()),
        output: spec.map_or("", |s| s.output.as_str()),
        maps: Tasks {
            done: status.maps_done,
            total: status.map_tasks,
        },
        reduces: Tasks {
            done: status.reduces_done,
            total: status.reduce_tasks,
        },
        counters: counters(c),
        user_counters: &c.user,
        error: non_empty(&status.error),
        waiting: non_empty(&status.waiting),
        excluded_workers: &status.excluded_workers,
        attempts: attempts.then(|| status.attempts.iter().map(attempt).collect()),
    }
}

fn worker(w: &WorkerInfo) -> WorkerJson<'_> {
    WorkerJson {
        id: &w.worker_id,
        address: &w.address,
        slots: w.slots,
        running: w.running,
        ready: w.ready,
        jobs: &w.jobs,
    }
}

pub fn cluster<'a>(cluster: &'a ClusterStatusResponse, jobs: &'a [JobStatus]) -> ClusterJson<'a> {
    ClusterJson {
        workers: cluster.workers.iter().map(worker).collect(),
        jobs: jobs.iter().map(|j| job(j, false)).collect(),
    }
}

/// `value` as pretty JSON and a newline.
pub fn to_text(value: &impl Serialize) -> String {
    let text = serde_json::to_string_pretty(value).expect("status JSON has only string keys");
    text + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use quern_proto::{AttemptState, JobSpec, JobState, TaskKind};

    #[test]
    fn a_job_has_its_documented_fields_and_null_for_nothing_to_say() {
        let status = JobStatus {
            job_id: "job-1-0001".to_string(),
            spec: Some(JobSpec {
                job_name: "wordcount".to_string(),
                output: "file:///out".to_string(),
                ..Default::default()
            }),
            state: JobState::Succeeded as i32,
            map_tasks: 2,
            maps_done: 2,
            counters: Some(Counters {
                input_records: 7,
                user: [("lines".to_string(), 3)].into(),
                ..Default::default()
            }),
            attempts: vec![AttemptInfo {
                kind: TaskKind::Map as i32,
                task: 1,
                attempt_id: 9,
                worker: "w-1".to_string(),
                state: AttemptState::Failed as i32,
                error: "boom".to_string(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let value = serde_json::to_value(job(&status, true)).unwrap();
        assert_eq!(value["state"], "succeeded");
        assert_eq!(value["maps"], serde_json::json!({"done": 2, "total": 2}));
        assert_eq!(value["counters"]["input_records"], 7);
        assert_eq!(value["user_counters"]["lines"], 3);
        assert_eq!(value["error"], serde_json::Value::Null);
        assert_eq!(value["attempts"][0]["kind"], "map");
        assert_eq!(value["attempts"][0]["state"], "failed");
        assert_eq!(value["attempts"][0]["error"], "boom");
        let listed = serde_json::to_value(job(&status, false)).unwrap();
        assert!(listed.get("attempts").is_none(), "{listed}");
    }
}
