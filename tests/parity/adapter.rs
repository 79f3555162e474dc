//! Boundary between the parity harness (`tests/parity.rs`) and the windrow
//! engine. The harness validates `operator`, `windower.kind`,
//! `join.insert_mode` and `join.emit_mode` before calling [`run_scenario`],
//! so the adapter only ever sees known values.
//!
//! Helpers for building output records, formatting timestamps and reading
//! durations are in `tests/parity/json.rs` (`crate::json`).

use arrow::array::{
    Array, Float64Array, Int32Array, Int64Array, ListArray, StringArray, StructArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, SchemaRef};
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, TimeDelta, Utc};
use datafusion::common::ScalarValue;
use serde_json::Value;
use windrow::prelude::*;

/// One input of a scenario, read from its Parquet file.
///
/// The batches have exactly the columns `key: Utf8`, `ts: Timestamp(us,
/// "UTC")`, `value: Float64` in that order, with no nulls. Rows are in file
/// row order, which is the feed order (README §2, §4).
pub struct ScenarioInput {
    /// The input's name in `scenario.json` → `inputs`: `events`, or `left` /
    /// `right` for joins.
    pub name: String,
    /// The rows, in file order.
    pub batches: Vec<RecordBatch>,
}

/// windrow's three output streams.
///
/// Each record must have exactly the shape of a line of the corresponding
/// expected file (README §5.2–5.4; see the builders in `crate::json`). Records
/// are in windrow's emission order: the order across keys does not matter,
/// the order within one key is checked where the scenario's
/// batch-invariance flag is true (README §6).
pub struct Streams {
    /// `down` records: `{"key","window_id","result"}`.
    pub down: Vec<Value>,
    /// `late` records: `{"key","window_id",["side",]"ts","value"}`.
    pub late: Vec<Value>,
    /// `meta` records: `{"key","window_id","open_time","close_time","merged_ids"}`.
    pub meta: Vec<Value>,
}

/// What happened when the adapter ran a scenario.
pub enum Outcome {
    /// windrow built the operator and processed the input.
    Ran(Streams),
    /// windrow refused to build the windower or operator (the message of
    /// its error). Required for `expected_error` scenarios, a failure
    /// anywhere else.
    ConstructionError(String),
}

/// Builds windrow's windower, clock and operator from `scenario`
/// (the parsed `scenario.json`), feeds `inputs` and signals end of input.
///
/// `inputs` holds the inputs in `join.sides` order for joins (side 0 first),
/// otherwise the single `events` input. For `expected_error` scenarios
/// `inputs` is empty: the adapter must fail at construction without reading
/// any data.
///
/// `Err` is for adapter problems (a scenario parameter the adapter cannot
/// map, an engine error while running); the harness reports it as a failure.
pub fn run_scenario(scenario: &Value, inputs: &[ScenarioInput]) -> Result<Outcome, String> {
    let windower = match build_windower(&scenario["windower"]) {
        Ok(w) => w,
        Err(Build::Refused(msg)) => return Ok(Outcome::ConstructionError(msg)),
        Err(Build::Adapter(msg)) => return Err(msg),
    };
    let clock = build_clock(&scenario["clock"])?;
    let op = scenario["operator"].as_str().ok_or("operator missing")?;
    let ordered = scenario["ordered"].as_bool().unwrap_or(true);
    if op == "join" {
        return run_join(scenario, inputs, clock, windower, ordered);
    }
    let input = inputs.first().ok_or("no input")?;
    let schema = input.batches.first().map(|b| b.schema()).ok_or("empty input")?;

    // Feed one row per micro-batch (exactly how bytewax was driven) and, separately, the
    // whole input as one batch; both must give the same multisets (spec §11.2).
    let whole = arrow::compute::concat_batches(&schema, &input.batches).map_err(|e| e.to_string())?;
    let singles: Vec<RecordBatch> = (0..whole.num_rows()).map(|i| whole.slice(i, 1)).collect();
    let run = |batches: &[RecordBatch]| -> Result<Streams, String> {
        let builder = build_operator(op, ordered, &schema, clock.clone(), windower)?;
        let mut operator = builder.build().map_err(|e| e.to_string())?;
        let out = operator.run(batches.iter()).map_err(|e| e.to_string())?;
        streams(op, &out)
    };
    let per_row = run(&singles)?;
    let at_once = run(std::slice::from_ref(&whole))?;
    same_multisets(per_row, &at_once)
}

/// Joins: side 0 = left, side 1 = right, interleaved by windrow's replay rule (spec §11.4).
fn run_join(
    scenario: &Value,
    inputs: &[ScenarioInput],
    clock: EventClock,
    windower: Windower,
    ordered: bool,
) -> Result<Outcome, String> {
    let join = &scenario["join"];
    let insert = match join["insert_mode"].as_str() {
        Some("first") => InsertMode::First,
        Some("last") => InsertMode::Last,
        Some("product") => InsertMode::Product,
        other => return Err(format!("insert_mode {other:?} not mapped")),
    };
    let emit = match join["emit_mode"].as_str() {
        Some("complete") => EmitMode::Complete,
        Some("final") => EmitMode::Final,
        Some("running") => EmitMode::Running,
        other => return Err(format!("emit_mode {other:?} not mapped")),
    };
    let frozen = DateTime::from_timestamp(1_717_200_000, 0).ok_or("bad frozen time")?;
    let mut whole_sides = Vec::new();
    let mut single_sides = Vec::new();
    let mut keyed = Vec::new();
    for input in inputs {
        let schema = input.batches.first().map(|b| b.schema()).ok_or("empty input")?;
        let whole = arrow::compute::concat_batches(&schema, &input.batches).map_err(|e| e.to_string())?;
        single_sides.push((0..whole.num_rows()).map(|i| whole.slice(i, 1)).collect::<Vec<_>>());
        whole_sides.push(vec![whole]);
        keyed.push(key_on(&schema, ["key"]));
    }
    let names: Vec<String> = inputs.iter().map(|i| i.name.clone()).collect();
    let run = |sides: &[Vec<RecordBatch>]| -> Result<Streams, String> {
        let mut op = join_window("op", &keyed, clock.clone(), windower)
            .insert_mode(insert)
            .emit_mode(emit)
            .ordered(ordered)
            .side_names(names.clone())
            .time_source(TimeSource::Frozen(frozen))
            .build()
            .map_err(|e| e.to_string())?;
        let out = op.run(sides).map_err(|e| e.to_string())?;
        join_streams(&names, &out)
    };
    let per_row = run(&single_sides)?;
    let at_once = run(&whole_sides)?;
    same_multisets(per_row, &at_once)
}

/// `(ts, value)` of row `i` of a side's struct column, if the side has a row there.
fn side_row(col: &StructArray, i: usize) -> Result<Option<(i64, f64)>, String> {
    if col.is_null(i) {
        return Ok(None);
    }
    let ts = col
        .column_by_name("ts")
        .and_then(|c| c.as_any().downcast_ref::<TimestampMicrosecondArray>())
        .ok_or("side struct has no ts")?;
    let v = col
        .column_by_name("value")
        .and_then(|c| c.as_any().downcast_ref::<Float64Array>())
        .ok_or("side struct has no value")?;
    Ok(Some((ts.value(i), v.value(i))))
}

fn join_streams(names: &[String], out: &WindowOut) -> Result<Streams, String> {
    let mut down = Vec::new();
    for b in &out.down {
        let (keys, ids) = (col::<StringArray>(b, "key")?, col::<Int64Array>(b, "window_id")?);
        let (left, right) = (col::<StructArray>(b, &names[0])?, col::<StructArray>(b, &names[1])?);
        for i in 0..b.num_rows() {
            let l = side_row(left, i)?.map(|r| r.1);
            let r = side_row(right, i)?.map(|r| r.1);
            down.push(crate::json::down_record(keys.value(i), ids.value(i), crate::json::join_result(l, r)));
        }
    }
    let mut late = Vec::new();
    for b in &out.late {
        let (keys, ids) = (col::<StringArray>(b, "key")?, col::<Int64Array>(b, "window_id")?);
        let side = col::<Int32Array>(b, "side")?;
        for i in 0..b.num_rows() {
            let s = side.value(i) as usize;
            let row = side_row(col::<StructArray>(b, &names[s])?, i)?.ok_or("late row without its side")?;
            late.push(crate::json::late_record(keys.value(i), ids.value(i), Some(s as u8), row.0, row.1));
        }
    }
    let meta = meta_records(out)?;
    if out.errors_batch().map_err(|e| e.to_string())?.num_rows() > 0 {
        return Err("windrow sent rows to errors".into());
    }
    Ok(Streams { down, late, meta })
}

fn meta_records(out: &WindowOut) -> Result<Vec<Value>, String> {
    let mut meta = Vec::new();
    for b in &out.meta {
        let (keys, ids) = (col::<StringArray>(b, "key")?, col::<Int64Array>(b, "window_id")?);
        let open = col::<TimestampMicrosecondArray>(b, "open_time")?;
        let close = col::<TimestampMicrosecondArray>(b, "close_time")?;
        let merged = col::<ListArray>(b, "merged_ids")?;
        for i in 0..b.num_rows() {
            let m = merged.value(i);
            let m = m.as_any().downcast_ref::<Int64Array>().ok_or("merged_ids items are not i64")?;
            meta.push(crate::json::meta_record(keys.value(i), ids.value(i), open.value(i), close.value(i), m.values()));
        }
    }
    Ok(meta)
}

/// The replay invariant (spec §11.2): one-row batches and one whole batch give the same
/// multisets on every stream. Returns the one-row run (bytewax was fed one row per batch).
fn same_multisets(per_row: Streams, at_once: &Streams) -> Result<Outcome, String> {
    for (name, a, b) in [
        ("down", &per_row.down, &at_once.down),
        ("late", &per_row.late, &at_once.late),
        ("meta", &per_row.meta, &at_once.meta),
    ] {
        if sorted(a) != sorted(b) {
            return Err(format!("{name}: one-row batches and one whole batch gave different outputs"));
        }
    }
    Ok(Outcome::Ran(per_row))
}

fn sorted(v: &[Value]) -> Vec<String> {
    let mut s: Vec<String> = v.iter().map(Value::to_string).collect();
    s.sort();
    s
}

enum Build {
    /// windrow refused the parameters (what `expected_error` scenarios want).
    Refused(String),
    /// The scenario could not be mapped.
    Adapter(String),
}

fn secs(obj: &Value, field: &str) -> Result<TimeDelta, Build> {
    crate::json::duration_field_us(obj, field).map(TimeDelta::microseconds).map_err(Build::Adapter)
}

fn build_windower(w: &Value) -> Result<Windower, Build> {
    let align = || -> Result<DateTime<Utc>, Build> {
        let s = w["align_to"].as_str().ok_or_else(|| Build::Adapter("align_to missing".into()))?;
        let us = crate::json::parse_ts_us(s).map_err(Build::Adapter)?;
        DateTime::from_timestamp_micros(us).ok_or_else(|| Build::Adapter("align_to out of range".into()))
    };
    let refused = |e: WindrowError| Build::Refused(e.to_string());
    match w["kind"].as_str() {
        Some("tumbling") => Ok(TumblingWindower::new(secs(w, "length_s")?).map_err(refused)?.align_to(align()?).into()),
        Some("sliding") => Ok(SlidingWindower::new(secs(w, "length_s")?, secs(w, "offset_s")?)
            .map_err(refused)?
            .align_to(align()?)
            .into()),
        Some("session") => Ok(SessionWindower::new(secs(w, "gap_s")?).map_err(refused)?.into()),
        other => Err(Build::Adapter(format!("unknown windower kind {other:?}"))),
    }
}

fn build_clock(c: &Value) -> Result<EventClock, String> {
    let clock = EventClock::new("ts");
    if c["wait_is_timedelta_max"].as_bool() == Some(true) {
        return Ok(clock.wait_forever());
    }
    let wait = crate::json::duration_field_us(c, "wait_for_system_duration_s")?;
    clock.wait_for_system_duration(TimeDelta::microseconds(wait)).map_err(|e| e.to_string())
}

fn build_operator(
    op: &str,
    ordered: bool,
    schema: &SchemaRef,
    clock: EventClock,
    windower: Windower,
) -> Result<WindowOpBuilder, String> {
    let keyed = key_on(schema, ["key"]);
    let frozen = DateTime::from_timestamp(1_717_200_000, 0).ok_or("bad frozen time")?; // 2024-06-01
    let b = match op {
        "count" => count_window("op", schema, clock, windower, KeySpec::columns(["key"])),
        "fold_sum" => {
            let fns = FoldFns::new(
                || 0.0f64,
                |acc: f64, row: &RowView<'_>| acc + row.f64("value").unwrap_or(0.0),
                Field::new("sum", DataType::Float64, false),
            )
            .with_merger(|a, b| a + b);
            fold_window("op", &keyed, clock, windower, fns).ordered(ordered)
        }
        "collect" => collect_window("op", &keyed, clock, windower).column("value").ordered(ordered),
        "reduce_sum" => reduce_window("op", &keyed, clock, windower, |acc: Row, v: &Row| {
            let sum = acc.f64("value").unwrap_or(0.0) + v.f64("value").unwrap_or(0.0);
            acc.with("value", ScalarValue::Float64(Some(sum)))
        }),
        "max" => max_window("op", &keyed, clock, windower).by("value"),
        "min" => min_window("op", &keyed, clock, windower).by("value"),
        other => return Err(format!("operator {other:?} not mapped")),
    };
    Ok(b.time_source(TimeSource::Frozen(frozen)))
}

fn col<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> Result<&'a T, String> {
    batch
        .column_by_name(name)
        .ok_or_else(|| format!("output column {name} missing"))?
        .as_any()
        .downcast_ref::<T>()
        .ok_or_else(|| {
            format!(
                "output column {name} has type {}",
                batch.column_by_name(name).map(|c| c.data_type().to_string()).unwrap_or_default()
            )
        })
}

fn streams(op: &str, out: &WindowOut) -> Result<Streams, String> {
    let e = |e: WindrowError| e.to_string();
    let mut down = Vec::new();
    for b in &out.down {
        let keys = col::<StringArray>(b, "key")?;
        let ids = col::<Int64Array>(b, "window_id")?;
        for i in 0..b.num_rows() {
            let result = match op {
                "count" => crate::json::count_result(col::<Int64Array>(b, "count")?.value(i) as u64),
                "fold_sum" => crate::json::num(col::<Float64Array>(b, "sum")?.value(i)),
                "reduce_sum" => crate::json::num(col::<Float64Array>(b, "value")?.value(i)),
                "collect" => {
                    let list = col::<ListArray>(b, "value")?.value(i);
                    let vals = list.as_any().downcast_ref::<Float64Array>().ok_or("collect items are not f64")?;
                    crate::json::list_result(vals.values())
                }
                "max" | "min" => crate::json::row_result(
                    col::<TimestampMicrosecondArray>(b, "ts")?.value(i),
                    col::<Float64Array>(b, "value")?.value(i),
                ),
                other => return Err(format!("operator {other:?} not mapped")),
            };
            down.push(crate::json::down_record(keys.value(i), ids.value(i), result));
        }
    }
    let mut late = Vec::new();
    for b in &out.late {
        let (keys, ids) = (col::<StringArray>(b, "key")?, col::<Int64Array>(b, "window_id")?);
        let (ts, vals) = (col::<TimestampMicrosecondArray>(b, "ts")?, col::<Float64Array>(b, "value")?);
        for i in 0..b.num_rows() {
            late.push(crate::json::late_record(keys.value(i), ids.value(i), None, ts.value(i), vals.value(i)));
        }
    }
    let meta = meta_records(out)?;
    if out.errors_batch().map_err(e)?.num_rows() > 0 {
        return Err("windrow sent rows to errors".into());
    }
    Ok(Streams { down, late, meta })
}
