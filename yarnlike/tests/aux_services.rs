//! An in-process ResourceManager and NodeManager over real QUIC on loopback: a service hosted by
//! the NodeManager is started with it and advertised to clients through the RM.

use sheaf_rpc::service::Shutdown;
use sheaf_rpc::{ClusterCa, TlsIdentity};
use sheaf_yarn::client::RmClient;
use sheaf_yarn::config::{NodeManagerConfig, ResourceManagerConfig, YarnConfig};
use sheaf_yarn::nodemanager::aux_service::AuxService;
use sheaf_yarn::nodemanager::daemon::NodeManagerSetup;
use sheaf_yarn::protocol::YarnError;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A toy service: greets every TCP connection.
struct Greeter;

impl AuxService for Greeter {
    fn name(&self) -> &str {
        "greeter"
    }
    fn start(&self, host: IpAddr) -> Result<String, YarnError> {
        let listener =
            std::net::TcpListener::bind((host, 0)).map_err(|e| YarnError::Config(e.to_string()))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| YarnError::Config(e.to_string()))?;
        let addr = listener
            .local_addr()
            .map_err(|e| YarnError::Config(e.to_string()))?;
        let listener = tokio::net::TcpListener::from_std(listener)
            .map_err(|e| YarnError::Config(e.to_string()))?;
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let _ = s.write_all(b"hello from the nodemanager").await;
            }
        });
        Ok(addr.to_string())
    }
}

fn free_udp_port(ip: IpAddr) -> u16 {
    std::net::UdpSocket::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aux_service_starts_with_the_nodemanager_and_is_advertised_by_the_rm() {
    let dir = tempfile::tempdir().unwrap();
    let tls = dir.path().join("tls");
    ClusterCa::create_dir("aux", &tls).unwrap();
    let daemon = TlsIdentity::load(&tls, "daemon").unwrap();
    let user = TlsIdentity::load(&tls, "user").unwrap();
    let local = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let rm_addr = SocketAddr::new(local, free_udp_port(local));
    let rm_cfg = ResourceManagerConfig {
        address: rm_addr,
        state_dir: dir.path().join("rm"),
        ..ResourceManagerConfig::default()
    };
    let (trigger, shutdown) = Shutdown::new();
    let rm = tokio::spawn(sheaf_yarn::resourcemanager::daemon::run(
        rm_cfg,
        YarnConfig::default(),
        daemon.clone(),
        shutdown.clone(),
    ));
    let setup = NodeManagerSetup {
        config: NodeManagerConfig {
            host: local,
            memory_mb: 1024,
            vcores: 2,
            local_dir: dir.path().join("local"),
            log_dir: dir.path().join("logs"),
            heartbeat_interval_ms: 200,
            kill_grace_ms: 100,
            ..NodeManagerConfig::default()
        },
        rack: "/r9".into(),
        rm_address: rm_addr,
        identity: daemon,
        container_env: BTreeMap::new(),
        aux_services: vec![Arc::new(Greeter)],
        dfs: None,
    };
    let nm = tokio::spawn(sheaf_yarn::nodemanager::daemon::run(setup, shutdown));
    let client = RmClient::new(rm_addr, &user, local).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let node = loop {
        if let Ok(nodes) = client.nodes().await {
            if let Some(n) = nodes.into_iter().next() {
                break n;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the nodemanager never registered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        (node.rack.as_str(), node.capability.memory_mb),
        ("/r9", 1024)
    );
    let addr = node
        .aux_services
        .get("greeter")
        .expect("advertised")
        .clone();
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut greeting = String::new();
    s.read_to_string(&mut greeting).await.unwrap();
    assert_eq!(greeting, "hello from the nodemanager");
    trigger.trigger();
    tokio::time::timeout(Duration::from_secs(10), async {
        let _ = nm.await;
        let _ = rm.await;
    })
    .await
    .expect("daemons stop on shutdown");
}
