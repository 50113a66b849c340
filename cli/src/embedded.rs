//! `quern run`: a whole cluster in one process. A coordinator and N workers start on loopback
//! ports and talk real gRPC, exactly as separate processes would; the job is submitted through the
//! same client as `quern submit`, and everything stops when it ends. If every worker fails (say,
//! none can create its work directory), the run fails with the first worker's error.
//! [`LocalCluster`] is that cluster on its own, for a program to drive (a job chain, say).

use crate::args::{RunArgs, cores};
use crate::client;
use crate::progress::Progress;
use anyhow::{Context as _, Result, bail};
use quern_coordinator::http::StatusPage;
use quern_proto::auth::Token;
use quern_sdk::JobRegistry;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

pub async fn run(args: RunArgs, registry: JobRegistry) -> Result<()> {
    let spec = client::job_spec(&args.job, &registry)?;
    let workers = args.workers.unwrap_or_else(cores);
    let mut cluster = LocalCluster::start_with_page(registry, workers, args.http).await?;
    let mut client = cluster.connect().await?;
    let address = cluster.address().to_string();
    let outcome = cluster
        .drive(async {
            let submitted = client::submit(&mut client, &address, spec).await?;
            // The coordinator lives in this process: nothing to wait out.
            let mut progress = Progress::on_stderr(args.quiet);
            client::wait(
                &mut client,
                &address,
                &submitted.job_id,
                Duration::ZERO,
                &mut progress,
            )
            .await
        })
        .await;
    cluster.stop().await;
    crate::finish(&outcome?)
}

/// A coordinator and workers in this process, on loopback ports, with a token of their own.
pub struct LocalCluster {
    address: String,
    token: Token,
    /// Workers stop first, so their goodbye still reaches the coordinator.
    stop_workers: watch::Sender<bool>,
    stop_coordinator: watch::Sender<bool>,
    coordinator: JoinHandle<Result<(), Box<dyn std::error::Error + Send + Sync>>>,
    workers: JoinSet<Result<(), quern_worker::WorkerError>>,
}

impl LocalCluster {
    /// Starts a coordinator and `workers` workers (at least one) carrying the jobs of
    /// `registry`.
    pub async fn start(registry: JobRegistry, workers: u32) -> Result<LocalCluster> {
        LocalCluster::start_with_page(registry, workers, None).await
    }

    /// Like [`LocalCluster::start`], with the status page on `http` (a loopback address), if
    /// given; its address and login URL go to stderr, so that stdout stays the job's summary.
    pub async fn start_with_page(
        registry: JobRegistry,
        workers: u32,
        http: Option<SocketAddr>,
    ) -> Result<LocalCluster> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("cannot open a loopback port")?;
        let port = listener
            .local_addr()
            .context("cannot read the loopback port")?;
        // A token of its own, so that nothing else on the machine can talk to this cluster.
        let token = Token::random().context("cannot make a token for the embedded cluster")?;
        let (stop_workers, _) = watch::channel(false);
        let (stop_coordinator, _) = watch::channel(false);
        let config = quern_coordinator::CoordinatorConfig {
            token: Some(token.clone()),
            ..Default::default()
        };
        let page = match http {
            Some(http) => Some(status_page(http, &token).await?),
            None => None,
        };
        let stopped = until_stopped(stop_coordinator.subscribe());
        let serve = quern_coordinator::serve_with_page(listener, config, page, stopped);
        let coordinator = tokio::spawn(serve);
        let mut cluster = LocalCluster {
            address: format!("http://{port}"),
            token,
            stop_workers,
            stop_coordinator,
            coordinator,
            workers: JoinSet::new(),
        };
        for _ in 0..workers.max(1) {
            cluster.spawn_worker(registry.clone());
        }
        Ok(cluster)
    }

    fn spawn_worker(&mut self, registry: JobRegistry) {
        let config = quern_worker::WorkerConfig {
            coordinator: self.address.clone(),
            listen: ([127, 0, 0, 1], 0).into(),
            advertise: None,
            slots: 1,
            work_dir: None,
            orphan_grace: quern_worker::DEFAULT_ORPHAN_GRACE,
            token: Some(self.token.clone()),
            tls: None,
            client_tls: Default::default(),
        };
        let stopped = until_stopped(self.stop_workers.subscribe());
        self.workers
            .spawn(quern_worker::run(config, registry, stopped));
    }

    /// The coordinator's address.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// A client of the coordinator, carrying the cluster's token.
    pub async fn connect(&self) -> Result<client::Client> {
        client::connect(&self.address, Some(self.token.clone()), &Default::default()).await
    }

    /// Runs `work` (jobs submitted to this cluster) to its end; fails with the first worker's
    /// error if every worker ends first, since then no job can finish.
    pub async fn drive<T>(&mut self, work: impl Future<Output = Result<T>>) -> Result<T> {
        tokio::select! {
            outcome = work => outcome,
            error = all_ended(&mut self.workers) => Err(error),
        }
    }

    /// Stops the workers, then the coordinator, and waits for them.
    pub async fn stop(mut self) {
        let _ = self.stop_workers.send(true);
        while self.workers.join_next().await.is_some() {}
        let _ = self.stop_coordinator.send(true);
        let _ = self.coordinator.await;
    }
}

/// The embedded cluster's status page: on loopback only, as it has no TLS to guard its login.
async fn status_page(http: SocketAddr, token: &Token) -> Result<StatusPage> {
    if !http.ip().is_loopback() {
        bail!("--http {http}: the embedded cluster's status page serves on loopback only");
    }
    let page = StatusPage::bind(http, Some(token.clone()), None).await?;
    eprintln!("quern: status page on {}", page.url());
    crate::announce_login(&page);
    Ok(page)
}

async fn until_stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Waits until every worker has ended; returns why the first one did.
async fn all_ended(workers: &mut JoinSet<Result<(), quern_worker::WorkerError>>) -> anyhow::Error {
    let mut first = None;
    while let Some(ended) = workers.join_next().await {
        let error = match ended {
            Ok(Err(e)) => anyhow::Error::new(e).context("worker failed"),
            Ok(Ok(())) => anyhow::anyhow!("a worker stopped"),
            Err(e) => anyhow::Error::new(e).context("worker crashed"),
        };
        first.get_or_insert(error);
    }
    first.unwrap_or_else(|| anyhow::anyhow!("the embedded cluster has no workers"))
}
