//! A reduce task: learn where the map outputs are, fetch this partition of each, k-way merge them
//! by key on a blocking thread, run the reducer over each group (keys with the job's grouping
//! prefix in common: the whole key, unless the job sorts secondarily), and stream the text output
//! into this attempt's part file (see [`crate::part_file`]), which the coordinator commits (a
//! commit is the reduce's success report) or which is discarded. The attempt's directory
//! (segments spilled by the fetch) goes when it ends, however it ends.

use crate::attempt::{AttemptDir, Progress};
use crate::codec::Codec;
use crate::context::Context;
use crate::error::TaskError;
use crate::merge::{Grouping, Groups, Merge};
use crate::merge_passes::{MERGE_FACTOR, narrow};
use crate::part_file::{Pieces, write_part};
use crate::shuffle_fetch::{Fetched, fetch_partition};
use quern_proto::{Assignment, Counters};
use quern_sdk::{JobEngine, TaskContext};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

pub async fn run_reduce(
    ctx: &Context,
    assignment: &Assignment,
    progress: Arc<Progress>,
) -> Result<(), TaskError> {
    let (job, task_ctx) = ctx.job(assignment)?;
    let partition = assignment.task;
    let dir = ctx
        .work_dir
        .join(&assignment.job_id)
        .join(format!("reduce-{partition:05}-{}", assignment.attempt_id));
    // Removed when the attempt ends, whichever way.
    let dir = AttemptDir::create(dir.clone())
        .map_err(TaskError::io(format!("cannot create {}", dir.display())))?;
    // Dropping this future (a cancel) stops the reducer's thread too.
    let cancel = CancellationToken::new();
    let _cancel_on_drop = cancel.clone().drop_guard();
    let (segments, shuffle_bytes) = fetch_partition(ctx, assignment, dir.path(), &progress).await?;

    let job = (job, task_ctx);
    let segments = (segments, Codec::of(assignment.shuffle_compression));
    write_part(ctx, assignment, move |pieces| {
        let reduced = reduce_segments(job, segments, pieces, cancel, dir, progress)?;
        Ok(Counters {
            shuffle_bytes,
            ..reduced
        })
    })
    .await
}

/// Merges the fetched `segments` (compressed as the codec with them says) and reduces them with
/// `job` (its code, and the task's context for it), on the blocking thread of [`write_part`],
/// into `pieces`. Stops at the next key group (or merge pass) once `cancel` is raised,
/// and holds `dir` (where fetched segments lie) until it ends. Returns what it counted: key
/// groups, output records and the job code's own counters.
fn reduce_segments(
    job: (Arc<dyn JobEngine>, TaskContext),
    segments: (Vec<Fetched>, Codec),
    pieces: &mut Pieces,
    cancel: CancellationToken,
    dir: Arc<AttemptDir>,
    progress: Arc<Progress>,
) -> Result<Counters, TaskError> {
    let (job, task_ctx) = job;
    let (segments, codec) = segments;
    let segments = narrow(segments, (codec, dir.path()), MERGE_FACTOR, &cancel)?;
    let sources = segments
        .into_iter()
        .map(|segment| segment.open(codec))
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(TaskError::io("cannot open a fetched segment"))?;
    let merge = Merge::new(sources).map_err(TaskError::io("cannot read a fetched segment"))?;
    let mut groups = Groups::new(merge, Grouping::Job(job.clone()));
    let mut key = Vec::new();
    let (mut group_count, mut records) = (0, 0);
    job.start_reduce(&task_ctx)?;
    while groups.next_group(&mut key)? {
        if cancel.is_cancelled() {
            return Err(TaskError::Cancelled);
        }
        group_count += 1;
        let out = pieces.buffer();
        let before = out.len();
        records += job.reduce(&task_ctx, &key, &mut groups, out)?;
        progress.add(1, (out.len() - before) as u64);
        pieces.send_full()?;
    }
    records += job.finish_reduce(&task_ctx, pieces.buffer())?;
    Ok(Counters {
        reduce_input_groups: group_count,
        output_records: records,
        user: task_ctx.counters.totals()?,
        ..Counters::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::map_output::MapOutputWriter;
    use crate::shuffle_server::{MapOutputs, ShuffleService};
    use crate::testing::{FakeCoordinator, TestJob, context, serve, wait_until_gone};
    use quern_proto::MapOutputLocation;
    use quern_proto::TaskKind;
    use quern_proto::shuffle_server::ShuffleServer;
    use quern_sdk::engine::RecordSource;
    use quern_sdk::{JobError, engine::MapSink};
    use std::path::Path;
    use std::time::{Duration, Instant};

    /// A peer serving one map output (attempt 1) of `words` distinct words; its location.
    async fn peer_with_words(dir: &Path, words: usize) -> MapOutputLocation {
        struct Words(std::ops::Range<usize>, String);
        impl RecordSource for Words {
            fn next_record(&mut self) -> Result<Option<(u64, &[u8])>, JobError> {
                Ok(self.0.next().map(|i| {
                    self.1 = format!("word{i}");
                    (0, self.1.as_bytes())
                }))
            }
        }
        let job: Arc<dyn JobEngine> = Arc::new(quern_examples::wordcount::job());
        let ctx = TaskContext {
            partitions: 1,
            ..TaskContext::default()
        };
        let mut writer = MapOutputWriter::new(
            job.clone(),
            ctx.clone(),
            1 << 20,
            dir.to_path_buf(),
            Codec::None,
        );
        job.map(
            &ctx,
            &mut Words(0..words, String::new()),
            &mut writer as &mut dyn MapSink,
        )
        .unwrap();
        let outputs = MapOutputs::default();
        outputs.insert("job-1-0001", 1, writer.finish().unwrap().run, JOB_SECRET);
        let address = serve(
            tonic::transport::Server::builder()
                .add_service(ShuffleServer::new(ShuffleService { outputs })),
        )
        .await;
        MapOutputLocation {
            map_task: 0,
            attempt_id: 1,
            address,
            worker_id: "worker-1".into(),
        }
    }

    const JOB_SECRET: &str = "the-secret-of-job-1-0001";

    /// Reduce partition 0, attempt 2 of job-1-0001, writing to `output`.
    fn assignment(output: &Path) -> Assignment {
        Assignment {
            job_id: "job-1-0001".into(),
            job_secret: JOB_SECRET.into(),
            job_name: TestJob::NAME.into(),
            kind: TaskKind::Reduce as i32,
            task: 0,
            attempt_id: 2,
            reducers: 1,
            output: output.display().to_string(),
            ..Assignment::default()
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_cancelled_reduce_stops_its_reducer_and_leaves_no_directory() {
        let work = tempfile::tempdir().unwrap();
        std::fs::create_dir(work.path().join("map")).unwrap();
        let location = peer_with_words(&work.path().join("map"), 20_000).await;
        let coordinator = FakeCoordinator::new(vec![location]).serve().await;
        // 1 ms a key group: about 20 s if nothing stops it.
        let job = TestJob {
            delay: Duration::from_millis(1),
            ..TestJob::default()
        };
        let ctx = Arc::new(context(
            &coordinator,
            &work.path().join("work"),
            job.registry(),
        ));
        let assignment = assignment(&work.path().join("out"));
        let task = tokio::spawn({
            let ctx = ctx.clone();
            async move { run_reduce(&ctx, &assignment, Arc::default()).await }
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while job.calls() < 20 {
            assert!(Instant::now() < deadline, "the reducer did not start");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());
        // The reducer's thread holds the directory: its going means the thread ended.
        wait_until_gone(&work.path().join("work/job-1-0001/reduce-00000-2")).await;
        let calls = job.calls();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(job.calls(), calls, "the reducer still runs");
        assert!(calls < 10_000, "{calls} groups reduced");
    }

    #[tokio::test]
    async fn a_failed_reduce_leaves_no_directory() {
        let work = tempfile::tempdir().unwrap();
        let nobody = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dead = format!("http://{}", nobody.local_addr().unwrap());
        drop(nobody);
        let coordinator = FakeCoordinator::new(vec![MapOutputLocation {
            map_task: 12,
            attempt_id: 1,
            address: dead.clone(),
            worker_id: "worker-1".into(),
        }])
        .serve()
        .await;
        let job = TestJob::default();
        let ctx = context(&coordinator, &work.path().join("work"), job.registry());
        let error = run_reduce(&ctx, &assignment(&work.path().join("out")), Arc::default())
            .await
            .expect_err("the map output cannot be fetched");
        assert!(
            matches!(error, TaskError::Fetch { map_attempt: 1, .. }),
            "{error}"
        );
        // What the coordinator, and then `quern status`, are told.
        assert_eq!(
            quern_proto::error_chain(&error),
            format!("cannot fetch map output m-00012 from worker-1 ({dead}): connection refused")
        );
        assert!(work.path().join("work/job-1-0001").is_dir());
        wait_until_gone(&work.path().join("work/job-1-0001/reduce-00000-2")).await;
    }

    #[tokio::test]
    async fn a_map_output_with_a_flipped_byte_is_reported_corrupt() {
        let work = tempfile::tempdir().unwrap();
        let map_dir = work.path().join("map");
        std::fs::create_dir(&map_dir).unwrap();
        let location = peer_with_words(&map_dir, 100).await;
        // The map output is the one file the map left; damage a byte in the middle.
        let file = std::fs::read_dir(&map_dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .max_by_key(|p| std::fs::metadata(p).unwrap().len())
            .unwrap();
        let mut bytes = std::fs::read(&file).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x20;
        std::fs::write(&file, bytes).unwrap();
        let coordinator = FakeCoordinator::new(vec![location]).serve().await;
        let job = TestJob::default();
        let ctx = context(&coordinator, &work.path().join("work"), job.registry());
        let error = run_reduce(&ctx, &assignment(&work.path().join("out")), Arc::default())
            .await
            .expect_err("a corrupt segment is never reduced");
        assert!(
            matches!(
                error,
                TaskError::CorruptMapOutput {
                    map_task: 0,
                    map_attempt: 1,
                    ..
                }
            ),
            "{error}"
        );
        assert_eq!(
            error.failure_kind(),
            quern_proto::FailureKind::CorruptMapOutput
        );
        assert!(!work.path().join("out/part-r-00000").exists());
    }

    #[tokio::test]
    async fn a_reduce_hands_its_part_to_the_coordinator_and_leaves_no_directory() {
        let work = tempfile::tempdir().unwrap();
        std::fs::create_dir(work.path().join("map")).unwrap();
        let location = peer_with_words(&work.path().join("map"), 100).await;
        let fake = FakeCoordinator::new(vec![location]);
        let commits = fake.commits.clone();
        let coordinator = fake.serve().await;
        let job = TestJob::default();
        let ctx = context(&coordinator, &work.path().join("work"), job.registry());
        run_reduce(&ctx, &assignment(&work.path().join("out")), Arc::default())
            .await
            .unwrap();
        // The commit carries what the attempt counted; making the part final is the
        // coordinator's step, so the part is still staged under this attempt's name.
        let commits = commits.lock().unwrap().clone();
        assert_eq!(commits.len(), 1);
        let counters = commits[0].counters.clone().unwrap();
        assert_eq!(counters.reduce_input_groups, 100);
        assert_eq!(
            (commits[0].job_id.as_str(), commits[0].attempt_id),
            ("job-1-0001", 2)
        );
        assert!(!work.path().join("out/part-r-00000").exists());
        let part = work.path().join("out/_temporary/attempt-2/part-r-00000");
        let part = std::fs::read_to_string(part).unwrap();
        assert_eq!(part.lines().count(), 100);
        assert_eq!(counters.output_bytes, part.len() as u64);
        wait_until_gone(&work.path().join("work/job-1-0001/reduce-00000-2")).await;
    }
}
