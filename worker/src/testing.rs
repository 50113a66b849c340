//! Test support for the worker's unit tests: serving fake peers, and peers that never answer.

use crate::context::{Context, lazy_channel};
use quern_sdk::JobRegistry;
use std::path::Path;

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
