//! Job and task counters with Hadoop's group and counter names, mergeable and serde-serializable so
//! the cluster can ship them over RPC.

use std::collections::BTreeMap;
use std::fmt;

/// Hadoop's group of framework counters (`org.apache.hadoop.mapreduce.TaskCounter`).
pub const TASK_GROUP: &str = "Map-Reduce Framework";
/// Hadoop's group of file-system byte counters (`FileSystemCounter`).
pub const FILE_SYSTEM_GROUP: &str = "File System Counters";

/// Records read by map tasks from their input splits.
pub const MAP_INPUT_RECORDS: &str = "MAP_INPUT_RECORDS";
/// Records emitted by mappers.
pub const MAP_OUTPUT_RECORDS: &str = "MAP_OUTPUT_RECORDS";
/// Serialized key and value bytes emitted by mappers.
pub const MAP_OUTPUT_BYTES: &str = "MAP_OUTPUT_BYTES";
/// Records fed to combiners.
pub const COMBINE_INPUT_RECORDS: &str = "COMBINE_INPUT_RECORDS";
/// Records emitted by combiners.
pub const COMBINE_OUTPUT_RECORDS: &str = "COMBINE_OUTPUT_RECORDS";
/// Records written to disk by spills and merges (map and reduce side), as Hadoop counts them.
pub const SPILLED_RECORDS: &str = "SPILLED_RECORDS";
/// Distinct key groups fed to reducers.
pub const REDUCE_INPUT_GROUPS: &str = "REDUCE_INPUT_GROUPS";
/// Records fed to reducers.
pub const REDUCE_INPUT_RECORDS: &str = "REDUCE_INPUT_RECORDS";
/// Records emitted by reducers.
pub const REDUCE_OUTPUT_RECORDS: &str = "REDUCE_OUTPUT_RECORDS";
/// Compressed map-output bytes moved to reducers.
pub const REDUCE_SHUFFLE_BYTES: &str = "REDUCE_SHUFFLE_BYTES";
/// Map output files handed to reducers.
pub const SHUFFLED_MAPS: &str = "SHUFFLED_MAPS";
/// Bytes read from the local file system (input, spills, merges).
pub const FILE_BYTES_READ: &str = "FILE_BYTES_READ";
/// Bytes written to the local file system (spills, merges, output).
pub const FILE_BYTES_WRITTEN: &str = "FILE_BYTES_WRITTEN";

/// Counter values by group, then by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counters {
    /// group -> name -> value.
    pub groups: BTreeMap<String, BTreeMap<String, i64>>,
}

impl Counters {
    /// Empty counters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `amount` to `group`/`name`, creating it at zero first.
    pub fn incr(&mut self, group: &str, name: &str, amount: i64) {
        // Look up before inserting so the hot path (existing counter) allocates nothing.
        if let Some(names) = self.groups.get_mut(group) {
            if let Some(v) = names.get_mut(name) {
                *v += amount;
                return;
            }
            names.insert(name.to_string(), amount);
            return;
        }
        self.groups
            .entry(group.to_string())
            .or_default()
            .insert(name.to_string(), amount);
    }

    /// Adds a framework counter (`Map-Reduce Framework` group).
    pub fn incr_task(&mut self, name: &str, amount: i64) {
        self.incr(TASK_GROUP, name, amount);
    }

    /// Adds a file-system counter.
    pub fn incr_fs(&mut self, name: &str, amount: i64) {
        self.incr(FILE_SYSTEM_GROUP, name, amount);
    }

    /// The value of `group`/`name`, zero when absent.
    pub fn get(&self, group: &str, name: &str) -> i64 {
        self.groups
            .get(group)
            .and_then(|g| g.get(name))
            .copied()
            .unwrap_or(0)
    }

    /// The value of a framework counter.
    pub fn task(&self, name: &str) -> i64 {
        self.get(TASK_GROUP, name)
    }

    /// Adds every counter of `other` into `self`.
    pub fn merge(&mut self, other: &Counters) {
        for (group, names) in &other.groups {
            for (name, value) in names {
                self.incr(group, name, *value);
            }
        }
    }

    /// True when no counter has been recorded.
    pub fn is_empty(&self) -> bool {
        self.groups.values().all(BTreeMap::is_empty)
    }
}

impl fmt::Display for Counters {
    /// Hadoop's layout: file-system group, framework group, then user groups, tab-indented.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total: usize = self.groups.values().map(BTreeMap::len).sum();
        writeln!(f, "Counters: {total}")?;
        let first = [FILE_SYSTEM_GROUP, TASK_GROUP];
        let ordered = first
            .iter()
            .filter_map(|g| self.groups.get_key_value(*g))
            .chain(
                self.groups
                    .iter()
                    .filter(|(g, _)| !first.contains(&g.as_str())),
            );
        for (group, names) in ordered {
            writeln!(f, "\t{group}")?;
            for (name, value) in names {
                writeln!(f, "\t\t{name}={value}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_adds_values_and_keeps_groups_apart() {
        let mut a = Counters::new();
        a.incr_task(MAP_INPUT_RECORDS, 3);
        a.incr("user", "x", 1);
        let mut b = Counters::new();
        b.incr_task(MAP_INPUT_RECORDS, 4);
        b.incr("user", "y", 2);
        a.merge(&b);
        assert_eq!(a.task(MAP_INPUT_RECORDS), 7);
        assert_eq!(a.get("user", "x"), 1);
        assert_eq!(a.get("user", "y"), 2);
        assert_eq!(a.get("nope", "x"), 0);
    }

    #[test]
    fn counters_roundtrip_through_messagepack() {
        let mut a = Counters::new();
        a.incr_fs(FILE_BYTES_READ, 42);
        let bytes = rmp_serde::to_vec(&a).expect("encode");
        let back: Counters = rmp_serde::from_slice(&bytes).expect("decode");
        assert_eq!(a, back);
    }

    #[test]
    fn display_lists_framework_group_with_hadoop_names() {
        let mut a = Counters::new();
        a.incr_task(REDUCE_INPUT_GROUPS, 5);
        a.incr("zz user", "hits", 1);
        let text = a.to_string();
        assert!(text.contains("\tMap-Reduce Framework\n\t\tREDUCE_INPUT_GROUPS=5"));
        assert!(text.find("Map-Reduce").unwrap() < text.find("zz user").unwrap());
    }
}
