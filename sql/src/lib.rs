//! Sheaf SQL: DataFusion plans and executes, Sheaf distributes (DESIGN §9).

pub mod block_splits;
pub mod catalog;
pub mod cluster;
pub mod dataset;
pub mod dfs_store;
pub mod error;
pub mod executor;
pub mod hidden_files;
pub mod history;
pub mod output;
pub mod scan_caches;
pub mod scan_errors;
pub mod script;
pub mod session;
pub mod settings;
pub mod stage_store;
pub mod stages;
pub mod tpch;

pub use dataset::Dataset;
pub use error::{SqlError, SqlResult};
pub use session::{SqlSession, SqlSettings, StatementOutcome};

/// The DataFusion this crate is built on (one pinned version for the whole workspace).
pub use datafusion;
