//! `sheaf bench transport`: the measurement behind the choice of block-data transport
//! (ARCHITECTURE.md). Sends the same bytes over plain TCP (the ceiling), TLS-over-TCP and tuned
//! QUIC, all with the cluster's mutual TLS where TLS applies, in one run on loopback.

use anyhow::Context;
use sheaf_rpc::{BulkConnector, BulkListener, BulkTransport, ClusterCa, TlsIdentity};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Arguments of `sheaf bench transport`.
#[derive(clap::Args)]
pub struct TransportBenchArgs {
    /// Bytes to send per transport and stream count (e.g. 1073741824).
    #[arg(long, default_value_t = 1 << 30)]
    bytes: u64,
    /// Parallel streams in the second round.
    #[arg(long, default_value_t = 4)]
    streams: usize,
}

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const BUF: usize = 1 << 20;

/// Runs the benchmark and prints one line per (transport, streams).
pub fn run(args: TransportBenchArgs) -> anyhow::Result<()> {
    let rt = super::runtime::runtime(super::runtime::Workload::Serving)?;
    rt.block_on(async move {
        let dir = tempfile_dir()?;
        ClusterCa::create_dir("bench", &dir).context("creating a throwaway CA")?;
        let daemon = TlsIdentity::load(&dir, "daemon")?;
        let user = TlsIdentity::load(&dir, "user")?;
        println!(
            "transport        streams  MB/s   (loopback, {} MB per run, MB = 10^6 bytes)",
            args.bytes / 1_000_000
        );
        let mut results = Vec::new();
        for streams in [1, args.streams.max(1)] {
            let tcp = plain_tcp(args.bytes, streams).await?;
            println!("plain TCP        {streams:>7}  {tcp:>6.0}");
            let tls = bulk(BulkTransport::Tcp, &daemon, &user, args.bytes, streams).await?;
            println!("TLS over TCP     {streams:>7}  {tls:>6.0}");
            let quic = bulk(BulkTransport::Quic, &daemon, &user, args.bytes, streams).await?;
            println!("QUIC (tuned)     {streams:>7}  {quic:>6.0}");
            results.push((streams, tcp, tls, quic));
        }
        for (streams, tcp, tls, quic) in results {
            println!(
                "{streams} stream(s): TLS/TCP = {:.2}x QUIC, {:.0}% of plain TCP",
                tls / quic.max(f64::MIN_POSITIVE),
                100.0 * tls / tcp.max(f64::MIN_POSITIVE)
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    })
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("sheaf-bench-transport-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    Ok(dir)
}

fn mb_per_s(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / 1e6 / elapsed.as_secs_f64().max(1e-9)
}

async fn plain_tcp(bytes: u64, streams: usize) -> anyhow::Result<f64> {
    let listener = tokio::net::TcpListener::bind(SocketAddr::new(LOCAL, 0)).await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        let mut tasks = Vec::new();
        for _ in 0..streams {
            let (mut s, _) = listener.accept().await?;
            tasks.push(tokio::spawn(async move {
                let mut buf = vec![0u8; BUF];
                while s.read(&mut buf).await? > 0 {}
                s.write_all(b"k").await?;
                Ok::<_, std::io::Error>(())
            }));
        }
        for t in tasks {
            t.await??;
        }
        Ok::<_, anyhow::Error>(())
    });
    let start = Instant::now();
    let per = bytes / streams as u64;
    let mut senders = Vec::new();
    for _ in 0..streams {
        senders.push(tokio::spawn(async move {
            let mut s = tokio::net::TcpStream::connect(addr).await?;
            send(&mut s, per).await?;
            s.shutdown().await?;
            let mut k = [0u8; 1];
            s.read_exact(&mut k).await?;
            Ok::<_, std::io::Error>(())
        }));
    }
    for s in senders {
        s.await??;
    }
    let elapsed = start.elapsed();
    server.await??;
    Ok(mb_per_s(per * streams as u64, elapsed))
}

async fn send<W: tokio::io::AsyncWrite + Unpin>(w: &mut W, bytes: u64) -> std::io::Result<()> {
    let buf: Vec<u8> = (0..BUF).map(|i| (i * 31 % 251) as u8).collect();
    let mut left = bytes;
    while left > 0 {
        let n = left.min(BUF as u64) as usize;
        w.write_all(&buf[..n]).await?;
        left -= n as u64;
    }
    Ok(())
}

async fn bulk(
    transport: BulkTransport,
    daemon: &TlsIdentity,
    user: &TlsIdentity,
    bytes: u64,
    streams: usize,
) -> anyhow::Result<f64> {
    let listener = BulkListener::bind(transport, SocketAddr::new(LOCAL, 0), daemon).await?;
    let addr = listener.local_addr();
    let server = tokio::spawn(async move {
        let mut tasks = Vec::new();
        for _ in 0..streams {
            let mut s = listener.accept().await.context("listener closed")?;
            tasks.push(tokio::spawn(async move {
                let mut buf = vec![0u8; BUF];
                while s.reader.read(&mut buf).await? > 0 {}
                s.writer.write_all(b"k").await?;
                s.writer.shutdown().await?;
                Ok::<_, std::io::Error>(())
            }));
        }
        for t in tasks {
            t.await??;
        }
        Ok::<_, anyhow::Error>(())
    });
    let connector = std::sync::Arc::new(BulkConnector::new(transport, user, LOCAL)?);
    let per = bytes / streams as u64;
    let start = Instant::now();
    let mut senders = Vec::new();
    for _ in 0..streams {
        let connector = connector.clone();
        senders.push(tokio::spawn(async move {
            let mut s = connector.connect(addr).await?;
            send(&mut s.writer, per).await?;
            s.writer.shutdown().await?;
            let mut k = [0u8; 1];
            s.reader.read_exact(&mut k).await?;
            Ok::<_, anyhow::Error>(())
        }));
    }
    for s in senders {
        s.await??;
    }
    let elapsed = start.elapsed();
    server.await??;
    Ok(mb_per_s(per * streams as u64, elapsed))
}
