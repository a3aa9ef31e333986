//! The local runner: one process, no daemons. Computes splits, runs every map task and then
//! every reduce task on a pool of slots (threads), and commits the output like Hadoop.

pub mod commit;

use std::any::Any;
use std::fs::File;
use std::io::BufWriter;
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
use crate::task::error::{EngineError, EngineResult, IoContext};
use crate::task::map_task::{run_map_only_task, run_map_task, MapOutput, MapTaskSpec};
use crate::task::reduce_task::{run_reduce_task, ReduceTaskSpec};
use crate::task::settings::TaskSettings;

pub use commit::{OutputCommitter, SUCCESS_MARKER, TEMPORARY_DIR};

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

/// What to run and where.
#[derive(Debug, Clone)]
pub struct LocalJobConfig {
    /// Input files or directories (a directory means its non-hidden files).
    pub inputs: Vec<PathBuf>,
    /// Output directory; must not exist.
    pub output: PathBuf,
    /// Reduce tasks; 0 makes a map-only job.
    pub reducers: u32,
    /// Bytes per input split.
    pub split_size: u64,
    /// Tasks run at once.
    pub slots: usize,
    /// Job configuration (engine settings, formats, job parameters).
    pub conf: JobConf,
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
/// with `_` or `.` are hidden, as in Hadoop). A missing path is an error.
pub fn list_input_files(inputs: &[PathBuf]) -> EngineResult<Vec<(PathBuf, u64)>> {
    if inputs.is_empty() {
        return Err(EngineError::Job("no input paths given".into()));
    }
    let mut files = Vec::new();
    for input in inputs {
        let meta = std::fs::metadata(input).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                EngineError::Job(format!("Input path does not exist: {}", input.display()))
            } else {
                EngineError::io(format!("reading input path {}", input.display()), e)
            }
        })?;
        if meta.is_dir() {
            let mut entries = Vec::new();
            for entry in std::fs::read_dir(input).ctx(|| format!("listing {}", input.display()))? {
                let entry = entry.ctx(|| format!("listing {}", input.display()))?;
                let name = entry.file_name();
                let hidden = name.to_string_lossy().starts_with(['_', '.']);
                let m = entry
                    .metadata()
                    .ctx(|| format!("reading {}", entry.path().display()))?;
                if !hidden && m.is_file() {
                    entries.push((entry.path(), m.len()));
                }
            }
            entries.sort();
            files.extend(entries);
        } else {
            files.push((input.clone(), meta.len()));
        }
    }
    Ok(files)
}

/// Turns a panic payload into its message.
fn panic_message(payload: Box<dyn Any + Send>) -> String {
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

fn open_split(
    format: &InputFormat,
    split: &InputSplit,
) -> EngineResult<Box<dyn crate::formats::RecordReader + Send>> {
    let file = File::open(&split.path).ctx(|| format!("opening input {}", split.path.display()))?;
    format
        .open(file, split)
        .map_err(|e| EngineError::Task(e.into()))
}

fn create_output(
    format: &OutputFormat,
    path: &Path,
) -> EngineResult<Box<dyn crate::formats::RecordWriter>> {
    let file = File::create(path).ctx(|| format!("creating output {}", path.display()))?;
    format
        .create(BufWriter::with_capacity(1 << 20, file))
        .map_err(|e| EngineError::Task(e.into()))
}

/// Runs `job` locally as described by `config`. On failure the output directory holds no
/// `_SUCCESS` and no `_temporary`.
pub fn run_local_job(
    job: Arc<dyn JobDefinition>,
    config: &LocalJobConfig,
) -> EngineResult<JobReport> {
    let started = Instant::now();
    let files = list_input_files(&config.inputs)?;
    let mut conf = config.conf.clone();
    // The job's own defaults (e.g. its input format) apply unless the user set the key.
    conf.apply_defaults(&job.default_conf());
    let joined: Vec<String> = config
        .inputs
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    conf.set(INPUT_DIR_KEY, joined.join(","));
    conf.set(OUTPUT_DIR_KEY, config.output.display().to_string());
    conf.set(REDUCES_KEY, config.reducers.to_string());
    let settings = TaskSettings::from_conf(&conf)?;
    let input_format =
        InputFormat::from_conf(&conf).map_err(|e| EngineError::Config(e.to_string()))?;
    let output_format =
        OutputFormat::from_conf(&conf).map_err(|e| EngineError::Config(e.to_string()))?;
    let splits = compute_splits(&files, config.split_size);
    if config.reducers > 0 {
        // Total-order jobs sample their input here, once, so every map uses the same boundaries.
        prepare_total_order(&mut conf, job.as_ref(), &splits, config.reducers, |s| {
            File::open(&s.path).map_err(FormatError::Io)
        })?;
    }
    let committer = OutputCommitter::setup(&config.output)?;
    let conf = Arc::new(conf);
    let result = run_tasks(
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
                let mut reader = open_split(input_format, split)?;
                let mut writer = create_output(output_format, &attempt.join(&name))?;
                run_map_only_task(
                    job.as_ref(),
                    conf,
                    reader.as_mut(),
                    writer.as_mut(),
                    &cancel,
                )
            };
            let c = task().map_err(|e| task_failed("map", i, &describe(split), e))?;
            committer.commit_task(&attempt, &name)?;
            Ok(c)
        })?;
        per_map.iter().for_each(|c| counters.merge(c));
        return Ok(counters);
    }

    let scratch_root = committer.temporary_dir().join("_scratch");
    let map_results: Vec<(MapOutput, Counters)> =
        run_pool("map", splits.len(), slots, &cancel, |i| {
            let split = &splits[i];
            let scratch = committer.attempt_dir(&format!("attempt_m_{i:06}"))?;
            std::fs::create_dir_all(&scratch_root)
                .ctx(|| format!("creating {}", scratch_root.display()))?;
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
                let mut reader = open_split(input_format, split)?;
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
        let scratch = attempt.join("scratch");
        std::fs::create_dir_all(&scratch).ctx(|| format!("creating {}", scratch.display()))?;
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
            let mut writer = create_output(output_format, &attempt.join(&name))?;
            run_reduce_task(&spec, shuffle, writer.as_mut())
        };
        let c = task().map_err(|e| task_failed("reduce", r, &format!("partition {r}"), e))?;
        committer.commit_task(&attempt, &name)?;
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
