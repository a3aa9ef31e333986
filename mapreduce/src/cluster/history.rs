//! Job history in the DFS, as JSON: the record of a finished job (`HISTORY_DIR/<job>.json`, read
//! by `sheaf job history`) and the JobTracker's recovery snapshots
//! (`<staging>/recovery/history-<seq>.json`, read by the JobTracker's next attempt).
//!
//! Both are a [`JobRecord`]: the tracker's [`JobHistory`] flattened at the top level (so the file
//! also parses as a plain `JobHistory`), plus the submission's description and the counters of
//! each task's winning attempt. In a snapshot `counters` are the tracker's own job counters (what
//! `JobTracker::recover` expects); in the finished job's file they are the job's total (job
//! counters plus every winning attempt's task counters), which is what users read.

use super::layout::{history_file, staging_file};
use super::submission::HISTORY_DIR;
use crate::counters::Counters;
use crate::jobtracker::JobHistory;
use serde::{Deserialize, Serialize};
use sheaf_dfs::client::{DfsClient, DfsError};
use std::collections::BTreeMap;

/// Prefix of recovery snapshot file names (`history-00000012.json`).
const SNAPSHOT_PREFIX: &str = "history-";
/// Suffix of history files.
const JSON_SUFFIX: &str = ".json";
/// Marker in the recovery directory: the job's first setup took over the output directory.
const OUTPUT_CLAIMED_FILE: &str = "output.claimed";

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

// Named in `layout`, with the rest of the staging directory.
pub use super::layout::recovery_dir;

/// Writes the finished job's history to `HISTORY_DIR/<job>.json` (creating the directory),
/// replacing an earlier one of the same job (a repeated final step of a recovered JobTracker).
pub async fn write_history(dfs: &DfsClient, record: &JobRecord) -> Result<String, HistoryError> {
    let path = history_file(&record.history.job_id);
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
    let path = history_file(job_id);
    match dfs.read_file(&path).await {
        Ok(bytes) => decode(&path, &bytes).map(Some),
        Err(e) if e.is_not_found() => Ok(None),
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
                Err(err) if err.is_not_found() => {}
                Err(err) => return Err(dfs_failed(&e.path)(err)),
            }
        }
    }
    Ok(())
}

/// The recovery snapshots of the job staged in `staging` (sequence number and path), oldest
/// first; none when the recovery directory does not exist.
async fn snapshot_files(
    dfs: &DfsClient,
    staging: &str,
) -> Result<Vec<(u64, String)>, HistoryError> {
    let dir = recovery_dir(staging);
    let entries = match dfs.list(&dir).await {
        Ok(e) => e,
        Err(e) if e.is_not_found() => return Ok(Vec::new()),
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
    Ok(snapshots)
}

/// The newest readable recovery snapshot of the job staged in `staging` and its sequence number;
/// `None` if there is none. A snapshot that does not parse (its writer died mid-write) or is
/// gone by the time it is read is skipped for the one before it. A DFS failure with no older
/// snapshot to fall back on is an error: the caller must not take it for "no snapshot" and
/// start the job over, dropping committed work.
pub async fn latest_snapshot(
    dfs: &DfsClient,
    staging: &str,
) -> Result<Option<(u64, JobRecord)>, HistoryError> {
    let mut snapshots = snapshot_files(dfs, staging).await?;
    let mut failure = None;
    while let Some((seq, path)) = snapshots.pop() {
        match dfs.read_file(&path).await {
            Ok(bytes) => match decode(&path, &bytes) {
                Ok(record) => return Ok(Some((seq, record))),
                Err(e) => tracing::warn!(error = %e, "skipping unreadable recovery snapshot"),
            },
            Err(e) if e.is_not_found() => {}
            Err(e) => {
                tracing::warn!(path = %path, error = %e, "cannot read a recovery snapshot");
                failure.get_or_insert(dfs_failed(&path)(e));
            }
        }
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(None),
    }
}

/// Deletes every recovery snapshot of the job staged in `staging` (a JobTracker attempt
/// starting the job over: a snapshot of the abandoned run must never be recovered from) and
/// returns the highest sequence number there was (0 if none), so new snapshots number past it.
pub async fn clear_snapshots(dfs: &DfsClient, staging: &str) -> Result<u64, HistoryError> {
    let snapshots = snapshot_files(dfs, staging).await?;
    let highest = snapshots.last().map(|(seq, _)| *seq).unwrap_or(0);
    for (_, path) in snapshots {
        match dfs.delete(&path, false).await {
            Ok(_) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(dfs_failed(&path)(e)),
        }
    }
    Ok(highest)
}

/// Records in the recovery directory that the job's first setup took over its output
/// directory: only then may a later JobTracker attempt resume or restart over an existing one.
pub async fn mark_output_claimed(dfs: &DfsClient, staging: &str) -> Result<(), HistoryError> {
    let dir = recovery_dir(staging);
    dfs.mkdirs(&dir, true).await.map_err(dfs_failed(&dir))?;
    let path = staging_file(&dir, OUTPUT_CLAIMED_FILE);
    dfs.write_file(&path, b"", true)
        .await
        .map_err(dfs_failed(&path))?;
    Ok(())
}

/// Whether an earlier JobTracker attempt recorded that it took over the output directory.
pub async fn output_claimed(dfs: &DfsClient, staging: &str) -> Result<bool, HistoryError> {
    let path = staging_file(&recovery_dir(staging), OUTPUT_CLAIMED_FILE);
    match dfs.status(&path).await {
        Ok(status) => Ok(status.is_some()),
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) => Err(dfs_failed(&path)(e)),
    }
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

/// Snapshot handling against a real (in-process, loopback) NameNode and DataNode.
#[cfg(test)]
mod dfs_tests {
    use super::*;
    use crate::jobtracker::{JobConfig, JobState};
    use sheaf_dfs::config::DfsConfig;
    use sheaf_dfs::datanode::{Datanode, RunningDatanode};
    use sheaf_dfs::namenode::{self, Namenode, RunningNamenode};
    use sheaf_rpc::{ClusterCa, TlsIdentity};
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};
    use std::time::{Duration, Instant};

    const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
    const STAGING: &str = "/staging/alice/1";

    struct MiniDfs {
        _root: tempfile::TempDir,
        namenode: RunningNamenode,
        datanode: RunningDatanode,
        client: DfsClient,
    }

    async fn mini_dfs() -> MiniDfs {
        let root = tempfile::tempdir().expect("tempdir");
        let tls = root.path().join("tls");
        ClusterCa::create_dir("t", &tls).expect("cluster ca");
        let identity = TlsIdentity::load(&tls, "daemon").expect("identity");
        let mut config = DfsConfig::default();
        config.cluster.tls_dir = tls;
        config.namenode.data_dir = root.path().join("namenode");
        config.namenode.address = SocketAddr::new(LOCAL, 0);
        config.namenode.safemode_extension_ms = 0;
        config.dfs.replication = 1;
        let c = config.clone();
        tokio::task::spawn_blocking(move || namenode::format(&c, false))
            .await
            .expect("format thread")
            .expect("format");
        let namenode = Namenode::start(&config, identity.clone())
            .await
            .expect("namenode");
        config.namenode.address = namenode.local_addr();
        config.datanode.host = LOCAL;
        config.datanode.data_dir = root.path().join("datanode");
        config.datanode.heartbeat_interval_ms = 100;
        let datanode = Datanode::start(&config, identity.clone())
            .await
            .expect("datanode");
        let client = DfsClient::connect(&config, identity).await.expect("client");
        // Writable once the DataNode registered and safe mode is over.
        let deadline = Instant::now() + Duration::from_secs(20);
        while let Err(e) = client.write_file("/ready", b"x", true).await {
            assert!(
                Instant::now() < deadline,
                "the mini DFS never took a write: {e}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        MiniDfs {
            _root: root,
            namenode,
            datanode,
            client,
        }
    }

    fn record(state: JobState) -> JobRecord {
        JobRecord {
            history: JobHistory {
                job_id: "job_1_0001".into(),
                conf: BTreeMap::new(),
                settings: JobConfig::default(),
                start_ms: 5,
                finish_ms: None,
                state,
                diagnostics: None,
                maps_total: 2,
                reduces_total: 1,
                counters: Counters::new(),
                attempts: Vec::new(),
            },
            name: "wordcount".into(),
            user: "alice".into(),
            inputs: vec!["/in".into()],
            output: "/out".into(),
            submit_ms: 4,
            task_counters: BTreeMap::new(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn snapshots_of_a_restarted_run_are_cleared_and_a_dfs_error_is_not_taken_for_none() {
        let dfs = mini_dfs().await;
        let c = &dfs.client;
        assert!(latest_snapshot(c, STAGING).await.expect("none").is_none());
        assert_eq!(clear_snapshots(c, STAGING).await.expect("clear nothing"), 0);

        // Snapshot 3 replaces 1 and 2; a leftover of an older run (seq 2) sits beside it.
        for seq in 1..=3 {
            write_snapshot(c, STAGING, seq, &record(JobState::Running))
                .await
                .expect("snapshot");
        }
        let stale = staging_file(&recovery_dir(STAGING), &snapshot_name(2));
        c.write_file(&stale, b"{}", true).await.expect("stale");
        let (seq, _) = latest_snapshot(c, STAGING)
            .await
            .expect("read")
            .expect("some");
        assert_eq!(seq, 3);

        // A snapshot that cannot be read for a DFS reason (here: a directory) falls back to an
        // older one; with none left it is an error, never "no snapshot".
        let broken = staging_file(&recovery_dir(STAGING), &snapshot_name(4));
        c.mkdirs(&broken, true).await.expect("mkdir");
        let (seq, _) = latest_snapshot(c, STAGING)
            .await
            .expect("falls back")
            .expect("some");
        assert_eq!(seq, 3);

        // A restart clears them all (the broken one too) and numbers past the highest.
        assert_eq!(clear_snapshots(c, STAGING).await.expect("clear"), 4);
        assert!(latest_snapshot(c, STAGING).await.expect("none").is_none());
        c.mkdirs(&broken, true).await.expect("mkdir");
        let err = latest_snapshot(c, STAGING).await.expect_err("dfs error");
        assert!(err.to_string().contains(&broken), "{err}");

        // The output claim marker.
        assert!(!output_claimed(c, STAGING).await.expect("claimed?"));
        mark_output_claimed(c, STAGING).await.expect("claim");
        assert!(output_claimed(c, STAGING).await.expect("claimed?"));

        dfs.datanode.shutdown().await;
        let _ = dfs.namenode.shutdown().await;
    }
}
