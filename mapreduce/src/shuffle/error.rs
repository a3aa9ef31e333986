//! Errors of the shuffle server and fetcher.

use sheaf_rpc::RpcError;

use crate::task::EngineError;

/// What can make a shuffle server or a whole fetch fail. Failures of single map outputs are not
/// errors: they come back as [`super::FetchFailure`]s so the JobTracker can re-run those maps.
#[derive(Debug, thiserror::Error)]
pub enum ShuffleError {
    /// The wire layer failed (binding the endpoint, TLS setup).
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// A local file operation failed; `context` names it.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Handing fetched segments to the reduce side failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A shuffle setting is invalid.
    #[error("invalid shuffle configuration: {0}")]
    Config(String),
    /// A map output was registered for a job the server does not know.
    #[error("job {0} is not registered with this shuffle server (register_job first)")]
    UnknownJob(String),
    /// The map output's index does not fit the registration.
    #[error("map output {0}")]
    BadMapOutput(String),
    /// A shuffle service refused a registration or removal; nothing changed there.
    #[error("shuffle service {addr} refused: {reason}")]
    Refused {
        /// The service's address.
        addr: std::net::SocketAddr,
        /// Its reason.
        reason: String,
    },
    /// A job id that cannot name a directory (empty, `.`/`..`, or with characters other than
    /// ASCII letters, digits, `_` and `-`).
    #[error("invalid job id {0:?} (expected job_<cluster>_<seq>)")]
    InvalidJobId(String),
    /// A registration presented another secret than the one the job was registered with.
    #[error("job {0} is registered with another secret")]
    SecretMismatch(String),
    /// A request not signed with the job's secret.
    #[error("bad job token: {0}")]
    BadToken(String),
    /// A registration for a job that was already removed (a late attempt of a finished job).
    #[error("job {0} has finished; its map outputs are no longer accepted")]
    JobRemoved(String),
}

impl ShuffleError {
    /// Wraps an I/O error with a description of the operation.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        ShuffleError::Io {
            context: context.into(),
            source,
        }
    }
}
