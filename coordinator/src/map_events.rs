//! A job's map output events, as Hadoop's map completion events: an append-only log in which
//! each event says that a map task's output is at an attempt held by a worker, or that such an
//! output is obsolete (its holder was lost, or its copy was corrupt, and the map runs again). A
//! later event of a map supersedes an earlier one. Workers read the log from a cursor on, a page
//! at a time, so each map output is sent once to each worker and no answer is large; a map run
//! again is one more event, not a new copy of every location.
//!
//! Pages are cut at fixed positions, so every reader asks for the same ones, and a full page
//! never changes: it is encoded once and the same bytes go to all 2,000 workers. The workers it
//! names (holders) are numbered in the order the log first names them, so a page lists only the
//! holders new in it.

use prost::Message;
use prost::bytes::Bytes;
use quern_proto::ids::{AttemptId, WorkerId};
use quern_proto::{MapOutputEvents, MapOutputHolder, MapOutputLocationsResponse};
use std::collections::HashMap;

/// Events in a full page: about 64 KB encoded. Small enough that thousands of workers reading at
/// once hold little memory; large enough that a 200,000-map job takes 25 requests.
pub const EVENTS_PER_PAGE: usize = 8192;

#[derive(Debug, Default)]
pub struct MapEvents {
    map_tasks: Vec<u32>,
    attempts: Vec<u64>,
    holder_of: Vec<u32>,
    /// Positions of the events that say an output is obsolete, ascending.
    obsolete: Vec<u64>,
    holders: Vec<MapOutputHolder>,
    holder_numbers: HashMap<WorkerId, u32>,
    /// The event that first named each holder, ascending (holders are numbered in that order).
    first_named: Vec<u64>,
    /// The full pages encoded so far, by page number.
    full_pages: Vec<Bytes>,
}

impl MapEvents {
    /// Events so far.
    pub fn len(&self) -> u64 {
        self.map_tasks.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.map_tasks.is_empty()
    }

    /// Map task `map_task`'s output is at `attempt`, held by `worker` at `address`.
    pub fn done(&mut self, map_task: u32, attempt: AttemptId, worker: WorkerId, address: &str) {
        self.push(map_task, attempt, worker, address);
    }

    /// The output of `attempt` of map task `map_task`, held by `worker`, is obsolete.
    pub fn obsolete(&mut self, map_task: u32, attempt: AttemptId, worker: WorkerId) {
        self.obsolete.push(self.len());
        self.push(map_task, attempt, worker, "");
    }

    fn push(&mut self, map_task: u32, attempt: AttemptId, worker: WorkerId, address: &str) {
        let holder = self.holder(worker, address);
        self.map_tasks.push(map_task);
        self.attempts.push(attempt.0);
        self.holder_of.push(holder);
    }

    /// The number of `worker`, numbered now if the log has not named it yet.
    fn holder(&mut self, worker: WorkerId, address: &str) -> u32 {
        if let Some(&number) = self.holder_numbers.get(&worker) {
            return number;
        }
        let number = self.holders.len() as u32;
        self.holders.push(MapOutputHolder {
            address: address.to_string(),
            worker_id: worker.to_string(),
        });
        self.holder_numbers.insert(worker, number);
        self.first_named.push(self.len());
        number
    }

    /// The events from `from` to the end of its page (or of the log), encoded. `all_maps_done`:
    /// whether every map is done now, so that an answer reaching the end of the log is complete.
    pub fn since(&mut self, from: u64, all_maps_done: bool) -> MapOutputLocationsResponse {
        let len = self.map_tasks.len();
        let start = from.min(self.len()) as usize;
        let page = start / EVENTS_PER_PAGE;
        let end = ((page + 1) * EVENTS_PER_PAGE).min(len);
        let events = if start.is_multiple_of(EVENTS_PER_PAGE) && end - start == EVENTS_PER_PAGE {
            self.full_page(page)
        } else {
            self.page(start, end).encode_to_vec().into()
        };
        MapOutputLocationsResponse {
            events,
            complete: all_maps_done && end == len,
        }
    }

    /// Full page `page`, encoded once. Pages fill in order, so every earlier one is full too.
    fn full_page(&mut self, page: usize) -> Bytes {
        while self.full_pages.len() <= page {
            let start = self.full_pages.len() * EVENTS_PER_PAGE;
            let encoded = self.page(start, start + EVENTS_PER_PAGE).encode_to_vec();
            self.full_pages.push(encoded.into());
        }
        self.full_pages[page].clone()
    }

    /// Events `start..end`, with the holders first named among them.
    fn page(&self, start: usize, end: usize) -> MapOutputEvents {
        let first_holder = self.first_named.partition_point(|&e| e < start as u64);
        let last_holder = self.first_named.partition_point(|&e| e < end as u64);
        let obsolete_from = self.obsolete.partition_point(|&e| e < start as u64);
        let obsolete_to = self.obsolete.partition_point(|&e| e < end as u64);
        MapOutputEvents {
            first_holder: first_holder as u32,
            holders: self.holders[first_holder..last_holder].to_vec(),
            map_tasks: self.map_tasks[start..end].to_vec(),
            attempt_ids: self.attempts[start..end].to_vec(),
            holder_of: self.holder_of[start..end].to_vec(),
            obsolete: self.obsolete[obsolete_from..obsolete_to]
                .iter()
                .map(|&e| (e - start as u64) as u32)
                .collect(),
            next_event: end as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::State;
    use crate::testing::*;
    use quern_proto::Counters;
    use std::time::{Duration, Instant};

    /// What a read from `from` answers: its events, decoded, and whether it completes the log.
    fn read(log: &mut MapEvents, from: u64, all_maps_done: bool) -> (MapOutputEvents, bool) {
        decode(log.since(from, all_maps_done))
    }

    fn decode(answer: MapOutputLocationsResponse) -> (MapOutputEvents, bool) {
        let events = MapOutputEvents::decode(answer.events).expect("a page decodes");
        (events, answer.complete)
    }

    const A: WorkerId = worker_id(1);
    const B: WorkerId = worker_id(2);

    fn holder(address: &str, worker: WorkerId) -> MapOutputHolder {
        MapOutputHolder {
            address: address.to_string(),
            worker_id: worker.to_string(),
        }
    }

    #[test]
    fn a_reduce_reads_the_events_since_its_cursor_with_the_holders_new_to_it() {
        let mut log = MapEvents::default();
        log.done(0, AttemptId(10), A, "http://a:1");
        log.done(1, AttemptId(11), B, "http://b:1");
        log.done(2, AttemptId(12), A, "http://a:1");
        assert_eq!(
            read(&mut log, 0, true),
            (
                MapOutputEvents {
                    first_holder: 0,
                    holders: vec![holder("http://a:1", A), holder("http://b:1", B)],
                    map_tasks: vec![0, 1, 2],
                    attempt_ids: vec![10, 11, 12],
                    holder_of: vec![0, 1, 0],
                    obsolete: vec![],
                    next_event: 3,
                },
                true
            )
        );
        assert_eq!(
            read(&mut log, 2, true),
            (
                MapOutputEvents {
                    first_holder: 2,
                    map_tasks: vec![2],
                    attempt_ids: vec![12],
                    holder_of: vec![0],
                    next_event: 3,
                    ..MapOutputEvents::default()
                },
                true
            )
        );
        // Caught up while a map is still running: nothing new, not complete.
        assert_eq!(
            read(&mut log, 3, false),
            (
                MapOutputEvents {
                    first_holder: 2,
                    next_event: 3,
                    ..MapOutputEvents::default()
                },
                false
            )
        );
        // A cursor past the end reads from the end.
        assert_eq!(read(&mut log, 9, true).0.next_event, 3);
    }

    #[test]
    fn a_long_log_is_read_a_page_at_a_time_and_a_full_page_is_encoded_once() {
        let mut log = MapEvents::default();
        let events = EVENTS_PER_PAGE as u32 + 2;
        for map in 0..events {
            log.done(map, AttemptId(u64::from(map) + 100), A, "http://a:1");
        }
        let first = log.since(0, true);
        let again = log.since(0, true);
        assert_eq!(
            first.events.as_ptr(),
            again.events.as_ptr(),
            "the same bytes, not a second encoding"
        );
        let (first, complete) = decode(first);
        assert_eq!(first.map_tasks.len(), EVENTS_PER_PAGE);
        assert_eq!(first.map_tasks[EVENTS_PER_PAGE - 1], events - 3);
        assert_eq!(
            (first.next_event, complete, first.holders.len()),
            (EVENTS_PER_PAGE as u64, false, 1)
        );
        let (second, complete) = read(&mut log, first.next_event, true);
        assert_eq!(second.map_tasks, [events - 2, events - 1]);
        assert_eq!(
            second.attempt_ids,
            [u64::from(events) + 98, u64::from(events) + 99]
        );
        assert_eq!(
            (second.next_event, complete, second.first_holder),
            (u64::from(events), true, 1)
        );
        // A cursor inside a page reads to the page's end: the next read is of a whole page.
        let (middle, _) = read(&mut log, 5, true);
        assert_eq!(
            (middle.map_tasks.len(), middle.next_event),
            (EVENTS_PER_PAGE - 5, EVENTS_PER_PAGE as u64)
        );
    }

    /// Registers a ready worker with job "wc", one slot, at `address`.
    fn worker_at(state: &mut State, address: &str) -> Assignments {
        let id = state.register_worker(address.into(), 1, vec!["wc".into()], "s".into());
        let (sender, assignments) = tokio::sync::mpsc::unbounded_channel();
        state.attach_stream(id, sender);
        state.schedule();
        assignments
    }

    #[test]
    fn a_lost_workers_outputs_are_obsolete_and_their_reruns_supersede_them() {
        let mut state = State::default();
        let id = add_job(&mut state, 2, 4);
        let mut on_a = worker_at(&mut state, "http://a:1");
        let mut on_b = worker_at(&mut state, "http://b:1");
        let (m0, m1) = (next(&mut on_a), next(&mut on_b));
        assert_eq!(
            (m0.task, m0.attempt_id, m1.task, m1.attempt_id),
            (0, 1, 1, 2)
        );
        succeed(&mut state, &m0, Counters::default());
        assert!(!state.map_output_locations(id, 0).unwrap().complete);
        succeed(&mut state, &m1, Counters::default());
        let done = decode(state.map_output_locations(id, 0).unwrap());
        assert_eq!(
            done,
            (
                MapOutputEvents {
                    first_holder: 0,
                    holders: vec![holder("http://a:1", A), holder("http://b:1", B)],
                    map_tasks: vec![0, 1],
                    attempt_ids: vec![1, 2],
                    holder_of: vec![0, 1],
                    obsolete: vec![],
                    next_event: 2,
                },
                true
            )
        );
        // The reduce went to A; A stops heartbeating and is declared lost: its map output is
        // obsolete, and its map runs again on B.
        assert_eq!(next(&mut on_a).attempt_id, 3);
        state.workers.get_mut(&A).unwrap().last_seen = Instant::now() - Duration::from_secs(60);
        state.reap(Duration::from_secs(10));
        assert_eq!(
            decode(state.map_output_locations(id, 2).unwrap()),
            (
                MapOutputEvents {
                    first_holder: 2,
                    map_tasks: vec![0],
                    attempt_ids: vec![1],
                    holder_of: vec![0],
                    obsolete: vec![0],
                    next_event: 3,
                    ..MapOutputEvents::default()
                },
                false
            )
        );
        let again = next(&mut on_b);
        assert_eq!((again.task, again.attempt_id), (0, 4));
        succeed(&mut state, &again, Counters::default());
        assert_eq!(
            decode(state.map_output_locations(id, 2).unwrap()),
            (
                MapOutputEvents {
                    first_holder: 2,
                    map_tasks: vec![0, 0],
                    attempt_ids: vec![1, 4],
                    holder_of: vec![0, 1],
                    obsolete: vec![0],
                    next_event: 4,
                    ..MapOutputEvents::default()
                },
                true
            )
        );
    }
}
