//! Every message of the ResourceManager's one RPC service: client ↔ RM (submit, status, list,
//! kill, queues, nodes), application master ↔ RM (register, allocate, finish) and NodeManager ↔ RM
//! (register, heartbeat), plus the container launch spec the RM hands to NodeManagers.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// An amount of cluster resources.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Resource {
    /// Memory in MB.
    pub memory_mb: u64,
    /// Virtual cores.
    pub vcores: u32,
}

impl Resource {
    /// A resource of `memory_mb` MB and `vcores` cores.
    pub const fn new(memory_mb: u64, vcores: u32) -> Resource {
        Resource { memory_mb, vcores }
    }
    /// True when `other` fits inside `self`.
    pub fn fits(&self, other: &Resource) -> bool {
        other.memory_mb <= self.memory_mb && other.vcores <= self.vcores
    }
    /// `self + other`.
    pub fn plus(&self, other: &Resource) -> Resource {
        Resource {
            memory_mb: self.memory_mb + other.memory_mb,
            vcores: self.vcores + other.vcores,
        }
    }
    /// `self - other`, floored at zero.
    pub fn minus(&self, other: &Resource) -> Resource {
        Resource {
            memory_mb: self.memory_mb.saturating_sub(other.memory_mb),
            vcores: self.vcores.saturating_sub(other.vcores),
        }
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<memory:{} MB, vcores:{}>", self.memory_mb, self.vcores)
    }
}

/// An application: the RM's start time (ms since the epoch) and a sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AppId {
    /// When the RM that issued the id started (distinguishes ids across RM restarts).
    pub cluster_ts: u64,
    /// Sequence number within that RM run.
    pub seq: u32,
}

impl fmt::Display for AppId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // pad, so that tables can give ids a column width.
        f.pad(&format!("application_{}_{:04}", self.cluster_ts, self.seq))
    }
}

impl std::str::FromStr for AppId {
    type Err = YarnError;
    fn from_str(s: &str) -> Result<AppId, YarnError> {
        let bad = || {
            YarnError::BadRequest(format!(
                "'{s}' is not an application id (application_<ts>_<seq>)"
            ))
        };
        let rest = s.strip_prefix("application_").ok_or_else(bad)?;
        let (ts, seq) = rest.split_once('_').ok_or_else(bad)?;
        Ok(AppId {
            cluster_ts: ts.parse().map_err(|_| bad())?,
            seq: seq.parse().map_err(|_| bad())?,
        })
    }
}

/// One attempt of an application's master.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AttemptId {
    /// The application.
    pub app: AppId,
    /// 1 for the first attempt.
    pub attempt: u32,
}

impl fmt::Display for AttemptId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "appattempt_{}_{:04}_{:06}",
            self.app.cluster_ts, self.app.seq, self.attempt
        )
    }
}

/// A container: its attempt and a sequence number unique within the RM run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ContainerId {
    /// The attempt that owns it.
    pub attempt: AttemptId,
    /// Sequence number (unique within one RM run).
    pub seq: u64,
}

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = &self.attempt;
        write!(
            f,
            "container_{}_{:04}_{:02}_{:06}",
            a.app.cluster_ts, a.app.seq, a.attempt, self.seq
        )
    }
}

/// Where an allocation landed relative to what was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Locality {
    /// On one of the preferred hosts.
    NodeLocal,
    /// On a preferred rack (or the rack of a preferred host), not a preferred host.
    RackLocal,
    /// Neither: locality was relaxed all the way.
    OffRack,
    /// The ask had no preference.
    Unconstrained,
}

impl fmt::Display for Locality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Locality::NodeLocal => "node-local",
            Locality::RackLocal => "rack-local",
            Locality::OffRack => "off-rack",
            Locality::Unconstrained => "any",
        })
    }
}

/// An application master's request for `count` containers of one size and preference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerAsk {
    /// Chosen by the AM, echoed in each [`AllocatedContainer`] so it can match them up.
    pub ask_id: u64,
    /// How many containers.
    pub count: u32,
    /// Size of each.
    pub resource: Resource,
    /// Lower numbers are served first (Hadoop semantics).
    pub priority: u32,
    /// Preferred hosts (host identities as NodeManagers advertise them).
    pub hosts: Vec<String>,
    /// Preferred racks.
    pub racks: Vec<String>,
    /// When false the containers are placed only on the preferred hosts (or racks if no hosts).
    pub relax_locality: bool,
}

/// A container the RM gave an application.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AllocatedContainer {
    /// Its id.
    pub id: ContainerId,
    /// The ask it satisfies.
    pub ask_id: u64,
    /// Host identity of its NodeManager.
    pub host: String,
    /// Rack of that host.
    pub rack: String,
    /// Its size.
    pub resource: Resource,
    /// Locality achieved.
    pub locality: Locality,
    /// Auxiliary services of that NodeManager (name → address).
    pub aux_services: BTreeMap<String, String>,
}

/// What a process in a container runs, and with what.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LaunchSpec {
    /// argv: the program and its arguments (executed directly, no shell).
    pub command: Vec<String>,
    /// Extra environment variables.
    pub env: BTreeMap<String, String>,
    /// DFS files to localize into the working dir (link name → DFS path).
    pub files: BTreeMap<String, String>,
}

/// Exit status of a container the command did not decide itself.
pub mod exit_status {
    /// The container was never started or its start failed (missing command, …).
    pub const LAUNCH_FAILED: i32 = -1;
    /// Killed on request (release, application kill or finish).
    pub const KILLED: i32 = -105;
    /// Killed for going over its memory limit (Hadoop: KILLED_EXCEEDED_PMEM).
    pub const EXCEEDED_MEMORY: i32 = -104;
    /// Its NodeManager was lost (Hadoop: ABORTED).
    pub const NODE_LOST: i32 = -100;
}

/// State of a container as NodeManagers and the RM report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContainerState {
    /// Allocated, not yet running.
    New,
    /// Process started.
    Running,
    /// Over (exit status says how).
    Complete,
}

/// A container's status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerStatus {
    /// Which container.
    pub id: ContainerId,
    /// Its state.
    pub state: ContainerState,
    /// Exit code when complete (see [`exit_status`] for the negative ones).
    pub exit_status: i32,
    /// Why it ended, for humans ("killed: exceeded memory limit (…)", "node lost", …).
    pub diagnostics: String,
}

/// A container the RM tells a NodeManager to start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerLaunch {
    /// Its id.
    pub id: ContainerId,
    /// The user the application belongs to.
    pub user: String,
    /// Resources (memory is enforced).
    pub resource: Resource,
    /// What to run.
    pub spec: LaunchSpec,
}

/// Application states (Hadoop's YarnApplicationState, minus the submission-internal ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AppState {
    /// Created, not yet validated.
    New,
    /// Accepted by a queue, waiting for its master to run.
    Accepted,
    /// Its master registered.
    Running,
    /// The master finished (see the final status).
    Finished,
    /// Every attempt failed, or it could not be run.
    Failed,
    /// Killed by a user.
    Killed,
}

impl AppState {
    /// True for FINISHED, FAILED and KILLED.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            AppState::Finished | AppState::Failed | AppState::Killed
        )
    }
}

impl fmt::Display for AppState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            AppState::New => "NEW",
            AppState::Accepted => "ACCEPTED",
            AppState::Running => "RUNNING",
            AppState::Finished => "FINISHED",
            AppState::Failed => "FAILED",
            AppState::Killed => "KILLED",
        })
    }
}

impl std::str::FromStr for AppState {
    type Err = YarnError;
    fn from_str(s: &str) -> Result<AppState, YarnError> {
        Ok(match s.to_ascii_uppercase().as_str() {
            "NEW" => AppState::New,
            "ACCEPTED" => AppState::Accepted,
            "RUNNING" => AppState::Running,
            "FINISHED" => AppState::Finished,
            "FAILED" => AppState::Failed,
            "KILLED" => AppState::Killed,
            _ => {
                return Err(YarnError::BadRequest(format!(
                    "unknown state '{s}' (use NEW, ACCEPTED, RUNNING, FINISHED, FAILED or KILLED)"
                )))
            }
        })
    }
}

/// The outcome an application master declares (Hadoop's FinalApplicationStatus).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FinalStatus {
    /// Not over yet.
    Undefined,
    /// The application did its work.
    Succeeded,
    /// It did not.
    Failed,
    /// It was killed.
    Killed,
}

impl fmt::Display for FinalStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            FinalStatus::Undefined => "UNDEFINED",
            FinalStatus::Succeeded => "SUCCEEDED",
            FinalStatus::Failed => "FAILED",
            FinalStatus::Killed => "KILLED",
        })
    }
}

/// What a client submits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubmitApplication {
    /// Human-readable name.
    pub name: String,
    /// Submitting user as the client says it; the RM replaces it with the name in the
    /// client's certificate.
    pub user: String,
    /// Leaf queue name ("default", or a full path like "root.batch").
    pub queue: String,
    /// The application master's container size.
    pub am_resource: Resource,
    /// The application master's process.
    pub am_spec: LaunchSpec,
    /// Master attempts before the application fails (0 = the RM's default).
    pub max_attempts: u32,
}

/// A container as recorded in an application's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerReport {
    /// Its id.
    pub id: ContainerId,
    /// Host identity of its NodeManager.
    pub host: String,
    /// True for the application master's container.
    pub is_master: bool,
    /// Locality achieved.
    pub locality: Locality,
    /// Current state.
    pub state: ContainerState,
    /// Exit status once complete.
    pub exit_status: i32,
    /// Why it ended.
    pub diagnostics: String,
}

/// Everything the RM knows about one application.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApplicationReport {
    /// Its id.
    pub id: AppId,
    /// Name given at submission.
    pub name: String,
    /// Submitting user.
    pub user: String,
    /// Queue (leaf name).
    pub queue: String,
    /// State.
    pub state: AppState,
    /// Final status declared by the master (or implied by failure/kill).
    pub final_status: FinalStatus,
    /// Current attempt number (0 before the first master is launched).
    pub attempt: u32,
    /// Attempt limit.
    pub max_attempts: u32,
    /// Why it is in its state.
    pub diagnostics: String,
    /// Submission time, ms since the epoch.
    pub submit_ms: u64,
    /// Finish time, ms since the epoch (0 while not final).
    pub finish_ms: u64,
    /// Host of the current master container, if any.
    pub master_host: Option<String>,
    /// Where the current master serves its clients (`IP:PORT`), as it registered it; `None`
    /// before it registered or when it gave none.
    #[serde(default)]
    pub tracking_address: Option<String>,
    /// Containers of every attempt.
    pub containers: Vec<ContainerReport>,
}

/// A queue's configuration and usage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueReport {
    /// Full path ("root.default").
    pub path: String,
    /// Share of its parent, %.
    pub capacity: f64,
    /// Most it may use of its parent when others are idle, %.
    pub max_capacity: f64,
    /// Guaranteed share of the whole cluster, %.
    pub absolute_capacity: f64,
    /// Memory in use now as % of the cluster.
    pub used_percent: f64,
    /// Resources in use.
    pub used: Resource,
    /// Applications not yet final.
    pub active_apps: u32,
    /// Containers asked for and not yet allocated.
    pub pending_containers: u32,
    /// True for queues that take applications.
    pub is_leaf: bool,
}

/// A NodeManager as the RM sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeReport {
    /// Host identity.
    pub host: String,
    /// Rack.
    pub rack: String,
    /// "RUNNING" or "LOST".
    pub state: String,
    /// Total resources.
    pub capability: Resource,
    /// Resources allocated to containers.
    pub used: Resource,
    /// Containers allocated on it.
    pub containers: u32,
    /// Auxiliary services (name → address).
    pub aux_services: BTreeMap<String, String>,
    /// ms since its last heartbeat.
    pub last_heartbeat_ago_ms: u64,
}

/// A NodeManager's registration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisterNode {
    /// Host identity (the address it binds; the same as its DataNode's).
    pub host: String,
    /// Rack.
    pub rack: String,
    /// Resources it offers.
    pub capability: Resource,
    /// Auxiliary services it hosts (name → address).
    pub aux_services: BTreeMap<String, String>,
    /// Containers still running from before (after an RM restart or a lost-and-back node).
    pub running: Vec<ContainerStatus>,
}

/// A NodeManager heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeHeartbeat {
    /// The id the RM gave at registration.
    pub node_id: u64,
    /// Status of every container it knows of (completed ones until acknowledged).
    pub containers: Vec<ContainerStatus>,
    /// How long the RM may hold the answer waiting for work (long poll), ms.
    pub wait_ms: u64,
}

/// The RM's answer to a heartbeat.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeCommands {
    /// Containers to start.
    pub launch: Vec<ContainerLaunch>,
    /// Containers to kill.
    pub stop: Vec<ContainerId>,
    /// Completed containers the RM has recorded (the NM may forget them).
    pub acknowledged: Vec<ContainerId>,
    /// Applications that are over: clean their directories.
    pub finished_apps: Vec<AppId>,
    /// The RM does not know this node (restarted or declared it lost): register again.
    pub reregister: bool,
}

/// An application master's allocate call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Allocate {
    /// Which attempt.
    pub attempt: AttemptId,
    /// Secret the RM put in the master's environment (`SHEAF_AM_TOKEN`).
    pub token: u64,
    /// New asks.
    pub asks: Vec<ContainerAsk>,
    /// Asks (by id) whose unallocated remainder is no longer wanted.
    pub cancel_asks: Vec<u64>,
    /// Containers to give back (they are killed).
    pub release: Vec<ContainerId>,
    /// How long the RM may hold the answer waiting for news, ms (long poll).
    pub wait_ms: u64,
}

/// The RM's answer to allocate.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Allocation {
    /// Newly allocated containers (the RM launches them).
    pub allocated: Vec<AllocatedContainer>,
    /// Containers of this attempt that completed since the last call.
    pub completed: Vec<ContainerStatus>,
    /// Containers still to be allocated across all asks.
    pub pending: u32,
    /// The attempt is no longer current (killed or superseded): the master should exit.
    pub shutdown: bool,
}

/// Requests of the ResourceManager service.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum RmRequest {
    /// Client: submit an application.
    Submit(SubmitApplication),
    /// Client: one application's report.
    GetApplication(AppId),
    /// Client: applications, optionally only those in the given states.
    ListApplications(Vec<AppState>),
    /// Client: kill an application.
    Kill(AppId),
    /// Client: the queue tree.
    QueueStatus,
    /// Client: the NodeManagers.
    ListNodes,
    /// AM: register the attempt.
    RegisterMaster {
        /// The attempt.
        attempt: AttemptId,
        /// Its secret.
        token: u64,
        /// Where the master serves its clients (`IP:PORT`), shown in the application report.
        #[serde(default)]
        tracking_address: Option<String>,
    },
    /// AM: ask, release, and hear about containers.
    Allocate(Allocate),
    /// AM: start processes in containers it was allocated (the RM relays them to the NodeManagers).
    StartContainers {
        /// The attempt.
        attempt: AttemptId,
        /// Its secret.
        token: u64,
        /// What to run in which container.
        launches: Vec<(ContainerId, LaunchSpec)>,
    },
    /// AM: the application is over.
    FinishMaster {
        /// The attempt.
        attempt: AttemptId,
        /// Its secret.
        token: u64,
        /// Outcome.
        status: FinalStatus,
        /// Why.
        diagnostics: String,
    },
    /// NM: register.
    RegisterNode(RegisterNode),
    /// NM: heartbeat.
    NodeHeartbeat(NodeHeartbeat),
}

/// Responses of the ResourceManager service.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum RmResponse {
    /// The submitted application's id.
    Submitted(AppId),
    /// One application.
    Application(ApplicationReport),
    /// Several applications.
    Applications(Vec<ApplicationReport>),
    /// Request done.
    Done,
    /// The queue tree, parents before children.
    Queues(Vec<QueueReport>),
    /// NodeManagers.
    Nodes(Vec<NodeReport>),
    /// Master registered: the largest container the cluster can hold.
    MasterRegistered {
        /// Largest node capability.
        max_resource: Resource,
    },
    /// Allocate's answer.
    Allocation(Allocation),
    /// Node registered with this id.
    NodeRegistered {
        /// Id for heartbeats.
        node_id: u64,
    },
    /// Heartbeat's answer.
    NodeCommands(NodeCommands),
    /// The request failed.
    Error(YarnError),
}

/// Errors of the resource layer, carried over the wire as they are.
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize, Deserialize)]
pub enum YarnError {
    /// The caller may not do this (not the application's owner, or not a daemon).
    #[error("Permission denied: {0}")]
    PermissionDenied(String),
    /// No such queue, or not a leaf.
    #[error("unknown queue '{0}' (see `sheaf yarn queue status` for the leaf queues)")]
    UnknownQueue(String),
    /// A container larger than any node can hold.
    #[error("requested {asked} exceeds what any node can hold ({largest}) (ask for less)")]
    ResourceTooLarge {
        /// What was asked.
        asked: String,
        /// The largest possible.
        largest: String,
    },
    /// No such application.
    #[error("unknown application {0}")]
    UnknownApplication(String),
    /// The application is already over.
    #[error("application {app} is already {state}")]
    AlreadyFinal {
        /// The application.
        app: String,
        /// Its state.
        state: String,
    },
    /// A master call for an attempt that is not current or with a wrong token.
    #[error("attempt {0} is not the current master of its application (or its token is wrong)")]
    NotCurrentMaster(String),
    /// A NodeManager call from a node the RM does not know.
    #[error("unknown node {0} (register again)")]
    UnknownNode(u64),
    /// A malformed or invalid request.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The RM could not persist state.
    #[error("resourcemanager state store: {0}")]
    Store(String),
    /// A configuration problem.
    #[error("configuration: {0}")]
    Config(String),
    /// Talking to a daemon failed.
    #[error("{0}")]
    Rpc(String),
    /// The RM answered something that does not fit the request.
    #[error("unexpected answer from the resourcemanager: {0}")]
    Protocol(String),
}

impl From<sheaf_rpc::RpcError> for YarnError {
    fn from(e: sheaf_rpc::RpcError) -> Self {
        YarnError::Rpc(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_display_like_hadoop_and_parse_back() {
        let app = AppId {
            cluster_ts: 1764115200000,
            seq: 7,
        };
        assert_eq!(app.to_string(), "application_1764115200000_0007");
        assert_eq!(app.to_string().parse::<AppId>().unwrap(), app);
        assert!("app_1_2".parse::<AppId>().is_err());
        let c = ContainerId {
            attempt: AttemptId { app, attempt: 1 },
            seq: 42,
        };
        assert_eq!(c.to_string(), "container_1764115200000_0007_01_000042");
    }

    #[test]
    fn messages_round_trip_through_rmp_serde() {
        let err = RmResponse::Error(YarnError::UnknownQueue("nope".into()));
        let bytes = rmp_serde::to_vec(&err).unwrap();
        match rmp_serde::from_slice::<RmResponse>(&bytes).unwrap() {
            RmResponse::Error(YarnError::UnknownQueue(q)) => assert_eq!(q, "nope"),
            other => panic!("{other:?}"),
        }
    }
}
