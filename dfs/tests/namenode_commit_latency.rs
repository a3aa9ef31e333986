//! Benchmark (ignored by default): request latency of a NameNode under many small writes, to
//! see what an edit-log checkpoint costs the requests around it. Clients create and complete
//! thousands of empty files over real RPC; the log is checkpointed every few MiB so several
//! checkpoints happen during the run.
//!
//! ```sh
//! cargo nextest run -p sheaf-dfs --test namenode_commit_latency --run-ignored only --no-capture
//! ```
//! `SHEAF_BENCH_FILES` (default 20000), `SHEAF_BENCH_CLIENTS` (16) and
//! `SHEAF_BENCH_CHECKPOINT_BYTES` (2 MiB) change the run.

use sheaf_dfs::config::DfsConfig;
use sheaf_dfs::namenode::{self, Namenode};
use sheaf_dfs::protocol::{ClientRequest, NamenodeReply, NamenodeRequest, NamenodeResponse};
use sheaf_rpc::{quic, ClusterCa, RpcClient, TlsIdentity};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn call(client: &RpcClient, addr: SocketAddr, req: ClientRequest) -> Duration {
    let start = Instant::now();
    let r: NamenodeResponse = client
        .call(addr, &NamenodeRequest::Client(req))
        .await
        .expect("rpc");
    assert!(
        matches!(
            r,
            Ok(NamenodeReply::Created(_) | NamenodeReply::Completed(true))
        ),
        "{r:?}"
    );
    start.elapsed()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[test]
#[ignore = "benchmark: run explicitly (see the module doc)"]
fn commit_latency_under_many_small_writes() {
    let files = env_or("SHEAF_BENCH_FILES", 20_000);
    let clients = env_or("SHEAF_BENCH_CLIENTS", 16).max(1);
    let checkpoint_bytes = env_or("SHEAF_BENCH_CHECKPOINT_BYTES", 2 << 20);
    let root = tempfile::tempdir().unwrap();
    let mut cfg = DfsConfig::default();
    cfg.cluster.tls_dir = root.path().join("tls");
    cfg.namenode.data_dir = root.path().join("namenode");
    cfg.namenode.address = SocketAddr::new(LOCAL, 0);
    cfg.namenode.safemode_extension_ms = 0;
    cfg.namenode.checkpoint_log_bytes = checkpoint_bytes;
    ClusterCa::create_dir("bench", &cfg.cluster.tls_dir).unwrap();
    namenode::format(&cfg, false).unwrap();

    let rt = tokio::runtime::Runtime::new().unwrap();
    let (mut latencies, elapsed) = rt.block_on(async {
        let daemon = TlsIdentity::load(&cfg.cluster.tls_dir, "daemon").unwrap();
        let nn = Namenode::start(&cfg, daemon).await.unwrap();
        let addr = nn.local_addr();
        let user = TlsIdentity::load(&cfg.cluster.tls_dir, "user").unwrap();
        let client = Arc::new(RpcClient::new(quic::client_endpoint(LOCAL, &user).unwrap()));
        let start = Instant::now();
        let tasks: Vec<_> = (0..clients)
            .map(|c| {
                let client = client.clone();
                tokio::spawn(async move {
                    let mut lat = Vec::new();
                    let name = format!("bench-{c}");
                    for i in (c..files).step_by(clients as usize) {
                        let path = format!("/f{i}");
                        lat.push(
                            call(
                                &client,
                                addr,
                                ClientRequest::Create {
                                    path: path.clone(),
                                    overwrite: false,
                                    replication: 3,
                                    block_size: 1 << 20,
                                    client: name.clone(),
                                    client_host: None,
                                    mode: 0o644,
                                },
                            )
                            .await,
                        );
                        lat.push(
                            call(
                                &client,
                                addr,
                                ClientRequest::Complete {
                                    path,
                                    client: name.clone(),
                                    last: None,
                                },
                            )
                            .await,
                        );
                    }
                    lat
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        let elapsed = start.elapsed();
        nn.shutdown().await.unwrap();
        (all, elapsed)
    });
    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let slow = latencies
        .iter()
        .filter(|d| **d > Duration::from_millis(50))
        .count();
    println!(
        "namenode commit latency: {} requests ({files} files, {clients} clients, checkpoint every {} KiB) in {:.1} s: \
         p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms, {slow} requests over 50 ms",
        latencies.len(),
        checkpoint_bytes >> 10,
        elapsed.as_secs_f64(),
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.99)),
        ms(percentile(&latencies, 0.999)),
        ms(*latencies.last().unwrap()),
    );
}
