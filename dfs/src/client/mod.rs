//! The DFS client library: what every other crate (MapReduce, yarn, the CLI) uses to talk to a
//! Sheaf cluster. Metadata goes to the NameNode over QUIC RPC; block data goes straight to the
//! DataNodes over bulk streams ([`DfsWriter`] write pipelines, [`DfsReader`] replica reads).
//!
//! ```ignore
//! let client = DfsClient::connect(&config, identity).await?;
//! let mut w = client.create("/data/x", false, None, None).await?;
//! w.write_all(b"hello").await?;
//! w.close().await?;
//! let bytes = client.open("/data/x").await?.read_to_end().await?;
//! ```

mod error;
mod local;
mod reader;
mod user;
mod writer;

pub use error::{DfsError, NoDatanodesReason};
pub use local::CopyProgress;
pub use reader::DfsReader;
pub use user::{current_user, home_dir};
pub use writer::{DfsWriter, WriteOutcome};

use crate::config::DfsConfig;
use crate::protocol::{
    ClientRequest, ContentSummary, DatanodeReply, DatanodeReport, DatanodeRequest,
    DatanodeResponse, ExtendedBlock, FileStatus, FsStats, FsckFile, LocatedBlocks, NamenodeReply,
    NamenodeRequest, NamenodeResponse, SafeModeAction,
};
use sheaf_rpc::{
    quic, BulkConnector, BulkTransport, RetryPolicy, RpcClient, RpcError, TlsIdentity,
};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// Mode of new files before the umask (HDFS: 0666).
const FILE_MODE: u16 = 0o666;
/// Mode of new directories before the umask (HDFS: 0777).
const DIR_MODE: u16 = 0o777;

/// A connection to one Sheaf cluster. Cheap to clone; clones share connections.
#[derive(Clone)]
pub struct DfsClient {
    inner: Arc<ClientInner>,
}

pub(crate) struct ClientInner {
    pub(crate) config: DfsConfig,
    pub(crate) namenode: SocketAddr,
    rpc: RpcClient,
    pub(crate) bulk: BulkConnector,
    /// Lease holder name of this client (unique per process and connection).
    pub(crate) name: String,
    /// The host this client runs on, if it should be treated as a DataNode host for placement.
    pub(crate) client_host: Option<IpAddr>,
    pub(crate) user: String,
    /// Bits cleared from the mode of new files and directories (`[dfs] umask`, HDFS's
    /// `fs.permissions.umask-mode`).
    pub(crate) umask: u16,
    /// Files open for write: the lease renewer only talks to the NameNode while this is > 0.
    pub(crate) open_writers: AtomicUsize,
}

impl DfsClient {
    /// Connects to the NameNode of `config` presenting `identity` (the `user` role). No network
    /// traffic happens until the first call; an unreachable NameNode is an error within
    /// `[dfs] connect-timeout-ms`.
    pub async fn connect(config: &DfsConfig, identity: TlsIdentity) -> Result<DfsClient, DfsError> {
        Self::connect_from(config, identity, None).await
    }

    /// Like [`DfsClient::connect`], for a client running on `host` (a worker's address): the
    /// NameNode then places first replicas there and sorts replicas by distance to it.
    pub async fn connect_from(
        config: &DfsConfig,
        identity: TlsIdentity,
        host: Option<IpAddr>,
    ) -> Result<DfsClient, DfsError> {
        let namenode = config.namenode.address;
        let local_ip = host.unwrap_or(match namenode.ip() {
            IpAddr::V4(ip) if ip.is_loopback() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(ip) if ip.is_loopback() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        });
        let transport: BulkTransport = config
            .dfs
            .data_transport
            .parse()
            .map_err(DfsError::Config)?;
        if config.dfs.packet_size == 0
            || !config
                .dfs
                .packet_size
                .is_multiple_of(sheaf_rpc::packet::CHUNK)
        {
            return Err(DfsError::Config(format!(
                "[dfs] packet-size = {} must be a positive multiple of {}",
                config.dfs.packet_size,
                sheaf_rpc::packet::CHUNK
            )));
        }
        if config.dfs.packet_size > sheaf_rpc::packet::MAX_PAYLOAD {
            return Err(DfsError::Config(format!(
                "[dfs] packet-size = {} exceeds the packet limit of {}",
                config.dfs.packet_size,
                sheaf_rpc::packet::MAX_PAYLOAD
            )));
        }
        let endpoint = quic::client_endpoint(local_ip, &identity).map_err(DfsError::Rpc)?;
        let mut rpc = RpcClient::new(endpoint);
        rpc.connect_timeout = Duration::from_millis(config.dfs.connect_timeout_ms.max(100));
        let mut bulk = BulkConnector::new(transport, &identity, local_ip).map_err(DfsError::Rpc)?;
        bulk.connect_timeout = Duration::from_millis(config.dfs.connect_timeout_ms.max(100));
        let name = format!(
            "sheaf-client-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        );
        // The NameNode believes the certificate, not us: name files after what it says.
        let user = identity
            .identity()
            .map(|i| i.name)
            .unwrap_or_else(|_| current_user());
        let umask = u16::from_str_radix(config.dfs.umask.trim(), 8)
            .ok()
            .filter(|m| *m <= 0o777)
            .ok_or_else(|| {
                DfsError::Config(format!(
                    "[dfs] umask = \"{}\" is not an octal mode such as 022",
                    config.dfs.umask
                ))
            })?;
        let inner = Arc::new(ClientInner {
            config: config.clone(),
            namenode,
            rpc,
            bulk,
            name,
            client_host: host,
            user,
            umask,
            open_writers: AtomicUsize::new(0),
        });
        spawn_lease_renewer(Arc::downgrade(&inner), lease_renew_period(config));
        Ok(DfsClient { inner })
    }

    /// The configuration this client was made from.
    pub fn config(&self) -> &DfsConfig {
        &self.inner.config
    }

    /// The NameNode address.
    pub fn namenode_addr(&self) -> SocketAddr {
        self.inner.namenode
    }

    /// The lease holder name of this client.
    pub fn client_name(&self) -> &str {
        &self.inner.name
    }

    /// Status of `path`, `None` if it does not exist.
    pub async fn status(&self, path: &str) -> Result<Option<FileStatus>, DfsError> {
        let path = crate::path::normalize(path)?;
        match self
            .inner
            .call_idempotent(ClientRequest::GetFileInfo { path })
            .await?
        {
            NamenodeReply::FileInfo(s) => Ok(s),
            _ => Err(DfsError::UnexpectedReply("GetFileInfo")),
        }
    }

    /// Entries of a directory (or the file itself), sorted by name.
    pub async fn list(&self, path: &str) -> Result<Vec<FileStatus>, DfsError> {
        let path = crate::path::normalize(path)?;
        match self
            .inner
            .call_idempotent(ClientRequest::ListStatus { path })
            .await?
        {
            NamenodeReply::Listing(mut l) => {
                l.sort_by(|a, b| a.path.cmp(&b.path));
                Ok(l)
            }
            _ => Err(DfsError::UnexpectedReply("ListStatus")),
        }
    }

    /// Creates a directory (with `parents`, like `mkdir -p`: existing directories are fine).
    pub async fn mkdirs(&self, path: &str, parents: bool) -> Result<(), DfsError> {
        let path = crate::path::normalize(path)?;
        let req = ClientRequest::Mkdirs {
            path,
            parents,
            mode: DIR_MODE & !self.inner.umask,
        };
        self.inner.call_idempotent(req).await.map(|_| ())
    }

    /// Deletes `path`; a non-empty directory needs `recursive`. Returns whether anything was deleted.
    pub async fn delete(&self, path: &str, recursive: bool) -> Result<bool, DfsError> {
        let path = crate::path::normalize(path)?;
        match self
            .inner
            .call_once(ClientRequest::Delete { path, recursive })
            .await?
        {
            NamenodeReply::Deleted(d) => Ok(d),
            NamenodeReply::Done => Ok(true),
            _ => Err(DfsError::UnexpectedReply("Delete")),
        }
    }

    /// Renames `src` to `dst` (into `dst` when it is a directory, like Hadoop).
    pub async fn rename(&self, src: &str, dst: &str) -> Result<(), DfsError> {
        let src = crate::path::normalize(src)?;
        let dst = crate::path::normalize(dst)?;
        self.inner
            .call_once(ClientRequest::Rename { src, dst })
            .await
            .map(|_| ())
    }

    /// Changes a file's target replication.
    pub async fn set_replication(&self, path: &str, replication: u16) -> Result<(), DfsError> {
        let path = crate::path::normalize(path)?;
        self.inner
            .call_idempotent(ClientRequest::SetReplication { path, replication })
            .await
            .map(|_| ())
    }

    /// `chmod`: sets a path's permission bits (its owner or the superuser).
    pub async fn set_permission(&self, path: &str, mode: u16) -> Result<(), DfsError> {
        let path = crate::path::normalize(path)?;
        self.inner
            .call_idempotent(ClientRequest::SetPermission { path, mode })
            .await
            .map(|_| ())
    }

    /// `chown`/`chgrp`: sets a path's owner (superuser only) and/or group.
    pub async fn set_owner(
        &self,
        path: &str,
        owner: Option<&str>,
        group: Option<&str>,
    ) -> Result<(), DfsError> {
        let path = crate::path::normalize(path)?;
        let req = ClientRequest::SetOwner {
            path,
            owner: owner.map(str::to_string),
            group: group.map(str::to_string),
        };
        self.inner.call_idempotent(req).await.map(|_| ())
    }

    /// Who this client is to the NameNode (its certificate's identity).
    pub fn user(&self) -> &str {
        &self.inner.user
    }

    /// Sets a path's modification time.
    pub async fn set_mtime(&self, path: &str, mtime_ms: u64) -> Result<(), DfsError> {
        let path = crate::path::normalize(path)?;
        self.inner
            .call_idempotent(ClientRequest::SetTimes { path, mtime_ms })
            .await
            .map(|_| ())
    }

    /// Sizes of the subtree at `path`.
    pub async fn content_summary(&self, path: &str) -> Result<ContentSummary, DfsError> {
        let path = crate::path::normalize(path)?;
        match self
            .inner
            .call_idempotent(ClientRequest::GetContentSummary { path })
            .await?
        {
            NamenodeReply::Summary(s) => Ok(s),
            _ => Err(DfsError::UnexpectedReply("GetContentSummary")),
        }
    }

    /// Cluster capacity and block health counts.
    pub async fn stats(&self) -> Result<FsStats, DfsError> {
        match self.inner.call_idempotent(ClientRequest::GetStats).await? {
            NamenodeReply::Stats(s) => Ok(s),
            _ => Err(DfsError::UnexpectedReply("GetStats")),
        }
    }

    /// Per-file, per-block health of the subtree at `path`.
    pub async fn fsck(&self, path: &str) -> Result<Vec<FsckFile>, DfsError> {
        let path = crate::path::normalize(path)?;
        match self
            .inner
            .call_idempotent(ClientRequest::Fsck { path })
            .await?
        {
            NamenodeReply::Fsck(f) => Ok(f),
            _ => Err(DfsError::UnexpectedReply("Fsck")),
        }
    }

    /// Every DataNode the NameNode knows, live and dead.
    pub async fn datanode_report(&self) -> Result<Vec<DatanodeReport>, DfsError> {
        match self
            .inner
            .call_idempotent(ClientRequest::DatanodeReport)
            .await?
        {
            NamenodeReply::Datanodes(d) => Ok(d),
            _ => Err(DfsError::UnexpectedReply("DatanodeReport")),
        }
    }

    /// Queries or changes safe mode; returns whether it is on afterwards.
    pub async fn safe_mode(&self, action: SafeModeAction) -> Result<bool, DfsError> {
        match self
            .inner
            .call_idempotent(ClientRequest::SafeMode { action })
            .await?
        {
            NamenodeReply::SafeMode(on) => Ok(on),
            _ => Err(DfsError::UnexpectedReply("SafeMode")),
        }
    }

    /// Block locations of `len` bytes of `path` from `offset`.
    pub async fn block_locations(
        &self,
        path: &str,
        offset: u64,
        len: u64,
    ) -> Result<LocatedBlocks, DfsError> {
        let path = crate::path::normalize(path)?;
        self.inner.block_locations(&path, offset, len).await
    }

    /// Creates a file for writing. `replication`/`block_size` default to the `[dfs]` config.
    pub async fn create(
        &self,
        path: &str,
        overwrite: bool,
        replication: Option<u16>,
        block_size: Option<u64>,
    ) -> Result<DfsWriter, DfsError> {
        let path = crate::path::normalize(path)?;
        let replication = replication
            .unwrap_or(self.inner.config.dfs.replication)
            .max(1);
        let block_size = block_size.unwrap_or(self.inner.config.dfs.block_size);
        if block_size == 0 || !block_size.is_multiple_of(sheaf_rpc::packet::CHUNK as u64) {
            return Err(DfsError::Config(format!(
                "block size {block_size} must be a positive multiple of {}",
                sheaf_rpc::packet::CHUNK
            )));
        }
        let req = ClientRequest::Create {
            path: path.clone(),
            overwrite,
            replication,
            block_size,
            client: self.inner.name.clone(),
            client_host: self.inner.client_host,
            mode: FILE_MODE & !self.inner.umask,
        };
        match self.inner.call_once(req).await? {
            NamenodeReply::Created(status) => Ok(DfsWriter::new(self.inner.clone(), path, status)),
            _ => Err(DfsError::UnexpectedReply("Create")),
        }
    }

    /// Opens a file for reading.
    pub async fn open(&self, path: &str) -> Result<DfsReader, DfsError> {
        let path = crate::path::normalize(path)?;
        DfsReader::open(self.inner.clone(), path).await
    }

    /// The whole content of a (small) file.
    pub async fn read_file(&self, path: &str) -> Result<Vec<u8>, DfsError> {
        self.open(path).await?.read_to_end().await
    }

    /// Writes `data` as the whole content of `path`.
    pub async fn write_file(
        &self,
        path: &str,
        data: &[u8],
        overwrite: bool,
    ) -> Result<WriteOutcome, DfsError> {
        let mut w = self.create(path, overwrite, None, None).await?;
        w.write_all(data).await?;
        w.close().await
    }

    /// The MD5-of-MD5-of-CRC32 checksum of a file, like Hadoop's `MD5-of-0MD5-of-<bpc>CRC32`:
    /// returns (bytes per crc, crcs per block of the first block, the digest).
    pub async fn file_checksum(&self, path: &str) -> Result<FileChecksum, DfsError> {
        let path = crate::path::normalize(path)?;
        let located = self.inner.block_locations(&path, 0, u64::MAX).await?;
        let mut block_digests = Vec::new();
        let mut bytes_per_crc = sheaf_rpc::packet::CHUNK as u32;
        let mut crcs_per_block = 0u64;
        for (i, lb) in located.blocks.iter().enumerate() {
            let mut last_err = None;
            let mut got = None;
            for dn in &lb.locations {
                match self
                    .inner
                    .datanode_call(
                        dn.rpc_addr(),
                        DatanodeRequest::BlockChecksum { block: lb.block },
                    )
                    .await
                {
                    Ok(DatanodeReply::Checksum {
                        bytes_per_crc: b,
                        crc_count,
                        digest,
                    }) => {
                        got = Some((b, crc_count, digest));
                        break;
                    }
                    Ok(_) => last_err = Some("unexpected reply to BlockChecksum".to_string()),
                    Err(e) => last_err = Some(e.to_string()),
                }
            }
            let (b, count, digest) = got.ok_or_else(|| DfsError::BlockUnreadable {
                path: path.clone(),
                block: lb.block.id,
                reason: last_err.unwrap_or_else(|| "no live replica".into()),
            })?;
            if i == 0 {
                bytes_per_crc = b;
                crcs_per_block = count;
            }
            block_digests.extend_from_slice(&digest);
        }
        Ok(FileChecksum {
            bytes_per_crc,
            crcs_per_block,
            md5: {
                use md5::{Digest, Md5};
                Md5::digest(&block_digests).into()
            },
        })
    }
}

/// A file checksum (`dfs checksum`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChecksum {
    /// Bytes covered by one crc32.
    pub bytes_per_crc: u32,
    /// Crcs in the first block.
    pub crcs_per_block: u64,
    /// MD5 over the concatenated per-block digests.
    pub md5: [u8; 16],
}

impl FileChecksum {
    /// Hadoop's algorithm name, e.g. `MD5-of-16MD5-of-65536CRC32`.
    pub fn algorithm(&self) -> String {
        format!(
            "MD5-of-{}MD5-of-{}CRC32",
            self.crcs_per_block, self.bytes_per_crc
        )
    }
    /// The digest in hex.
    pub fn hex(&self) -> String {
        self.md5.iter().map(|b| format!("{b:02x}")).collect()
    }
}

fn lease_renew_period(config: &DfsConfig) -> Duration {
    let soft = config.namenode.lease_soft_limit_ms;
    Duration::from_millis((soft / 3).clamp(200, 20_000))
}

/// Renews this client's leases while it has files open for write; stops when the client is gone.
fn spawn_lease_renewer(inner: Weak<ClientInner>, period: Duration) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(period).await;
            let Some(inner) = inner.upgrade() else { return };
            if inner.open_writers.load(Ordering::SeqCst) == 0 {
                continue;
            }
            let req = ClientRequest::RenewLease {
                client: inner.name.clone(),
            };
            if let Err(e) = inner.call_once(req).await {
                tracing::warn!(error = %e, "lease renewal failed");
            }
        }
    });
}

impl ClientInner {
    fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            attempts: 3,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(1),
        }
    }

    fn call_deadline(&self) -> Duration {
        Duration::from_secs(30)
    }

    /// One NameNode call that must not be repeated blindly (create, delete, rename, …).
    pub(crate) async fn call_once(&self, req: ClientRequest) -> Result<NamenodeReply, DfsError> {
        let req = NamenodeRequest::Client(req);
        let resp: NamenodeResponse = self
            .rpc
            .call_within(self.namenode, &req, self.call_deadline())
            .await
            .map_err(|e| DfsError::from_namenode_rpc(self.namenode, e))?;
        resp.map_err(DfsError::Namenode)
    }

    /// A NameNode call that is safe to repeat: retried on transient failures. The first
    /// attempt's connect failure is final when the NameNode is simply not there (a refused or
    /// silent address), so an absent cluster is reported within the connect deadline.
    pub(crate) async fn call_idempotent(
        &self,
        req: ClientRequest,
    ) -> Result<NamenodeReply, DfsError> {
        let req = NamenodeRequest::Client(req);
        let policy = self.retry_policy();
        let mut attempt = 1;
        loop {
            let r: Result<NamenodeResponse, RpcError> = self
                .rpc
                .call_within(self.namenode, &req, self.call_deadline())
                .await;
            match r {
                Ok(resp) => return resp.map_err(DfsError::Namenode),
                Err(e @ RpcError::Timeout { .. }) => {
                    return Err(DfsError::from_namenode_rpc(self.namenode, e))
                }
                Err(e) if e.is_transient() && attempt < policy.attempts => {
                    attempt += 1;
                    tokio::time::sleep(policy.backoff(attempt)).await;
                }
                Err(e) => return Err(DfsError::from_namenode_rpc(self.namenode, e)),
            }
        }
    }

    pub(crate) async fn block_locations(
        &self,
        path: &str,
        offset: u64,
        len: u64,
    ) -> Result<LocatedBlocks, DfsError> {
        let req = ClientRequest::GetBlockLocations {
            path: path.to_string(),
            offset,
            len,
            client_host: self.client_host,
        };
        match self.call_idempotent(req).await? {
            NamenodeReply::Locations(l) => Ok(l),
            _ => Err(DfsError::UnexpectedReply("GetBlockLocations")),
        }
    }

    /// One call on a DataNode's control RPC.
    pub(crate) async fn datanode_call(
        &self,
        addr: SocketAddr,
        req: DatanodeRequest,
    ) -> Result<DatanodeReply, DfsError> {
        let resp: DatanodeResponse = self
            .rpc
            .call_within(addr, &req, Duration::from_secs(30))
            .await
            .map_err(DfsError::Rpc)?;
        resp.map_err(|source| DfsError::Datanode { addr, source })
    }

    /// Tells the NameNode a replica failed its checksum (best effort).
    pub(crate) async fn report_bad_block(&self, block: ExtendedBlock, datanode_uuid: &str) {
        let req = ClientRequest::ReportBadBlock {
            block,
            datanode_uuid: datanode_uuid.to_string(),
        };
        if let Err(e) = self.call_once(req).await {
            tracing::warn!(error = %e, block = block.id, "could not report a bad replica");
        }
    }
}
