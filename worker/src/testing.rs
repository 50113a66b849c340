//! Test support for the worker's unit tests: serving fake peers, peers that never answer, and a
//! job whose map and reduce are slow and counted, or broken on purpose.

use crate::context::{Context, lazy_channel};
use quern_sdk::engine::{LineSource, MapSink, TextSink, ValueStream};
use quern_sdk::{JobEngine, JobError, JobRegistry};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

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
        lazy_channel(coordinator).unwrap(),
    )
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
    pub partition: Option<u32>,
}

impl Default for TestJob {
    fn default() -> Self {
        TestJob {
            inner: Arc::new(quern_examples::wordcount::job()),
            calls: Arc::default(),
            delay: Duration::ZERO,
            fail_map: false,
            partition: None,
        }
    }
}

impl TestJob {
    pub const NAME: &str = "test-job";

    fn tick(&self) {
        std::thread::sleep(self.delay);
        self.calls.fetch_add(1, Ordering::SeqCst);
    }
}

struct CountedLines<'a> {
    job: &'a TestJob,
    lines: &'a mut dyn LineSource,
}

impl LineSource for CountedLines<'_> {
    fn next_line(&mut self) -> Result<Option<(u64, &[u8])>, JobError> {
        self.job.tick();
        self.lines.next_line()
    }
}

impl JobEngine for TestJob {
    fn name(&self) -> &str {
        Self::NAME
    }
    fn map(&self, lines: &mut dyn LineSource, sink: &mut dyn MapSink) -> Result<(), JobError> {
        if self.fail_map {
            return Err(JobError::user("this mapper always fails"));
        }
        self.inner.map(&mut CountedLines { job: self, lines }, sink)
    }
    fn partition(&self, key: &[u8], partitions: u32) -> u32 {
        self.partition
            .unwrap_or_else(|| self.inner.partition(key, partitions))
    }
    fn has_combiner(&self) -> bool {
        self.inner.has_combiner()
    }
    fn combine(
        &self,
        key: &[u8],
        values: &mut dyn ValueStream,
        out: &mut Vec<u8>,
    ) -> Result<(), JobError> {
        self.inner.combine(key, values, out)
    }
    fn reduce(
        &self,
        key: &[u8],
        values: &mut dyn ValueStream,
        out: &mut TextSink,
    ) -> Result<u64, JobError> {
        self.tick();
        self.inner.reduce(key, values, out)
    }
}
