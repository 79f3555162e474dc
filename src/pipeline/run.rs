//! Running a built pipeline in replay mode: read every input round-robin, stream each
//! step's outputs to their sinks as they are produced, report progress, sum up.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use crate::checkpoint::{CheckpointConfig, CheckpointStats, Checkpointer, InputPosition, fault_point};
use crate::error::{Result, WindrowError};
use crate::flow::{Dataflow, FlowRuntime, Port, StepOutput};
use crate::sink::{
    BackgroundSink, MemoryHandle, MemorySink, PartSink, RollPolicy, Sink, SinkSummary, TableSink, WriteFailure,
    open_sink,
};
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
    /// The `(name, path)` of each file output: what a checkpoint commits (and must match).
    pub(crate) fn file_outputs(planned: &[PlannedOutput]) -> Vec<(String, String)> {
        planned
            .iter()
            .filter_map(|p| match &p.target {
                OutputTarget::File { path, .. } => Some((p.name.clone(), path.display().to_string())),
                _ => None,
            })
            .collect()
    }

    /// A file output's part directory for a checkpointed run, resuming after `committed`
    /// `(parts, rows)`; parts no checkpoint covers are removed and reported through `warn`.
    /// `None` for outputs that are not files.
    ///
    /// # Errors
    /// A directory that cannot be created, listed or repaired.
    pub(crate) fn open_parts(
        &self,
        schema: SchemaRef,
        (parts, rows): (usize, u64),
        coalesce_rows: usize,
        mut warn: impl FnMut(&str),
    ) -> Result<Option<PartSink>> {
        let OutputTarget::File { path, format, roll } = &self.target else { return Ok(None) };
        let sink = PartSink::open(path, *format, schema, parts, *roll, coalesce_rows)?.with_prior_rows(rows);
        for removed in sink.removed() {
            warn(&format!(
                "removed {}: not covered by the checkpoint resumed from (it is written again)",
                removed.display()
            ));
        }
        Ok(Some(sink))
    }

    /// `sink` (opened by [`open`](Self::open)) written on a thread of its own if it writes a
    /// file: encoding and writing overlap the operators' work (the benchmark's 10 M events,
    /// their 2.9 M windows to Parquet, 2 cores: 0.57-0.65 s -> 0.42-0.46 s). A failed write
    /// stops the run at the next write of any output sharing `failure`.
    ///
    /// # Errors
    /// The writer thread cannot be started.
    pub(crate) fn in_background(&self, sink: Box<dyn Sink>, failure: &WriteFailure) -> Result<Box<dyn Sink>> {
        Ok(match &self.target {
            OutputTarget::File { path, .. } => {
                Box::new(BackgroundSink::spawn_sharing(path.display().to_string(), sink, failure)?)
            }
            _ => sink,
        })
    }

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
    /// Checkpointing, if the run has a state directory (see [`with_checkpoints`](Self::with_checkpoints)).
    pub checkpoint: Option<CheckpointConfig>,
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
    /// With checkpoints: what they cost.
    pub checkpoints: Option<CheckpointStats>,
}

impl RunSummary {
    /// The summary of step `id`.
    pub fn step(&self, id: &str) -> Option<&StepSummary> {
        self.steps.iter().find(|s| s.id == id)
    }
}

/// An open output: a plain sink, or (with checkpoints) part files published at commits.
enum OutputSink {
    Plain(Box<dyn Sink>),
    Parts(Box<PartSink>),
}

impl OutputSink {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        match self {
            OutputSink::Plain(s) => s.write(batch),
            OutputSink::Parts(s) => s.write(batch),
        }
    }
}

struct OpenOutput {
    /// `<step>.<port>`.
    name: String,
    step: String,
    port: Port,
    sink: OutputSink,
}

/// Skips the first `rows` rows of `source` (a resume); returns the rest of a batch cut in the
/// middle.
fn skip_rows(source: &mut dyn crate::source::Source, name: &str, rows: u64) -> Result<Option<RecordBatch>> {
    // Files that can seek (Parquet) skip without decoding; the rest is read and dropped.
    let mut left = rows - source.skip_rows(rows)?.min(rows);
    while left > 0 {
        let Some(batch) = source.next_batch() else {
            return Err(WindrowError::Data(format!(
                "input \"{name}\" has {} rows, but the checkpoint says {rows} were read: the input changed since \
                 the checkpoint; restore it, or start over with a new --state-dir",
                rows - left
            )));
        };
        let batch = batch?;
        let n = batch.num_rows() as u64;
        if n <= left {
            left -= n;
        } else {
            let cut = left as usize;
            return Ok(Some(batch.slice(cut, batch.num_rows() - cut)));
        }
    }
    Ok(None)
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

    /// Checkpoints the run into `config.dir` (see [`crate::checkpoint`]): a rerun with the
    /// same state directory after a crash resumes from the last checkpoint, and every file
    /// output is then exactly what an uninterrupted run writes. File outputs become
    /// directories of part files, published at each checkpoint.
    ///
    /// ```
    /// use windrow::checkpoint::CheckpointConfig;
    /// use windrow::pipeline::{Pipeline, RunMode};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let root = env!("CARGO_MANIFEST_DIR");
    /// let work = tempfile::tempdir()?;
    /// let toml = format!(r#"
    ///     name = "per_minute"
    ///     [[input]]
    ///     name = "clicks"
    ///     path = "{root}/data/clicks.parquet"
    ///     [[step]]
    ///     id = "w"
    ///     input = "clicks"
    ///     key = ["user"]
    ///     time = "ts"
    ///     wait = "30s"
    ///     window = {{ kind = "tumbling", length = "1m" }}
    ///     aggregates = ["count"]
    ///     [[output]]
    ///     from = "w.down"
    ///     path = "windows.parquet"
    /// "#);
    /// let pipeline = Pipeline::from_toml_str(&toml, work.path())?;
    /// let run = |ckpt: CheckpointConfig| pipeline.build(RunMode::Replay)?.with_checkpoints(ckpt).run(|_| {});
    /// let mut every_batch = CheckpointConfig::new(work.path().join("state"));
    /// every_batch.every_batches = Some(1);
    /// let first = run(every_batch.clone())?.checkpoints.unwrap();
    /// assert!(first.committed > 1); // numbered 0, 1, …
    /// // The state directory says the run completed: a rerun resumes from its last
    /// // checkpoint and has nothing left to do, so nothing is written twice.
    /// let again = run(every_batch)?.checkpoints.unwrap();
    /// assert_eq!(again.resumed_from, Some(first.committed - 1));
    /// assert_eq!(again.committed, 0);
    /// // The output is a directory of published part files.
    /// assert!(work.path().join("windows.parquet/part-00000.parquet").is_file());
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_checkpoints(mut self, config: CheckpointConfig) -> Self {
        self.checkpoint = Some(config);
        self
    }

    /// As [`run`](Self::run), with progress reports every `every`; warnings (a damaged
    /// checkpoint skipped, uncommitted output parts removed) go to stderr.
    ///
    /// # Errors
    /// As [`run`](Self::run).
    pub fn run_with_progress_every(self, every: Duration, progress: impl FnMut(&Progress)) -> Result<RunSummary> {
        self.run_observed(every, progress, |w| eprintln!("windrow: warning: {w}"))
    }

    /// As [`run`](Self::run), with progress reports every `every` and warnings to `warn`.
    ///
    /// # Errors
    /// As [`run`](Self::run); with checkpoints also a checkpoint of a different pipeline, an
    /// aggregation that cannot be checkpointed, or an input shorter than the checkpoint's
    /// position.
    pub fn run_observed(
        self,
        every: Duration,
        mut progress: impl FnMut(&Progress),
        mut warn: impl FnMut(&str),
    ) -> Result<RunSummary> {
        let started = Instant::now();
        let BuiltPipeline { flow, outputs: planned, coalesce_rows, checkpoint } = self;
        let (mut runtime, mut sources) = flow.into_runtime();
        let names: Vec<String> = runtime.inputs().map(|(n, _)| n.to_string()).collect();
        if let Some(i) = sources.iter().position(Option::is_none) {
            return Err(WindrowError::Plan(format!(
                "input \"{}\" is pushed (kind = \"pushed\"): it is fed over Arrow Flight by `windrow serve`, \
                 not read by `windrow run`",
                names[i]
            )));
        }
        let schemas = runtime.outputs();
        let mut steps: Vec<StepSummary> = Vec::new();
        for (id, _, _) in &schemas {
            if !steps.iter().any(|s| &s.id == id) {
                steps.push(StepSummary { id: id.clone(), rows: [0; 4] });
            }
        }
        let mut positions: Vec<InputPosition> =
            names.iter().map(|n| InputPosition { name: n.clone(), rows: 0, batches: 0, ended: false }).collect();
        let mut committed_parts: Vec<(usize, u64)> = vec![(0, 0); planned.len()];
        let mut already_finished = false;

        // Checkpoints: find the last good one, check it was written by this pipeline, restore.
        let mut ckpt = match checkpoint {
            None => None,
            Some(config) => {
                let file_outputs = PlannedOutput::file_outputs(&planned);
                let (c, resumed) = Checkpointer::open(config, &mut runtime, &file_outputs, &mut warn)?;
                if let Some(r) = resumed {
                    positions = r.inputs;
                    let mut saved = r.outputs.iter();
                    for (parts, plan) in committed_parts.iter_mut().zip(&planned) {
                        if matches!(plan.target, OutputTarget::File { .. }) {
                            *parts = saved.next().map_or((0, 0), |o| (o.parts, o.rows));
                        }
                    }
                    for (s, (id, rows)) in steps.iter_mut().zip(&r.step_rows) {
                        if s.id == *id {
                            s.rows = *rows;
                        }
                    }
                    already_finished = r.finished;
                }
                Some(c)
            }
        };

        let mut outputs = Vec::with_capacity(planned.len());
        let mut handles = Vec::new();
        let write_failure = WriteFailure::default();
        for (planned, &committed) in planned.iter().zip(&committed_parts) {
            let Some((_, _, schema)) = schemas.iter().find(|(s, p, _)| s == &planned.step && *p == planned.port) else {
                return Err(WindrowError::Internal(format!("output {} has no step", planned.name)));
            };
            let parts = match &ckpt {
                Some(_) => planned.open_parts(schema.clone(), committed, coalesce_rows, &mut warn)?,
                None => None,
            };
            let sink = match parts {
                Some(parts) => OutputSink::Parts(Box::new(parts)),
                None => {
                    let (sink, handle) = planned.open(schema.clone(), coalesce_rows)?;
                    if let Some(h) = handle {
                        handles.push((planned.name.clone(), h));
                    }
                    OutputSink::Plain(planned.in_background(sink, &write_failure)?)
                }
            };
            outputs.push(OpenOutput {
                name: planned.name.clone(),
                step: planned.step.clone(),
                port: planned.port,
                sink,
            });
        }

        let route =
            |emitted: Vec<StepOutput>, steps: &mut Vec<StepSummary>, outputs: &mut Vec<OpenOutput>| -> Result<()> {
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

        let resumed_rows: u64 = positions.iter().map(|p| p.rows).sum();
        let mut rows_in = resumed_rows;
        if already_finished {
            warn("the checkpoint says this run already completed: nothing to do (use a new --state-dir to run again)");
        } else {
            // A resume skips what the checkpoint covers; ended inputs are not read again.
            let mut live: Vec<bool> = runtime.ended().iter().map(|e| !e).collect();
            let mut carry: Vec<Option<RecordBatch>> = vec![None; sources.len()];
            for (i, source) in sources.iter_mut().enumerate() {
                if let Some(source) = source.as_mut().filter(|_| live[i] && positions[i].rows > 0) {
                    carry[i] = skip_rows(source.as_mut(), &names[i], positions[i].rows)?;
                }
            }
            let mut last_report = Instant::now();
            while live.iter().any(|l| *l) {
                for (i, source) in sources.iter_mut().enumerate() {
                    let Some(source) = source.as_mut().filter(|_| live[i]) else { continue };
                    let next = match carry[i].take() {
                        Some(b) => Some(Ok(b)),
                        None => source.next_batch(),
                    };
                    let emitted = match next {
                        None => {
                            live[i] = false;
                            runtime.end_input(&names[i])?
                        }
                        Some(batch) => {
                            let batch = batch?;
                            rows_in += batch.num_rows() as u64;
                            positions[i].rows += batch.num_rows() as u64;
                            positions[i].batches += 1;
                            runtime.push(&names[i], &batch)?
                        }
                    };
                    route(emitted, &mut steps, &mut outputs)?;
                    fault_point("batch");
                    if let Some(c) = ckpt.as_mut() {
                        c.count_batch();
                    }
                }
                // Checkpoints fall between rounds (one batch of every input), never inside
                // one: a resume starts a round with the first input, so the inputs interleave
                // as they would have without the interruption.
                if let Some(c) = ckpt.as_mut().filter(|c| c.due()) {
                    commit(c, &mut runtime, &positions, &mut outputs, &steps, false)?;
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
            route(runtime.finish()?, &mut steps, &mut outputs)?;
            if let Some(c) = ckpt.as_mut() {
                commit(c, &mut runtime, &positions, &mut outputs, &steps, true)?;
            }
        }
        // Finish every sink even if one fails, so one bad output does not leave the others'
        // files unfinished; then report the first failure.
        let mut summaries = Vec::with_capacity(outputs.len());
        let mut failed = None;
        for (planned, out) in planned.iter().zip(outputs.iter_mut()) {
            let finished = match &mut out.sink {
                OutputSink::Plain(s) => s.finish(),
                OutputSink::Parts(p) => Ok(p.summary()),
            };
            match finished {
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
            checkpoints: ckpt.map(|c| c.stats),
        })
    }
}

/// Commits a checkpoint of a `windrow run`: the inputs' positions and ended flags, the part
/// files of its file outputs, its row counts.
fn commit(
    c: &mut Checkpointer,
    runtime: &mut FlowRuntime,
    positions: &[InputPosition],
    outputs: &mut [OpenOutput],
    steps: &[StepSummary],
    finished: bool,
) -> Result<()> {
    let inputs = positions.iter().zip(runtime.ended()).map(|(p, e)| InputPosition { ended: *e, ..p.clone() }).collect();
    let mut parts: Vec<(&str, &mut PartSink)> = outputs
        .iter_mut()
        .filter_map(|o| match &mut o.sink {
            OutputSink::Parts(p) => Some((o.name.as_str(), p.as_mut())),
            OutputSink::Plain(_) => None,
        })
        .collect();
    c.commit(runtime, inputs, &mut parts, steps.iter().map(|s| (s.id.clone(), s.rows)).collect(), finished)
}
