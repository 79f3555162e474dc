//! Inputs: anything that yields `RecordBatch`es in arrival order.
//!
//! | source | reads |
//! |---|---|
//! | [`MemorySource`] | batches already in memory |
//! | [`ParquetSource`] | Parquet: one file, a directory (its `*.parquet` files in name order) or a glob; in batches, optionally only some columns |
//! | [`IpcSource`] | Arrow IPC, file or stream format (detected from the first bytes) |
//! | [`CsvSource`] | CSV with a given schema or one inferred from the first rows |
//!
//! [`ReadAhead`] reads the next batches of any source on a thread of its own, so that decoding
//! and processing overlap; [`open_files`] returns its readers wrapped in it.
//!
//! [`open_files`] picks the reader from a [`FileFormat`] (given, or detected from the file's
//! magic bytes and extension). Every error names the file, and the batch or line where the
//! reader knows it; a truncated or malformed file is an error, never a shorter stream — except an
//! Arrow IPC *stream* cut exactly at a message boundary, which the format cannot tell from its end
//! (the file format, with its footer, can).

mod csv;
mod files;
mod ipc;
mod parquet;
mod read_ahead;

use std::path::Path;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

pub use self::csv::{CsvOptions, CsvSource};
pub use self::files::{FileFormat, resolve_paths};
pub use self::ipc::{IpcFormat, IpcSource};
pub use self::parquet::ParquetSource;
pub use self::read_ahead::ReadAhead;
use crate::error::Result;

/// Batches [`open_files`] reads ahead: enough to keep the engine busy while the next is
/// decoded, few enough to hold little memory.
pub const READ_AHEAD_BATCHES: usize = 2;

/// A source of micro-batches.
pub trait Source: Send {
    /// The schema of every batch.
    fn schema(&self) -> SchemaRef;
    /// The next batch, `None` at end of input.
    fn next_batch(&mut self) -> Option<Result<RecordBatch>>;
    /// Before the first batch: skips up to `rows` rows without reading them, where the source
    /// can (a resumed run skips the rows its checkpoint covers), and returns how many it
    /// skipped. The caller reads and drops the rest. The default skips nothing.
    ///
    /// # Errors
    /// A file that cannot be opened at the new position.
    fn skip_rows(&mut self, rows: u64) -> Result<u64> {
        let _ = rows;
        Ok(0)
    }
}

impl<S: Source + ?Sized> Source for Box<S> {
    fn schema(&self) -> SchemaRef {
        (**self).schema()
    }
    fn next_batch(&mut self) -> Option<Result<RecordBatch>> {
        (**self).next_batch()
    }
    fn skip_rows(&mut self, rows: u64) -> Result<u64> {
        (**self).skip_rows(rows)
    }
}

/// How to read files: batch size, the columns to keep, and CSV's options.
#[derive(Clone, Debug)]
pub struct ReadOptions {
    /// Rows per batch (Parquet and CSV; IPC batches are sliced to at most this many rows).
    pub batch_size: usize,
    /// Keep only these columns, in the file's order (`None`: all). Parquet skips the others'
    /// pages entirely.
    pub columns: Option<Vec<String>>,
    /// Parquet only: string columns to read as `Dictionary(Int32, Utf8)` (`LargeUtf8` ones as
    /// `Dictionary(Int32, LargeUtf8)`; a column the file already declares a dictionary stays as
    /// declared). A column stored dictionary-encoded (what most writers do for strings) then
    /// keeps the file's dictionary: no string is copied per row, and a key column on it is
    /// hashed and looked up once per dictionary value instead of once per row. Key columns
    /// leave the window operators as strings (windows and late rows alike); where input columns
    /// are passed on as read (`errors`, late rows' other columns), the column stays a dictionary.
    pub dictionary: Vec<String>,
    /// CSV only: schema, header, delimiter, inference.
    pub csv: CsvOptions,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions { batch_size: 65_536, columns: None, dictionary: Vec::new(), csv: CsvOptions::default() }
    }
}

/// Opens `path` (a file, a directory or a glob) in `format`, or in the format detected from
/// the first file's magic bytes and extension when `format` is `None`. The reader runs
/// [`ReadAhead`] of its caller by two batches.
///
/// # Errors
/// No file found, an undetectable format, or what the format's reader reports when opening
/// (the message names the file).
pub fn open_files(
    path: impl AsRef<Path>,
    format: Option<FileFormat>,
    options: &ReadOptions,
) -> Result<Box<dyn Source>> {
    let path = path.as_ref();
    let format = match format {
        Some(f) => f,
        None => {
            let files = resolve_paths(path, None)?;
            FileFormat::detect(&files[0])?
        }
    };
    let reader: Box<dyn Source> = match format {
        FileFormat::Parquet => Box::new(ParquetSource::open_with(path, options)?),
        FileFormat::Ipc => Box::new(IpcSource::open_with(path, options)?),
        FileFormat::Csv => Box::new(CsvSource::open_with(path, options)?),
    };
    Ok(Box::new(ReadAhead::new(reader, READ_AHEAD_BATCHES)))
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
