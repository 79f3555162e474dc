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
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use arrow::record_batch::RecordBatch;
use tokio::sync::oneshot;

use super::retention::OutputLog;
use crate::error::{Result, WindrowError};
use crate::flow::{FlowRuntime, Port, StepOutput};

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
}

struct State {
    runtime: FlowRuntime,
    logs: HashMap<String, Arc<OutputLog>>,
    seq: HashMap<String, u64>,
    summary: Summary,
    /// Counters at the last progress line.
    reported: (u64, u64, u64),
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
                }
            }
        }
    }

    fn push(&mut self, input: &str, batch: &RecordBatch) -> Result<u64> {
        let outputs = self.runtime.push(input, batch)?;
        self.publish(outputs);
        let seq = self.seq.entry(input.to_string()).or_default();
        let this = *seq;
        *seq += 1;
        self.summary.batches_in += 1;
        self.summary.rows_in += batch.num_rows() as u64;
        Ok(this)
    }

    fn timer(&mut self) {
        match self.runtime.on_timer() {
            Ok(outputs) => self.publish(outputs),
            Err(e) => eprintln!("windrow serve: timer: {e}"),
        }
    }

    fn finish(&mut self) -> Result<Summary> {
        let outputs = self.runtime.finish()?;
        self.publish(outputs);
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
        let Driver { runtime, logs, timer_interval, log_interval } = self;
        let _close = CloseOnDrop(logs.values().cloned().collect());
        let rows_out = logs.keys().map(|n| (n.clone(), 0)).collect();
        let mut st = State {
            runtime,
            logs,
            seq: HashMap::new(),
            summary: Summary { rows_out, ..Summary::default() },
            reported: (0, 0, 0),
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
            let wake = next_report.map_or(next_timer, |r| r.min(next_timer));
            match commands.recv_timeout(wake.saturating_duration_since(Instant::now())) {
                Ok(Command::Push { input, batch, reply }) => {
                    let _ = reply.send(st.push(&input, &batch));
                }
                Ok(Command::EndInput { input, reply }) => {
                    let r = st.runtime.end_input(&input).map(|outputs| st.publish(outputs));
                    let _ = reply.send(r);
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
