//! End-to-end tests of the resource layer: a real `sheaf resourcemanager` and `sheaf nodemanager`
//! processes on loopback (RM on 127.0.C.1:18032, NodeManager i on 127.0.C.(i+2), C claimed per
//! test through a lock file so parallel tests never share addresses, and never overlap the DFS
//! tests' 127.4x.* ranges), driven through the `sheaf yarn` CLI.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const RM_PORT: u16 = 18032;
const HOG: &str = "{ head -c 300000000 /dev/zero; sleep 30; } | tail";

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_sheaf")
}

/// A command of the binary under test with no SHEAF_* variables leaking in.
fn sheaf_command() -> Command {
    let mut c = Command::new(bin());
    for (k, _) in std::env::vars() {
        if k.starts_with("SHEAF_") {
            c.env_remove(k);
        }
    }
    c.env_remove("RUST_LOG");
    c
}

fn claim_slot() -> (u8, PathBuf) {
    let dir = std::env::temp_dir().join("sheaf-mini-yarn");
    std::fs::create_dir_all(&dir).unwrap();
    let start = (std::process::id() % 250) as u16;
    for k in 0..250u16 {
        let c = ((start + k) % 250 + 1) as u8;
        let path = dir.join(c.to_string());
        let claim = |path: &Path| {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
                .map(|mut f| {
                    use std::io::Write;
                    let _ = write!(f, "{}", std::process::id());
                })
        };
        if claim(&path).is_ok() {
            return (c, path);
        }
        let owner: Option<i32> = std::fs::read_to_string(&path)
            .ok()
            .and_then(|s| s.trim().parse().ok());
        // SAFETY: signal 0 only checks whether the claiming process still exists.
        let dead = owner.is_some_and(|p| unsafe { libc::kill(p, 0) } != 0);
        if dead && std::fs::remove_file(&path).is_ok() && claim(&path).is_ok() {
            return (c, path);
        }
    }
    panic!("no free mini-yarn address slot under {}", dir.display());
}

struct MiniYarn {
    dir: tempfile::TempDir,
    conf: PathBuf,
    c: u8,
    rm: Option<Child>,
    nms: Vec<Option<Child>>,
    slot: PathBuf,
}

impl MiniYarn {
    /// Formats the certificates, starts an RM and `nodes` NodeManagers of `memory_mb` each, and
    /// waits until all are registered. `yarn` is appended to the `[yarn]` section.
    fn start(nodes: usize, memory_mb: u64, yarn: &str) -> MiniYarn {
        let (c, slot) = claim_slot();
        let dir = tempfile::Builder::new()
            .prefix("sheaf-mini-yarn")
            .tempdir()
            .unwrap();
        let d = dir.path().display();
        let conf_text = format!(
            r#"[cluster]
name = "mini-yarn"
tls-dir = "{d}/tls"

[namenode]
data-dir = "{d}/namenode"

[resourcemanager]
address = "127.0.{c}.1:{RM_PORT}"
state-dir = "{d}/rm"
node-timeout-ms = 2000

[nodemanager]
memory-mb = {memory_mb}
vcores = 8
heartbeat-interval-ms = 300
monitor-interval-ms = 100
kill-grace-ms = 500

[yarn]
{yarn}
"#
        );
        let conf = dir.path().join("sheaf.toml");
        std::fs::write(&conf, conf_text).unwrap();
        let mut y = MiniYarn {
            dir,
            conf,
            c,
            rm: None,
            nms: Vec::new(),
            slot,
        };
        let out = y.sheaf(&["format"]);
        assert!(
            out.status.success(),
            "sheaf format failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        y.start_rm();
        for i in 0..nodes {
            y.nms.push(None);
            y.start_nm(i);
        }
        y.wait_nodes(nodes, Duration::from_secs(20));
        y
    }

    fn nm_host(&self, i: usize) -> String {
        format!("127.0.{}.{}", self.c, i + 2)
    }

    fn log(&self, name: &str) -> File {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("{name}.log")))
            .unwrap()
    }

    fn daemon(&self, name: &str) -> Command {
        let mut cmd = sheaf_command();
        cmd.env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
        )
        .arg("--conf")
        .arg(&self.conf)
        .stdin(Stdio::null())
        .stdout(self.log(name))
        .stderr(self.log(name));
        cmd
    }

    fn start_rm(&mut self) {
        self.rm = Some(
            self.daemon("resourcemanager")
                .arg("resourcemanager")
                .spawn()
                .unwrap(),
        );
    }

    /// SIGTERM to the RM and wait for it to exit.
    fn stop_rm(&mut self) {
        if let Some(mut rm) = self.rm.take() {
            // SAFETY: signalling a child we spawned.
            unsafe { libc::kill(rm.id() as i32, libc::SIGTERM) };
            wait_or_kill(&mut rm, Duration::from_secs(10));
        }
    }

    fn start_nm(&mut self, i: usize) {
        let d = self.dir.path().join(format!("nm{}", i + 1));
        let child = self
            .daemon(&format!("nodemanager{}", i + 1))
            .env("SHEAF_NODEMANAGER_HOST", self.nm_host(i))
            .arg("nodemanager")
            .arg("--local-dir")
            .arg(d.join("local"))
            .arg("--log-dir")
            .arg(d.join("logs"))
            .spawn()
            .unwrap();
        self.nms[i] = Some(child);
    }

    /// Freezes NodeManager `i` (SIGSTOP): it stops heartbeating, like a hung or partitioned host.
    fn freeze_nm(&mut self, i: usize) {
        if let Some(nm) = &self.nms[i] {
            // SAFETY: signalling a child we spawned.
            unsafe { libc::kill(nm.id() as i32, libc::SIGSTOP) };
        }
    }

    fn sheaf(&self, args: &[&str]) -> Output {
        sheaf_command()
            .arg("--conf")
            .arg(&self.conf)
            .args(args)
            .output()
            .unwrap()
    }

    fn stdout(&self, args: &[&str]) -> String {
        let out = self.sheaf(args);
        assert!(
            out.status.success(),
            "sheaf {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn wait_nodes(&self, n: usize, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let out = self.sheaf(&["yarn", "node", "list"]);
            let text = String::from_utf8_lossy(&out.stdout);
            if out.status.success() && text.lines().filter(|l| l.contains(" RUNNING ")).count() >= n
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{n} nodemanagers did not register: {text}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `sheaf yarn run ARGS` in the background.
    fn spawn_run(&self, args: &[&str]) -> Child {
        sheaf_command()
            .arg("--conf")
            .arg(&self.conf)
            .args(["yarn", "run"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Polls `sheaf yarn app status` until `pred` holds for its output.
    fn wait_status(&self, app: &str, within: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + within;
        loop {
            let out = self.sheaf(&["yarn", "app", "status", app]);
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            if out.status.success() && pred(&text) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "condition not reached for {app}: {text}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The id of the only application whose name contains `name`, once it is listed.
    fn app_id(&self, name: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let list = self.stdout(&["yarn", "app", "list"]);
            if let Some(line) = list.lines().find(|l| l.contains(name)) {
                return line.split_whitespace().next().unwrap().to_string();
            }
            assert!(
                Instant::now() < deadline,
                "no application named {name}: {list}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn wait_or_kill(child: &mut Child, within: Duration) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn wait_output(mut child: Child, within: Duration) -> Output {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return child.wait_with_output().unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    panic!(
        "command did not finish within {within:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Drop for MiniYarn {
    fn drop(&mut self) {
        // NodeManagers first, politely (they kill their containers), thawing frozen ones.
        for nm in self.nms.iter().flatten() {
            // SAFETY: signalling children we spawned.
            unsafe {
                libc::kill(nm.id() as i32, libc::SIGCONT);
                libc::kill(nm.id() as i32, libc::SIGTERM);
            }
        }
        for nm in self.nms.iter_mut().flatten() {
            wait_or_kill(nm, Duration::from_secs(5));
        }
        if let Some(rm) = self.rm.as_mut() {
            let _ = rm.kill();
            let _ = rm.wait();
        }
        let _ = std::fs::remove_file(&self.slot);
    }
}

#[test]
fn ten_containers_over_three_nodes_all_exit_zero_and_spread() {
    let y = MiniYarn::start(3, 2048, "");
    let started = Instant::now();
    let out = y.sheaf(&[
        "yarn",
        "run",
        "--containers",
        "10",
        "--memory",
        "128",
        "--",
        "sh",
        "-c",
        "test -n \"$SHEAF_CONTAINER_ID\"",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 10, "{stdout}");
    assert!(lines.iter().all(|l| l.ends_with("exit 0")), "{stdout}");
    let hosts: std::collections::BTreeSet<&str> = lines
        .iter()
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    assert_eq!(
        hosts.len(),
        3,
        "containers spread over every node: {stdout}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    let list = y.stdout(&["yarn", "app", "list", "--state", "FINISHED"]);
    assert!(list.contains("SUCCEEDED"), "{list}");
    // A failing command makes `run` fail and names the exit code.
    let out = y.sheaf(&[
        "yarn",
        "run",
        "--containers",
        "2",
        "--",
        "sh",
        "-c",
        "exit 7",
    ]);
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.ends_with("exit 7  (exited with status 7)"))
            .count(),
        2
    );
}

#[test]
fn a_memory_hog_is_killed_and_reported_with_the_reason() {
    let y = MiniYarn::start(1, 2048, "");
    let out = y.sheaf(&["yarn", "run", "--memory", "64", "--", "sh", "-c", HOG]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stdout.contains("exit -104")
            && stdout.contains("killed: exceeded memory limit (")
            && stdout.contains(" MB > 64 MB)"),
        "{stdout}"
    );
    assert!(stderr.contains("FAILED"), "{stderr}");
}

#[test]
fn bad_input_is_refused_with_clear_errors() {
    let y = MiniYarn::start(1, 1024, "");
    let fails = |args: &[&str], needle: &str| {
        let out = y.sheaf(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        stderr
    };
    fails(
        &["yarn", "run", "--queue", "nope", "--", "true"],
        "unknown queue 'nope'",
    );
    fails(
        &["yarn", "run", "--memory", "5000", "--", "true"],
        "exceed what any node can hold",
    );
    let out = y.sheaf(&["yarn", "run", "--", "/no/such/program", "arg"]);
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("cannot launch '/no/such/program': No such file or directory"),
        "{stdout}"
    );
    let app = y.app_id("/no/such/program", Duration::from_secs(5));
    fails(&["yarn", "app", "kill", &app], "is already FINISHED");
    fails(
        &["yarn", "app", "status", "application_1_0099"],
        "unknown application",
    );
    fails(
        &["yarn", "app", "list", "--state", "SLEEPING"],
        "unknown state",
    );
    // An NM with absurd resources refuses to start.
    let out = sheaf_command()
        .arg("--conf")
        .arg(&y.conf)
        .args(["nodemanager", "--memory-mb", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("memory-mb = 0 is out of range"));
}

#[test]
fn only_the_owner_or_an_administrator_may_kill_an_application() {
    let y = MiniYarn::start(1, 1024, "");
    let mallory = y.dir.path().join("mallory");
    let out = y.sheaf(&[
        "admin",
        "user",
        "add",
        "mallory",
        "--out",
        mallory.to_str().unwrap(),
        "--no-home",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut run = y.spawn_run(&["--", "sleep", "30"]);
    let app = y.app_id("shell: sleep 30", Duration::from_secs(10));
    y.wait_status(&app, Duration::from_secs(10), |s| {
        s.contains("State:        RUNNING")
    });
    let as_mallory = y.sheaf(&[
        "--identity",
        mallory.to_str().unwrap(),
        "yarn",
        "app",
        "kill",
        &app,
    ]);
    assert!(!as_mallory.status.success());
    let stderr = String::from_utf8_lossy(&as_mallory.stderr);
    assert!(
        stderr.contains("user=mallory cannot kill") && stderr.contains("only its owner"),
        "{stderr}"
    );
    let status = y.stdout(&["yarn", "app", "status", &app]);
    assert!(status.contains("State:        RUNNING"), "{status}");
    // Its owner (the administrator who submitted it) may.
    let out = y.sheaf(&["yarn", "app", "kill", &app]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    y.wait_status(&app, Duration::from_secs(10), |s| s.contains("KILLED"));
    let _ = run.kill();
    let _ = run.wait();
}

#[test]
fn an_unreachable_resourcemanager_is_an_error_within_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let conf = dir.path().join("sheaf.toml");
    std::fs::write(
        &conf,
        format!("[cluster]\ntls-dir = \"{d}/tls\"\n[namenode]\ndata-dir = \"{d}/nn\"\n[resourcemanager]\naddress = \"127.0.0.1:1\"\n"),
    )
    .unwrap();
    let out = sheaf_command()
        .arg("--conf")
        .arg(&conf)
        .arg("format")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let started = Instant::now();
    let out = sheaf_command()
        .arg("--conf")
        .arg(&conf)
        .args(["yarn", "node", "list"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "took {:?}",
        started.elapsed()
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("sheaf yarn node: ") && stderr.contains("127.0.0.1:1"),
        "{stderr}"
    );
}

#[test]
fn a_lost_nodemanager_reports_its_containers_lost_and_a_new_master_finishes_elsewhere() {
    let mut y = MiniYarn::start(3, 1024, "");
    let run = y.spawn_run(&["--containers", "3", "--memory", "128", "--", "sleep", "2"]);
    let app = y.app_id("shell: sleep 2", Duration::from_secs(10));
    let status = y.wait_status(&app, Duration::from_secs(10), |s| {
        s.matches("Running").count() >= 4
    });
    let master_host = status
        .lines()
        .find_map(|l| l.strip_prefix("Master host:"))
        .map(|h| h.trim().to_string())
        .unwrap();
    let victim = (0..3).find(|i| y.nm_host(*i) == master_host).unwrap();
    y.freeze_nm(victim);
    let out = wait_output(run, Duration::from_secs(40));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.lines().filter(|l| l.ends_with("exit 0")).count(),
        3,
        "{stdout}"
    );
    assert!(
        !stdout.contains(&master_host),
        "the second attempt avoided the lost node: {stdout}"
    );
    let status = y.stdout(&["yarn", "app", "status", &app]);
    assert!(status.contains("Attempt:      2 of 2"), "{status}");
    let lost: Vec<&str> = status.lines().filter(|l| l.contains(" -100 ")).collect();
    assert!(
        !lost.is_empty()
            && lost
                .iter()
                .all(|l| l.contains("node lost") && l.contains(&master_host)),
        "{status}"
    );
    let nodes = y.stdout(&["yarn", "node", "list"]);
    assert!(
        nodes
            .lines()
            .any(|l| l.starts_with(&master_host) && l.contains("LOST")),
        "{nodes}"
    );
}

#[test]
fn resourcemanager_restart_keeps_history_and_fails_running_apps_with_a_reason() {
    let mut y = MiniYarn::start(2, 1024, "queues = [ { path = \"root.prod\", capacity = 70.0 }, { path = \"root.dev\", capacity = 30.0, max-capacity = 50.0 } ]");
    let out = y.sheaf(&["yarn", "run", "--queue", "prod", "--", "true"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let done = y.app_id("shell: true", Duration::from_secs(5));
    let run = y.spawn_run(&["--queue", "dev", "--", "sleep", "30"]);
    let running = y.app_id("shell: sleep 30", Duration::from_secs(10));
    y.wait_status(&running, Duration::from_secs(10), |s| {
        s.contains("State:        RUNNING")
    });
    y.stop_rm();
    // The queue tree is in the RM's store: drop it from the file and restart.
    let text = std::fs::read_to_string(&y.conf).unwrap();
    let without_queues: String = text
        .lines()
        .filter(|l| !l.starts_with("queues"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&y.conf, without_queues).unwrap();
    y.start_rm();
    y.wait_nodes(2, Duration::from_secs(20));
    let list = y.stdout(&["yarn", "app", "list"]);
    assert!(
        list.lines()
            .any(|l| l.starts_with(&done) && l.contains("FINISHED") && l.contains("SUCCEEDED")),
        "{list}"
    );
    let status = y.stdout(&["yarn", "app", "status", &running]);
    assert!(
        status.contains("State:        FAILED") && status.contains("resourcemanager restarted"),
        "{status}"
    );
    let queues = y.stdout(&["yarn", "queue", "status"]);
    assert!(
        queues.contains("root.prod") && queues.contains("root.dev"),
        "{queues}"
    );
    let out = y.sheaf(&["yarn", "run", "--queue", "dev", "--", "true"]);
    assert!(
        out.status.success(),
        "the restarted RM runs new work: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut run = run;
    let _ = run.kill();
    let _ = run.wait();
}

#[test]
fn two_over_demanded_queues_with_70_30_capacity_share_the_cluster_70_30() {
    let y = MiniYarn::start(2, 1024, "queues = [ { path = \"root.prod\", capacity = 70.0 }, { path = \"root.dev\", capacity = 30.0 } ]");
    // A blocker fills all but two 128 MB slots, so both applications' masters start and queue
    // up their asks before the blocker's containers free the cluster.
    let blocker = y.spawn_run(&[
        "--queue",
        "prod",
        "--containers",
        "13",
        "--memory",
        "128",
        "--",
        "sleep",
        "3",
    ]);
    let blocker_app = y.app_id("shell: sleep 3", Duration::from_secs(10));
    y.wait_status(&blocker_app, Duration::from_secs(10), |s| {
        s.matches("Running").count() == 14
    });
    let dev = y.spawn_run(&[
        "--queue",
        "dev",
        "--containers",
        "40",
        "--memory",
        "128",
        "--",
        "sleep",
        "5",
    ]);
    let prod = y.spawn_run(&[
        "--queue",
        "prod",
        "--containers",
        "40",
        "--memory",
        "128",
        "--",
        "sleep",
        "5",
    ]);
    let out = wait_output(blocker, Duration::from_secs(20));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::thread::sleep(Duration::from_millis(700));
    let queues = y.stdout(&["yarn", "queue", "status"]);
    let used = |q: &str| -> f64 {
        let line = queues.lines().find(|l| l.starts_with(q)).unwrap();
        line.split_whitespace().nth(4).unwrap().parse().unwrap()
    };
    let (p, d) = (used("root.prod"), used("root.dev"));
    eprintln!("memory used: prod {p}% dev {d}%");
    assert!(p + d > 90.0, "the cluster is full: {queues}");
    assert!(
        (62.0..=78.0).contains(&p) && (22.0..=38.0).contains(&d),
        "prod {p}% dev {d}%: {queues}"
    );
    let apps = y.stdout(&["yarn", "app", "list", "--state", "RUNNING"]);
    for line in apps.lines().skip(1) {
        let id = line.split_whitespace().next().unwrap();
        let _ = y.sheaf(&["yarn", "app", "kill", id]);
    }
    for mut c in [dev, prod] {
        let _ = c.kill();
        let _ = c.wait();
    }
}
