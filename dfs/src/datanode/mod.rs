//! The DataNode: stores block replicas with per-chunk crc32s, receives them through write
//! pipelines, serves verified reads, scans its replicas in the background and follows the
//! NameNode's commands.
//!
//! - [`block_store`]: replicas on disk (`current/`, `rbw/`, meta files, accounting).
//! - [`transfer`]: the bulk data server (write pipeline, reads, re-replication copies).
//! - [`control`]: the QUIC control RPC (replica info, recovery finalize, checksums).
//! - [`actor`]: the NameNode link (register, heartbeats, reports, commands).
//! - [`scanner`]: the background block scanner.
//! - [`reports`]: reports queued for the NameNode.
//!
//! Start one with [`Datanode::start`].

pub mod actor;
pub mod block_store;
pub mod control;
pub mod reports;
pub mod scanner;
pub mod transfer;

use crate::config::DfsConfig;
use crate::protocol::{BlockId, DatanodeAddr, DatanodeError, ExtendedBlock};
use block_store::{BlockStore, StoreError};
use reports::{PendingReports, ReportQueue};
use scanner::ScannerHandle;
use sheaf_rpc::service::{Shutdown, ShutdownTrigger};
use sheaf_rpc::{
    BulkConnector, BulkListener, BulkTransport, RpcClient, RpcError, RpcServer, TlsIdentity,
};
use std::net::SocketAddr;
use std::sync::atomic::AtomicU32;
use std::sync::Arc;
use std::time::Duration;

/// Why a DataNode could not start.
#[derive(Debug, thiserror::Error)]
pub enum DatanodeStartError {
    /// The data dir is unusable (read-only, full, unreadable).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A listener could not be bound or TLS could not be set up.
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// A configuration value is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The scanner thread could not be started.
    #[error("cannot start the block scanner: {0}")]
    Thread(#[from] std::io::Error),
}

/// State shared by the DataNode's servers and background work.
pub struct DatanodeContext {
    /// The replicas.
    pub(crate) store: BlockStore,
    /// Reports waiting for the NameNode.
    pub(crate) reports: Arc<ReportQueue>,
    /// Opens bulk streams to other DataNodes (pipeline downstream, re-replication).
    pub(crate) connector: BulkConnector,
    /// Where this DataNode is reached.
    pub(crate) addr: DatanodeAddr,
    /// Data streams in progress (reported in heartbeats).
    pub(crate) active_transfers: AtomicU32,
    /// The block scanner.
    pub(crate) scanner: ScannerHandle,
}

impl DatanodeContext {
    /// A replica failed verification while being read: tell the NameNode.
    pub(crate) fn report_corrupt(&self, block: ExtendedBlock) {
        self.reports.corrupt(block);
    }

    /// Lease-recovery finalize of a local replica, reported as received.
    pub(crate) async fn finalize_recovered(
        &self,
        id: BlockId,
        new_gen: u64,
        len: u64,
    ) -> Result<ExtendedBlock, DatanodeError> {
        let store = self.store.clone();
        let done = tokio::task::spawn_blocking(move || store.finalize_recovered(id, new_gen, len))
            .await
            .map_err(|e| DatanodeError::Storage(format!("finalize task failed: {e}")))??;
        self.reports.received(done);
        Ok(done)
    }
}

/// Entry point: starts DataNodes.
pub struct Datanode;

impl Datanode {
    /// Opens the data dir (creating it and its `uuid` on first start; an unwritable dir is an
    /// error naming it), binds the data and control listeners on `[datanode] host`, starts the
    /// scanner and the NameNode link (which keeps retrying until the NameNode is up).
    pub async fn start(
        config: &DfsConfig,
        identity: TlsIdentity,
    ) -> Result<RunningDatanode, DatanodeStartError> {
        let dn = &config.datanode;
        let transport: BulkTransport = config
            .dfs
            .data_transport
            .parse()
            .map_err(DatanodeStartError::Config)?;
        let dir = dn.data_dir.clone();
        let (capacity, reserved) = (dn.capacity_bytes, dn.reserved_bytes);
        let (store, uuid) = tokio::task::spawn_blocking(move || -> Result<_, StoreError> {
            let store = BlockStore::open(&dir, capacity, reserved)?;
            let uuid = block_store::load_or_create_uuid(&dir)?;
            Ok((store, uuid))
        })
        .await
        .map_err(|e| DatanodeStartError::Config(format!("startup task failed: {e}")))??;

        let listener =
            BulkListener::bind(transport, SocketAddr::new(dn.host, dn.data_port), &identity)
                .await?;
        let endpoint =
            sheaf_rpc::quic::server_endpoint(SocketAddr::new(dn.host, dn.rpc_port), &identity)?;
        let addr = DatanodeAddr {
            uuid,
            host: dn.host,
            rpc_port: endpoint.local_addr().map_err(RpcError::from)?.port(),
            data_port: listener.local_addr().port(),
        };
        let connector = BulkConnector::new(transport, &identity, dn.host)?;
        let reports = Arc::new(ReportQueue::default());
        let scan_interval = Duration::from_millis(dn.scan_interval_ms.max(1));
        let scanner = ScannerHandle::start(store.clone(), reports.clone(), scan_interval)?;
        let ctx = Arc::new(DatanodeContext {
            store,
            reports,
            connector,
            addr: addr.clone(),
            active_transfers: AtomicU32::new(0),
            scanner,
        });

        let (trigger, shutdown) = Shutdown::new();
        let mut rpc = RpcClient::new(endpoint.clone());
        rpc.connect_timeout = Duration::from_millis(config.dfs.connect_timeout_ms.max(100));
        rpc.call_timeout = Duration::from_secs(30);
        let link = Arc::new(actor::NamenodeLink {
            ctx: ctx.clone(),
            rpc: Arc::new(rpc),
            namenode: config.namenode.address,
            heartbeat: Duration::from_millis(dn.heartbeat_interval_ms.max(10)),
            block_report: Duration::from_millis(dn.block_report_interval_ms.max(10)),
        });
        let service = Arc::new(control::ControlService { ctx: ctx.clone() });
        let tasks = vec![
            tokio::spawn(transfer::serve(listener, ctx.clone(), shutdown.clone())),
            tokio::spawn(RpcServer::serve(endpoint, service, shutdown.clone())),
            tokio::spawn(link.run(shutdown)),
        ];
        tracing::info!(
            uuid = %addr.uuid, data = %addr.data_addr(), rpc = %addr.rpc_addr(),
            dir = %dn.data_dir.display(), ?transport, "DataNode started"
        );
        Ok(RunningDatanode {
            addr,
            ctx,
            trigger,
            tasks,
        })
    }
}

/// A started DataNode; [`RunningDatanode::shutdown`] stops it.
pub struct RunningDatanode {
    addr: DatanodeAddr,
    ctx: Arc<DatanodeContext>,
    trigger: ShutdownTrigger,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl RunningDatanode {
    /// Where the DataNode is reached (uuid, host, bound ports).
    pub fn addr(&self) -> DatanodeAddr {
        self.addr.clone()
    }

    /// Its block store (tests and diagnostics).
    pub fn store(&self) -> &BlockStore {
        &self.ctx.store
    }

    /// Reports queued for the NameNode and not yet delivered.
    pub fn pending_reports(&self) -> PendingReports {
        self.ctx.reports.snapshot()
    }

    /// Stops serving: in-flight streams are cut, background work ends.
    pub async fn shutdown(self) {
        self.trigger.trigger();
        for mut t in self.tasks {
            if tokio::time::timeout(Duration::from_secs(2), &mut t)
                .await
                .is_err()
            {
                t.abort();
            }
        }
        let ctx = self.ctx;
        let _ = tokio::task::spawn_blocking(move || ctx.scanner.stop()).await;
        tracing::info!(uuid = %self.addr.uuid, "DataNode stopped");
    }
}

#[cfg(test)]
mod tests;
