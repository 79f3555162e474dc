//! `join_window`: join user actions with profile updates per user in 1-hour windows.
//!
//! Side 0 is a stream of page views, side 1 a stream of profile updates, both keyed by user.
//! With `last`/`final` each user-hour emits once at close: the latest view next to the latest
//! profile (null where a side had none). With `product`/`complete` a row is emitted as soon as
//! both sides have a value, pairing every view and profile seen so far in that round.
//!
//! Run: `cargo run --example join`

use std::sync::Arc;

use arrow::array::{RecordBatch, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::util::pretty::print_batches;
use chrono::{TimeDelta, TimeZone, Utc};
use windrow::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let ts = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
    let views = Arc::new(Schema::new(vec![
        Field::new("user", DataType::Utf8, false),
        Field::new("ts", ts.clone(), false),
        Field::new("page", DataType::Utf8, false),
    ]));
    let profiles = Arc::new(Schema::new(vec![
        Field::new("user", DataType::Utf8, false),
        Field::new("ts", ts, false),
        Field::new("plan", DataType::Utf8, false),
    ]));
    let t0 = Utc.with_ymd_and_hms(2024, 1, 1, 9, 0, 0).single().ok_or("bad time")?.timestamp_millis();
    let min = 60_000;

    let view_batch = RecordBatch::try_new(
        views.clone(),
        vec![
            Arc::new(StringArray::from(vec!["ana", "bo", "ana", "ana", "bo"])),
            Arc::new(
                TimestampMillisecondArray::from(vec![
                    t0 + 5 * min,
                    t0 + 7 * min,
                    t0 + 20 * min,
                    t0 + 70 * min,
                    t0 + 80 * min,
                ])
                .with_timezone("UTC"),
            ),
            Arc::new(StringArray::from(vec!["/home", "/pricing", "/docs", "/home", "/blog"])),
        ],
    )?;
    let profile_batch = RecordBatch::try_new(
        profiles.clone(),
        vec![
            Arc::new(StringArray::from(vec!["ana", "ana", "bo"])),
            Arc::new(
                TimestampMillisecondArray::from(vec![t0 + min, t0 + 10 * min, t0 + 65 * min]).with_timezone("UTC"),
            ),
            Arc::new(StringArray::from(vec!["free", "pro", "team"])),
        ],
    )?;

    let sides = [key_on(&views, ["user"]), key_on(&profiles, ["user"])];
    let clock = EventClock::new("ts").wait_for_system_duration(TimeDelta::minutes(5))?;
    let hourly = TumblingWindower::new(TimeDelta::hours(1))?;
    for (insert, emit) in [(InsertMode::Last, EmitMode::Final), (InsertMode::Product, EmitMode::Complete)] {
        let mut join = join_window("views_x_profiles", &sides, clock.clone(), hourly)
            .insert_mode(insert)
            .emit_mode(emit)
            .side_names(["view", "profile"])
            .build()?;
        let out = join.run(&[vec![view_batch.clone()], vec![profile_batch.clone()]])?;
        println!("insert_mode {insert:?}, emit_mode {emit:?}:");
        print_batches(&[out.down_batch()?])?;
    }
    Ok(())
}
