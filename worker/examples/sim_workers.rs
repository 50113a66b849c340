//! Simulated workers for the control-plane bench (`bench/control_plane.sh`): many workers in one
//! process, each with its own registration, session secret, heartbeats and assignment stream,
//! over real gRPC to a real coordinator. They share a few HTTP/2 connections (`--connections`
//! for control calls, as many again for task calls: see [`Calls`]): a connection carries at
//! most a few hundred streams, and one per worker would measure the machine's sockets rather
//! than the coordinator.
//!
//! No data moves. A map is answered at once with a success of zero counters, through the
//! worker's own reporting code. A reduce learns where every map output is as a real reduce does
//! (the worker's own location code), fetches nothing, and commits an empty part file through the
//! real part-file path: the coordinator opens its upload, the worker writes the part under its
//! staged name, and the coordinator renames it into the output when it grants the commit.
//!
//! `sim_workers --coordinator URL [--workers N] [--slots S] [--connections C] [--job NAME]`
//! prints `registered N` once every worker has its assignment stream open, then runs until
//! killed, printing on stderr any call that failed, and on stdout each reduce attempt the
//! coordinator no longer wanted (`killed: ...`).

use quern_proto::tls::ClientTls;
use quern_proto::{
    Assignment, AssignmentsRequest, AttemptProgress, Counters, HeartbeatRequest,
    RegisterWorkerRequest, TaskKind, TaskReport,
};
use quern_sdk::JobRegistry;
use quern_worker::context::{Context, lazy_channel};
use quern_worker::error::TaskError;
use quern_worker::part_file::write_part;
use quern_worker::shuffle_fetch::locate_map_outputs;
use quern_worker::task::send_report;
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

struct Args {
    coordinator: String,
    workers: usize,
    slots: u32,
    connections: usize,
    job: String,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        coordinator: String::new(),
        workers: 2_000,
        slots: 4,
        connections: 50,
        job: "wordcount".to_string(),
    };
    let mut given = std::env::args().skip(1);
    while let Some(flag) = given.next() {
        let value = given.next().ok_or(format!("{flag} needs a value"))?;
        let number = || value.parse::<usize>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--coordinator" => args.coordinator = value.clone(),
            "--workers" => args.workers = number()?,
            "--slots" => args.slots = number()? as u32,
            "--connections" => args.connections = number()?.max(1),
            "--job" => args.job = value.clone(),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if args.coordinator.is_empty() {
        return Err("--coordinator URL is required".to_string());
    }
    Ok(args)
}

/// Calls that failed, by what they were; printed as they happen.
static FAILURES: AtomicUsize = AtomicUsize::new(0);

fn failed(what: &str, error: impl std::fmt::Display) {
    FAILURES.fetch_add(1, Ordering::Relaxed);
    eprintln!("{what}: {error}");
}

fn main() -> std::process::ExitCode {
    let args = match parse_args() {
        Ok(args) => Arc::new(args),
        Err(e) => {
            eprintln!("sim_workers: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    match run_workers(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sim_workers: {e}");
            std::process::ExitCode::from(1)
        }
    }
}

/// What a simulated worker calls the coordinator with: `control` (registration, heartbeats,
/// the assignment stream) on connections and a thread of their own, `tasks` (reports, map
/// output events, uploads and commits) on others. Each real worker has its own connection and
/// CPU, so its heartbeats never wait behind other workers' reduces; sharing both across 2,000
/// workers here would make them, and measure this process instead of the coordinator.
struct Calls {
    control: Arc<Context>,
    tasks: Arc<Context>,
    runtime: tokio::runtime::Handle,
}

fn run_workers(args: Arc<Args>) -> Result<(), Box<dyn std::error::Error>> {
    let tasks = tokio::runtime::Runtime::new()?;
    let control = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let task_channels = {
        let _inside = tasks.enter();
        channels(&args)?
    };
    control.block_on(async {
        let control_channels = channels(&args)?;
        let ready = Arc::new(AtomicUsize::new(0));
        for index in 0..args.workers {
            let context = |channels: &[Channel]| {
                Arc::new(Context::new(
                    JobRegistry::new(),
                    std::env::temp_dir().join("quern-sim-workers-unused"),
                    channels[index % channels.len()].clone(),
                    None,
                    ClientTls::default(),
                ))
            };
            let calls = Calls {
                control: context(&control_channels),
                tasks: context(&task_channels),
                runtime: tasks.handle().clone(),
            };
            tokio::spawn(sim_worker(index, calls, args.clone(), ready.clone()));
        }
        while ready.load(Ordering::Relaxed) < args.workers {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        println!("registered {}", args.workers);
        let _ = tokio::signal::ctrl_c().await;
        Ok(())
    })
}

/// `--connections` lazy channels to the coordinator, on the runtime entered.
fn channels(args: &Args) -> Result<Vec<Channel>, tonic::transport::Error> {
    (0..args.connections)
        .map(|_| lazy_channel(&args.coordinator, &ClientTls::default()))
        .collect()
}

/// The attempts a simulated worker runs now, for its heartbeats.
type Running = Arc<Mutex<HashSet<u64>>>;

/// One simulated worker: registers, heartbeats, and runs what its stream assigns; registers
/// again, as a real worker does, whenever the coordinator forgets it.
async fn sim_worker(index: usize, calls: Calls, args: Arc<Args>, ready: Arc<AtomicUsize>) {
    let mut counted = false;
    loop {
        let Some((worker_id, interval, stream)) = register(index, &calls, &args).await else {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        if !counted {
            ready.fetch_add(1, Ordering::Relaxed);
            counted = true;
        }
        let running = Running::default();
        // Spread over the interval, as workers started at different times are.
        let offset = interval.mul_f64(index as f64 / args.workers as f64);
        tokio::select! {
            _ = heartbeats(&calls.control, &worker_id, &running, interval, offset) => {}
            _ = assignments(&calls, stream, &running) => {}
        }
    }
}

/// Registers, and opens the assignment stream: the worker id, heartbeat interval and stream.
async fn register(
    index: usize,
    calls: &Calls,
    args: &Args,
) -> Option<(String, Duration, tonic::Streaming<Assignment>)> {
    let ctx = &calls.control;
    let request = RegisterWorkerRequest {
        // Never dialled: no reduce fetches.
        address: format!("http://127.0.0.1:{}", 20_000 + index % 40_000),
        slots: args.slots,
        jobs: vec![args.job.clone()],
        held: Vec::new(),
    };
    let registered = match ctx.coordinator().register_worker(request).await {
        Ok(response) => response.into_inner(),
        Err(status) => {
            failed("register", status);
            return None;
        }
    };
    let sessions = [&calls.control, &calls.tasks].map(|c| c.set_session(&registered.session));
    if let Some(Err(status)) = sessions.into_iter().find(Result::is_err) {
        failed("session", status);
        return None;
    }
    let request = AssignmentsRequest {
        worker_id: registered.worker_id.clone(),
    };
    let stream = match ctx.coordinator().assignments(request).await {
        Ok(response) => response.into_inner(),
        Err(status) => {
            failed("assignments", status);
            return None;
        }
    };
    let interval = Duration::from_millis(registered.heartbeat_interval_ms.max(10));
    Some((registered.worker_id, interval, stream))
}

/// Runs each assignment of `stream` in a task of its own, until the stream ends.
async fn assignments(calls: &Calls, mut stream: tonic::Streaming<Assignment>, running: &Running) {
    loop {
        match stream.message().await {
            Ok(Some(assignment)) => {
                running
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(assignment.attempt_id);
                let task = run(calls.tasks.clone(), assignment, running.clone());
                calls.runtime.spawn(task);
            }
            Ok(None) => return failed("assignments", "the coordinator closed the stream"),
            Err(status) => return failed("assignments", status),
        }
    }
}

/// Heartbeats on one stream until the coordinator says it does not know this worker, or the
/// stream ends.
async fn heartbeats(
    ctx: &Context,
    worker_id: &str,
    running: &Running,
    interval: Duration,
    offset: Duration,
) {
    tokio::time::sleep(offset).await;
    let (beats, outgoing) = tokio::sync::mpsc::channel(2);
    let mut answers = match ctx
        .coordinator()
        .heartbeats(ReceiverStream::new(outgoing))
        .await
    {
        Ok(response) => response.into_inner(),
        Err(status) => return failed("heartbeats", status),
    };
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if beats.try_send(beat(worker_id, running)).is_err() {
                    failed("heartbeats", "the stream is stalled or closed");
                }
            }
            answer = answers.message() => match answer {
                Ok(Some(answer)) if answer.reregister => {
                    return failed("heartbeats", "the coordinator forgot this worker");
                }
                Ok(Some(_)) => {}
                Ok(None) => return failed("heartbeats", "the coordinator ended the stream"),
                Err(status) => return failed("heartbeats", status),
            },
        }
    }
}

/// A heartbeat listing the attempts running now.
fn beat(worker_id: &str, running: &Running) -> HeartbeatRequest {
    let running_attempts = running
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|&attempt_id| AttemptProgress {
            attempt_id,
            ..AttemptProgress::default()
        })
        .collect();
    HeartbeatRequest {
        worker_id: worker_id.to_string(),
        running_attempts,
        held_jobs: Vec::new(),
    }
}

/// Runs one assignment: a map succeeds at once; a reduce locates the map outputs and commits an
/// empty part file.
async fn run(ctx: Arc<Context>, assignment: Assignment, running: Running) {
    let attempt = assignment.attempt_id;
    if assignment.kind() == TaskKind::Reduce {
        match reduce(&ctx, &assignment).await {
            Ok(()) => {}
            // Killed by the coordinator (another attempt finished first, say): on stdout,
            // counted by the bench apart from failures.
            Err(TaskError::Coordinator(status))
                if status.code() == tonic::Code::FailedPrecondition =>
            {
                println!("killed: reduce attempt {attempt}: {}", status.message());
            }
            Err(e) => failed("reduce", quern_proto::error_chain(&e)),
        }
    } else {
        let report = TaskReport {
            worker_id: assignment.worker_id.clone(),
            job_id: assignment.job_id.clone(),
            attempt_id: attempt,
            succeeded: true,
            counters: Some(Counters::default()),
            ..TaskReport::default()
        };
        send_report(&ctx, report).await;
    }
    running
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&attempt);
}

async fn reduce(ctx: &Context, assignment: &Assignment) -> Result<(), TaskError> {
    let locations = locate_map_outputs(ctx, assignment).await?;
    std::hint::black_box(locations);
    write_part(ctx, assignment, |_| Ok(Counters::default())).await
}
