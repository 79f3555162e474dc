//! bytewax's windowing operators (spec §2.1), each returning a [`WindowOpBuilder`] with the
//! operator's defaults; call `.build()` to get a running [`WindowOperator`].
//!
//! | operator | `ordered` | result columns on `down` |
//! |---|---|---|
//! | [`count_window`] | always false | `count: Int64` |
//! | [`collect_window`] | default true | a list of whole rows (`rows`), or of one column (`.column(..)`); a set of one column or a `Map` from a key column to a value column with `.into_container(..)` |
//! | [`fold_window`] | default true | the fold's output field |
//! | [`reduce_window`] | always false | the reduced row's non-key columns |
//! | [`max_window`] / [`min_window`] | always false | the chosen row's non-key columns |
//! | [`agg_window`] | default **false** (built-in aggregates that do not depend on order need no buffering) | one column per aggregate |
//!
//! [`WindowOperator`]: crate::engine::WindowOperator

mod join;

pub use join::{JoinOpBuilder, JoinOperator, join_window};

use std::sync::Arc;

use arrow::datatypes::SchemaRef;

use crate::agg::{Agg, CollectInto, FoldFns, Row};
use crate::engine::{AggSpec, KeySpec, WindowOpBuilder};
use crate::time::Clock;
use crate::window::Windower;

/// A keyed stream: an input schema plus what it is keyed by (bytewax's `key_on`).
#[derive(Clone, Debug)]
pub struct KeyedStream {
    schema: SchemaRef,
    key: KeySpec,
}

impl KeyedStream {
    /// Keys a stream with the given schema.
    pub fn new(schema: SchemaRef, key: KeySpec) -> Self {
        KeyedStream { schema, key }
    }

    /// The input schema.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }
}

/// bytewax's `key_on` for column keys: `key_on(&schema, ["user"])`.
pub fn key_on<I, S>(schema: &SchemaRef, columns: I) -> KeyedStream
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    KeyedStream::new(Arc::clone(schema), KeySpec::columns(columns))
}

/// A clock and a windower, bundled for reuse (the seed API's `WindowConfig`).
#[derive(Clone, Debug)]
pub struct WindowConfig {
    /// The clock.
    pub clock: Clock,
    /// The windower.
    pub windower: Windower,
}

impl WindowConfig {
    /// Bundles a clock and a windower.
    pub fn new(clock: impl Into<Clock>, windower: impl Into<Windower>) -> Self {
        WindowConfig { clock: clock.into(), windower: windower.into() }
    }
}

fn builder(step_id: &str, up: &KeyedStream, clock: Clock, windower: Windower, agg: AggSpec) -> WindowOpBuilder {
    WindowOpBuilder::new(step_id, Arc::clone(&up.schema), up.key.clone(), clock, windower, agg)
}

/// Counts rows per key and window. Like bytewax, it takes an un-keyed stream and the key.
pub fn count_window(
    step_id: &str,
    up: &SchemaRef,
    clock: impl Into<Clock>,
    windower: impl Into<Windower>,
    key: KeySpec,
) -> WindowOpBuilder {
    WindowOpBuilder::new(step_id, Arc::clone(up), key, clock.into(), windower.into(), AggSpec::Count)
}

/// Collects the rows of each window into a list (whole rows, or one column with
/// `.column(name)`); in timestamp order when ordered (the default). `.into_container(..)`
/// collects a set of one column or a dict from a key column to a value column instead
/// ([`CollectInto`]).
pub fn collect_window(
    step_id: &str,
    up: &KeyedStream,
    clock: impl Into<Clock>,
    windower: impl Into<Windower>,
) -> WindowOpBuilder {
    builder(step_id, up, clock.into(), windower.into(), AggSpec::Collect { column: None, into: CollectInto::List })
}

/// Folds each window's rows with Rust closures: the general, row-at-a-time path.
pub fn fold_window<S: Send + 'static>(
    step_id: &str,
    up: &KeyedStream,
    clock: impl Into<Clock>,
    windower: impl Into<Windower>,
    fns: FoldFns<S>,
) -> WindowOpBuilder {
    builder(step_id, up, clock.into(), windower.into(), AggSpec::Fold(crate::engine::fold_factory(fns)))
}

/// Reduces each window's rows in arrival order: the first row is the accumulator, then
/// `acc = reducer(acc, row)`; session merges use `reducer(target, original)`.
pub fn reduce_window(
    step_id: &str,
    up: &KeyedStream,
    clock: impl Into<Clock>,
    windower: impl Into<Windower>,
    reducer: impl Fn(Row, &Row) -> Row + Send + Sync + 'static,
) -> WindowOpBuilder {
    builder(step_id, up, clock.into(), windower.into(), AggSpec::Reduce(Arc::new(reducer)))
}

/// The whole row with the largest `by` value per window (ties keep the earliest arrival).
/// `by` defaults to the only column that is neither key nor event time; set it with `.by(..)`.
pub fn max_window(
    step_id: &str,
    up: &KeyedStream,
    clock: impl Into<Clock>,
    windower: impl Into<Windower>,
) -> WindowOpBuilder {
    builder(step_id, up, clock.into(), windower.into(), AggSpec::Best { by: None, max: true })
}

/// The whole row with the smallest `by` value per window (ties keep the earliest arrival).
pub fn min_window(
    step_id: &str,
    up: &KeyedStream,
    clock: impl Into<Clock>,
    windower: impl Into<Windower>,
) -> WindowOpBuilder {
    builder(step_id, up, clock.into(), windower.into(), AggSpec::Best { by: None, max: false })
}

/// Vectorised aggregation: any number of built-in aggregates or DataFusion aggregate
/// functions per window, computed incrementally in columnar state.
pub fn agg_window(
    step_id: &str,
    up: &KeyedStream,
    clock: impl Into<Clock>,
    windower: impl Into<Windower>,
    aggs: Vec<Agg>,
) -> WindowOpBuilder {
    builder(step_id, up, clock.into(), windower.into(), AggSpec::Aggs(aggs))
}
