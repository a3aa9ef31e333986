use super::*;

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn blk(id: BlockId, gen: u64) -> ExtendedBlock {
    ExtendedBlock { id, gen, len: 0 }
}

/// Writes `bytes` in packets of `packet` bytes the way a pipeline does.
fn write_all(w: &mut ReplicaWriter, bytes: &[u8], packet: usize) {
    let mut off = w.len() as usize;
    while off < bytes.len() {
        let end = (off + packet).min(bytes.len());
        let p = &bytes[off..end];
        w.append(off as u64, p, &chunk_checksums(p)).unwrap();
        off = end;
    }
}

fn read_back(store: &BlockStore, id: BlockId) -> Result<Vec<u8>, StoreError> {
    let r = store.open_reader(id, 0)?;
    let mut buf = Vec::new();
    let mut crcs = Vec::new();
    r.read_verified(0, r.block().len as usize, &mut buf, &mut crcs)?;
    Ok(buf)
}

#[test]
fn write_finalize_reload_and_read_verified() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = data(3 * CHUNK + 123, 1);
    {
        let store = BlockStore::open(dir.path(), 0, 0).unwrap();
        let mut w = store
            .create_writer(blk(7, 1001), WriteStage::Create, 0)
            .unwrap();
        write_all(&mut w, &bytes, 2 * CHUNK);
        assert_eq!(store.replica(7).unwrap().state, ReplicaState::InProgress);
        assert!(dir.path().join("rbw/blk_7").exists());
        let b = w.finalize().unwrap();
        assert_eq!(
            b,
            ExtendedBlock {
                id: 7,
                gen: 1001,
                len: bytes.len() as u64
            }
        );
        assert!(dir.path().join("current/blk_7").exists());
        assert!(dir.path().join("current/blk_7_1001.meta").exists());
        assert!(!dir.path().join("rbw/blk_7").exists());
        assert_eq!(
            std::fs::metadata(dir.path().join("current/blk_7_1001.meta"))
                .unwrap()
                .len(),
            6 + 4 * 4
        );
        assert_eq!(store.storage().used, bytes.len() as u64 + 22);
    }
    let store = BlockStore::open(dir.path(), 0, 0).unwrap();
    assert_eq!(
        store.finalized(),
        vec![ExtendedBlock {
            id: 7,
            gen: 1001,
            len: bytes.len() as u64
        }]
    );
    assert_eq!(read_back(&store, 7).unwrap(), bytes);
    // Partial, chunk-aligned reads return the stored crcs of those chunks.
    let r = store.open_reader(7, 1001).unwrap();
    let (mut buf, mut crcs) = (Vec::new(), Vec::new());
    r.read_verified(CHUNK as u64, 2 * CHUNK + 123, &mut buf, &mut crcs)
        .unwrap();
    assert_eq!(buf, &bytes[CHUNK..]);
    assert_eq!(crcs, chunk_checksums(&buf));
    assert!(
        store.open_reader(7, 1002).is_err(),
        "a newer generation than the replica's is not served"
    );
}

#[test]
fn uuid_is_created_once_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let a = load_or_create_uuid(dir.path()).unwrap();
    let b = load_or_create_uuid(dir.path()).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.len(), 36);
}

#[test]
fn flipped_byte_is_detected_on_read() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlockStore::open(dir.path(), 0, 0).unwrap();
    let bytes = data(2 * CHUNK + 5, 2);
    let mut w = store
        .create_writer(blk(9, 1), WriteStage::Create, 0)
        .unwrap();
    write_all(&mut w, &bytes, CHUNK);
    w.finalize().unwrap();
    let path = dir.path().join("current/blk_9");
    let mut on_disk = std::fs::read(&path).unwrap();
    on_disk[CHUNK + 77] ^= 0x40;
    std::fs::write(&path, &on_disk).unwrap();
    match read_back(&store, 9) {
        Err(StoreError::Corrupt { id: 9, offset, .. }) => assert_eq!(offset, CHUNK as u64),
        other => panic!("expected corruption, got {other:?}"),
    }
    // A truncated block file is corrupt too, not a short read.
    std::fs::write(&path, &bytes[..CHUNK]).unwrap();
    assert!(matches!(
        read_back(&store, 9),
        Err(StoreError::Corrupt { .. })
    ));
}

#[test]
fn recovery_truncates_and_regenerates_the_last_crc() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlockStore::open(dir.path(), 0, 0).unwrap();
    let bytes = data(3 * CHUNK, 3);
    let mut w = store
        .create_writer(blk(11, 5), WriteStage::Create, 0)
        .unwrap();
    write_all(&mut w, &bytes, CHUNK);
    drop(w); // the writer died mid-block
    let cut = CHUNK as u64 + 1000;
    let b = store.finalize_recovered(11, 6, cut).unwrap();
    assert_eq!(
        b,
        ExtendedBlock {
            id: 11,
            gen: 6,
            len: cut
        }
    );
    assert!(dir.path().join("current/blk_11_6.meta").exists());
    assert!(!dir.path().join("rbw/blk_11_5.meta").exists());
    assert_eq!(read_back(&store, 11).unwrap(), &bytes[..cut as usize]);
    // Survives a restart.
    let store = BlockStore::open(dir.path(), 0, 0).unwrap();
    assert_eq!(store.finalized(), vec![b]);
    assert_eq!(read_back(&store, 11).unwrap(), &bytes[..cut as usize]);
    assert!(
        store.finalize_recovered(11, 5, cut).is_err(),
        "an older generation is refused"
    );
}

#[test]
fn pipeline_recover_resumes_at_an_offset_with_a_new_generation() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlockStore::open(dir.path(), 0, 0).unwrap();
    let bytes = data(4 * CHUNK + 99, 4);
    let mut w = store
        .create_writer(blk(12, 1), WriteStage::Create, 0)
        .unwrap();
    write_all(&mut w, &bytes[..3 * CHUNK], CHUNK);
    // The new pipeline resumes at 2 chunks (what every survivor acked).
    let mut w2 = store
        .create_writer(blk(12, 2), WriteStage::Recover, 2 * CHUNK as u64)
        .unwrap();
    assert_eq!(w2.len(), 2 * CHUNK as u64);
    assert!(
        w.append(3 * CHUNK as u64, &bytes[3 * CHUNK..4 * CHUNK], &[0])
            .is_err(),
        "the old writer lost the replica"
    );
    write_all(&mut w2, &bytes, CHUNK);
    w2.finalize().unwrap();
    assert_eq!(
        store.finalized(),
        vec![ExtendedBlock {
            id: 12,
            gen: 2,
            len: bytes.len() as u64
        }]
    );
    assert_eq!(read_back(&store, 12).unwrap(), bytes);
    // Resuming at an unaligned length merges the partial chunk's crc.
    let mut w3 = store
        .create_writer(blk(12, 3), WriteStage::Recover, 100)
        .unwrap();
    write_all(&mut w3, &bytes[..CHUNK + 50], CHUNK);
    w3.finalize().unwrap();
    assert_eq!(read_back(&store, 12).unwrap(), &bytes[..CHUNK + 50]);
}

#[test]
fn unfinished_replica_is_trimmed_to_its_consistent_prefix_on_restart() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = data(2 * CHUNK + 10, 5);
    {
        let store = BlockStore::open(dir.path(), 0, 0).unwrap();
        let mut w = store
            .create_writer(blk(13, 1), WriteStage::Create, 0)
            .unwrap();
        write_all(&mut w, &bytes, CHUNK);
    }
    // Simulate a crash that wrote data past the last crc.
    let mut f = OpenOptions::new()
        .append(true)
        .open(dir.path().join("rbw/blk_13"))
        .unwrap();
    f.write_all(&[1, 2, 3]).unwrap();
    let store = BlockStore::open(dir.path(), 0, 0).unwrap();
    let info = store.replica(13).unwrap();
    assert_eq!(info.state, ReplicaState::InProgress);
    assert_eq!(
        info.block.len,
        2 * CHUNK as u64,
        "the chunk whose crc no longer matches is dropped"
    );
    assert!(
        store.finalized().is_empty(),
        "unfinished replicas are not in the block report"
    );
    assert_eq!(read_back(&store, 13).unwrap(), &bytes[..2 * CHUNK]);
}

#[test]
fn delete_removes_files_and_space() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlockStore::open(dir.path(), 0, 0).unwrap();
    let mut w = store
        .create_writer(blk(14, 1), WriteStage::Create, 0)
        .unwrap();
    write_all(&mut w, &data(1000, 6), 1000);
    w.finalize().unwrap();
    assert!(store.storage().used > 0);
    assert_eq!(store.delete(14).map(|b| b.len), Some(1000));
    assert_eq!(store.storage().used, 0);
    assert!(!dir.path().join("current/blk_14").exists());
    assert!(store.delete(14).is_none());
    assert!(matches!(
        store.open_reader(14, 0),
        Err(StoreError::NotFound(14))
    ));
}

#[test]
fn capacity_exhaustion_is_a_clear_storage_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlockStore::open(dir.path(), 2 * CHUNK as u64, 0).unwrap();
    let mut w = store
        .create_writer(blk(15, 1), WriteStage::Create, 0)
        .unwrap();
    let bytes = data(3 * CHUNK, 7);
    w.append(0, &bytes[..CHUNK], &chunk_checksums(&bytes[..CHUNK]))
        .unwrap();
    let err = w
        .append(
            CHUNK as u64,
            &bytes[CHUNK..],
            &chunk_checksums(&bytes[CHUNK..]),
        )
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, StoreError::Storage(_)), "{err:?}");
    assert!(
        msg.contains("is full") && msg.contains(&dir.path().display().to_string()),
        "{msg}"
    );
    assert_eq!(store.last_error().as_deref(), Some(msg.as_str()));
    assert!(matches!(
        DatanodeError::from(err),
        DatanodeError::Storage(_)
    ));
    let report = store.storage();
    assert_eq!(report.capacity, 2 * CHUNK as u64);
    assert!(report.remaining < CHUNK as u64);
}

#[test]
fn read_only_and_full_disk_errors_name_the_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlockStore::open(dir.path(), 0, 0).unwrap();
    store.inject_write_fault(Some(libc::EROFS));
    let err = store
        .create_writer(blk(16, 1), WriteStage::Create, 0)
        .err()
        .unwrap();
    assert!(err.to_string().contains("is read-only"), "{err}");
    store.inject_write_fault(None);
    let mut w = store
        .create_writer(blk(16, 1), WriteStage::Create, 0)
        .unwrap();
    store.inject_write_fault(Some(libc::ENOSPC));
    let p = data(100, 8);
    let err = w.append(0, &p, &chunk_checksums(&p)).unwrap_err();
    assert!(err.to_string().contains("is full"), "{err}");
    assert!(store.last_error().unwrap().contains("is full"));
    store.inject_write_fault(None);
    w.append(0, &p, &chunk_checksums(&p)).unwrap();
    w.finalize().unwrap();
    assert_eq!(
        store.last_error(),
        None,
        "a successful write clears the error"
    );
}

#[test]
fn unwritable_data_dir_is_refused_at_open() {
    // Root ignores mode bits, so this runs only as a normal user; the injected-fault test
    // above covers the error path for root.
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o555)).unwrap();
    let err = BlockStore::open(&dir.path().join("dn"), 0, 0)
        .err()
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(err.to_string().contains("is read-only"), "{err}");
}

#[test]
fn block_checksum_is_md5_of_chunk_crcs() {
    use md5::{Digest, Md5};
    let dir = tempfile::tempdir().unwrap();
    let store = BlockStore::open(dir.path(), 0, 0).unwrap();
    let bytes = data(2 * CHUNK + 3, 9);
    let mut w = store
        .create_writer(blk(17, 1), WriteStage::Create, 0)
        .unwrap();
    write_all(&mut w, &bytes, CHUNK);
    let b = w.finalize().unwrap();
    let (per, count, digest) = store.checksum(b).unwrap();
    let mut md5 = Md5::new();
    for c in chunk_checksums(&bytes) {
        md5.update(c.to_be_bytes());
    }
    assert_eq!(
        (per, count, digest),
        (CHUNK as u32, 3, md5.finalize().to_vec())
    );
}

#[test]
fn replicate_refuses_an_existing_finalized_replica_but_replaces_a_stale_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlockStore::open(dir.path(), 0, 0).unwrap();
    let mut w = store
        .create_writer(blk(18, 3), WriteStage::Create, 0)
        .unwrap();
    write_all(&mut w, &data(10, 1), 10);
    w.finalize().unwrap();
    assert!(store
        .create_writer(blk(18, 3), WriteStage::Replicate, 0)
        .is_err());
    let mut w = store
        .create_writer(blk(18, 4), WriteStage::Replicate, 0)
        .unwrap();
    write_all(&mut w, &data(20, 2), 20);
    w.finalize().unwrap();
    assert_eq!(
        store.finalized(),
        vec![ExtendedBlock {
            id: 18,
            gen: 4,
            len: 20
        }]
    );
    assert!(!dir.path().join("current/blk_18_3.meta").exists());
}
