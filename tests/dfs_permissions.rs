//! Who is calling and what they may touch, on a real multi-process DFS: identities come from
//! certificates `sheaf admin user add` issues, and the NameNode checks HDFS permissions against
//! them on every operation. A user certificate cannot pose as a DataNode.

mod common;

use common::mini_dfs::{one_line_error, MiniDfs, MiniDfsOptions};
use std::path::{Path, PathBuf};
use std::process::Output;

const OCTET: u8 = 48;

/// Runs the CLI as the user whose identity is in `identity`.
fn as_user(dfs: &MiniDfs, identity: &Path, args: &[&str]) -> Output {
    let mut full = vec!["--identity", identity.to_str().unwrap()];
    full.extend_from_slice(args);
    dfs.sheaf(&full)
}

fn ok_as(dfs: &MiniDfs, identity: &Path, args: &[&str]) -> String {
    let out = as_user(dfs, identity, args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn denied(dfs: &MiniDfs, identity: &Path, args: &[&str]) -> String {
    let out = as_user(dfs, identity, args);
    assert!(!out.status.success(), "{args:?} was allowed");
    let e = one_line_error(&out);
    assert!(e.contains("Permission denied"), "{args:?}: {e}");
    e
}

fn add_user(dfs: &MiniDfs, name: &str, groups: &str) -> PathBuf {
    let out = dfs.dir.path().join(format!("id-{name}"));
    dfs.ok(&[
        "admin",
        "user",
        "add",
        name,
        "--groups",
        groups,
        "--out",
        out.to_str().unwrap(),
    ]);
    out
}

#[test]
fn users_touch_only_what_their_permissions_allow_and_the_superuser_everything() {
    let dfs = MiniDfs::start(MiniDfsOptions::new(1, OCTET));
    dfs.wait_ready(1, std::time::Duration::from_secs(30));
    let alice = add_user(&dfs, "alice", "analysts,alice");
    let bob = add_user(&dfs, "bob", "bob");
    let home = dfs.ok(&["dfs", "ls", "/user"]);
    assert!(
        home.lines()
            .any(|l| l.contains("alice analysts") && l.ends_with("/user/alice")),
        "{home}"
    );

    let local = dfs.dir.path().join("secret.txt");
    std::fs::write(&local, "alice's secret\n").unwrap();
    ok_as(
        &dfs,
        &alice,
        &["dfs", "put", local.to_str().unwrap(), "/user/alice/secret"],
    );
    ok_as(&dfs, &alice, &["dfs", "chmod", "600", "/user/alice/secret"]);
    ok_as(
        &dfs,
        &alice,
        &["dfs", "put", local.to_str().unwrap(), "/user/alice/shared"],
    );
    // Files are the caller's, in the parent's group, with the umask applied (0666 & ~022).
    let listing = ok_as(&dfs, &alice, &["dfs", "ls", "/user/alice"]);
    assert!(
        listing.lines().any(|l| l.starts_with("-rw-------")
            && l.contains("alice analysts")
            && l.ends_with("/user/alice/secret")),
        "{listing}"
    );
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with("-rw-r--r--") && l.ends_with("/user/alice/shared")),
        "{listing}"
    );

    // bob: nothing of the 600 file, in Hadoop's words.
    let e = denied(&dfs, &bob, &["dfs", "cat", "/user/alice/secret"]);
    assert!(
        e.contains(
            "Permission denied: user=bob, access=READ, inode=\"/user/alice/secret\":alice:analysts:-rw-------"
        ),
        "{e}"
    );
    let got = dfs.dir.path().join("got");
    denied(
        &dfs,
        &bob,
        &["dfs", "get", "/user/alice/secret", got.to_str().unwrap()],
    );
    assert!(!got.exists(), "a refused get left a file");
    denied(&dfs, &bob, &["dfs", "rm", "/user/alice/secret"]);
    denied(
        &dfs,
        &bob,
        &["dfs", "mv", "/user/alice/secret", "/tmp/stolen"],
    );
    denied(&dfs, &bob, &["dfs", "chmod", "644", "/user/alice/secret"]);
    denied(&dfs, &bob, &["dfs", "chown", "bob", "/user/alice/secret"]);
    denied(
        &dfs,
        &bob,
        &["dfs", "put", local.to_str().unwrap(), "/user/alice/planted"],
    );
    assert_eq!(
        ok_as(&dfs, &alice, &["dfs", "cat", "/user/alice/secret"]),
        "alice's secret\n",
        "the file changed"
    );
    // ... but the 644 one, and his own home.
    assert_eq!(
        ok_as(&dfs, &bob, &["dfs", "cat", "/user/alice/shared"]),
        "alice's secret\n"
    );
    ok_as(
        &dfs,
        &bob,
        &["dfs", "put", local.to_str().unwrap(), "/user/bob/mine"],
    );

    // /tmp is sticky: bob writes there, alice cannot remove bob's file, bob can.
    ok_as(
        &dfs,
        &bob,
        &["dfs", "put", local.to_str().unwrap(), "/tmp/bobs"],
    );
    let e = denied(&dfs, &alice, &["dfs", "rm", "/tmp/bobs"]);
    assert!(e.contains("sticky"), "{e}");
    ok_as(&dfs, &bob, &["dfs", "rm", "/tmp/bobs"]);

    // Only the superuser gives files away; the owner changes the group to one of its own.
    ok_as(
        &dfs,
        &alice,
        &["dfs", "chgrp", "alice", "/user/alice/shared"],
    );
    denied(&dfs, &alice, &["dfs", "chgrp", "bob", "/user/alice/shared"]);
    denied(&dfs, &alice, &["dfs", "chown", "bob", "/user/alice/shared"]);

    // The superuser (the run dir's admin identity): everything.
    assert_eq!(
        dfs.ok(&["dfs", "cat", "/user/alice/secret"]),
        "alice's secret\n"
    );
    dfs.ok(&["dfs", "chown", "-R", "bob:bob", "/user/alice"]);
    let listing = dfs.ok(&["dfs", "ls", "/user/alice"]);
    assert!(
        listing
            .lines()
            .all(|l| l.is_empty() || l.starts_with("Found") || l.contains("bob bob")),
        "{listing}"
    );
    dfs.ok(&["dfs", "rm", "-r", "/user/alice"]);
    // Administration is the superuser's.
    denied(&dfs, &bob, &["dfsadmin", "report"]);
    denied(&dfs, &bob, &["fsck", "/"]);
}

#[test]
fn a_user_certificate_cannot_act_as_a_datanode() {
    let dfs = MiniDfs::start(MiniDfsOptions::new(1, OCTET + 1));
    dfs.wait_ready(1, std::time::Duration::from_secs(30));
    let mallory = add_user(&dfs, "mallory", "mallory");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let user = sheaf_rpc::TlsIdentity::load(&mallory, "user").unwrap();
        let ep = sheaf_rpc::quic::client_endpoint(
            std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            &user,
        )
        .unwrap();
        let client = sheaf_rpc::RpcClient::new(ep);
        let req = sheaf_dfs::protocol::NamenodeRequest::Datanode(
            sheaf_dfs::protocol::DatanodeProtocolRequest::RegisterDatanode {
                addr: sheaf_dfs::protocol::DatanodeAddr {
                    uuid: "fake".into(),
                    host: std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 99)),
                    rpc_port: 1,
                    data_port: 2,
                },
                capacity: 1 << 40,
                used: 0,
                remaining: 1 << 40,
            },
        );
        let r: sheaf_dfs::protocol::NamenodeResponse =
            client.call(dfs.namenode_addr, &req).await.unwrap();
        let e = r.expect_err("a user registered a DataNode");
        assert!(
            e.to_string().contains("user mallory")
                && e.to_string().contains("cannot act as a DataNode"),
            "{e}"
        );
    });
    // Still one DataNode.
    let report = dfs.ok(&["dfsadmin", "report"]);
    assert!(report.contains("Live datanodes (1)"), "{report}");
}
