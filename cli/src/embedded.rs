//! `quern run`: a whole cluster in one process. A coordinator and N workers start on loopback
//! ports and talk real gRPC, exactly as separate processes would; the job is submitted through the
//! same client as `quern submit`, and everything stops when it ends. If every worker fails (say,
//! none can create its work directory), the run fails with the first worker's error.

use crate::args::{RunArgs, cores};
use crate::client;
use anyhow::{Context as _, Result};
use quern_proto::auth::Token;
use quern_sdk::JobRegistry;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

pub async fn run(args: RunArgs, registry: JobRegistry) -> Result<()> {
    let spec = client::job_spec(&args.job, &registry)?;
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot open a loopback port")?;
    let address = format!(
        "http://{}",
        listener
            .local_addr()
            .context("cannot read the loopback port")?
    );
    // Workers stop first, so their goodbye still reaches the coordinator.
    let (stop, stopped) = watch::channel(false);
    let (stop_coordinator, coordinator_stopped) = watch::channel(false);
    let until_stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    // A token of its own, so that nothing else on the machine can talk to this cluster.
    let token = Token::random().context("cannot make a token for the embedded cluster")?;
    let config = quern_coordinator::CoordinatorConfig {
        token: Some(token.clone()),
        ..Default::default()
    };
    let coordinator = tokio::spawn(quern_coordinator::serve(
        listener,
        config,
        until_stopped(coordinator_stopped),
    ));
    let mut workers = JoinSet::new();
    for _ in 0..args.workers.unwrap_or_else(cores).max(1) {
        let config = quern_worker::WorkerConfig {
            coordinator: address.clone(),
            listen: ([127, 0, 0, 1], 0).into(),
            advertise: None,
            slots: 1,
            work_dir: None,
            orphan_grace: quern_worker::DEFAULT_ORPHAN_GRACE,
            token: Some(token.clone()),
            tls: None,
            client_tls: Default::default(),
        };
        workers.spawn(quern_worker::run(
            config,
            registry.clone(),
            until_stopped(stopped.clone()),
        ));
    }

    let job = async {
        let mut client = client::connect(&address, Some(token), &Default::default()).await?;
        let submitted = client::submit(&mut client, &address, spec).await?;
        // The coordinator lives in this process: nothing to wait out.
        client::wait(&mut client, &address, &submitted.job_id, Duration::ZERO).await
    };
    // A worker ends only when stopped or when it fails; with none left, the job cannot finish.
    let outcome = tokio::select! {
        outcome = job => outcome,
        error = all_ended(&mut workers) => Err(error),
    };

    let _ = stop.send(true);
    while workers.join_next().await.is_some() {}
    let _ = stop_coordinator.send(true);
    let _ = coordinator.await;
    crate::finish(&outcome?)
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
