//! Bounded memory: the coordinator keeps a finished job (succeeded or failed), for `quern status`,
//! until [`Retention::jobs`] newer jobs have finished or [`Retention::period`] has passed since it
//! finished, whichever comes first; then it forgets it. A worker told of a job it no longer
//! knows deletes that job's map outputs, as for any finished job.

use crate::state::State;
use quern_proto::ids::JobId;
use std::time::{Duration, Instant};

/// How many finished jobs, and for how long, the coordinator keeps.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub jobs: usize,
    pub period: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            jobs: 100,
            period: Duration::from_secs(24 * 3600),
        }
    }
}

impl State {
    /// Forgets the finished jobs past `retention`.
    pub fn retire_finished_jobs(&mut self, retention: Retention, now: Instant) {
        let mut finished: Vec<(Instant, JobId)> = self
            .jobs
            .values()
            .filter(|j| !j.is_active())
            .filter_map(|j| Some((j.finished?, j.id)))
            .collect();
        if finished.len() <= retention.jobs
            && finished
                .iter()
                .all(|(at, _)| now.saturating_duration_since(*at) <= retention.period)
        {
            return;
        }
        // Newest first: the first `jobs` of them are kept, if young enough.
        finished.sort_unstable_by(|a, b| b.cmp(a));
        for (index, (at, id)) in finished.into_iter().enumerate() {
            if index >= retention.jobs || now.saturating_duration_since(at) > retention.period {
                tracing::debug!(job = %id, "retiring a finished job");
                self.jobs.remove(&id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;

    /// Adds `count` jobs and fails them, one after another.
    fn finished_jobs(state: &mut State, count: usize) -> Vec<JobId> {
        (0..count)
            .map(|_| {
                let id = add_job(state, 1, 4);
                state.fail_job(id, "done with it".into());
                id
            })
            .collect()
    }

    #[test]
    fn the_newest_finished_jobs_are_kept_and_the_running_ones_always() {
        let mut state = State::default();
        let running = add_job(&mut state, 1, 4);
        let done = finished_jobs(&mut state, 5);
        let retention = Retention {
            jobs: 2,
            period: Duration::from_secs(3600),
        };
        state.retire_finished_jobs(retention, Instant::now());
        let kept: Vec<JobId> = state.jobs.keys().copied().collect();
        assert_eq!(kept, vec![running, done[3], done[4]]);
    }

    #[test]
    fn finished_jobs_older_than_the_period_are_forgotten_and_their_ids_never_reused() {
        let mut state = State::default();
        let done = finished_jobs(&mut state, 3);
        let old = Instant::now() - Duration::from_secs(7200);
        state.jobs.get_mut(&done[0]).unwrap().finished = Some(old);
        let retention = Retention {
            jobs: 100,
            period: Duration::from_secs(3600),
        };
        state.retire_finished_jobs(retention, Instant::now());
        assert!(!state.jobs.contains_key(&done[0]));
        assert_eq!(state.jobs.len(), 2);
        let next = add_job(&mut state, 1, 4);
        assert!(done.iter().all(|id| *id < next));
        // A worker still holding the forgotten job's outputs is told to delete them.
        let (worker, _) = add_worker(&mut state, 1);
        let answer = state.heartbeat(worker, &[], &[done[0].to_string()], Duration::ZERO);
        assert_eq!(answer.finished_jobs, vec![done[0].to_string()]);
    }
}
