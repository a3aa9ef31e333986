//! The shuffle wire protocol: one bidirectional QUIC stream per fetch.
//!
//! The reducer sends one [`ShuffleRequest`] frame (`sheaf_rpc::frame`) and finishes its side.
//! The server answers, for each requested map attempt in request order, one [`FetchReply`]
//! frame; after a [`FetchReply::Segment`] header come the segment's bytes (exactly as the map
//! wrote them: compressed, checksummed blocks) as `sheaf_rpc::packet` packets, the final one
//! flagged `last`. A [`FetchReply::Refused`] ends the stream: nothing of the job is served.
//!
//! The node's own tasks and the JobTracker use the same stream shape for the service requests
//! ([`ShuffleRequest::RegisterMapOutput`], [`ShuffleRequest::RemoveJob`]): one request frame,
//! one [`ServiceReply`] frame.

use std::fmt;
use std::path::PathBuf;

use ring::hmac;
use serde::{Deserialize, Serialize};

use crate::task::run_file::SegmentIndexEntry;

/// One attempt of one map task of a job: the unit whose output a reducer fetches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MapAttemptId {
    /// Map task number within the job.
    pub map: u32,
    /// Attempt number of that task (a re-run map has a new attempt).
    pub attempt: u32,
}

impl MapAttemptId {
    /// The attempt `attempt` of map task `map`.
    pub fn new(map: u32, attempt: u32) -> Self {
        MapAttemptId { map, attempt }
    }
}

impl fmt::Display for MapAttemptId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "m_{:06}_{}", self.map, self.attempt)
    }
}

/// What a reducer asks one shuffle server for: partition `partition` of each listed map output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchRequest {
    /// The job the map outputs belong to.
    pub job_id: String,
    /// The reduce partition wanted.
    pub partition: u32,
    /// Map attempts whose segment of `partition` is wanted, served in this order.
    pub map_attempts: Vec<MapAttemptId>,
    /// HMAC-SHA256 of the fields above under the job's secret ([`JobSecret::sign`]).
    pub mac: Vec<u8>,
}

/// Requests a shuffle server accepts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShuffleRequest {
    /// Fetch partition segments of several map outputs.
    Fetch(FetchRequest),
    /// A map task on this node finished: serve its output. Registers the job with `secret` if
    /// the server does not know it yet; a different secret for a known job is refused. `path`
    /// must lie inside the server's shuffle root, under `<root>/<job_id>/`.
    RegisterMapOutput {
        /// The job the output belongs to.
        job_id: String,
        /// The job's shuffle secret ([`JobSecret::as_bytes`]).
        #[serde(with = "serde_bytes")]
        secret: Vec<u8>,
        /// The map attempt that wrote it.
        map_attempt: MapAttemptId,
        /// The map-output data file (absolute path on the server's host).
        path: PathBuf,
        /// One entry per reduce partition (`MapOutput::index`).
        index: Vec<SegmentIndexEntry>,
    },
    /// The job is over: forget it and delete its map outputs and `<root>/<job_id>`. Idempotent.
    RemoveJob {
        /// The job.
        job_id: String,
        /// [`JobSecret::sign_removal`] of `job_id`.
        #[serde(with = "serde_bytes")]
        mac: Vec<u8>,
    },
}

/// The one reply frame to a [`ShuffleRequest::RegisterMapOutput`] or [`ShuffleRequest::RemoveJob`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServiceReply {
    /// The map output is registered and will be served.
    Registered,
    /// The job is forgotten; `files` map-output files (and their index files) were deleted.
    Removed {
        /// Map-output data files deleted.
        files: u64,
    },
    /// Not done; nothing changed.
    Refused {
        /// Why.
        reason: String,
    },
}

/// Describes the segment bytes that follow it on the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentHeader {
    /// The map attempt whose segment follows.
    pub map_attempt: MapAttemptId,
    /// Uncompressed record bytes in the segment.
    pub raw_len: u64,
    /// Bytes that follow on the wire (the segment as stored: block headers and lz4 blocks).
    pub compressed_len: u64,
    /// Records in the segment.
    pub records: u64,
}

/// One reply frame per requested map attempt (or one `Refused` for the whole request).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FetchReply {
    /// The segment follows as packets.
    Segment(SegmentHeader),
    /// This server has no such map output (never registered, job gone, file unreadable).
    MapOutputMissing {
        /// The map attempt asked for.
        map_attempt: MapAttemptId,
        /// Why it cannot be served.
        reason: String,
    },
    /// The request was not authorised (unknown job or bad MAC); the stream ends here.
    Refused {
        /// Why.
        reason: String,
    },
}

/// Length of a [`JobSecret`] in bytes.
pub const JOB_SECRET_LEN: usize = 32;

/// The per-job shuffle secret. The JobTracker creates it, registers it with every shuffle
/// server hosting the job's map outputs and hands it to the job's reduce tasks; a request is
/// served only if its MAC, computed with this secret, verifies. Like Hadoop's job token, this
/// keeps one job's reducers (or any other cluster member) from reading another job's data,
/// which mutual TLS alone cannot do since every task presents the same cluster certificate.
#[derive(Clone, Eq)]
pub struct JobSecret([u8; JOB_SECRET_LEN]);

impl PartialEq for JobSecret {
    fn eq(&self, other: &Self) -> bool {
        sheaf_rpc::token::same(&self.0, &other.0)
    }
}

impl fmt::Debug for JobSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret itself into logs.
        f.write_str("JobSecret(..)")
    }
}

impl JobSecret {
    /// A fresh random secret from the OS generator.
    pub fn generate() -> Self {
        use rand::RngCore;
        let mut bytes = [0u8; JOB_SECRET_LEN];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        JobSecret(bytes)
    }

    /// A secret from its bytes (as stored in the job's credentials).
    pub fn from_bytes(bytes: [u8; JOB_SECRET_LEN]) -> Self {
        JobSecret(bytes)
    }

    /// The secret's bytes, for storing in the job's credentials.
    pub fn as_bytes(&self) -> &[u8; JOB_SECRET_LEN] {
        &self.0
    }

    fn key(&self) -> hmac::Key {
        hmac::Key::new(hmac::HMAC_SHA256, &self.0)
    }

    /// The MAC of a request for `partition` of `map_attempts` of `job_id`. Every field is bound,
    /// so a captured request cannot be replayed for another partition or other maps.
    pub fn sign(&self, job_id: &str, partition: u32, map_attempts: &[MapAttemptId]) -> Vec<u8> {
        let message = mac_message(job_id, partition, map_attempts);
        hmac::sign(&self.key(), &message).as_ref().to_vec()
    }

    /// True when `request.mac` is this secret's MAC of the request (constant-time comparison).
    pub fn verify(&self, request: &FetchRequest) -> bool {
        let message = mac_message(&request.job_id, request.partition, &request.map_attempts);
        hmac::verify(&self.key(), &message, &request.mac).is_ok()
    }

    /// The MAC of a [`ShuffleRequest::RemoveJob`] for `job_id` (its own domain, so no fetch
    /// MAC can be turned into a removal).
    pub fn sign_removal(&self, job_id: &str) -> Vec<u8> {
        hmac::sign(&self.key(), &removal_message(job_id))
            .as_ref()
            .to_vec()
    }

    /// True when `mac` is this secret's removal MAC of `job_id` (constant-time comparison).
    pub fn verify_removal(&self, job_id: &str, mac: &[u8]) -> bool {
        hmac::verify(&self.key(), &removal_message(job_id), mac).is_ok()
    }

    /// A secret from bytes received over the wire; `None` unless exactly [`JOB_SECRET_LEN`] long.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; JOB_SECRET_LEN]>::try_from(bytes).ok().map(JobSecret)
    }
}

/// The canonical bytes a removal MAC covers.
fn removal_message(job_id: &str) -> Vec<u8> {
    let mut m = Vec::with_capacity(32 + job_id.len());
    m.extend_from_slice(b"sheaf-shuffle-remove-job-v1\0");
    m.extend_from_slice(&(job_id.len() as u64).to_be_bytes());
    m.extend_from_slice(job_id.as_bytes());
    m
}

/// The canonical bytes a request MAC covers: length-prefixed, so no two requests share them.
fn mac_message(job_id: &str, partition: u32, map_attempts: &[MapAttemptId]) -> Vec<u8> {
    let mut m = Vec::with_capacity(32 + job_id.len() + map_attempts.len() * 8);
    m.extend_from_slice(b"sheaf-shuffle-fetch-v1\0");
    m.extend_from_slice(&(job_id.len() as u64).to_be_bytes());
    m.extend_from_slice(job_id.as_bytes());
    m.extend_from_slice(&partition.to_be_bytes());
    m.extend_from_slice(&(map_attempts.len() as u64).to_be_bytes());
    for a in map_attempts {
        m.extend_from_slice(&a.map.to_be_bytes());
        m.extend_from_slice(&a.attempt.to_be_bytes());
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(secret: &JobSecret, partition: u32) -> FetchRequest {
        let maps = vec![MapAttemptId::new(1, 0), MapAttemptId::new(2, 1)];
        FetchRequest {
            job_id: "job_1".into(),
            partition,
            mac: secret.sign("job_1", partition, &maps),
            map_attempts: maps,
        }
    }

    #[test]
    fn mac_verifies_only_under_the_same_secret_and_fields() {
        let secret = JobSecret::generate();
        let req = request(&secret, 3);
        assert!(secret.verify(&req));
        assert!(!JobSecret::generate().verify(&req), "another job's secret");
        let mut other_partition = req.clone();
        other_partition.partition = 4;
        assert!(
            !secret.verify(&other_partition),
            "replayed for another partition"
        );
        let mut other_maps = req.clone();
        other_maps.map_attempts.push(MapAttemptId::new(9, 0));
        assert!(!secret.verify(&other_maps), "maps added");
        let mut truncated = req;
        truncated.mac.pop();
        assert!(!secret.verify(&truncated));
    }

    #[test]
    fn removal_mac_is_bound_to_the_job_and_its_own_purpose() {
        let secret = JobSecret::generate();
        let mac = secret.sign_removal("job_1");
        assert!(secret.verify_removal("job_1", &mac));
        assert!(!secret.verify_removal("job_2", &mac), "another job");
        assert!(!JobSecret::generate().verify_removal("job_1", &mac));
        // A fetch MAC with no maps is not a removal MAC.
        assert!(!secret.verify_removal("job_1", &secret.sign("job_1", 0, &[])));
        assert_eq!(JobSecret::from_slice(secret.as_bytes()), Some(secret));
        assert!(JobSecret::from_slice(&[1u8; 31]).is_none());
    }

    #[test]
    fn secret_is_not_printed() {
        let s = JobSecret::from_bytes([0xAB; JOB_SECRET_LEN]);
        assert_eq!(format!("{s:?}"), "JobSecret(..)");
    }
}
