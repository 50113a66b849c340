//! Job and cluster status as the wire carries it: what `quern status` prints.

use crate::job::{Job, JobPhase};
use crate::state::State;
use quern_proto::ids::JobId;
use quern_proto::{AttemptInfo, ClusterStatusResponse, JobState, JobStatus, TaskKind, WorkerInfo};
use std::time::Instant;

fn millis(d: std::time::Duration) -> u64 {
    d.as_millis() as u64
}

/// The status of `job`, with its attempt history if `history`.
pub fn job_status(job: &Job, history: bool) -> JobStatus {
    let state = match job.phase {
        JobPhase::Running | JobPhase::Committing => JobState::Running,
        JobPhase::Succeeded => JobState::Succeeded,
        JobPhase::Failed => JobState::Failed,
    };
    let end = job.finished.unwrap_or_else(Instant::now);
    let attempts = if history {
        job.history
            .iter()
            .map(|r| AttemptInfo {
                kind: r.task.kind as i32,
                task: r.task.index,
                attempt_id: r.attempt.0,
                worker: r.worker.to_string(),
                state: r.state as i32,
                start_ms: millis(r.started.duration_since(job.submitted)),
                duration_ms: r.ended.map_or(0, |e| millis(e.duration_since(r.started))),
                error: r.error.clone(),
                backup: r.backup,
            })
            .collect()
    } else {
        Vec::new()
    };
    JobStatus {
        job_id: job.id.to_string(),
        spec: Some(job.spec.clone()),
        state: state as i32,
        map_tasks: job.maps.len() as u32,
        maps_done: job.maps_done,
        reduce_tasks: job.reduces.len() as u32,
        reduces_done: job.reduces_done,
        counters: Some(job.counters.clone()),
        elapsed_ms: millis(end.duration_since(job.submitted)),
        error: job.error.clone().unwrap_or_default(),
        attempts,
        waiting: String::new(),
        excluded_workers: job
            .excluded
            .iter()
            .map(|(worker, why)| format!("{worker} ({why})"))
            .collect(),
        ..JobStatus::default()
    }
}

/// The status of `job` as [`job_status`] makes it, with why it waits, if it does, in `state`.
pub fn job_status_in(state: &State, job: &Job, history: bool) -> JobStatus {
    let mut status = job_status(job, history);
    status.waiting = state.waiting_for(job).unwrap_or_default();
    status
}

/// Records and bytes that the running maps of `job` have read so far, as their heartbeats said.
pub fn running_input(state: &State, job: JobId) -> (u64, u64) {
    state
        .attempts
        .values()
        .filter(|a| a.job == job && a.task.kind == TaskKind::Map)
        .fold((0, 0), |(records, bytes), a| {
            (records + a.progress.0, bytes + a.progress.1)
        })
}

pub fn cluster_status(state: &State) -> ClusterStatusResponse {
    let mut workers: Vec<WorkerInfo> = state
        .workers
        .values()
        .map(|w| WorkerInfo {
            worker_id: w.id.to_string(),
            address: w.address.clone(),
            slots: w.slots,
            running: w.running.len() as u32,
            jobs: w.jobs.iter().cloned().collect(),
            ready: w.sender.is_some(),
        })
        .collect();
    workers.sort_by(|a, b| a.worker_id.cmp(&b.worker_id));
    ClusterStatusResponse { workers }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use quern_proto::ids::WorkerId;
    use quern_proto::{Assignment, AttemptProgress};

    #[test]
    fn running_input_adds_up_what_the_running_maps_of_the_job_last_reported() {
        let (mut state, id, mut assignments) = one_job(3, 4);
        let (first, second) = (next(&mut assignments), next(&mut assignments));
        let worker: WorkerId = first.worker_id.parse().unwrap();
        assert_eq!(running_input(&state, id), (0, 0), "nothing reported yet");
        let report = |attempt: &Assignment, records| AttemptProgress {
            attempt_id: attempt.attempt_id,
            records,
            bytes: 100 * records,
        };
        let now = Instant::now();
        state.record_progress(worker, &[report(&first, 3), report(&second, 4)], now);
        assert_eq!(running_input(&state, id), (7, 700));
        // A later report replaces the earlier one; it does not add to it.
        state.record_progress(worker, &[report(&first, 5), report(&second, 4)], now);
        assert_eq!(running_input(&state, id), (9, 900));
    }
}
