//! SQL with DataFusion: query window outputs and files, and write windowed aggregations in
//! SQL that windrow's operator runs.
//!
//! **Outputs as tables.** [`register_output`] registers one [`WindowOut`] under the
//! convention below; [`context_for`] returns a [`SessionContext`] with every output of a
//! [`Dataflow::run`](crate::flow::Dataflow::run) registered; [`register_file`] registers a
//! Parquet, Arrow IPC or CSV file with DataFusion's own readers; [`register_live`] registers a
//! live output as a streaming table that yields rows as they are sent.
//!
//! | table | content |
//! |---|---|
//! | `<name>` | `down`: the results |
//! | `<name>_late` | `late`: late rows, once per window they would have joined |
//! | `<name>_meta` | `meta`: one row per closed window |
//! | `<name>_errors` | `errors`: rows that could not be windowed |
//!
//! **Windowed aggregation in SQL.** [`context`] (or [`register_window_functions`] on your own
//! context) adds window table functions in the style of Flink's window TVFs. Arguments are
//! positional; table and column names are strings, durations `INTERVAL`s:
//!
//! | function | windows |
//! |---|---|
//! | `tumble(table, time_column, size [, wait [, offset [, scope]]])` | tumbling |
//! | `hop(table, time_column, slide, size [, wait [, offset [, scope]]])` | sliding: `size` long, one every `slide` (Flink's HOP order) |
//! | `session(table, time_column, gap [, wait [, scope]])` | sessions |
//!
//! `wait` is the event clock's allowed lateness (`INTERVAL`, or `'forever'`; default 0),
//! `offset` where window 0 starts (an `INTERVAL` after the Unix epoch or a `TIMESTAMP`;
//! default the epoch), `scope` `'key'` (one watermark per key, bytewax's behaviour and the
//! default) or `'stream'`; `NULL` keeps an optional argument's default. Each function's rows
//! are the table's columns plus `window_id`, `window_start` and `window_end`, and must be
//! aggregated directly:
//!
//! ```sql
//! SELECT user, window_start, window_end, count(*) AS clicks, avg(bytes)
//! FROM tumble('clicks', 'ts', INTERVAL '1 minute', INTERVAL '30 seconds')
//! GROUP BY user, window_start, window_end
//! ```
//!
//! The non-window `GROUP BY` columns are the key; the query runs as one `agg_window`
//! operator (per-key watermark, late rows, bytewax's window ids and bounds) inside DataFusion
//! as a `WindowExec` execution plan. Aggregates: `count(*)`, and any DataFusion aggregate
//! function of one argument (built-in or user-defined; windrow's own kernels for count, sum,
//! avg, min and max of integers and floats). Aggregate arguments may be expressions of the
//! input's columns. Late rows come from the companions `tumble_late`, `hop_late` and
//! `session_late`, which take the same arguments plus the key columns (a string such as
//! `'user'` or `'user,page'`) after the window sizes, and return the operator's `late` rows.
//!
//! Rows arrive in the input table's row order (partitions are read one after another,
//! never interleaved), so arrival order is file order, as for `windrow run`.
//!
//! ```
//! use std::sync::Arc;
//! use arrow::array::{Float64Array, RecordBatch, StringArray, TimestampMillisecondArray};
//! use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
//! use datafusion::datasource::MemTable;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let schema = Arc::new(Schema::new(vec![
//!     Field::new("user", DataType::Utf8, false),
//!     Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())), false),
//!     Field::new("bytes", DataType::Float64, false),
//! ]));
//! let batch = RecordBatch::try_new(schema.clone(), vec![
//!     Arc::new(StringArray::from(vec!["a", "a", "a", "a"])),
//!     Arc::new(TimestampMillisecondArray::from(vec![1_000, 5_000, 12_000, 11_000]).with_timezone("UTC")),
//!     Arc::new(Float64Array::from(vec![1.0, 2.0, 3.0, 4.0])),
//! ]).unwrap();
//! let ctx = windrow::sql::context();
//! ctx.register_table("events", Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap())).unwrap();
//!
//! let sums = windrow::sql::query(&ctx,
//!     "SELECT user, window_id, count(*) AS n, sum(bytes) AS total \
//!      FROM tumble('events', 'ts', INTERVAL '10 seconds') \
//!      GROUP BY user, window_id, window_start, window_end ORDER BY window_id").await.unwrap();
//! assert_eq!(windrow::sql::format_batches(&sums, windrow::sql::Format::Csv).unwrap(),
//!            "user,window_id,n,total\na,0,2,3.0\na,1,1,3.0\n");
//! // The 11 s row arrived after 12 s pushed the watermark past it: it is late.
//! let late = windrow::sql::query(&ctx,
//!     "SELECT user, window_id, bytes FROM tumble_late('events', 'ts', INTERVAL '10 seconds', 'user')").await.unwrap();
//! assert_eq!(windrow::sql::format_batches(&late, windrow::sql::Format::Csv).unwrap(),
//!            "user,window_id,bytes\na,1,4.0\n");
//! # });
//! ```

mod exec;
mod live;
mod rewrite;
mod tvf;

pub use live::{LiveSender, register_flight_output, register_live};

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::util::pretty::pretty_format_batches;
use datafusion::datasource::MemTable;
use datafusion::datasource::file_format::options::ArrowReadOptions;
use datafusion::prelude::{CsvReadOptions, ParquetReadOptions, SessionContext};

use crate::engine::WindowOut;
use crate::error::{Result, WindrowError, plan_err};
use tvf::{Kind, WindowFunction};

/// A [`SessionContext`] with windrow's window table functions installed.
///
/// Round-robin repartitioning is off: windowing depends on the order rows arrive in, and a
/// round-robin repartition (which DataFusion adds below filters, e.g. in a view) reorders them.
pub fn context() -> SessionContext {
    let ctx = SessionContext::new_with_config(ordered_config());
    register_window_functions(&ctx);
    ctx
}

/// A [`context`] for queries over live tables ([`register_live`], [`register_flight_output`]):
/// operators hand on every row at once (batch size 1, no coalescing) instead of holding rows
/// back until a full batch (8192 rows by default) has gathered, so a filtered query yields each
/// closed window as it closes. Window outputs are small; the per-batch overhead does not matter
/// there, but use [`context`] for large batch queries.
pub fn live_context() -> SessionContext {
    let config = ordered_config().with_coalesce_batches(false).with_batch_size(1);
    let ctx = SessionContext::new_with_config(config);
    register_window_functions(&ctx);
    ctx
}

/// DataFusion's defaults, except that rows keep their order into window functions.
fn ordered_config() -> datafusion::prelude::SessionConfig {
    datafusion::prelude::SessionConfig::new().with_round_robin_repartition(false)
}

/// Installs windrow's window table functions (`tumble`, `hop`, `session` and their `_late`
/// companions) and the analyzer rule that runs them on an existing context.
pub fn register_window_functions(ctx: &SessionContext) {
    for kind in [Kind::Tumble, Kind::Hop, Kind::Session] {
        for late in [false, true] {
            let f = WindowFunction { kind, late };
            ctx.register_udtf(&f.name(), Arc::new(f));
        }
    }
    ctx.add_analyzer_rule(Arc::new(rewrite::WindowAggregateRule));
}

/// Registers one operator output as in-memory tables: `down` as `name`, and `name_late`,
/// `name_meta` and `name_errors`.
///
/// # Errors
/// A name already taken, or one DataFusion refuses.
pub fn register_output(ctx: &SessionContext, name: &str, out: &WindowOut) -> Result<()> {
    let [down, late, meta, errors] = out.schemas();
    let tables = [
        (name.to_string(), down, &out.down),
        (format!("{name}_late"), late, &out.late),
        (format!("{name}_meta"), meta, &out.meta),
        (format!("{name}_errors"), errors, &out.errors),
    ];
    for (table, schema, batches) in tables {
        if ctx.table_exist(table.as_str())? {
            return plan_err(format!("table \"{table}\" is already registered"));
        }
        let mem = MemTable::try_new(schema, vec![batches.clone()])?;
        ctx.register_table(table.as_str(), Arc::new(mem))?;
    }
    Ok(())
}

/// Registers every output of a dataflow run (step id → output) with [`register_output`].
///
/// # Errors
/// As [`register_output`].
pub fn register_outputs(ctx: &SessionContext, outputs: &BTreeMap<String, WindowOut>) -> Result<()> {
    outputs.iter().try_for_each(|(step, out)| register_output(ctx, step, out))
}

/// A [`context`] with every output of a dataflow run registered (see [`register_output`]).
///
/// # Errors
/// As [`register_output`].
pub fn context_for(outputs: &BTreeMap<String, WindowOut>) -> Result<SessionContext> {
    let ctx = context();
    register_outputs(&ctx, outputs)?;
    Ok(ctx)
}

/// File extensions [`register_file`] reads.
pub const FILE_FORMATS: &str = ".parquet, .arrow / .ipc / .feather (Arrow IPC file) or .csv (with a header row)";

/// Registers a file as table `name`, chosen by extension: Parquet, Arrow IPC file, or CSV
/// with a header row (types inferred), using DataFusion's readers. A directory of such files
/// (windrow's rolling Parquet outputs and checkpointed part directories) is one table of all
/// its files of one format; hidden and unpublished parts (`.part-N.parquet.staged`) are not
/// read.
///
/// # Errors
/// An unknown extension, a directory with no files of a known format or with several, or a
/// file DataFusion cannot open; the message names the path.
pub async fn register_file(ctx: &SessionContext, name: &str, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let Some(text) = path.to_str() else {
        return plan_err(format!("path {} is not valid UTF-8", path.display()));
    };
    let ext = if path.is_dir() {
        directory_format(name, path)?
    } else if path.is_file() {
        path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase()
    } else {
        return Err(WindrowError::Data(format!("table \"{name}\": no such file or directory {}", path.display())));
    };
    let opened = match ext.as_str() {
        "parquet" => ctx.register_parquet(name, text, ParquetReadOptions::default()).await,
        "arrow" | "ipc" | "feather" => {
            let file_extension = match ext.as_str() {
                "arrow" => ".arrow",
                "ipc" => ".ipc",
                _ => ".feather",
            };
            ctx.register_arrow(name, text, ArrowReadOptions { file_extension, ..Default::default() }).await
        }
        "csv" => ctx.register_csv(name, text, CsvReadOptions::new()).await,
        _ => {
            return plan_err(format!(
                "table \"{name}\": cannot tell the format of {} from its extension; accepted: {FILE_FORMATS}",
                path.display()
            ));
        }
    };
    opened.map_err(|e| WindrowError::Data(format!("table \"{name}\": cannot read {}: {e}", path.display())))
}

/// The one known extension of the visible files in `dir`.
fn directory_format(name: &str, dir: &Path) -> Result<String> {
    const KNOWN: [&str; 5] = ["parquet", "arrow", "ipc", "feather", "csv"];
    let entries = std::fs::read_dir(dir)
        .map_err(|e| WindrowError::Data(format!("table \"{name}\": cannot list {}: {e}", dir.display())))?;
    let mut found = std::collections::BTreeSet::new();
    for entry in entries.flatten() {
        let file = entry.path();
        let hidden = file.file_name().and_then(|n| n.to_str()).is_none_or(|n| n.starts_with('.'));
        let ext = file.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
        if !hidden && file.is_file() && KNOWN.contains(&ext.as_str()) {
            found.insert(ext);
        }
    }
    match found.len() {
        1 => Ok(found.into_iter().next().unwrap_or_default()),
        0 => Err(WindrowError::Data(format!(
            "table \"{name}\": directory {} holds no {FILE_FORMATS} files (yet: a checkpointed run publishes its \
             parts at each checkpoint)",
            dir.display()
        ))),
        _ => Err(WindrowError::Data(format!(
            "table \"{name}\": directory {} mixes formats ({}); name one file or a directory of one format",
            dir.display(),
            found.into_iter().collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// Runs one SQL statement and collects its result.
///
/// # Errors
/// Planning or execution errors, as DataFusion reports them.
pub async fn query(ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>> {
    Ok(ctx.sql(sql).await?.collect().await?)
}

/// How query results are printed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    /// An aligned text table (arrow's pretty printer).
    #[default]
    Table,
    /// CSV with a header row.
    Csv,
    /// A JSON array of objects, one per row.
    Json,
}

/// Formats batches as text.
///
/// # Errors
/// A type the chosen writer cannot print.
pub fn format_batches(batches: &[RecordBatch], format: Format) -> Result<String> {
    match format {
        Format::Table => Ok(format!("{}\n", pretty_format_batches(batches)?)),
        Format::Csv => {
            let mut out = Vec::new();
            {
                let mut w = arrow::csv::WriterBuilder::new().with_header(true).build(&mut out);
                for b in batches {
                    w.write(b)?;
                }
            }
            String::from_utf8(out)
                .map_err(|e| WindrowError::Internal(format!("CSV writer produced invalid UTF-8: {e}")))
        }
        Format::Json => {
            let mut w = arrow_json::ArrayWriter::new(Vec::new());
            for b in batches {
                w.write(b)?;
            }
            w.finish()?;
            let mut out = w.into_inner();
            if out.is_empty() {
                out.extend_from_slice(b"[]"); // the writer writes nothing for no rows
            }
            out.push(b'\n');
            String::from_utf8(out)
                .map_err(|e| WindrowError::Internal(format!("JSON writer produced invalid UTF-8: {e}")))
        }
    }
}

/// `windrow sql`: registers `tables` (name, file), runs `sql` and formats the result.
///
/// # Errors
/// A duplicate table name, a file that cannot be registered, or a query error.
pub async fn run_on_files(tables: &[(String, std::path::PathBuf)], sql: &str, format: Format) -> Result<String> {
    let ctx = context();
    for (i, (name, path)) in tables.iter().enumerate() {
        if tables[..i].iter().any(|(n, _)| n == name) {
            return plan_err(format!("table \"{name}\" is given twice"));
        }
        register_file(&ctx, name, path).await?;
    }
    format_batches(&query(&ctx, sql).await?, format)
}
