//! Copies between local files (or any byte stream) and the DFS. Local disk I/O runs on a
//! dedicated thread so the async runtime never blocks on it; a bounded channel between the two
//! keeps the disk and the network busy at the same time.

use super::{DfsClient, DfsError, WriteOutcome};
use bytes::Bytes;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Called with the number of bytes just copied (drives progress bars).
pub type CopyProgress = Arc<dyn Fn(u64) + Send + Sync>;

/// Buffers in flight between the local I/O thread and the DFS stream.
const LOCAL_QUEUE: usize = 8;
/// Size of one local read.
const LOCAL_READ: usize = 1 << 20;

impl DfsClient {
    /// Copies the local file `local` to the DFS file `dst`.
    pub async fn copy_from_local(
        &self,
        local: &Path,
        dst: &str,
        overwrite: bool,
        progress: Option<CopyProgress>,
    ) -> Result<WriteOutcome, DfsError> {
        let path = local.to_path_buf();
        let file = tokio::task::spawn_blocking(move || std::fs::File::open(&path))
            .await
            .map_err(|e| DfsError::Usage(format!("local reader thread: {e}")))?
            .map_err(|source| DfsError::Local {
                path: local.display().to_string(),
                source,
            })?;
        self.copy_from_reader(
            Box::new(file),
            &local.display().to_string(),
            dst,
            overwrite,
            progress,
        )
        .await
    }

    /// Copies everything `source` yields (a file, stdin, …) to the DFS file `dst`; `name`
    /// names the source in errors.
    pub async fn copy_from_reader(
        &self,
        source: Box<dyn Read + Send>,
        name: &str,
        dst: &str,
        overwrite: bool,
        progress: Option<CopyProgress>,
    ) -> Result<WriteOutcome, DfsError> {
        let mut writer = self.create(dst, overwrite, None, None).await?;
        let (tx, mut rx) = mpsc::channel::<std::io::Result<Vec<u8>>>(LOCAL_QUEUE);
        let reader = std::thread::spawn(move || {
            let mut source = source;
            loop {
                let mut buf = vec![0u8; LOCAL_READ];
                let mut filled = 0;
                // Fill whole buffers: pipes and stdin return short reads.
                while filled < buf.len() {
                    match source.read(&mut buf[filled..]) {
                        Ok(0) => break,
                        Ok(n) => filled += n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(e) => {
                            let _ = tx.blocking_send(Err(e));
                            return;
                        }
                    }
                }
                if filled == 0 {
                    return;
                }
                buf.truncate(filled);
                if tx.blocking_send(Ok(buf)).is_err() {
                    return;
                }
            }
        });
        let mut result = Ok(());
        while let Some(item) = rx.recv().await {
            match item {
                Ok(buf) => {
                    if let Err(e) = writer.write_all(&buf).await {
                        result = Err(e);
                        break;
                    }
                    if let Some(p) = &progress {
                        p(buf.len() as u64);
                    }
                }
                Err(source) => {
                    result = Err(DfsError::Local {
                        path: name.to_string(),
                        source,
                    });
                    break;
                }
            }
        }
        drop(rx);
        let _ = reader.join();
        result?;
        writer.close().await
    }

    /// Copies the DFS file `src` to the local file `local` (created or truncated).
    pub async fn copy_to_local(
        &self,
        src: &str,
        local: &Path,
        progress: Option<CopyProgress>,
    ) -> Result<u64, DfsError> {
        let path = local.to_path_buf();
        let file = tokio::task::spawn_blocking(move || std::fs::File::create(&path))
            .await
            .map_err(|e| DfsError::Usage(format!("local writer thread: {e}")))?
            .map_err(|source| DfsError::Local {
                path: local.display().to_string(),
                source,
            })?;
        let name = local.display().to_string();
        let sync_path = local.to_path_buf();
        self.copy_to_writer(src, Box::new(file), &name, progress)
            .await
            .inspect_err(|_| {
                let _ = std::fs::remove_file(&sync_path);
            })
    }

    /// Streams the DFS file `src` into `sink` (a file, stdout, …); `name` names the sink in errors.
    pub async fn copy_to_writer(
        &self,
        src: &str,
        sink: Box<dyn Write + Send>,
        name: &str,
        progress: Option<CopyProgress>,
    ) -> Result<u64, DfsError> {
        let mut reader = self.open(src).await?;
        let (tx, mut rx) = mpsc::channel::<Bytes>(LOCAL_QUEUE);
        let writer = std::thread::spawn(move || -> std::io::Result<()> {
            let mut sink = sink;
            while let Some(chunk) = rx.blocking_recv() {
                sink.write_all(&chunk)?;
            }
            sink.flush()
        });
        let mut copied = 0u64;
        let mut result = Ok(());
        loop {
            match reader.next_chunk().await {
                Ok(Some(chunk)) => {
                    let n = chunk.len() as u64;
                    if tx.send(chunk).await.is_err() {
                        break;
                    }
                    copied += n;
                    if let Some(p) = &progress {
                        p(n);
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        drop(tx);
        let written = tokio::task::spawn_blocking(move || writer.join())
            .await
            .map_err(|e| DfsError::Usage(format!("local writer thread: {e}")))?;
        result?;
        match written {
            Ok(Ok(())) => Ok(copied),
            Ok(Err(source)) => Err(DfsError::Local {
                path: name.to_string(),
                source,
            }),
            Err(_) => Err(DfsError::Usage("local writer thread panicked".into())),
        }
    }
}
