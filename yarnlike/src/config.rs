//! The yarn sections of `sheaf.toml`: `[resourcemanager]`, `[nodemanager]` and `[yarn]` (queues and
//! scheduling). Every key has its default here and is documented in `config/sheaf.toml`.

use crate::protocol::{Resource, YarnError};
use serde::{Deserialize, Serialize};
use sheaf_rpc::config::ConfigFile;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

/// `[resourcemanager]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct ResourceManagerConfig {
    /// Address the RM binds and every client, master and NodeManager dials (QUIC).
    pub address: SocketAddr,
    /// Directory of the RM's state store (sled): application records and queue config.
    pub state_dir: PathBuf,
    /// A NodeManager silent this long is lost (Hadoop: 600 s).
    pub node_timeout_ms: u64,
    /// Master attempts before an application fails (Hadoop: 2).
    pub max_attempts: u32,
    /// Finished applications kept in memory and in the store.
    pub max_completed_apps: usize,
}

impl Default for ResourceManagerConfig {
    fn default() -> Self {
        ResourceManagerConfig {
            address: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8032),
            state_dir: PathBuf::from("/tmp/sheaf/resourcemanager"),
            node_timeout_ms: 600_000,
            max_attempts: 2,
            max_completed_apps: 1000,
        }
    }
}

/// `[nodemanager]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct NodeManagerConfig {
    /// Host identity the NM advertises (the same address as its DataNode).
    pub host: IpAddr,
    /// Rack; empty means "look the host up in `[cluster] topology`" (else `/default-rack`).
    pub rack: String,
    /// Memory offered to containers, MB.
    pub memory_mb: u64,
    /// Virtual cores offered to containers.
    pub vcores: u32,
    /// Container working directories live under here.
    pub local_dir: PathBuf,
    /// Container stdout/stderr live under here.
    pub log_dir: PathBuf,
    /// Longest the RM may hold a heartbeat (long poll); also the liveness beat when idle.
    pub heartbeat_interval_ms: u64,
    /// How often the RSS of every container's process tree is sampled.
    pub monitor_interval_ms: u64,
    /// Kill containers whose process tree's RSS exceeds their memory.
    pub enforce_memory: bool,
    /// Time between SIGTERM and SIGKILL when a container is killed.
    pub kill_grace_ms: u64,
    /// Copy finished applications' container logs into the DFS (`/sheaf/logs/<user>/<app>/`).
    pub aggregate_logs: bool,
    /// UDP port of the MapReduce shuffle aux service on `host` (0: ephemeral; the address is
    /// advertised through the RM either way).
    pub shuffle_port: u16,
}

impl Default for NodeManagerConfig {
    fn default() -> Self {
        NodeManagerConfig {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            rack: String::new(),
            memory_mb: 8192,
            vcores: 8,
            local_dir: PathBuf::from("/tmp/sheaf/nodemanager/local"),
            log_dir: PathBuf::from("/tmp/sheaf/nodemanager/logs"),
            heartbeat_interval_ms: 1_000,
            monitor_interval_ms: 500,
            enforce_memory: true,
            kill_grace_ms: 2_000,
            aggregate_logs: true,
            shuffle_port: 0,
        }
    }
}

/// Largest memory an NM may claim (a typo guard: 16 TB).
pub const MAX_NODE_MEMORY_MB: u64 = 16 << 20;
/// Largest vcore count an NM may claim.
pub const MAX_NODE_VCORES: u32 = 4096;

impl NodeManagerConfig {
    /// Refuses zero or absurd resources.
    pub fn validate(&self) -> Result<Resource, YarnError> {
        if self.memory_mb == 0 || self.memory_mb > MAX_NODE_MEMORY_MB {
            return Err(YarnError::Config(format!(
                "[nodemanager] memory-mb = {} is out of range (1 ..= {MAX_NODE_MEMORY_MB})",
                self.memory_mb
            )));
        }
        if self.vcores == 0 || self.vcores > MAX_NODE_VCORES {
            return Err(YarnError::Config(format!(
                "[nodemanager] vcores = {} is out of range (1 ..= {MAX_NODE_VCORES})",
                self.vcores
            )));
        }
        Ok(Resource::new(self.memory_mb, self.vcores))
    }
}

/// One queue of the capacity tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct QueueConfig {
    /// Full dotted path under `root` ("root.batch", "root.batch.nightly").
    pub path: String,
    /// Guaranteed share of the parent, %. Siblings must sum to 100.
    pub capacity: f64,
    /// Most of the parent it may use when others are idle, %.
    #[serde(default = "hundred")]
    pub max_capacity: f64,
}

fn hundred() -> f64 {
    100.0
}

/// `[yarn]`: scheduling.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct YarnConfig {
    /// The queue tree (leaves take applications). Empty = the queues in the RM's store, or a
    /// single `root.default`.
    pub queues: Vec<QueueConfig>,
    /// Missed scheduling offers before a host preference relaxes to its rack.
    pub node_locality_delay: u32,
    /// Further missed offers before a rack preference relaxes to any node.
    pub rack_locality_delay: u32,
    /// Smallest container memory; asks are rounded up to a multiple of it, MB.
    pub minimum_allocation_mb: u64,
}

impl Default for YarnConfig {
    fn default() -> Self {
        YarnConfig {
            queues: Vec::new(),
            node_locality_delay: 3,
            rack_locality_delay: 3,
            minimum_allocation_mb: 1,
        }
    }
}

/// All yarn sections of one configuration file.
#[derive(Debug, Clone, Default)]
pub struct YarnSections {
    /// `[resourcemanager]`.
    pub resourcemanager: ResourceManagerConfig,
    /// `[nodemanager]`.
    pub nodemanager: NodeManagerConfig,
    /// `[yarn]`.
    pub yarn: YarnConfig,
}

impl YarnSections {
    /// Reads the yarn sections (with `SHEAF_<SECTION>_<KEY>` environment overrides).
    pub fn from_file(file: &ConfigFile) -> Result<YarnSections, YarnError> {
        let conf = |e: sheaf_rpc::RpcError| YarnError::Config(e.to_string());
        Ok(YarnSections {
            resourcemanager: file.section("resourcemanager").map_err(conf)?,
            nodemanager: file.section("nodemanager").map_err(conf)?,
            yarn: file.section("yarn").map_err(conf)?,
        })
    }
}
