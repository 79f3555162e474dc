//! Outputs: where a step's `down`, `late`, `meta` or `errors` batches go.
//!
//! | sink | writes |
//! |---|---|
//! | [`ParquetSink`] | one Parquet file, or a directory of rolling `part-00000.parquet`, … files of bounded size |
//! | [`IpcSink`] | one Arrow IPC file (file format) |
//! | [`CsvSink`] | one CSV file with a header row |
//! | [`PartSink`] | a directory of `part-00000.<ext>`, … files (Parquet, Arrow IPC or CSV) published when a checkpoint commits |
//! | [`TableSink`] | a pretty table on stdout (the first rows, and a count of the rest) |
//! | [`MemorySink`] | batches kept in memory, readable through a [`MemoryHandle`] |
//! | [`BackgroundSink`] | any of these, written on a thread of its own (`windrow run` writes files so) |
//!
//! Window operators emit many small batches (what closed on one input batch); the file sinks
//! are wrapped in a [`Coalesce`] that gathers them into batches of a sensible size first
//! ([`open_sink`] does this). Files are written under a temporary name (`.NAME.inprogress`
//! in the same directory) and renamed when complete, so a reader never sees half a file. Under
//! checkpoints a [`PartSink`] goes one step further: complete parts stay hidden (staged) until
//! the checkpoint that covers them is durable, so output and checkpoint commit together.

mod background;
mod csv;
mod ipc;
mod parquet;
mod parts;
mod table;

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arrow::compute::BatchCoalescer;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

pub use self::background::{BACKGROUND_QUEUE_BATCHES, BackgroundSink, WriteFailure};
pub use self::csv::CsvSink;
pub use self::ipc::IpcSink;
pub use self::parquet::{ParquetSink, RollPolicy};
pub use self::parts::{PartSink, part_ext};
pub use self::table::TableSink;
use crate::error::{Result, WindrowError};
use crate::source::FileFormat;

/// Default rows per output batch after coalescing.
pub const DEFAULT_COALESCE_ROWS: usize = 65_536;

/// Where a sink's batches go.
pub trait Sink: Send {
    /// Writes one batch (it has the schema the sink was opened with).
    ///
    /// # Errors
    /// A failed write; the message names the file.
    fn write(&mut self, batch: &RecordBatch) -> Result<()>;

    /// Flushes and closes: completes files (renaming them to their final names) and says
    /// what was written. The sink takes no more batches afterwards.
    ///
    /// # Errors
    /// A failed write or rename.
    fn finish(&mut self) -> Result<SinkSummary>;
}

/// What a sink wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SinkSummary {
    /// Where: a path, `stdout` or `memory`.
    pub target: String,
    /// Rows written.
    pub rows: u64,
    /// Batches written (after coalescing).
    pub batches: u64,
    /// Files completed, in order (empty for stdout and memory).
    pub files: Vec<PathBuf>,
}

/// A sink that gathers small batches into batches of `target_rows` (arrow's
/// [`BatchCoalescer`]) before handing them on.
pub struct Coalesce<S> {
    inner: S,
    coalescer: BatchCoalescer,
}

impl<S: Sink> Coalesce<S> {
    /// Wraps `inner`; batches of `schema` are gathered into about `target_rows` rows.
    pub fn new(inner: S, schema: SchemaRef, target_rows: usize) -> Self {
        Coalesce { inner, coalescer: BatchCoalescer::new(schema, target_rows.max(1)) }
    }

    fn drain(&mut self) -> Result<()> {
        while let Some(b) = self.coalescer.next_completed_batch() {
            self.inner.write(&b)?;
        }
        Ok(())
    }
}

impl<S: Sink> Sink for Coalesce<S> {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.coalescer.push_batch(batch.clone())?;
        self.drain()
    }

    fn finish(&mut self) -> Result<SinkSummary> {
        self.coalescer.finish_buffered_batch()?;
        self.drain()?;
        self.inner.finish()
    }
}

impl<S: Sink + ?Sized> Sink for Box<S> {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        (**self).write(batch)
    }
    fn finish(&mut self) -> Result<SinkSummary> {
        (**self).finish()
    }
}

/// Reads what a [`MemorySink`] collected.
#[derive(Clone, Debug, Default)]
pub struct MemoryHandle(Arc<Mutex<Vec<RecordBatch>>>);

impl MemoryHandle {
    /// The batches written so far.
    pub fn batches(&self) -> Vec<RecordBatch> {
        self.0.lock().map(|b| b.clone()).unwrap_or_default()
    }
}

/// Keeps batches in memory (tests, and programs that query outputs afterwards).
pub struct MemorySink {
    batches: MemoryHandle,
    rows: u64,
    count: u64,
}

impl MemorySink {
    /// A sink and the handle that reads what it collects.
    pub fn new() -> (Self, MemoryHandle) {
        let handle = MemoryHandle::default();
        (MemorySink { batches: handle.clone(), rows: 0, count: 0 }, handle)
    }
}

impl Sink for MemorySink {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.rows += batch.num_rows() as u64;
        self.count += 1;
        self.batches
            .0
            .lock()
            .map_err(|_| WindrowError::Internal("memory sink lock poisoned".into()))?
            .push(batch.clone());
        Ok(())
    }

    fn finish(&mut self) -> Result<SinkSummary> {
        Ok(SinkSummary { target: "memory".into(), rows: self.rows, batches: self.count, files: Vec::new() })
    }
}

/// Opens a file sink for batches of `schema` at `path` in `format` (from the extension when
/// `None`; a path without one is a Parquet directory), wrapped in a [`Coalesce`] of
/// `coalesce_rows` rows. `roll` applies to Parquet directories.
///
/// # Errors
/// An unknown format, a schema the format cannot hold (CSV and nested columns), or a file
/// that cannot be created.
pub fn open_sink(
    path: &Path,
    format: Option<FileFormat>,
    schema: SchemaRef,
    roll: RollPolicy,
    coalesce_rows: usize,
) -> Result<Box<dyn Sink>> {
    let format = match format.or_else(|| FileFormat::from_extension(path)) {
        Some(f) => f,
        None if path.extension().is_none() => FileFormat::Parquet,
        None => {
            return Err(WindrowError::Config(format!(
                "cannot tell the output format of {}: use a .parquet, .arrow or .csv name, a directory name \
                 without extension (rolling Parquet files), or name the format",
                path.display()
            )));
        }
    };
    Ok(match format {
        FileFormat::Parquet => {
            Box::new(Coalesce::new(ParquetSink::create(path, schema.clone(), roll)?, schema, coalesce_rows))
        }
        FileFormat::Ipc => Box::new(Coalesce::new(IpcSink::create(path, schema.clone())?, schema, coalesce_rows)),
        FileFormat::Csv => Box::new(Coalesce::new(CsvSink::create(path, schema.clone())?, schema, coalesce_rows)),
    })
}

/// A file being written under a temporary name in its final directory; [`commit`](Self::commit)
/// renames it into place.
pub(crate) struct PendingFile {
    tmp: PathBuf,
    dest: PathBuf,
}

impl PendingFile {
    /// Creates `.NAME.inprogress` beside `dest` (and `dest`'s directory if needed).
    pub(crate) fn create(dest: &Path) -> Result<(Self, File)> {
        let dir = dest.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)
            .map_err(|e| WindrowError::Data(format!("cannot create output directory {}: {e}", dir.display())))?;
        let name = dest.file_name().and_then(|n| n.to_str()).unwrap_or("output");
        Self::create_as(dest, &dir.join(format!(".{name}.inprogress")))
    }

    /// Creates `tmp` to be renamed to `dest` on commit, for callers that choose the temporary
    /// name themselves (part files); both are in one directory, which must exist.
    pub(crate) fn create_as(dest: &Path, tmp: &Path) -> Result<(Self, File)> {
        let file = File::create(tmp)
            .map_err(|e| WindrowError::Data(format!("cannot create output file {}: {e}", tmp.display())))?;
        Ok((PendingFile { tmp: tmp.to_path_buf(), dest: dest.to_path_buf() }, file))
    }

    /// The final path.
    pub(crate) fn dest(&self) -> &Path {
        &self.dest
    }

    /// Renames the complete file into place (replacing an older one).
    pub(crate) fn commit(self) -> Result<PathBuf> {
        // Data on disk before the name appears, and the new name on disk before we report it:
        // after a crash a reader finds the whole file or none.
        File::open(&self.tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| WindrowError::Data(format!("cannot sync {}: {e}", self.tmp.display())))?;
        std::fs::rename(&self.tmp, &self.dest).map_err(|e| {
            WindrowError::Data(format!("cannot rename {} to {}: {e}", self.tmp.display(), self.dest.display()))
        })?;
        if let Some(dir) = self.dest.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| WindrowError::Data(format!("cannot sync directory {}: {e}", dir.display())))?;
        }
        Ok(self.dest)
    }
}

/// A write error that names the file.
pub(crate) fn write_err(path: &Path, e: impl std::fmt::Display) -> WindrowError {
    WindrowError::Data(format!("writing {}: {e}", path.display()))
}

/// A writer that counts the bytes handed to it, so a part file can roll at a size while the
/// format writer still buffers (arrow's CSV writer does not lend out its inner writer, hence
/// the shared counter).
pub(crate) struct Counted<W> {
    inner: W,
    bytes: Arc<AtomicU64>,
}

impl<W: Write> Counted<W> {
    /// Wraps `inner`; the second value reads the count.
    pub(crate) fn new(inner: W) -> (Self, Arc<AtomicU64>) {
        let bytes = Arc::new(AtomicU64::new(0));
        (Counted { inner, bytes: bytes.clone() }, bytes)
    }
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
