//! A plugin built like a real one but whose table carries another fingerprint (as a plugin
//! built against a future sheaf would): the loader must refuse it naming both versions.

use sheaf_mapreduce::api::abi::{PluginTable, StrRef, ABI_VERSION};
use sheaf_mapreduce::api::{
    JobConf, JobDefinition, KeyComparator, Mapper, Partitioner, Reducer, TaskError,
};
use std::sync::OnceLock;

/// The ABI version this library claims.
pub const CLAIMED_ABI: u32 = ABI_VERSION + 1000;
/// The compiler this library claims.
pub const CLAIMED_RUSTC: &str = "rustc 0.1.0 (from the future)";

struct NeverRuns;

impl JobDefinition for NeverRuns {
    fn new_mapper(&self, _conf: &JobConf) -> Result<Box<dyn Mapper>, TaskError> {
        Err(TaskError::new("wrongabi must never be run"))
    }
    fn new_reducer(&self, _conf: &JobConf) -> Result<Box<dyn Reducer>, TaskError> {
        Err(TaskError::new("wrongabi must never be run"))
    }
    fn new_combiner(&self, _conf: &JobConf) -> Result<Option<Box<dyn Reducer>>, TaskError> {
        Ok(None)
    }
    fn partitioner(&self, _conf: &JobConf) -> Result<Option<Box<dyn Partitioner>>, TaskError> {
        Ok(None)
    }
    fn comparator(&self, _conf: &JobConf) -> Result<Option<Box<dyn KeyComparator>>, TaskError> {
        Ok(None)
    }
}

/// Hand-written entry point returning a table with the wrong fingerprint.
#[unsafe(no_mangle)]
pub extern "C" fn sheaf_plugin_entry() -> *const PluginTable {
    static TABLE: OnceLock<PluginTable> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table = PluginTable::for_job(Box::new(NeverRuns));
        table.fingerprint.abi_version = CLAIMED_ABI;
        table.fingerprint.rustc_version = StrRef::from_static(CLAIMED_RUSTC);
        table
    })
}
