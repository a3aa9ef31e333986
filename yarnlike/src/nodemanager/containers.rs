//! The NodeManager's containers: each is an OS process in its own process group with its own
//! working directory, a cleaned environment and stdout/stderr files. Kills go to the whole group
//! (SIGTERM, then SIGKILL after a grace period); the memory monitor kills a group at once.

use crate::nodemanager::localizer::{check_link_name, Localizer};
use crate::nodemanager::process_tree::ProcessTable;
use crate::protocol::*;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Notify;

/// Variables of the NodeManager's own environment that containers inherit.
const INHERITED_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "TMPDIR",
    "RUST_LOG",
    "RUST_BACKTRACE",
];

/// Where and how containers run.
#[derive(Debug, Clone)]
pub struct ContainerSettings {
    /// Working directories: `<local_dir>/<app>/<container>`.
    pub local_dir: PathBuf,
    /// Logs: `<log_dir>/<app>/<container>/{stdout,stderr}`.
    pub log_dir: PathBuf,
    /// SIGTERM → SIGKILL grace.
    pub kill_grace: Duration,
    /// Variables every container gets (host identity, cluster certificates, NameNode address…).
    pub env: BTreeMap<String, String>,
    /// Fetches DFS files into working dirs (`None`: containers asking for files fail).
    pub localizer: Option<Arc<Localizer>>,
}

#[derive(Debug)]
struct Entry {
    status: ContainerStatus,
    pid: Option<i32>,
    limit_mb: u64,
    kill_reason: Option<(i32, String)>,
}

/// The containers of one NodeManager.
pub struct Containers {
    table: Mutex<HashMap<ContainerId, Entry>>,
    users: Mutex<HashMap<AppId, String>>,
    /// Signalled when a container starts or completes (the heartbeat loop reports at once).
    pub changed: Notify,
    settings: ContainerSettings,
}

fn signal_group(pgid: i32, sig: i32) {
    if pgid > 0 {
        // SAFETY: kill(2) with a negative pid signals a process group we created; no memory involved.
        unsafe { libc::kill(-pgid, sig) };
    }
}

fn describe_exit(status: std::process::ExitStatus) -> (i32, String) {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(0), _) => (0, String::new()),
        (Some(c), _) => (c, format!("exited with status {c}")),
        (None, Some(s)) => (128 + s, format!("terminated by signal {s}")),
        (None, None) => (LAUNCH_EXIT_UNKNOWN, "exit status unknown".into()),
    }
}

const LAUNCH_EXIT_UNKNOWN: i32 = -1000;

impl Containers {
    /// An empty table.
    pub fn new(settings: ContainerSettings) -> Arc<Containers> {
        Arc::new(Containers {
            table: Mutex::new(HashMap::new()),
            users: Mutex::new(HashMap::new()),
            changed: Notify::new(),
            settings,
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<ContainerId, Entry>> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Directory of a container's logs.
    pub fn log_dir_of(&self, id: ContainerId) -> PathBuf {
        self.settings
            .log_dir
            .join(id.attempt.app.to_string())
            .join(id.to_string())
    }

    fn work_dir_of(&self, id: ContainerId) -> PathBuf {
        self.settings
            .local_dir
            .join(id.attempt.app.to_string())
            .join(id.to_string())
    }

    /// Every container's status (completed ones until the RM acknowledges them).
    pub fn statuses(&self) -> Vec<ContainerStatus> {
        self.lock().values().map(|e| e.status.clone()).collect()
    }

    /// Forgets completed containers the RM has recorded.
    pub fn forget(&self, acknowledged: &[ContainerId]) {
        let mut t = self.lock();
        for id in acknowledged {
            if t.get(id)
                .is_some_and(|e| e.status.state == ContainerState::Complete)
            {
                t.remove(id);
            }
        }
    }

    fn complete(&self, id: ContainerId, exit: (i32, String)) {
        let mut t = self.lock();
        if let Some(e) = t.get_mut(&id) {
            let (code, diag) = e.kill_reason.take().unwrap_or(exit);
            e.status.state = ContainerState::Complete;
            e.status.exit_status = code;
            e.status.diagnostics = diag;
            e.pid = None;
        }
        drop(t);
        self.changed.notify_one();
    }

    /// The user of an application this node ran containers of.
    pub fn user_of(&self, app: AppId) -> Option<String> {
        self.users
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&app)
            .cloned()
    }

    /// True while a container of `app` is not complete.
    pub fn has_live(&self, app: AppId) -> bool {
        self.lock()
            .values()
            .any(|e| e.status.id.attempt.app == app && e.status.state != ContainerState::Complete)
    }

    /// Starts a container (in the background). A duplicate launch is ignored.
    pub fn launch(self: &Arc<Self>, launch: ContainerLaunch) {
        self.users
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(launch.id.attempt.app, launch.user.clone());
        {
            let mut t = self.lock();
            if t.contains_key(&launch.id) {
                return;
            }
            let status = ContainerStatus {
                id: launch.id,
                state: ContainerState::New,
                exit_status: 0,
                diagnostics: String::new(),
            };
            t.insert(
                launch.id,
                Entry {
                    status,
                    pid: None,
                    limit_mb: launch.resource.memory_mb,
                    kill_reason: None,
                },
            );
        }
        let this = self.clone();
        tokio::spawn(async move {
            let id = launch.id;
            let exit = this.run(launch).await;
            this.complete(id, exit);
            let work = this.work_dir_of(id);
            let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(work)).await;
        });
    }

    async fn run(&self, launch: ContainerLaunch) -> (i32, String) {
        let id = launch.id;
        let failed = |why: String| (exit_status::LAUNCH_FAILED, why);
        let Some(program) = launch.spec.command.first().cloned() else {
            return failed("the container's command is empty".into());
        };
        let (work, logs) = (self.work_dir_of(id), self.log_dir_of(id));
        let prepared = tokio::task::spawn_blocking(
            move || -> std::io::Result<(PathBuf, std::fs::File, std::fs::File)> {
                std::fs::create_dir_all(&work)?;
                std::fs::create_dir_all(&logs)?;
                let out = std::fs::File::create(logs.join("stdout"))?;
                let err = std::fs::File::create(logs.join("stderr"))?;
                Ok((work, out, err))
            },
        )
        .await;
        let (work, out, err) = match prepared {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => {
                return failed(format!("cannot prepare the container's directories: {e}"))
            }
            Err(e) => return failed(format!("cannot prepare the container's directories: {e}")),
        };
        let mut cmd = tokio::process::Command::new(&program);
        cmd.args(&launch.spec.command[1..])
            .current_dir(&work)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .process_group(0);
        for k in INHERITED_ENV {
            if let Ok(v) = std::env::var(k) {
                cmd.env(k, v);
            }
        }
        cmd.envs(&self.settings.env).envs(&launch.spec.env);
        cmd.env("SHEAF_CONTAINER_WORK_DIR", &work)
            .env("SHEAF_CONTAINER_LOG_DIR", self.log_dir_of(id));
        cmd.env("USER", &launch.user);
        for (link, dfs_path) in &launch.spec.files {
            if let Err(e) = check_link_name(link) {
                return failed(e.to_string());
            }
            let Some(localizer) = &self.settings.localizer else {
                return failed("this NodeManager has no DFS to localize files from".into());
            };
            let local = match localizer.localize(id.attempt.app, dfs_path).await {
                Ok(p) => p,
                Err(e) => return failed(e.to_string()),
            };
            let link_path = work.join(link);
            let target = local.clone();
            let linked =
                tokio::task::spawn_blocking(move || std::os::unix::fs::symlink(target, link_path))
                    .await;
            if let Err(e) = linked.map_err(std::io::Error::other).and_then(|r| r) {
                return failed(format!(
                    "cannot link {} into the working dir: {e}",
                    local.display()
                ));
            }
        }
        // Spawn under the lock so a kill arriving now either sees the pid or stops the spawn.
        let mut child = {
            let mut t = self.lock();
            let Some(entry) = t.get_mut(&id) else {
                return failed("forgotten before it started".into());
            };
            if let Some(reason) = entry.kill_reason.take() {
                return reason;
            }
            match cmd.spawn() {
                Ok(child) => {
                    entry.pid = child.id().map(|p| p as i32);
                    entry.status.state = ContainerState::Running;
                    child
                }
                Err(e) => return failed(format!("cannot launch '{program}': {e}")),
            }
        };
        self.changed.notify_one();
        let pgid = child.id().map(|p| p as i32).unwrap_or(0);
        let exit = match child.wait().await {
            Ok(status) => describe_exit(status),
            Err(e) => (
                LAUNCH_EXIT_UNKNOWN,
                format!("cannot wait for the container: {e}"),
            ),
        };
        // Leftovers of the group (background children of a shell) go with their container.
        signal_group(pgid, libc::SIGKILL);
        exit
    }

    /// Kills a container on request: SIGTERM to its group, SIGKILL after the grace period.
    pub fn stop(self: &Arc<Self>, id: ContainerId, reason: (i32, String)) {
        let pid = {
            let mut t = self.lock();
            let Some(e) = t.get_mut(&id) else { return };
            if e.status.state == ContainerState::Complete {
                return;
            }
            e.kill_reason.get_or_insert(reason);
            e.pid
        };
        let Some(pid) = pid else { return };
        signal_group(pid, libc::SIGTERM);
        let this = self.clone();
        let grace = self.settings.kill_grace;
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            let still = this.lock().get(&id).and_then(|e| e.pid);
            if let Some(pid) = still {
                signal_group(pid, libc::SIGKILL);
            }
        });
    }

    /// Kills every container (NodeManager shutdown).
    pub fn stop_all(self: &Arc<Self>) {
        let ids: Vec<ContainerId> = self.lock().keys().copied().collect();
        for id in ids {
            self.stop(
                id,
                (
                    exit_status::KILLED,
                    "killed: the nodemanager stopped".into(),
                ),
            );
        }
    }

    /// One memory check: kills containers whose process tree's RSS exceeds their limit.
    /// Returns the containers killed.
    pub async fn enforce_memory(&self) -> Vec<ContainerId> {
        let running: Vec<(ContainerId, i32, u64)> = self
            .lock()
            .iter()
            .filter_map(|(id, e)| e.pid.map(|p| (*id, p, e.limit_mb)))
            .collect();
        if running.is_empty() {
            return Vec::new();
        }
        let Ok(table) = tokio::task::spawn_blocking(ProcessTable::scan).await else {
            return Vec::new();
        };
        let mut killed = Vec::new();
        for (id, pid, limit_mb) in running {
            let used_mb = table.tree_rss(pid) / (1 << 20);
            if used_mb <= limit_mb {
                continue;
            }
            let reason = format!("killed: exceeded memory limit ({used_mb} MB > {limit_mb} MB)");
            tracing::warn!(container = %id, "{reason}");
            let mut t = self.lock();
            let Some(e) = t.get_mut(&id).filter(|e| e.pid == Some(pid)) else {
                continue;
            };
            e.kill_reason = Some((exit_status::EXCEEDED_MEMORY, reason));
            drop(t);
            signal_group(pid, libc::SIGKILL);
            for p in table.tree(pid) {
                // SAFETY: kill(2) on pids of this container's tree, read from /proc just now.
                unsafe { libc::kill(p, libc::SIGKILL) };
            }
            killed.push(id);
        }
        killed
    }

    /// Removes an application's working directories (its logs stay) and forgets its user.
    pub async fn cleanup_app(&self, app: AppId) {
        if let Some(l) = &self.settings.localizer {
            l.forget(app);
        }
        self.users
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&app);
        let dir = self.settings.local_dir.join(app.to_string());
        let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(dir)).await;
    }

    /// Containers not yet complete.
    pub fn live(&self) -> Vec<ContainerStatus> {
        self.lock()
            .values()
            .filter(|e| e.status.state != ContainerState::Complete)
            .map(|e| e.status.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOG: &str = "{ head -c 300000000 /dev/zero; sleep 30; } | tail";

    fn table(dir: &std::path::Path) -> Arc<Containers> {
        Containers::new(ContainerSettings {
            local_dir: dir.join("local"),
            log_dir: dir.join("logs"),
            kill_grace: Duration::from_millis(300),
            env: BTreeMap::from([("SHEAF_NM_HOST".to_string(), "127.0.0.9".to_string())]),
            localizer: None,
        })
    }

    fn launch(seq: u64, mb: u64, argv: &[&str]) -> ContainerLaunch {
        let attempt = AttemptId {
            app: AppId {
                cluster_ts: 1,
                seq: 1,
            },
            attempt: 1,
        };
        ContainerLaunch {
            id: ContainerId { attempt, seq },
            user: "tester".into(),
            resource: Resource::new(mb, 1),
            spec: LaunchSpec {
                command: argv.iter().map(|s| s.to_string()).collect(),
                ..LaunchSpec::default()
            },
        }
    }

    async fn completion(c: &Containers, id: ContainerId, within: Duration) -> ContainerStatus {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(s) = c
                .statuses()
                .into_iter()
                .find(|s| s.id == id && s.state == ContainerState::Complete)
            {
                return s;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{id} did not complete in {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn a_container_runs_in_its_dir_with_its_env_and_logs_and_is_cleaned_up() {
        let dir = tempfile::tempdir().unwrap();
        let c = table(dir.path());
        let l = launch(
            1,
            64,
            &[
                "sh",
                "-c",
                "echo $SHEAF_NM_HOST $USER $(basename $PWD); echo oops >&2; exit 3",
            ],
        );
        let id = l.id;
        c.launch(l);
        let s = completion(&c, id, Duration::from_secs(10)).await;
        assert_eq!(
            (s.exit_status, s.diagnostics.as_str()),
            (3, "exited with status 3")
        );
        let out = std::fs::read_to_string(c.log_dir_of(id).join("stdout")).unwrap();
        assert_eq!(out.trim(), format!("127.0.0.9 tester {id}"));
        assert_eq!(
            std::fs::read_to_string(c.log_dir_of(id).join("stderr"))
                .unwrap()
                .trim(),
            "oops"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!dir
            .path()
            .join("local")
            .join(id.attempt.app.to_string())
            .join(id.to_string())
            .exists());
        c.forget(&[id]);
        assert!(c.statuses().is_empty());
    }

    #[tokio::test]
    async fn a_missing_command_fails_the_container_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let c = table(dir.path());
        let l = launch(1, 64, &["/no/such/program", "x"]);
        let id = l.id;
        c.launch(l);
        let s = completion(&c, id, Duration::from_secs(10)).await;
        assert_eq!(s.exit_status, exit_status::LAUNCH_FAILED);
        assert!(
            s.diagnostics.contains("cannot launch '/no/such/program'")
                && s.diagnostics.contains("No such file"),
            "{}",
            s.diagnostics
        );
    }

    #[tokio::test]
    async fn a_memory_hog_is_killed_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let c = table(dir.path());
        let l = launch(1, 64, &["sh", "-c", HOG]);
        let id = l.id;
        c.launch(l);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while c.enforce_memory().await.is_empty() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the hog was never over its limit"
            );
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        let s = completion(&c, id, Duration::from_secs(10)).await;
        assert_eq!(s.exit_status, exit_status::EXCEEDED_MEMORY);
        assert!(
            s.diagnostics.starts_with("killed: exceeded memory limit (")
                && s.diagnostics.ends_with(" MB > 64 MB)"),
            "{}",
            s.diagnostics
        );
    }

    #[tokio::test]
    async fn a_stop_request_kills_the_whole_group_even_if_it_ignores_sigterm() {
        let dir = tempfile::tempdir().unwrap();
        let c = table(dir.path());
        let l = launch(1, 64, &["sh", "-c", "trap '' TERM; sleep 30 & wait"]);
        let id = l.id;
        c.launch(l);
        while c
            .statuses()
            .iter()
            .all(|s| s.state != ContainerState::Running)
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = std::time::Instant::now();
        c.stop(id, (exit_status::KILLED, "killed: released".into()));
        let s = completion(&c, id, Duration::from_secs(5)).await;
        assert_eq!(
            (s.exit_status, s.diagnostics.as_str()),
            (exit_status::KILLED, "killed: released")
        );
        assert!(
            started.elapsed() >= Duration::from_millis(250),
            "SIGKILL only after the grace period"
        );
    }
}
