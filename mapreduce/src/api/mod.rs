//! What a job author writes against: mapper, reducer, combiner, partitioner, key comparator,
//! job configuration, counters and the emitter. Keys and values are byte slices.
//!
//! The engine (`task/`, `local/`) only ever sees these traits as trait objects, whether the job
//! is compiled in (tests) or loaded from a plugin library through the C ABI (`api::abi`).

pub mod abi;
pub mod codec;
pub mod partition;
pub mod plugin;

use std::cmp::Ordering;
use std::collections::BTreeMap;

/// Conf key: `false` turns the job's combiner off (Hadoop-compatible name).
pub const COMBINER_ENABLED_KEY: &str = "mapreduce.combiner.enabled";

/// Whether `conf` allows the combiner (anything but `false` does).
pub fn combiner_enabled(conf: &JobConf) -> bool {
    conf.get(COMBINER_ENABLED_KEY) != Some("false")
}

/// A failure raised by user code or by the engine while running a task.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TaskError(pub String);

impl TaskError {
    /// Builds an error from any message.
    pub fn new(msg: impl Into<String>) -> Self {
        TaskError(msg.into())
    }
}

/// The job's configuration as string key/values (`--conf k=v`), visible to every task.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JobConf {
    /// All entries, sorted by key.
    pub entries: BTreeMap<String, String>,
}

impl JobConf {
    /// Returns the value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.get(key).map(String::as_str)
    }
    /// Sets `key` to `value`.
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.entries.insert(key.into(), value.into());
    }
    /// Adds every entry of `defaults` whose key is not set here (user settings win).
    pub fn apply_defaults(&mut self, defaults: &JobConf) {
        for (k, v) in &defaults.entries {
            self.entries.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
}

/// Receives the (key, value) records a mapper, combiner or reducer produces.
pub trait Emitter {
    /// Emits one record.
    fn emit(&mut self, key: &[u8], value: &[u8]) -> Result<(), TaskError>;
}

/// Per-task services handed to user code: configuration and user counters.
pub trait TaskContext {
    /// The job configuration.
    fn conf(&self) -> &JobConf;
    /// Adds `amount` to the user counter `group`/`name`.
    fn incr_counter(&mut self, group: &str, name: &str, amount: i64);
}

/// A lending iterator over the values of one key group.
pub trait ValueIter {
    /// The next value of the group, or `None` at its end.
    fn next_value(&mut self) -> Option<&[u8]>;
}

/// Turns input records into intermediate (key, value) records.
pub trait Mapper: Send {
    /// Called once per input record.
    fn map(
        &mut self,
        key: &[u8],
        value: &[u8],
        out: &mut dyn Emitter,
        ctx: &mut dyn TaskContext,
    ) -> Result<(), TaskError>;
    /// Called once after the last record of the split (in-mapper combining flushes here).
    fn cleanup(
        &mut self,
        _out: &mut dyn Emitter,
        _ctx: &mut dyn TaskContext,
    ) -> Result<(), TaskError> {
        Ok(())
    }
}

/// Folds all values of one key into output records. A combiner is a `Reducer` too.
pub trait Reducer: Send {
    /// Called once per key group, in key order.
    fn reduce(
        &mut self,
        key: &[u8],
        values: &mut dyn ValueIter,
        out: &mut dyn Emitter,
        ctx: &mut dyn TaskContext,
    ) -> Result<(), TaskError>;
    /// Called once after the last group.
    fn cleanup(
        &mut self,
        _out: &mut dyn Emitter,
        _ctx: &mut dyn TaskContext,
    ) -> Result<(), TaskError> {
        Ok(())
    }
}

/// Chooses the reduce partition of an intermediate key.
pub trait Partitioner: Send + Sync {
    /// A partition in `0..num_partitions`.
    fn partition(&self, key: &[u8], value: &[u8], num_partitions: u32) -> u32;
}

/// Orders intermediate keys (bytewise by default); also decides which keys group together.
pub trait KeyComparator: Send + Sync {
    /// Compares two keys.
    fn compare(&self, a: &[u8], b: &[u8]) -> Ordering;
}

/// A job as the engine sees it: factories for its parts. Implemented by compiled-in jobs and by
/// a loaded plugin library alike.
pub trait JobDefinition: Send + Sync {
    /// A fresh mapper for one map task.
    fn new_mapper(&self, conf: &JobConf) -> Result<Box<dyn Mapper>, TaskError>;
    /// A fresh reducer for one reduce task.
    fn new_reducer(&self, conf: &JobConf) -> Result<Box<dyn Reducer>, TaskError>;
    /// A fresh combiner, if the job has one (and `mapreduce.combiner.enabled` is not `false`).
    fn new_combiner(&self, conf: &JobConf) -> Result<Option<Box<dyn Reducer>>, TaskError>;
    /// The job's partitioner, if it overrides the default hash partitioner.
    fn partitioner(&self, conf: &JobConf) -> Result<Option<Box<dyn Partitioner>>, TaskError>;
    /// The job's key comparator, if it overrides bytewise order.
    fn comparator(&self, conf: &JobConf) -> Result<Option<Box<dyn KeyComparator>>, TaskError>;
    /// A short name for logs and job history.
    fn name(&self) -> &str {
        "job"
    }
    /// Configuration the job needs unless the user overrides it (e.g. its input format); the
    /// driver applies it with [`JobConf::apply_defaults`] before splitting the input.
    fn default_conf(&self) -> JobConf {
        JobConf::default()
    }
}
