//! The namespace: directories and files as inodes persisted in the [`NamespaceStore`].
//!
//! Layout (one sled tree, so a mutation is one atomic batch):
//! - `i<id:u64 BE>` → [`Inode`] (rmp-serde), with its parent id and name;
//! - `c<parent:u64 BE><name>` → child id, so listing is a prefix scan and a rename of a whole
//!   directory touches three keys;
//! - `m:*` → counters (next inode id, next block id, generation stamp).
//!
//! Every method that changes something commits one [`Change`]; the caller acknowledges only once
//! the store reports that change durable. Errors follow Hadoop's semantics ([`NamenodeError`]).

use super::store::{Change, NamespaceStore, StoreError};
use crate::path;
use crate::protocol::{ContentSummary, FileKind, FileStatus, NamenodeError};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// Inode id of `/`.
pub const ROOT_ID: u64 = 1;
/// First block id handed out (Hadoop also starts its sequential ids high).
pub const FIRST_BLOCK_ID: u64 = 1 << 30;
/// First generation stamp handed out.
pub const FIRST_GEN_STAMP: u64 = 1000;

const NEXT_INODE: &[u8] = b"m:next-inode";
const NEXT_BLOCK: &[u8] = b"m:next-block";
const GEN_STAMP: &[u8] = b"m:gen-stamp";

/// A block of a file as the namespace records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredBlock {
    /// Block id.
    pub id: u64,
    /// Generation stamp.
    pub gen: u64,
    /// Length (final once `complete`).
    pub len: u64,
    /// True once the writer committed the block's final length.
    pub complete: bool,
}

/// Write state of a file open for write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnderConstruction {
    /// Lease holder (client name).
    pub client: String,
    /// The writer's host, for writer-local placement.
    pub client_host: Option<IpAddr>,
    /// DataNodes (uuids) of the last block's pipeline.
    pub targets: Vec<String>,
}

/// File-specific inode data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileData {
    /// Target replication.
    pub replication: u16,
    /// Block size.
    pub block_size: u64,
    /// Blocks in order.
    pub blocks: Vec<StoredBlock>,
    /// Set while the file is open for write.
    pub under_construction: Option<UnderConstruction>,
}

impl FileData {
    /// Bytes in the file.
    pub fn len(&self) -> u64 {
        self.blocks.iter().map(|b| b.len).sum()
    }
    /// True if the file has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A directory or a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inode {
    /// Inode id.
    pub id: u64,
    /// Parent inode id (0 for the root).
    pub parent: u64,
    /// Name in the parent (empty for the root).
    pub name: String,
    /// Owner user.
    pub owner: String,
    /// Owner group.
    pub group: String,
    /// Permission bits.
    pub mode: u16,
    /// Modification time, ms since the epoch.
    pub mtime_ms: u64,
    /// Access time, ms since the epoch.
    pub atime_ms: u64,
    /// `Some` for files, `None` for directories.
    pub file: Option<FileData>,
}

impl Inode {
    /// True for directories.
    pub fn is_dir(&self) -> bool {
        self.file.is_none()
    }

    /// The inode's status as `stat`/`ls` show it.
    pub fn status(&self, path: &str) -> FileStatus {
        let (kind, len, replication, block_size) = match &self.file {
            Some(f) => (FileKind::File, f.len(), f.replication, f.block_size),
            None => (FileKind::Directory, 0, 0, 0),
        };
        FileStatus {
            path: path.to_string(),
            kind,
            len,
            replication,
            block_size,
            mtime_ms: self.mtime_ms,
            atime_ms: self.atime_ms,
            owner: self.owner.clone(),
            group: self.group.clone(),
            mode: self.mode,
        }
    }
}

/// A path's existing inodes (see [`Namespace::resolve`]).
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The normalized path.
    pub path: String,
    /// Existing directories above the path, root first, with their paths (the root itself has
    /// none). Stops at the first missing component.
    pub ancestors: Vec<(String, Inode)>,
    /// Every directory above the path exists: the last ancestor is its parent.
    pub parent_exists: bool,
    /// The inode at the path, if it exists.
    pub target: Option<Inode>,
}

impl Resolved {
    /// The parent directory, when it exists.
    pub fn parent(&self) -> Option<&(String, Inode)> {
        if self.parent_exists {
            self.ancestors.last()
        } else {
            None
        }
    }
}

/// What a delete removed, for the block manager and the lease manager.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Removed {
    /// Blocks of the removed files.
    pub blocks: Vec<u64>,
    /// Removed files that were open for write: (inode id, lease holder).
    pub open_files: Vec<(u64, String)>,
}

/// Parameters of a new file.
#[derive(Debug, Clone)]
pub struct NewFile {
    /// Replace an existing file.
    pub overwrite: bool,
    /// Target replication.
    pub replication: u16,
    /// Block size.
    pub block_size: u64,
    /// Lease holder.
    pub client: String,
    /// The writer's host.
    pub client_host: Option<IpAddr>,
    /// Owner user.
    pub owner: String,
    /// Permission bits.
    pub mode: u16,
}

impl From<StoreError> for NamenodeError {
    fn from(e: StoreError) -> Self {
        NamenodeError::Storage(e.to_string())
    }
}

fn inode_key(id: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(9);
    k.push(b'i');
    k.extend_from_slice(&id.to_be_bytes());
    k
}

fn child_prefix(parent: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(9);
    k.push(b'c');
    k.extend_from_slice(&parent.to_be_bytes());
    k
}

fn child_key(parent: u64, name: &str) -> Vec<u8> {
    let mut k = child_prefix(parent);
    k.extend_from_slice(name.as_bytes());
    k
}

fn encode(inode: &Inode) -> Result<Vec<u8>, NamenodeError> {
    rmp_serde::to_vec(inode).map_err(|e| NamenodeError::Storage(format!("encoding inode: {e}")))
}

fn decode_u64(v: &[u8]) -> Result<u64, NamenodeError> {
    let b: [u8; 8] = v
        .try_into()
        .map_err(|_| NamenodeError::Storage("corrupt id in namespace".into()))?;
    Ok(u64::from_be_bytes(b))
}

fn valid(p: &str) -> Result<String, NamenodeError> {
    path::normalize(p).map_err(|e| NamenodeError::InvalidPath(e.path, e.reason.to_string()))
}

/// The namespace on top of its store.
pub struct Namespace {
    store: NamespaceStore,
    next_inode: u64,
    next_block: u64,
    gen_stamp: u64,
    counters_dirty: bool,
}

impl Namespace {
    /// Loads the namespace from an opened store.
    pub fn load(store: NamespaceStore) -> Result<Namespace, NamenodeError> {
        let counter = |key: &[u8], default: u64| -> Result<u64, NamenodeError> {
            match store.get(key)? {
                Some(v) => decode_u64(&v),
                None => Ok(default),
            }
        };
        let next_inode = counter(NEXT_INODE, ROOT_ID + 1)?;
        let next_block = counter(NEXT_BLOCK, FIRST_BLOCK_ID)?;
        let gen_stamp = counter(GEN_STAMP, FIRST_GEN_STAMP)?;
        Ok(Namespace {
            store,
            next_inode,
            next_block,
            gen_stamp,
            counters_dirty: false,
        })
    }

    /// Writes the root directory of a fresh namespace.
    pub fn init_root(
        &mut self,
        owner: &str,
        group: &str,
        now_ms: u64,
    ) -> Result<(), NamenodeError> {
        let root = Inode {
            id: ROOT_ID,
            parent: 0,
            name: String::new(),
            owner: owner.to_string(),
            group: group.to_string(),
            mode: 0o755,
            mtime_ms: now_ms,
            atime_ms: now_ms,
            file: None,
        };
        let mut c = Change::default();
        c.put(inode_key(ROOT_ID), encode(&root)?);
        self.counters_dirty = true;
        self.commit(c)?;
        Ok(())
    }

    /// The underlying store (durability watch, checkpoint).
    pub fn store(&self) -> &NamespaceStore {
        &self.store
    }

    /// The underlying store, mutably.
    pub fn store_mut(&mut self) -> &mut NamespaceStore {
        &mut self.store
    }

    fn commit(&mut self, mut change: Change) -> Result<u64, NamenodeError> {
        if self.counters_dirty {
            change.put(NEXT_INODE.to_vec(), self.next_inode.to_be_bytes().to_vec());
            change.put(NEXT_BLOCK.to_vec(), self.next_block.to_be_bytes().to_vec());
            change.put(GEN_STAMP.to_vec(), self.gen_stamp.to_be_bytes().to_vec());
            self.counters_dirty = false;
        }
        Ok(self.store.commit(change)?)
    }

    /// The inode with id `id`.
    pub fn inode(&self, id: u64) -> Result<Option<Inode>, NamenodeError> {
        match self.store.get(&inode_key(id))? {
            None => Ok(None),
            Some(v) => rmp_serde::from_slice(&v)
                .map(Some)
                .map_err(|e| NamenodeError::Storage(format!("corrupt inode {id}: {e}"))),
        }
    }

    fn child(&self, parent: u64, name: &str) -> Result<Option<Inode>, NamenodeError> {
        match self.store.get(&child_key(parent, name))? {
            None => Ok(None),
            Some(v) => self.inode(decode_u64(&v)?),
        }
    }

    /// Children of directory `dir`, in name order.
    pub fn children(&self, dir: u64) -> Result<Vec<Inode>, NamenodeError> {
        let mut out = Vec::new();
        for kv in self.store.scan_prefix(&child_prefix(dir)) {
            let (_, v) = kv?;
            if let Some(i) = self.inode(decode_u64(&v)?)? {
                out.push(i);
            }
        }
        Ok(out)
    }

    fn has_children(&self, dir: u64) -> Result<bool, NamenodeError> {
        Ok(self
            .store
            .scan_prefix(&child_prefix(dir))
            .next()
            .transpose()?
            .is_some())
    }

    /// The inode at `path` (normalized), `None` if absent or if a component is a file.
    pub fn lookup(&self, path: &str) -> Result<Option<Inode>, NamenodeError> {
        match self.lookup_strict(path) {
            Err(NamenodeError::NotADirectory(_)) => Ok(None),
            other => other,
        }
    }

    /// The existing inodes along `path`, for permission checks: the directories above it
    /// (root first, as far as they exist) and the inode itself if it exists.
    pub fn resolve(&self, path: &str) -> Result<Resolved, NamenodeError> {
        let path = valid(path)?;
        let root = self
            .inode(ROOT_ID)?
            .ok_or_else(|| NamenodeError::Storage("root inode missing".into()))?;
        let comps: Vec<&str> = path::components(&path).collect();
        if comps.is_empty() {
            return Ok(Resolved {
                path,
                ancestors: Vec::new(),
                parent_exists: false,
                target: Some(root),
            });
        }
        let mut ancestors = vec![("/".to_string(), root)];
        let mut walked = String::new();
        for (i, comp) in comps.iter().enumerate() {
            let (_, cur) = &ancestors[ancestors.len() - 1];
            if !cur.is_dir() {
                break;
            }
            let child = self.child(cur.id, comp)?;
            walked.push('/');
            walked.push_str(comp);
            if i + 1 == comps.len() {
                return Ok(Resolved {
                    path,
                    parent_exists: ancestors.last().is_some_and(|(_, d)| d.is_dir()),
                    ancestors,
                    target: child,
                });
            }
            match child {
                Some(c) => ancestors.push((walked.clone(), c)),
                None => break,
            }
        }
        Ok(Resolved {
            path,
            ancestors,
            parent_exists: false,
            target: None,
        })
    }

    /// Sets a path's permission bits (`chmod`).
    pub fn set_permission(&mut self, p: &str, mode: u16) -> Result<(), NamenodeError> {
        let p = valid(p)?;
        let mut node = self
            .lookup(&p)?
            .ok_or_else(|| NamenodeError::NotFound(p.clone()))?;
        node.mode = mode & 0o7777;
        self.put_inode(&node)?;
        Ok(())
    }

    /// Sets a path's owner and/or group (`chown`, `chgrp`).
    pub fn set_owner(
        &mut self,
        p: &str,
        owner: Option<&str>,
        group: Option<&str>,
    ) -> Result<(), NamenodeError> {
        let p = valid(p)?;
        let mut node = self
            .lookup(&p)?
            .ok_or_else(|| NamenodeError::NotFound(p.clone()))?;
        if let Some(o) = owner {
            node.owner = o.to_string();
        }
        if let Some(g) = group {
            node.group = g.to_string();
        }
        self.put_inode(&node)?;
        Ok(())
    }

    /// Like [`Namespace::lookup`] but a file in the middle of the path is `NotADirectory`.
    pub fn lookup_strict(&self, path: &str) -> Result<Option<Inode>, NamenodeError> {
        let path = valid(path)?;
        let mut cur = self
            .inode(ROOT_ID)?
            .ok_or_else(|| NamenodeError::Storage("root inode missing".into()))?;
        let mut walked = String::new();
        for comp in path::components(&path) {
            if !cur.is_dir() {
                return Err(NamenodeError::NotADirectory(if walked.is_empty() {
                    "/".into()
                } else {
                    walked
                }));
            }
            walked.push('/');
            walked.push_str(comp);
            match self.child(cur.id, comp)? {
                Some(c) => cur = c,
                None => return Ok(None),
            }
        }
        Ok(Some(cur))
    }

    /// The absolute path of inode `id` (walks up the parents).
    pub fn path_of(&self, id: u64) -> Result<Option<String>, NamenodeError> {
        let mut names = Vec::new();
        let mut cur = id;
        while cur != ROOT_ID {
            let Some(i) = self.inode(cur)? else {
                return Ok(None);
            };
            names.push(i.name);
            cur = i.parent;
        }
        names.reverse();
        Ok(Some(if names.is_empty() {
            "/".into()
        } else {
            format!("/{}", names.join("/"))
        }))
    }

    fn alloc_inode(&mut self) -> u64 {
        let id = self.next_inode;
        self.next_inode += 1;
        self.counters_dirty = true;
        id
    }

    /// A new block id (persisted with the next commit, which the caller makes).
    pub fn alloc_block_id(&mut self) -> u64 {
        let id = self.next_block;
        self.next_block += 1;
        self.counters_dirty = true;
        id
    }

    /// A new generation stamp (persisted with the next commit).
    pub fn next_gen_stamp(&mut self) -> u64 {
        self.gen_stamp += 1;
        self.counters_dirty = true;
        self.gen_stamp
    }

    /// Persists the counters alone (a generation stamp handed out without another change).
    pub fn persist_counters(&mut self) -> Result<u64, NamenodeError> {
        self.counters_dirty = true;
        self.commit(Change::default())
    }

    /// Stores a changed inode (its id, parent and name unchanged).
    pub fn put_inode(&mut self, inode: &Inode) -> Result<u64, NamenodeError> {
        let mut c = Change::default();
        c.put(inode_key(inode.id), encode(inode)?);
        self.commit(c)
    }

    /// `mkdir` (with `parents`: `mkdir -p`, which accepts an existing directory).
    pub fn mkdirs(
        &mut self,
        p: &str,
        parents: bool,
        mode: u16,
        owner: &str,
        now_ms: u64,
    ) -> Result<(), NamenodeError> {
        let p = valid(p)?;
        let comps: Vec<&str> = path::components(&p).collect();
        let mut cur = self
            .inode(ROOT_ID)?
            .ok_or_else(|| NamenodeError::Storage("root inode missing".into()))?;
        let mut first_missing = comps.len();
        let mut walked = String::new();
        for (i, comp) in comps.iter().enumerate() {
            walked.push('/');
            walked.push_str(comp);
            match self.child(cur.id, comp)? {
                Some(c) if c.is_dir() => cur = c,
                Some(_) if i + 1 == comps.len() => return Err(NamenodeError::AlreadyExists(p)),
                Some(_) => return Err(NamenodeError::NotADirectory(walked)),
                None => {
                    first_missing = i;
                    break;
                }
            }
        }
        if first_missing == comps.len() {
            return if parents {
                Ok(())
            } else {
                Err(NamenodeError::AlreadyExists(p))
            };
        }
        if first_missing + 1 < comps.len() && !parents {
            return Err(NamenodeError::ParentNotFound(p));
        }
        let mut c = Change::default();
        let group = cur.group.clone();
        let mut parent = cur.clone();
        parent.mtime_ms = now_ms;
        c.put(inode_key(parent.id), encode(&parent)?);
        let mut parent_id = parent.id;
        for comp in &comps[first_missing..] {
            let id = self.alloc_inode();
            let dir = Inode {
                id,
                parent: parent_id,
                name: comp.to_string(),
                owner: owner.to_string(),
                group: group.clone(),
                mode,
                mtime_ms: now_ms,
                atime_ms: now_ms,
                file: None,
            };
            c.put(inode_key(id), encode(&dir)?);
            c.put(child_key(parent_id, comp), id.to_be_bytes().to_vec());
            parent_id = id;
        }
        self.commit(c)?;
        Ok(())
    }

    /// The parent directory of a path about to be created.
    fn parent_dir(&self, p: &str) -> Result<Inode, NamenodeError> {
        let parent_path =
            path::parent(p).ok_or_else(|| NamenodeError::IsADirectory(p.to_string()))?;
        match self.lookup_strict(parent_path)? {
            None => Err(NamenodeError::ParentNotFound(p.to_string())),
            Some(d) if !d.is_dir() => Err(NamenodeError::NotADirectory(parent_path.to_string())),
            Some(d) => Ok(d),
        }
    }

    /// Creates a file open for write by `f.client`. With `overwrite`, an existing closed file
    /// is replaced (its blocks are returned for invalidation). A file open for write by anyone
    /// is a [`NamenodeError::LeaseConflict`] (the caller decides about lease recovery).
    pub fn create(
        &mut self,
        p: &str,
        f: &NewFile,
        now_ms: u64,
    ) -> Result<(Inode, Removed), NamenodeError> {
        let p = valid(p)?;
        if f.replication == 0 {
            return Err(NamenodeError::InvalidOperation(format!(
                "{p}: replication must be at least 1"
            )));
        }
        if f.block_size == 0 {
            return Err(NamenodeError::InvalidOperation(format!(
                "{p}: block size must be positive"
            )));
        }
        let mut parent = self.parent_dir(&p)?;
        let name = path::file_name(&p).to_string();
        let mut c = Change::default();
        let mut removed = Removed::default();
        if let Some(existing) = self.child(parent.id, &name)? {
            match &existing.file {
                None => return Err(NamenodeError::IsADirectory(p)),
                Some(data) => {
                    if let Some(uc) = &data.under_construction {
                        return Err(NamenodeError::LeaseConflict {
                            path: p,
                            holder: uc.client.clone(),
                        });
                    }
                    if !f.overwrite {
                        return Err(NamenodeError::AlreadyExists(p));
                    }
                    removed.blocks.extend(data.blocks.iter().map(|b| b.id));
                    c.remove(inode_key(existing.id));
                }
            }
        }
        let id = self.alloc_inode();
        let inode = Inode {
            id,
            parent: parent.id,
            name: name.clone(),
            owner: f.owner.clone(),
            group: parent.group.clone(),
            mode: f.mode,
            mtime_ms: now_ms,
            atime_ms: now_ms,
            file: Some(FileData {
                replication: f.replication,
                block_size: f.block_size,
                blocks: Vec::new(),
                under_construction: Some(UnderConstruction {
                    client: f.client.clone(),
                    client_host: f.client_host,
                    targets: Vec::new(),
                }),
            }),
        };
        parent.mtime_ms = now_ms;
        c.put(inode_key(parent.id), encode(&parent)?);
        c.put(inode_key(id), encode(&inode)?);
        c.put(child_key(parent.id, &name), id.to_be_bytes().to_vec());
        self.commit(c)?;
        Ok((inode, removed))
    }

    /// Deletes `p`; a non-empty directory needs `recursive`. `Ok(None)` if it did not exist.
    pub fn delete(
        &mut self,
        p: &str,
        recursive: bool,
        now_ms: u64,
    ) -> Result<Option<Removed>, NamenodeError> {
        let p = valid(p)?;
        if p == "/" {
            return Err(NamenodeError::InvalidOperation(
                "/: cannot delete the root directory".into(),
            ));
        }
        let Some(target) = self.lookup(&p)? else {
            return Ok(None);
        };
        if target.is_dir() && !recursive && self.has_children(target.id)? {
            return Err(NamenodeError::DirectoryNotEmpty(p));
        }
        let mut c = Change::default();
        let mut removed = Removed::default();
        let mut stack = vec![target.clone()];
        while let Some(inode) = stack.pop() {
            if let Some(f) = &inode.file {
                removed.blocks.extend(f.blocks.iter().map(|b| b.id));
                if let Some(uc) = &f.under_construction {
                    removed.open_files.push((inode.id, uc.client.clone()));
                }
            } else {
                for child in self.children(inode.id)? {
                    c.remove(child_key(inode.id, &child.name));
                    stack.push(child);
                }
            }
            c.remove(inode_key(inode.id));
        }
        c.remove(child_key(target.parent, &target.name));
        if let Some(mut parent) = self.inode(target.parent)? {
            parent.mtime_ms = now_ms;
            c.put(inode_key(parent.id), encode(&parent)?);
        }
        self.commit(c)?;
        Ok(Some(removed))
    }

    /// Renames `src` to `dst` with Hadoop's semantics: into `dst` if it is a directory; onto an
    /// existing file is refused; a directory cannot move under itself.
    pub fn rename(&mut self, src: &str, dst: &str, now_ms: u64) -> Result<(), NamenodeError> {
        let src = valid(src)?;
        let dst = valid(dst)?;
        if src == "/" {
            return Err(NamenodeError::InvalidOperation(
                "/: cannot rename the root directory".into(),
            ));
        }
        let Some(mut node) = self.lookup(&src)? else {
            return Err(NamenodeError::NotFound(src));
        };
        let (dst_path, new_parent) = match self.lookup_strict(&dst)? {
            Some(d) if d.is_dir() => (path::join(&dst, path::file_name(&src)), d),
            Some(_) if dst == src => return Ok(()),
            Some(_) => return Err(NamenodeError::AlreadyExists(dst)),
            None => (dst.clone(), self.parent_dir(&dst)?),
        };
        if dst_path == src {
            return Ok(());
        }
        if node.is_dir() && (dst_path.starts_with(&format!("{src}/"))) {
            return Err(NamenodeError::InvalidOperation(format!(
                "cannot move {src} to a subdirectory of itself, {dst_path}"
            )));
        }
        let new_name = path::file_name(&dst_path).to_string();
        if self.child(new_parent.id, &new_name)?.is_some() {
            return Err(NamenodeError::AlreadyExists(dst_path));
        }
        let mut c = Change::default();
        c.remove(child_key(node.parent, &node.name));
        if let Some(mut old_parent) = self.inode(node.parent)? {
            old_parent.mtime_ms = now_ms;
            if old_parent.id != new_parent.id {
                c.put(inode_key(old_parent.id), encode(&old_parent)?);
            }
        }
        let mut new_parent = new_parent;
        new_parent.mtime_ms = now_ms;
        c.put(inode_key(new_parent.id), encode(&new_parent)?);
        node.parent = new_parent.id;
        node.name = new_name.clone();
        c.put(inode_key(node.id), encode(&node)?);
        c.put(
            child_key(new_parent.id, &new_name),
            node.id.to_be_bytes().to_vec(),
        );
        self.commit(c)?;
        Ok(())
    }

    /// Sets a file's target replication; returns the file inode after the change.
    pub fn set_replication(&mut self, p: &str, replication: u16) -> Result<Inode, NamenodeError> {
        let p = valid(p)?;
        if replication == 0 {
            return Err(NamenodeError::InvalidOperation(format!(
                "{p}: replication must be at least 1"
            )));
        }
        let mut node = self
            .lookup(&p)?
            .ok_or_else(|| NamenodeError::NotFound(p.clone()))?;
        let file = node
            .file
            .as_mut()
            .ok_or_else(|| NamenodeError::IsADirectory(p.clone()))?;
        if file.replication != replication {
            file.replication = replication;
            self.put_inode(&node)?;
        }
        Ok(node)
    }

    /// Sets a path's modification time.
    pub fn set_times(&mut self, p: &str, mtime_ms: u64) -> Result<(), NamenodeError> {
        let p = valid(p)?;
        let mut node = self
            .lookup(&p)?
            .ok_or_else(|| NamenodeError::NotFound(p.clone()))?;
        node.mtime_ms = mtime_ms;
        self.put_inode(&node)?;
        Ok(())
    }

    /// `ls`: the entries of a directory, or the file itself.
    pub fn list(&self, p: &str) -> Result<Vec<FileStatus>, NamenodeError> {
        let p = valid(p)?;
        let node = self
            .lookup(&p)?
            .ok_or_else(|| NamenodeError::NotFound(p.clone()))?;
        if !node.is_dir() {
            return Ok(vec![node.status(&p)]);
        }
        Ok(self
            .children(node.id)?
            .iter()
            .map(|c| c.status(&path::join(&p, &c.name)))
            .collect())
    }

    /// Visits every inode of the subtree at `p` (pre-order, children in name order).
    pub fn walk(&self, p: &str, mut visit: impl FnMut(&str, &Inode)) -> Result<(), NamenodeError> {
        let p = valid(p)?;
        let node = self
            .lookup(&p)?
            .ok_or_else(|| NamenodeError::NotFound(p.clone()))?;
        let mut stack = vec![(p, node)];
        while let Some((path_s, inode)) = stack.pop() {
            visit(&path_s, &inode);
            if inode.is_dir() {
                let mut kids = self.children(inode.id)?;
                kids.reverse();
                for k in kids {
                    stack.push((path::join(&path_s, &k.name), k));
                }
            }
        }
        Ok(())
    }

    /// `du`/`count` of a subtree.
    pub fn content_summary(&self, p: &str) -> Result<ContentSummary, NamenodeError> {
        let mut s = ContentSummary::default();
        self.walk(p, |_, inode| match &inode.file {
            Some(f) => {
                s.files += 1;
                s.length += f.len();
                s.space_consumed += f.len() * u64::from(f.replication);
            }
            None => s.directories += 1,
        })?;
        Ok(s)
    }

    /// Every file inode (startup: rebuild the block map and the leases).
    pub fn all_files(&self) -> Result<Vec<Inode>, NamenodeError> {
        let mut out = Vec::new();
        for kv in self.store.scan_prefix(b"i") {
            let (_, v) = kv?;
            let inode: Inode = rmp_serde::from_slice(&v)
                .map_err(|e| NamenodeError::Storage(format!("corrupt inode: {e}")))?;
            if inode.file.is_some() {
                out.push(inode);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::namenode::store;
    use std::time::Duration;

    fn fresh(dir: &std::path::Path) -> Namespace {
        store::create_empty(dir, false).unwrap();
        let s = NamespaceStore::open(dir, Duration::ZERO, true).unwrap();
        let mut ns = Namespace::load(s).unwrap();
        ns.init_root("root", "supergroup", 1).unwrap();
        ns
    }

    fn file(client: &str, overwrite: bool) -> NewFile {
        NewFile {
            overwrite,
            replication: 3,
            block_size: 1 << 20,
            client: client.into(),
            client_host: None,
            owner: "u".into(),
            mode: 0o644,
        }
    }

    fn close(ns: &mut Namespace, p: &str) {
        let mut i = ns.lookup(p).unwrap().unwrap();
        i.file.as_mut().unwrap().under_construction = None;
        ns.put_inode(&i).unwrap();
    }

    #[test]
    fn mkdirs_with_and_without_parents() {
        let d = tempfile::tempdir().unwrap();
        let mut ns = fresh(d.path());
        assert_eq!(
            ns.mkdirs("/a/b", false, 0o755, "u", 2),
            Err(NamenodeError::ParentNotFound("/a/b".into()))
        );
        ns.mkdirs("/a/b/c", true, 0o755, "u", 2).unwrap();
        ns.mkdirs("/a/b", true, 0o755, "u", 2).unwrap();
        assert_eq!(
            ns.mkdirs("/a/b", false, 0o755, "u", 2),
            Err(NamenodeError::AlreadyExists("/a/b".into()))
        );
        let st = ns.lookup("/a/b/c").unwrap().unwrap();
        assert!(st.is_dir());
        assert_eq!(st.group, "supergroup");
        ns.create("/a/f", &file("c1", false), 3).unwrap();
        assert_eq!(
            ns.mkdirs("/a/f", true, 0o755, "u", 2),
            Err(NamenodeError::AlreadyExists("/a/f".into()))
        );
        assert_eq!(
            ns.mkdirs("/a/f/x", true, 0o755, "u", 2),
            Err(NamenodeError::NotADirectory("/a/f".into()))
        );
    }

    #[test]
    fn create_semantics() {
        let d = tempfile::tempdir().unwrap();
        let mut ns = fresh(d.path());
        assert_eq!(
            ns.create("/nope/f", &file("c", false), 1).unwrap_err(),
            NamenodeError::ParentNotFound("/nope/f".into())
        );
        ns.create("/f", &file("c", false), 1).unwrap();
        assert!(matches!(
            ns.create("/f", &file("d", true), 1),
            Err(NamenodeError::LeaseConflict { .. })
        ));
        close(&mut ns, "/f");
        assert_eq!(
            ns.create("/f", &file("d", false), 1).unwrap_err(),
            NamenodeError::AlreadyExists("/f".into())
        );
        let (inode, _) = ns.create("/f", &file("d", true), 1).unwrap();
        assert_eq!(inode.file.unwrap().under_construction.unwrap().client, "d");
        assert_eq!(
            ns.create("/f/g", &file("d", true), 1).unwrap_err(),
            NamenodeError::NotADirectory("/f".into())
        );
        ns.mkdirs("/dir", false, 0o755, "u", 1).unwrap();
        assert_eq!(
            ns.create("/dir", &file("d", true), 1).unwrap_err(),
            NamenodeError::IsADirectory("/dir".into())
        );
        assert!(matches!(
            ns.create("rel", &file("d", true), 1),
            Err(NamenodeError::InvalidPath(..))
        ));
    }

    #[test]
    fn delete_rules() {
        let d = tempfile::tempdir().unwrap();
        let mut ns = fresh(d.path());
        ns.mkdirs("/a/b", true, 0o755, "u", 1).unwrap();
        let (mut f, _) = ns.create("/a/b/f", &file("c", false), 1).unwrap();
        f.file.as_mut().unwrap().blocks.push(StoredBlock {
            id: 7,
            gen: 1,
            len: 3,
            complete: true,
        });
        ns.put_inode(&f).unwrap();
        assert_eq!(
            ns.delete("/a", false, 2).unwrap_err(),
            NamenodeError::DirectoryNotEmpty("/a".into())
        );
        assert!(ns.delete("/", true, 2).is_err());
        let r = ns.delete("/a", true, 2).unwrap().unwrap();
        assert_eq!(r.blocks, vec![7]);
        assert_eq!(r.open_files, vec![(f.id, "c".to_string())]);
        assert!(ns.lookup("/a/b/f").unwrap().is_none());
        assert!(ns.lookup("/a").unwrap().is_none());
        assert_eq!(ns.delete("/a", true, 2).unwrap(), None);
        assert!(ns.list("/").unwrap().is_empty());
    }

    #[test]
    fn rename_semantics() {
        let d = tempfile::tempdir().unwrap();
        let mut ns = fresh(d.path());
        ns.mkdirs("/a/b", true, 0o755, "u", 1).unwrap();
        ns.mkdirs("/dst", true, 0o755, "u", 1).unwrap();
        ns.create("/a/b/f", &file("c", false), 1).unwrap();
        ns.create("/g", &file("c", false), 1).unwrap();
        // Into an existing directory.
        ns.rename("/a", "/dst", 2).unwrap();
        assert!(ns.lookup("/dst/a/b/f").unwrap().is_some());
        assert_eq!(
            ns.path_of(ns.lookup("/dst/a/b/f").unwrap().unwrap().id)
                .unwrap()
                .unwrap(),
            "/dst/a/b/f"
        );
        // A directory under itself.
        assert!(matches!(
            ns.rename("/dst", "/dst/a/b", 2),
            Err(NamenodeError::InvalidOperation(_))
        ));
        // Onto an existing file.
        assert_eq!(
            ns.rename("/dst/a/b/f", "/g", 2).unwrap_err(),
            NamenodeError::AlreadyExists("/g".into())
        );
        // Missing source, missing destination parent.
        assert_eq!(
            ns.rename("/zz", "/y", 2).unwrap_err(),
            NamenodeError::NotFound("/zz".into())
        );
        assert_eq!(
            ns.rename("/g", "/no/y", 2).unwrap_err(),
            NamenodeError::ParentNotFound("/no/y".into())
        );
        // Plain rename to a new name.
        ns.rename("/g", "/h", 2).unwrap();
        assert!(ns.lookup("/g").unwrap().is_none());
        assert!(ns.lookup("/h").unwrap().is_some());
        // Into a directory where the name is taken.
        ns.create("/dst/h", &file("c", false), 1).unwrap();
        assert_eq!(
            ns.rename("/h", "/dst", 2).unwrap_err(),
            NamenodeError::AlreadyExists("/dst/h".into())
        );
    }

    #[test]
    fn state_and_counters_survive_reopen() {
        let d = tempfile::tempdir().unwrap();
        let (bid, gen) = {
            let mut ns = fresh(d.path());
            ns.mkdirs("/x/y", true, 0o700, "u", 1).unwrap();
            let (mut f, _) = ns.create("/x/y/f", &file("c", false), 1).unwrap();
            let bid = ns.alloc_block_id();
            let gen = ns.next_gen_stamp();
            f.file.as_mut().unwrap().blocks.push(StoredBlock {
                id: bid,
                gen,
                len: 10,
                complete: true,
            });
            let seq = ns.put_inode(&f).unwrap();
            ns.store().wait_synced(seq).unwrap();
            (bid, gen)
        };
        store::mark_formatted(
            d.path(),
            &store::FormatInfo {
                cluster: "c".into(),
                namespace_id: 1,
                created_ms: 0,
            },
        )
        .unwrap();
        let mut ns =
            Namespace::load(NamespaceStore::open(d.path(), Duration::ZERO, false).unwrap())
                .unwrap();
        let f = ns.lookup("/x/y/f").unwrap().unwrap();
        assert_eq!(f.file.as_ref().unwrap().blocks[0].id, bid);
        assert_eq!(ns.lookup("/x").unwrap().unwrap().mode, 0o700);
        assert!(ns.alloc_block_id() > bid);
        assert!(ns.next_gen_stamp() > gen);
        assert_eq!(
            ns.content_summary("/").unwrap(),
            ContentSummary {
                length: 10,
                space_consumed: 30,
                files: 1,
                directories: 3
            }
        );
    }
}
