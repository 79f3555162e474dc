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
/// reaches the inner source before any reading. After an error the thread stops reading and
/// hands the source back: a caller that goes on reads it directly, exactly as without the
/// wrapper, and nothing is read past an error that the caller did not ask for. Dropping the
/// wrapper stops the thread after the batch it is reading.
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
    /// The thread reads; it returns the source and whether the source reached its end.
    Reading {
        batches: Receiver<Result<RecordBatch>>,
        thread: Option<JoinHandle<(Box<dyn Source>, bool)>>,
    },
    /// After an error: the caller reads the source itself.
    Direct(Box<dyn Source>),
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
                loop {
                    let Some(batch) = inner.next_batch() else {
                        return (inner, true);
                    };
                    let failed = batch.is_err();
                    // A failed send: the wrapper was dropped.
                    if tx.send(batch).is_err() || failed {
                        return (inner, false);
                    }
                }
            });
            match spawned {
                Ok(thread) => self.state = State::Reading { batches: rx, thread: Some(thread) },
                Err(e) => return Some(Err(WindrowError::Internal(format!("cannot start the read-ahead thread: {e}")))),
            }
        }
        let (batches, thread) = match &mut self.state {
            State::Reading { batches, thread } => (batches, thread),
            State::Direct(inner) => return inner.next_batch(),
            State::Waiting(_) | State::Done => return None,
        };
        match batches.recv() {
            Ok(batch) => Some(batch),
            // The thread ended: at end of input, after passing on an error, or because the
            // source panicked, which must not look like end of input.
            Err(_) => match thread.take().map(JoinHandle::join) {
                Some(Ok((_, true))) | None => {
                    self.state = State::Done;
                    None
                }
                Some(Ok((inner, false))) => {
                    self.state = State::Direct(inner);
                    self.next_batch()
                }
                Some(Err(_)) => {
                    self.state = State::Done;
                    Some(Err(WindrowError::Internal("the input reader thread panicked".into())))
                }
            },
        }
    }

    fn skip_rows(&mut self, rows: u64) -> Result<u64> {
        match &mut self.state {
            State::Waiting(inner) | State::Direct(inner) => inner.skip_rows(rows),
            State::Reading { .. } | State::Done => Ok(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicI64;
    use std::sync::atomic::Ordering::SeqCst;

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

    /// Batch `i` is `batch(i)`, except an error at `fail_at` and a panic at `panic_at`; ends
    /// after `len` reads. Counts its reads.
    struct Scripted {
        len: i64,
        fail_at: i64,
        panic_at: i64,
        reads: Arc<AtomicI64>,
    }

    impl Source for Scripted {
        fn schema(&self) -> SchemaRef {
            schema()
        }
        fn next_batch(&mut self) -> Option<Result<RecordBatch>> {
            match self.reads.fetch_add(1, SeqCst) {
                i if i == self.panic_at => panic!("reader bug"),
                i if i == self.fail_at => Some(Err(WindrowError::Data("bad page".into()))),
                i if i < self.len => Some(Ok(batch(i))),
                _ => None,
            }
        }
    }

    fn scripted(len: i64, fail_at: i64, panic_at: i64) -> (ReadAhead, Arc<AtomicI64>) {
        let reads = Arc::new(AtomicI64::new(0));
        let src = Scripted { len, fail_at, panic_at, reads: reads.clone() };
        (ReadAhead::new(Box::new(src), 2), reads)
    }

    #[test]
    fn an_error_stops_the_reading_ahead_and_the_caller_may_go_on() {
        let (mut src, reads) = scripted(8, 5, -1);
        for i in 0..5 {
            assert_eq!(src.next_batch().unwrap().unwrap(), batch(i));
        }
        assert!(matches!(src.next_batch(), Some(Err(WindrowError::Data(m))) if m == "bad page"));
        // Nothing is read past the error until asked for.
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert_eq!(reads.load(SeqCst), 6);
        // Going on reads the source directly, as without the wrapper.
        assert_eq!(src.next_batch().unwrap().unwrap(), batch(6));
        assert_eq!(src.next_batch().unwrap().unwrap(), batch(7));
        assert!(src.next_batch().is_none());
    }

    #[test]
    fn a_panicking_source_is_an_error_not_the_end() {
        let (mut src, _) = scripted(8, -1, 3);
        for i in 0..3 {
            assert_eq!(src.next_batch().unwrap().unwrap(), batch(i));
        }
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
