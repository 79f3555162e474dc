//! Parquet input: one file, a directory or a glob, read in batches, with a projection to the
//! needed columns (the other columns' pages are never decoded).

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::files::{BatchIter, FileSet, Seek, projection};
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
        let at_columns = columns.clone();
        let opener = move |file: &Path| open_file(file, columns.as_deref(), batch_size, 0);
        let seek = Seek {
            rows: Box::new(|file: &Path| Ok(reader_builder(file)?.metadata().file_metadata().num_rows().max(0) as u64)),
            open_at: Box::new(move |file: &Path, offset: usize| {
                open_file(file, at_columns.as_deref(), batch_size, offset)
            }),
        };
        let files = FileSet::open(FileFormat::Parquet, path.as_ref(), Box::new(opener), None)?;
        Ok(ParquetSource { files: files.with_seek(seek) })
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
    /// Whole files and row groups are skipped by their footers' row counts, pages within a
    /// row group by the offset index where the file has one: nothing skipped is decoded
    /// beyond the pages the first kept row shares.
    fn skip_rows(&mut self, rows: u64) -> Result<u64> {
        self.files.skip_rows(rows)
    }
}

fn reader_builder(file: &Path) -> Result<ParquetRecordBatchReaderBuilder<File>> {
    let f = File::open(file)
        .map_err(|e| WindrowError::Data(format!("cannot open Parquet file {}: {e}", file.display())))?;
    ParquetRecordBatchReaderBuilder::try_new(f)
        .map_err(|e| WindrowError::Data(format!("{} is not a readable Parquet file: {e}", file.display())))
}

/// `file`'s batches from row `offset` on, of `columns` (all when `None`).
fn open_file(
    file: &Path,
    columns: Option<&[String]>,
    batch_size: usize,
    offset: usize,
) -> Result<(SchemaRef, BatchIter)> {
    let builder = reader_builder(file)?;
    let builder = match columns {
        Some(cols) => {
            let idx = projection(builder.schema(), cols, file)?;
            let mask = ProjectionMask::roots(builder.parquet_schema(), idx);
            builder.with_projection(mask)
        }
        None => builder,
    };
    let builder = if offset > 0 { builder.with_offset(offset) } else { builder };
    let reader = builder.with_batch_size(batch_size).build()?;
    let schema = arrow::record_batch::RecordBatchReader::schema(&reader);
    Ok((schema, Box::new(reader) as BatchIter))
}
