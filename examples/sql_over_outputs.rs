//! SQL over window outputs, and the same windowed aggregation written in SQL.
//!
//! ```sh
//! cargo run --example sql_over_outputs
//! ```
//!
//! A dataflow counts page views per user in tumbling 10-second windows; its outputs are
//! registered as tables (`views`, `views_late`, `views_meta`, `views_errors`) and queried.
//! Then the input itself is registered and the same windows are computed in SQL with
//! `tumble(...)`, which runs windrow's operator: the results are identical.

use std::sync::Arc;

use arrow::array::{RecordBatch, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use chrono::TimeDelta;
use datafusion::datasource::MemTable;
use windrow::flow::Dataflow;
use windrow::prelude::*;
use windrow::source::MemorySource;
use windrow::sql::{self, Format};

fn main() -> Result<()> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("user", DataType::Utf8, false),
        Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())), false),
        Field::new("page", DataType::Utf8, false),
    ]));
    // Arrival order: ana's 4 s view arrives after her 13 s view closed [0 s, 10 s): late.
    let rows = [("ana", 1, "/"), ("bo", 2, "/search"), ("ana", 6, "/cart"), ("ana", 13, "/"), ("ana", 4, "/help")];
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(rows.iter().map(|r| r.0).collect::<Vec<_>>())),
            Arc::new(
                TimestampMillisecondArray::from(rows.iter().map(|r| r.1 * 1000).collect::<Vec<_>>())
                    .with_timezone("UTC"),
            ),
            Arc::new(StringArray::from(rows.iter().map(|r| r.2).collect::<Vec<_>>())),
        ],
    )?;

    let mut flow = Dataflow::new("pages");
    let clicks = flow.input("clicks", MemorySource::new(schema.clone(), vec![batch.clone()]));
    let ten = TumblingWindower::new(TimeDelta::seconds(10))?;
    flow.window(
        &clicks,
        count_window("views", clicks.schema(), EventClock::new("ts"), ten, KeySpec::columns(["user"])),
    )?;
    let ctx = sql::context_for(&flow.run()?)?;
    ctx.register_table("clicks", Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))?;

    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let show = |title: &str, batches: Vec<RecordBatch>| -> Result<()> {
            println!("{title}\n{}", sql::format_batches(&batches, Format::Table)?);
            Ok(())
        };
        show(
            "The dataflow's output, as a table:",
            sql::query(&ctx, "SELECT user, window_start, window_end, count FROM views ORDER BY user, window_start")
                .await?,
        )?;
        show("Its late rows:", sql::query(&ctx, "SELECT user, window_id, ts, page FROM views_late").await?)?;

        let in_sql = "SELECT user, window_start, window_end, count(*) AS count \
                      FROM tumble('clicks', 'ts', INTERVAL '10 seconds') \
                      GROUP BY user, window_start, window_end ORDER BY user, window_start";
        let from_sql = sql::query(&ctx, in_sql).await?;
        let from_flow =
            sql::query(&ctx, "SELECT user, window_start, window_end, count FROM views ORDER BY user, window_start")
                .await?;
        show("The same windows computed in SQL by tumble(...):", from_sql.clone())?;
        assert_eq!(sql::format_batches(&from_sql, Format::Csv)?, sql::format_batches(&from_flow, Format::Csv)?);
        show(
            "And their late rows, from tumble_late(...):",
            sql::query(
                &ctx,
                "SELECT user, window_id, ts, page FROM tumble_late('clicks', 'ts', INTERVAL '10 seconds', 'user')",
            )
            .await?,
        )?;
        Ok(())
    })
}
