//! Subcommands of the `sheaf` binary, one module per command group.

pub mod admin;
pub mod config;
pub mod daemon;
pub mod datanode;
pub mod dfs;
pub mod dfs_bench;
pub mod dfsadmin;
pub mod exit;
pub mod format;
pub mod generic_options;
pub mod job;
pub mod job_bench;
pub mod job_cluster;
pub mod logging;
pub mod mr_jobtracker;
pub mod mr_task;
pub mod namenode;
pub mod runtime;
pub mod shuffle_bench;
pub mod sql;
pub mod sql_bench;
pub mod sql_cluster;
pub mod transport_bench;
pub mod yarn;
pub mod yarn_daemons;
