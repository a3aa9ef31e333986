//! The NameNode daemon: a thin shell around the [`Namesystem`]. It serves
//! [`NamenodeRequest`]s over QUIC, runs every request's decision under the namesystem lock on
//! the blocking pool (sled work never runs on the async runtime), replies only once the edit
//! log says every change the reply may reflect is durable, and drives the monitors on timers.

use super::edit_log::Durability;
use super::namespace::Namespace;
use super::namesystem::{Namesystem, NamesystemConfig, Now};
use super::store::NamespaceStore;
use super::topology::Topology;
use super::StartError;
use crate::config::DfsConfig;
use crate::protocol::{NamenodeError, NamenodeRequest, NamenodeResponse};
use sheaf_rpc::service::{PeerInfo, RpcServer, Service, Shutdown, ShutdownTrigger};
use sheaf_rpc::{quic, TlsIdentity};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The clock the namesystem runs on: monotonic ms since start, wall ms since the epoch.
#[derive(Clone, Copy)]
struct Clock {
    start: Instant,
}

impl Clock {
    fn now(&self) -> Now {
        let wall_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        // +1 so that "never heard from" (0) is always in the past.
        Now {
            mono_ms: self.start.elapsed().as_millis() as u64 + 1,
            wall_ms,
        }
    }
}

struct Shared {
    system: Mutex<Namesystem>,
    durability: watch::Receiver<Durability>,
    clock: Clock,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Namesystem> {
        // A panic in a handler leaves consistent-enough state (mutations are committed as a
        // whole or not at all): keep serving rather than poisoning every later request.
        self.system.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until the edit log has synced `seq`.
    async fn durable(&self, seq: u64) -> Result<(), NamenodeError> {
        let mut rx = self.durability.clone();
        let state = rx
            .wait_for(|d| match d {
                Durability::Synced(s) => *s >= seq,
                Durability::Failed(_) => true,
            })
            .await
            .map_err(|_| NamenodeError::Storage("edit log committer stopped".into()))?;
        match &*state {
            Durability::Synced(_) => Ok(()),
            Durability::Failed(e) => Err(NamenodeError::Storage(e.clone())),
        }
    }
}

/// The NameNode's RPC service.
pub struct NamenodeService {
    shared: Arc<Shared>,
}

impl Service for NamenodeService {
    type Request = NamenodeRequest;
    type Response = NamenodeResponse;

    async fn handle(self: Arc<Self>, req: NamenodeRequest, peer: PeerInfo) -> NamenodeResponse {
        let shared = self.shared.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            let now = shared.clock.now();
            let mut sys = shared.lock();
            let reply = sys.handle(req, now, peer.addr.ip(), &peer.identity);
            (reply, sys.namespace().store().last_seq())
        })
        .await;
        let (reply, seq) = match outcome {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "request handler panicked");
                return Err(NamenodeError::Storage(format!("internal error: {e}")));
            }
        };
        // Whatever this reply shows (our own change or another one we saw) must be durable first.
        self.shared.durable(seq).await?;
        reply
    }
}

/// A running NameNode: its address, and `shutdown` to stop it cleanly.
pub struct RunningNamenode {
    addr: SocketAddr,
    trigger: ShutdownTrigger,
    tasks: Vec<JoinHandle<()>>,
    shared: Arc<Shared>,
}

impl RunningNamenode {
    /// The address the NameNode serves on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// True while the NameNode is in safe mode.
    pub fn in_safe_mode(&self) -> bool {
        self.shared.lock().in_safe_mode()
    }

    /// Resolves when the edit log fails (a write or fsync error), with the reason. The
    /// NameNode must then stop ([`RunningNamenode::abort`]): its namespace in memory may hold
    /// changes the log does not, and serving them would show what a restart forgets.
    pub async fn storage_failure(&self) -> String {
        let mut rx = self.shared.durability.clone();
        let failed = rx
            .wait_for(|d| matches!(d, Durability::Failed(_)))
            .await
            .map(|d| match &*d {
                Durability::Failed(e) => e.clone(),
                Durability::Synced(_) => String::new(),
            });
        failed.unwrap_or_else(|_| "the edit log committer stopped".into())
    }

    /// Stops serving and the monitors at once, without a checkpoint (after a storage failure).
    pub async fn abort(mut self) {
        self.trigger.trigger();
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
        tracing::error!("NameNode stopped after a storage failure");
    }

    /// Stops serving, stops the monitors and checkpoints the namespace.
    pub async fn shutdown(mut self) -> Result<(), StartError> {
        self.trigger.trigger();
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || shared.lock().namespace_mut().store_mut().checkpoint())
            .await
            .map_err(|e| StartError::Internal(e.to_string()))?
            .map_err(StartError::Store)?;
        tracing::info!("NameNode stopped");
        Ok(())
    }
}

impl Drop for RunningNamenode {
    fn drop(&mut self) {
        // Dropped without `shutdown`: at least stop serving and the monitors.
        self.trigger.trigger();
    }
}

/// Opens the namespace and starts serving (see [`super::Namenode::start`]).
pub(super) async fn start(
    config: &DfsConfig,
    identity: TlsIdentity,
) -> Result<RunningNamenode, StartError> {
    let nn = config.namenode.clone();
    if !(0.0..=1.0).contains(&nn.safemode_threshold) {
        return Err(StartError::Config(format!(
            "[namenode] safemode-threshold must be within 0..=1, got {}",
            nn.safemode_threshold
        )));
    }
    if nn.dead_timeout_ms == 0 || nn.replication_interval_ms == 0 {
        return Err(StartError::Config(
            "[namenode] dead-timeout-ms and replication-interval-ms must be positive".into(),
        ));
    }
    let topology = match &config.cluster.topology {
        Some(p) => Topology::load(p).map_err(StartError::Topology)?,
        None => Topology::default(),
    };
    // Bind first: a port in use should fail fast, before replaying the log.
    let endpoint = quic::server_endpoint(nn.address, &identity).map_err(|e| StartError::Bind {
        addr: nn.address,
        reason: e.to_string(),
    })?;
    let addr = endpoint.local_addr().map_err(|e| StartError::Bind {
        addr: nn.address,
        reason: e.to_string(),
    })?;
    let clock = Clock {
        start: Instant::now(),
    };
    let mut cfg = NamesystemConfig::from_config(&nn);
    cfg.trash_interval_ms = config.dfs.trash_interval_ms;
    let window = Duration::from_micros(nn.group_commit_window_us);
    let data_dir = nn.data_dir.clone();
    let checkpoint_log_bytes = nn.checkpoint_log_bytes;
    let system = tokio::task::spawn_blocking(move || -> Result<Namesystem, StartError> {
        let mut store =
            NamespaceStore::open(&data_dir, window, false).map_err(StartError::Store)?;
        store.set_checkpoint_log_bytes(checkpoint_log_bytes);
        let ns = Namespace::load(store).map_err(StartError::Namespace)?;
        Namesystem::load(ns, cfg, topology, clock.now()).map_err(StartError::Namespace)
    })
    .await
    .map_err(|e| StartError::Internal(e.to_string()))??;
    let durability = system.namespace().store().durability();
    let safe = system.in_safe_mode();
    let shared = Arc::new(Shared {
        system: Mutex::new(system),
        durability,
        clock,
    });

    let (trigger, shutdown) = Shutdown::new();
    let service = Arc::new(NamenodeService {
        shared: shared.clone(),
    });
    let mut tasks = vec![tokio::spawn(RpcServer::serve(
        endpoint,
        service,
        shutdown.clone(),
    ))];
    // Liveness, safe mode and leases: checked several times per dead timeout, at most every 100 ms.
    let monitor_every = Duration::from_millis((nn.dead_timeout_ms / 8).clamp(100, 1000));
    tasks.push(spawn_monitor(
        shared.clone(),
        shutdown.clone(),
        monitor_every,
        |sys, now| sys.tick(now),
    ));
    let replication_every = Duration::from_millis(nn.replication_interval_ms);
    let shutdown_for_trash = shutdown.clone();
    tasks.push(spawn_monitor(
        shared.clone(),
        shutdown,
        replication_every,
        |sys, now| sys.replication_pass(now),
    ));
    if config.dfs.trash_interval_ms > 0 {
        // Hadoop's emptier runs once per checkpoint interval, which defaults to the interval.
        tasks.push(spawn_monitor(
            shared.clone(),
            shutdown_for_trash,
            Duration::from_millis(config.dfs.trash_interval_ms),
            |sys, now| sys.empty_trash(now),
        ));
    }
    tracing::info!(%addr, safe_mode = safe, "NameNode serving");
    Ok(RunningNamenode {
        addr,
        trigger,
        tasks,
        shared,
    })
}

fn spawn_monitor(
    shared: Arc<Shared>,
    mut shutdown: Shutdown,
    every: Duration,
    work: fn(&mut Namesystem, Now),
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut timer = tokio::time::interval(every);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = timer.tick() => {}
            }
            let s = shared.clone();
            let r = tokio::task::spawn_blocking(move || {
                let now = s.clock.now();
                work(&mut s.lock(), now);
            })
            .await;
            if let Err(e) = r {
                tracing::error!(error = %e, "NameNode monitor panicked");
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use crate::client::DfsClient;
    use crate::config::DfsConfig;
    use crate::namenode::Namenode;
    use sheaf_rpc::tls::ClusterCa;
    use sheaf_rpc::TlsIdentity;
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_edit_log_sync_refuses_the_change_and_stops_the_namenode() {
        let dir = tempfile::tempdir().unwrap();
        let tls = dir.path().join("tls");
        ClusterCa::create_dir("t", &tls).unwrap();
        let mut config = DfsConfig::default();
        config.cluster.tls_dir = tls.clone();
        config.namenode.address = "127.0.0.1:0".parse().unwrap();
        config.namenode.data_dir = dir.path().join("nn");
        config.namenode.safemode_extension_ms = 0;
        crate::namenode::format(&config, false).unwrap();
        let running = Namenode::start(&config, TlsIdentity::load(&tls, "daemon").unwrap())
            .await
            .unwrap();
        config.namenode.address = running.local_addr();
        let client = DfsClient::connect(&config, TlsIdentity::load(&tls, "user").unwrap())
            .await
            .unwrap();
        client.mkdirs("/before", false).await.unwrap();
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        running
            .shared
            .lock()
            .namespace()
            .store()
            .edit_log()
            .replace_file(full);
        let err = client.mkdirs("/after", false).await.unwrap_err();
        assert!(err.to_string().contains("No space left"), "{err}");
        let why = tokio::time::timeout(Duration::from_secs(5), running.storage_failure())
            .await
            .expect("the failure was not reported");
        assert!(why.contains("fsync of the edit log failed"), "{why}");
        running.abort().await;
    }
}
