//! Printing result rows: an aligned table for people, RFC 4180 CSV (with a header line) or
//! newline-delimited JSON for scripts.

use crate::error::SqlResult;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::DataFusionError;
use std::io::Write;

/// How rows are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// An aligned table with a header (the default on a terminal).
    Table,
    /// CSV with a header line, RFC 4180 quoting (the default when piped).
    Csv,
    /// One JSON object per row.
    Json,
}

impl std::str::FromStr for OutputFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "table" => Ok(OutputFormat::Table),
            "csv" => Ok(OutputFormat::Csv),
            "json" => Ok(OutputFormat::Json),
            other => Err(format!("unknown format '{other}' (table, csv or json)")),
        }
    }
}

/// Writes `batches` to `out` in `format`.
pub fn write_rows(
    out: &mut dyn Write,
    format: OutputFormat,
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> SqlResult<()> {
    let arrow = |e| DataFusionError::from(e);
    match format {
        OutputFormat::Table => {
            let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
            if batches.is_empty() {
                let empty = RecordBatch::new_empty(schema.clone());
                let table = datafusion::arrow::util::pretty::pretty_format_batches(&[empty])
                    .map_err(arrow)?;
                writeln!(out, "{table}").map_err(io)?;
            } else {
                let table = datafusion::arrow::util::pretty::pretty_format_batches(batches)
                    .map_err(arrow)?;
                writeln!(out, "{table}").map_err(io)?;
            }
            writeln!(out, "{rows} row{}", if rows == 1 { "" } else { "s" }).map_err(io)?;
        }
        OutputFormat::Csv => {
            let mut writer = datafusion::arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut *out);
            if batches.is_empty() {
                writer
                    .write(&RecordBatch::new_empty(schema.clone()))
                    .map_err(arrow)?;
            }
            for batch in batches {
                writer.write(batch).map_err(arrow)?;
            }
        }
        OutputFormat::Json => {
            let mut writer = datafusion::arrow::json::LineDelimitedWriter::new(&mut *out);
            for batch in batches {
                writer.write(batch).map_err(arrow)?;
            }
            writer.finish().map_err(arrow)?;
        }
    }
    out.flush().map_err(io)?;
    Ok(())
}

fn io(e: std::io::Error) -> crate::error::SqlError {
    crate::error::SqlError::io("writing results", e)
}
