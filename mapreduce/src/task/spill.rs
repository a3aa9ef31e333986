//! Writing a sorted buffer (or a merged stream) to a run file, combining on the way when the job
//! has a combiner.

use std::cmp::Ordering;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use crate::api::{Emitter, JobConf, JobDefinition, TaskError};
use crate::counters::{
    COMBINE_INPUT_RECORDS, COMBINE_OUTPUT_RECORDS, FILE_BYTES_WRITTEN, SPILLED_RECORDS,
};

use super::context::TaskServices;
use super::error::{EngineError, EngineResult};
use super::grouping::reduce_groups;
use super::key_order::KeyOrder;
use super::merge::RecordSource;
use super::run_file::{create_run_file, RunWriter, SegmentIndexEntry};
use super::sort_buffer::SortBuffer;

/// A finished run file: one segment per partition.
#[derive(Debug, Clone)]
pub struct RunInfo {
    /// The file.
    pub path: PathBuf,
    /// One entry per partition.
    pub index: Vec<SegmentIndexEntry>,
}

/// What a spill or merge needs to combine: the job, its conf and whether combining is on.
#[derive(Clone)]
pub struct CombineSpec {
    /// The job (factory of combiners).
    pub job: Arc<dyn JobDefinition>,
    /// The job configuration.
    pub conf: Arc<JobConf>,
    /// False when `mapreduce.combiner.enabled=false`.
    pub enabled: bool,
}

/// Emitter writing combiner output into a run segment, refusing keys that go backwards (which
/// would silently break the merge that reads the run).
struct CombineSink<'a, W: Write> {
    writer: &'a mut RunWriter<W>,
    order: &'a KeyOrder,
    last_key: Vec<u8>,
    has_last: bool,
    records: u64,
}

impl<W: Write> Emitter for CombineSink<'_, W> {
    fn emit(&mut self, key: &[u8], value: &[u8]) -> Result<(), TaskError> {
        if self.has_last && self.order.compare(&self.last_key, key) == Ordering::Greater {
            return Err(TaskError::new(format!(
                "combiner emitted key {:?} after {:?}: a combiner must keep keys in sorted order",
                String::from_utf8_lossy(key),
                String::from_utf8_lossy(&self.last_key)
            )));
        }
        self.last_key.clear();
        self.last_key.extend_from_slice(key);
        self.has_last = true;
        self.records += 1;
        self.writer
            .append(key, value)
            .map_err(|e| TaskError::new(format!("writing intermediate run: {e}")))
    }
}

/// Writes one partition's sorted records to `writer` (through a fresh combiner when `combine` is
/// given) and closes the segment. Returns the segment's index entry.
pub fn write_partition<S: RecordSource, W: Write>(
    source: &mut S,
    order: &KeyOrder,
    combine: Option<&CombineSpec>,
    writer: &mut RunWriter<W>,
    services: &mut TaskServices,
) -> EngineResult<SegmentIndexEntry> {
    let combiner = match combine {
        Some(spec) if spec.enabled => spec.job.new_combiner(&spec.conf)?,
        _ => None,
    };
    match combiner {
        Some(mut combiner) => {
            let mut sink = CombineSink {
                writer: &mut *writer,
                order,
                last_key: Vec::new(),
                has_last: false,
                records: 0,
            };
            let stats = reduce_groups(source, order, combiner.as_mut(), &mut sink, services)?;
            let out = sink.records;
            services
                .counters
                .incr_task(COMBINE_INPUT_RECORDS, stats.records as i64);
            services
                .counters
                .incr_task(COMBINE_OUTPUT_RECORDS, out as i64);
        }
        None => {
            while source.advance()? {
                writer
                    .append(source.key(), source.value())
                    .map_err(|e| EngineError::io("writing intermediate run", e))?;
            }
        }
    }
    writer
        .finish_segment()
        .map_err(|e| EngineError::io("writing intermediate run", e))
}

/// Sorts `buffer` and writes it to a new run at `path`, combining each partition.
pub fn spill_buffer(
    buffer: &mut SortBuffer,
    partitions: u32,
    order: &KeyOrder,
    combine: &CombineSpec,
    path: PathBuf,
    services: &mut TaskServices,
) -> EngineResult<RunInfo> {
    buffer.sort(order);
    let mut writer = create_run_file(&path)?;
    for range in buffer.partition_ranges(partitions) {
        let mut source = buffer.source(range);
        write_partition(&mut source, order, Some(combine), &mut writer, services)?;
    }
    let io = |e| EngineError::io(format!("writing spill {}", path.display()), e);
    let end = writer.position();
    let (_, index) = writer.finish().map_err(io)?;
    let records: u64 = index.iter().map(|e| e.records).sum();
    services.counters.incr_task(SPILLED_RECORDS, records as i64);
    services.counters.incr_fs(FILE_BYTES_WRITTEN, end as i64);
    Ok(RunInfo { path, index })
}
