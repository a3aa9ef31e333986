//! The NodeManager: containers as OS processes ([`containers`]), their memory ([`process_tree`]),
//! hosted services ([`aux_service`]) and the daemon around them.

pub mod aux_service;
pub mod containers;
pub mod daemon;
pub mod localizer;
pub mod log_aggregation;
pub mod process_tree;
