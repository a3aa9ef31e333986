//! Reduce-side shuffle settings, read from the job configuration with Hadoop's key names.

use std::time::Duration;

use sheaf_rpc::RetryPolicy;

use crate::api::JobConf;
use crate::task::settings::{TaskSettings, REDUCE_MEMORY_MB};

use super::error::ShuffleError;

/// Map outputs fetched at the same time by one reducer.
pub const PARALLEL_COPIES: &str = "mapreduce.reduce.shuffle.parallel-copies";
/// Failed fetches of one map output before it is reported as a [`super::FetchFailure`].
pub const MAX_FETCH_FAILURES: &str = "mapreduce.reduce.shuffle.max-fetch-failures";
/// Wait before the first retry of a failed fetch, in milliseconds (doubled each retry).
pub const RETRY_DELAY_MS: &str = "mapreduce.reduce.shuffle.retry-delay-ms";
/// Upper bound of one retry wait, in milliseconds.
pub const RETRY_DELAY_MAX_MS: &str = "mapreduce.reduce.shuffle.retry-delay-max-ms";
/// Connection set-up deadline in milliseconds.
pub const CONNECT_TIMEOUT_MS: &str = "mapreduce.reduce.shuffle.connect.timeout";
/// Longest silence while reading one reply, in milliseconds.
pub const READ_TIMEOUT_MS: &str = "mapreduce.reduce.shuffle.read.timeout";
/// Client QUIC endpoints a fetcher spreads its connections over (quinn drives each endpoint
/// from one task, so one per core spreads packet processing).
pub const ENDPOINTS: &str = "mapreduce.reduce.shuffle.endpoints";

/// Parsed shuffle settings of one reduce task.
#[derive(Debug, Clone)]
pub struct ShuffleSettings {
    /// Concurrent fetches, at least 1.
    pub parallel_copies: usize,
    /// Bytes of fetched segments kept in memory; later segments go to disk whole. Same key and
    /// default as the reduce task's [`TaskSettings::reduce_memory_bytes`], so the
    /// `ShuffleBuffer` the segments are handed to never has to spill them again.
    pub memory_budget: usize,
    /// Failed fetches of one map output before it is reported (at least 1).
    pub max_fetch_failures: u32,
    /// Backoff between fetches of a failing map output (`attempts` = `max_fetch_failures`).
    pub retry: RetryPolicy,
    /// Connection set-up deadline.
    pub connect_timeout: Duration,
    /// Longest silence while reading a reply.
    pub read_timeout: Duration,
    /// Client endpoints (at least 1).
    pub endpoints: usize,
}

impl Default for ShuffleSettings {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        ShuffleSettings {
            parallel_copies: 5,
            memory_budget: TaskSettings::default().reduce_memory_bytes,
            max_fetch_failures: 3,
            retry: RetryPolicy {
                attempts: 3,
                initial_backoff: Duration::from_millis(200),
                max_backoff: Duration::from_secs(10),
            },
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(60),
            endpoints: cores.min(5),
        }
    }
}

fn parse<T: std::str::FromStr>(conf: &JobConf, key: &str, default: T) -> Result<T, ShuffleError> {
    match conf.get(key) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse()
            .map_err(|_| ShuffleError::Config(format!("{key}={v} is not a valid value"))),
    }
}

fn at_least<T: PartialOrd + std::fmt::Display>(key: &str, v: T, min: T) -> Result<T, ShuffleError> {
    if v < min {
        return Err(ShuffleError::Config(format!(
            "{key}={v} must be at least {min}"
        )));
    }
    Ok(v)
}

impl ShuffleSettings {
    /// Reads and validates the shuffle settings in `conf`, defaulting what is unset.
    pub fn from_conf(conf: &JobConf) -> Result<Self, ShuffleError> {
        let d = ShuffleSettings::default();
        let memory_budget = TaskSettings::from_conf(conf)
            .map_err(|e| ShuffleError::Config(format!("{REDUCE_MEMORY_MB}: {e}")))?
            .reduce_memory_bytes;
        let parallel_copies = at_least(
            PARALLEL_COPIES,
            parse(conf, PARALLEL_COPIES, d.parallel_copies)?,
            1,
        )?;
        let max_fetch_failures = at_least(
            MAX_FETCH_FAILURES,
            parse(conf, MAX_FETCH_FAILURES, d.max_fetch_failures)?,
            1,
        )?;
        let initial: u64 = parse(
            conf,
            RETRY_DELAY_MS,
            d.retry.initial_backoff.as_millis() as u64,
        )?;
        let max: u64 = parse(
            conf,
            RETRY_DELAY_MAX_MS,
            d.retry.max_backoff.as_millis() as u64,
        )?;
        let connect: u64 = at_least(
            CONNECT_TIMEOUT_MS,
            parse(
                conf,
                CONNECT_TIMEOUT_MS,
                d.connect_timeout.as_millis() as u64,
            )?,
            1,
        )?;
        let read: u64 = at_least(
            READ_TIMEOUT_MS,
            parse(conf, READ_TIMEOUT_MS, d.read_timeout.as_millis() as u64)?,
            1,
        )?;
        let endpoints = at_least(ENDPOINTS, parse(conf, ENDPOINTS, d.endpoints)?, 1)?;
        Ok(ShuffleSettings {
            parallel_copies,
            memory_budget,
            max_fetch_failures,
            retry: RetryPolicy {
                attempts: max_fetch_failures,
                initial_backoff: Duration::from_millis(initial),
                max_backoff: Duration::from_millis(max.max(initial)),
            },
            connect_timeout: Duration::from_millis(connect),
            read_timeout: Duration::from_millis(read),
            endpoints,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let s = ShuffleSettings::from_conf(&JobConf::default()).expect("defaults");
        assert_eq!(s.parallel_copies, 5);
        assert_eq!(s.max_fetch_failures, 3);
        assert_eq!(s.memory_budget, TaskSettings::default().reduce_memory_bytes);
        let mut conf = JobConf::default();
        conf.set(PARALLEL_COPIES, "9");
        conf.set(REDUCE_MEMORY_MB, "2");
        conf.set(MAX_FETCH_FAILURES, "4");
        let s = ShuffleSettings::from_conf(&conf).expect("overrides");
        assert_eq!(
            (s.parallel_copies, s.memory_budget, s.max_fetch_failures),
            (9, 2 << 20, 4)
        );
        assert_eq!(s.retry.attempts, 4);
        conf.set(PARALLEL_COPIES, "0");
        assert!(ShuffleSettings::from_conf(&conf).is_err());
        conf.set(PARALLEL_COPIES, "many");
        assert!(ShuffleSettings::from_conf(&conf).is_err());
    }
}
