//! MapReduce jobs on a real multi-process cluster (NameNode, 3 DataNodes, ResourceManager,
//! 3 NodeManagers with their shuffle services; see `common::mini_cluster`), submitted with
//! `sheaf job submit --wait` and checked against an independent reference. Addresses: the mini
//! cluster's 127.61.C.* (octet 61 is this test binary's).

mod common;

use common::plugin;

use common::mini_cluster::{MiniCluster, MiniClusterOptions};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const OCTET: u8 = 61;
/// Longest a whole job may take here before the test fails (the machine is small and shared).
const JOB_DEADLINE: Duration = Duration::from_secs(180);

/// Zipf-like text with CRLF, tabs, form feeds and non-UTF-8 bytes, `seed` making files differ.
fn corpus(bytes: usize, seed: u64) -> Vec<u8> {
    let mut x: u64 = 0x2545_F491_4F6C_DD1D ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut out = Vec::with_capacity(bytes + 64);
    while out.len() < bytes {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let id = (x % 5000) * (x % 5000) / 5000;
        out.extend_from_slice(format!("w{id}").as_bytes());
        if x.is_multiple_of(97) {
            out.extend_from_slice(b"\xc3\xa9t\xe9");
        }
        out.extend_from_slice(match x % 13 {
            0 => b"\n",
            1 => b"\r\n",
            2 => b"\t",
            3 => b" \xff\xfe ",
            4 => b"\x0c",
            _ => b" ",
        });
    }
    out
}

/// The reference word count, independent of the engine: words are maximal runs of bytes that
/// are not ASCII whitespace.
fn reference_counts(texts: &[&[u8]]) -> BTreeMap<Vec<u8>, u64> {
    let mut counts = BTreeMap::new();
    for text in texts {
        for word in text
            .split(|b| b.is_ascii_whitespace())
            .filter(|w| !w.is_empty())
        {
            *counts.entry(word.to_vec()).or_insert(0) += 1;
        }
    }
    counts
}

/// Runs `command`, killing it if it has not finished within `deadline`.
fn output_within(mut command: Command, deadline: Duration) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sheaf");
    // Drain the pipes on threads so a chatty child never blocks on a full pipe.
    let mut stdout = child.stdout.take().expect("stdout pipe");
    let mut stderr = child.stderr.take().expect("stderr pipe");
    let out_thread = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stdout, &mut buf);
        buf
    });
    let err_thread = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stderr, &mut buf);
        buf
    });
    let started = Instant::now();
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status;
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = err_thread.join().unwrap_or_default();
            panic!(
                "command did not finish within {deadline:?}; stderr so far:\n{}",
                String::from_utf8_lossy(&stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: out_thread.join().unwrap_or_default(),
        stderr: err_thread.join().unwrap_or_default(),
    }
}

/// `sheaf job submit --wait` of plugin `name` on the cluster.
fn submit_and_wait(
    cluster: &MiniCluster,
    name: &str,
    inputs: &[&str],
    output: &str,
    reducers: u32,
) -> Output {
    let plugin = plugin(name);
    let mut command = common::mini_dfs::sheaf_command();
    command
        .arg("--conf")
        .arg(&cluster.dfs.conf)
        .args(["job", "submit", "--plugin"])
        .arg(&plugin)
        .arg("--input")
        .args(inputs)
        .args(["--output", output, "--reducers", &reducers.to_string()])
        .arg("--wait");
    output_within(command, JOB_DEADLINE)
}

/// The `part-*` files of DFS directory `dir` (sorted), asserting `_SUCCESS` and no `_temporary`.
fn committed_parts(cluster: &MiniCluster, dir: &str) -> Vec<String> {
    let listing = cluster.ok(&["dfs", "ls", dir]);
    assert!(
        listing.contains(&format!("{dir}/_SUCCESS")),
        "no _SUCCESS in {dir}: {listing}"
    );
    assert!(!listing.contains("_temporary"), "{listing}");
    let mut parts: Vec<String> = listing
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .filter(|p| p.rsplit('/').next().is_some_and(|n| n.starts_with("part-")))
        .map(str::to_string)
        .collect();
    parts.sort();
    parts
}

/// Parses `word\tcount` lines, asserting each part is sorted by word and no word repeats.
fn parse_counts(parts: &[(String, Vec<u8>)]) -> BTreeMap<Vec<u8>, u64> {
    let mut counts = BTreeMap::new();
    for (name, bytes) in parts {
        let mut previous: Option<&[u8]> = None;
        for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let tab = line
                .iter()
                .rposition(|b| *b == b'\t')
                .unwrap_or_else(|| panic!("{name}: no tab in {:?}", String::from_utf8_lossy(line)));
            let (word, count) = (&line[..tab], &line[tab + 1..]);
            let count: u64 = std::str::from_utf8(count)
                .ok()
                .and_then(|c| c.parse().ok())
                .unwrap_or_else(|| {
                    panic!("{name}: bad count in {:?}", String::from_utf8_lossy(line))
                });
            if let Some(p) = previous {
                assert!(
                    p < word,
                    "{name} is not sorted by word at {:?}",
                    String::from_utf8_lossy(word)
                );
            }
            previous = Some(word);
            assert!(
                counts.insert(word.to_vec(), count).is_none(),
                "{:?} appears in two reduce outputs",
                String::from_utf8_lossy(word)
            );
        }
    }
    counts
}

/// Job directories left under the NodeManagers' shuffle roots (the services' `.lock` aside).
fn shuffle_leftovers(cluster: &MiniCluster) -> Vec<PathBuf> {
    (0..cluster.nodes())
        .flat_map(|i| {
            std::fs::read_dir(cluster.shuffle_dir(i))
                .map(|d| d.flatten().map(|e| e.path()).collect::<Vec<_>>())
                .unwrap_or_default()
        })
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| !n.to_string_lossy().starts_with('.'))
        })
        .collect()
}

#[test]
fn wordcount_on_the_cluster_equals_an_independent_reference() {
    let cluster = MiniCluster::start(MiniClusterOptions::new(3, OCTET));
    let work = tempfile::tempdir().expect("tempdir");
    // Several 1 MiB DFS blocks in two files: maps on every node, a real shuffle.
    let texts = [corpus(3 << 20, 1), corpus((3 << 20) / 2, 2)];
    for (i, text) in texts.iter().enumerate() {
        let local = work.path().join(format!("text{i}"));
        std::fs::write(&local, text).expect("write input");
        cluster.put(&local, &format!("/in/text{i}"));
    }
    let started = Instant::now();
    let out = submit_and_wait(&cluster, "wordcount", &["/in"], "/out", 2);
    let elapsed = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "job failed ({:?}):\n{stderr}\n{}",
        out.status.code(),
        cluster.log_tails()
    );
    assert!(stderr.contains("Submitted job job_"), "{stderr}");
    eprintln!(
        "wordcount of {} bytes took {elapsed:?}\n{stderr}{}",
        texts.iter().map(Vec::len).sum::<usize>(),
        String::from_utf8_lossy(&out.stdout)
    );

    let parts = committed_parts(&cluster, "/out");
    let names: Vec<&str> = parts.iter().filter_map(|p| p.rsplit('/').next()).collect();
    assert_eq!(names, ["part-r-00000", "part-r-00001"], "{parts:?}");
    let contents: Vec<(String, Vec<u8>)> =
        parts.iter().map(|p| (p.clone(), cluster.cat(p))).collect();
    assert!(
        contents.iter().all(|(_, c)| !c.is_empty()),
        "both reducers got words"
    );
    let counts = parse_counts(&contents);
    let reference = reference_counts(&[&texts[0], &texts[1]]);
    assert_eq!(counts.len(), reference.len(), "distinct words");
    let differing: Vec<String> = reference
        .iter()
        .filter(|(w, c)| counts.get(*w) != Some(c))
        .take(5)
        .map(|(w, c)| {
            format!(
                "{:?}: reference {c}, cluster {:?}",
                String::from_utf8_lossy(w),
                counts.get(w)
            )
        })
        .collect();
    assert!(differing.is_empty(), "counts differ: {differing:?}");

    // The local runner over the same DFS input, with the same reducers and partitioner, writes
    // byte-identical part files: the cluster changes where tasks run, not what they compute.
    let local = cluster.sheaf(&[
        "job",
        "run",
        "--local",
        "--plugin",
        plugin("wordcount").to_str().expect("utf-8 path"),
        "--input",
        "sheaf:///in",
        "--output",
        "sheaf:///out-local",
        "--reducers",
        "2",
    ]);
    assert!(
        local.status.success(),
        "local run failed: {}",
        String::from_utf8_lossy(&local.stderr)
    );
    let local_parts = committed_parts(&cluster, "/out-local");
    assert_eq!(local_parts.len(), parts.len(), "{local_parts:?}");
    for ((cluster_part, cluster_bytes), local_part) in contents.iter().zip(&local_parts) {
        assert!(
            cluster.cat(local_part) == *cluster_bytes,
            "{cluster_part} (cluster) differs from {local_part} (local runner)"
        );
    }

    // Every map ran and its output went through the shuffle to both reducers.
    let counters = counters(&format!(
        "{stderr}\n{}",
        String::from_utf8_lossy(&out.stdout)
    ));
    let maps = counters.get("TOTAL_LAUNCHED_MAPS").copied().unwrap_or(0);
    assert!(maps >= 5, "one map per 1 MiB block at least: {counters:?}");
    assert_eq!(
        counters.get("TOTAL_LAUNCHED_REDUCES"),
        Some(&2),
        "{counters:?}"
    );
    assert_eq!(
        counters.get("SHUFFLED_MAPS"),
        Some(&(maps * 2)),
        "{counters:?}"
    );
    assert_eq!(
        counters.get("REDUCE_OUTPUT_RECORDS"),
        Some(&(reference.len() as u64)),
        "{counters:?}"
    );

    // The job's end removes its map outputs from every node's shuffle service: the services
    // together deleted one file per map.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (left, removed) = (shuffle_leftovers(&cluster), removed_map_outputs(&cluster));
        if left.is_empty() && removed == maps {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the shuffle services did not delete the finished job's {maps} map outputs \
             ({removed} deleted; left: {left:?})\n{}",
            cluster.log_tails()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn terasort_on_the_cluster_passes_teravalidate() {
    let cluster = MiniCluster::start(MiniClusterOptions::new(3, OCTET));
    let work = tempfile::tempdir().expect("tempdir");
    // 60,000 records = 6 MB: six 1 MiB blocks, so several maps sample and sort, 3 reducers.
    let input = work.path().join("records");
    let gen = cluster.sheaf(&[
        "bench",
        "teragen",
        "--records",
        "60000",
        "--output",
        input.to_str().expect("utf-8 path"),
    ]);
    assert!(
        gen.status.success(),
        "{}",
        String::from_utf8_lossy(&gen.stderr)
    );
    cluster.put(&input, "/tera/in/records");
    let out = submit_and_wait(&cluster, "terasort", &["/tera/in"], "/tera/out", 3);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "terasort failed ({:?}):\n{stderr}\n{}",
        out.status.code(),
        cluster.log_tails()
    );
    let parts = committed_parts(&cluster, "/tera/out");
    assert_eq!(parts.len(), 3, "{parts:?}");
    // Every reducer got a share of the key range (the JobTracker sampled the input for the
    // total-order partition boundaries once, for all maps).
    let local_out = work.path().join("out");
    std::fs::create_dir_all(&local_out).expect("mkdir");
    for part in &parts {
        let bytes = cluster.cat(part);
        assert!(
            !bytes.is_empty(),
            "{part} is empty: the boundaries were not sampled"
        );
        let name = part.rsplit('/').next().expect("file name");
        std::fs::write(local_out.join(name), bytes).expect("write part");
    }
    let validate = cluster.sheaf(&[
        "bench",
        "teravalidate",
        "--input",
        input.to_str().expect("utf-8 path"),
        "--output",
        local_out.to_str().expect("utf-8 path"),
    ]);
    assert!(
        validate.status.success(),
        "teravalidate: {}{}",
        String::from_utf8_lossy(&validate.stdout),
        String::from_utf8_lossy(&validate.stderr)
    );
    assert!(
        String::from_utf8_lossy(&validate.stdout).contains("60000 records"),
        "{}",
        String::from_utf8_lossy(&validate.stdout)
    );
}

/// `NAME=VALUE` counter lines of `sheaf job submit --wait` (stdout or stderr).
fn counters(stdout: &str) -> BTreeMap<String, u64> {
    stdout
        .lines()
        .filter_map(|l| l.trim().split_once('='))
        .filter_map(|(k, v)| Some((k.to_string(), v.trim().parse().ok()?)))
        .collect()
}

/// Map-output files the NodeManagers' shuffle services deleted for finished jobs, per their logs.
fn removed_map_outputs(cluster: &MiniCluster) -> u64 {
    (0..cluster.nodes())
        .map(|i| {
            cluster
                .daemon_log(&format!("nodemanager{}", i + 1))
                .lines()
                .filter(|l| l.contains("shuffle outputs of finished job removed"))
                .filter_map(|l| l.split("files=").nth(1))
                .filter_map(|f| f.split_whitespace().next()?.parse::<u64>().ok())
                .sum::<u64>()
        })
        .sum()
}

// ---------------------------------------------------------------------------------------------
// The job client's verbs (`sheaf job submit|status|counters|kill|list|history`) and the nightly
// example script.

/// A `sheaf` command against `cluster` with stdout/stderr captured, bounded by [`JOB_DEADLINE`].
fn cli(cluster: &MiniCluster, args: &[&str]) -> Output {
    let mut command = common::mini_dfs::sheaf_command();
    command.arg("--conf").arg(&cluster.dfs.conf).args(args);
    output_within(command, JOB_DEADLINE)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The one stderr line of a failed command, asserting exit status 1.
fn one_error_line(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(1), "stderr: {}", text(&out.stderr));
    let err = text(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    err.trim_end().to_string()
}

/// The job id in `Submitted job job_… (application …)`.
fn submitted_job_id(stderr: &str) -> String {
    stderr
        .lines()
        .find_map(|l| l.strip_prefix("Submitted job "))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no job id in: {stderr}"))
        .to_string()
}

#[test]
fn job_client_checks_submissions_and_reports_jobs_like_mapred() {
    let cluster = MiniCluster::start(MiniClusterOptions::new(3, OCTET));
    let work = tempfile::tempdir().expect("tempdir");
    let local = work.path().join("lines");
    let lines = 2000;
    let body: String = (0..lines).map(|i| format!("a{} b c\n", i % 7)).collect();
    std::fs::write(&local, &body).expect("write input");
    cluster.put(&local, "/cli/in/lines");
    let wordcount = plugin("wordcount");
    let wordcount = wordcount.to_str().expect("utf-8 plugin path");

    // Checks before anything is staged: one line, exit 1, Hadoop's words.
    let e = one_error_line(&cli(
        &cluster,
        &[
            "job",
            "submit",
            "--plugin",
            wordcount,
            "--input",
            "/cli/nope",
            "--output",
            "/cli/o",
        ],
    ));
    assert_eq!(e, "sheaf job submit: Input path does not exist: /cli/nope");
    let e = one_error_line(&cli(
        &cluster,
        &[
            "job",
            "submit",
            "--plugin",
            wordcount,
            "--input",
            "/cli/in",
            "--output",
            "sheaf:///cli/in",
        ],
    ));
    assert!(
        e.starts_with("sheaf job submit: Output directory /cli/in already exists"),
        "{e}"
    );
    let not_a_plugin = local.to_str().expect("utf-8");
    let e = one_error_line(&cli(
        &cluster,
        &[
            "job",
            "submit",
            "--plugin",
            not_a_plugin,
            "--input",
            "/cli/in",
            "--output",
            "/cli/o",
        ],
    ));
    assert!(e.contains("not a loadable library"), "{e}");
    let e = one_error_line(&cli(&cluster, &["job", "status", "job_1_9999"]));
    assert_eq!(e, "sheaf job status: Could not find job job_1_9999");
    let staged = cli(&cluster, &["dfs", "ls", "-R", "/sheaf/staging"]);
    assert!(
        !text(&staged.stdout).contains("job.msgpack"),
        "refused jobs staged nothing: {}",
        text(&staged.stdout)
    );

    // A relative output lands under /user/$USER; --wait prints progress and counters.
    let out = cli(
        &cluster,
        &[
            "job",
            "submit",
            "--plugin",
            wordcount,
            "--input",
            "sheaf:///cli/in",
            "--output",
            "wc",
            "--wait",
        ],
    );
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}\n{}", cluster.log_tails());
    let job = submitted_job_id(&stderr);
    assert!(stderr.contains("map 100% reduce 100%"), "{stderr}");
    assert!(
        stderr.contains(&format!("Job {job} completed successfully")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("\t\tMAP_INPUT_RECORDS={lines}\n")),
        "{stderr}"
    );
    let user = std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "root".into());
    cluster.ok(&["dfs", "test", "-e", &format!("/user/{user}/wc/_SUCCESS")]);

    let status = cluster.ok(&["job", "status", &job]);
    assert!(
        status.contains("Job state:           SUCCEEDED"),
        "{status}"
    );
    assert!(status.contains("Number of reduces:   1"), "{status}");
    let value = cluster.ok(&[
        "job",
        "counters",
        &job,
        "Map-Reduce Framework",
        "MAP_INPUT_RECORDS",
    ]);
    assert_eq!(value.trim(), lines.to_string());
    let all = cluster.ok(&["job", "counters", &job]);
    assert!(
        all.contains("\tJob Counters\n") && all.contains("TOTAL_LAUNCHED_MAPS=1"),
        "{all}"
    );
    let list = cluster.ok(&["job", "list", "--all"]);
    let row = list
        .lines()
        .find(|l| l.starts_with(&job))
        .unwrap_or_else(|| panic!("{job} not in: {list}"));
    assert!(
        row.contains("SUCCEEDED") && row.contains("wordcount"),
        "{row}"
    );
    assert!(
        list.lines().nth(1).is_some_and(|h| h.starts_with("JobId")),
        "{list}"
    );
    let running = cluster.ok(&["job", "list"]);
    assert!(
        !running.contains(&job),
        "finished jobs only with --all: {running}"
    );
    let history = cluster.ok(&["job", "history", &job]);
    assert!(
        history.contains("State:              SUCCEEDED"),
        "{history}"
    );
    assert!(
        history.contains(&format!("mapreduce.job.user.name={user}")),
        "{history}"
    );
    let suffix = job.trim_start_matches("job_");
    let map_row = history
        .lines()
        .find(|l| l.starts_with(&format!("attempt_{suffix}_m_000000_0")))
        .unwrap_or_else(|| panic!("no map attempt in: {history}"));
    assert!(
        map_row.contains("SUCCEEDED") && map_row.contains("127.61."),
        "{map_row}"
    );
    let e = one_error_line(&cli(&cluster, &["job", "kill", &job]));
    assert!(e.ends_with("is already SUCCEEDED"), "{e}");

    // A job that fails: --wait exits 1 with the task's message on one last line.
    let out = cli(
        &cluster,
        &[
            "job",
            "streaming",
            "--input",
            "/cli/in",
            "--output",
            "/cli/failed",
            "--mapper",
            "echo broken on purpose >&2; exit 3",
            "--reducer",
            "cat",
            "-D",
            "mapreduce.map.maxattempts=1",
            "--wait",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let last = text(&out.stderr)
        .trim_end()
        .lines()
        .last()
        .unwrap_or_default()
        .to_string();
    assert!(
        last.starts_with("sheaf job streaming: job job_")
            && last.contains("FAILED")
            && last.contains("broken on purpose"),
        "{last}"
    );
    let failed = cli(&cluster, &["dfs", "test", "-e", "/cli/failed/_SUCCESS"]);
    assert!(!failed.status.success(), "a failed job has no _SUCCESS");

    // Streaming scripts from the submitter's disk: refused unless shipped with --file, which
    // puts them, executable, into every task container's working dir (Hadoop's -file).
    let script = work.path().join("upper.sh");
    std::fs::write(&script, "#!/bin/sh\ntr a-z A-Z\n").expect("write script");
    let script_arg = script.to_str().expect("utf-8 path");
    let streaming_with = |file: Option<&str>, output: &str| {
        let mut args = vec![
            "job",
            "streaming",
            "--input",
            "/cli/in",
            "--output",
            output,
            "--mapper",
            "./upper.sh",
            "--reducer",
            "cat",
            "--wait",
        ];
        if let Some(f) = file {
            args.extend(["--file", f]);
        }
        cli(&cluster, &args)
    };
    let e = one_error_line(&streaming_with(None, "/cli/unshipped"));
    assert!(
        e.starts_with("sheaf job streaming: ") && e.contains("./upper.sh") && e.contains("--file"),
        "{e}"
    );
    let out = streaming_with(Some(script_arg), "/cli/shipped");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let upper = cluster.ok(&["dfs", "cat", "/cli/shipped/part-r-00000"]);
    assert_eq!(upper.lines().count(), lines, "{upper}");
    assert!(
        upper
            .lines()
            .all(|l| l.starts_with('A') && l.trim_end().ends_with("B C")),
        "{upper}"
    );

    // Kill a running job: the JobTracker ends it, status and history say KILLED.
    let out = cli(
        &cluster,
        &[
            "job",
            "streaming",
            "--input",
            "/cli/in",
            "--output",
            "/cli/slow",
            "--mapper",
            "sleep 60; cat",
            "--reducer",
            "cat",
            "--quiet",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let slow = text(&out.stdout).trim().to_string();
    assert!(
        slow.starts_with("job_"),
        "--quiet prints the job id: {slow:?}"
    );
    cluster.wait_for("the slow job to run", Duration::from_secs(60), || {
        text(&cli(&cluster, &["job", "status", &slow]).stdout).contains("RUNNING")
    });
    let listed = cluster.ok(&["job", "list"]);
    assert!(listed.contains(&slow), "{listed}");
    let started = Instant::now();
    let killed = cluster.ok(&["job", "kill", &slow]);
    assert_eq!(killed.trim(), format!("Killed job {slow}"));
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "kill took {:?}",
        started.elapsed()
    );
    let status = cluster.ok(&["job", "status", &slow]);
    assert!(status.contains("Job state:           KILLED"), "{status}");
    let gone = cli(&cluster, &["dfs", "test", "-e", "/cli/slow/_SUCCESS"]);
    assert!(!gone.status.success(), "a killed job has no _SUCCESS");
}

#[test]
fn nightly_example_script_runs_retries_and_reruns() {
    let cluster = MiniCluster::start(MiniClusterOptions::new(3, OCTET));
    let work = tempfile::tempdir().expect("tempdir");
    let corpus_file = work.path().join("day.txt");
    let day = corpus(1 << 20, 7);
    std::fs::write(&corpus_file, &day).expect("write corpus");
    let logs = work.path().join("logs");
    let flag = work.path().join("first-topn-map-fails");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/nightly-example.sh");
    let conf = std::path::absolute(&cluster.dfs.conf).expect("absolute conf");
    let top = 5;
    let nightly = |extra_env: &[(&str, String)], args: &[&str]| {
        let mut command = Command::new("bash");
        for (k, _) in std::env::vars() {
            if k.starts_with("SHEAF_") {
                command.env_remove(k);
            }
        }
        command
            .arg(&script)
            .args(args)
            .env("SHEAF_CONF", &conf)
            .env("SHEAF_BIN", env!("CARGO_BIN_EXE_sheaf"))
            .env("WORDCOUNT_PLUGIN", plugin("wordcount"))
            .env("LOG_DIR", &logs)
            .env("NIGHTLY_DATE", "2026-11-20")
            .env("TOP_N", top.to_string())
            .env_remove("RUST_LOG");
        for (k, v) in extra_env {
            command.env(k, v);
        }
        output_within(command, JOB_DEADLINE * 2)
    };
    // The top-N job's first map attempt fails (once, thanks to the flag directory), and with
    // one attempt per task that fails the job: the script must delete its output and retry.
    let flaky = format!(
        "if mkdir {} 2>/dev/null; then echo flaky mapper >&2; exit 3; fi; cat",
        flag.display()
    );
    let out = nightly(
        &[
            ("TOPN_MAPPER", flaky),
            (
                "SHEAF_JOB_OPTS",
                "-D mapreduce.map.maxattempts=1".to_string(),
            ),
        ],
        &["--load", corpus_file.to_str().expect("utf-8")],
    );
    let log_file = logs.join("nightly-2026-11-20.log");
    let log = std::fs::read_to_string(&log_file).unwrap_or_default();
    assert!(
        out.status.success(),
        "nightly failed ({:?}): {}\n{}\nlog:\n{log}\n{}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr),
        cluster.log_tails()
    );
    assert!(
        log.contains("top5: attempt 1 failed with exit status 1"),
        "{log}"
    );
    assert!(
        log.contains("top5: removing partial output /nightly/2026-11-20/top5"),
        "{log}"
    );
    assert!(log.contains("top5: succeeded (attempt 2)"), "{log}");
    assert!(log.contains("wordcount: succeeded (attempt 1)"), "{log}");
    assert!(
        log.contains("flaky mapper"),
        "the failed job's message is logged: {log}"
    );
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("result: sheaf:///nightly/2026-11-20/top5/part-r-00000"),
        "{stdout}"
    );
    committed_parts(&cluster, "/nightly/2026-11-20/wordcount");
    let parts = committed_parts(&cluster, "/nightly/2026-11-20/top5");
    assert_eq!(parts.len(), 1, "{parts:?}");

    // The result is the reference's top N: the same counts in order, each word's true count.
    let reference = reference_counts(&[&day]);
    let mut expected: Vec<u64> = reference.values().copied().collect();
    expected.sort_unstable_by(|a, b| b.cmp(a));
    expected.truncate(top);
    let result = cluster.cat("/nightly/2026-11-20/top5/part-r-00000");
    let rows: Vec<(Vec<u8>, u64)> = result
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            let tab = l.iter().rposition(|b| *b == b'\t').expect("tab");
            let count = std::str::from_utf8(&l[tab + 1..])
                .expect("count")
                .parse()
                .expect("number");
            (l[..tab].to_vec(), count)
        })
        .collect();
    assert_eq!(
        rows.iter().map(|r| r.1).collect::<Vec<_>>(),
        expected,
        "{}",
        text(&result)
    );
    for (word, count) in &rows {
        assert_eq!(
            reference.get(word),
            Some(count),
            "{}",
            String::from_utf8_lossy(word)
        );
    }

    // Run again: both steps are complete and skipped, the result is unchanged.
    let again = nightly(&[], &[]);
    assert!(again.status.success(), "{}", text(&again.stderr));
    let log = std::fs::read_to_string(&log_file).unwrap_or_default();
    assert!(
        log.contains("wordcount: /nightly/2026-11-20/wordcount already complete, skipping"),
        "{log}"
    );
    assert!(
        log.contains("top5: /nightly/2026-11-20/top5 already complete, skipping"),
        "{log}"
    );
    assert_eq!(cluster.cat("/nightly/2026-11-20/top5/part-r-00000"), result);

    // A day without input fails with exit 1 and says why.
    let missing = nightly(&[("NIGHTLY_DATE", "2026-11-21".to_string())], &[]);
    assert_eq!(missing.status.code(), Some(1), "{}", text(&missing.stderr));
    assert!(
        text(&missing.stderr).contains("input /nightly/2026-11-21/input does not exist"),
        "{}",
        text(&missing.stderr)
    );
}

/// Asserts DFS directory `dir` holds the committed output of a 2-reducer wordcount, equal to
/// `reference`.
fn assert_wordcount_output(cluster: &MiniCluster, dir: &str, reference: &BTreeMap<Vec<u8>, u64>) {
    let parts = committed_parts(cluster, dir);
    let names: Vec<&str> = parts.iter().filter_map(|p| p.rsplit('/').next()).collect();
    assert_eq!(names, ["part-r-00000", "part-r-00001"], "{parts:?}");
    let contents: Vec<(String, Vec<u8>)> =
        parts.iter().map(|p| (p.clone(), cluster.cat(p))).collect();
    let counts = parse_counts(&contents);
    assert_eq!(counts.len(), reference.len(), "distinct words");
    let differing: Vec<String> = reference
        .iter()
        .filter(|(w, c)| counts.get(*w) != Some(c))
        .take(5)
        .map(|(w, c)| {
            format!(
                "{:?}: reference {c}, cluster {:?}",
                String::from_utf8_lossy(w),
                counts.get(w)
            )
        })
        .collect();
    assert!(differing.is_empty(), "counts differ: {differing:?}");
}

/// Whether NodeManager `i` holds a finished map output
/// (`<shuffle>/<job>/<jobtracker attempt>/<attempt>/file.out` with its index, which the map
/// writes last).
fn holds_map_output(cluster: &MiniCluster, i: usize) -> bool {
    let entries = |dir: PathBuf| {
        std::fs::read_dir(dir)
            .map(|d| d.flatten().map(|e| e.path()).collect::<Vec<_>>())
            .unwrap_or_default()
    };
    entries(cluster.shuffle_dir(i))
        .into_iter()
        .flat_map(entries)
        .flat_map(entries)
        .any(|attempt| attempt.join("file.out.index").exists())
}

#[test]
fn a_nodemanager_killed_mid_job_costs_its_maps_not_the_job() {
    let mut cluster = MiniCluster::start(MiniClusterOptions::new(3, OCTET));
    let work = tempfile::tempdir().expect("tempdir");
    // Enough 1 MiB blocks that maps are still running when the first ones finish.
    let texts = [corpus(8 << 20, 3), corpus(6 << 20, 4)];
    for (i, text) in texts.iter().enumerate() {
        let local = work.path().join(format!("text{i}"));
        std::fs::write(&local, text).expect("write input");
        cluster.put(&local, &format!("/lost/in/text{i}"));
    }
    let reference = reference_counts(&[&texts[0], &texts[1]]);
    let stdout = work.path().join("submit.out");
    let stderr = work.path().join("submit.err");
    let mut submit = common::mini_dfs::sheaf_command()
        .arg("--conf")
        .arg(&cluster.dfs.conf)
        .args(["job", "submit", "--plugin"])
        .arg(plugin("wordcount"))
        .args(["--input", "/lost/in", "--output", "/lost/out"])
        .args(["--reducers", "2", "--wait"])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout).expect("stdout file"))
        .stderr(std::fs::File::create(&stderr).expect("stderr file"))
        .spawn()
        .expect("spawn sheaf job submit");
    let started = Instant::now();

    // A node that finished a map but does not run the JobTracker: losing it loses map outputs.
    let victim = loop {
        let jobtracker = cluster.jobtracker_host();
        let candidate = (0..cluster.nodes()).find(|&i| {
            jobtracker.is_some()
                && jobtracker != Some(cluster.nodemanager_host(i).to_string())
                && holds_map_output(&cluster, i)
        });
        if let Some(i) = candidate {
            break i;
        }
        if let Ok(Some(status)) = submit.try_wait() {
            panic!(
                "the job ended ({status}) before a node with map outputs could be killed:\n{}",
                std::fs::read_to_string(&stderr).unwrap_or_default()
            );
        }
        assert!(
            started.elapsed() < JOB_DEADLINE,
            "no map finished on a node without the JobTracker\n{}",
            cluster.log_tails()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    // The host dies: its NodeManager, its shuffle service and its task processes.
    cluster.kill_nodemanager(victim);
    let killed = cluster.kill_containers_of(victim);
    let killed_at = started.elapsed();
    assert!(
        matches!(submit.try_wait(), Ok(None)),
        "the job was still running when its node died"
    );

    let status = loop {
        if let Ok(Some(status)) = submit.try_wait() {
            break status;
        }
        if started.elapsed() > JOB_DEADLINE {
            let _ = submit.kill();
            let _ = submit.wait();
            panic!(
                "the job did not finish within {JOB_DEADLINE:?} after losing node {victim}:\n{}\n{}",
                std::fs::read_to_string(&stderr).unwrap_or_default(),
                cluster.log_tails()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let err = std::fs::read_to_string(&stderr).unwrap_or_default();
    let out = std::fs::read_to_string(&stdout).unwrap_or_default();
    assert!(
        status.success(),
        "the job failed after losing node {victim} ({status}):\n{err}\n{}",
        cluster.log_tails()
    );
    eprintln!(
        "node {victim} ({} task processes) killed at {killed_at:?}, job done at {:?}\n{err}{out}",
        killed,
        started.elapsed()
    );
    assert_wordcount_output(&cluster, "/lost/out", &reference);
    // 14 splits (one per 1 MiB block) and 2 reducers: the tasks the dead node took with it ran
    // again elsewhere.
    let counters = counters(&format!("{err}\n{out}"));
    let launched = |k: &str| counters.get(k).copied().unwrap_or(0);
    assert!(launched("TOTAL_LAUNCHED_MAPS") >= 14, "{counters:?}");
    if killed > 0 {
        assert!(
            launched("TOTAL_LAUNCHED_MAPS") + launched("TOTAL_LAUNCHED_REDUCES") > 16,
            "{killed} task processes died with the node but nothing ran again: {counters:?}"
        );
    }
    // The dead node's map outputs outlived it (no service was there to remove them); the
    // restarted NodeManager's shuffle service clears them, and the node rejoins the cluster.
    assert!(holds_map_output(&cluster, victim));
    cluster.start_nodemanager(victim);
    cluster.wait_nodemanagers(3, Duration::from_secs(30));
    assert!(
        shuffle_leftovers(&cluster).is_empty(),
        "{:?}",
        shuffle_leftovers(&cluster)
    );
}
