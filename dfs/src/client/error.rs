//! Errors of the DFS client library, each with a message a user can act on.

use crate::protocol::{DatanodeError, NamenodeError};
use sheaf_rpc::RpcError;
use std::net::SocketAddr;

/// Everything a DFS client operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum DfsError {
    /// The NameNode did not answer (not running, wrong address, or overloaded).
    #[error("cannot reach the NameNode at {addr}: {reason} (is it running? scripts/start-dfs.sh)")]
    NamenodeUnreachable {
        /// The configured NameNode address.
        addr: SocketAddr,
        /// What the transport said.
        reason: String,
    },
    /// The TLS handshake was refused: the client's certificate is missing or from another cluster.
    #[error("the cluster at {addr} refused our certificate: {reason} (use the cluster's tls-dir from `sheaf format`)")]
    Refused {
        /// Who refused.
        addr: SocketAddr,
        /// What TLS said.
        reason: String,
    },
    /// A path cannot go to the trash.
    #[error("{0}")]
    Trash(String),
    /// The NameNode refused the operation (not found, exists, safe mode, …).
    #[error("{0}")]
    Namenode(#[from] NamenodeError),
    /// A DataNode refused a request.
    #[error("DataNode {addr}: {source}")]
    Datanode {
        /// The DataNode.
        addr: SocketAddr,
        /// Its refusal.
        source: DatanodeError,
    },
    /// No DataNode could take a block (none alive, all full, or all failed for this writer).
    #[error("{} to take block {block} of {path}: {reason}", if reason.none_alive { "no DataNode is alive" } else { "no DataNode is able" })]
    NoDatanodes {
        /// The file being written.
        path: String,
        /// The block (or `#n` when not yet allocated).
        block: String,
        /// What the NameNode or the pipeline said.
        reason: NoDatanodesReason,
    },
    /// Every replica of a block failed to read.
    #[error("could not read block {block} of {path} from any replica: {reason}")]
    BlockUnreadable {
        /// The file.
        path: String,
        /// The block id.
        block: u64,
        /// The last failure.
        reason: String,
    },
    /// A write pipeline failed and could not be recovered.
    #[error("writing block {block} of {path} failed: {reason}")]
    PipelineFailed {
        /// The file.
        path: String,
        /// The block id.
        block: u64,
        /// Why.
        reason: String,
    },
    /// The NameNode answered something that does not fit the request.
    #[error("unexpected reply from the NameNode to {0}")]
    UnexpectedReply(&'static str),
    /// A DFS path is relative or malformed.
    #[error("{0}")]
    InvalidPath(#[from] crate::path::InvalidPath),
    /// A local file or stream failed.
    #[error("{path}: {source}")]
    Local {
        /// The local path (or `-` for stdin/stdout).
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The wire layer failed (TLS material, codec, …).
    #[error(transparent)]
    Rpc(RpcError),
    /// A configuration value is invalid.
    #[error("configuration: {0}")]
    Config(String),
    /// The caller misused the API (e.g. reading past the end, writing after close).
    #[error("{0}")]
    Usage(String),
}

/// Why a writer found no DataNode for a block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct NoDatanodesReason {
    /// True when the NameNode knows no live DataNode at all (start some), as opposed to none
    /// that could take this block.
    pub none_alive: bool,
    /// What the NameNode or the pipeline said.
    pub detail: String,
}

impl DfsError {
    /// Classifies a failed NameNode call.
    pub(crate) fn from_namenode_rpc(addr: SocketAddr, e: RpcError) -> DfsError {
        match e {
            RpcError::Handshake { addr, reason } => DfsError::Refused { addr, reason },
            RpcError::Timeout { secs, .. } => DfsError::NamenodeUnreachable {
                addr,
                reason: format!("no answer within {secs:.1}s"),
            },
            RpcError::Unreachable { reason, .. } => DfsError::NamenodeUnreachable { addr, reason },
            RpcError::UnexpectedEof | RpcError::Io(_) => DfsError::NamenodeUnreachable {
                addr,
                reason: e.to_string(),
            },
            other => DfsError::Rpc(other),
        }
    }

    /// True if the NameNode itself could not be reached (as opposed to refusing).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, DfsError::NamenodeUnreachable { .. })
    }

    /// True if the NameNode said the path does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self.namenode_error(), Some(NamenodeError::NotFound(_)))
    }

    /// The NameNode's refusal, if that is what this is.
    pub fn namenode_error(&self) -> Option<&NamenodeError> {
        match self {
            DfsError::Namenode(e) => Some(e),
            _ => None,
        }
    }
}
