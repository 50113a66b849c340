//! The status page as a person sees it (issue 12): a job runs on a real cluster, and headless
//! Chromium renders `/` and `/jobs/JOB_ID`. The rendered DOM shows the job and its state, the
//! workers, and one timeline bar per attempt of the history `quern status JOB` gives; a
//! screenshot is not blank. With a cluster token, the page needs a login, and the one-time
//! login code works once. `quern run --http` serves the page while its job runs.

mod common;

use common::web::*;
use common::*;
use std::collections::BTreeSet;

const TOKEN: &str = "a-status-page-token-of-some-length";

/// Runs word count over a few files with two reducers; returns the job id.
fn run_job(cluster: &Cluster) -> String {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    for i in 0..3 {
        std::fs::write(
            input.join(format!("{i}.txt")),
            "to be or not to be\n".repeat(200),
        )
        .unwrap();
    }
    let output = dir.path().join("out");
    let run = quern_with_env(
        &submit_wordcount(
            &cluster.address,
            input.to_str().unwrap(),
            output.to_str().unwrap(),
            &["--reducers", "2", "--split-size", "4KiB", "--wait"],
        ),
        &cluster.env,
    );
    assert!(run.status.success(), "{}", stderr(&run));
    stdout(&run)
        .strip_prefix("submitted ")
        .and_then(|rest| rest.split(':').next())
        .unwrap_or_else(|| panic!("no job id in {}", stdout(&run)))
        .to_string()
}

/// The ids and addresses of the ready workers `quern status` lists.
fn ready_workers(cluster: &Cluster) -> Vec<(String, String)> {
    let status = quern_with_env(&["status", "--coordinator", &cluster.address], &cluster.env);
    stdout(&status)
        .lines()
        .filter(|l| l.contains(" ready "))
        .map(|l| {
            let mut fields = l.split_whitespace();
            let id = fields.next().unwrap().to_string();
            (id, fields.next().unwrap().to_string())
        })
        .collect()
}

/// The table row of the DOM that starts with `marker`.
fn row<'a>(dom: &'a str, marker: &str) -> &'a str {
    let start = dom
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} not in the page:\n{dom}"));
    let end = dom[start..].find("</tr>").map_or(dom.len(), |e| start + e);
    &dom[start..end]
}

/// The values of `data-attempt` in the DOM: one per timeline bar.
fn bars(dom: &str) -> Vec<u64> {
    dom.split("data-attempt=\"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().parse().unwrap())
        .collect()
}

/// The distinct colours of a PNG, checking its size.
fn colours(png_path: &std::path::Path, width: u32, height: u32) -> usize {
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(png_path).unwrap(),
    ));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size()];
    let frame = reader.next_frame(&mut pixels).unwrap();
    assert_eq!((frame.width, frame.height), (width, height));
    let channels = frame.color_type.samples();
    pixels[..frame.buffer_size()]
        .chunks(channels)
        .collect::<BTreeSet<_>>()
        .len()
}

#[test]
fn the_page_shows_the_job_its_workers_and_one_bar_per_attempt() {
    let Some(chromium) = chromium() else {
        return;
    };
    let cluster = start_with_page(Vec::new(), 2, 2, &[]);
    let job = run_job(&cluster.cluster);
    let status = quern(&["status", &job, "--coordinator", &cluster.cluster.address]);
    let history = attempts(&stdout(&status));
    assert!(!history.is_empty());
    let workers = ready_workers(&cluster.cluster);
    assert_eq!(workers.len(), 2);

    let index = dump_dom(&chromium, &cluster.page);
    let job_row = row(&index, &format!("data-job=\"{job}\""));
    assert!(job_row.contains("wordcount"), "{job_row}");
    assert!(
        job_row.contains(r#"<span class="state succeeded">succeeded</span>"#),
        "{job_row}"
    );
    assert!(
        job_row.contains("3/3") && job_row.contains("2/2"),
        "{job_row}"
    );
    for (id, address) in &workers {
        let worker_row = row(&index, &format!("data-worker=\"{id}\""));
        assert!(worker_row.contains(address.as_str()), "{worker_row}");
        assert!(worker_row.contains("state ready"), "{worker_row}");
    }

    let url = format!("{}jobs/{job}", cluster.page);
    let page = dump_dom(&chromium, &url);
    assert!(page.contains("<svg class=\"timeline\""), "{page}");
    let mut drawn = bars(&page);
    drawn.sort_unstable();
    let mut expected: Vec<u64> = history.iter().map(|a| a.attempt).collect();
    expected.sort_unstable();
    assert_eq!(drawn, expected, "one bar per attempt of the history");
    for attempt in &history {
        let state = attempt.state.to_lowercase();
        let bar = format!("class=\"bar {state}");
        let drawn_as = page
            .split("<rect ")
            .find(|r| r.contains(&format!("data-attempt=\"{}\"", attempt.attempt)))
            .unwrap();
        assert!(
            drawn_as.starts_with(&bar),
            "{attempt:?} drawn as {drawn_as}"
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("job.png");
    screenshot(&chromium, &url, &png);
    assert!(colours(&png, 1280, 800) > 1, "the screenshot is blank");

    let missing = get(&format!("{}jobs/job-1-9999", cluster.page), &[]);
    assert_eq!(missing.status, 404);
    assert!(
        missing.body.contains("No job job-1-9999 here"),
        "{}",
        missing.body
    );
}

#[test]
fn with_a_token_the_page_needs_a_login_and_the_code_works_once() {
    let env = vec![("QUERN_TOKEN", TOKEN.to_string())];
    let cluster = start_with_page(env, 1, 1, &[]);
    let login = cluster.login.clone().expect("a login URL");
    assert!(
        login.starts_with(&format!("{}login?code=", cluster.page)),
        "{login}"
    );

    for path in ["", "jobs/job-1-0001", "api/jobs", "api/workers", "metrics"] {
        let refused = get(&format!("{}{path}", cluster.page), &[]);
        assert_eq!(refused.status, 401, "/{path}: {}", refused.body);
        let wrong = format!("Bearer {TOKEN}x");
        let refused = get(
            &format!("{}{path}", cluster.page),
            &[("Authorization", &wrong)],
        );
        assert_eq!(refused.status, 401, "/{path} with a wrong token");
    }
    assert!(get(&cluster.page, &[]).body.contains("login needed"));
    let bearer = format!("Bearer {TOKEN}");
    let scraped = get(
        &format!("{}metrics", cluster.page),
        &[("Authorization", &bearer)],
    );
    assert_eq!(scraped.status, 200);
    parse_metrics(&scraped.body);

    let first = get(&login, &[]);
    assert_eq!(first.status, 303, "{}", first.body);
    assert_eq!(first.header("location"), Some("/"));
    let cookie = first.header("set-cookie").expect("a session cookie");
    assert!(cookie.starts_with("quern_session="), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let session = cookie.split(';').next().unwrap();
    let page = get(&cluster.page, &[("Cookie", session)]);
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<h2>Workers</h2>"), "{}", page.body);
    let api = get(
        &format!("{}api/workers", cluster.page),
        &[("Cookie", session)],
    );
    assert_eq!(api.status, 200);
    let workers: serde_json::Value = serde_json::from_str(&api.body).unwrap();
    assert_eq!(workers.as_array().map(Vec::len), Some(1), "{workers}");

    let again = get(&login, &[]);
    assert_eq!(again.status, 401, "the code worked twice");
    assert!(again.header("set-cookie").is_none());
    assert!(again.body.contains("was used already"), "{}", again.body);
}

#[test]
fn with_a_certificate_the_page_is_served_over_tls_and_its_cookie_is_secure() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = quern_testkit::certificates(dir.path(), "page");
    let env = vec![("QUERN_TOKEN", TOKEN.to_string())];
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let cluster = start_with_page(env, 0, 1, &["--tls-cert", cert, "--tls-key", key]);
    assert!(
        cluster.page.starts_with("https://127.0.0.1:"),
        "{}",
        cluster.page
    );
    let login = cluster.login.clone().expect("a login URL");
    assert!(
        login.starts_with(&format!("{}login?code=", cluster.page)),
        "{login}"
    );

    assert_eq!(get_tls(&cluster.page, &ca, &[]).status, 401);
    let bearer = format!("Bearer {TOKEN}");
    let api = get_tls(
        &format!("{}api/jobs", cluster.page),
        &ca,
        &[("Authorization", &bearer)],
    );
    assert_eq!((api.status, api.body.as_str()), (200, "[]"));
    let first = get_tls(&login, &ca, &[]);
    assert_eq!(first.status, 303, "{}", first.body);
    let cookie = first.header("set-cookie").expect("a session cookie");
    assert!(
        cookie.ends_with("; HttpOnly; SameSite=Strict; Secure"),
        "{cookie}"
    );
}

/// `quern run --http` serves the page while its job runs: the one-time login URL it prints on
/// stderr logs in, and `/api/jobs` lists the job, running. The job holds still long enough to be
/// seen because its map over the line `QUERN-HANG` hangs until the 1 s task timeout (the fault
/// jobs' `hangcount`); it then runs again, and the job ends with exact counts. The process
/// exits too, though the hung map's thread never returns.
#[test]
fn quern_run_serves_the_page_while_its_job_runs() {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    let deadline = Instant::now() + Duration::from_secs(60);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    std::fs::write(input.join("0.txt"), "one two\nQUERN-HANG two\n").unwrap();
    std::fs::write(input.join("1.txt"), "three three three\n").unwrap();
    let output = dir.path().join("out");
    let mut run = Command::new(example_binary("fault_jobs"))
        .args(["run", "hangcount", "--workers", "2", "--reducers", "1"])
        .arg("--input")
        .arg(&input)
        .arg("--output")
        .arg(&output)
        .args(["--http", "127.0.0.1:0", "--task-timeout", "1s"])
        .args(["--speculative", "off", "--quiet"])
        .env("QUERN_HANG_MARKER", dir.path().join("hung"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("quern run starts");

    let login = login_line(run.stderr.take().expect("stderr is piped"));
    let page = &login[..login.find("login?code=").expect("a login URL")];

    let first = get(&login, &[]);
    assert_eq!(first.status, 303, "{}", first.body);
    let cookie = first.header("set-cookie").expect("a session cookie");
    let session = cookie.split(';').next().unwrap().to_string();
    // The page is up before the job is submitted: poll until it is listed.
    let jobs = loop {
        let jobs = get(&format!("{page}api/jobs"), &[("Cookie", &session)]);
        assert_eq!(jobs.status, 200, "{}", jobs.body);
        let jobs: serde_json::Value = serde_json::from_str(&jobs.body).unwrap();
        if jobs.as_array().is_some_and(|listed| !listed.is_empty()) {
            break jobs;
        }
        assert!(Instant::now() < deadline, "the job never showed up");
        std::thread::sleep(Duration::from_millis(20));
    };
    let listed = jobs.as_array().expect("a list of jobs");
    assert_eq!(listed.len(), 1, "{jobs}");
    assert_eq!(listed[0]["name"], "hangcount", "{jobs}");
    assert_eq!(listed[0]["state"], "running", "{jobs}");

    let status = loop {
        if let Some(status) = run.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = run.kill();
            panic!("quern run did not finish");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        status.success(),
        "quern run failed (QUERN_TEST_LOGS=1 shows its stderr)"
    );
    assert_eq!(read_output(&output, 1), expected_counts(&input));
    assert!(output.join("_SUCCESS").exists());
}
