//! The JobTracker's decision core: a sans-I/O state machine (in the style of `quinn-proto`) that
//! schedules one job's map and reduce attempts into containers, retries, blacklists, speculates and
//! commits. The daemon shell feeds it [`Event`]s with the current time and carries out the
//! [`Action`]s it returns; there are no sockets, threads or clocks in here, so every fault
//! sequence can be replayed deterministically in tests. Time comes in as [`Now`]: timeouts,
//! speculation and preemption use its monotonic part, records its wall part. The attempt
//! bookkeeping it shares with other masters is [`crate::attempts`].
//!
//! ```
//! use sheaf_mapreduce::jobtracker::*;
//! use sheaf_mapreduce::formats::InputSplit;
//!
//! let spec = JobSpec {
//!     job_id: "job_1_0001".into(),
//!     splits: vec![SplitLocation { split: InputSplit::new("/in/a", 0, 64), hosts: vec!["h1".into()] }],
//!     num_reduces: 0,
//!     host_racks: Default::default(),
//!     conf: Default::default(),
//! };
//! let mut jt = JobTracker::new(spec, JobConfig::default(), Now::at(0));
//! let asks = jt.start(Now::at(0)); // one RequestContainer for the map, preferring h1
//! let Action::RequestContainer(ask) = &asks[0] else { unreachable!() };
//! let launch = jt.handle(Now::at(10), Event::ContainerAllocated {
//!     container: "container_1".into(), ask_id: ask.ask_id, host: "h1".into(), rack: DEFAULT_RACK.into(),
//! });
//! let attempt = launch[0].launched().unwrap();
//! let commit = jt.handle(Now::at(500), Event::AttemptSucceeded { attempt, output: None });
//! assert!(commit.contains(&Action::CommitTask { attempt }));
//! assert_eq!(jt.handle(Now::at(510), Event::TaskCommitted { attempt }), vec![Action::CommitJob]);
//! assert_eq!(jt.handle(Now::at(520), Event::JobCommitted), vec![Action::JobSucceeded]);
//! assert_eq!(jt.counters().get(JOB_GROUP, DATA_LOCAL_MAPS), 1);
//! ```

mod config;
mod ids;
mod protocol;
mod status;
mod tracker;

pub use crate::attempts::Now;
pub use config::{JobConfig, JobConfigError, Resource};
pub use ids::{AttemptId, ContainerId, TaskId, TaskKind};
pub use protocol::{
    Action, ContainerRequest, Event, JobSpec, Locality, MapOutputLocation, SplitLocation,
    DEFAULT_RACK,
};
pub use status::*;
pub use tracker::{JobTracker, RecoveryError};

#[cfg(test)]
mod tests;

#[cfg(test)]
mod random_tests;
