//! `agg_window` over sliding windows: the average time spent on each page over the last
//! 5 minutes, updated every minute.
//!
//! A sliding window of length 5 min and offset 1 min starts at every whole minute and lasts
//! 5 minutes, so each click belongs to 5 windows. The data is built in memory: a dozen
//! page views of two pages between 09:00 and 09:08 UTC, in arrival order.
//!
//! ```sh
//! cargo run --example sliding_average
//! ```

use std::error::Error;
use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow::compute::{SortColumn, lexsort_to_indices, take_record_batch};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::util::pretty::pretty_format_batches;
use chrono::{DateTime, TimeDelta, Utc};

use windrow::prelude::*;

fn main() -> Result<(), Box<dyn Error>> {
    let nine: DateTime<Utc> = "2024-03-12T09:00:00Z".parse()?;
    let at = |min: i64, sec: i64| (nine + TimeDelta::minutes(min) + TimeDelta::seconds(sec)).timestamp_millis();

    // (page, event time, duration on the page in ms), in the order the clicks arrived.
    let views = [
        ("/", at(0, 5), 4_000),
        ("/checkout", at(0, 40), 30_000),
        ("/", at(1, 10), 6_000),
        ("/", at(2, 30), 2_000),
        ("/checkout", at(3, 0), 60_000),
        ("/", at(3, 50), 8_000),
        ("/checkout", at(2, 55), 45_000), // arrives 5 s after 03:00, still within the 10 s wait
        ("/", at(5, 20), 3_000),
        ("/checkout", at(6, 15), 20_000),
        ("/", at(7, 45), 5_000),
        ("/checkout", at(7, 59), 40_000),
        ("/", at(8, 30), 7_000),
    ];
    let schema = Arc::new(Schema::new(vec![
        Field::new("page", DataType::Utf8, false),
        Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())), false),
        Field::new("duration_ms", DataType::Int64, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from_iter_values(views.iter().map(|v| v.0))),
            Arc::new(TimestampMillisecondArray::from_iter_values(views.iter().map(|v| v.1)).with_timezone("UTC")),
            Arc::new(Int64Array::from_iter_values(views.iter().map(|v| v.2))),
        ],
    )?;

    // Windows [09:00 + k min, 09:05 + k min): aligned to 09:00 so the edges fall on whole
    // minutes and window 0 starts at 09:00. Windows that start before 09:00 (k < 0) also
    // contain the first clicks.
    let windower = SlidingWindower::new(TimeDelta::minutes(5), TimeDelta::minutes(1))?.align_to(nine);
    let clock = EventClock::new("ts").wait_for_system_duration(TimeDelta::seconds(10))?;
    let pages = key_on(&schema, ["page"]);
    // agg_window computes built-in aggregates incrementally in columnar state; for sliding
    // windows each click updates one 1-minute pane and a window merges its 5 panes at close.
    let mut op = agg_window(
        "avg_time_on_page",
        &pages,
        clock,
        windower,
        vec![Agg::count().alias("views"), Agg::mean("duration_ms").alias("avg_duration_ms")],
    )
    .build()?;

    // Two micro-batches, to show that results do not depend on how the stream is cut.
    let out = op.run([&batch.slice(0, 6), &batch.slice(6, batch.num_rows() - 6)])?;

    // Closed windows leave per key as their watermark passes; sort for reading.
    let down = out.down_batch()?;
    let order = lexsort_to_indices(
        &[
            SortColumn { values: Arc::clone(down.column(0)), options: None },
            SortColumn { values: Arc::clone(down.column(1)), options: None },
        ],
        None,
    )?;
    println!("average time on page, 5-minute windows every minute:");
    println!("{}", pretty_format_batches(&[take_record_batch(&down, &order)?])?);
    let [windows, late, _, _] = out.row_counts();
    println!("{} clicks, {windows} windows, {late} late (row, window) pairs", batch.num_rows());
    Ok(())
}
