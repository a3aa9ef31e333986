//! The reduce side of the shuffle: fetches one partition from many map outputs at once, keeps
//! segments in memory up to a budget and writes later ones to local disk whole, retries failed
//! fetches with backoff and reports map outputs that keep failing.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use quinn::{Connection, Endpoint, RecvStream};
use sheaf_rpc::packet::{self, Packet};
use sheaf_rpc::tls::CLUSTER_SERVER_NAME;
use sheaf_rpc::{frame, quic, TlsIdentity};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;

use crate::task::error::EngineResult;
use crate::task::reduce_task::ShuffleBuffer;
use crate::task::run_file::SegmentIndexEntry;

use super::error::ShuffleError;
use super::protocol::{
    FetchReply, FetchRequest, JobSecret, MapAttemptId, SegmentHeader, ShuffleRequest,
};
use super::settings::ShuffleSettings;

/// Most map outputs asked for in one request: bounds how much one failed stream has to redo.
const MAX_MAPS_PER_FETCH: usize = 16;
/// Chunks queued for the disk writer of a segment that does not fit in memory.
const WRITE_AHEAD: usize = 4;

/// Where a finished map attempt's output can be fetched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapOutputLocation {
    /// The map attempt.
    pub map_attempt: MapAttemptId,
    /// The shuffle server of the node that ran it.
    pub host: SocketAddr,
}

/// A map output that could not be fetched after the configured number of tries: the caller
/// reports it to the JobTracker, which re-runs the map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchFailure {
    /// The map attempt whose output is lost (or refused).
    pub map_attempt: MapAttemptId,
    /// The shuffle server it was fetched from.
    pub host: SocketAddr,
    /// The last failure's reason.
    pub reason: String,
    /// Fetches tried.
    pub attempts: u32,
}

/// One fetched segment, in memory or in a file of its own, exactly as the map wrote it.
#[derive(Debug)]
pub enum FetchedSegment {
    /// Held in memory.
    Memory {
        /// The map attempt it came from.
        map_attempt: MapAttemptId,
        /// The segment's bytes (blocks with headers).
        bytes: Vec<u8>,
        /// Uncompressed record bytes.
        raw_len: u64,
        /// Records in it.
        records: u64,
    },
    /// Written to local disk because the memory budget was used up.
    Disk {
        /// The map attempt it came from.
        map_attempt: MapAttemptId,
        /// The file holding only this segment.
        path: PathBuf,
        /// The segment's place in that file (offset 0).
        entry: SegmentIndexEntry,
    },
}

impl FetchedSegment {
    /// The map attempt the segment came from.
    pub fn map_attempt(&self) -> MapAttemptId {
        match self {
            FetchedSegment::Memory { map_attempt, .. }
            | FetchedSegment::Disk { map_attempt, .. } => *map_attempt,
        }
    }

    /// Bytes of the segment as stored (compressed).
    pub fn size(&self) -> u64 {
        match self {
            FetchedSegment::Memory { bytes, .. } => bytes.len() as u64,
            FetchedSegment::Disk { entry, .. } => entry.compressed_len,
        }
    }

    /// Records in the segment.
    pub fn records(&self) -> u64 {
        match self {
            FetchedSegment::Memory { records, .. } => *records,
            FetchedSegment::Disk { entry, .. } => entry.records,
        }
    }

    /// Hands the segment to a reduce task's shuffle buffer (the same calls the local runner
    /// makes: in-memory segments as memory segments, on-disk ones as file segments).
    pub fn add_to(self, buffer: &mut ShuffleBuffer) -> EngineResult<()> {
        match self {
            FetchedSegment::Memory { bytes, records, .. } => {
                buffer.add_memory_segment(bytes, records)
            }
            FetchedSegment::Disk { path, entry, .. } => buffer.add_file_segment(&path, &entry),
        }
    }
}

/// Figures of one [`ShuffleFetcher::fetch`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FetchStats {
    /// Segment bytes received.
    pub bytes: u64,
    /// Segments kept in memory.
    pub memory_segments: u64,
    /// Segments written to disk.
    pub disk_segments: u64,
    /// Bytes written to disk.
    pub disk_bytes: u64,
    /// Fetches of single map outputs that failed (retried or reported).
    pub failed_fetches: u64,
    /// Most fetch requests in flight at once (bounded by `parallel_copies`).
    pub peak_parallel_fetches: usize,
}

/// The result of fetching one partition.
#[derive(Debug, Default)]
pub struct ShuffleOutcome {
    /// Segments fetched, one per map output that succeeded (empty segments included).
    pub segments: Vec<FetchedSegment>,
    /// Map outputs that failed `max_fetch_failures` times or were refused.
    pub failures: Vec<FetchFailure>,
    /// Figures of the fetch.
    pub stats: FetchStats,
}

impl ShuffleOutcome {
    /// Moves every fetched segment into `buffer` for the reduce task's merge; the failures stay.
    pub fn drain_into(&mut self, buffer: &mut ShuffleBuffer) -> EngineResult<()> {
        for segment in self.segments.drain(..) {
            segment.add_to(buffer)?;
        }
        Ok(())
    }
}

/// The job a fetch is for: its id and the secret that signs its requests.
#[derive(Clone, Debug)]
pub struct ShuffleJob {
    /// The job id, as registered with the shuffle servers.
    pub job_id: String,
    /// The job's shuffle secret.
    pub secret: JobSecret,
}

/// Bytes of fetched segments held in memory, shared by one fetch's copiers.
struct MemoryBudget {
    limit: u64,
    used: Mutex<u64>,
}

impl MemoryBudget {
    fn try_reserve(&self, n: u64) -> bool {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        if *used + n <= self.limit {
            *used += n;
            true
        } else {
            false
        }
    }
    fn release(&self, n: u64) {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        *used = used.saturating_sub(n);
    }
}

/// State shared by the copiers of one partition fetch.
struct FetchContext {
    job: ShuffleJob,
    partition: u32,
    spill_dir: PathBuf,
    budget: MemoryBudget,
    copies: Semaphore,
    in_flight: AtomicUsize,
    peak: AtomicUsize,
    failed_fetches: AtomicU64,
    next_file: AtomicU64,
}

/// A map output that failed one fetch.
struct FailedMap {
    map_attempt: MapAttemptId,
    reason: String,
    /// Retrying cannot help (the request was refused).
    permanent: bool,
}

/// What one fetch request to one host gave.
#[derive(Default)]
struct FetchRound {
    fetched: Vec<FetchedSegment>,
    failed: Vec<FailedMap>,
}

/// A failure while receiving one segment.
enum ReceiveError {
    /// The transfer broke: the map output is retried.
    Transfer(String),
    /// A local failure (disk): the whole fetch fails.
    Local(ShuffleError),
}

/// Fetches reduce partitions from shuffle servers over QUIC.
pub struct ShuffleFetcher {
    endpoints: Vec<Endpoint>,
    settings: ShuffleSettings,
    conns: Mutex<HashMap<(SocketAddr, usize), Connection>>,
}

impl ShuffleFetcher {
    /// A fetcher with `settings.endpoints` client endpoints on `local_ip`, presenting
    /// `identity`. Must be called inside a tokio runtime.
    pub fn new(
        identity: &TlsIdentity,
        local_ip: IpAddr,
        settings: ShuffleSettings,
    ) -> Result<Arc<Self>, ShuffleError> {
        let endpoints = (0..settings.endpoints.max(1))
            .map(|_| quic::client_endpoint(local_ip, identity))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Arc::new(ShuffleFetcher {
            endpoints,
            settings,
            conns: Mutex::new(HashMap::new()),
        }))
    }

    /// The settings in use.
    pub fn settings(&self) -> &ShuffleSettings {
        &self.settings
    }

    /// Fetches partition `partition` of every map output in `maps` for `job`. Segments that do
    /// not fit the memory budget are written to files in `spill_dir` (created if missing).
    /// Map outputs that keep failing come back in [`ShuffleOutcome::failures`]; an `Err` means
    /// a local failure (spill directory, disk) that no retry elsewhere would fix.
    pub async fn fetch(
        self: &Arc<Self>,
        job: &ShuffleJob,
        partition: u32,
        maps: &[MapOutputLocation],
        spill_dir: &Path,
    ) -> Result<ShuffleOutcome, ShuffleError> {
        let dir = spill_dir.to_path_buf();
        tokio::task::spawn_blocking(move || std::fs::create_dir_all(&dir).map_err(|e| (dir, e)))
            .await
            .map_err(|e| {
                ShuffleError::io("creating the shuffle spill dir", std::io::Error::other(e))
            })?
            .map_err(|(dir, e)| ShuffleError::io(format!("creating {}", dir.display()), e))?;
        let ctx = Arc::new(FetchContext {
            job: job.clone(),
            partition,
            spill_dir: spill_dir.to_path_buf(),
            budget: MemoryBudget {
                limit: self.settings.memory_budget as u64,
                used: Mutex::new(0),
            },
            copies: Semaphore::new(self.settings.parallel_copies.max(1)),
            in_flight: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            failed_fetches: AtomicU64::new(0),
            next_file: AtomicU64::new(0),
        });
        let mut by_host: BTreeMap<SocketAddr, Vec<MapAttemptId>> = BTreeMap::new();
        for m in maps {
            let list = by_host.entry(m.host).or_default();
            if !list.contains(&m.map_attempt) {
                list.push(m.map_attempt);
            }
        }
        // Enough requests per host that every copier has work even when all maps ran on one
        // node, few enough that each request amortises its round trip over several maps.
        let copies = self.settings.parallel_copies.max(1);
        let mut tasks = JoinSet::new();
        let mut batch_no = 0usize;
        for (host, list) in by_host {
            let per_batch = (list.len() / copies).clamp(1, MAX_MAPS_PER_FETCH);
            for batch in list.chunks(per_batch) {
                let slot = batch_no % self.endpoints.len();
                batch_no += 1;
                tasks.spawn(fetch_with_retries(
                    self.clone(),
                    ctx.clone(),
                    host,
                    slot,
                    batch.to_vec(),
                ));
            }
        }
        let mut outcome = ShuffleOutcome::default();
        let mut first_error = None;
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(Ok((segments, failures))) => {
                    outcome.segments.extend(segments);
                    outcome.failures.extend(failures);
                }
                Ok(Err(e)) => {
                    // Stop the other copiers: the fetch has failed as a whole.
                    tasks.abort_all();
                    first_error.get_or_insert(e);
                }
                Err(e) if e.is_cancelled() => {}
                Err(e) => {
                    tasks.abort_all();
                    first_error.get_or_insert(ShuffleError::io(
                        "shuffle copier",
                        std::io::Error::other(e.to_string()),
                    ));
                }
            }
        }
        if let Some(e) = first_error {
            remove_spill_files(outcome.segments).await;
            return Err(e);
        }
        outcome.segments.sort_by_key(FetchedSegment::map_attempt);
        outcome.failures.sort_by_key(|f| f.map_attempt);
        let mut stats = FetchStats {
            failed_fetches: ctx.failed_fetches.load(Ordering::Relaxed),
            peak_parallel_fetches: ctx.peak.load(Ordering::Relaxed),
            ..FetchStats::default()
        };
        for s in &outcome.segments {
            stats.bytes += s.size();
            match s {
                FetchedSegment::Memory { .. } => stats.memory_segments += 1,
                FetchedSegment::Disk { entry, .. } => {
                    stats.disk_segments += 1;
                    stats.disk_bytes += entry.compressed_len;
                }
            }
        }
        outcome.stats = stats;
        Ok(outcome)
    }

    /// A live connection to `host` on endpoint `slot`, reusing the cached one.
    async fn connection(&self, host: SocketAddr, slot: usize) -> Result<Connection, String> {
        let key = (host, slot);
        let cached = self.conns.lock().ok().and_then(|m| m.get(&key).cloned());
        if let Some(c) = cached {
            if c.close_reason().is_none() {
                return Ok(c);
            }
        }
        let endpoint = &self.endpoints[slot % self.endpoints.len()];
        let connecting = endpoint
            .connect(host, CLUSTER_SERVER_NAME)
            .map_err(|e| format!("cannot connect to {host}: {e}"))?;
        let conn = match tokio::time::timeout(self.settings.connect_timeout, connecting).await {
            Err(_) => {
                return Err(format!(
                    "{host} did not answer within {:.1}s",
                    self.settings.connect_timeout.as_secs_f64()
                ))
            }
            Ok(Err(e)) => return Err(format!("cannot connect to {host}: {e}")),
            Ok(Ok(c)) => c,
        };
        if let Ok(mut m) = self.conns.lock() {
            m.insert(key, conn.clone());
        }
        Ok(conn)
    }

    fn forget(&self, host: SocketAddr, slot: usize) {
        if let Ok(mut m) = self.conns.lock() {
            m.remove(&(host, slot));
        }
    }

    /// Closes every connection and endpoint (in-flight fetches fail).
    pub fn close(&self) {
        for e in &self.endpoints {
            e.close(0u32.into(), b"fetcher closed");
        }
    }
}

/// Fetches `maps` from `host`, retrying the failed ones with backoff until each succeeds or has
/// failed `max_fetch_failures` times.
async fn fetch_with_retries(
    fetcher: Arc<ShuffleFetcher>,
    ctx: Arc<FetchContext>,
    host: SocketAddr,
    slot: usize,
    maps: Vec<MapAttemptId>,
) -> Result<(Vec<FetchedSegment>, Vec<FetchFailure>), ShuffleError> {
    let settings = &fetcher.settings;
    let mut pending = maps;
    let mut failures_of: HashMap<MapAttemptId, u32> = HashMap::new();
    let mut segments = Vec::new();
    let mut failures = Vec::new();
    while !pending.is_empty() {
        let round = {
            let _permit = ctx
                .copies
                .acquire()
                .await
                .map_err(|_| ShuffleError::Config("shuffle copier pool closed".into()))?;
            let now = ctx.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            ctx.peak.fetch_max(now, Ordering::SeqCst);
            let round = fetch_once(&fetcher, &ctx, host, slot, &pending).await;
            ctx.in_flight.fetch_sub(1, Ordering::SeqCst);
            round?
        };
        segments.extend(round.fetched);
        let mut retry = Vec::new();
        let mut worst = 0u32;
        for f in round.failed {
            ctx.failed_fetches.fetch_add(1, Ordering::Relaxed);
            let count = failures_of.entry(f.map_attempt).or_insert(0);
            *count += 1;
            tracing::debug!(map = %f.map_attempt, %host, tries = *count, reason = %f.reason, "shuffle fetch failed");
            if f.permanent || *count >= settings.max_fetch_failures {
                tracing::warn!(map = %f.map_attempt, %host, reason = %f.reason, "map output could not be fetched");
                failures.push(FetchFailure {
                    map_attempt: f.map_attempt,
                    host,
                    reason: f.reason,
                    attempts: *count,
                });
            } else {
                worst = worst.max(*count);
                retry.push(f.map_attempt);
            }
        }
        if !retry.is_empty() {
            tokio::time::sleep(settings.retry.backoff(worst + 1)).await;
        }
        pending = retry;
    }
    Ok((segments, failures))
}

/// One request to `host` for `maps`; the maps that were not delivered come back as failed.
async fn fetch_once(
    fetcher: &ShuffleFetcher,
    ctx: &FetchContext,
    host: SocketAddr,
    slot: usize,
    maps: &[MapAttemptId],
) -> Result<FetchRound, ShuffleError> {
    let mut round = FetchRound::default();
    let fail_rest = |round: &mut FetchRound, from: usize, reason: &str, permanent: bool| {
        for &m in &maps[from..] {
            round.failed.push(FailedMap {
                map_attempt: m,
                reason: reason.to_string(),
                permanent,
            });
        }
    };
    let conn = match fetcher.connection(host, slot).await {
        Ok(c) => c,
        Err(reason) => {
            fail_rest(&mut round, 0, &reason, false);
            return Ok(round);
        }
    };
    let request = ShuffleRequest::Fetch(FetchRequest {
        job_id: ctx.job.job_id.clone(),
        partition: ctx.partition,
        map_attempts: maps.to_vec(),
        mac: ctx.job.secret.sign(&ctx.job.job_id, ctx.partition, maps),
    });
    let timeout = fetcher.settings.read_timeout;
    let opened = async {
        let (mut send, recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
        frame::write_frame(&mut send, &request)
            .await
            .map_err(|e| e.to_string())?;
        let _ = send.finish();
        Ok::<_, String>(recv)
    };
    let mut recv = match tokio::time::timeout(timeout, opened).await {
        Ok(Ok(r)) => r,
        Ok(Err(reason)) => {
            fetcher.forget(host, slot);
            fail_rest(
                &mut round,
                0,
                &format!("request to {host} failed: {reason}"),
                false,
            );
            return Ok(round);
        }
        Err(_) => {
            fail_rest(
                &mut round,
                0,
                &format!("request to {host} timed out"),
                false,
            );
            return Ok(round);
        }
    };
    for (i, &expected) in maps.iter().enumerate() {
        let reply = match tokio::time::timeout(
            timeout,
            frame::read_frame::<_, FetchReply>(&mut recv),
        )
        .await
        {
            Ok(Ok(Some(r))) => r,
            Ok(Ok(None)) => {
                fail_rest(
                    &mut round,
                    i,
                    &format!("{host} ended the reply early"),
                    false,
                );
                break;
            }
            Ok(Err(e)) => {
                if conn.close_reason().is_some() {
                    fetcher.forget(host, slot);
                }
                fail_rest(&mut round, i, &format!("reading from {host}: {e}"), false);
                break;
            }
            Err(_) => {
                fail_rest(
                    &mut round,
                    i,
                    &format!("{host} sent nothing for {:.1}s", timeout.as_secs_f64()),
                    false,
                );
                break;
            }
        };
        match reply {
            FetchReply::Refused { reason } => {
                fail_rest(&mut round, i, &format!("refused by {host}: {reason}"), true);
                break;
            }
            FetchReply::MapOutputMissing {
                map_attempt,
                reason,
            } if map_attempt == expected => {
                round.failed.push(FailedMap {
                    map_attempt,
                    reason: format!("{host} cannot serve it: {reason}"),
                    permanent: false,
                });
            }
            FetchReply::Segment(header) if header.map_attempt == expected => {
                match receive_segment(&mut recv, ctx, &header, timeout).await {
                    Ok(segment) => round.fetched.push(segment),
                    Err(ReceiveError::Local(e)) => {
                        remove_spill_files(std::mem::take(&mut round.fetched)).await;
                        return Err(e);
                    }
                    Err(ReceiveError::Transfer(reason)) => {
                        if conn.close_reason().is_some() {
                            fetcher.forget(host, slot);
                        }
                        fail_rest(
                            &mut round,
                            i,
                            &format!("receiving from {host}: {reason}"),
                            false,
                        );
                        break;
                    }
                }
            }
            other => {
                fail_rest(
                    &mut round,
                    i,
                    &format!("{host} answered out of order: {other:?}"),
                    false,
                );
                break;
            }
        }
    }
    Ok(round)
}

/// Where the bytes of a segment being received go.
enum Sink {
    Memory(Vec<u8>),
    Disk {
        path: PathBuf,
        chunks: mpsc::Sender<Vec<u8>>,
        writer: tokio::task::JoinHandle<std::io::Result<()>>,
    },
}

/// Receives the packets of one segment into memory (if the budget allows) or a file.
async fn receive_segment(
    recv: &mut RecvStream,
    ctx: &FetchContext,
    header: &SegmentHeader,
    timeout: std::time::Duration,
) -> Result<FetchedSegment, ReceiveError> {
    let len = header.compressed_len;
    let in_memory = usize::try_from(len).is_ok() && ctx.budget.try_reserve(len);
    let mut sink = if in_memory {
        Sink::Memory(Vec::with_capacity(len as usize))
    } else {
        let n = ctx.next_file.fetch_add(1, Ordering::Relaxed);
        let path = ctx.spill_dir.join(format!(
            "fetched_{}_p{:05}_{n:06}.seg",
            header.map_attempt, ctx.partition
        ));
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(WRITE_AHEAD);
        let file_path = path.clone();
        let writer = tokio::task::spawn_blocking(move || {
            use std::io::Write;
            let file = std::fs::File::create(&file_path)?;
            let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
            while let Some(chunk) = rx.blocking_recv() {
                out.write_all(&chunk)?;
            }
            out.flush()
        });
        Sink::Disk {
            path,
            chunks: tx,
            writer,
        }
    };
    let received = receive_packets(recv, &mut sink, len, timeout).await;
    match (received, sink) {
        (Ok(()), Sink::Memory(bytes)) => Ok(FetchedSegment::Memory {
            map_attempt: header.map_attempt,
            bytes,
            raw_len: header.raw_len,
            records: header.records,
        }),
        (Err(e), Sink::Memory(_)) => {
            ctx.budget.release(len);
            Err(e)
        }
        (
            received,
            Sink::Disk {
                path,
                chunks,
                writer,
            },
        ) => {
            drop(chunks);
            let written = writer.await;
            let result = match (received, written) {
                (Err(e), _) => Err(e),
                (Ok(()), Ok(Ok(()))) => Ok(()),
                (Ok(()), Ok(Err(e))) => Err(ReceiveError::Local(ShuffleError::io(
                    format!("writing fetched segment {}", path.display()),
                    e,
                ))),
                (Ok(()), Err(e)) => Err(ReceiveError::Local(ShuffleError::io(
                    format!("writing fetched segment {}", path.display()),
                    std::io::Error::other(e.to_string()),
                ))),
            };
            match result {
                Ok(()) => Ok(FetchedSegment::Disk {
                    map_attempt: header.map_attempt,
                    path,
                    entry: SegmentIndexEntry {
                        offset: 0,
                        raw_len: header.raw_len,
                        compressed_len: len,
                        records: header.records,
                    },
                }),
                Err(e) => {
                    let _ = tokio::task::spawn_blocking(move || std::fs::remove_file(path)).await;
                    Err(e)
                }
            }
        }
    }
}

/// Reads packets until the one flagged `last`, checking sequence, offsets and total length.
async fn receive_packets(
    recv: &mut RecvStream,
    sink: &mut Sink,
    len: u64,
    timeout: std::time::Duration,
) -> Result<(), ReceiveError> {
    let mut packet = Packet::default();
    let mut got = 0u64;
    let mut seqno = 0u64;
    loop {
        match tokio::time::timeout(timeout, packet::read_packet(recv, &mut packet)).await {
            Err(_) => {
                return Err(ReceiveError::Transfer(format!(
                    "no data for {:.1}s",
                    timeout.as_secs_f64()
                )))
            }
            Ok(Err(e)) => return Err(ReceiveError::Transfer(e.to_string())),
            Ok(Ok(false)) => {
                return Err(ReceiveError::Transfer(format!(
                    "stream ended after {got} of {len} bytes"
                )))
            }
            Ok(Ok(true)) => {}
        }
        let Some(h) = packet.header else {
            return Err(ReceiveError::Transfer("packet without header".into()));
        };
        if h.seqno != seqno || h.offset != got || got + u64::from(h.len) > len {
            return Err(ReceiveError::Transfer(format!(
                "packet {} at offset {} does not continue the segment (expected packet {seqno} at {got} of {len})",
                h.seqno, h.offset
            )));
        }
        got += u64::from(h.len);
        seqno += 1;
        match sink {
            Sink::Memory(bytes) => bytes.extend_from_slice(&packet.payload),
            Sink::Disk { chunks, .. } => {
                let chunk = std::mem::take(&mut packet.payload);
                if chunks.send(chunk).await.is_err() {
                    // The writer stopped: its error is reported when it is joined.
                    return Ok(());
                }
            }
        }
        if h.last {
            break;
        }
    }
    if got != len {
        return Err(ReceiveError::Transfer(format!(
            "segment ended after {got} of {len} bytes"
        )));
    }
    Ok(())
}

/// Deletes the files of on-disk segments that will not be used.
async fn remove_spill_files(segments: Vec<FetchedSegment>) {
    let paths: Vec<PathBuf> = segments
        .into_iter()
        .filter_map(|s| match s {
            FetchedSegment::Disk { path, .. } => Some(path),
            FetchedSegment::Memory { .. } => None,
        })
        .collect();
    if !paths.is_empty() {
        let _ = tokio::task::spawn_blocking(move || {
            for p in paths {
                let _ = std::fs::remove_file(p);
            }
        })
        .await;
    }
}
