//! What every task of this worker shares: the jobs it carries, its map outputs, its local work
//! directory, and gRPC channels to the coordinator and to peer workers.

use crate::error::TaskError;
use crate::shuffle_server::MapOutputs;
use quern_proto::coordinator_client::CoordinatorClient;
use quern_proto::shuffle_client::ShuffleClient;
use quern_sdk::{JobEngine, JobRegistry};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};

/// Largest gRPC message either way (map output locations grow with the map count).
pub const MAX_MESSAGE_BYTES: usize = 256 << 20;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Context {
    pub registry: JobRegistry,
    pub outputs: MapOutputs,
    pub work_dir: PathBuf,
    coordinator: Channel,
    peers: Mutex<HashMap<String, Channel>>,
}

impl Context {
    pub fn new(registry: JobRegistry, work_dir: PathBuf, coordinator: Channel) -> Self {
        Context {
            registry,
            outputs: MapOutputs::default(),
            work_dir,
            coordinator,
            peers: Mutex::default(),
        }
    }

    pub fn coordinator(&self) -> CoordinatorClient<Channel> {
        CoordinatorClient::new(self.coordinator.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }

    pub fn job(&self, name: &str) -> Result<Arc<dyn JobEngine>, TaskError> {
        self.registry
            .get(name)
            .ok_or_else(|| TaskError::UnknownJob {
                name: name.to_string(),
            })
    }

    /// A shuffle client for the worker at `address`; channels are made once and reused.
    pub fn peer(&self, address: &str) -> Result<ShuffleClient<Channel>, tonic::Status> {
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        let channel = match peers.get(address) {
            Some(channel) => channel.clone(),
            None => {
                let channel = lazy_channel(address).map_err(|e| {
                    tonic::Status::invalid_argument(format!("bad peer address {address}: {e}"))
                })?;
                peers.insert(address.to_string(), channel.clone());
                channel
            }
        };
        Ok(ShuffleClient::new(channel))
    }
}

/// A channel that connects on first use and reconnects after failures.
pub fn lazy_channel(address: &str) -> Result<Channel, tonic::transport::Error> {
    Ok(Endpoint::from_shared(address.to_string())?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .connect_lazy())
}
