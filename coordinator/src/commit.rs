//! Output commit, fenced by the coordinator.
//!
//! - **Task commit.** A reduce attempt that has written its part file (not yet visible) asks to
//!   commit. The first attempt of the partition to ask while it is still expected wins: the task
//!   is [`TaskState::Committing`] from then on, its other attempts are killed, and the
//!   coordinator makes the output final itself (completes the S3 upload it opened for that
//!   attempt, or renames the staged file). A worker never does, so an attempt paused past the
//!   timeout that asks after its replacement committed is refused and can overwrite nothing, and
//!   a worker that dies after asking loses nothing: its worker's fate no longer matters.
//! - **Job commit.** Once every partition is committed, remove the attempts' leftovers and write
//!   `_SUCCESS` last, holding a small JSON manifest. A failed job only has its leftovers removed,
//!   so it never gets a `_SUCCESS`.

use crate::job::{JobPhase, OpenUpload, TaskRef, TaskState};
use crate::state::{Action, RunningAttempt, State};
use crate::wire::AttemptCall;
use quern_proto::ids::{AttemptId, JobId, WorkerId};
use quern_proto::{AttemptState, Counters, JobSpec};
use quern_storage::{OutputDir, StorageError};
use std::collections::BTreeMap;
use std::time::Instant;

/// The output directory of a job with `spec`: part files of reduces, or of maps if it is
/// map-only (`--reducers 0`).
pub fn output_dir(spec: &JobSpec) -> Result<OutputDir, StorageError> {
    OutputDir::of_job(&spec.output, spec.reducers)
}

/// One attempt's output being made final, as chosen under the lock; the I/O runs outside it.
#[derive(Debug, Clone)]
pub struct TaskCommit {
    pub job: JobId,
    pub task: TaskRef,
    pub attempt: AttemptId,
    pub worker: WorkerId,
    /// Its record in the job's history.
    record: usize,
    pub output: String,
    /// The job's reducers: 0 if its maps write the part files.
    pub reducers: u32,
    /// The multipart upload the coordinator opened for this attempt (S3).
    pub upload_id: Option<String>,
}

impl TaskCommit {
    /// Makes the attempt's part file final: the storage step, outside the lock.
    pub async fn run(&self, part_ids: Vec<String>) -> Result<(), StorageError> {
        let out = OutputDir::of_job(&self.output, self.reducers)?;
        out.commit_part(
            self.task.index,
            self.attempt.0,
            self.upload_id.as_deref(),
            part_ids,
        )
        .await
    }
}

impl State {
    /// Chooses the call's attempt to commit its task's output, if it is expected, its job runs,
    /// and no other attempt of the task committed or is committing. Other running attempts of
    /// the task are killed. None: the attempt must discard its output.
    pub fn begin_commit(&mut self, call: AttemptCall) -> Option<TaskCommit> {
        if !self.expects(call) {
            return None;
        }
        let attempt = call.attempt;
        let running = self.attempts.get(&attempt)?;
        let (id, task, worker, record) =
            (running.job, running.task, running.worker, running.record);
        let job = self.jobs.get_mut(&id)?;
        if job.phase != JobPhase::Running || job.task(task).state != TaskState::Running {
            return None;
        }
        let upload_id = job
            .uploads
            .iter()
            .find(|u| u.attempt == attempt)
            .map(|u| u.upload_id.clone());
        let (output, reducers) = (job.spec.output.clone(), job.spec.reducers);
        let others = job.begin_commit(task, attempt);
        for other in others {
            self.kill_attempt(other, "another attempt of the task is committing");
        }
        Some(TaskCommit {
            job: id,
            task,
            attempt,
            worker,
            record,
            output,
            reducers,
            upload_id,
        })
    }

    /// The storage step of `commit` ended. Success makes the task done with the attempt's
    /// `counters`, whatever became of its worker meanwhile; failure is the attempt's failure, and
    /// the task runs again.
    pub fn commit_finished(
        &mut self,
        commit: &TaskCommit,
        counters: Counters,
        result: Result<(), String>,
    ) -> Vec<Action> {
        let Some(job) = self.jobs.get_mut(&commit.job) else {
            return Vec::new();
        };
        if !job.is_active() || job.task(commit.task).state != TaskState::Committing(commit.attempt)
        {
            return Vec::new();
        }
        job.task_mut(commit.task).state = TaskState::Running;
        let (state, error) = match &result {
            Ok(()) => (AttemptState::Succeeded, String::new()),
            Err(e) => (
                AttemptState::Failed,
                format!("cannot commit the output: {e}"),
            ),
        };
        let running = match self.end_attempt(commit.attempt, state, &error) {
            Some(running) => running,
            // Its worker was lost during the commit: the attempt is over all the same.
            None => {
                let job = self
                    .jobs
                    .get_mut(&commit.job)
                    .expect("the job was found above");
                job.history[commit.record].close(state, &error);
                self.metrics.attempt_ended(&job.history[commit.record]);
                RunningAttempt {
                    job: commit.job,
                    task: commit.task,
                    worker: commit.worker,
                    record: commit.record,
                    in_job_code: true,
                    opened_output: true,
                    progress: (0, 0),
                    progressed: Instant::now(),
                }
            }
        };
        let actions = match result {
            Ok(()) => self.task_succeeded(&running, commit.attempt, counters),
            Err(_) => self.task_failed(&running, &error),
        };
        self.schedule();
        actions
    }
}

#[derive(serde::Serialize)]
struct Manifest<'a> {
    job_id: &'a str,
    job_name: &'a str,
    parts: Vec<PartJson>,
    counters: CountersJson,
}

#[derive(serde::Serialize)]
struct PartJson {
    name: String,
    bytes: u64,
}

#[derive(serde::Serialize)]
struct CountersJson {
    input_records: u64,
    input_bytes: u64,
    map_output_records: u64,
    combine_output_records: u64,
    shuffle_bytes: u64,
    reduce_input_groups: u64,
    output_records: u64,
    output_bytes: u64,
    spills: u64,
    /// The job code's own counters, by name.
    user: BTreeMap<String, u64>,
}

impl From<&Counters> for CountersJson {
    fn from(c: &Counters) -> Self {
        CountersJson {
            input_records: c.input_records,
            input_bytes: c.input_bytes,
            map_output_records: c.map_output_records,
            combine_output_records: c.combine_output_records,
            shuffle_bytes: c.shuffle_bytes,
            reduce_input_groups: c.reduce_input_groups,
            output_records: c.output_records,
            output_bytes: c.output_bytes,
            spills: c.spills,
            user: c.user.clone(),
        }
    }
}

/// What the commit needs to know about the job, copied out of the locked state.
pub struct JobCommit {
    pub job_id: String,
    pub job_name: String,
    pub spec: JobSpec,
    /// Its part files: reduce partitions, or maps of a map-only job.
    pub parts: u32,
    pub counters: Counters,
    /// Multipart uploads of attempts that never committed, to abort.
    pub stray_uploads: Vec<OpenUpload>,
}

/// Commits a job whose every partition is committed: leftovers go, then `_SUCCESS` comes.
pub async fn commit_job(job: &JobCommit) -> Result<(), StorageError> {
    let out = clean_up_job(job).await?;
    let manifest = Manifest {
        job_id: &job.job_id,
        job_name: &job.job_name,
        parts: out
            .part_sizes(job.parts)
            .await?
            .into_iter()
            .map(|(name, bytes)| PartJson { name, bytes })
            .collect(),
        counters: (&job.counters).into(),
    };
    let json = serde_json::to_vec_pretty(&manifest).expect("the manifest serializes");
    out.write_success(json).await
}

/// Removes what uncommitted attempts left: open multipart uploads and `_temporary/`.
pub async fn clean_up_job(job: &JobCommit) -> Result<OutputDir, StorageError> {
    let out = output_dir(&job.spec)?;
    for upload in &job.stray_uploads {
        // Most were aborted by their own attempt already; servers differ in how they say so.
        if let Err(e) = out.abort_upload(upload.partition, &upload.upload_id).await {
            tracing::info!(job = %job.job_id, upload = %upload.upload_id, error = %quern_proto::error_chain(&e), "could not abort an uncommitted upload");
        }
    }
    out.discard_temporary().await?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use crate::job::TaskState;
    use crate::state::{Action, State};
    use crate::testing::*;
    use quern_proto::ids::{AttemptId, WorkerId};
    use quern_proto::{AttemptState, Counters};
    use std::time::Duration;

    /// Declares `worker` dead, as the reaper does after its heartbeats stop.
    fn lose(state: &mut State, worker: &str) -> Vec<Action> {
        let id: WorkerId = worker.parse().unwrap();
        state.workers.get_mut(&id).unwrap().last_seen -= Duration::from_secs(60);
        state.reap(Duration::from_secs(10))
    }

    fn groups(n: u64) -> Counters {
        Counters {
            reduce_input_groups: n,
            ..Counters::default()
        }
    }

    #[test]
    fn an_attempt_resumed_after_its_replacement_committed_cannot_commit() {
        let (mut state, id, mut first) = one_job(1, 4);
        let map = next(&mut first);
        succeed(&mut state, &map, Counters::default());
        let paused = next(&mut first);
        // The worker pauses past the timeout: the reduce runs again on another worker, whose
        // heartbeat keeps it alive; the map output it held runs again there too.
        let (_, mut second) = add_worker(&mut state, 1);
        lose(&mut state, &paused.worker_id);
        let map = next(&mut second);
        succeed(&mut state, &map, Counters::default());
        let replacement = next(&mut second);
        succeed(&mut state, &replacement, groups(7));
        assert_eq!(state.jobs[&id].reduces_done, 1);

        assert!(state.begin_commit(call_of(&paused)).is_none());
        let job = &state.jobs[&id];
        assert_eq!(job.counters.reduce_input_groups, 7);
        assert_eq!(
            job.reduces[0].state,
            TaskState::Done {
                attempt: AttemptId(replacement.attempt_id),
                worker: replacement.worker_id.parse().unwrap(),
            }
        );
    }

    #[test]
    fn a_commit_under_way_survives_its_worker_and_fences_the_backup() {
        let (mut state, id, mut first) = one_job(1, 4);
        let map = next(&mut first);
        succeed(&mut state, &map, Counters::default());
        let reduce = next(&mut first);
        let attempt = AttemptId(reduce.attempt_id);
        let commit = state.begin_commit(call_of(&reduce)).unwrap();
        // Asking again gets nothing: one commit per partition.
        assert!(state.begin_commit(call_of(&reduce)).is_none());
        assert_eq!(
            state.jobs[&id].reduces[0].state,
            TaskState::Committing(attempt)
        );

        // Its worker dies while the coordinator completes the upload: nothing runs again.
        let (_, mut second) = add_worker(&mut state, 2);
        lose(&mut state, &reduce.worker_id);
        let map_again = next(&mut second);
        assert_eq!(map_again.kind(), quern_proto::TaskKind::Map);
        assert!(
            second.try_recv().is_err(),
            "the committing reduce is not re-run"
        );

        let actions = state.commit_finished(&commit, groups(3), Ok(()));
        let job = &state.jobs[&id];
        assert_eq!(job.reduces_done, 1);
        assert_eq!(job.counters.reduce_input_groups, 3);
        let record = job.history.iter().find(|r| r.attempt == attempt).unwrap();
        assert_eq!(record.state, AttemptState::Succeeded);
        // Every partition is committed: the job commits without waiting for the re-run map,
        // whose output no reduce needs, and which is killed and counts nothing.
        assert_eq!(actions, [Action::CommitJob(id)]);
        assert_eq!(state.jobs[&id].phase, crate::job::JobPhase::Committing);
        let inputs = Counters {
            input_records: 5,
            ..Counters::default()
        };
        let late = success(&map_again, inputs);
        assert!(!state.report(&late).0);
        assert_eq!(state.jobs[&id].counters.input_records, 0);
    }

    #[test]
    fn a_commit_whose_storage_step_fails_is_a_failed_attempt_and_the_task_runs_again() {
        let (mut state, id, mut assignments) = one_job(1, 4);
        let map = next(&mut assignments);
        succeed(&mut state, &map, Counters::default());
        let reduce = next(&mut assignments);
        let attempt = AttemptId(reduce.attempt_id);
        let commit = state.begin_commit(call_of(&reduce)).unwrap();
        state.commit_finished(&commit, groups(3), Err("the store said no".into()));
        let job = &state.jobs[&id];
        assert_eq!((job.reduces_done, job.reduces[0].failures), (0, 1));
        assert_eq!(job.counters.reduce_input_groups, 0);
        let record = job.history.iter().find(|r| r.attempt == attempt).unwrap();
        assert_eq!(
            (record.state, record.error.as_str()),
            (
                AttemptState::Failed,
                "cannot commit the output: the store said no"
            )
        );
        let again = next(&mut assignments);
        assert_eq!((again.kind(), again.task), (reduce.kind(), 0));
    }

    /// A map-only job: its maps commit their part files and may not merely report success; once
    /// every map committed, the job commits. A worker lost after its map committed runs
    /// nothing again: the map's output is in the job's output, not on the worker.
    #[test]
    fn map_only_maps_commit_and_a_lost_worker_runs_nothing_again() {
        let mut state = State::starting_now();
        let id = add_job_with(&mut state, 2, |spec| spec.reducers = 0);
        let (lost, mut on_lost) = add_worker(&mut state, 1);
        let first = next(&mut on_lost);
        let (_, mut on_other) = add_worker(&mut state, 1);
        let second = next(&mut on_other);
        assert_eq!(first.reducers, 0);
        let (accepted, _) = state.report(&success(&first, Counters::default()));
        assert!(!accepted, "a map-only map succeeds only by committing");
        succeed(&mut state, &first, groups(1));
        lose(&mut state, &lost.to_string());
        let job = &state.jobs[&id];
        assert_eq!((job.maps_done, job.counters.reduce_input_groups), (1, 1));
        assert!(!job.has_pending_maps());
        let commit = state.begin_commit(call_of(&second)).expect("it may commit");
        let actions = state.commit_finished(&commit, groups(2), Ok(()));
        assert_eq!(actions, [Action::CommitJob(id)]);
        assert_eq!(state.jobs[&id].counters.reduce_input_groups, 3);
    }
}
