//! The `sheaf sql` side of a cluster session: submits the session as a yarnlike application
//! whose master is `sheaf sql-master`, waits for the master to register, then sends statements
//! and polls for their progress and rows.

use super::cluster_err;
use super::protocol::{QmRequest, QmResponse, WireOutcome};
use crate::error::{SqlError, SqlResult};
use crate::executor::StageProgress;
use crate::session::StatementOutcome;
use sheaf_mapreduce::cluster::client::client_ip_for;
use sheaf_rpc::{quic, RpcClient, TlsIdentity};
use sheaf_yarn::client::RmClient;
use sheaf_yarn::protocol::{AppId, AppState, LaunchSpec, Resource, SubmitApplication};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How long the master may take to start and register.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// How to start a cluster session.
#[derive(Debug, Clone)]
pub struct ClusterSessionOptions {
    /// The ResourceManager.
    pub resourcemanager: SocketAddr,
    /// The submitting user.
    pub user: String,
    /// The queue.
    pub queue: String,
    /// The session's settings (`-D`), passed to the master.
    pub settings: Vec<(String, String)>,
    /// The `sheaf` binary the containers run.
    pub sheaf_binary: PathBuf,
    /// The master container's size.
    pub master_resource: Resource,
}

impl ClusterSessionOptions {
    /// A session of `user` in the default queue, its master in a 1 GB, 1-vcore container.
    pub fn new(
        resourcemanager: SocketAddr,
        user: String,
        settings: Vec<(String, String)>,
        sheaf_binary: PathBuf,
    ) -> ClusterSessionOptions {
        ClusterSessionOptions {
            resourcemanager,
            user,
            queue: "default".into(),
            settings,
            sheaf_binary,
            master_resource: Resource {
                memory_mb: 1024,
                vcores: 1,
            },
        }
    }
}

/// A running cluster session.
pub struct ClusterSqlClient {
    rm: RmClient,
    rpc: RpcClient,
    app: AppId,
    master: SocketAddr,
    token: Vec<u8>,
    /// Statements sent so far (the next one's number is one more).
    sent: std::sync::atomic::AtomicU64,
}

impl ClusterSqlClient {
    /// Submits the session and waits for its master.
    pub async fn start(
        identity: &TlsIdentity,
        options: ClusterSessionOptions,
    ) -> SqlResult<ClusterSqlClient> {
        let local_ip = client_ip_for(options.resourcemanager);
        let rm = RmClient::new(options.resourcemanager, identity, local_ip)
            .map_err(|e| cluster_err("ResourceManager client", e))?;
        let token = super::new_token();
        let mut command = vec![
            options.sheaf_binary.display().to_string(),
            super::MASTER_COMMAND.to_string(),
            "--user".to_string(),
            options.user.clone(),
        ];
        for (k, v) in &options.settings {
            command.push("--setting".into());
            command.push(format!("{k}={v}"));
        }
        let mut env = BTreeMap::new();
        env.insert(super::env::CLIENT_TOKEN.to_string(), super::to_hex(&token));
        let app = rm
            .submit(SubmitApplication {
                name: format!("{} sheaf-sql", super::APPLICATION_NAME_PREFIX),
                user: options.user.clone(),
                queue: options.queue.clone(),
                am_resource: options.master_resource,
                am_spec: LaunchSpec {
                    command,
                    env,
                    ..LaunchSpec::default()
                },
                max_attempts: 1,
            })
            .await
            .map_err(|e| {
                SqlError::Cluster(format!(
                    "submitting the SQL session to the ResourceManager at {}: {e} (is the cluster running? scripts/start-all.sh starts one; --local runs every stage in this process)",
                    options.resourcemanager
                ))
            })?;
        let started = Instant::now();
        let master = loop {
            let report = rm
                .application(app)
                .await
                .map_err(|e| cluster_err("asking for the session's application", e))?;
            if report.state.is_final() {
                return Err(SqlError::Cluster(format!(
                    "the SQL session {app} ended before it started: {} ({})",
                    report.diagnostics, report.state
                )));
            }
            if report.state == AppState::Running {
                if let Some(addr) = report
                    .tracking_address
                    .as_deref()
                    .and_then(|a| a.parse().ok())
                {
                    break addr;
                }
            }
            if started.elapsed() > START_TIMEOUT {
                let _ = rm.kill(app).await;
                return Err(SqlError::Cluster(format!(
                    "the SQL session {app} did not start within {} s (is the cluster busy? see sheaf yarn app status {app})",
                    START_TIMEOUT.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let endpoint = quic::client_endpoint(local_ip, identity)
            .map_err(|e| cluster_err("client endpoint", e))?;
        let mut rpc = RpcClient::new(endpoint);
        rpc.call_timeout = Duration::from_secs(15);
        Ok(ClusterSqlClient {
            rm,
            rpc,
            app,
            master,
            token,
            sent: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// The session's application.
    pub fn application(&self) -> AppId {
        self.app
    }

    async fn call(&self, req: &QmRequest) -> SqlResult<QmResponse> {
        let mut tries = 0;
        loop {
            match self.rpc.call::<_, QmResponse>(self.master, req).await {
                Ok(QmResponse::Refused(why)) => return Err(SqlError::Cluster(why)),
                Ok(r) => return Ok(r),
                // Every request is safe to repeat (a poll's outcome stays until the next statement).
                Err(e) if e.is_transient() && tries < 3 => {
                    tracing::warn!(error = %e, "query master call failed; retrying");
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                Err(e) => {
                    let why = match self.rm.application(self.app).await {
                        Ok(r) if r.state.is_final() => format!(
                            "the SQL session {} ended: {} ({})",
                            self.app, r.diagnostics, r.state
                        ),
                        _ => format!("the query master of {} stopped answering: {e}", self.app),
                    };
                    return Err(SqlError::Cluster(why));
                }
            }
        }
    }

    /// Runs one statement on the cluster.
    pub async fn execute(
        &self,
        statement: &str,
        progress: &(dyn Fn(StageProgress) + Send + Sync),
    ) -> SqlResult<StatementOutcome> {
        // Counted once started: a statement the master never got keeps its number.
        let seq = self.sent.load(std::sync::atomic::Ordering::SeqCst) + 1;
        let id = match self
            .call(&QmRequest::Execute {
                token: self.token.clone(),
                seq,
                statement: statement.to_string(),
            })
            .await?
        {
            QmResponse::Started { id } => {
                self.sent.store(seq, std::sync::atomic::Ordering::SeqCst);
                id
            }
            other => return Err(SqlError::Cluster(format!("unexpected answer {other:?}"))),
        };
        loop {
            match self
                .call(&QmRequest::Poll {
                    token: self.token.clone(),
                    id,
                })
                .await?
            {
                QmResponse::Running(stages) => {
                    // The stage in flight: the first one not done, else the last.
                    if let Some(p) = stages.iter().find(|p| p.done < p.total).or(stages.last()) {
                        progress(*p);
                    }
                }
                QmResponse::Outcome(WireOutcome::Rows { ipc, stages }) => {
                    let (schema, batches) = super::decode_rows(&ipc)?;
                    return Ok(StatementOutcome::Rows {
                        schema,
                        batches,
                        stages,
                    });
                }
                QmResponse::Outcome(WireOutcome::Done(msg)) => {
                    return Ok(StatementOutcome::Done(msg))
                }
                QmResponse::Outcome(WireOutcome::Failed(msg)) => {
                    return Err(SqlError::Cluster(msg))
                }
                other => return Err(SqlError::Cluster(format!("unexpected answer {other:?}"))),
            }
        }
    }

    /// Ends the session: the master stops its executors and finishes the application.
    pub async fn close(self) -> SqlResult<()> {
        self.call(&QmRequest::Close {
            token: self.token.clone(),
        })
        .await?;
        // Wait (briefly) for the application to end, so a script's next command sees it done.
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            match self.rm.application(self.app).await {
                Ok(r) if r.state.is_final() => break,
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        Ok(())
    }
}
