//! A job's map output events, as Hadoop's map completion events: an append-only log in which
//! each event says that a map task's output is at an attempt held by a worker, or that such an
//! output is obsolete (its holder was lost, or its copy was corrupt, and the map runs again). A
//! later event of a map supersedes an earlier one. Reduces read the log from a cursor on, a page
//! at a time, so each map output is sent once to each reduce and no answer is large; a map run
//! again is one more event, not a new copy of every location.
//!
//! The log is kept as the parallel lists an answer sends, so a page is a few slice copies; the
//! workers it names (holders) are numbered in the order the log first names them, so an answer
//! lists only the holders new since its cursor.

use quern_proto::ids::{AttemptId, WorkerId};
use quern_proto::{MapOutputHolder, MapOutputLocationsResponse};
use std::collections::HashMap;

/// Most events in one answer: about 64 KB on the wire. Small enough that thousands of reduces
/// asking at once hold little memory; large enough that a 200,000-map job takes 25 requests.
pub const EVENTS_PER_ANSWER: usize = 8192;

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

    /// The events from `from` on, at most [`EVENTS_PER_ANSWER`], with the holders first named
    /// among them. `all_maps_done`: whether every map is done now, so that an answer reaching
    /// the end of the log is complete.
    pub fn since(&self, from: u64, all_maps_done: bool) -> MapOutputLocationsResponse {
        let start = from.min(self.len()) as usize;
        let end = (start + EVENTS_PER_ANSWER).min(self.map_tasks.len());
        let first_holder = self.first_named.partition_point(|&e| e < start as u64);
        let last_holder = self.first_named.partition_point(|&e| e < end as u64);
        let obsolete_from = self.obsolete.partition_point(|&e| e < start as u64);
        let obsolete_to = self.obsolete.partition_point(|&e| e < end as u64);
        MapOutputLocationsResponse {
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
            complete: all_maps_done && end == self.map_tasks.len(),
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
            log.since(0, true),
            MapOutputLocationsResponse {
                first_holder: 0,
                holders: vec![holder("http://a:1", A), holder("http://b:1", B)],
                map_tasks: vec![0, 1, 2],
                attempt_ids: vec![10, 11, 12],
                holder_of: vec![0, 1, 0],
                obsolete: vec![],
                next_event: 3,
                complete: true,
            }
        );
        assert_eq!(
            log.since(2, true),
            MapOutputLocationsResponse {
                first_holder: 2,
                map_tasks: vec![2],
                attempt_ids: vec![12],
                holder_of: vec![0],
                next_event: 3,
                complete: true,
                ..MapOutputLocationsResponse::default()
            }
        );
        // Caught up while a map is still running: nothing new, not complete.
        assert_eq!(
            log.since(3, false),
            MapOutputLocationsResponse {
                first_holder: 2,
                next_event: 3,
                ..MapOutputLocationsResponse::default()
            }
        );
        // A cursor past the end reads from the end.
        assert_eq!(log.since(9, true).next_event, 3);
    }

    #[test]
    fn a_long_log_is_read_a_page_at_a_time() {
        let mut log = MapEvents::default();
        let events = EVENTS_PER_ANSWER as u32 + 2;
        for map in 0..events {
            log.done(map, AttemptId(u64::from(map) + 100), A, "http://a:1");
        }
        let first = log.since(0, true);
        assert_eq!(first.map_tasks.len(), EVENTS_PER_ANSWER);
        assert_eq!(
            (first.next_event, first.complete, first.holders.len()),
            (EVENTS_PER_ANSWER as u64, false, 1)
        );
        let second = log.since(first.next_event, true);
        assert_eq!(second.map_tasks, [events - 2, events - 1]);
        assert_eq!(
            second.attempt_ids,
            [u64::from(events) + 98, u64::from(events) + 99]
        );
        assert_eq!(
            (second.next_event, second.complete, second.first_holder),
            (u64::from(events), true, 1)
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
        let done = state.map_output_locations(id, 0).unwrap();
        assert_eq!(
            done,
            MapOutputLocationsResponse {
                first_holder: 0,
                holders: vec![holder("http://a:1", A), holder("http://b:1", B)],
                map_tasks: vec![0, 1],
                attempt_ids: vec![1, 2],
                holder_of: vec![0, 1],
                obsolete: vec![],
                next_event: 2,
                complete: true,
            }
        );
        // The reduce went to A; A stops heartbeating and is declared lost: its map output is
        // obsolete, and its map runs again on B.
        assert_eq!(next(&mut on_a).attempt_id, 3);
        state.workers.get_mut(&A).unwrap().last_seen = Instant::now() - Duration::from_secs(60);
        state.reap(Duration::from_secs(10));
        assert_eq!(
            state.map_output_locations(id, 2).unwrap(),
            MapOutputLocationsResponse {
                first_holder: 2,
                map_tasks: vec![0],
                attempt_ids: vec![1],
                holder_of: vec![0],
                obsolete: vec![0],
                next_event: 3,
                complete: false,
                ..MapOutputLocationsResponse::default()
            }
        );
        let again = next(&mut on_b);
        assert_eq!((again.task, again.attempt_id), (0, 4));
        succeed(&mut state, &again, Counters::default());
        assert_eq!(
            state.map_output_locations(id, 2).unwrap(),
            MapOutputLocationsResponse {
                first_holder: 2,
                map_tasks: vec![0, 0],
                attempt_ids: vec![1, 4],
                holder_of: vec![0, 1],
                obsolete: vec![0],
                next_event: 4,
                complete: true,
                ..MapOutputLocationsResponse::default()
            }
        );
    }
}
