//! `sheaf job run --local` and `sheaf job streaming --local` end to end: the real binary, the
//! real plugin libraries, outputs checked against references computed here.

mod common;

use common::plugin;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn sheaf() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sheaf"))
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run sheaf");
    if !out.status.success() {
        eprintln!("stderr: {}", String::from_utf8_lossy(&out.stderr));
    }
    out
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Deterministic text: skewed vocabulary, non-UTF-8 bytes, tabs, CRLF and blank lines.
fn corpus(bytes: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut out = Vec::with_capacity(bytes + 64);
    while out.len() < bytes {
        for i in 0..(next() % 14) {
            let r = next();
            out.push(if i == 0 { b'\t' } else { b' ' });
            let id = (r % 3000) * (r % 3000) / 3000;
            out.extend_from_slice(format!("w{id}").as_bytes());
            if r % 53 == 0 {
                out.extend_from_slice(b"\xc3\x28\xff");
            }
        }
        out.extend_from_slice(if next() % 4 == 0 { b"\r\n" } else { b"\n" });
    }
    out
}

/// Word counts the way the wordcount plugin defines words: runs of non-ASCII-whitespace bytes.
fn reference(text: &[u8]) -> BTreeMap<Vec<u8>, u64> {
    let mut m = BTreeMap::new();
    for w in text
        .split(|b| b.is_ascii_whitespace())
        .filter(|w| !w.is_empty())
    {
        *m.entry(w.to_vec()).or_insert(0) += 1;
    }
    m
}

fn part_files(dir: &Path) -> Vec<PathBuf> {
    let mut parts: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("list output")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("part-"))
        })
        .collect();
    parts.sort();
    parts
}

/// Parses `key\tcount` lines of every part file; a key in two files is an error.
fn read_counts(dir: &Path) -> BTreeMap<Vec<u8>, u64> {
    let mut m = BTreeMap::new();
    for part in part_files(dir) {
        let data = std::fs::read(&part).expect("read part");
        for line in data.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let tab = line
                .iter()
                .rposition(|b| *b == b'\t')
                .expect("tab in output line");
            let n: u64 = std::str::from_utf8(&line[tab + 1..])
                .expect("ascii count")
                .trim()
                .parse()
                .expect("count");
            assert!(
                m.insert(line[..tab].to_vec(), n).is_none(),
                "key in two part files"
            );
        }
    }
    m
}

fn concat_parts(dir: &Path) -> Vec<u8> {
    part_files(dir)
        .iter()
        .flat_map(|p| std::fs::read(p).expect("read part"))
        .collect()
}

fn counter(stderr: &str, name: &str) -> i64 {
    let prefix = format!("{name}=");
    stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("counter {name} missing from:\n{stderr}"))
        .parse()
        .expect("counter value")
}

fn wordcount(input: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut cmd = sheaf();
    cmd.args(["job", "run", "--local", "--plugin"])
        .arg(plugin("wordcount"))
        .arg("--input")
        .arg(input)
        .arg("--output")
        .arg(out)
        .args(["--reducers", "3", "--slots", "2"])
        .args(extra);
    if !extra.contains(&"--split-size") {
        cmd.args(["--split-size", "64k"]);
    }
    run(&mut cmd)
}

#[test]
fn wordcount_plugin_output_equals_independent_reference_and_prints_counters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.txt");
    let text = corpus(600_000, 1);
    std::fs::write(&input, &text).expect("write");
    let out = dir.path().join("out");
    let res = wordcount(&input, &out, &[]);
    assert!(res.status.success());
    assert_eq!(read_counts(&out), reference(&text));
    assert_eq!(part_files(&out).len(), 3);
    assert!(out.join("_SUCCESS").exists());
    assert!(!out.join("_temporary").exists());
    let err = stderr(&res);
    assert!(err.contains("Map-Reduce Framework"), "{err}");
    assert_eq!(
        counter(&err, "REDUCE_OUTPUT_RECORDS"),
        reference(&text).len() as i64
    );
    assert!(counter(&err, "MAP_INPUT_RECORDS") > 0);
    assert!(counter(&err, "FILE_BYTES_READ") >= text.len() as i64);
}

#[test]
fn combiner_and_in_mapper_combining_on_or_off_give_identical_output() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.txt");
    std::fs::write(&input, corpus(400_000, 2)).expect("write");
    let base = dir.path().join("base");
    assert!(wordcount(&input, &base, &[]).status.success());
    let plain = dir.path().join("plain");
    let res = wordcount(
        &input,
        &plain,
        &[
            "-D",
            "mapreduce.combiner.enabled=false",
            "-D",
            "wordcount.in-mapper-combine=false",
        ],
    );
    assert!(res.status.success());
    assert_eq!(concat_parts(&base), concat_parts(&plain));
    assert_eq!(counter(&stderr(&res), "COMBINE_INPUT_RECORDS"), 0);
    let combined = dir.path().join("combiner-only");
    let res = wordcount(
        &input,
        &combined,
        &["-D", "wordcount.in-mapper-combine=false"],
    );
    assert!(res.status.success());
    assert_eq!(concat_parts(&base), concat_parts(&combined));
    assert!(
        counter(&stderr(&res), "COMBINE_INPUT_RECORDS")
            > counter(&stderr(&res), "COMBINE_OUTPUT_RECORDS")
    );
}

#[test]
fn tiny_sort_buffer_and_merge_factor_force_spills_and_multipass_merges_output_unchanged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.txt");
    let text = corpus(400_000, 3);
    std::fs::write(&input, &text).expect("write");
    let base = dir.path().join("base");
    assert!(
        wordcount(&input, &base, &["-D", "wordcount.in-mapper-combine=false"])
            .status
            .success()
    );
    let tiny = dir.path().join("tiny");
    let res = wordcount(
        &input,
        &tiny,
        &[
            "-D",
            "wordcount.in-mapper-combine=false",
            "-D",
            "mapreduce.task.sort-buffer-mb=0.02",
            "-D",
            "mapreduce.task.merge-factor=2",
            "--split-size",
            "1m",
        ],
    );
    assert!(res.status.success());
    assert_eq!(concat_parts(&base), concat_parts(&tiny));
    assert_eq!(read_counts(&tiny), reference(&text));
    let err = stderr(&res);
    // Dozens of spills merged two at a time: every record is written several times.
    let words: u64 = reference(&text).values().sum();
    assert!(counter(&err, "SPILLED_RECORDS") > 2 * words as i64, "{err}");
}

#[test]
fn terasort_of_one_million_records_passes_teravalidate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input_dir = dir.path().join("in");
    std::fs::create_dir(&input_dir).expect("mkdir");
    let input = input_dir.join("records");
    terasort::teragen(&input, 1_000_000).expect("teragen");
    let out = dir.path().join("sorted");
    let res = run(sheaf()
        .args(["job", "run", "--local", "--plugin"])
        .arg(plugin("terasort"))
        .arg("--input")
        .arg(&input_dir)
        .arg("--output")
        .arg(&out)
        .args(["--reducers", "3", "--split-size", "32m"]));
    assert!(res.status.success());
    let parts = part_files(&out);
    assert_eq!(parts.len(), 3);
    let summary = terasort::teravalidate(&[input], &parts).expect("teravalidate");
    assert_eq!(summary.records, 1_000_000);
}

fn streaming(input: &Path, out: &Path, mapper: &str, reducer: &str, extra: &[&str]) -> Output {
    let mut cmd = sheaf();
    cmd.args([
        "job",
        "streaming",
        "--local",
        "--mapper",
        mapper,
        "--reducer",
        reducer,
    ])
    .arg("--input")
    .arg(input)
    .arg("--output")
    .arg(out)
    .args(["--split-size", "32k"])
    .args(extra);
    run(&mut cmd)
}

#[test]
fn streaming_awk_wordcount_with_combiner_matches_reference() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.txt");
    let text: String = (0..5000)
        .map(|i| format!("alpha w{} beta{}\n", i % 37, i % 3))
        .collect();
    std::fs::write(&input, &text).expect("write");
    let out = dir.path().join("out");
    let sum = r#"awk -F'\t' 'NR>1 && $1!=k {print k "\t" s; s=0} {k=$1; s+=$2} END {if (NR>0) print k "\t" s}'"#;
    let res = streaming(
        &input,
        &out,
        r#"awk '{for(i=1;i<=NF;i++) print $i "\t1"}'"#,
        sum,
        &["--combiner", sum, "--reducers", "2"],
    );
    assert!(res.status.success());
    assert_eq!(read_counts(&out), reference(text.as_bytes()));
    assert!(out.join("_SUCCESS").exists());
}

#[test]
fn streaming_sort_uniq_reducer_counts_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.txt");
    let text: String = (0..3000).map(|i| format!("k{}\n", i % 11)).collect();
    std::fs::write(&input, &text).expect("write");
    let out = dir.path().join("out");
    let res = streaming(
        &input,
        &out,
        "cat",
        "uniq -c | awk '{print $2 \"\\t\" $1}'",
        &[],
    );
    assert!(res.status.success());
    let counts = read_counts(&out);
    assert_eq!(counts.len(), 11);
    assert_eq!(counts.values().sum::<u64>(), 3000);
}

#[test]
fn non_utf8_bytes_pass_through_a_map_only_streaming_job_unchanged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.bin");
    let mut data = Vec::new();
    for i in 0..2000u32 {
        data.extend_from_slice(&[0xff, 0xfe, 0x80, (i % 250) as u8 + 1]);
        data.extend_from_slice(format!("\tv{i}").as_bytes());
        data.extend_from_slice(b"\xc3\x28\n");
    }
    data.retain(|b| *b != b'\r');
    std::fs::write(&input, &data).expect("write");
    let out = dir.path().join("out");
    let res = streaming(&input, &out, "cat", "cat", &["--reducers", "0"]);
    assert!(res.status.success());
    assert!(part_files(&out)[0].ends_with("part-m-00000"));
    // Every line comes back byte for byte (compared as sorted multisets).
    let lines = |d: &[u8]| {
        let mut v: Vec<Vec<u8>> = d
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(<[u8]>::to_vec)
            .collect();
        v.sort();
        v
    };
    assert_eq!(lines(&concat_parts(&out)), lines(&data));
}

#[test]
fn failing_streaming_command_fails_job_with_stderr_tail_and_no_success() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "a b\nc d\n").expect("write");
    let out = dir.path().join("out");
    let res = streaming(
        &input,
        &out,
        "cat",
        "cat >/dev/null; echo 'reducer went wrong' >&2; exit 7",
        &[],
    );
    assert!(!res.status.success());
    let err = stderr(&res);
    assert!(err.starts_with("sheaf job: "), "{err}");
    assert!(
        err.contains("reducer went wrong") && err.contains("exit code 7"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(!out.join("_SUCCESS").exists());
    assert!(!out.join("_temporary").exists());
}

#[test]
fn panicking_plugin_fails_job_with_its_message_and_no_success() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.txt");
    std::fs::write(&input, corpus(50_000, 4)).expect("write");
    for place in ["map", "reduce"] {
        let out = dir.path().join(place);
        let res = run(sheaf()
            .args(["job", "run", "--local", "--plugin"])
            .arg(plugin("panicky"))
            .arg("--input")
            .arg(&input)
            .arg("--output")
            .arg(&out)
            .args(["-D", &format!("panicky.where={place}")]));
        assert!(!res.status.success(), "{place}");
        let err = stderr(&res);
        assert!(
            err.contains(&format!("deliberate panic in {place}")),
            "{err}"
        );
        assert!(err.contains(&format!("{place} task")), "{err}");
        assert!(!out.join("_SUCCESS").exists());
        assert!(!out.join("_temporary").exists());
    }
}

#[test]
fn existing_output_directory_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "a\n").expect("write");
    let out = dir.path().join("out");
    std::fs::create_dir(&out).expect("mkdir");
    let res = wordcount(&input, &out, &[]);
    assert!(!res.status.success());
    let err = stderr(&res);
    assert!(
        err.contains("Output directory") && err.contains("already exists"),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(&out).expect("list").count(), 0);
}

#[test]
fn missing_input_path_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let res = wordcount(&dir.path().join("absent"), &dir.path().join("out"), &[]);
    assert!(!res.status.success());
    let err = stderr(&res);
    assert!(
        err.starts_with("sheaf job: ") && err.contains("Input path does not exist"),
        "{err}"
    );
    assert!(!dir.path().join("out").exists());
}

#[test]
fn empty_input_gives_empty_parts_and_success() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("empty.txt");
    std::fs::write(&input, "").expect("write");
    let out = dir.path().join("out");
    let res = wordcount(&input, &out, &[]);
    assert!(res.status.success());
    assert_eq!(part_files(&out).len(), 3);
    assert!(concat_parts(&out).is_empty());
    assert!(out.join("_SUCCESS").exists());
}
