//! The job client behind `sheaf job submit|status|counters|kill|list|history`: stages a job in
//! the DFS and submits its JobTracker to the ResourceManager as an application master, then
//! answers questions about jobs from the best source still there:
//!
//! 1. the job's JobTracker (`JtRequest::Status` at the application's tracking address) while the
//!    job runs;
//! 2. the job's history file (`HISTORY_DIR/<job>.json`, JSON of [`JobHistory`]) once it ended, also
//!    after the JobTracker is gone;
//! 3. the ResourceManager's application report when neither is there (the JobTracker has not
//!    registered yet, or died without writing its history).
//!
//! The JobTracker's command line is `<sheaf binary> mr-jobtracker --staging <dir>`: the binary is
//! the submitting CLI's own executable by default, which is right on the pseudo-distributed
//! cluster (every NodeManager runs on the same machine); a real multi-machine cluster sets
//! [`BINARY_KEY`] to where the binary lives on the workers.
//!
//! - `error`: [`JobClientError`];
//! - `submit`: checks, staging and submission ([`JobClient::submit`], [`SubmitOptions`]);
//! - `report`: the presentation model ([`JobReport`], [`JobRunState`], [`JobSummary`],
//!   progress), pure;
//! - `query`: [`JobClient::status`], `list`, `history`;
//! - `kill`: [`JobClient::kill`].
//!
//! Job and application names are in [`crate::cluster::submission`], DFS paths in
//! [`crate::cluster::layout`].

mod error;
mod kill;
mod query;
mod report;
mod submit;

pub use error::{JobClientError, JobClientResult};
pub use kill::KillAnswer;
pub use query::parse_job_id;
pub use report::{percent, phase_progress, JobReport, JobRunState, JobSummary, ReportSource};
pub use submit::{
    am_settings, check_streaming_commands, resolve_dfs_path, shipped_names, SubmitOptions,
    SubmittedJob,
};
// Named with the rest of the job naming; re-exported where callers found them.
pub use crate::cluster::submission::{
    is_mapreduce_application, is_sql_session, job_name_of_application,
};

use error::dfs_err;
use sheaf_dfs::client::{current_user, DfsClient};
use sheaf_dfs::config::DfsConfig;
use sheaf_rpc::{quic, RpcClient, TlsIdentity};
use sheaf_yarn::client::RmClient;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// Memory of the JobTracker's container, MB (Hadoop's key; default 512).
pub const AM_MEMORY_KEY: &str = "yarn.app.mapreduce.am.resource.mb";
/// Vcores of the JobTracker's container (Hadoop's key; default 1).
pub const AM_VCORES_KEY: &str = "yarn.app.mapreduce.am.resource.cpu-vcores";
/// JobTracker attempts before the job fails (Hadoop's key; default 2).
pub const AM_MAX_ATTEMPTS_KEY: &str = "mapreduce.am.max-attempts";
/// The job's name (Hadoop's key).
pub const JOB_NAME_KEY: &str = "mapreduce.job.name";
/// The submitting user, recorded in the submitted configuration (Hadoop's key).
pub const USER_KEY: &str = "mapreduce.job.user.name";
/// The queue the job is submitted to (Hadoop's key; default "default").
pub const QUEUE_KEY: &str = "mapreduce.job.queuename";
/// The `sheaf` binary the JobTracker container runs (default: the submitting process's own).
pub const BINARY_KEY: &str = "sheaf.job.binary";

/// Default JobTracker container memory, MB.
pub const DEFAULT_AM_MEMORY_MB: u64 = 512;
/// Default JobTracker attempts.
pub const DEFAULT_AM_MAX_ATTEMPTS: u32 = 2;
/// Default queue.
pub const DEFAULT_QUEUE: &str = "default";

/// How long a status call may wait for a JobTracker before the client falls back to the history
/// and the ResourceManager: a JobTracker that is gone must not stall `sheaf job status`.
const JOBTRACKER_CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Connection deadline to a JobTracker (same reason).
const JOBTRACKER_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// A client of the cluster for MapReduce jobs.
pub struct JobClient {
    dfs: DfsClient,
    rm: RmClient,
    jobtrackers: RpcClient,
    user: String,
}

impl JobClient {
    /// Connects to the DFS of `dfs_config` and the ResourceManager at `rm_address`, presenting
    /// `identity` (the `user` role). Nothing is sent until the first operation.
    pub async fn connect(
        dfs_config: &DfsConfig,
        identity: TlsIdentity,
        rm_address: SocketAddr,
    ) -> JobClientResult<JobClient> {
        let local_ip = client_ip_for(rm_address);
        let rm = RmClient::new(rm_address, &identity, local_ip)?;
        let endpoint = quic::client_endpoint(local_ip, &identity)
            .map_err(|e| JobClientError::Endpoint(e.to_string()))?;
        let mut jobtrackers = RpcClient::new(endpoint);
        jobtrackers.connect_timeout = JOBTRACKER_CONNECT_TIMEOUT;
        jobtrackers.call_timeout = JOBTRACKER_CALL_TIMEOUT;
        let dfs = DfsClient::connect(dfs_config, identity)
            .await
            .map_err(dfs_err("connecting to the DFS"))?;
        Ok(JobClient {
            dfs,
            rm,
            jobtrackers,
            user: current_user(),
        })
    }

    /// The submitting user (`$USER`, as the DFS client names file owners).
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The DFS client (for callers that read job output).
    pub fn dfs(&self) -> &DfsClient {
        &self.dfs
    }
}

/// The address client endpoints bind to: loopback for a loopback cluster (the pseudo-distributed
/// one), any address otherwise.
/// The local IP a client binds to for `server`: loopback for a loopback server, else any.
pub fn client_ip_for(server: SocketAddr) -> IpAddr {
    match server.ip() {
        IpAddr::V4(ip) if ip.is_loopback() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(ip) if ip.is_loopback() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}
