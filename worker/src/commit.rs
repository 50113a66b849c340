//! Reduce output commit: a finished part upload is handed to the coordinator, which makes it
//! final itself if this attempt is the first of its partition to ask while still expected, and
//! records the task done with what it counted; otherwise this attempt discards it. See
//! `quern_coordinator::commit` and `quern_storage::commit`.

use crate::context::Context;
use crate::error::TaskError;
use quern_proto::{Assignment, CommitRequest, Counters};
use quern_storage::PendingPart;

/// Asks the coordinator to commit `part`, the attempt's output, which counted `counters`. Ok:
/// the task is done and reported. Otherwise the part is discarded (if the coordinator committed
/// it after all and only its answer was lost, discarding touches nothing final).
pub async fn commit_part(
    ctx: &Context,
    assignment: &Assignment,
    part: PendingPart,
    counters: Counters,
) -> Result<(), TaskError> {
    let request = CommitRequest {
        job_id: assignment.job_id.clone(),
        attempt_id: assignment.attempt_id,
        worker_id: assignment.worker_id.clone(),
        part_ids: part.part_ids(),
        counters: Some(counters),
    };
    let committed = ctx.coordinator().commit_task(request).await;
    match committed {
        Ok(response) if response.get_ref().committed => Ok(()),
        Ok(_) => {
            discard(part).await;
            Err(TaskError::CommitDenied)
        }
        Err(status) => {
            discard(part).await;
            Err(TaskError::Coordinator(status))
        }
    }
}

async fn discard(part: PendingPart) {
    if let Err(e) = part.abort().await {
        tracing::warn!(error = %quern_proto::error_chain(&e), "cannot discard an uncommitted part");
    }
}
