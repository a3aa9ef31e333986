//! The shuffle over QUIC: a [`ShuffleServer`] (hosted by a NodeManager) serves partition
//! segments of the map outputs registered with it; a reduce task's [`ShuffleFetcher`] fetches
//! its partition from many maps at once and hands the segments to the reduce-side merge.
//!
//! On a cluster every NodeManager hosts the server as the [`ShuffleAuxService`] (`"shuffle"`),
//! serving only files under `<local-dir>/shuffle/<job_id>/`. Map tasks register their outputs
//! with the service on their node and the JobTracker removes finished jobs, both through a
//! [`ShuffleServiceClient`]; the NodeManager also drops a job's data when its application ends.
//!
//! Security: every connection uses the cluster's mutual TLS, and every fetch carries an
//! HMAC-SHA256 under the job's [`JobSecret`], so a task can fetch only its own job's outputs.
//! The first registration of a job on a node brings the secret (later ones must match it), a
//! registered file must lie in that job's directory, and a removal carries its own HMAC.

pub mod aux_service;
pub mod error;
pub mod fetcher;
pub mod protocol;
pub mod registry;
pub mod server;
pub mod service_client;
pub mod settings;

#[cfg(test)]
mod tests;

pub use aux_service::{shuffle_job_dir, shuffle_root, ShuffleAuxService};
pub use error::ShuffleError;
pub use fetcher::{
    FetchFailure, FetchStats, FetchedSegment, MapOutputLocation, ShuffleFetcher, ShuffleJob,
    ShuffleOutcome,
};
pub use protocol::{JobSecret, MapAttemptId, ServiceReply};
pub use registry::ShuffleRegistry;
pub use server::{RunningShuffleServer, ShuffleServer, ShuffleServerStats};
pub use service_client::ShuffleServiceClient;
pub use settings::ShuffleSettings;
