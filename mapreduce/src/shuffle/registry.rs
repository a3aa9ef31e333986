//! The map outputs a shuffle server may serve, per job, with the job's secret.

use std::collections::HashMap;
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

/// Jobs and their map outputs known to one shuffle server. Shared between the server and the
/// NodeManager that registers outputs as map tasks on its node finish.
#[derive(Default)]
pub struct ShuffleRegistry {
    jobs: RwLock<HashMap<String, JobOutputs>>,
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
        let mut jobs = self.jobs.write().unwrap_or_else(|p| p.into_inner());
        let job = jobs
            .get_mut(job_id)
            .ok_or_else(|| ShuffleError::UnknownJob(job_id.to_string()))?;
        job.outputs.insert(
            map_attempt,
            RegisteredOutput {
                path,
                index: Arc::new(index),
            },
        );
        Ok(())
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
