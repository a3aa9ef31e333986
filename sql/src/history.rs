//! A SQL session's history in the DFS, beside MapReduce's (`/sheaf/history/sql/<job>.json`):
//! every statement the query master ran, with its distributed plan, outcome, time and the
//! figures of each stage (tasks, attempts, locality, rows, shuffle bytes, spill, time). The query
//! master writes it when the session ends; `sheaf job history <job>` prints it.

use crate::error::{SqlError, SqlResult};
use crate::executor::StageStats;
use serde::{Deserialize, Serialize};
use sheaf_dfs::client::DfsClient;
use sheaf_mapreduce::cluster::submission::HISTORY_DIR;

/// One statement of a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatementRecord {
    /// The statement as sent.
    pub text: String,
    /// When it started, ms since the epoch.
    pub start_ms: u64,
    /// How long it ran, ms.
    pub elapsed_ms: u64,
    /// Why it failed; `None` if it succeeded.
    pub error: Option<String>,
    /// Result rows, for a query.
    pub rows: Option<u64>,
    /// The distributed plan (stages and the exchanges between them), for a statement that ran
    /// stages.
    pub plan: Option<String>,
    /// Figures of each stage.
    pub stages: Vec<StageStats>,
}

/// A whole session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionHistory {
    /// The session's job id (`job_<cluster>_<seq>`).
    pub job_id: String,
    /// The submitting user.
    pub user: String,
    /// Session start, ms since the epoch.
    pub start_ms: u64,
    /// Session end, ms since the epoch.
    pub finish_ms: u64,
    /// Its statements, in order.
    pub statements: Vec<StatementRecord>,
}

/// Where session histories are: a directory of their own under MapReduce's history dir
/// (whose listing reads only the files directly in it).
pub fn history_dir() -> String {
    format!("{HISTORY_DIR}/sql")
}

/// The DFS path of a session's history.
pub fn history_path(job_id: &str) -> String {
    format!("{}/{job_id}.json", history_dir())
}

/// Writes `history` (replacing an older one of the same session): to a temporary name first,
/// then renamed, so a reader never sees half a file.
pub async fn write(dfs: &DfsClient, history: &SessionHistory) -> SqlResult<String> {
    let path = history_path(&history.job_id);
    let bytes = serde_json::to_vec_pretty(history)
        .map_err(|e| SqlError::Cluster(format!("encoding the session history: {e}")))?;
    dfs.mkdirs(&history_dir(), true).await?;
    let temp = format!("{path}._COPYING_");
    dfs.write_file(&temp, &bytes, true).await?;
    if dfs.status(&path).await?.is_some() {
        dfs.delete(&path, false).await?;
    }
    dfs.rename(&temp, &path).await?;
    Ok(path)
}

/// Reads a session's history; `None` if `job_id` has none (not a SQL session, or not ended).
pub async fn read(dfs: &DfsClient, job_id: &str) -> SqlResult<Option<SessionHistory>> {
    let path = history_path(job_id);
    match dfs.read_file(&path).await {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| SqlError::Cluster(format!("{path} is not a session history: {e}"))),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn seconds(ms: u64) -> String {
    format!("{:.2} s", ms as f64 / 1000.0)
}

/// The text of `sheaf job history` for a SQL session.
pub fn text(h: &SessionHistory, time: impl Fn(u64) -> String) -> String {
    let mut out = String::new();
    let failed = h.statements.iter().filter(|s| s.error.is_some()).count();
    out.push_str(&format!("{:<20}{}\n", "Job:", h.job_id));
    out.push_str(&format!("{:<20}SQL session\n", "Kind:"));
    out.push_str(&format!("{:<20}{}\n", "User:", h.user));
    out.push_str(&format!("{:<20}{}\n", "Started:", time(h.start_ms)));
    out.push_str(&format!(
        "{:<20}{} ({})\n",
        "Finished:",
        time(h.finish_ms),
        seconds(h.finish_ms.saturating_sub(h.start_ms))
    ));
    out.push_str(&format!(
        "{:<20}{} ({} failed)\n",
        "Statements:",
        h.statements.len(),
        failed
    ));
    for (i, s) in h.statements.iter().enumerate() {
        let state = if s.error.is_some() {
            "FAILED"
        } else {
            "SUCCEEDED"
        };
        out.push_str(&format!(
            "\nStatement {}: {state} in {}, started {}\n",
            i + 1,
            seconds(s.elapsed_ms),
            time(s.start_ms)
        ));
        for line in s.text.trim().lines() {
            out.push_str(&format!("  {line}\n"));
        }
        if let Some(rows) = s.rows {
            out.push_str(&format!("Rows: {rows}\n"));
        }
        if let Some(e) = &s.error {
            out.push_str(&format!("Error: {e}\n"));
        }
        if !s.stages.is_empty() {
            out.push_str("Stages:\n");
            out.push_str(
                "  Stage  Tasks  Attempts  DataLocal  RackLocal  ReRuns  Rows  ShuffleWritten  Spilled  Time\n",
            );
            for st in &s.stages {
                out.push_str(&format!(
                    "  {}  {}  {}  {}  {}  {}  {}  {}  {}  {}\n",
                    st.stage,
                    st.tasks,
                    st.attempts,
                    st.data_local,
                    st.rack_local,
                    st.reruns,
                    st.output_rows,
                    st.output_bytes,
                    st.spilled_bytes,
                    seconds(st.elapsed.as_millis() as u64)
                ));
            }
        }
        if let Some(plan) = &s.plan {
            out.push_str("Plan:\n");
            for line in plan.lines() {
                out.push_str(&format!("  {line}\n"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_text_shows_each_statement_with_its_outcome_stages_and_plan() {
        let h = SessionHistory {
            job_id: "job_1_0003".into(),
            user: "alice".into(),
            start_ms: 1_000,
            finish_ms: 4_500,
            statements: vec![
                StatementRecord {
                    text: "SELECT count(*) FROM t".into(),
                    start_ms: 1_100,
                    elapsed_ms: 800,
                    error: None,
                    rows: Some(1),
                    plan: Some("stage 0 (4 tasks) -> hash exchange".into()),
                    stages: vec![StageStats {
                        stage: 0,
                        exchange: None,
                        tasks: 4,
                        output_rows: 4,
                        output_bytes: 512,
                        spilled_bytes: 0,
                        elapsed: Duration::from_millis(300),
                        attempts: 5,
                        reruns: 1,
                        data_local: 3,
                        rack_local: 1,
                    }],
                },
                StatementRecord {
                    text: "SELECT * FROM lineitm".into(),
                    start_ms: 2_000,
                    elapsed_ms: 10,
                    error: Some("table 'lineitm' not found".into()),
                    rows: None,
                    plan: None,
                    stages: vec![],
                },
            ],
        };
        let text = text(&h, |ms| format!("t{ms}"));
        assert!(text.contains("Statements:         2 (1 failed)"), "{text}");
        assert!(
            text.contains("Statement 1: SUCCEEDED in 0.80 s, started t1100"),
            "{text}"
        );
        assert!(
            text.contains("  0  4  5  3  1  1  4  512  0  0.30 s"),
            "{text}"
        );
        assert!(
            text.contains("stage 0 (4 tasks) -> hash exchange"),
            "{text}"
        );
        assert!(text.contains("Statement 2: FAILED"), "{text}");
        assert!(text.contains("Error: table 'lineitm' not found"), "{text}");
        let json = serde_json::to_vec(&h).unwrap();
        assert_eq!(serde_json::from_slice::<SessionHistory>(&json).unwrap(), h);
    }
}
