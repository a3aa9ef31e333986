//! The job rows of DESIGN §7 on a real multi-process cluster (NameNode, 3 DataNodes,
//! ResourceManager, 3 NodeManagers with their shuffle services; see `common::mini_cluster`):
//! a task process or a whole node dies mid-job, a plugin panics, one split is a straggler, the
//! JobTracker itself dies. Every job goes through `sheaf job submit --wait` and its output is
//! checked against a word count computed here, independently of the engine. Addresses: the mini
//! cluster's 127.66.C.* (octet 66 is this test binary's).

mod common;

use common::plugin;

use common::mini_cluster::{ContainerProcess, MiniCluster, MiniClusterOptions};
use sheaf_mapreduce::cluster::history;
use sheaf_mapreduce::cluster::submission::STAGING_ROOT;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const OCTET: u8 = 66;
/// Longest a job may take here before the test fails (the machine is small and shared).
const JOB_DEADLINE: Duration = Duration::from_secs(100);
/// The input line that makes the `slowsplit` plugin slow on its split (`SLOW_MARKER` there).
const SLOW_MARKER: &str = "SHEAF_SLOW_SPLIT";
/// The message every panic of the `panicky` plugin starts with (`PANIC_MESSAGE` there).
const PANIC_MESSAGE: &str = "panicky test plugin: deliberate panic in";

/// `lines` lines of Zipf-like words (`seed` makes files differ), some separated by tabs.
fn corpus(lines: usize, seed: u64) -> String {
    let mut x: u64 = 0x2545_F491_4F6C_DD1D ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut out = String::new();
    for _ in 0..lines {
        for w in 0..6 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let id = (x % 3000) * (x % 3000) / 3000;
            if w > 0 {
                out.push(if x.is_multiple_of(11) { '\t' } else { ' ' });
            }
            out.push_str(&format!("w{id}"));
        }
        out.push('\n');
    }
    out
}

/// The reference word count: words are maximal runs of bytes that are not ASCII whitespace.
fn reference_counts(texts: &[&str]) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for text in texts {
        for word in text.split(|c: char| c.is_ascii_whitespace()) {
            if !word.is_empty() {
                *counts.entry(word.to_string()).or_insert(0) += 1;
            }
        }
    }
    counts
}

/// Writes `files` (name, text) into the DFS under `dir`.
fn put_inputs(cluster: &MiniCluster, dir: &str, files: &[(String, String)]) {
    let work = tempfile::tempdir().expect("tempdir");
    for (name, text) in files {
        let local = work.path().join(name);
        std::fs::write(&local, text).expect("write input");
        cluster.put(&local, &format!("{dir}/{name}"));
    }
}

/// Input files for the slowsplit plugin: `fast` ordinary files and one whose split starts with
/// the slow marker followed by `slow_lines` lines. Returns the files and the slow one's name.
fn slow_inputs(fast: usize, slow_lines: usize) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = (0..fast)
        .map(|i| (format!("fast{i}.txt"), corpus(1500, i as u64 + 1)))
        .collect();
    files.push((
        "slow.txt".to_string(),
        format!("{SLOW_MARKER}\n{}", corpus(slow_lines, 99)),
    ));
    files
}

/// A `sheaf job submit --wait` running in the background, its output going to files.
struct RunningJob {
    child: Option<Child>,
    started: Instant,
    stdout: PathBuf,
    stderr: PathBuf,
    _dir: tempfile::TempDir,
}

/// How a waited-for job ended.
struct JobEnd {
    status: ExitStatus,
    elapsed: Duration,
    stderr: String,
}

impl RunningJob {
    /// Submits plugin `name` over `input` into `output` with `reducers` and `-D` entries `conf`.
    fn submit(
        cluster: &MiniCluster,
        name: &str,
        input: &str,
        output: &str,
        reducers: u32,
        conf: &[&str],
    ) -> RunningJob {
        let dir = tempfile::tempdir().expect("tempdir");
        let stdout = dir.path().join("submit.out");
        let stderr = dir.path().join("submit.err");
        let mut command = common::mini_dfs::sheaf_command();
        command
            .arg("--conf")
            .arg(&cluster.dfs.conf)
            .args(["job", "submit", "--plugin"])
            .arg(plugin(name))
            .args(["--input", input, "--output", output])
            .args(["--reducers", &reducers.to_string()]);
        for entry in conf {
            command.args(["-D", entry]);
        }
        let child = command
            .arg("--wait")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).expect("stdout file"))
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("spawn sheaf job submit");
        RunningJob {
            child: Some(child),
            started: Instant::now(),
            stdout,
            stderr,
            _dir: dir,
        }
    }

    /// Whether `sheaf job submit` is still waiting for the job.
    fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// The job id from `Submitted job job_… (application …)`, once printed.
    fn job_id(&self) -> Option<String> {
        self.stderr_text()
            .lines()
            .find_map(|l| l.strip_prefix("Submitted job "))
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_string)
    }

    /// Panics (with the logs) unless the job is still running, saying what was awaited.
    fn assert_running(&mut self, cluster: &MiniCluster, waiting_for: &str) {
        assert!(
            self.running(),
            "the job ended before {waiting_for}:\n{}",
            self.stderr_text()
        );
        assert!(
            self.started.elapsed() < JOB_DEADLINE,
            "timed out waiting for {waiting_for}:\n{}\n{}",
            self.stderr_text(),
            cluster.log_tails()
        );
    }

    /// Waits for `sheaf job submit --wait` to exit (killing it after [`JOB_DEADLINE`]).
    fn wait(mut self, cluster: &MiniCluster) -> JobEnd {
        let mut child = self.child.take().expect("job process");
        let status = loop {
            if let Ok(Some(status)) = child.try_wait() {
                break status;
            }
            if self.started.elapsed() > JOB_DEADLINE {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the job did not finish within {JOB_DEADLINE:?}:\n{}\n{}",
                    self.stderr_text(),
                    cluster.log_tails()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let stdout = std::fs::read_to_string(&self.stdout).unwrap_or_default();
        JobEnd {
            status,
            elapsed: self.started.elapsed(),
            stderr: format!("{}{stdout}", self.stderr_text()),
        }
    }
}

impl Drop for RunningJob {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Asserts the job succeeded, with its output and the cluster's logs otherwise.
fn assert_succeeded(cluster: &MiniCluster, end: &JobEnd, what: &str) {
    assert!(
        end.status.success(),
        "{what}: the job failed ({:?}):\n{}\n{}",
        end.status.code(),
        end.stderr,
        cluster.log_tails()
    );
}

/// Sends SIGKILL to `pid` (a process of this test's cluster).
fn kill_9(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        // SAFETY: kill(2) on a container process of this test's own cluster.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// A task process of the cluster with the attempt it runs (`m_000003_0`).
struct TaskProcess {
    process: ContainerProcess,
    attempt: String,
}

/// The `sheaf mr-task` processes of `cluster` and their attempts (`SHEAF_TASK_ATTEMPT`).
fn task_processes(cluster: &MiniCluster) -> Vec<TaskProcess> {
    cluster
        .container_processes()
        .into_iter()
        .filter(|p| p.command.contains(" mr-task"))
        .filter_map(|process| {
            let environ = std::fs::read(format!("/proc/{}/environ", process.pid)).ok()?;
            let attempt = environ.split(|b| *b == 0).find_map(|v| {
                let v = std::str::from_utf8(v).ok()?;
                // The JobTracker passes the attempt's directory name, `attempt_m_000003_0`.
                let value = v.strip_prefix("SHEAF_TASK_ATTEMPT=")?;
                Some(value.strip_prefix("attempt_").unwrap_or(value).to_string())
            })?;
            Some(TaskProcess { process, attempt })
        })
        .collect()
}

/// The `sheaf mr-jobtracker` process of `cluster`, if one runs.
fn jobtracker_process(cluster: &MiniCluster) -> Option<ContainerProcess> {
    cluster
        .container_processes()
        .into_iter()
        .find(|p| p.command.contains(" mr-jobtracker"))
}

/// `NAME=VALUE` counters of `sheaf job counters JOB` (every group).
fn job_counters(cluster: &MiniCluster, job: &str) -> BTreeMap<String, i64> {
    cluster
        .ok(&["job", "counters", job])
        .lines()
        .filter_map(|l| l.strip_prefix("\t\t")?.split_once('='))
        .filter_map(|(k, v)| Some((k.to_string(), v.trim().parse().ok()?)))
        .collect()
}

fn counter(counters: &BTreeMap<String, i64>, name: &str) -> i64 {
    counters.get(name).copied().unwrap_or(0)
}

/// One attempt row of `sheaf job history`.
#[derive(Debug, Clone)]
struct AttemptRow {
    /// Short id, `m_000003_1`.
    attempt: String,
    state: String,
    host: String,
    /// The whole row (its note says why an attempt ended).
    line: String,
}

impl AttemptRow {
    /// When the attempt ended, in seconds (from the local-time columns
    /// `YYYY-MM-DD HH:MM:SS` of start and end; `None` without both).
    fn end_secs(&self) -> Option<i64> {
        let fields: Vec<&str> = self.line.split_whitespace().collect();
        let (date, time) = (fields.get(5)?, fields.get(6)?);
        let mut ymd = date.split('-').map(|n| n.parse::<i64>().ok());
        let (y, m, d) = (ymd.next()??, ymd.next()??, ymd.next()??);
        let mut hms = time.split(':').map(|n| n.parse::<i64>().ok());
        let (hh, mm, ss) = (hms.next()??, hms.next()??, hms.next()??);
        // Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
    }

    /// `m_000003` of `m_000003_1`.
    fn task(&self) -> &str {
        self.attempt
            .rsplit_once('_')
            .map_or(self.attempt.as_str(), |(t, _)| t)
    }
}

/// The finished job's history text and its attempt rows.
fn job_history(cluster: &MiniCluster, job: &str) -> (String, Vec<AttemptRow>) {
    let text = cluster.ok(&["job", "history", job]);
    let prefix = format!("attempt_{}_", job.trim_start_matches("job_"));
    let rows = text
        .lines()
        .filter_map(|l| {
            let mut fields = l.split_whitespace();
            let attempt = fields.next()?.strip_prefix(&prefix)?.to_string();
            Some(AttemptRow {
                attempt,
                state: fields.next()?.to_string(),
                host: fields.next()?.to_string(),
                line: l.to_string(),
            })
        })
        .collect();
    (text, rows)
}

/// The DFS entries directly under `dir` (full paths); empty when it does not exist.
fn dfs_list(cluster: &MiniCluster, dir: &str) -> Vec<String> {
    let out = cluster.sheaf(&["dfs", "ls", dir]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .filter(|p| p.starts_with(dir))
        .map(str::to_string)
        .collect()
}

/// Tasks (`m_000003`) that the newest readable recovery snapshot of the cluster's running job
/// records as committed (`<staging>/recovery/history-<seq>.json`): what a restarted
/// JobTracker must not run again.
fn snapshot_committed_tasks(cluster: &MiniCluster) -> BTreeSet<String> {
    let listing = cluster.sheaf(&["dfs", "ls", "-R", STAGING_ROOT]);
    let newest = String::from_utf8_lossy(&listing.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .filter(|p| p.contains("/recovery/"))
        .filter_map(|p| Some((history::snapshot_seq(p.rsplit('/').next()?)?, p.to_string())))
        .max();
    let Some((_, path)) = newest else {
        return BTreeSet::new();
    };
    // The file may be replaced between the listing and the read: then there is nothing yet.
    let out = cluster.sheaf(&["dfs", "cat", &path]);
    let Ok(record) = history::decode(&path, &out.stdout) else {
        return BTreeSet::new();
    };
    record
        .history
        .attempts
        .iter()
        .filter(|a| a.committed)
        .map(|a| format!("{}", a.attempt.task))
        .collect()
}

/// Whether DFS path `path` exists.
fn dfs_exists(cluster: &MiniCluster, path: &str) -> bool {
    cluster.sheaf(&["dfs", "test", "-e", path]).status.success()
}

/// Word counts of the committed output in `dir` (asserting `_SUCCESS`, no `_temporary`, and
/// `part-<kind>-*` files only). Reduce outputs must not repeat a word across or within parts;
/// map-only outputs are summed.
fn committed_counts(cluster: &MiniCluster, dir: &str, kind: char) -> BTreeMap<String, u64> {
    let listing = dfs_list(cluster, dir);
    assert!(
        listing.contains(&format!("{dir}/_SUCCESS")),
        "no _SUCCESS in {dir}: {listing:?}"
    );
    assert!(
        !listing.iter().any(|p| p.ends_with("/_temporary")),
        "{listing:?}"
    );
    let parts: Vec<&String> = listing
        .iter()
        .filter(|p| p.rsplit('/').next().is_some_and(|n| n.starts_with("part-")))
        .collect();
    assert!(!parts.is_empty(), "no parts in {dir}: {listing:?}");
    let mut counts = BTreeMap::new();
    for part in parts {
        let name = part.rsplit('/').next().unwrap_or_default();
        assert!(
            name.starts_with(&format!("part-{kind}-")),
            "{part} in a job with {kind} outputs"
        );
        let bytes = cluster.cat(part);
        let text = String::from_utf8(bytes).expect("utf-8 output");
        for line in text.lines() {
            let (word, count) = line
                .rsplit_once('\t')
                .unwrap_or_else(|| panic!("{part}: no tab in {line:?}"));
            let count: u64 = count
                .parse()
                .unwrap_or_else(|_| panic!("{part}: bad count in {line:?}"));
            let total = counts.entry(word.to_string()).or_insert(0);
            assert!(
                kind == 'm' || *total == 0,
                "{word:?} appears twice in the reduce outputs"
            );
            *total += count;
        }
    }
    counts
}

/// Asserts `counts` equals `reference`, naming a few differences.
fn assert_same_counts(counts: &BTreeMap<String, u64>, reference: &BTreeMap<String, u64>) {
    let differing: Vec<String> = reference
        .iter()
        .filter(|(w, c)| counts.get(*w) != Some(c))
        .take(5)
        .map(|(w, c)| format!("{w:?}: reference {c}, cluster {:?}", counts.get(w)))
        .collect();
    assert!(differing.is_empty(), "counts differ: {differing:?}");
    assert_eq!(counts.len(), reference.len(), "distinct words");
}

/// Whether NodeManager `i` holds the output of a map that finished: a
/// `<shuffle>/<job>/<jobtracker attempt>/attempt_m_…/file.out` whose attempt no longer runs as
/// a task process.
fn holds_finished_map_output(cluster: &MiniCluster, i: usize) -> bool {
    let entries = |dir: &Path| {
        std::fs::read_dir(dir)
            .map(|d| d.flatten().map(|e| e.path()).collect::<Vec<_>>())
            .unwrap_or_default()
    };
    let running: BTreeSet<String> = task_processes(cluster)
        .into_iter()
        .map(|t| t.attempt)
        .collect();
    entries(&cluster.shuffle_dir(i))
        .iter()
        .flat_map(|job| entries(job))
        .flat_map(|app_attempt| entries(&app_attempt))
        .filter(|attempt| attempt.join("file.out").exists())
        .filter_map(|attempt| {
            let name = attempt.file_name()?.to_str()?.to_string();
            Some(name.strip_prefix("attempt_").unwrap_or(&name).to_string())
        })
        .any(|attempt| attempt.starts_with("m_") && !running.contains(&attempt))
}

#[test]
fn a_task_process_killed_mid_job_is_retried_and_the_output_is_unchanged() {
    let cluster = MiniCluster::start(MiniClusterOptions::new(3, OCTET));
    // The slow split keeps its first attempt busy for 20 s: there is a running map to kill.
    // Its retry (attempt 1) is fast, so the job ends soon after the kill.
    let files = slow_inputs(3, 400);
    put_inputs(&cluster, "/kill/in", &files);
    let texts: Vec<&str> = files.iter().map(|(_, t)| t.as_str()).collect();
    let reference = reference_counts(&texts);
    let mut job = RunningJob::submit(
        &cluster,
        "slowsplit",
        "/kill/in",
        "/kill/out",
        2,
        &[
            "slowsplit.total-ms=20000",
            "slowsplit.per-record-ms=50",
            "mapreduce.map.speculative=false",
            "mapreduce.reduce.speculative=false",
        ],
    );

    // Kill the oldest map attempt once one has run for 2 s: a map in mid-split (the slow one
    // unless the machine is very busy; any running map will do).
    let mut first_seen: HashMap<u32, Instant> = HashMap::new();
    let victim = loop {
        job.assert_running(&cluster, "a map attempt running for 2 s");
        let maps: Vec<(Duration, TaskProcess)> = task_processes(&cluster)
            .into_iter()
            .filter(|t| t.attempt.starts_with("m_"))
            .map(|t| {
                let seen = first_seen.entry(t.process.pid).or_insert_with(Instant::now);
                (seen.elapsed(), t)
            })
            .collect();
        let oldest = maps.into_iter().max_by_key(|(age, _)| *age);
        if let Some((age, t)) = oldest {
            if age > Duration::from_secs(2) {
                break t;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    kill_9(victim.process.pid);
    let job_id = job.job_id().expect("job id printed");
    let killed_at = job.started.elapsed();
    let end = job.wait(&cluster);
    assert_succeeded(&cluster, &end, "after a task process was killed");
    eprintln!(
        "killed {} (pid {}) at {killed_at:?}; job done in {:?}",
        victim.attempt, victim.process.pid, end.elapsed
    );

    let counts = committed_counts(&cluster, "/kill/out", 'r');
    assert_same_counts(&counts, &reference);
    let counters = job_counters(&cluster, &job_id);
    assert!(
        counter(&counters, "NUM_FAILED_MAPS") >= 1,
        "the killed attempt counts as failed: {counters:?}"
    );
    assert!(
        counter(&counters, "TOTAL_LAUNCHED_MAPS") > files.len() as i64,
        "the killed map ran again: {counters:?}"
    );
    let (history, rows) = job_history(&cluster, &job_id);
    let killed = rows
        .iter()
        .find(|r| r.attempt == victim.attempt)
        .unwrap_or_else(|| panic!("{} not in the history:\n{history}", victim.attempt));
    assert_eq!(killed.state, "FAILED", "{}", killed.line);
    assert!(
        rows.iter()
            .any(|r| r.task() == killed.task() && r.state == "SUCCEEDED"),
        "another attempt of {} succeeded:\n{history}",
        killed.task()
    );
}

#[test]
fn a_nodemanager_killed_mid_job_has_its_maps_rerun_and_the_output_is_unchanged() {
    let mut cluster = MiniCluster::start(MiniClusterOptions::new(3, OCTET));
    // Ordinary maps finish within seconds while the slow split holds the reducers back for
    // 15 s: finished map outputs are on the nodes and still needed when one node dies.
    let files = slow_inputs(5, 400);
    put_inputs(&cluster, "/lost/in", &files);
    let texts: Vec<&str> = files.iter().map(|(_, t)| t.as_str()).collect();
    let reference = reference_counts(&texts);
    let mut job = RunningJob::submit(
        &cluster,
        "slowsplit",
        "/lost/in",
        "/lost/out",
        2,
        &[
            "slowsplit.total-ms=15000",
            "slowsplit.per-record-ms=50",
            "mapreduce.map.speculative=false",
            "mapreduce.reduce.speculative=false",
        ],
    );

    // A node that holds the output of a finished map and does not run the JobTracker.
    let victim = loop {
        job.assert_running(&cluster, "a node with a map output and no JobTracker");
        let jobtracker = cluster.jobtracker_host();
        let candidate = (0..cluster.nodes()).find(|&i| {
            jobtracker.is_some()
                && jobtracker != Some(cluster.nodemanager_host(i).to_string())
                && holds_finished_map_output(&cluster, i)
        });
        if let Some(i) = candidate {
            break i;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let victim_host = cluster.nodemanager_host(victim).to_string();
    // The host dies: its NodeManager, its shuffle service and its task processes.
    cluster.kill_nodemanager(victim);
    let killed = cluster.kill_containers_of(victim);
    let job_id = job.job_id().expect("job id printed");
    let killed_at = job.started.elapsed();
    job.assert_running(&cluster, "the node's death");
    let end = job.wait(&cluster);
    assert_succeeded(&cluster, &end, "after losing a node");
    eprintln!(
        "node {victim_host} ({killed} task processes) killed at {killed_at:?}; job done in {:?}",
        end.elapsed
    );

    let counts = committed_counts(&cluster, "/lost/out", 'r');
    assert_same_counts(&counts, &reference);
    let counters = job_counters(&cluster, &job_id);
    assert!(
        counter(&counters, "NUM_KILLED_MAPS") >= 1,
        "the lost node's maps were killed: {counters:?}"
    );
    assert!(
        counter(&counters, "TOTAL_LAUNCHED_MAPS") > files.len() as i64,
        "the lost maps ran again: {counters:?}"
    );
    // Every map that ran on the lost node ended KILLED there (not failed: not the task's
    // fault) and succeeded again on a live node.
    let (history, rows) = job_history(&cluster, &job_id);
    eprintln!("{}\n{history}", end.stderr);
    // Reducers that were fetching from the dead node drop those fetches when the JobTracker
    // withdraws or replaces the outputs, instead of waiting out connect and idle timeouts
    // (tens of seconds): the reduces end soon after the last map.
    let last_end = |prefix: &str| {
        rows.iter()
            .filter(|r| r.attempt.starts_with(prefix) && r.state == "SUCCEEDED")
            .filter_map(AttemptRow::end_secs)
            .max()
            .unwrap_or_else(|| panic!("no succeeded {prefix} attempt with an end:\n{history}"))
    };
    let (maps_end, reduces_end) = (last_end("m_"), last_end("r_"));
    assert!(
        reduces_end - maps_end <= 10,
        "the reduces ended {} s after the last map:\n{history}",
        reduces_end - maps_end
    );
    let lost: Vec<&AttemptRow> = rows
        .iter()
        .filter(|r| r.attempt.starts_with("m_") && r.host == victim_host)
        .collect();
    assert!(!lost.is_empty(), "no map ran on {victim_host}:\n{history}");
    assert!(
        lost.iter().any(|r| r
            .line
            .contains(&format!("map output lost with node {victim_host}"))),
        "a map that had finished on {victim_host} was re-run:\n{history}"
    );
    for row in lost {
        assert_eq!(row.state, "KILLED", "{}", row.line);
        assert!(
            row.line.contains("lost"),
            "killed with its node: {}",
            row.line
        );
        assert!(
            rows.iter()
                .any(|r| r.task() == row.task() && r.state == "SUCCEEDED" && r.host != victim_host),
            "{} was re-run on a live node:\n{history}",
            row.task()
        );
    }
}

#[test]
fn a_panicking_plugin_fails_the_job_after_four_attempts_with_its_message() {
    let cluster = MiniCluster::start(MiniClusterOptions::new(3, OCTET));
    put_inputs(
        &cluster,
        "/panic/in",
        &[("lines.txt".to_string(), corpus(200, 5))],
    );
    let job = RunningJob::submit(&cluster, "panicky", "/panic/in", "/panic/out", 1, &[]);
    let end = job.wait(&cluster);
    assert!(
        !end.status.success(),
        "a job whose every map panics must fail:\n{}",
        end.stderr
    );
    assert!(
        end.stderr.contains(&format!("{PANIC_MESSAGE} map")),
        "the plugin's panic message reaches the submitter:\n{}",
        end.stderr
    );
    let last = end.stderr.trim_end().lines().last().unwrap_or_default();
    assert!(
        last.starts_with("sheaf job submit: ") && last.contains("FAILED"),
        "one last error line: {last}"
    );
    let job_id = end
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("Submitted job "))
        .and_then(|r| r.split_whitespace().next())
        .expect("job id printed")
        .to_string();

    // One split, four attempts (Hadoop's mapreduce.map.maxattempts), all failed with the panic.
    let (history, rows) = job_history(&cluster, &job_id);
    assert!(history.contains("State:              FAILED"), "{history}");
    let maps: Vec<&AttemptRow> = rows.iter().filter(|r| r.task() == "m_000000").collect();
    let ids: Vec<&str> = maps.iter().map(|r| r.attempt.as_str()).collect();
    assert_eq!(
        ids,
        ["m_000000_0", "m_000000_1", "m_000000_2", "m_000000_3"],
        "{history}"
    );
    for row in &maps {
        assert_eq!(row.state, "FAILED", "{}", row.line);
        assert!(row.line.contains(PANIC_MESSAGE), "{}", row.line);
    }
    let counters = job_counters(&cluster, &job_id);
    assert_eq!(counter(&counters, "NUM_FAILED_MAPS"), 4, "{counters:?}");
    assert_eq!(counter(&counters, "TOTAL_LAUNCHED_MAPS"), 4, "{counters:?}");

    // A failed job leaves neither _SUCCESS nor its _temporary.
    assert!(!dfs_exists(&cluster, "/panic/out/_SUCCESS"));
    assert!(
        !dfs_exists(&cluster, "/panic/out/_temporary"),
        "{:?}",
        dfs_list(&cluster, "/panic/out")
    );
}

#[test]
fn a_straggler_split_gets_a_speculative_twin_that_wins() {
    let cluster = MiniCluster::start(MiniClusterOptions::new(3, OCTET));
    // Seven quick splits and one whose first attempt would take 60 s.
    let files = slow_inputs(7, 1500);
    put_inputs(&cluster, "/spec/in", &files);
    let texts: Vec<&str> = files.iter().map(|(_, t)| t.as_str()).collect();
    let reference = reference_counts(&texts);
    let slow = Duration::from_secs(60);
    let job = RunningJob::submit(
        &cluster,
        "slowsplit",
        "/spec/in",
        "/spec/out",
        2,
        &[
            &format!("slowsplit.total-ms={}", slow.as_millis()),
            "slowsplit.per-record-ms=40",
            // Judge stragglers once half the maps are done and an attempt ran 1 s.
            "sheaf.jobtracker.speculative.start-fraction=0.5",
            "sheaf.jobtracker.speculative.minimum-runtime-ms=1000",
            "mapreduce.map.speculative=true",
            "mapreduce.reduce.speculative=false",
        ],
    );
    let end = job.wait(&cluster);
    assert_succeeded(&cluster, &end, "with a straggler");
    eprintln!("straggler job done in {:?}", end.elapsed);
    assert!(
        end.elapsed < slow / 2,
        "the job took {:?}: the twin did not win against a {slow:?} straggler",
        end.elapsed
    );
    let counts = committed_counts(&cluster, "/spec/out", 'r');
    assert_same_counts(&counts, &reference);

    let job_id = end
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("Submitted job "))
        .and_then(|r| r.split_whitespace().next())
        .expect("job id printed")
        .to_string();
    let counters = job_counters(&cluster, &job_id);
    assert!(
        counter(&counters, "SPECULATIVE_ATTEMPTS_LAUNCHED") >= 1,
        "{counters:?}"
    );
    assert!(
        counter(&counters, "SPECULATIVE_ATTEMPTS_KILLED") >= 1,
        "{counters:?}"
    );
    assert!(counter(&counters, "NUM_KILLED_MAPS") >= 1, "{counters:?}");
    assert_eq!(counter(&counters, "NUM_FAILED_MAPS"), 0, "{counters:?}");
    // The straggler (attempt 0 of a map) was killed and a speculative attempt of the same
    // task won.
    let (history, rows) = job_history(&cluster, &job_id);
    let straggler = rows.iter().find(|k| {
        k.attempt.starts_with("m_")
            && k.attempt.ends_with("_0")
            && k.state == "KILLED"
            && rows.iter().any(|r| {
                r.task() == k.task() && r.state == "SUCCEEDED" && r.line.contains("speculative")
            })
    });
    assert!(
        straggler.is_some(),
        "no map whose first attempt lost to a speculative twin:\n{history}"
    );
    // The killed straggler's process is gone (the twin did not just finish beside it).
    cluster.wait_for(
        "the straggler's process to end",
        Duration::from_secs(15),
        || task_processes(&cluster).is_empty(),
    );
}

#[test]
fn a_jobtracker_killed_mid_job_is_restarted_and_recovers_committed_tasks() {
    let cluster = MiniCluster::start(MiniClusterOptions::new(3, OCTET));
    // Map-only: every ordinary map commits its part-m file within seconds; the slow split
    // keeps the job running for 60 s, so the JobTracker dies with committed tasks behind it.
    let files = slow_inputs(4, 1500);
    put_inputs(&cluster, "/jt/in", &files);
    let texts: Vec<&str> = files.iter().map(|(_, t)| t.as_str()).collect();
    let reference = reference_counts(&texts);
    let mut job = RunningJob::submit(
        &cluster,
        "slowsplit",
        "/jt/in",
        "/jt/out",
        0,
        &[
            "slowsplit.total-ms=60000",
            "slowsplit.per-record-ms=40",
            "mapreduce.map.speculative=false",
        ],
    );

    // Wait until a recovery snapshot records every ordinary map as committed (a commit is on
    // the DFS a moment before the snapshot that records it), then kill the JobTracker.
    let committed = loop {
        job.assert_running(&cluster, "the ordinary maps' commits in a snapshot");
        let tasks = snapshot_committed_tasks(&cluster);
        if tasks.len() >= files.len() - 1 {
            break tasks;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    let first = jobtracker_process(&cluster).expect("a running JobTracker");
    kill_9(first.pid);
    let job_id = job.job_id().expect("job id printed");
    let killed_at = job.started.elapsed();

    // The RM starts a second master attempt: a new JobTracker process.
    let mut second = None;
    while job.running() && second.is_none() {
        assert!(job.started.elapsed() < JOB_DEADLINE, "no second JobTracker");
        second = jobtracker_process(&cluster).filter(|p| p.pid != first.pid);
        std::thread::sleep(Duration::from_millis(100));
    }
    let end = job.wait(&cluster);
    assert_succeeded(&cluster, &end, "after the JobTracker was killed");
    eprintln!(
        "JobTracker (pid {}) killed at {killed_at:?} with {committed:?} committed; second \
         JobTracker {:?}; job done in {:?}",
        first.pid,
        second.as_ref().map(|p| p.pid),
        end.elapsed
    );
    assert!(
        second.is_some(),
        "a second JobTracker process ran the job to its end"
    );
    let counts = committed_counts(&cluster, "/jt/out", 'm');
    assert_same_counts(&counts, &reference);

    // Recovered, not restarted: each task the snapshot had as committed kept its single
    // attempt, and the attempt running at the kill was lost.
    let (history, rows) = job_history(&cluster, &job_id);
    assert!(
        history.contains("State:              SUCCEEDED"),
        "{history}"
    );
    for task in &committed {
        let attempts: Vec<&AttemptRow> = rows.iter().filter(|r| r.task() == task).collect();
        assert_eq!(
            attempts.len(),
            1,
            "committed task {task} ran again after recovery:\n{history}"
        );
        assert_eq!(attempts[0].state, "SUCCEEDED", "{}", attempts[0].line);
    }
    assert!(
        rows.iter()
            .any(|r| r.state == "KILLED"
                && r.line.contains("lost with the previous JobTracker attempt")),
        "the attempt running at the kill is recorded as lost:\n{history}"
    );
    // Attempt numbers continue after recovery: the slow task's new attempt is fast, so the
    // job did not wait out the 60 s straggler.
    assert!(
        end.elapsed < Duration::from_secs(45),
        "the job took {:?}",
        end.elapsed
    );
}

/// Whether `pid` runs (exists and is not a zombie waiting for a parent that died with its
/// NodeManager).
fn process_runs(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let state = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .next()?
                .to_string();
            Some(state != "Z" && state != "X")
        })
        .unwrap_or(false)
}

#[test]
fn a_jobtracker_whose_node_is_declared_lost_leaves_the_job_to_its_next_attempt() {
    let mut cluster = MiniCluster::start(MiniClusterOptions::new(3, OCTET));
    // Map-only, as above: ordinary maps commit within seconds, the slow split keeps the job
    // running, so the first JobTracker has committed work behind it when its node is lost.
    let files = slow_inputs(4, 1500);
    put_inputs(&cluster, "/orphan/in", &files);
    let texts: Vec<&str> = files.iter().map(|(_, t)| t.as_str()).collect();
    let reference = reference_counts(&texts);
    let mut job = RunningJob::submit(
        &cluster,
        "slowsplit",
        "/orphan/in",
        "/orphan/out",
        0,
        &[
            "slowsplit.total-ms=60000",
            "slowsplit.per-record-ms=40",
            "mapreduce.map.speculative=false",
        ],
    );
    loop {
        job.assert_running(&cluster, "the ordinary maps' commits in a snapshot");
        if snapshot_committed_tasks(&cluster).len() >= files.len() - 1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let first = jobtracker_process(&cluster).expect("a running JobTracker");
    let node = (0..cluster.nodes())
        .find(|&i| cluster.nodemanager_host(i).to_string() == first.host)
        .expect("the JobTracker's node");
    // Only the NodeManager dies: the JobTracker process lives on (containers are process
    // groups of their own), and the RM replaces its attempt once the node is declared lost.
    cluster.kill_nodemanager(node);
    let end = job.wait(&cluster);
    let first_alive = process_runs(first.pid);
    cluster.kill_containers_of(node);
    // Before the fix the first JobTracker took the RM's "not current" for a kill: it aborted
    // `_temporary`, wrote a KILLED history and removed the staging directory under the second.
    assert_succeeded(&cluster, &end, "after the first JobTracker's node was lost");
    let counts = committed_counts(&cluster, "/orphan/out", 'm');
    assert_same_counts(&counts, &reference);
    assert!(
        !first_alive,
        "the superseded JobTracker (pid {}) was still running after the job ended",
        first.pid
    );
}
