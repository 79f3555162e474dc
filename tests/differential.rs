//! Differential tests: the windrow engine against the naive row-at-a-time reference of
//! `tests/common/reference.rs`, over seeded random keyed streams (spec §16 items 1–2, §11.2),
//! plus focused input-shape tests (spec §16 items 12, 13, 28, 30).
//!
//! Layout of this file:
//!
//! * [`Case`]: one configuration (seed, op, windower, wait, scope, ordered).
//! * [`generate`]: the seeded stream generator (out-of-order, late, duplicate, window-edge and
//!   pre-epoch timestamps; values that are multiples of 0.25 so every sum is exact).
//! * [`Layout`] / [`make_batch`]: turns reference rows into Arrow batches (key as Utf8,
//!   `Dictionary(Int32, Utf8)`, `Int64` or two columns; any timestamp unit, with or without a
//!   time zone).
//! * [`run_engine`]: builds the operator exactly like `tests/parity/adapter.rs` does, pushes
//!   the micro-batches, and decodes `down`/`late`/`meta` into the reference's structs.
//! * [`compare`]: per-key comparison with a message naming the configuration and the first
//!   differing record.
//!
//! What is compared (per key; no order across keys is promised, spec §7.4):
//!
//! * `late`: exact per-key sequence, always.
//! * `down` and `meta`: exact per-key sequence in ordered mode and whenever every row is its
//!   own micro-batch (the reference's model); per-key multisets otherwise (spec §7.2).
//! * `errors`: empty.
//! * Row conservation for `count_window` over tumbling windows: Σ counts + late rows = rows.
//!
//! Also here: a long stream (> 1000 rows, so batch size 1000 splits it), the spec's session
//! merge / close order / watermark scope examples through the engine for several batchings,
//! and an on-demand wider sweep (`differential_extended_seeds`, `--ignored`).
//!
//! The last section does the same for `join_window` (spec §8.6, §11.4; §16 items 3, 16, 19,
//! 23): all nine insert/emit modes over one, two and three sides with different schemas,
//! each side batched and pushed independently (the engine must interleave the sides like the
//! reference, whatever the batches), plus the §8.6 merge table in live arrival order, partial
//! `complete` rounds and rows made late by another side. Its comparison rules are listed at
//! the start of that section.

mod common;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{
    Array, ArrayRef, AsArray, DictionaryArray, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray, TimestampMillisecondArray, TimestampNanosecondArray, TimestampSecondArray,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Float64Type, Int32Type, Int64Type, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, TimeDelta, Utc};
use datafusion::common::ScalarValue;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use windrow::prelude::*;
use windrow::prelude::{EmitMode as JoinEmit, InsertMode as JoinInsert};

use common::reference::*;
use common::reference::{EmitMode as RefEmit, InsertMode as RefInsert};

// =============================================================================================
// Constants
// =============================================================================================

/// One second in microseconds (the differential streams are in microseconds).
const S: i64 = 1_000_000;
/// `A = 2022-01-01T00:00:00Z` in microseconds.
const A_US: i64 = 1_640_995_200 * S;

/// The (batch size, threads) combinations every case runs: every batch size with 1 thread,
/// and batch sizes {7, whole} with 2 and 4 threads. `usize::MAX` = the whole input at once.
const WHOLE: usize = usize::MAX;
const BATCHINGS: &[(usize, usize)] = &[(1, 1), (7, 1), (1000, 1), (WHOLE, 1), (7, 2), (WHOLE, 2), (7, 4), (WHOLE, 4)];

/// The seeds of the main differential sweep (each gives a different stream shape).
const SEEDS: &[u64] = &[1, 2, 3];

// =============================================================================================
// Configuration
// =============================================================================================

/// One differential configuration (everything but the batching).
#[derive(Clone, Copy, Debug)]
struct Case {
    seed: u64,
    /// The stream length class the seed is generated with.
    size: StreamSize,
    op: RefOp,
    windower: RefWindower,
    /// `None` = `EventClock::wait_forever()`.
    wait: Option<i64>,
    per_stream: bool,
    /// Only meaningful for Collect and FoldSum (the others are always unordered).
    ordered: bool,
}

impl Case {
    fn ref_config(&self) -> RefConfig {
        RefConfig {
            windower: self.windower,
            op: self.op,
            wait: self.wait,
            ordered: self.ordered,
            per_stream: self.per_stream,
        }
    }

    /// Human-readable description naming every parameter, plus the batching.
    fn describe(&self, batch: usize, threads: usize) -> String {
        format!(
            "seed={} size={:?} op={} windower={} wait={} scope={} ordered={} batch={} threads={}",
            self.seed,
            self.size,
            op_name(self.op),
            windower_name(self.windower),
            wait_name(self.wait),
            if self.per_stream { "PerStream" } else { "PerKey" },
            self.ordered,
            batch_name(batch),
            threads
        )
    }
}

fn op_name(op: RefOp) -> &'static str {
    match op {
        RefOp::Count => "count",
        RefOp::Collect => "collect",
        RefOp::CollectSet => "collect_set",
        RefOp::CollectDict => "collect_dict",
        RefOp::FoldSum => "fold_sum",
        RefOp::ReduceSum => "reduce_sum",
        RefOp::Max => "max",
        RefOp::Min => "min",
        RefOp::Join { .. } => "join",
    }
}

fn secs(x: i64) -> String {
    // Differential runs are in µs; print as seconds.
    if x % S == 0 { format!("{}s", x / S) } else { format!("{}s", x as f64 / S as f64) }
}

fn windower_name(w: RefWindower) -> String {
    match w {
        RefWindower::Tumbling { length, align } => {
            format!("tumbling({}, align={})", secs(length), secs(align))
        }
        RefWindower::Sliding { length, offset, align } => {
            format!("sliding({}/{}, align={})", secs(length), secs(offset), secs(align))
        }
        RefWindower::Session { gap } => format!("session(gap={})", secs(gap)),
    }
}

fn wait_name(w: Option<i64>) -> String {
    w.map_or_else(|| "forever".to_string(), secs)
}

fn batch_name(b: usize) -> String {
    if b == WHOLE { "whole".to_string() } else { b.to_string() }
}

fn always_unordered(op: RefOp) -> bool {
    matches!(op, RefOp::Count | RefOp::ReduceSum | RefOp::Max | RefOp::Min)
}

/// Windowers of the sweep: tumbling with a non-zero align_to, sliding with the offset dividing
/// the length (10/5) and not (10/3, 10/7, one with a negative align_to), sessions with small
/// gaps (merges happen in unordered mode).
fn windowers() -> Vec<RefWindower> {
    vec![
        RefWindower::Tumbling { length: 10 * S, align: 3_250_000 },
        RefWindower::Sliding { length: 10 * S, offset: 5 * S, align: 0 },
        RefWindower::Sliding { length: 10 * S, offset: 3 * S, align: 0 },
        RefWindower::Sliding { length: 10 * S, offset: 7 * S, align: -2_750_000 },
        RefWindower::Session { gap: S },
        RefWindower::Session { gap: 3 * S },
    ]
}

fn waits() -> Vec<Option<i64>> {
    vec![Some(0), Some(3 * S), None]
}

/// The on-demand extended sweep adds: tumbling aligned to the epoch, sliding with
/// `offset == length`, sessions with gap 0 and a large gap, and more waits.
fn extended_windowers() -> Vec<RefWindower> {
    let mut w = windowers();
    w.extend([
        RefWindower::Tumbling { length: 10 * S, align: 0 },
        RefWindower::Sliding { length: 4 * S, offset: 4 * S, align: S },
        RefWindower::Session { gap: 0 },
        RefWindower::Session { gap: 10 * S },
    ]);
    w
}

fn extended_waits() -> Vec<Option<i64>> {
    vec![Some(0), Some(1_500_000), Some(3 * S), Some(20 * S), None]
}

/// (op, ordered) pairs: ordered is only offered for collect and fold.
fn op_variants(op: RefOp) -> Vec<(RefOp, bool)> {
    if always_unordered(op) { vec![(op, false)] } else { vec![(op, true), (op, false)] }
}

// =============================================================================================
// Generator
// =============================================================================================

/// (align, offset, length) of the fixed windowers, for snapping timestamps to window edges.
const EDGE_GRIDS: &[(i64, i64, i64)] =
    &[(3_250_000, 10 * S, 10 * S), (0, 5 * S, 10 * S), (0, 3 * S, 10 * S), (-2_750_000, 7 * S, 10 * S)];

/// A seeded random keyed stream in microseconds:
///
/// * 3–20 keys (`k0`, `k1`, …), about half the rows on three hot keys;
/// * a cursor drifting forward 0–600 ms per row (sometimes with a µs part);
/// * ~15 % of rows jittered back within 3 s, ~10 % back 3–30 s (late for small waits);
/// * ~7 % reuse a recent row's timestamp, ~4 % are exact duplicates of a recent row;
/// * ~10 % snapped exactly onto a window start or end of one of the fixed windowers;
/// * ~4 % at exactly a whole number of seconds after the key's previous timestamp (exact
///   session gaps);
/// * even seeds start 40 s before the Unix epoch (negative timestamps), odd ones at `A − 40 s`;
/// * values are multiples of 0.25 between −2 and 4 (sums are exact in any order; max/min
///   ties are common).
fn generate(seed: u64) -> Vec<RefRow> {
    generate_sized(seed, StreamSize::Normal)
}

/// The length class of a generated stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StreamSize {
    /// 150–300 rows (batch size 1000 = the whole input).
    Normal,
    /// 1 500–2 500 rows (batch size 1000 splits the input).
    Long,
    /// 40,000 rows over 9000 keys drawn evenly, about 20 s of stream time: enough keys per
    /// shard for the engine's many-key paths (prefetching from 4096 keys, closing block by
    /// block from 8192), which the few keys of the other streams never reach.
    ManyKeys,
}

/// [`generate`] with a chosen length class (same shape otherwise).
fn generate_sized(seed: u64, size: StreamSize) -> Vec<RefRow> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let many = size == StreamSize::ManyKeys;
    let n_keys: usize = if many { 9000 } else { rng.random_range(3..=20) };
    let n_rows: usize = match size {
        StreamSize::Normal => rng.random_range(150..=300),
        StreamSize::Long => rng.random_range(1500..=2500),
        StreamSize::ManyKeys => 40_000,
    };
    let base = if seed.is_multiple_of(2) { -40 * S } else { A_US - 40 * S };
    let mut cursor = base;
    let mut rows: Vec<RefRow> = Vec::with_capacity(n_rows);
    let mut last_ts_of_key: BTreeMap<String, i64> = BTreeMap::new();
    while rows.len() < n_rows {
        cursor += if many { rng.random_range(0..=1000) } else { rng.random_range(0..=600) * 1000 };
        if rng.random_bool(0.3) {
            cursor += rng.random_range(0..1000);
        }
        let key = if many {
            format!("k{}", rng.random_range(0..n_keys))
        } else if rng.random_bool(0.5) {
            format!("k{}", rng.random_range(0..3.min(n_keys)))
        } else {
            format!("k{}", rng.random_range(0..n_keys))
        };
        let value = rng.random_range(-8..=16) as f64 * 0.25;
        let recent = |rng: &mut SmallRng, rows: &Vec<RefRow>| -> Option<RefRow> {
            if rows.is_empty() {
                None
            } else {
                let lo = rows.len().saturating_sub(15);
                Some(rows[rng.random_range(lo..rows.len())].clone())
            }
        };
        let choice = rng.random_range(0..100);
        let row = if choice < 50 {
            RefRow::new(&key, cursor, value)
        } else if choice < 65 {
            RefRow::new(&key, cursor - rng.random_range(0..=3000) * 1000, value)
        } else if choice < 75 {
            RefRow::new(&key, cursor - rng.random_range(3000..=30_000) * 1000, value)
        } else if choice < 82 {
            match recent(&mut rng, &rows) {
                Some(r) => RefRow::new(&key, r.ts, value),
                None => RefRow::new(&key, cursor, value),
            }
        } else if choice < 86 {
            recent(&mut rng, &rows).unwrap_or_else(|| RefRow::new(&key, cursor, value))
        } else if choice < 96 {
            let (align, offset, length) = EDGE_GRIDS[rng.random_range(0..EDGE_GRIDS.len())];
            let ts = if rng.random_bool(0.5) {
                // a window start at or before the cursor
                align + (cursor - align).div_euclid(offset) * offset
            } else {
                // a window end at or before the cursor
                align + (cursor - align - length).div_euclid(offset) * offset + length
            };
            RefRow::new(&key, ts, value)
        } else {
            let prev = last_ts_of_key.get(&key).copied().unwrap_or(cursor);
            RefRow::new(&key, prev + rng.random_range(1..=3) * S, value)
        };
        last_ts_of_key.insert(row.key.clone(), row.ts);
        rows.push(row);
    }
    rows
}

// =============================================================================================
// Arrow input layouts
// =============================================================================================

/// How the key is represented in the input batches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeyKind {
    /// `key: Utf8`.
    Utf8,
    /// `key: Dictionary(Int32, Utf8)`, each batch with its own (reversed) dictionary.
    Dict,
    /// As `Dict`, but as a Parquet reader hands them out: the batches of a row group (three
    /// batches here) are slices of one array, sharing its dictionary.
    DictShared,
    /// `key: Int64` (reference keys must be decimal integers).
    Int64,
    /// Two key columns `a: Utf8`, `b: Int64` (reference keys are `"a|b"`).
    Multi,
}

/// The shape of the input batches.
#[derive(Clone, Copy, Debug)]
struct Layout {
    key: KeyKind,
    /// Unit of the `ts` column.
    unit: TimeUnit,
    /// Time zone of the `ts` column.
    tz: Option<&'static str>,
    /// Unit of the reference rows' timestamps and of the windower durations.
    ref_unit: TimeUnit,
}

impl Layout {
    fn standard() -> Self {
        Layout { key: KeyKind::Utf8, unit: TimeUnit::Microsecond, tz: Some("UTC"), ref_unit: TimeUnit::Microsecond }
    }

    fn key_cols(&self) -> Vec<&'static str> {
        match self.key {
            KeyKind::Multi => vec!["a", "b"],
            _ => vec!["key"],
        }
    }

    fn ts_type(&self) -> DataType {
        DataType::Timestamp(self.unit, self.tz.map(Into::into))
    }

    fn schema(&self) -> SchemaRef {
        let mut fields = match self.key {
            KeyKind::Utf8 => vec![Field::new("key", DataType::Utf8, true)],
            KeyKind::Dict | KeyKind::DictShared => {
                vec![Field::new("key", DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)), true)]
            }
            KeyKind::Int64 => vec![Field::new("key", DataType::Int64, true)],
            KeyKind::Multi => vec![Field::new("a", DataType::Utf8, true), Field::new("b", DataType::Int64, true)],
        };
        fields.push(Field::new("ts", self.ts_type(), true));
        fields.push(Field::new("value", DataType::Float64, true));
        Arc::new(Schema::new(fields))
    }

    /// How many input ticks make one reference tick.
    fn scale(&self) -> i64 {
        ticks_per_sec(self.unit) / ticks_per_sec(self.ref_unit)
    }
}

fn ticks_per_sec(u: TimeUnit) -> i64 {
    match u {
        TimeUnit::Second => 1,
        TimeUnit::Millisecond => 1_000,
        TimeUnit::Microsecond => 1_000_000,
        TimeUnit::Nanosecond => 1_000_000_000,
    }
}

/// A duration of `x` reference ticks as a `TimeDelta`.
fn delta(x: i64, ref_unit: TimeUnit) -> TimeDelta {
    match ref_unit {
        TimeUnit::Second => TimeDelta::seconds(x),
        TimeUnit::Millisecond => TimeDelta::milliseconds(x),
        TimeUnit::Microsecond => TimeDelta::microseconds(x),
        TimeUnit::Nanosecond => TimeDelta::nanoseconds(x),
    }
}

/// An instant of `x` reference ticks since the epoch.
fn instant(x: i64, ref_unit: TimeUnit) -> DateTime<Utc> {
    DateTime::<Utc>::UNIX_EPOCH + delta(x, ref_unit)
}

fn ts_array(values: Vec<Option<i64>>, unit: TimeUnit, tz: Option<&str>) -> ArrayRef {
    let tz: Option<Arc<str>> = tz.map(Into::into);
    match unit {
        TimeUnit::Second => Arc::new(TimestampSecondArray::from(values).with_timezone_opt(tz)),
        TimeUnit::Millisecond => Arc::new(TimestampMillisecondArray::from(values).with_timezone_opt(tz)),
        TimeUnit::Microsecond => Arc::new(TimestampMicrosecondArray::from(values).with_timezone_opt(tz)),
        TimeUnit::Nanosecond => Arc::new(TimestampNanosecondArray::from(values).with_timezone_opt(tz)),
    }
}

fn split_multi(key: &str) -> (String, i64) {
    let (a, b) = key.split_once('|').unwrap_or_else(|| panic!("multi-column key {key:?} is not \"a|b\""));
    (a.to_string(), b.parse().expect("b part of a multi key"))
}

/// Builds one input batch from reference rows (timestamps scaled to the layout's unit).
fn make_batch(rows: &[RefRow], layout: &Layout) -> RecordBatch {
    let keys: Vec<&str> = rows.iter().map(|r| r.key.as_str()).collect();
    let mut cols: Vec<ArrayRef> = match layout.key {
        KeyKind::Utf8 => vec![Arc::new(StringArray::from(keys))],
        KeyKind::Dict | KeyKind::DictShared => {
            // A per-batch dictionary in reverse-sorted order, so indices differ across batches;
            // then a value no row uses and a second copy of every value, which odd rows use
            // (rows with equal values but different indices are one key).
            let mut dict: Vec<&str> = keys.clone();
            dict.sort_unstable();
            dict.dedup();
            dict.reverse();
            let unique = dict.len();
            dict.push("never used");
            dict.extend_from_within(..unique);
            let idx: Vec<i32> = keys
                .iter()
                .enumerate()
                .map(|(r, k)| {
                    let first = dict.iter().position(|d| d == k).expect("in dict");
                    (first + (r % 2) * (unique + 1)) as i32
                })
                .collect();
            let arr = DictionaryArray::<Int32Type>::try_new(idx.into(), Arc::new(StringArray::from(dict)))
                .expect("dictionary");
            vec![Arc::new(arr)]
        }
        KeyKind::Int64 => vec![Arc::new(Int64Array::from(
            keys.iter().map(|k| k.parse::<i64>().expect("integer key")).collect::<Vec<_>>(),
        ))],
        KeyKind::Multi => {
            let (a, b): (Vec<String>, Vec<i64>) = keys.iter().map(|k| split_multi(k)).unzip();
            vec![Arc::new(StringArray::from(a)), Arc::new(Int64Array::from(b))]
        }
    };
    let scale = layout.scale();
    cols.push(ts_array(
        rows.iter().map(|r| Some(r.ts.checked_mul(scale).expect("ts fits the unit"))).collect(),
        layout.unit,
        layout.tz,
    ));
    cols.push(Arc::new(Float64Array::from(rows.iter().map(|r| r.value).collect::<Vec<_>>())));
    RecordBatch::try_new(layout.schema(), cols).expect("input batch")
}

/// Splits rows into micro-batches of `size` rows (`WHOLE`: one batch), each built separately.
fn batches_of(rows: &[RefRow], size: usize, layout: &Layout) -> Vec<RecordBatch> {
    if rows.is_empty() {
        return Vec::new();
    }
    let size = size.min(rows.len());
    if layout.key == KeyKind::DictShared {
        // One array per row group of three batches, each group's dictionary ordered its own way.
        return rows
            .chunks(size.saturating_mul(3))
            .flat_map(|group| {
                let whole = make_batch(group, layout);
                (0..group.len()).step_by(size).map(move |at| whole.slice(at, size.min(group.len() - at)))
            })
            .collect();
    }
    rows.chunks(size).map(|c| make_batch(c, layout)).collect()
}

// =============================================================================================
// Engine runner
// =============================================================================================

/// What the engine produced, decoded into the reference's structs (timestamps in reference
/// ticks).
struct EngineRun {
    out: RefOutput,
    /// All `errors` rows.
    errors: RecordBatch,
    /// The raw output (for schema checks).
    raw: WindowOut,
}

fn build_windower(w: RefWindower, ref_unit: TimeUnit) -> Windower {
    match w {
        RefWindower::Tumbling { length, align } => {
            TumblingWindower::new(delta(length, ref_unit)).expect("tumbling").align_to(instant(align, ref_unit)).into()
        }
        RefWindower::Sliding { length, offset, align } => {
            SlidingWindower::new(delta(length, ref_unit), delta(offset, ref_unit))
                .expect("sliding")
                .align_to(instant(align, ref_unit))
                .into()
        }
        RefWindower::Session { gap } => SessionWindower::new(delta(gap, ref_unit)).expect("session").into(),
    }
}

fn build_clock(wait: Option<i64>, ref_unit: TimeUnit) -> EventClock {
    let clock = EventClock::new("ts");
    match wait {
        None => clock.wait_forever(),
        Some(w) => clock.wait_for_system_duration(delta(w, ref_unit)).expect("wait"),
    }
}

/// The operator, constructed as in `tests/parity/adapter.rs` (count, fold_sum, collect of
/// `value`, reduce_sum, max/min by `value`), in replay mode with a frozen time source.
fn build_operator(
    op: RefOp,
    ordered: bool,
    schema: &SchemaRef,
    key_cols: &[&str],
    clock: EventClock,
    windower: Windower,
) -> WindowOpBuilder {
    let keyed = key_on(schema, key_cols.iter().copied());
    let frozen = DateTime::from_timestamp(1_717_200_000, 0).expect("frozen time"); // 2024-06-01
    let b = match op {
        RefOp::Count => count_window("op", schema, clock, windower, KeySpec::columns(key_cols.iter().copied())),
        RefOp::FoldSum => {
            let fns = FoldFns::new(
                || 0.0f64,
                |acc: f64, row: &RowView<'_>| acc + row.f64("value").unwrap_or(0.0),
                Field::new("sum", DataType::Float64, false),
            )
            .with_merger(|a, b| a + b);
            fold_window("op", &keyed, clock, windower, fns).ordered(ordered)
        }
        RefOp::Collect => collect_window("op", &keyed, clock, windower).column("value").ordered(ordered),
        RefOp::CollectSet => collect_window("op", &keyed, clock, windower)
            .column("value")
            .into_container(CollectInto::Set)
            .ordered(ordered),
        // The reference's dict: value → ts.
        RefOp::CollectDict => collect_window("op", &keyed, clock, windower)
            .into_container(CollectInto::dict("value", "ts"))
            .ordered(ordered),
        RefOp::ReduceSum => reduce_window("op", &keyed, clock, windower, |acc: Row, v: &Row| {
            let sum = acc.f64("value").unwrap_or(0.0) + v.f64("value").unwrap_or(0.0);
            acc.with("value", ScalarValue::Float64(Some(sum)))
        }),
        RefOp::Max => max_window("op", &keyed, clock, windower).by("value"),
        RefOp::Min => min_window("op", &keyed, clock, windower).by("value"),
        RefOp::Join { .. } => panic!("join_window is built by join_builder (see the join section)"),
    };
    b.time_source(TimeSource::Frozen(frozen))
}

fn builder_for(case: &Case, layout: &Layout) -> WindowOpBuilder {
    let schema = layout.schema();
    build_operator(
        case.op,
        case.ordered,
        &schema,
        &layout.key_cols(),
        build_clock(case.wait, layout.ref_unit),
        build_windower(case.windower, layout.ref_unit),
    )
    .scope(if case.per_stream { WatermarkScope::PerStream } else { WatermarkScope::PerKey })
}

/// Builds the operator, pushes `batches` one by one, finishes, and decodes the outputs.
fn run_engine(case: &Case, layout: &Layout, batches: &[RecordBatch], threads: usize) -> Result<EngineRun, String> {
    run_engine_with(builder_for, case, layout, batches, threads)
}

/// Makes the operator of a case (normally [`builder_for`]).
type MakeBuilder = fn(&Case, &Layout) -> WindowOpBuilder;

/// [`run_engine`] with the operator made by `make` (its output decoded as `case.op`'s).
fn run_engine_with(
    make: MakeBuilder,
    case: &Case,
    layout: &Layout,
    batches: &[RecordBatch],
    threads: usize,
) -> Result<EngineRun, String> {
    let mut op = make(case, layout).threads(threads).build().map_err(|e| format!("build failed: {e}"))?;
    let mut raw = op.empty_output();
    for (i, b) in batches.iter().enumerate() {
        raw.extend(op.push(b).map_err(|e| format!("push of batch {i} failed: {e}"))?);
    }
    raw.extend(op.finish().map_err(|e| format!("finish failed: {e}"))?);
    let out = decode(case.op, layout, &raw)?;
    let errors = raw.errors_batch().map_err(|e| e.to_string())?;
    Ok(EngineRun { out, errors, raw })
}

// ---------------------------------------------------------------------------------------------
// Output decoding
// ---------------------------------------------------------------------------------------------

fn column<'a>(b: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef, String> {
    b.column_by_name(name).ok_or_else(|| format!("output column {name:?} missing (schema {:?})", b.schema()))
}

/// The key of every row, as the reference spells it: the key column cast to Utf8, or `a|b`
/// for two key columns.
fn decode_keys(b: &RecordBatch, key_cols: &[&str]) -> Result<Vec<String>, String> {
    let mut parts: Vec<Vec<String>> = Vec::new();
    for name in key_cols {
        let c = cast(column(b, name)?, &DataType::Utf8).map_err(|e| e.to_string())?;
        let s = c.as_string::<i32>();
        if s.null_count() > 0 {
            return Err(format!("null in output key column {name:?}"));
        }
        parts.push((0..s.len()).map(|i| s.value(i).to_string()).collect());
    }
    Ok((0..b.num_rows()).map(|i| parts.iter().map(|p| p[i].as_str()).collect::<Vec<_>>().join("|")).collect())
}

/// A timestamp column as reference ticks (must divide exactly).
fn decode_ts(b: &RecordBatch, name: &str, layout: &Layout) -> Result<Vec<i64>, String> {
    let c = column(b, name)?;
    if !matches!(c.data_type(), DataType::Timestamp(..)) {
        return Err(format!("output column {name:?} has type {}", c.data_type()));
    }
    if c.null_count() > 0 {
        return Err(format!("null in output column {name:?}"));
    }
    let ints = cast(c, &DataType::Int64).map_err(|e| e.to_string())?;
    let ints = ints.as_primitive::<Int64Type>();
    let scale = layout.scale();
    (0..ints.len())
        .map(|i| {
            let v = ints.value(i);
            if v % scale != 0 {
                Err(format!("output {name} = {v} is not a whole number of reference ticks"))
            } else {
                Ok(v / scale)
            }
        })
        .collect()
}

fn decode_i64(b: &RecordBatch, name: &str) -> Result<Vec<i64>, String> {
    let c = column(b, name)?;
    let a = c
        .as_primitive_opt::<Int64Type>()
        .ok_or_else(|| format!("output column {name:?} has type {}", c.data_type()))?;
    if a.null_count() > 0 {
        return Err(format!("null in output column {name:?}"));
    }
    Ok(a.values().to_vec())
}

fn decode_f64(b: &RecordBatch, name: &str) -> Result<Vec<f64>, String> {
    let c = column(b, name)?;
    let a = c
        .as_primitive_opt::<Float64Type>()
        .ok_or_else(|| format!("output column {name:?} has type {}", c.data_type()))?;
    if a.null_count() > 0 {
        return Err(format!("null in output column {name:?}"));
    }
    Ok(a.values().to_vec())
}

fn decode(op: RefOp, layout: &Layout, raw: &WindowOut) -> Result<RefOutput, String> {
    let key_cols = layout.key_cols();
    let mut out = RefOutput::default();
    for b in &raw.down {
        let keys = decode_keys(b, &key_cols)?;
        let ids = decode_i64(b, "window_id")?;
        let results: Vec<RefResult> = match op {
            RefOp::Count => decode_i64(b, "count")?.into_iter().map(RefResult::Count).collect(),
            RefOp::FoldSum => decode_f64(b, "sum")?.into_iter().map(RefResult::Sum).collect(),
            RefOp::ReduceSum => decode_f64(b, "value")?.into_iter().map(RefResult::Sum).collect(),
            RefOp::Collect => {
                let c = column(b, "value")?;
                let list =
                    c.as_list_opt::<i32>().ok_or_else(|| format!("collect column has type {}", c.data_type()))?;
                (0..list.len())
                    .map(|i| {
                        let v = list.value(i);
                        let v = v.as_primitive_opt::<Float64Type>().ok_or("collect items are not f64")?;
                        if v.null_count() > 0 {
                            return Err("null collected item".to_string());
                        }
                        Ok(RefResult::Collect(v.values().to_vec()))
                    })
                    .collect::<Result<_, String>>()?
            }
            RefOp::CollectSet => {
                let c = column(b, "value")?;
                let list = c.as_list_opt::<i32>().ok_or_else(|| format!("set column has type {}", c.data_type()))?;
                (0..list.len())
                    .map(|i| {
                        let v = list.value(i);
                        let v = v.as_primitive_opt::<Float64Type>().ok_or("set items are not f64")?;
                        if v.null_count() > 0 {
                            return Err("null set item".to_string());
                        }
                        Ok(RefResult::Set(v.values().to_vec()))
                    })
                    .collect::<Result<_, String>>()?
            }
            RefOp::CollectDict => {
                // A `Map<Float64, Timestamp>` column named after the value column, `ts`.
                let c = column(b, "ts")?;
                let map = c.as_map_opt().ok_or_else(|| format!("dict column has type {}", c.data_type()))?;
                (0..map.len())
                    .map(|i| {
                        let e = map.value(i);
                        let entries = RecordBatch::from(e);
                        let k = decode_f64(&entries, "keys")?;
                        let v = decode_ts(&entries, "values", layout)?;
                        Ok(RefResult::Dict(k.into_iter().zip(v).collect()))
                    })
                    .collect::<Result<_, String>>()?
            }
            RefOp::Max | RefOp::Min => decode_ts(b, "ts", layout)?
                .into_iter()
                .zip(decode_f64(b, "value")?)
                .map(|(ts, value)| RefResult::Row { ts, value })
                .collect(),
            RefOp::Join { .. } => return Err("join not decoded here".into()),
        };
        for ((key, window_id), result) in keys.into_iter().zip(ids).zip(results) {
            out.down.push(RefDown { key, window_id, result });
        }
    }
    for b in &raw.late {
        let keys = decode_keys(b, &key_cols)?;
        let ids = decode_i64(b, "window_id")?;
        let ts = decode_ts(b, "ts", layout)?;
        let vals = decode_f64(b, "value")?;
        for i in 0..b.num_rows() {
            out.late.push(RefLate { key: keys[i].clone(), window_id: ids[i], side: None, ts: ts[i], value: vals[i] });
        }
    }
    out.meta = decode_meta(layout, raw)?;
    Ok(out)
}

/// The `meta` rows of an output (any operator, joins included).
fn decode_meta(layout: &Layout, raw: &WindowOut) -> Result<Vec<RefMeta>, String> {
    let key_cols = layout.key_cols();
    let mut meta = Vec::new();
    for b in &raw.meta {
        let keys = decode_keys(b, &key_cols)?;
        let ids = decode_i64(b, "window_id")?;
        let open = decode_ts(b, "open_time", layout)?;
        let close = decode_ts(b, "close_time", layout)?;
        let c = column(b, "merged_ids")?;
        let merged = c.as_list_opt::<i32>().ok_or_else(|| format!("merged_ids has type {}", c.data_type()))?;
        for i in 0..b.num_rows() {
            if merged.is_null(i) {
                return Err("merged_ids is null (spec §10.4: never null)".into());
            }
            let m = merged.value(i);
            let m = m.as_primitive_opt::<Int64Type>().ok_or("merged_ids items are not i64")?;
            meta.push(RefMeta {
                key: keys[i].clone(),
                window_id: ids[i],
                open_time: open[i],
                close_time: close[i],
                merged_ids: m.values().to_vec(),
            });
        }
    }
    Ok(meta)
}

// =============================================================================================
// Comparator
// =============================================================================================

/// How `down` and `meta` are compared per key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Order {
    /// Exact per-key sequence.
    Exact,
    /// Per-key multiset (unordered mode with batches larger than one row, spec §7.2).
    Multiset,
}

/// Compares one stream of one key; on mismatch describes the first difference.
fn compare_seq<T: std::fmt::Debug + PartialEq>(
    stream: &str,
    key: &str,
    reference: &[T],
    engine: &[T],
    order: Order,
) -> Result<(), String> {
    let (r, e): (Vec<&T>, Vec<&T>) = match order {
        Order::Exact => (reference.iter().collect(), engine.iter().collect()),
        Order::Multiset => {
            let mut r: Vec<&T> = reference.iter().collect();
            let mut e: Vec<&T> = engine.iter().collect();
            r.sort_by_cached_key(|x| format!("{x:?}"));
            e.sort_by_cached_key(|x| format!("{x:?}"));
            (r, e)
        }
    };
    if r == e {
        return Ok(());
    }
    let i = r.iter().zip(&e).position(|(a, b)| a != b).unwrap_or(r.len().min(e.len()));
    let mut msg = format!(
        "key {key:?}: `{stream}` differs ({}) at index {i}: reference has {} rows, engine {}\n  \
         reference[{i}] = {:?}\n  engine[{i}]    = {:?}\n",
        if order == Order::Exact { "exact per-key sequence" } else { "per-key multiset, canonically sorted" },
        r.len(),
        e.len(),
        r.get(i),
        e.get(i),
    );
    let lo = i.saturating_sub(3);
    let _ = writeln!(msg, "  reference[{lo}..]: {:?}", &r[lo.min(r.len())..(i + 4).min(r.len())]);
    let _ = writeln!(msg, "  engine[{lo}..]:    {:?}", &e[lo.min(e.len())..(i + 4).min(e.len())]);
    Err(msg)
}

/// Per-key comparison of the reference's and the engine's outputs.
fn compare(reference: &RefOutput, engine: &RefOutput, order: Order) -> Result<(), String> {
    let rk = reference.by_key();
    let ek = engine.by_key();
    let empty = RefOutput::default();
    let mut keys: Vec<&String> = rk.keys().chain(ek.keys()).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        let r = rk.get(k).unwrap_or(&empty);
        let e = ek.get(k).unwrap_or(&empty);
        compare_seq("late", k, &r.late, &e.late, Order::Exact)?;
        compare_seq("down", k, &r.down, &e.down, order)?;
        compare_seq("meta", k, &r.meta, &e.meta, order)?;
    }
    Ok(())
}

/// Row conservation for count over tumbling windows: Σ counts + late rows = input rows.
fn check_conservation(case: &Case, out: &RefOutput, n_rows: usize) -> Result<(), String> {
    if !matches!((case.op, case.windower), (RefOp::Count, RefWindower::Tumbling { .. })) {
        return Ok(());
    }
    let counted: i64 = out
        .down
        .iter()
        .map(|d| match d.result {
            RefResult::Count(n) => n,
            _ => 0,
        })
        .sum();
    let late = out.late.len() as i64;
    if counted + late != n_rows as i64 {
        return Err(format!("row conservation: Σ counts {counted} + late {late} != {n_rows} input rows"));
    }
    Ok(())
}

/// Runs one case over every batching and returns the failures (one message each).
fn check_case(case: &Case, rows: &[RefRow], layout: &Layout, batchings: &[(usize, usize)]) -> Vec<String> {
    check_case_with(builder_for, case, rows, layout, batchings)
}

/// [`check_case`] with the engine's operator made by `make`.
fn check_case_with(
    make: MakeBuilder,
    case: &Case,
    rows: &[RefRow],
    layout: &Layout,
    batchings: &[(usize, usize)],
) -> Vec<String> {
    let reference = run_reference(&case.ref_config(), &[rows.to_vec()]);
    let mut failures = Vec::new();
    for &(batch, threads) in batchings {
        let ctx = case.describe(batch, threads);
        let batches = batches_of(rows, batch, layout);
        let run = match run_engine_with(make, case, layout, &batches, threads) {
            Ok(run) => run,
            Err(e) => {
                failures.push(format!("[{ctx}] engine error: {e}"));
                continue;
            }
        };
        if run.errors.num_rows() > 0 {
            failures.push(format!(
                "[{ctx}] {} rows on `errors`; first reason: {:?}",
                run.errors.num_rows(),
                run.errors.column_by_name("reason").map(|c| c.as_string::<i32>().value(0).to_string())
            ));
        }
        // The reference treats every row as its own micro-batch: with batch size 1 every
        // per-key sequence must match; in ordered mode it is batch-independent (spec §11.2).
        let ordered = case.ordered && !always_unordered(case.op);
        let order = if batch == 1 || ordered { Order::Exact } else { Order::Multiset };
        if let Err(e) = compare(&reference, &run.out, order) {
            failures.push(format!("[{ctx}] {e}"));
        }
        if let Err(e) = check_conservation(case, &run.out, rows.len()) {
            failures.push(format!("[{ctx}] {e}"));
        }
    }
    if let Err(e) = check_conservation(case, &reference, rows.len()) {
        failures.push(format!("[{} (reference)] {e}", case.describe(0, 0)));
    }
    failures
}

/// Runs every (seed, windower, wait, scope, ordered) case for `op` over [`BATCHINGS`] and fails
/// listing the failing configurations.
fn sweep(op: RefOp, seeds: &[u64], windowers: &[RefWindower], waits: &[Option<i64>]) {
    let started = Instant::now();
    let mut failures: Vec<String> = Vec::new();
    let mut n_cases = 0;
    for &seed in seeds {
        let size = StreamSize::Normal;
        let rows = generate_sized(seed, size);
        for &windower in windowers {
            for &wait in waits {
                for per_stream in [false, true] {
                    for (op, ordered) in op_variants(op) {
                        let case = Case { seed, size, op, windower, wait, per_stream, ordered };
                        n_cases += 1;
                        failures.extend(check_case(&case, &rows, &Layout::standard(), BATCHINGS));
                    }
                }
            }
        }
    }
    eprintln!(
        "differential {}: {n_cases} cases × {} batchings in {:.1?}",
        op_name(op),
        BATCHINGS.len(),
        started.elapsed()
    );
    report(&failures, op_name(op));
}

/// Panics listing the first failures, if any.
fn report(failures: &[String], what: &str) {
    if !failures.is_empty() {
        let shown: Vec<&String> = failures.iter().take(8).collect();
        panic!(
            "{} differential failures for {what} (first {} shown):\n\n{}",
            failures.len(),
            shown.len(),
            shown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n")
        );
    }
}

// =============================================================================================
// The differential sweep (one test per operator so they run in parallel)
// =============================================================================================

#[test]
fn differential_count() {
    sweep(RefOp::Count, SEEDS, &windowers(), &waits());
}

/// The same sweep with due windows closed block by block, as shards with many keys do
/// (`close_inline_from_keys`; the sweep's few keys would otherwise settle after the rows).
#[test]
fn differential_close_inline() {
    fn inline(case: &Case, layout: &Layout) -> WindowOpBuilder {
        builder_for(case, layout).close_inline_from_keys(0)
    }
    let ops = [RefOp::Count, RefOp::Collect, RefOp::FoldSum, RefOp::Max];
    sweep_with(inline, &ops, &[false, true], "closing block by block");
}

#[test]
fn differential_collect() {
    sweep(RefOp::Collect, SEEDS, &windowers(), &waits());
}

#[test]
fn differential_collect_set() {
    sweep(RefOp::CollectSet, SEEDS, &windowers(), &waits());
}

#[test]
fn differential_collect_dict() {
    sweep(RefOp::CollectDict, SEEDS, &windowers(), &waits());
}

#[test]
fn differential_fold_sum() {
    sweep(RefOp::FoldSum, SEEDS, &windowers(), &waits());
}

#[test]
fn differential_reduce_sum() {
    sweep(RefOp::ReduceSum, SEEDS, &windowers(), &waits());
}

#[test]
fn differential_max() {
    sweep(RefOp::Max, SEEDS, &windowers(), &waits());
}

#[test]
fn differential_min() {
    sweep(RefOp::Min, SEEDS, &windowers(), &waits());
}

/// `max_window` / `min_window` by a DataFusion expression (spec §8.4, bytewax's `by`
/// function): max by `value * -1` must pick exactly the rows the reference's min by `value`
/// picks (ties: earliest arrival; on a merge the target's row), and min by `value * -1` those
/// of the reference's max. (The generator's values are multiples of 0.25 without `-0.0` or
/// NaN, so negation reverses the total order exactly.)
#[test]
fn differential_max_min_by_expression() {
    fn negated(case: &Case, layout: &Layout) -> WindowOpBuilder {
        let schema = layout.schema();
        let keyed = key_on(&schema, layout.key_cols());
        let (clock, windower) =
            (build_clock(case.wait, layout.ref_unit), build_windower(case.windower, layout.ref_unit));
        // The engine runs the opposite operator of the reference's.
        let b = match case.op {
            RefOp::Min => max_window("op", &keyed, clock, windower),
            RefOp::Max => min_window("op", &keyed, clock, windower),
            other => panic!("no by-expression variant of {other:?}"),
        };
        let frozen = DateTime::from_timestamp(1_717_200_000, 0).expect("frozen time");
        b.by_expr("neg_value", datafusion::prelude::col("value") * datafusion::prelude::lit(-1.0))
            .time_source(TimeSource::Frozen(frozen))
            .scope(if case.per_stream { WatermarkScope::PerStream } else { WatermarkScope::PerKey })
    }
    sweep_with(negated, &[RefOp::Min, RefOp::Max], &[false], "the other op by value * -1");
}

/// Every seed, windower, wait and scope of the sweep for each of `ops` and `ordered`, with the
/// engine's operator made by `make` (named `engine` in the failures) over [`BATCHINGS`].
fn sweep_with(make: MakeBuilder, ops: &[RefOp], ordered: &[bool], engine: &str) {
    let mut failures = Vec::new();
    for &seed in SEEDS {
        let rows = generate(seed);
        for &windower in &windowers() {
            for &wait in &waits() {
                for per_stream in [false, true] {
                    for (&op, &ordered) in ops.iter().flat_map(|op| ordered.iter().map(move |o| (op, o))) {
                        let case = Case { seed, size: StreamSize::Normal, op, windower, wait, per_stream, ordered };
                        failures.extend(
                            check_case_with(make, &case, &rows, &Layout::standard(), BATCHINGS)
                                .into_iter()
                                .map(|f| format!("(engine: {engine}) {f}")),
                        );
                    }
                }
            }
        }
    }
    report(&failures, engine);
}

/// The built-in columnar `sum` (`agg_window` with `Agg::sum`, the path of `windrow run --agg
/// sum:COL`) against the reference's sum fold: every windower (sliding ones queue one update
/// per row and pane, folded into each of the pane's windows), wait, scope and ordering, over
/// [`BATCHINGS`]. Sums are compared as values (the fold starts from 0.0, the built-in sum from
/// the first value; the two differ only on a first value of -0.0, which compares equal).
#[test]
fn differential_builtin_sum() {
    fn builtin_sum(case: &Case, layout: &Layout) -> WindowOpBuilder {
        let schema = layout.schema();
        let keyed = key_on(&schema, layout.key_cols());
        let (clock, windower) =
            (build_clock(case.wait, layout.ref_unit), build_windower(case.windower, layout.ref_unit));
        let frozen = DateTime::from_timestamp(1_717_200_000, 0).expect("frozen time");
        agg_window("op", &keyed, clock, windower, vec![Agg::sum("value").alias("sum")])
            .ordered(case.ordered)
            .time_source(TimeSource::Frozen(frozen))
            .scope(if case.per_stream { WatermarkScope::PerStream } else { WatermarkScope::PerKey })
    }
    sweep_with(builtin_sum, &[RefOp::FoldSum], &[false, true], "built-in sum");
}

/// A stream longer than 1000 rows, so that batch size 1000 really splits it: every op, three
/// windowers, waits {0, 1.5 s}, both scopes, batches of 1000 (1 and 4 threads) and whole (2).
#[test]
fn differential_long_stream() {
    let started = Instant::now();
    let (seed, size) = (11, StreamSize::Long);
    let rows = generate_sized(seed, size);
    assert!(rows.len() > 1000);
    let batchings: &[(usize, usize)] = &[(1000, 1), (1000, 4), (WHOLE, 2)];
    let mut failures = Vec::new();
    let mut n_cases = 0;
    for windower in [windowers()[0], windowers()[2], windowers()[5]] {
        for wait in [Some(0), Some(1_500_000)] {
            for per_stream in [false, true] {
                for (op, ordered) in all_ops() {
                    let case = Case { seed, size, op, windower, wait, per_stream, ordered };
                    n_cases += 1;
                    failures.extend(check_case(&case, &rows, &Layout::standard(), batchings));
                }
            }
        }
    }
    eprintln!(
        "differential long stream ({} rows): {n_cases} cases × {} batchings in {:.1?}",
        rows.len(),
        batchings.len(),
        started.elapsed()
    );
    report(&failures, "the long stream");
}

/// A stream with many keys, so that shards reach the engine's many-key paths: rows interned up
/// front with prefetching (from 4096 keys in a shard), due windows closed block by block and
/// open lists moved back inline (from 8192), sessions' state prefetched. Batches of 4096 rows
/// on 1 thread (one shard passes 8192 keys) and 2 (two shards of about 4500).
#[test]
fn differential_many_keys() {
    let started = Instant::now();
    let (seed, size) = (5, StreamSize::ManyKeys);
    let rows = generate_sized(seed, size);
    let keys: std::collections::BTreeSet<&str> = rows.iter().map(|r| r.key.as_str()).collect();
    assert!(keys.len() > 8192, "{} keys", keys.len());
    let batchings: &[(usize, usize)] = &[(4096, 1), (4096, 2)];
    let mut failures = Vec::new();
    let mut n_cases = 0;
    for windower in [windowers()[0], windowers()[2], windowers()[5]] {
        for per_stream in [false, true] {
            for op in [RefOp::Count, RefOp::FoldSum, RefOp::Collect] {
                let wait = Some(1_500_000);
                let case = Case { seed, size, op, windower, wait, per_stream, ordered: false };
                n_cases += 1;
                failures.extend(check_case(&case, &rows, &Layout::standard(), batchings));
            }
        }
    }
    eprintln!(
        "differential many keys ({} rows, {} keys): {n_cases} cases × {} batchings in {:.1?}",
        rows.len(),
        keys.len(),
        batchings.len(),
        started.elapsed()
    );
    report(&failures, "the many-key stream");
}

/// More seeds, on demand: `WINDROW_DIFF_SEEDS=200 cargo test --test differential -- --ignored`
/// runs seeds 100..300 (default 20 seeds) through the sweep for every op, with more windowers
/// and waits ([`extended_windowers`], [`extended_waits`]).
#[test]
#[ignore = "slow; run explicitly with --ignored (WINDROW_DIFF_SEEDS = number of seeds)"]
fn differential_extended_seeds() {
    let n: u64 = std::env::var("WINDROW_DIFF_SEEDS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let seeds: Vec<u64> = (100..100 + n).collect();
    for op in [
        RefOp::Count,
        RefOp::Collect,
        RefOp::CollectSet,
        RefOp::CollectDict,
        RefOp::FoldSum,
        RefOp::ReduceSum,
        RefOp::Max,
        RefOp::Min,
    ] {
        sweep(op, &seeds, &extended_windowers(), &extended_waits());
    }
}

/// The generator really produces what the sweep is meant to exercise.
#[test]
fn generator_covers_edge_cases() {
    for &seed in SEEDS {
        let rows = generate(seed);
        let keys: std::collections::BTreeSet<&str> = rows.iter().map(|r| r.key.as_str()).collect();
        assert!(keys.len() >= 3, "seed {seed}: {} keys", keys.len());
        let out_of_order = rows.windows(2).filter(|w| w[1].ts < w[0].ts).count();
        assert!(out_of_order > 10, "seed {seed}: {out_of_order} out-of-order rows");
        let mut ts: Vec<i64> = rows.iter().map(|r| r.ts).collect();
        ts.sort_unstable();
        let dups = ts.windows(2).filter(|w| w[0] == w[1]).count();
        assert!(dups > 3, "seed {seed}: {dups} duplicate timestamps");
        let on_edge = rows.iter().filter(|r| (r.ts - 3_250_000).rem_euclid(10 * S) == 0).count();
        assert!(on_edge > 0, "seed {seed}: no timestamp on a tumbling edge");
        if seed.is_multiple_of(2) {
            assert!(rows.iter().any(|r| r.ts < 0), "seed {seed}: no pre-epoch ts");
        }
        // Late rows exist for wait = 3 s (per key).
        let late = run_reference(
            &RefConfig {
                windower: windowers()[0],
                op: RefOp::Count,
                wait: Some(3 * S),
                ordered: false,
                per_stream: false,
            },
            std::slice::from_ref(&rows),
        )
        .late
        .len();
        assert!(late > 0, "seed {seed}: nothing late with wait 3 s");
    }
    // Unordered sessions merge somewhere.
    let merges: usize = SEEDS
        .iter()
        .map(|&seed| {
            run_reference(
                &RefConfig {
                    windower: RefWindower::Session { gap: 3 * S },
                    op: RefOp::Count,
                    wait: None,
                    ordered: false,
                    per_stream: false,
                },
                &[generate(seed)],
            )
            .meta
            .iter()
            .filter(|m| !m.merged_ids.is_empty())
            .count()
        })
        .sum();
    assert!(merges > 0, "no session merges in any seed");
}

// =============================================================================================
// Spec examples through the engine, for several batchings (spec §16 item 2, §7.2, §12)
// =============================================================================================

/// The value of a letter (`a = 1`, `b = 2`, …), as in `tests/reference_selftest.rs`.
fn letter(c: char) -> f64 {
    (c as u8 - b'a' + 1) as f64
}

/// Rows `(key, letter, seconds)` in arrival order; the value is the letter's number.
fn letter_rows(items: &[(&str, char, i64)]) -> Vec<RefRow> {
    items.iter().map(|&(k, c, t)| RefRow::new(k, t * S, letter(c))).collect()
}

fn collected(key: &str, id: i64, letters: &str) -> RefDown {
    RefDown { key: key.into(), window_id: id, result: RefResult::Collect(letters.chars().map(letter).collect()) }
}

fn meta_row(key: &str, id: i64, open_s: i64, close_s: i64, merged: &[i64]) -> RefMeta {
    RefMeta {
        key: key.into(),
        window_id: id,
        open_time: open_s * S,
        close_time: close_s * S,
        merged_ids: merged.to_vec(),
    }
}

/// Runs a collect example through the engine for several batchings and checks the exact
/// per-key sequences against the spec's expected output (and the reference).
fn check_example(name: &str, case: Case, rows: &[RefRow], expected: &RefOutput, batchings: &[(usize, usize)]) {
    let reference = run_reference(&case.ref_config(), &[rows.to_vec()]);
    compare(expected, &reference, Order::Exact).unwrap_or_else(|e| panic!("{name}: reference vs spec: {e}"));
    let layout = Layout::standard();
    for &(batch, threads) in batchings {
        let ctx = format!("{name}: {}", case.describe(batch, threads));
        let run = run_engine(&case, &layout, &batches_of(rows, batch, &layout), threads)
            .unwrap_or_else(|e| panic!("[{ctx}] {e}"));
        compare(expected, &run.out, Order::Exact).unwrap_or_else(|e| panic!("[{ctx}] engine vs spec: {e}"));
    }
}

const ALL_BATCHINGS: &[(usize, usize)] = &[(1, 1), (2, 1), (3, 2), (WHOLE, 1), (WHOLE, 4)];

/// Unordered session merges with an order-sensitive aggregate give the spec's result for every
/// batching (§3.3 `p, q, a, b`; §5.2.3 merge target and non-transitive `merged_ids`).
#[test]
fn spec_session_merge_examples_any_batching() {
    let session = |ordered| Case {
        seed: 0,
        size: StreamSize::Normal,
        op: RefOp::Collect,
        windower: RefWindower::Session { gap: 10 * S },
        wait: None,
        per_stream: false,
        ordered,
    };
    // §3.3: (0,[p,a,q,b]) always; meta 0:[10s,30s], merged_ids=[1].
    check_example(
        "§3.3 p,q,a,b",
        session(false),
        &letter_rows(&[("k", 'p', 10), ("k", 'q', 30), ("k", 'a', 20), ("k", 'b', 25)]),
        &RefOutput { down: vec![collected("k", 0, "paqb")], late: vec![], meta: vec![meta_row("k", 0, 10, 30, &[1])] },
        ALL_BATCHINGS,
    );
    // §5.2.3: the merge target is the earliest-opening session: (1,[y,x,z]), merged_ids=[0].
    check_example(
        "§5.2.3 x,y,z",
        session(false),
        &letter_rows(&[("k", 'x', 100), ("k", 'y', 85), ("k", 'z', 92)]),
        &RefOutput { down: vec![collected("k", 1, "yxz")], late: vec![], meta: vec![meta_row("k", 1, 85, 100, &[0])] },
        ALL_BATCHINGS,
    );
    // §5.2.5: ordered mode never merges: one session 0 [85,100], content [y,z,x].
    check_example(
        "§5.2.5 x,y,z ordered",
        session(true),
        &letter_rows(&[("k", 'x', 100), ("k", 'y', 85), ("k", 'z', 92)]),
        &RefOutput { down: vec![collected("k", 0, "yzx")], late: vec![], meta: vec![meta_row("k", 0, 85, 100, &[])] },
        ALL_BATCHINGS,
    );
    // §5.2.3 chain: (0,[a,z,b,x,c,y]), merged_ids=[1] (not transitive).
    check_example(
        "§5.2.3 chain",
        session(false),
        &letter_rows(&[("k", 'a', 0), ("k", 'b', 30), ("k", 'c', 50), ("k", 'x', 40), ("k", 'y', 20), ("k", 'z', 10)]),
        &RefOutput { down: vec![collected("k", 0, "azbxcy")], late: vec![], meta: vec![meta_row("k", 0, 0, 50, &[1])] },
        ALL_BATCHINGS,
    );
    // §5.2.5: (0,[a]) and (2,[c,b,d]) with merged_ids=[1].
    check_example(
        "§5.2.5 a,b,c,d",
        session(false),
        &letter_rows(&[("k", 'a', 0), ("k", 'b', 30), ("k", 'c', 15), ("k", 'd', 22)]),
        &RefOutput {
            down: vec![collected("k", 0, "a"), collected("k", 2, "cbd")],
            late: vec![],
            meta: vec![meta_row("k", 0, 0, 0, &[]), meta_row("k", 2, 15, 30, &[1])],
        },
        ALL_BATCHINGS,
    );
}

/// §7.2 close order: creation order within one settle step; in unordered mode the per-key
/// order depends on micro-batch boundaries exactly as the spec says.
#[test]
fn spec_close_order_examples() {
    let tumbling = |ordered| Case {
        seed: 0,
        size: StreamSize::Normal,
        op: RefOp::Collect,
        windower: RefWindower::Tumbling { length: 10 * S, align: 0 },
        wait: Some(20 * S),
        per_stream: false,
        ordered,
    };
    let metas = |ids: &[i64]| ids.iter().map(|&i| meta_row("k", i, 10 * i, 10 * i + 10, &[])).collect::<Vec<_>>();
    let pqr = letter_rows(&[("k", 'p', 18), ("k", 'q', 5), ("k", 'r', 40)]);
    // Unordered: (1,[p]) then (0,[q]) in every batching (both close in r's step), then (4,[r]).
    check_example(
        "§7.2 p,q,r unordered",
        tumbling(false),
        &pqr,
        &RefOutput {
            down: vec![collected("k", 1, "p"), collected("k", 0, "q"), collected("k", 4, "r")],
            late: vec![],
            meta: metas(&[1, 0, 4]),
        },
        ALL_BATCHINGS,
    );
    // Ordered: windows open in ascending id order: (0,[q]), (1,[p]), (4,[r]).
    check_example(
        "§7.2 p,q,r ordered",
        tumbling(true),
        &pqr,
        &RefOutput {
            down: vec![collected("k", 0, "q"), collected("k", 1, "p"), collected("k", 4, "r")],
            late: vec![],
            meta: metas(&[0, 1, 4]),
        },
        ALL_BATCHINGS,
    );
    // p@18, q@5, r@32, s@45 unordered: one row per batch → 0, 1, 3, 4; one batch → 1, 0, 3, 4.
    let pqrs = letter_rows(&[("k", 'p', 18), ("k", 'q', 5), ("k", 'r', 32), ("k", 's', 45)]);
    let down = |ids: &[i64]| ids.iter().map(|&i| collected("k", i, ["q", "p", "", "r", "s"][i as usize])).collect();
    check_example(
        "§7.2 p,q,r,s one row per batch",
        tumbling(false),
        &pqrs,
        &RefOutput { down: down(&[0, 1, 3, 4]), late: vec![], meta: metas(&[0, 1, 3, 4]) },
        &[(1, 1), (1, 4)],
    );
    check_example_engine_only(
        "§7.2 p,q,r,s one batch",
        tumbling(false),
        &pqrs,
        &RefOutput { down: down(&[1, 0, 3, 4]), late: vec![], meta: metas(&[1, 0, 3, 4]) },
        &[(WHOLE, 1), (WHOLE, 4)],
    );
}

/// Like [`check_example`] for outputs the one-row-per-batch reference cannot produce.
fn check_example_engine_only(
    name: &str,
    case: Case,
    rows: &[RefRow],
    expected: &RefOutput,
    batchings: &[(usize, usize)],
) {
    let layout = Layout::standard();
    for &(batch, threads) in batchings {
        let ctx = format!("{name}: {}", case.describe(batch, threads));
        let run = run_engine(&case, &layout, &batches_of(rows, batch, &layout), threads)
            .unwrap_or_else(|e| panic!("[{ctx}] {e}"));
        compare(expected, &run.out, Order::Exact).unwrap_or_else(|e| panic!("[{ctx}] engine vs spec: {e}"));
    }
}

/// §7.2 for sessions closed early: a key's due sessions that are the oldest close after
/// their block of rows, the rest with the settle after the rows, and together they keep
/// creation order. Gap 10 s, wait 20 s, unordered count, one batch; 60 rows of another key
/// first, so that `d` ends the engine's first 64-row block and `e` starts the next. After
/// `d` (watermark 140 s) sessions 0 `[100]` and 2 `[125]` are due, session 1 `[140]` is
/// not: only 0 may close there. `e` (watermark 180 s) makes 1, 2 and 3 due.
#[test]
fn sessions_closed_early_keep_creation_order() {
    let mut items: Vec<(&str, char, i64)> = vec![("z", 'z', 100); 60];
    items.extend([("k", 'a', 100), ("k", 'b', 140), ("k", 'c', 125), ("k", 'd', 160), ("k", 'e', 200)]);
    let rows = letter_rows(&items);
    let case = Case {
        seed: 0,
        size: StreamSize::Normal,
        op: RefOp::Count,
        windower: RefWindower::Session { gap: 10 * S },
        wait: Some(20 * S),
        per_stream: false,
        ordered: false,
    };
    let layout = Layout::standard();
    for threads in [1, 2] {
        let run = run_engine(&case, &layout, &batches_of(&rows, WHOLE, &layout), threads).unwrap();
        let out = run.out.by_key().remove("k").unwrap_or_default();
        let down: Vec<i64> = out.down.iter().map(|d| d.window_id).collect();
        let meta: Vec<i64> = out.meta.iter().map(|m| m.window_id).collect();
        assert_eq!(down, [0, 1, 2, 3, 4], "down, {threads} thread(s)");
        assert_eq!(meta, [0, 1, 2, 3, 4], "meta, {threads} thread(s)");
    }
}

/// §12 per-stream example and §7.5 per-key example through the engine for several batchings.
#[test]
fn spec_watermark_scope_examples() {
    let rows = letter_rows(&[("x", 'a', 1), ("y", 'b', 30), ("x", 'c', 2), ("y", 'd', 3), ("x", 'e', 15)]);
    let case = |per_stream| Case {
        seed: 0,
        size: StreamSize::Normal,
        op: RefOp::Collect,
        windower: RefWindower::Tumbling { length: 10 * S, align: 0 },
        wait: Some(0),
        per_stream,
        ordered: true,
    };
    let late = |key: &str, id: i64, c: char, t: i64| RefLate {
        key: key.into(),
        window_id: id,
        side: None,
        ts: t * S,
        value: letter(c),
    };
    // Per stream: down (x,0,[x1]), (y,3,[y30]); late (x,0,x2), (y,0,y3), (x,1,x15).
    check_example(
        "§12 per stream",
        case(true),
        &rows,
        &RefOutput {
            down: vec![collected("x", 0, "a"), collected("y", 3, "b")],
            late: vec![late("x", 0, 'c', 2), late("y", 0, 'd', 3), late("x", 1, 'e', 15)],
            meta: vec![meta_row("x", 0, 0, 10, &[]), meta_row("y", 3, 30, 40, &[])],
        },
        ALL_BATCHINGS,
    );
    // Per key: (x,0,[x1,x2]), (x,1,[x15]), (y,3,[y30]); only y@3 late.
    check_example(
        "§7.5 per key",
        case(false),
        &rows,
        &RefOutput {
            down: vec![collected("x", 0, "ac"), collected("x", 1, "e"), collected("y", 3, "b")],
            late: vec![late("y", 0, 'd', 3)],
            meta: vec![meta_row("x", 0, 0, 10, &[]), meta_row("x", 1, 10, 20, &[]), meta_row("y", 3, 30, 40, &[])],
        },
        ALL_BATCHINGS,
    );
}

// =============================================================================================
// Focused input-shape tests
// =============================================================================================

fn all_ops() -> Vec<(RefOp, bool)> {
    [
        RefOp::Count,
        RefOp::Collect,
        RefOp::CollectSet,
        RefOp::CollectDict,
        RefOp::FoldSum,
        RefOp::ReduceSum,
        RefOp::Max,
        RefOp::Min,
    ]
    .into_iter()
    .flat_map(op_variants)
    .collect()
}

fn simple_case(op: RefOp, ordered: bool, windower: RefWindower, wait: Option<i64>) -> Case {
    Case { seed: 0, size: StreamSize::Normal, op, windower, wait, per_stream: false, ordered }
}

fn field_names(s: &SchemaRef) -> Vec<String> {
    s.fields().iter().map(|f| f.name().clone()).collect()
}

/// Checks the four output schemas of an operator over `layout`'s `key`/`ts`/`value` input.
fn assert_full_schemas(op: RefOp, out: &WindowOut, layout: &Layout, ctx: &str) {
    let [down, late, meta, errors] = out.schemas();
    let utc = DataType::Timestamp(layout.unit, Some("UTC".into()));
    let result: Vec<&str> = match op {
        RefOp::Count => vec!["count"],
        RefOp::Collect | RefOp::CollectSet => vec!["value"],
        RefOp::CollectDict => vec!["ts"],
        RefOp::FoldSum => vec!["sum"],
        RefOp::ReduceSum | RefOp::Max | RefOp::Min => vec!["ts", "value"],
        RefOp::Join { .. } => unreachable!(),
    };
    let mut want_down = vec!["key", "window_id", "window_start", "window_end"];
    want_down.extend(result);
    assert_eq!(field_names(&down), want_down, "{ctx}: down schema");
    assert_eq!(field_names(&late), ["key", "window_id", "ts", "value"], "{ctx}: late schema");
    assert_eq!(field_names(&meta), ["key", "window_id", "open_time", "close_time", "merged_ids"], "{ctx}: meta schema");
    assert_eq!(field_names(&errors), ["key", "ts", "value", "reason"], "{ctx}: errors schema");
    for (s, cols) in [(&down, ["window_start", "window_end"]), (&meta, ["open_time", "close_time"])] {
        for c in cols {
            assert_eq!(s.field_with_name(c).expect("field").data_type(), &utc, "{ctx}: {c} type");
        }
    }
    // The concatenated batches carry the full schemas too, even when empty.
    assert_eq!(out.down_batch().expect("down").schema(), down, "{ctx}");
    assert_eq!(out.late_batch().expect("late").schema(), late, "{ctx}");
    assert_eq!(out.meta_batch().expect("meta").schema(), meta, "{ctx}");
    assert_eq!(out.errors_batch().expect("errors").schema(), errors, "{ctx}");
}

/// Empty input (no batches) and empty (0-row) batches give no rows and full schemas; empty
/// batches interleaved with a real stream change nothing.
#[test]
fn empty_input_and_empty_batches() {
    let layout = Layout::standard();
    let schema = layout.schema();
    let tumbling = windowers()[0];
    for (op, ordered) in all_ops() {
        let case = simple_case(op, ordered, tumbling, Some(0));
        let ctx = case.describe(0, 1);
        // No batches at all.
        let mut oper = builder_for(&case, &layout).build().expect("build");
        let out = oper.run(std::iter::empty()).expect("run");
        assert_eq!(out.row_counts(), [0, 0, 0, 0], "{ctx}: no input");
        assert_full_schemas(op, &out, &layout, &ctx);
        // Only empty batches.
        let empty = RecordBatch::new_empty(schema.clone());
        let mut oper = builder_for(&case, &layout).build().expect("build");
        let out = oper.run([&empty, &empty, &empty]).expect("run");
        assert_eq!(out.row_counts(), [0, 0, 0, 0], "{ctx}: empty batches");
        assert_full_schemas(op, &out, &layout, &ctx);
        // Empty batches interleaved with a real stream (including a 0-row slice).
        let rows = generate(2);
        let mut batches = Vec::new();
        for (i, chunk) in rows.chunks(11).enumerate() {
            batches.push(empty.clone());
            let b = make_batch(chunk, &layout);
            if i % 2 == 0 {
                batches.push(b.slice(3.min(b.num_rows()), 0));
            }
            batches.push(b);
        }
        batches.push(empty.clone());
        let run = run_engine(&case, &layout, &batches, 2).expect("engine");
        assert_eq!(run.errors.num_rows(), 0, "{ctx}");
        let reference = run_reference(&case.ref_config(), std::slice::from_ref(&rows));
        let order = if ordered { Order::Exact } else { Order::Multiset };
        if let Err(e) = compare(&reference, &run.out, order) {
            panic!("[{ctx} with empty batches interleaved] {e}");
        }
        assert_full_schemas(op, &run.raw, &layout, &ctx);
    }
}

/// Sliced input batches (non-zero offsets into bigger arrays, including slices that skip rows
/// with null keys/timestamps) give the reference's results.
#[test]
fn sliced_input_batches() {
    let layout = Layout::standard();
    let rows = generate(3);
    // One big batch: a junk row (null key and null ts) between every chunk of 5 real rows.
    let mut keys: Vec<Option<String>> = Vec::new();
    let mut ts: Vec<Option<i64>> = Vec::new();
    let mut vals: Vec<Option<f64>> = Vec::new();
    let mut spans: Vec<(usize, usize)> = Vec::new();
    for chunk in rows.chunks(5) {
        keys.push(None);
        ts.push(None);
        vals.push(None);
        spans.push((keys.len(), chunk.len()));
        for r in chunk {
            keys.push(Some(r.key.clone()));
            ts.push(Some(r.ts));
            vals.push(Some(r.value));
        }
    }
    keys.push(None);
    ts.push(None);
    vals.push(None);
    let big = RecordBatch::try_new(
        layout.schema(),
        vec![
            Arc::new(StringArray::from(keys)),
            ts_array(ts, layout.unit, layout.tz),
            Arc::new(Float64Array::from(vals)),
        ],
    )
    .expect("big batch");
    let sliced: Vec<RecordBatch> = spans.iter().map(|&(o, n)| big.slice(o, n)).collect();
    // Every slice is a view at a non-zero offset into the big batch's buffers.
    let big_values = big.column(2).as_primitive::<Float64Type>().values().as_ptr();
    for (b, &(o, _)) in sliced.iter().zip(&spans) {
        assert!(o > 0);
        let values = b.column(2).as_primitive::<Float64Type>().values().as_ptr();
        assert_eq!(values, big_values.wrapping_add(o), "slice at {o} is not a view");
        let nulls = b.column(0).nulls().map(|n| n.offset());
        assert!(nulls.is_none_or(|n| n == o), "key nulls of the slice at {o}: offset {nulls:?}");
    }
    for windower in [windowers()[0], windowers()[2], windowers()[5]] {
        for (op, ordered) in all_ops() {
            for wait in [Some(0), Some(3 * S)] {
                let case = simple_case(op, ordered, windower, wait);
                let ctx = format!("{} (sliced batches of 5)", case.describe(5, 2));
                let run = run_engine(&case, &layout, &sliced, 2).expect("engine");
                assert_eq!(run.errors.num_rows(), 0, "{ctx}: errors");
                let reference = run_reference(&case.ref_config(), std::slice::from_ref(&rows));
                let order = if ordered && !always_unordered(op) { Order::Exact } else { Order::Multiset };
                if let Err(e) = compare(&reference, &run.out, order) {
                    panic!("[{ctx}] {e}");
                }
                // One-row slices: exact per-key sequences.
                let singles: Vec<RecordBatch> =
                    sliced.iter().flat_map(|b| (0..b.num_rows()).map(move |i| b.slice(i, 1))).collect();
                let run = run_engine(&case, &layout, &singles, 1).expect("engine");
                if let Err(e) = compare(&reference, &run.out, Order::Exact) {
                    panic!("[{} (one-row slices)] {e}", case.describe(1, 1));
                }
            }
        }
    }
}

/// Relabels the generator's `kN` keys.
fn relabel(rows: &[RefRow], f: impl Fn(i64) -> String) -> Vec<RefRow> {
    rows.iter()
        .map(|r| {
            let n: i64 = r.key[1..].parse().expect("kN key");
            RefRow { key: f(n), ..r.clone() }
        })
        .collect()
}

/// Runs `rows` through every op and a few windowers with the given layout and compares with
/// the reference (exact per-key order for batch size 1 and ordered mode; multisets otherwise).
fn check_layout(rows: &[RefRow], layout: &Layout, label: &str, depth: Depth) {
    let ws: Vec<RefWindower> = match layout.ref_unit {
        TimeUnit::Microsecond => vec![windowers()[0], windowers()[2], windowers()[4]],
        // Second-based references (unit tests): the same shapes in seconds.
        _ => vec![
            RefWindower::Tumbling { length: 10, align: 3 },
            RefWindower::Sliding { length: 10, offset: 3, align: -2 },
            RefWindower::Session { gap: 3 },
        ],
    };
    let wait_small = if layout.ref_unit == TimeUnit::Second { 3 } else { 3 * S };
    type Plan = (Vec<Option<i64>>, Vec<bool>, Vec<(usize, usize)>);
    let (waits, scopes, batchings): Plan = match depth {
        Depth::Full => (vec![Some(0), Some(wait_small), None], vec![false, true], vec![(1, 1), (WHOLE, 4)]),
        Depth::Light => (vec![Some(0), Some(wait_small)], vec![false], vec![(7, 2)]),
    };
    for &windower in &ws {
        for (op, ordered) in all_ops() {
            for &wait in &waits {
                for &per_stream in &scopes {
                    let case = Case { seed: 0, size: StreamSize::Normal, op, windower, wait, per_stream, ordered };
                    let reference = run_reference(&case.ref_config(), &[rows.to_vec()]);
                    for &(batch, threads) in &batchings {
                        let ctx = format!("{label}: {}", case.describe(batch, threads));
                        let batches = batches_of(rows, batch, layout);
                        let run =
                            run_engine(&case, layout, &batches, threads).unwrap_or_else(|e| panic!("[{ctx}] {e}"));
                        assert_eq!(run.errors.num_rows(), 0, "[{ctx}] errors");
                        let order = if batch == 1 || (ordered && !always_unordered(op)) {
                            Order::Exact
                        } else {
                            Order::Multiset
                        };
                        if let Err(e) = compare(&reference, &run.out, order) {
                            panic!("[{ctx}] {e}");
                        }
                    }
                }
            }
        }
    }
}

/// How many configurations [`check_layout`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Depth {
    /// All ops × 3 windowers × waits {0, small, ∞} × both scopes × batchings {one row per batch
    /// on 1 thread (each with its own dictionary, for dictionary keys), whole input on 4 threads}.
    Full,
    /// All ops × 3 windowers × waits {0, small} × per key × batches of 7 on 2 threads.
    Light,
}

/// `Dictionary(Int32, Utf8)` keys (a different dictionary per batch) give the same windows as
/// Utf8 keys; dictionary keys come out as their values.
#[test]
fn dictionary_keys() {
    let rows = generate(4);
    let layout = Layout { key: KeyKind::Dict, ..Layout::standard() };
    check_layout(&rows, &layout, "Dictionary(Int32, Utf8) key", Depth::Full);
}

/// Dictionary keys whose batches share a dictionary, as a Parquet reader's batches of one row
/// group do: a shard looks each value up once per dictionary, not once per batch, and must not
/// carry those lookups over to the next row group's dictionary.
#[test]
fn dictionary_keys_shared_across_batches() {
    let rows = generate(9);
    let layout = Layout { key: KeyKind::DictShared, ..Layout::standard() };
    check_layout(&rows, &layout, "Dictionary(Int32, Utf8) key shared by batches", Depth::Full);
    check_layout(&rows, &layout, "Dictionary(Int32, Utf8) key shared by batches", Depth::Light);
}

/// `Int64` keys (negative and large values) give the same windows as Utf8 keys; the key
/// column keeps its type on the outputs.
#[test]
fn integer_keys() {
    let rows = relabel(&generate(5), |n| (n * 1_000_003 - 5_000_000).to_string());
    let layout = Layout { key: KeyKind::Int64, ..Layout::standard() };
    check_layout(&rows, &layout, "Int64 key", Depth::Full);
    // Output key type.
    let case = simple_case(RefOp::Count, false, windowers()[0], Some(0));
    let run = run_engine(&case, &layout, &batches_of(&rows, WHOLE, &layout), 1).expect("run");
    for s in [&run.raw.schemas()[0], &run.raw.schemas()[1], &run.raw.schemas()[2]] {
        assert_eq!(s.field_with_name("key").expect("key").data_type(), &DataType::Int64);
    }
}

/// A two-column key (`KeySpec::columns(["a", "b"])`, Utf8 + Int64): rows share a key iff both
/// columns are equal, including pairs that agree in one column only.
#[test]
fn multi_column_keys() {
    // a = x{n % 3}, b = n / 3: many pairs share `a` or `b` but not both.
    let rows = relabel(&generate(6), |n| format!("x{}|{}", n % 3, n / 3));
    let layout = Layout { key: KeyKind::Multi, ..Layout::standard() };
    check_layout(&rows, &layout, "multi-column key (a, b)", Depth::Full);
}

/// The same instants in s, ms, µs and ns, with and without time zone, give the same windows
/// (spec §16 item 12); window bounds are `Timestamp(unit, "UTC")` in the input's unit; `late`
/// and max/min keep the input's `ts` type.
#[test]
fn timestamp_units_and_time_zones() {
    // Whole seconds (representable in every unit), pre-epoch and around A.
    let micro = generate(8); // even seed: starts 40 s before the epoch
    let rows: Vec<RefRow> = micro.iter().map(|r| RefRow { ts: r.ts.div_euclid(S), ..r.clone() }).collect();
    for unit in [TimeUnit::Second, TimeUnit::Millisecond, TimeUnit::Microsecond, TimeUnit::Nanosecond] {
        for tz in [Some("UTC"), Some("+05:30"), Some("America/New_York"), None] {
            let layout = Layout { key: KeyKind::Utf8, unit, tz, ref_unit: TimeUnit::Second };
            let label = format!("ts unit {unit:?}, tz {tz:?}");
            check_layout(&rows, &layout, &label, Depth::Light);
            // Output types.
            for (op, ordered) in all_ops() {
                let case = simple_case(op, ordered, RefWindower::Tumbling { length: 10, align: 3 }, Some(0));
                let run = run_engine(&case, &layout, &batches_of(&rows, 9, &layout), 1).expect("run");
                assert_full_schemas(op, &run.raw, &layout, &label);
                let [down, late, _, errors] = run.raw.schemas();
                assert_eq!(
                    late.field_with_name("ts").expect("ts").data_type(),
                    &layout.ts_type(),
                    "{label}: late keeps the input ts type (spec §10.3)"
                );
                assert_eq!(
                    errors.field_with_name("ts").expect("ts").data_type(),
                    &layout.ts_type(),
                    "{label}: errors keeps the input ts type (spec §10.5)"
                );
                if matches!(op, RefOp::Max | RefOp::Min | RefOp::ReduceSum) {
                    assert_eq!(
                        down.field_with_name("ts").expect("ts").data_type(),
                        &layout.ts_type(),
                        "{label} {}: result columns keep their types (spec §10.2)",
                        op_name(op)
                    );
                }
            }
        }
    }
}

/// Nanosecond timestamps are exact: 1 ns before a window end is in the window, the end is not.
#[test]
fn nanosecond_timestamps_are_exact() {
    let layout =
        Layout { key: KeyKind::Utf8, unit: TimeUnit::Nanosecond, tz: Some("UTC"), ref_unit: TimeUnit::Nanosecond };
    let ns = 1_000_000_000;
    let rows = vec![
        RefRow::new("a", 10 * ns - 1, 1.0),
        RefRow::new("a", 10 * ns, 2.0),
        RefRow::new("a", -1, 3.0),
        RefRow::new("a", 0, 4.0),
        RefRow::new("a", 20 * ns + 1, 5.0),
    ];
    let case = simple_case(RefOp::Collect, true, RefWindower::Tumbling { length: 10 * ns, align: 0 }, None);
    let run = run_engine(&case, &layout, &batches_of(&rows, WHOLE, &layout), 1).expect("run");
    let reference = run_reference(&case.ref_config(), std::slice::from_ref(&rows));
    compare(&reference, &run.out, Order::Exact).unwrap_or_else(|e| panic!("{e}"));
    let got: Vec<(i64, RefResult)> = run.out.down.iter().map(|d| (d.window_id, d.result.clone())).collect();
    assert_eq!(
        got,
        vec![
            (-1, RefResult::Collect(vec![3.0])),
            (0, RefResult::Collect(vec![4.0, 1.0])),
            (1, RefResult::Collect(vec![2.0])),
            (2, RefResult::Collect(vec![5.0])),
        ]
    );
}

/// Durations and `align_to` not representable in the input's unit are rejected at build.
#[test]
fn unrepresentable_align_or_duration_is_rejected() {
    let layout =
        Layout { key: KeyKind::Utf8, unit: TimeUnit::Second, tz: Some("UTC"), ref_unit: TimeUnit::Microsecond };
    for w in [
        RefWindower::Tumbling { length: 10 * S, align: 3_250_000 },
        RefWindower::Tumbling { length: 2_500_000, align: 0 },
        RefWindower::Session { gap: 1_500_000 },
    ] {
        let case = simple_case(RefOp::Count, false, w, Some(0));
        assert!(
            builder_for(&case, &layout).build().is_err(),
            "{} on a seconds column must be rejected",
            windower_name(w)
        );
    }
    let case = simple_case(RefOp::Count, false, RefWindower::Tumbling { length: 10 * S, align: 0 }, Some(1_500_000));
    assert!(builder_for(&case, &layout).build().is_err(), "wait 1.5 s on seconds");
}

/// count, reduce, max and min are always unordered: asking for ordered = true fails at build.
#[test]
fn ordered_refused_for_always_unordered_ops() {
    let layout = Layout::standard();
    let schema = layout.schema();
    for op in [RefOp::Count, RefOp::ReduceSum, RefOp::Max, RefOp::Min] {
        let b = build_operator(
            op,
            false,
            &schema,
            &["key"],
            build_clock(Some(0), layout.ref_unit),
            build_windower(windowers()[0], layout.ref_unit),
        );
        assert!(b.clone().build().is_ok(), "{}", op_name(op));
        assert!(b.ordered(true).build().is_err(), "{} ordered=true", op_name(op));
    }
}

// ---------------------------------------------------------------------------------------------
// errors output
// ---------------------------------------------------------------------------------------------

/// A batch with nullable key/ts: `None` makes a null.
fn nullable_batch(layout: &Layout, rows: &[(Option<&str>, Option<i64>, f64)]) -> RecordBatch {
    let keys: Vec<Option<&str>> = rows.iter().map(|r| r.0).collect();
    let key: ArrayRef = match layout.key {
        // Null keys alternate between a null index and an index to a null value.
        KeyKind::Dict => {
            let mut values: Vec<Option<&str>> = vec![None];
            let indices: Vec<Option<i32>> = keys
                .iter()
                .enumerate()
                .map(|(r, k)| match k {
                    None if r % 2 == 0 => None,
                    None => Some(0),
                    Some(k) => {
                        values.push(Some(k));
                        Some(values.len() as i32 - 1)
                    }
                })
                .collect();
            Arc::new(
                DictionaryArray::<Int32Type>::try_new(indices.into(), Arc::new(StringArray::from(values)))
                    .expect("dictionary"),
            )
        }
        _ => Arc::new(StringArray::from(keys)),
    };
    RecordBatch::try_new(
        layout.schema(),
        vec![
            key,
            ts_array(rows.iter().map(|r| r.1).collect(), layout.unit, layout.tz),
            Arc::new(Float64Array::from(rows.iter().map(|r| r.2).collect::<Vec<_>>())),
        ],
    )
    .expect("batch")
}

/// `(value, reason)` of every `errors` row, in order.
fn error_rows(errors: &RecordBatch) -> Vec<(f64, String)> {
    let v = errors.column_by_name("value").expect("value").as_primitive::<Float64Type>();
    let r = errors.column_by_name("reason").expect("reason").as_string::<i32>();
    (0..errors.num_rows()).map(|i| (v.value(i), r.value(i).to_string())).collect()
}

/// Null keys and null event times go to `errors` with their reasons (other rows are windowed
/// as if the bad rows were absent); strict mode makes `push` fail naming the row.
#[test]
fn null_keys_and_null_times_go_to_errors() {
    for key in [KeyKind::Utf8, KeyKind::Dict] {
        null_keys_and_null_times_go_to_errors_with(&Layout { key, ..Layout::standard() });
    }
}

fn null_keys_and_null_times_go_to_errors_with(layout: &Layout) {
    let layout = *layout;
    let input: &[(Option<&str>, Option<i64>, f64)] = &[
        (Some("a"), Some(S), 1.0),
        (None, Some(2 * S), 2.0),
        (Some("a"), None, 3.0),
        (Some("b"), Some(12 * S), 4.0),
        (None, None, 5.0),
        (Some("a"), Some(14 * S), 6.0),
        (Some("a"), Some(5 * S), 7.0),
    ];
    let good: Vec<RefRow> = input.iter().filter_map(|&(k, t, v)| Some(RefRow::new(k?, t?, v))).collect();
    for (op, ordered) in all_ops() {
        for batch in [1, 3, WHOLE] {
            let case = simple_case(op, ordered, windowers()[0], Some(0));
            let ctx = case.describe(batch, 2);
            let batches: Vec<RecordBatch> =
                input.chunks(batch.min(input.len())).map(|c| nullable_batch(&layout, c)).collect();
            let run = run_engine(&case, &layout, &batches, 2).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                error_rows(&run.errors),
                vec![
                    (2.0, "null key column \"key\"".to_string()),
                    (3.0, "null event time".to_string()),
                    (5.0, "null key column \"key\"".to_string()),
                ],
                "[{ctx}] errors"
            );
            // The original row is kept on errors (row 1: key null, ts 2 s).
            let ts = run
                .errors
                .column_by_name("ts")
                .expect("ts")
                .as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
            assert_eq!(ts.value(0), 2 * S, "[{ctx}] errors keeps the row");
            assert!(ts.is_null(1), "[{ctx}] errors keeps the null ts");
            let reference = run_reference(&case.ref_config(), std::slice::from_ref(&good));
            let order = if batch == 1 || (ordered && !always_unordered(op)) { Order::Exact } else { Order::Multiset };
            compare(&reference, &run.out, order).unwrap_or_else(|e| panic!("[{ctx}] {e}"));
        }
    }
    // Strict mode: push fails naming the row position and the reason.
    for (bad, bad_row, reason) in [(input[1], 1usize, "null key column \"key\""), (input[2], 2, "null event time")] {
        let case = simple_case(RefOp::Count, false, windowers()[0], Some(0));
        let mut op = builder_for(&case, &layout).strict(true).build().expect("build");
        let first = nullable_batch(&layout, &input[..1]);
        op.push(&first).expect("a good batch passes in strict mode");
        // Good rows, then the bad one at position `bad_row`.
        let mut rows: Vec<(Option<&str>, Option<i64>, f64)> = vec![input[3], input[5]];
        rows.truncate(bad_row);
        rows.push(bad);
        let batch = nullable_batch(&layout, &rows);
        let err = op.push(&batch).expect_err("strict mode must fail on a bad row").to_string();
        assert!(
            err.contains(&format!("row {bad_row}")) && err.contains(reason),
            "strict error should name row {bad_row} and {reason:?}: {err}"
        );
    }
    // Multi-column key: the reason names the null column.
    let mlayout = Layout { key: KeyKind::Multi, ..Layout::standard() };
    let batch = RecordBatch::try_new(
        mlayout.schema(),
        vec![
            Arc::new(StringArray::from(vec![Some("x"), Some("x"), None])),
            Arc::new(Int64Array::from(vec![Some(1), None, Some(1)])),
            ts_array(vec![Some(S), Some(S), Some(S)], mlayout.unit, mlayout.tz),
            Arc::new(Float64Array::from(vec![1.0, 2.0, 3.0])),
        ],
    )
    .expect("batch");
    let case = simple_case(RefOp::Count, false, windowers()[0], Some(0));
    let run = run_engine(&case, &mlayout, &[batch], 1).expect("run");
    assert_eq!(
        error_rows(&run.errors),
        vec![(2.0, "null key column \"b\"".to_string()), (3.0, "null key column \"a\"".to_string()),]
    );
    assert_eq!(run.out.down.len(), 1);
}

/// A timestamp near `i64::MAX` nanoseconds, whose window end is not representable, goes to
/// `errors` with reason `window bounds out of range` (and fails strict mode), not a panic.
#[test]
fn window_bounds_out_of_range_go_to_errors() {
    let layout =
        Layout { key: KeyKind::Utf8, unit: TimeUnit::Nanosecond, tz: Some("UTC"), ref_unit: TimeUnit::Nanosecond };
    let ns = 1_000_000_000i64;
    let input: &[(Option<&str>, Option<i64>, f64)] = &[
        (Some("a"), Some(ns), 1.0),
        (Some("a"), Some(i64::MAX - 5), 2.0),
        (Some("b"), Some(i64::MAX), 3.0),
        (Some("a"), Some(2 * ns), 4.0),
    ];
    for (op, ordered) in all_ops() {
        for w in [
            RefWindower::Tumbling { length: 10 * ns, align: 0 },
            RefWindower::Sliding { length: 10 * ns, offset: 3 * ns, align: 0 },
        ] {
            // wait = forever so that the good row at 2 s stays on time after the huge ones
            // (were they windowed).
            let case = simple_case(op, ordered, w, None);
            let ctx = case.describe(WHOLE, 1);
            let run = run_engine(&case, &layout, &[nullable_batch(&layout, input)], 1)
                .unwrap_or_else(|e| panic!("[{ctx}] {e}"));
            assert_eq!(
                error_rows(&run.errors),
                vec![(2.0, "window bounds out of range".to_string()), (3.0, "window bounds out of range".to_string()),],
                "[{ctx}]"
            );
            let good = vec![RefRow::new("a", ns, 1.0), RefRow::new("a", 2 * ns, 4.0)];
            let reference = run_reference(&case.ref_config(), &[good]);
            compare(&reference, &run.out, Order::Exact).unwrap_or_else(|e| panic!("[{ctx}] {e}"));
        }
    }
    let case = simple_case(RefOp::Count, false, RefWindower::Tumbling { length: 10 * ns, align: 0 }, Some(0));
    let mut op = builder_for(&case, &layout).strict(true).build().expect("build");
    let err = op.push(&nullable_batch(&layout, input)).expect_err("strict").to_string();
    assert!(err.contains("row 1") && err.contains("window bounds out of range"), "{err}");
}

// =============================================================================================
// join_window (spec §8.6, §6, §11.4, §12; §16 items 3, 16, 19, 23)
// =============================================================================================
//
// The reference takes each side's rows and interleaves them itself by the replay rule of
// §11.4 (smallest next event time, ties to the lower side); the engine must do the same for
// any micro-batch boundaries of the sides and any order in which the sides' batches are
// pushed. The sides have different schemas:
//
// * side 0: `key: Utf8, ts: Timestamp(µs, "UTC"), value: Float64` (the standard layout);
// * side 1: the same plus `n: Int64` (derived from the row, checked on every output row);
// * side 2: `note: Utf8, value: Float64, ts: Timestamp(µs), user: Utf8` (other column order,
//   key column named `user`, no time zone; `note` is derived from the row and checked).
//
// What is compared (per key):
//
// * `late`: exact per-key sequence, always (with the row's side and only its side's struct
//   non-null);
// * `down` and `meta`: exact per-key sequence in ordered mode and when every side is pushed
//   one row per batch in lockstep (each push releases exactly one row to the engine, so every
//   row is its own micro-batch, the reference's model); per-key multisets otherwise;
// * `down` also exactly in every batching for `complete`/`running`: their rows are emitted only
//   when a row is applied or a merge happens (§7.2 step 1, application order), never on close;
// * `down` window bounds: tumbling/sliding exact; sessions contain the row's timestamps, and
//   in `final` mode equal the window's `meta` bounds;
// * `errors`: empty.

/// The nine (insert, emit) combinations.
const JOIN_MODES: [(RefInsert, RefEmit); 9] = [
    (RefInsert::First, RefEmit::Complete),
    (RefInsert::First, RefEmit::Final),
    (RefInsert::First, RefEmit::Running),
    (RefInsert::Last, RefEmit::Complete),
    (RefInsert::Last, RefEmit::Final),
    (RefInsert::Last, RefEmit::Running),
    (RefInsert::Product, RefEmit::Complete),
    (RefInsert::Product, RefEmit::Final),
    (RefInsert::Product, RefEmit::Running),
];

fn insert_name(m: RefInsert) -> &'static str {
    match m {
        RefInsert::First => "first",
        RefInsert::Last => "last",
        RefInsert::Product => "product",
    }
}

fn emit_name(m: RefEmit) -> &'static str {
    match m {
        RefEmit::Complete => "complete",
        RefEmit::Final => "final",
        RefEmit::Running => "running",
    }
}

fn engine_insert(m: RefInsert) -> JoinInsert {
    match m {
        RefInsert::First => JoinInsert::First,
        RefInsert::Last => JoinInsert::Last,
        RefInsert::Product => JoinInsert::Product,
    }
}

fn engine_emit(m: RefEmit) -> JoinEmit {
    match m {
        RefEmit::Complete => JoinEmit::Complete,
        RefEmit::Final => JoinEmit::Final,
        RefEmit::Running => JoinEmit::Running,
    }
}

// ---------------------------------------------------------------------------------------------
// Side schemas and batches
// ---------------------------------------------------------------------------------------------

/// The most sides a join test uses.
const MAX_SIDES: usize = 3;

/// The schema of side `side` (see the section comment).
fn side_schema(side: usize) -> SchemaRef {
    let utc = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    match side {
        0 => Layout::standard().schema(),
        1 => Arc::new(Schema::new(vec![
            Field::new("key", DataType::Utf8, true),
            Field::new("ts", utc, true),
            Field::new("value", DataType::Float64, true),
            Field::new("n", DataType::Int64, true),
        ])),
        2 => Arc::new(Schema::new(vec![
            Field::new("note", DataType::Utf8, true),
            Field::new("value", DataType::Float64, true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, None), true),
            Field::new("user", DataType::Utf8, true),
        ])),
        _ => panic!("join tests use at most {MAX_SIDES} sides"),
    }
}

/// The key column of side `side`.
fn side_key(side: usize) -> &'static str {
    if side == 2 { "user" } else { "key" }
}

/// Side 1's extra `n` column, derived from the row.
fn side1_n(ts: i64, value: f64) -> i64 {
    ts * 3 + (value * 4.0) as i64
}

/// Side 2's extra `note` column, derived from the row.
fn side2_note(ts: i64, value: f64) -> String {
    format!("{value}@{ts}")
}

/// One batch of side `side` from reference rows (timestamps in µs).
fn make_side_batch(side: usize, rows: &[RefRow]) -> RecordBatch {
    let keys: ArrayRef = Arc::new(StringArray::from(rows.iter().map(|r| r.key.as_str()).collect::<Vec<_>>()));
    let values: ArrayRef = Arc::new(Float64Array::from(rows.iter().map(|r| r.value).collect::<Vec<_>>()));
    let ts: Vec<Option<i64>> = rows.iter().map(|r| Some(r.ts)).collect();
    let cols: Vec<ArrayRef> = match side {
        0 => vec![keys, ts_array(ts, TimeUnit::Microsecond, Some("UTC")), values],
        1 => vec![
            keys,
            ts_array(ts, TimeUnit::Microsecond, Some("UTC")),
            values,
            Arc::new(Int64Array::from(rows.iter().map(|r| side1_n(r.ts, r.value)).collect::<Vec<_>>())),
        ],
        2 => vec![
            Arc::new(StringArray::from(rows.iter().map(|r| side2_note(r.ts, r.value)).collect::<Vec<_>>())),
            values,
            ts_array(ts, TimeUnit::Microsecond, None),
            keys,
        ],
        _ => panic!("join tests use at most {MAX_SIDES} sides"),
    };
    RecordBatch::try_new(side_schema(side), cols).expect("side batch")
}

// ---------------------------------------------------------------------------------------------
// Configuration, generator and batchings
// ---------------------------------------------------------------------------------------------

/// One join configuration (everything but the batching).
#[derive(Clone, Copy, Debug)]
struct JoinCase {
    seed: u64,
    n_sides: usize,
    insert: RefInsert,
    emit: RefEmit,
    windower: RefWindower,
    /// `None` = `EventClock::wait_forever()`.
    wait: Option<i64>,
    per_stream: bool,
    ordered: bool,
}

impl JoinCase {
    fn ref_config(&self) -> RefConfig {
        RefConfig {
            windower: self.windower,
            op: RefOp::Join { insert: self.insert, emit: self.emit },
            wait: self.wait,
            ordered: self.ordered,
            per_stream: self.per_stream,
        }
    }

    fn describe(&self, b: &JoinBatching) -> String {
        format!(
            "join seed={} sides={} insert={} emit={} windower={} wait={} scope={} ordered={} {}",
            self.seed,
            self.n_sides,
            insert_name(self.insert),
            emit_name(self.emit),
            windower_name(self.windower),
            wait_name(self.wait),
            if self.per_stream { "PerStream" } else { "PerKey" },
            self.ordered,
            b.describe(self.n_sides),
        )
    }
}

/// How the sides' batches are pushed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum JoinPush {
    /// One row per batch on every side, pushed so that every push releases exactly one row to
    /// the engine (the replay order, one step ahead): every row is its own micro-batch.
    Lockstep,
    /// The sides' batches in a seeded random interleaving (each side in its own order), each
    /// side ended at a random point after its last batch, then `finish`.
    Random,
    /// `JoinOperator::run`: all of side 0, then all of side 1, …
    BySide,
}

/// `RANDOM_CHUNKS` as a side's batch size: seeded random batch sizes 1..=13.
const RANDOM_CHUNKS: usize = 0;

/// One batching of a join: the batch size of each side (chosen independently), how the
/// batches are pushed, and the thread count.
#[derive(Clone, Copy, Debug)]
struct JoinBatching {
    sizes: [usize; MAX_SIDES],
    push: JoinPush,
    threads: usize,
}

impl JoinBatching {
    fn describe(&self, n_sides: usize) -> String {
        let sizes: Vec<String> = self.sizes[..n_sides]
            .iter()
            .map(|&s| if s == RANDOM_CHUNKS { "random".to_string() } else { batch_name(s) })
            .collect();
        format!("batches=[{}] push={:?} threads={}", sizes.join(","), self.push, self.threads)
    }
}

/// The batchings every join case runs: sizes 1, 7, 1000, whole and random per side, chosen
/// independently per side; 1, 2 and 4 threads.
const JOIN_BATCHINGS: &[JoinBatching] = &[
    JoinBatching { sizes: [1, 1, 1], push: JoinPush::Lockstep, threads: 1 },
    JoinBatching { sizes: [1, 1, 1], push: JoinPush::Lockstep, threads: 4 },
    JoinBatching { sizes: [1, 1, 1], push: JoinPush::Random, threads: 2 },
    JoinBatching { sizes: [7, 1000, 1], push: JoinPush::Random, threads: 1 },
    JoinBatching { sizes: [1000, WHOLE, 7], push: JoinPush::Random, threads: 4 },
    JoinBatching { sizes: [WHOLE, 7, WHOLE], push: JoinPush::BySide, threads: 2 },
    JoinBatching { sizes: [RANDOM_CHUNKS, RANDOM_CHUNKS, RANDOM_CHUNKS], push: JoinPush::Random, threads: 4 },
];

/// How many rows of the generated stream a join case uses (keeps rows per key and window
/// small, so `product` outputs stay small).
const JOIN_ROWS: usize = 110;

/// The per-side input of a join case: the first `n_rows` rows of [`generate`]`(seed)`, each
/// given to a side at random (each side keeps the generator's order). Out-of-order rows,
/// duplicates and window-edge timestamps come from the generator; rows of one side are made
/// late by rows of another side whenever the replay interleaving puts a later row of one
/// side before an earlier row of another.
fn join_input(seed: u64, n_sides: usize, n_rows: usize) -> Vec<Vec<RefRow>> {
    let rows = generate(seed);
    let mut rng = SmallRng::seed_from_u64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ n_sides as u64);
    let mut sides: Vec<Vec<RefRow>> = vec![Vec::new(); n_sides];
    for r in rows.into_iter().take(n_rows) {
        sides[rng.random_range(0..n_sides)].push(r);
    }
    sides
}

/// Windowers of the join sweep.
fn join_windowers() -> Vec<RefWindower> {
    vec![
        RefWindower::Tumbling { length: 10 * S, align: 3_250_000 },
        RefWindower::Sliding { length: 10 * S, offset: 3 * S, align: 0 },
        RefWindower::Sliding { length: 10 * S, offset: 5 * S, align: -2_750_000 },
        RefWindower::Session { gap: S },
        RefWindower::Session { gap: 3 * S },
    ]
}

/// The number of sides of the `i`-th case (three sides most often).
fn join_side_count(i: usize) -> usize {
    [3, 2, 3, 1, 3, 2][i % 6]
}

/// The cases of the join sweep for one (insert, emit) mode: every windower × wait {0, 3 s, ∞}
/// × scope × ordered, with the number of sides (1, 2, 3) and the seed rotating.
fn join_cases(insert: RefInsert, emit: RefEmit) -> Vec<JoinCase> {
    let salt = JOIN_MODES.iter().position(|&m| m == (insert, emit)).expect("a join mode");
    let mut cases = Vec::new();
    for windower in join_windowers() {
        for wait in [Some(0), Some(3 * S), None] {
            for per_stream in [false, true] {
                for ordered in [true, false] {
                    let i = cases.len() + salt;
                    cases.push(JoinCase {
                        seed: 21 + (i % 7) as u64,
                        n_sides: join_side_count(i),
                        insert,
                        emit,
                        windower,
                        wait,
                        per_stream,
                        ordered,
                    });
                }
            }
        }
    }
    cases
}

// ---------------------------------------------------------------------------------------------
// Engine runner
// ---------------------------------------------------------------------------------------------

/// One step of driving a join.
enum JoinAction {
    Push(usize, RecordBatch),
    End(usize),
}

/// How a join is driven.
enum JoinSchedule {
    /// Explicit pushes and side ends, then `finish`.
    Actions(Vec<JoinAction>),
    /// `JoinOperator::run` over each side's batches.
    Run(Vec<Vec<RecordBatch>>),
}

/// Splits one side's rows into batches of `size` (`RANDOM_CHUNKS`: random sizes 1..=13).
fn side_batches(side: usize, rows: &[RefRow], size: usize, rng: &mut SmallRng) -> Vec<RecordBatch> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < rows.len() {
        let n = if size == RANDOM_CHUNKS { rng.random_range(1..=13) } else { size.min(rows.len() - i) };
        let n = n.min(rows.len() - i);
        out.push(make_side_batch(side, &rows[i..i + n]));
        i += n;
    }
    out
}

/// The push schedule of a batching (seeded by the case seed and the batching).
fn join_schedule(sides: &[Vec<RefRow>], b: &JoinBatching, seed: u64) -> JoinSchedule {
    let mut rng = SmallRng::seed_from_u64(seed ^ 0xB00C ^ ((b.sizes[0] as u64) << 20) ^ b.threads as u64);
    match b.push {
        JoinPush::Lockstep => {
            // Push every side's first row (ending the empty sides first); from then on, after
            // each release (which §11.4 determines), push the released side's next row or end
            // it. Every push or end then releases exactly one row.
            let mut actions = Vec::new();
            let mut next = vec![0usize; sides.len()];
            for (s, rows) in sides.iter().enumerate() {
                if rows.is_empty() {
                    actions.push(JoinAction::End(s));
                }
            }
            for (s, rows) in sides.iter().enumerate() {
                if !rows.is_empty() {
                    actions.push(JoinAction::Push(s, make_side_batch(s, &rows[..1])));
                    next[s] = 1;
                }
            }
            for (s, _) in interleave_sides(sides) {
                if next[s] < sides[s].len() {
                    actions.push(JoinAction::Push(s, make_side_batch(s, &sides[s][next[s]..next[s] + 1])));
                    next[s] += 1;
                } else {
                    actions.push(JoinAction::End(s));
                }
            }
            JoinSchedule::Actions(actions)
        }
        JoinPush::BySide => JoinSchedule::Run(
            sides.iter().enumerate().map(|(s, rows)| side_batches(s, rows, b.sizes[s], &mut rng)).collect(),
        ),
        JoinPush::Random => {
            let mut queues: Vec<std::collections::VecDeque<RecordBatch>> =
                sides.iter().enumerate().map(|(s, rows)| side_batches(s, rows, b.sizes[s], &mut rng).into()).collect();
            let mut ended = vec![false; sides.len()];
            let mut actions = Vec::new();
            loop {
                let open: Vec<usize> = (0..sides.len()).filter(|&s| !ended[s]).collect();
                if open.is_empty() {
                    break;
                }
                let s = open[rng.random_range(0..open.len())];
                match queues[s].pop_front() {
                    Some(batch) => actions.push(JoinAction::Push(s, batch)),
                    None => {
                        // Some sides are ended explicitly, the others by `finish`.
                        if rng.random_bool(0.7) {
                            actions.push(JoinAction::End(s));
                        }
                        ended[s] = true;
                    }
                }
            }
            JoinSchedule::Actions(actions)
        }
    }
}

fn frozen_time() -> TimeSource {
    TimeSource::Frozen(DateTime::from_timestamp(1_717_200_000, 0).expect("frozen time"))
}

/// The join of `case`, in replay mode with a frozen time source.
fn join_builder(case: &JoinCase) -> JoinOpBuilder {
    let keyed: Vec<KeyedStream> = (0..case.n_sides).map(|s| key_on(&side_schema(s), [side_key(s)])).collect();
    join_window(
        "join",
        &keyed,
        build_clock(case.wait, TimeUnit::Microsecond),
        build_windower(case.windower, TimeUnit::Microsecond),
    )
    .insert_mode(engine_insert(case.insert))
    .emit_mode(engine_emit(case.emit))
    .ordered(case.ordered)
    .scope(if case.per_stream { WatermarkScope::PerStream } else { WatermarkScope::PerKey })
    .time_source(frozen_time())
}

/// Drives a built join through a schedule; `one_row_each` checks that every action released
/// at most one row to the window operator underneath (the lockstep schedule's promise).
fn drive_join(op: &mut JoinOperator, schedule: &JoinSchedule, one_row_each: bool) -> Result<WindowOut, String> {
    let mut raw = op.inner().empty_output();
    match schedule {
        JoinSchedule::Actions(actions) => {
            for (i, a) in actions.iter().enumerate() {
                let before = op.inner().metrics().rows_in;
                let out = match a {
                    JoinAction::Push(s, b) => {
                        op.push(*s, b).map_err(|e| format!("push #{i} (side {s}) failed: {e}"))?
                    }
                    JoinAction::End(s) => op.end_side(*s).map_err(|e| format!("end_side({s}) failed: {e}"))?,
                };
                let released = op.inner().metrics().rows_in - before;
                if one_row_each && released > 1 {
                    return Err(format!("lockstep action #{i} released {released} rows at once (test harness)"));
                }
                raw.extend(out);
            }
            raw.extend(op.finish().map_err(|e| format!("finish failed: {e}"))?);
        }
        JoinSchedule::Run(sides) => raw.extend(op.run(sides).map_err(|e| format!("run failed: {e}"))?),
    }
    Ok(raw)
}

/// A side's struct column of one output batch, decoded: per row `(ts, value)` or null, with
/// the side's extra column checked against the row.
fn decode_side_struct(b: &RecordBatch, side: usize) -> Result<Vec<Option<(i64, f64)>>, String> {
    let name = format!("side_{side}");
    let c = column(b, &name)?;
    let st = c.as_struct_opt().ok_or_else(|| format!("{name} has type {}", c.data_type()))?;
    let child = |f: &str| st.column_by_name(f).ok_or_else(|| format!("{name} has no field {f:?}"));
    let want: Vec<String> = field_names(&side_schema(side));
    let got: Vec<String> = st.fields().iter().map(|f| f.name().clone()).collect();
    if got != want {
        return Err(format!("{name} fields {got:?}, want side {side}'s columns {want:?}"));
    }
    let ts = cast(child("ts")?, &DataType::Int64).map_err(|e| e.to_string())?;
    let ts = ts.as_primitive::<Int64Type>();
    let values = child("value")?.as_primitive_opt::<Float64Type>().ok_or("value is not f64")?;
    let keys = cast(child(side_key(side))?, &DataType::Utf8).map_err(|e| e.to_string())?;
    let keys = keys.as_string::<i32>();
    let out_keys = decode_keys(b, &["key"])?;
    let mut out = Vec::with_capacity(b.num_rows());
    for (i, out_key) in out_keys.iter().enumerate() {
        if st.is_null(i) {
            out.push(None);
            continue;
        }
        if ts.is_null(i) || values.is_null(i) || keys.is_null(i) {
            return Err(format!("{name} row {i}: null field in a non-null side row"));
        }
        let (t, v) = (ts.value(i), values.value(i));
        if keys.value(i) != out_key {
            return Err(format!("{name} row {i}: side row key {:?} on output key {out_key:?}", keys.value(i)));
        }
        match side {
            1 => {
                let n = child("n")?.as_primitive_opt::<Int64Type>().ok_or("n is not i64")?;
                if n.is_null(i) || n.value(i) != side1_n(t, v) {
                    return Err(format!("{name} row {i}: extra column n does not belong to the row ({t}, {v})"));
                }
            }
            2 => {
                let note = child("note")?.as_string_opt::<i32>().ok_or("note is not Utf8")?;
                if note.is_null(i) || note.value(i) != side2_note(t, v) {
                    return Err(format!("{name} row {i}: extra column note does not belong to the row ({t}, {v})"));
                }
            }
            _ => {}
        }
        out.push(Some((t, v)));
    }
    Ok(out)
}

/// A `down` row's window bounds, for the bound checks.
struct DownBounds {
    key: String,
    window_id: i64,
    start: i64,
    end: i64,
    /// The timestamps of the row's non-null sides.
    ts: Vec<i64>,
}

/// What the engine produced for a join, decoded.
struct JoinRun {
    out: RefOutput,
    bounds: Vec<DownBounds>,
    errors: RecordBatch,
}

fn decode_join(n_sides: usize, raw: &WindowOut) -> Result<JoinRun, String> {
    let layout = Layout::standard();
    let mut out = RefOutput::default();
    let mut bounds = Vec::new();
    for b in &raw.down {
        let keys = decode_keys(b, &["key"])?;
        let ids = decode_i64(b, "window_id")?;
        let starts = decode_ts(b, "window_start", &layout)?;
        let ends = decode_ts(b, "window_end", &layout)?;
        let sides: Vec<Vec<Option<(i64, f64)>>> =
            (0..n_sides).map(|s| decode_side_struct(b, s)).collect::<Result<_, _>>()?;
        for i in 0..b.num_rows() {
            let row: Vec<Option<(i64, f64)>> = sides.iter().map(|s| s[i]).collect();
            bounds.push(DownBounds {
                key: keys[i].clone(),
                window_id: ids[i],
                start: starts[i],
                end: ends[i],
                ts: row.iter().flatten().map(|r| r.0).collect(),
            });
            out.down.push(RefDown { key: keys[i].clone(), window_id: ids[i], result: RefResult::Join(row) });
        }
    }
    for b in &raw.late {
        let keys = decode_keys(b, &["key"])?;
        let ids = decode_i64(b, "window_id")?;
        let c = column(b, "side")?;
        let side = c.as_primitive_opt::<Int32Type>().ok_or_else(|| format!("late side has type {}", c.data_type()))?;
        let sides: Vec<Vec<Option<(i64, f64)>>> =
            (0..n_sides).map(|s| decode_side_struct(b, s)).collect::<Result<_, _>>()?;
        for i in 0..b.num_rows() {
            let s = side.value(i) as usize;
            if s >= n_sides {
                return Err(format!("late row {i}: side {s} of {n_sides}"));
            }
            let row = sides[s][i].ok_or_else(|| format!("late row {i}: side {s}'s struct is null"))?;
            if let Some(other) = (0..n_sides).find(|&o| o != s && sides[o][i].is_some()) {
                return Err(format!("late row {i} of side {s}: side {other}'s struct is not null"));
            }
            out.late.push(RefLate { key: keys[i].clone(), window_id: ids[i], side: Some(s), ts: row.0, value: row.1 });
        }
    }
    out.meta = decode_meta(&layout, raw)?;
    let errors = raw.errors_batch().map_err(|e| e.to_string())?;
    Ok(JoinRun { out, bounds, errors })
}

/// Builds the join of `case`, drives it and decodes the outputs.
fn run_join_engine(case: &JoinCase, schedule: &JoinSchedule, b: &JoinBatching) -> Result<JoinRun, String> {
    let mut op = join_builder(case).threads(b.threads).build().map_err(|e| format!("build failed: {e}"))?;
    let raw = drive_join(&mut op, schedule, b.push == JoinPush::Lockstep)?;
    decode_join(case.n_sides, &raw)
}

/// `down` window bounds (spec §10.2): tumbling/sliding exactly the window's; sessions contain
/// the row's timestamps and, for `final` (emitted at close), equal the window's `meta`.
fn check_join_bounds(case: &JoinCase, run: &JoinRun) -> Result<(), String> {
    let fixed = match case.windower {
        RefWindower::Tumbling { length, align } => Some((length, length, align)),
        RefWindower::Sliding { length, offset, align } => Some((length, offset, align)),
        RefWindower::Session { .. } => None,
    };
    let metas: BTreeMap<(&str, i64), (i64, i64)> =
        run.out.meta.iter().map(|m| ((m.key.as_str(), m.window_id), (m.open_time, m.close_time))).collect();
    for d in &run.bounds {
        let what = format!("down row key {:?} window {} [{}, {}]", d.key, d.window_id, d.start, d.end);
        match fixed {
            Some((length, offset, align)) => {
                let start = align + d.window_id * offset;
                if (d.start, d.end) != (start, start + length) {
                    return Err(format!("{what}: want [{start}, {}]", start + length));
                }
                if let Some(t) = d.ts.iter().find(|&&t| t < d.start || t >= d.end) {
                    return Err(format!("{what}: holds a row at {t}"));
                }
            }
            None => {
                if let Some(t) = d.ts.iter().find(|&&t| t < d.start || t > d.end) {
                    return Err(format!("{what}: holds a row at {t}"));
                }
                if case.emit == RefEmit::Final {
                    match metas.get(&(d.key.as_str(), d.window_id)) {
                        Some(&m) if m == (d.start, d.end) => {}
                        other => return Err(format!("{what}: final row, but meta has {other:?}")),
                    }
                }
            }
        }
    }
    Ok(())
}

/// `RefOutput` with only `down`.
fn down_only(o: &RefOutput) -> RefOutput {
    RefOutput { down: o.down.clone(), late: Vec::new(), meta: Vec::new() }
}

/// Runs one join case over `batchings` and returns the failures.
fn check_join_case(case: &JoinCase, sides: &[Vec<RefRow>], batchings: &[JoinBatching]) -> Vec<String> {
    let reference = run_reference(&case.ref_config(), sides);
    let mut failures = Vec::new();
    for b in batchings {
        let ctx = case.describe(b);
        let schedule = join_schedule(sides, b, case.seed);
        let run = match run_join_engine(case, &schedule, b) {
            Ok(run) => run,
            Err(e) => {
                failures.push(format!("[{ctx}] engine error: {e}"));
                continue;
            }
        };
        if run.errors.num_rows() > 0 {
            failures.push(format!("[{ctx}] {} rows on `errors`", run.errors.num_rows()));
        }
        let order = if case.ordered || b.push == JoinPush::Lockstep { Order::Exact } else { Order::Multiset };
        if let Err(e) = compare(&reference, &run.out, order) {
            failures.push(format!("[{ctx}] {e}"));
        } else if case.emit != RefEmit::Final
            && let Err(e) = compare(&down_only(&reference), &down_only(&run.out), Order::Exact)
        {
            failures.push(format!("[{ctx}] (complete/running down rows are emitted in application order) {e}"));
        }
        if let Err(e) = check_join_bounds(case, &run) {
            failures.push(format!("[{ctx}] {e}"));
        }
    }
    failures
}

/// The join sweep of one (insert, emit) mode.
fn join_sweep(insert: RefInsert, emit: RefEmit) {
    let started = Instant::now();
    let mut failures = Vec::new();
    let cases = join_cases(insert, emit);
    let mut rows_out = 0;
    for case in &cases {
        let sides = join_input(case.seed, case.n_sides, JOIN_ROWS);
        rows_out += run_reference(&case.ref_config(), &sides).down.len();
        failures.extend(check_join_case(case, &sides, JOIN_BATCHINGS));
    }
    eprintln!(
        "differential join {}/{}: {} cases × {} batchings ({rows_out} reference down rows) in {:.1?}",
        insert_name(insert),
        emit_name(emit),
        cases.len(),
        JOIN_BATCHINGS.len(),
        started.elapsed()
    );
    report(&failures, &format!("join {}/{}", insert_name(insert), emit_name(emit)));
}

#[test]
fn differential_join_first_complete() {
    join_sweep(RefInsert::First, RefEmit::Complete);
}

#[test]
fn differential_join_first_final() {
    join_sweep(RefInsert::First, RefEmit::Final);
}

#[test]
fn differential_join_first_running() {
    join_sweep(RefInsert::First, RefEmit::Running);
}

#[test]
fn differential_join_last_complete() {
    join_sweep(RefInsert::Last, RefEmit::Complete);
}

#[test]
fn differential_join_last_final() {
    join_sweep(RefInsert::Last, RefEmit::Final);
}

#[test]
fn differential_join_last_running() {
    join_sweep(RefInsert::Last, RefEmit::Running);
}

#[test]
fn differential_join_product_complete() {
    join_sweep(RefInsert::Product, RefEmit::Complete);
}

#[test]
fn differential_join_product_final() {
    join_sweep(RefInsert::Product, RefEmit::Final);
}

#[test]
fn differential_join_product_running() {
    join_sweep(RefInsert::Product, RefEmit::Running);
}

/// A long join input (side 0 has more than 1000 rows, so batch size 1000 splits it): four
/// modes, tumbling and session windows, waits {0, 1.5 s}, both scopes, ordered and
/// unordered, batch sizes 1000/7/whole on 1, 2 and 4 threads.
#[test]
fn differential_join_long_stream() {
    let started = Instant::now();
    let rows = generate_sized(11, StreamSize::Long);
    let mut rng = SmallRng::seed_from_u64(1111);
    let mut sides: Vec<Vec<RefRow>> = vec![Vec::new(), Vec::new()];
    for r in rows {
        sides[usize::from(rng.random_bool(0.3))].push(r);
    }
    assert!(sides[0].len() > 1000, "side 0 has {} rows", sides[0].len());
    let batchings = &[
        JoinBatching { sizes: [1000, 7, 0], push: JoinPush::Random, threads: 4 },
        JoinBatching { sizes: [1000, 1000, 0], push: JoinPush::BySide, threads: 1 },
        JoinBatching { sizes: [WHOLE, WHOLE, 0], push: JoinPush::Random, threads: 2 },
    ];
    let mut failures = Vec::new();
    let mut n_cases = 0;
    for (insert, emit) in [
        (RefInsert::Last, RefEmit::Complete),
        (RefInsert::First, RefEmit::Final),
        (RefInsert::Product, RefEmit::Final),
        (RefInsert::First, RefEmit::Running),
    ] {
        for windower in [join_windowers()[0], join_windowers()[3]] {
            for wait in [Some(0), Some(1_500_000)] {
                for per_stream in [false, true] {
                    let ordered = (n_cases / 2) % 2 == 0;
                    let case = JoinCase { seed: 11, n_sides: 2, insert, emit, windower, wait, per_stream, ordered };
                    n_cases += 1;
                    failures.extend(check_join_case(&case, &sides, batchings));
                }
            }
        }
    }
    eprintln!(
        "differential join long stream ({} + {} rows): {n_cases} cases × {} batchings in {:.1?}",
        sides[0].len(),
        sides[1].len(),
        batchings.len(),
        started.elapsed()
    );
    report(&failures, "the long join stream");
}

/// How many rows of a case are late because of a row of *another* side (the row that set the
/// scope's watermark above the late row's timestamp is on another side; spec §6, §12).
fn cross_side_late_rows(case: &JoinCase, sides: &[Vec<RefRow>]) -> usize {
    let Some(wait) = case.wait else { return 0 };
    let mut wm: BTreeMap<String, (i64, usize)> = BTreeMap::new();
    let mut n = 0;
    for (side, r) in interleave_sides(sides) {
        let scope = if case.per_stream { String::new() } else { r.key.clone() };
        let e = wm.entry(scope).or_insert((i64::MIN, side));
        if r.ts - wait > e.0 {
            *e = (r.ts - wait, side);
        }
        if r.ts < e.0 && e.1 != side {
            n += 1;
        }
    }
    n
}

/// The join sweep's inputs exercise what they are meant to (checked on the reference).
#[test]
fn join_generator_covers_edge_cases() {
    let mut cross_late = [0usize; 2]; // per key, per stream
    let mut three_side_rounds = 0;
    let mut multi_round_windows = 0;
    let mut merges = 0;
    let mut running_repeats = 0;
    let mut side_counts = [0usize; MAX_SIDES + 1];
    for (insert, emit) in [(RefInsert::Last, RefEmit::Complete), (RefInsert::First, RefEmit::Running)] {
        for case in join_cases(insert, emit) {
            let sides = join_input(case.seed, case.n_sides, JOIN_ROWS);
            assert!(sides.iter().all(|s| !s.is_empty()), "{case:?}: an empty side");
            side_counts[case.n_sides] += 1;
            cross_late[usize::from(case.per_stream)] += cross_side_late_rows(&case, &sides);
            let out = run_reference(&case.ref_config(), &sides);
            let late_sides: std::collections::BTreeSet<usize> = out.late.iter().filter_map(|l| l.side).collect();
            if case.n_sides == 3 && case.wait == Some(0) {
                assert_eq!(late_sides.len(), 3, "{case:?}: late rows on every side");
            }
            merges += out.meta.iter().filter(|m| !m.merged_ids.is_empty()).count();
            if emit == RefEmit::Complete && case.n_sides == 3 {
                three_side_rounds += out.down.len();
                let mut rounds: BTreeMap<(&str, i64), usize> = BTreeMap::new();
                for d in &out.down {
                    *rounds.entry((d.key.as_str(), d.window_id)).or_default() += 1;
                }
                multi_round_windows += rounds.values().filter(|&&n| n >= 2).count();
            }
            if emit == RefEmit::Running {
                running_repeats += out.down.windows(2).filter(|w| w[0] == w[1]).count();
            }
        }
    }
    assert!(side_counts[1] > 0 && side_counts[2] > 0 && side_counts[3] > side_counts[1], "{side_counts:?}");
    assert!(cross_late[0] > 10, "per key: {} rows late because of another side", cross_late[0]);
    // Per stream, the replay interleaving (§11.4) lets another side's row set the watermark
    // above a late row only through equal timestamps (any larger row ahead of the late row on
    // its own side is released after the other side's row and would set the watermark itself).
    assert!(cross_late[1] > 0, "per stream: {} rows late because of another side", cross_late[1]);
    eprintln!(
        "join coverage: rows late because of another side {cross_late:?} (per key, per stream); \
         {three_side_rounds} three-side complete rounds; {multi_round_windows} multi-round windows; \
         {merges} merges; {running_repeats} repeated running rows; cases by side count {side_counts:?}"
    );
    assert!(three_side_rounds > 20, "{three_side_rounds} complete three-side rounds");
    assert!(multi_round_windows > 5, "{multi_round_windows} windows with several complete rounds");
    assert!(merges > 5, "{merges} session merges in unordered joins");
    assert!(running_repeats > 0, "no repeated running rows");
}

/// `A + s` seconds, in µs.
fn at(s: i64) -> i64 {
    A_US + s * S
}

fn join_down(key: &str, id: i64, row: &[Option<(i64, f64)>]) -> RefDown {
    RefDown { key: key.into(), window_id: id, result: RefResult::Join(row.to_vec()) }
}

/// The §8.6 merge table (windrow column, deviation 7 of §14.7) through the engine, for all
/// nine modes: unordered, gap 10 s, `wait = ∞`, arrivals `L1@0` (side 0), `L2@20` (side 0),
/// `R@10` (side 1), in that (live-mode) arrival order with a hand-driven time source, one row
/// per push. Meta is `0:[0s,20s]`, `merged_ids=[1]` in every mode; window id 1 appears on
/// `down` in running mode only, never on `meta`.
#[test]
fn join_merge_table_live_arrival_order() {
    let (l1, l2, r) = (Some((at(0), 1.0)), Some((at(20), 2.0)), Some((at(10), 3.0)));
    let arrivals: Vec<(usize, RefRow)> =
        vec![(0, RefRow::new("k", at(0), 1.0)), (0, RefRow::new("k", at(20), 2.0)), (1, RefRow::new("k", at(10), 3.0))];
    let d = |id: i64, a: Option<(i64, f64)>, b: Option<(i64, f64)>| join_down("k", id, &[a, b]);
    use RefEmit::{Complete, Final, Running};
    use RefInsert::{First, Last, Product};
    let table: Vec<((RefInsert, RefEmit), Vec<RefDown>)> = vec![
        ((First, Final), vec![d(0, l1, r)]),
        ((Last, Final), vec![d(0, l2, r)]),
        ((Product, Final), vec![d(0, l1, r), d(0, l2, r)]),
        ((First, Complete), vec![d(0, l1, r)]),
        ((Last, Complete), vec![d(0, l1, r)]),
        ((Product, Complete), vec![d(0, l1, r)]),
        ((First, Running), vec![d(0, l1, None), d(1, l2, None), d(0, l1, r), d(0, l1, r)]),
        ((Last, Running), vec![d(0, l1, None), d(1, l2, None), d(0, l1, r), d(0, l2, r)]),
        ((Product, Running), vec![d(0, l1, None), d(1, l2, None), d(0, l1, r), d(0, l1, r), d(0, l2, r)]),
    ];
    let meta =
        vec![RefMeta { key: "k".into(), window_id: 0, open_time: at(0), close_time: at(20), merged_ids: vec![1] }];
    for ((insert, emit), down) in table {
        let expected = RefOutput { down, late: Vec::new(), meta: meta.clone() };
        let case = JoinCase {
            seed: 0,
            n_sides: 2,
            insert,
            emit,
            windower: RefWindower::Session { gap: 10 * S },
            wait: None,
            per_stream: false,
            ordered: false,
        };
        let name = format!("§8.6 merge table {}/{}", insert_name(insert), emit_name(emit));
        let reference = run_reference_arrivals(&case.ref_config(), 2, &arrivals);
        compare(&expected, &reference, Order::Exact).unwrap_or_else(|e| panic!("{name}: reference vs spec: {e}"));
        for threads in [1, 4] {
            let ctx = format!("{name} threads={threads}");
            let time = ManualTime::at_epoch();
            let mut op = join_builder(&case)
                .time_source(TimeSource::Manual(time.clone()))
                .threads(threads)
                .build()
                .unwrap_or_else(|e| panic!("[{ctx}] build: {e}"));
            let mut raw = op.inner().empty_output();
            for (side, row) in &arrivals {
                raw.extend(op.push(*side, &make_side_batch(*side, std::slice::from_ref(row))).expect("push"));
                time.advance(TimeDelta::seconds(1));
            }
            raw.extend(op.finish().expect("finish"));
            let run = decode_join(2, &raw).unwrap_or_else(|e| panic!("[{ctx}] {e}"));
            assert_eq!(run.errors.num_rows(), 0, "[{ctx}] errors");
            compare(&expected, &run.out, Order::Exact).unwrap_or_else(|e| panic!("[{ctx}] engine vs spec: {e}"));
            check_join_bounds(&case, &run).unwrap_or_else(|e| panic!("[{ctx}] {e}"));
        }
    }
}

/// §16 item 19 and §8.6: a `complete` window emits every complete round (two here), drops a
/// partial round silently, and still emits `meta`; a window that never completes a round
/// emits `meta` only. Three sides, every batching, both scopes, ordered and unordered.
#[test]
fn join_complete_partial_round_still_emits_meta() {
    let row = |k: &str, t: i64, v: f64| RefRow::new(k, at(t), v);
    let sides = vec![
        vec![row("k", 1, 1.0), row("k", 4, 4.0), row("k", 7, 7.0), row("j", 12, 8.0)],
        vec![row("k", 2, 2.0), row("k", 5, 5.0)],
        vec![row("k", 3, 3.0), row("k", 6, 6.0), row("j", 13, 9.0)],
    ];
    let v = |t: i64, x: f64| Some((at(t), x));
    let expected = RefOutput {
        down: vec![
            join_down("k", 0, &[v(1, 1.0), v(2, 2.0), v(3, 3.0)]),
            join_down("k", 0, &[v(4, 4.0), v(5, 5.0), v(6, 6.0)]),
        ],
        late: Vec::new(),
        meta: vec![
            RefMeta { key: "k".into(), window_id: 0, open_time: at(0), close_time: at(10), merged_ids: vec![] },
            RefMeta { key: "j".into(), window_id: 1, open_time: at(10), close_time: at(20), merged_ids: vec![] },
        ],
    };
    for insert in [RefInsert::First, RefInsert::Last, RefInsert::Product] {
        for ordered in [true, false] {
            for per_stream in [false, true] {
                let case = JoinCase {
                    seed: 5,
                    n_sides: 3,
                    insert,
                    emit: RefEmit::Complete,
                    windower: RefWindower::Tumbling { length: 10 * S, align: A_US },
                    wait: Some(0),
                    per_stream,
                    ordered,
                };
                let reference = run_reference(&case.ref_config(), &sides);
                compare(&expected, &reference, Order::Exact)
                    .unwrap_or_else(|e| panic!("{case:?}: reference vs spec: {e}"));
                for b in JOIN_BATCHINGS {
                    let ctx = case.describe(b);
                    let run = run_join_engine(&case, &join_schedule(&sides, b, case.seed), b)
                        .unwrap_or_else(|e| panic!("[{ctx}] {e}"));
                    assert_eq!(run.errors.num_rows(), 0, "[{ctx}] errors");
                    compare(&expected, &run.out, Order::Exact).unwrap_or_else(|e| panic!("[{ctx}] {e}"));
                }
            }
        }
    }
}

/// §6 / §16 item 16 in replay mode: a row of one side made late by a row of another side
/// (and of a third), the late rows carrying their side; every mode, scope, ordering and
/// batching. Also checks the output schemas of a join whose sides have different schemas
/// (§10.2, §10.3).
#[test]
fn join_side_made_late_by_another_side_replay() {
    let row = |k: &str, t: i64, v: f64| RefRow::new(k, at(t), v);
    // Replay interleaving (§11.4): L1@15, X@16, R1@2, Y@17, Z@5. R1 and Z are late for key k
    // because of L1 (side 0), per key; per stream also because of X and Y.
    let three = vec![
        vec![row("k", 15, 1.0)],
        vec![row("x", 16, 2.0), row("k", 2, 3.0)],
        vec![row("y", 17, 4.0), row("k", 5, 5.0)],
    ];
    let late =
        |side: usize, t: i64, v: f64| RefLate { key: "k".into(), window_id: 0, side: Some(side), ts: at(t), value: v };
    for n_sides in [2, 3] {
        let sides = &three[..n_sides];
        let expected_late = if n_sides == 3 { vec![late(1, 2, 3.0), late(2, 5, 5.0)] } else { vec![late(1, 2, 3.0)] };
        for (insert, emit) in JOIN_MODES {
            for per_stream in [false, true] {
                for ordered in [true, false] {
                    let case = JoinCase {
                        seed: 7,
                        n_sides,
                        insert,
                        emit,
                        windower: RefWindower::Tumbling { length: 10 * S, align: A_US },
                        wait: Some(0),
                        per_stream,
                        ordered,
                    };
                    let reference = run_reference(&case.ref_config(), sides);
                    assert_eq!(reference.late, expected_late, "{case:?}: reference late rows");
                    for b in JOIN_BATCHINGS {
                        let ctx = case.describe(b);
                        let run = run_join_engine(&case, &join_schedule(sides, b, case.seed), b)
                            .unwrap_or_else(|e| panic!("[{ctx}] {e}"));
                        assert_eq!(run.out.late, expected_late, "[{ctx}] late rows");
                        compare(&reference, &run.out, Order::Exact).unwrap_or_else(|e| panic!("[{ctx}] {e}"));
                    }
                }
            }
        }
    }
    // Output schemas: one struct column per side, each with its side's own fields.
    let case = JoinCase {
        seed: 7,
        n_sides: 3,
        insert: RefInsert::Last,
        emit: RefEmit::Final,
        windower: RefWindower::Tumbling { length: 10 * S, align: A_US },
        wait: Some(0),
        per_stream: false,
        ordered: true,
    };
    let mut op = join_builder(&case).build().expect("build");
    let raw = drive_join(&mut op, &join_schedule(&three, &JOIN_BATCHINGS[5], 7), false).expect("run");
    let [down, late_s, meta, errors] = raw.schemas();
    let utc = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    assert_eq!(field_names(&down), ["key", "window_id", "window_start", "window_end", "side_0", "side_1", "side_2"]);
    assert_eq!(field_names(&late_s), ["key", "window_id", "side", "side_0", "side_1", "side_2"]);
    assert_eq!(field_names(&meta), ["key", "window_id", "open_time", "close_time", "merged_ids"]);
    assert_eq!(late_s.field_with_name("side").expect("side").data_type(), &DataType::Int32);
    assert_eq!(errors.fields().last().expect("reason").name(), "reason");
    for s in 0..3 {
        let want = DataType::Struct(side_schema(s).fields().clone());
        for schema in [&down, &late_s] {
            let f = schema.field_with_name(&format!("side_{s}")).expect("side column");
            assert_eq!(f.data_type(), &want, "side_{s} type");
            assert!(f.is_nullable(), "side_{s} is nullable");
        }
    }
    for c in ["window_start", "window_end"] {
        assert_eq!(down.field_with_name(c).expect("bound").data_type(), &utc);
    }
    // down: final rows of (k,1), (x,1), (y,1); late: R1 and Z; meta: 3 windows; no errors.
    assert_eq!(raw.row_counts(), [3, 2, 3, 0]);
}
