//! The DFS as an [`ObjectStore`], so DataFusion's CSV, JSON and Parquet readers and writers work on
//! `sheaf://` URLs unchanged.
//!
//! Object paths map one to one onto absolute DFS paths (`data/t/part-0.parquet` is
//! `/data/t/part-0.parquet`). Ranged reads seek a [`sheaf_dfs::client::DfsReader`]; listings walk the
//! directory tree; puts and multipart uploads stream through one `DfsWriter` (a DFS file is complete
//! only once closed, so a reader never sees a half-written object); renames are the NameNode's atomic
//! rename, which the committer relies on.

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, TimeZone, Utc};
use futures::stream::{self, BoxStream, StreamExt};
use object_store::path::Path;
use object_store::{
    CopyMode, CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload,
    ObjectMeta, ObjectStore, PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult,
    RenameOptions, RenameTargetMode, UploadPart,
};
use sheaf_dfs::client::{DfsClient, DfsError, DfsWriter};
use sheaf_dfs::protocol::{FileKind, FileStatus, NamenodeError};
use std::fmt;
use std::ops::Range;
use tokio::sync::{mpsc, oneshot};

/// The `store` name object_store errors carry.
const STORE: &str = "SheafDfs";

/// An [`ObjectStore`] over one DFS cluster.
#[derive(Clone)]
pub struct DfsObjectStore {
    client: DfsClient,
}

impl DfsObjectStore {
    /// A store that talks to the cluster of `client`.
    pub fn new(client: DfsClient) -> DfsObjectStore {
        DfsObjectStore { client }
    }

    /// The DFS client behind this store.
    pub fn client(&self) -> &DfsClient {
        &self.client
    }
}

impl fmt::Display for DfsObjectStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SheafDfs({})", self.client.namenode_addr())
    }
}

impl fmt::Debug for DfsObjectStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The absolute DFS path of an object path.
pub fn dfs_path(location: &Path) -> String {
    format!("/{}", location.as_ref())
}

/// The object path of an absolute DFS path.
fn object_path(dfs: &str) -> Path {
    Path::from(dfs.trim_start_matches('/'))
}

fn meta_of(status: &FileStatus) -> ObjectMeta {
    ObjectMeta {
        location: object_path(&status.path),
        last_modified: mtime(status.mtime_ms),
        size: status.len,
        // Length and modification time change whenever a DFS file is rewritten.
        e_tag: Some(format!("{:x}-{:x}", status.mtime_ms, status.len)),
        version: None,
    }
}

fn mtime(ms: u64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms as i64)
        .single()
        .unwrap_or_default()
}

/// Maps a DFS error onto the object_store error a DataFusion reader or writer understands.
fn store_error(path: &str, e: DfsError) -> object_store::Error {
    match e {
        DfsError::Namenode(NamenodeError::NotFound(_)) => object_store::Error::NotFound {
            path: path.to_string(),
            source: Box::new(e),
        },
        DfsError::Namenode(NamenodeError::AlreadyExists(_)) => object_store::Error::AlreadyExists {
            path: path.to_string(),
            source: Box::new(e),
        },
        e => object_store::Error::Generic {
            store: STORE,
            source: Box::new(e),
        },
    }
}

fn not_found(path: &str, what: &str) -> object_store::Error {
    object_store::Error::NotFound {
        path: path.to_string(),
        source: format!("{path}: {what}").into(),
    }
}

impl DfsObjectStore {
    async fn file_status(&self, path: &str) -> object_store::Result<FileStatus> {
        match self.client.status(path).await {
            Ok(Some(s)) if s.kind == FileKind::File => Ok(s),
            Ok(Some(_)) => Err(not_found(path, "is a directory")),
            Ok(None) => Err(not_found(path, "No such file or directory")),
            Err(e) => Err(store_error(path, e)),
        }
    }

    /// Creates `path`'s parent directories (object stores have none; DataFusion writes into
    /// directories it never creates).
    async fn make_parents(&self, path: &str) -> object_store::Result<()> {
        if let Some((parent, _)) = path.rsplit_once('/') {
            if !parent.is_empty() {
                self.client
                    .mkdirs(parent, true)
                    .await
                    .map_err(|e| store_error(parent, e))?;
            }
        }
        Ok(())
    }

    async fn create(&self, path: &str, overwrite: bool) -> object_store::Result<DfsWriter> {
        self.make_parents(path).await?;
        self.client
            .create(path, overwrite, None, None)
            .await
            .map_err(|e| store_error(path, e))
    }

    /// Every file under `dir`, depth first, sorted by path within a directory.
    async fn walk(client: DfsClient, dir: String) -> object_store::Result<Vec<ObjectMeta>> {
        let mut out = Vec::new();
        let mut pending = vec![dir];
        while let Some(dir) = pending.pop() {
            let mut entries = match client.list(&dir).await {
                Ok(e) => e,
                Err(DfsError::Namenode(NamenodeError::NotFound(_))) => continue,
                Err(e) => return Err(store_error(&dir, e)),
            };
            entries.sort_by(|a, b| b.path.cmp(&a.path));
            for entry in entries {
                match entry.kind {
                    FileKind::File => out.push(meta_of(&entry)),
                    FileKind::Directory => pending.push(entry.path),
                }
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl ObjectStore for DfsObjectStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let path = dfs_path(location);
        let overwrite = match opts.mode {
            PutMode::Overwrite => true,
            PutMode::Create => false,
            PutMode::Update(_) => {
                return Err(object_store::Error::NotImplemented {
                    operation: "conditional update".into(),
                    implementer: STORE.into(),
                })
            }
        };
        let mut writer = self.create(&path, overwrite).await?;
        for chunk in payload.iter() {
            writer
                .write_all(chunk)
                .await
                .map_err(|e| store_error(&path, e))?;
        }
        writer.close().await.map_err(|e| store_error(&path, e))?;
        let status = self.file_status(&path).await?;
        Ok(PutResult {
            e_tag: meta_of(&status).e_tag,
            version: None,
        })
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        _opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        let path = dfs_path(location);
        let writer = self.create(&path, true).await?;
        Ok(Box::new(DfsUpload::start(
            self.client.clone(),
            path,
            writer,
        )))
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let path = dfs_path(location);
        let status = self.file_status(&path).await?;
        let meta = meta_of(&status);
        options.check_preconditions(&meta)?;
        let range = match &options.range {
            Some(r) => r
                .as_range(status.len)
                .map_err(|e| object_store::Error::Generic {
                    store: STORE,
                    source: Box::new(e),
                })?,
            None => 0..status.len,
        };
        if options.head {
            return Ok(GetResult {
                payload: GetResultPayload::Stream(stream::empty().boxed()),
                meta,
                range,
                attributes: Default::default(),
            });
        }
        let mut reader = self
            .client
            .open(&path)
            .await
            .map_err(|e| store_error(&path, e))?;
        reader.seek(range.start);
        reader.set_end(range.end);
        let stream_path = path.clone();
        let end = range.end;
        let body = stream::try_unfold(reader, move |mut reader| {
            let path = stream_path.clone();
            async move {
                let at = reader.position();
                if at >= end {
                    return Ok(None);
                }
                match reader.next_chunk().await {
                    Ok(Some(bytes)) => Ok(Some((bytes, reader))),
                    Ok(None) => Err(object_store::Error::Generic {
                        store: STORE,
                        source: format!("{path}: file ended at {at}, expected {end} bytes").into(),
                    }),
                    Err(e) => Err(store_error(&path, e)),
                }
            }
        })
        .boxed();
        Ok(GetResult {
            payload: GetResultPayload::Stream(body),
            meta,
            range,
            attributes: Default::default(),
        })
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        // Parquet asks for many small ranges of one file: the NameNode is asked for its blocks
        // once, nearby ranges are merged and the rest are read at once, each exactly (as
        // object_store's own stores merge and parallelise them).
        let path = dfs_path(location);
        let reader = self
            .client
            .open(&path)
            .await
            .map_err(|e| store_error(&path, e))?;
        let len = reader.len();
        if let Some(r) = ranges.iter().find(|r| r.end > len) {
            return Err(object_store::Error::Generic {
                store: STORE,
                source: format!(
                    "{path}: range {}..{} is past the end of the file ({len} bytes)",
                    r.start, r.end
                )
                .into(),
            });
        }
        object_store::coalesce_ranges(
            ranges,
            |r| {
                let mut reader = reader.fork();
                let path = path.clone();
                async move {
                    let want = r.end.saturating_sub(r.start);
                    let bytes = reader
                        .read_range(r.start, want)
                        .await
                        .map_err(|e| store_error(&path, e))?;
                    if (bytes.len() as u64) < want {
                        return Err(object_store::Error::Generic {
                            store: STORE,
                            source: format!(
                                "{path}: range {}..{} ended early at {}",
                                r.start,
                                r.end,
                                r.start + bytes.len() as u64
                            )
                            .into(),
                        });
                    }
                    Ok(Bytes::from(bytes))
                }
            },
            object_store::OBJECT_STORE_COALESCE_DEFAULT,
        )
        .await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let client = self.client.clone();
        locations
            .then(move |location| {
                let client = client.clone();
                async move {
                    let location = location?;
                    let path = dfs_path(&location);
                    match client.delete(&path, false).await {
                        Ok(true) => Ok(location),
                        Ok(false) => Err(not_found(&path, "No such file or directory")),
                        Err(e) => Err(store_error(&path, e)),
                    }
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let dir = prefix.map(dfs_path).unwrap_or_else(|| "/".to_string());
        let client = self.client.clone();
        stream::once(async move {
            // A prefix naming a file lists that file (object_store's prefix semantics).
            match client.status(&dir).await {
                Ok(Some(s)) if s.kind == FileKind::File => return Ok(vec![meta_of(&s)]),
                Ok(_) => {}
                Err(e) => return Err(store_error(&dir, e)),
            }
            DfsObjectStore::walk(client, dir).await
        })
        .flat_map(|r| match r {
            Ok(items) => stream::iter(items.into_iter().map(Ok)).boxed(),
            Err(e) => stream::once(async move { Err(e) }).boxed(),
        })
        .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        let dir = prefix.map(dfs_path).unwrap_or_else(|| "/".to_string());
        let entries = match self.client.list(&dir).await {
            Ok(e) => e,
            Err(DfsError::Namenode(NamenodeError::NotFound(_))) => Vec::new(),
            Err(e) => return Err(store_error(&dir, e)),
        };
        let mut result = ListResult {
            common_prefixes: Vec::new(),
            objects: Vec::new(),
        };
        for entry in entries {
            match entry.kind {
                FileKind::File => result.objects.push(meta_of(&entry)),
                FileKind::Directory => result.common_prefixes.push(object_path(&entry.path)),
            }
        }
        result.objects.sort_by(|a, b| a.location.cmp(&b.location));
        result.common_prefixes.sort();
        Ok(result)
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        // The DFS has no server-side copy: stream the bytes through this client.
        let src = dfs_path(from);
        let dst = dfs_path(to);
        let data = self
            .client
            .read_file(&src)
            .await
            .map_err(|e| store_error(&src, e))?;
        let mut writer = self
            .create(&dst, matches!(options.mode, CopyMode::Overwrite))
            .await?;
        writer
            .write_all(&data)
            .await
            .map_err(|e| store_error(&dst, e))?;
        writer.close().await.map_err(|e| store_error(&dst, e))?;
        Ok(())
    }

    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        let src = dfs_path(from);
        let dst = dfs_path(to);
        let exists = self
            .client
            .status(&dst)
            .await
            .map_err(|e| store_error(&dst, e))?
            .is_some();
        if exists {
            match options.target_mode {
                RenameTargetMode::Create => {
                    return Err(object_store::Error::AlreadyExists {
                        path: dst.clone(),
                        source: format!("{dst}: File exists").into(),
                    })
                }
                RenameTargetMode::Overwrite => {
                    self.client
                        .delete(&dst, false)
                        .await
                        .map_err(|e| store_error(&dst, e))?;
                }
            }
        }
        self.make_parents(&dst).await?;
        self.client
            .rename(&src, &dst)
            .await
            .map_err(|e| store_error(&src, e))
    }
}

/// A streaming put: parts go, in the order `put_part` was called, to one task that owns the
/// `DfsWriter`, so the writes stay sequential while DataFusion awaits part futures concurrently.
struct DfsUpload {
    path: String,
    client: DfsClient,
    parts: Option<mpsc::UnboundedSender<UploadOp>>,
    done: Option<tokio::task::JoinHandle<object_store::Result<()>>>,
}

enum UploadOp {
    Part(PutPayload, oneshot::Sender<object_store::Result<()>>),
}

impl fmt::Debug for DfsUpload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DfsUpload({})", self.path)
    }
}

impl DfsUpload {
    fn start(client: DfsClient, path: String, mut writer: DfsWriter) -> DfsUpload {
        let (tx, mut rx) = mpsc::unbounded_channel::<UploadOp>();
        let task_path = path.clone();
        let done = tokio::spawn(async move {
            let mut failed: Option<String> = None;
            while let Some(UploadOp::Part(payload, ack)) = rx.recv().await {
                if let Some(reason) = &failed {
                    let _ = ack.send(Err(object_store::Error::Generic {
                        store: STORE,
                        source: reason.clone().into(),
                    }));
                    continue;
                }
                let mut result = Ok(());
                for chunk in payload.iter() {
                    if let Err(e) = writer.write_all(chunk).await {
                        failed = Some(format!("{task_path}: {e}"));
                        result = Err(store_error(&task_path, e));
                        break;
                    }
                }
                let _ = ack.send(result);
            }
            if let Some(reason) = failed {
                return Err(object_store::Error::Generic {
                    store: STORE,
                    source: reason.into(),
                });
            }
            writer
                .close()
                .await
                .map(|_| ())
                .map_err(|e| store_error(&task_path, e))
        });
        DfsUpload {
            path,
            client,
            parts: Some(tx),
            done: Some(done),
        }
    }
}

#[async_trait]
impl MultipartUpload for DfsUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let (ack, acked) = oneshot::channel();
        let sent = self
            .parts
            .as_ref()
            .map(|p| p.send(UploadOp::Part(data, ack)).is_ok())
            .unwrap_or(false);
        let path = self.path.clone();
        Box::pin(async move {
            if !sent {
                return Err(object_store::Error::Generic {
                    store: STORE,
                    source: format!("{path}: upload already completed or aborted").into(),
                });
            }
            acked.await.unwrap_or_else(|_| {
                Err(object_store::Error::Generic {
                    store: STORE,
                    source: format!("{path}: the upload task ended").into(),
                })
            })
        })
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        // Closing the channel lets the writer task close the DFS file once every part is written.
        self.parts = None;
        let Some(done) = self.done.take() else {
            return Err(object_store::Error::Generic {
                store: STORE,
                source: format!("{}: upload already completed", self.path).into(),
            });
        };
        done.await.map_err(|e| object_store::Error::Generic {
            store: STORE,
            source: Box::new(e),
        })??;
        Ok(PutResult {
            e_tag: None,
            version: None,
        })
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        self.parts = None;
        if let Some(done) = self.done.take() {
            done.abort();
        }
        // A half-written file must not be mistaken for output.
        match self.client.delete(&self.path, false).await {
            Ok(_) | Err(DfsError::Namenode(NamenodeError::NotFound(_))) => Ok(()),
            Err(e) => Err(store_error(&self.path, e)),
        }
    }
}
