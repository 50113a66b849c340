//! A coordinator started again on its journal (`--state-dir`). Each job that had not ended is
//! rebuilt under its own id from what the journal says was done:
//!
//! - **Committed partitions stay committed.** A partition whose commit was granted and whose part
//!   file is in the output was committed: it does not run again, and keeps the counters its
//!   attempt reported. A grant whose part file is not there never completed; that reduce runs
//!   again.
//! - **Open uploads are aborted.** Every multipart upload journaled for the job, but the one of
//!   each committed partition, is aborted, so a crash leaves no orphan.
//! - **Finished maps are adopted.** Workers keep their map outputs while the coordinator is away
//!   (`quern worker --orphan-grace`) and list them when they register again. Until the rejoin
//!   window (one `--worker-timeout` from the start) ends, a journaled map output is awaited; a
//!   worker that lists it holds it, and the map does not run again. After the window, the maps
//!   not adopted run again.
//!
//! Attempts that were running at the crash belong to the earlier incarnation: their ids are of
//! an earlier block (see [`crate::journal`]), so their reports, commits and requests are refused,
//! and their workers cancel them at the first heartbeat.

use crate::commit::output_dir;
use crate::error::{CoordinatorError, error_chain};
use crate::job::Job;
use crate::journal::RecoveredJob;
use crate::service::CoordinatorService;
use crate::state::{Action, State};
use quern_proto::HeldMapOutputs;
use quern_proto::ids::{AttemptId, JobId, WorkerId};
use quern_storage::StorageUrl;
use std::time::Instant;

impl State {
    /// Adopts the map outputs a registering worker lists that a resumed job awaits.
    pub fn adopt_held(&mut self, worker: WorkerId, held: &[HeldMapOutputs]) -> Vec<Action> {
        let Some(address) = self.workers.get(&worker).map(|w| w.address.clone()) else {
            return Vec::new();
        };
        let mut adopted = 0;
        for outputs in held {
            let Some(job) = outputs
                .job_id
                .parse::<JobId>()
                .ok()
                .and_then(|id| self.jobs.get_mut(&id))
            else {
                continue;
            };
            for &attempt in &outputs.map_attempt_ids {
                adopted += usize::from(job.adopt(AttemptId(attempt), worker, &address));
            }
        }
        if adopted > 0 {
            tracing::info!(%worker, maps = adopted, "adopted map outputs finished before the restart");
            self.schedule();
        }
        Vec::new()
    }

    /// Ends the rejoin window once `now` is past it: the awaited map outputs that no worker
    /// brought back are lost, and those maps run again.
    pub fn close_rejoin_window(&mut self, now: Instant) {
        if self.rejoin_until.is_none_or(|until| now < until) {
            return;
        }
        self.rejoin_until = None;
        for job in self.jobs.values_mut() {
            if !job.awaiting.is_empty() {
                tracing::info!(job = %job.id, maps = job.awaiting.len(), "map outputs not brought back after the restart run again");
                job.stop_awaiting();
            }
        }
        self.schedule();
    }
}

impl CoordinatorService {
    /// Rebuilds the jobs a restart found unfinished (see the module), before serving. A job that
    /// cannot be rebuilt (its input is gone, its output unreachable) fails, saying why.
    pub async fn resume(&self, jobs: Vec<RecoveredJob>) {
        for recovered in jobs {
            let id = recovered.id;
            let rebuilt = self.rebuild(&recovered).await;
            let mut state = self.lock();
            let actions = match rebuilt {
                Ok(job) => {
                    tracing::info!(job = %id, maps = job.maps.len(), maps_awaited = job.awaiting.len(), partitions_committed = job.reduces_done, "resuming a job the journal holds");
                    state.add_job(job)
                }
                Err(e) => {
                    let error = format!("cannot resume after a restart: {}", error_chain(&e));
                    let job = Job::new(id, recovered.spec, Vec::new());
                    state.add_failed_job(job, error)
                }
            };
            drop(state);
            self.run_actions(actions);
        }
    }

    /// The job as the journal left it: the input listed again, committed partitions done, other
    /// uploads aborted, finished maps awaited.
    async fn rebuild(&self, recovered: &RecoveredJob) -> Result<Job, CoordinatorError> {
        let spec = &recovered.spec;
        let inputs = spec
            .inputs
            .iter()
            .map(|i| StorageUrl::parse(i))
            .collect::<Result<Vec<_>, _>>()?;
        let splits = self.split_input(spec, &inputs, None).await?;
        let mut job = Job::new(recovered.id, spec.clone(), splits);
        job.shuffle_secret = recovered.shuffle_secret.clone();
        if let Some(cut_points) = &recovered.cut_points {
            job.sampled_before_restart(cut_points.clone());
        }
        let out = output_dir(spec)?;
        let timeout = self.config().storage_timeout;
        let committed = tokio::time::timeout(
            timeout,
            out.committed_parts(recovered.grants.keys().copied()),
        )
        .await
        .map_err(|_| CoordinatorError::Timeout {
            what: format!("looking for the committed part files of {}", recovered.id),
            seconds: timeout.as_secs(),
        })??;
        for &partition in &committed {
            let grant = &recovered.grants[&partition];
            job.committed_before_restart(partition, grant.attempt, grant.counters.clone());
        }
        for upload in &recovered.uploads {
            let completed = committed.contains(&upload.partition)
                && recovered.grants[&upload.partition].attempt == upload.attempt;
            if completed {
                continue;
            }
            let aborted = tokio::time::timeout(
                timeout,
                out.abort_upload(upload.partition, &upload.upload_id),
            )
            .await;
            if !matches!(aborted, Ok(Ok(()))) {
                tracing::warn!(job = %recovered.id, upload = %upload.upload_id, "cannot abort an upload left open by the restart");
            }
        }
        job.await_map_outputs(recovered.maps_done.clone());
        Ok(job)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use quern_proto::{Counters, TaskKind};
    use std::time::Duration;

    fn counted(records: u64) -> Counters {
        Counters {
            input_records: records,
            ..Counters::default()
        }
    }

    fn held(job: JobId, attempts: &[u64]) -> HeldMapOutputs {
        HeldMapOutputs {
            job_id: job.to_string(),
            map_attempt_ids: attempts.to_vec(),
        }
    }

    #[test]
    fn map_outputs_brought_back_are_adopted_and_the_rest_run_again_after_the_window() {
        let mut state = State::default();
        let start = Instant::now();
        state.rejoin_until = Some(start + Duration::from_secs(10));
        // The journal says maps 0 and 2 of three were done, by attempts 7 and 9.
        let mut job = new_job(&mut state, 3, |_| {});
        let id = job.id;
        job.await_map_outputs([
            (0, (AttemptId(7), counted(1))),
            (2, (AttemptId(9), counted(3))),
        ]);
        state.add_job(job);
        let (_, mut first) = add_worker(&mut state, 4);
        let map = next(&mut first);
        assert_eq!((map.kind(), map.task), (TaskKind::Map, 1));
        assert!(first.try_recv().is_err(), "awaited maps do not run yet");

        // A worker registers again holding attempt 7, one not awaited, and a job not known.
        let (second, _) = add_worker(&mut state, 1);
        let other = JobId {
            incarnation: 1,
            number: 99,
        };
        state.adopt_held(second, &[held(id, &[7, 8]), held(other, &[9])]);
        let job = &state.jobs[&id];
        assert_eq!(job.maps_done, 1);
        assert_eq!(job.counters, counted(1));
        assert_eq!(job.maps_held_by(second).len(), 1);
        succeed(&mut state, &map, counted(2));

        // Before the window ends nothing changes; after it, map 2 runs again.
        state.close_rejoin_window(start + Duration::from_secs(9));
        assert!(first.try_recv().is_err());
        state.close_rejoin_window(start + Duration::from_secs(10));
        let again = next(&mut first);
        assert_eq!((again.kind(), again.task), (TaskKind::Map, 2));
        succeed(&mut state, &again, counted(3));
        let job = &state.jobs[&id];
        assert_eq!((job.maps_done, job.counters.clone()), (3, counted(6)));
        // Attempt 9 comes back too late: it is no longer awaited.
        state.adopt_held(second, &[held(id, &[9])]);
        assert_eq!(state.jobs[&id].counters, counted(6));
    }

    #[test]
    fn a_job_the_coordinator_does_not_know_is_kept_on_workers_until_the_window_ends() {
        let mut state = State::default();
        let start = Instant::now();
        state.rejoin_until = Some(start + Duration::from_secs(10));
        let (worker, _) = add_worker(&mut state, 1);
        let unknown = ["job-5-0001".to_string()];
        let grace = Duration::from_secs(1);
        assert!(
            state
                .heartbeat(worker, &[], &unknown, grace)
                .finished_jobs
                .is_empty()
        );
        state.close_rejoin_window(start + Duration::from_secs(10));
        assert_eq!(
            state.heartbeat(worker, &[], &unknown, grace).finished_jobs,
            unknown
        );
    }

    #[test]
    fn a_job_whose_partitions_were_all_committed_commits_without_its_maps() {
        let mut state = State::default();
        let mut job = new_job(&mut state, 2, |spec| spec.reducers = 2);
        let id = job.id;
        job.committed_before_restart(0, AttemptId(3), counted(0));
        job.committed_before_restart(1, AttemptId(4), counted(0));
        job.await_map_outputs([
            (0, (AttemptId(1), counted(1))),
            (1, (AttemptId(2), counted(2))),
        ]);
        assert!(job.awaiting.is_empty());
        assert_eq!(
            job.counters,
            counted(3),
            "what the maps counted before the restart"
        );
        assert_eq!(state.add_job(job), [Action::CommitJob(id)]);
    }
}
