//! TeraValidate: checks that sorted output is in global order and holds exactly the input's
//! records (same count, same order-independent checksum).

use crate::{KEY_LEN, RECORD_LEN};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Why validation failed.
#[derive(Debug, thiserror::Error)]
pub enum TeraError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file's size is not a multiple of the record size.
    #[error("{path}: {len} bytes is not a whole number of {RECORD_LEN}-byte records")]
    PartialRecord {
        /// The file.
        path: PathBuf,
        /// Its length.
        len: u64,
    },
    /// A record's key is smaller than the one before it.
    #[error("{path}: record {index} is out of order (key {key:?} after {previous:?})")]
    OutOfOrder {
        /// The file holding the offending record.
        path: PathBuf,
        /// Its index within that file.
        index: u64,
        /// Its key.
        key: String,
        /// The key before it (possibly in the previous file).
        previous: String,
    },
    /// Output and input differ.
    #[error("output does not match input: input {input}, output {output}")]
    Mismatch {
        /// Input summary.
        input: TeraSummary,
        /// Output summary.
        output: TeraSummary,
    },
}

/// Record count and checksum (sum of crc32 of every record, order-independent like Hadoop's).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TeraSummary {
    /// Records seen.
    pub records: u64,
    /// Wrapping sum of the crc32 of each 100-byte record.
    pub checksum: u64,
}

impl std::fmt::Display for TeraSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} records, checksum {:016x}",
            self.records, self.checksum
        )
    }
}

/// Reads every record of `files` in order, calling `f(path, index_in_file, record)`.
fn for_each_record(
    files: &[PathBuf],
    mut f: impl FnMut(&Path, u64, &[u8]) -> Result<(), TeraError>,
) -> Result<(), TeraError> {
    let mut buf = vec![0u8; RECORD_LEN * 16384];
    for path in files {
        let io = |source| TeraError::Io {
            path: path.clone(),
            source,
        };
        let mut file = std::fs::File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if len % RECORD_LEN as u64 != 0 {
            return Err(TeraError::PartialRecord {
                path: path.clone(),
                len,
            });
        }
        let mut index = 0u64;
        loop {
            let mut filled = 0;
            while filled < buf.len() {
                match file.read(&mut buf[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(io(e)),
                }
            }
            if filled % RECORD_LEN != 0 {
                // The file changed under us.
                return Err(TeraError::PartialRecord {
                    path: path.clone(),
                    len,
                });
            }
            for rec in buf[..filled].chunks_exact(RECORD_LEN) {
                f(path, index, rec)?;
                index += 1;
            }
            if filled < buf.len() {
                break;
            }
        }
    }
    Ok(())
}

/// Count and checksum of the records of `files` (any order).
pub fn checksum_files(files: &[PathBuf]) -> Result<TeraSummary, TeraError> {
    let mut sum = TeraSummary::default();
    for_each_record(files, |_, _, rec| {
        sum.records += 1;
        sum.checksum = sum.checksum.wrapping_add(u64::from(crc32fast::hash(rec)));
        Ok(())
    })?;
    Ok(sum)
}

/// Validates sorted `output` files (the part files, in partition order) against `input` files:
/// keys never decrease across the concatenation, and count and checksum equal the input's.
/// Returns the output summary.
pub fn teravalidate(input: &[PathBuf], output: &[PathBuf]) -> Result<TeraSummary, TeraError> {
    let expected = checksum_files(input)?;
    let mut sum = TeraSummary::default();
    let mut previous = [0u8; KEY_LEN];
    let mut have_previous = false;
    for_each_record(output, |path, index, rec| {
        let key = &rec[..KEY_LEN];
        if have_previous && key < &previous[..] {
            return Err(TeraError::OutOfOrder {
                path: path.to_path_buf(),
                index,
                key: String::from_utf8_lossy(key).into_owned(),
                previous: String::from_utf8_lossy(&previous).into_owned(),
            });
        }
        previous.copy_from_slice(key);
        have_previous = true;
        sum.records += 1;
        sum.checksum = sum.checksum.wrapping_add(u64::from(crc32fast::hash(rec)));
        Ok(())
    })?;
    if sum != expected {
        return Err(TeraError::Mismatch {
            input: expected,
            output: sum,
        });
    }
    Ok(sum)
}
