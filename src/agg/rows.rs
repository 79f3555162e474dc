//! Aggregates that keep or build rows: collect, first/last, max/min by a column (arg-best),
//! and the general closure paths `fold_window` and `reduce_window`.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Builder, Int64Builder, ListArray, StringBuilder, StructArray,
    new_empty_array,
};
use arrow::buffer::OffsetBuffer;
use arrow::compute::{cast, interleave};
use arrow::datatypes::{DataType, Field, FieldRef, Fields, Float64Type, Int64Type, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::common::ScalarValue;
use datafusion::physical_expr::PhysicalExpr;

use super::{AggFactory, BatchStore, BatchView, RowMap, RowRef, SlotAgg, StateColumns};
use crate::error::{Result, WindrowError, plan_err};

/// The container `collect_window` builds (spec §8.2).
///
/// Every container is a function of the window's rows in application order: in ordered mode
/// (the default) sorted by timestamp, ties in arrival order; in unordered mode arrival order,
/// and after a session merge the target's rows, then the original's.
///
/// * [`List`](Self::List): every value, in that order (`List<T>`, or `List<Struct>` of whole
///   rows). Nulls are kept.
/// * [`Set`](Self::Set): the distinct values of one column (`.column(..)`), each at its
///   *first* occurrence in that order (`List<T>`). So in ordered mode a value's place is that
///   of its earliest `(timestamp, arrival)`: arrivals `a@5, b@3, a@4` give `[b, a]` (applied
///   as `b@3, a@4, a@5`), while unordered mode gives `[a, b]`. A session merge is the
///   union, the target's values first. Null is a value like any other (kept once); floats
///   compare by Arrow's total order (`-0.0 != 0.0`, equal `NaN`s are one value).
/// * [`Dict`](Self::Dict): `d[key] = value` for each row in that order, so the *last* write
///   wins; keys in first-insertion order (`Map<K, V>`, named after the value column, entries
///   `keys`/`values`). A session merge writes the original's entries over the target's (new
///   keys after the target's). A null value is stored; a row with a null key cannot be a map
///   entry and goes to `errors` (reason `null dict key column "…"`), like a null window key.
///
/// Set and dict values are compared through Arrow's row format; a column type it cannot
/// encode is rejected when the operator is built.
///
/// ```
/// use windrow::prelude::*;
/// let set = CollectInto::Set;
/// let dict = CollectInto::dict("page", "duration_ms");
/// assert_eq!(dict, CollectInto::Dict { key: "page".into(), value: "duration_ms".into() });
/// # let _ = set;
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum CollectInto {
    /// An Arrow `List` of every collected value, in application order.
    #[default]
    List,
    /// The distinct values of the `.column(..)`, in first-insertion order.
    Set,
    /// A map from the `key` column to the `value` column; the last write wins.
    Dict {
        /// The column holding each entry's key.
        key: String,
        /// The column holding each entry's value (also the result column's name).
        value: String,
    },
}

impl CollectInto {
    /// [`CollectInto::Dict`] from the key and value column names.
    pub fn dict(key: impl Into<String>, value: impl Into<String>) -> Self {
        CollectInto::Dict { key: key.into(), value: value.into() }
    }

    /// The name used in configuration and errors: `list`, `set` or `dict`.
    pub fn name(&self) -> &'static str {
        match self {
            CollectInto::List => "list",
            CollectInto::Set => "set",
            CollectInto::Dict { .. } => "dict",
        }
    }
}

/// Gathers the rows named by `refs` (grouped per output row by `offsets`) from the retained
/// batches, as one array built by `project` from each batch.
fn gather(
    refs: impl Iterator<Item = RowRef>,
    store: &BatchStore,
    empty_type: &DataType,
    project: impl Fn(&RecordBatch) -> ArrayRef,
) -> Result<ArrayRef> {
    let mut pos_of: HashMap<u64, usize> = HashMap::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    let mut indices = Vec::new();
    for r in refs {
        let pos = match pos_of.get(&r.batch) {
            Some(&p) => p,
            None => {
                let batch = store
                    .get(r.batch)
                    .ok_or_else(|| WindrowError::Internal(format!("retained batch {} missing", r.batch)))?;
                arrays.push(project(batch));
                pos_of.insert(r.batch, arrays.len() - 1);
                arrays.len() - 1
            }
        };
        indices.push((pos, r.row as usize));
    }
    if indices.is_empty() {
        return Ok(new_empty_array(empty_type));
    }
    let refs: Vec<&dyn Array> = arrays.iter().map(|a| a.as_ref()).collect();
    Ok(interleave(&refs, &indices)?)
}

/// What a collect gathers from each row.
#[derive(Clone)]
enum Collected {
    Column(usize),
    WholeRow,
}

/// `collect_window` and `Agg::collect`: the rows of each window, as a list.
pub(crate) struct CollectFactory {
    what: Collected,
    field: FieldRef,
    item_type: DataType,
}

impl CollectFactory {
    pub fn column(index: usize, name: String, schema: &SchemaRef) -> Self {
        let item_type = schema.field(index).data_type().clone();
        let field = Field::new(name, DataType::List(Arc::new(Field::new("item", item_type.clone(), true))), false);
        CollectFactory { what: Collected::Column(index), field: Arc::new(field), item_type }
    }

    pub fn whole_rows(schema: &SchemaRef) -> Self {
        let item_type = DataType::Struct(schema.fields().clone());
        let field = Field::new("rows", DataType::List(Arc::new(Field::new("item", item_type.clone(), true))), false);
        CollectFactory { what: Collected::WholeRow, field: Arc::new(field), item_type }
    }
}

impl AggFactory for CollectFactory {
    fn describe(&self) -> String {
        match self.what {
            Collected::Column(c) => format!("collect(column {c}) as {}", self.field.name()),
            Collected::WholeRow => format!("collect(rows) as {}", self.field.name()),
        }
    }
    fn result_fields(&self) -> Vec<FieldRef> {
        vec![Arc::clone(&self.field)]
    }
    fn create(&self) -> Box<dyn SlotAgg> {
        Box::new(Collect {
            what: self.what.clone(),
            field: Arc::clone(&self.field),
            item_type: self.item_type.clone(),
            refs: Vec::new(),
        })
    }
}

struct Collect {
    what: Collected,
    field: FieldRef,
    item_type: DataType,
    refs: Vec<Vec<RowRef>>,
}

impl SlotAgg for Collect {
    fn ensure_slots(&mut self, n: usize) {
        if self.refs.len() < n {
            self.refs.resize_with(n, Vec::new);
        }
    }
    fn update(&mut self, b: &BatchView<'_>, rows: &[u32], slots: &[u32], store: &mut BatchStore) -> Result<()> {
        for (&row, &s) in rows.iter().zip(slots) {
            self.refs[s as usize].push(RowRef { batch: b.seq, row });
        }
        store.retain(b.seq, rows.len());
        Ok(())
    }
    fn merge(&mut self, target: u32, original: u32, _: &mut BatchStore) -> Result<()> {
        let orig = std::mem::take(&mut self.refs[original as usize]);
        self.refs[target as usize].extend(orig);
        Ok(())
    }
    fn evaluate(&mut self, slots: &[u32], store: &mut BatchStore) -> Result<Vec<ArrayRef>> {
        let lists: Vec<Vec<RowRef>> = slots.iter().map(|&s| std::mem::take(&mut self.refs[s as usize])).collect();
        let offsets = OffsetBuffer::from_lengths(lists.iter().map(Vec::len));
        let what = self.what.clone();
        let values = gather(lists.iter().flatten().copied(), store, &self.item_type, |batch| match what {
            Collected::Column(i) => Arc::clone(batch.column(i)),
            Collected::WholeRow => Arc::new(StructArray::from(batch.clone())),
        })?;
        for r in lists.iter().flatten() {
            store.release(r.batch, 1);
        }
        let DataType::List(item) = self.field.data_type() else {
            return Err(WindrowError::Internal("collect field is not a list".into()));
        };
        Ok(vec![Arc::new(ListArray::try_new(Arc::clone(item), offsets, values, None)?)])
    }
    /// `refs.batch` / `refs.row`: the collected rows, in application order.
    fn snapshot(&mut self, slots: &[u32], rows: &mut Vec<RowRef>) -> Result<Vec<(String, ArrayRef)>> {
        let lists = slots.iter().map(|&s| self.refs[s as usize].iter().copied());
        Ok(StateColumns::write_row_ref_lists("refs", lists, rows).into())
    }
    fn restore(
        &mut self,
        slots: &[u32],
        state: &StateColumns<'_>,
        rows: &RowMap,
        store: &mut BatchStore,
    ) -> Result<()> {
        for (i, &s) in slots.iter().enumerate() {
            self.refs[s as usize] = state.row_ref_list("refs", slots.len(), i, rows, store)?;
        }
        Ok(())
    }
}

/// `Agg::first` / `Agg::last`: one retained row per window.
pub(crate) struct FirstLastFactory {
    pub index: usize,
    pub last: bool,
    pub name: String,
    pub schema: SchemaRef,
}

impl AggFactory for FirstLastFactory {
    fn describe(&self) -> String {
        format!("{}(column {}) as {}", if self.last { "last" } else { "first" }, self.index, self.name)
    }
    fn result_fields(&self) -> Vec<FieldRef> {
        vec![Arc::new(Field::new(&self.name, self.schema.field(self.index).data_type().clone(), true))]
    }
    fn create(&self) -> Box<dyn SlotAgg> {
        Box::new(FirstLast {
            index: self.index,
            last: self.last,
            dt: self.schema.field(self.index).data_type().clone(),
            picked: Vec::new(),
        })
    }
}

struct FirstLast {
    index: usize,
    last: bool,
    dt: DataType,
    picked: Vec<Option<RowRef>>,
}

impl SlotAgg for FirstLast {
    fn ensure_slots(&mut self, n: usize) {
        if self.picked.len() < n {
            self.picked.resize(n, None);
        }
    }
    fn update(&mut self, b: &BatchView<'_>, rows: &[u32], slots: &[u32], store: &mut BatchStore) -> Result<()> {
        for (&row, &s) in rows.iter().zip(slots) {
            let cell = &mut self.picked[s as usize];
            if cell.is_none() || self.last {
                store.retain(b.seq, 1);
                if let Some(old) = cell.replace(RowRef { batch: b.seq, row }) {
                    store.release(old.batch, 1);
                }
            }
        }
        Ok(())
    }
    fn merge(&mut self, target: u32, original: u32, store: &mut BatchStore) -> Result<()> {
        // Session merges happen only in unordered mode, where application order is arrival
        // order; keep the earlier (first) or later (last) arrival of the two.
        let orig = self.picked[original as usize].take();
        let t = &mut self.picked[target as usize];
        match (t.as_ref(), orig) {
            (None, o) => *t = o,
            (Some(_), None) => {}
            (Some(tr), Some(o)) => {
                let o_later = (o.batch, o.row) > (tr.batch, tr.row);
                if o_later == self.last {
                    if let Some(old) = t.replace(o) {
                        store.release(old.batch, 1);
                    }
                } else {
                    store.release(o.batch, 1);
                }
            }
        }
        Ok(())
    }
    fn evaluate(&mut self, slots: &[u32], store: &mut BatchStore) -> Result<Vec<ArrayRef>> {
        let picked: Vec<RowRef> = slots
            .iter()
            .map(|&s| {
                self.picked[s as usize]
                    .take()
                    .ok_or_else(|| WindrowError::Internal("closed window without rows".into()))
            })
            .collect::<Result<_>>()?;
        let index = self.index;
        let out = gather(picked.iter().copied(), store, &self.dt, |b| Arc::clone(b.column(index)))?;
        for r in &picked {
            store.release(r.batch, 1);
        }
        Ok(vec![out])
    }
    /// `picked.batch` / `picked.row`: the kept row (null before the first row). Merges compare
    /// positions, which a restore keeps in order (same batch numbers, rows compacted in order).
    fn snapshot(&mut self, slots: &[u32], rows: &mut Vec<RowRef>) -> Result<Vec<(String, ArrayRef)>> {
        let picked = slots.iter().map(|&s| self.picked[s as usize]);
        Ok(StateColumns::write_row_refs("picked", picked, rows).into())
    }
    fn restore(
        &mut self,
        slots: &[u32],
        state: &StateColumns<'_>,
        rows: &RowMap,
        store: &mut BatchStore,
    ) -> Result<()> {
        for (i, &s) in slots.iter().enumerate() {
            self.picked[s as usize] = state.row_ref("picked", slots.len(), i, rows, store)?;
        }
        Ok(())
    }
}

/// A comparable `by` value. Nulls lose to every value; floats use the total order.
#[derive(Clone, Debug)]
enum ByValue {
    Null,
    Int(i64),
    Float(f64),
    Str(String),
}

impl ByValue {
    /// Whether `self` beats `acc` strictly (ties keep the accumulator, spec §8.4).
    fn beats(&self, acc: &ByValue, max: bool) -> bool {
        use std::cmp::Ordering;
        let ord = match (self, acc) {
            (ByValue::Null, _) => return false,
            (_, ByValue::Null) => return true,
            (ByValue::Int(a), ByValue::Int(b)) => a.cmp(b),
            (ByValue::Float(a), ByValue::Float(b)) => a.total_cmp(b),
            (ByValue::Str(a), ByValue::Str(b)) => a.cmp(b),
            _ => Ordering::Equal,
        };
        if max { ord.is_gt() } else { ord.is_lt() }
    }
}

/// What `max_window` / `min_window` compare: a column, or an expression evaluated per batch.
#[derive(Clone)]
pub(crate) enum ByInput {
    Column(usize),
    Expr { name: String, expr: Arc<dyn PhysicalExpr> },
}

impl ByInput {
    /// The `by` values of every row of `batch`.
    fn evaluate(&self, batch: &RecordBatch) -> Result<ArrayRef> {
        match self {
            ByInput::Column(i) => Ok(Arc::clone(batch.column(*i))),
            ByInput::Expr { name, expr } => expr
                .evaluate(batch)
                .and_then(|v| v.into_array(batch.num_rows()))
                .map_err(|err| WindrowError::Data(format!("`by` expression \"{name}\" failed: {err}"))),
        }
    }
}

/// `max_window` / `min_window`: the whole row with the largest/smallest `by` value.
pub(crate) struct ArgBestFactory {
    by: ByInput,
    max: bool,
    value_columns: Vec<usize>,
    fields: Vec<FieldRef>,
}

impl ArgBestFactory {
    pub fn bind(by: ByInput, max: bool, value_columns: Vec<usize>, schema: &SchemaRef) -> Result<Self> {
        let (what, dt) = match &by {
            ByInput::Column(i) => {
                (format!("column \"{}\"", schema.field(*i).name()), schema.field(*i).data_type().clone())
            }
            ByInput::Expr { name, expr } => (format!("expression \"{name}\""), expr.data_type(schema)?),
        };
        let ok = dt.is_numeric()
            || matches!(dt, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Timestamp(..));
        if !ok {
            return plan_err(format!(
                "`by` {what} has type {dt}; max_window/min_window compare numbers, timestamps or strings"
            ));
        }
        let fields = value_columns.iter().map(|&i| Arc::new(schema.field(i).clone())).collect();
        Ok(ArgBestFactory { by, max, value_columns, fields })
    }
}

impl AggFactory for ArgBestFactory {
    fn describe(&self) -> String {
        let by = match &self.by {
            ByInput::Column(c) => format!("column {c}"),
            ByInput::Expr { name, expr } => format!("{name} = {expr}"),
        };
        format!("{} by {by} of columns {:?}", if self.max { "max" } else { "min" }, self.value_columns)
    }
    fn result_fields(&self) -> Vec<FieldRef> {
        self.fields.clone()
    }
    fn create(&self) -> Box<dyn SlotAgg> {
        Box::new(ArgBest {
            by: self.by.clone(),
            max: self.max,
            value_columns: self.value_columns.clone(),
            fields: self.fields.clone(),
            best: Vec::new(),
        })
    }
}

struct ArgBest {
    by: ByInput,
    max: bool,
    value_columns: Vec<usize>,
    fields: Vec<FieldRef>,
    best: Vec<Option<(ByValue, RowRef)>>,
}

fn by_values(col: &ArrayRef) -> Result<Vec<ByValue>> {
    let n = col.len();
    let dt = col.data_type();
    let vals: Vec<ByValue> = if dt.is_floating() {
        let a = cast(col, &DataType::Float64)?;
        let a = a.as_primitive::<Float64Type>();
        (0..n).map(|i| if a.is_null(i) { ByValue::Null } else { ByValue::Float(a.value(i)) }).collect()
    } else if matches!(dt, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) {
        let a = cast(col, &DataType::Utf8)?;
        let a = a.as_string::<i32>();
        (0..n).map(|i| if a.is_null(i) { ByValue::Null } else { ByValue::Str(a.value(i).to_string()) }).collect()
    } else {
        let a = cast(col, &DataType::Int64)?;
        let a = a.as_primitive::<Int64Type>();
        (0..n).map(|i| if a.is_null(i) { ByValue::Null } else { ByValue::Int(a.value(i)) }).collect()
    };
    Ok(vals)
}

impl SlotAgg for ArgBest {
    fn ensure_slots(&mut self, n: usize) {
        if self.best.len() < n {
            self.best.resize(n, None);
        }
    }
    fn update(&mut self, b: &BatchView<'_>, rows: &[u32], slots: &[u32], store: &mut BatchStore) -> Result<()> {
        let by = by_values(&self.by.evaluate(b.batch)?)?;
        for (&row, &s) in rows.iter().zip(slots) {
            let v = &by[row as usize];
            let cell = &mut self.best[s as usize];
            let replace = match cell {
                None => true,
                Some((acc, _)) => v.beats(acc, self.max),
            };
            if replace {
                store.retain(b.seq, 1);
                if let Some((_, old)) = cell.replace((v.clone(), RowRef { batch: b.seq, row })) {
                    store.release(old.batch, 1);
                }
            }
        }
        Ok(())
    }
    fn merge(&mut self, target: u32, original: u32, store: &mut BatchStore) -> Result<()> {
        let Some((ov, orow)) = self.best[original as usize].take() else {
            return Ok(());
        };
        let t = &mut self.best[target as usize];
        let replace = match t {
            None => true,
            Some((acc, _)) => ov.beats(acc, self.max), // a tie keeps the target's row
        };
        if replace {
            if let Some((_, old)) = t.replace((ov, orow)) {
                store.release(old.batch, 1);
            }
        } else {
            store.release(orow.batch, 1);
        }
        Ok(())
    }
    fn evaluate(&mut self, slots: &[u32], store: &mut BatchStore) -> Result<Vec<ArrayRef>> {
        let picked: Vec<RowRef> = slots
            .iter()
            .map(|&s| {
                self.best[s as usize]
                    .take()
                    .map(|(_, r)| r)
                    .ok_or_else(|| WindrowError::Internal("closed window without rows".into()))
            })
            .collect::<Result<_>>()?;
        let mut out = Vec::with_capacity(self.value_columns.len());
        for (&c, f) in self.value_columns.iter().zip(&self.fields) {
            out.push(gather(picked.iter().copied(), store, f.data_type(), |b| Arc::clone(b.column(c)))?);
        }
        for r in &picked {
            store.release(r.batch, 1);
        }
        Ok(out)
    }
    /// `best.batch` / `best.row`: the best row so far; its `by` value in whichever of
    /// `by.int`, `by.float`, `by.str` fits (all null for a null `by` value). The value is
    /// saved rather than recomputed, so that a `by` expression is not evaluated again.
    fn snapshot(&mut self, slots: &[u32], rows: &mut Vec<RowRef>) -> Result<Vec<(String, ArrayRef)>> {
        let (mut ints, mut floats, mut strs) = (Int64Builder::new(), Float64Builder::new(), StringBuilder::new());
        let mut best = Vec::with_capacity(slots.len());
        for &s in slots {
            let cell = self.best[s as usize].as_ref();
            best.push(cell.map(|(_, r)| *r));
            let v = cell.map(|(v, _)| v);
            ints.append_option(if let Some(ByValue::Int(x)) = v { Some(*x) } else { None });
            floats.append_option(if let Some(ByValue::Float(x)) = v { Some(*x) } else { None });
            strs.append_option(if let Some(ByValue::Str(x)) = v { Some(x) } else { None });
        }
        let mut out: Vec<(String, ArrayRef)> = StateColumns::write_row_refs("best", best, rows).into();
        out.push(("by.int".into(), Arc::new(ints.finish())));
        out.push(("by.float".into(), Arc::new(floats.finish())));
        out.push(("by.str".into(), Arc::new(strs.finish())));
        Ok(out)
    }
    fn restore(
        &mut self,
        slots: &[u32],
        state: &StateColumns<'_>,
        rows: &RowMap,
        store: &mut BatchStore,
    ) -> Result<()> {
        let n = slots.len();
        let ints = state.primitive::<Int64Type>("by.int", n)?;
        let floats = state.primitive::<Float64Type>("by.float", n)?;
        let strs = state.string("by.str", n)?;
        for (i, &s) in slots.iter().enumerate() {
            let Some(row) = state.row_ref("best", n, i, rows, store)? else {
                continue;
            };
            let v = if ints.is_valid(i) {
                ByValue::Int(ints.value(i))
            } else if floats.is_valid(i) {
                ByValue::Float(floats.value(i))
            } else if strs.is_valid(i) {
                ByValue::Str(strs.value(i).to_string())
            } else {
                ByValue::Null
            };
            self.best[s as usize] = Some((v, row));
        }
        Ok(())
    }
}

/// One input row, as seen by `fold_window`'s folder. Reading by name is convenient; this is
/// the row-at-a-time path, so prefer `agg_window` where a built-in aggregate fits.
#[derive(Clone, Copy)]
pub struct RowView<'a> {
    batch: &'a RecordBatch,
    row: usize,
}

impl<'a> RowView<'a> {
    /// Row `row` of `batch`.
    pub fn new(batch: &'a RecordBatch, row: usize) -> Self {
        RowView { batch, row }
    }

    fn column(&self, name: &str) -> Option<&'a ArrayRef> {
        self.batch.column_by_name(name)
    }

    /// The value of column `name` (None if there is no such column).
    pub fn get(&self, name: &str) -> Option<ScalarValue> {
        ScalarValue::try_from_array(self.column(name)?, self.row).ok()
    }

    /// A numeric column as `f64` (None for null or a missing/non-numeric column).
    pub fn f64(&self, name: &str) -> Option<f64> {
        let col = self.column(name)?;
        if col.is_null(self.row) {
            return None;
        }
        match col.data_type() {
            DataType::Float64 => Some(col.as_primitive::<Float64Type>().value(self.row)),
            DataType::Int64 => Some(col.as_primitive::<Int64Type>().value(self.row) as f64),
            _ => {
                cast(&col.slice(self.row, 1), &DataType::Float64).ok().map(|a| a.as_primitive::<Float64Type>().value(0))
            }
        }
    }

    /// An integer or timestamp column as `i64`.
    pub fn i64(&self, name: &str) -> Option<i64> {
        let col = self.column(name)?;
        if col.is_null(self.row) {
            return None;
        }
        cast(&col.slice(self.row, 1), &DataType::Int64).ok().map(|a| a.as_primitive::<Int64Type>().value(0))
    }

    /// A UTF-8 column as `&str`.
    pub fn str(&self, name: &str) -> Option<&'a str> {
        let col = self.column(name)?;
        if col.is_null(self.row) {
            return None;
        }
        col.as_string_opt::<i32>().map(|a| a.value(self.row))
    }
}

/// `fold_window`'s folder: `folder(acc, row) -> acc`.
pub type FolderFn<S> = Arc<dyn Fn(S, &RowView<'_>) -> S + Send + Sync>;

/// The closures of `fold_window` (spec §8.1).
pub struct FoldFns<S> {
    /// Creates a window's accumulator, once per window, when it receives its first row.
    pub builder: Arc<dyn Fn() -> S + Send + Sync>,
    /// Folds one row into the accumulator.
    pub folder: FolderFn<S>,
    /// Combines two accumulators when session windows merge: `merger(target, original)`.
    pub merger: Option<Arc<dyn Fn(S, S) -> S + Send + Sync>>,
    /// The result column on `down`.
    pub output: Field,
    /// Converts a finished accumulator to the result value.
    pub finish: Arc<dyn Fn(S) -> ScalarValue + Send + Sync>,
    /// Saves and loads accumulators in checkpoints; without it a run with a state directory
    /// refuses to start (see [`with_state`](Self::with_state)).
    pub state: Option<FoldState<S>>,
}

impl<S> Clone for FoldFns<S> {
    fn clone(&self) -> Self {
        FoldFns {
            builder: Arc::clone(&self.builder),
            folder: Arc::clone(&self.folder),
            merger: self.merger.clone(),
            output: self.output.clone(),
            finish: Arc::clone(&self.finish),
            state: self.state.clone(),
        }
    }
}

/// How a `fold_window` accumulator goes into a checkpoint and comes back: windrow cannot
/// serialize a user's Rust type itself.
pub struct FoldState<S> {
    /// The accumulator as one value; every window's must have the same Arrow type.
    pub save: Arc<dyn Fn(&S) -> ScalarValue + Send + Sync>,
    /// The accumulator back from what `save` wrote, or why it cannot be.
    pub load: FoldLoadFn<S>,
}

/// [`FoldState::load`]: an accumulator from its saved value, or why it cannot be.
pub type FoldLoadFn<S> = Arc<dyn Fn(&ScalarValue) -> Result<S, String> + Send + Sync>;

impl<S> Clone for FoldState<S> {
    fn clone(&self) -> Self {
        FoldState { save: Arc::clone(&self.save), load: Arc::clone(&self.load) }
    }
}

/// Why a fold without [`FoldState`] cannot be checkpointed.
macro_rules! no_state_codec {
    () => {
        "fold_window has no state codec: add FoldFns::with_state(save, load) to checkpoint it"
    };
}

impl<S> FoldFns<S> {
    /// A fold whose accumulator converts to a result value with `Into<ScalarValue>`.
    ///
    /// ```
    /// use windrow::agg::FoldFns;
    /// use arrow::datatypes::{DataType, Field};
    /// let sum = FoldFns::new(|| 0.0, |acc: f64, row| acc + row.f64("value").unwrap_or(0.0),
    ///                        Field::new("sum", DataType::Float64, true))
    ///     .with_merger(|a, b| a + b);
    /// # let _ = sum;
    /// ```
    pub fn new(
        builder: impl Fn() -> S + Send + Sync + 'static,
        folder: impl Fn(S, &RowView<'_>) -> S + Send + Sync + 'static,
        output: Field,
    ) -> Self
    where
        S: Into<ScalarValue>,
    {
        FoldFns {
            builder: Arc::new(builder),
            folder: Arc::new(folder),
            merger: None,
            output,
            finish: Arc::new(|s: S| s.into()),
            state: None,
        }
    }

    /// Adds the merger needed by unordered session windows.
    pub fn with_merger(mut self, merger: impl Fn(S, S) -> S + Send + Sync + 'static) -> Self {
        self.merger = Some(Arc::new(merger));
        self
    }

    /// Adds the state codec that checkpoints need: `save` writes an accumulator as one value
    /// (the same Arrow type for every window), `load` reads it back after a restart.
    ///
    /// ```
    /// use arrow::datatypes::{DataType, Field};
    /// use datafusion::common::ScalarValue;
    /// use windrow::agg::FoldFns;
    /// let sum = FoldFns::new(|| 0.0, |acc: f64, row| acc + row.f64("value").unwrap_or(0.0),
    ///                        Field::new("sum", DataType::Float64, true))
    ///     .with_state(
    ///         |acc: &f64| ScalarValue::Float64(Some(*acc)),
    ///         |v| match v {
    ///             ScalarValue::Float64(Some(x)) => Ok(*x),
    ///             other => Err(format!("expected a Float64 sum, got {other:?}")),
    ///         },
    ///     );
    /// let codec = sum.state.as_ref().expect("set by with_state");
    /// assert_eq!((codec.load)(&(codec.save)(&2.5)), Ok(2.5));
    /// ```
    pub fn with_state(
        mut self,
        save: impl Fn(&S) -> ScalarValue + Send + Sync + 'static,
        load: impl Fn(&ScalarValue) -> Result<S, String> + Send + Sync + 'static,
    ) -> Self {
        self.state = Some(FoldState { save: Arc::new(save), load: Arc::new(load) });
        self
    }
}

pub(crate) struct FoldFactory<S> {
    pub fns: FoldFns<S>,
}

impl<S: Send + 'static> AggFactory for FoldFactory<S> {
    /// The closures cannot be compared: a fold is known by its output.
    fn describe(&self) -> String {
        format!("fold as {}: {}", self.fns.output.name(), self.fns.output.data_type())
    }
    fn result_fields(&self) -> Vec<FieldRef> {
        vec![Arc::new(self.fns.output.clone())]
    }
    fn create(&self) -> Box<dyn SlotAgg> {
        Box::new(Fold { fns: self.fns.clone(), accs: Vec::new() })
    }
    fn can_merge(&self) -> bool {
        self.fns.merger.is_some()
    }
    fn checkpoint_support(&self) -> std::result::Result<(), String> {
        match self.fns.state {
            Some(_) => Ok(()),
            None => Err(no_state_codec!().into()),
        }
    }
}

struct Fold<S> {
    fns: FoldFns<S>,
    accs: Vec<Option<S>>,
}

fn scalars_to_array(values: Vec<ScalarValue>, dt: &DataType) -> Result<ArrayRef> {
    if values.is_empty() {
        return Ok(new_empty_array(dt));
    }
    let arr = ScalarValue::iter_to_array(values)?;
    Ok(if arr.data_type() != dt { cast(&arr, dt)? } else { arr })
}

impl<S: Send + 'static> SlotAgg for Fold<S> {
    fn ensure_slots(&mut self, n: usize) {
        if self.accs.len() < n {
            self.accs.resize_with(n, || None);
        }
    }
    fn update(&mut self, b: &BatchView<'_>, rows: &[u32], slots: &[u32], _: &mut BatchStore) -> Result<()> {
        for (&row, &s) in rows.iter().zip(slots) {
            let acc = self.accs[s as usize].take().unwrap_or_else(|| (self.fns.builder)());
            self.accs[s as usize] = Some((self.fns.folder)(acc, &RowView::new(b.batch, row as usize)));
        }
        Ok(())
    }
    fn merge(&mut self, target: u32, original: u32, _: &mut BatchStore) -> Result<()> {
        let Some(merger) = &self.fns.merger else {
            return Err(WindrowError::Internal("session merge in a fold without a merger".into()));
        };
        let orig = self.accs[original as usize].take();
        let t = self.accs[target as usize].take();
        self.accs[target as usize] = match (t, orig) {
            (Some(t), Some(o)) => Some(merger(t, o)),
            (t, o) => t.or(o),
        };
        Ok(())
    }
    fn evaluate(&mut self, slots: &[u32], _: &mut BatchStore) -> Result<Vec<ArrayRef>> {
        let values: Vec<ScalarValue> = slots
            .iter()
            .map(|&s| {
                let acc = self.accs[s as usize].take().unwrap_or_else(|| (self.fns.builder)());
                (self.fns.finish)(acc)
            })
            .collect();
        Ok(vec![scalars_to_array(values, self.fns.output.data_type())?])
    }
    /// `present` (whether the window has an accumulator) and `state`: what the codec's `save`
    /// wrote (null where absent).
    fn snapshot(&mut self, slots: &[u32], _: &mut Vec<RowRef>) -> Result<Vec<(String, ArrayRef)>> {
        let codec = self.fns.state.as_ref().ok_or_else(|| WindrowError::Config(no_state_codec!().into()))?;
        let saved: Vec<Option<ScalarValue>> =
            slots.iter().map(|&s| self.accs[s as usize].as_ref().map(|acc| (codec.save)(acc))).collect();
        let present: BooleanArray = saved.iter().map(|v| Some(v.is_some())).collect();
        let dt = saved.iter().flatten().next().map_or(DataType::Null, ScalarValue::data_type);
        let null = ScalarValue::try_from(&dt)?;
        let saved = saved.into_iter().map(|v| v.unwrap_or_else(|| null.clone())).collect();
        let state = scalars_to_array(saved, &dt).map_err(|e| {
            WindrowError::Data(format!("fold_window state codec: `save` must return one type for every window ({e})"))
        })?;
        Ok(vec![("present".into(), Arc::new(present)), ("state".into(), state)])
    }
    fn restore(&mut self, slots: &[u32], state: &StateColumns<'_>, _: &RowMap, _: &mut BatchStore) -> Result<()> {
        let codec = self.fns.state.as_ref().ok_or_else(|| WindrowError::Config(no_state_codec!().into()))?;
        let n = slots.len();
        let present = state.present(n)?;
        let saved = state.rows("state", n)?;
        for (i, &s) in slots.iter().enumerate() {
            if present(i) {
                let v = ScalarValue::try_from_array(saved, i)?;
                let acc = (codec.load)(&v).map_err(|e| {
                    WindrowError::Data(format!(
                        "fold_window state codec could not load a checkpointed accumulator: {e}"
                    ))
                })?;
                self.accs[s as usize] = Some(acc);
            }
        }
        Ok(())
    }
}

/// A row of `reduce_window`: the input's non-key columns as owned values.
#[derive(Clone, Debug)]
pub struct Row {
    fields: Fields,
    values: Vec<ScalarValue>,
}

impl Row {
    /// The value of column `name`.
    pub fn get(&self, name: &str) -> Option<&ScalarValue> {
        self.fields.find(name).map(|(i, _)| &self.values[i])
    }

    /// A numeric column as `f64`.
    pub fn f64(&self, name: &str) -> Option<f64> {
        match self.get(name)?.cast_to(&DataType::Float64).ok()? {
            ScalarValue::Float64(v) => v,
            _ => None,
        }
    }

    /// Replaces the value of column `name` (its type must stay the column's type).
    pub fn set(&mut self, name: &str, value: ScalarValue) -> &mut Self {
        if let Some((i, _)) = self.fields.find(name) {
            self.values[i] = value;
        }
        self
    }

    /// Returns a copy with column `name` replaced.
    pub fn with(mut self, name: &str, value: ScalarValue) -> Self {
        self.set(name, value);
        self
    }
}

/// `reduce_window`'s reducer: `reducer(acc, row) -> acc`.
pub type ReduceFn = Arc<dyn Fn(Row, &Row) -> Row + Send + Sync>;

pub(crate) struct ReduceFactory {
    pub reducer: ReduceFn,
    pub value_columns: Vec<usize>,
    pub fields: Fields,
}

impl AggFactory for ReduceFactory {
    fn describe(&self) -> String {
        format!("reduce(columns {:?})", self.value_columns)
    }
    fn result_fields(&self) -> Vec<FieldRef> {
        self.fields.iter().cloned().collect()
    }
    fn create(&self) -> Box<dyn SlotAgg> {
        Box::new(Reduce {
            reducer: Arc::clone(&self.reducer),
            value_columns: self.value_columns.clone(),
            fields: self.fields.clone(),
            accs: Vec::new(),
        })
    }
}

struct Reduce {
    reducer: ReduceFn,
    value_columns: Vec<usize>,
    fields: Fields,
    accs: Vec<Option<Row>>,
}

impl SlotAgg for Reduce {
    fn ensure_slots(&mut self, n: usize) {
        if self.accs.len() < n {
            self.accs.resize_with(n, || None);
        }
    }
    fn update(&mut self, b: &BatchView<'_>, rows: &[u32], slots: &[u32], _: &mut BatchStore) -> Result<()> {
        for (&row, &s) in rows.iter().zip(slots) {
            let values = self
                .value_columns
                .iter()
                .map(|&c| ScalarValue::try_from_array(b.batch.column(c), row as usize))
                .collect::<Result<Vec<_>, _>>()?;
            let v = Row { fields: self.fields.clone(), values };
            let cell = &mut self.accs[s as usize];
            *cell = Some(match cell.take() {
                None => v,
                Some(acc) => (self.reducer)(acc, &v),
            });
        }
        Ok(())
    }
    fn merge(&mut self, target: u32, original: u32, _: &mut BatchStore) -> Result<()> {
        let orig = self.accs[original as usize].take();
        let t = self.accs[target as usize].take();
        self.accs[target as usize] = match (t, orig) {
            (Some(t), Some(o)) => Some((self.reducer)(t, &o)),
            (t, o) => t.or(o),
        };
        Ok(())
    }
    fn evaluate(&mut self, slots: &[u32], _: &mut BatchStore) -> Result<Vec<ArrayRef>> {
        let rows: Vec<Row> = slots
            .iter()
            .map(|&s| {
                self.accs[s as usize].take().ok_or_else(|| WindrowError::Internal("closed window without rows".into()))
            })
            .collect::<Result<_>>()?;
        self.fields
            .iter()
            .enumerate()
            .map(|(i, f)| scalars_to_array(rows.iter().map(|r| r.values[i].clone()).collect(), f.data_type()))
            .collect()
    }
    /// `present` (whether the window has an accumulated row) and the row's values, column
    /// `acc.<field>` per field (null where absent).
    fn snapshot(&mut self, slots: &[u32], _: &mut Vec<RowRef>) -> Result<Vec<(String, ArrayRef)>> {
        let accs: Vec<Option<&Row>> = slots.iter().map(|&s| self.accs[s as usize].as_ref()).collect();
        let present: BooleanArray = accs.iter().map(|a| Some(a.is_some())).collect();
        let mut out: Vec<(String, ArrayRef)> = vec![("present".into(), Arc::new(present))];
        for (i, f) in self.fields.iter().enumerate() {
            let null = ScalarValue::try_from(f.data_type())?;
            let values = accs.iter().map(|a| a.map_or_else(|| null.clone(), |r| r.values[i].clone())).collect();
            out.push((format!("acc.{}", f.name()), scalars_to_array(values, f.data_type())?));
        }
        Ok(out)
    }
    fn restore(&mut self, slots: &[u32], state: &StateColumns<'_>, _: &RowMap, _: &mut BatchStore) -> Result<()> {
        let n = slots.len();
        let present = state.present(n)?;
        let columns =
            self.fields.iter().map(|f| state.rows(&format!("acc.{}", f.name()), n)).collect::<Result<Vec<_>>>()?;
        for (i, &s) in slots.iter().enumerate() {
            if present(i) {
                let values =
                    columns.iter().map(|c| ScalarValue::try_from_array(c, i)).collect::<Result<Vec<_>, _>>()?;
                self.accs[s as usize] = Some(Row { fields: self.fields.clone(), values });
            }
        }
        Ok(())
    }
}
