//! `sheaf datanode`: runs a DataNode until SIGTERM or SIGINT.
//!
//! Configuration comes from `sheaf.toml` (`[datanode]`, `[namenode] address`, `[cluster] tls-dir`,
//! `[dfs] data-transport`) with `SHEAF_DATANODE_*` environment overrides; the flags below override both.

use super::daemon;
use anyhow::Context;
use sheaf_dfs::config::DfsConfig;
use sheaf_dfs::datanode::Datanode;

use std::net::IpAddr;
use std::path::PathBuf;

/// Flags of `sheaf datanode`.
#[derive(clap::Args, Debug)]
pub struct DatanodeArgs {
    /// Address to bind and advertise (the host's identity), overrides `[datanode] host`.
    #[arg(long, value_name = "IP")]
    pub host: Option<IpAddr>,
    /// Directory for block replicas and the DataNode's uuid, overrides `[datanode] data-dir`.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// QUIC control RPC port (0 = any), overrides `[datanode] rpc-port`.
    #[arg(long, value_name = "PORT")]
    pub rpc_port: Option<u16>,
    /// Bulk data port (0 = any), overrides `[datanode] data-port`.
    #[arg(long, value_name = "PORT")]
    pub data_port: Option<u16>,
}

/// Runs the DataNode in the foreground until a termination signal.
pub fn run(args: DatanodeArgs) -> anyhow::Result<()> {
    let file = crate::cli::config::load()?;
    let mut config = DfsConfig::from_file(&file).context("invalid configuration")?;
    let dn = &mut config.datanode;
    if let Some(h) = args.host {
        dn.host = h;
    }
    if let Some(d) = args.data_dir {
        dn.data_dir = d;
    }
    if let Some(p) = args.rpc_port {
        dn.rpc_port = p;
    }
    if let Some(p) = args.data_port {
        dn.data_port = p;
    }
    let tls_dir = config.cluster.tls_dir.clone();
    let identity = daemon::identity(&tls_dir)?;
    let runtime = super::runtime::runtime(super::runtime::Workload::Serving)?;
    let outcome = runtime.block_on(async {
        let datanode = Datanode::start(&config, identity).await?;
        let addr = datanode.addr();
        tracing::info!(uuid = %addr.uuid, data = %addr.data_addr(), rpc = %addr.rpc_addr(), "serving");
        daemon::wait_for_signal().await?;
        datanode.shutdown().await;
        anyhow::Ok(())
    });
    // Disk work still finishing (a packet being written) gets a moment, never a hang.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    outcome
}
