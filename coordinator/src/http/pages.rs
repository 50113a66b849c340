//! The status page's HTML, rendered on the server from [`super::view`]: the job list and
//! workers (`/`), one job (`/jobs/JOB_ID`), a not-found page and the login page. A little CSS,
//! no JavaScript; a page refreshes itself every few seconds while a job runs. Everything that
//! comes from users (job names, paths, errors, counter names) goes through [`esc`].

use super::timeline;
use super::view::{AttemptView, JobDetail, JobSummary, WorkerView};
use std::fmt::Write as _;

/// Seconds between refreshes of a page while a job runs.
const REFRESH_SECONDS: u32 = 2;

const STYLE: &str = r#"
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em 2em; color: #1d232a; background: #fafafa; }
h1 { font-size: 1.4em; margin: 0 0 .6em; } h1 a { color: inherit; text-decoration: none; }
h2 { font-size: 1.1em; margin: 1.4em 0 .4em; }
table { border-collapse: collapse; background: #fff; }
th, td { text-align: left; padding: .25em .7em; border-bottom: 1px solid #e3e6ea; vertical-align: top; }
th { font-weight: 600; background: #f0f2f5; }
td { white-space: nowrap; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.state { padding: .05em .5em; border-radius: .7em; font-size: .9em; color: #fff; }
.state.running, .state.ready { background: #2f6fd6; } .state.succeeded { background: #2e9d4f; }
.state.failed, .state.lost { background: #cf3434; } .state.killed, .state.left, .state.registering { background: #8a8f98; }
.progress { width: 140px; height: .8em; background: #e3e6ea; border-radius: .4em; overflow: hidden; display: inline-block; vertical-align: middle; }
.progress span { display: block; height: 100%; background: #2e9d4f; }
.error { white-space: pre-wrap !important; font-family: ui-monospace, monospace; color: #a12020; margin: 0; }
.muted { color: #6b7280; }
svg.timeline { background: #fff; border: 1px solid #e3e6ea; }
svg .worker, svg .tick { font: 11px ui-monospace, monospace; fill: #4b5563; }
svg .bar.running { fill: #2f6fd6; } svg .bar.succeeded { fill: #2e9d4f; }
svg .bar.failed { fill: #cf3434; } svg .bar.killed { fill: #9ca3af; }
svg .bar.backup { stroke: #111; stroke-width: 1.5; stroke-dasharray: 3 2; }
.legend span { margin-right: 1em; } .legend i { display: inline-block; width: .9em; height: .9em; margin-right: .3em; vertical-align: middle; }
"#;

/// `text` safe inside HTML and SVG, in element content and in quoted attributes.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A whole page around `body`; it refreshes itself if `refresh`.
fn page(title: &str, refresh: bool, body: &str) -> String {
    let refresh = if refresh {
        format!(r#"<meta http-equiv="refresh" content="{REFRESH_SECONDS}">"#)
    } else {
        String::new()
    };
    format!(
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">{refresh}<title>{title}</title><style>{STYLE}</style></head><body><h1><a href="/">Quern</a> · {title}</h1>{body}</body></html>"#,
        title = esc(title)
    )
}

/// `/`: jobs, newest first, and workers.
pub fn index(jobs: &[JobSummary], workers: &[WorkerView]) -> String {
    let running = jobs.iter().any(|j| j.state == "running");
    let mut body = String::from("<h2>Jobs</h2>");
    if jobs.is_empty() {
        body.push_str(r#"<p class="muted">No jobs yet.</p>"#);
    } else {
        body.push_str("<table id=\"jobs\"><tr><th>Job</th><th>Name</th><th>State</th><th>Maps</th><th>Reduces</th><th>Elapsed</th><th>Input</th><th>Output</th></tr>");
        for job in jobs {
            job_row(&mut body, job);
        }
        body.push_str("</table>");
    }
    body.push_str("<h2>Workers</h2>");
    workers_table(&mut body, workers);
    page("status", running, &body)
}

fn job_row(out: &mut String, job: &JobSummary) {
    let _ = write!(
        out,
        r#"<tr class="job" data-job="{id}"><td><a href="/jobs/{id}">{id}</a></td><td>{name}</td><td>{state}</td><td>{maps}</td><td>{reduces}</td><td class="num">{elapsed}</td><td>{input}</td><td>{output}</td></tr>"#,
        id = esc(&job.id),
        name = esc(&job.name),
        state = state_badge(job.state),
        maps = progress(job.maps_done, job.map_tasks),
        reduces = progress(job.reduces_done, job.reduce_tasks),
        elapsed = seconds(job.elapsed_ms),
        input = esc(&job.inputs.join(", ")),
        output = esc(&job.output),
    );
}

fn workers_table(out: &mut String, workers: &[WorkerView]) {
    if workers.is_empty() {
        out.push_str(r#"<p class="muted">No workers.</p>"#);
        return;
    }
    out.push_str("<table id=\"workers\"><tr><th>Worker</th><th>Address</th><th>State</th><th>Slots</th><th>Running</th><th>Last heartbeat</th></tr>");
    for w in workers {
        let _ = write!(
            out,
            r#"<tr class="worker" data-worker="{id}"><td>{id}</td><td>{address}</td><td>{state}</td><td class="num">{slots}</td><td class="num">{running}</td><td class="num">{ago} ago</td></tr>"#,
            id = esc(&w.id),
            address = esc(&w.address),
            state = state_badge(w.state),
            slots = w.slots,
            running = w.running,
            ago = seconds(w.last_heartbeat_ms),
        );
    }
    out.push_str("</table>");
}

/// `/jobs/JOB_ID`.
pub fn job(job: &JobDetail) -> String {
    let s = &job.summary;
    let mut body = String::new();
    let _ = write!(
        body,
        r#"<p id="job-state">{state} · {name} · maps {maps} · reduces {reduces} · {elapsed}</p>"#,
        state = state_badge(s.state),
        name = esc(&s.name),
        maps = progress(s.maps_done, s.map_tasks),
        reduces = progress(s.reduces_done, s.reduce_tasks),
        elapsed = seconds(s.elapsed_ms),
    );
    if !s.error.is_empty() {
        let _ = write!(body, r#"<pre class="error">{}</pre>"#, esc(&s.error));
    }
    body.push_str("<h2>Timeline</h2>");
    body.push_str(LEGEND);
    body.push_str(&timeline::svg(&job.attempts, s.elapsed_ms));
    body.push_str("<h2>Counters</h2>");
    let engine = job.counters.iter().map(|(k, v)| (k.to_string(), *v));
    let user = job
        .user_counters
        .iter()
        .map(|(k, v)| (format!("user: {k}"), *v));
    counters_table(&mut body, engine.chain(user));
    if !job.excluded_workers.is_empty() {
        body.push_str("<h2>Workers excluded from the job</h2><ul>");
        for worker in &job.excluded_workers {
            let _ = write!(body, "<li>{}</li>", esc(worker));
        }
        body.push_str("</ul>");
    }
    errors(&mut body, &job.attempts);
    body.push_str("<h2>Spec</h2><table id=\"spec\">");
    for (key, value) in &job.spec {
        let _ = write!(
            body,
            "<tr><th>{}</th><td>{}</td></tr>",
            esc(key),
            esc(value)
        );
    }
    body.push_str("</table>");
    page(&s.id, s.state == "running", &body)
}

const LEGEND: &str = r#"<p class="legend"><span><i style="background:#2f6fd6"></i>running</span><span><i style="background:#2e9d4f"></i>succeeded</span><span><i style="background:#cf3434"></i>failed</span><span><i style="background:#9ca3af"></i>killed</span><span><i style="border:1.5px dashed #111"></i>backup</span></p>"#;

fn counters_table(out: &mut String, counters: impl Iterator<Item = (String, u64)>) {
    out.push_str("<table id=\"counters\">");
    for (name, value) in counters {
        let _ = write!(
            out,
            r#"<tr><th>{}</th><td class="num">{value}</td></tr>"#,
            esc(&name)
        );
    }
    out.push_str("</table>");
}

/// Every attempt that ended with an error, the error in full.
fn errors(out: &mut String, attempts: &[AttemptView]) {
    let failed: Vec<&AttemptView> = attempts.iter().filter(|a| !a.error.is_empty()).collect();
    if failed.is_empty() {
        return;
    }
    out.push_str("<h2>Attempt errors</h2><table id=\"errors\"><tr><th>Task</th><th>Attempt</th><th>Worker</th><th>State</th><th>Error</th></tr>");
    for a in failed {
        let _ = write!(
            out,
            r#"<tr><td>{task}</td><td class="num">{id}</td><td>{worker}</td><td>{state}</td><td><pre class="error">{error}</pre></td></tr>"#,
            task = esc(&a.task),
            id = a.attempt_id,
            worker = esc(&a.worker),
            state = state_badge(a.state),
            error = esc(&a.error),
        );
    }
    out.push_str("</table>");
}

/// The page for a job the coordinator does not have.
pub fn no_such_job(id: &str) -> String {
    let body = format!(
        r#"<p id="not-found">No job {} here: it never ran on this coordinator, or it finished long enough ago to be forgotten.</p>"#,
        esc(id)
    );
    page("job not found", false, &body)
}

/// The page a visitor without a session gets, with a form for the cluster token; `problem`
/// says what went wrong, if anything.
pub fn login(problem: Option<&str>) -> String {
    let problem = problem.map_or(String::new(), |p| {
        format!(r#"<p class="error">{}</p>"#, esc(p))
    });
    let body = format!(
        r#"{problem}<p>This cluster has a token. Open the login URL the coordinator printed when it started (it works once), or give the cluster token:</p><form method="post" action="/login"><input type="password" name="token" autocomplete="off" size="48"> <button type="submit">Log in</button></form>"#
    );
    page("login needed", false, &body)
}

fn state_badge(state: &str) -> String {
    format!(r#"<span class="state {0}">{0}</span>"#, esc(state))
}

fn progress(done: u32, total: u32) -> String {
    let percent = if total == 0 {
        100.0
    } else {
        100.0 * done as f64 / total as f64
    };
    format!(
        r#"<span class="progress" title="{done} of {total}"><span style="width:{percent:.0}%"></span></span> {done}/{total}"#
    )
}

fn seconds(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_from_users_is_escaped() {
        assert_eq!(
            esc(r#"<script>alert("x" & 'y')</script>"#),
            "&lt;script&gt;alert(&quot;x&quot; &amp; &#39;y&#39;)&lt;/script&gt;"
        );
        let page = no_such_job("<b>job</b>");
        assert!(page.contains("No job &lt;b&gt;job&lt;/b&gt; here"));
        assert!(!page.contains("<b>job</b>"));
    }
}
