//! Localization: DFS files a container asks for are downloaded once per application into
//! `<local-dir>/<app>/filecache/` and linked into each container's working directory, so every
//! container of the application on this node reuses the same copy. The DFS client verifies each
//! chunk's CRC while reading; the localizer also checks the length against the NameNode's.

use crate::protocol::{AppId, YarnError};
use sheaf_dfs::client::DfsClient;
use sheaf_dfs::config::DfsConfig;
use sheaf_rpc::TlsIdentity;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::OnceCell;

type CacheEntry = Arc<OnceCell<PathBuf>>;

/// Downloads and caches DFS files per application.
pub struct Localizer {
    dfs: DfsConfig,
    identity: TlsIdentity,
    host: IpAddr,
    local_dir: PathBuf,
    client: Arc<OnceCell<DfsClient>>,
    cache: Mutex<HashMap<(AppId, String), CacheEntry>>,
}

fn loc_err(path: &str, e: impl std::fmt::Display) -> YarnError {
    YarnError::BadRequest(format!("cannot localize {path}: {e}"))
}

/// Checks that a link name is a plain file name inside the working directory.
pub fn check_link_name(link: &str) -> Result<(), YarnError> {
    if link.is_empty() || link == "." || link == ".." || link.contains('/') {
        return Err(YarnError::BadRequest(format!(
            "'{link}' is not a plain file name for a localized file"
        )));
    }
    Ok(())
}

impl std::fmt::Debug for Localizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Localizer")
            .field("local_dir", &self.local_dir)
            .finish_non_exhaustive()
    }
}

impl Localizer {
    /// A localizer for the NM on `host` with working dirs under `local_dir`.
    pub fn new(
        dfs: DfsConfig,
        identity: TlsIdentity,
        host: IpAddr,
        local_dir: PathBuf,
    ) -> Localizer {
        Localizer {
            dfs,
            identity,
            host,
            local_dir,
            client: Arc::new(OnceCell::new()),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The local copy of `dfs_path` for `app`, downloading it on first use.
    pub async fn localize(&self, app: AppId, dfs_path: &str) -> Result<PathBuf, YarnError> {
        let entry = {
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            let n = cache.len();
            let cell = cache
                .entry((app, dfs_path.to_string()))
                .or_default()
                .clone();
            (cell, n)
        };
        let (cell, index) = entry;
        let name = Path::new(dfs_path)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or("file".into());
        let target = self
            .local_dir
            .join(app.to_string())
            .join("filecache")
            .join(index.to_string())
            .join(name);
        let path = dfs_path.to_string();
        let (dfs, identity, host, client) = (
            self.dfs.clone(),
            self.identity.clone(),
            self.host,
            self.client.clone(),
        );
        cell.get_or_try_init(|| async move {
            // The DFS client's read futures are not Send: drive them on a blocking thread.
            let handle = tokio::runtime::Handle::current();
            tokio::task::spawn_blocking(move || {
                handle
                    .block_on(download(client, dfs, identity, host, path.clone(), target))
                    .map_err(|e| loc_err(&path, e))
            })
            .await
            .map_err(|e| YarnError::BadRequest(format!("localizer task failed: {e}")))?
        })
        .await
        .cloned()
    }

    /// Forgets an application's cached files (its directory is removed with the app's).
    pub fn forget(&self, app: AppId) {
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(a, _), _| *a != app);
    }
}

async fn download(
    client: Arc<OnceCell<DfsClient>>,
    dfs: DfsConfig,
    identity: TlsIdentity,
    host: IpAddr,
    path: String,
    target: PathBuf,
) -> Result<PathBuf, String> {
    let client = client
        .get_or_try_init(|| DfsClient::connect_from(&dfs, identity, Some(host)))
        .await
        .map_err(|e| e.to_string())?;
    let status = client
        .status(&path)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("no such file in the DFS")?;
    if let Some(dir) = target.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let copied = client
        .copy_to_local(&path, &target, None)
        .await
        .map_err(|e| e.to_string())?;
    if copied != status.len {
        return Err(format!(
            "copied {copied} bytes but the file has {}",
            status.len
        ));
    }
    // The DFS keeps no execute bit; like Hadoop's localizer, localized files are readable and
    // executable (shipped scripts run as `./NAME`) but not writable: the cache is shared by the
    // application's containers on this node.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o555))
        .map_err(|e| format!("{}: {e}", target.display()))?;
    Ok(target)
}
