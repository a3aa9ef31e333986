//! `sheaf dfs …`, the Hadoop FileSystem shell: the command tree, its dispatch and what every
//! command starts with (parse the path arguments, connect, expand globs). The verbs are in
//! [`transfer`] (put/get/cat/cp), [`permissions`] (chmod/chown/chgrp) and [`namespace`]
//! (everything else).
//!
//! Paths are `/abs/path` or `sheaf:///abs/path` (the cluster of the configuration) or
//! `sheaf://host:port/path` (the NameNode address overridden), parsed by
//! [`sheaf_dfs::uri::DfsUri`]. Output formats follow Hadoop's where Hadoop defines one.

mod args;
mod namespace;
mod permissions;
mod transfer;

use super::runtime::{runtime, Workload};
use anyhow::anyhow;
use args::{
    ChgrpArgs, ChmodArgs, ChownArgs, CountArgs, CpArgs, DfArgs, DuArgs, ExpungeArgs, FindArgs,
    GetArgs, GetmergeArgs, HeadArgs, LsArgs, MkdirArgs, MvArgs, PathsArgs, PutArgs, RmArgs,
    RmdirArgs, SetrepArgs, StatArgs, TailArgs, TestArgs,
};
use sheaf_dfs::client::{DfsClient, DfsError};
use sheaf_dfs::protocol::{FileKind, FileStatus, NamenodeError};
use sheaf_dfs::uri::DfsUri;
use std::net::SocketAddr;

/// `sheaf dfs …`: Hadoop's FileSystem shell.
#[derive(clap::Subcommand)]
pub enum DfsCommand {
    /// Copy local files, directories (recursively) or stdin (`-`) into the DFS.
    #[command(alias = "copyFromLocal")]
    Put(PutArgs),
    /// Like put, then delete the local sources.
    #[command(name = "moveFromLocal")]
    MoveFromLocal(PutArgs),
    /// Copy DFS files or directories to the local filesystem.
    #[command(alias = "copyToLocal")]
    Get(GetArgs),
    /// Concatenate DFS files (a directory: its files in name order) into one local file.
    Getmerge(GetmergeArgs),
    /// Print files to stdout.
    Cat(PathsArgs),
    /// List directories (Hadoop's columns).
    #[command(disable_help_flag = true)]
    Ls(LsArgs),
    /// Create directories.
    Mkdir(MkdirArgs),
    /// Delete empty directories.
    Rmdir(RmdirArgs),
    /// Directories, files and bytes under paths (Hadoop's columns; `-q` quotas, `-h`, `-v`).
    #[command(disable_help_flag = true)]
    Count(CountArgs),
    /// Paths under the given ones whose name matches (`-name GLOB`, `-iname GLOB`, `-print`).
    Find(FindArgs),
    /// Delete files or directories (into the trash unless `-skipTrash` or the trash is off).
    Rm(RmArgs),
    /// Checkpoint the trash and delete checkpoints older than the trash interval.
    Expunge(ExpungeArgs),
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
    /// Print the first kilobyte of a file.
    Head(HeadArgs),
    /// Print the last kilobyte of a file.
    Tail(TailArgs),
    /// Print files' MD5-of-MD5-of-CRC32 checksums.
    Checksum(PathsArgs),
    /// Change permission bits (owner or superuser): `chmod [-R] 640|u+x,go-w PATH…`.
    Chmod(ChmodArgs),
    /// Change owner and/or group (the owner: superuser only): `chown [-R] OWNER[:GROUP] PATH…`.
    Chown(ChownArgs),
    /// Change group (to one of the owner's groups): `chgrp [-R] GROUP PATH…`.
    Chgrp(ChgrpArgs),
}

/// The verb for error messages: `dfs put`, `dfs ls`, ….
pub fn verb(cmd: &DfsCommand) -> &'static str {
    match cmd {
        DfsCommand::Put(_) => "dfs put",
        DfsCommand::MoveFromLocal(_) => "dfs moveFromLocal",
        DfsCommand::Get(_) => "dfs get",
        DfsCommand::Getmerge(_) => "dfs getmerge",
        DfsCommand::Rmdir(_) => "dfs rmdir",
        DfsCommand::Count(_) => "dfs count",
        DfsCommand::Find(_) => "dfs find",
        DfsCommand::Cat(_) => "dfs cat",
        DfsCommand::Ls(_) => "dfs ls",
        DfsCommand::Mkdir(_) => "dfs mkdir",
        DfsCommand::Rm(_) => "dfs rm",
        DfsCommand::Expunge(_) => "dfs expunge",
        DfsCommand::Mv(_) => "dfs mv",
        DfsCommand::Cp(_) => "dfs cp",
        DfsCommand::Stat(_) => "dfs stat",
        DfsCommand::Du(_) => "dfs du",
        DfsCommand::Df(_) => "dfs df",
        DfsCommand::Setrep(_) => "dfs setrep",
        DfsCommand::Test(_) => "dfs test",
        DfsCommand::Touchz(_) => "dfs touchz",
        DfsCommand::Head(_) => "dfs head",
        DfsCommand::Tail(_) => "dfs tail",
        DfsCommand::Checksum(_) => "dfs checksum",
        DfsCommand::Chmod(_) => "dfs chmod",
        DfsCommand::Chown(_) => "dfs chown",
        DfsCommand::Chgrp(_) => "dfs chgrp",
    }
}

/// Parses a path argument: `/abs/path`, `sheaf:///path` or `sheaf://host[:port]/path`.
pub(super) fn parse_path(arg: &str) -> anyhow::Result<DfsUri> {
    Ok(DfsUri::parse(arg)?)
}

/// Connects to the cluster `namenode` names (a `sheaf://host:port/` argument), else to the
/// configured one.
pub(super) async fn connect(namenode: Option<SocketAddr>) -> anyhow::Result<DfsClient> {
    let config = super::config::client(namenode)?;
    Ok(DfsClient::connect(&config.dfs, config.identity).await?)
}

/// Parses one path argument and connects to the cluster it names.
pub(super) async fn connect_one(arg: &str) -> anyhow::Result<(DfsClient, DfsUri)> {
    let path = parse_path(arg)?;
    Ok((connect(path.namenode).await?, path))
}

/// Parses path arguments and connects to the cluster the first `sheaf://host…` among them
/// names (else the configured one).
async fn connect_all(args: &[String]) -> anyhow::Result<(DfsClient, Vec<DfsUri>)> {
    let paths = parse_all(args)?;
    let client = connect(paths.iter().find_map(|p| p.namenode)).await?;
    Ok((client, paths))
}

/// [`connect_all`], then every glob expanded against the namespace.
async fn connect_expanded(args: &[String]) -> anyhow::Result<(DfsClient, Vec<DfsUri>)> {
    let (client, paths) = connect_all(args).await?;
    let paths = expand_globs(&client, paths).await?;
    Ok((client, paths))
}

/// [`connect_expanded`], then every path's status: a missing one is Hadoop's "No such file or
/// directory".
async fn connect_existing(
    args: &[String],
) -> anyhow::Result<(DfsClient, Vec<(DfsUri, FileStatus)>)> {
    let (client, paths) = connect_expanded(args).await?;
    let mut out = Vec::with_capacity(paths.len());
    for p in paths {
        let status = client
            .status(&p.path)
            .await?
            .ok_or_else(|| not_found(&p.path))?;
        out.push((p, status));
    }
    Ok((client, out))
}

/// The path arguments of `ls`, `du` and `df`: `/` when none is given.
fn paths_or_root(args: &[String]) -> Vec<String> {
    if args.is_empty() {
        vec!["/".to_string()]
    } else {
        args.to_vec()
    }
}

/// Runs `sheaf dfs …`.
pub fn run(cmd: DfsCommand) -> anyhow::Result<()> {
    runtime(Workload::Command)?.block_on(run_async(cmd))
}

async fn run_async(cmd: DfsCommand) -> anyhow::Result<()> {
    match cmd {
        DfsCommand::Put(a) => transfer::put(a).await,
        DfsCommand::MoveFromLocal(a) => transfer::move_from_local(a).await,
        DfsCommand::Get(a) => transfer::get(a).await,
        DfsCommand::Getmerge(a) => transfer::getmerge(a).await,
        DfsCommand::Rmdir(a) => namespace::rmdir(a).await,
        DfsCommand::Count(a) => namespace::count(a).await,
        DfsCommand::Find(a) => namespace::find(a).await,
        DfsCommand::Cat(a) => transfer::cat(a).await,
        DfsCommand::Ls(a) => namespace::ls(a).await,
        DfsCommand::Mkdir(a) => namespace::mkdir(a).await,
        DfsCommand::Rm(a) => namespace::rm(a).await,
        DfsCommand::Expunge(a) => namespace::expunge(a).await,
        DfsCommand::Mv(a) => namespace::mv(a).await,
        DfsCommand::Cp(a) => transfer::cp(a).await,
        DfsCommand::Stat(a) => namespace::stat(a).await,
        DfsCommand::Du(a) => namespace::du(a).await,
        DfsCommand::Df(a) => namespace::df(a).await,
        DfsCommand::Setrep(a) => namespace::setrep(a).await,
        DfsCommand::Test(a) => namespace::test(a).await,
        DfsCommand::Touchz(a) => namespace::touchz(a).await,
        DfsCommand::Head(a) => namespace::head(a).await,
        DfsCommand::Tail(a) => namespace::tail(a).await,
        DfsCommand::Checksum(a) => namespace::checksum(a).await,
        DfsCommand::Chmod(a) => permissions::chmod(a).await,
        DfsCommand::Chown(a) => permissions::chown(a).await,
        DfsCommand::Chgrp(a) => permissions::chgrp(a).await,
    }
}

fn parse_all(args: &[String]) -> anyhow::Result<Vec<DfsUri>> {
    args.iter().map(|a| parse_path(a)).collect()
}

fn has_glob(component: &str) -> bool {
    component.contains(['*', '?', '['])
}

/// Expands Hadoop-style globs (`*`, `?`, `[abc]` in any path component) against the namespace,
/// in sorted order. A pattern that matches nothing is an error naming it, like Hadoop's shell.
async fn expand_globs(client: &DfsClient, paths: Vec<DfsUri>) -> anyhow::Result<Vec<DfsUri>> {
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
        out.extend(matched.into_iter().map(|path| DfsUri {
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

/// Where a source lands: into `dst` if it is a directory, else at `dst` itself.
fn target_in(dst: &str, dst_status: Option<&FileStatus>, name: &str) -> String {
    match dst_status {
        Some(s) if s.kind == FileKind::Directory => sheaf_dfs::path::join(dst, name),
        _ => dst.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_with_and_without_a_namenode() {
        assert_eq!(
            parse_path("/a//b/").unwrap(),
            DfsUri {
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
        // Like Hadoop's `hdfs:///x`: the configured NameNode.
        assert_eq!(
            parse_path("sheaf:///x").unwrap(),
            DfsUri {
                namenode: None,
                path: "/x".into()
            }
        );
    }
}
