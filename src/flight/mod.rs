//! Arrow Flight: serve a pipeline live (`windrow serve`), and read a Flight `DoGet` stream as
//! a [`Source`](crate::source::Source).
//!
//! # The server's contract
//!
//! Any Flight client (arrow-flight's `FlightClient`, `pyarrow.flight`, …) can drive a
//! [`FlowRuntime`] served by [`serve`], [`serve_until_signal`] or [`FlightServer::start`]:
//!
//! - **`ListFlights`** returns one `FlightInfo` per input, then one per output (`<step>.down`,
//!   `.late`, `.meta`, `.errors` for every step, see [`Port`](crate::flow::Port)), each with a
//!   path descriptor of one element (the name) and the schema. Inputs have no endpoint and
//!   `app_metadata` `input; next batch N` (the sequence number the next applied batch gets),
//!   with checkpoints `input; next batch N; checkpointed M` (see *Checkpoints* below), and
//!   `; ended` once the input was ended;
//!   outputs have one endpoint whose ticket is the name, and
//!   `app_metadata` `output; retained batches FIRST..NEXT`. `GetFlightInfo` and `GetSchema`
//!   answer for one such path descriptor.
//! - **`DoPut`** with the path descriptor `[input]` appends the stream's batches to that input.
//!   The stream's schema must have the input's field names in order, their types (a dictionary
//!   field may arrive hydrated to its value type, arrow-flight's default), and may declare a
//!   field nullable only where the input does; otherwise the call fails with
//!   `InvalidArgument` naming every missing, extra, retyped, nullable or reordered field.
//!   Each batch is applied, its outputs are published, and *then* it is acknowledged with a
//!   `PutResult` whose `app_metadata` is the batch's sequence number on that input (UTF-8
//!   decimal, from `0`, counting every batch applied to the input since the server started,
//!   over all `DoPut` calls). An acknowledged batch is never lost; a batch that was not
//!   acknowledged (the client disconnected, or shutdown began) may or may not have been
//!   applied. A client that disconnects mid-stream ends only its own call. An operator error
//!   ends the call with a status naming the step (`InvalidArgument` for bad data or plans);
//!   per-row validation failures are not errors: those rows go to `<step>.errors`.
//! - **`DoGet`** with a ticket whose bytes are an output name streams that output: first every
//!   batch still retained, from the first batch the server emitted, then new batches as
//!   windows close, until the server shuts down (then the stream ends cleanly after the final
//!   flush). The response header [`FIRST_SEQ_HEADER`] (`windrow-first-seq`) holds the
//!   sequence number of the first batch sent: `0` unless [`Retention`] dropped the head, in
//!   which case the batches before it are gone. A reader so slow that batches it had not
//!   read yet are dropped gets `DataLoss` naming the missing range, never a silent skip.
//!   An unknown ticket gets `NotFound` listing the outputs.
//! - **`DoAction("end_input", body = input name)`** ends an input (joins in replay mode wait
//!   for ended sides; see spec §11.4). Inputs are not ended when a `DoPut` stream ends, so
//!   several producers may feed one input in turn.
//! - **Shutdown** (the future given to [`serve`], Ctrl-C or SIGTERM for
//!   [`serve_until_signal`], [`FlightServer::shutdown`]): open `DoPut` calls stop taking
//!   batches (`Unavailable`; what they acknowledged stays applied), the runtime's
//!   [`finish`](FlowRuntime::finish) closes every window, the final batches are published,
//!   every output stream ends after delivering them, and the server exits once clients are
//!   drained (at most [`ServeOptions::drain_timeout`]). With checkpoints and an input not
//!   ended, shutdown is a pause instead: the open windows are checkpointed, not closed, and a
//!   restart goes on with them.
//!
//! # Checkpoints (`windrow serve --state-dir`, [`serve_pipeline`] with
//! [`BuiltPipeline::with_checkpoints`](crate::pipeline::BuiltPipeline::with_checkpoints))
//!
//! The driver commits a checkpoint between commands when one is due and at shutdown. The
//! pipeline's file outputs are then written by the driver itself as directories of part
//! files, published only once the checkpoint covering them is durable (exactly once, as for
//! `windrow run`). A restarted server resumes from its last good checkpoint and each input's
//! batch numbering goes on from there (`next batch` after the restart). `checkpointed M` is
//! what the older of the two kept checkpoints covers — the one a resume can always fall back
//! to — so a producer keeps its batches from number `M` on (acknowledgements count the
//! messages the server applied) and re-sends from `next batch` after a restart. `end_input`
//! is checkpointed before it is answered. `DoGet` streams are not part of the guarantee:
//! after a restart they start over with what the resumed server emits, which can repeat
//! windows a reader saw before the crash.
//!
//! # Live time
//!
//! The server fires [`FlowRuntime::on_timer`] every [`ServeOptions::timer_interval`], so
//! windows of idle keys close as system time passes (spec §11.3). That needs operators built
//! with [`TimeSource::Real`](crate::time::TimeSource::Real): the caller builds the
//! [`Dataflow`](crate::flow::Dataflow) (with
//! [`pushed_input`](crate::flow::Dataflow::pushed_input)s) and chooses. With the default
//! replay source system time stays frozen: event-time windows still close as data advances
//! the watermark and at shutdown, but never on timers, and a `SystemClock` step puts every row
//! in the windows of the one frozen instant, emitted only at shutdown. With `TimeSource::Real`,
//! `SystemClock` windows close on the timer after their end passes.
//!
//! # How it is built
//!
//! One OS thread, the *driver*, owns the `FlowRuntime` outright; Flight handlers (tokio
//! tasks) send it commands over a channel and await its reply, and it fires the timers
//! between commands. So the runtime needs no lock, pushes from concurrent `DoPut` calls are
//! applied in one total order, and the operators' CPU-bound work never blocks a tokio worker.
//! Each output has a retained log (`retention.rs`) that the driver appends to before it
//! answers; `DoGet` streams follow the logs.
//!
//! ```
//! use std::sync::Arc;
//! use arrow::array::{RecordBatch, StringArray, TimestampMillisecondArray};
//! use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
//! use arrow_flight::{FlightClient, FlightDescriptor, Ticket};
//! use arrow_flight::encode::FlightDataEncoderBuilder;
//! use chrono::TimeDelta;
//! use futures::TryStreamExt;
//! use windrow::flight::{FlightServer, ServeOptions};
//! use windrow::flow::Dataflow;
//! use windrow::prelude::*;
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let schema = Arc::new(Schema::new(vec![
//!     Field::new("user", DataType::Utf8, false),
//!     Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), false),
//! ]));
//! let mut flow = Dataflow::new("clicks");
//! let clicks = flow.pushed_input("clicks", schema.clone());
//! let minute = TumblingWindower::new(TimeDelta::minutes(1))?;
//! flow.window(&clicks, count_window("per_minute", &schema, EventClock::new("ts"), minute,
//!                                   KeySpec::columns(["user"])).time_source(TimeSource::Real))?;
//! let (runtime, _) = flow.into_runtime();
//! let server = FlightServer::start(runtime, "127.0.0.1:0".parse()?, ServeOptions::quiet()).await?;
//!
//! let channel = tonic::transport::Endpoint::from_shared(server.url())?.connect().await?;
//! let mut client = FlightClient::new(channel);
//! let batch = RecordBatch::try_new(schema.clone(), vec![
//!     Arc::new(StringArray::from(vec!["a", "a"])),
//!     Arc::new(TimestampMillisecondArray::from(vec![0, 61_000])),
//! ])?;
//! let put = FlightDataEncoderBuilder::new()
//!     .with_flight_descriptor(Some(FlightDescriptor::new_path(vec!["clicks".into()])))
//!     .build(futures::stream::iter([Ok(batch)]));
//! let acks: Vec<_> = client.do_put(put).await?.try_collect().await?;
//! assert_eq!(acks[0].app_metadata, "0"); // applied as batch 0 of "clicks"
//!
//! let down = client.do_get(Ticket::new("per_minute.down")).await?;
//! server.shutdown().await?; // closes the window of minute 1 too, then ends the stream
//! let windows: Vec<RecordBatch> = down.try_collect().await?;
//! assert_eq!(windows.iter().map(|b| b.num_rows()).sum::<usize>(), 2);
//! # Ok(())
//! # }
//! ```

mod client;
mod driver;
mod retention;
mod server;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arrow_flight::flight_service_server::FlightServiceServer;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};

pub use client::FlightSource;
pub use driver::Summary;
pub use retention::Retention;
pub use server::{END_INPUT_ACTION, FIRST_SEQ_HEADER};

use crate::error::{Result, WindrowError};
use crate::flow::FlowRuntime;
use driver::{Command, Driver, DriverCheckpoint, InputCursors};
use retention::OutputLog;
use server::{Inner, WindrowFlightService};

/// How [`serve`] runs.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// How often live timers fire ([`FlowRuntime::on_timer`]); default 200 ms.
    pub timer_interval: Duration,
    /// How much of each output is kept for `DoGet` readers that connect later.
    pub retention: Retention,
    /// Progress lines on stderr (listening address, inputs and outputs, then rows in and
    /// results out every interval while they change); `None`: silent. Default 10 s.
    pub log_interval: Option<Duration>,
    /// After the final flush, how long shutdown waits for readers to drain their streams
    /// before it closes their connections; default 10 s.
    pub drain_timeout: Duration,
    /// Largest gRPC message accepted or sent, in bytes; default 64 MiB (`DoGet` batches are
    /// split into messages of about 2 MiB).
    pub max_message_bytes: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            timer_interval: Duration::from_millis(200),
            retention: Retention::default(),
            log_interval: Some(Duration::from_secs(10)),
            drain_timeout: Duration::from_secs(10),
            max_message_bytes: 64 << 20,
        }
    }
}

impl ServeOptions {
    /// The defaults without progress lines (tests, embedding).
    pub fn quiet() -> Self {
        ServeOptions { log_interval: None, ..Self::default() }
    }
}

/// A reader of a windrow output must start at its first batch: if the server already dropped
/// the head of the log (header [`FIRST_SEQ_HEADER`] > 0), reading on would silently skip
/// those batches, so this is an error naming how many are gone. Servers that do not send the
/// header (other Flight servers) are taken as complete.
pub(crate) fn check_complete(headers: &tonic::metadata::MetadataMap, output: &str) -> Result<()> {
    let first = headers.get(FIRST_SEQ_HEADER).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    match first {
        Some(n) if n > 0 => Err(WindrowError::Data(format!(
            "output \"{output}\": the server no longer holds its first {n} batch(es) (retention dropped them), \
             so reading it now would miss them; read it sooner or raise the server's retention"
        ))),
        _ => Ok(()),
    }
}

fn io_err(what: String, e: impl std::fmt::Display) -> WindrowError {
    WindrowError::Io(std::io::Error::other(format!("{what}: {e}")))
}

/// Serves `runtime` on `addr` until `shutdown` resolves, then closes every window, flushes
/// the outputs to their readers and returns the run's counters. See the [module
/// docs](self) for the contract.
///
/// # Errors
/// The address cannot be bound; the gRPC server fails; finishing the pipeline fails (an
/// operator error).
pub async fn serve(
    runtime: FlowRuntime,
    addr: SocketAddr,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<Summary> {
    let listener = TcpListener::bind(addr).await.map_err(|e| io_err(format!("cannot listen on {addr}"), e))?;
    serve_listener(runtime, listener, options, None, shutdown).await
}

/// [`serve`] on a multi-threaded tokio runtime of its own until Ctrl-C or SIGTERM: the entry
/// point of `windrow serve`. Blocks the calling thread; must not be called from async code.
///
/// # Errors
/// As [`serve`], or the tokio runtime cannot start.
pub fn serve_until_signal(runtime: FlowRuntime, addr: SocketAddr, options: ServeOptions) -> Result<Summary> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("windrow-flight")
        .build()
        .map_err(|e| io_err("cannot start the tokio runtime".into(), e))?;
    let verbose = options.log_interval.is_some();
    rt.block_on(serve(runtime, addr, options, shutdown_signal(verbose)))
}

/// `windrow serve PIPELINE.toml`: serves a built pipeline (build it with
/// [`RunMode::Live`](crate::pipeline::RunMode)) on `addr` until Ctrl-C or SIGTERM.
///
/// Its `pushed` inputs take `DoPut`; every output is served by `DoGet`; each `[[output]]` the
/// pipeline file names is also written to its sink by a reader of the server's own `DoGet`
/// stream, so a file holds exactly what Flight readers saw. On shutdown every window closes,
/// the final batches reach readers and sinks, and the sinks' files are completed.
///
/// # Errors
/// An input that reads files or another server (serve takes its events over `DoPut`; use
/// `windrow run` for files), a sink that cannot be opened or written, or what [`serve`]
/// reports.
pub fn serve_pipeline(
    built: crate::pipeline::BuiltPipeline,
    addr: SocketAddr,
    options: ServeOptions,
) -> Result<(Summary, Vec<crate::sink::SinkSummary>)> {
    let crate::pipeline::BuiltPipeline { flow, outputs, coalesce_rows, checkpoint } = built;
    let (mut runtime, sources) = flow.into_runtime();
    let inputs: Vec<String> = runtime.inputs().map(|(n, _)| n.to_string()).collect();
    if let Some((name, _)) = inputs.iter().zip(&sources).find(|(_, s)| s.is_some()) {
        return Err(WindrowError::Config(format!(
            "windrow serve takes its events over Flight DoPut, but input \"{name}\" reads files or another \
             server; declare it with kind = \"pushed\" and a schema (or schema_from), or use `windrow run`"
        )));
    }
    let schemas: HashMap<String, arrow::datatypes::SchemaRef> =
        runtime.outputs().into_iter().map(|(step, port, schema)| (port.output_name(&step), schema)).collect();
    let schema_of = |name: &str| {
        schemas
            .get(name)
            .cloned()
            .ok_or_else(|| WindrowError::Internal(format!("output \"{name}\" is not an output of the pipeline")))
    };
    // With checkpoints the driver writes the file outputs itself (part files published at
    // each checkpoint); every other output is written by a reader of the server's stream.
    let driver_checkpoint = match checkpoint {
        None => None,
        Some(config) => {
            let files: Vec<&crate::pipeline::PlannedOutput> =
                outputs.iter().filter(|o| matches!(o.target, crate::pipeline::OutputTarget::File { .. })).collect();
            let named = crate::pipeline::PlannedOutput::file_outputs(&outputs);
            let warn = |w: &str| eprintln!("windrow serve: warning: {w}");
            let (checkpointer, resumed) = crate::checkpoint::Checkpointer::open(config, &mut runtime, &named, warn)?;
            let mut positions: Vec<crate::checkpoint::InputPosition> = inputs
                .iter()
                .map(|n| crate::checkpoint::InputPosition { name: n.clone(), rows: 0, batches: 0, ended: false })
                .collect();
            let mut committed = vec![(0, 0); files.len()];
            if let Some(r) = resumed {
                if r.finished {
                    return Err(WindrowError::Config(format!(
                        "the state directory {} holds a finished server (every input ended, every window \
                         closed); a new run needs a new --state-dir",
                        checkpointer.dir().display()
                    )));
                }
                eprintln!(
                    "windrow serve: resumed from checkpoint {}: {}",
                    checkpointer.stats.resumed_from.unwrap_or_default(),
                    r.inputs
                        .iter()
                        .map(|i| format!("{} from batch {}", i.name, i.batches))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                positions = r.inputs;
                committed = r.outputs.iter().map(|o| (o.parts, o.rows)).collect();
            }
            let mut parts = Vec::with_capacity(files.len());
            for (o, committed) in files.iter().zip(committed) {
                if let Some(sink) = o.open_parts(schema_of(&o.name)?, committed, coalesce_rows, warn)? {
                    parts.push((o.name.clone(), sink));
                }
            }
            let committed = positions.iter().map(|p| p.batches).collect();
            Some(DriverCheckpoint { checkpointer, parts, positions, committed })
        }
    };
    let mut sinks = Vec::with_capacity(outputs.len());
    for out in &outputs {
        if driver_checkpoint.is_some() && matches!(out.target, crate::pipeline::OutputTarget::File { .. }) {
            continue;
        }
        sinks.push((out.name.clone(), out.open(schema_of(&out.name)?, coalesce_rows)?.0));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("windrow-flight")
        .build()
        .map_err(|e| io_err("cannot start the tokio runtime".into(), e))?;
    let verbose = options.log_interval.is_some();
    rt.block_on(async move {
        let server = FlightServer::start_with(runtime, addr, options, driver_checkpoint).await?;
        let writers: Vec<_> =
            sinks.into_iter().map(|(name, sink)| tokio::spawn(write_output(server.url(), name, sink))).collect();
        shutdown_signal(verbose).await;
        let summary = server.shutdown().await;
        // Wait for every writer (each completes its own files) before reporting a failure.
        let mut written = Vec::with_capacity(writers.len());
        let mut failed = None;
        for w in writers {
            match w.await {
                Ok(Ok(s)) => written.push(s),
                Ok(Err(e)) => {
                    failed.get_or_insert(e);
                }
                Err(e) => {
                    failed.get_or_insert(WindrowError::Internal(format!("an output writer failed: {e}")));
                }
            }
        }
        let mut summary = summary?;
        written.append(&mut summary.files);
        match failed {
            Some(e) => Err(e),
            None => Ok((summary, written)),
        }
    })
}

/// Reads output `name` from the server at `url` with `DoGet` until the server ends the stream
/// (its shutdown), writing every batch to `sink`; then completes the sink. A failure (for
/// example a writer that fell further behind than the retention keeps) is printed at once and
/// leaves the file unfinished (`.inprogress`), never a silently shorter file.
async fn write_output(url: String, name: String, sink: Box<dyn crate::sink::Sink>) -> Result<crate::sink::SinkSummary> {
    let result = write_output_inner(url, name.clone(), sink).await;
    if let Err(e) = &result {
        eprintln!("windrow serve: output \"{name}\" could not be written: {e}");
    }
    result
}

async fn write_output_inner(
    url: String,
    name: String,
    mut sink: Box<dyn crate::sink::Sink>,
) -> Result<crate::sink::SinkSummary> {
    use arrow_flight::decode::DecodedPayload;
    use futures::StreamExt;
    let failed = |what: String| WindrowError::Io(std::io::Error::other(format!("output \"{name}\": {what}")));
    let channel = tonic::transport::Endpoint::from_shared(url)
        .map_err(|e| failed(format!("invalid endpoint: {e}")))?
        .connect()
        .await
        .map_err(|e| failed(format!("cannot connect to the server: {e}")))?;
    let mut client = arrow_flight::FlightClient::new(channel);
    let stream = client
        .do_get(arrow_flight::Ticket::new(name.clone().into_bytes()))
        .await
        .map_err(|e| failed(format!("DoGet refused: {e}")))?;
    check_complete(stream.headers(), &name)?;
    let mut stream = stream.into_inner();
    while let Some(next) = stream.next().await {
        let data = next.map_err(|e| failed(format!("stream failed: {e}")))?;
        if let DecodedPayload::RecordBatch(batch) = data.payload {
            sink.write(&batch)?;
        }
    }
    sink.finish()
}

/// Resolves on Ctrl-C (SIGINT) or, on Unix, SIGTERM. If a handler cannot be installed the
/// error is printed and that signal is not awaited.
pub async fn shutdown_signal(verbose: bool) {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            eprintln!("windrow serve: cannot listen for Ctrl-C: {e}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                eprintln!("windrow serve: cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    if verbose {
        eprintln!("windrow serve: shutting down");
    }
}

/// A server started in-process on the current tokio runtime (tests, examples, embedding).
/// Dropping it without [`shutdown`](Self::shutdown) also shuts the server down, in the
/// background.
pub struct FlightServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<Summary>>,
}

impl FlightServer {
    /// Binds `addr` (port 0 picks a free port) and serves `runtime` in a background task.
    ///
    /// # Errors
    /// The address cannot be bound. Must be called within a tokio runtime.
    pub async fn start(runtime: FlowRuntime, addr: SocketAddr, options: ServeOptions) -> Result<FlightServer> {
        Self::start_with(runtime, addr, options, None).await
    }

    async fn start_with(
        runtime: FlowRuntime,
        addr: SocketAddr,
        options: ServeOptions,
        checkpoint: Option<DriverCheckpoint>,
    ) -> Result<FlightServer> {
        let listener = TcpListener::bind(addr).await.map_err(|e| io_err(format!("cannot listen on {addr}"), e))?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve_listener(runtime, listener, options, checkpoint, async move {
            let _ = stopped.await;
        }));
        Ok(FlightServer { addr, stop: Some(stop), task })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`, for `tonic::transport::Endpoint` and [`FlightSource::connect`].
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Shuts down as [`serve`] does on its signal and returns the run's counters.
    ///
    /// # Errors
    /// As [`serve`].
    pub async fn shutdown(mut self) -> Result<Summary> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.map_err(|e| WindrowError::Internal(format!("the Flight server task failed: {e}")))?
    }
}

async fn serve_listener(
    runtime: FlowRuntime,
    listener: TcpListener,
    options: ServeOptions,
    checkpoint: Option<DriverCheckpoint>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<Summary> {
    let addr = listener.local_addr()?;
    let verbose = options.log_interval.is_some();
    let inputs: Vec<_> = runtime.inputs().map(|(n, s)| (n.to_string(), s.clone())).collect();
    let outputs: Vec<_> = runtime.outputs().into_iter().map(|(step, port, s)| (port.output_name(&step), s)).collect();
    let logs: HashMap<String, Arc<OutputLog>> =
        outputs.iter().map(|(n, _)| (n.clone(), Arc::new(OutputLog::new(options.retention)))).collect();
    let flow = runtime.name().to_string();
    if verbose {
        eprintln!("windrow serve: pipeline \"{flow}\" listening on grpc://{addr} (Arrow Flight)");
        for (n, s) in &inputs {
            eprintln!("  input  {n}: DoPut [\"{n}\"] {}", server::describe_schema(s));
        }
        for (n, _) in &outputs {
            eprintln!("  output {n}: DoGet ticket \"{n}\"");
        }
    }

    let names: Vec<String> = inputs.iter().map(|(n, _)| n.clone()).collect();
    let cursors = Arc::new(InputCursors::new(&names, checkpoint.as_ref()));
    let (commands, queue) = std::sync::mpsc::channel::<Command>();
    let driver = Driver {
        runtime,
        logs: logs.clone(),
        timer_interval: options.timer_interval,
        log_interval: options.log_interval,
        checkpoint,
        cursors: Arc::clone(&cursors),
    };
    let driver = std::thread::Builder::new()
        .name("windrow-flight-driver".into())
        .spawn(move || driver.run(queue))
        .map_err(|e| io_err("cannot start the pipeline driver thread".into(), e))?;

    let (stopping_tx, stopping) = watch::channel(false);
    let service = WindrowFlightService {
        inner: Arc::new(Inner {
            flow,
            inputs,
            outputs,
            logs,
            retention: options.retention,
            commands: commands.clone(),
            stopping,
            verbose,
            cursors,
        }),
    };
    let svc = FlightServiceServer::new(service)
        .max_decoding_message_size(options.max_message_bytes)
        .max_encoding_message_size(options.max_message_bytes);
    let (stop_grpc, grpc_stopped) = oneshot::channel::<()>();
    let mut grpc = tokio::spawn(tonic::transport::Server::builder().add_service(svc).serve_with_incoming_shutdown(
        tonic::transport::server::TcpIncoming::from(listener),
        async move {
            let _ = grpc_stopped.await;
        },
    ));

    let early = tokio::select! {
        _ = shutdown => None,
        r = &mut grpc => Some(r),
    };

    // Stop taking batches, then close every window; pushes already queued are applied (and
    // acknowledged) first, since the driver takes commands in order.
    stopping_tx.send_replace(true);
    let (reply, answer) = oneshot::channel();
    let finished = match commands.send(Command::Finish { reply }) {
        Ok(()) => answer.await.unwrap_or_else(|_| Err(driver::driver_gone())),
        Err(_) => Err(driver::driver_gone()),
    };
    drop(commands);
    let _ = stop_grpc.send(());
    let grpc_result = match early {
        Some(r) => Some(r),
        None => match tokio::time::timeout(options.drain_timeout, &mut grpc).await {
            Ok(r) => Some(r),
            Err(_) => {
                if verbose {
                    eprintln!(
                        "windrow serve: readers did not drain within {:?}; closing their connections",
                        options.drain_timeout
                    );
                }
                grpc.abort();
                None
            }
        },
    };
    let joined = tokio::task::spawn_blocking(move || driver.join()).await;
    if !matches!(joined, Ok(Ok(()))) {
        return Err(WindrowError::Internal("the pipeline driver thread panicked".into()));
    }
    match grpc_result {
        Some(Ok(Ok(()))) | None => {}
        Some(Ok(Err(e))) => return Err(io_err(format!("the Flight server on {addr} failed"), e)),
        Some(Err(e)) => return Err(WindrowError::Internal(format!("the Flight server task failed: {e}"))),
    }
    let summary = finished?;
    if verbose && summary.paused {
        eprintln!(
            "windrow serve: paused after {} rows in {} batches: open windows are checkpointed; restart with the same \
             --state-dir to go on, or end every input (DoAction end_input) before shutting down to close them",
            summary.rows_in, summary.batches_in
        );
    } else if verbose {
        eprintln!(
            "windrow serve: stopped after {} rows in {} batches; every window closed and flushed",
            summary.rows_in, summary.batches_in
        );
    }
    Ok(summary)
}
