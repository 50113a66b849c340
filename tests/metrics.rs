//! `/metrics` on a real cluster (issue 12): it parses as the Prometheus text format; after a
//! job of M maps and R reduces, the succeeded attempts number exactly M + R; after a worker is
//! SIGKILLed, the lost-workers count rises.

mod common;

use common::web::*;
use common::*;
use std::time::{Duration, Instant};

/// Split size of the job below: each input file is over half of it and under it, so no two
/// files pack into one split and none is cut: one map per file.
const SPLIT: usize = 4096;

fn metrics(page: &str) -> Vec<Sample> {
    let response = get(&format!("{page}metrics"), &[]);
    assert_eq!(response.status, 200, "{}", response.body);
    assert!(
        response
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/plain")),
        "{:?}",
        response.headers
    );
    parse_metrics(&response.body)
}

#[test]
fn succeeded_attempts_are_the_jobs_tasks_and_a_killed_worker_is_counted_lost() {
    let flags = ["--heartbeat-interval", "100ms", "--worker-timeout", "1s"];
    let mut cluster = start_with_page(Vec::new(), 2, 2, &flags);
    let before = metrics(&cluster.page);
    assert_eq!(sum(&before, "quern_task_attempts_total", &[]), 0.0);
    assert_eq!(sum(&before, "quern_workers", &[("state", "ready")]), 2.0);

    let (maps, reducers) = (5, 3);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    for i in 0..maps {
        let line = format!("word{i} shared words here\n");
        let text = line.repeat(SPLIT * 3 / 4 / line.len());
        assert!(text.len() > SPLIT / 2 && text.len() < SPLIT);
        std::fs::write(input.join(format!("part-{i}.txt")), text).unwrap();
    }
    let output = dir.path().join("out");
    let run = quern(&submit_wordcount(
        &cluster.cluster.address,
        input.to_str().unwrap(),
        output.to_str().unwrap(),
        &[
            "--reducers",
            &reducers.to_string(),
            "--split-size",
            &SPLIT.to_string(),
            "--wait",
        ],
    ));
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(
        stdout(&run).contains(&format!(": {maps} map tasks, {reducers} reduce tasks")),
        "{}",
        stdout(&run)
    );

    let after = metrics(&cluster.page);
    let succeeded = |kind| {
        sum(
            &after,
            "quern_task_attempts_total",
            &[("kind", kind), ("state", "succeeded")],
        )
    };
    assert_eq!(succeeded("map"), maps as f64);
    assert_eq!(succeeded("reduce"), reducers as f64);
    assert_eq!(
        sum(
            &after,
            "quern_task_attempts_total",
            &[("state", "succeeded")]
        ),
        (maps + reducers) as f64
    );
    assert_eq!(sum(&after, "quern_jobs", &[("state", "succeeded")]), 1.0);
    assert_eq!(sum(&after, "quern_scheduling_queue_tasks", &[]), 0.0);
    // Every ended attempt has its duration observed once.
    assert_eq!(
        sum(&after, "quern_task_duration_seconds_count", &[]),
        sum(&after, "quern_task_attempts_total", &[])
    );
    assert!(sum(&after, "quern_shuffle_bytes_total", &[]) > 0.0);
    assert_eq!(sum(&after, "quern_heartbeat_lag_seconds_count", &[]), 2.0);
    assert_eq!(sum(&after, "quern_workers_lost_total", &[]), 0.0);

    cluster.cluster.kill(1);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = metrics(&cluster.page);
        if sum(&now, "quern_workers_lost_total", &[]) == 1.0 {
            assert_eq!(sum(&now, "quern_workers", &[("state", "lost")]), 1.0);
            assert_eq!(sum(&now, "quern_workers", &[("state", "ready")]), 1.0);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the killed worker was not counted lost"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
