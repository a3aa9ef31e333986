//! The client of a NodeManager's shuffle service: a map task registers its finished output with
//! the service on its node, and the JobTracker removes a finished job from every service that
//! served it. Both calls are idempotent, so transient failures are retried.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use sheaf_rpc::{quic, RetryPolicy, RpcClient, TlsIdentity};

use crate::task::run_file::SegmentIndexEntry;

use super::error::ShuffleError;
use super::protocol::{JobSecret, MapAttemptId, ServiceReply, ShuffleRequest};

/// Deadline for reaching a shuffle service (it runs on the caller's own node or a live one).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Deadline of one registration (the service resolves the path and stats the file).
pub const REGISTER_TIMEOUT: Duration = Duration::from_secs(20);
/// Deadline of one removal (the service deletes the job's files).
pub const REMOVE_TIMEOUT: Duration = Duration::from_secs(60);

/// Calls shuffle services over QUIC with the cluster's mutual TLS. One client caches one
/// connection per service; share it (`&self` methods) rather than creating one per call.
pub struct ShuffleServiceClient {
    rpc: RpcClient,
    retry: RetryPolicy,
}

impl ShuffleServiceClient {
    /// A client with an endpoint on `local_ip` presenting `identity`. Must be called inside a
    /// tokio runtime.
    pub fn new(identity: &TlsIdentity, local_ip: IpAddr) -> Result<Self, ShuffleError> {
        let mut rpc = RpcClient::new(quic::client_endpoint(local_ip, identity)?);
        rpc.connect_timeout = CONNECT_TIMEOUT;
        Ok(ShuffleServiceClient {
            rpc,
            retry: RetryPolicy {
                attempts: 3,
                initial_backoff: Duration::from_millis(200),
                max_backoff: Duration::from_secs(2),
            },
        })
    }

    /// Replaces the retry policy of transient failures (default: 3 attempts, 200 ms backoff).
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Registers the output of `map_attempt` of `job_id` with the shuffle service at `addr`:
    /// `path` is the data file (under `$SHEAF_SHUFFLE_DIR/<job_id>/`), `index` its partition
    /// index. The first registration of a job on a node makes `secret` the job's secret there.
    /// A refusal is [`ShuffleError::Refused`] with the service's reason.
    pub async fn register_map_output(
        &self,
        addr: SocketAddr,
        job_id: &str,
        secret: &JobSecret,
        map_attempt: MapAttemptId,
        path: &Path,
        index: &[SegmentIndexEntry],
    ) -> Result<(), ShuffleError> {
        let request = ShuffleRequest::RegisterMapOutput {
            job_id: job_id.to_string(),
            secret: secret.as_bytes().to_vec(),
            map_attempt,
            path: path.to_path_buf(),
            index: index.to_vec(),
        };
        match self.call(addr, &request, REGISTER_TIMEOUT).await? {
            ServiceReply::Registered => Ok(()),
            ServiceReply::Refused { reason } => Err(ShuffleError::Refused { addr, reason }),
            other => Err(unexpected(addr, &other)),
        }
    }

    /// Tells the shuffle service at `addr` that `job_id` is over: it forgets the job and deletes
    /// its map outputs. Returns the number of map-output files deleted (0 when the job was
    /// never registered there or was removed before).
    pub async fn remove_job(
        &self,
        addr: SocketAddr,
        job_id: &str,
        secret: &JobSecret,
    ) -> Result<u64, ShuffleError> {
        let request = ShuffleRequest::RemoveJob {
            job_id: job_id.to_string(),
            mac: secret.sign_removal(job_id),
        };
        match self.call(addr, &request, REMOVE_TIMEOUT).await? {
            ServiceReply::Removed { files } => Ok(files),
            ServiceReply::Refused { reason } => Err(ShuffleError::Refused { addr, reason }),
            other => Err(unexpected(addr, &other)),
        }
    }

    /// One call, retried on transient failures (both requests are idempotent).
    async fn call(
        &self,
        addr: SocketAddr,
        request: &ShuffleRequest,
        deadline: Duration,
    ) -> Result<ServiceReply, ShuffleError> {
        let reply = self
            .retry
            .run(|| self.rpc.call_within(addr, request, deadline))
            .await?;
        Ok(reply)
    }

    /// Closes the client's endpoint (calls in flight fail).
    pub fn close(&self) {
        self.rpc
            .endpoint()
            .close(0u32.into(), b"shuffle service client closed");
    }
}

fn unexpected(addr: SocketAddr, reply: &ServiceReply) -> ShuffleError {
    ShuffleError::Refused {
        addr,
        reason: format!("unexpected reply {reply:?}"),
    }
}
