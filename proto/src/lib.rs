//! The gRPC wire of Quern, generated from `proto/quern.proto`: the `Coordinator` service (clients
//! and workers talk to it) and the `Shuffle` service (reduce tasks fetch map output from workers),
//! and what both sides of a call share:
//!
//! - [`ids`]: the typed ids;
//! - [`backoff`]: the delays of every retry loop over the wire.

pub mod backoff;
pub mod ids;

pub use backoff::Backoff;

#[allow(clippy::all)]
pub mod v1 {
    tonic::include_proto!("quern.v1");
}

pub use v1::*;

/// An error and its causes on one line, `a: b: c`: the form errors take on the wire (status
/// messages, task reports), where a cause chain cannot travel.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
