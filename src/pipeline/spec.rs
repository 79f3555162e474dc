//! The pipeline file's shape (serde). Every table rejects unknown keys, naming them.

use serde::Deserialize;

/// A whole pipeline file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSpec {
    /// The flow's name (default: the file's stem).
    pub name: Option<String>,
    /// Default key shards per step (default 1).
    pub threads: Option<usize>,
    /// Rows per output batch written to files (default 65,536).
    pub coalesce_rows: Option<usize>,
    /// `[[input]]` tables.
    #[serde(default, rename = "input")]
    pub inputs: Vec<InputSpec>,
    /// `[[step]]` tables, in order.
    #[serde(default, rename = "step")]
    pub steps: Vec<StepSpec>,
    /// `[[output]]` tables.
    #[serde(default, rename = "output")]
    pub outputs: Vec<OutputSpec>,
}

/// Where an input's batches come from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputKind {
    /// Parquet file(s).
    #[default]
    Parquet,
    /// Arrow IPC file(s), file or stream format.
    Ipc,
    /// CSV file(s).
    Csv,
    /// Batches pushed by a client (`windrow serve`); the input declares its schema.
    Pushed,
    /// Another Arrow Flight server's `DoGet` stream: `endpoint` and `ticket`.
    Flight,
}

/// One `[[input]]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// The input's name; steps refer to it.
    pub name: String,
    /// `parquet`, `ipc`, `csv`, `pushed` or `flight` (default: from the path's extension, else
    /// parquet).
    pub kind: Option<InputKind>,
    /// A file, a directory or a glob, relative to the pipeline file's folder.
    pub path: Option<String>,
    /// Rows per micro-batch (default 65,536).
    pub batch_size: Option<usize>,
    /// Read only these columns.
    pub columns: Option<Vec<String>>,
    /// Parquet: read these string columns as dictionaries (see
    /// [`ReadOptions::dictionary`](crate::source::ReadOptions::dictionary)).
    pub dictionary: Option<Vec<String>>,
    /// The columns of a `pushed` input, or of a CSV input (otherwise inferred).
    pub schema: Option<Vec<ColumnSpec>>,
    /// `pushed`: take the schema from this data file instead.
    pub schema_from: Option<String>,
    /// CSV: whether the first line names the columns (default true).
    pub has_header: Option<bool>,
    /// CSV: the field delimiter, one character (default `,`).
    pub delimiter: Option<String>,
    /// CSV: rows read to infer the schema (default 1000).
    pub infer_rows: Option<usize>,
    /// `flight`: the server, e.g. `http://127.0.0.1:50051`.
    pub endpoint: Option<String>,
    /// `flight`: the `DoGet` ticket (UTF-8), e.g. another windrow's `minute.down`.
    pub ticket: Option<String>,
}

/// One column of a declared schema: `{ name = "ts", type = "timestamp_ms", tz = "UTC" }`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnSpec {
    /// Column name.
    pub name: String,
    /// Type name (`utf8`, `int64`, `float64`, `bool`, `timestamp_ms`, …).
    #[serde(rename = "type")]
    pub ty: String,
    /// Time zone of a timestamp column (e.g. `UTC`; default none).
    pub tz: Option<String>,
    /// Whether nulls are allowed (default true).
    pub nullable: Option<bool>,
}

/// A window step or a join step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepKind {
    /// One input, one windowing operator.
    #[default]
    Window,
    /// `join_window` over several inputs.
    Join,
}

/// Which clock a step uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClockKind {
    /// Event time from the `time` column, waiting `wait` for late rows.
    #[default]
    Event,
    /// System (processing) time.
    System,
}

/// The windowing operator of a window step (or use `aggregates`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OperatorKind {
    /// `count_window`.
    Count,
    /// `collect_window` (whole rows, or one `column`).
    Collect,
    /// `max_window` (`by` a column).
    Max,
    /// `min_window` (`by` a column).
    Min,
}

/// The container of `operator = "collect"` (spec §8.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IntoKind {
    /// Every value, in order (default).
    List,
    /// The distinct values of `column`, in first-insertion order.
    Set,
    /// `dict_key` → `dict_value`, the last write winning.
    Dict,
}

/// Watermark scope.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScopeKind {
    /// One watermark per key.
    PerKey,
    /// One watermark for the stream.
    PerStream,
}

/// Join insert mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InsertKind {
    /// Keep the first row per side.
    First,
    /// Keep the latest row per side.
    Last,
    /// Keep every row (cartesian product).
    Product,
}

/// Join emit mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmitKind {
    /// When every side has a row.
    Complete,
    /// Once at close.
    Final,
    /// After every row.
    Running,
}

/// The kind of windows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WindowKind {
    /// Fixed, non-overlapping windows of `length`.
    Tumbling,
    /// Windows of `length` starting every `offset`.
    Sliding,
    /// Sessions closed by a `gap` without rows.
    Session,
}

/// `window = { kind = "sliding", length = "5m", offset = "1m" }`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowSpec {
    /// `tumbling`, `sliding` or `session`.
    pub kind: WindowKind,
    /// Tumbling and sliding: the window length.
    pub length: Option<String>,
    /// Sliding: the distance between window starts.
    pub offset: Option<String>,
    /// Session: the gap that ends a session.
    pub gap: Option<String>,
    /// Tumbling and sliding: the start of window 0, RFC 3339 (default the Unix epoch).
    pub align_to: Option<String>,
}

/// One `[[step]]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    /// The step id; its outputs are `<id>.down`, `<id>.late`, `<id>.meta`, `<id>.errors`.
    pub id: String,
    /// `window` (default) or `join`.
    pub kind: Option<StepKind>,
    /// Window steps: the input it reads.
    pub input: Option<String>,
    /// Join steps: the inputs joined, one per side.
    pub inputs: Option<Vec<String>>,
    /// Key columns.
    pub key: Option<Vec<String>>,
    /// `event` (default) or `system`.
    pub clock: Option<ClockKind>,
    /// Event clock: the event-time column (a timestamp column).
    pub time: Option<String>,
    /// Event clock: allowed lateness, a duration or `forever` (default `0s`).
    pub wait: Option<String>,
    /// The windows.
    pub window: Option<WindowSpec>,
    /// `count`, `collect`, `max` or `min` (or give `aggregates`).
    pub operator: Option<OperatorKind>,
    /// Aggregates per window, e.g. `["count", "sum:bytes", "mean:duration_ms"]`.
    pub aggregates: Option<Vec<String>>,
    /// `collect`: collect this column instead of whole rows (required for `into = "set"`).
    pub column: Option<String>,
    /// `collect`: `list` (default), `set` or `dict`.
    pub into: Option<IntoKind>,
    /// `collect` with `into = "dict"`: the column of each entry's key.
    pub dict_key: Option<String>,
    /// `collect` with `into = "dict"`: the column of each entry's value (names the result).
    pub dict_value: Option<String>,
    /// `max`/`min`: the column compared.
    pub by: Option<String>,
    /// `per-key` (default) or `per-stream` watermark.
    pub scope: Option<ScopeKind>,
    /// Ordered mode (the operator's default when absent).
    pub ordered: Option<bool>,
    /// Fail on rows that cannot be windowed instead of sending them to `errors`.
    pub strict: Option<bool>,
    /// Key shards processed in parallel (default: the pipeline's `threads`).
    pub threads: Option<usize>,
    /// Join: `first`, `last` (default) or `product`.
    pub insert: Option<InsertKind>,
    /// Join: `complete` (default), `final` or `running`.
    pub emit: Option<EmitKind>,
    /// Join: names of the per-side columns on `down` (default: the input names).
    pub side_names: Option<Vec<String>>,
}

/// Where an output goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputKind {
    /// Parquet: a `.parquet` file, or a directory of rolling part files.
    Parquet,
    /// Arrow IPC file.
    Ipc,
    /// CSV file.
    Csv,
    /// A table on stdout.
    Table,
    /// Kept in memory (library use).
    Memory,
}

/// One `[[output]]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    /// `<step>.<port>`, port one of `down`, `late`, `meta`, `errors`.
    pub from: String,
    /// `parquet`, `ipc`, `csv`, `table` or `memory` (default: from the path's extension; a
    /// path without one is a Parquet directory).
    pub kind: Option<OutputKind>,
    /// File or directory, relative to the pipeline file's folder (or the output directory
    /// given on the command line).
    pub path: Option<String>,
    /// Parquet directories: rows per part file.
    pub max_file_rows: Option<u64>,
    /// Parquet directories: bytes per part file (default 128 MiB).
    pub max_file_bytes: Option<u64>,
    /// `table`: rows shown (default 20).
    pub rows: Option<usize>,
}
