//! Questions about jobs, answered from the best source still there: the job's JobTracker while
//! it runs, its history file once it ended, else the ResourceManager's application report.

use super::error::{dfs_err, unexpected_answer, JobClientError, JobClientResult};
use super::report::{application_tracking_address, JobReport, JobRunState, JobSummary};
use super::JobClient;
use crate::cluster::layout::history_file;
use crate::cluster::protocol::{JtRequest, JtResponse};
use crate::cluster::submission::{
    application_id_of_job, is_mapreduce_application, is_sql_session, HISTORY_DIR,
};
use crate::jobtracker::{JobHistory, JobStatus};
use sheaf_dfs::protocol::FileKind;
use sheaf_yarn::protocol::{AppId, AppState, YarnError};
use std::collections::BTreeMap;
use std::net::SocketAddr;

impl JobClient {
    /// The job's status: from its JobTracker while it runs, else its history, else the
    /// ResourceManager's report.
    pub async fn status(&self, job_id: &str) -> JobClientResult<JobReport> {
        let app_id = parse_job_id(job_id)?;
        let app = match self.rm.application(app_id).await {
            Ok(app) => Some(app),
            // An RM restarted since (new ids) or one that cannot be reached: the history may
            // still know the job.
            Err(YarnError::UnknownApplication(_)) => None,
            Err(e) => {
                return match self.read_history(job_id).await {
                    Ok(Some(h)) => Ok(JobReport::from_history(&h, None)),
                    _ => Err(e.into()),
                }
            }
        };
        let Some(app) = app else {
            return match self.read_history(job_id).await? {
                Some(h) => Ok(JobReport::from_history(&h, None)),
                None => Err(JobClientError::UnknownJob(job_id.to_string())),
            };
        };
        // A SQL session's master speaks the query master's protocol, not the JobTracker's.
        if !app.state.is_final() && !is_sql_session(&app.name) {
            if let Some(addr) = application_tracking_address(&app) {
                if let Ok(status) = self.jobtracker_status(&addr).await {
                    let mut report = JobReport::from_status(&status, &app);
                    report.tracking_address = Some(addr);
                    return Ok(report);
                }
            }
        }
        // Over, or its JobTracker is unreachable (between attempts, or gone): a history file,
        // when there is one, has the counters and attempts.
        match self.read_history(job_id).await {
            Ok(Some(h)) => Ok(JobReport::from_history(&h, Some(&app))),
            _ => Ok(JobReport::from_application(&app)),
        }
    }

    /// The status a JobTracker at `addr` answers.
    async fn jobtracker_status(&self, addr: &str) -> JobClientResult<JobStatus> {
        match self.jobtracker_call(addr, &JtRequest::Status).await? {
            JtResponse::Status(s) => Ok(*s),
            other => Err(unexpected_answer(addr, &other)),
        }
    }

    /// One call to the JobTracker at `addr`; its error answers become errors.
    pub(super) async fn jobtracker_call(
        &self,
        addr: &str,
        req: &JtRequest,
    ) -> JobClientResult<JtResponse> {
        let socket: SocketAddr = addr.parse().map_err(|_| JobClientError::JobTracker {
            addr: addr.to_string(),
            reason: "not an IP:PORT address".into(),
        })?;
        match self.jobtrackers.call(socket, req).await {
            Ok(JtResponse::Error(e)) => Err(JobClientError::JobTracker {
                addr: addr.to_string(),
                reason: e.to_string(),
            }),
            Ok(resp) => Ok(resp),
            Err(e) => Err(JobClientError::JobTracker {
                addr: addr.to_string(),
                reason: e.to_string(),
            }),
        }
    }

    /// MapReduce jobs: those the ResourceManager knows (only unfinished ones unless `all`) and,
    /// with `all`, finished jobs whose history is in the DFS. Sorted by job id.
    pub async fn list(&self, all: bool) -> JobClientResult<Vec<JobSummary>> {
        let states = if all {
            Vec::new()
        } else {
            vec![AppState::New, AppState::Accepted, AppState::Running]
        };
        let mut jobs: BTreeMap<String, JobSummary> = BTreeMap::new();
        for app in self.rm.applications(states).await? {
            if !is_mapreduce_application(&app.name) && !is_sql_session(&app.name) {
                continue;
            }
            let r = JobReport::from_application(&app);
            jobs.insert(
                r.job_id.clone(),
                JobSummary {
                    job_id: r.job_id,
                    name: r.name,
                    state: r.state,
                    start_ms: r.start_ms,
                    user: r.user,
                    queue: r.queue,
                },
            );
        }
        if all {
            for job_id in self.history_job_ids().await? {
                if jobs.contains_key(&job_id) {
                    continue;
                }
                if let Some(h) = self.read_history(&job_id).await? {
                    let r = JobReport::from_history(&h, None);
                    jobs.insert(
                        job_id,
                        JobSummary {
                            job_id: r.job_id,
                            name: r.name,
                            state: r.state,
                            start_ms: r.start_ms,
                            user: r.user,
                            queue: r.queue,
                        },
                    );
                }
            }
        }
        Ok(jobs.into_values().collect())
    }

    /// The jobs with a history file.
    async fn history_job_ids(&self) -> JobClientResult<Vec<String>> {
        let entries = match self.dfs.list(HISTORY_DIR).await {
            Ok(e) => e,
            Err(e) if e.is_not_found() => return Ok(Vec::new()),
            Err(e) => return Err(dfs_err(format!("listing {HISTORY_DIR}"))(e)),
        };
        Ok(entries
            .iter()
            .filter(|e| e.kind == FileKind::File)
            .filter_map(|e| {
                sheaf_dfs::path::file_name(&e.path)
                    .strip_suffix(".json")
                    .filter(|id| id.starts_with("job_"))
                    .map(str::to_string)
            })
            .collect())
    }

    /// The job's history (its configuration, counters and attempts), once it ended.
    pub async fn history(&self, job_id: &str) -> JobClientResult<JobHistory> {
        let app_id = parse_job_id(job_id)?;
        if let Some(h) = self.read_history(job_id).await? {
            return Ok(h);
        }
        match self.rm.application(app_id).await {
            Ok(app) if !app.state.is_final() => Err(JobClientError::NoHistory {
                job: job_id.to_string(),
                why: format!(
                    "it is still {}; the history is written when it ends, see `sheaf job status {job_id}`",
                    JobRunState::of_application(app.state, app.final_status)
                ),
            }),
            Ok(app) => Err(JobClientError::NoHistory {
                job: job_id.to_string(),
                why: format!(
                    "its JobTracker ended without writing {} ({})",
                    history_file(job_id),
                    if app.diagnostics.is_empty() {
                        JobRunState::of_application(app.state, app.final_status).to_string()
                    } else {
                        app.diagnostics
                    }
                ),
            }),
            Err(YarnError::UnknownApplication(_)) => {
                Err(JobClientError::UnknownJob(job_id.to_string()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The history file of `job_id`, `None` when there is none.
    pub async fn read_history(&self, job_id: &str) -> JobClientResult<Option<JobHistory>> {
        let path = history_file(job_id);
        match self.dfs.status(&path).await {
            Ok(Some(_)) => {}
            Ok(None) => return Ok(None),
            Err(e) => return Err(dfs_err(format!("reading {path}"))(e)),
        }
        let bytes = match self.dfs.read_file(&path).await {
            Ok(b) => b,
            // Removed between the two calls.
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(dfs_err(format!("reading {path}"))(e)),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| JobClientError::BadHistory {
                path,
                reason: e.to_string(),
            })
    }
}

/// The application id of `job_id`, or [`JobClientError::BadJobId`].
pub fn parse_job_id(job_id: &str) -> JobClientResult<AppId> {
    application_id_of_job(job_id).ok_or_else(|| JobClientError::BadJobId(job_id.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_must_look_like_jobs() {
        let app = parse_job_id("job_1764115200000_0007").expect("parse");
        assert_eq!(app.to_string(), "application_1764115200000_0007");
        assert!(matches!(
            parse_job_id("application_1_0001"),
            Err(JobClientError::BadJobId(_))
        ));
        assert!(matches!(
            parse_job_id("job_x"),
            Err(JobClientError::BadJobId(_))
        ));
        assert_eq!(
            JobClientError::UnknownJob("job_1_0001".into()).to_string(),
            "Could not find job job_1_0001"
        );
    }
}
