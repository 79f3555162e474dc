//! A pipeline served over Arrow Flight, with a producer and a consumer talking to it.
//!
//! Starts a windrow Flight server in-process on a free loopback port with a per-user,
//! 1-minute `count_window` (event clock on `ts`, waiting 30 s for late clicks, live system
//! time). A producer `DoPut`s the first 10,000 clicks of `data/clicks.parquet` in batches of
//! 2,000 and prints each acknowledgement; a consumer `DoGet`s `clicks_per_minute.down` and
//! prints closed windows as they arrive, another counts `clicks_per_minute.late`. Then the
//! server shuts down: every open window closes and reaches the consumer, and both streams end.
//!
//! ```sh
//! cargo run --example flight_producer_consumer
//! ```

use std::error::Error;
use std::path::Path;

use arrow::array::RecordBatch;
use arrow::util::pretty::pretty_format_batches;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::{FlightClient, FlightDescriptor, Ticket};
use chrono::TimeDelta;
use futures::{StreamExt, TryStreamExt};
use windrow::flight::{FlightServer, ServeOptions};
use windrow::flow::Dataflow;
use windrow::prelude::*;
use windrow::source::{ParquetSource, Source};

const ROWS: usize = 10_000;
const BATCH: usize = 2_000;

async fn client(server: &FlightServer) -> Result<FlightClient, Box<dyn Error>> {
    let channel = tonic::transport::Endpoint::from_shared(server.url())?.connect().await?;
    Ok(FlightClient::new(channel))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn Error>> {
    // The first ROWS clicks, in batches of BATCH rows.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/clicks.parquet");
    let mut file = ParquetSource::open(&path, BATCH)?;
    let schema = file.schema();
    let mut batches: Vec<RecordBatch> = Vec::new();
    while batches.len() * BATCH < ROWS {
        match file.next_batch() {
            Some(b) => batches.push(b?),
            None => break,
        }
    }

    // The pipeline: one pushed input, one live step.
    let mut flow = Dataflow::new("clicks");
    let clicks = flow.pushed_input("clicks", schema.clone());
    let clock = EventClock::new("ts").wait_for_system_duration(TimeDelta::seconds(30))?;
    let minute = TumblingWindower::new(TimeDelta::minutes(1))?;
    flow.window(
        &clicks,
        count_window("clicks_per_minute", &schema, clock, minute, KeySpec::columns(["user"]))
            .time_source(TimeSource::Real),
    )?;
    let (runtime, _) = flow.into_runtime();
    let server = FlightServer::start(runtime, "127.0.0.1:0".parse()?, ServeOptions::default()).await?;
    println!("serving on {}", server.url());

    // Consumers subscribe first; they would get everything retained anyway.
    let mut down = client(&server).await?.do_get(Ticket::new("clicks_per_minute.down")).await?;
    let late = client(&server).await?.do_get(Ticket::new("clicks_per_minute.late")).await?;
    let consumer = tokio::spawn(async move {
        let (mut windows, mut shown) = (0usize, 0usize);
        while let Some(batch) = down.next().await {
            let batch = batch?;
            windows += batch.num_rows();
            if shown < 2 && batch.num_rows() > 0 {
                println!(
                    "consumer: {} windows closed, e.g.\n{}",
                    batch.num_rows(),
                    pretty_format_batches(&[batch.slice(0, 3.min(batch.num_rows()))])?
                );
                shown += 1;
            }
        }
        Ok::<_, Box<dyn Error + Send + Sync>>(windows)
    });
    let late_counter =
        tokio::spawn(async move { late.try_fold(0usize, |n, b| async move { Ok(n + b.num_rows()) }).await });

    // The producer: one DoPut of every batch, acknowledged one by one.
    let mut producer = client(&server).await?;
    let put = FlightDataEncoderBuilder::new()
        .with_flight_descriptor(Some(FlightDescriptor::new_path(vec!["clicks".into()])))
        .build(futures::stream::iter(batches.into_iter().map(Ok)));
    let mut acks = producer.do_put(put).await?;
    while let Some(ack) = acks.next().await {
        println!("producer: batch {} applied", String::from_utf8_lossy(&ack?.app_metadata));
    }

    // Shutdown closes every open window and flushes it to the consumers.
    let summary = server.shutdown().await?;
    let windows = consumer.await?.map_err(|e| e.to_string())?;
    let late_rows = late_counter.await??;
    println!(
        "{} rows in {} batches: {windows} windows closed, {late_rows} late rows",
        summary.rows_in, summary.batches_in
    );
    assert_eq!(windows as u64, summary.rows_out["clicks_per_minute.down"]);
    Ok(())
}
