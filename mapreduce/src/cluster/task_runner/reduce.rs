//! Reduce attempts on the cluster: follow the map completion events, fetch each map's segment of
//! this partition over the QUIC shuffle into the [`ShuffleBuffer`], then merge and reduce into
//! the attempt's output file on the DFS.
//!
//! The loop runs on the work thread: JobTracker calls and fetches run on the network runtime,
//! while adding segments to the shuffle buffer (which may merge them to local disk) happens on
//! the work thread between them. At most one fetch per shuffle host runs at a time, and at most
//! [`MAX_HOST_FETCHES`] in all (each copying up to `parallel-copies` outputs of its host at
//! once), so a host that stopped answering holds up only its own outputs. Each fetch gets an
//! equal share of the shuffle memory budget, so fetched segments never hold more than that
//! budget on top of what the shuffle buffer keeps.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::formats::OutputFormat;
use crate::jobtracker::{AttemptId, TaskId};
use crate::local::write_output_file;
use crate::shuffle::{
    FetchedSegment, MapAttemptId, MapOutputLocation, ShuffleError, ShuffleFetcher, ShuffleJob,
    ShuffleOutcome, ShuffleSettings,
};
use crate::task::{run_reduce_task, EngineError, ReduceTaskSpec, ShuffleBuffer, TaskSettings};

use super::map::job_secret;
use super::map_events::MapEventBook;
use super::{AttemptContext, Finished, TaskRunnerError};

/// How often the reducer asks for map completion events when nothing new came.
pub const EVENT_POLL_INTERVAL: Duration = Duration::from_millis(300);
/// How soon it asks again right after an answer with news (more maps tend to finish together).
const EVENT_POLL_AFTER_NEWS: Duration = Duration::from_millis(50);
/// Most fetches (one per shuffle host) running at once.
pub const MAX_HOST_FETCHES: usize = 4;

fn attempt_of(map: MapAttemptId) -> AttemptId {
    AttemptId {
        task: TaskId::map(map.map),
        number: map.attempt,
    }
}

fn map_attempt_of(attempt: AttemptId) -> MapAttemptId {
    MapAttemptId::new(attempt.task.index, attempt.number)
}

/// Runs a reduce attempt: shuffle, merge, reduce into `attempt_dir/output_file`.
pub fn run_reduce(ctx: &AttemptContext) -> Result<Finished, TaskRunnerError> {
    let a = &ctx.assignment;
    let job = ShuffleJob {
        job_id: a.job_id.clone(),
        secret: job_secret(&a.shuffle_secret)?,
    };
    let settings = TaskSettings::from_conf(&ctx.conf)?;
    let shuffle_settings = ShuffleSettings::from_conf(&ctx.conf)?;
    let scratch = ctx.scratch_dir("reduce")?;
    let merge_dir = scratch.join("merge");
    super::fresh_dir(&merge_dir)?;
    let spec = ReduceTaskSpec {
        job: ctx.job.clone(),
        conf: ctx.conf.clone(),
        settings,
        scratch: merge_dir,
        cancel: ctx.cancel.clone(),
    };
    let mut buffer = spec.shuffle_buffer()?;
    if let Some(counter) = ctx.progress.records_read_counter() {
        buffer.publish_records_read(counter);
    }
    let fetch_busy = shuffle(
        ctx,
        &job,
        shuffle_settings,
        &scratch.join("fetched"),
        &mut buffer,
    )?;
    ctx.progress.set_shuffle_done(buffer.records());
    let path = ctx.output_path()?;
    let fs = ctx.filesystems.for_path(&path)?;
    let format =
        OutputFormat::from_conf(&ctx.conf).map_err(|e| EngineError::Config(e.to_string()))?;
    let mut counters = write_output_file(fs.as_ref(), &format, &path, |writer| {
        run_reduce_task(&spec, buffer, writer)
    })?;
    counters.incr(
        SHUFFLE_GROUP,
        FETCH_BUSY_MILLIS,
        fetch_busy.as_millis() as i64,
    );
    // Fetched and merged segments are consumed; the container dir goes too, but not at once.
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(Finished::Output { counters })
}

/// Sheaf's counter group for the shuffle's own figures (Hadoop has none for its speed).
pub const SHUFFLE_GROUP: &str = "Sheaf Shuffle";
/// Milliseconds a reducer had at least one fetch in flight: shuffle bytes over this time is the
/// rate its fetches achieved, whatever time it spent waiting for maps to finish.
pub const FETCH_BUSY_MILLIS: &str = "FETCH_BUSY_MILLIS";

/// Fetches this partition of every map's output into `buffer`; returns how long fetches were in
/// flight.
fn shuffle(
    ctx: &AttemptContext,
    job: &ShuffleJob,
    mut settings: ShuffleSettings,
    spill_dir: &Path,
    buffer: &mut ShuffleBuffer,
) -> Result<Duration, TaskRunnerError> {
    settings.memory_budget = (settings.memory_budget / MAX_HOST_FETCHES).max(1);
    let fetcher = ctx
        .handle
        .block_on(async { ShuffleFetcher::new(&ctx.identity, ctx.env.host, settings) })?;
    let mut shuffle = Shuffle {
        ctx,
        job,
        fetcher: &fetcher,
        spill_dir,
        book: MapEventBook::new(ctx.assignment.num_maps),
        started: Instant::now(),
        next_event: 0,
        next_poll: Instant::now(),
        in_flight: Vec::new(),
        busy_since: None,
        busy: Duration::ZERO,
    };
    let result = shuffle.run(buffer).map(|()| {
        shuffle.account_busy();
        shuffle.busy
    });
    for fetch in shuffle.in_flight.drain(..) {
        fetch.handle.abort();
    }
    fetcher.close();
    result
}

/// A fetch running on the network runtime.
struct InFlight {
    handle: tokio::task::JoinHandle<Result<ShuffleOutcome, ShuffleError>>,
    /// The shuffle host it fetches from.
    host: SocketAddr,
    /// The map attempts it was asked for.
    asked: Vec<AttemptId>,
}

struct Shuffle<'a> {
    ctx: &'a AttemptContext,
    job: &'a ShuffleJob,
    fetcher: &'a std::sync::Arc<ShuffleFetcher>,
    spill_dir: &'a Path,
    book: MapEventBook,
    started: Instant,
    next_event: u32,
    next_poll: Instant,
    in_flight: Vec<InFlight>,
    /// Since when fetches have been in flight without a break.
    busy_since: Option<Instant>,
    /// Time with fetches in flight before `busy_since`.
    busy: Duration,
}

impl Shuffle<'_> {
    /// Opens or closes a stretch of time with fetches in flight.
    fn account_busy(&mut self) {
        match (self.in_flight.is_empty(), self.busy_since) {
            (false, None) => self.busy_since = Some(Instant::now()),
            (true, Some(since)) => {
                self.busy += since.elapsed();
                self.busy_since = None;
            }
            _ => {}
        }
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Starts a fetch for each host with outputs ready and no fetch running, up to
    /// [`MAX_HOST_FETCHES`] in all.
    fn start_fetches(&mut self, partition: u32) {
        let free = MAX_HOST_FETCHES.saturating_sub(self.in_flight.len());
        if free == 0 {
            return;
        }
        let busy: HashSet<SocketAddr> = self.in_flight.iter().map(|f| f.host).collect();
        let mut chosen: HashSet<SocketAddr> = HashSet::new();
        let ready = self.book.start_fetches_from(self.now_ms(), |host| {
            if busy.contains(&host) {
                return false;
            }
            if chosen.contains(&host) {
                return true;
            }
            chosen.len() < free && chosen.insert(host)
        });
        let mut by_host: BTreeMap<SocketAddr, Vec<AttemptId>> = BTreeMap::new();
        for (attempt, host) in ready {
            by_host.entry(host).or_default().push(attempt);
        }
        for (host, asked) in by_host {
            let locations: Vec<MapOutputLocation> = asked
                .iter()
                .map(|a| MapOutputLocation {
                    map_attempt: map_attempt_of(*a),
                    host,
                })
                .collect();
            let fetcher = self.fetcher.clone();
            let job = self.job.clone();
            let dir = self.spill_dir.to_path_buf();
            let handle = self
                .ctx
                .handle
                .spawn(async move { fetcher.fetch(&job, partition, &locations, &dir).await });
            self.in_flight.push(InFlight {
                handle,
                host,
                asked,
            });
        }
    }

    fn run(&mut self, buffer: &mut ShuffleBuffer) -> Result<(), TaskRunnerError> {
        let partition = self.ctx.assignment.attempt.task.index;
        while !self.book.all_fetched() {
            if self.ctx.cancel.load(std::sync::atomic::Ordering::Relaxed) {
                return Err(TaskRunnerError::Stopped);
            }
            // Waiting for maps and fetching are the reducer's work: this loop turns at least
            // once per event poll, so an attempt stuck elsewhere stops marking.
            self.ctx.progress.mark_active();
            if Instant::now() >= self.next_poll {
                self.poll_events()?;
            }
            self.start_fetches(partition);
            self.account_busy();
            if self.in_flight.is_empty() {
                // Nothing to fetch: sleep until the next poll or retry, whichever is first.
                let mut wake = self.next_poll;
                if let Some(retry) = self.book.next_retry_ms() {
                    wake = wake.min(self.started + Duration::from_millis(retry));
                }
                let pause = wake.saturating_duration_since(Instant::now());
                std::thread::sleep(pause.max(Duration::from_millis(1)));
                continue;
            }
            let deadline = tokio::time::Instant::from_std(self.next_poll);
            let handles = self.in_flight.iter_mut().map(|f| &mut f.handle);
            let finished = self.ctx.handle.block_on(async {
                let (joined, index, _) =
                    tokio::time::timeout_at(deadline, futures::future::select_all(handles))
                        .await
                        .ok()?;
                Some((joined, index))
            });
            let Some((joined, index)) = finished else {
                continue; // time to poll for events; the fetches keep running
            };
            let fetch = self.in_flight.swap_remove(index);
            self.account_busy();
            let outcome = joined
                .map_err(|e| TaskRunnerError::Panic(format!("shuffle fetch task: {e}")))??;
            self.absorb(outcome, fetch.asked, buffer)?;
        }
        tracing::info!(maps = self.book.fetched_count(), "shuffle complete");
        Ok(())
    }

    /// Asks for new map completion events and files them in the book.
    fn poll_events(&mut self) -> Result<(), TaskRunnerError> {
        let page = self
            .ctx
            .handle
            .block_on(self.ctx.umbilical.map_events(self.next_event))?;
        self.next_event = self.next_event.max(page.next);
        let mut news = false;
        for event in page.events {
            if !event.available {
                self.book.obsolete(event.attempt);
                continue;
            }
            match event.location.shuffle_address.parse::<SocketAddr>() {
                Ok(host) => news |= self.book.offer(event.attempt, host),
                Err(_) => {
                    let reason = format!(
                        "map output location {:?} is not an IP:PORT address",
                        event.location.shuffle_address
                    );
                    self.report_fetch_failure(event.attempt, reason)?;
                }
            }
        }
        self.abandon_unwanted_fetches();
        self.next_poll = Instant::now()
            + if news {
                EVENT_POLL_AFTER_NEWS
            } else {
                EVENT_POLL_INTERVAL
            };
        Ok(())
    }

    /// Cancels the running fetches asked for a map output that an event withdrew (its node was
    /// lost) or replaced (a later attempt of the map succeeded). A fetch from a dead host only
    /// ends with its connect and read timeouts, tens of seconds after the JobTracker said where
    /// the output is now; the other outputs asked in the same fetch are fetched again.
    fn abandon_unwanted_fetches(&mut self) {
        let mut i = 0;
        while i < self.in_flight.len() {
            if self.in_flight[i].asked.iter().all(|a| self.book.wanted(*a)) {
                i += 1;
                continue;
            }
            let fetch = self.in_flight.swap_remove(i);
            fetch.handle.abort();
            tracing::info!(host = %fetch.host, maps = fetch.asked.len(),
                "fetch abandoned: a map output it asked for was withdrawn or replaced");
            for attempt in fetch.asked {
                self.book.fetch_abandoned(attempt);
            }
        }
    }

    /// Files what one fetch brought: segments into the buffer, failures to the JobTracker.
    fn absorb(
        &mut self,
        outcome: ShuffleOutcome,
        asked: Vec<AttemptId>,
        buffer: &mut ShuffleBuffer,
    ) -> Result<(), TaskRunnerError> {
        let mut answered = HashSet::new();
        tracing::debug!(
            bytes = outcome.stats.bytes,
            segments = outcome.segments.len(),
            failures = outcome.failures.len(),
            "fetch done"
        );
        for segment in outcome.segments {
            let attempt = attempt_of(segment.map_attempt());
            answered.insert(attempt);
            if self.book.fetched(attempt) {
                segment.add_to(buffer)?;
                // Adding may have merged segments to disk for a while.
                self.ctx.progress.mark_active();
            } else if let FetchedSegment::Disk { path, .. } = segment {
                let _ = std::fs::remove_file(path);
            }
        }
        let now = self.now_ms();
        for failure in outcome.failures {
            let attempt = attempt_of(failure.map_attempt);
            answered.insert(attempt);
            if self.book.fetch_failed(attempt, now) {
                let reason = format!(
                    "fetching from {} failed {} times: {}",
                    failure.host, failure.attempts, failure.reason
                );
                self.report_fetch_failure(attempt, reason)?;
            }
        }
        for attempt in asked {
            if !answered.contains(&attempt) && self.book.fetch_failed(attempt, now) {
                self.report_fetch_failure(attempt, "the shuffle returned nothing for it".into())?;
            }
        }
        self.ctx
            .progress
            .set_fetched_maps(self.book.fetched_count());
        Ok(())
    }

    fn report_fetch_failure(&self, map: AttemptId, reason: String) -> Result<(), TaskRunnerError> {
        tracing::warn!(%map, %reason, "map output fetch failed");
        let proceed = self
            .ctx
            .handle
            .block_on(self.ctx.umbilical.fetch_failed(map, reason))?;
        if proceed {
            Ok(())
        } else {
            Err(TaskRunnerError::Stopped)
        }
    }
}
