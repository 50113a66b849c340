//! What the state machine counts as it moves, for Prometheus (`/metrics`, see
//! [`crate::http`]): attempts ended by kind and state, their durations by kind, workers lost,
//! fetch failures and bytes shuffled. Every series is created here, once, so that counting at a
//! transition is an atomic add (or, for a duration, one uncontended histogram lock), never a
//! lookup or an allocation. Labels are the task kind and the attempt state only: ids come and go
//! and would make a series each. What is a level rather than a count (jobs by state, workers,
//! the queue, heartbeat lag) is read from the state when scraped, in [`crate::http::metrics`].

use crate::job::AttemptRecord;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use quern_proto::{AttemptState, TaskKind};

/// The kinds of task, as labels.
const KINDS: [&str; 3] = ["map", "reduce", "sample"];
/// The states an attempt ends in, as labels.
const ENDINGS: [&str; 3] = ["succeeded", "failed", "killed"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AttemptLabels {
    kind: &'static str,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

/// The coordinator's counters; shared (behind an `Arc`) by the state and the `/metrics` handler.
pub struct Metrics {
    registry: Registry,
    /// Attempts ended, by kind and ending (indexes of [`KINDS`] and [`ENDINGS`]).
    attempts: [[Counter; 3]; 3],
    /// How long ended attempts ran, by kind.
    durations: [Histogram; 3],
    workers_lost: Counter,
    fetch_failures: Counter,
    shuffle_bytes: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let attempt_family = Family::<AttemptLabels, Counter>::default();
        let attempts = KINDS.map(|kind| {
            ENDINGS.map(|state| attempt_family.get_or_create_owned(&AttemptLabels { kind, state }))
        });
        registry.register(
            "quern_task_attempts",
            "Task attempts ended, by task kind and how they ended",
            attempt_family,
        );
        // 10 ms to ~11 min.
        let duration_family = Family::<KindLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.01, 4.0, 9))
        });
        let durations = KINDS.map(|kind| duration_family.get_or_create_owned(&KindLabel { kind }));
        registry.register(
            "quern_task_duration_seconds",
            "How long ended task attempts ran, by task kind",
            duration_family,
        );
        let workers_lost = Counter::default();
        registry.register(
            "quern_workers_lost",
            "Workers declared dead after missing heartbeats",
            workers_lost.clone(),
        );
        let fetch_failures = Counter::default();
        registry.register(
            "quern_fetch_failures",
            "Map outputs that a reduce reported it could not fetch",
            fetch_failures.clone(),
        );
        let shuffle_bytes = Counter::default();
        registry.register(
            "quern_shuffle_bytes",
            "Bytes of map output that succeeded reduces fetched",
            shuffle_bytes.clone(),
        );
        Metrics {
            registry,
            attempts,
            durations,
            workers_lost,
            fetch_failures,
            shuffle_bytes,
        }
    }
}

impl Metrics {
    /// The registry of every series counted here.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// `record` was just closed: counts it by kind and ending, and its duration.
    pub fn attempt_ended(&self, record: &AttemptRecord) {
        let kind = kind_index(record.task.kind);
        let Some(ending) = ending_index(record.state) else {
            return;
        };
        self.attempts[kind][ending].inc();
        if let Some(ended) = record.ended {
            let seconds = ended.duration_since(record.started).as_secs_f64();
            self.durations[kind].observe(seconds);
        }
    }

    pub fn worker_lost(&self) {
        self.workers_lost.inc();
    }

    pub fn fetch_failure(&self) {
        self.fetch_failures.inc();
    }

    /// A reduce that succeeded fetched `bytes` of map output.
    pub fn shuffled(&self, bytes: u64) {
        self.shuffle_bytes.inc_by(bytes);
    }
}

fn kind_index(kind: TaskKind) -> usize {
    match kind {
        TaskKind::Map | TaskKind::Unspecified => 0,
        TaskKind::Reduce => 1,
        TaskKind::Sample => 2,
    }
}

fn ending_index(state: AttemptState) -> Option<usize> {
    match state {
        AttemptState::Succeeded => Some(0),
        AttemptState::Failed => Some(1),
        AttemptState::Killed => Some(2),
        AttemptState::Running | AttemptState::Unspecified => None,
    }
}

/// The label of a task kind, as the series above use it.
pub fn kind_label(kind: TaskKind) -> &'static str {
    KINDS[kind_index(kind)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::TaskRef;
    use quern_proto::ids::{AttemptId, WorkerId};
    use std::time::{Duration, Instant};

    fn record(kind: TaskKind, state: AttemptState) -> AttemptRecord {
        let started = Instant::now();
        AttemptRecord {
            task: TaskRef { kind, index: 0 },
            attempt: AttemptId(1),
            worker: WorkerId::EARLIER,
            state,
            started,
            ended: Some(started + Duration::from_millis(50)),
            error: String::new(),
            backup: false,
        }
    }

    #[test]
    fn ended_attempts_are_counted_by_kind_and_state_and_running_ones_not() {
        let metrics = Metrics::default();
        metrics.attempt_ended(&record(TaskKind::Map, AttemptState::Succeeded));
        metrics.attempt_ended(&record(TaskKind::Map, AttemptState::Succeeded));
        metrics.attempt_ended(&record(TaskKind::Reduce, AttemptState::Killed));
        metrics.attempt_ended(&record(TaskKind::Reduce, AttemptState::Running));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, metrics.registry()).unwrap();
        for line in [
            "quern_task_attempts_total{kind=\"map\",state=\"succeeded\"} 2",
            "quern_task_attempts_total{kind=\"reduce\",state=\"killed\"} 1",
            "quern_task_attempts_total{kind=\"reduce\",state=\"succeeded\"} 0",
            "quern_task_duration_seconds_count{kind=\"map\"} 2",
            "quern_task_duration_seconds_count{kind=\"reduce\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }
}
