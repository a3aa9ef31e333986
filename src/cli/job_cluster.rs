//! `sheaf job submit|status|counters|kill|list|history` and the cluster forms of `sheaf job run`
//! and `sheaf job streaming`: the terminal side of [`sheaf_mapreduce::cluster::client`].
//!
//! Output follows `mapred job`: progress as `map 40% reduce 0%` lines (a bar per phase on a
//! terminal), counters in Hadoop's layout, `Could not find job …` for unknown jobs. Progress,
//! the submission line and the counters of `--wait` go to stderr like Hadoop's client log;
//! stdout carries only what scripts read (`--quiet`'s job id, `status`, `counters`, `list`,
//! `history`).

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use sheaf_dfs::client::{current_user, home_dir};
use sheaf_mapreduce::api::plugin::PluginLibrary;
use sheaf_mapreduce::cluster::client::{
    check_streaming_commands, percent, resolve_dfs_path, shipped_names, JobClient, JobReport,
    JobRunState, ReportSource, SubmitOptions, JOB_NAME_KEY,
};
use sheaf_mapreduce::cluster::submission::{JobProgram, JobSubmission};
use sheaf_mapreduce::counters::Counters;
use sheaf_mapreduce::jobtracker::{AttemptRecord, JobHistory, Locality};
use sheaf_yarn::config::YarnSections;

use super::format::local_time;
use super::job::parse_conf;
use super::runtime::{runtime, Workload};

/// How often `--wait` asks for the job's status at first: small jobs end within a second or
/// two, and a coarse poll would add to their latency.
const WAIT_POLL_FAST: Duration = Duration::from_millis(100);
/// How long `--wait` polls at [`WAIT_POLL_FAST`] before it slows down to [`WAIT_POLL`].
const WAIT_FAST_PERIOD: Duration = Duration::from_secs(10);
/// How often `--wait` asks for the status of a longer job.
const WAIT_POLL: Duration = Duration::from_millis(500);
/// How long `--wait` keeps trying while the cluster does not answer (an RM or JobTracker
/// restart) before it gives up.
const WAIT_UNREACHABLE_LIMIT: Duration = Duration::from_secs(60);
/// Longest job name `sheaf job list` shows in full.
const LIST_NAME_WIDTH: usize = 30;

/// What a cluster job runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProgramSpec {
    /// A plugin library on the local disk (uploaded as the job's `job.so`).
    Plugin(PathBuf),
    /// Streaming commands.
    Streaming {
        /// Map command.
        mapper: String,
        /// Optional combine command.
        combiner: Option<String>,
        /// Reduce command.
        reducer: String,
    },
}

/// A job to submit, as the command line gave it.
#[derive(Debug, Clone)]
pub struct ClusterJob {
    /// What runs the records.
    pub program: ProgramSpec,
    /// Inputs as typed (`/abs`, `sheaf:///abs`, or relative to `/user/<user>`).
    pub inputs: Vec<String>,
    /// Output directory as typed.
    pub output: String,
    /// Reduce tasks.
    pub reducers: u32,
    /// Queue (`None`: `mapreduce.job.queuename`, else "default").
    pub queue: Option<String>,
    /// `-D key=value` entries.
    pub jobconf: Vec<String>,
    /// Bytes per split.
    pub split_size: Option<u64>,
    /// Wait for the job and report its end.
    pub wait: bool,
    /// No progress and no counters; print only the job id (stdout).
    pub quiet: bool,
    /// Local files shipped into every task container (`--file`).
    pub files: Vec<PathBuf>,
}

/// Connects to the configured cluster (DFS and ResourceManager).
async fn connect() -> anyhow::Result<(JobClient, std::net::SocketAddr)> {
    let config = super::config::client(None)?;
    let yarn = YarnSections::from_file(&config.file).context("invalid configuration")?;
    let namenode = config.dfs.namenode.address;
    let client =
        JobClient::connect(&config.dfs, config.identity, yarn.resourcemanager.address).await?;
    Ok((client, namenode))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// What `prepare` derives from the command line before anything touches the cluster.
struct Prepared {
    program: JobProgram,
    name: String,
    conf: BTreeMap<String, String>,
    plugin: Option<PathBuf>,
}

/// Checks what can be checked without the cluster and builds the submission's program, name and
/// configuration.
fn prepare(job: &ClusterJob) -> anyhow::Result<Prepared> {
    let mut conf = parse_conf(&job.jobconf)?;
    let (program, default_name, plugin) = match &job.program {
        ProgramSpec::Plugin(path) => {
            // Fail fast with the loader's own message (missing file, not a library, wrong ABI)
            // rather than after staging, in a container log.
            let loaded = PluginLibrary::load(path).map_err(|e| anyhow!("{e}"))?;
            let name = match loaded.name() {
                "" | "job" => path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "job".into()),
                n => n.to_string(),
            };
            (JobProgram::Plugin, name, Some(path.clone()))
        }
        ProgramSpec::Streaming {
            mapper,
            combiner,
            reducer,
        } => {
            let program = JobProgram::Streaming {
                mapper: mapper.clone(),
                combiner: combiner.clone(),
                reducer: reducer.clone(),
            };
            // Also under Hadoop's streaming keys, so the history shows the commands.
            if let Some(streaming) = program.streaming_job() {
                streaming.store_in_conf(&mut conf);
            }
            (program, "streaming".to_string(), None)
        }
    };
    // Before anything touches the cluster: `JobClient::submit` checks the same.
    let shipped = shipped_names(&job.files)?;
    check_streaming_commands(&program, &shipped)?;
    let name = conf
        .get(JOB_NAME_KEY)
        .filter(|n| !n.trim().is_empty())
        .map(str::to_string)
        .unwrap_or(default_name);
    Ok(Prepared {
        program,
        name,
        conf: conf.entries,
        plugin,
    })
}

/// `sheaf job submit` (and `run`/`streaming` without `--local`).
pub fn submit(job: ClusterJob) -> anyhow::Result<()> {
    let Prepared {
        program,
        name,
        conf,
        plugin,
    } = prepare(&job)?;
    let sheaf_binary = std::env::current_exe().context(
        "cannot locate the sheaf binary for the JobTracker (set -D sheaf.job.binary=PATH)",
    )?;
    runtime(Workload::Command)?.block_on(async move {
        let (client, namenode) = connect().await?;
        let user = current_user();
        let home = home_dir(&user);
        let inputs = job
            .inputs
            .iter()
            .map(|i| resolve_dfs_path(i, &home, namenode))
            .collect::<Result<Vec<_>, _>>()?;
        let output = resolve_dfs_path(&job.output, &home, namenode)?;
        let submission = JobSubmission {
            name,
            user,
            inputs,
            output: output.clone(),
            reducers: job.reducers,
            split_size: job.split_size,
            conf,
            program,
            submit_ms: now_ms(),
            // Named by `JobClient::submit` after `options.files`.
            files: Vec::new(),
        };
        let options = SubmitOptions {
            queue: job.queue.clone(),
            plugin,
            sheaf_binary,
            files: job.files.clone(),
        };
        let submitted = client.submit(submission, &options).await?;
        if job.quiet {
            println!("{}", submitted.job_id);
        } else {
            eprintln!(
                "Submitted job {} (application {})",
                submitted.job_id, submitted.application
            );
        }
        if !job.wait {
            return Ok(());
        }
        let report = wait_for(&client, &submitted.job_id, job.quiet).await?;
        finish_report(&report, job.quiet, &output)
    })
}

/// Polls the job until it is over, showing progress unless `quiet`.
async fn wait_for(client: &JobClient, job_id: &str, quiet: bool) -> anyhow::Result<JobReport> {
    let mut progress = (!quiet).then(|| ProgressView::new(job_id));
    let mut unreachable_since: Option<Instant> = None;
    let started = Instant::now();
    loop {
        match client.status(job_id).await {
            Ok(report) => {
                unreachable_since = None;
                if let Some(view) = progress.as_mut() {
                    view.update(&report);
                }
                if report.state.is_over() {
                    if let Some(view) = progress.take() {
                        view.finish();
                    }
                    return Ok(report);
                }
            }
            Err(e) => {
                let since = *unreachable_since.get_or_insert_with(Instant::now);
                if since.elapsed() > WAIT_UNREACHABLE_LIMIT {
                    if let Some(view) = progress.take() {
                        view.finish();
                    }
                    return Err(anyhow!(e).context(format!(
                        "lost track of {job_id} (see `sheaf job status {job_id}` later)"
                    )));
                }
            }
        }
        let pause = if started.elapsed() < WAIT_FAST_PERIOD {
            WAIT_POLL_FAST
        } else {
            WAIT_POLL
        };
        tokio::time::sleep(pause).await;
    }
}

/// Prints the end of a waited-for job and turns its state into the exit status.
fn finish_report(report: &JobReport, quiet: bool, output: &str) -> anyhow::Result<()> {
    let (text, failure) = finish_text(report, quiet, output);
    eprint!("{text}");
    match failure {
        None => Ok(()),
        Some(failure) => Err(anyhow!(failure)),
    }
}

/// What the end of a waited-for job prints on stderr, and the error it ends with unless it
/// succeeded. A failure is told once, by the error (the last line, `sheaf <verb>: job … FAILED:
/// <diagnostics>`), after the counters.
fn finish_text(report: &JobReport, quiet: bool, output: &str) -> (String, Option<String>) {
    let succeeded = report.state == JobRunState::Succeeded;
    let mut text = String::new();
    if !quiet {
        if succeeded {
            text.push_str(&format!("Job {} completed successfully\n", report.job_id));
        }
        if !report.counters.is_empty() {
            text.push_str(&report.counters.to_string());
        }
        if succeeded {
            text.push_str(&format!("Output: {output}\n"));
        }
    }
    if succeeded {
        return (text, None);
    }
    let failure = format!(
        "job {} {}: {}",
        report.job_id,
        report.state,
        report
            .diagnostics
            .as_deref()
            .unwrap_or("no diagnostics (see `sheaf yarn logs` of its application)")
    );
    (text, Some(failure))
}

/// `--wait`'s progress: bars on a terminal, `map X% reduce Y%` lines otherwise (only when
/// they change).
struct ProgressView {
    bars: Option<(MultiProgress, ProgressBar, ProgressBar)>,
    last_line: Option<String>,
    last_state: Option<JobRunState>,
    job_id: String,
}

impl ProgressView {
    fn new(job_id: &str) -> ProgressView {
        let bars = std::io::stderr().is_terminal().then(|| {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template("{prefix:>6} [{bar:40}] {pos:>3}% {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
            let map = multi.add(ProgressBar::new(100).with_style(style.clone()));
            map.set_prefix("map");
            let reduce = multi.add(ProgressBar::new(100).with_style(style));
            reduce.set_prefix("reduce");
            (multi, map, reduce)
        });
        ProgressView {
            bars,
            last_line: None,
            last_state: None,
            job_id: job_id.to_string(),
        }
    }

    fn println(&self, line: &str) {
        match &self.bars {
            Some((multi, _, _)) => {
                if multi.println(line).is_err() {
                    eprintln!("{line}");
                }
            }
            None => eprintln!("{line}"),
        }
    }

    fn update(&mut self, report: &JobReport) {
        if self.last_state != Some(report.state) {
            if report.state == JobRunState::Running {
                self.println(&format!(
                    "Job {} running in queue {}",
                    self.job_id, report.queue
                ));
            } else if self.last_state.is_none() && report.state == JobRunState::Prep {
                self.println(&format!("Running job: {}", self.job_id));
            }
            self.last_state = Some(report.state);
        }
        // Between JobTracker attempts only the RM answers, without task progress: keep showing
        // the last known progress rather than dropping back to 0%.
        if report.source == ReportSource::ResourceManager && report.state == JobRunState::Running {
            return;
        }
        let (map, reduce) = (
            percent(report.map_progress),
            percent(report.reduce_progress),
        );
        match &self.bars {
            Some((_, map_bar, reduce_bar)) => {
                map_bar.set_position(u64::from(map));
                map_bar.set_message(format!("{}/{} tasks", report.maps_done, report.maps_total));
                reduce_bar.set_position(u64::from(reduce));
                reduce_bar.set_message(format!(
                    "{}/{} tasks",
                    report.reduces_done, report.reduces_total
                ));
            }
            None => {
                let line = progress_line(report);
                // Before the JobTracker knows its tasks there is no progress to show.
                if report.state != JobRunState::Prep && self.last_line.as_deref() != Some(&line) {
                    eprintln!("{line}");
                    self.last_line = Some(line);
                }
            }
        }
    }

    fn finish(self) {
        // The bars stay on screen with their final state, above the summary.
        if let Some((_, map, reduce)) = self.bars {
            map.finish();
            reduce.finish();
            // indicatif leaves the cursor at the end of the last bar (for redraws): move on.
            eprintln!();
        }
    }
}

/// Hadoop's progress line: `map 40% reduce 0%`.
pub fn progress_line(report: &JobReport) -> String {
    format!(
        "map {}% reduce {}%",
        percent(report.map_progress),
        percent(report.reduce_progress)
    )
}

/// `sheaf job status JOB`.
pub fn status(job_id: &str) -> anyhow::Result<()> {
    runtime(Workload::Command)?.block_on(async {
        let (client, _) = connect().await?;
        let report = client.status(job_id).await?;
        print!("{}", status_text(&report));
        Ok(())
    })
}

/// The text of `sheaf job status` (Hadoop's `mapred job -status` fields).
pub fn status_text(r: &JobReport) -> String {
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("{k:<21}{v}\n"));
    line("Job:", r.job_id.clone());
    line("Job name:", r.name.clone());
    line("Job state:", r.state.to_string());
    line("User:", r.user.clone());
    line("Queue:", r.queue.clone());
    line("Submitted:", local_time(r.start_ms, true));
    if let Some(f) = r.finish_ms {
        line("Finished:", local_time(f, true));
        line(
            "Elapsed:",
            format!("{:.1} s", f.saturating_sub(r.start_ms) as f64 / 1000.0),
        );
    }
    line("Number of maps:", r.maps_total.to_string());
    line("Number of reduces:", r.reduces_total.to_string());
    line("map() completion:", format!("{:.2}", r.map_progress));
    line("reduce() completion:", format!("{:.2}", r.reduce_progress));
    line(
        "Tracking address:",
        r.tracking_address.clone().unwrap_or_else(|| "-".into()),
    );
    if let Some(d) = &r.diagnostics {
        line("Reason for failure:", d.clone());
    }
    out.push_str(&r.counters.to_string());
    out
}

/// `sheaf job counters JOB [GROUP NAME]`.
pub fn counters(job_id: &str, group: Option<&str>, name: Option<&str>) -> anyhow::Result<()> {
    runtime(Workload::Command)?.block_on(async {
        let (client, _) = connect().await?;
        let report = client.status(job_id).await?;
        match (group, name) {
            (Some(g), Some(n)) => println!("{}", counter_value(&report.counters, job_id, g, n)?),
            _ => print!("{}", report.counters),
        }
        Ok(())
    })
}

/// One counter's value (Hadoop's `mapred job -counter JOB GROUP NAME`); an absent counter is
/// an error naming what exists, not a silent 0.
pub fn counter_value(
    counters: &Counters,
    job_id: &str,
    group: &str,
    name: &str,
) -> anyhow::Result<i64> {
    let Some(names) = counters.groups.get(group) else {
        let known: Vec<&str> = counters.groups.keys().map(String::as_str).collect();
        bail!(
            "job {job_id} has no counter group {group:?} (groups: {})",
            if known.is_empty() {
                "none yet".to_string()
            } else {
                known.join(", ")
            }
        );
    };
    names.get(name).copied().ok_or_else(|| {
        anyhow!("job {job_id} has no counter {name:?} in group {group:?} (see `sheaf job counters {job_id}`)")
    })
}

/// `sheaf job kill JOB`.
pub fn kill(job_id: &str) -> anyhow::Result<()> {
    runtime(Workload::Command)?.block_on(async {
        let (client, _) = connect().await?;
        let reason = format!("killed by {} with `sheaf job kill`", current_user());
        // A committing job refuses the kill (`KillRefused`, exit 1): its output is being
        // made visible and will be complete; the ResourceManager is not asked to overrule.
        let state = client.kill(job_id, &reason).await?;
        if state == JobRunState::Killed {
            println!("Killed job {job_id}");
            Ok(())
        } else {
            bail!("job {job_id} ended {state} before it could be killed")
        }
    })
}

/// `sheaf job list [--all]`.
pub fn list(all: bool) -> anyhow::Result<()> {
    runtime(Workload::Command)?.block_on(async {
        let (client, _) = connect().await?;
        let jobs = client.list(all).await?;
        let rows: Vec<[String; 6]> = jobs
            .iter()
            .map(|j| {
                [
                    j.job_id.clone(),
                    j.state.to_string(),
                    local_time(j.start_ms, true),
                    j.user.clone(),
                    j.queue.clone(),
                    shorten(&j.name, LIST_NAME_WIDTH),
                ]
            })
            .collect();
        println!("Total jobs:{}", rows.len());
        print!(
            "{}",
            table(
                &[
                    "JobId",
                    "State",
                    "StartTime",
                    "UserName",
                    "Queue",
                    "JobName"
                ],
                &rows
            )
        );
        Ok(())
    })
}

fn shorten(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut s: String = text.chars().take(width.saturating_sub(1)).collect();
    s.push('…');
    s
}

/// Left-aligned columns, each as wide as its widest cell, two spaces apart; the last column is
/// not padded (no trailing blanks).
pub fn table<const N: usize>(header: &[&str; N], rows: &[[String; N]]) -> String {
    let mut widths: [usize; N] = header.map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut push_row = |cells: Vec<&str>| {
        let mut line = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == N {
                line.push_str(cell);
            } else {
                line.push_str(cell);
                let pad = widths[i] - cell.chars().count() + 2;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    };
    push_row(header.to_vec());
    for row in rows {
        push_row(row.iter().map(String::as_str).collect());
    }
    out
}

/// `sheaf job history JOB`.
pub fn history(job_id: &str) -> anyhow::Result<()> {
    runtime(Workload::Command)?.block_on(async {
        // A SQL session's history sits beside MapReduce's, under its own name.
        let config = super::config::client(None)?;
        let dfs = sheaf_dfs::client::DfsClient::connect(&config.dfs, config.identity.clone())
            .await
            .context("connecting to the DFS")?;
        if let Some(h) = sheaf_sql::history::read(&dfs, job_id).await? {
            print!(
                "{}",
                sheaf_sql::history::text(&h, |ms| local_time(ms, true))
            );
            return Ok(());
        }
        let (client, _) = connect().await?;
        let history = client.history(job_id).await?;
        print!("{}", history_text(&history));
        Ok(())
    })
}

/// Hadoop's full attempt id: `attempt_<cluster>_<seq>_m_000003_0`.
fn full_attempt_id(job_id: &str, attempt: &AttemptRecord) -> String {
    let job = job_id.strip_prefix("job_").unwrap_or(job_id);
    format!("attempt_{job}_{}", attempt.attempt)
}

fn locality_name(l: Option<Locality>) -> &'static str {
    match l {
        Some(Locality::NodeLocal) => "data-local",
        Some(Locality::RackLocal) => "rack-local",
        Some(Locality::OffRack) => "off-rack",
        None => "-",
    }
}

/// The text of `sheaf job history`: summary, configuration, counters, attempts.
pub fn history_text(h: &JobHistory) -> String {
    let report = JobReport::from_history(h, None);
    let mut out = String::new();
    out.push_str(&format!("{:<20}{}\n", "Job:", h.job_id));
    out.push_str(&format!("{:<20}{}\n", "Job name:", report.name));
    out.push_str(&format!("{:<20}{}\n", "User:", report.user));
    out.push_str(&format!("{:<20}{}\n", "Queue:", report.queue));
    out.push_str(&format!("{:<20}{}\n", "State:", h.state));
    out.push_str(&format!(
        "{:<20}{}\n",
        "Started:",
        local_time(h.start_ms, true)
    ));
    if let Some(f) = h.finish_ms {
        out.push_str(&format!(
            "{:<20}{} ({:.1} s)\n",
            "Finished:",
            local_time(f, true),
            f.saturating_sub(h.start_ms) as f64 / 1000.0
        ));
    }
    out.push_str(&format!(
        "{:<20}{} maps, {} reduces\n",
        "Tasks:", h.maps_total, h.reduces_total
    ));
    if let Some(d) = &h.diagnostics {
        out.push_str(&format!("{:<20}{d}\n", "Diagnostics:"));
    }
    out.push_str("\nConfiguration:\n");
    for (k, v) in &h.conf {
        out.push_str(&format!("  {k}={v}\n"));
    }
    out.push('\n');
    out.push_str(&h.counters.to_string());
    out.push_str(&format!("\nAttempts: {}\n", h.attempts.len()));
    let rows: Vec<[String; 7]> = h
        .attempts
        .iter()
        .map(|a| {
            let time = |t: Option<u64>| t.map(|t| local_time(t, true)).unwrap_or("-".into());
            let mut note = a.error.clone().unwrap_or_default();
            if a.speculative {
                note = format!("speculative {note}").trim_end().to_string();
            }
            [
                full_attempt_id(&h.job_id, a),
                a.state.to_string(),
                a.host.clone().unwrap_or_else(|| "-".into()),
                time(a.start_ms),
                time(a.end_ms),
                locality_name(a.locality).to_string(),
                note,
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "Attempt", "State", "Host", "Start", "End", "Locality", "Note",
        ],
        &rows,
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use sheaf_mapreduce::jobtracker::{AttemptId, AttemptState, JobConfig, JobState, TaskId};

    fn report(map: f64, reduce: f64) -> JobReport {
        JobReport {
            job_id: "job_1_0001".into(),
            name: "wc".into(),
            user: "u".into(),
            queue: "default".into(),
            state: JobRunState::Running,
            maps_done: 0,
            maps_total: 5,
            reduces_done: 0,
            reduces_total: 1,
            map_progress: map,
            reduce_progress: reduce,
            start_ms: 0,
            finish_ms: None,
            diagnostics: None,
            counters: Counters::new(),
            attempts: vec![],
            tracking_address: None,
            source: ReportSource::JobTracker,
        }
    }

    #[test]
    fn a_failed_job_is_told_once() {
        let mut failed = report(1.0, 0.5);
        failed.state = JobRunState::Failed;
        failed.diagnostics = Some("task r_000000 failed 4 times: boom".into());
        failed.counters.incr_task("MAP_INPUT_RECORDS", 12);
        for quiet in [false, true] {
            let (text, failure) = finish_text(&failed, quiet, "/out");
            let failure = failure.expect("a failed job is an error");
            assert!(
                failure.contains("FAILED") && failure.contains("boom"),
                "{failure}"
            );
            assert!(!text.contains("boom"), "printed twice: {text}");
            assert_eq!(text.contains("MAP_INPUT_RECORDS"), !quiet, "{text}");
        }
        let mut ok = report(1.0, 1.0);
        ok.state = JobRunState::Succeeded;
        let (text, failure) = finish_text(&ok, false, "/out");
        assert!(failure.is_none());
        assert!(text.contains("completed successfully") && text.ends_with("Output: /out\n"));
    }

    #[test]
    fn progress_lines_look_like_hadoops() {
        assert_eq!(progress_line(&report(0.4, 0.0)), "map 40% reduce 0%");
        assert_eq!(progress_line(&report(1.0, 0.333)), "map 100% reduce 33%");
    }

    #[test]
    fn single_counters_are_found_or_named_as_missing() {
        let mut c = Counters::new();
        c.incr_task("MAP_INPUT_RECORDS", 12);
        assert_eq!(
            counter_value(
                &c,
                "job_1_0001",
                "Map-Reduce Framework",
                "MAP_INPUT_RECORDS"
            )
            .unwrap(),
            12
        );
        let e = counter_value(&c, "job_1_0001", "Nope", "X")
            .unwrap_err()
            .to_string();
        assert!(e.contains("Map-Reduce Framework"), "{e}");
        let e = counter_value(&c, "job_1_0001", "Map-Reduce Framework", "X")
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"X\""), "{e}");
    }

    #[test]
    fn tables_align_columns_without_trailing_blanks() {
        let text = table(
            &["JobId", "State", "Name"],
            &[
                ["job_1_0001".into(), "RUNNING".into(), "wc".into()],
                ["job_1_0002".into(), "SUCCEEDED".into(), "".into()],
            ],
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "JobId       State      Name");
        assert_eq!(lines[1], "job_1_0001  RUNNING    wc");
        assert_eq!(lines[2], "job_1_0002  SUCCEEDED");
        assert_eq!(shorten("abcdef", 4), "abc…");
    }

    #[test]
    fn status_text_has_hadoop_fields_and_counters() {
        let mut r = report(0.5, 0.0);
        r.counters.incr("Job Counters", "TOTAL_LAUNCHED_MAPS", 5);
        let text = status_text(&r);
        assert!(text.contains("Job state:           RUNNING\n"), "{text}");
        assert!(text.contains("map() completion:    0.50\n"), "{text}");
        assert!(text.contains("reduce() completion: 0.00\n"), "{text}");
        assert!(!text.contains("Reason for failure"), "{text}");
        assert!(
            text.contains("Counters: 1\n\tJob Counters\n\t\tTOTAL_LAUNCHED_MAPS=5\n"),
            "{text}"
        );
    }

    #[test]
    fn history_text_lists_conf_counters_and_attempts() {
        let mut conf = BTreeMap::new();
        conf.insert("mapreduce.job.name".to_string(), "wordcount".to_string());
        let mut counters = Counters::new();
        counters.incr("Job Counters", "DATA_LOCAL_MAPS", 1);
        let h = JobHistory {
            job_id: "job_17_0003".into(),
            conf,
            settings: JobConfig::default(),
            start_ms: 1_000,
            finish_ms: Some(3_500),
            state: JobState::Succeeded,
            diagnostics: None,
            maps_total: 1,
            reduces_total: 0,
            counters,
            attempts: vec![AttemptRecord {
                attempt: AttemptId {
                    task: TaskId::map(0),
                    number: 0,
                },
                state: AttemptState::Succeeded,
                speculative: false,
                host: Some("127.0.6.2".into()),
                rack: None,
                locality: Some(Locality::NodeLocal),
                start_ms: Some(1_100),
                end_ms: Some(2_000),
                progress: 1.0,
                error: None,
                committed: true,
            }],
        };
        let text = history_text(&h);
        assert!(text.contains("Job name:           wordcount\n"), "{text}");
        assert!(text.contains("(2.5 s)"), "{text}");
        assert!(text.contains("  mapreduce.job.name=wordcount\n"), "{text}");
        assert!(text.contains("\t\tDATA_LOCAL_MAPS=1\n"), "{text}");
        let row = text
            .lines()
            .find(|l| l.starts_with("attempt_17_0003_m_000000_0"))
            .expect("attempt row");
        assert!(
            row.contains("SUCCEEDED") && row.contains("127.0.6.2") && row.contains("data-local"),
            "{row}"
        );
    }
}
