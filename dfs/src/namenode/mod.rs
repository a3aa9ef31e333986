//! The NameNode: namespace, block map, placement, replication, leases and safe mode.
//!
//! Decisions are sans-I/O state machines; the daemon is a thin shell:
//! - [`edit_log`], [`store`], [`namespace`]: the persistent namespace (sled + an fsync'd,
//!   group-committed edit log; see `edit_log` for why).
//! - [`block_manager`], [`placement`], [`topology`]: replica locations, DataNode liveness,
//!   rack-aware placement and the replication monitor.
//! - [`leases`], [`safe_mode`]: writers' leases and safe mode.
//! - [`permissions`]: HDFS's owner/group/mode checks against the caller's certificate.
//! - [`namesystem`]: all of the above behind one request/tick interface (the client and the
//!   DataNode protocol), with lease recovery.
//! - [`daemon`]: the QUIC service and the monitor timers.
//!
//! Public entry points: [`Namenode::start`] → [`RunningNamenode`], and [`format`].

pub mod block_manager;
pub mod daemon;
pub mod edit_log;
pub mod leases;
pub mod namespace;
pub mod namesystem;
pub mod permissions;
pub mod placement;
pub mod safe_mode;
pub mod store;
pub mod topology;

pub use daemon::RunningNamenode;

use crate::config::DfsConfig;
use crate::protocol::NamenodeError;
use sheaf_rpc::TlsIdentity;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Why a NameNode could not start (or format, or stop cleanly).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data dir holds no namespace.
    #[error("{0}: no formatted namespace (run `sheaf format` first)")]
    NotFormatted(PathBuf),
    /// The namespace store failed.
    #[error(transparent)]
    Store(store::StoreError),
    /// Loading the namespace failed.
    #[error("loading the namespace: {0}")]
    Namespace(NamenodeError),
    /// The topology file is unreadable or malformed.
    #[error(transparent)]
    Topology(topology::TopologyError),
    /// A configuration value is invalid.
    #[error("{0}")]
    Config(String),
    /// The RPC address could not be bound.
    #[error(
        "cannot serve on {addr}: {reason} (is another NameNode running? change [namenode] address)"
    )]
    Bind {
        /// The configured address.
        addr: SocketAddr,
        /// What the socket layer said.
        reason: String,
    },
    /// A background task failed unexpectedly.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The NameNode daemon.
pub struct Namenode;

impl Namenode {
    /// Opens the formatted namespace in `[namenode] data-dir`, binds `[namenode] address` with the
    /// daemon `identity` and serves until [`RunningNamenode::shutdown`]. Must run inside a tokio
    /// runtime. Starts in safe mode (left by itself once enough blocks are reported).
    pub async fn start(
        config: &DfsConfig,
        identity: TlsIdentity,
    ) -> Result<RunningNamenode, StartError> {
        if !store::is_formatted(&config.namenode.data_dir) {
            return Err(StartError::NotFormatted(config.namenode.data_dir.clone()));
        }
        daemon::start(config, identity).await
    }
}

/// Creates a fresh, empty namespace in `[namenode] data-dir` named after `[cluster] name`.
/// Refuses if one exists, unless `force` (which destroys it). Blocking (disk I/O).
pub fn format(config: &DfsConfig, force: bool) -> Result<store::FormatInfo, StartError> {
    format_with(config, force, BASE_DIRS)
}

/// Directories every namespace starts with, as a Hadoop installation sets them up: a
/// world-writable, sticky `/tmp` and the parent of the home directories.
pub const BASE_DIRS: &[(&str, u16)] = &[("/tmp", 0o1777), ("/user", 0o755)];

/// [`format`] with `dirs` (path, mode) created, owned by the formatting user in the
/// supergroup: the directories the layers above the DFS need before any user writes there.
pub fn format_with(
    config: &DfsConfig,
    force: bool,
    dirs: &[(&str, u16)],
) -> Result<store::FormatInfo, StartError> {
    let dir = &config.namenode.data_dir;
    store::create_empty(dir, force).map_err(StartError::Store)?;
    let window = Duration::from_micros(config.namenode.group_commit_window_us);
    let st = store::NamespaceStore::open(dir, window, true).map_err(StartError::Store)?;
    let mut ns = namespace::Namespace::load(st).map_err(StartError::Namespace)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    // The superuser is whoever formats, as HDFS's is the user who formats and runs the
    // NameNode; `sheaf format` names the admin certificate after the same user.
    let owner = sheaf_rpc::identity::os_user();
    ns.init_root(&owner, sheaf_rpc::identity::SUPERGROUP, now)
        .map_err(StartError::Namespace)?;
    for (path, mode) in dirs {
        ns.mkdirs(path, true, 0o755, &owner, now)
            .and_then(|()| ns.set_permission(path, *mode))
            .map_err(StartError::Namespace)?;
    }
    ns.store_mut().checkpoint().map_err(StartError::Store)?;
    drop(ns);
    let info = store::FormatInfo {
        cluster: config.cluster.name.clone(),
        namespace_id: rand::random::<u64>() >> 1,
        created_ms: now,
    };
    store::mark_formatted(dir, &info).map_err(StartError::Store)?;
    Ok(info)
}
