//! Tasks that hurt their workers, end to end on real processes (issue 7): a task that crashes
//! every worker it lands on fails its job after a bound, and a worker that fails every task is
//! excluded from the job while the others finish it. A task that hangs is overtaken by a backup
//! attempt, or, with speculation off, fails after the task timeout and runs again.

mod common;

use common::watch::*;
use common::*;
use std::time::{Duration, Instant};

/// A mapper that aborts its worker process on a marked line: each of four workers dies under
/// it, and the job fails naming the task and the workers after the fourth, instead of crashing
/// every worker forever. The cluster runs the next job.
#[test]
fn a_task_that_crashes_its_worker_fails_the_job_after_four_losses() {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut cluster = Cluster::start_with(
        0,
        1,
        &["--heartbeat-interval", "100ms", "--worker-timeout", "500ms"],
    );
    let jobs = example_binary("fault_jobs");
    cluster.worker_binary = jobs.clone();
    for _ in 0..4 {
        cluster.add_worker_with(&["--slots", "1"]);
    }
    cluster.wait_for_ready_workers(4);

    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "one line\nQUERN-ABORT here\nlast line\n").unwrap();
    let output = dir.path().join("out");
    let mut args = submit_wordcount(
        &cluster.address,
        input.to_str().unwrap(),
        output.to_str().unwrap(),
        &["--max-worker-losses", "4", "--wait"],
    );
    args[1] = "crashcount";
    let finished = Submission::start(&jobs, &args).finish(deadline);
    assert!(!finished.status.success(), "{}", finished.stdout);
    let all = format!("{}{}", finished.stdout, finished.stderr);
    assert!(
        all.contains("task m-00000 lost its worker 4 times in a row ("),
        "{all}"
    );
    let workers: Vec<&str> = all
        .split("in a row (")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .map(|list| list.split(", ").collect())
        .unwrap_or_default();
    let mut distinct = workers.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 4, "four different workers died: {all}");
    assert!(!output.join("_SUCCESS").exists());

    // Every worker died; a new one runs the next job.
    cluster.add_worker_with(&["--slots", "1"]);
    cluster.wait_for_ready_workers(1);
    let text = "the next job runs\nthe end\n";
    assert_eq!(
        count_words_of(&cluster.address, text),
        "end\t1\njob\t1\nnext\t1\nruns\t1\nthe\t2\n"
    );
}

/// A worker whose work directory is gone (replaced by a file) fails every task at once, so its
/// slot frees first and would take every retry. Three failures exclude it from the job, which
/// finishes on the healthy worker; `quern status` names the excluded worker.
#[test]
fn a_worker_with_a_broken_work_directory_is_excluded_and_the_job_succeeds() {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut cluster = Cluster::start(1, 1);
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    cluster.add_worker_with(&["--slots", "1", "--work-dir", work.to_str().unwrap()]);
    cluster.wait_for_ready_workers(2);
    let (workers, _) = cluster_view(&cluster.address);
    std::fs::remove_dir_all(&work).unwrap();
    std::fs::write(&work, b"not a directory").unwrap();

    let input = dir.path().join("in");
    write_input(&input, 1);
    let output = dir.path().join("out");
    let flags = ["--split-size", "256KiB", "--reducers", "2"];
    wordcount_succeeds(&cluster.address, &input, &output, &flags, deadline);
    assert_eq!(read_output(&output, 2), expected_counts(&input));

    let job_id = newest_job(&cluster.address, None, deadline);
    let status = stdout(&quern(&[
        "status",
        "--coordinator",
        &cluster.address,
        &job_id,
    ]));
    let excluded: Vec<&String> = workers
        .keys()
        .filter(|w| status.contains(&format!("excluded: {w} (3 tasks failed on it)")))
        .collect();
    assert_eq!(excluded.len(), 1, "{status}");
    let view = job_view(&cluster.address, &job_id);
    let failed_on_excluded = view
        .attempts
        .iter()
        .filter(|a| &&a.worker == excluded.first().unwrap() && a.state == "failed")
        .count();
    assert_eq!(failed_on_excluded, 3, "{status}");
}

/// Starts a cluster of two one-slot workers running the fault jobs, every process with
/// `QUERN_HANG_MARKER` set, and submits `hangcount` over `input` with `flags`: the split that
/// holds `QUERN-HANG` hangs its first attempt forever. Returns the job's status text once it
/// succeeded with exact output.
fn run_with_a_hung_map(input_text: &[&str], flags: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("hung");
    let mut cluster = Cluster::start_with_env(
        vec![("QUERN_HANG_MARKER", marker.to_str().unwrap().to_string())],
        0,
        1,
        &["--heartbeat-interval", "100ms", "--worker-timeout", "1s"],
    );
    let jobs = example_binary("fault_jobs");
    cluster.worker_binary = jobs.clone();
    for _ in 0..2 {
        cluster.add_worker_with(&["--slots", "1"]);
    }
    cluster.wait_for_ready_workers(2);

    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    for (i, text) in input_text.iter().enumerate() {
        std::fs::write(input.join(format!("{i}.txt")), text).unwrap();
    }
    let output = dir.path().join("out");
    let mut args = submit_wordcount(
        &cluster.address,
        input.to_str().unwrap(),
        output.to_str().unwrap(),
        &["--wait"],
    );
    args[1] = "hangcount";
    args.extend_from_slice(flags);
    let finished = Submission::start(&jobs, &args).finish(deadline);
    assert!(
        finished.status.success(),
        "{}\n{}",
        finished.stderr,
        finished.stdout
    );
    assert!(marker.exists(), "no attempt met the marked line");
    assert_eq!(read_output(&output, 1), expected_counts(&input));
    assert!(output.join("_SUCCESS").exists());
    let job_id = newest_job(&cluster.address, None, deadline);
    stdout(&quern(&[
        "status",
        "--coordinator",
        &cluster.address,
        &job_id,
    ]))
}

/// A map that hangs on its first attempt, with speculation off: after the task timeout (1 s) the
/// attempt fails, as in Hadoop, and the task runs again; the job's output is exact.
#[test]
fn a_hung_map_fails_after_the_task_timeout_and_runs_again() {
    let status = run_with_a_hung_map(
        &["one two\nQUERN-HANG two\n", "three three three\n"],
        &["--task-timeout", "1s", "--speculative", "off"],
    );
    let hung: Vec<&str> = status
        .lines()
        .filter(|l| l.contains("no progress for 1s (the task timeout)"))
        .collect();
    assert_eq!(hung.len(), 1, "{status}");
    assert!(hung[0].contains(" failed "), "{status}");
}

/// The same hung map with speculation on (the default) and the default task timeout (10 min):
/// a backup attempt on the other worker overtakes it, the hung attempt is killed, and the
/// history marks the backup.
#[test]
fn a_hung_map_is_overtaken_by_a_backup_attempt() {
    // A backup needs other maps of the phase done: a split size under the files keeps them
    // out of one packed task (the hung line's split, the rest of its file, the other file).
    let status = run_with_a_hung_map(
        &["one two\nQUERN-HANG two\n", "three three three\n"],
        &["--split-size", "20"],
    );
    let history = attempts(&status);
    let backups: Vec<&Attempt> = history.iter().filter(|a| a.backup).collect();
    assert_eq!(backups.len(), 1, "{status}");
    assert_eq!(backups[0].state, "succeeded", "{status}");
    let overtaken: Vec<&Attempt> = history
        .iter()
        .filter(|a| a.task == backups[0].task && !a.backup)
        .collect();
    assert_eq!(overtaken.len(), 1, "{status}");
    assert_eq!(overtaken[0].state, "killed", "{status}");
    assert_ne!(overtaken[0].worker, backups[0].worker, "{status}");
    assert!(
        status.contains("another attempt of the task finished first"),
        "{status}"
    );
}
