//! A cluster job's input splits: the input files listed like Hadoop's `FileInputFormat` (a
//! directory means its visible files), cut into one split per DFS block (or per `split_size`
//! bytes), each carrying the hosts of the DataNodes that hold replicas of the block it starts
//! in, so the JobTracker can ask for containers next to the data.

use crate::formats::compute_splits;
use crate::fs::JobPath;
use crate::jobtracker::SplitLocation;
use sheaf_dfs::client::{DfsClient, DfsError};
use sheaf_dfs::protocol::{FileKind, FileStatus, LocatedBlocks, NamenodeError};
use std::path::PathBuf;

/// An input file on the DFS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputFile {
    /// Absolute DFS path.
    pub path: String,
    /// Length in bytes.
    pub len: u64,
    /// The file's block size (the default split size).
    pub block_size: u64,
}

/// One block of an input file and where its replicas are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockHosts {
    /// Offset of the block's first byte in the file.
    pub offset: u64,
    /// Bytes in the block.
    pub len: u64,
    /// Host identities (IPs) of the DataNodes with a live replica, in the NameNode's order.
    pub hosts: Vec<String>,
}

/// Why the splits of a job cannot be computed.
#[derive(Debug, thiserror::Error)]
pub enum SplitError {
    /// The job names no input.
    #[error("no input paths given")]
    NoInputs,
    /// An input path is not there (Hadoop's wording).
    #[error("Input path does not exist: {0}")]
    InputNotFound(String),
    /// The DFS failed.
    #[error("{path}: {source}")]
    Dfs {
        /// The path operated on.
        path: String,
        /// What the DFS client said.
        source: DfsError,
    },
}

fn dfs_failed(path: &str) -> impl FnOnce(DfsError) -> SplitError + '_ {
    move |source| match source.namenode_error() {
        Some(NamenodeError::NotFound(_)) => SplitError::InputNotFound(path.to_string()),
        _ => SplitError::Dfs {
            path: path.to_string(),
            source,
        },
    }
}

/// Hidden names (`_SUCCESS`, `_temporary`, `.crc` …) are not input, as in Hadoop.
fn is_hidden(path: &str) -> bool {
    path.rsplit('/')
        .next()
        .is_some_and(|name| name.starts_with(['_', '.']))
}

fn input_file(s: FileStatus) -> InputFile {
    InputFile {
        path: s.path,
        len: s.len,
        block_size: s.block_size,
    }
}

/// Lists the files `inputs` (absolute DFS paths) stand for: a file is itself; a directory
/// gives its visible regular files one level down, sorted by path. A missing input is an error.
pub async fn list_input_files(
    dfs: &DfsClient,
    inputs: &[String],
) -> Result<Vec<InputFile>, SplitError> {
    if inputs.is_empty() {
        return Err(SplitError::NoInputs);
    }
    let mut files = Vec::new();
    for input in inputs {
        let status = dfs
            .status(input)
            .await
            .map_err(dfs_failed(input))?
            .ok_or_else(|| SplitError::InputNotFound(input.clone()))?;
        if status.kind != FileKind::Directory {
            files.push(input_file(status));
            continue;
        }
        let mut entries: Vec<InputFile> = dfs
            .list(input)
            .await
            .map_err(dfs_failed(input))?
            .into_iter()
            .filter(|e| e.kind != FileKind::Directory && !is_hidden(&e.path))
            .map(input_file)
            .collect();
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        files.extend(entries);
    }
    Ok(files)
}

/// The blocks of `located` with their replica hosts.
pub fn block_hosts(located: &LocatedBlocks) -> Vec<BlockHosts> {
    located
        .blocks
        .iter()
        .map(|b| BlockHosts {
            offset: b.offset,
            len: b.block.len,
            hosts: b.locations.iter().map(|d| d.host.to_string()).collect(),
        })
        .collect()
}

/// Cuts one file into splits of `split_size` bytes (default: its block size; the last split may
/// be up to 10% larger, as in Hadoop) and gives each the replica hosts of the block holding its
/// first byte (Hadoop's `getBlockIndex`). Split paths are in `sheaf:///path` form.
pub fn file_splits(
    file: &InputFile,
    split_size: Option<u64>,
    blocks: &[BlockHosts],
) -> Vec<SplitLocation> {
    let size = split_size
        .filter(|s| *s > 0)
        .unwrap_or(file.block_size)
        .max(1);
    let path: PathBuf = JobPath::Dfs {
        namenode: None,
        path: file.path.clone(),
    }
    .to_path_buf();
    compute_splits(&[(path, file.len)], size)
        .into_iter()
        .map(|split| {
            let hosts = blocks
                .iter()
                .find(|b| b.offset <= split.start && split.start < b.offset + b.len.max(1))
                .map(|b| b.hosts.clone())
                .unwrap_or_default();
            SplitLocation { split, hosts }
        })
        .collect()
}

/// The splits of a job reading `inputs`, in input order, with replica hosts.
pub async fn job_splits(
    dfs: &DfsClient,
    inputs: &[String],
    split_size: Option<u64>,
) -> Result<Vec<SplitLocation>, SplitError> {
    let mut splits = Vec::new();
    for file in list_input_files(dfs, inputs).await? {
        if file.len == 0 {
            continue;
        }
        let located = dfs
            .block_locations(&file.path, 0, file.len)
            .await
            .map_err(dfs_failed(&file.path))?;
        splits.extend(file_splits(&file, split_size, &block_hosts(&located)));
    }
    Ok(splits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocks(sizes: &[(u64, &[&str])]) -> Vec<BlockHosts> {
        let mut offset = 0;
        sizes
            .iter()
            .map(|(len, hosts)| {
                let b = BlockHosts {
                    offset,
                    len: *len,
                    hosts: hosts.iter().map(|h| h.to_string()).collect(),
                };
                offset += len;
                b
            })
            .collect()
    }

    fn file(len: u64, block_size: u64) -> InputFile {
        InputFile {
            path: "/in/part-0".into(),
            len,
            block_size,
        }
    }

    #[test]
    fn one_split_per_block_with_that_blocks_replica_hosts() {
        let b = blocks(&[
            (100, &["127.0.0.2", "127.0.0.3"]),
            (100, &["127.0.0.4"]),
            (50, &["127.0.0.3"]),
        ]);
        let splits = file_splits(&file(250, 100), None, &b);
        let ranges: Vec<(u64, u64)> = splits
            .iter()
            .map(|s| (s.split.start, s.split.length))
            .collect();
        assert_eq!(ranges, vec![(0, 100), (100, 100), (200, 50)]);
        assert_eq!(splits[0].hosts, vec!["127.0.0.2", "127.0.0.3"]);
        assert_eq!(splits[1].hosts, vec!["127.0.0.4"]);
        assert_eq!(splits[2].hosts, vec!["127.0.0.3"]);
        assert_eq!(
            splits[0].split.path,
            PathBuf::from("sheaf:///in/part-0"),
            "tasks get the configured cluster's path form"
        );
    }

    #[test]
    fn a_small_tail_block_joins_the_previous_split_and_split_size_overrides_blocks() {
        // 105 bytes over 100-byte blocks: within Hadoop's 10% slop, one split.
        let b = blocks(&[(100, &["h1"]), (5, &["h2"])]);
        let splits = file_splits(&file(105, 100), None, &b);
        assert_eq!(splits.len(), 1);
        assert_eq!((splits[0].split.start, splits[0].split.length), (0, 105));
        assert_eq!(splits[0].hosts, vec!["h1"]);

        // A split size of 40 over the same file: splits start in block 0 or block 1.
        let b = blocks(&[(100, &["h1"]), (100, &["h2"])]);
        let splits = file_splits(&file(200, 100), Some(40), &b);
        let starts: Vec<u64> = splits.iter().map(|s| s.split.start).collect();
        assert_eq!(starts, vec![0, 40, 80, 120, 160]);
        let hosts: Vec<&str> = splits.iter().map(|s| s.hosts[0].as_str()).collect();
        assert_eq!(hosts, vec!["h1", "h1", "h1", "h2", "h2"]);
        let covered: u64 = splits.iter().map(|s| s.split.length).sum();
        assert_eq!(covered, 200);
    }

    #[test]
    fn splits_without_known_blocks_have_no_preference() {
        let splits = file_splits(&file(10, 100), None, &[]);
        assert_eq!(splits.len(), 1);
        assert!(splits[0].hosts.is_empty());
        assert!(file_splits(&file(0, 100), None, &[]).is_empty());
    }

    #[test]
    fn hidden_names_are_not_input() {
        assert!(is_hidden("/out/_SUCCESS"));
        assert!(is_hidden("/in/.part-0.crc"));
        assert!(!is_hidden("/in/part-0"));
    }
}
