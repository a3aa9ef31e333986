//! Sheaf's resource layer (yarnlike): a ResourceManager with capacity queues and a locality-aware
//! scheduler, NodeManagers that run containers as OS processes, and the clients that talk to them.
//!
//! - [`protocol`]: every message of the RM service and the shared types (ids, resources, states).
//! - [`config`]: the `[resourcemanager]`, `[nodemanager]` and `[yarn]` sections of `sheaf.toml`.
//! - [`resourcemanager`]: the scheduler and application state machines (sans-I/O) and the daemon.

pub mod client;
pub mod config;
pub mod distributed_shell;
pub mod master;
pub mod nodemanager;
pub mod protocol;
pub mod resourcemanager;
