//! Which `sheaf.toml` a command uses, so that after `scripts/start-dfs.sh` every command finds
//! the running cluster with no flags.
//!
//! Order: `--conf FILE` (or `SHEAF_CONF`), then `$SHEAF_RUN_DIR/sheaf.toml` (default run dir
//! `/tmp/sheaf`, written by the start scripts), then built-in defaults.

use anyhow::Context;
use sheaf_rpc::config::ConfigFile;
use std::path::PathBuf;
use std::sync::OnceLock;

static EXPLICIT: OnceLock<Option<PathBuf>> = OnceLock::new();

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

/// Loads the configuration (see the module doc for the search order).
pub fn load() -> anyhow::Result<ConfigFile> {
    match config_path() {
        Some(p) => ConfigFile::load(&p)
            .with_context(|| "cannot load configuration (check --conf / SHEAF_CONF)"),
        None => Ok(ConfigFile::empty()),
    }
}
