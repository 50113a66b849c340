//! Shuffle fetch: a reduce task learns where the map outputs are (see [`crate::map_locations`])
//! and streams its partition of each from the workers that hold them, several at once. A small
//! segment stays in memory; past the budget, segments go to the task's local directory. An output
//! held by a worker of this process is read where it lies instead. Each segment is checked
//! against the checksum its holder keeps. A peer that cannot serve after a few tries, or that
//! goes silent for [`FETCH_IDLE_TIMEOUT`] mid-fetch, or a corrupt segment, is reported to the
//! coordinator, which may run that map again; the reduce keeps what it fetched and fetches the
//! lost output anew, as Hadoop's shuffle does.

use crate::attempt::Progress;
use crate::codec::Codec;
use crate::context::Context;
use crate::error::TaskError;
use crate::map_locations::caught_up;
use crate::merge::Segment;
use crate::record::RecordReader;
use crate::shuffle_server::{MapOutputs, no_partition, unreadable};
use crate::spill::Run;
use futures::StreamExt;
use quern_proto::{
    Assignment, Backoff, FailureKind, FetchFailureReport, FetchRequest, MapOutputLocation,
};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

/// Between rounds of refetching lost map outputs: the first retry comes soon (the coordinator
/// may already have moved the output), later ones back off.
const REFETCH_FIRST: Duration = Duration::from_millis(50);
const REFETCH_MAX: Duration = Duration::from_secs(2);
/// Map outputs fetched at once.
const PARALLEL_FETCHES: usize = 8;
const FETCH_TRIES: u32 = 3;
/// Read buffer of the checksum check of a map output read in this process.
const CHECK_BUFFER: usize = 256 << 10;
/// Between fetch tries: 200 ms, then 400 ms.
const RETRY_STEP: Duration = Duration::from_millis(200);
/// A fetch that receives nothing (no response, no next chunk) for this long fails at once, with
/// no retry: the peer is alive enough to answer keepalive pings but does not serve (a full or
/// failing disk, a stuck process), and waiting on it would hold the reduce forever.
pub const FETCH_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// One fetched segment.
pub enum Fetched {
    Memory(Vec<u8>),
    /// A file of the task's own, removed once opened.
    File(PathBuf),
    /// A map output of a worker in this process: the segment is `len` bytes from `start`.
    /// Opened only when merged, as a file of the task's own is, so that a reduce holds no more
    /// files open than its merge does.
    InProcess {
        path: PathBuf,
        start: u64,
        len: u64,
    },
}

impl Fetched {
    /// The segment's records, decoded as the job's map output is compressed.
    pub fn open(self, codec: Codec) -> std::io::Result<Segment> {
        let buffer = crate::spill::SEGMENT_READ_BUFFER;
        let stream = match self {
            Fetched::Memory(bytes) => {
                let len = bytes.len() as u64;
                codec.decoder(std::io::Cursor::new(bytes), len, buffer)?
            }
            Fetched::File(path) => {
                let file = std::fs::File::open(&path)?;
                let len = file.metadata()?.len();
                // The segment is only read once; unlinking now means nothing is left behind.
                std::fs::remove_file(&path)?;
                codec.decoder(file, len, buffer)?
            }
            Fetched::InProcess { path, start, len } => {
                return crate::spill::open_segment(&path, (start, len), codec);
            }
        };
        Ok(RecordReader::new(stream))
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
        budget: AtomicI64::new(memory_budget(assignment)),
        progress,
        out_of_reach: OutOfReach::default(),
    };
    let view = ctx.map_output_views.of(assignment);
    let mut todo = caught_up(ctx, assignment, &view).await?.locations()?;
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
        let mut lost: Vec<u32> = round.lost.iter().map(|(l, _)| l.map_task).collect();
        lost.sort_unstable();
        for error in worth_reporting(round.lost) {
            report_lost(ctx, assignment, error).await?;
        }
        tokio::time::sleep(backoff.next_delay()).await;
        // The events since: the maps run again, where their new outputs are.
        let known = caught_up(ctx, assignment, &view).await?;
        todo = lost
            .into_iter()
            .map(|map_task| known.location(map_task))
            .collect::<Result<_, _>>()?;
    }
}

/// The failures of one round the coordinator needs to hear: every corrupt output (each runs its
/// map again), but one out-of-reach output per holder, since the coordinator judges the holder
/// as a whole; a reduce does not send a report for each of a lost worker's thousand outputs.
fn worth_reporting(lost: Vec<(MapOutputLocation, TaskError)>) -> Vec<TaskError> {
    let mut holders = HashSet::new();
    lost.into_iter()
        .filter(|(location, error)| {
            error.failure_kind() == FailureKind::CorruptMapOutput
                || holders.insert(location.worker_id.clone())
        })
        .map(|(_, error)| error)
        .collect()
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

/// Learns where every map output of the job is, once all are done, as a reduce does before its
/// shuffle, without listing them one by one; returns how many there are. What the
/// control-plane bench's simulated reduces do.
pub async fn locate_map_outputs(
    ctx: &Context,
    assignment: &Assignment,
) -> Result<usize, TaskError> {
    let view = ctx.map_output_views.of(assignment);
    caught_up(ctx, assignment, &view).await?.located()
}

/// Bytes of fetched segments a reduce holds in memory: an eighth of its task's memory
/// (`--sort-buffer`), as a Hadoop reduce holds its shuffle input in a share of its heap; the rest
/// go to local files (read back from the page cache), so a worker's memory does not grow with the
/// job's data: word count's peak grew 1.6x from 1 GiB to 10 GiB of input with half.
fn memory_budget(assignment: &Assignment) -> i64 {
    i64::try_from(assignment.sort_buffer_bytes / 8).unwrap_or(i64::MAX)
}

/// Where fetched segments go: memory while the budget lasts, then files in `dir`; every byte
/// counts as the attempt's progress.
struct Target<'a> {
    dir: &'a Path,
    budget: AtomicI64,
    progress: &'a Progress,
    out_of_reach: OutOfReach,
}

/// The peers found out of reach in this round, with why. Their other outputs are not tried
/// again until the next round, and fetches from them in flight stop at once, as a Hadoop
/// fetcher gives up on a host. Without it, a peer whose network is gone costs each of its
/// outputs its own connect timeouts, one after another on the peer's one channel: minutes.
#[derive(Default)]
struct OutOfReach {
    peers: Mutex<HashMap<String, Reach>>,
}

#[derive(Default, Clone)]
struct Reach {
    /// Cancelled once the peer is found out of reach.
    gone: CancellationToken,
    why: Option<tonic::Status>,
}

impl Target<'_> {
    /// Whether `bytes` more fit what is left of the memory budget; if so, they are taken from it.
    fn take_budget(&self, bytes: u64) -> bool {
        let size = i64::try_from(bytes).unwrap_or(i64::MAX);
        if self.budget.fetch_sub(size, Ordering::Relaxed) >= size {
            return true;
        }
        self.budget.fetch_add(size, Ordering::Relaxed);
        false
    }
}

impl OutOfReach {
    fn peers(&self) -> std::sync::MutexGuard<'_, HashMap<String, Reach>> {
        self.peers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new round tries every peer again.
    fn clear(&self) {
        self.peers().clear();
    }

    /// What is known of `address` in this round: a token cancelled if it is found out of
    /// reach, and why, if it is already.
    fn reach(&self, address: &str) -> Reach {
        self.peers().entry(address.to_string()).or_default().clone()
    }

    /// `address` is out of reach for the rest of the round because of `status`; fetches from
    /// it in flight stop. Returns why (the first cause found).
    fn mark(&self, address: &str, status: tonic::Status) -> tonic::Status {
        let mut peers = self.peers();
        let reach = peers.entry(address.to_string()).or_default();
        reach.gone.cancel();
        reach.why.get_or_insert(status).clone()
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
    target.out_of_reach.clear();
    let results: Vec<(MapOutputLocation, FetchResult)> = futures::stream::iter(locations)
        .map(|location| async move {
            let fetched = fetch_with_retries(ctx, assignment, location.clone(), target).await;
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
    reduce: &Assignment,
    location: MapOutputLocation,
    target: &Target<'_>,
) -> Result<(Fetched, u64), TaskError> {
    let mut backoff = Backoff::linear(RETRY_STEP, RETRY_STEP * FETCH_TRIES);
    let mut tries = 0;
    loop {
        tries += 1;
        let reach = target.out_of_reach.reach(&location.address);
        let fetched = match reach.why {
            Some(status) => Err(FetchError::Stalled(status)),
            None => tokio::select! {
                fetched = fetch_one(ctx, reduce, &location, target) => fetched,
                _ = reach.gone.cancelled() => {
                    Err(FetchError::Stalled(target.out_of_reach.reach(&location.address).why.unwrap_or_else(|| tonic::Status::unavailable("the peer is out of reach"))))
                }
            },
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
            Err(FetchError::Stalled(status)) => target.out_of_reach.mark(&location.address, status),
            // A connection that cannot be made is not worth more tries in this round: the
            // coordinator judges the peer, and the next round tries it again if it lives.
            Err(FetchError::Peer(status))
                if tries >= FETCH_TRIES || is_connect_failure(&status) =>
            {
                target.out_of_reach.mark(&location.address, status)
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

/// Whether `status` says a connection to the peer could not be made at all: refused (nothing
/// listens), or no route to it, or no answer.
fn is_connect_failure(status: &tonic::Status) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(status);
    while let Some(error) = source {
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused
                    | std::io::ErrorKind::HostUnreachable
                    | std::io::ErrorKind::NetworkUnreachable
                    | std::io::ErrorKind::TimedOut
            );
        }
        source = error.source();
    }
    false
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

#[derive(Debug)]
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

/// Fetches `reduce`'s partition of the map output at `location`, carrying the job's secret.
async fn fetch_one(
    ctx: &Context,
    reduce: &Assignment,
    location: &MapOutputLocation,
    target: &Target<'_>,
) -> Result<(Fetched, u64), FetchError> {
    let partition = reduce.task;
    let (job, attempt, secret) = (&reduce.job_id, location.attempt_id, &reduce.job_secret);
    if let Some(run) = MapOutputs::in_process(&location.address, job, attempt, secret) {
        return open_in_process(run, partition, target).await;
    }
    let mut client = ctx.peer(&location.address).map_err(FetchError::Peer)?;
    let request = FetchRequest {
        job_id: reduce.job_id.clone(),
        map_attempt_id: location.attempt_id,
        partition,
        job_secret: reduce.job_secret.clone(),
    };
    let idle = ctx.fetch_idle_timeout;
    let mut stream = within(idle, client.fetch_partition(request))
        .await?
        .into_inner();
    let mut sink: Option<SegmentSink> = None;
    let mut total = 0u64;
    let mut crc = 0u32;
    let mut expected: Option<(u32, u64)> = None;
    while let Some(chunk) = within(idle, stream.message()).await? {
        let (_, announced) = *expected.get_or_insert((chunk.crc32c, chunk.partition_bytes));
        let data = chunk.data;
        total += data.len() as u64;
        if total > announced {
            return Err(FetchError::Corrupt(format!(
                "received more than the {announced} bytes announced"
            )));
        }
        target.progress.add(0, data.len() as u64);
        crc = crc32c::crc32c_append(crc, &data);
        let sink = match &mut sink {
            Some(sink) => sink,
            None => sink.insert(SegmentSink::open(target, location.map_task, announced).await?),
        };
        sink.write(&data).await?;
    }
    check_whole(expected, total, crc)?;
    match sink {
        Some(sink) => sink.finish().await,
        // Nothing was sent, which check_whole refused.
        None => Ok(Fetched::Memory(Vec::new())),
    }
    .map(|fetched| (fetched, total))
}

/// Partition `partition` of `run`, a map output held by a worker of this process, checked against
/// its checksum: read into memory if it fits what is left of the reduce's budget, as a fetched
/// one would be (so that a reduce over thousands of small outputs holds no file open for each),
/// else left where it lies for the merge to read. Failures are the ones its shuffle service
/// would answer.
async fn open_in_process(
    run: Run,
    partition: u32,
    target: &Target<'_>,
) -> Result<(Fetched, u64), FetchError> {
    let (start, len, crc) = run
        .partition(partition)
        .ok_or_else(|| FetchError::Peer(no_partition(partition)))?;
    let in_memory = target.take_budget(len);
    let path = run.path;
    let read = tokio::task::spawn_blocking(move || {
        let unreadable = |e| FetchError::Peer(unreadable(&path, e));
        read_in_process(path.clone(), (start, len), in_memory).map_err(unreadable)
    });
    let (fetched, read, read_crc) = read
        .await
        .map_err(|e| FetchError::Peer(tonic::Status::internal(e.to_string())))??;
    check_whole(Some((crc, len)), read, read_crc)?;
    target.progress.add(0, len);
    Ok((fetched, len))
}

/// Bytes `start..start + len` of `path` (or as many as there are), in memory or left where they
/// are; with how many there were and their CRC-32C.
fn read_in_process(
    path: PathBuf,
    (start, len): (u64, u64),
    in_memory: bool,
) -> std::io::Result<(Fetched, u64, u32)> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(&path)?;
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = file.take(len);
    if in_memory {
        let mut memory = Vec::with_capacity(len as usize);
        bytes.read_to_end(&mut memory)?;
        let (read, crc) = (memory.len() as u64, crc32c::crc32c(&memory));
        return Ok((Fetched::Memory(memory), read, crc));
    }
    let mut buffer = vec![0; CHECK_BUFFER.min(len as usize)];
    let (mut read, mut crc) = (0, 0);
    loop {
        match bytes.read(&mut buffer)? {
            0 => break,
            n => {
                read += n as u64;
                crc = crc32c::crc32c_append(crc, &buffer[..n]);
            }
        }
    }
    Ok((Fetched::InProcess { path, start, len }, read, crc))
}

/// Where one segment's bytes go as they arrive: memory, if the segment's announced size fits
/// what is left of the reduce's budget, else a file in the task's directory.
enum SegmentSink {
    Memory(Vec<u8>),
    File(tokio::fs::File, PathBuf),
}

impl SegmentSink {
    async fn open(target: &Target<'_>, map_task: u32, bytes: u64) -> Result<Self, FetchError> {
        if target.take_budget(bytes) {
            return Ok(SegmentSink::Memory(Vec::with_capacity(bytes as usize)));
        }
        let path = target.dir.join(format!("segment-{map_task:05}"));
        let file = tokio::fs::File::create(&path)
            .await
            .map_err(|e| write_error(&path, e))?;
        Ok(SegmentSink::File(file, path))
    }

    async fn write(&mut self, data: &[u8]) -> Result<(), FetchError> {
        match self {
            SegmentSink::Memory(memory) => memory.extend_from_slice(data),
            SegmentSink::File(file, path) => file
                .write_all(data)
                .await
                .map_err(|e| write_error(path, e))?,
        }
        Ok(())
    }

    async fn finish(self) -> Result<Fetched, FetchError> {
        Ok(match self {
            SegmentSink::Memory(memory) => Fetched::Memory(memory),
            SegmentSink::File(mut file, path) => {
                file.flush().await.map_err(|e| write_error(&path, e))?;
                Fetched::File(path)
            }
        })
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{context, serve};
    use quern_proto::shuffle_server::{Shuffle, ShuffleServer};
    use quern_proto::{FetchChunk, FetchRequest};
    use quern_sdk::JobRegistry;
    use std::pin::Pin;
    use std::time::Instant;

    #[tokio::test]
    async fn a_refused_connection_is_a_connect_failure_and_an_answer_is_not() {
        let work = tempfile::tempdir().unwrap();
        let nobody = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dead = format!("http://{}", nobody.local_addr().unwrap());
        drop(nobody);
        let ctx = context("http://127.0.0.1:9", work.path(), JobRegistry::new());
        let request = FetchRequest::default();
        let status = ctx
            .peer(&dead)
            .unwrap()
            .fetch_partition(request)
            .await
            .expect_err("nothing listens there");
        assert!(is_connect_failure(&status), "{status:?}");
        assert!(!is_connect_failure(&tonic::Status::not_found(
            "no such output"
        )));
        assert!(!is_connect_failure(&tonic::Status::unavailable("busy")));
    }

    /// A peer that sends these chunks of a partition, and then either ends the stream or sends
    /// nothing more, keeping it open.
    #[derive(Clone)]
    struct Scripted {
        chunks: Vec<FetchChunk>,
        then_stall: bool,
    }

    #[tonic::async_trait]
    impl Shuffle for Scripted {
        type FetchPartitionStream =
            Pin<Box<dyn futures::Stream<Item = Result<FetchChunk, tonic::Status>> + Send>>;

        async fn fetch_partition(
            &self,
            _: tonic::Request<FetchRequest>,
        ) -> Result<tonic::Response<Self::FetchPartitionStream>, tonic::Status> {
            let sent = futures::stream::iter(self.chunks.clone().into_iter().map(Ok));
            Ok(tonic::Response::new(match self.then_stall {
                true => Box::pin(sent.chain(futures::stream::pending())),
                false => Box::pin(sent),
            }))
        }
    }

    fn chunk(data: &'static [u8], partition_bytes: u64) -> FetchChunk {
        FetchChunk {
            crc32c: crc32c::crc32c(data),
            data: bytes::Bytes::from_static(data),
            partition_bytes,
        }
    }

    /// Fetches map output 0 (attempt 7) of `peer` once, with a 300 ms idle timeout; returns the
    /// peer's address and the error the round lost it with, if it did.
    async fn fetch_once(peer: Scripted) -> (String, Result<Option<TaskError>, TaskError>) {
        let peer =
            serve(tonic::transport::Server::builder().add_service(ShuffleServer::new(peer))).await;
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
        let assignment = Assignment {
            job_id: "job-1-0001".into(),
            task: 0,
            ..Assignment::default()
        };
        let target = Target {
            dir: work.path(),
            budget: AtomicI64::new(1 << 20),
            progress: &Progress::default(),
            out_of_reach: OutOfReach::default(),
        };
        let round = fetch_round(&ctx, &assignment, vec![location], &target);
        let lost = tokio::time::timeout(Duration::from_secs(10), round)
            .await
            .expect("the fetch gave up on the peer")
            .map(|mut round| round.lost.pop().map(|(_, e)| e));
        (peer, lost)
    }

    #[tokio::test]
    async fn a_peer_that_stops_sending_mid_fetch_is_a_fetch_failure() {
        let started = Instant::now();
        // The first of the chunks of a 100-byte partition, and then silence.
        let stalling = Scripted {
            chunks: vec![chunk(b"\x03abc", 100)],
            then_stall: true,
        };
        let (peer, fetched) = fetch_once(stalling).await;
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

    #[tokio::test]
    async fn a_peer_that_sends_more_than_it_announced_is_refused_as_corrupt() {
        let overlong = Scripted {
            chunks: vec![chunk(b"\x03abc", 4), chunk(b"\x03def", 0)],
            then_stall: false,
        };
        let (_, fetched) = fetch_once(overlong).await;
        match fetched {
            Ok(Some(e @ TaskError::CorruptMapOutput { .. })) => assert!(
                e.to_string()
                    .ends_with("is corrupt: received more than the 4 bytes announced"),
                "{e}"
            ),
            Ok(Some(e)) | Err(e) => panic!("not refused as corrupt: {e}"),
            Ok(None) => panic!("an overlong segment was taken"),
        }
    }

    #[tokio::test]
    async fn segments_stay_in_memory_while_their_announced_sizes_fit_the_budget() {
        let work = tempfile::tempdir().unwrap();
        let progress = Progress::default();
        let target = Target {
            dir: work.path(),
            budget: AtomicI64::new(100),
            progress: &progress,
            out_of_reach: OutOfReach::default(),
        };
        let mut kinds = Vec::new();
        for (map_task, size) in [(0, 60), (1, 60), (2, 40), (3, 1)] {
            let mut sink = SegmentSink::open(&target, map_task, size).await.unwrap();
            sink.write(&vec![b'x'; size as usize]).await.unwrap();
            kinds.push(match sink.finish().await.unwrap() {
                Fetched::Memory(bytes) => format!("memory {}", bytes.len()),
                Fetched::File(path) => format!(
                    "file {} {}",
                    path.file_name().unwrap().to_string_lossy(),
                    std::fs::metadata(&path).unwrap().len()
                ),
                Fetched::InProcess { .. } => panic!("a fetched segment is read in place"),
            });
        }
        assert_eq!(
            kinds,
            [
                "memory 60",
                "file segment-00001 60",
                "memory 40",
                "file segment-00003 1"
            ]
        );
    }

    /// Fetches partition 1 of a two-partition map output (map task 3, attempt 9), written to
    /// `work`, that a worker of this process lists at `address` while `listed`, in one round,
    /// with a memory budget of `budget` bytes; the segment, or the error the round lost it with.
    async fn fetch_in_process(
        (address, work): (&str, &Path),
        partitions: [&[u8]; 2],
        listed: bool,
        budget: i64,
    ) -> Result<Fetched, TaskError> {
        let path = work.join("map-output");
        std::fs::write(&path, partitions.concat()).unwrap();
        let first = partitions[0].len() as u64;
        let run = Run {
            path,
            offsets: vec![0, first, first + partitions[1].len() as u64],
            // As written: before any damage the caller did.
            crcs: vec![crc32c::crc32c(b"\x01a"), crc32c::crc32c(b"\x02bc")],
            codec: Codec::None,
        };
        let outputs = MapOutputs::default();
        outputs.insert("job-1-0001", 9, run, "secret");
        let listing = outputs.list_in_process(address);
        if !listed {
            drop(listing);
        }
        let ctx = context(&crate::testing::black_hole(), work, JobRegistry::new());
        let assignment = Assignment {
            job_id: "job-1-0001".into(),
            job_secret: "secret".into(),
            task: 1,
            ..Assignment::default()
        };
        let location = MapOutputLocation {
            map_task: 3,
            attempt_id: 9,
            address: address.into(),
            worker_id: "worker-1".into(),
        };
        let progress = Progress::default();
        let target = Target {
            dir: work,
            budget: AtomicI64::new(budget),
            progress: &progress,
            out_of_reach: OutOfReach::default(),
        };
        let mut round = fetch_round(&ctx, &assignment, vec![location], &target).await?;
        match (round.fetched.pop(), round.lost.pop()) {
            (Some((fetched, bytes)), None) => {
                assert_eq!(bytes, partitions[1].len() as u64);
                Ok(fetched)
            }
            (None, Some((_, lost))) => Err(lost),
            _ => panic!("not one segment fetched or lost"),
        }
    }

    #[tokio::test]
    async fn a_map_output_of_a_worker_in_this_process_is_read_where_it_lies() {
        // Nothing listens at this address: only the in-process listing can serve it.
        let nobody = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = format!("http://{}", nobody.local_addr().unwrap());
        drop(nobody);
        let work = tempfile::tempdir().unwrap();
        let at = (address.as_str(), work.path());
        let partitions: [&[u8]; 2] = [b"\x01a", b"\x02bc"];
        // Past the memory budget: the file itself, at the partition's first byte.
        match fetch_in_process(at, partitions, true, 0).await {
            Ok(Fetched::InProcess { path, start, len }) => {
                let bytes = std::fs::read(path).unwrap();
                assert_eq!(&bytes[start as usize..][..len as usize], b"\x02bc");
            }
            Ok(_) => panic!("the segment was copied"),
            Err(e) => panic!("not read in this process: {e}"),
        }
        // Within it: read into memory, holding no file open.
        match fetch_in_process(at, partitions, true, 3).await {
            Ok(Fetched::Memory(bytes)) => assert_eq!(bytes, b"\x02bc"),
            Ok(_) => panic!("a segment within the budget was not read into memory"),
            Err(e) => panic!("not read in this process: {e}"),
        }
        // Damaged after it was written: the checksum catches it, as a fetch's would.
        for budget in [0, 3] {
            match fetch_in_process(at, [b"\x01a", b"\x02bd"], true, budget).await {
                Err(e @ TaskError::CorruptMapOutput { map_task: 3, .. }) => {
                    assert!(e.to_string().contains("does not match"), "{e}")
                }
                Err(e) => panic!("not refused as corrupt: {e}"),
                Ok(_) => panic!("a corrupt segment was taken"),
            }
        }
        // Once its worker is gone, the address is asked over the network, where nobody answers.
        match fetch_in_process(at, partitions, false, 0).await {
            Err(TaskError::Fetch { source, .. }) => assert!(is_connect_failure(&source)),
            Err(e) => panic!("not a fetch failure: {e}"),
            Ok(_) => panic!("read from a worker that is gone"),
        }
    }

    #[test]
    fn the_memory_budget_is_an_eighth_of_the_task_memory() {
        let assignment = Assignment {
            sort_buffer_bytes: 64 << 20,
            ..Assignment::default()
        };
        assert_eq!(memory_budget(&assignment), 8 << 20);
    }
}
