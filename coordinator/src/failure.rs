//! What the coordinator does when an attempt does not succeed. Attempts are counted as Hadoop
//! counts them:
//! - FAILED, the task's own error, counts toward the job's `max_attempts`, and toward excluding
//!   the worker it ran on from the job ([`EXCLUDE_AFTER_FAILURES`] failures on one worker);
//! - KILLED (its worker was lost, a fetch failure, a cancel) does not count; but a task whose
//!   worker is lost under it `max_worker_losses` attempts in a row fails the job, since its job
//!   code is likely what crashes the worker process;
//! - a fatal failure (deterministic: the same input fails the same way anywhere) fails the job at
//!   once;
//! - a fetch failure is judged by [`crate::fetch_failure`]: a lost holder's map outputs run again
//!   (at most [`fetch_rerun_cap`] per job), a suspect reporter is excluded; a map output that
//!   fails its checksum runs again alone.

use crate::fetch_failure::Verdict;
use crate::job::EXCLUDE_AFTER_FAILURES;
use crate::state::{Action, RunningAttempt, State};
use crate::wire::AboutAttempt;
use quern_proto::ids::{AttemptId, JobId, WorkerId};
use quern_proto::{AttemptState, FailureKind, FetchFailureReport, TaskReport};
use std::time::Instant;

/// Map re-runs that fetch failures may cause in one job before it fails: generous, since each
/// lost worker re-runs every map it held, but bounded, so a fault that keeps outputs from being
/// fetched ends the job with a clear message instead of running forever.
pub fn fetch_rerun_cap(maps: usize) -> u32 {
    (4 * maps as u32).max(64)
}

impl State {
    /// A failed attempt's report, handled by its kind; the attempt has ended.
    pub(crate) fn attempt_failed(
        &mut self,
        running: &RunningAttempt,
        report: &TaskReport,
    ) -> Vec<Action> {
        match report.failure() {
            FailureKind::Fetch | FailureKind::CorruptMapOutput => {
                self.reduce_stopped_by(running, report.failure(), report.failed_map_attempt)
            }
            FailureKind::Fatal => self.fail_job(
                running.job,
                format!("task {} failed: {}", running.task, report.error),
            ),
            FailureKind::Task => self.task_failed(running, &report.error),
        }
    }

    /// A reduce ended because a map output could not be fetched whole: it runs again,
    /// uncharged, and the map output is judged.
    fn reduce_stopped_by(
        &mut self,
        running: &RunningAttempt,
        kind: FailureKind,
        map_attempt: u64,
    ) -> Vec<Action> {
        if let Some(job) = self.jobs.get_mut(&running.job) {
            job.retry_after_live_end(running.task);
        }
        self.judge_map_output(running.job, running.worker, kind, AttemptId(map_attempt))
            .1
    }

    /// A running reduce could not fetch a map output whole, and goes on with the rest. Returns
    /// whether it should keep going: not if it is no longer expected, nor if its own worker turned
    /// out to be the suspect (it is then killed, uncharged, to run elsewhere).
    pub fn fetch_failure_reported(&mut self, report: &FetchFailureReport) -> (bool, Vec<Action>) {
        let Some(call) = report.attempt_call().filter(|call| self.expects(*call)) else {
            return (false, Vec::new());
        };
        let attempt = call.attempt;
        let (job, reporter) = {
            let running = &self.attempts[&attempt];
            (running.job, running.worker)
        };
        // A worker excluded from the job meanwhile (its peers could not reach it, say) is no
        // judge of others: its report counts against no one, and its reduce runs elsewhere.
        if self.jobs.get(&job).is_some_and(|j| !j.admits(reporter)) {
            self.kill_attempt(attempt, "its worker is excluded from the job");
            self.schedule();
            return (false, Vec::new());
        }
        let map_attempt = AttemptId(report.failed_map_attempt);
        let (suspect, actions) =
            self.judge_map_output(job, reporter, report.failure(), map_attempt);
        if suspect {
            self.kill_attempt(attempt, "its worker cannot fetch from live peers");
        }
        self.schedule();
        let keep_going = !suspect && self.attempts.contains_key(&attempt);
        (keep_going, actions)
    }

    /// What a map output that `reporter` could not fetch whole means. A corrupt one runs its map
    /// again (a damaged file says nothing about its holder's other outputs); one out of reach
    /// is for the fetch-failure rules to judge. Returns whether the reporter is the suspect.
    fn judge_map_output(
        &mut self,
        id: JobId,
        reporter: WorkerId,
        kind: FailureKind,
        map_attempt: AttemptId,
    ) -> (bool, Vec<Action>) {
        self.metrics.fetch_failure();
        let State {
            jobs,
            workers,
            fetch_confirmation,
            ..
        } = self;
        let Some(job) = jobs.get_mut(&id) else {
            return (false, Vec::new());
        };
        // An output already run again (its holder was lost meanwhile) is old news.
        let Some((map, holder)) = job.map_done_by(map_attempt) else {
            return (false, Vec::new());
        };
        if kind == FailureKind::CorruptMapOutput {
            tracing::warn!(job = %id, %map, worker = %holder, "corrupt map output; running the map again");
            job.lose_output(map);
            return (false, self.count_reruns(id, 1, holder));
        }
        let heard_since =
            |w: WorkerId, at: Instant| workers.get(&w).is_some_and(|w| w.last_seen > at);
        let verdict = job.fetch_failures.report(
            reporter,
            holder,
            Instant::now(),
            *fetch_confirmation,
            heard_since,
        );
        match verdict {
            Verdict::Wait => (false, Vec::new()),
            Verdict::HolderLost { alive } => (false, self.holder_lost(id, holder, alive)),
            Verdict::ReporterSuspect => {
                let why = "it could not fetch map output from live peers".to_string();
                (true, self.exclude(id, reporter, why))
            }
        }
    }

    /// The task's own error: it runs again, unless it has failed `max_attempts` times.
    pub(crate) fn task_failed(&mut self, running: &RunningAttempt, error: &str) -> Vec<Action> {
        let Some(job) = self.jobs.get_mut(&running.job) else {
            return Vec::new();
        };
        let max_attempts = job.spec.max_attempts.max(1);
        let task = job.task_mut(running.task);
        task.failures += 1;
        task.last_error = error.to_string();
        task.lost_workers.clear();
        let failures = task.failures;
        if failures >= max_attempts {
            let error = format!(
                "task {} failed {failures} times; last error: {error}",
                running.task
            );
            return self.fail_job(running.job, error);
        }
        job.retry(running.task);
        let on_worker = job.failures_on.entry(running.worker).or_default();
        *on_worker += 1;
        if *on_worker >= EXCLUDE_AFTER_FAILURES {
            let why = format!("{on_worker} tasks failed on it");
            return self.exclude(running.job, running.worker, why);
        }
        Vec::new()
    }

    /// Reduces cannot fetch from `holder`: every map output of the job on it runs again
    /// elsewhere, and it gets no more tasks of the job; the attempts of the job it still runs
    /// are killed, uncharged, to run elsewhere (what it makes, its peers could not fetch, and
    /// what it fetches likely comes through the same broken network). The re-runs count toward
    /// the job's cap only if the holder was `alive` while unreachable: the fault that could repeat.
    fn holder_lost(&mut self, id: JobId, holder: WorkerId, alive: bool) -> Vec<Action> {
        let Some(job) = self.jobs.get_mut(&id) else {
            return Vec::new();
        };
        let held = job.maps_held_by(holder);
        tracing::warn!(job = %id, worker = %holder, maps = held.len(), "reduces cannot fetch from a worker; its map outputs run again");
        for &task in &held {
            job.lose_output(task);
        }
        let running: Vec<AttemptId> = self
            .workers
            .get(&holder)
            .map(|w| w.running.iter().copied())
            .into_iter()
            .flatten()
            .filter(|a| self.attempts.get(a).is_some_and(|r| r.job == id))
            .collect();
        for attempt in running {
            self.kill_attempt(attempt, "its worker's map output could not be fetched");
        }
        if alive {
            let actions = self.count_reruns(id, held.len() as u32, holder);
            if !actions.is_empty() {
                return actions;
            }
        }
        let why = "its map output could not be fetched".to_string();
        self.exclude(id, holder, why)
    }

    /// Counts `maps` map tasks of job `id` run again because their output on `holder` could
    /// not be fetched whole; past the cap, the job fails.
    fn count_reruns(&mut self, id: JobId, maps: u32, holder: WorkerId) -> Vec<Action> {
        let Some(job) = self.jobs.get_mut(&id) else {
            return Vec::new();
        };
        job.fetch_failures.reruns += maps;
        let cap = fetch_rerun_cap(job.maps.len());
        if job.fetch_failures.reruns <= cap {
            return Vec::new();
        }
        let error = format!(
            "map outputs could not be fetched and were run again more than {cap} times; last from {holder}"
        );
        self.fail_job(id, error)
    }

    /// `worker` gets no more tasks of job `id`. A job that every worker with its code is
    /// excluded from fails.
    pub(crate) fn exclude(&mut self, id: JobId, worker: WorkerId, why: String) -> Vec<Action> {
        let Some(job) = self.jobs.get_mut(&id) else {
            return Vec::new();
        };
        if !job.is_active() || job.excluded.contains_key(&worker) {
            return Vec::new();
        }
        tracing::warn!(job = %id, %worker, why, "worker excluded from the job");
        job.excluded.insert(worker, why);
        let job = &self.jobs[&id];
        let name = &job.spec.job_name;
        let mut carriers = self.workers.values().filter(|w| w.jobs.contains(name));
        let all_excluded = carriers.all(|w| !job.admits(w.id));
        if !all_excluded {
            return Vec::new();
        }
        let excluded: Vec<String> = job
            .excluded
            .iter()
            .map(|(w, why)| format!("{w} ({why})"))
            .collect();
        let error = format!(
            "every worker with job '{name}' is excluded from it: {}",
            excluded.join(", ")
        );
        self.fail_job(id, error)
    }

    /// The worker running `attempt` was lost (it missed heartbeats): the attempt is killed, not
    /// charged, and runs again, unless the task has now lost its worker `max_worker_losses`
    /// times in a row while running job code. (A reduce still fetching runs none: a crash loop
    /// that kills it there says nothing about its code.)
    pub(crate) fn attempt_lost(&mut self, attempt: AttemptId, why: &str) -> Vec<Action> {
        let Some(running) = self.end_attempt(attempt, AttemptState::Killed, why) else {
            return Vec::new();
        };
        let Some(job) = self.jobs.get_mut(&running.job) else {
            return Vec::new();
        };
        let limit = job.spec.max_worker_losses.max(1) as usize;
        let task = job.task_mut(running.task);
        if running.in_job_code {
            task.lost_workers.push(running.worker);
        }
        if task.lost_workers.len() < limit {
            job.retry(running.task);
            return Vec::new();
        }
        let workers: Vec<String> = task.lost_workers.iter().map(|w| w.to_string()).collect();
        let error = format!(
            "task {} lost its worker {limit} times in a row ({}); its job code may be crashing the worker process",
            running.task,
            workers.join(", ")
        );
        self.fail_job(running.job, error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::JobPhase;
    use crate::testing::*;
    use quern_proto::{Counters, TaskKind};
    use std::time::Duration;

    #[test]
    fn a_task_failing_max_attempts_times_fails_the_job() {
        let (mut state, id, mut assignments) = one_job(1, 2);
        let map = next(&mut assignments);
        send(&mut state, &failure(&map, FailureKind::Task, "bad disk"));
        assert_eq!(state.jobs[&id].phase, JobPhase::Running);
        let map = next(&mut assignments);
        send(&mut state, &failure(&map, FailureKind::Task, "bad disk"));
        let job = &state.jobs[&id];
        assert_eq!(job.phase, JobPhase::Failed);
        assert_eq!(
            job.error.as_deref(),
            Some("task m-00000 failed 2 times; last error: bad disk")
        );
    }

    #[test]
    fn a_fatal_failure_fails_the_job_at_once() {
        let (mut state, id, mut assignments) = one_job(1, 4);
        let map = next(&mut assignments);
        send(
            &mut state,
            &failure(&map, FailureKind::Fatal, "line too long"),
        );
        let job = &state.jobs[&id];
        assert_eq!(job.phase, JobPhase::Failed);
        assert_eq!(
            job.error.as_deref(),
            Some("task m-00000 failed: line too long")
        );
    }

    #[test]
    fn fetch_failures_do_not_count_against_the_reduce() {
        let (mut state, id, mut assignments) = one_job(1, 1);
        state.fetch_confirmation = LONE_WITNESS;
        let (_, mut spare) = add_worker(&mut state, 1);
        let map = next(&mut assignments);
        succeed(&mut state, &map, Counters::default());
        // More fetch failures than max_attempts (1): one report is not enough to lose the
        // holder, and the reduce is never charged.
        let reduce = next(&mut assignments);
        send(&mut state, &fetch_failure(&reduce, &map));
        assert_eq!(state.jobs[&id].maps_done, 1, "one report loses nothing");
        std::thread::sleep(LONE_WITNESS.0 * 2);
        let reduce = next(&mut assignments);
        send(&mut state, &fetch_failure(&reduce, &map));
        let job = &state.jobs[&id];
        assert_eq!(job.phase, JobPhase::Running);
        assert_eq!(job.maps_done, 0, "two reports lose the holder's output");
        assert_eq!(job.reduces[0].failures, 0);
        let again = next(&mut spare);
        assert_eq!(again.kind, TaskKind::Map as i32);
        succeed(&mut state, &again, Counters::default());
        let reduce = next(&mut spare);
        succeed(&mut state, &reduce, Counters::default());
        assert_eq!(state.jobs[&id].phase, JobPhase::Committing);
        let history = &state.jobs[&id].history;
        let killed = history
            .iter()
            .filter(|r| r.state == AttemptState::Killed)
            .count();
        assert_eq!(killed, 2, "fetch-failed reduces are killed, not failed");
    }

    #[test]
    fn a_corrupt_map_output_runs_that_map_again_and_charges_no_one() {
        let (mut state, id, mut assignments) = one_job(2, 1);
        let (first, second) = (next(&mut assignments), next(&mut assignments));
        succeed(&mut state, &first, Counters::default());
        succeed(&mut state, &second, Counters::default());
        let reduce = next(&mut assignments);
        let mut report = fetch_failure(&reduce, &second);
        report.set_failure(FailureKind::CorruptMapOutput);
        send(&mut state, &report);
        let job = &state.jobs[&id];
        assert_eq!(job.phase, JobPhase::Running);
        assert_eq!(job.maps_done, 1);
        assert!(matches!(
            job.maps[0].state,
            crate::job::TaskState::Done { .. }
        ));
        assert!(job.excluded.is_empty());
        let again = next(&mut assignments);
        assert_eq!((again.kind, again.task), (second.kind, second.task));
    }

    #[test]
    fn a_worker_on_which_three_tasks_failed_is_excluded_and_the_job_goes_on() {
        let mut state = State::default();
        let id = add_job(&mut state, 2, 4);
        let (broken, mut on_broken) = add_worker(&mut state, 1);
        let (_, mut healthy) = add_worker(&mut state, 1);
        let slow = next(&mut healthy);
        // The broken worker's slot frees first, so it takes each retry, until it is excluded.
        for _ in 0..3 {
            let map = next(&mut on_broken);
            send(&mut state, &failure(&map, FailureKind::Task, "no space"));
        }
        assert!(!state.jobs[&id].admits(broken));
        assert_eq!(state.jobs[&id].excluded[&broken], "3 tasks failed on it");
        succeed(&mut state, &slow, Counters::default());
        let map = next(&mut healthy);
        succeed(&mut state, &map, Counters::default());
        let reduce = next(&mut healthy);
        succeed(&mut state, &reduce, Counters::default());
        assert!(
            on_broken.try_recv().is_err(),
            "an excluded worker got a task"
        );
        assert_eq!(state.jobs[&id].phase, JobPhase::Committing);
    }

    #[test]
    fn a_job_that_every_worker_is_excluded_from_fails_and_says_so() {
        let (mut state, id, mut assignments) = one_job(3, 4);
        for _ in 0..3 {
            let map = next(&mut assignments);
            send(&mut state, &failure(&map, FailureKind::Task, "no space"));
        }
        let job = &state.jobs[&id];
        assert_eq!(job.phase, JobPhase::Failed);
        assert_eq!(
            job.error.as_deref(),
            Some(
                "every worker with job 'wc' is excluded from it: worker-0-1 (3 tasks failed on it)"
            )
        );
    }

    #[test]
    fn a_task_that_loses_its_worker_again_and_again_fails_the_job() {
        // The job allows 3 worker losses in a row (see add_job).
        let mut state = State::default();
        let id = add_job(&mut state, 1, 4);
        for round in 1..=3 {
            let (_, mut assignments) = add_worker(&mut state, 1);
            let map = next(&mut assignments);
            assert_eq!(map.task, 0);
            let actions = state.reap(Duration::ZERO);
            assert_eq!(state.jobs[&id].phase == JobPhase::Failed, round == 3);
            assert_eq!(!actions.is_empty(), round == 3);
        }
        assert_eq!(
            state.jobs[&id].error.as_deref(),
            Some(
                "task m-00000 lost its worker 3 times in a row (worker-0-1, worker-0-2, worker-0-3); \
                 its job code may be crashing the worker process"
            )
        );
        // Lost workers' attempts are killed, never failed.
        let job = &state.jobs[&id];
        assert!(job.history.iter().all(|r| r.state == AttemptState::Killed));
        assert_eq!(job.maps[0].failures, 0);
    }

    #[test]
    fn a_reduce_that_loses_its_worker_while_fetching_is_not_blamed() {
        let mut state = State::default();
        let id = add_job(&mut state, 1, 4);
        let (_, mut first) = add_worker(&mut state, 1);
        let map = next(&mut first);
        succeed(&mut state, &map, Counters::default());
        let _reduce = next(&mut first);
        // Five losses (the job allows 3), none of them in job code: the map runs again, then
        // the reduce, on the next worker, and so on.
        for _ in 0..5 {
            state.reap(Duration::ZERO);
            let (_, mut next_worker) = add_worker(&mut state, 2);
            let map = next(&mut next_worker);
            succeed(&mut state, &map, Counters::default());
            let _reduce = next(&mut next_worker);
        }
        let job = &state.jobs[&id];
        assert_eq!(job.phase, JobPhase::Running);
        assert!(job.reduces[0].lost_workers.is_empty());
    }

    #[test]
    fn a_success_between_worker_losses_starts_the_count_again() {
        let mut state = State::default();
        let id = add_job(&mut state, 2, 4);
        let (_, mut a) = add_worker(&mut state, 2);
        let (first, second) = (next(&mut a), next(&mut a));
        succeed(&mut state, &first, Counters::default());
        state.reap(Duration::ZERO);
        assert_eq!(state.jobs[&id].task(task_of(&second)).lost_workers.len(), 1);
        // The map that was done on the lost worker runs again, and so does the other.
        let (_, mut b) = add_worker(&mut state, 2);
        let (x, y) = (next(&mut b), next(&mut b));
        succeed(&mut state, &x, Counters::default());
        succeed(&mut state, &y, Counters::default());
        assert!(
            state.jobs[&id]
                .maps
                .iter()
                .all(|t| t.lost_workers.is_empty())
        );
    }

    #[test]
    fn a_running_reduce_reports_a_lost_output_and_keeps_going_until_it_is_the_suspect() {
        let mut state = State::default();
        let id = add_job(&mut state, 2, 4);
        let (h1, mut on_h1) = add_worker(&mut state, 1);
        let (_, mut on_h2) = add_worker(&mut state, 1);
        let (m1, m2) = (next(&mut on_h1), next(&mut on_h2));
        let (_, mut on_r) = add_worker(&mut state, 2);
        succeed(&mut state, &m1, Counters::default());
        succeed(&mut state, &m2, Counters::default());
        let reduce = next(&mut on_r);
        let report = |map: &quern_proto::Assignment| FetchFailureReport {
            job_id: reduce.job_id.clone(),
            attempt_id: reduce.attempt_id,
            worker_id: reduce.worker_id.clone(),
            failed_map_attempt: map.attempt_id,
            failure: FailureKind::Fetch as i32,
            error: "connection refused".into(),
        };
        assert!(state.fetch_failure_reported(&report(&m1)).0);
        assert!(state.attempts.contains_key(&AttemptId(reduce.attempt_id)));
        std::thread::sleep(Duration::from_millis(2));
        state.heartbeat(h1, &[], &[], Duration::from_secs(1));
        // A second live peer out of reach: this reduce's worker is the problem.
        assert!(!state.fetch_failure_reported(&report(&m2)).0);
        assert!(!state.attempts.contains_key(&AttemptId(reduce.attempt_id)));
        let job = &state.jobs[&id];
        assert_eq!(job.reduces[0].failures, 0);
        assert_eq!(job.excluded.len(), 1);
        // The report of an attempt no longer expected changes nothing.
        assert!(!state.fetch_failure_reported(&report(&m1)).0);
    }

    #[test]
    fn a_reduce_holding_the_slot_a_rerun_map_needs_is_preempted() {
        let mut state = State::default();
        let id = add_job(&mut state, 1, 4);
        let (_, mut only) = add_worker(&mut state, 1);
        let map = next(&mut only);
        succeed(&mut state, &map, Counters::default());
        let reduce = next(&mut only);
        let corrupt = FetchFailureReport {
            job_id: reduce.job_id.clone(),
            attempt_id: reduce.attempt_id,
            worker_id: reduce.worker_id.clone(),
            failed_map_attempt: map.attempt_id,
            failure: FailureKind::CorruptMapOutput as i32,
            error: "crc mismatch".into(),
        };
        // The map must run again, and the reduce holds the only slot: it gives it up.
        assert!(!state.fetch_failure_reported(&corrupt).0);
        let again = next(&mut only);
        assert_eq!((again.kind, again.task), (map.kind, map.task));
        let job = &state.jobs[&id];
        let preempted = job
            .history
            .iter()
            .find(|r| r.attempt == AttemptId(reduce.attempt_id))
            .unwrap();
        assert_eq!(preempted.state, AttemptState::Killed);
        assert!(
            preempted.error.starts_with("preempted"),
            "{}",
            preempted.error
        );
        assert_eq!(job.reduces[0].failures, 0);
        succeed(&mut state, &again, Counters::default());
        let reduce = next(&mut only);
        succeed(&mut state, &reduce, Counters::default());
        assert_eq!(state.jobs[&id].phase, JobPhase::Committing);
    }

    #[test]
    fn a_worker_that_cannot_fetch_from_two_live_peers_is_excluded() {
        let mut state = State::default();
        let id = add_job(&mut state, 2, 4);
        let (h1, mut on_h1) = add_worker(&mut state, 1);
        let (h2, mut on_h2) = add_worker(&mut state, 1);
        let (m1, m2) = (next(&mut on_h1), next(&mut on_h2));
        let (reporter, mut on_r) = add_worker(&mut state, 2);
        succeed(&mut state, &m1, Counters::default());
        succeed(&mut state, &m2, Counters::default());
        let reduce = next(&mut on_r);
        send(&mut state, &fetch_failure(&reduce, &m1));
        // h1 is alive: it heartbeats after the failed fetch.
        std::thread::sleep(Duration::from_millis(2));
        state.heartbeat(h1, &[], &[], Duration::from_secs(1));
        let reduce = next(&mut on_r);
        send(&mut state, &fetch_failure(&reduce, &m2));
        let job = &state.jobs[&id];
        assert!(!job.admits(reporter));
        assert!(job.admits(h1) && job.admits(h2));
        assert_eq!(job.maps_done, 2, "no map output was declared lost");
    }

    #[test]
    fn fetch_failures_that_keep_coming_fail_the_job_past_the_cap() {
        let mut state = State::default();
        state.fetch_confirmation = LONE_WITNESS;
        let id = add_job(&mut state, 1, 4);
        let (holder_id, mut holder) = add_worker(&mut state, 1);
        let map = next(&mut holder);
        let (_, _spare) = add_worker(&mut state, 1);
        succeed(&mut state, &map, Counters::default());
        let cap = fetch_rerun_cap(1);
        // As if the job had already run maps again `cap` times for lost outputs.
        state.jobs.get_mut(&id).unwrap().fetch_failures.reruns = cap;
        for _ in 0..2 {
            let reduce = next(&mut holder);
            send(&mut state, &fetch_failure(&reduce, &map));
            // The holder is alive, only unreachable: it heartbeats between the reports.
            std::thread::sleep(LONE_WITNESS.0 * 2);
            state.heartbeat(holder_id, &[], &[], Duration::from_secs(1));
        }
        let job = &state.jobs[&id];
        assert_eq!(job.phase, JobPhase::Failed);
        assert_eq!(
            job.error.as_deref(),
            Some(&*format!(
                "map outputs could not be fetched and were run again more than {cap} times; last from worker-0-1"
            ))
        );
    }

    fn task_of(a: &quern_proto::Assignment) -> crate::job::TaskRef {
        crate::job::TaskRef {
            kind: a.kind(),
            index: a.task,
        }
    }
}
