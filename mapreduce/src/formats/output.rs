//! Text and raw output writers.

use super::{FormatError, RecordWriter};
use std::io::{BufWriter, Write};

const OUTPUT_BUFFER: usize = 256 << 10;

fn finished() -> FormatError {
    FormatError::Io(std::io::Error::other("output already finished"))
}

/// Hadoop's `TextOutputFormat`: `key<sep>value\n`, or `key\n` when the value is empty (Hadoop
/// omits the separator for a null value; bytes have no null, so empty stands for it).
pub struct TextRecordWriter<W: Write> {
    sink: Option<BufWriter<W>>,
    separator: Vec<u8>,
    written: u64,
}

impl<W: Write> TextRecordWriter<W> {
    /// A writer into `sink` putting `separator` between key and value.
    pub fn new(sink: W, separator: Vec<u8>) -> Self {
        TextRecordWriter {
            sink: Some(BufWriter::with_capacity(OUTPUT_BUFFER, sink)),
            separator,
            written: 0,
        }
    }

    /// Flushes and returns the sink.
    pub fn into_inner(mut self) -> Result<W, FormatError> {
        let sink = self.sink.take().ok_or_else(finished)?;
        sink.into_inner()
            .map_err(|e| FormatError::Io(e.into_error()))
    }
}

impl<W: Write + Send> RecordWriter for TextRecordWriter<W> {
    fn write(&mut self, key: &[u8], value: &[u8]) -> Result<(), FormatError> {
        let sink = self.sink.as_mut().ok_or_else(finished)?;
        sink.write_all(key)?;
        let mut n = key.len() + 1;
        if !value.is_empty() {
            sink.write_all(&self.separator)?;
            sink.write_all(value)?;
            n += self.separator.len() + value.len();
        }
        sink.write_all(b"\n")?;
        self.written += n as u64;
        Ok(())
    }

    fn finish(&mut self) -> Result<(), FormatError> {
        if let Some(mut sink) = self.sink.take() {
            sink.flush()?;
        }
        Ok(())
    }

    fn bytes_written(&self) -> u64 {
        self.written
    }
}

/// Writes key bytes then value bytes with nothing between or after (TeraSort's output format:
/// a 10-byte key and a 90-byte value give back the 100-byte record).
pub struct RawRecordWriter<W: Write> {
    sink: Option<BufWriter<W>>,
    written: u64,
}

impl<W: Write> RawRecordWriter<W> {
    /// A writer into `sink`.
    pub fn new(sink: W) -> Self {
        RawRecordWriter {
            sink: Some(BufWriter::with_capacity(OUTPUT_BUFFER, sink)),
            written: 0,
        }
    }

    /// Flushes and returns the sink.
    pub fn into_inner(mut self) -> Result<W, FormatError> {
        let sink = self.sink.take().ok_or_else(finished)?;
        sink.into_inner()
            .map_err(|e| FormatError::Io(e.into_error()))
    }
}

impl<W: Write + Send> RecordWriter for RawRecordWriter<W> {
    fn write(&mut self, key: &[u8], value: &[u8]) -> Result<(), FormatError> {
        let sink = self.sink.as_mut().ok_or_else(finished)?;
        sink.write_all(key)?;
        sink.write_all(value)?;
        self.written += (key.len() + value.len()) as u64;
        Ok(())
    }

    fn finish(&mut self) -> Result<(), FormatError> {
        if let Some(mut sink) = self.sink.take() {
            sink.flush()?;
        }
        Ok(())
    }

    fn bytes_written(&self) -> u64 {
        self.written
    }
}

#[cfg(test)]
mod tests {
    use super::super::{InputFormat, InputSplit, OutputFormat, RecordWriterEmitter};
    use super::*;
    use crate::api::{Emitter, JobConf};
    use std::io::Cursor;

    #[test]
    fn text_output_matches_hadoop() {
        let mut w = TextRecordWriter::new(Vec::new(), b"\t".to_vec());
        w.write(b"word", b"3").unwrap();
        w.write(b"novalue", b"").unwrap();
        w.write(b"bin\xff", b"\x00\x01").unwrap();
        assert_eq!(w.bytes_written(), 7 + 8 + 8);
        let out = w.into_inner().unwrap();
        assert_eq!(out, b"word\t3\nnovalue\nbin\xff\t\x00\x01\n");
    }

    #[test]
    fn raw_output_concatenates() {
        let mut w = RawRecordWriter::new(Vec::new());
        w.write(b"key", b"value").unwrap();
        w.write(b"k2", b"").unwrap();
        assert_eq!(w.into_inner().unwrap(), b"keyvaluek2");
    }

    #[test]
    fn formats_from_conf_and_chain_through_record_files() {
        let mut conf = JobConf::default();
        assert_eq!(
            OutputFormat::from_conf(&conf).unwrap(),
            OutputFormat::default()
        );
        assert_eq!(
            InputFormat::from_conf(&conf).unwrap(),
            InputFormat::default()
        );
        conf.set(crate::formats::OUTPUT_FORMAT_KEY, "record");
        conf.set(crate::formats::RECORD_FILE_COMPRESS_KEY, "true");
        conf.set(crate::formats::INPUT_FORMAT_KEY, "record");
        let out_fmt = OutputFormat::from_conf(&conf).unwrap();
        let in_fmt = InputFormat::from_conf(&conf).unwrap();

        // Write through the boxed writer and the emitter adapter, read back through the input format.
        let file = tempfile::NamedTempFile::new().unwrap();
        {
            let mut w = out_fmt.create(file.reopen().unwrap()).unwrap();
            let mut em = RecordWriterEmitter::new(w.as_mut());
            em.emit(b"a", b"1").unwrap();
            em.emit(b"b\xff", b"").unwrap();
            assert_eq!(em.records, 2);
            w.finish().unwrap();
        }
        let len = std::fs::metadata(file.path()).unwrap().len();
        let split = InputSplit::new(file.path(), 0, len);
        let mut r = in_fmt
            .open(std::fs::File::open(file.path()).unwrap(), &split)
            .unwrap();
        assert_eq!(r.next_record().unwrap(), Some((&b"a"[..], &b"1"[..])));
        assert_eq!(r.next_record().unwrap(), Some((&b"b\xff"[..], &b""[..])));
        assert_eq!(r.next_record().unwrap(), None);

        conf.set(crate::formats::INPUT_FORMAT_KEY, "nonsense");
        assert!(InputFormat::from_conf(&conf)
            .unwrap_err()
            .to_string()
            .contains("nonsense"));
        conf.set(crate::formats::INPUT_FORMAT_KEY, "fixed");
        assert!(InputFormat::from_conf(&conf).is_err());
        conf.set(crate::formats::FIXED_RECORD_LENGTH_KEY, "100");
        assert_eq!(
            InputFormat::from_conf(&conf).unwrap(),
            InputFormat::FixedLength { record_length: 100 }
        );
        conf.set(crate::formats::INPUT_FORMAT_KEY, "keyvalue");
        conf.set(crate::formats::KEY_VALUE_SEPARATOR_KEY, ",");
        let kv = InputFormat::from_conf(&conf).unwrap();
        let data = b"x,1\ny,2\n".to_vec();
        let mut r = kv
            .open(Cursor::new(data), &InputSplit::new("mem", 0, 8))
            .unwrap();
        assert_eq!(r.next_record().unwrap(), Some((&b"x"[..], &b"1"[..])));
    }
}
