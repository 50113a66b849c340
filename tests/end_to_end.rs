//! Word count end to end on real processes: a `quern coordinator`, three `quern worker`s and
//! `quern submit`, talking gRPC over loopback; and the same job through `quern run`. The output is
//! compared with counts computed here, independently of the program.

mod common;

use common::watch::{self, summary_counter, summary_value};
use common::*;
use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[test]
fn word_count_on_a_three_worker_cluster_matches_an_independent_count() {
    let cluster = Cluster::start(3, 2);
    let out = tempfile::tempdir().unwrap();
    let output = out.path().join("wc");
    let corpus = corpus();
    let run = quern(&submit_wordcount(
        &cluster.address,
        corpus.to_str().unwrap(),
        output.to_str().unwrap(),
        &["--reducers", "4", "--split-size", "128KiB", "--wait"],
    ));
    assert!(run.status.success(), "submit failed: {}", stderr(&run));
    let printed = stdout(&run);
    let job_id = printed
        .split_whitespace()
        .nth(1)
        .map(|id| id.trim_end_matches(':').to_string())
        .expect("submit prints the job id");
    assert!(printed.contains("succeeded"), "{printed}");

    assert_eq!(read_output(&output, 4), expected_counts(&corpus));

    let status = quern(&["status", "--coordinator", &cluster.address, &job_id]);
    assert!(status.status.success(), "{}", stderr(&status));
    let history = attempts(&stdout(&status));
    let maps: Vec<&Attempt> = history
        .iter()
        .filter(|a| a.task.starts_with("m-"))
        .collect();
    let reduces: Vec<&Attempt> = history
        .iter()
        .filter(|a| a.task.starts_with("r-"))
        .collect();
    assert!(maps.len() >= 20, "only {} map tasks", maps.len());
    assert_eq!(reduces.len(), 4);

    // No failures: every task ran exactly once, and succeeded.
    let tasks: HashSet<&str> = history.iter().map(|a| a.task.as_str()).collect();
    assert_eq!(tasks.len(), history.len(), "a task ran twice: {history:?}");
    assert!(
        history.iter().all(|a| a.state == "succeeded"),
        "{history:?}"
    );

    // The maps ran on all three workers at once: their first maps overlap in time.
    let mut first: BTreeMap<&str, &Attempt> = BTreeMap::new();
    for a in &maps {
        first.entry(a.worker.as_str()).or_insert(a);
    }
    assert_eq!(first.len(), 3, "maps ran on {:?}", first.keys());
    let latest_start = first.values().map(|a| a.start_ms).max().unwrap();
    let earliest_end = first
        .values()
        .map(|a| a.start_ms + a.duration_ms)
        .min()
        .unwrap();
    assert!(
        latest_start <= earliest_end,
        "first maps did not overlap: {first:?}"
    );
}

#[test]
fn quern_run_counts_the_corpus_exactly() {
    let out = tempfile::tempdir().unwrap();
    let output = out.path().join("wc");
    let corpus = corpus();
    let run = quern(&run_wordcount(
        corpus.to_str().unwrap(),
        output.to_str().unwrap(),
        &[
            "--reducers",
            "3",
            "--split-size",
            "256KiB",
            "--sort-buffer",
            "64KiB",
            "--workers",
            "3",
        ],
    ));
    assert!(run.status.success(), "run failed: {}", stderr(&run));
    assert!(stdout(&run).contains("succeeded"));
    assert_eq!(read_output(&output, 3), expected_counts(&corpus));
}

/// A reduce over more map outputs on disk than its process may hold files open: the corpus in
/// 4 KiB splits (about 800 maps) with a sort buffer so small that nearly every segment the reduce
/// takes stays on disk, under a hard limit of 256 open files that the worker cannot raise. The
/// reduce merges its segments in passes, never more than a hundred files at once.
#[test]
fn a_reduce_over_more_map_outputs_than_open_files_counts_the_corpus_exactly() {
    let out = tempfile::tempdir().unwrap();
    let output = out.path().join("wc");
    let corpus = corpus();
    let args = run_wordcount(
        corpus.to_str().unwrap(),
        output.to_str().unwrap(),
        &[
            "--split-size",
            "4KiB",
            "--sort-buffer",
            "64KiB",
            "--workers",
            "2",
            "--quiet",
        ],
    );
    let run = Command::new("sh")
        .args(["-c", "ulimit -n 256 && exec \"$0\" \"$@\"", QUERN])
        .args(&args)
        .env("QUERN_LOG", "warn")
        .output()
        .unwrap();
    assert!(run.status.success(), "run failed: {}", stderr(&run));
    let summary = stdout(&run);
    assert!(summary_value(&summary, "tasks:", "map") > 500, "{summary}");
    assert_eq!(read_output(&output, 1), expected_counts(&corpus));
}

/// Map output compressed with lz4 or zstd (spills too: the sort buffer is small) counts the corpus
/// exactly on a real cluster, and the shuffle moves fewer bytes than the same job uncompressed.
#[test]
fn compressed_map_output_counts_the_corpus_exactly_and_shuffles_fewer_bytes() {
    let cluster = Cluster::start(2, 2);
    let out = tempfile::tempdir().unwrap();
    let corpus = corpus();
    let expected = expected_counts(&corpus);
    let mut shuffled = BTreeMap::new();
    for codec in ["none", "lz4", "zstd"] {
        let output = out.path().join(codec);
        let run = quern(&submit_wordcount(
            &cluster.address,
            corpus.to_str().unwrap(),
            output.to_str().unwrap(),
            &[
                "--reducers",
                "3",
                "--split-size",
                "1MiB",
                "--sort-buffer",
                "64KiB",
                "--shuffle-compression",
                codec,
                "--wait",
            ],
        ));
        assert!(run.status.success(), "{codec}: {}", stderr(&run));
        let summary = stdout(&run);
        assert!(summary_value(&summary, "map:", "spills") > 0, "{summary}");
        assert_eq!(read_output(&output, 3), expected, "{codec}");
        shuffled.insert(codec, summary_counter(&summary, "shuffle:"));
    }
    assert!(shuffled["lz4"] < shuffled["none"], "{shuffled:?}");
    assert!(shuffled["zstd"] < shuffled["none"], "{shuffled:?}");
}

/// The `input` bytes count the lines each split owns, not what its reader read past its ends:
/// over a thousand-byte split size, thousands of maps add up to exactly the corpus's size.
#[test]
fn input_bytes_equal_the_input_size_at_a_small_split_size() {
    let out = tempfile::tempdir().unwrap();
    let output = out.path().join("wc");
    let corpus = corpus();
    let run = quern(&run_wordcount(
        corpus.to_str().unwrap(),
        output.to_str().unwrap(),
        &["--split-size", "1000", "--workers", "2"],
    ));
    assert!(run.status.success(), "run failed: {}", stderr(&run));
    let size: u64 = std::fs::read_dir(&corpus)
        .unwrap()
        .map(|e| std::fs::metadata(e.unwrap().path()).unwrap().len())
        .sum();
    let summary = stdout(&run);
    assert_eq!(
        summary_value(&summary, "input:", "bytes"),
        size,
        "{summary}"
    );
    assert_eq!(summary_counter(&summary, "input:"), watch::lines(&corpus));
    assert_eq!(read_output(&output, 1), expected_counts(&corpus));
}

#[test]
fn empty_input_gives_empty_parts_and_success() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    std::fs::write(input.join("empty.txt"), "").unwrap();
    let output = dir.path().join("out");
    let run = quern(&run_wordcount(
        input.to_str().unwrap(),
        output.to_str().unwrap(),
        &["--reducers", "2", "--workers", "1"],
    ));
    assert!(run.status.success(), "run failed: {}", stderr(&run));
    assert!(read_output(&output, 2).is_empty());
    assert_eq!(std::fs::read(output.join("part-r-00001")).unwrap(), b"");
}

#[test]
fn workers_delete_map_outputs_of_finished_jobs() {
    let mut cluster = Cluster::start(0, 1);
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    cluster.add_worker_with(&["--work-dir", work.to_str().unwrap()]);
    cluster.wait_for_ready_workers(1);
    assert_eq!(count_words_of(&cluster.address, "a b a\n"), "a\t2\nb\t1\n");
    // The job's map output directory goes at the worker's next heartbeats.
    let job_dir = work.join("job-0001");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while job_dir.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "{} still exists",
            job_dir.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Workers listening on every interface advertise the host they were given, with the port they
/// bound: the coordinator lists them there, and reducers fetch map output from each other there.
#[test]
fn workers_listening_on_all_interfaces_advertise_the_given_host() {
    // Reachable from other machines: the cluster needs a token.
    let token = vec![("QUERN_TOKEN", "all-interfaces-cluster-token".to_string())];
    let mut cluster = Cluster::start_with_env(token.clone(), 0, 1, &[]);
    for _ in 0..2 {
        cluster.add_worker_with(&[
            "--slots",
            "2",
            "--listen",
            "0.0.0.0:0",
            "--advertise",
            "127.0.0.1",
        ]);
    }
    cluster.wait_for_ready_workers(2);
    let status = stdout(&quern_with_env(
        &["status", "--coordinator", &cluster.address],
        &token,
    ));
    let workers: Vec<&str> = status.lines().filter(|l| l.contains(" ready ")).collect();
    assert_eq!(workers.len(), 2, "{status}");
    for line in workers {
        let address = line.split_whitespace().nth(1).unwrap();
        let port = address
            .strip_prefix("http://127.0.0.1:")
            .unwrap_or_else(|| panic!("advertised {address}"));
        assert_ne!(port.parse::<u16>().unwrap(), 0, "{address}");
    }

    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    for i in 0..8 {
        std::fs::write(input.join(format!("{i}.txt")), format!("a b{i} c\nc a\n")).unwrap();
    }
    let output = dir.path().join("out");
    let run = quern_with_env(
        &submit_wordcount(
            &cluster.address,
            input.to_str().unwrap(),
            output.to_str().unwrap(),
            &["--reducers", "2", "--wait"],
        ),
        &token,
    );
    assert!(run.status.success(), "{}", stderr(&run));
    assert_eq!(read_output(&output, 2), expected_counts(&input));
}

#[test]
fn a_listener_other_machines_can_reach_needs_a_token_or_says_it_serves_without_one() {
    let coordinator = quern(&["coordinator", "--listen", "0.0.0.0:0"]);
    assert!(!coordinator.status.success());
    assert_eq!(
        stderr(&coordinator).trim_end(),
        "quern: the coordinator on 0.0.0.0:0 would be reachable from other machines without a \
         token; give the cluster a token (--token-file or QUERN_TOKEN), or pass \
         --allow-unauthenticated"
    );
    let worker = quern(&[
        "worker",
        "--listen",
        "0.0.0.0:0",
        "--advertise",
        "127.0.0.1",
    ]);
    assert!(!worker.status.success());
    assert!(
        stderr(&worker).starts_with("quern: the worker's shuffle service on 0.0.0.0:0 would be"),
        "{}",
        stderr(&worker)
    );

    // Allowed: it starts, and says so.
    let mut allowed = Command::new(QUERN)
        .args([
            "coordinator",
            "--listen",
            "0.0.0.0:0",
            "--allow-unauthenticated",
        ])
        .env("QUERN_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(allowed.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(
        line.starts_with("quern coordinator listening on http://0.0.0.0:"),
        "{line}"
    );
    allowed.kill().unwrap();
    let log = allowed.wait_with_output().unwrap();
    assert!(
        stderr(&log).contains("serves without a token (--allow-unauthenticated)"),
        "{}",
        stderr(&log)
    );
}

#[test]
fn a_worker_stopped_with_sigterm_leaves_the_cluster_at_once() {
    // The heartbeat timeout is ten minutes: only the worker's goodbye can remove it in time.
    let mut cluster = Cluster::start_with(2, 1, &["--worker-timeout", "10m"]);
    let leaving = &mut cluster.processes.0[2];
    let pid = leaving.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let exit = leaving.wait().unwrap();
    assert!(exit.success(), "a stopped worker exits cleanly: {exit:?}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let status = stdout(&quern(&["status", "--coordinator", &cluster.address]));
        if status.starts_with("1 workers") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still listed: {status}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // The cluster goes on with the worker that stayed.
    assert_eq!(count_words_of(&cluster.address, "x y x\n"), "x\t2\ny\t1\n");
}

#[test]
fn status_says_when_no_worker_has_the_jobs_code() {
    let mut cluster = Cluster::start(0, 1);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "a\n").unwrap();
    let output = dir.path().join("out");
    let submitted = quern(&submit_wordcount(
        &cluster.address,
        input.to_str().unwrap(),
        output.to_str().unwrap(),
        &[],
    ));
    assert!(submitted.status.success(), "{}", stderr(&submitted));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let job_id = watch::newest_job(&cluster.address, None, deadline);
    let status = stdout(&quern(&[
        "status",
        "--coordinator",
        &cluster.address,
        &job_id,
    ]));
    assert!(
        status.contains("waiting: no connected worker has job 'wordcount'"),
        "{status}"
    );
    cluster.add_worker(1);
    loop {
        let status = stdout(&quern(&[
            "status",
            "--coordinator",
            &cluster.address,
            &job_id,
        ]));
        if status.contains(" succeeded in ") {
            assert!(!status.contains("waiting:"), "{status}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{status}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn a_users_own_job_binary_runs_its_job_through_the_same_cli() {
    let custom = example_binary("custom_job");
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    let text = "b line\na line\nb line\n\nb line\r\n";
    std::fs::write(&input, text).unwrap();
    let output = dir.path().join("out");
    let run = std::process::Command::new(&custom)
        .args(run_wordcount(
            input.to_str().unwrap(),
            output.to_str().unwrap(),
            &[],
        ))
        .args(["--reducers", "1"])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    // The template carries the built-in jobs too; now its own.
    let mut args = run_wordcount(
        input.to_str().unwrap(),
        output.to_str().unwrap(),
        &["--overwrite"],
    );
    args[1] = "linecount";
    let run = std::process::Command::new(&custom)
        .args(&args)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    let mut expected = std::collections::BTreeMap::new();
    for line in text.split('\n').map(|l| l.trim_end_matches('\r')) {
        *expected.entry(line.to_string()).or_insert(0u64) += 1;
    }
    expected.remove(""); // the text ends with a newline: no line after it
    expected.insert(String::new(), 1); // the one empty line in the middle
    let got = std::fs::read_to_string(output.join("part-r-00000")).unwrap();
    let got: std::collections::BTreeMap<String, u64> = got
        .lines()
        .map(|l| {
            let (k, v) = l.rsplit_once('\t').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect();
    assert_eq!(got, expected);
    // Its job did not say how to write its map output as text: it cannot run map-only.
    args.extend(["--reducers", "0"]);
    let run = std::process::Command::new(&custom)
        .args(&args)
        .output()
        .unwrap();
    assert!(!run.status.success());
    assert_eq!(
        stderr(&run),
        "quern: job 'linecount' cannot run map-only (--reducers 0): its map output types do not \
         write as text (see JobDef::runs_map_only)\n"
    );
}

/// Two books copied into `dir/in`; that directory.
fn two_books(dir: &Path) -> PathBuf {
    let input = dir.join("in");
    std::fs::create_dir(&input).unwrap();
    for book in ["pg-being_ernest.txt", "pg-metamorphosis.txt"] {
        std::fs::copy(corpus().join(book), input.join(book)).unwrap();
    }
    input
}

/// `quern submit grep -D PARAM --reducers R --split-size SPLIT --wait` on `cluster`.
fn grep_args<'a>(
    cluster: &'a Cluster,
    input: &'a Path,
    output: &'a Path,
    param: &'a str,
    reducers: &'a str,
    split: &'a str,
) -> Vec<&'a str> {
    let mut args = submit_wordcount(
        &cluster.address,
        input.to_str().unwrap(),
        output.to_str().unwrap(),
        &[
            "-D",
            param,
            "--reducers",
            reducers,
            "--split-size",
            split,
            "--wait",
        ],
    );
    args[1] = "grep";
    args
}

/// Job parameters reach workers that started before the job: `grep -D pattern=…` submitted to a
/// running cluster finds every line holding the pattern, with its file and offset, across many
/// splits; without the parameter, the submit is refused naming it.
#[test]
fn grep_with_a_pattern_parameter_finds_every_matching_line_with_its_file_and_offset() {
    let cluster = Cluster::start(2, 1);
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (two_books(dir.path()), dir.path().join("out"));
    let mut args = grep_args(&cluster, &input, &output, "pattern=love", "2", "16KiB");
    let run = quern(&args);
    assert!(run.status.success(), "{}", stderr(&run));
    let expected = grep_lines(&input, b"love");
    assert!(expected.len() > 20, "{}", expected.len());
    assert_eq!(read_part_lines(&output, 2), expected);
    // The user counter of matches, in the summary and in the `_SUCCESS` manifest.
    let matches = expected.len() as u64;
    assert_eq!(
        summary_counter(&stdout(&run), "counter: grep.matches"),
        matches
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(output.join("_SUCCESS")).unwrap()).unwrap();
    assert_eq!(
        manifest["counters"]["user"],
        serde_json::json!({ "grep.matches": matches })
    );

    args.retain(|a| *a != "-D" && *a != "pattern=love");
    let missing = quern(&args);
    assert!(!missing.status.success());
    assert_eq!(
        stderr(&missing),
        "quern: job 'grep': job parameter 'pattern' is not set (give -D pattern=VALUE)\n"
    );
}

/// `--reducers 0`: each map writes its matches straight to its own `part-m-NNNNN`, in input
/// order, committed as a reduce's part is; no `part-r` file, the matches counted once.
#[test]
fn a_map_only_grep_writes_one_part_per_map_in_input_order() {
    let cluster = Cluster::start(2, 1);
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (two_books(dir.path()), dir.path().join("out"));
    let run = quern(&grep_args(
        &cluster,
        &input,
        &output,
        "pattern=the",
        "0",
        "32KiB",
    ));
    assert!(run.status.success(), "{}", stderr(&run));
    let summary = stdout(&run);
    let maps = summary_counter(&summary, "tasks:");
    let expected = grep_lines(&input, b"the");
    assert!(maps > 4, "{summary}");
    assert_eq!(read_part_lines(&output, 0), expected);
    assert_eq!(
        summary_counter(&summary, "counter: grep.matches"),
        expected.len() as u64
    );

    let mut names: Vec<String> = std::fs::read_dir(&output)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let mut parts: Vec<String> = (0..maps).map(|m| format!("part-m-{m:05}")).collect();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(output.join("_SUCCESS")).unwrap()).unwrap();
    let listed: Vec<&str> = manifest["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(listed, parts);
    parts.insert(0, "_SUCCESS".into());
    assert_eq!(names, parts);
    // Each part holds its split's matches in the order they are in the input.
    for part in &parts[1..] {
        let text = std::fs::read_to_string(output.join(part)).unwrap();
        let places: Vec<(String, u64)> = text
            .lines()
            .map(|l| {
                let (place, _) = l.split_once('\t').unwrap();
                let (file, offset) = place.rsplit_once(':').unwrap();
                (file.to_string(), offset.parse().unwrap())
            })
            .collect();
        assert!(places.is_sorted(), "{part} is not in input order");
    }
}

/// `sort` in total order: a sampling stage cuts the key range, so the part files concatenated
/// in order are every line of the input sorted bytewise (as `LC_ALL=C sort`), duplicates kept;
/// the parts are balanced within 2x by bytes, and the sample tasks count nothing toward the job.
#[test]
fn sort_writes_every_line_in_total_order_across_balanced_parts() {
    const REDUCERS: usize = 4;
    let cluster = Cluster::start(2, 2);
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("out");
    let input = corpus();
    let mut args = submit_wordcount(
        &cluster.address,
        input.to_str().unwrap(),
        output.to_str().unwrap(),
        &["--reducers", "4", "--split-size", "256KiB", "--wait"],
    );
    args[1] = "sort";
    let run = quern(&args);
    assert!(run.status.success(), "{}", stderr(&run));

    let mut expected: Vec<Vec<u8>> = Vec::new();
    for entry in std::fs::read_dir(&input).unwrap() {
        let text = std::fs::read(entry.unwrap().path()).unwrap();
        let text = text.strip_suffix(b"\n").unwrap_or(&text);
        expected.extend(text.split(|&b| b == b'\n').map(<[u8]>::to_vec));
    }
    expected.sort();
    let parts: Vec<Vec<u8>> = (0..REDUCERS)
        .map(|p| std::fs::read(output.join(format!("part-r-{p:05}"))).unwrap())
        .collect();
    let got: Vec<Vec<u8>> = parts
        .concat()
        .split(|&b| b == b'\n')
        .map(<[u8]>::to_vec)
        .collect();
    assert_eq!(got.len(), expected.len() + 1, "one line per input line");
    assert!(
        got[..expected.len()] == expected[..],
        "not the input sorted"
    );
    let sizes: Vec<usize> = parts.iter().map(Vec::len).collect();
    let average = sizes.iter().sum::<usize>() / REDUCERS;
    assert!(
        sizes.iter().all(|&size| size <= 2 * average),
        "unbalanced parts: {sizes:?}"
    );
    let summary = stdout(&run);
    assert_eq!(
        summary_counter(&summary, "input:"),
        expected.len() as u64,
        "{summary}"
    );
}
