//! Worker liveness. Heartbeats carry the attempts a worker runs; the coordinator answers with the
//! attempts it no longer expects (to cancel) and puts back tasks the worker never got. A worker
//! silent for the timeout is dead: its running tasks, and the finished map outputs only it held
//! that a running job still needs, are scheduled again.

use crate::job::JobPhase;
use crate::state::{Action, State, Worker};
use quern_proto::ids::{AttemptId, JobId, WorkerId};
use quern_proto::{AttemptProgress, HeartbeatResponse};
use std::collections::HashSet;
use std::time::{Duration, Instant};

impl State {
    /// Handles a heartbeat. `grace` is how long an assignment may take to reach the worker before
    /// a heartbeat that does not list it means it was lost.
    pub fn heartbeat(
        &mut self,
        id: WorkerId,
        running: &[AttemptProgress],
        held_jobs: &[String],
        grace: Duration,
    ) -> HeartbeatResponse {
        let now = Instant::now();
        let Some(worker) = self.workers.get_mut(&id) else {
            return HeartbeatResponse {
                reregister: true,
                ..HeartbeatResponse::default()
            };
        };
        worker.last_seen = now;
        let reported: HashSet<AttemptId> =
            running.iter().map(|a| AttemptId(a.attempt_id)).collect();
        let cancel = reported.difference(&worker.running).map(|a| a.0).collect();
        let unreported: Vec<AttemptId> = worker.running.difference(&reported).copied().collect();
        let lost: Vec<AttemptId> = unreported
            .into_iter()
            .filter(|a| {
                self.attempt_started(*a)
                    .is_some_and(|t| now.duration_since(t) > grace)
            })
            .collect();
        self.record_progress(id, running, now);
        for attempt in &lost {
            tracing::warn!(worker = %id, %attempt, "worker does not know an attempt it was given");
            self.kill_attempt(*attempt, "the worker never started it");
        }
        if !lost.is_empty() {
            self.schedule();
        }
        HeartbeatResponse {
            reregister: false,
            cancel_attempts: cancel,
            finished_jobs: self.finished_jobs(held_jobs),
        }
    }

    /// Of `held`, the jobs that are over, whose map outputs no one needs. A job this coordinator
    /// does not know counts as over only once the rejoin window has passed: until then it may be
    /// one that a restart is resuming (see [`crate::resume`]).
    fn finished_jobs(&self, held: &[String]) -> Vec<String> {
        let rejoining = self.rejoin_until.is_some();
        held.iter()
            .filter(
                |text| match text.parse::<JobId>().ok().and_then(|id| self.jobs.get(&id)) {
                    Some(job) => !job.is_active(),
                    None => !rejoining,
                },
            )
            .cloned()
            .collect()
    }

    fn attempt_started(&self, attempt: AttemptId) -> Option<Instant> {
        let running = self.attempts.get(&attempt)?;
        Some(self.jobs.get(&running.job)?.history[running.record].started)
    }

    /// Declares workers silent for longer than `timeout` dead and reschedules their work.
    pub fn reap(&mut self, timeout: Duration) -> Vec<Action> {
        let now = Instant::now();
        let dead: Vec<WorkerId> = self
            .workers
            .values()
            .filter(|w| now.duration_since(w.last_seen) > timeout)
            .map(|w| w.id)
            .collect();
        let mut actions = Vec::new();
        for id in &dead {
            actions.extend(self.worker_gone(*id, Gone::Lost));
        }
        if !dead.is_empty() {
            self.schedule();
        }
        actions
    }

    /// The coordinator itself stood still (its process stopped, its machine paused, or starved
    /// of CPU), so it took no heartbeat meanwhile, and a worker's silence over that time says
    /// nothing about the worker. Every worker, and every running attempt's progress clock, starts
    /// afresh from `now`: after a pause longer than the worker timeout, the workers are not all
    /// declared dead at once, their tasks run again, for heartbeats that were waiting to be read.
    pub fn excuse_stall(&mut self, now: Instant) {
        for worker in self.workers.values_mut() {
            worker.last_seen = now;
        }
        for running in self.attempts.values_mut() {
            running.progressed = now;
        }
    }

    /// A worker says it is shutting down: its work is rescheduled at once.
    pub fn worker_left(&mut self, id: WorkerId) -> Vec<Action> {
        let actions = self.worker_gone(id, Gone::Left);
        self.schedule();
        actions
    }

    /// Forgets a worker that left or died: its running tasks, and the map outputs only it held
    /// that a running job still needs, run again. A task whose worker died under it is counted
    /// (see [`crate::failure`]); one whose worker left is not.
    fn worker_gone(&mut self, id: WorkerId, gone: Gone) -> Vec<Action> {
        let Some(worker) = self.remove_worker(id) else {
            return Vec::new();
        };
        self.remember_gone(&worker, gone);
        let mut actions = Vec::new();
        match gone {
            Gone::Left => {
                tracing::info!(worker = %id, address = %worker.address, "worker left");
                for attempt in worker.running {
                    self.kill_attempt(attempt, "worker left");
                }
            }
            Gone::Lost => {
                tracing::warn!(worker = %id, address = %worker.address, "worker lost: missed heartbeats");
                for attempt in worker.running {
                    actions.extend(self.attempt_lost(attempt, "worker lost: missed heartbeats"));
                }
            }
        }
        for job in self
            .jobs
            .values_mut()
            .filter(|j| j.phase == JobPhase::Running)
        {
            for task in job.maps_held_by(id) {
                job.lose_output(task);
            }
        }
        actions
    }

    /// Keeps `worker`, which just went, in view for a while (see [`GoneWorker`]).
    fn remember_gone(&mut self, worker: &Worker, gone: Gone) {
        if gone == Gone::Lost {
            self.metrics.worker_lost();
        }
        let now = Instant::now();
        while self.gone_workers.len() >= GONE_WORKERS_KEPT
            || self
                .gone_workers
                .front()
                .is_some_and(|w| now.duration_since(w.gone_at) > GONE_WORKERS_SHOWN_FOR)
        {
            self.gone_workers.pop_front();
        }
        self.gone_workers.push_back(GoneWorker {
            id: worker.id,
            address: worker.address.clone(),
            slots: worker.slots,
            lost: gone == Gone::Lost,
            last_seen: worker.last_seen,
            gone_at: now,
        });
    }
}

/// How many workers that went the coordinator keeps in view, at most.
pub const GONE_WORKERS_KEPT: usize = 64;
/// How long a worker that went stays in view.
pub const GONE_WORKERS_SHOWN_FOR: Duration = Duration::from_secs(600);

/// A worker that went lately: the state forgets it at once (its id is never used again), but a
/// person watching the cluster should see that it was there and went, and how.
#[derive(Debug, Clone)]
pub struct GoneWorker {
    pub id: WorkerId,
    pub address: String,
    pub slots: u32,
    /// It missed heartbeats (rather than saying goodbye).
    pub lost: bool,
    pub last_seen: Instant,
    pub gone_at: Instant,
}

/// How a worker went.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Gone {
    /// It said goodbye: nothing it ran is to blame.
    Left,
    /// It stopped heartbeating: it may have crashed under a task.
    Lost,
}
