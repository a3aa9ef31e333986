//! The [`TaskContext`] handed to user code: job configuration plus the task's counters.

use std::sync::Arc;

use crate::api::{JobConf, TaskContext};
use crate::counters::Counters;

/// Configuration and counters of one running task (or of one of its helper threads).
pub struct TaskServices {
    conf: Arc<JobConf>,
    /// Counters recorded so far, framework and user alike.
    pub counters: Counters,
}

impl TaskServices {
    /// Services over `conf` with empty counters.
    pub fn new(conf: Arc<JobConf>) -> Self {
        TaskServices {
            conf,
            counters: Counters::new(),
        }
    }
}

impl TaskContext for TaskServices {
    fn conf(&self) -> &JobConf {
        &self.conf
    }
    fn incr_counter(&mut self, group: &str, name: &str, amount: i64) {
        self.counters.incr(group, name, amount);
    }
}
