//! Parquet output: one file, or a directory of rolling part files of bounded size.

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use super::{PendingFile, Sink, SinkSummary, write_err};
use crate::error::{Result, WindrowError};

/// When a rolling Parquet sink starts a new part file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RollPolicy {
    /// Start a new file once this many rows were written to the current one.
    pub max_rows: Option<u64>,
    /// Start a new file once the current one holds about this many bytes (encoded size,
    /// checked after each batch, so a file exceeds it by at most one batch).
    pub max_bytes: Option<u64>,
}

impl Default for RollPolicy {
    /// 128 MiB per file, any number of rows.
    fn default() -> Self {
        RollPolicy { max_rows: None, max_bytes: Some(128 * 1024 * 1024) }
    }
}

struct Open {
    pending: PendingFile,
    writer: ArrowWriter<File>,
    rows: u64,
}

/// Writes Parquet. A path ending in `.parquet` is one file; any other path is a directory
/// of `part-00000.parquet`, `part-00001.parquet`, … rolled by a [`RollPolicy`]. Opening a
/// directory sink removes the `part-NNNNN.parquet` files an earlier run left there, so the
/// directory holds exactly this run's output.
pub struct ParquetSink {
    schema: SchemaRef,
    /// `Some(dir)` in rolling mode.
    dir: Option<PathBuf>,
    file: PathBuf,
    /// The temporary name of a single file, when the caller chose it (part files).
    tmp: Option<PathBuf>,
    roll: RollPolicy,
    current: Option<Open>,
    done: Vec<PathBuf>,
    rows: u64,
    batches: u64,
}

fn is_part_file(name: &str) -> bool {
    name.strip_prefix("part-")
        .and_then(|r| r.strip_suffix(".parquet"))
        .is_some_and(|n| n.len() == 5 && n.bytes().all(|b| b.is_ascii_digit()))
}

impl ParquetSink {
    /// A sink for batches of `schema` at `path` (see the type's docs).
    ///
    /// # Errors
    /// A directory that cannot be created or cleared of old part files.
    pub fn create(path: &Path, schema: SchemaRef, roll: RollPolicy) -> Result<Self> {
        let single = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("parquet"));
        let dir = if single {
            None
        } else {
            std::fs::create_dir_all(path)
                .map_err(|e| WindrowError::Data(format!("cannot create output directory {}: {e}", path.display())))?;
            let entries = std::fs::read_dir(path)
                .map_err(|e| WindrowError::Data(format!("cannot list output directory {}: {e}", path.display())))?;
            for entry in entries.flatten() {
                if entry.file_name().to_str().is_some_and(is_part_file) {
                    std::fs::remove_file(entry.path()).map_err(|e| {
                        WindrowError::Data(format!("cannot remove old output {}: {e}", entry.path().display()))
                    })?;
                }
            }
            Some(path.to_path_buf())
        };
        Ok(ParquetSink {
            schema,
            dir,
            file: path.to_path_buf(),
            tmp: None,
            roll,
            current: None,
            done: Vec::new(),
            rows: 0,
            batches: 0,
        })
    }

    /// One file at `path` whatever its name, written as `tmp` until [`Sink::finish`] (part
    /// files: their names do not end in `.parquet` while staged); `path`'s directory must exist.
    /// The file is created with the first batch, or by `finish`.
    pub(crate) fn create_as(path: &Path, tmp: &Path, schema: SchemaRef) -> Self {
        ParquetSink {
            schema,
            dir: None,
            file: path.to_path_buf(),
            tmp: Some(tmp.to_path_buf()),
            roll: RollPolicy { max_rows: None, max_bytes: None },
            current: None,
            done: Vec::new(),
            rows: 0,
            batches: 0,
        }
    }

    /// Encoded bytes of the open file so far (0 when none is open).
    pub(crate) fn bytes(&self) -> u64 {
        self.current.as_ref().map_or(0, |o| (o.writer.bytes_written() + o.writer.in_progress_size()) as u64)
    }

    fn next_path(&self) -> PathBuf {
        match &self.dir {
            Some(dir) => dir.join(format!("part-{:05}.parquet", self.done.len())),
            None => self.file.clone(),
        }
    }

    fn open(&mut self) -> Result<&mut Open> {
        if self.current.is_none() {
            let dest = self.next_path();
            let (pending, file) = match (&self.dir, &self.tmp) {
                (None, Some(tmp)) => PendingFile::create_as(&dest, tmp)?,
                _ => PendingFile::create(&dest)?,
            };
            let props = WriterProperties::builder().set_compression(Compression::SNAPPY).build();
            let writer =
                ArrowWriter::try_new(file, self.schema.clone(), Some(props)).map_err(|e| write_err(&dest, e))?;
            self.current = Some(Open { pending, writer, rows: 0 });
        }
        // Set just above.
        self.current.as_mut().ok_or_else(|| WindrowError::Internal("no open Parquet file".into()))
    }

    fn close_current(&mut self) -> Result<()> {
        if let Some(open) = self.current.take() {
            let dest = open.pending.dest().to_path_buf();
            open.writer.close().map_err(|e| write_err(&dest, e))?;
            self.done.push(open.pending.commit()?);
        }
        Ok(())
    }

    fn rolling(&self) -> bool {
        self.dir.is_some()
    }
}

impl Sink for ParquetSink {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.batches += 1;
        let mut rest = batch.clone();
        while rest.num_rows() > 0 {
            let max_rows = if self.rolling() { self.roll.max_rows } else { None };
            let open = self.open()?;
            // Split a batch that would overflow the row limit; the rest goes to the next file.
            let room = max_rows.map_or(u64::MAX, |m| m.saturating_sub(open.rows).max(1));
            let n = (rest.num_rows() as u64).min(room) as usize;
            let part = rest.slice(0, n);
            let dest = open.pending.dest().to_path_buf();
            open.writer.write(&part).map_err(|e| write_err(&dest, e))?;
            open.rows += n as u64;
            let full_rows = max_rows.is_some_and(|m| open.rows >= m);
            let size = (open.writer.bytes_written() + open.writer.in_progress_size()) as u64;
            self.rows += n as u64;
            rest = rest.slice(n, rest.num_rows() - n);
            let full_bytes = self.roll.max_bytes.is_some_and(|m| size >= m);
            if self.rolling() && (full_rows || full_bytes) {
                self.close_current()?;
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<SinkSummary> {
        if self.current.is_none() && self.done.is_empty() {
            // No rows: still leave a file with the schema, so readers find the columns.
            self.open()?;
        }
        self.close_current()?;
        Ok(SinkSummary {
            target: self.file.display().to_string(),
            rows: self.rows,
            batches: self.batches,
            files: self.done.clone(),
        })
    }
}
