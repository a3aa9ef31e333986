//! The NameNode over real RPC (QUIC + mutual TLS on loopback), killed with SIGKILL in the
//! middle of its life: every mutation it acknowledged is there after a restart, and it leaves
//! safe mode by itself once the (simulated) DataNode reports its blocks.
//!
//! The NameNode runs in a child process: this test binary re-executes itself with
//! `SHEAF_NN_TEST_CHILD` set, and the child only starts the NameNode and prints its address.

use sheaf_dfs::config::DfsConfig;
use sheaf_dfs::namenode::{self, Namenode};
use sheaf_dfs::protocol::{
    ClientRequest, DatanodeAddr, DatanodeCommand, DatanodeProtocolRequest, ExtendedBlock, FileKind,
    NamenodeError, NamenodeReply, NamenodeRequest, NamenodeResponse, SafeModeAction,
};
use sheaf_rpc::{quic, ClusterCa, RpcClient, TlsIdentity};
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "SHEAF_NN_TEST_CHILD";
const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const TEST_NAME: &str = "acknowledged_mutations_survive_sigkill_and_safe_mode_exits_by_itself";

fn config(root: &Path) -> DfsConfig {
    let mut c = DfsConfig::default();
    c.cluster.tls_dir = root.join("tls");
    c.namenode.data_dir = root.join("namenode");
    c.namenode.address = SocketAddr::new(LOCAL, 0);
    c.namenode.safemode_extension_ms = 0;
    c.namenode.dead_timeout_ms = 3000;
    c.namenode.replication_interval_ms = 200;
    c
}

/// Kills the child NameNode on drop so a failing assertion leaves no process behind.
struct ChildGuard(Child);
impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run_child(root: &Path) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let cfg = config(root);
        let identity = TlsIdentity::load(&cfg.cluster.tls_dir, "daemon").unwrap();
        let nn = Namenode::start(&cfg, identity).await.unwrap();
        println!("NAMENODE_ADDR={}", nn.local_addr());
        // Serve until killed.
        tokio::time::sleep(Duration::from_secs(120)).await;
        drop(nn);
    });
}

async fn call(
    client: &RpcClient,
    addr: SocketAddr,
    req: impl Into<NamenodeRequest>,
) -> NamenodeResponse {
    client
        .call::<_, NamenodeResponse>(addr, &req.into())
        .await
        .expect("rpc")
}

fn datanode() -> DatanodeAddr {
    DatanodeAddr {
        uuid: "dn-test".into(),
        host: LOCAL,
        rpc_port: 1,
        data_port: 2,
    }
}

async fn register(client: &RpcClient, addr: SocketAddr) {
    let r = call(
        client,
        addr,
        DatanodeProtocolRequest::RegisterDatanode {
            addr: datanode(),
            capacity: 1 << 30,
            used: 0,
            remaining: 1 << 30,
        },
    )
    .await;
    assert!(matches!(r, Ok(NamenodeReply::Commands(_))), "{r:?}");
}

fn create(path: &str, client: &str) -> ClientRequest {
    ClientRequest::Create {
        path: path.into(),
        overwrite: false,
        replication: 1,
        block_size: 1 << 20,
        client: client.into(),
        client_host: None,
        mode: 0o644,
    }
}

/// Performs mutations; returns the block written to `/data/file1`.
async fn mutate(client: &RpcClient, addr: SocketAddr) -> ExtendedBlock {
    register(client, addr).await;
    let ok = |r: NamenodeResponse| assert!(r.is_ok(), "{r:?}");
    ok(call(
        client,
        addr,
        ClientRequest::Mkdirs {
            path: "/data/sub".into(),
            parents: true,
            mode: 0o750,
        },
    )
    .await);
    // Concurrent mutations share fsyncs (group commit); each is acknowledged individually.
    let reqs: Vec<ClientRequest> = (0..40)
        .map(|i| ClientRequest::Mkdirs {
            path: format!("/many/d{i}"),
            parents: true,
            mode: 0o755,
        })
        .collect();
    let results = futures::future::join_all(reqs.into_iter().map(|r| call(client, addr, r))).await;
    for r in results {
        ok(r);
    }
    // A file with one block, written through a (simulated) DataNode.
    ok(call(client, addr, create("/data/file1", "writer-1")).await);
    let Ok(NamenodeReply::Block(lb)) = call(
        client,
        addr,
        ClientRequest::AddBlock {
            path: "/data/file1".into(),
            client: "writer-1".into(),
            previous: None,
            excluded: vec![],
        },
    )
    .await
    else {
        panic!("add block failed")
    };
    assert_eq!(lb.locations, vec![datanode()]);
    let block = ExtendedBlock {
        len: 12345,
        ..lb.block
    };
    ok(call(
        client,
        addr,
        DatanodeProtocolRequest::IncrementalBlockReport {
            uuid: "dn-test".into(),
            received: vec![block],
            deleted: vec![],
        },
    )
    .await);
    let r = call(
        client,
        addr,
        ClientRequest::Complete {
            path: "/data/file1".into(),
            client: "writer-1".into(),
            last: Some(block),
        },
    )
    .await;
    assert!(matches!(r, Ok(NamenodeReply::Completed(true))), "{r:?}");
    // An empty file, renamed; another one deleted; a replication change.
    ok(call(client, addr, create("/data/empty", "writer-1")).await);
    let r = call(
        client,
        addr,
        ClientRequest::Complete {
            path: "/data/empty".into(),
            client: "writer-1".into(),
            last: None,
        },
    )
    .await;
    assert!(matches!(r, Ok(NamenodeReply::Completed(true))), "{r:?}");
    ok(call(
        client,
        addr,
        ClientRequest::Rename {
            src: "/data/empty".into(),
            dst: "/data/sub".into(),
        },
    )
    .await);
    ok(call(client, addr, create("/data/doomed", "writer-1")).await);
    ok(call(
        client,
        addr,
        ClientRequest::Complete {
            path: "/data/doomed".into(),
            client: "writer-1".into(),
            last: None,
        },
    )
    .await);
    let r = call(
        client,
        addr,
        ClientRequest::Delete {
            path: "/data/doomed".into(),
            recursive: false,
        },
    )
    .await;
    assert!(matches!(r, Ok(NamenodeReply::Deleted(true))), "{r:?}");
    ok(call(
        client,
        addr,
        ClientRequest::SetReplication {
            path: "/data/file1".into(),
            replication: 2,
        },
    )
    .await);
    // Hadoop error semantics over the wire.
    let r = call(
        client,
        addr,
        ClientRequest::Delete {
            path: "/data".into(),
            recursive: false,
        },
    )
    .await;
    assert_eq!(
        r.unwrap_err(),
        NamenodeError::DirectoryNotEmpty("/data".into())
    );
    let r = call(client, addr, create("/data/file1", "writer-2")).await;
    assert_eq!(
        r.unwrap_err(),
        NamenodeError::AlreadyExists("/data/file1".into())
    );
    block
}

async fn verify(client: &RpcClient, addr: SocketAddr, block: ExtendedBlock) {
    let info = |p: &str| ClientRequest::GetFileInfo { path: p.into() };
    let Ok(NamenodeReply::FileInfo(Some(f))) = call(client, addr, info("/data/file1")).await else {
        panic!("file1 lost")
    };
    assert_eq!(
        (f.kind, f.len, f.replication, f.owner.as_str()),
        (FileKind::File, 12345, 2, "sheaf")
    );
    let Ok(NamenodeReply::FileInfo(Some(d))) = call(client, addr, info("/data/sub")).await else {
        panic!("dir lost")
    };
    assert_eq!((d.kind, d.mode), (FileKind::Directory, 0o750));
    let Ok(NamenodeReply::FileInfo(Some(_))) = call(client, addr, info("/data/sub/empty")).await
    else {
        panic!("rename lost")
    };
    let Ok(NamenodeReply::FileInfo(None)) = call(client, addr, info("/data/empty")).await else {
        panic!("rename source back")
    };
    let Ok(NamenodeReply::FileInfo(None)) = call(client, addr, info("/data/doomed")).await else {
        panic!("delete lost")
    };
    let Ok(NamenodeReply::Listing(many)) = call(
        client,
        addr,
        ClientRequest::ListStatus {
            path: "/many".into(),
        },
    )
    .await
    else {
        panic!("listing failed")
    };
    assert_eq!(many.len(), 40);
    let req = ClientRequest::GetBlockLocations {
        path: "/data/file1".into(),
        offset: 0,
        len: u64::MAX,
        client_host: None,
    };
    let Ok(NamenodeReply::Locations(locs)) = call(client, addr, req).await else {
        panic!("locations")
    };
    assert_eq!(locs.file_len, 12345);
    assert_eq!(locs.blocks.len(), 1);
    assert_eq!(locs.blocks[0].block, block);
}

#[test]
fn acknowledged_mutations_survive_sigkill_and_safe_mode_exits_by_itself() {
    if let Some(root) = std::env::var_os(CHILD_ENV) {
        run_child(Path::new(&root));
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let cfg = config(root.path());
    ClusterCa::create_dir("test", &cfg.cluster.tls_dir).unwrap();
    namenode::format(&cfg, false).unwrap();
    // Formatting again is refused.
    assert!(namenode::format(&cfg, false).is_err());

    let exe = std::env::current_exe().unwrap();
    let child = Command::new(exe)
        .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, root.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut child = ChildGuard(child);
    let stdout = child.0.stdout.take().unwrap();
    // Read the child's stdout on a thread so a silent child fails the test in bounded time.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // libtest prints "test … " without a newline before the child's own output.
            if let Some(i) = line.find("NAMENODE_ADDR=") {
                let _ = tx.send(
                    line[i + "NAMENODE_ADDR=".len()..]
                        .trim()
                        .parse::<SocketAddr>()
                        .ok(),
                );
                return;
            }
        }
    });
    let addr = rx.recv_timeout(Duration::from_secs(30)).ok().flatten();
    let addr = addr.expect("child printed no address");

    let rt = tokio::runtime::Runtime::new().unwrap();
    // It registers a DataNode as well as writing: only the daemon certificate may.
    let user = TlsIdentity::load(&cfg.cluster.tls_dir, "daemon").unwrap();
    let block = rt.block_on(async {
        let client = RpcClient::new(quic::client_endpoint(LOCAL, &user).unwrap());
        mutate(&client, addr).await
    });
    // Power-cut stand-in: SIGKILL right after the last acknowledgement, no clean shutdown.
    child.0.kill().unwrap();
    child.0.wait().unwrap();

    rt.block_on(async {
        let identity = TlsIdentity::load(&cfg.cluster.tls_dir, "daemon").unwrap();
        let nn = Namenode::start(&cfg, identity).await.unwrap();
        let addr = nn.local_addr();
        let client = RpcClient::new(quic::client_endpoint(LOCAL, &user).unwrap());
        // One complete block and no DataNode yet: safe mode, mutations refused, reads served.
        assert!(nn.in_safe_mode());
        let r = call(&client, addr, ClientRequest::Mkdirs { path: "/x".into(), parents: true, mode: 0o755 }).await;
        assert!(matches!(r, Err(NamenodeError::SafeMode(_))), "{r:?}");
        verify(&client, addr, block).await;
        // A DataNode that the restarted NameNode does not know is told to re-register.
        let hb = DatanodeProtocolRequest::Heartbeat { uuid: "dn-test".into(), capacity: 1, used: 0, remaining: 1, active_transfers: 0, last_error: None };
        let r = call(&client, addr, hb).await;
        assert!(matches!(r, Ok(NamenodeReply::Commands(ref c)) if c == &vec![DatanodeCommand::Reregister]), "{r:?}");
        register(&client, addr).await;
        let r = call(&client, addr, DatanodeProtocolRequest::BlockReport { uuid: "dn-test".into(), blocks: vec![block] }).await;
        assert!(r.is_ok(), "{r:?}");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let Ok(NamenodeReply::SafeMode(on)) = call(&client, addr, ClientRequest::SafeMode { action: SafeModeAction::Get }).await else {
                panic!("safemode get")
            };
            if !on {
                break;
            }
            assert!(Instant::now() < deadline, "safe mode did not end by itself");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let r = call(&client, addr, ClientRequest::Mkdirs { path: "/x".into(), parents: true, mode: 0o755 }).await;
        assert!(r.is_ok(), "{r:?}");
        nn.shutdown().await.unwrap();
    });
}

#[test]
fn start_refuses_an_unformatted_dir_and_a_port_in_use() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let mut cfg = config(root.path());
    ClusterCa::create_dir("test", &cfg.cluster.tls_dir).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let identity = TlsIdentity::load(&cfg.cluster.tls_dir, "daemon").unwrap();
        let e = Namenode::start(&cfg, identity.clone())
            .await
            .err()
            .expect("unformatted dir must be refused");
        assert!(e.to_string().contains("sheaf format"), "{e}");
        namenode::format(&cfg, false).unwrap();
        let busy = std::net::UdpSocket::bind(SocketAddr::new(LOCAL, 0)).unwrap();
        cfg.namenode.address = busy.local_addr().unwrap();
        let e = Namenode::start(&cfg, identity)
            .await
            .err()
            .expect("a bound port must be refused");
        assert!(e.to_string().contains("cannot serve on"), "{e}");
    });
}
