//! Retry delays: the one helper behind every retry loop that calls over the wire (a worker
//! registering, reporting a task, fetching map output, waiting for map output locations; the
//! client polling a job's status). It only computes the delays; each loop sleeps, and keeps its
//! own bound (a number of tries, a deadline, none), since that is the loop's policy. Pure
//! arithmetic, so it needs no runtime and its tests no clock.

use std::time::Duration;

/// The delays between tries: growing from a first delay, by doubling or by a fixed step, up to
/// a maximum.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    first: Duration,
    max: Duration,
    growth: Growth,
}

#[derive(Debug, Clone, Copy)]
enum Growth {
    Double,
    Add(Duration),
}

impl Backoff {
    /// `first`, twice that, four times, … up to `max`.
    pub fn exponential(first: Duration, max: Duration) -> Backoff {
        Backoff::new(first, max, Growth::Double)
    }

    /// `step`, twice that, three times, … up to `max`.
    pub fn linear(step: Duration, max: Duration) -> Backoff {
        Backoff::new(step, max, Growth::Add(step))
    }

    /// `delay` every time.
    pub fn constant(delay: Duration) -> Backoff {
        Backoff::new(delay, delay, Growth::Add(Duration::ZERO))
    }

    fn new(first: Duration, max: Duration, growth: Growth) -> Backoff {
        let first = first.min(max);
        Backoff {
            next: first,
            first,
            max,
            growth,
        }
    }

    /// The delay before the next try.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        let grown = match self.growth {
            Growth::Double => delay.saturating_mul(2),
            Growth::Add(step) => delay.saturating_add(step),
        };
        self.next = grown.min(self.max);
        delay
    }

    /// Starts again from the first delay, after a success.
    pub fn reset(&mut self) {
        self.next = self.first;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delays(mut backoff: Backoff, n: usize) -> Vec<u128> {
        (0..n).map(|_| backoff.next_delay().as_millis()).collect()
    }

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn exponential_delays_double_up_to_the_maximum() {
        let backoff = Backoff::exponential(100 * MS, 1000 * MS);
        assert_eq!(delays(backoff, 6), [100, 200, 400, 800, 1000, 1000]);
    }

    #[test]
    fn linear_delays_grow_by_a_step_up_to_the_maximum() {
        let backoff = Backoff::linear(200 * MS, 700 * MS);
        assert_eq!(delays(backoff, 5), [200, 400, 600, 700, 700]);
    }

    #[test]
    fn constant_delays_do_not_grow() {
        assert_eq!(delays(Backoff::constant(250 * MS), 3), [250, 250, 250]);
    }

    #[test]
    fn a_reset_starts_again_from_the_first_delay() {
        let mut backoff = Backoff::exponential(MS, 100 * MS);
        backoff.next_delay();
        backoff.next_delay();
        backoff.reset();
        assert_eq!(delays(backoff, 3), [1, 2, 4]);
    }

    #[test]
    fn long_growth_saturates_at_the_maximum() {
        let mut backoff = Backoff::exponential(Duration::from_secs(1), Duration::MAX);
        for _ in 0..200 {
            backoff.next_delay();
        }
        assert_eq!(backoff.next_delay(), Duration::MAX);
    }
}
