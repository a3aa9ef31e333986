//! Streaming jobs run through the local runner with real shell commands.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use super::*;
use crate::local::{run_local_job, LocalJobConfig, SUCCESS_MARKER};

const AWK_MAP: &str = r#"awk '{for(i=1;i<=NF;i++) print $i "\t1"}'"#;
/// Sums runs of equal keys in sorted input, keeping order (valid as combiner and reducer).
const AWK_SUM: &str = r#"awk -F'\t' 'NR>1 && $1!=k {print k "\t" s; s=0} {k=$1; s+=$2} END {if (NR>0) print k "\t" s}'"#;

fn text(lines: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..lines {
        out.extend_from_slice(format!("w{} w{} common x{}\n", i % 17, i % 5, i % 101).as_bytes());
    }
    out
}

fn reference(text: &[u8]) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for w in String::from_utf8_lossy(text).split_whitespace() {
        *m.entry(w.to_string()).or_insert(0) += 1;
    }
    m
}

fn read_counts(out: &Path) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for e in std::fs::read_dir(out).expect("list") {
        let e = e.expect("entry");
        if !e.file_name().to_string_lossy().starts_with("part-") {
            continue;
        }
        let data = std::fs::read_to_string(e.path()).expect("read");
        for line in data.lines() {
            let (k, v) = line.split_once('\t').expect("tab");
            *m.entry(k.to_string()).or_insert(0) += v.trim().parse::<u64>().expect("count");
        }
    }
    m
}

fn job_config(input: &Path, out: &Path, reducers: u32) -> LocalJobConfig {
    let mut c = LocalJobConfig::new(vec![input.to_path_buf()], out.to_path_buf());
    c.reducers = reducers;
    c.split_size = 20_000;
    c.slots = 2;
    c
}

#[test]
fn streaming_wordcount_with_awk_mapper_combiner_and_reducer_matches_reference() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.txt");
    let data = text(3000);
    std::fs::write(&input, &data).expect("write");
    for (name, combiner) in [("with-combiner", Some(AWK_SUM)), ("without", None)] {
        let out = dir.path().join(name);
        let job = StreamingJob {
            mapper: AWK_MAP.into(),
            combiner: combiner.map(String::from),
            reducer: Some(AWK_SUM.into()),
        };
        let mut cfg = job_config(&input, &out, 2);
        // Small buffer: several spills, so the combiner process runs many times.
        cfg.conf.set("mapreduce.task.sort-buffer-mb", "0.05");
        let report = run_local_job(Arc::new(job), &cfg).expect("job");
        assert_eq!(read_counts(&out), reference(&data), "{name}");
        assert!(out.join(SUCCESS_MARKER).exists());
        assert!(report.maps > 1);
    }
}

#[test]
fn streaming_cat_and_sort_uniq_reducer_pass_bytes_through() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.txt");
    // Non-UTF-8 bytes must survive the pipes unchanged.
    let mut data = Vec::new();
    for i in 0..2000 {
        data.extend_from_slice(format!("k{}", i % 7).as_bytes());
        data.extend_from_slice(b"\xff\t");
        data.extend_from_slice(b"v\xfe\n");
    }
    std::fs::write(&input, &data).expect("write");
    let out = dir.path().join("out");
    let job = StreamingJob {
        mapper: "cat".into(),
        combiner: None,
        reducer: Some("LC_ALL=C sort | LC_ALL=C uniq -c | awk '{print $2 \"\\t\" $1}'".into()),
    };
    let mut cfg = job_config(&input, &out, 1);
    cfg.conf.set(crate::formats::INPUT_FORMAT_KEY, "keyvalue");
    run_local_job(Arc::new(job), &cfg).expect("job");
    let result = std::fs::read(out.join("part-r-00000")).expect("part");
    // uniq -c counted `key\tvalue` lines; awk printed the key part (the line up to the space)
    // so check byte-exact keys and totals.
    let mut total = 0;
    for line in result.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        assert!(
            line.starts_with(b"k") && line.windows(1).any(|w| w == b"\xff"),
            "{line:?}"
        );
        let tab = line.iter().rposition(|b| *b == b'\t').expect("tab");
        total += std::str::from_utf8(&line[tab + 1..])
            .expect("digits")
            .parse::<u32>()
            .expect("n");
    }
    assert_eq!(total, 2000);
}

#[test]
fn streaming_command_writing_before_reading_does_not_deadlock() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.txt");
    let data = text(40_000);
    std::fs::write(&input, &data).expect("write");
    let out = dir.path().join("out");
    // Prints 2 MB before reading any input, then echoes its input: both pipes fill up.
    let job = StreamingJob {
        mapper: "awk 'BEGIN{for(i=0;i<200000;i++) print \"pre\\t1\"} {print $1 \"\\t1\"}'".into(),
        combiner: None,
        reducer: Some(AWK_SUM.into()),
    };
    let mut cfg = job_config(&input, &out, 1);
    cfg.split_size = 10 << 20;
    run_local_job(Arc::new(job), &cfg).expect("job");
    let counts = read_counts(&out);
    assert_eq!(counts.get("pre"), Some(&200_000));
    assert_eq!(counts.values().sum::<u64>(), 240_000);
}

#[test]
fn streaming_command_exiting_non_zero_fails_with_its_stderr_tail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.txt");
    std::fs::write(&input, text(100)).expect("write");
    let out = dir.path().join("out");
    let job = StreamingJob {
        mapper: "cat >/dev/null; echo 'first line' >&2; echo 'mapper exploded' >&2; exit 3".into(),
        combiner: None,
        reducer: Some("cat".into()),
    };
    let err = run_local_job(Arc::new(job), &job_config(&input, &out, 1)).expect_err("must fail");
    let msg = err.to_string();
    assert!(msg.contains("exit code 3"), "{msg}");
    assert!(msg.contains("mapper exploded"), "{msg}");
    assert!(!msg.contains('\n'), "one line: {msg}");
    assert!(!out.join(SUCCESS_MARKER).exists());
}
