//! Checkpoint support for aggregation state (spec §9.1).
//!
//! An aggregator writes the state of some slots as named Arrow columns, one row per slot
//! ([`SlotAgg::snapshot`](super::SlotAgg::snapshot)). Input rows the state refers to (collect,
//! first/last, max/min, joins) are written as their original `(batch, row)` position: two
//! columns `<name>.batch` (`UInt64`) and `<name>.row` (`UInt32`), or lists of them. The shard
//! saves those rows beside the state and, on restore, puts them back in the [`BatchStore`]
//! under their original batch numbers (compacted), so that arrival order between rows —
//! which `first`/`last` compare — is what it was. [`RowMap`] translates the positions.
//!
//! [`StateColumns`] also holds the writers of these layouts beside their readers, which check
//! names, types and lengths so that a checkpoint from another aggregation fails clearly.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, ListArray, ListBuilder, PrimitiveArray, StringArray, UInt32Array,
    UInt32Builder, UInt64Array, UInt64Builder,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{ArrowPrimitiveType, DataType, Field, UInt32Type, UInt64Type};

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

    /// Column `name` with at least `n` rows (one per restored slot), so that reading row
    /// `i < n` cannot go out of bounds.
    ///
    /// # Errors
    /// No such column, or a shorter one.
    pub fn rows(&self, name: &str, n: usize) -> Result<&'a ArrayRef> {
        let col = self.column(name)?;
        if col.len() < n {
            return Err(WindrowError::Data(format!(
                "checkpoint state column \"{}{name}\" has {} rows for {n} slots",
                self.prefix,
                col.len()
            )));
        }
        Ok(col)
    }

    fn wrong_type(&self, name: &str, col: &ArrayRef, expected: &str) -> WindrowError {
        WindrowError::Data(format!(
            "checkpoint state column \"{}{name}\" has type {}, expected {expected}",
            self.prefix,
            col.data_type()
        ))
    }

    /// Column `name` as a primitive array of `T`, with at least `n` rows.
    ///
    /// # Errors
    /// As [`rows`](Self::rows), or another type.
    pub fn primitive<T: ArrowPrimitiveType>(&self, name: &str, n: usize) -> Result<&'a PrimitiveArray<T>> {
        let col = self.rows(name, n)?;
        col.as_primitive_opt::<T>().ok_or_else(|| self.wrong_type(name, col, &T::DATA_TYPE.to_string()))
    }

    /// Column `name` as a boolean array, with at least `n` rows.
    ///
    /// # Errors
    /// As [`rows`](Self::rows), or another type.
    pub fn boolean(&self, name: &str, n: usize) -> Result<&'a BooleanArray> {
        let col = self.rows(name, n)?;
        col.as_boolean_opt().ok_or_else(|| self.wrong_type(name, col, "Boolean"))
    }

    /// Column `name` as a UTF-8 string array, with at least `n` rows.
    ///
    /// # Errors
    /// As [`rows`](Self::rows), or another type.
    pub fn string(&self, name: &str, n: usize) -> Result<&'a StringArray> {
        let col = self.rows(name, n)?;
        col.as_string_opt::<i32>().ok_or_else(|| self.wrong_type(name, col, "Utf8"))
    }

    /// Column `name` as a list array, with at least `n` rows.
    ///
    /// # Errors
    /// As [`rows`](Self::rows), or another type.
    pub fn list(&self, name: &str, n: usize) -> Result<&'a ListArray> {
        let col = self.rows(name, n)?;
        col.as_list_opt::<i32>().ok_or_else(|| self.wrong_type(name, col, "List"))
    }

    /// Whether row `i` of the `present` column is set: slots whose state is "none yet" (an
    /// accumulator not created) are written with `present = false`.
    ///
    /// # Errors
    /// As [`boolean`](Self::boolean).
    pub fn present(&self, n: usize) -> Result<impl Fn(usize) -> bool + 'a> {
        let present = self.boolean("present", n)?;
        Ok(move |i| present.is_valid(i) && present.value(i))
    }

    /// The optional row position `name` of slot `i`, written by
    /// [`write_row_refs`](Self::write_row_refs), retained in `store` through `rows`.
    ///
    /// # Errors
    /// Missing or mistyped columns, or a row the checkpoint did not save.
    pub fn row_ref(
        &self,
        name: &str,
        n: usize,
        i: usize,
        rows: &RowMap,
        store: &mut BatchStore,
    ) -> Result<Option<RowRef>> {
        let batches = self.primitive::<UInt64Type>(&format!("{name}.batch"), n)?;
        let row_nums = self.primitive::<UInt32Type>(&format!("{name}.row"), n)?;
        if batches.is_null(i) || row_nums.is_null(i) {
            return Ok(None);
        }
        rows.take(batches.value(i), row_nums.value(i), store).map(Some)
    }

    /// The list of row positions `name` of slot `i`, written by
    /// [`write_row_ref_lists`](Self::write_row_ref_lists), each retained in `store` through
    /// `rows`.
    ///
    /// # Errors
    /// Missing or mistyped columns, lists of different lengths, or a row the checkpoint did
    /// not save.
    pub fn row_ref_list(
        &self,
        name: &str,
        n: usize,
        i: usize,
        rows: &RowMap,
        store: &mut BatchStore,
    ) -> Result<Vec<RowRef>> {
        let (batches, row_nums) = self.u64_u32_lists(name, n, i)?;
        batches.values().iter().zip(row_nums.values()).map(|(&b, &r)| rows.take(b, r, store)).collect()
    }

    /// The `<name>.batch` and `<name>.row` lists of slot `i`.
    fn u64_u32_lists(&self, name: &str, n: usize, i: usize) -> Result<(UInt64Array, UInt32Array)> {
        let (bname, rname) = (format!("{name}.batch"), format!("{name}.row"));
        let (bl, rl) = (self.list(&bname, n)?, self.list(&rname, n)?);
        let (b, r) = (bl.value(i), rl.value(i));
        let batches = b.as_primitive_opt::<UInt64Type>().ok_or_else(|| self.wrong_type(&bname, &b, "List<UInt64>"))?;
        let row_nums = r.as_primitive_opt::<UInt32Type>().ok_or_else(|| self.wrong_type(&rname, &r, "List<UInt32>"))?;
        if batches.len() != row_nums.len() || batches.null_count() > 0 || row_nums.null_count() > 0 {
            return Err(WindrowError::Data(format!(
                "checkpoint state columns \"{0}{bname}\" and \"{0}{rname}\" disagree at row {i}",
                self.prefix
            )));
        }
        Ok((batches.clone(), row_nums.clone()))
    }

    /// Slot `i`'s list of `dt` values in column `name` (written by
    /// [`write_lists`](Self::write_lists)).
    ///
    /// # Errors
    /// Missing column, or not a list of `dt`.
    pub fn list_value(&self, name: &str, n: usize, i: usize, dt: &DataType) -> Result<ArrayRef> {
        let values = self.list(name, n)?.value(i);
        if values.data_type() != dt {
            return Err(self.wrong_type(name, &values, &format!("a list of {dt}")));
        }
        Ok(values)
    }

    /// A list of `u64`s of slot `i` (such as insertion numbers kept beside row positions).
    ///
    /// # Errors
    /// Missing or mistyped column.
    pub fn u64_list(&self, name: &str, n: usize, i: usize) -> Result<UInt64Array> {
        let l = self.list(name, n)?.value(i);
        let v = l.as_primitive_opt::<UInt64Type>().ok_or_else(|| self.wrong_type(name, &l, "List<UInt64>"))?;
        Ok(v.clone())
    }

    /// A list column of `values`, cut into one list per slot by `lengths`.
    ///
    /// # Errors
    /// `lengths` do not add up to the number of values.
    pub fn write_lists(lengths: impl IntoIterator<Item = usize>, values: ArrayRef) -> Result<ArrayRef> {
        let item = Arc::new(Field::new("item", values.data_type().clone(), true));
        Ok(Arc::new(ListArray::try_new(item, OffsetBuffer::from_lengths(lengths), values, None)?))
    }

    /// Writes one optional row position per slot as `<name>.batch` / `<name>.row` (null for
    /// none), pushing each position to `rows` so that the shard saves the row.
    pub fn write_row_refs(
        name: &str,
        refs: impl IntoIterator<Item = Option<RowRef>>,
        rows: &mut Vec<RowRef>,
    ) -> [(String, ArrayRef); 2] {
        let (mut batches, mut row_nums) = (UInt64Builder::new(), UInt32Builder::new());
        for r in refs {
            batches.append_option(r.map(|r| r.batch));
            row_nums.append_option(r.map(|r| r.row));
            rows.extend(r);
        }
        [
            (format!("{name}.batch"), Arc::new(batches.finish()) as ArrayRef),
            (format!("{name}.row"), Arc::new(row_nums.finish()) as ArrayRef),
        ]
    }

    /// Writes a list of row positions per slot as `<name>.batch` (`List<UInt64>`) and
    /// `<name>.row` (`List<UInt32>`), in order, pushing each position to `rows`.
    pub fn write_row_ref_lists<L: IntoIterator<Item = RowRef>>(
        name: &str,
        lists: impl IntoIterator<Item = L>,
        rows: &mut Vec<RowRef>,
    ) -> [(String, ArrayRef); 2] {
        let (mut batches, mut row_nums) =
            (ListBuilder::new(UInt64Builder::new()), ListBuilder::new(UInt32Builder::new()));
        for list in lists {
            for r in list {
                batches.values().append_value(r.batch);
                row_nums.values().append_value(r.row);
                rows.push(r);
            }
            batches.append(true);
            row_nums.append(true);
        }
        [
            (format!("{name}.batch"), Arc::new(batches.finish()) as ArrayRef),
            (format!("{name}.row"), Arc::new(row_nums.finish()) as ArrayRef),
        ]
    }
}
