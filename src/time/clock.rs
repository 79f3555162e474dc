//! Clocks (spec §4): where a row's timestamp comes from and how the watermark moves.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array};
use arrow::datatypes::{DataType, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;
use chrono::TimeDelta;
use datafusion::common::DFSchema;
use datafusion::execution::context::ExecutionProps;
use datafusion::logical_expr::Expr;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::physical_expr::{PhysicalExpr, create_physical_expr};

use crate::error::{Result, config_err, plan_err};

/// How a row's event time is obtained: a timestamp column, or any DataFusion expression that
/// evaluates to a timestamp.
#[derive(Clone, Debug)]
pub enum TimeExpr {
    /// A column of an Arrow `Timestamp` type (any unit, with or without a time zone).
    Column(String),
    /// A DataFusion expression over the input's columns, e.g.
    /// `to_timestamp_micros(col("ts_text"))`.
    Expr(Expr),
}

/// The allowed lateness of an [`EventClock`] (bytewax's `wait_for_system_duration`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// Wait this long (must not be negative).
    Finite(TimeDelta),
    /// Wait forever: nothing is late and nothing closes before end of input.
    Forever,
}

/// Event-time clock: the timestamp comes from the row; the watermark is the largest
/// `ts − wait` seen so far (per key by default), advanced by system time in live mode.
///
/// ```
/// use windrow::time::EventClock;
/// use chrono::TimeDelta;
/// let clock = EventClock::new("ts").wait_for_system_duration(TimeDelta::seconds(10)).unwrap();
/// assert!(EventClock::new("ts").wait_for_system_duration(TimeDelta::seconds(-1)).is_err());
/// # let _ = clock;
/// ```
#[derive(Clone, Debug)]
pub struct EventClock {
    pub(crate) ts: TimeExpr,
    pub(crate) wait: Wait,
}

impl EventClock {
    /// Event time from a timestamp column; wait 0 (the seed API's default).
    pub fn new(column: impl Into<String>) -> Self {
        EventClock { ts: TimeExpr::Column(column.into()), wait: Wait::Finite(TimeDelta::zero()) }
    }

    /// Event time from a DataFusion expression.
    pub fn from_expr(expr: Expr) -> Self {
        EventClock { ts: TimeExpr::Expr(expr), wait: Wait::Finite(TimeDelta::zero()) }
    }

    /// Sets the allowed lateness.
    ///
    /// # Errors
    /// A negative wait is rejected (spec §14.3; bytewax accepts it and makes every row late).
    pub fn wait_for_system_duration(mut self, wait: TimeDelta) -> Result<Self> {
        if wait < TimeDelta::zero() {
            return config_err(format!(
                "`wait_for_system_duration` = {wait} is negative; it must be >= 0 (or forever)"
            ));
        }
        self.wait = Wait::Finite(wait);
        Ok(self)
    }

    /// Waits forever (bytewax's `timedelta.max`).
    pub fn wait_forever(mut self) -> Self {
        self.wait = Wait::Forever;
        self
    }

    /// The configured wait.
    pub fn wait(&self) -> Wait {
        self.wait
    }
}

/// Processing-time clock: every row of a micro-batch gets the batch's system time, and the
/// watermark equals it, so nothing is ever late (spec §4.2).
#[derive(Clone, Copy, Debug)]
pub struct SystemClock {
    pub(crate) unit: TimeUnit,
}

impl SystemClock {
    /// A system clock emitting microsecond timestamps.
    pub fn new() -> Self {
        SystemClock { unit: TimeUnit::Microsecond }
    }

    /// Uses another timestamp unit for the assigned times and outputs.
    pub fn with_unit(unit: TimeUnit) -> Self {
        SystemClock { unit }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

/// Either clock.
#[derive(Clone, Debug)]
pub enum Clock {
    /// Event time.
    Event(EventClock),
    /// System (processing) time.
    System(SystemClock),
}

impl From<EventClock> for Clock {
    fn from(c: EventClock) -> Self {
        Clock::Event(c)
    }
}

impl From<SystemClock> for Clock {
    fn from(c: SystemClock) -> Self {
        Clock::System(c)
    }
}

/// Whose watermark decides lateness and closing (spec §12).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WatermarkScope {
    /// One watermark per key (bytewax's behaviour; the default).
    #[default]
    PerKey,
    /// One watermark for the whole input of the operator.
    PerStream,
}

/// A clock bound to an input schema: knows the timestamp unit and how to read event times.
#[derive(Clone, Debug)]
pub(crate) enum BoundTime {
    Column { index: usize, name: String },
    Expr { expr: Arc<dyn PhysicalExpr>, text: String },
    System,
}

/// Event times of one batch as raw `i64` ticks plus validity.
pub(crate) struct BatchTimes {
    /// Shares the input column's buffer when the times are a column (no copy).
    pub values: arrow::buffer::ScalarBuffer<i64>,
    /// `Some(reason)` for rows whose time cannot be used.
    pub invalid: Option<Vec<Option<&'static str>>>,
}

impl Clock {
    /// Resolves the clock against a schema: returns how to read times and the time unit.
    pub(crate) fn bind(&self, schema: &Schema) -> Result<(BoundTime, TimeUnit)> {
        match self {
            Clock::System(s) => Ok((BoundTime::System, s.unit)),
            Clock::Event(e) => match &e.ts {
                TimeExpr::Column(name) => {
                    let Ok(index) = schema.index_of(name) else {
                        let cols: Vec<_> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                        return plan_err(format!(
                            "event-time column \"{name}\" not found; the input has columns {cols:?}"
                        ));
                    };
                    match schema.field(index).data_type() {
                        DataType::Timestamp(unit, _) => Ok((BoundTime::Column { index, name: name.clone() }, *unit)),
                        other => plan_err(format!(
                            "event-time column \"{name}\" has type {other}; it must be a Timestamp \
                             (any unit, with or without time zone). Use EventClock::from_expr to convert it"
                        )),
                    }
                }
                TimeExpr::Expr(expr) => {
                    let df_schema = DFSchema::try_from(schema.clone())?;
                    let phys = create_physical_expr(
                        expr,
                        &df_schema,
                        &ExecutionProps::new(),
                        &PhysicalPlanningContext::default(),
                    )?;
                    match phys.data_type(schema)? {
                        DataType::Timestamp(unit, _) => {
                            Ok((BoundTime::Expr { expr: phys, text: expr.to_string() }, unit))
                        }
                        other => plan_err(format!(
                            "event-time expression `{expr}` has type {other}; it must produce a Timestamp"
                        )),
                    }
                }
            },
        }
    }

    /// The event times of `batch` as a Timestamp array (the columnar form of the seed API's
    /// `Clock.extract_ts`); `now_nanos` is used by [`SystemClock`].
    ///
    /// # Errors
    /// As for binding the clock to the batch's schema.
    pub fn extract_ts(&self, batch: &RecordBatch, now_nanos: i64) -> Result<ArrayRef> {
        let (bound, unit) = self.bind(batch.schema_ref())?;
        let times = bound.read(batch, now_nanos, unit)?;
        let nulls: Option<Vec<bool>> = times.invalid.map(|inv| inv.iter().map(|r| r.is_none()).collect());
        let arr = Int64Array::new(times.values, nulls.map(Into::into));
        Ok(arrow::compute::cast(&arr, &DataType::Timestamp(unit, Some("UTC".into())))?)
    }
}

impl BoundTime {
    /// Reads the event times of a batch.
    pub(crate) fn read(&self, batch: &RecordBatch, now_nanos: i64, unit: TimeUnit) -> Result<BatchTimes> {
        let array: ArrayRef = match self {
            BoundTime::System => {
                let now = super::nanos_to_unit_floor(now_nanos, unit);
                return Ok(BatchTimes { values: vec![now; batch.num_rows()].into(), invalid: None });
            }
            BoundTime::Column { index, .. } => Arc::clone(batch.column(*index)),
            BoundTime::Expr { expr, text } => match expr.evaluate(batch).and_then(|v| v.into_array(batch.num_rows())) {
                Ok(a) => a,
                Err(e) => {
                    return Err(crate::error::WindrowError::Data(format!(
                        "event-time expression `{text}` could not be evaluated: {e}"
                    )));
                }
            },
        };
        let DataType::Timestamp(_, _) = array.data_type() else {
            return plan_err(format!("event time has type {}; expected a Timestamp", array.data_type()));
        };
        // Reinterpret any timestamp unit as raw i64 ticks (a zero-copy cast).
        let raw = arrow::compute::cast(&array, &DataType::Int64)?;
        let raw = raw.as_primitive::<arrow::datatypes::Int64Type>();
        let values = raw.values().clone();
        let invalid = raw
            .nulls()
            .filter(|n| n.null_count() > 0)
            .map(|n| (0..raw.len()).map(|i| if n.is_null(i) { Some("null event time") } else { None }).collect());
        Ok(BatchTimes { values, invalid })
    }

    /// Name of the event-time column or expression, for messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            BoundTime::Column { name, .. } => format!("column \"{name}\""),
            BoundTime::Expr { text, .. } => format!("expression `{text}`"),
            BoundTime::System => "system time".into(),
        }
    }
}
