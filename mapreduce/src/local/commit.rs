//! Hadoop-style output commit for the local runner, on whichever filesystem the output lives
//! (local disk or DFS): task attempts write under `OUT/_temporary/`, a finished task is committed
//! by rename, the job commit moves every committed file into `OUT` and writes `_SUCCESS` last; an
//! aborted job leaves no `_SUCCESS` and no `_temporary`.

use std::sync::Arc;

use crate::fs::{FsError, JobFileSystem, JobPath};
use crate::task::error::{EngineError, EngineResult};

/// Name of the marker file written after a successful job commit.
pub const SUCCESS_MARKER: &str = "_SUCCESS";
/// Directory under the output dir holding attempts and committed task files.
pub const TEMPORARY_DIR: &str = "_temporary";

/// A filesystem failure as an engine error naming what was being done.
pub(crate) fn fs_failed(context: impl Into<String>, e: FsError) -> EngineError {
    EngineError::io(context, e.into_io())
}

/// Commits the output of one job into its output directory.
pub struct OutputCommitter {
    fs: Arc<dyn JobFileSystem>,
    out: JobPath,
    temporary: JobPath,
    committed: JobPath,
}

impl OutputCommitter {
    /// Creates `out/_temporary` on `fs`; refuses an output directory that already exists (like
    /// Hadoop).
    pub fn setup(fs: Arc<dyn JobFileSystem>, out: &JobPath) -> EngineResult<Self> {
        let exists = fs
            .exists(out)
            .map_err(|e| fs_failed(format!("checking output directory {out}"), e))?;
        if exists {
            return Err(EngineError::Job(format!(
                "Output directory {out} already exists (remove it or choose another output directory)"
            )));
        }
        let temporary = out.join(TEMPORARY_DIR);
        let committed = temporary.join("committed");
        fs.mkdirs(&committed)
            .map_err(|e| fs_failed(format!("creating output directory {out}"), e))?;
        Ok(OutputCommitter {
            fs,
            out: out.clone(),
            temporary,
            committed,
        })
    }

    /// Takes over the output of a job whose previous driver died (a JobTracker's next attempt):
    /// unlike [`OutputCommitter::setup`] an existing output directory is expected, and what the
    /// previous driver committed under `_temporary` is kept.
    pub fn resume(fs: Arc<dyn JobFileSystem>, out: &JobPath) -> EngineResult<Self> {
        let temporary = out.join(TEMPORARY_DIR);
        let committed = temporary.join("committed");
        fs.mkdirs(&committed)
            .map_err(|e| fs_failed(format!("creating output directory {out}"), e))?;
        Ok(OutputCommitter {
            fs,
            out: out.clone(),
            temporary,
            committed,
        })
    }

    /// The directory committed task files wait in until the job commit.
    pub fn committed_dir(&self) -> &JobPath {
        &self.committed
    }

    /// The output directory.
    pub fn output_dir(&self) -> &JobPath {
        &self.out
    }

    /// The filesystem the output lives on.
    pub fn fs(&self) -> &Arc<dyn JobFileSystem> {
        &self.fs
    }

    /// A fresh private directory for a task attempt (`_temporary/<name>`).
    pub fn attempt_dir(&self, name: &str) -> EngineResult<JobPath> {
        let dir = self.temporary.join(name);
        self.fs
            .delete(&dir, true)
            .map_err(|e| fs_failed(format!("clearing {dir}"), e))?;
        self.fs
            .mkdirs(&dir)
            .map_err(|e| fs_failed(format!("creating {dir}"), e))?;
        Ok(dir)
    }

    /// Commits `attempt_dir/file_name` by renaming it into the committed area, then removes the
    /// attempt directory.
    pub fn commit_task(&self, attempt_dir: &JobPath, file_name: &str) -> EngineResult<()> {
        let from = attempt_dir.join(file_name);
        let to = self.committed.join(file_name);
        self.fs
            .rename(&from, &to)
            .map_err(|e| fs_failed(format!("committing {from}"), e))?;
        // Leftovers are not output; failing to delete them is not a task failure.
        let _ = self.fs.delete(attempt_dir, true);
        Ok(())
    }

    /// Moves every committed file into the output directory, removes `_temporary` and writes
    /// `_SUCCESS` last.
    pub fn commit_job(&self) -> EngineResult<()> {
        let committed = self
            .fs
            .list(&self.committed)
            .map_err(|e| fs_failed(format!("listing {}", self.committed), e))?;
        let mut names: Vec<String> = committed
            .iter()
            .filter_map(|e| e.path.file_name())
            .collect();
        names.sort();
        for name in names {
            let from = self.committed.join(&name);
            let to = self.out.join(&name);
            self.fs
                .rename(&from, &to)
                .map_err(|e| fs_failed(format!("committing {from}"), e))?;
        }
        self.fs
            .delete(&self.temporary, true)
            .map_err(|e| fs_failed(format!("removing {}", self.temporary), e))?;
        let marker = self.out.join(SUCCESS_MARKER);
        let writer = self
            .fs
            .create(&marker)
            .map_err(|e| fs_failed(format!("writing {marker}"), e))?;
        writer
            .close()
            .map_err(|e| fs_failed(format!("writing {marker}"), e))
    }

    /// Removes everything the job wrote under `_temporary` (best effort: the job already failed).
    pub fn abort_job(&self) {
        let _ = self.fs.delete(&self.temporary, true);
    }

    /// The `_temporary` directory of the output.
    pub fn temporary_dir(&self) -> &JobPath {
        &self.temporary
    }
}
