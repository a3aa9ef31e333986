//! The DFS rows of the failure model (DESIGN §7) on a real multi-process mini cluster:
//! a DataNode killed mid-write, a DataNode killed for good, flipped bytes in replicas,
//! a NameNode `kill -9` and restart, and clients without the cluster's certificate.

mod common;

use common::mini_dfs::{data, one_line_error, sheaf_command, MiniDfs, MiniDfsOptions, BLOCK};
use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

const OCTET: u8 = 42;

fn cluster(datanodes: usize) -> MiniDfs {
    MiniDfs::start(MiniDfsOptions::new(datanodes, OCTET))
}

/// Per-block live replica counts from `fsck -blocks`.
fn live_replicas(dfs: &MiniDfs, path: &str) -> Vec<usize> {
    let out = dfs.sheaf(&["fsck", "--blocks", path]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split("Live_repl=").nth(1))
        .filter_map(|r| r.split_whitespace().next().and_then(|n| n.parse().ok()))
        .collect()
}

fn healthy_with(dfs: &MiniDfs, path: &str, replicas: usize) -> bool {
    let out = dfs.sheaf(&["fsck", "--blocks", path]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let counts = live_replicas(dfs, path);
    out.status.success()
        && text.contains("is HEALTHY")
        && text.contains("Under-replicated blocks:\t0 ")
        && !counts.is_empty()
        && counts.iter().all(|c| *c == replicas)
}

#[test]
fn a_datanode_killed_mid_write_leaves_the_file_intact() {
    let mut dfs = cluster(3);
    let payload = data(12 * BLOCK + 777, 3);
    let mut child = sheaf_command()
        .arg("--conf")
        .arg(&dfs.conf)
        .args(["dfs", "put", "-", "/survivor"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let (first, rest) = payload.split_at(5 * BLOCK + 4321);
    stdin.write_all(first).unwrap();
    stdin.flush().unwrap();
    // Let the pipeline carry some of it, then kill a DataNode (every one is in every pipeline).
    std::thread::sleep(Duration::from_millis(700));
    dfs.kill_datanode(1);
    stdin.write_all(rest).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "put failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cat = dfs.sheaf(&["dfs", "cat", "/survivor"]);
    assert!(
        cat.status.success(),
        "{}",
        String::from_utf8_lossy(&cat.stderr)
    );
    assert_eq!(cat.stdout.len(), payload.len());
    assert!(
        cat.stdout == payload,
        "file differs after a DataNode died mid-write"
    );
    // Replication is restored once a fourth DataNode is there.
    dfs.add_datanode();
    dfs.wait_for(
        "3 live replicas of every block",
        Duration::from_secs(60),
        || healthy_with(&dfs, "/survivor", 3),
    );
}

#[test]
fn a_datanode_killed_for_good_has_its_blocks_re_replicated() {
    let mut dfs = cluster(4);
    let files: Vec<Vec<u8>> = (0..4)
        .map(|i| data(2 * BLOCK + 100 * i, 50 + i as u64))
        .collect();
    for (i, f) in files.iter().enumerate() {
        let p = dfs.dir.path().join(format!("f{i}"));
        std::fs::write(&p, f).unwrap();
        dfs.ok(&["dfs", "put", p.to_str().unwrap(), &format!("/keep{i}")]);
    }
    // Every replica is reported shortly after the writes complete.
    dfs.wait_for(
        "3 live replicas after the writes",
        Duration::from_secs(15),
        || healthy_with(&dfs, "/", 3),
    );
    dfs.kill_datanode(0);
    let started = Instant::now();
    dfs.wait_for(
        "every block back at 3 live replicas",
        Duration::from_secs(60),
        || {
            let report = dfs.ok(&["dfsadmin", "report"]);
            report.contains("Live datanodes (3):") && healthy_with(&dfs, "/", 3)
        },
    );
    eprintln!("re-replicated in {:?}", started.elapsed());
    for (i, f) in files.iter().enumerate() {
        assert!(dfs.sheaf(&["dfs", "cat", &format!("/keep{i}")]).stdout == *f);
    }
}

#[test]
fn flipped_bytes_in_a_replica_are_detected_read_around_and_replaced() {
    let dfs = cluster(4);
    let payload = data(3 * BLOCK + 5000, 11);
    let src = dfs.dir.path().join("src");
    std::fs::write(&src, &payload).unwrap();
    dfs.ok(&["dfs", "put", src.to_str().unwrap(), "/fragile"]);
    // Corrupt every replica on the DataNode holding the most blocks of the file.
    let victim = (0..4)
        .max_by_key(|dn| dfs.replica_files(*dn).len())
        .unwrap();
    let flipped = dfs.replica_files(victim);
    assert!(!flipped.is_empty());
    for f in &flipped {
        let mut bytes = std::fs::read(f).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        bytes[0] ^= 0x01;
        std::fs::write(f, &bytes).unwrap();
    }
    // Whichever replica each read picks, the bytes returned are the file's.
    for _ in 0..5 {
        let cat = dfs.sheaf(&["dfs", "cat", "/fragile"]);
        assert!(
            cat.status.success(),
            "{}",
            String::from_utf8_lossy(&cat.stderr)
        );
        assert!(cat.stdout == payload, "read returned corrupt data");
    }
    dfs.wait_for(
        "the corrupt replicas replaced",
        Duration::from_secs(60),
        || {
            let out = dfs.sheaf(&["fsck", "--blocks", "/fragile"]);
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let on_disk_good = (0..4).all(|dn| {
                dfs.replica_files(dn).iter().all(|f| {
                    let bytes = std::fs::read(f).unwrap_or_default();
                    (0..4).any(|k| {
                        payload.get(k * BLOCK..k * BLOCK + bytes.len()) == Some(&bytes[..])
                    })
                })
            });
            healthy_with(&dfs, "/fragile", 3) && !text.contains("corrupt replica") && on_disk_good
        },
    );
}

#[test]
fn a_namenode_killed_and_restarted_keeps_every_acknowledged_file() {
    let mut dfs = cluster(3);
    let files: Vec<Vec<u8>> = (0..5)
        .map(|i| data(i * BLOCK / 2 + 17, 70 + i as u64))
        .collect();
    dfs.ok(&["dfs", "mkdir", "-p", "/acked/dir"]);
    for (i, f) in files.iter().enumerate() {
        let p = dfs.dir.path().join(format!("a{i}"));
        std::fs::write(&p, f).unwrap();
        dfs.ok(&[
            "dfs",
            "put",
            p.to_str().unwrap(),
            &format!("/acked/dir/f{i}"),
        ]);
    }
    dfs.ok(&["dfs", "mv", "/acked/dir/f0", "/acked/renamed"]);
    dfs.kill_namenode();
    let down = dfs.sheaf(&["dfs", "ls", "/"]);
    let e = one_line_error(&down);
    assert!(e.contains("cannot reach the NameNode"), "{e}");
    dfs.start_namenode();
    // Safe mode ends by itself once the DataNodes have reported their blocks (they notice the
    // restart on their next heartbeat, which may first have to time out on the old connection).
    dfs.wait_ready(3, Duration::from_secs(60));
    assert_eq!(
        dfs.sheaf(&["dfs", "cat", "/acked/renamed"]).stdout,
        files[0]
    );
    for (i, f) in files.iter().enumerate().skip(1) {
        let out = dfs.sheaf(&["dfs", "cat", &format!("/acked/dir/f{i}")]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stdout == *f,
            "file {i} differs after the NameNode restart"
        );
    }
    let fsck = dfs.ok(&["fsck", "/"]);
    assert!(fsck.trim_end().ends_with("is HEALTHY"), "{fsck}");
}

#[test]
fn clients_without_the_cluster_certificate_are_refused() {
    let dfs = cluster(1);
    // No certificate at all: the CLI says so and exits non-zero.
    let conf = std::fs::read_to_string(&dfs.conf).unwrap();
    let nocert_dir = dfs.dir.path().join("nocert");
    std::fs::create_dir_all(&nocert_dir).unwrap();
    let tls_line = conf
        .lines()
        .find(|l| l.starts_with("tls-dir"))
        .unwrap()
        .to_string();
    let no_cert_conf = dfs.dir.path().join("nocert.toml");
    std::fs::write(
        &no_cert_conf,
        conf.replace(
            &tls_line,
            &format!("tls-dir = \"{}\"", nocert_dir.display()),
        ),
    )
    .unwrap();
    let out = sheaf_command()
        .arg("--conf")
        .arg(&no_cert_conf)
        .args(["dfs", "ls", "/"])
        .output()
        .unwrap();
    let e = one_line_error(&out);
    assert!(
        e.starts_with("sheaf dfs ls: no usable cluster certificate"),
        "{e}"
    );
    // A certificate of another cluster: refused at the handshake.
    let foreign = dfs.dir.path().join("foreign");
    sheaf_rpc::ClusterCa::create_dir("other", &foreign).unwrap();
    let foreign_conf = dfs.dir.path().join("foreign.toml");
    std::fs::write(
        &foreign_conf,
        conf.replace(&tls_line, &format!("tls-dir = \"{}\"", foreign.display())),
    )
    .unwrap();
    let started = Instant::now();
    let out = sheaf_command()
        .arg("--conf")
        .arg(&foreign_conf)
        .args(["dfs", "ls", "/"])
        .output()
        .unwrap();
    let e = one_line_error(&out);
    assert!(e.contains("refused") || e.contains("certificate"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(10));
    // An anonymous QUIC client (trusts the CA, presents nothing) gets nothing served.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let tls = dfs.dir.path().join("tls");
    rt.block_on(async {
        let user = sheaf_rpc::TlsIdentity::load(&tls, "user").unwrap();
        let ep = sheaf_rpc::quic::client_endpoint_with(
            std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            user.anonymous_client_config().unwrap(),
        )
        .unwrap();
        let client = sheaf_rpc::RpcClient::new(ep);
        let req = sheaf_dfs::protocol::NamenodeRequest::Client(
            sheaf_dfs::protocol::ClientRequest::GetFileInfo { path: "/".into() },
        );
        let r: Result<sheaf_dfs::protocol::NamenodeResponse, _> =
            client.call(dfs.namenode_addr, &req).await;
        assert!(r.is_err(), "an anonymous client was served");
    });
}
