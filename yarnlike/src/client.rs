//! Typed calls to the ResourceManager for clients, masters and NodeManagers.

use crate::protocol::*;
use sheaf_rpc::{quic, RpcClient, TlsIdentity};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Extra time a long poll's call deadline gets on top of the wait it asks for.
const POLL_MARGIN: Duration = Duration::from_secs(3);

/// A connection to one ResourceManager.
pub struct RmClient {
    rpc: RpcClient,
    addr: SocketAddr,
}

impl RmClient {
    /// A client of the RM at `addr` presenting `identity`, from an ephemeral port on `local_ip`.
    pub fn new(
        addr: SocketAddr,
        identity: &TlsIdentity,
        local_ip: IpAddr,
    ) -> Result<RmClient, YarnError> {
        let mut rpc = RpcClient::new(quic::client_endpoint(local_ip, identity)?);
        rpc.call_timeout = Duration::from_secs(30);
        Ok(RmClient { rpc, addr })
    }

    /// The RM's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// One call; an `Error` response becomes `Err`.
    pub async fn call(&self, req: &RmRequest) -> Result<RmResponse, YarnError> {
        let wait = match req {
            RmRequest::Allocate(a) => a.wait_ms,
            RmRequest::NodeHeartbeat(h) => h.wait_ms,
            _ => 0,
        };
        // A long poll gets only a small margin over its wait: a heartbeat stuck on a connection to
        // an RM that restarted must fail fast so the caller reconnects and re-registers.
        let deadline = match req {
            RmRequest::Allocate(_) | RmRequest::NodeHeartbeat(_) => {
                Duration::from_millis(wait) + POLL_MARGIN
            }
            _ => self.rpc.call_timeout,
        };
        match self.rpc.call_within(self.addr, req, deadline).await? {
            RmResponse::Error(e) => Err(e),
            other => Ok(other),
        }
    }

    /// One call with an explicit deadline (for calls the caller retries itself, like a
    /// NodeManager's registration: a reply lost on a connection to a restarted RM must not stall
    /// it for the whole default deadline).
    pub async fn call_within(
        &self,
        req: &RmRequest,
        deadline: Duration,
    ) -> Result<RmResponse, YarnError> {
        match self.rpc.call_within(self.addr, req, deadline).await? {
            RmResponse::Error(e) => Err(e),
            other => Ok(other),
        }
    }

    /// Submits an application.
    pub async fn submit(&self, sub: SubmitApplication) -> Result<AppId, YarnError> {
        match self.call(&RmRequest::Submit(sub)).await? {
            RmResponse::Submitted(id) => Ok(id),
            other => Err(unexpected(other)),
        }
    }

    /// One application's report.
    pub async fn application(&self, id: AppId) -> Result<ApplicationReport, YarnError> {
        match self.call(&RmRequest::GetApplication(id)).await? {
            RmResponse::Application(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    /// Applications in `states` (all when empty).
    pub async fn applications(
        &self,
        states: Vec<AppState>,
    ) -> Result<Vec<ApplicationReport>, YarnError> {
        match self.call(&RmRequest::ListApplications(states)).await? {
            RmResponse::Applications(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    /// Kills an application.
    pub async fn kill(&self, id: AppId) -> Result<(), YarnError> {
        match self.call(&RmRequest::Kill(id)).await? {
            RmResponse::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// The queue tree.
    pub async fn queues(&self) -> Result<Vec<QueueReport>, YarnError> {
        match self.call(&RmRequest::QueueStatus).await? {
            RmResponse::Queues(q) => Ok(q),
            other => Err(unexpected(other)),
        }
    }

    /// The NodeManagers.
    pub async fn nodes(&self) -> Result<Vec<NodeReport>, YarnError> {
        match self.call(&RmRequest::ListNodes).await? {
            RmResponse::Nodes(n) => Ok(n),
            other => Err(unexpected(other)),
        }
    }
}

/// An answer that does not fit the request.
pub fn unexpected(r: RmResponse) -> YarnError {
    YarnError::Protocol(format!("{r:?}").chars().take(200).collect())
}
