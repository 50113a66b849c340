//! Bad input ends with a non-zero exit and one line naming the problem, within seconds, and the
//! coordinator goes on serving other jobs.

mod common;

use common::*;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Generous: these fail fast, but a loaded CI machine may be slow to start processes.
const BOUND: Duration = Duration::from_secs(15);

/// Runs `quern ARGS`, expecting failure within the bound; returns stderr.
fn fails(args: &[&str]) -> String {
    fails_with_env(args, &[])
}

/// [`fails`], with extra environment variables.
fn fails_with_env(args: &[&str], env: &[(&str, String)]) -> String {
    let started = Instant::now();
    let output = quern_with_env(args, env);
    assert!(
        started.elapsed() < BOUND,
        "took {:?}: {args:?}",
        started.elapsed()
    );
    assert!(
        !output.status.success(),
        "succeeded: {args:?}\n{}",
        stdout(&output)
    );
    let err = stderr(&output);
    // clap adds a "For more information, try '--help'." hint under a usage error.
    let lines = err
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with("For more information"));
    assert_eq!(lines.count(), 1, "one line of error, got: {err}");
    err
}

fn submit_args<'a>(address: &'a str, input: &'a str, output: &'a str) -> Vec<&'a str> {
    submit_wordcount(address, input, output, &["--wait"])
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn bad_jobs_are_refused_by_name_and_the_coordinator_serves_on() {
    let cluster = Cluster::start(1, 2);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    std::fs::write(input.join("a.txt"), "to be or not to be\n").unwrap();
    let out = dir.path().join("out");

    let missing = dir.path().join("no-such-dir");
    let err = fails(&submit_args(&cluster.address, path(&missing), path(&out)));
    assert!(
        err.contains(&format!(
            "input path does not exist: file://{}",
            missing.display()
        )),
        "{err}"
    );

    let glob = format!("{}/*.csv", input.display());
    let err = fails(&submit_args(&cluster.address, &glob, path(&out)));
    assert!(
        err.contains(&format!("input matches no files: file://{glob}")),
        "{err}"
    );

    let mut unknown = submit_args(&cluster.address, path(&input), path(&out));
    unknown[1] = "nosuchjob";
    let err = fails(&unknown);
    assert!(
        err.contains(
            "unknown job 'nosuchjob'; this binary has: grep, indexer, join, sort, wordcount"
        ),
        "{err}"
    );

    let mut zero = submit_args(&cluster.address, path(&input), path(&out));
    zero.extend(["--reducers", "0"]);
    let err = fails(&zero);
    assert!(
        err.contains("job 'wordcount' cannot run map-only (--reducers 0)"),
        "{err}"
    );

    // The coordinator still runs jobs, and a finished output is then refused...
    let ok = quern(&submit_args(&cluster.address, path(&input), path(&out)));
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert_eq!(
        std::fs::read_to_string(out.join("part-r-00000")).unwrap(),
        "be\t2\nnot\t1\nor\t1\nto\t2\n"
    );
    let err = fails(&submit_args(&cluster.address, path(&input), path(&out)));
    assert!(
        err.contains(&format!(
            "output file://{} already holds a finished job",
            out.display()
        )),
        "{err}"
    );
    assert!(err.contains("--overwrite"), "{err}");

    // ...unless overwritten.
    std::fs::write(input.join("a.txt"), "once\n").unwrap();
    let mut overwrite = submit_args(&cluster.address, path(&input), path(&out));
    overwrite.push("--overwrite");
    let ok = quern(&overwrite);
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert_eq!(
        std::fs::read_to_string(out.join("part-r-00000")).unwrap(),
        "once\t1\n"
    );
}

#[test]
fn submit_to_an_address_nobody_listens_on_fails_naming_it() {
    let address = dead_address();
    let dir = tempfile::tempdir().unwrap();
    let err = fails(&submit_args(
        &address,
        path(dir.path()),
        path(&dir.path().join("out")),
    ));
    assert!(
        err.contains(&format!(
            "cannot reach the coordinator at {address}: connection refused"
        )),
        "{err}"
    );
}

#[test]
fn a_worker_retries_an_unreachable_coordinator_with_backoff_and_says_so() {
    let address = dead_address();
    let mut worker = Command::new(QUERN)
        .args(["worker", "--coordinator", &address])
        .env("QUERN_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(worker.stderr.take().unwrap());
    let started = Instant::now();
    let mut delays = Vec::new();
    for line in stderr.lines() {
        let line = line.unwrap();
        if line.contains("cannot register with the coordinator; retrying") {
            assert!(line.contains(&address), "{line}");
            let delay = line
                .split("retry_in_ms=")
                .nth(1)
                .unwrap()
                .split_whitespace()
                .next()
                .unwrap();
            delays.push(delay.parse::<u64>().unwrap());
            if delays.len() == 3 {
                break;
            }
        }
        assert!(started.elapsed() < BOUND, "no retries logged");
    }
    let _ = worker.kill();
    let _ = worker.wait();
    assert_eq!(delays, [100, 200, 400], "the worker backs off");
}

#[test]
fn a_bad_coordinator_duration_is_refused_naming_its_flag() {
    let listen = ["coordinator", "--listen", "127.0.0.1:0"];
    let err = fails(&[&listen[..], &["--heartbeat-interval", "1000"]].concat());
    assert!(
        err.contains("--heartbeat-interval") && err.contains("'1000' is not a duration like 1s"),
        "{err}"
    );
    let err = fails_with_env(&listen, &[("QUERN_WORKER_TIMEOUT", "soon".to_string())]);
    assert!(
        err.contains("--worker-timeout") && err.contains("'soon' is not a duration"),
        "{err}"
    );
    let err = fails(
        &[
            &listen[..],
            &["--heartbeat-interval", "2s", "--worker-timeout", "1s"],
        ]
        .concat(),
    );
    assert!(
        err.contains("--worker-timeout 1s must be longer than --heartbeat-interval 2s"),
        "{err}"
    );
}

#[test]
fn a_worker_on_a_wildcard_address_without_an_advertised_host_is_refused_at_startup() {
    let address = dead_address();
    // A wildcard address needs a token first (see end_to_end).
    let token = [("QUERN_TOKEN", "a-token-for-the-wildcard".to_string())];
    let err = fails_with_env(
        &["worker", "--coordinator", &address, "--listen", "0.0.0.0:0"],
        &token,
    );
    assert!(
        err.contains("--listen 0.0.0.0:0") && err.contains("--advertise HOST"),
        "{err}"
    );
    let err = fails_with_env(
        &[
            "worker",
            "--coordinator",
            &address,
            "--listen",
            "0.0.0.0:0",
            "--advertise",
            "node-1:7071",
        ],
        &token,
    );
    assert!(err.contains("--advertise 'node-1:7071'"), "{err}");
}

/// `quern run` whose workers all fail to start (here: no temporary directory for their work
/// directories) fails with their error instead of waiting for a worker forever.
#[test]
fn quern_run_fails_when_no_worker_can_start() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "a b\n").unwrap();
    let (out, missing) = (dir.path().join("out"), dir.path().join("no-such-tmp"));
    let args = run_wordcount(path(&input), path(&out), &["--workers", "2"]);
    // Not `quern()`: without the fix this waits forever, and the test must fail, not hang.
    let mut run = Command::new(QUERN)
        .args(args)
        .env("QUERN_LOG", "warn")
        .env("TMPDIR", &missing)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while run.try_wait().unwrap().is_none() {
        if started.elapsed() > BOUND {
            let _ = run.kill();
            let _ = run.wait();
            panic!("quern run still waiting after {BOUND:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = run.wait_with_output().unwrap();
    assert!(!output.status.success(), "succeeded: {}", stdout(&output));
    let err = stderr(&output);
    assert_eq!(err.lines().count(), 1, "one line of error, got: {err}");
    assert!(
        err.contains(&format!(
            "worker failed: cannot create a work directory in {}",
            missing.display()
        )),
        "{err}"
    );
}
