//! Which `sheaf.toml` a command uses, so that after `scripts/start-dfs.sh` every command finds
//! the running cluster with no flags.
//!
//! Order: `--conf FILE` (or `SHEAF_CONF`), then `$SHEAF_RUN_DIR/sheaf.toml` (default run dir
//! `/tmp/sheaf`, written by the start scripts), then built-in defaults. Daemons read the file
//! with [`load`]; user commands get it, the DFS sections and the user certificate from
//! [`client`]. A command line's `-D key=value` and `-fs` (see [`super::generic_options`]) go
//! over the file and the environment.

use super::generic_options::Define;
use anyhow::{anyhow, Context};
use sheaf_dfs::config::DfsConfig;
use sheaf_rpc::config::ConfigFile;
use sheaf_rpc::TlsIdentity;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::OnceLock;

static EXPLICIT: OnceLock<Option<PathBuf>> = OnceLock::new();
static IDENTITY: OnceLock<Option<PathBuf>> = OnceLock::new();
static DEFINES: OnceLock<Vec<Define>> = OnceLock::new();

/// Records the `-D`/`-fs` generic options (called once by `main`): they beat the file and the
/// environment.
pub fn set_defines(defines: Vec<Define>) {
    let _ = DEFINES.set(defines);
}

/// Records the `--identity` flag (called once by `main`).
pub fn set_identity(dir: Option<PathBuf>) {
    let _ = IDENTITY.set(dir);
}

/// Records the `--conf` flag (called once by `main`).
pub fn set_explicit(path: Option<PathBuf>) {
    let _ = EXPLICIT.set(path);
}

/// The run dir of the pseudo-distributed cluster (`SHEAF_RUN_DIR`, default `/tmp/sheaf`).
pub fn run_dir() -> PathBuf {
    std::env::var_os("SHEAF_RUN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp/sheaf"))
}

/// The configuration file this command should use, if any.
pub fn config_path() -> Option<PathBuf> {
    if let Some(Some(p)) = EXPLICIT.get() {
        return Some(p.clone());
    }
    let in_run_dir = run_dir().join("sheaf.toml");
    in_run_dir.exists().then_some(in_run_dir)
}

/// Loads the configuration (see the module doc for the search order), with the command line's
/// `-D`/`-fs` values over it.
pub fn load() -> anyhow::Result<ConfigFile> {
    let mut file = match config_path() {
        Some(p) => ConfigFile::load(&p)
            .with_context(|| "cannot load configuration (check --conf / SHEAF_CONF)")?,
        None => ConfigFile::empty(),
    };
    for define in DEFINES.get().into_iter().flatten() {
        match define {
            Define::Key {
                section,
                key,
                value,
            } => file.set(section, key, value),
            Define::DefaultFs(addr) => file.set("namenode", "address", &addr.to_string()),
        }
    }
    Ok(file)
}

/// What a user command (`sheaf dfs`, `job`, `yarn`, `fsck`, `dfsadmin`, `bench dfsio`) needs
/// from the configuration.
pub struct ClientConfig {
    /// The whole file, for the sections only some commands read (`[resourcemanager]`, …).
    pub file: ConfigFile,
    /// The `[cluster]`, `[namenode]`, `[datanode]` and `[dfs]` sections.
    pub dfs: DfsConfig,
    /// Who the user is: the certificate of `--identity DIR` (`SHEAF_IDENTITY`), else the run
    /// dir's admin certificate.
    pub identity: TlsIdentity,
}

/// Loads the configuration and the user certificate, with the NameNode address replaced by
/// `namenode` (a `sheaf://host:port/` argument) when given.
pub fn client(namenode: Option<SocketAddr>) -> anyhow::Result<ClientConfig> {
    let file = load()?;
    let mut dfs = DfsConfig::from_file(&file).context("invalid DFS configuration")?;
    if let Some(addr) = namenode {
        dfs.namenode.address = addr;
    }
    let explicit = IDENTITY.get().cloned().flatten();
    let dir = explicit
        .clone()
        .unwrap_or_else(|| dfs.cluster.tls_dir.clone());
    let identity = TlsIdentity::load(&dir, "user").map_err(|e| match e {
        sheaf_rpc::RpcError::TlsMaterial { path, .. } if explicit.is_some() && !path.exists() => anyhow!(
            "no identity in {} (--identity / SHEAF_IDENTITY): {} is missing (create one with `sheaf admin user add NAME --out DIR`)",
            dir.display(),
            path.display()
        ),
        sheaf_rpc::RpcError::TlsMaterial { path, .. } if !path.exists() => anyhow!(
            "no usable cluster certificate in {}: {} is missing (start the cluster with scripts/start-dfs.sh, or point [cluster] tls-dir at the cluster's certificates)",
            dir.display(),
            path.display()
        ),
        e => anyhow!("no usable cluster certificate in {}: {e}", dir.display()),
    })?;
    Ok(ClientConfig {
        file,
        dfs,
        identity,
    })
}
