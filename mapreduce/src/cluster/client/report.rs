//! The job-state presentation model: [`JobReport`] and [`JobSummary`] built from whichever
//! source answered (the JobTracker's status, the history file, the RM's application report), and
//! Hadoop's phase progress. Pure: no cluster needed.

use super::{DEFAULT_QUEUE, JOB_NAME_KEY, QUEUE_KEY, USER_KEY};
use crate::cluster::submission::{job_id_of_application, job_name_of_application};
use crate::counters::Counters;
use crate::jobtracker::{AttemptRecord, AttemptState, JobHistory, JobState, JobStatus, TaskKind};
use sheaf_yarn::protocol::{AppState, ApplicationReport, FinalStatus};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// A job's state as users see it (Hadoop's `JobStatus.State`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobRunState {
    /// Submitted; its JobTracker is not running yet.
    Prep,
    /// Running (including the output commit).
    Running,
    /// Done, output committed.
    Succeeded,
    /// Failed.
    Failed,
    /// Killed.
    Killed,
}

impl JobRunState {
    /// True for SUCCEEDED, FAILED and KILLED.
    pub fn is_over(self) -> bool {
        matches!(
            self,
            JobRunState::Succeeded | JobRunState::Failed | JobRunState::Killed
        )
    }

    /// The user-visible state of a JobTracker state.
    pub fn of_job(state: JobState) -> JobRunState {
        match state {
            JobState::Running | JobState::Committing => JobRunState::Running,
            JobState::Succeeded => JobRunState::Succeeded,
            JobState::Failed => JobRunState::Failed,
            JobState::Killed => JobRunState::Killed,
        }
    }

    /// The user-visible state implied by the ResourceManager's view of the application.
    pub fn of_application(state: AppState, final_status: FinalStatus) -> JobRunState {
        match state {
            AppState::New | AppState::Accepted => JobRunState::Prep,
            AppState::Running => JobRunState::Running,
            AppState::Finished => match final_status {
                FinalStatus::Succeeded => JobRunState::Succeeded,
                FinalStatus::Killed => JobRunState::Killed,
                FinalStatus::Failed | FinalStatus::Undefined => JobRunState::Failed,
            },
            AppState::Failed => JobRunState::Failed,
            AppState::Killed => JobRunState::Killed,
        }
    }
}

impl fmt::Display for JobRunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            JobRunState::Prep => "PREP",
            JobRunState::Running => "RUNNING",
            JobRunState::Succeeded => "SUCCEEDED",
            JobRunState::Failed => "FAILED",
            JobRunState::Killed => "KILLED",
        })
    }
}

/// Where a [`JobReport`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportSource {
    /// The running JobTracker.
    JobTracker,
    /// The job's history file.
    History,
    /// Only the ResourceManager's application report.
    ResourceManager,
}

/// What is known about one job, from whichever source answered.
#[derive(Debug, Clone, PartialEq)]
pub struct JobReport {
    /// The job (`job_<cluster>_<seq>`).
    pub job_id: String,
    /// Its name.
    pub name: String,
    /// Submitting user.
    pub user: String,
    /// Queue.
    pub queue: String,
    /// State.
    pub state: JobRunState,
    /// Maps done (output available) and in the job (0 while unknown).
    pub maps_done: u32,
    /// Maps in the job.
    pub maps_total: u32,
    /// Reduces committed.
    pub reduces_done: u32,
    /// Reduces in the job.
    pub reduces_total: u32,
    /// Map phase progress, 0.0 ..= 1.0 (counts running attempts' progress).
    pub map_progress: f64,
    /// Reduce phase progress, 0.0 ..= 1.0.
    pub reduce_progress: f64,
    /// Submission (or start) time, ms since the epoch.
    pub start_ms: u64,
    /// End time, ms since the epoch, once over.
    pub finish_ms: Option<u64>,
    /// Why it failed or was killed.
    pub diagnostics: Option<String>,
    /// Job counters (empty when only the ResourceManager answered).
    pub counters: Counters,
    /// Every attempt (empty when only the ResourceManager answered).
    pub attempts: Vec<AttemptRecord>,
    /// The JobTracker's address, while it runs.
    pub tracking_address: Option<String>,
    /// Which source answered.
    pub source: ReportSource,
}

impl JobReport {
    /// The report of a running JobTracker, with the application's metadata.
    pub fn from_status(status: &JobStatus, app: &ApplicationReport) -> JobReport {
        let mut r = JobReport::from_application(app);
        r.state = JobRunState::of_job(status.state);
        r.maps_done = status.maps_done;
        r.maps_total = status.maps_total;
        r.reduces_done = status.reduces_done;
        r.reduces_total = status.reduces_total;
        r.map_progress = phase_progress(
            &status.attempts,
            TaskKind::Map,
            status.maps_done,
            status.maps_total,
        );
        r.reduce_progress = phase_progress(
            &status.attempts,
            TaskKind::Reduce,
            status.reduces_done,
            status.reduces_total,
        );
        r.diagnostics = status.diagnostics.clone();
        r.counters = status.counters.clone();
        r.attempts = status.attempts.clone();
        r.source = ReportSource::JobTracker;
        r
    }

    /// The report kept in a history file; `app` (when the RM still knows it) fills what the
    /// history lacks.
    pub fn from_history(h: &JobHistory, app: Option<&ApplicationReport>) -> JobReport {
        let conf = |k: &str| h.conf.get(k).cloned().filter(|v| !v.is_empty());
        let (maps_done, reduces_done) = done_tasks(&h.attempts, h.maps_total, h.reduces_total);
        JobReport {
            job_id: h.job_id.clone(),
            name: conf(JOB_NAME_KEY)
                .or_else(|| app.map(|a| job_name_of_application(&a.name).to_string()))
                .unwrap_or_default(),
            user: conf(USER_KEY)
                .or_else(|| app.map(|a| a.user.clone()))
                .unwrap_or_default(),
            // The RM's name for the queue first, so `status` and `list` agree.
            queue: app
                .map(|a| a.queue.clone())
                .or_else(|| conf(QUEUE_KEY))
                .unwrap_or_else(|| DEFAULT_QUEUE.to_string()),
            state: JobRunState::of_job(h.state),
            maps_done,
            maps_total: h.maps_total,
            reduces_done,
            reduces_total: h.reduces_total,
            map_progress: phase_progress(&h.attempts, TaskKind::Map, maps_done, h.maps_total),
            reduce_progress: phase_progress(
                &h.attempts,
                TaskKind::Reduce,
                reduces_done,
                h.reduces_total,
            ),
            start_ms: app.map(|a| a.submit_ms).unwrap_or(h.start_ms),
            finish_ms: h.finish_ms,
            diagnostics: h.diagnostics.clone(),
            counters: h.counters.clone(),
            attempts: h.attempts.clone(),
            tracking_address: None,
            source: ReportSource::History,
        }
    }

    /// What the ResourceManager alone tells about the job's application.
    pub fn from_application(app: &ApplicationReport) -> JobReport {
        let state = JobRunState::of_application(app.state, app.final_status);
        JobReport {
            job_id: job_id_of_application(&app.id.to_string()),
            name: job_name_of_application(&app.name).to_string(),
            user: app.user.clone(),
            queue: app.queue.clone(),
            state,
            maps_done: 0,
            maps_total: 0,
            reduces_done: 0,
            reduces_total: 0,
            map_progress: 0.0,
            reduce_progress: 0.0,
            start_ms: app.submit_ms,
            finish_ms: (app.finish_ms > 0).then_some(app.finish_ms),
            diagnostics: (!app.diagnostics.is_empty() && state != JobRunState::Succeeded)
                .then(|| app.diagnostics.clone()),
            counters: Counters::new(),
            attempts: Vec::new(),
            tracking_address: application_tracking_address(app),
            source: ReportSource::ResourceManager,
        }
    }
}

/// A row of `sheaf job list`.
#[derive(Debug, Clone, PartialEq)]
pub struct JobSummary {
    /// The job.
    pub job_id: String,
    /// Its name.
    pub name: String,
    /// State.
    pub state: JobRunState,
    /// Submission time, ms since the epoch.
    pub start_ms: u64,
    /// Submitting user.
    pub user: String,
    /// Queue.
    pub queue: String,
}

/// The JobTracker address the ResourceManager reports for the application, if registered.
pub(super) fn application_tracking_address(app: &ApplicationReport) -> Option<String> {
    app.tracking_address.clone().filter(|a| !a.is_empty())
}

/// Tasks of each phase that are done, from the attempts (for history files, which keep only
/// the attempts): a map or reduce with a succeeded attempt.
pub(super) fn done_tasks(attempts: &[AttemptRecord], maps: u32, reduces: u32) -> (u32, u32) {
    let mut done = BTreeSet::new();
    for a in attempts {
        if a.state == AttemptState::Succeeded {
            done.insert(a.attempt.task);
        }
    }
    let count = |kind| done.iter().filter(|t| t.kind == kind).count() as u32;
    (
        count(TaskKind::Map).min(maps),
        count(TaskKind::Reduce).min(reduces),
    )
}

/// Progress of one phase, 0.0 ..= 1.0, as Hadoop reports it: done tasks count fully, each other
/// task counts the progress of its furthest running attempt.
pub fn phase_progress(attempts: &[AttemptRecord], kind: TaskKind, done: u32, total: u32) -> f64 {
    if total == 0 {
        return if done == 0 { 0.0 } else { 1.0 };
    }
    let mut best: BTreeMap<u32, f64> = BTreeMap::new();
    let mut succeeded = BTreeSet::new();
    for a in attempts.iter().filter(|a| a.attempt.task.kind == kind) {
        let index = a.attempt.task.index;
        if a.state == AttemptState::Succeeded {
            succeeded.insert(index);
        } else if a.state.is_live() {
            let p = a.progress.clamp(0.0, 1.0);
            let e = best.entry(index).or_insert(0.0);
            *e = e.max(p);
        }
    }
    let partial: f64 = best
        .iter()
        .filter(|(index, _)| !succeeded.contains(index))
        .map(|(_, p)| *p)
        .sum();
    ((f64::from(done) + partial) / f64::from(total)).clamp(0.0, 1.0)
}

/// Hadoop's percentage (`map 40%`): floor, so 100% means done.
pub fn percent(progress: f64) -> u32 {
    (progress.clamp(0.0, 1.0) * 100.0).floor() as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobtracker::{AttemptId, TaskId};
    use sheaf_yarn::protocol::AppId;

    fn attempt(
        kind: TaskKind,
        index: u32,
        number: u32,
        state: AttemptState,
        progress: f64,
    ) -> AttemptRecord {
        AttemptRecord {
            attempt: AttemptId {
                task: TaskId { kind, index },
                number,
            },
            state,
            speculative: false,
            host: None,
            rack: None,
            locality: None,
            start_ms: None,
            end_ms: None,
            progress,
            error: None,
            committed: false,
        }
    }

    #[test]
    fn phase_progress_counts_done_tasks_and_the_best_running_attempt() {
        let attempts = vec![
            attempt(TaskKind::Map, 0, 0, AttemptState::Succeeded, 1.0),
            attempt(TaskKind::Map, 1, 0, AttemptState::Running, 0.5),
            attempt(TaskKind::Map, 1, 1, AttemptState::Running, 0.7),
            attempt(TaskKind::Map, 2, 0, AttemptState::Failed, 0.9),
            attempt(TaskKind::Map, 3, 0, AttemptState::Unassigned, 0.0),
            attempt(TaskKind::Reduce, 0, 0, AttemptState::Running, 0.3),
        ];
        let maps = phase_progress(&attempts, TaskKind::Map, 1, 4);
        assert!((maps - (1.0 + 0.7) / 4.0).abs() < 1e-9, "{maps}");
        assert_eq!(percent(maps), 42);
        let reduces = phase_progress(&attempts, TaskKind::Reduce, 0, 2);
        assert_eq!(percent(reduces), 15);
        assert_eq!(phase_progress(&[], TaskKind::Reduce, 0, 0), 0.0);
        assert_eq!(percent(0.999), 99);
        assert_eq!(percent(1.0), 100);
        assert_eq!(done_tasks(&attempts, 4, 2), (1, 0));
    }

    #[test]
    fn application_states_map_to_job_states() {
        use JobRunState as J;
        assert_eq!(
            J::of_application(AppState::Accepted, FinalStatus::Undefined),
            J::Prep
        );
        assert_eq!(
            J::of_application(AppState::Running, FinalStatus::Undefined),
            J::Running
        );
        assert_eq!(
            J::of_application(AppState::Finished, FinalStatus::Succeeded),
            J::Succeeded
        );
        assert_eq!(
            J::of_application(AppState::Finished, FinalStatus::Failed),
            J::Failed
        );
        assert_eq!(
            J::of_application(AppState::Failed, FinalStatus::Undefined),
            J::Failed
        );
        assert_eq!(
            J::of_application(AppState::Killed, FinalStatus::Killed),
            J::Killed
        );
        assert_eq!(J::of_job(JobState::Committing), J::Running);
        assert_eq!(format!("{:<10}|", J::Succeeded), "SUCCEEDED |");
    }

    fn application(state: AppState, final_status: FinalStatus) -> ApplicationReport {
        ApplicationReport {
            id: AppId {
                cluster_ts: 1764115200000,
                seq: 7,
            },
            name: "MAPREDUCE word count".into(),
            user: "alice".into(),
            queue: "research".into(),
            state,
            final_status,
            attempt: 1,
            max_attempts: 2,
            diagnostics: "killed by bob".into(),
            submit_ms: 1000,
            finish_ms: 0,
            master_host: None,
            tracking_address: Some(String::new()),
            containers: Vec::new(),
        }
    }

    fn history(conf: &[(&str, &str)]) -> JobHistory {
        let mut counters = Counters::new();
        counters.incr_task("MAP_INPUT_RECORDS", 12);
        JobHistory {
            job_id: "job_1764115200000_0007".into(),
            conf: conf
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            settings: crate::jobtracker::JobConfig::default(),
            start_ms: 2000,
            finish_ms: Some(9000),
            state: JobState::Succeeded,
            diagnostics: None,
            maps_total: 2,
            reduces_total: 1,
            counters,
            attempts: vec![
                attempt(TaskKind::Map, 0, 0, AttemptState::Succeeded, 1.0),
                attempt(TaskKind::Map, 0, 1, AttemptState::Killed, 0.4),
                attempt(TaskKind::Map, 1, 0, AttemptState::Succeeded, 1.0),
                attempt(TaskKind::Reduce, 0, 0, AttemptState::Succeeded, 1.0),
            ],
        }
    }

    #[test]
    fn a_history_report_takes_names_from_the_conf_and_counts_done_tasks() {
        let h = history(&[(JOB_NAME_KEY, "wc"), (USER_KEY, "carol"), (QUEUE_KEY, "")]);
        let r = JobReport::from_history(&h, None);
        assert_eq!(r.job_id, "job_1764115200000_0007");
        assert_eq!((r.name.as_str(), r.user.as_str()), ("wc", "carol"));
        // An empty conf value counts as absent: the default queue.
        assert_eq!(r.queue, DEFAULT_QUEUE);
        assert_eq!(r.state, JobRunState::Succeeded);
        assert_eq!((r.maps_done, r.maps_total), (2, 2));
        assert_eq!((r.reduces_done, r.reduces_total), (1, 1));
        assert_eq!(
            (percent(r.map_progress), percent(r.reduce_progress)),
            (100, 100)
        );
        assert_eq!((r.start_ms, r.finish_ms), (2000, Some(9000)));
        assert_eq!(r.counters.task("MAP_INPUT_RECORDS"), 12);
        assert_eq!(r.attempts.len(), 4);
        assert_eq!(r.source, ReportSource::History);
        assert_eq!(r.tracking_address, None);
    }

    #[test]
    fn a_history_report_fills_gaps_from_the_application() {
        let app = application(AppState::Finished, FinalStatus::Succeeded);
        let r = JobReport::from_history(&history(&[(QUEUE_KEY, "default")]), Some(&app));
        assert_eq!(r.name, "word count");
        assert_eq!(r.user, "alice");
        // The RM's queue wins over the conf's, so `status` and `list` agree.
        assert_eq!(r.queue, "research");
        assert_eq!(r.start_ms, 1000);
    }

    #[test]
    fn an_application_report_alone_knows_no_tasks() {
        let running =
            JobReport::from_application(&application(AppState::Running, FinalStatus::Undefined));
        assert_eq!(running.job_id, "job_1764115200000_0007");
        assert_eq!(running.name, "word count");
        assert_eq!(running.state, JobRunState::Running);
        assert_eq!((running.maps_total, running.reduces_total), (0, 0));
        assert_eq!(running.finish_ms, None);
        // An empty tracking address is no address.
        assert_eq!(running.tracking_address, None);
        assert_eq!(running.diagnostics.as_deref(), Some("killed by bob"));
        assert_eq!(running.source, ReportSource::ResourceManager);
        let mut done = application(AppState::Finished, FinalStatus::Succeeded);
        done.finish_ms = 5000;
        done.tracking_address = Some("127.0.0.1:4000".into());
        let done = JobReport::from_application(&done);
        assert_eq!(done.state, JobRunState::Succeeded);
        assert_eq!(done.finish_ms, Some(5000));
        // A succeeded job has no diagnostics to show.
        assert_eq!(done.diagnostics, None);
        assert_eq!(done.tracking_address.as_deref(), Some("127.0.0.1:4000"));
    }

    #[test]
    fn a_jobtracker_report_takes_progress_and_counters_from_the_status() {
        let h = history(&[]);
        let status = JobStatus {
            job_id: h.job_id.clone(),
            state: JobState::Committing,
            maps_done: 1,
            maps_total: 2,
            reduces_done: 0,
            reduces_total: 1,
            blacklisted_hosts: Vec::new(),
            diagnostics: None,
            attempts: vec![
                attempt(TaskKind::Map, 0, 0, AttemptState::Succeeded, 1.0),
                attempt(TaskKind::Map, 1, 0, AttemptState::Running, 0.5),
            ],
            counters: h.counters.clone(),
        };
        let app = application(AppState::Running, FinalStatus::Undefined);
        let r = JobReport::from_status(&status, &app);
        assert_eq!(r.state, JobRunState::Running);
        assert_eq!(percent(r.map_progress), 75);
        assert_eq!(percent(r.reduce_progress), 0);
        assert_eq!((r.maps_done, r.maps_total), (1, 2));
        assert_eq!(r.counters.task("MAP_INPUT_RECORDS"), 12);
        assert_eq!(r.queue, "research");
        // The JobTracker's (absent) diagnostics replace the RM's.
        assert_eq!(r.diagnostics, None);
        assert_eq!(r.source, ReportSource::JobTracker);
    }
}
