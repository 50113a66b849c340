//! `/metrics` in the Prometheus text format. The counts the state machine keeps as it moves
//! ([`crate::metrics`]) are encoded as they are; the levels (jobs by state, workers by state,
//! the scheduling queue, and how long ago each worker last heartbeat, as a histogram) are read
//! from the state at scrape time, under the lock only as long as it takes to count, so that a
//! heartbeat never pays for a metric.

use crate::job::JobPhase;
use crate::metrics::Metrics;
use crate::state::State;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::time::Instant;

/// Heartbeat lag buckets, in seconds: past the interval (1 s by default) a worker is late.
const LAG_BUCKETS: [f64; 9] = [0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

/// The levels read from the state at one scrape.
pub struct Levels {
    /// Jobs by phase: running, committing, succeeded, failed.
    jobs: [i64; 4],
    /// Workers: ready, registering, lost lately (still in view).
    workers: [i64; 3],
    queued_tasks: i64,
    /// Seconds since each connected worker's last heartbeat.
    lags: Vec<f64>,
}

/// The counts to encode, and the levels read now from `state`.
pub fn snapshot(state: &State) -> (Arc<Metrics>, Levels) {
    let mut jobs = [0; 4];
    for job in state.jobs.values() {
        jobs[phase_index(job.phase)] += 1;
    }
    let ready = state
        .workers
        .values()
        .filter(|w| w.sender.is_some())
        .count() as i64;
    let lost = state.gone_workers.iter().filter(|w| w.lost).count() as i64;
    let now = Instant::now();
    let levels = Levels {
        jobs,
        workers: [ready, state.workers.len() as i64 - ready, lost],
        queued_tasks: state.active_jobs().map(|j| j.pending_tasks() as i64).sum(),
        lags: state
            .workers
            .values()
            .map(|w| now.saturating_duration_since(w.last_seen).as_secs_f64())
            .collect(),
    };
    (state.metrics.clone(), levels)
}

fn phase_index(phase: JobPhase) -> usize {
    match phase {
        JobPhase::Running => 0,
        JobPhase::Committing => 1,
        JobPhase::Succeeded => 2,
        JobPhase::Failed => 3,
    }
}

/// The text of `/metrics`.
pub fn render(metrics: &Metrics, levels: &Levels) -> Result<String, std::fmt::Error> {
    let mut out = String::new();
    encode_registry(&mut out, metrics.registry())?;
    encode_registry(&mut out, &levels_registry(levels))?;
    encode_eof(&mut out)?;
    Ok(out)
}

fn levels_registry(levels: &Levels) -> Registry {
    let mut registry = Registry::default();
    let jobs = labelled(
        ["running", "committing", "succeeded", "failed"],
        levels.jobs,
    );
    registry.register("quern_jobs", "Jobs the coordinator shows, by state", jobs);
    // `lost`: workers lost lately and still in view; quern_workers_lost_total counts them all.
    let workers = labelled(["ready", "registering", "lost"], levels.workers);
    registry.register("quern_workers", "Workers, by state", workers);
    let queued = Gauge::<i64>::default();
    queued.set(levels.queued_tasks);
    registry.register(
        "quern_scheduling_queue_tasks",
        "Tasks of running jobs waiting to start",
        queued,
    );
    let lag = Histogram::new(LAG_BUCKETS);
    for seconds in &levels.lags {
        lag.observe(*seconds);
    }
    registry.register(
        "quern_heartbeat_lag_seconds",
        "Time since each connected worker's last heartbeat, at this scrape",
        lag,
    );
    registry
}

fn labelled<const N: usize>(
    states: [&'static str; N],
    values: [i64; N],
) -> Family<StateLabel, Gauge> {
    let family = Family::<StateLabel, Gauge>::default();
    for (state, value) in states.into_iter().zip(values) {
        family.get_or_create(&StateLabel { state }).set(value);
    }
    family
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_encoded_with_one_end_of_file() {
        let levels = Levels {
            jobs: [1, 0, 2, 0],
            workers: [3, 0, 1],
            queued_tasks: 5,
            lags: vec![0.2, 0.3, 9.0],
        };
        let text = render(&Metrics::default(), &levels).unwrap();
        for line in [
            "quern_jobs{state=\"succeeded\"} 2",
            "quern_workers{state=\"ready\"} 3",
            "quern_workers{state=\"lost\"} 1",
            "quern_scheduling_queue_tasks 5",
            "quern_heartbeat_lag_seconds_count 3",
            "quern_heartbeat_lag_seconds_bucket{le=\"0.5\"} 2",
            "quern_workers_lost_total 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        assert_eq!(text.matches("# EOF").count(), 1);
        assert!(text.ends_with("# EOF\n"));
    }
}
