//! Watching a running cluster from a test, through `quern status` as a user would, and the
//! inputs and child-process plumbing the fault tests share.

use super::*;
use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What `quern status JOB` says: the job's state, its map count and the attempt history.
pub struct JobView {
    pub state: String,
    pub map_tasks: usize,
    pub attempts: Vec<Attempt>,
}

pub fn job_view(address: &str, job_id: &str) -> JobView {
    let output = quern(&["status", "--coordinator", address, job_id]);
    assert!(output.status.success(), "status: {}", stderr(&output));
    parse_job_view(&stdout(&output))
}

/// [`job_view`] of `quern status JOB` output got some other way (from another namespace, say).
pub fn parse_job_view(text: &str) -> JobView {
    // "job job-0001 (wordcount) running in 0.312 s"
    let state = text
        .split_whitespace()
        .nth(3)
        .unwrap_or_else(|| panic!("no job summary in {text:?}"))
        .to_string();
    // "  tasks:   174 map, 4 reduce"
    let map_tasks = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("tasks:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no task counts in {text:?}"));
    let attempts = attempts(text);
    JobView {
        state,
        map_tasks,
        attempts,
    }
}

/// Worker id → shuffle address, and the job ids, from `quern status` without a job id.
pub fn cluster_view(address: &str) -> (HashMap<String, String>, Vec<String>) {
    let output = quern(&["status", "--coordinator", address]);
    assert!(output.status.success(), "status: {}", stderr(&output));
    parse_cluster_view(&stdout(&output))
}

/// [`cluster_view`] of `quern status` output got some other way (from another namespace, say).
pub fn parse_cluster_view(text: &str) -> (HashMap<String, String>, Vec<String>) {
    let mut workers = HashMap::new();
    let mut jobs = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.first() {
            Some(id) if id.starts_with("worker-") => {
                workers.insert(id.to_string(), f[1].to_string());
            }
            Some(id) if id.starts_with("job-") => jobs.push(id.to_string()),
            _ => {}
        }
    }
    (workers, jobs)
}

/// A port on loopback that was free a moment ago, so the test knows each worker's address.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Writes `copies` copies of every corpus file into `dir`.
pub fn write_input(dir: &Path, copies: usize) {
    std::fs::create_dir(dir).unwrap();
    let corpus = corpus();
    for entry in std::fs::read_dir(&corpus).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let name = path.file_name().unwrap().to_str().unwrap();
        for copy in 0..copies {
            std::fs::write(dir.join(format!("{copy}-{name}")), &bytes).unwrap();
        }
    }
}

/// The first number of a summary line: `N` of "  input:   N records, M bytes".
pub fn summary_counter(summary: &str, label: &str) -> u64 {
    summary
        .lines()
        .find_map(|l| l.trim().strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no '{label}' line in {summary:?}"))
}

/// The number before `unit` on a summary line: `M` of "  input:   N records, M bytes" for
/// `("input:", "bytes")`.
pub fn summary_value(summary: &str, label: &str, unit: &str) -> u64 {
    summary
        .lines()
        .find_map(|l| l.trim().strip_prefix(label))
        .and_then(|rest| {
            let words: Vec<&str> = rest.split_whitespace().collect();
            words
                .windows(2)
                .find(|w| w[1].trim_end_matches(',') == unit)
                .and_then(|w| w[0].parse().ok())
        })
        .unwrap_or_else(|| panic!("no '{label}' line with {unit} in {summary:?}"))
}

/// Lines in the files of `dir`, counted here: a last line without a newline counts too.
pub fn lines(dir: &Path) -> u64 {
    let mut count = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        count += bytes.iter().filter(|&&b| b == b'\n').count() as u64;
        if bytes.last().is_some_and(|&b| b != b'\n') {
            count += 1;
        }
    }
    count
}

/// Reads a child's pipe to the end on its own thread, so the child never blocks on a full pipe.
pub fn drain(pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        let mut pipe = pipe;
        let _ = pipe.read_to_string(&mut text);
        text
    })
}

/// A `quern submit … --wait` running in the background while a test hurts the cluster; killed
/// if the test ends first.
pub struct Submission {
    child: std::process::Child,
    stdout: Option<std::thread::JoinHandle<String>>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

/// How a background submission ended.
/// Submits word count over `input` into `output` with `extra` flags to the cluster at `address`,
/// waits for it (until `deadline`), and asserts that it succeeded.
pub fn wordcount_succeeds(
    address: &str,
    input: &Path,
    output: &Path,
    extra: &[&str],
    deadline: Instant,
) -> Finished {
    let mut args = submit_wordcount(
        address,
        input.to_str().unwrap(),
        output.to_str().unwrap(),
        extra,
    );
    args.push("--wait");
    let finished = Submission::start(Path::new(super::QUERN), &args).finish(deadline);
    assert!(
        finished.status.success(),
        "{}\n{}",
        finished.stderr,
        finished.stdout
    );
    finished
}

pub struct Finished {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Submission {
    /// Starts `binary ARGS` (a `submit … --wait` command line).
    pub fn start(binary: &Path, args: &[&str]) -> Submission {
        Submission::start_with_env(binary, args, &[])
    }

    /// Like [`Submission::start`], with `env` in its environment.
    pub fn start_with_env(binary: &Path, args: &[&str], env: &[(&str, &str)]) -> Submission {
        let mut child = Command::new(binary)
            .args(args)
            .env("QUERN_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("submit starts");
        let stdout = Some(drain(child.stdout.take().unwrap()));
        let stderr = Some(drain(child.stderr.take().unwrap()));
        Submission {
            child,
            stdout,
            stderr,
        }
    }

    /// Whether it has exited.
    pub fn is_done(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_some()
    }

    /// Waits for it to exit, failing the test if it has not by `deadline`.
    pub fn finish(mut self, deadline: Instant) -> Finished {
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Finished {
                    status,
                    stdout: self.stdout.take().unwrap().join().unwrap(),
                    stderr: self.stderr.take().unwrap().join().unwrap(),
                };
            }
            assert!(Instant::now() < deadline, "the job did not end in time");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Submission {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The id of the newest job the coordinator at `address` lists, once there is one newer than
/// `after` (`None`: any job).
pub fn newest_job(address: &str, after: Option<&str>, deadline: Instant) -> String {
    loop {
        if let Some(id) = cluster_view(address).1.pop()
            && Some(id.as_str()) != after
        {
            return id;
        }
        assert!(Instant::now() < deadline, "no new job showed up");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An attempt the stop-before-commit failpoint (see `worker/src/failpoint.rs`) stopped, as its
/// marker names it (`JOB r-NNNNN ATTEMPT`).
#[derive(Debug)]
pub struct StoppedAttempt {
    /// Index, among the processes polled, of the one that stopped.
    pub process: usize,
    pub job: String,
    pub task: String,
    pub attempt: u64,
}

/// Polls `pids` until the failpoint has stopped exactly one of them; returns that attempt.
pub fn wait_for_stopped_attempt(pids: &[u32], marker: &Path, deadline: Instant) -> StoppedAttempt {
    loop {
        let stopped: Vec<usize> = (0..pids.len())
            .filter(|&i| process_state(pids[i]) == Some('T'))
            .collect();
        // The marker names the attempt before its process stops.
        if let [process] = stopped[..] {
            let text = std::fs::read_to_string(marker).unwrap();
            let fields: Vec<&str> = text.split_whitespace().collect();
            assert_eq!(fields.len(), 3, "marker: {text:?}");
            return StoppedAttempt {
                process,
                job: fields[0].to_string(),
                task: fields[1].to_string(),
                attempt: fields[2].parse().unwrap(),
            };
        }
        assert!(stopped.len() < 2, "two workers stopped: {stopped:?}");
        assert!(
            Instant::now() < deadline,
            "no worker stopped before its commit (marker exists: {})",
            marker.exists()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The scheduler state of process `pid` ('R', 'S', 'T' for stopped, …), from `/proc/PID/stat`.
pub fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "PID (COMM) STATE …": COMM may hold spaces and parentheses, so look after the last ')'.
    stat[stat.rfind(')')? + 1..]
        .split_whitespace()
        .next()?
        .chars()
        .next()
}

/// Waits until the attempt that the stop-before-commit failpoint stopped, once continued, has
/// appended how its commit ended to `marker` (see `worker/src/failpoint.rs`); returns that line.
pub fn wait_for_outcome(marker: &Path, deadline: Instant) -> String {
    loop {
        let text = std::fs::read_to_string(marker).unwrap();
        if let Some(outcome) = text.lines().nth(1)
            && text.ends_with('\n')
        {
            return outcome.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "the resumed attempt never ended its commit; marker: {text:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every file below `dir`, by path relative to it, with its bytes.
pub fn files_below(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let name = path.strip_prefix(dir).unwrap().display().to_string();
                files.insert(name, std::fs::read(&path).unwrap());
            }
        }
    }
    files
}
