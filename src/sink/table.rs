//! A pretty table on stdout: the first rows of an output and a count of the rest.

use std::io::Write;

use arrow::record_batch::RecordBatch;
use arrow::util::pretty::pretty_format_batches;

use super::{Sink, SinkSummary};
use crate::error::{Result, WindrowError};

/// Keeps the first `limit` rows and prints them as a table when finished (with a title and
/// the number of rows not shown), to stdout or any writer.
pub struct TableSink {
    title: String,
    limit: usize,
    kept: Vec<RecordBatch>,
    kept_rows: usize,
    rows: u64,
    batches: u64,
    out: Box<dyn Write + Send>,
}

impl TableSink {
    /// Prints to stdout under `title` (e.g. the output's name).
    pub fn stdout(title: impl Into<String>, limit: usize) -> Self {
        Self::to_writer(title, limit, Box::new(std::io::stdout()))
    }

    /// Prints to `out`.
    pub fn to_writer(title: impl Into<String>, limit: usize, out: Box<dyn Write + Send>) -> Self {
        TableSink { title: title.into(), limit, kept: Vec::new(), kept_rows: 0, rows: 0, batches: 0, out }
    }
}

impl Sink for TableSink {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.rows += batch.num_rows() as u64;
        self.batches += 1;
        let take = batch.num_rows().min(self.limit - self.kept_rows);
        if take > 0 {
            self.kept.push(batch.slice(0, take));
            self.kept_rows += take;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<SinkSummary> {
        let io = |e: std::io::Error| WindrowError::Data(format!("writing the table of {}: {e}", self.title));
        if self.rows == 0 {
            writeln!(self.out, "{}: no rows", self.title).map_err(io)?;
        } else if self.kept_rows > 0 {
            let rest = self.rows - self.kept_rows as u64;
            let more = if rest > 0 { format!(" ({rest} more not shown)") } else { String::new() };
            writeln!(self.out, "{}: first {} of {} rows{more}", self.title, self.kept_rows, self.rows).map_err(io)?;
            writeln!(self.out, "{}", pretty_format_batches(&self.kept)?).map_err(io)?;
        } else {
            writeln!(self.out, "{}: {} rows", self.title, self.rows).map_err(io)?;
        }
        self.out.flush().map_err(io)?;
        self.kept.clear();
        Ok(SinkSummary { target: "stdout".into(), rows: self.rows, batches: self.batches, files: Vec::new() })
    }
}
