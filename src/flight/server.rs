//! The `FlightService` over a running pipeline: `ListFlights`, `GetFlightInfo`, `GetSchema`,
//! `DoPut` into inputs, `DoGet` of outputs, and the `end_input` action. See the module docs of
//! [`crate::flight`] for the contract.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc::Sender;

use arrow::array::ArrayRef;
use arrow::compute::cast;
use arrow::datatypes::{DataType, Schema, SchemaRef};
use arrow::ipc::writer::IpcWriteOptions;
use arrow::record_batch::RecordBatch;
use arrow_flight::decode::{DecodedPayload, FlightDataDecoder};
use arrow_flight::encode::{DictionaryHandling, FlightDataEncoderBuilder};
use arrow_flight::error::FlightError;
use arrow_flight::flight_descriptor::DescriptorType;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::{
    Action, ActionType, Criteria, Empty, FlightData, FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest,
    HandshakeResponse, PollInfo, PutResult, SchemaAsIpc, SchemaResult, Ticket,
};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use tokio::sync::{oneshot, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::driver::{Command, driver_gone};
use super::retention::{OutputLog, Retention};
use crate::error::WindrowError;

/// The response header of a `DoGet` that carries the sequence number of the first batch in
/// the stream (`0` unless retention dropped the head of the output).
pub const FIRST_SEQ_HEADER: &str = "windrow-first-seq";

/// The `DoAction` type that ends an input (body: the input name, UTF-8).
pub const END_INPUT_ACTION: &str = "end_input";

pub(crate) struct Inner {
    pub(crate) flow: String,
    pub(crate) inputs: Vec<(String, SchemaRef)>,
    pub(crate) outputs: Vec<(String, SchemaRef)>,
    pub(crate) logs: HashMap<String, Arc<OutputLog>>,
    pub(crate) retention: Retention,
    pub(crate) commands: Sender<Command>,
    /// Per input: the next batch number, and how many batches the last checkpoint covers.
    pub(crate) cursors: Arc<super::driver::InputCursors>,
    /// `true` once shutdown began: `DoPut` streams stop taking batches.
    pub(crate) stopping: watch::Receiver<bool>,
    pub(crate) verbose: bool,
}

/// The Flight service of one pipeline (cheap to clone: handlers share one state).
#[derive(Clone)]
pub(crate) struct WindrowFlightService {
    pub(crate) inner: Arc<Inner>,
}

/// An error from the pipeline as a gRPC status: what the user must fix is `invalid_argument`,
/// the rest `internal`.
pub(crate) fn status_of(e: &WindrowError) -> Status {
    match e {
        WindrowError::Config(_) | WindrowError::Plan(_) | WindrowError::Data(_) => {
            Status::invalid_argument(e.to_string())
        }
        _ => Status::internal(e.to_string()),
    }
}

fn names(items: &[(String, SchemaRef)]) -> String {
    if items.is_empty() {
        return "(none)".into();
    }
    items.iter().map(|(n, _)| format!("\"{n}\"")).collect::<Vec<_>>().join(", ")
}

fn describe_field(f: &arrow::datatypes::Field) -> String {
    format!("{}: {}{}", f.name(), f.data_type(), if f.is_nullable() { "" } else { " not null" })
}

pub(crate) fn describe_schema(s: &Schema) -> String {
    format!("[{}]", s.fields().iter().map(|f| describe_field(f)).collect::<Vec<_>>().join(", "))
}

/// How a `DoPut` stream's batches become the input's batches: the same columns, with
/// dictionary columns that the client sent hydrated (arrow-flight's default) cast back.
#[derive(Debug)]
pub(crate) struct Coercion {
    expected: SchemaRef,
    casts: Vec<Option<DataType>>,
}

impl Coercion {
    /// Rebinds `batch` to the input's schema (casting hydrated dictionaries back).
    pub(crate) fn apply(&self, batch: &RecordBatch) -> Result<RecordBatch, String> {
        let cols: Vec<ArrayRef> = batch
            .columns()
            .iter()
            .zip(&self.casts)
            .map(|(c, to)| match to {
                Some(t) => cast(c, t).map_err(|e| e.to_string()),
                None => Ok(c.clone()),
            })
            .collect::<Result<_, _>>()?;
        RecordBatch::try_new(self.expected.clone(), cols).map_err(|e| e.to_string())
    }
}

/// Compares the schema a `DoPut` client sent with the input's schema.
///
/// Accepted: the same field names in the same order, each with the input's type (or, for a
/// dictionary field, the dictionary's value type: arrow-flight clients hydrate dictionaries by
/// default), nullable only where the input is nullable. Field and schema metadata are ignored.
///
/// # Errors
/// A message naming every difference: missing fields, extra fields, types, nullability, order.
pub(crate) fn check_put_schema(input: &str, expected: &SchemaRef, got: &Schema) -> Result<Coercion, String> {
    let mut problems = Vec::new();
    let missing: Vec<String> = expected
        .fields()
        .iter()
        .filter(|f| got.field_with_name(f.name()).is_err())
        .map(|f| describe_field(f))
        .collect();
    if !missing.is_empty() {
        problems.push(format!("missing field(s) {}", missing.join(", ")));
    }
    let extra: Vec<String> = got
        .fields()
        .iter()
        .filter(|f| expected.field_with_name(f.name()).is_err())
        .map(|f| describe_field(f))
        .collect();
    if !extra.is_empty() {
        problems.push(format!("extra field(s) {}", extra.join(", ")));
    }
    for want in expected.fields() {
        let Ok(have) = got.field_with_name(want.name()) else { continue };
        let hydrated = matches!(want.data_type(), DataType::Dictionary(_, v) if v.as_ref() == have.data_type());
        if want.data_type() != have.data_type() && !hydrated {
            problems.push(format!(
                "field \"{}\" has type {}, the input expects {}",
                want.name(),
                have.data_type(),
                want.data_type()
            ));
        }
        if have.is_nullable() && !want.is_nullable() {
            problems.push(format!(
                "field \"{}\" is declared nullable, the input's is not null (declare it non-nullable, e.g. \
                 pyarrow.field(\"{}\", ..., nullable=False))",
                want.name(),
                want.name()
            ));
        }
    }
    if problems.is_empty() {
        let order_want: Vec<&str> = expected.fields().iter().map(|f| f.name().as_str()).collect();
        let order_got: Vec<&str> = got.fields().iter().map(|f| f.name().as_str()).collect();
        if order_want != order_got {
            problems.push(format!(
                "fields are in a different order: [{}], the input expects [{}]",
                order_got.join(", "),
                order_want.join(", ")
            ));
        }
    }
    if !problems.is_empty() {
        return Err(format!(
            "DoPut to input \"{input}\": the stream's schema does not match the input's: {}. The input's schema is {}",
            problems.join("; "),
            describe_schema(expected)
        ));
    }
    let casts = expected
        .fields()
        .iter()
        .zip(got.fields())
        .map(|(want, have)| (want.data_type() != have.data_type()).then(|| want.data_type().clone()))
        .collect();
    Ok(Coercion { expected: expected.clone(), casts })
}

impl WindrowFlightService {
    fn input(&self, name: &str) -> Option<&SchemaRef> {
        self.inner.inputs.iter().find(|(n, _)| n == name).map(|(_, s)| s)
    }

    fn output(&self, name: &str) -> Option<&SchemaRef> {
        self.inner.outputs.iter().find(|(n, _)| n == name).map(|(_, s)| s)
    }

    /// `input; next batch N`, with checkpoints `; checkpointed M`, and `; ended` once
    /// `end_input` was applied. A producer keeps its batches from `M` on: after a restart the
    /// server goes on from a checkpoint at or after `M` and reports where (`next batch`).
    fn input_metadata(&self, name: &str) -> String {
        let (next, checkpointed, ended) = self.inner.cursors.get(name);
        let mut text = format!("input; next batch {next}");
        if self.inner.cursors.checkpointing {
            text.push_str(&format!("; checkpointed {checkpointed}"));
        }
        if ended {
            text.push_str("; ended");
        }
        text
    }

    fn unknown(&self, what: &str, name: &str) -> Status {
        Status::not_found(format!(
            "pipeline \"{}\" has no {what} \"{name}\"; its inputs are {} and its outputs are {}",
            self.inner.flow,
            names(&self.inner.inputs),
            names(&self.inner.outputs)
        ))
    }

    /// The one-element path of a descriptor.
    fn path_name(&self, rpc: &str, d: Option<&FlightDescriptor>) -> Result<String, Status> {
        let hint = || {
            format!(
                "{rpc} needs a path descriptor of one element, an input or output name; inputs: {}; outputs: {}",
                names(&self.inner.inputs),
                names(&self.inner.outputs)
            )
        };
        let Some(d) = d else { return Err(Status::invalid_argument(format!("no flight descriptor: {}", hint()))) };
        if d.r#type != DescriptorType::Path as i32 || d.path.len() != 1 {
            return Err(Status::invalid_argument(format!(
                "descriptor {:?} (type {}, {} path elements): {}",
                d.path,
                d.r#type,
                d.path.len(),
                hint()
            )));
        }
        Ok(d.path[0].clone())
    }

    fn info(&self, name: &str) -> Result<FlightInfo, Status> {
        let arrow_err = |e: arrow::error::ArrowError| Status::internal(format!("encoding the schema of {name}: {e}"));
        let desc = FlightDescriptor::new_path(vec![name.to_string()]);
        if let Some(schema) = self.input(name) {
            return Ok(FlightInfo::new()
                .try_with_schema(schema)
                .map_err(arrow_err)?
                .with_descriptor(desc)
                .with_app_metadata(self.input_metadata(name)));
        }
        if let Some(schema) = self.output(name) {
            let (first, next) = self.inner.logs.get(name).map_or((0, 0), |l| l.bounds());
            return Ok(FlightInfo::new()
                .try_with_schema(schema)
                .map_err(arrow_err)?
                .with_descriptor(desc)
                .with_endpoint(FlightEndpoint::new().with_ticket(Ticket::new(name.to_string())))
                .with_ordered(true)
                .with_app_metadata(format!("output; retained batches {first}..{next}")));
        }
        Err(self.unknown("input or output", name))
    }

    /// Reads a `DoPut` stream up to its schema: the input it names and how its batches fit.
    async fn open_put(
        &self,
        mut incoming: Streaming<FlightData>,
    ) -> Result<(String, Coercion, FlightDataDecoder), Status> {
        let first = incoming.message().await?.ok_or_else(|| {
            Status::invalid_argument(format!(
                "empty DoPut stream: the first message must carry a path descriptor naming an input ({})",
                names(&self.inner.inputs)
            ))
        })?;
        let input = self.path_name("DoPut", first.flight_descriptor.as_ref())?;
        let expected = self.input(&input).cloned().ok_or_else(|| {
            Status::not_found(format!(
                "pipeline \"{}\" has no input \"{input}\"; its inputs are {}",
                self.inner.flow,
                names(&self.inner.inputs)
            ))
        })?;
        let data = futures::stream::once(async { Ok(first) }).chain(incoming.map_err(FlightError::from));
        let mut decoder = FlightDataDecoder::new(data);
        let sent = loop {
            match decoder.next().await {
                Some(Ok(d)) => match d.payload {
                    DecodedPayload::Schema(s) => break s,
                    DecodedPayload::None => continue,
                    DecodedPayload::RecordBatch(_) => {
                        return Err(Status::invalid_argument("DoPut: a record batch arrived before the schema"));
                    }
                },
                Some(Err(e)) => return Err(Status::from(e)),
                None => return Err(Status::invalid_argument(format!("DoPut to \"{input}\" ended before its schema"))),
            }
        };
        let coercion = check_put_schema(&input, &expected, &sent).map_err(Status::invalid_argument)?;
        Ok((input, coercion, decoder))
    }

    fn send(&self, cmd: Command) -> Result<(), Status> {
        self.inner.commands.send(cmd).map_err(|_| status_of(&driver_gone()))
    }
}

/// One `DoPut` stream: applies batches one at a time and acknowledges each after it was
/// applied and its outputs were published.
async fn put_loop(
    service: WindrowFlightService,
    input: String,
    mut coercion: Coercion,
    mut decoder: FlightDataDecoder,
    acks: tokio::sync::mpsc::Sender<Result<PutResult, Status>>,
) {
    let inner = service.inner.clone();
    let mut stopping = inner.stopping.clone();
    let mut acked = 0u64;
    let fail = |status: Status| {
        let acks = acks.clone();
        async move {
            let _ = acks.send(Err(status)).await;
        }
    };
    loop {
        let next = tokio::select! {
            biased;
            _ = async { stopping.wait_for(|s| *s).await.is_ok() } => {
                fail(Status::unavailable(format!(
                    "server is shutting down: DoPut to \"{input}\" stopped after {acked} acknowledged batches; \
                     every acknowledged batch was applied"
                )))
                .await;
                return;
            }
            n = decoder.next() => n,
        };
        let data = match next {
            None => break,
            Some(Err(e)) => {
                if inner.verbose {
                    eprintln!(
                        "windrow serve: DoPut to \"{input}\" ended mid-stream after {acked} acknowledged batches: {e}"
                    );
                }
                fail(Status::from(e)).await;
                return;
            }
            Some(Ok(d)) => d,
        };
        let batch = match data.payload {
            DecodedPayload::None => continue,
            DecodedPayload::Schema(s) => {
                let Some(expected) = service.input(&input).cloned() else { return };
                match check_put_schema(&input, &expected, &s) {
                    Ok(c) => coercion = c,
                    Err(msg) => return fail(Status::invalid_argument(msg)).await,
                }
                continue;
            }
            DecodedPayload::RecordBatch(b) => b,
        };
        let batch = match coercion.apply(&batch) {
            Ok(b) => b,
            Err(e) => {
                return fail(Status::invalid_argument(format!(
                    "DoPut to \"{input}\": batch {acked} of this stream does not fit the input's schema: {e}"
                )))
                .await;
            }
        };
        let (reply, answer) = oneshot::channel();
        if let Err(s) = service.send(Command::Push { input: input.clone(), batch, reply }) {
            return fail(s).await;
        }
        match answer.await {
            Ok(Ok(seq)) => {
                acked += 1;
                let ack = PutResult { app_metadata: seq.to_string().into() };
                if acks.send(Ok(ack)).await.is_err() {
                    // The client went away; the batch was applied all the same.
                    return;
                }
            }
            Ok(Err(e)) => return fail(status_of(&e)).await,
            Err(_) => {
                return fail(Status::unavailable(format!(
                    "server is shutting down: batch {acked} of this DoPut to \"{input}\" was not applied"
                )))
                .await;
            }
        }
    }
}

#[tonic::async_trait]
impl FlightService for WindrowFlightService {
    type HandshakeStream = BoxStream<'static, Result<HandshakeResponse, Status>>;
    type ListFlightsStream = BoxStream<'static, Result<FlightInfo, Status>>;
    type DoGetStream = BoxStream<'static, Result<FlightData, Status>>;
    type DoPutStream = BoxStream<'static, Result<PutResult, Status>>;
    type DoActionStream = BoxStream<'static, Result<arrow_flight::Result, Status>>;
    type ListActionsStream = BoxStream<'static, Result<ActionType, Status>>;
    type DoExchangeStream = BoxStream<'static, Result<FlightData, Status>>;

    async fn handshake(
        &self,
        _request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        Err(Status::unimplemented("windrow serve needs no handshake"))
    }

    /// One `FlightInfo` per input, then one per output (the `criteria` are ignored).
    async fn list_flights(&self, _request: Request<Criteria>) -> Result<Response<Self::ListFlightsStream>, Status> {
        let all = self.inner.inputs.iter().chain(&self.inner.outputs);
        let infos: Vec<Result<FlightInfo, Status>> = all.map(|(n, _)| self.info(n)).collect();
        Ok(Response::new(futures::stream::iter(infos).boxed()))
    }

    async fn get_flight_info(&self, request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        let name = self.path_name("GetFlightInfo", Some(request.get_ref()))?;
        Ok(Response::new(self.info(&name)?))
    }

    async fn poll_flight_info(&self, _request: Request<FlightDescriptor>) -> Result<Response<PollInfo>, Status> {
        Err(Status::unimplemented("windrow serve answers GetFlightInfo at once; use it instead of PollFlightInfo"))
    }

    async fn get_schema(&self, request: Request<FlightDescriptor>) -> Result<Response<SchemaResult>, Status> {
        let name = self.path_name("GetSchema", Some(request.get_ref()))?;
        let schema =
            self.input(&name).or_else(|| self.output(&name)).ok_or_else(|| self.unknown("input or output", &name))?;
        let result = SchemaAsIpc::new(schema, &IpcWriteOptions::default())
            .try_into()
            .map_err(|e: arrow::error::ArrowError| Status::internal(format!("encoding the schema of {name}: {e}")))?;
        Ok(Response::new(result))
    }

    /// Streams an output from its oldest retained batch, then live until shutdown.
    async fn do_get(&self, request: Request<Ticket>) -> Result<Response<Self::DoGetStream>, Status> {
        let ticket = request.into_inner().ticket;
        let name = std::str::from_utf8(&ticket)
            .map_err(|_| {
                Status::invalid_argument(format!("the ticket must be an output name in UTF-8, got {ticket:?}"))
            })?
            .to_string();
        let (Some(schema), Some(log)) = (self.output(&name).cloned(), self.inner.logs.get(&name).cloned()) else {
            return Err(Status::not_found(format!(
                "pipeline \"{}\" has no output \"{name}\"; its outputs are {}",
                self.inner.flow,
                names(&self.inner.outputs)
            )));
        };
        let sub = log.subscribe();
        let first = sub.cursor();
        let retention = self.inner.retention;
        let batches = futures::stream::unfold(sub, move |mut sub| {
            let name = name.clone();
            async move {
                let item = sub.next().await?.map_err(|gap| {
                    FlightError::Tonic(Box::new(Status::data_loss(format!(
                        "output \"{name}\": this reader fell behind and batches {}..{} were dropped by retention \
                         (at most {} batches / {} bytes are kept); call DoGet again to continue from batch {}",
                        gap.from, gap.to, retention.max_batches, retention.max_bytes, gap.to
                    ))))
                });
                Some((item, sub))
            }
        });
        let data = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .with_dictionary_handling(DictionaryHandling::Resend)
            .build(batches)
            .map_err(Status::from)
            .boxed();
        let mut response = Response::new(data);
        response.metadata_mut().insert(FIRST_SEQ_HEADER, first.into());
        Ok(response)
    }

    /// Appends a stream of batches to the input named by the descriptor's one path element.
    async fn do_put(&self, request: Request<Streaming<FlightData>>) -> Result<Response<Self::DoPutStream>, Status> {
        if *self.inner.stopping.borrow() {
            return Err(Status::unavailable("server is shutting down: it takes no more batches"));
        }
        // Answer at once and read the stream in a task: a client may wait for the response
        // before it sends its first message (arrow-flight's encoder sends the schema only with
        // the first batch). Refusals (descriptor, schema) arrive as the stream's status.
        let (acks, rx) = tokio::sync::mpsc::channel(16);
        let service = self.clone();
        let incoming = request.into_inner();
        tokio::spawn(async move {
            let mut stopping = service.inner.stopping.clone();
            let opened = tokio::select! {
                biased;
                _ = async { stopping.wait_for(|s| *s).await.is_ok() } => {
                    Err(Status::unavailable("server is shutting down: it takes no more batches"))
                }
                r = service.open_put(incoming) => r,
            };
            match opened {
                Ok((input, coercion, decoder)) => put_loop(service, input, coercion, decoder, acks).await,
                Err(status) => {
                    let _ = acks.send(Err(status)).await;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx).boxed()))
    }

    /// `end_input` (body: input name): the input takes no more batches; joins may close
    /// windows that waited for it.
    async fn do_action(&self, request: Request<Action>) -> Result<Response<Self::DoActionStream>, Status> {
        let action = request.into_inner();
        if action.r#type != END_INPUT_ACTION {
            return Err(Status::unimplemented(format!(
                "unknown action \"{}\"; windrow serve knows \"{END_INPUT_ACTION}\"",
                action.r#type
            )));
        }
        let input = String::from_utf8(action.body.to_vec())
            .map_err(|_| Status::invalid_argument("end_input: the body must be an input name in UTF-8"))?;
        if self.input(&input).is_none() {
            return Err(self.unknown("input", &input));
        }
        let (reply, answer) = oneshot::channel();
        self.send(Command::EndInput { input, reply })?;
        answer.await.map_err(|_| status_of(&driver_gone()))?.map_err(|e| status_of(&e))?;
        Ok(Response::new(futures::stream::empty().boxed()))
    }

    async fn list_actions(&self, _request: Request<Empty>) -> Result<Response<Self::ListActionsStream>, Status> {
        let end = ActionType {
            r#type: END_INPUT_ACTION.into(),
            description: "End an input (body: its name): it takes no more batches".into(),
        };
        Ok(Response::new(futures::stream::iter([Ok(end)]).boxed()))
    }

    async fn do_exchange(
        &self,
        _request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        Err(Status::unimplemented("windrow serve takes batches with DoPut and serves outputs with DoGet"))
    }
}

#[cfg(test)]
mod tests {
    use arrow::datatypes::Field;

    use super::*;

    fn expected() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("user", DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)), false),
            Field::new("ts", DataType::Int64, false),
            Field::new("page", DataType::Utf8, true),
        ]))
    }

    #[test]
    fn accepts_the_same_schema_and_hydrated_dictionaries_and_non_null_for_nullable() {
        let same = check_put_schema("clicks", &expected(), &expected()).unwrap();
        assert!(same.casts.iter().all(Option::is_none));
        let hydrated = Schema::new(vec![
            Field::new("user", DataType::Utf8, false),
            Field::new("ts", DataType::Int64, false),
            Field::new("page", DataType::Utf8, false),
        ]);
        let c = check_put_schema("clicks", &expected(), &hydrated).unwrap();
        assert_eq!(c.casts[0], Some(expected().field(0).data_type().clone()));
    }

    #[test]
    fn names_every_difference() {
        let got = Schema::new(vec![
            Field::new("user", DataType::Utf8, true),
            Field::new("ts", DataType::Utf8, false),
            Field::new("referrer", DataType::Utf8, true),
        ]);
        let msg = check_put_schema("clicks", &expected(), &got).unwrap_err();
        for part in [
            "input \"clicks\"",
            "missing field(s) page: Utf8",
            "extra field(s) referrer: Utf8",
            "field \"ts\" has type Utf8, the input expects Int64",
            "field \"user\" is declared nullable",
        ] {
            assert!(msg.contains(part), "{part:?} not in {msg}");
        }
    }

    #[test]
    fn names_a_different_order() {
        let e = expected();
        let got = Schema::new(vec![e.field(1).clone(), e.field(0).clone(), e.field(2).clone()]);
        let msg = check_put_schema("clicks", &e, &got).unwrap_err();
        assert!(msg.contains("different order: [ts, user, page]"), "{msg}");
    }
}
