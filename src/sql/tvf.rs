//! The window table functions: `tumble`, `hop` and `session` (aggregated by windrow's operator,
//! see [`super::rewrite`]) and their `_late` companions (the late rows of the same window
//! definition). This file parses and checks their arguments and describes their schemas.

use crate::pipeline::show_duration;
use std::any::Any;
use std::fmt;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, TimeDelta, Utc};
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{DataFusionError, ScalarValue, TableReference};
use datafusion::datasource::TableType;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use futures::FutureExt;
use futures::future::BoxFuture;

use super::exec::{WindowExec, WindowOutput};
use crate::engine::{KeySpec, WindowOpBuilder};
use crate::ops::{agg_window, key_on};
use crate::prelude::Agg;
use crate::time::{EventClock, WatermarkScope};
use crate::window::{SessionWindower, SlidingWindower, TumblingWindower, Windower};

/// The window columns a window table function adds to its input's columns.
pub(crate) const WINDOW_COLUMNS: [&str; 3] = ["window_id", "window_start", "window_end"];

/// Name of the constant key column used when windows are per stream (no key columns).
pub(crate) const STREAM_KEY: &str = "__windrow_stream";

/// What the accepted argument forms are, appended to every argument error.
const ARGUMENT_FORMS: &str = "table and column names are strings ('clicks', 'ts'); sizes, slides, gaps and waits \
     are INTERVALs (INTERVAL '1 minute'); wait may also be 'forever'; offset is an INTERVAL after the Unix epoch or \
     a TIMESTAMP where window 0 starts; scope is 'key' (one watermark per key, the default) or 'stream'; keys \
     (late functions only) is a comma-separated list of key columns ('user' or 'user,page'; '' for one key); \
     NULL keeps an optional argument's default";

/// The three window kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Tumble,
    Hop,
    Session,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Tumble => "tumble",
            Kind::Hop => "hop",
            Kind::Session => "session",
        }
    }

    /// Names of the required window arguments after the table and time column.
    fn sizes(self) -> &'static [&'static str] {
        match self {
            Kind::Tumble => &["size"],
            Kind::Hop => &["slide", "size"],
            Kind::Session => &["gap"],
        }
    }

    /// Names of the optional trailing arguments.
    fn options(self) -> &'static [&'static str] {
        match self {
            Kind::Tumble | Kind::Hop => &["wait", "offset", "scope"],
            Kind::Session => &["wait", "scope"],
        }
    }
}

/// The signature of a window table function, for messages and docs.
pub(crate) fn signature(kind: Kind, late: bool) -> String {
    let mut required: Vec<&str> = vec!["table", "time_column"];
    required.extend(kind.sizes());
    if late {
        required.push("keys");
    }
    let opts = kind.options();
    let mut optional = String::new();
    for o in opts {
        optional.push_str(&format!(" [, {o}"));
    }
    optional.push_str(&"]".repeat(opts.len()));
    let name = if late { format!("{}_late", kind.name()) } else { kind.name().to_string() };
    format!("{name}({}{optional})", required.join(", "))
}

/// One window definition: the input table and how it is windowed.
#[derive(Clone)]
pub(crate) struct WindowDef {
    /// The input table's name as written.
    pub table: String,
    pub input: Arc<dyn TableProvider>,
    pub unit: TimeUnit,
    pub clock: EventClock,
    pub windower: Windower,
    pub scope: WatermarkScope,
    /// The call as written, shortened, for plans and messages.
    pub describe: String,
}

impl fmt::Debug for WindowDef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe)
    }
}

impl WindowDef {
    /// An `agg_window` builder over `schema` (the input's schema, plus any computed argument
    /// columns) keyed by `keys` (none: one key for the whole stream).
    pub fn builder(&self, step: &str, schema: &SchemaRef, keys: &[String], aggs: Vec<Agg>) -> WindowOpBuilder {
        let keyed = if keys.is_empty() {
            crate::ops::KeyedStream::new(
                Arc::clone(schema),
                KeySpec::expr(STREAM_KEY, datafusion::logical_expr::lit(0i64)),
            )
        } else {
            key_on(schema, keys.iter().cloned())
        };
        agg_window(step, &keyed, self.clock.clone(), self.windower, aggs).scope(self.scope)
    }
}

/// A window table function (`late` = the `_late` companion).
#[derive(Debug)]
pub(crate) struct WindowFunction {
    pub kind: Kind,
    pub late: bool,
}

impl WindowFunction {
    /// The SQL name: `tumble`, `hop_late`, …
    pub fn name(&self) -> String {
        if self.late { format!("{}_late", self.kind.name()) } else { self.kind.name().to_string() }
    }

    fn err<T>(&self, msg: impl fmt::Display) -> DfResult<T> {
        Err(DataFusionError::Plan(format!(
            "{}: {msg}; usage: {}; {ARGUMENT_FORMS}",
            self.name(),
            signature(self.kind, self.late)
        )))
    }
}

impl TableFunctionImpl for WindowFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> DfResult<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        let names: Vec<&str> = ["table", "time_column"]
            .into_iter()
            .chain(self.kind.sizes().iter().copied())
            .chain(self.late.then_some("keys"))
            .chain(self.kind.options().iter().copied())
            .collect();
        let required = 2 + self.kind.sizes().len() + usize::from(self.late);
        if exprs.len() < required || exprs.len() > names.len() {
            return self.err(format!("expected {required} to {} arguments, got {}", names.len(), exprs.len()));
        }
        let mut values = Vec::with_capacity(exprs.len());
        for (i, e) in exprs.iter().enumerate() {
            match e {
                Expr::Literal(v, _) => values.push(v.clone()),
                other => {
                    return self.err(format!("argument {} (`{}`) must be a constant, got `{other}`", i + 1, names[i]));
                }
            }
        }
        let arg =
            |name: &str| names.iter().position(|n| *n == name).and_then(|i| values.get(i)).filter(|v| !v.is_null());

        let table = self.string(arg("table"), "table")?;
        let time_column = self.string(arg("time_column"), "time_column")?;
        let input = resolve_table(args.session(), &table).or_else(|e| self.err(e))?;
        let schema = input.schema();
        for w in WINDOW_COLUMNS {
            if schema.column_with_name(w).is_some() {
                return self.err(format!(
                    "table '{table}' already has a column \"{w}\", which the window function adds; rename it in a view"
                ));
            }
        }
        let unit = match schema.column_with_name(&time_column).map(|(_, f)| f.data_type()) {
            Some(DataType::Timestamp(unit, _)) => *unit,
            Some(other) => {
                return self.err(format!(
                    "time column \"{time_column}\" of '{table}' has type {other}; it must be a Timestamp"
                ));
            }
            None => {
                return self.err(format!(
                    "table '{table}' has no column \"{time_column}\"; its columns are {}",
                    describe_columns(&schema)
                ));
            }
        };

        let wait = match arg("wait") {
            None => None,
            Some(v) if v.try_as_str().flatten().is_some_and(|s| s.trim().eq_ignore_ascii_case("forever")) => {
                Some(Wait::Forever)
            }
            Some(v) => Some(Wait::Finite(self.duration(Some(v), "wait")?)),
        };
        let clock = match wait {
            None => EventClock::new(&time_column),
            Some(Wait::Forever) => EventClock::new(&time_column).wait_forever(),
            Some(Wait::Finite(d)) => {
                EventClock::new(&time_column).wait_for_system_duration(d).or_else(|e| self.err(e))?
            }
        };
        let align = match arg("offset") {
            None => None,
            Some(v) => Some(self.instant(v)?),
        };
        let scope = match arg("scope").map(|v| self.string(Some(v), "scope")).transpose()?.as_deref() {
            None | Some("key") => WatermarkScope::PerKey,
            Some("stream") => WatermarkScope::PerStream,
            Some(other) => return self.err(format!("scope '{other}' is neither 'key' nor 'stream'")),
        };
        let windower: Windower = match self.kind {
            Kind::Tumble => {
                let w = TumblingWindower::new(self.duration(arg("size"), "size")?).or_else(|e| self.err(e))?;
                align.map_or(w, |a| w.align_to(a)).into()
            }
            Kind::Hop => {
                let slide = self.duration(arg("slide"), "slide")?;
                let size = self.duration(arg("size"), "size")?;
                let w = SlidingWindower::new(size, slide).or_else(|e| self.err(e))?;
                align.map_or(w, |a| w.align_to(a)).into()
            }
            Kind::Session => SessionWindower::new(self.duration(arg("gap"), "gap")?).or_else(|e| self.err(e))?.into(),
        };
        let shown: Vec<String> = values
            .iter()
            .map(|v| match (v.try_as_str().flatten(), self.duration(Some(v), "")) {
                (Some(s), _) => format!("'{s}'"),
                (None, Ok(d)) => show_duration(d),
                (None, Err(_)) if matches!(v.data_type(), DataType::Timestamp(..)) && !v.is_null() => {
                    self.instant(v).map_or_else(|_| v.to_string(), |t| t.to_rfc3339())
                }
                (None, Err(_)) => v.to_string(),
            })
            .collect();
        let describe = format!("{}({})", self.name(), shown.join(", "));
        let def = WindowDef { table, input, unit, clock, windower, scope, describe };
        if self.late {
            let keys_text = arg("keys").map(|v| self.string(Some(v), "keys")).transpose()?.unwrap_or_default();
            let keys: Vec<String> =
                keys_text.split(',').map(str::trim).filter(|k| !k.is_empty()).map(str::to_string).collect();
            return Ok(Arc::new(LateTable::try_new(def, keys).or_else(|e| self.err(e))?));
        }
        Ok(Arc::new(WindowTvfTable::new(def)))
    }
}

enum Wait {
    Finite(TimeDelta),
    Forever,
}

impl WindowFunction {
    fn string(&self, v: Option<&ScalarValue>, name: &str) -> DfResult<String> {
        match v.and_then(|v| v.try_as_str().flatten()) {
            Some(s) => Ok(s.to_string()),
            None => self.err(format!("`{name}` must be a string, got {}", show(v))),
        }
    }

    fn duration(&self, v: Option<&ScalarValue>, name: &str) -> DfResult<TimeDelta> {
        let d = match v {
            Some(ScalarValue::IntervalMonthDayNano(Some(i))) if i.months == 0 => {
                TimeDelta::try_days(i64::from(i.days)).map(|d| d + TimeDelta::nanoseconds(i.nanoseconds))
            }
            Some(ScalarValue::IntervalDayTime(Some(i))) => {
                TimeDelta::try_days(i64::from(i.days)).map(|d| d + TimeDelta::milliseconds(i64::from(i.milliseconds)))
            }
            Some(ScalarValue::IntervalYearMonth(Some(0))) => Some(TimeDelta::zero()),
            Some(ScalarValue::IntervalMonthDayNano(Some(_)) | ScalarValue::IntervalYearMonth(Some(_))) => {
                return self.err(format!(
                    "`{name}` = {} uses months or years, which have no fixed length; use days or smaller units",
                    show(v)
                ));
            }
            _ => None,
        };
        d.map_or_else(|| self.err(format!("`{name}` must be an INTERVAL, got {}", show(v))), Ok)
    }

    /// An offset (INTERVAL after the epoch) or an instant (TIMESTAMP, or an RFC 3339 string).
    fn instant(&self, v: &ScalarValue) -> DfResult<DateTime<Utc>> {
        let epoch = DateTime::<Utc>::UNIX_EPOCH;
        let ts = match v {
            ScalarValue::TimestampSecond(Some(t), _) => DateTime::from_timestamp(*t, 0),
            ScalarValue::TimestampMillisecond(Some(t), _) => DateTime::from_timestamp_millis(*t),
            ScalarValue::TimestampMicrosecond(Some(t), _) => DateTime::from_timestamp_micros(*t),
            ScalarValue::TimestampNanosecond(Some(t), _) => Some(DateTime::from_timestamp_nanos(*t)),
            v if v.try_as_str().flatten().is_some() => {
                let s = v.try_as_str().flatten().unwrap_or_default();
                match DateTime::parse_from_rfc3339(s) {
                    Ok(t) => Some(t.with_timezone(&Utc)),
                    Err(e) => return self.err(format!("`offset` '{s}' is not an RFC 3339 instant ({e})")),
                }
            }
            v => {
                let d = self.duration(Some(v), "offset")?;
                return epoch
                    .checked_add_signed(d)
                    .map_or_else(|| self.err(format!("`offset` {} is out of range", show(Some(v)))), Ok);
            }
        };
        ts.map_or_else(|| self.err(format!("`offset` {} is out of range", show(Some(v)))), Ok)
    }
}

fn show(v: Option<&ScalarValue>) -> String {
    match v {
        None => "nothing".into(),
        Some(v) => format!("{v} ({})", v.data_type()),
    }
}

/// `name: type, …` for messages.
pub(crate) fn describe_columns(schema: &Schema) -> String {
    schema.fields().iter().map(|f| format!("{}: {}", f.name(), f.data_type())).collect::<Vec<_>>().join(", ")
}

/// Looks a table up in the session's catalog. Only catalogs that answer at once (the default
/// in-memory catalog, where `register_*` puts tables) are supported: table functions are
/// planned synchronously.
fn resolve_table(session: &dyn Session, name: &str) -> Result<Arc<dyn TableProvider>, String> {
    let opts = session.config_options();
    let reference = TableReference::from(name);
    let resolved = reference.clone().resolve(&opts.catalog.default_catalog, &opts.catalog.default_schema);
    let not_found =
        || format!("table '{name}' not found; register it first (e.g. with `windrow sql --table {name}=PATH`)");
    let catalog = session.catalog_list().catalog(&resolved.catalog).ok_or_else(not_found)?;
    let schema = catalog.schema(&resolved.schema).ok_or_else(not_found)?;
    match schema.table(&resolved.table).now_or_never() {
        Some(Ok(Some(t))) => Ok(t),
        Some(Ok(None)) => Err(not_found()),
        Some(Err(e)) => Err(format!("cannot open table '{name}': {e}")),
        None => Err(format!(
            "table '{name}' lives in an asynchronous catalog; window functions need tables registered in the \
             session's in-memory catalog"
        )),
    }
}

/// What `tumble(...)`/`hop(...)`/`session(...)` return: the input's columns plus `window_id`,
/// `window_start` and `window_end`. It is never scanned: the analyzer rule replaces the
/// aggregate over it by windrow's operator, and anything else is reported as unsupported.
#[derive(Debug)]
pub(crate) struct WindowTvfTable {
    pub def: WindowDef,
    schema: SchemaRef,
}

impl WindowTvfTable {
    fn new(def: WindowDef) -> Self {
        let input = def.input.schema();
        let ts = DataType::Timestamp(def.unit, Some("UTC".into()));
        let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new("window_id", DataType::Int64, false));
        fields.push(Field::new("window_start", ts.clone(), false));
        fields.push(Field::new("window_end", ts, false));
        WindowTvfTable { def, schema: Arc::new(Schema::new(fields)) }
    }
}

/// The one message for window table functions used in a shape windrow cannot run.
pub(crate) fn unsupported_shape(def: &str, why: &str) -> DataFusionError {
    DataFusionError::Plan(format!(
        "{def}: {why}. Supported: SELECT <key columns>, window_start, window_end, <aggregates> FROM \
         tumble(...) | hop(...) | session(...) GROUP BY <key columns>, window_start, window_end \
         (window_id may be grouped and selected too; no key columns = one window sequence for the whole table). \
         Aggregates: any DataFusion aggregate function (built-in or user-defined) of one argument, or count(*), \
         without DISTINCT, FILTER or ORDER BY. The window function must be the GROUP BY's direct input: filter or \
         compute columns in a view over the table instead (CREATE VIEW v AS SELECT ... WHERE ...). Late rows: \
         {}, {}, {}",
        signature(Kind::Tumble, true),
        signature(Kind::Hop, true),
        signature(Kind::Session, true)
    ))
}

impl TableProvider for WindowTvfTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    fn scan<'a, 'b, 'c, 'd, 'e>(
        &'a self,
        _state: &'b dyn Session,
        _projection: Option<&'c Vec<usize>>,
        _filters: &'d [Expr],
        _limit: Option<usize>,
    ) -> BoxFuture<'e, DfResult<Arc<dyn ExecutionPlan>>>
    where
        'a: 'e,
        'b: 'e,
        'c: 'e,
        'd: 'e,
        Self: 'e,
    {
        let err = unsupported_shape(&self.def.describe, "a window function's rows can only be read through GROUP BY");
        Box::pin(async move { Err(err) })
    }
}

/// `tumble_late(...)` etc.: the late rows of a window definition keyed by `keys`, exactly as
/// on the operator's `late` output (key columns, `window_id`, the row's other columns).
#[derive(Debug)]
pub(crate) struct LateTable {
    def: WindowDef,
    keys: Vec<String>,
    schema: SchemaRef,
}

impl LateTable {
    fn try_new(def: WindowDef, keys: Vec<String>) -> crate::Result<Self> {
        // Build once to validate the keys and learn the late schema.
        let op = def.builder("late", &def.input.schema(), &keys, vec![Agg::count()]).build()?;
        let late = op.empty_output().schemas()[1].clone();
        let schema = drop_stream_key(&late, keys.is_empty());
        Ok(LateTable { def, keys, schema })
    }
}

/// The late schema without the constant stream key column.
fn drop_stream_key(late: &SchemaRef, stream_keyed: bool) -> SchemaRef {
    if !stream_keyed {
        return Arc::clone(late);
    }
    Arc::new(Schema::new(late.fields().iter().filter(|f| f.name() != STREAM_KEY).cloned().collect::<Vec<_>>()))
}

impl TableProvider for LateTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    fn scan<'a, 'b, 'c, 'd, 'e>(
        &'a self,
        state: &'b dyn Session,
        projection: Option<&'c Vec<usize>>,
        _filters: &'d [Expr],
        _limit: Option<usize>,
    ) -> BoxFuture<'e, DfResult<Arc<dyn ExecutionPlan>>>
    where
        'a: 'e,
        'b: 'e,
        'c: 'e,
        'd: 'e,
        Self: 'e,
    {
        Box::pin(async move {
            let child = self.def.input.scan(state, None, &[], None).await?;
            let input_schema = child.schema();
            let builder = self.def.builder(&self.def.describe, &input_schema, &self.keys, vec![Agg::count()]);
            let late = builder.clone().build().map_err(to_df)?.empty_output().schemas()[1].clone();
            let columns: Vec<usize> = (0..late.fields().len())
                .filter(|&i| !(self.keys.is_empty() && late.field(i).name() == STREAM_KEY))
                .collect();
            let columns = match projection {
                Some(p) => p.iter().map(|&i| columns[i]).collect(),
                None => columns,
            };
            let plan = WindowExec::try_new(
                child,
                builder,
                Vec::new(),
                WindowOutput::Late,
                columns.into_iter().map(|i| (i, None)).collect(),
                format!("{} late rows, keys [{}]", self.def.describe, self.keys.join(", ")),
            )?;
            Ok(Arc::new(plan) as Arc<dyn ExecutionPlan>)
        })
    }
}

/// A windrow error as a DataFusion error (plan errors stay plan errors).
pub(crate) fn to_df(e: crate::WindrowError) -> DataFusionError {
    match e {
        crate::WindrowError::DataFusion(e) => *e,
        crate::WindrowError::Plan(m) | crate::WindrowError::Config(m) => DataFusionError::Plan(m),
        other => DataFusionError::External(Box::new(other)),
    }
}

/// Lets the analyzer rule recognise a window table function's table.
pub(crate) fn as_window_tvf(provider: &Arc<dyn TableProvider>) -> Option<&WindowTvfTable> {
    let any: &dyn Any = provider.as_ref();
    any.downcast_ref::<WindowTvfTable>()
}
