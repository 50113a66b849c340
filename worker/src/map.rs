//! A map task: stream the split's bytes from storage (async, with read-ahead), and on a blocking
//! thread split them into lines, run the mapper, and partition, sort, combine and spill its
//! output into a map output file that the shuffle service then serves.

use crate::context::Context;
use crate::error::TaskError;
use crate::map_output::MapOutputWriter;
use crate::split_reader::{SplitLines, read_start};
use bytes::Bytes;
use object_store::ObjectStoreExt;
use quern_proto::{Assignment, Counters, MapSplit};
use quern_sdk::JobError;
use quern_storage::{Location, StorageUrl};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Bytes per ranged read of the split.
const READ_CHUNK: u64 = 4 << 20;
/// Bytes per ranged read past the split's end, where only the rest of one line is wanted.
const TAIL_CHUNK: u64 = 4 << 10;
/// Chunks read ahead of the mapper.
const READ_AHEAD: usize = 2;

pub async fn run_map(ctx: &Context, assignment: &Assignment) -> Result<Counters, TaskError> {
    let split = assignment
        .split
        .clone()
        .ok_or(TaskError::MissingField("split"))?;
    let job = ctx.job(&assignment.job_name)?;
    let location = StorageUrl::parse(&split.url)?.locate()?;
    let dir = ctx.work_dir.join(&assignment.job_id).join(format!(
        "map-{:05}-{}",
        assignment.task, assignment.attempt_id
    ));
    std::fs::create_dir_all(&dir)
        .map_err(TaskError::io(format!("cannot create {}", dir.display())))?;

    let (sender, mut receiver) = mpsc::channel(READ_AHEAD);
    let reader = tokio::spawn(read_chunks(location, split.clone(), sender));
    let (partitions, buffer) = (assignment.reducers, assignment.sort_buffer_bytes as usize);
    let max_line = match assignment.max_line_bytes {
        0 => u64::MAX,
        limit => limit,
    };
    let mapped = tokio::task::spawn_blocking(move || {
        let chunks = std::iter::from_fn(move || receiver.blocking_recv());
        let mut lines =
            SplitLines::new(chunks, split.start, split.end).with_line_limit(max_line, &split.url);
        let mut writer = MapOutputWriter::new(job.clone(), partitions, buffer, dir);
        job.map(&mut lines, &mut writer)?;
        let output = writer.finish()?;
        Ok::<_, JobError>((output, lines.lines_read(), lines.bytes_read()))
    })
    .await;
    reader.abort();
    let (output, lines, bytes) = mapped.map_err(TaskError::from_join)??;
    let counters = Counters {
        input_records: lines,
        input_bytes: bytes,
        map_output_records: output.emitted,
        combine_output_records: output.records,
        spills: output.spills,
        ..Counters::default()
    };
    ctx.outputs
        .insert(&assignment.job_id, assignment.attempt_id, output.run);
    Ok(counters)
}

/// Sends the object's bytes from the split's read start to its end, in ranged reads. Stops when
/// the mapper has seen its last line and drops the receiver.
async fn read_chunks(
    location: Location,
    split: MapSplit,
    sender: mpsc::Sender<Result<Bytes, JobError>>,
) {
    let location = Arc::new(location);
    let mut pos = read_start(split.start);
    while pos < split.object_size {
        let end = if pos < split.end {
            (pos + READ_CHUNK).min(split.end)
        } else {
            (pos + TAIL_CHUNK).min(split.object_size)
        };
        let chunk = location
            .store
            .get_range(&location.path, pos..end)
            .await
            .map_err(|e| JobError::Input(Box::new(location.error(&location.url)(e))));
        let failed = chunk.is_err();
        if sender.send(chunk).await.is_err() || failed {
            return;
        }
        pos = end;
    }
}
