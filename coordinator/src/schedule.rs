//! Scheduling: hands runnable tasks to ready workers with free slots, at once, over each worker's
//! assignment stream. Jobs are served first come, first served; within a job, maps run before
//! reduces, and a reduce starts only when every map is done. A task goes to the worker with the
//! most free slots that has the task's job compiled in, which spreads a job over the cluster.

use crate::job::TaskRef;
use crate::split::ObjectRange;
use crate::state::State;
use quern_proto::ids::{AttemptId, JobId, WorkerId};
use quern_proto::{Assignment, AttemptState, MapSplit, TaskKind};
use quern_storage::Version;

impl State {
    /// Assigns every task that can start now.
    pub fn schedule(&mut self) {
        loop {
            while let Some((worker, job)) = self.pick() {
                let task = self
                    .jobs
                    .get_mut(&job)
                    .and_then(|j| j.take_runnable())
                    .expect("pick returns a job with a runnable task");
                let attempt = self.start_attempt(job, task, worker);
                self.send(worker, job, task, attempt);
            }
            if !self.preempt_a_reduce() {
                return;
            }
        }
    }

    /// A reduce whose map outputs were lost waits, holding its slot, for those maps to run
    /// again; if the slots they need are all held so, nothing moves. As Hadoop's reduce
    /// preemption does, a job whose maps wait, none of them running, while its reduces run gives
    /// up its newest reduce: KILLED, uncharged, to start again once the maps are done. One map
    /// running is enough to move, so the other reduces keep what they fetched. Called when
    /// nothing more could be assigned; returns whether a slot was freed.
    fn preempt_a_reduce(&mut self) -> bool {
        let Some((job, attempt)) = self
            .active_jobs()
            .filter(|j| j.has_pending_maps() && j.running_maps == 0)
            .find_map(|j| j.running_reduces.last().map(|a| (j.id, *a)))
        else {
            return false;
        };
        tracing::info!(job = %job, %attempt, "preempting a reduce: maps must run again first");
        let why = "preempted: maps of its job must run again first";
        if let Some(running) = self.end_attempt(attempt, AttemptState::Killed, why)
            && let Some(j) = self.jobs.get_mut(&job)
        {
            j.retry_after_live_end(running.task);
        }
        true
    }

    /// The ready worker with the most free slots that can run some runnable job, and that job.
    fn pick(&self) -> Option<(WorkerId, JobId)> {
        if !self.active_jobs().any(|j| j.has_runnable()) {
            return None;
        }
        self.free.iter().find_map(|(_, id)| {
            let worker = &self.workers[id];
            self.active_jobs()
                .find(|j| {
                    j.has_runnable() && worker.jobs.contains(&j.spec.job_name) && j.admits(*id)
                })
                .map(|j| (*id, j.id))
        })
    }

    fn assignment(
        &self,
        job: JobId,
        task: TaskRef,
        attempt: AttemptId,
        worker: WorkerId,
    ) -> Assignment {
        let j = &self.jobs[&job];
        let split_index = match task.kind {
            TaskKind::Map => Some(task.index),
            TaskKind::Sample => Some(j.sampled_split(task.index)),
            _ => None,
        };
        let ranges = split_index.map(|index| j.splits[index as usize].ranges.as_slice());
        let (split, packed) = match ranges {
            Some([one]) => (Some(map_split(one)), Vec::new()),
            Some(packed) => (None, packed.iter().map(map_split).collect()),
            None => (None, Vec::new()),
        };
        Assignment {
            job_id: job.to_string(),
            job_name: j.spec.job_name.clone(),
            kind: task.kind as i32,
            task: task.index,
            attempt_id: attempt.0,
            reducers: j.spec.reducers,
            sort_buffer_bytes: j.spec.sort_buffer_bytes,
            shuffle_compression: j.spec.shuffle_compression,
            max_line_bytes: j.spec.max_line_bytes,
            split,
            packed,
            output: j.spec.output.clone(),
            worker_id: worker.to_string(),
            job_secret: j.shuffle_secret.clone(),
            params: j.spec.params.clone(),
            cut_points: match task.kind {
                TaskKind::Map => j.cut_points.to_vec(),
                _ => Vec::new(),
            },
        }
    }

    /// Pushes an assignment down the worker's stream; a closed stream puts the task back.
    pub(crate) fn send(&mut self, worker: WorkerId, job: JobId, task: TaskRef, attempt: AttemptId) {
        let assignment = self.assignment(job, task, attempt, worker);
        let sent = self.workers[&worker]
            .sender
            .as_ref()
            .is_some_and(|s| s.send(Ok(assignment)).is_ok());
        if sent {
            tracing::debug!(job = %job, %task, %attempt, worker = %worker, "assigned");
            return;
        }
        tracing::info!(worker = %worker, "assignment stream closed; worker not ready");
        if let Some(w) = self.workers.get_mut(&worker) {
            w.sender = None;
        }
        self.kill_attempt(attempt, "assignment stream closed");
    }

    /// Stops expecting a running attempt that did not fail by itself, and runs its task again.
    pub fn kill_attempt(&mut self, attempt: AttemptId, reason: &str) {
        if let Some(running) = self.end_attempt(attempt, AttemptState::Killed, reason)
            && let Some(job) = self.jobs.get_mut(&running.job)
        {
            job.retry(running.task);
        }
    }
}

/// One object range of a map's split, as an assignment carries it.
fn map_split(range: &ObjectRange) -> MapSplit {
    let (version, modified_seconds) = match &range.version {
        Version::Tag(tag) => (tag.clone(), 0),
        Version::Modified(seconds) => (String::new(), *seconds),
        Version::Unknown => (String::new(), 0),
    };
    MapSplit {
        url: range.url.clone(),
        start: range.start,
        end: range.end,
        object_size: range.object_size,
        version,
        modified_seconds,
    }
}
