//! Stage outputs: each task writes its output partitions as Arrow IPC streams (lz4 unless
//! `sheaf.sql.shuffle-compression=none`), one file per
//! partition with a CRC32 of its bytes, and a manifest written last that makes the task's output
//! visible (an attempt writes into its own directory and renames it into place, so a half-written
//! attempt is never read). Readers verify the checksum of every file they read.
//!
//! The files live in a local directory: the query's scratch dir in `--local` runs, the NodeManager's
//! local dir on a cluster, where the shuffle service serves them to the next stage.

use crate::error::{SqlError, SqlResult};
use crate::stages::{Stage, StageId, StageOutput};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::BatchCoalescer;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::{IpcWriteOptions, StreamWriter};
use datafusion::arrow::ipc::CompressionType;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::physical_plan::metrics;
use datafusion::physical_plan::repartition::BatchPartitioner;
use datafusion::physical_plan::stream::RecordBatchReceiverStream;
use datafusion::physical_plan::SendableRecordBatchStream;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Name of a task's manifest (written last).
const MANIFEST: &str = "manifest.json";
/// Name of a task's data file: its output partitions one after the other, each an Arrow IPC stream.
pub const DATA_FILE: &str = "data.arrows";
/// Batches buffered between the plan and the writer thread.
const WRITE_QUEUE: usize = 4;

/// One output partition of a task: a byte range of the task's data file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionFile {
    /// Where it starts in the task's data file.
    #[serde(default)]
    pub offset: u64,
    /// Rows in it.
    pub rows: u64,
    /// Bytes of it (compressed IPC).
    pub bytes: u64,
    /// CRC32 of its bytes.
    pub crc32: u32,
}

/// What a finished task wrote: one entry per output partition.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskManifest {
    /// The output partitions, by index.
    pub partitions: Vec<PartitionFile>,
}

impl TaskManifest {
    /// Rows over all partitions.
    pub fn rows(&self) -> u64 {
        self.partitions.iter().map(|p| p.rows).sum()
    }

    /// Bytes over all partitions.
    pub fn bytes(&self) -> u64 {
        self.partitions.iter().map(|p| p.bytes).sum()
    }
}

/// Opens producer partitions for a [`crate::stages::StageReaderExec`]: the executor puts one
/// of these into every task's session config.
pub trait StageSource: Send + Sync + fmt::Debug {
    /// A stream over output `part` of `task` of `stage`.
    fn open_partition(
        &self,
        stage: StageId,
        task: usize,
        part: usize,
        schema: SchemaRef,
    ) -> Result<SendableRecordBatchStream>;

    /// One stream over the given (producer task, partition) pairs of `stage`. By default they are
    /// read one after the other; a source on the network fetches them together.
    fn open_many(
        &self,
        stage: StageId,
        sources: Vec<(usize, usize)>,
        schema: SchemaRef,
    ) -> Result<SendableRecordBatchStream> {
        let mut streams = Vec::with_capacity(sources.len());
        for (task, part) in sources {
            streams.push(self.open_partition(stage, task, part, Arc::clone(&schema))?);
        }
        let merged = futures::stream::iter(streams).flatten();
        Ok(Box::pin(
            datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(schema, merged),
        ))
    }
}

/// The session-config extension saying how a session's tasks write their outputs.
#[derive(Debug, Clone, Copy)]
pub struct StageWriteOptions {
    /// lz4-compress the IPC buffers (`sheaf.sql.shuffle-compression`).
    pub compress: bool,
}

impl Default for StageWriteOptions {
    fn default() -> Self {
        StageWriteOptions { compress: true }
    }
}

/// The session-config extension through which stage readers find their inputs.
#[derive(Debug, Clone)]
pub struct StageInputs {
    source: Arc<dyn StageSource>,
}

impl StageInputs {
    /// Inputs served by `source`.
    pub fn new(source: Arc<dyn StageSource>) -> StageInputs {
        StageInputs { source }
    }

    /// One stream over the given (producer task, partition) pairs.
    pub fn open(
        &self,
        stage: StageId,
        sources: Vec<(usize, usize)>,
        schema: SchemaRef,
    ) -> Result<SendableRecordBatchStream> {
        self.source.open_many(stage, sources, schema)
    }
}

/// Stage outputs in a local directory: `<root>/stage-<s>/task-<t>/part-<p>.arrow` + manifest.
#[derive(Debug, Clone)]
pub struct LocalStageDir {
    root: PathBuf,
}

impl LocalStageDir {
    /// Outputs under `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> LocalStageDir {
        LocalStageDir { root: root.into() }
    }

    /// The directory of a task's committed output.
    pub fn task_dir(&self, stage: StageId, task: usize) -> PathBuf {
        self.root
            .join(format!("stage-{stage}"))
            .join(format!("task-{task}"))
    }

    fn part_path(dir: &Path, part: usize) -> PathBuf {
        dir.join(format!("part-{part}.arrow"))
    }

    /// The data file of a task's committed output (served to other nodes by the shuffle service).
    pub fn data_path(&self, stage: StageId, task: usize) -> PathBuf {
        self.task_dir(stage, task).join(DATA_FILE)
    }

    /// The manifest of a committed task output, if there is one.
    pub fn manifest(&self, stage: StageId, task: usize) -> SqlResult<Option<TaskManifest>> {
        let path = self.task_dir(stage, task).join(MANIFEST);
        match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| SqlError::CorruptStageOutput {
                        path: path.display().to_string(),
                        reason: e.to_string(),
                    })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(SqlError::io(format!("reading {}", path.display()), e)),
        }
    }

    /// Forgets a task's output (its files were lost or are being recomputed).
    pub fn remove_task(&self, stage: StageId, task: usize) -> SqlResult<()> {
        let dir = self.task_dir(stage, task);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(SqlError::io(format!("removing {}", dir.display()), e)),
        }
    }

    /// Removes every stage output of the query (called whatever the query's outcome).
    pub fn remove_all(&self) -> SqlResult<()> {
        match std::fs::remove_dir_all(&self.root) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(SqlError::io(format!("removing {}", self.root.display()), e)),
        }
    }

    /// Runs task `task` of `stage` (attempt `attempt`) and commits its output; returns what it
    /// wrote. The plan runs on the caller's runtime; partitioning, encoding and file writes run on a
    /// blocking thread.
    pub async fn run_task(
        &self,
        stage: &Stage,
        task: usize,
        attempt: u32,
        ctx: Arc<TaskContext>,
    ) -> SqlResult<TaskManifest> {
        let final_dir = self.task_dir(stage.id, task);
        let attempt_dir = self
            .root
            .join(format!("stage-{}", stage.id))
            .join(format!("_attempt-{task}-{attempt}"));
        let prepare = attempt_dir.clone();
        blocking(move || {
            let _ = std::fs::remove_dir_all(&prepare);
            std::fs::create_dir_all(&prepare)
                .map_err(|e| SqlError::io(format!("creating {}", prepare.display()), e))
        })
        .await?;
        let result = self.write_attempt(stage, task, ctx, &attempt_dir).await;
        let this = self.clone();
        let stage_id = stage.id;
        blocking(move || match result {
            Err(e) => {
                let _ = std::fs::remove_dir_all(&attempt_dir);
                Err(e)
            }
            // Commit: the first attempt to rename its directory into place wins.
            Ok(manifest) => match std::fs::rename(&attempt_dir, &final_dir) {
                Ok(()) => Ok(manifest),
                Err(_) if final_dir.join(MANIFEST).exists() => {
                    let _ = std::fs::remove_dir_all(&attempt_dir);
                    this.manifest(stage_id, task)?
                        .ok_or_else(|| SqlError::CorruptStageOutput {
                            path: final_dir.display().to_string(),
                            reason: "committed output vanished".into(),
                        })
                }
                Err(e) => Err(SqlError::io(
                    format!(
                        "committing {} to {}",
                        attempt_dir.display(),
                        final_dir.display()
                    ),
                    e,
                )),
            },
        })
        .await
    }

    /// Runs the fragment and writes its partitions into `attempt_dir`.
    async fn write_attempt(
        &self,
        stage: &Stage,
        task: usize,
        ctx: Arc<TaskContext>,
        attempt_dir: &Path,
    ) -> SqlResult<TaskManifest> {
        let mut stream = stage.plan.execute(task, Arc::clone(&ctx))?;
        let (tx, rx) = tokio::sync::mpsc::channel::<RecordBatch>(WRITE_QUEUE);
        let options = ctx
            .session_config()
            .get_extension::<StageWriteOptions>()
            .map(|o| *o)
            .unwrap_or_default();
        let writer = PartitionWriter::new(
            attempt_dir.to_path_buf(),
            stage.plan.schema(),
            &stage.output,
            (task, stage.tasks()),
            options,
            ctx.session_config().batch_size(),
        )?;
        let writing = tokio::task::spawn_blocking(move || writer.write_all(rx));
        let mut failure = None;
        while let Some(batch) = stream.next().await {
            match batch {
                Ok(batch) => {
                    if tx.send(batch).await.is_err() {
                        break;
                    }
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        drop(tx);
        let written = writing.await.map_err(|e| {
            SqlError::DataFusion(DataFusionError::Execution(format!(
                "stage {} task {task}: writer thread failed: {e}",
                stage.id
            )))
        });
        if let Some(e) = failure {
            return Err(crate::scan_errors::locate(e, &stage.plan, task, &ctx)
                .await
                .into());
        }
        written?
    }
}

/// Runs file-system work on a blocking thread, off the async runtime.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> SqlResult<T> + Send + 'static,
) -> SqlResult<T> {
    tokio::task::spawn_blocking(work).await.map_err(|e| {
        SqlError::io(
            "stage output file work",
            std::io::Error::other(e.to_string()),
        )
    })?
}

impl StageSource for LocalStageDir {
    fn open_partition(
        &self,
        stage: StageId,
        task: usize,
        part: usize,
        schema: SchemaRef,
    ) -> Result<SendableRecordBatchStream> {
        let dir = self.task_dir(stage, task);
        let manifest = self
            .manifest(stage, task)
            .map_err(|e| DataFusionError::External(Box::new(e)))?
            .ok_or_else(|| {
                DataFusionError::Execution(format!(
                    "output of stage {stage} task {task} is missing ({})",
                    dir.display()
                ))
            })?;
        let expected = manifest.partitions.get(part).cloned().ok_or_else(|| {
            DataFusionError::Execution(format!(
                "stage {stage} task {task} wrote {} partitions, partition {part} was asked for",
                manifest.partitions.len()
            ))
        })?;
        let path = dir.join(DATA_FILE);
        let mut builder = RecordBatchReceiverStream::builder(schema, 2);
        let tx = builder.tx();
        builder.spawn_blocking(move || {
            read_partition_file(&path, &expected, |batch| {
                tx.blocking_send(Ok(batch)).is_ok()
            })
        });
        Ok(builder.build())
    }
}

/// Reads one partition (a byte range of a task's data file), handing each batch to `emit` (which
/// returns `false` to stop), and checks its length and CRC32 against its manifest entry.
pub fn read_partition_file(
    path: &Path,
    expected: &PartitionFile,
    emit: impl FnMut(RecordBatch) -> bool,
) -> Result<()> {
    if expected.bytes == 0 {
        return Ok(());
    }
    let what = path.display().to_string();
    let corrupt = |reason: String| {
        DataFusionError::External(Box::new(SqlError::CorruptStageOutput {
            path: what.clone(),
            reason,
        }))
    };
    let mut file = File::open(path).map_err(|e| corrupt(format!("cannot open: {e}")))?;
    file.seek(SeekFrom::Start(expected.offset))
        .map_err(|e| corrupt(format!("cannot seek to {}: {e}", expected.offset)))?;
    let range = BufReader::with_capacity(1 << 20, file).take(expected.bytes);
    read_partition(range, expected, &what, emit)
}

/// Decodes one partition's IPC stream from `source` (exactly its bytes), checking its length and
/// CRC32 against `expected`; `what` names it in errors (a file, or a producer on another node).
pub fn read_partition(
    source: impl Read,
    expected: &PartitionFile,
    what: &str,
    mut emit: impl FnMut(RecordBatch) -> bool,
) -> Result<()> {
    if expected.bytes == 0 {
        return Ok(());
    }
    let corrupt = |reason: String| {
        DataFusionError::External(Box::new(SqlError::CorruptStageOutput {
            path: what.to_string(),
            reason,
        }))
    };
    let mut checked = CrcReader::new(source);
    {
        let reader = StreamReader::try_new(&mut checked, None)?;
        for batch in reader {
            if !emit(batch?) {
                return Ok(());
            }
        }
    }
    // The IPC end-of-stream marker ends the reader; anything after it is damage too.
    let mut rest = Vec::new();
    checked
        .read_to_end(&mut rest)
        .map_err(|e| corrupt(format!("read failed: {e}")))?;
    if checked.len != expected.bytes || checked.hasher.clone().finalize() != expected.crc32 {
        return Err(corrupt(format!(
            "checksum mismatch ({} bytes, expected {}): the data is damaged",
            checked.len, expected.bytes
        )));
    }
    Ok(())
}

/// Writes a task's output partitions from batches arriving on a channel. A hash partitioner
/// cuts each batch into one small piece per partition: pieces are gathered into batches of the
/// session's batch size before they are written, so the files hold few, large IPC messages.
struct PartitionWriter {
    dir: PathBuf,
    schema: SchemaRef,
    partitioner: Option<BatchPartitioner>,
    files: Vec<Option<StreamWriter<CrcWriter<BufWriter<File>>>>>,
    pending: Vec<BatchCoalescer>,
    rows: Vec<u64>,
    options: StageWriteOptions,
}

impl PartitionWriter {
    fn new(
        dir: PathBuf,
        schema: SchemaRef,
        output: &StageOutput,
        (task, tasks): (usize, usize),
        options: StageWriteOptions,
        batch_size: usize,
    ) -> SqlResult<PartitionWriter> {
        let partitioner = match output {
            StageOutput::Passthrough => None,
            StageOutput::Repartition(p) => Some(BatchPartitioner::try_new(
                p.clone(),
                metrics::Time::new(),
                task,
                tasks.max(1),
            )?),
        };
        let n = output.partitions();
        Ok(PartitionWriter {
            dir,
            pending: (0..n)
                .map(|_| BatchCoalescer::new(Arc::clone(&schema), batch_size.max(1)))
                .collect(),
            schema,
            partitioner,
            files: (0..n).map(|_| None).collect(),
            rows: vec![0; n],
            options,
        })
    }

    fn write_all(
        mut self,
        mut rx: tokio::sync::mpsc::Receiver<RecordBatch>,
    ) -> SqlResult<TaskManifest> {
        while let Some(batch) = rx.blocking_recv() {
            if batch.num_rows() == 0 {
                continue;
            }
            match self.partitioner.as_mut() {
                None => self.gather(0, batch)?,
                Some(partitioner) => {
                    let mut parts = Vec::new();
                    partitioner.partition(batch, |p, b| {
                        parts.push((p, b));
                        Ok(())
                    })?;
                    for (p, b) in parts {
                        self.gather(p, b)?;
                    }
                }
            }
        }
        for part in 0..self.pending.len() {
            self.pending[part]
                .finish_buffered_batch()
                .map_err(DataFusionError::from)?;
            self.write_completed(part)?;
        }
        self.finish()
    }

    /// Adds a piece of partition `part`, writing the batches it completes.
    fn gather(&mut self, part: usize, batch: RecordBatch) -> SqlResult<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.pending[part]
            .push_batch(batch)
            .map_err(DataFusionError::from)?;
        self.write_completed(part)
    }

    fn write_completed(&mut self, part: usize) -> SqlResult<()> {
        while let Some(batch) = self.pending[part].next_completed_batch() {
            self.write(part, &batch)?;
        }
        Ok(())
    }

    fn write(&mut self, part: usize, batch: &RecordBatch) -> SqlResult<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if self.files[part].is_none() {
            let path = LocalStageDir::part_path(&self.dir, part);
            let file = File::create(&path)
                .map_err(|e| SqlError::io(format!("creating {}", path.display()), e))?;
            let options = IpcWriteOptions::default()
                .try_with_compression(self.options.compress.then_some(CompressionType::LZ4_FRAME))
                .map_err(DataFusionError::from)?;
            let writer = StreamWriter::try_new_with_options(
                CrcWriter::new(BufWriter::with_capacity(1 << 20, file)),
                &self.schema,
                options,
            )
            .map_err(DataFusionError::from)?;
            self.files[part] = Some(writer);
        }
        if let Some(writer) = self.files[part].as_mut() {
            writer.write(batch).map_err(DataFusionError::from)?;
        }
        self.rows[part] += batch.num_rows() as u64;
        Ok(())
    }

    /// Ends every partition's stream and lays them out one after the other in the data file
    /// (one file per task is what the shuffle service serves by byte ranges), manifest last.
    fn finish(self) -> SqlResult<TaskManifest> {
        let io = |what: &str, path: &Path, e: std::io::Error| {
            SqlError::io(format!("{what} {}", path.display()), e)
        };
        let mut manifest = TaskManifest::default();
        let data_path = self.dir.join(DATA_FILE);
        let mut data = File::create(&data_path).map_err(|e| io("creating", &data_path, e))?;
        let mut offset = 0u64;
        for (part, file) in self.files.into_iter().enumerate() {
            let entry = match file {
                None => PartitionFile {
                    offset,
                    ..PartitionFile::default()
                },
                Some(mut writer) => {
                    writer.finish().map_err(DataFusionError::from)?;
                    let mut crc = writer.into_inner().map_err(DataFusionError::from)?;
                    crc.inner.flush().map_err(|e| io("writing", &self.dir, e))?;
                    drop(crc.inner);
                    let part_path = LocalStageDir::part_path(&self.dir, part);
                    let mut src =
                        File::open(&part_path).map_err(|e| io("reopening", &part_path, e))?;
                    // copy_file_range on Linux: the bytes do not pass through this process.
                    let copied = std::io::copy(&mut src, &mut data)
                        .map_err(|e| io("appending to", &data_path, e))?;
                    std::fs::remove_file(&part_path).map_err(|e| io("removing", &part_path, e))?;
                    let entry = PartitionFile {
                        offset,
                        rows: self.rows[part],
                        bytes: crc.len,
                        crc32: crc.hasher.finalize(),
                    };
                    offset += copied;
                    entry
                }
            };
            manifest.partitions.push(entry);
        }
        // Not fsync'd: a lost stage output is recomputed from its lineage, like a map output.
        let path = self.dir.join(MANIFEST);
        let bytes = serde_json::to_vec(&manifest)
            .map_err(|e| SqlError::io("encoding a manifest", std::io::Error::other(e)))?;
        std::fs::write(&path, bytes).map_err(|e| io("writing", &path, e))?;
        Ok(manifest)
    }
}

/// Counts and checksums the bytes written through it.
struct CrcWriter<W> {
    inner: W,
    hasher: crc32fast::Hasher,
    len: u64,
}

impl<W> CrcWriter<W> {
    fn new(inner: W) -> Self {
        CrcWriter {
            inner,
            hasher: crc32fast::Hasher::new(),
            len: 0,
        }
    }
}

impl<W: Write> Write for CrcWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Counts and checksums the bytes read through it.
struct CrcReader<R> {
    inner: R,
    hasher: crc32fast::Hasher,
    len: u64,
}

impl<R> CrcReader<R> {
    fn new(inner: R) -> Self {
        CrcReader {
            inner,
            hasher: crc32fast::Hasher::new(),
            len: 0,
        }
    }
}

impl<R: Read> Read for CrcReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
}
