//! The client side of the coordinator: connect (within a bounded time), submit a job, wait for it,
//! fetch status.

use crate::args::JobArgs;
use crate::progress::Progress;
use anyhow::{Context as _, Result, anyhow, bail};
use quern_proto::auth::{SendToken, Token};
use quern_proto::coordinator_client::CoordinatorClient;
use quern_proto::tls::ClientTls;
use quern_proto::*;
use quern_sdk::engine::not_map_only;
use quern_sdk::{JobEngine, JobRegistry, Params};
use std::error::Error as _;
use std::time::Duration;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// How long each status call may be held by the coordinator, which answers at once when the job
/// ends: how often the progress shown is brought up to date.
const STATUS_WAIT: Duration = Duration::from_millis(100);
/// Between tries to reach a coordinator that stopped answering.
const RECONNECT_POLL: Duration = Duration::from_millis(200);

/// A coordinator client whose calls carry the cluster token, if there is one.
pub type Client = CoordinatorClient<InterceptedService<Channel, SendToken>>;

/// Connects to the coordinator, with TLS if `address` is an `https://` URL (checked as `tls`
/// says), failing within a few seconds if nobody answers.
pub async fn connect(address: &str, token: Option<Token>, tls: &ClientTls) -> Result<Client> {
    let endpoint = tls
        .endpoint(address)
        .with_context(|| format!("invalid coordinator address '{address}'"))?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .timeout(CALL_TIMEOUT);
    let channel = tokio::time::timeout(CONNECT_TIMEOUT, endpoint.connect())
        .await
        .map_err(|_| {
            anyhow!(
                "cannot reach the coordinator at {address}: no answer in {} s",
                CONNECT_TIMEOUT.as_secs()
            )
        })?
        .with_context(|| format!("cannot reach the coordinator at {address}"))
        .map_err(|e| with_tls_hint(address, e))?;
    Ok(
        CoordinatorClient::with_interceptor(channel, SendToken(token))
            .max_decoding_message_size(quern_coordinator::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(quern_coordinator::MAX_MESSAGE_BYTES),
    )
}

/// The job spec for `args`, after checking the job is one this binary knows.
pub fn job_spec(args: &JobArgs, registry: &JobRegistry) -> Result<JobSpec> {
    // Built here once, so that a missing or bad parameter is refused before anything runs.
    let params = Params::new(args.params.iter().cloned());
    let job = match registry.build(&args.job, &params) {
        None => bail!(
            "unknown job '{}'; this binary has: {}",
            args.job,
            registry.names().join(", ")
        ),
        Some(Err(e)) => bail!("job '{}': {e}", args.job),
        Some(Ok(job)) => job,
    };
    let reducers = reducers_of(job.as_ref(), args.reducers)?;
    let inputs = args
        .inputs
        .iter()
        .map(|i| absolute_url(i))
        .collect::<Result<Vec<_>>>()?;
    Ok(JobSpec {
        job_name: args.job.clone(),
        inputs,
        output: absolute_url(&args.output)?,
        reducers,
        total_order: job.total_order(),
        split_size: args.split_size,
        overwrite: args.overwrite,
        // Unset: the coordinator's default.
        sort_buffer_bytes: args.sort_buffer.unwrap_or(0),
        max_line_bytes: args.max_line,
        max_attempts: args.max_attempts,
        max_worker_losses: args.max_worker_losses,
        task_timeout_ms: args.task_timeout.map_or(0, |t| t.as_millis() as u64),
        speculative: args.speculative,
        shuffle_compression: args
            .shuffle_compression
            .map_or(ShuffleCompression::Default, ShuffleCompression::from)
            as i32,
        params: params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        input_format: input_format_of(job.as_ref()) as i32,
    })
}

/// The job's input format, as the spec carries it: for the coordinator to split by.
fn input_format_of(job: &dyn JobEngine) -> InputFormat {
    match job.input_format() {
        quern_sdk::InputFormat::Lines => InputFormat::Lines,
        quern_sdk::InputFormat::WholeFile => InputFormat::WholeFile,
        quern_sdk::InputFormat::LengthDelimited => InputFormat::LengthDelimited,
        quern_sdk::InputFormat::Custom(_) => InputFormat::Custom,
    }
}

/// The reducers of `job` when `asked` for: by default 1, or 0 (map-only) for a job without a
/// reducer; 0 only for a job that can run map-only.
fn reducers_of(job: &dyn JobEngine, asked: Option<u32>) -> Result<u32> {
    match asked {
        None if job.has_reducer() => Ok(1),
        None | Some(0) if job.can_run_map_only() => Ok(0),
        Some(0) => bail!("{}", not_map_only(job.name())),
        Some(n) if !job.has_reducer() => bail!(
            "job '{}' has no reducer: it runs map-only, so --reducers must be 0, not {n}",
            job.name()
        ),
        Some(n) => Ok(n),
        None => bail!(
            "job '{}' has neither a reducer nor text map output",
            job.name()
        ),
    }
}

/// The coordinator runs elsewhere: a relative local path is resolved here, where the user typed
/// it.
fn absolute_url(text: &str) -> Result<String> {
    Ok(quern_storage::StorageUrl::parse(text)?.to_string())
}

pub async fn submit(
    client: &mut Client,
    address: &str,
    spec: JobSpec,
) -> Result<SubmitJobResponse> {
    let name = spec.job_name.clone();
    let response = client
        .submit_job(SubmitJobRequest { spec: Some(spec) })
        .await
        .map_err(|status| match status.source() {
            None if status.code() != tonic::Code::Unauthenticated => {
                anyhow!("job '{name}' refused: {}", status.message())
            }
            _ => call_failed(address)(status).context(format!("cannot submit job '{name}'")),
        })?;
    Ok(response.into_inner())
}

pub async fn job_status(
    client: &mut Client,
    address: &str,
    job_id: &str,
    history: bool,
) -> Result<JobStatus> {
    let request = GetJobRequest {
        job_id: job_id.to_string(),
        history,
        wait_ms: 0,
    };
    let response = client
        .get_job(request)
        .await
        .map_err(call_failed(address))?;
    Ok(response.into_inner())
}

/// A failed call to the coordinator at `address`: its own answer (an unknown job, a refusal) as
/// it gave it, or for want of the token, which flag to give; or, when no answer came, why (`the
/// coordinator did not answer: connection refused`).
pub fn call_failed(address: &str) -> impl Fn(tonic::Status) -> anyhow::Error + '_ {
    move |status| {
        let server = format!("the coordinator at {address}");
        if let Some(refused) = quern_proto::auth::refusal(&status, &server) {
            return anyhow!(refused);
        }
        // Statuses made on this side, from a transport failure, keep it as their source; an
        // answer from the coordinator has none.
        match status.source() {
            None => anyhow!("{}", status.message()),
            Some(_) => with_tls_hint(
                address,
                anyhow::Error::new(status).context("the coordinator did not answer"),
            ),
        }
    }
}

/// `error`, with a hint when it looks like a client and server that disagree about TLS.
fn with_tls_hint(address: &str, error: anyhow::Error) -> anyhow::Error {
    let text = quern_proto::error_chain(error.as_ref());
    match quern_proto::tls::mismatch_hint(address, &text) {
        Some(hint) => anyhow!("{text} ({hint})"),
        None => error,
    }
}

/// Asks for the job's status until it ends, each call held by the coordinator until the job ends
/// or [`STATUS_WAIT`] passes, showing each status on `progress`; returns the final status. A
/// coordinator out of reach (restarting, say) is tried again with backoff for up to `reconnect`,
/// saying so once; one that comes back without the job is named as such.
pub async fn wait(
    client: &mut Client,
    address: &str,
    job_id: &str,
    reconnect: Duration,
    progress: &mut Progress,
) -> Result<JobStatus> {
    let mut unreachable_since: Option<std::time::Instant> = None;
    let mut said_unreachable = false;
    loop {
        let request = GetJobRequest {
            job_id: job_id.to_string(),
            history: false,
            wait_ms: STATUS_WAIT.as_millis() as u32,
        };
        let asked = std::time::Instant::now();
        match client.get_job(request).await {
            Ok(status) => {
                let status = status.into_inner();
                progress.update(&status);
                if status.state != JobState::Running as i32 {
                    return Ok(status);
                }
                unreachable_since = None;
            }
            // The coordinator knew the job a moment ago (it was submitted there) and does not
            // now: it was restarted in between, even if too fast for a poll to miss it.
            Err(status) if status.code() == tonic::Code::NotFound => {
                bail!(
                    "the coordinator at {address} came back without job {job_id}: it keeps no \
                     state across a restart unless started with --state-dir ({})",
                    status.message()
                )
            }
            Err(status) if status.source().is_none() => return Err(call_failed(address)(status)),
            Err(status) => {
                let since = *unreachable_since.get_or_insert_with(std::time::Instant::now);
                if since.elapsed() >= reconnect {
                    return Err(call_failed(address)(status).context(format!(
                        "gave up following job {job_id} after {} s",
                        reconnect.as_secs()
                    )));
                }
                if !said_unreachable {
                    progress.note(&format!(
                        "quern: the coordinator at {address} is unreachable; retrying for up to {} s",
                        reconnect.as_secs()
                    ));
                }
                said_unreachable = true;
                tokio::time::sleep(RECONNECT_POLL).await;
                continue;
            }
        }
        // A coordinator that predates `wait_ms` answered at once: wait here instead.
        tokio::time::sleep(STATUS_WAIT.saturating_sub(asked.elapsed())).await;
    }
}
