//! Windowed maxima and minima that many readers can query without resetting
//! them: the peak of calls in flight, the shortest queue, the longest
//! `Retry-After`.
//!
//! A value is recorded into the bucket of the time it was seen. There are
//! two rings of 32 buckets: a fine one (buckets of 2^26 ns, about 67 ms,
//! covering about 2.1 s: a tuner's window) and a coarse one (buckets of
//! 2^31 ns, about 2.1 s, covering about 69 s: a metrics scrape). Each bucket
//! is one atomic word holding its epoch and its extreme, so recording is a
//! clock read, two loads, and a compare-and-swap only when the value is a
//! new extreme for its bucket; nobody ever resets anything.
//!
//! A [`MaxReader`] gives one reader windows that partition time: each read
//! covers the buckets since its previous read, and counts the bucket that
//! straddles the previous read only if that bucket's extreme has grown since
//! (so an extreme is reported once per reader, not once per window it
//! touches). The cost of the buckets is resolution: a smaller value seen
//! after the read, in the bucket where a larger one was seen before it, is
//! not reported.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// Buckets per ring.
const BUCKETS: u32 = 32;
/// log2 of the bucket width in nanoseconds, per ring: fine, coarse.
const SHIFTS: [u32; 2] = [26, 31];

/// The largest value seen per time bucket, readable for any recent span.
#[derive(Debug)]
pub(crate) struct WindowedMax {
    origin: Instant,
    rings: [Ring; 2],
}

#[derive(Debug)]
struct Ring {
    shift: u32,
    /// `epoch << 32 | value`; epoch 0 is an empty bucket.
    slots: [AtomicU64; BUCKETS as usize],
}

fn pack(epoch: u32, value: u32) -> u64 {
    (u64::from(epoch) << 32) | u64::from(value)
}

fn unpack(word: u64) -> (u32, u32) {
    ((word >> 32) as u32, word as u32)
}

impl Ring {
    fn new(shift: u32) -> Self {
        Ring {
            shift,
            slots: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// The bucket epoch of `nanos` after the origin; starts at 1 and wraps
    /// after 2^32 buckets (9 years for the fine ring).
    fn epoch(&self, nanos: u64) -> u32 {
        ((nanos >> self.shift) as u32).wrapping_add(1)
    }

    fn slot(&self, epoch: u32) -> &AtomicU64 {
        &self.slots[(epoch % BUCKETS) as usize]
    }

    fn record(&self, epoch: u32, value: u32) {
        let slot = self.slot(epoch);
        let mut word = slot.load(Ordering::Relaxed);
        loop {
            let (tag, old) = unpack(word);
            // A bucket already taken by a later epoch: the value is too old.
            if tag > epoch || (tag == epoch && old >= value) {
                return;
            }
            match slot.compare_exchange_weak(
                word,
                pack(epoch, value),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(now) => word = now,
            }
        }
    }

    /// The value of bucket `epoch`, if it holds one.
    fn get(&self, epoch: u32) -> Option<u32> {
        let (tag, value) = unpack(self.slot(epoch).load(Ordering::Relaxed));
        (tag == epoch).then_some(value)
    }

    /// The largest value in the buckets `from..=to` still in the ring.
    fn max_in(&self, from: u32, to: u32) -> Option<u32> {
        let from = from.max(to.saturating_sub(BUCKETS - 1));
        (from..=to).filter_map(|e| self.get(e)).max()
    }
}

impl Default for WindowedMax {
    fn default() -> Self {
        Self::new(Instant::now())
    }
}

impl WindowedMax {
    /// Empty, with buckets counted from `origin`.
    pub(crate) fn new(origin: Instant) -> Self {
        WindowedMax {
            origin,
            rings: [Ring::new(SHIFTS[0]), Ring::new(SHIFTS[1])],
        }
    }

    fn epochs(&self, at: Instant) -> [u32; 2] {
        let nanos =
            u64::try_from(at.saturating_duration_since(self.origin).as_nanos()).unwrap_or(u64::MAX);
        [self.rings[0].epoch(nanos), self.rings[1].epoch(nanos)]
    }

    /// Records `value` (saturated to `u32::MAX`) as seen now.
    pub(crate) fn record(&self, value: u64) {
        self.record_at(value, Instant::now());
    }

    /// Records `value` (saturated to `u32::MAX`) as seen at `at`.
    pub(crate) fn record_at(&self, value: u64, at: Instant) {
        let value = u32::try_from(value).unwrap_or(u32::MAX);
        for (ring, epoch) in self.rings.iter().zip(self.epochs(at)) {
            ring.record(epoch, value);
        }
    }

    /// The largest value seen from the bucket holding `since` to `now`
    /// (so up to one bucket before `since`), or `None` if nothing was seen.
    /// Spans longer than the coarse ring (about 69 s) see its last 69 s.
    pub(crate) fn max_since(&self, since: Instant, now: Instant) -> Option<u32> {
        let (from, to) = (self.epochs(since), self.epochs(now));
        let level = Self::level(from, to);
        self.rings[level].max_in(from[level], to[level])
    }

    /// The finest ring that still holds the bucket of `from`.
    fn level(from: [u32; 2], to: [u32; 2]) -> usize {
        usize::from(to[0].wrapping_sub(from[0]) >= BUCKETS)
    }

    /// A reader whose first window starts now.
    pub(crate) fn reader(&self, now: Instant) -> MaxReader {
        let epochs = self.epochs(now);
        MaxReader {
            last: now,
            seen: [0, 1].map(|l| (epochs[l], self.rings[l].get(epochs[l]))),
        }
    }
}

/// One reader's position in a [`WindowedMax`]: each read reports what was
/// seen since the previous one.
#[derive(Debug, Clone)]
pub(crate) struct MaxReader {
    last: Instant,
    /// Per ring: the bucket of the last read and its value then.
    seen: [(u32, Option<u32>); 2],
}

impl MaxReader {
    /// The largest value seen since the previous read (or since the reader
    /// was made), or `None` if nothing new was seen.
    pub(crate) fn read(&mut self, m: &WindowedMax, now: Instant) -> Option<u32> {
        let from = [self.seen[0].0, self.seen[1].0];
        let to = m.epochs(now.max(self.last));
        let level = WindowedMax::level(from, to);
        let ring = &m.rings[level];
        let (edge, was) = self.seen[level];
        // The bucket straddling the previous read counts only if it grew.
        let grown = ring.get(edge).filter(|v| Some(*v) > was);
        let later = (to[level] > edge)
            .then(|| ring.max_in(edge.saturating_add(1), to[level]))
            .flatten();
        self.last = now.max(self.last);
        self.seen = [0, 1].map(|l| (to[l], m.rings[l].get(to[l])));
        grown.max(later)
    }
}

/// The smallest value seen per time bucket: a [`WindowedMax`] of the
/// complements.
#[derive(Debug)]
pub(crate) struct WindowedMin(WindowedMax);

impl Default for WindowedMin {
    fn default() -> Self {
        Self::new(Instant::now())
    }
}

/// One reader's position in a [`WindowedMin`].
#[derive(Debug, Clone)]
pub(crate) struct MinReader(MaxReader);

impl WindowedMin {
    pub(crate) fn new(origin: Instant) -> Self {
        WindowedMin(WindowedMax::new(origin))
    }

    /// Records `value` (saturated to `u32::MAX`) as seen now.
    pub(crate) fn record(&self, value: u64) {
        self.record_at(value, Instant::now());
    }

    pub(crate) fn record_at(&self, value: u64, at: Instant) {
        let value = u32::try_from(value).unwrap_or(u32::MAX);
        self.0.record_at(u64::from(u32::MAX - value), at);
    }

    pub(crate) fn reader(&self, now: Instant) -> MinReader {
        MinReader(self.0.reader(now))
    }
}

impl MinReader {
    /// The smallest value seen since the previous read, if any.
    pub(crate) fn read(&mut self, m: &WindowedMin, now: Instant) -> Option<u32> {
        self.0.read(&m.0, now).map(|v| u32::MAX - v)
    }
}

/// A duration as whole milliseconds, rounded up so that anything above zero
/// stays above zero, for a [`WindowedMax`] of durations.
pub(crate) fn millis_ceil(d: Duration) -> u64 {
    let ms = d.as_millis() + u128::from(d.subsec_nanos() % 1_000_000 != 0);
    u64::try_from(ms).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FINE: Duration = Duration::from_nanos(1 << 26);
    const COARSE: Duration = Duration::from_nanos(1 << 31);

    fn at(t0: Instant, d: Duration) -> Instant {
        t0 + d
    }

    #[test]
    fn a_query_does_not_reset_the_maximum() {
        let t0 = Instant::now();
        let m = WindowedMax::new(t0);
        m.record_at(3, at(t0, FINE));
        m.record_at(7, at(t0, FINE * 2));
        m.record_at(5, at(t0, FINE * 2));
        let now = at(t0, FINE * 3);
        assert_eq!(m.max_since(t0, now), Some(7));
        assert_eq!(m.max_since(t0, now), Some(7), "reading twice sees the same");
        assert_eq!(m.max_since(at(t0, FINE * 3), now), None, "nothing since");
        assert_eq!(m.max_since(at(t0, FINE), now), Some(7));
    }

    #[test]
    fn two_readers_each_see_every_maximum_once() {
        let t0 = Instant::now();
        let m = WindowedMax::new(t0);
        let (mut a, mut b) = (m.reader(t0), m.reader(t0));
        m.record_at(4, at(t0, FINE / 4));
        assert_eq!(a.read(&m, at(t0, FINE / 2)), Some(4));
        // Same bucket, after a's read: a smaller value is not new to a, a
        // larger one is.
        m.record_at(2, at(t0, FINE * 3 / 4));
        assert_eq!(a.read(&m, at(t0, FINE * 7 / 8)), None);
        m.record_at(6, at(t0, FINE * 15 / 16));
        m.record_at(1, at(t0, FINE * 3));
        assert_eq!(a.read(&m, at(t0, FINE * 4)), Some(6));
        assert_eq!(a.read(&m, at(t0, FINE * 5)), None, "each value once");
        // b never read: it sees everything since it was made.
        assert_eq!(b.read(&m, at(t0, FINE * 5)), Some(6));
    }

    #[test]
    fn a_long_span_reads_the_coarse_ring() {
        let t0 = Instant::now();
        let m = WindowedMax::new(t0);
        let mut r = m.reader(t0);
        m.record_at(9, at(t0, Duration::from_secs(1)));
        m.record_at(2, at(t0, Duration::from_secs(20)));
        // 30 s later: the fine ring has long wrapped, the coarse one holds it.
        let now = at(t0, Duration::from_secs(30));
        assert_eq!(m.max_since(t0, now), Some(9));
        assert_eq!(r.read(&m, now), Some(9));
        assert_eq!(r.read(&m, now + COARSE), None);
        // Beyond the coarse ring's span only its last ~69 s remain.
        let late = at(t0, Duration::from_secs(200));
        m.record_at(1, late);
        assert_eq!(m.max_since(t0, late), Some(1));
    }

    #[test]
    fn a_stale_write_never_overwrites_a_newer_bucket() {
        let t0 = Instant::now();
        let m = WindowedMax::new(t0);
        let late = at(t0, FINE * BUCKETS);
        m.record_at(1, late);
        // Same slot, 32 buckets earlier: dropped.
        m.record_at(50, t0);
        assert_eq!(m.max_since(late, late), Some(1));
    }

    #[test]
    fn minimum_is_the_smallest_seen_and_zero_counts() {
        let t0 = Instant::now();
        let m = WindowedMin::new(t0);
        let mut r = m.reader(t0);
        assert_eq!(r.read(&m, at(t0, FINE)), None);
        m.record_at(8, at(t0, FINE * 2));
        m.record_at(0, at(t0, FINE * 3));
        m.record_at(5, at(t0, FINE * 4));
        assert_eq!(r.read(&m, at(t0, FINE * 5)), Some(0));
        m.record_at(u64::MAX, at(t0, FINE * 6));
        assert_eq!(r.read(&m, at(t0, FINE * 7)), Some(u32::MAX));
    }

    #[test]
    fn concurrent_records_keep_the_largest() {
        let m = std::sync::Arc::new(WindowedMax::new(Instant::now()));
        let t = Instant::now();
        let threads: Vec<_> = (0..4u64)
            .map(|k| {
                let m = std::sync::Arc::clone(&m);
                std::thread::spawn(move || (0..1000).for_each(|i| m.record_at(i * 4 + k, t)))
            })
            .collect();
        threads.into_iter().for_each(|h| h.join().unwrap());
        assert_eq!(m.max_since(t, t), Some(3999));
    }

    #[test]
    fn millis_round_up() {
        assert_eq!(millis_ceil(Duration::ZERO), 0);
        assert_eq!(millis_ceil(Duration::from_micros(1)), 1);
        assert_eq!(millis_ceil(Duration::from_millis(1500)), 1500);
        assert_eq!(millis_ceil(Duration::MAX), u64::MAX);
    }
}
