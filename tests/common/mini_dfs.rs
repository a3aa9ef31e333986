//! A real multi-process DFS for end-to-end tests: `sheaf format`, one `sheaf namenode` and N
//! `sheaf datanode` processes of the binary under test, each daemon on its own loopback address
//! (NameNode 127.B.C.1, DataNode i on 127.B.C.(i+1)), with 1 MiB blocks and short timeouts.
//!
//! `B` is chosen per test binary and `C` is claimed per cluster through a lock file, so tests
//! running in parallel (nextest runs each in its own process) never share an address. `Drop`
//! kills every daemon.

#![allow(dead_code)]

use std::fs::{File, OpenOptions};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Block size of mini clusters.
pub const BLOCK: usize = 1 << 20;

/// How a mini cluster is built.
#[derive(Clone, Debug)]
pub struct MiniDfsOptions {
    /// DataNodes started at once.
    pub datanodes: usize,
    /// Replication of new files.
    pub replication: u16,
    /// Second octet of every address of this test binary (distinct per binary).
    pub octet: u8,
    /// Extra environment of every DataNode (e.g. `SHEAF_DATANODE_RESERVED_BYTES`).
    pub datanode_env: Vec<(String, String)>,
    /// Extra `key = value` lines of the `[dfs]` section (e.g. `trash-interval-ms = 3000`).
    pub dfs_extra: Vec<String>,
}

impl MiniDfsOptions {
    /// `datanodes` DataNodes, replication 3, addresses under `127.<octet>.*`.
    pub fn new(datanodes: usize, octet: u8) -> MiniDfsOptions {
        MiniDfsOptions {
            datanodes,
            replication: 3,
            octet,
            datanode_env: Vec::new(),
            dfs_extra: Vec::new(),
        }
    }
}

/// A running mini cluster.
pub struct MiniDfs {
    pub dir: tempfile::TempDir,
    pub conf: PathBuf,
    pub namenode_addr: SocketAddr,
    base: [u8; 3],
    namenode: Option<Child>,
    datanodes: Vec<Option<Child>>,
    datanode_env: Vec<(String, String)>,
    slot: PathBuf,
}

/// The `sheaf` binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_sheaf")
}

/// A command of the binary under test with a clean environment (no SHEAF_* leaking in).
pub fn sheaf_command() -> Command {
    let mut c = Command::new(bin());
    for (k, _) in std::env::vars() {
        if k.starts_with("SHEAF_") {
            c.env_remove(k);
        }
    }
    c.env_remove("RUST_LOG");
    c
}

/// A daemon command: logs at info level (or `RUST_LOG`) into its log file.
fn daemon_command() -> Command {
    let mut c = sheaf_command();
    c.env(
        "RUST_LOG",
        std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
    );
    c
}

/// Claims a free third octet under `/tmp/sheaf-mini-dfs/<octet>/`; stale claims of dead
/// processes are taken over.
fn claim_slot(octet: u8) -> (u8, PathBuf) {
    let dir = std::env::temp_dir()
        .join("sheaf-mini-dfs")
        .join(octet.to_string());
    std::fs::create_dir_all(&dir).unwrap();
    let start = (std::process::id() % 250) as u8;
    for k in 0..250u16 {
        let c = ((start as u16 + k) % 250 + 1) as u8;
        let path = dir.join(c.to_string());
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(mut f) => {
                use std::io::Write;
                let _ = write!(f, "{}", std::process::id());
                return (c, path);
            }
            Err(_) => {
                let owner: Option<i32> = std::fs::read_to_string(&path)
                    .ok()
                    .and_then(|s| s.trim().parse().ok());
                let dead = owner
                    .map(|p| unsafe { libc::kill(p, 0) } != 0)
                    .unwrap_or(false);
                if dead && std::fs::remove_file(&path).is_ok() {
                    if let Ok(mut f) = OpenOptions::new().write(true).create_new(true).open(&path) {
                        use std::io::Write;
                        let _ = write!(f, "{}", std::process::id());
                        return (c, path);
                    }
                }
            }
        }
    }
    panic!("no free mini-cluster address slot under {}", dir.display());
}

impl MiniDfs {
    /// Formats and starts a cluster and waits until every DataNode is live and safe mode is off.
    pub fn start(opts: MiniDfsOptions) -> MiniDfs {
        let (c, slot) = claim_slot(opts.octet);
        let base = [127, opts.octet, c];
        let dir = tempfile::Builder::new()
            .prefix("sheaf-mini-dfs")
            .tempdir()
            .unwrap();
        let nn_ip = IpAddr::V4(Ipv4Addr::new(base[0], base[1], base[2], 1));
        let namenode_addr = SocketAddr::new(nn_ip, 9000);
        let mut topology = String::new();
        for i in 1..=16u8 {
            topology.push_str(&format!(
                "127.{}.{}.{} /rack{}\n",
                base[1],
                base[2],
                i + 1,
                1 + (i % 2)
            ));
        }
        std::fs::write(dir.path().join("topology"), topology).unwrap();
        let d = dir.path().display();
        let conf_text = format!(
            r#"[cluster]
name = "mini"
tls-dir = "{d}/tls"
topology = "{d}/topology"

[namenode]
address = "{namenode_addr}"
data-dir = "{d}/namenode"
dead-timeout-ms = 3000
replication-interval-ms = 300
lease-soft-limit-ms = 2000
lease-hard-limit-ms = 6000
safemode-extension-ms = 0
group-commit-window-us = 200

[datanode]
host = "127.{b1}.{b2}.2"
rpc-port = 9867
data-port = 9866
data-dir = "{d}/datanode1"
heartbeat-interval-ms = 300
block-report-interval-ms = 60000
scan-interval-ms = 5000

[dfs]
block-size = {BLOCK}
replication = {repl}
packet-size = 262144
connect-timeout-ms = 2000
{extra}
"#,
            b1 = base[1],
            b2 = base[2],
            repl = opts.replication,
            extra = opts.dfs_extra.join("\n"),
        );
        let conf = dir.path().join("sheaf.toml");
        std::fs::write(&conf, conf_text).unwrap();
        let mut dfs = MiniDfs {
            dir,
            conf,
            namenode_addr,
            base,
            namenode: None,
            datanodes: Vec::new(),
            datanode_env: opts.datanode_env.clone(),
            slot,
        };
        let out = dfs.sheaf(&["format"]);
        assert!(
            out.status.success(),
            "sheaf format failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        dfs.start_namenode();
        for _ in 0..opts.datanodes {
            dfs.add_datanode();
        }
        dfs.wait_ready(opts.datanodes, Duration::from_secs(30));
        dfs
    }

    /// The host of DataNode `i` (0-based).
    pub fn datanode_host(&self, i: usize) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(
            self.base[0],
            self.base[1],
            self.base[2],
            i as u8 + 2,
        ))
    }

    /// The data dir of DataNode `i` (0-based).
    pub fn datanode_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("datanode{}", i + 1))
    }

    fn log(&self, name: &str) -> File {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("{name}.log")))
            .unwrap()
    }

    /// Starts (or restarts) the NameNode.
    pub fn start_namenode(&mut self) {
        let child = daemon_command()
            .arg("--conf")
            .arg(&self.conf)
            .arg("namenode")
            .stdin(Stdio::null())
            .stdout(self.log("namenode"))
            .stderr(self.log("namenode"))
            .spawn()
            .unwrap();
        self.namenode = Some(child);
    }

    /// Starts one more DataNode; returns its index.
    pub fn add_datanode(&mut self) -> usize {
        let i = self.datanodes.len();
        self.datanodes.push(None);
        self.start_datanode(i);
        i
    }

    /// Starts (or restarts) DataNode `i`.
    pub fn start_datanode(&mut self, i: usize) {
        let child = daemon_command()
            .arg("--conf")
            .arg(&self.conf)
            .arg("datanode")
            .env("SHEAF_DATANODE_HOST", self.datanode_host(i).to_string())
            .env("SHEAF_DATANODE_DATA_DIR", self.datanode_dir(i))
            .envs(
                self.datanode_env
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            )
            .stdin(Stdio::null())
            .stdout(self.log(&format!("datanode{}", i + 1)))
            .stderr(self.log(&format!("datanode{}", i + 1)))
            .spawn()
            .unwrap();
        self.datanodes[i] = Some(child);
    }

    /// `kill -9` DataNode `i`.
    pub fn kill_datanode(&mut self, i: usize) {
        if let Some(mut c) = self.datanodes[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `kill -9` the NameNode.
    pub fn kill_namenode(&mut self) {
        if let Some(mut c) = self.namenode.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Runs the CLI against this cluster.
    pub fn sheaf(&self, args: &[&str]) -> Output {
        sheaf_command()
            .arg("--conf")
            .arg(&self.conf)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// Runs the CLI and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.sheaf(args);
        assert!(
            out.status.success(),
            "sheaf {args:?} failed ({:?}): {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Number of live DataNodes per `dfsadmin report`, and whether safe mode is off.
    pub fn state(&self) -> Option<(usize, bool)> {
        let report = self.sheaf(&["dfsadmin", "report"]);
        if !report.status.success() {
            return None;
        }
        let text = String::from_utf8_lossy(&report.stdout);
        let live = text.lines().find_map(|l| {
            l.strip_prefix("Live datanodes (")
                .and_then(|r| r.split(')').next())
                .and_then(|n| n.parse().ok())
        })?;
        let mode = self.sheaf(&["dfsadmin", "safemode", "get"]);
        let off = String::from_utf8_lossy(&mode.stdout).contains("Safe mode is OFF");
        Some((live, off))
    }

    /// Waits until exactly `live` DataNodes are live and safe mode is off.
    pub fn wait_ready(&self, live: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.state();
            if let Some((l, true)) = s {
                if l == live {
                    return;
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "cluster not ready (want {live} live DataNodes, safe mode off; have {s:?})\n{}",
                    self.log_tails()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits until `cond` holds, panicking with the daemons' logs after `timeout`.
    pub fn wait_for(&self, what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        while !cond() {
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}\n{}", self.log_tails());
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// The last lines of every daemon log (for failure messages).
    pub fn log_tails(&self) -> String {
        let mut out = String::new();
        let mut names: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "log"))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        for p in names {
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            out.push_str(&format!("==== {} ====\n", p.display()));
            for l in &lines[lines.len().saturating_sub(15)..] {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }

    /// Every replica file (`blk_<id>`, not `.meta`) under DataNode `i`'s data dir.
    pub fn replica_files(&self, i: usize) -> Vec<PathBuf> {
        let mut out = Vec::new();
        walk(&self.datanode_dir(i).join("current"), &mut out);
        out.retain(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            name.starts_with("blk_") && !name.ends_with(".meta")
        });
        out.sort();
        out
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

impl Drop for MiniDfs {
    fn drop(&mut self) {
        for c in self.datanodes.iter_mut().filter_map(Option::take) {
            let mut c = c;
            let _ = c.kill();
            let _ = c.wait();
        }
        self.kill_namenode();
        if std::thread::panicking() {
            eprintln!("mini DFS logs:\n{}", self.log_tails());
        }
        let _ = std::fs::remove_file(&self.slot);
    }
}

/// Deterministic pseudo-random bytes (xorshift), different per `seed`.
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// stderr of a failed command, asserting it failed with one line.
pub fn one_line_error(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "expected failure, got success; stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.contains(" WARN ") && !l.contains(" INFO "))
        .collect();
    assert_eq!(lines.len(), 1, "expected a one-line error, got: {err:?}");
    lines[0].to_string()
}
