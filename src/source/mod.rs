//! Inputs: anything that yields `RecordBatch`es in arrival order.

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};

use crate::error::{Result, WindrowError};

/// A source of micro-batches.
pub trait Source: Send {
    /// The schema of every batch.
    fn schema(&self) -> SchemaRef;
    /// The next batch, `None` at end of input.
    fn next_batch(&mut self) -> Option<Result<RecordBatch>>;
}

/// Batches held in memory, optionally re-sliced to a fixed micro-batch size.
pub struct MemorySource {
    schema: SchemaRef,
    batches: std::vec::IntoIter<RecordBatch>,
}

impl MemorySource {
    /// Yields `batches` as given.
    pub fn new(schema: SchemaRef, batches: Vec<RecordBatch>) -> Self {
        MemorySource { schema, batches: batches.into_iter() }
    }

    /// Yields the same rows in micro-batches of `size` rows (zero-copy slices).
    pub fn with_batch_size(schema: SchemaRef, batches: &[RecordBatch], size: usize) -> Self {
        let size = size.max(1);
        let mut out = Vec::new();
        for b in batches {
            let mut off = 0;
            while off < b.num_rows() {
                let len = size.min(b.num_rows() - off);
                out.push(b.slice(off, len));
                off += len;
            }
        }
        Self::new(schema, out)
    }
}

impl Source for MemorySource {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
    fn next_batch(&mut self) -> Option<Result<RecordBatch>> {
        self.batches.next().map(Ok)
    }
}

/// A Parquet file read in row order, in batches.
pub struct ParquetSource {
    path: PathBuf,
    schema: SchemaRef,
    reader: ParquetRecordBatchReader,
}

impl ParquetSource {
    /// Opens `path`, reading `batch_size` rows at a time.
    ///
    /// # Errors
    /// A missing or unreadable file, or one that is not Parquet; the message names the path.
    pub fn open(path: impl AsRef<Path>, batch_size: usize) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path)
            .map_err(|e| WindrowError::Data(format!("cannot open Parquet file {}: {e}", path.display())))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(|e| WindrowError::Data(format!("{} is not a readable Parquet file: {e}", path.display())))?;
        let schema = builder.schema().clone();
        let reader = builder.with_batch_size(batch_size.max(1)).build()?;
        Ok(ParquetSource { path, schema, reader })
    }

    /// Reads the whole file into memory.
    ///
    /// # Errors
    /// As [`ParquetSource::open`], or a corrupt page.
    pub fn read_all(path: impl AsRef<Path>) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        let mut src = Self::open(path, 64 * 1024)?;
        let mut out = Vec::new();
        while let Some(b) = src.next_batch() {
            out.push(b?);
        }
        Ok((src.schema, out))
    }
}

impl Source for ParquetSource {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
    fn next_batch(&mut self) -> Option<Result<RecordBatch>> {
        let path = &self.path;
        self.reader.next().map(|r| r.map_err(|e| WindrowError::Data(format!("reading {}: {e}", path.display()))))
    }
}
