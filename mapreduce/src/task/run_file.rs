//! On-disk format shared by spill runs, final map outputs and reduce-side merge files.
//!
//! A file is a sequence of segments, one per partition. A segment is a sequence of blocks; each
//! block is a 12-byte header (compressed length, raw length, crc32 of the compressed bytes, all
//! little-endian u32) followed by an lz4 block. Raw block contents are records encoded as
//! `varint(key_len) varint(value_len) key value`; a record never straddles two blocks.
//! The partition index (one [`SegmentIndexEntry`] per partition) lives next to the data file.

use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use super::error::{EngineError, EngineResult, IoContext};

/// Raw bytes gathered before a block is compressed: big enough for lz4 to find matches and to
/// amortise per-block costs, small enough to keep k-way merges' memory low.
pub const BLOCK_TARGET_RAW: usize = 128 * 1024;
/// Size of the per-block header.
const BLOCK_HEADER_LEN: usize = 12;
/// Buffered-write size for intermediate files.
pub const IO_BUFFER: usize = 1 << 20;
const INDEX_MAGIC: &[u8; 4] = b"SHX1";

/// Where one partition's segment lives in a file and how big it is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SegmentIndexEntry {
    /// Byte offset of the segment's first block.
    pub offset: u64,
    /// Uncompressed record bytes in the segment.
    pub raw_len: u64,
    /// Bytes the segment occupies on disk (headers included).
    pub compressed_len: u64,
    /// Records in the segment.
    pub records: u64,
}

/// Appends LEB128 `value` to `out`.
#[inline]
pub(crate) fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Reads a LEB128 value at `*pos`, advancing it; `None` when the bytes run out or overflow.
#[inline]
fn get_varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut result = 0u64;
    let mut shift = 0u32;
    loop {
        let byte = *buf.get(*pos)?;
        *pos += 1;
        result |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(result);
        }
        shift += 7;
        if shift > 63 {
            return None;
        }
    }
}

/// Writes partition segments of compressed, checksummed blocks.
pub struct RunWriter<W: Write> {
    out: W,
    position: u64,
    raw: Vec<u8>,
    compressed: Vec<u8>,
    segment_start: u64,
    segment_raw: u64,
    segment_records: u64,
    index: Vec<SegmentIndexEntry>,
}

impl<W: Write> RunWriter<W> {
    /// A writer whose first byte lands at `start_position` of the underlying file.
    pub fn new(out: W, start_position: u64) -> Self {
        RunWriter {
            out,
            position: start_position,
            raw: Vec::with_capacity(BLOCK_TARGET_RAW + 1024),
            compressed: Vec::new(),
            segment_start: start_position,
            segment_raw: 0,
            segment_records: 0,
            index: Vec::new(),
        }
    }

    /// Appends one record to the current segment.
    #[inline]
    pub fn append(&mut self, key: &[u8], value: &[u8]) -> io::Result<()> {
        if !self.raw.is_empty() && self.raw.len() + key.len() + value.len() + 20 > BLOCK_TARGET_RAW
        {
            self.flush_block()?;
        }
        put_varint(&mut self.raw, key.len() as u64);
        put_varint(&mut self.raw, value.len() as u64);
        self.raw.extend_from_slice(key);
        self.raw.extend_from_slice(value);
        self.segment_records += 1;
        Ok(())
    }

    fn flush_block(&mut self) -> io::Result<()> {
        if self.raw.is_empty() {
            return Ok(());
        }
        let raw_len = u32::try_from(self.raw.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "record larger than 4 GiB"))?;
        let max = lz4_flex::block::get_maximum_output_size(self.raw.len());
        if self.compressed.len() < max {
            self.compressed.resize(max, 0);
        }
        let n = lz4_flex::block::compress_into(&self.raw, &mut self.compressed)
            .map_err(|e| io::Error::other(format!("lz4 compression failed: {e}")))?;
        let body = &self.compressed[..n];
        let mut header = [0u8; BLOCK_HEADER_LEN];
        header[0..4].copy_from_slice(&(n as u32).to_le_bytes());
        header[4..8].copy_from_slice(&raw_len.to_le_bytes());
        header[8..12].copy_from_slice(&crc32fast::hash(body).to_le_bytes());
        self.out.write_all(&header)?;
        self.out.write_all(body)?;
        self.position += (BLOCK_HEADER_LEN + n) as u64;
        self.segment_raw += u64::from(raw_len);
        self.raw.clear();
        Ok(())
    }

    /// Closes the current segment (possibly empty) and records its index entry.
    pub fn finish_segment(&mut self) -> io::Result<SegmentIndexEntry> {
        self.flush_block()?;
        let entry = SegmentIndexEntry {
            offset: self.segment_start,
            raw_len: self.segment_raw,
            compressed_len: self.position - self.segment_start,
            records: self.segment_records,
        };
        self.index.push(entry);
        self.segment_start = self.position;
        self.segment_raw = 0;
        self.segment_records = 0;
        Ok(entry)
    }

    /// Bytes written so far, counting from `start_position`'s origin.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Flushes and returns the underlying writer and the index of every finished segment.
    pub fn finish(mut self) -> io::Result<(W, Vec<SegmentIndexEntry>)> {
        if !self.raw.is_empty() || self.segment_records > 0 {
            self.finish_segment()?;
        }
        self.out.flush()?;
        Ok((self.out, self.index))
    }
}

/// Creates `path` and returns a buffered run writer for it.
pub fn create_run_file(path: &Path) -> EngineResult<RunWriter<BufWriter<File>>> {
    let file = File::create(path).ctx(|| format!("creating {}", path.display()))?;
    Ok(RunWriter::new(BufWriter::with_capacity(IO_BUFFER, file), 0))
}

/// Writes a partition index file (magic, count, entries, crc32).
pub fn write_index(path: &Path, entries: &[SegmentIndexEntry]) -> EngineResult<()> {
    let mut buf = Vec::with_capacity(12 + entries.len() * 32);
    buf.extend_from_slice(INDEX_MAGIC);
    buf.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for e in entries {
        for v in [e.offset, e.raw_len, e.compressed_len, e.records] {
            buf.extend_from_slice(&v.to_le_bytes());
        }
    }
    let crc = crc32fast::hash(&buf);
    buf.extend_from_slice(&crc.to_le_bytes());
    std::fs::write(path, &buf).ctx(|| format!("writing index {}", path.display()))
}

/// Reads a partition index file written by [`write_index`], checking its crc.
pub fn read_index(path: &Path) -> EngineResult<Vec<SegmentIndexEntry>> {
    let buf = std::fs::read(path).ctx(|| format!("reading index {}", path.display()))?;
    let bad = |why: &str| EngineError::Corrupt(format!("index {}: {why}", path.display()));
    if buf.len() < 12 || &buf[0..4] != INDEX_MAGIC {
        return Err(bad("bad magic"));
    }
    let (body, crc) = buf.split_at(buf.len() - 4);
    if crc32fast::hash(body).to_le_bytes() != crc {
        return Err(bad("checksum mismatch"));
    }
    let count = u32::from_le_bytes([body[4], body[5], body[6], body[7]]) as usize;
    if body.len() != 8 + count * 32 {
        return Err(bad("wrong length"));
    }
    let word = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&body[i..i + 8]);
        u64::from_le_bytes(b)
    };
    Ok((0..count)
        .map(|i| {
            let base = 8 + i * 32;
            SegmentIndexEntry {
                offset: word(base),
                raw_len: word(base + 8),
                compressed_len: word(base + 16),
                records: word(base + 24),
            }
        })
        .collect())
}

/// Reads the records of one segment, one block in memory at a time, without per-record allocation.
pub struct SegmentReader {
    source: Box<dyn Read + Send>,
    remaining: u64,
    raw: Vec<u8>,
    compressed: Vec<u8>,
    pos: usize,
    key: (usize, usize),
    value: (usize, usize),
    bytes_read: u64,
    name: String,
}

impl SegmentReader {
    /// Reads a segment of `compressed_len` bytes from `source`; `name` appears in errors.
    pub fn new(source: Box<dyn Read + Send>, compressed_len: u64, name: String) -> Self {
        SegmentReader {
            source,
            remaining: compressed_len,
            raw: Vec::new(),
            compressed: Vec::new(),
            pos: 0,
            key: (0, 0),
            value: (0, 0),
            bytes_read: 0,
            name,
        }
    }

    /// Opens the segment described by `entry` in the file at `path`.
    pub fn open_file(path: &Path, entry: &SegmentIndexEntry) -> EngineResult<Self> {
        let mut file = File::open(path).ctx(|| format!("opening {}", path.display()))?;
        file.seek(SeekFrom::Start(entry.offset))
            .ctx(|| format!("seeking in {}", path.display()))?;
        Ok(Self::new(
            Box::new(file),
            entry.compressed_len,
            format!("{}@{}", path.display(), entry.offset),
        ))
    }

    /// Reads a segment held in memory.
    pub fn from_bytes(bytes: Vec<u8>, name: String) -> Self {
        let len = bytes.len() as u64;
        Self::new(Box::new(io::Cursor::new(bytes)), len, name)
    }

    /// Compressed bytes consumed so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    fn corrupt(&self, why: &str) -> EngineError {
        EngineError::Corrupt(format!("segment {}: {why}", self.name))
    }

    fn load_block(&mut self) -> EngineResult<bool> {
        if self.remaining == 0 {
            return Ok(false);
        }
        if self.remaining < BLOCK_HEADER_LEN as u64 {
            return Err(self.corrupt("truncated block header"));
        }
        let mut header = [0u8; BLOCK_HEADER_LEN];
        self.source
            .read_exact(&mut header)
            .ctx(|| format!("reading segment {}", self.name))?;
        let clen = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let rlen = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
        let crc = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
        if (clen + BLOCK_HEADER_LEN) as u64 > self.remaining
            || clen > lz4_flex::block::get_maximum_output_size(rlen)
        {
            return Err(self.corrupt("block length out of range"));
        }
        self.compressed.resize(clen, 0);
        self.source
            .read_exact(&mut self.compressed)
            .ctx(|| format!("reading segment {}", self.name))?;
        if crc32fast::hash(&self.compressed) != crc {
            return Err(self.corrupt("block checksum mismatch"));
        }
        self.raw.resize(rlen, 0);
        let n = lz4_flex::block::decompress_into(&self.compressed, &mut self.raw)
            .map_err(|e| self.corrupt(&format!("lz4: {e}")))?;
        if n != rlen {
            return Err(self.corrupt("block decompressed to the wrong length"));
        }
        self.remaining -= (clen + BLOCK_HEADER_LEN) as u64;
        self.bytes_read += (clen + BLOCK_HEADER_LEN) as u64;
        self.pos = 0;
        Ok(true)
    }

    /// Advances to the next record; `false` at the end of the segment.
    #[inline]
    pub fn next_record(&mut self) -> EngineResult<bool> {
        while self.pos >= self.raw.len() {
            if !self.load_block()? {
                self.raw.clear();
                self.pos = 0;
                return Ok(false);
            }
        }
        let mut pos = self.pos;
        let (klen, vlen) = match (
            get_varint(&self.raw, &mut pos),
            get_varint(&self.raw, &mut pos),
        ) {
            (Some(k), Some(v)) => (k as usize, v as usize),
            _ => return Err(self.corrupt("bad record header")),
        };
        let end = pos
            .checked_add(klen)
            .and_then(|p| p.checked_add(vlen))
            .filter(|e| *e <= self.raw.len())
            .ok_or_else(|| self.corrupt("record overruns its block"))?;
        self.key = (pos, pos + klen);
        self.value = (pos + klen, end);
        self.pos = end;
        Ok(true)
    }

    /// Key of the current record.
    #[inline]
    pub fn key(&self) -> &[u8] {
        &self.raw[self.key.0..self.key.1]
    }

    /// Value of the current record.
    #[inline]
    pub fn value(&self) -> &[u8] {
        &self.raw[self.value.0..self.value.1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_roundtrip_with_index_and_many_blocks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("run");
        let mut w = create_run_file(&path).expect("create");
        // Partition 0 spans many blocks, partition 1 is empty, partition 2 has one huge record.
        for i in 0..50_000u32 {
            w.append(format!("key{i:08}").as_bytes(), &i.to_le_bytes())
                .expect("append");
        }
        w.finish_segment().expect("seg0");
        w.finish_segment().expect("seg1");
        let big = vec![7u8; 3 * BLOCK_TARGET_RAW];
        w.append(b"big", &big).expect("append big");
        w.finish_segment().expect("seg2");
        let (_, index) = w.finish().expect("finish");
        assert_eq!(index.len(), 3);
        assert_eq!(index[0].records, 50_000);
        assert_eq!(index[1].records, 0);
        assert_eq!(index[1].compressed_len, 0);
        let ipath = dir.path().join("run.index");
        write_index(&ipath, &index).expect("write index");
        assert_eq!(read_index(&ipath).expect("read index"), index);

        let mut r = SegmentReader::open_file(&path, &index[0]).expect("open");
        let mut n = 0u32;
        while r.next_record().expect("next") {
            assert_eq!(r.key(), format!("key{n:08}").as_bytes());
            assert_eq!(r.value(), n.to_le_bytes());
            n += 1;
        }
        assert_eq!(n, 50_000);
        let mut r = SegmentReader::open_file(&path, &index[1]).expect("open");
        assert!(!r.next_record().expect("empty"));
        let mut r = SegmentReader::open_file(&path, &index[2]).expect("open");
        assert!(r.next_record().expect("big"));
        assert_eq!(r.value(), &big[..]);
        assert!(!r.next_record().expect("end"));
    }

    #[test]
    fn flipped_bit_is_reported_as_checksum_mismatch() {
        let mut w = RunWriter::new(Vec::new(), 0);
        w.append(b"k", b"v").expect("append");
        w.finish_segment().expect("seg");
        let (mut bytes, _) = w.finish().expect("finish");
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let mut r = SegmentReader::from_bytes(bytes, "test".into());
        let err = r.next_record().expect_err("must fail");
        assert!(err.to_string().contains("checksum"), "{err}");
    }
}
