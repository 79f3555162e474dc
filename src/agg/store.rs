//! Retained input batches, so that windows can return rows that arrived batches ago.

use std::collections::HashMap;

use arrow::record_batch::RecordBatch;

/// A row of a retained batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RowRef {
    pub batch: u64,
    pub row: u32,
}

/// Input batches referenced by aggregation state or ordered-mode queues, with reference
/// counts. A batch is dropped when nothing refers to it any more.
#[derive(Default)]
pub(crate) struct BatchStore {
    batches: HashMap<u64, (RecordBatch, usize)>,
}

impl BatchStore {
    /// Registers the batch being processed, pinned by one reference until
    /// [`unpin`](Self::unpin) (it then stays only if something retained it).
    pub fn pin(&mut self, seq: u64, batch: &RecordBatch) {
        self.batches.entry(seq).or_insert_with(|| (batch.clone(), 0)).1 += 1;
    }

    /// Adds `n` references to batch `seq`.
    pub fn retain(&mut self, seq: u64, n: usize) {
        if let Some(e) = self.batches.get_mut(&seq) {
            e.1 += n;
        }
    }

    /// Drops `n` references to batch `seq`, freeing it at zero.
    pub fn release(&mut self, seq: u64, n: usize) {
        if let Some(e) = self.batches.get_mut(&seq) {
            e.1 = e.1.saturating_sub(n);
            if e.1 == 0 {
                self.batches.remove(&seq);
            }
        }
    }

    /// Drops the pin of [`pin`](Self::pin).
    pub fn unpin(&mut self, seq: u64) {
        self.release(seq, 1);
    }

    /// A retained batch.
    pub fn get(&self, seq: u64) -> Option<&RecordBatch> {
        self.batches.get(&seq).map(|e| &e.0)
    }

    /// Number of batches held.
    pub fn len(&self) -> usize {
        self.batches.len()
    }
}
