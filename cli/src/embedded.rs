//! `quern run`: a whole cluster in one process. A coordinator and N workers start on loopback
//! ports and talk real gRPC, exactly as separate processes would; the job is submitted through the
//! same client as `quern submit`, and everything stops when it ends.

use crate::args::{RunArgs, cores};
use crate::client;
use anyhow::{Context as _, Result};
use quern_sdk::JobRegistry;
use tokio::net::TcpListener;
use tokio::sync::watch;

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
    let (stop, stopped) = watch::channel(false);
    let until_stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let coordinator = tokio::spawn(quern_coordinator::serve(
        listener,
        quern_coordinator::CoordinatorConfig::default(),
        until_stopped(stopped.clone()),
    ));
    let workers: Vec<_> = (0..args.workers.unwrap_or_else(cores).max(1))
        .map(|_| {
            let config = quern_worker::WorkerConfig {
                coordinator: address.clone(),
                listen: ([127, 0, 0, 1], 0).into(),
                advertise: None,
                slots: 1,
                work_dir: None,
            };
            tokio::spawn(quern_worker::run(
                config,
                registry.clone(),
                until_stopped(stopped.clone()),
            ))
        })
        .collect();

    let outcome = async {
        let mut client = client::connect(&address).await?;
        let submitted = client::submit(&mut client, spec).await?;
        client::wait(&mut client, &submitted.job_id).await
    }
    .await;

    let _ = stop.send(true);
    for worker in workers {
        let _ = worker.await;
    }
    let _ = coordinator.await;
    crate::finish(&outcome?)
}
