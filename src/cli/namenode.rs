//! `sheaf namenode` (runs the NameNode until SIGTERM/SIGINT) and `sheaf format` (creates the
//! cluster CA and an empty namespace).
//!
//! Configuration comes from `sheaf.toml` (`[namenode]`, `[cluster]`) with `SHEAF_NAMENODE_*`
//! environment overrides; the flags below override both.

use super::daemon;
use anyhow::Context;
use sheaf_dfs::config::DfsConfig;
use sheaf_dfs::namenode::{self, Namenode};
use sheaf_rpc::ClusterCa;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Flags of `sheaf namenode`.
#[derive(clap::Args, Debug)]
pub struct NamenodeArgs {
    /// Address to serve on, overrides `[namenode] address`.
    #[arg(long, value_name = "IP:PORT")]
    pub address: Option<SocketAddr>,
    /// Namespace directory, overrides `[namenode] data-dir`.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

/// Flags of `sheaf format`.
#[derive(clap::Args, Debug)]
pub struct FormatArgs {
    /// Cluster name (goes into the CA's name), overrides `[cluster] name`.
    #[arg(long, value_name = "NAME")]
    pub cluster: Option<String>,
    /// Destroy an existing namespace and create an empty one (the certificates are kept).
    #[arg(long)]
    pub force: bool,
    /// Namespace directory, overrides `[namenode] data-dir`.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

fn load_config() -> anyhow::Result<DfsConfig> {
    let file = crate::cli::config::load()?;
    DfsConfig::from_file(&file).context("invalid configuration")
}

/// Runs the NameNode in the foreground until a termination signal.
pub fn run(args: NamenodeArgs) -> anyhow::Result<()> {
    let mut config = load_config()?;
    if let Some(a) = args.address {
        config.namenode.address = a;
    }
    if let Some(d) = args.data_dir {
        config.namenode.data_dir = d;
    }
    let tls_dir = config.cluster.tls_dir.clone();
    let identity = daemon::identity(&tls_dir)?;
    let runtime = super::runtime::runtime(super::runtime::Workload::Serving)?;
    runtime.block_on(async {
        let running = Namenode::start(&config, identity).await?;
        tracing::info!(addr = %running.local_addr(), data_dir = %config.namenode.data_dir.display(), "NameNode started");
        let failure = tokio::select! {
            signal = daemon::wait_for_signal() => {
                signal?;
                None
            }
            why = running.storage_failure() => Some(why),
        };
        match failure {
            None => {
                tracing::info!("termination signal received; stopping");
                running.shutdown().await?;
                Ok(())
            }
            // Fail-stop, as HDFS's NameNode does when it cannot sync its edits.
            Some(why) => {
                running.abort().await;
                anyhow::bail!(
                    "stopped: {why}; changes not in the edit log were never acknowledged, and a restart replays every one that was: fix the storage of {} and start the NameNode again",
                    config.namenode.data_dir.display()
                )
            }
        }
    })
}

/// Creates the cluster's TLS material (unless present) and a fresh namespace.
pub fn format(args: FormatArgs) -> anyhow::Result<()> {
    let mut config = load_config()?;
    if let Some(name) = args.cluster {
        config.cluster.name = name;
    }
    if let Some(d) = args.data_dir {
        config.namenode.data_dir = d;
    }
    let tls_dir = config.cluster.tls_dir.clone();
    if tls_dir.join("ca.pem").exists() {
        eprintln!(
            "keeping the existing cluster certificates in {}",
            tls_dir.display()
        );
    } else {
        ClusterCa::create_dir(&config.cluster.name, &tls_dir).with_context(|| {
            format!(
                "cannot create the cluster certificates in {}",
                tls_dir.display()
            )
        })?;
        println!(
            "created cluster CA and certificates in {}",
            tls_dir.display()
        );
    }
    // The DFS's own directories, and those MapReduce and SQL write into on a user's behalf:
    // sticky and world-writable, so each user's entries stay theirs.
    let mut dirs: Vec<(&str, u16)> = namenode::BASE_DIRS.to_vec();
    dirs.extend([
        ("/sheaf", 0o755),
        (sheaf_mapreduce::cluster::submission::STAGING_ROOT, 0o1777),
        (sheaf_mapreduce::cluster::submission::HISTORY_DIR, 0o1777),
        (sheaf_sql::catalog::METASTORE_DIR, 0o1777),
        (sheaf_sql::catalog::WAREHOUSE_DIR, 0o1777),
    ]);
    let info = namenode::format_with(&config, args.force, &dirs)?;
    println!(
        "formatted an empty namespace in {} (cluster {}, namespace id {:016x})",
        config.namenode.data_dir.display(),
        info.cluster,
        info.namespace_id
    );
    Ok(())
}
