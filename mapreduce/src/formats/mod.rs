//! Input and output formats: how a split of a file becomes (key, value) records, and how
//! output records become bytes.
//!
//! A split is a byte range of one file. Every reader follows Hadoop's rule: a record belongs to
//! the split in which its first byte lies, so a reader skips a record that started before its
//! split and reads past its end to finish the last record it started. Readers stream from any
//! `Read + Seek` source and hold at most one record (text) or one block (record file) in memory.
//! Bytes are never interpreted as UTF-8.
//!
//! Formats are chosen through the job configuration (`mapreduce.job.inputformat`,
//! `mapreduce.job.outputformat`); see [`InputFormat::from_conf`] and [`OutputFormat::from_conf`].

mod fixed;
mod output;
mod recordfile;
mod split;
mod text;

pub use fixed::FixedLengthRecordReader;
pub use output::{RawRecordWriter, TextRecordWriter};
pub use recordfile::{
    RecordFileOptions, RecordFileReader, RecordFileWriter, RECORD_FILE_HEADER_LEN,
    RECORD_FILE_MAGIC,
};
pub use split::{compute_splits, InputSplit};
pub use text::{KeyValueLineRecordReader, LineRecordReader};

use crate::api::{Emitter, JobConf, TaskError};
use std::io::{Read, Seek, Write};

/// Conf key choosing the input format: `text` (default), `keyvalue`, `fixed` or `record`.
pub const INPUT_FORMAT_KEY: &str = "mapreduce.job.inputformat";
/// Conf key choosing the output format: `text` (default), `record` or `raw`.
pub const OUTPUT_FORMAT_KEY: &str = "mapreduce.job.outputformat";
/// Conf key: separator byte of `keyvalue` input lines (Hadoop's name; default tab).
pub const KEY_VALUE_SEPARATOR_KEY: &str =
    "mapreduce.input.keyvaluelinerecordreader.key.value.separator";
/// Conf key: record length in bytes of `fixed` input (Hadoop's name; required for `fixed`).
pub const FIXED_RECORD_LENGTH_KEY: &str = "fixedlengthinputformat.record.length";
/// Conf key: longest line a text reader accepts, in bytes (Hadoop's name).
pub const LINE_MAX_LENGTH_KEY: &str = "mapreduce.input.linerecordreader.line.maxlength";
/// Default longest line: a longer line is a clear error rather than unbounded memory growth.
pub const DEFAULT_LINE_MAX_LENGTH: usize = 256 << 20;
/// Conf key: separator written between key and value by `text` output (Hadoop's name; default tab).
pub const TEXT_OUTPUT_SEPARATOR_KEY: &str = "mapreduce.output.textoutputformat.separator";
/// Conf key: `true` to lz4-compress the blocks of `record` output (default `false`).
pub const RECORD_FILE_COMPRESS_KEY: &str = "mapreduce.output.recordfile.compress";
/// Conf key: target uncompressed block size of `record` output, in bytes (default 1 MiB).
pub const RECORD_FILE_BLOCK_SIZE_KEY: &str = "mapreduce.output.recordfile.block-size";

/// A failure reading or writing formatted records.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// The underlying source or sink failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The bytes do not follow the format.
    #[error("corrupt input: {0}")]
    Corrupt(String),
    /// A record exceeds a configured bound.
    #[error("{0}")]
    TooLong(String),
    /// The job configuration names an unknown format or a bad option.
    #[error("bad format configuration: {0}")]
    Config(String),
}

impl From<FormatError> for TaskError {
    fn from(e: FormatError) -> Self {
        TaskError::new(e.to_string())
    }
}

/// A borrowed (key, value) record.
pub type Record<'a> = (&'a [u8], &'a [u8]);

/// Yields the records of one split. Slices are valid until the next call.
pub trait RecordReader {
    /// The next (key, value) record, or `None` after the last record of the split.
    fn next_record(&mut self) -> Result<Option<Record<'_>>, FormatError>;
    /// Bytes of the source consumed so far (for the bytes-read counter).
    fn bytes_consumed(&self) -> u64;
}

/// Writes output records to a sink.
pub trait RecordWriter: Send {
    /// Writes one record.
    fn write(&mut self, key: &[u8], value: &[u8]) -> Result<(), FormatError>;
    /// Flushes everything buffered; call once after the last record (further writes fail).
    fn finish(&mut self) -> Result<(), FormatError>;
    /// Bytes handed to the sink so far (for the bytes-written counter).
    fn bytes_written(&self) -> u64;
}

/// Adapts a [`RecordWriter`] to the [`Emitter`] a reducer (or a map-only mapper) writes to.
pub struct RecordWriterEmitter<'a> {
    /// The writer records go to.
    pub writer: &'a mut dyn RecordWriter,
    /// Records written through this emitter.
    pub records: u64,
}

impl<'a> RecordWriterEmitter<'a> {
    /// Wraps `writer`.
    pub fn new(writer: &'a mut dyn RecordWriter) -> Self {
        RecordWriterEmitter { writer, records: 0 }
    }
}

impl Emitter for RecordWriterEmitter<'_> {
    fn emit(&mut self, key: &[u8], value: &[u8]) -> Result<(), TaskError> {
        self.records += 1;
        self.writer.write(key, value).map_err(TaskError::from)
    }
}

/// How input files are read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputFormat {
    /// Lines: key = the line's byte offset in the file as decimal ASCII text (what Hadoop's
    /// `LongWritable` key prints as), value = the line without its terminator. `\n`, `\r\n` and a
    /// lone `\r` end a line, as in Hadoop's `LineReader`.
    Text {
        /// Longest accepted line in bytes.
        max_line_length: usize,
    },
    /// Lines split at the first separator byte: key before it, value after it (a line without
    /// the separator is all key, empty value).
    KeyValueText {
        /// The separator byte (tab by default).
        separator: u8,
        /// Longest accepted line in bytes.
        max_line_length: usize,
    },
    /// Fixed-length binary records: key = record offset as decimal text, value = the record.
    FixedLength {
        /// Bytes per record.
        record_length: usize,
    },
    /// Sheaf's binary record file (see [`RecordFileWriter`]): keys and values as written.
    RecordFile,
}

impl Default for InputFormat {
    fn default() -> Self {
        InputFormat::Text {
            max_line_length: DEFAULT_LINE_MAX_LENGTH,
        }
    }
}

fn conf_usize(conf: &JobConf, key: &str) -> Result<Option<usize>, FormatError> {
    match conf.get(key) {
        None => Ok(None),
        Some(v) => {
            v.trim().parse::<usize>().map(Some).map_err(|_| {
                FormatError::Config(format!("{key}={v:?} is not a non-negative integer"))
            })
        }
    }
}

fn separator_byte(conf: &JobConf, key: &str) -> Result<u8, FormatError> {
    match conf.get(key) {
        None => Ok(b'\t'),
        Some(v) if v.len() == 1 => Ok(v.as_bytes()[0]),
        Some(v) => Err(FormatError::Config(format!(
            "{key}={v:?} must be exactly one byte"
        ))),
    }
}

impl InputFormat {
    /// The format named by `mapreduce.job.inputformat` (default `text`) with its options.
    pub fn from_conf(conf: &JobConf) -> Result<Self, FormatError> {
        let max_line_length =
            conf_usize(conf, LINE_MAX_LENGTH_KEY)?.unwrap_or(DEFAULT_LINE_MAX_LENGTH);
        match conf.get(INPUT_FORMAT_KEY).unwrap_or("text") {
            "text" => Ok(InputFormat::Text { max_line_length }),
            "keyvalue" => Ok(InputFormat::KeyValueText {
                separator: separator_byte(conf, KEY_VALUE_SEPARATOR_KEY)?,
                max_line_length,
            }),
            "fixed" => match conf_usize(conf, FIXED_RECORD_LENGTH_KEY)? {
                Some(n) if n > 0 => Ok(InputFormat::FixedLength { record_length: n }),
                _ => Err(FormatError::Config(format!(
                    "the fixed input format needs {FIXED_RECORD_LENGTH_KEY} > 0"
                ))),
            },
            "record" => Ok(InputFormat::RecordFile),
            other => Err(FormatError::Config(format!(
                "{INPUT_FORMAT_KEY}={other:?} is not one of text, keyvalue, fixed, record"
            ))),
        }
    }

    /// A reader over the records of `split`, reading from `source` (the split's file).
    pub fn open<'a, R: Read + Seek + Send + 'a>(
        &self,
        source: R,
        split: &InputSplit,
    ) -> Result<Box<dyn RecordReader + Send + 'a>, FormatError> {
        Ok(match *self {
            InputFormat::Text { max_line_length } => Box::new(LineRecordReader::new(
                source,
                split.start,
                split.length,
                max_line_length,
            )?),
            InputFormat::KeyValueText {
                separator,
                max_line_length,
            } => Box::new(KeyValueLineRecordReader::new(
                source,
                split.start,
                split.length,
                separator,
                max_line_length,
            )?),
            InputFormat::FixedLength { record_length } => Box::new(FixedLengthRecordReader::new(
                source,
                split.start,
                split.length,
                record_length,
            )?),
            InputFormat::RecordFile => {
                Box::new(RecordFileReader::new(source, split.start, split.length)?)
            }
        })
    }
}

/// How output records are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputFormat {
    /// `key<sep>value\n`, or `key\n` when the value is empty (Hadoop's `TextOutputFormat`).
    Text {
        /// Written between key and value (tab by default).
        separator: Vec<u8>,
    },
    /// Sheaf's binary record file, readable by [`InputFormat::RecordFile`].
    RecordFile(RecordFileOptions),
    /// Key bytes then value bytes, nothing between or after (TeraSort's output format).
    Raw,
}

impl Default for OutputFormat {
    fn default() -> Self {
        OutputFormat::Text {
            separator: b"\t".to_vec(),
        }
    }
}

impl OutputFormat {
    /// The format named by `mapreduce.job.outputformat` (default `text`) with its options.
    pub fn from_conf(conf: &JobConf) -> Result<Self, FormatError> {
        match conf.get(OUTPUT_FORMAT_KEY).unwrap_or("text") {
            "text" => Ok(OutputFormat::Text {
                separator: conf
                    .get(TEXT_OUTPUT_SEPARATOR_KEY)
                    .unwrap_or("\t")
                    .as_bytes()
                    .to_vec(),
            }),
            "record" => {
                let mut opts = RecordFileOptions::default();
                if let Some(size) = conf_usize(conf, RECORD_FILE_BLOCK_SIZE_KEY)? {
                    opts.block_size = size.max(1);
                }
                opts.compress = match conf.get(RECORD_FILE_COMPRESS_KEY) {
                    None | Some("false") => false,
                    Some("true") => true,
                    Some(v) => {
                        return Err(FormatError::Config(format!(
                            "{RECORD_FILE_COMPRESS_KEY}={v:?} must be true or false"
                        )))
                    }
                };
                Ok(OutputFormat::RecordFile(opts))
            }
            "raw" => Ok(OutputFormat::Raw),
            other => Err(FormatError::Config(format!(
                "{OUTPUT_FORMAT_KEY}={other:?} is not one of text, record, raw"
            ))),
        }
    }

    /// A writer producing this format into `sink` (buffered internally).
    pub fn create<'a, W: Write + Send + 'a>(
        &self,
        sink: W,
    ) -> Result<Box<dyn RecordWriter + 'a>, FormatError> {
        Ok(match self {
            OutputFormat::Text { separator } => {
                Box::new(TextRecordWriter::new(sink, separator.clone()))
            }
            OutputFormat::RecordFile(opts) => Box::new(RecordFileWriter::new(sink, opts.clone())?),
            OutputFormat::Raw => Box::new(RawRecordWriter::new(sink)),
        })
    }
}
