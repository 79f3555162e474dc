//! A dataflow of named steps in bytewax's shape: inputs produce `RecordBatch`es, windowing
//! steps consume them, and `run` drives everything to end of input.
//!
//! Two ways to drive a flow:
//! - pull: [`Dataflow::run`] / [`Dataflow::run_with`] read every input's [`Source`] round-robin
//!   to end of input (files, memory);
//! - push: [`Dataflow::into_runtime`] gives a [`FlowRuntime`] that takes batches for named
//!   inputs as they arrive, fires live timers and finishes on demand (`windrow serve`).
//!
//! Every step has four outputs (spec §12), named `<step>.down`, `<step>.late`, `<step>.meta`
//! and `<step>.errors` wherever a flat name is needed (sinks, Flight tickets); see [`Port`].
//!
//! ```
//! use std::sync::Arc;
//! use arrow::array::{RecordBatch, StringArray, TimestampMillisecondArray};
//! use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
//! use chrono::TimeDelta;
//! use windrow::flow::Dataflow;
//! use windrow::prelude::*;
//! use windrow::source::MemorySource;
//!
//! let schema = Arc::new(Schema::new(vec![
//!     Field::new("user", DataType::Utf8, false),
//!     Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), false),
//! ]));
//! let batch = RecordBatch::try_new(schema.clone(), vec![
//!     Arc::new(StringArray::from(vec!["a", "b", "a"])),
//!     Arc::new(TimestampMillisecondArray::from(vec![0, 1_000, 61_000])),
//! ]).unwrap();
//!
//! let mut flow = Dataflow::new("clicks");
//! let clicks = flow.input("clicks", MemorySource::new(schema.clone(), vec![batch]));
//! let minute = TumblingWindower::new(TimeDelta::minutes(1)).unwrap();
//! flow.window(&clicks, count_window("per_minute", clicks.schema(), EventClock::new("ts"), minute,
//!                                   KeySpec::columns(["user"]))).unwrap();
//! let users = clicks.key_on(["user"]);
//! flow.window(&clicks, collect_window("times", &users, EventClock::new("ts"), minute).column("ts")).unwrap();
//! let out = flow.run().unwrap();
//! assert_eq!(out["per_minute"].row_counts()[0], 3); // (a, 0), (b, 0), (a, 1)
//! assert_eq!(out["times"].row_counts()[0], 3);
//! ```

use std::collections::BTreeMap;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use crate::engine::{WindowOpBuilder, WindowOperator, WindowOut};
use crate::error::{Result, WindrowError, data_err, plan_err};
use crate::ops::{JoinOpBuilder, JoinOperator, KeyedStream, key_on};
use crate::source::Source;

/// A stream produced by a dataflow input.
#[derive(Clone, Debug)]
pub struct Stream {
    input: usize,
    schema: SchemaRef,
}

impl Stream {
    /// The stream's schema.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// bytewax's `key_on`: keys this stream by columns.
    pub fn key_on<I, S>(&self, columns: I) -> KeyedStream
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        key_on(&self.schema, columns)
    }
}

enum StepOp {
    Window { input: usize, op: WindowOperator },
    Join { inputs: Vec<usize>, op: JoinOperator },
}

impl StepOp {
    fn empty_output(&self) -> WindowOut {
        match self {
            StepOp::Window { op, .. } => op.empty_output(),
            StepOp::Join { op, .. } => op.inner().empty_output(),
        }
    }
}

/// One of a step's four outputs (spec §12).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Port {
    /// Window results.
    Down,
    /// Late rows.
    Late,
    /// Window metadata (`open_time`, `close_time` per closed window).
    Meta,
    /// Rows refused by validation (null key or time, out-of-range bounds), with the reason.
    Errors,
}

impl Port {
    /// The four ports in [`WindowOut`]'s order (`down`, `late`, `meta`, `errors`).
    pub const ALL: [Port; 4] = [Port::Down, Port::Late, Port::Meta, Port::Errors];

    /// `down`, `late`, `meta` or `errors`.
    pub fn name(self) -> &'static str {
        match self {
            Port::Down => "down",
            Port::Late => "late",
            Port::Meta => "meta",
            Port::Errors => "errors",
        }
    }

    /// The flat output name `<step>.<port>`.
    pub fn output_name(self, step: &str) -> String {
        format!("{step}.{}", self.name())
    }

    /// Splits a flat output name `<step>.<port>` (the last `.` separates them).
    pub fn parse_output_name(name: &str) -> Option<(&str, Port)> {
        let (step, port) = name.rsplit_once('.')?;
        let port = Port::ALL.into_iter().find(|p| p.name() == port)?;
        Some((step, port))
    }

    /// This port's batches in `out`.
    pub fn batches(self, out: &WindowOut) -> &[arrow::record_batch::RecordBatch] {
        match self {
            Port::Down => &out.down,
            Port::Late => &out.late,
            Port::Meta => &out.meta,
            Port::Errors => &out.errors,
        }
    }
}

/// What one step emitted in response to a push, a timer or the end of input.
#[derive(Debug)]
pub struct StepOutput {
    /// The step id.
    pub step: String,
    /// Its four outputs (possibly all empty).
    pub out: WindowOut,
}

struct Input {
    name: String,
    schema: SchemaRef,
    source: Option<Box<dyn Source>>,
}

/// A flow of named inputs and windowing steps.
pub struct Dataflow {
    name: String,
    inputs: Vec<Input>,
    steps: Vec<(String, StepOp)>,
}

impl Dataflow {
    /// An empty flow.
    pub fn new(name: impl Into<String>) -> Self {
        Dataflow { name: name.into(), inputs: Vec::new(), steps: Vec::new() }
    }

    /// The flow's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Adds an input step read from `source` (pull mode).
    pub fn input(&mut self, step_id: &str, source: impl Source + 'static) -> Stream {
        let schema = source.schema();
        self.inputs.push(Input { name: step_id.to_string(), schema: schema.clone(), source: Some(Box::new(source)) });
        Stream { input: self.inputs.len() - 1, schema }
    }

    /// Adds an input step whose batches are pushed into the flow's [`FlowRuntime`] (for
    /// example by `windrow serve`'s Flight `DoPut`). [`run`](Self::run) refuses such a flow.
    pub fn pushed_input(&mut self, step_id: &str, schema: SchemaRef) -> Stream {
        self.inputs.push(Input { name: step_id.to_string(), schema: schema.clone(), source: None });
        Stream { input: self.inputs.len() - 1, schema }
    }

    fn check_id(&self, id: &str) -> Result<()> {
        if self.steps.iter().any(|(s, _)| s == id) || self.inputs.iter().any(|i| i.name == id) {
            return plan_err(format!("dataflow \"{}\": step id \"{id}\" is used twice", self.name));
        }
        Ok(())
    }

    /// Adds a windowing step fed by `up`.
    ///
    /// # Errors
    /// A duplicate step id, or what building the operator reports.
    pub fn window(&mut self, up: &Stream, op: WindowOpBuilder) -> Result<()> {
        let op = op.build()?;
        self.check_id(op.step_id())?;
        self.steps.push((op.step_id().to_string(), StepOp::Window { input: up.input, op }));
        Ok(())
    }

    /// Adds a `join_window` step fed by `sides` (in side order).
    ///
    /// # Errors
    /// A duplicate step id, a side count that does not match, or what building reports.
    pub fn join(&mut self, step_id: &str, sides: &[&Stream], op: JoinOpBuilder) -> Result<()> {
        self.check_id(step_id)?;
        let op = op.build()?;
        if op.sides() != sides.len() {
            return plan_err(format!(
                "join \"{step_id}\" has {} sides but {} streams were given",
                op.sides(),
                sides.len()
            ));
        }
        self.steps.push((step_id.to_string(), StepOp::Join { inputs: sides.iter().map(|s| s.input).collect(), op }));
        Ok(())
    }

    /// Splits the flow into its push-driven runtime and the inputs' sources (`None` for
    /// [`pushed_input`](Self::pushed_input)s), in input order.
    pub fn into_runtime(self) -> (FlowRuntime, Vec<Option<Box<dyn Source>>>) {
        let mut inputs = Vec::with_capacity(self.inputs.len());
        let mut sources = Vec::with_capacity(self.inputs.len());
        for input in self.inputs {
            inputs.push((input.name, input.schema));
            sources.push(input.source);
        }
        let ended = vec![false; inputs.len()];
        (FlowRuntime { name: self.name, inputs, ended, steps: self.steps, pending: Vec::new() }, sources)
    }

    /// Runs to end of input, reading the inputs' batches round-robin, and hands every step's
    /// output to `emit` as it is produced (so outputs can stream to sinks), ending with each
    /// step's end-of-input output.
    ///
    /// # Errors
    /// An input that has no source (a pushed input), the first input or operator error, or
    /// what `emit` returns.
    pub fn run_with(self, mut emit: impl FnMut(StepOutput) -> Result<()>) -> Result<()> {
        let (mut runtime, mut sources) = self.into_runtime();
        if let Some(i) = sources.iter().position(Option::is_none) {
            return plan_err(format!(
                "dataflow \"{}\": input \"{}\" is fed by push (windrow serve) and has no source to read",
                runtime.name, runtime.inputs[i].0
            ));
        }
        let mut live = vec![true; sources.len()];
        while live.iter().any(|l| *l) {
            for (i, source) in sources.iter_mut().enumerate() {
                let Some(source) = source.as_mut().filter(|_| live[i]) else { continue };
                let outputs = match source.next_batch() {
                    None => {
                        live[i] = false;
                        runtime.end_input_at(i)?
                    }
                    Some(batch) => runtime.push_at(i, &batch?)?,
                };
                outputs.into_iter().try_for_each(&mut emit)?;
            }
        }
        runtime.finish()?.into_iter().try_for_each(emit)
    }

    /// Runs to end of input (see [`run_with`](Self::run_with)) and returns every step's
    /// output by step id.
    ///
    /// # Errors
    /// As [`run_with`](Self::run_with).
    pub fn run(self) -> Result<BTreeMap<String, WindowOut>> {
        let mut result: BTreeMap<String, WindowOut> =
            self.steps.iter().map(|(id, step)| (id.clone(), step.empty_output())).collect();
        self.run_with(|o| {
            if let Some(acc) = result.get_mut(&o.step) {
                acc.extend(o.out);
            }
            Ok(())
        })?;
        Ok(result)
    }
}

/// A dataflow driven by pushes: batches for named inputs go in as they arrive; every call
/// returns what each step emitted. `windrow serve` holds one behind its Flight service.
pub struct FlowRuntime {
    name: String,
    inputs: Vec<(String, SchemaRef)>,
    ended: Vec<bool>,
    steps: Vec<(String, StepOp)>,
    /// Outputs of steps that succeeded in a call that then failed in a later step: they are
    /// state already applied, so the next call hands them on first instead of losing them.
    pending: Vec<StepOutput>,
}

impl FlowRuntime {
    /// The flow's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The inputs' names and schemas, in input order.
    pub fn inputs(&self) -> impl Iterator<Item = (&str, &SchemaRef)> {
        self.inputs.iter().map(|(n, s)| (n.as_str(), s))
    }

    /// Every step's outputs: `(step id, port, schema)`, in step then port order.
    pub fn outputs(&self) -> Vec<(String, Port, SchemaRef)> {
        let mut outs = Vec::new();
        for (id, step) in &self.steps {
            let schemas = step.empty_output().schemas();
            for (port, schema) in Port::ALL.into_iter().zip(schemas) {
                outs.push((id.clone(), port, schema));
            }
        }
        outs
    }

    /// Windows currently open over all steps (for progress reports).
    pub fn open_windows(&self) -> usize {
        self.steps
            .iter()
            .map(|(_, step)| match step {
                StepOp::Window { op, .. } => op.open_windows(),
                StepOp::Join { op, .. } => op.inner().open_windows(),
            })
            .sum()
    }

    fn input_index(&self, input: &str) -> Result<usize> {
        self.inputs.iter().position(|(n, _)| n == input).ok_or_else(|| {
            let names: Vec<&str> = self.inputs.iter().map(|(n, _)| n.as_str()).collect();
            WindrowError::Plan(format!(
                "dataflow \"{}\" has no input \"{input}\"; its inputs are: {}",
                self.name,
                names.join(", ")
            ))
        })
    }

    /// Pushes one batch into input `input`; returns what each step fed by it emitted.
    ///
    /// Steps run in order. If one fails, the batch has already been applied by the steps
    /// before it: what they emitted is kept and returned first by the next call (push, timer,
    /// end of input or finish), so nothing they produced is lost.
    ///
    /// # Errors
    /// An unknown or already ended input, a batch whose schema is not the input's, or the
    /// first operator error (naming its step).
    pub fn push(&mut self, input: &str, batch: &RecordBatch) -> Result<Vec<StepOutput>> {
        let i = self.input_index(input)?;
        self.push_at(i, batch)
    }

    fn push_at(&mut self, i: usize, batch: &RecordBatch) -> Result<Vec<StepOutput>> {
        let (name, schema) = &self.inputs[i];
        if self.ended[i] {
            return plan_err(format!("input \"{name}\" has already ended; it takes no more batches"));
        }
        if batch.schema().fields() != schema.fields() {
            return data_err(format!(
                "input \"{name}\": batch schema {} does not match the input's schema {}",
                batch.schema(),
                schema
            ));
        }
        let mut outputs = std::mem::take(&mut self.pending);
        for (id, step) in &mut self.steps {
            let out = match step {
                StepOp::Window { input, op } if *input == i => op.push(batch).map(Some),
                StepOp::Window { .. } => Ok(None),
                StepOp::Join { inputs, op } => (|| {
                    let mut acc: Option<WindowOut> = None;
                    for side in (0..inputs.len()).filter(|&s| inputs[s] == i) {
                        extend(&mut acc, op.push(side, batch)?);
                    }
                    Ok(acc)
                })(),
            };
            match out {
                Ok(Some(out)) => outputs.push(StepOutput { step: id.clone(), out }),
                Ok(None) => {}
                Err(e) => {
                    self.pending = outputs;
                    return Err(e);
                }
            }
        }
        Ok(outputs)
    }

    /// Marks input `input` as ended (joins may then close windows that waited for it).
    ///
    /// # Errors
    /// An unknown input, or an operator error.
    pub fn end_input(&mut self, input: &str) -> Result<Vec<StepOutput>> {
        let i = self.input_index(input)?;
        self.end_input_at(i)
    }

    fn end_input_at(&mut self, i: usize) -> Result<Vec<StepOutput>> {
        if std::mem::replace(&mut self.ended[i], true) {
            return Ok(Vec::new());
        }
        let mut outputs = std::mem::take(&mut self.pending);
        for (id, step) in &mut self.steps {
            if let StepOp::Join { inputs, op } = step {
                let mut acc: Option<WindowOut> = None;
                for side in (0..inputs.len()).filter(|&s| inputs[s] == i) {
                    match op.end_side(side) {
                        Ok(out) => extend(&mut acc, out),
                        Err(e) => {
                            self.pending = outputs;
                            return Err(e);
                        }
                    }
                }
                if let Some(out) = acc {
                    outputs.push(StepOutput { step: id.clone(), out });
                }
            }
        }
        Ok(outputs)
    }

    /// Live mode timers: every step resamples system time and closes what became due.
    ///
    /// # Errors
    /// The first operator error.
    pub fn on_timer(&mut self) -> Result<Vec<StepOutput>> {
        self.each_step(|op| match op {
            StepOp::Window { op, .. } => op.on_timer(),
            StepOp::Join { op, .. } => op.on_timer(),
        })
    }

    /// Runs `f` on every step in order, after any outputs left pending by a failed call; on a
    /// failure keeps what the earlier steps emitted pending.
    fn each_step(&mut self, mut f: impl FnMut(&mut StepOp) -> Result<WindowOut>) -> Result<Vec<StepOutput>> {
        let mut outputs = std::mem::take(&mut self.pending);
        for (id, step) in &mut self.steps {
            match f(step) {
                Ok(out) => outputs.push(StepOutput { step: id.clone(), out }),
                Err(e) => {
                    self.pending = outputs;
                    return Err(e);
                }
            }
        }
        Ok(outputs)
    }

    /// End of input for every input: closes all windows (spec §9.3) and returns what each
    /// step emitted. The runtime takes no more batches afterwards.
    ///
    /// # Errors
    /// The first operator error.
    pub fn finish(&mut self) -> Result<Vec<StepOutput>> {
        self.ended.iter_mut().for_each(|e| *e = true);
        self.each_step(|op| match op {
            StepOp::Window { op, .. } => op.finish(),
            StepOp::Join { op, .. } => op.finish(),
        })
    }
}

/// Checkpoints (spec §9): every step's state, restorable into the same flow definition.
impl FlowRuntime {
    /// Each step's id and definition (what a checkpoint must match), in step order.
    pub fn definitions(&self) -> Vec<(String, String)> {
        self.steps
            .iter()
            .map(|(id, step)| {
                let d = match step {
                    StepOp::Window { op, .. } => op.definition().to_string(),
                    StepOp::Join { op, .. } => op.definition().to_string(),
                };
                (id.clone(), d)
            })
            .collect()
    }

    /// Whether every step's state can be checkpointed.
    ///
    /// # Errors
    /// The first step that cannot (a fold without a state codec), and why.
    pub fn checkpoint_support(&self) -> Result<()> {
        for (_, step) in &self.steps {
            let op = match step {
                StepOp::Window { op, .. } => op,
                StepOp::Join { op, .. } => op.inner(),
            };
            op.checkpoint_support().map_err(WindrowError::Config)?;
        }
        Ok(())
    }

    /// Which inputs have ended, in input order.
    pub fn ended(&self) -> &[bool] {
        &self.ended
    }

    /// Every step's state, in step order. Only between calls (not after a failed one).
    ///
    /// # Errors
    /// Outputs still pending from a failed call, or a step that cannot be checkpointed.
    pub fn snapshot(&mut self) -> Result<Vec<crate::checkpoint::StepState>> {
        if !self.pending.is_empty() {
            return Err(WindrowError::Internal("checkpoint with outputs pending after a failure".into()));
        }
        self.steps
            .iter_mut()
            .map(|(_, step)| match step {
                StepOp::Window { op, .. } => crate::checkpoint::StepState::from_operator(op.snapshot()?),
                StepOp::Join { op, .. } => op.snapshot(),
            })
            .collect()
    }

    /// Loads checkpointed states (in step order, with their ids) and the inputs' ended flags
    /// into this freshly built runtime.
    ///
    /// # Errors
    /// Another number of steps or inputs, or a state that does not restore.
    pub fn restore(&mut self, states: Vec<(String, crate::checkpoint::StepState)>, ended: &[bool]) -> Result<()> {
        if states.len() != self.steps.len() || ended.len() != self.ended.len() {
            return Err(WindrowError::Config(format!(
                "the checkpoint has {} steps and {} inputs; this flow has {} and {}",
                states.len(),
                ended.len(),
                self.steps.len(),
                self.ended.len()
            )));
        }
        self.ended.copy_from_slice(ended);
        for ((id, step), (saved_id, state)) in self.steps.iter_mut().zip(states) {
            if *id != saved_id {
                return Err(WindrowError::Config(format!("checkpoint step \"{saved_id}\" is step \"{id}\" here")));
            }
            let restored = match step {
                StepOp::Window { op, .. } => state.into_operator().and_then(|s| op.restore(s)),
                StepOp::Join { op, .. } => op.restore(state),
            };
            restored.map_err(|e| WindrowError::Data(format!("restoring step \"{id}\": {e}")))?;
        }
        Ok(())
    }
}

fn extend(acc: &mut Option<WindowOut>, more: WindowOut) {
    match acc {
        Some(a) => a.extend(more),
        None => *acc = Some(more),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_is_send() {
        fn assert_send<T: Send>() {}
        assert_send::<FlowRuntime>();
    }

    #[test]
    fn outputs_of_steps_before_a_failing_one_are_kept_for_the_next_call() {
        use std::sync::Arc;

        use arrow::array::{StringArray, TimestampMillisecondArray};
        use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
        use chrono::TimeDelta;

        use crate::prelude::*;

        let schema = Arc::new(Schema::new(vec![
            Field::new("user", DataType::Utf8, true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), false),
        ]));
        let minute = || TumblingWindower::new(TimeDelta::minutes(1)).expect("windower");
        let mut flow = Dataflow::new("two steps");
        let s = flow.pushed_input("clicks", schema.clone());
        // The first step routes a null key to `errors`; the second (strict) fails on it.
        flow.window(&s, count_window("lenient", &schema, EventClock::new("ts"), minute(), KeySpec::columns(["user"])))
            .expect("step");
        flow.window(
            &s,
            count_window("strict", &schema, EventClock::new("ts"), minute(), KeySpec::columns(["user"])).strict(true),
        )
        .expect("step");
        let (mut runtime, _) = flow.into_runtime();
        let batch = |users: Vec<Option<&str>>, ts: Vec<i64>| {
            RecordBatch::try_new(
                schema.clone(),
                vec![Arc::new(StringArray::from(users)), Arc::new(TimestampMillisecondArray::from(ts))],
            )
            .expect("batch")
        };
        let err = runtime.push("clicks", &batch(vec![Some("a"), None], vec![0, 1_000])).expect_err("strict fails");
        assert!(err.to_string().contains("strict"), "{err}");
        // The lenient step's output of that batch (one error row) comes with the next call.
        let next = runtime.on_timer().expect("timer");
        let lenient: Vec<_> = next.iter().filter(|o| o.step == "lenient").collect();
        assert_eq!(lenient.len(), 2, "the pending output, then the timer's");
        assert_eq!(lenient[0].out.row_counts()[3], 1);
        // And only once.
        let again = runtime.on_timer().expect("timer");
        assert!(again.iter().all(|o| o.out.row_counts() == [0, 0, 0, 0]));
    }

    #[test]
    fn output_names_round_trip() {
        for port in Port::ALL {
            let name = port.output_name("per.minute");
            assert_eq!(Port::parse_output_name(&name), Some(("per.minute", port)));
        }
        assert_eq!(Port::parse_output_name("per_minute.window"), None);
        assert_eq!(Port::parse_output_name("nodot"), None);
    }
}
