//! Backup attempts (speculative execution), as in the MapReduce paper, where sort took 44% longer
//! without them. The rule, checked a few times per worker timeout:
//!
//! - only near the end of a phase: every map (or every reduce) of the job has started;
//! - a task whose one attempt has run longer than [`SLOWER_THAN`] times the median time of the
//!   phase's finished tasks, and at least [`MIN_RUN`], is a straggler;
//! - a straggler gets one backup attempt, on a free worker other than its own, while the job has
//!   used fewer than a tenth of the phase's tasks (at least one) in backups;
//! - the first attempt to finish wins (for a reduce, the first to commit); the other is killed,
//!   uncharged, and its work discarded, so counters stay exact.
//!
//! Tasks of even length finish within a small factor of their median, so a job of uniform tasks
//! launches no backups, or almost none. A job turns it off with `--speculative off`.

use crate::job::{Job, TaskRef};
use crate::state::State;
use quern_proto::TaskKind;
use quern_proto::ids::{JobId, WorkerId};
use std::time::{Duration, Instant};

/// How much longer than the phase's median a straggler has run.
pub const SLOWER_THAN: u32 = 2;
/// No attempt younger than this is a straggler: tiny tasks vary by more than any factor.
pub const MIN_RUN: Duration = Duration::from_secs(1);

impl State {
    /// Starts a backup attempt for each straggler there is a free worker for (see the module
    /// documentation for the rule).
    pub fn speculate(&mut self, now: Instant) {
        if self.free.is_empty() {
            return;
        }
        for (job, task, original) in self.stragglers(now) {
            let Some(worker) = self.backup_worker(job, original) else {
                continue;
            };
            tracing::info!(%job, %task, %worker, "straggler: starting a backup attempt");
            let attempt = self.start_attempt(job, task, worker);
            if let Some(j) = self.jobs.get_mut(&job) {
                j.backups[phase(task.kind)] += 1;
            }
            self.send(worker, job, task, attempt);
        }
    }

    /// Tasks that deserve a backup now, with the worker their attempt runs on.
    fn stragglers(&self, now: Instant) -> Vec<(JobId, TaskRef, WorkerId)> {
        let mut found = Vec::new();
        for job in self
            .active_jobs()
            .filter(|j| j.spec.speculative == Some(true))
        {
            for kind in [TaskKind::Map, TaskKind::Reduce] {
                let Some(slow) = straggling_after(job, kind) else {
                    continue;
                };
                let mut budget = backup_budget(job, kind);
                for running in self.attempts.values() {
                    if budget == 0 {
                        break;
                    }
                    let alone = job.task(running.task).running.len() == 1;
                    let started = job.history[running.record].started;
                    if running.job == job.id
                        && running.task.kind == kind
                        && alone
                        && now.duration_since(started) > slow
                    {
                        found.push((job.id, running.task, running.worker));
                        budget -= 1;
                    }
                }
            }
        }
        found
    }

    /// A ready worker with a free slot for a backup of a task of `job` running on `original`.
    fn backup_worker(&self, job: JobId, original: WorkerId) -> Option<WorkerId> {
        let j = self.jobs.get(&job)?;
        self.free.iter().map(|(_, id)| *id).find(|id| {
            *id != original && j.admits(*id) && self.workers[id].jobs.contains(&j.spec.job_name)
        })
    }
}

/// How long a task of `kind` must have run to straggle, if the job is in the tail of that phase
/// and has finished tasks to compare with.
fn straggling_after(job: &Job, kind: TaskKind) -> Option<Duration> {
    if !job.in_tail(kind) {
        return None;
    }
    let mut times: Vec<Duration> = job
        .history
        .iter()
        .filter(|r| r.task.kind == kind && r.state == quern_proto::AttemptState::Succeeded)
        .filter_map(|r| Some(r.ended?.duration_since(r.started)))
        .collect();
    if times.is_empty() {
        return None;
    }
    let middle = times.len() / 2;
    let (_, median, _) = times.select_nth_unstable(middle);
    Some((*median * SLOWER_THAN).max(MIN_RUN))
}

/// Backups the job may still launch in the phase of `kind`.
fn backup_budget(job: &Job, kind: TaskKind) -> u32 {
    let tasks = match kind {
        TaskKind::Map => job.maps.len(),
        _ => job.reduces.len(),
    } as u32;
    (tasks / 10).max(1).saturating_sub(job.backups[phase(kind)])
}

/// Index of `kind`'s phase in [`Job::backups`]: maps, then reduces.
fn phase(kind: TaskKind) -> usize {
    usize::from(kind != TaskKind::Map)
}

#[cfg(test)]
mod tests {
    use crate::state::State;
    use crate::testing::*;
    use quern_proto::ids::AttemptId;
    use quern_proto::{AttemptState, Counters};
    use std::time::{Duration, Instant};

    fn records(n: u64) -> Counters {
        Counters {
            input_records: n,
            ..Counters::default()
        }
    }

    /// A job of three maps, speculation on; worker A (two slots) runs m-0 and m-1, worker B
    /// (one slot) runs m-2.
    fn three_maps() -> (State, quern_proto::ids::JobId, Assignments, Assignments) {
        let mut state = State::default();
        let id = add_job_with(&mut state, 3, |spec| spec.speculative = Some(true));
        let (_, a) = add_worker(&mut state, 2);
        let (_, b) = add_worker(&mut state, 1);
        (state, id, a, b)
    }

    #[test]
    fn a_straggling_map_gets_a_backup_elsewhere_and_the_first_to_finish_wins() {
        let (mut state, id, mut a, mut b) = three_maps();
        let (m0, slow, m2) = (next(&mut a), next(&mut a), next(&mut b));
        succeed(&mut state, &m0, records(1));
        succeed(&mut state, &m2, records(2));
        // Not yet: the straggler has run less than the minimum.
        state.speculate(Instant::now());
        assert!(b.try_recv().is_err() && a.try_recv().is_err());

        state.speculate(Instant::now() + Duration::from_secs(5));
        let backup = next(&mut b);
        assert!(a.try_recv().is_err(), "never on the straggler's own worker");
        assert_eq!((backup.task, backup.kind), (slow.task, slow.kind));
        let job = &state.jobs[&id];
        let record = |attempt: u64| job.history.iter().find(|r| r.attempt.0 == attempt).unwrap();
        assert!(record(backup.attempt_id).backup && !record(slow.attempt_id).backup);
        // One backup per task: asking again starts nothing.
        state.speculate(Instant::now() + Duration::from_secs(5));
        assert!(b.try_recv().is_err() && a.try_recv().is_err());

        succeed(&mut state, &backup, records(3));
        let job = &state.jobs[&id];
        let record = |attempt: u64| job.history.iter().find(|r| r.attempt.0 == attempt).unwrap();
        let loser = record(slow.attempt_id);
        assert_eq!(loser.state, AttemptState::Killed);
        assert_eq!(loser.error, "another attempt of the task finished first");
        assert_eq!(job.maps_done, 3);
        assert_eq!(
            job.counters.input_records,
            1 + 2 + 3,
            "the loser counts nothing"
        );
        assert!(!state.attempts.contains_key(&AttemptId(slow.attempt_id)));
        // Its late report is ignored.
        assert!(!state.report(&success(&slow, records(100))).0);
        assert_eq!(state.jobs[&id].counters.input_records, 6);
    }

    #[test]
    fn a_job_with_speculation_off_or_before_its_phase_tail_gets_no_backup() {
        let (mut state, id, mut a, mut b) = three_maps();
        let (m0, _slow, _m2) = (next(&mut a), next(&mut a), next(&mut b));
        succeed(&mut state, &m0, records(1));
        state.jobs.get_mut(&id).unwrap().spec.speculative = Some(false);
        state.speculate(Instant::now() + Duration::from_secs(5));
        assert!(b.try_recv().is_err() && a.try_recv().is_err());

        // Five maps, three slots: once one is done, one still waits, so no tail yet.
        let mut state = State::default();
        let id = add_job_with(&mut state, 5, |spec| spec.speculative = Some(true));
        let (_, mut a) = add_worker(&mut state, 3);
        let first = next(&mut a);
        succeed(&mut state, &first, records(1));
        assert!(!state.jobs[&id].in_tail(quern_proto::TaskKind::Map));
        let later = Instant::now() + Duration::from_secs(5);
        assert!(
            state.stragglers(later).is_empty(),
            "no tail: nothing to back up"
        );
    }

    #[test]
    fn of_a_reduce_and_its_backup_only_the_first_to_commit_does() {
        let mut state = State::default();
        let id = add_job_with(&mut state, 1, |spec| {
            spec.speculative = Some(true);
            spec.reducers = 2;
        });
        let (_, mut a) = add_worker(&mut state, 2);
        let map = next(&mut a);
        succeed(&mut state, &map, records(1));
        let (fast, slow) = (next(&mut a), next(&mut a));
        let (_, mut b) = add_worker(&mut state, 1);
        // No reduce finished yet to compare with: no backup.
        state.speculate(Instant::now() + Duration::from_secs(5));
        assert!(b.try_recv().is_err());
        succeed(&mut state, &fast, Counters::default());
        state.speculate(Instant::now() + Duration::from_secs(5));
        let backup = next(&mut b);
        assert_eq!(backup.task, slow.task);
        assert_eq!(backup.kind(), quern_proto::TaskKind::Reduce);

        succeed(&mut state, &backup, Counters::default());
        let refused = state.begin_commit(call_of(&slow));
        assert!(
            refused.is_none(),
            "the original may not commit after its backup did"
        );
        assert_eq!(state.jobs[&id].reduces_done, 2);
    }
}
