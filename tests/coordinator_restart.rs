//! A coordinator killed and started again (issue 8). With `--state-dir`, a running job runs
//! again under its own id and finishes exactly, while `submit --wait` keeps following it.
//! Without one, the restarted coordinator has lost its jobs, but it never reuses their ids, a
//! client following one says plainly what happened, and the workers carry on with new jobs.

mod common;

use common::watch::*;
use common::*;
use std::time::{Duration, Instant};

/// The coordinator is SIGKILLed once a third of the maps are done and started again with the
/// same state directory: the job resumes under its id, `submit --wait` exits 0, and the output is
/// exact, with `_SUCCESS` and every input line counted once.
#[test]
fn a_job_survives_its_coordinator_being_killed_and_started_again_with_its_state_dir() {
    let deadline = Instant::now() + Duration::from_secs(120);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let flags = [
        "--heartbeat-interval",
        "100ms",
        "--worker-timeout",
        "1s",
        "--state-dir",
        state.to_str().unwrap(),
    ];
    let mut cluster = Cluster::start_with(2, 1, &flags);
    let input = dir.path().join("in");
    write_input(&input, 3);
    let output = dir.path().join("out");
    let args = submit_wordcount(
        &cluster.address,
        input.to_str().unwrap(),
        output.to_str().unwrap(),
        &["--wait", "--reducers", "3", "--split-size", "64KiB"],
    );
    let waiting = Submission::start(std::path::Path::new(QUERN), &args);
    let job = newest_job(&cluster.address, None, deadline);
    loop {
        let view = job_view(&cluster.address, &job);
        let done = view
            .attempts
            .iter()
            .filter(|a| a.task.starts_with("m-") && a.state == "succeeded")
            .count();
        assert_eq!(view.state, "running", "the job ended before the restart");
        if done * 3 >= view.map_tasks {
            break;
        }
        assert!(Instant::now() < deadline, "maps did not progress");
        std::thread::sleep(Duration::from_millis(10));
    }

    cluster.restart_coordinator(&flags);
    let finished = waiting.finish(deadline);
    assert!(
        finished.status.success(),
        "{}\n{}",
        finished.stderr,
        finished.stdout
    );
    assert_eq!(read_output(&output, 3), expected_counts(&input));
    assert!(output.join("_SUCCESS").is_file());
    assert_eq!(
        summary_counter(&finished.stdout, "input:"),
        lines(&input),
        "{}",
        finished.stdout
    );
    assert_eq!(job_view(&cluster.address, &job).state, "succeeded");
}

#[test]
fn after_a_restart_a_waiting_client_says_the_job_is_gone_and_new_jobs_get_new_ids() {
    let deadline = Instant::now() + Duration::from_secs(60);
    let flags = ["--heartbeat-interval", "100ms", "--worker-timeout", "1s"];
    let mut cluster = Cluster::start_with(0, 1, &flags);
    let jobs = example_binary("fault_jobs");
    cluster.worker_binary = jobs.clone();
    cluster.add_worker_with(&["--slots", "1"]);
    cluster.wait_for_ready_workers(1);

    // A job that cannot end by itself: its one map hangs (no marker file: every attempt does).
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "QUERN-HANG\n").unwrap();
    let output = dir.path().join("out");
    let mut args = submit_wordcount(
        &cluster.address,
        input.to_str().unwrap(),
        output.to_str().unwrap(),
        &[
            "--wait",
            "--reconnect-timeout",
            "30s",
            "--speculative",
            "off",
        ],
    );
    args[1] = "hangcount";
    let waiting = Submission::start(&jobs, &args);
    let lost = newest_job(&cluster.address, None, deadline);

    cluster.restart_coordinator(&flags);
    let finished = waiting.finish(deadline);
    assert!(!finished.status.success(), "{}", finished.stdout);
    assert!(
        finished.stderr.contains(&format!(
            "the coordinator at {} came back without job {lost}: it keeps no state across a \
             restart unless started with --state-dir",
            cluster.address
        )),
        "{}",
        finished.stderr
    );

    // The worker registers with the new coordinator by itself; its hung attempt is cancelled.
    cluster.wait_for_ready_workers(1);
    let text = "after the restart\nthe end\n";
    assert_eq!(
        count_words_of(&cluster.address, text),
        "after\t1\nend\t1\nrestart\t1\nthe\t2\n"
    );
    let next = newest_job(&cluster.address, None, deadline);
    assert_ne!(next, lost, "a job id was issued twice");
    let (old, new) = (incarnation(&lost), incarnation(&next));
    assert!(old < new, "{lost} then {next}");
}

/// A client waiting on a job whose coordinator stays down says so once, keeps trying for
/// `--reconnect-timeout`, then gives up naming the job.
#[test]
fn a_waiting_client_gives_up_on_a_coordinator_that_stays_down_after_the_reconnect_timeout() {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut cluster = Cluster::start(0, 1);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "no worker runs this\n").unwrap();
    let output = dir.path().join("out");
    let args = submit_wordcount(
        &cluster.address,
        input.to_str().unwrap(),
        output.to_str().unwrap(),
        &["--wait", "--reconnect-timeout", "1s"],
    );
    let waiting = Submission::start(std::path::Path::new(QUERN), &args);
    let job = newest_job(&cluster.address, None, deadline);
    cluster.kill(0);
    let started = Instant::now();
    let finished = waiting.finish(deadline);
    assert!(!finished.status.success(), "{}", finished.stdout);
    let said = |line: &str| finished.stderr.matches(line).count();
    let unreachable = format!(
        "the coordinator at {} is unreachable; retrying for up to 1 s",
        cluster.address
    );
    assert_eq!(said(&unreachable), 1, "{}", finished.stderr);
    assert_eq!(
        said(&format!("gave up following job {job} after 1 s")),
        1,
        "{}",
        finished.stderr
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// The incarnation part of a job id, `job-<incarnation>-NNNN`.
fn incarnation(job_id: &str) -> u64 {
    job_id
        .split('-')
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a job id: {job_id}"))
}
