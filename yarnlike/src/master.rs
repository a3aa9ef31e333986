//! The application-master side of the RM protocol: what a process running in a master container
//! uses to register, ask for containers, start processes in them and finish.

use crate::client::{unexpected, RmClient};
use crate::protocol::*;
use crate::resourcemanager::state::env;
use sheaf_rpc::TlsIdentity;
use std::net::{IpAddr, SocketAddr};

/// A registered application master.
pub struct MasterClient {
    rm: RmClient,
    attempt: AttemptId,
    token: u64,
}

fn env_var(name: &str) -> Result<String, YarnError> {
    std::env::var(name).map_err(|_| {
        YarnError::Config(format!(
            "${name} is not set (not running in a master container?)"
        ))
    })
}

impl MasterClient {
    /// Builds the client from the environment the RM gives a master container.
    pub fn from_env(identity: &TlsIdentity, local_ip: IpAddr) -> Result<MasterClient, YarnError> {
        let addr: SocketAddr = env_var(env::RM_ADDRESS)?
            .parse()
            .map_err(|e| YarnError::Config(format!("${}: {e}", env::RM_ADDRESS)))?;
        let container: String = env_var(env::CONTAINER_ID)?;
        let app: AppId = env_var(env::APPLICATION_ID)?.parse()?;
        let attempt: u32 = env_var(env::ATTEMPT)?
            .parse()
            .map_err(|_| YarnError::Config(format!("${} is not a number", env::ATTEMPT)))?;
        let token: u64 = env_var(env::AM_TOKEN)?.parse().map_err(|_| {
            YarnError::Config(format!("${} is not a number ({container})", env::AM_TOKEN))
        })?;
        Ok(MasterClient {
            rm: RmClient::new(addr, identity, local_ip)?,
            attempt: AttemptId { app, attempt },
            token,
        })
    }

    /// This attempt.
    pub fn attempt(&self) -> AttemptId {
        self.attempt
    }

    /// Registers, giving the address where this master serves its clients (if it does), which
    /// the RM shows as the application's tracking address; returns the largest container the
    /// cluster can hold.
    pub async fn register(&self, tracking_address: Option<String>) -> Result<Resource, YarnError> {
        match self
            .rm
            .call(&RmRequest::RegisterMaster {
                attempt: self.attempt,
                token: self.token,
                tracking_address,
            })
            .await?
        {
            RmResponse::MasterRegistered { max_resource } => Ok(max_resource),
            other => Err(unexpected(other)),
        }
    }

    /// Asks, withdraws asks (by id: their unallocated remainder), releases, and waits up to
    /// `wait_ms` for news.
    pub async fn allocate(
        &self,
        asks: Vec<ContainerAsk>,
        cancel_asks: Vec<u64>,
        release: Vec<ContainerId>,
        wait_ms: u64,
    ) -> Result<Allocation, YarnError> {
        let req = Allocate {
            attempt: self.attempt,
            token: self.token,
            asks,
            cancel_asks,
            release,
            wait_ms,
        };
        match self.rm.call(&RmRequest::Allocate(req)).await? {
            RmResponse::Allocation(a) => Ok(a),
            other => Err(unexpected(other)),
        }
    }

    /// The NodeManagers as the RM sees them (hosts, racks, liveness, aux services).
    pub async fn nodes(&self) -> Result<Vec<NodeReport>, YarnError> {
        self.rm.nodes().await
    }

    /// Starts processes in allocated containers.
    pub async fn start(&self, launches: Vec<(ContainerId, LaunchSpec)>) -> Result<(), YarnError> {
        let req = RmRequest::StartContainers {
            attempt: self.attempt,
            token: self.token,
            launches,
        };
        match self.rm.call(&req).await? {
            RmResponse::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// Declares the application over.
    pub async fn finish(&self, status: FinalStatus, diagnostics: String) -> Result<(), YarnError> {
        let req = RmRequest::FinishMaster {
            attempt: self.attempt,
            token: self.token,
            status,
            diagnostics,
        };
        match self.rm.call(&req).await? {
            RmResponse::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }
}
