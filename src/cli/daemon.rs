//! What every daemon command (`sheaf namenode`, `datanode`, `resourcemanager`, `nodemanager`)
//! shares: its TLS identity and how it learns it should stop (its runtime is
//! [`super::runtime::Workload::Serving`]).

use anyhow::Context;
use sheaf_rpc::TlsIdentity;
use std::path::Path;

/// Loads the `daemon` certificate of the cluster from `tls_dir`.
pub fn identity(tls_dir: &Path) -> anyhow::Result<TlsIdentity> {
    TlsIdentity::load(tls_dir, "daemon").with_context(|| {
        format!(
            "cannot load the daemon certificate from {} (run `sheaf format` first)",
            tls_dir.display()
        )
    })
}

/// Resolves on the first SIGTERM or SIGINT.
pub async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
