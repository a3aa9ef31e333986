//! `sheaf bench shuffle`: the QUIC shuffle (mutual TLS, signed requests, checksummed packets)
//! against a plain TCP copy of the same map-output bytes, in the same run, on loopback.
//!
//! Map outputs are written by the real map task (TeraGen records through the sort buffer,
//! spills and final merge), so the bytes and the partition index are exactly what a cluster
//! job serves.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{bail, ensure, Context};
use clap::Args;
use futures::StreamExt;
use sheaf_mapreduce::api::{
    Emitter, JobConf, JobDefinition, KeyComparator, Mapper, Partitioner, Reducer, TaskContext,
    TaskError,
};
use sheaf_mapreduce::formats::{FormatError, Record, RecordReader};
use sheaf_mapreduce::shuffle::{
    FetchedSegment, JobSecret, MapAttemptId, MapOutputLocation, ShuffleFetcher, ShuffleJob,
    ShuffleRegistry, ShuffleServer, ShuffleSettings,
};
use sheaf_mapreduce::task::{run_map_task, MapOutput, MapTaskSpec, TaskSettings};
use sheaf_rpc::{ClusterCa, TlsIdentity};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::job::parse_size;

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const JOB: &str = "job_bench_shuffle";
/// Read size of the TCP baseline's server, the same as the shuffle server's.
const READ_CHUNK: usize = sheaf_mapreduce::shuffle::server::READ_CHUNK;

/// `sheaf bench shuffle`.
#[derive(Args, Debug)]
pub struct ShuffleBenchArgs {
    /// Bytes of map output records to generate (TeraGen records; suffixes k, m, g allowed).
    #[arg(long, value_parser = parse_size, default_value = "512m")]
    pub bytes: u64,
    /// Map tasks (each writes one output file).
    #[arg(long, default_value_t = 8)]
    pub maps: u32,
    /// Reduce partitions (each fetched from every map).
    #[arg(long, default_value_t = 4)]
    pub reducers: u32,
    /// Reducers fetching at the same time.
    #[arg(long, default_value_t = 2)]
    pub concurrent_reducers: usize,
    /// Fetches in flight per reducer (`mapreduce.reduce.shuffle.parallel-copies`).
    #[arg(long, default_value_t = 5)]
    pub parallel_copies: usize,
    /// Fetched bytes a reducer keeps in memory before writing segments to disk, in MiB.
    #[arg(long, default_value_t = 512)]
    pub memory_mb: usize,
    /// Client QUIC endpoints per reducer (default: one per core, at most parallel copies).
    #[arg(long)]
    pub endpoints: Option<usize>,
}

/// Emits TeraGen records: 10-byte key, 90-byte value.
struct TeraRecords;
impl Mapper for TeraRecords {
    fn map(
        &mut self,
        _key: &[u8],
        value: &[u8],
        out: &mut dyn Emitter,
        _ctx: &mut dyn TaskContext,
    ) -> Result<(), TaskError> {
        let (k, v) = value.split_at(10.min(value.len()));
        out.emit(k, v)
    }
}

struct BenchJob;
impl JobDefinition for BenchJob {
    fn new_mapper(&self, _conf: &JobConf) -> Result<Box<dyn Mapper>, TaskError> {
        Ok(Box::new(TeraRecords))
    }
    fn new_reducer(&self, _conf: &JobConf) -> Result<Box<dyn Reducer>, TaskError> {
        Err(TaskError::new("the shuffle benchmark runs no reducer"))
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

/// TeraGen rows `next..end` as records.
struct TeraGenReader {
    next: u64,
    end: u64,
    record: [u8; terasort::RECORD_LEN],
}
impl RecordReader for TeraGenReader {
    fn next_record(&mut self) -> Result<Option<Record<'_>>, FormatError> {
        if self.next >= self.end {
            return Ok(None);
        }
        terasort::generate_record(self.next, &mut self.record);
        self.next += 1;
        Ok(Some((&[], &self.record[..])))
    }
    fn bytes_consumed(&self) -> u64 {
        0
    }
}

/// Runs the benchmark and prints both rates and their ratio.
pub fn run(args: ShuffleBenchArgs) -> anyhow::Result<()> {
    ensure!(
        args.maps > 0 && args.reducers > 0,
        "--maps and --reducers must be at least 1"
    );
    let dir = std::env::temp_dir().join(format!("sheaf-bench-shuffle-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let result = run_in(&dir, &args);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run_in(dir: &Path, args: &ShuffleBenchArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let outputs = write_map_outputs(dir, args)?;
    let shuffled: u64 = outputs
        .iter()
        .flat_map(|o| o.index.iter())
        .map(|e| e.compressed_len)
        .sum();
    println!(
        "map side: {} maps x {} partitions written by the map task in {:.1}s: {:.0} MB of records, {:.0} MB of map output to shuffle",
        args.maps,
        args.reducers,
        started.elapsed().as_secs_f64(),
        args.bytes as f64 / 1e6,
        shuffled as f64 / 1e6
    );
    let tls = dir.join("tls");
    ClusterCa::create_dir("bench", &tls).context("creating a throwaway CA")?;
    let daemon = TlsIdentity::load(&tls, "daemon")?;
    let user = TlsIdentity::load(&tls, "user")?;
    let rt = super::runtime::runtime(super::runtime::Workload::Serving)?;
    rt.block_on(async {
        let (quic_secs, quic_sums, disk_segments) =
            quic_shuffle(dir, args, &outputs, &daemon, &user).await?;
        let (tcp_secs, tcp_sums) = tcp_copy(args, &outputs).await?;
        ensure!(
            quic_sums == tcp_sums,
            "the QUIC shuffle and the TCP copy delivered different bytes"
        );
        let quic = shuffled as f64 / 1e6 / quic_secs.max(1e-9);
        let tcp = shuffled as f64 / 1e6 / tcp_secs.max(1e-9);
        println!(
            "QUIC shuffle (mutual TLS, HMAC-signed requests, crc32 packets): {quic:>7.0} MB/s  ({quic_secs:.2}s, {disk_segments} segments went to disk)"
        );
        println!("plain TCP copy of the same bytes (tokio, no TLS):             {tcp:>7.0} MB/s  ({tcp_secs:.2}s)");
        println!(
            "QUIC shuffle / TCP copy = {:.2} ({} reducers, {} at a time, {} parallel copies each; MB = 10^6 bytes{})",
            quic / tcp.max(f64::MIN_POSITIVE),
            args.reducers,
            args.concurrent_reducers.max(1),
            args.parallel_copies.max(1),
            if cfg!(debug_assertions) { "; DEBUG build" } else { "" }
        );
        Ok(())
    })
}

/// Runs the map tasks, one per core at a time.
fn write_map_outputs(dir: &Path, args: &ShuffleBenchArgs) -> anyhow::Result<Vec<MapOutput>> {
    let records = (args.bytes / terasort::RECORD_LEN as u64).max(u64::from(args.maps));
    let per_map = records.div_ceil(u64::from(args.maps));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let settings = TaskSettings {
        sort_buffer_bytes: 64 << 20,
        ..TaskSettings::default()
    };
    let job: Arc<dyn JobDefinition> = Arc::new(BenchJob);
    let conf = Arc::new(JobConf::default());
    let maps: Vec<u32> = (0..args.maps).collect();
    let mut outputs = Vec::new();
    for wave in maps.chunks(cores) {
        let results: Vec<anyhow::Result<MapOutput>> = std::thread::scope(|s| {
            let handles: Vec<_> = wave
                .iter()
                .map(|&m| {
                    let (job, conf, settings) = (job.clone(), conf.clone(), settings.clone());
                    s.spawn(move || -> anyhow::Result<MapOutput> {
                        let scratch = dir.join(format!("map{m}"));
                        std::fs::create_dir_all(&scratch)?;
                        let spec = MapTaskSpec {
                            job,
                            conf,
                            settings,
                            partitions: args.reducers,
                            scratch: scratch.clone(),
                            output: dir.join(format!("map_{m:06}.out")),
                            cancel: Arc::new(AtomicBool::new(false)),
                        };
                        let first = u64::from(m) * per_map;
                        let mut reader = TeraGenReader {
                            next: first,
                            end: (first + per_map).min(records),
                            record: [0; terasort::RECORD_LEN],
                        };
                        let (output, _) = run_map_task(&spec, &mut reader)
                            .with_context(|| format!("map task {m}"))?;
                        let _ = std::fs::remove_dir_all(&scratch);
                        Ok(output)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| bail!("a map task panicked")))
                .collect()
        });
        for r in results {
            outputs.push(r?);
        }
    }
    Ok(outputs)
}

/// crc32 of every fetched (map, partition) segment: the two transports must agree.
type Checksums = HashMap<(u32, u32), u32>;

async fn quic_shuffle(
    dir: &Path,
    args: &ShuffleBenchArgs,
    outputs: &[MapOutput],
    daemon: &TlsIdentity,
    user: &TlsIdentity,
) -> anyhow::Result<(f64, Checksums, u64)> {
    let registry = ShuffleRegistry::new();
    let secret = JobSecret::generate();
    registry.register_job(JOB, secret.clone());
    for (m, o) in outputs.iter().enumerate() {
        registry.register_map_output(
            JOB,
            MapAttemptId::new(m as u32, 0),
            o.path.clone(),
            o.index.clone(),
        )?;
    }
    let server = ShuffleServer::start(SocketAddr::new(LOCAL, 0), daemon, registry).await?;
    let maps: Vec<MapOutputLocation> = (0..outputs.len() as u32)
        .map(|m| MapOutputLocation {
            map_attempt: MapAttemptId::new(m, 0),
            host: server.local_addr(),
        })
        .collect();
    let mut settings = ShuffleSettings {
        parallel_copies: args.parallel_copies.max(1),
        memory_budget: args.memory_mb << 20,
        ..ShuffleSettings::default()
    };
    if let Some(e) = args.endpoints {
        settings.endpoints = e.max(1);
    }
    let job = ShuffleJob {
        job_id: JOB.into(),
        secret,
    };
    // One fetcher per reducer, as each reduce task has its own (created before the clock starts).
    let fetchers = (0..args.reducers)
        .map(|_| ShuffleFetcher::new(user, LOCAL, settings.clone()))
        .collect::<Result<Vec<_>, _>>()?;
    let sums = Mutex::new(Checksums::new());
    let disk_segments = Mutex::new(0u64);
    let start = Instant::now();
    let results: Vec<anyhow::Result<()>> = futures::stream::iter(0..args.reducers)
        .map(|p| {
            let (fetcher, job, maps, sums, disk_segments) =
                (&fetchers[p as usize], &job, &maps, &sums, &disk_segments);
            async move {
                let spill = dir.join(format!("reduce{p}"));
                let outcome = fetcher.fetch(job, p, maps, &spill).await?;
                if let Some(f) = outcome.failures.first() {
                    bail!(
                        "fetch of {} from {} failed: {}",
                        f.map_attempt,
                        f.host,
                        f.reason
                    );
                }
                let mut local = Vec::new();
                for seg in outcome.segments {
                    let key = (seg.map_attempt().map, p);
                    let crc = match seg {
                        FetchedSegment::Memory { bytes, .. } => crc32fast::hash(&bytes),
                        FetchedSegment::Disk { path, .. } => {
                            let crc = crc_of_file(path.clone()).await?;
                            let _ = tokio::fs::remove_file(&path).await;
                            crc
                        }
                    };
                    local.push((key, crc));
                }
                if let Ok(mut d) = disk_segments.lock() {
                    *d += outcome.stats.disk_segments;
                }
                if let Ok(mut s) = sums.lock() {
                    s.extend(local);
                }
                Ok(())
            }
        })
        .buffer_unordered(args.concurrent_reducers.max(1))
        .collect()
        .await;
    let secs = start.elapsed().as_secs_f64();
    for r in results {
        r?;
    }
    for f in &fetchers {
        f.close();
    }
    server.shutdown().await;
    let sums = sums.into_inner().unwrap_or_default();
    let disk = disk_segments.into_inner().unwrap_or_default();
    Ok((secs, sums, disk))
}

async fn crc_of_file(path: PathBuf) -> anyhow::Result<u32> {
    tokio::task::spawn_blocking(move || -> anyhow::Result<u32> {
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        Ok(crc32fast::hash(&bytes))
    })
    .await?
}

/// The baseline: the same segments over plain TCP, same concurrency, same read sizes, into memory.
async fn tcp_copy(
    args: &ShuffleBenchArgs,
    outputs: &[MapOutput],
) -> anyhow::Result<(f64, Checksums)> {
    let listener = tokio::net::TcpListener::bind(SocketAddr::new(LOCAL, 0)).await?;
    let addr = listener.local_addr()?;
    let table: Arc<Vec<MapOutput>> = Arc::new(outputs.to_vec());
    let server_table = table.clone();
    let server = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                break;
            };
            let table = server_table.clone();
            tokio::spawn(async move {
                let _ = serve_tcp(stream, table).await;
            });
        }
    });
    let sums = Mutex::new(Checksums::new());
    let maps = outputs.len() as u32;
    let copies = args.parallel_copies.max(1);
    let start = Instant::now();
    let results: Vec<anyhow::Result<()>> = futures::stream::iter(0..args.reducers)
        .map(|p| {
            let sums = &sums;
            async move {
                let next = Arc::new(Mutex::new(0u32));
                let mut copiers = Vec::new();
                for _ in 0..copies {
                    let next = next.clone();
                    copiers.push(tokio::spawn(async move {
                        let mut stream = tokio::net::TcpStream::connect(addr).await?;
                        stream.set_nodelay(true)?;
                        let mut got = Vec::new();
                        loop {
                            let m = {
                                let mut n = next.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
                                if *n >= maps {
                                    break;
                                }
                                *n += 1;
                                *n - 1
                            };
                            let mut req = [0u8; 8];
                            req[..4].copy_from_slice(&m.to_be_bytes());
                            req[4..].copy_from_slice(&p.to_be_bytes());
                            stream.write_all(&req).await?;
                            let len = stream.read_u64().await?;
                            let mut bytes = vec![0u8; usize::try_from(len)?];
                            stream.read_exact(&mut bytes).await?;
                            got.push(((m, p), crc32fast::hash(&bytes)));
                        }
                        Ok::<_, anyhow::Error>(got)
                    }));
                }
                for c in copiers {
                    let got = c.await??;
                    if let Ok(mut s) = sums.lock() {
                        s.extend(got);
                    }
                }
                Ok(())
            }
        })
        .buffer_unordered(args.concurrent_reducers.max(1))
        .collect()
        .await;
    let secs = start.elapsed().as_secs_f64();
    server.abort();
    for r in results {
        r?;
    }
    Ok((secs, sums.into_inner().unwrap_or_default()))
}

async fn serve_tcp(
    mut stream: tokio::net::TcpStream,
    table: Arc<Vec<MapOutput>>,
) -> anyhow::Result<()> {
    stream.set_nodelay(true)?;
    loop {
        let mut req = [0u8; 8];
        if stream.read_exact(&mut req).await.is_err() {
            return Ok(());
        }
        let m = u32::from_be_bytes([req[0], req[1], req[2], req[3]]) as usize;
        let p = u32::from_be_bytes([req[4], req[5], req[6], req[7]]) as usize;
        let output = table.get(m).context("no such map")?;
        let entry = *output.index.get(p).context("no such partition")?;
        let path = output.path.clone();
        stream.write_u64(entry.compressed_len).await?;
        // Same reader shape as the shuffle server: a blocking thread doing large reads.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(4);
        tokio::task::spawn_blocking(move || {
            let file = match std::fs::File::open(&path) {
                Ok(f) => f,
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            };
            let mut done = 0u64;
            while done < entry.compressed_len {
                let n = (entry.compressed_len - done).min(READ_CHUNK as u64) as usize;
                let mut buf = vec![0u8; n];
                let item = file
                    .read_exact_at(&mut buf, entry.offset + done)
                    .map(|_| buf);
                let failed = item.is_err();
                if tx.blocking_send(item).is_err() || failed {
                    return;
                }
                done += n as u64;
            }
        });
        while let Some(chunk) = rx.recv().await {
            stream.write_all(&chunk?).await?;
        }
    }
}
