//! A word count that is slow on exactly one split, for speculative-execution tests.
//!
//! The slow split is the one whose input holds a line [`SLOW_MARKER`]. From that line on, its
//! mapper sleeps [`PER_RECORD_MS_KEY`] (default 100 ms) per record until [`TOTAL_MS_KEY`]
//! (default 30 s) is spent; what is left of that budget is slept in cleanup in the same small
//! steps. The split's progress therefore keeps moving, slowly, as a straggler's would.
//!
//! Only the first [`SLOW_ATTEMPTS_KEY`] attempts (default 1) of the task are slow: the attempt
//! number comes from Hadoop's `mapreduce.task.attempt.id` (`attempt_…_m_000003_1`), which the
//! cluster task runner sets; without it (the local runner) the attempt counts as the first. So
//! a speculative twin of the straggler is fast and wins.
//!
//! Output: `word\tcount` like the wordcount plugin (the marker line counts as a word too), with
//! a summing combiner.

use std::time::Duration;

use sheaf_mapreduce::api::codec::{parse_u64, DecimalBuf};
use sheaf_mapreduce::api::{
    Emitter, JobConf, JobDefinition, KeyComparator, Mapper, Partitioner, Reducer, TaskContext,
    TaskError, ValueIter,
};

/// The input line that marks the slow split.
pub const SLOW_MARKER: &[u8] = b"SHEAF_SLOW_SPLIT";
/// Conf key: milliseconds the slow split sleeps in total (default 30000).
pub const TOTAL_MS_KEY: &str = "slowsplit.total-ms";
/// Conf key: milliseconds slept per record after the marker (default 100).
pub const PER_RECORD_MS_KEY: &str = "slowsplit.per-record-ms";
/// Conf key: attempts of the slow task that are slow (default 1: only the first).
pub const SLOW_ATTEMPTS_KEY: &str = "slowsplit.slow-attempts";
/// Hadoop's conf key naming the running attempt.
pub const ATTEMPT_ID_KEY: &str = "mapreduce.task.attempt.id";

fn conf_u64(conf: &JobConf, key: &str, default: u64) -> Result<u64, TaskError> {
    match conf.get(key) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse()
            .map_err(|_| TaskError::new(format!("{key}={v:?} is not a number"))),
    }
}

/// The attempt number at the end of `attempt_…_m_000003_1`; 0 when absent or malformed.
fn attempt_number(conf: &JobConf) -> u64 {
    conf.get(ATTEMPT_ID_KEY)
        .and_then(|id| id.rsplit('_').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

struct SlowSplitMapper {
    /// Whether this attempt may be slow at all.
    may_be_slow: bool,
    /// Set once the marker line was read.
    slow: bool,
    /// Sleep budget left, ms.
    left_ms: u64,
    per_record_ms: u64,
    digits: DecimalBuf,
}

impl SlowSplitMapper {
    fn nap(&mut self) {
        let step = self.per_record_ms.min(self.left_ms);
        if step > 0 {
            std::thread::sleep(Duration::from_millis(step));
            self.left_ms -= step;
        }
    }
}

impl Mapper for SlowSplitMapper {
    fn map(
        &mut self,
        _key: &[u8],
        line: &[u8],
        out: &mut dyn Emitter,
        _ctx: &mut dyn TaskContext,
    ) -> Result<(), TaskError> {
        if self.may_be_slow && !self.slow && line.trim_ascii() == SLOW_MARKER {
            self.slow = true;
        }
        if self.slow {
            self.nap();
        }
        let one = self.digits.format_u64(1);
        for word in line
            .split(|b| b.is_ascii_whitespace())
            .filter(|w| !w.is_empty())
        {
            out.emit(word, one)?;
        }
        Ok(())
    }

    fn cleanup(
        &mut self,
        _out: &mut dyn Emitter,
        _ctx: &mut dyn TaskContext,
    ) -> Result<(), TaskError> {
        while self.slow && self.left_ms > 0 {
            self.nap();
        }
        Ok(())
    }
}

/// Sums decimal counts (reducer and combiner).
struct SumReducer {
    digits: DecimalBuf,
}

impl Reducer for SumReducer {
    fn reduce(
        &mut self,
        key: &[u8],
        values: &mut dyn ValueIter,
        out: &mut dyn Emitter,
        _ctx: &mut dyn TaskContext,
    ) -> Result<(), TaskError> {
        let mut sum = 0u64;
        while let Some(v) = values.next_value() {
            sum += parse_u64(v).map_err(|e| TaskError::new(e.to_string()))?;
        }
        out.emit(key, self.digits.format_u64(sum))
    }
}

/// The job.
#[derive(Default)]
struct SlowSplitJob;

impl JobDefinition for SlowSplitJob {
    fn new_mapper(&self, conf: &JobConf) -> Result<Box<dyn Mapper>, TaskError> {
        let slow_attempts = conf_u64(conf, SLOW_ATTEMPTS_KEY, 1)?;
        let per_record_ms = conf_u64(conf, PER_RECORD_MS_KEY, 100)?.max(1);
        Ok(Box::new(SlowSplitMapper {
            may_be_slow: attempt_number(conf) < slow_attempts,
            slow: false,
            left_ms: conf_u64(conf, TOTAL_MS_KEY, 30_000)?,
            per_record_ms,
            digits: DecimalBuf::new(),
        }))
    }
    fn new_reducer(&self, _conf: &JobConf) -> Result<Box<dyn Reducer>, TaskError> {
        Ok(Box::new(SumReducer {
            digits: DecimalBuf::new(),
        }))
    }
    fn new_combiner(&self, _conf: &JobConf) -> Result<Option<Box<dyn Reducer>>, TaskError> {
        Ok(Some(Box::new(SumReducer {
            digits: DecimalBuf::new(),
        })))
    }
    fn partitioner(&self, _conf: &JobConf) -> Result<Option<Box<dyn Partitioner>>, TaskError> {
        Ok(None)
    }
    fn comparator(&self, _conf: &JobConf) -> Result<Option<Box<dyn KeyComparator>>, TaskError> {
        Ok(None)
    }
    fn name(&self) -> &str {
        "slowsplit"
    }
}

sheaf_mapreduce::sheaf_plugin!(SlowSplitJob);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempt_number_comes_from_the_hadoop_attempt_id() {
        let mut conf = JobConf::default();
        assert_eq!(
            attempt_number(&conf),
            0,
            "local runs count as the first attempt"
        );
        conf.set(ATTEMPT_ID_KEY, "attempt_17_0002_m_000003_1");
        assert_eq!(attempt_number(&conf), 1);
    }
}
