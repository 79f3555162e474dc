//! One checkpointed execution: resume from the state directory, then commit checkpoints as
//! the driver (`windrow run`'s loop or `windrow serve`'s driver thread) asks. Shared so that
//! both drivers stage, commit and publish in the same order.

use std::path::Path;
use std::time::{Duration, Instant};

use super::{CheckpointConfig, CheckpointStore, InputPosition, Manifest, OutputCommit, StepEntry, fault_point};
use crate::error::{Result, WindrowError};
use crate::flow::FlowRuntime;
use crate::sink::PartSink;

/// What checkpointing cost over a run (spec §9: bounded by state size, not input size).
#[derive(Clone, Debug, Default)]
pub struct CheckpointStats {
    /// The checkpoint the run resumed from, if any.
    pub resumed_from: Option<u64>,
    /// Checkpoints committed by this run.
    pub committed: u64,
    /// Bytes of state in the last checkpoint.
    pub last_bytes: u64,
    /// Largest state of any checkpoint of this run, in bytes.
    pub max_bytes: u64,
    /// Time spent checkpointing (snapshot, write, sync, publish).
    pub total_time: Duration,
    /// Longest single checkpoint.
    pub max_time: Duration,
}

/// What a resume restored besides the runtime's state.
pub(crate) struct Resumed {
    /// Input positions, in input order.
    pub inputs: Vec<InputPosition>,
    /// File outputs' committed parts, in the order given to [`Checkpointer::open`].
    pub outputs: Vec<OutputCommit>,
    /// Rows per step and port so far (`windrow run`'s summary).
    pub step_rows: Vec<(String, [u64; 4])>,
    /// The checkpointed run had completed.
    pub finished: bool,
}

/// The checkpointing side of a driver.
pub(crate) struct Checkpointer {
    config: CheckpointConfig,
    store: CheckpointStore,
    flow: String,
    next: u64,
    definitions: Vec<(String, String)>,
    last: Instant,
    batches_since: u64,
    pub stats: CheckpointStats,
}

impl Checkpointer {
    /// Opens the state directory and, if it holds a good checkpoint, checks that this
    /// pipeline wrote it and restores `runtime` from it. `file_outputs` are the pipeline's
    /// `(output name, path)` pairs whose files the checkpoints commit. Damaged checkpoints and
    /// other recoveries are reported through `warn`.
    ///
    /// # Errors
    /// A step that cannot be checkpointed, an unusable state directory, a checkpoint of
    /// another pipeline, or a state that does not restore.
    pub fn open(
        config: CheckpointConfig,
        runtime: &mut FlowRuntime,
        file_outputs: &[(String, String)],
        mut warn: impl FnMut(&str),
    ) -> Result<(Self, Option<Resumed>)> {
        runtime.checkpoint_support()?;
        let store = CheckpointStore::open(&config.dir)?;
        let mut c = Checkpointer {
            flow: runtime.name().to_string(),
            next: 0,
            definitions: runtime.definitions(),
            last: Instant::now(),
            batches_since: 0,
            stats: CheckpointStats::default(),
            store,
            config,
        };
        let Some(loaded) = c.store.latest(|w| warn(&w))? else {
            return Ok((c, None));
        };
        let m = loaded.manifest;
        let inputs: Vec<String> = runtime.inputs().map(|(n, _)| n.to_string()).collect();
        check_same_pipeline(&loaded.path, &m, &c.definitions, &inputs, file_outputs)?;
        let ended: Vec<bool> = m.inputs.iter().map(|i| i.ended).collect();
        runtime.restore(loaded.steps, &ended)?;
        c.next = m.number + 1;
        c.stats.resumed_from = Some(m.number);
        Ok((c, Some(Resumed { inputs: m.inputs, outputs: m.outputs, step_rows: m.step_rows, finished: m.finished })))
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        &self.config.dir
    }

    /// Counts one input batch applied since the last commit.
    pub fn count_batch(&mut self) {
        self.batches_since += 1;
    }

    /// Whether the interval or the batch count since the last commit is reached.
    pub fn due(&self) -> bool {
        self.config.every_batches.is_some_and(|n| self.batches_since >= n)
            || self.last.elapsed() >= self.config.interval
    }

    /// Commits a checkpoint: stages the part files written since the last one, snapshots the
    /// runtime, writes and commits the checkpoint, then publishes the staged parts. A crash
    /// anywhere in between is repaired by the next [`open`](Self::open) and `PartSink::open`.
    /// `outputs` are the file outputs in the order given to `open`; `finished` marks the
    /// final checkpoint of a completed run.
    ///
    /// # Errors
    /// A failed write, sync or rename, or a runtime that cannot be snapshotted.
    pub fn commit(
        &mut self,
        runtime: &mut FlowRuntime,
        inputs: Vec<InputPosition>,
        outputs: &mut [(&str, &mut PartSink)],
        step_rows: Vec<(String, [u64; 4])>,
        finished: bool,
    ) -> Result<()> {
        let started = Instant::now();
        let mut commits = Vec::with_capacity(outputs.len());
        for (name, parts) in outputs.iter_mut() {
            let staged = parts.prepare_commit(finished)?;
            let summary = parts.summary();
            commits.push(OutputCommit {
                name: name.to_string(),
                path: summary.target,
                parts: staged,
                rows: summary.rows,
            });
        }
        let states = runtime.snapshot()?;
        let manifest = Manifest {
            format: 0,
            windrow: String::new(),
            flow: self.flow.clone(),
            number: self.next,
            finished,
            inputs,
            outputs: commits.clone(),
            steps: self
                .definitions
                .iter()
                .map(|(id, d)| StepEntry {
                    id: id.clone(),
                    definition: d.clone(),
                    scalars: Default::default(),
                    tables: Vec::new(),
                })
                .collect(),
            step_rows,
        };
        let (_, bytes) = self.store.commit(manifest, &states)?;
        fault_point("checkpoint-commit");
        for ((_, parts), commit) in outputs.iter_mut().zip(&commits) {
            parts.publish(commit.parts)?;
            fault_point("publish");
        }
        self.next += 1;
        self.batches_since = 0;
        self.last = Instant::now();
        let took = started.elapsed();
        let st = &mut self.stats;
        st.committed += 1;
        st.last_bytes = bytes;
        st.max_bytes = st.max_bytes.max(bytes);
        st.total_time += took;
        st.max_time = st.max_time.max(took);
        Ok(())
    }
}

/// Compares a checkpoint's steps, inputs and file outputs with the pipeline being resumed.
fn check_same_pipeline(
    dir: &Path,
    manifest: &Manifest,
    definitions: &[(String, String)],
    inputs: &[String],
    file_outputs: &[(String, String)],
) -> Result<()> {
    let refuse = |what: String| {
        Err(WindrowError::Config(format!(
            "the checkpoint in {} was written by a different pipeline: {what}. Resume with the pipeline that \
             wrote it, or use a new --state-dir (or delete this one) to start over",
            dir.display()
        )))
    };
    if manifest.steps.len() != definitions.len() {
        return refuse(format!("it has {} steps, this pipeline has {}", manifest.steps.len(), definitions.len()));
    }
    for (saved, (id, def)) in manifest.steps.iter().zip(definitions) {
        if saved.id != *id {
            return refuse(format!("step \"{}\" is now \"{id}\"", saved.id));
        }
        if saved.definition != *def {
            return refuse(format!("step \"{id}\" changed\n  checkpoint: {}\n  now:        {def}", saved.definition));
        }
    }
    let saved_inputs: Vec<&str> = manifest.inputs.iter().map(|i| i.name.as_str()).collect();
    if saved_inputs != inputs.iter().map(String::as_str).collect::<Vec<_>>() {
        return refuse(format!("its inputs are {saved_inputs:?}, this pipeline's are {inputs:?}"));
    }
    let saved_outputs: Vec<(String, String)> =
        manifest.outputs.iter().map(|o| (o.name.clone(), o.path.clone())).collect();
    if saved_outputs != file_outputs {
        return refuse(format!(
            "its file outputs are {saved_outputs:?}, this pipeline's are {file_outputs:?} (an output added later \
             would miss the windows emitted before)"
        ));
    }
    Ok(())
}
