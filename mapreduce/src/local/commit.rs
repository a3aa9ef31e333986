//! Hadoop-style output commit for the local runner: task attempts write under
//! `OUT/_temporary/`, a finished task is committed by rename, the job commit moves every committed
//! file into `OUT` and writes `_SUCCESS` last; an aborted job leaves no `_SUCCESS` and no
//! `_temporary`.

use std::path::{Path, PathBuf};

use crate::task::error::{EngineError, EngineResult, IoContext};

/// Name of the marker file written after a successful job commit.
pub const SUCCESS_MARKER: &str = "_SUCCESS";
/// Directory under the output dir holding attempts, committed task files and scratch data.
pub const TEMPORARY_DIR: &str = "_temporary";

/// Commits the output of one job into its output directory.
pub struct OutputCommitter {
    out: PathBuf,
    temporary: PathBuf,
    committed: PathBuf,
}

impl OutputCommitter {
    /// Creates `out/_temporary`; refuses an output directory that already exists (like Hadoop).
    pub fn setup(out: &Path) -> EngineResult<Self> {
        if out.exists() {
            return Err(EngineError::Job(format!(
                "Output directory {} already exists (remove it or choose another output directory)",
                out.display()
            )));
        }
        let temporary = out.join(TEMPORARY_DIR);
        let committed = temporary.join("committed");
        std::fs::create_dir_all(&committed)
            .ctx(|| format!("creating output directory {}", out.display()))?;
        Ok(OutputCommitter {
            out: out.to_path_buf(),
            temporary,
            committed,
        })
    }

    /// A fresh private directory for a task attempt (`_temporary/<name>`).
    pub fn attempt_dir(&self, name: &str) -> EngineResult<PathBuf> {
        let dir = self.temporary.join(name);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).ctx(|| format!("clearing {}", dir.display()))?;
        }
        std::fs::create_dir_all(&dir).ctx(|| format!("creating {}", dir.display()))?;
        Ok(dir)
    }

    /// Commits `attempt_dir/file_name` by renaming it into the committed area, then removes the
    /// attempt directory.
    pub fn commit_task(&self, attempt_dir: &Path, file_name: &str) -> EngineResult<()> {
        let from = attempt_dir.join(file_name);
        let to = self.committed.join(file_name);
        std::fs::rename(&from, &to).ctx(|| format!("committing {}", from.display()))?;
        // Leftover scratch files are not output; failing to delete them is not a task failure.
        let _ = std::fs::remove_dir_all(attempt_dir);
        Ok(())
    }

    /// Moves every committed file into the output directory, removes `_temporary` and writes
    /// `_SUCCESS` last.
    pub fn commit_job(&self) -> EngineResult<()> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&self.committed)
            .ctx(|| format!("listing {}", self.committed.display()))?
        {
            let entry = entry.ctx(|| format!("listing {}", self.committed.display()))?;
            names.push(entry.file_name());
        }
        names.sort();
        for name in names {
            let from = self.committed.join(&name);
            let to = self.out.join(&name);
            std::fs::rename(&from, &to).ctx(|| format!("committing {}", from.display()))?;
        }
        std::fs::remove_dir_all(&self.temporary)
            .ctx(|| format!("removing {}", self.temporary.display()))?;
        let marker = self.out.join(SUCCESS_MARKER);
        std::fs::write(&marker, b"").ctx(|| format!("writing {}", marker.display()))
    }

    /// Removes everything the job wrote under `_temporary` (best effort: the job already failed).
    pub fn abort_job(&self) {
        let _ = std::fs::remove_dir_all(&self.temporary);
    }

    /// The directory under which scratch data (spills, map outputs) lives.
    pub fn temporary_dir(&self) -> &Path {
        &self.temporary
    }
}
