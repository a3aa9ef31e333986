//! The one place the `sheaf` binary builds its tokio runtime.

use anyhow::Context;

/// What a runtime is for, which decides its worker threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// A user command (`sheaf dfs`, `job`, `yarn`, `fsck`, `dfsadmin`): it mostly waits on the
    /// network, and two threads leave the cores to the daemons of a pseudo-cluster.
    Command,
    /// A daemon, or a benchmark that serves and measures in-process: one thread per core.
    Serving,
}

/// A multi-threaded runtime with I/O and timers for `workload`.
///
/// SIGPIPE stays ignored (Rust's default): with the default disposition a DataNode that dies
/// mid-write would kill a client through its socket instead of triggering pipeline recovery.
/// A closed stdout (`sheaf dfs cat … | head`) is handled where stdout is written.
pub fn runtime(workload: Workload) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if workload == Workload::Command {
        builder.worker_threads(2);
    }
    builder
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}
