//! The `windrow` binary on the bundled data: the demo, every checked-in pipeline, `gen`
//! then `run`, and the messages for bad input.

#![allow(clippy::unwrap_used, reason = "a test should fail loudly on an unexpected error")]

mod common;

use std::path::{Path, PathBuf};

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use assert_cmd::Command;
use chrono::TimeDelta;
use common::thousands;
use windrow::flow::Dataflow;
use windrow::prelude::*;
use windrow::source::{CsvSource, IpcSource, ParquetSource, ReadOptions, Source};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn windrow() -> Command {
    let mut cmd = Command::cargo_bin("windrow").unwrap();
    cmd.current_dir(root());
    cmd
}

/// Runs and returns (success, stdout, stderr).
fn run(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd.output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

fn read(mut src: impl Source) -> Vec<RecordBatch> {
    let mut out = Vec::new();
    while let Some(b) = src.next_batch() {
        out.push(b.unwrap());
    }
    out
}

fn rows(batches: &[RecordBatch]) -> usize {
    batches.iter().map(RecordBatch::num_rows).sum()
}

fn sum_i64(batches: &[RecordBatch], col: &str) -> i64 {
    batches
        .iter()
        .map(|b| b.column_by_name(col).unwrap().as_primitive::<Int64Type>().iter().flatten().sum::<i64>())
        .sum()
}

/// The library's per-user 1-minute count over the clicks (wait `wait`), run directly:
/// (windows, late rows).
fn library_counts(windower: impl Into<Windower>, wait: TimeDelta) -> (usize, usize) {
    let mut flow = Dataflow::new("check");
    let src = ParquetSource::open(root().join("data/clicks.parquet"), 50_000).unwrap();
    let clicks = flow.input("clicks", src);
    let clock = EventClock::new("ts").wait_for_system_duration(wait).unwrap();
    flow.window(&clicks, count_window("c", clicks.schema(), clock, windower, KeySpec::columns(["user"]))).unwrap();
    let out = flow.run().unwrap();
    let [down, late, _, _] = out["c"].row_counts();
    (down, late)
}

#[test]
fn demo_prints_the_closed_windows_and_a_summary() {
    let (ok, stdout, stderr) = run(windrow().arg("--limit").arg("3"));
    assert!(ok, "{stderr}");
    // data/README.md: the demo's settings yield 62,488 windows and 1,357 late rows.
    assert!(stdout.contains("windows.down: first 3 of 62488 rows"), "{stdout}");
    assert!(stdout.contains("rows in         200,000"), "{stdout}");
    assert!(stdout.contains("62,488 windows closed") && stdout.contains("1,357 late rows"), "{stdout}");
    let (ok, stdout, _) = run(windrow().arg("run").arg("--limit").arg("1"));
    assert!(ok && stdout.contains("first 1 of 62488 rows"), "{stdout}");
}

#[test]
fn clicks_per_minute_pipeline_writes_rolled_windows_and_late_rows() {
    let out = tempfile::tempdir().unwrap();
    let (ok, stdout, stderr) =
        run(windrow().args(["run", "examples/pipelines/clicks_per_minute.toml", "--out-dir"]).arg(out.path()));
    assert!(ok, "{stderr}");
    assert!(stdout.contains("per_minute.down: first 5 of 62488 rows"), "{stdout}");
    let dir = out.path().join("out/clicks_per_minute");
    let parts: Vec<_> = std::fs::read_dir(dir.join("windows")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(parts.len(), 4, "{parts:?}"); // 62,488 rows at 20,000 per file
    let down = read(ParquetSource::open(dir.join("windows"), 65_536).unwrap());
    let late = read(CsvSource::open_with(dir.join("late.csv"), &ReadOptions::default()).unwrap());
    let (windows, late_rows) =
        library_counts(TumblingWindower::new(TimeDelta::minutes(1)).unwrap(), TimeDelta::seconds(30));
    assert_eq!((rows(&down), rows(&late)), (windows, late_rows));
    // Every click is in exactly one window or late.
    assert_eq!(sum_i64(&down, "count") as usize + rows(&late), 200_000);
}

#[test]
fn sessions_pipeline_writes_sessions_and_their_metadata() {
    let out = tempfile::tempdir().unwrap();
    let (ok, stdout, stderr) =
        run(windrow().args(["run", "examples/pipelines/sessions.toml", "--out-dir"]).arg(out.path()));
    assert!(ok, "{stderr}");
    let dir = out.path().join("out/sessions");
    let down = read(IpcSource::open_with(dir.join("sessions.arrow"), &ReadOptions::default()).unwrap());
    let meta = read(ParquetSource::open(dir.join("meta.parquet"), 65_536).unwrap());
    let (sessions, late) = library_counts(SessionWindower::new(TimeDelta::seconds(30)).unwrap(), TimeDelta::minutes(1));
    assert_eq!(rows(&down), sessions);
    assert_eq!(rows(&meta), sessions);
    assert_eq!(sum_i64(&down, "count") as usize + late, 200_000);
    assert!(stdout.contains(&format!("{} windows closed", thousands(sessions))), "{stdout}");
    assert!(stdout.contains(&format!("{} late rows", thousands(late))), "{stdout}");
}

#[test]
fn sliding_and_join_pipelines_run_on_the_bundled_data() {
    let out = tempfile::tempdir().unwrap();
    let late_path = out.path().join("pages_late.parquet");
    let (ok, _, stderr) = run(windrow()
        .args(["run", "examples/pipelines/sliding_pages.toml", "--out-dir"])
        .arg(out.path())
        .arg("--output")
        .arg(format!("pages.late={}", late_path.display())));
    assert!(ok, "{stderr}");
    let pages =
        read(CsvSource::open_with(out.path().join("out/sliding_pages/pages.csv"), &ReadOptions::default()).unwrap());
    let late = read(ParquetSource::open(&late_path, 65_536).unwrap());
    // 5-minute windows every minute: every click belongs to 5 windows, and a late click is
    // reported once per window it missed.
    assert_eq!(sum_i64(&pages, "count") as usize + rows(&late), 5 * 200_000);

    let (ok, stdout, stderr) =
        run(windrow().args(["run", "examples/pipelines/join.toml", "--out-dir"]).arg(out.path()));
    assert!(ok, "{stderr}");
    let joined = read(ParquetSource::open(out.path().join("out/join/user_hours.parquet"), 65_536).unwrap());
    let names: Vec<String> = joined[0].schema().fields().iter().map(|f| f.name().clone()).collect();
    assert_eq!(names, ["user", "window_id", "window_start", "window_end", "views", "transfers"]);
    assert!(stdout.contains(&format!("user_hours.down: first 5 of {} rows", rows(&joined))), "{stdout}");
}

/// `shared/bench/peers.py --data FILE` accepts only its own schema (nullability included), so
/// that key counts other than its 1000 can be compared with a `windrow gen` file.
#[test]
fn gen_writes_the_peer_benchmark_schema() {
    use arrow::datatypes::{DataType, TimeUnit};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("events.parquet");
    let (ok, _, stderr) = run(windrow().args(["gen", "--rows", "1000", "--keys", "100000", "--out"]).arg(&data));
    assert!(ok, "{stderr}");
    let schema = ParquetSource::open(&data, 65_536).unwrap().schema();
    let fields: Vec<(&str, &DataType, bool)> =
        schema.fields().iter().map(|f| (f.name().as_str(), f.data_type(), f.is_nullable())).collect();
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    assert_eq!(fields, [("key", &DataType::Utf8, true), ("ts", &ts, true), ("value", &DataType::Float64, true)]);
}

#[test]
fn gen_spacing_moves_only_the_base_times() {
    use arrow::datatypes::TimestampMicrosecondType;
    let dir = tempfile::tempdir().unwrap();
    let read = |spacing: Option<&str>| {
        let data = dir.path().join(format!("events-{}.parquet", spacing.unwrap_or("default")));
        let mut cmd = windrow();
        cmd.args(["gen", "--rows", "5000", "--keys", "300", "--batch-rows", "700", "--out"]).arg(&data);
        if let Some(s) = spacing {
            cmd.args(["--spacing", s]);
        }
        let (ok, stdout, stderr) = run(&mut cmd);
        assert!(ok, "{stderr}");
        let batches: Vec<RecordBatch> = ParquetSource::read_all(&data).unwrap().1;
        let batch = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
        (stdout, batch)
    };
    let (_, default) = read(None);
    let (stdout, spaced) = read(Some("250us"));
    assert!(stdout.contains("250us apart"), "{stdout}");
    assert_eq!(default.num_rows(), 5000);
    // Same keys and values; each time moved by i × (18 ms − 250 µs), the jitter unchanged.
    assert_eq!(default.column(0), spaced.column(0));
    assert_eq!(default.column(2), spaced.column(2));
    let ts = |b: &RecordBatch| b.column(1).as_primitive::<TimestampMicrosecondType>().values().to_vec();
    let (a, b) = (ts(&default), ts(&spaced));
    for (i, (a, b)) in a.iter().zip(&b).enumerate() {
        assert_eq!(a - b, i as i64 * (18_000 - 250), "row {i}");
    }

    for bad in ["0s", "1500ns", "2h", "soon"] {
        let (ok, _, stderr) =
            run(windrow().args(["gen", "--rows", "10", "--spacing", bad, "--out"]).arg(dir.path().join("x.parquet")));
        assert!(!ok, "--spacing {bad} was accepted");
        assert!(stderr.contains(bad), "--spacing {bad}: {stderr}");
    }
    let (ok, _, stderr) = run(windrow()
        .args(["gen", "--rows", "100000000000", "--spacing", "1h", "--out"])
        .arg(dir.path().join("y.parquet")));
    assert!(!ok && stderr.contains("run past the year 9999"), "{stderr}");
    let data = dir.path().join("events-default.parquet");
    let (ok, _, stderr) = run(windrow().args(["bench", "--runs", "1", "--spacing", "1ms", "--data"]).arg(&data));
    assert!(!ok && stderr.contains("--spacing applies to the generated stream only"), "{stderr}");
}

#[test]
fn gen_then_run_for_every_format() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["events.parquet", "events.arrow", "events.csv"] {
        let data = dir.path().join(name);
        let (ok, stdout, stderr) =
            run(windrow().args(["gen", "--rows", "20000", "--keys", "50", "--batch-rows", "3000", "--out"]).arg(&data));
        assert!(ok, "{name}: {stderr}");
        assert!(stdout.contains("wrote 20,000 rows"), "{stdout}");
        let out = dir.path().join(format!("{name}.windows.parquet"));
        let (ok, stdout, stderr) = run(windrow()
            .args(["run", "--input"])
            .arg(&data)
            .args([
                "--time",
                "ts",
                "--key",
                "key",
                "--wait",
                "10s",
                "--agg",
                "count",
                "--agg",
                "sum:value",
                "--limit",
                "0",
            ])
            .arg("--output")
            .arg(format!("late={}", dir.path().join(format!("{name}.late.arrow")).display()))
            .arg("--output")
            .arg(format!("down={}", out.display())));
        assert!(ok, "{name}: {stderr}");
        assert!(stdout.contains("rows in         20,000"), "{stdout}");
        let down = read(ParquetSource::open(&out, 65_536).unwrap());
        let late =
            read(IpcSource::open_with(dir.path().join(format!("{name}.late.arrow")), &ReadOptions::default()).unwrap());
        assert!(!late.is_empty() && rows(&late) > 0, "{name}: the generator makes late rows");
        assert_eq!(sum_i64(&down, "count") as usize + rows(&late), 20_000, "{name}");
    }
    // A directory of rolling part files.
    let parts = dir.path().join("parts");
    let (ok, _, stderr) =
        run(windrow().args(["gen", "--rows", "10000", "--max-file-rows", "4000", "--out"]).arg(&parts));
    assert!(ok, "{stderr}");
    assert_eq!(std::fs::read_dir(&parts).unwrap().count(), 3);
    assert_eq!(rows(&read(ParquetSource::open(&parts, 65_536).unwrap())), 10_000);
}

/// `run --dictionary-keys` reads the key column as the files store it (a dictionary, a new one
/// per file) and gives the same windows and the same late rows, key column type included; on
/// an input that is not Parquet, or with a compound key, it is refused.
#[test]
fn dictionary_keys_give_the_same_windows_and_late_rows() {
    use arrow::compute::concat_batches;
    let dir = tempfile::tempdir().unwrap();
    // Four part files, so the dictionaries change as the run goes on.
    let data = dir.path().join("events");
    let (ok, _, stderr) =
        run(windrow().args(["gen", "--rows", "30000", "--keys", "40", "--max-file-rows", "8000", "--out"]).arg(&data));
    assert!(ok, "{stderr}");
    assert_eq!(std::fs::read_dir(&data).unwrap().count(), 4);
    let outputs = |flag: Option<&str>| {
        let (down, late) = (dir.path().join("down.parquet"), dir.path().join("late.parquet"));
        let (ok, _, stderr) = run(windrow()
            .args(["run", "--input"])
            .arg(&data)
            .args(["--time", "ts", "--key", "key", "--wait", "10s", "--window", "sliding:1m/20s", "--limit", "0"])
            .args(["--agg", "count", "--agg", "sum:value"])
            .args(flag)
            .arg("--output")
            .arg(format!("down={}", down.display()))
            .arg("--output")
            .arg(format!("late={}", late.display())));
        assert!(ok, "{flag:?}: {stderr}");
        let one = |b: Vec<RecordBatch>| concat_batches(&b[0].schema(), &b).unwrap();
        (one(read(ParquetSource::open(&down, 65_536).unwrap())), one(read(ParquetSource::open(&late, 65_536).unwrap())))
    };
    let (down, late) = outputs(None);
    let (dict_down, dict_late) = outputs(Some("--dictionary-keys"));
    assert!(down.num_rows() > 1000 && late.num_rows() > 100, "{} windows, {} late", down.num_rows(), late.num_rows());
    assert_eq!(dict_down, down);
    assert_eq!(dict_late, late, "keys leave the engine as strings, late rows' too");

    let csv = dir.path().join("events.csv");
    let (ok, _, stderr) = run(windrow().args(["gen", "--rows", "100", "--out"]).arg(&csv));
    assert!(ok, "{stderr}");
    let (ok, _, e) = run(windrow().args(["run", "--key", "key", "--dictionary-keys", "--input"]).arg(&csv));
    assert!(!ok && e.contains("--dictionary-keys") && e.contains("not Parquet"), "{e}");
    let (ok, _, e) =
        run(windrow().args(["run", "--key", "key", "--key", "value", "--dictionary-keys", "--input"]).arg(&data));
    assert!(!ok && e.contains("--dictionary-keys") && e.contains("single string key"), "{e}");
}

fn pipeline_error(dir: &Path, toml: &str) -> String {
    let file = dir.join("p.toml");
    std::fs::write(&file, toml).unwrap();
    let (ok, _, stderr) = run(windrow().arg("run").arg(&file));
    assert!(!ok, "expected a failure for:\n{toml}");
    stderr
}

const GOOD: &str = r#"
[[input]]
name = "clicks"
path = "DATA"

[[step]]
id = "per_minute"
input = "clicks"
key = ["user"]
time = "ts"
wait = "30s"
window = { kind = "tumbling", length = "1m" }
aggregates = ["count"]
"#;

#[test]
fn bad_pipelines_fail_with_a_message_that_says_what_to_fix() {
    let dir = tempfile::tempdir().unwrap();
    let good = GOOD.replace("DATA", &root().join("data/clicks.parquet").display().to_string());

    let e = pipeline_error(dir.path(), &good.replace("window =", "windw ="));
    assert!(e.contains("p.toml") && e.contains("unknown field `windw`"), "{e}");

    let e = pipeline_error(dir.path(), &good.replace("[[step]]", "[[step]\n"));
    assert!(e.contains("p.toml") && e.contains("line"), "{e}");

    let e = pipeline_error(dir.path(), &good.replace("wait = \"30s\"", "wait = \"30 seconds\""));
    assert!(e.contains("step \"per_minute\"") && e.contains("invalid duration \"30 seconds\""), "{e}");

    let e = pipeline_error(dir.path(), &good.replace("[\"count\"]", "[\"sum:price\"]"));
    assert!(e.contains("step \"per_minute\"") && e.contains("price") && e.contains("duration_ms"), "{e}");

    let e = pipeline_error(dir.path(), &good.replace("time = \"ts\"", "time = \"when\""));
    assert!(e.contains("\"when\""), "{e}");

    let e = pipeline_error(dir.path(), &good.replace("kind = \"tumbling\"", "kind = \"hopping\""));
    assert!(e.contains("unknown variant `hopping`") && e.contains("sliding"), "{e}");

    let e = pipeline_error(dir.path(), &good.replace("input = \"clicks\"", "input = \"click\""));
    assert!(e.contains("no input named \"click\"") && e.contains("clicks"), "{e}");

    let e = pipeline_error(
        dir.path(),
        &format!("{good}\n[[output]]\nfrom = \"per_minute.windows\"\npath = \"x.parquet\"\n"),
    );
    assert!(e.contains("output 1") && e.contains("down, late, meta or errors"), "{e}");

    let e = pipeline_error(
        dir.path(),
        &format!(
            "{good}\n[[output]]\nfrom = \"per_minute.down\"\npath = \"same.csv\"\n\n[[output]]\nfrom = \"per_minute.late\"\npath = \"same.csv\"\n"
        ),
    );
    assert!(e.contains("output 2") && e.contains("also the path of output \"per_minute.down\""), "{e}");

    let e =
        pipeline_error(dir.path(), &good.replace("name = \"clicks\"", "name = \"clicks\"\ndictionary = [\"bytes\"]"));
    assert!(e.contains("\"bytes\"") && e.contains("has type Float64") && e.contains("string columns"), "{e}");
    let e = pipeline_error(
        dir.path(),
        &good.replace("name = \"clicks\"", "name = \"clicks\"\nkind = \"csv\"\ndictionary = [\"user\"]"),
    );
    assert!(e.contains("dictionary") && e.contains("csv"), "{e}");

    let missing = GOOD.replace("DATA", "nowhere/clicks.parquet");
    let e = pipeline_error(dir.path(), &missing);
    assert!(
        e.contains("input \"clicks\"") && e.contains("nowhere/clicks.parquet") && e.contains("does not exist"),
        "{e}"
    );

    let pushed = good.replace(
        &format!("path = \"{}\"", root().join("data/clicks.parquet").display()),
        "kind = \"pushed\"\nschema = [{ name = \"user\", type = \"utf8\" }, { name = \"ts\", type = \"timestamp_ms\", tz = \"UTC\" }]",
    );
    let e = pipeline_error(dir.path(), &pushed);
    assert!(e.contains("windrow serve"), "{e}");
}

#[test]
fn bad_flags_fail_with_a_message_that_says_what_to_fix() {
    let (ok, _, e) = run(windrow().args(["run", "--window", "tumbling:5 minutes"]));
    assert!(!ok && e.contains("invalid duration") && e.contains("30s"), "{e}");
    let (ok, _, e) = run(windrow().args(["run", "--key", "nobody"]));
    assert!(!ok && e.contains("\"nobody\"") && e.contains("user"), "{e}");
    let (ok, _, e) = run(windrow().args(["run", "--output", "down"]));
    assert!(!ok && e.contains("NAME=PATH"), "{e}");
    let (ok, _, e) = run(windrow().args(["run", "--input", "no/such.parquet"]));
    assert!(!ok && e.contains("no/such.parquet"), "{e}");
}

#[test]
fn every_subcommand_has_help_with_examples() {
    for sub in [&["--help"][..], &["run", "--help"], &["gen", "--help"], &["bench", "--help"]] {
        let (ok, stdout, _) = run(windrow().args(sub));
        assert!(ok && stdout.contains("Examples:"), "{sub:?}: {stdout}");
    }
}
