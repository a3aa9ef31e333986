//! Input splits: byte ranges of input files, one per map task.

use std::path::PathBuf;

/// A byte range `[start, start + length)` of one input file, read by one map task.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct InputSplit {
    /// The file.
    pub path: PathBuf,
    /// First byte of the range.
    pub start: u64,
    /// Bytes in the range.
    pub length: u64,
}

impl InputSplit {
    /// A split of `path` covering `[start, start + length)`.
    pub fn new(path: impl Into<PathBuf>, start: u64, length: u64) -> Self {
        InputSplit {
            path: path.into(),
            start,
            length,
        }
    }

    /// One past the last byte of the range.
    pub fn end(&self) -> u64 {
        self.start.saturating_add(self.length)
    }
}

/// Hadoop's `SPLIT_SLOP`: the last split of a file may be up to 10% larger than the split size
/// rather than leaving a tiny tail split.
const SPLIT_SLOP: f64 = 1.1;

/// Cuts each `(file, size)` into splits of `split_size` bytes (the last one up to 10% larger, as
/// in Hadoop's `FileInputFormat`). Empty files produce no split. A `split_size` of 0 is read as 1.
pub fn compute_splits(files: &[(PathBuf, u64)], split_size: u64) -> Vec<InputSplit> {
    let split_size = split_size.max(1);
    let mut splits = Vec::new();
    for (path, size) in files {
        let mut remaining = *size;
        let mut start = 0u64;
        while remaining as f64 / split_size as f64 > SPLIT_SLOP {
            splits.push(InputSplit::new(path.clone(), start, split_size));
            start += split_size;
            remaining -= split_size;
        }
        if remaining > 0 {
            splits.push(InputSplit::new(path.clone(), start, remaining));
        }
    }
    splits
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn splits_cover_each_file_exactly() {
        let files = vec![
            (PathBuf::from("a"), 1000),
            (PathBuf::from("empty"), 0),
            (PathBuf::from("b"), 105),
            (PathBuf::from("c"), 111),
        ];
        let splits = compute_splits(&files, 100);
        for (path, size) in &files {
            let mine: Vec<_> = splits.iter().filter(|s| &s.path == path).collect();
            let mut pos = 0;
            for s in &mine {
                assert_eq!(s.start, pos);
                pos = s.end();
            }
            assert_eq!(pos, *size, "{path:?}");
        }
        assert_eq!(
            splits.iter().filter(|s| s.path == Path::new("a")).count(),
            10
        );
        // 105 bytes is within the 10% slop: one split; 111 is not: two.
        assert_eq!(
            splits.iter().filter(|s| s.path == Path::new("b")).count(),
            1
        );
        assert_eq!(
            splits.iter().filter(|s| s.path == Path::new("c")).count(),
            2
        );
        assert!(splits.iter().all(|s| s.path != Path::new("empty")));
    }

    #[test]
    fn zero_split_size_does_not_loop() {
        let splits = compute_splits(&[(PathBuf::from("x"), 3)], 0);
        assert_eq!(splits.len(), 3);
    }
}
