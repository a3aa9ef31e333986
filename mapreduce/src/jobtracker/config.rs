//! The JobTracker's knobs, read from the job configuration under Hadoop's key names where Hadoop
//! has one (`mapreduce.map.maxattempts`, …) and `sheaf.jobtracker.*` where it does not.

use crate::attempts::{AttemptPolicy, SpeculationPolicy};
use std::collections::BTreeMap;

/// An amount of container resources (mirrors the ResourceManager's `Resource`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Resource {
    /// Memory in MB.
    pub memory_mb: u64,
    /// Virtual cores.
    pub vcores: u32,
}

/// A job configuration value the JobTracker cannot use.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum JobConfigError {
    /// Not parseable as the expected type.
    #[error("job configuration {key}={value}: {expected} (fix the value or drop the key)")]
    BadValue {
        /// The key.
        key: String,
        /// Its value.
        value: String,
        /// What was expected.
        expected: &'static str,
    },
}

/// Scheduling, retry and speculation settings of one job.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct JobConfig {
    /// Failed attempts after which a map task fails the job (`mapreduce.map.maxattempts`, 4).
    pub max_map_attempts: u32,
    /// Same for reduces (`mapreduce.reduce.maxattempts`, 4).
    pub max_reduce_attempts: u32,
    /// Fraction of maps done before reducers are requested
    /// (`mapreduce.job.reduce.slowstart.completedmaps`, 0.05).
    pub reduce_slowstart: f64,
    /// Speculate slow maps (`mapreduce.map.speculative`, true).
    pub map_speculative: bool,
    /// Speculate slow reduces (`mapreduce.reduce.speculative`, true).
    pub reduce_speculative: bool,
    /// Fraction of a phase's tasks that must be done before its stragglers are speculated
    /// (`sheaf.jobtracker.speculative.start-fraction`, 0.75).
    pub speculation_start_fraction: f64,
    /// An attempt is slow when its progress rate is below this fraction of the phase's median
    /// rate (`sheaf.jobtracker.speculative.slow-rate-fraction`, 0.5).
    pub speculation_slow_rate_fraction: f64,
    /// An attempt younger than this is never judged slow: early rates are noise
    /// (`sheaf.jobtracker.speculative.minimum-runtime-ms`, 1000).
    pub speculation_min_runtime_ms: u64,
    /// At most this fraction of a phase's tasks run a speculative twin at once, and at least one
    /// (`mapreduce.job.speculative.speculative-cap-total-tasks`, 0.1).
    pub speculative_cap_fraction: f64,
    /// An attempt without progress for this long is killed and counts as failed; 0 disables
    /// (`mapreduce.task.timeout`, 600000 ms).
    pub task_timeout_ms: u64,
    /// Failed attempts on one host after which the job avoids the host
    /// (`mapreduce.job.maxtaskfailures.per.tracker`, 3).
    pub node_failure_limit: u32,
    /// Fetch-failure reports for one map output after which the map is re-run
    /// (`sheaf.jobtracker.max-fetch-failures-notifications`, 3).
    pub fetch_failures_before_rerun: u32,
    /// Container offers an attempt may decline for a better host (another node after a failure,
    /// not a blacklisted one) before it takes whatever comes
    /// (`sheaf.jobtracker.max-declined-offers`, 3).
    pub max_declined_offers: u32,
    /// Container size for maps (`mapreduce.map.memory.mb` 1024, `mapreduce.map.cpu.vcores` 1).
    pub map_resource: Resource,
    /// Container size for reduces (`mapreduce.reduce.memory.mb`, `mapreduce.reduce.cpu.vcores`).
    pub reduce_resource: Resource,
    /// How long a map may wait for a container while reducers hold theirs before the newest
    /// reducer is killed to make room, and the least time between two such kills
    /// (`mapreduce.job.reducer.preempt.delay.sec`, set in seconds; 10 s). Hadoop's default is 0
    /// (preempt at once); Sheaf knows nothing of cluster headroom, so it waits a little for a
    /// container to come free on its own before throwing reduce work away. 0 preempts at once.
    #[serde(default = "default_reducer_preempt_delay_ms")]
    pub reducer_preempt_delay_ms: u64,
}

/// Default of [`JobConfig::reducer_preempt_delay_ms`] (also for histories written before it).
fn default_reducer_preempt_delay_ms() -> u64 {
    10_000
}

impl Default for JobConfig {
    fn default() -> Self {
        JobConfig {
            max_map_attempts: 4,
            max_reduce_attempts: 4,
            reduce_slowstart: 0.05,
            map_speculative: true,
            reduce_speculative: true,
            speculation_start_fraction: 0.75,
            speculation_slow_rate_fraction: 0.5,
            speculation_min_runtime_ms: 1000,
            speculative_cap_fraction: 0.1,
            task_timeout_ms: 600_000,
            node_failure_limit: 3,
            fetch_failures_before_rerun: 3,
            max_declined_offers: 3,
            map_resource: Resource {
                memory_mb: 1024,
                vcores: 1,
            },
            reduce_resource: Resource {
                memory_mb: 1024,
                vcores: 1,
            },
            reducer_preempt_delay_ms: default_reducer_preempt_delay_ms(),
        }
    }
}

fn parse<T: std::str::FromStr>(
    conf: &BTreeMap<String, String>,
    key: &str,
    expected: &'static str,
    slot: &mut T,
) -> Result<(), JobConfigError> {
    if let Some(value) = conf.get(key) {
        *slot = value.trim().parse().map_err(|_| JobConfigError::BadValue {
            key: key.to_string(),
            value: value.clone(),
            expected,
        })?;
    }
    Ok(())
}

fn fraction(
    conf: &BTreeMap<String, String>,
    key: &str,
    slot: &mut f64,
) -> Result<(), JobConfigError> {
    let mut v = *slot;
    parse(conf, key, "a number between 0 and 1", &mut v)?;
    if !(0.0..=1.0).contains(&v) {
        return Err(JobConfigError::BadValue {
            key: key.to_string(),
            value: v.to_string(),
            expected: "a number between 0 and 1",
        });
    }
    *slot = v;
    Ok(())
}

impl JobConfig {
    /// The attempt bookkeeping's limits for this job (maps and reduces set their own attempt
    /// limits per task).
    pub fn attempt_policy(&self) -> AttemptPolicy {
        AttemptPolicy {
            max_attempts: self.max_map_attempts,
            node_failure_limit: self.node_failure_limit,
            timeout_ms: self.task_timeout_ms,
            speculation: SpeculationPolicy {
                start_fraction: self.speculation_start_fraction,
                slow_rate_fraction: self.speculation_slow_rate_fraction,
                min_runtime_ms: self.speculation_min_runtime_ms,
                cap_fraction: self.speculative_cap_fraction,
            },
        }
    }

    /// The defaults overridden by whatever keys `conf` sets.
    pub fn from_conf(conf: &BTreeMap<String, String>) -> Result<JobConfig, JobConfigError> {
        const COUNT: &str = "a whole number";
        const FLAG: &str = "true or false";
        let mut c = JobConfig::default();
        parse(
            conf,
            "mapreduce.map.maxattempts",
            COUNT,
            &mut c.max_map_attempts,
        )?;
        parse(
            conf,
            "mapreduce.reduce.maxattempts",
            COUNT,
            &mut c.max_reduce_attempts,
        )?;
        fraction(
            conf,
            "mapreduce.job.reduce.slowstart.completedmaps",
            &mut c.reduce_slowstart,
        )?;
        parse(
            conf,
            "mapreduce.map.speculative",
            FLAG,
            &mut c.map_speculative,
        )?;
        parse(
            conf,
            "mapreduce.reduce.speculative",
            FLAG,
            &mut c.reduce_speculative,
        )?;
        fraction(
            conf,
            "sheaf.jobtracker.speculative.start-fraction",
            &mut c.speculation_start_fraction,
        )?;
        fraction(
            conf,
            "sheaf.jobtracker.speculative.slow-rate-fraction",
            &mut c.speculation_slow_rate_fraction,
        )?;
        parse(
            conf,
            "sheaf.jobtracker.speculative.minimum-runtime-ms",
            COUNT,
            &mut c.speculation_min_runtime_ms,
        )?;
        fraction(
            conf,
            "mapreduce.job.speculative.speculative-cap-total-tasks",
            &mut c.speculative_cap_fraction,
        )?;
        parse(
            conf,
            "mapreduce.task.timeout",
            COUNT,
            &mut c.task_timeout_ms,
        )?;
        parse(
            conf,
            "mapreduce.job.maxtaskfailures.per.tracker",
            COUNT,
            &mut c.node_failure_limit,
        )?;
        parse(
            conf,
            "sheaf.jobtracker.max-fetch-failures-notifications",
            COUNT,
            &mut c.fetch_failures_before_rerun,
        )?;
        parse(
            conf,
            "sheaf.jobtracker.max-declined-offers",
            COUNT,
            &mut c.max_declined_offers,
        )?;
        parse(
            conf,
            "mapreduce.map.memory.mb",
            COUNT,
            &mut c.map_resource.memory_mb,
        )?;
        parse(
            conf,
            "mapreduce.map.cpu.vcores",
            COUNT,
            &mut c.map_resource.vcores,
        )?;
        parse(
            conf,
            "mapreduce.reduce.memory.mb",
            COUNT,
            &mut c.reduce_resource.memory_mb,
        )?;
        parse(
            conf,
            "mapreduce.reduce.cpu.vcores",
            COUNT,
            &mut c.reduce_resource.vcores,
        )?;
        let mut preempt_delay_sec = c.reducer_preempt_delay_ms / 1000;
        parse(
            conf,
            "mapreduce.job.reducer.preempt.delay.sec",
            COUNT,
            &mut preempt_delay_sec,
        )?;
        c.reducer_preempt_delay_ms = preempt_delay_sec.saturating_mul(1000);
        // At least one attempt, or no task could ever run.
        c.max_map_attempts = c.max_map_attempts.max(1);
        c.max_reduce_attempts = c.max_reduce_attempts.max(1);
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hadoop_keys_override_defaults_and_bad_values_are_refused() {
        let mut conf = BTreeMap::new();
        conf.insert("mapreduce.map.maxattempts".to_string(), "2".to_string());
        conf.insert("mapreduce.map.speculative".to_string(), "false".to_string());
        conf.insert("mapreduce.task.timeout".to_string(), "5000".to_string());
        let c = JobConfig::from_conf(&conf).expect("valid");
        assert_eq!(c.max_map_attempts, 2);
        assert!(!c.map_speculative);
        assert!(c.reduce_speculative);
        assert_eq!(c.task_timeout_ms, 5000);
        assert_eq!(c.node_failure_limit, 3);
        assert_eq!(c.reducer_preempt_delay_ms, 10_000);
        conf.insert(
            "mapreduce.job.reducer.preempt.delay.sec".to_string(),
            "0".to_string(),
        );
        assert_eq!(
            JobConfig::from_conf(&conf)
                .expect("valid")
                .reducer_preempt_delay_ms,
            0
        );

        conf.insert(
            "mapreduce.job.reduce.slowstart.completedmaps".to_string(),
            "1.5".to_string(),
        );
        assert!(JobConfig::from_conf(&conf).is_err());
        conf.remove("mapreduce.job.reduce.slowstart.completedmaps");
        conf.insert(
            "mapreduce.reduce.maxattempts".to_string(),
            "four".to_string(),
        );
        let err = JobConfig::from_conf(&conf).expect_err("not a number");
        assert!(err
            .to_string()
            .contains("mapreduce.reduce.maxattempts=four"));
    }
}
