//! Bulk-data streams (block reads and writes) behind one interface, over either transport:
//!
//! - [`BulkTransport::Tcp`]: TLS 1.3 over TCP (tokio-rustls) with the cluster certificates,
//!   one TCP connection per stream.
//! - [`BulkTransport::Quic`]: a bidirectional stream on a cached, tuned quinn connection.
//!
//! Both authenticate both ends with the cluster CA. Which one the DFS uses is a config key
//! (`dfs.data-transport`); `sheaf bench transport` measures both in one run (see ARCHITECTURE.md).

use crate::{quic, RpcError, TlsIdentity};
use quinn::{Connection, Endpoint};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// The transport a bulk stream runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BulkTransport {
    /// TLS over TCP.
    Tcp,
    /// A QUIC stream.
    Quic,
}

impl std::str::FromStr for BulkTransport {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "tcp" => Ok(BulkTransport::Tcp),
            "quic" => Ok(BulkTransport::Quic),
            other => Err(format!(
                "unknown data transport {other:?} (expected \"tcp\" or \"quic\")"
            )),
        }
    }
}

/// Read half of a bulk stream.
pub type BulkReader = Pin<Box<dyn AsyncRead + Send + Sync>>;
/// Write half of a bulk stream; `shutdown()` ends the stream cleanly.
pub type BulkWriter = Pin<Box<dyn AsyncWrite + Send + Sync>>;

/// One authenticated, bidirectional byte stream.
pub struct BulkStream {
    /// Bytes from the peer.
    pub reader: BulkReader,
    /// Bytes to the peer.
    pub writer: BulkWriter,
    /// The peer's address.
    pub peer: SocketAddr,
}

/// Accepts bulk streams on one address.
pub struct BulkListener {
    local: SocketAddr,
    streams: tokio::sync::Mutex<mpsc::Receiver<BulkStream>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

const TLS_HANDSHAKE_DEADLINE: Duration = Duration::from_secs(10);

impl BulkListener {
    /// Binds `addr` (port 0 picks one) and starts accepting in the background.
    pub async fn bind(
        transport: BulkTransport,
        addr: SocketAddr,
        identity: &TlsIdentity,
    ) -> Result<BulkListener, RpcError> {
        let (tx, rx) = mpsc::channel(64);
        let (local, task) = match transport {
            BulkTransport::Tcp => {
                let listener = TcpListener::bind(addr).await.map_err(|e| {
                    RpcError::Io(std::io::Error::new(
                        e.kind(),
                        format!("cannot bind TCP {addr}: {e}"),
                    ))
                })?;
                let acceptor = TlsAcceptor::from(Arc::new(identity.server_config()?));
                let local = listener.local_addr()?;
                (local, tokio::spawn(accept_tcp(listener, acceptor, tx)))
            }
            BulkTransport::Quic => {
                let ep = quic::server_endpoint(addr, identity)?;
                let local = ep.local_addr()?;
                (local, tokio::spawn(accept_quic(ep, tx)))
            }
        };
        Ok(BulkListener {
            local,
            streams: tokio::sync::Mutex::new(rx),
            tasks: vec![task],
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The next authenticated stream; `None` once the listener is closed.
    pub async fn accept(&self) -> Option<BulkStream> {
        self.streams.lock().await.recv().await
    }
}

impl Drop for BulkListener {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn accept_tcp(listener: TcpListener, acceptor: TlsAcceptor, tx: mpsc::Sender<BulkStream>) {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "bulk accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(TLS_HANDSHAKE_DEADLINE, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => {
                    let (r, w) = tokio::io::split(tls);
                    let _ = tx
                        .send(BulkStream {
                            reader: Box::pin(r),
                            writer: Box::pin(w),
                            peer,
                        })
                        .await;
                }
                Ok(Err(e)) => tracing::info!(%peer, error = %e, "bulk TLS handshake refused"),
                Err(_) => tracing::info!(%peer, "bulk TLS handshake timed out"),
            }
        });
    }
}

async fn accept_quic(ep: Endpoint, tx: mpsc::Sender<BulkStream>) {
    while let Some(incoming) = ep.accept().await {
        let tx = tx.clone();
        tokio::spawn(async move {
            let conn = match incoming.await {
                Ok(c) => c,
                Err(e) => {
                    tracing::info!(error = %e, "bulk QUIC handshake refused");
                    return;
                }
            };
            let peer = conn.remote_address();
            while let Ok((send, recv)) = conn.accept_bi().await {
                if tx
                    .send(BulkStream {
                        reader: Box::pin(recv),
                        writer: Box::pin(send),
                        peer,
                    })
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
    }
}

/// Opens bulk streams to peers.
pub struct BulkConnector {
    transport: BulkTransport,
    tls: TlsConnector,
    quic: Option<Endpoint>,
    quic_conns: Mutex<HashMap<SocketAddr, Connection>>,
    /// Deadline for connecting and the TLS handshake.
    pub connect_timeout: Duration,
}

impl BulkConnector {
    /// A connector presenting `identity`, binding QUIC sockets on `local_ip`.
    pub fn new(
        transport: BulkTransport,
        identity: &TlsIdentity,
        local_ip: std::net::IpAddr,
    ) -> Result<BulkConnector, RpcError> {
        let tls = TlsConnector::from(Arc::new(identity.client_config()?));
        let quic = match transport {
            BulkTransport::Quic => Some(quic::client_endpoint(local_ip, identity)?),
            BulkTransport::Tcp => None,
        };
        Ok(BulkConnector {
            transport,
            tls,
            quic,
            quic_conns: Mutex::new(HashMap::new()),
            connect_timeout: Duration::from_secs(5),
        })
    }

    /// The transport this connector uses.
    pub fn transport(&self) -> BulkTransport {
        self.transport
    }

    /// Opens one stream to `addr`.
    pub async fn connect(&self, addr: SocketAddr) -> Result<BulkStream, RpcError> {
        match (self.transport, &self.quic) {
            (BulkTransport::Quic, Some(ep)) => self.connect_quic(ep, addr).await,
            _ => self.connect_tcp(addr).await,
        }
    }

    async fn connect_tcp(&self, addr: SocketAddr) -> Result<BulkStream, RpcError> {
        let deadline = self.connect_timeout;
        let fut = async {
            let tcp = TcpStream::connect(addr)
                .await
                .map_err(|e| RpcError::Unreachable {
                    addr,
                    reason: e.to_string(),
                })?;
            let _ = tcp.set_nodelay(true);
            let name = rustls::pki_types::ServerName::try_from(crate::tls::CLUSTER_SERVER_NAME)
                .map_err(|e| RpcError::TlsSetup(e.to_string()))?;
            let tls = self
                .tls
                .connect(name, tcp)
                .await
                .map_err(|e| RpcError::Handshake {
                    addr,
                    reason: e.to_string(),
                })?;
            let (r, w) = tokio::io::split(tls);
            Ok(BulkStream {
                reader: Box::pin(r),
                writer: Box::pin(w),
                peer: addr,
            })
        };
        match tokio::time::timeout(deadline, fut).await {
            Ok(r) => r,
            Err(_) => Err(RpcError::Timeout {
                addr,
                secs: deadline.as_secs_f64(),
            }),
        }
    }

    async fn connect_quic(&self, ep: &Endpoint, addr: SocketAddr) -> Result<BulkStream, RpcError> {
        let cached = self
            .quic_conns
            .lock()
            .ok()
            .and_then(|m| m.get(&addr).cloned());
        let conn = match cached {
            Some(c) if c.close_reason().is_none() => c,
            _ => {
                let connecting =
                    ep.connect(addr, crate::tls::CLUSTER_SERVER_NAME)
                        .map_err(|e| RpcError::Unreachable {
                            addr,
                            reason: e.to_string(),
                        })?;
                let c = match tokio::time::timeout(self.connect_timeout, connecting).await {
                    Err(_) => {
                        return Err(RpcError::Timeout {
                            addr,
                            secs: self.connect_timeout.as_secs_f64(),
                        })
                    }
                    Ok(Err(e)) => return Err(quic::connection_error(addr, e)),
                    Ok(Ok(c)) => c,
                };
                if let Ok(mut m) = self.quic_conns.lock() {
                    m.insert(addr, c.clone());
                }
                c
            }
        };
        let (send, recv) = conn
            .open_bi()
            .await
            .map_err(|e| quic::connection_error(addr, e))?;
        Ok(BulkStream {
            reader: Box::pin(recv),
            writer: Box::pin(send),
            peer: addr,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ClusterCa;
    use std::net::{IpAddr, Ipv4Addr};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    async fn echo_round_trip(transport: BulkTransport) {
        let dir = tempfile::tempdir().unwrap();
        ClusterCa::create_dir("t", dir.path()).unwrap();
        let daemon = TlsIdentity::load(dir.path(), "daemon").unwrap();
        let user = TlsIdentity::load(dir.path(), "user").unwrap();
        let listener = BulkListener::bind(transport, SocketAddr::new(LOCAL, 0), &daemon)
            .await
            .unwrap();
        let addr = listener.local_addr();
        let server = tokio::spawn(async move {
            for _ in 0..2 {
                let mut s = listener.accept().await.unwrap();
                let mut buf = Vec::new();
                s.reader.read_to_end(&mut buf).await.unwrap();
                s.writer
                    .write_all(&(buf.len() as u64).to_be_bytes())
                    .await
                    .unwrap();
                s.writer.shutdown().await.unwrap();
            }
        });
        let connector = BulkConnector::new(transport, &user, LOCAL).unwrap();
        for size in [0usize, 3 << 20] {
            let mut s = connector.connect(addr).await.unwrap();
            s.writer.write_all(&vec![7u8; size]).await.unwrap();
            s.writer.shutdown().await.unwrap();
            let mut n = [0u8; 8];
            s.reader.read_exact(&mut n).await.unwrap();
            assert_eq!(u64::from_be_bytes(n), size as u64);
        }
        server.await.unwrap();
    }

    #[tokio::test]
    async fn tcp_tls_streams_carry_bytes_both_ways() {
        echo_round_trip(BulkTransport::Tcp).await;
    }

    #[tokio::test]
    async fn quic_streams_carry_bytes_both_ways() {
        echo_round_trip(BulkTransport::Quic).await;
    }

    #[tokio::test]
    async fn tcp_client_without_certificate_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        ClusterCa::create_dir("t", dir.path()).unwrap();
        let daemon = TlsIdentity::load(dir.path(), "daemon").unwrap();
        let listener = BulkListener::bind(BulkTransport::Tcp, SocketAddr::new(LOCAL, 0), &daemon)
            .await
            .unwrap();
        let addr = listener.local_addr();
        let anon = TlsConnector::from(Arc::new(daemon.anonymous_client_config().unwrap()));
        let tcp = TcpStream::connect(addr).await.unwrap();
        let name =
            rustls::pki_types::ServerName::try_from(crate::tls::CLUSTER_SERVER_NAME).unwrap();
        // TLS 1.3: the client may finish its side before the server rejects; the first read fails.
        let outcome = async {
            let mut tls = anon.connect(name, tcp).await?;
            tls.write_all(b"hello").await?;
            let mut b = [0u8; 1];
            tls.read_exact(&mut b).await?;
            Ok::<_, std::io::Error>(())
        }
        .await;
        assert!(outcome.is_err(), "anonymous TCP client must be refused");
        let accepted = tokio::time::timeout(Duration::from_millis(300), listener.accept()).await;
        assert!(accepted.is_err(), "no stream may be handed to the server");
    }
}
