//! A sink written on a thread of its own, so that encoding and writing files overlaps the
//! window operators' work instead of adding to it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
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

/// The first failed write of a group of background sinks (a run's outputs): every sink of the
/// group reports it on its next `write`, so a failed output stops the run at once, not when
/// that output is next written to.
#[derive(Clone, Default)]
pub struct WriteFailure {
    failed: Arc<AtomicBool>,
    /// The failure, until a sink reports it.
    error: Arc<Mutex<Option<WindrowError>>>,
}

impl WriteFailure {
    fn record(&self, e: WindrowError) {
        if let Ok(mut first) = self.error.lock()
            && !self.failed.swap(true, Ordering::AcqRel)
        {
            *first = Some(e);
        }
    }

    /// The failure to report, if a write failed: the error itself the first time, a pointer to
    /// it after that.
    fn check(&self) -> Result<()> {
        if !self.failed.load(Ordering::Acquire) {
            return Ok(());
        }
        let first = self.error.lock().ok().and_then(|mut e| e.take());
        Err(first.unwrap_or_else(reported_above))
    }
}

/// What a sink reports of a failure another report already gave.
fn reported_above() -> WindrowError {
    WindrowError::Data("an output could not be written (reported above)".into())
}

/// Wraps a sink so that its writes run on a thread of its own, in order.
///
/// [`write`](Sink::write) hands the batch over and returns (it waits only while the queue is
/// full). A write that fails on the thread is reported by the next `write` of any sink sharing
/// its [`WriteFailure`], or by [`finish`](Sink::finish), which waits for every queued batch to
/// be written and then finishes the inner sink. Dropped without `finish` (a run that failed
/// elsewhere), the thread stops writing and drops the inner sink unfinished, exactly as
/// without the thread: no partial file is completed.
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
    failure: WriteFailure,
    /// Set when dropped unfinished: the thread writes nothing more.
    abandoned: Arc<AtomicBool>,
}

impl BackgroundSink {
    /// Starts the writer thread for `sink`; `target` names it in messages (a path).
    ///
    /// # Errors
    /// The thread cannot be started.
    pub fn spawn(target: impl Into<String>, sink: Box<dyn Sink>) -> Result<Self> {
        Self::spawn_sharing(target, sink, &WriteFailure::default())
    }

    /// As [`spawn`](Self::spawn), reporting its failure through `failure`, which other sinks
    /// share (and theirs through it).
    ///
    /// # Errors
    /// The thread cannot be started.
    pub fn spawn_sharing(target: impl Into<String>, sink: Box<dyn Sink>, failure: &WriteFailure) -> Result<Self> {
        let target = target.into();
        let (queue, batches) = sync_channel(BACKGROUND_QUEUE_BATCHES);
        let abandoned = Arc::new(AtomicBool::new(false));
        let (thread_failure, thread_abandoned) = (failure.clone(), Arc::clone(&abandoned));
        let writer = std::thread::Builder::new()
            .name(format!("windrow-write {target}"))
            .spawn(move || {
                write_all(sink, &batches, &thread_abandoned).map_err(|e| {
                    thread_failure.record(e);
                    reported_above()
                })
            })
            .map_err(|e| WindrowError::Internal(format!("cannot start the writer thread for {target}: {e}")))?;
        Ok(BackgroundSink { target, queue: Some(queue), writer: Some(writer), failure: failure.clone(), abandoned })
    }

    /// Waits for the writer thread; its failure, if any, is the recorded one.
    fn join(&mut self) -> Result<SinkSummary> {
        let Some(writer) = self.writer.take() else {
            self.failure.check()?;
            return Err(WindrowError::Internal(format!("output {} was already finished", self.target)));
        };
        let joined = writer
            .join()
            .map_err(|_| WindrowError::Internal(format!("the writer thread for {} panicked", self.target)))?;
        joined.or_else(|fallback| {
            self.failure.check()?;
            Err(fallback)
        })
    }
}

/// The writer thread: writes batches in order until told to finish (then finishes the sink),
/// until the queue is dropped or the sink abandoned (then drops it unfinished), or until a
/// write fails.
fn write_all(mut sink: Box<dyn Sink>, batches: &Receiver<Message>, abandoned: &AtomicBool) -> Result<SinkSummary> {
    while let Ok(message) = batches.recv() {
        if abandoned.load(Ordering::Acquire) {
            break;
        }
        match message {
            Message::Batch(batch) => sink.write(&batch)?,
            Message::Finish => return sink.finish(),
        }
    }
    Err(WindrowError::Internal("output abandoned before it was finished".into()))
}

impl Drop for BackgroundSink {
    /// Tells the thread to stop, closes the queue and waits for the thread, which drops the
    /// inner sink unfinished, so that nothing is left running or written behind a failed run.
    fn drop(&mut self) {
        if self.writer.is_some() {
            self.abandoned.store(true, Ordering::Release);
        }
        self.queue = None;
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

impl Sink for BackgroundSink {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.failure.check()?;
        let Some(queue) = self.queue.as_ref() else {
            return Err(WindrowError::Internal(format!("output {} was already finished", self.target)));
        };
        if queue.send(Message::Batch(batch.clone())).is_err() {
            // The thread stopped: a write failed.
            self.queue = None;
            self.join()?;
            return Err(WindrowError::Internal(format!("the writer thread for {} stopped", self.target)));
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<SinkSummary> {
        if let Some(queue) = self.queue.take() {
            // If the thread already stopped on an error, the send fails and `join` reports it.
            let _ = queue.send(Message::Finish);
        }
        self.join()
    }
}
