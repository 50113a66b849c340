//! Test support for the state machine: a job, workers with their assignment streams, and reports
//! as workers send them.

use crate::fetch_failure::Confirmation;
use crate::job::Job;
use crate::split::{ObjectRange, Split};
use crate::state::{Action, State};
use crate::wire::AttemptCall;
use quern_proto::ids::{AttemptId, JobId, WorkerId};
use quern_proto::{Assignment, Counters, FailureKind, JobSpec, TaskKind, TaskReport};
use tokio::sync::mpsc;
use tonic::Status;

/// Worker number `number` of the incarnation of [`State::default`].
pub const fn worker_id(number: u32) -> WorkerId {
    WorkerId {
        incarnation: 0,
        number,
    }
}

/// A confirmation time short enough that a test's lone witness of fetch failures is believed
/// after a sleep of twice that.
pub const LONE_WITNESS: Confirmation = Confirmation(std::time::Duration::from_millis(2));

pub type Assignments = mpsc::UnboundedReceiver<Result<Assignment, Status>>;

/// Adds job "wc" with `maps` maps and one reduce, `max_attempts` attempts per task.
pub fn add_job(state: &mut State, maps: u64, max_attempts: u32) -> JobId {
    add_job_with(state, maps, |spec| spec.max_attempts = max_attempts)
}

/// Adds job "wc" with `maps` maps, its spec (one reduce, 4 attempts) changed by `edit`.
pub fn add_job_with(state: &mut State, maps: u64, edit: impl FnOnce(&mut JobSpec)) -> JobId {
    let job = new_job(state, maps, edit);
    let id = job.id;
    state.add_job(job);
    id
}

/// Job "wc" with `maps` maps, its spec (one reduce, 4 attempts) changed by `edit`, not added.
pub fn new_job(state: &mut State, maps: u64, edit: impl FnOnce(&mut JobSpec)) -> Job {
    let id = state.new_job_id();
    let mut spec = JobSpec {
        job_name: "wc".to_string(),
        output: "file:///out".to_string(),
        reducers: 1,
        max_attempts: 4,
        max_worker_losses: 3,
        ..JobSpec::default()
    };
    edit(&mut spec);
    let splits = (0..maps)
        .map(|i| {
            Split::from(ObjectRange {
                url: "file:///in".to_string(),
                start: 10 * i,
                end: 10 * i + 10,
                object_size: 10 * maps,
                version: quern_storage::Version::Unknown,
            })
        })
        .collect();
    Job::new(id, spec, splits)
}

/// Registers a ready worker with job "wc" and `slots` slots.
pub fn add_worker(state: &mut State, slots: u32) -> (WorkerId, Assignments) {
    let session = crate::session::new_session().expect("the system has randomness");
    let worker = state.register_worker(
        "http://w".to_string(),
        slots,
        vec!["wc".to_string()],
        session,
    );
    let (sender, assignments) = mpsc::unbounded_channel();
    state.attach_stream(worker, sender);
    state.schedule();
    (worker, assignments)
}

/// A state with one job (`maps` maps, one reduce) and one worker with two slots.
pub fn one_job(maps: u64, max_attempts: u32) -> (State, JobId, Assignments) {
    let mut state = State::default();
    let id = add_job(&mut state, maps, max_attempts);
    let (_, assignments) = add_worker(&mut state, 2);
    (state, id, assignments)
}

pub fn next(assignments: &mut Assignments) -> Assignment {
    assignments
        .try_recv()
        .expect("an assignment")
        .expect("not an error")
}

/// The report the worker of `assignment` sends when it succeeds.
pub fn success(assignment: &Assignment, counters: Counters) -> TaskReport {
    TaskReport {
        worker_id: assignment.worker_id.clone(),
        job_id: assignment.job_id.clone(),
        attempt_id: assignment.attempt_id,
        succeeded: true,
        counters: Some(counters),
        ..TaskReport::default()
    }
}

/// The report the worker of `assignment` sends when it fails with `error`.
pub fn failure(assignment: &Assignment, kind: FailureKind, error: &str) -> TaskReport {
    let mut report = success(assignment, Counters::default());
    report.succeeded = false;
    report.counters = None;
    report.set_failure(kind);
    report.error = error.to_string();
    report
}

/// The report of a reduce that could not fetch the output of `map`.
pub fn fetch_failure(reduce: &Assignment, map: &Assignment) -> TaskReport {
    let mut report = failure(reduce, FailureKind::Fetch, "cannot fetch");
    report.failed_map_attempt = map.attempt_id;
    report
}

/// Sends `report`, which must be expected; returns the follow-up actions.
pub fn send(state: &mut State, report: &TaskReport) -> Vec<Action> {
    let (accepted, actions) = state.report(report);
    assert!(accepted, "attempt {} expected", report.attempt_id);
    actions
}

/// The attempt of `assignment` succeeds as a worker's would: a map reports, a reduce (or a
/// map of a map-only job) commits (and its storage step succeeds).
pub fn succeed(state: &mut State, assignment: &Assignment, counters: Counters) {
    if assignment.kind() == TaskKind::Map && assignment.reducers > 0 {
        send(state, &success(assignment, counters));
        return;
    }
    let commit = state
        .begin_commit(call_of(assignment))
        .expect("the attempt may commit");
    state.commit_finished(&commit, counters, Ok(()));
}

/// The ids of the worker's calls about the attempt of `assignment`.
pub fn call_of(assignment: &Assignment) -> AttemptCall {
    AttemptCall {
        attempt: AttemptId(assignment.attempt_id),
        job: assignment.job_id.parse().expect("a job id"),
        worker: assignment.worker_id.parse().expect("a worker id"),
    }
}
