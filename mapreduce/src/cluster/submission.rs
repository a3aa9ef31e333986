//! What `sheaf job submit` leaves in the DFS staging directory for the JobTracker, and the
//! conventions (paths, environment variables, hidden subcommands) the submitter, the
//! JobTracker, the task processes and the NodeManager's shuffle service share.
//!
//! Staging layout (`STAGING_ROOT/<user>/<unique>/`):
//! - [`SUBMISSION_FILE`]: the [`JobSubmission`], msgpack (rmp-serde, named fields);
//! - [`PLUGIN_FILE`]: the plugin library, for plugin jobs;
//! - [`RECOVERY_DIR`]: the JobTracker's history snapshots, for a restarted JobTracker attempt;
//! - [`FILES_DIR`]: the files shipped with `--file` (Hadoop's `-file`), localized into every
//!   task container's working dir under their own names.

// The job client still names these here; they live in `layout`.
pub use super::layout::{history_file, shipped_file, staging_file};
use serde::{Deserialize, Serialize};
use sheaf_yarn::protocol::AppId;
use std::collections::BTreeMap;

/// DFS directory under which submissions are staged, per user.
pub const STAGING_ROOT: &str = "/sheaf/staging";
/// DFS directory where finished jobs' histories are kept (`<job_id>.json`).
pub const HISTORY_DIR: &str = "/sheaf/history";
/// The submission record in a staging directory.
pub const SUBMISSION_FILE: &str = "job.msgpack";
/// The plugin library in a staging directory.
pub const PLUGIN_FILE: &str = "job.so";
/// Name the NodeManager localizes the plugin under, in every container's working dir.
pub const PLUGIN_LINK_NAME: &str = "job.so";
/// Directory of a staging dir holding the files shipped with the job (`--file`).
pub const FILES_DIR: &str = "files";
/// Job configuration key listing the shipped files' names (comma-separated), for the history
/// (the NodeManager's localizer makes localized files executable, like Hadoop's).
pub const SHIPPED_FILES_KEY: &str = "sheaf.job.shipped.files";
/// Directory of a staging dir holding the JobTracker's recovery snapshots.
pub const RECOVERY_DIR: &str = "recovery";
/// Name of the yarnlike auxiliary service that serves map outputs.
pub const SHUFFLE_SERVICE: &str = "shuffle";
/// Application type (first word of the application name) of MapReduce jobs, so `sheaf job list`
/// can tell them from other yarnlike applications.
pub const APPLICATION_NAME_PREFIX: &str = "MAPREDUCE";
/// Application type of SQL sessions (`sheaf sql` on the cluster), which `sheaf job list` shows
/// beside MapReduce jobs.
pub const SQL_APPLICATION_NAME_PREFIX: &str = "SQL";

/// Environment variables of job containers.
pub mod env {
    /// Set by the NodeManager in every container: local directory (outside the container's
    /// working dir, which is deleted when the container ends) where map tasks keep their output
    /// for the node's shuffle service; the shuffle service serves only files under it.
    pub const SHUFFLE_DIR: &str = "SHEAF_SHUFFLE_DIR";
    /// Set by the JobTracker in task containers: the JobTracker service (`IP:PORT`, UDP).
    pub const JOBTRACKER_ADDRESS: &str = "SHEAF_JOBTRACKER_ADDRESS";
    /// Set by the JobTracker in task containers: the attempt (`attempt_m_000003_0` form).
    pub const TASK_ATTEMPT: &str = "SHEAF_TASK_ATTEMPT";
    /// Set by the JobTracker in task containers: the container's NodeManager's shuffle service
    /// (`IP:PORT`, UDP), from the allocation's aux services.
    pub const SHUFFLE_ADDRESS: &str = "SHEAF_SHUFFLE_ADDRESS";
    /// Set by the JobTracker in task containers: the host identity of the container's node
    /// (the IP the task binds its client endpoints to, so the NameNode sorts local replicas first).
    pub const TASK_HOST: &str = "SHEAF_TASK_HOST";
}

/// Hidden `sheaf` subcommand the RM runs as the application master: `sheaf mr-jobtracker
/// --staging DIR`.
pub const JOBTRACKER_COMMAND: &str = "mr-jobtracker";
/// Hidden `sheaf` subcommand of task containers: `sheaf mr-task` (everything else comes from the
/// environment above and the JobTracker's `GetTask` answer).
pub const TASK_COMMAND: &str = "mr-task";

/// What runs the records of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobProgram {
    /// A plugin library (staged as [`PLUGIN_FILE`], localized as [`PLUGIN_LINK_NAME`]).
    Plugin,
    /// Hadoop Streaming: shell commands (`sh -c`) for the mapper, combiner and reducer.
    Streaming {
        /// Map command.
        mapper: String,
        /// Optional combine command.
        combiner: Option<String>,
        /// Reduce command.
        reducer: String,
    },
}

impl JobProgram {
    /// The streaming job this program runs; `None` for a plugin.
    pub fn streaming_job(&self) -> Option<crate::streaming::StreamingJob> {
        match self {
            JobProgram::Streaming {
                mapper,
                combiner,
                reducer,
            } => Some(crate::streaming::StreamingJob {
                mapper: mapper.clone(),
                combiner: combiner.clone(),
                reducer: Some(reducer.clone()),
            }),
            JobProgram::Plugin => None,
        }
    }
}

/// A submitted job, as staged in the DFS.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSubmission {
    /// Job name (`mapreduce.job.name`; default: the plugin's file name or "streaming").
    pub name: String,
    /// Submitting user.
    pub user: String,
    /// Input files or directories: absolute DFS paths (`/data/in`).
    pub inputs: Vec<String>,
    /// Output directory: absolute DFS path; did not exist at submission.
    pub output: String,
    /// Reduce tasks (0: map-only).
    pub reducers: u32,
    /// Bytes per split; `None`: one split per DFS block.
    pub split_size: Option<u64>,
    /// Job configuration as given with `-D` (the JobTracker adds the plugin's defaults).
    pub conf: BTreeMap<String, String>,
    /// What runs the records.
    pub program: JobProgram,
    /// When it was submitted, ms since the epoch.
    pub submit_ms: u64,
    /// Names of the files shipped with the job (`--file`), staged as
    /// [`shipped_file`]`(staging, name)` and localized into every task container as `name`.
    #[serde(default)]
    pub files: Vec<String>,
}

/// The job id of the application `application_<cluster>_<seq>` (Hadoop's naming: `job_…`).
pub fn job_id_of_application(app: &str) -> String {
    match app.strip_prefix("application_") {
        Some(rest) => format!("job_{rest}"),
        None => format!("job_{app}"),
    }
}

/// The application id of job `job_<cluster>_<seq>`.
pub fn application_of_job_id(job: &str) -> String {
    match job.strip_prefix("job_") {
        Some(rest) => format!("application_{rest}"),
        None => job.to_string(),
    }
}

/// The application id of job `job_<cluster>_<seq>`; `None` for anything else.
pub fn application_id_of_job(job: &str) -> Option<AppId> {
    if !job.starts_with("job_") {
        return None;
    }
    application_of_job_id(job).parse::<AppId>().ok()
}

/// True for SQL sessions (`sheaf sql` on the cluster): `sheaf job list` shows them too.
pub fn is_sql_session(name: &str) -> bool {
    name.strip_prefix(SQL_APPLICATION_NAME_PREFIX)
        .is_some_and(|rest| rest.starts_with(' '))
}

/// True for applications submitted by the job client.
pub fn is_mapreduce_application(name: &str) -> bool {
    name == APPLICATION_NAME_PREFIX
        || name
            .strip_prefix(APPLICATION_NAME_PREFIX)
            .is_some_and(|rest| rest.starts_with(' '))
}

/// The job name inside an application name `MAPREDUCE <job name>`.
pub fn job_name_of_application(name: &str) -> &str {
    name.strip_prefix(APPLICATION_NAME_PREFIX)
        .map(str::trim_start)
        .unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_and_application_ids_map_both_ways() {
        let job = job_id_of_application("application_1732590000000_0007");
        assert_eq!(job, "job_1732590000000_0007");
        assert_eq!(
            application_of_job_id(&job),
            "application_1732590000000_0007"
        );
    }

    #[test]
    fn job_ids_parse_to_applications() {
        let app = application_id_of_job("job_1764115200000_0007").expect("parse");
        assert_eq!(app.to_string(), "application_1764115200000_0007");
        assert_eq!(application_id_of_job("application_1_0001"), None);
        assert_eq!(application_id_of_job("job_x"), None);
    }

    #[test]
    fn application_names_carry_the_job_name() {
        assert!(is_mapreduce_application("MAPREDUCE wordcount"));
        assert!(!is_mapreduce_application("MAPREDUCEX"));
        assert!(!is_mapreduce_application("shell: hostname"));
        assert!(is_sql_session("SQL sheaf-sql"));
        assert!(!is_sql_session("SQLX"));
        assert_eq!(
            job_name_of_application("MAPREDUCE word count"),
            "word count"
        );
        assert_eq!(job_name_of_application("other"), "other");
    }
}
