//! `sheaf mr-jobtracker --staging DIR`: one job's application master. It reads the submission
//! from the DFS staging directory, computes the splits from DFS block locations, registers with
//! the ResourceManager (giving its RPC address as the tracking address), then drives the
//! sans-I/O [`JobTracker`](crate::jobtracker::JobTracker): one tokio task owns it and feeds it
//! events (RM allocations and completed containers, task reports from the RPC service, node list
//! changes, ticks); the actions it returns become RM asks/releases/launches, DFS commits and
//! replies. After every task commit a recovery snapshot of the job history goes to
//! `<staging>/recovery/`; a later JobTracker attempt recovers from the newest one, or restarts the
//! job cleanly over the same output when there is none.
//!
//! [`run`] reads as startup → loop → finish, one concept per file:
//! - `preparation`: connecting, starting the RPC service, registering, reading the submission,
//!   loading the job, final configuration, splits and container-size checks; the driver to start;
//! - `recovery`: what an earlier attempt left (claimed output, newest snapshot, committed files),
//!   the tracker to start with, snapshot writes, the shared shuffle secret, and what the RM's
//!   refusal of this attempt's calls means;
//! - `committer`: the output committer on a thread of its own (task and job commits, abort);
//! - `service`: the RPC service for tasks and clients, and `ServerGuard`, the one stop of its
//!   server;
//! - `allocator`: RM allocate calls off the driver's task (asks, cancellations, releases);
//! - `driver`: the task owning the tracker and its main loop (commands, ticks, node lists,
//!   snapshots), turning the tracker's actions into RM calls, launches and commits;
//! - `requests`: the driver's answers to task and client requests;
//! - `ending`: the job's end (abort, terminal snapshot, history, shuffle cleanup, staging
//!   removal, final status), also before the loop or repeated for an earlier attempt.
//!
//! Where things live in the DFS is named in [`crate::cluster::layout`].

mod allocator;
mod committer;
mod driver;
mod ending;
mod preparation;
mod recovery;
mod requests;
mod service;

use crate::cluster::history;
use crate::jobtracker::JobState;
use sheaf_dfs::client::DfsError;
use sheaf_dfs::config::DfsConfig;
use sheaf_rpc::{RpcError, TlsIdentity};
use sheaf_yarn::protocol::YarnError;
use std::net::IpAddr;
use std::path::PathBuf;

/// What the JobTracker process needs from its command line and environment.
pub struct JobTrackerSetup {
    /// The DFS staging directory of the job (absolute DFS path).
    pub staging: String,
    /// DFS configuration (the NameNode among it).
    pub dfs: DfsConfig,
    /// The cluster identity to present (RM, DFS, tasks, shuffle services).
    pub identity: TlsIdentity,
    /// The container host's identity (its NodeManager's IP): the RPC service binds it and the
    /// tracking address names it.
    pub host: IpAddr,
    /// argv of task processes (`<sheaf exe> mr-task`).
    pub task_command: Vec<String>,
}

/// How the job ended.
#[derive(Debug, Clone, PartialEq)]
pub struct JobOutcome {
    /// The job.
    pub job_id: String,
    /// SUCCEEDED, FAILED or KILLED.
    pub state: JobState,
    /// Why it failed or was killed.
    pub diagnostics: Option<String>,
}

/// Failures of the JobTracker itself (not of the job): the process exits non-zero and the RM
/// may run another attempt.
#[derive(Debug, thiserror::Error)]
pub enum JobTrackerError {
    /// Talking to the ResourceManager failed.
    #[error("resourcemanager: {0}")]
    Yarn(#[from] YarnError),
    /// The DFS failed.
    #[error("{context}: {source}")]
    Dfs {
        /// What was being done.
        context: String,
        /// What the DFS client said.
        source: DfsError,
    },
    /// The RPC service could not start.
    #[error("cannot start the jobtracker service: {0}")]
    Rpc(#[from] RpcError),
    /// Job history or snapshot I/O failed.
    #[error(transparent)]
    History(#[from] history::HistoryError),
    /// The JobTracker could not go on (a helper thread died, the RM stayed unreachable …).
    #[error("{0}")]
    Internal(String),
    /// Another JobTracker attempt runs the job: this one stopped without touching it.
    #[error("{0}")]
    Superseded(String),
}

/// Wraps a DFS error with what was being done.
fn dfs_failed(context: impl Into<String>) -> impl FnOnce(DfsError) -> JobTrackerError {
    let context = context.into();
    move |source| JobTrackerError::Dfs { context, source }
}

/// Runs the job of `setup.staging` as this container's application master until it ends.
pub async fn run(setup: JobTrackerSetup) -> Result<JobOutcome, JobTrackerError> {
    let (master, server, (commands_tx, commands)) = preparation::connect(&setup).await?;
    let outcome = async {
        let mut driver = match preparation::startup(&setup, &master, commands_tx).await? {
            preparation::Startup::Run(driver) => driver,
            preparation::Startup::Over(outcome) => return Ok(outcome),
        };
        let snapshot_write = driver.run_loop(&master.dfs, commands).await;
        ending::finish(&setup, &master, *driver, snapshot_write).await
    }
    .await;
    // However the job ended (early returns included), the server stops here.
    server.finish().await;
    outcome
}

/// The default argv of task processes: this executable with the task subcommand.
pub fn default_task_command() -> Result<Vec<String>, JobTrackerError> {
    let exe: PathBuf = std::env::current_exe().map_err(|e| {
        JobTrackerError::Internal(format!("cannot locate the sheaf executable: {e}"))
    })?;
    Ok(vec![
        exe.display().to_string(),
        super::submission::TASK_COMMAND.to_string(),
    ])
}
