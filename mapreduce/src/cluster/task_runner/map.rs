//! Map attempts on the cluster: the split is read through the DFS job filesystem (bound to the
//! task's host, so the local replica is read when there is one) and run through the same engine
//! functions as the local runner.

use std::path::PathBuf;

use crate::cluster::protocol::TaskAssignment;
use crate::formats::{InputFormat, OutputFormat};
use crate::local::{open_split, write_output_file};
use crate::shuffle::{shuffle_job_dir, JobSecret, MapAttemptId, ShuffleServiceClient};
use crate::task::{run_map_only_task, run_map_task, EngineError, MapTaskSpec, TaskSettings};

use super::{fresh_dir, AttemptContext, Finished, TaskRunnerError};

/// Name of a map's output data file in its directory under the shuffle dir (Hadoop's name).
pub const MAP_OUTPUT_FILE: &str = "file.out";

fn config_error(e: impl std::fmt::Display) -> EngineError {
    EngineError::Config(e.to_string())
}

/// The job's shuffle secret from the assignment's bytes.
pub fn job_secret(bytes: &[u8]) -> Result<JobSecret, TaskRunnerError> {
    JobSecret::from_slice(bytes).ok_or_else(|| {
        TaskRunnerError::BadAssignment(format!(
            "the shuffle secret has {} bytes, not {}",
            bytes.len(),
            crate::shuffle::protocol::JOB_SECRET_LEN
        ))
    })
}

/// The directory of a map attempt's output under the shuffle dir:
/// `<shuffle dir>/<job>/<JobTracker attempt>/<attempt>`. The JobTracker attempt keeps an orphan
/// of an earlier JobTracker attempt from writing where a same-numbered attempt of the current
/// one does.
pub fn map_output_dir(shuffle_dir: &std::path::Path, a: &TaskAssignment) -> PathBuf {
    shuffle_job_dir(shuffle_dir, &a.job_id)
        .join(a.app_attempt.to_string())
        .join(a.attempt.to_string())
}

/// Opens the assignment's split with the job's input format, tracking progress.
fn open_input(
    ctx: &AttemptContext,
) -> Result<Box<dyn crate::formats::RecordReader + Send + '_>, TaskRunnerError> {
    let split = ctx.assignment.split.as_ref().ok_or_else(|| {
        TaskRunnerError::BadAssignment(format!(
            "map attempt {} has no input split",
            ctx.assignment.attempt
        ))
    })?;
    let format = InputFormat::from_conf(&ctx.conf).map_err(config_error)?;
    let reader = open_split(&ctx.filesystems, &format, split)?;
    Ok(Box::new(ctx.progress.track_reader(reader)))
}

/// A map of a job with reducers: partitioned output under
/// `$SHEAF_SHUFFLE_DIR/<job>/<attempt>/file.out` (+ index), registered with the node's shuffle
/// service.
pub fn run_map_with_reducers(ctx: &AttemptContext) -> Result<Finished, TaskRunnerError> {
    let a = &ctx.assignment;
    let shuffle_dir = ctx.env.shuffle_dir.as_ref().ok_or_else(|| {
        TaskRunnerError::Environment(format!(
            "{} is not set: this container cannot keep map output for the shuffle",
            crate::cluster::submission::env::SHUFFLE_DIR
        ))
    })?;
    let shuffle_address = ctx.env.shuffle_address.ok_or_else(|| {
        TaskRunnerError::Environment(format!(
            "{} is not set: no shuffle service to register the map output with",
            crate::cluster::submission::env::SHUFFLE_ADDRESS
        ))
    })?;
    let secret = job_secret(&a.shuffle_secret)?;
    let attempt_dir: PathBuf = map_output_dir(shuffle_dir, a);
    let result = write_and_register(ctx, &attempt_dir, shuffle_address, &secret);
    if result.is_err() {
        // A failed attempt's partial output would stay until the job is removed from this
        // node's shuffle service, which never happens if no map of the job registered here.
        let _ = std::fs::remove_dir_all(&attempt_dir);
    }
    result
}

/// Runs the map into `attempt_dir` and registers the output with the shuffle service.
fn write_and_register(
    ctx: &AttemptContext,
    attempt_dir: &std::path::Path,
    shuffle_address: std::net::SocketAddr,
    secret: &JobSecret,
) -> Result<Finished, TaskRunnerError> {
    let a = &ctx.assignment;
    fresh_dir(attempt_dir)?;
    let scratch = attempt_dir.join("spill");
    fresh_dir(&scratch)?;
    let spec = MapTaskSpec {
        job: ctx.job.clone(),
        conf: ctx.conf.clone(),
        settings: TaskSettings::from_conf(&ctx.conf)?,
        partitions: a.num_reduces,
        scratch: scratch.clone(),
        output: attempt_dir.join(MAP_OUTPUT_FILE),
        cancel: ctx.cancel.clone(),
    };
    let (output, counters) = {
        let mut reader = open_input(ctx)?;
        run_map_task(&spec, reader.as_mut())?
    };
    // Spills are merged into the output by now; leftovers only take disk space.
    let _ = std::fs::remove_dir_all(&scratch);
    let map_attempt = MapAttemptId::new(a.attempt.task.index, a.attempt.number);
    ctx.handle.block_on(async {
        let client = ShuffleServiceClient::new(&ctx.identity, ctx.env.host)?;
        let registered = client
            .register_map_output(
                shuffle_address,
                &a.job_id,
                secret,
                map_attempt,
                &output.path,
                &output.index,
            )
            .await;
        client.close();
        registered
    })?;
    Ok(Finished::MapOutput {
        shuffle_address: shuffle_address.to_string(),
        counters,
    })
}

/// A map of a map-only job: its records go straight to `attempt_dir/output_file` on the DFS.
pub fn run_map_only(ctx: &AttemptContext) -> Result<Finished, TaskRunnerError> {
    let path = ctx.output_path()?;
    let fs = ctx.filesystems.for_path(&path)?;
    let format = OutputFormat::from_conf(&ctx.conf).map_err(config_error)?;
    let mut reader = open_input(ctx)?;
    let counters = write_output_file(fs.as_ref(), &format, &path, |writer| {
        run_map_only_task(
            ctx.job.as_ref(),
            &ctx.conf,
            reader.as_mut(),
            writer,
            &ctx.cancel,
        )
    })?;
    Ok(Finished::Output { counters })
}
