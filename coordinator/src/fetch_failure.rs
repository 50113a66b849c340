//! Fetch failures: from reduces' reports that they could not fetch a map output, decide whether
//! the worker holding it is lost (its outputs run again) or the reporting worker is the one at
//! fault (it is excluded from the job). As in Hadoop and Spark, the decision rests on what the
//! reduces saw, not on whether the coordinator can reach the holder: a worker can heartbeat and
//! still be unreachable from its peers.
//!
//! The rules, per job:
//! - A holder is lost once reduces on two workers have reported it, or once one worker has kept
//!   reporting it for a [`Confirmation`] time (a reduce alone in its job has no second
//!   witness). Several reduces on one worker are one witness: a worker cut off its peers runs
//!   them all, and they all fail alike. (A holder that stops heartbeating is lost anyway, by the
//!   timeout.)
//! - A reporter is the suspect when it has also failed to fetch from another holder that was
//!   heard from after that failure: two peers alive, both unreachable from one worker, point at
//!   that worker. Its report then counts against nobody, so one broken worker cannot make the
//!   job re-run every map. The confirmation time gives the other holders the heartbeats that
//!   show them alive before a lone witness's word is taken. A holder that died never
//!   heartbeats again, so failures against dead holders (a crash loop) never make the reporter
//!   a suspect.

use quern_proto::ids::WorkerId;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Workers whose reports against one holder declare its map outputs lost.
pub const WITNESSES_TO_LOSE_A_HOLDER: usize = 2;

/// What one more fetch failure decides.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Not enough evidence yet: the reduce runs again and the holder keeps its outputs.
    Wait,
    /// The holder's map outputs are lost: they run again elsewhere. `alive` says whether it
    /// was heard from after the first report against it: a holder that died (a crash loop)
    /// costs re-runs that say nothing about a lasting fault, and do not count toward the cap.
    HolderLost { alive: bool },
    /// The reporting worker cannot fetch from live peers: it is the problem.
    ReporterSuspect,
}

/// The fetch failures reported in one job.
#[derive(Debug, Default)]
pub struct FetchFailures {
    /// The workers that reported each holder since its outputs were last declared lost, and
    /// when the first of them did.
    against: HashMap<WorkerId, (Vec<WorkerId>, Instant)>,
    /// For each reporter, the holders it failed to fetch from, and when it last said so.
    by: HashMap<WorkerId, HashMap<WorkerId, Instant>>,
    /// Map tasks run again because their holder was declared lost: bounded per job.
    pub reruns: u32,
}

/// How long one witness must keep reporting a holder before it is lost: two heartbeat
/// intervals, time for the other holders it reports to show themselves alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Confirmation(pub Duration);

impl Confirmation {
    pub fn for_heartbeats_every(interval: Duration) -> Self {
        Confirmation(interval * 2)
    }
}

impl Default for Confirmation {
    /// For the default heartbeat interval of one second.
    fn default() -> Self {
        Confirmation::for_heartbeats_every(Duration::from_secs(1))
    }
}

impl FetchFailures {
    /// Records that `reporter` could not fetch from `holder` at `now`. `heard_since(w, t)` tells
    /// whether worker `w` has heartbeated after `t`; a lone witness is believed after `confirm`.
    pub fn report(
        &mut self,
        reporter: WorkerId,
        holder: WorkerId,
        now: Instant,
        confirm: Confirmation,
        heard_since: impl Fn(WorkerId, Instant) -> bool,
    ) -> Verdict {
        let complaints = self.by.entry(reporter).or_default();
        let other_live = complaints
            .iter()
            .any(|(&h, &at)| h != holder && heard_since(h, at));
        complaints.insert(holder, now);
        if other_live {
            return Verdict::ReporterSuspect;
        }
        let (witnesses, first) = self.against.entry(holder).or_insert((Vec::new(), now));
        if !witnesses.contains(&reporter) {
            witnesses.push(reporter);
        }
        let confirmed = now.saturating_duration_since(*first) >= confirm.0;
        if witnesses.len() < WITNESSES_TO_LOSE_A_HOLDER && !confirmed {
            return Verdict::Wait;
        }
        let alive = heard_since(holder, *first);
        self.against.remove(&holder);
        Verdict::HolderLost { alive }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::worker_id;
    use std::time::Duration;

    const R: WorkerId = worker_id(1);
    const R2: WorkerId = worker_id(2);
    const H1: WorkerId = worker_id(11);
    const H2: WorkerId = worker_id(12);

    const CONFIRM: Confirmation = Confirmation(Duration::from_millis(400));

    #[test]
    fn a_holder_is_lost_on_the_word_of_two_workers() {
        let now = Instant::now();
        let silent = |_, _| false;
        let mut f = FetchFailures::default();
        assert_eq!(f.report(R, H1, now, CONFIRM, silent), Verdict::Wait);
        // Another reduce on the same worker is no second witness.
        assert_eq!(f.report(R, H1, now, CONFIRM, silent), Verdict::Wait);
        assert_eq!(
            f.report(R2, H1, now, CONFIRM, silent),
            Verdict::HolderLost { alive: false }
        );
        // The count starts again once the holder's outputs are declared lost.
        let heard = |_, _| true;
        assert_eq!(f.report(R, H1, now, CONFIRM, heard), Verdict::Wait);
        assert_eq!(
            f.report(R2, H1, now, CONFIRM, heard),
            Verdict::HolderLost { alive: true }
        );
    }

    #[test]
    fn a_lone_witness_is_believed_once_it_has_kept_reporting_for_the_confirmation_time() {
        let t0 = Instant::now();
        let silent = |_, _| false;
        let mut f = FetchFailures::default();
        assert_eq!(f.report(R, H1, t0, CONFIRM, silent), Verdict::Wait);
        let almost = t0 + CONFIRM.0 - Duration::from_millis(1);
        assert_eq!(f.report(R, H1, almost, CONFIRM, silent), Verdict::Wait);
        assert_eq!(
            f.report(R, H1, t0 + CONFIRM.0, CONFIRM, silent),
            Verdict::HolderLost { alive: false }
        );
    }

    #[test]
    fn a_reporter_that_cannot_reach_two_live_peers_is_the_suspect() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_millis(10);
        // H1 heartbeats after R's report about it: it was alive, R could not reach it.
        let alive = |w: WorkerId, at: Instant| w == H1 && at <= t0;
        let mut f = FetchFailures::default();
        assert_eq!(f.report(R, H1, t0, CONFIRM, alive), Verdict::Wait);
        assert_eq!(
            f.report(R, H2, t1, CONFIRM, alive),
            Verdict::ReporterSuspect
        );
        // Its report counted against neither holder.
        assert_eq!(f.report(R2, H2, t1, CONFIRM, alive), Verdict::Wait);
    }

    #[test]
    fn a_worker_cut_off_its_peers_is_the_suspect_however_many_reduces_it_runs() {
        let t0 = Instant::now();
        // The cut-off worker R's two reduces fail to reach H1 and H2 before either heartbeats
        // again, which both do 200 ms later.
        let not_yet = |_, _| false;
        let mut f = FetchFailures::default();
        for (holder, ms) in [(H1, 0), (H1, 1), (H2, 2), (H2, 3)] {
            let at = t0 + Duration::from_millis(ms);
            assert_eq!(
                f.report(R, holder, at, CONFIRM, not_yet),
                Verdict::Wait,
                "{holder}"
            );
        }
        let beat = t0 + Duration::from_millis(200);
        let alive = |w: WorkerId, at: Instant| (w == H1 || w == H2) && at < beat;
        let later = beat + Duration::from_millis(50);
        assert_eq!(
            f.report(R, H1, later, CONFIRM, alive),
            Verdict::ReporterSuspect
        );
    }

    #[test]
    fn failures_against_dead_holders_do_not_make_the_reporter_a_suspect() {
        let t0 = Instant::now();
        let dead = |_, _| false;
        let mut f = FetchFailures::default();
        for (i, holder) in [H1, H2, worker_id(13), worker_id(14)]
            .into_iter()
            .enumerate()
        {
            let at = t0 + Duration::from_millis(i as u64);
            assert_eq!(
                f.report(R, holder, at, CONFIRM, dead),
                Verdict::Wait,
                "{holder}"
            );
        }
    }
}
