//! Commands on the namespace (names, metadata, replication), not on file contents: `ls`,
//! `mkdir`, `rm`, `mv`, `stat`, `du`, `df`, `setrep`, `test`, `touchz`, `head`, `tail`, `checksum`.

use super::args::{
    CountArgs, DfArgs, DuArgs, ExpungeArgs, FindArgs, HeadArgs, LsArgs, MkdirArgs, MvArgs,
    PathsArgs, RmArgs, RmdirArgs, SetrepArgs, StatArgs, TailArgs, TestArgs,
};
use super::transfer::{map_write_error, write_stdout};
use super::{
    connect_all, connect_existing, connect_expanded, connect_one, is_not_found, not_found,
    paths_or_root, target_in,
};
use crate::cli::exit::SilentExit;
use crate::cli::format::{format_stat, human_size, listing_lines};
use anyhow::{anyhow, bail};
use sheaf_dfs::client::{DfsClient, DfsReader};
use sheaf_dfs::protocol::{FileKind, FileStatus, NamenodeError};
use sheaf_dfs::uri::DfsUri;
use std::time::Duration;

pub(super) async fn ls(a: LsArgs) -> anyhow::Result<()> {
    let (client, paths) = connect_expanded(&paths_or_root(&a.paths)).await?;
    for p in &paths {
        let status = client
            .status(&p.path)
            .await?
            .ok_or_else(|| not_found(&p.path))?;
        if status.kind == FileKind::File || a.directories {
            print_listing(&[status], &a);
            continue;
        }
        let mut entries = client.list(&p.path).await?;
        sort_listing(&mut entries, &a);
        if a.recursive {
            ls_recursive(&client, entries, &a).await?;
        } else {
            if !a.paths_only {
                println!("Found {} items", entries.len());
            }
            print_listing(&entries, &a);
        }
    }
    Ok(())
}

/// Hadoop's orders: by name, `-t` by time (newest first), `-S` by size (largest first), `-r`
/// reversed.
fn sort_listing(entries: &mut [FileStatus], a: &LsArgs) {
    let time = |s: &FileStatus| if a.atime { s.atime_ms } else { s.mtime_ms };
    if a.by_time {
        entries.sort_by(|x, y| time(y).cmp(&time(x)).then_with(|| x.path.cmp(&y.path)));
    } else if a.by_size {
        entries.sort_by(|x, y| y.len.cmp(&x.len).then_with(|| x.path.cmp(&y.path)));
    } else {
        entries.sort_by(|x, y| x.path.cmp(&y.path));
    }
    if a.reverse {
        entries.reverse();
    }
}

async fn ls_recursive(
    client: &DfsClient,
    entries: Vec<FileStatus>,
    a: &LsArgs,
) -> anyhow::Result<()> {
    for e in entries {
        print_listing(std::slice::from_ref(&e), a);
        if e.kind == FileKind::Directory {
            let mut children = client.list(&e.path).await?;
            sort_listing(&mut children, a);
            Box::pin(ls_recursive(client, children, a)).await?;
        }
    }
    Ok(())
}

/// Hadoop's `ls` columns: permissions, replication (`-` for directories), owner, group, size,
/// `yyyy-MM-dd HH:mm`, path (`-C`: the path alone; `-q`: `?` for non-printable characters).
fn print_listing(entries: &[FileStatus], a: &LsArgs) {
    let lines = if a.paths_only {
        entries.iter().map(|e| e.path.clone()).collect()
    } else {
        listing_lines(entries, a.human, a.atime)
    };
    for line in lines {
        if a.quote {
            let quoted: String = line
                .chars()
                .map(|c| if c.is_control() { '?' } else { c })
                .collect();
            println!("{quoted}");
        } else {
            println!("{line}");
        }
    }
}

pub(super) async fn mkdir(a: MkdirArgs) -> anyhow::Result<()> {
    let (client, paths) = connect_all(&a.paths).await?;
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

pub(super) async fn rm(a: RmArgs) -> anyhow::Result<()> {
    let (client, paths) = connect_expanded(&a.paths).await?;
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
        if client.config().dfs.trash_interval_ms > 0 && !a.skip_trash {
            match client.move_to_trash(&p.path).await {
                Ok(Some(target)) => {
                    let nn = client.namenode_addr();
                    println!(
                        "Moved: 'sheaf://{nn}{}' to trash at: sheaf://{nn}{target}",
                        p.path
                    );
                    continue;
                }
                // Already in the trash: deleted for good below.
                Ok(None) => {}
                Err(e) => {
                    failed = Some(e.into());
                    continue;
                }
            }
        }
        match client.delete(&p.path, a.recursive).await {
            Ok(_) => println!("Deleted {}", p.path),
            Err(e) if is_not_found(&e) && a.force => {}
            Err(e) => failed = Some(e.into()),
        }
    }
    failed.map_or(Ok(()), Err)
}

/// Hadoop's `count` columns: `%12s %12s %18s ` (with `-q`, `%12s %15s %15s %15s ` before).
pub(super) async fn count(a: CountArgs) -> anyhow::Result<()> {
    let (client, paths) = connect_existing(&a.paths).await?;
    if a.header {
        let quota = if a.quotas {
            format!(
                "{:>12} {:>15} {:>15} {:>15} ",
                "QUOTA", "REM_QUOTA", "SPACE_QUOTA", "REM_SPACE_QUOTA"
            )
        } else {
            String::new()
        };
        println!(
            "{quota}{:>12} {:>12} {:>18} PATHNAME",
            "DIR_COUNT", "FILE_COUNT", "CONTENT_SIZE"
        );
    }
    for (p, _) in &paths {
        let c = client.content_summary(&p.path).await?;
        let size = if a.human {
            human_size(c.length)
        } else {
            c.length.to_string()
        };
        let quota = if a.quotas {
            format!("{:>12} {:>15} {:>15} {:>15} ", "none", "inf", "none", "inf")
        } else {
            String::new()
        };
        println!(
            "{quota}{:>12} {:>12} {:>18} {}",
            c.directories, c.files, size, p.path
        );
    }
    Ok(())
}

pub(super) async fn rmdir(a: RmdirArgs) -> anyhow::Result<()> {
    let (client, paths) = connect_existing(&a.paths).await?;
    for (p, status) in &paths {
        if status.kind != FileKind::Directory {
            bail!("{}: Is not a directory", p.path);
        }
        if !client.list(&p.path).await?.is_empty() {
            if a.ignore_non_empty {
                continue;
            }
            bail!("{}: Directory is not empty", p.path);
        }
        client.delete(&p.path, false).await?;
    }
    Ok(())
}

/// `find PATH… [-name GLOB | -iname GLOB] [-print | -print0]`: every path under the given ones
/// (themselves included) whose last component matches.
pub(super) async fn find(a: FindArgs) -> anyhow::Result<()> {
    let (pattern, case_sensitive) = match (&a.name, &a.iname) {
        (Some(_), Some(_)) => bail!("give -name or -iname, not both"),
        (Some(p), None) => (Some(p), true),
        (None, Some(p)) => (Some(p), false),
        (None, None) => (None, true),
    };
    let pattern = pattern
        .map(|p| glob::Pattern::new(p).map_err(|e| anyhow!("{p}: bad pattern: {e}")))
        .transpose()?;
    let options = glob::MatchOptions {
        case_sensitive,
        ..glob::MatchOptions::new()
    };
    let (client, mut pending): (DfsClient, Vec<FileStatus>) = if a.paths.is_empty() {
        let client = super::connect(None).await?;
        let home = sheaf_dfs::client::home_dir(client.user());
        let status = client
            .status(&home)
            .await?
            .ok_or_else(|| not_found(&home))?;
        (client, vec![status])
    } else {
        let (client, paths) = connect_existing(&a.paths).await?;
        (client, paths.into_iter().map(|(_, s)| s).collect())
    };
    let end = if a.print0 { '\0' } else { '\n' };
    let mut out = String::new();
    // Depth first, in name order, as Hadoop walks; a listing carries each child's kind.
    pending.reverse();
    while let Some(entry) = pending.pop() {
        let name = sheaf_dfs::path::file_name(&entry.path);
        if pattern
            .as_ref()
            .is_none_or(|g| g.matches_with(name, options))
        {
            out.push_str(&entry.path);
            out.push(end);
        }
        if entry.kind == FileKind::Directory {
            let mut children = client.list(&entry.path).await?;
            children.sort_by(|x, y| y.path.cmp(&x.path));
            pending.extend(children);
        }
    }
    write_stdout(out.as_bytes())
}

pub(super) async fn expunge(a: ExpungeArgs) -> anyhow::Result<()> {
    let client = super::connect(None).await?;
    let interval = client.config().dfs.trash_interval_ms;
    let (made, deleted) = client.expunge(interval, a.immediate).await?;
    if let Some(c) = made {
        println!("Created trash checkpoint: {c}");
    }
    for d in deleted {
        println!("Deleted trash checkpoint: {d}");
    }
    Ok(())
}

pub(super) async fn mv(a: MvArgs) -> anyhow::Result<()> {
    let (client, all) = connect_all(&a.paths).await?;
    let (srcs, dst) = all.split_at(all.len() - 1);
    let dst = &dst[0];
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

pub(super) async fn stat(a: StatArgs) -> anyhow::Result<()> {
    let (format, paths) = if a.args.len() > 1 && a.args[0].contains('%') {
        (a.args[0].clone(), &a.args[1..])
    } else {
        ("%y".to_string(), &a.args[..])
    };
    let (client, paths) = connect_expanded(paths).await?;
    for p in &paths {
        let s = client
            .status(&p.path)
            .await?
            .ok_or_else(|| not_found(&p.path))?;
        println!("{}", format_stat(&format, &s));
    }
    Ok(())
}

pub(super) async fn du(a: DuArgs) -> anyhow::Result<()> {
    let (client, paths) = connect_expanded(&paths_or_root(&a.paths)).await?;
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

pub(super) async fn df(a: DfArgs) -> anyhow::Result<()> {
    // The paths only name the cluster.
    let (client, _) = connect_all(&paths_or_root(&a.paths)).await?;
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

pub(super) async fn setrep(a: SetrepArgs) -> anyhow::Result<()> {
    if a.replication == 0 {
        bail!("replication must be at least 1");
    }
    let (client, paths) = connect_all(&a.paths).await?;
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

pub(super) async fn test(a: TestArgs) -> anyhow::Result<()> {
    let (client, p) = connect_one(&a.path).await?;
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

pub(super) async fn touchz(a: PathsArgs) -> anyhow::Result<()> {
    let (client, paths) = connect_all(&a.paths).await?;
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

/// Opens the file `arg` names for reading (a directory is an error, as in Hadoop).
async fn open_file(arg: &str) -> anyhow::Result<(DfsClient, DfsUri, DfsReader)> {
    let (client, p) = connect_one(arg).await?;
    let status = client
        .status(&p.path)
        .await?
        .ok_or_else(|| not_found(&p.path))?;
    if status.kind == FileKind::Directory {
        bail!("{}: Is a directory", p.path);
    }
    let reader = client.open(&p.path).await?;
    Ok((client, p, reader))
}

pub(super) async fn head(a: HeadArgs) -> anyhow::Result<()> {
    let (_, _, mut reader) = open_file(&a.path).await?;
    write_stdout(&reader.read_range(0, 1024).await?)
}

pub(super) async fn tail(a: TailArgs) -> anyhow::Result<()> {
    let (client, p, mut reader) = open_file(&a.path).await?;
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

pub(super) async fn checksum(a: PathsArgs) -> anyhow::Result<()> {
    let (client, paths) = connect_existing(&a.paths).await?;
    for (p, status) in &paths {
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
