//! Output commit on a thread of its own: [`OutputCommitter`] is a synchronous filesystem API,
//! which must not run on the runtime. Operations run one at a time, in the order sent.

use super::JobTrackerError;
use crate::fs::{JobFileSystem, JobPath};
use crate::local::{OutputCommitter, SUCCESS_MARKER, TEMPORARY_DIR};
use std::collections::BTreeSet;
use std::sync::Arc;
use tokio::sync::oneshot;

/// How the committer takes over the output directory.
#[derive(Debug, Clone)]
pub(super) enum CommitterStart {
    /// First attempt: the output must not exist (Hadoop's check).
    Fresh,
    /// A later attempt recovering from a snapshot: keep the committed files of `keep` (file
    /// names), drop other committed files (commits the snapshot never recorded).
    Recover { keep: BTreeSet<String> },
    /// A later attempt without a snapshot: start over, clearing `_temporary`.
    Restart,
}

/// One operation of the committer thread.
pub(super) enum CommitOp {
    Start(CommitterStart),
    Task {
        attempt_dir: JobPath,
        file: String,
    },
    /// The job commit; `expected` are the output files every task together must have committed.
    Job {
        expected: BTreeSet<String>,
    },
    Abort,
}

type CommitReply = oneshot::Sender<Result<(), String>>;

/// Handle of the committer thread; operations run one at a time in the order sent.
#[derive(Clone)]
pub(super) struct Committer {
    tx: std::sync::mpsc::Sender<(CommitOp, CommitReply)>,
}

impl Committer {
    /// Starts the committer thread over output directory `out`.
    pub(super) fn spawn(
        fs: Arc<dyn JobFileSystem>,
        out: JobPath,
    ) -> Result<Committer, JobTrackerError> {
        let (tx, rx) = std::sync::mpsc::channel::<(CommitOp, CommitReply)>();
        std::thread::Builder::new()
            .name("sheaf-jt-commit".into())
            .spawn(move || {
                let mut committer: Option<OutputCommitter> = None;
                while let Ok((op, reply)) = rx.recv() {
                    let result = run_commit_op(&fs, &out, &mut committer, op);
                    let _ = reply.send(result);
                }
            })
            .map_err(|e| {
                JobTrackerError::Internal(format!("cannot start the committer thread: {e}"))
            })?;
        Ok(Committer { tx })
    }

    /// Runs `op` on the committer thread and waits for its result.
    pub(super) async fn call(&self, op: CommitOp) -> Result<(), String> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send((op, reply))
            .map_err(|_| "the committer thread is gone".to_string())?;
        rx.await
            .map_err(|_| "the committer thread died".to_string())?
    }
}

fn run_commit_op(
    fs: &Arc<dyn JobFileSystem>,
    out: &JobPath,
    committer: &mut Option<OutputCommitter>,
    op: CommitOp,
) -> Result<(), String> {
    let err = |e: crate::task::error::EngineError| e.to_string();
    match op {
        CommitOp::Start(start) => {
            let c = match start {
                CommitterStart::Fresh => OutputCommitter::setup(fs.clone(), out).map_err(err)?,
                CommitterStart::Restart => {
                    let c = OutputCommitter::resume(fs.clone(), out).map_err(err)?;
                    c.abort_job();
                    OutputCommitter::resume(fs.clone(), out).map_err(err)?
                }
                CommitterStart::Recover { keep } => {
                    let c = OutputCommitter::resume(fs.clone(), out).map_err(err)?;
                    let committed = fs
                        .list(c.committed_dir())
                        .map_err(|e| format!("listing {}: {e}", c.committed_dir()))?;
                    for entry in committed {
                        let stale = entry.path.file_name().is_some_and(|n| !keep.contains(&n));
                        if stale {
                            fs.delete(&entry.path, true)
                                .map_err(|e| format!("removing {}: {e}", entry.path))?;
                        }
                    }
                    c
                }
            };
            *committer = Some(c);
            Ok(())
        }
        CommitOp::Task { attempt_dir, file } => committer
            .as_ref()
            .ok_or("output committer not started")?
            .commit_task(&attempt_dir, &file)
            .map_err(err),
        CommitOp::Job { expected } => {
            let c = committer.as_ref().ok_or("output committer not started")?;
            // A previous JobTracker attempt may have finished the commit before it died.
            let marker = out.join(SUCCESS_MARKER);
            if fs.exists(&marker).map_err(|e| e.to_string())? {
                return Ok(());
            }
            c.check_complete(&expected).map_err(err)?;
            c.commit_job().map_err(err)
        }
        CommitOp::Abort => {
            match committer.as_ref() {
                Some(c) => c.abort_job(),
                None => {
                    let _ = fs.delete(&out.join(TEMPORARY_DIR), true);
                }
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::layout::{attempt_output_dir, expected_outputs, output_file_name};
    use crate::jobtracker::{AttemptId, TaskId};

    fn write(fs: &Arc<dyn JobFileSystem>, path: &JobPath, text: &str) {
        let mut w = fs.create(path).expect("create");
        std::io::Write::write_all(&mut w, text.as_bytes()).expect("write");
        w.close().expect("close");
    }

    fn names(fs: &Arc<dyn JobFileSystem>, dir: &JobPath) -> Vec<String> {
        let mut n: Vec<String> = fs
            .list(dir)
            .expect("list")
            .into_iter()
            .filter_map(|e| e.path.file_name())
            .collect();
        n.sort();
        n
    }

    #[test]
    fn committer_starts_fresh_recovers_or_restarts_and_commits_idempotently() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fs: Arc<dyn JobFileSystem> = Arc::new(crate::fs::LocalFs);
        let out = JobPath::Local(dir.path().join("out"));
        let mut c = None;
        let run = |c: &mut Option<OutputCommitter>, op| run_commit_op(&fs, &out, c, op);
        run(&mut c, CommitOp::Start(CommitterStart::Fresh)).expect("fresh");
        for (task, text) in [(TaskId::reduce(0), "a"), (TaskId::reduce(1), "b")] {
            let attempt = AttemptId { task, number: 0 };
            let adir = attempt_output_dir(&out, 1, attempt);
            fs.mkdirs(&adir).expect("mkdirs");
            write(&fs, &adir.join(&output_file_name(task)), text);
            run(
                &mut c,
                CommitOp::Task {
                    attempt_dir: adir,
                    file: output_file_name(task),
                },
            )
            .expect("commit task");
        }
        // A second first attempt over the same output is refused, as in Hadoop.
        let err = run(&mut None, CommitOp::Start(CommitterStart::Fresh)).expect_err("exists");
        assert!(err.contains("already exists"), "{err}");

        // A recovered attempt keeps what its snapshot committed and drops the rest.
        let keep = BTreeSet::from([output_file_name(TaskId::reduce(0))]);
        let mut recovered = None;
        run(
            &mut recovered,
            CommitOp::Start(CommitterStart::Recover { keep }),
        )
        .expect("recover");
        let committed = out.join(TEMPORARY_DIR).join("committed");
        assert_eq!(names(&fs, &committed), vec!["part-r-00000"]);

        // The snapshot's commit of part-r-00001 was not kept: a job commit expecting it fails.
        let both = expected_outputs(1, 2);
        let err = run(&mut recovered, CommitOp::Job { expected: both }).expect_err("incomplete");
        assert!(err.contains("missing part-r-00001"), "{err}");
        assert!(!fs.exists(&out.join(SUCCESS_MARKER)).expect("exists"));
        let only = BTreeSet::from([output_file_name(TaskId::reduce(0))]);
        run(&mut recovered, CommitOp::Job { expected: only }).expect("commit job");
        assert_eq!(names(&fs, &out), vec!["_SUCCESS", "part-r-00000"]);
        // A repeated job commit (an attempt that died after committing) succeeds again.
        let mut again = None;
        run(
            &mut again,
            CommitOp::Start(CommitterStart::Recover {
                keep: BTreeSet::new(),
            }),
        )
        .expect("resume");
        run(
            &mut again,
            CommitOp::Job {
                expected: expected_outputs(1, 2),
            },
        )
        .expect("idempotent commit");
        run(&mut again, CommitOp::Abort).expect("abort");
        assert_eq!(names(&fs, &out), vec!["_SUCCESS", "part-r-00000"]);

        // A restart without a snapshot clears _temporary.
        let other = JobPath::Local(dir.path().join("other"));
        let tmp = other.join(TEMPORARY_DIR).join("attempt_r_000000_0");
        fs.mkdirs(&tmp).expect("mkdirs");
        write(&fs, &tmp.join("part-r-00000"), "stale");
        let mut restarted = None;
        run_commit_op(
            &fs,
            &other,
            &mut restarted,
            CommitOp::Start(CommitterStart::Restart),
        )
        .expect("restart");
        assert_eq!(names(&fs, &other.join(TEMPORARY_DIR)), vec!["committed"]);
    }
}
