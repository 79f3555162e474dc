//! `windrow::flight` end to end over loopback with arrow-flight's `FlightClient`: two inputs
//! fed by `DoPut`, every output read back with `DoGet` and compared with the same pipeline run
//! over Parquet files; the listing; schema mismatches; a client that disconnects mid-put;
//! subscribers before and after windows close; retention; shutdown flushing open windows;
//! live timers (SystemClock and idle event-time keys); and `FlightSource` feeding a dataflow.
//!
//! The pipeline's data keeps every watermark decision minutes away from its threshold, so
//! the live server (real system time, which moves the watermark by the test's few seconds)
//! and the replay run over files agree exactly. Every wait is bounded by [`within`].

#![allow(clippy::unwrap_used, reason = "a test should fail loudly on an unexpected error")]

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{RecordBatch, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::{FlightClient, FlightDescriptor, PutResult, Ticket};
use chrono::{TimeDelta, Utc};
use futures::{SinkExt, StreamExt, TryStreamExt};
use tonic::Code;
use windrow::flight::{FIRST_SEQ_HEADER, FlightServer, FlightSource, Retention, ServeOptions};
use windrow::flow::{Dataflow, Port, Stream};
use windrow::prelude::*;
use windrow::source::{MemorySource, ParquetSource, Source};

const SEC: i64 = 1_000;
const MIN: i64 = 60 * SEC;

/// Fails the test instead of hanging on a bug.
async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f).await.unwrap_or_else(|_| panic!("timed out: {what}"))
}

fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

fn clicks_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("user", DataType::Utf8, true),
        Field::new("ts", ts_type(), false),
        Field::new("page", DataType::Utf8, false),
    ]))
}

fn profiles_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("user", DataType::Utf8, true),
        Field::new("ts", ts_type(), false),
        Field::new("plan", DataType::Utf8, false),
    ]))
}

fn batch(schema: &SchemaRef, rows: &[(Option<&str>, i64, &str)]) -> RecordBatch {
    RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(rows.iter().map(|r| r.0).collect::<Vec<_>>())),
            Arc::new(
                TimestampMillisecondArray::from(rows.iter().map(|r| r.1).collect::<Vec<_>>()).with_timezone("UTC"),
            ),
            Arc::new(StringArray::from(rows.iter().map(|r| r.2).collect::<Vec<_>>())),
        ],
    )
    .unwrap()
}

/// Clicks in two batches. `a@20min` moves a's watermark (wait 5 min) to 15 min, closing a's
/// windows 0 and 1; `a@30s` after it is late; the null user goes to `errors`.
fn clicks() -> Vec<RecordBatch> {
    let s = clicks_schema();
    vec![
        batch(
            &s,
            &[
                (Some("a"), 0, "/"),
                (Some("b"), 10 * SEC, "/x"),
                (Some("a"), 70 * SEC, "/y"),
                (None, 75 * SEC, "/z"),
                (Some("b"), 80 * SEC, "/"),
            ],
        ),
        batch(&s, &[(Some("a"), 20 * MIN, "/"), (Some("a"), 30 * SEC, "/late"), (Some("b"), 90 * SEC, "/")]),
    ]
}

fn profiles() -> Vec<RecordBatch> {
    let s = profiles_schema();
    vec![
        batch(&s, &[(Some("a"), 5 * SEC, "free"), (Some("b"), 65 * SEC, "pro")]),
        batch(&s, &[(Some("a"), 20 * MIN + 5 * SEC, "pro")]),
    ]
}

/// The pipeline: a per-user 1-minute count on clicks, and a clicks × profiles join per user
/// and minute (last row of each side, emitted at close). Inputs are added by `inputs`.
fn pipeline(time: TimeSource, inputs: impl FnOnce(&mut Dataflow) -> (Stream, Stream)) -> Dataflow {
    let mut flow = Dataflow::new("shop");
    let (c, p) = inputs(&mut flow);
    let clock = EventClock::new("ts").wait_for_system_duration(TimeDelta::minutes(5)).unwrap();
    let minute = TumblingWindower::new(TimeDelta::minutes(1)).unwrap();
    let count = count_window("per_minute", c.schema(), clock.clone(), minute, KeySpec::columns(["user"]))
        .time_source(time.clone());
    flow.window(&c, count).unwrap();
    let join = join_window("joined", &[c.key_on(["user"]), p.key_on(["user"])], clock, minute)
        .insert_mode(InsertMode::Last)
        .emit_mode(EmitMode::Final)
        .side_names(["click", "profile"])
        .time_source(time);
    flow.join("joined", &[&c, &p], join).unwrap();
    flow
}

fn pushed_pipeline() -> Dataflow {
    pipeline(TimeSource::Real, |f| {
        (f.pushed_input("clicks", clicks_schema()), f.pushed_input("profiles", profiles_schema()))
    })
}

/// Every output name in ListFlights order.
fn output_names() -> Vec<String> {
    let mut names = Vec::new();
    for step in ["per_minute", "joined"] {
        names.extend(Port::ALL.map(|p| p.output_name(step)));
    }
    names
}

/// Rows as sorted strings (a canonical multiset of one output).
fn rows(batches: &[RecordBatch]) -> Vec<String> {
    let mut out = Vec::new();
    for b in batches {
        let fmt: Vec<ArrayFormatter> = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &FormatOptions::default()).unwrap())
            .collect();
        for i in 0..b.num_rows() {
            out.push(fmt.iter().map(|f| f.value(i).to_string()).collect::<Vec<_>>().join(" | "));
        }
    }
    out.sort();
    out
}

fn write_parquet(path: &Path, schema: &SchemaRef, batches: &[RecordBatch]) {
    let file = std::fs::File::create(path).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, schema.clone(), None).unwrap();
    for b in batches {
        w.write(b).unwrap();
    }
    w.close().unwrap();
}

/// The same pipeline in replay mode over Parquet files holding `clicks` and `profiles`
/// (read back in the same batches), by output name.
fn file_run(clicks: &[RecordBatch], profiles: &[RecordBatch]) -> Vec<(String, Vec<String>)> {
    let dir = tempfile::tempdir().unwrap();
    let (cp, pp) = (dir.path().join("clicks.parquet"), dir.path().join("profiles.parquet"));
    write_parquet(&cp, &clicks_schema(), clicks);
    write_parquet(&pp, &profiles_schema(), profiles);
    let size = |bs: &[RecordBatch]| bs.first().map_or(1, RecordBatch::num_rows);
    let flow = pipeline(TimeSource::replay(), |f| {
        (
            f.input("clicks", ParquetSource::open(&cp, size(clicks)).unwrap()),
            f.input("profiles", ParquetSource::open(&pp, size(profiles)).unwrap()),
        )
    });
    let out = flow.run().unwrap();
    let mut result = Vec::new();
    for step in ["per_minute", "joined"] {
        for port in Port::ALL {
            result.push((port.output_name(step), rows(port.batches(&out[step]))));
        }
    }
    result
}

async fn start(options: ServeOptions) -> (FlightServer, FlightClient) {
    let server =
        FlightServer::start(pushed_pipeline().into_runtime().0, "127.0.0.1:0".parse().unwrap(), options).await.unwrap();
    let client = connect(&server).await;
    (server, client)
}

fn options() -> ServeOptions {
    ServeOptions { timer_interval: Duration::from_millis(50), ..ServeOptions::quiet() }
}

async fn connect(server: &FlightServer) -> FlightClient {
    let channel = tonic::transport::Endpoint::from_shared(server.url()).unwrap().connect().await.unwrap();
    FlightClient::new(channel)
}

async fn put(client: &mut FlightClient, input: &str, batches: Vec<RecordBatch>) -> Result<Vec<PutResult>, FlightError> {
    let data = FlightDataEncoderBuilder::new()
        .with_flight_descriptor(Some(FlightDescriptor::new_path(vec![input.to_string()])))
        .build(futures::stream::iter(batches.into_iter().map(Ok)));
    within("DoPut", async { client.do_put(data).await?.try_collect().await }).await
}

fn seqs(acks: &[PutResult]) -> Vec<String> {
    acks.iter().map(|a| String::from_utf8(a.app_metadata.to_vec()).unwrap()).collect()
}

fn status(e: FlightError) -> tonic::Status {
    match e {
        FlightError::Tonic(s) => *s,
        other => panic!("expected a gRPC status, got {other}"),
    }
}

async fn subscribe(client: &mut FlightClient, name: &str) -> FlightRecordBatchStream {
    within("DoGet", client.do_get(Ticket::new(name.to_string()))).await.unwrap()
}

/// Reads `stream` until it has yielded `n` rows (more may be buffered in the last batch).
async fn read_rows(stream: &mut FlightRecordBatchStream, n: usize) -> Vec<RecordBatch> {
    let mut got = Vec::new();
    while got.iter().map(RecordBatch::num_rows).sum::<usize>() < n {
        let b = within("an output batch", stream.next()).await.expect("stream ended early").unwrap();
        got.push(b);
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_inputs_over_flight_match_the_file_run() {
    let (server, mut client) = start(options()).await;
    // Subscribed before anything happened: they follow every output live.
    let mut streams = Vec::new();
    for name in output_names() {
        streams.push((name.clone(), subscribe(&mut client, &name).await));
    }

    let (c, p) = (clicks(), profiles());
    assert_eq!(seqs(&put(&mut client, "clicks", vec![c[0].clone()]).await.unwrap()), ["0"]);
    assert_eq!(seqs(&put(&mut client, "profiles", vec![p[0].clone()]).await.unwrap()), ["0"]);
    assert_eq!(seqs(&put(&mut client, "clicks", vec![c[1].clone()]).await.unwrap()), ["1"]);

    // a@20min closed a's minutes 0 and 1: a reader that arrives now gets them at once, and
    // the early reader has them live, both before shutdown.
    let mut late_reader = subscribe(&mut client, "per_minute.down").await;
    assert_eq!(late_reader.headers().get(FIRST_SEQ_HEADER).unwrap(), "0");
    let early_part = read_rows(&mut streams[0].1, 2).await;
    let late_part = read_rows(&mut late_reader, 2).await;
    assert_eq!(rows(&early_part), rows(&late_part));
    let keys_and_ids: Vec<String> =
        rows(&late_part).iter().map(|r| r.split(" | ").take(2).collect::<Vec<_>>().join(" ")).collect();
    assert_eq!(keys_and_ids, ["a 0", "a 1"]);

    assert_eq!(seqs(&put(&mut client, "profiles", vec![p[1].clone()]).await.unwrap()), ["1"]);
    let summary = within("shutdown", server.shutdown()).await.unwrap();
    assert_eq!(summary.batches_in, 4);
    assert_eq!(summary.rows_in, 11);

    let expected = file_run(&c, &p);
    // The comparison covers every kind of output: results, late rows, metadata, errors.
    for name in ["per_minute.down", "per_minute.late", "per_minute.meta", "per_minute.errors", "joined.down"] {
        assert!(!expected.iter().find(|(n, _)| n == name).unwrap().1.is_empty(), "{name} is empty");
    }
    for ((name, mut stream), (ref_name, ref_rows)) in streams.into_iter().zip(expected) {
        assert_eq!(name, ref_name);
        let mut got: Vec<RecordBatch> = if name == "per_minute.down" { early_part.clone() } else { Vec::new() };
        got.extend(within("the rest of an output", (&mut stream).try_collect::<Vec<_>>()).await.unwrap());
        assert_eq!(rows(&got), ref_rows, "output {name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_flights_get_flight_info_and_get_schema_describe_inputs_and_outputs() {
    let (server, mut client) = start(options()).await;
    let infos: Vec<_> =
        within("ListFlights", async { client.list_flights(Vec::<u8>::new()).await?.try_collect::<Vec<_>>().await })
            .await
            .unwrap();
    let runtime = pushed_pipeline().into_runtime().0;
    let mut expected: Vec<(String, SchemaRef, bool)> =
        vec![("clicks".into(), clicks_schema(), false), ("profiles".into(), profiles_schema(), false)];
    expected.extend(runtime.outputs().into_iter().map(|(step, port, s)| (port.output_name(&step), s, true)));
    assert_eq!(infos.len(), 10);
    assert_eq!(expected.iter().skip(2).map(|e| e.0.clone()).collect::<Vec<_>>(), output_names());
    for (info, (name, schema, is_output)) in infos.into_iter().zip(expected) {
        let desc = info.flight_descriptor.clone().unwrap();
        assert_eq!(desc.path, std::slice::from_ref(&name));
        let tickets: Vec<_> = info.endpoint.iter().map(|e| e.ticket.clone().unwrap().ticket).collect();
        if is_output {
            assert_eq!(tickets, [name.as_bytes()]);
        } else {
            assert!(tickets.is_empty(), "inputs cannot be read: {name}");
            // Nothing put yet (and no checkpoints): the next batch is number 0.
            assert_eq!(info.app_metadata, "input; next batch 0", "{name}");
        }
        assert_eq!(&info.clone().try_decode_schema().unwrap(), schema.as_ref(), "{name}");
        let one = client.get_flight_info(desc.clone()).await.unwrap();
        assert_eq!(one.flight_descriptor, info.flight_descriptor);
        assert_eq!(&client.get_schema(desc).await.unwrap(), schema.as_ref(), "{name}");
    }
    let e = status(client.get_schema(FlightDescriptor::new_path(vec!["nope".into()])).await.unwrap_err());
    assert_eq!(e.code(), Code::NotFound);
    assert!(e.message().contains("\"clicks\", \"profiles\"") && e.message().contains("\"joined.errors\""), "{e}");
    within("shutdown", server.shutdown()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_mismatch_is_refused_naming_what_differs_and_the_server_keeps_serving() {
    let (server, mut client) = start(options()).await;
    let wrong = Arc::new(Schema::new(vec![
        Field::new("user", DataType::Utf8, true),
        Field::new("ts", DataType::Int64, false),
        Field::new("referrer", DataType::Utf8, false),
    ]));
    let b = RecordBatch::try_new(
        wrong,
        vec![
            Arc::new(StringArray::from(vec!["a"])),
            Arc::new(arrow::array::Int64Array::from(vec![0])),
            Arc::new(StringArray::from(vec!["x"])),
        ],
    )
    .unwrap();
    let e = status(put(&mut client, "clicks", vec![b]).await.unwrap_err());
    assert_eq!(e.code(), Code::InvalidArgument);
    for part in [
        "input \"clicks\"",
        "missing field(s) page: Utf8 not null",
        "extra field(s) referrer: Utf8 not null",
        "field \"ts\" has type Int64, the input expects Timestamp(ms, \"UTC\")",
    ] {
        assert!(e.message().contains(part), "{part:?} not in: {}", e.message());
    }

    // Nullable where the input is not null.
    let nullable_page = Arc::new(Schema::new(vec![
        Field::new("user", DataType::Utf8, true),
        Field::new("ts", ts_type(), false),
        Field::new("page", DataType::Utf8, true),
    ]));
    let c = clicks()[0].clone();
    let b = RecordBatch::try_new(nullable_page, c.columns().to_vec()).unwrap();
    let e = status(put(&mut client, "clicks", vec![b]).await.unwrap_err());
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("field \"page\" is declared nullable"), "{}", e.message());

    // An unknown input names the inputs.
    let e = status(put(&mut client, "klicks", vec![c.clone()]).await.unwrap_err());
    assert_eq!(e.code(), Code::NotFound);
    assert!(e.message().contains("no input \"klicks\"; its inputs are \"clicks\", \"profiles\""), "{}", e.message());

    // An unknown ticket names the outputs.
    let e = status(client.do_get(Ticket::new("per_minute.window")).await.unwrap_err());
    assert_eq!(e.code(), Code::NotFound);
    assert!(e.message().contains("\"per_minute.down\", \"per_minute.late\""), "{}", e.message());

    // Nothing was applied, and the server still takes good batches.
    assert_eq!(seqs(&put(&mut client, "clicks", vec![c]).await.unwrap()), ["0"]);
    let summary = within("shutdown", server.shutdown()).await.unwrap();
    assert_eq!((summary.batches_in, summary.rows_in), (1, 5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_disconnects_mid_put_loses_nothing_acknowledged() {
    let (server, mut reader) = start(options()).await;
    let mut streams = Vec::new();
    for name in output_names() {
        streams.push((name.clone(), subscribe(&mut reader, &name).await));
    }
    let c = clicks();
    let extra = batch(&clicks_schema(), &[(Some("b"), 40 * MIN, "/later"), (Some("c"), 41 * MIN, "/")]);

    // Client 1 streams batches one at a time, waits for each acknowledgement, then vanishes
    // with its DoPut still open (no end of stream).
    let (mut tx, rx) = futures::channel::mpsc::unbounded::<Result<RecordBatch, FlightError>>();
    let mut client1 = connect(&server).await;
    let data = FlightDataEncoderBuilder::new()
        .with_flight_descriptor(Some(FlightDescriptor::new_path(vec!["clicks".into()])))
        .build(rx);
    let mut acks = within("DoPut", client1.do_put(data)).await.unwrap();
    for (i, b) in c.iter().enumerate() {
        tx.send(Ok(b.clone())).await.unwrap();
        let ack = within("ack", acks.next()).await.unwrap().unwrap();
        assert_eq!(ack.app_metadata, i.to_string());
    }
    drop(acks);
    drop(client1);

    // The server is still up; a new client continues where the first stopped.
    let mut client2 = connect(&server).await;
    assert_eq!(seqs(&put(&mut client2, "clicks", vec![extra.clone()]).await.unwrap()), ["2"]);
    drop(tx);
    within("shutdown", server.shutdown()).await.unwrap();

    let mut all = c.clone();
    all.push(extra);
    let expected = file_run(&all, &[]);
    for ((name, stream), (_, ref_rows)) in streams.into_iter().zip(expected) {
        let got: Vec<RecordBatch> = within("an output", stream.try_collect()).await.unwrap();
        assert_eq!(rows(&got), ref_rows, "output {name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_open_windows_flushes_them_to_readers_and_stops_open_puts() {
    let (server, mut client) = start(options()).await;
    let mut down = subscribe(&mut client, "per_minute.down").await;

    // A producer keeps its DoPut open after one acknowledged batch.
    let (mut tx, rx) = futures::channel::mpsc::unbounded::<Result<RecordBatch, FlightError>>();
    let mut producer = connect(&server).await;
    let data = FlightDataEncoderBuilder::new()
        .with_flight_descriptor(Some(FlightDescriptor::new_path(vec!["clicks".into()])))
        .build(rx);
    let mut acks = within("DoPut", producer.do_put(data)).await.unwrap();
    tx.send(Ok(clicks()[0].clone())).await.unwrap();
    assert_eq!(within("ack", acks.next()).await.unwrap().unwrap().app_metadata, "0");

    // No window can close yet: every watermark is minutes before every window end.
    assert!(tokio::time::timeout(Duration::from_millis(300), down.next()).await.is_err());

    let summary = within("shutdown", server.shutdown()).await.unwrap();
    assert_eq!(summary.rows_in, 5);
    assert_eq!(summary.rows_out["per_minute.down"], 4);
    let got: Vec<RecordBatch> = within("the flushed windows", (&mut down).try_collect()).await.unwrap();
    let keys_and_ids: Vec<String> =
        rows(&got).iter().map(|r| r.split(" | ").take(2).collect::<Vec<_>>().join(" ")).collect();
    assert_eq!(keys_and_ids, ["a 0", "a 1", "b 0", "b 1"]);

    // The open DoPut was told the server stopped; its acknowledged batch was applied above.
    // (Graceful shutdown waits for that call's status to be sent.)
    let end = within("the end of the open DoPut", acks.next()).await.expect("a status, not a silent end");
    let s = status(end.expect_err("no ack after shutdown"));
    assert_eq!(s.code(), Code::Unavailable, "{s}");
    assert!(s.message().contains("after 1 acknowledged batches"), "{s}");
    drop(tx);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_reader_after_retention_dropped_the_head_learns_where_it_starts() {
    let retention = Retention { max_batches: 1, max_bytes: usize::MAX };
    let (server, mut client) = start(ServeOptions { retention, ..options() }).await;
    let c = clicks();
    put(&mut client, "clicks", c.clone()).await.unwrap(); // closes a's minutes 0, 1: batch 0
    put(&mut client, "clicks", vec![batch(&clicks_schema(), &[(Some("b"), 30 * MIN, "/")])]).await.unwrap(); // b's: batch 1
    let mut late = subscribe(&mut client, "per_minute.down").await;
    assert_eq!(late.headers().get(FIRST_SEQ_HEADER).unwrap(), "1");
    let got = read_rows(&mut late, 2).await;
    let keys: Vec<String> = rows(&got).iter().map(|r| r.split(" | ").take(2).collect::<Vec<_>>().join(" ")).collect();
    assert_eq!(keys, ["b 0", "b 1"]);

    // windrow's own readers refuse to start mid-stream: a FlightSource (and so a `kind =
    // "flight"` input) names the dropped head instead of silently missing a's windows.
    let url = server.url();
    let refused =
        tokio::task::spawn_blocking(move || FlightSource::connect(&url, b"per_minute.down".to_vec())).await.unwrap();
    let e = refused.err().expect("a reader that would miss batches is refused");
    assert!(e.to_string().contains("no longer holds its first 1 batch"), "{e}");
    within("shutdown", server.shutdown()).await.unwrap();
}

/// A pipeline of one pushed input with a live step built by `step`.
fn live_server_flow(step: impl FnOnce(&SchemaRef) -> WindowOpBuilder) -> windrow::flow::FlowRuntime {
    let mut flow = Dataflow::new("live");
    let input = flow.pushed_input("clicks", clicks_schema());
    flow.window(&input, step(&clicks_schema())).unwrap();
    flow.into_runtime().0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_timers_close_system_clock_windows_and_idle_event_time_keys() {
    let second = TumblingWindower::new(TimeDelta::seconds(1)).unwrap();
    let runtime = live_server_flow(|s| {
        count_window("by_arrival", s, SystemClock::new(), second, KeySpec::columns(["user"]))
            .time_source(TimeSource::Real)
    });
    let server = FlightServer::start(runtime, "127.0.0.1:0".parse().unwrap(), options()).await.unwrap();
    let mut client = connect(&server).await;
    let mut down = subscribe(&mut client, "by_arrival.down").await;
    put(&mut client, "clicks", vec![clicks()[0].clone()]).await.unwrap();
    // Nothing else arrives: only the timers can close these windows, within about a second.
    let got = read_rows(&mut down, 2).await;
    let counts: Vec<String> =
        rows(&got).iter().map(|r| format!("{} {}", &r[..1], r.rsplit(" | ").next().unwrap())).collect();
    assert_eq!(counts, ["a 2", "b 2"]);
    within("shutdown", server.shutdown()).await.unwrap();

    // EventClock: a key that goes quiet has its window closed by the timer as system time
    // advances its watermark (spec §11.3), without any further row or shutdown.
    let runtime = live_server_flow(|s| {
        let clock = EventClock::new("ts").wait_for_system_duration(TimeDelta::zero()).unwrap();
        count_window("idle", s, clock, second, KeySpec::columns(["user"])).time_source(TimeSource::Real)
    });
    let server = FlightServer::start(runtime, "127.0.0.1:0".parse().unwrap(), options()).await.unwrap();
    let mut client = connect(&server).await;
    let mut down = subscribe(&mut client, "idle.down").await;
    let now = Utc::now().timestamp_millis();
    put(&mut client, "clicks", vec![batch(&clicks_schema(), &[(Some("q"), now, "/")])]).await.unwrap();
    let got = read_rows(&mut down, 1).await;
    assert!(rows(&got)[0].starts_with(&format!("q | {}", now.div_euclid(1000))), "{:?}", rows(&got));
    within("shutdown", server.shutdown()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flight_source_feeds_a_dataflow_from_a_running_server() {
    let (server, mut client) = start(options()).await;
    let (c, p) = (clicks(), profiles());
    put(&mut client, "clicks", c.clone()).await.unwrap();
    put(&mut client, "profiles", p.clone()).await.unwrap();

    let url = server.url();
    let source =
        tokio::task::spawn_blocking(move || FlightSource::connect(&url, "per_minute.down")).await.unwrap().unwrap();
    // Windows per user per hour, counted from the served per-minute windows.
    let downstream = |source: Box<dyn FnOnce(&mut Dataflow) -> Stream + Send>| {
        let mut flow = Dataflow::new("hourly");
        let windows = source(&mut flow);
        let clock = EventClock::new("window_start").wait_for_system_duration(TimeDelta::days(1)).unwrap();
        let hour = TumblingWindower::new(TimeDelta::hours(1)).unwrap();
        flow.window(&windows, count_window("per_hour", windows.schema(), clock, hour, KeySpec::columns(["user"])))
            .unwrap();
        flow.run().unwrap().remove("per_hour").unwrap()
    };
    let schema = source.schema();
    let run = tokio::task::spawn_blocking(move || downstream(Box::new(move |f| f.input("windows", source))));
    within("shutdown", server.shutdown()).await.unwrap();
    let via_flight = within("the downstream run", run).await.unwrap();

    // The same downstream over the file run's per-minute windows.
    let mut reference = pipeline(TimeSource::replay(), |f| {
        (
            f.input("clicks", MemorySource::new(clicks_schema(), c)),
            f.input("profiles", MemorySource::new(profiles_schema(), p)),
        )
    })
    .run()
    .unwrap();
    let minute_windows = reference.remove("per_minute").unwrap().down;
    let expected = downstream(Box::new(move |f| f.input("windows", MemorySource::new(schema, minute_windows))));
    assert_eq!(rows(&via_flight.down), rows(&expected.down));
    // a: minutes 0, 1 and 20 of hour 0; b: minutes 0 and 1.
    let counts: Vec<String> =
        rows(&via_flight.down).iter().map(|r| format!("{} {}", &r[..1], r.rsplit(" | ").next().unwrap())).collect();
    assert_eq!(counts, ["a 3", "b 2"]);
}

#[test]
fn flight_source_reports_a_refused_ticket() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let server = rt.block_on(start(options())).0;
    let err = FlightSource::connect_timeout(&server.url(), "nope.down", Duration::from_secs(10)).err().unwrap();
    let msg = err.to_string();
    assert!(msg.contains("ticket \"nope.down\"") && msg.contains("per_minute.down"), "{msg}");
    rt.block_on(server.shutdown()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_error_ends_the_put_with_a_status_naming_the_step() {
    let runtime = live_server_flow(|s| {
        let clock = EventClock::new("ts").wait_for_system_duration(TimeDelta::minutes(5)).unwrap();
        let minute = TumblingWindower::new(TimeDelta::minutes(1)).unwrap();
        count_window("strict_count", s, clock, minute, KeySpec::columns(["user"]))
            .strict(true)
            .time_source(TimeSource::Real)
    });
    let server = FlightServer::start(runtime, "127.0.0.1:0".parse().unwrap(), options()).await.unwrap();
    let mut client = connect(&server).await;
    let good = batch(&clicks_schema(), &[(Some("a"), 0, "/")]);
    // The second batch has a null user, which strict mode refuses; the third is never applied.
    let e =
        status(put(&mut client, "clicks", vec![good.clone(), clicks()[0].clone(), good.clone()]).await.unwrap_err());
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("step \"strict_count\"") && e.message().contains("row 3"), "{}", e.message());
    // Only the first batch was applied; the server goes on.
    assert_eq!(seqs(&put(&mut client, "clicks", vec![good]).await.unwrap()), ["1"]);
    let summary = within("shutdown", server.shutdown()).await.unwrap();
    assert_eq!(summary.rows_out["strict_count.down"], 1); // a, minute 0, count 2
}
