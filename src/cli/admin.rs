//! `sheaf admin`: what needs the cluster CA's key. `user add` issues a user's certificate (the
//! identity the NameNode and the ResourceManager believe) and creates the user's home directory.

use super::runtime::{runtime, Workload};
use anyhow::{bail, Context};
use sheaf_dfs::client::{home_dir, DfsClient};
use sheaf_rpc::identity::valid_principal_name;
use sheaf_rpc::{ClusterCa, Identity};
use std::path::PathBuf;

/// `sheaf admin …`.
#[derive(clap::Subcommand)]
pub enum AdminCommand {
    /// Users: `add NAME [--groups g1,g2] --out DIR`.
    #[command(subcommand)]
    User(UserCommand),
}

/// `sheaf admin user …`.
#[derive(clap::Subcommand)]
pub enum UserCommand {
    /// Issue a certificate for NAME into DIR and create /user/NAME owned by NAME.
    Add(UserAddArgs),
}

/// `sheaf admin user add`.
#[derive(clap::Args)]
pub struct UserAddArgs {
    /// The user name (letters, digits, `_`, `-`, `.`).
    name: String,
    /// Groups, comma-separated; the first is the home directory's group (default: NAME).
    #[arg(long, value_delimiter = ',')]
    groups: Vec<String>,
    /// Where to write the user's certificate and key (`--identity DIR` then acts as the user).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Do not create /user/NAME (the DFS need not be running).
    #[arg(long)]
    no_home: bool,
}

/// Runs `sheaf admin …`.
pub fn run(cmd: AdminCommand) -> anyhow::Result<()> {
    match cmd {
        AdminCommand::User(UserCommand::Add(args)) => user_add(args),
    }
}

fn user_add(args: UserAddArgs) -> anyhow::Result<()> {
    let groups: Vec<String> = if args.groups.is_empty() {
        vec![args.name.clone()]
    } else {
        args.groups.clone()
    };
    for name in std::iter::once(&args.name).chain(&groups) {
        if !valid_principal_name(name) {
            bail!("'{name}' is not a valid user or group name (letters, digits, _ - . ; not starting with - or .)");
        }
    }
    if args.out.join("user.pem").exists() {
        bail!(
            "{} already holds an identity (remove it first, or choose another --out)",
            args.out.display()
        );
    }
    let config = super::config::client(None)?;
    let tls_dir = config.dfs.cluster.tls_dir.clone();
    let ca = ClusterCa::load(&tls_dir).with_context(|| {
        format!(
            "cannot load the cluster CA from {} (only the host that ran `sheaf format` holds its key)",
            tls_dir.display()
        )
    })?;
    let group_refs: Vec<&str> = groups.iter().map(String::as_str).collect();
    let identity = Identity::user(&args.name, &group_refs);
    if !args.no_home {
        // Before the certificate: a user whose home could not be made is not half-created.
        let home = home_dir(&args.name);
        runtime(Workload::Command)?
            .block_on(async {
                let dfs = DfsClient::connect(&config.dfs, config.identity.clone()).await?;
                dfs.mkdirs(&home, true).await?;
                dfs.set_owner(&home, Some(&args.name), Some(&groups[0]))
                    .await?;
                dfs.set_permission(&home, 0o755).await?;
                anyhow::Ok(())
            })
            .with_context(|| {
                format!("cannot create {home} (is the DFS running? --no-home skips it)")
            })?;
        println!("created {home} owned by {}:{}", args.name, groups[0]);
    }
    ca.write_identity(&args.out, "user", &identity)
        .with_context(|| format!("cannot write the certificate into {}", args.out.display()))?;
    println!(
        "issued a certificate for user {} (groups {}) into {}; use it with --identity {} or SHEAF_IDENTITY",
        args.name,
        groups.join(","),
        args.out.display(),
        args.out.display()
    );
    Ok(())
}
