//! Live outputs as DataFusion streaming tables: a query over one yields rows as the producer
//! sends them (for a window output: as windows close) and ends when the producer is dropped.
//!
//! ```text
//! producer ── LiveSender::send(batch) ──▶ broadcast channel ──▶ every running query's stream
//! ```
//!
//! [`register_flight_output`] does the same for an output of a running `windrow serve`: each
//! query opens its own `DoGet`, so it reads the output from its first retained batch, then
//! windows as they close, and ends when the server shuts down.
//!
//! Each query over a [`register_live`] table sees the batches sent after it started (a broadcast subscription made when the
//! query executes). A query that falls more than the channel's capacity behind fails with an
//! error saying so instead of silently missing rows.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow_flight::{FlightClient, FlightDescriptor, Ticket};
use datafusion::catalog::streaming::StreamingTable;
use datafusion::common::DataFusionError;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::prelude::SessionContext;
use futures::{StreamExt, TryStreamExt};
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

use crate::error::{Result, WindrowError, plan_err};

/// The producer side of a live table: send batches; drop it (or call [`close`](Self::close))
/// to end every query over the table.
pub struct LiveSender {
    name: String,
    schema: SchemaRef,
    sender: broadcast::Sender<RecordBatch>,
}

impl LiveSender {
    /// Sends one batch to every query currently reading the table. Returns how many queries
    /// received it (0 is not an error: nobody is listening).
    ///
    /// # Errors
    /// A batch whose schema differs from the table's.
    pub fn send(&self, batch: RecordBatch) -> Result<usize> {
        if batch.schema().fields() != self.schema.fields() {
            return plan_err(format!(
                "live table \"{}\": batch schema {:?} differs from the table's {:?}",
                self.name,
                batch.schema(),
                self.schema
            ));
        }
        Ok(self.sender.send(batch).unwrap_or(0))
    }

    /// Queries currently reading the table.
    pub fn readers(&self) -> usize {
        self.sender.receiver_count()
    }

    /// Ends the table: running queries finish after the batches already sent.
    pub fn close(self) {}
}

/// One partition of a live table: subscribes to the channel when a query executes it.
#[derive(Debug)]
struct LivePartition {
    name: String,
    schema: SchemaRef,
    sender: broadcast::WeakSender<RecordBatch>,
}

impl PartitionStream for LivePartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let name = self.name.clone();
        // A closed table (producer dropped) reads as empty.
        let stream = match self.sender.upgrade() {
            Some(s) => BroadcastStream::new(s.subscribe())
                .map(move |r| match r {
                    Ok(b) => Ok(b),
                    Err(BroadcastStreamRecvError::Lagged(n)) => Err(DataFusionError::Execution(format!(
                        "query over live table \"{name}\" fell {n} batches behind the producer and missed them; \
                         register the table with a larger capacity"
                    ))),
                })
                .boxed(),
            None => futures::stream::empty().boxed(),
        };
        Box::pin(RecordBatchStreamAdapter::new(Arc::clone(&self.schema), stream))
    }
}

/// Registers a live table `name` with `schema` and returns its producer. `capacity` is how
/// many batches a slow query may fall behind before it fails.
///
/// # Errors
/// A zero capacity, or a name DataFusion refuses.
pub fn register_live(ctx: &SessionContext, name: &str, schema: SchemaRef, capacity: usize) -> Result<LiveSender> {
    if capacity == 0 {
        return plan_err(format!("live table \"{name}\": capacity must be at least 1"));
    }
    let (sender, _) = broadcast::channel(capacity);
    let partition = LivePartition { name: name.to_string(), schema: Arc::clone(&schema), sender: sender.downgrade() };
    let table = StreamingTable::try_new(Arc::clone(&schema), vec![Arc::new(partition)])?.with_infinite_table(true);
    ctx.register_table(name, Arc::new(table)).map_err(WindrowError::from)?;
    Ok(LiveSender { name: name.to_string(), schema, sender })
}

/// Registers output `output` (`<step>.<port>`, e.g. `per_minute.down`) of the `windrow serve`
/// (or any Arrow Flight server) at `endpoint` (`http://HOST:PORT`) as the streaming table
/// `name`. The schema comes from the server's `GetSchema`; every query opens its own `DoGet`,
/// so it sees the output from its first batch, then each batch as windows close, and it ends
/// when the server ends the stream (its shutdown). A query started after the server's
/// retention dropped the output's first batches fails saying so rather than miss them.
///
/// # Errors
/// The server cannot be reached, does not know `output`, or sends a schema that cannot be
/// read; a name DataFusion refuses.
pub async fn register_flight_output(ctx: &SessionContext, name: &str, endpoint: &str, output: &str) -> Result<()> {
    let failed = |what: String| WindrowError::Io(std::io::Error::other(format!("live table \"{name}\": {what}")));
    let channel = tonic::transport::Endpoint::from_shared(endpoint.to_string())
        .map_err(|e| failed(format!("invalid endpoint \"{endpoint}\": {e}")))?
        .connect()
        .await
        .map_err(|e| failed(format!("cannot connect to {endpoint}: {e}")))?;
    let schema = FlightClient::new(channel)
        .get_schema(FlightDescriptor::new_path(vec![output.to_string()]))
        .await
        .map_err(|e| failed(format!("GetSchema of \"{output}\" at {endpoint}: {e}")))?;
    let schema = Arc::new(schema);
    let partition =
        FlightPartition { endpoint: endpoint.to_string(), output: output.to_string(), schema: schema.clone() };
    let table = StreamingTable::try_new(schema, vec![Arc::new(partition)])?.with_infinite_table(true);
    ctx.register_table(name, Arc::new(table)).map_err(WindrowError::from)?;
    Ok(())
}

/// The one partition of a Flight output table: a `DoGet` per query.
#[derive(Debug)]
struct FlightPartition {
    endpoint: String,
    output: String,
    schema: SchemaRef,
}

impl PartitionStream for FlightPartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let (endpoint, output) = (self.endpoint.clone(), self.output.clone());
        let external = |e: String| DataFusionError::Execution(e);
        let stream = futures::stream::once(async move {
            let channel = tonic::transport::Endpoint::from_shared(endpoint.clone())
                .map_err(|e| external(format!("invalid endpoint \"{endpoint}\": {e}")))?
                .connect()
                .await
                .map_err(|e| external(format!("cannot connect to {endpoint}: {e}")))?;
            let batches = FlightClient::new(channel)
                .do_get(Ticket::new(output.clone().into_bytes()))
                .await
                .map_err(|e| external(format!("DoGet \"{output}\" at {endpoint}: {e}")))?;
            crate::flight::check_complete(batches.headers(), &output).map_err(|e| external(e.to_string()))?;
            Ok::<_, DataFusionError>(batches.map_err(move |e| external(format!("reading \"{output}\": {e}"))))
        })
        .try_flatten();
        Box::pin(RecordBatchStreamAdapter::new(Arc::clone(&self.schema), stream))
    }
}
