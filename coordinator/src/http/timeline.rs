//! A job's attempts as an inline SVG timeline: one row per worker, one bar per attempt from its
//! start to its end (to now, while it runs), coloured by state, a backup attempt outlined in
//! dashes. Attempts that overlap on a worker (it has several slots) take lanes of its row, so
//! no bar hides another. Stragglers and failures show at a glance. Each bar carries `data-attempt` (its id)
//! and a tooltip with its task, state and duration; nothing else in the page does, so a test
//! can count bars.

use super::pages::esc;
use super::view::AttemptView;
use std::collections::BTreeMap;
use std::fmt::Write as _;

const WIDTH: f64 = 1000.0;
const LABEL: f64 = 150.0;
const ROW: f64 = 18.0;
const BAR: f64 = 15.0;
/// Space between two workers' rows.
const GAP: f64 = 6.0;
const AXIS: f64 = 20.0;
/// Narrowest bar drawn, so that an attempt of a few milliseconds still shows.
const MIN_BAR: f64 = 2.0;

/// The timeline of `attempts` over a job that has run `elapsed_ms`.
pub fn svg(attempts: &[AttemptView], elapsed_ms: u64) -> String {
    let rows = rows(attempts);
    let span = attempts
        .iter()
        .map(|a| a.start_ms + a.duration_ms)
        .chain([elapsed_ms, 1])
        .max()
        .unwrap_or(1) as f64;
    let scale = (WIDTH - LABEL) / span;
    let rows: Vec<(&str, Vec<Vec<&AttemptView>>)> = rows
        .into_iter()
        .map(|(worker, attempts)| (worker, lanes(attempts)))
        .collect();
    let lane_count: usize = rows.iter().map(|(_, lanes)| lanes.len()).sum();
    let height = AXIS + ROW * lane_count as f64 + GAP * rows.len() as f64;
    let mut out = format!(
        r#"<svg class="timeline" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" role="img" aria-label="attempt timeline">"#
    );
    axis(&mut out, span, scale);
    let mut y = AXIS;
    for (worker, lanes) in &rows {
        let _ = write!(
            out,
            r#"<text class="worker" x="0" y="{}">{}</text>"#,
            y + BAR - 3.0,
            esc(worker)
        );
        for lane in lanes {
            for attempt in lane {
                bar(&mut out, attempt, y, scale);
            }
            y += ROW;
        }
        y += GAP;
    }
    out.push_str("</svg>");
    out
}

/// Attempts by worker, workers in name order.
fn rows(attempts: &[AttemptView]) -> BTreeMap<&str, Vec<&AttemptView>> {
    let mut rows: BTreeMap<&str, Vec<&AttemptView>> = BTreeMap::new();
    for attempt in attempts {
        rows.entry(&attempt.worker).or_default().push(attempt);
    }
    rows
}

/// `attempts` (of one worker, in start order) in lanes: each goes in the first lane free by
/// its start.
fn lanes(mut attempts: Vec<&AttemptView>) -> Vec<Vec<&AttemptView>> {
    attempts.sort_by_key(|a| a.start_ms);
    let mut lanes: Vec<Vec<&AttemptView>> = Vec::new();
    for attempt in attempts {
        let free = lanes.iter_mut().find(|lane| {
            lane.last()
                .is_none_or(|last| last.start_ms + last.duration_ms <= attempt.start_ms)
        });
        match free {
            Some(lane) => lane.push(attempt),
            None => lanes.push(vec![attempt]),
        }
    }
    lanes
}

/// Ticks at five points of the span, in seconds.
fn axis(out: &mut String, span: f64, scale: f64) {
    for i in 0..=4 {
        let ms = span * i as f64 / 4.0;
        let x = LABEL + ms * scale;
        let anchor = if i == 4 { "end" } else { "start" };
        let _ = write!(
            out,
            r#"<text class="tick" x="{x:.1}" y="12" text-anchor="{anchor}">{:.1} s</text>"#,
            ms / 1000.0
        );
    }
}

fn bar(out: &mut String, attempt: &AttemptView, y: f64, scale: f64) {
    let x = LABEL + attempt.start_ms as f64 * scale;
    let width = (attempt.duration_ms as f64 * scale).max(MIN_BAR);
    let backup = if attempt.backup { " backup" } else { "" };
    let _ = write!(
        out,
        r#"<rect class="bar {state}{backup}" data-attempt="{id}" x="{x:.1}" y="{y:.1}" width="{width:.1}" height="{BAR}"><title>{task} attempt {id} on {worker}: {state}{backup_text}, {seconds:.2} s</title></rect>"#,
        state = attempt.state,
        id = attempt.attempt_id,
        task = esc(&attempt.task),
        worker = esc(&attempt.worker),
        backup_text = if attempt.backup { " (backup)" } else { "" },
        seconds = attempt.duration_ms as f64 / 1000.0,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(id: u64, worker: &str, state: &'static str, backup: bool) -> AttemptView {
        AttemptView {
            task: "m-00000".into(),
            attempt_id: id,
            worker: worker.into(),
            state,
            start_ms: 100 * id,
            duration_ms: 50,
            backup,
            error: String::new(),
        }
    }

    #[test]
    fn one_bar_per_attempt_in_a_row_per_worker() {
        let attempts = [
            attempt(1, "worker-1-2", "succeeded", false),
            attempt(2, "worker-1-1", "failed", false),
            attempt(3, "worker-1-2", "killed", true),
        ];
        let svg = svg(&attempts, 1000);
        assert_eq!(svg.matches("data-attempt=").count(), 3);
        assert_eq!(svg.matches(r#"class="worker""#).count(), 2);
        assert!(svg.contains(r#"class="bar killed backup" data-attempt="3""#));
        assert!(svg.contains(r#"class="bar failed" data-attempt="2""#));
    }

    #[test]
    fn overlapping_attempts_of_a_worker_take_lanes() {
        let mut overlapping = attempt(2, "w", "running", false);
        overlapping.start_ms = 120;
        let (first, after) = (
            attempt(1, "w", "succeeded", false),
            attempt(3, "w", "killed", false),
        );
        let lanes = lanes(vec![&after, &overlapping, &first]);
        let ids: Vec<Vec<u64>> = lanes
            .iter()
            .map(|lane| lane.iter().map(|a| a.attempt_id).collect())
            .collect();
        assert_eq!(ids, [vec![1, 3], vec![2]]);
    }
}
