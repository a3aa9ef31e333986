//! How far a task attempt is, shared between the thread doing the work and the heartbeat that
//! reports it to the JobTracker once a second.
//!
//! Maps report bytes of the split consumed over the split's length. Reduces split their life in
//! three equal phases like Hadoop: shuffle (maps fetched over maps in the job), merge (until the
//! reducer reads its first merged record) and reduce (merged records read over records shuffled).
//!
//! Besides the fraction, the work code marks *activity* (a record read, a map output fetched or
//! merged, a poll for map events): the heartbeat tells the JobTracker whether the work moved
//! since the previous beat, which keeps an attempt that is busy but not measurably advancing (a
//! reducer waiting for slow maps) from timing out, while a hung work thread still does — the
//! heartbeat alone never counts as activity (Hadoop's `reporter.progress()`).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use crate::formats::FormatError;
use crate::formats::{Record, RecordReader};

/// Progress of a map attempt: bytes of its split consumed so far.
pub fn map_fraction(consumed: u64, split_length: u64) -> f64 {
    if split_length == 0 {
        return 0.0;
    }
    (consumed as f64 / split_length as f64).clamp(0.0, 1.0)
}

/// Progress of a reduce attempt: a third for the shuffle, a third for the merge, a third for
/// the reducer (`read` of `total` merged records). `reducing` is true once the merge is done.
pub fn reduce_fraction(fetched: u32, num_maps: u32, reducing: bool, read: u64, total: u64) -> f64 {
    const THIRD: f64 = 1.0 / 3.0;
    let shuffle = if num_maps == 0 {
        1.0
    } else {
        (f64::from(fetched) / f64::from(num_maps)).min(1.0)
    };
    if shuffle < 1.0 {
        return shuffle * THIRD;
    }
    if !reducing {
        return THIRD;
    }
    let reduce = if total == 0 {
        1.0
    } else {
        (read as f64 / total as f64).min(1.0)
    };
    2.0 * THIRD + reduce * THIRD
}

/// The shared progress of one attempt. Updated with relaxed atomics: the heartbeat only needs a
/// recent value, never a consistent snapshot.
#[derive(Debug)]
pub struct TaskProgress {
    kind: Kind,
    done: AtomicBool,
    /// Bumped by the work code whenever it does something.
    activity: Arc<AtomicU64>,
    /// The value of `activity` the last heartbeat saw.
    reported_activity: AtomicU64,
}

#[derive(Debug)]
enum Kind {
    Map {
        split_length: u64,
        consumed: Arc<AtomicU64>,
    },
    Reduce {
        num_maps: u32,
        fetched: AtomicU32,
        total_records: AtomicU64,
        records_read: Arc<AtomicU64>,
    },
}

impl TaskProgress {
    /// Progress of a map over a split of `split_length` bytes.
    pub fn map(split_length: u64) -> Self {
        TaskProgress {
            kind: Kind::Map {
                split_length,
                consumed: Arc::new(AtomicU64::new(0)),
            },
            done: AtomicBool::new(false),
            activity: Arc::new(AtomicU64::new(0)),
            reported_activity: AtomicU64::new(0),
        }
    }

    /// Progress of a reduce of a job with `num_maps` maps.
    pub fn reduce(num_maps: u32) -> Self {
        TaskProgress {
            kind: Kind::Reduce {
                num_maps,
                fetched: AtomicU32::new(0),
                // Until the shuffle ends, "no total yet" must not read as "reduce finished".
                total_records: AtomicU64::new(u64::MAX),
                records_read: Arc::new(AtomicU64::new(0)),
            },
            done: AtomicBool::new(false),
            activity: Arc::new(AtomicU64::new(0)),
            reported_activity: AtomicU64::new(0),
        }
    }

    /// The fraction done, 0.0 ..= 1.0.
    pub fn fraction(&self) -> f64 {
        if self.done.load(Ordering::Relaxed) {
            return 1.0;
        }
        match &self.kind {
            Kind::Map {
                split_length,
                consumed,
            } => map_fraction(consumed.load(Ordering::Relaxed), *split_length),
            Kind::Reduce {
                num_maps,
                fetched,
                total_records,
                records_read,
            } => {
                let total = total_records.load(Ordering::Relaxed);
                let read = records_read.load(Ordering::Relaxed);
                reduce_fraction(
                    fetched.load(Ordering::Relaxed),
                    *num_maps,
                    total != u64::MAX && read > 0,
                    read,
                    if total == u64::MAX { 0 } else { total },
                )
            }
        }
    }

    /// The work code did something (read, fetched, merged, polled): the attempt is alive.
    pub fn mark_active(&self) {
        self.activity.fetch_add(1, Ordering::Relaxed);
    }

    /// For the heartbeat: whether the work was marked active since the previous call.
    pub fn take_activity(&self) -> bool {
        let now = self.activity.load(Ordering::Relaxed);
        self.reported_activity.swap(now, Ordering::Relaxed) != now
    }

    /// The work is complete (the output is written), whatever the counters said.
    pub fn set_done(&self) {
        self.done.store(true, Ordering::Relaxed);
    }

    /// Reduce: `n` maps have been fetched so far.
    pub fn set_fetched_maps(&self, n: u32) {
        if let Kind::Reduce { fetched, .. } = &self.kind {
            fetched.store(n, Ordering::Relaxed);
        }
    }

    /// Reduce: the shuffle is over and the merge feeds `total` records to the reducer.
    pub fn set_shuffle_done(&self, total: u64) {
        if let Kind::Reduce {
            num_maps,
            fetched,
            total_records,
            ..
        } = &self.kind
        {
            fetched.store(*num_maps, Ordering::Relaxed);
            total_records.store(total, Ordering::Relaxed);
        }
    }

    /// Reduce: the counter the reduce phase stores its merged records read in
    /// (`ShuffleBuffer::publish_records_read`).
    pub fn records_read_counter(&self) -> Option<Arc<AtomicU64>> {
        match &self.kind {
            Kind::Reduce { records_read, .. } => Some(records_read.clone()),
            Kind::Map { .. } => None,
        }
    }

    /// Map: wraps the split's reader so it publishes the bytes it has consumed.
    pub fn track_reader<'a>(&self, inner: Box<dyn RecordReader + Send + 'a>) -> ProgressReader<'a> {
        let consumed = match &self.kind {
            Kind::Map { consumed, .. } => consumed.clone(),
            // A reduce has no split; the counter is simply not read.
            Kind::Reduce { .. } => Arc::new(AtomicU64::new(0)),
        };
        ProgressReader {
            inner,
            consumed,
            activity: self.activity.clone(),
        }
    }
}

/// A record reader that publishes how many bytes of its source it has consumed.
pub struct ProgressReader<'a> {
    inner: Box<dyn RecordReader + Send + 'a>,
    consumed: Arc<AtomicU64>,
    activity: Arc<AtomicU64>,
}

impl RecordReader for ProgressReader<'_> {
    fn next_record(&mut self) -> Result<Option<Record<'_>>, FormatError> {
        // Published before the call: the returned record borrows the reader, so the figure
        // lags one record behind, which a once-a-second report cannot tell apart.
        self.consumed
            .store(self.inner.bytes_consumed(), Ordering::Relaxed);
        self.activity.fetch_add(1, Ordering::Relaxed);
        self.inner.next_record()
    }

    fn bytes_consumed(&self) -> u64 {
        self.inner.bytes_consumed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_progress_is_bytes_over_split_length() {
        assert_eq!(map_fraction(0, 100), 0.0);
        assert_eq!(map_fraction(25, 100), 0.25);
        // A line read past the split's end does not push it over 1.
        assert_eq!(map_fraction(130, 100), 1.0);
        assert_eq!(map_fraction(10, 0), 0.0);
    }

    #[test]
    fn reduce_progress_has_three_equal_phases() {
        let third = 1.0 / 3.0;
        assert_eq!(reduce_fraction(0, 4, false, 0, 0), 0.0);
        assert!((reduce_fraction(2, 4, false, 0, 0) - third / 2.0).abs() < 1e-9);
        assert!((reduce_fraction(4, 4, false, 0, 100) - third).abs() < 1e-9);
        assert!((reduce_fraction(4, 4, true, 50, 100) - (2.0 * third + third / 2.0)).abs() < 1e-9);
        assert!((reduce_fraction(4, 4, true, 100, 100) - 1.0).abs() < 1e-9);
        // A job without maps has nothing to shuffle.
        assert!((reduce_fraction(0, 0, false, 0, 0) - third).abs() < 1e-9);
    }

    #[test]
    fn shared_reduce_progress_moves_through_the_phases() {
        let p = TaskProgress::reduce(2);
        assert_eq!(p.fraction(), 0.0);
        p.set_fetched_maps(1);
        assert!((p.fraction() - 1.0 / 6.0).abs() < 1e-9);
        p.set_shuffle_done(10);
        assert!((p.fraction() - 1.0 / 3.0).abs() < 1e-9, "merging");
        let read = p.records_read_counter().expect("reduce counter");
        read.store(5, Ordering::Relaxed);
        assert!((p.fraction() - 5.0 / 6.0).abs() < 1e-9);
        p.set_done();
        assert_eq!(p.fraction(), 1.0);
    }

    struct Lines {
        left: u32,
        consumed: u64,
    }

    impl RecordReader for Lines {
        fn next_record(&mut self) -> Result<Option<Record<'_>>, FormatError> {
            if self.left == 0 {
                return Ok(None);
            }
            self.left -= 1;
            self.consumed += 10;
            Ok(Some((b"k", b"v")))
        }
        fn bytes_consumed(&self) -> u64 {
            self.consumed
        }
    }

    #[test]
    fn activity_is_reported_once_per_stretch_of_work() {
        let p = TaskProgress::reduce(3);
        assert!(!p.take_activity(), "nothing done yet");
        p.mark_active();
        p.mark_active();
        assert!(p.take_activity());
        assert!(
            !p.take_activity(),
            "already reported; the heartbeat alone is no work"
        );
        p.mark_active();
        assert!(p.take_activity());
        // Reading records is work too.
        let m = TaskProgress::map(20);
        let mut reader = m.track_reader(Box::new(Lines {
            left: 1,
            consumed: 0,
        }));
        assert!(!m.take_activity());
        reader.next_record().expect("record");
        assert!(m.take_activity());
    }

    #[test]
    fn tracked_reader_publishes_consumed_bytes() {
        let p = TaskProgress::map(40);
        let mut reader = p.track_reader(Box::new(Lines {
            left: 4,
            consumed: 0,
        }));
        let mut seen = 0;
        while reader.next_record().expect("record").is_some() {
            seen += 1;
        }
        assert_eq!(seen, 4);
        // The last call (the one that found the end) published all 40 bytes.
        assert_eq!(p.fraction(), 1.0);
        assert_eq!(reader.bytes_consumed(), 40);
    }
}
