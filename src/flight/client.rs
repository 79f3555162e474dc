//! [`FlightSource`]: another Flight server's `DoGet` stream as a blocking [`Source`].

use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use arrow_flight::decode::DecodedPayload;
use arrow_flight::{FlightClient, Ticket};
use futures::StreamExt;
use tokio::sync::oneshot;

use crate::error::{Result, WindrowError};
use crate::source::Source;

/// Batches buffered between the network thread and the reader.
const BUFFER: usize = 8;

/// Reads another Flight server's `DoGet(ticket)` stream — for example a `windrow serve`
/// output such as `per_minute.down` — as a [`Source`], so it can feed a
/// [`Dataflow::input`](crate::flow::Dataflow::input).
///
/// A background thread with its own single-threaded tokio runtime holds the connection and
/// hands batches over through a small bounded channel (the network read waits while the
/// reader is behind), so `next_batch` is an ordinary blocking call that works inside and
/// outside async code. The source ends when the server ends the stream (for `windrow serve`:
/// at shutdown, after the final flush). Dropping the source cancels the call.
///
/// The schema is the stream's first message; `windrow serve` sends it at once, other servers
/// may send it only with their first batch, so [`connect`](Self::connect) waits for it (at
/// most the timeout).
pub struct FlightSource {
    schema: SchemaRef,
    batches: Receiver<Result<RecordBatch>>,
    cancel: Option<oneshot::Sender<()>>,
    ended: bool,
}

impl FlightSource {
    /// Connects to `endpoint` (`http://host:port`, or `host:port`) and starts `DoGet(ticket)`;
    /// waits at most 30 s for the connection and the stream's schema.
    ///
    /// # Errors
    /// As [`connect_timeout`](Self::connect_timeout).
    pub fn connect(endpoint: &str, ticket: impl Into<Vec<u8>>) -> Result<Self> {
        Self::connect_timeout(endpoint, ticket, Duration::from_secs(30))
    }

    /// As [`connect`](Self::connect), waiting at most `timeout`.
    ///
    /// # Errors
    /// An invalid endpoint, a server that cannot be reached or refuses the ticket (the
    /// message carries the server's status), or no schema within `timeout`.
    pub fn connect_timeout(endpoint: &str, ticket: impl Into<Vec<u8>>, timeout: Duration) -> Result<Self> {
        let url = if endpoint.contains("://") { endpoint.to_string() } else { format!("http://{endpoint}") };
        let ticket: Vec<u8> = ticket.into();
        let what = format!("Flight source {url} ticket \"{}\"", String::from_utf8_lossy(&ticket));
        let (schema_tx, schema_rx) = sync_channel::<Result<SchemaRef>>(1);
        let (batch_tx, batches) = sync_channel::<Result<RecordBatch>>(BUFFER);
        let (cancel, cancelled) = oneshot::channel::<()>();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| io_err(&what, format!("cannot start a tokio runtime: {e}")))?;
        let thread_what = what.clone();
        std::thread::Builder::new()
            .name("windrow-flight-source".into())
            .spawn(move || {
                rt.block_on(async move {
                    tokio::select! {
                        _ = cancelled => {}
                        _ = read(url, ticket, timeout, thread_what, schema_tx, batch_tx) => {}
                    }
                });
            })
            .map_err(|e| io_err(&what, format!("cannot start its thread: {e}")))?;
        let schema = match schema_rx.recv_timeout(timeout) {
            Ok(s) => s?,
            Err(RecvTimeoutError::Timeout) => {
                return Err(io_err(&what, format!("no schema within {timeout:?}")));
            }
            Err(RecvTimeoutError::Disconnected) => {
                return Err(WindrowError::Internal(format!("{what}: the reader thread stopped")));
            }
        };
        Ok(FlightSource { schema, batches, cancel: Some(cancel), ended: false })
    }
}

fn io_err(what: &str, msg: impl std::fmt::Display) -> WindrowError {
    WindrowError::Io(std::io::Error::other(format!("{what}: {msg}")))
}

/// The network side: connect, `DoGet`, decode; hand the schema, then the batches, over.
/// Sends block while the reader is behind (backpressure); a send fails once the source is
/// dropped, which ends the call.
async fn read(
    url: String,
    ticket: Vec<u8>,
    timeout: Duration,
    what: String,
    schema_tx: SyncSender<Result<SchemaRef>>,
    batch_tx: SyncSender<Result<RecordBatch>>,
) {
    let mut schema_tx = Some(schema_tx);
    let fail = |schema_tx: &mut Option<SyncSender<Result<SchemaRef>>>, e: WindrowError| match schema_tx.take() {
        Some(s) => {
            let _ = s.send(Err(e));
        }
        None => {
            let _ = batch_tx.send(Err(e));
        }
    };
    let endpoint = match tonic::transport::Endpoint::from_shared(url.clone()) {
        Ok(e) => e.connect_timeout(timeout),
        Err(e) => return fail(&mut schema_tx, io_err(&what, format!("invalid endpoint: {e}"))),
    };
    let channel = match endpoint.connect().await {
        Ok(c) => c,
        Err(e) => return fail(&mut schema_tx, io_err(&what, format!("cannot connect: {e}"))),
    };
    let mut client = FlightClient::new(channel);
    let ticket_text = ticket.clone();
    let stream = match client.do_get(Ticket::new(ticket)).await {
        Ok(s) => s,
        Err(e) => return fail(&mut schema_tx, io_err(&what, format!("DoGet refused: {e}"))),
    };
    if let Err(e) = super::check_complete(stream.headers(), &String::from_utf8_lossy(&ticket_text)) {
        return fail(&mut schema_tx, e);
    }
    let mut decoder = stream.into_inner();
    while let Some(next) = decoder.next().await {
        match next {
            Ok(d) => match d.payload {
                DecodedPayload::None => {}
                DecodedPayload::Schema(s) => {
                    if let Some(tx) = schema_tx.take() {
                        let _ = tx.send(Ok(s));
                    }
                }
                DecodedPayload::RecordBatch(b) => {
                    if let Some(tx) = schema_tx.take() {
                        let _ = tx.send(Ok(b.schema()));
                    }
                    if batch_tx.send(Ok(b)).is_err() {
                        return; // the source was dropped
                    }
                }
            },
            Err(e) => return fail(&mut schema_tx, io_err(&what, format!("stream failed: {e}"))),
        }
    }
    if schema_tx.is_some() {
        fail(&mut schema_tx, io_err(&what, "the stream ended without a schema"));
    }
}

impl Source for FlightSource {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn next_batch(&mut self) -> Option<Result<RecordBatch>> {
        if self.ended {
            return None;
        }
        match self.batches.recv() {
            Ok(Ok(b)) => Some(Ok(b)),
            Ok(Err(e)) => {
                self.ended = true;
                Some(Err(e))
            }
            Err(_) => {
                self.ended = true;
                None
            }
        }
    }
}

impl Drop for FlightSource {
    fn drop(&mut self) {
        if let Some(c) = self.cancel.take() {
            let _ = c.send(());
        }
    }
}
