//! `sheaf fsck` (block health under a path) and `sheaf dfsadmin` (cluster report, safe mode),
//! with Hadoop's output.

use super::dfs::{connect, connect_one, parse_path};
use super::exit::SilentExit;
use super::format::{human_size, local_time};
use super::runtime::{runtime, Workload};
use anyhow::bail;
use sheaf_dfs::client::DfsClient;
use sheaf_dfs::protocol::{BlockHealth, DatanodeState, SafeModeAction};
use std::time::{Duration, Instant};

/// `sheaf fsck PATH`.
#[derive(clap::Args)]
pub struct FsckArgs {
    /// Print every block of every file and its locations.
    #[arg(long)]
    blocks: bool,
    /// The subtree to check.
    #[arg(default_value = "/")]
    path: String,
}

/// `sheaf dfsadmin …`.
#[derive(clap::Subcommand)]
pub enum DfsadminCommand {
    /// Cluster capacity and every DataNode.
    Report(DfsadminReportArgs),
    /// Query or change safe mode: `get`, `enter`, `leave`, `wait`.
    Safemode(SafemodeArgs),
}

/// `dfsadmin report`.
#[derive(clap::Args)]
pub struct DfsadminReportArgs {
    /// A path naming the cluster (`sheaf://host:port/`); default from the configuration.
    #[arg(long)]
    fs: Option<String>,
}

/// `dfsadmin safemode`.
#[derive(clap::Args)]
pub struct SafemodeArgs {
    /// `get`, `enter`, `leave` or `wait`.
    action: String,
    /// A path naming the cluster (`sheaf://host:port/`); default from the configuration.
    #[arg(long)]
    fs: Option<String>,
}

/// Runs `sheaf fsck PATH`: exits non-zero when the subtree is CORRUPT.
pub fn fsck(a: FsckArgs) -> anyhow::Result<()> {
    runtime(Workload::Command)?.block_on(check(a))
}

async fn check(a: FsckArgs) -> anyhow::Result<()> {
    {
        let (client, p) = connect_one(&a.path).await?;
        let started = Instant::now();
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let files = client.fsck(&p.path).await?;
        let datanodes = client
            .datanode_report()
            .await?
            .iter()
            .filter(|d| d.state == DatanodeState::Live)
            .count();
        println!(
            "Connecting to namenode via sheaf://{}",
            client.namenode_addr()
        );
        println!(
            "FSCK started by {} for path {} at {}",
            sheaf_dfs::client::current_user(),
            p.path,
            local_time(now_ms, true)
        );
        let (mut total_size, mut total_blocks, mut under, mut corrupt, mut missing, mut min_repl) =
            (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
        let mut corrupt_files = 0u64;
        for f in &files {
            total_size += f.len;
            let mut file_bad = false;
            let mut notes = Vec::new();
            for b in &f.blocks {
                total_blocks += 1;
                match &b.health {
                    BlockHealth::Healthy => min_repl += 1,
                    BlockHealth::UnderReplicated { live, target } => {
                        under += 1;
                        min_repl += 1;
                        notes.push(format!("blk_{}: Under replicated. Target Replicas is {target} but found {live} live replica(s).", b.block.id));
                    }
                    BlockHealth::Corrupt { live, corrupt: c } => {
                        if *live == 0 {
                            corrupt += 1;
                            file_bad = true;
                            notes.push(format!(
                                "blk_{}: CORRUPT. {c} corrupt replica(s), no good one.",
                                b.block.id
                            ));
                        } else {
                            min_repl += 1;
                            notes.push(format!(
                                "blk_{}: {c} corrupt replica(s), {live} good (being replaced).",
                                b.block.id
                            ));
                        }
                    }
                    BlockHealth::Missing => {
                        missing += 1;
                        file_bad = true;
                        notes.push(format!("blk_{}: MISSING.", b.block.id));
                    }
                }
            }
            if file_bad {
                corrupt_files += 1;
            }
            let verdict = if file_bad {
                "CORRUPT"
            } else if notes.is_empty() {
                "OK"
            } else {
                ""
            };
            let open = if f.open_for_write {
                " OPENFORWRITE"
            } else {
                ""
            };
            println!(
                "{} {} bytes, replicated: replication={}, {} block(s){open}:  {verdict}",
                f.path,
                f.len,
                f.replication,
                f.blocks.len()
            );
            for n in &notes {
                println!("{}: {n}", f.path);
            }
            if a.blocks {
                for (i, b) in f.blocks.iter().enumerate() {
                    let locs: Vec<String> = b
                        .locations
                        .iter()
                        .map(|l| l.data_addr().to_string())
                        .collect();
                    println!(
                        "{i}. blk_{}_{} len={} Live_repl={} [{}]",
                        b.block.id,
                        b.block.gen,
                        b.block.len,
                        b.locations.len(),
                        locs.join(", ")
                    );
                }
            }
        }
        let healthy = corrupt == 0 && missing == 0;
        let pct = |n: u64| {
            if total_blocks == 0 {
                0.0
            } else {
                n as f64 * 100.0 / total_blocks as f64
            }
        };
        println!();
        println!("Status: {}", if healthy { "HEALTHY" } else { "CORRUPT" });
        println!(" Number of data-nodes:\t{datanodes}");
        println!(" Total size:\t{total_size} B");
        println!(" Total files:\t{}", files.len());
        let avg = total_size.checked_div(total_blocks).unwrap_or(0);
        println!(" Total blocks (validated):\t{total_blocks} (avg. block size {avg} B)");
        println!(
            " Minimally replicated blocks:\t{min_repl} ({:.1} %)",
            pct(min_repl)
        );
        println!(" Under-replicated blocks:\t{under} ({:.1} %)", pct(under));
        println!(" Corrupt blocks:\t\t{corrupt}");
        println!(" Missing blocks:\t\t{missing}");
        if corrupt_files > 0 {
            println!(" CORRUPT FILES:\t{corrupt_files}");
        }
        println!(
            "FSCK ended at {} in {} milliseconds",
            local_time(now_ms + started.elapsed().as_millis() as u64, true),
            started.elapsed().as_millis()
        );
        println!();
        if healthy {
            println!("The filesystem under path '{}' is HEALTHY", p.path);
            Ok(())
        } else {
            println!("The filesystem under path '{}' is CORRUPT", p.path);
            Err(SilentExit(1).into())
        }
    }
}

/// Runs `sheaf dfsadmin …`.
pub fn dfsadmin(cmd: DfsadminCommand) -> anyhow::Result<()> {
    runtime(Workload::Command)?.block_on(async move {
        match cmd {
            DfsadminCommand::Report(a) => report(a).await,
            DfsadminCommand::Safemode(a) => safemode(a).await,
        }
    })
}

/// Connects to the cluster `--fs` names, else to the configured one.
async fn client_for(fs: Option<&str>) -> anyhow::Result<DfsClient> {
    let namenode = match fs {
        Some(f) => parse_path(f)?.namenode,
        None => None,
    };
    connect(namenode).await
}

async fn report(a: DfsadminReportArgs) -> anyhow::Result<()> {
    let client = client_for(a.fs.as_deref()).await?;
    let s = client.stats().await?;
    let nodes = client.datanode_report().await?;
    let gb = |n: u64| format!("{n} ({})", human_size(n) + "B");
    let pct = |a: u64, b: u64| {
        if b == 0 {
            0.0
        } else {
            a as f64 * 100.0 / b as f64
        }
    };
    println!("Configured Capacity: {}", gb(s.capacity));
    println!("Present Capacity: {}", gb(s.used + s.remaining));
    println!("DFS Remaining: {}", gb(s.remaining));
    println!("DFS Used: {}", gb(s.used));
    println!("DFS Used%: {:.2}%", pct(s.used, s.capacity));
    println!("Replicated Blocks:");
    println!("\tUnder replicated blocks: {}", s.under_replicated_blocks);
    println!("\tBlocks with corrupt replicas: {}", s.corrupt_blocks);
    println!("\tMissing blocks: {}", s.missing_blocks);
    println!();
    println!("-------------------------------------------------");
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    for (state, title) in [(DatanodeState::Live, "Live"), (DatanodeState::Dead, "Dead")] {
        let group: Vec<_> = nodes.iter().filter(|n| n.state == state).collect();
        println!("{title} datanodes ({}):", group.len());
        println!();
        for n in group {
            println!("Name: {} ({})", n.addr.data_addr(), n.addr.uuid);
            println!("Hostname: {}", n.addr.host);
            println!("Rack: {}", n.rack);
            println!("Decommission Status : Normal");
            println!("Configured Capacity: {}", gb(n.capacity));
            println!("DFS Used: {}", gb(n.used));
            println!("DFS Remaining: {}", gb(n.remaining));
            println!("DFS Used%: {:.2}%", pct(n.used, n.capacity));
            println!("Blocks: {}", n.blocks);
            println!(
                "Last contact: {}",
                local_time(now_ms.saturating_sub(n.last_contact_ms), true)
            );
            if let Some(e) = &n.last_error {
                println!("Last error: {e}");
            }
            println!();
        }
    }
    Ok(())
}

async fn safemode(a: SafemodeArgs) -> anyhow::Result<()> {
    let client = client_for(a.fs.as_deref()).await?;
    let on = match a.action.as_str() {
        "get" => client.safe_mode(SafeModeAction::Get).await?,
        "enter" => client.safe_mode(SafeModeAction::Enter).await?,
        "leave" => client.safe_mode(SafeModeAction::Leave).await?,
        "wait" => loop {
            if !client.safe_mode(SafeModeAction::Get).await? {
                break false;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        },
        other => bail!("unknown safemode action {other:?} (use get, enter, leave or wait)"),
    };
    println!("Safe mode is {}", if on { "ON" } else { "OFF" });
    Ok(())
}
