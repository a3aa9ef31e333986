//! The resource layer beside a real DFS: NodeManagers on the DataNodes' addresses advertise the
//! DataNodes' racks, and finished applications' container logs are aggregated into the DFS and
//! read back with `sheaf yarn logs`. Addresses: the mini DFS's 127.44.C.* (RM on .1:18032).

mod common;

use common::mini_dfs::{sheaf_command, MiniDfs, MiniDfsOptions};
use std::fs::OpenOptions;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

const OCTET: u8 = 44;

/// Yarn daemons, stopped (SIGTERM, then SIGKILL) when dropped.
struct Daemons(Vec<Child>);

impl Drop for Daemons {
    fn drop(&mut self) {
        for c in &self.0 {
            // SAFETY: signalling children we spawned.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        }
        for c in &mut self.0 {
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline && !matches!(c.try_wait(), Ok(Some(_))) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn nodemanagers_share_the_datanodes_racks_and_logs_are_aggregated_into_the_dfs() {
    let dfs = MiniDfs::start(MiniDfsOptions::new(2, OCTET));
    let d = dfs.dir.path().to_path_buf();
    let rm_addr = format!("{}:18032", dfs.namenode_addr.ip());
    let mut conf = OpenOptions::new().append(true).open(&dfs.conf).unwrap();
    use std::io::Write;
    write!(
        conf,
        "\n[resourcemanager]\naddress = \"{rm_addr}\"\nstate-dir = \"{}/rm\"\nnode-timeout-ms = 3000\n\n[nodemanager]\nmemory-mb = 1024\nheartbeat-interval-ms = 300\n",
        d.display()
    )
    .unwrap();
    drop(conf);
    let log = |name: &str| {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(d.join(format!("{name}.log")))
            .unwrap()
    };
    let daemon = |name: &str| {
        let mut c = sheaf_command();
        c.env("RUST_LOG", "info")
            .arg("--conf")
            .arg(&dfs.conf)
            .stdin(Stdio::null())
            .stdout(log(name))
            .stderr(log(name));
        c
    };
    let mut daemons = Daemons(vec![daemon("resourcemanager")
        .arg("resourcemanager")
        .spawn()
        .unwrap()]);
    for i in 0..2 {
        let nm_dir = d.join(format!("nm{i}"));
        let child = daemon(&format!("nodemanager{i}"))
            .env("SHEAF_NODEMANAGER_HOST", dfs.datanode_host(i).to_string())
            .env("SHEAF_NODEMANAGER_LOCAL_DIR", nm_dir.join("local"))
            .env("SHEAF_NODEMANAGER_LOG_DIR", nm_dir.join("logs"))
            .arg("nodemanager")
            .spawn()
            .unwrap();
        daemons.0.push(child);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let nodes = loop {
        let out = dfs.sheaf(&["yarn", "node", "list"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.matches(" RUNNING ").count() == 2 {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "nodemanagers did not register: {text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    // The mini DFS topology puts PREFIX.2 on /rack2 and PREFIX.3 on /rack1.
    for (i, rack) in [(0, "/rack2"), (1, "/rack1")] {
        let host = dfs.datanode_host(i).to_string();
        assert!(
            nodes
                .lines()
                .any(|l| l.starts_with(&host) && l.contains(rack)),
            "{host} on {rack}: {nodes}"
        );
    }

    let out = dfs.sheaf(&[
        "yarn",
        "run",
        "--containers",
        "2",
        "--memory",
        "64",
        "--",
        "sh",
        "-c",
        "echo hello from $SHEAF_CONTAINER_ID; echo to stderr >&2",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let app = String::from_utf8_lossy(&out.stderr)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string();
    assert!(app.starts_with("application_"), "{app}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let logs = loop {
        let out = dfs.sheaf(&["yarn", "logs", &app]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success()
            && text.matches("hello from container_").count() == 2
            && !text.contains("not aggregated")
        {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "logs not aggregated: {text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(logs.matches("to stderr").count(), 2, "{logs}");
    // Local copies are gone once aggregated.
    for i in 0..2 {
        let local = d.join(format!("nm{i}")).join("logs").join(&app);
        assert!(!local.exists(), "{} still exists", local.display());
    }
    let user_dir = dfs.ok(&["dfs", "ls", "/sheaf/logs"]);
    assert!(
        user_dir.lines().any(|l| l.starts_with("drwx------")),
        "{user_dir}"
    );
    // Another user cannot read them (the owner and the administrators can).
    let mallory = d.join("mallory");
    dfs.ok(&[
        "admin",
        "user",
        "add",
        "mallory",
        "--out",
        mallory.to_str().unwrap(),
    ]);
    let out = dfs.sheaf(&[
        "--identity",
        mallory.to_str().unwrap(),
        "yarn",
        "logs",
        &app,
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Permission denied") && stderr.contains("user=mallory"),
        "{stderr}"
    );

    // DFS files are localized into each container's working dir under their link name.
    let local = d.join("payload.txt");
    std::fs::write(&local, "payload-42\n").unwrap();
    dfs.ok(&["dfs", "put", local.to_str().unwrap(), "/payload.txt"]);
    let out = dfs.sheaf(&[
        "yarn",
        "run",
        "--containers",
        "3",
        "--memory",
        "64",
        "--file",
        "data.txt=/payload.txt",
        "--",
        "sh",
        "-c",
        "ls -la >&2; cat data.txt >&2; test -L data.txt && grep -qx payload-42 data.txt",
    ]);
    if !out.status.success() {
        let app = String::from_utf8_lossy(&out.stderr)
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_string();
        std::thread::sleep(Duration::from_secs(2));
        let logs = dfs.sheaf(&["yarn", "logs", &app]);
        panic!(
            "{}\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&logs.stdout)
        );
    }
    // A missing DFS file fails the containers with the reason.
    let out = dfs.sheaf(&["yarn", "run", "--file", "x=/no/such/file", "--", "true"]);
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("cannot localize /no/such/file"), "{stdout}");
    drop(daemons);
}
