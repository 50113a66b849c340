//! Worker loss end to end, on real processes (issue 7): workers SIGKILLed while reduces fetch
//! from them, paused, or killed and restarted over and over. Every job still succeeds with
//! exactly the right word counts, computed here independently. A coordinator paused past the
//! worker timeout keeps its workers.

mod common;

use common::watch::*;
use common::*;
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

/// The job lines of `quern status`: `job-0001 wordcount running maps 200/200 reduces 0/4`.
fn reduces_started(address: &str, job_id: &str) -> Option<bool> {
    let view = job_view(address, job_id);
    if view.state != "running" {
        return None;
    }
    let maps_done = view
        .attempts
        .iter()
        .filter(|a| a.task.starts_with("m-") && a.state == "succeeded")
        .count();
    let reduce_running = view
        .attempts
        .iter()
        .any(|a| a.task.starts_with("r-") && a.state == "running");
    Some(maps_done == view.map_tasks && reduce_running)
}

/// Checks a finished word-count job: exit 0, `_SUCCESS`, one part per partition, exact counts.
/// `expected` and `input_lines` are counted from the input by the test; `what` names the job in
/// a failure.
fn assert_exact(
    finished: &Finished,
    output: &Path,
    reducers: u32,
    expected: &HashMap<Vec<u8>, u64>,
    input_lines: u64,
    what: &str,
) {
    assert!(
        finished.status.success(),
        "{what} failed ({}): {}\n{}",
        finished.status,
        finished.stderr,
        finished.stdout
    );
    assert_eq!(&read_output(output, reducers), expected, "{what}");
    assert_eq!(
        summary_counter(&finished.stdout, "input:"),
        input_lines,
        "{what}: input records counted once\n{}",
        finished.stdout
    );
}

/// What the grep rounds of the crash loop look for.
const GREP_PATTERN: &str = "the";

/// Checks a finished grep job: exit 0, exactly the `expected` lines (computed by the test), and
/// the user counter of matches equal to their number.
fn assert_exact_grep(
    finished: &Finished,
    output: &Path,
    reducers: u32,
    expected: &[Vec<u8>],
    what: &str,
) {
    assert!(
        finished.status.success(),
        "{what} failed ({}): {}\n{}",
        finished.status,
        finished.stderr,
        finished.stdout
    );
    assert!(output.join("_SUCCESS").is_file(), "{what}: no _SUCCESS");
    assert!(
        read_part_lines(output, reducers) == expected,
        "{what}: wrong lines"
    );
    assert_eq!(
        summary_counter(&finished.stdout, "counter: grep.matches"),
        expected.len() as u64,
        "{what}: matches counted once\n{}",
        finished.stdout
    );
}

/// The default heartbeat (1 s) and worker timeout (10 s): one worker is SIGKILLed while reduces
/// fetch from it, and the other is paused for 3 s at the same moment. The reduces cannot fetch
/// the dead worker's map outputs long before the coordinator could declare it dead; their
/// fetch-failure reports make its maps run again, and the job finishes exactly.
#[test]
fn a_worker_killed_while_reduces_fetch_from_it_loses_nothing_with_default_settings() {
    const REDUCERS: u32 = 4;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(90);
    let mut cluster = Cluster::start(0, 1);
    let victim = cluster.add_worker_with(&["--slots", "1"]);
    let paused = cluster.add_worker_with(&["--slots", "1"]);
    cluster.wait_for_ready_workers(2);

    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("out");
    let input = corpus();
    let reducers = REDUCERS.to_string();
    let submission = Submission::start(
        Path::new(QUERN),
        &submit_wordcount(
            &cluster.address,
            input.to_str().unwrap(),
            output.to_str().unwrap(),
            &["--reducers", &reducers, "--split-size", "16KiB", "--wait"],
        ),
    );
    let job_id = newest_job(&cluster.address, None, deadline);
    loop {
        match reduces_started(&cluster.address, &job_id) {
            Some(true) => break,
            Some(false) => {}
            None => panic!("the job ended before its reduces could be caught: make it larger"),
        }
        assert!(Instant::now() < deadline, "the reduces never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    cluster.kill(victim);
    cluster.signal(paused, "STOP");
    std::thread::sleep(Duration::from_secs(3));
    cluster.signal(paused, "CONT");
    eprintln!(
        "killed one worker and paused the other at {:?}",
        started.elapsed()
    );

    let finished = submission.finish(deadline);
    let expected = expected_counts(&input);
    assert_exact(
        &finished,
        &output,
        REDUCERS,
        &expected,
        lines(&input),
        "the job",
    );
    eprintln!("finished at {:?}\n{}", started.elapsed(), finished.stdout);
}

/// A small deterministic generator, so a failing crash loop can be told apart by its seed.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// Four one-slot workers, one of which is SIGKILLed and restarted every 0.2–1 s for the whole of
/// each job, with a 200 ms heartbeat and a 1 s worker timeout. Five jobs in a row, each with
/// exact output and `_SUCCESS`; each takes 10–30 s on a 2-core machine in a dev build, with
/// 13–45 kills. Every other job is a grep, whose user counter of matches must come out exact:
/// counted once per map task, however many of its attempts ran or lost their output; every
/// fourth is a map-only grep (`--reducers 0`), whose maps commit their own part files.
/// `QUERN_CRASH_LOOP_JOBS=N` runs another number.
#[test]
fn jobs_finish_exactly_while_workers_are_killed_and_restarted_in_a_loop() {
    const WORKERS: usize = 4;
    const REDUCERS: u32 = 5;
    let jobs: usize = std::env::var("QUERN_CRASH_LOOP_JOBS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(5);
    let seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("crash loop seed {seed}");
    let mut random = Lcg(seed);
    let mut cluster = Cluster::start_with(
        0,
        1,
        &["--heartbeat-interval", "200ms", "--worker-timeout", "1s"],
    );
    let workers: Vec<usize> = (0..WORKERS)
        .map(|_| cluster.add_worker_with(&["--slots", "1"]))
        .collect();
    cluster.wait_for_ready_workers(WORKERS);

    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    write_input(&input, 10);
    let expected = expected_counts(&input);
    let input_lines = lines(&input);
    let matches = grep_lines(&input, GREP_PATTERN.as_bytes());
    let mut previous: Option<String> = None;
    for round in 0..jobs {
        let started = Instant::now();
        let deadline = started + Duration::from_secs(300);
        let output = dir.path().join(format!("out-{round}"));
        let grep = round % 2 == 1;
        let reducers = if round % 4 == 3 { 0 } else { REDUCERS };
        let reducers_arg = reducers.to_string();
        let pattern = format!("pattern={GREP_PATTERN}");
        let mut args = submit_wordcount(
            &cluster.address,
            input.to_str().unwrap(),
            output.to_str().unwrap(),
            &[
                "--reducers",
                &reducers_arg,
                "--split-size",
                "256KiB",
                "--wait",
            ],
        );
        if grep {
            args[1] = "grep";
            args.extend(["-D", &pattern]);
        }
        let mut submission = Submission::start(Path::new(QUERN), &args);
        let job_id = newest_job(&cluster.address, previous.as_deref(), deadline);
        let mut kills = 0;
        while !submission.is_done() {
            assert!(Instant::now() < deadline, "job {round} did not finish");
            std::thread::sleep(Duration::from_millis(200 + random.below(800)));
            if submission.is_done() {
                break;
            }
            let victim = workers[random.below(WORKERS as u64) as usize];
            cluster.replace_worker(victim, &["--slots", "1"]);
            kills += 1;
        }
        let finished = submission.finish(deadline);
        let what = format!("job {round} ({job_id}, seed {seed}, {kills} kills)");
        if grep {
            assert_exact_grep(&finished, &output, reducers, &matches, &what);
        } else {
            assert_exact(&finished, &output, REDUCERS, &expected, input_lines, &what);
        }
        eprintln!(
            "job {round} ({job_id}): exact after {kills} kills in {:?}",
            started.elapsed()
        );
        previous = Some(job_id);
    }
}

/// A coordinator stopped (SIGSTOP) for longer than the worker timeout while its workers run on:
/// once continued, it reads the heartbeats that waited for it and keeps both workers under the
/// same ids, rather than declaring them dead in the moment before it reads them (and having
/// them register again, their map outputs lost).
#[test]
fn a_coordinator_paused_past_the_worker_timeout_keeps_its_workers() {
    let cluster = Cluster::start_with(
        2,
        1,
        &["--heartbeat-interval", "100ms", "--worker-timeout", "1s"],
    );
    let workers = || {
        let (workers, _) = cluster_view(&cluster.address);
        workers
            .into_keys()
            .collect::<std::collections::BTreeSet<_>>()
    };
    let before = workers();
    assert_eq!(before.len(), 2, "{before:?}");
    cluster.signal(0, "STOP");
    std::thread::sleep(Duration::from_millis(2500));
    cluster.signal(0, "CONT");
    // For two worker timeouts after, the same two workers.
    let watch_until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < watch_until {
        assert_eq!(workers(), before, "the workers changed after the pause");
        std::thread::sleep(Duration::from_millis(100));
    }
}
