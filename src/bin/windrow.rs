//! `windrow`: the command line for people who do not write Rust.
//!
//! ```sh
//! windrow                                   # the bundled demo (same as `windrow run`)
//! windrow run examples/pipelines/clicks_per_minute.toml
//! windrow run --input events.parquet --time event_time --key device --wait forever \
//!     --output down=out/windows.parquet
//! windrow gen --rows 1000000 --out events.parquet
//! ```
//!
//! The pipeline logic lives in the library (`windrow::pipeline`, `windrow::sink`,
//! `windrow::source`); this file parses arguments and prints.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use chrono::{DateTime, TimeDelta, Utc};
use clap::{Args, Parser, Subcommand, ValueEnum};
use windrow::pipeline::{
    InputKind, InputSpec, OutputKind, OutputSpec, Pipeline, PipelineSpec, Progress, RunMode, RunSummary, StepSpec,
    WindowKind, WindowSpec, parse_aggregate, parse_duration, parse_instant, parse_wait, show_duration,
};
use windrow::prelude::*;
use windrow::sink::{BackgroundSink, RollPolicy, Sink, open_sink};
use windrow::source::{FileFormat, ParquetSource, READ_AHEAD_BATCHES, ReadAhead, ReadOptions, Source};

/// How often the progress line is printed on long runs.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// The accepted `--window` forms, for help and error messages.
const WINDOW_FORMS: &str = "tumbling:LEN (e.g. tumbling:1m), sliding:LEN/OFFSET (e.g. \
                            sliding:5m/1m: 5-minute windows starting every minute) or \
                            session:GAP (e.g. session:30s)";

/// The step id of the flag form's one windowing step (its outputs are `windows.down`, …).
const FLAG_STEP: &str = "windows";

const RUN_EXAMPLES: &str = "Examples:
  windrow run                                   # the demo on data/clicks.parquet
  windrow run examples/pipelines/clicks_per_minute.toml
  windrow run examples/pipelines/sessions.toml --out-dir /tmp/out
  windrow run --input data/clicks.parquet --key page --window sliding:5m/1m \\
      --agg count --agg mean:duration_ms --output down=/tmp/pages.parquet
  windrow run --input 'logs/*.csv' --time time --key host --wait forever --output down=-";

const GEN_EXAMPLES: &str = "Examples:
  windrow gen --rows 1000000 --out events.parquet
  windrow gen --rows 100000000 --keys 10000 --out events/ --max-file-rows 10000000
  windrow gen --rows 50000 --out events.csv
  windrow run --input events.parquet --time ts --key key --agg count --agg sum:value";

#[derive(Parser, Debug)]
#[command(
    name = "windrow",
    version,
    about = "bytewax-style windowing over Apache Arrow: run windowed aggregations over Parquet, Arrow IPC and CSV files",
    long_about = "bytewax-style windowing over Apache Arrow: run windowed aggregations over \
                  Parquet, Arrow IPC and CSV files.\n\nWith no subcommand, windrow runs `windrow run` with the \
                  given options; with no arguments at all it runs the bundled demo (per-user tumbling \
                  1-minute click counts and bytes over data/clicks.parquet).",
    after_help = RUN_EXAMPLES,
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
    /// Run a pipeline (a TOML file, or the flags below) and print or write the closed windows.
    #[command(after_help = RUN_EXAMPLES)]
    Run(Box<RunArgs>),
    /// Write a synthetic event dataset (key, ts, value) of any size as Parquet, Arrow IPC or CSV.
    #[command(after_help = GEN_EXAMPLES)]
    Gen(GenArgs),
    /// Measure throughput on the benchmark cases; prints one JSON line per case (the format
    /// `shared/bench/peers.py --windrow-cmd` reads).
    #[command(
        after_help = "Examples:\n  windrow bench --rows 200000 --runs 1\n  windrow bench --data events.parquet --threads 2 --streamed"
    )]
    Bench(BenchArgs),
    /// Run SQL (DataFusion) over Parquet, Arrow IPC or CSV files, including windrow's window
    /// table functions: tumble, hop, session and their _late companions.
    Sql(SqlArgs),
    /// Run a pipeline live as an Arrow Flight server: events in by DoPut on its pushed inputs,
    /// closed windows out by DoGet (and to the pipeline's file outputs); Ctrl-C or SIGTERM
    /// closes every window, flushes and exits.
    #[command(after_help = SERVE_EXAMPLES)]
    Serve(ServeArgs),
}

const SERVE_EXAMPLES: &str = "Examples:
  windrow serve examples/pipelines/live_clicks.toml
  windrow serve --listen 0.0.0.0:50051 --out-dir out/ my_pipeline.toml

The Flight contract (see README \"Serving over Arrow Flight\"): ListFlights lists every input and
output with its schema; DoPut with path [\"INPUT\"] appends batches (acknowledged once applied);
DoGet with ticket \"STEP.PORT\" (e.g. per_minute.down) streams that output as windows close.";

/// The options of `windrow serve`.
#[derive(Args, Debug)]
struct ServeArgs {
    /// The pipeline file (TOML). Its inputs must be kind = "pushed" (with `schema` or
    /// `schema_from`); its [[output]]s are written as well as served.
    pipeline: PathBuf,

    /// Address to listen on (port 0 picks a free port; the bound address is printed).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:50051")]
    listen: std::net::SocketAddr,

    /// Directory for the pipeline's relative output paths.
    #[arg(long, value_name = "DIR")]
    out_dir: Option<PathBuf>,

    /// How often timers close the windows of idle keys with real system time.
    #[arg(long, value_name = "DURATION", default_value = "200ms", value_parser = parse_duration)]
    timer: TimeDelta,

    /// Batches kept per output for DoGet readers that connect later.
    #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = parse_positive)]
    retain_batches: usize,

    /// Progress lines on stderr every this often ("0s": none).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    log_every: TimeDelta,

    #[command(flatten)]
    checkpoints: CheckpointArgs,
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

/// The options of `windrow gen`.
#[derive(Args, Debug)]
struct GenArgs {
    /// Rows to write.
    #[arg(long, value_name = "N", value_parser = parse_positive)]
    rows: usize,

    /// Where: FILE.parquet, FILE.arrow, FILE.csv, or a directory (rolling Parquet part files).
    #[arg(long, value_name = "PATH")]
    out: PathBuf,

    /// Output format. [default: from the --out extension; none: a Parquet directory]
    #[arg(long, value_enum)]
    format: Option<FormatArg>,

    /// Distinct keys (k0000, k0001, …).
    #[arg(long, value_name = "K", default_value_t = 1000, value_parser = parse_positive)]
    keys: usize,

    /// Random seed: the same seed gives the same rows.
    #[arg(long, value_name = "S", default_value_t = 7)]
    seed: u64,

    /// Base time between consecutive rows (whole microseconds, at most 1 h). To hold the
    /// events per key and minute constant as --keys grows, scale it by 1000 / K: 180us at
    /// 100,000 keys, 180ms at 100.
    #[arg(long, value_name = "DURATION", default_value = "18ms", value_parser = parse_spacing)]
    spacing: i64,

    /// Rows generated (and written) per batch; memory stays bounded by this.
    #[arg(long, value_name = "N", default_value_t = 65_536, value_parser = parse_positive)]
    batch_rows: usize,

    /// Parquet directories: rows per part file.
    #[arg(long, value_name = "N", value_parser = parse_positive)]
    max_file_rows: Option<usize>,
}

/// `--format`.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum FormatArg {
    /// Apache Parquet.
    Parquet,
    /// Arrow IPC (file format).
    Ipc,
    /// CSV with a header row.
    Csv,
}

impl From<FormatArg> for FileFormat {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::Parquet => FileFormat::Parquet,
            FormatArg::Ipc => FileFormat::Ipc,
            FormatArg::Csv => FileFormat::Csv,
        }
    }
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

    /// Base time between rows of the generated stream (only without a dataset); see
    /// `windrow gen --spacing`.
    #[arg(long, value_name = "DURATION", value_parser = parse_spacing)]
    spacing: Option<i64>,

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

    /// Read the dataset's `key` column as a dictionary, as `windrow run --dictionary-keys`
    /// does (the file's dictionary pages kept, no string copied per row), in memory and
    /// streamed. The peers get plain strings, so compare like with like.
    #[arg(long)]
    dictionary_keys: bool,
}

/// The options of `windrow run`.
#[derive(Args, Debug)]
struct RunArgs {
    /// A pipeline file (TOML; see the README's "Pipeline files"). Without it, the flags below
    /// describe a one-step pipeline.
    #[arg(value_name = "PIPELINE.toml")]
    pipeline: Option<PathBuf>,

    /// Input data: a file, a directory or a glob of Parquet, Arrow IPC or CSV files (the format
    /// comes from the file's first bytes or extension), read in row order (row order is
    /// arrival order). [default: data/clicks.parquet in the current directory, else the one
    /// bundled with the windrow sources]
    #[arg(long, value_name = "PATH", conflicts_with = "pipeline")]
    input: Option<PathBuf>,

    /// Input format, when the file's bytes and name do not tell.
    #[arg(long, value_enum, conflicts_with = "pipeline")]
    format: Option<FormatArg>,

    /// Event-time column: a Timestamp column (any unit, with or without time zone).
    #[arg(long = "time", value_name = "COL", default_value = "ts", conflicts_with = "pipeline")]
    time: String,

    /// Key column; windows and watermarks are per key. Repeat for a compound key
    /// (`--key user --key page`).
    #[arg(long = "key", value_name = "COL", default_value = "user", conflicts_with = "pipeline")]
    keys: Vec<String>,

    /// Windows: tumbling:LEN, sliding:LEN/OFFSET or session:GAP; durations like 500ms, 30s, 5m,
    /// 1h.
    #[arg(long, value_name = "SPEC", default_value = "tumbling:1m", value_parser = parse_window, conflicts_with = "pipeline")]
    window: WindowArg,

    /// Start of window 0 of tumbling and sliding windows, as RFC 3339
    /// (e.g. 2024-03-12T00:00:00Z). [default: the Unix epoch]
    #[arg(long, value_name = "RFC3339", value_parser = parse_instant, conflicts_with = "pipeline")]
    align_to: Option<DateTime<Utc>>,

    /// Allowed lateness: a row is late when its timestamp is older than the newest timestamp
    /// seen (per key or per stream, see --scope) minus this. A duration, or `forever`
    /// (nothing is late; windows close at end of input).
    #[arg(long, value_name = "DURATION|forever", default_value = "30s", value_parser = check_wait, conflicts_with = "pipeline")]
    wait: String,

    /// Aggregate per window: count, count:COL (non-null values), sum:COL, mean:COL, min:COL,
    /// max:COL, first:COL, last:COL or collect:COL (a list). Repeat for several.
    /// [default: count and sum:bytes]
    #[arg(long = "agg", value_name = "AGG", value_parser = check_agg, conflicts_with = "pipeline")]
    aggs: Vec<String>,

    /// Whose watermark decides lateness and closing: each key's own (bytewax's behaviour) or
    /// one for the whole stream.
    #[arg(long, value_enum, default_value_t = Scope::Key, conflicts_with = "pipeline")]
    scope: Scope,

    /// Worker threads (key shards processed in parallel) per step. [default: the number of
    /// cores; with a pipeline file, its `threads`]
    #[arg(long, value_name = "N", value_parser = parse_positive)]
    threads: Option<usize>,

    /// Rows per micro-batch read from the input.
    #[arg(long, value_name = "N", default_value_t = 65_536, value_parser = parse_positive, conflicts_with = "pipeline")]
    batch_size: usize,

    /// Parquet input: read the key columns as dictionaries, keeping the file's dictionary
    /// pages: faster where the file stores them dictionary-encoded (most writers do). The
    /// windows and late rows are the same; `errors` rows carry the key as a dictionary.
    #[arg(long, conflicts_with = "pipeline")]
    dictionary_keys: bool,

    /// Write an output: NAME=PATH, NAME one of down, late, meta, errors (the flag form's step)
    /// or STEP.PORT (a pipeline's); PATH a .parquet, .arrow or .csv file, a directory (rolling
    /// Parquet part files), or `-` for a table on stdout. Repeatable.
    #[arg(long = "output", value_name = "NAME=PATH")]
    outputs: Vec<String>,

    /// Resolve a pipeline file's relative output paths against DIR instead of the file's folder.
    #[arg(long, value_name = "DIR", requires = "pipeline")]
    out_dir: Option<PathBuf>,

    /// Rows printed per table (closed windows, late rows with --output-late).
    #[arg(long, value_name = "N", default_value_t = 20)]
    limit: usize,

    /// Also print the first late rows (rows that arrived after their window closed).
    #[arg(long, conflicts_with = "pipeline")]
    output_late: bool,

    #[command(flatten)]
    checkpoints: CheckpointArgs,
}

/// `--state-dir` and its companions (`windrow run` and `windrow serve`).
#[derive(Args, Debug)]
struct CheckpointArgs {
    /// Checkpoint all operator state into DIR, and resume from it: after a crash, run the
    /// same command again and the file outputs end up exactly as an uninterrupted run writes
    /// them (no window missing or twice). File outputs then become directories of part
    /// files, published at each checkpoint. See the README's "Checkpoints and recovery".
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,

    /// Time between checkpoints (with --state-dir).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_interval, requires = "state_dir")]
    checkpoint_interval: std::time::Duration,

    /// Also checkpoint after every N input batches (with --state-dir).
    #[arg(long, value_name = "N", value_parser = parse_positive, requires = "state_dir")]
    checkpoint_batches: Option<usize>,
}

impl CheckpointArgs {
    /// The checkpoint configuration, if `--state-dir` was given (announced on stderr).
    fn config(&self, who: &str) -> Option<windrow::checkpoint::CheckpointConfig> {
        let dir = self.state_dir.as_ref()?;
        let mut config = windrow::checkpoint::CheckpointConfig::new(dir);
        config.interval = self.checkpoint_interval;
        config.every_batches = self.checkpoint_batches.map(|n| n as u64);
        let batches = self.checkpoint_batches.map_or(String::new(), |n| format!(" or {n} input batches"));
        eprintln!("{who}: checkpoints in {} every {:?}{batches}", dir.display(), config.interval);
        Some(config)
    }
}

fn parse_interval(text: &str) -> Result<std::time::Duration, String> {
    let d = parse_duration(text)?;
    d.to_std().map_err(|_| format!("invalid interval \"{text}\": must not be negative"))
}

/// `--scope`.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Scope {
    /// One watermark per key.
    Key,
    /// One watermark for the whole input.
    Stream,
}

/// `--window`, checked at parse time so errors show the text as typed.
#[derive(Clone, Debug)]
struct WindowArg(WindowSpec);

fn parse_window(text: &str) -> Result<WindowArg, String> {
    let bad = |why: String| format!("invalid window \"{text}\": {why}; accepted forms: {WINDOW_FORMS}");
    let Some((kind, params)) = text.split_once(':') else {
        return Err(bad("missing `kind:`".into()));
    };
    let positive = |what: &str, text: &str| -> Result<TimeDelta, String> {
        let d = parse_duration(text).map_err(bad)?;
        if d <= TimeDelta::zero() {
            return Err(bad(format!("the {what} must be greater than 0")));
        }
        Ok(d)
    };
    let spec = |kind, length: Option<TimeDelta>, offset: Option<TimeDelta>, gap: Option<TimeDelta>| WindowSpec {
        kind,
        length: length.map(show_duration),
        offset: offset.map(show_duration),
        gap: gap.map(show_duration),
        align_to: None,
    };
    match kind.trim().to_ascii_lowercase().as_str() {
        "tumbling" => Ok(WindowArg(spec(WindowKind::Tumbling, Some(positive("length", params)?), None, None))),
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
            Ok(WindowArg(spec(WindowKind::Sliding, Some(length), Some(offset), None)))
        }
        "session" => {
            let gap = parse_duration(params).map_err(bad)?;
            if gap < TimeDelta::zero() {
                return Err(bad("the gap must not be negative".into()));
            }
            Ok(WindowArg(spec(WindowKind::Session, None, None, Some(gap))))
        }
        other => Err(bad(format!("unknown window kind \"{other}\""))),
    }
}

fn check_wait(text: &str) -> Result<String, String> {
    parse_wait(text).map(|_| text.to_string())
}

fn check_agg(text: &str) -> Result<String, String> {
    parse_aggregate(text).map(|_| text.to_string())
}

fn parse_positive(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("expected a whole number >= 1, got \"{text}\"")),
    }
}

/// `--spacing`: a duration of whole microseconds, from 1 µs to 1 h (the rows' times are then
/// checked against the row count by [`check_spacing`]).
fn parse_spacing(text: &str) -> Result<i64, String> {
    let d = parse_duration(text)?;
    match d.num_microseconds() {
        Some(us) if (1..=3_600_000_000).contains(&us) && d.subsec_nanos() % 1000 == 0 => Ok(us),
        _ => Err(format!("invalid spacing \"{text}\": expected whole microseconds from 1us to 1h")),
    }
}

/// Refuses a row count and spacing whose generated times would run past the year 9999 (the
/// generator would otherwise clamp them).
fn check_spacing(rows: usize, spacing_us: i64) -> Result<(), String> {
    const START_US: i64 = 1_704_067_200_000_000; // 2024-01-01, the generator's start
    const END_US: i64 = 253_402_300_799_999_999; // 9999-12-31T23:59:59.999999Z
    let end = i64::try_from(rows).ok().and_then(|n| n.checked_mul(spacing_us)).and_then(|d| d.checked_add(START_US));
    match end {
        Some(end) if end <= END_US => Ok(()),
        _ => Err(format!(
            "{} rows {} apart run past the year 9999; use fewer rows or a smaller --spacing",
            thousands(rows as u64),
            show_duration(TimeDelta::microseconds(spacing_us))
        )),
    }
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

/// One `--output NAME=PATH`, NAME completed with the flag form's step when it is a bare port.
fn output_flag(text: &str, flag_form: bool) -> Result<OutputSpec, String> {
    let Some((name, path)) = text.split_once('=').filter(|(n, p)| !n.trim().is_empty() && !p.trim().is_empty()) else {
        return Err(format!("--output \"{text}\": expected NAME=PATH, e.g. down=out/windows.parquet"));
    };
    let name = name.trim();
    let from = if ["down", "late", "meta", "errors"].contains(&name) {
        if !flag_form {
            return Err(format!(
                "--output \"{text}\": with a pipeline file, name the output STEP.PORT, e.g. per_minute.{name}"
            ));
        }
        format!("{FLAG_STEP}.{name}")
    } else {
        name.to_string()
    };
    let path = path.trim();
    Ok(if path == "-" {
        OutputSpec { from, kind: Some(OutputKind::Table), ..OutputSpec::default() }
    } else {
        OutputSpec { from, path: Some(path.to_string()), ..OutputSpec::default() }
    })
}

/// The flag form as a one-input, one-step pipeline spec.
fn flag_pipeline(args: &RunArgs) -> Result<(Pipeline, String), String> {
    let path = resolve_input(args.input.clone())?;
    let kind = match args.format.map(FileFormat::from) {
        Some(FileFormat::Parquet) => InputKind::Parquet,
        Some(FileFormat::Ipc) => InputKind::Ipc,
        Some(FileFormat::Csv) => InputKind::Csv,
        None => match windrow::source::resolve_paths(&path, None).and_then(|f| FileFormat::detect(&f[0])) {
            Ok(FileFormat::Ipc) => InputKind::Ipc,
            Ok(FileFormat::Csv) => InputKind::Csv,
            Ok(FileFormat::Parquet) => InputKind::Parquet,
            Err(e) => return Err(e.to_string()),
        },
    };
    if args.dictionary_keys && args.keys.len() > 1 {
        return Err("--dictionary-keys speeds up a single string key; a compound key is encoded with Arrow's row \
                    format either way"
            .into());
    }
    if args.dictionary_keys && kind != InputKind::Parquet {
        return Err(format!(
            "--dictionary-keys reads a Parquet file's dictionary pages; {} is not Parquet",
            path.display()
        ));
    }
    let aggs =
        if args.aggs.is_empty() { vec!["count".to_string(), "sum:bytes".to_string()] } else { args.aggs.clone() };
    let mut window = args.window.0.clone();
    window.align_to = args.align_to.map(|a| a.to_rfc3339());
    let threads = args.threads.unwrap_or_else(default_threads);
    let describe = format!(
        "{} per [{}] over {}: {:?} window, event time \"{}\", wait {}, {} watermark, {threads} thread{}",
        aggs.join(", "),
        args.keys.join(", "),
        path.display(),
        window.kind,
        args.time,
        args.wait,
        match args.scope {
            Scope::Key => "per-key",
            Scope::Stream => "per-stream",
        },
        if threads == 1 { "" } else { "s" }
    );
    let mut outputs = Vec::new();
    if args.limit > 0 {
        outputs.push(OutputSpec {
            from: format!("{FLAG_STEP}.down"),
            kind: Some(OutputKind::Table),
            rows: Some(args.limit),
            ..OutputSpec::default()
        });
        if args.output_late {
            outputs.push(OutputSpec {
                from: format!("{FLAG_STEP}.late"),
                kind: Some(OutputKind::Table),
                rows: Some(args.limit),
                ..OutputSpec::default()
            });
        }
    }
    let spec = PipelineSpec {
        name: Some("windrow-run".into()),
        threads: Some(threads),
        coalesce_rows: None,
        inputs: vec![InputSpec {
            name: "input".into(),
            kind: Some(kind),
            path: Some(path.display().to_string()),
            batch_size: Some(args.batch_size),
            dictionary: args.dictionary_keys.then(|| args.keys.clone()),
            ..InputSpec::default()
        }],
        steps: vec![StepSpec {
            id: FLAG_STEP.into(),
            input: Some("input".into()),
            key: Some(args.keys.clone()),
            time: Some(args.time.clone()),
            wait: Some(args.wait.clone()),
            window: Some(window),
            aggregates: Some(aggs),
            scope: Some(match args.scope {
                Scope::Key => windrow::pipeline::ScopeKind::PerKey,
                Scope::Stream => windrow::pipeline::ScopeKind::PerStream,
            }),
            ..StepSpec::default()
        }],
        outputs,
    };
    Ok((Pipeline::from_spec(spec, ".").with_origin("windrow run"), describe))
}

fn run(args: RunArgs) -> Result<(), String> {
    let flag_form = args.pipeline.is_none();
    let (mut pipeline, describe) = match &args.pipeline {
        Some(file) => {
            let mut p = Pipeline::from_file(file).map_err(|e| e.to_string())?;
            if let Some(dir) = &args.out_dir {
                p = p.with_output_dir(dir);
            }
            if let Some(t) = args.threads {
                p.spec_mut().threads = Some(t);
                for s in &mut p.spec_mut().steps {
                    s.threads = Some(t);
                }
            }
            let d = format!("pipeline \"{}\" from {}", p.name(), file.display());
            (p, d)
        }
        None => flag_pipeline(&args)?,
    };
    for o in &args.outputs {
        let spec = output_flag(o, flag_form)?;
        pipeline.spec_mut().outputs.push(spec);
    }
    if !flag_form && pipeline.spec().outputs.is_empty() {
        // Nothing to write: show each step's closed windows.
        let ids: Vec<String> = pipeline.spec().steps.iter().map(|s| s.id.clone()).collect();
        for id in ids {
            pipeline.spec_mut().outputs.push(OutputSpec {
                from: format!("{id}.down"),
                kind: Some(OutputKind::Table),
                rows: Some(args.limit),
                ..OutputSpec::default()
            });
        }
    }
    let mut built = pipeline.build(RunMode::Replay).map_err(|e| e.to_string())?;
    eprintln!("windrow: {describe}");
    if let Some(config) = args.checkpoints.config("windrow") {
        built = built.with_checkpoints(config);
    }
    let summary = built
        .run_with_progress_every(PROGRESS_EVERY, |p: &Progress| {
            eprintln!(
                "  … {} rows ({} rows/s), {} late, {} windows closed, {} open",
                thousands(p.rows_in),
                rate(p.rows_in, p.elapsed.as_secs_f64()),
                thousands(p.late),
                thousands(p.windows_closed),
                thousands(p.open_windows as u64)
            );
        })
        .map_err(|e| e.to_string())?;
    print_summary(&summary);
    Ok(())
}

fn print_summary(s: &RunSummary) {
    println!("\nsummary");
    println!("  rows in         {}", thousands(s.rows_in));
    for step in &s.steps {
        let [down, late, meta, errors] = step.rows;
        println!(
            "  step {:<10} {} windows closed, {} results, {} late rows, {} error rows",
            step.id,
            thousands(meta),
            thousands(down),
            thousands(late),
            thousands(errors)
        );
    }
    for (name, out) in &s.outputs {
        let files = match out.files.len() {
            0 => String::new(),
            1 => String::new(),
            n => format!(" in {n} files"),
        };
        println!("  output {name:<16} {} rows → {}{files}", thousands(out.rows), out.target);
    }
    let secs = s.elapsed.as_secs_f64();
    println!("  elapsed         {secs:.3} s ({} rows/s, reading the input included)", rate(s.rows_in, secs));
    if let Some(c) = &s.checkpoints {
        if let Some(n) = c.resumed_from {
            println!("  resumed from    checkpoint {n}");
        }
        println!(
            "  checkpoints     {} committed, last {} bytes of state (largest {}), {:.3} s in all, longest {:.3} s",
            c.committed,
            thousands(c.last_bytes),
            thousands(c.max_bytes),
            c.total_time.as_secs_f64(),
            c.max_time.as_secs_f64()
        );
    }
}

/// `windrow gen`: the benchmark's synthetic stream, generated and written batch by batch.
fn gen_data(args: GenArgs) -> Result<(), String> {
    use windrow::bench::Generator;
    let format = args.format.map(FileFormat::from);
    let roll = RollPolicy { max_rows: args.max_file_rows.map(|n| n as u64), ..RollPolicy::default() };
    check_spacing(args.rows, args.spacing)?;
    let mut generator = Generator::new(args.rows, args.keys, args.seed, args.batch_rows).spacing_us(args.spacing);
    let sink = open_sink(&args.out, format, generator.schema(), roll, args.batch_rows).map_err(|e| e.to_string())?;
    // Generating and writing overlap.
    let mut sink = BackgroundSink::spawn(args.out.display().to_string(), sink).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut last = started;
    while let Some(batch) = generator.next() {
        sink.write(&batch).map_err(|e| e.to_string())?;
        if last.elapsed() >= PROGRESS_EVERY {
            last = Instant::now();
            let done = generator.rows_done() as u64;
            eprintln!(
                "  … {} of {} rows ({} rows/s)",
                thousands(done),
                thousands(args.rows as u64),
                rate(done, started.elapsed().as_secs_f64())
            );
        }
    }
    let summary = sink.finish().map_err(|e| e.to_string())?;
    let secs = started.elapsed().as_secs_f64();
    let files: Vec<String> = summary.files.iter().map(|f| f.display().to_string()).collect();
    println!(
        "wrote {} rows ({} keys, seed {}, {} apart) to {} in {secs:.2} s: {}",
        thousands(summary.rows),
        args.keys,
        args.seed,
        show_duration(TimeDelta::microseconds(args.spacing)),
        summary.target,
        files.join(", ")
    );
    Ok(())
}

/// `windrow bench`: the cases of `windrow::bench`, each timed `runs` times after a warm-up.
fn bench(args: BenchArgs) -> Result<(), String> {
    use windrow::bench::{BenchCase, Generator, peak_rss_bytes, reset_peak_rss, run_case};
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
    // Option mistakes first, before reading or generating anything.
    if data.is_some() && args.keys != 1000 {
        return Err("--keys applies to the generated stream only; a dataset brings its own keys".into());
    }
    if data.is_some() && args.spacing.is_some() {
        return Err("--spacing applies to the generated stream only; a dataset brings its own times".into());
    }
    if data.is_none() && args.dictionary_keys {
        return Err("--dictionary-keys reads a dataset's key column as stored; it needs --data".into());
    }
    let read = ReadOptions {
        dictionary: if args.dictionary_keys { vec!["key".to_string()] } else { Vec::new() },
        ..ReadOptions::default()
    };
    let (schema, mut batches) = match &data {
        Some(path) => ParquetSource::read_all_with(path, &read).map_err(|e| e.to_string())?,
        None => {
            let (rows, spacing) = (args.rows.unwrap_or(1_000_000), args.spacing.unwrap_or(windrow::bench::SPACING_US));
            check_spacing(rows, spacing)?;
            let generator = Generator::new(rows, args.keys, 7, 65_536).spacing_us(spacing);
            (generator.schema(), generator.collect())
        }
    };
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
        // Read as `windrow run` reads files: decoding on its own thread, ahead of the engine.
        let parquet = ParquetSource::open_with(path, &read).map_err(|e| e.to_string())?;
        let mut src = ReadAhead::new(Box::new(parquet), READ_AHEAD_BATCHES);
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

fn serve(args: ServeArgs) -> Result<(), String> {
    use windrow::flight::{Retention, ServeOptions, serve_pipeline};
    let mut pipeline = Pipeline::from_file(&args.pipeline).map_err(|e| e.to_string())?;
    if let Some(dir) = &args.out_dir {
        pipeline = pipeline.with_output_dir(dir);
    }
    let mut built = pipeline.build(RunMode::Live).map_err(|e| e.to_string())?;
    if let Some(config) = args.checkpoints.config("windrow serve") {
        built = built.with_checkpoints(config);
    }
    let std_duration = |d: TimeDelta| d.to_std().map_err(|_| format!("{} must not be negative", show_duration(d)));
    let timer = std_duration(args.timer)?;
    if timer.is_zero() {
        return Err("--timer must be longer than 0s".into());
    }
    let log_every = std_duration(args.log_every)?;
    let options = ServeOptions {
        timer_interval: timer,
        retention: Retention { max_batches: args.retain_batches, ..Retention::default() },
        log_interval: (!log_every.is_zero()).then_some(log_every),
        ..ServeOptions::default()
    };
    let (summary, written) = serve_pipeline(built, args.listen, options).map_err(|e| e.to_string())?;
    eprintln!(
        "windrow serve: done: {} batches, {} rows in; {} output rows served",
        summary.batches_in,
        summary.rows_in,
        summary.rows_out.values().sum::<u64>()
    );
    for w in written {
        eprintln!("  {}: {} rows in {} file(s)", w.target, w.rows, w.files.len());
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Run(args)) => run(*args),
        Some(Command::Gen(args)) => gen_data(args),
        Some(Command::Bench(args)) => bench(args),
        Some(Command::Sql(args)) => sql(args),
        Some(Command::Serve(args)) => serve(args),
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
