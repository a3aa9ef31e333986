//! The local filesystem as a [`JobFileSystem`].

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use super::{FileEntry, FsError, FsResult, JobFileReader, JobFileSystem, JobFileWriter, JobPath};

/// Read buffer of local input files: large enough that split readers make few system calls.
const LOCAL_READ_BUFFER: usize = 1 << 20;
/// Write buffer of local output files.
const LOCAL_WRITE_BUFFER: usize = 1 << 20;

/// The local disk.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalFs;

fn local(path: &JobPath) -> FsResult<&Path> {
    match path {
        JobPath::Local(p) => Ok(p),
        other => Err(FsError::BadPath(format!(
            "{other} is a DFS path, not a local one"
        ))),
    }
}

fn io_error(path: &Path, source: std::io::Error) -> FsError {
    match source.kind() {
        std::io::ErrorKind::NotFound => FsError::NotFound(path.display().to_string()),
        std::io::ErrorKind::AlreadyExists => FsError::AlreadyExists(path.display().to_string()),
        _ => FsError::Io {
            path: path.display().to_string(),
            source,
        },
    }
}

fn entry(path: PathBuf, meta: &std::fs::Metadata) -> FileEntry {
    FileEntry {
        path: JobPath::Local(path),
        len: if meta.is_dir() { 0 } else { meta.len() },
        is_dir: meta.is_dir(),
    }
}

/// A local output file: buffered, synced on close so a committed file is on disk.
struct LocalWriter {
    path: PathBuf,
    file: BufWriter<File>,
}

impl Write for LocalWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.write(buf)
    }
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.file.write_all(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl JobFileWriter for LocalWriter {
    fn close(self: Box<Self>) -> FsResult<()> {
        let path = self.path;
        self.file
            .into_inner()
            .map_err(|e| io_error(&path, e.into_error()))?;
        Ok(())
    }
}

impl JobFileSystem for LocalFs {
    fn status(&self, path: &JobPath) -> FsResult<Option<FileEntry>> {
        let p = local(path)?;
        match std::fs::metadata(p) {
            Ok(meta) => Ok(Some(entry(p.to_path_buf(), &meta))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error(p, e)),
        }
    }

    fn list(&self, path: &JobPath) -> FsResult<Vec<FileEntry>> {
        let p = local(path)?;
        let meta = std::fs::metadata(p).map_err(|e| io_error(p, e))?;
        if !meta.is_dir() {
            return Ok(vec![entry(p.to_path_buf(), &meta)]);
        }
        let mut out = Vec::new();
        for e in std::fs::read_dir(p).map_err(|e| io_error(p, e))? {
            let e = e.map_err(|e| io_error(p, e))?;
            let child = e.path();
            // Follow symlinks like Hadoop's local filesystem does for inputs.
            let meta = std::fs::metadata(&child).map_err(|e| io_error(&child, e))?;
            out.push(entry(child, &meta));
        }
        out.sort_by_key(|e| e.path.to_string());
        Ok(out)
    }

    fn open(&self, path: &JobPath) -> FsResult<Box<dyn JobFileReader>> {
        let p = local(path)?;
        let file = File::open(p).map_err(|e| io_error(p, e))?;
        Ok(Box::new(BufReader::with_capacity(LOCAL_READ_BUFFER, file)))
    }

    fn create(&self, path: &JobPath) -> FsResult<Box<dyn JobFileWriter>> {
        let p = local(path)?;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(p)
            .map_err(|e| io_error(p, e))?;
        Ok(Box::new(LocalWriter {
            path: p.to_path_buf(),
            file: BufWriter::with_capacity(LOCAL_WRITE_BUFFER, file),
        }))
    }

    fn mkdirs(&self, path: &JobPath) -> FsResult<()> {
        let p = local(path)?;
        std::fs::create_dir_all(p).map_err(|e| io_error(p, e))
    }

    fn rename(&self, from: &JobPath, to: &JobPath) -> FsResult<()> {
        let (f, t) = (local(from)?, local(to)?);
        if t.exists() {
            return Err(FsError::AlreadyExists(t.display().to_string()));
        }
        std::fs::rename(f, t).map_err(|e| io_error(f, e))
    }

    fn delete(&self, path: &JobPath, recursive: bool) -> FsResult<bool> {
        let p = local(path)?;
        let meta = match std::fs::symlink_metadata(p) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io_error(p, e)),
        };
        let r = if meta.is_dir() {
            if recursive {
                std::fs::remove_dir_all(p)
            } else {
                std::fs::remove_dir(p)
            }
        } else {
            std::fs::remove_file(p)
        };
        r.map(|_| true).map_err(|e| io_error(p, e))
    }
}
