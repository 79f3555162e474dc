//! CSV input with a header row, a given schema or one inferred from the first rows
//! (arrow-csv's inference: integers, floats, booleans, ISO 8601 / RFC 3339 timestamps, text).

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::csv::ReaderBuilder;
use arrow::csv::reader::Format;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use super::files::{BatchIter, FileSet, projection};
use super::{FileFormat, ReadOptions, Source};
use crate::error::{Result, WindrowError};

/// How to read CSV files.
#[derive(Clone, Debug)]
pub struct CsvOptions {
    /// The columns and their types; `None` infers them from the first
    /// [`infer_rows`](Self::infer_rows) rows of each file.
    pub schema: Option<SchemaRef>,
    /// Whether the first line holds the column names (default true).
    pub has_header: bool,
    /// The field delimiter (default `,`).
    pub delimiter: u8,
    /// Rows read to infer a schema (default 1000).
    pub infer_rows: usize,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions { schema: None, has_header: true, delimiter: b',', infer_rows: 1000 }
    }
}

/// CSV files read in batches. Timestamps are parsed from ISO 8601 / RFC 3339 text
/// (`2024-03-12T10:00:00.123Z`); a value that does not parse as its column's type is an
/// error naming the file, the column and the line.
pub struct CsvSource {
    files: FileSet,
}

impl CsvSource {
    /// Opens `path` (a file, a directory of `*.csv` files or a glob).
    ///
    /// # Errors
    /// A missing or unreadable file, a schema that cannot be inferred, or a column that is
    /// not in the file.
    pub fn open_with(path: impl AsRef<Path>, options: &ReadOptions) -> Result<Self> {
        super::files::parquet_only_dictionary(options, FileFormat::Csv)?;
        let csv = options.csv.clone();
        let batch_size = options.batch_size.max(1);
        let columns = options.columns.clone();
        let opener = move |file: &Path| -> Result<(SchemaRef, BatchIter)> {
            let open = || {
                File::open(file)
                    .map_err(|e| WindrowError::Data(format!("cannot open CSV file {}: {e}", file.display())))
            };
            let format = Format::default().with_header(csv.has_header).with_delimiter(csv.delimiter);
            let schema = match &csv.schema {
                Some(s) => s.clone(),
                None => {
                    let (schema, _) =
                        format.infer_schema(BufReader::new(open()?), Some(csv.infer_rows.max(1))).map_err(|e| {
                            WindrowError::Data(format!("cannot infer the columns of CSV file {}: {e}", file.display()))
                        })?;
                    if schema.fields().is_empty() {
                        return Err(WindrowError::Data(format!(
                            "CSV file {} is empty (no header row)",
                            file.display()
                        )));
                    }
                    Arc::new(schema)
                }
            };
            let mut builder = ReaderBuilder::new(schema.clone()).with_format(format).with_batch_size(batch_size);
            let mut out_schema = schema.clone();
            if let Some(cols) = &columns {
                let idx = projection(&schema, cols, file)?;
                out_schema = Arc::new(schema.project(&idx)?);
                builder = builder.with_projection(idx);
            }
            let reader = builder.build(open()?)?;
            Ok((out_schema, Box::new(reader) as BatchIter))
        };
        Ok(CsvSource { files: FileSet::open(FileFormat::Csv, path.as_ref(), Box::new(opener), None)? })
    }

    /// The files read, in order.
    pub fn files(&self) -> &[PathBuf] {
        self.files.files()
    }
}

impl Source for CsvSource {
    fn schema(&self) -> SchemaRef {
        self.files.schema()
    }
    fn next_batch(&mut self) -> Option<Result<RecordBatch>> {
        self.files.next_batch()
    }
}
