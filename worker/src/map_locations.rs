//! Where a reduce's map outputs are: the reduce reads its job's map output events from the
//! coordinator (as Hadoop's reduces read map completion events), a page at a time from where it
//! left off, and keeps the latest event of each map: an output at an attempt on a holder, or
//! none while that output is obsolete and the map runs again. Once the coordinator says the
//! events are complete (every map done, none left to read), every map has its location. Asked
//! again after a fetch failure, the reduce reads only the events since, and finds there the
//! maps that ran again.
//!
//! A worker keeps one view per job, which all its reduces of the job share ([`JobViews`]): each
//! event reaches a worker once however many of the job's reduces it runs, as the MapReduce
//! paper's master told workers, not reduces, where map outputs were. A view is of one
//! registration: a restarted coordinator rebuilds its log in another order, so a worker that
//! registers again starts its views afresh.

use crate::context::Context;
use crate::error::TaskError;
use prost::Message;
use quern_proto::{
    Assignment, Backoff, MapOutputEvents, MapOutputHolder, MapOutputLocation,
    MapOutputLocationsRequest, MapOutputLocationsResponse,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often a reduce asks again while maps are being (re)computed.
const LOCATIONS_POLL: Duration = Duration::from_millis(250);

/// What the latest event of one map says.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Latest {
    /// No event names the map.
    #[default]
    Unnamed,
    /// Its output is lost; it runs again.
    Obsolete,
    /// Its output is that of `attempt`, on holder `holder`.
    At { attempt: u64, holder: u32 },
}

/// A job's view, shared by the worker's reduces of that job: one reads the events at a time.
pub type SharedView = Arc<tokio::sync::Mutex<MapOutputView>>;

/// This worker's views of map output events, by job and registration (worker id).
#[derive(Debug, Default)]
pub struct JobViews(Mutex<HashMap<(String, String), SharedView>>);

impl JobViews {
    fn views(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), SharedView>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The view of the job `assignment` is of, under the registration it came to; empty if no
    /// reduce of it has read any events there yet.
    pub fn of(&self, assignment: &Assignment) -> SharedView {
        let key = (assignment.job_id.clone(), assignment.worker_id.clone());
        self.views().entry(key).or_default().clone()
    }

    /// Drops job `job`'s views: the job is over.
    pub fn forget(&self, job: &str) {
        self.views().retain(|(of, _), _| of != job);
    }
}

/// What a worker knows of a job's map output events so far.
#[derive(Debug, Default)]
pub struct MapOutputView {
    /// Where the next request starts.
    next_event: u64,
    /// The holders the events named, by number.
    holders: Vec<MapOutputHolder>,
    /// By map task: what its latest event says.
    latest: Vec<Latest>,
    /// The last answer reached the end of the events with every map done.
    complete: bool,
}

impl MapOutputView {
    /// Takes in one answer: the events from `next_event` on.
    pub fn apply(&mut self, answer: MapOutputLocationsResponse) -> Result<(), TaskError> {
        let events = MapOutputEvents::decode(answer.events)
            .map_err(|e| bad(format!("a page does not decode: {e}")))?;
        self.take(events)?;
        self.complete = answer.complete;
        Ok(())
    }

    /// Takes in one page of events, from `next_event` on.
    fn take(&mut self, answer: MapOutputEvents) -> Result<(), TaskError> {
        check_answer(&answer, self.next_event, self.holders.len())?;
        self.holders.extend(answer.holders);
        let mut obsolete = answer.obsolete.iter().peekable();
        let events = answer.map_tasks.iter().zip(&answer.attempt_ids);
        for (i, ((&map_task, &attempt), &holder)) in events.zip(&answer.holder_of).enumerate() {
            let slot = self.slot(map_task);
            if obsolete.next_if(|&&o| o as usize == i).is_some() {
                // Only the output it names is gone: a later attempt's is not.
                if matches!(*slot, Latest::At { attempt: a, .. } if a == attempt) {
                    *slot = Latest::Obsolete;
                }
            } else {
                *slot = Latest::At { attempt, holder };
            }
        }
        self.next_event = answer.next_event;
        Ok(())
    }

    fn slot(&mut self, map_task: u32) -> &mut Latest {
        let index = map_task as usize;
        if index >= self.latest.len() {
            self.latest.resize(index + 1, Latest::Unnamed);
        }
        &mut self.latest[index]
    }

    /// Whether every map output has a location, as of the last answer.
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// Where the output of `map_task` is now.
    pub fn location(&self, map_task: u32) -> Result<MapOutputLocation, TaskError> {
        let Some(&Latest::At { attempt, holder }) = self.latest.get(map_task as usize) else {
            return Err(bad(format!(
                "complete events leave m-{map_task:05} nowhere"
            )));
        };
        let holder = &self.holders[holder as usize];
        Ok(MapOutputLocation {
            map_task,
            attempt_id: attempt,
            address: holder.address.clone(),
            worker_id: holder.worker_id.clone(),
        })
    }

    /// The maps the events name, each of which must have an output.
    fn named(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.latest.len() as u32).filter(|&m| self.latest[m as usize] != Latest::Unnamed)
    }

    /// How many map outputs the events name, each located (checked, not listed).
    pub fn located(&self) -> Result<usize, TaskError> {
        match self
            .named()
            .find(|&m| self.latest[m as usize] == Latest::Obsolete)
        {
            Some(m) => Err(bad(format!("complete events leave m-{m:05} nowhere"))),
            None => Ok(self.named().count()),
        }
    }

    /// Where every map output the events name is now, by map task.
    pub fn locations(&self) -> Result<Vec<MapOutputLocation>, TaskError> {
        self.named().map(|m| self.location(m)).collect()
    }
}

fn bad(what: String) -> TaskError {
    TaskError::BadLocations(what)
}

/// Refuses an answer that does not continue the events at `next_event` with holders numbered
/// from `holders`, or whose lists disagree, before any of it is taken in.
fn check_answer(
    answer: &MapOutputEvents,
    next_event: u64,
    holders: usize,
) -> Result<(), TaskError> {
    let events = answer.map_tasks.len();
    if answer.attempt_ids.len() != events || answer.holder_of.len() != events {
        return Err(bad("its event lists differ in length".into()));
    }
    if answer.next_event != next_event + events as u64 {
        return Err(bad(format!(
            "{events} events from {next_event} end at {}",
            answer.next_event
        )));
    }
    if answer.first_holder as usize != holders {
        return Err(bad(format!(
            "holders numbered from {} follow {holders}",
            answer.first_holder
        )));
    }
    let named = holders + answer.holders.len();
    if let Some(holder) = answer.holder_of.iter().find(|&&h| h as usize >= named) {
        return Err(bad(format!("an event names holder {holder} of {named}")));
    }
    if !answer.obsolete.is_sorted_by(|a, b| a < b)
        || answer
            .obsolete
            .last()
            .is_some_and(|&o| o as usize >= events)
    {
        return Err(bad("its obsolete events are out of order or range".into()));
    }
    Ok(())
}

/// The view of `assignment`'s job, held while its events are read until complete (see
/// [`catch_up`]): the worker's other reduces of the job wait and find it caught up.
pub async fn caught_up<'a>(
    ctx: &Context,
    assignment: &Assignment,
    view: &'a SharedView,
) -> Result<tokio::sync::MutexGuard<'a, MapOutputView>, TaskError> {
    let mut known = view.lock().await;
    catch_up(ctx, assignment, &mut known).await?;
    Ok(known)
}

/// Reads the events since the view's cursor until they are complete, waiting while maps are
/// being (re)computed: the coordinator cancels this attempt if it stops waiting for it, and
/// answers FailedPrecondition if asked after that.
async fn catch_up(
    ctx: &Context,
    assignment: &Assignment,
    view: &mut MapOutputView,
) -> Result<(), TaskError> {
    let mut backoff = Backoff::constant(LOCATIONS_POLL);
    loop {
        let request = MapOutputLocationsRequest {
            job_id: assignment.job_id.clone(),
            partition: assignment.task,
            attempt_id: assignment.attempt_id,
            worker_id: assignment.worker_id.clone(),
            from_event: view.next_event,
        };
        let from = view.next_event;
        match ctx.coordinator().map_output_locations(request).await {
            Ok(answer) => {
                view.apply(answer.into_inner())?;
                if view.is_complete() {
                    return Ok(());
                }
                if view.next_event == from {
                    tokio::time::sleep(backoff.next_delay()).await;
                }
            }
            Err(status) if status.code() == tonic::Code::Unavailable => {
                tokio::time::sleep(backoff.next_delay()).await;
            }
            Err(status) => return Err(TaskError::Coordinator(status)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(n: u32) -> MapOutputHolder {
        MapOutputHolder {
            address: format!("http://h{n}:1"),
            worker_id: format!("worker-1-{n}"),
        }
    }

    /// A page of events `(map, attempt, holder, obsolete)` from `from`, naming holders `new`,
    /// as the coordinator answers it.
    fn page(
        from: u64,
        first_holder: u32,
        new: &[u32],
        events: &[(u32, u64, u32, bool)],
        complete: bool,
    ) -> MapOutputLocationsResponse {
        let events = MapOutputEvents {
            first_holder,
            holders: new.iter().map(|&n| holder(n)).collect(),
            map_tasks: events.iter().map(|e| e.0).collect(),
            attempt_ids: events.iter().map(|e| e.1).collect(),
            holder_of: events.iter().map(|e| e.2).collect(),
            obsolete: (0..events.len() as u32)
                .filter(|&i| events[i as usize].3)
                .collect(),
            next_event: from + events.len() as u64,
        };
        MapOutputLocationsResponse {
            events: events.encode_to_vec().into(),
            complete,
        }
    }

    fn at(view: &MapOutputView, map: u32) -> (u64, String) {
        let l = view.location(map).unwrap();
        (l.attempt_id, l.address)
    }

    #[test]
    fn the_latest_event_of_each_map_says_where_its_output_is() {
        let mut view = MapOutputView::default();
        let first = page(
            0,
            0,
            &[0, 1],
            &[(0, 10, 0, false), (1, 11, 1, false)],
            false,
        );
        view.apply(first).unwrap();
        assert!(!view.is_complete());
        // Map 0's holder is lost: obsolete, then run again on holder 1. A stale obsolete event
        // (of an attempt no longer the latest) changes nothing.
        let second = page(
            2,
            2,
            &[],
            &[(0, 10, 0, true), (1, 9, 0, true), (0, 12, 1, false)],
            true,
        );
        view.apply(second).unwrap();
        assert!(view.is_complete());
        assert_eq!(view.located().unwrap(), 2);
        assert_eq!(at(&view, 0), (12, "http://h1:1".to_string()));
        assert_eq!(at(&view, 1), (11, "http://h1:1".to_string()));
        assert_eq!(view.locations().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_jobs_reduces_share_a_view_until_the_worker_registers_again() {
        let assignment = |job: &str, worker: &str| Assignment {
            job_id: job.into(),
            worker_id: worker.into(),
            ..Assignment::default()
        };
        let views = JobViews::default();
        let first = views.of(&assignment("job-1", "worker-1-1"));
        first
            .lock()
            .await
            .apply(page(0, 0, &[0], &[(0, 10, 0, false)], true))
            .unwrap();
        let shared = views.of(&assignment("job-1", "worker-1-1"));
        assert!(shared.lock().await.is_complete(), "the same view");
        // Registered again (a restarted coordinator numbers its log afresh): a new view.
        let registered_again = views.of(&assignment("job-1", "worker-2-1"));
        assert!(!registered_again.lock().await.is_complete());
        let other_job = views.of(&assignment("job-2", "worker-2-1"));
        views.forget("job-1");
        assert_eq!(views.views().len(), 1);
        assert!(Arc::ptr_eq(
            &other_job,
            &views.of(&assignment("job-2", "worker-2-1"))
        ));
    }

    #[test]
    fn an_obsolete_output_not_yet_run_again_has_no_location() {
        let mut view = MapOutputView::default();
        let events = [(0, 10, 0, false), (1, 11, 0, false), (1, 11, 0, true)];
        view.apply(page(0, 0, &[0], &events, false)).unwrap();
        assert_eq!(at(&view, 0).0, 10);
        assert_eq!(
            view.location(1).unwrap_err().to_string(),
            "the coordinator's map output events are inconsistent: complete events leave \
             m-00001 nowhere"
        );
        assert!(view.located().is_err());
    }

    #[test]
    fn an_answer_that_does_not_continue_the_events_is_refused() {
        let mut view = MapOutputView::default();
        view.apply(page(0, 0, &[0], &[(0, 10, 0, false)], false))
            .unwrap();
        for (answer, why) in [
            (
                page(5, 1, &[], &[(1, 11, 0, false)], false),
                "1 events from 1 end at 6",
            ),
            (
                page(1, 0, &[0], &[(1, 11, 0, false)], false),
                "holders numbered from 0 follow 1",
            ),
            (
                page(1, 1, &[], &[(1, 11, 3, false)], false),
                "an event names holder 3 of 1",
            ),
        ] {
            let refused = view.apply(answer).unwrap_err();
            assert_eq!(
                refused.to_string(),
                format!("the coordinator's map output events are inconsistent: {why}")
            );
        }
    }
}
