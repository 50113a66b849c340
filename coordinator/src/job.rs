//! One job's state: its tasks, which are pending, running or done, the attempt history, and the
//! counters of its successful attempts. Memory is O(maps + reduces + attempts).

use crate::fetch_failure::FetchFailures;
use crate::map_events::MapEvents;
use crate::sample::Sampling;
use crate::split::Split;
use quern_proto::ids::{AttemptId, JobId, WorkerId};
use quern_proto::{AttemptState, Counters, JobSpec, SampledKey, TaskKind};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

/// A task of a job: map `index` or reduce partition `index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TaskRef {
    pub kind: TaskKind,
    pub index: u32,
}

impl fmt::Display for TaskRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let letter = match self.kind {
            TaskKind::Map => 'm',
            TaskKind::Sample => 's',
            _ => 'r',
        };
        write!(f, "{letter}-{:05}", self.index)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TaskState {
    #[default]
    Pending,
    /// Attempts run: those in [`Task::running`], one, or two while a backup runs.
    Running,
    /// The coordinator is making `attempt`'s output final (see [`crate::commit`]): no other
    /// attempt of the task can, and a lost worker no longer matters to it.
    Committing(AttemptId),
    /// Done by `attempt`; for a map, its output lives on `worker`.
    Done {
        attempt: AttemptId,
        worker: WorkerId,
    },
}

#[derive(Debug, Default)]
pub struct Task {
    pub state: TaskState,
    /// Its attempts running now, oldest first.
    pub running: Vec<AttemptId>,
    /// FAILED attempts so far: the task's own errors. Killed attempts (a lost worker, a fetch
    /// failure, a cancel) do not count, as in Hadoop.
    pub failures: u32,
    /// The workers lost under this task's latest attempts, in a row: a task that crashes its
    /// worker process is retried only so many times.
    pub lost_workers: Vec<WorkerId>,
    pub last_error: String,
    /// What the attempt that did this task counted, while it is done; part of the job's totals.
    pub counters: Counters,
}

/// One attempt, as `quern status` shows it.
#[derive(Debug)]
pub struct AttemptRecord {
    pub task: TaskRef,
    pub attempt: AttemptId,
    pub worker: WorkerId,
    pub state: AttemptState,
    pub started: Instant,
    pub ended: Option<Instant>,
    pub error: String,
    /// A backup attempt, started while another attempt of its task ran.
    pub backup: bool,
}

impl AttemptRecord {
    /// The attempt ended now, in `state`, with `error` (empty if none).
    pub fn close(&mut self, state: AttemptState, error: &str) {
        self.state = state;
        self.ended = Some(Instant::now());
        self.error = error.to_string();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobPhase {
    Running,
    /// Every reduce committed; `_SUCCESS` is being written.
    Committing,
    Succeeded,
    Failed,
}

#[derive(Debug)]
pub struct Job {
    pub id: JobId,
    pub spec: JobSpec,
    /// The secret its reduces show to fetch its map outputs (see `Assignment.job_secret`); set
    /// at submit, kept in the journal.
    pub shuffle_secret: String,
    pub splits: Vec<Split>,
    pub maps: Vec<Task>,
    pub reduces: Vec<Task>,
    pending_maps: VecDeque<u32>,
    pending_reduces: VecDeque<u32>,
    pub maps_done: u32,
    pub reduces_done: u32,
    pub phase: JobPhase,
    pub error: Option<String>,
    /// The counters of the attempts whose work the job uses: those of done tasks.
    pub counters: Counters,
    pub submitted: Instant,
    pub finished: Option<Instant>,
    pub history: Vec<AttemptRecord>,
    /// Multipart uploads reduce attempts opened (S3); those not committed are aborted at the end.
    pub uploads: Vec<OpenUpload>,
    /// Where the map outputs are, as events that reduces read from a cursor on: a map done, or
    /// its output lost.
    pub map_events: MapEvents,
    /// Workers that get no more tasks of this job, as Hadoop's blacklisting and Spark's
    /// excludeOnFailure, and why.
    pub excluded: BTreeMap<WorkerId, String>,
    /// FAILED attempts of this job on each worker: [`EXCLUDE_AFTER_FAILURES`] exclude it.
    pub failures_on: HashMap<WorkerId, u32>,
    pub fetch_failures: FetchFailures,
    /// The map tasks done on each worker, so that losing a worker costs the maps it held, not
    /// a scan of every map. May list a map since done elsewhere: [`Job::maps_held_by`] checks.
    done_on: HashMap<WorkerId, Vec<u32>>,
    /// Reduce attempts running now, oldest first: the newest is the one preempted when a map
    /// must run again and finds no slot (see `schedule`).
    pub running_reduces: BTreeSet<AttemptId>,
    /// Map attempts running now.
    pub running_maps: u32,
    /// Backup attempts launched, by task kind (see [`crate::speculate`]).
    pub backups: [u32; 2],
    /// After a restart, map outputs of the journal awaited back from their workers: attempt →
    /// (map task, what it counted). Those tasks run only if no worker registers holding them
    /// before the rejoin window ends (see [`crate::resume`]).
    pub awaiting: HashMap<AttemptId, (u32, Counters)>,
    /// A total-order job's sampling stage; its maps wait until it is finished.
    pub sampling: Option<Sampling>,
    /// A total-order job's cut points, once sampled; empty otherwise.
    pub cut_points: Arc<Vec<Vec<u8>>>,
}

/// Failed tasks of a job on one worker that exclude the worker from the job.
pub const EXCLUDE_AFTER_FAILURES: u32 = 3;

/// A multipart upload a reduce attempt opened for its part file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenUpload {
    pub partition: u32,
    pub attempt: AttemptId,
    pub upload_id: String,
}

impl Job {
    pub fn new(id: JobId, spec: JobSpec, splits: Vec<Split>) -> Self {
        let maps = splits.len() as u32;
        let reduces = spec.reducers;
        let spec_total_order = spec.total_order && reduces > 0;
        Job {
            id,
            spec,
            shuffle_secret: String::new(),
            splits,
            maps: (0..maps).map(|_| Task::default()).collect(),
            reduces: (0..reduces).map(|_| Task::default()).collect(),
            pending_maps: (0..maps).collect(),
            pending_reduces: (0..reduces).collect(),
            maps_done: 0,
            reduces_done: 0,
            phase: JobPhase::Running,
            error: None,
            counters: Counters::default(),
            submitted: Instant::now(),
            finished: None,
            history: Vec::new(),
            uploads: Vec::new(),
            map_events: MapEvents::default(),
            excluded: BTreeMap::new(),
            failures_on: HashMap::new(),
            fetch_failures: FetchFailures::default(),
            done_on: HashMap::new(),
            running_reduces: BTreeSet::new(),
            running_maps: 0,
            backups: [0; 2],
            awaiting: HashMap::new(),
            sampling: (spec_total_order && maps > 0).then(|| Sampling::new(maps)),
            cut_points: Arc::default(),
        }
    }

    /// Whether the maps may run: the job needs no cut points, or has them.
    pub fn sampled(&self) -> bool {
        self.sampling.as_ref().is_none_or(Sampling::finished)
    }

    /// After a restart: the cut points the journal kept; no sampling runs again.
    pub fn sampled_before_restart(&mut self, cut_points: Vec<Vec<u8>>) {
        self.sampling = None;
        self.cut_points = Arc::new(cut_points);
    }

    /// A sample task's keys, from its accepted success report (before its task is done).
    pub fn add_samples(&mut self, keys: &[SampledKey]) {
        if let Some(sampling) = &mut self.sampling {
            sampling.add(keys);
        }
    }

    /// After a restart: the maps in `done` succeeded before it; their outputs are awaited from
    /// the workers holding them instead of running again. Once every partition is committed no
    /// reduce needs them, and they are done as they were, wherever their outputs are.
    pub fn await_map_outputs(
        &mut self,
        done: impl IntoIterator<Item = (u32, (AttemptId, Counters))>,
    ) {
        let needed = (self.reduces_done as usize) < self.reduces.len();
        for (index, (attempt, counters)) in done {
            if index as usize >= self.maps.len() {
                continue;
            }
            if needed {
                self.awaiting.insert(attempt, (index, counters));
            } else {
                let task = TaskRef {
                    kind: TaskKind::Map,
                    index,
                };
                self.task_done(task, attempt, WorkerId::EARLIER, counters);
            }
        }
        // What is left to run: neither done above nor awaited.
        let awaited: HashSet<u32> = self.awaiting.values().map(|&(task, _)| task).collect();
        let maps = &self.maps;
        self.pending_maps.retain(|&task| {
            maps[task as usize].state == TaskState::Pending && !awaited.contains(&task)
        });
    }

    /// A worker registered holding the output of map `attempt`: if it is awaited, its task is
    /// done, held by `worker` at `address`. Returns whether it was adopted.
    pub fn adopt(&mut self, attempt: AttemptId, worker: WorkerId, address: &str) -> bool {
        if self.phase != JobPhase::Running {
            return false;
        }
        let Some((index, counters)) = self.awaiting.remove(&attempt) else {
            return false;
        };
        let task = TaskRef {
            kind: TaskKind::Map,
            index,
        };
        let now = Instant::now();
        self.history.push(AttemptRecord {
            task,
            attempt,
            worker,
            state: AttemptState::Succeeded,
            started: now,
            ended: Some(now),
            error: String::new(),
            backup: false,
        });
        self.task_done(task, attempt, worker, counters);
        self.map_events.done(index, attempt, worker, address);
        true
    }

    /// The rejoin window ended: maps whose outputs no worker brought back run again.
    pub fn stop_awaiting(&mut self) {
        let mut tasks: Vec<u32> = self.awaiting.drain().map(|(_, (task, _))| task).collect();
        tasks.sort_unstable();
        for &index in tasks.iter().rev() {
            self.enqueue_again(TaskRef {
                kind: TaskKind::Map,
                index,
            });
        }
    }

    /// After a restart: part `index` (a reduce partition, or a map of a map-only job) was
    /// committed before it, by `attempt`, which counted `counters`. It does not run again.
    pub fn committed_before_restart(&mut self, index: u32, attempt: AttemptId, counters: Counters) {
        let kind = self.output_kind();
        let (tasks, pending) = match kind {
            TaskKind::Map => (&self.maps, &mut self.pending_maps),
            _ => (&self.reduces, &mut self.pending_reduces),
        };
        if index as usize >= tasks.len() {
            return;
        }
        pending.retain(|&p| p != index);
        self.task_done(
            TaskRef { kind, index },
            attempt,
            WorkerId::EARLIER,
            counters,
        );
    }

    /// A map-only job (`--reducers 0`): each map writes its own part file, `part-m-NNNNN`,
    /// committed as a reduce's is, and nothing is shuffled.
    pub fn map_only(&self) -> bool {
        self.spec.reducers == 0
    }

    /// The kind of the tasks that write the job's part files, and so commit: reduces, or the
    /// maps of a map-only job.
    pub fn output_kind(&self) -> TaskKind {
        if self.map_only() {
            TaskKind::Map
        } else {
            TaskKind::Reduce
        }
    }

    /// Whether every part file is committed: the job's output is complete.
    pub fn output_complete(&self) -> bool {
        match self.output_kind() {
            TaskKind::Map => self.all_maps_done(),
            _ => self.reduces_done as usize == self.reduces.len(),
        }
    }

    /// The part files the output holds when complete.
    pub fn part_count(&self) -> u32 {
        match self.output_kind() {
            TaskKind::Map => self.maps.len() as u32,
            _ => self.reduces.len() as u32,
        }
    }

    /// Whether the phase of `kind` is near its end: each of its tasks has started, and some is
    /// not done yet.
    pub fn in_tail(&self, kind: TaskKind) -> bool {
        self.phase == JobPhase::Running
            && match kind {
                TaskKind::Map => self.pending_maps.is_empty() && !self.all_maps_done(),
                _ => {
                    self.all_maps_done()
                        && self.pending_reduces.is_empty()
                        && (self.reduces_done as usize) < self.reduces.len()
                }
            }
    }

    /// Whether some map waits to run (again).
    pub fn has_pending_maps(&self) -> bool {
        self.phase == JobPhase::Running && !self.pending_maps.is_empty()
    }

    /// Whether `worker` may run tasks of this job.
    pub fn admits(&self, worker: WorkerId) -> bool {
        !self.excluded.contains_key(&worker)
    }

    /// Map tasks whose output lives on `worker`; none in a map-only job, whose maps' output is
    /// committed to the job's output, not held.
    pub fn maps_held_by(&self, worker: WorkerId) -> Vec<TaskRef> {
        if self.map_only() {
            return Vec::new();
        }
        let Some(done) = self.done_on.get(&worker) else {
            return Vec::new();
        };
        let mut held: Vec<u32> = done
            .iter()
            .copied()
            .filter(|&index| {
                matches!(self.maps[index as usize].state, TaskState::Done { worker: w, .. } if w == worker)
            })
            .collect();
        held.sort_unstable();
        held.dedup();
        held.into_iter()
            .map(|index| TaskRef {
                kind: TaskKind::Map,
                index,
            })
            .collect()
    }

    /// The map task done by `attempt`, and the worker holding its output, if it is still the
    /// attempt the job uses.
    pub fn map_done_by(&self, attempt: AttemptId) -> Option<(TaskRef, WorkerId)> {
        self.maps
            .iter()
            .enumerate()
            .find_map(|(index, t)| match t.state {
                TaskState::Done { attempt: a, worker } if a == attempt => Some((
                    TaskRef {
                        kind: TaskKind::Map,
                        index: index as u32,
                    },
                    worker,
                )),
                _ => None,
            })
    }

    pub fn task(&self, task: TaskRef) -> &Task {
        match task.kind {
            TaskKind::Map => &self.maps[task.index as usize],
            TaskKind::Sample => &self.sampling().tasks[task.index as usize],
            _ => &self.reduces[task.index as usize],
        }
    }

    pub fn task_mut(&mut self, task: TaskRef) -> &mut Task {
        match task.kind {
            TaskKind::Map => &mut self.maps[task.index as usize],
            TaskKind::Sample => &mut self.sampling_mut().tasks[task.index as usize],
            _ => &mut self.reduces[task.index as usize],
        }
    }

    /// The sampling stage, which a job has while it has sample tasks.
    fn sampling(&self) -> &Sampling {
        self.sampling
            .as_ref()
            .expect("a job with sample tasks has a sampling stage")
    }

    fn sampling_mut(&mut self) -> &mut Sampling {
        self.sampling
            .as_mut()
            .expect("a job with sample tasks has a sampling stage")
    }

    /// The split a sample task reads.
    pub fn sampled_split(&self, index: u32) -> u32 {
        self.sampling().splits[index as usize]
    }

    /// A sample task is done: once all are, the cut points are made from what they sampled.
    fn sample_done(&mut self) {
        let parts = self.spec.reducers;
        let sampling = self.sampling_mut();
        sampling.done += 1;
        if sampling.finished() {
            let cuts = sampling.cut(parts);
            self.cut_points = Arc::new(cuts);
        }
    }

    pub fn all_maps_done(&self) -> bool {
        self.maps_done as usize == self.maps.len()
    }

    /// Tasks waiting to start (sample tasks, maps and reduces not yet running): the job's part
    /// of the scheduling queue.
    pub fn pending_tasks(&self) -> usize {
        if self.phase != JobPhase::Running {
            return 0;
        }
        let sampling = self.sampling.as_ref().map_or(0, |s| s.pending.len());
        sampling + self.pending_maps.len() + self.pending_reduces.len()
    }

    /// Whether a task could start now: maps first; reduces once every map is done.
    pub fn has_runnable(&self) -> bool {
        if self.phase != JobPhase::Running {
            return false;
        }
        if let Some(sampling) = self.sampling.as_ref().filter(|s| !s.finished()) {
            return !sampling.pending.is_empty();
        }
        !self.pending_maps.is_empty() || (self.all_maps_done() && !self.pending_reduces.is_empty())
    }

    /// Takes the next task to start, if any.
    pub fn take_runnable(&mut self) -> Option<TaskRef> {
        if self.phase != JobPhase::Running {
            return None;
        }
        if let Some(sampling) = self.sampling.as_mut().filter(|s| !s.finished()) {
            let index = sampling.pending.pop_front()?;
            return Some(TaskRef {
                kind: TaskKind::Sample,
                index,
            });
        }
        if let Some(index) = self.pending_maps.pop_front() {
            return Some(TaskRef {
                kind: TaskKind::Map,
                index,
            });
        }
        if self.all_maps_done()
            && let Some(index) = self.pending_reduces.pop_front()
        {
            return Some(TaskRef {
                kind: TaskKind::Reduce,
                index,
            });
        }
        None
    }

    /// A task is done by `attempt` on `worker`, which counted `counters`. Returns its other
    /// attempts still running, which lost the race and are to be killed.
    pub fn task_done(
        &mut self,
        task: TaskRef,
        attempt: AttemptId,
        worker: WorkerId,
        counters: Counters,
    ) -> Vec<AttemptId> {
        // A sample task reads what the maps read again: its counts are not the job's.
        let counters = match task.kind {
            TaskKind::Sample => Counters::default(),
            _ => counters,
        };
        add_counters(&mut self.counters, &counters);
        let t = self.task_mut(task);
        t.state = TaskState::Done { attempt, worker };
        let losers = std::mem::take(&mut t.running);
        t.lost_workers.clear();
        t.counters = counters;
        match task.kind {
            TaskKind::Map => {
                self.maps_done += 1;
                self.done_on.entry(worker).or_default().push(task.index);
            }
            TaskKind::Sample => self.sample_done(),
            _ => self.reduces_done += 1,
        }
        losers.into_iter().filter(|&a| a != attempt).collect()
    }

    /// `attempt` of `task` stopped running (whichever way it ended).
    pub fn attempt_stopped(&mut self, task: TaskRef, attempt: AttemptId) {
        self.task_mut(task).running.retain(|&a| a != attempt);
        match task.kind {
            TaskKind::Map => self.running_maps -= 1,
            TaskKind::Sample => {}
            _ => drop(self.running_reduces.remove(&attempt)),
        }
    }

    /// The coordinator starts making `attempt`'s output final. Returns the task's other attempts
    /// still running, which are to be killed: none of them can commit now.
    pub fn begin_commit(&mut self, task: TaskRef, attempt: AttemptId) -> Vec<AttemptId> {
        let t = self.task_mut(task);
        t.state = TaskState::Committing(attempt);
        let others = std::mem::take(&mut t.running);
        t.running.push(attempt);
        others.into_iter().filter(|&a| a != attempt).collect()
    }

    /// Runs a task again after an attempt that ended with its worker alive (a fetch failure, a
    /// preemption): the run of worker losses under it is broken.
    pub fn retry_after_live_end(&mut self, task: TaskRef) {
        self.task_mut(task).lost_workers.clear();
        self.retry(task);
    }

    /// Runs a task again after one of its attempts ended without doing it, unless another
    /// attempt of it still runs, commits, or did it. It goes ahead of tasks that never ran.
    pub fn retry(&mut self, task: TaskRef) {
        let t = self.task(task);
        if t.state == TaskState::Running && t.running.is_empty() {
            self.enqueue_again(task);
        }
    }

    /// The output of a done task is lost (a map output on a dead worker, or corrupt): the task
    /// runs again, and its counters leave the job's totals, as the next attempt counts the same
    /// input again.
    pub fn lose_output(&mut self, task: TaskRef) {
        // A sample task's keys are with the coordinator already.
        let TaskState::Done { attempt, worker } = self.task(task).state else {
            return;
        };
        if task.kind == TaskKind::Sample {
            return;
        }
        if task.kind == TaskKind::Map {
            self.maps_done -= 1;
            self.map_events.obsolete(task.index, attempt, worker);
        } else {
            self.reduces_done -= 1;
        }
        let lost = std::mem::take(&mut self.task_mut(task).counters);
        subtract_counters(&mut self.counters, &lost);
        self.enqueue_again(task);
    }

    fn enqueue_again(&mut self, task: TaskRef) {
        self.task_mut(task).state = TaskState::Pending;
        match task.kind {
            TaskKind::Map => self.pending_maps.push_front(task.index),
            TaskKind::Sample => self.sampling_mut().pending.push_front(task.index),
            _ => self.pending_reduces.push_front(task.index),
        }
    }

    /// Uploads that no committed attempt owns: every one, but for the attempt that did each
    /// finished part (reduce, or map of a map-only job).
    pub fn uncommitted_uploads(&self) -> Vec<OpenUpload> {
        let kind = self.output_kind();
        self.uploads
            .iter()
            .filter(|u| {
                let task = self.task(TaskRef {
                    kind,
                    index: u.partition,
                });
                !matches!(task.state, TaskState::Done { attempt, .. } if attempt == u.attempt)
            })
            .cloned()
            .collect()
    }

    pub fn is_active(&self) -> bool {
        matches!(self.phase, JobPhase::Running | JobPhase::Committing)
    }

    /// Ends the job as failed with `error`; pending tasks are dropped.
    pub fn fail(&mut self, error: String) {
        self.phase = JobPhase::Failed;
        self.error = Some(error);
        self.finished = Some(Instant::now());
        self.pending_maps.clear();
        self.pending_reduces.clear();
    }
}

/// Adds the counters of a successful attempt to the job's.
pub fn add_counters(total: &mut Counters, more: &Counters) {
    total.input_records += more.input_records;
    total.input_bytes += more.input_bytes;
    total.map_output_records += more.map_output_records;
    total.combine_output_records += more.combine_output_records;
    total.shuffle_bytes += more.shuffle_bytes;
    total.reduce_input_groups += more.reduce_input_groups;
    total.output_records += more.output_records;
    total.output_bytes += more.output_bytes;
    total.spills += more.spills;
    for (name, count) in &more.user {
        *total.user.entry(name.clone()).or_default() += count;
    }
}

/// Takes the counters of an attempt whose work was lost out of the job's.
fn subtract_counters(total: &mut Counters, lost: &Counters) {
    total.input_records -= lost.input_records;
    total.input_bytes -= lost.input_bytes;
    total.map_output_records -= lost.map_output_records;
    total.combine_output_records -= lost.combine_output_records;
    total.shuffle_bytes -= lost.shuffle_bytes;
    total.reduce_input_groups -= lost.reduce_input_groups;
    total.output_records -= lost.output_records;
    total.output_bytes -= lost.output_bytes;
    total.spills -= lost.spills;
    for (name, count) in &lost.user {
        if let Some(total_count) = total.user.get_mut(name) {
            *total_count = total_count.saturating_sub(*count);
        }
    }
}
