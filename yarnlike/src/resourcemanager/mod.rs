//! The ResourceManager: sans-I/O decisions ([`scheduler`], [`state`]), durability ([`store`])
//! and the daemon around them.

pub mod daemon;
pub mod scheduler;
pub mod state;
pub mod store;

#[cfg(test)]
mod random_tests;
