//! The map outputs a shuffle server may serve, per job, with the job's secret.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use crate::task::run_file::SegmentIndexEntry;

use super::error::ShuffleError;
use super::protocol::{JobSecret, MapAttemptId};

/// A registered map output: its data file and partition index.
#[derive(Clone, Debug)]
pub struct RegisteredOutput {
    /// The map-output data file.
    pub path: PathBuf,
    /// One entry per reduce partition.
    pub index: Arc<Vec<SegmentIndexEntry>>,
}

struct JobOutputs {
    secret: JobSecret,
    outputs: HashMap<MapAttemptId, RegisteredOutput>,
}

/// Removed jobs remembered (with their secrets) so a late registration of a finished job is
/// refused and a repeated removal still authenticates; the oldest are forgotten past this.
const REMEMBERED_REMOVALS: usize = 4096;

/// Jobs removed from a registry, oldest first, with their secrets when they were known.
#[derive(Default)]
struct Removed {
    secrets: HashMap<String, Option<JobSecret>>,
    order: VecDeque<String>,
}

impl Removed {
    fn remember(&mut self, job_id: &str, secret: Option<JobSecret>) {
        if self.secrets.insert(job_id.to_string(), secret).is_none() {
            self.order.push_back(job_id.to_string());
        }
        while self.order.len() > REMEMBERED_REMOVALS {
            if let Some(old) = self.order.pop_front() {
                self.secrets.remove(&old);
            }
        }
    }
}

/// What an authenticated [`ShuffleRegistry::remove_job_signed`] did.
#[derive(Debug)]
pub enum Removal {
    /// The job was registered; these were its outputs (the caller deletes the files).
    Removed(Vec<RegisteredOutput>),
    /// The job was removed before (the removal is repeated: idempotent).
    AlreadyRemoved,
    /// The job was never registered here (no map of it finished on this node).
    Unknown,
}

impl JobOutputs {
    /// Registers (or replaces) the output of `map_attempt`.
    fn insert(&mut self, map_attempt: MapAttemptId, path: PathBuf, index: Vec<SegmentIndexEntry>) {
        self.outputs.insert(
            map_attempt,
            RegisteredOutput {
                path,
                index: Arc::new(index),
            },
        );
    }
}

/// Jobs and their map outputs known to one shuffle server. Shared between the server and the
/// NodeManager that registers outputs as map tasks on its node finish.
#[derive(Default)]
pub struct ShuffleRegistry {
    jobs: RwLock<HashMap<String, JobOutputs>>,
    removed: RwLock<Removed>,
}

/// Refuses job ids that could not safely name a directory under the shuffle root: only ASCII
/// letters, digits, `_` and `-` (Hadoop's `job_<cluster>_<seq>` form), at most 128 bytes.
pub fn validate_job_id(job_id: &str) -> Result<(), ShuffleError> {
    let ok = !job_id.is_empty()
        && job_id.len() <= 128
        && job_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ShuffleError::InvalidJobId(job_id.to_string()))
    }
}

/// Refuses an index whose segments overlap or whose ends overflow.
fn check_index(
    job_id: &str,
    map_attempt: MapAttemptId,
    path: &std::path::Path,
    index: &[SegmentIndexEntry],
) -> Result<(), ShuffleError> {
    if let Some(e) = index
        .iter()
        .find(|e| e.offset.checked_add(e.compressed_len).is_none())
    {
        return Err(ShuffleError::BadMapOutput(format!(
            "{map_attempt} of {job_id} ({}): segment at offset {} overflows",
            path.display(),
            e.offset
        )));
    }
    if let Some(bad) = index
        .windows(2)
        .find(|w| w[0].offset + w[0].compressed_len > w[1].offset)
    {
        return Err(ShuffleError::BadMapOutput(format!(
            "{map_attempt} of {job_id} ({}): overlapping segments at offset {}",
            path.display(),
            bad[1].offset
        )));
    }
    Ok(())
}

impl ShuffleRegistry {
    /// An empty registry.
    pub fn new() -> Arc<Self> {
        Arc::new(ShuffleRegistry::default())
    }

    /// Makes `job_id` known with its shuffle secret (again: replaces the secret, keeps outputs).
    pub fn register_job(&self, job_id: &str, secret: JobSecret) {
        let mut jobs = self.jobs.write().unwrap_or_else(|p| p.into_inner());
        jobs.entry(job_id.to_string())
            .and_modify(|j| j.secret = secret.clone())
            .or_insert_with(|| JobOutputs {
                secret,
                outputs: HashMap::new(),
            });
    }

    /// Registers the output of a finished map attempt: `path` is its data file, `index` its
    /// partition index (`MapOutput::index`). A re-registered attempt replaces the old entry.
    pub fn register_map_output(
        &self,
        job_id: &str,
        map_attempt: MapAttemptId,
        path: PathBuf,
        index: Vec<SegmentIndexEntry>,
    ) -> Result<(), ShuffleError> {
        check_index(job_id, map_attempt, &path, &index)?;
        let mut jobs = self.jobs.write().unwrap_or_else(|p| p.into_inner());
        let job = jobs
            .get_mut(job_id)
            .ok_or_else(|| ShuffleError::UnknownJob(job_id.to_string()))?;
        job.insert(map_attempt, path, index);
        Ok(())
    }

    /// Registers a map output together with its job's secret, as a task does over the wire:
    /// an unknown job is registered with `secret`; a known job must present the same secret;
    /// a removed job is refused. Checks the job id and the index (not the file: the caller does).
    pub fn register_with_secret(
        &self,
        job_id: &str,
        secret: &JobSecret,
        map_attempt: MapAttemptId,
        path: PathBuf,
        index: Vec<SegmentIndexEntry>,
    ) -> Result<(), ShuffleError> {
        validate_job_id(job_id)?;
        check_index(job_id, map_attempt, &path, &index)?;
        let removed = self.removed.read().unwrap_or_else(|p| p.into_inner());
        if removed.secrets.contains_key(job_id) {
            return Err(ShuffleError::JobRemoved(job_id.to_string()));
        }
        // Taken while `removed` is held, so a concurrent removal cannot slip in between.
        let mut jobs = self.jobs.write().unwrap_or_else(|p| p.into_inner());
        let job = jobs
            .entry(job_id.to_string())
            .or_insert_with(|| JobOutputs {
                secret: secret.clone(),
                outputs: HashMap::new(),
            });
        if job.secret != *secret {
            return Err(ShuffleError::SecretMismatch(job_id.to_string()));
        }
        job.insert(map_attempt, path, index);
        Ok(())
    }

    /// Removes `job_id` if `mac` is its secret's removal MAC ([`JobSecret::sign_removal`]).
    /// Later registrations of the job are refused. A bad MAC changes nothing.
    pub fn remove_job_signed(&self, job_id: &str, mac: &[u8]) -> Result<Removal, ShuffleError> {
        validate_job_id(job_id)?;
        let bad_token = || {
            ShuffleError::BadToken(format!(
                "removal of {job_id} was not signed with the job's secret"
            ))
        };
        let mut removed = self.removed.write().unwrap_or_else(|p| p.into_inner());
        match removed.secrets.get(job_id) {
            Some(Some(secret)) if !secret.verify_removal(job_id, mac) => return Err(bad_token()),
            // Finished with its application before any output was registered: there is
            // nothing a removal could harm, so it needs no secret.
            Some(_) => return Ok(Removal::AlreadyRemoved),
            None => {}
        }
        let mut jobs = self.jobs.write().unwrap_or_else(|p| p.into_inner());
        let Some(job) = jobs.get(job_id) else {
            return Ok(Removal::Unknown);
        };
        if !job.secret.verify_removal(job_id, mac) {
            return Err(bad_token());
        }
        let Some(job) = jobs.remove(job_id) else {
            return Ok(Removal::Unknown);
        };
        removed.remember(job_id, Some(job.secret));
        Ok(Removal::Removed(job.outputs.into_values().collect()))
    }

    /// Forgets `job_id` because its application has ended (the NodeManager says so; no MAC
    /// needed) and refuses its later registrations. Returns the outputs that were registered.
    pub fn finish_job(&self, job_id: &str) -> Vec<RegisteredOutput> {
        let mut removed = self.removed.write().unwrap_or_else(|p| p.into_inner());
        let mut jobs = self.jobs.write().unwrap_or_else(|p| p.into_inner());
        let job = jobs.remove(job_id);
        let known = removed.secrets.get(job_id).cloned().flatten();
        let secret = job.as_ref().map(|j| j.secret.clone()).or(known);
        removed.remember(job_id, secret);
        job.map(|j| j.outputs.into_values().collect())
            .unwrap_or_default()
    }

    /// Jobs currently registered.
    pub fn job_count(&self) -> usize {
        self.jobs.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Forgets one map output (e.g. the attempt was found bad); true if it was registered.
    pub fn remove_map_output(&self, job_id: &str, map_attempt: MapAttemptId) -> bool {
        let mut jobs = self.jobs.write().unwrap_or_else(|p| p.into_inner());
        jobs.get_mut(job_id)
            .is_some_and(|j| j.outputs.remove(&map_attempt).is_some())
    }

    /// Forgets a finished job and its outputs (deleting the files is the caller's business).
    /// Returns the outputs that were registered, so the caller can delete them.
    pub fn remove_job(&self, job_id: &str) -> Vec<RegisteredOutput> {
        let mut jobs = self.jobs.write().unwrap_or_else(|p| p.into_inner());
        jobs.remove(job_id)
            .map(|j| j.outputs.into_values().collect())
            .unwrap_or_default()
    }

    /// The secret of `job_id`, if the job is registered.
    pub fn secret(&self, job_id: &str) -> Option<JobSecret> {
        let jobs = self.jobs.read().unwrap_or_else(|p| p.into_inner());
        jobs.get(job_id).map(|j| j.secret.clone())
    }

    /// The registered output of `map_attempt` of `job_id`.
    pub fn map_output(&self, job_id: &str, map_attempt: MapAttemptId) -> Option<RegisteredOutput> {
        let jobs = self.jobs.read().unwrap_or_else(|p| p.into_inner());
        jobs.get(job_id)
            .and_then(|j| j.outputs.get(&map_attempt).cloned())
    }
}
