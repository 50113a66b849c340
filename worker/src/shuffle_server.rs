//! The shuffle service: serves one reduce partition of one finished map output, streamed from the
//! worker's local disk in chunks. Map outputs are registered here when their task finishes, and
//! listed for the reduces of this process, which read them where they lie (see
//! [`MapOutputs::in_process`]).

use crate::spill::Run;
use bytes::Bytes;
use quern_proto::shuffle_server::Shuffle;
use quern_proto::{FetchChunk, FetchRequest, HeldMapOutputs};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, LazyLock, Mutex};
use subtle::ConstantTimeEq;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

const CHUNK: usize = 1 << 20;

/// Finished map outputs on this worker, by (job, map attempt), each with its job's secret.
#[derive(Clone, Default)]
pub struct MapOutputs {
    runs: Arc<Mutex<Held>>,
}

/// (job, map attempt) → (its output, its job's secret).
type Held = HashMap<(String, u64), (Run, String)>;

/// The map outputs of each worker running in this process, by the address it advertises.
static IN_PROCESS: LazyLock<Mutex<HashMap<String, MapOutputs>>> = LazyLock::new(Mutex::default);

fn in_process() -> std::sync::MutexGuard<'static, HashMap<String, MapOutputs>> {
    IN_PROCESS.lock().unwrap_or_else(|p| p.into_inner())
}

/// Keeps a worker's map outputs listed in this process until it drops.
pub struct InProcessListing {
    address: String,
    outputs: MapOutputs,
}

impl Drop for InProcessListing {
    fn drop(&mut self) {
        let mut listed = in_process();
        // A worker started since at the same address keeps its own listing.
        if listed
            .get(&self.address)
            .is_some_and(|outputs| Arc::ptr_eq(&outputs.runs, &self.outputs.runs))
        {
            listed.remove(&self.address);
        }
    }
}

impl MapOutputs {
    /// Serves `run`, the output of map `attempt` of `job`, to fetches that carry `secret`.
    pub fn insert(&self, job: &str, attempt: u64, run: Run, secret: &str) {
        self.lock()
            .insert((job.to_string(), attempt), (run, secret.to_string()));
    }

    /// Lists these outputs, of the worker that advertises `address`, for the reduces of this
    /// process until the listing drops: see [`MapOutputs::in_process`].
    pub fn list_in_process(&self, address: &str) -> InProcessListing {
        in_process().insert(address.to_string(), self.clone());
        InProcessListing {
            address: address.to_string(),
            outputs: self.clone(),
        }
    }

    /// The output of map `attempt` of `job` held by the worker at `address`, if that worker
    /// runs in this process and `secret` is the job's. A reduce reads such an output from its
    /// file rather than through gRPC, as Spark reads its local shuffle blocks: each worker's own
    /// outputs, and in `quern run`'s embedded cluster every output, are neither streamed through
    /// HTTP/2 nor written again to the reduce's directory.
    pub fn in_process(address: &str, job: &str, attempt: u64, secret: &str) -> Option<Run> {
        let outputs = in_process().get(address)?.clone();
        outputs.get(job, attempt, secret)
    }

    /// Jobs with map outputs here.
    pub fn jobs(&self) -> Vec<String> {
        let mut jobs: Vec<String> = self.lock().keys().map(|(job, _)| job.clone()).collect();
        jobs.sort();
        jobs.dedup();
        jobs
    }

    /// The map outputs held, by job, for a registration.
    pub fn held(&self) -> Vec<HeldMapOutputs> {
        let mut by_job: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for (job, attempt) in self.lock().keys() {
            by_job.entry(job.clone()).or_default().push(*attempt);
        }
        by_job
            .into_iter()
            .map(|(job_id, mut map_attempt_ids)| {
                map_attempt_ids.sort_unstable();
                HeldMapOutputs {
                    job_id,
                    map_attempt_ids,
                }
            })
            .collect()
    }

    /// Forgets a finished job's map outputs; the caller deletes the files.
    pub fn remove_job(&self, job: &str) {
        self.lock().retain(|(j, _), _| j != job);
    }

    /// The output of map `attempt` of `job`, if it is here and `secret` is its job's.
    fn get(&self, job: &str, attempt: u64, secret: &str) -> Option<Run> {
        let runs = self.lock();
        let (run, expected) = runs.get(&(job.to_string(), attempt))?;
        bool::from(expected.as_bytes().ct_eq(secret.as_bytes())).then(|| run.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Held> {
        self.runs.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub struct ShuffleService {
    pub outputs: MapOutputs,
}

#[tonic::async_trait]
impl Shuffle for ShuffleService {
    type FetchPartitionStream = ReceiverStream<Result<FetchChunk, Status>>;

    async fn fetch_partition(
        &self,
        request: Request<FetchRequest>,
    ) -> Result<Response<Self::FetchPartitionStream>, Status> {
        let request = request.into_inner();
        // A wrong secret gets the same answer as a missing output: nothing to learn from it.
        let run = self
            .outputs
            .get(&request.job_id, request.map_attempt_id, &request.job_secret)
            .ok_or_else(|| {
                Status::not_found(format!(
                    "no map output of {} attempt {} on this worker",
                    request.job_id, request.map_attempt_id
                ))
            })?;
        let partition = request.partition;
        let (start, total, crc) = run
            .partition(partition)
            .ok_or_else(|| no_partition(partition))?;
        let (sender, receiver) = mpsc::channel(2);
        tokio::spawn(async move {
            if let Err(e) = stream_partition(&run.path, (start, total, crc), &sender).await {
                let _ = sender.send(Err(unreadable(&run.path, e))).await;
            }
        });
        Ok(Response::new(ReceiverStream::new(receiver)))
    }
}

/// The answer to a fetch of a partition the map output does not have.
pub fn no_partition(partition: u32) -> Status {
    Status::invalid_argument(format!("no partition {partition} in the map output"))
}

/// The answer to a fetch of a map output that cannot be read.
pub fn unreadable(path: &Path, e: std::io::Error) -> Status {
    Status::internal(format!("cannot read {}: {e}", path.display()))
}

/// Streams the bytes of `path` at `(start, total)`, sending `crc` with the first chunk.
async fn stream_partition(
    path: &Path,
    (start, total, crc): (u64, u64, u32),
    sender: &mpsc::Sender<Result<FetchChunk, Status>>,
) -> std::io::Result<()> {
    let mut file = tokio::fs::File::open(path).await?;
    file.seek(std::io::SeekFrom::Start(start)).await?;
    let mut left = total;
    // The first chunk goes even for an empty partition: it carries the checksum.
    let mut first = true;
    while left > 0 || first {
        let mut chunk = vec![0u8; CHUNK.min(left as usize)];
        file.read_exact(&mut chunk).await?;
        left -= chunk.len() as u64;
        let mut message = FetchChunk {
            data: Bytes::from(chunk),
            ..FetchChunk::default()
        };
        if std::mem::take(&mut first) {
            message.crc32c = crc;
            message.partition_bytes = total;
        }
        if sender.send(Ok(message)).await.is_err() {
            break; // the reducer went away
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_map_output_is_served_only_to_a_fetch_with_its_jobs_secret() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("output");
        std::fs::write(&path, b"word\t1\n").unwrap();
        let run = Run {
            path,
            offsets: vec![0, 7],
            crcs: vec![crc32c::crc32c(b"word\t1\n")],
            codec: crate::codec::Codec::None,
        };
        let service = ShuffleService {
            outputs: MapOutputs::default(),
        };
        service
            .outputs
            .insert("job-1-0001", 7, run, "the-job-secret");
        let fetch = |secret: &str| FetchRequest {
            job_id: "job-1-0001".into(),
            map_attempt_id: 7,
            partition: 0,
            job_secret: secret.into(),
        };
        for wrong in ["", "another-job-secret"] {
            let refused = service.fetch_partition(Request::new(fetch(wrong))).await;
            assert_eq!(refused.err().map(|s| s.code()), Some(tonic::Code::NotFound));
        }
        let served = service.fetch_partition(Request::new(fetch("the-job-secret")));
        assert!(served.await.is_ok());
    }
}
