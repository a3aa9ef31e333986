//! In-process DataNode tests: real DataNodes on 127.0.0.2/3/4 (loopback, port 0) with a stub
//! NameNode that records every request and hands out queued commands in heartbeat replies.

use super::*;
use crate::protocol::{
    AckStatus, DataRequest, DataResponse, DatanodeCommand, DatanodeProtocolRequest, NamenodeReply,
    NamenodeRequest, NamenodeResponse, PipelineAck, ReplicaState, WriteStage,
};
use sheaf_rpc::frame::{read_frame, write_frame};
use sheaf_rpc::packet::{read_packet, write_packet, Packet, CHUNK};
use sheaf_rpc::{BulkStream, ClusterCa, PeerInfo, Service};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;
use tokio::io::AsyncWriteExt;

#[derive(Default)]
struct StubNamenode {
    log: Mutex<Vec<DatanodeProtocolRequest>>,
    commands: Mutex<HashMap<String, Vec<DatanodeCommand>>>,
}

impl Service for StubNamenode {
    type Request = NamenodeRequest;
    type Response = NamenodeResponse;
    async fn handle(self: Arc<Self>, req: NamenodeRequest, _peer: PeerInfo) -> NamenodeResponse {
        // DataNodes speak only the DataNode protocol.
        let NamenodeRequest::Datanode(req) = req else {
            return Ok(NamenodeReply::Done);
        };
        let commands = match &req {
            DatanodeProtocolRequest::Heartbeat { uuid, .. } => self
                .commands
                .lock()
                .unwrap()
                .remove(uuid)
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        self.log.lock().unwrap().push(req);
        Ok(NamenodeReply::Commands(commands))
    }
}

impl StubNamenode {
    fn queue(&self, uuid: &str, cmd: DatanodeCommand) {
        self.commands
            .lock()
            .unwrap()
            .entry(uuid.to_string())
            .or_default()
            .push(cmd);
    }

    /// Waits until a recorded request satisfies `pred`.
    async fn wait_for(
        &self,
        what: &str,
        pred: impl Fn(&DatanodeProtocolRequest) -> bool,
    ) -> DatanodeProtocolRequest {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(r) = self.log.lock().unwrap().iter().find(|r| pred(r)) {
                return r.clone();
            }
            assert!(Instant::now() < deadline, "the NameNode never got {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

struct Cluster {
    _tls: tempfile::TempDir,
    dirs: Vec<tempfile::TempDir>,
    namenode: Arc<StubNamenode>,
    _nn_stop: ShutdownTrigger,
    config: DfsConfig,
    daemon: TlsIdentity,
    user: TlsIdentity,
}

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

impl Cluster {
    async fn new() -> Cluster {
        let tls = tempfile::tempdir().unwrap();
        ClusterCa::create_dir("t", tls.path()).unwrap();
        let daemon = TlsIdentity::load(tls.path(), "daemon").unwrap();
        let user = TlsIdentity::load(tls.path(), "user").unwrap();
        let endpoint =
            sheaf_rpc::quic::server_endpoint(SocketAddr::new(ip(1), 0), &daemon).unwrap();
        let mut config = DfsConfig::default();
        config.namenode.address = endpoint.local_addr().unwrap();
        config.datanode.heartbeat_interval_ms = 100;
        config.datanode.scan_interval_ms = 3_600_000;
        let namenode = Arc::new(StubNamenode::default());
        let (stop, shutdown) = Shutdown::new();
        tokio::spawn(RpcServer::serve(endpoint, namenode.clone(), shutdown));
        Cluster {
            _tls: tls,
            dirs: Vec::new(),
            namenode,
            _nn_stop: stop,
            config,
            daemon,
            user,
        }
    }

    async fn datanode(&mut self, host: u8) -> RunningDatanode {
        let dir = tempfile::tempdir().unwrap();
        let mut config = self.config.clone();
        config.datanode.host = ip(host);
        config.datanode.data_dir = dir.path().to_path_buf();
        self.dirs.push(dir);
        Datanode::start(&config, self.daemon.clone()).await.unwrap()
    }

    fn client(&self) -> BulkConnector {
        let transport = self.config.dfs.data_transport.parse().unwrap();
        BulkConnector::new(transport, &self.user, ip(1)).unwrap()
    }
}

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| ((i * 7919) >> 3) as u8).collect()
}

async fn open_write(
    client: &BulkConnector,
    first: &DatanodeAddr,
    block: ExtendedBlock,
    stage: WriteStage,
    downstream: &[DatanodeAddr],
    resume_offset: u64,
) -> BulkStream {
    let mut s = client.connect(first.data_addr()).await.unwrap();
    let req = DataRequest::WriteBlock {
        block,
        stage,
        downstream: downstream.to_vec(),
        resume_offset,
        client: "test".into(),
    };
    write_frame(&mut s.writer, &req).await.unwrap();
    s.writer.flush().await.unwrap();
    match read_frame::<_, DataResponse>(&mut s.reader).await.unwrap() {
        Some(DataResponse::Ready { start_offset }) => assert_eq!(start_offset, resume_offset),
        other => panic!("write refused: {other:?}"),
    }
    s
}

async fn next_ack(s: &mut BulkStream) -> PipelineAck {
    tokio::time::timeout(
        Duration::from_secs(10),
        read_frame::<_, PipelineAck>(&mut s.reader),
    )
    .await
    .expect("ack in time")
    .unwrap()
    .expect("an ack, not the end of the stream")
}

/// Writes `data[from..]` as packets of `packet` bytes starting at `seqno`, then an empty last packet.
async fn send_packets(
    s: &mut BulkStream,
    data: &[u8],
    from: usize,
    packet: usize,
    seqno: u64,
) -> u64 {
    let mut seq = seqno;
    let mut off = from;
    while off < data.len() {
        let end = (off + packet).min(data.len());
        write_packet(&mut s.writer, seq, off as u64, false, &data[off..end])
            .await
            .unwrap();
        seq += 1;
        off = end;
    }
    write_packet(&mut s.writer, seq, data.len() as u64, true, &[])
        .await
        .unwrap();
    s.writer.flush().await.unwrap();
    seq
}

async fn stored(dn: &RunningDatanode, id: u64) -> Vec<u8> {
    let store = dn.store().clone();
    tokio::task::spawn_blocking(move || {
        let r = store.open_reader(id, 0).unwrap();
        let (mut buf, mut crcs) = (Vec::new(), Vec::new());
        r.read_verified(0, r.block().len as usize, &mut buf, &mut crcs)
            .unwrap();
        buf
    })
    .await
    .unwrap()
}

fn received_by(req: &DatanodeProtocolRequest, uuid: &str, block: ExtendedBlock) -> bool {
    matches!(req, DatanodeProtocolRequest::IncrementalBlockReport { uuid: u, received, .. } if u == uuid && received.contains(&block))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_stores_identical_replicas_on_three_datanodes() {
    pipeline_round_trip("tcp").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_over_quic_stores_identical_replicas() {
    pipeline_round_trip("quic").await;
}

async fn pipeline_round_trip(transport: &str) {
    let mut c = Cluster::new().await;
    c.config.dfs.data_transport = transport.into();
    let dns = [
        c.datanode(2).await,
        c.datanode(3).await,
        c.datanode(4).await,
    ];
    let addrs: Vec<DatanodeAddr> = dns.iter().map(|d| d.addr()).collect();
    for a in &addrs {
        c.namenode
            .wait_for(
                "registration",
                |r| matches!(r, DatanodeProtocolRequest::RegisterDatanode { addr, .. } if addr == a),
            )
            .await;
    }
    let data = payload(9 * CHUNK + 4321);
    let block = ExtendedBlock {
        id: 1001,
        gen: 1,
        len: 0,
    };
    let client = c.client();
    let mut s = open_write(
        &client,
        &addrs[0],
        block,
        WriteStage::Create,
        &addrs[1..],
        0,
    )
    .await;
    let last = send_packets(&mut s, &data, 0, 4 * CHUNK, 0).await;
    for seq in 0..=last {
        let ack = next_ack(&mut s).await;
        assert_eq!(
            ack,
            PipelineAck {
                seqno: seq,
                statuses: vec![AckStatus::Success; 3]
            }
        );
    }
    let done = ExtendedBlock {
        id: 1001,
        gen: 1,
        len: data.len() as u64,
    };
    for (i, dn) in dns.iter().enumerate() {
        assert_eq!(
            dn.store().replica(1001).map(|r| (r.block, r.state)),
            Some((done, ReplicaState::Finalized))
        );
        assert_eq!(stored(dn, 1001).await, data, "replica {i}");
        let meta = std::fs::read(dn.store().dir().join("current/blk_1001_1.meta")).unwrap();
        assert_eq!(meta.len(), 6 + 10 * 4);
        let first_crc = u32::from_be_bytes([meta[6], meta[7], meta[8], meta[9]]);
        assert_eq!(first_crc, crc32fast::hash(&data[..CHUNK]));
        c.namenode
            .wait_for("incremental report", |r| {
                received_by(r, &addrs[i].uuid, done)
            })
            .await;
    }
    c.namenode
        .wait_for(
            "heartbeat with used bytes",
            |r| matches!(r, DatanodeProtocolRequest::Heartbeat { used, .. } if *used >= data.len() as u64),
        )
        .await;
    // A verified read of a middle range starts at the chunk boundary below it.
    let mut r = client.connect(addrs[1].data_addr()).await.unwrap();
    write_frame(
        &mut r.writer,
        &DataRequest::ReadBlock {
            block: done,
            offset: CHUNK as u64 + 10,
            len: 100,
        },
    )
    .await
    .unwrap();
    r.writer.flush().await.unwrap();
    let start = match read_frame::<_, DataResponse>(&mut r.reader).await.unwrap() {
        Some(DataResponse::Ready { start_offset }) => start_offset,
        other => panic!("{other:?}"),
    };
    assert_eq!(start, CHUNK as u64);
    let mut p = Packet::default();
    assert!(read_packet(&mut r.reader, &mut p).await.unwrap());
    let h = p.header.unwrap();
    assert!(h.last);
    assert_eq!(h.offset, CHUNK as u64);
    assert_eq!(p.payload, &data[CHUNK..2 * CHUNK]);
    for dn in dns {
        dn.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn middle_datanode_dying_shows_in_acks_and_survivors_recover() {
    let mut c = Cluster::new().await;
    let dn1 = c.datanode(2).await;
    let dn2 = c.datanode(3).await;
    let dn3 = c.datanode(4).await;
    let (a1, a2, a3) = (dn1.addr(), dn2.addr(), dn3.addr());
    let data = payload(12 * CHUNK);
    let packet = 2 * CHUNK;
    let block = ExtendedBlock {
        id: 2002,
        gen: 1,
        len: 0,
    };
    let client = c.client();
    let mut s = open_write(
        &client,
        &a1,
        block,
        WriteStage::Create,
        &[a2.clone(), a3.clone()],
        0,
    )
    .await;
    write_packet(&mut s.writer, 0, 0, false, &data[..packet])
        .await
        .unwrap();
    s.writer.flush().await.unwrap();
    assert_eq!(next_ack(&mut s).await.statuses, vec![AckStatus::Success; 3]);

    dn2.shutdown().await;
    let mut short_ack = None;
    let mut seq = 1u64;
    let mut off = packet;
    // Keep writing: DN1 must go on acking for itself only.
    while off < data.len() && short_ack.is_none() {
        write_packet(
            &mut s.writer,
            seq,
            off as u64,
            false,
            &data[off..off + packet],
        )
        .await
        .unwrap();
        s.writer.flush().await.unwrap();
        let ack = next_ack(&mut s).await;
        assert_eq!(ack.seqno, seq);
        if ack.statuses.len() < 3 {
            short_ack = Some(ack);
        }
        seq += 1;
        off += packet;
    }
    let ack = short_ack.expect("an ack without the dead DataNode");
    assert_eq!(
        ack.statuses,
        vec![AckStatus::Success],
        "DN1 stored it; DN2 (and DN3 behind it) are missing"
    );
    drop(s);

    // Pipeline recovery: new generation, resume at what all three acked (packet 0).
    let block2 = ExtendedBlock {
        id: 2002,
        gen: 2,
        len: 0,
    };
    let mut s = open_write(
        &client,
        &a1,
        block2,
        WriteStage::Recover,
        std::slice::from_ref(&a3),
        packet as u64,
    )
    .await;
    let last = send_packets(&mut s, &data, packet, packet, 0).await;
    for seq in 0..=last {
        assert_eq!(
            next_ack(&mut s).await,
            PipelineAck {
                seqno: seq,
                statuses: vec![AckStatus::Success; 2]
            }
        );
    }
    let done = ExtendedBlock {
        id: 2002,
        gen: 2,
        len: data.len() as u64,
    };
    for dn in [&dn1, &dn3] {
        assert_eq!(dn.store().replica(2002).unwrap().block, done);
        assert_eq!(stored(dn, 2002).await, data);
        assert!(dn.store().dir().join("current/blk_2002_2.meta").exists());
    }
    dn1.shutdown().await;
    dn3.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_of_a_flipped_byte_aborts_the_stream_and_reports_the_replica() {
    let mut c = Cluster::new().await;
    let dn = c.datanode(2).await;
    let addr = dn.addr();
    let data = payload(20 * CHUNK);
    let client = c.client();
    let block = ExtendedBlock {
        id: 3003,
        gen: 7,
        len: 0,
    };
    let mut s = open_write(&client, &addr, block, WriteStage::Create, &[], 0).await;
    let last = send_packets(&mut s, &data, 0, 4 * CHUNK, 0).await;
    for _ in 0..=last {
        assert_eq!(next_ack(&mut s).await.statuses, vec![AckStatus::Success]);
    }
    let path = dn.store().dir().join("current/blk_3003");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[18 * CHUNK + 5] ^= 0x10;
    std::fs::write(&path, bytes).unwrap();

    let done = ExtendedBlock {
        id: 3003,
        gen: 7,
        len: data.len() as u64,
    };
    let mut r = client.connect(addr.data_addr()).await.unwrap();
    write_frame(
        &mut r.writer,
        &DataRequest::ReadBlock {
            block: done,
            offset: 0,
            len: done.len,
        },
    )
    .await
    .unwrap();
    r.writer.flush().await.unwrap();
    assert!(matches!(
        read_frame::<_, DataResponse>(&mut r.reader).await.unwrap(),
        Some(DataResponse::Ready { start_offset: 0 })
    ));
    let mut p = Packet::default();
    let mut got = 0usize;
    let mut saw_last = false;
    while let Ok(true) = read_packet(&mut r.reader, &mut p).await {
        let h = p.header.unwrap();
        let at = h.offset as usize;
        assert_eq!(p.payload, &data[at..at + p.payload.len()]);
        got += p.payload.len();
        saw_last |= h.last;
    }
    assert!(!saw_last, "the stream must not end normally");
    assert!(
        got <= 18 * CHUNK,
        "no byte of the bad chunk is sent ({got} bytes came)"
    );
    c.namenode
        .wait_for("corrupt replica report", |r| {
            matches!(r, DatanodeProtocolRequest::ReportCorruptReplica { uuid, block } if *uuid == addr.uuid && *block == done)
        })
        .await;
    dn.shutdown().await;
}

/// Writes a replica through a one-node pipeline without finalizing (`finalize` false) or with.
async fn write_replica(dn: &RunningDatanode, id: u64, gen: u64, data: &[u8], finalize: bool) {
    let store = dn.store().clone();
    let data = data.to_vec();
    tokio::task::spawn_blocking(move || {
        let mut w = store
            .create_writer(ExtendedBlock { id, gen, len: 0 }, WriteStage::Create, 0)
            .unwrap();
        w.append(0, &data, &sheaf_rpc::packet::chunk_checksums(&data))
            .unwrap();
        if finalize {
            w.finalize().unwrap();
        }
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_commands_replicate_invalidate_and_recover() {
    let mut c = Cluster::new().await;
    let dns = [
        c.datanode(2).await,
        c.datanode(3).await,
        c.datanode(4).await,
    ];
    let addrs: Vec<DatanodeAddr> = dns.iter().map(|d| d.addr()).collect();
    let data = payload(3 * CHUNK + 17);

    // Replicate: DN1 copies its replica to DN2 and DN3.
    write_replica(&dns[0], 10, 3, &data, true).await;
    let b10 = ExtendedBlock {
        id: 10,
        gen: 3,
        len: data.len() as u64,
    };
    c.namenode.queue(
        &addrs[0].uuid,
        DatanodeCommand::Replicate {
            block: b10,
            targets: addrs[1..].to_vec(),
        },
    );
    for (i, a) in addrs.iter().enumerate().skip(1) {
        c.namenode
            .wait_for("replica received", |r| received_by(r, &a.uuid, b10))
            .await;
        assert_eq!(stored(&dns[i], 10).await, data);
    }

    // Invalidate: DN2 deletes it and reports the deletion.
    c.namenode.queue(
        &addrs[1].uuid,
        DatanodeCommand::Invalidate { blocks: vec![10] },
    );
    c.namenode
        .wait_for("deletion report", |r| {
            matches!(r, DatanodeProtocolRequest::IncrementalBlockReport { uuid, deleted, .. } if *uuid == addrs[1].uuid && deleted.contains(&10))
        })
        .await;
    assert!(dns[1].store().replica(10).is_none());
    assert!(!dns[1].store().dir().join("current/blk_10").exists());

    // Lease recovery: three unfinished replicas of different lengths end at the shortest.
    write_replica(&dns[0], 20, 5, &data, false).await;
    write_replica(&dns[1], 20, 5, &data[..2 * CHUNK + 3], false).await;
    write_replica(&dns[2], 20, 5, &data[..3 * CHUNK], false).await;
    let b20 = ExtendedBlock {
        id: 20,
        gen: 5,
        len: data.len() as u64,
    };
    c.namenode.queue(
        &addrs[2].uuid,
        DatanodeCommand::RecoverBlock {
            block: b20,
            new_gen: 6,
            replicas: addrs.clone(),
        },
    );
    let commit = c
        .namenode
        .wait_for("commit", |r| {
            matches!(
                r,
                DatanodeProtocolRequest::CommitBlockSynchronization { .. }
            )
        })
        .await;
    let DatanodeProtocolRequest::CommitBlockSynchronization {
        block,
        new_gen,
        new_len,
        mut nodes,
    } = commit
    else {
        unreachable!()
    };
    assert_eq!((block, new_gen, new_len), (b20, 6, 2 * CHUNK as u64 + 3));
    nodes.sort();
    let mut want: Vec<String> = addrs.iter().map(|a| a.uuid.clone()).collect();
    want.sort();
    assert_eq!(nodes, want);
    for dn in &dns {
        let info = dn.store().replica(20).unwrap();
        assert_eq!(
            (info.block.gen, info.block.len, info.state),
            (6, new_len, ReplicaState::Finalized)
        );
        assert_eq!(stored(dn, 20).await, &data[..new_len as usize]);
    }
    for dn in dns {
        dn.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_dir_that_cannot_be_created_fails_startup_with_its_name() {
    let c = Cluster::new().await;
    let mut config = c.config.clone();
    config.datanode.host = ip(2);
    // Nobody, root included, may create entries in /sys.
    config.datanode.data_dir = PathBuf::from("/sys/sheaf-datanode-test");
    let err = Datanode::start(&config, c.daemon.clone())
        .await
        .err()
        .expect("startup must fail");
    let msg = err.to_string();
    assert!(
        msg.contains("/sys/sheaf-datanode-test") && msg.contains("read-only"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_is_refused_with_a_clear_error_and_reported_in_heartbeats() {
    let mut c = Cluster::new().await;
    c.config.datanode.capacity_bytes = 2 * CHUNK as u64;
    let dn = c.datanode(2).await;
    let addr = dn.addr();
    let data = payload(4 * CHUNK);
    let client = c.client();
    let block = ExtendedBlock {
        id: 4004,
        gen: 1,
        len: 0,
    };
    let mut s = open_write(&client, &addr, block, WriteStage::Create, &[], 0).await;
    send_packets(&mut s, &data, 0, CHUNK, 0).await;
    let mut statuses = Vec::new();
    while let Ok(Ok(Some(ack))) = tokio::time::timeout(
        Duration::from_secs(5),
        read_frame::<_, PipelineAck>(&mut s.reader),
    )
    .await
    {
        statuses.push(ack.statuses[0]);
    }
    assert_eq!(statuses.first(), Some(&AckStatus::Success));
    assert_eq!(statuses.last(), Some(&AckStatus::Error), "{statuses:?}");
    let hb = c
        .namenode
        .wait_for("heartbeat with the error", |r| {
            matches!(
                r,
                DatanodeProtocolRequest::Heartbeat {
                    last_error: Some(_),
                    ..
                }
            )
        })
        .await;
    let DatanodeProtocolRequest::Heartbeat {
        last_error: Some(e),
        ..
    } = hb
    else {
        unreachable!()
    };
    assert!(e.contains("is full"), "{e}");
    dn.shutdown().await;
}

/// Throughput of a 3-DataNode pipeline write and a single-replica read on this machine
/// (run with `--ignored --nocapture`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn pipeline_throughput() {
    let mut c = Cluster::new().await;
    let dns = [
        c.datanode(2).await,
        c.datanode(3).await,
        c.datanode(4).await,
    ];
    let addrs: Vec<DatanodeAddr> = dns.iter().map(|d| d.addr()).collect();
    let mb: usize = std::env::var("SHEAF_TEST_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let block_len = 64usize << 20;
    let blocks = (mb << 20).div_ceil(block_len) as u64;
    let packet = 1usize << 20;
    let data = payload(block_len);
    let client = c.client();
    let started = Instant::now();
    for id in 0..blocks {
        let block = ExtendedBlock {
            id: 9000 + id,
            gen: 1,
            len: 0,
        };
        let BulkStream {
            mut reader,
            mut writer,
            ..
        } = open_write(
            &client,
            &addrs[0],
            block,
            WriteStage::Create,
            &addrs[1..],
            0,
        )
        .await;
        let last = (block_len / packet) as u64;
        let acks = tokio::spawn(async move {
            loop {
                let ack = read_frame::<_, PipelineAck>(&mut reader)
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(ack.statuses, vec![AckStatus::Success; 3]);
                if ack.seqno == last {
                    break;
                }
            }
        });
        for (seq, piece) in data.chunks(packet).enumerate() {
            write_packet(&mut writer, seq as u64, (seq * packet) as u64, false, piece)
                .await
                .unwrap();
        }
        write_packet(&mut writer, last, block_len as u64, true, &[])
            .await
            .unwrap();
        writer.flush().await.unwrap();
        acks.await.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    let total = blocks as f64 * block_len as f64;
    println!(
        "pipeline write x3: {:.0} MB/s ({} MB in {secs:.2}s)",
        total / secs / 1e6,
        total / 1e6
    );
    let started = Instant::now();
    let mut p = Packet::default();
    for id in 0..blocks {
        let block = ExtendedBlock {
            id: 9000 + id,
            gen: 1,
            len: block_len as u64,
        };
        let mut r = client
            .connect(addrs[(id % 3) as usize].data_addr())
            .await
            .unwrap();
        write_frame(
            &mut r.writer,
            &DataRequest::ReadBlock {
                block,
                offset: 0,
                len: block.len,
            },
        )
        .await
        .unwrap();
        r.writer.flush().await.unwrap();
        read_frame::<_, DataResponse>(&mut r.reader)
            .await
            .unwrap()
            .unwrap();
        let mut got = 0;
        while read_packet(&mut r.reader, &mut p).await.unwrap() {
            got += p.payload.len();
            if p.header.unwrap().last {
                break;
            }
        }
        assert_eq!(got, block_len);
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "read: {:.0} MB/s ({} MB in {secs:.2}s)",
        total / secs / 1e6,
        total / 1e6
    );
    for dn in dns {
        dn.shutdown().await;
    }
}
