//! Sheaf's binary record file: length-prefixed (key, value) records grouped in checksummed blocks,
//! like Hadoop's block-compressed `SequenceFile`.
//!
//! Layout (integers big-endian):
//! ```text
//! header  = magic "SHFRECF\x01" (8) | flags u32 (bit 0: lz4) | reserved u32 | sync marker (16)
//! block   = sync marker (16) | raw_len u32 | stored_len u32 | records u32 | crc32 u32 of the
//!           stored bytes | stored bytes (raw bytes, lz4-compressed when the flag is set)
//! raw     = record*; record = varint key_len | varint value_len | key | value
//! ```
//! The sync marker is random per file. A split reader scans from its start for the first sync
//! marker: a block belongs to the split containing the first byte of its marker, so each block
//! (and record) is read by exactly one split. A reader holds one block in memory at a time.

use super::{FormatError, Record, RecordReader, RecordWriter};
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::{Read, Seek, SeekFrom, Write};

/// First 8 bytes of every record file (the last byte is the format version).
pub const RECORD_FILE_MAGIC: &[u8; 8] = b"SHFRECF\x01";
/// Bytes before the first block.
pub const RECORD_FILE_HEADER_LEN: u64 = 32;
const SYNC_LEN: usize = 16;
const BLOCK_HEADER_LEN: usize = SYNC_LEN + 16;
const FLAG_LZ4: u32 = 1;
/// Largest block a reader accepts: bounds memory against a corrupt length field.
const MAX_BLOCK_BYTES: u32 = 1 << 30;

/// Options of a record file writer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordFileOptions {
    /// A block is closed once its raw bytes reach this size.
    pub block_size: usize,
    /// lz4-compress each block.
    pub compress: bool,
    /// The sync marker; `None` draws a random one (tests fix it for reproducible bytes).
    pub sync_marker: Option<[u8; 16]>,
}

impl Default for RecordFileOptions {
    fn default() -> Self {
        RecordFileOptions {
            block_size: 1 << 20,
            compress: false,
            sync_marker: None,
        }
    }
}

fn random_sync_marker() -> [u8; 16] {
    // RandomState is seeded from OS randomness; hashing the time and a counter makes two
    // writers in one process differ too.
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut out = [0u8; 16];
    for (i, half) in out.chunks_exact_mut(8).enumerate() {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(nanos);
        h.write_u64(n);
        h.write_u64(i as u64);
        h.write_u32(std::process::id());
        half.copy_from_slice(&h.finish().to_be_bytes());
    }
    out
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let b = *buf.get(*pos)?;
        *pos += 1;
        if shift > 63 {
            return None;
        }
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
        shift += 7;
    }
}

/// Writes a record file. Call [`RecordWriter::finish`] (or [`RecordFileWriter::into_inner`]) at the end.
pub struct RecordFileWriter<W: Write> {
    sink: Option<W>,
    opts: RecordFileOptions,
    sync: [u8; 16],
    raw: Vec<u8>,
    records_in_block: u32,
    compressed: Vec<u8>,
    written: u64,
}

impl<W: Write> RecordFileWriter<W> {
    /// Starts a file in `sink`, writing its header.
    pub fn new(mut sink: W, opts: RecordFileOptions) -> Result<Self, FormatError> {
        let sync = opts.sync_marker.unwrap_or_else(random_sync_marker);
        let mut header = Vec::with_capacity(RECORD_FILE_HEADER_LEN as usize);
        header.extend_from_slice(RECORD_FILE_MAGIC);
        header.extend_from_slice(&(if opts.compress { FLAG_LZ4 } else { 0 }).to_be_bytes());
        header.extend_from_slice(&0u32.to_be_bytes());
        header.extend_from_slice(&sync);
        sink.write_all(&header)?;
        Ok(RecordFileWriter {
            sink: Some(sink),
            raw: Vec::with_capacity(opts.block_size.min(16 << 20) + 64),
            opts,
            sync,
            records_in_block: 0,
            compressed: Vec::new(),
            written: RECORD_FILE_HEADER_LEN,
        })
    }

    /// Appends one record.
    pub fn append(&mut self, key: &[u8], value: &[u8]) -> Result<(), FormatError> {
        if self.sink.is_none() {
            return Err(FormatError::Io(std::io::Error::other(
                "record file already finished",
            )));
        }
        put_varint(&mut self.raw, key.len() as u64);
        put_varint(&mut self.raw, value.len() as u64);
        self.raw.extend_from_slice(key);
        self.raw.extend_from_slice(value);
        self.records_in_block += 1;
        if self.raw.len() >= self.opts.block_size || self.records_in_block == u32::MAX {
            self.flush_block()?;
        }
        Ok(())
    }

    fn flush_block(&mut self) -> Result<(), FormatError> {
        if self.records_in_block == 0 {
            return Ok(());
        }
        let Some(sink) = self.sink.as_mut() else {
            return Ok(());
        };
        let too_big =
            || FormatError::TooLong(format!("record file block exceeds {MAX_BLOCK_BYTES} bytes"));
        let raw_len = u32::try_from(self.raw.len())
            .ok()
            .filter(|&l| l <= MAX_BLOCK_BYTES)
            .ok_or_else(too_big)?;
        let stored: &[u8] = if self.opts.compress {
            self.compressed = lz4_flex::block::compress(&self.raw);
            &self.compressed
        } else {
            &self.raw
        };
        let stored_len = u32::try_from(stored.len()).map_err(|_| too_big())?;
        let mut header = [0u8; BLOCK_HEADER_LEN];
        header[..SYNC_LEN].copy_from_slice(&self.sync);
        header[16..20].copy_from_slice(&raw_len.to_be_bytes());
        header[20..24].copy_from_slice(&stored_len.to_be_bytes());
        header[24..28].copy_from_slice(&self.records_in_block.to_be_bytes());
        header[28..32].copy_from_slice(&crc32fast::hash(stored).to_be_bytes());
        sink.write_all(&header)?;
        sink.write_all(stored)?;
        self.written += (BLOCK_HEADER_LEN + stored.len()) as u64;
        self.raw.clear();
        self.records_in_block = 0;
        Ok(())
    }

    /// Writes the last block, flushes, and returns the sink.
    pub fn into_inner(mut self) -> Result<W, FormatError> {
        self.flush_block()?;
        let mut sink = self.sink.take().ok_or_else(|| {
            FormatError::Io(std::io::Error::other("record file already finished"))
        })?;
        sink.flush()?;
        Ok(sink)
    }
}

impl<W: Write + Send> RecordWriter for RecordFileWriter<W> {
    fn write(&mut self, key: &[u8], value: &[u8]) -> Result<(), FormatError> {
        self.append(key, value)
    }

    fn finish(&mut self) -> Result<(), FormatError> {
        self.flush_block()?;
        if let Some(mut sink) = self.sink.take() {
            sink.flush()?;
        }
        Ok(())
    }

    fn bytes_written(&self) -> u64 {
        self.written + self.raw.len() as u64
    }
}

/// Reads the records of the blocks whose sync marker starts inside a split.
pub struct RecordFileReader<R> {
    src: R,
    sync: [u8; 16],
    compressed: bool,
    /// File offset of the next block header, once the first block of the split is found.
    next_block: Option<u64>,
    start: u64,
    end: u64,
    done: bool,
    stored: Vec<u8>,
    raw: Vec<u8>,
    raw_pos: usize,
    records_left: u32,
    consumed: u64,
}

impl<R: Read + Seek> RecordFileReader<R> {
    /// A reader of the blocks starting in `[start, start + length)` of `src`.
    pub fn new(mut src: R, start: u64, length: u64) -> Result<Self, FormatError> {
        src.seek(SeekFrom::Start(0))?;
        let mut header = [0u8; RECORD_FILE_HEADER_LEN as usize];
        let got = read_full(&mut src, &mut header)?;
        let mut reader = RecordFileReader {
            src,
            sync: [0; 16],
            compressed: false,
            next_block: None,
            start,
            end: start.saturating_add(length),
            done: false,
            stored: Vec::new(),
            raw: Vec::new(),
            raw_pos: 0,
            records_left: 0,
            consumed: 0,
        };
        if got == 0 {
            // An empty file holds no records (like an empty text file).
            reader.done = true;
            return Ok(reader);
        }
        if got < header.len() || &header[..8] != RECORD_FILE_MAGIC {
            return Err(FormatError::Corrupt(format!(
                "not a sheaf record file (expected magic {:?})",
                String::from_utf8_lossy(RECORD_FILE_MAGIC)
            )));
        }
        let flags = u32::from_be_bytes([header[8], header[9], header[10], header[11]]);
        if flags & !FLAG_LZ4 != 0 {
            return Err(FormatError::Corrupt(format!(
                "unknown record file flags {flags:#x}"
            )));
        }
        reader.compressed = flags & FLAG_LZ4 != 0;
        reader.sync.copy_from_slice(&header[16..32]);
        Ok(reader)
    }

    /// Finds the offset of the first sync marker at or after the split start (and after the
    /// header), or `None` if there is none before the split end.
    fn find_first_block(&mut self) -> Result<Option<u64>, FormatError> {
        let mut pos = self.start.max(RECORD_FILE_HEADER_LEN);
        if pos >= self.end {
            return Ok(None);
        }
        self.src.seek(SeekFrom::Start(pos))?;
        let finder = memchr::memmem::Finder::new(&self.sync);
        let mut window: Vec<u8> = Vec::with_capacity(64 << 10);
        let mut chunk = vec![0u8; 64 << 10];
        loop {
            let n = read_full(&mut self.src, &mut chunk)?;
            window.extend_from_slice(&chunk[..n]);
            if let Some(i) = finder.find(&window) {
                let found = pos + i as u64;
                return Ok((found < self.end).then_some(found));
            }
            if n == 0 {
                return Ok(None);
            }
            // Keep the last SYNC_LEN - 1 bytes: a marker may straddle two chunks.
            let keep = window.len().min(SYNC_LEN - 1);
            let drop = window.len() - keep;
            window.drain(..drop);
            pos += drop as u64;
            if pos >= self.end {
                return Ok(None);
            }
        }
    }

    /// Loads the next block of the split; `false` when the split has no more blocks.
    fn load_block(&mut self) -> Result<bool, FormatError> {
        let offset = match self.next_block {
            Some(o) => o,
            None => match self.find_first_block()? {
                Some(o) => o,
                None => return Ok(false),
            },
        };
        if offset >= self.end {
            return Ok(false);
        }
        self.src.seek(SeekFrom::Start(offset))?;
        let mut header = [0u8; BLOCK_HEADER_LEN];
        let got = read_full(&mut self.src, &mut header)?;
        if got == 0 {
            return Ok(false);
        }
        if got < BLOCK_HEADER_LEN || header[..SYNC_LEN] != self.sync {
            return Err(FormatError::Corrupt(format!(
                "no block header at byte offset {offset}"
            )));
        }
        let field =
            |i: usize| u32::from_be_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
        let (raw_len, stored_len, records, crc) = (field(16), field(20), field(24), field(28));
        if raw_len > MAX_BLOCK_BYTES || stored_len > MAX_BLOCK_BYTES {
            return Err(FormatError::Corrupt(format!(
                "block at byte offset {offset} has an impossible length"
            )));
        }
        self.stored.resize(stored_len as usize, 0);
        if read_full(&mut self.src, &mut self.stored)? < stored_len as usize {
            return Err(FormatError::Corrupt(format!(
                "block at byte offset {offset} is truncated"
            )));
        }
        if crc32fast::hash(&self.stored) != crc {
            return Err(FormatError::Corrupt(format!(
                "block at byte offset {offset} fails its crc32 check"
            )));
        }
        if self.compressed {
            self.raw.resize(raw_len as usize, 0);
            let n = lz4_flex::block::decompress_into(&self.stored, &mut self.raw).map_err(|e| {
                FormatError::Corrupt(format!(
                    "block at byte offset {offset} does not decompress: {e}"
                ))
            })?;
            if n != raw_len as usize {
                return Err(FormatError::Corrupt(format!(
                    "block at byte offset {offset} has a wrong length"
                )));
            }
        } else {
            std::mem::swap(&mut self.raw, &mut self.stored);
            if self.raw.len() != raw_len as usize {
                return Err(FormatError::Corrupt(format!(
                    "block at byte offset {offset} has a wrong length"
                )));
            }
        }
        self.raw_pos = 0;
        self.records_left = records;
        let block_bytes = (BLOCK_HEADER_LEN as u64) + u64::from(stored_len);
        self.next_block = Some(offset + block_bytes);
        self.consumed += block_bytes;
        Ok(true)
    }
}

fn read_full<R: Read>(src: &mut R, buf: &mut [u8]) -> Result<usize, FormatError> {
    let mut filled = 0;
    while filled < buf.len() {
        match src.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(filled)
}

impl<R: Read + Seek> RecordReader for RecordFileReader<R> {
    fn next_record(&mut self) -> Result<Option<Record<'_>>, FormatError> {
        while self.records_left == 0 {
            if self.done || !self.load_block()? {
                self.done = true;
                return Ok(None);
            }
        }
        let corrupt = || FormatError::Corrupt("record runs past the end of its block".into());
        let mut p = self.raw_pos;
        let klen = get_varint(&self.raw, &mut p).ok_or_else(corrupt)?;
        let vlen = get_varint(&self.raw, &mut p).ok_or_else(corrupt)?;
        let kend = usize::try_from(klen)
            .ok()
            .and_then(|k| p.checked_add(k))
            .ok_or_else(corrupt)?;
        let vend = usize::try_from(vlen)
            .ok()
            .and_then(|v| kend.checked_add(v))
            .ok_or_else(corrupt)?;
        if vend > self.raw.len() {
            return Err(corrupt());
        }
        self.raw_pos = vend;
        self.records_left -= 1;
        Ok(Some((&self.raw[p..kend], &self.raw[kend..vend])))
    }

    fn bytes_consumed(&self) -> u64 {
        self.consumed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn records(n: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
        (0..n)
            .map(|i| {
                let key = format!("key{i:05}").into_bytes();
                // Values of varying length, including empty and non-UTF-8 bytes.
                let value: Vec<u8> = (0..(i * 7) % 40).map(|j| (i * 31 + j) as u8).collect();
                (key, value)
            })
            .collect()
    }

    fn write_file(recs: &[(Vec<u8>, Vec<u8>)], block_size: usize, compress: bool) -> Vec<u8> {
        let opts = RecordFileOptions {
            block_size,
            compress,
            sync_marker: None,
        };
        let mut w = RecordFileWriter::new(Vec::new(), opts).unwrap();
        for (k, v) in recs {
            w.append(k, v).unwrap();
        }
        w.into_inner().unwrap()
    }

    fn read_split(data: &[u8], start: u64, len: u64) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut r = RecordFileReader::new(Cursor::new(data), start, len).unwrap();
        let mut out = Vec::new();
        while let Some((k, v)) = r.next_record().unwrap() {
            out.push((k.to_vec(), v.to_vec()));
        }
        out
    }

    #[test]
    fn round_trip_plain_and_lz4() {
        let recs = records(500);
        for compress in [false, true] {
            let data = write_file(&recs, 300, compress);
            assert_eq!(read_split(&data, 0, data.len() as u64), recs);
        }
    }

    #[test]
    fn every_two_way_split_reads_each_record_once() {
        let recs = records(60);
        for compress in [false, true] {
            let data = write_file(&recs, 100, compress);
            let n = data.len() as u64;
            for cut in 0..=n {
                let mut got = read_split(&data, 0, cut);
                got.extend(read_split(&data, cut, n - cut));
                assert_eq!(got, recs, "compress={compress} cut={cut}");
            }
        }
    }

    #[test]
    fn many_small_splits_read_each_record_once() {
        let recs = records(300);
        let data = write_file(&recs, 200, false);
        let n = data.len() as u64;
        for size in [1u64, 7, 33, 64, 1000] {
            let mut got = Vec::new();
            let mut start = 0;
            while start < n {
                let len = size.min(n - start);
                got.extend(read_split(&data, start, len));
                start += len;
            }
            assert_eq!(got, recs, "split size {size}");
        }
    }

    #[test]
    fn empty_file_and_header_only_file_have_no_records() {
        assert!(read_split(&[], 0, 0).is_empty());
        let data = write_file(&[], 100, false);
        assert_eq!(data.len() as u64, RECORD_FILE_HEADER_LEN);
        assert!(read_split(&data, 0, data.len() as u64).is_empty());
    }

    #[test]
    fn corruption_is_detected() {
        let recs = records(50);
        let mut data = write_file(&recs, 1 << 20, false);
        let last = data.len() - 1;
        data[last] ^= 0xff;
        let mut r = RecordFileReader::new(Cursor::new(&data), 0, data.len() as u64).unwrap();
        let err = r.next_record().unwrap_err().to_string();
        assert!(err.contains("crc32"), "{err}");
        assert!(RecordFileReader::new(
            Cursor::new(b"not a record file at all, no".to_vec()),
            0,
            10
        )
        .is_err());
    }

    #[test]
    fn varint_round_trip() {
        for v in [0u64, 1, 127, 128, 300, 1 << 35, u64::MAX] {
            let mut buf = Vec::new();
            put_varint(&mut buf, v);
            let mut p = 0;
            assert_eq!(get_varint(&buf, &mut p), Some(v));
            assert_eq!(p, buf.len());
        }
    }
}
