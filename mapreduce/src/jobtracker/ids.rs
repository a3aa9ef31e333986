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

/// One attempt at running a task (`m_000003_0`); numbers start at 0 like Hadoop's.
pub type AttemptId = crate::attempts::AttemptId<TaskId>;

impl std::str::FromStr for AttemptId {
    type Err = String;

    /// Parses the [`fmt::Display`] form, `m_000003_0` / `r_000001_2`.
    fn from_str(s: &str) -> Result<AttemptId, String> {
        let bad = || format!("{s:?} is not a task attempt id (expected m_000003_0 or r_000001_2)");
        let mut parts = s.split('_');
        let kind = match parts.next() {
            Some("m") => TaskKind::Map,
            Some("r") => TaskKind::Reduce,
            _ => return Err(bad()),
        };
        let index: u32 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let number: u32 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(AttemptId {
            task: TaskId { kind, index },
            number,
        })
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

#[cfg(test)]
mod parse_tests {
    use super::*;

    #[test]
    fn attempt_ids_parse_their_display_form() {
        for a in [
            AttemptId {
                task: TaskId::map(3),
                number: 0,
            },
            AttemptId {
                task: TaskId::reduce(12),
                number: 2,
            },
        ] {
            assert_eq!(a.to_string().parse::<AttemptId>(), Ok(a));
        }
        for bad in ["", "x_000001_0", "m_1", "m_a_0", "m_000001_0_1"] {
            assert!(bad.parse::<AttemptId>().is_err(), "{bad}");
        }
    }
}
