//! The local runner: one process, no daemons. Computes splits, runs every map task and then
//! every reduce task on a pool of slots (threads), and commits the output like Hadoop.

pub mod commit;

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::api::partition::prepare_total_order;
use crate::api::{JobConf, JobDefinition, TaskError};
use crate::counters::{
    Counters, COMBINE_INPUT_RECORDS, COMBINE_OUTPUT_RECORDS, FILE_BYTES_READ, FILE_BYTES_WRITTEN,
    MAP_INPUT_RECORDS, MAP_OUTPUT_BYTES, MAP_OUTPUT_RECORDS, REDUCE_INPUT_GROUPS,
    REDUCE_INPUT_RECORDS, REDUCE_OUTPUT_RECORDS, REDUCE_SHUFFLE_BYTES, SHUFFLED_MAPS,
    SPILLED_RECORDS,
};
use crate::formats::{compute_splits, FormatError, InputFormat, InputSplit, OutputFormat};
use crate::fs::{DfsAccess, FsError, JobFileSystems, JobPath};
use crate::task::error::{EngineError, EngineResult, IoContext};
use crate::task::map_task::{run_map_only_task, run_map_task, MapOutput, MapTaskSpec};
use crate::task::reduce_task::{run_reduce_task, ReduceTaskSpec};
use crate::task::settings::TaskSettings;

use commit::fs_failed;
pub use commit::{OutputCommitter, COMMITTED_DIR, SUCCESS_MARKER, TEMPORARY_DIR};

/// Default split size: Hadoop's default block size.
pub const DEFAULT_SPLIT_SIZE: u64 = 128 << 20;
/// Conf key the runner sets to the comma-separated input paths (Hadoop's name).
pub const INPUT_DIR_KEY: &str = "mapreduce.input.fileinputformat.inputdir";
/// Conf key the runner sets to the output directory (Hadoop's name).
pub const OUTPUT_DIR_KEY: &str = "mapreduce.output.fileoutputformat.outputdir";
/// Conf key the runner sets to the number of reducers (Hadoop's name).
pub const REDUCES_KEY: &str = "mapreduce.job.reduces";
/// Framework counters every job with reducers reports, zero or not.
const ALL_FRAMEWORK_COUNTERS: [&str; 11] = [
    MAP_INPUT_RECORDS,
    MAP_OUTPUT_RECORDS,
    MAP_OUTPUT_BYTES,
    COMBINE_INPUT_RECORDS,
    COMBINE_OUTPUT_RECORDS,
    SPILLED_RECORDS,
    REDUCE_SHUFFLE_BYTES,
    SHUFFLED_MAPS,
    REDUCE_INPUT_GROUPS,
    REDUCE_INPUT_RECORDS,
    REDUCE_OUTPUT_RECORDS,
];
/// Framework counters a map-only job reports.
const MAP_ONLY_COUNTERS: [&str; 2] = [MAP_INPUT_RECORDS, MAP_OUTPUT_RECORDS];
/// Group of job-level counters.
pub const JOB_GROUP: &str = "Job Counters";

/// Conf key: local directory for intermediate data (spills, map outputs) of jobs whose output
/// is not on the local disk (Hadoop's name; default the system temporary directory).
pub const LOCAL_DIR_KEY: &str = "mapreduce.cluster.local.dir";

/// What to run and where.
#[derive(Debug, Clone)]
pub struct LocalJobConfig {
    /// Input files or directories (a directory means its non-hidden files): local paths or DFS
    /// paths (`sheaf://host:port/abs`, `sheaf:///abs`), see [`JobPath`].
    pub inputs: Vec<PathBuf>,
    /// Output directory (local or DFS); must not exist.
    pub output: PathBuf,
    /// Reduce tasks; 0 makes a map-only job.
    pub reducers: u32,
    /// Bytes per input split.
    pub split_size: u64,
    /// Tasks run at once.
    pub slots: usize,
    /// Job configuration (engine settings, formats, job parameters).
    pub conf: JobConf,
    /// How to reach the DFS for `sheaf://` paths; `None` allows local paths only.
    pub dfs: Option<DfsAccess>,
}

impl LocalJobConfig {
    /// A config with one reducer, the default split size and one slot per core.
    pub fn new(inputs: Vec<PathBuf>, output: PathBuf) -> Self {
        LocalJobConfig {
            inputs,
            output,
            reducers: 1,
            split_size: DEFAULT_SPLIT_SIZE,
            slots: default_slots(),
            conf: JobConf::default(),
            dfs: None,
        }
    }
}

/// One slot per available core.
pub fn default_slots() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// The outcome of a successful job.
#[derive(Debug, Clone)]
pub struct JobReport {
    /// Counters of every task, merged.
    pub counters: Counters,
    /// Map tasks run.
    pub maps: usize,
    /// Reduce tasks run.
    pub reduces: usize,
    /// Wall time of the job.
    pub elapsed: Duration,
}

/// Lists the input files: a file as is, a directory's visible regular files (names starting
/// with `_` or `.` are hidden, as in Hadoop), on the local disk or a DFS. A missing path is an
/// error. Paths come back as [`JobPath::to_path_buf`] forms (what input splits carry).
pub fn list_input_files(
    filesystems: &JobFileSystems,
    inputs: &[PathBuf],
) -> EngineResult<Vec<(PathBuf, u64)>> {
    if inputs.is_empty() {
        return Err(EngineError::Job("no input paths given".into()));
    }
    let mut files = Vec::new();
    for input in inputs {
        let path = job_path(input)?;
        let fs = filesystems
            .for_path(&path)
            .map_err(|e| EngineError::Job(e.to_string()))?;
        let entries = fs.input_files(&path).map_err(|e| match e {
            FsError::NotFound(_) => EngineError::Job(format!("Input path does not exist: {path}")),
            e => fs_failed(format!("reading input path {path}"), e),
        })?;
        files.extend(entries.into_iter().map(|e| (e.path.to_path_buf(), e.len)));
    }
    Ok(files)
}

/// A path argument as a [`JobPath`]; malformed ones are a job error.
fn job_path(path: &Path) -> EngineResult<JobPath> {
    JobPath::from_path(path).map_err(|e| EngineError::Job(e.to_string()))
}

/// Turns a panic payload into its message.
pub(crate) fn panic_message(payload: Box<dyn Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".into()
    }
}

/// Runs `count` tasks on `slots` threads; stops handing out tasks after the first failure (and
/// raises `cancel` so running tasks stop early). Returns every result in task order, or the first
/// error.
fn run_pool<T: Send>(
    kind: &str,
    count: usize,
    slots: usize,
    cancel: &AtomicBool,
    task: impl Fn(usize) -> EngineResult<T> + Sync,
) -> EngineResult<Vec<T>> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<T>>> = Mutex::new((0..count).map(|_| None).collect());
    let first_error: Mutex<Option<EngineError>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..slots.clamp(1, count.max(1)) {
            scope.spawn(|| loop {
                if cancel.load(Ordering::Relaxed) {
                    return;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return;
                }
                let outcome = catch_unwind(AssertUnwindSafe(|| task(i))).unwrap_or_else(|p| {
                    Err(EngineError::Task(TaskError::new(format!(
                        "{kind} task {i} panicked: {}",
                        panic_message(p)
                    ))))
                });
                match outcome {
                    Ok(v) => {
                        if let Ok(mut r) = results.lock() {
                            r[i] = Some(v);
                        }
                    }
                    Err(e) => {
                        cancel.store(true, Ordering::Relaxed);
                        if let Ok(mut slot) = first_error.lock() {
                            // Keep the root cause, not the cancellations it triggered.
                            if slot.is_none() {
                                *slot = Some(e);
                            }
                        }
                        return;
                    }
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().ok().flatten() {
        return Err(e);
    }
    let results = results
        .into_inner()
        .map_err(|_| EngineError::Job("task pool poisoned".into()))?;
    results
        .into_iter()
        .enumerate()
        .map(|(i, r)| r.ok_or_else(|| EngineError::Job(format!("task {i} did not run"))))
        .collect()
}

fn describe(split: &InputSplit) -> String {
    format!("{}:{}+{}", split.path.display(), split.start, split.length)
}

/// Opens the file of `split` wherever it lives.
fn open_split_source(
    filesystems: &JobFileSystems,
    split: &InputSplit,
) -> Result<Box<dyn crate::fs::JobFileReader>, FsError> {
    let path = JobPath::from_path(&split.path)?;
    filesystems.for_path(&path)?.open(&path)
}

/// Opens a record reader over `split` (wherever its file lives) in `format`; the local runner
/// and cluster map tasks read their splits this way.
pub fn open_split(
    filesystems: &JobFileSystems,
    format: &InputFormat,
    split: &InputSplit,
) -> EngineResult<Box<dyn crate::formats::RecordReader + Send>> {
    let source = open_split_source(filesystems, split)
        .map_err(|e| fs_failed(format!("opening input {}", split.path.display()), e))?;
    format
        .open(source, split)
        .map_err(|e| EngineError::Task(e.into()))
}

/// Writes one task's output file `path` through `format`: `write` produces the records, then the
/// file is closed (and, on a DFS, completed) before the task may commit.
fn write_output<T>(
    committer: &OutputCommitter,
    format: &OutputFormat,
    path: &JobPath,
    write: impl FnOnce(&mut dyn crate::formats::RecordWriter) -> EngineResult<T>,
) -> EngineResult<T> {
    write_output_file(committer.fs().as_ref(), format, path, write)
}

/// Creates the task output file `path` on `fs`, lets `write` produce its records through
/// `format`, then closes the file (a DFS file is completed only then), so the caller may commit
/// or report it. Shared by the local runner and cluster tasks.
pub fn write_output_file<T>(
    fs: &dyn crate::fs::JobFileSystem,
    format: &OutputFormat,
    path: &JobPath,
    write: impl FnOnce(&mut dyn crate::formats::RecordWriter) -> EngineResult<T>,
) -> EngineResult<T> {
    let mut file = fs
        .create(path)
        .map_err(|e| fs_failed(format!("creating output {path}"), e))?;
    let result = {
        let mut writer = format
            .create(&mut file)
            .map_err(|e| EngineError::Task(e.into()))?;
        write(writer.as_mut())?
    };
    file.close()
        .map_err(|e| fs_failed(format!("closing output {path}"), e))?;
    Ok(result)
}

/// Local directory for a job's intermediate data: inside the output's `_temporary` when the
/// output is local (one filesystem, removed with it), else a fresh directory under
/// [`LOCAL_DIR_KEY`] that is removed when the job ends.
struct Scratch {
    root: PathBuf,
    remove_on_drop: bool,
}

impl Scratch {
    fn new(output: &JobPath, conf: &JobConf) -> EngineResult<Scratch> {
        let (root, remove_on_drop) = match output {
            JobPath::Local(out) => (out.join(TEMPORARY_DIR).join("_scratch"), false),
            JobPath::Dfs { .. } => {
                let base = conf
                    .get(LOCAL_DIR_KEY)
                    .map(PathBuf::from)
                    .unwrap_or_else(std::env::temp_dir);
                let unique = format!(
                    "sheaf-job-{}-{:016x}",
                    std::process::id(),
                    rand::random::<u64>()
                );
                (base.join(unique), true)
            }
        };
        std::fs::create_dir_all(&root).ctx(|| format!("creating {}", root.display()))?;
        Ok(Scratch {
            root,
            remove_on_drop,
        })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.remove_on_drop {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}

/// A fresh empty local directory.
fn fresh_dir(dir: &Path) -> EngineResult<PathBuf> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).ctx(|| format!("clearing {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).ctx(|| format!("creating {}", dir.display()))?;
    Ok(dir.to_path_buf())
}

/// Completes a job's configuration as every driver (local runner, JobTracker) must before
/// splitting: the job's own defaults (e.g. its input format) for keys the user did not set, then
/// Hadoop's input, output and reduces keys.
pub fn complete_job_conf(
    conf: &mut JobConf,
    job: &dyn JobDefinition,
    inputs: &[String],
    output: &str,
    reducers: u32,
) {
    conf.apply_defaults(&job.default_conf());
    conf.set(INPUT_DIR_KEY, inputs.join(","));
    conf.set(OUTPUT_DIR_KEY, output.to_string());
    conf.set(REDUCES_KEY, reducers.to_string());
}

/// Runs `job` locally as described by `config`. On failure the output directory holds no
/// `_SUCCESS` and no `_temporary`.
pub fn run_local_job(
    job: Arc<dyn JobDefinition>,
    config: &LocalJobConfig,
) -> EngineResult<JobReport> {
    let started = Instant::now();
    let filesystems = JobFileSystems::new(config.dfs.clone());
    let output = job_path(&config.output)?;
    let output_fs = filesystems
        .for_path(&output)
        .map_err(|e| EngineError::Job(e.to_string()))?;
    let files = list_input_files(&filesystems, &config.inputs)?;
    let mut conf = config.conf.clone();
    let joined: Vec<String> = config
        .inputs
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    complete_job_conf(
        &mut conf,
        job.as_ref(),
        &joined,
        &config.output.display().to_string(),
        config.reducers,
    );
    let settings = TaskSettings::from_conf(&conf)?;
    let input_format =
        InputFormat::from_conf(&conf).map_err(|e| EngineError::Config(e.to_string()))?;
    let output_format =
        OutputFormat::from_conf(&conf).map_err(|e| EngineError::Config(e.to_string()))?;
    let splits = compute_splits(&files, config.split_size);
    if config.reducers > 0 {
        // Total-order jobs sample their input here, once, so every map uses the same boundaries.
        prepare_total_order(&mut conf, job.as_ref(), &splits, config.reducers, |s| {
            open_split_source(&filesystems, s).map_err(|e| FormatError::Io(e.into_io()))
        })?;
    }
    let committer = OutputCommitter::setup(output_fs, &output)?;
    let scratch = match Scratch::new(&output, &conf) {
        Ok(s) => s,
        Err(e) => {
            committer.abort_job();
            return Err(e);
        }
    };
    let conf = Arc::new(conf);
    let result = run_tasks(
        &filesystems,
        &scratch,
        &job,
        &conf,
        &settings,
        &input_format,
        &output_format,
        &splits,
        config,
        &committer,
    )
    .and_then(|counters| {
        committer.commit_job()?;
        Ok(counters)
    });
    match result {
        Ok(mut counters) => {
            // Hadoop lists the framework counters even when they stayed at zero.
            let names: &[&str] = if config.reducers == 0 {
                &MAP_ONLY_COUNTERS
            } else {
                &ALL_FRAMEWORK_COUNTERS
            };
            for name in names {
                counters.incr_task(name, 0);
            }
            counters.incr_fs(FILE_BYTES_READ, 0);
            counters.incr_fs(FILE_BYTES_WRITTEN, 0);
            counters.incr(JOB_GROUP, "TOTAL_LAUNCHED_MAPS", splits.len() as i64);
            counters.incr(JOB_GROUP, "TOTAL_LAUNCHED_REDUCES", config.reducers as i64);
            Ok(JobReport {
                counters,
                maps: splits.len(),
                reduces: config.reducers as usize,
                elapsed: started.elapsed(),
            })
        }
        Err(e) => {
            committer.abort_job();
            Err(e)
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn run_tasks(
    filesystems: &JobFileSystems,
    scratch: &Scratch,
    job: &Arc<dyn JobDefinition>,
    conf: &Arc<JobConf>,
    settings: &TaskSettings,
    input_format: &InputFormat,
    output_format: &OutputFormat,
    splits: &[InputSplit],
    config: &LocalJobConfig,
    committer: &OutputCommitter,
) -> EngineResult<Counters> {
    let cancel = Arc::new(AtomicBool::new(false));
    let slots = config.slots.max(1);
    let mut counters = Counters::new();
    if config.reducers == 0 {
        let per_map = run_pool("map", splits.len(), slots, &cancel, |i| {
            let split = &splits[i];
            let name = format!("part-m-{i:05}");
            let attempt = committer.attempt_dir(&format!("attempt_m_{i:06}"))?;
            let task = || -> EngineResult<Counters> {
                let mut reader = open_split(filesystems, input_format, split)?;
                write_output(committer, output_format, &attempt.join(&name), |writer| {
                    run_map_only_task(job.as_ref(), conf, reader.as_mut(), writer, &cancel)
                })
            };
            let c = task().map_err(|e| task_failed("map", i, &describe(split), e))?;
            committer.commit_task(&attempt, &name)?;
            Ok(c)
        })?;
        per_map.iter().for_each(|c| counters.merge(c));
        return Ok(counters);
    }

    // Spills and map outputs stay on local disk wherever the job's input and output live.
    let scratch_root = &scratch.root;
    let map_results: Vec<(MapOutput, Counters)> =
        run_pool("map", splits.len(), slots, &cancel, |i| {
            let split = &splits[i];
            let scratch = fresh_dir(&scratch_root.join(format!("attempt_m_{i:06}")))?;
            let spec = MapTaskSpec {
                job: job.clone(),
                conf: conf.clone(),
                settings: settings.clone(),
                partitions: config.reducers,
                scratch: scratch.clone(),
                output: scratch_root.join(format!("map_{i:06}.out")),
                cancel: cancel.clone(),
            };
            let task = || -> EngineResult<(MapOutput, Counters)> {
                let mut reader = open_split(filesystems, input_format, split)?;
                run_map_task(&spec, reader.as_mut())
            };
            let out = task().map_err(|e| task_failed("map", i, &describe(split), e))?;
            let _ = std::fs::remove_dir_all(&scratch);
            Ok(out)
        })?;
    for (_, c) in &map_results {
        counters.merge(c);
    }

    let per_reduce = run_pool("reduce", config.reducers as usize, slots, &cancel, |r| {
        let name = format!("part-r-{r:05}");
        let attempt = committer.attempt_dir(&format!("attempt_r_{r:06}"))?;
        let scratch = fresh_dir(&scratch_root.join(format!("attempt_r_{r:06}")))?;
        let spec = ReduceTaskSpec {
            job: job.clone(),
            conf: conf.clone(),
            settings: settings.clone(),
            scratch,
            cancel: cancel.clone(),
        };
        let task = || -> EngineResult<Counters> {
            let mut shuffle = spec.shuffle_buffer()?;
            for (output, _) in &map_results {
                let entry = output.index.get(r).ok_or_else(|| {
                    EngineError::Corrupt(format!(
                        "map output {} has no partition {r}",
                        output.path.display()
                    ))
                })?;
                shuffle.add_file_segment(&output.path, entry)?;
            }
            write_output(committer, output_format, &attempt.join(&name), |writer| {
                run_reduce_task(&spec, shuffle, writer)
            })
        };
        let c = task().map_err(|e| task_failed("reduce", r, &format!("partition {r}"), e))?;
        committer.commit_task(&attempt, &name)?;
        let _ = std::fs::remove_dir_all(&spec.scratch);
        Ok(c)
    })?;
    per_reduce.iter().for_each(|c| counters.merge(c));
    Ok(counters)
}

/// Prefixes a task failure with the task it happened in (cancellations pass through unchanged).
fn task_failed(kind: &str, index: usize, what: &str, e: EngineError) -> EngineError {
    match e {
        EngineError::Task(t) => EngineError::Task(TaskError::new(format!(
            "{kind} task {index} ({what}) failed: {}",
            t.0
        ))),
        EngineError::Io { context, source } => EngineError::Io {
            context: format!("{kind} task {index} ({what}): {context}"),
            source,
        },
        other => other,
    }
}

#[cfg(test)]
mod tests;
