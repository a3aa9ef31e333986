//! Recovery across JobTracker attempts: what an earlier attempt left (claimed output, newest
//! snapshot) and the tracker this one starts with, the snapshots it writes for the next, the
//! shuffle secret they share, and what the RM's refusal of this attempt's calls means.

use super::committer::CommitterStart;
use super::{dfs_failed, JobTrackerError};
use crate::cluster::history::{self, JobRecord};
use crate::cluster::layout::{committed_dir, output_file_name, recovery_dir, shuffle_secret_file};
use crate::counters::Counters;
use crate::jobtracker::{JobConfig, JobSpec, JobTracker, TaskId};
use crate::shuffle::JobSecret;
use sheaf_dfs::client::DfsClient;
use sheaf_rpc::time::Now;
use sheaf_yarn::protocol::{AppState, ApplicationReport};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// What an earlier attempt of this JobTracker left.
pub(super) struct PreviousAttempt {
    /// This is not the first attempt.
    pub(super) later_attempt: bool,
    /// An earlier attempt took over the output directory.
    pub(super) claimed: bool,
    /// The newest recovery snapshot (its sequence number and record), if the output was claimed.
    pub(super) snapshot: Option<(u64, JobRecord)>,
}

impl PreviousAttempt {
    /// Reads what an earlier attempt left for attempt `attempt`: whether it took over the
    /// output, and its newest snapshot. A DFS failure reading them ends this attempt (the next
    /// one tries again): taking it for "nothing there" would start the job over and drop
    /// committed work.
    pub(super) async fn read(
        dfs: &DfsClient,
        staging: &str,
        attempt: u32,
    ) -> Result<PreviousAttempt, JobTrackerError> {
        let later_attempt = attempt > 1;
        let claimed = later_attempt && history::output_claimed(dfs, staging).await?;
        let snapshot = if claimed {
            history::latest_snapshot(dfs, staging).await?
        } else {
            None
        };
        Ok(PreviousAttempt {
            later_attempt,
            claimed,
            snapshot,
        })
    }

    /// The record of a job that ended under an earlier attempt (its terminal snapshot).
    pub(super) fn ended(&self) -> Option<&JobRecord> {
        self.snapshot
            .as_ref()
            .map(|(_, r)| r)
            .filter(|r| r.history.state.is_terminal())
    }
}

/// The tracker this attempt starts with, and how the committer takes over the output.
pub(super) struct Resumed {
    /// The tracker: recovered from the snapshot, or new.
    pub(super) jt: JobTracker,
    /// Sequence number of the newest snapshot so far (new ones are numbered past it).
    pub(super) first_seq: u64,
    /// Task counters of the recovered committed tasks.
    pub(super) task_counters: BTreeMap<String, Counters>,
    /// How the committer takes over the output directory.
    pub(super) start: CommitterStart,
}

/// A later attempt continues from the newest snapshot, or starts over (over an output the
/// first attempt claimed; one that never claimed it sets it up like a first attempt).
pub(super) async fn resume(
    dfs: &DfsClient,
    staging: &str,
    output: &str,
    previous: PreviousAttempt,
    spec: JobSpec,
    config: &JobConfig,
    now: Now,
) -> Result<Resumed, JobTrackerError> {
    let PreviousAttempt {
        later_attempt,
        claimed,
        snapshot,
    } = previous;
    let mut recovered = None;
    if let Some((seq, mut record)) = snapshot {
        // A task counts as committed only if its file really is: in the committed area, or
        // already promoted into the output by an interrupted job commit.
        let present = committed_outputs(dfs, output).await?;
        let lost = forget_missing_commits(&mut record, &present);
        if !lost.is_empty() {
            tracing::warn!(tasks = ?lost, "committed outputs missing: running those tasks again");
        }
        match JobTracker::recover(spec.clone(), config.clone(), &record.history, now) {
            Ok(jt) => recovered = Some((seq, jt, record)),
            Err(e) => tracing::warn!(error = %e, "cannot recover; starting the job over"),
        }
    } else if claimed {
        tracing::info!("no recovery snapshot; starting the job over");
    }
    Ok(match recovered {
        Some((seq, jt, record)) => {
            let keep = record
                .history
                .attempts
                .iter()
                .filter(|a| a.committed)
                .map(|a| output_file_name(a.attempt.task))
                .collect();
            Resumed {
                jt,
                first_seq: seq,
                task_counters: record.task_counters,
                start: CommitterStart::Recover { keep },
            }
        }
        None => {
            let jt = JobTracker::new(spec, config.clone(), now);
            // Snapshots of an abandoned run must never be recovered from later: gone, and new
            // ones are numbered past them.
            let first_seq = if later_attempt {
                history::clear_snapshots(dfs, staging).await?
            } else {
                0
            };
            let start = if claimed {
                CommitterStart::Restart
            } else {
                CommitterStart::Fresh
            };
            Resumed {
                jt,
                first_seq,
                task_counters: BTreeMap::new(),
                start,
            }
        }
    })
}

/// The output files of a job's output directory `out` that tasks committed: those in the
/// committed area and those an interrupted job commit already moved into `out`.
pub(super) async fn committed_outputs(
    dfs: &DfsClient,
    out: &str,
) -> Result<BTreeSet<String>, JobTrackerError> {
    let committed = committed_dir(out);
    let mut names = BTreeSet::new();
    for dir in [committed.as_str(), out] {
        match dfs.list(dir).await {
            Ok(entries) => names.extend(
                entries
                    .into_iter()
                    .filter_map(|e| e.path.rsplit('/').next().map(str::to_string)),
            ),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(dfs_failed(format!("listing {dir}"))(e)),
        }
    }
    Ok(names)
}

/// Clears the committed flag of every attempt of `record` whose output file is not in
/// `present` (so recovery runs the task again); returns those tasks.
fn forget_missing_commits(record: &mut JobRecord, present: &BTreeSet<String>) -> Vec<TaskId> {
    let mut lost = Vec::new();
    for a in record.history.attempts.iter_mut().filter(|a| a.committed) {
        if !present.contains(&output_file_name(a.attempt.task)) {
            a.committed = false;
            lost.push(a.attempt.task);
        }
    }
    lost
}

/// Writes recovery snapshot `seq` (owned arguments: the write runs beside the main loop).
pub(super) async fn write_snapshot(
    dfs: DfsClient,
    staging: String,
    seq: u64,
    record: Arc<JobRecord>,
) {
    if let Err(e) = history::write_snapshot(&dfs, &staging, seq, &record).await {
        tracing::warn!(error = %e, "cannot write a recovery snapshot");
    }
}

/// The job's shuffle secret: the one an earlier attempt of this JobTracker stored (its tasks'
/// map outputs are registered under it), else a fresh one, stored for later attempts.
pub(super) async fn shuffle_secret(
    dfs: &DfsClient,
    staging: &str,
) -> Result<JobSecret, JobTrackerError> {
    let dir = recovery_dir(staging);
    let path = shuffle_secret_file(staging);
    match dfs.read_file(&path).await {
        Ok(bytes) => {
            if let Some(secret) = JobSecret::from_slice(&bytes) {
                return Ok(secret);
            }
            tracing::warn!(path = %path, "ignoring a malformed shuffle secret");
        }
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(dfs_failed(format!("reading {path}"))(e)),
    }
    let secret = JobSecret::generate();
    dfs.mkdirs(&dir, true)
        .await
        .map_err(dfs_failed(format!("creating {dir}")))?;
    dfs.write_file(&path, secret.as_bytes(), true)
        .await
        .map_err(dfs_failed(format!("writing {path}")))?;
    Ok(secret)
}

/// What the RM's refusal of this attempt's calls means.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum AttemptEnd {
    /// The application was killed (or failed) while this attempt was its newest: end the job
    /// (kill it, clean up, history).
    Killed,
    /// Another attempt runs the job (or will, or finished it): stop at once, touching nothing.
    Superseded(String),
}

/// Decides [`AttemptEnd`] for attempt `this` from its application's report.
pub(super) fn end_of_attempt(this: u32, report: &ApplicationReport) -> AttemptEnd {
    if report.attempt > this {
        return AttemptEnd::Superseded(format!(
            "this jobtracker (attempt {this}) was replaced by attempt {} of {}",
            report.attempt, report.id
        ));
    }
    match report.state {
        AppState::Killed | AppState::Failed => AttemptEnd::Killed,
        AppState::Finished => AttemptEnd::Superseded(format!(
            "application {} already finished ({})",
            report.id, report.final_status
        )),
        state => AttemptEnd::Superseded(format!(
            "the resourcemanager ended this jobtracker (attempt {this}) while application {} \
             is {state}: its next attempt runs the job",
            report.id
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobtracker::{AttemptId, JobState};
    use sheaf_yarn::protocol::FinalStatus;

    fn report(attempt: u32, state: AppState) -> ApplicationReport {
        ApplicationReport {
            id: sheaf_yarn::protocol::AppId {
                cluster_ts: 17,
                seq: 2,
            },
            name: "MAPREDUCE wc".into(),
            user: "alice".into(),
            queue: "default".into(),
            state,
            final_status: FinalStatus::Undefined,
            attempt,
            max_attempts: 2,
            diagnostics: String::new(),
            submit_ms: 1,
            finish_ms: 0,
            master_host: None,
            tracking_address: None,
            containers: Vec::new(),
        }
    }

    #[test]
    fn an_rm_refusal_ends_the_job_only_when_the_application_itself_was_killed() {
        // Killed (or failed) while this attempt was the newest: the kill cleanup is ours.
        assert_eq!(
            end_of_attempt(1, &report(1, AppState::Killed)),
            AttemptEnd::Killed
        );
        assert_eq!(
            end_of_attempt(2, &report(2, AppState::Failed)),
            AttemptEnd::Killed
        );
        // A newer attempt exists (this one's node was declared lost while it lived on): touch
        // nothing, whatever the application's state.
        for state in [AppState::Running, AppState::Killed, AppState::Finished] {
            let end = end_of_attempt(1, &report(2, state));
            assert!(
                matches!(&end, AttemptEnd::Superseded(why) if why.contains("replaced by attempt 2")),
                "{state}: {end:?}"
            );
        }
        // Still running with this attempt number (its successor not created yet), or finished
        // by someone else: not ours to end either.
        for state in [AppState::Running, AppState::Accepted, AppState::Finished] {
            let end = end_of_attempt(1, &report(1, state));
            assert!(matches!(end, AttemptEnd::Superseded(_)), "{state}: {end:?}");
        }
    }

    #[test]
    fn recovery_keeps_only_commits_whose_files_are_there() {
        use crate::jobtracker::{AttemptRecord, AttemptState, JobHistory};
        let attempt = |task: TaskId, committed: bool| AttemptRecord {
            attempt: AttemptId { task, number: 0 },
            state: AttemptState::Succeeded,
            speculative: false,
            host: None,
            rack: None,
            locality: None,
            start_ms: Some(1),
            end_ms: Some(2),
            progress: 1.0,
            error: None,
            committed,
        };
        let mut record = JobRecord {
            history: JobHistory {
                job_id: "job_17_0002".into(),
                conf: BTreeMap::new(),
                settings: JobConfig::default(),
                start_ms: 1,
                finish_ms: None,
                state: JobState::Running,
                diagnostics: None,
                maps_total: 3,
                reduces_total: 0,
                counters: Counters::new(),
                attempts: vec![
                    attempt(TaskId::map(0), true),
                    attempt(TaskId::map(1), true),
                    attempt(TaskId::map(2), false),
                ],
            },
            name: "wc".into(),
            user: "alice".into(),
            inputs: vec!["/in".into()],
            output: "/out".into(),
            submit_ms: 1,
            task_counters: BTreeMap::new(),
        };
        // part-m-00000 is committed (or promoted); part-m-00001's file is gone.
        let present = BTreeSet::from(["part-m-00000".to_string(), "_SUCCESS".to_string()]);
        assert_eq!(
            forget_missing_commits(&mut record, &present),
            vec![TaskId::map(1)]
        );
        let committed: Vec<bool> = record
            .history
            .attempts
            .iter()
            .map(|a| a.committed)
            .collect();
        assert_eq!(committed, vec![true, false, false]);
    }
}
