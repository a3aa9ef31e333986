//! Where a malformed row is: the file, and for CSV the line counted from the start of the file.
//!
//! Arrow's CSV and JSON readers say what is wrong and, for CSV, on which line of *what they
//! read*; a scan task reads one byte range of a file (a DFS block), so that line is counted from
//! the start of the range and no file is named. When a task fails with such an error, the task's
//! file ranges are known: the error is rewritten to name the file and, for a range that starts
//! inside the file, the lines before the range are counted (this reads the file up to the
//! range, which only happens on the way to reporting an error).

use crate::block_splits::file_scan;
use crate::error::innermost;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::error::ArrowError;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties};
use futures::TryStreamExt;
use object_store::{ObjectStore, ObjectStoreExt};
use std::sync::Arc;

/// Bytes read per request while counting the lines before a range.
const COUNT_CHUNK: u64 = 8 << 20;

/// A file range read by a scan: its store, its display name and whether it is CSV.
struct ScannedRange {
    store_url: String,
    file: PartitionedFile,
    csv: bool,
}

impl ScannedRange {
    /// The file as the user wrote it: `sheaf:///data/x.csv`, or a local path.
    fn name(&self) -> String {
        let location = self.file.object_meta.location.as_ref();
        match url::Url::parse(&self.store_url) {
            Ok(url) if url.scheme() == "file" => format!("/{location}"),
            Ok(url) => format!("{}://{}/{location}", url.scheme(), url.authority()),
            Err(_) => format!("{}/{location}", self.store_url.trim_end_matches('/')),
        }
    }
}

/// Whether `e` is a reader's complaint about a row (not an I/O or planning error).
fn malformed_row(e: &DataFusionError) -> Option<&ArrowError> {
    match innermost(e) {
        DataFusionError::ArrowError(a, _) => match a.as_ref() {
            ArrowError::CsvError(_) | ArrowError::ParseError(_) | ArrowError::JsonError(_) => {
                Some(a.as_ref())
            }
            _ => None,
        },
        _ => None,
    }
}

/// The CSV/JSON ranges partition `partition` of `plan` reads. A scan whose partitions do not
/// line up with the plan's (a coalesce inside the fragment) contributes all its ranges.
fn ranges_of(plan: &Arc<dyn ExecutionPlan>, partition: usize) -> Vec<ScannedRange> {
    let partitions = plan.output_partitioning().partition_count();
    let mut out = Vec::new();
    let _ = plan.apply(|node| {
        if let Some(config) = file_scan(node) {
            let csv = match config.file_source().file_type() {
                "csv" => true,
                "json" => false,
                _ => return Ok(TreeNodeRecursion::Continue),
            };
            let groups: Vec<_> = if config.file_groups.len() == partitions {
                config.file_groups.get(partition).into_iter().collect()
            } else {
                config.file_groups.iter().collect()
            };
            for group in groups {
                for file in group.iter() {
                    out.push(ScannedRange {
                        store_url: config.object_store_url.as_str().to_string(),
                        file: file.clone(),
                        csv,
                    });
                }
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    out
}

/// Lines that begin before the first line a range starting at `start` reads (the reader skips
/// to the first line beginning at or after `start`): line 1, and one per newline in
/// `[0, start - 1)`.
async fn lines_before(
    store: &Arc<dyn ObjectStore>,
    file: &PartitionedFile,
    start: u64,
) -> Result<u64> {
    let end = start.saturating_sub(1);
    let mut newlines = 0u64;
    let mut at = 0u64;
    while at < end {
        let upto = (at + COUNT_CHUNK).min(end);
        let bytes = store
            .get_range(&file.object_meta.location, at..upto)
            .await
            .map_err(DataFusionError::from)?;
        newlines += bytes.iter().filter(|b| **b == b'\n').count() as u64;
        at = upto;
    }
    Ok(1 + newlines)
}

/// `message` with its first `line N` replaced by `line N + offset`.
fn shift_line(message: &str, offset: u64) -> String {
    let Some(at) = message.find("line ") else {
        return message.to_string();
    };
    let digits_from = at + "line ".len();
    let digits: String = message[digits_from..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    let Ok(n) = digits.parse::<u64>() else {
        return message.to_string();
    };
    format!(
        "{}{}{}",
        &message[..digits_from],
        n + offset,
        &message[digits_from + digits.len()..]
    )
}

/// Rewrites a malformed-row error of partition `partition` of `plan` to name the file and its
/// line; any other error is returned unchanged.
pub async fn locate(
    error: DataFusionError,
    plan: &Arc<dyn ExecutionPlan>,
    partition: usize,
    ctx: &TaskContext,
) -> DataFusionError {
    let Some(arrow) = malformed_row(&error) else {
        return error;
    };
    let message = arrow.to_string();
    let ranges = ranges_of(plan, partition);
    match ranges.as_slice() {
        [] => error,
        [one] => {
            let start = one
                .file
                .range
                .as_ref()
                .map(|r| r.start.max(0) as u64)
                .unwrap_or(0);
            let message = if one.csv && start > 0 {
                let store = ObjectStoreUrl::parse(&one.store_url)
                    .and_then(|url| ctx.runtime_env().object_store(&url));
                let counted = match store {
                    Ok(store) => lines_before(&store, &one.file, start).await.ok(),
                    Err(_) => None,
                };
                match counted {
                    Some(before) => shift_line(&message, before),
                    // Without the count, say what the line number is relative to.
                    None => format!("{message} (counted from byte {start})"),
                }
            } else {
                message
            };
            DataFusionError::Execution(format!("malformed row in {}: {message}", one.name()))
        }
        many => {
            let mut names: Vec<String> = many.iter().map(ScannedRange::name).collect();
            names.dedup();
            DataFusionError::Execution(format!(
                "malformed row in one of {}: {message}",
                names.join(", ")
            ))
        }
    }
}

/// Runs every partition of `plan` to completion and returns their batches in partition order;
/// a failing partition's malformed-row error names its file and line ([`locate`]).
pub async fn collect_partitions(
    plan: Arc<dyn ExecutionPlan>,
    ctx: Arc<TaskContext>,
) -> Result<Vec<RecordBatch>> {
    let partitions = plan.output_partitioning().partition_count();
    let mut runs = tokio::task::JoinSet::new();
    for partition in 0..partitions {
        let (plan, ctx) = (Arc::clone(&plan), Arc::clone(&ctx));
        runs.spawn(async move {
            let result: Result<Vec<RecordBatch>> = async {
                plan.execute(partition, Arc::clone(&ctx))?
                    .try_collect()
                    .await
            }
            .await;
            match result {
                Ok(batches) => Ok((partition, batches)),
                Err(e) => Err(locate(e, &plan, partition, &ctx).await),
            }
        });
    }
    let mut done: Vec<(usize, Vec<RecordBatch>)> = Vec::with_capacity(partitions);
    while let Some(joined) = runs.join_next().await {
        let run =
            joined.map_err(|e| DataFusionError::Execution(format!("a task panicked: {e}")))?;
        done.push(run?);
    }
    done.sort_by_key(|(p, _)| *p);
    Ok(done.into_iter().flat_map(|(_, b)| b).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_line_number_is_shifted() {
        assert_eq!(
            shift_line(
                "incorrect number of fields for line 3, expected 2 got 1",
                10
            ),
            "incorrect number of fields for line 13, expected 2 got 1"
        );
        assert_eq!(shift_line("no number here", 4), "no number here");
        assert_eq!(shift_line("at line x", 4), "at line x");
    }

    #[tokio::test]
    async fn lines_before_a_range_count_the_lines_that_begin_before_it() {
        let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        let path = object_store::path::Path::from("t.csv");
        store
            .put(&path, bytes::Bytes::from_static(b"h\nab\ncd\nef\n").into())
            .await
            .unwrap();
        let meta = store.head(&path).await.unwrap();
        let file = PartitionedFile::from(meta);
        // A range starting at "cd" (byte 5) reads it first: lines "h" and "ab" begin before.
        assert_eq!(lines_before(&store, &file, 5).await.unwrap(), 2);
        // Starting inside "ab" (byte 3), the reader skips to "cd" too.
        assert_eq!(lines_before(&store, &file, 3).await.unwrap(), 2);
        // Starting at "ab" (byte 2), only "h" begins before it.
        assert_eq!(lines_before(&store, &file, 2).await.unwrap(), 1);
    }
}
