//! The DFS sections of `sheaf.toml`: `[cluster]`, `[namenode]`, `[datanode]` and `[dfs]` (client).
//! Every key has a default here and is documented in `config/sheaf.toml`.

use serde::{Deserialize, Serialize};
use sheaf_rpc::config::ConfigFile;
use sheaf_rpc::RpcError;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

/// `[cluster]`: what every process of one cluster shares.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// Cluster name (goes into the CA's name).
    pub name: String,
    /// Directory with `ca.pem` and the role certificates made by `sheaf format`.
    pub tls_dir: PathBuf,
    /// Topology file: lines `HOST RACK` (host = IP address); unknown hosts are on `/default-rack`.
    pub topology: Option<PathBuf>,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            name: "sheaf".into(),
            tls_dir: PathBuf::from("/tmp/sheaf/tls"),
            topology: None,
        }
    }
}

/// `[namenode]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct NamenodeConfig {
    /// Address the NameNode binds and clients/DataNodes dial (QUIC).
    pub address: SocketAddr,
    /// Directory of the namespace database (sled) and the edit log.
    pub data_dir: PathBuf,
    /// A DataNode silent this long is dead and its replicas are re-replicated (Hadoop: 630 s).
    pub dead_timeout_ms: u64,
    /// How often the replication monitor runs.
    pub replication_interval_ms: u64,
    /// Most replication copies one DataNode sources or receives at a time.
    pub replication_max_streams: u32,
    /// A writer silent this long loses its lease to others (Hadoop: 60 s).
    pub lease_soft_limit_ms: u64,
    /// A writer silent this long has its files recovered and closed (Hadoop: 1 h).
    pub lease_hard_limit_ms: u64,
    /// Fraction of blocks that must be reported before safe mode ends by itself.
    pub safemode_threshold: f64,
    /// Extra time safe mode stays on after the threshold is reached.
    pub safemode_extension_ms: u64,
    /// Longest wait for more mutations to share one fsync (group commit).
    pub group_commit_window_us: u64,
    /// The edit log is checkpointed into the namespace database once it holds this many bytes.
    pub checkpoint_log_bytes: u64,
}

impl Default for NamenodeConfig {
    fn default() -> Self {
        NamenodeConfig {
            address: SocketAddr::new(
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                crate::uri::DEFAULT_NAMENODE_PORT,
            ),
            data_dir: PathBuf::from("/tmp/sheaf/namenode"),
            dead_timeout_ms: 630_000,
            replication_interval_ms: 3_000,
            replication_max_streams: 2,
            lease_soft_limit_ms: 60_000,
            lease_hard_limit_ms: 3_600_000,
            safemode_threshold: 0.999,
            safemode_extension_ms: 30_000,
            group_commit_window_us: 500,
            checkpoint_log_bytes: crate::namenode::store::CHECKPOINT_LOG_BYTES,
        }
    }
}

/// `[datanode]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct DatanodeConfig {
    /// Address the DataNode binds and advertises (its host identity).
    pub host: IpAddr,
    /// Port of its QUIC control RPC (0 = any).
    pub rpc_port: u16,
    /// Port of its bulk data listener (0 = any).
    pub data_port: u16,
    /// Directory holding `current/blk_*` files and the DataNode's identity.
    pub data_dir: PathBuf,
    /// Heartbeat period (Hadoop: 3 s).
    pub heartbeat_interval_ms: u64,
    /// Period of full block reports (Hadoop: 6 h).
    pub block_report_interval_ms: u64,
    /// Period of a full pass of the block scanner over every replica (Hadoop: 3 weeks).
    pub scan_interval_ms: u64,
    /// Reported capacity; 0 means the size of the file system holding `data-dir`.
    pub capacity_bytes: u64,
    /// Space kept free for non-DFS use; writes fail cleanly below it.
    pub reserved_bytes: u64,
}

impl Default for DatanodeConfig {
    fn default() -> Self {
        DatanodeConfig {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            rpc_port: 0,
            data_port: 0,
            data_dir: PathBuf::from("/tmp/sheaf/datanode"),
            heartbeat_interval_ms: 3_000,
            block_report_interval_ms: 21_600_000,
            scan_interval_ms: 1_814_400_000,
            capacity_bytes: 0,
            reserved_bytes: 0,
        }
    }
}

/// `[dfs]`: client-side defaults.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct DfsClientConfig {
    /// Block size of new files (Hadoop: 128 MiB).
    pub block_size: u64,
    /// Replication of new files.
    pub replication: u16,
    /// Transport for block data: "tcp" (TLS over TCP) or "quic". See ARCHITECTURE.md.
    pub data_transport: String,
    /// Payload bytes per packet on a write pipeline.
    pub packet_size: usize,
    /// Deadline for reaching the NameNode.
    pub connect_timeout_ms: u64,
    /// Octal bits cleared from new files' (0666) and directories' (0777) modes (HDFS's
    /// `fs.permissions.umask-mode`, default 022).
    #[serde(deserialize_with = "octal_digits")]
    pub umask: String,
    /// How long `rm` keeps deleted paths in the user's trash (Hadoop's `fs.trash.interval`,
    /// which is in minutes); 0 deletes at once. The NameNode empties older checkpoints.
    pub trash_interval_ms: u64,
}

/// Octal digits written as a string (`"022"`) or, from `-D dfs.umask=022` or the environment, a
/// number whose decimal digits are the octal ones (`22`).
fn octal_digits<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Digits {
        Text(String),
        Number(u64),
    }
    Ok(match Digits::deserialize(d)? {
        Digits::Text(s) => s,
        Digits::Number(n) => format!("{n:03}"),
    })
}

impl Default for DfsClientConfig {
    fn default() -> Self {
        DfsClientConfig {
            block_size: 128 << 20,
            replication: 3,
            data_transport: "tcp".into(),
            packet_size: 1 << 20,
            connect_timeout_ms: 3_000,
            umask: "022".into(),
            trash_interval_ms: 24 * 60 * 60 * 1000,
        }
    }
}

/// All DFS sections of one configuration file.
#[derive(Debug, Clone, Default)]
pub struct DfsConfig {
    /// `[cluster]`.
    pub cluster: ClusterConfig,
    /// `[namenode]`.
    pub namenode: NamenodeConfig,
    /// `[datanode]`.
    pub datanode: DatanodeConfig,
    /// `[dfs]`.
    pub dfs: DfsClientConfig,
}

impl DfsConfig {
    /// Reads the DFS sections (with `SHEAF_<SECTION>_<KEY>` environment overrides).
    pub fn from_file(file: &ConfigFile) -> Result<DfsConfig, RpcError> {
        Ok(DfsConfig {
            cluster: file.section("cluster")?,
            namenode: file.section("namenode")?,
            datanode: file.section("datanode")?,
            dfs: file.section("dfs")?,
        })
    }
}
