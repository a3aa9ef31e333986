//! Line-oriented input: `TextInputFormat` and `KeyValueTextInputFormat` readers.

use super::{FormatError, Record, RecordReader};
use crate::api::codec::DecimalBuf;
use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;

/// Initial read buffer: big enough that refills are rare, small enough per task.
const INITIAL_BUFFER: usize = 256 << 10;

/// Streams lines out of a source, tracking file offsets. A line ends at `\n`, `\r\n` or a lone
/// `\r` (Hadoop's `LineReader` default); the terminator is not part of the line.
struct LineSource<R> {
    src: R,
    buf: Vec<u8>,
    /// Start of unconsumed bytes in `buf`.
    pos: usize,
    /// End of valid bytes in `buf`.
    len: usize,
    eof: bool,
    /// File offset of `buf[pos]`.
    file_pos: u64,
    max_line_length: usize,
}

impl<R: Read> LineSource<R> {
    fn new(src: R, file_pos: u64, max_line_length: usize) -> Self {
        LineSource {
            src,
            buf: vec![0; INITIAL_BUFFER],
            pos: 0,
            len: 0,
            eof: false,
            file_pos,
            max_line_length,
        }
    }

    /// Reads more bytes, first moving unconsumed bytes to the front and growing the buffer when
    /// it is full. Returns how far the buffer's contents moved left.
    fn refill(&mut self) -> Result<usize, FormatError> {
        let shift = self.pos;
        if shift > 0 {
            self.buf.copy_within(self.pos..self.len, 0);
            self.len -= shift;
            self.pos = 0;
        }
        if self.len == self.buf.len() {
            let new_len = self.buf.len() * 2;
            self.buf.resize(new_len, 0);
        }
        loop {
            match self.src.read(&mut self.buf[self.len..]) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => {
                    self.len += n;
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(shift)
    }

    /// The next line as (file offset of its first byte, its range in `self.buf`), or `None` at
    /// end of input.
    fn next_line(&mut self) -> Result<Option<(u64, Range<usize>)>, FormatError> {
        let mut scan = self.pos;
        loop {
            if let Some(i) = memchr::memchr2(b'\n', b'\r', &self.buf[scan..self.len]) {
                let i = scan + i;
                let consumed_to = if self.buf[i] == b'\n' {
                    i + 1
                } else if i + 1 < self.len {
                    if self.buf[i + 1] == b'\n' {
                        i + 2
                    } else {
                        i + 1
                    }
                } else if self.eof {
                    i + 1
                } else {
                    // A `\r` at the end of the buffer: look at the next byte before deciding.
                    let shift = self.refill()?;
                    scan = i - shift;
                    continue;
                };
                return Ok(Some(self.take(i, consumed_to)));
            }
            if self.eof {
                if self.pos == self.len {
                    return Ok(None);
                }
                let end = self.len;
                return Ok(Some(self.take(end, end)));
            }
            if self.len - self.pos > self.max_line_length {
                return Err(FormatError::TooLong(format!(
                    "line at byte offset {} is longer than {} bytes (raise {})",
                    self.file_pos,
                    self.max_line_length,
                    super::LINE_MAX_LENGTH_KEY
                )));
            }
            let searched_to = self.len;
            let shift = self.refill()?;
            scan = searched_to - shift;
        }
    }

    fn take(&mut self, line_end: usize, consumed_to: usize) -> (u64, Range<usize>) {
        let start_offset = self.file_pos;
        let range = self.pos..line_end;
        self.file_pos += (consumed_to - self.pos) as u64;
        self.pos = consumed_to;
        (start_offset, range)
    }
}

/// Positions a line source for a split: a split that does not start at 0 skips the line in
/// progress at `start` (it belongs to the previous split, which reads past its end to finish it).
fn open_lines<R: Read + Seek>(
    mut src: R,
    start: u64,
    max_line_length: usize,
) -> Result<LineSource<R>, FormatError> {
    if start == 0 {
        src.seek(SeekFrom::Start(0))?;
        return Ok(LineSource::new(src, 0, max_line_length));
    }
    // Start one byte early: if that byte ends a line, the line at `start` is ours.
    src.seek(SeekFrom::Start(start - 1))?;
    // The skipped partial line may be longer than the limit; it is not ours to judge.
    let mut lines = LineSource::new(src, start - 1, usize::MAX);
    lines.next_line()?;
    lines.max_line_length = max_line_length;
    Ok(lines)
}

fn check_length(offset: u64, range: &Range<usize>, max: usize) -> Result<(), FormatError> {
    if range.len() > max {
        return Err(FormatError::TooLong(format!(
            "line at byte offset {offset} is longer than {max} bytes (raise {})",
            super::LINE_MAX_LENGTH_KEY
        )));
    }
    Ok(())
}

/// Reads the lines of a split: key = byte offset of the line as decimal text, value = the line.
pub struct LineRecordReader<R> {
    lines: LineSource<R>,
    start: u64,
    end: u64,
    key: DecimalBuf,
}

impl<R: Read + Seek> LineRecordReader<R> {
    /// A reader of the lines starting in `[start, start + length)` of `src`.
    pub fn new(
        src: R,
        start: u64,
        length: u64,
        max_line_length: usize,
    ) -> Result<Self, FormatError> {
        Ok(LineRecordReader {
            lines: open_lines(src, start, max_line_length)?,
            start,
            end: start.saturating_add(length),
            key: DecimalBuf::new(),
        })
    }

    /// The next line and its file offset, without formatting the offset.
    pub fn next_line(&mut self) -> Result<Option<(u64, &[u8])>, FormatError> {
        if self.lines.file_pos >= self.end {
            return Ok(None);
        }
        match self.lines.next_line()? {
            None => Ok(None),
            Some((offset, range)) => {
                check_length(offset, &range, self.lines.max_line_length)?;
                Ok(Some((offset, &self.lines.buf[range])))
            }
        }
    }
}

impl<R: Read + Seek> RecordReader for LineRecordReader<R> {
    fn next_record(&mut self) -> Result<Option<Record<'_>>, FormatError> {
        if self.lines.file_pos >= self.end {
            return Ok(None);
        }
        match self.lines.next_line()? {
            None => Ok(None),
            Some((offset, range)) => {
                check_length(offset, &range, self.lines.max_line_length)?;
                Ok(Some((self.key.format_u64(offset), &self.lines.buf[range])))
            }
        }
    }

    fn bytes_consumed(&self) -> u64 {
        self.lines.file_pos.saturating_sub(self.start)
    }
}

/// Reads the lines of a split as `key<sep>value` (Hadoop's `KeyValueTextInputFormat`): key =
/// bytes before the first separator, value = bytes after it; no separator means an empty value.
pub struct KeyValueLineRecordReader<R> {
    lines: LineSource<R>,
    start: u64,
    end: u64,
    separator: u8,
}

impl<R: Read + Seek> KeyValueLineRecordReader<R> {
    /// A reader of the lines starting in `[start, start + length)` of `src`.
    pub fn new(
        src: R,
        start: u64,
        length: u64,
        separator: u8,
        max_line_length: usize,
    ) -> Result<Self, FormatError> {
        Ok(KeyValueLineRecordReader {
            lines: open_lines(src, start, max_line_length)?,
            start,
            end: start.saturating_add(length),
            separator,
        })
    }
}

impl<R: Read + Seek> RecordReader for KeyValueLineRecordReader<R> {
    fn next_record(&mut self) -> Result<Option<Record<'_>>, FormatError> {
        if self.lines.file_pos >= self.end {
            return Ok(None);
        }
        match self.lines.next_line()? {
            None => Ok(None),
            Some((offset, range)) => {
                check_length(offset, &range, self.lines.max_line_length)?;
                let line = &self.lines.buf[range];
                Ok(Some(match memchr::memchr(self.separator, line) {
                    Some(i) => (&line[..i], &line[i + 1..]),
                    None => (line, &[][..]),
                }))
            }
        }
    }

    fn bytes_consumed(&self) -> u64 {
        self.lines.file_pos.saturating_sub(self.start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// Lines (offset, bytes) of a split, read through the public reader.
    fn read_split(data: &[u8], start: u64, len: u64) -> Vec<(u64, Vec<u8>)> {
        let mut r =
            LineRecordReader::new(Cursor::new(data.to_vec()), start, len, usize::MAX).unwrap();
        let mut out = Vec::new();
        while let Some((k, v)) = r.next_record().unwrap() {
            let off: u64 = std::str::from_utf8(k).unwrap().parse().unwrap();
            out.push((off, v.to_vec()));
        }
        out
    }

    /// The lines of `data` computed independently: split on the Hadoop terminators.
    fn reference_lines(data: &[u8]) -> Vec<(u64, Vec<u8>)> {
        let mut out = Vec::new();
        let mut i = 0;
        let mut line_start = 0;
        while i < data.len() {
            match data[i] {
                b'\n' => {
                    out.push((line_start as u64, data[line_start..i].to_vec()));
                    i += 1;
                    line_start = i;
                }
                b'\r' => {
                    out.push((line_start as u64, data[line_start..i].to_vec()));
                    i += if data.get(i + 1) == Some(&b'\n') {
                        2
                    } else {
                        1
                    };
                    line_start = i;
                }
                _ => i += 1,
            }
        }
        if line_start < data.len() {
            out.push((line_start as u64, data[line_start..].to_vec()));
        }
        out
    }

    const SAMPLES: &[&[u8]] = &[
        b"alpha beta\ngamma\n\ndelta",
        b"one\r\ntwo\r\n\r\nthree\r\n",
        b"\n\n\nx\n",
        b"cr\ronly\r\rend",
        b"mixed\r\n\r\r\nbin\xff\xfe\x00\n",
        b"",
        b"\r",
        b"no newline at all",
    ];

    #[test]
    fn whole_file_matches_reference() {
        for data in SAMPLES {
            assert_eq!(
                read_split(data, 0, data.len() as u64),
                reference_lines(data),
                "{data:?}"
            );
        }
    }

    #[test]
    fn every_two_way_split_reads_each_line_once() {
        for data in SAMPLES {
            let n = data.len() as u64;
            let expected = reference_lines(data);
            for cut in 0..=n {
                let mut got = read_split(data, 0, cut);
                got.extend(read_split(data, cut, n - cut));
                assert_eq!(got, expected, "{data:?} cut at {cut}");
            }
        }
    }

    #[test]
    fn every_three_way_split_reads_each_line_once() {
        let data: &[u8] = b"ab\r\ncd\ref\n\ngh\r\r\nij";
        let n = data.len() as u64;
        let expected = reference_lines(data);
        for a in 0..=n {
            for b in a..=n {
                let mut got = read_split(data, 0, a);
                got.extend(read_split(data, a, b - a));
                got.extend(read_split(data, b, n - b));
                assert_eq!(got, expected, "cuts {a} {b}");
            }
        }
    }

    #[test]
    fn long_lines_cross_buffer_refills() {
        // Lines longer than the initial buffer, with a \r\n straddling a refill boundary.
        let mut data = vec![b'a'; INITIAL_BUFFER - 1];
        data.extend_from_slice(b"\r\n");
        data.extend(vec![b'b'; 3 * INITIAL_BUFFER]);
        data.push(b'\n');
        data.extend_from_slice(b"tail");
        let got = read_split(&data, 0, data.len() as u64);
        assert_eq!(got, reference_lines(&data));
        assert_eq!(got.len(), 3);
    }

    #[test]
    fn line_over_limit_is_a_clear_error() {
        let data = b"short\nthis line is too long\nok\n".to_vec();
        let mut r = LineRecordReader::new(Cursor::new(data), 0, 100, 10).unwrap();
        assert!(r.next_record().unwrap().is_some());
        let err = r.next_record().unwrap_err().to_string();
        assert!(err.contains("byte offset 6"), "{err}");
        assert!(err.contains(super::super::LINE_MAX_LENGTH_KEY), "{err}");
    }

    #[test]
    fn key_value_split_at_first_separator() {
        let data = b"k1\tv1\tmore\nlonely\n\tempty-key\nk4\t\n".to_vec();
        let n = data.len() as u64;
        let mut r =
            KeyValueLineRecordReader::new(Cursor::new(data), 0, n, b'\t', usize::MAX).unwrap();
        let mut got = Vec::new();
        while let Some((k, v)) = r.next_record().unwrap() {
            got.push((k.to_vec(), v.to_vec()));
        }
        let expected: Vec<(Vec<u8>, Vec<u8>)> = vec![
            (b"k1".to_vec(), b"v1\tmore".to_vec()),
            (b"lonely".to_vec(), b"".to_vec()),
            (b"".to_vec(), b"empty-key".to_vec()),
            (b"k4".to_vec(), b"".to_vec()),
        ];
        assert_eq!(got, expected);
        assert_eq!(r.bytes_consumed(), n);
    }
}
