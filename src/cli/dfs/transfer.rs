//! Commands that move file contents: `put`/`copyFromLocal`/`moveFromLocal` (local → DFS), `get`/
//! `copyToLocal` and `getmerge` (DFS → local), `cat` and `cp` (within the DFS), with progress bars
//! on a terminal. Every copy goes to `target._COPYING_`
//! first and is renamed into place, so a failed copy never leaves a partial file.

use super::args::{CpArgs, GetArgs, GetmergeArgs, PathsArgs, PutArgs};
use super::{connect_all, connect_existing, connect_one, is_not_found, not_found, target_in};
use anyhow::{anyhow, bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use sheaf_dfs::client::{CopyProgress, DfsClient, DfsError, WriteOutcome};
use sheaf_dfs::protocol::{FileKind, FileStatus, NamenodeError};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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

pub(super) async fn put(a: PutArgs) -> anyhow::Result<()> {
    let (srcs, dst) = a.paths.split_at(a.paths.len() - 1);
    let (client, dst) = connect_one(&dst[0]).await?;
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

pub(super) fn map_write_error(e: DfsError, target: &str) -> anyhow::Error {
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

pub(super) async fn get(a: GetArgs) -> anyhow::Result<()> {
    let (srcs, dst) = a.paths.split_at(a.paths.len() - 1);
    let (client, srcs) = connect_all(srcs).await?;
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

pub(super) async fn cat(a: PathsArgs) -> anyhow::Result<()> {
    let (client, paths) = connect_existing(&a.paths).await?;
    for (p, status) in &paths {
        if status.kind == FileKind::Directory {
            bail!("{}: Is a directory", p.path);
        }
        client
            .copy_to_writer(&p.path, Box::new(QuietStdout), "stdout", None)
            .await?;
    }
    Ok(())
}

/// `moveFromLocal`: `put`, then the local sources are deleted.
pub(super) async fn move_from_local(a: PutArgs) -> anyhow::Result<()> {
    let sources: Vec<PathBuf> = a.paths[..a.paths.len() - 1]
        .iter()
        .map(PathBuf::from)
        .collect();
    if sources.iter().any(|s| s.as_os_str() == "-") {
        bail!("-: standard input cannot be moved (use put)");
    }
    put(a).await?;
    for s in sources {
        let what = format!("{}: copied, but not removed", s.display());
        local_io(what, move || {
            if s.is_dir() {
                std::fs::remove_dir_all(&s)
            } else {
                std::fs::remove_file(&s)
            }
        })
        .await?;
    }
    Ok(())
}

/// Local-file work off the async runtime; an error names `what`.
async fn local_io<T: Send + 'static>(
    what: String,
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    match tokio::task::spawn_blocking(work).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(anyhow!("{what}: {}", io_reason(&e))),
        Err(e) => Err(anyhow!("{what}: {e}")),
    }
}

/// `getmerge`: the sources' bytes, one file after another, into one local file.
pub(super) async fn getmerge(a: GetmergeArgs) -> anyhow::Result<()> {
    let (srcs, dst) = a.paths.split_at(a.paths.len() - 1);
    let dst = std::path::PathBuf::from(&dst[0]);
    let (client, paths) = connect_existing(srcs).await?;
    let mut files = Vec::new();
    for (p, status) in paths {
        if status.kind == FileKind::Directory {
            let mut children: Vec<_> = client
                .list(&p.path)
                .await?
                .into_iter()
                .filter(|e| e.kind == FileKind::File)
                .collect();
            children.sort_by(|x, y| x.path.cmp(&y.path));
            files.extend(children);
        } else {
            files.push(status);
        }
    }
    let name = dst.display().to_string();
    let target = dst.clone();
    let sink = local_io(name.clone(), move || std::fs::File::create(target)).await?;
    for f in files {
        if a.skip_empty && f.len == 0 {
            continue;
        }
        let out = sink
            .try_clone()
            .map_err(|e| anyhow!("{name}: {}", io_reason(&e)))?;
        client
            .copy_to_writer(&f.path, Box::new(out), &name, None)
            .await?;
        if a.newline {
            let mut out = sink
                .try_clone()
                .map_err(|e| anyhow!("{name}: {}", io_reason(&e)))?;
            local_io(name.clone(), move || {
                std::io::Write::write_all(&mut out, b"\n")
            })
            .await?;
        }
    }
    local_io(name, move || sink.sync_all()).await
}

pub(super) async fn cp(a: CpArgs) -> anyhow::Result<()> {
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

pub(super) fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
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
