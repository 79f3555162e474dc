//! The retained log of one output: every batch the pipeline emitted on it, numbered from 0,
//! bounded by a batch count and a byte budget, and followed live by any number of
//! subscribers.
//!
//! ```text
//!  seq:   0   1   2 │ 3   4   5   6      next_seq = 7
//!        dropped    │ retained (oldest first)
//!                   first_seq = 3
//! ```
//!
//! The pipeline's driver appends; each `DoGet` holds a [`Subscriber`] with its own cursor.
//! A new subscriber starts at the oldest retained batch (`first_seq`; `0` unless retention
//! dropped the head). A subscriber whose cursor falls below `first_seq` while it is behind
//! (it read too slowly and the batches it had not read yet were dropped) gets a
//! [`Gap`] error and no more batches: it never silently skips rows. Once the log is closed
//! (server shutdown) a subscriber reads what is left and then ends.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};

use arrow::record_batch::RecordBatch;
use tokio::sync::watch;

/// How much of each output the server keeps for late subscribers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// At most this many batches per output (at least 1 is always kept).
    pub max_batches: usize,
    /// At most this many bytes of Arrow buffers per output (`RecordBatch::get_array_memory_size`);
    /// the newest batch is kept even if it alone is larger.
    pub max_bytes: usize,
}

impl Default for Retention {
    /// 10,000 batches or 256 MiB per output, whichever is reached first.
    fn default() -> Self {
        Retention { max_batches: 10_000, max_bytes: 256 << 20 }
    }
}

/// A subscriber fell behind: the batches `[from, to)` it had not read yet were dropped by
/// retention before it read them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gap {
    /// The first batch the subscriber missed.
    pub from: u64,
    /// The oldest batch still retained.
    pub to: u64,
}

#[derive(Debug)]
struct LogState {
    batches: VecDeque<(RecordBatch, usize)>,
    /// Sequence number of `batches[0]`.
    first_seq: u64,
    bytes: usize,
    closed: bool,
}

impl LogState {
    fn next_seq(&self) -> u64 {
        self.first_seq + self.batches.len() as u64
    }
}

/// One output's retained, live-followed log of batches.
#[derive(Debug)]
pub(crate) struct OutputLog {
    retention: Retention,
    state: Mutex<LogState>,
    /// Bumped on every append and on close; subscribers wait on it.
    changed: watch::Sender<u64>,
}

impl OutputLog {
    pub(crate) fn new(retention: Retention) -> Self {
        OutputLog {
            retention,
            state: Mutex::new(LogState { batches: VecDeque::new(), first_seq: 0, bytes: 0, closed: false }),
            changed: watch::Sender::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, LogState> {
        // A panic while holding the lock cannot leave the deque half-updated in a way that
        // matters to readers (each field is updated by one call), so keep serving.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends a batch (ignored after [`close`](Self::close)); returns its sequence number.
    pub(crate) fn append(&self, batch: RecordBatch) -> Option<u64> {
        let seq = {
            let mut st = self.lock();
            if st.closed {
                return None;
            }
            let size = batch.get_array_memory_size();
            st.batches.push_back((batch, size));
            st.bytes += size;
            while st.batches.len() > self.retention.max_batches.max(1)
                || (st.bytes > self.retention.max_bytes && st.batches.len() > 1)
            {
                if let Some((_, dropped)) = st.batches.pop_front() {
                    st.bytes -= dropped;
                    st.first_seq += 1;
                }
            }
            st.next_seq() - 1
        };
        self.changed.send_modify(|v| *v += 1);
        Some(seq)
    }

    /// No more batches: subscribers drain what is retained and end.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.changed.send_modify(|v| *v += 1);
    }

    /// `(first retained seq, next seq)`.
    pub(crate) fn bounds(&self) -> (u64, u64) {
        let st = self.lock();
        (st.first_seq, st.next_seq())
    }

    /// A subscriber starting at the oldest retained batch.
    pub(crate) fn subscribe(self: &std::sync::Arc<Self>) -> Subscriber {
        let rx = self.changed.subscribe();
        let cursor = self.lock().first_seq;
        Subscriber { log: self.clone(), rx, cursor, failed: false }
    }
}

/// A reader of an [`OutputLog`] with its own cursor.
pub(crate) struct Subscriber {
    log: std::sync::Arc<OutputLog>,
    rx: watch::Receiver<u64>,
    cursor: u64,
    failed: bool,
}

enum Poll {
    Batch(RecordBatch),
    Gap(Gap),
    End,
    Wait,
}

impl Subscriber {
    /// The sequence number of the next batch this subscriber will read.
    pub(crate) fn cursor(&self) -> u64 {
        self.cursor
    }

    fn poll_log(&mut self) -> Poll {
        let st = self.log.lock();
        if self.cursor < st.first_seq {
            return Poll::Gap(Gap { from: self.cursor, to: st.first_seq });
        }
        if self.cursor < st.next_seq() {
            // cursor - first_seq < batches.len(), checked just above.
            let (batch, _) = &st.batches[(self.cursor - st.first_seq) as usize];
            self.cursor += 1;
            return Poll::Batch(batch.clone());
        }
        if st.closed { Poll::End } else { Poll::Wait }
    }

    /// The next batch; waits while the log is open and has nothing new. `None` once the log
    /// is closed and drained, or after a gap was reported.
    pub(crate) async fn next(&mut self) -> Option<Result<RecordBatch, Gap>> {
        if self.failed {
            return None;
        }
        loop {
            // Mark the current version seen *before* reading the log, so an append that lands
            // after the read wakes `changed()` below.
            self.rx.borrow_and_update();
            match self.poll_log() {
                Poll::Batch(b) => return Some(Ok(b)),
                Poll::Gap(g) => {
                    self.failed = true;
                    return Some(Err(g));
                }
                Poll::End => return None,
                Poll::Wait => {
                    if self.rx.changed().await.is_err() {
                        // The log itself is gone (cannot happen while we hold an Arc to it).
                        return None;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::Int64Array;

    use super::*;

    fn batch(v: i64) -> RecordBatch {
        RecordBatch::try_from_iter([("v", Arc::new(Int64Array::from(vec![v])) as _)]).expect("batch")
    }

    fn value(b: &RecordBatch) -> i64 {
        b.column(0).as_any().downcast_ref::<Int64Array>().expect("i64").value(0)
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime").block_on(f)
    }

    #[test]
    fn subscriber_reads_retained_then_live_then_ends_on_close() {
        let log = Arc::new(OutputLog::new(Retention::default()));
        assert_eq!(log.append(batch(0)), Some(0));
        let mut sub = log.subscribe();
        block_on(async {
            assert_eq!(value(&sub.next().await.unwrap().unwrap()), 0);
            let writer = log.clone();
            let t = tokio::spawn(async move {
                writer.append(batch(1));
                writer.close();
            });
            assert_eq!(value(&sub.next().await.unwrap().unwrap()), 1);
            assert!(sub.next().await.is_none());
            t.await.unwrap();
        });
        assert_eq!(log.append(batch(2)), None, "closed logs take no more batches");
    }

    #[test]
    fn late_subscriber_starts_at_the_oldest_retained_batch() {
        let log = Arc::new(OutputLog::new(Retention { max_batches: 2, max_bytes: usize::MAX }));
        for v in 0..5 {
            log.append(batch(v));
        }
        log.close();
        assert_eq!(log.bounds(), (3, 5));
        let mut sub = log.subscribe();
        assert_eq!(sub.cursor(), 3);
        let got: Vec<i64> = block_on(async {
            let mut got = Vec::new();
            while let Some(b) = sub.next().await {
                got.push(value(&b.unwrap()));
            }
            got
        });
        assert_eq!(got, [3, 4]);
    }

    #[test]
    fn slow_subscriber_gets_a_gap_not_a_silent_skip() {
        let log = Arc::new(OutputLog::new(Retention { max_batches: 2, max_bytes: usize::MAX }));
        log.append(batch(0));
        let mut sub = log.subscribe();
        for v in 1..5 {
            log.append(batch(v));
        }
        block_on(async {
            assert_eq!(sub.next().await.unwrap().unwrap_err(), Gap { from: 0, to: 3 });
            assert!(sub.next().await.is_none());
        });
    }

    #[test]
    fn byte_budget_keeps_at_least_the_newest_batch() {
        let log = Arc::new(OutputLog::new(Retention { max_batches: 100, max_bytes: 1 }));
        log.append(batch(0));
        log.append(batch(1));
        assert_eq!(log.bounds(), (1, 2));
    }
}
