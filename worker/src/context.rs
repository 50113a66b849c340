//! What every task of this worker shares: the jobs it carries, its map outputs, its local work
//! directory, and gRPC channels to the coordinator and to peer workers.

use crate::error::TaskError;
use crate::map_input::map_input;
use crate::map_locations::JobViews;
use crate::shuffle_fetch::FETCH_IDLE_TIMEOUT;
use crate::shuffle_server::MapOutputs;
use quern_proto::Assignment;
use quern_proto::SESSION_HEADER;
use quern_proto::auth::{SendToken, Token};
use quern_proto::coordinator_client::CoordinatorClient;
use quern_proto::shuffle_client::ShuffleClient;
use quern_proto::tls::ClientTls;
use quern_sdk::{JobEngine, JobRegistry, Params, TaskContext};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// Largest gRPC message either way (map output locations grow with the map count).
pub const MAX_MESSAGE_BYTES: usize = 256 << 20;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// An HTTP/2 ping goes to every peer this often, busy or idle...
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
/// ...and a peer that does not answer one within this is dead: its calls fail, and the channel
/// connects again on next use. Without it, a call to a machine that vanished (power loss, a
/// network partition, a stopped process) waits forever: TCP alone never notices.
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Context {
    pub registry: JobRegistry,
    pub outputs: MapOutputs,
    /// What this worker's reduces have learnt of where each job's map outputs are.
    pub map_output_views: JobViews,
    pub work_dir: PathBuf,
    /// How long a shuffle fetch waits for the next chunk before failing; tests shorten it.
    pub fetch_idle_timeout: Duration,
    coordinator: Channel,
    /// The cluster token and this worker's session secret, sent with every coordinator call.
    headers: CoordinatorHeaders,
    /// How calls to `https://` peers check their certificates.
    tls: ClientTls,
    peers: Mutex<HashMap<String, Channel>>,
}

/// The coordinator client of a worker: its calls carry the cluster token and the session secret.
pub type CoordinatorCalls = CoordinatorClient<InterceptedService<Channel, CoordinatorHeaders>>;
/// A shuffle client for a peer worker: its calls carry the cluster token.
pub type PeerCalls = ShuffleClient<InterceptedService<Channel, SendToken>>;

/// Puts the cluster token and the worker's current session secret in each coordinator call's
/// metadata.
#[derive(Clone, Default)]
pub struct CoordinatorHeaders {
    token: SendToken,
    session: Arc<RwLock<Option<MetadataValue<Ascii>>>>,
}

impl Interceptor for CoordinatorHeaders {
    fn call(&mut self, request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let mut request = self.token.call(request)?;
        let session = self
            .session
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(session) = session {
            request.metadata_mut().insert(SESSION_HEADER, session);
        }
        Ok(request)
    }
}

impl Context {
    /// `token`: the cluster token every call of this worker carries, if the cluster has one;
    /// `tls`: how calls to `https://` peers check their certificates.
    pub fn new(
        registry: JobRegistry,
        work_dir: PathBuf,
        coordinator: Channel,
        token: Option<Token>,
        tls: ClientTls,
    ) -> Self {
        Context {
            registry,
            outputs: MapOutputs::default(),
            map_output_views: JobViews::default(),
            work_dir,
            fetch_idle_timeout: FETCH_IDLE_TIMEOUT,
            coordinator,
            headers: CoordinatorHeaders {
                token: SendToken(token),
                session: Arc::default(),
            },
            tls,
            peers: Mutex::default(),
        }
    }

    pub fn coordinator(&self) -> CoordinatorCalls {
        CoordinatorClient::with_interceptor(self.coordinator.clone(), self.headers.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }

    /// Sends `session`, the secret of a new registration, with every later coordinator call.
    pub fn set_session(&self, session: &str) -> Result<(), tonic::Status> {
        let value = session.parse::<MetadataValue<Ascii>>().map_err(|_| {
            tonic::Status::invalid_argument(
                "the coordinator sent a session secret that is not text",
            )
        })?;
        *self
            .headers
            .session
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(value);
        Ok(())
    }

    /// The job `assignment` belongs to, built from its parameters, and the task's context for
    /// job code.
    pub fn job(
        &self,
        assignment: &Assignment,
    ) -> Result<(Arc<dyn JobEngine>, TaskContext), TaskError> {
        let params = Params::new(assignment.params.clone());
        let job = self
            .registry
            .build(&assignment.job_name, &params)
            .ok_or_else(|| TaskError::UnknownJob {
                name: assignment.job_name.clone(),
            })??;
        let task = TaskContext {
            job_id: assignment.job_id.clone(),
            task: assignment.task,
            attempt: assignment.attempt_id,
            partitions: assignment.reducers,
            input: map_input(assignment),
            cut_points: Arc::new(assignment.cut_points.clone()),
            ..TaskContext::with_params(params)
        };
        Ok((job, task))
    }

    /// A shuffle client for the worker at `address`; channels are made once and reused.
    pub fn peer(&self, address: &str) -> Result<PeerCalls, tonic::Status> {
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        let channel = match peers.get(address) {
            Some(channel) => channel.clone(),
            None => {
                let channel = lazy_channel(address, &self.tls).map_err(|e| {
                    tonic::Status::invalid_argument(format!("bad peer address {address}: {e}"))
                })?;
                peers.insert(address.to_string(), channel.clone());
                channel
            }
        };
        Ok(ShuffleClient::with_interceptor(
            channel,
            self.headers.token.clone(),
        ))
    }
}

/// A channel that connects on first use and reconnects after failures; with TLS if `address` is
/// an `https://` URL.
pub fn lazy_channel(address: &str, tls: &ClientTls) -> Result<Channel, tonic::transport::Error> {
    Ok(tls
        .endpoint(address)?
        .connect_timeout(CONNECT_TIMEOUT)
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(true)
        .tcp_nodelay(true)
        .connect_lazy())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{black_hole, context};
    use std::time::Instant;

    /// A coordinator (or peer) that accepted the connection and then went silent: the call fails
    /// once a keepalive ping goes unanswered, instead of waiting forever.
    #[tokio::test]
    async fn a_call_to_a_silent_peer_fails_instead_of_hanging() {
        let work = tempfile::tempdir().unwrap();
        let ctx = context(&black_hole(), work.path(), JobRegistry::new());
        let started = Instant::now();
        let mut coordinator = ctx.coordinator();
        let call = coordinator.leave(quern_proto::LeaveRequest::default());
        let bound = KEEPALIVE_INTERVAL + KEEPALIVE_TIMEOUT + Duration::from_secs(10);
        match tokio::time::timeout(bound, call).await {
            Ok(Err(status)) => assert_eq!(status.code(), tonic::Code::Unavailable, "{status}"),
            Ok(Ok(_)) => panic!("a black hole answered"),
            Err(_) => panic!("still waiting after {:?}", started.elapsed()),
        }
    }
}
