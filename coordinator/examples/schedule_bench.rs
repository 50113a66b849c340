//! The coordinator's state machine at the MapReduce paper's scale: 2,000 workers (4 slots
//! each), one job of 200,000 map tasks and 5,000 reduce partitions. Every assignment, task report
//! and heartbeat goes through the same `State` methods the gRPC service calls, without the
//! network, so what is measured is the coordinator's own cost per decision, and what grows with
//! the job: the map output events each reduce reads.
//!
//! `cargo run --release -p quern-coordinator --example schedule_bench`

use prost::Message;
use quern_coordinator::job::Job;
use quern_coordinator::split::{ObjectRange, Split};
use quern_coordinator::state::State;
use quern_proto::{AttemptProgress, Counters, JobSpec, MapOutputEvents, TaskReport};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const WORKERS: usize = 2_000;
const SLOTS: u32 = 4;
const MAPS: u64 = 200_000;
const REDUCES: u32 = 5_000;

fn main() {
    let mut state = State::default();
    let mut streams = Vec::with_capacity(WORKERS);
    let started = Instant::now();
    for w in 0..WORKERS {
        let id = state.register_worker(
            format!("http://10.0.{}.{}:7071", w / 250, w % 250),
            SLOTS,
            vec!["wc".into()],
            format!("session-{w}"),
        );
        let (sender, receiver) = mpsc::unbounded_channel();
        state.attach_stream(id, sender);
        streams.push((id, receiver));
    }
    let register = started.elapsed();

    let job = state.new_job_id();
    let spec = JobSpec {
        job_name: "wc".into(),
        output: "file:///out".into(),
        reducers: REDUCES,
        max_attempts: 4,
        ..JobSpec::default()
    };
    let splits = (0..MAPS)
        .map(|i| {
            Split::from(ObjectRange {
                url: format!("s3://logs/part-{:06}", i / 4),
                start: (i % 4) << 26,
                end: ((i % 4) + 1) << 26,
                object_size: 4 << 26,
                // An S3 ETag's length: what each assignment carries to be checked on read.
                version: quern_storage::Version::Tag(format!("\"{:032x}\"", i / 4)),
            })
        })
        .collect();
    let submit_started = Instant::now();
    state.add_job(Job::new(job, spec, splits));
    let submit = submit_started.elapsed();

    // Workers finish whatever they were given, round after round, until the job is done.
    let (mut assignments, mut reports, mut heartbeats) = (0u64, 0u64, 0u64);
    let mut report_time = Duration::ZERO;
    let mut heartbeat_time = Duration::ZERO;
    let job_id = job.to_string();
    loop {
        let mut progress = false;
        for (worker, receiver) in &mut streams {
            let mut running = Vec::new();
            while let Ok(Ok(assignment)) = receiver.try_recv() {
                running.push(assignment.attempt_id);
            }
            assignments += running.len() as u64;
            let reported: Vec<AttemptProgress> = running
                .iter()
                .map(|&attempt_id| AttemptProgress {
                    attempt_id,
                    records: 1,
                    bytes: 1,
                })
                .collect();
            let t = Instant::now();
            state.heartbeat(*worker, &reported, &[], Duration::from_secs(2));
            heartbeat_time += t.elapsed();
            heartbeats += 1;
            for attempt in running {
                let report = TaskReport {
                    worker_id: worker.to_string(),
                    job_id: job_id.clone(),
                    attempt_id: attempt,
                    succeeded: true,
                    counters: Some(Counters::default()),
                    ..TaskReport::default()
                };
                let t = Instant::now();
                let (accepted, _) = state.report(&report);
                report_time += t.elapsed();
                assert!(accepted, "attempt {attempt} expected");
                reports += 1;
                progress = true;
            }
        }
        if !progress {
            break;
        }
    }
    let total = started.elapsed();
    let j = &state.jobs[&job];
    assert_eq!(
        (j.maps_done as u64, j.reduces_done),
        (MAPS, REDUCES),
        "every task done"
    );
    println!("{WORKERS} workers x {SLOTS} slots, {MAPS} maps, {REDUCES} reduces");
    println!("register workers: {register:?}; add job: {submit:?}");
    println!(
        "{reports} task reports (each schedules the next task): {report_time:?}, {:.2} us each",
        report_time.as_secs_f64() * 1e6 / reports as f64
    );
    println!(
        "{heartbeats} heartbeats: {heartbeat_time:?}, {:.2} us each",
        heartbeat_time.as_secs_f64() * 1e6 / heartbeats as f64
    );
    println!("{assignments} assignments; whole run {total:?}");
    // What each worker reads before its reduces shuffle: every map output event, a page at a
    // time; full pages are encoded once, under the lock, and shared.
    let t = Instant::now();
    let reads = 100;
    let (mut events, mut pages) = (0, 0);
    for _ in 0..reads {
        let mut from = 0;
        loop {
            let answer = state
                .map_output_locations(job, from)
                .expect("the job is known");
            let page = MapOutputEvents::decode(answer.events).expect("a page decodes");
            events += page.map_tasks.len();
            pages += 1;
            from = page.next_event;
            if answer.complete {
                break;
            }
        }
    }
    let read = t.elapsed() / reads;
    println!(
        "map output events: {} a reduce, in {} pages; {read:?} a reduce ({:?} for all {REDUCES})",
        events / reads as usize,
        pages / reads,
        read * REDUCES
    );
}
