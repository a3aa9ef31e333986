//! A session's settings: `-D key=value`, `sheaf.sql.*` keys Sheaf's own, `datafusion.*` passed
//! to DataFusion unchanged; and the size and duration forms they are written in.

use crate::error::{SqlError, SqlResult};
use std::path::PathBuf;

/// Settings of a session (`-D key=value`; `sheaf.sql.*` keys are Sheaf's, `datafusion.*` go to
/// DataFusion unchanged).
#[derive(Debug, Clone)]
pub struct SqlSettings {
    /// Partitions of a shuffle and the scan split target (`sheaf.sql.shuffle-partitions`).
    pub partitions: usize,
    /// A hash join whose build side is estimated below this many bytes is a broadcast join
    /// (`sheaf.sql.broadcast-threshold`, default 10 MB like Spark's `autoBroadcastJoinThreshold`).
    pub broadcast_threshold: u64,
    /// Memory budget of one task's operators, bytes (`sheaf.sql.task-memory`); past it, sorts,
    /// aggregates and joins spill.
    pub task_memory: usize,
    /// Where operators spill and local stage outputs go (`sheaf.sql.scratch-dir`).
    pub scratch_dir: PathBuf,
    /// Tasks run at once by the local executor (`sheaf.sql.local-parallelism`).
    pub local_parallelism: usize,
    /// The largest scan split, bytes (`sheaf.sql.split-size`, default 128 MiB like Spark's
    /// `maxPartitionBytes`); scans are split along DFS blocks, and cut further down to this.
    pub split_size: u64,
    /// How long a scan task waits for a slot on a host holding its block before it runs
    /// elsewhere (`sheaf.sql.locality-wait`, default 3 s like Spark's `spark.locality.wait`).
    pub locality_wait: std::time::Duration,
    /// Whether stage outputs are lz4-compressed (`sheaf.sql.shuffle-compression` = `lz4` or
    /// `none`, like Spark's `spark.shuffle.compress`).
    pub shuffle_compression: bool,
    /// `datafusion.*` settings passed through.
    pub datafusion: Vec<(String, String)>,
    /// Every setting as given, in order (executors of a cluster session apply the same).
    pub given: Vec<(String, String)>,
}

impl Default for SqlSettings {
    fn default() -> Self {
        SqlSettings {
            partitions: 4,
            broadcast_threshold: 10 * 1024 * 1024,
            task_memory: 512 * 1024 * 1024,
            scratch_dir: std::env::temp_dir().join("sheaf-sql"),
            local_parallelism: 2,
            split_size: 128 << 20,
            locality_wait: std::time::Duration::from_secs(3),
            shuffle_compression: true,
            datafusion: Vec::new(),
            given: Vec::new(),
        }
    }
}

impl SqlSettings {
    /// Applies one `key=value` setting.
    pub fn set(&mut self, key: &str, value: &str) -> SqlResult<()> {
        let bad = |what: &str| SqlError::Config(format!("-D {key}={value}: {what}"));
        match key {
            "sheaf.sql.shuffle-partitions" => {
                self.partitions = value.parse().ok().filter(|n| *n > 0).ok_or_else(|| bad("expected a positive number"))?
            }
            "sheaf.sql.broadcast-threshold" => {
                self.broadcast_threshold = parse_bytes(value).ok_or_else(|| bad("expected a size such as 10m"))?
            }
            "sheaf.sql.task-memory" => {
                self.task_memory = parse_bytes(value)
                    .filter(|n| *n >= 1 << 20)
                    .ok_or_else(|| bad("expected a size of at least 1m"))? as usize
            }
            "sheaf.sql.scratch-dir" => self.scratch_dir = PathBuf::from(value),
            "sheaf.sql.split-size" => {
                self.split_size = parse_bytes(value)
                    .filter(|n| *n >= 1 << 20)
                    .ok_or_else(|| bad("expected a size of at least 1m"))?
            }
            "sheaf.sql.locality-wait" => {
                self.locality_wait = parse_duration(value).ok_or_else(|| bad("expected a duration such as 3s or 500ms"))?
            }
            "sheaf.sql.shuffle-compression" => {
                self.shuffle_compression = match value {
                    "lz4" => true,
                    "none" => false,
                    _ => return Err(bad("expected lz4 or none")),
                }
            }
            "sheaf.sql.local-parallelism" => {
                self.local_parallelism = value.parse().ok().filter(|n| *n > 0).ok_or_else(|| bad("expected a positive number"))?
            }
            k if k.starts_with("datafusion.") => {
                self.datafusion.push((k.to_string(), value.to_string()))
            }
            "sheaf.sql.executors" | "sheaf.sql.executor-memory" | "sheaf.sql.executor-cores" => {
                // Read by the cluster client; checked there.
            }
            _ => {
                return Err(bad(
                    "unknown setting (sheaf.sql.shuffle-partitions, sheaf.sql.broadcast-threshold, sheaf.sql.task-memory, sheaf.sql.scratch-dir, sheaf.sql.local-parallelism, sheaf.sql.split-size, sheaf.sql.locality-wait, sheaf.sql.shuffle-compression, or any datafusion.* key)",
                ))
            }
        }
        self.given.push((key.to_string(), value.to_string()));
        Ok(())
    }
}

/// `3s`, `500ms`, `2m`, or plain milliseconds.
pub fn parse_duration(s: &str) -> Option<std::time::Duration> {
    let s = s.trim();
    let (n, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "ms"),
    };
    let n: u64 = n.parse().ok()?;
    let ms = match unit {
        "ms" => n,
        "s" => n.checked_mul(1000)?,
        "m" | "min" => n.checked_mul(60_000)?,
        _ => return None,
    };
    Some(std::time::Duration::from_millis(ms))
}

/// `10m`, `512k`, `1g`, or plain bytes.
pub fn parse_bytes(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let s = s.strip_suffix('b').unwrap_or(&s);
    let (digits, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => s.split_at(i),
        None => (s, ""),
    };
    let n: u64 = digits.parse().ok()?;
    let mult = match unit {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult)
}
