//! Checkpoint support for aggregation state (spec §9.1).
//!
//! An aggregator writes the state of some slots as named Arrow columns, one row per slot
//! ([`SlotAgg::snapshot`](super::SlotAgg::snapshot)). Input rows the state refers to (collect,
//! first/last, max/min, joins) are written as their original `(batch, row)` position: two
//! columns `<name>.batch` (`UInt64`) and `<name>.row` (`UInt32`), or lists of them. The shard
//! saves those rows beside the state and, on restore, puts them back in the [`BatchStore`]
//! under their original batch numbers (compacted), so that arrival order between rows —
//! which `first`/`last` compare — is what it was. [`RowMap`] translates the positions.

use std::collections::HashMap;

use arrow::array::ArrayRef;

use super::{BatchStore, RowRef};
use crate::error::{Result, WindrowError};

/// Original row positions → where those rows are after a restore.
#[derive(Default)]
pub(crate) struct RowMap {
    map: HashMap<(u64, u32), u32>,
}

impl RowMap {
    /// Records that original row `(batch, row)` is now row `new_row` of batch `batch`.
    pub fn insert(&mut self, batch: u64, row: u32, new_row: u32) {
        self.map.insert((batch, row), new_row);
    }

    /// The restored position of original row `(batch, row)`, retained once in `store` (the
    /// reference the restored state holds, released as the live code releases it).
    ///
    /// # Errors
    /// A row the checkpoint did not save (a corrupt or inconsistent checkpoint).
    pub fn take(&self, batch: u64, row: u32, store: &mut BatchStore) -> Result<RowRef> {
        let new_row = self.map.get(&(batch, row)).ok_or_else(|| {
            WindrowError::Data(format!("checkpoint refers to input row {row} of batch {batch}, which it did not save"))
        })?;
        store.retain(batch, 1);
        Ok(RowRef { batch, row: *new_row })
    }
}

/// Named state columns read back from a checkpoint, one row per restored slot.
pub(crate) struct StateColumns<'a> {
    prefix: String,
    columns: &'a [(String, ArrayRef)],
}

impl<'a> StateColumns<'a> {
    /// All of `columns`.
    pub fn new(columns: &'a [(String, ArrayRef)]) -> Self {
        StateColumns { prefix: String::new(), columns }
    }

    /// The columns whose names start with `prefix` (a composite's part).
    pub fn prefixed(&self, prefix: &str) -> StateColumns<'a> {
        StateColumns { prefix: format!("{}{prefix}", self.prefix), columns: self.columns }
    }

    /// Column `name` (after the prefix).
    ///
    /// # Errors
    /// No such column: the checkpoint was written by another aggregation.
    pub fn column(&self, name: &str) -> Result<&'a ArrayRef> {
        let full = format!("{}{name}", self.prefix);
        self.columns.iter().find(|(n, _)| *n == full).map(|(_, c)| c).ok_or_else(|| {
            WindrowError::Data(format!("checkpoint state has no column \"{full}\" (written by another aggregation?)"))
        })
    }
}
