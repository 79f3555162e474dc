//! Slot-based aggregation state (DESIGN.md "Update").
//!
//! Every open `(key, window)` owns a *slot*: a dense `u32` index into columnar state arrays.
//! Operators hand an aggregator runs of `(row, slot)` pairs of one input batch, in application
//! order; aggregators never see keys, windows or time. Freed slots are reused by the engine.
//!
//! ```text
//! batch rows  [r0 r1 r2 r3]        state (per slot)
//! slots       [ 4  1  4  7]  ──▶   count[1] += 1; count[4] += 2; count[7] += 1
//! ```
//!
//! Aggregators that return input rows (collect, max/min, first/last) keep `RowRef`s into a
//! `BatchStore` of retained input batches and gather the rows with one `interleave` at
//! close.

mod builtin;
#[cfg(test)]
mod checkpoint_tests;
mod container;
mod interner;
mod join;
mod rows;
mod state;
mod store;

pub use builtin::{Agg, AggFunc};
pub(crate) use builtin::{BuiltinFactory, CountFactory};
pub(crate) use container::{CollectDictFactory, CollectSetFactory};
pub(crate) use interner::ByteInterner;
pub(crate) use join::JoinFactory;
pub use join::{EmitMode, InsertMode};
pub(crate) use rows::{ArgBestFactory, ByInput, CollectFactory, FoldFactory, ReduceFactory};
pub use rows::{CollectInto, FoldFns, FoldLoadFn, FoldState, FolderFn, ReduceFn, Row, RowView};
pub(crate) use state::{RowMap, StateColumns};
pub(crate) use store::{BatchStore, RowRef};

use arrow::array::ArrayRef;
use arrow::datatypes::FieldRef;
use arrow::record_batch::RecordBatch;

use crate::error::Result;

/// One input batch as seen by aggregators: its sequence number in the store and its data.
pub(crate) struct BatchView<'a> {
    pub seq: u64,
    pub batch: &'a RecordBatch,
}

/// Columnar aggregation state for many windows, addressed by slot.
pub(crate) trait SlotAgg: Send {
    /// Makes room for slots `0..n`; new slots start empty.
    fn ensure_slots(&mut self, n: usize);
    /// Applies `rows[i]` of `batch` to `slots[i]`, in this order.
    fn update(&mut self, batch: &BatchView<'_>, rows: &[u32], slots: &[u32], store: &mut BatchStore) -> Result<()>;
    /// Applies `rows[i]` of `batch` to every slot of span `spans[i]` (see [`span`]: sliding
    /// windows queue one update per row and pane, not per row and window), in this order:
    /// the same updates as [`update`](Self::update) with each row repeated once per slot of
    /// its span. This default does exactly that; the built-in kernels fold each value into
    /// the span's slots directly.
    fn update_spans(
        &mut self,
        batch: &BatchView<'_>,
        rows: &[u32],
        spans: &[u32],
        span_slots: &[u32],
        store: &mut BatchStore,
    ) -> Result<()> {
        let (mut each_row, mut each_slot) = (Vec::new(), Vec::new());
        for (&r, &at) in rows.iter().zip(spans) {
            let slots = span(span_slots, at);
            each_row.extend(std::iter::repeat_n(r, slots.len()));
            each_slot.extend_from_slice(slots);
        }
        self.update(batch, &each_row, &each_slot, store)
    }
    /// Folds `original` into `target` (session merge); `original` is left empty.
    fn merge(&mut self, target: u32, original: u32, store: &mut BatchStore) -> Result<()>;
    /// The result columns for `slots` (one row per slot, in order); the slots are left empty.
    fn evaluate(&mut self, slots: &[u32], store: &mut BatchStore) -> Result<Vec<ArrayRef>>;
    /// Whether `down` rows come from [`drain_emitted`](Self::drain_emitted) (zero or more per
    /// window, emitted while applying or at close) instead of one per closed window.
    fn emits_rows(&self) -> bool {
        false
    }
    /// The rows emitted since the last call, tagged with what emitted them.
    fn drain_emitted(&mut self, _store: &mut BatchStore) -> Result<Option<Emitted>> {
        Ok(None)
    }
    /// Checkpoint: the state of `slots` as named columns, one row per slot, in `slots` order.
    /// Retained input rows are written as their `(batch, row)` position (see [`state`]) and
    /// also pushed to `rows`, so that the shard saves them. Only called between micro-batches
    /// (nothing emitted and not drained).
    ///
    /// The state is not changed as far as `update`/`merge`/`evaluate` can tell. It takes
    /// `&mut self` because DataFusion's `Accumulator::state` does (and may hand over its
    /// state, as `median` does): such an aggregator rebuilds its accumulators from what it
    /// wrote, exactly as a restore would.
    fn snapshot(&mut self, _slots: &[u32], _rows: &mut Vec<RowRef>) -> Result<Vec<(String, ArrayRef)>> {
        Err(crate::error::WindrowError::Config("this aggregation cannot be checkpointed".into()))
    }
    /// Restore: loads state written by [`snapshot`](Self::snapshot) into `slots` (empty slots
    /// with room made by `ensure_slots`), row `i` of each column into `slots[i]`; row
    /// positions go through `rows`, which retains them in `store`.
    fn restore(
        &mut self,
        _slots: &[u32],
        _state: &StateColumns<'_>,
        _rows: &RowMap,
        _store: &mut BatchStore,
    ) -> Result<()> {
        Err(crate::error::WindrowError::Config("this aggregation cannot be checkpointed".into()))
    }
}

/// What emitted a row: the `i`-th applied row or merge since the last drain (in application
/// order), or the `i`-th slot of the last `evaluate` call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EmitTag {
    Op(usize),
    Close(usize),
}

/// Rows emitted by an aggregator that emits while applying (joins).
pub(crate) struct Emitted {
    pub tags: Vec<EmitTag>,
    pub columns: Vec<ArrayRef>,
}

/// Creates one [`SlotAgg`] per shard and describes its result columns.
pub(crate) trait AggFactory: Send + Sync {
    /// What the state means, for the step definition a checkpoint must match (spec §9.2):
    /// the function, its input columns or expression, its mode. Two factories whose states
    /// could be confused must describe themselves differently.
    fn describe(&self) -> String;
    /// The result columns on `down`.
    fn result_fields(&self) -> Vec<FieldRef>;
    /// A fresh, empty state.
    fn create(&self) -> Box<dyn SlotAgg>;
    /// Whether session merges are supported (a fold without a merger cannot merge).
    fn can_merge(&self) -> bool {
        true
    }
    /// A column whose null rows cannot be aggregated, with the `errors` reason for them: the
    /// operator routes such rows to `errors` (spec §14.6) before they reach a window.
    fn refused_nulls(&self) -> Option<(usize, String)> {
        None
    }
    /// Whether the aggregator emits `down` rows itself (see [`SlotAgg::emits_rows`]).
    fn emits_rows(&self) -> bool {
        false
    }
    /// `Err(why)` when the state cannot be checkpointed (a fold without a state codec), so
    /// that a run with a state directory fails before it starts.
    fn checkpoint_support(&self) -> std::result::Result<(), String> {
        Ok(())
    }
}

/// The slots of the span at position `at` of `span_slots`, which holds spans one after
/// another, each as its length followed by its slots.
#[inline]
pub(crate) fn span(span_slots: &[u32], at: u32) -> &[u32] {
    let at = at as usize;
    let len = span_slots[at] as usize;
    &span_slots[at + 1..at + 1 + len]
}

/// Grows a per-slot vector with `fill`.
pub(crate) fn grow<T: Clone>(v: &mut Vec<T>, n: usize, fill: T) {
    if v.len() < n {
        v.resize(n, fill);
    }
}
