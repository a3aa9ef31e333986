//! The RM's durable state in sled: application records and the queue configuration. Every batch
//! of writes is flushed and then fsynced (sled's own `flush` only calls `sync_file_range`, which
//! survives a killed process but not a power cut, see PERF-NOTES.md). Blocking: call it from a
//! dedicated thread, never from the async runtime.

use crate::config::QueueConfig;
use crate::protocol::{AppId, YarnError};
use crate::resourcemanager::state::{AppRecord, StoreOp};
use std::path::{Path, PathBuf};

const APPS: &str = "apps";
const META: &str = "meta";
const QUEUES_KEY: &[u8] = b"queues";

/// The RM state store.
pub struct RmStore {
    db: sled::Db,
    apps: sled::Tree,
    meta: sled::Tree,
    dir: PathBuf,
}

fn store_err(e: impl std::fmt::Display) -> YarnError {
    YarnError::Store(e.to_string())
}

fn app_key(id: AppId) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..8].copy_from_slice(&id.cluster_ts.to_be_bytes());
    k[8..].copy_from_slice(&id.seq.to_be_bytes());
    k
}

impl RmStore {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<RmStore, YarnError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| YarnError::Store(format!("{}: {e}", dir.display())))?;
        let db = sled::open(dir.join("db"))
            .map_err(|e| YarnError::Store(format!("{}: {e}", dir.display())))?;
        let apps = db.open_tree(APPS).map_err(store_err)?;
        let meta = db.open_tree(META).map_err(store_err)?;
        Ok(RmStore {
            db,
            apps,
            meta,
            dir: dir.to_path_buf(),
        })
    }

    /// Every stored application record, oldest first.
    pub fn load_apps(&self) -> Result<Vec<AppRecord>, YarnError> {
        self.apps
            .iter()
            .map(|kv| {
                let (_, v) = kv.map_err(store_err)?;
                rmp_serde::from_slice(&v).map_err(store_err)
            })
            .collect()
    }

    /// The stored queue tree, if any.
    pub fn load_queues(&self) -> Result<Option<Vec<QueueConfig>>, YarnError> {
        match self.meta.get(QUEUES_KEY).map_err(store_err)? {
            Some(v) => Ok(Some(rmp_serde::from_slice(&v).map_err(store_err)?)),
            None => Ok(None),
        }
    }

    /// Stores the queue tree durably.
    pub fn save_queues(&self, queues: &[QueueConfig]) -> Result<(), YarnError> {
        let bytes = rmp_serde::to_vec_named(queues).map_err(store_err)?;
        self.meta.insert(QUEUES_KEY, bytes).map_err(store_err)?;
        self.sync()
    }

    /// Applies a batch of writes and makes it durable (one flush + fsync for the whole batch).
    pub fn apply(&self, ops: &[StoreOp]) -> Result<(), YarnError> {
        if ops.is_empty() {
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        for op in ops {
            match op {
                StoreOp::Put(r) => batch.insert(
                    &app_key(r.report.id),
                    rmp_serde::to_vec_named(r.as_ref()).map_err(store_err)?,
                ),
                StoreOp::Delete(id) => batch.remove(&app_key(*id)),
            }
        }
        self.apps.apply_batch(batch).map_err(store_err)?;
        self.sync()
    }

    fn sync(&self) -> Result<(), YarnError> {
        self.db.flush().map_err(store_err)?;
        fsync_tree(&self.dir)
            .map_err(|e| YarnError::Store(format!("fsync {}: {e}", self.dir.display())))
    }
}

/// fsyncs every file and directory under `root`.
fn fsync_tree(root: &Path) -> std::io::Result<()> {
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let ft = entry.file_type()?;
            if ft.is_dir() {
                stack.push(entry.path());
            } else if ft.is_file() {
                std::fs::File::open(entry.path())?.sync_all()?;
            }
        }
        std::fs::File::open(&dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::*;

    fn record(seq: u32, state: AppState) -> AppRecord {
        let id = AppId { cluster_ts: 5, seq };
        AppRecord {
            submission: SubmitApplication {
                name: "n".into(),
                user: "u".into(),
                queue: "default".into(),
                am_resource: Resource::new(1, 1),
                am_spec: LaunchSpec::default(),
                max_attempts: 2,
            },
            report: ApplicationReport {
                id,
                name: "n".into(),
                user: "u".into(),
                queue: "root.default".into(),
                state,
                final_status: FinalStatus::Undefined,
                attempt: 1,
                max_attempts: 2,
                diagnostics: String::new(),
                submit_ms: 1,
                finish_ms: 0,
                master_host: None,
                tracking_address: None,
                containers: vec![],
            },
            token: 9,
            master: None,
        }
    }

    #[test]
    fn records_and_queues_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = RmStore::open(dir.path()).unwrap();
            let ops = vec![
                StoreOp::Put(Box::new(record(2, AppState::Running))),
                StoreOp::Put(Box::new(record(1, AppState::Finished))),
                StoreOp::Put(Box::new(record(3, AppState::Killed))),
                StoreOp::Delete(AppId {
                    cluster_ts: 5,
                    seq: 3,
                }),
            ];
            s.apply(&ops).unwrap();
            s.save_queues(&crate::resourcemanager::scheduler::default_queues())
                .unwrap();
        }
        let s = RmStore::open(dir.path()).unwrap();
        let apps = s.load_apps().unwrap();
        assert_eq!(
            apps.iter().map(|r| r.report.id.seq).collect::<Vec<_>>(),
            vec![1, 2]
        );
        assert_eq!(apps[1], record(2, AppState::Running));
        assert_eq!(
            s.load_queues().unwrap().unwrap(),
            crate::resourcemanager::scheduler::default_queues()
        );
    }
}
