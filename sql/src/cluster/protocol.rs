//! The query master's protocol: one typed request enum for its two kinds of callers, the
//! `sheaf sql` client that submitted the session and the executors running its tasks.

use crate::executor::{StageProgress, StageStats};
use crate::stage_store::PartitionFile;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// One attempt of one task: task `task` of stage `stage` of query `query` of the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TaskAttemptId {
    /// The query (numbered per session, from 1).
    pub query: u64,
    /// The stage.
    pub stage: u32,
    /// The task (partition) of the stage.
    pub task: u32,
    /// The attempt, from 0.
    pub attempt: u32,
}

impl std::fmt::Display for TaskAttemptId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "q{}_s{}_t{}_{}",
            self.query, self.stage, self.task, self.attempt
        )
    }
}

/// Where a finished producer task's output can be fetched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerOutput {
    /// The producer task.
    pub task: u32,
    /// Its winning attempt.
    pub attempt: u32,
    /// The shuffle service of the node holding the output.
    pub shuffle: SocketAddr,
    /// Its output partitions (byte ranges with checksums).
    pub partitions: Vec<PartitionFile>,
}

/// Every producer output of one stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageLocations {
    /// The producer stage.
    pub stage: u32,
    /// One entry per task of that stage.
    pub producers: Vec<ProducerOutput>,
}

/// What an executor needs to run one task: the statement to plan again (every executor plans
/// the same SQL over the same tables and settings, and checks the plan's fingerprint), which
/// task, and where its inputs are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskSpec {
    /// The attempt.
    pub attempt: TaskAttemptId,
    /// The statement, as the master planned it.
    pub statement: String,
    /// `CREATE EXTERNAL TABLE` statements of every table the session knows, in order.
    pub tables: Vec<String>,
    /// The session's settings (`-D`).
    pub settings: Vec<(String, String)>,
    /// Fingerprint of the master's stage plan.
    pub fingerprint: u64,
    /// The master's query start time (what `now()` is), ns since the epoch: the executor plans
    /// with the same, or its plan would differ in that literal.
    pub start_time_ns: Option<i64>,
    /// The shuffle job this query's stage outputs are registered under.
    pub shuffle_job: String,
    /// That job's shuffle secret.
    #[serde(with = "serde_bytes")]
    pub shuffle_secret: Vec<u8>,
    /// Outputs of the stages this task reads.
    pub inputs: Vec<StageLocations>,
}

/// How an attempt ended, as its executor reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskOutcome {
    /// Its output is written, committed and registered with the node's shuffle service.
    Succeeded {
        /// The output partitions.
        partitions: Vec<PartitionFile>,
        /// Bytes its operators spilled.
        spilled_bytes: u64,
    },
    /// It failed (counts toward the task's attempts).
    Failed {
        /// Why.
        error: String,
    },
    /// It ran out of its memory budget (fails the query at once: a retry would too).
    OutOfMemory {
        /// DataFusion's message.
        error: String,
    },
    /// An input could not be fetched: the producer's output is lost and must be recomputed
    /// (Spark's FetchFailed; does not count against this task).
    FetchFailed {
        /// The producer stage.
        stage: u32,
        /// The producer task.
        task: u32,
        /// Why.
        error: String,
    },
}

/// A statement's result as it travels back to the client.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum WireOutcome {
    /// Result rows: an Arrow IPC stream (schema, then batches).
    Rows {
        /// The IPC stream.
        #[serde(with = "serde_bytes")]
        ipc: Vec<u8>,
        /// Per-stage figures.
        stages: Vec<StageStats>,
    },
    /// Done, with what it did.
    Done(String),
    /// Failed, with the error as the user should read it.
    Failed(String),
}

/// Requests to the query master.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum QmRequest {
    /// Client: start running a statement; answered with [`QmResponse::Started`]. Safe to
    /// repeat: a repeated `seq` is answered with the statement it started.
    Execute {
        /// The session's client token.
        #[serde(with = "serde_bytes")]
        token: Vec<u8>,
        /// The client's number for the statement: 1, 2, … (its id at the master).
        seq: u64,
        /// The statement.
        statement: String,
    },
    /// Client: how statement `id` is doing (waits up to a second for news).
    Poll {
        /// The session's client token.
        #[serde(with = "serde_bytes")]
        token: Vec<u8>,
        /// The statement.
        id: u64,
    },
    /// Client: the session is over; the master finishes its application.
    Close {
        /// The session's client token.
        #[serde(with = "serde_bytes")]
        token: Vec<u8>,
    },
    /// Executor: a new executor process is up.
    RegisterExecutor {
        /// The executors' token.
        #[serde(with = "serde_bytes")]
        token: Vec<u8>,
        /// Its container.
        container: String,
        /// Its node (host identity).
        host: String,
        /// Its node's shuffle service.
        shuffle: SocketAddr,
    },
    /// Executor: the next task for one of its slots (waits up to a second for one).
    NextTask {
        /// The executors' token.
        #[serde(with = "serde_bytes")]
        token: Vec<u8>,
        /// The executor.
        executor: u32,
    },
    /// Executor: an attempt ended.
    TaskEnded {
        /// The executors' token.
        #[serde(with = "serde_bytes")]
        token: Vec<u8>,
        /// The executor.
        executor: u32,
        /// The attempt.
        attempt: TaskAttemptId,
        /// How.
        outcome: TaskOutcome,
    },
}

/// Answers of the query master.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum QmResponse {
    /// The statement runs under this id.
    Started {
        /// Poll with it.
        id: u64,
    },
    /// Still running; the latest progress of each stage so far.
    Running(Vec<StageProgress>),
    /// The statement ended.
    Outcome(WireOutcome),
    /// The executor's id.
    Registered {
        /// Use it in every later request.
        executor: u32,
    },
    /// Run this.
    Task(Box<TaskSpec>),
    /// Nothing to run now; ask again.
    NoTask,
    /// The session is over: exit.
    Shutdown,
    /// Taken.
    Ack,
    /// Not done (bad token, unknown statement, …).
    Refused(String),
}
