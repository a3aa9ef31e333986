//! `sheaf bench wordcount` and `sheaf bench terasort`: the local engine against a baseline
//! measured in the same run, over the same bytes.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use clap::Args;
use sheaf_mapreduce::api::plugin::PluginLibrary;
use sheaf_mapreduce::api::JobDefinition;
use sheaf_mapreduce::local::{default_slots, run_local_job, JobReport, LocalJobConfig};

use super::job::{parse_conf, parse_size, print_report};

/// Distinct words of the generated corpus.
const VOCABULARY: usize = 200_000;
/// Zipf exponent of word frequencies.
const ZIPF_S: f64 = 1.1;

/// `sheaf bench wordcount`.
#[derive(Args, Debug)]
pub struct WordcountBenchArgs {
    /// Bytes of corpus to generate (suffixes k, m, g allowed); ignored with --input.
    #[arg(long, value_parser = parse_size, default_value = "1g")]
    pub size: u64,
    /// Count this file instead of a generated corpus.
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// The wordcount plugin (default: `libwordcount.so` next to the sheaf binary).
    #[arg(long)]
    pub plugin: Option<PathBuf>,
    /// Task slots for the engine (default: one per core).
    #[arg(long)]
    pub slots: Option<usize>,
    /// Reduce tasks (default: one per slot).
    #[arg(long)]
    pub reducers: Option<u32>,
    /// Extra job configuration `key=value` (repeatable).
    #[arg(short = 'D', long = "jobconf", value_name = "KEY=VALUE")]
    pub jobconf: Vec<String>,
    /// Directory for the corpus and job output (default: the system temp dir).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Keep the generated corpus and the job output.
    #[arg(long)]
    pub keep: bool,
}

/// `sheaf bench terasort`.
#[derive(Args, Debug)]
pub struct TerasortBenchArgs {
    /// Records of 100 bytes to generate.
    #[arg(long, default_value_t = 10_000_000)]
    pub records: u64,
    /// The terasort plugin (default: `libterasort.so` next to the sheaf binary).
    #[arg(long)]
    pub plugin: Option<PathBuf>,
    /// Task slots for the engine (default: one per core).
    #[arg(long)]
    pub slots: Option<usize>,
    /// Reduce tasks (default: one per slot).
    #[arg(long)]
    pub reducers: Option<u32>,
    /// Extra job configuration `key=value` for the sort job (repeatable).
    #[arg(short = 'D', long = "jobconf", value_name = "KEY=VALUE")]
    pub jobconf: Vec<String>,
    /// Directory for data and output (default: the system temp dir).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Keep the generated data and the outputs.
    #[arg(long)]
    pub keep: bool,
}

/// Finds a plugin: the given path, or `lib<name>.so` next to the running binary.
pub fn find_plugin(given: Option<&Path>, name: &str) -> anyhow::Result<PathBuf> {
    if let Some(p) = given {
        return Ok(p.to_path_buf());
    }
    let exe = std::env::current_exe().context("locating the sheaf binary")?;
    let file = format!(
        "{}{name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    let dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    for candidate in [dir.join(&file), dir.join("deps").join(&file)] {
        if candidate.exists() {
            return Ok(candidate);
        }
    }
    bail!(
        "{file} not found next to {} (build it with `cargo build -p {name}` or pass --plugin)",
        exe.display()
    )
}

/// A scratch directory removed on drop unless kept.
struct WorkDir {
    path: PathBuf,
    keep: bool,
}

impl WorkDir {
    fn create(base: Option<&Path>, what: &str, keep: bool) -> anyhow::Result<Self> {
        let base = base
            .map(Path::to_path_buf)
            .unwrap_or_else(std::env::temp_dir);
        let path = base.join(format!("sheaf-bench-{what}-{}", std::process::id()));
        if path.exists() {
            std::fs::remove_dir_all(&path)
                .with_context(|| format!("clearing {}", path.display()))?;
        }
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(WorkDir { path, keep })
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if self.keep {
            eprintln!("kept {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// splitmix64: a tiny deterministic generator (the corpus must be identical in every run).
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The word of frequency rank `rank`: at least two consonant-vowel syllables (bijective base
/// 100 of the rank, so every rank gets distinct syllables and frequent words are short), and for
/// about half the ranks a closing consonant, giving English-like lengths (about 5 letters per
/// word in the corpus). Even length means no closing consonant, so words stay distinct.
fn word_for_rank(rank: usize) -> Vec<u8> {
    const CONSONANTS: &[u8; 20] = b"bcdfghjklmnprstvwxyz";
    const VOWELS: &[u8; 5] = b"aeiou";
    const CLOSING: &[u8; 8] = b"nstrldmk";
    let mut n = rank + 101;
    let mut syllables = Vec::new();
    while n > 0 {
        n -= 1;
        syllables.push(n % 100);
        n /= 100;
    }
    let mut word = Vec::with_capacity(2 * syllables.len() + 1);
    for s in syllables.iter().rev() {
        word.push(CONSONANTS[s / 5]);
        word.push(VOWELS[s % 5]);
    }
    let mix = SplitMix(rank as u64).next();
    if mix & 1 == 1 {
        word.push(CLOSING[(mix >> 8) as usize % CLOSING.len()]);
    }
    word
}

/// Vose's alias table: O(1) sampling of the Zipf distribution.
struct AliasTable {
    prob: Vec<f64>,
    alias: Vec<u32>,
}

impl AliasTable {
    fn zipf(n: usize, s: f64) -> Self {
        let weights: Vec<f64> = (1..=n).map(|r| 1.0 / (r as f64).powf(s)).collect();
        let total: f64 = weights.iter().sum();
        let mut scaled: Vec<f64> = weights.iter().map(|w| w * n as f64 / total).collect();
        let mut prob = vec![1.0; n];
        let mut alias: Vec<u32> = (0..n as u32).collect();
        let (mut small, mut large): (Vec<usize>, Vec<usize>) =
            (0..n).partition(|&i| scaled[i] < 1.0);
        while let (Some(s_i), Some(&l_i)) = (small.pop(), large.last()) {
            prob[s_i] = scaled[s_i];
            alias[s_i] = l_i as u32;
            scaled[l_i] -= 1.0 - scaled[s_i];
            if scaled[l_i] < 1.0 {
                large.pop();
                small.push(l_i);
            }
        }
        AliasTable { prob, alias }
    }

    fn sample(&self, rng: &mut SplitMix) -> usize {
        let i = rng.below(self.prob.len() as u64) as usize;
        if rng.unit() < self.prob[i] {
            i
        } else {
            self.alias[i] as usize
        }
    }
}

/// Arguments of `sheaf bench corpus`: writes the benchmark's text corpus to a file.
#[derive(clap::Args)]
pub struct CorpusArgs {
    /// Bytes to generate (k/m/g suffixes).
    #[arg(long, value_parser = parse_size, default_value = "32m")]
    pub size: u64,
    /// File to write.
    #[arg(long)]
    pub output: PathBuf,
}

/// `sheaf bench corpus`: the deterministic Zipf corpus `bench wordcount` uses, for scripts.
pub fn corpus(args: CorpusArgs) -> anyhow::Result<()> {
    generate_corpus(&args.output, args.size)
}

/// Writes `size` bytes (whole lines, last one possibly cut short) of Zipf-distributed words,
/// 5-20 words a line, to `path`. Same size, same bytes.
pub fn generate_corpus(path: &Path, size: u64) -> anyhow::Result<()> {
    let words: Vec<Vec<u8>> = (0..VOCABULARY).map(word_for_rank).collect();
    let table = AliasTable::zipf(VOCABULARY, ZIPF_S);
    let mut rng = SplitMix(0x5eed_c0de);
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut line = Vec::with_capacity(512);
    let mut written = 0u64;
    while written < size {
        line.clear();
        let n = 5 + rng.below(16);
        for i in 0..n {
            if i > 0 {
                line.push(b' ');
            }
            line.extend_from_slice(&words[table.sample(&mut rng)]);
        }
        line.push(b'\n');
        let take = (size - written).min(line.len() as u64) as usize;
        out.write_all(&line[..take])?;
        written += take as u64;
    }
    out.flush()?;
    Ok(())
}

/// The baseline: one thread reads the file, splits on whitespace and counts in a std `HashMap`
/// (SipHash), the way a plain program would.
fn plain_word_count(path: &Path) -> anyhow::Result<HashMap<Vec<u8>, u64>> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut counts: HashMap<Vec<u8>, u64> = HashMap::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        for word in line
            .split(|b| b.is_ascii_whitespace())
            .filter(|w| !w.is_empty())
        {
            match counts.get_mut(word) {
                Some(c) => *c += 1,
                None => {
                    counts.insert(word.to_vec(), 1);
                }
            }
        }
    }
    Ok(counts)
}

/// Reads `key<TAB>count` lines of every part file.
fn read_counts(dir: &Path) -> anyhow::Result<HashMap<Vec<u8>, u64>> {
    let mut counts = HashMap::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if !entry.file_name().to_string_lossy().starts_with("part-") {
            continue;
        }
        let data = std::fs::read(entry.path())?;
        for line in data.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let tab = line.iter().rposition(|b| *b == b'\t').with_context(|| {
                format!("no tab in an output line of {}", entry.path().display())
            })?;
            let n: u64 = std::str::from_utf8(&line[tab + 1..])
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .with_context(|| format!("bad count in {}", entry.path().display()))?;
            *counts.entry(line[..tab].to_vec()).or_insert(0) += n;
        }
    }
    Ok(counts)
}

/// Reads the whole file once so both contenders start from a warm page cache.
fn warm_cache(path: &Path) -> anyhow::Result<u64> {
    let mut f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(total);
        }
        total += n as u64;
    }
}

fn mb_per_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64().max(1e-9)
}

fn run_timed(job: Arc<dyn JobDefinition>, config: &LocalJobConfig) -> anyhow::Result<JobReport> {
    let report = run_local_job(job, config)?;
    print_report(&report);
    Ok(report)
}

/// Entry point of `sheaf bench wordcount`.
pub fn wordcount(args: WordcountBenchArgs) -> anyhow::Result<()> {
    let plugin = find_plugin(args.plugin.as_deref(), "wordcount")?;
    let job =
        PluginLibrary::load(&plugin).with_context(|| format!("loading {}", plugin.display()))?;
    let work = WorkDir::create(args.work_dir.as_deref(), "wordcount", args.keep)?;
    let input = match &args.input {
        Some(p) => p.clone(),
        None => {
            let p = work.path.join("corpus.txt");
            let t = Instant::now();
            generate_corpus(&p, args.size)?;
            eprintln!(
                "generated {} bytes of Zipf text in {:.1} s",
                args.size,
                t.elapsed().as_secs_f64()
            );
            p
        }
    };
    let bytes = warm_cache(&input)?;
    ensure!(bytes > 0, "input {} is empty", input.display());

    let t = Instant::now();
    let expected = plain_word_count(&input)?;
    let plain = t.elapsed();

    let slots = args.slots.unwrap_or_else(default_slots).max(1);
    let mut config = LocalJobConfig::new(vec![input.clone()], work.path.join("out"));
    config.slots = slots;
    config.reducers = args.reducers.unwrap_or(slots as u32);
    config.conf = parse_conf(&args.jobconf)?;
    let report = run_timed(job, &config)?;
    let engine = report.elapsed;

    let got = read_counts(&config.output)?;
    ensure!(
        got == expected,
        "the job's counts differ from the plain loop's ({} vs {} distinct words)",
        got.len(),
        expected.len()
    );
    let words: u64 = expected.values().sum();
    let plain_rate = mb_per_s(bytes, plain);
    let engine_rate = mb_per_s(bytes, engine);
    println!(
        "input: {} bytes, {} words, {} distinct (outputs agree)",
        bytes,
        words,
        expected.len()
    );
    println!(
        "plain single-threaded loop: {:8.1} MB/s ({:.2} s)",
        plain_rate,
        plain.as_secs_f64()
    );
    println!(
        "sheaf local wordcount:      {:8.1} MB/s ({:.2} s, {} slots, {} reducers)",
        engine_rate,
        engine.as_secs_f64(),
        slots,
        config.reducers
    );
    println!(
        "ratio (sheaf / plain):      {:8.2}x",
        engine_rate / plain_rate
    );
    Ok(())
}

/// Arguments of `sheaf bench teragen`: writes terasort input records to a file.
#[derive(clap::Args)]
pub struct TeragenArgs {
    /// Records of 100 bytes to generate.
    #[arg(long)]
    pub records: u64,
    /// File to write.
    #[arg(long)]
    pub output: PathBuf,
}

/// `sheaf bench teragen`: the deterministic terasort input, for scripts (e.g. to put into the
/// DFS for a terasort on the cluster).
pub fn teragen(args: TeragenArgs) -> anyhow::Result<()> {
    ensure!(args.records > 0, "--records must be at least 1");
    terasort::teragen(&args.output, args.records)
        .with_context(|| format!("teragen into {}", args.output.display()))
}

/// Arguments of `sheaf bench teravalidate`: checks a terasort output against its input.
#[derive(clap::Args)]
pub struct TeravalidateArgs {
    /// The unsorted input files.
    #[arg(long, required = true, num_args = 1..)]
    pub input: Vec<PathBuf>,
    /// The job's output directory (local; `sheaf dfs get` it first), its `part-*` files in order.
    #[arg(long)]
    pub output: PathBuf,
}

/// `sheaf bench teravalidate`: keys never decrease across the part files, and the record count
/// and checksum equal the input's; exit 1 otherwise.
pub fn teravalidate(args: TeravalidateArgs) -> anyhow::Result<()> {
    let parts = part_files(&args.output)?;
    ensure!(
        !parts.is_empty(),
        "no part files in {}",
        args.output.display()
    );
    let summary = terasort::teravalidate(&args.input, &parts).context("teravalidate")?;
    println!("teravalidate: OK ({summary})");
    Ok(())
}

/// The part files of a job output, in partition order.
fn part_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut parts: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("part-"))
        })
        .collect();
    parts.sort();
    Ok(parts)
}

/// Entry point of `sheaf bench terasort`.
pub fn terasort(args: TerasortBenchArgs) -> anyhow::Result<()> {
    ensure!(args.records > 0, "--records must be at least 1");
    let plugin = find_plugin(args.plugin.as_deref(), "terasort")?;
    let job =
        PluginLibrary::load(&plugin).with_context(|| format!("loading {}", plugin.display()))?;
    let work = WorkDir::create(args.work_dir.as_deref(), "terasort", args.keep)?;
    let input_dir = work.path.join("input");
    std::fs::create_dir_all(&input_dir)?;
    let input = input_dir.join("records");

    let t = Instant::now();
    terasort::teragen(&input, args.records)
        .with_context(|| format!("teragen into {}", input.display()))?;
    let gen = t.elapsed();
    let bytes = warm_cache(&input)?;

    let slots = args.slots.unwrap_or_else(default_slots).max(1);
    let mut config = LocalJobConfig::new(vec![input_dir.clone()], work.path.join("sorted"));
    config.slots = slots;
    config.reducers = args.reducers.unwrap_or(slots as u32);
    config.conf = parse_conf(&args.jobconf)?;
    let report = run_timed(job, &config)?;
    let sort_time = report.elapsed;

    let t = Instant::now();
    let parts = part_files(&config.output)?;
    let summary =
        terasort::teravalidate(std::slice::from_ref(&input), &parts).context("teravalidate")?;
    let validate = t.elapsed();
    ensure!(
        summary.records == args.records,
        "teravalidate saw {} records, expected {}",
        summary.records,
        args.records
    );

    let gnu_out = work.path.join("gnu-sorted");
    let t = Instant::now();
    let status = Command::new("sort")
        .env("LC_ALL", "C")
        .arg("-S")
        .arg("4G")
        .arg(format!("--parallel={slots}"))
        .arg("-T")
        .arg(&work.path)
        .arg("-o")
        .arg(&gnu_out)
        .arg(&input)
        .status()
        .context("running GNU sort (is coreutils installed?)")?;
    let gnu = t.elapsed();
    ensure!(status.success(), "GNU sort failed: {status}");
    let gnu_len = std::fs::metadata(&gnu_out)?.len();
    ensure!(
        gnu_len == bytes,
        "GNU sort wrote {gnu_len} bytes, expected {bytes}"
    );

    println!(
        "records: {} ({} bytes); teragen {:.2} s; teravalidate {:.2} s: OK ({summary})",
        args.records,
        bytes,
        gen.as_secs_f64(),
        validate.as_secs_f64()
    );
    println!(
        "sheaf local terasort:                       {:7.2} s ({:.1} MB/s, {} slots, {} reducers)",
        sort_time.as_secs_f64(),
        mb_per_s(bytes, sort_time),
        slots,
        config.reducers
    );
    println!(
        "LC_ALL=C sort -S 4G --parallel={slots}:            {:7.2} s ({:.1} MB/s)",
        gnu.as_secs_f64(),
        mb_per_s(bytes, gnu)
    );
    println!(
        "ratio (sheaf time / GNU sort time):         {:7.2}",
        sort_time.as_secs_f64() / gnu.as_secs_f64().max(1e-9)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_distinct_and_frequent_ones_short() {
        let words: std::collections::HashSet<Vec<u8>> =
            (0..VOCABULARY).map(word_for_rank).collect();
        assert_eq!(words.len(), VOCABULARY);
        assert!((4..=5).contains(&word_for_rank(0).len()));
        assert!((6..=7).contains(&word_for_rank(150_000).len()));
    }

    #[test]
    fn corpus_is_deterministic_and_zipf_skewed() {
        let dir = std::env::temp_dir().join(format!("sheaf-corpus-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let (a, b) = (dir.join("a"), dir.join("b"));
        generate_corpus(&a, 300_000).expect("gen a");
        generate_corpus(&b, 300_000).expect("gen b");
        let (da, db) = (
            std::fs::read(&a).expect("read"),
            std::fs::read(&b).expect("read"),
        );
        assert_eq!(da, db);
        assert_eq!(da.len(), 300_000);
        let counts = plain_word_count(&a).expect("count");
        let top = counts.get(&word_for_rank(0)).copied().unwrap_or(0);
        let tenth = counts.get(&word_for_rank(9)).copied().unwrap_or(0);
        // Zipf s=1.1: rank 1 is about 10^1.1 ≈ 12.6 times rank 10.
        assert!(top > 8 * tenth && tenth > 0, "{top} vs {tenth}");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
