//! Parity test against bytewax 0.21.1.
//!
//! Runs every scenario folder of the parity directory through windrow and
//! compares the three output streams with bytewax's recorded outputs, as
//! specified in `shared/parity/README.md`:
//!
//! * the parity directory is `$WINDROW_PARITY_DIR`, else `../shared/parity`
//!   relative to this crate's manifest directory;
//! * a scenario is any immediate subdirectory holding `scenario.json`;
//! * unknown `operator`, `windower.kind`, `join.insert_mode`, `join.emit_mode`
//!   (and `clock.kind`, `by`) fail the scenario before windrow runs;
//! * every stream is compared as a multiset: both sides sorted by
//!   `(key, window_id, payload)` with one total order, numbers compared as
//!   `f64` with `==` (§5.5);
//! * the per-key emission order is checked for streams whose
//!   batch-invariance flag is `true` (§6);
//! * all scenarios run; the test then fails listing every failing scenario
//!   with its first differing record per stream.
//!
//! The engine is reached only through `tests/parity/adapter.rs`.

#[path = "parity/adapter.rs"]
mod adapter;
#[path = "parity/json.rs"]
mod json;

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::Instant;

use arrow::datatypes::{DataType, TimeUnit};
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;

use adapter::{Outcome, ScenarioInput, Streams};

// ---------------------------------------------------------------------------
// Known vocabulary (README §3).

const OPERATORS: &[&str] = &["count", "fold_sum", "collect", "reduce_sum", "max", "min", "join"];
const WINDOWER_KINDS: &[&str] = &["tumbling", "sliding", "session"];
const INSERT_MODES: &[&str] = &["first", "last", "product"];
const EMIT_MODES: &[&str] = &["complete", "final", "running"];
const CLOCK_KINDS: &[&str] = &["event"];
const BY_FIELDS: &[&str] = &["value"];

/// How many missing/unexpected records to list per failing stream.
const MAX_LISTED: usize = 3;
/// How many keys with a wrong emission order to list per stream.
const MAX_ORDER_KEYS: usize = 3;

/// One of the three output streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Stream {
    Down,
    Late,
    Meta,
}

const STREAMS: [Stream; 3] = [Stream::Down, Stream::Late, Stream::Meta];

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Down => "down",
            Stream::Late => "late",
            Stream::Meta => "meta",
        }
    }

    fn from_name(s: &str) -> Option<Stream> {
        STREAMS.into_iter().find(|st| st.name() == s)
    }

    fn index(self) -> usize {
        self as usize
    }

    /// Payload fields in sort priority (README §5.5).
    fn payload_fields(self) -> &'static [&'static str] {
        match self {
            Stream::Down => &["result"],
            Stream::Late => &["ts", "value", "side"],
            Stream::Meta => &["open_time", "close_time", "merged_ids"],
        }
    }

    fn of(self, s: &Streams) -> &[Value] {
        match self {
            Stream::Down => &s.down,
            Stream::Late => &s.late,
            Stream::Meta => &s.meta,
        }
    }
}

// ---------------------------------------------------------------------------
// Total order on JSON values and records (README §5.5).

/// Rank of a JSON type: null < bool < number < string < array < object.
/// (Booleans never occur in the expected files; they get a slot so that the
/// order is total.)
fn type_rank(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(_) => 2,
        Value::String(_) => 3,
        Value::Array(_) => 4,
        Value::Object(_) => 5,
    }
}

/// Numeric comparison. Integers that fit `i64`/`u64` on both sides compare
/// exactly; anything else compares as `f64`, so `15` and `15.0` are equal.
fn cmp_number(a: &serde_json::Number, b: &serde_json::Number) -> Ordering {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        return x.cmp(&y);
    }
    if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
        return x.cmp(&y);
    }
    let x = a.as_f64().unwrap_or(f64::NAN);
    let y = b.as_f64().unwrap_or(f64::NAN);
    // serde_json numbers are always finite, so this never falls back.
    x.partial_cmp(&y).unwrap_or(Ordering::Equal)
}

/// Total order on JSON values: by type rank, then numbers numerically,
/// strings by byte (= code point) order, arrays element-wise
/// lexicographically, objects as their key-sorted `(field, value)` sequences
/// (so `{"ts","value"}` objects compare by `ts`, then `value`).
///
/// `cmp_value(a, b) == Equal` exactly when `a` and `b` are deep-equal with
/// numbers compared as `f64` with `==`.
fn cmp_value(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Number(x), Value::Number(y)) => cmp_number(x, y),
        (Value::String(x), Value::String(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Value::Array(x), Value::Array(y)) => {
            for (u, v) in x.iter().zip(y) {
                let o = cmp_value(u, v);
                if o != Ordering::Equal {
                    return o;
                }
            }
            x.len().cmp(&y.len())
        }
        (Value::Object(x), Value::Object(y)) => {
            let mut xs: Vec<(&String, &Value)> = x.iter().collect();
            let mut ys: Vec<(&String, &Value)> = y.iter().collect();
            xs.sort_unstable_by(|p, q| p.0.cmp(q.0));
            ys.sort_unstable_by(|p, q| p.0.cmp(q.0));
            for ((ka, va), (kb, vb)) in xs.iter().zip(&ys) {
                let o = ka.as_bytes().cmp(kb.as_bytes()).then_with(|| cmp_value(va, vb));
                if o != Ordering::Equal {
                    return o;
                }
            }
            xs.len().cmp(&ys.len())
        }
        _ => type_rank(a).cmp(&type_rank(b)),
    }
}

/// Compares optional fields: a missing field sorts before any value.
fn cmp_field(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(x), Some(y)) => cmp_value(x, y),
    }
}

/// Order on output records of `stream`: `key`, `window_id`, then the
/// stream's payload fields (README §5.5), then the whole record (so that
/// records with unexpected extra fields still sort deterministically, and
/// `Equal` means deep-equal).
fn cmp_record(stream: Stream, a: &Value, b: &Value) -> Ordering {
    for field in ["key", "window_id"].iter().chain(stream.payload_fields()) {
        let o = cmp_field(a.get(field), b.get(field));
        if o != Ordering::Equal {
            return o;
        }
    }
    cmp_value(a, b)
}

fn records_equal(stream: Stream, a: &Value, b: &Value) -> bool {
    cmp_record(stream, a, b) == Ordering::Equal
}

fn sorted_refs(stream: Stream, records: &[Value]) -> Vec<&Value> {
    let mut v: Vec<&Value> = records.iter().collect();
    v.sort_unstable_by(|a, b| cmp_record(stream, a, b));
    v
}

fn show(v: Option<&Value>) -> String {
    match v {
        Some(v) => serde_json::to_string(v).unwrap_or_else(|e| format!("<unprintable: {e}>")),
        None => "<none>".to_string(),
    }
}

// ---------------------------------------------------------------------------
// Stream comparison.

/// Result of comparing one stream.
struct StreamCheck {
    expected: usize,
    actual: usize,
    /// Empty when the stream matches.
    problems: Vec<String>,
}

/// Compares windrow's records with the expected ones as multisets: sorts
/// both with [`cmp_record`] and compares element by element.
fn compare_stream(stream: Stream, expected: &[Value], actual: &[Value]) -> StreamCheck {
    let exp = sorted_refs(stream, expected);
    let act = sorted_refs(stream, actual);
    let mut problems = Vec::new();

    let first_diff = (0..exp.len().max(act.len())).find(|&i| match (exp.get(i), act.get(i)) {
        (Some(e), Some(a)) => !records_equal(stream, e, a),
        _ => true,
    });
    if let Some(i) = first_diff {
        problems.push(format!(
            "{}: expected {} records, windrow {}; first difference at sorted position {i}:\n\
             \x20     expected: {}\n\
             \x20     windrow:  {}",
            stream.name(),
            exp.len(),
            act.len(),
            show(exp.get(i).copied()),
            show(act.get(i).copied()),
        ));

        // Merge the two sorted lists to tell missing from unexpected records.
        let (mut missing, mut extra) = (Vec::new(), Vec::new());
        let (mut i, mut j) = (0, 0);
        while i < exp.len() || j < act.len() {
            let o = match (exp.get(i), act.get(j)) {
                (Some(e), Some(a)) => cmp_record(stream, e, a),
                (Some(_), None) => Ordering::Less,
                _ => Ordering::Greater,
            };
            match o {
                Ordering::Equal => {
                    i += 1;
                    j += 1;
                }
                Ordering::Less => {
                    missing.push(exp[i]);
                    i += 1;
                }
                Ordering::Greater => {
                    extra.push(act[j]);
                    j += 1;
                }
            }
        }
        for (what, list) in [("missing from windrow", &missing), ("unexpected from windrow", &extra)] {
            if list.is_empty() {
                continue;
            }
            let mut s = format!("{}: {what}: {} record(s)", stream.name(), list.len());
            for r in list.iter().take(MAX_LISTED) {
                s.push_str("\n        ");
                s.push_str(&show(Some(r)));
            }
            if list.len() > MAX_LISTED {
                s.push_str("\n        …");
            }
            problems.push(s);
        }
    }
    StreamCheck { expected: exp.len(), actual: act.len(), problems }
}

/// The `key` of a record as a string (non-string keys by their JSON text).
fn key_of(v: &Value) -> String {
    match v.get("key") {
        Some(Value::String(s)) => s.clone(),
        other => format!("<key {}>", show(other)),
    }
}

/// Expected per-key emission order of one stream: key → line indices into
/// the stored expected file (README §6).
type KeyOrder = BTreeMap<String, Vec<usize>>;

/// Checks windrow's per-key emission sequence of `stream` against the
/// expected one (`order` mapped through the expected file's lines).
fn check_order(stream: Stream, expected: &[Value], order: &KeyOrder, actual: &[Value]) -> Vec<String> {
    let mut act_by_key: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for r in actual {
        act_by_key.entry(key_of(r)).or_default().push(r);
    }
    let empty_idx: Vec<usize> = Vec::new();
    let empty_act: Vec<&Value> = Vec::new();
    let mut keys: Vec<&String> = order.keys().chain(act_by_key.keys()).collect();
    keys.sort_unstable();
    keys.dedup();

    let mut bad = Vec::new();
    for key in keys {
        let exp: Vec<&Value> = order.get(key).unwrap_or(&empty_idx).iter().map(|&i| &expected[i]).collect();
        let act = act_by_key.get(key).unwrap_or(&empty_act);
        let first_diff = (0..exp.len().max(act.len())).find(|&i| match (exp.get(i), act.get(i)) {
            (Some(e), Some(a)) => !records_equal(stream, e, a),
            _ => true,
        });
        if let Some(i) = first_diff {
            bad.push(format!(
                "{} emission order, key {key:?}: expected {} records, windrow {}; \
                 first difference at position {i}:\n\
                 \x20     expected: {}\n\
                 \x20     windrow:  {}",
                stream.name(),
                exp.len(),
                act.len(),
                show(exp.get(i).copied()),
                show(act.get(i).copied()),
            ));
        }
    }
    if bad.len() > MAX_ORDER_KEYS {
        let more = bad.len() - MAX_ORDER_KEYS;
        bad.truncate(MAX_ORDER_KEYS);
        bad.push(format!("{} emission order: {more} more key(s) differ", stream.name()));
    }
    bad
}

// ---------------------------------------------------------------------------
// Files.

/// Reads a JSON Lines file, gzip-decoded on the fly when its name ends in
/// `.gz`. Blank lines are an error (they would shift the line indices that
/// `emission_order.jsonl` refers to).
fn read_jsonl(path: &Path) -> Result<Vec<Value>, String> {
    let file = File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let reader: Box<dyn BufRead> = if path.to_string_lossy().ends_with(".gz") {
        Box::new(BufReader::new(flate2::read::MultiGzDecoder::new(file)))
    } else {
        Box::new(BufReader::new(file))
    };
    let mut out = Vec::new();
    for (n, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| format!("{}: read error: {e}", path.display()))?;
        if line.trim().is_empty() {
            return Err(format!("{}:{}: blank line", path.display(), n + 1));
        }
        let v = serde_json::from_str(&line).map_err(|e| format!("{}:{}: invalid JSON: {e}", path.display(), n + 1))?;
        out.push(v);
    }
    Ok(out)
}

/// Reads an input Parquet file and checks the schema of README §4. The
/// returned batches hold exactly `key`, `ts`, `value`, in that order.
fn read_parquet(path: &Path) -> Result<Vec<RecordBatch>, String> {
    let ctx = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let file = File::open(path).map_err(|e| ctx(&e))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file).and_then(|b| b.build()).map_err(|e| ctx(&e))?;
    let mut batches = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| ctx(&e))?;
        let schema = batch.schema();
        let mut indices = Vec::new();
        for name in ["key", "ts", "value"] {
            let i = schema.index_of(name).map_err(|_| ctx(&format!("no column `{name}` (schema: {schema})")))?;
            let t = schema.field(i).data_type();
            let ok = match name {
                "key" => *t == DataType::Utf8,
                "ts" => {
                    matches!(t, DataType::Timestamp(TimeUnit::Microsecond, Some(tz)) if &**tz == "UTC")
                }
                _ => *t == DataType::Float64,
            };
            if !ok {
                return Err(ctx(&format!("column `{name}` has type {t}, see README §4")));
            }
            if batch.column(i).null_count() != 0 {
                return Err(ctx(&format!("column `{name}` has nulls")));
            }
            indices.push(i);
        }
        batches.push(batch.project(&indices).map_err(|e| ctx(&e))?);
    }
    Ok(batches)
}

// ---------------------------------------------------------------------------
// Scenario handling.

fn str_field<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

/// Checks the parts of `scenario.json` whose unknown values must fail the
/// test (README §1). Returns one message per problem.
fn validate(spec: &Value) -> Vec<String> {
    let mut errs = Vec::new();
    let mut check = |path: &[&str], known: &[&str], required: bool| match str_field(spec, path) {
        Some(s) if known.contains(&s) => {}
        Some(s) => errs.push(format!("unknown {} {s:?} (known: {})", path.join("."), known.join(", "))),
        None if spec.pointer(&format!("/{}", path.join("/"))).is_some() => {
            errs.push(format!("{} is not a string", path.join(".")))
        }
        None if required => errs.push(format!("missing {}", path.join("."))),
        None => {}
    };
    check(&["operator"], OPERATORS, true);
    check(&["windower", "kind"], WINDOWER_KINDS, true);
    check(&["clock", "kind"], CLOCK_KINDS, false);
    let op = str_field(spec, &["operator"]);
    if op == Some("join") {
        check(&["join", "insert_mode"], INSERT_MODES, true);
        check(&["join", "emit_mode"], EMIT_MODES, true);
    }
    if matches!(op, Some("max" | "min")) {
        check(&["by"], BY_FIELDS, false);
    }
    if op == Some("join") {
        match spec.pointer("/join/sides").and_then(Value::as_array) {
            Some(sides) if !sides.is_empty() && sides.iter().all(Value::is_string) => {}
            _ => errs.push("join.sides must be a non-empty list of input names".to_string()),
        }
    }
    errs
}

/// Names of the inputs to pass to the adapter, in order.
fn input_names(spec: &Value) -> Vec<String> {
    if str_field(spec, &["operator"]) == Some("join") {
        spec.pointer("/join/sides")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(String::from).collect())
            .unwrap_or_default()
    } else {
        vec!["events".to_string()]
    }
}

fn load_inputs(dir: &Path, spec: &Value) -> Result<Vec<ScenarioInput>, String> {
    let mut inputs = Vec::new();
    for name in input_names(spec) {
        let rel = str_field(spec, &["inputs", &name, "parquet"])
            .ok_or_else(|| format!("scenario.json has no inputs.{name}.parquet"))?;
        let batches = read_parquet(&dir.join(rel))?;
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        if let Some(want) = spec.pointer(&format!("/input_rows/{name}")).and_then(Value::as_u64)
            && rows as u64 != want
        {
            return Err(format!("input {name} ({rel}) has {rows} rows, input_rows says {want}"));
        }
        inputs.push(ScenarioInput { name, batches });
    }
    Ok(inputs)
}

/// The expected data of a (non-error) scenario.
struct Expected {
    /// Lines of the expected files, in file order, indexed by [`Stream::index`].
    lines: [Vec<Value>; 3],
    /// Per-key emission order for the streams whose batch-invariance flag is
    /// `true`; `None` where the order is not checked.
    order: [Option<KeyOrder>; 3],
    notes: Vec<String>,
}

fn load_expected(dir: &Path, spec: &Value) -> Result<Expected, String> {
    let files = spec
        .get("expected")
        .filter(|e| e.is_object())
        .ok_or("scenario.json has neither `expected` files nor `expected_error`")?;
    let mut lines: [Vec<Value>; 3] = Default::default();
    let mut notes = Vec::new();
    for st in STREAMS {
        let rel =
            files.get(st.name()).and_then(Value::as_str).ok_or_else(|| format!("expected.{} is missing", st.name()))?;
        let recs = read_jsonl(&dir.join(rel))?;
        if let Some(n) = spec.pointer(&format!("/counts/{}", st.name())).and_then(Value::as_u64)
            && recs.len() as u64 != n
        {
            return Err(format!("{rel} has {} lines, counts.{} says {n}", recs.len(), st.name()));
        }
        if recs.windows(2).any(|w| cmp_record(st, &w[0], &w[1]) == Ordering::Greater) {
            notes
                .push(format!("note: {rel} is not sorted by the harness's order (harmless; README says it should be)"));
        }
        lines[st.index()] = recs;
    }

    let flags = spec.pointer("/emission_order/per_key_order_same_when_whole_input_is_one_batch");
    let checked: Vec<Stream> =
        STREAMS.into_iter().filter(|st| flags.and_then(|f| f.get(st.name())) == Some(&Value::Bool(true))).collect();
    let mut order: [Option<KeyOrder>; 3] = Default::default();
    if !checked.is_empty() {
        let rel = files
            .get("emission_order")
            .and_then(Value::as_str)
            .or_else(|| str_field(spec, &["emission_order", "file"]))
            .ok_or("emission order flags are set but no emission_order file is named")?;
        let path = dir.join(rel);
        for st in &checked {
            order[st.index()] = Some(KeyOrder::new());
        }
        for (n, line) in read_jsonl(&path)?.iter().enumerate() {
            let at = || format!("{}:{}", path.display(), n + 1);
            let stream_name = line.get("stream").and_then(Value::as_str).unwrap_or("");
            let st =
                Stream::from_name(stream_name).ok_or_else(|| format!("{}: unknown stream {stream_name:?}", at()))?;
            let Some(map) = order[st.index()].as_mut() else {
                continue; // order of this stream is not checked
            };
            let key = line.get("key").and_then(Value::as_str).ok_or_else(|| format!("{}: missing key", at()))?;
            let idx = line
                .get("line_index")
                .and_then(Value::as_array)
                .ok_or_else(|| format!("{}: missing line_index", at()))?
                .iter()
                .map(|i| {
                    i.as_u64()
                        .map(|i| i as usize)
                        .filter(|&i| i < lines[st.index()].len())
                        .ok_or_else(|| format!("{}: bad line index {i}", at()))
                })
                .collect::<Result<Vec<usize>, String>>()?;
            if map.insert(key.to_string(), idx).is_some() {
                return Err(format!("{}: duplicate line for ({}, {key:?})", at(), st.name()));
            }
        }
    }
    Ok(Expected { lines, order, notes })
}

/// Runs the adapter, turning a panic into an error message.
fn call_adapter(spec: &Value, inputs: &[ScenarioInput]) -> Result<Outcome, String> {
    match catch_unwind(AssertUnwindSafe(|| adapter::run_scenario(spec, inputs))) {
        Ok(r) => r.map_err(|e| format!("adapter error: {e}")),
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "<non-string panic payload>".to_string());
            Err(format!("adapter panicked: {msg}"))
        }
    }
}

/// Outcome of one scenario.
struct Verdict {
    ok: bool,
    /// Short one-line summary (counts, or the reason for failure).
    summary: String,
    /// Failure details (first differences etc.).
    details: Vec<String>,
    /// Informational lines printed under the result line.
    notes: Vec<String>,
}

impl Verdict {
    fn fail(summary: impl Into<String>, details: Vec<String>) -> Verdict {
        Verdict { ok: false, summary: summary.into(), details, notes: Vec::new() }
    }
}

/// Judges the outcome of an `expected_error` scenario.
fn judge_error_outcome(expected_error: &Value, outcome: Result<Outcome, String>) -> Verdict {
    let want = format!(
        "{}: {}",
        expected_error.get("type").and_then(Value::as_str).unwrap_or("error"),
        expected_error.get("message").and_then(Value::as_str).unwrap_or("?"),
    );
    match outcome {
        Ok(Outcome::ConstructionError(msg)) => Verdict {
            ok: true,
            summary: "construction refused as expected".to_string(),
            details: Vec::new(),
            notes: vec![format!("windrow: {msg}"), format!("bytewax: {want}")],
        },
        Ok(Outcome::Ran(s)) => Verdict::fail(
            "expected a construction error, but windrow ran",
            vec![format!(
                "bytewax refused with {want}; windrow emitted down {}, late {}, meta {}",
                s.down.len(),
                s.late.len(),
                s.meta.len()
            )],
        ),
        Err(e) => Verdict::fail(e, vec![format!("expected a construction error ({want})")]),
    }
}

/// Compares windrow's streams with the expected data.
fn judge_streams(expected: &Expected, streams: &Streams) -> Verdict {
    let mut details = Vec::new();
    let mut parts = Vec::new();
    let mut order_checked = Vec::new();
    let mut order_failed = false;
    for st in STREAMS {
        let exp = &expected.lines[st.index()];
        let act = st.of(streams);
        let check = compare_stream(st, exp, act);
        let sorted_ok = check.problems.is_empty();
        parts.push(format!(
            "{} {}/{}{}",
            st.name(),
            check.actual,
            check.expected,
            if sorted_ok { "" } else { " DIFF" }
        ));
        details.extend(check.problems);
        // The order check only runs once the multiset matches; otherwise it
        // would repeat the same differences.
        if let Some(order) = &expected.order[st.index()]
            && sorted_ok
        {
            let bad = check_order(st, exp, order, act);
            if bad.is_empty() {
                order_checked.push(st.name());
            } else {
                order_failed = true;
                parts.push(format!("{} order DIFF", st.name()));
                details.extend(bad);
            }
        }
    }
    let mut summary = parts.join(", ");
    if !order_checked.is_empty() {
        summary.push_str(&format!("; per-key order ok ({})", order_checked.join(",")));
    }
    let ok = details.is_empty() && !order_failed;
    Verdict { ok, summary, details, notes: Vec::new() }
}

fn expected_counts(expected: &Expected) -> String {
    STREAMS
        .into_iter()
        .map(|st| format!("{} {}", st.name(), expected.lines[st.index()].len()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn run_scenario_dir(dir: &Path, name: &str) -> Verdict {
    let spec_path = dir.join("scenario.json");
    let spec: Value = match std::fs::read_to_string(&spec_path)
        .map_err(|e| e.to_string())
        .and_then(|s| serde_json::from_str(&s).map_err(|e| e.to_string()))
    {
        Ok(v) => v,
        Err(e) => {
            return Verdict::fail("cannot read scenario.json", vec![format!("{}: {e}", spec_path.display())]);
        }
    };
    let mut notes = Vec::new();
    if let Some(n) = spec.get("name").and_then(Value::as_str)
        && n != name
    {
        notes.push(format!("note: scenario.json name {n:?} differs from the folder name"));
    }

    let errs = validate(&spec);
    if !errs.is_empty() {
        return Verdict::fail("unsupported scenario parameters", errs);
    }

    let mut verdict = match spec.get("expected_error").filter(|e| !e.is_null()) {
        Some(expected_error) => judge_error_outcome(expected_error, call_adapter(&spec, &[])),
        None => {
            let expected = match load_expected(dir, &spec) {
                Ok(e) => e,
                Err(e) => return Verdict::fail("bad expected data", vec![e]),
            };
            notes.extend(expected.notes.iter().cloned());
            let inputs = match load_inputs(dir, &spec) {
                Ok(i) => i,
                Err(e) => return Verdict::fail("bad input data", vec![e]),
            };
            let described: Vec<String> = inputs
                .iter()
                .map(|i| format!("{} {} rows", i.name, i.batches.iter().map(RecordBatch::num_rows).sum::<usize>()))
                .collect();
            match call_adapter(&spec, &inputs) {
                Ok(Outcome::Ran(streams)) => judge_streams(&expected, &streams),
                Ok(Outcome::ConstructionError(msg)) => {
                    Verdict::fail("windrow refused to build the operator", vec![format!("construction error: {msg}")])
                }
                Err(e) => Verdict::fail(
                    e,
                    vec![format!("inputs: {}; expected {}", described.join(", "), expected_counts(&expected))],
                ),
            }
        }
    };
    notes.append(&mut verdict.notes);
    verdict.notes = notes;
    verdict
}

// ---------------------------------------------------------------------------
// Discovery and the test.

fn parity_dir() -> PathBuf {
    match std::env::var_os("WINDROW_PARITY_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("shared").join("parity"),
    }
}

/// Immediate subdirectories of `dir` that contain `scenario.json`, sorted by
/// name.
fn discover(dir: &Path) -> Result<Vec<(String, PathBuf)>, String> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| format!("parity directory {} cannot be read: {e} (set WINDROW_PARITY_DIR)", dir.display()))?;
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("reading {}: {e}", dir.display()))?;
        let path = entry.path();
        if path.is_dir() && path.join("scenario.json").is_file() {
            found.push((entry.file_name().to_string_lossy().into_owned(), path));
        }
    }
    if found.is_empty() {
        return Err(format!("parity directory {} contains no scenario folder", dir.display()));
    }
    found.sort();
    Ok(found)
}

#[test]
fn parity_scenarios() {
    let dir = parity_dir();
    let scenarios = discover(&dir).unwrap_or_else(|e| panic!("{e}"));
    println!("parity: {} scenarios in {}", scenarios.len(), dir.display());

    let mut failures = Vec::new();
    for (name, path) in &scenarios {
        let start = Instant::now();
        let v = run_scenario_dir(path, name);
        let ms = start.elapsed().as_secs_f64() * 1e3;
        println!("{} {name}: {} ({ms:.1} ms)", if v.ok { "PASS" } else { "FAIL" }, v.summary);
        for n in &v.notes {
            println!("     {n}");
        }
        if !v.ok {
            failures.push((name, v));
        }
    }

    if failures.is_empty() {
        println!("parity: all {} scenarios pass", scenarios.len());
        return;
    }
    let mut msg = format!("{} of {} parity scenarios failed:\n", failures.len(), scenarios.len());
    for (name, v) in &failures {
        msg.push_str(&format!("\n{name}: {}\n", v.summary));
        for d in &v.details {
            msg.push_str(&format!("    {d}\n"));
        }
    }
    panic!("{msg}");
}

// ---------------------------------------------------------------------------
// Unit tests of the harness itself.

mod harness_tests {
    use super::*;
    use serde_json::json;

    fn sorted(stream: Stream, v: Vec<Value>) -> Vec<Value> {
        sorted_refs(stream, &v).into_iter().cloned().collect()
    }

    #[test]
    fn value_order_by_type() {
        let v = vec![json!({"ts": "x"}), json!([1]), json!("s"), json!(3), json!(null), json!(true)];
        let mut s = v.clone();
        s.sort_by(cmp_value);
        assert_eq!(s, vec![json!(null), json!(true), json!(3), json!("s"), json!([1]), json!({"ts": "x"})]);
    }

    #[test]
    fn numbers_compare_as_f64() {
        assert_eq!(cmp_value(&json!(15), &json!(15.0)), Ordering::Equal);
        assert_eq!(cmp_value(&json!(-3), &json!(2)), Ordering::Less);
        assert_eq!(cmp_value(&json!(-0.25), &json!(-0.5)), Ordering::Greater);
        assert_eq!(cmp_value(&json!(-0.0), &json!(0)), Ordering::Equal);
        assert_eq!(cmp_value(&json!(u64::MAX), &json!(-1)), Ordering::Greater);
        assert_ne!(cmp_value(&json!(15), &json!(15.25)), Ordering::Equal);
    }

    #[test]
    fn arrays_and_objects() {
        assert_eq!(cmp_value(&json!([1]), &json!([1, 2])), Ordering::Less);
        assert_eq!(cmp_value(&json!([1, 2]), &json!([2])), Ordering::Less);
        assert_eq!(cmp_value(&json!([1, null]), &json!([1, 3])), Ordering::Less);
        assert_eq!(cmp_value(&json!([null, 9]), &json!([1, null])), Ordering::Less);
        // objects: by ts, then value
        let a = json!({"ts": "2024-01-01T00:00:00.000000Z", "value": 9});
        let b = json!({"value": 1, "ts": "2024-01-01T00:00:01.000000Z"});
        let c = json!({"ts": "2024-01-01T00:00:01.000000Z", "value": 2.0});
        assert_eq!(cmp_value(&a, &b), Ordering::Less);
        assert_eq!(cmp_value(&b, &c), Ordering::Less);
        assert_eq!(cmp_value(&c, &json!({"ts": "2024-01-01T00:00:01.000000Z", "value": 2})), Ordering::Equal);
        // an extra field makes objects differ
        assert_ne!(cmp_value(&json!({"a": 1}), &json!({"a": 1, "b": null})), Ordering::Equal);
    }

    #[test]
    fn record_sort_key_window_payload() {
        let recs = vec![
            json!({"key": "b", "window_id": -1, "result": 1}),
            json!({"key": "a", "window_id": 2, "result": 0}),
            json!({"key": "a", "window_id": -10, "result": 5}),
            json!({"key": "a", "window_id": -2, "result": [1, 2]}),
            json!({"key": "a", "window_id": -2, "result": null}),
            json!({"key": "B", "window_id": 0, "result": 0}),
        ];
        let got: Vec<(String, i64)> = sorted(Stream::Down, recs)
            .iter()
            .map(|r| (key_of(r), r["window_id"].as_i64().unwrap_or(i64::MAX)))
            .collect();
        let want: Vec<(String, i64)> = [("B", 0), ("a", -10), ("a", -2), ("a", -2), ("a", 2), ("b", -1)]
            .iter()
            .map(|(k, w)| (k.to_string(), *w))
            .collect();
        assert_eq!(got, want);
        let s = sorted(
            Stream::Down,
            vec![
                json!({"key": "a", "window_id": -2, "result": [1, 2]}),
                json!({"key": "a", "window_id": -2, "result": null}),
            ],
        );
        assert_eq!(s[0]["result"], json!(null));
    }

    #[test]
    fn late_sorts_by_ts_value_side() {
        let r = |ts: &str, value: f64, side: i64| json!({"key": "k", "window_id": 0, "side": side, "ts": ts, "value": value});
        let t0 = "2024-01-01T00:00:00.000000Z";
        let t1 = "2024-01-01T00:00:00.000001Z";
        let s = sorted(Stream::Late, vec![r(t1, 0.0, 0), r(t0, 2.0, 0), r(t0, 1.0, 1), r(t0, 1.0, 0)]);
        assert_eq!(s, vec![r(t0, 1.0, 0), r(t0, 1.0, 1), r(t0, 2.0, 0), r(t1, 0.0, 0)]);
    }

    #[test]
    fn multiset_comparison() {
        let a = json!({"key": "a", "window_id": 0, "result": [1, null]});
        let b = json!({"key": "a", "window_id": 0, "result": [1, 3]});
        // order does not matter
        let ok = compare_stream(Stream::Down, &[a.clone(), a.clone(), b.clone()], &[b.clone(), a.clone(), a.clone()]);
        assert!(ok.problems.is_empty(), "{:?}", ok.problems);
        // duplicates count
        let bad = compare_stream(Stream::Down, &[a.clone(), a.clone(), b.clone()], &[a.clone(), b.clone(), b.clone()]);
        assert_eq!(bad.problems.len(), 3, "{:?}", bad.problems);
        assert!(bad.problems[1].contains("missing from windrow: 1"));
        assert!(bad.problems[2].contains("unexpected from windrow: 1"));
        let short = compare_stream(Stream::Down, &[a.clone(), a.clone()], std::slice::from_ref(&a));
        assert!(short.problems[0].contains("expected 2 records, windrow 1"));
        assert!(short.problems[0].contains("<none>"));
        // integral floats equal integers
        let f = json!({"key": "a", "window_id": 0, "result": 15.0});
        let i = json!({"key": "a", "window_id": 0, "result": 15});
        assert!(compare_stream(Stream::Down, &[i], &[f]).problems.is_empty());
        // an extra field (e.g. `side` outside joins) is a difference
        let late = json!({"key": "a", "window_id": 0, "ts": "2024-01-01T00:00:00.000000Z", "value": 1});
        let mut with_side = late.clone();
        with_side["side"] = json!(0);
        assert!(!compare_stream(Stream::Late, &[late], &[with_side]).problems.is_empty());
    }

    #[test]
    fn emission_order_is_per_key() {
        let r = |k: &str, w: i64| json!({"key": k, "window_id": w, "result": 1});
        // expected file (sorted): a0 a1 a2 b0; bytewax emitted a as 0,2,1
        let expected = vec![r("a", 0), r("a", 1), r("a", 2), r("b", 0)];
        let order: KeyOrder = [("a".to_string(), vec![0, 2, 1]), ("b".to_string(), vec![3])].into_iter().collect();
        // cross-key interleaving is free
        let good = vec![r("a", 0), r("b", 0), r("a", 2), r("a", 1)];
        assert!(check_order(Stream::Down, &expected, &order, &good).is_empty());
        // per-key order is not
        let bad = vec![r("a", 0), r("a", 1), r("a", 2), r("b", 0)];
        let errs = check_order(Stream::Down, &expected, &order, &bad);
        assert_eq!(errs.len(), 1);
        assert!(errs[0].contains("key \"a\"") && errs[0].contains("position 1"), "{errs:?}");
        // duplicate lines: compare records, not indices
        let dup = vec![r("a", 0), r("a", 0)];
        let order: KeyOrder = [("a".to_string(), vec![1, 0])].into_iter().collect();
        assert!(check_order(Stream::Down, &dup, &order, &dup).is_empty());
    }

    #[test]
    fn judge_streams_and_errors() {
        let r = json!({"key": "a", "window_id": 0, "result": 1});
        let expected = Expected {
            lines: [vec![r.clone()], Vec::new(), Vec::new()],
            order: [Some([("a".to_string(), vec![0])].into_iter().collect()), None, None],
            notes: Vec::new(),
        };
        let ok = judge_streams(&expected, &Streams { down: vec![r.clone()], late: Vec::new(), meta: Vec::new() });
        assert!(ok.ok, "{:?}", ok.details);
        let bad = judge_streams(&expected, &Streams { down: Vec::new(), late: vec![r.clone()], meta: Vec::new() });
        assert!(!bad.ok);
        assert!(bad.summary.contains("down 0/1 DIFF") && bad.summary.contains("late 1/0 DIFF"), "{}", bad.summary);

        let ee = json!({"type": "ValueError", "message": "gaps"});
        assert!(judge_error_outcome(&ee, Ok(Outcome::ConstructionError("nope".into()))).ok);
        let ran = Outcome::Ran(Streams { down: Vec::new(), late: Vec::new(), meta: Vec::new() });
        assert!(!judge_error_outcome(&ee, Ok(ran)).ok);
        assert!(!judge_error_outcome(&ee, Err("adapter error: x".into())).ok);
    }

    #[test]
    fn validation_rejects_unknown_kinds() {
        let base = json!({
            "operator": "join", "windower": {"kind": "tumbling"}, "clock": {"kind": "event"},
            "join": {"sides": ["left", "right"], "insert_mode": "product", "emit_mode": "final"},
            "unknown_field": 1
        });
        assert!(validate(&base).is_empty(), "{:?}", validate(&base));
        for (ptr, bad) in [
            ("/operator", "median"),
            ("/windower/kind", "hopping"),
            ("/join/insert_mode", "all"),
            ("/join/emit_mode", "eager"),
            ("/clock/kind", "system"),
        ] {
            let mut s = base.clone();
            if let Some(v) = s.pointer_mut(ptr) {
                *v = json!(bad);
            }
            let errs = validate(&s);
            assert_eq!(errs.len(), 1, "{ptr}: {errs:?}");
            assert!(errs[0].contains(bad));
        }
        assert!(!validate(&json!({"operator": "count"})).is_empty()); // no windower
        assert_eq!(input_names(&base), vec!["left", "right"]);
        assert_eq!(input_names(&json!({"operator": "count"})), vec!["events"]);
    }

    #[test]
    fn reads_gzip_jsonl() {
        use std::io::Write;
        let path = std::env::temp_dir().join(format!("windrow_parity_{}.jsonl.gz", std::process::id()));
        let file = File::create(&path).expect("create temp file");
        let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
        gz.write_all(
            b"{\"key\":\"a\",\"window_id\":-3,\"result\":92}\n{\"key\":\"a\",\"window_id\":-2,\"result\":1.5}\n",
        )
        .expect("write gz");
        gz.finish().expect("finish gz");
        let lines = read_jsonl(&path);
        let _ = std::fs::remove_file(&path);
        let lines = lines.expect("read gz");
        assert_eq!(
            lines,
            vec![json!({"key":"a","window_id":-3,"result":92}), json!({"key":"a","window_id":-2,"result":1.5})]
        );
    }

    #[test]
    fn json_helpers() {
        use crate::json::*;
        assert_eq!(format_ts_us(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(format_ts_us(-1), "1969-12-31T23:59:59.999999Z");
        assert_eq!(format_ts_us(-1_500_000), "1969-12-31T23:59:58.500000Z");
        assert_eq!(format_ts_us(1_704_067_290_000_000), "2024-01-01T00:01:30.000000Z");
        assert_eq!(format_ts_us(1_704_069_900_500_000), "2024-01-01T00:45:00.500000Z");
        for us in [0, -1, -1_500_000, 1_704_067_290_000_001, -62_135_596_800_000_000] {
            assert_eq!(parse_ts_us(&format_ts_us(us)), Ok(us));
        }
        assert!(parse_ts_us("2024-01-01T00:00:00Z").is_err());
        assert!(parse_ts_us("2024-01-01T00:00:00.000000").is_err());
        assert!(format_ts_us(i64::MAX).starts_with("<out-of-range"));

        assert_eq!(secs_to_us(300.0), Ok(300_000_000));
        assert_eq!(secs_to_us(-1.5), Ok(-1_500_000));
        assert!(secs_to_us(86_400_000_000_000.0).is_err()); // timedelta.max rendering
        assert!(secs_to_us(1e-7).is_err());
        assert_eq!(duration_field_us(&json!({"gap_s": 10}), "gap_s"), Ok(10_000_000));

        assert_eq!(serde_json::to_string(&num(15.0)).ok().as_deref(), Some("15"));
        assert_eq!(serde_json::to_string(&num(-3.25)).ok().as_deref(), Some("-3.25"));
        assert_eq!(serde_json::to_string(&num(-0.0)).ok().as_deref(), Some("0"));
        assert_eq!(num(f64::NAN), json!("NaN"));
        assert_eq!(cmp_value(&num(92.0), &json!(92)), Ordering::Equal);

        assert_eq!(
            down_record("a", -3, count_result(92)),
            serde_json::from_str::<Value>(r#"{"key":"a","window_id":-3,"result":92}"#).unwrap_or_default()
        );
        assert_eq!(
            late_record("a", 0, Some(1), 1_704_069_900_500_000, 1000.0),
            json!({"key":"a","window_id":0,"side":1,"ts":"2024-01-01T00:45:00.500000Z","value":1000})
        );
        assert_eq!(
            meta_record("s", 0, 1_704_067_200_000_000, 1_704_068_700_000_000, &[3, 1]),
            json!({"key":"s","window_id":0,"open_time":"2024-01-01T00:00:00.000000Z",
                   "close_time":"2024-01-01T00:25:00.000000Z","merged_ids":[1, 3]})
        );
        assert_eq!(list_result(&[1.0, 2.5]), json!([1, 2.5]));
        assert_eq!(row_result(0, 9.0), json!({"ts": "1970-01-01T00:00:00.000000Z", "value": 9}));
        assert_eq!(join_result(Some(1.0), None), json!([1, null]));
    }
}
