//! What DataFusion learns about a file when it first scans it (a Parquet footer with its page
//! index, a file's statistics), kept for later sessions of the same process. An executor plans
//! and runs every statement of a SQL session in a session of its own; without these caches each
//! statement would read every footer of its tables again, at planning and in every scan task.
//! Entries are checked against the file's size and modification time before use, so a file
//! rewritten since is read again.

use datafusion::execution::cache::cache_manager::{
    CacheManagerConfig, FileMetadataCache, FileStatisticsCache,
};
use datafusion::execution::runtime_env::RuntimeEnv;
use std::sync::Arc;

/// Footer and statistics caches shared by sessions (empty: each session starts its own).
#[derive(Clone, Default)]
pub struct ScanCaches {
    statistics: Option<Arc<FileStatisticsCache>>,
    metadata: Option<Arc<FileMetadataCache>>,
}

impl ScanCaches {
    /// The caches a session's runtime uses, for the next sessions to share.
    pub fn of(runtime: &RuntimeEnv) -> ScanCaches {
        ScanCaches {
            statistics: runtime.cache_manager.get_file_statistic_cache(),
            metadata: Some(runtime.cache_manager.get_file_metadata_cache()),
        }
    }

    /// A runtime's cache configuration using these caches. File listings are not cached at
    /// all: a table's files change under Sheaf's commits (`COPY`, CTAS, a dropped and re-created
    /// table), which DataFusion's listing cache would not see; a listing is one NameNode call.
    pub(crate) fn config(&self) -> CacheManagerConfig {
        CacheManagerConfig::default()
            .with_file_statistics_cache(self.statistics.clone())
            .with_file_metadata_cache(self.metadata.clone())
            .with_list_files_cache_limit(0)
    }
}
