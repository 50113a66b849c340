//! A map task: stream the split's bytes from storage (async, with read-ahead), and on a blocking
//! thread cut them into records (lines, or as the job's input format says, decompressed if need
//! be: see [`crate::input_format`]), run the mapper, and partition, sort, combine and spill its
//! output into a map output file that the shuffle service then serves. A cancelled or failed
//! attempt stops its reader and mapper and leaves no directory behind (see [`crate::attempt`]).

use crate::attempt::{AttemptDir, CancellableRecords, Progress, cancelled};
use crate::codec::Codec;
use crate::context::Context;
use crate::decompress::Chunks;
use crate::error::TaskError;
use crate::map_input::{MapRecords, ObjectChunks, map_splits};
use crate::map_output::MapOutputWriter;
use crate::part_file::{TextRecords, write_part};
use crate::split_reader::{read_start, split_source};
use bytes::Bytes;
use quern_proto::{Assignment, Counters, MapSplit};
use quern_sdk::{InputCursor, InputFormat, JobError, MapInput, TaskContext};
use quern_storage::{InputSource, READ_BUFFER_BYTES, StorageError};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

/// Bytes per ranged read of the split: a buffer storage keeps for the next read.
const READ_CHUNK: u64 = READ_BUFFER_BYTES as u64;
/// Bytes per ranged read past the split's end, where only the rest of one line is wanted.
const TAIL_CHUNK: u64 = 4 << 10;
/// Chunks read ahead of the mapper.
const READ_AHEAD: usize = 2;

pub async fn run_map(
    ctx: &Context,
    assignment: &Assignment,
    progress: Arc<Progress>,
) -> Result<Counters, TaskError> {
    let (job, task_ctx) = ctx.job(assignment)?;
    let input = SplitInput::start(assignment, &task_ctx, job.input_format())?;
    let dir = ctx.work_dir.join(&assignment.job_id).join(format!(
        "map-{:05}-{}",
        assignment.task, assignment.attempt_id
    ));
    let dir = AttemptDir::create(dir.clone())
        .map_err(TaskError::io(format!("cannot create {}", dir.display())))?;
    // Dropping this future (a cancel) stops the reader and, within a few lines, the mapper.
    let cancel = CancellationToken::new();
    let _cancel_on_drop = cancel.clone().drop_guard();
    let buffer = assignment.sort_buffer_bytes as usize;
    let codec = Codec::of(assignment.shuffle_compression);
    // The blocking thread holds the directory too, so that a cancelled attempt's directory goes
    // only once its mapper stopped writing there.
    let blocking_dir = dir.clone();
    let task = assignment.task;
    let mapped = tokio::task::spawn_blocking(move || {
        let mut records = input.records(cancel.clone(), progress)?;
        let mut writer = MapOutputWriter::new(
            job.clone(),
            task_ctx.clone(),
            buffer,
            blocking_dir.path().into(),
            codec,
        );
        let emitted = job.map(&task_ctx, &mut records, &mut writer)?;
        // A cancelled reader ends the chunks early, which looks like the end of the input.
        if cancel.is_cancelled() {
            return Err(cancelled());
        }
        let output = writer.finish()?;
        crate::failpoint::after_map_output(task, &output.run)?;
        let counters = Counters {
            map_output_records: emitted,
            combine_output_records: output.records,
            spills: output.spills,
            ..input_counters(&records, &task_ctx)?
        };
        Ok::<_, JobError>((output.run, counters))
    })
    .await;
    let (run, counters) = mapped.map_err(TaskError::from_join)??;
    dir.keep();
    ctx.outputs.insert(
        &assignment.job_id,
        assignment.attempt_id,
        run,
        &assignment.job_secret,
    );
    Ok(counters)
}

/// A map of a map-only job (`--reducers 0`): its pairs go straight to its own part file,
/// `part-m-NNNNN`, as text lines, in the order the mapper emits them, and the coordinator commits
/// it as it does a reduce's (the commit is the success report). Nothing is sorted or kept.
pub async fn run_map_only(
    ctx: &Context,
    assignment: &Assignment,
    progress: Arc<Progress>,
) -> Result<(), TaskError> {
    let (job, task_ctx) = ctx.job(assignment)?;
    let input = SplitInput::start(assignment, &task_ctx, job.input_format())?;
    let cancel = CancellationToken::new();
    let _cancel_on_drop = cancel.clone().drop_guard();
    write_part(ctx, assignment, move |pieces| {
        let mut records = input.records(cancel.clone(), progress)?;
        let mut sink = TextRecords {
            job: job.as_ref(),
            ctx: &task_ctx,
            pieces,
            records: 0,
        };
        let emitted = job.map(&task_ctx, &mut records, &mut sink)?;
        if cancel.is_cancelled() {
            return Err(TaskError::Cancelled);
        }
        Ok(Counters {
            map_output_records: emitted,
            output_records: sink.records,
            ..input_counters(&records, &task_ctx)?
        })
    })
    .await
}

/// What a map read, and its job code's own counters.
fn input_counters(
    records: &CancellableRecords<MapRecords>,
    task: &TaskContext,
) -> Result<Counters, JobError> {
    Ok(Counters {
        input_records: records.inner.records_read(),
        input_bytes: records.inner.bytes_read(),
        user: task.counters.totals()?,
        ..Counters::default()
    })
}

/// A map's split, for the mapper's blocking thread to take as records: its objects read ahead
/// in turn by a task of its own (which stops when this is dropped) in ranged reads, or, for a
/// packed split of local files, each read on the mapper's thread as it comes to it.
pub(crate) struct SplitInput {
    splits: Vec<MapSplit>,
    format: InputFormat,
    max_line: u64,
    /// Moves the task context to the object being read.
    cursor: Option<InputCursor>,
    reader: Reader,
}

/// Where a map's objects' bytes come from.
enum Reader {
    /// A task reading ahead: a channel of each object's chunks, in order.
    Ahead {
        objects: mpsc::Receiver<mpsc::Receiver<Result<Bytes, JobError>>>,
        task: AbortOnDropHandle<()>,
    },
    /// The small local files of a packed split, each read whole on the mapper's thread: thread
    /// hand-offs per file, to read ahead a few hundred bytes, cost more than the reads (a
    /// profile of 10,000 files of 330 bytes was mostly wake-ups).
    Local(Vec<(InputSource, MapSplit)>),
}

impl SplitInput {
    /// Starts reading the split of `assignment`, for the map task `task`.
    pub(crate) fn start(
        assignment: &Assignment,
        task: &TaskContext,
        format: InputFormat,
    ) -> Result<Self, TaskError> {
        let splits: Vec<MapSplit> = map_splits(assignment).cloned().collect();
        if splits.is_empty() {
            return Err(TaskError::MissingField("split"));
        }
        let sources = splits
            .iter()
            .map(|split| Ok((split_source(split)?, split.clone())))
            .collect::<Result<Vec<_>, StorageError>>()?;
        let reader = if sources.len() > 1 && sources.iter().all(|(s, _)| s.is_local()) {
            Reader::Local(sources)
        } else {
            let (sender, objects) = mpsc::channel(READ_AHEAD);
            let task = AbortOnDropHandle::new(tokio::spawn(read_objects(sources, sender)));
            Reader::Ahead { objects, task }
        };
        let max_line = match assignment.max_line_bytes {
            0 => u64::MAX,
            limit => limit,
        };
        Ok(SplitInput {
            splits,
            format,
            max_line,
            cursor: task.input.as_ref().map(MapInput::cursor),
            reader,
        })
    }

    /// The split's records, on a blocking thread: they stop at `cancel`, and count into
    /// `progress`.
    pub(crate) fn records(
        self,
        cancel: CancellationToken,
        progress: Arc<Progress>,
    ) -> Result<CancellableRecords<MapRecords>, JobError> {
        let SplitInput {
            splits,
            format,
            max_line,
            cursor,
            reader,
        } = self;
        let objects = match reader {
            Reader::Ahead { objects, task } => ahead_chunks(objects, task),
            Reader::Local(sources) => {
                let mut sources = sources.into_iter();
                Box::new(move || {
                    let (source, split) = sources.next()?;
                    Some(local_chunks(source, split))
                })
            }
        };
        let records = MapRecords::open(splits, &format, max_line, objects, cursor)?;
        Ok(CancellableRecords::new(records, cancel, progress))
    }
}

/// Each object's chunks as the reading task sends them, on the mapper's thread. The task lives
/// as long as anything still reads from it: the opener of the next object, or the chunks of the
/// one being read.
fn ahead_chunks(
    mut objects: mpsc::Receiver<mpsc::Receiver<Result<Bytes, JobError>>>,
    task: AbortOnDropHandle<()>,
) -> ObjectChunks {
    let task = Arc::new(task);
    Box::new(move || {
        let mut chunks = objects.blocking_recv()?;
        let task = task.clone();
        let chunks: Chunks = Box::new(std::iter::from_fn(move || {
            let _ = &task;
            chunks.blocking_recv()
        }));
        Some(chunks)
    })
}

/// The chunks of a packed local object, read whole from the split's read start (0), each read,
/// and checked against the object as listed, on the calling thread as it is taken.
fn local_chunks(source: InputSource, split: MapSplit) -> Chunks {
    let mut pos = read_start(split.start);
    Box::new(std::iter::from_fn(move || {
        if pos >= split.object_size {
            return None;
        }
        let end = (pos + READ_CHUNK).min(split.object_size);
        let chunk = source.read_local_range(pos..end)?;
        // After an error, nothing more.
        pos = if chunk.is_ok() {
            end
        } else {
            split.object_size
        };
        Some(chunk.map_err(|e| JobError::Input(Box::new(e))))
    }))
}

/// Reads each object in turn, first handing the mapper the channel its chunks will come on.
/// Stops when the mapper drops the records.
async fn read_objects(
    objects: Vec<(InputSource, MapSplit)>,
    sender: mpsc::Sender<mpsc::Receiver<Result<Bytes, JobError>>>,
) {
    for (source, split) in objects {
        let (chunks, receiver) = mpsc::channel(READ_AHEAD);
        if sender.send(receiver).await.is_err() {
            return;
        }
        read_chunks(source, split, chunks).await;
    }
}

/// Sends the object's bytes from the split's read start to its end, in ranged reads, each checked
/// against the object as listed. Stops when the mapper has seen its last line and drops the
/// receiver.
async fn read_chunks(
    source: InputSource,
    split: MapSplit,
    sender: mpsc::Sender<Result<Bytes, JobError>>,
) {
    let mut pos = read_start(split.start);
    while pos < split.object_size {
        let end = if pos < split.end {
            (pos + READ_CHUNK).min(split.end)
        } else {
            (pos + TAIL_CHUNK).min(split.object_size)
        };
        let chunk = source
            .read_range(pos..end)
            .await
            .map_err(|e| JobError::Input(Box::new(e)));
        let failed = chunk.is_err();
        if sender.send(chunk).await.is_err() || failed {
            return;
        }
        pos = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{TestJob, black_hole, context, wait_until_gone};
    use quern_proto::TaskKind;
    use std::path::Path;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    /// Map task 0, attempt 1 of job-1-0001 over the whole of `input`.
    fn assignment(input: &Path) -> Assignment {
        let size = std::fs::metadata(input).unwrap().len();
        Assignment {
            job_id: "job-1-0001".into(),
            job_name: TestJob::NAME.into(),
            kind: TaskKind::Map as i32,
            task: 0,
            attempt_id: 1,
            reducers: 2,
            sort_buffer_bytes: 1 << 20,
            split: Some(MapSplit {
                url: input.display().to_string(),
                start: 0,
                end: size,
                object_size: size,
                ..MapSplit::default()
            }),
            ..Assignment::default()
        }
    }

    fn input(dir: &Path, lines: usize) -> std::path::PathBuf {
        let path = dir.join("input.txt");
        std::fs::write(&path, "to be or not to be\n".repeat(lines)).unwrap();
        path
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_cancelled_map_stops_its_mapper_and_leaves_no_directory() {
        let work = tempfile::tempdir().unwrap();
        // 1 ms a line: about 100 s if nothing stops it.
        let job = TestJob {
            delay: Duration::from_millis(1),
            ..TestJob::default()
        };
        let ctx = Arc::new(context(
            &black_hole(),
            &work.path().join("work"),
            job.registry(),
        ));
        let assignment = assignment(&input(work.path(), 100_000));
        let task = tokio::spawn({
            let ctx = ctx.clone();
            async move { run_map(&ctx, &assignment, Arc::default()).await }
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while job.calls() < 20 {
            assert!(Instant::now() < deadline, "the mapper did not start");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());
        // The mapper's thread holds the directory: its going means the thread ended.
        wait_until_gone(&work.path().join("work/job-1-0001/map-00000-1")).await;
        let calls = job.calls();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(job.calls(), calls, "the mapper still runs");
        assert!(calls < 10_000, "{calls} lines mapped");
        assert!(ctx.outputs.jobs().is_empty());
    }

    #[tokio::test]
    async fn a_failed_map_leaves_no_directory() {
        let work = tempfile::tempdir().unwrap();
        let job = TestJob {
            fail_map: true,
            ..TestJob::default()
        };
        let ctx = context(&black_hole(), &work.path().join("work"), job.registry());
        let error = run_map(&ctx, &assignment(&input(work.path(), 10)), Arc::default())
            .await
            .expect_err("the mapper fails");
        assert!(error.to_string().contains("always fails"), "{error}");
        wait_until_gone(&work.path().join("work/job-1-0001/map-00000-1")).await;
    }

    #[tokio::test]
    async fn a_panic_in_job_code_fails_the_attempt_not_the_worker() {
        let work = tempfile::tempdir().unwrap();
        let job = TestJob {
            panic_map: true,
            ..TestJob::default()
        };
        let ctx = context(&black_hole(), &work.path().join("work"), job.registry());
        let error = run_map(&ctx, &assignment(&input(work.path(), 10)), Arc::default())
            .await
            .expect_err("the mapper panics");
        assert_eq!(
            error.to_string(),
            "job code panicked: this mapper always panics"
        );
        wait_until_gone(&work.path().join("work/job-1-0001/map-00000-1")).await;
        // The process goes on: the next attempt runs in it.
        let healthy = context(
            &black_hole(),
            &work.path().join("work"),
            TestJob::default().registry(),
        );
        let counters = run_map(
            &healthy,
            &assignment(&input(work.path(), 10)),
            Arc::default(),
        )
        .await
        .unwrap();
        assert_eq!(counters.input_records, 10);
    }

    #[tokio::test]
    async fn a_successful_map_keeps_its_output() {
        let work = tempfile::tempdir().unwrap();
        let job = TestJob::default();
        let ctx = context(&black_hole(), &work.path().join("work"), job.registry());
        let counters = run_map(&ctx, &assignment(&input(work.path(), 10)), Arc::default())
            .await
            .unwrap();
        assert_eq!(counters.input_records, 10);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            work.path()
                .join("work/job-1-0001/map-00000-1/output")
                .is_file()
        );
        assert_eq!(ctx.outputs.jobs(), ["job-1-0001"]);
    }
}
