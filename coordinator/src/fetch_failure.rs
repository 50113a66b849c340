//! Fetch failures: from reduces' reports that they could not fetch a map output, decide whether
//! the worker holding it is lost (its outputs run again) or the reporting worker is the one at
//! fault (it is excluded from the job). As in Hadoop and Spark, the decision rests on what the
//! reduces saw, not on whether the coordinator can reach the holder: a worker can heartbeat and
//! still be unreachable from its peers.
//!
//! The rules, per job:
//! - A holder is lost after [`REPORTS_TO_LOSE_A_HOLDER`] reports against it, from several reduces
//!   or repeated by one. (A holder that stops heartbeating is lost anyway, by the timeout.)
//! - A reporter is the suspect when it has also failed to fetch from another holder that was
//!   heard from after that failure: two peers alive, both unreachable from one worker, point at
//!   that worker. Its report then counts against nobody, so one broken worker cannot make the
//!   job re-run every map. A holder that died never heartbeats again, so failures against dead
//!   holders (a crash loop) never make the reporter a suspect.

use quern_proto::ids::WorkerId;
use std::collections::HashMap;
use std::time::Instant;

/// Reports against one holder that declare its map outputs lost.
pub const REPORTS_TO_LOSE_A_HOLDER: u32 = 2;

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
    /// Reports against each holder since its outputs were last declared lost, and when the
    /// first of them came.
    against: HashMap<WorkerId, (u32, Instant)>,
    /// For each reporter, the holders it failed to fetch from, and when it last said so.
    by: HashMap<WorkerId, HashMap<WorkerId, Instant>>,
    /// Map tasks run again because their holder was declared lost: bounded per job.
    pub reruns: u32,
}

impl FetchFailures {
    /// Records that `reporter` could not fetch from `holder` at `now`. `heard_since(w, t)` tells
    /// whether worker `w` has heartbeated after `t`.
    pub fn report(
        &mut self,
        reporter: WorkerId,
        holder: WorkerId,
        now: Instant,
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
        let (reports, first) = self.against.entry(holder).or_insert((0, now));
        *reports += 1;
        if *reports < REPORTS_TO_LOSE_A_HOLDER {
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

    #[test]
    fn a_holder_is_lost_after_two_reports_from_one_reduce_or_two() {
        let now = Instant::now();
        let silent = |_, _| false;
        let mut f = FetchFailures::default();
        assert_eq!(f.report(R, H1, now, silent), Verdict::Wait);
        assert_eq!(
            f.report(R, H1, now, silent),
            Verdict::HolderLost { alive: false }
        );
        // The count starts again once the holder's outputs are declared lost.
        assert_eq!(f.report(R, H1, now, silent), Verdict::Wait);
        let heard = |_, _| true;
        assert_eq!(
            f.report(R2, H1, now, heard),
            Verdict::HolderLost { alive: true }
        );
    }

    #[test]
    fn a_reporter_that_cannot_reach_two_live_peers_is_the_suspect() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_millis(10);
        // H1 heartbeats after R's report about it: it was alive, R could not reach it.
        let alive = |w: WorkerId, at: Instant| w == H1 && at <= t0;
        let mut f = FetchFailures::default();
        assert_eq!(f.report(R, H1, t0, alive), Verdict::Wait);
        assert_eq!(f.report(R, H2, t1, alive), Verdict::ReporterSuspect);
        // Its report counted against neither holder.
        assert_eq!(f.report(R2, H2, t1, alive), Verdict::Wait);
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
            assert_eq!(f.report(R, holder, at, dead), Verdict::Wait, "{holder}");
        }
    }
}
