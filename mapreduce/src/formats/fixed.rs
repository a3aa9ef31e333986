//! Fixed-length binary records (Hadoop's `FixedLengthInputFormat`).

use super::{FormatError, Record, RecordReader};
use crate::api::codec::DecimalBuf;
use std::io::{BufReader, Read, Seek, SeekFrom};

/// Reads the fixed-length records starting in a split: record `i` starts at `i * record_length`,
/// so the first record of a split is the first multiple of the length at or after its start.
/// Key = record offset as decimal text, value = the record bytes.
pub struct FixedLengthRecordReader<R> {
    src: BufReader<R>,
    record: Vec<u8>,
    /// File offset of the next record.
    pos: u64,
    start: u64,
    end: u64,
    key: DecimalBuf,
}

impl<R: Read + Seek> FixedLengthRecordReader<R> {
    /// A reader of the `record_length`-byte records starting in `[start, start + length)`.
    pub fn new(src: R, start: u64, length: u64, record_length: usize) -> Result<Self, FormatError> {
        if record_length == 0 {
            return Err(FormatError::Config(
                "fixed record length must be > 0".into(),
            ));
        }
        let rl = record_length as u64;
        let first = start.div_ceil(rl) * rl;
        let mut src = BufReader::with_capacity(1 << 20, src);
        src.seek(SeekFrom::Start(first))?;
        Ok(FixedLengthRecordReader {
            src,
            record: vec![0; record_length],
            pos: first,
            start: first,
            end: start.saturating_add(length),
            key: DecimalBuf::new(),
        })
    }
}

impl<R: Read + Seek> RecordReader for FixedLengthRecordReader<R> {
    fn next_record(&mut self) -> Result<Option<Record<'_>>, FormatError> {
        if self.pos >= self.end {
            return Ok(None);
        }
        let mut filled = 0;
        while filled < self.record.len() {
            match self.src.read(&mut self.record[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        if filled == 0 {
            return Ok(None);
        }
        if filled < self.record.len() {
            return Err(FormatError::Corrupt(format!(
                "partial record at byte offset {}: {filled} of {} bytes",
                self.pos,
                self.record.len()
            )));
        }
        let offset = self.pos;
        self.pos += self.record.len() as u64;
        Ok(Some((self.key.format_u64(offset), &self.record)))
    }

    fn bytes_consumed(&self) -> u64 {
        self.pos - self.start
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn read(
        data: &[u8],
        start: u64,
        len: u64,
        rl: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, FormatError> {
        let mut r = FixedLengthRecordReader::new(Cursor::new(data.to_vec()), start, len, rl)?;
        let mut out = Vec::new();
        while let Some((k, v)) = r.next_record()? {
            out.push((std::str::from_utf8(k).unwrap().parse().unwrap(), v.to_vec()));
        }
        Ok(out)
    }

    #[test]
    fn every_split_point_reads_each_record_once() {
        let data: Vec<u8> = (0..70u8).collect();
        let expected: Vec<(u64, Vec<u8>)> = data
            .chunks(7)
            .enumerate()
            .map(|(i, c)| (i as u64 * 7, c.to_vec()))
            .collect();
        let n = data.len() as u64;
        for cut in 0..=n {
            let mut got = read(&data, 0, cut, 7).unwrap();
            got.extend(read(&data, cut, n - cut, 7).unwrap());
            assert_eq!(got, expected, "cut {cut}");
        }
    }

    #[test]
    fn partial_trailing_record_is_an_error() {
        let data = vec![1u8; 10];
        let err = read(&data, 0, 10, 4).unwrap_err().to_string();
        assert!(err.contains("partial record at byte offset 8"), "{err}");
    }
}
