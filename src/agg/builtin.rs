//! Built-in vectorised aggregates for `count_window` and `agg_window`, and the adapter that
//! runs any DataFusion aggregate function (including user-defined ones) per window.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, UInt32Array};
use arrow::compute::{cast, take};
use arrow::datatypes::{DataType, Field, FieldRef, Float64Type, Int64Type, Schema, SchemaRef};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{Accumulator, AggregateUDF, function::AccumulatorArgs};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Column;

use super::rows::{CollectFactory, FirstLastFactory};
use super::{AggFactory, BatchStore, BatchView, RowMap, RowRef, SlotAgg, StateColumns, grow, span};
use crate::error::{Result, WindrowError, plan_err};

/// `count_window`'s aggregate: rows per window, whatever their values.
pub(crate) struct CountFactory;

impl AggFactory for CountFactory {
    fn describe(&self) -> String {
        "count".into()
    }
    fn result_fields(&self) -> Vec<FieldRef> {
        vec![Arc::new(Field::new("count", DataType::Int64, false))]
    }
    fn create(&self) -> Box<dyn SlotAgg> {
        Box::new(RowCount { counts: Vec::new() })
    }
}

struct RowCount {
    counts: Vec<i64>,
}

impl SlotAgg for RowCount {
    fn ensure_slots(&mut self, n: usize) {
        grow(&mut self.counts, n, 0);
    }
    fn update(&mut self, _: &BatchView<'_>, _rows: &[u32], slots: &[u32], _: &mut BatchStore) -> Result<()> {
        for &s in slots {
            self.counts[s as usize] += 1;
        }
        Ok(())
    }
    fn update_spans(
        &mut self,
        _: &BatchView<'_>,
        _rows: &[u32],
        spans: &[u32],
        span_slots: &[u32],
        _: &mut BatchStore,
    ) -> Result<()> {
        for &at in spans {
            span(span_slots, at).iter().for_each(|&s| self.counts[s as usize] += 1);
        }
        Ok(())
    }
    fn merge(&mut self, target: u32, original: u32, _: &mut BatchStore) -> Result<()> {
        self.counts[target as usize] += std::mem::take(&mut self.counts[original as usize]);
        Ok(())
    }
    fn evaluate(&mut self, slots: &[u32], _: &mut BatchStore) -> Result<Vec<ArrayRef>> {
        let out: Int64Array = slots.iter().map(|&s| std::mem::take(&mut self.counts[s as usize])).collect();
        Ok(vec![Arc::new(out)])
    }
    fn snapshot(&mut self, slots: &[u32], _: &mut Vec<RowRef>) -> Result<Vec<(String, ArrayRef)>> {
        let counts: Int64Array = slots.iter().map(|&s| self.counts[s as usize]).collect();
        Ok(vec![("count".into(), Arc::new(counts))])
    }
    fn restore(&mut self, slots: &[u32], state: &StateColumns<'_>, _: &RowMap, _: &mut BatchStore) -> Result<()> {
        let counts = state.primitive::<Int64Type>("count", slots.len())?;
        for (i, &s) in slots.iter().enumerate() {
            self.counts[s as usize] = counts.value(i);
        }
        Ok(())
    }
}

/// An aggregate function for [`Agg`].
#[derive(Clone, Debug)]
pub enum AggFunc {
    /// Rows (no column) or non-null values of a column.
    Count,
    /// Sum of non-null values (integers stay `Int64`, others become `Float64`); null if none.
    Sum,
    /// Smallest non-null value (floats in total order: NaN above every number).
    Min,
    /// Largest non-null value.
    Max,
    /// Mean of non-null values as `Float64`.
    Mean,
    /// The value of the first applied row.
    First,
    /// The value of the last applied row.
    Last,
    /// All values, as a list in application order.
    Collect,
    /// Any DataFusion aggregate function, built-in or user-defined.
    Udaf(Arc<AggregateUDF>),
}

/// One aggregate of `agg_window`: a function over a column, with an optional output name.
///
/// ```
/// use windrow::agg::Agg;
/// let aggs = [Agg::count(), Agg::sum("value").alias("total"), Agg::mean("value")];
/// assert_eq!(aggs[1].output_name(), "total");
/// assert_eq!(aggs[2].output_name(), "mean_value");
/// ```
#[derive(Clone, Debug)]
pub struct Agg {
    pub(crate) func: AggFunc,
    pub(crate) column: Option<String>,
    pub(crate) alias: Option<String>,
}

impl Agg {
    /// A function over a column.
    pub fn new(func: AggFunc, column: impl Into<String>) -> Self {
        Agg { func, column: Some(column.into()), alias: None }
    }
    /// Rows per window.
    pub fn count() -> Self {
        Agg { func: AggFunc::Count, column: None, alias: None }
    }
    /// Non-null values of `column` per window.
    pub fn count_of(column: impl Into<String>) -> Self {
        Self::new(AggFunc::Count, column)
    }
    /// Sum of `column`.
    pub fn sum(column: impl Into<String>) -> Self {
        Self::new(AggFunc::Sum, column)
    }
    /// Minimum of `column`.
    pub fn min(column: impl Into<String>) -> Self {
        Self::new(AggFunc::Min, column)
    }
    /// Maximum of `column`.
    pub fn max(column: impl Into<String>) -> Self {
        Self::new(AggFunc::Max, column)
    }
    /// Mean of `column`.
    pub fn mean(column: impl Into<String>) -> Self {
        Self::new(AggFunc::Mean, column)
    }
    /// First value of `column` in application order.
    pub fn first(column: impl Into<String>) -> Self {
        Self::new(AggFunc::First, column)
    }
    /// Last value of `column` in application order.
    pub fn last(column: impl Into<String>) -> Self {
        Self::new(AggFunc::Last, column)
    }
    /// List of the values of `column` in application order.
    pub fn collect(column: impl Into<String>) -> Self {
        Self::new(AggFunc::Collect, column)
    }
    /// A DataFusion aggregate function (e.g. `datafusion::functions_aggregate::median::median_udaf()`).
    pub fn udaf(udaf: Arc<AggregateUDF>, column: impl Into<String>) -> Self {
        Self::new(AggFunc::Udaf(udaf), column)
    }
    /// Names the output column.
    pub fn alias(mut self, name: impl Into<String>) -> Self {
        self.alias = Some(name.into());
        self
    }

    /// The output column name: the alias, or `<function>_<column>` (`count` for row counts).
    pub fn output_name(&self) -> String {
        if let Some(a) = &self.alias {
            return a.clone();
        }
        let f = match &self.func {
            AggFunc::Count => "count",
            AggFunc::Sum => "sum",
            AggFunc::Min => "min",
            AggFunc::Max => "max",
            AggFunc::Mean => "mean",
            AggFunc::First => "first",
            AggFunc::Last => "last",
            AggFunc::Collect => "collect",
            AggFunc::Udaf(u) => u.name(),
        };
        match &self.column {
            Some(c) => format!("{f}_{c}"),
            None => f.to_string(),
        }
    }
}

/// `agg_window`'s aggregates bound to an input schema.
pub(crate) struct BuiltinFactory {
    parts: Vec<Box<dyn AggFactory>>,
}

impl BuiltinFactory {
    pub fn bind(aggs: &[Agg], schema: &SchemaRef) -> Result<Self> {
        if aggs.is_empty() {
            return plan_err("agg_window needs at least one aggregate");
        }
        let mut parts: Vec<Box<dyn AggFactory>> = Vec::new();
        for agg in aggs {
            let name = agg.output_name();
            let Some(col) = &agg.column else {
                match agg.func {
                    AggFunc::Count => {
                        parts.push(Box::new(Renamed { inner: Box::new(CountFactory), name }));
                        continue;
                    }
                    _ => return plan_err(format!("aggregate `{name}` needs a column")),
                }
            };
            let Ok(index) = schema.index_of(col) else {
                return plan_err(format!(
                    "aggregate `{name}`: column \"{col}\" not found; the input has columns {:?}",
                    schema.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>()
                ));
            };
            let dt = schema.field(index).data_type().clone();
            let numeric = dt.is_numeric();
            let part: Box<dyn AggFactory> = match &agg.func {
                AggFunc::Count => Box::new(NumericFactory { index, kind: Kind::CountNonNull, name, int: true }),
                AggFunc::Sum | AggFunc::Min | AggFunc::Max | AggFunc::Mean => {
                    if !numeric {
                        return plan_err(format!(
                            "aggregate `{name}`: column \"{col}\" has type {dt}; sum/min/max/mean need a numeric column \
                             (use a DataFusion aggregate via Agg::udaf for other types)"
                        ));
                    }
                    let int = dt.is_integer();
                    let kind = match agg.func {
                        AggFunc::Sum => Kind::Sum,
                        AggFunc::Min => Kind::Min,
                        AggFunc::Max => Kind::Max,
                        _ => Kind::Mean,
                    };
                    Box::new(NumericFactory { index, kind, name, int: int && kind != Kind::Mean })
                }
                AggFunc::First | AggFunc::Last => Box::new(FirstLastFactory {
                    index,
                    last: matches!(agg.func, AggFunc::Last),
                    name,
                    schema: Arc::clone(schema),
                }),
                AggFunc::Collect => Box::new(CollectFactory::column(index, name, schema)),
                AggFunc::Udaf(udaf) => Box::new(UdafFactory::bind(Arc::clone(udaf), index, name, schema)?),
            };
            parts.push(part);
        }
        Ok(BuiltinFactory { parts })
    }
}

impl AggFactory for BuiltinFactory {
    fn describe(&self) -> String {
        format!("[{}]", self.parts.iter().map(|p| p.describe()).collect::<Vec<_>>().join(", "))
    }
    fn result_fields(&self) -> Vec<FieldRef> {
        self.parts.iter().flat_map(|p| p.result_fields()).collect()
    }
    fn create(&self) -> Box<dyn SlotAgg> {
        Box::new(Composite { parts: self.parts.iter().map(|p| p.create()).collect() })
    }
    fn checkpoint_support(&self) -> std::result::Result<(), String> {
        self.parts.iter().try_for_each(|p| p.checkpoint_support())
    }
}

struct Composite {
    parts: Vec<Box<dyn SlotAgg>>,
}

impl SlotAgg for Composite {
    fn ensure_slots(&mut self, n: usize) {
        self.parts.iter_mut().for_each(|p| p.ensure_slots(n));
    }
    fn update(&mut self, b: &BatchView<'_>, rows: &[u32], slots: &[u32], store: &mut BatchStore) -> Result<()> {
        self.parts.iter_mut().try_for_each(|p| p.update(b, rows, slots, store))
    }
    fn update_spans(
        &mut self,
        b: &BatchView<'_>,
        rows: &[u32],
        spans: &[u32],
        span_slots: &[u32],
        store: &mut BatchStore,
    ) -> Result<()> {
        self.parts.iter_mut().try_for_each(|p| p.update_spans(b, rows, spans, span_slots, store))
    }
    fn merge(&mut self, target: u32, original: u32, store: &mut BatchStore) -> Result<()> {
        self.parts.iter_mut().try_for_each(|p| p.merge(target, original, store))
    }
    fn evaluate(&mut self, slots: &[u32], store: &mut BatchStore) -> Result<Vec<ArrayRef>> {
        let mut out = Vec::new();
        for p in &mut self.parts {
            out.extend(p.evaluate(slots, store)?);
        }
        Ok(out)
    }
    /// Part `i`'s columns are prefixed with `"{i}."`.
    fn snapshot(&mut self, slots: &[u32], rows: &mut Vec<RowRef>) -> Result<Vec<(String, ArrayRef)>> {
        let mut out = Vec::new();
        for (i, p) in self.parts.iter_mut().enumerate() {
            out.extend(p.snapshot(slots, rows)?.into_iter().map(|(name, col)| (format!("{i}.{name}"), col)));
        }
        Ok(out)
    }
    fn restore(
        &mut self,
        slots: &[u32],
        state: &StateColumns<'_>,
        rows: &RowMap,
        store: &mut BatchStore,
    ) -> Result<()> {
        for (i, p) in self.parts.iter_mut().enumerate() {
            p.restore(slots, &state.prefixed(&format!("{i}.")), rows, store)?;
        }
        Ok(())
    }
}

/// Renames the single result column of another factory.
struct Renamed {
    inner: Box<dyn AggFactory>,
    name: String,
}

impl AggFactory for Renamed {
    fn describe(&self) -> String {
        format!("{} as {}", self.inner.describe(), self.name)
    }
    fn result_fields(&self) -> Vec<FieldRef> {
        self.inner
            .result_fields()
            .into_iter()
            .map(|f| Arc::new(f.as_ref().clone().with_name(self.name.clone())))
            .collect()
    }
    fn create(&self) -> Box<dyn SlotAgg> {
        self.inner.create()
    }
    fn checkpoint_support(&self) -> std::result::Result<(), String> {
        self.inner.checkpoint_support()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    CountNonNull,
    Sum,
    Min,
    Max,
    Mean,
}

impl Kind {
    /// The state of an empty `Float64` slot: folding any value into it gives that value, so
    /// the fold needs no "first value?" branch (a mispredicted one in every window's first
    /// row). `-0.0 + v` is `v` for every number `v`, `-0.0` included; the `NaN` with every payload
    /// bit set is the greatest `f64` in total order (for min) and its negative the least
    /// (for max). Two limits, both about `NaN` bits of a lone value: `-0.0 + v` quiets a
    /// signalling `NaN` (as any later fold would), and keeps a quiet `NaN`'s sign and payload
    /// only where the processor does (x86-64 and aarch64 do; Rust leaves it unspecified).
    /// Min and max do no arithmetic, so they keep every value's bits.
    fn identity_f(self) -> f64 {
        match self {
            Kind::Sum | Kind::Mean | Kind::CountNonNull => -0.0,
            Kind::Min => f64::from_bits(0x7fff_ffff_ffff_ffff),
            Kind::Max => f64::from_bits(u64::MAX),
        }
    }

    /// [`identity_f`](Self::identity_f) for `Int64` state.
    fn identity_i(self) -> i64 {
        match self {
            Kind::Sum | Kind::Mean | Kind::CountNonNull => 0,
            Kind::Min => i64::MAX,
            Kind::Max => i64::MIN,
        }
    }
}

struct NumericFactory {
    index: usize,
    kind: Kind,
    name: String,
    /// Integer state and output (`Int64`) rather than `Float64`.
    int: bool,
}

impl AggFactory for NumericFactory {
    fn describe(&self) -> String {
        format!("{:?}(column {}{}) as {}", self.kind, self.index, if self.int { ", Int64" } else { "" }, self.name)
    }
    fn result_fields(&self) -> Vec<FieldRef> {
        let (dt, nullable) = match (self.kind, self.int) {
            (Kind::CountNonNull, _) => (DataType::Int64, false),
            (_, true) => (DataType::Int64, true),
            (_, false) => (DataType::Float64, true),
        };
        vec![Arc::new(Field::new(&self.name, dt, nullable))]
    }
    fn create(&self) -> Box<dyn SlotAgg> {
        Box::new(Numeric { index: self.index, kind: self.kind, int: self.int, i: Vec::new(), f: Vec::new() })
    }
}

/// A slot's state: the running value (the kind's identity while the slot has no value, see
/// [`Kind::identity_f`]) and how many non-null values went into it, side by side. With many
/// keys each slot a row updates is a cache miss; two vectors made it two.
#[derive(Clone, Copy, Debug)]
struct Cell<T> {
    acc: T,
    n: i64,
}

impl<T> Cell<T> {
    fn empty(identity: T) -> Self {
        Cell { acc: identity, n: 0 }
    }
}

/// Sum/min/max/mean/count over one numeric column: columnar state indexed by slot.
struct Numeric {
    index: usize,
    kind: Kind,
    int: bool,
    /// The state per slot: `Int64` (`int`) or `Float64`; the other stays empty.
    i: Vec<Cell<i64>>,
    f: Vec<Cell<f64>>,
}

impl Numeric {
    /// [`SlotAgg::update`] and [`SlotAgg::update_spans`].
    fn fold(&mut self, b: &BatchView<'_>, rows: &[u32], targets: Targets<'_>) -> Result<()> {
        let col = b.batch.column(self.index);
        if self.kind == Kind::CountNonNull {
            let valid = rows.iter().map(|&r| col.is_valid(r as usize));
            if self.int {
                count_rows(&mut self.i, valid, targets);
            } else {
                count_rows(&mut self.f, valid, targets);
            }
            return Ok(());
        }

        let nulls = col.logical_nulls();
        let nulls = nulls.as_ref();
        // One loop per aggregate kind (a constant in each arm, so the fold's `match` is
        // resolved at compile time), not a match per row.
        macro_rules! fold_as {
            ($fold:path, $cells:expr, $vals:expr, $($kind:ident),+) => {
                match self.kind {
                    $(Kind::$kind => fold_rows($cells, $vals, rows, targets, nulls, |a, v| $fold(Kind::$kind, a, v)),)+
                }
            };
        }
        if self.int {
            let arr = cast(col, &DataType::Int64)?;
            let vals = arr.as_primitive::<Int64Type>().values();
            fold_as!(Self::fold_i, &mut self.i, vals, Sum, Min, Max, Mean, CountNonNull);
        } else {
            let arr = cast(col, &DataType::Float64)?;
            let vals = arr.as_primitive::<Float64Type>().values();
            fold_as!(Self::fold_f, &mut self.f, vals, Sum, Min, Max, Mean, CountNonNull);
        }
        Ok(())
    }

    /// Non-null values seen by `slot`.
    fn n(&self, slot: u32) -> i64 {
        if self.int { self.i[slot as usize].n } else { self.f[slot as usize].n }
    }

    #[inline(always)]
    fn fold_i(kind: Kind, acc: i64, v: i64) -> i64 {
        match kind {
            Kind::Sum => acc.wrapping_add(v),
            Kind::Min => acc.min(v),
            Kind::Max => acc.max(v),
            Kind::CountNonNull | Kind::Mean => acc,
        }
    }
    #[inline(always)]
    fn fold_f(kind: Kind, acc: f64, v: f64) -> f64 {
        match kind {
            Kind::Sum | Kind::Mean => acc + v,
            Kind::Min => {
                if v.total_cmp(&acc).is_lt() {
                    v
                } else {
                    acc
                }
            }
            Kind::Max => {
                if v.total_cmp(&acc).is_gt() {
                    v
                } else {
                    acc
                }
            }
            Kind::CountNonNull => acc,
        }
    }
}

/// Where queued rows go: row `i` to `Slots[i]`, or to every slot of span `spans[i]` (see
/// [`SlotAgg::update_spans`]).
#[derive(Clone, Copy)]
enum Targets<'a> {
    Slots(&'a [u32]),
    Spans { spans: &'a [u32], span_slots: &'a [u32] },
}

/// Counts the rows whose value is `valid` (one flag per row) in their `targets`' cells.
fn count_rows<T>(cells: &mut [Cell<T>], valid: impl Iterator<Item = bool>, targets: Targets<'_>) {
    match targets {
        Targets::Slots(slots) => {
            slots.iter().zip(valid).filter(|(_, v)| *v).for_each(|(&s, _)| cells[s as usize].n += 1)
        }
        Targets::Spans { spans, span_slots } => {
            for (&at, _) in spans.iter().zip(valid).filter(|(_, v)| *v) {
                span(span_slots, at).iter().for_each(|&s| cells[s as usize].n += 1);
            }
        }
    }
}

/// From how many bytes of cells [`fold_rows`] asks for the cells of rows ahead: about where
/// they outgrow a core's L2 cache, and updates start to miss (with many keys).
const PREFETCH_CELLS_FROM_BYTES: usize = 1 << 20;

/// How many rows ahead [`fold_rows`] asks for their cells: each sliding row has several.
const PREFETCH_SLOTS_AHEAD: usize = 16;
const PREFETCH_SPANS_AHEAD: usize = 4;

/// Folds the values of `rows` into the cells of their `targets` (each starts from the fold's
/// identity, so the first value comes out as it is), skipping nulls.
#[inline]
fn fold_rows<T: Copy>(
    cells: &mut [Cell<T>],
    vals: &[T],
    rows: &[u32],
    targets: Targets<'_>,
    nulls: Option<&arrow::buffer::NullBuffer>,
    fold: impl Fn(T, T) -> T,
) {
    let one = |cells: &mut [Cell<T>], s: u32, v: T| {
        let cell = &mut cells[s as usize];
        cell.acc = fold(cell.acc, v);
        cell.n += 1;
    };
    let prefetch = std::mem::size_of_val(cells) >= PREFETCH_CELLS_FROM_BYTES;
    let ask = |cells: &[Cell<T>], s: u32| {
        if let Some(cell) = cells.get(s as usize) {
            crate::cpu::prefetch(cell);
        }
    };
    let valid = |r: u32| nulls.is_none_or(|nulls| nulls.is_valid(r as usize));
    match targets {
        // The common case, in cache: the plainest loop.
        Targets::Slots(slots) if !prefetch && nulls.is_none() => {
            rows.iter().zip(slots).for_each(|(&r, &s)| one(cells, s, vals[r as usize]))
        }
        Targets::Slots(slots) => {
            for (j, (&r, &s)) in rows.iter().zip(slots).enumerate() {
                if prefetch && let Some(&ahead) = slots.get(j + PREFETCH_SLOTS_AHEAD) {
                    ask(cells, ahead);
                }
                if valid(r) {
                    one(cells, s, vals[r as usize]);
                }
            }
        }
        Targets::Spans { spans, span_slots } if !prefetch => {
            for (&r, &at) in rows.iter().zip(spans).filter(|(r, _)| valid(**r)) {
                let v = vals[r as usize];
                span(span_slots, at).iter().for_each(|&s| one(cells, s, v));
            }
        }
        Targets::Spans { spans, span_slots } => {
            for (j, (&r, &at)) in rows.iter().zip(spans).enumerate() {
                if let Some(&ahead) = spans.get(j + PREFETCH_SPANS_AHEAD) {
                    span(span_slots, ahead).iter().for_each(|&s| ask(cells, s));
                }
                if valid(r) {
                    let v = vals[r as usize];
                    span(span_slots, at).iter().for_each(|&s| one(cells, s, v));
                }
            }
        }
    }
}

/// Folds cell `original` into cell `target` and empties it (a session merge).
fn merge_cells<T: Copy>(cells: &mut [Cell<T>], target: usize, original: usize, identity: T, fold: impl Fn(T, T) -> T) {
    let o = std::mem::replace(&mut cells[original], Cell::empty(identity));
    if o.n > 0 {
        let t = &mut cells[target];
        t.acc = fold(t.acc, o.acc);
        t.n += o.n;
    }
}

/// Empties the cells of `slots`.
fn reset_cells<T: Copy>(cells: &mut [Cell<T>], slots: &[u32], identity: T) {
    for &s in slots {
        cells[s as usize] = Cell::empty(identity);
    }
}

impl SlotAgg for Numeric {
    fn ensure_slots(&mut self, n: usize) {
        if self.int {
            grow(&mut self.i, n, Cell::empty(self.kind.identity_i()));
        } else {
            grow(&mut self.f, n, Cell::empty(self.kind.identity_f()));
        }
    }

    fn update(&mut self, b: &BatchView<'_>, rows: &[u32], slots: &[u32], _: &mut BatchStore) -> Result<()> {
        self.fold(b, rows, Targets::Slots(slots))
    }

    fn update_spans(
        &mut self,
        b: &BatchView<'_>,
        rows: &[u32],
        spans: &[u32],
        span_slots: &[u32],
        _: &mut BatchStore,
    ) -> Result<()> {
        self.fold(b, rows, Targets::Spans { spans, span_slots })
    }

    fn merge(&mut self, target: u32, original: u32, _: &mut BatchStore) -> Result<()> {
        let (t, o, kind) = (target as usize, original as usize, self.kind);
        if self.int {
            merge_cells(&mut self.i, t, o, kind.identity_i(), |a, v| Self::fold_i(kind, a, v));
        } else {
            merge_cells(&mut self.f, t, o, kind.identity_f(), |a, v| Self::fold_f(kind, a, v));
        }
        Ok(())
    }

    fn evaluate(&mut self, slots: &[u32], _: &mut BatchStore) -> Result<Vec<ArrayRef>> {
        let out: ArrayRef = match (self.kind, self.int) {
            (Kind::CountNonNull, _) => Arc::new(slots.iter().map(|&s| self.n(s)).collect::<Int64Array>()),
            (_, true) => Arc::new(
                slots.iter().map(|&s| self.i[s as usize]).map(|c| (c.n > 0).then_some(c.acc)).collect::<Int64Array>(),
            ),
            (Kind::Mean, false) => Arc::new(
                slots
                    .iter()
                    .map(|&s| self.f[s as usize])
                    .map(|c| (c.n > 0).then(|| c.acc / c.n as f64))
                    .collect::<Float64Array>(),
            ),
            (_, false) => Arc::new(
                slots.iter().map(|&s| self.f[s as usize]).map(|c| (c.n > 0).then_some(c.acc)).collect::<Float64Array>(),
            ),
        };
        if self.int {
            reset_cells(&mut self.i, slots, self.kind.identity_i());
        } else {
            reset_cells(&mut self.f, slots, self.kind.identity_f());
        }
        Ok(vec![out])
    }

    /// `n` (non-null values seen) and, but for a count, the running value: `i` (`Int64`) or
    /// `f` (`Float64`).
    fn snapshot(&mut self, slots: &[u32], _: &mut Vec<RowRef>) -> Result<Vec<(String, ArrayRef)>> {
        let n: Int64Array = slots.iter().map(|&s| self.n(s)).collect();
        let mut out: Vec<(String, ArrayRef)> = vec![("n".into(), Arc::new(n))];
        match (self.kind, self.int) {
            (Kind::CountNonNull, _) => {}
            (_, true) => {
                out.push(("i".into(), Arc::new(slots.iter().map(|&s| self.i[s as usize].acc).collect::<Int64Array>())))
            }
            (_, false) => out
                .push(("f".into(), Arc::new(slots.iter().map(|&s| self.f[s as usize].acc).collect::<Float64Array>()))),
        }
        Ok(out)
    }

    fn restore(&mut self, slots: &[u32], state: &StateColumns<'_>, _: &RowMap, _: &mut BatchStore) -> Result<()> {
        let len = slots.len();
        let n = state.primitive::<Int64Type>("n", len)?;
        let count_only = self.kind == Kind::CountNonNull;
        // A slot without values starts from the identity, whatever was saved for it
        // (checkpoints written before the identities saved 0).
        if self.int {
            let (identity, i) =
                (self.kind.identity_i(), if count_only { None } else { Some(state.primitive::<Int64Type>("i", len)?) });
            for (k, &s) in slots.iter().enumerate() {
                let acc = i.filter(|_| n.value(k) != 0).map_or(identity, |i| i.value(k));
                self.i[s as usize] = Cell { acc, n: n.value(k) };
            }
        } else {
            let (identity, f) = (
                self.kind.identity_f(),
                if count_only { None } else { Some(state.primitive::<Float64Type>("f", len)?) },
            );
            for (k, &s) in slots.iter().enumerate() {
                let acc = f.filter(|_| n.value(k) != 0).map_or(identity, |f| f.value(k));
                self.f[s as usize] = Cell { acc, n: n.value(k) };
            }
        }
        Ok(())
    }
}

/// Runs a DataFusion aggregate function per window through its row-free `Accumulator`
/// interface: `update_batch` with each window's values, `state`/`merge_batch` for session
/// merges, `evaluate` at close.
struct UdafFactory {
    udaf: Arc<AggregateUDF>,
    index: usize,
    name: String,
    schema: SchemaRef,
    input_field: FieldRef,
    return_field: FieldRef,
    expr: Arc<dyn PhysicalExpr>,
}

impl UdafFactory {
    fn bind(udaf: Arc<AggregateUDF>, index: usize, name: String, schema: &SchemaRef) -> Result<Self> {
        let input_field = Arc::new(schema.field(index).clone());
        let return_field = udaf.return_field(std::slice::from_ref(&input_field))?;
        let return_field = Arc::new(return_field.as_ref().clone().with_name(name.clone()).with_nullable(true));
        let expr: Arc<dyn PhysicalExpr> = Arc::new(Column::new(input_field.name(), index));
        let f = UdafFactory { udaf, index, name, schema: Arc::clone(schema), input_field, return_field, expr };
        f.new_accumulator()?; // fail at plan time, not at the first row
        Ok(f)
    }

    fn new_accumulator(&self) -> Result<Box<dyn Accumulator>> {
        let exprs = [Arc::clone(&self.expr)];
        let fields = [Arc::clone(&self.input_field)];
        let schema: &Schema = &self.schema;
        let args = AccumulatorArgs {
            return_field: Arc::clone(&self.return_field),
            schema,
            ignore_nulls: false,
            order_bys: &[],
            is_reversed: false,
            name: &self.name,
            is_distinct: false,
            exprs: &exprs,
            expr_fields: &fields,
        };
        Ok(self.udaf.accumulator(args)?)
    }
}

impl AggFactory for UdafFactory {
    fn describe(&self) -> String {
        format!("{}({}) as {}", self.udaf.name(), self.expr, self.name)
    }
    fn result_fields(&self) -> Vec<FieldRef> {
        vec![Arc::clone(&self.return_field)]
    }
    fn create(&self) -> Box<dyn SlotAgg> {
        Box::new(UdafState {
            factory: UdafFactory {
                udaf: Arc::clone(&self.udaf),
                index: self.index,
                name: self.name.clone(),
                schema: Arc::clone(&self.schema),
                input_field: Arc::clone(&self.input_field),
                return_field: Arc::clone(&self.return_field),
                expr: Arc::clone(&self.expr),
            },
            accs: Vec::new(),
        })
    }
}

struct UdafState {
    factory: UdafFactory,
    accs: Vec<Option<Box<dyn Accumulator>>>,
}

impl UdafState {
    fn acc(&mut self, slot: u32) -> Result<&mut Box<dyn Accumulator>> {
        let cell = &mut self.accs[slot as usize];
        if cell.is_none() {
            *cell = Some(self.factory.new_accumulator()?);
        }
        cell.as_mut().ok_or_else(|| WindrowError::Internal("accumulator missing".into()))
    }
}

impl SlotAgg for UdafState {
    fn ensure_slots(&mut self, n: usize) {
        if self.accs.len() < n {
            self.accs.resize_with(n, || None);
        }
    }

    fn update(&mut self, b: &BatchView<'_>, rows: &[u32], slots: &[u32], _: &mut BatchStore) -> Result<()> {
        // Group the run's rows by slot (stable, so each window sees its rows in order), then
        // hand each window one gathered array.
        let mut order: Vec<usize> = (0..rows.len()).collect();
        order.sort_by_key(|&i| slots[i]);
        let col = b.batch.column(self.factory.index);
        let mut start = 0;
        while start < order.len() {
            let slot = slots[order[start]];
            let mut end = start;
            while end < order.len() && slots[order[end]] == slot {
                end += 1;
            }
            let idx: UInt32Array = order[start..end].iter().map(|&i| rows[i]).collect();
            let values = take(col.as_ref(), &idx, None)?;
            self.acc(slot)?.update_batch(&[values])?;
            start = end;
        }
        Ok(())
    }

    fn merge(&mut self, target: u32, original: u32, _: &mut BatchStore) -> Result<()> {
        let Some(mut orig) = self.accs[original as usize].take() else {
            return Ok(());
        };
        let state = orig.state()?;
        let arrays = state.into_iter().map(|s| s.to_array()).collect::<Result<Vec<_>, _>>()?;
        self.acc(target)?.merge_batch(&arrays)?;
        Ok(())
    }

    fn evaluate(&mut self, slots: &[u32], _: &mut BatchStore) -> Result<Vec<ArrayRef>> {
        let dt = self.factory.return_field.data_type().clone();
        let mut values = Vec::with_capacity(slots.len());
        for &s in slots {
            let v = match self.accs[s as usize].take() {
                Some(mut acc) => acc.evaluate()?,
                None => ScalarValue::try_from(&dt)?,
            };
            values.push(v);
        }
        let arr =
            if values.is_empty() { arrow::array::new_empty_array(&dt) } else { ScalarValue::iter_to_array(values)? };
        // Some functions return a narrower type than declared; make the column match.
        let arr = if arr.data_type() != &dt { cast(&arr, &dt)? } else { arr };
        Ok(vec![arr])
    }

    /// `present` (whether the slot has an accumulator) and the accumulator's intermediate
    /// state (`Accumulator::state`), element `j` as column `state.{j}`. Absent slots get an
    /// empty accumulator's state, so that every column has one type.
    fn snapshot(&mut self, slots: &[u32], _: &mut Vec<RowRef>) -> Result<Vec<(String, ArrayRef)>> {
        let empty = self.factory.new_accumulator()?.state()?;
        let mut present = Vec::with_capacity(slots.len());
        let mut columns: Vec<Vec<ScalarValue>> = (0..empty.len()).map(|_| Vec::with_capacity(slots.len())).collect();
        for &s in slots {
            let state = match &mut self.accs[s as usize] {
                Some(acc) => {
                    let state = acc.state()?;
                    // `state` may hand the state over (median moves its values out): rebuild
                    // the accumulator from it, as a restore does.
                    let arrays = state.iter().map(ScalarValue::to_array).collect::<Result<Vec<_>, _>>()?;
                    let mut rebuilt = self.factory.new_accumulator()?;
                    rebuilt.merge_batch(&arrays)?;
                    *acc = rebuilt;
                    state
                }
                None => empty.clone(),
            };
            if state.len() != empty.len() {
                return Err(WindrowError::Internal(format!(
                    "aggregate `{}` has {} state values for a window, {} for an empty one",
                    self.factory.name,
                    state.len(),
                    empty.len()
                )));
            }
            present.push(self.accs[s as usize].is_some());
            for (col, v) in columns.iter_mut().zip(state) {
                col.push(v);
            }
        }
        let mut out: Vec<(String, ArrayRef)> = vec![("present".into(), Arc::new(BooleanArray::from(present)))];
        for (j, (values, e)) in columns.into_iter().zip(&empty).enumerate() {
            let arr = if values.is_empty() {
                arrow::array::new_empty_array(&e.data_type())
            } else {
                ScalarValue::iter_to_array(values)?
            };
            out.push((format!("state.{j}"), arr));
        }
        Ok(out)
    }

    /// A fresh accumulator per present slot, merged with its saved state.
    fn restore(&mut self, slots: &[u32], state: &StateColumns<'_>, _: &RowMap, _: &mut BatchStore) -> Result<()> {
        let n = slots.len();
        let present = state.present(n)?;
        let width = self.factory.new_accumulator()?.state()?.len();
        let columns = (0..width).map(|j| state.rows(&format!("state.{j}"), n)).collect::<Result<Vec<_>>>()?;
        for (i, &s) in slots.iter().enumerate() {
            if !present(i) {
                continue;
            }
            let mut acc = self.factory.new_accumulator()?;
            acc.merge_batch(&columns.iter().map(|c| c.slice(i, 1)).collect::<Vec<_>>())?;
            self.accs[s as usize] = Some(acc);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agg::{BatchStore, BatchView};
    use arrow::array::{Float64Array, RecordBatch};
    use arrow::datatypes::{Field, Schema};

    /// A window's sum and mean start from its first value exactly as it is: `−0.0`, NaN and
    /// infinities alone or first come out bit for bit as the row-by-row fold gives them
    /// (a fold from an initial +0.0 would turn a lone −0.0 into +0.0).
    #[test]
    fn sums_keep_the_first_value_bit_for_bit() {
        let windows: Vec<Vec<f64>> = vec![
            vec![-0.0],
            vec![0.0],
            vec![-0.0, -0.0],
            vec![-0.0, 0.0],
            vec![f64::NAN],
            vec![f64::INFINITY, 1.0],
            vec![f64::NEG_INFINITY, f64::INFINITY],
            vec![0.1, 0.2, 0.3],
            vec![1e308, 1e308],
        ];
        let values: Vec<f64> = windows.iter().flatten().copied().collect();
        let lens: Vec<usize> = windows.iter().map(Vec::len).collect();
        let (out, again) = fold_windows(&[Agg::sum("v"), Agg::mean("v")], Arc::new(Float64Array::from(values)), &lens);
        let (sums, means) = (out[0].as_primitive::<Float64Type>(), out[1].as_primitive::<Float64Type>());
        for (w, vs) in windows.iter().enumerate() {
            let expected = vs[1..].iter().fold(vs[0], |a, v| a + v);
            let mean = expected / vs.len() as f64;
            assert_eq!(sums.value(w).to_bits(), expected.to_bits(), "sum of {vs:?}");
            assert_eq!(means.value(w).to_bits(), mean.to_bits(), "mean of {vs:?}");
        }
        // Evaluating resets the slots: a second round starts afresh.
        assert_eq!(again[0].as_primitive::<Float64Type>().value(0).to_bits(), (-0.0f64).to_bits());
    }

    /// Folds `windows` (window `w` gets slot `w`) with `aggs` over column `v` of `values`,
    /// evaluating every window, then folds each window's first value alone into its slot
    /// again (evaluating resets the slots to the identities). Returns both evaluations.
    fn fold_windows(aggs: &[Agg], values: ArrayRef, windows: &[usize]) -> (Vec<ArrayRef>, Vec<ArrayRef>) {
        let schema = Arc::new(Schema::new(vec![Field::new("v", values.data_type().clone(), false)]));
        let batch = RecordBatch::try_new(schema.clone(), vec![values]).unwrap();
        let mut agg = BuiltinFactory::bind(aggs, &schema).unwrap().create();
        agg.ensure_slots(windows.len());
        let slots: Vec<u32> = windows.iter().enumerate().flat_map(|(w, &n)| (0..n).map(move |_| w as u32)).collect();
        let rows: Vec<u32> = (0..slots.len() as u32).collect();
        let mut store = BatchStore::default();
        store.pin(0, &batch);
        let view = BatchView { seq: 0, batch: &batch };
        agg.update(&view, &rows, &slots, &mut store).unwrap();
        let all: Vec<u32> = (0..windows.len() as u32).collect();
        let first = agg.evaluate(&all, &mut store).unwrap();
        let starts: Vec<u32> = windows.iter().scan(0, |at, &n| Some(std::mem::replace(at, *at + n) as u32)).collect();
        agg.update(&view, &starts, &all, &mut store).unwrap();
        let again = agg.evaluate(&all, &mut store).unwrap();
        store.unpin(0);
        (first, again)
    }

    /// Min and max start from their first value too, bit for bit, whatever it is: the
    /// extreme `NaN`s of the total order included (they are the folds' starting states).
    #[test]
    fn float_min_and_max_keep_the_first_value_bit_for_bit() {
        let greatest = f64::from_bits(0x7fff_ffff_ffff_ffff);
        let least = f64::from_bits(u64::MAX);
        let windows: Vec<Vec<f64>> = vec![
            vec![greatest],
            vec![least],
            vec![f64::NAN],
            vec![-f64::NAN, 1.0],
            vec![-0.0, 0.0],
            vec![0.0, -0.0],
            vec![f64::INFINITY, 1.0, f64::NEG_INFINITY],
            vec![3.0, greatest, least, -2.0],
        ];
        let values: Vec<f64> = windows.iter().flatten().copied().collect();
        let lens: Vec<usize> = windows.iter().map(Vec::len).collect();
        let (out, again) = fold_windows(&[Agg::min("v"), Agg::max("v")], Arc::new(Float64Array::from(values)), &lens);
        let (mins, maxs) = (out[0].as_primitive::<Float64Type>(), out[1].as_primitive::<Float64Type>());
        for (w, vs) in windows.iter().enumerate() {
            let min = vs[1..].iter().fold(vs[0], |a, &v| if v.total_cmp(&a).is_lt() { v } else { a });
            let max = vs[1..].iter().fold(vs[0], |a, &v| if v.total_cmp(&a).is_gt() { v } else { a });
            assert_eq!(mins.value(w).to_bits(), min.to_bits(), "min of {vs:?}");
            assert_eq!(maxs.value(w).to_bits(), max.to_bits(), "max of {vs:?}");
        }
        let (mins, maxs) = (again[0].as_primitive::<Float64Type>(), again[1].as_primitive::<Float64Type>());
        for (w, vs) in windows.iter().enumerate() {
            assert_eq!(mins.value(w).to_bits(), vs[0].to_bits(), "min of {:?} after a reset", vs[0]);
            assert_eq!(maxs.value(w).to_bits(), vs[0].to_bits(), "max of {:?} after a reset", vs[0]);
        }
    }

    /// A slot restored without values starts from the identity even where the checkpoint
    /// saved 0 for it (as checkpoints did before the identities): a restored empty min
    /// window then takes its first value, not 0.
    #[test]
    fn a_restored_empty_slot_starts_from_the_identity() {
        // Slot 0 gets positive values, slot 1 negative ones: a saved 0 would be the min of
        // the first and the max of the second.
        let values = Arc::new(Float64Array::from(vec![5.0, 7.0, -5.0, -7.0]));
        let out = restore_zeroed(&[Agg::min("v"), Agg::max("v")], values, &[0, 1, 2, 3], &[0, 0, 1, 1]);
        let (mins, maxs) = (out[0].as_primitive::<Float64Type>(), out[1].as_primitive::<Float64Type>());
        assert_eq!((mins.value(0), maxs.value(0)), (5.0, 7.0));
        assert_eq!((mins.value(1), maxs.value(1)), (-7.0, -5.0));
    }

    /// Restores slots 0 and 1 of `aggs` from a snapshot of empty slots whose running values
    /// are overwritten with 0 (as checkpoints saved them before the identities), folds `rows`
    /// of `values` into `slots` and evaluates both slots.
    fn restore_zeroed(aggs: &[Agg], values: ArrayRef, rows: &[u32], slots: &[u32]) -> Vec<ArrayRef> {
        let schema = Arc::new(Schema::new(vec![Field::new("v", values.data_type().clone(), false)]));
        let f = BuiltinFactory::bind(aggs, &schema).unwrap();
        let mut saved = f.create();
        saved.ensure_slots(2);
        let mut columns = saved.snapshot(&[0, 1], &mut Vec::new()).unwrap();
        for (name, col) in columns.iter_mut() {
            if name.ends_with('f') {
                *col = Arc::new(Float64Array::from(vec![0.0, 0.0]));
            } else if name.ends_with('i') {
                *col = Arc::new(arrow::array::Int64Array::from(vec![0, 0]));
            }
        }
        let mut store = BatchStore::default();
        let mut agg = f.create();
        agg.ensure_slots(2);
        agg.restore(&[0, 1], &crate::agg::StateColumns::new(&columns), &Default::default(), &mut store).unwrap();
        let batch = RecordBatch::try_new(schema, vec![values]).unwrap();
        store.pin(0, &batch);
        agg.update(&BatchView { seq: 0, batch: &batch }, rows, slots, &mut store).unwrap();
        let out = agg.evaluate(&[0, 1], &mut store).unwrap();
        store.unpin(0);
        out
    }

    /// [`a_restored_empty_slot_starts_from_the_identity`] for integer min and max and for a
    /// float sum: a saved 0 would be the min of positive values, the max of negative ones, and
    /// would turn a lone -0.0's sum into +0.0.
    #[test]
    fn restored_empty_integer_and_sum_slots_start_from_the_identity() {
        let ints = Arc::new(arrow::array::Int64Array::from(vec![5, 7, -5, -7]));
        let out = restore_zeroed(&[Agg::min("v"), Agg::max("v")], ints, &[0, 1, 2, 3], &[0, 0, 1, 1]);
        let (mins, maxs) = (out[0].as_primitive::<Int64Type>(), out[1].as_primitive::<Int64Type>());
        assert_eq!((mins.value(0), maxs.value(0)), (5, 7));
        assert_eq!((mins.value(1), maxs.value(1)), (-7, -5));
        let floats = Arc::new(Float64Array::from(vec![-0.0]));
        let out = restore_zeroed(&[Agg::sum("v")], floats, &[0], &[0]);
        assert_eq!(out[0].as_primitive::<Float64Type>().value(0).to_bits(), (-0.0f64).to_bits());
    }

    /// Integer sum, min and max from the first value: the extremes of `i64` alone or first.
    #[test]
    fn integer_folds_keep_the_first_value() {
        let windows: Vec<Vec<i64>> =
            vec![vec![i64::MAX], vec![i64::MIN], vec![i64::MAX, 1], vec![5, -3, 7], vec![i64::MIN, i64::MAX, 0]];
        let values: Vec<i64> = windows.iter().flatten().copied().collect();
        let lens: Vec<usize> = windows.iter().map(Vec::len).collect();
        let (out, again) = fold_windows(
            &[Agg::sum("v"), Agg::min("v"), Agg::max("v")],
            Arc::new(arrow::array::Int64Array::from(values)),
            &lens,
        );
        let col = |i: usize| out[i].as_primitive::<Int64Type>().clone();
        let (sums, mins, maxs) = (col(0), col(1), col(2));
        for (w, vs) in windows.iter().enumerate() {
            assert_eq!(sums.value(w), vs[1..].iter().fold(vs[0], |a, &v| a.wrapping_add(v)), "sum of {vs:?}");
            assert_eq!(mins.value(w), *vs.iter().min().unwrap(), "min of {vs:?}");
            assert_eq!(maxs.value(w), *vs.iter().max().unwrap(), "max of {vs:?}");
        }
        for a in &again {
            let a = a.as_primitive::<Int64Type>();
            for (w, vs) in windows.iter().enumerate() {
                assert_eq!(a.value(w), vs[0], "{:?} alone after a reset", vs[0]);
            }
        }
    }

    /// A session merge leaves the merged-away slot at the identity: its next window starts
    /// afresh (a slot reset to 0 would give 0 as the min of positive values, and +0.0 as
    /// the sum or max of a lone -0.0).
    #[test]
    fn a_merged_away_slot_starts_from_the_identity() {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Float64, false)]));
        let mut agg = BuiltinFactory::bind(&[Agg::sum("v"), Agg::min("v"), Agg::max("v")], &schema).unwrap().create();
        agg.ensure_slots(4);
        let values = Float64Array::from(vec![1.0, 2.0, 4.0, -0.0, 5.0, 7.0]);
        let batch = RecordBatch::try_new(schema, vec![Arc::new(values)]).unwrap();
        let mut store = BatchStore::default();
        store.pin(0, &batch);
        let view = BatchView { seq: 0, batch: &batch };
        // Slots 2 and 3 get values and merge into the empty slots 0 and 1; then they take
        // new values of their own.
        agg.update(&view, &[0, 1, 2], &[2, 2, 3], &mut store).unwrap();
        agg.merge(0, 2, &mut store).unwrap();
        agg.merge(1, 3, &mut store).unwrap();
        agg.update(&view, &[3, 4, 5], &[2, 3, 3], &mut store).unwrap();
        let out = agg.evaluate(&[0, 1, 2, 3], &mut store).unwrap();
        store.unpin(0);
        let col = |i: usize| -> Vec<u64> {
            out[i].as_primitive::<Float64Type>().values().iter().map(|v| v.to_bits()).collect()
        };
        let bits = |vs: [f64; 4]| -> Vec<u64> { vs.iter().map(|v| v.to_bits()).collect() };
        assert_eq!(col(0), bits([3.0, 4.0, -0.0, 12.0]), "sums");
        assert_eq!(col(1), bits([1.0, 4.0, -0.0, 5.0]), "mins");
        assert_eq!(col(2), bits([2.0, 4.0, -0.0, 7.0]), "maxs");
    }

    /// With more cells than [`PREFETCH_CELLS_FROM_BYTES`] the fold asks for the cells of rows
    /// ahead: the same sums, counts and minima as folding row by row, with nulls skipped, for
    /// single slots and for spans.
    #[test]
    fn many_slots_fold_the_same_when_prefetching() {
        const SLOTS: usize = 100_000;
        assert!(SLOTS * std::mem::size_of::<Cell<i64>>() >= PREFETCH_CELLS_FROM_BYTES);
        let n_rows = 300_000u32;
        let value = |r: u32| (!r.is_multiple_of(11)).then_some(i64::from(r % 1000) - 300);
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, true)]));
        let values = arrow::array::Int64Array::from_iter((0..n_rows).map(value));
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(values)]).unwrap();
        let rows: Vec<u32> = (0..n_rows).collect();
        let slot = |r: u32| (r as usize * 7919 % SLOTS) as u32;
        // Spans of three slots: row r's slot and the two after it.
        let span_of = |r: u32| [slot(r), (slot(r) + 1) % SLOTS as u32, (slot(r) + 2) % SLOTS as u32];
        let mut span_slots = Vec::new();
        let spans: Vec<u32> = rows
            .iter()
            .map(|&r| {
                let at = span_slots.len() as u32;
                span_slots.push(3);
                span_slots.extend(span_of(r));
                at
            })
            .collect();
        for use_spans in [false, true] {
            let aggs = [Agg::sum("v"), Agg::count_of("v"), Agg::min("v")];
            let mut agg = BuiltinFactory::bind(&aggs, &schema).unwrap().create();
            agg.ensure_slots(SLOTS);
            let mut store = BatchStore::default();
            store.pin(0, &batch);
            let view = BatchView { seq: 0, batch: &batch };
            let mut expected = vec![(0i64, 0i64, i64::MAX); SLOTS];
            for &r in &rows {
                let targets = if use_spans { span_of(r).to_vec() } else { vec![slot(r)] };
                for s in targets {
                    if let Some(v) = value(r) {
                        let e = &mut expected[s as usize];
                        *e = (e.0 + v, e.1 + 1, e.2.min(v));
                    }
                }
            }
            if use_spans {
                agg.update_spans(&view, &rows, &spans, &span_slots, &mut store).unwrap();
            } else {
                let slots: Vec<u32> = rows.iter().map(|&r| slot(r)).collect();
                agg.update(&view, &rows, &slots, &mut store).unwrap();
            }
            let all: Vec<u32> = (0..SLOTS as u32).collect();
            let out = agg.evaluate(&all, &mut store).unwrap();
            let (sums, counts, mins) = (
                out[0].as_primitive::<Int64Type>(),
                out[1].as_primitive::<Int64Type>(),
                out[2].as_primitive::<Int64Type>(),
            );
            for (s, &(sum, count, min)) in expected.iter().enumerate() {
                assert_eq!(counts.value(s), count, "count of slot {s}, spans {use_spans}");
                if count > 0 {
                    assert_eq!((sums.value(s), mins.value(s)), (sum, min), "slot {s}, spans {use_spans}");
                } else {
                    assert!(sums.is_null(s) && mins.is_null(s), "slot {s}, spans {use_spans}");
                }
            }
        }
    }
}
