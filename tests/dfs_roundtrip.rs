//! End-to-end DFS round trips through the CLI on a real multi-process mini cluster: every size
//! around block boundaries, ~200 MiB, 1,000 small files, 4 concurrent writers, and the shell
//! commands' Hadoop-style output.

mod common;

use common::mini_dfs::{data, one_line_error, MiniDfs, MiniDfsOptions, BLOCK};
use std::io::Write;
use std::process::Stdio;

const OCTET: u8 = 41;

fn cluster(datanodes: usize) -> MiniDfs {
    MiniDfs::start(MiniDfsOptions::new(datanodes, OCTET))
}

#[test]
fn files_of_every_size_around_block_boundaries_round_trip_byte_identical() {
    let dfs = cluster(3);
    let local = dfs.dir.path().join("local");
    std::fs::create_dir_all(&local).unwrap();
    let sizes = [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK + 12345];
    dfs.ok(&["dfs", "mkdir", "-p", "/rt"]);
    for (i, size) in sizes.iter().enumerate() {
        let bytes = data(*size, i as u64 + 1);
        let src = local.join(format!("in{i}"));
        std::fs::write(&src, &bytes).unwrap();
        let dst = format!("/rt/f{i}");
        dfs.ok(&["dfs", "put", src.to_str().unwrap(), &dst]);
        let back = local.join(format!("out{i}"));
        dfs.ok(&["dfs", "get", &dst, back.to_str().unwrap()]);
        assert!(
            std::fs::read(&back).unwrap() == bytes,
            "get of {size} bytes differs"
        );
        let cat = dfs.sheaf(&["dfs", "cat", &dst]);
        assert!(cat.status.success());
        assert!(cat.stdout == bytes, "cat of {size} bytes differs");
        // Ranged reads ask the DataNodes for exactly their bytes, across block boundaries too.
        let head = dfs.sheaf(&["dfs", "head", &dst]);
        assert!(head.status.success());
        assert!(
            head.stdout == bytes[..(*size).min(1024)],
            "head of {size} bytes differs"
        );
        let tail = dfs.sheaf(&["dfs", "tail", &dst]);
        assert!(tail.status.success());
        assert!(
            tail.stdout == bytes[size.saturating_sub(1024)..],
            "tail of {size} bytes differs"
        );
        let stat = dfs.ok(&["dfs", "stat", "%b %r %o %F", &dst]);
        assert_eq!(stat.trim(), format!("{size} 3 {BLOCK} regular file"));
    }
    let fsck = dfs.ok(&["fsck", "/rt"]);
    assert!(
        fsck.trim_end()
            .ends_with("The filesystem under path '/rt' is HEALTHY"),
        "{fsck}"
    );
}

#[test]
fn a_200_mib_file_round_trips_through_put_get_and_cat() {
    let dfs = cluster(3);
    let bytes = data(200 << 20, 7);
    let src = dfs.dir.path().join("big");
    std::fs::write(&src, &bytes).unwrap();
    dfs.ok(&["dfs", "put", src.to_str().unwrap(), "/big"]);
    let back = dfs.dir.path().join("big.out");
    dfs.ok(&["dfs", "get", "/big", back.to_str().unwrap()]);
    assert!(std::fs::read(&back).unwrap() == bytes, "get differs");
    std::fs::remove_file(&back).unwrap();
    let cat = dfs.sheaf(&["dfs", "cat", "/big"]);
    assert!(cat.status.success());
    assert_eq!(cat.stdout.len(), bytes.len());
    assert!(cat.stdout == bytes, "cat differs");
    let ls = dfs.ok(&["dfs", "ls", "/"]);
    assert!(ls.contains(&format!(" {} ", 200 << 20)), "{ls}");
}

#[test]
fn a_thousand_small_files_round_trip_as_a_directory() {
    let dfs = cluster(3);
    let src = dfs.dir.path().join("many");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    for i in 0..1000 {
        let dir = if i % 2 == 0 {
            src.clone()
        } else {
            src.join("sub")
        };
        std::fs::write(dir.join(format!("f{i:04}")), data(100 + i, i as u64)).unwrap();
    }
    dfs.ok(&["dfs", "put", src.to_str().unwrap(), "/many"]);
    let listing = dfs.ok(&["dfs", "ls", "-R", "/many"]);
    assert_eq!(listing.lines().filter(|l| l.starts_with('-')).count(), 1000);
    assert_eq!(listing.lines().filter(|l| l.starts_with('d')).count(), 1);
    let count = dfs.ok(&["dfs", "du", "-s", "/many"]);
    let total: usize = (0..1000).map(|i| 100 + i).sum();
    assert!(count.starts_with(&total.to_string()), "{count}");
    let back = dfs.dir.path().join("back");
    dfs.ok(&["dfs", "get", "/many", back.to_str().unwrap()]);
    for i in 0..1000 {
        let dir = if i % 2 == 0 {
            back.clone()
        } else {
            back.join("sub")
        };
        assert_eq!(
            std::fs::read(dir.join(format!("f{i:04}"))).unwrap(),
            data(100 + i, i as u64),
            "file {i}"
        );
    }
}

#[test]
fn four_concurrent_writers_all_land_intact() {
    let dfs = cluster(3);
    let payloads: Vec<Vec<u8>> = (0..4)
        .map(|i| data(5 * BLOCK + 1000 * i, 100 + i as u64))
        .collect();
    let children: Vec<_> = payloads
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut child = common::mini_dfs::sheaf_command()
                .arg("--conf")
                .arg(&dfs.conf)
                .args(["dfs", "put", "-", &format!("/w{i}")])
                .stdin(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let mut stdin = child.stdin.take().unwrap();
            let p = p.clone();
            let feeder = std::thread::spawn(move || {
                for c in p.chunks(100_000) {
                    stdin.write_all(c).unwrap();
                }
            });
            (child, feeder)
        })
        .collect();
    for (child, feeder) in children {
        feeder.join().unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for (i, p) in payloads.iter().enumerate() {
        let out = dfs.sheaf(&["dfs", "cat", &format!("/w{i}")]);
        assert!(out.stdout == *p, "writer {i} differs");
    }
}

#[test]
fn shell_commands_behave_like_hadoop() {
    let dfs = cluster(3);
    dfs.ok(&["dfs", "mkdir", "-p", "/a/b"]);
    dfs.ok(&["dfs", "mkdir", "-p", "/a/b"]);
    let src = dfs.dir.path().join("x.txt");
    std::fs::write(&src, b"hello sheaf\n").unwrap();
    dfs.ok(&["dfs", "put", src.to_str().unwrap(), "/a/b"]);
    let ls = dfs.ok(&["dfs", "ls", "/a/b"]);
    let lines: Vec<&str> = ls.lines().collect();
    assert_eq!(lines[0], "Found 1 items");
    let cols: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(cols[0], "-rw-r--r--");
    assert_eq!(cols[1], "3");
    assert_eq!(cols[4], "12");
    assert_eq!(cols[5].len(), 10, "yyyy-MM-dd: {}", cols[5]);
    assert_eq!(cols[6].len(), 5, "HH:mm: {}", cols[6]);
    assert_eq!(cols[7], "/a/b/x.txt");
    let ls_root = dfs.ok(&["dfs", "ls", "/"]);
    assert!(
        ls_root
            .lines()
            .any(|l| l.starts_with("drwxr-xr-x") && l.contains(" - ") && l.ends_with(" /a")),
        "{ls_root}"
    );
    // test: exit code only
    assert!(dfs
        .sheaf(&["dfs", "test", "-e", "/a/b/x.txt"])
        .status
        .success());
    assert!(dfs
        .sheaf(&["dfs", "test", "-f", "/a/b/x.txt"])
        .status
        .success());
    assert!(dfs
        .sheaf(&["dfs", "test", "-s", "/a/b/x.txt"])
        .status
        .success());
    let not_dir = dfs.sheaf(&["dfs", "test", "-d", "/a/b/x.txt"]);
    assert_eq!(not_dir.status.code(), Some(1));
    assert!(not_dir.stderr.is_empty() && not_dir.stdout.is_empty());
    assert_eq!(
        dfs.sheaf(&["dfs", "test", "-e", "/nope"]).status.code(),
        Some(1)
    );
    // cp, mv, touchz, tail, du, df, checksum, setrep
    dfs.ok(&["dfs", "cp", "/a/b/x.txt", "/a/copy.txt"]);
    assert_eq!(dfs.ok(&["dfs", "cat", "/a/copy.txt"]), "hello sheaf\n");
    dfs.ok(&["dfs", "mv", "/a/copy.txt", "/a/moved.txt"]);
    assert_eq!(
        dfs.sheaf(&["dfs", "test", "-e", "/a/copy.txt"])
            .status
            .code(),
        Some(1)
    );
    dfs.ok(&["dfs", "touchz", "/a/empty"]);
    assert!(dfs
        .sheaf(&["dfs", "test", "-z", "/a/empty"])
        .status
        .success());
    dfs.ok(&["dfs", "touchz", "/a/empty"]);
    let e = common::mini_dfs::one_line_error(&dfs.sheaf(&["dfs", "touchz", "/a/moved.txt"]));
    assert!(e.contains("Not a zero-length file"), "{e}");
    let big = data(3000, 9);
    let bigf = dfs.dir.path().join("tail.bin");
    std::fs::write(&bigf, &big).unwrap();
    dfs.ok(&["dfs", "put", bigf.to_str().unwrap(), "/a/tail.bin"]);
    let tail = dfs.sheaf(&["dfs", "tail", "/a/tail.bin"]);
    assert_eq!(tail.stdout, &big[3000 - 1024..]);
    let du = dfs.ok(&["dfs", "du", "-s", "/a"]);
    assert!(du.starts_with(&format!("{}", 12 + 12 + 3000)), "{du}");
    assert!(du.contains(&format!("{}", 3 * (12 + 12 + 3000))), "{du}");
    let df = dfs.ok(&["dfs", "df", "-h"]);
    assert!(df.starts_with("Filesystem"), "{df}");
    let c1 = dfs.ok(&["dfs", "checksum", "/a/b/x.txt"]);
    let c2 = dfs.ok(&["dfs", "checksum", "/a/moved.txt"]);
    assert_eq!(
        c1.split('\t').nth(2),
        c2.split('\t').nth(2),
        "same bytes, same checksum"
    );
    assert!(c1.contains("MD5-of-"), "{c1}");
    let c3 = dfs.ok(&["dfs", "checksum", "/a/tail.bin"]);
    assert_ne!(c1.split('\t').nth(2), c3.split('\t').nth(2));
    let setrep = dfs.ok(&["dfs", "setrep", "-w", "2", "/a/tail.bin"]);
    assert!(
        setrep.contains("Replication 2 set: /a/tail.bin"),
        "{setrep}"
    );
    assert_eq!(dfs.ok(&["dfs", "stat", "%r", "/a/tail.bin"]).trim(), "2");
    // rm: a non-empty directory needs -r
    let e = common::mini_dfs::one_line_error(&dfs.sheaf(&["dfs", "rm", "/a"]));
    assert!(e.starts_with("sheaf dfs rm: /a: Is a directory"), "{e}");
    assert!(dfs
        .ok(&["dfs", "rm", "-r", "-skipTrash", "/a"])
        .contains("Deleted /a"));
    assert_eq!(
        dfs.sheaf(&["dfs", "test", "-e", "/a"]).status.code(),
        Some(1)
    );
    dfs.ok(&["dfs", "rm", "-f", "/a"]);
    // sheaf:// paths name the NameNode explicitly
    let uri = format!("sheaf://{}/", dfs.namenode_addr);
    assert!(dfs.ok(&["dfs", "ls", &uri]).starts_with("Found"));
    let report = dfs.ok(&["dfsadmin", "report"]);
    assert!(report.contains("Live datanodes (3):"), "{report}");
    assert_eq!(
        dfs.ok(&["dfsadmin", "safemode", "get"]).trim(),
        "Safe mode is OFF"
    );

    // Hadoop's spellings: `-verb`, `fs` for `dfs`, generic options before the verb.
    dfs.ok(&["dfs", "-mkdir", "-p", "/h"]);
    dfs.ok(&["fs", "-put", src.to_str().unwrap(), "/h/x.txt"]);
    assert_eq!(
        dfs.ok(&["fs", "-ls", "/h"]),
        dfs.ok(&["dfs", "ls", "/h"]),
        "-ls and ls differ"
    );
    assert_eq!(dfs.ok(&["dfs", "-cat", "/h/x.txt"]), "hello sheaf\n");
    dfs.ok(&[
        "dfs",
        "-D",
        "dfs.replication=2",
        "-Ddfs.blocksize=128k",
        "-put",
        bigf.to_str().unwrap(),
        "/h/two",
    ]);
    assert_eq!(
        dfs.ok(&["dfs", "-stat", "%r %o", "/h/two"]).trim(),
        "2 131072"
    );
    dfs.ok(&["dfs", "-D", "dfs.umask=077", "-touchz", "/h/private"]);
    assert!(dfs
        .ok(&["dfs", "-ls", "/h/private"])
        .contains("-rw------- "));
    // -fs names the NameNode, -conf the configuration file (no --conf here).
    let fs = format!("sheaf://{}", dfs.namenode_addr);
    let conf = dfs.conf.to_str().unwrap();
    let out = common::mini_dfs::sheaf_command()
        .args(["dfs", "-conf", conf, "-fs", &fs, "-cat", "/h/x.txt"])
        .output()
        .unwrap();
    assert_eq!(
        out.stdout,
        b"hello sheaf\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A NameNode that is not there is not silently replaced by the configured one.
    let out = dfs.sheaf(&["dfs", "-fs", "sheaf://127.0.0.1:1", "-ls", "/"]);
    assert!(!out.status.success());
    let bad = dfs.sheaf(&["dfs", "-D", "nosuchkey=1", "-ls", "/"]);
    assert_eq!(bad.status.code(), Some(2));
    let e = common::mini_dfs::one_line_error(&bad);
    assert!(e.contains("-D nosuchkey: not a configuration key"), "{e}");
    let help = dfs.ok(&["dfs", "-help", "put"]);
    assert!(help.contains("Usage:") && help.contains("put"), "{help}");

    // ls flags: -C paths only, -S by size, -r reversed, -d the directory itself.
    assert_eq!(
        dfs.ok(&["dfs", "-ls", "-C", "/h"]),
        "/h/private\n/h/two\n/h/x.txt\n"
    );
    let by_size: Vec<String> = dfs
        .ok(&["dfs", "-ls", "-S", "/h"])
        .lines()
        .skip(1)
        .map(|l| l.rsplit(' ').next().unwrap_or("").to_string())
        .collect();
    assert_eq!(by_size, ["/h/two", "/h/x.txt", "/h/private"]);
    assert_eq!(
        dfs.ok(&["dfs", "-ls", "-C", "-r", "/h"]),
        "/h/x.txt\n/h/two\n/h/private\n"
    );
    let d = dfs.ok(&["dfs", "-ls", "-d", "/h"]);
    assert!(
        d.lines().count() == 1 && d.starts_with('d') && d.trim_end().ends_with(" /h"),
        "{d}"
    );
    // count, in Hadoop's columns: /h holds x.txt (12 bytes), two (3000) and private (0).
    assert_eq!(
        dfs.ok(&["dfs", "-count", "/h"]),
        format!("{:>12} {:>12} {:>18} /h\n", 1, 3, 3012)
    );
    let q = dfs.ok(&["dfs", "-count", "-q", "-v", "/h"]);
    let lines: Vec<&str> = q.lines().collect();
    assert_eq!(
        lines[0],
        "       QUOTA       REM_QUOTA     SPACE_QUOTA REM_SPACE_QUOTA    DIR_COUNT   FILE_COUNT       CONTENT_SIZE PATHNAME"
    );
    assert_eq!(
        lines[1],
        format!(
            "{:>12} {:>15} {:>15} {:>15} {:>12} {:>12} {:>18} /h",
            "none", "inf", "none", "inf", 1, 3, 3012
        )
    );
    // getmerge: the files in name order (private, two, x.txt), -nl after each.
    let merged = dfs.dir.path().join("merged");
    dfs.ok(&["dfs", "-getmerge", "-nl", "/h", merged.to_str().unwrap()]);
    let mut want = b"\n".to_vec();
    want.extend_from_slice(&big);
    want.push(b'\n');
    want.extend_from_slice(b"hello sheaf\n\n");
    assert!(std::fs::read(&merged).unwrap() == want, "getmerge differs");
    // find
    assert_eq!(
        dfs.ok(&["dfs", "-find", "/h", "-name", "*.txt", "-print"]),
        "/h/x.txt\n"
    );
    assert_eq!(
        dfs.ok(&["dfs", "-find", "/h", "-iname", "X.TXT"]),
        "/h/x.txt\n"
    );
    assert_eq!(dfs.ok(&["dfs", "-find", "/h"]).lines().count(), 4);
    // rmdir: only empty directories.
    let e = one_line_error(&dfs.sheaf(&["dfs", "-rmdir", "/h"]));
    assert!(e.contains("/h: Directory is not empty"), "{e}");
    dfs.ok(&["dfs", "-rmdir", "--ignore-fail-on-non-empty", "/h"]);
    dfs.ok(&["dfs", "-mkdir", "/h/empty"]);
    dfs.ok(&["dfs", "-rmdir", "/h/empty"]);
    assert_eq!(
        dfs.sheaf(&["dfs", "-test", "-e", "/h/empty"]).status.code(),
        Some(1)
    );
    // copyFromLocal / copyToLocal / moveFromLocal
    let moving = dfs.dir.path().join("moving.txt");
    std::fs::write(&moving, b"moved\n").unwrap();
    dfs.ok(&[
        "dfs",
        "-moveFromLocal",
        moving.to_str().unwrap(),
        "/h/moved.txt",
    ]);
    assert!(!moving.exists(), "moveFromLocal left the local file");
    dfs.ok(&[
        "dfs",
        "-copyFromLocal",
        src.to_str().unwrap(),
        "/h/copied.txt",
    ]);
    let back = dfs.dir.path().join("copied-back.txt");
    dfs.ok(&[
        "dfs",
        "-copyToLocal",
        "/h/moved.txt",
        back.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read(&back).unwrap(), b"moved\n");
}

#[test]
fn rm_moves_to_the_trash_expunge_checkpoints_and_the_namenode_empties_old_checkpoints() {
    let mut opts = MiniDfsOptions::new(1, OCTET);
    opts.replication = 1;
    opts.dfs_extra = vec!["trash-interval-ms = 4000".into()];
    let dfs = MiniDfs::start(opts);
    let user = dfs.ok(&["dfs", "stat", "%u", "/"]).trim().to_string();
    let trash = format!("/user/{user}/.Trash");
    let nn = format!("sheaf://{}", dfs.namenode_addr);
    let src = dfs.dir.path().join("f.txt");
    std::fs::write(&src, b"keep me\n").unwrap();
    // The NameNode's emptier may delete a checkpoint while `ls -R` walks it: list again then.
    let listing = || {
        for _ in 0..20 {
            let out = dfs.sheaf(&["dfs", "ls", "-R", &trash]);
            if out.status.success() {
                return String::from_utf8_lossy(&out.stdout).into_owned();
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("cannot list {trash}");
    };
    let in_trash = |name: &str| listing().lines().filter(|l| l.contains(name)).count();

    dfs.ok(&["dfs", "mkdir", "/d"]);
    dfs.ok(&["dfs", "put", src.to_str().unwrap(), "/d/f"]);
    let moved = dfs.ok(&["dfs", "rm", "-r", "/d"]);
    assert_eq!(
        moved.trim(),
        format!("Moved: '{nn}/d' to trash at: {nn}{trash}/Current/d")
    );
    assert_eq!(
        dfs.sheaf(&["dfs", "test", "-e", "/d"]).status.code(),
        Some(1)
    );
    assert_eq!(in_trash("/d/f"), 1, "the file is not in the trash");
    // The same path deleted again: the second copy gets a suffix, the first is kept.
    dfs.ok(&["dfs", "mkdir", "/d"]);
    dfs.ok(&["dfs", "put", src.to_str().unwrap(), "/d/f"]);
    let again = dfs.ok(&["dfs", "rm", "-r", "/d"]);
    assert!(
        again.contains(&format!("{trash}/Current/d")) && !again.trim().ends_with("/Current/d"),
        "{again}"
    );
    assert_eq!(in_trash("/f"), 2);
    // -skipTrash deletes at once; the trash itself cannot go to the trash.
    dfs.ok(&["dfs", "put", src.to_str().unwrap(), "/gone"]);
    assert_eq!(
        dfs.ok(&["dfs", "rm", "-skipTrash", "/gone"]).trim(),
        "Deleted /gone"
    );
    let e = one_line_error(&dfs.sheaf(&["dfs", "rm", "-r", &format!("/user/{user}")]));
    assert!(
        e.contains("as it contains the trash") && e.contains("-skipTrash"),
        "{e}"
    );
    // expunge makes a checkpoint of Current.
    dfs.ok(&["dfs", "put", src.to_str().unwrap(), "/e"]);
    dfs.ok(&["dfs", "rm", "/e"]);
    let expunged = dfs.ok(&["dfs", "-expunge"]);
    assert!(
        expunged.contains(&format!("Created trash checkpoint: {trash}/")) || in_trash("/e") == 1,
        "{expunged}"
    );
    // The NameNode's emptier deletes checkpoints older than the interval by itself.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while in_trash("/f") + in_trash("/e") > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the trash was not emptied: {}",
            listing()
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    // With the trash off (-D fs.trash.interval=0), rm deletes at once.
    dfs.ok(&["dfs", "put", src.to_str().unwrap(), "/now"]);
    assert_eq!(
        dfs.ok(&["dfs", "-D", "fs.trash.interval=0", "-rm", "/now"])
            .trim(),
        "Deleted /now"
    );
}
