//! Shared by the end-to-end tests: start real `quern` processes on loopback ports, run the CLI,
//! and compute word counts independently of the program under test.
#![allow(dead_code)]

pub mod netns;
pub mod watch;
pub mod web;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const QUERN: &str = env!("CARGO_BIN_EXE_quern");

/// The public-domain books the tests count (Project Gutenberg texts, kept in the repository so
/// that a clone anywhere runs the tests).
pub fn corpus() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/corpus/gutenberg");
    assert!(
        dir.is_dir(),
        "the test corpus is missing at {}",
        dir.display()
    );
    dir
}

/// Word counts as Python's `bytes.split()` finds them: runs of bytes other than ASCII whitespace
/// (space, \t, \n, \r, \x0b, \x0c), over every file of `dir`.
pub fn expected_counts(dir: &Path) -> HashMap<Vec<u8>, u64> {
    let mut counts = HashMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let mut word = Vec::new();
        for &b in bytes.iter().chain(std::iter::once(&b' ')) {
            if matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) {
                if !word.is_empty() {
                    *counts.entry(std::mem::take(&mut word)).or_insert(0) += 1;
                }
            } else {
                word.push(b);
            }
        }
    }
    counts
}

/// Reads a word-count output directory: `_SUCCESS` present, `reducers` part files, every line
/// `word<TAB>count`, words sorted within each part and unique across parts.
pub fn read_output(dir: &Path, reducers: u32) -> HashMap<Vec<u8>, u64> {
    assert!(
        dir.join("_SUCCESS").is_file(),
        "no _SUCCESS in {}",
        dir.display()
    );
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let mut expected_names: Vec<String> = (0..reducers).map(|p| format!("part-r-{p:05}")).collect();
    expected_names.insert(0, "_SUCCESS".to_string());
    assert_eq!(names, expected_names, "files in {}", dir.display());
    let mut counts = HashMap::new();
    for p in 0..reducers {
        let text = std::fs::read(dir.join(format!("part-r-{p:05}"))).unwrap();
        let mut previous: Option<Vec<u8>> = None;
        for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let tab = line
                .iter()
                .rposition(|&b| b == b'\t')
                .expect("a tab in every line");
            let word = line[..tab].to_vec();
            let count: u64 = std::str::from_utf8(&line[tab + 1..])
                .unwrap()
                .parse()
                .unwrap();
            assert!(
                previous.as_ref() < Some(&word),
                "words sorted within part {p}"
            );
            assert!(
                counts.insert(word.clone(), count).is_none(),
                "a word in two parts"
            );
            previous = Some(word);
        }
        assert!(text.is_empty() || text.ends_with(b"\n"));
    }
    counts
}

/// Runs `quern ARGS` to completion.
pub fn quern(args: &[&str]) -> Output {
    quern_with_env(args, &[])
}

/// Runs `quern ARGS` to completion with extra environment variables.
pub fn quern_with_env(args: &[&str], env: &[(&str, String)]) -> Output {
    Command::new(QUERN)
        .args(args)
        .env("QUERN_LOG", "warn")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("quern runs")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Where a daemon's log goes: nowhere, unless QUERN_TEST_LOGS is set (to debug a test).
pub fn daemon_log() -> Stdio {
    if std::env::var_os("QUERN_TEST_LOGS").is_some() {
        Stdio::inherit()
    } else {
        Stdio::null()
    }
}

/// A new file `name` in `logs`, or [`daemon_log`] if there is no `logs`.
fn log_to(logs: Option<&Path>, name: &str) -> Stdio {
    match logs {
        Some(dir) => std::fs::File::create(dir.join(name))
            .expect("a log file")
            .into(),
        None => daemon_log(),
    }
}

/// Starts a coordinator listening on `listen` with `flags` and `env`; returns it and the address
/// it says it listens on.
fn spawn_coordinator(
    listen: &str,
    flags: &[&str],
    env: &[(&'static str, String)],
    log: Stdio,
) -> (Child, String) {
    let mut coordinator = Command::new(QUERN)
        .args(["coordinator", "--listen", listen])
        .args(flags)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("coordinator starts");
    let mut line = String::new();
    BufReader::new(coordinator.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let address = line
        .trim()
        .strip_prefix("quern coordinator listening on ")
        .unwrap_or_else(|| panic!("unexpected first line from the coordinator: {line:?}"))
        .to_string();
    (coordinator, address)
}

/// Child processes killed when dropped, so a failing test leaves nothing running. A test may
/// reach a process by its index, to kill it mid-job.
#[derive(Default)]
pub struct Processes(pub Vec<Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A coordinator and workers, each a real `quern` process.
pub struct Cluster {
    pub address: String,
    pub processes: Processes,
    /// Environment every process of the cluster gets (S3 settings, say).
    pub env: Vec<(&'static str, String)>,
    /// The binary workers start from: `quern`, or a job binary of the user's.
    pub worker_binary: PathBuf,
    /// Where each process's log goes, a file per process; None: [`daemon_log`].
    pub logs: Option<PathBuf>,
}

impl Cluster {
    /// Starts a coordinator on a free loopback port and `workers` workers with `slots` each, and
    /// waits until every worker is ready for tasks.
    pub fn start(workers: usize, slots: u32) -> Cluster {
        Cluster::start_with(workers, slots, &[])
    }

    /// Like [`Cluster::start`], with extra coordinator flags (`--heartbeat-interval 100ms`, …).
    pub fn start_with(workers: usize, slots: u32, coordinator_flags: &[&str]) -> Cluster {
        Cluster::start_with_env(Vec::new(), workers, slots, coordinator_flags)
    }

    /// Like [`Cluster::start_with`], every process with `env` in its environment.
    pub fn start_with_env(
        env: Vec<(&'static str, String)>,
        workers: usize,
        slots: u32,
        coordinator_flags: &[&str],
    ) -> Cluster {
        Cluster::start_logging(env, workers, slots, coordinator_flags, None)
    }

    /// Like [`Cluster::start_with_env`], each process logging to a file of its own in `logs`
    /// (`coordinator`, `worker-1`, …), if given.
    pub fn start_logging(
        env: Vec<(&'static str, String)>,
        workers: usize,
        slots: u32,
        coordinator_flags: &[&str],
        logs: Option<&Path>,
    ) -> Cluster {
        let log = log_to(logs, "coordinator");
        let (coordinator, address) = spawn_coordinator("127.0.0.1:0", coordinator_flags, &env, log);
        let mut cluster = Cluster {
            address,
            processes: Processes(vec![coordinator]),
            env,
            worker_binary: PathBuf::from(QUERN),
            logs: logs.map(Path::to_path_buf),
        };
        for _ in 0..workers {
            cluster.add_worker(slots);
        }
        cluster.wait_for_ready_workers(workers);
        cluster
    }

    /// SIGKILLs the coordinator and starts a new one, with `flags`, on the same address; the
    /// workers find it again by themselves.
    pub fn restart_coordinator(&mut self, flags: &[&str]) {
        self.kill(0);
        let listen = self.address.trim_start_matches("http://").to_string();
        let log = log_to(self.logs.as_deref(), "coordinator-restarted");
        let (coordinator, address) = spawn_coordinator(&listen, flags, &self.env, log);
        assert_eq!(address, self.address, "the coordinator came back elsewhere");
        self.processes.0[0] = coordinator;
    }

    pub fn add_worker(&mut self, slots: u32) {
        self.add_worker_with(&["--slots", &slots.to_string()]);
    }

    /// Starts a worker with extra flags; returns its index in `processes`.
    pub fn add_worker_with(&mut self, flags: &[&str]) -> usize {
        let worker = self.spawn_worker(flags);
        self.processes.0.push(worker);
        self.processes.0.len() - 1
    }

    /// SIGKILLs the process at `index` and starts a worker with `flags` in its place.
    pub fn replace_worker(&mut self, index: usize, flags: &[&str]) {
        self.kill(index);
        self.processes.0[index] = self.spawn_worker(flags);
    }

    /// SIGKILLs the process at `index` (`Child::kill` is SIGKILL on Unix) and reaps it.
    pub fn kill(&mut self, index: usize) {
        let child = &mut self.processes.0[index];
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Sends `signal` (`STOP`, `CONT`, …) to the process at `index`.
    pub fn signal(&self, index: usize, signal: &str) {
        let pid = self.processes.0[index].id().to_string();
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "kill -{signal} {pid}");
    }

    fn spawn_worker(&self, flags: &[&str]) -> Child {
        Command::new(&self.worker_binary)
            .args(["worker", "--coordinator", &self.address])
            .args(flags)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log_to(
                self.logs.as_deref(),
                &format!("worker-{}", self.processes.0.len()),
            ))
            .spawn()
            .expect("worker starts")
    }

    /// Polls `quern status` until `count` workers are ready.
    pub fn wait_for_ready_workers(&self, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let output = quern_with_env(&["status", "--coordinator", &self.address], &self.env);
            let ready = stdout(&output)
                .lines()
                .filter(|l| l.contains(" ready "))
                .count();
            if ready == count {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "workers not ready: {}",
                stdout(&output)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The example binary `name` of the quern package (cli/examples/NAME.rs), built if a filtered
/// test run has not built it.
pub fn example_binary(name: &str) -> PathBuf {
    let path = Path::new(QUERN)
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    // Built once per test binary, even if a file is there: an earlier build's may be stale. The
    // whole workspace's examples, so that dependencies resolve with the same features as the
    // test build (`-p quern` alone would resolve some differently and rebuild half the tree).
    static BUILT: std::sync::Once = std::sync::Once::new();
    BUILT.call_once(|| {
        // Only the environment a shell gives cargo: the variables cargo sets for a test process
        // would look new to build scripts that watch the environment (ring's does), and make
        // them, and everything above them, build again.
        let kept = [
            "PATH",
            "HOME",
            "CARGO_HOME",
            "RUSTUP_HOME",
            "RUSTUP_TOOLCHAIN",
            "CARGO_TARGET_DIR",
            "TMPDIR",
        ];
        let status = Command::new(env!("CARGO"))
            .args(["build", "--workspace", "--examples"])
            .env_clear()
            .envs(kept.iter().filter_map(|k| Some((k, std::env::var_os(k)?))))
            .status()
            .unwrap();
        assert!(status.success(), "cannot build the examples");
    });
    path
}

/// An address where nobody listens: a port that was free a moment ago.
pub fn dead_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", listener.local_addr().unwrap())
}

/// `submit wordcount --coordinator C --input I --output O`, then `extra`.
pub fn submit_wordcount<'a>(
    coordinator: &'a str,
    input: &'a str,
    output: &'a str,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec![
        "submit",
        "wordcount",
        "--coordinator",
        coordinator,
        "--input",
        input,
        "--output",
        output,
    ];
    args.extend_from_slice(extra);
    args
}

/// `run wordcount --input I --output O`, then `extra`.
pub fn run_wordcount<'a>(input: &'a str, output: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["run", "wordcount", "--input", input, "--output", output];
    args.extend_from_slice(extra);
    args
}

/// One attempt line of the history `quern status JOB` prints.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub task: String,
    pub attempt: u64,
    pub worker: String,
    pub state: String,
    pub start_ms: u64,
    pub duration_ms: u64,
    /// A backup (speculative) attempt.
    pub backup: bool,
}

/// The attempt history in `quern status JOB` output.
pub fn attempts(status: &str) -> Vec<Attempt> {
    let header = status
        .lines()
        .position(|l| l.starts_with("TASK"))
        .unwrap_or_else(|| panic!("no history table in {status:?}"));
    status
        .lines()
        .skip(header + 1)
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            Attempt {
                task: f[0].to_string(),
                attempt: f[1].parse().unwrap(),
                worker: f[2].to_string(),
                state: f[3].to_string(),
                start_ms: f[4].parse().unwrap(),
                duration_ms: f[5].parse().unwrap(),
                backup: f[6] == "backup",
            }
        })
        .collect()
}

/// Submits word count over `text` to the cluster at `address`, waits, and returns the one part
/// file's contents.
pub fn count_words_of(address: &str, text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, text).unwrap();
    let output = dir.path().join("out");
    let run = quern(&submit_wordcount(
        address,
        input.to_str().unwrap(),
        output.to_str().unwrap(),
        &["--wait"],
    ));
    assert!(run.status.success(), "{}", stderr(&run));
    std::fs::read_to_string(output.join("part-r-00000")).unwrap()
}

/// The lines of the files in `dir` that hold `pattern`, as `grep` writes them: `FILE:OFFSET<TAB>LINE`,
/// computed here from the files themselves; sorted.
pub fn grep_lines(dir: &Path, pattern: &[u8]) -> Vec<Vec<u8>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let text = std::fs::read(&path).unwrap();
        let mut offset = 0;
        for line in text.split_inclusive(|&b| b == b'\n') {
            let bare = line.strip_suffix(b"\n").unwrap_or(line);
            let bare = bare.strip_suffix(b"\r").unwrap_or(bare);
            if bare.windows(pattern.len()).any(|w| w == pattern) {
                let mut record = format!("{name}:{offset}\t").into_bytes();
                record.extend_from_slice(bare);
                found.push(record);
            }
            offset += line.len();
        }
    }
    found.sort();
    found
}

/// Every line of the part files `part-r-00000` … of `reducers` partitions in `dir`, sorted; of
/// `part-m-00000` … if `reducers` is 0 (map-only), as many as there are.
pub fn read_part_lines(dir: &Path, reducers: u32) -> Vec<Vec<u8>> {
    let parts: Vec<String> = match reducers {
        0 => (0..)
            .map(|part| format!("part-m-{part:05}"))
            .take_while(|name| dir.join(name).exists())
            .collect(),
        n => (0..n).map(|part| format!("part-r-{part:05}")).collect(),
    };
    let mut found = Vec::new();
    for part in parts {
        let text = std::fs::read(dir.join(part)).unwrap();
        found.extend(
            text.split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .map(<[u8]>::to_vec),
        );
    }
    found.sort();
    found
}
