//! Auxiliary services: long-running services hosted inside the NodeManager process (the MapReduce
//! shuffle server), started with the NM and advertised to applications through the RM.

use crate::protocol::{AppId, YarnError};
use std::net::IpAddr;

/// A service the NodeManager hosts.
pub trait AuxService: Send + Sync {
    /// Its name, as applications look it up ("shuffle").
    fn name(&self) -> &str;
    /// Starts it on the NM's host (called inside the NM's runtime, so it may spawn tasks) and
    /// returns the address applications should use.
    fn start(&self, host: IpAddr) -> Result<String, YarnError>;
    /// Stops it when the NodeManager shuts down (called inside the NM's runtime; must not
    /// block). The default does nothing: the service's tasks end with the runtime.
    fn stop(&self) {}
    /// Application `app` has ended and its containers on this node have exited: drop what the
    /// service keeps for it (Hadoop's `stopApplication`). Called inside the NM's runtime; must
    /// not block. The default does nothing.
    fn application_finished(&self, _app: &AppId) {}
}
