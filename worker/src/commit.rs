//! Reduce output commit: a finished part upload becomes final only if the coordinator says this
//! attempt is the one it is waiting for; otherwise it is discarded. See `quern_storage::commit`.

use crate::context::Context;
use crate::error::TaskError;
use quern_proto::{Assignment, CommitRequest};
use quern_storage::PendingPart;

pub async fn commit_part(
    ctx: &Context,
    assignment: &Assignment,
    part: PendingPart,
) -> Result<(), TaskError> {
    let request = CommitRequest {
        job_id: assignment.job_id.clone(),
        attempt_id: assignment.attempt_id,
        worker_id: assignment.worker_id.clone(),
    };
    let granted = match ctx.coordinator().commit_permission(request).await {
        Ok(response) => response.into_inner().granted,
        Err(status) => {
            discard(part).await;
            return Err(TaskError::Coordinator(status));
        }
    };
    if !granted {
        discard(part).await;
        return Err(TaskError::CommitDenied);
    }
    part.commit().await?;
    Ok(())
}

async fn discard(part: PendingPart) {
    if let Err(e) = part.abort().await {
        tracing::warn!(error = %quern_proto::error_chain(&e), "cannot discard an uncommitted part");
    }
}
