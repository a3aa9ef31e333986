//! The shuffle over QUIC: a [`ShuffleServer`] (hosted by a NodeManager) serves partition
//! segments of the map outputs registered with it; a reduce task's [`ShuffleFetcher`] fetches
//! its partition from many maps at once and hands the segments to the reduce-side merge.
//!
//! Security: every connection uses the cluster's mutual TLS, and every request carries an
//! HMAC-SHA256 under the job's [`JobSecret`], so a task can fetch only its own job's outputs.

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

pub use aux_service::{shuffle_root, ShuffleAuxService};
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
