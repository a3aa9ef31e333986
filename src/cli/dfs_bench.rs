//! `sheaf bench dfsio`: Hadoop's TestDFSIO on a running cluster. Writes N files, reads them
//! back, and in the same run measures the ceiling: the raw sequential write (fsync at the end)
//! and read rate of the same number of bytes through plain files on the filesystem holding the
//! DataNodes' data dirs. With replication R on one machine every byte hits the disk R times,
//! so the write ceiling is raw/R.

use anyhow::{bail, Context};
use sheaf_dfs::client::DfsClient;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Arguments of `sheaf bench dfsio`.
#[derive(clap::Args)]
pub struct DfsioArgs {
    /// Number of files.
    #[arg(long, default_value_t = 4)]
    files: usize,
    /// Size of each file: bytes or with a K/M/G suffix (binary).
    #[arg(long, default_value = "256M")]
    size: String,
    /// Files written or read at the same time (default: all files, at most 4).
    #[arg(long)]
    parallel: Option<usize>,
    /// DFS directory for the benchmark files (deleted afterwards).
    #[arg(long, default_value = "/benchmarks/dfsio")]
    dir: String,
    /// Local directory for the raw-disk ceiling (default: next to the DataNodes' data dirs).
    #[arg(long)]
    raw_dir: Option<PathBuf>,
}

/// Parses `1048576`, `64K`, `256M`, `1G`.
pub fn parse_size(s: &str) -> anyhow::Result<u64> {
    let s = s.trim();
    let (num, mult) = match s.chars().last().map(|c| c.to_ascii_uppercase()) {
        Some('K') => (&s[..s.len() - 1], 1u64 << 10),
        Some('M') => (&s[..s.len() - 1], 1 << 20),
        Some('G') => (&s[..s.len() - 1], 1 << 30),
        Some('T') => (&s[..s.len() - 1], 1 << 40),
        _ => (s, 1),
    };
    let n: f64 = num
        .trim()
        .parse()
        .with_context(|| format!("invalid size {s:?} (expected e.g. 256M)"))?;
    if n <= 0.0 {
        bail!("size must be positive: {s:?}");
    }
    Ok((n * mult as f64) as u64)
}

const MB: f64 = 1_000_000.0;
const BUF: usize = 4 << 20;

/// Drops the page cache so reads hit the disk; false when not permitted (containers).
fn drop_page_cache() -> bool {
    let _ = std::process::Command::new("sync").status();
    std::fs::write("/proc/sys/vm/drop_caches", "3\n").is_ok()
}

fn pattern() -> Vec<u8> {
    // Incompressible, deterministic bytes (xorshift).
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..BUF)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Runs the benchmark against the cluster of the configuration.
pub fn run(args: DfsioArgs) -> anyhow::Result<()> {
    let size = parse_size(&args.size)?;
    if args.files == 0 {
        bail!("--files must be at least 1");
    }
    let super::config::ClientConfig {
        dfs: config,
        identity,
        ..
    } = super::config::client(None)?;
    let raw_dir = args.raw_dir.clone().unwrap_or_else(|| {
        config
            .datanode
            .data_dir
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("/tmp"))
    });
    let total = size * args.files as u64;
    let parallel = args.parallel.unwrap_or(args.files.min(4)).max(1);
    let replication = config.dfs.replication;
    let rt = super::runtime::runtime(super::runtime::Workload::Command)?;
    let data = std::sync::Arc::new(pattern());
    let (write_s, read_s, cache_dropped) = rt.block_on(async {
        let client = DfsClient::connect(&config, identity).await?;
        let _ = client.delete(&args.dir, true).await;
        client.mkdirs(&args.dir, true).await?;
        let names: Vec<String> = (0..args.files)
            .map(|i| format!("{}/io_data_{i}", args.dir))
            .collect();
        let started = Instant::now();
        use futures::StreamExt;
        let writes = futures::stream::iter(names.iter().cloned().map(|name| {
            let client = client.clone();
            let data = data.clone();
            async move {
                let mut w = client.create(&name, true, None, None).await?;
                let mut left = size;
                while left > 0 {
                    let n = left.min(data.len() as u64) as usize;
                    w.write_all(&data[..n]).await?;
                    left -= n as u64;
                }
                w.close().await?;
                Ok::<_, anyhow::Error>(())
            }
        }))
        .buffer_unordered(parallel)
        .collect::<Vec<_>>()
        .await;
        for r in writes {
            r?;
        }
        let write_s = started.elapsed().as_secs_f64();
        let cache_dropped = tokio::task::spawn_blocking(drop_page_cache)
            .await
            .unwrap_or(false);
        let started = Instant::now();
        let reads = futures::stream::iter(names.iter().cloned().map(|name| {
            let client = client.clone();
            async move {
                let mut r = client.open(&name).await?;
                let mut got = 0u64;
                while let Some(chunk) = r.next_chunk().await? {
                    got += chunk.len() as u64;
                }
                if got != size {
                    bail!("{name}: read {got} bytes, wrote {size}");
                }
                Ok::<_, anyhow::Error>(())
            }
        }))
        .buffer_unordered(parallel)
        .collect::<Vec<_>>()
        .await;
        for r in reads {
            r?;
        }
        let read_s = started.elapsed().as_secs_f64();
        client.delete(&args.dir, true).await?;
        Ok::<_, anyhow::Error>((write_s, read_s, cache_dropped))
    })?;
    let (raw_write_s, raw_read_s) = raw_disk(&raw_dir, total, &data)?;
    let mbs = |secs: f64| total as f64 / MB / secs.max(1e-9);
    let (w, r, rw, rr) = (mbs(write_s), mbs(read_s), mbs(raw_write_s), mbs(raw_read_s));
    let w_ceiling = rw / replication.max(1) as f64;
    println!(
        "dfsio: {} files x {} bytes = {:.0} MB ({parallel} at a time), replication {}, block size {}, transport {}",
        args.files,
        size,
        total as f64 / MB,
        replication,
        config.dfs.block_size,
        config.dfs.data_transport
    );
    println!(
        "page cache dropped before reads: {}",
        if cache_dropped {
            "yes"
        } else {
            "no (not permitted: reads may be served from memory)"
        }
    );
    println!(
        "raw disk ({}): write {rw:.1} MB/s (fsync at end), read {rr:.1} MB/s",
        raw_dir.display()
    );
    println!(
        "write: {w:.1} MB/s   ceiling raw/{replication} = {w_ceiling:.1} MB/s   ratio {:.2}",
        w / w_ceiling
    );
    println!(
        "read:  {r:.1} MB/s   ceiling raw = {rr:.1} MB/s   ratio {:.2}",
        r / rr
    );
    Ok(())
}

/// Sequential write (fsync at the end) then read of `total` bytes through one plain file.
fn raw_disk(dir: &Path, total: u64, data: &[u8]) -> anyhow::Result<(f64, f64)> {
    std::fs::create_dir_all(dir).with_context(|| format!("{}", dir.display()))?;
    let path = dir.join(format!("sheaf-dfsio-raw-{}", std::process::id()));
    let result = (|| -> anyhow::Result<(f64, f64)> {
        let started = Instant::now();
        let mut f = std::fs::File::create(&path).with_context(|| format!("{}", path.display()))?;
        let mut left = total;
        while left > 0 {
            let n = left.min(data.len() as u64) as usize;
            f.write_all(&data[..n])?;
            left -= n as u64;
        }
        f.sync_all()?;
        drop(f);
        let write_s = started.elapsed().as_secs_f64();
        drop_page_cache();
        let started = Instant::now();
        let mut f = std::fs::File::open(&path)?;
        let mut buf = vec![0u8; BUF];
        let mut got = 0u64;
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            got += n as u64;
        }
        if got != total {
            bail!("raw read {got} bytes of {total}");
        }
        Ok((write_s, started.elapsed().as_secs_f64()))
    })();
    let _ = std::fs::remove_file(&path);
    result
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_parse_with_binary_suffixes() {
        assert_eq!(super::parse_size("1048576").unwrap(), 1 << 20);
        assert_eq!(super::parse_size("64K").unwrap(), 64 << 10);
        assert_eq!(super::parse_size("256m").unwrap(), 256 << 20);
        assert_eq!(super::parse_size("1G").unwrap(), 1 << 30);
        assert!(super::parse_size("x").is_err());
    }
}
