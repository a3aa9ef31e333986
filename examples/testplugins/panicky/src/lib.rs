//! A plugin that panics on purpose, to test that a panic fails the task with its message.
//!
//! `panicky.where` chooses the place: `map` (default: the first record), `cleanup`, `reduce`,
//! `new_mapper` (the factory). The message is always [`PANIC_MESSAGE`] followed by the place.

use sheaf_mapreduce::api::{
    Emitter, JobConf, JobDefinition, KeyComparator, Mapper, Partitioner, Reducer, TaskContext,
    TaskError, ValueIter,
};

/// The message every panic of this plugin starts with.
pub const PANIC_MESSAGE: &str = "panicky test plugin: deliberate panic in";

/// Conf key choosing where to panic.
pub const WHERE_KEY: &str = "panicky.where";

struct PanickyMapper {
    place: String,
}

impl Mapper for PanickyMapper {
    fn map(
        &mut self,
        key: &[u8],
        value: &[u8],
        out: &mut dyn Emitter,
        _ctx: &mut dyn TaskContext,
    ) -> Result<(), TaskError> {
        if self.place == "map" {
            panic!("{PANIC_MESSAGE} map");
        }
        out.emit(key, value)
    }

    fn cleanup(
        &mut self,
        _out: &mut dyn Emitter,
        _ctx: &mut dyn TaskContext,
    ) -> Result<(), TaskError> {
        if self.place == "cleanup" {
            panic!("{PANIC_MESSAGE} cleanup");
        }
        Ok(())
    }
}

struct PanickyReducer;

impl Reducer for PanickyReducer {
    fn reduce(
        &mut self,
        _key: &[u8],
        _values: &mut dyn ValueIter,
        _out: &mut dyn Emitter,
        _ctx: &mut dyn TaskContext,
    ) -> Result<(), TaskError> {
        panic!("{PANIC_MESSAGE} reduce");
    }
}

/// Identity map, panicking reduce, or panics where configured.
#[derive(Default)]
struct PanickyJob;

impl JobDefinition for PanickyJob {
    fn new_mapper(&self, conf: &JobConf) -> Result<Box<dyn Mapper>, TaskError> {
        let place = conf.get(WHERE_KEY).unwrap_or("map").to_string();
        if place == "new_mapper" {
            panic!("{PANIC_MESSAGE} new_mapper");
        }
        Ok(Box::new(PanickyMapper { place }))
    }
    fn new_reducer(&self, _conf: &JobConf) -> Result<Box<dyn Reducer>, TaskError> {
        Ok(Box::new(PanickyReducer))
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
    fn name(&self) -> &str {
        "panicky"
    }
}

sheaf_mapreduce::sheaf_plugin!(PanickyJob);
