//! Checkpoint round trips in process (spec §9, §16 item 29): for every kind of operator
//! state, a flow interrupted at each batch boundary — state snapshotted, written to a state
//! directory, read back and restored into a freshly built flow, possibly with another thread
//! count — emits exactly what the uninterrupted flow emits.
//!
//! With the same thread count the outputs must be identical batch content in identical order;
//! with another thread count, the same rows (order across keys is not promised, spec §7.4).
//! Process-level crashes (kill at random points, publishing of output files) are in
//! `tests/recovery.rs`.

#![allow(clippy::unwrap_used, reason = "a test should fail loudly on an unexpected error")]

use std::sync::Arc;

use arrow::array::{Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::util::pretty::pretty_format_batches;
use chrono::{DateTime, TimeDelta, Utc};
use datafusion::common::ScalarValue;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use windrow::checkpoint::{CheckpointStore, Manifest, StepEntry};
use windrow::flow::{Dataflow, FlowRuntime, Port, StepOutput};
use windrow::prelude::*;

const S: i64 = 1_000_000;

fn schema(value: &str) -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("user", DataType::Utf8, false),
        Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false),
        Field::new(value, DataType::Float64, true),
        Field::new("n", DataType::Int64, true),
    ]))
}

/// `rows` out-of-order rows over 7 keys, some null values, in batches of `batch` rows.
fn stream(seed: u64, rows: usize, batch: usize, value: &str) -> Vec<RecordBatch> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut t = 0i64;
    let (mut users, mut ts, mut vals, mut ns) = (vec![], vec![], vec![], vec![]);
    for _ in 0..rows {
        t += rng.random_range(0..700_000);
        users.push(format!("u{}", rng.random_range(0..7)));
        ts.push(t - rng.random_range(0..4 * S)); // out of order by up to 4 s
        vals.push((rng.random_range(0..10) > 0).then(|| f64::from(rng.random_range(0..100)) * 0.5));
        ns.push(rng.random_range(0..5i64));
    }
    let schema = schema(value);
    (0..rows)
        .step_by(batch)
        .map(|a| {
            let b = (a + batch).min(rows);
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(StringArray::from(users[a..b].to_vec())),
                    Arc::new(TimestampMicrosecondArray::from(ts[a..b].to_vec()).with_timezone("UTC")),
                    Arc::new(Float64Array::from(vals[a..b].to_vec())),
                    Arc::new(Int64Array::from(ns[a..b].to_vec())),
                ],
            )
            .unwrap()
        })
        .collect()
}

fn clock() -> EventClock {
    EventClock::new("ts").wait_for_system_duration(TimeDelta::seconds(2)).unwrap()
}

fn tumbling() -> TumblingWindower {
    TumblingWindower::new(TimeDelta::seconds(10)).unwrap().align_to(DateTime::<Utc>::UNIX_EPOCH)
}

fn sliding() -> SlidingWindower {
    SlidingWindower::new(TimeDelta::seconds(10), TimeDelta::seconds(4)).unwrap().align_to(DateTime::<Utc>::UNIX_EPOCH)
}

fn session() -> SessionWindower {
    SessionWindower::new(TimeDelta::milliseconds(1500)).unwrap()
}

/// A time source frozen at a fixed instant, so that runs are reproducible.
fn frozen() -> TimeSource {
    TimeSource::Frozen(DateTime::from_timestamp(1_700_000_000, 0).unwrap())
}

/// The flows under test: every operator, windower, mode and aggregation state kind.
fn build(case: &str, threads: usize) -> Dataflow {
    let mut flow = Dataflow::new(case);
    let a = flow.pushed_input("a", schema("value"));
    let keyed = a.key_on(["user"]);
    let key = || KeySpec::columns(["user"]);
    let t = |b: WindowOpBuilder| b.threads(threads).time_source(frozen());
    match case {
        "count_tumbling" => flow.window(&a, t(count_window("s", a.schema(), clock(), tumbling(), key()))).unwrap(),
        "count_session_stream_scope" => flow
            .window(&a, t(count_window("s", a.schema(), clock(), session(), key()).scope(WatermarkScope::PerStream)))
            .unwrap(),
        "aggs_sliding" => flow
            .window(
                &a,
                t(agg_window(
                    "s",
                    &keyed,
                    clock(),
                    sliding(),
                    vec![
                        Agg::count(),
                        Agg::sum("value"),
                        Agg::mean("value"),
                        Agg::min("n"),
                        Agg::max("value"),
                        Agg::first("value"),
                        Agg::last("n"),
                        Agg::collect("n"),
                        Agg::udaf(datafusion::functions_aggregate::median::median_udaf(), "value"),
                    ],
                )),
            )
            .unwrap(),
        "aggs_session" => flow
            .window(
                &a,
                t(agg_window(
                    "s",
                    &keyed,
                    clock(),
                    session(),
                    vec![Agg::sum("n"), Agg::first("value"), Agg::last("value"), Agg::collect("value")],
                )),
            )
            .unwrap(),
        "collect_ordered" => flow.window(&a, t(collect_window("s", &keyed, clock(), sliding()).column("n"))).unwrap(),
        "collect_rows_session_ordered" => flow.window(&a, t(collect_window("s", &keyed, clock(), session()))).unwrap(),
        "collect_set_dict" => {
            flow.window(
                &a,
                t(collect_window("set", &keyed, clock(), tumbling()).column("n").into_container(CollectInto::Set)),
            )
            .unwrap();
            flow.window(
                &a,
                t(collect_window("dict", &keyed, clock(), session())
                    .ordered(false)
                    .into_container(CollectInto::dict("n", "value"))),
            )
            .unwrap();
        }
        "max_min" => {
            flow.window(&a, t(max_window("max", &keyed, clock(), session()).by("value"))).unwrap();
            flow.window(&a, t(min_window("min", &keyed, clock(), sliding()).by("n"))).unwrap();
        }
        "reduce" => flow
            .window(
                &a,
                t(reduce_window("s", &keyed, clock(), session(), |acc, row| {
                    let sum = acc.f64("value").unwrap_or(0.0) + row.f64("value").unwrap_or(0.0);
                    acc.with("value", ScalarValue::Float64(Some(sum)))
                })),
            )
            .unwrap(),
        "fold" => {
            let fns = FoldFns::new(
                || 0.0f64,
                |acc: f64, row: &RowView<'_>| acc + row.f64("value").unwrap_or(0.0),
                Field::new("total", DataType::Float64, true),
            )
            .with_merger(|a, b| a + b)
            .with_state(
                |s: &f64| ScalarValue::Float64(Some(*s)),
                |v: &ScalarValue| match v {
                    ScalarValue::Float64(Some(f)) => Ok(*f),
                    other => Err(format!("not a fold state: {other}")),
                },
            );
            flow.window(&a, t(fold_window("s", &keyed, clock(), session(), fns).ordered(false))).unwrap();
        }
        "system_clock" => {
            flow.window(&a, t(count_window("s", a.schema(), SystemClock::new(), tumbling(), key()))).unwrap()
        }
        join if join.starts_with("join") => {
            let b = flow.pushed_input("b", schema("other"));
            let (insert, emit) = match join {
                "join_product_complete" => (InsertMode::Product, EmitMode::Complete),
                "join_last_final" => (InsertMode::Last, EmitMode::Final),
                _ => (InsertMode::First, EmitMode::Running),
            };
            let op = join_window("j", &[a.key_on(["user"]), b.key_on(["user"])], clock(), session())
                .insert_mode(insert)
                .emit_mode(emit)
                .threads(threads)
                .time_source(frozen());
            flow.join("j", &[&a, &b], op).unwrap();
        }
        other => panic!("unknown case {other}"),
    }
    flow
}

const CASES: &[&str] = &[
    "count_tumbling",
    "count_session_stream_scope",
    "aggs_sliding",
    "aggs_session",
    "collect_ordered",
    "collect_rows_session_ordered",
    "collect_set_dict",
    "max_min",
    "reduce",
    "fold",
    "system_clock",
    "join_product_complete",
    "join_last_final",
    "join_first_running",
];

/// The pushes of a case: `(input, batch)` in order (joins alternate their two inputs).
fn pushes(case: &str) -> Vec<(&'static str, RecordBatch)> {
    let a = stream(7, 240, 20, "value");
    if !case.starts_with("join") {
        return a.into_iter().map(|b| ("a", b)).collect();
    }
    let b = stream(8, 160, 20, "other");
    let mut out = Vec::new();
    for i in 0..a.len().max(b.len()) {
        if let Some(x) = a.get(i) {
            out.push(("a", x.clone()));
        }
        if let Some(x) = b.get(i) {
            out.push(("b", x.clone()));
        }
    }
    out
}

/// Every non-empty output batch, tagged `<step>.<port>`, in emission order.
type Emitted = Vec<(String, RecordBatch)>;

fn record(outs: Vec<StepOutput>, into: &mut Emitted) {
    for o in outs {
        for port in Port::ALL {
            for b in port.batches(&o.out) {
                if b.num_rows() > 0 {
                    into.push((port.output_name(&o.step), b.clone()));
                }
            }
        }
    }
}

fn runtime(case: &str, threads: usize) -> FlowRuntime {
    build(case, threads).into_runtime().0
}

fn uninterrupted(case: &str, threads: usize) -> Emitted {
    let mut rt = runtime(case, threads);
    let mut out = Vec::new();
    for (input, batch) in pushes(case) {
        record(rt.push(input, &batch).unwrap(), &mut out);
    }
    record(rt.finish().unwrap(), &mut out);
    out
}

/// Pushes `stop` batches, checkpoints into `dir`, restores into a new flow with
/// `threads_after` threads (read back from disk), pushes the rest and finishes.
fn interrupted(case: &str, stop: usize, threads_before: usize, threads_after: usize, dir: &std::path::Path) -> Emitted {
    let all = pushes(case);
    let mut rt = runtime(case, threads_before);
    let mut out = Vec::new();
    for (input, batch) in &all[..stop] {
        record(rt.push(input, batch).unwrap(), &mut out);
    }
    let states = rt.snapshot().unwrap();
    let store = CheckpointStore::open(dir).unwrap();
    let manifest = Manifest {
        format: 0,
        windrow: String::new(),
        flow: case.into(),
        number: stop as u64,
        finished: false,
        inputs: Vec::new(),
        outputs: Vec::new(),
        steps: rt
            .definitions()
            .into_iter()
            .map(|(id, definition)| StepEntry { id, definition, scalars: Default::default(), tables: Vec::new() })
            .collect(),
        step_rows: Vec::new(),
    };
    let ended = rt.ended().to_vec();
    store.commit(manifest, &states).unwrap();
    drop(rt);

    let loaded = store.latest(|w| panic!("unexpected warning: {w}")).unwrap().expect("a checkpoint");
    assert_eq!(loaded.manifest.number, stop as u64);
    let mut rt = runtime(case, threads_after);
    assert_eq!(
        rt.definitions().iter().map(|d| &d.1).collect::<Vec<_>>(),
        loaded.manifest.steps.iter().map(|s| &s.definition).collect::<Vec<_>>(),
        "the definition must not depend on the thread count"
    );
    rt.restore(loaded.steps, &ended).unwrap();
    for (input, batch) in &all[stop..] {
        record(rt.push(input, batch).unwrap(), &mut out);
    }
    record(rt.finish().unwrap(), &mut out);
    out
}

/// Rows of every output, as text lines sorted per output (order-insensitive comparison).
fn sorted_rows(out: &Emitted) -> Vec<(String, Vec<String>)> {
    let mut names: Vec<String> = out.iter().map(|(n, _)| n.clone()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .map(|n| {
            let batches: Vec<RecordBatch> = out.iter().filter(|(m, _)| *m == n).map(|(_, b)| b.clone()).collect();
            let text = pretty_format_batches(&batches).unwrap().to_string();
            let mut lines: Vec<String> =
                text.lines().skip(3).filter(|l| !l.starts_with('+')).map(String::from).collect();
            lines.sort();
            (n, lines)
        })
        .collect()
}

/// Concatenated rows per output, in emission order.
fn in_order(out: &Emitted) -> Vec<(String, String)> {
    out.iter().map(|(n, b)| (n.clone(), pretty_format_batches(std::slice::from_ref(b)).unwrap().to_string())).collect()
}

fn merged_in_order(out: &Emitted) -> Vec<(String, Vec<String>)> {
    // Batch boundaries may differ after a restore only where a batch had nothing to emit;
    // compare per output the row sequence.
    sorted_rows(out)
        .into_iter()
        .map(|(n, _)| n)
        .map(|n| {
            let rows: Vec<String> = in_order(out)
                .into_iter()
                .filter(|(m, _)| *m == n)
                .flat_map(|(_, t)| {
                    t.lines().skip(3).filter(|l| !l.starts_with('+')).map(String::from).collect::<Vec<_>>()
                })
                .collect();
            (n, rows)
        })
        .collect()
}

#[test]
fn restore_at_every_batch_boundary_gives_the_uninterrupted_output() {
    for case in CASES {
        let expected = uninterrupted(case, 2);
        assert!(!expected.is_empty(), "{case}: emits nothing");
        let n = pushes(case).len();
        for stop in 0..=n {
            let dir = tempfile::tempdir().unwrap();
            let got = interrupted(case, stop, 2, 2, dir.path());
            assert_eq!(
                merged_in_order(&got),
                merged_in_order(&expected),
                "{case}: interrupted after {stop} of {n} batches (2 threads before and after)"
            );
        }
    }
}

#[test]
fn restore_with_another_thread_count_gives_the_same_rows() {
    for case in CASES {
        let expected = sorted_rows(&uninterrupted(case, 1));
        let n = pushes(case).len();
        for (stop, before, after) in [(n / 3, 1, 3), (n / 2, 3, 1), (2 * n / 3, 2, 4)] {
            let dir = tempfile::tempdir().unwrap();
            let got = sorted_rows(&interrupted(case, stop, before, after, dir.path()));
            assert_eq!(
                got, expected,
                "{case}: {before} threads before the checkpoint after {stop} batches, {after} after"
            );
        }
    }
}

#[test]
fn replay_resume_does_not_count_downtime_but_live_resume_does() {
    // Spec §9.2 / §14.8: wait 5 s, per-key watermark 95 s at the checkpoint, then the process
    // is down for an hour. In replay mode a row at 92 s is still on time after the resume; in
    // live mode the watermark includes the downtime and the row is late (as in bytewax).
    let schema = schema("value");
    let row = |t: i64| {
        RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec!["a"])),
                Arc::new(TimestampMicrosecondArray::from(vec![t * S]).with_timezone("UTC")),
                Arc::new(Float64Array::from(vec![1.0])),
                Arc::new(Int64Array::from(vec![1])),
            ],
        )
        .unwrap()
    };
    for live in [false, true] {
        let hand = ManualTime::at_epoch();
        let source = if live { TimeSource::Manual(hand.clone()) } else { TimeSource::Frozen(DateTime::UNIX_EPOCH) };
        let make = |source: TimeSource| {
            let mut flow = Dataflow::new("downtime");
            let a = flow.pushed_input("a", schema.clone());
            let clock = EventClock::new("ts").wait_for_system_duration(TimeDelta::seconds(5)).unwrap();
            flow.window(
                &a,
                count_window("c", a.schema(), clock, tumbling(), KeySpec::columns(["user"])).time_source(source),
            )
            .unwrap();
            flow.into_runtime().0
        };
        let mut rt = make(source.clone());
        rt.push("a", &row(100)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let states = rt.snapshot().unwrap();
        let store = CheckpointStore::open(dir.path()).unwrap();
        let steps = rt
            .definitions()
            .into_iter()
            .map(|(id, definition)| StepEntry { id, definition, scalars: Default::default(), tables: Vec::new() })
            .collect();
        let manifest = Manifest {
            format: 0,
            windrow: String::new(),
            flow: "downtime".into(),
            number: 0,
            finished: false,
            inputs: Vec::new(),
            outputs: Vec::new(),
            steps,
            step_rows: Vec::new(),
        };
        store.commit(manifest, &states).unwrap();
        drop(rt);
        hand.advance(TimeDelta::hours(1));
        let restarted = if live { source } else { TimeSource::Frozen(DateTime::UNIX_EPOCH + TimeDelta::hours(1)) };
        let mut rt = make(restarted);
        let loaded = store.latest(|w| panic!("{w}")).unwrap().unwrap();
        rt.restore(loaded.steps, &[false]).unwrap();
        let out = rt.push("a", &row(96)).unwrap();
        let late: usize = out.iter().map(|o| o.out.row_counts()[1]).sum();
        assert_eq!(late, usize::from(live), "live = {live}: the 96 s row after an hour of downtime");
    }
}
