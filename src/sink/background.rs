//! A sink written on a thread of its own, so that encoding and writing files overlaps the
//! window operators' work instead of adding to it.

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use arrow::record_batch::RecordBatch;

use super::{Sink, SinkSummary};
use crate::error::{Result, WindrowError};

/// Batches queued for the writer thread before [`BackgroundSink::write`] waits: enough to ride
/// out one slow write (a Parquet row group being encoded), few enough to bound memory.
pub const BACKGROUND_QUEUE_BATCHES: usize = 8;

enum Message {
    Batch(RecordBatch),
    Finish,
}

/// Wraps a sink so that its writes run on a thread of its own, in order.
///
/// [`write`](Sink::write) hands the batch over and returns (it waits only while the queue is
/// full). A write that fails on the thread is reported by the next `write`, or by
/// [`finish`](Sink::finish), which waits for every queued batch to be written and then
/// finishes the inner sink. Dropped without `finish` (a run that failed elsewhere), the inner
/// sink is dropped unfinished too, exactly as it would be without the thread: no partial
/// file is completed.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use arrow::array::{Int64Array, RecordBatch};
/// use arrow::datatypes::{DataType, Field, Schema};
/// use windrow::sink::{BackgroundSink, MemorySink, Sink};
///
/// let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
/// let (memory, handle) = MemorySink::new();
/// let mut sink = BackgroundSink::spawn("memory", Box::new(memory))?;
/// for n in 0..3 {
///     sink.write(&RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![n]))])?)?;
/// }
/// assert_eq!(sink.finish()?.rows, 3);
/// assert_eq!(handle.batches().len(), 3);
/// # Ok(())
/// # }
/// ```
pub struct BackgroundSink {
    target: String,
    queue: Option<SyncSender<Message>>,
    writer: Option<JoinHandle<Result<SinkSummary>>>,
}

impl BackgroundSink {
    /// Starts the writer thread for `sink`; `target` names it in messages (a path).
    ///
    /// # Errors
    /// The thread cannot be started.
    pub fn spawn(target: impl Into<String>, sink: Box<dyn Sink>) -> Result<Self> {
        let target = target.into();
        let (queue, batches) = sync_channel(BACKGROUND_QUEUE_BATCHES);
        let writer = std::thread::Builder::new()
            .name(format!("windrow-write {target}"))
            .spawn(move || write_all(sink, &batches))
            .map_err(|e| WindrowError::Internal(format!("cannot start the writer thread for {target}: {e}")))?;
        Ok(BackgroundSink { target, queue: Some(queue), writer: Some(writer) })
    }

    /// Waits for the writer thread and returns what it returned.
    fn join(&mut self) -> Result<SinkSummary> {
        let writer = self.writer.take().ok_or_else(|| self.finished())?;
        writer.join().map_err(|_| WindrowError::Internal(format!("the writer thread for {} panicked", self.target)))?
    }

    fn finished(&self) -> WindrowError {
        WindrowError::Internal(format!("output {} was already finished", self.target))
    }
}

/// The writer thread: writes batches in order until told to finish (then finishes the sink)
/// or until the queue is dropped (then drops it unfinished). Stops at the first error.
fn write_all(mut sink: Box<dyn Sink>, batches: &Receiver<Message>) -> Result<SinkSummary> {
    while let Ok(message) = batches.recv() {
        match message {
            Message::Batch(batch) => sink.write(&batch)?,
            Message::Finish => return sink.finish(),
        }
    }
    Err(WindrowError::Internal("output abandoned before it was finished".into()))
}

impl Drop for BackgroundSink {
    /// Closes the queue and waits for the thread, which drops the inner sink unfinished (after
    /// writing what was queued), so that nothing is left running behind a failed run.
    fn drop(&mut self) {
        self.queue = None;
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

impl Sink for BackgroundSink {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let queue = self.queue.as_ref().ok_or_else(|| self.finished())?;
        if queue.send(Message::Batch(batch.clone())).is_err() {
            // The thread stopped: a write failed. Its error says which and why.
            self.queue = None;
            return match self.join() {
                Err(e) => Err(e),
                Ok(_) => Err(WindrowError::Internal(format!("the writer thread for {} stopped", self.target))),
            };
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<SinkSummary> {
        let queue = self.queue.take().ok_or_else(|| self.finished())?;
        // If the thread already stopped on an error, the send fails and `join` returns it.
        let _ = queue.send(Message::Finish);
        drop(queue);
        self.join()
    }
}
