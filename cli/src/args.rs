//! Command-line flags, one clap struct per role. Every flag has a `QUERN_` environment fallback;
//! a flag beats the environment, which beats the default.

use bytesize::ByteSize;
use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "quern",
    version,
    about = "Quern: MapReduce batch jobs, on one machine or a cluster"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a job on an embedded local cluster (a coordinator and workers in this process).
    Run(RunArgs),
    /// Run a coordinator.
    Coordinator(CoordinatorArgs),
    /// Run a worker that takes tasks from a coordinator.
    Worker(WorkerArgs),
    /// Submit a job to a coordinator.
    Submit(SubmitArgs),
    /// Show the cluster, or one job with its task history.
    Status(StatusArgs),
}

fn parse_size(text: &str) -> Result<u64, String> {
    text.trim()
        .parse::<ByteSize>()
        .map(|size| size.as_u64())
        .map_err(|e| format!("'{text}' is not a size like 64MiB or 1000: {e}"))
}

/// A duration in humantime syntax (`1s`, `200ms`, `10m`, `1h 30m`), more than zero: every
/// duration flag (heartbeats, timeouts) goes through here.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text.trim()) {
        Ok(duration) if duration.is_zero() => Err(format!("'{text}' must be more than zero")),
        Ok(duration) => Ok(duration),
        Err(e) => Err(format!(
            "'{text}' is not a duration like 1s, 200ms or 10m: {e}"
        )),
    }
}

fn parse_on_off(text: &str) -> Result<bool, String> {
    match text.trim() {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("'{text}' is neither on nor off")),
    }
}

/// What every job command takes.
#[derive(Args, Debug, Clone)]
pub struct JobArgs {
    /// The job to run (e.g. wordcount).
    pub job: String,
    /// Input: a file, a directory, a key prefix or a glob; a path, file:// or s3:// URL.
    /// Repeatable. A comma is part of the name, not a separator.
    #[arg(long = "input", short = 'i', required = true, env = "QUERN_INPUT")]
    pub inputs: Vec<String>,
    /// Output directory (part-r-NNNNN files, or part-m-NNNNN of a map-only job, and _SUCCESS).
    #[arg(long, short = 'o', env = "QUERN_OUTPUT")]
    pub output: String,
    /// Reduce partitions, one part file each; 0 runs the job map-only, one part file per map
    /// [default: 1, or 0 for a job without a reducer].
    #[arg(long, env = "QUERN_REDUCERS")]
    pub reducers: Option<u32>,
    /// Bytes of input per map task (64MiB, 1KiB, 1000).
    #[arg(long, default_value = "64MiB", env = "QUERN_SPLIT_SIZE", value_parser = parse_size)]
    pub split_size: u64,
    /// Map-side sort buffer per task; it spills to disk past this size [default: 96MiB, the
    /// coordinator's].
    #[arg(long, env = "QUERN_SORT_BUFFER", value_parser = parse_size)]
    pub sort_buffer: Option<u64>,
    /// Longest input line; a longer one fails the job, naming the object and offset.
    #[arg(long, default_value = "64MiB", env = "QUERN_MAX_LINE", value_parser = parse_size)]
    pub max_line: u64,
    /// Failed attempts per task before the job fails (attempts killed by a lost worker or a
    /// fetch failure do not count).
    #[arg(long, default_value = "4", env = "QUERN_MAX_ATTEMPTS")]
    pub max_attempts: u32,
    /// A task whose worker is lost under it this many attempts in a row fails the job: the
    /// guard against a task that crashes its worker process.
    #[arg(long, default_value = "8", env = "QUERN_MAX_WORKER_LOSSES")]
    pub max_worker_losses: u32,
    /// An attempt that makes no progress (records read, key groups reduced, bytes fetched) for
    /// this long fails and runs again elsewhere [default: the coordinator's --task-timeout].
    #[arg(long, value_name = "DURATION", env = "QUERN_TASK_TIMEOUT", value_parser = parse_duration)]
    pub task_timeout: Option<Duration>,
    /// Backup attempts for stragglers near the end of each phase, `on` or `off` [default: the
    /// coordinator's --speculative].
    #[arg(long, value_name = "on|off", env = "QUERN_SPECULATIVE", value_parser = parse_on_off, action = clap::ArgAction::Set)]
    pub speculative: Option<bool>,
    /// How map output (spills and shuffle) is compressed: none, lz4 or zstd [default: none, the
    /// fastest on one machine; a slow network may favour lz4 or zstd].
    #[arg(long, value_enum, env = "QUERN_SHUFFLE_COMPRESSION")]
    pub shuffle_compression: Option<Compression>,
    /// Replace an output that already holds a finished job.
    #[arg(long, env = "QUERN_OVERWRITE")]
    pub overwrite: bool,
    /// A job parameter, KEY=VALUE, for the job's code (repeatable).
    #[arg(short = 'D', long = "param", value_name = "KEY=VALUE", value_parser = parse_param)]
    pub params: Vec<(String, String)>,
}

/// A codec for map output, as `--shuffle-compression` names it.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Lz4,
    Zstd,
}

impl From<Compression> for quern_proto::ShuffleCompression {
    fn from(compression: Compression) -> Self {
        match compression {
            Compression::None => quern_proto::ShuffleCompression::None,
            Compression::Lz4 => quern_proto::ShuffleCompression::Lz4,
            Compression::Zstd => quern_proto::ShuffleCompression::Zstd,
        }
    }
}

/// `KEY=VALUE`: a job parameter. The key is not empty; the value may be, and may hold `=`.
fn parse_param(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("'{text}' is not KEY=VALUE")),
    }
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub job: JobArgs,
    /// Workers in the embedded cluster [default: number of cores].
    #[arg(long, env = "QUERN_WORKERS")]
    pub workers: Option<u32>,
    /// Show no progress on stderr while the job runs (the summary is still printed).
    #[arg(long, short = 'q', env = "QUERN_QUIET", value_parser = clap::builder::FalseyValueParser::new())]
    pub quiet: bool,
    /// Serve the embedded cluster's status page on this address (loopback only) while it runs.
    #[arg(long, value_name = "ADDR", env = "QUERN_HTTP")]
    pub http: Option<SocketAddr>,
}

/// How a process proves it belongs to the cluster: the cluster token, from a file or from the
/// `QUERN_TOKEN` environment variable (never a flag: command lines are visible to every user).
#[derive(Args, Debug, Clone, Default)]
pub struct AuthArgs {
    /// File holding the cluster token (or give the token itself in QUERN_TOKEN).
    #[arg(long, value_name = "PATH", env = "QUERN_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
}

/// What a server presents for TLS: both or neither.
#[derive(Args, Debug, Clone, Default)]
pub struct TlsServerArgs {
    /// Serve TLS with this certificate chain (PEM); needs --tls-key.
    #[arg(
        long,
        value_name = "PATH",
        env = "QUERN_TLS_CERT",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(
        long,
        value_name = "PATH",
        env = "QUERN_TLS_KEY",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,
}

/// How a client checks the servers it calls at `https://` addresses.
#[derive(Args, Debug, Clone, Default)]
pub struct TlsClientArgs {
    /// Trust this CA certificate (PEM) for https:// addresses [default: the system's roots].
    #[arg(long, value_name = "PATH", env = "QUERN_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct CoordinatorArgs {
    /// Address to serve on.
    #[arg(long, default_value = "127.0.0.1:7070", env = "QUERN_LISTEN")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub auth: AuthArgs,
    /// Serve a non-loopback --listen without a token: anyone who reaches it controls the cluster.
    #[arg(long)]
    pub allow_unauthenticated: bool,
    #[command(flatten)]
    pub tls: TlsServerArgs,
    /// How often workers heartbeat (1s, 200ms).
    #[arg(long, value_name = "DURATION", default_value = "1s", env = "QUERN_HEARTBEAT_INTERVAL", value_parser = parse_duration)]
    pub heartbeat_interval: Duration,
    /// A worker silent this long is dead and its work runs elsewhere; longer than the interval.
    #[arg(long, value_name = "DURATION", default_value = "10s", env = "QUERN_WORKER_TIMEOUT", value_parser = parse_duration)]
    pub worker_timeout: Duration,
    /// Task timeout of jobs that do not set their own: an attempt with no progress this long
    /// fails and runs again elsewhere (Hadoop's mapreduce.task.timeout).
    #[arg(long, value_name = "DURATION", default_value = "10m", env = "QUERN_TASK_TIMEOUT", value_parser = parse_duration)]
    pub task_timeout: Duration,
    /// Whether jobs that do not say launch backup attempts for stragglers.
    #[arg(long, value_name = "on|off", default_value = "on", env = "QUERN_SPECULATIVE", value_parser = parse_on_off, action = clap::ArgAction::Set)]
    pub speculative: bool,
    /// Finished jobs that status still shows; older ones are forgotten.
    #[arg(
        long,
        value_name = "N",
        default_value = "100",
        env = "QUERN_RETAIN_JOBS"
    )]
    pub retain_jobs: usize,
    /// How long status still shows a finished job.
    #[arg(long, value_name = "DURATION", default_value = "24h", env = "QUERN_RETAIN_FOR", value_parser = parse_duration)]
    pub retain_for: Duration,
    /// Where the coordinator keeps its journal, so that unfinished jobs run again, under their
    /// own ids, when it is restarted with the same directory [default: memory only].
    #[arg(long, value_name = "DIR", env = "QUERN_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Serve the status page, its JSON API and /metrics on this address (HTTP).
    #[arg(long, value_name = "ADDR", env = "QUERN_HTTP")]
    pub http: Option<SocketAddr>,
}

impl CoordinatorArgs {
    /// The coordinator's settings, once checked against each other.
    pub fn config(&self) -> Result<quern_coordinator::CoordinatorConfig, String> {
        if self.worker_timeout <= self.heartbeat_interval {
            return Err(format!(
                "--worker-timeout {} must be longer than --heartbeat-interval {}, or every worker \
                 would be declared dead between two heartbeats",
                humantime::format_duration(self.worker_timeout),
                humantime::format_duration(self.heartbeat_interval)
            ));
        }
        Ok(quern_coordinator::CoordinatorConfig {
            heartbeat_interval: self.heartbeat_interval,
            worker_timeout: self.worker_timeout,
            task_timeout: self.task_timeout,
            speculative: self.speculative,
            retention: quern_coordinator::retention::Retention {
                jobs: self.retain_jobs,
                period: self.retain_for,
            },
            state_dir: self.state_dir.clone(),
            ..Default::default()
        })
    }
}

#[derive(Args, Debug)]
pub struct WorkerArgs {
    /// The coordinator's URL.
    #[arg(
        long,
        default_value = "http://127.0.0.1:7070",
        env = "QUERN_COORDINATOR"
    )]
    pub coordinator: String,
    /// Tasks run at once [default: number of cores].
    #[arg(long, env = "QUERN_SLOTS")]
    pub slots: Option<u32>,
    /// Address of this worker's shuffle service (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:0", env = "QUERN_WORKER_LISTEN")]
    pub listen: SocketAddr,
    /// Host name or IP that the coordinator and other workers reach this worker at; it is
    /// advertised with the port bound. Required when --listen is 0.0.0.0 or [::].
    #[arg(long, value_name = "HOST", env = "QUERN_ADVERTISE")]
    pub advertise: Option<String>,
    /// Where map output goes [default: a fresh temporary directory, removed on exit].
    #[arg(long, env = "QUERN_WORK_DIR")]
    pub work_dir: Option<PathBuf>,
    #[command(flatten)]
    pub auth: AuthArgs,
    /// Serve map output on a non-loopback --listen without a token: anyone who reaches it can
    /// read it.
    #[arg(long)]
    pub allow_unauthenticated: bool,
    #[command(flatten)]
    pub tls: TlsServerArgs,
    #[command(flatten)]
    pub tls_client: TlsClientArgs,
    /// How long map outputs are kept while the coordinator is unreachable: a restarted
    /// coordinator adopts them, so finished maps need not run again. Past this, they are deleted.
    #[arg(long, value_name = "DURATION", default_value = "5m", env = "QUERN_ORPHAN_GRACE", value_parser = parse_duration)]
    pub orphan_grace: Duration,
}

#[derive(Args, Debug)]
pub struct SubmitArgs {
    #[command(flatten)]
    pub job: JobArgs,
    /// The coordinator's URL.
    #[arg(
        long,
        default_value = "http://127.0.0.1:7070",
        env = "QUERN_COORDINATOR"
    )]
    pub coordinator: String,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub tls: TlsClientArgs,
    /// Wait for the job to finish and print its summary.
    #[arg(long)]
    pub wait: bool,
    /// Show no progress on stderr while the job runs (the summary is still printed).
    #[arg(long, short = 'q', env = "QUERN_QUIET", value_parser = clap::builder::FalseyValueParser::new())]
    pub quiet: bool,
    /// While waiting, how long to keep trying a coordinator that stopped answering (one that
    /// is restarting, say) before giving up.
    #[arg(long, value_name = "DURATION", default_value = "60s", env = "QUERN_RECONNECT_TIMEOUT", value_parser = parse_duration)]
    pub reconnect_timeout: Duration,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// The coordinator's URL.
    #[arg(
        long,
        default_value = "http://127.0.0.1:7070",
        env = "QUERN_COORDINATOR"
    )]
    pub coordinator: String,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub tls: TlsClientArgs,
    /// A job id (job-0001): show it with its task history.
    pub job_id: Option<String>,
    /// Print JSON for scripts instead of tables (field names are listed in README.md).
    #[arg(long)]
    pub json: bool,
}

/// The number of cores, for defaults.
pub fn cores() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(args: &[&str]) -> Vec<String> {
        let cli = Cli::try_parse_from(
            ["quern", "run", "wordcount", "--output", "out"]
                .iter()
                .chain(args),
        )
        .unwrap();
        match cli.command {
            Command::Run(run) => run.job.inputs,
            other => panic!("parsed as {other:?}"),
        }
    }

    fn coordinator(args: &[&str]) -> Result<CoordinatorArgs, String> {
        let cli = Cli::try_parse_from(["quern", "coordinator"].iter().chain(args))
            .map_err(|e| e.to_string())?;
        match cli.command {
            Command::Coordinator(coordinator) => Ok(coordinator),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn coordinator_durations_are_human_and_default_to_1s_and_10s() {
        let defaults = coordinator(&[]).unwrap();
        assert_eq!(defaults.heartbeat_interval, Duration::from_secs(1));
        assert_eq!(defaults.worker_timeout, Duration::from_secs(10));
        let given = coordinator(&[
            "--heartbeat-interval",
            "200ms",
            "--worker-timeout",
            "1m 30s",
        ])
        .unwrap()
        .config()
        .unwrap();
        assert_eq!(given.heartbeat_interval, Duration::from_millis(200));
        assert_eq!(given.worker_timeout, Duration::from_secs(90));
    }

    fn job(args: &[&str]) -> Result<JobArgs, String> {
        let base = [
            "quern",
            "run",
            "wordcount",
            "--input",
            "in",
            "--output",
            "out",
        ];
        let cli = Cli::try_parse_from(base.iter().chain(args)).map_err(|e| e.to_string())?;
        match cli.command {
            Command::Run(run) => Ok(run.job),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn task_timeout_speculation_and_retention_have_coordinator_defaults_and_a_job_may_set_two() {
        let config = coordinator(&[]).unwrap().config().unwrap();
        assert_eq!(config.task_timeout, Duration::from_secs(600));
        assert!(config.speculative);
        assert_eq!(config.retention.jobs, 100);
        assert_eq!(config.retention.period, Duration::from_secs(24 * 3600));
        let config = coordinator(&[
            "--task-timeout",
            "90s",
            "--speculative",
            "off",
            "--retain-jobs",
            "3",
            "--retain-for",
            "1h",
        ])
        .unwrap()
        .config()
        .unwrap();
        assert_eq!(config.task_timeout, Duration::from_secs(90));
        assert!(!config.speculative);
        assert_eq!(config.retention.jobs, 3);
        assert_eq!(config.retention.period, Duration::from_secs(3600));

        let unset = job(&[]).unwrap();
        assert_eq!((unset.task_timeout, unset.speculative), (None, None));
        let set = job(&["--task-timeout", "2s", "--speculative", "on"]).unwrap();
        assert_eq!(set.task_timeout, Some(Duration::from_secs(2)));
        assert_eq!(set.speculative, Some(true));
        let error = job(&["--speculative", "maybe"]).unwrap_err();
        assert!(error.contains("'maybe' is neither on nor off"), "{error}");
    }

    #[test]
    fn a_bad_duration_is_refused_naming_the_flag() {
        for (flag, value, expected) in [
            ("--heartbeat-interval", "1000", "is not a duration like 1s"),
            (
                "--worker-timeout",
                "10 parsecs",
                "is not a duration like 1s",
            ),
            ("--heartbeat-interval", "0s", "must be more than zero"),
        ] {
            let error = coordinator(&[flag, value]).unwrap_err();
            let first = error.lines().next().unwrap();
            assert!(
                first.contains(flag) && first.contains(expected),
                "{flag} {value}: {error}"
            );
        }
    }

    #[test]
    fn a_worker_timeout_within_one_heartbeat_is_refused() {
        let args = coordinator(&["--heartbeat-interval", "2s", "--worker-timeout", "2s"]).unwrap();
        let error = args.config().unwrap_err();
        assert!(
            error.contains("--worker-timeout 2s must be longer than --heartbeat-interval 2s"),
            "{error}"
        );
    }

    #[test]
    fn an_input_with_a_comma_is_one_input_and_the_flag_repeats() {
        assert_eq!(inputs(&["--input", "data/a,b.csv"]), ["data/a,b.csv"]);
        assert_eq!(
            inputs(&["--input", "s3://b/x,y/", "-i", "data/c.txt"]),
            ["s3://b/x,y/", "data/c.txt"]
        );
    }
}
