//! The trash, as Hadoop's `TrashPolicyDefault` keeps it: with `[dfs] trash-interval-ms` > 0 (Hadoop's
//! `fs.trash.interval`), `sheaf dfs rm` moves a path to `/user/<user>/.Trash/Current/<path>`
//! instead of deleting it; `expunge` turns `Current` into a checkpoint named after the time
//! (`yyMMddHHmmss`, UTC) and deletes the checkpoints older than the interval; the NameNode does
//! the same by itself once per interval (Hadoop's trash emptier), so a nightly script that
//! deleted the wrong directory has a day to get it back.
//!
//! The naming rules are pure functions, shared by the client and the NameNode.

use crate::client::{home_dir, DfsClient, DfsError};
use chrono::{DateTime, NaiveDateTime};
use sheaf_rpc::time::wall_clock_ms;

/// The trash directory's name in a home directory.
pub const TRASH_DIR: &str = ".Trash";
/// The checkpoint being filled.
pub const CURRENT: &str = "Current";
/// Mode of a trash directory (Hadoop's: only its owner).
pub const TRASH_MODE: u16 = 0o700;
const CHECKPOINT_FORMAT: &str = "%y%m%d%H%M%S";

/// `/user/<user>/.Trash`.
pub fn trash_root(user: &str) -> String {
    format!("{}/{TRASH_DIR}", home_dir(user))
}

/// Where `path` goes in `user`'s trash: `/user/<user>/.Trash/Current<path>`.
pub fn trash_target(user: &str, path: &str) -> String {
    format!("{}/{CURRENT}{path}", trash_root(user))
}

/// True if `path` is in `user`'s trash (deleting it there deletes it for good).
pub fn in_trash(user: &str, path: &str) -> bool {
    let root = trash_root(user);
    path == root || path.starts_with(&format!("{root}/"))
}

/// True if `path` holds `user`'s trash (it cannot be moved into it).
pub fn contains_trash(user: &str, path: &str) -> bool {
    let root = trash_root(user);
    path == "/" || root.starts_with(&format!("{path}/"))
}

/// The name of a checkpoint made at `wall_ms`.
pub fn checkpoint_name(wall_ms: u64) -> String {
    DateTime::from_timestamp_millis(wall_ms as i64)
        .unwrap_or_default()
        .format(CHECKPOINT_FORMAT)
        .to_string()
}

/// When a checkpoint was made, from its name (`None`: not a checkpoint). A name clash's
/// suffix (`…-1`) is ignored.
pub fn checkpoint_time(name: &str) -> Option<u64> {
    let stamp = name.split('-').next()?;
    if stamp.len() != 12 {
        return None;
    }
    let t = NaiveDateTime::parse_from_str(stamp, CHECKPOINT_FORMAT).ok()?;
    u64::try_from(t.and_utc().timestamp_millis()).ok()
}

/// The checkpoints among `names` older than `interval_ms` at `now_ms`.
pub fn expired(names: &[String], now_ms: u64, interval_ms: u64) -> Vec<&str> {
    names
        .iter()
        .filter(|n| checkpoint_time(n).is_some_and(|t| now_ms.saturating_sub(t) > interval_ms))
        .map(String::as_str)
        .collect()
}

impl DfsClient {
    /// Moves `path` into the caller's trash; returns where it went. A path already in the trash
    /// returns `None` (the caller deletes it for good, as Hadoop does).
    pub async fn move_to_trash(&self, path: &str) -> Result<Option<String>, DfsError> {
        let path = crate::path::normalize(path)?;
        let user = self.user().to_string();
        if in_trash(&user, &path) {
            return Ok(None);
        }
        if contains_trash(&user, &path) {
            return Err(DfsError::Trash(format!(
                "cannot move {path} to the trash, as it contains the trash; use -skipTrash to delete it"
            )));
        }
        let root = trash_root(&user);
        if self.status(&root).await?.is_none() {
            self.mkdirs(&root, true).await?;
            self.set_permission(&root, TRASH_MODE).await?;
        }
        // Twice, as Hadoop does: the emptier may turn `Current` into a checkpoint between the
        // mkdirs and the rename.
        let mut tries = 0;
        loop {
            let mut target = trash_target(&user, &path);
            if let Some(parent) = crate::path::parent(&target) {
                self.mkdirs(parent, true).await?;
            }
            // A name clash (the same path deleted twice) gets the time as a suffix, as in Hadoop.
            if self.status(&target).await?.is_some() {
                target = format!("{target}{}", wall_clock_ms());
            }
            match self.rename(&path, &target).await {
                Ok(()) => return Ok(Some(target)),
                Err(e) if tries == 0 && self.status(&path).await?.is_some() => {
                    tracing::debug!(%path, error = %e, "moving to the trash again");
                    tries += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// `expunge`: checkpoints the caller's `Current` trash and deletes its checkpoints older
    /// than `interval_ms` (all of them, `Current` included, with `immediate`). Returns the
    /// checkpoint made (if `Current` held anything) and the ones deleted.
    pub async fn expunge(
        &self,
        interval_ms: u64,
        immediate: bool,
    ) -> Result<(Option<String>, Vec<String>), DfsError> {
        let root = trash_root(self.user());
        if self.status(&root).await?.is_none() {
            return Ok((None, Vec::new()));
        }
        let now = wall_clock_ms();
        let current = format!("{root}/{CURRENT}");
        let mut made = None;
        if self.status(&current).await?.is_some() {
            let mut name = format!("{root}/{}", checkpoint_name(now));
            let mut n = 0;
            while self.status(&name).await?.is_some() {
                n += 1;
                name = format!("{root}/{}-{n}", checkpoint_name(now));
            }
            self.rename(&current, &name).await?;
            made = Some(name);
        }
        let names: Vec<String> = self
            .list(&root)
            .await?
            .into_iter()
            .map(|s| crate::path::file_name(&s.path).to_string())
            .collect();
        let doomed: Vec<&str> = if immediate {
            names
                .iter()
                .map(String::as_str)
                .filter(|n| *n == CURRENT || checkpoint_time(n).is_some())
                .collect()
        } else {
            expired(&names, now, interval_ms)
        };
        let mut deleted = Vec::new();
        for name in doomed {
            let p = format!("{root}/{name}");
            self.delete(&p, true).await?;
            deleted.push(p);
        }
        Ok((made, deleted))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_into_the_users_trash() {
        assert_eq!(trash_root("alice"), "/user/alice/.Trash");
        assert_eq!(
            trash_target("alice", "/data/x"),
            "/user/alice/.Trash/Current/data/x"
        );
        assert!(in_trash("alice", "/user/alice/.Trash/Current/data"));
        assert!(in_trash("alice", "/user/alice/.Trash"));
        assert!(!in_trash("alice", "/user/alice/.Trashy"));
        assert!(!in_trash("alice", "/user/bob/.Trash/Current/x"));
        assert!(contains_trash("alice", "/user/alice"));
        assert!(contains_trash("alice", "/user"));
        assert!(contains_trash("alice", "/"));
        assert!(!contains_trash("alice", "/user/al"));
        assert!(!contains_trash("alice", "/data"));
    }

    #[test]
    fn checkpoints_are_named_after_their_time_and_expire_after_the_interval() {
        // 2026-12-01 10:20:30 UTC
        let t = 1_796_120_430_000;
        assert_eq!(checkpoint_name(t), "261201102030");
        assert_eq!(checkpoint_time("261201102030"), Some(t));
        assert_eq!(checkpoint_time("261201102030-2"), Some(t));
        assert_eq!(checkpoint_time("Current"), None);
        assert_eq!(checkpoint_time("notadate1234"), None);
        let names: Vec<String> = ["Current", "261201102030", "261130102030", "junk"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let day = 86_400_000;
        assert_eq!(expired(&names, t + 1000, day), vec!["261130102030"]);
        assert!(expired(&names, t, 2 * day).is_empty());
    }
}
