//! Loads the example and test plugins as real shared libraries through `PluginLibrary::load`.

use sheaf_mapreduce::api::abi::{FingerprintInfo, ABI_VERSION, RUSTC_VERSION};
use sheaf_mapreduce::api::plugin::{PluginError, PluginLibrary};
use sheaf_mapreduce::api::{Emitter, JobConf, JobDefinition, TaskContext, TaskError, ValueIter};
use std::path::PathBuf;
use std::sync::Arc;

/// `target/<profile>/lib<name>.so`, next to the `deps/` directory this test runs from.
fn plugin_path(crate_name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let deps = exe.parent().expect("deps dir");
    let file = format!(
        "{}{crate_name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    // Built as a dev-dependency it lands in deps/; `cargo build -p` puts it one level up.
    // Take the newer, so a stale copy never shadows a fresh build.
    let newest = [deps.parent().map(|d| d.join(&file)), Some(deps.join(&file))]
        .into_iter()
        .flatten()
        .filter_map(|c| Some((std::fs::metadata(&c).ok()?.modified().ok()?, c)))
        .max();
    if let Some((_, path)) = newest {
        return path;
    }
    panic!(
        "plugin library {file} not found next to {} (build it first: `cargo build -p {crate_name}`, \
         or run the tests with `cargo nextest run --workspace`)",
        deps.display()
    );
}

fn load(crate_name: &str) -> Arc<dyn JobDefinition> {
    let path = plugin_path(crate_name);
    match PluginLibrary::load(&path) {
        Ok(job) => job,
        Err(e) => panic!("loading {}: {e}", path.display()),
    }
}

#[derive(Default)]
struct Collect(Vec<(Vec<u8>, Vec<u8>)>);
impl Emitter for Collect {
    fn emit(&mut self, key: &[u8], value: &[u8]) -> Result<(), TaskError> {
        self.0.push((key.to_vec(), value.to_vec()));
        Ok(())
    }
}

struct Ctx(JobConf);
impl TaskContext for Ctx {
    fn conf(&self) -> &JobConf {
        &self.0
    }
    fn incr_counter(&mut self, _group: &str, _name: &str, _amount: i64) {}
}

struct Values(Vec<Vec<u8>>, usize);
impl ValueIter for Values {
    fn next_value(&mut self) -> Option<&[u8]> {
        self.1 += 1;
        self.0.get(self.1 - 1).map(Vec::as_slice)
    }
}

#[test]
fn wordcount_plugin_round_trip() {
    let job = load("wordcount");
    assert_eq!(job.name(), "wordcount");
    let mut ctx = Ctx(JobConf::default());
    let mut mapper = job.new_mapper(&ctx.0).unwrap();
    let mut out = Collect::default();
    mapper
        .map(b"0", b"to be or not to be", &mut out, &mut ctx)
        .unwrap();
    mapper
        .map(b"19", b"\xffbyte\xfe to", &mut out, &mut ctx)
        .unwrap();
    assert!(
        out.0.is_empty(),
        "in-mapper combining holds counts until cleanup"
    );
    mapper.cleanup(&mut out, &mut ctx).unwrap();
    out.0.sort();
    let expected: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (b"be".to_vec(), b"2".to_vec()),
        (b"not".to_vec(), b"1".to_vec()),
        (b"or".to_vec(), b"1".to_vec()),
        (b"to".to_vec(), b"3".to_vec()),
        (b"\xffbyte\xfe".to_vec(), b"1".to_vec()),
    ];
    assert_eq!(out.0, expected);

    let mut off = JobConf::default();
    off.set("wordcount.in-mapper-combine", "false");
    let mut ctx_off = Ctx(off);
    let mut mapper = job.new_mapper(&ctx_off.0).unwrap();
    let mut out = Collect::default();
    mapper.map(b"0", b"a a", &mut out, &mut ctx_off).unwrap();
    assert_eq!(
        out.0,
        vec![
            (b"a".to_vec(), b"1".to_vec()),
            (b"a".to_vec(), b"1".to_vec())
        ]
    );

    let mut reducer = job.new_reducer(&ctx.0).unwrap();
    let mut out = Collect::default();
    reducer
        .reduce(
            b"to",
            &mut Values(vec![b"3".to_vec(), b"40".to_vec()], 0),
            &mut out,
            &mut ctx,
        )
        .unwrap();
    assert_eq!(out.0, vec![(b"to".to_vec(), b"43".to_vec())]);
    assert!(job.new_combiner(&ctx.0).unwrap().is_some());
    let mut no_combiner = JobConf::default();
    no_combiner.set("mapreduce.combiner.enabled", "false");
    assert!(job.new_combiner(&no_combiner).unwrap().is_none());
    assert!(job.partitioner(&ctx.0).unwrap().is_none());
    assert!(job.comparator(&ctx.0).unwrap().is_none());
}

#[test]
fn loading_twice_gives_working_jobs() {
    let a = load("wordcount");
    let b = load("wordcount");
    let mut ctx = Ctx(JobConf::default());
    for job in [a, b] {
        let mut m = job.new_mapper(&ctx.0).unwrap();
        let mut out = Collect::default();
        m.map(b"0", b"x", &mut out, &mut ctx).unwrap();
        m.cleanup(&mut out, &mut ctx).unwrap();
        assert_eq!(out.0, vec![(b"x".to_vec(), b"1".to_vec())]);
    }
}

#[test]
fn terasort_plugin_brings_its_conf_and_partitioner() {
    let job = load("terasort");
    let defaults = job.default_conf();
    assert_eq!(defaults.get("mapreduce.job.inputformat"), Some("fixed"));
    assert_eq!(defaults.get("mapreduce.job.outputformat"), Some("raw"));
    // Without split points its partitioner factory fails clearly.
    let err = job.partitioner(&defaults).err().unwrap();
    assert!(
        err.0.contains("mapreduce.totalorderpartitioner.points"),
        "{err}"
    );
    let mut conf = defaults.clone();
    conf.set("mapreduce.totalorderpartitioner.points", "4d"); // "M"
    let p = job.partitioner(&conf).unwrap().unwrap();
    assert_eq!(p.partition(b"AAAAAAAAAA", b"", 2), 0);
    assert_eq!(p.partition(b"MAAAAAAAAA", b"", 2), 1);
    assert_eq!(p.partition(b"zzzzzzzzzz", b"", 2), 1);
    let mut ctx = Ctx(conf);
    let mut m = job.new_mapper(&ctx.0).unwrap();
    let mut out = Collect::default();
    let record = [b'k'; 100];
    m.map(b"0", &record, &mut out, &mut ctx).unwrap();
    assert_eq!(out.0, vec![(vec![b'k'; 10], vec![b'k'; 90])]);
}

#[test]
fn panicking_plugin_fails_with_its_message() {
    let job = load("panicky");
    let mut ctx = Ctx(JobConf::default());
    let mut m = job.new_mapper(&ctx.0).unwrap();
    let err = m
        .map(b"0", b"line", &mut Collect::default(), &mut ctx)
        .unwrap_err();
    assert_eq!(
        err.0,
        "plugin panicked: panicky test plugin: deliberate panic in map"
    );
    let mut r = job.new_reducer(&ctx.0).unwrap();
    let err = r
        .reduce(
            b"k",
            &mut Values(vec![b"v".to_vec()], 0),
            &mut Collect::default(),
            &mut ctx,
        )
        .unwrap_err();
    assert_eq!(
        err.0,
        "plugin panicked: panicky test plugin: deliberate panic in reduce"
    );
    let mut conf = JobConf::default();
    conf.set("panicky.where", "new_mapper");
    let err = job.new_mapper(&conf).err().unwrap();
    assert_eq!(
        err.0,
        "plugin panicked: panicky test plugin: deliberate panic in new_mapper"
    );
    // The process is unharmed: the same library keeps working.
    ctx.0.set("panicky.where", "none");
    let mut m = job.new_mapper(&ctx.0).unwrap();
    m.map(b"k", b"v", &mut Collect::default(), &mut ctx)
        .unwrap();
}

#[test]
fn library_without_the_symbol_is_refused() {
    let path = plugin_path("nosymbol");
    let err = PluginLibrary::load(&path).err().unwrap();
    assert!(matches!(err, PluginError::MissingSymbol { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("sheaf_plugin_entry") && msg.contains("libnosymbol"),
        "{msg}"
    );
}

#[test]
fn library_with_another_fingerprint_is_refused_naming_both() {
    let path = plugin_path("wrongabi");
    let err = PluginLibrary::load(&path).err().unwrap();
    let msg = err.to_string();
    match &err {
        PluginError::Fingerprint {
            expected, found, ..
        } => {
            assert_eq!(**expected, FingerprintInfo::current());
            assert_eq!(found.abi_version, ABI_VERSION + 1000);
            assert_eq!(found.rustc_version, "rustc 0.1.0 (from the future)");
        }
        other => panic!("expected a fingerprint error, got {other}"),
    }
    assert!(msg.contains(&format!("ABI {ABI_VERSION},")), "{msg}");
    assert!(
        msg.contains(&format!("ABI {},", ABI_VERSION + 1000)),
        "{msg}"
    );
    assert!(
        msg.contains(RUSTC_VERSION) && msg.contains("from the future"),
        "{msg}"
    );
}

/// Throughput probe of the map side through the real plugin (text reader → C ABI → wordcount
/// mapper with in-mapper combining), next to a plain single-threaded HashMap loop over the same
/// bytes. Not an assertion (timings depend on the machine and build profile): run with
/// `cargo test -p sheaf-mapreduce --test plugin_libraries -- --ignored --nocapture`.
#[test]
#[ignore]
fn wordcount_map_side_throughput_probe() {
    use sheaf_mapreduce::formats::{InputFormat, InputSplit};
    use std::collections::HashMap;
    use std::time::Instant;

    // Deterministic Zipf-ish corpus: word rank r drawn with probability ~ 1/r.
    let vocab: Vec<String> = (0..50_000u32)
        .map(|i| format!("w{:x}{}", i.wrapping_mul(2654435761) >> 20, i))
        .collect();
    let mut state = 0x1234_5678_9abc_def0u64;
    let mut corpus = Vec::with_capacity(64 << 20);
    while corpus.len() < (64 << 20) {
        let words = 5 + (state >> 60) as usize;
        for w in 0..words {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let u = ((state >> 11) as f64) / ((1u64 << 53) as f64);
            let rank = ((vocab.len() as f64).powf(u) as usize)
                .saturating_sub(1)
                .min(vocab.len() - 1);
            if w > 0 {
                corpus.push(b' ');
            }
            corpus.extend_from_slice(vocab[rank].as_bytes());
        }
        corpus.push(b'\n');
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("corpus.txt");
    std::fs::write(&path, &corpus).unwrap();
    let mb = corpus.len() as f64 / 1e6;

    let start = Instant::now();
    let mut counts: HashMap<Vec<u8>, u64> = HashMap::new();
    let text = std::fs::read(&path).unwrap();
    for w in text
        .split(|b| b.is_ascii_whitespace())
        .filter(|w| !w.is_empty())
    {
        *counts.entry(w.to_vec()).or_default() += 1;
    }
    let plain = start.elapsed().as_secs_f64();

    let job = load("wordcount");
    let start = Instant::now();
    let split = InputSplit::new(&path, 0, corpus.len() as u64);
    let mut reader = InputFormat::default()
        .open(std::fs::File::open(&path).unwrap(), &split)
        .unwrap();
    let mut ctx = Ctx(JobConf::default());
    let mut mapper = job.new_mapper(&ctx.0).unwrap();
    let mut out = Collect::default();
    while let Some((k, v)) = reader.next_record().unwrap() {
        mapper.map(k, v, &mut out, &mut ctx).unwrap();
    }
    mapper.cleanup(&mut out, &mut ctx).unwrap();
    let plugin = start.elapsed().as_secs_f64();
    assert_eq!(out.0.len(), counts.len());
    println!(
        "{mb:.0} MB: plain loop {:.0} MB/s, plugin map side {:.0} MB/s ({:.2}x), {} distinct words",
        mb / plain,
        mb / plugin,
        plain / plugin,
        counts.len()
    );
}
