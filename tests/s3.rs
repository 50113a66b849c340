//! S3-compatible storage end to end: real `quern` processes read input from and commit output to
//! an S3 server embedded in this test process (s3s-fs, which checks request signatures). Expected
//! counts are computed here from the same bytes on local disk.

mod common;

use common::*;
use quern_testkit::S3Server;
use std::path::Path;
use std::time::{Duration, Instant};

/// Copies every file of `dir` to `bucket/prefix/NAME`.
fn upload_dir(server: &S3Server, dir: &Path, bucket: &str, prefix: &str) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        server.put_file(
            bucket,
            &format!("{prefix}/{name}"),
            &std::fs::read(&path).unwrap(),
        );
    }
}

fn books() -> S3Server {
    let server = S3Server::start();
    server.create_bucket("books");
    upload_dir(&server, &corpus(), "books", "gutenberg");
    server
}

fn submit_args<'a>(cluster: &'a Cluster, input: &'a str, output: &'a str) -> Vec<&'a str> {
    submit_wordcount(
        &cluster.address,
        input,
        output,
        &["--reducers", "4", "--split-size", "128KiB", "--wait"],
    )
}

#[test]
fn word_count_between_s3_and_local_disk_in_every_direction() {
    let server = books();
    let cluster = Cluster::start_with_env(server.env(), 3, 2, &[]);
    let expected = expected_counts(&corpus());

    let run = quern_with_env(
        &submit_args(&cluster, "s3://books/gutenberg/", "s3://books/wc-out/"),
        &cluster.env,
    );
    assert!(run.status.success(), "S3 to S3: {}", stderr(&run));
    assert_eq!(
        read_output(&server.root().join("books/wc-out"), 4),
        expected
    );
    let manifest = String::from_utf8(server.object("books", "wc-out/_SUCCESS").unwrap()).unwrap();
    for p in 0..4 {
        let size = server
            .object("books", &format!("wc-out/part-r-0000{p}"))
            .unwrap()
            .len();
        let entry = format!("\"name\": \"part-r-0000{p}\",\n      \"bytes\": {size}");
        assert!(
            manifest.contains(&entry),
            "manifest lacks {entry}: {manifest}"
        );
    }
    assert_eq!(server.open_uploads(), Vec::<String>::new());

    let local = tempfile::tempdir().unwrap();
    let local_out = local.path().join("wc");
    let run = quern_with_env(
        &submit_args(
            &cluster,
            "s3://books/gutenberg/",
            local_out.to_str().unwrap(),
        ),
        &cluster.env,
    );
    assert!(run.status.success(), "S3 to local: {}", stderr(&run));
    assert_eq!(read_output(&local_out, 4), expected);

    let corpus = corpus();
    let run = quern_with_env(
        &submit_args(&cluster, corpus.to_str().unwrap(), "s3://books/from-local"),
        &cluster.env,
    );
    assert!(run.status.success(), "local to S3: {}", stderr(&run));
    assert_eq!(
        read_output(&server.root().join("books/from-local"), 4),
        expected
    );
    assert_eq!(server.open_uploads(), Vec::<String>::new());
}

#[test]
fn split_boundaries_on_s3_read_exactly_the_lines_of_a_local_read() {
    let server = S3Server::start();
    server.create_bucket("text");
    let dir = tempfile::tempdir().unwrap();
    let lines_dir = dir.path().join("lines");
    let book_dir = dir.path().join("book");
    std::fs::create_dir(&lines_dir).unwrap();
    std::fs::create_dir(&book_dir).unwrap();
    // Lines of every length around the split sizes, CRLF endings, a line longer than a split,
    // and no newline at the end; each line's words are unique, so a line read twice or cut in
    // two changes the counts.
    let mut text = String::new();
    for i in 0..400 {
        let ending = if i % 3 == 0 { "\r\n" } else { "\n" };
        text += &format!("l{i}a {}{ending}", format!("l{i}b ").repeat(i % 17));
    }
    text += &"long ".repeat(300);
    text += "\nlast line without newline";
    std::fs::write(lines_dir.join("lines.txt"), &text).unwrap();
    std::fs::copy(
        corpus().join("pg-metamorphosis.txt"),
        book_dir.join("book.txt"),
    )
    .unwrap();
    upload_dir(&server, &lines_dir, "text", "in");
    upload_dir(&server, &book_dir, "text", "in");
    let lines_only = expected_counts(&lines_dir);
    let mut both = expected_counts(&book_dir);
    for (word, count) in &lines_only {
        *both.entry(word.clone()).or_insert(0) += count;
    }
    let cases = [
        ("s3://text/in/lines.txt", "97", &lines_only),
        ("s3://text/in/lines.txt", "1000", &lines_only),
        ("s3://text/in/", "4KiB", &both),
    ];
    for (input, split, expected) in cases {
        let out = dir.path().join(format!("out-{split}"));
        let run = quern_with_env(
            &run_wordcount(
                input,
                out.to_str().unwrap(),
                &["--split-size", split, "--workers", "2", "--reducers", "2"],
            ),
            &server.env(),
        );
        assert!(run.status.success(), "split {split}: {}", stderr(&run));
        assert_eq!(&read_output(&out, 2), expected, "split size {split}");
    }
}

/// Runs `quern run wordcount` with `env`, expecting a failure within 15 s; returns stderr.
fn run_fails(input: &str, output: &str, env: &[(&str, String)]) -> String {
    let started = Instant::now();
    let run = quern_with_env(&run_wordcount(input, output, &["--workers", "1"]), env);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    assert!(!run.status.success(), "succeeded: {input} -> {output}");
    let err = stderr(&run);
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    err
}

#[test]
fn bad_s3_settings_and_urls_fail_fast_naming_the_problem() {
    let server = books();
    let env = server.env();
    let local = tempfile::tempdir().unwrap();
    let out = local.path().join("out");
    let out = out.to_str().unwrap();
    let endpoint = &server.endpoint;

    let err = run_fails("s3://no-such-bucket/x/", out, &env);
    assert!(
        err.contains(&format!(
            "bucket 'no-such-bucket' does not exist at {endpoint}"
        )),
        "{err}"
    );
    let err = run_fails("s3://books/gutenberg/", "s3://no-such-bucket/out/", &env);
    assert!(
        err.contains(&format!(
            "bucket 'no-such-bucket' does not exist at {endpoint}"
        )),
        "{err}"
    );

    let mut wrong = env.clone();
    wrong.retain(|(k, _)| *k != "AWS_SECRET_ACCESS_KEY");
    wrong.push(("AWS_SECRET_ACCESS_KEY", "not-the-secret".to_string()));
    let err = run_fails("s3://books/gutenberg/", out, &wrong);
    assert!(
        err.contains(&format!("{endpoint} refused the credentials")),
        "{err}"
    );
    for secret in [
        quern_testkit::ACCESS_KEY,
        quern_testkit::SECRET_KEY,
        "not-the-secret",
    ] {
        assert!(!err.contains(secret), "a credential in the message: {err}");
    }

    let dead = dead_address();
    let mut unreachable = env.clone();
    unreachable.retain(|(k, _)| *k != "AWS_ENDPOINT_URL");
    unreachable.push(("AWS_ENDPOINT_URL", dead.clone()));
    let err = run_fails("s3://books/gutenberg/", out, &unreachable);
    assert!(err.contains(&format!("cannot reach {dead}")), "{err}");

    let err = run_fails("s3://books/no-such-prefix/", out, &env);
    assert!(
        err.contains("input path does not exist: s3://books/no-such-prefix/"),
        "{err}"
    );
    let err = run_fails("s3:///gutenberg/", out, &env);
    assert!(
        err.contains("invalid storage URL 's3:///gutenberg/': no bucket"),
        "{err}"
    );
}

#[test]
fn an_object_that_vanishes_after_listing_fails_the_job_naming_its_key() {
    let server = books();
    server.put_file("books", "vanish/a.txt", b"stays\n");
    server.put_file("books", "vanish/b.txt", b"goes away\n");
    // No workers yet: the job is listed and split, but no task can read before the object goes.
    let mut cluster = Cluster::start_with_env(server.env(), 0, 1, &[]);
    let local = tempfile::tempdir().unwrap();
    let out = local.path().join("out");
    let submitted = quern_with_env(
        &submit_wordcount(
            &cluster.address,
            "s3://books/vanish/",
            out.to_str().unwrap(),
            &["--max-attempts", "2"],
        ),
        &cluster.env,
    );
    assert!(submitted.status.success(), "{}", stderr(&submitted));
    let job_id = stdout(&submitted)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .trim_end_matches(':')
        .to_string();
    std::fs::remove_file(server.root().join("books/vanish/b.txt")).unwrap();
    cluster.add_worker(1);
    let deadline = Instant::now() + Duration::from_secs(15);
    let summary = loop {
        let status = quern(&["status", "--coordinator", &cluster.address, &job_id]);
        let text = stdout(&status);
        if text.contains(" failed in ") {
            break text;
        }
        assert!(Instant::now() < deadline, "job did not fail: {text}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(summary.contains("failed 2 times"), "{summary}");
    assert!(
        summary.contains("object not found: s3://books/vanish/b.txt"),
        "{summary}"
    );
    assert!(!out.join("_SUCCESS").exists());
}

/// The reduce's worker dies while its part file is an open multipart upload: another attempt
/// commits the partition, the dead attempt's upload is aborted, and exactly one part file, with
/// the right contents, is left.
#[test]
fn a_reducer_killed_mid_upload_leaves_one_part_and_no_open_upload() {
    let server = S3Server::start();
    server.create_bucket("big");
    // Enough input that the one reduce holds its upload open for a while in a debug build.
    let books = corpus();
    let mut expected = expected_counts(&books);
    for count in expected.values_mut() {
        *count *= 4;
    }
    for copy in 0..4 {
        upload_dir(&server, &books, "big", &format!("in/{copy}"));
    }
    let mut cluster = Cluster::start_with_env(
        server.env(),
        0,
        1,
        &["--heartbeat-interval", "100ms", "--worker-timeout", "1s"],
    );
    let victim = cluster.add_worker_with(&["--slots", "2"]);
    cluster.wait_for_ready_workers(1);
    let mut submit = std::process::Command::new(QUERN)
        .args(submit_wordcount(
            &cluster.address,
            "s3://big/in/",
            "s3://big/out/",
            &["--split-size", "64KiB", "--wait"],
        ))
        .envs(cluster.env.iter().map(|(k, v)| (k, v)))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.open_uploads().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the reduce never opened its upload"
        );
        assert!(
            submit.try_wait().unwrap().is_none(),
            "the job ended before the kill"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    cluster.processes.0[victim].kill().unwrap();
    cluster.add_worker(2);
    let status = submit.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut submit.stderr.take().unwrap(), &mut err).unwrap();
    assert!(status.success(), "{err}");
    assert_eq!(read_output(&server.root().join("big/out"), 1), expected);
    assert_eq!(server.open_uploads(), Vec::<String>::new());
}

/// A map-only job's maps and a total-order job's sample tasks work on S3 too: the maps commit
/// their own `part-m` files through multipart uploads the coordinator opened, and leave none
/// open; the sorted parts concatenate to the input's lines sorted.
#[test]
fn map_only_and_total_order_jobs_on_s3() {
    let server = books();
    let cluster = Cluster::start_with_env(server.env(), 2, 2, &[]);
    let mut grep = submit_wordcount(
        &cluster.address,
        "s3://books/gutenberg/",
        "s3://books/grep-out/",
        &[
            "-D",
            "pattern=the",
            "--reducers",
            "0",
            "--split-size",
            "128KiB",
            "--wait",
        ],
    );
    grep[1] = "grep";
    let run = quern_with_env(&grep, &cluster.env);
    assert!(run.status.success(), "grep: {}", stderr(&run));
    let out = server.root().join("books/grep-out");
    assert_eq!(read_part_lines(&out, 0), grep_lines(&corpus(), b"the"));
    assert!(!out.join("part-r-00000").exists());

    let mut sort = submit_args(&cluster, "s3://books/gutenberg/", "s3://books/sort-out/");
    sort[1] = "sort";
    let run = quern_with_env(&sort, &cluster.env);
    assert!(run.status.success(), "sort: {}", stderr(&run));
    let out = server.root().join("books/sort-out");
    let sorted: Vec<u8> = (0..4)
        .flat_map(|p| std::fs::read(out.join(format!("part-r-{p:05}"))).unwrap())
        .collect();
    let mut lines: Vec<Vec<u8>> = Vec::new();
    for entry in std::fs::read_dir(corpus()).unwrap() {
        let text = std::fs::read(entry.unwrap().path()).unwrap();
        let text = text.strip_suffix(b"\n").unwrap_or(&text);
        lines.extend(text.split(|&b| b == b'\n').map(<[u8]>::to_vec));
    }
    lines.sort();
    let expected: Vec<u8> = lines
        .iter()
        .flat_map(|l| [&l[..], b"\n"].concat())
        .collect();
    assert!(sorted == expected, "the parts are not the lines sorted");
    assert_eq!(server.open_uploads(), Vec::<String>::new());
}
