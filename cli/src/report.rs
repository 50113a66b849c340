//! What the CLI prints: the job summary, the task history table, the cluster.

use quern_proto::names;
use quern_proto::{ClusterStatusResponse, JobStatus};

/// The few lines printed when a job ends.
pub fn summary(status: &JobStatus) -> String {
    let spec = status.spec.clone().unwrap_or_default();
    let c = status.counters.clone().unwrap_or_default();
    let mut text = format!(
        "job {} ({}) {} in {:.3} s\n",
        status.job_id,
        spec.job_name,
        names::job_state(status.state),
        status.elapsed_ms as f64 / 1000.0
    );
    text += &format!(
        "  tasks:   {} map, {} reduce\n",
        status.map_tasks, status.reduce_tasks
    );
    text += &format!(
        "  input:   {} records, {} bytes\n",
        c.input_records, c.input_bytes
    );
    text += &format!(
        "  map:     {} records out, {} after combine, {} spills\n",
        c.map_output_records, c.combine_output_records, c.spills
    );
    text += &format!(
        "  shuffle: {} bytes, {} keys\n",
        c.shuffle_bytes, c.reduce_input_groups
    );
    text += &format!(
        "  output:  {} records, {} bytes -> {}",
        c.output_records, c.output_bytes, spec.output
    );
    for (name, count) in &c.user {
        text += &format!("\n  counter: {name} {count}");
    }
    if !status.error.is_empty() {
        text += &format!("\n  error:   {}", status.error);
    }
    if !status.waiting.is_empty() {
        text += &format!("\n  waiting: {}", status.waiting);
    }
    if !status.excluded_workers.is_empty() {
        text += &format!("\n  excluded: {}", status.excluded_workers.join(", "));
    }
    text
}

/// The job's task history, one attempt per line; a backup attempt (speculative, started while
/// another attempt of its task ran) says so.
pub fn history(status: &JobStatus) -> String {
    let mut text = format!(
        "{:<9} {:>8} {:<10} {:<10} {:>9} {:>12} {:<6}  ERROR\n",
        "TASK", "ATTEMPT", "WORKER", "STATE", "START_MS", "DURATION_MS", "BACKUP"
    );
    for a in &status.attempts {
        text += &format!(
            "{:<9} {:>8} {:<10} {:<10} {:>9} {:>12} {:<6}  {}\n",
            names::task(a.kind, a.task),
            a.attempt_id,
            a.worker,
            names::attempt_state(a.state),
            a.start_ms,
            a.duration_ms,
            if a.backup { "backup" } else { "-" },
            a.error
        );
    }
    text
}

pub fn cluster(cluster: &ClusterStatusResponse, jobs: &[JobStatus]) -> String {
    let mut text = format!("{} workers\n", cluster.workers.len());
    for w in &cluster.workers {
        text += &format!(
            "  {:<10} {:<24} {:<10} {}/{} slots busy  jobs: {}\n",
            w.worker_id,
            w.address,
            if w.ready { "ready" } else { "connecting" },
            w.running,
            w.slots,
            w.jobs.join(",")
        );
    }
    text += &format!("{} jobs\n", jobs.len());
    for j in jobs {
        let name = j.spec.as_ref().map_or("", |s| s.job_name.as_str());
        text += &format!(
            "  {:<10} {:<12} {:<10} maps {}/{} reduces {}/{}\n",
            j.job_id,
            name,
            names::job_state(j.state),
            j.maps_done,
            j.map_tasks,
            j.reduces_done,
            j.reduce_tasks
        );
    }
    text
}
