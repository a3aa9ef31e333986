//! `sheaf resourcemanager` and `sheaf nodemanager`: the yarn daemons, in the foreground until
//! SIGTERM or SIGINT. Configuration: `[resourcemanager]`, `[nodemanager]`, `[yarn]` and
//! `[cluster]` of `sheaf.toml` with `SHEAF_<SECTION>_<KEY>` overrides; flags override both.

use anyhow::Context;
use sheaf_dfs::config::{ClusterConfig, DfsConfig};
use sheaf_mapreduce::cluster::submission;
use sheaf_mapreduce::shuffle::{shuffle_root, ShuffleAuxService};
use sheaf_rpc::service::Shutdown;
use sheaf_yarn::config::YarnSections;
use sheaf_yarn::nodemanager::daemon::NodeManagerSetup;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Flags of `sheaf resourcemanager`.
#[derive(clap::Args, Debug)]
pub struct ResourceManagerArgs {
    /// Address to bind (QUIC), overrides `[resourcemanager] address`.
    #[arg(long, value_name = "IP:PORT")]
    pub address: Option<SocketAddr>,
    /// State store directory, overrides `[resourcemanager] state-dir`.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

/// Flags of `sheaf nodemanager`.
#[derive(clap::Args, Debug)]
pub struct NodeManagerArgs {
    /// Address to advertise as this host's identity, overrides `[nodemanager] host`.
    #[arg(long, value_name = "IP")]
    pub host: Option<IpAddr>,
    /// Rack, overrides `[nodemanager] rack` and the topology file.
    #[arg(long)]
    pub rack: Option<String>,
    /// Memory for containers, MB, overrides `[nodemanager] memory-mb`.
    #[arg(long, value_name = "MB")]
    pub memory_mb: Option<u64>,
    /// Vcores for containers, overrides `[nodemanager] vcores`.
    #[arg(long)]
    pub vcores: Option<u32>,
    /// Root of container working dirs, overrides `[nodemanager] local-dir`.
    #[arg(long, value_name = "DIR")]
    pub local_dir: Option<PathBuf>,
    /// Root of container logs, overrides `[nodemanager] log-dir`.
    #[arg(long, value_name = "DIR")]
    pub log_dir: Option<PathBuf>,
}

/// Triggers `trigger` on SIGTERM or SIGINT.
async fn shutdown_on_signal(trigger: sheaf_rpc::service::ShutdownTrigger) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        trigger.trigger();
    });
    Ok(())
}

/// Runs the ResourceManager.
pub fn resourcemanager(args: ResourceManagerArgs) -> anyhow::Result<()> {
    let file = crate::cli::config::load()?;
    let cluster: ClusterConfig = file.section("cluster").context("invalid configuration")?;
    let mut yarn = YarnSections::from_file(&file).context("invalid configuration")?;
    if let Some(a) = args.address {
        yarn.resourcemanager.address = a;
    }
    if let Some(d) = args.state_dir {
        yarn.resourcemanager.state_dir = d;
    }
    let identity = super::daemon::identity(&cluster.tls_dir)?;
    super::runtime::runtime(super::runtime::Workload::Serving)?.block_on(async {
        let (trigger, shutdown) = Shutdown::new();
        shutdown_on_signal(trigger).await?;
        sheaf_yarn::resourcemanager::daemon::run(
            yarn.resourcemanager,
            yarn.yarn,
            identity,
            shutdown,
        )
        .await
        .context("the resourcemanager stopped")
    })
}

/// The rack of `host` in a topology file (lines `HOST RACK`, `#` comments).
fn rack_from_topology(path: &Path, host: IpAddr) -> anyhow::Result<Option<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read topology file {}", path.display()))?;
    Ok(text
        .lines()
        .map(|l| {
            l.split('#')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .collect::<Vec<_>>()
        })
        .find(|f| f.len() >= 2 && f[0].parse::<IpAddr>().ok() == Some(host))
        .map(|f| f[1].to_string()))
}

/// Runs a NodeManager.
pub fn nodemanager(args: NodeManagerArgs) -> anyhow::Result<()> {
    let file = crate::cli::config::load()?;
    let cluster: ClusterConfig = file.section("cluster").context("invalid configuration")?;
    let dfs = DfsConfig::from_file(&file).context("invalid configuration")?;
    let yarn = YarnSections::from_file(&file).context("invalid configuration")?;
    let mut nm = yarn.nodemanager;
    if let Some(h) = args.host {
        nm.host = h;
    }
    if let Some(r) = args.rack {
        nm.rack = r;
    }
    if let Some(m) = args.memory_mb {
        nm.memory_mb = m;
    }
    if let Some(v) = args.vcores {
        nm.vcores = v;
    }
    if let Some(d) = args.local_dir {
        nm.local_dir = d;
    }
    if let Some(d) = args.log_dir {
        nm.log_dir = d;
    }
    nm.validate().context("invalid configuration")?;
    let rack = if !nm.rack.is_empty() {
        nm.rack.clone()
    } else if let Some(t) = &cluster.topology {
        rack_from_topology(t, nm.host)?.unwrap_or_else(|| "/default-rack".into())
    } else {
        "/default-rack".into()
    };
    let identity = super::daemon::identity(&cluster.tls_dir)?;
    let tls_dir = std::path::absolute(&cluster.tls_dir).unwrap_or(cluster.tls_dir.clone());
    let mut env = BTreeMap::from([
        (
            "SHEAF_CLUSTER_TLS_DIR".to_string(),
            tls_dir.display().to_string(),
        ),
        (
            "SHEAF_NAMENODE_ADDRESS".to_string(),
            dfs.namenode.address.to_string(),
        ),
        (
            "SHEAF_RUN_DIR".to_string(),
            crate::cli::config::run_dir().display().to_string(),
        ),
    ]);
    if let Some(conf) = crate::cli::config::config_path() {
        let conf = std::path::absolute(&conf).unwrap_or(conf);
        env.insert("SHEAF_CONF".into(), conf.display().to_string());
    }
    // The shuffle service serves map outputs that tasks write under <local-dir>/shuffle,
    // outside their container dirs (deleted when a container ends), until the job is removed.
    let shuffle = ShuffleAuxService::new(
        identity.clone(),
        &shuffle_root(&nm.local_dir),
        nm.shuffle_port,
    )
    .context("cannot prepare the shuffle service")?;
    env.insert(
        submission::env::SHUFFLE_DIR.to_string(),
        shuffle.root().display().to_string(),
    );
    let setup = NodeManagerSetup {
        dfs: Some(dfs),
        rm_address: yarn.resourcemanager.address,
        config: nm,
        rack,
        identity,
        container_env: env,
        aux_services: vec![Arc::new(shuffle)],
    };
    super::runtime::runtime(super::runtime::Workload::Serving)?.block_on(async {
        let (trigger, shutdown) = Shutdown::new();
        shutdown_on_signal(trigger).await?;
        sheaf_yarn::nodemanager::daemon::run(setup, shutdown)
            .await
            .context("the nodemanager stopped")
    })
}
