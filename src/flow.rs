//! A dataflow of named steps in bytewax's shape: inputs produce `RecordBatch`es, windowing
//! steps consume them, and `run` drives everything to end of input.
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

use crate::engine::{WindowOpBuilder, WindowOperator, WindowOut};
use crate::error::{Result, plan_err};
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

/// A flow of named inputs and windowing steps.
pub struct Dataflow {
    name: String,
    inputs: Vec<(String, Box<dyn Source>)>,
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

    /// Adds an input step.
    pub fn input(&mut self, step_id: &str, source: impl Source + 'static) -> Stream {
        let schema = source.schema();
        self.inputs.push((step_id.to_string(), Box::new(source)));
        Stream { input: self.inputs.len() - 1, schema }
    }

    fn check_id(&self, id: &str) -> Result<()> {
        if self.steps.iter().any(|(s, _)| s == id) || self.inputs.iter().any(|(s, _)| s == id) {
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

    /// Runs to end of input, reading the inputs' batches round-robin, and returns every
    /// step's output by step id.
    ///
    /// # Errors
    /// The first input or operator error, naming its step.
    pub fn run(mut self) -> Result<BTreeMap<String, WindowOut>> {
        let mut outs: Vec<Option<WindowOut>> = self.steps.iter().map(|_| None).collect();
        let mut live: Vec<bool> = vec![true; self.inputs.len()];
        while live.iter().any(|l| *l) {
            for (i, alive) in live.iter_mut().enumerate() {
                if !*alive {
                    continue;
                }
                let Some(batch) = self.inputs[i].1.next_batch() else {
                    *alive = false;
                    for (step, out) in self.steps.iter_mut().zip(outs.iter_mut()) {
                        if let StepOp::Join { inputs, op } = &mut step.1 {
                            for (side, _) in inputs.iter().enumerate().filter(|(_, inp)| **inp == i) {
                                extend(out, op.end_side(side)?);
                            }
                        }
                    }
                    continue;
                };
                let batch = batch?;
                for (step, out) in self.steps.iter_mut().zip(outs.iter_mut()) {
                    match &mut step.1 {
                        StepOp::Window { input, op } if *input == i => extend(out, op.push(&batch)?),
                        StepOp::Join { inputs, op } => {
                            for side in (0..inputs.len()).filter(|&s| inputs[s] == i) {
                                extend(out, op.push(side, &batch)?);
                            }
                        }
                        StepOp::Window { .. } => {}
                    }
                }
            }
        }
        let mut result = BTreeMap::new();
        for ((id, step), out) in self.steps.into_iter().zip(outs) {
            let mut out = out;
            match step {
                StepOp::Window { mut op, .. } => {
                    let empty = op.empty_output();
                    extend(&mut out, op.finish()?);
                    result.insert(id, out.unwrap_or(empty));
                }
                StepOp::Join { mut op, .. } => {
                    let empty = op.inner().empty_output();
                    extend(&mut out, op.finish()?);
                    result.insert(id, out.unwrap_or(empty));
                }
            }
        }
        Ok(result)
    }
}

fn extend(acc: &mut Option<WindowOut>, more: WindowOut) {
    match acc {
        Some(a) => a.extend(more),
        None => *acc = Some(more),
    }
}
