//! How a job ends: after the driver's loop ([`finish`]), or before it started ([`fail_before_start`]),
//! or when an earlier attempt had ended it already and died before the last steps
//! ([`repeat_ending`], [`finish_ended_job`]).

use super::committer::CommitOp;
use super::driver::{Driver, SnapshotWrite};
use super::preparation::Master;
use super::recovery::write_snapshot;
use super::{JobOutcome, JobTrackerError, JobTrackerSetup};
use crate::cluster::history::{self, JobRecord};
use crate::cluster::layout::temporary_dir;
use crate::cluster::submission::JobSubmission;
use crate::counters::Counters;
use crate::jobtracker::{JobConfig, JobState};
use crate::shuffle::ShuffleServiceClient;
use sheaf_dfs::client::DfsClient;
use sheaf_rpc::time::wall_clock_ms;
use sheaf_rpc::TlsIdentity;
use sheaf_yarn::master::MasterClient;
use sheaf_yarn::protocol::FinalStatus;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// Deadline for telling one shuffle service that the job is over.
const REMOVE_JOB_DEADLINE: Duration = Duration::from_secs(20);

/// Ends the job the driver ran, once its loop stopped: nothing for an attempt another one
/// superseded or one that cannot go on (errors); else no `_temporary` left by a failed or killed
/// job, a terminal snapshot, the history, the final status for clients, shuffle cleanup, the
/// staging directory and the RM.
pub(super) async fn finish(
    setup: &JobTrackerSetup,
    master: &Master,
    mut driver: Driver,
    snapshot_write: Option<SnapshotWrite>,
) -> Result<JobOutcome, JobTrackerError> {
    let status = driver.status();
    if let Some(why) = driver.superseded.take() {
        // Another attempt owns the job now: its output, snapshots and staging are not ours.
        return Err(JobTrackerError::Superseded(why));
    }
    if let Some(reason) = driver.fatal.take() {
        return Err(JobTrackerError::Internal(reason));
    }
    let (state, diagnostics) = driver.outcome.clone().unwrap_or((
        JobState::Failed,
        Some("the jobtracker stopped unexpectedly".into()),
    ));

    // The end: no _temporary left by a failed or killed job, history, shuffle cleanup, RM.
    if state != JobState::Succeeded {
        if let Err(e) = driver.committer.call(CommitOp::Abort).await {
            tracing::warn!(error = %e, "cannot remove the output's _temporary");
        }
    }
    if let Some(w) = snapshot_write {
        w.await;
    }
    let final_record = driver.record();
    // A terminal snapshot: an attempt started after this one died repeats only the ending.
    write_snapshot(
        master.dfs.clone(),
        master.staging.clone(),
        driver.snapshot_seq + 1,
        Arc::new(final_record.clone()),
    )
    .await;
    let mut history_record = final_record;
    history_record.history.counters = driver.total_counters();
    match history::write_history(&master.dfs, &history_record).await {
        Ok(path) => tracing::info!(path = %path, "job history written"),
        Err(e) => tracing::warn!(error = %e, "cannot write the job history"),
    }
    master.final_status.send_replace(Some(status));
    remove_from_shuffle_services(&setup.identity, setup.host, &driver).await;
    // The job is over and its history written: the staging directory (plugin, submission,
    // snapshots) is not needed any more, as in Hadoop. Removed before telling the RM, which
    // stops this container right after.
    if let Err(e) = master.dfs.delete(&master.staging, true).await {
        tracing::warn!(error = %e, "cannot remove the staging directory");
    }
    if !driver.not_current {
        master
            .am
            .finish(final_status(state), diagnostics.clone().unwrap_or_default())
            .await?;
    }
    Ok(JobOutcome {
        job_id: master.job_id.clone(),
        state,
        diagnostics,
    })
}

/// The RM's final status of a job that ended in `state`.
fn final_status(state: JobState) -> FinalStatus {
    match state {
        JobState::Succeeded => FinalStatus::Succeeded,
        JobState::Killed => FinalStatus::Killed,
        _ => FinalStatus::Failed,
    }
}

/// Repeats the last steps of a job an earlier attempt ended (its terminal snapshot): no
/// `_temporary` left by a failed or killed job, the history, the staging directory, the RM.
pub(super) async fn repeat_ending(
    dfs: &DfsClient,
    am: &MasterClient,
    staging: &str,
    mut record: JobRecord,
) -> Result<JobOutcome, JobTrackerError> {
    let state = record.history.state;
    let diagnostics = record.history.diagnostics.clone();
    tracing::info!(%state, "the job ended under an earlier attempt: repeating its ending");
    if state != JobState::Succeeded {
        let temporary = temporary_dir(&record.output);
        match dfs.delete(&temporary, true).await {
            Ok(_) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => tracing::warn!(error = %e, "cannot remove the output's _temporary"),
        }
    }
    record.history.counters =
        JobRecord::total_counters(&record.history.counters, &record.task_counters);
    match history::write_history(dfs, &record).await {
        Ok(path) => tracing::info!(path = %path, "job history written"),
        Err(e) => tracing::warn!(error = %e, "cannot write the job history"),
    }
    if let Err(e) = dfs.delete(staging, true).await {
        tracing::warn!(error = %e, "cannot remove the staging directory");
    }
    am.finish(final_status(state), diagnostics.clone().unwrap_or_default())
        .await?;
    Ok(JobOutcome {
        job_id: record.history.job_id,
        state,
        diagnostics,
    })
}

/// Ends the application of a job whose staging directory is gone: a previous attempt finished
/// the job (its history says how) and died before telling the RM.
pub(super) async fn finish_ended_job(
    dfs: &DfsClient,
    am: &MasterClient,
    job_id: &str,
) -> Result<JobOutcome, JobTrackerError> {
    let (state, diagnostics) = match history::read_history(dfs, job_id).await? {
        Some(record) if record.history.state.is_terminal() => {
            (record.history.state, record.history.diagnostics)
        }
        _ => (
            JobState::Failed,
            Some("the job's staging directory is gone (it was removed while the job ran)".into()),
        ),
    };
    am.finish(final_status(state), diagnostics.clone().unwrap_or_default())
        .await?;
    Ok(JobOutcome {
        job_id: job_id.to_string(),
        state,
        diagnostics,
    })
}

/// Tells every shuffle service that served the job's map outputs that the job is over.
async fn remove_from_shuffle_services(identity: &TlsIdentity, host: IpAddr, driver: &Driver) {
    if driver.shuffle_services.is_empty() {
        return;
    }
    let client = match ShuffleServiceClient::new(identity, host) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "cannot reach the shuffle services to remove the job");
            return;
        }
    };
    let calls = driver.shuffle_services.iter().filter_map(|addr| {
        let addr: SocketAddr = addr.parse().ok()?;
        let client = &client;
        Some(async move {
            let call = client.remove_job(addr, &driver.job_id, &driver.secret);
            match tokio::time::timeout(REMOVE_JOB_DEADLINE, call).await {
                Ok(Ok(files)) => tracing::debug!(%addr, files, "job removed from shuffle service"),
                Ok(Err(e)) => tracing::warn!(%addr, error = %e, "shuffle service kept the job"),
                Err(_) => tracing::warn!(%addr, "shuffle service did not answer the removal"),
            }
        })
    });
    futures::future::join_all(calls).await;
    client.close();
}

/// Ends a job that could not start (bad configuration, missing input, existing output …): a
/// history saying why, and FAILED to the RM.
pub(super) async fn fail_before_start(
    dfs: &DfsClient,
    am: &MasterClient,
    job_id: &str,
    submission: &JobSubmission,
    reason: String,
) -> Result<JobOutcome, JobTrackerError> {
    let now = wall_clock_ms();
    let record = JobRecord {
        history: crate::jobtracker::JobHistory {
            job_id: job_id.to_string(),
            conf: submission.conf.clone(),
            settings: JobConfig::default(),
            start_ms: now,
            finish_ms: Some(now),
            state: JobState::Failed,
            diagnostics: Some(reason.clone()),
            maps_total: 0,
            reduces_total: submission.reducers,
            counters: Counters::new(),
            attempts: Vec::new(),
        },
        name: submission.name.clone(),
        user: submission.user.clone(),
        inputs: submission.inputs.clone(),
        output: submission.output.clone(),
        submit_ms: submission.submit_ms,
        task_counters: BTreeMap::new(),
    };
    if let Err(e) = history::write_history(dfs, &record).await {
        tracing::warn!(error = %e, "cannot write the job history");
    }
    am.finish(FinalStatus::Failed, reason.clone()).await?;
    Ok(JobOutcome {
        job_id: job_id.to_string(),
        state: JobState::Failed,
        diagnostics: Some(reason),
    })
}
