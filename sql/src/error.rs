//! Errors of Sheaf SQL, each with a message a user can act on.

use datafusion::error::DataFusionError;

/// Everything planning or running a statement can fail with.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// DataFusion refused or failed the statement (parse, plan or execution error).
    #[error("{}", clean_datafusion_message(.0))]
    DataFusion(#[from] DataFusionError),
    /// A DFS operation failed (metastore, commit, listing).
    #[error("{0}")]
    Dfs(#[from] sheaf_dfs::client::DfsError),
    /// The catalog in the DFS (or the local metastore dir) could not be read or written.
    #[error("metastore: {0}")]
    Metastore(String),
    /// A table named in a DDL statement exists, or does not.
    #[error("{0}")]
    Catalog(String),
    /// A local file or directory (stage outputs, local metastore) failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A stage output file failed its checksum or is malformed.
    #[error("stage output {path}: {reason}")]
    CorruptStageOutput {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A statement Sheaf does not support (yet).
    #[error("{0}")]
    Unsupported(String),
    /// The cluster (ResourceManager, query master, executors) failed or refused.
    #[error("{0}")]
    Cluster(String),
    /// A setting (`-D key=value`, `SET`) is invalid.
    #[error("{0}")]
    Config(String),
    /// A task of a cluster query ran out of its memory budget.
    #[error("{0}")]
    OutOfMemory(String),
}

/// DataFusion's messages carry a prefix per error layer ("Error during planning: …"); keep the
/// layer name only where it tells the user something.
fn clean_datafusion_message(e: &DataFusionError) -> String {
    match innermost(e) {
        DataFusionError::SQL(inner, _) => format!("syntax error: {inner}"),
        DataFusionError::Plan(msg) => msg.clone(),
        DataFusionError::SchemaError(inner, _) => inner.to_string(),
        DataFusionError::ArrowError(inner, _) => inner.to_string(),
        DataFusionError::Execution(msg) => msg.clone(),
        DataFusionError::External(inner) => inner.to_string(),
        DataFusionError::ObjectStore(inner) => inner.to_string(),
        DataFusionError::ResourcesExhausted(msg) => format!("out of memory: {msg}"),
        other => other.to_string(),
    }
}

/// The error under the context layers added while executing: the one to act on.
pub(crate) fn innermost(mut e: &DataFusionError) -> &DataFusionError {
    loop {
        match e {
            DataFusionError::Context(_, inner) => e = inner,
            DataFusionError::Shared(inner) => e = inner.as_ref(),
            DataFusionError::Diagnostic(_, inner) => e = inner,
            _ => return e,
        }
    }
}

impl SqlError {
    /// Whether an operator ran out of its memory budget (DataFusion's `ResourcesExhausted`, here
    /// or in a cluster task).
    pub fn is_out_of_memory(&self) -> bool {
        match self {
            SqlError::OutOfMemory(_) => true,
            SqlError::DataFusion(e) => {
                matches!(innermost(e), DataFusionError::ResourcesExhausted(_))
            }
            _ => false,
        }
    }

    /// An I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> SqlError {
        SqlError::Io {
            context: context.into(),
            source,
        }
    }
}

/// Results of this crate.
pub type SqlResult<T> = Result<T, SqlError>;
