//! `windrow serve` end to end: the binary serves a pipeline file over Arrow Flight, a client
//! puts clicks into its pushed input, SIGTERM closes every window, and the pipeline's file
//! output holds every window — checked against counts computed here from the input rows.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{Int64Type, TimestampMillisecondType};
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::{FlightClient, FlightDescriptor};
use futures::TryStreamExt;
use windrow::source::ParquetSource;

const ROWS: usize = 5_000;

/// Kills the server if the test fails before it exits.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
    }
}

fn clicks() -> Vec<RecordBatch> {
    let root = env!("CARGO_MANIFEST_DIR");
    let (_, batches) = ParquetSource::read_all(format!("{root}/data/clicks.parquet")).expect("read clicks");
    let first = batches[0].slice(0, ROWS);
    // Several DoPut batches, as a producer would send them.
    (0..ROWS).step_by(1000).map(|o| first.slice(o, 1000)).collect()
}

#[test]
fn serve_takes_doput_and_writes_every_window_on_sigterm() {
    let root = env!("CARGO_MANIFEST_DIR");
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("windows.parquet");
    // wait = forever: nothing closes before shutdown, so the result does not depend on timing.
    let toml = format!(
        r#"
name = "serve_test"

[[input]]
name = "clicks"
kind = "pushed"
schema_from = "{root}/data/clicks.parquet"

[[step]]
id = "per_minute"
input = "clicks"
key = ["user"]
time = "ts"
wait = "forever"
window = {{ kind = "tumbling", length = "1m" }}
aggregates = ["count"]

[[output]]
from = "per_minute.down"
path = "{}"
"#,
        out.display()
    );
    let pipeline = dir.path().join("serve.toml");
    std::fs::write(&pipeline, toml).expect("write pipeline");

    let child = Command::new(assert_cmd::cargo::cargo_bin("windrow"))
        .args(["serve", "--listen", "127.0.0.1:0", "--log-every", "1s"])
        .arg(&pipeline)
        .stderr(Stdio::piped())
        .spawn()
        .expect("start windrow serve");
    let mut server = Server(child);
    let stderr = server.0.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut log = Vec::new();
    let addr = loop {
        let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|_| panic!("no listening line: {log:?}"));
        log.push(line.clone());
        if let Some((_, addr)) = line.split_once("listening on grpc://") {
            break addr.split_whitespace().next().expect("address").to_string();
        }
    };

    let batches = clicks();
    let rt = tokio::runtime::Runtime::new().expect("tokio");
    let acks = rt.block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .expect("endpoint")
            .connect()
            .await
            .expect("connect");
        let mut client = FlightClient::new(channel);
        let data = FlightDataEncoderBuilder::new()
            .with_flight_descriptor(Some(FlightDescriptor::new_path(vec!["clicks".to_string()])))
            .build(futures::stream::iter(batches.clone().into_iter().map(Ok)));
        let acks: Vec<_> = tokio::time::timeout(Duration::from_secs(60), async {
            client.do_put(data).await.expect("DoPut").try_collect().await.expect("acks")
        })
        .await
        .expect("DoPut within 60 s");
        acks
    });
    // One acknowledgement per batch the server applied (the encoder may split a batch into
    // several messages), numbered 0, 1, …
    let seqs: Vec<String> = acks.iter().map(|a| String::from_utf8_lossy(&a.app_metadata).into_owned()).collect();
    let expected_seqs: Vec<String> = (0..acks.len()).map(|i| i.to_string()).collect();
    assert!(!acks.is_empty());
    assert_eq!(seqs, expected_seqs);

    let pid = server.0.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().expect("kill").success());
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = server.0.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "windrow serve did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    log.extend(rx.try_iter());
    assert!(status.success(), "windrow serve failed: {log:#?}");

    // Expected, from the input rows alone: one window per (user, minute), counts summing to
    // the rows put.
    let mut groups = HashSet::new();
    for b in &batches {
        let users = b.column_by_name("user").expect("user").as_string::<i32>();
        let ts = b.column_by_name("ts").expect("ts").as_primitive::<TimestampMillisecondType>();
        for r in 0..b.num_rows() {
            groups.insert((users.value(r).to_string(), ts.value(r).div_euclid(60_000)));
        }
    }
    let (_, written) = ParquetSource::read_all(&out).expect("read the served output");
    let windows: usize = written.iter().map(RecordBatch::num_rows).sum();
    let counted: i64 = written
        .iter()
        .map(|b| b.column_by_name("count").expect("count column").as_primitive::<Int64Type>())
        .map(|c| c.iter().flatten().sum::<i64>())
        .sum();
    assert_eq!(windows, groups.len());
    assert_eq!(counted, ROWS as i64);
    assert!(log.iter().any(|l| l.contains("shutting down")), "{log:#?}");
}

#[test]
fn serve_refuses_file_inputs_with_a_hint() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new(assert_cmd::cargo::cargo_bin("windrow"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .arg(format!("{root}/examples/pipelines/clicks_per_minute.toml"))
        .output()
        .expect("run windrow serve");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("input \"clicks\"") && err.contains("kind = \"pushed\""), "{err}");
}
