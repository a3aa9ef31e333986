//! Errors of the wire layer.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Everything that can go wrong talking to a peer or setting up the wire layer.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// The peer did not answer within the deadline.
    #[error("{addr} did not answer within {secs:.1}s (is the daemon running?)")]
    Timeout {
        /// Who we were talking to.
        addr: SocketAddr,
        /// The deadline that passed.
        secs: f64,
    },
    /// A connection could not be made or was lost.
    #[error("cannot reach {addr}: {reason}")]
    Unreachable {
        /// Who we were talking to.
        addr: SocketAddr,
        /// What the transport said.
        reason: String,
    },
    /// The TLS handshake failed: no or foreign certificate, or another protocol version.
    #[error("TLS handshake with {addr} refused: {reason}")]
    Handshake {
        /// Who we were talking to.
        addr: SocketAddr,
        /// What TLS said.
        reason: String,
    },
    /// The peer speaks another protocol version.
    #[error("{addr} speaks another Sheaf protocol version (we speak {ours})")]
    VersionMismatch {
        /// Who we were talking to.
        addr: SocketAddr,
        /// Our version.
        ours: u32,
    },
    /// A certificate does not name a Sheaf identity (no name or role in its subject).
    #[error("certificate identity: {0}")]
    Identity(String),
    /// A frame could not be encoded or decoded.
    #[error("malformed message: {0}")]
    Codec(String),
    /// A frame larger than the limit was announced.
    #[error("frame of {0} bytes exceeds the {1}-byte limit")]
    FrameTooLarge(usize, usize),
    /// A packet's payload does not match its checksum.
    #[error("checksum mismatch in packet {seqno} (data corrupted in transit)")]
    PacketChecksum {
        /// Sequence number of the bad packet.
        seqno: u64,
    },
    /// The stream ended before a complete message arrived.
    #[error("connection closed by peer mid-message")]
    UnexpectedEof,
    /// Plain I/O failure on a stream or socket.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// A certificate or key file is missing or invalid.
    #[error("TLS material {path}: {reason}")]
    TlsMaterial {
        /// The file involved.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// TLS configuration could not be built.
    #[error("TLS setup: {0}")]
    TlsSetup(String),
    /// A configuration file or value is invalid.
    #[error("config {path}: {reason}")]
    Config {
        /// The file (or `<env>` for environment overrides).
        path: String,
        /// What is wrong.
        reason: String,
    },
}

impl RpcError {
    /// True when retrying the same call may succeed (the peer was down or slow, not wrong).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            RpcError::Timeout { .. }
                | RpcError::Unreachable { .. }
                | RpcError::UnexpectedEof
                | RpcError::Io(_)
        )
    }
}

impl From<quinn::WriteError> for RpcError {
    fn from(e: quinn::WriteError) -> Self {
        RpcError::Io(std::io::Error::new(std::io::ErrorKind::BrokenPipe, e))
    }
}

impl From<quinn::ReadExactError> for RpcError {
    fn from(e: quinn::ReadExactError) -> Self {
        match e {
            quinn::ReadExactError::FinishedEarly(_) => RpcError::UnexpectedEof,
            quinn::ReadExactError::ReadError(e) => {
                RpcError::Io(std::io::Error::new(std::io::ErrorKind::ConnectionReset, e))
            }
        }
    }
}
