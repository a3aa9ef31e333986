//! Sheaf MapReduce engine.

pub mod api;
pub mod attempts;
pub mod cluster;
pub mod counters;
pub mod formats;
pub mod fs;
pub mod jobtracker;
pub mod local;
pub mod shuffle;
pub mod streaming;
pub mod task;
