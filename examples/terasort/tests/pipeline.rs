//! TeraGen → sample → map → total-order partition → sort → raw output → TeraValidate, run
//! in-process with the crate's formats and partitioner (the engine's own runs are its tests).

use sheaf_mapreduce::api::partition::{prepare_total_order, TOTAL_ORDER_POINTS_KEY};
use sheaf_mapreduce::api::{Emitter, JobConf, JobDefinition, TaskContext, TaskError};
use sheaf_mapreduce::formats::{compute_splits, FormatError, InputFormat, OutputFormat};
use std::fs::File;
use std::path::{Path, PathBuf};
use terasort::{teragen, teravalidate, TeraError, TeraSortJob};

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

fn open(s: &sheaf_mapreduce::formats::InputSplit) -> Result<File, FormatError> {
    Ok(File::open(&s.path)?)
}

/// Runs the job over `input` with `reducers` partitions, returning the part files in order.
fn run_terasort(input: &Path, out_dir: &Path, reducers: u32) -> Vec<PathBuf> {
    let job = TeraSortJob;
    let mut conf = job.default_conf();
    conf.set("mapreduce.totalorderpartitioner.sample-size", "1000");
    let size = std::fs::metadata(input).unwrap().len();
    // A split size that is not a multiple of 100 puts records across split boundaries.
    let splits = compute_splits(&[(input.to_path_buf(), size)], 77_777);
    assert!(splits.len() > 3);
    assert!(prepare_total_order(&mut conf, &job, &splits, reducers, open).unwrap());
    assert!(conf.get(TOTAL_ORDER_POINTS_KEY).is_some());
    let partitioner = job.partitioner(&conf).unwrap().unwrap();
    let format = InputFormat::from_conf(&conf).unwrap();
    let mut parts: Vec<Vec<(Vec<u8>, Vec<u8>)>> = vec![Vec::new(); reducers as usize];
    let mut ctx = Ctx(conf.clone());
    for split in &splits {
        let mut reader = format.open(open(split).unwrap(), split).unwrap();
        let mut mapper = job.new_mapper(&conf).unwrap();
        let mut out = Collect(Vec::new());
        while let Some((k, v)) = reader.next_record().unwrap() {
            mapper.map(k, v, &mut out, &mut ctx).unwrap();
        }
        mapper.cleanup(&mut out, &mut ctx).unwrap();
        for (k, v) in out.0 {
            parts[partitioner.partition(&k, &v, reducers) as usize].push((k, v));
        }
    }
    let out_format = OutputFormat::from_conf(&conf).unwrap();
    let mut files = Vec::new();
    for (i, mut part) in parts.into_iter().enumerate() {
        assert!(
            !part.is_empty(),
            "partition {i} is empty: the sample should balance partitions"
        );
        part.sort_by(|a, b| a.0.cmp(&b.0));
        let path = out_dir.join(format!("part-r-{i:05}"));
        let mut w = out_format.create(File::create(&path).unwrap()).unwrap();
        for (k, v) in &part {
            w.write(k, v).unwrap();
        }
        w.finish().unwrap();
        files.push(path);
    }
    files
}

#[test]
fn sorted_output_passes_teravalidate_and_tampering_fails_it() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input");
    teragen(&input, 20_000).unwrap();
    assert_eq!(std::fs::metadata(&input).unwrap().len(), 2_000_000);
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let parts = run_terasort(&input, &out, 3);
    let inputs = vec![input];
    let summary = teravalidate(&inputs, &parts).unwrap();
    assert_eq!(summary.records, 20_000);

    // Parts in the wrong order break the global order.
    let swapped = vec![parts[1].clone(), parts[0].clone(), parts[2].clone()];
    assert!(matches!(
        teravalidate(&inputs, &swapped),
        Err(TeraError::OutOfOrder { .. })
    ));

    // A lost record changes count and checksum.
    let data = std::fs::read(&parts[2]).unwrap();
    std::fs::write(&parts[2], &data[..data.len() - 100]).unwrap();
    let err = teravalidate(&inputs, &parts).unwrap_err();
    assert!(matches!(err, TeraError::Mismatch { .. }), "{err}");

    // A changed byte keeps the count but not the checksum.
    let mut data = data;
    data[150] ^= 1;
    std::fs::write(&parts[2], &data).unwrap();
    let err = teravalidate(&inputs, &parts).unwrap_err();
    assert!(err.to_string().contains("does not match"), "{err}");
}
