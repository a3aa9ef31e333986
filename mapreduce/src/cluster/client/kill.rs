//! Killing a job: through its JobTracker (which cleans up and records the history), the
//! ResourceManager when that is impossible or too slow; never over a JobTracker that refuses
//! because the job is committing.

use super::error::{JobClientError, JobClientResult};
use super::query::parse_job_id;
use super::report::JobRunState;
use super::JobClient;
use crate::cluster::protocol::{JtRequest, JtResponse};
use sheaf_yarn::protocol::{AppId, YarnError};
use std::time::{Duration, Instant};

/// How long `kill` waits for the JobTracker to wind the job down before it asks the
/// ResourceManager to kill the application outright.
const KILL_GRACE: Duration = Duration::from_secs(15);
/// Poll interval while waiting for a killed job to end.
const KILL_POLL: Duration = Duration::from_millis(200);
/// How long `kill` waits for a job that refused the kill (it is committing) to end before it
/// leaves it to finish on its own; the ResourceManager is never asked to kill such a job.
const COMMIT_WAIT: Duration = Duration::from_secs(120);

/// What a JobTracker's answer to `Kill` means for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KillAnswer {
    /// The kill is under way (or the job is over already): wait for the job to end.
    Accepted,
    /// The job is committing: it will end on its own; do not escalate.
    Refused(String),
}

impl KillAnswer {
    /// Reads the answer to `JtRequest::Kill`; `None` for an answer that is no answer to it.
    pub fn of(response: &JtResponse) -> Option<KillAnswer> {
        match response {
            JtResponse::Ack { .. } => Some(KillAnswer::Accepted),
            JtResponse::KillRefused { reason } => Some(KillAnswer::Refused(reason.clone())),
            _ => None,
        }
    }
}

impl JobClient {
    /// Kills the job: asks its JobTracker (which cleans up and records the history), and when
    /// that is impossible or does not end the job within a grace period, the ResourceManager.
    /// Returns the state the job ended in. A JobTracker that refuses because the job is
    /// committing is never overruled: `kill` waits a while for the job to end and returns
    /// [`JobClientError::KillRefused`].
    pub async fn kill(&self, job_id: &str, reason: &str) -> JobClientResult<JobRunState> {
        let report = self.status(job_id).await?;
        if report.state.is_over() {
            return Err(JobClientError::AlreadyOver {
                job: job_id.to_string(),
                state: report.state,
            });
        }
        let app_id = parse_job_id(job_id)?;
        let answer = match &report.tracking_address {
            Some(addr) => self
                .jobtracker_call(
                    addr,
                    &JtRequest::Kill {
                        reason: reason.to_string(),
                    },
                )
                .await
                .ok()
                .and_then(|r| KillAnswer::of(&r)),
            None => None,
        };
        if let Some(KillAnswer::Refused(why)) = &answer {
            tracing::info!(job = job_id, %why, "the jobtracker refused the kill");
            let ended = if self.wait_until_over(app_id, COMMIT_WAIT).await? {
                Some(self.status(job_id).await?.state)
            } else {
                None
            };
            return Err(JobClientError::KillRefused {
                job: job_id.to_string(),
                ended,
            });
        }
        if answer.is_some() && self.wait_until_over(app_id, KILL_GRACE).await? {
            return Ok(self.status(job_id).await?.state);
        }
        match self.rm.kill(app_id).await {
            Ok(()) | Err(YarnError::AlreadyFinal { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        Ok(self.status(job_id).await?.state)
    }

    /// Polls the ResourceManager until the application is over (true) or `limit` passed.
    async fn wait_until_over(&self, app_id: AppId, limit: Duration) -> JobClientResult<bool> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.rm.application(app_id).await?.state.is_final() {
                return Ok(true);
            }
            tokio::time::sleep(KILL_POLL).await;
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobtracker::JobState;

    #[test]
    fn a_refused_kill_is_told_apart_from_an_accepted_one() {
        assert_eq!(
            KillAnswer::of(&JtResponse::Ack { proceed: true }),
            Some(KillAnswer::Accepted)
        );
        // A JobTracker already winding down answers stop: the job ends anyway.
        assert_eq!(
            KillAnswer::of(&JtResponse::Ack { proceed: false }),
            Some(KillAnswer::Accepted)
        );
        let refused = JtResponse::to_kill(JobState::Committing);
        assert!(
            matches!(KillAnswer::of(&refused), Some(KillAnswer::Refused(r)) if r.contains("committing"))
        );
        let not_an_answer = JtResponse::MapEvents {
            events: Vec::new(),
            next: 0,
            proceed: true,
        };
        assert_eq!(KillAnswer::of(&not_an_answer), None);
        let e = JobClientError::KillRefused {
            job: "job_1_0002".into(),
            ended: Some(JobRunState::Succeeded),
        };
        assert!(
            e.to_string().contains("committing") && e.to_string().ends_with("it ended SUCCEEDED"),
            "{e}"
        );
        let e = JobClientError::KillRefused {
            job: "job_1_0002".into(),
            ended: None,
        };
        assert!(e.to_string().contains("it will finish"), "{e}");
    }
}
