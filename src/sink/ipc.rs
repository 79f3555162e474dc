//! Arrow IPC output (file format).

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::datatypes::SchemaRef;
use arrow::ipc::writer::FileWriter;
use arrow::record_batch::RecordBatch;

use super::{PendingFile, Sink, SinkSummary, write_err};
use crate::error::Result;

/// Writes one Arrow IPC file (file format, readable by [`crate::source::IpcSource`],
/// pyarrow's `ipc.open_file`, DuckDB, polars).
pub struct IpcSink {
    path: PathBuf,
    open: Option<(PendingFile, FileWriter<std::io::BufWriter<File>>)>,
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
        let writer = FileWriter::try_new_buffered(file, &schema).map_err(|e| write_err(path, e))?;
        Ok(IpcSink { path: path.to_path_buf(), open: Some((pending, writer)), rows: 0, batches: 0, done: Vec::new() })
    }
}

impl Sink for IpcSink {
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
