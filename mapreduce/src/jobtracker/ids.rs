//! Task and attempt identities, printed the way Hadoop prints them (`m_000003`, `r_000000_1`).

use std::fmt;

/// The phase a task belongs to.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum TaskKind {
    /// A map task: reads one input split.
    Map,
    /// A reduce task: owns one partition.
    Reduce,
}

impl TaskKind {
    /// Hadoop's one-letter tag (`m` / `r`).
    pub fn tag(self) -> char {
        match self {
            TaskKind::Map => 'm',
            TaskKind::Reduce => 'r',
        }
    }
}

/// One task of the job: map `index` reads split `index`; reduce `index` owns partition `index`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct TaskId {
    /// Map or reduce.
    pub kind: TaskKind,
    /// Split number (maps) or partition number (reduces).
    pub index: u32,
}

impl TaskId {
    /// Map task `index`.
    pub fn map(index: u32) -> TaskId {
        TaskId {
            kind: TaskKind::Map,
            index,
        }
    }

    /// Reduce task `index`.
    pub fn reduce(index: u32) -> TaskId {
        TaskId {
            kind: TaskKind::Reduce,
            index,
        }
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{:06}", self.kind.tag(), self.index)
    }
}

/// One attempt at running a task; numbers start at 0 like Hadoop's.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct AttemptId {
    /// The task.
    pub task: TaskId,
    /// 0 for the first attempt.
    pub number: u32,
}

impl fmt::Display for AttemptId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}", self.task, self.number)
    }
}

/// A container as the ResourceManager names it (`container_…`); opaque to the JobTracker.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct ContainerId(pub String);

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for ContainerId {
    fn from(s: &str) -> ContainerId {
        ContainerId(s.to_string())
    }
}
