//! Runs one assignment (map or reduce) and reports how it ended. The tasks running on this worker
//! are tracked here, so heartbeats can list them and the coordinator can cancel them.

use crate::attempt::Progress;
use crate::context::Context;
use crate::error::TaskError;
use crate::map::{run_map, run_map_only};
use crate::reduce::run_reduce;
use crate::sample::run_sample;
use quern_proto::ids::JobId;
use quern_proto::{Assignment, AttemptProgress, Backoff, Counters, TaskKind, TaskReport};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::AbortHandle;
use tracing::Instrument;

const REPORT_TRIES: u32 = 5;
/// Between report tries: 200 ms, 400 ms, 600 ms, 800 ms.
const REPORT_RETRY_STEP: Duration = Duration::from_millis(200);

/// An attempt running on this worker: how to stop it, and how far it has got.
struct RunningTask {
    abort: AbortHandle,
    progress: Arc<Progress>,
}

/// The attempts running on this worker.
#[derive(Clone, Default)]
pub struct Running {
    tasks: Arc<Mutex<HashMap<u64, RunningTask>>>,
}

impl Running {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, RunningTask>> {
        self.tasks.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The running attempts with their progress, for a heartbeat.
    pub fn attempts(&self) -> Vec<AttemptProgress> {
        self.lock()
            .iter()
            .map(|(&attempt_id, task)| {
                let (records, bytes) = task.progress.get();
                AttemptProgress {
                    attempt_id,
                    records,
                    bytes,
                }
            })
            .collect()
    }

    /// Stops an attempt the coordinator no longer expects.
    pub fn cancel(&self, attempt: u64) {
        if let Some(task) = self.lock().remove(&attempt) {
            tracing::info!(
                attempt,
                "cancelling an attempt the coordinator no longer expects"
            );
            task.abort.abort();
        }
    }

    pub fn cancel_all(&self) {
        for (_, task) in self.lock().drain() {
            task.abort.abort();
        }
    }

    /// Starts `assignment` in the background.
    pub fn start(&self, ctx: Arc<Context>, worker_id: String, assignment: Assignment) {
        let attempt = assignment.attempt_id;
        let running = self.clone();
        let mut tasks = self.lock();
        let span =
            tracing::info_span!("task", job = %assignment.job_id, task = assignment.task, attempt);
        let progress = Arc::new(Progress::default());
        let handle = tokio::spawn({
            let progress = progress.clone();
            async move {
                run_and_report(&ctx, worker_id, &assignment, progress).await;
                running.lock().remove(&attempt);
            }
            .instrument(span)
        });
        let abort = handle.abort_handle();
        tasks.insert(attempt, RunningTask { abort, progress });
    }
}

async fn run_and_report(
    ctx: &Context,
    worker_id: String,
    assignment: &Assignment,
    progress: Arc<Progress>,
) {
    let result = match TaskKind::try_from(assignment.kind) {
        // Job ids name directories here: anything else never reaches the disk.
        _ if assignment.job_id.parse::<JobId>().is_err() => {
            Err(TaskError::InvalidJobId(assignment.job_id.clone()))
        }
        // A map-only map's commit was its success report, as a reduce's.
        Ok(TaskKind::Map) if assignment.reducers == 0 => {
            run_map_only(ctx, assignment, progress).await.map(|()| None)
        }
        Ok(TaskKind::Map) => run_map(ctx, assignment, progress)
            .await
            .map(|counters| Some((counters, Vec::new()))),
        // A sample counts nothing toward the job: its maps read the same input again.
        Ok(TaskKind::Sample) => run_sample(ctx, assignment, progress)
            .await
            .map(|samples| Some((Counters::default(), samples))),
        // A reduce's commit was its success report.
        Ok(TaskKind::Reduce) => run_reduce(ctx, assignment, progress).await.map(|()| None),
        _ => Err(TaskError::MissingField("task kind")),
    };
    let mut report = TaskReport {
        worker_id,
        job_id: assignment.job_id.clone(),
        attempt_id: assignment.attempt_id,
        ..TaskReport::default()
    };
    match result {
        Ok(None) => return tracing::debug!("task committed"),
        Ok(Some((counters, samples))) => {
            tracing::debug!("task succeeded");
            report.succeeded = true;
            report.counters = Some(counters);
            report.samples = samples;
        }
        Err(e) => {
            let error = quern_proto::error_chain(&e);
            tracing::warn!(%error, "task failed");
            report.set_failure(e.failure_kind());
            report.failed_map_attempt = e.failed_map_attempt().unwrap_or_default();
            report.error = error;
        }
    }
    send_report(ctx, report).await;
}

/// Reports to the coordinator, retrying lost messages; a report it already has is ignored there.
pub async fn send_report(ctx: &Context, report: TaskReport) {
    let reported = until_answered("report a task result", || {
        let (mut coordinator, report) = (ctx.coordinator(), report.clone());
        async move { coordinator.report_task(report).await }
    })
    .await;
    match reported {
        Ok(response) if !response.accepted => {
            tracing::info!("the coordinator no longer expected this attempt; result dropped")
        }
        Ok(_) => {}
        Err(status) => tracing::error!(
            error = %quern_proto::error_chain(&status),
            "gave up reporting a task result; the coordinator will run it again"
        ),
    }
}

/// Makes a call to the coordinator until it is answered, up to [`REPORT_TRIES`] times: a call
/// lost on the way (a broken connection, a coordinator restarting) is sent again. Only for calls
/// the coordinator treats the same however often they come (reports, commits). An answer, even
/// a refusal, is returned as it is.
pub(crate) async fn until_answered<T, Fut>(
    what: &str,
    mut call: impl FnMut() -> Fut,
) -> Result<T, tonic::Status>
where
    Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    let mut backoff = Backoff::linear(REPORT_RETRY_STEP, REPORT_RETRY_STEP * REPORT_TRIES);
    let mut tries = 1;
    loop {
        match call().await {
            Ok(response) => return Ok(response.into_inner()),
            Err(status) if tries < REPORT_TRIES && unanswered(&status) => {
                tracing::warn!(error = %quern_proto::error_chain(&status), tries, "cannot {what}; retrying");
                tries += 1;
                tokio::time::sleep(backoff.next_delay()).await;
            }
            Err(status) => return Err(status),
        }
    }
}

/// Whether `status` comes from the way to the coordinator (the connection) rather than from the
/// coordinator itself: tonic keeps the transport error as its source, while a status the server
/// sent has none.
fn unanswered(status: &tonic::Status) -> bool {
    std::error::Error::source(status).is_some()
}
