//! A real multi-process Sheaf cluster for end-to-end job tests: a [`MiniDfs`] (NameNode on
//! 127.B.C.1, DataNode i on 127.B.C.(i+2)) plus a ResourceManager (127.B.C.1:18032) and one
//! NodeManager beside every DataNode, on the DataNode's address, so locality works on real
//! addresses. Every daemon is a `sheaf` process of the binary under test logging into
//! `<dir>/<daemon>.log`; NodeManagers host the shuffle service. `Drop` stops the daemons and
//! kills whatever container processes of this cluster are left (a NodeManager killed with
//! SIGKILL leaves its containers running, like a real one).

#![allow(dead_code)]

use super::mini_dfs::{sheaf_command, MiniDfs, MiniDfsOptions};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Port of the ResourceManager (on the NameNode's address).
pub const RM_PORT: u16 = 18032;

/// How a mini cluster is built.
#[derive(Clone, Debug)]
pub struct MiniClusterOptions {
    /// DataNode + NodeManager pairs.
    pub nodes: usize,
    /// Second octet of every address of this test binary (distinct per binary).
    pub octet: u8,
    /// Memory each NodeManager offers, MB (room for several 512 MB containers).
    pub nm_memory_mb: u64,
    /// Vcores each NodeManager offers.
    pub nm_vcores: u32,
    /// NodeManager heartbeat interval (also the RM's long-poll bound), ms.
    pub nm_heartbeat_ms: u64,
    /// A NodeManager silent this long is lost, ms.
    pub node_timeout_ms: u64,
    /// Replication of new DFS files.
    pub replication: u16,
    /// Appended verbatim to `sheaf.toml` (extra sections, e.g. `[yarn]` settings).
    pub extra_conf: String,
}

impl MiniClusterOptions {
    /// `nodes` nodes with addresses under `127.<octet>.*`, 4 GB and 8 vcores per NodeManager,
    /// 300 ms heartbeats and a 3 s node timeout.
    pub fn new(nodes: usize, octet: u8) -> MiniClusterOptions {
        MiniClusterOptions {
            nodes,
            octet,
            nm_memory_mb: 4096,
            nm_vcores: 8,
            nm_heartbeat_ms: 300,
            node_timeout_ms: 3000,
            replication: 3,
            extra_conf: String::new(),
        }
    }
}

/// A running container process of a mini cluster.
#[derive(Clone, Debug)]
pub struct ContainerProcess {
    /// Its pid.
    pub pid: u32,
    /// The NodeManager host that launched it (`SHEAF_NM_HOST`).
    pub host: String,
    /// Its container id (`SHEAF_CONTAINER_ID`).
    pub container: String,
    /// Its command line, arguments joined by spaces.
    pub command: String,
}

/// A running mini cluster.
pub struct MiniCluster {
    /// The DFS under it (its `dir` holds the config, every log and every daemon's data).
    pub dfs: MiniDfs,
    /// The ResourceManager's address.
    pub rm_addr: SocketAddr,
    resourcemanager: Option<Child>,
    nodemanagers: Vec<Option<Child>>,
}

/// A daemon command: logs at info level (or `RUST_LOG`), with this cluster's config.
fn daemon_command(conf: &Path) -> Command {
    let mut c = sheaf_command();
    c.env(
        "RUST_LOG",
        std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
    )
    .arg("--conf")
    .arg(conf)
    .stdin(Stdio::null());
    c
}

/// Sends `signal` to `pid`.
fn signal(pid: u32, signal: i32) {
    if let Ok(pid) = i32::try_from(pid) {
        // SAFETY: kill(2) on a pid we started (or found running our cluster's config).
        unsafe { libc::kill(pid, signal) };
    }
}

/// SIGTERM, then SIGKILL after `grace` if still running; reaps the child.
fn stop_child(mut child: Child, grace: Duration) {
    signal(child.id(), libc::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && !matches!(child.try_wait(), Ok(Some(_))) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl MiniCluster {
    /// Starts the DFS, the ResourceManager and the NodeManagers, and waits until every
    /// NodeManager is registered with its shuffle service advertised.
    pub fn start(opts: MiniClusterOptions) -> MiniCluster {
        let mut dfs_opts = MiniDfsOptions::new(opts.nodes, opts.octet);
        dfs_opts.replication = opts.replication;
        let dfs = MiniDfs::start(dfs_opts);
        let d = dfs.dir.path().display().to_string();
        let rm_addr = SocketAddr::new(dfs.namenode_addr.ip(), RM_PORT);
        let mut conf = OpenOptions::new()
            .append(true)
            .open(&dfs.conf)
            .expect("open mini cluster config");
        write!(
            conf,
            r#"
[resourcemanager]
address = "{rm_addr}"
state-dir = "{d}/resourcemanager"
node-timeout-ms = {node_timeout}

[nodemanager]
memory-mb = {memory}
vcores = {vcores}
heartbeat-interval-ms = {heartbeat}
monitor-interval-ms = 200
kill-grace-ms = 500

{extra}
"#,
            node_timeout = opts.node_timeout_ms,
            memory = opts.nm_memory_mb,
            vcores = opts.nm_vcores,
            heartbeat = opts.nm_heartbeat_ms,
            extra = opts.extra_conf,
        )
        .expect("write mini cluster config");
        drop(conf);
        let mut cluster = MiniCluster {
            dfs,
            rm_addr,
            resourcemanager: None,
            nodemanagers: (0..opts.nodes).map(|_| None).collect(),
        };
        cluster.start_resourcemanager();
        for i in 0..opts.nodes {
            cluster.start_nodemanager(i);
        }
        cluster.wait_nodemanagers(opts.nodes, Duration::from_secs(30));
        cluster
    }

    /// The cluster's working directory (config, logs, daemon data).
    pub fn dir(&self) -> &Path {
        self.dfs.dir.path()
    }

    /// The ResourceManager's address.
    pub fn rm_address(&self) -> SocketAddr {
        self.rm_addr
    }

    /// NodeManagers in the cluster (running or not).
    pub fn nodes(&self) -> usize {
        self.nodemanagers.len()
    }

    /// The host of NodeManager `i` (0-based): DataNode `i`'s address.
    pub fn nodemanager_host(&self, i: usize) -> IpAddr {
        self.dfs.datanode_host(i)
    }

    /// The directory of NodeManager `i` (`local/`, `logs/`).
    pub fn nodemanager_dir(&self, i: usize) -> PathBuf {
        self.dir().join(format!("nodemanager{}", i + 1))
    }

    /// The shuffle root of NodeManager `i` (`<local-dir>/shuffle`).
    pub fn shuffle_dir(&self, i: usize) -> PathBuf {
        self.nodemanager_dir(i).join("local").join("shuffle")
    }

    fn log(&self, name: &str) -> File {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir().join(format!("{name}.log")))
            .expect("open daemon log")
    }

    /// Starts (or restarts) the ResourceManager.
    pub fn start_resourcemanager(&mut self) {
        let child = daemon_command(&self.dfs.conf)
            .arg("resourcemanager")
            .stdout(self.log("resourcemanager"))
            .stderr(self.log("resourcemanager"))
            .spawn()
            .expect("start resourcemanager");
        self.resourcemanager = Some(child);
    }

    /// `kill -9` the ResourceManager.
    pub fn kill_resourcemanager(&mut self) {
        if let Some(mut c) = self.resourcemanager.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts (or restarts: a running one is stopped first) NodeManager `i` on DataNode `i`'s
    /// address.
    pub fn start_nodemanager(&mut self, i: usize) {
        if let Some(old) = self.nodemanagers[i].take() {
            stop_child(old, Duration::from_secs(5));
        }
        let dir = self.nodemanager_dir(i);
        let name = format!("nodemanager{}", i + 1);
        let child = daemon_command(&self.dfs.conf)
            .env(
                "SHEAF_NODEMANAGER_HOST",
                self.nodemanager_host(i).to_string(),
            )
            .env("SHEAF_NODEMANAGER_LOCAL_DIR", dir.join("local"))
            .env("SHEAF_NODEMANAGER_LOG_DIR", dir.join("logs"))
            .arg("nodemanager")
            .stdout(self.log(&name))
            .stderr(self.log(&name))
            .spawn()
            .expect("start nodemanager");
        self.nodemanagers[i] = Some(child);
    }

    /// `kill -9` NodeManager `i` (its containers keep running, as on a real host whose
    /// NodeManager crashed; [`MiniCluster::kill_containers_of`] kills them too).
    pub fn kill_nodemanager(&mut self, i: usize) {
        if let Some(mut c) = self.nodemanagers[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops NodeManager `i` cleanly (SIGTERM: it stops its containers and its shuffle service).
    pub fn stop_nodemanager(&mut self, i: usize) {
        if let Some(c) = self.nodemanagers[i].take() {
            stop_child(c, Duration::from_secs(10));
        }
    }

    /// Whether NodeManager `i`'s process is running.
    pub fn nodemanager_running(&mut self, i: usize) -> bool {
        self.nodemanagers[i]
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Container processes of this cluster (processes whose environment names this cluster's
    /// config and a container id), with the NodeManager host they were launched on.
    pub fn container_processes(&self) -> Vec<ContainerProcess> {
        let conf = std::path::absolute(&self.dfs.conf).unwrap_or(self.dfs.conf.clone());
        let conf_entry = format!("SHEAF_CONF={}", conf.display());
        let mut found = Vec::new();
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return found;
        };
        for entry in procs.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
                continue;
            };
            let vars: Vec<String> = environ
                .split(|b| *b == 0)
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .collect();
            let ours = vars.contains(&conf_entry)
                && vars.iter().any(|v| v.starts_with("SHEAF_CONTAINER_ID="));
            if !ours {
                continue;
            }
            let var = |name: &str| {
                vars.iter()
                    .find_map(|v| v.strip_prefix(name)?.strip_prefix('='))
                    .unwrap_or("")
                    .to_string()
            };
            let command = std::fs::read(entry.path().join("cmdline"))
                .map(|c| {
                    c.split(|b| *b == 0)
                        .filter(|a| !a.is_empty())
                        .map(|a| String::from_utf8_lossy(a).into_owned())
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default();
            found.push(ContainerProcess {
                pid,
                host: var("SHEAF_NM_HOST"),
                container: var("SHEAF_CONTAINER_ID"),
                command,
            });
        }
        found
    }

    /// The host running the JobTracker (`sheaf mr-jobtracker`) of a job, if one runs.
    pub fn jobtracker_host(&self) -> Option<String> {
        self.container_processes()
            .into_iter()
            .find(|p| p.command.contains(" mr-jobtracker"))
            .map(|p| p.host)
    }

    /// `kill -9` every container process NodeManager `i` launched (a host failure together
    /// with [`MiniCluster::kill_nodemanager`]). Returns how many were killed.
    pub fn kill_containers_of(&self, i: usize) -> usize {
        let host = self.nodemanager_host(i).to_string();
        let mut n = 0;
        for p in self.container_processes() {
            if p.host == host {
                signal(p.pid, libc::SIGKILL);
                n += 1;
            }
        }
        n
    }

    /// Runs the CLI against this cluster.
    pub fn sheaf(&self, args: &[&str]) -> Output {
        self.dfs.sheaf(args)
    }

    /// Runs the CLI and asserts success (with the daemons' log tails); returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.sheaf(args);
        assert!(
            out.status.success(),
            "sheaf {args:?} failed ({:?}): {}\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr),
            self.log_tails()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Copies local file `local` to DFS path `dfs_path` (parent directories created).
    pub fn put(&self, local: &Path, dfs_path: &str) {
        if let Some((parent, _)) = dfs_path.rsplit_once('/') {
            if !parent.is_empty() {
                self.ok(&["dfs", "mkdir", "-p", parent]);
            }
        }
        let local = local.to_str().expect("utf-8 local path");
        self.ok(&["dfs", "put", local, dfs_path]);
    }

    /// The bytes of DFS file `dfs_path`.
    pub fn cat(&self, dfs_path: &str) -> Vec<u8> {
        let out = self.sheaf(&["dfs", "cat", dfs_path]);
        assert!(
            out.status.success(),
            "sheaf dfs cat {dfs_path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// Lines of `sheaf yarn node list` for RUNNING nodes.
    pub fn running_nodes(&self) -> Vec<String> {
        let out = self.sheaf(&["yarn", "node", "list"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.split_whitespace().nth(2) == Some("RUNNING"))
            .map(str::to_string)
            .collect()
    }

    /// Waits until `n` NodeManagers are RUNNING with their shuffle service advertised.
    pub fn wait_nodemanagers(&self, n: usize, timeout: Duration) {
        self.wait_for(
            &format!("{n} running nodemanagers with a shuffle service"),
            timeout,
            || {
                let nodes = self.running_nodes();
                nodes.len() == n && nodes.iter().all(|l| l.contains("shuffle="))
            },
        );
    }

    /// Waits until `cond` holds, panicking with the daemons' logs after `timeout`.
    pub fn wait_for(&self, what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        while !cond() {
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}\n{}", self.log_tails());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The text of daemon log `name` (`nodemanager1`, `resourcemanager`, `namenode`, …) with
    /// terminal colour codes removed, so assertions can match `key=value` fields.
    pub fn daemon_log(&self, name: &str) -> String {
        let bytes = std::fs::read(self.dir().join(format!("{name}.log"))).unwrap_or_default();
        strip_ansi(&String::from_utf8_lossy(&bytes))
    }

    /// The last lines of every daemon log and of every container log still on local disk
    /// (for failure messages).
    pub fn log_tails(&self) -> String {
        let mut out = self.dfs.log_tails();
        for i in 0..self.nodes() {
            let mut files = Vec::new();
            collect_files(&self.nodemanager_dir(i).join("logs"), &mut files);
            files.sort();
            for p in files {
                let text = std::fs::read_to_string(&p).unwrap_or_default();
                if text.trim().is_empty() {
                    continue;
                }
                let lines: Vec<&str> = text.lines().collect();
                out.push_str(&format!("==== {} ====\n", p.display()));
                for l in &lines[lines.len().saturating_sub(10)..] {
                    out.push_str(l);
                    out.push('\n');
                }
            }
        }
        out
    }
}

/// `text` without ANSI escape sequences (`ESC [ … letter`), which tracing writes around fields.
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect_files(&p, out);
        } else {
            out.push(p);
        }
    }
}

impl Drop for MiniCluster {
    fn drop(&mut self) {
        let nodemanagers: Vec<Child> = self
            .nodemanagers
            .iter_mut()
            .filter_map(Option::take)
            .collect();
        for c in &nodemanagers {
            signal(c.id(), libc::SIGTERM);
        }
        for c in nodemanagers {
            stop_child(c, Duration::from_secs(5));
        }
        if let Some(rm) = self.resourcemanager.take() {
            stop_child(rm, Duration::from_secs(5));
        }
        // Containers of NodeManagers that were killed outlive them: end them too.
        for p in self.container_processes() {
            signal(p.pid, libc::SIGKILL);
        }
        if std::thread::panicking() {
            let mut tails = String::new();
            for i in 0..self.nodes() {
                let mut files = Vec::new();
                collect_files(&self.nodemanager_dir(i).join("logs"), &mut files);
                for p in files {
                    let text = std::fs::read_to_string(&p).unwrap_or_default();
                    let lines: Vec<&str> = text.lines().collect();
                    tails.push_str(&format!("==== {} ====\n", p.display()));
                    for l in &lines[lines.len().saturating_sub(10)..] {
                        tails.push_str(l);
                        tails.push('\n');
                    }
                }
            }
            eprintln!("mini cluster container logs:\n{tails}");
        }
    }
}
