//! `sheaf mr-jobtracker --staging DIR` (hidden): a MapReduce job's application master, run by the
//! ResourceManager in the job's master container. The work is
//! `sheaf_mapreduce::cluster::jobtracker`; this loads the configuration and identity.

use anyhow::{anyhow, Context};
use sheaf_dfs::config::DfsConfig;
use sheaf_mapreduce::cluster::jobtracker::{self, default_task_command, JobTrackerSetup};
use sheaf_yarn::resourcemanager::state::env as container_env;
use std::net::IpAddr;

/// Flags of `sheaf mr-jobtracker`.
#[derive(clap::Args, Debug)]
pub struct MrJobTrackerArgs {
    /// The job's DFS staging directory (holds `job.msgpack` and, for plugin jobs, `job.so`).
    #[arg(long, value_name = "DIR")]
    pub staging: String,
}

/// Runs the job to its end; fails only when the JobTracker itself could not go on.
pub fn run(args: MrJobTrackerArgs) -> anyhow::Result<()> {
    let file = super::config::load()?;
    let dfs = DfsConfig::from_file(&file).context("invalid DFS configuration")?;
    let identity = super::daemon::identity(&dfs.cluster.tls_dir)?;
    let host: IpAddr = std::env::var(container_env::NM_HOST)
        .map_err(|_| {
            anyhow!(
                "${} is not set (mr-jobtracker runs in the master container of a job)",
                container_env::NM_HOST
            )
        })?
        .parse()
        .with_context(|| format!("${} is not an IP address", container_env::NM_HOST))?;
    let setup = JobTrackerSetup {
        staging: args.staging,
        dfs,
        identity,
        host,
        task_command: default_task_command()?,
    };
    let outcome = super::runtime::runtime(super::runtime::Workload::Serving)?
        .block_on(jobtracker::run(setup))?;
    match &outcome.diagnostics {
        Some(d) => eprintln!("Job {} {}: {d}", outcome.job_id, outcome.state),
        None => eprintln!("Job {} {}", outcome.job_id, outcome.state),
    }
    Ok(())
}
