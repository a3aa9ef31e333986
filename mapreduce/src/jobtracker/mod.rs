//! The JobTracker's decision core: a sans-I/O state machine (in the style of `quinn-proto`) that
//! schedules one job's map and reduce attempts into containers, retries, blacklists, speculates and
//! commits. The daemon shell feeds it [`Event`]s with the current time and carries out the
//! [`Action`]s it returns; there are no sockets, threads or clocks in here, so every fault
//! sequence can be replayed deterministically in tests.

mod config;
mod ids;
mod protocol;
mod speculation;
mod status;
mod tracker;

pub use config::{JobConfig, JobConfigError, Resource};
pub use ids::{AttemptId, ContainerId, TaskId, TaskKind};
pub use protocol::{
    Action, ContainerRequest, Event, JobSpec, Locality, MapOutputLocation, SplitLocation,
    DEFAULT_RACK,
};
pub use status::*;
pub use tracker::JobTracker;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod random_tests;
