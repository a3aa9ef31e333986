//! The shuffle server as a NodeManager auxiliary service: started with the NodeManager on its
//! host address, advertised to applications as [`SHUFFLE_SERVICE`], serving only map outputs
//! under `<nm local-dir>/shuffle` that the node's map tasks register over the wire.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sheaf_rpc::TlsIdentity;
use sheaf_yarn::nodemanager::aux_service::AuxService;
use sheaf_yarn::protocol::{AppId, YarnError};

use crate::cluster::submission::{job_id_of_application, SHUFFLE_SERVICE};

use super::error::ShuffleError;
use super::registry::{validate_job_id, ShuffleRegistry};
use super::server::{RunningShuffleServer, ShuffleServer, ShuffleServerStats};

/// Name of the shuffle root inside a NodeManager's local dir.
pub const SHUFFLE_ROOT_NAME: &str = "shuffle";

/// The shuffle root of a NodeManager whose local dir is `local_dir`.
pub fn shuffle_root(local_dir: &Path) -> PathBuf {
    local_dir.join(SHUFFLE_ROOT_NAME)
}

/// The directory of one job's map outputs in a shuffle root: maps write there, the service
/// serves only files under it and deletes it when the job is removed.
pub fn shuffle_job_dir(root: &Path, job_id: &str) -> PathBuf {
    root.join(job_id)
}

/// Lock file in the shuffle root, held for the service's lifetime so two NodeManagers never
/// share (and clean) one root. Job ids cannot start with a dot, so it never names a job dir.
const LOCK_FILE: &str = ".lock";

/// Takes the root's lock without waiting; an error names the root when another process holds it.
fn lock_root(root: &Path) -> Result<std::fs::File, ShuffleError> {
    use std::os::fd::AsRawFd;
    let path = root.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| ShuffleError::io(format!("opening {}", path.display()), e))?;
    // SAFETY: flock(2) on a descriptor this function owns; no memory is involved.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(ShuffleError::Config(format!(
            "{} is in use by another NodeManager (give each NodeManager its own local-dir)",
            root.display()
        )));
    }
    Ok(file)
}

/// A [`ShuffleServer`] hosted by a NodeManager.
pub struct ShuffleAuxService {
    /// Held open for the lock on the root (released when the service is dropped).
    _lock: std::fs::File,
    identity: TlsIdentity,
    root: PathBuf,
    port: u16,
    registry: Arc<ShuffleRegistry>,
    running: Mutex<Option<RunningShuffleServer>>,
}

impl ShuffleAuxService {
    /// A service serving files under `root` (created if missing) on `port` (0: ephemeral) of
    /// the NodeManager's host. Call before the NodeManager runs (it does blocking disk I/O).
    ///
    /// Whatever is left in `root` belongs to jobs of an earlier NodeManager process, whose
    /// registrations died with it, so it is deleted: nothing could ever serve or remove it. A
    /// lock on the root makes a second service on the same root (two NodeManagers sharing a
    /// local dir) fail here instead of deleting the first one's outputs.
    pub fn new(identity: TlsIdentity, root: &Path, port: u16) -> Result<Self, ShuffleError> {
        std::fs::create_dir_all(root)
            .map_err(|e| ShuffleError::io(format!("creating {}", root.display()), e))?;
        let root = std::fs::canonicalize(root)
            .map_err(|e| ShuffleError::io(format!("resolving {}", root.display()), e))?;
        let lock = lock_root(&root)?;
        let stale = std::fs::read_dir(&root)
            .map_err(|e| ShuffleError::io(format!("listing {}", root.display()), e))?;
        for entry in stale.flatten() {
            if entry.file_name() == LOCK_FILE {
                continue;
            }
            let path = entry.path();
            let removed = if entry.file_type().is_ok_and(|t| t.is_dir()) {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            match removed {
                Ok(()) => tracing::info!(path = %path.display(), "removed stale shuffle data"),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot remove stale shuffle data")
                }
            }
        }
        Ok(ShuffleAuxService {
            _lock: lock,
            identity,
            root,
            port,
            registry: ShuffleRegistry::new(),
            running: Mutex::new(None),
        })
    }

    /// The canonical shuffle root: containers get it as `SHEAF_SHUFFLE_DIR`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The registry of served outputs.
    pub fn registry(&self) -> &Arc<ShuffleRegistry> {
        &self.registry
    }

    /// The address the server listens on, while it runs.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.lock().as_ref().map(RunningShuffleServer::local_addr)
    }

    /// The server's counters, while it runs.
    pub fn stats(&self) -> Option<ShuffleServerStats> {
        self.lock().as_ref().map(RunningShuffleServer::stats)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<RunningShuffleServer>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl AuxService for ShuffleAuxService {
    fn name(&self) -> &str {
        SHUFFLE_SERVICE
    }

    fn start(&self, host: IpAddr) -> Result<String, YarnError> {
        let mut running = self.lock();
        if let Some(server) = running.as_ref() {
            return Ok(server.local_addr().to_string());
        }
        let server = ShuffleServer::spawn(
            SocketAddr::new(host, self.port),
            &self.identity,
            self.registry.clone(),
            Some(self.root.clone()),
        )
        .map_err(|e| YarnError::Config(format!("cannot start the shuffle service: {e}")))?;
        let addr = server.local_addr().to_string();
        tracing::info!(%addr, root = %self.root.display(), "shuffle service started");
        *running = Some(server);
        Ok(addr)
    }

    /// The job of a finished application may have left outputs here that no JobTracker will
    /// remove (it crashed, or a map failed after writing and before registering): forget the
    /// job and delete `<root>/<job_id>`, off the runtime's threads.
    fn application_finished(&self, app: &AppId) {
        let job_id = job_id_of_application(&app.to_string());
        if validate_job_id(&job_id).is_err() {
            return;
        }
        // A SQL session registers one shuffle job per query, `<job_id>-q<n>`. Listing the root
        // is disk work too: all of it runs off the runtime's threads.
        let registry = Arc::clone(&self.registry);
        let root = self.root.clone();
        let delete = move || {
            let prefix = format!("{job_id}-");
            let mut jobs = vec![job_id.clone()];
            if let Ok(entries) = std::fs::read_dir(&root) {
                jobs.extend(
                    entries
                        .flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .filter(|n| n.starts_with(&prefix) && validate_job_id(n).is_ok()),
                );
            }
            for job in &jobs {
                let outputs = registry.finish_job(job).len();
                let job_dir = shuffle_job_dir(&root, job);
                match std::fs::remove_dir_all(&job_dir) {
                    Ok(()) => tracing::info!(
                        job = %job,
                        outputs,
                        "shuffle data of finished application deleted"
                    ),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => tracing::warn!(
                        dir = %job_dir.display(),
                        error = %e,
                        "cannot delete shuffle data"
                    ),
                }
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(delete)),
            Err(_) => delete(),
        }
    }

    fn stop(&self) {
        if let Some(server) = self.lock().take() {
            server.stop_now();
        }
    }
}
