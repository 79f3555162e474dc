//! Pipelines described in TOML: inputs, windowing and join steps, and outputs, built into a
//! [`Dataflow`] plus sinks. `windrow run PIPELINE.toml` runs one; `windrow serve` builds the
//! same file in [`RunMode::Live`].
//!
//! # The format
//!
//! ```toml
//! name = "clicks"            # optional; default: the file's stem
//! threads = 2                # optional: key shards per step (default 1)
//! coalesce_rows = 65536      # optional: rows per batch written to files
//!
//! [[input]]
//! name = "clicks"
//! kind = "parquet"           # parquet | ipc | csv | pushed (default: from the path's extension)
//! path = "../../data/clicks.parquet"   # a file, a directory or a glob; relative to this file
//! batch_size = 16384         # rows per micro-batch (default 65536)
//! # columns = ["user", "ts", "bytes"]  # read only these columns
//! # dictionary = ["user"]    # Parquet: read these string columns as dictionaries (faster keys)
//! # CSV: schema = [...] (else inferred from infer_rows rows), has_header, delimiter
//! # pushed (fed by `windrow serve`): schema = [{ name = "user", type = "utf8" },
//! #   { name = "ts", type = "timestamp_ms", tz = "UTC" }] or schema_from = "sample.parquet"
//!
//! [[step]]
//! id = "per_minute"          # outputs: per_minute.down | .late | .meta | .errors
//! input = "clicks"
//! key = ["user"]
//! time = "ts"                # event-time column (clock = "event", the default)
//! wait = "30s"               # allowed lateness, or "forever" (default "0s")
//! window = { kind = "tumbling", length = "1m" }
//! # window = { kind = "sliding", length = "5m", offset = "1m", align_to = "2024-03-12T00:00:00Z" }
//! # window = { kind = "session", gap = "30s" }
//! aggregates = ["count", "sum:bytes", "mean:duration_ms"]
//! # or: operator = "count" | "collect" (column = "page") | "max" | "min" (by = "bytes")
//! #   collect into a set or a dict: operator = "collect", into = "set", column = "page"
//! #   or operator = "collect", into = "dict", dict_key = "page", dict_value = "duration_ms"
//! # scope = "per-stream"; ordered = true; strict = true; threads = 4; clock = "system"
//!
//! [[step]]
//! id = "joined"
//! kind = "join"
//! inputs = ["views", "profiles"]   # one side per input
//! key = ["user"]
//! time = "ts"
//! window = { kind = "tumbling", length = "1h" }
//! insert = "last"            # first | last | product
//! emit = "final"             # complete | final | running
//!
//! [[output]]
//! from = "per_minute.down"
//! path = "out/per_minute"    # no extension: a directory of rolling part-NNNNN.parquet files
//! max_file_rows = 100000     # or max_file_bytes (default 128 MiB)
//!
//! [[output]]
//! from = "per_minute.late"
//! kind = "table"             # print the first `rows` rows on stdout
//! rows = 10
//! ```
//!
//! Output `kind` is `parquet`, `ipc`, `csv`, `table` or `memory`; without it the path's
//! extension decides (`.parquet`, `.arrow`/`.ipc`, `.csv`; none: a Parquet directory).
//! Unknown keys are rejected with their name and line; every other error names the file and
//! the step or input, and says what would be valid.
//!
//! ```
//! use windrow::pipeline::{Pipeline, RunMode};
//!
//! let toml = r#"
//! [[input]]
//! name = "clicks"
//! path = "data/clicks.parquet"
//!
//! [[step]]
//! id = "per_minute"
//! input = "clicks"
//! key = ["user"]
//! time = "ts"
//! wait = "30s"
//! window = { kind = "tumbling", length = "1m" }
//! operator = "count"
//!
//! [[output]]
//! from = "per_minute.down"
//! kind = "memory"
//! "#;
//! let pipeline = Pipeline::from_toml_str(toml, env!("CARGO_MANIFEST_DIR")).unwrap();
//! let summary = pipeline.build(RunMode::Replay).unwrap().run(|_| {}).unwrap();
//! assert_eq!(summary.rows_in, 200_000);
//! assert_eq!(summary.step("per_minute").unwrap().rows[0], 62_488); // windows closed
//! ```

mod run;
mod spec;
mod text;

use std::path::{Path, PathBuf};

use arrow::datatypes::SchemaRef;
use chrono::TimeDelta;

pub use self::run::{BuiltPipeline, OutputTarget, PlannedOutput, Progress, RunSummary, StepSummary};
pub use self::spec::{
    ClockKind, ColumnSpec, EmitKind, InputKind, InputSpec, InsertKind, IntoKind, OperatorKind, OutputKind, OutputSpec,
    PipelineSpec, ScopeKind, StepKind, StepSpec, WindowKind, WindowSpec,
};
pub use self::text::{
    AGGREGATE_FORMS, DURATION_FORMS, TYPE_NAMES, parse_aggregate, parse_duration, parse_instant, parse_type,
    parse_wait, schema_of, show_duration,
};
use crate::agg::{CollectInto, EmitMode, InsertMode};
use crate::error::{Result, WindrowError};
use crate::flow::{Dataflow, Port, Stream};
use crate::ops::{agg_window, collect_window, count_window, join_window, key_on, max_window, min_window};
use crate::sink::RollPolicy;
use crate::source::{CsvOptions, FileFormat, ReadOptions, Source, open_files};
use crate::time::{Clock, EventClock, SystemClock, TimeSource, WatermarkScope};
use crate::window::{SessionWindower, SlidingWindower, TumblingWindower, Windower};

/// How system time flows when the pipeline runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunMode {
    /// Files and memory: system time is frozen, outputs depend only on the data.
    Replay,
    /// Served (`windrow serve`): the real clock; timers close the windows of idle keys.
    Live,
}

impl RunMode {
    fn time_source(self) -> TimeSource {
        match self {
            RunMode::Replay => TimeSource::replay(),
            RunMode::Live => TimeSource::Real,
        }
    }
}

/// A parsed pipeline: its spec and where its relative paths resolve.
#[derive(Clone, Debug)]
pub struct Pipeline {
    spec: PipelineSpec,
    origin: String,
    base_dir: PathBuf,
    output_dir: Option<PathBuf>,
    default_name: String,
}

impl Pipeline {
    /// Parses a pipeline; relative paths in it resolve against `base_dir`.
    ///
    /// # Errors
    /// Invalid TOML or an unknown key (the message has the line and the key).
    pub fn from_toml_str(text: &str, base_dir: impl AsRef<Path>) -> Result<Self> {
        Self::parse(text, "pipeline", base_dir.as_ref(), "pipeline")
    }

    /// Reads and parses a pipeline file; relative paths resolve against its folder.
    ///
    /// # Errors
    /// An unreadable file, invalid TOML or an unknown key; the message names the file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| WindrowError::Config(format!("cannot read pipeline file {}: {e}", path.display())))?;
        let base = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("pipeline");
        Self::parse(&text, &format!("pipeline {}", path.display()), base, stem)
    }

    /// A pipeline from a spec built in code (the command line's flags).
    pub fn from_spec(spec: PipelineSpec, base_dir: impl AsRef<Path>) -> Self {
        Pipeline {
            spec,
            origin: "pipeline".into(),
            base_dir: base_dir.as_ref().to_path_buf(),
            output_dir: None,
            default_name: "pipeline".into(),
        }
    }

    fn parse(text: &str, origin: &str, base: &Path, name: &str) -> Result<Self> {
        let spec: PipelineSpec = toml::from_str(text).map_err(|e| WindrowError::Config(format!("{origin}: {e}")))?;
        Ok(Pipeline {
            spec,
            origin: origin.to_string(),
            base_dir: base.to_path_buf(),
            output_dir: None,
            default_name: name.to_string(),
        })
    }

    /// Names where the pipeline came from in error messages (default: `pipeline` or the
    /// file's path).
    pub fn with_origin(mut self, origin: impl Into<String>) -> Self {
        self.origin = origin.into();
        self
    }

    /// Resolves relative output paths against `dir` instead of the pipeline's folder.
    pub fn with_output_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.output_dir = Some(dir.as_ref().to_path_buf());
        self
    }

    /// The spec (to inspect or amend before building).
    pub fn spec(&self) -> &PipelineSpec {
        &self.spec
    }

    /// The spec, mutable (the command line adds `--output`s).
    pub fn spec_mut(&mut self) -> &mut PipelineSpec {
        &mut self.spec
    }

    /// The flow's name.
    pub fn name(&self) -> &str {
        self.spec.name.as_deref().unwrap_or(&self.default_name)
    }

    fn err(&self, what: &str, msg: impl std::fmt::Display) -> WindrowError {
        WindrowError::Config(format!("{}, {what}: {msg}", self.origin))
    }

    /// Re-labels a library error with where in the pipeline it came from, keeping its kind.
    fn within(&self, what: &str, e: WindrowError) -> WindrowError {
        let at = |m: String| format!("{}, {what}: {m}", self.origin);
        match e {
            WindrowError::Config(m) => WindrowError::Config(at(m)),
            WindrowError::Plan(m) => WindrowError::Plan(at(m)),
            WindrowError::Data(m) => WindrowError::Data(at(m)),
            other => WindrowError::Data(at(other.to_string())),
        }
    }

    fn resolve(&self, base: &Path, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() { p.to_path_buf() } else { base.join(p) }
    }

    /// Builds the flow (opening file inputs, checking every column and parameter) and plans
    /// the outputs; system time follows `mode`.
    ///
    /// # Errors
    /// The first problem found, naming the file, the input, step or output, and what to fix.
    pub fn build(&self, mode: RunMode) -> Result<BuiltPipeline> {
        let spec = &self.spec;
        if spec.inputs.is_empty() {
            return Err(WindrowError::Config(format!("{}: no [[input]]; add one with a name and a path", self.origin)));
        }
        if spec.steps.is_empty() {
            return Err(WindrowError::Config(format!("{}: no [[step]]; add a window or join step", self.origin)));
        }
        let mut flow = Dataflow::new(self.name());
        let mut streams: Vec<(String, Stream)> = Vec::new();
        for input in &spec.inputs {
            let what = format!("input \"{}\"", input.name);
            if streams.iter().any(|(n, _)| n == &input.name) {
                return Err(self.err(&what, "the name is used twice"));
            }
            let stream = match self.open_input(input).map_err(|e| self.within(&what, e))? {
                Opened::Source(source) => flow.input(&input.name, source),
                Opened::Pushed(schema) => flow.pushed_input(&input.name, schema),
            };
            streams.push((input.name.clone(), stream));
        }
        let time_source = mode.time_source();
        for step in &spec.steps {
            let what = format!("step \"{}\"", step.id);
            self.add_step(&mut flow, &streams, step, &time_source).map_err(|e| self.within(&what, e))?;
        }
        let mut outputs = Vec::new();
        for (i, out) in spec.outputs.iter().enumerate() {
            let what = format!("output {} (from = \"{}\")", i + 1, out.from);
            let planned = self.plan_output(out).map_err(|e| self.within(&what, e))?;
            // Two outputs writing one file would interleave into one corrupt file.
            if let OutputTarget::File { path, .. } = &planned.target
                && let Some(other) = outputs
                    .iter()
                    .find(|o: &&PlannedOutput| matches!(&o.target, OutputTarget::File { path: p, .. } if p == path))
            {
                return Err(self.within(
                    &what,
                    WindrowError::Config(format!(
                        "{} is also the path of output \"{}\"; give each output its own file or directory",
                        path.display(),
                        other.name
                    )),
                ));
            }
            outputs.push(planned);
        }
        Ok(BuiltPipeline {
            flow,
            outputs,
            coalesce_rows: spec.coalesce_rows.unwrap_or(crate::sink::DEFAULT_COALESCE_ROWS),
            checkpoint: None,
        })
    }

    fn open_input(&self, input: &InputSpec) -> Result<Opened> {
        let not_for = |field: &str, kind: &str| {
            WindrowError::Config(format!("`{field}` does not apply to {kind} inputs; remove it"))
        };
        let kind = match (input.kind, &input.path) {
            (Some(k), _) => k,
            (None, Some(p)) => match FileFormat::from_extension(Path::new(p)) {
                Some(FileFormat::Ipc) => InputKind::Ipc,
                Some(FileFormat::Csv) => InputKind::Csv,
                _ => InputKind::Parquet,
            },
            (None, None) => {
                return Err(WindrowError::Config(
                    "give a `path` (a file, a directory or a glob), or kind = \"pushed\" with a `schema`".into(),
                ));
            }
        };
        let declared = match &input.schema {
            Some(cols) => Some(
                schema_of(
                    cols.iter().map(|c| (c.name.as_str(), c.ty.as_str(), c.tz.as_deref(), c.nullable.unwrap_or(true))),
                )
                .map_err(|e| WindrowError::Config(format!("schema: {e}")))?,
            ),
            None => None,
        };
        if kind != InputKind::Parquet && input.dictionary.is_some() {
            return Err(not_for("dictionary", kind_name(kind)));
        }
        if kind != InputKind::Csv {
            for (field, set) in [
                ("has_header", input.has_header.is_some()),
                ("delimiter", input.delimiter.is_some()),
                ("infer_rows", input.infer_rows.is_some()),
            ] {
                if set {
                    return Err(not_for(field, kind_name(kind)));
                }
            }
        }
        if kind != InputKind::Flight {
            for (field, set) in [("endpoint", input.endpoint.is_some()), ("ticket", input.ticket.is_some())] {
                if set {
                    return Err(not_for(field, kind_name(kind)));
                }
            }
        }
        if kind == InputKind::Flight {
            for (field, set) in [
                ("path", input.path.is_some()),
                ("schema", input.schema.is_some()),
                ("schema_from", input.schema_from.is_some()),
                ("columns", input.columns.is_some()),
                ("batch_size", input.batch_size.is_some()),
            ] {
                if set {
                    return Err(not_for(field, "flight"));
                }
            }
            let (Some(endpoint), Some(ticket)) = (&input.endpoint, &input.ticket) else {
                return Err(WindrowError::Config(
                    "a flight input reads another server's DoGet stream: give endpoint = \"http://HOST:PORT\" \
                     and ticket = \"OUTPUT\""
                        .into(),
                ));
            };
            let source = crate::flight::FlightSource::connect(endpoint, ticket.as_bytes().to_vec())?;
            return Ok(Opened::Source(Box::new(source)));
        }
        if kind == InputKind::Pushed {
            if input.path.is_some() {
                return Err(not_for("path", "pushed"));
            }
            let schema = match (declared, &input.schema_from) {
                (Some(s), None) => s,
                (None, Some(from)) => {
                    let path = self.resolve(&self.base_dir, from);
                    open_files(&path, None, &ReadOptions::default())
                        .map_err(|e| WindrowError::Config(format!("schema_from: {e}")))?
                        .schema()
                }
                (Some(_), Some(_)) => {
                    return Err(WindrowError::Config("give `schema` or `schema_from`, not both".into()));
                }
                (None, None) => {
                    return Err(WindrowError::Config(
                        "a pushed input declares its columns: schema = [{ name = \"user\", type = \"utf8\" }, \
                         { name = \"ts\", type = \"timestamp_ms\" }, …] or schema_from = \"sample.parquet\""
                            .into(),
                    ));
                }
            };
            let schema = match &input.columns {
                Some(cols) => {
                    let idx = cols
                        .iter()
                        .map(|c| {
                            schema.index_of(c).map_err(|_| {
                                WindrowError::Plan(format!("columns: \"{c}\" is not in the declared schema"))
                            })
                        })
                        .collect::<Result<Vec<_>>>()?;
                    std::sync::Arc::new(schema.project(&idx)?)
                }
                None => schema,
            };
            return Ok(Opened::Pushed(schema));
        }
        if input.schema_from.is_some() {
            return Err(not_for("schema_from", kind_name(kind)));
        }
        if declared.is_some() && kind != InputKind::Csv {
            return Err(WindrowError::Config(format!(
                "`schema` applies to csv and pushed inputs; {} files carry their own",
                kind_name(kind)
            )));
        }
        let Some(path) = &input.path else {
            return Err(WindrowError::Config(format!("a {} input needs a `path`", kind_name(kind))));
        };
        let delimiter = match input.delimiter.as_deref() {
            None => b',',
            Some(d) if d.len() == 1 => d.as_bytes()[0],
            Some("\\t" | "tab") => b'\t',
            Some(d) => {
                return Err(WindrowError::Config(format!("delimiter \"{d}\": expected one character (or \"tab\")")));
            }
        };
        if input.batch_size == Some(0) {
            return Err(WindrowError::Config("batch_size must be at least 1".into()));
        }
        let options = ReadOptions {
            batch_size: input.batch_size.unwrap_or(65_536),
            columns: input.columns.clone(),
            dictionary: input.dictionary.clone().unwrap_or_default(),
            csv: CsvOptions {
                schema: declared,
                has_header: input.has_header.unwrap_or(true),
                delimiter,
                infer_rows: input.infer_rows.unwrap_or(1000),
            },
        };
        let format = match kind {
            InputKind::Parquet => FileFormat::Parquet,
            InputKind::Ipc => FileFormat::Ipc,
            InputKind::Csv => FileFormat::Csv,
            InputKind::Pushed | InputKind::Flight => unreachable!("handled above"),
        };
        Ok(Opened::Source(open_files(self.resolve(&self.base_dir, path), Some(format), &options)?))
    }

    fn add_step(
        &self,
        flow: &mut Dataflow,
        streams: &[(String, Stream)],
        step: &StepSpec,
        ts: &TimeSource,
    ) -> Result<()> {
        let cfg = |m: String| WindrowError::Config(m);
        let find = |name: &str| {
            streams.iter().find(|(n, _)| n == name).map(|(_, s)| s.clone()).ok_or_else(|| {
                let names: Vec<&str> = streams.iter().map(|(n, _)| n.as_str()).collect();
                cfg(format!("no input named \"{name}\"; the inputs are: {}", names.join(", ")))
            })
        };
        let kind = step.kind.unwrap_or_default();
        let key = match &step.key {
            Some(k) if !k.is_empty() => k.clone(),
            _ => return Err(cfg("`key` is required: the key column(s), e.g. key = [\"user\"]".into())),
        };
        let clock = self.clock(step)?;
        let windower = self.windower(step)?;
        let scope = match step.scope {
            Some(ScopeKind::PerStream) => WatermarkScope::PerStream,
            _ => WatermarkScope::PerKey,
        };
        let threads = step.threads.or(self.spec.threads).unwrap_or(1);
        if threads == 0 {
            return Err(cfg("threads must be at least 1".into()));
        }
        match kind {
            StepKind::Window => {
                for (field, set) in [
                    ("inputs", step.inputs.is_some()),
                    ("insert", step.insert.is_some()),
                    ("emit", step.emit.is_some()),
                    ("side_names", step.side_names.is_some()),
                ] {
                    if set {
                        return Err(cfg(format!(
                            "`{field}` applies to join steps (kind = \"join\"); a window step reads one `input`"
                        )));
                    }
                }
                let Some(input) = &step.input else {
                    return Err(cfg("`input` is required: the name of the input this step reads".into()));
                };
                let up = find(input)?;
                let keyed = key_on(up.schema(), key.iter().cloned());
                let id = step.id.as_str();
                let builder = match (step.operator, &step.aggregates) {
                    (Some(_), Some(_)) => {
                        return Err(cfg("give `operator` or `aggregates`, not both".into()));
                    }
                    (None, None) => {
                        return Err(cfg(format!(
                            "say what to compute: operator = \"count\" | \"collect\" | \"max\" | \"min\", or \
                             aggregates = [\"count\", \"sum:bytes\"] (forms: {AGGREGATE_FORMS})"
                        )));
                    }
                    (None, Some(aggs)) => {
                        let aggs = aggs
                            .iter()
                            .map(|a| parse_aggregate(a).map_err(|e| cfg(format!("aggregates: {e}"))))
                            .collect::<Result<Vec<_>>>()?;
                        agg_window(id, &keyed, clock, windower, aggs)
                    }
                    (Some(op), None) => {
                        for (field, set) in [
                            ("column", step.column.is_some()),
                            ("into", step.into.is_some()),
                            ("dict_key", step.dict_key.is_some()),
                            ("dict_value", step.dict_value.is_some()),
                        ] {
                            if set && op != OperatorKind::Collect {
                                return Err(cfg(format!("`{field}` applies to operator = \"collect\"")));
                            }
                        }
                        if step.by.is_some() && !matches!(op, OperatorKind::Max | OperatorKind::Min) {
                            return Err(cfg("`by` applies to operator = \"max\" or \"min\"".into()));
                        }
                        match op {
                            OperatorKind::Count => count_window(
                                id,
                                up.schema(),
                                clock,
                                windower,
                                crate::engine::KeySpec::columns(key.iter().cloned()),
                            ),
                            OperatorKind::Collect => {
                                let b = collect_window(id, &keyed, clock, windower)
                                    .into_container(collect_into(step).map_err(cfg)?);
                                match &step.column {
                                    Some(c) => b.column(c),
                                    None => b,
                                }
                            }
                            OperatorKind::Max | OperatorKind::Min => {
                                let b = if op == OperatorKind::Max {
                                    max_window(id, &keyed, clock, windower)
                                } else {
                                    min_window(id, &keyed, clock, windower)
                                };
                                match &step.by {
                                    Some(c) => b.by(c),
                                    None => b,
                                }
                            }
                        }
                    }
                };
                if step.aggregates.is_some()
                    && (step.column.is_some()
                        || step.by.is_some()
                        || step.into.is_some()
                        || step.dict_key.is_some()
                        || step.dict_value.is_some())
                {
                    return Err(cfg(
                        "`column`, `into`, `dict_key`, `dict_value` and `by` apply to operator = collect / max / min, \
                         not to aggregates"
                            .into(),
                    ));
                }
                let mut builder = builder.scope(scope).threads(threads).time_source(ts.clone());
                if let Some(o) = step.ordered {
                    builder = builder.ordered(o);
                }
                if let Some(s) = step.strict {
                    builder = builder.strict(s);
                }
                flow.window(&up, builder)
            }
            StepKind::Join => {
                for (field, set) in [
                    ("input", step.input.is_some()),
                    ("operator", step.operator.is_some()),
                    ("aggregates", step.aggregates.is_some()),
                    ("column", step.column.is_some()),
                    ("into", step.into.is_some()),
                    ("dict_key", step.dict_key.is_some()),
                    ("dict_value", step.dict_value.is_some()),
                    ("by", step.by.is_some()),
                ] {
                    if set {
                        return Err(cfg(format!(
                            "`{field}` does not apply to join steps; a join reads `inputs = [..]` and emits each side's rows"
                        )));
                    }
                }
                let names = match &step.inputs {
                    Some(n) if !n.is_empty() => n.clone(),
                    _ => {
                        return Err(cfg(
                            "`inputs` is required: the inputs joined, e.g. inputs = [\"views\", \"profiles\"]".into(),
                        ));
                    }
                };
                let sides: Vec<Stream> = names.iter().map(|n| find(n)).collect::<Result<_>>()?;
                let keyed: Vec<_> = sides.iter().map(|s| key_on(s.schema(), key.iter().cloned())).collect();
                let mut builder = join_window(&step.id, &keyed, clock, windower)
                    .side_names(step.side_names.clone().unwrap_or_else(|| names.clone()))
                    .scope(scope)
                    .threads(threads)
                    .time_source(ts.clone());
                if let Some(m) = step.insert {
                    builder = builder.insert_mode(match m {
                        InsertKind::First => InsertMode::First,
                        InsertKind::Last => InsertMode::Last,
                        InsertKind::Product => InsertMode::Product,
                    });
                }
                if let Some(m) = step.emit {
                    builder = builder.emit_mode(match m {
                        EmitKind::Complete => EmitMode::Complete,
                        EmitKind::Final => EmitMode::Final,
                        EmitKind::Running => EmitMode::Running,
                    });
                }
                if let Some(o) = step.ordered {
                    builder = builder.ordered(o);
                }
                if let Some(s) = step.strict {
                    builder = builder.strict(s);
                }
                let refs: Vec<&Stream> = sides.iter().collect();
                flow.join(&step.id, &refs, builder)
            }
        }
    }

    fn clock(&self, step: &StepSpec) -> Result<Clock> {
        let cfg = |m: String| WindrowError::Config(m);
        match step.clock.unwrap_or_default() {
            ClockKind::System => {
                if step.time.is_some() || step.wait.is_some() {
                    return Err(cfg(
                        "`time` and `wait` apply to clock = \"event\"; the system clock has neither".into()
                    ));
                }
                Ok(SystemClock::new().into())
            }
            ClockKind::Event => {
                let Some(time) = &step.time else {
                    return Err(cfg(
                        "`time` is required: the event-time column, e.g. time = \"ts\" (or clock = \"system\")".into(),
                    ));
                };
                let clock = EventClock::new(time);
                Ok(match parse_wait(step.wait.as_deref().unwrap_or("0s")).map_err(|e| cfg(format!("wait: {e}")))? {
                    Some(d) => clock.wait_for_system_duration(d)?,
                    None => clock.wait_forever(),
                }
                .into())
            }
        }
    }

    fn windower(&self, step: &StepSpec) -> Result<Windower> {
        let cfg = |m: String| WindrowError::Config(m);
        let Some(w) = &step.window else {
            return Err(cfg(
                "`window` is required, e.g. window = { kind = \"tumbling\", length = \"1m\" }, { kind = \"sliding\", \
                 length = \"5m\", offset = \"1m\" } or { kind = \"session\", gap = \"30s\" }"
                    .into(),
            ));
        };
        let dur = |field: &str, v: &Option<String>| -> Result<TimeDelta> {
            let Some(text) = v else {
                return Err(cfg(format!("window: `{field}` is required for {:?} windows", w.kind).to_lowercase()));
            };
            parse_duration(text).map_err(|e| cfg(format!("window.{field}: {e}")))
        };
        let refuse = |field: &str, set: bool| -> Result<()> {
            if set {
                return Err(cfg(format!(
                    "window: `{field}` does not apply to {} windows",
                    format!("{:?}", w.kind).to_lowercase()
                )));
            }
            Ok(())
        };
        let align = match &w.align_to {
            Some(t) => Some(parse_instant(t).map_err(|e| cfg(format!("window.align_to: {e}")))?),
            None => None,
        };
        Ok(match w.kind {
            WindowKind::Tumbling => {
                refuse("offset", w.offset.is_some())?;
                refuse("gap", w.gap.is_some())?;
                let t = TumblingWindower::new(dur("length", &w.length)?)?;
                align.map_or(t, |a| t.align_to(a)).into()
            }
            WindowKind::Sliding => {
                refuse("gap", w.gap.is_some())?;
                let s = SlidingWindower::new(dur("length", &w.length)?, dur("offset", &w.offset)?)?;
                align.map_or(s, |a| s.align_to(a)).into()
            }
            WindowKind::Session => {
                refuse("length", w.length.is_some())?;
                refuse("offset", w.offset.is_some())?;
                refuse("align_to", w.align_to.is_some())?;
                SessionWindower::new(dur("gap", &w.gap)?)?.into()
            }
        })
    }

    fn plan_output(&self, out: &OutputSpec) -> Result<PlannedOutput> {
        let cfg = |m: String| WindrowError::Config(m);
        let Some((step, port)) = Port::parse_output_name(&out.from) else {
            return Err(cfg(
                "`from` is `<step>.<port>` with port down, late, meta or errors, e.g. \"per_minute.down\"".into(),
            ));
        };
        if !self.spec.steps.iter().any(|s| s.id == step) {
            let ids: Vec<&str> = self.spec.steps.iter().map(|s| s.id.as_str()).collect();
            return Err(cfg(format!("there is no step \"{step}\"; the steps are: {}", ids.join(", "))));
        }
        let base = self.output_dir.as_deref().unwrap_or(&self.base_dir);
        let path = out.path.as_ref().map(|p| self.resolve(base, p));
        let kind = match (out.kind, &path) {
            (Some(k), _) => k,
            (None, Some(p)) => match FileFormat::from_extension(p) {
                Some(FileFormat::Ipc) => OutputKind::Ipc,
                Some(FileFormat::Csv) => OutputKind::Csv,
                Some(FileFormat::Parquet) => OutputKind::Parquet,
                None if p.extension().is_none() => OutputKind::Parquet,
                None => {
                    return Err(cfg(format!(
                        "cannot tell the format of {}: use .parquet, .arrow or .csv, a name without extension \
                         (a directory of Parquet files), or set kind",
                        p.display()
                    )));
                }
            },
            (None, None) => return Err(cfg("give a `path`, or kind = \"table\" to print it".into())),
        };
        let rolling = out.max_file_rows.is_some() || out.max_file_bytes.is_some();
        if rolling && kind != OutputKind::Parquet {
            return Err(cfg("max_file_rows / max_file_bytes apply to Parquet outputs".into()));
        }
        if out.rows.is_some() && kind != OutputKind::Table {
            return Err(cfg("`rows` applies to kind = \"table\"".into()));
        }
        let target = match kind {
            OutputKind::Table | OutputKind::Memory => {
                if path.is_some() {
                    return Err(cfg(format!("`path` does not apply to kind = \"{}\"", output_kind_name(kind))));
                }
                if kind == OutputKind::Table {
                    OutputTarget::Table { rows: out.rows.unwrap_or(20) }
                } else {
                    OutputTarget::Memory
                }
            }
            file_kind => {
                let Some(path) = path else {
                    return Err(cfg(format!("a {} output needs a `path`", output_kind_name(kind))));
                };
                if rolling && path.extension().is_some_and(|e| e.eq_ignore_ascii_case("parquet")) {
                    return Err(cfg(format!(
                        "{} is one file; rolling (max_file_rows / max_file_bytes) writes a directory: drop the .parquet",
                        path.display()
                    )));
                }
                if out.max_file_rows == Some(0) || out.max_file_bytes == Some(0) {
                    return Err(cfg("max_file_rows and max_file_bytes must be at least 1".into()));
                }
                let format = match file_kind {
                    OutputKind::Ipc => FileFormat::Ipc,
                    OutputKind::Csv => FileFormat::Csv,
                    _ => FileFormat::Parquet,
                };
                let roll = if rolling {
                    RollPolicy { max_rows: out.max_file_rows, max_bytes: out.max_file_bytes }
                } else {
                    RollPolicy::default()
                };
                OutputTarget::File { path, format, roll }
            }
        };
        Ok(PlannedOutput { name: out.from.clone(), step: step.to_string(), port, target })
    }
}

enum Opened {
    Source(Box<dyn Source>),
    Pushed(SchemaRef),
}

/// The container of a `collect` step from `into`, `column`, `dict_key` and `dict_value`.
fn collect_into(step: &StepSpec) -> std::result::Result<CollectInto, String> {
    let into = step.into.unwrap_or(IntoKind::List);
    if into != IntoKind::Dict {
        for (field, set) in [("dict_key", step.dict_key.is_some()), ("dict_value", step.dict_value.is_some())] {
            if set {
                return Err(format!("`{field}` applies to into = \"dict\""));
            }
        }
    }
    match into {
        IntoKind::List => Ok(CollectInto::List),
        IntoKind::Set if step.column.is_none() => {
            Err("into = \"set\" needs `column`: the column whose distinct values are collected, e.g. column = \"page\""
                .into())
        }
        IntoKind::Set => Ok(CollectInto::Set),
        IntoKind::Dict => {
            if step.column.is_some() {
                return Err("`column` does not apply to into = \"dict\"; name `dict_key` and `dict_value`".into());
            }
            match (&step.dict_key, &step.dict_value) {
                (Some(k), Some(v)) => Ok(CollectInto::dict(k, v)),
                (k, v) => {
                    let missing: Vec<&str> = [("dict_key", k.is_none()), ("dict_value", v.is_none())]
                        .iter()
                        .filter(|m| m.1)
                        .map(|m| m.0)
                        .collect();
                    Err(format!(
                        "into = \"dict\" needs `dict_key` and `dict_value`, the columns of each entry's key and value \
                         (missing: {})",
                        missing.join(", ")
                    ))
                }
            }
        }
    }
}

fn kind_name(k: InputKind) -> &'static str {
    match k {
        InputKind::Parquet => "parquet",
        InputKind::Ipc => "ipc",
        InputKind::Csv => "csv",
        InputKind::Pushed => "pushed",
        InputKind::Flight => "flight",
    }
}

fn output_kind_name(k: OutputKind) -> &'static str {
    match k {
        OutputKind::Parquet => "parquet",
        OutputKind::Ipc => "ipc",
        OutputKind::Csv => "csv",
        OutputKind::Table => "table",
        OutputKind::Memory => "memory",
    }
}
