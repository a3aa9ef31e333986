//! In-process tests of the shuffle on loopback: real map outputs written by the map task,
//! served by a [`ShuffleServer`], fetched by a [`ShuffleFetcher`] and merged by the reduce task.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use sheaf_rpc::{ClusterCa, TlsIdentity};
use sheaf_yarn::nodemanager::aux_service::AuxService;

use super::*;
use crate::api::{
    Emitter, JobConf, JobDefinition, KeyComparator, Mapper, Partitioner, Reducer, TaskContext,
    TaskError, ValueIter,
};
use crate::formats::{FormatError, Record, RecordReader, RecordWriter};
use crate::task::map_task::{run_map_task, MapOutput, MapTaskSpec};
use crate::task::reduce_task::{run_reduce_task, ReduceTaskSpec};
use crate::task::settings::TaskSettings;

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const JOB: &str = "job_1700000000000_0001";
const PARTITIONS: u32 = 4;
/// Every test is bounded: a hang fails instead of blocking the suite.
const TEST_DEADLINE: Duration = Duration::from_secs(90);

/// Emits (word, "<line>:<position>") so every record is distinct and traceable.
struct WordPositions;
impl Mapper for WordPositions {
    fn map(
        &mut self,
        key: &[u8],
        value: &[u8],
        out: &mut dyn Emitter,
        _ctx: &mut dyn TaskContext,
    ) -> Result<(), TaskError> {
        for (i, word) in value.split(|b| *b == b' ').enumerate() {
            let mut v = key.to_vec();
            v.extend_from_slice(format!(":{i}").as_bytes());
            out.emit(word, &v)?;
        }
        Ok(())
    }
}

/// Passes every record through, so the reduce output is exactly the merged input.
struct Identity;
impl Reducer for Identity {
    fn reduce(
        &mut self,
        key: &[u8],
        values: &mut dyn ValueIter,
        out: &mut dyn Emitter,
        _ctx: &mut dyn TaskContext,
    ) -> Result<(), TaskError> {
        while let Some(v) = values.next_value() {
            out.emit(key, v)?;
        }
        Ok(())
    }
}

struct PositionsJob;
impl JobDefinition for PositionsJob {
    fn new_mapper(&self, _conf: &JobConf) -> Result<Box<dyn Mapper>, TaskError> {
        Ok(Box::new(WordPositions))
    }
    fn new_reducer(&self, _conf: &JobConf) -> Result<Box<dyn Reducer>, TaskError> {
        Ok(Box::new(Identity))
    }
    fn new_combiner(&self, _conf: &JobConf) -> Result<Option<Box<dyn Reducer>>, TaskError> {
        Ok(None)
    }
    fn partitioner(&self, _conf: &JobConf) -> Result<Option<Box<dyn Partitioner>>, TaskError> {
        Ok(None)
    }
    fn comparator(&self, _conf: &JobConf) -> Result<Option<Box<dyn KeyComparator>>, TaskError> {
        Ok(None)
    }
}

/// Lines held in memory, keyed by their number.
struct Lines {
    lines: Vec<(Vec<u8>, Vec<u8>)>,
    next: usize,
}
impl RecordReader for Lines {
    fn next_record(&mut self) -> Result<Option<Record<'_>>, FormatError> {
        let i = self.next;
        self.next += 1;
        Ok(self.lines.get(i).map(|(k, v)| (k.as_slice(), v.as_slice())))
    }
    fn bytes_consumed(&self) -> u64 {
        0
    }
}

/// Collects reduce output records.
#[derive(Default)]
struct Collect {
    records: Vec<(Vec<u8>, Vec<u8>)>,
}
impl RecordWriter for Collect {
    fn write(&mut self, key: &[u8], value: &[u8]) -> Result<(), FormatError> {
        self.records.push((key.to_vec(), value.to_vec()));
        Ok(())
    }
    fn finish(&mut self) -> Result<(), FormatError> {
        Ok(())
    }
    fn bytes_written(&self) -> u64 {
        0
    }
}

fn identities(dir: &Path) -> (TlsIdentity, TlsIdentity) {
    let tls = dir.join("tls");
    ClusterCa::create_dir("shuffle-test", &tls).expect("CA");
    (
        TlsIdentity::load(&tls, "daemon").expect("daemon identity"),
        TlsIdentity::load(&tls, "user").expect("user identity"),
    )
}

/// Deterministic text: `words` words per line from a skewed vocabulary.
fn text(map: u32, lines: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ u64::from(map + 1);
    (0..lines)
        .map(|l| {
            let words: Vec<String> = (0..12)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    format!("w{}", (x % 300) * (x % 300) / 300)
                })
                .collect();
            (
                format!("m{map}l{l}").into_bytes(),
                words.join(" ").into_bytes(),
            )
        })
        .collect()
}

/// Runs `maps` real map tasks (small sort buffer: several spills and a merged output each).
fn write_map_outputs(dir: &Path, maps: u32, lines: usize) -> Vec<MapOutput> {
    let settings = TaskSettings {
        sort_buffer_bytes: 256 << 10,
        ..TaskSettings::default()
    };
    (0..maps)
        .map(|m| {
            let scratch = dir.join(format!("map{m}"));
            std::fs::create_dir_all(&scratch).expect("scratch");
            let spec = MapTaskSpec {
                job: Arc::new(PositionsJob),
                conf: Arc::new(JobConf::default()),
                settings: settings.clone(),
                partitions: PARTITIONS,
                scratch,
                output: dir.join(format!("map_{m:06}.out")),
                cancel: Arc::new(AtomicBool::new(false)),
            };
            let mut reader = Lines {
                lines: text(m, lines),
                next: 0,
            };
            run_map_task(&spec, &mut reader).expect("map task").0
        })
        .collect()
}

fn reduce_spec(scratch: PathBuf, memory: usize) -> ReduceTaskSpec {
    std::fs::create_dir_all(&scratch).expect("reduce scratch");
    ReduceTaskSpec {
        job: Arc::new(PositionsJob),
        conf: Arc::new(JobConf::default()),
        settings: TaskSettings {
            reduce_memory_bytes: memory,
            ..TaskSettings::default()
        },
        scratch,
        cancel: Arc::new(AtomicBool::new(false)),
    }
}

/// The local runner's path: every map output's segment added as a file segment.
fn reduce_locally(
    outputs: &[MapOutput],
    partition: u32,
    scratch: PathBuf,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    let spec = reduce_spec(scratch, 128 << 20);
    let mut shuffle = spec.shuffle_buffer().expect("buffer");
    for o in outputs {
        shuffle
            .add_file_segment(&o.path, &o.index[partition as usize])
            .expect("add");
    }
    let mut out = Collect::default();
    run_reduce_task(&spec, shuffle, &mut out).expect("local reduce");
    out.records
}

/// The cluster path: fetched segments handed to the reduce task.
fn reduce_fetched(
    outcome: &mut ShuffleOutcome,
    scratch: PathBuf,
    memory: usize,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    let spec = reduce_spec(scratch, memory);
    let mut shuffle = spec.shuffle_buffer().expect("buffer");
    outcome.drain_into(&mut shuffle).expect("hand over");
    let mut out = Collect::default();
    run_reduce_task(&spec, shuffle, &mut out).expect("reduce over fetched segments");
    out.records
}

fn sorted(mut v: Vec<(Vec<u8>, Vec<u8>)>) -> Vec<(Vec<u8>, Vec<u8>)> {
    v.sort();
    v
}

fn is_key_ordered(v: &[(Vec<u8>, Vec<u8>)]) -> bool {
    v.windows(2).all(|w| w[0].0 <= w[1].0)
}

fn file_range(path: &Path, offset: u64, len: u64) -> Vec<u8> {
    let bytes = std::fs::read(path).expect("read map output");
    bytes[offset as usize..(offset + len) as usize].to_vec()
}

fn fast_settings() -> ShuffleSettings {
    ShuffleSettings {
        retry: sheaf_rpc::RetryPolicy {
            attempts: 3,
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(100),
        },
        connect_timeout: Duration::from_millis(500),
        read_timeout: Duration::from_secs(10),
        ..ShuffleSettings::default()
    }
}

/// A server with `outputs` registered under `JOB` with a fresh secret.
async fn serve(
    daemon: &TlsIdentity,
    outputs: &[MapOutput],
) -> (RunningShuffleServer, Arc<ShuffleRegistry>, ShuffleJob) {
    let registry = ShuffleRegistry::new();
    let secret = JobSecret::generate();
    registry.register_job(JOB, secret.clone());
    for (m, o) in outputs.iter().enumerate() {
        registry
            .register_map_output(
                JOB,
                MapAttemptId::new(m as u32, 0),
                o.path.clone(),
                o.index.clone(),
            )
            .expect("register");
    }
    let server = ShuffleServer::start(SocketAddr::new(LOCAL, 0), daemon, registry.clone())
        .await
        .expect("start server");
    let job = ShuffleJob {
        job_id: JOB.into(),
        secret,
    };
    (server, registry, job)
}

fn locations(maps: u32, host: SocketAddr) -> Vec<MapOutputLocation> {
    (0..maps)
        .map(|m| MapOutputLocation {
            map_attempt: MapAttemptId::new(m, 0),
            host,
        })
        .collect()
}

async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(TEST_DEADLINE, f)
        .await
        .expect("test exceeded its deadline")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetched_partitions_are_byte_identical_and_reduce_like_the_local_path() {
    bounded(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let (daemon, user) = identities(dir.path());
        let outputs = write_map_outputs(dir.path(), 3, 3000);
        let (server, _registry, job) = serve(&daemon, &outputs).await;
        let fetcher = ShuffleFetcher::new(&user, LOCAL, fast_settings()).expect("fetcher");
        let maps = locations(3, server.local_addr());
        let mut total_records = 0;
        for p in 0..PARTITIONS {
            let mut outcome = fetcher
                .fetch(&job, p, &maps, &dir.path().join(format!("fetch{p}")))
                .await
                .expect("fetch");
            assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);
            assert_eq!(outcome.segments.len(), 3);
            assert_eq!(outcome.stats.disk_segments, 0, "all fit the default budget");
            for (m, seg) in outcome.segments.iter().enumerate() {
                let entry = outputs[m].index[p as usize];
                assert_eq!(seg.map_attempt(), MapAttemptId::new(m as u32, 0));
                assert_eq!(seg.records(), entry.records);
                let FetchedSegment::Memory { bytes, raw_len, .. } = seg else {
                    panic!("expected an in-memory segment");
                };
                assert_eq!(*raw_len, entry.raw_len);
                assert!(
                    *bytes == file_range(&outputs[m].path, entry.offset, entry.compressed_len),
                    "segment of map {m} partition {p} differs from the map output file"
                );
            }
            let local = reduce_locally(&outputs, p, dir.path().join(format!("local{p}")));
            let fetched =
                reduce_fetched(&mut outcome, dir.path().join(format!("red{p}")), 128 << 20);
            assert!(!local.is_empty());
            assert!(is_key_ordered(&fetched));
            total_records += fetched.len();
            assert_eq!(sorted(local), sorted(fetched), "partition {p}");
        }
        assert_eq!(
            total_records,
            3 * 3000 * 12,
            "every word of every line arrived once"
        );
        let stats = server.stats();
        assert_eq!(stats.segments, 3 * u64::from(PARTITIONS));
        assert_eq!(stats.refused, 0);
        server.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_with_a_wrong_job_token_are_refused() {
    bounded(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let (daemon, user) = identities(dir.path());
        let outputs = write_map_outputs(dir.path(), 2, 200);
        let (server, registry, job) = serve(&daemon, &outputs).await;
        let fetcher = ShuffleFetcher::new(&user, LOCAL, fast_settings()).expect("fetcher");
        let maps = locations(2, server.local_addr());

        // Another job's secret (e.g. a task of another job) gets nothing of this job.
        let intruder = ShuffleJob {
            job_id: JOB.into(),
            secret: JobSecret::generate(),
        };
        let outcome = fetcher
            .fetch(&intruder, 0, &maps, &dir.path().join("f1"))
            .await
            .expect("fetch");
        assert!(outcome.segments.is_empty());
        assert_eq!(outcome.failures.len(), 2);
        for f in &outcome.failures {
            assert!(
                f.reason.contains("refused") && f.reason.contains("bad job token"),
                "{f:?}"
            );
            assert_eq!(f.attempts, 1, "a refusal is not retried");
            assert_eq!(f.host, server.local_addr());
        }

        // A job this server never heard of is refused as well.
        registry.register_job("job_other", JobSecret::generate());
        let stranger = ShuffleJob {
            job_id: "job_unknown".into(),
            secret: job.secret.clone(),
        };
        let outcome = fetcher
            .fetch(&stranger, 0, &maps, &dir.path().join("f2"))
            .await
            .expect("fetch");
        assert!(outcome.segments.is_empty());
        assert!(outcome
            .failures
            .iter()
            .all(|f| f.reason.contains("not known")));

        // The rightful job still gets its data.
        let outcome = fetcher
            .fetch(&job, 0, &maps, &dir.path().join("f3"))
            .await
            .expect("fetch");
        assert_eq!(outcome.segments.len(), 2);
        assert!(outcome.failures.is_empty());
        assert!(server.stats().refused >= 2);
        server.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_map_output_is_retried_then_reported_while_others_arrive() {
    bounded(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let (daemon, user) = identities(dir.path());
        let outputs = write_map_outputs(dir.path(), 2, 200);
        let (server, _registry, job) = serve(&daemon, &outputs).await;
        let fetcher = ShuffleFetcher::new(&user, LOCAL, fast_settings()).expect("fetcher");
        let mut maps = locations(2, server.local_addr());
        maps.push(MapOutputLocation {
            map_attempt: MapAttemptId::new(7, 2),
            host: server.local_addr(),
        });
        let outcome = fetcher
            .fetch(&job, 1, &maps, &dir.path().join("f"))
            .await
            .expect("fetch");
        assert_eq!(outcome.segments.len(), 2, "the registered outputs arrive");
        assert_eq!(outcome.failures.len(), 1);
        let f = &outcome.failures[0];
        assert_eq!(f.map_attempt, MapAttemptId::new(7, 2));
        assert_eq!(f.host, server.local_addr());
        assert_eq!(f.attempts, 3, "default: reported after 3 failed fetches");
        assert!(f.reason.contains("not registered"), "{f:?}");
        assert_eq!(outcome.stats.failed_fetches, 3);
        server.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_registered_late_is_fetched_on_a_retry() {
    bounded(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let (daemon, user) = identities(dir.path());
        let outputs = write_map_outputs(dir.path(), 2, 200);
        let (server, registry, job) = serve(&daemon, &outputs[..1]).await;
        let mut settings = fast_settings();
        settings.max_fetch_failures = 6;
        settings.retry.initial_backoff = Duration::from_millis(100);
        let fetcher = ShuffleFetcher::new(&user, LOCAL, settings).expect("fetcher");
        let late = outputs[1].clone();
        let reg = registry.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(150)).await;
            reg.register_map_output(JOB, MapAttemptId::new(1, 0), late.path, late.index)
                .expect("register late");
        });
        let outcome = fetcher
            .fetch(
                &job,
                2,
                &locations(2, server.local_addr()),
                &dir.path().join("f"),
            )
            .await
            .expect("fetch");
        assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);
        assert_eq!(outcome.segments.len(), 2);
        assert!(outcome.stats.failed_fetches >= 1, "the first try failed");
        server.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_server_is_retried_with_backoff_then_reported() {
    bounded(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_daemon, user) = identities(dir.path());
        // A bound but silent UDP socket: a node whose shuffle server is down.
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let host = silent.local_addr().expect("addr");
        let mut settings = fast_settings();
        settings.connect_timeout = Duration::from_millis(200);
        settings.retry.initial_backoff = Duration::from_millis(100);
        settings.retry.max_backoff = Duration::from_secs(1);
        let fetcher = ShuffleFetcher::new(&user, LOCAL, settings).expect("fetcher");
        let job = ShuffleJob {
            job_id: JOB.into(),
            secret: JobSecret::generate(),
        };
        let started = std::time::Instant::now();
        let outcome = fetcher
            .fetch(&job, 0, &locations(2, host), &dir.path().join("f"))
            .await
            .expect("fetch");
        let elapsed = started.elapsed();
        assert!(outcome.segments.is_empty());
        assert_eq!(outcome.failures.len(), 2);
        for f in &outcome.failures {
            assert_eq!(f.attempts, 3);
            assert_eq!(f.host, host);
            assert!(f.reason.contains("did not answer"), "{f:?}");
        }
        // 3 connect timeouts plus backoffs of 100 and 200 ms.
        assert!(elapsed >= Duration::from_millis(900), "{elapsed:?}");
        assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_budget_sends_segments_to_disk_without_changing_the_result() {
    bounded(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let (daemon, user) = identities(dir.path());
        let outputs = write_map_outputs(dir.path(), 5, 1500);
        let (server, _registry, job) = serve(&daemon, &outputs).await;
        let p = 3u32;
        let largest = outputs
            .iter()
            .map(|o| o.index[p as usize].compressed_len)
            .max()
            .unwrap_or(0);
        let mut settings = fast_settings();
        // Room for about two segments: the rest must go to disk.
        settings.memory_budget = (largest * 2 + 1) as usize;
        let fetcher = ShuffleFetcher::new(&user, LOCAL, settings.clone()).expect("fetcher");
        let spill = dir.path().join("spill");
        let mut outcome = fetcher
            .fetch(&job, p, &locations(5, server.local_addr()), &spill)
            .await
            .expect("fetch");
        assert!(outcome.failures.is_empty());
        assert!(outcome.stats.disk_segments >= 3, "{:?}", outcome.stats);
        assert!(outcome.stats.memory_segments >= 1, "{:?}", outcome.stats);
        let in_memory: u64 = outcome
            .segments
            .iter()
            .filter(|s| matches!(s, FetchedSegment::Memory { .. }))
            .map(FetchedSegment::size)
            .sum();
        assert!(in_memory <= settings.memory_budget as u64);
        for seg in &outcome.segments {
            if let FetchedSegment::Disk {
                path,
                entry,
                map_attempt,
            } = seg
            {
                assert!(path.starts_with(&spill));
                let src = outputs[map_attempt.map as usize].index[p as usize];
                assert_eq!(
                    std::fs::read(path).expect("spilled segment"),
                    file_range(
                        &outputs[map_attempt.map as usize].path,
                        src.offset,
                        src.compressed_len
                    )
                );
                assert_eq!(entry.offset, 0);
            }
        }
        let local = reduce_locally(&outputs, p, dir.path().join("local"));
        let fetched = reduce_fetched(&mut outcome, dir.path().join("red"), settings.memory_budget);
        assert!(is_key_ordered(&fetched));
        assert_eq!(sorted(local), sorted(fetched));
        server.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_copies_bound_is_respected() {
    bounded(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let (daemon, user) = identities(dir.path());
        let outputs = write_map_outputs(dir.path(), 12, 300);
        let (server, _registry, job) = serve(&daemon, &outputs).await;
        let maps = locations(12, server.local_addr());
        for copies in [1usize, 3] {
            let mut settings = fast_settings();
            settings.parallel_copies = copies;
            let fetcher = ShuffleFetcher::new(&user, LOCAL, settings).expect("fetcher");
            let outcome = fetcher
                .fetch(&job, 0, &maps, &dir.path().join(format!("f{copies}")))
                .await
                .expect("fetch");
            assert_eq!(outcome.segments.len(), 12);
            assert!(
                outcome.stats.peak_parallel_fetches <= copies,
                "{copies} copies allowed, {} ran at once",
                outcome.stats.peak_parallel_fetches
            );
            assert!(outcome.stats.peak_parallel_fetches >= 1);
        }
        // One request for the single copier, then 12 maps split over 3 copiers: at least 3 more.
        assert!(server.stats().requests >= 4, "{:?}", server.stats());
        server.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_refuses_outputs_of_unknown_jobs_and_overlapping_indexes() {
    let registry = ShuffleRegistry::new();
    let err = registry
        .register_map_output(
            "nojob",
            MapAttemptId::new(0, 0),
            PathBuf::from("/x"),
            vec![],
        )
        .expect_err("unknown job");
    assert!(matches!(err, ShuffleError::UnknownJob(_)));
    registry.register_job("j", JobSecret::generate());
    let e = crate::task::run_file::SegmentIndexEntry {
        offset: 0,
        raw_len: 10,
        compressed_len: 10,
        records: 1,
    };
    let overlapping = vec![
        e,
        crate::task::run_file::SegmentIndexEntry { offset: 5, ..e },
    ];
    assert!(registry
        .register_map_output(
            "j",
            MapAttemptId::new(0, 0),
            PathBuf::from("/x"),
            overlapping
        )
        .is_err());
    assert!(registry
        .register_map_output("j", MapAttemptId::new(0, 0), PathBuf::from("/x"), vec![e])
        .is_ok());
    assert!(registry.map_output("j", MapAttemptId::new(0, 0)).is_some());
    assert_eq!(registry.remove_job("j").len(), 1);
    assert!(registry.secret("j").is_none());
}

/// A shuffle root with `maps` real map outputs of `JOB` written under `<root>/JOB/`, the way a
/// task writes them under `$SHEAF_SHUFFLE_DIR/<job>/<attempt>/`.
fn outputs_under_root(root: &Path, maps: u32, lines: usize) -> Vec<MapOutput> {
    let job_dir = root.join(JOB);
    std::fs::create_dir_all(&job_dir).expect("job dir");
    write_map_outputs(&job_dir, maps, lines)
}

/// A client that does not retry, so refusals and dead servers show at once.
fn service_client(user: &TlsIdentity) -> ShuffleServiceClient {
    ShuffleServiceClient::new(user, LOCAL)
        .expect("service client")
        .with_retry(sheaf_rpc::RetryPolicy::NONE)
}

fn refusal(err: ShuffleError) -> String {
    match err {
        ShuffleError::Refused { reason, .. } => reason,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Starts the aux service the way a NodeManager does and returns its advertised address.
fn start_aux(service: &ShuffleAuxService) -> SocketAddr {
    assert_eq!(service.name(), "shuffle");
    let advertised = service.start(LOCAL).expect("aux service starts");
    let addr: SocketAddr = advertised.parse().expect("advertised IP:PORT");
    assert_eq!(addr.ip(), LOCAL, "bound to the NodeManager's host");
    assert_eq!(Some(addr), service.local_addr());
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_registered_through_the_service_client_are_fetched_byte_identical() {
    bounded(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let (daemon, user) = identities(dir.path());
        let service =
            ShuffleAuxService::new(daemon, &dir.path().join("local/shuffle"), 0).expect("service");
        let root = service.root().to_path_buf();
        let outputs = outputs_under_root(&root, 3, 1500);
        let addr = start_aux(&service);
        let client = service_client(&user);
        let secret = JobSecret::generate();
        for (m, o) in outputs.iter().enumerate() {
            client
                .register_map_output(
                    addr,
                    JOB,
                    &secret,
                    MapAttemptId::new(m as u32, 0),
                    &o.path,
                    &o.index,
                )
                .await
                .expect("registered");
        }
        // A re-registration of the same attempt (a retried call) is accepted.
        client
            .register_map_output(
                addr,
                JOB,
                &secret,
                MapAttemptId::new(0, 0),
                &outputs[0].path,
                &outputs[0].index,
            )
            .await
            .expect("re-registered");
        assert_eq!(service.stats().map(|s| s.registered), Some(4));
        let fetcher = ShuffleFetcher::new(&user, LOCAL, fast_settings()).expect("fetcher");
        let job = ShuffleJob {
            job_id: JOB.into(),
            secret,
        };
        for p in 0..PARTITIONS {
            let mut outcome = fetcher
                .fetch(
                    &job,
                    p,
                    &locations(3, addr),
                    &dir.path().join(format!("f{p}")),
                )
                .await
                .expect("fetch");
            assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);
            assert_eq!(outcome.segments.len(), 3);
            for seg in &outcome.segments {
                let m = seg.map_attempt().map as usize;
                let entry = outputs[m].index[p as usize];
                let FetchedSegment::Memory { bytes, .. } = seg else {
                    panic!("expected an in-memory segment");
                };
                assert!(
                    *bytes == file_range(&outputs[m].path, entry.offset, entry.compressed_len),
                    "map {m} partition {p} differs from the file"
                );
            }
            let local = reduce_locally(&outputs, p, dir.path().join(format!("local{p}")));
            let fetched =
                reduce_fetched(&mut outcome, dir.path().join(format!("red{p}")), 128 << 20);
            assert_eq!(sorted(local), sorted(fetched), "partition {p}");
        }
        // Stopping the service (NodeManager shutdown) closes it for good.
        service.stop();
        assert!(service.local_addr().is_none());
        let err = client
            .register_map_output(
                addr,
                JOB,
                &job.secret,
                MapAttemptId::new(5, 0),
                &outputs[0].path,
                &outputs[0].index,
            )
            .await
            .expect_err("a stopped service answers nothing");
        assert!(matches!(err, ShuffleError::Rpc(_)), "{err:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_outside_the_jobs_shuffle_dir_or_with_bad_indexes_are_refused() {
    bounded(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let (daemon, user) = identities(dir.path());
        let service =
            ShuffleAuxService::new(daemon, &dir.path().join("shuffle"), 0).expect("service");
        let root = service.root().to_path_buf();
        let addr = start_aux(&service);
        let client = service_client(&user);
        let secret = JobSecret::generate();
        let inside = outputs_under_root(&root, 1, 200).remove(0);
        let outside_dir = dir.path().join("elsewhere");
        std::fs::create_dir_all(&outside_dir).expect("outside dir");
        let outside = write_map_outputs(&outside_dir, 1, 200).remove(0);
        let other_job_dir = root.join("job_1700000000000_0002");
        std::fs::create_dir_all(&other_job_dir).expect("other job dir");
        let other_job = write_map_outputs(&other_job_dir, 1, 200).remove(0);
        let link = root.join(JOB).join("link.out");
        std::os::unix::fs::symlink(&outside.path, &link).expect("symlink");
        let dotdot = root
            .join(JOB)
            .join("..")
            .join("..")
            .join("elsewhere")
            .join(outside.path.file_name().expect("file name"));
        let relative = PathBuf::from(format!("{JOB}/map_000000.out"));
        let mut too_long = inside.index.clone();
        if let Some(last) = too_long.last_mut() {
            last.compressed_len += 1;
        }
        let cases: Vec<(
            &str,
            &str,
            PathBuf,
            Vec<crate::task::run_file::SegmentIndexEntry>,
            &str,
        )> = vec![
            (
                "outside the root",
                JOB,
                outside.path.clone(),
                outside.index.clone(),
                "outside",
            ),
            (
                "`..` out of the root",
                JOB,
                dotdot,
                outside.index.clone(),
                "outside",
            ),
            (
                "symlink out of the root",
                JOB,
                link,
                outside.index.clone(),
                "outside",
            ),
            (
                "another job's file",
                JOB,
                other_job.path.clone(),
                other_job.index.clone(),
                "outside",
            ),
            (
                "the job dir itself",
                JOB,
                root.join(JOB),
                inside.index.clone(),
                "outside",
            ),
            (
                "relative path",
                JOB,
                relative,
                inside.index.clone(),
                "absolute",
            ),
            (
                "missing file",
                JOB,
                root.join(JOB).join("nope.out"),
                inside.index.clone(),
                "cannot resolve",
            ),
            (
                "index past the end",
                JOB,
                inside.path.clone(),
                too_long,
                "shorter than its index",
            ),
            ("empty index", JOB, inside.path.clone(), vec![], "empty"),
            (
                "job id that walks out",
                "../elsewhere",
                outside.path.clone(),
                outside.index.clone(),
                "invalid job id",
            ),
        ];
        for (what, job_id, path, index, expected) in cases {
            let err = client
                .register_map_output(
                    addr,
                    job_id,
                    &secret,
                    MapAttemptId::new(0, 0),
                    &path,
                    &index,
                )
                .await
                .expect_err(what);
            let reason = refusal(err);
            assert!(reason.contains(expected), "{what}: {reason}");
        }
        assert_eq!(service.registry().job_count(), 0, "nothing was registered");
        // The legitimate file is accepted, and the refused ones cannot be fetched.
        client
            .register_map_output(
                addr,
                JOB,
                &secret,
                MapAttemptId::new(0, 0),
                &inside.path,
                &inside.index,
            )
            .await
            .expect("inside the job's dir");
        let registered = service
            .registry()
            .map_output(JOB, MapAttemptId::new(0, 0))
            .expect("registered");
        assert!(registered.path.starts_with(root.join(JOB)));
        service.stop();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_job_refuses_another_secret_for_registration_fetch_and_removal() {
    bounded(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let (daemon, user) = identities(dir.path());
        let service =
            ShuffleAuxService::new(daemon, &dir.path().join("shuffle"), 0).expect("service");
        let outputs = outputs_under_root(service.root(), 2, 200);
        let addr = start_aux(&service);
        let client = service_client(&user);
        let secret = JobSecret::generate();
        let intruder = JobSecret::generate();
        client
            .register_map_output(
                addr,
                JOB,
                &secret,
                MapAttemptId::new(0, 0),
                &outputs[0].path,
                &outputs[0].index,
            )
            .await
            .expect("first registration sets the secret");
        let reason = refusal(
            client
                .register_map_output(
                    addr,
                    JOB,
                    &intruder,
                    MapAttemptId::new(1, 0),
                    &outputs[1].path,
                    &outputs[1].index,
                )
                .await
                .expect_err("another secret"),
        );
        assert!(reason.contains("another secret"), "{reason}");
        assert!(service
            .registry()
            .map_output(JOB, MapAttemptId::new(1, 0))
            .is_none());
        // The intruder's secret neither fetches nor removes the job.
        let fetcher = ShuffleFetcher::new(&user, LOCAL, fast_settings()).expect("fetcher");
        let stolen = ShuffleJob {
            job_id: JOB.into(),
            secret: intruder.clone(),
        };
        let outcome = fetcher
            .fetch(&stolen, 0, &locations(1, addr), &dir.path().join("f1"))
            .await
            .expect("fetch");
        assert!(outcome.segments.is_empty());
        assert!(
            outcome.failures[0].reason.contains("bad job token"),
            "{:?}",
            outcome.failures
        );
        let reason = refusal(
            client
                .remove_job(addr, JOB, &intruder)
                .await
                .expect_err("bad mac"),
        );
        assert!(reason.contains("bad job token"), "{reason}");
        assert!(
            outputs[0].path.exists(),
            "a refused removal deletes nothing"
        );
        let job = ShuffleJob {
            job_id: JOB.into(),
            secret,
        };
        let outcome = fetcher
            .fetch(&job, 0, &locations(1, addr), &dir.path().join("f2"))
            .await
            .expect("fetch");
        assert_eq!(
            outcome.segments.len(),
            1,
            "the rightful job is still served"
        );
        service.stop();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_job_deletes_the_files_and_later_fetches_fail_cleanly() {
    bounded(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let (daemon, user) = identities(dir.path());
        let service =
            ShuffleAuxService::new(daemon, &dir.path().join("shuffle"), 0).expect("service");
        let root = service.root().to_path_buf();
        let outputs = outputs_under_root(&root, 2, 300);
        // Another job on the same node must not be touched.
        let other_id = "job_1700000000000_0002";
        std::fs::create_dir_all(root.join(other_id)).expect("other job dir");
        let other = write_map_outputs(&root.join(other_id), 1, 100).remove(0);
        let addr = start_aux(&service);
        let client = service_client(&user);
        let secret = JobSecret::generate();
        let other_secret = JobSecret::generate();
        for (m, o) in outputs.iter().enumerate() {
            client
                .register_map_output(
                    addr,
                    JOB,
                    &secret,
                    MapAttemptId::new(m as u32, 0),
                    &o.path,
                    &o.index,
                )
                .await
                .expect("registered");
        }
        client
            .register_map_output(
                addr,
                other_id,
                &other_secret,
                MapAttemptId::new(0, 0),
                &other.path,
                &other.index,
            )
            .await
            .expect("other job registered");
        let fetcher = ShuffleFetcher::new(&user, LOCAL, fast_settings()).expect("fetcher");
        let job = ShuffleJob {
            job_id: JOB.into(),
            secret: secret.clone(),
        };
        let before = fetcher
            .fetch(&job, 1, &locations(2, addr), &dir.path().join("f1"))
            .await
            .expect("fetch");
        assert_eq!(before.segments.len(), 2);

        assert_eq!(
            client
                .remove_job(addr, JOB, &secret)
                .await
                .expect("removed"),
            2
        );
        assert!(!root.join(JOB).exists(), "the job's shuffle dir is gone");
        assert!(outputs.iter().all(|o| !o.path.exists()));
        assert!(other.path.exists(), "another job's output stays");
        assert_eq!(service.stats().map(|s| s.removed_jobs), Some(1));

        let after = fetcher
            .fetch(&job, 1, &locations(2, addr), &dir.path().join("f2"))
            .await
            .expect("a fetch of a removed job is a clean failure, not an error");
        assert!(after.segments.is_empty());
        assert_eq!(after.failures.len(), 2);
        for f in &after.failures {
            assert!(f.reason.contains("not known"), "{f:?}");
            assert_eq!(f.attempts, 1, "a refusal is not retried");
        }
        // Idempotent, and a late attempt of the finished job cannot register again.
        assert_eq!(
            client.remove_job(addr, JOB, &secret).await.expect("again"),
            0
        );
        std::fs::create_dir_all(root.join(JOB)).expect("late writer's dir");
        let late = write_map_outputs(&root.join(JOB), 1, 50).remove(0);
        let reason = refusal(
            client
                .register_map_output(
                    addr,
                    JOB,
                    &secret,
                    MapAttemptId::new(0, 1),
                    &late.path,
                    &late.index,
                )
                .await
                .expect_err("late registration"),
        );
        assert!(reason.contains("finished"), "{reason}");
        // A repeated removal cleans up what the late attempt wrote.
        assert_eq!(
            client.remove_job(addr, JOB, &secret).await.expect("again"),
            0
        );
        assert!(!root.join(JOB).exists());
        // A job this node never saw: nothing to do, nothing deleted.
        assert_eq!(
            client
                .remove_job(addr, "job_1700000000000_0009", &secret)
                .await
                .expect("unknown job"),
            0
        );
        assert!(other.path.exists());
        service.stop();
    })
    .await;
}

#[test]
fn a_new_service_deletes_what_an_earlier_nodemanager_left_in_its_root() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tls = dir.path().join("tls");
    ClusterCa::create_dir("shuffle-test", &tls).expect("CA");
    let daemon = TlsIdentity::load(&tls, "daemon").expect("identity");
    let root = dir.path().join("local").join("shuffle");
    std::fs::create_dir_all(root.join(JOB).join("attempt_m_000000_0")).expect("stale dir");
    std::fs::write(
        root.join(JOB).join("attempt_m_000000_0").join("file.out"),
        b"x",
    )
    .expect("stale");
    std::fs::write(root.join("stray"), b"x").expect("stray");
    let service = ShuffleAuxService::new(daemon.clone(), &root, 0).expect("service");
    assert_eq!(
        service.root(),
        std::fs::canonicalize(&root).expect("canonical")
    );
    let left: Vec<_> = std::fs::read_dir(&root)
        .expect("root")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(
        left,
        [std::ffi::OsString::from(".lock")],
        "only the lock file"
    );
    assert!(service.local_addr().is_none(), "not started yet");
    // A second NodeManager on the same local dir is refused and deletes nothing.
    std::fs::create_dir_all(root.join(JOB)).expect("live job dir");
    let err = ShuffleAuxService::new(daemon.clone(), &root, 0)
        .err()
        .expect("the root is taken");
    assert!(
        err.to_string().contains("in use by another NodeManager"),
        "{err}"
    );
    assert!(root.join(JOB).exists());
    drop(service);
    assert!(
        ShuffleAuxService::new(daemon, &root, 0).is_ok(),
        "free again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_application_loses_its_shuffle_data_even_without_a_removal() {
    bounded(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let (daemon, user) = identities(dir.path());
        let service =
            ShuffleAuxService::new(daemon, &dir.path().join("shuffle"), 0).expect("service");
        let root = service.root().to_path_buf();
        let outputs = outputs_under_root(&root, 2, 100);
        let addr = start_aux(&service);
        let client = service_client(&user);
        let secret = JobSecret::generate();
        // Map 0 registered; map 1 wrote its file but died before registering.
        client
            .register_map_output(
                addr,
                JOB,
                &secret,
                MapAttemptId::new(0, 0),
                &outputs[0].path,
                &outputs[0].index,
            )
            .await
            .expect("registered");
        // A job whose maps all died before registering: unknown to the registry.
        let unknown = "job_1700000000000_0003";
        std::fs::create_dir_all(root.join(unknown).join("attempt_m_000000_0")).expect("dir");
        // JOB is the job of application_1700000000000_0001.
        let app = |seq| sheaf_yarn::protocol::AppId {
            cluster_ts: 1_700_000_000_000,
            seq,
        };
        service.application_finished(&app(1));
        service.application_finished(&app(3));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while root.join(JOB).exists() || root.join(unknown).exists() {
            assert!(std::time::Instant::now() < deadline, "job dirs not deleted");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(service.registry().job_count(), 0);
        // Nothing of the job is served or accepted any more; the JobTracker's removal still
        // succeeds (idempotent), as does one for the job that never registered.
        let fetcher = ShuffleFetcher::new(&user, LOCAL, fast_settings()).expect("fetcher");
        let job = ShuffleJob {
            job_id: JOB.into(),
            secret: secret.clone(),
        };
        let outcome = fetcher
            .fetch(&job, 0, &locations(1, addr), &dir.path().join("f"))
            .await
            .expect("fetch");
        assert!(outcome.segments.is_empty());
        assert!(outcome.failures[0].reason.contains("not known"));
        std::fs::create_dir_all(root.join(JOB)).expect("straggler dir");
        let late = write_map_outputs(&root.join(JOB), 1, 20).remove(0);
        let reason = refusal(
            client
                .register_map_output(
                    addr,
                    JOB,
                    &secret,
                    MapAttemptId::new(1, 1),
                    &late.path,
                    &late.index,
                )
                .await
                .expect_err("straggler"),
        );
        assert!(reason.contains("finished"), "{reason}");
        assert_eq!(client.remove_job(addr, JOB, &secret).await.expect("ok"), 0);
        let reason = refusal(
            client
                .remove_job(addr, JOB, &JobSecret::generate())
                .await
                .expect_err("the secret is still checked"),
        );
        assert!(reason.contains("bad job token"), "{reason}");
        assert_eq!(
            client
                .remove_job(addr, unknown, &JobSecret::generate())
                .await
                .expect("nothing to protect"),
            0
        );
        service.stop();
    })
    .await;
}
