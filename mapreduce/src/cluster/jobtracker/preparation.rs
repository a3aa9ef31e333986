//! Job preparation, everything before the driver's loop: connecting to the RM and the DFS,
//! starting the RPC service, reading the submission, loading the job (plugin or streaming),
//! final configuration and splits, container-size checks, and the tracker to start with.

use super::committer::{CommitOp, Committer, CommitterStart};
use super::driver::{command_channel, Command, Driver, DriverStart};
use super::ending::{fail_before_start, finish_ended_job, repeat_ending};
use super::recovery::{resume, shuffle_secret, PreviousAttempt};
use super::service::{JtService, ServerGuard};
use super::{dfs_failed, JobOutcome, JobTrackerError, JobTrackerSetup};
use crate::api::partition::{prepare_total_order, TOTAL_ORDER_SAMPLE_KEY};
use crate::api::plugin::PluginLibrary;
use crate::api::{JobConf, JobDefinition};
use crate::cluster::history;
use crate::cluster::layout::{dfs_job_path, plugin_file, submission_file};
use crate::cluster::splits::{job_splits, SplitError};
use crate::cluster::submission::{
    job_id_of_application, JobProgram, JobSubmission, PLUGIN_LINK_NAME,
};
use crate::formats::{FormatError, InputFormat, InputSplit, OutputFormat};
use crate::fs::{DfsFs, JobFileSystem, JobPath};
use crate::jobtracker::{JobConfig, JobSpec, JobState, JobStatus, SplitLocation};
use crate::local::complete_job_conf;
use crate::task::settings::TaskSettings;
use sheaf_dfs::client::DfsClient;
use sheaf_rpc::time::Clock;
use sheaf_yarn::client::RmClient;
use sheaf_yarn::master::MasterClient;
use sheaf_yarn::protocol::{AttemptId as YarnAttemptId, FinalStatus, Resource};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, watch};

/// This JobTracker attempt once connected and registered with the RM: its clients and names.
pub(super) struct Master {
    /// The RM's application master protocol.
    pub(super) am: Arc<MasterClient>,
    /// The RM's client protocol (application reports).
    pub(super) rm: Arc<RmClient>,
    /// This attempt.
    pub(super) app_attempt: YarnAttemptId,
    /// The job (`job_<cluster>_<seq>`).
    pub(super) job_id: String,
    /// The DFS.
    pub(super) dfs: DfsClient,
    /// The job's staging directory (no trailing `/`).
    pub(super) staging: String,
    /// The RPC service's address, registered as the tracking address.
    pub(super) tracking_address: String,
    /// The largest container the cluster can hold.
    pub(super) max_container: Resource,
    /// The job's last status for clients asking once the driver is gone: set after the history
    /// is written (a client that sees the job ended can read it).
    pub(super) final_status: watch::Sender<Option<JobStatus>>,
}

/// Connects to the RM and the DFS, starts the RPC service and registers with the RM. Returns
/// the driver's command channel, whose sending side the service already holds.
pub(super) async fn connect(
    setup: &JobTrackerSetup,
) -> Result<
    (
        Master,
        ServerGuard,
        (mpsc::Sender<Command>, mpsc::Receiver<Command>),
    ),
    JobTrackerError,
> {
    let am = Arc::new(MasterClient::from_env(&setup.identity, setup.host)?);
    let rm = Arc::new(rm_client(setup)?);
    let app_attempt = am.attempt();
    let job_id = job_id_of_application(&app_attempt.app.to_string());
    let dfs = DfsClient::connect_from(&setup.dfs, setup.identity.clone(), Some(setup.host))
        .await
        .map_err(dfs_failed("connecting to the NameNode"))?;
    let staging = setup.staging.trim_end_matches('/').to_string();

    // The RPC service first, so the RM can show where to ask for the job's status.
    let (commands_tx, commands) = command_channel();
    let (final_status, final_status_rx) = watch::channel(None);
    let service = JtService {
        commands: commands_tx.clone(),
        dfs: dfs.clone(),
        final_status: final_status_rx,
    };
    let server = ServerGuard::start(SocketAddr::new(setup.host, 0), &setup.identity, service)?;
    let tracking_address = server.address().to_string();
    let max_container = am.register(Some(tracking_address.clone())).await?;
    tracing::info!(job = %job_id, attempt = %app_attempt, address = %tracking_address, "jobtracker registered");
    let master = Master {
        am,
        rm,
        app_attempt,
        job_id,
        dfs,
        staging,
        tracking_address,
        max_container,
        final_status,
    };
    Ok((master, server, (commands_tx, commands)))
}

/// How the startup went.
pub(super) enum Startup {
    /// The job runs: the driver is ready for its loop.
    Run(Box<Driver>),
    /// The job is over without a loop (it could not start, or an earlier attempt ended it).
    Over(JobOutcome),
}

/// Everything before the loop: reads the submission and what an earlier attempt left, prepares
/// the job, recovers or creates the tracker, sets up the output and starts the driver.
/// `commands` is the sending side of the driver's command channel.
pub(super) async fn startup(
    setup: &JobTrackerSetup,
    master: &Master,
    commands: mpsc::Sender<Command>,
) -> Result<Startup, JobTrackerError> {
    let Master {
        am,
        dfs,
        staging,
        job_id,
        app_attempt,
        max_container,
        ..
    } = master;
    let submission_path = submission_file(staging);
    let submission: JobSubmission = {
        let bytes = match dfs.read_file(&submission_path).await {
            Ok(b) => b,
            Err(e) if e.is_not_found() => {
                // The previous attempt ended the job and removed its staging directory, then
                // died before telling the RM: repeat only that.
                return Ok(Startup::Over(finish_ended_job(dfs, am, job_id).await?));
            }
            Err(e) => return Err(dfs_failed(format!("reading {submission_path}"))(e)),
        };
        match rmp_serde::from_slice(&bytes) {
            Ok(s) => s,
            Err(e) => {
                let reason = format!("{submission_path} is not a job submission: {e}");
                am.finish(FinalStatus::Failed, reason.clone()).await?;
                return Ok(Startup::Over(JobOutcome {
                    job_id: job_id.clone(),
                    state: JobState::Failed,
                    diagnostics: Some(reason),
                }));
            }
        }
    };

    let previous = PreviousAttempt::read(dfs, staging, app_attempt.attempt).await?;
    if let Some(record) = previous.ended() {
        // The job ended under an earlier attempt, which died before the last steps: repeat
        // only those (no preparation, no tasks).
        let outcome = repeat_ending(dfs, am, staging, record.clone()).await?;
        return Ok(Startup::Over(outcome));
    }

    let nodes = am.nodes().await?;
    let prepared = match prepare_job(dfs, staging, &submission).await.and_then(|p| {
        check_container_sizes(&p.config, submission.reducers, max_container)?;
        Ok(p)
    }) {
        Ok(p) => p,
        Err(reason) => {
            let outcome = fail_before_start(dfs, am, job_id, &submission, reason).await?;
            return Ok(Startup::Over(outcome));
        }
    };
    let host_racks: BTreeMap<String, String> = nodes
        .iter()
        .map(|n| (n.host.clone(), n.rack.clone()))
        .collect();
    let spec = JobSpec {
        job_id: job_id.clone(),
        splits: prepared.splits.clone(),
        num_reduces: submission.reducers,
        host_racks,
        conf: prepared.conf.entries.clone(),
    };

    let clock = Clock::new();
    let now = clock.now();
    let resumed = resume(
        dfs,
        staging,
        &submission.output,
        previous,
        spec,
        &prepared.config,
        now,
    )
    .await?;
    let out = dfs_job_path(&submission.output);
    let fs: Arc<dyn JobFileSystem> =
        Arc::new(DfsFs::new(dfs.clone(), tokio::runtime::Handle::current()));
    let committer = Committer::spawn(fs, out.clone())?;
    let fresh = matches!(resumed.start, CommitterStart::Fresh);
    if let Err(reason) = committer.call(CommitOp::Start(resumed.start)).await {
        let outcome = fail_before_start(dfs, am, job_id, &submission, reason).await?;
        return Ok(Startup::Over(outcome));
    }
    if fresh {
        // From now on a later attempt may take over the existing output directory.
        history::mark_output_claimed(dfs, staging).await?;
    }
    let secret = shuffle_secret(dfs, staging).await?;
    let start = DriverStart {
        jt: resumed.jt,
        submission,
        prepared,
        out,
        secret,
        committer,
        task_counters: resumed.task_counters,
        snapshot_seq: resumed.first_seq,
        clock,
        nodes,
        task_command: setup.task_command.clone(),
    };
    Ok(Startup::Run(Box::new(Driver::start(
        master, start, commands,
    ))))
}

/// A client of the RM (the address the RM gives master containers), for application reports.
fn rm_client(setup: &JobTrackerSetup) -> Result<RmClient, JobTrackerError> {
    let var = sheaf_yarn::resourcemanager::state::env::RM_ADDRESS;
    let addr: SocketAddr = std::env::var(var)
        .ok()
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| JobTrackerError::Internal(format!("${var} is not an address")))?;
    Ok(RmClient::new(addr, &setup.identity, setup.host)?)
}

/// A job ready to be tracked.
pub(super) struct PreparedJob {
    /// The final job configuration.
    pub(super) conf: JobConf,
    /// The tracker's settings from it.
    pub(super) config: JobConfig,
    /// The input splits and where their blocks are.
    pub(super) splits: Vec<SplitLocation>,
}

/// Loads the job definition: the staged plugin (copied to a local file for the loader) or the
/// streaming commands.
async fn job_definition(
    dfs: &DfsClient,
    staging: &str,
    submission: &JobSubmission,
) -> Result<Arc<dyn JobDefinition>, String> {
    match &submission.program {
        JobProgram::Streaming { .. } => match submission.program.streaming_job() {
            Some(job) => Ok(Arc::new(job)),
            None => Err("not a streaming job".into()),
        },
        JobProgram::Plugin => {
            let staged = plugin_file(staging);
            let bytes = dfs
                .read_file(&staged)
                .await
                .map_err(|e| format!("cannot read the job's plugin {staged}: {e}"))?;
            tokio::task::spawn_blocking(move || {
                let dir = std::env::temp_dir().join(format!(
                    "sheaf-jobtracker-{}-{:016x}",
                    std::process::id(),
                    rand::random::<u64>()
                ));
                std::fs::create_dir_all(&dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                let local = dir.join(PLUGIN_LINK_NAME);
                let loaded = std::fs::write(&local, &bytes)
                    .map_err(|e| format!("cannot write {}: {e}", local.display()))
                    .and_then(|_| {
                        PluginLibrary::load(&local)
                            .map_err(|e| format!("cannot load the job's plugin: {e}"))
                    });
                // The loaded library stays mapped; the file is not needed any more.
                let _ = std::fs::remove_dir_all(&dir);
                loaded
            })
            .await
            .map_err(|e| format!("plugin loader panicked: {e}"))?
        }
    }
}

/// Samples total-order partition boundaries when the job asks for it, reading splits through
/// the DFS synchronously on a thread of its own (the job filesystem API must not run on the
/// runtime).
async fn sample_total_order(
    dfs: &DfsClient,
    conf: JobConf,
    job: Arc<dyn JobDefinition>,
    splits: Vec<InputSplit>,
    reducers: u32,
) -> Result<JobConf, String> {
    if reducers == 0 || conf.get(TOTAL_ORDER_SAMPLE_KEY) != Some("true") {
        return Ok(conf);
    }
    let fs = DfsFs::new(dfs.clone(), tokio::runtime::Handle::current());
    let (tx, rx) = oneshot::channel();
    std::thread::Builder::new()
        .name("sheaf-jt-sampler".into())
        .spawn(move || {
            let mut conf = conf;
            let result = prepare_total_order(&mut conf, job.as_ref(), &splits, reducers, |s| {
                let path = JobPath::from_path(&s.path).map_err(|e| FormatError::Io(e.into_io()))?;
                fs.open(&path).map_err(|e| FormatError::Io(e.into_io()))
            });
            let _ = tx.send(
                result
                    .map(|_| conf)
                    .map_err(|e| format!("sampling the input for total order failed: {e}")),
            );
        })
        .map_err(|e| format!("cannot start the sampler thread: {e}"))?;
    rx.await
        .map_err(|_| "the sampler thread died".to_string())?
}

/// Computes the job's final configuration and splits. Errors are the job's (bad conf, missing
/// input, unloadable plugin): the job fails with them as diagnostics.
async fn prepare_job(
    dfs: &DfsClient,
    staging: &str,
    submission: &JobSubmission,
) -> Result<PreparedJob, String> {
    let job = job_definition(dfs, staging, submission).await?;
    let mut conf = JobConf {
        entries: submission.conf.clone(),
    };
    if let Some(streaming) = submission.program.streaming_job() {
        // Recorded like the local runner does, for the history.
        streaming.store_in_conf(&mut conf);
    }
    let inputs: Vec<String> = submission
        .inputs
        .iter()
        .map(|p| dfs_job_path(p).to_string())
        .collect();
    complete_job_conf(
        &mut conf,
        job.as_ref(),
        &inputs,
        &dfs_job_path(&submission.output).to_string(),
        submission.reducers,
    );
    // Refuse a configuration no task could run with now, not after every task failed 4 times.
    TaskSettings::from_conf(&conf).map_err(|e| e.to_string())?;
    InputFormat::from_conf(&conf).map_err(|e| e.to_string())?;
    OutputFormat::from_conf(&conf).map_err(|e| e.to_string())?;
    let config = JobConfig::from_conf(&conf.entries).map_err(|e| e.to_string())?;
    let splits = job_splits(dfs, &submission.inputs, submission.split_size)
        .await
        .map_err(|e| match e {
            SplitError::InputNotFound(_) | SplitError::NoInputs => e.to_string(),
            e => format!("cannot compute input splits: {e}"),
        })?;
    let conf = sample_total_order(
        dfs,
        conf,
        job,
        splits.iter().map(|s| s.split.clone()).collect(),
        submission.reducers,
    )
    .await?;
    Ok(PreparedJob {
        conf,
        config,
        splits,
    })
}

/// `<memory:1024, vCores:1>`, as Hadoop prints container sizes.
fn capability(memory_mb: u64, vcores: u32) -> String {
    format!("<memory:{memory_mb}, vCores:{vcores}>")
}

/// Refuses task containers larger than the largest the cluster can hold (`max`, from the RM's
/// registration answer): asks for them would never be satisfied (Hadoop's check and message).
fn check_container_sizes(config: &JobConfig, reduces: u32, max: &Resource) -> Result<(), String> {
    let kinds = [
        ("MAP", "mapResourceRequest", &config.map_resource, true),
        (
            "REDUCE",
            "reduceResourceRequest",
            &config.reduce_resource,
            reduces > 0,
        ),
    ];
    for (kind, label, r, used) in kinds {
        if used && (r.memory_mb > max.memory_mb || r.vcores > max.vcores) {
            return Err(format!(
                "{kind} capability required is more than the supported max container capability \
                 in the cluster. Killing the Job. {label}: {} maxContainerCapability:{} (lower \
                 mapreduce.{}.memory.mb / mapreduce.{}.cpu.vcores)",
                capability(r.memory_mb, r.vcores),
                capability(max.memory_mb, max.vcores),
                kind.to_lowercase(),
                kind.to_lowercase(),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containers_larger_than_the_cluster_allows_fail_the_job_with_hadoops_message() {
        let mut config = JobConfig::default();
        let max = Resource::new(2048, 4);
        check_container_sizes(&config, 1, &max).expect("defaults fit");
        config.map_resource.memory_mb = 4096;
        let err = check_container_sizes(&config, 1, &max).expect_err("map too large");
        assert!(
            err.starts_with(
                "MAP capability required is more than the supported max container capability \
                 in the cluster"
            ),
            "{err}"
        );
        assert!(
            err.contains("mapResourceRequest: <memory:4096, vCores:1>"),
            "{err}"
        );
        assert!(
            err.contains("maxContainerCapability:<memory:2048, vCores:4>"),
            "{err}"
        );
        config.map_resource.memory_mb = 1024;
        config.reduce_resource.vcores = 8;
        let err = check_container_sizes(&config, 1, &max).expect_err("reduce too large");
        assert!(err.starts_with("REDUCE capability required"), "{err}");
        // A map-only job asks for no reduce containers.
        check_container_sizes(&config, 0, &max).expect("no reduces");
    }
}
