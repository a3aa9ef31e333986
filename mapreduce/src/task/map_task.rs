//! A map task: reads a split, runs the mapper, collects its output in the sort buffer with
//! background spills, and merges the runs into one partitioned map-output file plus its index.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::api::partition::HashPartitioner;
use crate::api::{Emitter, JobConf, JobDefinition, Partitioner, TaskError};
use crate::counters::{
    Counters, FILE_BYTES_READ, FILE_BYTES_WRITTEN, MAP_INPUT_RECORDS, MAP_OUTPUT_BYTES,
    MAP_OUTPUT_RECORDS, SPILLED_RECORDS,
};
use crate::formats::{RecordReader, RecordWriter, RecordWriterEmitter};

use super::context::TaskServices;
use super::error::{EngineError, EngineResult};
use super::key_order::KeyOrder;
use super::run_file::{create_run_file, write_index, SegmentIndexEntry};
use super::segment::{merge_to_factor, open_merger, ScratchDir, Segment};
use super::settings::TaskSettings;
use super::sort_buffer::{SortBuffer, RECORD_OVERHEAD};
use super::spill::{spill_buffer, write_partition, CombineSpec, RunInfo};

/// How often (in input records) a task looks at the job's cancel flag.
const CANCEL_CHECK_INTERVAL: u64 = 4096;

/// Everything a map task needs besides its input.
pub struct MapTaskSpec {
    /// The job.
    pub job: Arc<dyn JobDefinition>,
    /// The job configuration.
    pub conf: Arc<JobConf>,
    /// Parsed engine settings.
    pub settings: TaskSettings,
    /// Number of reduce partitions (at least 1).
    pub partitions: u32,
    /// The task's private scratch directory (exists, emptied by the caller afterwards).
    pub scratch: PathBuf,
    /// Where the final map output goes; its index goes to [`index_path`] of it.
    pub output: PathBuf,
    /// Set by the runner when the job fails elsewhere.
    pub cancel: Arc<AtomicBool>,
}

/// The final output of one map task.
#[derive(Debug, Clone)]
pub struct MapOutput {
    /// The data file.
    pub path: PathBuf,
    /// One segment per partition.
    pub index: Vec<SegmentIndexEntry>,
}

/// The index file that goes with a map-output data file.
pub fn index_path(output: &Path) -> PathBuf {
    let mut s = output.as_os_str().to_owned();
    s.push(".index");
    PathBuf::from(s)
}

/// The job's key order: its comparator, or bytewise.
pub fn key_order(job: &dyn JobDefinition, conf: &JobConf) -> EngineResult<KeyOrder> {
    Ok(match job.comparator(conf)? {
        Some(c) => KeyOrder::Custom(c),
        None => KeyOrder::Bytewise,
    })
}

struct SpillRequest {
    buffer: SortBuffer,
    path: PathBuf,
}

struct SpillDone {
    run: RunInfo,
    counters: Counters,
}

/// The mapper's emitter: partitions records, buffers them and hands full buffers to a spill
/// thread, so the mapper keeps producing while the previous buffer is sorted and written.
pub struct MapOutputCollector {
    partitions: u32,
    partitioner: Box<dyn Partitioner>,
    order: Arc<KeyOrder>,
    combine: CombineSpec,
    settings: TaskSettings,
    active: SortBuffer,
    /// Bytes held by the buffer being spilled, if a spill is running.
    in_flight: Option<usize>,
    threshold: usize,
    scratch: ScratchDir,
    runs: Vec<RunInfo>,
    counters: Counters,
    output_records: u64,
    output_bytes: u64,
    requests: Option<Sender<SpillRequest>>,
    results: Receiver<EngineResult<SpillDone>>,
    thread: Option<JoinHandle<()>>,
}

impl MapOutputCollector {
    /// A collector for one map task, with its spill thread started.
    pub fn new(spec: &MapTaskSpec, order: Arc<KeyOrder>) -> EngineResult<Self> {
        let partitioner = match spec.job.partitioner(&spec.conf)? {
            Some(p) => p,
            None => Box::new(HashPartitioner),
        };
        let combine = CombineSpec {
            job: spec.job.clone(),
            conf: spec.conf.clone(),
            enabled: spec.settings.combiner_enabled,
        };
        let (req_tx, req_rx) = channel::<SpillRequest>();
        let (res_tx, res_rx) = channel();
        let thread_order = order.clone();
        let thread_combine = combine.clone();
        let partitions = spec.partitions.max(1);
        let thread = std::thread::Builder::new()
            .name("sheaf-spill".into())
            .spawn(move || {
                while let Ok(mut req) = req_rx.recv() {
                    let mut services = TaskServices::new(thread_combine.conf.clone());
                    let result = spill_buffer(
                        &mut req.buffer,
                        partitions,
                        &thread_order,
                        &thread_combine,
                        req.path,
                        &mut services,
                    )
                    .map(|run| SpillDone {
                        run,
                        counters: services.counters,
                    });
                    // Free the buffer before reporting, so the map never holds two full ones.
                    drop(req.buffer);
                    let failed = result.is_err();
                    if res_tx.send(result).is_err() || failed {
                        break;
                    }
                }
            })
            .map_err(|e| EngineError::io("starting the spill thread", e))?;
        let budget = spec.settings.sort_buffer_bytes;
        Ok(MapOutputCollector {
            partitions,
            partitioner,
            order,
            combine,
            threshold: ((budget as f64 * spec.settings.spill_percent) as usize).max(1),
            settings: spec.settings.clone(),
            active: SortBuffer::with_budget(budget),
            in_flight: None,
            scratch: ScratchDir::new(spec.scratch.clone()),
            runs: Vec::new(),
            counters: Counters::new(),
            output_records: 0,
            output_bytes: 0,
            requests: Some(req_tx),
            results: res_rx,
            thread: Some(thread),
        })
    }

    fn start_spill(&mut self) -> EngineResult<()> {
        let buffer = std::mem::replace(
            &mut self.active,
            SortBuffer::with_budget(self.settings.sort_buffer_bytes),
        );
        let used = buffer.used();
        let path = self.scratch.next_path("spill");
        let sent = self
            .requests
            .as_ref()
            .map(|tx| tx.send(SpillRequest { buffer, path }).is_ok())
            .unwrap_or(false);
        if !sent {
            // The spill thread is gone: its last result says why.
            return match self.results.recv() {
                Ok(Err(e)) => Err(e),
                _ => Err(EngineError::Job("spill thread stopped unexpectedly".into())),
            };
        }
        self.in_flight = Some(used);
        Ok(())
    }

    fn wait_spill(&mut self) -> EngineResult<()> {
        if self.in_flight.take().is_none() {
            return Ok(());
        }
        match self.results.recv() {
            Ok(Ok(done)) => {
                self.runs.push(done.run);
                self.counters.merge(&done.counters);
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(EngineError::Job("spill thread stopped unexpectedly".into())),
        }
    }

    /// A record bigger than the whole buffer becomes a run of its own.
    fn spill_single_record(
        &mut self,
        partition: u32,
        key: &[u8],
        value: &[u8],
    ) -> EngineResult<()> {
        let path = self.scratch.next_path("large");
        let io = |e| EngineError::io(format!("writing spill {}", path.display()), e);
        let mut writer = create_run_file(&path)?;
        for p in 0..self.partitions {
            if p == partition {
                writer.append(key, value).map_err(io)?;
            }
            writer.finish_segment().map_err(io)?;
        }
        let end = writer.position();
        let (_, index) = writer.finish().map_err(io)?;
        self.counters.incr_task(SPILLED_RECORDS, 1);
        self.counters.incr_fs(FILE_BYTES_WRITTEN, end as i64);
        self.runs.push(RunInfo { path, index });
        Ok(())
    }

    fn collect(&mut self, key: &[u8], value: &[u8]) -> EngineResult<()> {
        let partition = if self.partitions == 1 {
            0
        } else {
            self.partitioner.partition(key, value, self.partitions)
        };
        if partition >= self.partitions {
            return Err(EngineError::Task(TaskError::new(format!(
                "partitioner returned {partition} for {} partitions",
                self.partitions
            ))));
        }
        self.output_records += 1;
        self.output_bytes += (key.len() + value.len()) as u64;
        let size = key.len() + value.len() + RECORD_OVERHEAD;
        let budget = self.settings.sort_buffer_bytes;
        if size > budget {
            return self.spill_single_record(partition, key, value);
        }
        loop {
            let limit = budget - self.in_flight.unwrap_or(0);
            if self.active.used() + size <= limit {
                break;
            }
            if self.in_flight.is_some() {
                self.wait_spill()?;
            } else {
                self.start_spill()?;
            }
        }
        self.active.push(partition, key, value);
        if self.in_flight.is_none() && self.active.used() >= self.threshold {
            self.start_spill()?;
        }
        Ok(())
    }

    fn shutdown_thread(&mut self) {
        self.requests = None;
        if let Some(t) = self.thread.take() {
            // A panic in the spill thread already surfaced as a closed channel.
            let _ = t.join();
        }
    }

    /// Spills what is left, merges all runs into `spec.output` (+ index) and returns it with
    /// the collector's counters.
    pub fn finish(
        mut self,
        spec: &MapTaskSpec,
        services: &mut TaskServices,
    ) -> EngineResult<MapOutput> {
        self.wait_spill()?;
        self.shutdown_thread();
        if !self.active.is_empty() {
            let mut buffer = std::mem::replace(&mut self.active, SortBuffer::with_budget(0));
            let path = self.scratch.next_path("spill");
            let run = spill_buffer(
                &mut buffer,
                self.partitions,
                &self.order,
                &self.combine,
                path,
                services,
            )?;
            self.runs.push(run);
        }
        services.counters.merge(&self.counters);
        services
            .counters
            .incr_task(MAP_OUTPUT_RECORDS, self.output_records as i64);
        services
            .counters
            .incr_task(MAP_OUTPUT_BYTES, self.output_bytes as i64);
        let runs = std::mem::take(&mut self.runs);
        merge_map_runs(
            runs,
            self.partitions,
            &self.order,
            &self.combine,
            &self.settings,
            &mut self.scratch,
            &spec.output,
            services,
        )
    }
}

impl Drop for MapOutputCollector {
    fn drop(&mut self) {
        self.shutdown_thread();
    }
}

impl Emitter for MapOutputCollector {
    #[inline]
    fn emit(&mut self, key: &[u8], value: &[u8]) -> Result<(), TaskError> {
        self.collect(key, value).map_err(|e| match e {
            EngineError::Task(t) => t,
            other => TaskError::new(other.to_string()),
        })
    }
}

/// Merges a map task's runs into one output file with a partition index. One run is renamed;
/// several are merged partition by partition (with intermediate passes above the merge factor),
/// combining again when there are at least `combine_min_spills` runs.
#[allow(clippy::too_many_arguments)]
fn merge_map_runs(
    runs: Vec<RunInfo>,
    partitions: u32,
    order: &KeyOrder,
    combine: &CombineSpec,
    settings: &TaskSettings,
    scratch: &mut ScratchDir,
    output: &Path,
    services: &mut TaskServices,
) -> EngineResult<MapOutput> {
    let io_out = |e| EngineError::io(format!("writing map output {}", output.display()), e);
    let index = if runs.len() == 1 {
        let run = &runs[0];
        std::fs::rename(&run.path, output).map_err(io_out)?;
        run.index.clone()
    } else {
        let mut writer = create_run_file(output)?;
        let do_combine = runs.len() >= settings.combine_min_spills.max(1);
        for p in 0..partitions as usize {
            let segments: Vec<Segment> = runs
                .iter()
                .filter(|r| r.index.get(p).is_some_and(|e| e.records > 0))
                .map(|r| Segment::File {
                    path: r.path.clone(),
                    entry: r.index[p],
                })
                .collect();
            let segments = merge_to_factor(
                segments,
                settings.merge_factor,
                order,
                scratch,
                &mut services.counters,
            )?;
            let disk_after: u64 = segments.iter().map(Segment::size).sum();
            let mut merger = open_merger(segments, order)?;
            let entry = write_partition(
                &mut merger,
                order,
                do_combine.then_some(combine),
                &mut writer,
                services,
            )?;
            services
                .counters
                .incr_task(SPILLED_RECORDS, entry.records as i64);
            // Intermediate passes counted their own reads.
            services
                .counters
                .incr_fs(FILE_BYTES_READ, disk_after as i64);
        }
        let end = writer.position();
        let (_, index) = writer.finish().map_err(io_out)?;
        services.counters.incr_fs(FILE_BYTES_WRITTEN, end as i64);
        for run in &runs {
            // Scratch files; the runner removes the scratch dir anyway.
            let _ = std::fs::remove_file(&run.path);
        }
        index
    };
    write_index(&index_path(output), &index)?;
    Ok(MapOutput {
        path: output.to_path_buf(),
        index,
    })
}

fn check_cancel(cancel: &AtomicBool) -> EngineResult<()> {
    if cancel.load(Ordering::Relaxed) {
        Err(EngineError::Job(
            "task cancelled because the job failed".into(),
        ))
    } else {
        Ok(())
    }
}

/// Runs one map task of a job with reducers: mapper over every record of `reader`, output
/// sorted, spilled and merged into `spec.output`. Returns the output and the task's counters.
pub fn run_map_task(
    spec: &MapTaskSpec,
    reader: &mut dyn RecordReader,
) -> EngineResult<(MapOutput, Counters)> {
    let order = Arc::new(key_order(spec.job.as_ref(), &spec.conf)?);
    let mut services = TaskServices::new(spec.conf.clone());
    let mut mapper = spec.job.new_mapper(&spec.conf)?;
    let mut collector = MapOutputCollector::new(spec, order)?;
    let mut records = 0u64;
    while let Some((key, value)) = reader
        .next_record()
        .map_err(|e| EngineError::Task(e.into()))?
    {
        mapper.map(key, value, &mut collector, &mut services)?;
        records += 1;
        if records.is_multiple_of(CANCEL_CHECK_INTERVAL) {
            check_cancel(&spec.cancel)?;
        }
    }
    mapper.cleanup(&mut collector, &mut services)?;
    let output = collector.finish(spec, &mut services)?;
    services
        .counters
        .incr_task(MAP_INPUT_RECORDS, records as i64);
    services
        .counters
        .incr_fs(FILE_BYTES_READ, reader.bytes_consumed() as i64);
    Ok((output, services.counters))
}

/// Runs one map task of a map-only job: mapper output goes straight to `writer`.
pub fn run_map_only_task(
    job: &dyn JobDefinition,
    conf: &Arc<JobConf>,
    reader: &mut dyn RecordReader,
    writer: &mut dyn RecordWriter,
    cancel: &AtomicBool,
) -> EngineResult<Counters> {
    let mut services = TaskServices::new(conf.clone());
    let mut mapper = job.new_mapper(conf)?;
    let mut records = 0u64;
    let written = {
        let mut out = RecordWriterEmitter::new(writer);
        while let Some((key, value)) = reader
            .next_record()
            .map_err(|e| EngineError::Task(e.into()))?
        {
            mapper.map(key, value, &mut out, &mut services)?;
            records += 1;
            if records.is_multiple_of(CANCEL_CHECK_INTERVAL) {
                check_cancel(cancel)?;
            }
        }
        mapper.cleanup(&mut out, &mut services)?;
        out.records
    };
    writer.finish().map_err(|e| EngineError::Task(e.into()))?;
    services
        .counters
        .incr_task(MAP_INPUT_RECORDS, records as i64);
    services
        .counters
        .incr_task(MAP_OUTPUT_RECORDS, written as i64);
    services
        .counters
        .incr_fs(FILE_BYTES_READ, reader.bytes_consumed() as i64);
    services
        .counters
        .incr_fs(FILE_BYTES_WRITTEN, writer.bytes_written() as i64);
    Ok(services.counters)
}
