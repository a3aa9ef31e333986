//! quinn endpoints tuned for a rack, not the internet.
//!
//! PERF-NOTES: quinn on this machine is CPU-bound per packet, so the big lever is packet size
//! (8952-byte UDP payloads instead of ~1200-1472), with GSO off (it made path MTU discovery
//! fall back to 1200 here) and 8 MiB socket buffers (the 208 KB default dropped packets).

use crate::{RpcError, TlsIdentity};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{Endpoint, EndpointConfig, IdleTimeout, TransportConfig, VarInt};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// UDP payload size used on every Sheaf endpoint (fits a 9000-byte jumbo frame; loopback allows 64 KiB).
pub const UDP_PAYLOAD: u16 = 8952;
/// Socket send/receive buffer requested for every endpoint.
pub const SOCKET_BUFFER: usize = 8 << 20;
/// A connection with no traffic for this long is closed (keep-alives prevent it for live peers).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

fn transport_config() -> TransportConfig {
    let mut t = TransportConfig::default();
    t.initial_mtu(UDP_PAYLOAD)
        .min_mtu(1200)
        .mtu_discovery_config(None)
        .enable_segmentation_offload(false)
        .max_concurrent_bidi_streams(VarInt::from_u32(1024))
        .max_concurrent_uni_streams(VarInt::from_u32(256))
        .stream_receive_window(VarInt::from_u32(16 << 20))
        .receive_window(VarInt::from_u32(64 << 20))
        .send_window(64 << 20)
        .keep_alive_interval(Some(Duration::from_secs(5)));
    if let Ok(idle) = IdleTimeout::try_from(IDLE_TIMEOUT) {
        t.max_idle_timeout(Some(idle));
    }
    t
}

fn udp_socket(bind: SocketAddr) -> Result<std::net::UdpSocket, RpcError> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(bind), Type::DGRAM, Some(Protocol::UDP))?;
    // Best effort: the kernel caps these at net.core.{r,w}mem_max, which is fine.
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
    socket.bind(&bind.into()).map_err(|e| {
        RpcError::Io(std::io::Error::new(
            e.kind(),
            format!("cannot bind UDP {bind}: {e} (is another daemon using this port?)"),
        ))
    })?;
    Ok(socket.into())
}

fn endpoint_config() -> Result<EndpointConfig, RpcError> {
    let mut cfg = EndpointConfig::default();
    cfg.max_udp_payload_size(UDP_PAYLOAD)
        .map_err(|e| RpcError::TlsSetup(e.to_string()))?;
    Ok(cfg)
}

fn client_config_from(tls: rustls::ClientConfig) -> Result<quinn::ClientConfig, RpcError> {
    let crypto = QuicClientConfig::try_from(tls).map_err(|e| RpcError::TlsSetup(e.to_string()))?;
    let mut cfg = quinn::ClientConfig::new(Arc::new(crypto));
    cfg.transport_config(Arc::new(transport_config()));
    Ok(cfg)
}

/// A server endpoint bound to `bind` that also acts as a client (daemons call each other).
pub fn server_endpoint(bind: SocketAddr, identity: &TlsIdentity) -> Result<Endpoint, RpcError> {
    let crypto = QuicServerConfig::try_from(identity.server_config()?)
        .map_err(|e| RpcError::TlsSetup(e.to_string()))?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    server.transport_config(Arc::new(transport_config()));
    let runtime =
        quinn::default_runtime().ok_or_else(|| RpcError::TlsSetup("no async runtime".into()))?;
    let mut ep = Endpoint::new(endpoint_config()?, Some(server), udp_socket(bind)?, runtime)?;
    ep.set_default_client_config(client_config_from(identity.client_config()?)?);
    Ok(ep)
}

/// A client-only endpoint on an ephemeral port of `local_ip`, presenting `identity`.
pub fn client_endpoint(
    local_ip: std::net::IpAddr,
    identity: &TlsIdentity,
) -> Result<Endpoint, RpcError> {
    client_endpoint_with(local_ip, identity.client_config()?)
}

/// A client-only endpoint with an explicit rustls config (tests use it to act as an outsider).
pub fn client_endpoint_with(
    local_ip: std::net::IpAddr,
    tls: rustls::ClientConfig,
) -> Result<Endpoint, RpcError> {
    let runtime =
        quinn::default_runtime().ok_or_else(|| RpcError::TlsSetup("no async runtime".into()))?;
    let mut ep = Endpoint::new(
        endpoint_config()?,
        None,
        udp_socket(SocketAddr::new(local_ip, 0))?,
        runtime,
    )?;
    ep.set_default_client_config(client_config_from(tls)?);
    Ok(ep)
}

/// TLS alert `no_application_protocol` (RFC 7301): no ALPN in common, i.e. another
/// protocol version.
const NO_APPLICATION_PROTOCOL_ALERT: u8 = 120;

/// Classifies a transport error by its code: TLS alerts travel as QUIC crypto errors
/// (`0x100 | alert`, RFC 9001 §4.8).
fn classify(addr: SocketAddr, code: quinn::TransportErrorCode, reason: String) -> RpcError {
    if code == quinn::TransportErrorCode::crypto(NO_APPLICATION_PROTOCOL_ALERT) {
        RpcError::VersionMismatch {
            addr,
            ours: crate::PROTOCOL_VERSION,
        }
    } else if (0x100..=0x1ff).contains(&u64::from(code)) {
        RpcError::Handshake { addr, reason }
    } else {
        RpcError::Unreachable { addr, reason }
    }
}

/// Classifies a failed connection attempt into a user-facing error.
pub(crate) fn connection_error(addr: SocketAddr, e: quinn::ConnectionError) -> RpcError {
    use quinn::ConnectionError as C;
    match e {
        C::TimedOut => RpcError::Timeout {
            addr,
            secs: IDLE_TIMEOUT.as_secs_f64(),
        },
        C::TransportError(t) => classify(addr, t.code, t.to_string()),
        C::ConnectionClosed(c) => {
            let reason = format!("{c} ({})", String::from_utf8_lossy(&c.reason));
            classify(addr, c.error_code, reason)
        }
        other => RpcError::Unreachable {
            addr,
            reason: other.to_string(),
        },
    }
}
