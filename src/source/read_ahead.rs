//! Reading the next batches on a thread of their own while the engine processes the current
//! one: decoding Parquet (or CSV, or IPC) and windowing then overlap instead of taking turns.

use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use super::Source;
use crate::error::{Result, WindrowError};

/// Wraps a source so that up to `depth` batches are read ahead on a separate thread.
///
/// The batches, their order and every error are the inner source's. The thread starts at
/// the first [`next_batch`](Source::next_batch), so [`skip_rows`](Source::skip_rows) still
/// reaches the inner source before any reading. Dropping the wrapper stops the thread after
/// the batch it is reading.
///
/// ```
/// # use std::sync::Arc;
/// # use arrow::array::Int64Array;
/// # use arrow::datatypes::{DataType, Field, Schema};
/// # use arrow::record_batch::RecordBatch;
/// use windrow::source::{MemorySource, ReadAhead, Source};
///
/// let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
/// let batch = |v: i64| RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![v]))]).unwrap();
/// let inner = MemorySource::new(schema.clone(), vec![batch(1), batch(2), batch(3)]);
/// let mut src = ReadAhead::new(Box::new(inner), 2);
/// let mut seen = 0;
/// while let Some(b) = src.next_batch() {
///     seen += 1;
///     assert_eq!(b?, batch(seen));
/// }
/// assert_eq!(seen, 3);
/// # Ok::<(), windrow::WindrowError>(())
/// ```
pub struct ReadAhead {
    schema: SchemaRef,
    depth: usize,
    state: State,
}

enum State {
    /// Not started: the inner source, for `skip_rows` and to hand to the thread.
    Waiting(Box<dyn Source>),
    Reading {
        batches: Receiver<Result<RecordBatch>>,
        thread: Option<JoinHandle<()>>,
    },
    Done,
}

impl ReadAhead {
    /// Reads up to `depth` (at least 1) batches ahead of the caller.
    pub fn new(inner: Box<dyn Source>, depth: usize) -> Self {
        ReadAhead { schema: inner.schema(), depth: depth.max(1), state: State::Waiting(inner) }
    }
}

impl Source for ReadAhead {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn next_batch(&mut self) -> Option<Result<RecordBatch>> {
        if matches!(self.state, State::Waiting(_)) {
            let State::Waiting(mut inner) = std::mem::replace(&mut self.state, State::Done) else {
                unreachable!("checked above");
            };
            let (tx, rx) = sync_channel(self.depth);
            let spawned = std::thread::Builder::new().name("windrow-read-ahead".into()).spawn(move || {
                while let Some(batch) = inner.next_batch() {
                    if tx.send(batch).is_err() {
                        return; // the reader was dropped
                    }
                }
            });
            match spawned {
                Ok(thread) => self.state = State::Reading { batches: rx, thread: Some(thread) },
                Err(e) => return Some(Err(WindrowError::Internal(format!("cannot start the read-ahead thread: {e}")))),
            }
        }
        let State::Reading { batches, thread } = &mut self.state else {
            return None;
        };
        match batches.recv() {
            Ok(batch) => Some(batch),
            Err(_) => {
                // The thread ended: at end of input, or because it panicked, which must not
                // look like end of input.
                let panicked = thread.take().is_some_and(|t| t.join().is_err());
                self.state = State::Done;
                panicked.then(|| Err(WindrowError::Internal("the input reader thread panicked".into())))
            }
        }
    }

    fn skip_rows(&mut self, rows: u64) -> Result<u64> {
        match &mut self.state {
            State::Waiting(inner) => inner.skip_rows(rows),
            _ => Ok(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;
    use crate::source::MemorySource;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]))
    }

    fn batch(v: i64) -> RecordBatch {
        RecordBatch::try_new(schema(), vec![Arc::new(Int64Array::from(vec![v]))]).unwrap()
    }

    /// Yields `ok` batches, then an error, then panics if asked again.
    struct Failing {
        ok: i64,
        calls: i64,
    }

    impl Source for Failing {
        fn schema(&self) -> SchemaRef {
            schema()
        }
        fn next_batch(&mut self) -> Option<Result<RecordBatch>> {
            self.calls += 1;
            match self.calls - 1 {
                i if i < self.ok => Some(Ok(batch(i))),
                i if i == self.ok => Some(Err(WindrowError::Data("bad page".into()))),
                _ => panic!("read past the error"),
            }
        }
    }

    #[test]
    fn batches_and_errors_arrive_in_order_and_a_panic_is_an_error() {
        let mut src = ReadAhead::new(Box::new(Failing { ok: 5, calls: 0 }), 2);
        for i in 0..5 {
            assert_eq!(src.next_batch().unwrap().unwrap(), batch(i));
        }
        assert!(matches!(src.next_batch(), Some(Err(WindrowError::Data(m))) if m == "bad page"));
        // The inner source panics on the next read: reported, not taken for end of input.
        assert!(matches!(src.next_batch(), Some(Err(WindrowError::Internal(_)))));
        assert!(src.next_batch().is_none());
    }

    #[test]
    fn skip_reaches_the_inner_source_and_dropping_early_stops_the_thread() {
        let inner = MemorySource::new(schema(), (0..100).map(batch).collect());
        let mut src = ReadAhead::new(Box::new(inner), 1);
        assert_eq!(src.skip_rows(10).unwrap(), 0); // memory sources do not skip
        assert_eq!(src.next_batch().unwrap().unwrap(), batch(0));
        assert_eq!(src.skip_rows(10).unwrap(), 0);
        drop(src); // must not hang with the thread blocked on a full channel
    }
}
