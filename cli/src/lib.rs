//! The `quern` command. A user's own job binary is a few lines: build a
//! [`quern_sdk::JobRegistry`] with their jobs and call [`main_with`]; workers started from that
//! binary can run those jobs.
//!
//! - [`args`]: the flags of each subcommand.
//! - [`client`]: talking to a coordinator (submit, wait, status).
//! - [`chain`]: jobs run one after another, each over the output of the one before.
//! - [`embedded`]: `quern run`, a coordinator and workers in this process.
//! - [`huge_pages`]: the coordinator's heap on transparent huge pages.
//! - [`progress`]: the live view of a job being waited for, on stderr.
//! - [`report`]: what gets printed.
//! - [`status_json`]: `quern status --json`, for scripts.
//!
//! It re-exports the SDK as [`sdk`], and its [`prelude`], so a job binary depends on this crate
//! alone: `use quern::prelude::*;`.

pub mod args;
pub mod auth;
pub mod chain;
pub mod client;
pub mod embedded;
pub mod huge_pages;
pub mod progress;
pub mod report;
pub mod status_json;

pub use quern_sdk as sdk;
pub use quern_sdk::prelude;

use anyhow::{Context as _, Result, bail};
use args::{Cli, Command, CoordinatorArgs, StatusArgs, SubmitArgs, WorkerArgs, cores};
use clap::Parser;
use quern_coordinator::http::StatusPage;
use quern_proto::{ClusterStatusRequest, JobState, ListJobsRequest};
use quern_sdk::JobRegistry;
use std::process::ExitCode;

/// Parses the command line and runs it with the jobs in `registry`. Exit status: 0 on success,
/// 1 on any failure (the cause on one line on stderr), 2 on bad usage.
pub fn main_with(registry: JobRegistry) -> ExitCode {
    let cli = Cli::parse();
    // Before any thread starts: the process is replaced, if it can be.
    let not_restarted = match cli.command {
        Command::Coordinator(_) => huge_pages::restart_with_huge_pages(),
        _ => None,
    };
    if let Err(e) = init_logging(&cli.command) {
        fail(e);
        return ExitCode::from(2);
    }
    if let Some(e) = not_restarted {
        tracing::warn!(error = %e, "cannot restart with the heap on huge pages; going on without");
    }
    let runtime = match runtime_for(&cli.command) {
        Ok(runtime) => runtime,
        Err(e) => return fail(anyhow::Error::new(e).context("cannot start the async runtime")),
    };
    let result = runtime.block_on(dispatch(cli.command, registry));
    // A task thread can outlive its command: a map stuck in a user's loop is given up on (its
    // task timeout) and runs again elsewhere, but its thread cannot be stopped from outside.
    // Dropping the runtime would wait for it forever after the job had succeeded.
    runtime.shutdown_timeout(SHUTDOWN_GRACE);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

/// How long a finished command waits for task threads still running before it exits anyway.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// The async runtime `command` runs on. The coordinator's calls all go through one lock (its
/// state machine), so a second thread buys it nothing and costs it wakeups: on one thread, its
/// CPU idling under 2,000 heartbeating workers falls by a fifth, and the 200,000-map job of
/// `bench/control_plane.sh` takes as long. Workers and `quern run` run tasks: a thread per core.
fn runtime_for(command: &Command) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = match command {
        Command::Coordinator(_) => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    builder.enable_all().build()
}

/// Writes to stdout; a closed pipe (`quern status | head`) is not an error worth a panic.
fn say(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// The error and its causes on one line, each said once (see [`quern_proto::error_chain`]).
fn fail(e: anyhow::Error) -> ExitCode {
    eprintln!("quern: {}", quern_proto::error_chain(e.as_ref()));
    ExitCode::FAILURE
}

/// Daemons log at info; one-shot commands only warn. `QUERN_LOG` (tracing's filter syntax)
/// overrides. `QUERN_LOG_FORMAT` picks text (the default) or JSON, one object a line, with the
/// event's fields at the top and its spans under `span` (the innermost) and `spans` (all, outer
/// first): a worker's task events thus carry `job`, `task` and `attempt`.
fn init_logging(command: &Command) -> Result<()> {
    let format = log_format(std::env::var_os("QUERN_LOG_FORMAT"))?;
    let default = match command {
        Command::Coordinator(_) | Command::Worker(_) => "info",
        _ => "warn",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("QUERN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => {
            let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
            logs.with_ansi(ansi).init();
        }
        LogFormat::Json => logs
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(true)
            .init(),
    }
    Ok(())
}

#[derive(Debug, PartialEq)]
enum LogFormat {
    Text,
    Json,
}

/// The log format `QUERN_LOG_FORMAT` names (unset is text).
fn log_format(value: Option<std::ffi::OsString>) -> Result<LogFormat> {
    let Some(value) = value else {
        return Ok(LogFormat::Text);
    };
    match value.to_str() {
        Some("text") => Ok(LogFormat::Text),
        Some("json") => Ok(LogFormat::Json),
        _ => bail!(
            "QUERN_LOG_FORMAT is '{}'; it must be text or json",
            value.to_string_lossy()
        ),
    }
}

async fn dispatch(command: Command, registry: JobRegistry) -> Result<()> {
    match command {
        Command::Run(args) => embedded::run(args, registry).await,
        Command::Coordinator(args) => coordinator(args).await,
        Command::Worker(args) => worker(args, registry).await,
        Command::Submit(args) => submit(args, registry).await,
        Command::Status(args) => status(args).await,
    }
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = interrupt => {}
        _ = terminate => {}
    }
}

async fn coordinator(args: CoordinatorArgs) -> Result<()> {
    let mut config = args.config().map_err(anyhow::Error::msg)?;
    config.token = auth::token(&args.auth)?;
    config.tls = auth::server_tls(&args.tls)?;
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    auth::check_listener(
        "the coordinator",
        args.listen,
        config.token.as_ref(),
        args.allow_unauthenticated,
    )?;
    if config.state_dir.is_none() {
        tracing::warn!("no --state-dir: jobs are kept in memory only, and a restart loses them");
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener
        .local_addr()
        .context("cannot read the listening address")?;
    // Scripts and tests read this line to learn the port when --listen asks for port 0.
    say(&format!(
        "quern coordinator listening on {scheme}://{address}\n"
    ));
    let page = match args.http {
        Some(http) => Some(status_page(&args, http, config.token.clone()).await?),
        None => None,
    };
    quern_coordinator::serve_with_page(listener, config, page, shutdown_signal())
        .await
        .map_err(|e| anyhow::anyhow!("coordinator failed: {}", quern_proto::error_chain(&*e)))
}

/// The coordinator's status page on `http`, under the rule of every listener, over TLS if the
/// coordinator has a certificate; says where it is, and how to log in.
async fn status_page(
    args: &CoordinatorArgs,
    http: std::net::SocketAddr,
    token: Option<quern_proto::auth::Token>,
) -> Result<StatusPage> {
    auth::check_listener(
        "the status page",
        http,
        token.as_ref(),
        args.allow_unauthenticated,
    )?;
    let tls = args.tls.tls_cert.clone().zip(args.tls.tls_key.clone());
    if tls.is_none() && token.is_some() && !http.ip().is_loopback() {
        tracing::warn!(%http, "the status page serves plain HTTP off loopback: its login crosses the network in clear; give --tls-cert");
    }
    let page = StatusPage::bind(http, token, tls).await?;
    // Scripts and tests read this line, after the listening one.
    say(&format!("quern status page on {}\n", page.url()));
    announce_login(&page);
    Ok(page)
}

/// Prints the status page's one-time login URL, if it has one, on stderr, as Jupyter does.
pub fn announce_login(page: &StatusPage) {
    if let Some(login) = page.login_url() {
        eprintln!("quern: log in to the status page at {login} (the code works once)");
    }
}

async fn worker(args: WorkerArgs, registry: JobRegistry) -> Result<()> {
    let token = auth::token(&args.auth)?;
    auth::check_listener(
        "the worker's shuffle service",
        args.listen,
        token.as_ref(),
        args.allow_unauthenticated,
    )?;
    let client_tls = auth::client_tls(&args.tls_client, &args.coordinator)?;
    let config = quern_worker::WorkerConfig {
        coordinator: args.coordinator,
        listen: args.listen,
        advertise: args.advertise,
        slots: args.slots.unwrap_or_else(cores).max(1),
        work_dir: args.work_dir,
        orphan_grace: args.orphan_grace,
        token,
        tls: auth::server_tls(&args.tls)?,
        client_tls,
    };
    quern_worker::run(config, registry, shutdown_signal())
        .await
        .context("worker failed")
}

async fn submit(args: SubmitArgs, registry: JobRegistry) -> Result<()> {
    let spec = client::job_spec(&args.job, &registry)?;
    let tls = auth::client_tls(&args.tls, &args.coordinator)?;
    let mut client = client::connect(&args.coordinator, auth::token(&args.auth)?, &tls).await?;
    let submitted = client::submit(&mut client, &args.coordinator, spec).await?;
    say(&format!(
        "submitted {}: {} map tasks, {} reduce tasks
",
        submitted.job_id, submitted.map_tasks, submitted.reduce_tasks
    ));
    if args.wait {
        let (address, id) = (&args.coordinator, &submitted.job_id);
        let mut progress = progress::Progress::on_stderr(args.quiet);
        let status = client::wait(
            &mut client,
            address,
            id,
            args.reconnect_timeout,
            &mut progress,
        )
        .await?;
        finish(&status)?;
    }
    Ok(())
}

/// Prints a finished job's summary; a failed job is an error.
pub fn finish(status: &quern_proto::JobStatus) -> Result<()> {
    say(&format!("{}\n", report::summary(status)));
    if status.state != JobState::Succeeded as i32 {
        bail!("job {} failed: {}", status.job_id, status.error);
    }
    Ok(())
}

async fn status(args: StatusArgs) -> Result<()> {
    let address = &args.coordinator;
    let tls = auth::client_tls(&args.tls, address)?;
    let mut client = client::connect(address, auth::token(&args.auth)?, &tls).await?;
    match args.job_id {
        Some(job_id) => {
            let status = client::job_status(&mut client, address, &job_id, true).await?;
            if args.json {
                say(&status_json::to_text(&status_json::job(&status, true)));
            } else {
                say(&format!("{}\n", report::summary(&status)));
                say(&report::history(&status));
            }
        }
        None => {
            let cluster = client
                .cluster_status(ClusterStatusRequest {})
                .await
                .map_err(client::call_failed(address))?
                .into_inner();
            let jobs = client
                .list_jobs(ListJobsRequest {})
                .await
                .map_err(client::call_failed(address))?
                .into_inner()
                .jobs;
            if args.json {
                say(&status_json::to_text(&status_json::cluster(
                    &cluster, &jobs,
                )));
            } else {
                say(&report::cluster(&cluster, &jobs));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_format_is_text_json_or_an_error_naming_the_value() {
        assert_eq!(log_format(None).unwrap(), LogFormat::Text);
        assert_eq!(log_format(Some("text".into())).unwrap(), LogFormat::Text);
        assert_eq!(log_format(Some("json".into())).unwrap(), LogFormat::Json);
        let error = log_format(Some("yaml".into())).unwrap_err().to_string();
        assert_eq!(error, "QUERN_LOG_FORMAT is 'yaml'; it must be text or json");
    }
}
