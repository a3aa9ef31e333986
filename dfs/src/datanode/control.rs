//! The DataNode's control RPC (QUIC): replica queries and finalization for lease recovery,
//! and block checksums for `dfs checksum`.

use super::DatanodeContext;
use crate::protocol::{DatanodeError, DatanodeReply, DatanodeRequest, DatanodeResponse};
use sheaf_rpc::{PeerInfo, Service};
use std::sync::Arc;

/// Serves [`DatanodeRequest`]s against the DataNode's block store.
pub struct ControlService {
    pub(crate) ctx: Arc<DatanodeContext>,
}

impl Service for ControlService {
    type Request = DatanodeRequest;
    type Response = DatanodeResponse;

    async fn handle(self: Arc<Self>, req: DatanodeRequest, peer: PeerInfo) -> DatanodeResponse {
        tracing::debug!(peer = %peer.addr, ?req, "control request");
        let ctx = &self.ctx;
        match req {
            DatanodeRequest::GetReplicaInfo { block } => ctx
                .store
                .replica(block)
                .map(|info| DatanodeReply::Replica {
                    block: info.block,
                    state: info.state,
                })
                .ok_or(DatanodeError::ReplicaNotFound(block)),
            DatanodeRequest::FinalizeRecovered {
                block,
                new_gen,
                len,
            } => ctx
                .finalize_recovered(block, new_gen, len)
                .await
                .map(|_| DatanodeReply::Done),
            DatanodeRequest::BlockChecksum { block } => {
                let store = ctx.store.clone();
                match tokio::task::spawn_blocking(move || store.checksum(block)).await {
                    Ok(Ok((bytes_per_crc, crc_count, digest))) => Ok(DatanodeReply::Checksum {
                        bytes_per_crc,
                        crc_count,
                        digest,
                    }),
                    Ok(Err(e)) => Err(e.into()),
                    Err(e) => Err(DatanodeError::Storage(format!("checksum task failed: {e}"))),
                }
            }
        }
    }
}
