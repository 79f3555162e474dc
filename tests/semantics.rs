//! The engine on the spec's worked examples that need more than replay of a file: live mode
//! with a hand-driven time source, SystemClock, per-stream scope, construction errors,
//! nulls/NaN in max/min, DataFusion aggregates, memory after sessions close.
//! (Replay-mode behaviour over random inputs is covered by `differential.rs`; bytewax's own
//! outputs by `parity.rs`.)

#![allow(clippy::unwrap_used, reason = "a test should fail loudly on an unexpected error")]

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, Float64Array, Int32Array, Int64Array, ListArray, RecordBatch, StringArray, StructArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, TimeDelta};
use windrow::prelude::*;

const S: i64 = 1_000_000;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("key", DataType::Utf8, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true),
        Field::new("value", DataType::Float64, true),
    ]))
}

/// Rows `(key, ts in µs, value)`.
fn batch(rows: &[(&str, i64, f64)]) -> RecordBatch {
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(StringArray::from(rows.iter().map(|r| r.0).collect::<Vec<_>>())),
            Arc::new(
                TimestampMicrosecondArray::from(rows.iter().map(|r| r.1).collect::<Vec<_>>()).with_timezone("UTC"),
            ),
            Arc::new(Float64Array::from(rows.iter().map(|r| r.2).collect::<Vec<_>>())),
        ],
    )
    .unwrap()
}

fn tumbling(secs: i64) -> TumblingWindower {
    TumblingWindower::new(TimeDelta::seconds(secs)).unwrap()
}

fn col<'a, T: 'static>(b: &'a RecordBatch, name: &str) -> &'a T {
    b.column_by_name(name).unwrap_or_else(|| panic!("no column {name}")).as_any().downcast_ref::<T>().unwrap()
}

/// `(key, window_id, collected values)` of a collect_window's `down`.
fn collected(out: &WindowOut) -> Vec<(String, i64, Vec<f64>)> {
    let b = out.down_batch().unwrap();
    let lists = col::<ListArray>(&b, "value");
    (0..b.num_rows())
        .map(|i| {
            let l = lists.value(i);
            let v = l.as_any().downcast_ref::<Float64Array>().unwrap().values().to_vec();
            (col::<StringArray>(&b, "key").value(i).to_string(), col::<Int64Array>(&b, "window_id").value(i), v)
        })
        .collect()
}

/// `(key, window_id, value)` of `late`.
fn late(out: &WindowOut) -> Vec<(String, i64, f64)> {
    let b = out.late_batch().unwrap();
    (0..b.num_rows())
        .map(|i| {
            (
                col::<StringArray>(&b, "key").value(i).to_string(),
                col::<Int64Array>(&b, "window_id").value(i),
                col::<Float64Array>(&b, "value").value(i),
            )
        })
        .collect()
}

fn live() -> (ManualTime, TimeSource) {
    let t = ManualTime::at_epoch();
    (t.clone(), TimeSource::Manual(t))
}

fn collect_op(clock: EventClock, w: impl Into<Windower>, ordered: bool, source: TimeSource) -> WindowOperator {
    collect_window("c", &key_on(&schema(), ["key"]), clock, w)
        .column("value")
        .ordered(ordered)
        .time_source(source)
        .build()
        .unwrap()
}

fn k(rows: &[(i64, f64)]) -> Vec<(&'static str, i64, f64)> {
    rows.iter().map(|&(t, v)| ("k", t, v)).collect()
}

/// Spec §7.5 "ordered-mode buffering (live mode, hand-driven time source)".
#[test]
fn ordered_buffering_in_live_mode() {
    let (time, source) = live();
    let clock = EventClock::new("ts").wait_for_system_duration(TimeDelta::seconds(5)).unwrap();
    let mut op = collect_op(clock, tumbling(10), true, source);
    let (a, b, c, d, e, f) = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0);
    let o1 = op.push(&batch(&k(&[(8 * S, a), (2 * S, b), (6 * S, c)]))).unwrap();
    assert_eq!(late(&o1), vec![("k".into(), 0, b)]);
    assert!(collected(&o1).is_empty());
    let o2 = op.push(&batch(&k(&[(16 * S, d)]))).unwrap();
    assert_eq!(collected(&o2), vec![("k".into(), 0, vec![c, a])]);
    time.advance(TimeDelta::seconds(3));
    assert!(collected(&op.on_timer().unwrap()).is_empty()); // watermark 14: nothing due
    let o3 = op.push(&batch(&k(&[(13 * S, e)]))).unwrap();
    assert_eq!(late(&o3), vec![("k".into(), 1, e)]);
    let o4 = op.push(&batch(&k(&[(15 * S, f)]))).unwrap();
    assert!(collected(&o4).is_empty() && late(&o4).is_empty());
    assert_eq!(collected(&op.finish().unwrap()), vec![("k".into(), 1, vec![f, d])]);
}

/// The same input unordered: window 0 in arrival order.
#[test]
fn unordered_applies_in_arrival_order() {
    let clock = EventClock::new("ts").wait_for_system_duration(TimeDelta::seconds(5)).unwrap();
    let mut op = collect_op(clock, tumbling(10), false, TimeSource::replay());
    let out = op.run([&batch(&k(&[(8 * S, 1.0), (2 * S, 2.0), (6 * S, 3.0)])), &batch(&k(&[(16 * S, 4.0)]))]).unwrap();
    assert_eq!(collected(&out)[0], ("k".into(), 0, vec![1.0, 3.0]));
}

/// Spec §4.1.3: equal timestamps in different micro-batches are late in live mode when
/// system time advanced between them, never in replay mode.
#[test]
fn live_mode_equal_timestamps_can_be_late() {
    let (time, source) = live();
    let mut op = collect_op(EventClock::new("ts"), tumbling(10), false, source);
    let mut out = op.push(&batch(&k(&[(3 * S, 1.0)]))).unwrap();
    time.advance(TimeDelta::microseconds(1));
    out.extend(op.push(&batch(&k(&[(3 * S, 2.0)]))).unwrap());
    time.advance(TimeDelta::microseconds(1));
    out.extend(op.push(&batch(&k(&[(4 * S, 3.0)]))).unwrap());
    out.extend(op.finish().unwrap());
    assert_eq!(collected(&out), vec![("k".into(), 0, vec![1.0, 3.0])]);
    assert_eq!(late(&out), vec![("k".into(), 0, 2.0)]);

    let mut replay = collect_op(EventClock::new("ts"), tumbling(10), false, TimeSource::replay());
    let batches: Vec<RecordBatch> = [3, 3, 4].iter().map(|&t| batch(&k(&[(t * S, t as f64)]))).collect();
    let out = replay.run(batches.iter()).unwrap();
    assert_eq!(collected(&out), vec![("k".into(), 0, vec![3.0, 3.0, 4.0])]);
}

/// Spec §14.1: a timer closes an idle key's window; the key's watermark survives, so an older
/// row is late and window 0 is never emitted twice.
#[test]
fn watermark_survives_closed_windows_in_live_mode() {
    let (time, source) = live();
    let mut op =
        collect_op(EventClock::new("ts"), TumblingWindower::new(TimeDelta::seconds(1)).unwrap(), false, source);
    let mut out = op.push(&batch(&k(&[(S / 5, 1.0)]))).unwrap();
    time.advance(TimeDelta::milliseconds(2500));
    let timer = op.on_timer().unwrap();
    assert_eq!(collected(&timer), vec![("k".into(), 0, vec![1.0])], "the timer closes the idle key's window");
    out.extend(timer);
    out.extend(op.push(&batch(&k(&[(S / 2, 2.0)]))).unwrap());
    out.extend(op.finish().unwrap());
    assert_eq!(late(&out), vec![("k".into(), 0, 2.0)]);
    assert_eq!(collected(&out).len(), 1);
}

/// Spec §6: all sides of a join share one clock per key, so one side can make another late;
/// the late row carries its side (live mode processes sides in arrival order).
#[test]
fn join_side_made_late_by_the_other_side() {
    let (_time, source) = live();
    let keyed = key_on(&schema(), ["key"]);
    let mut op = join_window("j", &[keyed.clone(), keyed], EventClock::new("ts"), tumbling(10))
        .time_source(source)
        .build()
        .unwrap();
    let mut out = op.push(0, &batch(&k(&[(15 * S, 1.0)]))).unwrap();
    out.extend(op.push(1, &batch(&k(&[(2 * S, 2.0)]))).unwrap());
    out.extend(op.finish().unwrap());
    let l = out.late_batch().unwrap();
    assert_eq!(l.num_rows(), 1);
    assert_eq!(col::<Int32Array>(&l, "side").value(0), 1);
    assert_eq!(col::<Int64Array>(&l, "window_id").value(0), 0);
    assert!(col::<StructArray>(&l, "side_0").is_null(0));
    assert!(col::<StructArray>(&l, "side_1").is_valid(0));
    // The window of the on-time row closes with nothing emitted (complete mode, one side).
    assert_eq!(out.row_counts()[0], 0);
    assert_eq!(out.row_counts()[2], 1);
}

/// Spec §12: per-stream scope on the §7.5 input.
#[test]
fn per_stream_scope_example() {
    let mut op = collect_window("c", &key_on(&schema(), ["key"]), EventClock::new("ts"), tumbling(10))
        .column("value")
        .scope(WatermarkScope::PerStream)
        .build()
        .unwrap();
    let rows = [("x", S, 1.0), ("y", 30 * S, 30.0), ("x", 2 * S, 2.0), ("y", 3 * S, 3.0), ("x", 15 * S, 15.0)];
    let out = op.run([&batch(&rows)]).unwrap();
    assert_eq!(collected(&out), vec![("x".into(), 0, vec![1.0]), ("y".into(), 3, vec![30.0])]);
    assert_eq!(late(&out), vec![("x".into(), 0, 2.0), ("y".into(), 0, 3.0), ("x".into(), 1, 15.0)]);
}

/// Spec §4.2: SystemClock gives every row of a micro-batch the batch's instant; replay puts
/// every row at the frozen instant; live windows close as time passes; a clock stepping back
/// does not move time back.
#[test]
fn system_clock() {
    let mut replay = collect_window("c", &key_on(&schema(), ["key"]), SystemClock::new(), tumbling(1))
        .column("value")
        .build()
        .unwrap();
    let out = replay.run([&batch(&k(&[(0, 1.0), (99 * S, 2.0)])), &batch(&k(&[(5, 3.0)]))]).unwrap();
    assert_eq!(collected(&out).len(), 1, "one window: every row at the frozen instant");
    assert_eq!(collected(&out)[0].2, vec![1.0, 2.0, 3.0]);

    let (time, source) = live();
    let mut op = collect_window("c", &key_on(&schema(), ["key"]), SystemClock::new(), tumbling(1))
        .column("value")
        .time_source(source)
        .build()
        .unwrap();
    let mut out = op.push(&batch(&k(&[(0, 1.0), (0, 2.0)]))).unwrap();
    time.advance(TimeDelta::milliseconds(1500));
    out.extend(op.push(&batch(&k(&[(0, 3.0)]))).unwrap());
    time.advance(TimeDelta::seconds(-10)); // NTP step backwards
    out.extend(op.push(&batch(&k(&[(0, 4.0)]))).unwrap());
    out.extend(op.finish().unwrap());
    assert_eq!(collected(&out), vec![("k".into(), 0, vec![1.0, 2.0]), ("k".into(), 1, vec![3.0, 4.0])]);
    assert!(late(&out).is_empty(), "SystemClock rows are never late");
}

/// Spec §4.1.3 / §16 item 6: with an infinite wait nothing is late and nothing closes
/// before end of input.
#[test]
fn infinite_wait_closes_only_at_end() {
    let mut op = collect_op(EventClock::new("ts").wait_forever(), tumbling(10), true, TimeSource::replay());
    let o = op.push(&batch(&k(&[(100 * S, 1.0), (0, 2.0), (500 * S, 3.0), (5 * S, 4.0)]))).unwrap();
    assert_eq!(o.row_counts(), [0, 0, 0, 0]);
    let end = op.finish().unwrap();
    assert_eq!(end.row_counts()[0], 3);
    assert_eq!(collected(&end)[0], ("k".into(), 0, vec![2.0, 4.0]), "ordered: sorted by time at EOF");
}

/// Spec §2.1 / §5.3: construction errors name what is wrong.
#[test]
fn construction_errors() {
    let keyed = key_on(&schema(), ["key"]);
    let session = SessionWindower::new(TimeDelta::seconds(5)).unwrap();
    let fold = FoldFns::new(
        || 0.0,
        |a: f64, r: &RowView<'_>| a + r.f64("value").unwrap_or(0.0),
        Field::new("s", DataType::Float64, false),
    );
    let err =
        fold_window("f", &keyed, EventClock::new("ts"), session, fold.clone()).ordered(false).build().err().unwrap();
    assert!(err.to_string().contains("merger"), "{err}");
    assert!(
        fold_window("f", &keyed, EventClock::new("ts"), session, fold).build().is_ok(),
        "ordered sessions never merge"
    );

    let err = count_window("c", &schema(), EventClock::new("ts"), tumbling(1), KeySpec::columns(["key"]))
        .ordered(true)
        .build()
        .err()
        .unwrap();
    assert!(err.to_string().contains("always unordered"), "{err}");

    let err =
        collect_window("c", &key_on(&schema(), ["nope"]), EventClock::new("ts"), tumbling(1)).build().err().unwrap();
    assert!(err.to_string().contains("\"nope\"") && err.to_string().contains("key"), "{err}");

    let err = collect_window("c", &keyed, EventClock::new("value"), tumbling(1)).build().err().unwrap();
    assert!(err.to_string().contains("\"value\"") && err.to_string().contains("Float64"), "{err}");

    assert!(EventClock::new("ts").wait_for_system_duration(TimeDelta::seconds(-5)).is_err());
    let err = TumblingWindower::new(TimeDelta::milliseconds(1500))
        .map(|w| collect_window("c", &keyed, EventClock::new("ts"), w).build().map(|_| ()));
    assert!(err.unwrap().is_ok(), "1.5 s is exact in microseconds");
}

/// A batch with a different schema is refused with what differs.
#[test]
fn schema_mismatch_is_refused() {
    let mut op = collect_op(EventClock::new("ts"), tumbling(10), true, TimeSource::replay());
    let other = Arc::new(Schema::new(vec![Field::new("key", DataType::Int64, true)]));
    let b = RecordBatch::try_new(other, vec![Arc::new(Int64Array::from(vec![1]))]).unwrap();
    let err = op.push(&b).err().unwrap().to_string();
    assert!(err.contains("key: Int64") && err.contains("differs"), "{err}");
}

fn best(max: bool, values: &[Option<f64>]) -> (i64, Option<f64>) {
    let rows: Vec<(i64, Option<f64>)> = values.iter().enumerate().map(|(i, v)| (i as i64, *v)).collect();
    let b = RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(StringArray::from(vec!["k"; rows.len()])),
            Arc::new(
                TimestampMicrosecondArray::from(rows.iter().map(|r| r.0).collect::<Vec<_>>()).with_timezone("UTC"),
            ),
            Arc::new(Float64Array::from(rows.iter().map(|r| r.1).collect::<Vec<_>>())),
        ],
    )
    .unwrap();
    let keyed = key_on(&schema(), ["key"]);
    let builder = if max {
        max_window("m", &keyed, EventClock::new("ts"), tumbling(10))
    } else {
        min_window("m", &keyed, EventClock::new("ts"), tumbling(10))
    };
    let out = builder.build().unwrap().run([&b]).unwrap().down_batch().unwrap();
    assert_eq!(out.num_rows(), 1);
    let v = col::<Float64Array>(&out, "value");
    (col::<TimestampMicrosecondArray>(&out, "ts").value(0), v.is_valid(0).then(|| v.value(0)))
}

/// Spec §16 item 21: nulls lose to every value; NaN is above every number; ties keep the
/// earliest arrival; the whole row is returned.
#[test]
fn max_min_nulls_nan_and_ties() {
    assert_eq!(best(true, &[None, Some(3.0), Some(5.0), Some(5.0)]), (2, Some(5.0)));
    assert_eq!(best(false, &[None, Some(3.0), Some(5.0), Some(3.0)]), (1, Some(3.0)));
    let (ts, v) = best(true, &[Some(1.0), Some(f64::NAN), Some(f64::INFINITY)]);
    assert_eq!(ts, 1);
    assert!(v.is_some_and(f64::is_nan));
    assert_eq!(best(false, &[Some(f64::NAN), Some(-1.0)]), (1, Some(-1.0)));
    assert_eq!(best(true, &[None, None]), (0, None), "all null: the earliest row");
}

/// agg_window's built-in aggregates against a direct computation, and a DataFusion aggregate
/// function (median) across unordered session merges, which go through state/merge_batch.
#[test]
fn agg_window_builtins_and_datafusion_udaf() {
    let rows = k(&[(0, 4.0), (S, 1.0), (2 * S, 7.0), (20 * S, 2.0), (10 * S, 3.0)]);
    let keyed = key_on(&schema(), ["key"]);
    let aggs = vec![
        Agg::count(),
        Agg::sum("value"),
        Agg::min("value"),
        Agg::max("value"),
        Agg::mean("value"),
        Agg::first("value"),
        Agg::last("value"),
        Agg::collect("value"),
        Agg::udaf(datafusion::functions_aggregate::median::median_udaf(), "value").alias("median"),
    ];
    let session = SessionWindower::new(TimeDelta::seconds(10)).unwrap();
    let mut op = agg_window("a", &keyed, EventClock::new("ts").wait_forever(), session, aggs).build().unwrap();
    let out = op.run([&batch(&rows)]).unwrap();
    let meta = out.meta_batch().unwrap();
    assert_eq!(meta.num_rows(), 1, "20 s and 0–2 s sessions are bridged by 10 s");
    let d = out.down_batch().unwrap();
    assert_eq!(col::<Int64Array>(&d, "count").value(0), 5);
    assert_eq!(col::<Float64Array>(&d, "sum_value").value(0), 17.0);
    assert_eq!(col::<Float64Array>(&d, "min_value").value(0), 1.0);
    assert_eq!(col::<Float64Array>(&d, "max_value").value(0), 7.0);
    assert_eq!(col::<Float64Array>(&d, "mean_value").value(0), 3.4);
    assert_eq!(col::<Float64Array>(&d, "median").value(0), 3.0);
    // Unordered: the merge puts the target's (session 0's) rows first, then session 1's.
    let first_last = (col::<Float64Array>(&d, "first_value").value(0), col::<Float64Array>(&d, "last_value").value(0));
    assert_eq!(first_last, (4.0, 3.0));
    let list = col::<ListArray>(&d, "collect_value").value(0);
    assert_eq!(list.as_any().downcast_ref::<Float64Array>().unwrap().values().to_vec(), vec![4.0, 1.0, 7.0, 3.0, 2.0]);
}

/// A float sum depends on the order of its terms. Sliding rows queue one update per pane and
/// are folded into each of the pane's windows, so each window must still sum its values in
/// arrival order, starting from its first value, whatever the batching. Expected values are
/// folded here, per window, in arrival order.
#[test]
fn sliding_builtin_sums_fold_in_arrival_order() {
    let values = [1e16, 1.0, -1e16, 1.0, 3e-5, 1e16, 0.1, -1e16, 0.2, 0.3, -0.0, 7.5e-3];
    // Two keys interleaved, times 4 s apart and one row out of order (both within the wait).
    let rows: Vec<(&str, i64, f64)> = values
        .iter()
        .enumerate()
        .map(|(i, &v)| (if i % 3 == 0 { "a" } else { "b" }, (i as i64 * 4 + if i == 5 { -6 } else { 0 }) * S, v))
        .collect();
    let (length, offset) = (20 * S, 5 * S);
    let mut expected: BTreeMap<(String, i64), f64> = BTreeMap::new();
    for &(key, ts, v) in &rows {
        // Windows `[id * offset, id * offset + length)` that contain `ts`.
        for id in (ts - length).div_euclid(offset) + 1..=ts.div_euclid(offset) {
            expected.entry((key.to_string(), id)).and_modify(|acc| *acc += v).or_insert(v);
        }
    }
    let keyed = key_on(&schema(), ["key"]);
    let align = DateTime::from_timestamp(0, 0).unwrap();
    for chunk in [1, 2, 5, rows.len()] {
        let windower = SlidingWindower::new(TimeDelta::seconds(20), TimeDelta::seconds(5)).unwrap().align_to(align);
        let clock = EventClock::new("ts").wait_for_system_duration(TimeDelta::seconds(10)).unwrap();
        let mut op = agg_window("s", &keyed, clock, windower, vec![Agg::sum("value")]).build().unwrap();
        let batches: Vec<RecordBatch> = rows.chunks(chunk).map(batch).collect();
        let out = op.run(&batches).unwrap();
        assert_eq!(out.late_batch().unwrap().num_rows(), 0);
        let d = out.down_batch().unwrap();
        let keys = col::<StringArray>(&d, "key");
        let ids = col::<Int64Array>(&d, "window_id");
        let sums = col::<Float64Array>(&d, "sum_value");
        let got: BTreeMap<(String, i64), u64> =
            (0..d.num_rows()).map(|i| ((keys.value(i).to_string(), ids.value(i)), sums.value(i).to_bits())).collect();
        let want: BTreeMap<(String, i64), u64> = expected.iter().map(|(k, v)| (k.clone(), v.to_bits())).collect();
        assert_eq!(got, want, "batches of {chunk} rows");
    }
}

/// Spec §14.2 / §16 item 25: after sessions close, a key keeps only its watermark and next
/// id — no windows, no retained input batches.
#[test]
fn closed_sessions_free_their_state() {
    let mut op = collect_op(
        EventClock::new("ts"),
        SessionWindower::new(TimeDelta::seconds(1)).unwrap(),
        false,
        TimeSource::replay(),
    );
    let rows: Vec<(String, i64, f64)> = (0..1000).map(|i| (format!("user{i}"), 0, i as f64)).collect();
    let refs: Vec<(&str, i64, f64)> = rows.iter().map(|r| (r.0.as_str(), r.1, r.2)).collect();
    op.push(&batch(&refs)).unwrap();
    assert_eq!(op.open_windows(), 1000);
    // Every key moves far ahead: its session closes and a new one opens with the next id.
    let later: Vec<(&str, i64, f64)> = rows.iter().map(|r| (r.0.as_str(), 100 * S, 0.0)).collect();
    let out = op.push(&batch(&later)).unwrap();
    assert_eq!(out.row_counts()[0], 1000);
    assert_eq!(op.open_windows(), 1000);
    assert_eq!(op.retained_batches(), 1, "only the batch holding the open sessions' rows");
    let end = op.finish().unwrap();
    let ids = col::<Int64Array>(&end.down_batch().unwrap(), "window_id").values().to_vec();
    assert!(ids.iter().all(|&id| id == 1), "the next session of each key gets id 1");
    assert_eq!(op.open_windows(), 0);
    assert_eq!(op.retained_batches(), 0);
}

/// Null keys and times go to `errors` (counted per reason) and nothing is dropped.
#[test]
fn bad_rows_go_to_errors_and_are_counted() {
    let b = RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(StringArray::from(vec![Some("a"), None, Some("a")])) as ArrayRef,
            Arc::new(TimestampMicrosecondArray::from(vec![Some(0), Some(0), None]).with_timezone("UTC")),
            Arc::new(Float64Array::from(vec![1.0, 2.0, 3.0])),
        ],
    )
    .unwrap();
    let mut op = collect_op(EventClock::new("ts"), tumbling(10), true, TimeSource::replay());
    let out = op.run([&b]).unwrap();
    let e = out.errors_batch().unwrap();
    let reasons: Vec<&str> = (0..e.num_rows()).map(|i| col::<StringArray>(&e, "reason").value(i)).collect();
    assert_eq!(reasons, vec!["null key column \"key\"", "null event time"]);
    assert_eq!(col::<Float64Array>(&e, "value").values().to_vec(), vec![2.0, 3.0]);
    assert_eq!(op.metrics().errors.values().sum::<u64>(), 2);
    assert_eq!(collected(&out), vec![("a".into(), 0, vec![1.0])]);

    let mut strict = collect_window("c", &key_on(&schema(), ["key"]), EventClock::new("ts"), tumbling(10))
        .strict(true)
        .build()
        .unwrap();
    let err = strict.push(&b).err().unwrap().to_string();
    assert!(err.contains("row 1") && err.contains("null key"), "{err}");
}

/// A dataflow with two inputs and a join step gives what the join operator gives directly;
/// duplicate step ids are refused.
#[test]
fn dataflow_runs_steps_over_its_inputs() {
    use windrow::flow::Dataflow;
    use windrow::source::MemorySource;
    let left = batch(&[("a", 0, 1.0), ("b", S, 2.0), ("a", 2 * S, 3.0)]);
    let right = batch(&[("a", S, 10.0), ("b", 15 * S, 20.0)]);
    let keyed = key_on(&schema(), ["key"]);
    let join = || join_window("j", &[keyed.clone(), keyed.clone()], EventClock::new("ts"), tumbling(10));
    let direct = join().build().unwrap().run(&[vec![left.clone()], vec![right.clone()]]).unwrap();

    let mut flow = Dataflow::new("f");
    let l = flow.input("left", MemorySource::with_batch_size(schema(), &[left], 1));
    let r = flow.input("right", MemorySource::with_batch_size(schema(), &[right], 1));
    flow.join("j", &[&l, &r], join()).unwrap();
    flow.window(&l, count_window("counts", l.schema(), EventClock::new("ts"), tumbling(10), KeySpec::columns(["key"])))
        .unwrap();
    assert!(
        flow.window(
            &r,
            count_window("counts", r.schema(), EventClock::new("ts"), tumbling(10), KeySpec::columns(["key"]))
        )
        .is_err()
    );
    let out = flow.run().unwrap();
    assert_eq!(out["j"].row_counts(), direct.row_counts());
    assert_eq!(out["j"].down_batch().unwrap(), direct.down_batch().unwrap());
    assert_eq!(out["counts"].row_counts()[0], 2);
}

// ---------------------------------------------------------------------------------------------
// collect_window into set and dict (spec §8.2, §16 items 2, 20, 28)
// ---------------------------------------------------------------------------------------------

fn pages_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("user", DataType::Utf8, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Second, None), true),
        Field::new("page", DataType::Utf8, true),
        Field::new("ms", DataType::Int64, true),
    ]))
}

/// Rows `(user, ts in s, page, ms)`.
fn pages_batch(rows: &[(&str, i64, Option<&str>, Option<i64>)]) -> RecordBatch {
    RecordBatch::try_new(
        pages_schema(),
        vec![
            Arc::new(StringArray::from(rows.iter().map(|r| r.0).collect::<Vec<_>>())),
            Arc::new(arrow::array::TimestampSecondArray::from(rows.iter().map(|r| r.1).collect::<Vec<_>>())),
            Arc::new(StringArray::from(rows.iter().map(|r| r.2).collect::<Vec<_>>())),
            Arc::new(Int64Array::from(rows.iter().map(|r| r.3).collect::<Vec<_>>())),
        ],
    )
    .unwrap()
}

fn pages_op(into: CollectInto, ordered: bool) -> WindowOpBuilder {
    let schema = pages_schema();
    let b = collect_window(
        "pages",
        &key_on(&schema, ["user"]),
        EventClock::new("ts").wait_forever(),
        SessionWindower::new(TimeDelta::seconds(10)).unwrap(),
    )
    .into_container(into.clone())
    .ordered(ordered);
    if into == CollectInto::Set { b.column("page") } else { b }
}

/// Runs `rows` as one batch and as one batch per row; both must agree (spec §16 item 2).
fn run_pages(into: CollectInto, ordered: bool, rows: &[(&str, i64, Option<&str>, Option<i64>)]) -> WindowOut {
    let whole = pages_op(into.clone(), ordered).build().unwrap().run([&pages_batch(rows)]).unwrap();
    let singles: Vec<RecordBatch> = rows.iter().map(|r| pages_batch(std::slice::from_ref(r))).collect();
    let single = pages_op(into, ordered).build().unwrap().run(&singles).unwrap();
    assert_eq!(whole.down_batch().unwrap(), single.down_batch().unwrap(), "batching changed the result");
    assert_eq!(whole.meta_batch().unwrap(), single.meta_batch().unwrap());
    whole
}

fn str_values(a: &ArrayRef) -> Vec<Option<String>> {
    use arrow::array::AsArray;
    a.as_string::<i32>().iter().map(|v| v.map(str::to_string)).collect()
}

fn set_of(out: &WindowOut) -> Vec<Vec<Option<String>>> {
    use arrow::array::AsArray;
    let b = out.down_batch().unwrap();
    let l = b.column_by_name("page").unwrap().as_list::<i32>();
    (0..l.len()).map(|i| str_values(&l.value(i))).collect()
}

fn dict_of(out: &WindowOut) -> Vec<Vec<(String, Option<i64>)>> {
    use arrow::array::AsArray;
    let b = out.down_batch().unwrap();
    let m = b.column_by_name("ms").unwrap().as_map();
    (0..m.len())
        .map(|i| {
            let e = m.value(i);
            let keys = str_values(e.column(0)).into_iter().map(|k| k.unwrap());
            keys.zip(e.column(1).as_primitive::<arrow::datatypes::Int64Type>().iter()).collect()
        })
        .collect()
}

fn some(v: &[&str]) -> Vec<Option<String>> {
    v.iter().map(|s| Some(s.to_string())).collect()
}

/// Hand-worked (the reference's self-test `s8_2_set_and_dict_with_a_session_merge` with
/// 1 = home, 2 = cart, 3 = faq, 4 = blog and ms = the row's second): session gap 10 s, wait ∞,
/// arrivals `home@10, blog@30, cart@31, cart@12, home@20, faq@25`. Unordered: `home@20`
/// bridges session 1 (`blog, cart@31`) into session 0 (`home, cart@12`):
/// set `[home, cart] ∪ [blog, cart]` + faq = `[home, cart, blog, faq]`;
/// dict `{home:20, cart:12}` ← `{blog:30, cart:31}` + `faq:25` = `{home:20, cart:31, blog:30,
/// faq:25}`. Ordered: applied `home@10, cart@12, home@20, faq@25, blog@30, cart@31`, no merge.
#[test]
fn collect_set_and_dict_session_merge_example() {
    let u = "u";
    let rows = [
        (u, 10, Some("home"), Some(10)),
        (u, 30, Some("blog"), Some(30)),
        (u, 31, Some("cart"), Some(31)),
        (u, 12, Some("cart"), Some(12)),
        (u, 20, Some("home"), Some(20)),
        (u, 25, Some("faq"), Some(25)),
    ];
    let out = run_pages(CollectInto::Set, false, &rows);
    assert_eq!(set_of(&out), vec![some(&["home", "cart", "blog", "faq"])]);
    let meta = out.meta_batch().unwrap();
    assert_eq!(meta.num_rows(), 1);
    assert_eq!(col::<ListArray>(&meta, "merged_ids").value(0).len(), 1, "session 1 merged into 0");

    let dict = CollectInto::dict("page", "ms");
    let out = run_pages(dict.clone(), false, &rows);
    let entries = |v: &[(&str, i64)]| v.iter().map(|(k, v)| (k.to_string(), Some(*v))).collect::<Vec<_>>();
    assert_eq!(dict_of(&out), vec![entries(&[("home", 20), ("cart", 31), ("blog", 30), ("faq", 25)])]);

    let out = run_pages(CollectInto::Set, true, &rows);
    assert_eq!(set_of(&out), vec![some(&["home", "cart", "faq", "blog"])]);
    let out = run_pages(dict, true, &rows);
    assert_eq!(dict_of(&out), vec![entries(&[("home", 20), ("cart", 31), ("faq", 25), ("blog", 30)])]);
}

/// Nulls: a null set value is kept once, at its first occurrence; a null dict value is written
/// like any other; a null dict key cannot be a map entry, so its row goes to `errors` (and is
/// not applied), and strict mode fails naming the row.
#[test]
fn collect_set_and_dict_nulls() {
    let u = "u";
    let rows = [
        (u, 1, None, Some(1)),
        (u, 2, Some("home"), None),
        (u, 3, None, Some(3)),
        (u, 4, Some("home"), Some(4)),
        (u, 5, Some("cart"), Some(5)),
        (u, 6, Some("cart"), None),
    ];
    let out = run_pages(CollectInto::Set, true, &rows);
    assert_eq!(set_of(&out), vec![vec![None, Some("home".into()), Some("cart".into())]]);
    assert_eq!(out.row_counts()[3], 0);

    let dict = CollectInto::dict("page", "ms");
    let out = run_pages(dict.clone(), true, &rows);
    assert_eq!(dict_of(&out), vec![vec![("home".to_string(), Some(4)), ("cart".to_string(), None)]]);
    let errors = out.errors_batch().unwrap();
    assert_eq!(errors.num_rows(), 2);
    assert_eq!(str_values(errors.column_by_name("reason").unwrap()), some(&[r#"null dict key column "page""#; 2]));
    assert_eq!(col::<Int64Array>(&errors, "ms").values().to_vec(), vec![1, 3]);
    // The window spans only the applied rows (2..6 s).
    let meta = out.meta_batch().unwrap();
    let open = meta.column_by_name("open_time").unwrap();
    let open = arrow::compute::cast(open, &DataType::Int64).unwrap();
    assert_eq!(open.as_any().downcast_ref::<Int64Array>().unwrap().value(0), 2);

    let mut strict = pages_op(dict, true).strict(true).build().unwrap();
    let err = strict.push(&pages_batch(&rows)).expect_err("strict mode fails").to_string();
    assert!(err.contains("row 0") && err.contains(r#"null dict key column "page""#), "{err}");
}

#[test]
fn collect_set_and_dict_construction_errors() {
    let schema = pages_schema();
    let op = || {
        collect_window(
            "c",
            &key_on(&schema, ["user"]),
            EventClock::new("ts"),
            SessionWindower::new(TimeDelta::seconds(10)).unwrap(),
        )
    };
    let err = |b: WindowOpBuilder| b.build().err().expect("build must fail").to_string();
    let e = err(op().into_container(CollectInto::Set));
    assert!(e.contains("set") && e.contains(".column("), "{e}");
    let e = err(op().into_container(CollectInto::Set).column("nope"));
    assert!(e.contains("\"nope\" not found") && e.contains("page"), "{e}");
    let e = err(op().into_container(CollectInto::dict("page", "ms")).column("page"));
    assert!(e.contains("dict") && e.contains(".column(\"page\")"), "{e}");
    let e = err(op().into_container(CollectInto::dict("pg", "ms")));
    assert!(e.contains("key column \"pg\" not found"), "{e}");
    let e = err(op().into_container(CollectInto::dict("page", "millis")));
    assert!(e.contains("value column \"millis\" not found"), "{e}");

    // A nested column cannot be a set element: named with its type.
    let nested = Arc::new(Schema::new(vec![
        Field::new("user", DataType::Utf8, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Second, None), true),
        Field::new("tags", DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))), true),
    ]));
    let e = err(collect_window("c", &key_on(&nested, ["user"]), EventClock::new("ts"), tumbling(10))
        .column("tags")
        .into_container(CollectInto::Set));
    assert!(e.contains("\"tags\"") && e.contains("List("), "{e}");
}

// ---------------------------------------------------------------------------------------------
// max_window / min_window by an expression (spec §8.4, §16 item 21)
// ---------------------------------------------------------------------------------------------

/// `(ts µs, value)` of the rows a max/min by `value * value` picks, per window.
fn best_by_square(max: bool, rows: &[(i64, Option<f64>)]) -> Vec<(i64, Option<f64>)> {
    let b = RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(StringArray::from(vec!["k"; rows.len()])),
            Arc::new(
                TimestampMicrosecondArray::from(rows.iter().map(|r| r.0).collect::<Vec<_>>()).with_timezone("UTC"),
            ),
            Arc::new(Float64Array::from(rows.iter().map(|r| r.1).collect::<Vec<_>>())),
        ],
    )
    .unwrap();
    let keyed = key_on(&schema(), ["key"]);
    let builder = if max {
        max_window("m", &keyed, EventClock::new("ts"), tumbling(10))
    } else {
        min_window("m", &keyed, EventClock::new("ts"), tumbling(10))
    };
    let out = builder
        .by_expr("square", datafusion::prelude::col("value") * datafusion::prelude::col("value"))
        .build()
        .unwrap()
        .run([&b])
        .unwrap();
    let out = out.down_batch().unwrap();
    assert_eq!(
        out.schema().fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>(),
        ["key", "window_id", "window_start", "window_end", "ts", "value"],
        "the whole row, not the expression"
    );
    let v = col::<Float64Array>(&out, "value");
    let ts = col::<TimestampMicrosecondArray>(&out, "ts");
    (0..out.num_rows()).map(|i| (ts.value(i), v.is_valid(i).then(|| v.value(i)))).collect()
}

/// Hand-worked, bytewax's `test_max_window` shape with `by = value²`: tumbling 10 s, wait 0,
/// values `1@0, -9@4, 3@8, 10@12, -4@13`: squares 1, 81, 9 | 100, 16 → max: `-9@4`, `10@12`;
/// min: `1@0`, `-4@13`. Ties (`3` and `-3`, both 9) keep the earliest arrival; a null square
/// loses to every value; NaN² is NaN, above every number.
#[test]
fn max_min_by_expression() {
    let rows = [(0, Some(1.0)), (4 * S, Some(-9.0)), (8 * S, Some(3.0)), (12 * S, Some(10.0)), (13 * S, Some(-4.0))];
    assert_eq!(best_by_square(true, &rows), vec![(4 * S, Some(-9.0)), (12 * S, Some(10.0))]);
    assert_eq!(best_by_square(false, &rows), vec![(0, Some(1.0)), (13 * S, Some(-4.0))]);

    let ties = [(0, Some(-3.0)), (S, Some(3.0)), (2 * S, None)];
    assert_eq!(best_by_square(true, &ties), vec![(0, Some(-3.0))]);
    assert_eq!(best_by_square(false, &ties), vec![(0, Some(-3.0))], "null loses to every value");
    let with_nan = [(0, Some(100.0)), (S, Some(f64::NAN))];
    let got = best_by_square(true, &with_nan);
    assert!(got[0].0 == S && got[0].1.is_some_and(f64::is_nan), "{got:?}");
    assert_eq!(best_by_square(true, &[(0, None), (S, None)]), vec![(0, None)], "all null: the earliest row");
}

#[test]
fn by_expression_errors_name_the_expression() {
    use datafusion::prelude::{col, lit};
    let keyed = key_on(&schema(), ["key"]);
    let e = max_window("m", &keyed, EventClock::new("ts"), tumbling(10))
        .by_expr("bad", col("nope") + lit(1.0))
        .build()
        .err()
        .expect("an unknown column")
        .to_string();
    assert!(e.contains("max_window") && e.contains("`by` expression \"bad\"") && e.contains("nope"), "{e}");
    let e = min_window("m", &keyed, EventClock::new("ts"), tumbling(10))
        .by_expr("positive", col("value").gt(lit(0.0)))
        .build()
        .err()
        .expect("a boolean")
        .to_string();
    assert!(e.contains("`by` expression \"positive\" has type Boolean"), "{e}");
}

/// Large batches are hashed, checked and sharded in row chunks in parallel (two chunks per
/// thread, at least 4096 rows each; the random streams of `differential.rs` are smaller than
/// one chunk). Whatever the chunking, windows get the same rows in arrival order, late rows
/// are the same, and refused rows (spread over several chunks) come out in row order. Run
/// with and without refused rows: chunks with nothing to refuse skip the per-row checks.
#[test]
fn chunked_sharding_of_large_batches_changes_nothing() {
    for with_refused in [true, false] {
        chunked_sharding_case(with_refused);
    }
}

fn chunked_sharding_case(with_refused: bool) {
    let n = 30_000usize;
    let keys: Vec<String> = (0..300).map(|i| format!("key{i}")).collect();
    let refused_key = |i: usize| with_refused && i % 997 == 5;
    let refused_time = |i: usize| with_refused && i % 1499 == 9;
    let b = RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(StringArray::from(
                (0..n).map(|i| (!refused_key(i)).then(|| keys[(i * 7919) % 300].as_str())).collect::<Vec<_>>(),
            )) as ArrayRef,
            Arc::new(
                // Mostly increasing, up to 40 s out of order (so some rows are late).
                TimestampMicrosecondArray::from(
                    (0..n)
                        .map(|i| (!refused_time(i)).then(|| i as i64 * 10_000 - ((i * 31) % 400) as i64 * 100_000))
                        .collect::<Vec<_>>(),
                )
                .with_timezone("UTC"),
            ),
            Arc::new(Float64Array::from((0..n).map(|i| i as f64).collect::<Vec<_>>())),
        ],
    )
    .unwrap();
    let run = |threads: usize, batch_rows: usize| {
        let mut op = collect_window("c", &key_on(&schema(), ["key"]), EventClock::new("ts"), tumbling(10))
            .column("value")
            .threads(threads)
            .build()
            .unwrap();
        let batches: Vec<RecordBatch> = (0..n).step_by(batch_rows).map(|a| b.slice(a, batch_rows.min(n - a))).collect();
        let out = op.run(&batches).unwrap();
        let (mut down, mut late) = (collected(&out), late(&out));
        down.sort_by(|x, y| (&x.0, x.1).cmp(&(&y.0, y.1)));
        late.sort_by(|x, y| x.partial_cmp(y).unwrap());
        let e = out.errors_batch().unwrap();
        let errors: Vec<f64> = col::<Float64Array>(&e, "value").values().to_vec();
        (down, late, errors)
    };
    // Batches of 1000 rows: one chunk each, the plain path.
    let reference = run(1, 1000);
    assert!(
        reference.0.len() > 1000 && !reference.1.is_empty(),
        "windows {}, late {}",
        reference.0.len(),
        reference.1.len()
    );
    let expected_errors: Vec<f64> = (0..n).filter(|&i| refused_key(i) || refused_time(i)).map(|i| i as f64).collect();
    assert_eq!(reference.2, expected_errors);
    for (threads, batch_rows) in [(1, n), (2, n), (3, n), (4, 20_000)] {
        assert!(
            run(threads, batch_rows) == reference,
            "refused rows {with_refused}, threads {threads}, batches of {batch_rows} rows"
        );
    }
}
