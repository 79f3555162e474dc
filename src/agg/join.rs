//! `join_window`'s per-window state (spec §8.6): one list of rows per side, insert modes
//! `first`/`last`/`product`, emit modes `complete`/`final`/`running`, and the session-merge
//! rules of windrow's deviation 7.
//!
//! Emitted join rows are cartesian products of the sides' stored rows (side 0 outermost,
//! an empty side contributing one null). They are built as `(side → Option<RowRef>)` index
//! tuples and gathered into one nullable struct column per side with a single `interleave`
//! per side, not row by row.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, UInt64Array, new_null_array};
use arrow::compute::interleave;
use arrow::datatypes::{DataType, FieldRef, Int32Type};

use super::{AggFactory, BatchStore, BatchView, EmitTag, Emitted, RowMap, RowRef, SlotAgg, StateColumns};
use crate::error::{Result, WindrowError};

/// How a window stores several rows of one side.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum InsertMode {
    /// Keep the first row of the side.
    First,
    /// Keep the latest row of the side (the default).
    #[default]
    Last,
    /// Keep every row; emit the cartesian product.
    Product,
}

/// When a window emits join rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EmitMode {
    /// As soon as every side has a row: emit, then clear all sides (the seed API's default).
    #[default]
    Complete,
    /// Once, when the window closes, with nulls for empty sides (bytewax's default).
    Final,
    /// After every applied row and every merge, with nulls for empty sides.
    Running,
}

/// Binds the join state to the unified input: where the side index and each side's struct
/// column are.
pub(crate) struct JoinFactory {
    pub side_column: usize,
    pub struct_columns: Vec<usize>,
    pub fields: Vec<FieldRef>,
    pub insert: InsertMode,
    pub emit: EmitMode,
}

impl AggFactory for JoinFactory {
    fn describe(&self) -> String {
        format!(
            "join(side column {}, columns {:?}, insert {:?}, emit {:?})",
            self.side_column, self.struct_columns, self.insert, self.emit
        )
    }
    fn result_fields(&self) -> Vec<FieldRef> {
        self.fields.clone()
    }
    fn create(&self) -> Box<dyn SlotAgg> {
        Box::new(JoinState {
            side_column: self.side_column,
            struct_columns: self.struct_columns.clone(),
            types: self.fields.iter().map(|f| f.data_type().clone()).collect(),
            insert: self.insert,
            emit: self.emit,
            values: Vec::new(),
            inserted: 0,
            ordinal: 0,
            pending: Vec::new(),
        })
    }
    fn emits_rows(&self) -> bool {
        true
    }
}

/// A stored row and its insertion number (for `first`/`last` on merges).
#[derive(Clone, Copy, Debug)]
struct Stored {
    row: RowRef,
    seq: u64,
}

struct JoinState {
    side_column: usize,
    struct_columns: Vec<usize>,
    types: Vec<DataType>,
    insert: InsertMode,
    emit: EmitMode,
    /// `values[slot][side]`.
    values: Vec<Vec<Vec<Stored>>>,
    inserted: u64,
    /// Applied rows and merges since the last drain.
    ordinal: usize,
    /// Emitted rows not drained yet: what emitted them and one optional row per side.
    pending: Vec<(EmitTag, Vec<Option<RowRef>>)>,
}

impl JoinState {
    fn sides(&self) -> usize {
        self.struct_columns.len()
    }

    /// Queues the cartesian product of `slot`'s sides (retaining the rows it names).
    fn emit_product(&mut self, slot: usize, tag: EmitTag, store: &mut BatchStore) {
        let sides = &self.values[slot];
        let mut rows: Vec<Vec<Option<RowRef>>> = vec![Vec::with_capacity(sides.len())];
        for side in sides {
            let choices: Vec<Option<RowRef>> =
                if side.is_empty() { vec![None] } else { side.iter().map(|v| Some(v.row)).collect() };
            rows = rows
                .into_iter()
                .flat_map(|prefix| {
                    choices.iter().map(move |c| {
                        let mut r = prefix.clone();
                        r.push(*c);
                        r
                    })
                })
                .collect();
        }
        for r in rows {
            for v in r.iter().flatten() {
                store.retain(v.batch, 1);
            }
            self.pending.push((tag, r));
        }
    }

    fn clear(&mut self, slot: usize, store: &mut BatchStore) {
        for side in &mut self.values[slot] {
            for v in side.drain(..) {
                store.release(v.row.batch, 1);
            }
        }
    }

    /// The emit mode's "after a value / after a merge" rule.
    fn after_change(&mut self, slot: usize, store: &mut BatchStore) {
        let tag = EmitTag::Op(self.ordinal);
        self.ordinal += 1;
        match self.emit {
            EmitMode::Final => {}
            EmitMode::Running => self.emit_product(slot, tag, store),
            EmitMode::Complete => {
                if self.values[slot].iter().all(|s| !s.is_empty()) {
                    self.emit_product(slot, tag, store);
                    self.clear(slot, store);
                }
            }
        }
    }
}

impl SlotAgg for JoinState {
    fn ensure_slots(&mut self, n: usize) {
        let sides = self.sides();
        if self.values.len() < n {
            self.values.resize_with(n, || vec![Vec::new(); sides]);
        }
    }

    fn update(&mut self, b: &BatchView<'_>, rows: &[u32], slots: &[u32], store: &mut BatchStore) -> Result<()> {
        let side_of = b.batch.column(self.side_column).as_primitive::<Int32Type>();
        for (&row, &slot) in rows.iter().zip(slots) {
            let side = side_of.value(row as usize) as usize;
            let stored = Stored { row: RowRef { batch: b.seq, row }, seq: self.inserted };
            self.inserted += 1;
            let values = &mut self.values[slot as usize][side];
            store.retain(b.seq, 1);
            match self.insert {
                InsertMode::First if !values.is_empty() => store.release(b.seq, 1),
                InsertMode::First | InsertMode::Product => values.push(stored),
                InsertMode::Last => {
                    for old in values.drain(..) {
                        store.release(old.row.batch, 1);
                    }
                    values.push(stored);
                }
            }
            self.after_change(slot as usize, store);
        }
        Ok(())
    }

    fn merge(&mut self, target: u32, original: u32, store: &mut BatchStore) -> Result<()> {
        let orig = std::mem::take(&mut self.values[original as usize]);
        let sides = self.sides();
        self.values[original as usize] = vec![Vec::new(); sides];
        for (side, o) in orig.into_iter().enumerate() {
            let t = &mut self.values[target as usize][side];
            match self.insert {
                InsertMode::Product => t.extend(o),
                InsertMode::First | InsertMode::Last => {
                    // Keep the earliest (first) or latest (last) inserted of the two (spec §14.7).
                    let mut all: Vec<Stored> = t.drain(..).chain(o).collect();
                    all.sort_by_key(|v| v.seq);
                    let keep = if self.insert == InsertMode::First { all.first() } else { all.last() }.copied();
                    for v in &all {
                        if Some(v.seq) != keep.map(|k| k.seq) {
                            store.release(v.row.batch, 1);
                        }
                    }
                    t.extend(keep);
                }
            }
        }
        self.after_change(target as usize, store);
        Ok(())
    }

    fn evaluate(&mut self, slots: &[u32], store: &mut BatchStore) -> Result<Vec<ArrayRef>> {
        for (i, &slot) in slots.iter().enumerate() {
            if self.emit == EmitMode::Final {
                self.emit_product(slot as usize, EmitTag::Close(i), store);
            }
            self.clear(slot as usize, store);
        }
        Ok(Vec::new())
    }

    fn emits_rows(&self) -> bool {
        true
    }

    fn drain_emitted(&mut self, store: &mut BatchStore) -> Result<Option<Emitted>> {
        self.ordinal = 0;
        if self.pending.is_empty() {
            return Ok(None);
        }
        let pending = std::mem::take(&mut self.pending);
        let mut columns = Vec::with_capacity(self.sides());
        for (side, &col) in self.struct_columns.iter().enumerate() {
            // Source 0 is a one-row null struct for sides without a value.
            let mut sources: Vec<ArrayRef> = vec![new_null_array(&self.types[side], 1)];
            let mut pos_of: HashMap<u64, usize> = HashMap::new();
            let mut indices = Vec::with_capacity(pending.len());
            for (_, row) in &pending {
                match row[side] {
                    None => indices.push((0, 0)),
                    Some(r) => {
                        let pos = match pos_of.get(&r.batch) {
                            Some(&p) => p,
                            None => {
                                let batch = store.get(r.batch).ok_or_else(|| {
                                    WindrowError::Internal(format!("join row's batch {} not retained", r.batch))
                                })?;
                                sources.push(Arc::clone(batch.column(col)));
                                pos_of.insert(r.batch, sources.len() - 1);
                                sources.len() - 1
                            }
                        };
                        indices.push((pos, r.row as usize));
                    }
                }
            }
            let refs: Vec<&dyn Array> = sources.iter().map(|a| a.as_ref()).collect();
            columns.push(interleave(&refs, &indices)?);
        }
        for (_, row) in &pending {
            for r in row.iter().flatten() {
                store.release(r.batch, 1);
            }
        }
        Ok(Some(Emitted { tags: pending.into_iter().map(|(t, _)| t).collect(), columns }))
    }

    /// Per side `j`: `side{j}.batch` / `side{j}.row`, the stored rows in order, and
    /// `side{j}.seq`, their insertion numbers (which `first`/`last` merges compare).
    fn snapshot(&mut self, slots: &[u32], rows: &mut Vec<RowRef>) -> Result<Vec<(String, ArrayRef)>> {
        if !self.pending.is_empty() {
            return Err(WindrowError::Internal("join state snapshot with emitted rows not drained".into()));
        }
        let mut out = Vec::new();
        for side in 0..self.sides() {
            let stored = || slots.iter().map(|&s| &self.values[s as usize][side]);
            let name = format!("side{side}");
            out.extend(StateColumns::write_row_ref_lists(&name, stored().map(|v| v.iter().map(|x| x.row)), rows));
            let seqs: UInt64Array = stored().flat_map(|v| v.iter().map(|x| x.seq)).collect();
            out.push((format!("{name}.seq"), StateColumns::write_lists(stored().map(Vec::len), Arc::new(seqs))?));
        }
        Ok(out)
    }

    /// Insertion numbers are only compared with each other, so new rows continue after the
    /// largest restored one.
    fn restore(
        &mut self,
        slots: &[u32],
        state: &StateColumns<'_>,
        rows: &RowMap,
        store: &mut BatchStore,
    ) -> Result<()> {
        let n = slots.len();
        for side in 0..self.sides() {
            let name = format!("side{side}");
            let seq_name = format!("{name}.seq");
            for (i, &s) in slots.iter().enumerate() {
                let refs = state.row_ref_list(&name, n, i, rows, store)?;
                let seqs = state.u64_list(&seq_name, n, i)?;
                if seqs.len() != refs.len() || seqs.null_count() > 0 {
                    return Err(WindrowError::Data(format!(
                        "checkpoint state of a join has {} rows and {} insertion numbers for side {side}",
                        refs.len(),
                        seqs.len()
                    )));
                }
                if let Some(&max) = seqs.values().iter().max() {
                    self.inserted = self.inserted.max(max + 1);
                }
                self.values[s as usize][side] =
                    refs.into_iter().zip(seqs.values()).map(|(row, &seq)| Stored { row, seq }).collect();
            }
        }
        Ok(())
    }
}
