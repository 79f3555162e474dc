//! `windrow`: the command line for people who do not write Rust.
//!
//! ```sh
//! windrow                      # the bundled demo (same as `windrow run`)
//! windrow run --window sliding:5m/1m --agg mean:duration_ms --key page
//! windrow run --input events.parquet --time event_time --key device --wait forever
//! ```
//!
//! `windrow run` streams a Parquet file batch by batch through one `agg_window` operator
//! (event-time clock), prints the first closed windows as a table and a summary of the run.
//! With no arguments it runs the demo: per-user tumbling 1-minute click counts and bytes over
//! the bundled `data/clicks.parquet`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::datatypes::Schema;
use arrow::util::pretty::pretty_format_batches;
use chrono::{DateTime, TimeDelta, Utc};
use clap::{Args, Parser, Subcommand, ValueEnum};
use windrow::prelude::*;
use windrow::source::{ParquetSource, Source};

/// How often the progress line is printed on long runs.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// The accepted `--window` forms, for help and error messages.
const WINDOW_FORMS: &str = "tumbling:LEN (e.g. tumbling:1m), sliding:LEN/OFFSET (e.g. \
                            sliding:5m/1m: 5-minute windows starting every minute) or \
                            session:GAP (e.g. session:30s)";

/// The accepted duration forms, for help and error messages.
const DURATION_FORMS: &str = "an integer with a unit — ns, us, ms, s, m, h or d (e.g. 500ms, \
                              30s, 5m, 1h) — or several of them (1h30m)";

#[derive(Parser, Debug)]
#[command(
    name = "windrow",
    version,
    about = "bytewax-style windowing over Apache Arrow: run windowed aggregations over Parquet files",
    long_about = "bytewax-style windowing over Apache Arrow: run windowed aggregations over \
                  Parquet files.\n\nWith no subcommand, windrow runs `windrow run` with the given \
                  options; with no arguments at all it runs the bundled demo (per-user tumbling \
                  1-minute click counts and bytes over data/clicks.parquet).",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    #[command(flatten, next_help_heading = "Options of `run` (used when no subcommand is given)")]
    run: RunArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a windowing job over a Parquet file and print the closed windows and a summary.
    Run(RunArgs),
    /// Measure throughput on the benchmark cases; prints one JSON line per case (the format
    /// `shared/bench/peers.py --windrow-cmd` reads).
    Bench(BenchArgs),
    /// Run SQL (DataFusion) over Parquet, Arrow IPC or CSV files, including windrow's window
    /// table functions: tumble, hop, session and their _late companions.
    Sql(SqlArgs),
}

/// The options of `windrow sql`.
#[derive(Args, Debug)]
#[command(after_help = "Window table functions (see README \"SQL\"):\n  \
    tumble(table, time_column, size [, wait [, offset [, scope]]])\n  \
    hop(table, time_column, slide, size [, wait [, offset [, scope]]])\n  \
    session(table, time_column, gap [, wait [, scope]])\n  \
    tumble_late / hop_late / session_late: the same, with the key columns ('user') after the sizes\n\n\
    Example:\n  windrow sql --table clicks=data/clicks.parquet \\\n    \"SELECT user, window_start, count(*) FROM \
    tumble('clicks', 'ts', INTERVAL '1 minute', INTERVAL '30 seconds') GROUP BY user, window_start, window_end\"")]
struct SqlArgs {
    /// A table to query: NAME=PATH, the format chosen by extension (.parquet, .arrow/.ipc/.feather,
    /// .csv with a header row). Repeat for several tables.
    #[arg(long = "table", value_name = "NAME=PATH", value_parser = parse_table)]
    tables: Vec<(String, PathBuf)>,

    /// Output format: an aligned table, CSV with a header, or a JSON array of objects.
    #[arg(long, value_enum, default_value_t = SqlFormat::Table)]
    format: SqlFormat,

    /// The SQL query.
    query: String,
}

/// `--format` of `windrow sql`.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum SqlFormat {
    Table,
    Csv,
    Json,
}

fn parse_table(text: &str) -> Result<(String, PathBuf), String> {
    match text.split_once('=') {
        Some((name, path)) if !name.trim().is_empty() && !path.trim().is_empty() => {
            Ok((name.trim().to_string(), PathBuf::from(path.trim())))
        }
        _ => Err(format!("invalid table \"{text}\": expected NAME=PATH, e.g. clicks=data/clicks.parquet")),
    }
}

/// `windrow sql`: the work is in `windrow::sql`; this only sets up the async runtime.
fn sql(args: SqlArgs) -> Result<(), String> {
    let format = match args.format {
        SqlFormat::Table => windrow::sql::Format::Table,
        SqlFormat::Csv => windrow::sql::Format::Csv,
        SqlFormat::Json => windrow::sql::Format::Json,
    };
    let runtime = tokio::runtime::Runtime::new().map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let out =
        runtime.block_on(windrow::sql::run_on_files(&args.tables, &args.query, format)).map_err(|e| e.to_string())?;
    print!("{out}");
    Ok(())
}

/// The options of `windrow bench`.
#[derive(Args, Debug)]
struct BenchArgs {
    /// Benchmark dataset (Parquet with key: Utf8, ts: Timestamp(µs), value: Float64), e.g. the
    /// one `peers.py` generates. Read into memory before timing. [default: $WINDROW_BENCH_FILE;
    /// without either, a synthetic stream of --rows rows with the same recipe is generated]
    #[arg(long, value_name = "PATH")]
    data: Option<PathBuf>,

    /// Rows to generate when no dataset is given (with a dataset: use at most this many).
    #[arg(long, value_name = "N", value_parser = parse_positive)]
    rows: Option<usize>,

    /// Distinct keys in the generated stream (only without a dataset): for the 100 → 100,000
    /// keys check.
    #[arg(long, value_name = "K", default_value_t = 1000, value_parser = parse_positive)]
    keys: usize,

    /// Key shards processed in parallel. [default: $WINDROW_BENCH_THREADS, else 1]
    #[arg(long, value_name = "T", value_parser = parse_positive)]
    threads: Option<usize>,

    /// Timed runs per case after one untimed warm-up; the median is reported.
    #[arg(long, value_name = "R", default_value_t = 3, value_parser = parse_positive)]
    runs: usize,

    /// Cases to run (repeatable): tumbling_1m_count, tumbling_1m_sum, sliding_5m_1m_sum,
    /// session_30s_count. [default: all]
    #[arg(long = "case", value_name = "CASE")]
    cases: Vec<String>,

    /// Also time the tumbling count streamed from the Parquet file (reading included), reported
    /// as case `tumbling_1m_count_parquet`.
    #[arg(long)]
    streamed: bool,
}

/// The options of `windrow run`.
#[derive(Args, Debug)]
struct RunArgs {
    /// Parquet file to read, streamed in row order (row order is arrival order).
    /// [default: data/clicks.parquet in the current directory, else the one bundled with the
    /// windrow sources]
    #[arg(long, value_name = "PATH")]
    input: Option<PathBuf>,

    /// Event-time column: a Timestamp column (any unit, with or without time zone).
    #[arg(long = "time", value_name = "COL", default_value = "ts")]
    time: String,

    /// Key column; windows and watermarks are per key. Repeat for a compound key
    /// (`--key user --key page`).
    #[arg(long = "key", value_name = "COL", default_value = "user")]
    keys: Vec<String>,

    /// Windows: tumbling:LEN, sliding:LEN/OFFSET or session:GAP; durations like 500ms, 30s, 5m,
    /// 1h.
    #[arg(long, value_name = "SPEC", default_value = "tumbling:1m", value_parser = parse_window)]
    window: WindowSpec,

    /// Start of window 0 of tumbling and sliding windows, as RFC 3339
    /// (e.g. 2024-03-12T00:00:00Z). [default: the Unix epoch]
    #[arg(long, value_name = "RFC3339", value_parser = parse_instant)]
    align_to: Option<DateTime<Utc>>,

    /// Allowed lateness: a row is late when its timestamp is older than the newest timestamp
    /// seen (per key or per stream, see --scope) minus this. A duration, or `forever`
    /// (nothing is late; windows close at end of input).
    #[arg(long, value_name = "DURATION|forever", default_value = "30s", value_parser = parse_wait)]
    wait: WaitSpec,

    /// Aggregate per window: count, count:COL (non-null values), sum:COL, mean:COL, min:COL,
    /// max:COL, first:COL, last:COL or collect:COL (a list). Repeat for several.
    /// [default: count and sum:bytes]
    #[arg(long = "agg", value_name = "AGG", value_parser = parse_agg)]
    aggs: Vec<AggArg>,

    /// Whose watermark decides lateness and closing: each key's own (bytewax's behaviour) or
    /// one for the whole stream.
    #[arg(long, value_enum, default_value_t = Scope::Key)]
    scope: Scope,

    /// Worker threads (key shards processed in parallel). [default: the number of cores]
    #[arg(long, value_name = "N", value_parser = parse_positive)]
    threads: Option<usize>,

    /// Rows per micro-batch read from the file.
    #[arg(long, value_name = "N", default_value_t = 65_536, value_parser = parse_positive)]
    batch_size: usize,

    /// Closed windows (and late rows, with --output-late) to print.
    #[arg(long, value_name = "N", default_value_t = 20)]
    limit: usize,

    /// Also print the first late rows (rows that arrived after their window closed).
    #[arg(long)]
    output_late: bool,
}

/// `--scope`.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Scope {
    /// One watermark per key.
    Key,
    /// One watermark for the whole input.
    Stream,
}

/// `--window`.
#[derive(Clone, Copy, Debug)]
enum WindowSpec {
    Tumbling(TimeDelta),
    Sliding(TimeDelta, TimeDelta),
    Session(TimeDelta),
}

impl std::fmt::Display for WindowSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WindowSpec::Tumbling(l) => write!(f, "tumbling {}", show_duration(*l)),
            WindowSpec::Sliding(l, o) => write!(f, "sliding {} every {}", show_duration(*l), show_duration(*o)),
            WindowSpec::Session(g) => write!(f, "session gap {}", show_duration(*g)),
        }
    }
}

/// One `--agg`: the aggregate and the column it reads.
#[derive(Clone, Debug)]
struct AggArg {
    agg: Agg,
    column: Option<String>,
}

/// `--wait`.
#[derive(Clone, Copy, Debug)]
enum WaitSpec {
    Finite(TimeDelta),
    Forever,
}

/// Parses `500ms`, `30s`, `5m`, `1h`, `1h30m`, …
fn parse_duration(text: &str) -> Result<TimeDelta, String> {
    let bad = || format!("invalid duration \"{text}\": expected {DURATION_FORMS}");
    let s = text.trim();
    if s.is_empty() {
        return Err(bad());
    }
    let mut total = TimeDelta::zero();
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return Err(bad());
        }
        let n: i64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let part = match &rest[..unit_len] {
            "ns" => Some(TimeDelta::nanoseconds(n)),
            "us" | "µs" => Some(TimeDelta::microseconds(n)),
            "ms" => Some(TimeDelta::milliseconds(n)),
            "s" => TimeDelta::try_seconds(n),
            "m" | "min" => TimeDelta::try_minutes(n),
            "h" => TimeDelta::try_hours(n),
            "d" => TimeDelta::try_days(n),
            _ => return Err(bad()),
        };
        total = part.and_then(|p| total.checked_add(&p)).ok_or_else(|| format!("duration \"{text}\" is too large"))?;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

/// Shows a duration in the largest unit that divides it (`1m`, `90s`, `500ms`).
fn show_duration(d: TimeDelta) -> String {
    if d.is_zero() {
        return "0s".into();
    }
    let Some(ns) = d.num_nanoseconds() else {
        return format!("{}s", d.num_seconds());
    };
    const UNITS: [(i64, &str); 7] = [
        (86_400_000_000_000, "d"),
        (3_600_000_000_000, "h"),
        (60_000_000_000, "m"),
        (1_000_000_000, "s"),
        (1_000_000, "ms"),
        (1_000, "us"),
        (1, "ns"),
    ];
    UNITS.iter().find(|(per, _)| ns % per == 0).map_or_else(|| format!("{ns}ns"), |(per, u)| format!("{}{u}", ns / per))
}

fn parse_window(text: &str) -> Result<WindowSpec, String> {
    let bad = |why: String| format!("invalid window \"{text}\": {why}; accepted forms: {WINDOW_FORMS}");
    let Some((kind, params)) = text.split_once(':') else {
        return Err(bad("missing `kind:`".into()));
    };
    // Durations are parsed here (not only checked by the library) so that messages show
    // them the way they were typed.
    let positive = |what: &str, text: &str| -> Result<TimeDelta, String> {
        let d = parse_duration(text).map_err(bad)?;
        if d <= TimeDelta::zero() {
            return Err(bad(format!("the {what} must be greater than 0")));
        }
        Ok(d)
    };
    match kind.trim().to_ascii_lowercase().as_str() {
        "tumbling" => Ok(WindowSpec::Tumbling(positive("length", params)?)),
        "sliding" => {
            let Some((length, offset)) = params.split_once('/') else {
                return Err(bad("sliding windows need LEN/OFFSET".into()));
            };
            let (length, offset) = (positive("length", length)?, positive("offset", offset)?);
            if offset > length {
                return Err(bad(format!(
                    "the offset ({}) is longer than the length ({}), which would leave gaps between windows",
                    show_duration(offset),
                    show_duration(length)
                )));
            }
            Ok(WindowSpec::Sliding(length, offset))
        }
        "session" => {
            let gap = parse_duration(params).map_err(bad)?;
            if gap < TimeDelta::zero() {
                return Err(bad("the gap must not be negative".into()));
            }
            Ok(WindowSpec::Session(gap))
        }
        other => Err(bad(format!("unknown window kind \"{other}\""))),
    }
}

fn parse_wait(text: &str) -> Result<WaitSpec, String> {
    if text.trim().eq_ignore_ascii_case("forever") {
        return Ok(WaitSpec::Forever);
    }
    parse_duration(text).map(WaitSpec::Finite).map_err(|e| format!("{e}, or `forever`"))
}

fn parse_instant(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("invalid instant \"{text}\" ({e}): expected RFC 3339, e.g. 2024-03-12T00:00:00Z"))
}

fn parse_positive(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("expected a whole number >= 1, got \"{text}\"")),
    }
}

fn parse_agg(text: &str) -> Result<AggArg, String> {
    const FORMS: &str = "count, count:COL, sum:COL, mean:COL, min:COL, max:COL, first:COL, \
                         last:COL or collect:COL";
    let (func, column) = match text.split_once(':') {
        Some((f, c)) if !c.trim().is_empty() => (f.trim(), Some(c.trim())),
        Some(_) => return Err(format!("invalid aggregate \"{text}\": the column is missing; expected {FORMS}")),
        None => (text.trim(), None),
    };
    let agg = match (func.to_ascii_lowercase().as_str(), column) {
        ("count", None) => Agg::count(),
        ("count", Some(c)) => Agg::count_of(c),
        ("sum", Some(c)) => Agg::sum(c),
        ("mean" | "avg", Some(c)) => Agg::mean(c),
        ("min", Some(c)) => Agg::min(c),
        ("max", Some(c)) => Agg::max(c),
        ("first", Some(c)) => Agg::first(c),
        ("last", Some(c)) => Agg::last(c),
        ("collect", Some(c)) => Agg::collect(c),
        (f, None) if ["sum", "mean", "avg", "min", "max", "first", "last", "collect"].contains(&f) => {
            return Err(format!("invalid aggregate \"{text}\": `{f}` needs a column, e.g. {f}:bytes"));
        }
        _ => return Err(format!("invalid aggregate \"{text}\": expected {FORMS}")),
    };
    Ok(AggArg { agg, column: column.map(str::to_string) })
}

fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// The input file: `--input`, else `data/clicks.parquet` here, else the bundled one.
fn resolve_input(input: Option<PathBuf>) -> Result<PathBuf, String> {
    if let Some(p) = input {
        return Ok(p);
    }
    let local = PathBuf::from("data/clicks.parquet");
    if local.is_file() {
        return Ok(local);
    }
    let bundled = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/clicks.parquet");
    if bundled.is_file() {
        return Ok(bundled);
    }
    Err(format!(
        "no input given and the demo data is missing (looked for {} and {}); pass --input \
         PATH, or regenerate the demo data with `cargo run --example gen_sample_data` in the \
         windrow sources",
        local.display(),
        bundled.display()
    ))
}

/// `name: type, …` for messages.
fn describe_columns(schema: &Schema) -> String {
    schema.fields().iter().map(|f| format!("{}: {}", f.name(), f.data_type())).collect::<Vec<_>>().join(", ")
}

/// `1234567` → `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Rows per second, with a k/M suffix.
fn rate(rows: u64, secs: f64) -> String {
    if secs <= 0.0 {
        return "-".into();
    }
    let r = rows as f64 / secs;
    if r >= 1e6 {
        format!("{:.2} M", r / 1e6)
    } else if r >= 1e3 {
        format!("{:.1} k", r / 1e3)
    } else {
        format!("{r:.0}")
    }
}

/// Keeps the first `limit` rows of a stream of batches, and counts them all.
struct Head {
    limit: usize,
    kept: Vec<RecordBatch>,
    kept_rows: usize,
    total: u64,
}

impl Head {
    fn new(limit: usize) -> Self {
        Head { limit, kept: Vec::new(), kept_rows: 0, total: 0 }
    }

    fn offer(&mut self, batches: Vec<RecordBatch>) {
        for b in batches {
            self.total += b.num_rows() as u64;
            let take = b.num_rows().min(self.limit - self.kept_rows);
            if take > 0 {
                self.kept.push(b.slice(0, take));
                self.kept_rows += take;
            }
        }
    }

    fn print(&self, what: &str) -> Result<(), WindrowError> {
        if self.total == 0 {
            println!("no {what}");
            return Ok(());
        }
        if self.kept_rows == 0 {
            return Ok(()); // --limit 0
        }
        println!("first {} {what} (of {}):", thousands(self.kept_rows as u64), thousands(self.total));
        println!("{}", pretty_format_batches(&self.kept)?);
        Ok(())
    }
}

/// The aggregates of `--agg` (or the defaults), with their columns checked against the input
/// here so that the message can list what the file has.
fn aggregates(args: Vec<AggArg>, schema: &Schema, path: &Path) -> Result<Vec<Agg>, String> {
    let defaulted = args.is_empty();
    let args = if defaulted { vec![parse_agg("count")?, parse_agg("sum:bytes")?] } else { args };
    let mut aggs = Vec::with_capacity(args.len());
    for AggArg { agg, column } in args {
        if let Some(col) = column.filter(|c| schema.column_with_name(c).is_none()) {
            let hint = if defaulted {
                "\n(the default aggregates are count and sum:bytes; choose others with --agg)"
            } else {
                ""
            };
            return Err(format!(
                "--agg {}: column \"{col}\" is not in {}; its columns are: {}{hint}",
                agg.output_name(),
                path.display(),
                describe_columns(schema),
            ));
        }
        aggs.push(agg);
    }
    Ok(aggs)
}

/// The windower of `--window` and `--align-to`.
fn windower(window: WindowSpec, align_to: Option<DateTime<Utc>>) -> Result<Windower, String> {
    let bad = |e: WindrowError| format!("--window: {e}");
    Ok(match window {
        WindowSpec::Tumbling(length) => {
            let w = TumblingWindower::new(length).map_err(bad)?;
            align_to.map_or(w, |a| w.align_to(a)).into()
        }
        WindowSpec::Sliding(length, offset) => {
            let w = SlidingWindower::new(length, offset).map_err(bad)?;
            align_to.map_or(w, |a| w.align_to(a)).into()
        }
        WindowSpec::Session(gap) => {
            if align_to.is_some() {
                return Err(
                    "--align-to applies to tumbling and sliding windows; session windows start at their first event"
                        .into(),
                );
            }
            SessionWindower::new(gap).map_err(bad)?.into()
        }
    })
}

fn run(args: RunArgs) -> Result<(), String> {
    let path = resolve_input(args.input)?;
    // Streamed: one micro-batch of `--batch-size` rows at a time, never the whole file.
    let mut source = ParquetSource::open(&path, args.batch_size).map_err(|e| e.to_string())?;
    let schema = source.schema();

    let aggs = aggregates(args.aggs, &schema, &path)?;
    let agg_names: Vec<String> = aggs.iter().map(Agg::output_name).collect();
    let (clock, wait_text) = match args.wait {
        WaitSpec::Finite(d) => (
            EventClock::new(&args.time).wait_for_system_duration(d).map_err(|e| format!("--wait: {e}"))?,
            show_duration(d),
        ),
        WaitSpec::Forever => (EventClock::new(&args.time).wait_forever(), "forever".to_string()),
    };
    let windower = windower(args.window, args.align_to)?;
    let threads = args.threads.unwrap_or_else(default_threads);
    let (scope, scope_text) = match args.scope {
        Scope::Key => (WatermarkScope::PerKey, "per-key"),
        Scope::Stream => (WatermarkScope::PerStream, "per-stream"),
    };
    let events = key_on(&schema, args.keys.iter().cloned());
    let built = agg_window("windrow-run", &events, clock, windower, aggs).scope(scope).threads(threads).build();
    let mut op = built.map_err(|e| {
        // Messages about a missing key or time column already list the input's columns.
        let e = e.to_string();
        if e.contains("the input has columns") {
            e
        } else {
            format!("{e}\n(input {} has columns: {})", path.display(), describe_columns(&schema))
        }
    })?;
    eprintln!(
        "windrow: {} per [{}] over {}: {}, event time \"{}\", wait {wait_text}, {scope_text} watermark, {threads} thread{}",
        agg_names.join(", "),
        args.keys.join(", "),
        path.display(),
        args.window,
        args.time,
        if threads == 1 { "" } else { "s" }
    );

    let started = Instant::now();
    let mut last_progress = started;
    let mut down = Head::new(args.limit);
    let mut late = Head::new(if args.output_late { args.limit } else { 0 });
    let mut batches = 0u64;
    while let Some(batch) = source.next_batch() {
        let batch = batch.map_err(|e| e.to_string())?;
        batches += 1;
        let out = op.push(&batch).map_err(|e| e.to_string())?;
        down.offer(out.down);
        late.offer(out.late);
        if last_progress.elapsed() >= PROGRESS_EVERY {
            last_progress = Instant::now();
            let m = op.metrics();
            eprintln!(
                "  … {} rows ({} rows/s), {} late, {} windows closed, {} open",
                thousands(m.rows_in),
                rate(m.rows_in, started.elapsed().as_secs_f64()),
                thousands(m.late_rows),
                thousands(m.windows_closed),
                thousands(op.open_windows() as u64)
            );
        }
    }
    let out = op.finish().map_err(|e| e.to_string())?;
    down.offer(out.down);
    late.offer(out.late);
    let elapsed = started.elapsed().as_secs_f64();

    down.print("closed windows").map_err(|e| e.to_string())?;
    if args.output_late {
        println!();
        late.print("late rows").map_err(|e| e.to_string())?;
    }

    let m = op.metrics();
    let late_what = match args.window {
        WindowSpec::Sliding(..) => " (row, window) pairs: a late row counts once per window it missed",
        _ => "",
    };
    println!("\nsummary");
    println!(
        "  rows in         {} ({} batches of up to {})",
        thousands(m.rows_in),
        thousands(batches),
        thousands(args.batch_size as u64)
    );
    println!("  windows closed  {}", thousands(m.windows_closed));
    println!("  late rows       {}{late_what}", thousands(m.late_rows));
    println!("  error rows      {}", thousands(m.errors.values().sum()));
    for (reason, n) in &m.errors {
        println!("    {reason}: {}", thousands(*n));
    }
    println!("  elapsed         {elapsed:.3} s ({} rows/s, reading the file included)", rate(m.rows_in, elapsed));
    Ok(())
}

/// `windrow bench`: the cases of `windrow::bench`, each timed `runs` times after a warm-up.
fn bench(args: BenchArgs) -> Result<(), String> {
    use windrow::bench::{BenchCase, generate, peak_rss_bytes, reset_peak_rss, run_case};
    let env_usize = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<usize>().ok());
    let threads = args.threads.or_else(|| env_usize("WINDROW_BENCH_THREADS")).unwrap_or(1);
    let data = args.data.or_else(|| std::env::var_os("WINDROW_BENCH_FILE").map(PathBuf::from));
    let cases: Vec<BenchCase> = if args.cases.is_empty() {
        BenchCase::ALL.to_vec()
    } else {
        args.cases
            .iter()
            .map(|c| {
                BenchCase::from_name(c).ok_or_else(|| {
                    let all: Vec<&str> = BenchCase::ALL.iter().map(|c| c.name()).collect();
                    format!("unknown case {c:?}; the cases are {}", all.join(", "))
                })
            })
            .collect::<Result<_, _>>()?
    };
    let (schema, mut batches) = match &data {
        Some(path) => ParquetSource::read_all(path).map_err(|e| e.to_string())?,
        None => generate(args.rows.unwrap_or(1_000_000), args.keys, 7, 65_536),
    };
    if data.is_some() && args.keys != 1000 {
        return Err("--keys applies to the generated stream only; a dataset brings its own keys".into());
    }
    if let (Some(_), Some(limit)) = (&data, args.rows) {
        let mut left = limit;
        batches = batches
            .into_iter()
            .filter_map(|b| {
                let n = b.num_rows().min(left);
                left -= n;
                (n > 0).then(|| b.slice(0, n))
            })
            .collect();
    }
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let source = data.as_ref().map_or_else(|| "generated".to_string(), |p| p.display().to_string());
    let source = if data.is_none() { format!("{source} ({} keys)", args.keys) } else { source };
    eprintln!("windrow bench: {rows} rows from {source}, {threads} thread(s), median of {} run(s)", args.runs);
    for case in cases {
        reset_peak_rss();
        run_case(case, &schema, &batches, threads).map_err(|e| e.to_string())?; // warm-up
        let mut results = Vec::new();
        for _ in 0..args.runs {
            results.push(run_case(case, &schema, &batches, threads).map_err(|e| e.to_string())?);
        }
        results.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
        let r = &results[results.len() / 2];
        println!(
            "{{\"case\": \"{}\", \"events_per_s\": {:.0}, \"rows\": {}, \"seconds\": {:.4}, \"late\": {}, \"windows\": {}, \"threads\": {threads}, \"peak_rss_bytes\": {}}}",
            case.name(),
            r.events_per_s(),
            r.rows,
            r.seconds,
            r.late,
            r.windows,
            peak_rss_bytes().unwrap_or(0)
        );
    }
    if args.streamed {
        let Some(path) = &data else {
            return Err("--streamed needs a dataset (--data or $WINDROW_BENCH_FILE)".into());
        };
        drop(batches);
        reset_peak_rss();
        let mut op = BenchCase::TumblingCount.operator(&schema, threads).map_err(|e| e.to_string())?;
        let start = Instant::now();
        let mut src = ParquetSource::open(path, 65_536).map_err(|e| e.to_string())?;
        let (mut n, mut windows, mut late) = (0usize, 0usize, 0usize);
        while let Some(b) = src.next_batch() {
            let b = b.map_err(|e| e.to_string())?;
            n += b.num_rows();
            let out = op.push(&b).map_err(|e| e.to_string())?;
            windows += out.row_counts()[0];
            late += out.row_counts()[1];
        }
        let out = op.finish().map_err(|e| e.to_string())?;
        windows += out.row_counts()[0];
        late += out.row_counts()[1];
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{{\"case\": \"tumbling_1m_count_parquet\", \"events_per_s\": {:.0}, \"rows\": {n}, \"seconds\": {secs:.4}, \"late\": {late}, \"windows\": {windows}, \"threads\": {threads}, \"peak_rss_bytes\": {}}}",
            n as f64 / secs,
            peak_rss_bytes().unwrap_or(0)
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Run(args)) => run(args),
        Some(Command::Bench(args)) => bench(args),
        Some(Command::Sql(args)) => sql(args),
        None => run(cli.run),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
