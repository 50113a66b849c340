//! The coordinator's state machine: jobs, workers and running attempts, behind one mutex that is
//! never held across an `.await`. Every method is synchronous and O(1)-ish per decision; anything
//! that needs I/O (committing a job's output) comes back as an [`Action`] for the caller to run.

use crate::error::CoordinatorError;
use crate::job::{AttemptRecord, Job, JobPhase, TaskRef, TaskState};
use quern_proto::ids::{AttemptId, JobId, WorkerId};
use quern_proto::{
    Assignment, AttemptState, MapOutputLocationsResponse, TaskKind, TaskReport, WorkerMapOutputs,
};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;
use tonic::Status;

/// Fetch failures a reduce may have per allowed attempt before its job fails.
const FETCH_FAILURE_ALLOWANCE: u32 = 3;

/// Where a worker's assignments go: the open `Assignments` stream.
pub type AssignmentSender = mpsc::UnboundedSender<Result<Assignment, Status>>;

pub struct Worker {
    pub id: WorkerId,
    pub address: String,
    pub slots: u32,
    pub jobs: HashSet<String>,
    pub running: HashSet<AttemptId>,
    pub last_seen: Instant,
    /// None until the worker opens its assignment stream.
    pub sender: Option<AssignmentSender>,
    /// The free-slot count this worker is filed under in [`State::free`], if any.
    free_key: Option<u32>,
}

impl Worker {
    pub fn free_slots(&self) -> u32 {
        self.slots.saturating_sub(self.running.len() as u32)
    }
}

/// An attempt the coordinator expects a report from.
pub struct RunningAttempt {
    pub job: JobId,
    pub task: TaskRef,
    pub worker: WorkerId,
    /// Index of its record in the job's history.
    pub record: usize,
}

/// Follow-up I/O the caller runs outside the lock.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Every reduce committed: write `_SUCCESS`, then call [`State::job_committed`].
    CommitJob(JobId),
    /// The job failed: remove what its attempts left in the output.
    CleanUpJob(JobId),
}

#[derive(Default)]
pub struct State {
    pub jobs: BTreeMap<JobId, Job>,
    pub workers: HashMap<WorkerId, Worker>,
    /// Ready workers with a free slot, most free slots first.
    pub free: BTreeSet<(Reverse<u32>, WorkerId)>,
    pub attempts: HashMap<AttemptId, RunningAttempt>,
    /// Jobs still running or committing: what scheduling looks at.
    active: BTreeSet<JobId>,
    /// Outputs of jobs being submitted (their storage is being checked).
    reserved_outputs: HashSet<String>,
    next_job: u32,
    next_worker: u32,
    next_attempt: u64,
}

impl State {
    pub fn new_job_id(&mut self) -> JobId {
        self.next_job += 1;
        JobId(self.next_job)
    }

    pub fn new_attempt_id(&mut self) -> AttemptId {
        self.next_attempt += 1;
        AttemptId(self.next_attempt)
    }

    pub fn add_job(&mut self, job: Job) -> Vec<Action> {
        let id = job.id;
        self.jobs.insert(id, job);
        self.active.insert(id);
        // A job with no reduces to run has nothing to wait for.
        let actions = self.commit_if_complete(id);
        self.schedule();
        actions
    }

    /// Claims `output` for a job being submitted, unless a running job or another submit has it.
    pub fn reserve_output(&mut self, output: &str) -> Result<(), CoordinatorError> {
        let key = output.trim_end_matches('/').to_string();
        let holder = self
            .active_jobs()
            .find(|j| j.spec.output.trim_end_matches('/') == key)
            .map(|j| format!("running job {}", j.id))
            .or_else(|| {
                self.reserved_outputs
                    .contains(&key)
                    .then(|| "a job being submitted".to_string())
            });
        if let Some(holder) = holder {
            return Err(CoordinatorError::OutputBusy {
                output: output.to_string(),
                holder,
            });
        }
        self.reserved_outputs.insert(key);
        Ok(())
    }

    pub fn release_output(&mut self, output: &str) {
        self.reserved_outputs.remove(output.trim_end_matches('/'));
    }

    /// Why `job` cannot make progress now, if the coordinator can tell: no connected worker
    /// carries its job code.
    pub fn waiting_for(&self, job: &Job) -> Option<String> {
        let name = &job.spec.job_name;
        let carried = self.workers.values().any(|w| w.jobs.contains(name));
        (job.has_runnable() && !carried).then(|| {
            format!("no connected worker has job '{name}'; start workers from a binary that has it")
        })
    }

    /// Jobs still running or committing, oldest first.
    pub fn active_jobs(&self) -> impl Iterator<Item = &Job> {
        self.active.iter().filter_map(|id| self.jobs.get(id))
    }

    pub fn register_worker(&mut self, address: String, slots: u32, jobs: Vec<String>) -> WorkerId {
        self.next_worker += 1;
        let id = WorkerId(self.next_worker);
        let worker = Worker {
            id,
            address,
            slots,
            jobs: jobs.into_iter().collect(),
            running: HashSet::new(),
            last_seen: Instant::now(),
            sender: None,
            free_key: None,
        };
        self.workers.insert(id, worker);
        id
    }

    /// Keeps the free-slot index in step with a worker's running set.
    pub fn update_free(&mut self, id: WorkerId) {
        let Some(worker) = self.workers.get_mut(&id) else {
            return;
        };
        if let Some(old) = worker.free_key.take() {
            self.free.remove(&(Reverse(old), id));
        }
        let free = worker.free_slots();
        if free > 0 && worker.sender.is_some() {
            worker.free_key = Some(free);
            self.free.insert((Reverse(free), id));
        }
    }

    /// Forgets a worker (dead, or gone); the caller deals with its attempts first.
    pub fn remove_worker(&mut self, id: WorkerId) -> Option<Worker> {
        let mut worker = self.workers.remove(&id)?;
        if let Some(old) = worker.free_key.take() {
            self.free.remove(&(Reverse(old), id));
        }
        Some(worker)
    }

    pub fn attach_stream(&mut self, id: WorkerId, sender: AssignmentSender) -> bool {
        let Some(worker) = self.workers.get_mut(&id) else {
            return false;
        };
        worker.sender = Some(sender);
        worker.last_seen = Instant::now();
        self.update_free(id);
        true
    }

    /// Stops expecting `attempt`: frees its slot and closes its history record.
    pub(crate) fn end_attempt(
        &mut self,
        attempt: AttemptId,
        state: AttemptState,
        error: &str,
    ) -> Option<RunningAttempt> {
        let running = self.attempts.remove(&attempt)?;
        if let Some(worker) = self.workers.get_mut(&running.worker) {
            worker.running.remove(&attempt);
        }
        self.update_free(running.worker);
        if let Some(job) = self.jobs.get_mut(&running.job) {
            let record = &mut job.history[running.record];
            record.state = state;
            record.ended = Some(Instant::now());
            record.error = error.to_string();
        }
        Some(running)
    }

    /// Handles a task report. Returns whether the attempt was expected, and follow-up actions.
    pub fn report(&mut self, report: &TaskReport) -> (bool, Vec<Action>) {
        let attempt = AttemptId(report.attempt_id);
        if !self.expects(attempt, &report.job_id, &report.worker_id) {
            return (false, Vec::new());
        }
        let state = if report.succeeded {
            AttemptState::Succeeded
        } else {
            AttemptState::Failed
        };
        let Some(running) = self.end_attempt(attempt, state, &report.error) else {
            return (false, Vec::new());
        };
        let actions = if report.succeeded {
            self.task_succeeded(&running, attempt, report)
        } else {
            self.task_failed(&running, report)
        };
        self.schedule();
        (true, actions)
    }

    fn task_succeeded(
        &mut self,
        running: &RunningAttempt,
        attempt: AttemptId,
        report: &TaskReport,
    ) -> Vec<Action> {
        let Some(job) = self.jobs.get_mut(&running.job) else {
            return Vec::new();
        };
        let counters = report.counters.unwrap_or_default();
        job.task_done(running.task, attempt, running.worker, counters);
        self.commit_if_complete(running.job)
    }

    fn commit_if_complete(&mut self, id: JobId) -> Vec<Action> {
        match self.jobs.get_mut(&id) {
            Some(job)
                if job.phase == JobPhase::Running
                    && job.all_maps_done()
                    && job.reduces_done as usize == job.reduces.len() =>
            {
                job.phase = JobPhase::Committing;
                vec![Action::CommitJob(id)]
            }
            _ => Vec::new(),
        }
    }

    /// Whether `attempt` is one the coordinator waits for, of job `job_id`, on `worker_id` (when
    /// given): a report or request from anything else is ignored.
    pub fn expects(&self, attempt: AttemptId, job_id: &str, worker_id: &str) -> bool {
        self.attempts.get(&attempt).is_some_and(|running| {
            running.job.to_string() == job_id
                && (worker_id.is_empty() || running.worker.to_string() == worker_id)
        })
    }

    fn task_failed(&mut self, running: &RunningAttempt, report: &TaskReport) -> Vec<Action> {
        let Some(job) = self.jobs.get_mut(&running.job) else {
            return Vec::new();
        };
        let max_attempts = job.spec.max_attempts.max(1);
        let fetch_failure = report.failed_map_attempt != 0;
        let task = job.task_mut(running.task);
        task.last_error = report.error.clone();
        // A fetch failure is not the reduce's fault (the map output was lost), so it gets a
        // larger allowance; but a map output that can never be fetched must end the job.
        let (failures, limit) = if fetch_failure {
            task.fetch_failures += 1;
            (task.fetch_failures, max_attempts * FETCH_FAILURE_ALLOWANCE)
        } else {
            task.failures += 1;
            (task.failures, max_attempts)
        };
        if failures < limit {
            if fetch_failure {
                self.map_output_lost(running.job, AttemptId(report.failed_map_attempt));
            }
            if let Some(job) = self.jobs.get_mut(&running.job) {
                job.requeue(running.task);
            }
            return Vec::new();
        }
        let what = if fetch_failure {
            "could not fetch map output"
        } else {
            "failed"
        };
        let error = format!(
            "task {} {what} {failures} times; last error: {}",
            running.task, report.error
        );
        self.fail_job(running.job, error)
    }

    /// Fails a job: its running attempts are no longer expected, its output is cleaned up.
    pub fn fail_job(&mut self, id: JobId, error: String) -> Vec<Action> {
        let Some(job) = self.jobs.get_mut(&id) else {
            return Vec::new();
        };
        if !job.is_active() {
            return Vec::new();
        }
        tracing::warn!(job = %id, %error, "job failed");
        job.fail(error);
        self.active.remove(&id);
        let doomed: Vec<AttemptId> = self
            .attempts
            .iter()
            .filter(|(_, a)| a.job == id)
            .map(|(id, _)| *id)
            .collect();
        for attempt in doomed {
            self.end_attempt(attempt, AttemptState::Killed, "job failed");
        }
        vec![Action::CleanUpJob(id)]
    }

    /// A map output that can no longer be fetched: if its task is done with that attempt, the map
    /// runs again.
    pub fn map_output_lost(&mut self, id: JobId, attempt: AttemptId) {
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        let lost = job
            .maps
            .iter()
            .position(|t| matches!(t.state, TaskState::Done { attempt: a, .. } if a == attempt));
        if let Some(index) = lost {
            tracing::info!(job = %id, %attempt, map = index, "map output lost; running the map again");
            job.requeue(TaskRef {
                kind: TaskKind::Map,
                index: index as u32,
            });
        }
    }

    /// Where the map outputs for a reduce are. Empty if some map is not done (the reduce waits).
    pub fn map_output_locations(&mut self, id: JobId) -> Option<Arc<MapOutputLocationsResponse>> {
        let job = self.jobs.get(&id)?;
        if !job.all_maps_done() {
            return None;
        }
        if let Some(locations) = &job.locations {
            return Some(locations.clone());
        }
        let mut by_worker: HashMap<WorkerId, usize> = HashMap::new();
        let mut workers: Vec<WorkerMapOutputs> = Vec::new();
        for (index, task) in job.maps.iter().enumerate() {
            let TaskState::Done { attempt, worker } = task.state else {
                return None;
            };
            let slot = match by_worker.get(&worker) {
                Some(&slot) => slot,
                None => {
                    let address = self.workers.get(&worker)?.address.clone();
                    workers.push(WorkerMapOutputs {
                        address,
                        ..WorkerMapOutputs::default()
                    });
                    by_worker.insert(worker, workers.len() - 1);
                    workers.len() - 1
                }
            };
            workers[slot].map_tasks.push(index as u32);
            workers[slot].attempt_ids.push(attempt.0);
        }
        let locations = Arc::new(MapOutputLocationsResponse { workers });
        self.jobs.get_mut(&id)?.locations = Some(locations.clone());
        Some(locations)
    }

    /// Whether a reduce attempt may make its output final: only the attempt the coordinator is
    /// waiting for, of a running job.
    pub fn commit_permission(&self, attempt: AttemptId, job_id: &str) -> bool {
        if !self.expects(attempt, job_id, "") {
            return false;
        }
        let Some(running) = self.attempts.get(&attempt) else {
            return false;
        };
        let Some(job) = self.jobs.get(&running.job) else {
            return false;
        };
        job.phase == JobPhase::Running
            && job.task(running.task).state == TaskState::Running(attempt)
    }

    /// The job's output is committed (or could not be).
    pub fn job_committed(&mut self, id: JobId, result: Result<(), String>) -> Vec<Action> {
        let Some(job) = self.jobs.get_mut(&id) else {
            return Vec::new();
        };
        match result {
            Ok(()) => {
                self.active.remove(&id);
                job.phase = JobPhase::Succeeded;
                job.finished = Some(Instant::now());
                tracing::info!(job = %id, "job succeeded");
                Vec::new()
            }
            Err(error) => {
                job.phase = JobPhase::Running;
                self.fail_job(id, format!("cannot commit the job output: {error}"))
            }
        }
    }

    /// Records a new attempt of `task` on `worker`.
    pub fn start_attempt(&mut self, id: JobId, task: TaskRef, worker: WorkerId) -> AttemptId {
        let attempt = self.new_attempt_id();
        let job = self
            .jobs
            .get_mut(&id)
            .expect("start_attempt is called for a known job");
        job.task_mut(task).state = TaskState::Running(attempt);
        job.history.push(AttemptRecord {
            task,
            attempt,
            worker,
            state: AttemptState::Running,
            started: Instant::now(),
            ended: None,
            error: String::new(),
        });
        let record = job.history.len() - 1;
        self.attempts.insert(
            attempt,
            RunningAttempt {
                job: id,
                task,
                worker,
                record,
            },
        );
        if let Some(w) = self.workers.get_mut(&worker) {
            w.running.insert(attempt);
        }
        self.update_free(worker);
        attempt
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::split::Split;
    use quern_proto::{Counters, JobSpec};

    fn map_counters(records: u64) -> Counters {
        Counters {
            input_records: records,
            input_bytes: 10 * records,
            map_output_records: 3 * records,
            ..Counters::default()
        }
    }

    fn succeed(state: &mut State, attempt: u64, counters: Counters) {
        let report = TaskReport {
            job_id: "job-0001".to_string(),
            attempt_id: attempt,
            succeeded: true,
            counters: Some(counters),
            ..TaskReport::default()
        };
        assert!(state.report(&report).0, "attempt {attempt} expected");
    }

    type Assignments = mpsc::UnboundedReceiver<Result<Assignment, Status>>;

    /// A state with one job (`maps` maps, one reduce) and one worker with two slots.
    fn one_job(maps: u64, max_attempts: u32) -> (State, JobId, Assignments) {
        let mut state = State::default();
        let id = state.new_job_id();
        let spec = JobSpec {
            job_name: "wc".to_string(),
            output: "file:///out".to_string(),
            reducers: 1,
            max_attempts,
            ..JobSpec::default()
        };
        let splits = (0..maps)
            .map(|i| Split {
                url: "file:///in".to_string(),
                start: 10 * i,
                end: 10 * i + 10,
                object_size: 10 * maps,
                version: quern_storage::Version::Unknown,
            })
            .collect();
        state.add_job(Job::new(id, spec, splits));
        let worker = state.register_worker("http://w".to_string(), 2, vec!["wc".to_string()]);
        let (sender, assignments) = mpsc::unbounded_channel();
        state.attach_stream(worker, sender);
        state.schedule();
        (state, id, assignments)
    }

    fn next(assignments: &mut Assignments) -> Assignment {
        assignments
            .try_recv()
            .expect("an assignment")
            .expect("not an error")
    }

    #[test]
    fn a_map_output_that_can_never_be_fetched_fails_the_job() {
        let (mut state, id, mut assignments) = one_job(1, 1);
        let mut map = next(&mut assignments);
        for round in 1..=FETCH_FAILURE_ALLOWANCE {
            succeed(&mut state, map.attempt_id, Counters::default());
            let reduce = next(&mut assignments);
            let fetch_failed = TaskReport {
                job_id: id.to_string(),
                attempt_id: reduce.attempt_id,
                failed_map_attempt: map.attempt_id,
                error: "peer unreachable".to_string(),
                ..TaskReport::default()
            };
            assert!(state.report(&fetch_failed).0);
            if round < FETCH_FAILURE_ALLOWANCE {
                assert_eq!(state.jobs[&id].phase, JobPhase::Running);
                map = next(&mut assignments);
            }
        }
        let job = &state.jobs[&id];
        assert_eq!(job.phase, JobPhase::Failed);
        assert_eq!(
            job.error.as_deref(),
            Some("task r-00000 could not fetch map output 3 times; last error: peer unreachable")
        );
    }

    #[test]
    fn reports_naming_another_job_or_worker_are_ignored() {
        let (mut state, id, mut assignments) = one_job(1, 4);
        let map = next(&mut assignments);
        for (job_id, worker_id) in [("job-0002", ""), ("job-0001", "worker-9")] {
            let report = TaskReport {
                job_id: job_id.to_string(),
                worker_id: worker_id.to_string(),
                attempt_id: map.attempt_id,
                succeeded: true,
                ..TaskReport::default()
            };
            assert!(!state.report(&report).0, "{job_id} {worker_id}");
        }
        assert!(!state.commit_permission(AttemptId(map.attempt_id), "job-0002"));
        assert_eq!(state.jobs[&id].maps_done, 0);
        succeed(&mut state, map.attempt_id, Counters::default());
        assert_eq!(state.jobs[&id].maps_done, 1);
    }

    #[test]
    fn an_output_is_held_by_its_running_job_and_by_a_submit_in_progress() {
        let (mut state, _, _assignments) = one_job(1, 4);
        let err = state.reserve_output("file:///out/").unwrap_err();
        assert_eq!(
            err.to_string(),
            "output file:///out/ is in use by running job job-0001"
        );
        state.reserve_output("s3://b/next").unwrap();
        let err = state.reserve_output("s3://b/next/").unwrap_err();
        assert_eq!(
            err.to_string(),
            "output s3://b/next/ is in use by a job being submitted"
        );
        state.release_output("s3://b/next");
        state.reserve_output("s3://b/next/").unwrap();
    }
    #[test]
    fn a_lost_map_output_takes_its_counters_out_of_the_job() {
        let (mut state, id, mut assignments) = one_job(2, 4);
        let first = assignments.try_recv().unwrap().unwrap();
        let second = assignments.try_recv().unwrap().unwrap();
        succeed(&mut state, first.attempt_id, map_counters(1));
        succeed(&mut state, second.attempt_id, map_counters(2));
        assert_eq!(state.jobs[&id].counters, map_counters(3));

        // The reduce cannot fetch the first map's output: the map runs again, and counts its
        // input once more.
        let reduce = assignments.try_recv().unwrap().unwrap();
        assert_eq!(reduce.kind, TaskKind::Reduce as i32);
        let fetch_failed = TaskReport {
            job_id: id.to_string(),
            attempt_id: reduce.attempt_id,
            failed_map_attempt: first.attempt_id,
            error: "cannot fetch".to_string(),
            ..TaskReport::default()
        };
        assert!(state.report(&fetch_failed).0);
        assert_eq!(state.jobs[&id].maps_done, 1);
        assert_eq!(state.jobs[&id].counters, map_counters(2));
        let again = assignments.try_recv().unwrap().unwrap();
        assert_eq!((again.kind, again.task), (first.kind, first.task));
        succeed(&mut state, again.attempt_id, map_counters(1));
        assert_eq!(state.jobs[&id].counters, map_counters(3));
    }
}
