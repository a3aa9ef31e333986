//! Typed request/response RPC over QUIC: one bidirectional stream per call, one frame each way.
//!
//! A service is a type implementing [`Service`] with its own request and response enums (each
//! service keeps them in one `protocol.rs`). [`RpcServer`] accepts connections and runs each
//! request as its own task; [`RpcClient`] caches one connection per peer and bounds every call
//! by a deadline, so an unreachable daemon is an error within seconds, never a hang.

use crate::{frame, quic, Identity, RetryPolicy, RpcError};
use quinn::{Connection, Endpoint};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// Who sent a request.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    /// The peer's UDP address.
    pub addr: SocketAddr,
    /// Who the peer is, from the certificate its handshake presented (verified by the CA).
    pub identity: Arc<Identity>,
}

/// The identity of a connection's verified client certificate.
pub fn peer_identity(conn: &Connection) -> Result<Identity, RpcError> {
    let certs = conn
        .peer_identity()
        .and_then(|any| {
            any.downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
                .ok()
        })
        .ok_or_else(|| RpcError::Identity("the peer presented no certificate".into()))?;
    let leaf = certs
        .first()
        .ok_or_else(|| RpcError::Identity("the peer presented no certificate".into()))?;
    Identity::from_certificate(leaf)
}

/// A daemon's request handler.
pub trait Service: Send + Sync + 'static {
    /// The request enum of this service.
    type Request: DeserializeOwned + Send + Sync + 'static;
    /// The response enum of this service (errors are variants of it).
    type Response: Serialize + Send + Sync + 'static;
    /// Handles one request.
    fn handle(
        self: Arc<Self>,
        req: Self::Request,
        peer: PeerInfo,
    ) -> impl Future<Output = Self::Response> + Send;
}

/// A shutdown signal shared by a daemon's tasks.
#[derive(Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

/// The sending side of [`Shutdown`].
pub struct ShutdownTrigger {
    tx: watch::Sender<bool>,
}

impl Shutdown {
    /// A new signal and its trigger.
    pub fn new() -> (ShutdownTrigger, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (ShutdownTrigger { tx }, Shutdown { rx })
    }
    /// Resolves once shutdown was triggered (or the trigger dropped).
    pub async fn wait(&mut self) {
        while !*self.rx.borrow() {
            if self.rx.changed().await.is_err() {
                return;
            }
        }
    }
    /// True once shutdown was triggered.
    pub fn is_triggered(&self) -> bool {
        *self.rx.borrow()
    }
}

impl ShutdownTrigger {
    /// Tells every holder of the matching [`Shutdown`] to stop.
    pub fn trigger(&self) {
        let _ = self.tx.send(true);
    }
}

/// Serves a [`Service`] on a QUIC endpoint.
pub struct RpcServer;

impl RpcServer {
    /// Accepts connections on `endpoint` until `shutdown`, dispatching every request to `service`.
    pub async fn serve<S: Service>(endpoint: Endpoint, service: Arc<S>, mut shutdown: Shutdown) {
        loop {
            let incoming = tokio::select! {
                _ = shutdown.wait() => break,
                inc = endpoint.accept() => match inc { Some(i) => i, None => break },
            };
            let service = service.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                let conn = match incoming.await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::debug!(error = %e, "refused connection");
                        return;
                    }
                };
                serve_connection(conn, service, shutdown).await;
            });
        }
        endpoint.close(0u32.into(), b"shutdown");
    }
}

async fn serve_connection<S: Service>(conn: Connection, service: Arc<S>, mut shutdown: Shutdown) {
    let identity = match peer_identity(&conn) {
        Ok(identity) => Arc::new(identity),
        Err(e) => {
            tracing::warn!(peer = %conn.remote_address(), error = %e, "refused connection");
            conn.close(1u32.into(), b"no sheaf identity in the certificate");
            return;
        }
    };
    let peer = PeerInfo {
        addr: conn.remote_address(),
        identity,
    };
    loop {
        let (mut send, mut recv) = tokio::select! {
            _ = shutdown.wait() => return,
            s = conn.accept_bi() => match s { Ok(s) => s, Err(_) => return },
        };
        let service = service.clone();
        let peer = peer.clone();
        tokio::spawn(async move {
            let req: S::Request = match frame::read_frame(&mut recv).await {
                Ok(Some(r)) => r,
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(peer = %peer.addr, error = %e, "bad request frame");
                    let _ = send.reset(1u32.into());
                    return;
                }
            };
            let addr = peer.addr;
            let resp = service.handle(req, peer).await;
            if let Err(e) = frame::write_frame(&mut send, &resp).await {
                tracing::debug!(peer = %addr, error = %e, "reply not delivered");
                return;
            }
            let _ = send.finish();
        });
    }
}

/// A caller of remote services with one cached connection per peer.
pub struct RpcClient {
    endpoint: Endpoint,
    conns: Mutex<HashMap<SocketAddr, Connection>>,
    /// Deadline for establishing a connection.
    pub connect_timeout: Duration,
    /// Deadline for one call once connected.
    pub call_timeout: Duration,
}

impl RpcClient {
    /// A client over `endpoint` with default deadlines (3 s connect, 60 s call).
    pub fn new(endpoint: Endpoint) -> RpcClient {
        RpcClient {
            endpoint,
            conns: Mutex::new(HashMap::new()),
            connect_timeout: Duration::from_secs(3),
            call_timeout: Duration::from_secs(60),
        }
    }

    /// The underlying endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// A live connection to `addr`, reusing the cached one.
    pub async fn connection(&self, addr: SocketAddr) -> Result<Connection, RpcError> {
        if let Some(c) = self.cached(addr) {
            if c.close_reason().is_none() {
                return Ok(c);
            }
        }
        let connecting = self
            .endpoint
            .connect(addr, crate::tls::CLUSTER_SERVER_NAME)
            .map_err(|e| RpcError::Unreachable {
                addr,
                reason: e.to_string(),
            })?;
        let conn = match tokio::time::timeout(self.connect_timeout, connecting).await {
            Err(_) => {
                return Err(RpcError::Timeout {
                    addr,
                    secs: self.connect_timeout.as_secs_f64(),
                })
            }
            Ok(Err(e)) => return Err(quic::connection_error(addr, e)),
            Ok(Ok(c)) => c,
        };
        if let Ok(mut m) = self.conns.lock() {
            m.insert(addr, conn.clone());
        }
        Ok(conn)
    }

    fn cached(&self, addr: SocketAddr) -> Option<Connection> {
        self.conns.lock().ok().and_then(|m| m.get(&addr).cloned())
    }

    fn forget(&self, addr: SocketAddr) {
        if let Ok(mut m) = self.conns.lock() {
            m.remove(&addr);
        }
    }

    /// One call, bounded by the connect and call deadlines. Not retried.
    pub async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        addr: SocketAddr,
        req: &Req,
    ) -> Result<Resp, RpcError> {
        self.call_within(addr, req, self.call_timeout).await
    }

    /// One call with an explicit call deadline.
    pub async fn call_within<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        addr: SocketAddr,
        req: &Req,
        deadline: Duration,
    ) -> Result<Resp, RpcError> {
        let body = frame::encode(req)?;
        let conn = self.connection(addr).await?;
        let attempt = async {
            let (mut send, mut recv) = conn
                .open_bi()
                .await
                .map_err(|e| quic::connection_error(addr, e))?;
            send.write_all(&body).await?;
            let _ = send.finish();
            frame::read_frame::<_, Resp>(&mut recv)
                .await?
                .ok_or(RpcError::UnexpectedEof)
        };
        let result = match tokio::time::timeout(deadline, attempt).await {
            Err(_) => Err(RpcError::Timeout {
                addr,
                secs: deadline.as_secs_f64(),
            }),
            // A stream error on a closed connection: the connection's reason is the real story
            // (with TLS 1.3 a refused client certificate surfaces only after the handshake).
            Ok(Err(_)) if conn.close_reason().is_some() => Err(conn
                .close_reason()
                .map(|r| quic::connection_error(addr, r))
                .unwrap_or(RpcError::UnexpectedEof)),
            Ok(r) => r,
        };
        if matches!(result, Err(ref e) if e.is_transient()) {
            self.forget(addr);
        }
        result
    }

    /// A call that is safe to repeat, retried on transient failures per `policy`.
    pub async fn call_retry<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        addr: SocketAddr,
        req: &Req,
        policy: RetryPolicy,
    ) -> Result<Resp, RpcError> {
        policy.run(|| self.call(addr, req)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ClusterCa, TlsIdentity};
    use std::net::{IpAddr, Ipv4Addr};

    #[derive(serde::Serialize, serde::Deserialize)]
    enum EchoRequest {
        Echo(String),
        Add(u64, u64),
        WhoAmI,
    }
    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    enum EchoResponse {
        Echoed(String),
        Sum(u64),
    }
    struct Echo;
    impl Service for Echo {
        type Request = EchoRequest;
        type Response = EchoResponse;
        async fn handle(self: Arc<Self>, req: EchoRequest, peer: PeerInfo) -> EchoResponse {
            match req {
                EchoRequest::WhoAmI => EchoResponse::Echoed(peer.identity.to_string()),
                EchoRequest::Echo(s) => EchoResponse::Echoed(s),
                EchoRequest::Add(a, b) => EchoResponse::Sum(a + b),
            }
        }
    }

    const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    fn identities() -> (tempfile::TempDir, TlsIdentity, TlsIdentity) {
        let dir = tempfile::tempdir().unwrap();
        ClusterCa::create_dir("t", dir.path()).unwrap();
        let d = TlsIdentity::load(dir.path(), "daemon").unwrap();
        let u = TlsIdentity::load(dir.path(), "user").unwrap();
        (dir, d, u)
    }

    #[tokio::test]
    async fn typed_calls_round_trip_over_mutual_tls() {
        let (_dir, daemon, user) = identities();
        let server = quic::server_endpoint(SocketAddr::new(LOCAL, 0), &daemon).unwrap();
        let addr = server.local_addr().unwrap();
        let (trigger, shutdown) = Shutdown::new();
        let task = tokio::spawn(RpcServer::serve(server, Arc::new(Echo), shutdown));
        let client = RpcClient::new(quic::client_endpoint(LOCAL, &user).unwrap());
        let r: EchoResponse = client
            .call(addr, &EchoRequest::Echo("hi".into()))
            .await
            .unwrap();
        assert_eq!(r, EchoResponse::Echoed("hi".into()));
        // The server knows who called from the certificate alone.
        let who: EchoResponse = client.call(addr, &EchoRequest::WhoAmI).await.unwrap();
        let me = user.identity().unwrap();
        assert_eq!(who, EchoResponse::Echoed(format!("user {}", me.name)));
        // Many concurrent calls share one connection.
        let reqs: Vec<EchoRequest> = (0..50u64).map(|i| EchoRequest::Add(i, 1)).collect();
        let calls = reqs.iter().map(|r| client.call::<_, EchoResponse>(addr, r));
        let results = futures::future::join_all(calls).await;
        for (i, r) in results.into_iter().enumerate() {
            assert_eq!(r.unwrap(), EchoResponse::Sum(i as u64 + 1));
        }
        trigger.trigger();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn client_without_certificate_is_refused_at_handshake() {
        let (_dir, daemon, user) = identities();
        let server = quic::server_endpoint(SocketAddr::new(LOCAL, 0), &daemon).unwrap();
        let addr = server.local_addr().unwrap();
        let (_trigger, shutdown) = Shutdown::new();
        tokio::spawn(RpcServer::serve(server, Arc::new(Echo), shutdown));
        let outsider =
            quic::client_endpoint_with(LOCAL, user.anonymous_client_config().unwrap()).unwrap();
        let client = RpcClient::new(outsider);
        let r = client
            .call::<_, EchoResponse>(addr, &EchoRequest::Echo("x".into()))
            .await;
        let err = r.expect_err("an anonymous client must not be served");
        assert!(matches!(err, RpcError::Handshake { .. }), "{err:?}");
        assert!(err.to_string().contains("certificate"), "{err}");
    }

    #[tokio::test]
    async fn client_of_another_cluster_is_refused() {
        let (_dir, daemon, _user) = identities();
        let (_dir2, _d2, foreign_user) = identities();
        let server = quic::server_endpoint(SocketAddr::new(LOCAL, 0), &daemon).unwrap();
        let addr = server.local_addr().unwrap();
        let (_trigger, shutdown) = Shutdown::new();
        tokio::spawn(RpcServer::serve(server, Arc::new(Echo), shutdown));
        let client = RpcClient::new(quic::client_endpoint(LOCAL, &foreign_user).unwrap());
        let r = client
            .call::<_, EchoResponse>(addr, &EchoRequest::Echo("x".into()))
            .await;
        assert!(r.is_err());
    }

    #[tokio::test]
    async fn unreachable_daemon_fails_within_the_connect_deadline() {
        let (_dir, _daemon, user) = identities();
        // A bound but silent UDP socket: nothing answers the handshake.
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = silent.local_addr().unwrap();
        let mut client = RpcClient::new(quic::client_endpoint(LOCAL, &user).unwrap());
        client.connect_timeout = Duration::from_millis(500);
        let started = std::time::Instant::now();
        let r = client
            .call::<_, EchoResponse>(addr, &EchoRequest::Echo("x".into()))
            .await;
        assert!(matches!(r, Err(RpcError::Timeout { .. })), "{r:?}");
        assert!(started.elapsed() < Duration::from_secs(3));
    }
}
