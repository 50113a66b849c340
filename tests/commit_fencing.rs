//! Reduce output commit is fenced by the coordinator, end to end on real processes: a worker
//! paused (SIGSTOP) while it holds a finished part file, past the worker timeout, is declared lost;
//! a replacement attempt commits the partition and the job finishes. Then the paused worker is
//! continued (SIGCONT): its attempt asks to commit as if nothing happened, is refused, and discards
//! its part. The output must be exactly the replacement's, unchanged by the resume, with nothing
//! left behind: no staged file under `_temporary/` on local disk, no open multipart upload on S3.
//!
//! The pause comes from the workers' test failpoint `QUERN_TEST_STOP_BEFORE_COMMIT` (see
//! `worker/src/failpoint.rs`): the first reduce attempt to reach its commit writes
//! `JOB r-NNNNN ATTEMPT` to a marker file and stops its own process; once continued and its commit
//! has ended, it appends how it ended (`refused`), which tells this test it has acted.

mod common;

use common::watch::*;
use common::*;
use quern_testkit::S3Server;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const REDUCERS: u32 = 2;
/// A worker silent for a second is lost: the test waits about that long for the replacement.
const COORDINATOR_FLAGS: &[&str] = &["--heartbeat-interval", "100ms", "--worker-timeout", "1s"];
/// The corpus books the job counts, small enough to keep the test to a few seconds.
const BOOKS: &[&str] = &["pg-being_ernest.txt", "pg-metamorphosis.txt"];

/// A directory holding copies of [`BOOKS`], the job's input on local disk.
fn small_input(dir: &Path) -> PathBuf {
    let input = dir.join("in");
    std::fs::create_dir(&input).unwrap();
    for book in BOOKS {
        std::fs::copy(corpus().join(book), input.join(book)).unwrap();
    }
    input
}

/// The stopped attempt's task ran again elsewhere and that attempt succeeded; the stopped one
/// never did.
fn assert_replaced(cluster: &Cluster, stopped: &StoppedAttempt) {
    let history = job_view(&cluster.address, &stopped.job).attempts;
    let task: Vec<&Attempt> = history.iter().filter(|a| a.task == stopped.task).collect();
    let paused = task.iter().find(|a| a.attempt == stopped.attempt);
    assert!(
        paused.is_some_and(|a| a.state != "succeeded"),
        "{history:#?}"
    );
    let winners: Vec<&&Attempt> = task.iter().filter(|a| a.state == "succeeded").collect();
    assert_eq!(winners.len(), 1, "{history:#?}");
    assert_ne!(winners[0].worker, paused.unwrap().worker, "{history:#?}");
}

/// What both cases share: a cluster of two one-slot workers with the failpoint on, a job whose
/// first reduce to reach its commit stops its worker.
struct Scenario {
    cluster: Cluster,
    marker: PathBuf,
    deadline: Instant,
}

impl Scenario {
    fn start(mut env: Vec<(&'static str, String)>, dir: &Path) -> Scenario {
        let marker = dir.join("stopped-before-commit");
        env.push((
            "QUERN_TEST_STOP_BEFORE_COMMIT",
            marker.display().to_string(),
        ));
        Scenario {
            cluster: Cluster::start_with_env(env, 2, 1, COORDINATOR_FLAGS),
            marker,
            deadline: Instant::now() + Duration::from_secs(60),
        }
    }

    /// Runs word count from `input` to `output` until it succeeds, one of the workers stopped
    /// before its commit all along; returns the stopped attempt.
    fn run_job_past_a_stopped_commit(&self, input: &str, output: &str) -> StoppedAttempt {
        let submission = Submission::start(
            Path::new(QUERN),
            &submit_wordcount(
                &self.cluster.address,
                input,
                output,
                &[
                    "--reducers",
                    &REDUCERS.to_string(),
                    "--split-size",
                    "64KiB",
                    "--wait",
                ],
            ),
        );
        // The workers: every process but the coordinator, at index 0.
        let workers: Vec<u32> = self.cluster.processes.0[1..]
            .iter()
            .map(|p| p.id())
            .collect();
        let mut stopped = wait_for_stopped_attempt(&workers, &self.marker, self.deadline);
        stopped.process += 1;
        let finished = submission.finish(self.deadline);
        assert!(
            finished.status.success(),
            "{}\n{}",
            finished.stderr,
            finished.stdout
        );
        let pid = self.cluster.processes.0[stopped.process].id();
        assert_eq!(process_state(pid), Some('T'), "stopped all along");
        assert_replaced(&self.cluster, &stopped);
        stopped
    }

    /// Continues the stopped worker and waits until its attempt's commit has ended: it must have
    /// been refused.
    fn resume(&self, stopped: &StoppedAttempt) {
        self.cluster.signal(stopped.process, "CONT");
        let outcome = wait_for_outcome(&self.marker, self.deadline);
        assert_eq!(outcome, "refused", "the resumed attempt's commit");
    }
}

// A failing test leaves nothing running: the cluster's processes are SIGKILLed when dropped, and
// SIGKILL ends a stopped process too.

#[test]
fn a_paused_attempt_resumed_after_its_replacement_committed_changes_nothing_on_local_disk() {
    let dir = tempfile::tempdir().unwrap();
    let input = small_input(dir.path());
    let output = dir.path().join("out");
    let scenario = Scenario::start(Vec::new(), dir.path());

    let stopped =
        scenario.run_job_past_a_stopped_commit(input.to_str().unwrap(), output.to_str().unwrap());
    let expected = expected_counts(&input);
    assert_eq!(read_output(&output, REDUCERS), expected);
    let before = files_below(&output);

    scenario.resume(&stopped);
    assert_eq!(read_output(&output, REDUCERS), expected);
    assert_eq!(files_below(&output), before, "the output changed on resume");
    assert!(
        !output.join("_temporary").exists(),
        "left under _temporary: {:?}",
        files_below(&output).keys()
    );
}

#[test]
fn a_paused_attempt_resumed_after_its_replacement_committed_changes_nothing_on_s3() {
    let dir = tempfile::tempdir().unwrap();
    let input = small_input(dir.path());
    let server = S3Server::start();
    server.create_bucket("books");
    for book in BOOKS {
        let bytes = std::fs::read(input.join(book)).unwrap();
        server.put_file("books", &format!("in/{book}"), &bytes);
    }
    let scenario = Scenario::start(server.env(), dir.path());

    let stopped = scenario.run_job_past_a_stopped_commit("s3://books/in/", "s3://books/out/");
    let output = server.root().join("books/out");
    let expected = expected_counts(&input);
    assert_eq!(read_output(&output, REDUCERS), expected);
    let before = files_below(&output);
    // The stopped attempt's upload was aborted when the job committed, if not before.
    assert_eq!(server.open_uploads(), Vec::<String>::new());

    scenario.resume(&stopped);
    assert_eq!(read_output(&output, REDUCERS), expected);
    assert_eq!(files_below(&output), before, "the output changed on resume");
    assert_eq!(server.open_uploads(), Vec::<String>::new());
}
