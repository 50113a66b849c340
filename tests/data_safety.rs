//! Quern never loses or destroys a user's data: `--overwrite` replaces only a previous job's
//! output, every input file is read whatever its name, an input changed after listing fails its
//! job naming it, and a killed worker's work directory does not outlive the next worker.
//! (Issue 7, item 8.) Expected counts are computed here from the bytes the test writes.

mod common;

use common::watch;
use common::*;
use quern_testkit::S3Server;
use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn examples_data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/data")
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// Word counts of `texts`, split on ASCII whitespace as word count does.
fn counts_of<'a>(texts: impl IntoIterator<Item = &'a str>) -> HashMap<Vec<u8>, u64> {
    let mut counts = HashMap::new();
    for text in texts {
        for word in text.split_ascii_whitespace() {
            *counts.entry(word.as_bytes().to_vec()).or_insert(0) += 1;
        }
    }
    counts
}

/// Every path below `dir`, links not followed: a file's contents, a link's target, or "dir".
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut found = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let what = if meta.file_type().is_symlink() {
                format!("link to {}", std::fs::read_link(&path).unwrap().display())
            } else if meta.is_dir() {
                pending.push(path.clone());
                "dir".to_string()
            } else {
                std::fs::read_to_string(&path).unwrap()
            };
            found.insert(path, what);
        }
    }
    found
}

/// Expects `output` to have failed with one line of error; returns it.
fn one_line_error(output: &Output, what: &str) -> String {
    assert!(
        !output.status.success(),
        "{what} succeeded: {}",
        stdout(output)
    );
    let err = stderr(output);
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one line of error: {err}"
    );
    err
}

#[test]
fn overwrite_refuses_a_directory_that_is_not_job_output_and_deletes_nothing() {
    // Issue 7: this used to delete all of it, and elsewhere/unrelated.db through the link.
    let dir = tempfile::tempdir().unwrap();
    let that = dir.path().join("that-dir");
    write(&that.join("notes.txt"), "my notes\n");
    write(&that.join("sub/thesis.tex"), "\\documentclass{article}\n");
    write(&dir.path().join("elsewhere/unrelated.db"), "precious\n");
    std::os::unix::fs::symlink("../elsewhere", that.join("link")).unwrap();
    let before = snapshot(dir.path());

    let run = quern(&run_wordcount(
        path(&examples_data()),
        path(&that),
        &["--overwrite"],
    ));
    let err = one_line_error(&run, "--overwrite of a directory of notes");
    let prefix = format!(
        "--overwrite refused: output file://{} holds '",
        that.display()
    );
    let named = err.split_once(&prefix).unwrap_or_else(|| panic!("{err}")).1;
    assert!(
        ["notes.txt'", "sub/'", "link'"]
            .iter()
            .any(|entry| named.starts_with(entry)),
        "{err}"
    );
    assert_eq!(snapshot(dir.path()), before, "something was touched");
}

#[test]
fn overwrite_replaces_a_previous_jobs_output() {
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = ("a b a\nc\n", "x y\nx\n");
    write(&dir.path().join("first/in.txt"), first);
    write(&dir.path().join("second/in.txt"), second);
    let out = dir.path().join("out");

    let run = quern(&run_wordcount(
        path(&dir.path().join("first")),
        path(&out),
        &["--reducers", "3"],
    ));
    assert!(run.status.success(), "{}", stderr(&run));
    assert_eq!(read_output(&out, 3), counts_of([first]));
    // What a crashed attempt would have left.
    write(&out.join("_temporary/attempt-99/part-r-00001"), "stale\n");

    let run = quern(&run_wordcount(
        path(&dir.path().join("second")),
        path(&out),
        &["--overwrite"],
    ));
    assert!(run.status.success(), "{}", stderr(&run));
    // Exactly _SUCCESS and one part: the old parts and _temporary are gone.
    assert_eq!(read_output(&out, 1), counts_of([second]));
}

#[test]
fn an_output_inside_an_input_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    write(&input.join("a.txt"), "to be\n");

    for output in [input.join("out"), input.clone()] {
        let run = quern(&run_wordcount(path(&input), path(&output), &[]));
        let err = one_line_error(&run, "an output inside the input");
        assert!(
            err.contains(&format!(
                "output file://{} is, or is inside, input file://{}",
                output.display(),
                input.display()
            )),
            "{err}"
        );
    }
    assert!(!input.join("out").exists());

    // Reading a previous output's part while overwriting that output would delete the input.
    let out = dir.path().join("out");
    let run = quern(&run_wordcount(path(&input), path(&out), &[]));
    assert!(run.status.success(), "{}", stderr(&run));
    let part = out.join("part-r-00000");
    let before = std::fs::read_to_string(&part).unwrap();
    let run = quern(&run_wordcount(path(&part), path(&out), &["--overwrite"]));
    let err = one_line_error(&run, "overwriting the output that holds the input");
    assert!(
        err.contains(&format!(
            "input file://{} is inside output file://{}, which --overwrite would delete",
            part.display(),
            out.display()
        )),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&part).unwrap(), before);
}

#[test]
fn every_file_below_an_input_is_read_whatever_its_name() {
    // Issue 7: `chapter#1` was skipped, and `x[1].txt` read as a glob.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    let visible = [
        "chapter#1",
        "x[1].txt",
        "with space.txt",
        "100%",
        "x%41",
        "naïve-ü.txt",
        "q?",
        "star*",
        "sub dir/#2",
        "sub dir/b#12",
    ];
    let hidden = ["_hidden", ".dot", "sub dir/_x", "_temporary/part-r-00000"];
    let line = |name: &str| format!("common word-of-{name}\n");
    for name in visible.iter().chain(&hidden) {
        write(&input.join(name), &line(name));
    }
    let texts: Vec<String> = visible.iter().map(|name| line(name)).collect();

    let out = dir.path().join("out");
    let run = quern(&run_wordcount(
        path(&input),
        path(&out),
        &["--reducers", "2"],
    ));
    assert!(run.status.success(), "{}", stderr(&run));
    assert_eq!(
        read_output(&out, 2),
        counts_of(texts.iter().map(String::as_str))
    );

    // A path that exists is that file, not a glob.
    let out = dir.path().join("out-one");
    let file = input.join("x[1].txt");
    let run = quern(&run_wordcount(path(&file), path(&out), &[]));
    assert!(run.status.success(), "{}", stderr(&run));
    assert_eq!(read_output(&out, 1), counts_of([line("x[1].txt").as_str()]));
}

/// Submits word count over `input` without waiting; returns the job id.
fn submit_job(cluster: &Cluster, input: &str, output: &Path) -> String {
    let run = quern_with_env(
        &submit_wordcount(
            &cluster.address,
            input,
            path(output),
            &["--split-size", "64"],
        ),
        &cluster.env,
    );
    assert!(run.status.success(), "{}", stderr(&run));
    let text = stdout(&run);
    text.strip_prefix("submitted ")
        .and_then(|rest| rest.split(':').next())
        .unwrap_or_else(|| panic!("unexpected submit output: {text}"))
        .to_string()
}

/// Polls `quern status JOB` until the job ends; returns its summary's error line.
fn job_error(cluster: &Cluster, job: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = stdout(&quern(&["status", "--coordinator", &cluster.address, job]));
        let first = status.lines().next().unwrap_or_default();
        if first.contains(" failed in ") {
            return status
                .lines()
                .find_map(|l| l.trim().strip_prefix("error:"))
                .unwrap_or_else(|| panic!("no error line: {status}"))
                .trim()
                .to_string();
        }
        assert!(!first.contains(" succeeded in "), "{status}");
        assert!(Instant::now() < deadline, "job did not end: {status}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn an_input_changed_after_listing_fails_its_job_naming_it() {
    // No worker yet: the coordinator lists the input at submit, and nothing reads it until the
    // worker starts, after the files changed.
    let mut cluster = Cluster::start(0, 1);
    let dir = tempfile::tempdir().unwrap();
    let original = "one two three\n".repeat(20);
    let appended = dir.path().join("appended.txt");
    let replaced = dir.path().join("replaced.txt");
    write(&appended, &original);
    write(&replaced, &original);
    let appended_job = submit_job(&cluster, path(&appended), &dir.path().join("out-appended"));
    let replaced_job = submit_job(&cluster, path(&replaced), &dir.path().join("out-replaced"));
    // Small files packed into one map task: each keeps its own check.
    let packed = dir.path().join("packed");
    for name in ["a.txt", "b.txt", "c.txt"] {
        write(&packed.join(name), "one two\n");
    }
    let packed_job = submit_job(&cluster, path(&packed), &dir.path().join("out-packed"));
    assert_eq!(watch::job_view(&cluster.address, &packed_job).map_tasks, 1);

    let more = "four five\n";
    std::fs::OpenOptions::new()
        .append(true)
        .open(&appended)
        .unwrap()
        .write_all(more.as_bytes())
        .unwrap();
    // The same size, other words: an editor's save (write a new file, rename it over).
    let same_size = original.replace("three", "THREE");
    assert_eq!(same_size.len(), original.len());
    write(&dir.path().join("new"), &same_size);
    std::fs::rename(dir.path().join("new"), &replaced).unwrap();
    let grown = packed.join("b.txt");
    std::fs::OpenOptions::new()
        .append(true)
        .open(&grown)
        .unwrap()
        .write_all(b"three\n")
        .unwrap();
    cluster.add_worker(1);

    let err = job_error(&cluster, &packed_job);
    assert!(
        err.contains(&format!(
            "input file://{} changed after the job was submitted: it was 8 bytes when listed and is 14 bytes now",
            grown.display()
        )),
        "{err}"
    );
    let err = job_error(&cluster, &appended_job);
    assert!(
        err.contains(&format!(
            "input file://{} changed after the job was submitted: it was {} bytes when listed and is {} bytes now",
            appended.display(),
            original.len(),
            original.len() + more.len()
        )),
        "{err}"
    );
    let err = job_error(&cluster, &replaced_job);
    assert!(
        err.contains(&format!(
            "input file://{} changed after the job was submitted: it was rewritten or replaced",
            replaced.display()
        )),
        "{err}"
    );
    assert!(!dir.path().join("out-appended/_SUCCESS").exists());
    assert!(!dir.path().join("out-replaced/_SUCCESS").exists());
    assert!(!dir.path().join("out-packed/_SUCCESS").exists());
}

#[test]
fn an_s3_object_replaced_after_listing_fails_its_job_naming_it() {
    let server = S3Server::start();
    server.create_bucket("data");
    let original = "one two three\n".repeat(20);
    server.put_file("data", "in/grown.txt", original.as_bytes());
    server.put_file("data", "same.txt", original.as_bytes());
    let mut cluster = Cluster::start_with_env(server.env(), 0, 1, &[]);
    let dir = tempfile::tempdir().unwrap();
    // Listed under a prefix, and as one key (whose ETag a HEAD gives).
    let grown_job = submit_job(&cluster, "s3://data/in/", &dir.path().join("out-grown"));
    let same_job = submit_job(&cluster, "s3://data/same.txt", &dir.path().join("out-same"));

    let grown = format!("{original}four five\n");
    server.put_file("data", "in/grown.txt", grown.as_bytes());
    let same_size = original.replace("three", "THREE");
    assert_eq!(same_size.len(), original.len());
    server.put_file("data", "same.txt", same_size.as_bytes());
    cluster.add_worker(1);

    let err = job_error(&cluster, &grown_job);
    assert!(
        err.contains(&format!(
            "input s3://data/in/grown.txt changed after the job was submitted: it was {} bytes when listed and is {} bytes now",
            original.len(),
            grown.len()
        )),
        "{err}"
    );
    let err = job_error(&cluster, &same_job);
    assert!(
        err.contains(
            "input s3://data/same.txt changed after the job was submitted: it was replaced"
        ),
        "{err}"
    );
}

/// The work directories of workers under `base`.
fn worker_dirs(base: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(base)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("lock").is_file())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn a_starting_worker_removes_the_work_directory_a_killed_worker_left() {
    let temp = tempfile::tempdir().unwrap();
    let env = vec![("TMPDIR", path(temp.path()).to_string())];
    let mut cluster = Cluster::start_with_env(env, 1, 1, &[]);
    let base = temp.path().join("quern-worker");
    let killed = worker_dirs(&base);
    assert_eq!(killed.len(), 1, "{killed:?}");
    let killed = killed[0].clone();
    write(&killed.join("job-0001/map-00000-1/output"), "map output");
    // Not a worker directory, or not provably one: left alone.
    write(&base.join("notes/keep.txt"), "mine\n");
    write(&base.join("worker-nolock/keep.txt"), "mine\n");

    let worker = &mut cluster.processes.0[1];
    worker.kill().unwrap(); // SIGKILL: no clean-up
    worker.wait().unwrap();
    assert!(killed.join("job-0001/map-00000-1/output").is_file());

    cluster.add_worker(1);
    let deadline = Instant::now() + Duration::from_secs(30);
    while killed.exists() {
        assert!(
            Instant::now() < deadline,
            "{} was not removed",
            killed.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let live = worker_dirs(&base);
    assert_eq!(live.len(), 1, "the new worker's own: {live:?}");
    assert_ne!(live[0], killed);
    assert!(base.join("notes/keep.txt").is_file());
    assert!(base.join("worker-nolock/keep.txt").is_file());
}
