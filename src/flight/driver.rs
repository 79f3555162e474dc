//! The pipeline's driver: one OS thread that owns the [`FlowRuntime`] outright.
//!
//! Flight handlers send it [`Command`]s over a channel and await the reply; between commands
//! it fires the live timers. One owner means no lock around the runtime, pushes are applied
//! in one total order, and the CPU-bound work (the operators' rayon pool) never runs on a
//! tokio worker. Every batch the runtime emits is appended to its output's [`OutputLog`]
//! *before* the command is answered, so a `DoPut` acknowledgement means "applied and its
//! outputs published".

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use arrow::record_batch::RecordBatch;
use tokio::sync::oneshot;

use super::retention::OutputLog;
use crate::checkpoint::{Checkpointer, InputPosition, fault_point};
use crate::error::{Result, WindrowError};
use crate::flow::{FlowRuntime, Port, StepOutput};
use crate::sink::{PartSink, Sink, SinkSummary};

/// What the driver is asked to do.
pub(crate) enum Command {
    /// Push a batch into an input; the reply is the batch's sequence number on that input.
    Push { input: String, batch: RecordBatch, reply: oneshot::Sender<Result<u64>> },
    /// Mark an input as ended.
    EndInput { input: String, reply: oneshot::Sender<Result<()>> },
    /// Close every window, publish, close every output log and stop.
    Finish { reply: oneshot::Sender<Result<Summary>> },
}

/// Counters of one serving run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Batches applied, over all inputs.
    pub batches_in: u64,
    /// Rows applied, over all inputs.
    pub rows_in: u64,
    /// Rows published per output name (`<step>.<port>`), outputs with no rows included.
    pub rows_out: std::collections::BTreeMap<String, u64>,
    /// With checkpoints (`windrow serve --state-dir`): the file outputs, written by the
    /// driver itself as part directories published at each checkpoint. Empty otherwise (the
    /// file outputs are then written by readers of the server's own streams).
    pub files: Vec<SinkSummary>,
    /// With checkpoints, the server stopped while inputs were still open: its windows were
    /// checkpointed open, not closed, and a restart on the state directory goes on with them.
    pub paused: bool,
}

/// Checkpointing of a served pipeline: the driver commits a checkpoint between commands when
/// one is due, and at shutdown.
pub(crate) struct DriverCheckpoint {
    pub(crate) checkpointer: Checkpointer,
    /// The file outputs by name, in the checkpoint's order.
    pub(crate) parts: Vec<(String, PartSink)>,
    /// Per input, in input order: where the restored state left it, then where the driver is.
    pub(crate) positions: Vec<InputPosition>,
    /// Per input, in input order: the batches the newest committed checkpoint covers.
    pub(crate) committed: Vec<u64>,
}

/// One input's place, for `GetFlightInfo`.
#[derive(Default)]
pub(crate) struct InputCursor {
    /// The number the next applied batch gets.
    next: AtomicU64,
    /// Batches a resume is sure to keep: those of the older of the two checkpoints kept (the
    /// newest could turn out damaged; the resume then falls back to the older one).
    checkpointed: AtomicU64,
    /// Whether `end_input` was applied.
    ended: AtomicBool,
}

/// Every input's [`InputCursor`] (a producer resumes after a restart from `checkpointed`).
#[derive(Default)]
pub(crate) struct InputCursors {
    cursors: HashMap<String, InputCursor>,
    pub(crate) checkpointing: bool,
}

impl InputCursors {
    pub(crate) fn new(inputs: &[String], checkpoint: Option<&DriverCheckpoint>) -> Self {
        let at = |name: &str| checkpoint.and_then(|c| c.positions.iter().find(|p| p.name == name));
        let cursor = |name: &str| {
            let p = at(name);
            let batches = p.map_or(0, |p| p.batches);
            InputCursor {
                next: AtomicU64::new(batches),
                checkpointed: AtomicU64::new(batches),
                ended: AtomicBool::new(p.is_some_and(|p| p.ended)),
            }
        };
        InputCursors {
            cursors: inputs.iter().map(|n| (n.clone(), cursor(n))).collect(),
            checkpointing: checkpoint.is_some(),
        }
    }

    /// `(next batch, batches checkpointed, ended)` of `input`.
    pub(crate) fn get(&self, input: &str) -> (u64, u64, bool) {
        self.cursors.get(input).map_or((0, 0, false), |c| {
            (c.next.load(Ordering::SeqCst), c.checkpointed.load(Ordering::SeqCst), c.ended.load(Ordering::SeqCst))
        })
    }

    fn set_next(&self, input: &str, next: u64) {
        if let Some(c) = self.cursors.get(input) {
            c.next.store(next, Ordering::SeqCst);
        }
    }

    fn set_checkpointed(&self, input: &str, batches: u64) {
        if let Some(c) = self.cursors.get(input) {
            c.checkpointed.store(batches, Ordering::SeqCst);
        }
    }

    fn set_ended(&self, input: &str) {
        if let Some(c) = self.cursors.get(input) {
            c.ended.store(true, Ordering::SeqCst);
        }
    }
}

/// Closes every log when the driver thread ends, however it ends (also on a panic), so
/// that no `DoGet` subscriber waits forever.
struct CloseOnDrop(Vec<Arc<OutputLog>>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.iter().for_each(|l| l.close());
    }
}

pub(crate) struct Driver {
    pub(crate) runtime: FlowRuntime,
    pub(crate) logs: HashMap<String, Arc<OutputLog>>,
    pub(crate) timer_interval: Duration,
    pub(crate) log_interval: Option<Duration>,
    pub(crate) checkpoint: Option<DriverCheckpoint>,
    pub(crate) cursors: Arc<InputCursors>,
}

struct State {
    runtime: FlowRuntime,
    logs: HashMap<String, Arc<OutputLog>>,
    seq: HashMap<String, u64>,
    summary: Summary,
    /// Counters at the last progress line.
    reported: (u64, u64, u64),
    checkpoint: Option<DriverCheckpoint>,
    cursors: Arc<InputCursors>,
    /// Set when a file output or a checkpoint failed: from then on nothing is taken and no
    /// checkpoint is committed, so a restart resumes from the last good checkpoint and the
    /// files lose nothing.
    broken: Option<String>,
}

impl State {
    fn publish(&mut self, outputs: Vec<StepOutput>) {
        for o in outputs {
            for port in Port::ALL {
                let name = port.output_name(&o.step);
                for batch in port.batches(&o.out) {
                    if batch.num_rows() == 0 {
                        continue;
                    }
                    *self.summary.rows_out.entry(name.clone()).or_default() += batch.num_rows() as u64;
                    if let Some(log) = self.logs.get(&name) {
                        log.append(batch.clone());
                    }
                    let parts = self.checkpoint.as_mut().map_or(&mut [][..], |c| &mut c.parts[..]);
                    for (_, sink) in parts.iter_mut().filter(|(n, _)| *n == name) {
                        if let Err(e) = sink.write(batch)
                            && self.broken.is_none()
                        {
                            self.broken = Some(format!("output \"{name}\" could not be written: {e}"));
                        }
                    }
                }
            }
        }
        if let Some(why) = &self.broken {
            eprintln!("windrow serve: {why}; taking no more batches and committing no more checkpoints");
        }
    }

    fn refuse_if_broken(&self) -> Result<()> {
        match &self.broken {
            Some(why) => Err(WindrowError::Data(format!(
                "the server stopped taking batches: {why}. Restart it: it resumes from its last checkpoint"
            ))),
            None => Ok(()),
        }
    }

    fn push(&mut self, input: &str, batch: &RecordBatch) -> Result<u64> {
        self.refuse_if_broken()?;
        let outputs = self.runtime.push(input, batch)?;
        self.publish(outputs);
        self.refuse_if_broken()?;
        let seq = self.seq.entry(input.to_string()).or_default();
        let this = *seq;
        *seq += 1;
        self.cursors.set_next(input, *seq);
        self.summary.batches_in += 1;
        self.summary.rows_in += batch.num_rows() as u64;
        if let Some(c) = self.checkpoint.as_mut() {
            c.checkpointer.count_batch();
            if let Some(p) = c.positions.iter_mut().find(|p| p.name == input) {
                p.rows += batch.num_rows() as u64;
                p.batches += 1;
            }
        }
        fault_point("batch");
        Ok(this)
    }

    fn timer(&mut self) {
        match self.runtime.on_timer() {
            Ok(outputs) => self.publish(outputs),
            Err(e) => eprintln!("windrow serve: timer: {e}"),
        }
    }

    /// Commits a checkpoint if one is due, or `now`; `finished` marks the final one. A
    /// failure stops the server from taking more batches.
    fn checkpoint(&mut self, now: bool, finished: bool) {
        let Some(c) = self.checkpoint.as_mut() else { return };
        if self.broken.is_some() || !(now || finished || c.checkpointer.due()) {
            return;
        }
        let older = std::mem::replace(&mut c.committed, c.positions.iter().map(|p| p.batches).collect());
        let ended = self.runtime.ended();
        let inputs = c.positions.iter().zip(ended).map(|(p, e)| InputPosition { ended: *e, ..p.clone() }).collect();
        let mut parts: Vec<(&str, &mut PartSink)> = c.parts.iter_mut().map(|(n, p)| (n.as_str(), p)).collect();
        match c.checkpointer.commit(&mut self.runtime, inputs, &mut parts, Vec::new(), finished) {
            Ok(()) => {
                // Producers may drop what the older of the two kept checkpoints covers.
                for (p, batches) in c.positions.iter().zip(older) {
                    self.cursors.set_checkpointed(&p.name, batches);
                }
            }
            Err(e) => {
                let why = format!("checkpoint failed: {e}");
                eprintln!("windrow serve: {why}; taking no more batches");
                self.broken = Some(why);
            }
        }
    }

    fn finish(&mut self) -> Result<Summary> {
        self.refuse_if_broken()?;
        if self.checkpoint.is_some() && !self.runtime.ended().iter().all(|e| *e) {
            // With a state directory, shutting down while inputs are open is a pause: the
            // open windows stay in the checkpoint and a restart goes on with them (ending
            // every input first closes them all, as without a state directory).
            self.checkpoint(true, false);
            self.summary.paused = true;
        } else {
            let outputs = self.runtime.finish()?;
            self.publish(outputs);
            self.checkpoint(true, true);
        }
        self.refuse_if_broken()?;
        if let Some(c) = &self.checkpoint {
            self.summary.files = c.parts.iter().map(|(_, p)| p.summary()).collect();
            let st = &c.checkpointer.stats;
            eprintln!(
                "windrow serve: {} checkpoint(s) committed, last {} bytes of state, {:.3} s in all",
                st.committed,
                st.last_bytes,
                st.total_time.as_secs_f64()
            );
        }
        Ok(self.summary.clone())
    }

    fn windows_out(&self) -> u64 {
        self.summary.rows_out.iter().filter(|(n, _)| n.ends_with(".down")).map(|(_, r)| r).sum()
    }

    fn late_out(&self) -> u64 {
        self.summary.rows_out.iter().filter(|(n, _)| n.ends_with(".late")).map(|(_, r)| r).sum()
    }

    fn report(&mut self) {
        let now = (self.summary.rows_in, self.windows_out(), self.late_out());
        if now != self.reported {
            eprintln!(
                "windrow serve: +{} rows in, +{} result rows out, +{} late rows (total {} rows in, {} batches)",
                now.0 - self.reported.0,
                now.1 - self.reported.1,
                now.2 - self.reported.2,
                self.summary.rows_in,
                self.summary.batches_in
            );
            self.reported = now;
        }
    }
}

impl Driver {
    /// Runs until a `Finish` command or until every sender is gone (then it finishes too, so
    /// open windows still reach the logs).
    pub(crate) fn run(self, commands: Receiver<Command>) {
        let Driver { runtime, logs, timer_interval, log_interval, checkpoint, cursors } = self;
        let _close = CloseOnDrop(logs.values().cloned().collect());
        let rows_out = logs.keys().map(|n| (n.clone(), 0)).collect();
        // Batch numbers go on from where the restored checkpoint left each input.
        let seq = checkpoint
            .as_ref()
            .map_or_else(HashMap::new, |c| c.positions.iter().map(|p| (p.name.clone(), p.batches)).collect());
        let mut st = State {
            runtime,
            logs,
            seq,
            summary: Summary { rows_out, ..Summary::default() },
            reported: (0, 0, 0),
            checkpoint,
            cursors,
            broken: None,
        };
        let interval = timer_interval.max(Duration::from_millis(1));
        let mut next_timer = Instant::now() + interval;
        let mut next_report = log_interval.map(|d| Instant::now() + d);
        loop {
            let now = Instant::now();
            if now >= next_timer {
                st.timer();
                next_timer = now + interval;
            }
            if let (Some(at), Some(every)) = (next_report, log_interval)
                && now >= at
            {
                st.report();
                next_report = Some(now + every);
            }
            st.checkpoint(false, false);
            let wake = next_report.map_or(next_timer, |r| r.min(next_timer));
            match commands.recv_timeout(wake.saturating_duration_since(Instant::now())) {
                Ok(Command::Push { input, batch, reply }) => {
                    let _ = reply.send(st.push(&input, &batch));
                }
                Ok(Command::EndInput { input, reply }) => {
                    let r = st.refuse_if_broken().and_then(|()| st.runtime.end_input(&input));
                    let r = r.map(|outputs| st.publish(outputs));
                    if r.is_ok() {
                        st.cursors.set_ended(&input);
                        // An ended input is rare and changes what the flow does next (joins
                        // stop waiting for it): make it durable before answering.
                        st.checkpoint(true, false);
                    }
                    let _ = reply.send(r.and_then(|()| st.refuse_if_broken()));
                }
                Ok(Command::Finish { reply }) => {
                    let r = st.finish();
                    if log_interval.is_some() {
                        st.report();
                    }
                    let _ = reply.send(r);
                    return;
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    if let Err(e) = st.finish() {
                        eprintln!("windrow serve: finishing the pipeline: {e}");
                    }
                    return;
                }
            }
        }
    }
}

/// The error a handler reports when the driver is gone.
pub(crate) fn driver_gone() -> WindrowError {
    WindrowError::Internal("the pipeline driver has stopped (server shutting down)".into())
}
