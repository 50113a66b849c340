//! Multi-host end to end, on real processes each in its own Linux network namespace: a
//! coordinator host, and worker hosts that reach it over a control network and each other over a
//! separate shuffle network, so a test can cut one worker off entirely, or from its peers only.
//! Every job still succeeds with exactly the right word counts and counters, computed here
//! independently, and a worker cut off while about to commit a reduce's output cannot change it
//! once it is back. Needs root (as CI and the dev machine have); skipped otherwise, unless
//! `QUERN_NETNS=require`.

mod common;

use common::netns::{Host, Net};
use common::watch::*;
use common::*;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

/// Every host is on it: heartbeats, assignments, reports, and the clients' calls.
const CONTROL: &str = "control";
/// Worker hosts only: shuffle fetches.
const SHUFFLE: &str = "shuffle";
const WORKERS: usize = 3;
const SLOTS: &str = "2";
const REDUCERS: u32 = 4;
/// Each case fails with a clear message past this.
const CASE_TIME: Duration = Duration::from_secs(120);
/// The cluster token: every host is reachable from the others, so every process needs it.
const TOKEN: &str = "multi-host-cluster-token-0123456789";

/// A coordinator host (control network only) and worker hosts (both networks), one process each.
/// Fields drop in order: the processes go before their namespaces.
struct HostCluster {
    /// The coordinator, then the worker of each host in `workers`' order; killed on drop.
    processes: Processes,
    net: Net,
    coordinator: Host,
    workers: Vec<Host>,
    /// The coordinator's URL on the control network.
    address: String,
}

impl HostCluster {
    /// Starts a coordinator with a 200 ms heartbeat and a 1 s worker timeout, and a worker with
    /// 2 slots on each of [`WORKERS`] hosts, each worker with `worker_env` in its environment, and
    /// waits until every worker is ready.
    fn start(mut net: Net, worker_env: &[(&str, String)], deadline: Instant) -> HostCluster {
        let coordinator = net.add_host("coordinator", &[CONTROL]);
        let workers: Vec<Host> = (0..WORKERS)
            .map(|i| net.add_host(&format!("worker{i}"), &[CONTROL, SHUFFLE]))
            .collect();
        let listen = format!("{}:0", coordinator.address(&net, CONTROL));
        let mut child = coordinator
            .command(QUERN)
            .args(["coordinator", "--listen", &listen])
            .args(["--heartbeat-interval", "200ms", "--worker-timeout", "1s"])
            .env("QUERN_TOKEN", TOKEN)
            .stdout(Stdio::piped())
            .stderr(daemon_log())
            .spawn()
            .expect("coordinator starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut processes = Processes(vec![child]);
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let address = line
            .trim()
            .strip_prefix("quern coordinator listening on ")
            .unwrap_or_else(|| panic!("unexpected first line from the coordinator: {line:?}"))
            .to_string();
        for host in &workers {
            let shuffle = host.address(&net, SHUFFLE);
            let worker = host
                .command(QUERN)
                .args(["worker", "--coordinator", &address, "--slots", SLOTS])
                .args(["--listen", &format!("{shuffle}:0"), "--advertise", &shuffle])
                .envs(worker_env.iter().map(|(k, v)| (k, v)))
                .env("QUERN_TOKEN", TOKEN)
                .stdout(Stdio::null())
                .stderr(daemon_log())
                .spawn()
                .expect("worker starts");
            processes.0.push(worker);
        }
        let cluster = HostCluster {
            processes,
            net,
            coordinator,
            workers,
            address,
        };
        cluster.wait_for_ready_workers(WORKERS, deadline);
        cluster
    }

    /// Runs `quern ARGS` on the coordinator's host, to completion.
    fn client(&self, args: &[&str]) -> Output {
        self.coordinator
            .command(QUERN)
            .args(args)
            .env("QUERN_LOG", "warn")
            .env("QUERN_TOKEN", TOKEN)
            .output()
            .expect("quern runs")
    }

    /// `quern status [JOB]` on the coordinator's host; the test fails if it does.
    fn status(&self, job_id: Option<&str>) -> String {
        let mut args = vec!["status", "--coordinator", &self.address];
        args.extend(job_id);
        let output = self.client(&args);
        assert!(output.status.success(), "status: {}", stderr(&output));
        stdout(&output)
    }

    /// Worker id → the index of its host in `workers`, for the workers registered now.
    fn worker_hosts(&self) -> HashMap<String, usize> {
        let (workers, _) = parse_cluster_view(&self.status(None));
        workers
            .into_iter()
            .map(|(id, address)| {
                let host = self
                    .workers
                    .iter()
                    .position(|h| {
                        address.contains(&format!("//{}:", h.address(&self.net, SHUFFLE)))
                    })
                    .unwrap_or_else(|| panic!("{id} advertises {address}, on no worker host"));
                (id, host)
            })
            .collect()
    }

    /// Polls until exactly `count` workers are registered and ready.
    fn wait_for_ready_workers(&self, count: usize, deadline: Instant) {
        loop {
            let status = self.status(None);
            let ready = status.lines().filter(|l| l.contains(" ready ")).count();
            if ready == count {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{count} workers never got ready:\n{status}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Submits word count over `input` from the coordinator's host, `--wait`ing in the background.
    fn submit(&self, input: &Path, output: &Path, split_size: &str) -> Submission {
        let reducers = REDUCERS.to_string();
        let mut args = vec!["netns", "exec", &self.coordinator.namespace, QUERN];
        args.extend(submit_wordcount(
            &self.address,
            input.to_str().unwrap(),
            output.to_str().unwrap(),
            &[
                "--reducers",
                &reducers,
                "--split-size",
                split_size,
                "--wait",
            ],
        ));
        Submission::start_with_env(
            Path::new(common::netns::IP),
            &args,
            &[("QUERN_TOKEN", TOKEN)],
        )
    }

    /// The id of the first job, once the coordinator lists it.
    fn first_job(&self, deadline: Instant) -> String {
        loop {
            if let Some(id) = parse_cluster_view(&self.status(None)).1.pop() {
                return id;
            }
            assert!(Instant::now() < deadline, "the job never showed up");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Polls the job until some worker has finished `maps` map tasks, and returns that worker
    /// (the first to get there) with the job's view then. Fails if the job gets past its maps
    /// first (a bigger input would fix that). Whichever worker it is, it holds map outputs the
    /// reduces need; waiting for one named in advance made the test hang on that worker's luck.
    fn wait_for_a_worker_with_maps(
        &self,
        job_id: &str,
        maps: usize,
        deadline: Instant,
    ) -> (String, JobView) {
        loop {
            let text = self.status(Some(job_id));
            let view = parse_job_view(&text);
            let succeeded = |a: &&Attempt| a.task.starts_with("m-") && a.state == "succeeded";
            let done = view.attempts.iter().filter(succeeded).count();
            assert!(
                view.state == "running" && done < view.map_tasks,
                "the job got past its maps before any worker finished {maps}: make the input larger\n{text}"
            );
            let mut by_worker: HashMap<&str, usize> = HashMap::new();
            for attempt in view.attempts.iter().filter(succeeded) {
                *by_worker.entry(attempt.worker.as_str()).or_default() += 1;
            }
            let ready = by_worker.into_iter().filter(|&(_, n)| n >= maps).min();
            if let Some((worker, _)) = ready {
                return (worker.to_string(), view);
            }
            assert!(
                Instant::now() < deadline,
                "no worker finished {maps} maps\n{text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the submission of `job_id` to exit; past `deadline`, fails showing the cluster,
    /// the job, and its attempts that did not succeed.
    fn finish(&self, mut submission: Submission, job_id: &str, deadline: Instant) -> Finished {
        while !submission.is_done() {
            if Instant::now() > deadline {
                let job = self.status(Some(job_id));
                let unfinished: Vec<&str> =
                    job.lines().filter(|l| !l.contains(" succeeded ")).collect();
                panic!(
                    "{job_id} did not end in time; the cluster:\n{}\n{}",
                    self.status(None),
                    unfinished.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        submission.finish(Instant::now() + Duration::from_secs(5))
    }

    /// The pids of the worker processes, by host.
    fn worker_pids(&self) -> Vec<u32> {
        let workers = &self.processes.0[1..1 + self.workers.len()];
        workers.iter().map(|p| p.id()).collect()
    }

    /// Sends `signal` (`STOP`, `CONT`, …) to the worker of host `host`.
    fn signal_worker(&self, host: usize, signal: &str) {
        let pid = self.processes.0[1 + host].id().to_string();
        let sent = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "kill -{signal} {pid}");
    }

    /// Polls until `worker` is no longer registered: the coordinator declared it dead.
    fn wait_until_gone(&self, worker: &str, deadline: Instant) {
        while self.worker_hosts().contains_key(worker) {
            assert!(
                Instant::now() < deadline,
                "the coordinator never declared {worker} dead"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// What the test knows of the input, counted here.
struct Expected {
    counts: HashMap<Vec<u8>, u64>,
    lines: u64,
}

impl Expected {
    fn of(input: &Path) -> Expected {
        Expected {
            counts: expected_counts(input),
            lines: lines(input),
        }
    }

    /// The counters a job over this input must end with, once each, whatever re-ran: lines
    /// read, words emitted by maps, distinct words grouped and written, bytes written. (Not
    /// `input_bytes`: it counts what was read from storage, past the ends of splits too.)
    fn counters(&self) -> Vec<(&'static str, u64)> {
        let words = self.counts.values().sum();
        let distinct = self.counts.len() as u64;
        let output_bytes = self
            .counts
            .iter()
            .map(|(word, count)| (word.len() + 1 + count.to_string().len() + 1) as u64)
            .sum();
        vec![
            ("input_records", self.lines),
            ("map_output_records", words),
            ("reduce_input_groups", distinct),
            ("output_records", distinct),
            ("output_bytes", output_bytes),
        ]
    }
}

/// `"name": N` in the `_SUCCESS` manifest.
fn manifest_counter(manifest: &str, name: &str) -> u64 {
    let key = format!("\"{name}\":");
    manifest
        .lines()
        .find_map(|l| l.trim().strip_prefix(&key))
        .and_then(|n| n.trim().trim_end_matches(',').parse().ok())
        .unwrap_or_else(|| panic!("no {name} in the manifest {manifest}"))
}

/// Checks a finished word-count job: exit 0, `_SUCCESS`, one part per partition, exact counts,
/// and every counter of the `_SUCCESS` manifest counted once (and the input records in the
/// summary `submit` printed too).
fn assert_exact(finished: &Finished, output: &Path, expected: &Expected, what: &str) {
    assert!(
        finished.status.success(),
        "{what} failed ({}): {}\n{}",
        finished.status,
        finished.stderr,
        finished.stdout
    );
    assert_eq!(
        read_output(output, REDUCERS),
        expected.counts,
        "{what}: word counts"
    );
    assert_eq!(
        summary_counter(&finished.stdout, "input:"),
        expected.lines,
        "{what}: input records in the summary\n{}",
        finished.stdout
    );
    let manifest = std::fs::read_to_string(output.join("_SUCCESS")).unwrap();
    for (name, value) in expected.counters() {
        assert_eq!(
            manifest_counter(&manifest, name),
            value,
            "{what}: {name} in the manifest\n{manifest}"
        );
    }
}

/// What every case starts with: the hosts, a job of word count over `copies` copies of the
/// corpus in 64 KiB splits submitted and running, and the files it reads and writes.
/// Bind `dir` when taking a case apart: dropped, it takes the job's input with it.
struct Case {
    started: Instant,
    deadline: Instant,
    cluster: HostCluster,
    dir: tempfile::TempDir,
    expected: Expected,
    output: std::path::PathBuf,
    submission: Submission,
    job_id: String,
}

impl Case {
    /// Starts a case; with `env`, the workers get that variable (a failpoint, say) set to the
    /// path of the file of that name in the case's directory. None (the case is skipped)
    /// without network namespaces.
    fn start(copies: usize, env: Option<(&'static str, &str)>) -> Option<Case> {
        let started = Instant::now();
        let deadline = started + CASE_TIME;
        let net = Net::create_or_skip(&[CONTROL, SHUFFLE])?;
        let dir = tempfile::tempdir().unwrap();
        let env: Vec<(&'static str, String)> = env
            .map(|(name, file)| (name, dir.path().join(file).display().to_string()))
            .into_iter()
            .collect();
        let cluster = HostCluster::start(net, &env, deadline);
        let input = dir.path().join("in");
        write_input(&input, copies);
        let expected = Expected::of(&input);
        let output = dir.path().join("out");
        let submission = cluster.submit(&input, &output, "64KiB");
        let job_id = cluster.first_job(deadline);
        Some(Case {
            started,
            deadline,
            cluster,
            dir,
            expected,
            output,
            submission,
            job_id,
        })
    }
}

/// A worker host loses both its networks once it has finished some maps, stays cut off past the
/// worker timeout (the coordinator declares it dead and its work runs elsewhere), then is plugged
/// back in: the job finishes exactly, and the worker joins the cluster again.
#[test]
fn a_worker_cut_off_past_the_timeout_and_back_loses_nothing() {
    let Some(Case {
        started,
        deadline,
        cluster,
        expected,
        output,
        submission,
        job_id,
        dir: _dir,
    }) = Case::start(8, None)
    else {
        return;
    };

    let (victim, _) = cluster.wait_for_a_worker_with_maps(&job_id, 2, deadline);
    let victim = victim.as_str();
    let host = cluster.worker_hosts()[victim];
    let victim_host = &cluster.workers[host];
    cluster.net.set_link(victim_host, CONTROL, false);
    cluster.net.set_link(victim_host, SHUFFLE, false);
    let cut = started.elapsed();
    cluster.wait_until_gone(victim, deadline);
    let declared_dead = started.elapsed();
    assert!(
        parse_job_view(&cluster.status(Some(&job_id))).state == "running",
        "the job ended while {victim} was cut off: make the input larger"
    );
    cluster.net.set_link(victim_host, CONTROL, true);
    cluster.net.set_link(victim_host, SHUFFLE, true);
    eprintln!(
        "cut {victim} off at {cut:?}, declared dead at {declared_dead:?}, plugged back at {:?}",
        started.elapsed()
    );

    let finished = cluster.finish(submission, &job_id, deadline);
    eprintln!("finished at {:?}\n{}", started.elapsed(), finished.stdout);
    assert_exact(&finished, &output, &expected, "the job");
    cluster.wait_for_ready_workers(WORKERS, deadline);
    assert!(
        cluster.worker_hosts().values().any(|&h| h == host),
        "the plugged-back host did not register again"
    );
    eprintln!(
        "{victim}'s host seen registered again at {:?}",
        started.elapsed()
    );
}

/// A worker host loses only its shuffle network once it has finished some maps, before any
/// reduce fetches: it keeps heartbeating, but its peers cannot fetch its map outputs, nor it
/// theirs. The reduces' fetch-failure reports make the coordinator run its maps again elsewhere
/// and exclude it from the job, which finishes exactly, the host cut off to the end.
#[test]
fn a_worker_its_peers_cannot_reach_has_its_maps_run_elsewhere() {
    let Some(Case {
        started,
        deadline,
        cluster,
        expected,
        output,
        submission,
        job_id,
        dir: _dir,
    }) = Case::start(2, None)
    else {
        return;
    };

    let (victim, view) = cluster.wait_for_a_worker_with_maps(&job_id, 2, deadline);
    let victim = victim.as_str();
    cluster.net.set_link(
        &cluster.workers[cluster.worker_hosts()[victim]],
        SHUFFLE,
        false,
    );
    eprintln!(
        "cut {victim} off its peers at {:?}, with {} of {} maps done",
        started.elapsed(),
        view.attempts
            .iter()
            .filter(|a| a.task.starts_with("m-") && a.state == "succeeded")
            .count(),
        view.map_tasks
    );

    let finished = cluster.finish(submission, &job_id, deadline);
    eprintln!("finished at {:?}\n{}", started.elapsed(), finished.stdout);
    assert_exact(&finished, &output, &expected, "the job");
    let excluded = finished
        .stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("excluded:"))
        .unwrap_or_else(|| panic!("nobody was excluded:\n{}", finished.stdout));
    assert!(
        excluded.contains(&format!("{victim} ")),
        "{victim} is not among the excluded: {excluded}"
    );
    assert!(
        cluster.worker_hosts().contains_key(victim),
        "{victim} kept heartbeating, yet is no longer registered"
    );
}

/// A worker host whose reduce has finished its part file and is about to ask the coordinator to
/// commit it is stopped there (the stop-before-commit failpoint), loses both its networks, and is
/// continued cut off: its commit question cannot get through. The coordinator declares it dead
/// past the worker timeout, a replacement (or a backup) commits the partition on another host
/// and the job finishes exactly. Then the host is plugged back in: its question gets through and
/// is refused, or its connection was given up on meanwhile and the question failed. Either way
/// the output is the replacement's, unchanged, with nothing left under `_temporary/`, and the
/// host registers again.
#[test]
fn a_worker_cut_off_about_to_commit_and_back_changes_nothing() {
    let failpoint = ("QUERN_TEST_STOP_BEFORE_COMMIT", "stopped-before-commit");
    let Some(Case {
        started,
        deadline,
        cluster,
        dir,
        expected,
        output,
        submission,
        job_id,
    }) = Case::start(1, Some(failpoint))
    else {
        return;
    };
    let marker = dir.path().join(failpoint.1);
    let hosts = cluster.worker_hosts();

    let stopped = wait_for_stopped_attempt(&cluster.worker_pids(), &marker, deadline);
    let host = stopped.process;
    let victim_host = &cluster.workers[host];
    cluster.net.set_link(victim_host, CONTROL, false);
    cluster.net.set_link(victim_host, SHUFFLE, false);
    cluster.signal_worker(host, "CONT");
    let cut = started.elapsed();
    let victim = hosts
        .iter()
        .find_map(|(id, &h)| (h == host).then_some(id))
        .expect("every host's worker registered");
    assert_eq!(stopped.job, job_id, "the stopped attempt's job");

    let finished = cluster.finish(submission, &job_id, deadline);
    let done = started.elapsed();
    assert_exact(&finished, &output, &expected, "the job");
    let history = parse_job_view(&cluster.status(Some(&job_id))).attempts;
    let task: Vec<&Attempt> = history.iter().filter(|a| a.task == stopped.task).collect();
    let cut_off = task
        .iter()
        .find(|a| a.attempt == stopped.attempt)
        .unwrap_or_else(|| panic!("{stopped:?} is not in the history {history:#?}"));
    assert!(
        cut_off.worker == *victim && cut_off.state != "succeeded",
        "{stopped:?}: {history:#?}"
    );
    let winners: Vec<&&Attempt> = task.iter().filter(|a| a.state == "succeeded").collect();
    assert!(
        winners.len() == 1 && winners[0].worker != *victim,
        "{stopped:?}: {history:#?}"
    );
    let before = files_below(&output);
    // The replacement may be a backup that the stopped attempt's slowness started before the
    // worker timeout, rather than a re-run once the victim was declared dead: either way, the
    // victim stays cut off until it is.
    cluster.wait_until_gone(victim, deadline);

    cluster.net.set_link(victim_host, CONTROL, true);
    cluster.net.set_link(victim_host, SHUFFLE, true);
    let plugged = started.elapsed();
    // Its connection to the coordinator either carries the question once packets flow again, or
    // has been given up on (keepalive) and fails it: well within this.
    let outcome = wait_for_outcome(&marker, Instant::now() + Duration::from_secs(60));
    eprintln!(
        "stopped {victim} before committing {stopped:?}, cut it off and continued it at {cut:?}; \
         replaced by {:?}; the job finished at {done:?}; plugged back at {plugged:?}; its commit \
         ended at {:?}: {outcome}\n{}",
        winners[0],
        started.elapsed(),
        finished.stdout
    );
    assert!(
        outcome == "refused" || outcome.starts_with("failed: "),
        "the cut-off attempt's commit: {outcome}"
    );
    // Nor is the host wedged: it joins the cluster again, and still nothing changed.
    cluster.wait_for_ready_workers(WORKERS, deadline);
    assert!(
        cluster.worker_hosts().values().any(|&h| h == host),
        "the plugged-back host did not register again"
    );
    eprintln!(
        "{victim}'s host seen registered again at {:?}",
        started.elapsed()
    );
    assert_exact(&finished, &output, &expected, "the job, after");
    assert_eq!(files_below(&output), before, "the output changed");
    assert!(
        !output.join("_temporary").exists(),
        "left under _temporary: {:?}",
        files_below(&output).keys()
    );
}
