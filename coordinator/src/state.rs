//! The coordinator's state machine: jobs, workers and running attempts, behind one mutex that is
//! never held across an `.await`. Every method is synchronous and O(1)-ish per decision; anything
//! that needs I/O (committing a job's output) comes back as an [`Action`] for the caller to run.

use crate::error::CoordinatorError;
use crate::fetch_failure::Confirmation;
use crate::heartbeat::GoneWorker;
use crate::job::{AttemptRecord, Job, JobPhase, TaskRef, TaskState};
use crate::metrics::Metrics;
use crate::wire::{AboutAttempt, AttemptCall};
use quern_proto::ids::{AttemptId, JobId, WorkerId};
use quern_proto::{
    Assignment, AttemptState, Counters, FailureKind, MapOutputLocationsResponse, TaskKind,
    TaskReport,
};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;
use tonic::Status;

/// See [`State::on_failure`].
pub type FailureHook = Arc<dyn Fn(JobId) + Send + Sync>;

/// Where a worker's assignments go: the open `Assignments` stream.
pub type AssignmentSender = mpsc::UnboundedSender<Result<Assignment, Status>>;

pub struct Worker {
    pub id: WorkerId,
    /// The secret its calls carry (see [`crate::session`]).
    pub session: String,
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
    /// Whether it may be running job code: a map always; a reduce once it has opened its
    /// output, after its shuffle. Only then can its worker's death be blamed on it.
    pub in_job_code: bool,
    /// Whether it opened its part file's upload: it may only once.
    pub opened_output: bool,
    /// Records and bytes, as last reported, and when they last changed (see [`crate::progress`]).
    pub progress: (u64, u64),
    pub progressed: Instant,
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
    /// This coordinator's start time, in milliseconds since the epoch: part of every job id.
    pub incarnation: u64,
    /// Until then, workers of an earlier incarnation may register again (see [`crate::resume`]).
    pub rejoin_until: Option<Instant>,
    /// Called with a job that fails, before anyone can see it failed: the journal records the
    /// end there, so a restart never resumes a job its client was told had failed.
    pub on_failure: Option<FailureHook>,
    /// How long a lone witness of fetch failures must keep reporting (see
    /// [`crate::fetch_failure`]).
    pub fetch_confirmation: Confirmation,
    /// What transitions count, for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Workers that went lately, newest last, kept a while for the status page (see
    /// [`crate::heartbeat::GoneWorker`]).
    pub gone_workers: VecDeque<GoneWorker>,
    /// Woken each time a job ends, succeeded or failed: clients waiting for a job (`GetJob` with
    /// a wait) answer then.
    pub job_ended: Arc<tokio::sync::Notify>,
    next_job: u32,
    next_worker: u32,
    next_attempt: u64,
}

impl State {
    /// A state for a coordinator starting now.
    pub fn starting_now() -> Self {
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        State {
            incarnation: since_epoch.as_millis() as u64,
            ..State::default()
        }
    }

    pub fn new_job_id(&mut self) -> JobId {
        self.next_job += 1;
        JobId {
            incarnation: self.incarnation,
            number: self.next_job,
        }
    }

    /// Numbers this incarnation's attempts past `base`, which earlier ones used up to.
    pub fn number_attempts_after(&mut self, base: u64) {
        self.next_attempt = self.next_attempt.max(base);
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

    /// Records a job that failed before it could run (a resumed job whose input is gone).
    pub fn add_failed_job(&mut self, mut job: Job, error: String) -> Vec<Action> {
        let id = job.id;
        tracing::warn!(job = %id, %error, "job failed");
        self.failing(id);
        job.fail(error);
        self.jobs.insert(id, job);
        vec![Action::CleanUpJob(id)]
    }

    /// Job `id` is about to fail: see [`State::on_failure`].
    fn failing(&self, id: JobId) {
        if let Some(hook) = &self.on_failure {
            hook(id);
        }
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

    /// Why `job` cannot make progress now, if the coordinator can tell: no worker is connected,
    /// no connected worker carries its job code, or every one that does is excluded from the
    /// job. One pass over the workers, at most: cheap enough for every status call.
    pub fn waiting_for(&self, job: &Job) -> Option<String> {
        if !job.has_runnable() {
            return None;
        }
        let name = &job.spec.job_name;
        let mut carriers = self.workers.values().filter(|w| w.jobs.contains(name));
        match carriers.next() {
            None if self.workers.is_empty() => Some(format!(
                "no connected worker has job '{name}' (no worker is connected at all); start \
                 workers from a binary that has it"
            )),
            None => Some(format!(
                "no connected worker has job '{name}'; start workers from a binary that has it"
            )),
            Some(first) if !job.admits(first.id) && carriers.all(|w| !job.admits(w.id)) => Some(
                format!("every connected worker with job '{name}' is excluded from it"),
            ),
            Some(_) => None,
        }
    }

    /// Jobs still running or committing, oldest first.
    pub fn active_jobs(&self) -> impl Iterator<Item = &Job> {
        self.active.iter().filter_map(|id| self.jobs.get(id))
    }

    /// Registers a worker under a new id and session secret.
    pub fn register_worker(
        &mut self,
        address: String,
        slots: u32,
        jobs: Vec<String>,
        session: String,
    ) -> WorkerId {
        self.next_worker += 1;
        let id = WorkerId {
            incarnation: self.incarnation,
            number: self.next_worker,
        };
        let worker = Worker {
            id,
            session,
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
            job.attempt_stopped(running.task, attempt);
            job.history[running.record].close(state, error);
            self.metrics.attempt_ended(&job.history[running.record]);
        }
        Some(running)
    }

    /// Handles a task report. Returns whether the attempt was expected, and follow-up actions.
    /// A reduce (or a map of a map-only job) succeeds only by committing its output (see
    /// [`crate::commit`]), never by report.
    pub fn report(&mut self, report: &TaskReport) -> (bool, Vec<Action>) {
        let Some(call) = report.attempt_call().filter(|call| self.expects(*call)) else {
            return (false, Vec::new());
        };
        let attempt = call.attempt;
        if report.succeeded && self.commits_output(attempt) {
            return (false, Vec::new());
        }
        let state = match (report.succeeded, report.failure()) {
            (true, _) => AttemptState::Succeeded,
            // The reduce did nothing wrong: someone else's output was out of reach or damaged.
            (false, FailureKind::Fetch | FailureKind::CorruptMapOutput) => AttemptState::Killed,
            (false, _) => AttemptState::Failed,
        };
        let Some(running) = self.end_attempt(attempt, state, &report.error) else {
            return (false, Vec::new());
        };
        if report.succeeded
            && running.task.kind == TaskKind::Sample
            && let Some(job) = self.jobs.get_mut(&running.job)
        {
            job.add_samples(&report.samples);
        }
        let actions = if report.succeeded {
            self.task_succeeded(
                &running,
                attempt,
                report.counters.clone().unwrap_or_default(),
            )
        } else {
            self.attempt_failed(&running, report)
        };
        self.schedule();
        (true, actions)
    }

    /// `attempt` did its task and counted `counters`; other attempts of the task are killed.
    pub(crate) fn task_succeeded(
        &mut self,
        running: &RunningAttempt,
        attempt: AttemptId,
        counters: Counters,
    ) -> Vec<Action> {
        let Some(job) = self.jobs.get_mut(&running.job) else {
            return Vec::new();
        };
        if running.task.kind == TaskKind::Reduce {
            self.metrics.shuffled(counters.shuffle_bytes);
        }
        let losers = job.task_done(running.task, attempt, running.worker, counters);
        if running.task.kind == TaskKind::Map
            && !job.map_only()
            && let Some(worker) = self.workers.get(&running.worker)
        {
            job.map_events
                .done(running.task.index, attempt, running.worker, &worker.address);
        }
        for loser in losers {
            self.kill_attempt(loser, "another attempt of the task finished first");
        }
        self.commit_if_complete(running.job)
    }

    /// Once every partition is committed, the job's output is complete: it commits, and any
    /// attempt of it still running (a map run again after its output was lost, whose output no
    /// reduce needs now) is killed and counts nothing.
    pub(crate) fn commit_if_complete(&mut self, id: JobId) -> Vec<Action> {
        match self.jobs.get_mut(&id) {
            Some(job) if job.phase == JobPhase::Running && job.output_complete() => {
                job.phase = JobPhase::Committing;
                for attempt in self.attempts_of(id) {
                    self.kill_attempt(attempt, "the job's output is complete");
                }
                vec![Action::CommitJob(id)]
            }
            _ => Vec::new(),
        }
    }

    /// Whether running `attempt` writes a part file of its job's output, which it commits.
    pub fn commits_output(&self, attempt: AttemptId) -> bool {
        self.attempts.get(&attempt).is_some_and(|running| {
            self.jobs
                .get(&running.job)
                .is_some_and(|job| job.output_kind() == running.task.kind)
        })
    }

    /// The attempts of job `id` running now.
    fn attempts_of(&self, id: JobId) -> Vec<AttemptId> {
        self.attempts
            .iter()
            .filter(|(_, a)| a.job == id)
            .map(|(attempt, _)| *attempt)
            .collect()
    }

    /// Whether the call's attempt is one the coordinator waits for, of the job and on the
    /// worker the call names: a report or request from anything else is ignored.
    pub fn expects(&self, call: AttemptCall) -> bool {
        self.attempts
            .get(&call.attempt)
            .is_some_and(|running| running.job == call.job && running.worker == call.worker)
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
        self.failing(id);
        let Some(job) = self.jobs.get_mut(&id) else {
            return Vec::new();
        };
        job.fail(error);
        self.ended(id);
        for attempt in self.attempts_of(id) {
            self.end_attempt(attempt, AttemptState::Killed, "job failed");
        }
        vec![Action::CleanUpJob(id)]
    }

    /// Job `id` has ended, succeeded or failed: scheduling no longer looks at it, and clients
    /// waiting for its end are answered.
    fn ended(&mut self, id: JobId) {
        self.active.remove(&id);
        self.job_ended.notify_waiters();
    }

    /// Job `id`'s map output events from `from` on, a page at most (see [`crate::map_events`]).
    pub fn map_output_locations(
        &mut self,
        id: JobId,
        from: u64,
    ) -> Option<MapOutputLocationsResponse> {
        let job = self.jobs.get_mut(&id)?;
        let all_maps_done = job.all_maps_done();
        Some(job.map_events.since(from, all_maps_done))
    }

    /// The job's output is committed (or could not be).
    pub fn job_committed(&mut self, id: JobId, result: Result<(), String>) -> Vec<Action> {
        let Some(job) = self.jobs.get_mut(&id) else {
            return Vec::new();
        };
        match result {
            Ok(()) => {
                job.phase = JobPhase::Succeeded;
                job.finished = Some(Instant::now());
                tracing::info!(job = %id, "job succeeded");
                self.ended(id);
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
        let t = job.task_mut(task);
        t.state = TaskState::Running;
        t.running.push(attempt);
        let backup = t.running.len() > 1;
        match task.kind {
            TaskKind::Map => job.running_maps += 1,
            TaskKind::Sample => {}
            _ => drop(job.running_reduces.insert(attempt)),
        }
        job.history.push(AttemptRecord {
            task,
            attempt,
            worker,
            state: AttemptState::Running,
            started: Instant::now(),
            ended: None,
            error: String::new(),
            backup,
        });
        let record = job.history.len() - 1;
        self.attempts.insert(
            attempt,
            RunningAttempt {
                job: id,
                task,
                worker,
                record,
                in_job_code: task.kind != TaskKind::Reduce,
                opened_output: false,
                progress: (0, 0),
                progressed: Instant::now(),
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
    use crate::testing::*;
    use quern_proto::Counters;

    fn map_counters(records: u64) -> Counters {
        Counters {
            input_records: records,
            input_bytes: 10 * records,
            map_output_records: 3 * records,
            ..Counters::default()
        }
    }

    #[test]
    fn a_job_says_why_no_worker_takes_its_tasks() {
        let mut state = State::default();
        let id = add_job(&mut state, 2, 4);
        let waiting = |state: &State| state.waiting_for(&state.jobs[&id]);
        assert_eq!(
            waiting(&state).unwrap(),
            "no connected worker has job 'wc' (no worker is connected at all); start workers \
             from a binary that has it"
        );
        let session = crate::session::new_session().expect("the system has randomness");
        state.register_worker(
            "http://o".to_string(),
            1,
            vec!["other".to_string()],
            session,
        );
        assert_eq!(
            waiting(&state).unwrap(),
            "no connected worker has job 'wc'; start workers from a binary that has it"
        );
        // One slot for two maps: a map is still runnable, and a worker can take it later.
        let (worker, _assignments) = add_worker(&mut state, 1);
        assert_eq!(waiting(&state), None);
        let job = state.jobs.get_mut(&id).expect("the job");
        job.excluded
            .insert(worker, "3 tasks failed on it".to_string());
        assert_eq!(
            waiting(&state).unwrap(),
            "every connected worker with job 'wc' is excluded from it"
        );
    }

    #[test]
    fn reports_naming_another_job_or_worker_are_ignored() {
        let (mut state, id, mut assignments) = one_job(1, 4);
        let map = next(&mut assignments);
        for (job_id, worker_id) in [
            ("job-0-0002", "worker-0-1"),
            ("job-1-0001", "worker-0-1"),
            ("job-0-0001", "worker-0-9"),
            ("job-0-0001", ""),
        ] {
            let mut report = success(&map, Counters::default());
            report.job_id = job_id.to_string();
            report.worker_id = worker_id.to_string();
            assert!(!state.report(&report).0, "{job_id} {worker_id}");
        }
        let elsewhere = |job: u32, worker: u32| AttemptCall {
            job: JobId {
                incarnation: 0,
                number: job,
            },
            worker: worker_id(worker),
            ..call_of(&map)
        };
        assert!(state.begin_commit(elsewhere(2, 1)).is_none());
        assert!(state.begin_commit(elsewhere(1, 2)).is_none());
        assert_eq!(state.jobs[&id].maps_done, 0);
        succeed(&mut state, &map, Counters::default());
        assert_eq!(state.jobs[&id].maps_done, 1);
    }

    #[test]
    fn a_failing_job_is_announced_to_the_journal_hook_once() {
        let (mut state, id, mut assignments) = one_job(1, 1);
        let failed = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = failed.clone();
        state.on_failure = Some(Arc::new(move |job| seen.lock().unwrap().push(job)));
        let map = next(&mut assignments);
        let report = failure(&map, FailureKind::Task, "boom");
        assert_eq!(send(&mut state, &report), [Action::CleanUpJob(id)]);
        assert_eq!(state.fail_job(id, "again".into()), []);
        assert_eq!(*failed.lock().unwrap(), [id]);
    }

    #[test]
    fn an_output_is_held_by_its_running_job_and_by_a_submit_in_progress() {
        let (mut state, _, _assignments) = one_job(1, 4);
        let err = state.reserve_output("file:///out/").unwrap_err();
        assert_eq!(
            err.to_string(),
            "output file:///out/ is in use by running job job-0-0001"
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
        state.fetch_confirmation = LONE_WITNESS;
        let first = next(&mut assignments);
        let second = next(&mut assignments);
        assert_eq!((first.task, second.task), (0, 1));
        succeed(&mut state, &first, map_counters(1));
        succeed(&mut state, &second, map_counters(2));
        assert_eq!(state.jobs[&id].counters, map_counters(3));

        // Twice the reduce cannot fetch the first map's output: its holder is lost, both maps
        // run again on another worker, and will count their input once more.
        let (_, mut other) = add_worker(&mut state, 1);
        for _ in 0..2 {
            let reduce = next(&mut assignments);
            assert_eq!(reduce.kind, TaskKind::Reduce as i32);
            send(&mut state, &fetch_failure(&reduce, &first));
            std::thread::sleep(LONE_WITNESS.0 * 2);
        }
        assert_eq!(state.jobs[&id].maps_done, 0);
        assert_eq!(state.jobs[&id].counters, Counters::default());
        let again = next(&mut other);
        assert_eq!(again.kind, TaskKind::Map as i32);
        let records = again.task as u64 + 1;
        succeed(&mut state, &again, map_counters(records));
        assert_eq!(state.jobs[&id].counters, map_counters(records));
    }
}
