//! The JobTracker's RPC service: forwards task and client requests to the driver's task (the one
//! owner of the tracker) and answers for it once it is gone; [`ServerGuard`] runs it.

use super::driver::Command;
use super::JobTrackerError;
use crate::cluster::protocol::{JtError, JtRequest, JtResponse, TaskAssignment};
use crate::jobtracker::JobStatus;
use sheaf_dfs::client::{DfsClient, DfsError};
use sheaf_rpc::service::{PeerInfo, RpcServer, Service, Shutdown, ShutdownTrigger};
use sheaf_rpc::{quic, TlsIdentity};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

/// How long a status call waits, once the job ended, for the final status (published after the
/// history is written, which takes moments).
const FINAL_STATUS_WAIT: Duration = Duration::from_secs(15);
/// The answer to a status call when the JobTracker stops without a final status.
const STOPPING: &str = "the jobtracker is stopping";

/// What the owning task answers an RPC request with.
pub(super) enum RpcAnswer {
    /// The response as is.
    Reply(JtResponse),
    /// A task assignment whose attempt directory (absolute DFS path) must be created (empty)
    /// before it is sent.
    Assign(Box<TaskAssignment>, Option<String>),
}

/// What a request is answered with once the owning task is gone.
enum AfterEnd {
    Status,
    MapEvents { from: u32 },
    Other,
}

/// The JobTracker's RPC service, for tasks and clients.
pub(super) struct JtService {
    pub(super) commands: mpsc::Sender<Command>,
    pub(super) dfs: DfsClient,
    /// The job's last status, for clients asking after the tracker stopped; set once the
    /// history is written (a client that sees the job ended can read it).
    pub(super) final_status: watch::Receiver<Option<JobStatus>>,
}

impl JtService {
    /// The answer when the owning task is gone (the job is over). A status waits (briefly) for
    /// the final one, published once the history is written.
    async fn after_end(&self, req: AfterEnd) -> JtResponse {
        match req {
            AfterEnd::Status => {
                let mut status = self.final_status.clone();
                let published =
                    tokio::time::timeout(FINAL_STATUS_WAIT, status.wait_for(|s| s.is_some())).await;
                match published {
                    Ok(Ok(s)) => match s.as_ref() {
                        Some(s) => JtResponse::Status(Box::new(s.clone())),
                        None => JtResponse::Error(JtError::Internal(STOPPING.into())),
                    },
                    _ => JtResponse::Error(JtError::Internal(STOPPING.into())),
                }
            }
            AfterEnd::MapEvents { from } => JtResponse::MapEvents {
                events: Vec::new(),
                next: from,
                proceed: false,
            },
            AfterEnd::Other => JtResponse::Ack { proceed: false },
        }
    }

    async fn create_attempt_dir(&self, dir: &str) -> Result<(), DfsError> {
        // A JobTracker attempt that died may have started this attempt number already.
        match self.dfs.delete(dir, true).await {
            Ok(_) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
        self.dfs.mkdirs(dir, true).await
    }
}

impl Service for JtService {
    type Request = JtRequest;
    type Response = JtResponse;

    async fn handle(self: Arc<Self>, req: JtRequest, _peer: PeerInfo) -> JtResponse {
        let (tx, rx) = oneshot::channel();
        let fallback = match &req {
            JtRequest::Status => AfterEnd::Status,
            JtRequest::MapEvents { from, .. } => AfterEnd::MapEvents { from: *from },
            _ => AfterEnd::Other,
        };
        if self.commands.send(Command::Rpc(req, tx)).await.is_err() {
            return self.after_end(fallback).await;
        }
        match rx.await {
            Ok(RpcAnswer::Reply(r)) => r,
            Ok(RpcAnswer::Assign(assignment, dir)) => {
                if let Some(dir) = dir {
                    if let Err(e) = self.create_attempt_dir(&dir).await {
                        return JtResponse::Error(JtError::Internal(format!(
                            "cannot create the attempt directory {dir}: {e}"
                        )));
                    }
                }
                JtResponse::Task(assignment)
            }
            Err(_) => self.after_end(fallback).await,
        }
    }
}

/// The running RPC server: the one place that stops it. [`ServerGuard::finish`] stops it and
/// waits until it stopped accepting; dropping the guard (an early return) only tells it to stop.
pub(super) struct ServerGuard {
    address: SocketAddr,
    stop: ShutdownTrigger,
    server: Option<JoinHandle<()>>,
}

impl ServerGuard {
    /// Serves `service` on a new endpoint bound to `bind` (port 0: any free one).
    pub(super) fn start(
        bind: SocketAddr,
        identity: &TlsIdentity,
        service: JtService,
    ) -> Result<ServerGuard, JobTrackerError> {
        let endpoint = quic::server_endpoint(bind, identity)?;
        let address = endpoint
            .local_addr()
            .map_err(|e| JobTrackerError::Internal(format!("jobtracker endpoint: {e}")))?;
        let (stop, shutdown) = Shutdown::new();
        let server = tokio::spawn(RpcServer::serve(endpoint, Arc::new(service), shutdown));
        Ok(ServerGuard {
            address,
            stop,
            server: Some(server),
        })
    }

    /// The address the service answers at (the application's tracking address).
    pub(super) fn address(&self) -> SocketAddr {
        self.address
    }

    /// Stops the server and waits for it.
    pub(super) async fn finish(mut self) {
        self.stop.trigger();
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }
}

impl Drop for ServerGuard {
    fn drop(&mut self) {
        self.stop.trigger();
    }
}
