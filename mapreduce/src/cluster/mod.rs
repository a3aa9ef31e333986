//! MapReduce on the cluster: what `sheaf job submit` stages in the DFS ([`submission`]), the
//! JobTracker process that runs one job as a yarnlike application master ([`jobtracker`]),
//! the task processes it launches in containers (`task_runner`), and the typed protocol between
//! them and the job's clients ([`protocol`]).
//!
//! The decision logic lives in the sans-I/O [`crate::jobtracker::JobTracker`]; everything here is
//! the I/O around it: RM calls, DFS splits and commits, RPC with tasks and clients.

pub mod client;
pub mod history;
pub mod jobtracker;
pub mod layout;
pub mod protocol;
pub mod splits;
pub mod submission;
pub mod task_runner;
