//! Bad input through the CLI (issue item 6): a clear one-line error, a non-zero exit, and
//! nothing lost. Runs against a real multi-process mini cluster.

mod common;

use common::mini_dfs::{data, one_line_error, sheaf_command, MiniDfs, MiniDfsOptions, BLOCK};
use std::time::{Duration, Instant};

const OCTET: u8 = 43;

#[test]
fn bad_input_gets_a_one_line_error_and_loses_nothing() {
    let mut dfs = MiniDfs::start(MiniDfsOptions::new(3, OCTET));
    let local = dfs.dir.path().join("local");
    std::fs::create_dir_all(&local).unwrap();
    let f1 = local.join("one");
    std::fs::write(&f1, b"first version\n").unwrap();
    let f2 = local.join("two");
    std::fs::write(&f2, b"second version\n").unwrap();

    // Missing local file.
    let e = one_line_error(&dfs.sheaf(&["dfs", "put", "/no/such/local/file", "/x"]));
    assert_eq!(
        e,
        "sheaf dfs put: /no/such/local/file: No such file or directory"
    );
    assert_eq!(
        dfs.sheaf(&["dfs", "test", "-e", "/x"]).status.code(),
        Some(1)
    );

    // Target exists without -f: refused, the old content kept; with -f replaced.
    dfs.ok(&["dfs", "put", f1.to_str().unwrap(), "/x"]);
    let e = one_line_error(&dfs.sheaf(&["dfs", "put", f2.to_str().unwrap(), "/x"]));
    assert_eq!(e, "sheaf dfs put: /x already exists (use -f to overwrite)");
    assert_eq!(dfs.ok(&["dfs", "cat", "/x"]), "first version\n");
    dfs.ok(&["dfs", "put", "-f", f2.to_str().unwrap(), "/x"]);
    assert_eq!(dfs.ok(&["dfs", "cat", "/x"]), "second version\n");
    let back = local.join("back");
    dfs.ok(&["dfs", "get", "/x", back.to_str().unwrap()]);
    let e = one_line_error(&dfs.sheaf(&["dfs", "get", "/x", back.to_str().unwrap()]));
    assert!(e.ends_with("already exists (use -f to overwrite)"), "{e}");

    // File/directory mismatches.
    dfs.ok(&["dfs", "mkdir", "/d"]);
    let e = one_line_error(&dfs.sheaf(&["dfs", "mkdir", "/x"]));
    assert!(e.starts_with("sheaf dfs mkdir: /x: File exists"), "{e}");
    let e = one_line_error(&dfs.sheaf(&["dfs", "cat", "/d"]));
    assert_eq!(e, "sheaf dfs cat: /d: Is a directory");
    let e = one_line_error(&dfs.sheaf(&["dfs", "put", local.to_str().unwrap(), "/x"]));
    assert!(e.contains("/x: Is not a directory"), "{e}");
    let e = one_line_error(&dfs.sheaf(&["dfs", "mkdir", "/x/sub"]));
    assert!(e.starts_with("sheaf dfs mkdir: "), "{e}");
    let e = one_line_error(&dfs.sheaf(&["dfs", "get", "/d", back.to_str().unwrap()]));
    assert!(e.contains("Is not a directory"), "{e}");
    let e = one_line_error(&dfs.sheaf(&["dfs", "mkdir", "/p/q/r"]));
    assert!(e.contains("use -p"), "{e}");
    let e = one_line_error(&dfs.sheaf(&["dfs", "rm", "/missing"]));
    assert_eq!(e, "sheaf dfs rm: /missing: No such file or directory");
    assert!(dfs.sheaf(&["dfs", "rm", "-f", "/missing"]).status.success());

    // Relative and malformed paths.
    let e = one_line_error(&dfs.sheaf(&["dfs", "ls", "relative/path"]));
    assert!(
        e.starts_with("sheaf dfs ls: relative/path: relative paths are not supported"),
        "{e}"
    );
    let e = one_line_error(&dfs.sheaf(&["dfs", "ls", "/a/../b"]));
    assert!(e.contains("'..'"), "{e}");
    let e = one_line_error(&dfs.sheaf(&["dfs", "ls", "hdfs://host:1/x"]));
    assert!(e.contains("unsupported scheme"), "{e}");
    let e = one_line_error(&dfs.sheaf(&["dfs", "ls", "sheaf://:/x"]));
    assert!(e.contains("malformed NameNode address"), "{e}");

    // NameNode unreachable: an error within a few seconds, never a hang.
    let started = Instant::now();
    let e = one_line_error(&dfs.sheaf(&["dfs", "ls", "sheaf://127.0.0.1:9/"]));
    assert!(
        e.starts_with("sheaf dfs ls: cannot reach the NameNode at 127.0.0.1:9"),
        "{e}"
    );
    assert!(e.contains("scripts/start-dfs.sh"), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "took {:?}",
        started.elapsed()
    );

    // Fewer live DataNodes than the replication: written anyway, warned, readable.
    dfs.kill_datanode(1);
    dfs.kill_datanode(2);
    dfs.wait_for("one live DataNode", Duration::from_secs(20), || {
        dfs.state().map(|(live, _)| live == 1).unwrap_or(false)
    });
    let payload = data(2 * BLOCK + 3, 5);
    let src = local.join("payload");
    std::fs::write(&src, &payload).unwrap();
    let out = dfs.sheaf(&["dfs", "put", src.to_str().unwrap(), "/thin"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let warn = String::from_utf8_lossy(&out.stderr);
    assert!(
        warn.contains("sheaf dfs put: warning: /thin is under-replicated"),
        "{warn}"
    );
    assert!(dfs.sheaf(&["dfs", "cat", "/thin"]).stdout == payload);

    // No DataNode alive: a clear error and no half-written file.
    dfs.kill_datanode(0);
    dfs.wait_for("no live DataNode", Duration::from_secs(20), || {
        dfs.state().map(|(live, _)| live == 0).unwrap_or(false)
    });
    let e = one_line_error(&dfs.sheaf(&["dfs", "put", src.to_str().unwrap(), "/nowhere"]));
    assert!(
        e.starts_with("sheaf dfs put: no DataNode is alive to take block"),
        "{e}"
    );
    assert_eq!(
        dfs.sheaf(&["dfs", "test", "-e", "/nowhere"]).status.code(),
        Some(1)
    );
    assert_eq!(
        dfs.sheaf(&["dfs", "test", "-e", "/nowhere._COPYING_"])
            .status
            .code(),
        Some(1)
    );
    // Metadata is still served and earlier files are still listed.
    let ls = dfs.ok(&["dfs", "ls", "/"]);
    assert!(ls.contains("/thin") && ls.contains("/x"), "{ls}");
}

#[test]
fn a_missing_configuration_or_certificate_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("sheaf.toml");
    std::fs::write(
        &conf,
        format!(
            "[cluster]\ntls-dir = \"{}/tls\"\n[namenode]\naddress = \"127.0.0.1:9\"\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let out = sheaf_command()
        .arg("--conf")
        .arg(&conf)
        .args(["dfs", "ls", "/"])
        .output()
        .unwrap();
    let e = one_line_error(&out);
    assert!(
        e.starts_with("sheaf dfs ls: no usable cluster certificate in"),
        "{e}"
    );
    assert!(e.contains("start-dfs.sh"), "{e}");
}

#[test]
fn full_datanodes_refuse_blocks_with_a_clear_error_and_nothing_is_lost() {
    // Every DataNode keeps "reserved" more space than its disk has: it is full for the DFS.
    let mut opts = MiniDfsOptions::new(2, OCTET);
    opts.datanode_env.push((
        "SHEAF_DATANODE_RESERVED_BYTES".into(),
        (1u64 << 60).to_string(),
    ));
    let dfs = MiniDfs::start(opts);
    let src = dfs.dir.path().join("payload");
    std::fs::write(&src, data(BLOCK / 2, 1)).unwrap();
    let e = one_line_error(&dfs.sheaf(&["dfs", "put", src.to_str().unwrap(), "/full"]));
    assert!(
        e.starts_with("sheaf dfs put: no DataNode is able to take block #0 of /full"),
        "{e}"
    );
    assert_eq!(
        dfs.sheaf(&["dfs", "test", "-e", "/full"]).status.code(),
        Some(1)
    );
    // Metadata operations still work.
    dfs.ok(&["dfs", "mkdir", "/still-works"]);
    assert!(dfs
        .sheaf(&["dfs", "test", "-d", "/still-works"])
        .status
        .success());
}
