//! The gRPC wire of Quern, generated from `proto/quern.proto`: the `Coordinator` service (clients
//! and workers talk to it) and the `Shuffle` service (reduce tasks fetch map output from workers),
//! and what both sides of a call share:
//!
//! - [`auth`]: the cluster token every call carries and every server checks;
//! - [`ids`]: the typed ids;
//! - [`tls`]: TLS for servers (certificate, key) and clients (a private CA, or the system's roots);
//! - [`backoff`]: the delays of every retry loop over the wire;
//! - [`error_text`]: errors on one line, as users and the wire see them;
//! - [`names`]: the words people read for states, kinds and tasks;
//! - [`failpoint`]: test only, the marker files and stops of the test failpoints.

pub mod auth;
pub mod backoff;
pub mod error_text;
pub mod failpoint;
pub mod ids;
pub mod names;
pub mod tls;

pub use backoff::Backoff;
pub use error_text::{error_chain, source_chain};

#[allow(clippy::all)]
pub mod v1 {
    tonic::include_proto!("quern.v1");
}

pub use v1::*;

/// The gRPC metadata header in which a worker sends its registration's session secret.
pub const SESSION_HEADER: &str = "quern-session";
