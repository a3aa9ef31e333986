//! Sorted segments waiting to be merged (on disk or in memory), and the intermediate merge passes
//! that keep a final merge's fan-in at or below the merge factor.

use std::path::{Path, PathBuf};

use crate::counters::{Counters, FILE_BYTES_READ, FILE_BYTES_WRITTEN, SPILLED_RECORDS};

use super::error::EngineResult;
use super::key_order::KeyOrder;
use super::merge::{Merger, RecordSource};
use super::run_file::{create_run_file, SegmentIndexEntry, SegmentReader};

/// One sorted run of records of a single partition.
pub enum Segment {
    /// A segment of an intermediate file.
    File {
        /// The file holding it.
        path: PathBuf,
        /// Where in the file.
        entry: SegmentIndexEntry,
    },
    /// A segment's compressed bytes held in memory (reduce-side shuffle).
    Memory {
        /// The segment exactly as written by a run writer.
        bytes: Vec<u8>,
        /// Records in it.
        records: u64,
    },
}

impl Segment {
    /// Compressed size, which orders merge passes (smallest first, like Hadoop).
    pub fn size(&self) -> u64 {
        match self {
            Segment::File { entry, .. } => entry.compressed_len,
            Segment::Memory { bytes, .. } => bytes.len() as u64,
        }
    }

    /// Records in the segment.
    pub fn records(&self) -> u64 {
        match self {
            Segment::File { entry, .. } => entry.records,
            Segment::Memory { records, .. } => *records,
        }
    }

    /// True for a segment read from disk (its bytes count as file bytes read).
    pub fn on_disk(&self) -> bool {
        matches!(self, Segment::File { .. })
    }

    /// Opens a reader positioned before the first record.
    pub fn into_reader(self) -> EngineResult<SegmentReader> {
        match self {
            Segment::File { path, entry } => SegmentReader::open_file(&path, &entry),
            Segment::Memory { bytes, .. } => Ok(SegmentReader::from_bytes(bytes, "memory".into())),
        }
    }
}

/// Hands out unique scratch file names in a task's private directory.
pub struct ScratchDir {
    dir: PathBuf,
    next: u64,
}

impl ScratchDir {
    /// Names files under `dir` (which must exist).
    pub fn new(dir: PathBuf) -> Self {
        ScratchDir { dir, next: 0 }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A fresh path `dir/<prefix>_<n>`.
    pub fn next_path(&mut self, prefix: &str) -> PathBuf {
        self.next += 1;
        self.dir.join(format!("{prefix}_{:05}", self.next))
    }
}

/// Opens every segment and wraps them in a merger.
pub fn open_merger(
    segments: Vec<Segment>,
    order: &KeyOrder,
) -> EngineResult<Merger<'_, SegmentReader>> {
    let readers = segments
        .into_iter()
        .map(Segment::into_reader)
        .collect::<EngineResult<Vec<_>>>()?;
    Ok(Merger::new(readers, order))
}

/// Merges `segments` into one file segment.
pub fn merge_to_file(
    segments: Vec<Segment>,
    order: &KeyOrder,
    path: PathBuf,
    counters: &mut Counters,
) -> EngineResult<Segment> {
    let disk_bytes: u64 = segments
        .iter()
        .filter(|s| s.on_disk())
        .map(Segment::size)
        .sum();
    let mut merger = open_merger(segments, order)?;
    let mut writer = create_run_file(&path)?;
    let io = |e| super::error::EngineError::io(format!("writing merge file {}", path.display()), e);
    while merger.advance()? {
        writer.append(merger.key(), merger.value()).map_err(io)?;
    }
    let entry = writer.finish_segment().map_err(io)?;
    writer.finish().map_err(io)?;
    counters.incr_task(SPILLED_RECORDS, entry.records as i64);
    counters.incr_fs(FILE_BYTES_WRITTEN, entry.compressed_len as i64);
    counters.incr_fs(FILE_BYTES_READ, disk_bytes as i64);
    Ok(Segment::File { path, entry })
}

/// Runs intermediate on-disk merge passes until at most `factor` segments remain. Like Hadoop,
/// the first pass merges just enough of the smallest segments that every later pass (and the
/// final merge) has exactly `factor` inputs.
pub fn merge_to_factor(
    mut segments: Vec<Segment>,
    factor: usize,
    order: &KeyOrder,
    scratch: &mut ScratchDir,
    counters: &mut Counters,
) -> EngineResult<Vec<Segment>> {
    let factor = factor.max(2);
    let mut first = true;
    while segments.len() > factor {
        let n = segments.len();
        let take = match (n - 1) % (factor - 1) {
            m if first && m != 0 => m + 1,
            _ => factor,
        };
        first = false;
        segments.sort_by_key(Segment::size);
        let batch: Vec<Segment> = segments.drain(..take).collect();
        let merged = merge_to_file(batch, order, scratch.next_path("merge"), counters)?;
        segments.push(merged);
    }
    Ok(segments)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::run_file::RunWriter;

    fn memory_segment(keys: &[u32]) -> Segment {
        let mut w = RunWriter::new(Vec::new(), 0);
        for k in keys {
            w.append(&k.to_be_bytes(), b"v").expect("append");
        }
        let entry = w.finish_segment().expect("seg");
        let (bytes, _) = w.finish().expect("finish");
        Segment::Memory {
            bytes,
            records: entry.records,
        }
    }

    #[test]
    fn multi_pass_merge_keeps_every_record_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut scratch = ScratchDir::new(dir.path().to_path_buf());
        let segments: Vec<Segment> = (0..23u32)
            .map(|s| memory_segment(&(0..40u32).map(|i| i * 23 + s).collect::<Vec<_>>()))
            .collect();
        let order = KeyOrder::Bytewise;
        let mut counters = Counters::new();
        let left =
            merge_to_factor(segments, 3, &order, &mut scratch, &mut counters).expect("passes");
        assert!(left.len() <= 3);
        assert!(
            counters.task(SPILLED_RECORDS) > 0,
            "intermediate passes ran"
        );
        let mut merger = open_merger(left, &order).expect("open");
        let mut expect = 0u32;
        while merger.advance().expect("advance") {
            assert_eq!(merger.key(), expect.to_be_bytes());
            expect += 1;
        }
        assert_eq!(expect, 23 * 40);
    }
}
