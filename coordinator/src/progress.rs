//! Hung attempts. Heartbeats carry each running attempt's progress (records and bytes); an
//! attempt whose progress stands still for its job's task timeout has FAILED, as with Hadoop's
//! `mapreduce.task.timeout`: it counts toward `max_attempts` and runs again elsewhere, and its
//! worker is told to cancel it at its next heartbeat.

use crate::state::{Action, State};
use quern_proto::ids::{AttemptId, WorkerId};
use quern_proto::{AttemptProgress, AttemptState, TaskKind};
use std::time::{Duration, Instant};

impl State {
    /// Notes how far `worker`'s attempts have got; an attempt whose numbers moved has progressed.
    pub(crate) fn record_progress(
        &mut self,
        worker: WorkerId,
        reports: &[AttemptProgress],
        now: Instant,
    ) {
        for report in reports {
            let Some(running) = self.attempts.get_mut(&AttemptId(report.attempt_id)) else {
                continue;
            };
            let progress = (report.records, report.bytes);
            if running.worker == worker && running.progress != progress {
                running.progress = progress;
                running.progressed = now;
            }
        }
    }

    /// Fails every attempt that made no progress for its job's task timeout. A reduce waiting
    /// for maps to run again is waiting on the job, not hung: its clock starts once they are done.
    pub fn time_out_hung_attempts(&mut self, now: Instant) -> Vec<Action> {
        let mut hung = Vec::new();
        for (&id, running) in self.attempts.iter_mut() {
            let Some(job) = self.jobs.get(&running.job) else {
                continue;
            };
            if running.task.kind == TaskKind::Reduce && !job.all_maps_done() {
                running.progressed = now;
                continue;
            }
            let timeout = Duration::from_millis(job.spec.task_timeout_ms);
            if !timeout.is_zero() && now.duration_since(running.progressed) > timeout {
                hung.push((id, timeout));
            }
        }
        let mut actions = Vec::new();
        for (attempt, timeout) in &hung {
            let error = format!(
                "no progress for {} (the task timeout); the attempt was stopped",
                humantime::format_duration(*timeout)
            );
            tracing::warn!(%attempt, %error, "attempt hung");
            if let Some(running) = self.end_attempt(*attempt, AttemptState::Failed, &error) {
                actions.extend(self.task_failed(&running, &error));
            }
        }
        if !hung.is_empty() {
            self.schedule();
        }
        actions
    }
}

#[cfg(test)]
mod tests {
    use crate::job::TaskState;
    use crate::testing::*;
    use quern_proto::ids::{AttemptId, WorkerId};
    use quern_proto::{AttemptProgress, AttemptState};
    use std::time::{Duration, Instant};

    #[test]
    fn an_attempt_without_progress_for_the_task_timeout_fails_and_runs_again() {
        let (mut state, id, mut assignments) = one_job(2, 4);
        state.jobs.get_mut(&id).unwrap().spec.task_timeout_ms = 1000;
        let (moving, stuck) = (next(&mut assignments), next(&mut assignments));
        let worker: WorkerId = moving.worker_id.parse().unwrap();
        let start = Instant::now();
        let report = |records| AttemptProgress {
            attempt_id: moving.attempt_id,
            records,
            bytes: 10 * records,
        };
        state.record_progress(worker, &[report(5)], start + Duration::from_millis(900));
        // The same numbers again are no progress.
        state.record_progress(worker, &[report(5)], start + Duration::from_millis(1400));
        state.time_out_hung_attempts(start + Duration::from_millis(1500));

        assert!(state.attempts.contains_key(&AttemptId(moving.attempt_id)));
        assert!(!state.attempts.contains_key(&AttemptId(stuck.attempt_id)));
        let job = &state.jobs[&id];
        let record = job
            .history
            .iter()
            .find(|r| r.attempt.0 == stuck.attempt_id)
            .unwrap();
        assert_eq!(record.state, AttemptState::Failed);
        assert_eq!(
            record.error,
            "no progress for 1s (the task timeout); the attempt was stopped"
        );
        assert_eq!(job.maps[stuck.task as usize].failures, 1);
        // It runs again at once, in the slot it freed.
        let again = next(&mut assignments);
        assert_eq!(again.task, stuck.task);
        let task = &job.maps[stuck.task as usize];
        assert_eq!(task.state, TaskState::Running);
        assert_eq!(task.running, [AttemptId(again.attempt_id)]);

        state.time_out_hung_attempts(start + Duration::from_millis(2000));
        assert!(
            !state.attempts.contains_key(&AttemptId(moving.attempt_id)),
            "1.1 s after its last progress, the moving map is hung too"
        );
    }
}
