//! The sampling stage of a total-order job (see `quern_sdk::total_order`): before its maps run,
//! a few sample tasks run the mapper over the start of evenly spaced splits and report the keys
//! it emits, each with the bytes of its record. Once all have reported, the sampled range is cut
//! into one part per reduce of about equal bytes, and the cut points go to every map. Keys are
//! compared as bytes: the coordinator needs no job code.

use crate::job::Task;
use quern_proto::SampledKey;
use std::collections::VecDeque;

/// Splits sampled at most: enough to see the input's spread, few enough to be a short stage.
pub const MAX_SAMPLE_TASKS: usize = 20;

/// The sampling stage of one job.
#[derive(Debug)]
pub struct Sampling {
    /// The split each sample task reads.
    pub splits: Vec<u32>,
    pub tasks: Vec<Task>,
    pub pending: VecDeque<u32>,
    pub done: u32,
    /// What the done tasks sampled.
    keys: Vec<SampledKey>,
}

impl Sampling {
    /// A stage over up to [`MAX_SAMPLE_TASKS`] of `maps` splits, evenly spaced.
    pub fn new(maps: u32) -> Self {
        let splits = spread(maps, MAX_SAMPLE_TASKS as u32);
        Sampling {
            tasks: splits.iter().map(|_| Task::default()).collect(),
            pending: (0..splits.len() as u32).collect(),
            splits,
            done: 0,
            keys: Vec::new(),
        }
    }

    /// Keeps the keys a sample task reported.
    pub fn add(&mut self, keys: &[SampledKey]) {
        self.keys.extend_from_slice(keys);
    }

    /// Whether every sample task is done.
    pub fn finished(&self) -> bool {
        self.done as usize == self.tasks.len()
    }

    /// The cut points for `parts` partitions, from everything sampled; the samples are dropped.
    pub fn cut(&mut self, parts: u32) -> Vec<Vec<u8>> {
        cut_points(std::mem::take(&mut self.keys), parts)
    }
}

/// `count` indices of `0..n`, evenly spaced, ascending (all of them if `n <= count`).
fn spread(n: u32, count: u32) -> Vec<u32> {
    if n <= count {
        return (0..n).collect();
    }
    (0..count)
        .map(|i| (u64::from(i) * u64::from(n) / u64::from(count)) as u32)
        .collect()
}

/// Up to `parts - 1` ascending cut points that split `samples` into `parts` runs of about equal
/// weight (record bytes). Equal keys never straddle a cut, so with few distinct keys there may
/// be fewer cut points, and some partitions stay empty.
pub fn cut_points(mut samples: Vec<SampledKey>, parts: u32) -> Vec<Vec<u8>> {
    samples.sort_unstable_by(|a, b| a.key.cmp(&b.key));
    let total: u64 = samples.iter().map(|s| s.weight.max(1)).sum();
    let mut cuts: Vec<Vec<u8>> = Vec::with_capacity(parts.saturating_sub(1) as usize);
    let mut seen = 0u64;
    let mut next = 1u64;
    for sample in &samples {
        // The cut goes before the first key past the next boundary of weight; a cut at or
        // below the last one (or the smallest key) would only make an empty partition.
        while next < u64::from(parts) && seen * u64::from(parts) >= next * total {
            let floor = cuts.last().unwrap_or(&samples[0].key);
            if sample.key > *floor {
                cuts.push(sample.key.clone());
            }
            next += 1;
        }
        seen += sample.weight.max(1);
    }
    cuts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::State;
    use crate::testing::*;
    use quern_proto::{Counters, TaskKind};

    fn sampled(keys: &[(&str, u64)]) -> Vec<SampledKey> {
        keys.iter()
            .map(|(k, w)| SampledKey {
                key: k.as_bytes().to_vec(),
                weight: *w,
            })
            .collect()
    }

    #[test]
    fn cut_points_balance_the_parts_by_weight() {
        let keys: Vec<String> = (0..100).map(|i| format!("k{i:03}")).collect();
        let samples: Vec<(&str, u64)> = keys.iter().map(|k| (k.as_str(), 10)).collect();
        let cuts = cut_points(sampled(&samples), 4);
        assert_eq!(cuts, [b"k025".to_vec(), b"k050".to_vec(), b"k075".to_vec()]);
        // A key is never cut: the cut falls after the heavy one that crosses the middle.
        let cuts = cut_points(
            sampled(&[("a", 1), ("b", 1), ("m", 4), ("x", 1), ("y", 1)]),
            2,
        );
        assert_eq!(cuts, [b"x".to_vec()]);
    }

    #[test]
    fn equal_keys_never_straddle_a_cut_and_nothing_sampled_cuts_nothing() {
        let cuts = cut_points(sampled(&[("same", 5); 10]), 4);
        assert!(cuts.is_empty(), "{cuts:?}");
        assert!(cut_points(Vec::new(), 8).is_empty());
        assert!(cut_points(sampled(&[("a", 1), ("b", 1)]), 1).is_empty());
    }

    #[test]
    fn sample_tasks_spread_over_the_splits() {
        assert_eq!(spread(3, 20), [0, 1, 2]);
        assert_eq!(spread(100, 4), [0, 25, 50, 75]);
        assert_eq!(Sampling::new(0).tasks.len(), 0);
    }

    /// A total-order job runs its sample tasks first; its maps wait for all of them, then carry
    /// the cut points; what a sample task counted is not the job's.
    #[test]
    fn maps_wait_for_the_sampling_stage_and_carry_its_cut_points() {
        let mut state = State::default();
        let id = add_job_with(&mut state, 3, |spec| {
            spec.total_order = true;
            spec.reducers = 2;
        });
        let (_, mut assignments) = add_worker(&mut state, 4);
        let samples: Vec<_> = (0..3).map(|_| next(&mut assignments)).collect();
        assert!(samples.iter().all(|a| a.kind() == TaskKind::Sample));
        assert!(assignments.try_recv().is_err(), "maps wait for the samples");
        let counted = Counters {
            input_records: 99,
            ..Counters::default()
        };
        for (sample, keys) in samples.iter().zip([["a", "b"], ["c", "d"], ["e", "f"]]) {
            let mut report = success(sample, counted.clone());
            report.samples = sampled(&[(keys[0], 1), (keys[1], 1)]);
            send(&mut state, &report);
        }
        let map = next(&mut assignments);
        assert_eq!(map.kind(), TaskKind::Map);
        assert_eq!(map.cut_points, [b"d".to_vec()]);
        assert_eq!(state.jobs[&id].counters.input_records, 0);
    }
}
