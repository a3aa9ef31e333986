//! `sheaf job run --local` / `sheaf job streaming --local` with inputs and outputs on a real
//! mini DFS (`sheaf://` paths), checked against the same job run on local paths. Addresses: the
//! mini DFS's 127.47.C.* (octet 47 is this test binary's).

mod common;

use common::plugin;

use common::mini_dfs::{one_line_error, MiniDfs, MiniDfsOptions};
use std::path::{Path, PathBuf};

const OCTET: u8 = 47;

/// Text spanning several 1 MiB DFS blocks, with CRLF, tabs and non-UTF-8 bytes.
fn corpus(bytes: usize) -> Vec<u8> {
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut out = Vec::with_capacity(bytes + 64);
    while out.len() < bytes {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let id = (x % 2000) * (x % 2000) / 2000;
        out.extend_from_slice(format!("w{id}").as_bytes());
        out.extend_from_slice(match x % 11 {
            0 => b"\n",
            1 => b"\r\n",
            2 => b"\t",
            3 => b" \xff\xfe ",
            _ => b" ",
        });
    }
    out
}

fn start_dfs() -> MiniDfs {
    let mut opts = MiniDfsOptions::new(1, OCTET);
    opts.replication = 1;
    MiniDfs::start(opts)
}

/// The concatenated `part-*` files of a local output directory; asserts `_SUCCESS`.
fn local_output(dir: &Path) -> Vec<u8> {
    assert!(
        dir.join("_SUCCESS").exists(),
        "no _SUCCESS in {}",
        dir.display()
    );
    assert!(!dir.join("_temporary").exists());
    let mut parts: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("list output")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("part-"))
        })
        .collect();
    parts.sort();
    assert!(!parts.is_empty());
    parts
        .iter()
        .flat_map(|p| std::fs::read(p).expect("read part"))
        .collect()
}

/// The concatenated `part-*` files of a DFS output directory read back with `sheaf dfs cat`;
/// asserts `_SUCCESS` and no `_temporary`.
fn dfs_output(dfs: &MiniDfs, dir: &str) -> Vec<u8> {
    let listing = dfs.ok(&["dfs", "ls", dir]);
    assert!(listing.contains(&format!("{dir}/_SUCCESS")), "{listing}");
    assert!(!listing.contains("_temporary"), "{listing}");
    let mut parts: Vec<String> = listing
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .filter(|p| p.rsplit('/').next().is_some_and(|n| n.starts_with("part-")))
        .map(str::to_string)
        .collect();
    parts.sort();
    assert!(!parts.is_empty(), "{listing}");
    let mut args = vec!["dfs", "cat"];
    args.extend(parts.iter().map(String::as_str));
    let out = dfs.sheaf(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn wordcount(dfs: &MiniDfs, input: &str, output: &str) -> std::process::Output {
    let plugin = plugin("wordcount");
    dfs.sheaf(&[
        "job",
        "run",
        "--local",
        "--plugin",
        plugin.to_str().expect("utf-8 path"),
        "--input",
        input,
        "--output",
        output,
        "--reducers",
        "2",
        "--split-size",
        "700k",
    ])
}

fn ok(out: std::process::Output) {
    assert!(
        out.status.success(),
        "job failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn wordcount_from_dfs_to_dfs_and_mixed_equals_the_local_run() {
    let dfs = start_dfs();
    let work = tempfile::tempdir().expect("tempdir");
    let text = corpus(3 << 20);
    let input = work.path().join("text");
    std::fs::write(&input, &text).expect("write input");
    dfs.ok(&["dfs", "mkdir", "-p", "/data/in"]);
    dfs.ok(&[
        "dfs",
        "put",
        input.to_str().expect("utf-8"),
        "/data/in/text",
    ]);

    let local_out = work.path().join("local-out");
    ok(wordcount(
        &dfs,
        input.to_str().expect("utf-8"),
        local_out.to_str().expect("utf-8"),
    ));
    let expected = local_output(&local_out);

    // DFS in, DFS out (the configured cluster).
    ok(wordcount(&dfs, "sheaf:///data/in", "sheaf:///data/out"));
    assert_eq!(dfs_output(&dfs, "/data/out"), expected);

    // Local in, DFS out naming the NameNode explicitly.
    let named = format!("sheaf://{}/data/out2", dfs.namenode_addr);
    ok(wordcount(&dfs, input.to_str().expect("utf-8"), &named));
    assert_eq!(dfs_output(&dfs, "/data/out2"), expected);

    // DFS in, local out: intermediate data stays local, only the input comes from the DFS.
    let mixed_out = work.path().join("mixed-out");
    ok(wordcount(
        &dfs,
        "sheaf:///data/in/text",
        mixed_out.to_str().expect("utf-8"),
    ));
    assert_eq!(local_output(&mixed_out), expected);
}

#[test]
fn existing_dfs_output_dir_is_refused_and_left_untouched() {
    let dfs = start_dfs();
    let work = tempfile::tempdir().expect("tempdir");
    let input = work.path().join("text");
    std::fs::write(&input, b"a b a\n").expect("write input");
    dfs.ok(&["dfs", "mkdir", "-p", "/jobs/out"]);
    dfs.ok(&[
        "dfs",
        "put",
        input.to_str().expect("utf-8"),
        "/jobs/out/keep",
    ]);

    let e = one_line_error(&wordcount(
        &dfs,
        input.to_str().expect("utf-8"),
        "sheaf:///jobs/out",
    ));
    assert!(e.starts_with("sheaf job: "), "{e}");
    assert!(e.contains("sheaf:///jobs/out already exists"), "{e}");
    let listing = dfs.ok(&["dfs", "ls", "/jobs/out"]);
    assert!(listing.contains("/jobs/out/keep"), "{listing}");
    assert!(
        !listing.contains("_SUCCESS") && !listing.contains("_temporary"),
        "{listing}"
    );

    // A missing DFS input is one clear line too, and leaves no output behind.
    let e = one_line_error(&wordcount(&dfs, "sheaf:///nope", "sheaf:///jobs/out3"));
    assert!(
        e.contains("Input path does not exist: sheaf:///nope"),
        "{e}"
    );
    let out = dfs.sheaf(&["dfs", "test", "-e", "/jobs/out3"]);
    assert!(!out.status.success(), "output dir of a failed job exists");
}

#[test]
fn streaming_reads_and_writes_the_dfs() {
    let dfs = start_dfs();
    let work = tempfile::tempdir().expect("tempdir");
    let input = work.path().join("text");
    std::fs::write(&input, b"b\tx\na\ty\nb\tz\n").expect("write input");
    dfs.ok(&["dfs", "put", input.to_str().expect("utf-8"), "/s.txt"]);
    let out = dfs.sheaf(&[
        "job",
        "streaming",
        "--local",
        "--mapper",
        "cat",
        "--reducer",
        "cut -f1 | uniq -c | awk '{print $2\"\\t\"$1}'",
        "--input",
        "sheaf:///s.txt",
        "--output",
        "sheaf:///s-out",
    ]);
    ok(out);
    assert_eq!(dfs_output(&dfs, "/s-out"), b"a\t1\nb\t2\n");
}
