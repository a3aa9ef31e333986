//! A reduce task: gathers its partition's segment of every map output (in memory up to a budget,
//! merged to disk past it), merges them with intermediate passes above the merge factor, and
//! feeds the reducer one key group at a time, writing through the output format.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crate::api::{JobConf, JobDefinition};
use crate::counters::{
    Counters, FILE_BYTES_READ, FILE_BYTES_WRITTEN, REDUCE_INPUT_GROUPS, REDUCE_INPUT_RECORDS,
    REDUCE_OUTPUT_RECORDS, REDUCE_SHUFFLE_BYTES, SHUFFLED_MAPS,
};
use crate::formats::{RecordWriter, RecordWriterEmitter};

use super::context::TaskServices;
use super::error::{EngineError, EngineResult};
use super::grouping::reduce_groups;
use super::key_order::KeyOrder;
use super::map_task::key_order;
use super::merge::RecordSource;
use super::run_file::SegmentIndexEntry;
use super::segment::{merge_to_factor, merge_to_file, open_merger, ScratchDir, Segment};
use super::settings::TaskSettings;

/// Fetched map-output segments of one reduce partition: kept in memory up to a budget, merged
/// into an on-disk segment whenever the budget is exceeded.
pub struct ShuffleBuffer {
    budget: usize,
    used: usize,
    memory: Vec<Segment>,
    disk: Vec<Segment>,
    scratch: ScratchDir,
    order: Arc<KeyOrder>,
    /// Records in the segments added so far.
    records: u64,
    /// Where the reduce phase publishes how many merged records it has read (progress).
    records_read: Option<Arc<AtomicU64>>,
    /// Shuffle and merge counters.
    pub counters: Counters,
}

impl ShuffleBuffer {
    /// A buffer of `budget` bytes spilling into `scratch` (an existing directory).
    pub fn new(budget: usize, scratch: PathBuf, order: Arc<KeyOrder>) -> Self {
        ShuffleBuffer {
            budget,
            used: 0,
            memory: Vec::new(),
            disk: Vec::new(),
            scratch: ScratchDir::new(scratch),
            order,
            records: 0,
            records_read: None,
            counters: Counters::new(),
        }
    }

    /// Records in the segments added so far (what the reducer will read in total).
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Makes [`run_reduce_task`] store in `counter`, as it goes, how many merged records the
    /// reducer has read, so a task runner can report reduce-phase progress.
    pub fn publish_records_read(&mut self, counter: Arc<AtomicU64>) {
        self.records_read = Some(counter);
    }

    /// Adds a fetched segment (bytes exactly as a map wrote them).
    pub fn add_memory_segment(&mut self, bytes: Vec<u8>, records: u64) -> EngineResult<()> {
        if records == 0 {
            return Ok(());
        }
        self.counters
            .incr_task(REDUCE_SHUFFLE_BYTES, bytes.len() as i64);
        self.counters.incr_task(SHUFFLED_MAPS, 1);
        self.records += records;
        self.used += bytes.len();
        self.memory.push(Segment::Memory { bytes, records });
        if self.used > self.budget {
            self.spill_memory()?;
        }
        Ok(())
    }

    /// Adds a segment of a map-output file on this machine's disk. It is merged straight from
    /// the file: copying it into memory would only add a copy (and possibly a merge back to
    /// disk), since reading it later costs the same page-cache read.
    pub fn add_file_segment(&mut self, path: &Path, entry: &SegmentIndexEntry) -> EngineResult<()> {
        if entry.records == 0 {
            return Ok(());
        }
        self.counters
            .incr_task(REDUCE_SHUFFLE_BYTES, entry.compressed_len as i64);
        self.counters.incr_task(SHUFFLED_MAPS, 1);
        self.records += entry.records;
        self.disk.push(Segment::File {
            path: path.to_path_buf(),
            entry: *entry,
        });
        Ok(())
    }

    fn spill_memory(&mut self) -> EngineResult<()> {
        let segments = std::mem::take(&mut self.memory);
        self.used = 0;
        let path = self.scratch.next_path("shuffle");
        let merged = merge_to_file(segments, &self.order, path, &mut self.counters)?;
        self.disk.push(merged);
        Ok(())
    }

    /// Segments merged to disk so far (for tests and diagnostics).
    pub fn disk_segments(&self) -> usize {
        self.disk.len()
    }
}

/// Everything a reduce task needs besides its input and output.
pub struct ReduceTaskSpec {
    /// The job.
    pub job: Arc<dyn JobDefinition>,
    /// The job configuration.
    pub conf: Arc<JobConf>,
    /// Parsed engine settings.
    pub settings: TaskSettings,
    /// The task's private scratch directory.
    pub scratch: PathBuf,
    /// Set by the runner when the job fails elsewhere.
    pub cancel: Arc<AtomicBool>,
}

impl ReduceTaskSpec {
    /// An empty shuffle buffer with this task's budget and key order.
    pub fn shuffle_buffer(&self) -> EngineResult<ShuffleBuffer> {
        let order = Arc::new(key_order(self.job.as_ref(), &self.conf)?);
        Ok(ShuffleBuffer::new(
            self.settings.reduce_memory_bytes,
            self.scratch.clone(),
            order,
        ))
    }
}

/// Stops a long merge early when the job has failed elsewhere.
struct Cancellable<'a, S: RecordSource> {
    inner: S,
    cancel: &'a AtomicBool,
    steps: u64,
    records_read: Option<Arc<AtomicU64>>,
}

impl<S: RecordSource> RecordSource for Cancellable<'_, S> {
    #[inline]
    fn advance(&mut self) -> EngineResult<bool> {
        self.steps += 1;
        if self.steps.is_multiple_of(4096) {
            if self.cancel.load(Ordering::Relaxed) {
                return Err(EngineError::Job(
                    "task cancelled because the job failed".into(),
                ));
            }
            if let Some(read) = &self.records_read {
                read.store(self.steps, Ordering::Relaxed);
            }
        }
        self.inner.advance()
    }
    #[inline]
    fn key(&self) -> &[u8] {
        self.inner.key()
    }
    #[inline]
    fn value(&self) -> &[u8] {
        self.inner.value()
    }
}

/// Runs one reduce task over the segments gathered in `shuffle`, writing to `writer`.
pub fn run_reduce_task(
    spec: &ReduceTaskSpec,
    mut shuffle: ShuffleBuffer,
    writer: &mut dyn RecordWriter,
) -> EngineResult<Counters> {
    let mut services = TaskServices::new(spec.conf.clone());
    services.counters.merge(&shuffle.counters);
    let order = shuffle.order.clone();
    // Memory segments join the final merge directly; disk segments are cut to the merge factor.
    let disk = std::mem::take(&mut shuffle.disk);
    let disk = merge_to_factor(
        disk,
        spec.settings.merge_factor,
        &order,
        &mut shuffle.scratch,
        &mut services.counters,
    )?;
    let disk_bytes: u64 = disk.iter().map(Segment::size).sum();
    services
        .counters
        .incr_fs(FILE_BYTES_READ, disk_bytes as i64);
    let mut segments = std::mem::take(&mut shuffle.memory);
    segments.extend(disk);
    let mut reducer = spec.job.new_reducer(&spec.conf)?;
    let merger = open_merger(segments, &order)?;
    let mut source = Cancellable {
        inner: merger,
        cancel: &spec.cancel,
        steps: 0,
        records_read: shuffle.records_read.clone(),
    };
    let (stats, written) = {
        let mut out = RecordWriterEmitter::new(writer);
        let stats = reduce_groups(
            &mut source,
            &order,
            reducer.as_mut(),
            &mut out,
            &mut services,
        )?;
        (stats, out.records)
    };
    writer.finish().map_err(|e| EngineError::Task(e.into()))?;
    let c = &mut services.counters;
    c.incr_task(REDUCE_INPUT_GROUPS, stats.groups as i64);
    c.incr_task(REDUCE_INPUT_RECORDS, stats.records as i64);
    c.incr_task(REDUCE_OUTPUT_RECORDS, written as i64);
    c.incr_fs(FILE_BYTES_WRITTEN, writer.bytes_written() as i64);
    Ok(services.counters)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::run_file::RunWriter;

    fn fetched(keys: std::ops::Range<u32>, step: u32) -> (Vec<u8>, u64) {
        let mut w = RunWriter::new(Vec::new(), 0);
        for k in keys.step_by(step as usize) {
            w.append(&k.to_be_bytes(), &[0u8; 100]).expect("append");
        }
        let entry = w.finish_segment().expect("segment");
        (w.finish().expect("finish").0, entry.records)
    }

    #[test]
    fn fetched_segments_over_the_budget_are_merged_to_disk_and_nothing_is_lost() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut shuffle =
            ShuffleBuffer::new(300, dir.path().to_path_buf(), Arc::new(KeyOrder::Bytewise));
        for start in 0..7u32 {
            let (bytes, records) = fetched(start..700, 7);
            shuffle.add_memory_segment(bytes, records).expect("add");
        }
        assert!(
            shuffle.disk_segments() >= 2,
            "budget exceeded several times"
        );
        assert!(shuffle.used <= 300);
        let mut segments = std::mem::take(&mut shuffle.memory);
        segments.append(&mut shuffle.disk);
        let order = KeyOrder::Bytewise;
        let mut merger = open_merger(segments, &order).expect("open");
        let mut next = 0u32;
        while merger.advance().expect("advance") {
            assert_eq!(merger.key(), next.to_be_bytes());
            next += 1;
        }
        assert_eq!(next, 700);
    }
}
