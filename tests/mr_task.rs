//! `sheaf mr-task` processes against a scripted in-process JobTracker (the real RPC service
//! types over QUIC), a real shuffle server and a real mini DFS: map tasks read DFS splits and
//! register their outputs, reduce tasks follow the completion events, fetch over the shuffle and
//! write their part files into their attempt directories; failures, stops and progress reach the
//! JobTracker. Addresses: the mini DFS's 127.53.C.* (octet 53 is this test binary's).

mod common;

use common::plugin;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::mini_dfs::{sheaf_command, MiniDfs, MiniDfsOptions};
use sheaf_mapreduce::cluster::protocol::{JtError, JtRequest, JtResponse, TaskAssignment};
use sheaf_mapreduce::cluster::submission::{env, JobProgram, PLUGIN_LINK_NAME};
use sheaf_mapreduce::formats::InputSplit;
use sheaf_mapreduce::jobtracker::{AttemptId, MapCompletionEvent, MapOutputLocation, TaskId};
use sheaf_mapreduce::shuffle::{JobSecret, ShuffleRegistry, ShuffleServer};
use sheaf_rpc::service::{PeerInfo, RpcServer, Service, Shutdown};
use sheaf_rpc::{quic, TlsIdentity};

const OCTET: u8 = 53;
const JOB: &str = "job_1700000000000_0001";

/// What the scripted JobTracker heard.
#[derive(Default)]
struct Heard {
    /// Map completion events, in order.
    events: Vec<MapCompletionEvent>,
    /// Every report except progress and event polls.
    reports: Vec<JtRequest>,
    /// Progress values per attempt.
    progress: HashMap<AttemptId, Vec<f64>>,
    /// Heartbeats per attempt that said the work moved since the previous one.
    alive: HashMap<AttemptId, u32>,
    /// Attempts told to stop.
    stop: HashSet<AttemptId>,
}

/// A JobTracker that hands out fixed assignments and records what tasks say.
struct ScriptedJobTracker {
    assignments: HashMap<AttemptId, TaskAssignment>,
    heard: Mutex<Heard>,
}

impl Service for ScriptedJobTracker {
    type Request = JtRequest;
    type Response = JtResponse;

    async fn handle(self: Arc<Self>, req: JtRequest, _peer: PeerInfo) -> JtResponse {
        let mut heard = self.heard.lock().expect("lock");
        match req {
            JtRequest::GetTask { attempt } => match self.assignments.get(&attempt) {
                Some(a) => JtResponse::Task(Box::new(a.clone())),
                None => JtResponse::Error(JtError::UnknownAttempt(attempt.to_string())),
            },
            JtRequest::Progress {
                attempt,
                progress,
                alive,
            } => {
                heard.progress.entry(attempt).or_default().push(progress);
                *heard.alive.entry(attempt).or_default() += u32::from(alive);
                JtResponse::Ack {
                    proceed: !heard.stop.contains(&attempt),
                }
            }
            JtRequest::MapEvents { reducer, from } => {
                let from = (from as usize).min(heard.events.len());
                JtResponse::MapEvents {
                    events: heard.events[from..].to_vec(),
                    next: heard.events.len() as u32,
                    proceed: !heard.stop.contains(&reducer),
                }
            }
            JtRequest::MapOutputReady {
                attempt,
                ref shuffle_address,
                ..
            } => {
                let host = shuffle_address
                    .split(':')
                    .next()
                    .unwrap_or_default()
                    .to_string();
                heard.events.push(MapCompletionEvent {
                    attempt,
                    available: true,
                    location: MapOutputLocation {
                        host,
                        shuffle_address: shuffle_address.clone(),
                    },
                });
                heard.reports.push(req);
                JtResponse::Ack { proceed: true }
            }
            JtRequest::FetchFailed { map, .. } => {
                // Like a JobTracker that gives up on the output at the first report.
                let location = heard
                    .events
                    .iter()
                    .find(|e| e.attempt == map)
                    .map(|e| e.location.clone());
                if let Some(location) = location {
                    heard.events.push(MapCompletionEvent {
                        attempt: map,
                        available: false,
                        location,
                    });
                }
                heard.reports.push(req);
                JtResponse::Ack { proceed: true }
            }
            other => {
                heard.reports.push(other);
                JtResponse::Ack { proceed: true }
            }
        }
    }
}

/// The mini DFS, the scripted JobTracker and a shuffle server, on one test runtime.
struct Rig {
    dfs: MiniDfs,
    jobtracker: Arc<ScriptedJobTracker>,
    jobtracker_addr: SocketAddr,
    shuffle_addr: SocketAddr,
    shuffle_dir: PathBuf,
    work: tempfile::TempDir,
    _stop: sheaf_rpc::service::ShutdownTrigger,
    _shuffle: sheaf_mapreduce::shuffle::RunningShuffleServer,
    /// Runs the JobTracker service and the shuffle server; dropped last.
    _runtime: tokio::runtime::Runtime,
}

impl Rig {
    fn start(dfs: MiniDfs, assignments: Vec<TaskAssignment>) -> Rig {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let identity =
            TlsIdentity::load(&dfs.dir.path().join("tls"), "daemon").expect("daemon identity");
        let host = dfs.datanode_host(0);
        let work = tempfile::tempdir().expect("work dir");
        let shuffle_dir = work.path().join("shuffle");
        std::fs::create_dir_all(&shuffle_dir).expect("shuffle dir");
        let jobtracker = Arc::new(ScriptedJobTracker {
            assignments: assignments.into_iter().map(|a| (a.attempt, a)).collect(),
            heard: Mutex::new(Heard::default()),
        });
        let (trigger, shutdown): (_, Shutdown) = Shutdown::new();
        let (jobtracker_addr, shuffle) = runtime.block_on(async {
            let endpoint =
                quic::server_endpoint(SocketAddr::new(host, 0), &identity).expect("jt endpoint");
            let addr = endpoint.local_addr().expect("jt addr");
            tokio::spawn(RpcServer::serve(endpoint, jobtracker.clone(), shutdown));
            let shuffle = ShuffleServer::spawn(
                SocketAddr::new(host, 0),
                &identity,
                ShuffleRegistry::new(),
                Some(shuffle_dir.clone()),
            )
            .expect("shuffle server");
            (addr, shuffle)
        });
        Rig {
            shuffle_addr: shuffle.local_addr(),
            dfs,
            _runtime: runtime,
            jobtracker,
            jobtracker_addr,
            shuffle_dir,
            work,
            _stop: trigger,
            _shuffle: shuffle,
        }
    }

    /// Starts `sheaf mr-task` for `attempt` with `plugin` localized in its working dir.
    fn spawn_task(&self, attempt: AttemptId, plugin_name: &str) -> Child {
        let dir = self.work.path().join(format!("container-{attempt}"));
        std::fs::create_dir_all(&dir).expect("container dir");
        let link = dir.join(PLUGIN_LINK_NAME);
        if !link.exists() {
            std::os::unix::fs::symlink(plugin(plugin_name), &link).expect("link plugin");
        }
        let log = std::fs::File::create(dir.join("stderr")).expect("log");
        sheaf_command()
            .arg("mr-task")
            .current_dir(&dir)
            .env("SHEAF_CONF", &self.dfs.conf)
            .env(env::JOBTRACKER_ADDRESS, self.jobtracker_addr.to_string())
            .env(env::TASK_ATTEMPT, format!("attempt_{attempt}"))
            .env(env::TASK_HOST, self.dfs.datanode_host(0).to_string())
            .env(env::SHUFFLE_ADDRESS, self.shuffle_addr.to_string())
            .env(env::SHUFFLE_DIR, &self.shuffle_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn mr-task")
    }

    fn stderr_of(&self, attempt: AttemptId) -> String {
        std::fs::read_to_string(
            self.work
                .path()
                .join(format!("container-{attempt}"))
                .join("stderr"),
        )
        .unwrap_or_default()
    }

    /// Waits for `child` to exit within `timeout`; returns its exit code.
    fn wait(&self, attempt: AttemptId, child: &mut Child, timeout: Duration) -> i32 {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return status.code().unwrap_or(-1);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "mr-task {attempt} did not finish within {timeout:?}; stderr:\n{}",
                    self.stderr_of(attempt)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn reports(&self) -> Vec<JtRequest> {
        self.jobtracker.heard.lock().expect("lock").reports.clone()
    }
}

fn map(index: u32) -> AttemptId {
    AttemptId {
        task: TaskId::map(index),
        number: 0,
    }
}

fn reduce(index: u32) -> AttemptId {
    AttemptId {
        task: TaskId::reduce(index),
        number: 0,
    }
}

fn assignment(
    attempt: AttemptId,
    split: Option<InputSplit>,
    maps: u32,
    reduces: u32,
    secret: &JobSecret,
) -> TaskAssignment {
    let tag = attempt.task.kind.tag();
    TaskAssignment {
        job_id: JOB.into(),
        attempt,
        program: JobProgram::Plugin,
        conf: BTreeMap::from([("mapreduce.task.sort-buffer-mb".to_string(), "1".to_string())]),
        split,
        num_maps: maps,
        num_reduces: reduces,
        attempt_dir: format!("/out/_temporary/attempt_{attempt}"),
        output_file: format!("part-{tag}-{:05}", attempt.task.index),
        shuffle_secret: secret.as_bytes().to_vec(),
        app_attempt: 1,
    }
}

/// Lines of words; word `w{i}` appears in a Zipf-ish mix.
fn corpus(lines: usize, seed: u64) -> String {
    let mut x = seed | 1;
    let mut out = String::new();
    for _ in 0..lines {
        for _ in 0..8 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let id = (x % 500) * (x % 500) / 500;
            out.push_str(&format!("w{id} "));
        }
        out.push('\n');
    }
    out
}

fn reference_counts(texts: &[&str]) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for t in texts {
        for w in t.split_ascii_whitespace() {
            *counts.entry(w.to_string()).or_insert(0) += 1;
        }
    }
    counts
}

fn put(dfs: &MiniDfs, dir: &Path, name: &str, body: &str) -> u64 {
    let local = dir.join(name);
    std::fs::write(&local, body).expect("write input");
    dfs.ok(&[
        "dfs",
        "put",
        local.to_str().expect("utf-8"),
        &format!("/in/{name}"),
    ]);
    body.len() as u64
}

fn start_dfs() -> MiniDfs {
    let mut opts = MiniDfsOptions::new(1, OCTET);
    opts.replication = 1;
    MiniDfs::start(opts)
}

#[test]
fn map_and_reduce_tasks_produce_the_word_counts_through_the_shuffle() {
    let dfs = start_dfs();
    let local = tempfile::tempdir().expect("tempdir");
    dfs.ok(&["dfs", "mkdir", "-p", "/in"]);
    // Several 1 MiB blocks: map 0 reads a split in the middle of a multi-block file.
    let a = corpus(40_000, 7);
    let b = corpus(3_000, 11);
    let a_len = put(&dfs, local.path(), "a", &a);
    let b_len = put(&dfs, local.path(), "b", &b);
    let secret = JobSecret::generate();
    let half = a_len / 2;
    let splits = [
        InputSplit::new("sheaf:///in/a", 0, half),
        InputSplit::new("sheaf:///in/a", half, a_len - half),
        InputSplit::new("sheaf:///in/b", 0, b_len),
    ];
    let mut assignments: Vec<TaskAssignment> = splits
        .iter()
        .enumerate()
        .map(|(i, s)| assignment(map(i as u32), Some(s.clone()), 3, 2, &secret))
        .collect();
    for r in 0..2 {
        let a = assignment(reduce(r), None, 3, 2, &secret);
        dfs.ok(&["dfs", "mkdir", "-p", &a.attempt_dir]);
        assignments.push(a);
    }
    let rig = Rig::start(dfs, assignments);
    // Reducers first: they wait for the maps' completion events like slow-started reducers.
    let mut reducers: Vec<(AttemptId, Child)> = (0..2)
        .map(|r| (reduce(r), rig.spawn_task(reduce(r), "wordcount")))
        .collect();
    for i in 0..3 {
        let mut child = rig.spawn_task(map(i), "wordcount");
        let code = rig.wait(map(i), &mut child, Duration::from_secs(60));
        assert_eq!(code, 0, "map {i}: {}", rig.stderr_of(map(i)));
    }
    for (attempt, child) in &mut reducers {
        let code = rig.wait(*attempt, child, Duration::from_secs(60));
        assert_eq!(code, 0, "{attempt}: {}", rig.stderr_of(*attempt));
    }
    let reports = rig.reports();
    let mut output_ready = HashSet::new();
    for r in &reports {
        match r {
            JtRequest::MapOutputReady {
                counters,
                shuffle_address,
                ..
            } => {
                assert_eq!(shuffle_address, &rig.shuffle_addr.to_string());
                assert!(counters.get("Map-Reduce Framework", "MAP_INPUT_RECORDS") > 0);
            }
            JtRequest::OutputReady { attempt, counters } => {
                output_ready.insert(*attempt);
                assert_eq!(
                    counters.get("Map-Reduce Framework", "SHUFFLED_MAPS"),
                    3,
                    "{attempt} shuffled every map"
                );
                assert!(counters.get("Map-Reduce Framework", "REDUCE_SHUFFLE_BYTES") > 0);
            }
            other => panic!("unexpected report {other:?}"),
        }
    }
    assert_eq!(output_ready, HashSet::from([reduce(0), reduce(1)]));
    let mut counts = BTreeMap::new();
    for r in 0..2 {
        let text = rig.dfs.ok(&[
            "dfs",
            "cat",
            &format!("/out/_temporary/attempt_r_{r:06}_0/part-r-{r:05}"),
        ]);
        for line in text.lines() {
            let (word, n) = line.split_once('\t').expect("word\\tcount");
            let n: u64 = n.parse().expect("count");
            assert!(counts.insert(word.to_string(), n).is_none(), "{word} twice");
        }
    }
    assert_eq!(counts, reference_counts(&[&a, &b]));
    // Reducers waited for maps, so they reported progress, within bounds.
    let heard = rig.jobtracker.heard.lock().expect("lock");
    for r in 0..2 {
        let p = heard.progress.get(&reduce(r)).expect("reduce progress");
        assert!(p.iter().all(|v| (0.0..=1.0).contains(v)), "{p:?}");
        // Waiting for map events is work: a heartbeat after the first says so, else the
        // JobTracker would time a patient reducer out.
        let alive = heard.alive.get(&reduce(r)).copied().unwrap_or(0);
        assert!(
            p.len() < 2 || alive > 0,
            "{} heartbeats, none alive",
            p.len()
        );
    }
}

#[test]
fn plugin_panic_is_reported_with_its_message_and_a_stopped_attempt_exits_quietly() {
    let dfs = start_dfs();
    let local = tempfile::tempdir().expect("tempdir");
    dfs.ok(&["dfs", "mkdir", "-p", "/in"]);
    let text = corpus(100, 3);
    let len = put(&dfs, local.path(), "a", &text);
    let secret = JobSecret::generate();
    let split = InputSplit::new("sheaf:///in/a", 0, len);
    // Map-only: map 0 panics (panicky), map 1 writes its part file (wordcount).
    let panicking = assignment(map(0), Some(split.clone()), 2, 0, &secret);
    let writing = assignment(map(1), Some(split), 2, 0, &secret);
    // A reducer the JobTracker no longer wants: it must stop without reporting anything.
    let unwanted = assignment(reduce(0), None, 5, 1, &secret);
    for a in [&panicking, &writing, &unwanted] {
        dfs.ok(&["dfs", "mkdir", "-p", &a.attempt_dir]);
    }
    let rig = Rig::start(dfs, vec![panicking, writing, unwanted]);
    rig.jobtracker
        .heard
        .lock()
        .expect("lock")
        .stop
        .insert(reduce(0));

    let mut child = rig.spawn_task(map(0), "panicky");
    let code = rig.wait(map(0), &mut child, Duration::from_secs(60));
    assert_eq!(code, 1, "{}", rig.stderr_of(map(0)));
    let stderr = rig.stderr_of(map(0));
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("sheaf mr-task: ") && last.contains("deliberate panic in map"),
        "the last line names the panic: {stderr}"
    );

    let mut child = rig.spawn_task(map(1), "wordcount");
    let code = rig.wait(map(1), &mut child, Duration::from_secs(60));
    assert_eq!(code, 0, "{}", rig.stderr_of(map(1)));
    let part = rig.dfs.ok(&[
        "dfs",
        "cat",
        "/out/_temporary/attempt_m_000001_0/part-m-00001",
    ]);
    let mut counts = BTreeMap::new();
    for line in part.lines() {
        let (w, n) = line.split_once('\t').expect("word\\tcount");
        *counts.entry(w.to_string()).or_insert(0) += n.parse::<u64>().expect("count");
    }
    assert_eq!(counts, reference_counts(&[&text]));

    let started = Instant::now();
    let mut child = rig.spawn_task(reduce(0), "wordcount");
    let code = rig.wait(reduce(0), &mut child, Duration::from_secs(30));
    assert_eq!(
        code,
        0,
        "a stopped attempt exits 0: {}",
        rig.stderr_of(reduce(0))
    );
    assert!(started.elapsed() < Duration::from_secs(10));

    let reports = rig.reports();
    let failed: Vec<&JtRequest> = reports
        .iter()
        .filter(|r| matches!(r, JtRequest::Failed { .. }))
        .collect();
    assert_eq!(failed.len(), 1, "{reports:?}");
    let JtRequest::Failed { attempt, reason } = failed[0] else {
        unreachable!()
    };
    assert_eq!(*attempt, map(0));
    assert!(reason.contains("deliberate panic in map"), "{reason}");
    assert!(!reason.contains('\n'));
    assert!(reports
        .iter()
        .any(|r| matches!(r, JtRequest::OutputReady { attempt, .. } if *attempt == map(1))));
    assert!(
        !reports.iter().any(|r| match r {
            JtRequest::OutputReady { attempt, .. } | JtRequest::Failed { attempt, .. } =>
                *attempt == reduce(0),
            _ => false,
        }),
        "the stopped reducer reported nothing: {reports:?}"
    );
}

#[test]
fn a_lost_map_output_is_reported_and_the_replacement_attempt_is_fetched() {
    let dfs = start_dfs();
    let local = tempfile::tempdir().expect("tempdir");
    dfs.ok(&["dfs", "mkdir", "-p", "/in"]);
    let text = corpus(2_000, 5);
    let len = put(&dfs, local.path(), "a", &text);
    let secret = JobSecret::generate();
    let split = InputSplit::new("sheaf:///in/a", 0, len);
    let retry = AttemptId {
        task: TaskId::map(0),
        number: 1,
    };
    let mut reducer = assignment(reduce(0), None, 1, 1, &secret);
    reducer.conf.insert(
        "mapreduce.reduce.shuffle.retry-delay-ms".into(),
        "20".into(),
    );
    dfs.ok(&["dfs", "mkdir", "-p", &reducer.attempt_dir]);
    let rig = Rig::start(
        dfs,
        vec![assignment(retry, Some(split), 1, 1, &secret), reducer],
    );
    // Attempt 0 of map 0 "succeeded" on a node whose shuffle service lost its output.
    rig.jobtracker
        .heard
        .lock()
        .expect("lock")
        .events
        .push(MapCompletionEvent {
            attempt: map(0),
            available: true,
            location: MapOutputLocation {
                host: rig.shuffle_addr.ip().to_string(),
                shuffle_address: rig.shuffle_addr.to_string(),
            },
        });
    let mut child = rig.spawn_task(reduce(0), "wordcount");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !rig
        .reports()
        .iter()
        .any(|r| matches!(r, JtRequest::FetchFailed { map: m, .. } if *m == map(0)))
    {
        assert!(
            Instant::now() < deadline,
            "no fetch failure reported: {}",
            rig.stderr_of(reduce(0))
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut rerun = rig.spawn_task(retry, "wordcount");
    assert_eq!(rig.wait(retry, &mut rerun, Duration::from_secs(60)), 0);
    let code = rig.wait(reduce(0), &mut child, Duration::from_secs(60));
    assert_eq!(code, 0, "{}", rig.stderr_of(reduce(0)));
    let fetch_failures = rig
        .reports()
        .iter()
        .filter(|r| matches!(r, JtRequest::FetchFailed { .. }))
        .count();
    assert_eq!(fetch_failures, 1, "the withdrawn attempt is not retried");
    let part = rig.dfs.ok(&[
        "dfs",
        "cat",
        "/out/_temporary/attempt_r_000000_0/part-r-00000",
    ]);
    let counts: BTreeMap<String, u64> = part
        .lines()
        .map(|l| {
            let (w, n) = l.split_once('\t').expect("word\\tcount");
            (w.to_string(), n.parse().expect("count"))
        })
        .collect();
    assert_eq!(counts, reference_counts(&[&text]));
}
