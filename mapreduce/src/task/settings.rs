//! Engine settings read from the job configuration, with Hadoop-like keys and defaults.

use crate::api::JobConf;

use super::error::{EngineError, EngineResult};

/// Size of the map-side sort buffer in MiB (fractions allowed).
pub const SORT_BUFFER_MB: &str = "mapreduce.task.sort-buffer-mb";
/// Fill ratio of the sort buffer that starts a background spill.
pub const SPILL_PERCENT: &str = "mapreduce.map.sort.spill.percent";
/// Most segments merged at once; more segments need intermediate on-disk passes.
pub const MERGE_FACTOR: &str = "mapreduce.task.merge-factor";
/// Runs needed before the final map-side merge runs the combiner again.
pub const COMBINE_MIN_SPILLS: &str = "mapreduce.map.combine.minspills";
/// `false` disables the job's combiner.
pub const COMBINER_ENABLED: &str = "mapreduce.combiner.enabled";
/// Reduce-side memory (MiB) for fetched map-output segments before they are merged to disk.
pub const REDUCE_MEMORY_MB: &str = "mapreduce.reduce.shuffle.memory-mb";

/// Parsed engine settings of one job.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskSettings {
    /// Sort buffer budget in bytes (arena plus record metadata).
    pub sort_buffer_bytes: usize,
    /// Fill ratio in (0, 1] that triggers a spill.
    pub spill_percent: f64,
    /// Merge fan-in, at least 2.
    pub merge_factor: usize,
    /// Minimum runs for a combine during the final map-side merge.
    pub combine_min_spills: usize,
    /// Whether the combiner runs at all.
    pub combiner_enabled: bool,
    /// Reduce-side in-memory shuffle budget in bytes.
    pub reduce_memory_bytes: usize,
}

impl Default for TaskSettings {
    fn default() -> Self {
        TaskSettings {
            sort_buffer_bytes: 100 << 20,
            spill_percent: 0.80,
            merge_factor: 10,
            combine_min_spills: 3,
            combiner_enabled: true,
            reduce_memory_bytes: 128 << 20,
        }
    }
}

fn parse<T: std::str::FromStr>(conf: &JobConf, key: &str, default: T) -> EngineResult<T> {
    match conf.get(key) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse()
            .map_err(|_| EngineError::Config(format!("{key}={v} is not a valid value"))),
    }
}

impl TaskSettings {
    /// Reads and validates the settings in `conf`, defaulting what is unset.
    pub fn from_conf(conf: &JobConf) -> EngineResult<Self> {
        let d = TaskSettings::default();
        let mb: f64 = parse(conf, SORT_BUFFER_MB, 100.0)?;
        // Offsets in the sort buffer are u32.
        if !(mb > 0.0 && mb < 4000.0) {
            return Err(EngineError::Config(format!(
                "{SORT_BUFFER_MB}={mb} must be in (0, 4000)"
            )));
        }
        let spill_percent: f64 = parse(conf, SPILL_PERCENT, d.spill_percent)?;
        if !(spill_percent > 0.0 && spill_percent <= 1.0) {
            return Err(EngineError::Config(format!(
                "{SPILL_PERCENT}={spill_percent} must be in (0, 1]"
            )));
        }
        let merge_factor: usize = parse(conf, MERGE_FACTOR, d.merge_factor)?;
        if merge_factor < 2 {
            return Err(EngineError::Config(format!(
                "{MERGE_FACTOR}={merge_factor} must be at least 2"
            )));
        }
        let reduce_mb: f64 = parse(conf, REDUCE_MEMORY_MB, 128.0)?;
        if !(0.0..1.0e6).contains(&reduce_mb) {
            return Err(EngineError::Config(format!(
                "{REDUCE_MEMORY_MB}={reduce_mb} must be non-negative"
            )));
        }
        Ok(TaskSettings {
            sort_buffer_bytes: ((mb * (1u64 << 20) as f64) as usize).max(4096),
            spill_percent,
            merge_factor,
            combine_min_spills: parse(conf, COMBINE_MIN_SPILLS, d.combine_min_spills)?,
            combiner_enabled: parse(conf, COMBINER_ENABLED, true)?,
            reduce_memory_bytes: (reduce_mb * (1u64 << 20) as f64) as usize,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_hadoop_and_bad_values_are_refused() {
        let conf = JobConf::default();
        assert_eq!(
            TaskSettings::from_conf(&conf).expect("ok"),
            TaskSettings::default()
        );
        let mut conf = JobConf::default();
        conf.set(SORT_BUFFER_MB, "0.5");
        conf.set(MERGE_FACTOR, "3");
        let s = TaskSettings::from_conf(&conf).expect("ok");
        assert_eq!(s.sort_buffer_bytes, 512 << 10);
        assert_eq!(s.merge_factor, 3);
        conf.set(MERGE_FACTOR, "1");
        assert!(TaskSettings::from_conf(&conf).is_err());
        let mut conf = JobConf::default();
        conf.set(SPILL_PERCENT, "abc");
        let err = TaskSettings::from_conf(&conf).expect_err("bad");
        assert!(err.to_string().contains(SPILL_PERCENT));
    }
}
