//! Reduce attempts on the cluster: follow the map completion events, fetch each map's segment of
//! this partition over the QUIC shuffle into the [`ShuffleBuffer`], then merge and reduce into
//! the attempt's output file on the DFS.
//!
//! The loop runs on the work thread: JobTracker calls and fetches run on the network runtime,
//! while adding segments to the shuffle buffer (which may merge them to local disk) happens on
//! the work thread between them. One fetch (of every output available at the time, the fetcher
//! copying `parallel-copies` of them at once) runs at a time, so fetched segments never hold
//! more than the shuffle memory budget on top of what the shuffle buffer keeps.

use std::collections::HashSet;
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
    shuffle(
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
    let counters = write_output_file(fs.as_ref(), &format, &path, |writer| {
        run_reduce_task(&spec, buffer, writer)
    })?;
    // Fetched and merged segments are consumed; the container dir goes too, but not at once.
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(Finished::Output { counters })
}

/// Fetches this partition of every map's output into `buffer`.
fn shuffle(
    ctx: &AttemptContext,
    job: &ShuffleJob,
    settings: ShuffleSettings,
    spill_dir: &Path,
    buffer: &mut ShuffleBuffer,
) -> Result<(), TaskRunnerError> {
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
        in_flight: None,
    };
    let result = shuffle.run(buffer);
    if let Some((handle, _)) = shuffle.in_flight.take() {
        handle.abort();
    }
    fetcher.close();
    result
}

/// A fetch running on the network runtime, with the attempts it was asked for.
type InFlight = (
    tokio::task::JoinHandle<Result<ShuffleOutcome, ShuffleError>>,
    Vec<AttemptId>,
);

struct Shuffle<'a> {
    ctx: &'a AttemptContext,
    job: &'a ShuffleJob,
    fetcher: &'a std::sync::Arc<ShuffleFetcher>,
    spill_dir: &'a Path,
    book: MapEventBook,
    started: Instant,
    next_event: u32,
    next_poll: Instant,
    in_flight: Option<InFlight>,
}

impl Shuffle<'_> {
    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn run(&mut self, buffer: &mut ShuffleBuffer) -> Result<(), TaskRunnerError> {
        let partition = self.ctx.assignment.attempt.task.index;
        while !self.book.all_fetched() {
            if self.ctx.cancel.load(std::sync::atomic::Ordering::Relaxed) {
                return Err(TaskRunnerError::Stopped);
            }
            if Instant::now() >= self.next_poll {
                self.poll_events()?;
            }
            if self.in_flight.is_none() {
                let maps = self.book.start_fetches(self.now_ms());
                if !maps.is_empty() {
                    let locations: Vec<MapOutputLocation> = maps
                        .iter()
                        .map(|(attempt, host)| MapOutputLocation {
                            map_attempt: map_attempt_of(*attempt),
                            host: *host,
                        })
                        .collect();
                    let fetcher = self.fetcher.clone();
                    let job = self.job.clone();
                    let dir = self.spill_dir.to_path_buf();
                    let handle = self.ctx.handle.spawn(async move {
                        fetcher.fetch(&job, partition, &locations, &dir).await
                    });
                    self.in_flight = Some((handle, maps.into_iter().map(|(a, _)| a).collect()));
                }
            }
            match self.in_flight.as_mut() {
                Some((handle, _)) => {
                    let deadline = tokio::time::Instant::from_std(self.next_poll);
                    let joined = self
                        .ctx
                        .handle
                        .block_on(async { tokio::time::timeout_at(deadline, handle).await });
                    let Ok(joined) = joined else {
                        continue; // time to poll for events; the fetch keeps running
                    };
                    let asked = self.in_flight.take().map(|(_, a)| a).unwrap_or_default();
                    let outcome = joined.map_err(|e| {
                        TaskRunnerError::Panic(format!("shuffle fetch task: {e}"))
                    })??;
                    self.absorb(outcome, asked, buffer)?;
                }
                None => {
                    // Nothing to fetch: sleep until the next poll or retry, whichever is first.
                    let mut wake = self.next_poll;
                    if let Some(retry) = self.book.next_retry_ms() {
                        wake = wake.min(self.started + Duration::from_millis(retry));
                    }
                    let pause = wake.saturating_duration_since(Instant::now());
                    std::thread::sleep(pause.max(Duration::from_millis(1)));
                }
            }
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
        self.next_poll = Instant::now()
            + if news {
                EVENT_POLL_AFTER_NEWS
            } else {
                EVENT_POLL_INTERVAL
            };
        Ok(())
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
