//! Sheaf's distributed filesystem.
//!
//! - [`protocol`]: every DFS message (NameNode RPC, DataNode RPC, data stream headers).
//! - [`config`]: the `[cluster]`, `[namenode]`, `[datanode]` and `[dfs]` config sections.
//! - [`path`]: DFS path validation and manipulation.
//! - [`uri`]: [`uri::DfsUri`], the one parser of path arguments (`/abs`, `sheaf://host:port/abs`, …).

pub mod client;
pub mod config;
pub mod datanode;
pub mod namenode;
pub mod path;
pub mod protocol;
pub mod trash;
pub mod uri;
