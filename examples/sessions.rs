//! `collect_window` over session windows: the pages each user visited per browsing session.
//!
//! A session is a run of a user's clicks at most 30 s apart. With `ordered(false)` rows are
//! applied as they arrive (bytewax's unordered mode), so a delayed click that falls between
//! two sessions of its user *merges* them: the merged session keeps the smaller id and the
//! `meta` output lists every id it absorbed in `merged_ids`, and lists are in arrival order.
//! The same input is then run in ordered mode (the default for `collect_window`), where rows
//! are applied in timestamp order once the watermark passes them: no merge ever happens and
//! lists are in timestamp order.
//!
//! ```sh
//! cargo run --example sessions
//! ```

use std::error::Error;
use std::sync::Arc;

use arrow::array::{RecordBatch, StringArray, TimestampMillisecondArray};
use arrow::compute::{SortColumn, lexsort_to_indices, take_record_batch};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::util::pretty::pretty_format_batches;
use chrono::{DateTime, TimeDelta, Utc};

use windrow::prelude::*;

fn main() -> Result<(), Box<dyn Error>> {
    let ten: DateTime<Utc> = "2024-03-12T10:00:00Z".parse()?;
    let at = |sec: i64| (ten + TimeDelta::seconds(sec)).timestamp_millis();

    // (user, event time, page), in arrival order.
    let clicks = [
        ("ana", at(0), "/"),
        ("ana", at(20), "/search"),
        ("ben", at(25), "/"),
        ("ana", at(70), "/product/1042"), // 50 s after /search: a new session
        ("ben", at(40), "/blog"),
        ("ben", at(30), "/search"), // arrives after /blog, happened before it
        ("ana", at(90), "/cart"),
        // Delayed by a minute, but within the 60 s wait (ana's watermark is 90 s − 60 s).
        // 25 s after /search and 25 s before /product/1042: it bridges ana's two sessions.
        ("ana", at(45), "/category/shoes"),
        ("ben", at(200), "/help"), // 160 s after /blog: ben's second session
    ];
    let schema = Arc::new(Schema::new(vec![
        Field::new("user", DataType::Utf8, false),
        Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())), false),
        Field::new("page", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from_iter_values(clicks.iter().map(|c| c.0))),
            Arc::new(TimestampMillisecondArray::from_iter_values(clicks.iter().map(|c| c.1)).with_timezone("UTC")),
            Arc::new(StringArray::from_iter_values(clicks.iter().map(|c| c.2))),
        ],
    )?;
    let users = key_on(&schema, ["user"]);
    let clock = EventClock::new("ts").wait_for_system_duration(TimeDelta::seconds(60))?;
    let sessions = SessionWindower::new(TimeDelta::seconds(30))?;

    for ordered in [false, true] {
        // Collect one column (`page`) instead of whole rows.
        let mut op = collect_window("pages_per_session", &users, clock.clone(), sessions)
            .column("page")
            .ordered(ordered)
            .build()?;
        // One click per micro-batch, as a live stream would deliver them.
        let rows: Vec<RecordBatch> = (0..batch.num_rows()).map(|i| batch.slice(i, 1)).collect();
        let out = op.run(&rows)?;

        println!("=== ordered = {ordered}");
        println!("sessions (down):\n{}", pretty_format_batches(&[sorted(&out.down_batch()?)?])?);
        println!("window metadata (meta):\n{}", pretty_format_batches(&[sorted(&out.meta_batch()?)?])?);
    }
    Ok(())
}

/// Sorts an output batch by its first two columns (key, window id) for reading.
fn sorted(batch: &RecordBatch) -> Result<RecordBatch, Box<dyn Error>> {
    let by = |i: usize| SortColumn { values: Arc::clone(batch.column(i)), options: None };
    Ok(take_record_batch(batch, &lexsort_to_indices(&[by(0), by(1)], None)?)?)
}
