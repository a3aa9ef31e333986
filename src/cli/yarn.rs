//! `sheaf yarn …`: the resource layer's user commands (Hadoop's `yarn node|application|queue`)
//! and `sheaf yarn run`, a distributed shell with a built-in application master.

use anyhow::{bail, Context};
use clap::Subcommand;
use sheaf_rpc::TlsIdentity;
use sheaf_yarn::client::RmClient;
use sheaf_yarn::config::YarnSections;
use sheaf_yarn::distributed_shell::{run_master, ShellJob};
use sheaf_yarn::master::MasterClient;
use sheaf_yarn::protocol::*;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

/// `sheaf yarn …`.
#[derive(Subcommand, Debug)]
pub enum YarnCommand {
    /// NodeManagers.
    #[command(subcommand)]
    Node(NodeCommand),
    /// Applications.
    #[command(subcommand, alias = "application")]
    App(AppCommand),
    /// Queues.
    #[command(subcommand)]
    Queue(QueueCommand),
    /// Print the container logs of a finished application (aggregated into the DFS).
    Logs {
        /// Application id.
        app: String,
    },
    /// Run a command in N containers (distributed shell) and report each one's host and exit code.
    Run(RunArgs),
    /// The distributed shell's application master (runs inside a container).
    #[command(hide = true)]
    ShellMaster(ShellMasterArgs),
}

/// `sheaf yarn node …`.
#[derive(Subcommand, Debug)]
pub enum NodeCommand {
    /// Every NodeManager with its resources and usage.
    List,
}

/// `sheaf yarn app …`.
#[derive(Subcommand, Debug)]
pub enum AppCommand {
    /// Applications, optionally only those in one state.
    List {
        /// NEW, ACCEPTED, RUNNING, FINISHED, FAILED or KILLED.
        #[arg(long)]
        state: Option<String>,
    },
    /// One application's report and containers.
    Status {
        /// Application id (application_<ts>_<seq>).
        app: String,
    },
    /// Kill an application.
    Kill {
        /// Application id.
        app: String,
    },
}

/// `sheaf yarn queue …`.
#[derive(Subcommand, Debug)]
pub enum QueueCommand {
    /// The queue tree with capacities and usage.
    Status,
}

/// Flags of `sheaf yarn run`.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Queue to submit to.
    #[arg(long, default_value = "default")]
    pub queue: String,
    /// Containers that run the command.
    #[arg(long, default_value_t = 1)]
    pub containers: u32,
    /// Memory of each container, MB.
    #[arg(long, default_value_t = 256)]
    pub memory: u64,
    /// Vcores of each container.
    #[arg(long, default_value_t = 1)]
    pub vcores: u32,
    /// A DFS file to link into every container's working dir as LINK (repeatable).
    #[arg(long = "file", value_name = "LINK=DFS_PATH")]
    pub files: Vec<String>,
    /// Memory of the application master's container, MB.
    #[arg(long, default_value_t = 128)]
    pub master_memory: u64,
    /// The command and its arguments (after `--`).
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

/// Flags of the hidden `sheaf yarn shell-master`.
#[derive(clap::Args, Debug)]
pub struct ShellMasterArgs {
    /// Containers.
    #[arg(long)]
    pub containers: u32,
    /// Memory of each, MB.
    #[arg(long)]
    pub memory: u64,
    /// Vcores of each.
    #[arg(long)]
    pub vcores: u32,
    /// Files to localize (LINK=DFS_PATH).
    #[arg(long = "file")]
    pub files: Vec<String>,
    /// The command.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

/// The verb for error messages.
pub fn verb(cmd: &YarnCommand) -> &'static str {
    match cmd {
        YarnCommand::Node(_) => "yarn node",
        YarnCommand::App(_) => "yarn app",
        YarnCommand::Queue(_) => "yarn queue",
        YarnCommand::Run(_) => "yarn run",
        YarnCommand::Logs { .. } => "yarn logs",
        YarnCommand::ShellMaster(_) => "yarn shell-master",
    }
}

struct Cluster {
    identity: TlsIdentity,
    rm: SocketAddr,
    dfs: sheaf_dfs::config::DfsConfig,
}

fn cluster() -> anyhow::Result<Cluster> {
    let config = crate::cli::config::client(None)?;
    let yarn = YarnSections::from_file(&config.file).context("invalid configuration")?;
    Ok(Cluster {
        identity: config.identity,
        rm: yarn.resourcemanager.address,
        dfs: config.dfs,
    })
}

fn local_ip_for(rm: SocketAddr) -> IpAddr {
    if rm.ip().is_loopback() {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    }
}

fn rm_client(c: &Cluster) -> anyhow::Result<RmClient> {
    Ok(RmClient::new(c.rm, &c.identity, local_ip_for(c.rm))?)
}

/// Runs a `sheaf yarn` command.
pub fn run(cmd: YarnCommand) -> anyhow::Result<()> {
    super::runtime::runtime(super::runtime::Workload::Command)?.block_on(async move {
        let c = cluster()?;
        match cmd {
            YarnCommand::Node(NodeCommand::List) => node_list(&rm_client(&c)?).await,
            YarnCommand::App(AppCommand::List { state }) => app_list(&rm_client(&c)?, state).await,
            YarnCommand::App(AppCommand::Status { app }) => app_status(&rm_client(&c)?, &app).await,
            YarnCommand::App(AppCommand::Kill { app }) => {
                let id: AppId = app.parse()?;
                rm_client(&c)?.kill(id).await?;
                println!("killed {id}");
                Ok(())
            }
            YarnCommand::Queue(QueueCommand::Status) => queue_status(&rm_client(&c)?).await,
            YarnCommand::Run(args) => distributed_shell(&rm_client(&c)?, args).await,
            YarnCommand::Logs { app } => logs(&c, &app).await,
            YarnCommand::ShellMaster(args) => shell_master(&c, args).await,
        }
    })
}

async fn node_list(rm: &RmClient) -> anyhow::Result<()> {
    let nodes = rm.nodes().await?;
    println!(
        "{:<16} {:<14} {:<8} {:>10} {:>10} {:>6} {:>6} {:>10}",
        "HOST", "RACK", "STATE", "MEM-USED", "MEM-TOTAL", "VCORES", "CONTS", "HEARTBEAT"
    );
    for n in nodes {
        println!(
            "{:<16} {:<14} {:<8} {:>7} MB {:>7} MB {:>2}/{:<3} {:>6} {:>7} ms{}",
            n.host,
            n.rack,
            n.state,
            n.used.memory_mb,
            n.capability.memory_mb,
            n.used.vcores,
            n.capability.vcores,
            n.containers,
            n.last_heartbeat_ago_ms,
            if n.aux_services.is_empty() {
                String::new()
            } else {
                format!(
                    "  aux: {}",
                    n.aux_services
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(",")
                )
            }
        );
    }
    Ok(())
}

async fn app_list(rm: &RmClient, state: Option<String>) -> anyhow::Result<()> {
    let states = match state {
        Some(s) => vec![s.parse::<AppState>()?],
        None => vec![],
    };
    let apps = rm.applications(states).await?;
    println!(
        "{:<32} {:<24} {:<10} {:<16} {:<10} {:<10}",
        "APPLICATION", "NAME", "USER", "QUEUE", "STATE", "FINAL"
    );
    for a in apps {
        let name: String = a.name.chars().take(24).collect();
        println!(
            "{:<32} {:<24} {:<10} {:<16} {:<10} {:<10}",
            a.id, name, a.user, a.queue, a.state, a.final_status
        );
    }
    Ok(())
}

async fn logs(c: &Cluster, app: &str) -> anyhow::Result<()> {
    use sheaf_yarn::nodemanager::log_aggregation::container_log_path;
    let report = rm_client(c)?.application(app.parse()?).await?;
    if !report.state.is_final() {
        bail!("{} is still {}; its logs are aggregated when it ends (see the NodeManagers' log-dir meanwhile)", report.id, report.state);
    }
    let dfs = sheaf_dfs::client::DfsClient::connect(&c.dfs, c.identity.clone()).await?;
    let mut found = 0;
    for container in &report.containers {
        for name in ["stdout", "stderr"] {
            let path = container_log_path(&report.user, container.id, name);
            match dfs.status(&path).await? {
                Some(_) => {
                    let data = dfs.read_file(&path).await?;
                    println!(
                        "== {} on {} : {name} ({} bytes) ==",
                        container.id,
                        container.host,
                        data.len()
                    );
                    use std::io::Write;
                    std::io::stdout().write_all(&data)?;
                    found += 1;
                }
                None => println!(
                    "== {} on {} : {name} (not aggregated) ==",
                    container.id, container.host
                ),
            }
        }
    }
    if found == 0 {
        bail!(
            "no aggregated logs for {} (is log aggregation on, and was the DFS up when it ended?)",
            report.id
        );
    }
    Ok(())
}

async fn app_status(rm: &RmClient, app: &str) -> anyhow::Result<()> {
    let r = rm.application(app.parse()?).await?;
    println!("Application:  {}", r.id);
    println!("Name:         {}", r.name);
    println!("User:         {}", r.user);
    println!("Queue:        {}", r.queue);
    println!("State:        {}", r.state);
    println!("Final status: {}", r.final_status);
    println!("Attempt:      {} of {}", r.attempt, r.max_attempts);
    println!("Master host:  {}", r.master_host.as_deref().unwrap_or("-"));
    // Hadoop's "Tracking-URL": where the master serves its own status (a JobTracker's RPC).
    println!(
        "Tracking:     {}",
        r.tracking_address.as_deref().unwrap_or("-")
    );
    println!("Diagnostics:  {}", r.diagnostics);
    println!("Containers:");
    for c in &r.containers {
        println!(
            "  {} {:<15} {:<10} {:<8} {:>5} {}{}",
            c.id,
            c.host,
            c.locality,
            format!("{:?}", c.state),
            c.exit_status,
            if c.is_master { "[master] " } else { "" },
            c.diagnostics
        );
    }
    Ok(())
}

async fn queue_status(rm: &RmClient) -> anyhow::Result<()> {
    println!(
        "{:<24} {:>8} {:>8} {:>8} {:>8} {:>6} {:>8}",
        "QUEUE", "CAP%", "MAX%", "ABS%", "USED%", "APPS", "PENDING"
    );
    for q in rm.queues().await? {
        println!(
            "{:<24} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>6} {:>8}",
            q.path,
            q.capacity,
            q.max_capacity,
            q.absolute_capacity,
            q.used_percent,
            q.active_apps,
            q.pending_containers
        );
    }
    Ok(())
}

async fn distributed_shell(rm: &RmClient, args: RunArgs) -> anyhow::Result<()> {
    if args.containers == 0 {
        bail!("--containers must be at least 1");
    }
    let exe = std::env::current_exe().context("cannot locate the sheaf binary")?;
    let mut am = vec![
        exe.display().to_string(),
        "yarn".into(),
        "shell-master".into(),
        "--containers".into(),
        args.containers.to_string(),
        "--memory".into(),
        args.memory.to_string(),
        "--vcores".into(),
        args.vcores.to_string(),
    ];
    for f in &args.files {
        parse_file(f)?;
        am.push("--file".into());
        am.push(f.clone());
    }
    am.push("--".into());
    am.extend(args.command.iter().cloned());
    let sub = SubmitApplication {
        name: format!("shell: {}", args.command.join(" ")),
        user: sheaf_dfs::client::current_user(),
        queue: args.queue.clone(),
        am_resource: Resource::new(args.master_memory, 1),
        am_spec: LaunchSpec {
            command: am,
            ..LaunchSpec::default()
        },
        max_attempts: 0,
    };
    // Asks that no node could hold are refused before anything starts.
    let nodes = rm.nodes().await?;
    let want = Resource::new(args.memory, args.vcores);
    if !nodes.is_empty()
        && !nodes
            .iter()
            .any(|n| n.state == "RUNNING" && n.capability.fits(&want))
    {
        bail!("containers of {want} exceed what any node can hold (ask for less memory or fewer vcores)");
    }
    let id = rm.submit(sub).await?;
    eprintln!("submitted {id}");
    let report = loop {
        let r = rm.application(id).await?;
        if r.state.is_final() {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let workers = report
        .containers
        .iter()
        .filter(|c| !c.is_master && c.id.attempt.attempt == report.attempt);
    for c in workers {
        let note = if c.diagnostics.is_empty() {
            String::new()
        } else {
            format!("  ({})", c.diagnostics)
        };
        println!("{}  {}  exit {}{note}", c.id, c.host, c.exit_status);
    }
    if report.state == AppState::Finished && report.final_status == FinalStatus::Succeeded {
        return Ok(());
    }
    bail!(
        "{id} ended {} / {}: {}",
        report.state,
        report.final_status,
        report.diagnostics
    )
}

/// Splits `LINK=DFS_PATH`.
fn parse_file(spec: &str) -> anyhow::Result<(String, String)> {
    match spec.split_once('=') {
        Some((link, path)) if !link.is_empty() && !link.contains('/') && path.starts_with('/') => {
            Ok((link.to_string(), path.to_string()))
        }
        _ => bail!("--file {spec}: expected LINK=/dfs/path with a plain LINK name"),
    }
}

async fn shell_master(c: &Cluster, args: ShellMasterArgs) -> anyhow::Result<()> {
    let am = MasterClient::from_env(&c.identity, local_ip_for(c.rm))?;
    let files = args
        .files
        .iter()
        .map(|f| parse_file(f))
        .collect::<anyhow::Result<_>>()?;
    let job = ShellJob {
        files,
        command: args.command,
        containers: args.containers,
        resource: Resource::new(args.memory, args.vcores),
    };
    match run_master(&am, &job).await? {
        FinalStatus::Succeeded => Ok(()),
        other => bail!("application ended {other}"),
    }
}
