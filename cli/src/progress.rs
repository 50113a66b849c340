//! The live view of a job being waited for (`quern run`, `quern submit --wait`), on stderr, so
//! that stdout keeps only the summary scripts parse. On a terminal: two indicatif bars (maps and
//! reduces) over a line of throughput, elapsed time and ETA, or of why the job waits. Elsewhere
//! (a log file, a pipe): plain lines, at most one a second and only when the job moved, the
//! first once the job has run for a second, so a short job says nothing; plus a last line when
//! the job ends, if any was printed. `--quiet` shows neither.
//!
//! Everything shown comes from the job's status as polled: the counters are the coordinator's,
//! and the ETA is a straight line through the fraction of tasks done (maps and reduces alike).

use bytesize::ByteSize;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use quern_proto::{JobState, JobStatus};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// The shortest time between plain lines, and before the first.
const LINE_EVERY: Duration = Duration::from_secs(1);

/// How a waited-for job is shown; fed every status polled.
pub struct Progress {
    display: Display,
}

enum Display {
    Off,
    Bars(Bars),
    Lines(Lines),
}

impl Progress {
    /// Bars if stderr is a terminal, plain lines if not, nothing if `quiet`.
    pub fn on_stderr(quiet: bool) -> Progress {
        let display = match (quiet, std::io::stderr().is_terminal()) {
            (true, _) => Display::Off,
            (false, true) => Display::Bars(Bars::new()),
            (false, false) => Display::Lines(Lines::new()),
        };
        Progress { display }
    }

    /// Shows nothing: for a program driving jobs itself (a job chain).
    pub fn off() -> Progress {
        Progress {
            display: Display::Off,
        }
    }

    /// Prints `text` on stderr whatever the display (even `--quiet`): above the bars, if any,
    /// so that they are not drawn over it.
    pub fn note(&self, text: &str) {
        match &self.display {
            Display::Bars(bars) if bars.shown.is_some() => {
                if bars.screen.println(text).is_err() {
                    eprintln!("{text}");
                }
            }
            _ => eprintln!("{text}"),
        }
    }

    /// Shows `status`; a status of an ended job is the last one shown.
    pub fn update(&mut self, status: &JobStatus) {
        match &mut self.display {
            Display::Off => {}
            Display::Bars(bars) => bars.update(status),
            Display::Lines(lines) => lines.update(status),
        }
    }
}

fn is_running(status: &JobStatus) -> bool {
    status.state == JobState::Running as i32
}

/// Input read per second of the job's time so far, bytes and records: by the maps done, and the
/// maps running as far as they have got.
fn throughput(status: &JobStatus) -> String {
    let seconds = (status.elapsed_ms as f64 / 1000.0).max(0.001);
    let counters = status.counters.clone().unwrap_or_default();
    let bytes = counters.input_bytes + status.running_input_bytes;
    let records = counters.input_records + status.running_input_records;
    let bytes = (bytes as f64 / seconds) as u64;
    let records = (records as f64 / seconds) as u64;
    format!("{}/s, {records} records/s in", ByteSize(bytes))
}

/// Time left if the rest of the tasks go as fast as those done; none before a task is done.
fn eta(status: &JobStatus) -> Option<Duration> {
    let total = status.map_tasks + status.reduce_tasks;
    let done = status.maps_done + status.reduces_done;
    if done == 0 || total == 0 {
        return None;
    }
    let left = f64::from(total - done.min(total)) / f64::from(done);
    Some(Duration::from_millis(
        (status.elapsed_ms as f64 * left) as u64,
    ))
}

/// The line under the bars, and the tail of a plain line: why the job waits, or how it goes.
fn detail(status: &JobStatus) -> String {
    let elapsed = format!("{:.1} s elapsed", status.elapsed_ms as f64 / 1000.0);
    if !status.waiting.is_empty() {
        return format!("{elapsed}, waiting: {}", status.waiting);
    }
    if !is_running(status) {
        return format!("{}, {elapsed}", throughput(status));
    }
    let eta = eta(status).map_or("ETA unknown".to_string(), |left| {
        format!("ETA {:.0} s", left.as_secs_f64().ceil())
    });
    format!("{}, {elapsed}, {eta}", throughput(status))
}

/// One plain line: `job-…-0001 running: maps 3/8, reduces 0/2, 1.2 MiB/s, … elapsed, ETA 2 s`.
pub fn line(status: &JobStatus) -> String {
    format!(
        "{} {}: maps {}/{}, reduces {}/{}, {}",
        status.job_id,
        quern_proto::names::job_state(status.state),
        status.maps_done,
        status.map_tasks,
        status.reduces_done,
        status.reduce_tasks,
        detail(status)
    )
}

/// A bar each for maps and reduces (none for a map-only job's), and a line of detail under
/// them. Made at the first status, so that no bar is drawn before its length is known.
struct Bars {
    screen: MultiProgress,
    shown: Option<Shown>,
}

/// The bars on screen.
struct Shown {
    maps: ProgressBar,
    reduces: Option<ProgressBar>,
    detail: ProgressBar,
}

impl Bars {
    fn new() -> Bars {
        Bars {
            screen: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            shown: None,
        }
    }

    fn update(&mut self, status: &JobStatus) {
        let screen = &self.screen;
        let shown = self.shown.get_or_insert_with(|| Shown::new(screen, status));
        shown.maps.set_position(u64::from(status.maps_done));
        if let Some(reduces) = &shown.reduces {
            reduces.set_position(u64::from(status.reduces_done));
        }
        shown.detail.set_message(detail(status));
        if !is_running(status) {
            shown.finish();
        }
    }
}

impl Shown {
    fn new(screen: &MultiProgress, status: &JobStatus) -> Shown {
        let style = ProgressStyle::with_template(
            "{prefix:>7} [{bar:40.cyan/blue}] {pos}/{len} {percent:>3}%",
        )
        .expect("the bar template is valid")
        .progress_chars("=> ");
        let bar = |name: &'static str, total: u32| {
            let bar = ProgressBar::new(u64::from(total)).with_style(style.clone());
            bar.set_prefix(name);
            screen.add(bar)
        };
        let maps = bar("maps", status.map_tasks);
        let reduces = (status.reduce_tasks > 0).then(|| bar("reduces", status.reduce_tasks));
        let detail_style =
            ProgressStyle::with_template("{msg}").expect("the detail template is valid");
        let detail = screen.add(ProgressBar::new(0).with_style(detail_style));
        Shown {
            maps,
            reduces,
            detail,
        }
    }

    /// Leaves the bars on screen as they are.
    fn finish(&self) {
        self.maps.finish();
        if let Some(reduces) = &self.reduces {
            reduces.finish();
        }
        self.detail.finish();
    }
}

/// Plain lines, for a stderr that is not a terminal.
struct Lines {
    started: Instant,
    /// When the last line was printed, and what it said (tasks done, state, waiting).
    last: Option<(Instant, Said)>,
}

/// What a plain line is printed again for when it changes.
#[derive(PartialEq)]
struct Said {
    maps_done: u32,
    reduces_done: u32,
    state: i32,
    waiting: String,
}

impl Lines {
    fn new() -> Lines {
        Lines {
            started: Instant::now(),
            last: None,
        }
    }

    fn update(&mut self, status: &JobStatus) {
        let said = Said {
            maps_done: status.maps_done,
            reduces_done: status.reduces_done,
            state: status.state,
            waiting: status.waiting.clone(),
        };
        let due = match &self.last {
            None => is_running(status) && self.started.elapsed() >= LINE_EVERY,
            Some((_, last)) if *last == said => false,
            Some((_, _)) if !is_running(status) => true,
            Some((at, _)) => at.elapsed() >= LINE_EVERY,
        };
        if due {
            eprintln!("quern: {}", line(status));
            self.last = Some((Instant::now(), said));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quern_proto::Counters;

    fn status(maps: (u32, u32), reduces: (u32, u32), elapsed_ms: u64) -> JobStatus {
        JobStatus {
            job_id: "job-1-0001".to_string(),
            state: JobState::Running as i32,
            maps_done: maps.0,
            map_tasks: maps.1,
            reduces_done: reduces.0,
            reduce_tasks: reduces.1,
            elapsed_ms,
            counters: Some(Counters {
                input_bytes: 4 * 1024 * 1024,
                input_records: 2000,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn eta_is_the_time_per_task_so_far_times_the_tasks_left() {
        assert_eq!(eta(&status((0, 4), (0, 2), 1000)), None);
        assert_eq!(
            eta(&status((2, 4), (0, 2), 1000)),
            Some(Duration::from_secs(2))
        );
        assert_eq!(eta(&status((4, 4), (2, 2), 1000)), Some(Duration::ZERO));
    }

    #[test]
    fn a_line_shows_tasks_throughput_elapsed_and_eta() {
        assert_eq!(
            line(&status((2, 4), (0, 2), 2000)),
            "job-1-0001 running: maps 2/4, reduces 0/2, 2.0 MiB/s, 1000 records/s in, \
             2.0 s elapsed, ETA 4 s"
        );
    }

    #[test]
    fn a_waiting_job_says_why_instead_of_a_rate() {
        let mut waiting = status((0, 4), (0, 2), 1500);
        waiting.waiting = "no worker is connected".to_string();
        assert_eq!(
            line(&waiting),
            "job-1-0001 running: maps 0/4, reduces 0/2, 1.5 s elapsed, waiting: no worker is \
             connected"
        );
    }
}
