//! Fault tolerance end to end on real processes: a worker SIGKILLed in the middle of a job. The
//! job still succeeds with exactly the right word counts (nothing lost, nothing counted twice),
//! and the coordinator's task history shows that it really ran the dead worker's work again.

mod common;

use common::watch::*;
use common::*;
use std::collections::{BTreeMap, HashMap};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Copies of the corpus in the input: about 19 MiB, some 170 maps of 128 KiB, which keep three
/// one-slot workers busy for a couple of seconds in a debug build. The victim is killed as soon
/// as it has finished one map, a few hundred milliseconds in, so plenty of maps are still to run.
const COPIES: usize = 6;
const SPLIT_SIZE: &str = "128KiB";
const REDUCERS: u32 = 4;
/// Bound on the whole job, kill and recovery included; it takes a few seconds.
const JOB_DEADLINE: Duration = Duration::from_secs(60);

#[test]
fn a_worker_killed_mid_job_loses_nothing_and_its_work_runs_again() {
    let started = Instant::now();
    let mut cluster = Cluster::start_with(
        0,
        1,
        &["--heartbeat-interval", "100ms", "--worker-timeout", "1s"],
    );
    // Each worker listens where the test chose, so a worker id maps to a process.
    let mut process_of: HashMap<String, usize> = HashMap::new();
    for _ in 0..3 {
        let listen = format!("127.0.0.1:{}", free_port());
        let index = cluster.add_worker_with(&["--slots", "1", "--listen", &listen]);
        process_of.insert(format!("http://{listen}"), index);
    }
    cluster.wait_for_ready_workers(3);

    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    write_input(&input, COPIES);
    let output = dir.path().join("out");

    let mut submit = Command::new(QUERN)
        .args(submit_wordcount(
            &cluster.address,
            input.to_str().unwrap(),
            output.to_str().unwrap(),
            &[
                "--reducers",
                &REDUCERS.to_string(),
                "--split-size",
                SPLIT_SIZE,
                "--wait",
            ],
        ))
        .env("QUERN_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("submit starts");
    let submit_out = drain(submit.stdout.take().unwrap());
    let submit_err = drain(submit.stderr.take().unwrap());
    cluster.processes.0.push(submit);
    let submit = cluster.processes.0.len() - 1;
    let deadline = started + JOB_DEADLINE;

    // The job appears, then some worker finishes a map while maps remain: kill that worker.
    let job_id = loop {
        if let Some(id) = cluster_view(&cluster.address).1.pop() {
            break id;
        }
        if let Some(status) = cluster.processes.0[submit].try_wait().unwrap() {
            panic!(
                "submit exited ({status}) before the job showed up: {}",
                submit_err.join().unwrap()
            );
        }
        assert!(Instant::now() < deadline, "the job never showed up");
        std::thread::sleep(Duration::from_millis(20));
    };
    let (victim, maps_done_at_kill, map_tasks) = loop {
        let view = job_view(&cluster.address, &job_id);
        assert_eq!(
            view.state, "running",
            "the job ended before a worker could be killed: make the input larger"
        );
        let done: Vec<&Attempt> = view
            .attempts
            .iter()
            .filter(|a| a.task.starts_with("m-") && a.state == "succeeded")
            .collect();
        // While maps remain no reduce has started, so no reduce has fetched the victim's map
        // outputs yet: they must be computed again.
        if let Some(first) = done.first()
            && done.len() < view.map_tasks
        {
            break (first.worker.clone(), done.len(), view.map_tasks);
        }
        assert!(Instant::now() < deadline, "no map finished in time");
        std::thread::sleep(Duration::from_millis(20));
    };
    let (workers, _) = cluster_view(&cluster.address);
    let victim_address = &workers[&victim];
    let index = process_of[victim_address];
    let killed_at = started.elapsed();
    let child = &mut cluster.processes.0[index];
    child.kill().expect("SIGKILL the worker"); // Child::kill is SIGKILL on Unix
    child.wait().unwrap();
    eprintln!(
        "killed {victim} ({victim_address}) at {killed_at:?}, {maps_done_at_kill}/{map_tasks} maps done"
    );

    // The job finishes anyway.
    let exit = loop {
        if let Some(status) = cluster.processes.0[submit].try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the job did not finish within {JOB_DEADLINE:?} after a worker was killed"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let printed = submit_out.join().unwrap();
    let errors = submit_err.join().unwrap();
    assert!(
        exit.success(),
        "submit failed ({exit}): {errors}\n{printed}"
    );
    assert!(printed.contains("succeeded"), "{printed}");
    eprintln!("job finished at {:?}\n{printed}", started.elapsed());

    // Exactly the right counts: nothing lost, nothing counted twice.
    let expected = expected_counts(&input);
    assert_eq!(read_output(&output, REDUCERS), expected);
    // The job's counters add up the attempts whose work the job used, not the lost ones.
    assert_eq!(
        summary_counter(&printed, "input:"),
        lines(&input),
        "input records\n{printed}"
    );
    assert_eq!(
        summary_counter(&printed, "output:"),
        expected.len() as u64,
        "output records\n{printed}"
    );

    // The coordinator ran the victim's work again.
    let view = job_view(&cluster.address, &job_id);
    assert_eq!(view.state, "succeeded");
    let mut by_task: BTreeMap<&str, Vec<&Attempt>> = BTreeMap::new();
    for a in &view.attempts {
        by_task.entry(a.task.as_str()).or_default().push(a);
    }
    assert_eq!(by_task.len(), map_tasks + REDUCERS as usize);
    let rerun: Vec<&str> = by_task
        .iter()
        .filter(|(_, attempts)| attempts.len() > 1)
        .map(|(task, _)| *task)
        .collect();
    assert!(
        !rerun.is_empty(),
        "no task ran more than once: {:?}",
        view.attempts
    );
    for (task, attempts) in &by_task {
        // Every task ends with one success, on a live worker; none is left running.
        let last = attempts.iter().max_by_key(|a| a.attempt).unwrap();
        assert_eq!(last.state, "succeeded", "{task}: {attempts:?}");
        assert_ne!(last.worker, victim, "{task} ended on the dead worker");
        assert!(
            attempts.iter().all(|a| a.state != "running"),
            "{task}: {attempts:?}"
        );
        // What the victim was running when it died is marked killed; what it had finished is
        // lost with its disk, so a map it had done ran again and succeeded elsewhere.
        for a in attempts.iter().filter(|a| a.worker == victim) {
            assert!(
                a.state == "succeeded" || a.state == "killed",
                "{task} on the victim: {a:?}"
            );
            assert!(
                a.attempt < last.attempt,
                "{task} was not run again: {attempts:?}"
            );
        }
    }
    let victim_maps = view
        .attempts
        .iter()
        .filter(|a| a.worker == victim && a.task.starts_with("m-") && a.state == "succeeded")
        .count();
    assert!(victim_maps >= 1, "{:?}", view.attempts);
    eprintln!(
        "{} tasks ran again: {rerun:?}; test took {:?}",
        rerun.len(),
        started.elapsed()
    );
}
