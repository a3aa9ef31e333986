//! The catalog that outlives a session: one JSON file per table in the DFS
//! (`/sheaf/metastore/tables/<name>.json`), so the next `sheaf sql` call, another user's shell or
//! tomorrow's cron job sees the tables today's statements created.
//!
//! A table is stored as the `CREATE EXTERNAL TABLE` statement that defines it (the user's own text,
//! or the one Sheaf writes for a `CREATE TABLE … AS SELECT`), so every option DataFusion understands
//! (schema, CSV header and delimiter, partition columns) survives unchanged; a new session replays
//! the statements. Updates are atomic: an entry is written to a temporary name and renamed into
//! place (the NameNode's rename refuses an existing target, which also makes two concurrent
//! `CREATE`s of one name a clear conflict instead of a lost update).

use crate::error::{SqlError, SqlResult};
use serde::{Deserialize, Serialize};
use sheaf_dfs::client::{DfsClient, DfsError};
use sheaf_dfs::protocol::{FileKind, NamenodeError};
use std::path::PathBuf;

/// The metastore directory in the DFS.
pub const METASTORE_DIR: &str = "/sheaf/metastore/tables";
/// Where `CREATE TABLE … AS SELECT` writes a table's files (Hive's `hive.metastore.warehouse.dir`).
pub const WAREHOUSE_DIR: &str = "/sheaf/warehouse";
/// Suffix of a table entry.
const ENTRY_SUFFIX: &str = ".json";
/// Marks a temporary or replaced entry (never a table name: table names are identifiers).
const SIDE_MARK: &str = "._";

/// One table of the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableEntry {
    /// The table name (lower case, as SQL identifiers are normalized).
    pub name: String,
    /// The `CREATE EXTERNAL TABLE` statement that defines it.
    pub ddl: String,
    /// The files' location (`sheaf:///…` or a local path).
    pub location: String,
    /// `true` if Sheaf owns the files (created by CTAS under the warehouse): `DROP TABLE` deletes
    /// them. External tables keep their files, as in Hive.
    pub managed: bool,
    /// Who created it.
    pub owner: String,
    /// When, ms since the Unix epoch.
    pub created_ms: u64,
}

/// Where the catalog lives.
#[derive(Clone)]
pub enum Metastore {
    /// In the DFS under [`METASTORE_DIR`] (every session on the cluster shares it).
    Dfs(DfsClient),
    /// In a local directory (`--local` with no cluster configured).
    Local(PathBuf),
}

fn entry_name(table: &str) -> String {
    format!("{table}{ENTRY_SUFFIX}")
}

fn metastore_error(what: &str, e: impl std::fmt::Display) -> SqlError {
    SqlError::Metastore(format!("{what}: {e}"))
}

fn is_not_found(e: &DfsError) -> bool {
    matches!(e, DfsError::Namenode(NamenodeError::NotFound(_)))
}

impl Metastore {
    /// Every table, sorted by name.
    pub async fn tables(&self) -> SqlResult<Vec<TableEntry>> {
        let mut raw: Vec<(String, Vec<u8>)> = Vec::new();
        match self {
            Metastore::Dfs(client) => {
                let listing = match client.list(METASTORE_DIR).await {
                    Ok(l) => l,
                    Err(e) if is_not_found(&e) => return Ok(Vec::new()),
                    Err(e) => return Err(metastore_error(METASTORE_DIR, e)),
                };
                let names: Vec<String> = listing
                    .iter()
                    .filter(|s| s.kind == FileKind::File)
                    .filter_map(|s| s.path.rsplit('/').next().map(str::to_string))
                    .collect();
                for name in entries_to_read(&names) {
                    let path = format!("{METASTORE_DIR}/{name}");
                    match client.read_file(&path).await {
                        Ok(bytes) => raw.push((path, bytes)),
                        // Replaced between the listing and the read: the new entry is read instead.
                        Err(e) if is_not_found(&e) => {}
                        Err(e) => return Err(metastore_error(&path, e)),
                    }
                }
            }
            Metastore::Local(dir) => {
                let names: Vec<String> = match std::fs::read_dir(dir) {
                    Ok(rd) => rd
                        .filter_map(|e| e.ok())
                        .filter_map(|e| e.file_name().into_string().ok())
                        .collect(),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                    Err(e) => return Err(metastore_error(&dir.display().to_string(), e)),
                };
                for name in entries_to_read(&names) {
                    let path = dir.join(&name);
                    match std::fs::read(&path) {
                        Ok(bytes) => raw.push((path.display().to_string(), bytes)),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(metastore_error(&path.display().to_string(), e)),
                    }
                }
            }
        }
        let mut tables = Vec::with_capacity(raw.len());
        for (path, bytes) in raw {
            let entry: TableEntry = serde_json::from_slice(&bytes).map_err(|e| {
                metastore_error(
                    &path,
                    format!("not a table entry ({e}); remove or repair it"),
                )
            })?;
            tables.push(entry);
        }
        tables.sort_by(|a, b| a.name.cmp(&b.name));
        tables.dedup_by(|a, b| a.name == b.name);
        Ok(tables)
    }

    /// The entry of `name`, if any.
    pub async fn get(&self, name: &str) -> SqlResult<Option<TableEntry>> {
        Ok(self.tables().await?.into_iter().find(|t| t.name == name))
    }

    /// Adds `entry`; with `replace`, an existing entry of that name is replaced, otherwise it is
    /// an error.
    pub async fn put(&self, entry: &TableEntry, replace: bool) -> SqlResult<()> {
        let bytes =
            serde_json::to_vec_pretty(entry).map_err(|e| metastore_error(&entry.name, e))?;
        let name = entry_name(&entry.name);
        let tmp = format!("{name}{SIDE_MARK}new-{:08x}", rand_suffix());
        let old = format!("{name}{SIDE_MARK}old");
        let exists_error = || {
            SqlError::Catalog(format!(
                "table '{}' already exists (DROP TABLE it first, or use CREATE OR REPLACE)",
                entry.name
            ))
        };
        match self {
            Metastore::Dfs(client) => {
                let dir = METASTORE_DIR;
                client
                    .mkdirs(dir, true)
                    .await
                    .map_err(|e| metastore_error(dir, e))?;
                let (tmp, old, target) = (
                    format!("{dir}/{tmp}"),
                    format!("{dir}/{old}"),
                    format!("{dir}/{name}"),
                );
                client
                    .write_file(&tmp, &bytes, true)
                    .await
                    .map_err(|e| metastore_error(&tmp, e))?;
                let present = client
                    .status(&target)
                    .await
                    .map_err(|e| metastore_error(&target, e))?
                    .is_some();
                if present {
                    if !replace {
                        let _ = client.delete(&tmp, false).await;
                        return Err(exists_error());
                    }
                    // Keep the old entry under a side name until the new one is in place: a
                    // crash in between leaves it recoverable (`tables` reads it back).
                    let _ = client.delete(&old, false).await;
                    client
                        .rename(&target, &old)
                        .await
                        .map_err(|e| metastore_error(&target, e))?;
                }
                match client.rename(&tmp, &target).await {
                    Ok(()) => {}
                    Err(DfsError::Namenode(NamenodeError::AlreadyExists(_))) => {
                        let _ = client.delete(&tmp, false).await;
                        return Err(exists_error());
                    }
                    Err(e) => return Err(metastore_error(&target, e)),
                }
                let _ = client.delete(&old, false).await;
            }
            Metastore::Local(dir) => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| metastore_error(&dir.display().to_string(), e))?;
                let target = dir.join(&name);
                if target.exists() && !replace {
                    return Err(exists_error());
                }
                let tmp = dir.join(tmp);
                write_durably(&tmp, &bytes)
                    .map_err(|e| metastore_error(&tmp.display().to_string(), e))?;
                std::fs::rename(&tmp, &target)
                    .map_err(|e| metastore_error(&target.display().to_string(), e))?;
                sync_dir(dir).map_err(|e| metastore_error(&dir.display().to_string(), e))?;
            }
        }
        Ok(())
    }

    /// Removes the entry of `name`; `false` if there was none.
    pub async fn remove(&self, name: &str) -> SqlResult<bool> {
        let file = entry_name(name);
        match self {
            Metastore::Dfs(client) => {
                let path = format!("{METASTORE_DIR}/{file}");
                let _ = client
                    .delete(&format!("{METASTORE_DIR}/{file}{SIDE_MARK}old"), false)
                    .await;
                match client.delete(&path, false).await {
                    Ok(found) => Ok(found),
                    Err(e) if is_not_found(&e) => Ok(false),
                    Err(e) => Err(metastore_error(&path, e)),
                }
            }
            Metastore::Local(dir) => {
                let path = dir.join(file);
                match std::fs::remove_file(&path) {
                    Ok(()) => {
                        sync_dir(dir)
                            .map_err(|e| metastore_error(&dir.display().to_string(), e))?;
                        Ok(true)
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
                    Err(e) => Err(metastore_error(&path.display().to_string(), e)),
                }
            }
        }
    }
}

/// The entry files to read among a directory's names: every `<t>.json`, plus `<t>.json._old` when
/// a replace was interrupted before the new entry landed.
fn entries_to_read(names: &[String]) -> Vec<String> {
    let mut out: Vec<String> = names
        .iter()
        .filter(|n| n.ends_with(ENTRY_SUFFIX) && !n.contains(SIDE_MARK))
        .cloned()
        .collect();
    for n in names {
        if let Some(base) = n.strip_suffix(&format!("{SIDE_MARK}old")) {
            if !names.iter().any(|m| m == base) {
                out.push(n.clone());
            }
        }
    }
    out.sort();
    out
}

fn rand_suffix() -> u32 {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    nanos ^ std::process::id().rotate_left(16)
}

fn write_durably(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

fn sync_dir(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, ddl: &str) -> TableEntry {
        TableEntry {
            name: name.into(),
            ddl: ddl.into(),
            location: "/tmp/x".into(),
            managed: false,
            owner: "alice".into(),
            created_ms: 1,
        }
    }

    #[tokio::test]
    async fn local_metastore_round_trip_refuses_duplicates_and_replaces_on_request() {
        let dir = tempfile::tempdir().unwrap();
        let store = Metastore::Local(dir.path().join("ms"));
        assert!(store.tables().await.unwrap().is_empty());
        store.put(&entry("b", "ddl b"), false).await.unwrap();
        store.put(&entry("a", "ddl a"), false).await.unwrap();
        let err = store.put(&entry("a", "other"), false).await.unwrap_err();
        assert!(
            err.to_string().contains("table 'a' already exists"),
            "{err}"
        );
        let names: Vec<String> = store
            .tables()
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.name)
            .collect();
        assert_eq!(names, vec!["a", "b"]);
        store.put(&entry("a", "ddl a2"), true).await.unwrap();
        assert_eq!(store.get("a").await.unwrap().unwrap().ddl, "ddl a2");
        assert!(store.remove("a").await.unwrap());
        assert!(!store.remove("a").await.unwrap());
        assert!(store.get("a").await.unwrap().is_none());
    }

    #[test]
    fn an_interrupted_replace_reads_back_the_old_entry() {
        let names = vec![
            "a.json".to_string(),
            "b.json._old".to_string(),
            "c.json._new-1234".to_string(),
            "a.json._old".to_string(),
        ];
        assert_eq!(entries_to_read(&names), vec!["a.json", "b.json._old"]);
    }

    #[tokio::test]
    async fn a_corrupt_entry_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t.json"), b"{not json").unwrap();
        let err = Metastore::Local(dir.path().to_path_buf())
            .tables()
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("t.json: not a table entry"),
            "{err}"
        );
    }
}
