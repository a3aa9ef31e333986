//! Job history in the DFS, as JSON: the record of a finished job (`HISTORY_DIR/<job>.json`, read
//! by `sheaf job history`) and the JobTracker's recovery snapshots
//! (`<staging>/recovery/history-<seq>.json`, read by the JobTracker's next attempt).
//!
//! Both are a [`JobRecord`]: the tracker's [`JobHistory`] flattened at the top level (so the file
//! also parses as a plain `JobHistory`), plus the submission's description and the counters of
//! each task's winning attempt. In a snapshot `counters` are the tracker's own job counters (what
//! `JobTracker::recover` expects); in the finished job's file they are the job's total (job
//! counters plus every winning attempt's task counters), which is what users read.

use super::submission::{staging_file, HISTORY_DIR, RECOVERY_DIR};
use crate::counters::Counters;
use crate::jobtracker::JobHistory;
use serde::{Deserialize, Serialize};
use sheaf_dfs::client::{DfsClient, DfsError};
use sheaf_dfs::protocol::NamenodeError;
use std::collections::BTreeMap;

/// Prefix of recovery snapshot file names (`history-00000012.json`).
const SNAPSHOT_PREFIX: &str = "history-";
/// Suffix of history files.
const JSON_SUFFIX: &str = ".json";

/// A job's history as kept in the DFS.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// The tracker's record (configuration, settings, times, state, counters, attempts).
    #[serde(flatten)]
    pub history: JobHistory,
    /// Job name.
    pub name: String,
    /// Submitting user.
    pub user: String,
    /// Input paths as submitted.
    pub inputs: Vec<String>,
    /// Output directory.
    pub output: String,
    /// Submission time, ms since the epoch.
    pub submit_ms: u64,
    /// Task counters of each task's winning attempt, by task (`m_000003`, `r_000000`).
    #[serde(default)]
    pub task_counters: BTreeMap<String, Counters>,
}

impl JobRecord {
    /// The job's total counters: `job` (the tracker's) plus every winning attempt's.
    pub fn total_counters(job: &Counters, task_counters: &BTreeMap<String, Counters>) -> Counters {
        let mut total = job.clone();
        for c in task_counters.values() {
            total.merge(c);
        }
        total
    }
}

/// Why a history could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The DFS failed.
    #[error("{path}: {source}")]
    Dfs {
        /// The path operated on.
        path: String,
        /// What the DFS client said.
        source: DfsError,
    },
    /// The file is not a job history.
    #[error("{path}: not a job history: {source}")]
    Decode {
        /// The file.
        path: String,
        /// What the JSON parser said.
        source: serde_json::Error,
    },
    /// The record could not be encoded.
    #[error("encoding job history: {0}")]
    Encode(serde_json::Error),
}

fn dfs_failed(path: &str) -> impl FnOnce(DfsError) -> HistoryError + '_ {
    move |source| HistoryError::Dfs {
        path: path.to_string(),
        source,
    }
}

/// The record as JSON.
pub fn encode(record: &JobRecord) -> Result<Vec<u8>, HistoryError> {
    serde_json::to_vec_pretty(record).map_err(HistoryError::Encode)
}

/// A record from JSON read at `path` (named in errors).
pub fn decode(path: &str, bytes: &[u8]) -> Result<JobRecord, HistoryError> {
    serde_json::from_slice(bytes).map_err(|source| HistoryError::Decode {
        path: path.to_string(),
        source,
    })
}

/// File name of recovery snapshot number `seq`.
pub fn snapshot_name(seq: u64) -> String {
    format!("{SNAPSHOT_PREFIX}{seq:08}{JSON_SUFFIX}")
}

/// The sequence number of a snapshot file name, `None` for other names.
pub fn snapshot_seq(name: &str) -> Option<u64> {
    name.strip_prefix(SNAPSHOT_PREFIX)?
        .strip_suffix(JSON_SUFFIX)?
        .parse()
        .ok()
}

/// The recovery directory of a staging directory.
pub fn recovery_dir(staging: &str) -> String {
    staging_file(staging, RECOVERY_DIR)
}

fn is_not_found(e: &DfsError) -> bool {
    matches!(e.namenode_error(), Some(NamenodeError::NotFound(_)))
}

/// Writes the finished job's history to `HISTORY_DIR/<job>.json` (creating the directory),
/// replacing an earlier one of the same job (a repeated final step of a recovered JobTracker).
pub async fn write_history(dfs: &DfsClient, record: &JobRecord) -> Result<String, HistoryError> {
    let path = super::submission::history_file(&record.history.job_id);
    let bytes = encode(record)?;
    dfs.mkdirs(HISTORY_DIR, true)
        .await
        .map_err(dfs_failed(HISTORY_DIR))?;
    dfs.write_file(&path, &bytes, true)
        .await
        .map_err(dfs_failed(&path))?;
    Ok(path)
}

/// Reads a finished job's history; `None` if there is none.
pub async fn read_history(
    dfs: &DfsClient,
    job_id: &str,
) -> Result<Option<JobRecord>, HistoryError> {
    let path = super::submission::history_file(job_id);
    match dfs.read_file(&path).await {
        Ok(bytes) => decode(&path, &bytes).map(Some),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(dfs_failed(&path)(e)),
    }
}

/// Writes recovery snapshot `seq` of the job staged in `staging`, then deletes older ones (only
/// after the new one is complete, so a crash mid-write leaves the previous one readable).
pub async fn write_snapshot(
    dfs: &DfsClient,
    staging: &str,
    seq: u64,
    record: &JobRecord,
) -> Result<(), HistoryError> {
    let dir = recovery_dir(staging);
    let bytes = encode(record)?;
    dfs.mkdirs(&dir, true).await.map_err(dfs_failed(&dir))?;
    let path = staging_file(&dir, &snapshot_name(seq));
    dfs.write_file(&path, &bytes, true)
        .await
        .map_err(dfs_failed(&path))?;
    let entries = dfs.list(&dir).await.map_err(dfs_failed(&dir))?;
    for e in entries {
        let name = e.path.rsplit('/').next().unwrap_or_default();
        if snapshot_seq(name).is_some_and(|s| s < seq) {
            match dfs.delete(&e.path, false).await {
                Ok(_) => {}
                Err(err) if is_not_found(&err) => {}
                Err(err) => return Err(dfs_failed(&e.path)(err)),
            }
        }
    }
    Ok(())
}

/// The newest readable recovery snapshot of the job staged in `staging` and its sequence number;
/// `None` if there is none. A snapshot that cannot be read or parsed (its writer died mid-write)
/// is skipped for the one before it.
pub async fn latest_snapshot(
    dfs: &DfsClient,
    staging: &str,
) -> Result<Option<(u64, JobRecord)>, HistoryError> {
    let dir = recovery_dir(staging);
    let entries = match dfs.list(&dir).await {
        Ok(e) => e,
        Err(e) if is_not_found(&e) => return Ok(None),
        Err(e) => return Err(dfs_failed(&dir)(e)),
    };
    let mut snapshots: Vec<(u64, String)> = entries
        .into_iter()
        .filter_map(|e| {
            let seq = snapshot_seq(e.path.rsplit('/').next().unwrap_or_default())?;
            Some((seq, e.path))
        })
        .collect();
    snapshots.sort();
    while let Some((seq, path)) = snapshots.pop() {
        match dfs.read_file(&path).await {
            Ok(bytes) => match decode(&path, &bytes) {
                Ok(record) => return Ok(Some((seq, record))),
                Err(e) => tracing::warn!(error = %e, "skipping unreadable recovery snapshot"),
            },
            Err(e) => {
                tracing::warn!(path = %path, error = %e, "skipping unreadable recovery snapshot")
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobtracker::{
        AttemptId, AttemptRecord, AttemptState, JobConfig, JobState, Locality, TaskId, JOB_GROUP,
    };

    fn record() -> JobRecord {
        let mut counters = Counters::new();
        counters.incr(JOB_GROUP, "DATA_LOCAL_MAPS", 2);
        let mut task = Counters::new();
        task.incr_task("MAP_INPUT_RECORDS", 10);
        JobRecord {
            history: JobHistory {
                job_id: "job_1_0001".into(),
                conf: BTreeMap::from([("mapreduce.job.reduces".into(), "1".into())]),
                settings: JobConfig::default(),
                start_ms: 5,
                finish_ms: Some(9),
                state: JobState::Succeeded,
                diagnostics: None,
                maps_total: 2,
                reduces_total: 1,
                counters,
                attempts: vec![AttemptRecord {
                    attempt: AttemptId {
                        task: TaskId::map(1),
                        number: 0,
                    },
                    state: AttemptState::Succeeded,
                    speculative: false,
                    host: Some("127.0.0.2".into()),
                    rack: Some("/default-rack".into()),
                    locality: Some(Locality::NodeLocal),
                    start_ms: Some(6),
                    end_ms: Some(8),
                    progress: 1.0,
                    error: None,
                    committed: true,
                }],
            },
            name: "wordcount".into(),
            user: "alice".into(),
            inputs: vec!["/in".into()],
            output: "/out".into(),
            submit_ms: 4,
            task_counters: BTreeMap::from([("m_000001".into(), task)]),
        }
    }

    #[test]
    fn records_roundtrip_through_json_and_read_as_plain_job_histories() {
        let r = record();
        let bytes = encode(&r).expect("encode");
        assert_eq!(decode("/h.json", &bytes).expect("decode"), r);
        // The file is also a JobHistory for readers that know nothing of the extra fields.
        let plain: JobHistory = serde_json::from_slice(&bytes).expect("plain history");
        assert_eq!(plain, r.history);
        let err = decode("/h.json", b"{\"job_id\": 3}").expect_err("garbage");
        assert!(err.to_string().starts_with("/h.json: not a job history"));
    }

    #[test]
    fn total_counters_add_the_winning_attempts_task_counters() {
        let r = record();
        let total = JobRecord::total_counters(&r.history.counters, &r.task_counters);
        assert_eq!(total.get(JOB_GROUP, "DATA_LOCAL_MAPS"), 2);
        assert_eq!(total.task("MAP_INPUT_RECORDS"), 10);
    }

    #[test]
    fn snapshot_names_sort_and_parse_back() {
        assert_eq!(snapshot_name(12), "history-00000012.json");
        assert_eq!(snapshot_seq(&snapshot_name(12)), Some(12));
        assert_eq!(snapshot_seq("history-x.json"), None);
        assert_eq!(snapshot_seq("job.msgpack"), None);
        assert!(snapshot_name(9) < snapshot_name(10));
        assert_eq!(recovery_dir("/s/u/1/"), "/s/u/1/recovery");
    }
}
