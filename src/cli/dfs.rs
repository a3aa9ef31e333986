//! `sheaf dfs …` (the Hadoop FileSystem shell), `sheaf fsck` and `sheaf dfsadmin`.
//!
//! Paths are `/abs/path` (the cluster of the configuration) or `sheaf://host:port/path` (the
//! NameNode address overridden). Output formats follow Hadoop's where Hadoop defines one.

use super::exit::SilentExit;
use anyhow::{anyhow, bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use sheaf_dfs::client::{CopyProgress, DfsClient, DfsError, WriteOutcome};
use sheaf_dfs::config::DfsConfig;
use sheaf_dfs::protocol::{
    BlockHealth, DatanodeState, FileKind, FileStatus, NamenodeError, SafeModeAction,
};
use sheaf_rpc::TlsIdentity;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `sheaf dfs …`: Hadoop's FileSystem shell.
#[derive(clap::Subcommand)]
pub enum DfsCommand {
    /// Copy local files, directories (recursively) or stdin (`-`) into the DFS.
    Put(PutArgs),
    /// Copy DFS files or directories to the local filesystem.
    Get(GetArgs),
    /// Print files to stdout.
    Cat(PathsArgs),
    /// List directories (Hadoop's columns).
    #[command(disable_help_flag = true)]
    Ls(LsArgs),
    /// Create directories.
    Mkdir(MkdirArgs),
    /// Delete files or directories.
    Rm(RmArgs),
    /// Move (rename) paths.
    Mv(MvArgs),
    /// Copy within the DFS.
    Cp(CpArgs),
    /// Print file statistics with a format (`%b %F %g %n %o %r %u %y %Y`).
    Stat(StatArgs),
    /// Space used by files and directories.
    #[command(disable_help_flag = true)]
    Du(DuArgs),
    /// Cluster capacity.
    #[command(disable_help_flag = true)]
    Df(DfArgs),
    /// Change the replication of files (`-w` waits until every block has it).
    Setrep(SetrepArgs),
    /// Test a path; the answer is the exit code only.
    Test(TestArgs),
    /// Create an empty file (fails on an existing non-empty file).
    Touchz(PathsArgs),
    /// Print the last kilobyte of a file.
    Tail(TailArgs),
    /// Print files' MD5-of-MD5-of-CRC32 checksums.
    Checksum(PathsArgs),
}

/// `put`.
#[derive(clap::Args)]
pub struct PutArgs {
    /// Overwrite existing files.
    #[arg(short = 'f')]
    force: bool,
    /// Local sources (`-` for stdin) then the DFS destination.
    #[arg(required = true, num_args = 2..)]
    paths: Vec<String>,
}

/// `get`.
#[derive(clap::Args)]
pub struct GetArgs {
    /// Overwrite existing local files.
    #[arg(short = 'f')]
    force: bool,
    /// DFS sources then the local destination.
    #[arg(required = true, num_args = 2..)]
    paths: Vec<String>,
}

/// Commands taking only paths.
#[derive(clap::Args)]
pub struct PathsArgs {
    /// DFS paths.
    #[arg(required = true)]
    paths: Vec<String>,
}

/// `ls`.
#[derive(clap::Args)]
pub struct LsArgs {
    /// Recurse into subdirectories.
    #[arg(short = 'R')]
    recursive: bool,
    /// Human-readable sizes (1.5 K, 128 M).
    #[arg(short = 'h')]
    human: bool,
    /// Print help.
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    /// DFS paths (default `/`).
    paths: Vec<String>,
}

/// `mkdir`.
#[derive(clap::Args)]
pub struct MkdirArgs {
    /// Create parents as needed; no error if the directory exists.
    #[arg(short = 'p')]
    parents: bool,
    /// Directories to create.
    #[arg(required = true)]
    paths: Vec<String>,
}

/// `rm`.
#[derive(clap::Args)]
pub struct RmArgs {
    /// Delete directories and their contents.
    #[arg(short = 'r', short_alias = 'R')]
    recursive: bool,
    /// No error for missing paths.
    #[arg(short = 'f')]
    force: bool,
    /// Paths to delete.
    #[arg(required = true)]
    paths: Vec<String>,
}

/// `mv`.
#[derive(clap::Args)]
pub struct MvArgs {
    /// Sources then the destination.
    #[arg(required = true, num_args = 2..)]
    paths: Vec<String>,
}

/// `cp`.
#[derive(clap::Args)]
pub struct CpArgs {
    /// Overwrite the destination.
    #[arg(short = 'f')]
    force: bool,
    /// Sources then the destination.
    #[arg(required = true, num_args = 2..)]
    paths: Vec<String>,
}

/// `stat`.
#[derive(clap::Args)]
pub struct StatArgs {
    /// `[FORMAT] PATH…`: a first argument with `%` is the format (default `%y`).
    #[arg(required = true)]
    args: Vec<String>,
}

/// `du`.
#[derive(clap::Args)]
pub struct DuArgs {
    /// One summary line per argument.
    #[arg(short = 's')]
    summary: bool,
    /// Human-readable sizes.
    #[arg(short = 'h')]
    human: bool,
    /// Print help.
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    /// DFS paths (default `/`).
    paths: Vec<String>,
}

/// `df`.
#[derive(clap::Args)]
pub struct DfArgs {
    /// Human-readable sizes.
    #[arg(short = 'h')]
    human: bool,
    /// Print help.
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    /// A path naming the cluster (default `/`).
    paths: Vec<String>,
}

/// `setrep`.
#[derive(clap::Args)]
pub struct SetrepArgs {
    /// Wait until every block has the new replication.
    #[arg(short = 'w')]
    wait: bool,
    /// The new replication.
    replication: u16,
    /// Files or directories (recursively).
    #[arg(required = true)]
    paths: Vec<String>,
}

/// `test`.
#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("what").required(true).multiple(false)))]
pub struct TestArgs {
    /// The path exists.
    #[arg(short = 'e', group = "what")]
    exists: bool,
    /// The path is a directory.
    #[arg(short = 'd', group = "what")]
    dir: bool,
    /// The path is a file.
    #[arg(short = 'f', group = "what")]
    file: bool,
    /// The path is a non-empty file.
    #[arg(short = 's', group = "what")]
    non_empty: bool,
    /// The path is a zero-length file.
    #[arg(short = 'z', group = "what")]
    zero: bool,
    /// The path to test.
    path: String,
}

/// `tail`.
#[derive(clap::Args)]
pub struct TailArgs {
    /// Keep printing data appended (polls once a second).
    #[arg(short = 'f')]
    follow: bool,
    /// The file.
    path: String,
}

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

/// The verb for error messages: `dfs put`, `dfs ls`, ….
pub fn verb(cmd: &DfsCommand) -> &'static str {
    match cmd {
        DfsCommand::Put(_) => "dfs put",
        DfsCommand::Get(_) => "dfs get",
        DfsCommand::Cat(_) => "dfs cat",
        DfsCommand::Ls(_) => "dfs ls",
        DfsCommand::Mkdir(_) => "dfs mkdir",
        DfsCommand::Rm(_) => "dfs rm",
        DfsCommand::Mv(_) => "dfs mv",
        DfsCommand::Cp(_) => "dfs cp",
        DfsCommand::Stat(_) => "dfs stat",
        DfsCommand::Du(_) => "dfs du",
        DfsCommand::Df(_) => "dfs df",
        DfsCommand::Setrep(_) => "dfs setrep",
        DfsCommand::Test(_) => "dfs test",
        DfsCommand::Touchz(_) => "dfs touchz",
        DfsCommand::Tail(_) => "dfs tail",
        DfsCommand::Checksum(_) => "dfs checksum",
    }
}

/// A DFS path argument: the NameNode it names (if any) and the absolute path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DfsPath {
    /// `Some` for `sheaf://host:port/path`.
    pub namenode: Option<SocketAddr>,
    /// Normalized absolute path.
    pub path: String,
}

/// Parses `/abs/path` or `sheaf://host:port/path`.
pub fn parse_path(arg: &str) -> anyhow::Result<DfsPath> {
    if let Some(rest) = arg.strip_prefix("sheaf://") {
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let addr = resolve_authority(authority).ok_or_else(|| {
            anyhow!(
                "{arg}: malformed NameNode address {authority:?} (expected sheaf://host:port/path)"
            )
        })?;
        let path = sheaf_dfs::path::normalize(path)?;
        return Ok(DfsPath {
            namenode: Some(addr),
            path,
        });
    }
    if let Some(i) = arg.find("://") {
        bail!(
            "{arg}: unsupported scheme {:?} (use /absolute/path or sheaf://host:port/path)",
            &arg[..i]
        );
    }
    Ok(DfsPath {
        namenode: None,
        path: sheaf_dfs::path::normalize(arg)?,
    })
}

fn resolve_authority(authority: &str) -> Option<SocketAddr> {
    use std::net::ToSocketAddrs;
    if authority.is_empty() {
        return None;
    }
    let with_port = if authority
        .rsplit_once(':')
        .map(|(_, p)| p.parse::<u16>().is_ok())
        .unwrap_or(false)
    {
        authority.to_string()
    } else {
        format!("{authority}:9000")
    };
    with_port.to_socket_addrs().ok()?.next()
}

/// The DFS configuration and the user's identity, with a NameNode override.
pub fn load_config(namenode: Option<SocketAddr>) -> anyhow::Result<(DfsConfig, TlsIdentity)> {
    let file = super::config::load()?;
    let mut config = DfsConfig::from_file(&file).context("invalid DFS configuration")?;
    if let Some(addr) = namenode {
        config.namenode.address = addr;
    }
    let dir = config.cluster.tls_dir.clone();
    let identity = TlsIdentity::load(&dir, "user").map_err(|e| match e {
        sheaf_rpc::RpcError::TlsMaterial { path, .. } if !path.exists() => anyhow!(
            "no usable cluster certificate in {}: {} is missing (start the cluster with scripts/start-dfs.sh, or point [cluster] tls-dir at the cluster's certificates)",
            dir.display(),
            path.display()
        ),
        e => anyhow!("no usable cluster certificate in {}: {e}", dir.display()),
    })?;
    Ok((config, identity))
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    // SIGPIPE stays ignored (Rust's default): with the default disposition a DataNode that
    // dies mid-write would kill the client through its socket instead of triggering pipeline
    // recovery. A closed stdout (`sheaf dfs cat … | head`) is handled by `QuietStdout`.
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// Connects to the cluster named by the first `sheaf://` path among `paths` (or the config's).
async fn connect(paths: &[&DfsPath]) -> anyhow::Result<DfsClient> {
    let namenode = paths.iter().find_map(|p| p.namenode);
    let (config, identity) = load_config(namenode)?;
    Ok(DfsClient::connect(&config, identity).await?)
}

/// Runs `sheaf dfs …`.
pub fn run(cmd: DfsCommand) -> anyhow::Result<()> {
    runtime()?.block_on(run_async(cmd))
}

async fn run_async(cmd: DfsCommand) -> anyhow::Result<()> {
    match cmd {
        DfsCommand::Put(a) => put(a).await,
        DfsCommand::Get(a) => get(a).await,
        DfsCommand::Cat(a) => cat(a).await,
        DfsCommand::Ls(a) => ls(a).await,
        DfsCommand::Mkdir(a) => mkdir(a).await,
        DfsCommand::Rm(a) => rm(a).await,
        DfsCommand::Mv(a) => mv(a).await,
        DfsCommand::Cp(a) => cp(a).await,
        DfsCommand::Stat(a) => stat(a).await,
        DfsCommand::Du(a) => du(a).await,
        DfsCommand::Df(a) => df(a).await,
        DfsCommand::Setrep(a) => setrep(a).await,
        DfsCommand::Test(a) => test(a).await,
        DfsCommand::Touchz(a) => touchz(a).await,
        DfsCommand::Tail(a) => tail(a).await,
        DfsCommand::Checksum(a) => checksum(a).await,
    }
}

fn parse_all(args: &[String]) -> anyhow::Result<Vec<DfsPath>> {
    args.iter().map(|a| parse_path(a)).collect()
}

fn has_glob(component: &str) -> bool {
    component.contains(['*', '?', '['])
}

/// Expands Hadoop-style globs (`*`, `?`, `[abc]` in any path component) against the namespace,
/// in sorted order. A pattern that matches nothing is an error naming it, like Hadoop's shell.
async fn expand_globs(client: &DfsClient, paths: Vec<DfsPath>) -> anyhow::Result<Vec<DfsPath>> {
    let mut out = Vec::with_capacity(paths.len());
    for p in paths {
        if !sheaf_dfs::path::components(&p.path).any(has_glob) {
            out.push(p);
            continue;
        }
        let mut prefixes = vec!["/".to_string()];
        for comp in sheaf_dfs::path::components(&p.path) {
            let mut next = Vec::new();
            if has_glob(comp) {
                let pattern = glob::Pattern::new(comp)
                    .map_err(|e| anyhow!("{}: bad glob pattern: {e}", p.path))?;
                for dir in &prefixes {
                    match client.status(dir).await? {
                        Some(s) if s.kind == FileKind::Directory => {}
                        _ => continue,
                    }
                    for entry in client.list(dir).await? {
                        let name = sheaf_dfs::path::file_name(&entry.path);
                        if pattern.matches(name) {
                            next.push(entry.path.clone());
                        }
                    }
                }
            } else {
                next = prefixes
                    .iter()
                    .map(|d| sheaf_dfs::path::join(d, comp))
                    .collect();
            }
            prefixes = next;
        }
        let mut matched: Vec<String> = Vec::new();
        for candidate in prefixes {
            if client.status(&candidate).await?.is_some() {
                matched.push(candidate);
            }
        }
        if matched.is_empty() {
            return Err(not_found(&p.path));
        }
        matched.sort();
        out.extend(matched.into_iter().map(|path| DfsPath {
            namenode: p.namenode,
            path,
        }));
    }
    Ok(out)
}

/// A NameNode "not found" for a path, in Hadoop's words.
fn not_found(path: &str) -> anyhow::Error {
    anyhow!("{path}: No such file or directory")
}

fn is_not_found(e: &DfsError) -> bool {
    matches!(e.namenode_error(), Some(NamenodeError::NotFound(_)))
}

// ---------------------------------------------------------------------------------------------
// put / get / cat / cp

/// Files of a directory copied at the same time: small files are dominated by round trips
/// (create, block, pipeline, complete), which overlap well.
const PARALLEL_FILES: usize = 8;

fn progress_bar(total: Option<u64>, label: &str) -> Option<(ProgressBar, CopyProgress)> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = match total {
        Some(t) => ProgressBar::new(t).with_style(
            ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{msg} {spinner} {bytes} {bytes_per_sec}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    bar.set_message(label.to_string());
    let b = bar.clone();
    Some((bar, Arc::new(move |n| b.inc(n))))
}

/// Where a source lands: into `dst` if it is a directory, else at `dst` itself.
fn target_in(dst: &str, dst_status: Option<&FileStatus>, name: &str) -> String {
    match dst_status {
        Some(s) if s.kind == FileKind::Directory => sheaf_dfs::path::join(dst, name),
        _ => dst.to_string(),
    }
}

async fn put(a: PutArgs) -> anyhow::Result<()> {
    let (srcs, dst) = a.paths.split_at(a.paths.len() - 1);
    let dst = parse_path(&dst[0])?;
    let client = connect(&[&dst]).await?;
    let dst_status = client.status(&dst.path).await?;
    if srcs.len() > 1 && !matches!(&dst_status, Some(s) if s.kind == FileKind::Directory) {
        bail!(
            "{}: Is not a directory (several sources need a directory target)",
            dst.path
        );
    }
    let mut warnings = Vec::new();
    for src in srcs {
        if src == "-" {
            let target = target_in(&dst.path, dst_status.as_ref(), "-");
            if target != dst.path {
                bail!(
                    "{}: Is a directory (name the file to write stdin to)",
                    dst.path
                );
            }
            let outcome = put_stream(
                &client,
                Box::new(std::io::stdin()),
                "-",
                &target,
                a.force,
                None,
            )
            .await?;
            warnings.extend(under_replication(&target, &outcome));
            continue;
        }
        let local = PathBuf::from(src);
        let meta = std::fs::metadata(&local).map_err(|e| anyhow!("{src}: {}", io_reason(&e)))?;
        let name = local
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| src.clone());
        let target = target_in(&dst.path, dst_status.as_ref(), &name);
        if meta.is_dir() {
            let bar = progress_bar(Some(local_size(&local)), src);
            let progress = bar.as_ref().map(|b| b.1.clone());
            let r = put_dir(
                &client,
                &local,
                &target,
                a.force,
                &mut warnings,
                progress.as_ref(),
            )
            .await;
            if let Some((b, _)) = bar {
                b.finish_and_clear();
            }
            r?;
        } else {
            let outcome = put_file(&client, &local, meta.len(), &target, a.force, None).await?;
            warnings.extend(under_replication(&target, &outcome));
        }
    }
    for w in warnings.iter().take(3) {
        eprintln!("sheaf dfs put: warning: {w}");
    }
    if warnings.len() > 3 {
        eprintln!(
            "sheaf dfs put: warning: … and {} more under-replicated file(s)",
            warnings.len() - 3
        );
    }
    Ok(())
}

/// Bytes of every file under a local directory (for the progress bar's total).
fn local_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => local_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "No such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "Permission denied".into(),
        _ => e.to_string(),
    }
}

fn under_replication(path: &str, o: &WriteOutcome) -> Option<String> {
    o.under_replicated().then(|| {
        format!(
            "{path} is under-replicated: written to {} DataNode(s), replication {} wanted (the NameNode re-replicates when more DataNodes are live)",
            o.min_replicas, o.target_replication
        )
    })
}

async fn put_dir(
    client: &DfsClient,
    local: &Path,
    target: &str,
    force: bool,
    warnings: &mut Vec<String>,
    progress: Option<&CopyProgress>,
) -> anyhow::Result<()> {
    match client.status(target).await? {
        Some(s) if s.kind == FileKind::File => bail!(
            "{target}: Is not a directory (cannot put directory {} there)",
            local.display()
        ),
        Some(_) if !force => bail!("{target} already exists (use -f to overwrite)"),
        _ => {}
    }
    client.mkdirs(target, true).await?;
    let mut entries: Vec<_> = std::fs::read_dir(local)
        .with_context(|| format!("{}", local.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("{}", local.display()))?;
    entries.sort_by_key(|e| e.file_name());
    let mut files = Vec::new();
    for e in entries {
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        let child = sheaf_dfs::path::join(target, &name);
        let meta = std::fs::metadata(&path).with_context(|| format!("{}", path.display()))?;
        if meta.is_dir() {
            Box::pin(put_dir(client, &path, &child, force, warnings, progress)).await?;
        } else {
            files.push((path, meta.len(), child));
        }
    }
    // Small files are dominated by round trips: copy a few at a time.
    use futures::StreamExt;
    let mut results =
        futures::stream::iter(files.into_iter().map(|(path, len, child)| async move {
            let outcome = put_file(client, &path, len, &child, force, progress).await?;
            Ok::<_, anyhow::Error>(under_replication(&child, &outcome))
        }))
        .buffer_unordered(PARALLEL_FILES);
    while let Some(r) = results.next().await {
        warnings.extend(r?);
    }
    Ok(())
}

async fn put_file(
    client: &DfsClient,
    local: &Path,
    len: u64,
    target: &str,
    force: bool,
    shared: Option<&CopyProgress>,
) -> anyhow::Result<WriteOutcome> {
    let file = std::fs::File::open(local)
        .map_err(|e| anyhow!("{}: {}", local.display(), io_reason(&e)))?;
    // A directory copy shows one bar for all its files; a single file gets its own.
    let bar = match shared {
        Some(_) => None,
        None => progress_bar(Some(len), &local.display().to_string()),
    };
    let progress = shared
        .cloned()
        .or_else(|| bar.as_ref().map(|b| b.1.clone()));
    let outcome = put_stream(
        client,
        Box::new(file),
        &local.display().to_string(),
        target,
        force,
        progress,
    )
    .await;
    if let Some((b, _)) = bar {
        b.finish_and_clear();
    }
    outcome
}

/// Writes `source` to `target._COPYING_` and renames it into place, like Hadoop: a failed or
/// interrupted put never leaves a partial file under the target name, and an overwritten file
/// is replaced only once the new one is complete.
async fn put_stream(
    client: &DfsClient,
    source: Box<dyn std::io::Read + Send>,
    name: &str,
    target: &str,
    force: bool,
    progress: Option<CopyProgress>,
) -> anyhow::Result<WriteOutcome> {
    match client.status(target).await? {
        Some(s) if s.kind == FileKind::Directory => bail!("{target}: Is a directory"),
        Some(_) if !force => bail!("{target} already exists (use -f to overwrite)"),
        _ => {}
    }
    let temp = format!("{target}._COPYING_");
    let progress = match progress {
        Some(p) => Some(p),
        None if name == "-" => progress_bar(None, "stdin").map(|(_, p)| p),
        None => None,
    };
    let outcome = match client
        .copy_from_reader(source, name, &temp, true, progress)
        .await
    {
        Ok(o) => o,
        Err(e) => {
            let _ = client.delete(&temp, false).await;
            return Err(map_write_error(e, target));
        }
    };
    if force {
        match client.delete(target, false).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    if let Err(e) = client.rename(&temp, target).await {
        let _ = client.delete(&temp, false).await;
        return Err(map_write_error(e, target));
    }
    Ok(outcome)
}

fn map_write_error(e: DfsError, target: &str) -> anyhow::Error {
    // Name the file the user asked for, not the `._COPYING_` temporary.
    if let DfsError::NoDatanodes { block, reason, .. } = e {
        return DfsError::NoDatanodes {
            path: target.to_string(),
            block,
            reason,
        }
        .into();
    }
    match e.namenode_error() {
        Some(NamenodeError::AlreadyExists(_)) => {
            anyhow!("{target} already exists (use -f to overwrite)")
        }
        Some(NamenodeError::ParentNotFound(_)) => {
            anyhow!(
                "{}: No such file or directory (create it with `sheaf dfs mkdir -p`)",
                sheaf_dfs::path::parent(target).unwrap_or("/")
            )
        }
        _ => e.into(),
    }
}

async fn get(a: GetArgs) -> anyhow::Result<()> {
    let (srcs, dst) = a.paths.split_at(a.paths.len() - 1);
    let srcs = parse_all(srcs)?;
    let client = connect(&srcs.iter().collect::<Vec<_>>()).await?;
    let local = PathBuf::from(&dst[0]);
    let local_is_dir = local.is_dir();
    if srcs.len() > 1 && !local_is_dir {
        bail!(
            "{}: Is not a directory (several sources need a directory target)",
            local.display()
        );
    }
    for src in &srcs {
        let status = client
            .status(&src.path)
            .await?
            .ok_or_else(|| not_found(&src.path))?;
        let name = sheaf_dfs::path::file_name(&src.path).to_string();
        let target = if local_is_dir && !name.is_empty() {
            local.join(&name)
        } else {
            local.clone()
        };
        if status.kind == FileKind::Directory {
            let total = client.content_summary(&src.path).await?.length;
            let bar = progress_bar(Some(total), &src.path);
            let progress = bar.as_ref().map(|b| b.1.clone());
            let r = get_dir(&client, &src.path, &target, a.force, progress.as_ref()).await;
            if let Some((b, _)) = bar {
                b.finish_and_clear();
            }
            r?;
        } else {
            get_file(&client, &status, &target, a.force, None).await?;
        }
    }
    Ok(())
}

async fn get_dir(
    client: &DfsClient,
    src: &str,
    target: &Path,
    force: bool,
    progress: Option<&CopyProgress>,
) -> anyhow::Result<()> {
    if target.exists() && !target.is_dir() {
        bail!(
            "{}: Is not a directory (cannot get directory {src} there)",
            target.display()
        );
    }
    std::fs::create_dir_all(target).with_context(|| format!("{}", target.display()))?;
    let mut files = Vec::new();
    for entry in client.list(src).await? {
        let name = sheaf_dfs::path::file_name(&entry.path).to_string();
        let child = target.join(&name);
        if entry.kind == FileKind::Directory {
            Box::pin(get_dir(client, &entry.path, &child, force, progress)).await?;
        } else {
            files.push((entry, child));
        }
    }
    use futures::StreamExt;
    let mut results = futures::stream::iter(files.iter().map(|(entry, child)| async move {
        get_file(client, entry, child, force, progress).await
    }))
    .buffer_unordered(PARALLEL_FILES);
    while let Some(r) = results.next().await {
        r?;
    }
    Ok(())
}

/// Copies to `target._COPYING_` then renames, so a failed get leaves no partial file.
async fn get_file(
    client: &DfsClient,
    status: &FileStatus,
    target: &Path,
    force: bool,
    shared: Option<&CopyProgress>,
) -> anyhow::Result<()> {
    if target.is_dir() {
        bail!("{}: Is a directory", target.display());
    }
    if target.exists() && !force {
        bail!("{} already exists (use -f to overwrite)", target.display());
    }
    let mut temp = target.as_os_str().to_owned();
    temp.push("._COPYING_");
    let temp = PathBuf::from(temp);
    let bar = match shared {
        Some(_) => None,
        None => progress_bar(Some(status.len), &status.path),
    };
    let progress = shared
        .cloned()
        .or_else(|| bar.as_ref().map(|b| b.1.clone()));
    let r = client.copy_to_local(&status.path, &temp, progress).await;
    if let Some((b, _)) = bar {
        b.finish_and_clear();
    }
    r?;
    std::fs::rename(&temp, target).with_context(|| format!("{}", target.display()))?;
    Ok(())
}

async fn cat(a: PathsArgs) -> anyhow::Result<()> {
    let paths = parse_all(&a.paths)?;
    let client = connect(&paths.iter().collect::<Vec<_>>()).await?;
    let paths = expand_globs(&client, paths).await?;
    for p in &paths {
        let status = client
            .status(&p.path)
            .await?
            .ok_or_else(|| not_found(&p.path))?;
        if status.kind == FileKind::Directory {
            bail!("{}: Is a directory", p.path);
        }
        client
            .copy_to_writer(&p.path, Box::new(QuietStdout), "stdout", None)
            .await?;
    }
    Ok(())
}

async fn cp(a: CpArgs) -> anyhow::Result<()> {
    let all = parse_all(&a.paths)?;
    let (srcs, dst) = all.split_at(all.len() - 1);
    let dst = &dst[0];
    let client = connect(&all.iter().collect::<Vec<_>>()).await?;
    let dst_status = client.status(&dst.path).await?;
    if srcs.len() > 1 && !matches!(&dst_status, Some(s) if s.kind == FileKind::Directory) {
        bail!(
            "{}: Is not a directory (several sources need a directory target)",
            dst.path
        );
    }
    for src in srcs {
        let status = client
            .status(&src.path)
            .await?
            .ok_or_else(|| not_found(&src.path))?;
        let target = target_in(
            &dst.path,
            dst_status.as_ref(),
            sheaf_dfs::path::file_name(&src.path),
        );
        copy_tree(&client, &status, &target, a.force).await?;
    }
    Ok(())
}

async fn copy_tree(
    client: &DfsClient,
    src: &FileStatus,
    target: &str,
    force: bool,
) -> anyhow::Result<()> {
    if src.kind == FileKind::Directory {
        if target == src.path || target.starts_with(&format!("{}/", src.path)) {
            bail!("{target}: cannot copy {} into itself", src.path);
        }
        client.mkdirs(target, true).await?;
        for entry in client.list(&src.path).await? {
            let child = sheaf_dfs::path::join(target, sheaf_dfs::path::file_name(&entry.path));
            Box::pin(copy_tree(client, &entry, &child, force)).await?;
        }
        return Ok(());
    }
    match client.status(target).await? {
        Some(s) if s.kind == FileKind::Directory => bail!("{target}: Is a directory"),
        Some(_) if !force => bail!("{target} already exists (use -f to overwrite)"),
        _ => {}
    }
    let temp = format!("{target}._COPYING_");
    let mut reader = client.open(&src.path).await?;
    let mut writer = client
        .create(&temp, true, Some(src.replication), Some(src.block_size))
        .await?;
    while let Some(chunk) = reader.next_chunk().await? {
        writer.write_all(&chunk).await?;
    }
    writer.close().await?;
    if force {
        match client.delete(target, false).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    client.rename(&temp, target).await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// namespace commands

async fn ls(a: LsArgs) -> anyhow::Result<()> {
    let args = if a.paths.is_empty() {
        vec!["/".to_string()]
    } else {
        a.paths.clone()
    };
    let paths = parse_all(&args)?;
    let client = connect(&paths.iter().collect::<Vec<_>>()).await?;
    let paths = expand_globs(&client, paths).await?;
    for p in &paths {
        let status = client
            .status(&p.path)
            .await?
            .ok_or_else(|| not_found(&p.path))?;
        if status.kind == FileKind::File {
            print_listing(&[status], a.human);
            continue;
        }
        let entries = client.list(&p.path).await?;
        if a.recursive {
            ls_recursive(&client, entries, a.human).await?;
        } else {
            println!("Found {} items", entries.len());
            print_listing(&entries, a.human);
        }
    }
    Ok(())
}

async fn ls_recursive(
    client: &DfsClient,
    entries: Vec<FileStatus>,
    human: bool,
) -> anyhow::Result<()> {
    for e in entries {
        print_listing(std::slice::from_ref(&e), human);
        if e.kind == FileKind::Directory {
            let children = client.list(&e.path).await?;
            Box::pin(ls_recursive(client, children, human)).await?;
        }
    }
    Ok(())
}

/// Hadoop's `ls` columns: permissions, replication (`-` for directories), owner, group, size,
/// `yyyy-MM-dd HH:mm`, path.
fn print_listing(entries: &[FileStatus], human: bool) {
    for line in listing_lines(entries, human) {
        println!("{line}");
    }
}

/// The `ls` lines for `entries`, columns padded to the widest value like Hadoop.
pub fn listing_lines(entries: &[FileStatus], human: bool) -> Vec<String> {
    let repl = |s: &FileStatus| {
        if s.kind == FileKind::Directory {
            "-".to_string()
        } else {
            s.replication.to_string()
        }
    };
    let size = |s: &FileStatus| {
        if human {
            human_size(s.len)
        } else {
            s.len.to_string()
        }
    };
    let w_repl = entries
        .iter()
        .map(|s| repl(s).len())
        .max()
        .unwrap_or(1)
        .max(3);
    let w_owner = entries.iter().map(|s| s.owner.len()).max().unwrap_or(0);
    let w_group = entries.iter().map(|s| s.group.len()).max().unwrap_or(0);
    let w_size = entries.iter().map(|s| size(s).len()).max().unwrap_or(0);
    entries
        .iter()
        .map(|s| {
            format!(
                "{} {:>w_repl$} {:<w_owner$} {:<w_group$} {:>w_size$} {} {}",
                permissions(s),
                repl(s),
                s.owner,
                s.group,
                size(s),
                local_time(s.mtime_ms, false),
                s.path
            )
        })
        .collect()
}

/// `drwxr-xr-x` / `-rw-r--r--`.
pub fn permissions(s: &FileStatus) -> String {
    let mut out = String::with_capacity(10);
    out.push(if s.kind == FileKind::Directory {
        'd'
    } else {
        '-'
    });
    for shift in [6u16, 3, 0] {
        let bits = (s.mode >> shift) & 7;
        out.push(if bits & 4 != 0 { 'r' } else { '-' });
        out.push(if bits & 2 != 0 { 'w' } else { '-' });
        out.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    out
}

/// Hadoop's human-readable sizes: `16`, `1.5 K`, `128 M`.
pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 6] = ["K", "M", "G", "T", "P", "E"];
    if n < 1024 {
        return n.to_string();
    }
    let mut unit = 0;
    let mut value = n as f64 / 1024.0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    let shift = 10 * (unit as u32 + 1);
    if n & ((1u64 << shift) - 1) == 0 {
        format!("{} {}", n >> shift, UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `yyyy-MM-dd HH:mm` (or with `:ss`) in local time.
pub fn local_time(ms: u64, seconds: bool) -> String {
    let secs = (ms / 1000) as libc::time_t;
    // SAFETY: localtime_r only writes the tm we own; a zeroed tm is a valid initial value.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&secs, &mut tm).is_null() };
    if !ok {
        return "1970-01-01 00:00".into();
    }
    let base = format!(
        "{:04}-{:02}-{:02} {:02}:{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min
    );
    if seconds {
        format!("{base}:{:02}", tm.tm_sec)
    } else {
        base
    }
}

/// `yyyy-MM-dd HH:mm:ss` in UTC (Hadoop's `stat %y`).
pub fn utc_time(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

async fn mkdir(a: MkdirArgs) -> anyhow::Result<()> {
    let paths = parse_all(&a.paths)?;
    let client = connect(&paths.iter().collect::<Vec<_>>()).await?;
    for p in &paths {
        match client.status(&p.path).await? {
            Some(s) if s.kind == FileKind::File => {
                bail!("{}: File exists (and is not a directory)", p.path)
            }
            Some(_) if a.parents => continue,
            Some(_) => bail!("{}: File exists", p.path),
            None => {}
        }
        client
            .mkdirs(&p.path, a.parents)
            .await
            .map_err(|e| match e.namenode_error() {
                Some(NamenodeError::ParentNotFound(_)) | Some(NamenodeError::NotFound(_)) => {
                    anyhow!(
                        "{}: No such file or directory (use -p to create parents)",
                        sheaf_dfs::path::parent(&p.path).unwrap_or("/")
                    )
                }
                _ => e.into(),
            })?;
    }
    Ok(())
}

async fn rm(a: RmArgs) -> anyhow::Result<()> {
    let paths = parse_all(&a.paths)?;
    let client = connect(&paths.iter().collect::<Vec<_>>()).await?;
    let paths = expand_globs(&client, paths).await?;
    let mut failed = None;
    for p in &paths {
        let status = match client.status(&p.path).await? {
            Some(s) => s,
            None if a.force => continue,
            None => {
                failed = Some(not_found(&p.path));
                continue;
            }
        };
        if status.kind == FileKind::Directory && !a.recursive {
            failed = Some(anyhow!(
                "{}: Is a directory (use -r to delete it and its contents)",
                p.path
            ));
            continue;
        }
        if p.path == "/" {
            failed = Some(anyhow!("/: refusing to delete the root directory"));
            continue;
        }
        match client.delete(&p.path, a.recursive).await {
            Ok(_) => println!("Deleted {}", p.path),
            Err(e) if is_not_found(&e) && a.force => {}
            Err(e) => failed = Some(e.into()),
        }
    }
    failed.map_or(Ok(()), Err)
}

async fn mv(a: MvArgs) -> anyhow::Result<()> {
    let all = parse_all(&a.paths)?;
    let (srcs, dst) = all.split_at(all.len() - 1);
    let dst = &dst[0];
    let client = connect(&all.iter().collect::<Vec<_>>()).await?;
    let dst_status = client.status(&dst.path).await?;
    if srcs.len() > 1 && !matches!(&dst_status, Some(s) if s.kind == FileKind::Directory) {
        bail!(
            "{}: Is not a directory (several sources need a directory target)",
            dst.path
        );
    }
    for src in srcs {
        client
            .status(&src.path)
            .await?
            .ok_or_else(|| not_found(&src.path))?;
        let target = target_in(
            &dst.path,
            dst_status.as_ref(),
            sheaf_dfs::path::file_name(&src.path),
        );
        if target != dst.path || dst_status.is_none() {
            if client.status(&target).await?.is_some() {
                bail!("{target}: File exists");
            }
        } else if dst_status.is_some() {
            bail!("{target}: File exists");
        }
        client.rename(&src.path, &dst.path).await?;
    }
    Ok(())
}

async fn stat(a: StatArgs) -> anyhow::Result<()> {
    let (format, paths) = if a.args.len() > 1 && a.args[0].contains('%') {
        (a.args[0].clone(), &a.args[1..])
    } else {
        ("%y".to_string(), &a.args[..])
    };
    let paths = parse_all(paths)?;
    let client = connect(&paths.iter().collect::<Vec<_>>()).await?;
    let paths = expand_globs(&client, paths).await?;
    for p in &paths {
        let s = client
            .status(&p.path)
            .await?
            .ok_or_else(|| not_found(&p.path))?;
        println!("{}", format_stat(&format, &s));
    }
    Ok(())
}

/// Hadoop's `stat` format: `%a %A %b %F %g %n %o %r %u %y %Y` (and `\n`, `\t`).
pub fn format_stat(format: &str, s: &FileStatus) -> String {
    let mut out = String::new();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(o) => out.push(o),
                None => out.push('\\'),
            }
            continue;
        }
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('a') => out.push_str(&format!("{:o}", s.mode)),
            Some('A') => out.push_str(&permissions(s)),
            Some('b') => out.push_str(&s.len.to_string()),
            Some('F') => out.push_str(if s.kind == FileKind::Directory {
                "directory"
            } else {
                "regular file"
            }),
            Some('g') => out.push_str(&s.group),
            Some('n') => out.push_str(sheaf_dfs::path::file_name(&s.path)),
            Some('o') => out.push_str(&s.block_size.to_string()),
            Some('r') => out.push_str(&s.replication.to_string()),
            Some('u') => out.push_str(&s.owner),
            Some('y') => out.push_str(&utc_time(s.mtime_ms)),
            Some('Y') => out.push_str(&s.mtime_ms.to_string()),
            Some('x') => out.push_str(&utc_time(s.atime_ms)),
            Some('X') => out.push_str(&s.atime_ms.to_string()),
            Some('%') => out.push('%'),
            Some(o) => {
                out.push('%');
                out.push(o);
            }
            None => out.push('%'),
        }
    }
    out
}

async fn du(a: DuArgs) -> anyhow::Result<()> {
    let args = if a.paths.is_empty() {
        vec!["/".to_string()]
    } else {
        a.paths.clone()
    };
    let paths = parse_all(&args)?;
    let client = connect(&paths.iter().collect::<Vec<_>>()).await?;
    let paths = expand_globs(&client, paths).await?;
    let size = |n: u64| {
        if a.human {
            human_size(n)
        } else {
            n.to_string()
        }
    };
    let mut rows = Vec::new();
    for p in &paths {
        let status = client
            .status(&p.path)
            .await?
            .ok_or_else(|| not_found(&p.path))?;
        if a.summary || status.kind == FileKind::File {
            let c = client.content_summary(&p.path).await?;
            rows.push((size(c.length), size(c.space_consumed), p.path.clone()));
        } else {
            for e in client.list(&p.path).await? {
                let c = client.content_summary(&e.path).await?;
                rows.push((size(c.length), size(c.space_consumed), e.path.clone()));
            }
        }
    }
    let w1 = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    let w2 = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
    for (len, consumed, path) in rows {
        println!("{len:<w1$}  {consumed:<w2$}  {path}");
    }
    Ok(())
}

async fn df(a: DfArgs) -> anyhow::Result<()> {
    let args = if a.paths.is_empty() {
        vec!["/".to_string()]
    } else {
        a.paths.clone()
    };
    let paths = parse_all(&args)?;
    let client = connect(&paths.iter().collect::<Vec<_>>()).await?;
    let s = client.stats().await?;
    let size = |n: u64| {
        if a.human {
            human_size(n)
        } else {
            n.to_string()
        }
    };
    let pct = if s.capacity > 0 {
        s.used as f64 * 100.0 / s.capacity as f64
    } else {
        0.0
    };
    let fs = format!("sheaf://{}", client.namenode_addr());
    println!(
        "{:<25} {:>15} {:>15} {:>15} {:>5}",
        "Filesystem", "Size", "Used", "Available", "Use%"
    );
    println!(
        "{fs:<25} {:>15} {:>15} {:>15} {:>4.0}%",
        size(s.capacity),
        size(s.used),
        size(s.remaining),
        pct
    );
    Ok(())
}

async fn setrep(a: SetrepArgs) -> anyhow::Result<()> {
    if a.replication == 0 {
        bail!("replication must be at least 1");
    }
    let paths = parse_all(&a.paths)?;
    let client = connect(&paths.iter().collect::<Vec<_>>()).await?;
    let mut files = Vec::new();
    for p in &paths {
        let status = client
            .status(&p.path)
            .await?
            .ok_or_else(|| not_found(&p.path))?;
        collect_files(&client, status, &mut files).await?;
    }
    for f in &files {
        client.set_replication(f, a.replication).await?;
        println!("Replication {} set: {f}", a.replication);
    }
    if a.wait {
        for f in &files {
            print!("Waiting for {f} ...");
            use std::io::Write;
            let _ = std::io::stdout().flush();
            loop {
                let report = client.fsck(f).await?;
                let done = report.iter().all(|file| {
                    file.blocks
                        .iter()
                        .all(|b| b.locations.len() == a.replication as usize)
                });
                if done {
                    break;
                }
                print!(".");
                let _ = std::io::stdout().flush();
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            println!(" done");
        }
    }
    Ok(())
}

async fn collect_files(
    client: &DfsClient,
    status: FileStatus,
    out: &mut Vec<String>,
) -> anyhow::Result<()> {
    if status.kind == FileKind::File {
        out.push(status.path);
        return Ok(());
    }
    for e in client.list(&status.path).await? {
        Box::pin(collect_files(client, e, out)).await?;
    }
    Ok(())
}

async fn test(a: TestArgs) -> anyhow::Result<()> {
    let p = parse_path(&a.path)?;
    let client = connect(&[&p]).await?;
    let status = client.status(&p.path).await?;
    let yes = match &status {
        None => false,
        Some(_) if a.exists => true,
        Some(s) if a.dir => s.kind == FileKind::Directory,
        Some(s) if a.file => s.kind == FileKind::File,
        Some(s) if a.non_empty => s.len > 0,
        Some(s) => s.kind == FileKind::File && s.len == 0,
    };
    if yes {
        Ok(())
    } else {
        Err(SilentExit(1).into())
    }
}

async fn touchz(a: PathsArgs) -> anyhow::Result<()> {
    let paths = parse_all(&a.paths)?;
    let client = connect(&paths.iter().collect::<Vec<_>>()).await?;
    for p in &paths {
        match client.status(&p.path).await? {
            Some(s) if s.kind == FileKind::Directory => bail!("{}: Is a directory", p.path),
            Some(s) if s.len > 0 => bail!("{}: Not a zero-length file", p.path),
            Some(_) => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() as u64)
                    .unwrap_or(0);
                client.set_mtime(&p.path, now).await?;
            }
            None => {
                let w = client
                    .create(&p.path, false, None, None)
                    .await
                    .map_err(|e| map_write_error(e, &p.path))?;
                w.close().await?;
            }
        }
    }
    Ok(())
}

async fn tail(a: TailArgs) -> anyhow::Result<()> {
    let p = parse_path(&a.path)?;
    let client = connect(&[&p]).await?;
    let status = client
        .status(&p.path)
        .await?
        .ok_or_else(|| not_found(&p.path))?;
    if status.kind == FileKind::Directory {
        bail!("{}: Is a directory", p.path);
    }
    let mut reader = client.open(&p.path).await?;
    let start = reader.len().saturating_sub(1024);
    let bytes = reader.read_range(start, 1024).await?;
    let mut shown = start + bytes.len() as u64;
    write_stdout(&bytes)?;
    if !a.follow {
        return Ok(());
    }
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut reader = client.open(&p.path).await?;
        if reader.len() > shown {
            let more = reader.read_range(shown, reader.len() - shown).await?;
            shown += more.len() as u64;
            write_stdout(&more)?;
        }
    }
}

fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = QuietStdout;
    out.write_all(bytes)?;
    out.flush()?;
    Ok(())
}

/// Standard output for file contents. When the reader has gone away (`cat … | head`) the
/// command ends at once and quietly, with the status a SIGPIPE death would give (141), like
/// any Unix tool; every other write error is reported normally.
struct QuietStdout;

impl QuietStdout {
    fn check<T>(r: std::io::Result<T>) -> std::io::Result<T> {
        if matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe) {
            std::process::exit(141);
        }
        r
    }
}

impl std::io::Write for QuietStdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Self::check(std::io::stdout().lock().write(buf))
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Self::check(std::io::stdout().lock().flush())
    }
}

async fn checksum(a: PathsArgs) -> anyhow::Result<()> {
    let paths = parse_all(&a.paths)?;
    let client = connect(&paths.iter().collect::<Vec<_>>()).await?;
    let paths = expand_globs(&client, paths).await?;
    for p in &paths {
        let status = client
            .status(&p.path)
            .await?
            .ok_or_else(|| not_found(&p.path))?;
        if status.kind == FileKind::Directory {
            bail!("{}: Is a directory", p.path);
        }
        let c = client.file_checksum(&p.path).await?;
        // Hadoop prints the checksum's bytes: bytes-per-crc (4), crcs-per-block (8), md5 (16).
        let mut bytes = Vec::with_capacity(28);
        bytes.extend_from_slice(&c.bytes_per_crc.to_be_bytes());
        bytes.extend_from_slice(&c.crcs_per_block.to_be_bytes());
        bytes.extend_from_slice(&c.md5);
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        println!("{}\t{}\t{hex}", p.path, c.algorithm());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// fsck and dfsadmin

/// Runs `sheaf fsck PATH`: exits non-zero when the subtree is CORRUPT.
pub fn fsck(a: FsckArgs) -> anyhow::Result<()> {
    runtime()?.block_on(async move {
        let p = parse_path(&a.path)?;
        let client = connect(&[&p]).await?;
        let started = Instant::now();
        let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        let files = client.fsck(&p.path).await?;
        let datanodes = client.datanode_report().await?.iter().filter(|d| d.state == DatanodeState::Live).count();
        println!("Connecting to namenode via sheaf://{}", client.namenode_addr());
        println!("FSCK started by {} for path {} at {}", whoami(), p.path, local_time(now_ms, true));
        let (mut total_size, mut total_blocks, mut under, mut corrupt, mut missing, mut min_repl) = (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
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
                            notes.push(format!("blk_{}: CORRUPT. {c} corrupt replica(s), no good one.", b.block.id));
                        } else {
                            min_repl += 1;
                            notes.push(format!("blk_{}: {c} corrupt replica(s), {live} good (being replaced).", b.block.id));
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
            let verdict = if file_bad { "CORRUPT" } else if notes.is_empty() { "OK" } else { "" };
            let open = if f.open_for_write { " OPENFORWRITE" } else { "" };
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
                    let locs: Vec<String> = b.locations.iter().map(|l| l.data_addr().to_string()).collect();
                    println!("{i}. blk_{}_{} len={} Live_repl={} [{}]", b.block.id, b.block.gen, b.block.len, b.locations.len(), locs.join(", "));
                }
            }
        }
        let healthy = corrupt == 0 && missing == 0;
        let pct = |n: u64| if total_blocks == 0 { 0.0 } else { n as f64 * 100.0 / total_blocks as f64 };
        println!();
        println!("Status: {}", if healthy { "HEALTHY" } else { "CORRUPT" });
        println!(" Number of data-nodes:\t{datanodes}");
        println!(" Total size:\t{total_size} B");
        println!(" Total files:\t{}", files.len());
        let avg = total_size.checked_div(total_blocks).unwrap_or(0);
        println!(" Total blocks (validated):\t{total_blocks} (avg. block size {avg} B)");
        println!(" Minimally replicated blocks:\t{min_repl} ({:.1} %)", pct(min_repl));
        println!(" Under-replicated blocks:\t{under} ({:.1} %)", pct(under));
        println!(" Corrupt blocks:\t\t{corrupt}");
        println!(" Missing blocks:\t\t{missing}");
        if corrupt_files > 0 {
            println!(" CORRUPT FILES:\t{corrupt_files}");
        }
        println!("FSCK ended at {} in {} milliseconds", local_time(now_ms + started.elapsed().as_millis() as u64, true), started.elapsed().as_millis());
        println!();
        if healthy {
            println!("The filesystem under path '{}' is HEALTHY", p.path);
            Ok(())
        } else {
            println!("The filesystem under path '{}' is CORRUPT", p.path);
            Err(SilentExit(1).into())
        }
    })
}

fn whoami() -> String {
    std::env::var("USER").unwrap_or_else(|_| "root".into())
}

/// Runs `sheaf dfsadmin …`.
pub fn dfsadmin(cmd: DfsadminCommand) -> anyhow::Result<()> {
    runtime()?.block_on(async move {
        match cmd {
            DfsadminCommand::Report(a) => report(a).await,
            DfsadminCommand::Safemode(a) => safemode(a).await,
        }
    })
}

async fn client_for(fs: Option<&str>) -> anyhow::Result<DfsClient> {
    let p = match fs {
        Some(f) => parse_path(f)?,
        None => DfsPath {
            namenode: None,
            path: "/".into(),
        },
    };
    connect(&[&p]).await
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

#[cfg(test)]
mod tests {
    use super::*;

    fn status(kind: FileKind, len: u64) -> FileStatus {
        FileStatus {
            path: "/d/f".into(),
            kind,
            len,
            replication: if kind == FileKind::File { 3 } else { 0 },
            block_size: 1 << 20,
            mtime_ms: 1_700_000_000_000,
            atime_ms: 0,
            owner: "alice".into(),
            group: "supergroup".into(),
            mode: if kind == FileKind::File { 0o644 } else { 0o755 },
        }
    }

    #[test]
    fn paths_parse_with_and_without_a_namenode() {
        assert_eq!(
            parse_path("/a//b/").unwrap(),
            DfsPath {
                namenode: None,
                path: "/a/b".into()
            }
        );
        let p = parse_path("sheaf://127.0.0.1:9100/x").unwrap();
        assert_eq!(p.namenode, Some("127.0.0.1:9100".parse().unwrap()));
        assert_eq!(p.path, "/x");
        assert_eq!(
            parse_path("sheaf://127.0.0.1").unwrap().namenode,
            Some("127.0.0.1:9000".parse().unwrap())
        );
        assert!(parse_path("relative/x").is_err());
        assert!(parse_path("hdfs://h:1/x").is_err());
        assert!(parse_path("sheaf:///x").is_err());
    }

    #[test]
    fn ls_lines_have_hadoop_columns() {
        let lines = listing_lines(
            &[status(FileKind::Directory, 0), status(FileKind::File, 1234)],
            false,
        );
        assert!(
            lines[0].starts_with("drwxr-xr-x   - alice supergroup    0 "),
            "{}",
            lines[0]
        );
        assert!(
            lines[1].starts_with("-rw-r--r--   3 alice supergroup 1234 "),
            "{}",
            lines[1]
        );
        assert!(lines[1].ends_with(" /d/f"));
    }

    #[test]
    fn human_sizes_like_hadoop() {
        assert_eq!(human_size(16), "16");
        assert_eq!(human_size(1536), "1.5 K");
        assert_eq!(human_size(128 << 20), "128 M");
    }

    #[test]
    fn stat_formats() {
        let s = status(FileKind::File, 42);
        assert_eq!(
            format_stat("%b %F %g %n %o %r %u", &s),
            "42 regular file supergroup f 1048576 3 alice"
        );
        assert_eq!(format_stat("%Y", &s), "1700000000000");
        assert_eq!(format_stat("%y", &s), "2023-11-14 22:13:20");
    }
}
