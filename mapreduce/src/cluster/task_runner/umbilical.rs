//! The task's line to its JobTracker (Hadoop's "umbilical"): typed calls over the cluster's
//! QUIC RPC, retried while the JobTracker is unreachable for up to a patience limit (it may be
//! busy or restarting), and the once-a-second progress heartbeat.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use quinn::Endpoint;
use sheaf_rpc::RpcClient;

use crate::cluster::protocol::{JtError, JtRequest, JtResponse, TaskAssignment};
use crate::counters::Counters;
use crate::jobtracker::{AttemptId, MapCompletionEvent};

use super::progress::TaskProgress;
use super::TaskRunnerError;

/// How long the JobTracker may stay unreachable before the task gives up (exits non-zero).
pub const DEFAULT_PATIENCE: Duration = Duration::from_secs(60);
/// Interval of the progress heartbeat.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);
/// Deadline of one call; a slower answer counts as unreachable and is retried.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// First wait between retries (doubled up to [`MAX_BACKOFF`]).
const INITIAL_BACKOFF: Duration = Duration::from_millis(200);
/// Longest wait between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// A page of map completion events.
#[derive(Debug, Clone)]
pub struct MapEventsPage {
    /// Events `from .. next`.
    pub events: Vec<MapCompletionEvent>,
    /// Index to ask from next time.
    pub next: u32,
}

/// The JobTracker client of one attempt.
pub struct Umbilical {
    rpc: RpcClient,
    jobtracker: SocketAddr,
    attempt: AttemptId,
    patience: Duration,
}

impl Umbilical {
    /// A client of the JobTracker at `jobtracker` for `attempt`, over `endpoint`.
    pub fn new(endpoint: Endpoint, jobtracker: SocketAddr, attempt: AttemptId) -> Self {
        let mut rpc = RpcClient::new(endpoint);
        rpc.call_timeout = CALL_TIMEOUT;
        Umbilical {
            rpc,
            jobtracker,
            attempt,
            patience: DEFAULT_PATIENCE,
        }
    }

    /// Replaces how long the JobTracker may stay unreachable (tests shorten it).
    pub fn with_patience(mut self, patience: Duration) -> Self {
        self.patience = patience;
        self
    }

    /// The attempt this client speaks for.
    pub fn attempt(&self) -> AttemptId {
        self.attempt
    }

    /// One request, retried until it is answered or the patience limit has passed. A
    /// JobTracker that answers `Internal` is retried too (it may recover, e.g. a DFS hiccup);
    /// when its error outlasts the patience the attempt ends with that error
    /// ([`TaskRunnerError::JobTracker`]), while one that stays silent is
    /// [`TaskRunnerError::JobTrackerLost`].
    async fn call(&self, request: &JtRequest) -> Result<JtResponse, TaskRunnerError> {
        let started = Instant::now();
        let mut backoff = INITIAL_BACKOFF;
        loop {
            let (failure, answered) = match self
                .rpc
                .call::<_, JtResponse>(self.jobtracker, request)
                .await
            {
                Ok(JtResponse::Error(JtError::Internal(reason))) => (reason, true),
                Ok(response) => return Ok(response),
                Err(e) => (e.to_string(), false),
            };
            if started.elapsed() >= self.patience {
                if answered {
                    return Err(TaskRunnerError::JobTracker(failure));
                }
                return Err(TaskRunnerError::JobTrackerLost {
                    address: self.jobtracker,
                    secs: started.elapsed().as_secs(),
                    last: failure,
                });
            }
            tracing::debug!(jobtracker = %self.jobtracker, %failure, "jobtracker call failed, retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Interprets the answer to a report: keep going or stop. An attempt the JobTracker does
    /// not know (it restarted, or gave up on this attempt) is not wanted either.
    fn proceed(&self, response: JtResponse) -> Result<bool, TaskRunnerError> {
        match response {
            JtResponse::Ack { proceed } => Ok(proceed),
            JtResponse::Error(JtError::UnknownAttempt(_)) => Ok(false),
            other => Err(unexpected(other)),
        }
    }

    /// What this attempt runs (`GetTask`); also tells the JobTracker the process started.
    pub async fn get_task(&self) -> Result<TaskAssignment, TaskRunnerError> {
        let response = self
            .call(&JtRequest::GetTask {
                attempt: self.attempt,
            })
            .await?;
        match response {
            JtResponse::Task(assignment) => {
                if assignment.attempt != self.attempt {
                    return Err(TaskRunnerError::JobTracker(format!(
                        "asked for attempt {} and got {}",
                        self.attempt, assignment.attempt
                    )));
                }
                Ok(*assignment)
            }
            JtResponse::Ack { proceed: false } => Err(TaskRunnerError::Stopped),
            JtResponse::Error(e) => Err(TaskRunnerError::JobTracker(format!(
                "no task for attempt {}: {e}",
                self.attempt
            ))),
            other => Err(unexpected(other)),
        }
    }

    /// Progress heartbeat (`alive`: the work moved since the last one); false when the
    /// attempt is no longer wanted.
    pub async fn progress(&self, progress: f64, alive: bool) -> Result<bool, TaskRunnerError> {
        let response = self
            .call(&JtRequest::Progress {
                attempt: self.attempt,
                progress,
                alive,
            })
            .await?;
        self.proceed(response)
    }

    /// A map of a job with reducers: its output is registered with `shuffle_address`.
    pub async fn map_output_ready(
        &self,
        shuffle_address: String,
        counters: Counters,
    ) -> Result<bool, TaskRunnerError> {
        let response = self
            .call(&JtRequest::MapOutputReady {
                attempt: self.attempt,
                shuffle_address,
                counters,
            })
            .await?;
        self.proceed(response)
    }

    /// A reduce or a map-only map: its output file is complete in its attempt directory.
    pub async fn output_ready(&self, counters: Counters) -> Result<bool, TaskRunnerError> {
        let response = self
            .call(&JtRequest::OutputReady {
                attempt: self.attempt,
                counters,
            })
            .await?;
        self.proceed(response)
    }

    /// The attempt failed, `reason` as the user should read it.
    pub async fn failed(&self, reason: String) -> Result<bool, TaskRunnerError> {
        let response = self
            .call(&JtRequest::Failed {
                attempt: self.attempt,
                reason,
            })
            .await?;
        self.proceed(response)
    }

    /// Reduce: map completion events from `from` on; [`TaskRunnerError::Stopped`] when the
    /// attempt is no longer wanted.
    pub async fn map_events(&self, from: u32) -> Result<MapEventsPage, TaskRunnerError> {
        let response = self
            .call(&JtRequest::MapEvents {
                reducer: self.attempt,
                from,
            })
            .await?;
        match response {
            JtResponse::MapEvents { proceed: false, .. } => Err(TaskRunnerError::Stopped),
            JtResponse::MapEvents { events, next, .. } => Ok(MapEventsPage { events, next }),
            JtResponse::Ack { proceed: false } | JtResponse::Error(JtError::UnknownAttempt(_)) => {
                Err(TaskRunnerError::Stopped)
            }
            other => Err(unexpected(other)),
        }
    }

    /// Reduce: the output of `map` could not be fetched.
    pub async fn fetch_failed(
        &self,
        map: AttemptId,
        reason: String,
    ) -> Result<bool, TaskRunnerError> {
        let response = self
            .call(&JtRequest::FetchFailed {
                reducer: self.attempt,
                map,
                reason,
            })
            .await?;
        self.proceed(response)
    }
}

fn unexpected(response: JtResponse) -> TaskRunnerError {
    match response {
        JtResponse::Error(e) => TaskRunnerError::JobTracker(e.to_string()),
        other => TaskRunnerError::JobTracker(format!("unexpected answer {other:?}")),
    }
}

/// Why the heartbeat ended the attempt early.
#[derive(Debug)]
pub enum HeartbeatStop {
    /// The JobTracker answered `proceed: false`.
    NotWanted,
    /// The JobTracker stayed unreachable (or answered nonsense).
    Lost(TaskRunnerError),
}

/// Sends `Progress` every [`HEARTBEAT_INTERVAL`] until the task is done (the caller aborts the
/// returned task) or the JobTracker says stop / is lost, which is handed to `on_stop`.
pub fn spawn_heartbeat(
    handle: &tokio::runtime::Handle,
    umbilical: Arc<Umbilical>,
    progress: Arc<TaskProgress>,
    on_stop: impl FnOnce(HeartbeatStop) + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    handle.spawn(async move {
        let mut tick = tokio::time::interval(HEARTBEAT_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match umbilical
                .progress(progress.fraction(), progress.take_activity())
                .await
            {
                Ok(true) => {}
                Ok(false) => return on_stop(HeartbeatStop::NotWanted),
                Err(e) => return on_stop(HeartbeatStop::Lost(e)),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobtracker::TaskId;
    use sheaf_rpc::service::{PeerInfo, RpcServer, Service, Shutdown};
    use sheaf_rpc::{quic, ClusterCa, TlsIdentity};
    use std::net::{IpAddr, Ipv4Addr};
    use std::sync::atomic::{AtomicU32, Ordering};

    const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    fn identity(dir: &std::path::Path) -> TlsIdentity {
        ClusterCa::create_dir("umbilical-test", dir).expect("CA");
        TlsIdentity::load(dir, "daemon").expect("identity")
    }

    fn attempt() -> AttemptId {
        AttemptId {
            task: TaskId::reduce(1),
            number: 0,
        }
    }

    /// Answers `Internal` twice, then acknowledges progress with `proceed: false`.
    struct Flaky {
        calls: AtomicU32,
    }

    impl Service for Flaky {
        type Request = JtRequest;
        type Response = JtResponse;
        async fn handle(self: Arc<Self>, req: JtRequest, _peer: PeerInfo) -> JtResponse {
            if self.calls.fetch_add(1, Ordering::Relaxed) < 2 {
                return JtResponse::Error(JtError::Internal("busy".into()));
            }
            match req {
                JtRequest::Progress { .. } => JtResponse::Ack { proceed: false },
                JtRequest::MapEvents { .. } => {
                    JtResponse::Error(JtError::UnknownAttempt("r".into()))
                }
                _ => JtResponse::Error(JtError::BadRequest("no".into())),
            }
        }
    }

    #[tokio::test]
    async fn internal_errors_are_retried_and_stop_answers_are_understood() {
        let dir = tempfile::tempdir().expect("tempdir");
        let id = identity(dir.path());
        let server = quic::server_endpoint(SocketAddr::new(LOCAL, 0), &id).expect("server");
        let addr = server.local_addr().expect("addr");
        let (_trigger, shutdown) = Shutdown::new();
        let flaky = Arc::new(Flaky {
            calls: AtomicU32::new(0),
        });
        tokio::spawn(RpcServer::serve(server, flaky.clone(), shutdown));
        let umbilical = Umbilical::new(
            quic::client_endpoint(LOCAL, &id).expect("client"),
            addr,
            attempt(),
        );
        assert!(
            !umbilical.progress(0.5, true).await.expect("answered"),
            "proceed: false"
        );
        assert_eq!(flaky.calls.load(Ordering::Relaxed), 3, "two retries");
        assert!(matches!(
            umbilical.map_events(0).await,
            Err(TaskRunnerError::Stopped)
        ));
        assert!(matches!(
            umbilical.get_task().await,
            Err(TaskRunnerError::JobTracker(_))
        ));
    }

    /// Always fails internally, like a JobTracker whose DFS is down.
    struct Broken;

    impl Service for Broken {
        type Request = JtRequest;
        type Response = JtResponse;
        async fn handle(self: Arc<Self>, _req: JtRequest, _peer: PeerInfo) -> JtResponse {
            JtResponse::Error(JtError::Internal(
                "cannot create the attempt directory".into(),
            ))
        }
    }

    #[tokio::test]
    async fn a_persistent_jobtracker_error_is_reported_as_such_not_as_unreachable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let id = identity(dir.path());
        let server = quic::server_endpoint(SocketAddr::new(LOCAL, 0), &id).expect("server");
        let addr = server.local_addr().expect("addr");
        let (_trigger, shutdown) = Shutdown::new();
        tokio::spawn(RpcServer::serve(server, Arc::new(Broken), shutdown));
        let umbilical = Umbilical::new(
            quic::client_endpoint(LOCAL, &id).expect("client"),
            addr,
            attempt(),
        )
        .with_patience(Duration::from_millis(600));
        let err = umbilical.get_task().await.expect_err("never served");
        assert!(
            matches!(&err, TaskRunnerError::JobTracker(m) if m.contains("cannot create the attempt directory")),
            "{err:?}"
        );
        assert!(!err.to_string().contains("unreachable"), "{err}");
        let err = umbilical
            .progress(0.3, true)
            .await
            .expect_err("never served");
        assert!(matches!(err, TaskRunnerError::JobTracker(_)), "{err:?}");
    }

    #[tokio::test]
    async fn an_unreachable_jobtracker_is_given_up_after_the_patience_limit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let id = identity(dir.path());
        // A bound UDP socket that never answers: calls time out instead of being refused.
        let silent = std::net::UdpSocket::bind(SocketAddr::new(LOCAL, 0)).expect("socket");
        let addr = silent.local_addr().expect("addr");
        let mut umbilical = Umbilical::new(
            quic::client_endpoint(LOCAL, &id).expect("client"),
            addr,
            attempt(),
        )
        .with_patience(Duration::from_millis(500));
        umbilical.rpc.connect_timeout = Duration::from_millis(300);
        let started = Instant::now();
        let lost = umbilical.progress(0.1, false).await;
        assert!(
            matches!(lost, Err(TaskRunnerError::JobTrackerLost { .. })),
            "{lost:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
