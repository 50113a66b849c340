//! A map output damaged on its worker's disk after the map finished, end to end on real
//! processes: the workers' test failpoint (`QUERN_TEST_CORRUPT_MAP_OUTPUT`, see
//! `worker/src/failpoint.rs`) flips the first byte of every non-empty partition of map task 0's
//! first output. The reduces that fetch it find its CRC-32C wrong and report it, the coordinator
//! runs that one map again, and the job's output is still exact.

mod common;

use common::watch::*;
use common::*;
use std::time::{Duration, Instant};

/// The map whose first output the failpoint damages.
const CORRUPTED_MAP: &str = "m-00000";

#[test]
fn a_corrupt_map_output_is_caught_on_fetch_and_its_map_runs_again() {
    let deadline = Instant::now() + Duration::from_secs(60);
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("corrupted");
    let env = vec![
        ("QUERN_TEST_CORRUPT_MAP_OUTPUT", "0".to_string()),
        ("QUERN_TEST_CORRUPT_MARKER", marker.display().to_string()),
    ];
    let cluster = Cluster::start_with_env(env, 2, 2, &[]);
    let corpus = corpus();
    let output = dir.path().join("out");
    let flags = ["--reducers", "2", "--split-size", "256KiB"];
    let finished = wordcount_succeeds(&cluster.address, &corpus, &output, &flags, deadline);
    assert!(marker.is_file(), "the failpoint never fired");
    assert!(output.join("_SUCCESS").is_file());
    assert_eq!(read_output(&output, 2), expected_counts(&corpus));
    // The damaged attempt's counters are taken back out: the input is counted once.
    let size: u64 = std::fs::read_dir(&corpus)
        .unwrap()
        .map(|e| std::fs::metadata(e.unwrap().path()).unwrap().len())
        .sum();
    assert_eq!(
        summary_value(&finished.stdout, "input:", "bytes"),
        size,
        "{}",
        finished.stdout
    );
    assert_ran_twice_and_the_rest_once(&cluster, deadline);
}

/// The corrupted map has two attempts in the job's history, the second succeeded; every other
/// map ran once.
fn assert_ran_twice_and_the_rest_once(cluster: &Cluster, deadline: Instant) {
    let job_id = newest_job(&cluster.address, None, deadline);
    let view = job_view(&cluster.address, &job_id);
    let history = &view.attempts;
    let corrupted: Vec<&Attempt> = history.iter().filter(|a| a.task == CORRUPTED_MAP).collect();
    assert_eq!(corrupted.len(), 2, "{history:#?}");
    assert_eq!(corrupted[1].state, "succeeded", "{history:#?}");
    let mut others: Vec<&str> = history
        .iter()
        .filter(|a| a.task.starts_with("m-") && a.task != CORRUPTED_MAP)
        .map(|a| a.task.as_str())
        .collect();
    let runs = others.len();
    others.sort();
    others.dedup();
    assert_eq!(others.len(), runs, "a map ran twice: {history:#?}");
    assert_eq!(others.len() + 1, view.map_tasks, "{history:#?}");
}
