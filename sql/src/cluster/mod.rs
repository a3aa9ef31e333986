//! Sheaf SQL on the cluster (DESIGN §9): a `sheaf sql` session is one yarnlike application. Its
//! master, the **query master** ([`master`]), plans each statement with DataFusion, cuts it into
//! stages and hands the producer stages' tasks to long-lived **executors** ([`executor`]), one
//! container per node, which run one partition of a stage each and write their output
//! partitions to the node's shuffle directory, served by the NodeManager's shuffle service over
//! QUIC ([`shuffle_source`] reads them back). The master runs the final stage itself and sends
//! the rows to the client ([`client`]). Attempts are MapReduce's `AttemptBook` ([`scheduler`]);
//! a lost output re-runs only its producer task (lineage); every stage output is removed when
//! its query ends.

pub mod client;
pub mod executor;
pub mod master;
pub mod protocol;
pub mod scheduler;
pub mod shuffle_source;

/// Hidden `sheaf` subcommand the RM runs as the query master.
pub const MASTER_COMMAND: &str = "sql-master";
/// Hidden `sheaf` subcommand of executor containers.
pub const EXECUTOR_COMMAND: &str = "sql-executor";
/// First word of a SQL session's application name (`sheaf job list` tells them apart).
pub const APPLICATION_NAME_PREFIX: &str =
    sheaf_mapreduce::cluster::submission::SQL_APPLICATION_NAME_PREFIX;

/// Environment of the query master's and executors' containers.
pub mod env {
    /// Master: the client's token (hex), which every client request must carry.
    pub const CLIENT_TOKEN: &str = "SHEAF_SQL_CLIENT_TOKEN";
    /// Executors: the master's address (`IP:PORT`, UDP).
    pub const MASTER_ADDRESS: &str = "SHEAF_SQL_MASTER_ADDRESS";
    /// Executors: the executors' token (hex).
    pub const EXECUTOR_TOKEN: &str = "SHEAF_SQL_EXECUTOR_TOKEN";
    /// Executors: tasks run at once.
    pub const SLOTS: &str = "SHEAF_SQL_SLOTS";
    /// Executors: memory budget of the executor's operators, bytes.
    pub const TASK_MEMORY: &str = "SHEAF_SQL_TASK_MEMORY";
}

/// A cluster error saying what was being done.
pub(crate) fn cluster_err(what: &str, e: impl std::fmt::Display) -> crate::SqlError {
    crate::SqlError::Cluster(format!("{what}: {e}"))
}

/// Hex encoding of a token, for the environment.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A token from its hex form; `None` if malformed.
pub fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A fresh random token.
pub fn new_token() -> Vec<u8> {
    sheaf_mapreduce::shuffle::JobSecret::generate()
        .as_bytes()
        .to_vec()
}

/// Encodes rows as one Arrow IPC stream.
pub fn encode_rows(
    schema: &datafusion::arrow::datatypes::SchemaRef,
    batches: &[datafusion::arrow::array::RecordBatch],
) -> crate::SqlResult<Vec<u8>> {
    use datafusion::arrow::ipc::writer::StreamWriter;
    let mut out = Vec::new();
    {
        let mut w = StreamWriter::try_new(&mut out, schema)
            .map_err(datafusion::error::DataFusionError::from)?;
        for b in batches {
            w.write(b)
                .map_err(datafusion::error::DataFusionError::from)?;
        }
        w.finish()
            .map_err(datafusion::error::DataFusionError::from)?;
    }
    Ok(out)
}

/// Decodes an Arrow IPC stream from [`encode_rows`].
pub fn decode_rows(
    bytes: &[u8],
) -> crate::SqlResult<(
    datafusion::arrow::datatypes::SchemaRef,
    Vec<datafusion::arrow::array::RecordBatch>,
)> {
    use datafusion::arrow::ipc::reader::StreamReader;
    let reader = StreamReader::try_new(std::io::Cursor::new(bytes), None)
        .map_err(datafusion::error::DataFusionError::from)?;
    let schema = reader.schema();
    let batches = reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(datafusion::error::DataFusionError::from)?;
    Ok((schema, batches))
}

/// Fingerprint of a stage plan: executors check that they planned the same thing.
pub fn fingerprint(plan: &crate::stages::StagePlan) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for s in &plan.stages {
        datafusion::physical_plan::displayable(s.plan.as_ref())
            .indent(true)
            .to_string()
            .hash(&mut h);
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_round_trip_through_hex() {
        let t = super::new_token();
        assert_eq!(super::from_hex(&super::to_hex(&t)), Some(t));
        assert_eq!(super::from_hex("abc"), None);
        assert_eq!(super::from_hex("zz"), None);
    }
}
