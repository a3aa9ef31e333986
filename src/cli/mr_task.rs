//! `sheaf mr-task` (hidden): the process of one MapReduce task attempt in a container the
//! JobTracker launched. Everything it needs comes from the container's environment (the
//! JobTracker's address, the attempt, the node's shuffle service, the cluster configuration);
//! the work itself is `sheaf_mapreduce::cluster::task_runner`.

use std::process::ExitCode;

use anyhow::Context;
use sheaf_dfs::config::DfsConfig;
use sheaf_mapreduce::cluster::task_runner::{
    run_task, umbilical::DEFAULT_PATIENCE, TaskEnvironment, TaskExit, TaskSetup,
};

/// Flags of `sheaf mr-task` (none: the container's environment says everything).
#[derive(clap::Args, Debug)]
pub struct MrTaskArgs {}

/// Loads what the task needs from the environment and the configuration.
fn setup() -> anyhow::Result<TaskSetup> {
    let env = TaskEnvironment::from_env()?;
    let file = super::config::load()?;
    let dfs = DfsConfig::from_file(&file).context("invalid DFS configuration")?;
    let identity = super::daemon::identity(&dfs.cluster.tls_dir)?;
    let work_dir = std::env::current_dir().context("cannot read the working directory")?;
    Ok(TaskSetup {
        env,
        identity,
        dfs,
        work_dir,
        patience: DEFAULT_PATIENCE,
    })
}

/// Runs the attempt; the exit status is the task's (0 also when the JobTracker stopped it).
pub fn run(_args: MrTaskArgs) -> ExitCode {
    let setup = match setup() {
        Ok(s) => s,
        Err(e) => {
            let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            eprintln!(
                "sheaf mr-task: {} (mr-task runs in containers the jobtracker launches)",
                chain.join(": ")
            );
            return ExitCode::from(1);
        }
    };
    let exit = run_task(setup);
    match &exit {
        TaskExit::Succeeded => {}
        TaskExit::Stopped => {
            eprintln!("sheaf mr-task: stopped: the jobtracker no longer wants this attempt")
        }
        TaskExit::Failed(reason) => eprintln!("sheaf mr-task: {reason}"),
        TaskExit::JobTrackerLost(reason) => eprintln!("sheaf mr-task: {reason}"),
    }
    ExitCode::from(exit.exit_code())
}
