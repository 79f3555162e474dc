//! SQL (issue #5): window outputs as tables, windowed aggregation written in SQL and run by
//! windrow's operator, and the file-driven cases in `tests/sql_cases/`.
//!
//! The SQL-vs-Rust tests run the same input through `agg_window` (the Rust API) and through
//! `tumble`/`hop`/`session` (SQL), and compare `down` and `late` row for row after a
//! canonical sort.

#![allow(clippy::unwrap_used, reason = "a test should fail loudly on an unexpected error")]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::compute::{SortColumn, lexsort_to_indices, take};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{TimeDelta, TimeZone, Utc};
use datafusion::common::ScalarValue;
use datafusion::datasource::MemTable;
use datafusion::logical_expr::{Accumulator, AggregateUDF, Volatility, create_udaf};
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use windrow::flow::Dataflow;
use windrow::prelude::*;
use windrow::source::MemorySource;
use windrow::sql::{self, Format};

const S: i64 = 1_000_000;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("key", DataType::Utf8, false),
        Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false),
        Field::new("value", DataType::Float64, true),
        Field::new("n", DataType::Int64, false),
    ]))
}

/// A seeded stream of keyed rows, mostly increasing in time with out-of-order and late rows,
/// some null values, cut into batches of varying size (arrival order = row order).
fn events() -> Vec<RecordBatch> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (mut keys, mut ts, mut values, mut ns) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut t = 1_700_000_000 * S;
    for i in 0..600 {
        t += (next() % 4) as i64 * S / 2;
        let jitter = if next() % 7 == 0 { (next() % 40) as i64 * S } else { 0 };
        keys.push(["a", "b", "c", "d"][(next() % 4) as usize]);
        ts.push(t - jitter);
        values.push(if i % 23 == 0 { None } else { Some((next() % 1000) as f64 / 8.0) });
        ns.push((next() % 50) as i64 - 10);
    }
    let batch = RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(StringArray::from(keys)),
            Arc::new(TimestampMicrosecondArray::from(ts).with_timezone("UTC")),
            Arc::new(Float64Array::from(values)),
            Arc::new(Int64Array::from(ns)),
        ],
    )
    .unwrap();
    let mut out = Vec::new();
    let mut off = 0;
    for size in [1, 50, 7, 200, 13].iter().cycle() {
        if off >= batch.num_rows() {
            break;
        }
        let len = (*size).min(batch.num_rows() - off);
        out.push(batch.slice(off, len));
        off += len;
    }
    out
}

/// `spread(x)`: max − min of the non-null values, a user-defined aggregate (with state, so
/// session merges go through `state`/`merge_batch`).
#[derive(Debug, Default)]
struct Spread {
    min: Option<f64>,
    max: Option<f64>,
}

impl Spread {
    fn offer(&mut self, v: f64) {
        self.min = Some(self.min.map_or(v, |m| m.min(v)));
        self.max = Some(self.max.map_or(v, |m| m.max(v)));
    }
}

impl Accumulator for Spread {
    fn update_batch(&mut self, values: &[ArrayRef]) -> datafusion::error::Result<()> {
        let a = values[0].as_any().downcast_ref::<Float64Array>().unwrap();
        a.iter().flatten().for_each(|v| self.offer(v));
        Ok(())
    }
    fn merge_batch(&mut self, states: &[ArrayRef]) -> datafusion::error::Result<()> {
        for s in states {
            let a = s.as_any().downcast_ref::<Float64Array>().unwrap();
            a.iter().flatten().for_each(|v| self.offer(v));
        }
        Ok(())
    }
    fn state(&mut self) -> datafusion::error::Result<Vec<ScalarValue>> {
        Ok(vec![ScalarValue::Float64(self.min), ScalarValue::Float64(self.max)])
    }
    fn evaluate(&mut self) -> datafusion::error::Result<ScalarValue> {
        Ok(ScalarValue::Float64(self.min.zip(self.max).map(|(a, b)| b - a)))
    }
    fn size(&self) -> usize {
        std::mem::size_of_val(self)
    }
}

fn spread() -> Arc<AggregateUDF> {
    Arc::new(create_udaf(
        "spread",
        vec![DataType::Float64],
        Arc::new(DataType::Float64),
        Volatility::Immutable,
        Arc::new(|_| Ok(Box::new(Spread::default()))),
        Arc::new(vec![DataType::Float64, DataType::Float64]),
    ))
}

fn median() -> Arc<AggregateUDF> {
    datafusion::functions_aggregate::median::median_udaf()
}

/// A context with `events` registered (one partition, batches in arrival order) and `spread`.
fn context() -> SessionContext {
    let ctx = sql::context();
    ctx.register_table("events", Arc::new(MemTable::try_new(schema(), vec![events()]).unwrap())).unwrap();
    ctx.register_udaf(spread().as_ref().clone());
    ctx
}

/// The rows of `batches` as text lines (values only, no names), sorted.
fn rows(batches: &[RecordBatch]) -> Vec<String> {
    let Some(first) = batches.first() else {
        return Vec::new();
    };
    let batch = arrow::compute::concat_batches(&first.schema(), batches).unwrap();
    let columns: Vec<SortColumn> =
        batch.columns().iter().map(|c| SortColumn { values: Arc::clone(c), options: None }).collect();
    let idx = lexsort_to_indices(&columns, None).unwrap();
    let sorted: Vec<ArrayRef> = batch.columns().iter().map(|c| take(c, &idx, None).unwrap()).collect();
    let sorted = RecordBatch::try_new(batch.schema(), sorted).unwrap();
    let text = sql::format_batches(&[sorted], Format::Csv).unwrap();
    text.lines().skip(1).map(str::to_string).collect()
}

async fn run(ctx: &SessionContext, query: &str) -> Vec<RecordBatch> {
    match sql::query(ctx, query).await {
        Ok(b) => b,
        Err(e) => panic!("query failed: {e}\n{query}"),
    }
}

async fn run_err(ctx: &SessionContext, query: &str) -> String {
    match sql::query(ctx, query).await {
        Ok(b) => panic!("query should fail but returned {} batches\n{query}", b.len()),
        Err(e) => e.to_string(),
    }
}

/// Every aggregate the comparison covers, as Rust `Agg`s and as SQL, in the same order.
fn aggs() -> (Vec<Agg>, &'static str) {
    (
        vec![
            Agg::count(),
            Agg::count_of("value"),
            Agg::sum("value"),
            Agg::sum("n"),
            Agg::mean("value"),
            Agg::min("value"),
            Agg::max("n"),
            Agg::udaf(median(), "value"),
            Agg::udaf(spread(), "value"),
        ],
        "count(*), count(value), sum(value), sum(n), avg(value), min(value), max(n), median(value), spread(value)",
    )
}

/// Runs the Rust API and SQL on the same input and compares down and late.
async fn compare(
    name: &str,
    windower: Windower,
    wait: TimeDelta,
    scope: WatermarkScope,
    tvf_args: &str,
    late_fn: &str,
) {
    let (rust_aggs, sql_aggs) = aggs();
    let clock = EventClock::new("ts").wait_for_system_duration(wait).unwrap();
    let keyed = key_on(&schema(), ["key"]);
    let mut op = agg_window(name, &keyed, clock, windower, rust_aggs).scope(scope).build().unwrap();
    let expected = op.run(events().iter()).unwrap();
    let [down, late, ..] = expected.row_counts();
    assert!(down > 20 && late > 5, "{name}: the input should close many windows and have late rows ({down}, {late})");

    let ctx = context();
    let got = run(
        &ctx,
        &format!(
            "SELECT key, window_id, window_start, window_end, {sql_aggs} FROM {tvf_args} \
             GROUP BY key, window_id, window_start, window_end"
        ),
    )
    .await;
    assert_eq!(rows(&got), rows(&expected.down), "{name}: down differs");
    let got_late = run(&ctx, &format!("SELECT * FROM {late_fn}")).await;
    assert_eq!(rows(&got_late), rows(&expected.late), "{name}: late differs");
    // Same names and types as the Rust API's late output.
    assert_eq!(got_late[0].schema().fields(), expected.late[0].schema().fields(), "{name}: late schema");
}

#[tokio::test]
async fn tumble_equals_rust_api() {
    let w = TumblingWindower::new(TimeDelta::seconds(10)).unwrap();
    compare(
        "tumble",
        w.into(),
        TimeDelta::seconds(2),
        WatermarkScope::PerKey,
        "tumble('events', 'ts', INTERVAL '10 seconds', INTERVAL '2 seconds')",
        "tumble_late('events', 'ts', INTERVAL '10 seconds', 'key', INTERVAL '2 seconds')",
    )
    .await;
}

#[tokio::test]
async fn tumble_with_offset_and_stream_scope_equals_rust_api() {
    let align = Utc.with_ymd_and_hms(2023, 11, 14, 22, 13, 7).unwrap();
    let w = TumblingWindower::new(TimeDelta::seconds(15)).unwrap().align_to(align);
    compare(
        "tumble_stream",
        w.into(),
        TimeDelta::seconds(1),
        WatermarkScope::PerStream,
        "tumble('events', 'ts', INTERVAL '15 seconds', INTERVAL '1 second', TIMESTAMP '2023-11-14 22:13:07', 'stream')",
        "tumble_late('events', 'ts', INTERVAL '15 seconds', 'key', INTERVAL '1 second', \
         TIMESTAMP '2023-11-14 22:13:07', 'stream')",
    )
    .await;
}

#[tokio::test]
async fn hop_equals_rust_api() {
    // Flink's HOP order: slide, then size.
    let w = SlidingWindower::new(TimeDelta::seconds(20), TimeDelta::seconds(5)).unwrap();
    compare(
        "hop",
        w.into(),
        TimeDelta::seconds(3),
        WatermarkScope::PerKey,
        "hop('events', 'ts', INTERVAL '5 seconds', INTERVAL '20 seconds', INTERVAL '3 seconds')",
        "hop_late('events', 'ts', INTERVAL '5 seconds', INTERVAL '20 seconds', 'key', INTERVAL '3 seconds')",
    )
    .await;
}

#[tokio::test]
async fn session_equals_rust_api() {
    let w = SessionWindower::new(TimeDelta::seconds(4)).unwrap();
    compare(
        "session",
        w.into(),
        TimeDelta::seconds(5),
        WatermarkScope::PerKey,
        "session('events', 'ts', INTERVAL '4 seconds', INTERVAL '5 seconds')",
        "session_late('events', 'ts', INTERVAL '4 seconds', 'key', INTERVAL '5 seconds')",
    )
    .await;
}

#[tokio::test]
async fn aggregate_arguments_may_be_expressions() {
    let ctx = context();
    let with_expr = run(
        &ctx,
        "SELECT key, window_id, sum(value * 2) AS s, max(n + 1) AS m, count(CASE WHEN n > 0 THEN 1 END) AS pos \
         FROM tumble('events', 'ts', INTERVAL '10 seconds') GROUP BY key, window_id",
    )
    .await;
    let s = schema();
    let doubled: Vec<RecordBatch> = events()
        .iter()
        .map(|b| {
            let v = b.column(2).as_any().downcast_ref::<Float64Array>().unwrap();
            let n = b.column(3).as_any().downcast_ref::<Int64Array>().unwrap();
            let mut cols = b.columns().to_vec();
            cols.push(Arc::new(v.iter().map(|x| x.map(|x| x * 2.0)).collect::<Float64Array>()));
            cols.push(Arc::new(n.iter().map(|x| x.map(|x| x + 1)).collect::<Int64Array>()));
            cols.push(Arc::new(n.iter().map(|x| x.filter(|x| *x > 0).map(|_| 1i64)).collect::<Int64Array>()));
            let mut fields: Vec<Field> = s.fields().iter().map(|f| f.as_ref().clone()).collect();
            fields.push(Field::new("v2", DataType::Float64, true));
            fields.push(Field::new("n1", DataType::Int64, true));
            fields.push(Field::new("pos", DataType::Int64, true));
            RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap()
        })
        .collect();
    let keyed = key_on(&doubled[0].schema(), ["key"]);
    let mut op = agg_window(
        "expr",
        &keyed,
        EventClock::new("ts"),
        TumblingWindower::new(TimeDelta::seconds(10)).unwrap(),
        vec![Agg::sum("v2"), Agg::max("n1"), Agg::count_of("pos")],
    )
    .build()
    .unwrap();
    let out = op.run(doubled.iter()).unwrap();
    let expected = out.down_batch().unwrap();
    // down: key, window_id, window_start, window_end, aggregates → drop the bounds.
    let expected = expected.project(&[0, 1, 4, 5, 6]).unwrap();
    assert_eq!(rows(&with_expr), rows(&[expected]));
}

#[tokio::test]
async fn no_key_columns_means_one_window_sequence() {
    let ctx = context();
    let got = run(
        &ctx,
        "SELECT window_start, count(*) FROM tumble('events', 'ts', INTERVAL '10 seconds', INTERVAL '30 seconds') \
         GROUP BY window_start",
    )
    .await;
    let keyed = KeyedStream::new(schema(), KeySpec::expr("all", datafusion::logical_expr::lit(1i64)));
    let clock = EventClock::new("ts").wait_for_system_duration(TimeDelta::seconds(30)).unwrap();
    let mut op =
        agg_window("all", &keyed, clock, TumblingWindower::new(TimeDelta::seconds(10)).unwrap(), vec![Agg::count()])
            .build()
            .unwrap();
    let out = op.run(events().iter()).unwrap().down_batch().unwrap().project(&[2, 4]).unwrap();
    assert_eq!(rows(&got), rows(&[out]));
}

#[tokio::test]
async fn unsupported_shapes_say_what_is_supported() {
    let ctx = context();
    let cases = [
        ("SELECT * FROM tumble('events', 'ts', INTERVAL '10 seconds')", "can only be read by a GROUP BY"),
        (
            "SELECT key, count(DISTINCT n) FROM tumble('events', 'ts', INTERVAL '10 seconds') GROUP BY key, window_start",
            "DISTINCT aggregates are not supported",
        ),
        (
            "SELECT key, count(*) FROM tumble('events', 'ts', INTERVAL '10 seconds') GROUP BY key",
            "none of window_start, window_end or window_id",
        ),
        (
            "SELECT key, count(*) FROM tumble('events', 'ts', INTERVAL '10 seconds') WHERE n > 0 GROUP BY key, window_end",
            "direct",
        ),
        (
            "SELECT key, sum(n) FILTER (WHERE n > 0) FROM tumble('events', 'ts', INTERVAL '10 seconds') GROUP BY key, window_end",
            "FILTER",
        ),
        (
            "SELECT key, corr(value, n) FROM tumble('events', 'ts', INTERVAL '10 seconds') GROUP BY key, window_end",
            "2 arguments",
        ),
    ];
    for (query, want) in cases {
        let e = run_err(&ctx, query).await;
        assert!(e.contains(want), "{query}\nerror: {e}\nshould contain: {want}");
        assert!(e.contains("Supported: SELECT <key columns>, window_start, window_end"), "{e}");
    }
    let bad_args = [
        ("tumble('events', 'ts')", "expected 3 to 6 arguments, got 2"),
        ("tumble('nope', 'ts', INTERVAL '1 second')", "table 'nope' not found"),
        ("tumble('events', 'value', INTERVAL '1 second')", "has type Float64; it must be a Timestamp"),
        ("tumble('events', 'tz', INTERVAL '1 second')", "has no column \"tz\"; its columns are key: Utf8"),
        ("tumble('events', 'ts', 10)", "`size` must be an INTERVAL"),
        ("tumble('events', 'ts', INTERVAL '1 month')", "months or years"),
        ("tumble('events', 'ts', INTERVAL '1 second', INTERVAL '-1 second')", "negative"),
        ("tumble('events', 'ts', INTERVAL '1 second', NULL, NULL, 'global')", "scope 'global'"),
        ("hop('events', 'ts', INTERVAL '10 seconds', INTERVAL '5 seconds')", "can't be longer than `length`"),
        ("session('events', 'ts', INTERVAL '1 second', NULL, NULL, NULL)", "expected 3 to 5 arguments"),
    ];
    for (call, want) in bad_args {
        let e = run_err(&ctx, &format!("SELECT key, count(*) FROM {call} GROUP BY key, window_start")).await;
        assert!(e.contains(want), "{call}\nerror: {e}\nshould contain: {want}");
        assert!(e.contains("usage: "), "{e}");
    }
    let e = run_err(&ctx, "SELECT * FROM tumble_late('events', 'ts', INTERVAL '1 second', 'nope')").await;
    assert!(e.contains("nope"), "{e}");
}

#[tokio::test]
async fn runs_as_a_windrow_execution_plan_over_parquet() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.parquet");
    let file = std::fs::File::create(&path).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, schema(), None).unwrap();
    for b in events() {
        w.write(&b).unwrap();
    }
    w.close().unwrap();

    let ctx = sql::context();
    sql::register_file(&ctx, "events", &path).await.unwrap();
    let query = "SELECT key, window_id, count(*) FROM tumble('events', 'ts', INTERVAL '10 seconds') \
                 GROUP BY key, window_id, window_start, window_end";
    let plan = run(&ctx, &format!("EXPLAIN {query}")).await;
    let text = sql::format_batches(&plan, Format::Csv).unwrap();
    assert!(text.contains("WindowExec: tumble('events', 'ts'"), "{text}");
    assert!(!text.contains("AggregateExec"), "the aggregate must run in windrow's operator:\n{text}");

    let keyed = key_on(&schema(), ["key"]);
    let mut op = agg_window(
        "p",
        &keyed,
        EventClock::new("ts"),
        TumblingWindower::new(TimeDelta::seconds(10)).unwrap(),
        vec![Agg::count()],
    )
    .build()
    .unwrap();
    let out = op.run(events().iter()).unwrap().down_batch().unwrap().project(&[0, 1, 4]).unwrap();
    assert_eq!(rows(&run(&ctx, query).await), rows(&[out]));
}

// ---- Part 1: outputs as tables -------------------------------------------------------------

#[tokio::test]
async fn dataflow_outputs_are_tables() {
    let mut flow = Dataflow::new("t");
    let input = flow.input("events", MemorySource::new(schema(), events()));
    let minute = TumblingWindower::new(TimeDelta::seconds(30)).unwrap();
    flow.window(
        &input,
        count_window("per_key", input.schema(), EventClock::new("ts"), minute, KeySpec::columns(["key"])),
    )
    .unwrap();
    let outs: BTreeMap<String, WindowOut> = flow.run().unwrap();
    let counts = outs["per_key"].row_counts();
    let ctx = sql::context_for(&outs).unwrap();
    for (table, n) in [("per_key", counts[0]), ("per_key_late", counts[1]), ("per_key_meta", counts[2])] {
        let got = run(&ctx, &format!("SELECT count(*) AS n FROM {table}")).await;
        let col = got[0].column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(col.value(0) as usize, n, "{table}");
    }
    // down and meta join on (key, window_id), as the spec says consumers should relate them.
    let joined = run(
        &ctx,
        "SELECT count(*) FROM per_key d JOIN per_key_meta m ON d.key = m.key AND d.window_id = m.window_id \
         WHERE d.window_start = m.open_time AND d.window_end = m.close_time",
    )
    .await;
    let col = joined[0].column(0).as_any().downcast_ref::<Int64Array>().unwrap();
    assert_eq!(col.value(0) as usize, counts[0]);
    let total = run(&ctx, "SELECT sum(count) FROM per_key").await;
    let late = counts[1] as i64;
    let col = total[0].column(0).as_any().downcast_ref::<Int64Array>().unwrap();
    assert_eq!(col.value(0) + late, 600, "every row is counted in a window or is late");
    // Registering the same output twice is refused with the name.
    let e = sql::register_output(&ctx, "per_key", &outs["per_key"]).unwrap_err();
    assert!(e.to_string().contains("\"per_key\" is already registered"), "{e}");
}

#[tokio::test]
async fn files_are_registered_by_extension() {
    let dir = tempfile::tempdir().unwrap();
    let batch = arrow::compute::concat_batches(&schema(), &events()).unwrap();
    let ipc = dir.path().join("e.arrow");
    let mut w = arrow::ipc::writer::FileWriter::try_new(std::fs::File::create(&ipc).unwrap(), &schema()).unwrap();
    w.write(&batch).unwrap();
    w.finish().unwrap();
    let csv = dir.path().join("e.csv");
    let mut w = arrow::csv::WriterBuilder::new().with_header(true).build(std::fs::File::create(&csv).unwrap());
    w.write(&batch).unwrap();
    drop(w);

    let ctx = sql::context();
    sql::register_file(&ctx, "ipc", &ipc).await.unwrap();
    sql::register_file(&ctx, "csv", &csv).await.unwrap();
    for t in ["ipc", "csv"] {
        let got = run(&ctx, &format!("SELECT count(*), sum(n) FROM {t}")).await;
        let text = sql::format_batches(&got, Format::Csv).unwrap();
        let n: i64 = (0..batch.num_rows())
            .map(|i| batch.column(3).as_any().downcast_ref::<Int64Array>().unwrap().value(i))
            .sum();
        assert_eq!(text.lines().nth(1).unwrap(), format!("600,{n}"), "{t}");
    }
    let e = sql::register_file(&ctx, "x", dir.path().join("e.txt")).await.unwrap_err().to_string();
    assert!(e.contains("no such file"), "{e}");
    std::fs::write(dir.path().join("e.txt"), "x").unwrap();
    let e = sql::register_file(&ctx, "x", dir.path().join("e.txt")).await.unwrap_err().to_string();
    assert!(e.contains("accepted: .parquet"), "{e}");
}

/// A directory is one table of its files (windrow's rolling and checkpointed outputs):
/// hidden, unpublished parts are not read; an empty or mixed directory is a clear error.
#[tokio::test]
async fn a_directory_of_parts_is_one_table_without_its_unpublished_parts() {
    let dir = tempfile::tempdir().unwrap();
    let parts = dir.path().join("windows.parquet");
    std::fs::create_dir(&parts).unwrap();
    let ctx = sql::context();
    let e = sql::register_file(&ctx, "w", &parts).await.unwrap_err().to_string();
    assert!(e.contains("holds no .parquet"), "{e}");
    let batches = events();
    for (i, b) in batches.iter().enumerate() {
        let file = std::fs::File::create(parts.join(format!("part-{i:05}.parquet"))).unwrap();
        let mut w = parquet::arrow::ArrowWriter::try_new(file, schema(), None).unwrap();
        w.write(b).unwrap();
        w.close().unwrap();
    }
    // What a checkpointed run leaves before its next commit: not output yet, not valid Parquet.
    std::fs::write(parts.join(".part-00099.parquet.staged"), "not yet").unwrap();
    std::fs::write(parts.join(".part-00100.parquet.inprogress"), "not yet").unwrap();
    sql::register_file(&ctx, "w", &parts).await.unwrap();
    let got = run(&ctx, "SELECT count(*) FROM w").await;
    let n = got[0].column(0).as_any().downcast_ref::<Int64Array>().unwrap().value(0);
    assert_eq!(n as usize, batches.iter().map(|b| b.num_rows()).sum::<usize>());

    std::fs::write(parts.join("extra.csv"), "a\n1\n").unwrap();
    let e = sql::register_file(&ctx, "v", &parts).await.unwrap_err().to_string();
    assert!(e.contains("mixes formats (csv, parquet)"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_tables_yield_rows_as_windows_close() {
    let ctx = sql::context();
    let live = sql::register_live(&ctx, "live", schema(), 16).unwrap();
    // A plain query over the live table, and a windowed aggregation over it.
    let mut rows_stream = ctx.sql("SELECT key, n FROM live").await.unwrap().execute_stream().await.unwrap();
    let mut windows = ctx
        .sql("SELECT key, window_start, count(*) AS c FROM tumble('live', 'ts', INTERVAL '10 seconds') GROUP BY key, window_start")
        .await
        .unwrap()
        .execute_stream()
        .await
        .unwrap();
    assert_eq!(live.readers(), 2);
    let batch = |key: &str, t: i64, n: i64| {
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(StringArray::from(vec![key])),
                Arc::new(TimestampMicrosecondArray::from(vec![t * S]).with_timezone("UTC")),
                Arc::new(Float64Array::from(vec![1.0])),
                Arc::new(Int64Array::from(vec![n])),
            ],
        )
        .unwrap()
    };
    let within = |f| tokio::time::timeout(Duration::from_secs(10), f);
    live.send(batch("a", 1, 1)).unwrap();
    let got = within(rows_stream.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(got.num_rows(), 1, "the plain query yields the row while the producer is still open");
    live.send(batch("a", 3, 2)).unwrap();
    live.send(batch("a", 12, 3)).unwrap(); // a's watermark passes 10 s: window [0, 10) closes
    let closed = within(windows.next()).await.unwrap().unwrap().unwrap();
    let text = sql::format_batches(&[closed], Format::Csv).unwrap();
    assert_eq!(text, "key,window_start,c\na,1970-01-01T00:00:00Z,2\n");
    // Nothing else is closed until the producer ends; then end of input closes the rest.
    assert!(tokio::time::timeout(Duration::from_millis(200), windows.next()).await.is_err());
    live.close();
    let rest: Vec<RecordBatch> = windows.map(|b| b.unwrap()).collect().await;
    assert_eq!(sql::format_batches(&rest, Format::Csv).unwrap(), "key,window_start,c\na,1970-01-01T00:00:10Z,1\n");
    let rest: Vec<RecordBatch> = rows_stream.map(|b| b.unwrap()).collect().await;
    assert_eq!(rest.iter().map(RecordBatch::num_rows).sum::<usize>(), 2);
}

#[test]
fn formats() {
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("k", DataType::Utf8, false), Field::new("v", DataType::Int64, true)])),
        vec![Arc::new(StringArray::from(vec!["a", "b"])), Arc::new(Int64Array::from(vec![Some(1), None]))],
    )
    .unwrap();
    assert_eq!(sql::format_batches(std::slice::from_ref(&batch), Format::Csv).unwrap(), "k,v\na,1\nb,\n");
    assert_eq!(
        sql::format_batches(std::slice::from_ref(&batch), Format::Json).unwrap(),
        "[{\"k\":\"a\",\"v\":1},{\"k\":\"b\"}]\n"
    );
    let table = sql::format_batches(&[batch], Format::Table).unwrap();
    assert!(table.contains("| k | v |") && table.contains("| b |   |"), "{table}");
    assert_eq!(sql::format_batches(&[], Format::Json).unwrap(), "[]\n");
}

// ---- file-driven cases ---------------------------------------------------------------------

/// Runs every `tests/sql_cases/*.sql`: statements separated by `;`, the last one the query,
/// then a line `----` and the expected result as a pretty-printed table (compared cell by
/// cell, so the alignment need not be exact), or `error: <text>` for a query that must fail
/// with a message containing `<text>`. Lines starting with `--` are comments.
#[tokio::test]
async fn sql_cases() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sql_cases");
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.retain(|p| p.extension().is_some_and(|e| e == "sql"));
    files.sort();
    assert!(files.len() >= 5, "expected the case files in {}", dir.display());
    let mut failures = Vec::new();
    for file in &files {
        if let Err(e) = run_case(file).await {
            failures.push(format!("{}: {e}", file.display()));
        }
    }
    assert!(failures.is_empty(), "{} case(s) failed:\n\n{}", failures.len(), failures.join("\n\n"));
}

async fn run_case(file: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(file).unwrap();
    let (sql_text, expected) = text.split_once("\n----\n").ok_or("no `----` line before the expected result")?;
    let code: String = sql_text.lines().filter(|l| !l.trim_start().starts_with("--")).collect::<Vec<_>>().join("\n");
    let statements: Vec<&str> = code.split(';').map(str::trim).filter(|s| !s.is_empty()).collect();
    let (query, setup) = statements.split_last().ok_or("no query")?;
    let ctx = sql::context();
    // One partition: tables created by the cases keep their rows in the order written.
    ctx.sql("SET datafusion.execution.target_partitions = 1").await.map_err(|e| e.to_string())?;
    for s in setup {
        sql::query(&ctx, s).await.map_err(|e| format!("setup `{s}`: {e}"))?;
    }
    let expected = expected.trim();
    let result = sql::query(&ctx, query).await;
    if let Some(want) = expected.strip_prefix("error:") {
        return match result {
            Ok(_) => Err(format!("expected an error containing {:?}, the query succeeded", want.trim())),
            Err(e) if e.to_string().contains(want.trim()) => Ok(()),
            Err(e) => Err(format!("expected an error containing {:?}, got: {e}", want.trim())),
        };
    }
    let got = result.map_err(|e| format!("query failed: {e}"))?;
    let got = sql::format_batches(&got, Format::Table).unwrap();
    if cells(&got) != cells(expected) {
        return Err(format!("result differs\n--- expected\n{expected}\n--- got\n{got}"));
    }
    Ok(())
}

/// The trimmed cells of a pretty-printed table, row by row (border lines skipped).
fn cells(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with('|'))
        .map(|l| l.trim_matches('|').split('|').map(|c| c.trim().to_string()).collect())
        .collect()
}

/// A filter in a view makes DataFusion repartition round-robin below it by default, which
/// would reorder rows into the window function. `sql::context()` turns that off, so a view
/// that keeps every row gives exactly the direct query's windows (data/README.md's counts);
/// a context that repartitions is refused instead of mis-windowing.
#[tokio::test]
async fn a_filtering_view_keeps_row_order_into_window_functions() {
    let clicks = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/clicks.parquet");
    let query = "SELECT count(*) AS windows, sum(n) AS rows FROM (
        SELECT user, window_start, count(*) AS n
        FROM tumble('v', 'ts', INTERVAL '1 minute', INTERVAL '30 seconds')
        GROUP BY user, window_start, window_end)";

    let ctx = sql::context();
    sql::register_file(&ctx, "clicks", &clicks).await.unwrap();
    ctx.sql("CREATE VIEW v AS SELECT * FROM clicks WHERE duration_ms >= 0").await.unwrap();
    let out = ctx.sql(query).await.unwrap().collect().await.unwrap();
    let windows = out[0].column(0).as_any().downcast_ref::<Int64Array>().unwrap().value(0);
    let rows = out[0].column(1).as_any().downcast_ref::<Int64Array>().unwrap().value(0);
    assert_eq!((windows, rows), (62_488, 198_643));

    // On DataFusion's default context the window function is either refused (a round-robin
    // repartition below it) or, where DataFusion did not repartition there, exact.
    let plain = SessionContext::new();
    sql::register_window_functions(&plain);
    sql::register_file(&plain, "clicks", &clicks).await.unwrap();
    plain.sql("CREATE VIEW v AS SELECT * FROM clicks WHERE duration_ms >= 0").await.unwrap();
    match plain.sql(query).await.unwrap().collect().await {
        Err(e) => assert!(e.to_string().contains("round-robin"), "{e}"),
        Ok(out) => {
            let windows = out[0].column(0).as_any().downcast_ref::<Int64Array>().unwrap().value(0);
            assert_eq!(windows, 62_488);
        }
    }
}
