//! Shuffle fetch: a reduce task learns where the map outputs are and streams its partition of
//! each from the workers that hold them, several at once. A small segment stays in memory; past
//! the budget, segments go to the task's local directory. Each segment is checked against the
//! checksum its holder sends. A peer that cannot serve after a few tries, or that goes silent for
//! [`FETCH_IDLE_TIMEOUT`] mid-fetch, or a corrupt segment, is reported to the coordinator, which
//! may run that map again; the reduce keeps what it fetched and fetches the lost output anew,
//! as Hadoop's shuffle does.

use crate::attempt::Progress;
use crate::context::Context;
use crate::error::TaskError;
use crate::merge::Segment;
use crate::record::RecordReader;
use futures::StreamExt;
use quern_proto::{
    Assignment, Backoff, FetchFailureReport, FetchRequest, MapOutputLocation,
    MapOutputLocationsRequest, MapOutputLocationsResponse,
};
use std::collections::{HashMap, HashSet};
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// How often a reduce asks again for map outputs that are being recomputed.
const LOCATIONS_POLL: Duration = Duration::from_millis(250);
/// Between rounds of refetching lost map outputs: the first retry comes soon (the coordinator
/// may already have moved the output), later ones back off.
const REFETCH_FIRST: Duration = Duration::from_millis(50);
const REFETCH_MAX: Duration = Duration::from_secs(2);
/// Map outputs fetched at once.
const PARALLEL_FETCHES: usize = 8;
/// In-memory bytes a reduce task may hold across its segments; the rest spill to disk.
const MEMORY_BUDGET: i64 = 128 << 20;
const FETCH_TRIES: u32 = 3;
/// Between fetch tries: 200 ms, then 400 ms.
const RETRY_STEP: Duration = Duration::from_millis(200);
/// A fetch that receives nothing (no response, no next chunk) for this long fails at once, with
/// no retry: the peer is alive enough to answer keepalive pings but does not serve (a full or
/// failing disk, a stuck process), and waiting on it would hold the reduce forever.
pub const FETCH_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// One fetched segment.
pub enum Fetched {
    Memory(Vec<u8>),
    File(PathBuf),
}

impl Fetched {
    pub fn open(self) -> std::io::Result<Segment> {
        Ok(match self {
            Fetched::Memory(bytes) => RecordReader::new(Box::new(std::io::Cursor::new(bytes))),
            Fetched::File(path) => {
                let file = std::fs::File::open(&path)?;
                // The segment is only read once; unlinking now means nothing is left behind.
                std::fs::remove_file(&path)?;
                RecordReader::new(Box::new(BufReader::with_capacity(64 << 10, file)))
            }
        })
    }
}

/// Fetches this reduce's partition of every map output. A map output that cannot be fetched
/// whole is reported to the coordinator, and the reduce goes on with the rest, keeping what it
/// has: once the coordinator has judged the report (and perhaps run that map again), the reduce
/// asks where the output is now and fetches it there. It stops only when the coordinator says so.
pub async fn fetch_partition(
    ctx: &Context,
    assignment: &Assignment,
    dir: &Path,
    progress: &Progress,
) -> Result<(Vec<Fetched>, u64), TaskError> {
    let target = Target {
        dir,
        budget: AtomicI64::new(MEMORY_BUDGET),
        progress,
        unreachable: Mutex::default(),
    };
    let mut todo = map_output_locations(ctx, assignment).await?;
    let mut segments = Vec::with_capacity(todo.len());
    let mut bytes = 0;
    let mut backoff = Backoff::exponential(REFETCH_FIRST, REFETCH_MAX);
    loop {
        let round = fetch_round(ctx, assignment, todo, &target).await?;
        for (segment, segment_bytes) in round.fetched {
            segments.push(segment);
            bytes += segment_bytes;
        }
        if round.lost.is_empty() {
            return Ok((segments, bytes));
        }
        let lost: HashSet<u32> = round.lost.iter().map(|(l, _)| l.map_task).collect();
        for (_, error) in round.lost {
            report_lost(ctx, assignment, error).await?;
        }
        tokio::time::sleep(backoff.next_delay()).await;
        todo = map_output_locations(ctx, assignment)
            .await?
            .into_iter()
            .filter(|l| lost.contains(&l.map_task))
            .collect();
    }
}

/// Tells the coordinator that a map output could not be fetched whole. Err (the error itself)
/// when the reduce should stop: the coordinator no longer wants it, or cannot be told.
async fn report_lost(
    ctx: &Context,
    assignment: &Assignment,
    error: TaskError,
) -> Result<(), TaskError> {
    tracing::info!(error = %quern_proto::error_chain(&error), "a map output could not be fetched; reported");
    let mut report = FetchFailureReport {
        job_id: assignment.job_id.clone(),
        attempt_id: assignment.attempt_id,
        worker_id: assignment.worker_id.clone(),
        failed_map_attempt: error.failed_map_attempt().unwrap_or_default(),
        error: quern_proto::error_chain(&error),
        ..FetchFailureReport::default()
    };
    report.set_failure(error.failure_kind());
    match ctx.coordinator().report_fetch_failure(report).await {
        Ok(response) if response.get_ref().keep_going => Ok(()),
        _ => Err(error),
    }
}

/// Asks the coordinator where the map outputs are, waiting for as long as some are being
/// recomputed (lost workers' maps run again): the coordinator cancels this attempt if it stops
/// waiting for it, and answers FailedPrecondition if asked after that.
async fn map_output_locations(
    ctx: &Context,
    assignment: &Assignment,
) -> Result<Vec<MapOutputLocation>, TaskError> {
    let request = MapOutputLocationsRequest {
        job_id: assignment.job_id.clone(),
        partition: assignment.task,
        attempt_id: assignment.attempt_id,
        worker_id: assignment.worker_id.clone(),
    };
    let mut backoff = Backoff::constant(LOCATIONS_POLL);
    loop {
        match ctx
            .coordinator()
            .map_output_locations(request.clone())
            .await
        {
            Ok(response) => return flatten(response.into_inner()),
            Err(status) if status.code() == tonic::Code::Unavailable => {
                tokio::time::sleep(backoff.next_delay()).await;
            }
            Err(status) => return Err(TaskError::Coordinator(status)),
        }
    }
}

/// One location per map output, from the coordinator's lists grouped by worker.
fn flatten(response: MapOutputLocationsResponse) -> Result<Vec<MapOutputLocation>, TaskError> {
    let mut locations = Vec::new();
    for worker in response.workers {
        if worker.map_tasks.len() != worker.attempt_ids.len() {
            return Err(TaskError::MissingField("an attempt id for every map task"));
        }
        for (map_task, attempt_id) in worker.map_tasks.into_iter().zip(worker.attempt_ids) {
            locations.push(MapOutputLocation {
                map_task,
                attempt_id,
                address: worker.address.clone(),
                worker_id: worker.worker_id.clone(),
            });
        }
    }
    Ok(locations)
}

/// Where fetched segments go: memory while the budget lasts, then files in `dir`; every byte
/// counts as the attempt's progress.
struct Target<'a> {
    dir: &'a Path,
    budget: AtomicI64,
    progress: &'a Progress,
    /// Peers out of reach in this round, with why: their other outputs are not tried again
    /// until the next round, as a Hadoop fetcher gives up on a host. Without it, a peer whose
    /// network is gone costs every one of its outputs a full round of connect timeouts.
    unreachable: Mutex<HashMap<String, tonic::Status>>,
}

impl Target<'_> {
    fn unreachable(&self) -> std::sync::MutexGuard<'_, HashMap<String, tonic::Status>> {
        self.unreachable.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One segment fetched, with its bytes, or why not.
type FetchResult = Result<(Fetched, u64), TaskError>;

/// What one round of fetches brought: the segments fetched with their bytes, and the map outputs
/// that could not be fetched whole, with why.
#[derive(Default)]
struct Round {
    fetched: Vec<(Fetched, u64)>,
    lost: Vec<(MapOutputLocation, TaskError)>,
}

/// Fetches partition `partition` of each map output at `locations`, several at once. A map
/// output out of reach or corrupt does not stop the others: it comes back in [`Round::lost`].
/// Any other failure (this worker's own disk, a peer that refuses) ends the round.
async fn fetch_round(
    ctx: &Context,
    assignment: &Assignment,
    locations: Vec<MapOutputLocation>,
    target: &Target<'_>,
) -> Result<Round, TaskError> {
    let (job_id, partition) = (assignment.job_id.as_str(), assignment.task);
    target.unreachable().clear();
    let results: Vec<(MapOutputLocation, FetchResult)> = futures::stream::iter(locations)
        .map(|location| async move {
            let fetched =
                fetch_with_retries(ctx, job_id, partition, location.clone(), target).await;
            (location, fetched)
        })
        .buffer_unordered(PARALLEL_FETCHES)
        .collect()
        .await;
    let mut round = Round::default();
    for (location, result) in results {
        match result {
            Ok(segment) => round.fetched.push(segment),
            Err(e) if e.failed_map_attempt().is_some() => round.lost.push((location, e)),
            Err(e) => return Err(e),
        }
    }
    Ok(round)
}

async fn fetch_with_retries(
    ctx: &Context,
    job_id: &str,
    partition: u32,
    location: MapOutputLocation,
    target: &Target<'_>,
) -> Result<(Fetched, u64), TaskError> {
    let mut backoff = Backoff::linear(RETRY_STEP, RETRY_STEP * FETCH_TRIES);
    let mut tries = 0;
    loop {
        tries += 1;
        let known_out_of_reach = target.unreachable().get(&location.address).cloned();
        let fetched = match known_out_of_reach {
            Some(status) => Err(FetchError::Stalled(status)),
            None => fetch_one(ctx, job_id, partition, &location, target).await,
        };
        let status = match fetched {
            Ok(fetched) => return Ok(fetched),
            Err(FetchError::Local(e)) => return Err(e),
            Err(FetchError::Corrupt(reason)) => {
                return Err(TaskError::CorruptMapOutput {
                    map_task: location.map_task,
                    map_attempt: location.attempt_id,
                    worker: location.worker_id.clone(),
                    address: location.address.clone(),
                    reason,
                });
            }
            Err(FetchError::Peer(status)) if is_refusal(status.code()) => {
                return Err(TaskError::FetchRefused {
                    map_attempt: location.attempt_id,
                    address: location.address.clone(),
                    source: status,
                });
            }
            // The peer answered that it lacks the output: it is reachable.
            Err(FetchError::Peer(status)) if status.code() == tonic::Code::NotFound => status,
            Err(FetchError::Stalled(status)) => out_of_reach(target, &location, status),
            Err(FetchError::Peer(status)) if tries >= FETCH_TRIES => {
                out_of_reach(target, &location, status)
            }
            Err(FetchError::Peer(status)) => {
                tracing::info!(address = %location.address, error = %quern_proto::error_chain(&status), "shuffle fetch failed; retrying");
                tokio::time::sleep(backoff.next_delay()).await;
                continue;
            }
        };
        return Err(TaskError::Fetch {
            map_task: location.map_task,
            map_attempt: location.attempt_id,
            worker: location.worker_id.clone(),
            address: location.address.clone(),
            source: status,
        });
    }
}

/// Notes that `location`'s peer is out of reach for the rest of the round.
fn out_of_reach(
    target: &Target<'_>,
    location: &MapOutputLocation,
    status: tonic::Status,
) -> tonic::Status {
    target
        .unreachable()
        .entry(location.address.clone())
        .or_insert_with(|| status.clone());
    status
}

/// A peer's answer that says it will not serve this worker, rather than that it cannot: wrong
/// credentials or a mismatched version. Re-running maps would not help.
fn is_refusal(code: tonic::Code) -> bool {
    matches!(
        code,
        tonic::Code::Unauthenticated
            | tonic::Code::PermissionDenied
            | tonic::Code::InvalidArgument
            | tonic::Code::Unimplemented
    )
}

enum FetchError {
    /// The peer answered with an error, or the connection broke: worth another try.
    Peer(tonic::Status),
    /// The peer sent nothing for the idle timeout: not worth another.
    Stalled(tonic::Status),
    /// The bytes did not match the checksum the peer sent: its file is damaged.
    Corrupt(String),
    Local(TaskError),
}

/// Waits for `next` at most `idle`.
async fn within<T>(
    idle: Duration,
    next: impl Future<Output = Result<T, tonic::Status>>,
) -> Result<T, FetchError> {
    match tokio::time::timeout(idle, next).await {
        Ok(result) => result.map_err(FetchError::Peer),
        Err(_) => Err(FetchError::Stalled(tonic::Status::deadline_exceeded(
            format!("the peer sent nothing for {} s", idle.as_secs_f64()),
        ))),
    }
}

async fn fetch_one(
    ctx: &Context,
    job_id: &str,
    partition: u32,
    location: &MapOutputLocation,
    target: &Target<'_>,
) -> Result<(Fetched, u64), FetchError> {
    let (dir, budget) = (target.dir, &target.budget);
    let mut client = ctx.peer(&location.address).map_err(FetchError::Peer)?;
    let request = FetchRequest {
        job_id: job_id.to_string(),
        map_attempt_id: location.attempt_id,
        partition,
    };
    let idle = ctx.fetch_idle_timeout;
    let mut stream = within(idle, client.fetch_partition(request))
        .await?
        .into_inner();
    let mut memory = Vec::new();
    let mut file: Option<(tokio::fs::File, PathBuf)> = None;
    let mut total = 0u64;
    let mut crc = 0u32;
    let mut expected: Option<(u32, u64)> = None;
    while let Some(chunk) = within(idle, stream.message()).await? {
        expected.get_or_insert((chunk.crc32c, chunk.partition_bytes));
        let data = chunk.data;
        total += data.len() as u64;
        target.progress.add(0, data.len() as u64);
        crc = crc32c::crc32c_append(crc, &data);
        if file.is_none()
            && budget.fetch_sub(data.len() as i64, Ordering::Relaxed) < data.len() as i64
        {
            file = Some(
                spill_to_disk(dir, location.map_task, &memory)
                    .await
                    .map_err(FetchError::Local)?,
            );
            budget.fetch_add(memory.len() as i64 + data.len() as i64, Ordering::Relaxed);
            memory = Vec::new();
        }
        match &mut file {
            Some((f, path)) => f.write_all(&data).await.map_err(|e| write_error(path, e))?,
            None => memory.extend_from_slice(&data),
        }
    }
    check_whole(expected, total, crc)?;
    Ok(match file {
        Some((mut f, path)) => {
            f.flush().await.map_err(|e| write_error(&path, e))?;
            (Fetched::File(path), total)
        }
        None => (Fetched::Memory(memory), total),
    })
}

/// Whether the bytes received are the ones the peer meant to send.
fn check_whole(expected: Option<(u32, u64)>, bytes: u64, crc: u32) -> Result<(), FetchError> {
    let Some((expected_crc, expected_bytes)) = expected else {
        return Err(FetchError::Corrupt("the peer sent no chunk".to_string()));
    };
    if bytes != expected_bytes {
        return Err(FetchError::Corrupt(format!(
            "received {bytes} bytes of {expected_bytes}"
        )));
    }
    if crc != expected_crc {
        return Err(FetchError::Corrupt(format!(
            "CRC-32C {crc:08x} does not match {expected_crc:08x}"
        )));
    }
    Ok(())
}

fn write_error(path: &Path, e: std::io::Error) -> FetchError {
    FetchError::Local(TaskError::io(format!("cannot write {}", path.display()))(e))
}

async fn spill_to_disk(
    dir: &Path,
    map_task: u32,
    already: &[u8],
) -> Result<(tokio::fs::File, PathBuf), TaskError> {
    let path = dir.join(format!("segment-{map_task:05}"));
    let context = || format!("cannot write {}", path.display());
    let mut file = tokio::fs::File::create(&path)
        .await
        .map_err(TaskError::io(context()))?;
    file.write_all(already)
        .await
        .map_err(TaskError::io(context()))?;
    Ok((file, path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{context, serve};
    use quern_proto::shuffle_server::{Shuffle, ShuffleServer};
    use quern_proto::{FetchChunk, FetchRequest};
    use quern_sdk::JobRegistry;
    use std::pin::Pin;
    use std::time::Instant;

    /// A peer that sends one chunk of a partition and then nothing, keeping the stream open.
    struct Stalling;

    #[tonic::async_trait]
    impl Shuffle for Stalling {
        type FetchPartitionStream =
            Pin<Box<dyn futures::Stream<Item = Result<FetchChunk, tonic::Status>> + Send>>;

        async fn fetch_partition(
            &self,
            _: tonic::Request<FetchRequest>,
        ) -> Result<tonic::Response<Self::FetchPartitionStream>, tonic::Status> {
            let first = FetchChunk {
                data: bytes::Bytes::from_static(b"\x03abc"),
                ..FetchChunk::default()
            };
            let stream =
                futures::stream::once(async { Ok(first) }).chain(futures::stream::pending());
            Ok(tonic::Response::new(Box::pin(stream)))
        }
    }

    #[tokio::test]
    async fn a_peer_that_stops_sending_mid_fetch_is_a_fetch_failure() {
        let peer =
            serve(tonic::transport::Server::builder().add_service(ShuffleServer::new(Stalling)))
                .await;
        let work = tempfile::tempdir().unwrap();
        let mut ctx = context(
            &crate::testing::black_hole(),
            work.path(),
            JobRegistry::new(),
        );
        ctx.fetch_idle_timeout = Duration::from_millis(300);
        let location = MapOutputLocation {
            map_task: 0,
            attempt_id: 7,
            address: peer.clone(),
            worker_id: "worker-1".into(),
        };
        let started = Instant::now();
        let fetched = tokio::time::timeout(
            Duration::from_secs(10),
            fetch_round(
                &ctx,
                &Assignment {
                    job_id: "job-0001".into(),
                    task: 0,
                    ..Assignment::default()
                },
                vec![location],
                &Target {
                    dir: work.path(),
                    budget: AtomicI64::new(MEMORY_BUDGET),
                    progress: &Progress::default(),
                    unreachable: Mutex::default(),
                },
            ),
        )
        .await
        .expect("the fetch gave up on the silent peer")
        .map(|mut round| round.lost.pop().map(|(_, e)| e));
        match fetched {
            Ok(Some(TaskError::Fetch {
                map_task,
                map_attempt,
                address,
                source,
                ..
            })) => {
                assert_eq!((map_task, map_attempt, address), (0, 7, peer));
                assert_eq!(source.code(), tonic::Code::DeadlineExceeded);
                assert!(source.message().contains("sent nothing"), "{source}");
            }
            Ok(Some(e)) | Err(e) => panic!("not a fetch failure: {e}"),
            Ok(None) => panic!("a stalled fetch succeeded"),
        }
        // Once, not once per retry.
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }
}
