//! End-to-end tests of the local runner with compiled-in jobs.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use super::*;
use crate::api::{
    Emitter, JobConf, JobDefinition, KeyComparator, Mapper, Partitioner, Reducer, TaskContext,
    TaskError, ValueIter,
};
use crate::counters::*;
use crate::task::settings::{
    COMBINER_ENABLED, COMBINE_MIN_SPILLS, MERGE_FACTOR, REDUCE_MEMORY_MB, SORT_BUFFER_MB,
};

struct WordMapper {
    fail_on: Option<Vec<u8>>,
}
impl Mapper for WordMapper {
    fn map(
        &mut self,
        _key: &[u8],
        value: &[u8],
        out: &mut dyn Emitter,
        ctx: &mut dyn TaskContext,
    ) -> Result<(), TaskError> {
        for word in value
            .split(|b| b.is_ascii_whitespace())
            .filter(|w| !w.is_empty())
        {
            if self.fail_on.as_deref() == Some(word) {
                return Err(TaskError::new("mapper refused the poison word"));
            }
            if word == b"PANIC" {
                panic!("mapper panicked on purpose");
            }
            out.emit(word, b"1")?;
        }
        ctx.incr_counter("WordCount", "LINES", 1);
        Ok(())
    }
}

struct SumReducer;
impl Reducer for SumReducer {
    fn reduce(
        &mut self,
        key: &[u8],
        values: &mut dyn ValueIter,
        out: &mut dyn Emitter,
        _ctx: &mut dyn TaskContext,
    ) -> Result<(), TaskError> {
        let mut sum = 0u64;
        while let Some(v) = values.next_value() {
            let text = std::str::from_utf8(v).map_err(|e| TaskError::new(e.to_string()))?;
            sum += text
                .parse::<u64>()
                .map_err(|e| TaskError::new(e.to_string()))?;
        }
        out.emit(key, sum.to_string().as_bytes())
    }
}

struct Reverse;
impl KeyComparator for Reverse {
    fn compare(&self, a: &[u8], b: &[u8]) -> std::cmp::Ordering {
        b.cmp(a)
    }
}

#[derive(Default)]
struct WordCount {
    fail_on: Option<Vec<u8>>,
    reverse: bool,
    no_combiner: bool,
}
impl JobDefinition for WordCount {
    fn new_mapper(&self, _conf: &JobConf) -> Result<Box<dyn Mapper>, TaskError> {
        Ok(Box::new(WordMapper {
            fail_on: self.fail_on.clone(),
        }))
    }
    fn new_reducer(&self, _conf: &JobConf) -> Result<Box<dyn Reducer>, TaskError> {
        Ok(Box::new(SumReducer))
    }
    fn new_combiner(&self, _conf: &JobConf) -> Result<Option<Box<dyn Reducer>>, TaskError> {
        Ok((!self.no_combiner).then(|| Box::new(SumReducer) as Box<dyn Reducer>))
    }
    fn partitioner(&self, _conf: &JobConf) -> Result<Option<Box<dyn Partitioner>>, TaskError> {
        Ok(None)
    }
    fn comparator(&self, _conf: &JobConf) -> Result<Option<Box<dyn KeyComparator>>, TaskError> {
        Ok(self
            .reverse
            .then(|| Box::new(Reverse) as Box<dyn KeyComparator>))
    }
}

/// Deterministic text with a skewed vocabulary, some non-UTF-8 bytes and CRLF lines.
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
        let words = 1 + next() % 12;
        for i in 0..words {
            let r = next();
            let id = (r % 1000) * (r % 1000) / 1000 + (r >> 40) % 3;
            if i > 0 {
                out.push(b' ');
            }
            out.extend_from_slice(format!("w{id}").as_bytes());
            if r % 97 == 0 {
                out.extend_from_slice(b"\xff\xfe");
            }
        }
        out.extend_from_slice(if next() % 5 == 0 { b"\r\n" } else { b"\n" });
    }
    out
}

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

/// Reads every `part-*` file of `dir` as `key\tcount` lines.
/// Counts by word, and the keys of each part file in file order.
type Output = (BTreeMap<Vec<u8>, u64>, Vec<Vec<Vec<u8>>>);

fn read_output(dir: &Path) -> Output {
    let mut all = BTreeMap::new();
    let mut per_file = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .expect("list output")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("part-"))
        .collect();
    names.sort();
    for name in names {
        let data = std::fs::read(dir.join(&name)).expect("read part");
        let mut keys = Vec::new();
        for line in data.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let tab = line.iter().rposition(|b| *b == b'\t').expect("tab");
            let count: u64 = std::str::from_utf8(&line[tab + 1..])
                .expect("utf8")
                .parse()
                .expect("number");
            keys.push(line[..tab].to_vec());
            assert!(
                all.insert(line[..tab].to_vec(), count).is_none(),
                "key in two outputs"
            );
        }
        per_file.push(keys);
    }
    (all, per_file)
}

fn config(input: &Path, out: &Path, reducers: u32, conf: &[(&str, &str)]) -> LocalJobConfig {
    let mut c = LocalJobConfig::new(vec![input.to_path_buf()], out.to_path_buf());
    c.reducers = reducers;
    c.split_size = 200_000;
    c.slots = 2;
    for (k, v) in conf {
        c.conf.set(*k, *v);
    }
    c
}

#[test]
fn wordcount_equals_reference_for_combiner_spills_and_multipass_merges() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.txt");
    let text = corpus(1_000_000, 7);
    std::fs::write(&input, &text).expect("write input");
    let expect = reference(&text);
    let variants: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("default", vec![]),
        ("no-combiner", vec![(COMBINER_ENABLED, "false")]),
        (
            "tiny-buffers",
            vec![
                (SORT_BUFFER_MB, "0.01"),
                (MERGE_FACTOR, "2"),
                (COMBINE_MIN_SPILLS, "2"),
                (REDUCE_MEMORY_MB, "0.02"),
            ],
        ),
        (
            "tiny-buffers-no-combiner",
            vec![
                (SORT_BUFFER_MB, "0.01"),
                (MERGE_FACTOR, "3"),
                (COMBINER_ENABLED, "false"),
                (REDUCE_MEMORY_MB, "0"),
            ],
        ),
    ];
    let mut input_records = None;
    for (name, conf) in variants {
        let out = dir.path().join(name);
        let report = run_local_job(
            Arc::new(WordCount::default()),
            &config(&input, &out, 3, &conf),
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        let (got, per_file) = read_output(&out);
        assert_eq!(got, expect, "{name}: output differs from the reference");
        assert_eq!(per_file.len(), 3);
        for keys in &per_file {
            assert!(
                keys.windows(2).all(|w| w[0] < w[1]),
                "{name}: part not sorted"
            );
        }
        assert!(out.join(SUCCESS_MARKER).exists());
        assert!(!out.join(TEMPORARY_DIR).exists());
        let c = &report.counters;
        let words: u64 = expect.values().sum();
        assert_eq!(c.task(MAP_OUTPUT_RECORDS), words as i64, "{name}");
        assert_eq!(c.task(REDUCE_INPUT_GROUPS), expect.len() as i64, "{name}");
        assert_eq!(c.task(REDUCE_OUTPUT_RECORDS), expect.len() as i64, "{name}");
        assert_eq!(
            c.get("WordCount", "LINES"),
            c.task(MAP_INPUT_RECORDS),
            "{name}"
        );
        let records = *input_records.get_or_insert(c.task(MAP_INPUT_RECORDS));
        assert_eq!(c.task(MAP_INPUT_RECORDS), records, "{name}");
        if name.contains("no-combiner") {
            assert_eq!(c.task(COMBINE_INPUT_RECORDS), 0, "{name}");
            assert_eq!(c.task(REDUCE_INPUT_RECORDS), words as i64, "{name}");
        } else {
            assert!(c.task(COMBINE_OUTPUT_RECORDS) < c.task(COMBINE_INPUT_RECORDS));
        }
        if name.starts_with("tiny") {
            // Many spills and intermediate merges: far more records hit the disk than a single
            // spill of the map output would write.
            assert!(
                c.task(SPILLED_RECORDS) > 2 * c.task(REDUCE_INPUT_RECORDS),
                "{name}: {c}"
            );
        }
        assert!(c.get(FILE_SYSTEM_GROUP, FILE_BYTES_READ) >= text.len() as i64);
        assert!(c.get(FILE_SYSTEM_GROUP, FILE_BYTES_WRITTEN) > 0);
    }
}

#[test]
fn custom_comparator_orders_and_groups_reducer_input() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.txt");
    let text = corpus(200_000, 3);
    std::fs::write(&input, &text).expect("write input");
    let out = dir.path().join("out");
    let job = WordCount {
        reverse: true,
        ..Default::default()
    };
    run_local_job(
        Arc::new(job),
        &config(&input, &out, 1, &[(SORT_BUFFER_MB, "0.02")]),
    )
    .expect("job");
    let (got, per_file) = read_output(&out);
    assert_eq!(got, reference(&text));
    assert!(per_file[0].windows(2).all(|w| w[0] > w[1]), "reverse order");
}

#[test]
fn map_only_job_writes_part_m_files_with_every_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.txt");
    let text = corpus(500_000, 11);
    std::fs::write(&input, &text).expect("write input");
    let out = dir.path().join("out");
    let report = run_local_job(
        Arc::new(WordCount::default()),
        &config(&input, &out, 0, &[]),
    )
    .expect("job");
    assert!(report.maps > 1);
    let mut count = 0;
    for i in 0..report.maps {
        let data = std::fs::read(out.join(format!("part-m-{i:05}"))).expect("part-m file");
        count += data
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .count();
    }
    assert_eq!(count as u64, reference(&text).values().sum::<u64>());
    assert!(out.join(SUCCESS_MARKER).exists());
    assert!(!out.join("part-r-00000").exists());
}

#[test]
fn records_bigger_than_the_sort_buffer_become_their_own_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.txt");
    let long_word = vec![b'x'; 40_000];
    let mut text = b"a b a\n".to_vec();
    text.extend_from_slice(&long_word);
    text.extend_from_slice(b" a\n");
    text.extend_from_slice(&long_word);
    text.push(b'\n');
    std::fs::write(&input, &text).expect("write input");
    let out = dir.path().join("out");
    run_local_job(
        Arc::new(WordCount::default()),
        &config(&input, &out, 2, &[(SORT_BUFFER_MB, "0.02")]),
    )
    .expect("job");
    assert_eq!(read_output(&out).0, reference(&text));
}

#[test]
fn existing_output_directory_is_refused_untouched() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.txt");
    std::fs::write(&input, b"a b\n").expect("write");
    let out = dir.path().join("out");
    std::fs::create_dir(&out).expect("mkdir");
    std::fs::write(out.join("keep"), b"x").expect("write");
    let err = run_local_job(
        Arc::new(WordCount::default()),
        &config(&input, &out, 1, &[]),
    )
    .expect_err("must refuse");
    assert!(err.to_string().contains("already exists"), "{err}");
    assert!(out.join("keep").exists());
}

#[test]
fn missing_input_is_an_error_before_any_output_is_created() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let err = run_local_job(
        Arc::new(WordCount::default()),
        &config(&dir.path().join("nope"), &out, 1, &[]),
    )
    .expect_err("must fail");
    assert!(
        err.to_string().contains("Input path does not exist"),
        "{err}"
    );
    assert!(!out.exists());
}

#[test]
fn empty_input_gives_empty_parts_and_success() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("empty.txt");
    std::fs::write(&input, b"").expect("write");
    let out = dir.path().join("out");
    let report = run_local_job(
        Arc::new(WordCount::default()),
        &config(&input, &out, 2, &[]),
    )
    .expect("job");
    assert_eq!(report.maps, 0);
    for r in 0..2 {
        let data = std::fs::read(out.join(format!("part-r-{r:05}"))).expect("part");
        assert!(data.is_empty());
    }
    assert!(out.join(SUCCESS_MARKER).exists());
}

#[test]
fn failing_or_panicking_mapper_fails_the_job_without_success_marker() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.txt");
    let mut text = corpus(600_000, 5);
    text.extend_from_slice(b"poison\n");
    std::fs::write(&input, &text).expect("write");
    for (name, job, want) in [
        (
            "error",
            WordCount {
                fail_on: Some(b"poison".to_vec()),
                ..Default::default()
            },
            "mapper refused the poison word",
        ),
        ("panic", WordCount::default(), "mapper panicked on purpose"),
    ] {
        let input = if name == "panic" {
            let p = dir.path().join("panic.txt");
            let mut t = corpus(300_000, 9);
            t.extend_from_slice(b"PANIC\n");
            std::fs::write(&p, &t).expect("write");
            p
        } else {
            input.clone()
        };
        let out = dir.path().join(name);
        let err =
            run_local_job(Arc::new(job), &config(&input, &out, 2, &[])).expect_err("job must fail");
        let msg = err.to_string();
        assert!(msg.contains(want) && msg.contains("map task"), "{msg}");
        assert!(!out.join(SUCCESS_MARKER).exists());
        assert!(!out.join(TEMPORARY_DIR).exists());
        assert!(!out.join("part-r-00000").exists());
    }
}
