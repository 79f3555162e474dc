//! Parquet input: one file, a directory or a glob, read in batches, with a projection to the
//! needed columns (the other columns' pages are never decoded).

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::files::{BatchIter, FileSet, projection};
use super::{FileFormat, ReadOptions, Source};
use crate::error::{Result, WindrowError};

/// Parquet files read in row order, in batches (row order is arrival order).
pub struct ParquetSource {
    files: FileSet,
}

impl ParquetSource {
    /// Opens `path` (a file, a directory of `*.parquet` files or a glob), reading
    /// `batch_size` rows at a time, all columns.
    ///
    /// # Errors
    /// A missing or unreadable file, or one that is not Parquet; the message names the path.
    pub fn open(path: impl AsRef<Path>, batch_size: usize) -> Result<Self> {
        Self::open_with(path, &ReadOptions { batch_size, ..ReadOptions::default() })
    }

    /// Opens `path` with [`ReadOptions`]: batch size and the columns to read.
    ///
    /// # Errors
    /// As [`open`](Self::open), or a column that is not in the file.
    pub fn open_with(path: impl AsRef<Path>, options: &ReadOptions) -> Result<Self> {
        let batch_size = options.batch_size.max(1);
        let columns = options.columns.clone();
        let opener = move |file: &Path| -> Result<(SchemaRef, BatchIter)> {
            let f = File::open(file)
                .map_err(|e| WindrowError::Data(format!("cannot open Parquet file {}: {e}", file.display())))?;
            let builder = ParquetRecordBatchReaderBuilder::try_new(f)
                .map_err(|e| WindrowError::Data(format!("{} is not a readable Parquet file: {e}", file.display())))?;
            let builder = match &columns {
                Some(cols) => {
                    let idx = projection(builder.schema(), cols, file)?;
                    let mask = ProjectionMask::roots(builder.parquet_schema(), idx);
                    builder.with_projection(mask)
                }
                None => builder,
            };
            let reader = builder.with_batch_size(batch_size).build()?;
            let schema = arrow::record_batch::RecordBatchReader::schema(&reader);
            Ok((schema, Box::new(reader) as BatchIter))
        };
        Ok(ParquetSource { files: FileSet::open(FileFormat::Parquet, path.as_ref(), Box::new(opener), None)? })
    }

    /// The files read, in order.
    pub fn files(&self) -> &[PathBuf] {
        self.files.files()
    }

    /// Reads the whole input into memory.
    ///
    /// # Errors
    /// As [`ParquetSource::open`], or a corrupt page.
    pub fn read_all(path: impl AsRef<Path>) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        let mut src = Self::open(path, 64 * 1024)?;
        let mut out = Vec::new();
        while let Some(b) = src.next_batch() {
            out.push(b?);
        }
        Ok((src.schema(), out))
    }
}

impl Source for ParquetSource {
    fn schema(&self) -> SchemaRef {
        self.files.schema()
    }
    fn next_batch(&mut self) -> Option<Result<RecordBatch>> {
        self.files.next_batch()
    }
}
