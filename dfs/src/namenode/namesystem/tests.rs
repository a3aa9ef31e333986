//! Tests of the namesystem: requests and ticks against a real (temporary) namespace store.

use super::*;
use crate::namenode::block_manager::BlockManagerConfig;
use crate::namenode::namespace::Namespace;
use crate::namenode::store::{self, NamespaceStore};
use crate::namenode::topology::Topology;
use crate::protocol::{
    BlockHealth, ClientRequest, DatanodeAddr, DatanodeCommand, DatanodeProtocolRequest,
    ExtendedBlock, FileKind, LocatedBlock, NamenodeError, NamenodeReply, NamenodeRequest,
    NamenodeResponse, SafeModeAction,
};
use std::net::IpAddr;
use std::time::Duration;

const MB: u64 = 1 << 20;

fn cfg() -> NamesystemConfig {
    NamesystemConfig {
        blocks: BlockManagerConfig {
            dead_timeout_ms: 1000,
            max_streams: 2,
            pending_timeout_ms: 5000,
            invalidate_batch: 100,
        },
        lease_soft_limit_ms: 500,
        lease_hard_limit_ms: 2000,
        recovery_retry_ms: 1000,
        safemode_threshold: 1.0,
        safemode_extension_ms: 0,
        trash_interval_ms: 0,
    }
}

fn at(ms: u64) -> Now {
    Now {
        mono_ms: ms,
        wall_ms: 1_700_000_000_000 + ms,
    }
}

fn open(dir: &std::path::Path, fresh: bool) -> Namesystem {
    if fresh {
        store::create_empty(dir, false).unwrap();
    }
    let st = NamespaceStore::open(dir, Duration::ZERO, true).unwrap();
    let mut ns = Namespace::load(st).unwrap();
    if fresh {
        ns.init_root("root", "supergroup", 0).unwrap();
    }
    let topo = Topology::parse("127.0.0.2 /r1\n127.0.0.3 /r1\n127.0.0.4 /r2\n", "t").unwrap();
    Namesystem::load(ns, cfg(), topo, at(0)).unwrap()
}

fn dn(i: u8) -> DatanodeAddr {
    DatanodeAddr {
        uuid: format!("dn{i}"),
        host: IpAddr::from([127, 0, 0, i]),
        rpc_port: 1,
        data_port: 2,
    }
}

const CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1));

fn call(sys: &mut Namesystem, req: impl Into<NamenodeRequest>, now: u64) -> NamenodeResponse {
    // The cluster's own daemons (DataNodes) and its superuser (the clients here).
    sys.handle(
        req.into(),
        at(now),
        CLIENT,
        &sheaf_rpc::Identity::daemon("test"),
    )
}

fn register_all(sys: &mut Namesystem, now: u64) {
    for i in 2..=4 {
        call(
            sys,
            DatanodeProtocolRequest::RegisterDatanode {
                addr: dn(i),
                capacity: 100 * MB,
                used: 0,
                remaining: 100 * MB,
            },
            now,
        )
        .unwrap();
    }
}

fn heartbeat(sys: &mut Namesystem, i: u8, now: u64) -> Vec<DatanodeCommand> {
    match call(
        sys,
        DatanodeProtocolRequest::Heartbeat {
            uuid: format!("dn{i}"),
            capacity: 100 * MB,
            used: 0,
            remaining: 100 * MB,
            active_transfers: 0,
            last_error: None,
        },
        now,
    ) {
        Ok(NamenodeReply::Commands(c)) => c,
        other => panic!("{other:?}"),
    }
}

fn create(
    sys: &mut Namesystem,
    path: &str,
    client: &str,
    host: Option<IpAddr>,
    now: u64,
) -> NamenodeResponse {
    call(
        sys,
        ClientRequest::Create {
            path: path.into(),
            overwrite: false,
            replication: 3,
            block_size: MB,
            client: client.into(),
            client_host: host,
            mode: 0o644,
        },
        now,
    )
}

fn add_block(
    sys: &mut Namesystem,
    path: &str,
    client: &str,
    prev: Option<ExtendedBlock>,
    now: u64,
) -> LocatedBlock {
    match call(
        sys,
        ClientRequest::AddBlock {
            path: path.into(),
            client: client.into(),
            previous: prev,
            excluded: vec![],
        },
        now,
    ) {
        Ok(NamenodeReply::Block(b)) => b,
        other => panic!("{other:?}"),
    }
}

/// Writes a one-block file of `len` bytes the way a client and ideal DataNodes would.
fn write_file(sys: &mut Namesystem, path: &str, len: u64, now: u64) -> ExtendedBlock {
    create(sys, path, "c1", Some(IpAddr::from([127, 0, 0, 3])), now).unwrap();
    let lb = add_block(sys, path, "c1", None, now);
    let done = ExtendedBlock { len, ..lb.block };
    for loc in &lb.locations {
        call(
            sys,
            DatanodeProtocolRequest::IncrementalBlockReport {
                uuid: loc.uuid.clone(),
                received: vec![done],
                deleted: vec![],
            },
            now,
        )
        .unwrap();
    }
    let r = call(
        sys,
        ClientRequest::Complete {
            path: path.into(),
            client: "c1".into(),
            last: Some(done),
        },
        now,
    );
    assert!(matches!(r, Ok(NamenodeReply::Completed(true))), "{r:?}");
    done
}

#[test]
fn write_read_and_complete_waits_for_a_replica() {
    let d = tempfile::tempdir().unwrap();
    let mut sys = open(d.path(), true);
    assert!(
        !sys.in_safe_mode(),
        "an empty namespace starts out of safe mode"
    );
    register_all(&mut sys, 1);
    call(
        &mut sys,
        ClientRequest::Mkdirs {
            path: "/d".into(),
            parents: false,
            mode: 0o755,
        },
        1,
    )
    .unwrap();
    create(
        &mut sys,
        "/d/f",
        "c1",
        Some(IpAddr::from([127, 0, 0, 3])),
        1,
    )
    .unwrap();
    // Another client cannot write the file.
    let e = call(
        &mut sys,
        ClientRequest::AddBlock {
            path: "/d/f".into(),
            client: "c2".into(),
            previous: None,
            excluded: vec![],
        },
        1,
    );
    assert_eq!(e.unwrap_err(), NamenodeError::NoLease("/d/f".into()));
    let lb = add_block(&mut sys, "/d/f", "c1", None, 1);
    assert_eq!(lb.locations.len(), 3);
    assert_eq!(lb.locations[0].uuid, "dn3", "writer-local first");
    // A retried AddBlock returns the same block.
    assert_eq!(
        add_block(&mut sys, "/d/f", "c1", None, 1).block.id,
        lb.block.id
    );
    let last = ExtendedBlock {
        len: 700,
        ..lb.block
    };
    let r = call(
        &mut sys,
        ClientRequest::Complete {
            path: "/d/f".into(),
            client: "c1".into(),
            last: Some(last),
        },
        2,
    );
    assert!(
        matches!(r, Ok(NamenodeReply::Completed(false))),
        "no replica reported yet: {r:?}"
    );
    call(
        &mut sys,
        DatanodeProtocolRequest::IncrementalBlockReport {
            uuid: "dn3".into(),
            received: vec![last],
            deleted: vec![],
        },
        2,
    )
    .unwrap();
    let r = call(
        &mut sys,
        ClientRequest::Complete {
            path: "/d/f".into(),
            client: "c1".into(),
            last: Some(last),
        },
        3,
    );
    assert!(matches!(r, Ok(NamenodeReply::Completed(true))), "{r:?}");
    // Retrying after success still says true.
    let r = call(
        &mut sys,
        ClientRequest::Complete {
            path: "/d/f".into(),
            client: "c1".into(),
            last: Some(last),
        },
        3,
    );
    assert!(matches!(r, Ok(NamenodeReply::Completed(true))), "{r:?}");
    let Ok(NamenodeReply::FileInfo(Some(st))) = call(
        &mut sys,
        ClientRequest::GetFileInfo {
            path: "/d/f".into(),
        },
        3,
    ) else {
        panic!()
    };
    assert_eq!((st.kind, st.len, st.replication), (FileKind::File, 700, 3));
    // Reads: the client's own host first; corrupt replicas listed apart.
    call(
        &mut sys,
        DatanodeProtocolRequest::IncrementalBlockReport {
            uuid: "dn2".into(),
            received: vec![last],
            deleted: vec![],
        },
        3,
    )
    .unwrap();
    call(
        &mut sys,
        DatanodeProtocolRequest::IncrementalBlockReport {
            uuid: "dn4".into(),
            received: vec![last],
            deleted: vec![],
        },
        3,
    )
    .unwrap();
    call(
        &mut sys,
        ClientRequest::ReportBadBlock {
            block: last,
            datanode_uuid: "dn2".into(),
        },
        3,
    )
    .unwrap();
    let req = ClientRequest::GetBlockLocations {
        path: "/d/f".into(),
        offset: 0,
        len: 10,
        client_host: Some(IpAddr::from([127, 0, 0, 4])),
    };
    let Ok(NamenodeReply::Locations(locs)) = call(&mut sys, req, 3) else {
        panic!()
    };
    assert_eq!(locs.file_len, 700);
    let b = &locs.blocks[0];
    assert_eq!(
        b.locations
            .iter()
            .map(|a| a.uuid.as_str())
            .collect::<Vec<_>>(),
        vec!["dn4", "dn3"]
    );
    assert_eq!(b.corrupt_locations[0].uuid, "dn2");
    let Ok(NamenodeReply::Fsck(files)) =
        call(&mut sys, ClientRequest::Fsck { path: "/".into() }, 3)
    else {
        panic!()
    };
    assert_eq!(files.len(), 1);
    assert_eq!(
        files[0].blocks[0].health,
        BlockHealth::Corrupt {
            live: 2,
            corrupt: 1
        }
    );
}

#[test]
fn restart_enters_safe_mode_until_blocks_are_reported() {
    let d = tempfile::tempdir().unwrap();
    let blk = {
        let mut sys = open(d.path(), true);
        register_all(&mut sys, 1);
        write_file(&mut sys, "/f", 100, 1)
    };
    let mut sys = open(d.path(), false);
    assert!(sys.in_safe_mode());
    let e = call(
        &mut sys,
        ClientRequest::Mkdirs {
            path: "/x".into(),
            parents: true,
            mode: 0o755,
        },
        1,
    );
    assert!(matches!(e, Err(NamenodeError::SafeMode(_))), "{e:?}");
    // Reads work in safe mode.
    assert!(call(&mut sys, ClientRequest::ListStatus { path: "/".into() }, 1).is_ok());
    // Unknown DataNode heartbeats are told to re-register.
    assert_eq!(heartbeat(&mut sys, 2, 1), vec![DatanodeCommand::Reregister]);
    register_all(&mut sys, 2);
    sys.tick(at(3));
    assert!(sys.in_safe_mode());
    // A replica the namespace does not know: its deletion waits for the end of safe mode.
    let orphan = ExtendedBlock {
        id: 77,
        gen: 1,
        len: 1,
    };
    let report = DatanodeProtocolRequest::BlockReport {
        uuid: "dn3".into(),
        blocks: vec![orphan],
    };
    call(&mut sys, report, 3).unwrap();
    assert!(heartbeat(&mut sys, 3, 3).is_empty());
    call(
        &mut sys,
        DatanodeProtocolRequest::BlockReport {
            uuid: "dn2".into(),
            blocks: vec![blk],
        },
        4,
    )
    .unwrap();
    assert!(!sys.in_safe_mode(), "threshold reached with zero extension");
    let cmds = heartbeat(&mut sys, 3, 5);
    assert_eq!(cmds, vec![DatanodeCommand::Invalidate { blocks: vec![77] }]);
    // Manual safe mode holds until leave.
    let r = call(
        &mut sys,
        ClientRequest::SafeMode {
            action: SafeModeAction::Enter,
        },
        5,
    )
    .unwrap();
    assert!(matches!(r, NamenodeReply::SafeMode(true)));
    sys.tick(at(6));
    assert!(sys.in_safe_mode());
    call(
        &mut sys,
        ClientRequest::SafeMode {
            action: SafeModeAction::Leave,
        },
        7,
    )
    .unwrap();
    assert!(!sys.in_safe_mode());
}

#[test]
fn expired_lease_triggers_block_recovery_and_commit_closes_the_file() {
    let d = tempfile::tempdir().unwrap();
    let mut sys = open(d.path(), true);
    register_all(&mut sys, 1);
    create(&mut sys, "/w", "dying", None, 1).unwrap();
    let lb = add_block(&mut sys, "/w", "dying", None, 1);
    // Keep the DataNodes alive, let the writer's lease pass the soft limit: another writer
    // is refused but recovery starts.
    for i in 2..=4 {
        heartbeat(&mut sys, i, 600);
    }
    let e = create(&mut sys, "/w", "other", None, 600).unwrap_err();
    assert!(matches!(e, NamenodeError::LeaseConflict { .. }), "{e:?}");
    let mut recover = None;
    for i in 2..=4 {
        for c in heartbeat(&mut sys, i, 700) {
            if let DatanodeCommand::RecoverBlock {
                block,
                new_gen,
                replicas,
            } = c
            {
                recover = Some((format!("dn{i}"), block, new_gen, replicas));
            }
        }
    }
    let (_primary, block, new_gen, replicas) = recover.expect("a RecoverBlock command");
    assert_eq!(block.id, lb.block.id);
    assert!(new_gen > lb.block.gen);
    assert_eq!(replicas.len(), 3);
    // The old writer lost its lease.
    let e = call(
        &mut sys,
        ClientRequest::Complete {
            path: "/w".into(),
            client: "dying".into(),
            last: None,
        },
        710,
    );
    assert!(matches!(e, Err(NamenodeError::NoLease(_))), "{e:?}");
    let nodes: Vec<String> = replicas.iter().map(|r| r.uuid.clone()).collect();
    call(
        &mut sys,
        DatanodeProtocolRequest::CommitBlockSynchronization {
            block,
            new_gen,
            new_len: 4242,
            nodes,
        },
        720,
    )
    .unwrap();
    let Ok(NamenodeReply::FileInfo(Some(st))) = call(
        &mut sys,
        ClientRequest::GetFileInfo { path: "/w".into() },
        720,
    ) else {
        panic!()
    };
    assert_eq!(st.len, 4242);
    assert_eq!(sys.blocks().live_replicas(block.id), 3);
    // Closed: the new writer may overwrite it now.
    let r = call(
        &mut sys,
        ClientRequest::Create {
            path: "/w".into(),
            overwrite: true,
            replication: 1,
            block_size: MB,
            client: "other".into(),
            client_host: None,
            mode: 0o644,
        },
        730,
    );
    assert!(r.is_ok(), "{r:?}");
}

#[test]
fn hard_limit_recovers_by_itself_and_empty_files_close_at_once() {
    let d = tempfile::tempdir().unwrap();
    let mut sys = open(d.path(), true);
    register_all(&mut sys, 1);
    create(&mut sys, "/empty", "gone", None, 1).unwrap();
    create(&mut sys, "/one", "gone", None, 1).unwrap();
    add_block(&mut sys, "/one", "gone", None, 1);
    for i in 2..=4 {
        heartbeat(&mut sys, i, 1900);
    }
    sys.tick(at(1900));
    let mut cmds: Vec<DatanodeCommand> =
        (2..=4).flat_map(|i| heartbeat(&mut sys, i, 1950)).collect();
    assert!(cmds.is_empty(), "{cmds:?}");
    sys.tick(at(2100));
    cmds = (2..=4).flat_map(|i| heartbeat(&mut sys, i, 2150)).collect();
    assert_eq!(
        cmds.iter()
            .filter(|c| matches!(c, DatanodeCommand::RecoverBlock { .. }))
            .count(),
        1
    );
    let Ok(NamenodeReply::Fsck(files)) =
        call(&mut sys, ClientRequest::Fsck { path: "/".into() }, 2200)
    else {
        panic!()
    };
    let open: Vec<(&str, bool)> = files
        .iter()
        .map(|f| (f.path.as_str(), f.open_for_write))
        .collect();
    assert_eq!(open, vec![("/empty", false), ("/one", true)]);
    // No commit arrives: the recovery is retried with a newer generation stamp.
    for i in 2..=4 {
        heartbeat(&mut sys, i, 3000);
    }
    sys.tick(at(3200));
    let again: Vec<DatanodeCommand> = (2..=4).flat_map(|i| heartbeat(&mut sys, i, 3250)).collect();
    assert_eq!(
        again
            .iter()
            .filter(|c| matches!(c, DatanodeCommand::RecoverBlock { .. }))
            .count(),
        1
    );
}

#[test]
fn dead_datanode_blocks_are_re_replicated_through_heartbeats() {
    let d = tempfile::tempdir().unwrap();
    let mut sys = open(d.path(), true);
    register_all(&mut sys, 1);
    call(
        &mut sys,
        DatanodeProtocolRequest::RegisterDatanode {
            addr: dn(5),
            capacity: 100 * MB,
            used: 0,
            remaining: 100 * MB,
        },
        1,
    )
    .unwrap();
    let blk = write_file(&mut sys, "/f", 10, 1);
    let holders: Vec<String> = sys
        .blocks()
        .block(blk.id)
        .unwrap()
        .replicas
        .keys()
        .cloned()
        .collect();
    let victim = holders[0].clone();
    let survivors: Vec<u8> = (2..=5).filter(|i| format!("dn{i}") != victim).collect();
    for i in &survivors {
        heartbeat(&mut sys, *i, 1500);
    }
    sys.tick(at(1500));
    assert_eq!(sys.blocks().live_replicas(blk.id), 2);
    sys.replication_pass(at(1500));
    let mut copies = 0;
    for i in &survivors {
        for c in heartbeat(&mut sys, *i, 1600) {
            if let DatanodeCommand::Replicate { block, targets } = c {
                copies += targets.len();
                assert!(targets
                    .iter()
                    .all(|t| t.uuid != victim && !holders[1..].contains(&t.uuid)));
                for t in targets {
                    call(
                        &mut sys,
                        DatanodeProtocolRequest::IncrementalBlockReport {
                            uuid: t.uuid,
                            received: vec![block],
                            deleted: vec![],
                        },
                        1600,
                    )
                    .unwrap();
                }
            }
        }
    }
    assert_eq!(copies, 1);
    assert_eq!(sys.blocks().live_replicas(blk.id), 3);
    // Deleting the file invalidates every replica.
    call(
        &mut sys,
        ClientRequest::Delete {
            path: "/f".into(),
            recursive: false,
        },
        1700,
    )
    .unwrap();
    let inval = survivors
        .iter()
        .flat_map(|i| heartbeat(&mut sys, *i, 1700))
        .filter(|c| matches!(c, DatanodeCommand::Invalidate { .. }))
        .count();
    assert_eq!(inval, 3);
}
