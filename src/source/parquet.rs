//! Parquet input: one file, a directory or a glob, read in batches, with a projection to the
//! needed columns (the other columns' pages are never decoded).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::{DataType, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder};

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

    /// Opens `path` with [`ReadOptions`]: batch size, the columns to read, and the string
    /// columns to read as dictionaries.
    ///
    /// # Errors
    /// As [`open`](Self::open), a column that is not in the file, or a
    /// [`dictionary`](ReadOptions::dictionary) column that is not a string column.
    pub fn open_with(path: impl AsRef<Path>, options: &ReadOptions) -> Result<Self> {
        let read = Read {
            columns: options.columns.clone(),
            dictionary: options.dictionary.clone(),
            batch_size: options.batch_size.max(1),
        };
        let at = read.clone();
        let opener = move |file: &Path| read.open(file, 0);
        let seek = Seek {
            rows: Box::new(|file: &Path| Ok(reader_builder(file)?.metadata().file_metadata().num_rows().max(0) as u64)),
            open_at: Box::new(move |file: &Path, offset: usize| at.open(file, offset)),
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
        Self::read_all_with(path, &ReadOptions::default())
    }

    /// Reads the whole input into memory with [`ReadOptions`] (the batch size as given).
    ///
    /// # Errors
    /// As [`ParquetSource::open_with`], or a corrupt page.
    pub fn read_all_with(path: impl AsRef<Path>, options: &ReadOptions) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        let mut src = Self::open_with(path, options)?;
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
    ParquetRecordBatchReaderBuilder::try_new(open_file(file)?).map_err(|e| unreadable(file, e))
}

fn open_file(file: &Path) -> Result<File> {
    File::open(file).map_err(|e| WindrowError::Data(format!("cannot open Parquet file {}: {e}", file.display())))
}

fn unreadable(file: &Path, e: parquet::errors::ParquetError) -> WindrowError {
    WindrowError::Data(format!("{} is not a readable Parquet file: {e}", file.display()))
}

/// What to read of each file.
#[derive(Clone)]
struct Read {
    columns: Option<Vec<String>>,
    dictionary: Vec<String>,
    batch_size: usize,
}

impl Read {
    /// `file`'s batches from row `offset` on.
    fn open(&self, file: &Path, offset: usize) -> Result<(SchemaRef, BatchIter)> {
        let builder = self.builder(file)?;
        let builder = match &self.columns {
            Some(cols) => {
                let idx = projection(builder.schema(), cols, file)?;
                let mask = ProjectionMask::roots(builder.parquet_schema(), idx);
                builder.with_projection(mask)
            }
            None => builder,
        };
        let builder = if offset > 0 { builder.with_offset(offset) } else { builder };
        let reader = builder.with_batch_size(self.batch_size).build()?;
        let schema = arrow::record_batch::RecordBatchReader::schema(&reader);
        Ok((schema, Box::new(reader) as BatchIter))
    }

    /// A reader of `file`, its `dictionary` columns read as `Dictionary(Int32, Utf8)`.
    fn builder(&self, file: &Path) -> Result<ParquetRecordBatchReaderBuilder<File>> {
        if self.dictionary.is_empty() {
            return reader_builder(file);
        }
        let f = open_file(file)?;
        let plain = ArrowReaderMetadata::load(&f, ArrowReaderOptions::new()).map_err(|e| unreadable(file, e))?;
        let hinted = dictionary_schema(plain.schema(), &self.dictionary, file)?;
        let metadata =
            ArrowReaderMetadata::try_new(Arc::clone(plain.metadata()), ArrowReaderOptions::new().with_schema(hinted))
                .map_err(|e| unreadable(file, e))?;
        Ok(ParquetRecordBatchReaderBuilder::new_with_metadata(f, metadata))
    }
}

/// `schema` with the string columns `names` as `Dictionary(Int32, Utf8)`: the reader then keeps
/// a column chunk's dictionary pages as they are, one dictionary shared by the chunk's batches,
/// instead of copying every row's string out of it.
fn dictionary_schema(schema: &SchemaRef, names: &[String], file: &Path) -> Result<SchemaRef> {
    let dictionary = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
    let mut fields = schema.fields().to_vec();
    for name in names {
        let Ok(i) = schema.index_of(name) else {
            let have: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            return Err(WindrowError::Plan(format!(
                "dictionary column \"{name}\" is not in {}; it has columns {have:?}",
                file.display()
            )));
        };
        let as_dictionary = match fields[i].data_type() {
            DataType::Utf8 | DataType::Utf8View => dictionary.clone(),
            // 64-bit offsets kept: a batch of plain-encoded pages may hold more than 2 GiB.
            DataType::LargeUtf8 => DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::LargeUtf8)),
            // Already a dictionary (the file's Arrow schema says so): read as it says.
            DataType::Dictionary(_, value) if matches!(**value, DataType::Utf8 | DataType::LargeUtf8) => continue,
            t => {
                return Err(WindrowError::Plan(format!(
                    "dictionary column \"{name}\" of {} has type {t}; only string columns can be read as dictionaries",
                    file.display()
                )));
            }
        };
        fields[i] = Arc::new(fields[i].as_ref().clone().with_data_type(as_dictionary));
    }
    Ok(Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone())))
}
