//! The window operator: normalises each micro-batch, decides lateness, shards rows by key
//! hash and runs the shards in parallel, then assembles `down`, `late`, `meta` and `errors`.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray, UInt32Array};
use arrow::compute::{concat_batches, take};
use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef, TimeUnit};
use rayon::prelude::*;

use datafusion::logical_expr::Expr;

use super::keys::{BoundKeys, KeySpec, bind_expr, shard_of};
use super::shard::{ClockState, Lateness, Shard, ShardConfig, ShardState, state_col};
use crate::agg::{
    Agg, AggFactory, ArgBestFactory, BuiltinFactory, ByInput, CollectDictFactory, CollectFactory, CollectInto,
    CollectSetFactory, CountFactory, FoldFactory, FoldFns, ReduceFactory, ReduceFn, RowMap,
};
use crate::error::{Result, WindrowError, config_err, plan_err};
use crate::time::{BoundTime, Clock, POS_INF, TimeSource, Wait, WatermarkScope, duration_to_unit, nanos_to_unit_floor};
use crate::window::{BoundWindower, Windower};

/// The fewest rows per chunk when a batch is hashed, checked and sharded in parallel (a batch
/// is cut into two chunks per shard, so that every thread has work, but no smaller than this).
const MIN_NORMALISE_CHUNK: usize = 4 * 1024;

/// What a window operator computes per window.
#[derive(Clone)]
pub(crate) enum AggSpec {
    Count,
    Collect {
        column: Option<String>,
        into: CollectInto,
    },
    Fold(Arc<dyn AggFactory>),
    Reduce(ReduceFn),
    Best {
        by: Option<BySpec>,
        max: bool,
    },
    Aggs(Vec<Agg>),
    /// A custom aggregator (joins).
    Custom(&'static str, Arc<dyn AggFactory>),
}

/// What `max_window` / `min_window` compare.
#[derive(Clone)]
pub(crate) enum BySpec {
    Column(String),
    /// A named DataFusion expression, evaluated per batch.
    Expr(String, Expr),
}

impl AggSpec {
    fn name(&self) -> &'static str {
        match self {
            AggSpec::Count => "count_window",
            AggSpec::Collect { .. } => "collect_window",
            AggSpec::Fold(_) => "fold_window",
            AggSpec::Reduce(_) => "reduce_window",
            AggSpec::Best { max: true, .. } => "max_window",
            AggSpec::Best { max: false, .. } => "min_window",
            AggSpec::Aggs(_) => "agg_window",
            AggSpec::Custom(name, _) => name,
        }
    }

    /// Operators that bytewax hard-codes as unordered.
    fn always_unordered(&self) -> bool {
        matches!(self, AggSpec::Count | AggSpec::Reduce(_) | AggSpec::Best { .. })
    }
}

/// Configures and builds a [`WindowOperator`]. Made by the operator functions in
/// [`crate::ops`]; every setting has the default the spec gives.
#[derive(Clone)]
pub struct WindowOpBuilder {
    step_id: String,
    schema: SchemaRef,
    key: KeySpec,
    clock: Clock,
    windower: Windower,
    agg: AggSpec,
    ordered: Option<bool>,
    scope: WatermarkScope,
    strict: bool,
    threads: usize,
    time_source: Option<TimeSource>,
    pool: Option<Arc<rayon::ThreadPool>>,
    /// Internal columns left out of `late` and `errors` (a join's unified event time).
    hidden: Vec<String>,
    close_inline_from_keys: usize,
}

impl WindowOpBuilder {
    pub(crate) fn new(
        step_id: impl Into<String>,
        schema: SchemaRef,
        key: KeySpec,
        clock: Clock,
        windower: Windower,
        agg: AggSpec,
    ) -> Self {
        WindowOpBuilder {
            step_id: step_id.into(),
            schema,
            key,
            clock,
            windower,
            agg,
            ordered: None,
            scope: WatermarkScope::PerKey,
            strict: false,
            threads: 1,
            time_source: None,
            pool: None,
            hidden: Vec::new(),
            close_inline_from_keys: super::shard::CLOSE_INLINE_FROM_KEYS,
        }
    }

    /// Ordered mode (spec §3.3): buffer accepted rows and apply them in timestamp order once
    /// the watermark passes them. Default true for collect/fold; count, reduce, max and min are
    /// always unordered (asking for ordered fails at build); `agg_window` defaults to false.
    pub fn ordered(mut self, ordered: bool) -> Self {
        self.ordered = Some(ordered);
        self
    }

    /// Watermark per key (default) or per stream.
    pub fn scope(mut self, scope: WatermarkScope) -> Self {
        self.scope = scope;
        self
    }

    /// From how many keys per shard due windows close block by block, while their keys are
    /// in cache, instead of once after each batch's rows (default 8192). The outputs are the
    /// same either way; this only tunes speed, and lets tests run both paths.
    #[doc(hidden)]
    pub fn close_inline_from_keys(mut self, keys: usize) -> Self {
        self.close_inline_from_keys = keys;
        self
    }

    /// Strict mode: a row that cannot be windowed fails the run instead of going to `errors`.
    pub fn strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    /// Number of key shards processed in parallel (default 1).
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// Shares an existing rayon pool instead of creating one.
    pub fn pool(mut self, pool: Arc<rayon::ThreadPool>) -> Self {
        self.pool = Some(pool);
        self
    }

    /// The system-time source (default: replay, frozen at build time).
    pub fn time_source(mut self, source: TimeSource) -> Self {
        self.time_source = Some(source);
        self
    }

    fn column_names(&self) -> Vec<&str> {
        self.schema.fields().iter().map(|f| f.name().as_str()).collect()
    }

    pub(crate) fn hide(mut self, column: impl Into<String>) -> Self {
        self.hidden.push(column.into());
        self
    }

    /// `collect_window`: collect this column instead of whole rows.
    pub fn column(mut self, column: impl Into<String>) -> Self {
        if let AggSpec::Collect { column: c, .. } = &mut self.agg {
            *c = Some(column.into());
        }
        self
    }

    /// `collect_window`: the container to collect into (spec §8.2): [`CollectInto::List`]
    /// (default), [`CollectInto::Set`] of the `.column(..)`, or [`CollectInto::Dict`] with
    /// its key and value columns.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use arrow::array::{Array, AsArray, Int64Array, RecordBatch, StringArray, TimestampSecondArray};
    /// use arrow::datatypes::{DataType, Field, Int64Type, Schema, TimeUnit};
    /// use chrono::TimeDelta;
    /// use windrow::prelude::*;
    ///
    /// let schema = Arc::new(Schema::new(vec![
    ///     Field::new("user", DataType::Utf8, false),
    ///     Field::new("ts", DataType::Timestamp(TimeUnit::Second, None), false),
    ///     Field::new("page", DataType::Utf8, false),
    ///     Field::new("ms", DataType::Int64, false),
    /// ]));
    /// let batch = RecordBatch::try_new(schema.clone(), vec![
    ///     Arc::new(StringArray::from(vec!["u", "u", "u"])),
    ///     Arc::new(TimestampSecondArray::from(vec![5, 3, 4])),
    ///     Arc::new(StringArray::from(vec!["home", "cart", "home"])),
    ///     Arc::new(Int64Array::from(vec![10, 20, 30])),
    /// ]).unwrap();
    /// let tumbling = TumblingWindower::new(TimeDelta::seconds(10)).unwrap();
    /// let stream = key_on(&schema, ["user"]);
    ///
    /// // Ordered (the default): applied as cart@3, home@4, home@5.
    /// let mut pages = collect_window("pages", &stream, EventClock::new("ts").wait_forever(), tumbling.clone())
    ///     .column("page").into_container(CollectInto::Set).build().unwrap();
    /// let down = pages.run([&batch]).unwrap().down_batch().unwrap();
    /// let set = down.column_by_name("page").unwrap().as_list::<i32>().value(0);
    /// assert_eq!(set.as_string::<i32>().iter().flatten().collect::<Vec<_>>(), ["cart", "home"]);
    ///
    /// // Last write wins: home = 10 (home@5 is applied after home@4).
    /// let mut ms = collect_window("ms", &stream, EventClock::new("ts").wait_forever(), tumbling)
    ///     .into_container(CollectInto::dict("page", "ms")).build().unwrap();
    /// let down = ms.run([&batch]).unwrap().down_batch().unwrap();
    /// let map = down.column_by_name("ms").unwrap().as_map();
    /// let keys = map.keys().as_string::<i32>().iter().flatten().collect::<Vec<_>>();
    /// assert_eq!(keys, ["cart", "home"]);
    /// assert_eq!(map.values().as_primitive::<Int64Type>().values().to_vec(), [20, 10]);
    /// ```
    pub fn into_container(mut self, into: CollectInto) -> Self {
        if let AggSpec::Collect { into: i, .. } = &mut self.agg {
            *i = into;
        }
        self
    }

    /// `max_window`/`min_window`: the column to compare.
    pub fn by(mut self, column: impl Into<String>) -> Self {
        if let AggSpec::Best { by, .. } = &mut self.agg {
            *by = Some(BySpec::Column(column.into()));
        }
        self
    }

    /// `max_window`/`min_window`: compare a DataFusion expression over the row instead of a
    /// column (bytewax's `by` function), evaluated once per micro-batch like key expressions.
    /// `name` names it in errors; it is not an output column (the result is still the whole
    /// row). The rules of spec §8.4 and §16 are unchanged: ties keep the earliest arrival (on a
    /// merge, the target's row), a null value loses to every non-null one, floats compare by
    /// Arrow's total order (`NaN` above every number). The expression must produce numbers,
    /// timestamps or strings.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use arrow::array::{AsArray, Float64Array, RecordBatch, StringArray, TimestampSecondArray};
    /// use arrow::datatypes::{DataType, Field, Float64Type, Schema, TimeUnit};
    /// use chrono::TimeDelta;
    /// use datafusion::prelude::col;
    /// use windrow::prelude::*;
    ///
    /// let schema = Arc::new(Schema::new(vec![
    ///     Field::new("k", DataType::Utf8, false),
    ///     Field::new("ts", DataType::Timestamp(TimeUnit::Second, None), false),
    ///     Field::new("x", DataType::Float64, false),
    /// ]));
    /// let batch = RecordBatch::try_new(schema.clone(), vec![
    ///     Arc::new(StringArray::from(vec!["a", "a", "a"])),
    ///     Arc::new(TimestampSecondArray::from(vec![0, 1, 2])),
    ///     Arc::new(Float64Array::from(vec![2.0, -5.0, 4.0])),
    /// ]).unwrap();
    /// // The row farthest from zero: compare x², keep the whole row.
    /// let mut op = max_window("far", &key_on(&schema, ["k"]), EventClock::new("ts"),
    ///                         TumblingWindower::new(TimeDelta::seconds(10)).unwrap())
    ///     .by_expr("x_squared", col("x") * col("x"))
    ///     .build().unwrap();
    /// let down = op.run([&batch]).unwrap().down_batch().unwrap();
    /// assert_eq!(down.column_by_name("x").unwrap().as_primitive::<Float64Type>().value(0), -5.0);
    /// ```
    pub fn by_expr(mut self, name: impl Into<String>, expr: Expr) -> Self {
        if let AggSpec::Best { by, .. } = &mut self.agg {
            *by = Some(BySpec::Expr(name.into(), expr));
        }
        self
    }

    /// Validates everything and builds the operator.
    ///
    /// # Errors
    /// Invalid window parameters, a missing or wrongly typed time or key column, an unknown
    /// aggregate column, ordered mode on an always-unordered operator, or a fold over unordered
    /// session windows without a merger.
    pub fn build(self) -> Result<WindowOperator> {
        let (time, unit) = self.clock.bind(&self.schema)?;
        let windower = self.windower.bind(unit)?;
        let wait = match &self.clock {
            Clock::Event(e) => match e.wait {
                Wait::Finite(d) => Some(duration_to_unit(d, unit, "wait_for_system_duration")?),
                Wait::Forever => None,
            },
            Clock::System(_) => Some(0),
        };
        let system = matches!(self.clock, Clock::System(_));
        let op_name = self.agg.name();
        let ordered = match (self.ordered, self.agg.always_unordered()) {
            (Some(true), true) => {
                return config_err(format!(
                    "{op_name} is always unordered (as in bytewax); ordered = true is not available"
                ));
            }
            (Some(o), _) => o,
            (None, true) => false,
            (None, false) => !matches!(self.agg, AggSpec::Aggs(_)),
        };
        let keys = BoundKeys::bind(&self.key, &self.schema)?;
        let value_columns: Vec<usize> =
            (0..self.schema.fields().len()).filter(|i| !keys.key_columns.contains(i)).collect();
        let hidden = |i: &usize| self.hidden.iter().any(|h| h == self.schema.field(*i).name());
        let late_columns: Vec<usize> = value_columns.iter().copied().filter(|i| !hidden(i)).collect();
        let error_columns: Vec<usize> = (0..self.schema.fields().len()).filter(|i| !hidden(i)).collect();
        let factory: Arc<dyn AggFactory> = match &self.agg {
            AggSpec::Count => Arc::new(CountFactory),
            AggSpec::Collect { column, into } => {
                let find = |c: &str, role: &str| -> Result<usize> {
                    self.schema.index_of(c).or_else(|_| {
                        plan_err(format!(
                            "collect_window into {}: {role} \"{c}\" not found; the input has columns {:?}",
                            into.name(),
                            self.column_names()
                        ))
                    })
                };
                match (into, column) {
                    (CollectInto::List, None) => Arc::new(CollectFactory::whole_rows(&self.schema)),
                    (CollectInto::List, Some(c)) => {
                        Arc::new(CollectFactory::column(find(c, "column")?, c.clone(), &self.schema))
                    }
                    (CollectInto::Set, None) => {
                        return plan_err(
                            "collect_window into set collects one column; name it with .column(\"…\")".to_string(),
                        );
                    }
                    (CollectInto::Set, Some(c)) => Arc::new(CollectSetFactory::bind(find(c, "column")?, &self.schema)?),
                    (CollectInto::Dict { .. }, Some(c)) => {
                        return plan_err(format!(
                            "collect_window into dict takes its columns from CollectInto::Dict {{ key, value }}; \
                             .column(\"{c}\") is not used, remove it"
                        ));
                    }
                    (CollectInto::Dict { key, value }, None) => {
                        let (k, v) = (find(key, "key column")?, find(value, "value column")?);
                        Arc::new(CollectDictFactory::bind(k, v, &self.schema)?)
                    }
                }
            }
            AggSpec::Fold(f) => Arc::clone(f),
            AggSpec::Reduce(r) => Arc::new(ReduceFactory {
                reducer: Arc::clone(r),
                value_columns: value_columns.clone(),
                fields: value_columns.iter().map(|&i| Arc::new(self.schema.field(i).clone())).collect(),
            }),
            AggSpec::Best { by, max } => {
                let by_input = match by {
                    Some(BySpec::Column(b)) => ByInput::Column(self.schema.index_of(b).or_else(|_| {
                        plan_err(format!(
                            "{op_name}: `by` column \"{b}\" not found; the input has columns {:?}",
                            self.column_names()
                        ))
                    })?),
                    Some(BySpec::Expr(name, e)) => {
                        let expr = bind_expr(e, &self.schema).map_err(|err| {
                            WindrowError::Plan(format!("{op_name}: `by` expression \"{name}\" ({e}): {err}"))
                        })?;
                        ByInput::Expr { name: name.clone(), expr }
                    }
                    None => {
                        // bytewax's default compares the value itself: the single column that
                        // is neither key nor event time.
                        let time_col = match &time {
                            BoundTime::Column { index, .. } => Some(*index),
                            _ => None,
                        };
                        let candidates: Vec<usize> =
                            value_columns.iter().copied().filter(|&i| Some(i) != time_col).collect();
                        match candidates.as_slice() {
                            [one] => ByInput::Column(*one),
                            _ => {
                                return plan_err(format!(
                                    "{op_name}: the input has several value columns; say which to compare with .by(\"column\") or .by_expr(name, expr)"
                                ));
                            }
                        }
                    }
                };
                Arc::new(ArgBestFactory::bind(by_input, *max, value_columns.clone(), &self.schema)?)
            }
            AggSpec::Aggs(aggs) => Arc::new(BuiltinFactory::bind(aggs, &self.schema)?),
            AggSpec::Custom(_, f) => Arc::clone(f),
        };
        if matches!(windower, BoundWindower::Session { .. }) && !ordered && !factory.can_merge() {
            return config_err(format!(
                "{op_name} \"{}\": unordered session windows can merge, so the fold needs a merger \
                 (FoldFns::with_merger), or use ordered = true",
                self.step_id
            ));
        }

        let ts_type = DataType::Timestamp(unit, Some("UTC".into()));
        let window_fields = [
            Arc::new(Field::new("window_id", DataType::Int64, false)),
            Arc::new(Field::new("window_start", ts_type.clone(), false)),
            Arc::new(Field::new("window_end", ts_type.clone(), false)),
        ];
        let down_schema = keys.schema_with(window_fields.iter().cloned().chain(factory.result_fields()));
        let meta_schema = keys.schema_with([
            Arc::new(Field::new("window_id", DataType::Int64, false)),
            Arc::new(Field::new("open_time", ts_type.clone(), false)),
            Arc::new(Field::new("close_time", ts_type.clone(), false)),
            Arc::new(Field::new(
                "merged_ids",
                DataType::List(Arc::new(Field::new("item", DataType::Int64, false))),
                false,
            )) as FieldRef,
        ]);
        let late_schema = keys.schema_with(
            std::iter::once(Arc::new(Field::new("window_id", DataType::Int64, false)) as FieldRef)
                .chain(late_columns.iter().map(|&i| Arc::new(self.schema.field(i).clone()))),
        );
        let mut error_fields: Vec<FieldRef> = error_columns
            .iter()
            .map(|&i| Arc::new(self.schema.field(i).clone().with_nullable(true)) as FieldRef)
            .collect();
        error_fields.push(Arc::new(Field::new("reason", DataType::Utf8, false)));
        let errors_schema = Arc::new(Schema::new(error_fields));

        let pool = match self.pool {
            Some(p) => p,
            None => Arc::new(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(self.threads)
                    .thread_name(|i| format!("windrow-{i}"))
                    .build()
                    .map_err(|e| WindrowError::Internal(format!("cannot start thread pool: {e}")))?,
            ),
        };
        let describe = |s: &SchemaRef| {
            s.fields().iter().map(|f| format!("{}: {}", f.name(), f.data_type())).collect::<Vec<_>>().join(", ")
        };
        // What a checkpoint must match to be restored here (spec §9.2): everything that shapes
        // the state, not threads or outputs' destinations.
        // (Dictionary keys were once interned in Arrow's row format: saying how they are
        // interned now keeps such a checkpoint from being restored into different keys.)
        let definition = format!(
            "{op_name} \"{}\": input [{}]; key {:?}{}; clock {:?}; windower {:?}; wait {:?}; ordered {ordered}; \
             scope {:?}; state {}; down [{}]",
            self.step_id,
            describe(&self.schema),
            self.key,
            if keys.interned_by_dictionary_value() { " (interned by dictionary value)" } else { "" },
            self.clock,
            windower,
            wait,
            if system { WatermarkScope::PerStream } else { self.scope },
            factory.describe(),
            describe(&down_schema),
        );
        let time_source = self.time_source.unwrap_or_default();
        let sys_now = nanos_to_unit_floor(time_source.now_nanos(), unit);
        let shards = (0..self.threads).map(|_| Shard::new(factory.create())).collect();
        let scope = if system { WatermarkScope::PerStream } else { self.scope };
        Ok(WindowOperator {
            step_id: self.step_id,
            input_schema: self.schema,
            time,
            unit,
            cfg: ShardConfig {
                windower,
                wait,
                ordered,
                track_ctx: factory.emits_rows(),
                close_inline_from_keys: self.close_inline_from_keys,
            },
            scope,
            strict: self.strict,
            time_source,
            sys_now,
            stream_clock: super::shard::ClockState::new(sys_now),
            keys,
            shards,
            pool,
            seq: 0,
            late_columns,
            error_columns,
            refused_nulls: factory.refused_nulls(),
            schemas: OutSchemas { down: down_schema, late: late_schema, meta: meta_schema, errors: errors_schema },
            ts_type,
            metrics: Metrics::default(),
            finished: false,
            definition,
            checkpointable: factory.checkpoint_support(),
        })
    }
}

#[derive(Clone)]
struct OutSchemas {
    down: SchemaRef,
    late: SchemaRef,
    meta: SchemaRef,
    errors: SchemaRef,
}

/// The four output streams of a window operator (spec §2.4, §10). Batches may be split or
/// coalesced freely; within a key, rows keep the order of spec §7.2.
#[derive(Clone, Debug)]
pub struct WindowOut {
    /// Results: key, `window_id`, `window_start`, `window_end`, result columns.
    pub down: Vec<RecordBatch>,
    /// Late rows, once per window id they would have joined.
    pub late: Vec<RecordBatch>,
    /// One row per closed window: key, `window_id`, `open_time`, `close_time`, `merged_ids`.
    pub meta: Vec<RecordBatch>,
    /// Rows that could not be windowed, with a `reason`.
    pub errors: Vec<RecordBatch>,
    down_schema: SchemaRef,
    late_schema: SchemaRef,
    meta_schema: SchemaRef,
    errors_schema: SchemaRef,
}

impl WindowOut {
    fn empty(s: &OutSchemas) -> Self {
        WindowOut {
            down: Vec::new(),
            late: Vec::new(),
            meta: Vec::new(),
            errors: Vec::new(),
            down_schema: s.down.clone(),
            late_schema: s.late.clone(),
            meta_schema: s.meta.clone(),
            errors_schema: s.errors.clone(),
        }
    }

    /// Appends another output of the same operator.
    pub fn extend(&mut self, other: WindowOut) {
        self.down.extend(other.down);
        self.late.extend(other.late);
        self.meta.extend(other.meta);
        self.errors.extend(other.errors);
    }

    /// All `down` rows in one batch (an empty batch with the full schema if none).
    pub fn down_batch(&self) -> Result<RecordBatch> {
        Ok(concat_batches(&self.down_schema, &self.down)?)
    }
    /// All `late` rows in one batch.
    pub fn late_batch(&self) -> Result<RecordBatch> {
        Ok(concat_batches(&self.late_schema, &self.late)?)
    }
    /// All `meta` rows in one batch.
    pub fn meta_batch(&self) -> Result<RecordBatch> {
        Ok(concat_batches(&self.meta_schema, &self.meta)?)
    }
    /// All `errors` rows in one batch.
    pub fn errors_batch(&self) -> Result<RecordBatch> {
        Ok(concat_batches(&self.errors_schema, &self.errors)?)
    }

    /// Schemas of `down`, `late`, `meta`, `errors`.
    pub fn schemas(&self) -> [SchemaRef; 4] {
        [self.down_schema.clone(), self.late_schema.clone(), self.meta_schema.clone(), self.errors_schema.clone()]
    }

    /// Number of rows in each stream: `[down, late, meta, errors]`.
    pub fn row_counts(&self) -> [usize; 4] {
        let n = |v: &Vec<RecordBatch>| v.iter().map(RecordBatch::num_rows).sum();
        [n(&self.down), n(&self.late), n(&self.meta), n(&self.errors)]
    }
}

/// Counters of one operator run.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    /// Input rows.
    pub rows_in: u64,
    /// Late `(row, window id)` pairs emitted.
    pub late_rows: u64,
    /// Windows closed.
    pub windows_closed: u64,
    /// Rows sent to `errors`, per reason.
    pub errors: BTreeMap<String, u64>,
}

/// A running windowing operator: push micro-batches, get what closed.
///
/// ```
/// use std::sync::Arc;
/// use arrow::array::{RecordBatch, StringArray, TimestampMicrosecondArray};
/// use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
/// use chrono::TimeDelta;
/// use windrow::prelude::*;
///
/// let schema = Arc::new(Schema::new(vec![
///     Field::new("user", DataType::Utf8, false),
///     Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false),
/// ]));
/// let s = 1_000_000;
/// let batch = RecordBatch::try_new(schema.clone(), vec![
///     Arc::new(StringArray::from(vec!["a", "a", "b", "a", "a"])),
///     Arc::new(TimestampMicrosecondArray::from(vec![0, 4 * s, 8 * s, 12 * s, 13 * s]).with_timezone("UTC")),
/// ]).unwrap();
/// let mut op = count_window("count", &schema, EventClock::new("ts"),
///                           TumblingWindower::new(TimeDelta::seconds(10)).unwrap(), KeySpec::columns(["user"]))
///     .build().unwrap();
/// let mut out = op.push(&batch).unwrap();   // a's window 0 closes on a's 12 s row
/// assert_eq!(out.row_counts()[0], 1);
/// out.extend(op.finish().unwrap());         // the rest close at end of input
/// assert_eq!(out.row_counts(), [3, 0, 3, 0]);
/// ```
pub struct WindowOperator {
    step_id: String,
    input_schema: SchemaRef,
    time: BoundTime,
    unit: TimeUnit,
    cfg: ShardConfig,
    scope: WatermarkScope,
    strict: bool,
    time_source: TimeSource,
    sys_now: i64,
    stream_clock: super::shard::ClockState,
    keys: BoundKeys,
    shards: Vec<Shard>,
    pool: Arc<rayon::ThreadPool>,
    seq: u64,
    /// Input columns carried on `late` (after the key and window id).
    late_columns: Vec<usize>,
    /// Input columns carried on `errors`.
    error_columns: Vec<usize>,
    /// A column whose nulls the aggregator cannot take, and the `errors` reason for them.
    refused_nulls: Option<(usize, String)>,
    schemas: OutSchemas,
    ts_type: DataType,
    metrics: Metrics,
    finished: bool,
    /// What a checkpoint of this operator must match (see [`definition`](Self::definition)).
    definition: String,
    /// Whether the aggregation's state can be checkpointed, and why not.
    checkpointable: std::result::Result<(), String>,
}

impl WindowOperator {
    /// The step name.
    pub fn step_id(&self) -> &str {
        &self.step_id
    }

    /// The input timestamp unit (outputs use it too).
    pub fn unit(&self) -> TimeUnit {
        self.unit
    }

    /// Counters so far.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Windows currently open.
    pub fn open_windows(&self) -> usize {
        self.shards.iter().map(Shard::open_windows).sum()
    }

    /// Distinct keys seen.
    pub fn key_count(&self) -> usize {
        self.shards.iter().map(Shard::key_count).sum()
    }

    /// Input batches still referenced by window state or ordered queues.
    pub fn retained_batches(&self) -> usize {
        self.shards.iter().map(Shard::retained_batches).sum()
    }

    /// An empty output with this operator's schemas.
    pub fn empty_output(&self) -> WindowOut {
        WindowOut::empty(&self.schemas)
    }

    fn sample_time(&mut self) {
        if self.time_source.is_live() {
            let now = nanos_to_unit_floor(self.time_source.now_nanos(), self.unit);
            self.sys_now = self.sys_now.max(now);
        }
    }

    fn check_schema(&self, batch: &RecordBatch) -> Result<()> {
        let want = self.input_schema.fields();
        let got = batch.schema();
        let got = got.fields();
        if want.len() == got.len()
            && want.iter().zip(got.iter()).all(|(a, b)| a.name() == b.name() && a.data_type() == b.data_type())
        {
            return Ok(());
        }
        let describe = |f: &arrow::datatypes::Fields| {
            f.iter().map(|f| format!("{}: {}", f.name(), f.data_type())).collect::<Vec<_>>().join(", ")
        };
        plan_err(format!(
            "step \"{}\": batch schema [{}] differs from the operator's input schema [{}]",
            self.step_id,
            describe(got),
            describe(want)
        ))
    }

    /// Processes one micro-batch and returns what it emitted.
    ///
    /// # Errors
    /// A batch whose schema differs from the input schema; in strict mode, a row that cannot
    /// be windowed; calling after [`finish`](Self::finish).
    pub fn push(&mut self, batch: &RecordBatch) -> Result<WindowOut> {
        if self.finished {
            return plan_err(format!("step \"{}\" already reached end of input", self.step_id));
        }
        self.check_schema(batch)?;
        self.sample_time();
        let seq = self.seq;
        self.seq += 1;
        let n = batch.num_rows();
        self.metrics.rows_in += n as u64;

        // Normalise: event times, keys, and rows that cannot be windowed. SystemClock rows get
        // the batch's one (monotonic) system instant, sampled above.
        let now_ns = crate::time::unit_to_nanos_saturating(self.sys_now, self.unit);
        let times = self.time.read(batch, now_ns, self.unit)?;
        let nshards = self.shards.len();
        let mut keys = self.keys.encode_unhashed(batch)?;
        let fixed = match self.cfg.windower {
            BoundWindower::Fixed(f) => Some(f),
            BoundWindower::Session { .. } => None,
        };

        // Hash, check and shard the rows in one pass over row chunks on the pool: each chunk
        // keeps arrival order, and each shard takes its part of every chunk in chunk order,
        // so it sees its rows in arrival order (no concatenation on the calling thread).
        let agg_nulls = self
            .refused_nulls
            .as_ref()
            .and_then(|(c, reason)| batch.column(*c).logical_nulls().map(|n| (n, reason.as_str())));
        let mut hashes = std::mem::take(&mut keys.hashes);
        let keys_ref = &keys;
        let check = |r: usize| -> Option<String> {
            if let Some(ki) = keys_ref.null_key.as_ref().and_then(|v| v[r]) {
                Some(format!("null key column \"{}\"", self.keys.name(ki)))
            } else if let Some(reason) = times.invalid.as_ref().and_then(|v| v[r]) {
                Some(reason.to_string())
            } else if fixed.is_some_and(|f| !f.representable(times.values[r])) {
                Some("window bounds out of range".to_string())
            } else if let Some((_, reason)) = agg_nulls.as_ref().filter(|(n, _)| n.is_null(r)) {
                Some(reason.to_string())
            } else {
                None
            }
        };
        // Most chunks have nothing to refuse: no null key, time or aggregated value, and
        // every time within the representable range. Those skip the per-row checks.
        let nothing_null = keys.null_key.is_none() && times.invalid.is_none() && agg_nulls.is_none();
        let all_valid = |range: &std::ops::Range<usize>| {
            nothing_null && fixed.is_none_or(|f| f.all_representable(&times.values[range.clone()]))
        };
        // Per chunk: the refused rows with their reasons, and each shard's rows.
        type Split = (Vec<(u32, String)>, Vec<Vec<u32>>);
        let split = |start: usize, chunk_hashes: &mut [u64]| -> Result<Split> {
            self.keys.hash_rows(keys_ref, start, chunk_hashes)?;
            let range = start..start + chunk_hashes.len();
            let mut errors = Vec::new();
            // (Not `vec![v; n]`: clones of a Vec do not keep its capacity.)
            let mut parts: Vec<Vec<u32>> =
                (0..nshards).map(|_| Vec::with_capacity(range.len() / nshards + 1)).collect();
            let shard = |r: usize| shard_of(chunk_hashes[r - start], nshards);
            if all_valid(&range) {
                if nshards == 1 {
                    parts[0].extend(range.map(|r| r as u32));
                } else {
                    for r in range {
                        parts[shard(r)].push(r as u32);
                    }
                }
            } else {
                for r in range {
                    match check(r) {
                        Some(reason) => errors.push((r as u32, reason)),
                        None if nshards == 1 => parts[0].push(r as u32),
                        None => parts[shard(r)].push(r as u32),
                    }
                }
            }
            Ok((errors, parts))
        };
        let chunk_rows = n.div_ceil(2 * nshards).max(MIN_NORMALISE_CHUNK);
        let chunks: Vec<Split> = if n <= chunk_rows {
            vec![split(0, &mut hashes)?]
        } else {
            self.pool.install(|| {
                hashes
                    .par_chunks_mut(chunk_rows)
                    .enumerate()
                    .map(|(i, h)| split(i * chunk_rows, h))
                    .collect::<Result<Vec<_>>>()
            })?
        };
        keys.hashes = hashes;
        let errors: Vec<(u32, String)> = chunks.iter().flat_map(|c| c.0.iter().cloned()).collect();
        let parts: Vec<Vec<&[u32]>> = (0..nshards)
            .map(|s| chunks.iter().map(|c| c.1[s].as_slice()).filter(|p| !p.is_empty()).collect())
            .collect();
        if self.strict
            && let Some((r, reason)) = errors.first()
        {
            return Err(WindrowError::Data(format!(
                "step \"{}\": input batch {seq}, row {r}: {reason} (event time from {})",
                self.step_id,
                self.time.describe()
            )));
        }

        // Per-stream lateness is a prefix maximum over the whole batch, before sharding.
        let stream_late: Option<Vec<bool>> = (self.scope == WatermarkScope::PerStream).then(|| {
            let mut late = vec![false; n];
            let mut refused = errors.iter().map(|e| e.0 as usize).peekable();
            for (r, is_late) in late.iter_mut().enumerate() {
                if refused.next_if_eq(&r).is_some() {
                    continue;
                }
                let ts = times.values[r];
                let cand = self.cfg.wait.and_then(|w| ts.checked_sub(w));
                let w = self.stream_clock.offer(cand, self.sys_now);
                *is_late = ts < w;
            }
            late
        });
        let stream_w = self.stream_clock.current(self.sys_now);

        let lateness = match &stream_late {
            Some(late) => Lateness::Stream { late, watermark: stream_w },
            None => Lateness::PerKey,
        };
        let (cfg, sys_now, keys_ref, times_ref) = (&self.cfg, self.sys_now, &keys, &times.values[..]);
        let (bound_keys, schemas, ts_type) = (&self.keys, &self.schemas, &self.ts_type);
        let shards = &mut self.shards;
        type ShardResult = Result<(Vec<(u32, i64)>, super::shard::ShardOutput)>;
        let results: Vec<ShardResult> = self.pool.install(|| {
            shards
                .par_iter_mut()
                .zip(parts.par_iter())
                .map(|(shard, rows)| {
                    let late = shard.process(cfg, seq, batch, keys_ref, times_ref, rows, &lateness, sys_now)?;
                    let out = shard.emit_closed(bound_keys, &schemas.down, &schemas.meta, ts_type)?;
                    Ok((late, out))
                })
                .collect()
        });
        let mut out = WindowOut::empty(&self.schemas);
        let mut late_pairs = Vec::new();
        for r in results {
            let (late, shard_out) = r?;
            late_pairs.extend(late);
            self.collect_closed(&mut out, shard_out);
        }
        if !late_pairs.is_empty() {
            out.late.push(self.late_batch(batch, &keys, &late_pairs)?);
        }
        if !errors.is_empty() {
            out.errors.push(self.errors_batch(batch, &errors)?);
        }
        Ok(out)
    }

    fn collect_closed(&mut self, out: &mut WindowOut, shard_out: super::shard::ShardOutput) {
        if let Some(d) = shard_out.down {
            out.down.push(d);
        }
        if let Some(m) = shard_out.meta {
            self.metrics.windows_closed += m.num_rows() as u64;
            out.meta.push(m);
        }
    }

    fn late_batch(
        &mut self,
        batch: &RecordBatch,
        keys: &super::keys::BatchKeys,
        pairs: &[(u32, i64)],
    ) -> Result<RecordBatch> {
        self.metrics.late_rows += pairs.len() as u64;
        let rows: Vec<u32> = pairs.iter().map(|(r, _)| *r).collect();
        let mut cols = self.keys.decode_batch(keys, &rows)?;
        cols.push(Arc::new(pairs.iter().map(|p| p.1).collect::<Int64Array>()));
        let idx: UInt32Array = pairs.iter().map(|p| p.0).collect();
        for &c in &self.late_columns {
            cols.push(take(batch.column(c), &idx, None)?);
        }
        Ok(RecordBatch::try_new(self.schemas.late.clone(), cols)?)
    }

    fn errors_batch(&mut self, batch: &RecordBatch, errors: &[(u32, String)]) -> Result<RecordBatch> {
        for (_, reason) in errors {
            *self.metrics.errors.entry(reason.clone()).or_default() += 1;
        }
        let idx: UInt32Array = errors.iter().map(|e| e.0).collect();
        let mut cols: Vec<ArrayRef> =
            self.error_columns.iter().map(|&c| take(batch.column(c), &idx, None)).collect::<Result<_, _>>()?;
        cols.push(Arc::new(StringArray::from_iter_values(errors.iter().map(|e| e.1.as_str()))));
        Ok(RecordBatch::try_new(self.schemas.errors.clone(), cols)?)
    }

    /// Live mode: resamples system time and closes whatever became due (spec §11.3 timers).
    /// In replay mode system time does not move, so this changes nothing.
    ///
    /// # Errors
    /// As [`push`](Self::push).
    pub fn on_timer(&mut self) -> Result<WindowOut> {
        if self.finished {
            return Ok(self.empty_output());
        }
        self.sample_time();
        let w = (self.scope == WatermarkScope::PerStream).then(|| self.stream_clock.current(self.sys_now));
        self.settle_shards(w)
    }

    fn settle_shards(&mut self, w: Option<i64>) -> Result<WindowOut> {
        let (cfg, sys_now) = (&self.cfg, self.sys_now);
        let (bound_keys, schemas, ts_type) = (&self.keys, &self.schemas, &self.ts_type);
        let shards = &mut self.shards;
        let results: Vec<Result<super::shard::ShardOutput>> = self.pool.install(|| {
            shards
                .par_iter_mut()
                .map(|shard| {
                    shard.settle_and_flush(cfg, w, sys_now)?;
                    shard.emit_closed(bound_keys, &schemas.down, &schemas.meta, ts_type)
                })
                .collect()
        });
        let mut out = WindowOut::empty(&self.schemas);
        for r in results {
            self.collect_closed(&mut out, r?);
        }
        Ok(out)
    }

    /// End of input: the watermark becomes `+∞`; every queued row is applied and every window
    /// closes (spec §7.3). Further pushes are refused.
    ///
    /// # Errors
    /// As [`push`](Self::push).
    pub fn finish(&mut self) -> Result<WindowOut> {
        if self.finished {
            return Ok(self.empty_output());
        }
        let out = self.settle_shards(Some(POS_INF))?;
        self.finished = true;
        Ok(out)
    }

    /// Pushes every batch, then finishes, and returns everything emitted.
    ///
    /// # Errors
    /// As [`push`](Self::push).
    pub fn run<'a>(&mut self, batches: impl IntoIterator<Item = &'a RecordBatch>) -> Result<WindowOut> {
        let mut out = self.empty_output();
        for b in batches {
            out.extend(self.push(b)?);
        }
        out.extend(self.finish()?);
        Ok(out)
    }
}

/// The scalar part of a window operator's checkpoint (the rest is per-shard tables).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct OperatorScalars {
    pub seq: u64,
    pub sys_now: i64,
    pub stream_base: i64,
    pub stream_sys_of_max: i64,
    pub finished: bool,
    pub rows_in: u64,
    pub late_rows: u64,
    pub windows_closed: u64,
    pub errors: BTreeMap<String, u64>,
}

/// A window operator's checkpoint.
pub(crate) struct OperatorSnapshot {
    pub scalars: OperatorScalars,
    pub shards: Vec<ShardState>,
}

impl WindowOperator {
    /// What shapes this operator's state: step id, input schema, key, clock, windower, wait,
    /// ordering, scope and the `down` schema (which carries the aggregation's result columns).
    /// A checkpoint is restored only into an operator with the same definition.
    pub fn definition(&self) -> &str {
        &self.definition
    }

    /// `Err(why)` when this operator's state cannot be checkpointed.
    pub fn checkpoint_support(&self) -> std::result::Result<(), String> {
        self.checkpointable.clone().map_err(|why| format!("step \"{}\": {why}", self.step_id))
    }

    /// The operator's whole state (spec §9.1); only between micro-batches. The logical state is
    /// not changed (aggregations may compact their stores while saving).
    pub(crate) fn snapshot(&mut self) -> Result<OperatorSnapshot> {
        if let Err(why) = self.checkpoint_support() {
            return config_err(why);
        }
        let cfg = &self.cfg;
        let shards = self.shards.iter_mut().map(|s| s.snapshot(cfg)).collect::<Result<Vec<_>>>()?;
        let m = &self.metrics;
        Ok(OperatorSnapshot {
            scalars: OperatorScalars {
                seq: self.seq,
                sys_now: self.sys_now,
                stream_base: self.stream_clock.base,
                stream_sys_of_max: self.stream_clock.sys_of_max,
                finished: self.finished,
                rows_in: m.rows_in,
                late_rows: m.late_rows,
                windows_closed: m.windows_closed,
                errors: m.errors.clone(),
            },
            shards,
        })
    }

    /// Loads a checkpoint into this freshly built operator. The checkpoint may come from a
    /// run with another thread count: keys are re-sharded by their saved hash.
    ///
    /// # Errors
    /// An operator that already processed data, or an inconsistent checkpoint.
    pub(crate) fn restore(&mut self, snap: OperatorSnapshot) -> Result<()> {
        use arrow::array::{Array, AsArray};
        use arrow::datatypes::{Int64Type, UInt32Type, UInt64Type};
        if self.seq != 0 || self.key_count() != 0 {
            return Err(WindrowError::Internal(format!("step \"{}\" restored after it ran", self.step_id)));
        }
        let sc = snap.scalars;
        // Live mode: system time stays monotonic across the restart (spec §14.5); replay: the
        // frozen instant of the interrupted run comes back, so the downtime does not count.
        self.sys_now = if self.time_source.is_live() { self.sys_now.max(sc.sys_now) } else { sc.sys_now };
        self.seq = sc.seq;
        self.stream_clock = ClockState { base: sc.stream_base, sys_of_max: sc.stream_sys_of_max };
        self.finished = sc.finished;
        self.metrics = Metrics {
            rows_in: sc.rows_in,
            late_rows: sc.late_rows,
            windows_closed: sc.windows_closed,
            errors: sc.errors,
        };

        // The saved input rows, back under their original batch numbers, compacted.
        let mut saved: Vec<RecordBatch> = snap.shards.iter().filter_map(|s| s.rows.clone()).collect();
        let (restored, row_map) = restored_rows(&mut saved)?;
        let nshards = self.shards.len();
        for shard in &mut self.shards {
            shard.begin_restore(&restored);
        }
        for state in &snap.shards {
            let keys = &state.keys;
            let bytes = keys
                .column_by_name("key")
                .and_then(|c| c.as_binary_opt::<i32>())
                .ok_or_else(|| WindrowError::Data("checkpoint keys table lacks \"key\"".into()))?;
            let hash = state_col::<UInt64Type>(keys, "hash")?;
            let base = state_col::<Int64Type>(keys, "base")?;
            let sys = state_col::<Int64Type>(keys, "sys_of_max")?;
            let next_id = state_col::<Int64Type>(keys, "next_id")?;
            let active = state_col::<Int64Type>(keys, "active")?;
            // Each saved key's new shard and id there.
            let mut placed: Vec<(usize, u32)> = Vec::with_capacity(keys.num_rows());
            for r in 0..keys.num_rows() {
                let shard = shard_of(hash.value(r), nshards);
                let clock = ClockState { base: base.value(r), sys_of_max: sys.value(r) };
                let next = next_id.is_valid(r).then(|| next_id.value(r));
                let k = self.shards[shard].restore_key(&self.cfg, bytes.value(r), hash.value(r), clock, next)?;
                placed.push((shard, k));
            }
            // Windows and queued rows go to their key's shard, in saved order.
            for (table, is_queue) in [(&state.windows, false), (&state.queue, true)] {
                let key = state_col::<UInt32Type>(table, "key")?;
                for (s, shard) in self.shards.iter_mut().enumerate() {
                    let rows: Vec<u32> = (0..table.num_rows() as u32)
                        .filter(|&r| placed.get(key.value(r as usize) as usize).is_some_and(|p| p.0 == s))
                        .collect();
                    if rows.is_empty() {
                        continue;
                    }
                    let part = arrow::compute::take_record_batch(table, &UInt32Array::from(rows))?;
                    let ids: Vec<u32> = placed.iter().map(|p| p.1).collect();
                    if is_queue {
                        shard.restore_queue(&part, &ids, &row_map)?;
                    } else {
                        shard.restore_windows(&self.cfg, &part, &ids, &row_map)?;
                    }
                }
            }
            let mut order: Vec<(i64, usize)> =
                (0..keys.num_rows()).filter(|&r| active.is_valid(r)).map(|r| (active.value(r), r)).collect();
            order.sort_unstable();
            for (s, shard) in self.shards.iter_mut().enumerate() {
                shard.restore_active(order.iter().filter(|(_, r)| placed[*r].0 == s).map(|(_, r)| placed[*r].1));
            }
        }
        for shard in &mut self.shards {
            shard.end_restore(&restored);
        }
        Ok(())
    }
}

/// Saved input rows (`__batch`, `__row`, input columns) → one compacted batch per original
/// batch number, and the map from original to restored positions.
fn restored_rows(saved: &mut [RecordBatch]) -> Result<(Vec<(u64, RecordBatch)>, RowMap)> {
    use arrow::array::AsArray;
    use arrow::datatypes::{UInt32Type, UInt64Type};
    let mut map = RowMap::default();
    let mut out = Vec::new();
    let Some(first) = saved.first() else {
        return Ok((out, map));
    };
    let all = arrow::compute::concat_batches(&first.schema(), saved.iter())?;
    let input = Arc::new(Schema::new(all.schema().fields()[2..].to_vec()));
    let batch_col = all.column(0).as_primitive_opt::<UInt64Type>().cloned();
    let row_col = all.column(1).as_primitive_opt::<UInt32Type>().cloned();
    let (Some(batch_col), Some(row_col)) = (batch_col, row_col) else {
        return Err(WindrowError::Data("checkpoint rows table lacks __batch/__row".into()));
    };
    let mut order: Vec<u32> = (0..all.num_rows() as u32).collect();
    order.sort_unstable_by_key(|&i| (batch_col.value(i as usize), row_col.value(i as usize)));
    let mut start = 0;
    while start < order.len() {
        let seq = batch_col.value(order[start] as usize);
        let mut end = start;
        while end < order.len() && batch_col.value(order[end] as usize) == seq {
            map.insert(seq, row_col.value(order[end] as usize), (end - start) as u32);
            end += 1;
        }
        let idx = UInt32Array::from(order[start..end].to_vec());
        let cols = all.columns()[2..].iter().map(|c| take(c, &idx, None)).collect::<Result<Vec<_>, _>>()?;
        out.push((seq, RecordBatch::try_new(Arc::clone(&input), cols)?));
        start = end;
    }
    Ok((out, map))
}

/// Builds a fold factory (used by `ops::fold_window`).
pub(crate) fn fold_factory<S: Send + 'static>(fns: FoldFns<S>) -> Arc<dyn AggFactory> {
    Arc::new(FoldFactory { fns })
}
