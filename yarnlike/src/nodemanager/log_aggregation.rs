//! Log aggregation: when an application ends, each NodeManager copies the stdout/stderr of the
//! application's containers it ran into the DFS under `/sheaf/logs/<user>/<app>/<container>/`
//! and then deletes its local copies. `sheaf yarn logs APP` reads them back from there.
//!
//! `/sheaf/logs/<user>` belongs to the user, mode 0700 (Hadoop's log ACL: the application's
//! owner and the administrators read its logs, nobody else does).

use crate::protocol::{AppId, ContainerId, YarnError};
use sheaf_dfs::client::DfsClient;
use sheaf_dfs::config::DfsConfig;
use sheaf_rpc::TlsIdentity;
use std::net::IpAddr;
use std::path::PathBuf;
use tokio::sync::OnceCell;

/// The DFS directory holding a user's applications' aggregated logs.
pub fn user_log_dir(user: &str) -> String {
    format!("/sheaf/logs/{user}")
}

/// The DFS directory holding an application's aggregated logs.
pub fn app_log_dir(user: &str, app: AppId) -> String {
    format!("{}/{app}", user_log_dir(user))
}

/// The DFS path of one log file (`stdout` or `stderr`) of a container.
pub fn container_log_path(user: &str, container: ContainerId, name: &str) -> String {
    format!(
        "{}/{container}/{name}",
        app_log_dir(user, container.attempt.app)
    )
}

/// Copies finished applications' container logs into the DFS.
pub struct LogAggregator {
    dfs: DfsConfig,
    identity: TlsIdentity,
    host: IpAddr,
    log_dir: PathBuf,
    client: OnceCell<DfsClient>,
}

fn dfs_err(e: impl std::fmt::Display) -> YarnError {
    YarnError::Rpc(format!("log aggregation: {e}"))
}

impl LogAggregator {
    /// An aggregator for the NM on `host` whose container logs live under `log_dir`.
    pub fn new(
        dfs: DfsConfig,
        identity: TlsIdentity,
        host: IpAddr,
        log_dir: PathBuf,
    ) -> LogAggregator {
        LogAggregator {
            dfs,
            identity,
            host,
            log_dir,
            client: OnceCell::new(),
        }
    }

    async fn client(&self) -> Result<&DfsClient, YarnError> {
        self.client
            .get_or_try_init(|| {
                DfsClient::connect_from(&self.dfs, self.identity.clone(), Some(self.host))
            })
            .await
            .map_err(dfs_err)
    }

    /// Uploads every log file of `app` on this node, then removes the local copies. Returns the
    /// number of files uploaded. Local logs stay when the upload fails.
    pub async fn aggregate(&self, app: AppId, user: &str) -> Result<usize, YarnError> {
        let local = self.log_dir.join(app.to_string());
        let scan = local.clone();
        let files = tokio::task::spawn_blocking(
            move || -> std::io::Result<Vec<(String, String, PathBuf)>> {
                let mut out = Vec::new();
                if !scan.exists() {
                    return Ok(out);
                }
                for c in std::fs::read_dir(&scan)? {
                    let c = c?;
                    if !c.file_type()?.is_dir() {
                        continue;
                    }
                    for f in std::fs::read_dir(c.path())? {
                        let f = f?;
                        if f.file_type()?.is_file() {
                            let container = c.file_name().to_string_lossy().into_owned();
                            out.push((
                                container,
                                f.file_name().to_string_lossy().into_owned(),
                                f.path(),
                            ));
                        }
                    }
                }
                Ok(out)
            },
        )
        .await
        .map_err(dfs_err)?
        .map_err(|e| dfs_err(format!("{}: {e}", local.display())))?;
        if files.is_empty() {
            return Ok(0);
        }
        let client = self.client().await?;
        let user_dir = user_log_dir(user);
        client.mkdirs(&user_dir, true).await.map_err(dfs_err)?;
        client
            .set_owner(&user_dir, Some(user), None)
            .await
            .map_err(dfs_err)?;
        client
            .set_permission(&user_dir, 0o700)
            .await
            .map_err(dfs_err)?;
        let base = app_log_dir(user, app);
        for (container, name, path) in &files {
            let dir = format!("{base}/{container}");
            client.mkdirs(&dir, true).await.map_err(dfs_err)?;
            client
                .copy_from_local(path, &format!("{dir}/{name}"), true, None)
                .await
                .map_err(dfs_err)?;
        }
        let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(local)).await;
        Ok(files.len())
    }
}
