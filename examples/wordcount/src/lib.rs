//! Word count plugin: counts the words of text input, writing `word\tcount` lines.
//!
//! - Words are maximal runs of bytes that are not ASCII whitespace (`u8::is_ascii_whitespace`:
//!   space, `\t`, `\n`, `\x0C`, `\r`); any other byte, including non-UTF-8, is part of a word.
//! - Intermediate and output values are counts as decimal ASCII text, so the output is readable
//!   as is, the combiner's output is valid reducer input, and streaming jobs can interoperate.
//! - In-mapper combining (on by default, `wordcount.in-mapper-combine=false` turns it off):
//!   the mapper sums counts in a hash map and emits one record per distinct word at cleanup, or
//!   earlier whenever the map holds `wordcount.in-mapper-combine.max-words` words (default
//!   1,048,576), so its memory stays bounded. The reducer and the combiner sum, so the output
//!   is identical with and without either kind of combining.

use sheaf_mapreduce::api::codec::{parse_u64, DecimalBuf};
use sheaf_mapreduce::api::{
    Emitter, JobConf, JobDefinition, KeyComparator, Mapper, Partitioner, Reducer, TaskContext,
    TaskError, ValueIter,
};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Conf key: `false` turns in-mapper combining off (one `(word, 1)` record per word).
pub const IN_MAPPER_COMBINE_KEY: &str = "wordcount.in-mapper-combine";
/// Conf key: distinct words the in-mapper table holds before it is flushed.
pub const MAX_WORDS_KEY: &str = "wordcount.in-mapper-combine.max-words";
/// Default of [`MAX_WORDS_KEY`].
pub const DEFAULT_MAX_WORDS: usize = 1 << 20;

/// `WHITESPACE[b]` is true for the bytes `u8::is_ascii_whitespace` accepts (a table lookup is
/// cheaper than the match in the hot loop).
static WHITESPACE: [bool; 256] = {
    let mut t = [false; 256];
    t[b' ' as usize] = true;
    t[b'\t' as usize] = true;
    t[b'\n' as usize] = true;
    t[0x0C] = true;
    t[b'\r' as usize] = true;
    t
};

/// Calls `f` for each word of `line`.
#[inline]
pub fn for_each_word(line: &[u8], mut f: impl FnMut(&[u8])) {
    let mut i = 0;
    let n = line.len();
    while i < n {
        while i < n && WHITESPACE[line[i] as usize] {
            i += 1;
        }
        let start = i;
        while i < n && !WHITESPACE[line[i] as usize] {
            i += 1;
        }
        if i > start {
            f(&line[start..i]);
        }
    }
}

/// A fast, unkeyed hasher for the word tables: a folded 64x64->128 multiply (wyhash's mixer)
/// over 8-byte words. Fine for an in-process table; hash flooding is not a concern here.
#[derive(Default, Clone, Copy)]
pub struct WordHasher {
    hash: u64,
}

const K1: u64 = 0xa076_1d64_78bd_642f;
const K2: u64 = 0xe703_7ed1_a0b4_28db;

#[inline]
fn fold_mul(a: u64, b: u64) -> u64 {
    let m = u128::from(a) * u128::from(b);
    (m as u64) ^ ((m >> 64) as u64)
}

impl Hasher for WordHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.hash = fold_mul(self.hash ^ u64::from_le_bytes(w) ^ K1, K2);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.hash = fold_mul(self.hash ^ u64::from_le_bytes(w) ^ K1, K2);
        }
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.hash = fold_mul(self.hash ^ n as u64 ^ K2, K1);
    }

    #[inline]
    fn write_u128(&mut self, v: u128) {
        self.hash = fold_mul((v as u64) ^ K1, ((v >> 64) as u64) ^ K2);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

/// Words of at most this many bytes are packed into a `u128` table key: no allocation, and a
/// lookup compares one integer instead of calling `memcmp`.
const PACKED_MAX: usize = 15;

/// Packs a word of at most [`PACKED_MAX`] bytes: bytes little-endian in the low 15 bytes, the
/// length in the top byte (so "a" and "a\0" differ).
#[inline]
fn pack(word: &[u8]) -> u128 {
    let mut buf = [0u8; 16];
    buf[..word.len()].copy_from_slice(word);
    buf[15] = word.len() as u8;
    u128::from_le_bytes(buf)
}

/// [`pack`] for the word `line[start..start + len]` when 16 bytes from `start` are readable:
/// one unaligned load and a mask instead of a variable-length copy.
#[inline]
fn pack_in_line(line: &[u8], start: usize, len: usize) -> u128 {
    match line.get(start..start + 16) {
        Some(window) => {
            let mut buf = [0u8; 16];
            buf.copy_from_slice(window);
            let mask = (1u128 << (8 * len)) - 1;
            (u128::from_le_bytes(buf) & mask) | ((len as u128) << 120)
        }
        None => pack(&line[start..start + len]),
    }
}

/// Inverse of [`pack`].
fn unpack(key: u128, out: &mut [u8; 16]) -> &[u8] {
    *out = key.to_le_bytes();
    let len = usize::from(out[15]);
    &out[..len]
}

type Hashing = BuildHasherDefault<WordHasher>;

/// In-mapper counts: short words packed into integers, long words as owned bytes.
struct WordTable {
    short: HashMap<u128, u64, Hashing>,
    long: HashMap<Box<[u8]>, u64, Hashing>,
}

impl WordTable {
    fn new(capacity: usize) -> Self {
        WordTable {
            short: HashMap::with_capacity_and_hasher(capacity, Hashing::default()),
            long: HashMap::with_hasher(Hashing::default()),
        }
    }

    fn len(&self) -> usize {
        self.short.len() + self.long.len()
    }

    /// Counts every word of `line`.
    #[inline]
    fn add_line(&mut self, line: &[u8]) {
        let n = line.len();
        let mut i = 0;
        while i < n {
            while i < n && WHITESPACE[line[i] as usize] {
                i += 1;
            }
            let start = i;
            while i < n && !WHITESPACE[line[i] as usize] {
                i += 1;
            }
            let len = i - start;
            if len == 0 {
                continue;
            }
            if len <= PACKED_MAX {
                *self
                    .short
                    .entry(pack_in_line(line, start, len))
                    .or_insert(0) += 1;
            } else {
                let word = &line[start..i];
                match self.long.get_mut(word) {
                    Some(c) => *c += 1,
                    None => {
                        self.long.insert(word.into(), 1);
                    }
                }
            }
        }
    }

    /// Emits every (word, count) and empties the table.
    fn flush(&mut self, out: &mut dyn Emitter) -> Result<(), TaskError> {
        let mut digits = DecimalBuf::new();
        let mut buf = [0u8; 16];
        for (key, count) in self.short.drain() {
            out.emit(unpack(key, &mut buf), digits.format_u64(count))?;
        }
        for (word, count) in self.long.drain() {
            out.emit(&word, digits.format_u64(count))?;
        }
        Ok(())
    }
}

/// Emits `(word, count)` for every word in the line.
pub struct WordCountMapper {
    /// `None` when in-mapper combining is off.
    table: Option<WordTable>,
    max_words: usize,
}

impl WordCountMapper {
    /// A mapper configured from `conf`.
    pub fn new(conf: &JobConf) -> Result<Self, TaskError> {
        let combine = match conf.get(IN_MAPPER_COMBINE_KEY) {
            None | Some("true") => true,
            Some("false") => false,
            Some(v) => {
                return Err(TaskError::new(format!(
                    "{IN_MAPPER_COMBINE_KEY}={v:?} must be true or false"
                )))
            }
        };
        let max_words = match conf.get(MAX_WORDS_KEY) {
            None => DEFAULT_MAX_WORDS,
            Some(v) => v
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| {
                    TaskError::new(format!("{MAX_WORDS_KEY}={v:?} must be a positive count"))
                })?,
        };
        Ok(WordCountMapper {
            table: combine.then(|| WordTable::new(max_words.min(1 << 16))),
            max_words,
        })
    }
}

impl Mapper for WordCountMapper {
    fn map(
        &mut self,
        _key: &[u8],
        line: &[u8],
        out: &mut dyn Emitter,
        _ctx: &mut dyn TaskContext,
    ) -> Result<(), TaskError> {
        let Some(table) = self.table.as_mut() else {
            let mut result = Ok(());
            for_each_word(line, |w| {
                if result.is_ok() {
                    result = out.emit(w, b"1");
                }
            });
            return result;
        };
        table.add_line(line);
        if table.len() >= self.max_words {
            table.flush(out)?;
        }
        Ok(())
    }

    fn cleanup(
        &mut self,
        out: &mut dyn Emitter,
        _ctx: &mut dyn TaskContext,
    ) -> Result<(), TaskError> {
        match self.table.as_mut() {
            Some(table) => table.flush(out),
            None => Ok(()),
        }
    }
}

/// Sums the decimal counts of a word; used as both combiner and reducer.
#[derive(Default)]
pub struct SumReducer;

impl Reducer for SumReducer {
    fn reduce(
        &mut self,
        key: &[u8],
        values: &mut dyn ValueIter,
        out: &mut dyn Emitter,
        _ctx: &mut dyn TaskContext,
    ) -> Result<(), TaskError> {
        let mut sum: u64 = 0;
        while let Some(v) = values.next_value() {
            let n = parse_u64(v).map_err(|e| {
                TaskError::new(format!(
                    "wordcount: bad count for word {:?}: {e}",
                    String::from_utf8_lossy(key)
                ))
            })?;
            sum = sum.saturating_add(n);
        }
        out.emit(key, DecimalBuf::new().format_u64(sum))
    }
}

/// The word count job.
#[derive(Default)]
pub struct WordCountJob;

impl JobDefinition for WordCountJob {
    fn new_mapper(&self, conf: &JobConf) -> Result<Box<dyn Mapper>, TaskError> {
        Ok(Box::new(WordCountMapper::new(conf)?))
    }
    fn new_reducer(&self, _conf: &JobConf) -> Result<Box<dyn Reducer>, TaskError> {
        Ok(Box::new(SumReducer))
    }
    fn new_combiner(&self, conf: &JobConf) -> Result<Option<Box<dyn Reducer>>, TaskError> {
        if !sheaf_mapreduce::api::combiner_enabled(conf) {
            return Ok(None);
        }
        Ok(Some(Box::new(SumReducer)))
    }
    fn partitioner(&self, _conf: &JobConf) -> Result<Option<Box<dyn Partitioner>>, TaskError> {
        Ok(None)
    }
    fn comparator(&self, _conf: &JobConf) -> Result<Option<Box<dyn KeyComparator>>, TaskError> {
        Ok(None)
    }
    fn name(&self) -> &str {
        "wordcount"
    }
}

sheaf_mapreduce::sheaf_plugin!(WordCountJob);

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

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
        fn incr_counter(&mut self, _g: &str, _n: &str, _a: i64) {}
    }
    struct Values(std::vec::IntoIter<Vec<u8>>, Vec<u8>);
    impl ValueIter for Values {
        fn next_value(&mut self) -> Option<&[u8]> {
            self.1 = self.0.next()?;
            Some(&self.1)
        }
    }

    /// Map all lines, group by key, reduce: a tiny in-memory MapReduce.
    fn run(lines: &[&[u8]], conf: JobConf) -> BTreeMap<Vec<u8>, Vec<u8>> {
        let job = WordCountJob;
        let mut ctx = Ctx(conf);
        let mut mapper = job.new_mapper(&ctx.0).unwrap();
        let mut out = Collect(Vec::new());
        for (i, l) in lines.iter().enumerate() {
            mapper
                .map(i.to_string().as_bytes(), l, &mut out, &mut ctx)
                .unwrap();
        }
        mapper.cleanup(&mut out, &mut ctx).unwrap();
        let mut groups: BTreeMap<Vec<u8>, Vec<Vec<u8>>> = BTreeMap::new();
        for (k, v) in out.0 {
            groups.entry(k).or_default().push(v);
        }
        let mut reducer = job.new_reducer(&ctx.0).unwrap();
        let mut result = Collect(Vec::new());
        for (k, vs) in groups {
            reducer
                .reduce(
                    &k,
                    &mut Values(vs.into_iter(), Vec::new()),
                    &mut result,
                    &mut ctx,
                )
                .unwrap();
        }
        result.0.into_iter().collect()
    }

    fn reference(lines: &[&[u8]]) -> BTreeMap<Vec<u8>, Vec<u8>> {
        let mut counts: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
        for l in lines {
            for w in l
                .split(|b| b.is_ascii_whitespace())
                .filter(|w| !w.is_empty())
            {
                *counts.entry(w.to_vec()).or_default() += 1;
            }
        }
        counts
            .into_iter()
            .map(|(k, v)| (k, v.to_string().into_bytes()))
            .collect()
    }

    #[test]
    fn counts_match_reference_with_and_without_in_mapper_combining() {
        let lines: Vec<&[u8]> = vec![
            b"the quick brown fox",
            b"  the\tlazy dog\x0Cthe\r end ",
            b"",
            b"caf\xc3\xa9 \xff\xfe caf\xc3\xa9",
            b"a longer-than-eight-bytes word and a longer-than-eight-bytes word",
        ];
        let expected = reference(&lines);
        assert_eq!(run(&lines, JobConf::default()), expected);
        let mut off = JobConf::default();
        off.set(IN_MAPPER_COMBINE_KEY, "false");
        assert_eq!(run(&lines, off), expected);
        let mut tiny = JobConf::default();
        tiny.set(MAX_WORDS_KEY, "2");
        assert_eq!(run(&lines, tiny), expected);
    }

    #[test]
    fn bad_conf_is_refused() {
        let mut conf = JobConf::default();
        conf.set(MAX_WORDS_KEY, "0");
        assert!(WordCountJob.new_mapper(&conf).is_err());
        let mut conf = JobConf::default();
        conf.set(IN_MAPPER_COMBINE_KEY, "maybe");
        assert!(WordCountJob.new_mapper(&conf).is_err());
    }

    #[test]
    fn packing_is_exact_and_position_independent() {
        let line = b"a\x00b fifteen-bytes-xx sixteen-bytes-xxx \xff\x00 z";
        for start in 0..line.len() {
            for len in 1..=PACKED_MAX.min(line.len() - start) {
                let word = &line[start..start + len];
                let key = pack_in_line(line, start, len);
                assert_eq!(key, pack(word), "start {start} len {len}");
                let mut buf = [0u8; 16];
                assert_eq!(unpack(key, &mut buf), word);
            }
        }
        assert_ne!(pack(b"a"), pack(b"a\x00"));
        assert_ne!(pack(b""), pack(b"\x00"));
    }

    #[test]
    fn long_and_short_words_and_flush_bound() {
        let sixteen = b"0123456789abcdef";
        let fifteen = b"0123456789abcde";
        let line = [
            &sixteen[..],
            b" ",
            &fifteen[..],
            b" ",
            &sixteen[..],
            b" x\x00 x",
        ]
        .concat();
        let lines: Vec<&[u8]> = vec![&line, &line];
        let expected = reference(&lines);
        assert_eq!(expected.len(), 4);
        assert_eq!(run(&lines, JobConf::default()), expected);
        let mut tiny = JobConf::default();
        tiny.set(MAX_WORDS_KEY, "1");
        assert_eq!(run(&lines, tiny), expected);
    }

    #[test]
    fn whitespace_table_matches_std() {
        for b in 0..=255u8 {
            assert_eq!(WHITESPACE[b as usize], b.is_ascii_whitespace(), "byte {b}");
        }
    }
}
