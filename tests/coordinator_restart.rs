//! A coordinator killed and started again (issue 8). With `--state-dir`, a running job resumes
//! under its own id and finishes exactly, while `submit --wait` keeps following it: in the map
//! phase, in the reduce phase, between the last commit and `_SUCCESS`, twice in one job, and on
//! S3 with uploads open. What was done before the crash is not done again: finished maps are
//! adopted from the workers holding them, committed partitions stay committed. Without a state
//! directory, the restarted coordinator has lost its jobs, but it never reuses their ids, a
//! client following one says plainly what happened, and the workers carry on with new jobs.
//!
//! Precise moments come from test failpoints: the coordinator's (`coordinator/src/failpoint.rs`)
//! stops it right after a commit or right before `_SUCCESS`; the workers' stops one before its
//! commit.

mod common;

use common::watch::*;
use common::*;
use quern_testkit::S3Server;
use std::path::Path;
use std::time::{Duration, Instant};

const REDUCERS: u32 = 3;

/// A cluster of two one-slot workers whose coordinator journals to a state directory, killed and
/// started again on the same address and directory by [`Restarts::restart`]. The rejoin window
/// (the worker timeout) is long enough for the workers to find the new coordinator, which they
/// retry every few hundred milliseconds, so a test that expects map outputs adopted gets them.
struct Restarts {
    cluster: Cluster,
    dir: tempfile::TempDir,
    flags: Vec<String>,
    deadline: Instant,
}

impl Restarts {
    fn start(env: Vec<(&'static str, String)>) -> Restarts {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state").display().to_string();
        let flags: Vec<String> = [
            "--heartbeat-interval",
            "100ms",
            "--worker-timeout",
            "3s",
            "--state-dir",
            &state,
        ]
        .map(String::from)
        .into();
        let refs: Vec<&str> = flags.iter().map(String::as_str).collect();
        Restarts {
            cluster: Cluster::start_with_env(env, 2, 1, &refs),
            dir,
            flags,
            deadline: Instant::now() + Duration::from_secs(120),
        }
    }

    fn restart(&mut self) {
        let flags: Vec<&str> = self.flags.iter().map(String::as_str).collect();
        self.cluster.restart_coordinator(&flags);
    }

    /// Submits word count of `input` into `output` with `--wait`; returns the waiting client
    /// and the job id.
    fn submit(&self, input: &str, output: &str) -> (Submission, String) {
        let reducers = REDUCERS.to_string();
        let args = submit_wordcount(
            &self.cluster.address,
            input,
            output,
            &["--wait", "--reducers", &reducers, "--split-size", "64KiB"],
        );
        let waiting = Submission::start(std::path::Path::new(QUERN), &args);
        let job = newest_job(&self.cluster.address, None, self.deadline);
        (waiting, job)
    }

    /// Waits until a third of `job`'s maps have succeeded; returns those (task, attempt).
    fn third_of_the_maps_done(&self, job: &str) -> Vec<(String, u64)> {
        loop {
            let view = job_view(&self.cluster.address, job);
            assert_eq!(view.state, "running", "the job ended before the restart");
            let done: Vec<(String, u64)> = view
                .attempts
                .iter()
                .filter(|a| a.task.starts_with("m-") && a.state == "succeeded")
                .map(|a| (a.task.clone(), a.attempt))
                .collect();
            if done.len() * 3 >= view.map_tasks {
                return done;
            }
            assert!(Instant::now() < self.deadline, "maps did not progress");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until the coordinator's test failpoint has stopped it (see
    /// `coordinator/src/failpoint.rs`); returns what it wrote to `marker`.
    fn coordinator_stopped(&self, marker: &Path) -> String {
        let pid = self.cluster.processes.0[0].id();
        while process_state(pid) != Some('T') {
            assert!(
                Instant::now() < self.deadline,
                "the coordinator never stopped"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        std::fs::read_to_string(marker).unwrap().trim().to_string()
    }
}

/// The waiting client saw `job` succeed with the exact counts of `input` in `output`, once.
fn assert_exact(finished: &Finished, input: &Path, output: &Path) {
    assert!(
        finished.status.success(),
        "{}\n{}",
        finished.stderr,
        finished.stdout
    );
    let expected = expected_counts(input);
    assert_eq!(read_output(output, REDUCERS), expected);
    assert!(output.join("_SUCCESS").is_file());
    assert_eq!(
        summary_counter(&finished.stdout, "input:"),
        lines(input),
        "every input line counted once: {}",
        finished.stdout
    );
    assert_eq!(
        summary_counter(&finished.stdout, "output:"),
        expected.len() as u64,
        "every distinct word output once: {}",
        finished.stdout
    );
}

/// The attempts of `task` in the history of `job` since the last restart, as (attempt, state).
fn attempts_of(address: &str, job: &str, task: &str) -> Vec<(u64, String)> {
    job_view(address, job)
        .attempts
        .into_iter()
        .filter(|a| a.task == task)
        .map(|a| (a.attempt, a.state))
        .collect()
}

/// The coordinator is SIGKILLed once a third of the maps are done and started again with the
/// same state directory: the job resumes under its id, `submit --wait` exits 0, and the output is
/// exact. The maps done before the crash are adopted from the workers that hold their outputs,
/// not run again.
#[test]
fn a_job_survives_its_coordinator_being_killed_in_the_map_phase_and_keeps_its_finished_maps() {
    let mut restarts = Restarts::start(Vec::new());
    let input = restarts.dir.path().join("in");
    write_input(&input, 3);
    let output = restarts.dir.path().join("out");
    let (waiting, job) = restarts.submit(input.to_str().unwrap(), output.to_str().unwrap());
    let done_before = restarts.third_of_the_maps_done(&job);

    restarts.restart();
    let finished = waiting.finish(restarts.deadline);
    assert_exact(&finished, &input, &output);
    assert_eq!(job_view(&restarts.cluster.address, &job).state, "succeeded");
    for (task, attempt) in done_before {
        assert_eq!(
            attempts_of(&restarts.cluster.address, &job, &task),
            [(attempt, "succeeded".to_string())],
            "{task} was done before the restart"
        );
    }
}

/// Two restarts in one job: once in the map phase, and once in the reduce phase right after a
/// partition was committed (the coordinator's failpoint stops it there). The job finishes
/// exactly, and the committed partition does not run again: its counters come from the journal.
#[test]
fn a_job_survives_two_restarts_and_a_committed_partition_is_not_run_again() {
    let marker_dir = tempfile::tempdir().unwrap();
    let marker = marker_dir.path().join("stopped-after-commit");
    let env = vec![("QUERN_TEST_STOP_AFTER_COMMIT", marker.display().to_string())];
    let mut restarts = Restarts::start(env);
    let input = restarts.dir.path().join("in");
    write_input(&input, 2);
    let output = restarts.dir.path().join("out");
    let (waiting, job) = restarts.submit(input.to_str().unwrap(), output.to_str().unwrap());
    restarts.third_of_the_maps_done(&job);
    restarts.restart();

    // "JOB r-NNNNN ATTEMPT": the partition committed when the coordinator stopped.
    let stopped = restarts.coordinator_stopped(&marker);
    let fields: Vec<&str> = stopped.split_whitespace().collect();
    assert_eq!((fields.len(), fields[0]), (3, job.as_str()), "{stopped}");
    let partition = fields[1].to_string();
    restarts.restart();

    let finished = waiting.finish(restarts.deadline);
    assert_exact(&finished, &input, &output);
    assert_eq!(
        attempts_of(&restarts.cluster.address, &job, &partition),
        [],
        "{partition} was committed before the restart"
    );
}

/// The coordinator stops after every partition is committed and before `_SUCCESS` (its
/// failpoint), and is killed there. Started again, it finds every partition committed and the
/// maps' counts in its journal: it writes `_SUCCESS` without running any task again.
#[test]
fn a_restart_between_the_last_commit_and_success_runs_nothing_again() {
    let marker_dir = tempfile::tempdir().unwrap();
    let marker = marker_dir.path().join("stopped-before-success");
    let env = vec![(
        "QUERN_TEST_STOP_BEFORE_SUCCESS",
        marker.display().to_string(),
    )];
    let mut restarts = Restarts::start(env);
    let input = restarts.dir.path().join("in");
    write_input(&input, 1);
    let output = restarts.dir.path().join("out");
    let (waiting, job) = restarts.submit(input.to_str().unwrap(), output.to_str().unwrap());

    assert_eq!(restarts.coordinator_stopped(&marker), job);
    assert!(!output.join("_SUCCESS").exists());
    for partition in 0..REDUCERS {
        assert!(output.join(format!("part-r-{partition:05}")).is_file());
    }
    restarts.restart();

    let finished = waiting.finish(restarts.deadline);
    assert_exact(&finished, &input, &output);
    let history = job_view(&restarts.cluster.address, &job).attempts;
    assert!(history.is_empty(), "ran again: {history:#?}");
}

/// On S3, a worker stops (its failpoint) with its reduce's part file in an open multipart upload,
/// about to ask to commit; the coordinator is killed and started again. The restart aborts that
/// upload, the partition runs again elsewhere, and the job finishes exactly with no upload left
/// open. Then the stopped worker is continued: its attempt, of the earlier incarnation, asks to
/// commit and is refused, and the output does not change.
#[test]
fn on_s3_a_restart_aborts_open_uploads_and_refuses_a_commit_from_before_it() {
    let books = ["pg-being_ernest.txt", "pg-metamorphosis.txt"];
    let server = S3Server::start();
    server.create_bucket("books");
    let input = tempfile::tempdir().unwrap();
    for book in books {
        let bytes = std::fs::read(corpus().join(book)).unwrap();
        server.put_file("books", &format!("in/{book}"), &bytes);
        std::fs::write(input.path().join(book), &bytes).unwrap();
    }
    let marker_dir = tempfile::tempdir().unwrap();
    let marker = marker_dir.path().join("stopped-before-commit");
    let mut env = server.env();
    env.push((
        "QUERN_TEST_STOP_BEFORE_COMMIT",
        marker.display().to_string(),
    ));
    let mut restarts = Restarts::start(env);
    let (waiting, _) = restarts.submit("s3://books/in/", "s3://books/out/");
    let workers: Vec<u32> = restarts.cluster.processes.0[1..]
        .iter()
        .map(|p| p.id())
        .collect();
    let stopped = wait_for_stopped_attempt(&workers, &marker, restarts.deadline);
    assert!(
        !server.open_uploads().is_empty(),
        "the stopped attempt's upload is open"
    );
    restarts.restart();

    let finished = waiting.finish(restarts.deadline);
    let output = server.root().join("books/out");
    assert_exact(&finished, input.path(), &output);
    assert_eq!(server.open_uploads(), Vec::<String>::new());
    let before = files_below(&output);

    restarts.cluster.signal(stopped.process + 1, "CONT");
    let outcome = wait_for_outcome(&marker, restarts.deadline);
    assert_eq!(
        outcome, "refused",
        "the commit of an attempt from before the restart"
    );
    assert_eq!(files_below(&output), before, "the output changed");
    assert_eq!(server.open_uploads(), Vec::<String>::new());
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
