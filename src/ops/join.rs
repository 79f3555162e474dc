//! `join_window` (spec §8.6): joins any number of keyed streams per key and window.
//!
//! Each side's rows are turned into one *unified* row shape — the key columns, the event
//! time, the side index and one nullable struct column per side holding the row — and run
//! through the ordinary window operator with the join aggregator, so all sides share one
//! clock per key and every windower and watermark scope works unchanged.
//!
//! ```text
//! side 0 (user, ts, name)          unified: user | __ts | side | side_0 {user,ts,name} | side_1 {…}
//! side 1 (user, ts, email)  ──▶             "a"  | 0:05 |  0   | {a, 0:05, Bee}        | null
//!                                            "a"  | 0:15 |  1   | null                  | {a, 0:15, bee@}
//! ```
//!
//! In replay mode the sides are interleaved deterministically (spec §11.4): repeatedly the
//! next row with the smallest event time among the sides' next unread rows, ties to the lower
//! side. A side's rows wait until every other side has a row to compare or has ended. In live
//! mode rows are processed in arrival order.

use std::collections::VecDeque;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Int32Array, Int64Array, RecordBatch, StructArray, new_null_array};
use arrow::compute::{cast, interleave};
use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef, TimeUnit};

use super::KeyedStream;
use crate::agg::{EmitMode, InsertMode, JoinFactory};
use crate::engine::{AggSpec, BoundKeys, KeySpec, WindowOpBuilder, WindowOperator, WindowOut};
use crate::error::{Result, WindrowError, config_err, plan_err};
use crate::time::{BoundTime, Clock, EventClock, SystemClock, TimeSource, Wait, WatermarkScope};
use crate::window::Windower;

/// Name of the unified event-time column (internal; not on `late` or `errors`).
const TS_COLUMN: &str = "__windrow_ts";

/// Configures a join; made by [`join_window`].
pub struct JoinOpBuilder {
    step_id: String,
    sides: Vec<KeyedStream>,
    names: Vec<String>,
    clock: Clock,
    windower: Windower,
    insert: InsertMode,
    emit: EmitMode,
    ordered: bool,
    scope: WatermarkScope,
    strict: bool,
    threads: usize,
    time_source: Option<TimeSource>,
}

/// Joins keyed streams per key and window (bytewax's `join_window`, seed argument order).
///
/// Defaults: `insert_mode = last`, `emit_mode = complete` (the seed API; bytewax 0.21.1
/// defaults to `final`), `ordered = true`. `down` has the key, the window and one nullable
/// struct column per side (named `side_0`, `side_1`, … unless renamed with
/// [`JoinOpBuilder::side_names`]); `late` adds the row's `side`.
///
/// ```
/// use std::sync::Arc;
/// use arrow::array::{RecordBatch, StringArray, TimestampMicrosecondArray};
/// use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
/// use chrono::TimeDelta;
/// use windrow::prelude::*;
///
/// let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
/// let names = Arc::new(Schema::new(vec![Field::new("user", DataType::Utf8, false), Field::new("ts", ts.clone(), false),
///                                       Field::new("name", DataType::Utf8, false)]));
/// let mails = Arc::new(Schema::new(vec![Field::new("user", DataType::Utf8, false), Field::new("ts", ts, false),
///                                       Field::new("email", DataType::Utf8, false)]));
/// let mut join = join_window("join", &[key_on(&names, ["user"]), key_on(&mails, ["user"])],
///                            EventClock::new("ts"), TumblingWindower::new(TimeDelta::hours(1)).unwrap())
///     .side_names(["profile", "contact"])
///     .build().unwrap();
/// let n = RecordBatch::try_new(names.clone(), vec![Arc::new(StringArray::from(vec!["bee"])),
///     Arc::new(TimestampMicrosecondArray::from(vec![0]).with_timezone("UTC")), Arc::new(StringArray::from(vec!["Bee"]))]).unwrap();
/// let m = RecordBatch::try_new(mails.clone(), vec![Arc::new(StringArray::from(vec!["bee"])),
///     Arc::new(TimestampMicrosecondArray::from(vec![60_000_000]).with_timezone("UTC")), Arc::new(StringArray::from(vec!["bee@hive"]))]).unwrap();
/// let out = join.run(&[vec![n], vec![m]]).unwrap();
/// assert_eq!(out.row_counts()[0], 1); // one complete round: (Bee, bee@hive)
/// ```
pub fn join_window(
    step_id: &str,
    sides: &[KeyedStream],
    clock: impl Into<Clock>,
    windower: impl Into<Windower>,
) -> JoinOpBuilder {
    JoinOpBuilder {
        step_id: step_id.to_string(),
        sides: sides.to_vec(),
        names: (0..sides.len()).map(|i| format!("side_{i}")).collect(),
        clock: clock.into(),
        windower: windower.into(),
        insert: InsertMode::default(),
        emit: EmitMode::default(),
        ordered: true,
        scope: WatermarkScope::PerKey,
        strict: false,
        threads: 1,
        time_source: None,
    }
}

impl JoinOpBuilder {
    /// How a window stores several rows of one side.
    pub fn insert_mode(mut self, mode: InsertMode) -> Self {
        self.insert = mode;
        self
    }
    /// When windows emit.
    pub fn emit_mode(mut self, mode: EmitMode) -> Self {
        self.emit = mode;
        self
    }
    /// Ordered mode (default true).
    pub fn ordered(mut self, ordered: bool) -> Self {
        self.ordered = ordered;
        self
    }
    /// Watermark per key (default) or per stream (one clock for all sides and keys).
    pub fn scope(mut self, scope: WatermarkScope) -> Self {
        self.scope = scope;
        self
    }
    /// Strict mode: rows that cannot be windowed fail the run.
    pub fn strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }
    /// Key shards processed in parallel.
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = threads;
        self
    }
    /// The system-time source (default: replay).
    pub fn time_source(mut self, source: TimeSource) -> Self {
        self.time_source = Some(source);
        self
    }
    /// Names of the per-side struct columns on `down`, `late` and `errors`.
    pub fn side_names<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.names = names.into_iter().map(Into::into).collect();
        self
    }

    /// Validates and builds the join.
    ///
    /// # Errors
    /// No sides; side names not matching the sides; a side without the event-time or key
    /// columns; sides whose event-time units or key types differ; invalid window parameters.
    pub fn build(self) -> Result<JoinOperator> {
        if self.sides.is_empty() {
            return config_err(format!("join_window \"{}\" needs at least one side", self.step_id));
        }
        if self.names.len() != self.sides.len() {
            return config_err(format!(
                "join_window \"{}\": {} side names for {} sides",
                self.step_id,
                self.names.len(),
                self.sides.len()
            ));
        }
        let mut bound = Vec::new();
        let mut unit: Option<TimeUnit> = None;
        let mut key_fields: Option<Vec<FieldRef>> = None;
        for (i, side) in self.sides.iter().enumerate() {
            let (time, u) = self.clock.bind(side.schema())?;
            match unit {
                None => unit = Some(u),
                Some(prev) if prev != u => {
                    return plan_err(format!(
                        "join_window \"{}\": side {i} has event times in {u:?}, side 0 in {prev:?}; \
                         cast them to one unit",
                        self.step_id
                    ));
                }
                _ => {}
            }
            let keys = BoundKeys::bind(&side.key, side.schema())?;
            let fields = keys.raw_fields();
            match &key_fields {
                None => key_fields = Some(fields),
                Some(prev) => {
                    let same = prev.len() == fields.len()
                        && prev.iter().zip(&fields).all(|(a, b)| a.data_type() == b.data_type());
                    if !same {
                        return plan_err(format!(
                            "join_window \"{}\": side {i}'s key types differ from side 0's; all sides must \
                             be keyed by the same types",
                            self.step_id
                        ));
                    }
                }
            }
            bound.push(BoundSide { time, keys, schema: Arc::clone(side.schema()) });
        }
        let (unit, key_fields) = match (unit, key_fields) {
            (Some(u), Some(k)) => (u, k),
            _ => return Err(WindrowError::Internal("join without sides".into())),
        };
        let key_fields: Vec<FieldRef> =
            key_fields.into_iter().map(|f| Arc::new(f.as_ref().clone().with_nullable(true))).collect();
        let ts_type = DataType::Timestamp(unit, Some("UTC".into()));
        let struct_types: Vec<DataType> =
            self.sides.iter().map(|s| DataType::Struct(s.schema().fields().clone())).collect();
        let mut fields: Vec<FieldRef> = key_fields.clone();
        fields.push(Arc::new(Field::new(TS_COLUMN, ts_type, true)));
        fields.push(Arc::new(Field::new("side", DataType::Int32, false)));
        let side_column = fields.len() - 1;
        let mut struct_columns = Vec::new();
        let mut side_fields = Vec::new();
        for (name, dt) in self.names.iter().zip(&struct_types) {
            let f = Arc::new(Field::new(name, dt.clone(), true));
            struct_columns.push(fields.len());
            side_fields.push(Arc::clone(&f));
            fields.push(f);
        }
        let unified = Arc::new(Schema::new(fields));
        let factory = Arc::new(JoinFactory {
            side_column,
            struct_columns,
            fields: side_fields,
            insert: self.insert,
            emit: self.emit,
        });
        let clock: Clock = match &self.clock {
            Clock::Event(e) => {
                let c = EventClock::new(TS_COLUMN);
                match e.wait() {
                    Wait::Finite(d) => c.wait_for_system_duration(d)?.into(),
                    Wait::Forever => c.wait_forever().into(),
                }
            }
            Clock::System(_) => SystemClock::with_unit(unit).into(),
        };
        let key_names: Vec<String> = key_fields.iter().map(|f| f.name().clone()).collect();
        let time_source = self.time_source.unwrap_or_default();
        let live = time_source.is_live();
        let inner = WindowOpBuilder::new(
            &self.step_id,
            Arc::clone(&unified),
            KeySpec::Columns(key_names),
            clock,
            self.windower,
            AggSpec::Custom("join_window", factory),
        )
        .ordered(self.ordered)
        .scope(self.scope)
        .strict(self.strict)
        .threads(self.threads)
        .time_source(time_source.clone())
        .hide(TS_COLUMN)
        .build()?;
        let n = self.sides.len();
        let definition = format!("{}; insert {:?}; emit {:?}", inner.definition(), self.insert, self.emit);
        Ok(JoinOperator {
            definition,
            inner,
            sides: bound,
            unified,
            struct_types,
            unit,
            time_source,
            live,
            buffers: (0..n).map(|_| VecDeque::new()).collect(),
            ended: vec![false; n],
        })
    }
}

struct BoundSide {
    time: BoundTime,
    keys: BoundKeys,
    schema: SchemaRef,
}

/// A unified batch waiting for the replay interleaving, with its event times.
struct Pending {
    batch: RecordBatch,
    ts: Vec<i64>,
    offset: usize,
}

/// A running join.
pub struct JoinOperator {
    /// What a checkpoint must match: the inner operator's definition and the join modes.
    definition: String,
    inner: WindowOperator,
    sides: Vec<BoundSide>,
    unified: SchemaRef,
    struct_types: Vec<DataType>,
    unit: TimeUnit,
    time_source: TimeSource,
    live: bool,
    buffers: Vec<VecDeque<Pending>>,
    ended: Vec<bool>,
}

impl JoinOperator {
    /// The number of sides.
    pub fn sides(&self) -> usize {
        self.sides.len()
    }

    /// The window operator underneath (metrics, open windows).
    pub fn inner(&self) -> &WindowOperator {
        &self.inner
    }

    /// What shapes the join's state (see [`WindowOperator::definition`]), with its modes.
    pub fn definition(&self) -> &str {
        &self.definition
    }

    /// The join's state: the window operator's, the replay interleaving's buffered rows (one
    /// table per side, event times in `__ts`), which sides ended, and the frozen instant.
    pub(crate) fn snapshot(&mut self) -> Result<crate::checkpoint::StepState> {
        let mut state = crate::checkpoint::StepState::from_operator(self.inner.snapshot()?)?;
        for (side, buf) in self.buffers.iter().enumerate() {
            let mut parts = Vec::new();
            for p in buf {
                let rest = p.batch.slice(p.offset, p.batch.num_rows() - p.offset);
                let ts: ArrayRef = Arc::new(Int64Array::from(p.ts[p.offset..].to_vec()));
                let mut cols = rest.columns().to_vec();
                cols.push(ts);
                parts.push(cols);
            }
            if parts.is_empty() {
                continue;
            }
            let mut fields: Vec<FieldRef> = self.unified.fields().iter().cloned().collect();
            fields.push(Arc::new(Field::new("__ts", DataType::Int64, false)));
            let schema = Arc::new(Schema::new(fields));
            let batches = parts
                .into_iter()
                .map(|c| RecordBatch::try_new(Arc::clone(&schema), c))
                .collect::<Result<Vec<_>, _>>()?;
            state.tables.push((format!("buffer-{side}"), arrow::compute::concat_batches(&schema, &batches)?));
        }
        state.scalars.insert("ended".into(), serde_json::json!(self.ended));
        state.scalars.insert("frozen_ns".into(), serde_json::json!(self.time_source.now_nanos()));
        Ok(state)
    }

    /// Loads [`snapshot`](Self::snapshot)'s state into this freshly built join.
    pub(crate) fn restore(&mut self, mut state: crate::checkpoint::StepState) -> Result<()> {
        use arrow::array::AsArray;
        use arrow::datatypes::Int64Type;
        let ended: Vec<bool> = state.scalar("ended")?;
        if ended.len() != self.ended.len() {
            return Err(WindrowError::Data("checkpoint join has another number of sides".into()));
        }
        self.ended = ended;
        if !self.time_source.is_live() {
            let frozen: i64 = state.scalar("frozen_ns")?;
            self.time_source = TimeSource::Frozen(chrono::DateTime::from_timestamp_nanos(frozen));
        }
        for side in 0..self.sides.len() {
            let Some(table) = state.take_table(&format!("buffer-{side}")) else { continue };
            let n = table.num_columns();
            let ts = table
                .column(n - 1)
                .as_primitive_opt::<Int64Type>()
                .ok_or_else(|| WindrowError::Data("checkpoint join buffer lacks __ts".into()))?
                .values()
                .to_vec();
            let batch = RecordBatch::try_new(Arc::clone(&self.unified), table.columns()[..n - 1].to_vec())?;
            self.buffers[side].push_back(Pending { batch, ts, offset: 0 });
        }
        self.inner.restore(state.into_operator()?)
    }

    /// Turns one side's batch into the unified shape.
    fn unify(&self, side: usize, batch: &RecordBatch) -> Result<Pending> {
        let s = &self.sides[side];
        if batch.schema().fields() != s.schema.fields() {
            return plan_err(format!(
                "join side {side}: batch schema {:?} differs from the side's schema {:?}",
                batch.schema().fields().iter().map(|f| format!("{}: {}", f.name(), f.data_type())).collect::<Vec<_>>(),
                s.schema.fields().iter().map(|f| format!("{}: {}", f.name(), f.data_type())).collect::<Vec<_>>()
            ));
        }
        let n = batch.num_rows();
        let now = self.time_source.now_nanos();
        let times = s.time.read(batch, now, self.unit)?;
        let nulls: Option<Vec<bool>> = times.invalid.as_ref().map(|inv| inv.iter().map(|r| r.is_none()).collect());
        let ts_raw = Int64Array::new(times.values.clone(), nulls.map(Into::into));
        let ts_col = cast(&ts_raw, &DataType::Timestamp(self.unit, Some("UTC".into())))?;
        let mut cols: Vec<ArrayRef> = Vec::new();
        for (a, f) in s.keys.arrays(batch)?.into_iter().zip(self.unified.fields()) {
            cols.push(if a.data_type() == f.data_type() { a } else { cast(&a, f.data_type())? });
        }
        cols.push(ts_col);
        cols.push(Arc::new(Int32Array::from(vec![side as i32; n])));
        for (i, dt) in self.struct_types.iter().enumerate() {
            if i == side {
                cols.push(Arc::new(StructArray::from(batch.clone())));
            } else {
                cols.push(new_null_array(dt, n));
            }
        }
        let unified = RecordBatch::try_new(Arc::clone(&self.unified), cols)?;
        // Rows without a time sort first; the engine sends them to `errors`.
        let ts = ts_raw.iter().map(|v| v.unwrap_or(i64::MIN)).collect();
        Ok(Pending { batch: unified, ts, offset: 0 })
    }

    /// Pushes a batch of side `side`.
    ///
    /// # Errors
    /// An unknown side, a side that already ended, a batch of the wrong schema, or what
    /// [`WindowOperator::push`] reports.
    pub fn push(&mut self, side: usize, batch: &RecordBatch) -> Result<WindowOut> {
        if side >= self.sides.len() {
            return plan_err(format!("join has {} sides; there is no side {side}", self.sides.len()));
        }
        if self.ended[side] {
            return plan_err(format!("join side {side} already ended"));
        }
        let pending = self.unify(side, batch)?;
        if self.live {
            return self.inner.push(&pending.batch);
        }
        if pending.batch.num_rows() > 0 {
            self.buffers[side].push_back(pending);
        }
        self.drain_ready()
    }

    /// Marks side `side` as ended (the join reaches end of input when every side has ended).
    ///
    /// # Errors
    /// As [`push`](Self::push).
    pub fn end_side(&mut self, side: usize) -> Result<WindowOut> {
        if side >= self.sides.len() {
            return plan_err(format!("join has {} sides; there is no side {side}", self.sides.len()));
        }
        self.ended[side] = true;
        let mut out = self.drain_ready()?;
        if self.ended.iter().all(|e| *e) {
            out.extend(self.inner.finish()?);
        }
        Ok(out)
    }

    /// Ends every side and closes all windows.
    ///
    /// # Errors
    /// As [`push`](Self::push).
    pub fn finish(&mut self) -> Result<WindowOut> {
        let mut out = self.inner.empty_output();
        for side in 0..self.sides.len() {
            if !self.ended[side] {
                out.extend(self.end_side(side)?);
            }
        }
        Ok(out)
    }

    /// Live mode timers (see [`WindowOperator::on_timer`]).
    ///
    /// # Errors
    /// As [`push`](Self::push).
    pub fn on_timer(&mut self) -> Result<WindowOut> {
        self.inner.on_timer()
    }

    /// Pushes every side's batches (side `i` = `sides[i]`), then finishes.
    ///
    /// # Errors
    /// As [`push`](Self::push).
    pub fn run(&mut self, sides: &[Vec<RecordBatch>]) -> Result<WindowOut> {
        let mut out = self.inner.empty_output();
        for (i, batches) in sides.iter().enumerate() {
            for b in batches {
                out.extend(self.push(i, b)?);
            }
        }
        out.extend(self.finish()?);
        Ok(out)
    }

    /// Emits, in the replay interleaving, every row whose turn can already be decided.
    fn drain_ready(&mut self) -> Result<WindowOut> {
        let mut picks: Vec<(usize, usize)> = Vec::new(); // (source, row)
        let mut sources: Vec<RecordBatch> = Vec::new();
        let mut source_of: Vec<Option<usize>> = vec![None; self.sides.len()];
        loop {
            let mut best: Option<(i64, usize)> = None;
            let mut blocked = false;
            for (side, buf) in self.buffers.iter().enumerate() {
                match buf.front() {
                    Some(p) => {
                        let t = p.ts[p.offset];
                        if best.is_none_or(|(bt, _)| t < bt) {
                            best = Some((t, side));
                        }
                    }
                    None if !self.ended[side] => blocked = true,
                    None => {}
                }
            }
            let Some((_, side)) = best else { break };
            if blocked {
                break;
            }
            let front = self.buffers[side].front_mut().ok_or_else(|| WindrowError::Internal("empty buffer".into()))?;
            let src = match source_of[side] {
                Some(s) => s,
                None => {
                    sources.push(front.batch.clone());
                    source_of[side] = Some(sources.len() - 1);
                    sources.len() - 1
                }
            };
            picks.push((src, front.offset));
            front.offset += 1;
            if front.offset == front.batch.num_rows() {
                self.buffers[side].pop_front();
                source_of[side] = None;
            }
        }
        if picks.is_empty() {
            return Ok(self.inner.empty_output());
        }
        let cols = (0..self.unified.fields().len())
            .map(|c| {
                let arrays: Vec<&dyn Array> = sources.iter().map(|b| b.column(c).as_ref()).collect();
                interleave(&arrays, &picks)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let batch = RecordBatch::try_new(Arc::clone(&self.unified), cols)?;
        self.inner.push(&batch)
    }
}
