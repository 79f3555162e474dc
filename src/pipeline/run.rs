//! Running a built pipeline in replay mode: read every input round-robin, stream each
//! step's outputs to their sinks as they are produced, report progress, sum up.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use crate::error::{Result, WindrowError};
use crate::flow::{Dataflow, Port, StepOutput};
use crate::sink::{MemoryHandle, MemorySink, RollPolicy, Sink, SinkSummary, TableSink, open_sink};
use crate::source::FileFormat;

/// Where a planned output goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutputTarget {
    /// A file or a directory of rolling Parquet files.
    File {
        /// The resolved path.
        path: PathBuf,
        /// Its format.
        format: FileFormat,
        /// Parquet directories: when to start a new file.
        roll: RollPolicy,
    },
    /// A table of the first `rows` rows on stdout.
    Table {
        /// Rows shown.
        rows: usize,
    },
    /// Kept in memory; returned in [`RunSummary::memory`].
    Memory,
}

/// One `[[output]]`, checked against the steps and resolved.
#[derive(Clone, Debug)]
pub struct PlannedOutput {
    /// `<step>.<port>`.
    pub name: String,
    /// The step id.
    pub step: String,
    /// The port.
    pub port: Port,
    /// Where it goes.
    pub target: OutputTarget,
}

impl PlannedOutput {
    /// Opens the sink for batches of `schema`; memory outputs also return their handle.
    ///
    /// # Errors
    /// A file that cannot be created, or a schema the format cannot hold.
    pub fn open(&self, schema: SchemaRef, coalesce_rows: usize) -> Result<(Box<dyn Sink>, Option<MemoryHandle>)> {
        Ok(match &self.target {
            OutputTarget::File { path, format, roll } => {
                (open_sink(path, Some(*format), schema, *roll, coalesce_rows)?, None)
            }
            OutputTarget::Table { rows } => (Box::new(TableSink::stdout(self.name.clone(), *rows)), None),
            OutputTarget::Memory => {
                let (sink, handle) = MemorySink::new();
                (Box::new(sink), Some(handle))
            }
        })
    }
}

/// A built pipeline: the flow and its planned outputs.
pub struct BuiltPipeline {
    /// The flow (run it here, or take its [`FlowRuntime`](crate::flow::FlowRuntime) to push
    /// batches in live mode).
    pub flow: Dataflow,
    /// The outputs, in file order.
    pub outputs: Vec<PlannedOutput>,
    /// Rows per batch written to files.
    pub coalesce_rows: usize,
}

/// A progress report during a run.
#[derive(Clone, Debug)]
pub struct Progress {
    /// Rows read so far.
    pub rows_in: u64,
    /// Time since the run started.
    pub elapsed: Duration,
    /// Late rows emitted so far (all steps).
    pub late: u64,
    /// Windows closed so far (all steps; `meta` rows).
    pub windows_closed: u64,
    /// Windows open now.
    pub open_windows: usize,
}

impl Progress {
    /// Rows read per second.
    pub fn rows_per_s(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 { self.rows_in as f64 / s } else { 0.0 }
    }
}

/// What one step emitted over the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepSummary {
    /// The step id.
    pub id: String,
    /// Rows on `[down, late, meta, errors]`.
    pub rows: [u64; 4],
}

/// What a run did.
#[derive(Clone, Debug)]
pub struct RunSummary {
    /// Rows read from all inputs.
    pub rows_in: u64,
    /// Wall-clock time.
    pub elapsed: Duration,
    /// Per step, in step order.
    pub steps: Vec<StepSummary>,
    /// Per output, in output order: its name and what its sink wrote.
    pub outputs: Vec<(String, SinkSummary)>,
    /// The batches of `memory` outputs, by output name.
    pub memory: Vec<(String, Vec<RecordBatch>)>,
}

impl RunSummary {
    /// The summary of step `id`.
    pub fn step(&self, id: &str) -> Option<&StepSummary> {
        self.steps.iter().find(|s| s.id == id)
    }
}

struct OpenOutput {
    step: String,
    port: Port,
    sink: Box<dyn Sink>,
}

impl BuiltPipeline {
    /// Runs to end of input (replay), writing every output as it is produced; calls
    /// `progress` about every two seconds.
    ///
    /// # Errors
    /// A pushed input (those are fed by `windrow serve`), the first read, operator or write
    /// error.
    pub fn run(self, progress: impl FnMut(&Progress)) -> Result<RunSummary> {
        self.run_with_progress_every(Duration::from_secs(2), progress)
    }

    /// As [`run`](Self::run), with progress reports every `every`.
    ///
    /// # Errors
    /// As [`run`](Self::run).
    pub fn run_with_progress_every(self, every: Duration, mut progress: impl FnMut(&Progress)) -> Result<RunSummary> {
        let started = Instant::now();
        let (mut runtime, mut sources) = self.flow.into_runtime();
        let names: Vec<String> = runtime.inputs().map(|(n, _)| n.to_string()).collect();
        if let Some(i) = sources.iter().position(Option::is_none) {
            return Err(WindrowError::Plan(format!(
                "input \"{}\" is pushed (kind = \"pushed\"): it is fed over Arrow Flight by `windrow serve`, \
                 not read by `windrow run`",
                names[i]
            )));
        }
        let schemas = runtime.outputs();
        let mut outputs = Vec::with_capacity(self.outputs.len());
        let mut handles = Vec::new();
        for planned in &self.outputs {
            let Some((_, _, schema)) = schemas.iter().find(|(s, p, _)| s == &planned.step && *p == planned.port) else {
                return Err(WindrowError::Internal(format!("output {} has no step", planned.name)));
            };
            let (sink, handle) = planned.open(schema.clone(), self.coalesce_rows)?;
            if let Some(h) = handle {
                handles.push((planned.name.clone(), h));
            }
            outputs.push(OpenOutput { step: planned.step.clone(), port: planned.port, sink });
        }
        let mut steps: Vec<StepSummary> = Vec::new();
        for (id, _, _) in &schemas {
            if !steps.iter().any(|s| &s.id == id) {
                steps.push(StepSummary { id: id.clone(), rows: [0; 4] });
            }
        }

        let mut route = |emitted: Vec<StepOutput>, steps: &mut Vec<StepSummary>| -> Result<()> {
            for o in emitted {
                let Some(summary) = steps.iter_mut().find(|s| s.id == o.step) else { continue };
                for (i, port) in Port::ALL.into_iter().enumerate() {
                    let batches = port.batches(&o.out);
                    summary.rows[i] += batches.iter().map(|b| b.num_rows() as u64).sum::<u64>();
                    for out in outputs.iter_mut().filter(|x| x.step == o.step && x.port == port) {
                        for b in batches.iter().filter(|b| b.num_rows() > 0) {
                            out.sink.write(b)?;
                        }
                    }
                }
            }
            Ok(())
        };

        let mut rows_in = 0u64;
        let mut last_report = Instant::now();
        let mut live = vec![true; sources.len()];
        while live.iter().any(|l| *l) {
            for (i, source) in sources.iter_mut().enumerate() {
                let Some(source) = source.as_mut().filter(|_| live[i]) else { continue };
                let emitted = match source.next_batch() {
                    None => {
                        live[i] = false;
                        runtime.end_input(&names[i])?
                    }
                    Some(batch) => {
                        let batch = batch?;
                        rows_in += batch.num_rows() as u64;
                        runtime.push(&names[i], &batch)?
                    }
                };
                route(emitted, &mut steps)?;
            }
            if last_report.elapsed() >= every {
                last_report = Instant::now();
                progress(&Progress {
                    rows_in,
                    elapsed: started.elapsed(),
                    late: steps.iter().map(|s| s.rows[1]).sum(),
                    windows_closed: steps.iter().map(|s| s.rows[2]).sum(),
                    open_windows: runtime.open_windows(),
                });
            }
        }
        route(runtime.finish()?, &mut steps)?;
        // Finish every sink even if one fails, so one bad output does not leave the others'
        // files unfinished; then report the first failure.
        let mut summaries = Vec::with_capacity(outputs.len());
        let mut failed = None;
        for (planned, out) in self.outputs.iter().zip(outputs.iter_mut()) {
            match out.sink.finish() {
                Ok(summary) => summaries.push((planned.name.clone(), summary)),
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
        Ok(RunSummary {
            rows_in,
            elapsed: started.elapsed(),
            steps,
            outputs: summaries,
            memory: handles.into_iter().map(|(n, h)| (n, h.batches())).collect(),
        })
    }
}
