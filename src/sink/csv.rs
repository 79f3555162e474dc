//! CSV output with a header row.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::csv::{Writer, WriterBuilder};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;

use super::{Counted, PendingFile, Sink, SinkSummary, write_err};
use crate::error::{Result, WindrowError};

/// Writes one CSV file with a header row; timestamps as RFC 3339. CSV cannot hold nested
/// values, so outputs with list or struct columns (`meta`'s `merged_ids`, `collect`
/// results, joins) are refused when the sink is opened.
pub struct CsvSink {
    path: PathBuf,
    schema: SchemaRef,
    open: Option<(PendingFile, Writer<Counted<BufWriter<File>>>)>,
    /// Bytes handed to the file so far (buffered or not).
    bytes: Arc<AtomicU64>,
    rows: u64,
    batches: u64,
    done: Vec<PathBuf>,
}

fn nested(t: &DataType) -> bool {
    matches!(
        t,
        DataType::List(_)
            | DataType::LargeList(_)
            | DataType::FixedSizeList(..)
            | DataType::ListView(_)
            | DataType::LargeListView(_)
            | DataType::Struct(_)
            | DataType::Map(..)
            | DataType::Union(..)
    )
}

impl CsvSink {
    /// Creates `path` (under a temporary name until [`Sink::finish`]).
    ///
    /// # Errors
    /// A nested column, or a file that cannot be created.
    pub fn create(path: &Path, schema: SchemaRef) -> Result<Self> {
        check_schema(path, &schema)?;
        let (pending, file) = PendingFile::create(path)?;
        Ok(Self::with_file(path, pending, file, schema))
    }

    /// Creates `path`, written as `tmp` until [`Sink::finish`] (part files name their own
    /// temporary files); `path`'s directory must exist.
    ///
    /// # Errors
    /// A nested column, or a file that cannot be created.
    pub(crate) fn create_as(path: &Path, tmp: &Path, schema: SchemaRef) -> Result<Self> {
        check_schema(path, &schema)?;
        let (pending, file) = PendingFile::create_as(path, tmp)?;
        Ok(Self::with_file(path, pending, file, schema))
    }

    fn with_file(path: &Path, pending: PendingFile, file: File, schema: SchemaRef) -> Self {
        let (out, bytes) = Counted::new(BufWriter::new(file));
        let writer = WriterBuilder::new().with_header(true).build(out);
        CsvSink {
            path: path.to_path_buf(),
            schema,
            open: Some((pending, writer)),
            bytes,
            rows: 0,
            batches: 0,
            done: Vec::new(),
        }
    }

    /// Bytes of the file written so far (including what is still buffered).
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

/// Refuses a schema CSV cannot hold, naming `path` (checked before any file is created).
///
/// # Errors
/// A list, struct, map or union column.
pub(crate) fn check_schema(path: &Path, schema: &SchemaRef) -> Result<()> {
    if let Some(f) = schema.fields().iter().find(|f| nested(f.data_type())) {
        return Err(WindrowError::Config(format!(
            "cannot write {} as CSV: column \"{}\" is {}, which CSV cannot hold; write Parquet (.parquet or a \
             directory) or Arrow IPC (.arrow) instead",
            path.display(),
            f.name(),
            f.data_type()
        )));
    }
    Ok(())
}

impl Sink for CsvSink {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let Some((_, writer)) = self.open.as_mut() else {
            return Err(write_err(&self.path, "the file is already finished"));
        };
        writer.write(batch).map_err(|e| write_err(&self.path, e))?;
        self.rows += batch.num_rows() as u64;
        self.batches += 1;
        Ok(())
    }

    fn finish(&mut self) -> Result<SinkSummary> {
        if let Some((pending, writer)) = self.open.take() {
            let mut writer = writer;
            if self.rows == 0 {
                // An empty output still gets its header row (written with the first batch).
                writer.write(&RecordBatch::new_empty(self.schema.clone())).map_err(|e| write_err(&self.path, e))?;
            }
            let mut inner = writer.into_inner();
            std::io::Write::flush(&mut inner).map_err(|e| write_err(&self.path, e))?;
            drop(inner);
            self.done.push(pending.commit()?);
        }
        Ok(SinkSummary {
            target: self.path.display().to_string(),
            rows: self.rows,
            batches: self.batches,
            files: self.done.clone(),
        })
    }
}
