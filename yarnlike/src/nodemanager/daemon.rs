//! The NodeManager daemon: registers with the RM, heartbeats container statuses, launches and
//! kills what the RM says, enforces memory limits and cleans up after applications.
//!
//! Two heartbeat loops share the work: a long poll that the RM answers as soon as it has commands
//! (or after the heartbeat interval, which keeps the node alive), and an immediate one sent when a
//! container starts or ends, so completions never wait for the long poll to return.

use crate::client::{unexpected, RmClient};
use crate::config::NodeManagerConfig;
use crate::nodemanager::aux_service::AuxService;
use crate::nodemanager::containers::{ContainerSettings, Containers};
use crate::nodemanager::localizer::Localizer;
use crate::nodemanager::log_aggregation::LogAggregator;
use crate::protocol::*;
use sheaf_rpc::service::Shutdown;
use sheaf_rpc::TlsIdentity;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Everything a NodeManager needs besides its config section.
pub struct NodeManagerSetup {
    /// `[nodemanager]`.
    pub config: NodeManagerConfig,
    /// Rack of this host (resolved from the config or the topology file).
    pub rack: String,
    /// The RM's address.
    pub rm_address: SocketAddr,
    /// The daemon certificate.
    pub identity: TlsIdentity,
    /// Variables every container gets (cluster certificates, NameNode address, …).
    pub container_env: BTreeMap<String, String>,
    /// Services hosted in this process.
    pub aux_services: Vec<Arc<dyn AuxService>>,
    /// The DFS to localize files from and aggregate logs into (`None`: no localization, logs
    /// stay local; `[nodemanager] aggregate-logs` turns aggregation off).
    pub dfs: Option<sheaf_dfs::config::DfsConfig>,
}

/// Deadline of one registration attempt; registration retries with backoff until it succeeds.
const REGISTER_DEADLINE: Duration = Duration::from_secs(3);

struct NodeManager {
    rm: RmClient,
    containers: Arc<Containers>,
    registration: RegisterNode,
    node_id: AtomicU64,
    interval: Duration,
    aggregator: Option<Arc<LogAggregator>>,
    kill_grace: Duration,
    aux_services: Vec<Arc<dyn AuxService>>,
}

impl NodeManager {
    async fn register(&self, shutdown: &Shutdown) -> Option<u64> {
        let mut backoff = Duration::from_millis(100);
        loop {
            let mut reg = self.registration.clone();
            reg.running = self.containers.live();
            match self
                .rm
                .call_within(&RmRequest::RegisterNode(reg), REGISTER_DEADLINE)
                .await
            {
                Ok(RmResponse::NodeRegistered { node_id }) => {
                    self.node_id.store(node_id, Ordering::SeqCst);
                    tracing::info!(node_id, rm = %self.rm.addr(), "registered with the resourcemanager");
                    return Some(node_id);
                }
                Ok(other) => tracing::warn!(error = %unexpected(other), "registration refused"),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot register with the resourcemanager; retrying")
                }
            }
            if shutdown.is_triggered() {
                return None;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(self.interval);
        }
    }

    /// One heartbeat; `false` when the RM wants a new registration.
    async fn heartbeat(&self, wait: Duration) -> Result<bool, YarnError> {
        let hb = NodeHeartbeat {
            node_id: self.node_id.load(Ordering::SeqCst),
            containers: self.containers.statuses(),
            wait_ms: wait.as_millis() as u64,
        };
        let cmds = match self.rm.call(&RmRequest::NodeHeartbeat(hb)).await? {
            RmResponse::NodeCommands(c) => c,
            other => return Err(unexpected(other)),
        };
        if cmds.reregister {
            return Ok(false);
        }
        self.containers.forget(&cmds.acknowledged);
        for id in cmds.stop {
            self.containers.stop(
                id,
                (
                    exit_status::KILLED,
                    "killed: stopped by the resourcemanager".into(),
                ),
            );
        }
        for launch in cmds.launch {
            tracing::debug!(container = %launch.id, "launching");
            self.containers.launch(launch);
        }
        for app in cmds.finished_apps {
            tokio::spawn(finish_app(
                self.containers.clone(),
                self.aggregator.clone(),
                app,
                self.kill_grace,
                self.aux_services.clone(),
            ));
        }
        Ok(true)
    }

    async fn poll_loop(self: Arc<Self>, mut shutdown: Shutdown) {
        loop {
            let result = tokio::select! {
                _ = shutdown.wait() => return,
                r = self.heartbeat(self.interval) => r,
            };
            match result {
                Ok(true) => {}
                Ok(false) => {
                    if self.register(&shutdown).await.is_none() {
                        return;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "heartbeat failed");
                    tokio::select! {
                        _ = shutdown.wait() => return,
                        _ = tokio::time::sleep(self.interval.min(Duration::from_millis(500))) => {}
                    }
                }
            }
        }
    }

    async fn urgent_loop(self: Arc<Self>, mut shutdown: Shutdown) {
        loop {
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = self.containers.changed.notified() => {}
            }
            if let Err(e) = self.heartbeat(Duration::ZERO).await {
                tracing::debug!(error = %e, "immediate heartbeat failed");
            }
        }
    }
}

/// After an application ends: waits for its containers here to exit, tells the aux services,
/// aggregates the containers' logs into the DFS (if configured) and removes their working
/// directories.
async fn finish_app(
    containers: Arc<Containers>,
    aggregator: Option<Arc<LogAggregator>>,
    app: AppId,
    grace: Duration,
    aux_services: Vec<Arc<dyn AuxService>>,
) {
    let deadline = tokio::time::Instant::now() + grace + Duration::from_secs(10);
    while containers.has_live(app) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for service in &aux_services {
        service.application_finished(&app);
    }
    if let (Some(agg), Some(user)) = (aggregator, containers.user_of(app)) {
        // The DFS client's copy future is not Send; drive it on a blocking thread instead.
        let handle = tokio::runtime::Handle::current();
        let upload =
            tokio::task::spawn_blocking(move || handle.block_on(agg.aggregate(app, &user)));
        match upload.await {
            Ok(Ok(n)) => tracing::info!(%app, files = n, "container logs aggregated into the DFS"),
            Ok(Err(e)) => tracing::warn!(%app, error = %e, "container logs stay on local disk"),
            Err(e) => tracing::warn!(%app, error = %e, "log aggregation task failed"),
        }
    }
    containers.cleanup_app(app).await;
}

/// Runs a NodeManager until `shutdown`; kills its containers on the way out.
pub async fn run(setup: NodeManagerSetup, shutdown: Shutdown) -> Result<(), YarnError> {
    let capability = setup.config.validate()?;
    let host = setup.config.host;
    let mut aux = BTreeMap::new();
    for service in &setup.aux_services {
        let addr = service.start(host)?;
        tracing::info!(service = service.name(), %addr, "aux service started");
        aux.insert(service.name().to_string(), addr);
    }
    let mut env = setup.container_env.clone();
    env.insert(
        crate::resourcemanager::state::env::NM_HOST.into(),
        host.to_string(),
    );
    let localizer = setup.dfs.clone().map(|dfs| {
        Arc::new(Localizer::new(
            dfs,
            setup.identity.clone(),
            host,
            setup.config.local_dir.clone(),
        ))
    });
    let settings = ContainerSettings {
        localizer,
        local_dir: setup.config.local_dir.clone(),
        log_dir: setup.config.log_dir.clone(),
        kill_grace: Duration::from_millis(setup.config.kill_grace_ms),
        env,
    };
    let containers = Containers::new(settings);
    let aggregator = setup
        .dfs
        .clone()
        .filter(|_| setup.config.aggregate_logs)
        .map(|dfs| {
            Arc::new(LogAggregator::new(
                dfs,
                setup.identity.clone(),
                host,
                setup.config.log_dir.clone(),
            ))
        });
    let nm = Arc::new(NodeManager {
        rm: RmClient::new(setup.rm_address, &setup.identity, host)?,
        containers: containers.clone(),
        registration: RegisterNode {
            host: host.to_string(),
            rack: setup.rack.clone(),
            capability,
            aux_services: aux,
            running: vec![],
        },
        node_id: AtomicU64::new(0),
        interval: Duration::from_millis(setup.config.heartbeat_interval_ms.max(10)),
        aggregator,
        kill_grace: Duration::from_millis(setup.config.kill_grace_ms),
        aux_services: setup.aux_services.clone(),
    });
    if nm.register(&shutdown).await.is_none() {
        stop_aux_services(&setup.aux_services);
        return Ok(());
    }
    let poll = tokio::spawn(nm.clone().poll_loop(shutdown.clone()));
    let urgent = tokio::spawn(nm.clone().urgent_loop(shutdown.clone()));
    let monitor = {
        let containers = containers.clone();
        let mut shutdown = shutdown.clone();
        let enforce = setup.config.enforce_memory;
        let period = Duration::from_millis(setup.config.monitor_interval_ms.max(10));
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.wait() => return,
                    _ = tokio::time::sleep(period) => {}
                }
                if enforce {
                    containers.enforce_memory().await;
                }
            }
        })
    };
    let mut wait = shutdown.clone();
    wait.wait().await;
    containers.stop_all();
    let _ = tokio::join!(poll, urgent, monitor);
    stop_aux_services(&setup.aux_services);
    // Give killed containers their grace period to exit before the process goes.
    tokio::time::sleep(Duration::from_millis(setup.config.kill_grace_ms.min(3_000))).await;
    Ok(())
}

/// Stops the hosted services (after the containers were told to stop, so a map task's last
/// registration is not cut off first).
fn stop_aux_services(services: &[Arc<dyn AuxService>]) {
    for service in services {
        service.stop();
        tracing::info!(service = service.name(), "aux service stopped");
    }
}
