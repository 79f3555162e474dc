//! SQL over a live output of a Flight-served pipeline (issue #5, part 1): the output is a
//! DataFusion streaming table; a query started before any data arrives yields the windows as
//! they close and ends when the server shuts down.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{AsArray, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, TimeUnit};
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::{FlightClient, FlightDescriptor};
use chrono::TimeDelta;
use futures::{StreamExt, TryStreamExt};
use windrow::flight::{FlightServer, ServeOptions};
use windrow::flow::Dataflow;
use windrow::prelude::*;

async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f).await.unwrap_or_else(|_| panic!("{what} took over 30 s"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_over_a_served_output_streams_windows_as_they_close() {
    let schema = Arc::new(Schema::new(vec![
        Field::new("user", DataType::Utf8, false),
        Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())), false),
    ]));
    let mut flow = Dataflow::new("live");
    let clicks = flow.pushed_input("clicks", schema.clone());
    let minute = TumblingWindower::new(TimeDelta::minutes(1)).expect("windower");
    // Replay time: windows close by event time only, so the test does not depend on the clock.
    flow.window(
        &clicks,
        count_window("per_minute", &schema, EventClock::new("ts"), minute, KeySpec::columns(["user"])),
    )
    .expect("step");
    let (runtime, _) = flow.into_runtime();
    let server = FlightServer::start(runtime, "127.0.0.1:0".parse().expect("addr"), ServeOptions::quiet())
        .await
        .expect("server");

    let ctx = windrow::sql::live_context();
    within("register", windrow::sql::register_flight_output(&ctx, "per_minute", &server.url(), "per_minute.down"))
        .await
        .expect("register the live output");
    let df = ctx.sql("SELECT user, count FROM per_minute WHERE count >= 2").await.expect("plan");
    let mut rows = df.execute_stream().await.expect("execute");

    // Minute 0: a×2, b×1; a row at minute 1 for each user closes minute 0 (wait 0).
    let put = |users: Vec<&str>, ts: Vec<i64>| {
        RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(users)),
                Arc::new(TimestampMillisecondArray::from(ts).with_timezone("UTC")),
            ],
        )
        .expect("batch")
    };
    let mut client = FlightClient::new(
        tonic::transport::Endpoint::from_shared(server.url()).expect("endpoint").connect().await.expect("connect"),
    );
    let batches = vec![put(vec!["a", "a", "b"], vec![1_000, 2_000, 3_000]), put(vec!["a", "b"], vec![61_000, 62_000])];
    let data = FlightDataEncoderBuilder::new()
        .with_flight_descriptor(Some(FlightDescriptor::new_path(vec!["clicks".to_string()])))
        .build(futures::stream::iter(batches.into_iter().map(Ok)));
    let acks: Vec<_> =
        within("DoPut", async { client.do_put(data).await.expect("put").try_collect().await }).await.expect("acks");
    assert_eq!(acks.len(), 2);

    // The query yields (a, 2) while the server is still running: minute 0 has closed.
    let first = within("the first window", rows.next()).await.expect("a batch").expect("ok");
    assert_eq!(first.num_rows(), 1);
    assert_eq!(first.column(0).as_string::<i32>().value(0), "a");
    assert_eq!(first.column(1).as_primitive::<Int64Type>().value(0), 2);

    // Shutdown closes minute 1 (a×1, b×1: filtered out) and ends the query.
    within("shutdown", server.shutdown()).await.expect("shutdown");
    let rest: Vec<RecordBatch> = within("the end of the query", rows.try_collect()).await.expect("rest");
    assert_eq!(rest.iter().map(RecordBatch::num_rows).sum::<usize>(), 0);
}

#[tokio::test]
async fn an_unknown_output_is_refused_with_its_name() {
    let mut flow = Dataflow::new("empty");
    let schema = Arc::new(Schema::new(vec![
        Field::new("user", DataType::Utf8, false),
        Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), false),
    ]));
    let s = flow.pushed_input("clicks", schema.clone());
    let minute = TumblingWindower::new(TimeDelta::minutes(1)).expect("windower");
    flow.window(&s, count_window("c", &schema, EventClock::new("ts"), minute, KeySpec::columns(["user"])))
        .expect("step");
    let server =
        FlightServer::start(flow.into_runtime().0, "127.0.0.1:0".parse().expect("addr"), ServeOptions::quiet())
            .await
            .expect("server");
    let ctx = windrow::sql::context();
    let err = windrow::sql::register_flight_output(&ctx, "t", &server.url(), "nope.down").await.expect_err("refused");
    assert!(err.to_string().contains("nope.down"), "{err}");
    server.shutdown().await.expect("shutdown");
}
