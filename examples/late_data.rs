//! Late rows and error rows: where the rows that cannot be windowed go.
//!
//! * **late**: a row whose timestamp is older than its key's watermark (the newest timestamp
//!   of that key so far minus the wait) is not added to any window. It goes to the `late`
//!   output, once per window id it would have joined — never silently dropped.
//! * **errors**: a row with a null key or a null event time cannot be windowed at all; it
//!   goes to the `errors` output with a `reason`. In strict mode such a row fails the run.
//!
//! ```sh
//! cargo run --example late_data
//! ```

use std::error::Error;
use std::sync::Arc;

use arrow::array::{RecordBatch, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::util::pretty::pretty_format_batches;
use chrono::{DateTime, TimeDelta, Utc};

use windrow::prelude::*;

fn main() -> Result<(), Box<dyn Error>> {
    let ten: DateTime<Utc> = "2024-03-12T10:00:00Z".parse()?;
    let at = |sec: i64| Some((ten + TimeDelta::seconds(sec)).timestamp_millis());

    // (user, event time, page), in arrival order. `user` and `ts` are nullable here.
    let clicks = [
        (Some("ana"), at(5), "/"),
        (Some("ana"), at(50), "/search"),
        (Some("ben"), at(10), "/"),
        // ana's watermark becomes 10:01:20 − 10 s = 10:01:10, past the end of her first
        // window [10:00, 10:01): that window closes on this row.
        (Some("ana"), at(80), "/cart"),
        // 10:00:55 < ana's watermark 10:01:10: late, for window [10:00, 10:01).
        (Some("ana"), at(55), "/help"),
        (None, at(30), "/"),                 // no user: an error row
        (Some("ben"), None, "/blog"),        // no event time: an error row
        (Some("ben"), at(100), "/checkout"), // ben's watermark: 10:01:30
        // 10:01:25 < 10:01:30: late, although ben's window [10:01, 10:02) is still open.
        // Lateness compares with the watermark, not with the window's end (as in bytewax).
        (Some("ben"), at(85), "/about"),
    ];
    let schema = Arc::new(Schema::new(vec![
        Field::new("user", DataType::Utf8, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())), true),
        Field::new("page", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(clicks.iter().map(|c| c.0).collect::<StringArray>()),
            Arc::new(clicks.iter().map(|c| c.1).collect::<TimestampMillisecondArray>().with_timezone("UTC")),
            Arc::new(StringArray::from_iter_values(clicks.iter().map(|c| c.2))),
        ],
    )?;

    let users = key_on(&schema, ["user"]);
    let clock = EventClock::new("ts").wait_for_system_duration(TimeDelta::seconds(10))?;
    // Windows aligned to 10:00, so window 0 is [10:00, 10:01).
    let minutes = TumblingWindower::new(TimeDelta::minutes(1))?.align_to(ten);
    let aggs = vec![Agg::count(), Agg::collect("page")];
    let mut op = agg_window("late_and_errors", &users, clock.clone(), minutes, aggs.clone()).build()?;
    let out = op.run([&batch])?;

    println!("closed windows (down):\n{}", pretty_format_batches(&out.down)?);
    println!("late rows (late), with the window each would have joined:\n{}", pretty_format_batches(&out.late)?);
    println!("rows that cannot be windowed (errors):\n{}", pretty_format_batches(&out.errors)?);
    let m = op.metrics();
    println!("metrics: {} rows in, {} late, errors by reason {:?}", m.rows_in, m.late_rows, m.errors);

    // Strict mode: the first row that cannot be windowed fails the run instead, with a message
    // naming the batch and the row.
    let mut strict = agg_window("strict", &users, clock, minutes, aggs).strict(true).build()?;
    match strict.run([&batch]) {
        Ok(_) => println!("strict run succeeded (unexpected)"),
        Err(e) => println!("\nstrict mode: {e}"),
    }
    Ok(())
}
