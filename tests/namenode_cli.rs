//! `sheaf format` and `sheaf namenode` as processes: refusals are one line and a non-zero exit,
//! and a running NameNode stops cleanly on SIGTERM.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn sheaf(conf: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sheaf"));
    c.arg("--conf")
        .arg(conf)
        .args(args)
        .env_remove("SHEAF_RUN_DIR")
        .env_remove("SHEAF_CONF");
    c
}

fn run(conf: &Path, args: &[&str]) -> Output {
    sheaf(conf, args).output().expect("run sheaf")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn write_conf(dir: &Path, port: u16) -> std::path::PathBuf {
    let conf = dir.join("sheaf.toml");
    let text = format!(
        "[cluster]\ntls-dir = \"{0}/tls\"\n[namenode]\naddress = \"127.0.0.1:{port}\"\ndata-dir = \"{0}/nn\"\nsafemode-extension-ms = 0\n",
        dir.display()
    );
    std::fs::write(&conf, text).unwrap();
    conf
}

#[test]
fn format_refuses_to_reformat_and_namenode_needs_a_formatted_dir() {
    let dir = tempfile::tempdir().unwrap();
    let conf = write_conf(dir.path(), 0);
    let o = run(&conf, &["namenode"]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.starts_with("sheaf namenode: ") && e.contains("run `sheaf format` first"),
        "{e}"
    );

    let o = run(&conf, &["format", "--cluster", "testc"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(dir.path().join("tls/ca.pem").exists());
    let o = run(&conf, &["format"]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("--force"), "{e}");
    assert_eq!(
        e.lines().filter(|l| l.starts_with("sheaf format:")).count(),
        1,
        "{e}"
    );
    let o = run(&conf, &["format", "--force"]);
    assert!(o.status.success(), "{}", stderr(&o));

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[namenode]\nno-such-key = 1\n").unwrap();
    let o = run(&bad, &["namenode"]);
    assert!(!o.status.success());
    assert!(stderr(&o).starts_with("sheaf namenode: "), "{}", stderr(&o));
}

#[test]
fn namenode_stops_on_sigterm_and_refuses_a_port_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let busy = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let conf = write_conf(dir.path(), port);
    assert!(run(&conf, &["format"]).status.success());
    let o = run(&conf, &["namenode"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("cannot serve on"), "{}", stderr(&o));
    drop(busy);

    let mut child = sheaf(&conf, &["namenode"])
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the NameNode exited early"
    );
    // SAFETY: plain kill(2) of our own child process.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > Duration::from_secs(15) {
            let _ = child.kill();
            panic!("the NameNode did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(status.success(), "{status:?}: {log}");
    assert!(log.contains("NameNode serving"), "{log}");
}

#[test]
fn a_damaged_edit_log_record_stops_the_namenode_with_its_offset_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = write_conf(dir.path(), port);
    assert!(run(&conf, &["format"]).status.success());
    let mut nn = sheaf(&conf, &["namenode"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Three acknowledged mutations, each its own batch in the edit log.
    for d in ["/a", "/b", "/c"] {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let o = run(&conf, &["dfs", "mkdir", d]);
            if o.status.success() {
                break;
            }
            assert!(Instant::now() < deadline, "mkdir {d}: {}", stderr(&o));
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    // kill -9: no checkpoint, the mutations are only in the log.
    nn.kill().unwrap();
    nn.wait().unwrap();
    let log = dir.path().join("nn/edits.log");
    let clean = std::fs::read(&log).unwrap();
    assert!(
        clean.len() > 100,
        "the edit log holds {} bytes",
        clean.len()
    );
    let mut damaged = clean.clone();
    damaged[8] ^= 0xff; // the first record's payload
    std::fs::write(&log, &damaged).unwrap();
    let o = run(&conf, &["namenode"]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.starts_with("sheaf namenode: ") && e.contains("the record at offset 0 is damaged"),
        "{e}"
    );
    assert_eq!(
        std::fs::read(&log).unwrap(),
        damaged,
        "the damaged log was changed"
    );
    // Repaired (here: the byte put back), everything acknowledged is there.
    std::fs::write(&log, &clean).unwrap();
    let mut nn = sheaf(&conf, &["namenode"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let listing = loop {
        let o = run(&conf, &["dfs", "ls", "/"]);
        if o.status.success() {
            break String::from_utf8_lossy(&o.stdout).into_owned();
        }
        assert!(Instant::now() < deadline, "ls: {}", stderr(&o));
        std::thread::sleep(Duration::from_millis(200));
    };
    nn.kill().unwrap();
    nn.wait().unwrap();
    for d in ["/a", "/b", "/c"] {
        assert!(
            listing.lines().any(|l| l.ends_with(&format!(" {d}"))),
            "{listing}"
        );
    }
}
