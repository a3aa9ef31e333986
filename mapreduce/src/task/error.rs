//! The engine's error type: I/O with context, corrupt intermediate data, bad settings and
//! failures raised by user code.

use crate::api::TaskError;

/// Anything that makes a task or a job fail.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// An I/O operation failed; `context` names what was being done and on which path.
    #[error("{context}: {source}")]
    Io {
        /// What the engine was doing.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Intermediate data failed its checksum or framing checks.
    #[error("corrupt intermediate data: {0}")]
    Corrupt(String),
    /// A configuration value or argument is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// User code (mapper, combiner, reducer, streaming command) failed.
    #[error("{0}")]
    Task(#[from] TaskError),
    /// A precondition of the job does not hold (output exists, input missing, ...).
    #[error("{0}")]
    Job(String),
}

impl EngineError {
    /// Wraps an I/O error with a description of the operation.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        EngineError::Io {
            context: context.into(),
            source,
        }
    }
}

/// Result alias for engine operations.
pub type EngineResult<T> = Result<T, EngineError>;

/// Attaches a context string to I/O results.
pub(crate) trait IoContext<T> {
    /// Maps an I/O error to [`EngineError::Io`] with the given context.
    fn ctx(self, context: impl FnOnce() -> String) -> EngineResult<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> EngineResult<T> {
        self.map_err(|e| EngineError::io(context(), e))
    }
}
