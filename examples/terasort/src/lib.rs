//! TeraSort for Sheaf: the plugin (identity map splitting a 10-byte key from a 90-byte value,
//! identity reduce, total-order partitioner from a sample) plus the TeraGen and TeraValidate
//! library functions that `sheaf bench terasort` calls.
//!
//! Records are 100 bytes in the layout of `gensort -a` / Hadoop's GenSort ASCII records:
//! ```text
//! [0..10)   key: 10 printable ASCII characters (' '..='~')
//! [10..12)  "  "
//! [12..44)  row id: 32 uppercase hex digits
//! [44..46)  "  "
//! [46..98)  filler: 13 hex digits, each repeated 4 times
//! [98..100) "\r\n"
//! ```
//! Keys and filler come from a per-row deterministic generator (splitmix64 of the row id), so
//! any range of rows can be generated independently and every run produces the same bytes.
//! (The generator is not gensort's 128-bit LCG: same layout, different keys.)
//!
//! The job reads with the `fixed` input format (100-byte records) and writes with the `raw`
//! output format, so output files hold the very input records, reordered; it asks the driver to
//! sample split points (`mapreduce.totalorderpartitioner.sample=true`): the driver must call
//! `sheaf_mapreduce::api::partition::prepare_total_order` before starting the maps.

pub mod teragen;
pub mod teravalidate;

use sheaf_mapreduce::api::partition::{TotalOrderPartitioner, TOTAL_ORDER_SAMPLE_KEY};
use sheaf_mapreduce::api::{
    Emitter, JobConf, JobDefinition, KeyComparator, Mapper, Partitioner, Reducer, TaskContext,
    TaskError, ValueIter,
};
use sheaf_mapreduce::formats::{FIXED_RECORD_LENGTH_KEY, INPUT_FORMAT_KEY, OUTPUT_FORMAT_KEY};

pub use teragen::{generate_record, teragen, write_records};
pub use teravalidate::{checksum_files, teravalidate, TeraError, TeraSummary};

/// Bytes per record.
pub const RECORD_LEN: usize = 100;
/// Bytes of the sort key at the start of a record.
pub const KEY_LEN: usize = 10;

/// Splits each record into its 10-byte key and the 90 bytes after it.
pub struct TeraMapper;

impl Mapper for TeraMapper {
    fn map(
        &mut self,
        _key: &[u8],
        record: &[u8],
        out: &mut dyn Emitter,
        _ctx: &mut dyn TaskContext,
    ) -> Result<(), TaskError> {
        if record.len() < KEY_LEN {
            return Err(TaskError::new(format!(
                "terasort: a {}-byte record is shorter than the {KEY_LEN}-byte key (use the fixed input format)",
                record.len()
            )));
        }
        out.emit(&record[..KEY_LEN], &record[KEY_LEN..])
    }
}

/// Writes every value of a key back out under that key.
pub struct IdentityReducer;

impl Reducer for IdentityReducer {
    fn reduce(
        &mut self,
        key: &[u8],
        values: &mut dyn ValueIter,
        out: &mut dyn Emitter,
        _ctx: &mut dyn TaskContext,
    ) -> Result<(), TaskError> {
        while let Some(v) = values.next_value() {
            out.emit(key, v)?;
        }
        Ok(())
    }
}

/// The TeraSort job.
#[derive(Default)]
pub struct TeraSortJob;

impl JobDefinition for TeraSortJob {
    fn new_mapper(&self, _conf: &JobConf) -> Result<Box<dyn Mapper>, TaskError> {
        Ok(Box::new(TeraMapper))
    }
    fn new_reducer(&self, _conf: &JobConf) -> Result<Box<dyn Reducer>, TaskError> {
        Ok(Box::new(IdentityReducer))
    }
    fn new_combiner(&self, _conf: &JobConf) -> Result<Option<Box<dyn Reducer>>, TaskError> {
        Ok(None)
    }
    fn partitioner(&self, conf: &JobConf) -> Result<Option<Box<dyn Partitioner>>, TaskError> {
        Ok(Some(Box::new(TotalOrderPartitioner::from_conf(conf)?)))
    }
    fn comparator(&self, _conf: &JobConf) -> Result<Option<Box<dyn KeyComparator>>, TaskError> {
        Ok(None)
    }
    fn name(&self) -> &str {
        "terasort"
    }
    fn default_conf(&self) -> JobConf {
        let mut conf = JobConf::default();
        conf.set(INPUT_FORMAT_KEY, "fixed");
        conf.set(FIXED_RECORD_LENGTH_KEY, RECORD_LEN.to_string());
        conf.set(OUTPUT_FORMAT_KEY, "raw");
        conf.set(TOTAL_ORDER_SAMPLE_KEY, "true");
        conf
    }
}

sheaf_mapreduce::sheaf_plugin!(TeraSortJob);
