//! A reduce task: learn where the map outputs are, fetch this partition of each, k-way merge them
//! by key on a blocking thread, run the reducer over each key group, and stream the text output
//! into this attempt's part upload, which [`crate::commit`] makes final or discards.

use crate::commit::commit_part;
use crate::context::Context;
use crate::error::TaskError;
use crate::merge::{Groups, Merge};
use crate::shuffle_fetch::{Fetched, fetch_all};
use quern_proto::{
    Assignment, Counters, MapOutputLocation, MapOutputLocationsRequest, UploadRecord,
};
use quern_sdk::JobEngine;
use quern_storage::{OutputDir, PartUpload, StorageUrl};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Output is handed to the uploader in pieces of about this size.
const OUTPUT_PIECE: usize = 1 << 20;
/// How long a reduce waits for map outputs that are being recomputed.
const LOCATIONS_WAIT: Duration = Duration::from_secs(60);

pub async fn run_reduce(ctx: &Context, assignment: &Assignment) -> Result<Counters, TaskError> {
    let job = ctx.job(&assignment.job_name)?;
    let partition = assignment.task;
    let locations = map_output_locations(ctx, assignment).await?;
    let dir = ctx
        .work_dir
        .join(&assignment.job_id)
        .join(format!("reduce-{partition:05}-{}", assignment.attempt_id));
    std::fs::create_dir_all(&dir)
        .map_err(TaskError::io(format!("cannot create {}", dir.display())))?;
    let (segments, shuffle_bytes) =
        fetch_all(ctx, &assignment.job_id, partition, locations, &dir).await?;

    let output = OutputDir::open(&StorageUrl::parse(&assignment.output)?)?;
    let mut upload = output.create_part(partition, assignment.attempt_id).await?;
    let upload_id = upload.upload_id().map(str::to_string);
    let written = match record_upload(ctx, assignment, upload_id).await {
        Ok(()) => reduce_into(job, segments, &mut upload).await,
        Err(e) => Err(e),
    };
    let (groups, records) = match written {
        Ok(done) => done,
        Err(e) => {
            if let Err(abort) = upload.abort().await {
                tracing::warn!(error = %quern_proto::error_chain(&abort), "cannot abort a part upload");
            }
            return Err(e);
        }
    };
    let output_bytes = upload.bytes();
    commit_part(ctx, assignment, upload.finish().await?).await?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Counters {
        shuffle_bytes,
        reduce_input_groups: groups,
        output_records: records,
        output_bytes,
        ..Counters::default()
    })
}

/// Asks the coordinator where the map outputs are, waiting while some are being recomputed.
async fn map_output_locations(
    ctx: &Context,
    assignment: &Assignment,
) -> Result<Vec<MapOutputLocation>, TaskError> {
    let request = MapOutputLocationsRequest {
        job_id: assignment.job_id.clone(),
        partition: assignment.task,
        attempt_id: assignment.attempt_id,
    };
    let started = Instant::now();
    loop {
        match ctx
            .coordinator()
            .map_output_locations(request.clone())
            .await
        {
            Ok(response) => return Ok(response.into_inner().outputs),
            Err(status)
                if status.code() == tonic::Code::Unavailable
                    && started.elapsed() < LOCATIONS_WAIT =>
            {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(status) => return Err(TaskError::Coordinator(status)),
        }
    }
}

/// Tells the coordinator about an upload held open until commit (S3), so that it can abort the
/// upload if this attempt never commits.
async fn record_upload(
    ctx: &Context,
    assignment: &Assignment,
    upload_id: Option<String>,
) -> Result<(), TaskError> {
    let Some(upload_id) = upload_id else {
        return Ok(());
    };
    let record = UploadRecord {
        job_id: assignment.job_id.clone(),
        attempt_id: assignment.attempt_id,
        partition: assignment.task,
        upload_id,
    };
    ctx.coordinator()
        .record_upload(record)
        .await
        .map_err(TaskError::Coordinator)?;
    Ok(())
}

/// Merges and reduces on a blocking thread while this task uploads what it produces.
async fn reduce_into(
    job: Arc<dyn JobEngine>,
    segments: Vec<Fetched>,
    upload: &mut PartUpload,
) -> Result<(u64, u64), TaskError> {
    let (sender, mut receiver) = mpsc::channel::<Vec<u8>>(2);
    let reducer = tokio::task::spawn_blocking(move || -> Result<(u64, u64), TaskError> {
        let sources = segments
            .into_iter()
            .map(Fetched::open)
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(TaskError::io("cannot open a fetched segment"))?;
        let merge = Merge::new(sources).map_err(TaskError::io("cannot read a fetched segment"))?;
        let mut groups = Groups::new(merge);
        let (mut key, mut out) = (Vec::new(), Vec::with_capacity(OUTPUT_PIECE));
        let (mut group_count, mut records) = (0, 0);
        while groups.next_group(&mut key)? {
            group_count += 1;
            records += job.reduce(&key, &mut groups, &mut out)?;
            if out.len() >= OUTPUT_PIECE {
                let piece = std::mem::replace(&mut out, Vec::with_capacity(OUTPUT_PIECE));
                sender
                    .blocking_send(piece)
                    .map_err(|_| TaskError::Cancelled)?;
            }
        }
        if !out.is_empty() {
            sender
                .blocking_send(out)
                .map_err(|_| TaskError::Cancelled)?;
        }
        Ok((group_count, records))
    });
    while let Some(piece) = receiver.recv().await {
        upload.write(&piece).await?;
    }
    reducer.await.map_err(TaskError::from_join)?
}
