//! Scans split along DFS blocks, as Hadoop's `FileInputFormat` splits a job's input: every file
//! scan over `sheaf://` gets one file group (one task) per block, cut further when blocks are
//! bigger than the split target and packed together when files are small, so a scan task reads
//! bytes that one set of DataNodes holds. [`BlockHosts`] remembers which hosts hold each range;
//! the query master turns that into the preferred hosts of each scan task ([`task_hosts`]) and
//! schedules with delay scheduling (DATA_LOCAL / RACK_LOCAL, as MapReduce's maps).
//!
//! The same statement planned on the master and on an executor is split the same way: a DFS
//! file's blocks do not move while it is read (files are immutable once closed), and the groups
//! are in the plan's text, which the executors' fingerprint check compares.

use crate::dfs_store::dfs_path;
use crate::error::SqlResult;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfig, FileScanConfigBuilder};
use datafusion::datasource::source::DataSourceExec;
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties};
use sheaf_dfs::client::DfsClient;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Splits are never cut smaller than this (a task's fixed cost must stay small beside its work).
const MIN_SPLIT: u64 = 1 << 20;
/// Hosts a task prefers at most (a block's replication).
const PREFERRED_HOSTS: usize = 3;

/// The hosts holding each byte range the split scans read: `(object path, range start)` →
/// replica hosts (IP addresses, the NameNode's order).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockHosts {
    ranges: BTreeMap<(String, i64), Vec<String>>,
}

impl BlockHosts {
    /// The hosts of the range `file` reads (empty if it was not split along blocks).
    pub fn hosts_of(&self, file: &PartitionedFile) -> &[String] {
        let start = file.range.as_ref().map(|r| r.start).unwrap_or(0);
        self.ranges
            .get(&(file.object_meta.location.to_string(), start))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// True when no scan was split.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }
}

/// One piece of a file: a byte range inside one block.
#[derive(Debug, Clone)]
struct Piece {
    file: usize,
    start: u64,
    end: u64,
    hosts: Vec<String>,
    /// The whole of a small file (one block, under the target): may share a task with others.
    small_file: bool,
}

/// A file scan whose groups can be replaced by block ranges: over the DFS, splittable by byte
/// range (not compressed, no newlines inside CSV values), and with no order to keep.
fn splittable(config: &FileScanConfig) -> bool {
    config.object_store_url.as_str().starts_with("sheaf://")
        && config.file_source().supports_repartitioning()
        && !config.file_compression_type.is_compressed()
        && config.output_ordering.is_empty()
        && !config.preserve_order
        && matches!(config.file_source().file_type(), "csv" | "json" | "parquet")
}

/// The file scan `node` is, if it is one.
pub(crate) fn file_scan(node: &Arc<dyn ExecutionPlan>) -> Option<&FileScanConfig> {
    node.downcast_ref::<DataSourceExec>()?
        .data_source()
        .downcast_ref::<FileScanConfig>()
}

/// The files of a scan, each once, in the order the plan lists them.
fn files_of(config: &FileScanConfig) -> Vec<PartitionedFile> {
    let mut seen = std::collections::BTreeSet::new();
    let mut files = Vec::new();
    for group in &config.file_groups {
        for f in group.iter() {
            if seen.insert(f.object_meta.location.to_string()) {
                let mut whole = f.clone();
                whole.range = None;
                files.push(whole);
            }
        }
    }
    files
}

/// Rewrites every splittable DFS scan of `plan` into block-aligned file groups of about
/// `max(total / target_partitions, 1 MiB)` bytes, at most `split_size`; returns the new plan and
/// the hosts of every range.
pub async fn split_along_blocks(
    plan: Arc<dyn ExecutionPlan>,
    dfs: &DfsClient,
    target_partitions: usize,
    split_size: u64,
) -> SqlResult<(Arc<dyn ExecutionPlan>, BlockHosts)> {
    // First the blocks of every file scanned (the DFS calls), then a synchronous rewrite.
    let mut blocks: BTreeMap<String, Vec<(u64, u64, Vec<String>)>> = BTreeMap::new();
    let mut wanted = Vec::new();
    plan.apply(|node| {
        if let Some(config) = file_scan(node).filter(|c| splittable(c)) {
            for f in files_of(config) {
                wanted.push((f.object_meta.location.to_string(), f.object_meta.size));
            }
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    for (location, size) in wanted {
        if blocks.contains_key(&location) || size == 0 {
            continue;
        }
        let path = dfs_path(&object_store::path::Path::from(location.as_str()));
        let located = dfs.block_locations(&path, 0, size).await?;
        let list = located
            .blocks
            .iter()
            .map(|b| {
                let len = b.block.len;
                let hosts = b.locations.iter().map(|d| d.host.to_string()).collect();
                (b.offset, len, hosts)
            })
            .collect();
        blocks.insert(location, list);
    }
    let mut hosts = BlockHosts::default();
    let rewritten = plan.transform_up(|node| {
        let Some(config) = file_scan(&node).filter(|c| splittable(c)) else {
            return Ok(Transformed::no(node));
        };
        let files = files_of(config);
        let mut pieces = Vec::new();
        for (i, f) in files.iter().enumerate() {
            match blocks.get(&f.object_meta.location.to_string()) {
                Some(list) if !list.is_empty() => {
                    for (offset, len, h) in list {
                        pieces.push(Piece {
                            file: i,
                            start: *offset,
                            end: offset + len,
                            hosts: h.clone(),
                            small_file: list.len() == 1,
                        });
                    }
                }
                // An empty file, or one the NameNode lists no block for: read whole.
                _ => pieces.push(Piece {
                    file: i,
                    start: 0,
                    end: f.object_meta.size,
                    hosts: Vec::new(),
                    small_file: true,
                }),
            }
        }
        let total: u64 = pieces.iter().map(|p| p.end - p.start).sum();
        let target = (total / target_partitions.max(1) as u64)
            .max(MIN_SPLIT)
            .min(split_size.max(MIN_SPLIT));
        let groups = pack(cut(pieces, target), target);
        let mut file_groups = Vec::with_capacity(groups.len());
        for group in groups {
            let mut members = Vec::with_capacity(group.len());
            for p in group {
                let f = files[p.file].clone();
                // A piece that is the whole file is read without a range (Parquet then reads
                // its metadata once, not per range).
                let f = if p.start == 0 && p.end == f.object_meta.size {
                    f
                } else {
                    f.with_range(p.start as i64, p.end as i64)
                };
                if !p.hosts.is_empty() {
                    hosts.ranges.insert(
                        (f.object_meta.location.to_string(), p.start as i64),
                        p.hosts,
                    );
                }
                members.push(f);
            }
            file_groups.push(FileGroup::new(members));
        }
        if file_groups.is_empty() {
            return Ok(Transformed::no(node));
        }
        let config = FileScanConfigBuilder::from(config.clone())
            .with_file_groups(file_groups)
            .build();
        let exec: Arc<dyn ExecutionPlan> = DataSourceExec::from_data_source(config);
        Ok(Transformed::yes(exec))
    })?;
    Ok((rewritten.data, hosts))
}

/// Cuts pieces longer than `target` into equal parts of at most `target` bytes.
fn cut(pieces: Vec<Piece>, target: u64) -> Vec<Piece> {
    let mut out = Vec::with_capacity(pieces.len());
    for p in pieces {
        let len = p.end - p.start;
        let parts = len.div_ceil(target).max(1);
        let step = len.div_ceil(parts);
        let mut start = p.start;
        for _ in 0..parts {
            let end = (start + step).min(p.end);
            if end <= start && len > 0 {
                break;
            }
            out.push(Piece {
                file: p.file,
                start,
                end,
                hosts: p.hosts.clone(),
                small_file: p.small_file && parts == 1,
            });
            start = end;
        }
    }
    out
}

/// One task per block piece, as Hadoop's splits; consecutive small files are packed into groups
/// of at most `target` bytes (Spark packs small files into one partition the same way), keeping
/// their order. A piece of a many-block file never shares a task: its block's hosts are the
/// task's hosts.
fn pack(pieces: Vec<Piece>, target: u64) -> Vec<Vec<Piece>> {
    let mut groups: Vec<Vec<Piece>> = Vec::new();
    let mut bytes = 0u64;
    let mut open = false;
    for p in pieces {
        let len = p.end - p.start;
        let small = p.small_file;
        match groups.last_mut() {
            Some(g) if open && small && bytes + len <= target => {
                bytes += len;
                g.push(p);
            }
            _ => {
                bytes = len;
                groups.push(vec![p]);
            }
        }
        open = small;
    }
    groups
}

/// The preferred hosts of each task of a stage whose partitions are a split scan's file groups
/// (the hosts holding most of the task's bytes); empty lists when the stage does not scan the DFS
/// partition by partition.
pub fn task_hosts(stage: &Arc<dyn ExecutionPlan>, hosts: &BlockHosts) -> Vec<Vec<String>> {
    let tasks = stage.output_partitioning().partition_count();
    let none = vec![Vec::new(); tasks];
    if hosts.is_empty() {
        return none;
    }
    let Some(config) = driving_scan(stage) else {
        return none;
    };
    if config.file_groups.len() != tasks {
        return none;
    }
    config
        .file_groups
        .iter()
        .map(|group| {
            let mut bytes: BTreeMap<&str, u64> = BTreeMap::new();
            for f in group.iter() {
                let len = f
                    .range
                    .as_ref()
                    .map(|r| (r.end - r.start).max(0) as u64)
                    .unwrap_or(f.object_meta.size);
                for h in hosts.hosts_of(f) {
                    *bytes.entry(h.as_str()).or_default() += len;
                }
            }
            let mut ranked: Vec<(&str, u64)> = bytes.into_iter().collect();
            ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
            ranked
                .into_iter()
                .take(PREFERRED_HOSTS)
                .map(|(h, _)| h.to_string())
                .collect()
        })
        .collect()
}

/// The file scan whose partition `i` is the stage's partition `i`: followed down through
/// operators that keep the partition count (a broadcast join's probe side included).
fn driving_scan(node: &Arc<dyn ExecutionPlan>) -> Option<&FileScanConfig> {
    if let Some(config) = file_scan(node) {
        return Some(config);
    }
    let n = node.output_partitioning().partition_count();
    node.children()
        .into_iter()
        .filter(|c| c.output_partitioning().partition_count() == n)
        .find_map(driving_scan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(file: usize, start: u64, end: u64, host: &str) -> Piece {
        Piece {
            file,
            start,
            end,
            hosts: vec![host.to_string()],
            // Files 0 and 4 have several blocks.
            small_file: file != 0 && file != 4,
        }
    }

    fn ranges(groups: &[Vec<Piece>]) -> Vec<Vec<(usize, u64, u64)>> {
        groups
            .iter()
            .map(|g| g.iter().map(|p| (p.file, p.start, p.end)).collect())
            .collect()
    }

    #[test]
    fn big_blocks_are_cut_and_small_files_packed_without_crossing_the_target() {
        let mb = 1 << 20;
        let pieces = vec![
            piece(0, 0, 4 * mb, "a"),
            piece(0, 4 * mb, 6 * mb, "b"),
            piece(1, 0, mb / 2, "c"),
            piece(2, 0, mb / 2, "c"),
            piece(3, 0, mb / 2, "d"),
            piece(4, 0, mb / 4, "d"),
            piece(4, mb / 4, mb / 2, "e"),
        ];
        let groups = pack(cut(pieces, 2 * mb), 2 * mb);
        assert_eq!(
            ranges(&groups),
            vec![
                vec![(0, 0, 2 * mb)],
                vec![(0, 2 * mb, 4 * mb)],
                vec![(0, 4 * mb, 6 * mb)],
                vec![(1, 0, mb / 2), (2, 0, mb / 2), (3, 0, mb / 2)],
                // Blocks of a many-block file get a task each, however small.
                vec![(4, 0, mb / 4)],
                vec![(4, mb / 4, mb / 2)],
            ]
        );
        // Every byte is in exactly one group, in order.
        let covered: u64 = groups.iter().flatten().map(|p| p.end - p.start).sum();
        assert_eq!(covered, 8 * mb);
        // A cut piece keeps its block's hosts.
        assert_eq!(groups[1][0].hosts, vec!["a".to_string()]);
    }

    #[test]
    fn an_empty_piece_stays_one_piece() {
        let groups = pack(cut(vec![piece(0, 0, 0, "a")], 1 << 20), 1 << 20);
        assert_eq!(ranges(&groups), vec![vec![(0, 0, 0)]]);
    }
}
