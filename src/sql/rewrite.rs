//! The analyzer rule that runs windowed `GROUP BY`s with windrow's operator.
//!
//! ```text
//! Aggregate: groupBy=[user, window_start, window_end], aggr=[count(*), avg(bytes)]
//!   TableScan: tumble()                 (WindowTvfTable: the input + window columns)
//!        ▼
//! Projection: c0 AS user, c1 AS window_start, …, c4 AS avg(bytes)   (the aggregate's schema)
//!   TableScan: windrow_window           (WindowAggTable: scans to WindowExec over the input)
//! ```
//!
//! Any window table function left in the plan afterwards is in a shape windrow cannot run,
//! and is reported with what is supported.

use std::fmt;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use datafusion::catalog::default_table_source::{provider_as_source, source_as_provider};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DataFusionError, TableReference};
use datafusion::datasource::TableType;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::expr::{AggregateFunction, AggregateFunctionParams};
use datafusion::logical_expr::{Aggregate, AggregateUDF, Distinct, Expr, LogicalPlan, LogicalPlanBuilder, Projection};
use datafusion::optimizer::AnalyzerRule;
use datafusion::physical_plan::ExecutionPlan;
use futures::future::BoxFuture;

use super::exec::{OutColumn, WindowExec, WindowOutput, prepared_schema, unqualified};
use super::tvf::{WINDOW_COLUMNS, WindowDef, as_window_tvf, unsupported_shape};
use crate::agg::Agg;

/// Rewrites `Aggregate` over a window table function into windrow's operator.
#[derive(Debug, Default)]
pub(crate) struct WindowAggregateRule;

impl AnalyzerRule for WindowAggregateRule {
    fn name(&self) -> &str {
        "windrow_window_aggregate"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> DfResult<LogicalPlan> {
        let plan = plan.transform_up_with_subqueries(rewrite)?.data;
        plan.apply_with_subqueries(|node| {
            if let LogicalPlan::TableScan(scan) = node
                && let Ok(provider) = source_as_provider(&scan.source)
                && let Some(tvf) = as_window_tvf(&provider)
            {
                return Err(unsupported_shape(
                    &tvf.def.describe,
                    "its rows can only be read by a GROUP BY directly over it",
                ));
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        Ok(plan)
    }
}

/// The window table function scanned directly (or through an alias) by `plan`, if any.
fn window_input(plan: &LogicalPlan) -> Option<WindowDef> {
    match plan {
        LogicalPlan::SubqueryAlias(a) => window_input(&a.input),
        LogicalPlan::TableScan(scan) => {
            let provider = source_as_provider(&scan.source).ok()?;
            as_window_tvf(&provider).map(|t| t.def.clone())
        }
        _ => None,
    }
}

/// Where an aggregate reads its value.
#[derive(Clone, Debug)]
enum AggArg {
    /// `count(*)` or `count(<constant>)`: rows.
    Rows,
    /// A column of the input.
    Column(String),
    /// An expression over the input's columns, computed before the operator.
    Computed(Expr),
}

#[derive(Clone, Debug)]
struct AggPlan {
    func: Arc<AggregateUDF>,
    arg: AggArg,
}

/// Where an output column of the aggregate comes from on the operator's `down`.
#[derive(Clone, Copy, Debug)]
enum Source {
    Key(usize),
    /// 0 = window_id, 1 = window_start, 2 = window_end.
    Window(usize),
    Agg(usize),
}

fn rewrite(plan: LogicalPlan) -> DfResult<Transformed<LogicalPlan>> {
    // SELECT DISTINCT <columns> over a window function is a GROUP BY without aggregates (the
    // optimizer would make it one later; the window function must be gone by then).
    if let LogicalPlan::Distinct(Distinct::All(input)) = &plan
        && let LogicalPlan::Projection(p) = input.as_ref()
        && window_input(&p.input).is_some()
        && p.expr.iter().all(|e| matches!(e, Expr::Column(_)))
    {
        let agg = Aggregate::try_new(Arc::clone(&p.input), p.expr.clone(), Vec::new())?;
        return rewrite(LogicalPlan::Aggregate(agg));
    }
    let LogicalPlan::Aggregate(agg) = &plan else {
        return Ok(Transformed::no(plan));
    };
    let Some(def) = window_input(&agg.input) else {
        return Ok(Transformed::no(plan));
    };
    let bad = |why: String| Err(unsupported_shape(&def.describe, &why));
    let input_schema = def.input.schema();

    let mut keys: Vec<String> = Vec::new();
    let mut sources: Vec<Source> = Vec::new();
    let mut windowed = false;
    for g in &agg.group_expr {
        let Expr::Column(c) = g else {
            return bad(format!("GROUP BY `{g}` is not a column (grouping sets and expressions are not supported)"));
        };
        if let Some(w) = WINDOW_COLUMNS.iter().position(|w| *w == c.name) {
            windowed = true;
            sources.push(Source::Window(w));
        } else {
            let i = keys.iter().position(|k| *k == c.name).unwrap_or_else(|| {
                keys.push(c.name.clone());
                keys.len() - 1
            });
            sources.push(Source::Key(i));
        }
    }
    if !windowed {
        return bad("the GROUP BY has none of window_start, window_end or window_id".into());
    }

    let mut aggs = Vec::new();
    for (j, e) in agg.aggr_expr.iter().enumerate() {
        let inner = match e {
            Expr::Alias(a) => a.expr.as_ref(),
            other => other,
        };
        let Expr::AggregateFunction(AggregateFunction { func, params }) = inner else {
            return bad(format!("`{e}` is not an aggregate function"));
        };
        let AggregateFunctionParams { args, distinct, filter, order_by, null_treatment } = params;
        if *distinct {
            return bad(format!("`{e}`: DISTINCT aggregates are not supported"));
        }
        if filter.is_some() {
            return bad(format!("`{e}`: FILTER (WHERE ...) on aggregates is not supported"));
        }
        if !order_by.is_empty() {
            return bad(format!("`{e}`: ORDER BY inside an aggregate is not supported (rows arrive in input order)"));
        }
        if null_treatment.is_some() {
            return bad(format!("`{e}`: IGNORE/RESPECT NULLS is not supported"));
        }
        let arg = match args.as_slice() {
            [] if func.name() == "count" => AggArg::Rows,
            [Expr::Literal(v, _)] if func.name() == "count" && !v.is_null() => AggArg::Rows,
            [Expr::Column(c)] => AggArg::Column(c.name.clone()),
            [other] => AggArg::Computed(strip_qualifiers(other.clone())?),
            _ => return bad(format!("`{e}` has {} arguments; windrow runs aggregates of one argument", args.len())),
        };
        let uses = match &arg {
            AggArg::Rows => Vec::new(),
            AggArg::Column(c) => vec![c.clone()],
            AggArg::Computed(x) => x.column_refs().into_iter().map(|c| c.name.clone()).collect(),
        };
        for c in uses {
            if WINDOW_COLUMNS.contains(&c.as_str()) {
                return bad(format!("`{e}` reads \"{c}\"; aggregates can only read the input table's columns"));
            }
        }
        aggs.push(AggPlan { func: Arc::clone(func), arg });
        sources.push(Source::Agg(j));
    }

    let out_fields: Vec<FieldRef> = agg
        .schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| Arc::new(Field::new(format!("c{i}"), f.data_type().clone(), f.is_nullable())))
        .collect();
    if out_fields.len() != sources.len() {
        return Err(DataFusionError::Internal(format!(
            "aggregate has {} output columns but {} group and aggregate expressions",
            out_fields.len(),
            sources.len()
        )));
    }
    let describe = format!(
        "{} keys=[{}] aggs=[{}]",
        def.describe,
        keys.join(", "),
        agg.aggr_expr.iter().map(|e| e.schema_name().to_string()).collect::<Vec<_>>().join(", ")
    );
    for k in &keys {
        if input_schema.column_with_name(k).is_none() {
            return bad(format!("GROUP BY column \"{k}\" is not a column of '{}'", def.table));
        }
    }
    let table = WindowAggTable { def, keys, aggs, sources, schema: Arc::new(Schema::new(out_fields)), describe };

    // Scan the operator's table, then give every column the aggregate's exact name.
    let name = TableReference::bare("windrow_window");
    let scan = LogicalPlanBuilder::scan(name.clone(), provider_as_source(Arc::new(table)), None)?.build()?;
    let exprs: Vec<Expr> = agg
        .schema
        .iter()
        .enumerate()
        .map(|(i, (qualifier, f))| {
            Expr::Column(Column::new(Some(name.clone()), format!("c{i}"))).alias_qualified(qualifier.cloned(), f.name())
        })
        .collect();
    let projection = Projection::try_new_with_schema(exprs, Arc::new(scan), Arc::clone(&agg.schema))?;
    Ok(Transformed::yes(LogicalPlan::Projection(projection)))
}

/// Column references without their table qualifier (the operator sees the input's columns).
fn strip_qualifiers(e: Expr) -> DfResult<Expr> {
    Ok(e.transform(|e| match e {
        Expr::Column(c) => Ok(Transformed::yes(Expr::Column(Column::new_unqualified(c.name)))),
        other => Ok(Transformed::no(other)),
    })?
    .data)
}

/// windrow's own kernel for `func` over `column`, where it computes exactly what DataFusion's
/// function does for this type; `None` sends the function through its DataFusion accumulator.
fn builtin(func: &str, dt: &DataType, column: String) -> Option<Agg> {
    use DataType::*;
    let exact = matches!(dt, Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | Float32 | Float64);
    if !exact {
        return None;
    }
    match func {
        "count" => Some(Agg::count_of(column)),
        "sum" => Some(Agg::sum(column)),
        "avg" => Some(Agg::mean(column)),
        "min" => Some(Agg::min(column)),
        "max" => Some(Agg::max(column)),
        _ => None,
    }
}

/// The rewritten aggregate: a table whose scan is [`WindowExec`] over the input table's scan.
struct WindowAggTable {
    def: WindowDef,
    keys: Vec<String>,
    aggs: Vec<AggPlan>,
    sources: Vec<Source>,
    schema: SchemaRef,
    describe: String,
}

impl fmt::Debug for WindowAggTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WindowAggTable({})", self.describe)
    }
}

impl WindowAggTable {
    async fn plan(&self, state: &dyn Session, projection: Option<&Vec<usize>>) -> DfResult<Arc<dyn ExecutionPlan>> {
        let child = self.def.input.scan(state, None, &[], None).await?;
        let child_schema = child.schema();
        let df_schema = unqualified(&child_schema)?;
        let mut prep = Vec::new();
        let mut arg_columns = Vec::new();
        for (j, a) in self.aggs.iter().enumerate() {
            arg_columns.push(match &a.arg {
                AggArg::Rows => None,
                AggArg::Column(c) => Some(c.clone()),
                AggArg::Computed(e) => {
                    let name = format!("__windrow_arg{j}");
                    prep.push((name.clone(), state.create_physical_expr(e.clone(), &df_schema)?));
                    Some(name)
                }
            });
        }
        let schema = prepared_schema(&child_schema, &prep)?;
        let mut windrow_aggs: Vec<Agg> = self
            .aggs
            .iter()
            .zip(arg_columns)
            .enumerate()
            .map(|(j, (a, col))| {
                let agg = match col {
                    None => Agg::count(),
                    Some(c) => {
                        let dt = schema.field_with_name(&c).map(|f| f.data_type().clone()).unwrap_or(DataType::Null);
                        builtin(a.func.name(), &dt, c.clone()).unwrap_or_else(|| Agg::udaf(Arc::clone(&a.func), c))
                    }
                };
                agg.alias(format!("__windrow_agg{j}"))
            })
            .collect();
        if windrow_aggs.is_empty() {
            // A GROUP BY without aggregates (a DISTINCT over windows): the operator needs one.
            windrow_aggs.push(Agg::count().alias("__windrow_unused"));
        }
        let mut builder = self.def.builder(&self.describe, &schema, &self.keys, windrow_aggs);
        for (name, _) in &prep {
            builder = builder.hide(name.clone());
        }
        // down = key columns (one hidden column when there are none), window id, start, end, aggregates.
        let nkeys = self.keys.len().max(1);
        let mut columns: Vec<OutColumn> = self
            .sources
            .iter()
            .zip(self.schema.fields())
            .map(|(s, f)| {
                let i = match *s {
                    Source::Key(k) => k,
                    Source::Window(w) => nkeys + w,
                    Source::Agg(j) => nkeys + 3 + j,
                };
                (i, Some(Arc::clone(f)))
            })
            .collect();
        if let Some(p) = projection {
            columns = p.iter().map(|&i| columns[i].clone()).collect();
        }
        let exec = WindowExec::try_new(child, builder, prep, WindowOutput::Down, columns, self.describe.clone())?;
        Ok(Arc::new(exec))
    }
}

impl TableProvider for WindowAggTable {
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
        Box::pin(self.plan(state, projection))
    }
}
