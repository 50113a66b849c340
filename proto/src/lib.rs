//! The gRPC wire of Quern, generated from `proto/quern.proto`: the `Coordinator` service (clients
//! and workers talk to it) and the `Shuffle` service (reduce tasks fetch map output from workers).
#![allow(clippy::all)]

pub mod v1 {
    tonic::include_proto!("quern.v1");
}

pub use v1::*;
