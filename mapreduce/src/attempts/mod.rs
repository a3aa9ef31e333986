//! Attempt bookkeeping for any master that runs tasks as attempts: which attempts a task has,
//! which one won, retries and the nodes to avoid, node blacklisting, timeouts without progress,
//! and stragglers worth a speculative twin. Sans-I/O and stage-agnostic: a task is any small
//! copyable key `T` (the JobTracker's `TaskId`, a query master's `(stage, partition)`), nodes are
//! host names, time comes in as [`Now`]. What a master does about containers, outputs and
//! counters stays with the master; the book only says what happened and what it decided.
//!
//! The life of an attempt: [`AttemptBook::create_attempt`] (waiting for a container) →
//! [`AttemptBook::launch`] on a node → [`AttemptBook::started`] / [`AttemptBook::progress`] →
//! one end: [`AttemptBook::succeeded`] (the first success of a task wins; a later one is killed),
//! [`AttemptBook::failed`] (counts toward the task's limit and the node's blacklist) or
//! [`AttemptBook::killed`] (counts toward neither). A winner's output may need a commit
//! ([`AttemptBook::committed`]); a failed commit or a lost output reopens the task
//! ([`AttemptBook::reopen`]).
//!
//! ```
//! use sheaf_mapreduce::attempts::*;
//! use sheaf_rpc::time::Now;
//!
//! // A query master's tasks: (stage, partition).
//! let mut book: AttemptBook<(u32, u32)> = AttemptBook::new(AttemptPolicy::default());
//! book.add_task((1, 0));
//! let first = book.start_attempt((1, 0), "h1", Now::at(0));
//! let Some(failure) = book.failed(first, "disk full".into(), Now::at(10)) else { unreachable!() };
//! assert_eq!(failure.verdict, Verdict::Retry { avoid_nodes: ["h1".to_string()].into() });
//! let second = book.start_attempt((1, 0), "h2", Now::at(20));
//! assert!(matches!(book.succeeded(second, Now::at(30)), Success::Won { .. }));
//! assert!(book.committed(second));
//! assert_eq!(book.status((1, 0)), TaskStatus::Done(second));
//! ```

mod book;
mod speculation;

#[cfg(test)]
mod tests;

pub use book::{Attempt, AttemptBook, Ended, Failure, Success, TaskStatus, Verdict};
pub use sheaf_rpc::time::Now;
pub use speculation::SpeculationPolicy;

use std::fmt;

/// One attempt at running task `task`; numbers start at 0 and are never reused.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct AttemptId<T> {
    /// The task.
    pub task: T,
    /// 0 for the first attempt.
    pub number: u32,
}

impl<T: fmt::Display> fmt::Display for AttemptId<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}", self.task, self.number)
    }
}

/// Hadoop's task attempt states, as far as a master distinguishes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum AttemptState {
    /// Waiting for a container.
    Unassigned,
    /// Launched in a container, its process has not reported in yet.
    Assigned,
    /// Its process reported in.
    Running,
    /// Finished its work (a later lost output turns it KILLED or FAILED, as in Hadoop).
    Succeeded,
    /// Failed; counts toward the task's attempts.
    Failed,
    /// Killed; does not count toward the task's attempts.
    Killed,
}

impl AttemptState {
    /// True while the attempt may still do work (waiting, assigned or running).
    pub fn is_live(self) -> bool {
        matches!(
            self,
            AttemptState::Unassigned | AttemptState::Assigned | AttemptState::Running
        )
    }

    /// True while the attempt holds a container (assigned or running).
    pub fn is_launched_and_live(self) -> bool {
        matches!(self, AttemptState::Assigned | AttemptState::Running)
    }
}

impl fmt::Display for AttemptState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AttemptState::Unassigned => "UNASSIGNED",
            AttemptState::Assigned => "ASSIGNED",
            AttemptState::Running => "RUNNING",
            AttemptState::Succeeded => "SUCCEEDED",
            AttemptState::Failed => "FAILED",
            AttemptState::Killed => "KILLED",
        })
    }
}

/// The book's limits.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptPolicy {
    /// Failed attempts after which a task gives up (Hadoop's `maxattempts`, 4); a task may
    /// override it ([`AttemptBook::add_task_with_max_attempts`]).
    pub max_attempts: u32,
    /// Failed attempts on one node after which it is blacklisted (3).
    pub node_failure_limit: u32,
    /// A launched attempt without progress for this long is timed out; 0 disables (600 000 ms).
    pub timeout_ms: u64,
    /// When stragglers get a twin.
    pub speculation: SpeculationPolicy,
}

impl Default for AttemptPolicy {
    fn default() -> AttemptPolicy {
        AttemptPolicy {
            max_attempts: 4,
            node_failure_limit: 3,
            timeout_ms: 600_000,
            speculation: SpeculationPolicy::default(),
        }
    }
}
