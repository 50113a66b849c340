//! Reduce output commit: a finished part upload is handed to the coordinator, which makes it
//! final itself if this attempt is the first of its partition to ask while still expected, and
//! records the task done with what it counted; otherwise this attempt discards it. See
//! `quern_coordinator::commit` and `quern_storage::commit`.
//!
//! Once asked, the question runs to its answer in a task of its own, so an attempt cancelled
//! meanwhile (its future dropped, see [`crate::task`]: the coordinator stopped expecting it, as it
//! does for a worker it lost and that came back) still discards a refused part at once, rather
//! than leaving it staged, or its upload open, until its job ends. A test failpoint may pause the
//! whole worker just before it asks (see [`crate::failpoint`]).

use crate::context::{Context, CoordinatorCalls};
use crate::error::TaskError;
use quern_proto::{Assignment, CommitRequest, Counters};
use quern_storage::PendingPart;
use tracing::Instrument;

/// Asks the coordinator to commit `part`, the attempt's output, which counted `counters`. Ok:
/// the task is done and reported. Otherwise the part is discarded (if the coordinator committed
/// it after all and only its answer was lost, discarding touches nothing final), even if this
/// future is dropped before the answer comes.
pub async fn commit_part(
    ctx: &Context,
    assignment: &Assignment,
    part: PendingPart,
    counters: Counters,
) -> Result<(), TaskError> {
    let stopped = crate::failpoint::stop_before_commit(assignment).map_err(TaskError::io(
        "test failpoint: cannot stop before the commit",
    ))?;
    let request = CommitRequest {
        job_id: assignment.job_id.clone(),
        attempt_id: assignment.attempt_id,
        worker_id: assignment.worker_id.clone(),
        part_ids: part.part_ids(),
        counters: Some(counters),
    };
    let coordinator = ctx.coordinator();
    let asked = tokio::spawn(
        async move {
            let result = ask_to_commit(coordinator, request, part).await;
            if stopped {
                crate::failpoint::resumed_commit_ended(&result);
            }
            result
        }
        .in_current_span(),
    );
    asked.await.unwrap_or_else(|e| Err(TaskError::from_join(e)))
}

async fn ask_to_commit(
    coordinator: CoordinatorCalls,
    request: CommitRequest,
    part: PendingPart,
) -> Result<(), TaskError> {
    let answer = crate::task::until_answered("ask to commit", || {
        let (mut coordinator, request) = (coordinator.clone(), request.clone());
        async move { coordinator.commit_task(request).await }
    })
    .await;
    match answer {
        Ok(response) if response.committed => Ok(()),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{FakeCoordinator, context, wait_until_gone};
    use quern_sdk::JobRegistry;
    use quern_storage::{OutputDir, StorageUrl};
    use std::sync::Arc;
    use std::time::{Duration, Instant};
    use tokio::sync::Semaphore;

    #[tokio::test]
    async fn an_attempt_cancelled_while_it_asks_still_discards_its_refused_part() {
        let work = tempfile::tempdir().unwrap();
        let gate = Arc::new(Semaphore::new(0));
        let fake = FakeCoordinator {
            refuse_commits: true,
            commit_gate: Some(gate.clone()),
            ..FakeCoordinator::default()
        };
        let commits = fake.commits.clone();
        let ctx = context(&fake.serve().await, work.path(), JobRegistry::new());
        let out = OutputDir::open(&StorageUrl::Local(work.path().join("out"))).unwrap();
        let mut upload = out.create_part(0, 7, None).await.unwrap();
        upload
            .write(bytes::Bytes::from_static(b"word\t1\n"))
            .await
            .unwrap();
        let part = upload.finish().await.unwrap();
        let staged = work.path().join("out/_temporary/attempt-7/part-r-00000");
        assert!(staged.is_file());

        let assignment = Assignment {
            job_id: "job-1-0001".into(),
            attempt_id: 7,
            ..Assignment::default()
        };
        let attempt =
            tokio::spawn(
                async move { commit_part(&ctx, &assignment, part, Counters::default()).await },
            );
        let deadline = Instant::now() + Duration::from_secs(10);
        while commits.lock().unwrap().is_empty() {
            assert!(Instant::now() < deadline, "the commit was never asked");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Cancelled while the coordinator has not answered yet, as `crate::task` cancels.
        attempt.abort();
        assert!(attempt.await.unwrap_err().is_cancelled());
        gate.add_permits(1);
        wait_until_gone(&staged).await;
    }
}
