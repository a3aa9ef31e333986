//! Stage inputs from other nodes: a [`StageSource`] that fetches producer partitions from the
//! NodeManagers' shuffle services over QUIC (the fetcher MapReduce's reducers use), checks each
//! partition's length and CRC32 against the producer's manifest, and decodes the Arrow IPC on a
//! blocking thread. A producer whose output cannot be fetched is remembered in [`LostInputs`]
//! so the task can report it as a fetch failure (its output runs again; the task is not blamed).
//!
//! A producer that ran on this node is read from its data file directly, as Spark reads local
//! shuffle blocks from disk: the bytes do not go through the shuffle service and QUIC twice.

use super::protocol::{ProducerOutput, StageLocations};
use crate::error::SqlError;
use crate::stage_store::{read_partition, read_partition_file, LocalStageDir, StageSource};
use crate::stages::StageId;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::{DataFusionError, Result};
use datafusion::physical_plan::stream::RecordBatchReceiverStream;
use datafusion::physical_plan::SendableRecordBatchStream;
use sheaf_mapreduce::shuffle::fetcher::{FetchedSegment, MapOutputLocation, ShuffleJob};
use sheaf_mapreduce::shuffle::{MapAttemptId, ShuffleFetcher};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// The shuffle's map id of task `task` of stage `stage` (one id space per query's shuffle job).
pub fn map_id(stage: u32, task: u32) -> u32 {
    (stage << 16) | (task & 0xffff)
}

/// The (stage, task) of a shuffle map id.
pub fn task_of_map_id(map: u32) -> (u32, u32) {
    (map >> 16, map & 0xffff)
}

/// A producer task, (stage, task), and why its output could not be fetched.
pub type LostInput = ((u32, u32), String);

/// Producer outputs a task could not fetch.
#[derive(Debug, Clone, Default)]
pub struct LostInputs(Arc<Mutex<Vec<LostInput>>>);

impl LostInputs {
    fn record(&self, producer: (u32, u32), why: String) {
        if let Ok(mut v) = self.0.lock() {
            v.push((producer, why));
        }
    }

    /// The first lost producer, if any.
    pub fn first(&self) -> Option<LostInput> {
        self.0.lock().ok().and_then(|v| v.first().cloned())
    }
}

/// Producer partitions fetched from shuffle services.
pub struct ShuffleStageSource {
    fetcher: Arc<ShuffleFetcher>,
    job: ShuffleJob,
    inputs: BTreeMap<u32, BTreeMap<u32, ProducerOutput>>,
    spill_dir: PathBuf,
    lost: LostInputs,
    local: Option<LocalOutputs>,
}

/// This node's shuffle service and the directory its producers' outputs of the job are in.
#[derive(Debug, Clone)]
pub struct LocalOutputs {
    /// The shuffle service of this node (producers reporting it ran here).
    pub shuffle: SocketAddr,
    /// The job's stage outputs on this node.
    pub dir: LocalStageDir,
}

impl std::fmt::Debug for ShuffleStageSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShuffleStageSource")
            .field("job", &self.job.job_id)
            .field("stages", &self.inputs.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl ShuffleStageSource {
    /// Inputs at `inputs`, fetched for `job`; segments over the fetcher's memory budget go to
    /// `spill_dir`.
    pub fn new(
        fetcher: Arc<ShuffleFetcher>,
        job: ShuffleJob,
        inputs: &[StageLocations],
        spill_dir: PathBuf,
        lost: LostInputs,
    ) -> ShuffleStageSource {
        let inputs = inputs
            .iter()
            .map(|s| {
                (
                    s.stage,
                    s.producers.iter().map(|p| (p.task, p.clone())).collect(),
                )
            })
            .collect();
        ShuffleStageSource {
            fetcher,
            job,
            inputs,
            spill_dir,
            lost,
            local: None,
        }
    }

    /// Reads the outputs of producers that ran on this node from `local`'s files.
    pub fn with_local(mut self, local: LocalOutputs) -> ShuffleStageSource {
        self.local = Some(local);
        self
    }
}

/// Decodes a producer's partition from its data file on this node.
async fn read_local(
    dir: &LocalStageDir,
    (stage, part): (u32, u32),
    p: &ProducerOutput,
    tx: tokio::sync::mpsc::Sender<Result<datafusion::arrow::array::RecordBatch>>,
) -> std::result::Result<Result<()>, String> {
    let expected = p
        .partitions
        .get(part as usize)
        .cloned()
        .ok_or_else(|| format!("stage {stage} task {} wrote no partition {part}", p.task))?;
    let path = dir.data_path(stage as StageId, p.task as usize);
    tokio::task::spawn_blocking(move || {
        let emit = |b| tx.blocking_send(Ok(b)).is_ok();
        read_partition_file(&path, &expected, emit)
    })
    .await
    .map_err(|e| format!("decoding a local partition: {e}"))
}

impl StageSource for ShuffleStageSource {
    fn open_partition(
        &self,
        stage: StageId,
        task: usize,
        part: usize,
        schema: SchemaRef,
    ) -> Result<SendableRecordBatchStream> {
        self.open_many(stage, vec![(task, part)], schema)
    }

    fn open_many(
        &self,
        stage: StageId,
        sources: Vec<(usize, usize)>,
        schema: SchemaRef,
    ) -> Result<SendableRecordBatchStream> {
        let stage = stage as u32;
        let producers = self.inputs.get(&stage).ok_or_else(|| {
            DataFusionError::Execution(format!("no locations for the output of stage {stage}"))
        })?;
        // One fetch per partition, from every producer that has it.
        let mut by_part: BTreeMap<u32, Vec<ProducerOutput>> = BTreeMap::new();
        for (task, part) in sources {
            let p = producers.get(&(task as u32)).ok_or_else(|| {
                DataFusionError::Execution(format!(
                    "no location for stage {stage} task {task} (its output is not complete)"
                ))
            })?;
            by_part.entry(part as u32).or_default().push(p.clone());
        }
        let fetcher = Arc::clone(&self.fetcher);
        let job = self.job.clone();
        let spill_dir = self.spill_dir.clone();
        let lost = self.lost.clone();
        let mut builder = RecordBatchReceiverStream::builder(schema, 2);
        let tx = builder.tx();
        let local = self.local.clone();
        builder.spawn(async move {
            for (part, mut producers) in by_part {
                if let Some(local) = &local {
                    let (here, remote): (Vec<_>, Vec<_>) = producers
                        .into_iter()
                        .partition(|p| p.shuffle == local.shuffle);
                    producers = remote;
                    for p in &here {
                        match read_local(&local.dir, (stage, part), p, tx.clone()).await {
                            Ok(decoded) => decoded?,
                            Err(why) => {
                                lost.record((stage, p.task), why.clone());
                                return Err(DataFusionError::Execution(why));
                            }
                        }
                    }
                }
                if producers.is_empty() {
                    continue;
                }
                let maps: Vec<MapOutputLocation> = producers
                    .iter()
                    .map(|p| MapOutputLocation {
                        map_attempt: MapAttemptId::new(map_id(stage, p.task), p.attempt),
                        host: p.shuffle,
                    })
                    .collect();
                let outcome = fetcher
                    .fetch(&job, part, &maps, &spill_dir)
                    .await
                    .map_err(|e| DataFusionError::External(Box::new(e)))?;
                if let Some(f) = outcome.failures.first() {
                    let producer = task_of_map_id(f.map_attempt.map);
                    let why = format!(
                        "cannot fetch partition {part} of stage {} task {} from {}: {}",
                        producer.0, producer.1, f.host, f.reason
                    );
                    lost.record(producer, why.clone());
                    return Err(DataFusionError::Execution(why));
                }
                for segment in outcome.segments {
                    let (_, task) = task_of_map_id(segment.map_attempt().map);
                    let Some(p) = producers.iter().find(|p| p.task == task) else {
                        continue;
                    };
                    let expected = p.partitions.get(part as usize).cloned().ok_or_else(|| {
                        DataFusionError::Execution(format!(
                            "stage {stage} task {task} wrote no partition {part}"
                        ))
                    })?;
                    let what = format!(
                        "partition {part} of stage {stage} task {task} from {}",
                        p.shuffle
                    );
                    let tx = tx.clone();
                    let decoded = tokio::task::spawn_blocking(move || {
                        let emit = |b| tx.blocking_send(Ok(b)).is_ok();
                        match segment {
                            FetchedSegment::Memory { bytes, .. } => {
                                let mut expected = expected;
                                expected.offset = 0;
                                read_partition(std::io::Cursor::new(bytes), &expected, &what, emit)
                            }
                            FetchedSegment::Disk { path, .. } => {
                                let mut expected = expected;
                                expected.offset = 0;
                                let r = read_partition_file(&path, &expected, emit);
                                let _ = std::fs::remove_file(&path);
                                r
                            }
                        }
                    })
                    .await
                    .map_err(|e| {
                        DataFusionError::External(Box::new(SqlError::io(
                            "decoding a fetched partition",
                            std::io::Error::other(e.to_string()),
                        )))
                    })?;
                    decoded?;
                }
            }
            Ok(())
        });
        Ok(builder.build())
    }
}
