//! Arrow IPC output (file format).

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::compute::cast;
use arrow::datatypes::{DataType, Schema, SchemaRef};
use arrow::ipc::writer::FileWriter;
use arrow::record_batch::RecordBatch;

use super::{Counted, PendingFile, Sink, SinkSummary, write_err};
use crate::error::Result;

/// Writes one Arrow IPC file (file format, readable by [`crate::source::IpcSource`],
/// pyarrow's `ipc.open_file`, DuckDB, polars).
///
/// Dictionary columns are written as their values: the file format holds one dictionary per
/// column for the whole file, while a stream brings new ones (each Parquet row group read
/// with [`ReadOptions::dictionary`](crate::source::ReadOptions::dictionary) has its own).
pub struct IpcSink {
    path: PathBuf,
    /// The schema written: the sink's, dictionary columns as their value types.
    written: SchemaRef,
    /// The sink's schema has dictionary columns: batches are cast to `written`.
    casts: bool,
    open: Option<(PendingFile, FileWriter<Counted<BufWriter<File>>>)>,
    /// Bytes handed to the file so far (buffered or not).
    bytes: Arc<AtomicU64>,
    rows: u64,
    batches: u64,
    done: Vec<PathBuf>,
}

impl IpcSink {
    /// Creates `path` (under a temporary name until [`Sink::finish`]).
    ///
    /// # Errors
    /// A file that cannot be created.
    pub fn create(path: &Path, schema: SchemaRef) -> Result<Self> {
        let (pending, file) = PendingFile::create(path)?;
        Self::with_file(path, pending, file, &schema)
    }

    /// Creates `path`, written as `tmp` until [`Sink::finish`] (part files name their own
    /// temporary files); `path`'s directory must exist.
    ///
    /// # Errors
    /// A file that cannot be created.
    pub(crate) fn create_as(path: &Path, tmp: &Path, schema: SchemaRef) -> Result<Self> {
        let (pending, file) = PendingFile::create_as(path, tmp)?;
        Self::with_file(path, pending, file, &schema)
    }

    fn with_file(path: &Path, pending: PendingFile, file: File, schema: &SchemaRef) -> Result<Self> {
        let (out, bytes) = Counted::new(BufWriter::new(file));
        let written = without_dictionaries(schema);
        let writer = FileWriter::try_new(out, &written).map_err(|e| write_err(path, e))?;
        Ok(IpcSink {
            path: path.to_path_buf(),
            casts: !Arc::ptr_eq(&written, schema),
            written,
            open: Some((pending, writer)),
            bytes,
            rows: 0,
            batches: 0,
            done: Vec::new(),
        })
    }

    /// Bytes of the file written so far (including what is still buffered).
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

impl Sink for IpcSink {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let Some((_, writer)) = self.open.as_mut() else {
            return Err(write_err(&self.path, "the file is already finished"));
        };
        if self.casts {
            let columns = batch
                .columns()
                .iter()
                .zip(self.written.fields())
                .map(|(c, f)| if c.data_type() == f.data_type() { Ok(Arc::clone(c)) } else { cast(c, f.data_type()) })
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| write_err(&self.path, e))?;
            let plain =
                RecordBatch::try_new(Arc::clone(&self.written), columns).map_err(|e| write_err(&self.path, e))?;
            writer.write(&plain).map_err(|e| write_err(&self.path, e))?;
        } else {
            writer.write(batch).map_err(|e| write_err(&self.path, e))?;
        }
        self.rows += batch.num_rows() as u64;
        self.batches += 1;
        Ok(())
    }

    fn finish(&mut self) -> Result<SinkSummary> {
        if let Some((pending, mut writer)) = self.open.take() {
            writer.finish().map_err(|e| write_err(&self.path, e))?;
            drop(writer);
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

/// `schema` with its dictionary columns as their value types.
fn without_dictionaries(schema: &SchemaRef) -> SchemaRef {
    if !schema.fields().iter().any(|f| matches!(f.data_type(), DataType::Dictionary(..))) {
        return Arc::clone(schema);
    }
    let fields: Vec<_> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Dictionary(_, value) => Arc::new(f.as_ref().clone().with_data_type(value.as_ref().clone())),
            _ => Arc::clone(f),
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}
