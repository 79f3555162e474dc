//! `fold_window` with Rust closures: the longest page view per page and hour, and per user
//! session.
//!
//! `FoldFns` bundles bytewax's `builder` (a new accumulator per window), `folder` (fold one
//! row into it) and `merger` (combine two accumulators when session windows merge). Folds run
//! row at a time; prefer `agg_window` when a built-in aggregate fits (`Agg::max` here).
//!
//! Reads the first 30,000 clicks of the bundled `data/clicks.parquet`.
//!
//! ```sh
//! cargo run --example fold_window
//! ```

use std::error::Error;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::{SortColumn, SortOptions, lexsort_to_indices, take_record_batch};
use arrow::datatypes::{DataType, Field};
use arrow::util::pretty::pretty_format_batches;
use chrono::TimeDelta;
use windrow::prelude::*;
use windrow::source::{ParquetSource, Source};

/// Clicks read from the sample file (keeps the example fast in a debug build).
const ROWS: usize = 30_000;

fn main() -> Result<(), Box<dyn Error>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/clicks.parquet");
    let mut source = ParquetSource::open(&path, 10_000)?;
    let schema = source.schema();
    let mut batches = Vec::new();
    while let Some(b) = source.next_batch() {
        batches.push(b?);
        if batches.iter().map(RecordBatch::num_rows).sum::<usize>() >= ROWS {
            break;
        }
    }

    // The accumulator is the longest `duration_ms` so far (None before the first row; a
    // window's accumulator is built when it receives its first row, so None never leaves).
    // `Option<i64>` converts to an Int64 ScalarValue, which `FoldFns::new` uses to finish.
    let longest = FoldFns::new(
        || None::<i64>,
        |acc: Option<i64>, row: &RowView<'_>| acc.max(row.i64("duration_ms")),
        Field::new("longest_view_ms", DataType::Int64, true),
    )
    // Session windows can merge; the merger combines the two windows' accumulators.
    .with_merger(|target: Option<i64>, original: Option<i64>| target.max(original));

    let clock = EventClock::new("ts").wait_for_system_duration(TimeDelta::seconds(30))?;

    // 1. Per page and hour (tumbling windows never merge, so the merger is unused).
    let pages = key_on(&schema, ["page"]);
    let hourly = TumblingWindower::new(TimeDelta::hours(1))?;
    let mut op = fold_window("longest_per_page", &pages, clock.clone(), hourly, longest.clone()).build()?;
    let out = op.run(&batches)?;
    let down = out.down_batch()?;
    println!("longest page view per page and hour, top 10:");
    println!("{}", pretty_format_batches(&[top(&down, "longest_view_ms", 10)?])?);

    // 2. Per user session (30 s gap), unordered: a late-arriving click can merge two sessions,
    //    and then `merger(target, original)` runs.
    let users = key_on(&schema, ["user"]);
    let sessions = SessionWindower::new(TimeDelta::seconds(30))?;
    let mut op =
        fold_window("longest_per_session", &users, clock.clone(), sessions, longest.clone()).ordered(false).build()?;
    let out = op.run(&batches)?;
    let meta = out.meta_batch()?;
    let merged_ids = meta.column_by_name("merged_ids").ok_or("no merged_ids column")?.as_list::<i32>();
    let merged = (0..merged_ids.len()).filter(|&i| !merged_ids.value(i).is_empty()).count();
    println!(
        "{} user sessions closed; {merged} of them absorbed other sessions (a delayed click bridged the gap)",
        meta.num_rows()
    );
    println!("longest page views in a session, top 5:");
    println!("{}", pretty_format_batches(&[top(&out.down_batch()?, "longest_view_ms", 5)?])?);

    // Without a merger, unordered session windows are refused when the operator is built.
    let no_merger = FoldFns { merger: None, ..longest };
    let err = fold_window("no_merger", &users, clock, sessions, no_merger).ordered(false).build().err();
    println!("without a merger: {}", err.map_or_else(|| "built (unexpected)".into(), |e| e.to_string()));
    Ok(())
}

/// The `n` rows with the largest `column`, largest first.
fn top(batch: &RecordBatch, column: &str, n: usize) -> Result<RecordBatch, Box<dyn Error>> {
    let values = Arc::clone(batch.column_by_name(column).ok_or("missing column")?);
    let desc = SortOptions { descending: true, nulls_first: false };
    let order = lexsort_to_indices(&[SortColumn { values, options: Some(desc) }], Some(n))?;
    Ok(take_record_batch(batch, &order)?)
}
