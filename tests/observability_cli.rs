//! Watching a job from the command line (issue 12): the progress display on a terminal and off
//! one, why a job waits, `quern status --json`, and JSON logs. Real processes over real gRPC.

mod common;

use common::watch::{Finished, Submission, lines, summary_counter};
use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Split size of the progress test: each input file is exactly this long, so each is one map.
const SPLIT: usize = 4096;

/// Writes `files` files of exactly [`SPLIT`] bytes of words into `dir`; returns their lines.
fn write_split_sized_files(dir: &Path, files: usize) -> u64 {
    std::fs::create_dir(dir).unwrap();
    let mut line_count = 0;
    for file in 0..files {
        let mut text = String::new();
        let mut line = 0;
        while text.len() < SPLIT - 40 {
            text += &format!("alpha beta{} gamma{file}\n", line % 7);
            line += 1;
        }
        text += &"z".repeat(SPLIT - 1 - text.len());
        text += "\n";
        assert_eq!(text.len(), SPLIT);
        line_count += line + 1;
        std::fs::write(dir.join(format!("part-{file}.txt")), text).unwrap();
    }
    line_count
}

/// What a terminal was sent, without its escape sequences (cursor moves, colours).
fn without_escapes(raw: &str) -> String {
    let mut plain = String::new();
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\x1b' {
            plain.push(c);
            continue;
        }
        // CSI: ESC [ parameters, ended by a letter.
        if chars.next() == Some('[') {
            while chars.next().is_some_and(|c| !c.is_ascii_alphabetic()) {}
        }
    }
    plain
}

/// What the last `name` bar drawn on `screen` says after it, as `4/4 100%` of
/// `maps [====] 4/4 100%`.
fn last_bar(screen: &str, name: &str) -> String {
    let start = screen
        .rfind(&format!("{name} ["))
        .unwrap_or_else(|| panic!("no {name} bar in {screen:?}"));
    let after = &screen[start..];
    let end = after.find(']').expect("a bar ends");
    let words: Vec<&str> = after[end + 1..].split_whitespace().take(2).collect();
    words.join(" ")
}

#[test]
fn progress_on_a_terminal_ends_with_every_map_and_reduce_done() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    let records = write_split_sized_files(&input, 4);
    let output = dir.path().join("out");
    let summary = dir.path().join("summary.txt");
    // Only stderr is on the terminal `script` makes; stdout goes to a file, as a script's would.
    let command = format!(
        "stty cols 120 rows 40; exec {QUERN} run wordcount --input {} --output {} \
         --split-size {SPLIT} --reducers 3 --workers 2 > {}",
        input.display(),
        output.display(),
        summary.display()
    );
    let run = Command::new("script")
        .args(["-qfec", &command, "/dev/null"])
        .env("QUERN_LOG", "warn")
        .output()
        .expect("script (util-linux) runs");
    let terminal = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{terminal}");
    assert!(
        terminal.contains('\x1b'),
        "not drawn as a terminal: {terminal:?}"
    );

    let screen = without_escapes(&terminal);
    assert_eq!(last_bar(&screen, "maps"), "4/4 100%", "{screen}");
    assert_eq!(last_bar(&screen, "reduces"), "3/3 100%", "{screen}");
    // Nothing is drawn before the totals are known.
    assert!(!screen.contains("0/0"), "{screen}");
    let summary = std::fs::read_to_string(&summary).unwrap();
    assert_eq!(summary_counter(&summary, "tasks:"), 4, "{summary}");
    assert_eq!(summary_counter(&summary, "input:"), records, "{summary}");
    assert!(summary.starts_with("job "), "{summary}");
    assert!(!summary.contains('\x1b'), "{summary:?}");
}

/// Submits word count of one small file with `--wait` and `extra` flags to a cluster without
/// workers; once the job has waited two seconds, adds a worker and returns how the submit ended,
/// and the job's `status --json` while it waited and after.
fn wait_for_a_worker(extra: &[&str]) -> (Finished, String, Value, Value) {
    let mut cluster = Cluster::start(0, 1);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "b a b\n").unwrap();
    let output = dir.path().join("out");
    let (input, output) = (input.to_str().unwrap(), output.to_str().unwrap());
    let mut args = submit_wordcount(&cluster.address, input, output, extra);
    args.push("--wait");
    let submission = Submission::start(Path::new(QUERN), &args);
    let deadline = Instant::now() + Duration::from_secs(30);
    let job = watch::newest_job(&cluster.address, None, deadline);
    let waiting = loop {
        let status = job_json(&cluster.address, &job);
        if status["elapsed_ms"].as_u64().unwrap() >= 2000 {
            break status;
        }
        assert!(Instant::now() < deadline, "{status}");
        std::thread::sleep(Duration::from_millis(50));
    };
    cluster.add_worker(1);
    let finished = submission.finish(deadline);
    let after = job_json(&cluster.address, &job);
    (finished, job, waiting, after)
}

/// `quern status JOB --json`, parsed.
fn job_json(address: &str, job: &str) -> Value {
    let output = quern(&["status", "--coordinator", address, job, "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    serde_json::from_str(&stdout(&output)).unwrap_or_else(|e| panic!("{e}: {}", stdout(&output)))
}

const NO_WORKER: &str = "no connected worker has job 'wordcount' (no worker is connected at all); start workers \
     from a binary that has it";

#[test]
fn off_a_terminal_progress_is_plain_lines_that_say_why_the_job_waits() {
    let (finished, job, waiting, after) = wait_for_a_worker(&[]);
    assert!(finished.status.success(), "{}", finished.stderr);
    assert_eq!(waiting["state"], "running", "{waiting}");
    assert_eq!(waiting["waiting"], NO_WORKER, "{waiting}");
    assert_eq!(after["state"], "succeeded", "{after}");
    assert_eq!(after["waiting"], Value::Null, "{after}");

    let stderr = &finished.stderr;
    assert!(!stderr.contains(['\x1b', '\r']), "{stderr:?}");
    let said: Vec<&str> = stderr.lines().collect();
    let running = format!("quern: {job} running: maps ");
    let (last, before) = said.split_last().expect("progress lines");
    assert!(before.iter().all(|l| l.starts_with(&running)), "{stderr}");
    assert!(
        said[0].ends_with(&format!("waiting: {NO_WORKER}")),
        "{stderr}"
    );
    // Printed again only when something changed: the reason did not while the job waited.
    assert_eq!(stderr.matches("waiting:").count(), 1, "{stderr}");
    let done = format!("quern: {job} succeeded: maps 1/1, reduces 1/1, ");
    assert!(last.starts_with(&done), "{stderr}");
    // One line a second at most, besides the last.
    let seconds = after["elapsed_ms"].as_u64().unwrap() / 1000;
    assert!(before.len() as u64 <= seconds, "{stderr}");

    let out: Vec<&str> = finished.stdout.lines().collect();
    assert_eq!(
        out[0],
        format!("submitted {job}: 1 map tasks, 1 reduce tasks")
    );
    assert!(out[1].starts_with(&format!("job {job} (wordcount) succeeded in ")));
    assert_eq!(summary_counter(&finished.stdout, "input:"), 1);
    assert_eq!(summary_counter(&finished.stdout, "output:"), 2);
}

#[test]
fn quiet_shows_no_progress_and_the_same_summary() {
    let (finished, job, waiting, _) = wait_for_a_worker(&["--quiet"]);
    assert!(finished.status.success(), "{}", finished.stderr);
    assert_eq!(waiting["waiting"], NO_WORKER, "{waiting}");
    assert_eq!(finished.stderr, "");
    let out: Vec<&str> = finished.stdout.lines().collect();
    assert_eq!(
        out[0],
        format!("submitted {job}: 1 map tasks, 1 reduce tasks")
    );
    assert!(out[1].starts_with(&format!("job {job} (wordcount) succeeded in ")));
}

/// Tasks with a succeeded attempt of `kind` in a job's JSON history, sorted.
fn succeeded_tasks(job: &Value, kind: &str) -> Vec<u64> {
    let mut tasks: Vec<u64> = job["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == kind && a["state"] == "succeeded")
        .map(|a| a["task"].as_u64().unwrap())
        .collect();
    tasks.sort();
    tasks.dedup();
    tasks
}

/// Word count on `cluster` over `files` split-sized files written under `dir` (one map each),
/// into two reduces, waited for: the input directory, its line count, the job's id and its
/// `status --json`.
fn word_count_of_split_sized_files(
    cluster: &Cluster,
    dir: &Path,
    files: usize,
) -> (PathBuf, u64, String, Value) {
    let input = dir.join("in");
    let records = write_split_sized_files(&input, files);
    let output = dir.join("out");
    let split = SPLIT.to_string();
    let extra = ["--split-size", split.as_str(), "--reducers", "2", "--wait"];
    let args = submit_wordcount(
        &cluster.address,
        input.to_str().unwrap(),
        output.to_str().unwrap(),
        &extra,
    );
    let submitted = quern(&args);
    assert!(submitted.status.success(), "{}", stderr(&submitted));
    let job_id = watch::newest_job(&cluster.address, None, Instant::now());
    let job = job_json(&cluster.address, &job_id);
    (input, records, job_id, job)
}

#[test]
fn status_json_matches_the_jobs_counters() {
    let cluster = Cluster::start(2, 2);
    let dir = tempfile::tempdir().unwrap();
    let (input, records, job_id, job) = word_count_of_split_sized_files(&cluster, dir.path(), 3);
    let counts = expected_counts(&input);
    let bytes: u64 = (3 * SPLIT) as u64;
    assert_eq!(job["id"], job_id.as_str());
    assert_eq!(job["name"], "wordcount");
    assert_eq!(job["state"], "succeeded");
    assert_eq!(job["maps"], serde_json::json!({"done": 3, "total": 3}));
    assert_eq!(job["reduces"], serde_json::json!({"done": 2, "total": 2}));
    let counters = &job["counters"];
    assert_eq!(counters["input_records"], records);
    assert_eq!(counters["input_bytes"], bytes);
    assert_eq!(counters["map_output_records"], counts.values().sum::<u64>());
    assert_eq!(counters["reduce_input_groups"], counts.len() as u64);
    assert_eq!(counters["output_records"], counts.len() as u64);
    assert_eq!(job["error"], Value::Null);
    assert_eq!(succeeded_tasks(&job, "map"), [0, 1, 2]);
    assert_eq!(succeeded_tasks(&job, "reduce"), [0, 1]);
    assert_eq!(records, lines(&input));

    let output = quern(&["status", "--coordinator", &cluster.address, "--json"]);
    let view: Value = serde_json::from_str(&stdout(&output)).unwrap();
    let workers = view["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 2, "{view}");
    for worker in workers {
        assert_eq!(worker["ready"], true, "{view}");
        assert_eq!(worker["slots"], 2, "{view}");
        assert!(
            worker["jobs"]
                .as_array()
                .unwrap()
                .contains(&"wordcount".into())
        );
    }
    let listed = &view["jobs"][0];
    assert_eq!(listed["id"], job_id.as_str(), "{view}");
    assert_eq!(listed["counters"], *counters, "{view}");
    assert!(listed.get("attempts").is_none(), "{view}");
}

/// A number a JSON log field holds, whether written as a number or a string.
fn number(value: &Value) -> Option<u64> {
    value
        .as_u64()
        .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
}

#[test]
fn json_logs_carry_job_task_and_attempt_on_a_tasks_lines() {
    let logs = tempfile::tempdir().unwrap();
    let env = vec![
        ("QUERN_LOG_FORMAT", "json".to_string()),
        ("QUERN_LOG", "info,quern_worker=debug".to_string()),
    ];
    let mut cluster = Cluster::start_logging(env, 1, 2, &[], Some(logs.path()));
    let dir = tempfile::tempdir().unwrap();
    let (_, _, job_id, job) = word_count_of_split_sized_files(&cluster, dir.path(), 2);
    cluster.kill(1);
    cluster.kill(0);

    for name in ["coordinator", "worker-1"] {
        let log = std::fs::read_to_string(logs.path().join(name)).unwrap();
        for line in log.lines() {
            let _: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        }
    }
    let worker_log = std::fs::read_to_string(logs.path().join("worker-1")).unwrap();
    let task_lines: Vec<Value> = worker_log
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| l["span"]["name"] == "task")
        .collect();
    let succeeded: Vec<&Value> = job["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["state"] == "succeeded")
        .collect();
    assert_eq!(succeeded_tasks(&job, "map"), [0, 1], "{job}");
    assert_eq!(succeeded_tasks(&job, "reduce"), [0, 1], "{job}");
    for attempt in succeeded {
        let id = attempt["attempt"].as_u64().unwrap();
        let said: Vec<&Value> = task_lines
            .iter()
            .filter(|l| number(&l["span"]["attempt"]) == Some(id))
            .collect();
        assert!(
            !said.is_empty(),
            "no log line of attempt {id}:\n{worker_log}"
        );
        for line in said {
            assert_eq!(line["span"]["job"], job_id.as_str(), "{line}");
            assert_eq!(
                number(&line["span"]["task"]),
                attempt["task"].as_u64(),
                "{line}"
            );
        }
    }
}

#[test]
fn an_unknown_log_format_is_refused_by_name() {
    let output = quern_with_env(
        &["status", "--coordinator", &dead_address()],
        &[("QUERN_LOG_FORMAT", "yaml".to_string())],
    );
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        stderr(&output),
        "quern: QUERN_LOG_FORMAT is 'yaml'; it must be text or json\n"
    );
}
