//! The Quern coordinator: accepts jobs, splits their input, hands tasks to workers, watches
//! heartbeats, runs lost work again and commits the output.
//!
//! - [`split`]: input objects → splits (one per map task): byte ranges, or small objects packed.
//! - [`job`]: one job's tasks, attempt history and counters.
//! - [`state`]: the state machine over jobs, workers and attempts.
//! - [`schedule`]: hands runnable tasks to free worker slots.
//! - [`map_events`]: where map outputs are, as events reduces read from a cursor on.
//! - [`session`]: worker identity: the secret every call of a worker carries.
//! - [`heartbeat`]: worker liveness; lost workers' work runs again.
//! - [`speculate`]: backup attempts for stragglers near the end of a phase.
//! - [`progress`]: attempts that stop making progress (the task timeout).
//! - [`failure`]: attempts that fail or lose their worker: retry, exclusion, or a failed job.
//! - [`fetch_failure`]: whether a map output holder or the reduce that reported it is at fault.
//! - [`commit`]: `_SUCCESS` once every partition committed.
//! - [`retention`]: finished jobs are forgotten after a count or an age.
//! - [`status`]: job and cluster status for clients.
//! - [`wire`]: wire ids to typed ids, once, at the edge.
//! - [`resume`]: a restarted coordinator picks up the jobs its journal holds.
//! - [`journal`]: what survives a restart (`--state-dir`), kept in a [`journal_store`].
//! - [`service`]: the gRPC service over all of the above.
//! - [`http`]: the status page, its JSON API and Prometheus metrics (`--http`); [`metrics`]:
//!   what the state machine counts for them.
//! - [`error`]: what the coordinator refuses, and its gRPC codes.

pub mod commit;
pub mod error;
mod failpoint;
pub mod failure;
pub mod fetch_failure;
pub mod heartbeat;
pub mod http;
pub mod job;
pub mod journal;
pub mod journal_store;
pub mod map_events;
pub mod metrics;
pub mod progress;
pub mod resume;
pub mod retention;
pub mod sample;
pub mod schedule;
pub mod service;
pub mod session;
pub mod speculate;
pub mod split;
pub mod state;
pub mod status;
#[cfg(test)]
mod testing;
pub mod wire;

use quern_proto::auth::RequireToken;
use quern_proto::coordinator_server::CoordinatorServer;
use service::CoordinatorService;
use std::future::Future;
use std::time::Duration;
use tokio::net::TcpListener;
use tonic::service::InterceptorLayer;
use tonic::transport::server::TcpIncoming;

/// Largest gRPC response: a reduce's map output locations grow with the map count.
pub const MAX_MESSAGE_BYTES: usize = 256 << 20;
/// Largest request the coordinator takes: every request is small (the biggest, a registration
/// listing a worker's held map outputs, is a few hundred KB on a paper-sized job). A larger one
/// is refused from its length prefix, before its body is buffered.
pub const MAX_REQUEST_BYTES: usize = 4 << 20;
/// Calls in flight on one connection; more wait their turn, so one client cannot take every
/// handler.
const CALLS_PER_CONNECTION: usize = 256;
/// Longest a call may take to be answered (a commit waits for the storage, bounded by its own
/// timeout, so this is well past it); streams, once answered, are not cut.
const HANDLER_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    /// How often workers heartbeat.
    pub heartbeat_interval: Duration,
    /// A worker silent this long is dead.
    pub worker_timeout: Duration,
    /// Bound on listing input and checking output at submit.
    pub storage_timeout: Duration,
    /// A job's task timeout unless it sets its own: an attempt with no progress this long fails.
    pub task_timeout: Duration,
    /// Whether jobs launch backup attempts for stragglers unless they say otherwise.
    pub speculative: bool,
    /// How many finished jobs, and for how long, status can still show.
    pub retention: retention::Retention,
    /// Where the journal lives, so that jobs survive a restart; None: in memory only.
    pub state_dir: Option<std::path::PathBuf>,
    /// The cluster token every call must carry; None: calls are not authenticated.
    pub token: Option<quern_proto::auth::Token>,
    /// The certificate and key to serve TLS with; None: plain text.
    pub tls: Option<tonic::transport::ServerTlsConfig>,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        CoordinatorConfig {
            heartbeat_interval: Duration::from_secs(1),
            worker_timeout: Duration::from_secs(10),
            storage_timeout: Duration::from_secs(30),
            task_timeout: Duration::from_secs(600),
            speculative: true,
            retention: retention::Retention::default(),
            state_dir: None,
            token: None,
            tls: None,
        }
    }
}

/// Serves the coordinator on `listener` until `stop` completes. With a state directory, the
/// jobs its journal holds run again first, under their own ids.
pub async fn serve(
    listener: TcpListener,
    config: CoordinatorConfig,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    serve_with_page(listener, config, None, stop).await
}

/// Like [`serve`], with the status page too, if given; it stops with the coordinator.
pub async fn serve_with_page(
    listener: TcpListener,
    config: CoordinatorConfig,
    page: Option<http::StatusPage>,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let require_token = RequireToken(config.token.clone());
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = config.tls.clone() {
        builder = builder.tls_config(tls)?;
    }
    let (service, unfinished) = CoordinatorService::open(config)?;
    service.resume(unfinished).await;
    let reaper = tokio::spawn(reap_dead_workers(service.clone()));
    let (page_stop, page_stopped) = tokio::sync::oneshot::channel::<()>();
    let page = page.map(|page| {
        let stopped = async {
            let _ = page_stopped.await;
        };
        tokio::spawn(page.serve(service.clone(), stopped))
    });
    let server = CoordinatorServer::new(service)
        .max_decoding_message_size(MAX_REQUEST_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    // One layer over the whole server: every method, of every service, needs the token.
    let result = builder
        .concurrency_limit_per_connection(CALLS_PER_CONNECTION)
        .timeout(HANDLER_TIMEOUT)
        .layer(InterceptorLayer::new(require_token))
        .add_service(server)
        .serve_with_incoming_shutdown(incoming(listener), stop)
        .await;
    reaper.abort();
    let _ = page_stop.send(());
    if let Some(page) = page {
        // Open browser connections may hold it up; they get a moment, not a veto.
        let _ = tokio::time::timeout(Duration::from_secs(1), page).await;
    }
    Ok(result?)
}

/// Accepted connections with Nagle's algorithm off: small gRPC frames (assignments, reports) must
/// not wait ~40 ms for a delayed ACK.
pub fn incoming(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener).with_nodelay(Some(true))
}

/// Declares silent workers dead and hung attempts failed, starts backups, and retires finished
/// jobs, a few times per worker timeout. A round that comes more than half a worker timeout after
/// the last means the coordinator stood still in between: workers are not blamed for that time
/// (see [`state::State::excuse_stall`]).
async fn reap_dead_workers(service: CoordinatorService) {
    let timeout = service.config().worker_timeout;
    let mut tick = tokio::time::interval((timeout / 4).max(Duration::from_millis(10)));
    let mut last_round = std::time::Instant::now();
    loop {
        tick.tick().await;
        let now = std::time::Instant::now();
        let stood_still = now.duration_since(last_round);
        last_round = now;
        let actions = {
            let mut state = service.lock();
            if stood_still > timeout / 2 {
                tracing::warn!(stood_still = ?stood_still, "the coordinator stood still; every worker gets a fresh timeout");
                state.excuse_stall(now);
            }
            let mut actions = state.reap(timeout);
            actions.extend(state.time_out_hung_attempts(now));
            state.speculate(now);
            state.retire_finished_jobs(service.config().retention, now);
            state.close_rejoin_window(now);
            actions
        };
        service.run_actions(actions);
    }
}
