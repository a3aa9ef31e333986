//! The distributed shell's application master: runs one command in N containers, replaces
//! containers lost with their node, and finishes SUCCEEDED only if every run exited 0.

use crate::master::MasterClient;
use crate::protocol::*;
use std::collections::BTreeMap;

/// What the shell master runs.
#[derive(Debug, Clone)]
pub struct ShellJob {
    /// argv of the command.
    pub command: Vec<String>,
    /// How many containers must run it.
    pub containers: u32,
    /// Size of each.
    pub resource: Resource,
    /// DFS files linked into each container's working dir (link name → DFS path).
    pub files: BTreeMap<String, String>,
}

/// How long one allocate call may wait for news, ms.
const POLL_MS: u64 = 2_000;

/// Runs the job to its end and declares the outcome to the RM. Returns the final status.
pub async fn run_master(am: &MasterClient, job: &ShellJob) -> Result<FinalStatus, YarnError> {
    am.register(None).await?;
    let mut next_ask = 1u64;
    let ask = |id: u64, count: u32| ContainerAsk {
        ask_id: id,
        count,
        resource: job.resource,
        priority: 1,
        hosts: vec![],
        racks: vec![],
        relax_locality: true,
    };
    let mut asks = vec![ask(next_ask, job.containers)];
    let mut results: BTreeMap<ContainerId, i32> = BTreeMap::new();
    let mut replacements = 0u32;
    let (mut ok, mut failed) = (0u32, 0u32);
    while ok + failed < job.containers {
        let a = match am
            .allocate(std::mem::take(&mut asks), vec![], vec![], POLL_MS)
            .await
        {
            Ok(a) => a,
            Err(e @ (YarnError::ResourceTooLarge { .. } | YarnError::BadRequest(_))) => {
                // Retrying cannot help: end the application with the reason.
                am.finish(FinalStatus::Failed, e.to_string()).await?;
                return Ok(FinalStatus::Failed);
            }
            Err(e) => return Err(e),
        };
        if a.shutdown {
            return Err(YarnError::NotCurrentMaster(am.attempt().to_string()));
        }
        if !a.allocated.is_empty() {
            let spec = LaunchSpec {
                command: job.command.clone(),
                files: job.files.clone(),
                ..LaunchSpec::default()
            };
            am.start(a.allocated.iter().map(|c| (c.id, spec.clone())).collect())
                .await?;
        }
        for c in a.completed {
            if c.exit_status == exit_status::NODE_LOST && replacements < job.containers {
                // Not the command's fault: run it again elsewhere.
                replacements += 1;
                next_ask += 1;
                asks.push(ask(next_ask, 1));
                continue;
            }
            results.insert(c.id, c.exit_status);
            if c.exit_status == 0 {
                ok += 1;
            } else {
                failed += 1;
            }
        }
    }
    let (status, diag) = if failed == 0 {
        (
            FinalStatus::Succeeded,
            format!("{ok} of {} containers exited 0", job.containers),
        )
    } else {
        (
            FinalStatus::Failed,
            format!("{failed} of {} containers failed", job.containers),
        )
    };
    am.finish(status, diag).await?;
    Ok(status)
}
