//! Where a job's files live in the DFS: the one place that names them, for the submitter, the
//! JobTracker and the task processes.
//!
//! - staging: `STAGING_ROOT/<user>/<unique>/` ([`staging_dir`], [`staging_file`]): the
//!   submission ([`submission_file`]), the plugin ([`plugin_file`]), shipped files under
//!   [`FILES_DIR`] ([`shipped_file`]), recovery snapshots and the shuffle secret under
//!   [`RECOVERY_DIR`] ([`recovery_dir`], [`shuffle_secret_file`]);
//! - attempts: `OUT/_temporary/<app attempt>/attempt_…/` ([`attempt_output_dir`]), each writing
//!   its task's [`output_file_name`] (`OUT/_temporary/` is [`temporary_dir`]); committed ones
//!   under `OUT/_temporary/committed/`
//!   ([`committed_dir`]); the job commit expects exactly [`expected_outputs`];
//! - history: `HISTORY_DIR/<job>.json` ([`history_file`]).

use super::submission::{
    FILES_DIR, HISTORY_DIR, PLUGIN_FILE, RECOVERY_DIR, STAGING_ROOT, SUBMISSION_FILE,
};
use crate::fs::JobPath;
use crate::jobtracker::{AttemptId, TaskId};
use crate::local::{COMMITTED_DIR, TEMPORARY_DIR};
use std::collections::BTreeSet;

/// File of the recovery directory holding the job's shuffle secret: map outputs registered by an
/// earlier JobTracker attempt's tasks stay under it on the shuffle services, so a recovered
/// JobTracker must keep using it.
const SECRET_FILE: &str = "shuffle.secret";

/// A fresh staging directory name for `user`'s submission at `submit_ms`.
pub fn staging_dir(user: &str, submit_ms: u64) -> String {
    format!(
        "{STAGING_ROOT}/{user}/{submit_ms}-{:08x}",
        rand::random::<u32>()
    )
}

/// The file `name` of DFS directory `dir` (an absolute DFS path; a staging directory's
/// submission, plugin, recovery directory …).
pub fn staging_file(dir: &str, name: &str) -> String {
    format!("{}/{name}", dir.trim_end_matches('/'))
}

/// The directory of staging directory `dir` holding the files shipped with the job.
pub fn files_dir(dir: &str) -> String {
    staging_file(dir, FILES_DIR)
}

/// The staged copy of shipped file `name` in staging directory `dir`.
pub fn shipped_file(dir: &str, name: &str) -> String {
    format!("{}/{FILES_DIR}/{name}", dir.trim_end_matches('/'))
}

/// The submission record of staging directory `dir`.
pub fn submission_file(dir: &str) -> String {
    staging_file(dir, SUBMISSION_FILE)
}

/// The staged plugin library of staging directory `dir`.
pub fn plugin_file(dir: &str) -> String {
    staging_file(dir, PLUGIN_FILE)
}

/// The recovery directory of staging directory `dir` (snapshots, output claim, shuffle secret).
pub fn recovery_dir(dir: &str) -> String {
    staging_file(dir, RECOVERY_DIR)
}

/// The job's shuffle secret, kept for later JobTracker attempts in the recovery directory of
/// staging directory `dir`.
pub fn shuffle_secret_file(dir: &str) -> String {
    staging_file(&recovery_dir(dir), SECRET_FILE)
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

/// The temporary area of output directory `out` (an absolute DFS path): attempt outputs and
/// committed task outputs until the job commit.
pub fn temporary_dir(out: &str) -> String {
    staging_file(out, TEMPORARY_DIR)
}

/// The directory of committed task outputs of output directory `out` (an absolute DFS path).
pub fn committed_dir(out: &str) -> String {
    staging_file(&temporary_dir(out), COMMITTED_DIR)
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
        assert_eq!(files_dir("/s/u/x/"), "/s/u/x/files");
        assert_eq!(submission_file("/s/u/x"), "/s/u/x/job.msgpack");
        assert_eq!(plugin_file("/s/u/x/"), "/s/u/x/job.so");
        assert_eq!(recovery_dir("/s/u/x"), "/s/u/x/recovery");
        assert_eq!(
            shuffle_secret_file("/s/u/x"),
            "/s/u/x/recovery/shuffle.secret"
        );
        assert_eq!(temporary_dir("/out/"), "/out/_temporary");
        let dir = staging_dir("alice", 42);
        assert!(dir.starts_with("/sheaf/staging/alice/42-"), "{dir}");
        assert_eq!(
            history_file("job_1732590000000_0007"),
            "/sheaf/history/job_1732590000000_0007.json"
        );
    }
}
