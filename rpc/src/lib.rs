//! Sheaf's wire layer, shared by every daemon and client.
//!
//! - [`tls`]: the cluster CA that `sheaf format` creates, and the mutual-TLS configs built from it.
//! - [`identity`]: who a peer is ([`Identity`]), read from its verified certificate.
//! - [`token`]: constant-time comparison of bearer tokens and secrets.
//! - [`frame`]: length-prefixed rmp-serde frames of typed messages.
//! - [`quic`]: quinn endpoints tuned for a rack rather than the internet.
//! - [`service`]: typed request/response RPC over QUIC ([`RpcServer`], [`RpcClient`]).
//! - [`bulk`]: bulk-data streams (block reads/writes), over TLS-on-TCP or QUIC behind one interface.
//! - [`packet`]: checksummed data packets carried on bulk streams.
//! - [`retry`]: timeouts and retry with exponential backoff.
//! - [`config`]: the `sheaf.toml` file with environment overrides.
//! - [`time`]: [`time::Now`], the one time type every decision core takes (monotonic + wall).

pub mod bulk;
pub mod config;
pub mod error;
pub mod frame;
pub mod identity;
pub mod packet;
pub mod quic;
pub mod retry;
pub mod service;
pub mod time;
pub mod tls;
pub mod token;

pub use bulk::{BulkConnector, BulkListener, BulkStream, BulkTransport};
pub use error::RpcError;
pub use identity::{Identity, Role};
pub use retry::RetryPolicy;
pub use service::{PeerInfo, RpcClient, RpcServer, Service};
pub use tls::{ClusterCa, TlsIdentity};

/// Protocol version carried in the TLS handshake (ALPN) of every Sheaf connection. Peers of
/// another version fail the handshake with [`RpcError::VersionMismatch`].
pub const PROTOCOL_VERSION: u32 = 1;

/// The ALPN identifier derived from [`PROTOCOL_VERSION`].
pub fn alpn() -> Vec<u8> {
    format!("sheaf/{PROTOCOL_VERSION}").into_bytes()
}
