//! The ResourceManager daemon: a thin shell that feeds RPC requests and timer ticks into
//! [`RmState`], makes its store writes durable on a dedicated thread (group commit: one fsync per
//! batch), and answers NodeManager heartbeats and master allocate calls as long polls so work
//! reaches a node the moment it is scheduled instead of on the next heartbeat.

use crate::config::{QueueConfig, ResourceManagerConfig, YarnConfig};
use crate::protocol::*;
use crate::resourcemanager::scheduler::default_queues;
use crate::resourcemanager::state::{RmState, StoreOp};
use crate::resourcemanager::store::RmStore;
use sheaf_rpc::service::Shutdown;
use sheaf_rpc::{quic, PeerInfo, Role, RpcServer, Service, TlsIdentity};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{oneshot, Notify};

/// Longest a long poll may be held, whatever the caller asks (under the RPC call deadline).
const MAX_WAIT: Duration = Duration::from_secs(10);

type StoreJob = (Vec<StoreOp>, Option<oneshot::Sender<Result<(), YarnError>>>);

/// The RPC service of the ResourceManager.
pub struct ResourceManager {
    state: Mutex<RmState>,
    changed: Notify,
    store: mpsc::Sender<StoreJob>,
}

fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Writes store batches in order; everything queued while one batch syncs shares the next fsync.
fn store_writer(store: RmStore, jobs: mpsc::Receiver<StoreJob>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while let Ok(more) = jobs.try_recv() {
            batch.push(more);
        }
        let ops: Vec<StoreOp> = batch
            .iter()
            .flat_map(|(ops, _)| ops.iter().cloned())
            .collect();
        let result = store.apply(&ops);
        if let Err(e) = &result {
            tracing::error!(error = %e, "cannot persist resourcemanager state");
        }
        for (_, ack) in batch {
            if let Some(ack) = ack {
                let _ = ack.send(result.clone());
            }
        }
    }
}

impl ResourceManager {
    fn lock(&self) -> MutexGuard<'_, RmState> {
        // A panic while holding the lock leaves consistent-enough state for reads; keep serving.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues the state's pending writes (under the lock, so they stay in order).
    fn queue_writes(
        &self,
        state: &mut RmState,
        ack: Option<oneshot::Sender<Result<(), YarnError>>>,
    ) {
        let ops = state.take_store_ops();
        if ops.is_empty() && ack.is_none() {
            return;
        }
        if let Err(mpsc::SendError((_, Some(ack)))) = self.store.send((ops, ack)) {
            let _ = ack.send(Err(YarnError::Store("the store writer stopped".into())));
        }
    }

    /// Runs `f` on the state, schedules, queues writes and wakes every long poll.
    fn mutate<T>(&self, f: impl FnOnce(&mut RmState) -> T) -> T {
        let mut s = self.lock();
        let out = f(&mut s);
        s.schedule();
        self.queue_writes(&mut s, None);
        drop(s);
        self.changed.notify_waiters();
        out
    }

    /// Waits (up to `wait`) until `take` yields something worth answering.
    async fn long_poll<T>(
        &self,
        wait: Duration,
        mut take: impl FnMut(&mut RmState) -> Option<T>,
    ) -> Option<T> {
        let deadline = tokio::time::Instant::now() + wait.min(MAX_WAIT);
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(v) = take(&mut self.lock()) {
                return Some(v);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }

    async fn submit(&self, sub: SubmitApplication) -> RmResponse {
        let (tx, rx) = oneshot::channel();
        let result = {
            let mut s = self.lock();
            let r = s.submit(sub, Instant::now());
            s.schedule();
            self.queue_writes(&mut s, Some(tx));
            r
        };
        self.changed.notify_waiters();
        // Acknowledge a submission only once its record is durable.
        match (result, rx.await) {
            (Err(e), _) => RmResponse::Error(e),
            (Ok(_), Ok(Err(e))) => RmResponse::Error(e),
            (Ok(_), Err(_)) => {
                RmResponse::Error(YarnError::Store("the store writer stopped".into()))
            }
            (Ok(id), Ok(Ok(()))) => RmResponse::Submitted(id),
        }
    }

    async fn allocate(&self, req: Allocate) -> RmResponse {
        if let Err(e) = self.mutate(|s| s.allocate(&req)) {
            return RmResponse::Error(e);
        }
        let (attempt, token) = (req.attempt, req.token);
        let first = self.lock().take_allocation(attempt, token);
        if !first.allocated.is_empty()
            || !first.completed.is_empty()
            || first.shutdown
            || req.wait_ms == 0
        {
            return RmResponse::Allocation(first);
        }
        let pending = first.pending;
        let news = self
            .long_poll(Duration::from_millis(req.wait_ms), |s| {
                let a = s.take_allocation(attempt, token);
                (!a.allocated.is_empty() || !a.completed.is_empty() || a.shutdown).then_some(a)
            })
            .await;
        RmResponse::Allocation(news.unwrap_or(Allocation {
            pending,
            ..Allocation::default()
        }))
    }

    async fn heartbeat(&self, hb: NodeHeartbeat) -> RmResponse {
        let known = self.mutate(|s| s.node_heartbeat(hb.node_id, &hb.containers, Instant::now()));
        if known.is_none() {
            return RmResponse::NodeCommands(NodeCommands {
                reregister: true,
                ..NodeCommands::default()
            });
        }
        let node = hb.node_id;
        let cmds = self
            .long_poll(Duration::from_millis(hb.wait_ms), |s| {
                s.has_node_commands(node)
                    .then(|| s.take_node_commands(node))
            })
            .await;
        RmResponse::NodeCommands(cmds.unwrap_or_default())
    }
}

impl Service for ResourceManager {
    type Request = RmRequest;
    type Response = RmResponse;

    async fn handle(self: Arc<Self>, req: RmRequest, peer: PeerInfo) -> RmResponse {
        let now = Instant::now();
        let done = |r: Result<(), YarnError>| match r {
            Ok(()) => RmResponse::Done,
            Err(e) => RmResponse::Error(e),
        };
        let caller = &peer.identity;
        if matches!(
            req,
            RmRequest::RegisterNode(_) | RmRequest::NodeHeartbeat(_)
        ) && caller.role != Role::Daemon
        {
            return RmResponse::Error(YarnError::PermissionDenied(format!(
                "{caller} holds a user certificate and cannot act as a NodeManager (register or heartbeat); NodeManagers run with the cluster's daemon certificate"
            )));
        }
        match req {
            RmRequest::Submit(mut sub) => {
                // The owner is who the certificate names, whatever the request says.
                sub.user = caller.name.clone();
                self.submit(sub).await
            }
            RmRequest::Kill(id) if !caller.is_superuser() => {
                let owner = match self.lock().report(id) {
                    Ok(r) => r.user,
                    Err(e) => return RmResponse::Error(e),
                };
                if owner != caller.name {
                    return RmResponse::Error(YarnError::PermissionDenied(format!(
                        "user={} cannot kill {id}: it belongs to {owner} (only its owner and the cluster's administrators may)",
                        caller.name
                    )));
                }
                done(self.mutate(|s| s.kill(id, now)))
            }
            RmRequest::GetApplication(id) => match self.lock().report(id) {
                Ok(r) => RmResponse::Application(r),
                Err(e) => RmResponse::Error(e),
            },
            RmRequest::ListApplications(states) => {
                RmResponse::Applications(self.lock().list(&states))
            }
            RmRequest::Kill(id) => done(self.mutate(|s| s.kill(id, now))),
            RmRequest::QueueStatus => RmResponse::Queues(self.lock().queues()),
            RmRequest::ListNodes => RmResponse::Nodes(self.lock().node_reports(now)),
            RmRequest::RegisterMaster {
                attempt,
                token,
                tracking_address,
            } => match self.mutate(|s| s.register_master(attempt, token, tracking_address)) {
                Ok(max_resource) => RmResponse::MasterRegistered { max_resource },
                Err(e) => RmResponse::Error(e),
            },
            RmRequest::Allocate(req) => self.allocate(req).await,
            RmRequest::StartContainers {
                attempt,
                token,
                launches,
            } => done(self.mutate(|s| s.start_containers(attempt, token, launches))),
            RmRequest::FinishMaster {
                attempt,
                token,
                status,
                diagnostics,
            } => done(self.mutate(|s| s.finish_master(attempt, token, status, diagnostics, now))),
            RmRequest::RegisterNode(reg) => {
                tracing::info!(host = %reg.host, rack = %reg.rack, capability = %reg.capability, "nodemanager registered");
                let node_id = self.mutate(|s| s.register_node(reg, now));
                RmResponse::NodeRegistered { node_id }
            }
            RmRequest::NodeHeartbeat(hb) => self.heartbeat(hb).await,
        }
    }
}

/// Picks the queue tree: the configured one (and remembers it), else the stored one, else
/// `root.default`.
fn choose_queues(
    store: &RmStore,
    configured: &[QueueConfig],
) -> Result<Vec<QueueConfig>, YarnError> {
    if !configured.is_empty() {
        store.save_queues(configured)?;
        return Ok(configured.to_vec());
    }
    Ok(store.load_queues()?.unwrap_or_else(default_queues))
}

/// Runs a ResourceManager until `shutdown`.
pub async fn run(
    rm: ResourceManagerConfig,
    yarn: YarnConfig,
    identity: TlsIdentity,
    shutdown: Shutdown,
) -> Result<(), YarnError> {
    let dir = rm.state_dir.clone();
    let configured = yarn.queues.clone();
    let (store, records, queues) = tokio::task::spawn_blocking(move || -> Result<_, YarnError> {
        let store = RmStore::open(&dir)?;
        let records = store.load_apps()?;
        let queues = choose_queues(&store, &configured)?;
        Ok((store, records, queues))
    })
    .await
    .map_err(|e| YarnError::Store(e.to_string()))??;
    let now = Instant::now();
    // The attempts' secrets come from a seed only this process knows.
    let mut state = RmState::new(&rm, &yarn, &queues, now, epoch_ms(), rand::random())?;
    let recovered = records.len();
    state.recover(records, now);
    let endpoint = quic::server_endpoint(rm.address, &identity)?;
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("rm-store".into())
        .spawn(move || store_writer(store, rx))
        .map_err(|e| YarnError::Store(format!("cannot start the store writer: {e}")))?;
    let service = Arc::new(ResourceManager {
        state: Mutex::new(state),
        changed: Notify::new(),
        store: tx,
    });
    service.mutate(|_| ());
    tracing::info!(address = %rm.address, recovered, queues = queues.len(), "resourcemanager listening");
    let ticker = {
        let service = service.clone();
        let mut shutdown = shutdown.clone();
        let period = Duration::from_millis((rm.node_timeout_ms / 4).clamp(50, 1_000));
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(period);
            loop {
                tokio::select! {
                    _ = shutdown.wait() => return,
                    _ = interval.tick() => {}
                }
                service.mutate(|s| s.tick(Instant::now()));
            }
        })
    };
    RpcServer::serve(endpoint, service, shutdown).await;
    ticker.abort();
    Ok(())
}
