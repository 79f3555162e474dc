//! `count_window` over a Parquet file: clicks per user per minute.
//!
//! Streams the bundled `data/clicks.parquet` (one day of a website's click stream, see
//! `data/README.md`) batch by batch through a per-user, 1-minute tumbling `count_window` with
//! an event-time clock on `ts` that waits 30 s for late clicks, then prints a few closed
//! windows, the busiest user-minute and the run's counters.
//!
//! ```sh
//! cargo run --example tumbling_count_parquet
//! ```

use std::error::Error;
use std::path::Path;

use arrow::array::{AsArray, RecordBatch};
use arrow::compute::max;
use arrow::datatypes::Int64Type;
use arrow::util::pretty::pretty_format_batches;
use chrono::TimeDelta;
use windrow::prelude::*;
use windrow::source::{ParquetSource, Source};

fn main() -> Result<(), Box<dyn Error>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/clicks.parquet");
    // The file is read 16,384 rows at a time: each batch is one micro-batch of the stream.
    let mut source = ParquetSource::open(&path, 16_384)?;
    let schema = source.schema();

    // bytewax: `count_window("count", up, EventClock(ts, wait_for_system_duration=30s),
    //                        TumblingWindower(length=1 min), key=user)`.
    // Like bytewax's, `count_window` takes the un-keyed stream and the key separately.
    let clock = EventClock::new("ts").wait_for_system_duration(TimeDelta::seconds(30))?;
    let windower = TumblingWindower::new(TimeDelta::minutes(1))?;
    let mut op = count_window("clicks_per_minute", &schema, clock, windower, KeySpec::columns(["user"])).build()?;

    // Push batches as they are read. Each push returns the windows that closed on it: a
    // user's window closes once that user's watermark (newest ts − 30 s) passes its end.
    let mut out = op.empty_output();
    while let Some(batch) = source.next_batch() {
        out.extend(op.push(&batch?)?);
    }
    // End of input: every window still open closes now.
    out.extend(op.finish()?);

    let down = out.down_batch()?;
    println!("first closed windows (down):");
    println!("{}", pretty_format_batches(&[down.slice(0, down.num_rows().min(8))])?);

    // The busiest user-minute, found with plain Arrow kernels on the output batch.
    let busiest = busiest_window(&down)?;
    println!("busiest user-minute:\n{}", pretty_format_batches(&[busiest])?);

    let m = op.metrics();
    let [windows, late, meta, errors] = out.row_counts();
    println!(
        "{} rows in: {windows} windows closed ({meta} meta rows), {late} late rows, {errors} error rows",
        m.rows_in
    );
    Ok(())
}

/// The `down` row with the largest `count`.
fn busiest_window(down: &RecordBatch) -> Result<RecordBatch, Box<dyn Error>> {
    let counts = down.column_by_name("count").ok_or("no count column")?.as_primitive::<Int64Type>();
    let top = max(counts).ok_or("no windows")?;
    let row = counts.values().iter().position(|&c| c == top).ok_or("no windows")?;
    Ok(down.slice(row, 1))
}
