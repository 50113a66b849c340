//! A task's part file of the job's output: a reduce's, or a map's in a map-only job. The
//! coordinator opens its upload (so it can abort one whose attempt dies), the task's blocking
//! thread writes it in pieces that this task uploads as they come, and then the coordinator is
//! asked to commit it (see [`crate::commit`]); a failed attempt aborts it.

use crate::commit::commit_part;
use crate::context::Context;
use crate::error::TaskError;
use quern_proto::{Assignment, Counters, OpenUploadRequest};
use quern_sdk::{JobEngine, JobError, MapSink, TaskContext};
use quern_storage::{OutputDir, PartUpload};
use tokio::sync::mpsc;

/// Output is handed to the uploader in pieces of about this size.
const OUTPUT_PIECE: usize = 1 << 20;
/// Room a piece has past [`OUTPUT_PIECE`], so that the key group that fills it is not copied
/// to a larger buffer, as a `Vec` grows, unless it is larger than this.
const PIECE_ROOM: usize = OUTPUT_PIECE + (128 << 10);

/// Text output a blocking thread appends, handed to the uploader a piece at a time.
pub struct Pieces {
    sender: mpsc::Sender<Vec<u8>>,
    out: Vec<u8>,
}

impl Pieces {
    /// Where output lines are appended.
    pub fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.out
    }

    /// Sends the buffer on if it holds a whole piece; waits while the uploader is behind.
    pub fn send_full(&mut self) -> Result<(), JobError> {
        if self.out.len() < OUTPUT_PIECE {
            return Ok(());
        }
        let piece = std::mem::replace(&mut self.out, Vec::with_capacity(PIECE_ROOM));
        self.send(piece)
    }

    fn send(&self, piece: Vec<u8>) -> Result<(), JobError> {
        // The uploader is gone only when the attempt is.
        self.sender
            .blocking_send(piece)
            .map_err(|_| crate::attempt::cancelled())
    }

    fn finish(mut self) -> Result<(), JobError> {
        if self.out.is_empty() {
            return Ok(());
        }
        let last = std::mem::take(&mut self.out);
        self.send(last)
    }
}

/// Writes the part file of `assignment` from what `produce` writes on a blocking thread, and
/// asks the coordinator to commit it with the counters `produce` returns (plus the bytes
/// written). On any error the upload is aborted.
pub async fn write_part<F>(
    ctx: &Context,
    assignment: &Assignment,
    produce: F,
) -> Result<(), TaskError>
where
    F: FnOnce(&mut Pieces) -> Result<Counters, TaskError> + Send + 'static,
{
    let mut upload = open_part(ctx, assignment).await?;
    let counters = match upload_from(&mut upload, produce).await {
        Ok(counters) => counters,
        Err(e) => {
            if let Err(abort) = upload.abort().await {
                tracing::warn!(error = %quern_proto::error_chain(&abort), "cannot abort a part upload");
            }
            return Err(e);
        }
    };
    let counters = Counters {
        output_bytes: upload.bytes(),
        ..counters
    };
    commit_part(ctx, assignment, upload.finish().await?, counters).await
}

/// Starts the upload of this attempt's part file.
async fn open_part(ctx: &Context, assignment: &Assignment) -> Result<PartUpload, TaskError> {
    let output = OutputDir::of_job(&assignment.output, assignment.reducers)?;
    let upload_id = open_upload(ctx, assignment).await?;
    Ok(output
        .create_part(assignment.task, assignment.attempt_id, upload_id)
        .await?)
}

/// Has the coordinator open this attempt's upload, where uploads stay open until commit (S3), so
/// that the coordinator knows it and can abort it if this attempt never commits.
async fn open_upload(ctx: &Context, assignment: &Assignment) -> Result<Option<String>, TaskError> {
    let request = OpenUploadRequest {
        job_id: assignment.job_id.clone(),
        attempt_id: assignment.attempt_id,
        worker_id: assignment.worker_id.clone(),
    };
    let response = ctx
        .coordinator()
        .open_upload(request)
        .await
        .map_err(TaskError::Coordinator)?;
    let id = response.into_inner().upload_id;
    Ok((!id.is_empty()).then_some(id))
}

/// Runs `produce` on a blocking thread and uploads the pieces it sends while it runs.
async fn upload_from<F>(upload: &mut PartUpload, produce: F) -> Result<Counters, TaskError>
where
    F: FnOnce(&mut Pieces) -> Result<Counters, TaskError> + Send + 'static,
{
    let (sender, mut receiver) = mpsc::channel::<Vec<u8>>(2);
    let producer = tokio::task::spawn_blocking(move || {
        let mut pieces = Pieces {
            sender,
            out: Vec::with_capacity(PIECE_ROOM),
        };
        let counters = produce(&mut pieces)?;
        pieces.finish()?;
        Ok(counters)
    });
    while let Some(piece) = receiver.recv().await {
        upload.write(piece.into()).await?;
    }
    producer.await.map_err(TaskError::from_join)?
}

/// The sink of a map-only map: each pair becomes an output line of the part file.
pub struct TextRecords<'a> {
    pub job: &'a dyn JobEngine,
    pub ctx: &'a TaskContext,
    pub pieces: &'a mut Pieces,
    pub records: u64,
}

impl MapSink for TextRecords<'_> {
    fn emit(&mut self, key: &[u8], value: &[u8]) -> Result<(), JobError> {
        self.job
            .write_map_record(self.ctx, key, value, self.pieces.buffer())?;
        self.records += 1;
        self.pieces.send_full()
    }
}
