//! `sheaf sql-master` and `sheaf sql-executor` (hidden): the query master and the executors of
//! a SQL session, run in the session's containers. The work is `sheaf_sql::cluster`; this
//! reads the container's environment and the cluster configuration.

use anyhow::{anyhow, Context};
use sheaf_dfs::config::DfsConfig;
use sheaf_mapreduce::cluster::submission::env as task_env;
use sheaf_sql::cluster::{env, executor, from_hex, master};
use sheaf_yarn::protocol::Resource;
use sheaf_yarn::resourcemanager::state::env as container_env;
use std::net::IpAddr;

/// Flags of `sheaf sql-master`.
#[derive(clap::Args, Debug)]
pub struct SqlMasterArgs {
    /// The submitting user.
    #[arg(long)]
    pub user: String,
    /// Session settings (`KEY=VALUE`), as `sheaf sql -D` took them.
    #[arg(long = "setting", value_name = "KEY=VALUE")]
    pub settings: Vec<String>,
}

/// Flags of `sheaf sql-executor` (none: the container's environment says everything).
#[derive(clap::Args, Debug)]
pub struct SqlExecutorArgs {}

fn var(name: &str) -> anyhow::Result<String> {
    std::env::var(name).map_err(|_| {
        anyhow!("${name} is not set (this command runs in the containers of a SQL session)")
    })
}

fn host() -> anyhow::Result<IpAddr> {
    var(container_env::NM_HOST)?
        .parse()
        .with_context(|| format!("${} is not an IP address", container_env::NM_HOST))
}

fn token(name: &str) -> anyhow::Result<Vec<u8>> {
    from_hex(&var(name)?).ok_or_else(|| anyhow!("${name} is not a hex token"))
}

fn setting<'a>(settings: &'a [(String, String)], key: &str) -> Option<&'a str> {
    settings
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Runs the query master until the session ends.
pub fn master(args: SqlMasterArgs) -> anyhow::Result<()> {
    let file = super::config::load()?;
    let dfs = DfsConfig::from_file(&file).context("invalid DFS configuration")?;
    let identity = super::daemon::identity(&dfs.cluster.tls_dir)?;
    let settings: Vec<(String, String)> = args
        .settings
        .iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| anyhow!("--setting {kv}: expected KEY=VALUE"))
        })
        .collect::<anyhow::Result<_>>()?;
    let executors = match setting(&settings, "sheaf.sql.executors") {
        Some(v) => v
            .parse()
            .map_err(|_| anyhow!("sheaf.sql.executors={v}: expected a number"))?,
        None => 0,
    };
    let memory_mb = match setting(&settings, "sheaf.sql.executor-memory") {
        Some(v) => sheaf_sql::session::parse_bytes(v)
            .map(|b| b >> 20)
            .filter(|mb| *mb >= 64)
            .ok_or_else(|| {
                anyhow!("sheaf.sql.executor-memory={v}: expected a size of at least 64m")
            })?,
        None => 1024,
    };
    let vcores =
        match setting(&settings, "sheaf.sql.executor-cores") {
            Some(v) => v.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                anyhow!("sheaf.sql.executor-cores={v}: expected a positive number")
            })?,
            None => 2,
        };
    let exe = std::env::current_exe().context("cannot locate the sheaf executable")?;
    let work = std::env::current_dir().context("cannot read the working directory")?;
    let setup = master::MasterSetup {
        dfs,
        identity,
        host: host()?,
        executor_command: vec![
            exe.display().to_string(),
            sheaf_sql::cluster::EXECUTOR_COMMAND.to_string(),
        ],
        client_token: token(env::CLIENT_TOKEN)?,
        settings,
        user: args.user,
        executors,
        executor_resource: Resource { memory_mb, vcores },
        scratch: work.join("scratch"),
    };
    let status = super::runtime::runtime(super::runtime::Workload::Serving)?
        .block_on(master::run_master(setup))?;
    eprintln!("sql-master: session {status:?}");
    Ok(())
}

/// Runs an executor until its session ends.
pub fn executor(_args: SqlExecutorArgs) -> anyhow::Result<()> {
    let file = super::config::load()?;
    let dfs = DfsConfig::from_file(&file).context("invalid DFS configuration")?;
    let identity = super::daemon::identity(&dfs.cluster.tls_dir)?;
    let work = std::env::current_dir().context("cannot read the working directory")?;
    let parse_num = |name: &str| -> anyhow::Result<usize> {
        var(name)?
            .parse()
            .with_context(|| format!("${name} is not a number"))
    };
    let setup = executor::ExecutorSetup {
        master: var(env::MASTER_ADDRESS)?
            .parse()
            .with_context(|| format!("${} is not IP:PORT", env::MASTER_ADDRESS))?,
        token: token(env::EXECUTOR_TOKEN)?,
        container: var(container_env::CONTAINER_ID)?,
        host: host()?,
        shuffle: var(task_env::SHUFFLE_ADDRESS)?
            .parse()
            .with_context(|| format!("${} is not IP:PORT", task_env::SHUFFLE_ADDRESS))?,
        shuffle_dir: var(task_env::SHUFFLE_DIR)?.into(),
        scratch: work.join("scratch"),
        slots: parse_num(env::SLOTS)?,
        memory: parse_num(env::TASK_MEMORY)?,
        dfs,
        identity,
    };
    let tasks = super::runtime::runtime(super::runtime::Workload::Serving)?
        .block_on(executor::run_executor(setup))?;
    eprintln!("sql-executor: session over after {tasks} tasks");
    Ok(())
}
