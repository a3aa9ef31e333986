//! Every message of the DFS, in one place: the NameNode's RPC service (clients and DataNodes),
//! the DataNode's control RPC, and the headers of the DataNode's bulk data streams.
//!
//! Control messages travel as rmp-serde frames over QUIC (`sheaf_rpc::service`); block data
//! travels on bulk streams (`sheaf_rpc::bulk`) as a [`DataRequest`] frame followed by
//! checksummed packets (`sheaf_rpc::packet`) and [`PipelineAck`] frames.

use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};

/// A block's identity, unique in the cluster for ever.
pub type BlockId = u64;

/// A block id with its generation stamp (bumped by pipeline and lease recovery) and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ExtendedBlock {
    /// The block id.
    pub id: BlockId,
    /// The generation stamp; a replica with an older one is stale.
    pub gen: u64,
    /// Bytes in the block (finalized length, or bytes so far for a block being written).
    pub len: u64,
}

/// Where a DataNode can be reached. `uuid` is its identity for ever (stored in its data dir).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DatanodeAddr {
    /// Stable identity of the DataNode.
    pub uuid: String,
    /// The host address it advertises (its loopback address in a pseudo-cluster).
    pub host: IpAddr,
    /// Port of its QUIC control RPC.
    pub rpc_port: u16,
    /// Port of its bulk data listener.
    pub data_port: u16,
}

impl DatanodeAddr {
    /// The control RPC address.
    pub fn rpc_addr(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.rpc_port)
    }
    /// The bulk data address.
    pub fn data_addr(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.data_port)
    }
}

/// Whether an inode is a file or a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FileKind {
    /// A regular file.
    File,
    /// A directory.
    Directory,
}

/// What `stat`/`ls` show about a path (Hadoop's FileStatus).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStatus {
    /// Absolute, normalized path.
    pub path: String,
    /// File or directory.
    pub kind: FileKind,
    /// Length in bytes (0 for directories).
    pub len: u64,
    /// Target replication (0 for directories).
    pub replication: u16,
    /// Block size of the file (0 for directories).
    pub block_size: u64,
    /// Modification time, ms since the Unix epoch.
    pub mtime_ms: u64,
    /// Access time, ms since the Unix epoch.
    pub atime_ms: u64,
    /// Owner user name.
    pub owner: String,
    /// Owner group name.
    pub group: String,
    /// Permission bits (e.g. 0o644).
    pub mode: u16,
}

/// A block of a file with the DataNodes holding it, best first for the asking client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocatedBlock {
    /// The block.
    pub block: ExtendedBlock,
    /// Offset of the block's first byte within the file.
    pub offset: u64,
    /// Live replicas, sorted by distance to the client (same host, same rack, other).
    pub locations: Vec<DatanodeAddr>,
    /// Replicas known to be corrupt (not in `locations`).
    pub corrupt_locations: Vec<DatanodeAddr>,
}

/// The blocks of a file for a read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocatedBlocks {
    /// The file's length.
    pub file_len: u64,
    /// The blocks overlapping the requested range, in order.
    pub blocks: Vec<LocatedBlock>,
}

/// `du`/`count` for a subtree.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentSummary {
    /// Bytes in all files.
    pub length: u64,
    /// Bytes times replication.
    pub space_consumed: u64,
    /// Number of files.
    pub files: u64,
    /// Number of directories (the root of the subtree included).
    pub directories: u64,
}

/// Cluster-wide capacity (`df`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FsStats {
    /// Raw capacity of all live DataNodes.
    pub capacity: u64,
    /// Bytes used by block replicas.
    pub used: u64,
    /// Bytes still available.
    pub remaining: u64,
    /// Blocks with fewer live replicas than wanted.
    pub under_replicated_blocks: u64,
    /// Blocks with a corrupt replica.
    pub corrupt_blocks: u64,
    /// Blocks with no live replica.
    pub missing_blocks: u64,
}

/// Liveness of a DataNode as the NameNode sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DatanodeState {
    /// Heartbeating.
    Live,
    /// Silent past the dead timeout.
    Dead,
}

/// One DataNode in `dfsadmin report`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatanodeReport {
    /// Where it is.
    pub addr: DatanodeAddr,
    /// Its rack from the topology file.
    pub rack: String,
    /// Live or dead.
    pub state: DatanodeState,
    /// Raw capacity.
    pub capacity: u64,
    /// Bytes used by blocks.
    pub used: u64,
    /// Bytes available.
    pub remaining: u64,
    /// Replicas it holds.
    pub blocks: u64,
    /// Milliseconds since its last heartbeat.
    pub last_contact_ms: u64,
    /// Last error it reported (full disk, read-only dir), if any.
    pub last_error: Option<String>,
}

/// Health of one block in `fsck`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BlockHealth {
    /// Live replicas ≥ target.
    Healthy,
    /// Some live replicas, fewer than the target.
    UnderReplicated {
        /// Live replicas.
        live: u16,
        /// Target replication.
        target: u16,
    },
    /// Some replicas corrupt (good ones may remain).
    Corrupt {
        /// Live good replicas.
        live: u16,
        /// Corrupt replicas.
        corrupt: u16,
    },
    /// No live replica at all.
    Missing,
}

/// `fsck` result for one block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FsckBlock {
    /// The block.
    pub block: ExtendedBlock,
    /// Its health.
    pub health: BlockHealth,
    /// Live replica holders.
    pub locations: Vec<DatanodeAddr>,
}

/// `fsck` result for one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FsckFile {
    /// The file.
    pub path: String,
    /// Its length.
    pub len: u64,
    /// Target replication.
    pub replication: u16,
    /// Every block.
    pub blocks: Vec<FsckBlock>,
    /// True if the file is open for write (its last block may be short).
    pub open_for_write: bool,
}

/// `dfsadmin safemode …`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SafeModeAction {
    /// Report the state.
    Get,
    /// Enter safe mode manually.
    Enter,
    /// Leave safe mode.
    Leave,
}

/// A request to the NameNode's one RPC service: either protocol it speaks.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum NamenodeRequest {
    /// From a DFS client (Hadoop's ClientProtocol).
    Client(ClientRequest),
    /// From a DataNode (Hadoop's DatanodeProtocol).
    Datanode(DatanodeProtocolRequest),
}

impl From<ClientRequest> for NamenodeRequest {
    fn from(r: ClientRequest) -> NamenodeRequest {
        NamenodeRequest::Client(r)
    }
}

impl From<DatanodeProtocolRequest> for NamenodeRequest {
    fn from(r: DatanodeProtocolRequest) -> NamenodeRequest {
        NamenodeRequest::Datanode(r)
    }
}

/// The client protocol: namespace operations, the write path, reads and administration.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ClientRequest {
    /// Status of one path, `None` if absent.
    GetFileInfo { path: String },
    /// Entries of a directory (or the file itself).
    ListStatus { path: String },
    /// Create a directory; with `parents` like `mkdir -p`. Owned by the caller (its
    /// certificate's name), in the parent's group; `mode` has the client's umask applied.
    Mkdirs {
        path: String,
        parents: bool,
        mode: u16,
    },
    /// Create a file open for write, with a lease held by `client`. `client_host` lets
    /// placement put the first replica on the writer's node.
    Create {
        path: String,
        overwrite: bool,
        replication: u16,
        block_size: u64,
        client: String,
        client_host: Option<IpAddr>,
        mode: u16,
    },
    /// Allocate the next block of a file being written; `previous` is the completed last block
    /// (with its final length); `excluded` DataNodes failed for this client.
    AddBlock {
        path: String,
        client: String,
        previous: Option<ExtendedBlock>,
        excluded: Vec<String>,
    },
    /// Give up a block the client could not write to any node.
    AbandonBlock {
        path: String,
        client: String,
        block: ExtendedBlock,
    },
    /// Pipeline recovery: a new generation stamp for `block` (a DataNode failed mid-write).
    UpdateBlockForPipeline {
        path: String,
        client: String,
        block: ExtendedBlock,
    },
    /// Pipeline recovery: the surviving pipeline for the new generation stamp.
    UpdatePipeline {
        path: String,
        client: String,
        old: ExtendedBlock,
        new: ExtendedBlock,
        nodes: Vec<String>,
    },
    /// Close a file: `last` is its final last block; the lease is released.
    Complete {
        path: String,
        client: String,
        last: Option<ExtendedBlock>,
    },
    /// Keep the client's leases alive.
    RenewLease { client: String },
    /// Block locations for a byte range of a file.
    GetBlockLocations {
        path: String,
        offset: u64,
        len: u64,
        client_host: Option<IpAddr>,
    },
    /// Delete a path; a non-empty directory needs `recursive`.
    Delete { path: String, recursive: bool },
    /// Rename `src` to `dst` (Hadoop semantics: into `dst` if it is a directory).
    Rename { src: String, dst: String },
    /// Change a file's target replication.
    SetReplication { path: String, replication: u16 },
    /// `chmod`: set a path's permission bits (owner or superuser).
    SetPermission { path: String, mode: u16 },
    /// `chown`/`chgrp`: set a path's owner (superuser only) and/or group (owner, to a group
    /// it belongs to, or superuser).
    SetOwner {
        path: String,
        owner: Option<String>,
        group: Option<String>,
    },
    /// Set modification time (`touchz` on an existing empty file, `cp -p`).
    SetTimes { path: String, mtime_ms: u64 },
    /// Sizes of a subtree.
    GetContentSummary { path: String },
    /// Cluster capacity and block health counts.
    GetStats,
    /// Per-file, per-block health of a subtree.
    Fsck { path: String },
    /// Every DataNode the NameNode knows.
    DatanodeReport,
    /// Query or change safe mode.
    SafeMode { action: SafeModeAction },
    /// A client read a replica whose checksum failed.
    ReportBadBlock {
        block: ExtendedBlock,
        datanode_uuid: String,
    },
}

/// The DataNode protocol: registration, heartbeats, block reports and lease-recovery commits.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum DatanodeProtocolRequest {
    /// First contact (and again after the NameNode asked to re-register).
    RegisterDatanode {
        addr: DatanodeAddr,
        capacity: u64,
        used: u64,
        remaining: u64,
    },
    /// Periodic liveness with storage figures; answered with commands.
    Heartbeat {
        uuid: String,
        capacity: u64,
        used: u64,
        remaining: u64,
        active_transfers: u32,
        last_error: Option<String>,
    },
    /// Every finalized replica the DataNode holds.
    BlockReport {
        uuid: String,
        blocks: Vec<ExtendedBlock>,
    },
    /// Replicas received (finalized) and deleted since the last report.
    IncrementalBlockReport {
        uuid: String,
        received: Vec<ExtendedBlock>,
        deleted: Vec<BlockId>,
    },
    /// A replica on this DataNode failed its checksum (scanner or read).
    ReportCorruptReplica { uuid: String, block: ExtendedBlock },
    /// End of lease recovery run by a DataNode: `block` now has `new_gen` and `new_len` on
    /// `nodes` (uuids); the file is closed.
    CommitBlockSynchronization {
        block: ExtendedBlock,
        new_gen: u64,
        new_len: u64,
        nodes: Vec<String>,
    },
}

/// Work the NameNode hands a DataNode in a heartbeat reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DatanodeCommand {
    /// Copy `block` to `targets` (re-replication).
    Replicate {
        block: ExtendedBlock,
        targets: Vec<DatanodeAddr>,
    },
    /// Delete these replicas (excess, corrupt, or of deleted files).
    Invalidate { blocks: Vec<BlockId> },
    /// Lease recovery: agree with `replicas` on the length of `block`, finalize it at
    /// `new_gen`, and report back via `CommitBlockSynchronization`.
    RecoverBlock {
        block: ExtendedBlock,
        new_gen: u64,
        replicas: Vec<DatanodeAddr>,
    },
    /// The NameNode does not know this DataNode (it restarted): register and send a full report.
    Reregister,
}

/// A successful NameNode reply.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum NamenodeReply {
    /// Done, nothing to return.
    Done,
    /// `GetFileInfo`.
    FileInfo(Option<FileStatus>),
    /// `ListStatus`.
    Listing(Vec<FileStatus>),
    /// `Create`: the new file's status.
    Created(FileStatus),
    /// `AddBlock`, `UpdateBlockForPipeline`: the block and the pipeline to write it through.
    Block(LocatedBlock),
    /// `Complete`: false means "not yet: the last block is not minimally replicated, retry".
    Completed(bool),
    /// `GetBlockLocations`.
    Locations(LocatedBlocks),
    /// `Delete`: whether anything was deleted.
    Deleted(bool),
    /// `GetContentSummary`.
    Summary(ContentSummary),
    /// `GetStats`.
    Stats(FsStats),
    /// `Fsck`.
    Fsck(Vec<FsckFile>),
    /// `DatanodeReport`.
    Datanodes(Vec<DatanodeReport>),
    /// `SafeMode`: whether safe mode is on after the action.
    SafeMode(bool),
    /// `Heartbeat`, `RegisterDatanode`, reports: commands to execute.
    Commands(Vec<DatanodeCommand>),
}

/// A NameNode refusal, with Hadoop's meaning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum NamenodeError {
    /// No such file or directory.
    #[error("{0}: No such file or directory")]
    NotFound(String),
    /// The path exists already.
    #[error("{0}: File exists")]
    AlreadyExists(String),
    /// A path component is a file where a directory is needed.
    #[error("{0}: Not a directory")]
    NotADirectory(String),
    /// A directory was given where a file is needed.
    #[error("{0}: Is a directory")]
    IsADirectory(String),
    /// Deleting a non-empty directory without `recursive`.
    #[error("{0}: Directory is not empty")]
    DirectoryNotEmpty(String),
    /// The parent directory does not exist.
    #[error("{0}: Parent directory does not exist (use -p to create parents)")]
    ParentNotFound(String),
    /// The path is relative or malformed.
    #[error("{0}: invalid path: {1}")]
    InvalidPath(String, String),
    /// Mutations are refused while the NameNode is in safe mode.
    #[error("NameNode is in safe mode: {0}")]
    SafeMode(String),
    /// The file is being written by another client.
    #[error("{path}: is being written by {holder}")]
    LeaseConflict {
        /// The file.
        path: String,
        /// The client holding the lease.
        holder: String,
    },
    /// The caller does not hold the lease of a file it tries to write.
    #[error("{0}: no lease held by this client (file closed, deleted or recovered)")]
    NoLease(String),
    /// No DataNode can take a block.
    #[error("could not place block: {0}")]
    NoDatanodes(NoPlacement),
    /// A DataNode the NameNode does not know (it must re-register).
    #[error("unknown DataNode {0} (re-register)")]
    UnknownDatanode(String),
    /// A renamed path would move a directory under itself, or similar.
    #[error("{0}")]
    InvalidOperation(String),
    /// The caller may not do this (HDFS's `AccessControlException`).
    #[error("Permission denied: {0}")]
    PermissionDenied(String),
    /// The NameNode could not make the change durable.
    #[error("NameNode storage error: {0}")]
    Storage(String),
}

/// Why no DataNode could take a new block: the figures a client needs to say what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("no live DataNode can take a {block_size}-byte block ({live} live, {excluded} excluded by the client)")]
pub struct NoPlacement {
    /// The file's block size.
    pub block_size: u64,
    /// Live DataNodes.
    pub live: u64,
    /// DataNodes the client excluded (they failed for it).
    pub excluded: u64,
}

/// What the NameNode answers to every request.
pub type NamenodeResponse = Result<NamenodeReply, NamenodeError>;

/// A request on a DataNode's control RPC (QUIC).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum DatanodeRequest {
    /// Length and generation stamp of a replica (lease recovery, fsck).
    GetReplicaInfo { block: BlockId },
    /// Truncate a replica to `len` and finalize it with `new_gen` (lease/pipeline recovery).
    FinalizeRecovered {
        block: BlockId,
        new_gen: u64,
        len: u64,
    },
    /// An MD5-of-CRC32s style checksum of the replica (`dfs checksum`).
    BlockChecksum { block: ExtendedBlock },
}

/// Replica state on a DataNode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReplicaState {
    /// Being written.
    InProgress,
    /// Complete and immutable.
    Finalized,
}

/// A successful DataNode control reply.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum DatanodeReply {
    /// `GetReplicaInfo`.
    Replica {
        block: ExtendedBlock,
        state: ReplicaState,
    },
    /// `FinalizeRecovered`.
    Done,
    /// `BlockChecksum`: bytes per crc, and the digest over the crcs.
    Checksum {
        bytes_per_crc: u32,
        crc_count: u64,
        digest: Vec<u8>,
    },
}

/// A DataNode refusal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum DatanodeError {
    /// The DataNode has no replica of this block (or an older generation).
    #[error("replica of block {0} not found")]
    ReplicaNotFound(BlockId),
    /// The replica on disk failed its checksum.
    #[error("replica of block {0} is corrupt")]
    Corrupt(BlockId),
    /// The data dir cannot take writes (full disk or read-only).
    #[error("DataNode storage error: {0}")]
    Storage(String),
    /// The request does not make sense for the replica's state.
    #[error("{0}")]
    Invalid(String),
}

/// What a DataNode's control RPC answers.
pub type DatanodeResponse = Result<DatanodeReply, DatanodeError>;

/// Why a block is being written, which decides how the receiver treats an existing replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WriteStage {
    /// A new block from a client pipeline.
    Create,
    /// A client pipeline resuming after a failure with a new generation stamp: the replica
    /// restarts from the bytes already acknowledged (`resume_offset`).
    Recover,
    /// A DataNode-to-DataNode copy for re-replication.
    Replicate,
}

/// First frame on a DataNode bulk stream.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum DataRequest {
    /// Receive a block: packets follow; forward them to `downstream[0]` with `downstream[1..]`
    /// as its own downstream; ack each packet upstream once every downstream acked it.
    WriteBlock {
        block: ExtendedBlock,
        stage: WriteStage,
        downstream: Vec<DatanodeAddr>,
        resume_offset: u64,
        client: String,
    },
    /// Send `len` bytes of a replica from `offset` as packets (chunk-aligned; the reply header
    /// says where the first packet starts).
    ReadBlock {
        block: ExtendedBlock,
        offset: u64,
        len: u64,
    },
}

/// First frame a DataNode sends back on a `ReadBlock` or `WriteBlock` stream.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum DataResponse {
    /// Accepted; for reads, packets start at `start_offset` (≤ the requested offset, chunk-aligned).
    Ready { start_offset: u64 },
    /// Refused.
    Refused(DatanodeError),
}

/// Status of one pipeline member for one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AckStatus {
    /// Stored (and forwarded).
    Success,
    /// Checksum mismatch on receipt.
    ChecksumError,
    /// Could not store.
    Error,
}

/// Per-packet acknowledgement flowing upstream: one status per pipeline member from this
/// node down (index 0 is the sender of the ack). A missing member means its connection broke.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineAck {
    /// The packet acknowledged.
    pub seqno: u64,
    /// Status of each pipeline member, this node first.
    pub statuses: Vec<AckStatus>,
}
