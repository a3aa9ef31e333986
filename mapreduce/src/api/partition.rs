//! Partitioners and key comparators: the default hash partitioner, bytewise key order, and the
//! total-order (range) partitioner built from a sample of the map output keys.
//!
//! Every map task of a job must route a key to the same reducer, so the hash is a fixed function
//! (64-bit FNV-1a, no per-process seed) and the total-order split points travel inside the
//! `JobConf` (or in a side file whose path is in the `JobConf`).

use super::codec::{from_hex, to_hex};
use super::{Emitter, JobConf, JobDefinition, KeyComparator, Partitioner, TaskContext, TaskError};
use crate::formats::{
    FormatError, InputFormat, InputSplit, RecordFileOptions, RecordFileReader, RecordFileWriter,
    RecordReader,
};
use std::cmp::Ordering;
use std::io::{Read, Seek};
use std::path::Path;
use std::sync::Arc;

/// Conf key: split points of the total-order partitioner, inline, as comma-separated hex keys.
pub const TOTAL_ORDER_POINTS_KEY: &str = "mapreduce.totalorderpartitioner.points";
/// Conf key: path of a partition file (a record file of split-point keys; Hadoop's name).
pub const TOTAL_ORDER_PATH_KEY: &str = "mapreduce.totalorderpartitioner.path";
/// Conf key: `true` asks the job driver to sample the input and set the split points before
/// the map tasks start (see [`prepare_total_order`]). A job sets it in its default conf.
pub const TOTAL_ORDER_SAMPLE_KEY: &str = "mapreduce.totalorderpartitioner.sample";
/// Conf key: how many map output keys to sample (default [`DEFAULT_SAMPLE_SIZE`]).
pub const TOTAL_ORDER_SAMPLE_SIZE_KEY: &str = "mapreduce.totalorderpartitioner.sample-size";
/// TeraSort's default sample size.
pub const DEFAULT_SAMPLE_SIZE: usize = 100_000;
/// Most splits the sampler reads from (evenly spaced over the input, like TeraSort's sampler).
pub const SAMPLE_MAX_SPLITS: usize = 10;

/// 64-bit FNV-1a: fixed, unseeded, identical in every process and run.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The default partitioner: FNV-1a of the key modulo the number of partitions (values ignored).
#[derive(Debug, Clone, Copy, Default)]
pub struct HashPartitioner;

impl Partitioner for HashPartitioner {
    fn partition(&self, key: &[u8], _value: &[u8], num_partitions: u32) -> u32 {
        if num_partitions <= 1 {
            return 0;
        }
        (fnv1a64(key) % u64::from(num_partitions)) as u32
    }
}

/// The default key order: lexicographic by unsigned bytes (`memcmp`).
#[derive(Debug, Clone, Copy, Default)]
pub struct BytewiseComparator;

impl KeyComparator for BytewiseComparator {
    fn compare(&self, a: &[u8], b: &[u8]) -> Ordering {
        a.cmp(b)
    }
}

/// Routes keys by range: with sorted split points `p[0] < p[1] < ...`, a key `k` goes to
/// partition `i` where `i` is the number of split points `<= k` (Hadoop's rule: a key equal to
/// a split point goes to the upper partition). Concatenating the sorted partitions in order
/// gives a globally sorted output.
#[derive(Clone)]
pub struct TotalOrderPartitioner {
    points: Vec<Vec<u8>>,
    comparator: Arc<dyn KeyComparator>,
}

impl std::fmt::Debug for TotalOrderPartitioner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TotalOrderPartitioner")
            .field("points", &self.points.len())
            .finish()
    }
}

impl TotalOrderPartitioner {
    /// A partitioner over `points` in bytewise order; they must be strictly increasing.
    pub fn new(points: Vec<Vec<u8>>) -> Result<Self, TaskError> {
        Self::with_comparator(points, Arc::new(BytewiseComparator))
    }

    /// A partitioner over `points` ordered by `comparator` (the job's key comparator).
    pub fn with_comparator(
        points: Vec<Vec<u8>>,
        comparator: Arc<dyn KeyComparator>,
    ) -> Result<Self, TaskError> {
        if let Some(i) = points
            .windows(2)
            .position(|w| comparator.compare(&w[0], &w[1]) != Ordering::Less)
        {
            return Err(TaskError::new(format!(
                "total-order split points must be strictly increasing (points {i} and {})",
                i + 1
            )));
        }
        Ok(TotalOrderPartitioner { points, comparator })
    }

    /// The split points.
    pub fn points(&self) -> &[Vec<u8>] {
        &self.points
    }

    /// Reads the split points from `conf`: inline ([`TOTAL_ORDER_POINTS_KEY`]) or else from the
    /// partition file at [`TOTAL_ORDER_PATH_KEY`]. Neither set is an error naming both keys.
    pub fn from_conf(conf: &JobConf) -> Result<Self, TaskError> {
        if let Some(text) = conf.get(TOTAL_ORDER_POINTS_KEY) {
            return Self::new(parse_points(text)?);
        }
        if let Some(path) = conf.get(TOTAL_ORDER_PATH_KEY) {
            return Self::new(read_partition_file(Path::new(path))?);
        }
        Err(TaskError::new(format!(
            "the total-order partitioner needs split points: set {TOTAL_ORDER_POINTS_KEY} or \
             {TOTAL_ORDER_PATH_KEY} (or {TOTAL_ORDER_SAMPLE_KEY}=true to sample the input)"
        )))
    }

    /// Stores the split points inline in `conf` (and clears any partition file path).
    pub fn store_in_conf(&self, conf: &mut JobConf) {
        conf.set(TOTAL_ORDER_POINTS_KEY, format_points(&self.points));
        conf.entries.remove(TOTAL_ORDER_PATH_KEY);
    }
}

impl Partitioner for TotalOrderPartitioner {
    fn partition(&self, key: &[u8], _value: &[u8], num_partitions: u32) -> u32 {
        let idx = self
            .points
            .partition_point(|p| self.comparator.compare(p, key) != Ordering::Greater);
        // Fewer points than reducers (a sample with few distinct keys) leaves upper reducers empty;
        // more points than reducers would be a driver bug, clamp rather than go out of range.
        (idx as u32).min(num_partitions.saturating_sub(1))
    }
}

/// Encodes split points for [`TOTAL_ORDER_POINTS_KEY`]: comma-separated lowercase hex.
pub fn format_points(points: &[Vec<u8>]) -> String {
    points
        .iter()
        .map(|p| to_hex(p))
        .collect::<Vec<_>>()
        .join(",")
}

/// Decodes [`format_points`] text. The empty string is zero points.
pub fn parse_points(text: &str) -> Result<Vec<Vec<u8>>, TaskError> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    text.split(',')
        .map(|h| {
            from_hex(h).ok_or_else(|| {
                TaskError::new(format!("{TOTAL_ORDER_POINTS_KEY}: bad hex key {h:?}"))
            })
        })
        .collect()
}

/// Picks `num_partitions - 1` split points from a sample of keys, evenly spaced in sorted order
/// (Hadoop's `InputSampler.writePartitionFile`), skipping duplicates: a sample with few distinct
/// keys yields fewer points. Uses bytewise order.
pub fn split_points_from_sample(mut sample: Vec<Vec<u8>>, num_partitions: u32) -> Vec<Vec<u8>> {
    sample.sort_unstable();
    let mut points: Vec<Vec<u8>> = Vec::new();
    if sample.is_empty() || num_partitions <= 1 {
        return points;
    }
    let step = sample.len() as f64 / f64::from(num_partitions);
    for i in 1..num_partitions {
        let k = ((step * f64::from(i)).round() as usize).min(sample.len() - 1);
        let candidate = &sample[k];
        if points.last().is_none_or(|last| last < candidate) {
            points.push(candidate.clone());
        } else if let Some(next) = sample[k..]
            .iter()
            .find(|s| points.last().is_some_and(|l| l < *s))
        {
            points.push(next.clone());
        }
    }
    points
}

/// Writes split points as a partition file (a record file of keys with empty values).
pub fn write_partition_file(path: &Path, points: &[Vec<u8>]) -> Result<(), TaskError> {
    let io = |e: std::io::Error| {
        TaskError::new(format!(
            "cannot write partition file {}: {e}",
            path.display()
        ))
    };
    let file = std::fs::File::create(path).map_err(io)?;
    let mut w = RecordFileWriter::new(std::io::BufWriter::new(file), RecordFileOptions::default())
        .map_err(|e| {
            TaskError::new(format!(
                "cannot write partition file {}: {e}",
                path.display()
            ))
        })?;
    for p in points {
        w.append(p, b"").map_err(|e| {
            TaskError::new(format!(
                "cannot write partition file {}: {e}",
                path.display()
            ))
        })?;
    }
    let sink = w.into_inner().map_err(|e| {
        TaskError::new(format!(
            "cannot write partition file {}: {e}",
            path.display()
        ))
    })?;
    sink.into_inner()
        .map_err(|e| io(e.into_error()))?
        .sync_all()
        .map_err(io)
}

/// Reads a partition file written by [`write_partition_file`].
pub fn read_partition_file(path: &Path) -> Result<Vec<Vec<u8>>, TaskError> {
    let err = |e: &dyn std::fmt::Display| {
        TaskError::new(format!(
            "cannot read partition file {}: {e}",
            path.display()
        ))
    };
    let file = std::fs::File::open(path).map_err(|e| err(&e))?;
    let len = file.metadata().map_err(|e| err(&e))?.len();
    let mut r =
        RecordFileReader::new(std::io::BufReader::new(file), 0, len).map_err(|e| err(&e))?;
    let mut points = Vec::new();
    while let Some((k, _)) = r.next_record().map_err(|e| err(&e))? {
        points.push(k.to_vec());
    }
    Ok(points)
}

/// Collects emitted keys during sampling, stopping at a bound.
struct KeyCollector<'a> {
    keys: &'a mut Vec<Vec<u8>>,
    limit: usize,
}

impl Emitter for KeyCollector<'_> {
    fn emit(&mut self, key: &[u8], _value: &[u8]) -> Result<(), TaskError> {
        if self.keys.len() < self.limit {
            self.keys.push(key.to_vec());
        }
        Ok(())
    }
}

/// A task context for driver-side work (sampling): the conf, counters dropped.
struct DriverContext<'a> {
    conf: &'a JobConf,
}

impl TaskContext for DriverContext<'_> {
    fn conf(&self) -> &JobConf {
        self.conf
    }
    fn incr_counter(&mut self, _group: &str, _name: &str, _amount: i64) {}
}

/// Samples up to `sample_size` map OUTPUT keys: runs the job's mapper over the first records of
/// up to [`SAMPLE_MAX_SPLITS`] evenly spaced splits (TeraSort's sampler, generalised so any job
/// whose map changes the key still gets boundaries in its output key space).
pub fn sample_map_output_keys<R, F>(
    job: &dyn JobDefinition,
    conf: &JobConf,
    format: &InputFormat,
    splits: &[InputSplit],
    sample_size: usize,
    open: F,
) -> Result<Vec<Vec<u8>>, TaskError>
where
    R: Read + Seek + Send,
    F: Fn(&InputSplit) -> Result<R, FormatError>,
{
    let mut keys = Vec::with_capacity(sample_size.min(1 << 20));
    if splits.is_empty() || sample_size == 0 {
        return Ok(keys);
    }
    let picks = splits.len().min(SAMPLE_MAX_SPLITS);
    let per_split = sample_size.div_ceil(picks);
    let mut ctx = DriverContext { conf };
    for i in 0..picks {
        let split = &splits[i * splits.len() / picks];
        let mut reader = format.open(open(split)?, split)?;
        let mut mapper = job.new_mapper(conf)?;
        let limit = (keys.len() + per_split).min(sample_size);
        let mut out = KeyCollector {
            keys: &mut keys,
            limit,
        };
        let mut records = 0;
        while records < per_split && out.keys.len() < limit {
            let Some((k, v)) = reader.next_record()? else {
                break;
            };
            mapper.map(k, v, &mut out, &mut ctx)?;
            records += 1;
        }
        mapper.cleanup(&mut out, &mut ctx)?;
    }
    Ok(keys)
}

/// The driver step of a total-order job: if `conf` asks for sampling ([`TOTAL_ORDER_SAMPLE_KEY`]
/// = `true`) and carries no split points yet, samples the map output keys of `splits`, picks
/// `num_partitions - 1` split points and stores them inline in `conf`, so every map task uses
/// identical boundaries. Returns whether it set points. Call once, before any map task starts.
pub fn prepare_total_order<R, F>(
    conf: &mut JobConf,
    job: &dyn JobDefinition,
    splits: &[InputSplit],
    num_partitions: u32,
    open: F,
) -> Result<bool, TaskError>
where
    R: Read + Seek + Send,
    F: Fn(&InputSplit) -> Result<R, FormatError>,
{
    if conf.get(TOTAL_ORDER_SAMPLE_KEY) != Some("true")
        || conf.get(TOTAL_ORDER_POINTS_KEY).is_some()
        || conf.get(TOTAL_ORDER_PATH_KEY).is_some()
    {
        return Ok(false);
    }
    let sample_size = match conf.get(TOTAL_ORDER_SAMPLE_SIZE_KEY) {
        None => DEFAULT_SAMPLE_SIZE,
        Some(v) => v.trim().parse().map_err(|_| {
            TaskError::new(format!(
                "{TOTAL_ORDER_SAMPLE_SIZE_KEY}={v:?} is not a count"
            ))
        })?,
    };
    let format = InputFormat::from_conf(conf)?;
    let sample = sample_map_output_keys(job, conf, &format, splits, sample_size, open)?;
    let points = split_points_from_sample(sample, num_partitions);
    conf.set(TOTAL_ORDER_POINTS_KEY, format_points(&points));
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_reference_vectors() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn hash_partitioner_is_stable_and_in_range() {
        let p = HashPartitioner;
        // Fixed expectations: a changed hash would route keys differently across versions.
        assert_eq!(
            p.partition(b"a", b"", 7),
            (0xaf63dc4c8601ec8cu64 % 7) as u32
        );
        assert_eq!(p.partition(b"anything", b"v", 1), 0);
        assert_eq!(p.partition(b"anything", b"v", 0), 0);
        let mut counts = [0u32; 4];
        for i in 0..4000 {
            let key = format!("word{i}");
            let part = p.partition(key.as_bytes(), b"", 4);
            assert_eq!(part, p.partition(key.as_bytes(), b"other", 4));
            counts[part as usize] += 1;
        }
        assert!(counts.iter().all(|&c| c > 800), "{counts:?}");
    }

    #[test]
    fn bytewise_is_unsigned_lexicographic() {
        let c = BytewiseComparator;
        assert_eq!(c.compare(b"a", b"b"), Ordering::Less);
        assert_eq!(c.compare(b"ab", b"a"), Ordering::Greater);
        assert_eq!(c.compare(b"\xff", b"\x01"), Ordering::Greater);
        assert_eq!(c.compare(b"", b""), Ordering::Equal);
    }

    #[test]
    fn total_order_routes_by_range() {
        let p = TotalOrderPartitioner::new(vec![b"g".to_vec(), b"p".to_vec()]).unwrap();
        assert_eq!(p.partition(b"a", b"", 3), 0);
        assert_eq!(p.partition(b"f\xff", b"", 3), 0);
        assert_eq!(p.partition(b"g", b"", 3), 1);
        assert_eq!(p.partition(b"o", b"", 3), 1);
        assert_eq!(p.partition(b"p", b"", 3), 2);
        assert_eq!(p.partition(b"zzz", b"", 3), 2);
        assert_eq!(p.partition(b"zzz", b"", 2), 1, "clamped");
        assert!(TotalOrderPartitioner::new(vec![b"b".to_vec(), b"a".to_vec()]).is_err());
        assert!(TotalOrderPartitioner::new(vec![b"a".to_vec(), b"a".to_vec()]).is_err());
    }

    #[test]
    fn total_order_partitions_concatenate_to_sorted_order() {
        let keys: Vec<Vec<u8>> = (0..2000u32)
            .map(|i| (i.wrapping_mul(2654435761)).to_be_bytes().to_vec())
            .collect();
        let points = split_points_from_sample(keys.iter().step_by(7).cloned().collect(), 5);
        assert_eq!(points.len(), 4);
        let p = TotalOrderPartitioner::new(points).unwrap();
        let mut parts: Vec<Vec<Vec<u8>>> = vec![Vec::new(); 5];
        for k in &keys {
            parts[p.partition(k, b"", 5) as usize].push(k.clone());
        }
        assert!(parts.iter().all(|p| p.len() > 200), "balanced enough");
        let mut concat = Vec::new();
        for mut part in parts {
            part.sort();
            concat.extend(part);
        }
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(concat, sorted);
    }

    #[test]
    fn sample_with_few_distinct_keys_gives_strictly_increasing_points() {
        let sample = vec![b"x".to_vec(); 50]
            .into_iter()
            .chain(vec![b"y".to_vec(); 3])
            .collect();
        let points = split_points_from_sample(sample, 8);
        assert_eq!(points, vec![b"x".to_vec(), b"y".to_vec()]);
        assert!(TotalOrderPartitioner::new(points).is_ok());
        assert!(split_points_from_sample(Vec::new(), 4).is_empty());
    }

    #[test]
    fn points_ship_through_conf_and_partition_file() {
        let points = vec![b"\x00bin".to_vec(), b"mid".to_vec(), b"\xff".to_vec()];
        let mut conf = JobConf::default();
        assert!(TotalOrderPartitioner::from_conf(&conf)
            .unwrap_err()
            .to_string()
            .contains(TOTAL_ORDER_POINTS_KEY));
        TotalOrderPartitioner::new(points.clone())
            .unwrap()
            .store_in_conf(&mut conf);
        assert_eq!(
            TotalOrderPartitioner::from_conf(&conf).unwrap().points(),
            &points[..]
        );

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("_partition.lst");
        write_partition_file(&file, &points).unwrap();
        let mut conf = JobConf::default();
        conf.set(TOTAL_ORDER_PATH_KEY, file.to_string_lossy());
        assert_eq!(
            TotalOrderPartitioner::from_conf(&conf).unwrap().points(),
            &points[..]
        );
        assert!(parse_points("zz").is_err());
        assert!(parse_points("").unwrap().is_empty());
    }

    /// A job whose map output key is the reversed input line: the sampler must see map
    /// OUTPUT keys, not input records.
    struct ReverseJob;
    struct ReverseMapper;
    impl super::super::Mapper for ReverseMapper {
        fn map(
            &mut self,
            _k: &[u8],
            v: &[u8],
            out: &mut dyn Emitter,
            _c: &mut dyn TaskContext,
        ) -> Result<(), TaskError> {
            let rev: Vec<u8> = v.iter().rev().copied().collect();
            out.emit(&rev, b"")
        }
    }
    impl JobDefinition for ReverseJob {
        fn new_mapper(&self, _c: &JobConf) -> Result<Box<dyn super::super::Mapper>, TaskError> {
            Ok(Box::new(ReverseMapper))
        }
        fn new_reducer(&self, _c: &JobConf) -> Result<Box<dyn super::super::Reducer>, TaskError> {
            Err(TaskError::new("unused"))
        }
        fn new_combiner(
            &self,
            _c: &JobConf,
        ) -> Result<Option<Box<dyn super::super::Reducer>>, TaskError> {
            Ok(None)
        }
        fn partitioner(&self, _c: &JobConf) -> Result<Option<Box<dyn Partitioner>>, TaskError> {
            Ok(None)
        }
        fn comparator(&self, _c: &JobConf) -> Result<Option<Box<dyn KeyComparator>>, TaskError> {
            Ok(None)
        }
    }

    #[test]
    fn driver_samples_map_output_keys_into_the_conf() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("input.txt");
        let text: String = (0..1000).map(|i| format!("{i:03}\n")).collect();
        std::fs::write(&path, &text).unwrap();
        let splits = crate::formats::compute_splits(&[(path.clone(), text.len() as u64)], 400);
        let open = |s: &InputSplit| -> Result<std::fs::File, FormatError> {
            Ok(std::fs::File::open(&s.path)?)
        };

        let mut conf = JobConf::default();
        assert!(
            !prepare_total_order(&mut conf, &ReverseJob, &splits, 4, open).unwrap(),
            "not requested"
        );
        conf.set(TOTAL_ORDER_SAMPLE_KEY, "true");
        conf.set(TOTAL_ORDER_SAMPLE_SIZE_KEY, "300");
        assert!(prepare_total_order(&mut conf, &ReverseJob, &splits, 4, open).unwrap());
        assert!(
            !prepare_total_order(&mut conf, &ReverseJob, &splits, 4, open).unwrap(),
            "points already set"
        );
        let p = TotalOrderPartitioner::from_conf(&conf).unwrap();
        assert_eq!(p.points().len(), 3);
        let mut counts = [0usize; 4];
        for i in 0..1000 {
            let rev: Vec<u8> = format!("{i:03}").bytes().rev().collect();
            counts[p.partition(&rev, b"", 4) as usize] += 1;
        }
        // Reversed keys start with the last digit: a sample of input keys would not balance them.
        assert!(counts.iter().all(|&c| c > 150), "{counts:?}");

        let keys = sample_map_output_keys(
            &ReverseJob,
            &conf,
            &InputFormat::default(),
            &splits,
            50,
            open,
        )
        .unwrap();
        assert_eq!(keys.len(), 50);
        assert!(keys.iter().all(|k| k.len() == 3));
    }
}
