//! Shared helpers of the end-to-end tests.

pub mod mini_cluster;
pub mod mini_dfs;
