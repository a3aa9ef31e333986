//! Sheaf MapReduce engine.

pub mod api;
pub mod counters;
pub mod formats;
pub mod local;
pub mod streaming;
pub mod task;
