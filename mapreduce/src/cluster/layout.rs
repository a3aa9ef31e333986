//! Where a job's files live in the DFS: the one place that names them, for the submitter, the
//! JobTracker and the task processes.
//!
//! - staging: `STAGING_ROOT/<user>/<unique>/` ([`staging_file`]), shipped files under
//!   [`FILES_DIR`] ([`shipped_file`]), recovery snapshots under [`RECOVERY_DIR`];
//! - attempts: `OUT/_temporary/<app attempt>/attempt_…/` ([`attempt_output_dir`]), each writing
//!   its task's [`output_file_name`]; committed ones under `OUT/_temporary/committed/`
//!   ([`committed_dir`]); the job commit expects exactly [`expected_outputs`];
//! - history: `HISTORY_DIR/<job>.json` ([`history_file`]).

use super::submission::{FILES_DIR, HISTORY_DIR};
use crate::fs::JobPath;
use crate::jobtracker::{AttemptId, TaskId};
use crate::local::{COMMITTED_DIR, TEMPORARY_DIR};
use std::collections::BTreeSet;

/// The file `name` of DFS directory `dir` (an absolute DFS path; a staging directory's
/// submission, plugin, recovery directory …).
pub fn staging_file(dir: &str, name: &str) -> String {
    format!("{}/{name}", dir.trim_end_matches('/'))
}

/// The staged copy of shipped file `name` in staging directory `dir`.
pub fn shipped_file(dir: &str, name: &str) -> String {
    format!("{}/{FILES_DIR}/{name}", dir.trim_end_matches('/'))
}

/// The DFS path of a finished job's history file.
pub fn history_file(job_id: &str) -> String {
    format!("{HISTORY_DIR}/{job_id}.json")
}

/// The DFS path (`sheaf:///…` form) of an absolute DFS path.
pub fn dfs_job_path(path: &str) -> JobPath {
    JobPath::Dfs {
        namenode: None,
        path: path.to_string(),
    }
}

/// The absolute DFS path of a DFS job path.
pub fn dfs_path_of(path: &JobPath) -> String {
    match path {
        JobPath::Dfs { path, .. } => path.clone(),
        JobPath::Local(p) => p.display().to_string(),
    }
}

/// The output file of a task (`part-m-00003`, `part-r-00001`).
pub fn output_file_name(task: TaskId) -> String {
    format!("part-{}-{:05}", task.kind.tag(), task.index)
}

/// The name of an attempt as tasks are told it (`attempt_m_000003_0`), also its directory's
/// name under `_temporary/<JobTracker attempt>/`.
pub fn attempt_dir_name(attempt: AttemptId) -> String {
    format!("attempt_{attempt}")
}

/// The output directory of a task attempt: `OUT/_temporary/<app attempt>/attempt_…` (Hadoop's
/// layout). Attempt numbers the last snapshot did not record are used again by the next
/// JobTracker attempt, whose directories must not be those an orphan of the previous one may
/// still write into.
pub fn attempt_output_dir(out: &JobPath, app_attempt: u32, attempt: AttemptId) -> JobPath {
    out.join(TEMPORARY_DIR)
        .join(&app_attempt.to_string())
        .join(&attempt_dir_name(attempt))
}

/// The directory of committed task outputs of output directory `out` (an absolute DFS path).
pub fn committed_dir(out: &str) -> String {
    staging_file(&staging_file(out, TEMPORARY_DIR), COMMITTED_DIR)
}

/// The output files a job commits: one per reduce, or one per map of a map-only job.
pub fn expected_outputs(maps: u32, reduces: u32) -> BTreeSet<String> {
    if reduces == 0 {
        (0..maps)
            .map(|i| output_file_name(TaskId::map(i)))
            .collect()
    } else {
        (0..reduces)
            .map(|i| output_file_name(TaskId::reduce(i)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::submission::SUBMISSION_FILE;

    #[test]
    fn task_files_and_directories_follow_hadoops_names() {
        let a = AttemptId {
            task: TaskId::map(3),
            number: 1,
        };
        assert_eq!(output_file_name(a.task), "part-m-00003");
        assert_eq!(output_file_name(TaskId::reduce(12)), "part-r-00012");
        assert_eq!(attempt_dir_name(a), "attempt_m_000003_1");
        assert_eq!(
            dfs_path_of(&attempt_output_dir(&dfs_job_path("/out"), 2, a)),
            "/out/_temporary/2/attempt_m_000003_1"
        );
        assert_eq!(
            expected_outputs(3, 0),
            BTreeSet::from(["part-m-00000", "part-m-00001", "part-m-00002"].map(String::from))
        );
        assert_eq!(
            expected_outputs(3, 2),
            BTreeSet::from(["part-r-00000", "part-r-00001"].map(String::from))
        );
        assert_eq!(dfs_job_path("/out").to_string(), "sheaf:///out");
        assert_eq!(
            dfs_path_of(&dfs_job_path("/out").join(TEMPORARY_DIR).join("x")),
            "/out/_temporary/x"
        );
        assert_eq!(committed_dir("/out/"), "/out/_temporary/committed");
        assert_eq!(
            staging_file("/s/u/x/", SUBMISSION_FILE),
            "/s/u/x/job.msgpack"
        );
        assert_eq!(shipped_file("/s/u/1-x/", "map.py"), "/s/u/1-x/files/map.py");
        assert_eq!(
            history_file("job_1732590000000_0007"),
            "/sheaf/history/job_1732590000000_0007.json"
        );
    }
}
