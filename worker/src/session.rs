//! The worker's life: bind the shuffle service, register with the coordinator (retrying with
//! backoff while it is unreachable), then take assignments from the coordinator's stream and
//! heartbeat, registering again whenever the coordinator forgets this worker.

use crate::context::{Context, lazy_channel};
use crate::shuffle_server::ShuffleService;
use crate::task::Running;
use crate::work_dir::OwnWorkDir;
use quern_proto::Backoff;
use quern_proto::auth::{RequireToken, Token};
use quern_proto::ids::JobId;
use quern_proto::shuffle_server::ShuffleServer;
use quern_proto::tls::ClientTls;
use quern_proto::{AssignmentsRequest, HeartbeatRequest, LeaveRequest, RegisterWorkerRequest};
use quern_sdk::JobRegistry;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::service::InterceptorLayer;
use tonic::transport::ServerTlsConfig;
use tonic::transport::server::TcpIncoming;

/// A fetch request names a job, an attempt and a partition: a few hundred bytes at most. A
/// larger one is refused before its body is buffered.
const MAX_FETCH_REQUEST_BYTES: usize = 64 << 10;
/// Heartbeats waiting to go out on the stream: more means the stream is stalled, and a newer
/// beat will say the same.
const HEARTBEATS_QUEUED: usize = 2;
const FIRST_RETRY: Duration = Duration::from_millis(100);
const MAX_RETRY: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// The coordinator's URL, `http://host:port`.
    pub coordinator: String,
    /// Where the shuffle service listens; port 0 picks a free one.
    pub listen: SocketAddr,
    /// The host name or IP other machines reach this worker at; the address the coordinator is
    /// given is `http://ADVERTISE:PORT`, PORT the one bound. Required when `listen` is a wildcard
    /// address (0.0.0.0 or ::); the bound address itself when None.
    pub advertise: Option<String>,
    /// Tasks run at once.
    pub slots: u32,
    /// Where map output goes; a fresh temporary directory (removed on exit) if None.
    pub work_dir: Option<PathBuf>,
    /// How long map outputs are kept while the coordinator is unreachable, for a restarted
    /// coordinator to adopt; past this they are deleted.
    pub orphan_grace: Duration,
    /// The cluster token: every call this worker makes carries it, and its shuffle service
    /// refuses calls without it. None: the cluster has none.
    pub token: Option<Token>,
    /// The certificate and key its shuffle service serves TLS with (it then advertises an
    /// `https://` address); None: plain text.
    pub tls: Option<ServerTlsConfig>,
    /// How it checks the certificates of the coordinator and of peers at `https://` addresses.
    pub client_tls: ClientTls,
}

/// How long a worker keeps map outputs while its coordinator is unreachable, by default.
pub const DEFAULT_ORPHAN_GRACE: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("cannot listen on {address}")]
    Listen {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create a work directory in {}", .dir.display())]
    WorkDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid coordinator address '{address}'")]
    CoordinatorAddress {
        address: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("shuffle service failed")]
    Shuffle(#[source] tonic::transport::Error),
    #[error(
        "--listen {listen} is not an address other machines can connect to; \
         pass --advertise HOST, the host name or IP they reach this worker at"
    )]
    NoAdvertisedHost { listen: SocketAddr },
    #[error("--advertise '{host}' is not a host name or IP address (give no scheme and no port)")]
    BadAdvertisedHost { host: String },
    /// The coordinator refused this worker's token, or wants one it has not: retrying cannot
    /// help.
    #[error("{0}")]
    Refused(String),
}

/// The host part of the URL this worker advertises: `config.advertise`, checked (an IPv6
/// address bracketed), or None to advertise the bound address itself.
fn advertised_host(config: &WorkerConfig) -> Result<Option<String>, WorkerError> {
    let Some(host) = &config.advertise else {
        if config.listen.ip().is_unspecified() {
            return Err(WorkerError::NoAdvertisedHost {
                listen: config.listen,
            });
        }
        return Ok(None);
    };
    let bad = || WorkerError::BadAdvertisedHost { host: host.clone() };
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return match ip {
            _ if ip.is_unspecified() => Err(bad()),
            IpAddr::V4(ip) => Ok(Some(ip.to_string())),
            IpAddr::V6(ip) => Ok(Some(format!("[{ip}]"))),
        };
    }
    let name_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_');
    if host.is_empty() || !host.chars().all(name_char) || host.starts_with(['-', '.']) {
        return Err(bad());
    }
    Ok(Some(host.clone()))
}

/// The URL the coordinator hands to reducers for this worker's map outputs: `scheme` (`https`
/// when the shuffle service serves TLS), the host, the bound port.
fn advertised_address(scheme: &str, host: Option<&str>, bound: SocketAddr) -> String {
    match host {
        Some(host) => format!("{scheme}://{host}:{}", bound.port()),
        None => format!("{scheme}://{bound}"),
    }
}

/// Runs a worker until `stop` completes.
pub async fn run(
    config: WorkerConfig,
    registry: JobRegistry,
    stop: impl Future<Output = ()>,
) -> Result<(), WorkerError> {
    crate::memory::tune_allocator();
    crate::open_files::raise_limit();
    let host = advertised_host(&config)?;
    let listener =
        TcpListener::bind(config.listen)
            .await
            .map_err(|source| WorkerError::Listen {
                address: config.listen,
                source,
            })?;
    let local = listener
        .local_addr()
        .map_err(|source| WorkerError::Listen {
            address: config.listen,
            source,
        })?;
    let (work_dir, _temporary) = work_dir(config.work_dir.clone())?;
    let channel = lazy_channel(&config.coordinator, &config.client_tls).map_err(|source| {
        WorkerError::CoordinatorAddress {
            address: config.coordinator.clone(),
            source,
        }
    })?;
    let ctx = Arc::new(Context::new(
        registry,
        work_dir,
        channel,
        config.token.clone(),
        config.client_tls.clone(),
    ));
    let shutdown = CancellationToken::new();
    let mut server = tonic::transport::Server::builder();
    if let Some(tls) = config.tls.clone() {
        server = server.tls_config(tls).map_err(WorkerError::Shuffle)?;
    }
    let shuffle = tokio::spawn(
        server
            .layer(InterceptorLayer::new(RequireToken(config.token.clone())))
            .add_service(
                ShuffleServer::new(ShuffleService {
                    outputs: ctx.outputs.clone(),
                })
                .max_decoding_message_size(MAX_FETCH_REQUEST_BYTES),
            )
            .serve_with_incoming_shutdown(
                TcpIncoming::from(listener).with_nodelay(Some(true)),
                shutdown.clone().cancelled_owned(),
            ),
    );
    let running = Running::default();
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let address = advertised_address(scheme, host.as_deref(), local);
    tracing::info!(%address, listen = %local, slots = config.slots, "worker started");
    let _listing = ctx.outputs.list_in_process(&address);
    let registered = Registration::default();
    let refused = tokio::select! {
        _ = stop => None,
        refused = serve_coordinator(ctx.clone(), running.clone(), &config, address, registered.clone()) => Some(refused),
    };
    running.cancel_all();
    leave(&ctx, &registered).await;
    shutdown.cancel();
    let served = match shuffle.await {
        Ok(result) => result.map_err(WorkerError::Shuffle),
        Err(_) => Ok(()),
    };
    match refused {
        Some(refused) => Err(refused),
        None => served,
    }
}

fn work_dir(given: Option<PathBuf>) -> Result<(PathBuf, Option<OwnWorkDir>), WorkerError> {
    match given {
        Some(dir) => {
            std::fs::create_dir_all(&dir).map_err(|source| WorkerError::WorkDir {
                dir: dir.clone(),
                source,
            })?;
            Ok((dir, None))
        }
        None => {
            // Also removes what workers killed earlier left beside it.
            let temp = std::env::temp_dir();
            let own = OwnWorkDir::create(&temp)
                .map_err(|source| WorkerError::WorkDir { dir: temp, source })?;
            Ok((own.path().to_path_buf(), Some(own)))
        }
    }
}

/// The worker id of the current registration, if any.
type Registration = Arc<std::sync::Mutex<Option<String>>>;

/// How long a stopping worker waits to tell the coordinator it is leaving.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(2);

/// Tells the coordinator this worker is going, so its work is rescheduled now, not after the
/// heartbeat timeout. Best effort: an unreachable coordinator finds out by the timeout.
async fn leave(ctx: &Context, registered: &Registration) {
    let worker_id = registered.lock().unwrap_or_else(|p| p.into_inner()).take();
    let Some(worker_id) = worker_id else {
        return;
    };
    let request = LeaveRequest { worker_id };
    match tokio::time::timeout(LEAVE_TIMEOUT, ctx.coordinator().leave(request)).await {
        Ok(Ok(_)) => tracing::info!("told the coordinator this worker is leaving"),
        Ok(Err(status)) => tracing::warn!(error = %status.message(), "cannot say goodbye"),
        Err(_) => tracing::warn!("the coordinator did not answer the goodbye"),
    }
}

/// Registers and serves sessions, backing off while the coordinator is unreachable, until the
/// coordinator refuses this worker's token. The map outputs this worker holds are listed at each
/// registration, so that a restarted coordinator can adopt them; once the coordinator has been
/// unreachable for the orphan grace, they are deleted.
async fn serve_coordinator(
    ctx: Arc<Context>,
    running: Running,
    config: &WorkerConfig,
    address: String,
    registered: Registration,
) -> WorkerError {
    let mut backoff = Backoff::exponential(FIRST_RETRY, MAX_RETRY);
    let mut reached = Instant::now();
    loop {
        let request = RegisterWorkerRequest {
            address: address.clone(),
            slots: config.slots,
            jobs: ctx.registry.names(),
            held: ctx.outputs.held(),
        };
        match ctx.coordinator().register_worker(request).await {
            Ok(response) => {
                backoff.reset();
                let response = response.into_inner();
                let interval = Duration::from_millis(response.heartbeat_interval_ms.max(10));
                if let Err(status) = ctx.set_session(&response.session) {
                    tracing::error!(error = %status.message(), "cannot use the registration");
                    tokio::time::sleep(backoff.next_delay()).await;
                    continue;
                }
                tracing::info!(worker = %response.worker_id, coordinator = %config.coordinator, "registered");
                *registered.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some(response.worker_id.clone());
                session(&ctx, &running, response.worker_id, interval).await;
                reached = Instant::now();
            }
            Err(status) => {
                let coordinator = format!("the coordinator at {}", config.coordinator);
                if let Some(refused) = quern_proto::auth::refusal(&status, &coordinator) {
                    return WorkerError::Refused(refused);
                }
                if reached.elapsed() > config.orphan_grace {
                    forget_orphans(&ctx, config.orphan_grace);
                }
                let delay = backoff.next_delay();
                tracing::warn!(
                    coordinator = %config.coordinator,
                    error = %quern_proto::error_chain(&status),
                    retry_in_ms = delay.as_millis() as u64,
                    "cannot register with the coordinator; retrying"
                );
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// One registration: runs until the assignment stream ends or the coordinator forgets us.
async fn session(ctx: &Arc<Context>, running: &Running, worker_id: String, interval: Duration) {
    let request = AssignmentsRequest {
        worker_id: worker_id.clone(),
    };
    let mut stream = match ctx.coordinator().assignments(request).await {
        Ok(response) => response.into_inner(),
        Err(status) => {
            tracing::warn!(error = %status.message(), "cannot open the assignment stream");
            return;
        }
    };
    let receive = async {
        loop {
            match stream.message().await {
                Ok(Some(assignment)) => running.start(ctx.clone(), worker_id.clone(), assignment),
                Ok(None) => return tracing::warn!("the coordinator closed the assignment stream"),
                Err(status) => {
                    return tracing::warn!(error = %status.message(), "assignment stream broke");
                }
            }
        }
    };
    tokio::select! {
        _ = receive => {}
        _ = heartbeats(ctx, running, &worker_id, interval) => {}
    }
}

/// Heartbeats on one stream until the coordinator says it does not know this worker, or the
/// stream ends (the coordinator restarted, or the connection broke): either way, the session is
/// over and the worker registers again.
async fn heartbeats(ctx: &Context, running: &Running, worker_id: &str, interval: Duration) {
    let (beats, outgoing) = mpsc::channel(HEARTBEATS_QUEUED);
    let mut answers = match ctx
        .coordinator()
        .heartbeats(ReceiverStream::new(outgoing))
        .await
    {
        Ok(response) => response.into_inner(),
        Err(status) => {
            return tracing::warn!(error = %status.message(), "cannot open the heartbeat stream");
        }
    };
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let beat = HeartbeatRequest {
                    worker_id: worker_id.to_string(),
                    running_attempts: running.attempts(),
                    held_jobs: held_jobs(ctx).await,
                };
                // A full queue means the stream is stalled: this beat would arrive stale.
                if let Err(TrySendError::Closed(_)) = beats.try_send(beat) {
                    return tracing::warn!("the heartbeat stream closed");
                }
            }
            answer = answers.message() => match answer {
                Ok(Some(answer)) if answer.reregister => {
                    return tracing::warn!(
                        "the coordinator does not know this worker; registering again"
                    );
                }
                Ok(Some(answer)) => {
                    for attempt in answer.cancel_attempts {
                        running.cancel(attempt);
                    }
                    for job in answer.finished_jobs {
                        forget_job(ctx, &job);
                    }
                }
                Ok(None) => return tracing::warn!("the coordinator ended the heartbeat stream"),
                Err(status) => {
                    return tracing::warn!(error = %status.message(), "heartbeat stream broke");
                }
            },
        }
    }
}

/// Jobs with anything on this worker's disk: map outputs it serves, or a job directory (a worker
/// that only ran reduces, or only failed attempts, still has one).
async fn held_jobs(ctx: &Context) -> Vec<String> {
    let mut jobs = ctx.outputs.jobs();
    if let Ok(mut entries) = tokio::fs::read_dir(&ctx.work_dir).await {
        while let Ok(Some(entry)) = entries.next_entry().await {
            // Only what this worker makes: directories named as job ids.
            let is_dir = entry.file_type().await.is_ok_and(|t| t.is_dir());
            let name = entry.file_name();
            if let Some(name) = name
                .to_str()
                .filter(|n| n.parse::<JobId>().is_ok() && is_dir)
            {
                jobs.push(name.to_string());
            }
        }
    }
    jobs.sort();
    jobs.dedup();
    jobs
}

/// Deletes every map output held, after the coordinator has been unreachable for `grace`: no
/// coordinator will come back for them.
fn forget_orphans(ctx: &Context, grace: Duration) {
    let jobs = ctx.outputs.jobs();
    if jobs.is_empty() {
        return;
    }
    tracing::warn!(jobs = jobs.len(), grace = %humantime::format_duration(grace), "the coordinator has been unreachable for the orphan grace; deleting the map outputs held");
    for job in jobs {
        forget_job(ctx, &job);
    }
}

/// Deletes a finished job's map outputs: they stop being served (and held) at once, and their
/// files go in the background, so that a slow disk never delays the next heartbeat. Only a job
/// id is acted on: a name from the wire reaches the disk only as one.
fn forget_job(ctx: &Context, job: &str) -> tokio::task::JoinHandle<()> {
    if job.parse::<JobId>().is_err() {
        tracing::warn!(job, "not deleting '{job}': it is not a job id");
        return tokio::spawn(async {});
    }
    ctx.outputs.remove_job(job);
    ctx.map_output_views.forget(job);
    let dir = ctx.work_dir.join(job);
    let job = job.to_string();
    tokio::spawn(async move {
        match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => tracing::debug!(job, "removed a finished job's map outputs"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(job, error = %e, "cannot remove a finished job's map outputs"),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spill::Run;
    use crate::testing::{black_hole, context, wait_until_gone};

    fn config(listen: &str, advertise: Option<&str>) -> WorkerConfig {
        WorkerConfig {
            coordinator: "http://127.0.0.1:7070".into(),
            listen: listen.parse().unwrap(),
            advertise: advertise.map(str::to_string),
            slots: 1,
            work_dir: None,
            orphan_grace: DEFAULT_ORPHAN_GRACE,
            token: None,
            tls: None,
            client_tls: ClientTls::default(),
        }
    }

    /// The address advertised for `listen` and `--advertise`, bound on port 7071.
    fn advertised(listen: &str, advertise: Option<&str>) -> Result<String, WorkerError> {
        let config = config(listen, advertise);
        let mut bound = config.listen;
        bound.set_port(7071);
        Ok(advertised_address(
            "http",
            advertised_host(&config)?.as_deref(),
            bound,
        ))
    }

    #[test]
    fn a_worker_advertises_the_given_host_with_the_bound_port() {
        let cases = [
            ("127.0.0.1:0", None, "http://127.0.0.1:7071"),
            ("[::1]:0", None, "http://[::1]:7071"),
            (
                "0.0.0.0:0",
                Some("node-3.example.com"),
                "http://node-3.example.com:7071",
            ),
            ("0.0.0.0:7071", Some("10.0.0.5"), "http://10.0.0.5:7071"),
            ("[::]:0", Some("fd00::5"), "http://[fd00::5]:7071"),
            ("[::]:0", Some("[fd00::5]"), "http://[fd00::5]:7071"),
            ("127.0.0.1:0", Some("localhost"), "http://localhost:7071"),
        ];
        for (listen, advertise, expected) in cases {
            assert_eq!(
                advertised(listen, advertise).unwrap(),
                expected,
                "{listen} {advertise:?}"
            );
        }
    }

    #[test]
    fn a_wildcard_listen_address_needs_an_advertised_host() {
        for listen in ["0.0.0.0:7071", "[::]:0"] {
            let error = advertised(listen, None).unwrap_err().to_string();
            assert!(
                error.contains(&format!(
                    "--listen {}",
                    listen.parse::<SocketAddr>().unwrap()
                )) && error.contains("--advertise HOST"),
                "{error}"
            );
        }
    }

    #[test]
    fn an_advertised_host_with_a_scheme_or_port_is_refused() {
        for host in [
            "http://node",
            "node:7071",
            "",
            "0.0.0.0",
            "[::]",
            "a b",
            "node/x",
        ] {
            let error = advertised("0.0.0.0:0", Some(host)).unwrap_err().to_string();
            assert!(error.contains(&format!("--advertise '{host}'")), "{error}");
        }
    }

    #[tokio::test]
    async fn jobs_held_are_those_with_map_outputs_or_a_directory() {
        let work = tempfile::tempdir().unwrap();
        let ctx = context(&black_hole(), work.path(), JobRegistry::new());
        std::fs::create_dir_all(work.path().join("job-5-0003/reduce-00000-9")).unwrap();
        std::fs::create_dir_all(work.path().join("not-a-job")).unwrap();
        std::fs::create_dir_all(work.path().join("job-reports")).unwrap();
        std::fs::create_dir_all(work.path().join("job-0004")).unwrap();
        std::fs::write(work.path().join("job-5-0009"), b"a file, not ours").unwrap();
        let run = Run {
            path: work.path().join("job-5-0001/output"),
            offsets: vec![0, 0],
            crcs: vec![0],
            codec: crate::codec::Codec::None,
        };
        ctx.outputs.insert("job-5-0001", 1, run, "");
        assert_eq!(held_jobs(&ctx).await, ["job-5-0001", "job-5-0003"]);
    }

    #[tokio::test]
    async fn a_finished_job_is_forgotten_at_once_and_its_files_removed_in_the_background() {
        let work = tempfile::tempdir().unwrap();
        let ctx = context(&black_hole(), work.path(), JobRegistry::new());
        let dir = work.path().join("job-1-0001/map-00000-1");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("output"), b"").unwrap();
        let run = Run {
            path: dir.join("output"),
            offsets: vec![0, 0],
            crcs: vec![0],
            codec: crate::codec::Codec::None,
        };
        ctx.outputs.insert("job-1-0001", 1, run.clone(), "");
        ctx.outputs.insert("job-1-0002", 2, run, "");
        // A name that is not a job id touches nothing.
        std::fs::create_dir_all(work.path().join("keep")).unwrap();
        forget_job(&ctx, "../keep").await.unwrap();
        forget_job(&ctx, "job-1-0001/..").await.unwrap();
        assert!(work.path().join("keep").is_dir());
        assert_eq!(ctx.outputs.jobs().len(), 2);
        // Not async: the heartbeat loop calling it cannot be held up by the disk.
        let removal: tokio::task::JoinHandle<()> = forget_job(&ctx, "job-1-0001");
        assert_eq!(ctx.outputs.jobs(), ["job-1-0002"]);
        removal.await.unwrap();
        wait_until_gone(&work.path().join("job-1-0001")).await;
    }
}
