//! Hadoop-style output commit for the local runner, on whichever filesystem the output lives
//! (local disk or DFS): task attempts write under `OUT/_temporary/`, a finished task is committed
//! by rename, the job commit moves every committed file into `OUT` and writes `_SUCCESS` last; an
//! aborted job leaves no `_SUCCESS` and no `_temporary`.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::fs::{FsError, JobFileSystem, JobPath};
use crate::task::error::{EngineError, EngineResult};

/// Name of the marker file written after a successful job commit.
pub const SUCCESS_MARKER: &str = "_SUCCESS";
/// Directory under the output dir holding attempts and committed task files.
pub const TEMPORARY_DIR: &str = "_temporary";
/// Directory under [`TEMPORARY_DIR`] where committed task files wait for the job commit.
pub const COMMITTED_DIR: &str = "committed";

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
        Self::resume(fs, out)
    }

    /// Takes over the output of a job whose previous driver died (a JobTracker's next attempt):
    /// unlike [`OutputCommitter::setup`] an existing output directory is expected, and what the
    /// previous driver committed under `_temporary` is kept.
    pub fn resume(fs: Arc<dyn JobFileSystem>, out: &JobPath) -> EngineResult<Self> {
        let temporary = out.join(TEMPORARY_DIR);
        let committed = temporary.join(COMMITTED_DIR);
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
    /// attempt directory. Idempotent: a source already gone with the target in place is a
    /// commit done before (a rename the filesystem applied but whose answer was lost); a target
    /// left by an earlier attempt of the task whose commit was not recorded is replaced (tasks
    /// are committed one attempt at a time, so it cannot be a concurrent commit's).
    pub fn commit_task(&self, attempt_dir: &JobPath, file_name: &str) -> EngineResult<()> {
        let from = attempt_dir.join(file_name);
        let to = self.committed.join(file_name);
        let exists = |p: &JobPath| {
            self.fs
                .exists(p)
                .map_err(|e| fs_failed(format!("committing {from}: checking {p}"), e))
        };
        let source = exists(&from)?;
        if !source && exists(&to)? {
            let _ = self.fs.delete(attempt_dir, true);
            return Ok(());
        }
        if source && exists(&to)? {
            self.fs
                .delete(&to, false)
                .map_err(|e| fs_failed(format!("replacing the stale {to}"), e))?;
        }
        if let Err(e) = self.fs.rename(&from, &to) {
            // The rename may have been applied although it reported failure (a lost answer).
            if !(matches!(self.fs.exists(&from), Ok(false))
                && matches!(self.fs.exists(&to), Ok(true)))
            {
                return Err(fs_failed(format!("committing {from}"), e));
            }
        }
        // Leftovers are not output; failing to delete them is not a task failure.
        let _ = self.fs.delete(attempt_dir, true);
        Ok(())
    }

    /// Checks that the committed files, with those an earlier (interrupted) job commit already
    /// moved into the output directory, are exactly `expected` (file names): a job must not
    /// succeed with a task's output missing or with output no task of it committed.
    pub fn check_complete(&self, expected: &BTreeSet<String>) -> EngineResult<()> {
        let committed = self.file_names(&self.committed)?;
        let promoted = self.file_names(&self.out)?;
        let missing: Vec<&String> = expected
            .iter()
            .filter(|n| !committed.contains(*n) && !promoted.contains(*n))
            .collect();
        let unexpected: Vec<&String> = committed.difference(expected).collect();
        if missing.is_empty() && unexpected.is_empty() {
            return Ok(());
        }
        let list = |names: &[&String]| {
            let shown: Vec<&str> = names.iter().take(5).map(|n| n.as_str()).collect();
            let more = names.len().saturating_sub(shown.len());
            if more > 0 {
                format!("{} and {more} more", shown.join(", "))
            } else {
                shown.join(", ")
            }
        };
        let mut problems = Vec::new();
        if !missing.is_empty() {
            problems.push(format!("missing {}", list(&missing)));
        }
        if !unexpected.is_empty() {
            problems.push(format!("unexpected {}", list(&unexpected)));
        }
        Err(EngineError::Job(format!(
            "the committed output in {} is incomplete: {}",
            self.committed,
            problems.join("; ")
        )))
    }

    /// Names of the entries of `dir` (none if it does not exist).
    fn file_names(&self, dir: &JobPath) -> EngineResult<BTreeSet<String>> {
        match self.fs.list(dir) {
            Ok(entries) => Ok(entries.iter().filter_map(|e| e.path.file_name()).collect()),
            Err(FsError::NotFound(_)) => Ok(BTreeSet::new()),
            Err(e) => Err(fs_failed(format!("listing {dir}"), e)),
        }
    }

    /// Moves every committed file into the output directory, removes `_temporary` and writes
    /// `_SUCCESS` last. A file of the same name already in the output directory was moved there
    /// by an earlier, interrupted commit of the same job (a driver's next attempt repeats it):
    /// the committed one replaces it.
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
            let stale = self
                .fs
                .exists(&to)
                .map_err(|e| fs_failed(format!("checking {to}"), e))?;
            if stale {
                self.fs
                    .delete(&to, false)
                    .map_err(|e| fs_failed(format!("replacing {to}"), e))?;
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::LocalFs;

    fn write(fs: &Arc<dyn JobFileSystem>, path: &JobPath, text: &str) {
        let mut w = fs.create(path).expect("create");
        std::io::Write::write_all(&mut w, text.as_bytes()).expect("write");
        w.close().expect("close");
    }

    fn read(path: &JobPath) -> String {
        match path {
            JobPath::Local(p) => std::fs::read_to_string(p).expect("read"),
            JobPath::Dfs { .. } => panic!("local paths only"),
        }
    }

    fn attempt(c: &OutputCommitter, name: &str, file: &str, text: &str) -> JobPath {
        let dir = c.attempt_dir(name).expect("attempt dir");
        write(c.fs(), &dir.join(file), text);
        dir
    }

    #[test]
    fn task_commits_survive_a_lost_rename_answer_and_replace_stale_targets() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fs: Arc<dyn JobFileSystem> = Arc::new(LocalFs);
        let out = JobPath::Local(dir.path().join("out"));
        let c = OutputCommitter::setup(fs.clone(), &out).expect("setup");
        let file = "part-r-00000";
        let committed = c.committed_dir().join(file);

        // The filesystem applied the rename but its answer was lost: the same commit again
        // (source gone, target present) is a success, not AlreadyExists.
        let a0 = attempt(&c, "attempt_r_000000_0", file, "first");
        fs.rename(&a0.join(file), &committed)
            .expect("rename behind the committer's back");
        c.commit_task(&a0, file).expect("repeated commit succeeds");
        assert_eq!(read(&committed), "first");

        // The tracker took that commit for failed and committed another attempt: its file
        // replaces the stale one.
        let a1 = attempt(&c, "attempt_r_000000_1", file, "second");
        c.commit_task(&a1, file)
            .expect("commit over a stale target");
        assert_eq!(read(&committed), "second");
        assert!(!fs.exists(&a1).expect("exists"), "attempt dir removed");

        // Nothing anywhere: a real failure.
        let a2 = c.attempt_dir("attempt_r_000000_2").expect("dir");
        fs.delete(&committed, false).expect("delete");
        c.commit_task(&a2, file).expect_err("no output to commit");
    }

    #[test]
    fn job_commit_checks_the_expected_files_and_replaces_earlier_promoted_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fs: Arc<dyn JobFileSystem> = Arc::new(LocalFs);
        let out = JobPath::Local(dir.path().join("out"));
        let c = OutputCommitter::setup(fs.clone(), &out).expect("setup");
        let expected: BTreeSet<String> = ["part-r-00000", "part-r-00001", "part-r-00002"]
            .into_iter()
            .map(String::from)
            .collect();
        for (i, text) in [(0, "zero"), (1, "one")] {
            let file = format!("part-r-{i:05}");
            let a = attempt(&c, &format!("attempt_r_{i:06}_0"), &file, text);
            c.commit_task(&a, &file).expect("commit");
        }
        let err = c.check_complete(&expected).expect_err("part 2 missing");
        assert!(err.to_string().contains("missing part-r-00002"), "{err}");

        // An interrupted job commit of an earlier driver already promoted part 2 (stale) and
        // part 1; part 1 is also committed again.
        write(&fs, &out.join("part-r-00002"), "two");
        write(&fs, &out.join("part-r-00001"), "stale one");
        c.check_complete(&expected).expect("complete");
        write(&fs, &c.committed_dir().join("part-r-00009"), "foreign");
        let err = c.check_complete(&expected).expect_err("unexpected file");
        assert!(err.to_string().contains("unexpected part-r-00009"), "{err}");
        fs.delete(&c.committed_dir().join("part-r-00009"), false)
            .expect("delete");

        c.commit_job().expect("job commit over promoted files");
        assert_eq!(read(&out.join("part-r-00000")), "zero");
        assert_eq!(read(&out.join("part-r-00001")), "one");
        assert_eq!(read(&out.join("part-r-00002")), "two");
        assert!(fs.exists(&out.join(SUCCESS_MARKER)).expect("exists"));
        assert!(!fs.exists(&out.join(TEMPORARY_DIR)).expect("exists"));
    }
}
