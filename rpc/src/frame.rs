//! Length-prefixed frames: `u32` big-endian length, then the rmp-serde encoding of a typed
//! message. Used for every control message and for the headers of bulk streams.

use crate::RpcError;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest control frame accepted; bulk data travels in packets, never in frames.
pub const MAX_FRAME_LEN: usize = 64 << 20;

/// Encodes `msg` into a frame (length prefix included).
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, RpcError> {
    let mut buf = vec![0u8; 4];
    rmp_serde::encode::write(&mut buf, msg).map_err(|e| RpcError::Codec(e.to_string()))?;
    let len = buf.len() - 4;
    if len > MAX_FRAME_LEN {
        return Err(RpcError::FrameTooLarge(len, MAX_FRAME_LEN));
    }
    buf[..4].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(buf)
}

/// Decodes a frame body (without its length prefix).
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, RpcError> {
    rmp_serde::from_slice(body).map_err(|e| RpcError::Codec(e.to_string()))
}

/// Writes one frame.
pub async fn write_frame<W: AsyncWrite + Unpin, T: Serialize>(
    w: &mut W,
    msg: &T,
) -> Result<(), RpcError> {
    let buf = encode(msg)?;
    w.write_all(&buf).await?;
    Ok(())
}

/// Reads one frame; `Ok(None)` on a clean end of stream before the first byte.
pub async fn read_frame<R: AsyncRead + Unpin, T: DeserializeOwned>(
    r: &mut R,
) -> Result<Option<T>, RpcError> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        let n = r.read(&mut len[got..]).await?;
        if n == 0 {
            return if got == 0 {
                Ok(None)
            } else {
                Err(RpcError::UnexpectedEof)
            };
        }
        got += n;
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME_LEN {
        return Err(RpcError::FrameTooLarge(len, MAX_FRAME_LEN));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await.map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => RpcError::UnexpectedEof,
        _ => RpcError::Io(e),
    })?;
    decode(&body).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    enum Msg {
        Ping(u64),
        Put { path: String, data: Vec<u8> },
    }

    #[tokio::test]
    async fn frames_round_trip_and_eof_is_distinguished() {
        let mut buf = Vec::new();
        write_frame(&mut buf, &Msg::Ping(7)).await.unwrap();
        write_frame(
            &mut buf,
            &Msg::Put {
                path: "/a".into(),
                data: vec![1, 2, 3],
            },
        )
        .await
        .unwrap();
        let mut r = &buf[..];
        assert_eq!(
            read_frame::<_, Msg>(&mut r).await.unwrap(),
            Some(Msg::Ping(7))
        );
        assert_eq!(
            read_frame::<_, Msg>(&mut r).await.unwrap(),
            Some(Msg::Put {
                path: "/a".into(),
                data: vec![1, 2, 3]
            })
        );
        assert_eq!(read_frame::<_, Msg>(&mut r).await.unwrap(), None);
        let truncated = &buf[..buf.len() - 1];
        let mut r = truncated;
        read_frame::<_, Msg>(&mut r).await.unwrap();
        assert!(matches!(
            read_frame::<_, Msg>(&mut r).await,
            Err(RpcError::UnexpectedEof)
        ));
    }

    #[tokio::test]
    async fn oversized_length_is_refused_without_allocating() {
        let bytes = (u32::MAX).to_be_bytes();
        let mut r = &bytes[..];
        assert!(matches!(
            read_frame::<_, Msg>(&mut r).await,
            Err(RpcError::FrameTooLarge(..))
        ));
    }
}
