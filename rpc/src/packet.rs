//! Checksummed data packets, the unit of every bulk transfer (block writes, block reads).
//!
//! Wire layout, big-endian: `seqno u64 | offset u64 | flags u8 | len u32 | payload | crc32 per
//! CHUNK of payload`. The per-chunk checksums are the very ones a DataNode stores in its
//! `.meta` file, so a replica is verified end to end without recomputing on receipt paths that
//! only forward.

use crate::RpcError;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Checksum granularity: one crc32 per this many payload bytes.
pub const CHUNK: usize = 64 * 1024;
/// Largest payload a packet may carry.
pub const MAX_PAYLOAD: usize = 4 << 20;
const HEADER_LEN: usize = 8 + 8 + 1 + 4;
const FLAG_LAST: u8 = 1;

/// The fixed part of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketHeader {
    /// Position of the packet in its stream, from 0.
    pub seqno: u64,
    /// Byte offset of the payload within the block.
    pub offset: u64,
    /// True for the final packet of a stream (it may be empty).
    pub last: bool,
    /// Payload length in bytes.
    pub len: u32,
}

/// The crc32 of each [`CHUNK`] of `data`.
pub fn chunk_checksums(data: &[u8]) -> Vec<u32> {
    data.chunks(CHUNK).map(crc32fast::hash).collect()
}

/// Writes one packet, computing its chunk checksums.
pub async fn write_packet<W: AsyncWrite + Unpin>(
    w: &mut W,
    seqno: u64,
    offset: u64,
    last: bool,
    payload: &[u8],
) -> Result<(), RpcError> {
    let crcs = chunk_checksums(payload);
    write_packet_with_checksums(w, seqno, offset, last, payload, &crcs).await
}

/// Writes one packet with checksums already known (forwarding, or read from a `.meta` file).
pub async fn write_packet_with_checksums<W: AsyncWrite + Unpin>(
    w: &mut W,
    seqno: u64,
    offset: u64,
    last: bool,
    payload: &[u8],
    crcs: &[u32],
) -> Result<(), RpcError> {
    if payload.len() > MAX_PAYLOAD {
        return Err(RpcError::FrameTooLarge(payload.len(), MAX_PAYLOAD));
    }
    let mut head = [0u8; HEADER_LEN];
    head[0..8].copy_from_slice(&seqno.to_be_bytes());
    head[8..16].copy_from_slice(&offset.to_be_bytes());
    head[16] = if last { FLAG_LAST } else { 0 };
    head[17..21].copy_from_slice(&(payload.len() as u32).to_be_bytes());
    let mut tail = Vec::with_capacity(crcs.len() * 4);
    for c in crcs {
        tail.extend_from_slice(&c.to_be_bytes());
    }
    w.write_all(&head).await?;
    w.write_all(payload).await?;
    w.write_all(&tail).await?;
    Ok(())
}

/// A received packet: header, payload and its verified chunk checksums.
#[derive(Debug, Default)]
pub struct Packet {
    /// The header, if a packet was read.
    pub header: Option<PacketHeader>,
    /// The payload bytes.
    pub payload: Vec<u8>,
    /// One crc32 per chunk of the payload.
    pub checksums: Vec<u32>,
}

/// Reads the next packet into `into` (reusing its buffers) and verifies every chunk.
/// Returns `Ok(false)` on a clean end of stream.
pub async fn read_packet<R: AsyncRead + Unpin>(
    r: &mut R,
    into: &mut Packet,
) -> Result<bool, RpcError> {
    let mut head = [0u8; HEADER_LEN];
    let mut got = 0;
    while got < HEADER_LEN {
        let n = r.read(&mut head[got..]).await?;
        if n == 0 {
            return if got == 0 {
                Ok(false)
            } else {
                Err(RpcError::UnexpectedEof)
            };
        }
        got += n;
    }
    let header = PacketHeader {
        seqno: u64::from_be_bytes(head[0..8].try_into().unwrap_or_default()),
        offset: u64::from_be_bytes(head[8..16].try_into().unwrap_or_default()),
        last: head[16] & FLAG_LAST != 0,
        len: u32::from_be_bytes(head[17..21].try_into().unwrap_or_default()),
    };
    let len = header.len as usize;
    if len > MAX_PAYLOAD {
        return Err(RpcError::FrameTooLarge(len, MAX_PAYLOAD));
    }
    into.payload.resize(len, 0);
    read_exact(r, &mut into.payload).await?;
    let n_chunks = len.div_ceil(CHUNK);
    let mut tail = vec![0u8; n_chunks * 4];
    read_exact(r, &mut tail).await?;
    into.checksums.clear();
    for (i, (chunk, crc)) in into
        .payload
        .chunks(CHUNK)
        .zip(tail.chunks_exact(4))
        .enumerate()
    {
        let expected = u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]);
        if crc32fast::hash(chunk) != expected {
            tracing::warn!(seqno = header.seqno, chunk = i, "packet checksum mismatch");
            return Err(RpcError::PacketChecksum {
                seqno: header.seqno,
            });
        }
        into.checksums.push(expected);
    }
    into.header = Some(header);
    Ok(true)
}

async fn read_exact<R: AsyncRead + Unpin>(r: &mut R, buf: &mut [u8]) -> Result<(), RpcError> {
    r.read_exact(buf).await.map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => RpcError::UnexpectedEof,
        _ => RpcError::Io(e),
    })?;
    Ok(())
}

/// Flushes a writer (after the last packet or an ack batch).
pub async fn flush<W: AsyncWrite + Unpin>(w: &mut W) -> Result<(), RpcError> {
    w.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn packets_round_trip_with_chunk_checksums() {
        let data: Vec<u8> = (0..(CHUNK * 2 + 17)).map(|i| (i * 7) as u8).collect();
        let mut wire = Vec::new();
        write_packet(&mut wire, 0, 0, false, &data).await.unwrap();
        write_packet(&mut wire, 1, data.len() as u64, true, &[])
            .await
            .unwrap();
        let mut r = &wire[..];
        let mut p = Packet::default();
        assert!(read_packet(&mut r, &mut p).await.unwrap());
        assert_eq!(p.payload, data);
        assert_eq!(p.checksums.len(), 3);
        assert_eq!(p.header.unwrap().seqno, 0);
        assert!(read_packet(&mut r, &mut p).await.unwrap());
        assert!(p.header.unwrap().last);
        assert!(p.payload.is_empty());
        assert!(!read_packet(&mut r, &mut p).await.unwrap());
    }

    #[tokio::test]
    async fn a_flipped_payload_byte_is_detected() {
        let data = vec![42u8; 1000];
        let mut wire = Vec::new();
        write_packet(&mut wire, 5, 0, true, &data).await.unwrap();
        wire[HEADER_LEN + 500] ^= 0x01;
        let mut r = &wire[..];
        let mut p = Packet::default();
        assert!(matches!(
            read_packet(&mut r, &mut p).await,
            Err(RpcError::PacketChecksum { seqno: 5 })
        ));
    }
}
