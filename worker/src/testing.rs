//! Test support for the worker's unit tests: a fake coordinator, fake peers, peers that never
//! answer, and a job whose map and reduce are slow and counted, or broken on purpose.

use crate::context::{Context, lazy_channel};
use quern_proto::coordinator_server::{Coordinator, CoordinatorServer};
use quern_proto::tls::ClientTls;
use quern_proto::*;
use quern_sdk::engine::{MapSink, RecordSource, TextSink, ValueStream};
use quern_sdk::{JobEngine, JobError, JobRegistry, TaskContext};
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tonic::{Request, Response, Status};

/// Waits (up to 10 s) for `path` to disappear; panics if it does not.
pub async fn wait_until_gone(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while path.exists() {
        assert!(Instant::now() < deadline, "{} still exists", path.display());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An address that accepts TCP connections and then never says anything: a peer that died
/// without closing its connections, as far as the caller can tell.
pub fn black_hole() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            held.push(stream);
        }
    });
    address
}

/// Serves `router` on a loopback port; returns its URL.
pub async fn serve(router: tonic::transport::server::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(
        router.serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    address
}

/// A worker context talking to the coordinator at `coordinator`, with `registry`'s jobs.
pub fn context(coordinator: &str, work_dir: &Path, registry: JobRegistry) -> Context {
    Context::new(
        registry,
        work_dir.to_path_buf(),
        lazy_channel(coordinator, &ClientTls::default()).unwrap(),
        None,
        ClientTls::default(),
    )
}

/// A coordinator that knows where map outputs are and grants every commit (unless told
/// otherwise); nothing else.
#[derive(Default, Clone)]
pub struct FakeCoordinator {
    pub locations: Vec<MapOutputLocation>,
    /// The commit requests it received, recorded as they arrive.
    pub commits: Arc<Mutex<Vec<CommitRequest>>>,
    /// Commits are refused rather than granted.
    pub refuse_commits: bool,
    /// If set, each commit is answered only once it takes a permit from here.
    pub commit_gate: Option<Arc<tokio::sync::Semaphore>>,
}

impl FakeCoordinator {
    pub fn new(locations: Vec<MapOutputLocation>) -> Self {
        FakeCoordinator {
            locations,
            ..FakeCoordinator::default()
        }
    }

    pub async fn serve(self) -> String {
        serve(tonic::transport::Server::builder().add_service(CoordinatorServer::new(self))).await
    }
}

type Stream<T> = Pin<Box<dyn futures::Stream<Item = Result<T, Status>> + Send>>;

fn unimplemented<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented("not in the fake coordinator"))
}

#[tonic::async_trait]
impl Coordinator for FakeCoordinator {
    type AssignmentsStream = Stream<Assignment>;

    async fn submit_job(
        &self,
        _: Request<SubmitJobRequest>,
    ) -> Result<Response<SubmitJobResponse>, Status> {
        unimplemented()
    }
    async fn get_job(&self, _: Request<GetJobRequest>) -> Result<Response<JobStatus>, Status> {
        unimplemented()
    }
    async fn list_jobs(
        &self,
        _: Request<ListJobsRequest>,
    ) -> Result<Response<ListJobsResponse>, Status> {
        unimplemented()
    }
    async fn cluster_status(
        &self,
        _: Request<ClusterStatusRequest>,
    ) -> Result<Response<ClusterStatusResponse>, Status> {
        unimplemented()
    }
    async fn register_worker(
        &self,
        _: Request<RegisterWorkerRequest>,
    ) -> Result<Response<RegisterWorkerResponse>, Status> {
        unimplemented()
    }
    type HeartbeatsStream = Stream<HeartbeatResponse>;
    async fn heartbeats(
        &self,
        _: Request<tonic::Streaming<HeartbeatRequest>>,
    ) -> Result<Response<Self::HeartbeatsStream>, Status> {
        unimplemented()
    }
    async fn assignments(
        &self,
        _: Request<AssignmentsRequest>,
    ) -> Result<Response<Self::AssignmentsStream>, Status> {
        unimplemented()
    }
    async fn report_task(
        &self,
        _: Request<TaskReport>,
    ) -> Result<Response<ReportTaskResponse>, Status> {
        unimplemented()
    }
    async fn map_output_locations(
        &self,
        _: Request<MapOutputLocationsRequest>,
    ) -> Result<Response<MapOutputLocationsResponse>, Status> {
        // Every output done, one event each, each holder named once: one complete page.
        let mut events = MapOutputEvents {
            next_event: self.locations.len() as u64,
            ..MapOutputEvents::default()
        };
        for l in &self.locations {
            let holder = match events.holders.iter().position(|h| h.address == l.address) {
                Some(holder) => holder,
                None => {
                    events.holders.push(MapOutputHolder {
                        address: l.address.clone(),
                        worker_id: l.worker_id.clone(),
                    });
                    events.holders.len() - 1
                }
            };
            events.map_tasks.push(l.map_task);
            events.attempt_ids.push(l.attempt_id);
            events.holder_of.push(holder as u32);
        }
        Ok(Response::new(MapOutputLocationsResponse {
            events: prost::Message::encode_to_vec(&events).into(),
            complete: true,
        }))
    }
    async fn report_fetch_failure(
        &self,
        _: Request<FetchFailureReport>,
    ) -> Result<Response<FetchFailureResponse>, Status> {
        // No map runs again here: the reduce stops with the fetch error.
        Ok(Response::new(FetchFailureResponse { keep_going: false }))
    }
    async fn leave(&self, _: Request<LeaveRequest>) -> Result<Response<LeaveResponse>, Status> {
        Ok(Response::new(LeaveResponse {}))
    }
    async fn open_upload(
        &self,
        _: Request<OpenUploadRequest>,
    ) -> Result<Response<OpenUploadResponse>, Status> {
        Ok(Response::new(OpenUploadResponse::default()))
    }
    async fn commit_task(
        &self,
        request: Request<CommitRequest>,
    ) -> Result<Response<CommitResponse>, Status> {
        self.commits
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(request.into_inner());
        if let Some(gate) = &self.commit_gate {
            gate.acquire().await.unwrap().forget();
        }
        Ok(Response::new(CommitResponse {
            committed: !self.refuse_commits,
        }))
    }
}

/// Word count, slowed down and observed: every line mapped and every key group reduced adds
/// one to `calls` after sleeping `delay`. `fail_map` makes the mapper fail at once; `partition`
/// replaces the partitioner's answer.
#[derive(Clone)]
pub struct TestJob {
    pub inner: Arc<dyn JobEngine>,
    pub calls: Arc<AtomicU64>,
    pub delay: Duration,
    pub fail_map: bool,
    /// The mapper panics, as buggy job code does.
    pub panic_map: bool,
    pub partition: Option<u32>,
}

impl Default for TestJob {
    fn default() -> Self {
        TestJob {
            inner: Arc::new(quern_examples::wordcount::job()),
            calls: Arc::default(),
            delay: Duration::ZERO,
            fail_map: false,
            panic_map: false,
            partition: None,
        }
    }
}

impl TestJob {
    pub const NAME: &str = "test-job";

    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    pub fn registry(&self) -> JobRegistry {
        let mut registry = JobRegistry::new();
        registry.register(self.clone());
        registry
    }

    fn tick(&self) {
        std::thread::sleep(self.delay);
        self.calls.fetch_add(1, Ordering::SeqCst);
    }
}

struct CountedLines<'a> {
    job: &'a TestJob,
    lines: &'a mut dyn RecordSource,
}

impl RecordSource for CountedLines<'_> {
    fn next_record(&mut self) -> Result<Option<(u64, &[u8])>, JobError> {
        self.job.tick();
        self.lines.next_record()
    }
}

impl JobEngine for TestJob {
    fn name(&self) -> &str {
        Self::NAME
    }
    fn map(
        &self,
        ctx: &TaskContext,
        lines: &mut dyn RecordSource,
        sink: &mut dyn MapSink,
    ) -> Result<u64, JobError> {
        if self.fail_map {
            return Err(JobError::user("this mapper always fails"));
        }
        if self.panic_map {
            panic!("this mapper always panics");
        }
        self.inner
            .map(ctx, &mut CountedLines { job: self, lines }, sink)
    }
    fn partition(&self, ctx: &TaskContext, key: &[u8], partitions: u32) -> u32 {
        self.partition
            .unwrap_or_else(|| self.inner.partition(ctx, key, partitions))
    }
    fn group_prefix(&self, key: &[u8]) -> Result<usize, JobError> {
        self.inner.group_prefix(key)
    }
    fn input_format(&self) -> quern_sdk::InputFormat {
        self.inner.input_format()
    }
    fn has_combiner(&self) -> bool {
        self.inner.has_combiner()
    }
    fn combine(
        &self,
        ctx: &TaskContext,
        key: &[u8],
        values: &mut dyn ValueStream,
        out: &mut Vec<u8>,
    ) -> Result<(), JobError> {
        self.inner.combine(ctx, key, values, out)
    }
    fn start_reduce(&self, ctx: &TaskContext) -> Result<(), JobError> {
        self.inner.start_reduce(ctx)
    }
    fn finish_reduce(&self, ctx: &TaskContext, out: &mut TextSink) -> Result<u64, JobError> {
        self.inner.finish_reduce(ctx, out)
    }
    fn reduce(
        &self,
        ctx: &TaskContext,
        key: &[u8],
        values: &mut dyn ValueStream,
        out: &mut TextSink,
    ) -> Result<u64, JobError> {
        self.tick();
        self.inner.reduce(ctx, key, values, out)
    }
}
