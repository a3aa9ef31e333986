//! Subcommands of the `sheaf` binary, one module per command group.

pub mod config;
pub mod exit;
pub mod job;
pub mod job_bench;
pub mod logging;
