//! windrow's window operator as a DataFusion [`ExecutionPlan`]: [`WindowExec`] reads its
//! input plan's batches in arrival order, pushes them through a [`WindowOperator`] and yields
//! the `down` (or `late`) batches as they are emitted, so bounded inputs run inside DataFusion
//! and live inputs yield rows as windows close.
//!
//! ```text
//! WindowExec ─ pulls ─▶ input partition 0, then 1, …  (arrival order, never interleaved)
//!      │ per batch: append computed aggregate arguments ▸ operator.push ▸ select & cast columns
//!      └ at end of input: operator.finish (the watermark becomes +∞: every window closes)
//! ```
//!
//! [`WindowOperator`]: crate::engine::WindowOperator

use std::fmt;
use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, RecordBatch, RecordBatchOptions};
use arrow::compute::cast;
use arrow::datatypes::{Field, FieldRef, Schema, SchemaRef};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DFSchema, DataFusionError};
use datafusion::error::Result as DfResult;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, Partitioning,
    PlanProperties, ReplaceChildrenOptions,
};
use futures::StreamExt;

use super::tvf::to_df;
use crate::engine::{WindowOpBuilder, WindowOperator, WindowOut};

/// Which operator output a [`WindowExec`] yields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WindowOutput {
    Down,
    Late,
}

/// One output column: a column of the selected operator output, optionally cast to `field`'s
/// type and renamed to its name.
pub(crate) type OutColumn = (usize, Option<FieldRef>);

/// windrow's window operator over a DataFusion input plan.
pub(crate) struct WindowExec {
    input: Arc<dyn ExecutionPlan>,
    builder: WindowOpBuilder,
    /// Computed columns appended to every input batch (aggregate arguments that are
    /// expressions), named as the builder's schema names them.
    prep: Vec<(String, Arc<dyn PhysicalExpr>)>,
    prepared_schema: SchemaRef,
    output: WindowOutput,
    columns: Vec<OutColumn>,
    schema: SchemaRef,
    describe: String,
    props: Arc<PlanProperties>,
}

impl fmt::Debug for WindowExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WindowExec({})", self.describe)
    }
}

/// The input schema plus the computed columns.
pub(crate) fn prepared_schema(input: &SchemaRef, prep: &[(String, Arc<dyn PhysicalExpr>)]) -> DfResult<SchemaRef> {
    let mut fields: Vec<FieldRef> = input.fields().iter().cloned().collect();
    for (name, expr) in prep {
        fields.push(Arc::new(Field::new(name, expr.data_type(input)?, expr.nullable(input)?)));
    }
    Ok(Arc::new(Schema::new(fields)))
}

impl WindowExec {
    /// `builder` must be built over [`prepared_schema`]`(input.schema(), &prep)`.
    pub fn try_new(
        input: Arc<dyn ExecutionPlan>,
        builder: WindowOpBuilder,
        prep: Vec<(String, Arc<dyn PhysicalExpr>)>,
        output: WindowOutput,
        columns: Vec<OutColumn>,
        describe: String,
    ) -> DfResult<Self> {
        let prepared_schema = prepared_schema(&input.schema(), &prep)?;
        // Building validates the configuration against the schema and gives the output schemas.
        let op = builder.clone().build().map_err(to_df)?;
        let [down, late, ..] = op.empty_output().schemas();
        let source = match output {
            WindowOutput::Down => down,
            WindowOutput::Late => late,
        };
        let mut fields = Vec::with_capacity(columns.len());
        for (i, target) in &columns {
            let Some(f) = source.fields().get(*i) else {
                return Err(DataFusionError::Internal(format!("WindowExec: no output column {i} in {source:?}")));
            };
            fields.push(target.clone().unwrap_or_else(|| Arc::clone(f)));
        }
        let schema = Arc::new(Schema::new(fields));
        let boundedness = input.properties().boundedness;
        let props = PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            match boundedness {
                Boundedness::Bounded => Boundedness::Bounded,
                Boundedness::Unbounded { .. } => Boundedness::Unbounded { requires_infinite_memory: false },
            },
        );
        Ok(WindowExec {
            input,
            builder,
            prep,
            prepared_schema,
            output,
            columns,
            schema,
            describe,
            props: Arc::new(props),
        })
    }
}

impl DisplayAs for WindowExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "WindowExec: {}", self.describe)
    }
}

impl ExecutionPlan for WindowExec {
    fn name(&self) -> &'static str {
        "WindowExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.props
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    // Arrival order is the input's row order: never let the optimizer split or interleave it.
    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        for (_, e) in &self.prep {
            if f(e)? == TreeNodeRecursion::Stop {
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if children.len() != 1 {
            return Err(DataFusionError::Internal(format!("WindowExec has one child, got {}", children.len())));
        }
        Ok(Arc::new(WindowExec::try_new(
            children.swap_remove(0),
            self.builder.clone(),
            self.prep.clone(),
            self.output,
            self.columns.clone(),
            self.describe.clone(),
        )?))
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> DfResult<Arc<dyn ExecutionPlan>> {
        self.replace_children(children, ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> DfResult<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!("WindowExec has one partition, asked for {partition}")));
        }
        let op = self.builder.clone().build().map_err(to_df)?;
        // Round-robin repartitioning below this plan would interleave the input's batches out
        // of order, and windowing depends on arrival order: refuse rather than mis-window.
        if contains_round_robin(&self.input) {
            return Err(DataFusionError::Plan(
                "a window function's input is repartitioned round-robin, which reorders rows; run it on \
                 windrow::sql::context() or set datafusion.optimizer.enable_round_robin_repartition = false"
                    .into(),
            ));
        }
        // Input partitions one after the other, in order: a file split into several
        // partitions is still read in row order.
        let parts = self.input.output_partitioning().partition_count();
        let inputs = (0..parts).map(|p| self.input.execute(p, Arc::clone(&context))).collect::<DfResult<Vec<_>>>()?;
        let input = futures::stream::iter(inputs).flatten().boxed();
        let runner = Runner {
            op,
            prep: self.prep.clone(),
            prepared_schema: Arc::clone(&self.prepared_schema),
            output: self.output,
            columns: self.columns.clone(),
            schema: Arc::clone(&self.schema),
        };
        let batches = futures::stream::unfold((input, Some(runner)), |(mut input, runner)| async move {
            let mut runner = runner?;
            match input.next().await {
                Some(Ok(batch)) => {
                    let out = runner.push(&batch);
                    let next = if out.is_ok() { Some(runner) } else { None };
                    Some((out, (input, next)))
                }
                Some(Err(e)) => Some((Err(e), (input, None))),
                None => Some((runner.finish(), (input, None))),
            }
        })
        .flat_map(|r| {
            futures::stream::iter(match r {
                Ok(batches) => batches.into_iter().map(Ok).collect::<Vec<_>>(),
                Err(e) => vec![Err(e)],
            })
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(Arc::clone(&self.schema), batches)))
    }
}

/// The operator and the column mapping of one execution.
struct Runner {
    op: WindowOperator,
    prep: Vec<(String, Arc<dyn PhysicalExpr>)>,
    prepared_schema: SchemaRef,
    output: WindowOutput,
    columns: Vec<OutColumn>,
    schema: SchemaRef,
}

impl Runner {
    fn push(&mut self, batch: &RecordBatch) -> DfResult<Vec<RecordBatch>> {
        let batch = if self.prep.is_empty() {
            batch.clone()
        } else {
            let mut cols: Vec<ArrayRef> = batch.columns().to_vec();
            for (_, e) in &self.prep {
                cols.push(e.evaluate(batch)?.into_array(batch.num_rows())?);
            }
            RecordBatch::try_new(Arc::clone(&self.prepared_schema), cols)?
        };
        let out = self.op.push(&batch).map_err(to_df)?;
        self.select(out)
    }

    fn finish(&mut self) -> DfResult<Vec<RecordBatch>> {
        let out = self.op.finish().map_err(to_df)?;
        self.select(out)
    }

    fn select(&self, out: WindowOut) -> DfResult<Vec<RecordBatch>> {
        // Rows the operator refused (null key or time, bounds out of range) have no place in a
        // SQL result: fail the query naming them rather than drop them silently.
        let refused: usize = out.errors.iter().map(RecordBatch::num_rows).sum();
        if refused > 0 {
            let reason = out
                .errors
                .iter()
                .find(|b| b.num_rows() > 0)
                .and_then(|b| b.column(b.num_columns() - 1).as_string_opt::<i32>().map(|r| r.value(0).to_string()))
                .unwrap_or_default();
            return Err(DataFusionError::Execution(format!(
                "{refused} input row(s) cannot be windowed (first: {reason}); filter them out in a view, e.g. \
                 CREATE VIEW v AS SELECT * FROM t WHERE <key> IS NOT NULL AND <time> IS NOT NULL"
            )));
        }
        let batches = match self.output {
            WindowOutput::Down => out.down,
            WindowOutput::Late => out.late,
        };
        batches
            .into_iter()
            .filter(|b| b.num_rows() > 0)
            .map(|b| {
                let cols = self
                    .columns
                    .iter()
                    .zip(self.schema.fields())
                    .map(|((i, _), f)| {
                        let c = b.column(*i);
                        if c.data_type() == f.data_type() { Ok(Arc::clone(c)) } else { cast(c, f.data_type()) }
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                // The row count matters when a query reads no column (`SELECT count(*)`).
                let opts = RecordBatchOptions::new().with_row_count(Some(b.num_rows()));
                Ok(RecordBatch::try_new_with_options(Arc::clone(&self.schema), cols, &opts)?)
            })
            .collect()
    }
}

/// Whether `plan` or a plan below it repartitions round-robin.
fn contains_round_robin(plan: &Arc<dyn ExecutionPlan>) -> bool {
    let here = plan
        .downcast_ref::<datafusion::physical_plan::repartition::RepartitionExec>()
        .is_some_and(|r| matches!(r.partitioning(), datafusion::physical_plan::Partitioning::RoundRobinBatch(_)));
    here || plan.children().into_iter().any(contains_round_robin)
}

/// A logical DataFusion schema over an Arrow one, without qualifiers.
pub(crate) fn unqualified(schema: &SchemaRef) -> DfResult<DFSchema> {
    DFSchema::try_from(schema.as_ref().clone())
}
