//! End-to-end operator throughput (events/s) on the shared benchmark dataset.
//!
//! The data follows `shared/bench/README.md`'s generator: row *i* has base time
//! `2024-01-01T00:00:00Z + i × 18 ms` and `ts = base − U[0, 20 s)` at microsecond resolution
//! (so events arrive up to 20 s out of order), a key drawn uniformly from `k0000`…, and a
//! value `0..=99` as `f64`. It is drawn with a seeded `SmallRng`, not numpy, so the rows
//! (and the sanity counts) differ from `peers.py`'s; the distributions are the same.
//!
//! Every case: key = `key`, event clock on `ts` waiting 10 s, per-key watermark, windows
//! aligned to 2024-01-01T00:00:00Z, micro-batches of 65,536 rows. Data is generated once,
//! outside the timing; each iteration builds a fresh operator, pushes every batch, finishes,
//! and keeps all outputs (down, late, meta, errors). Throughput is input events per second.
//!
//! Benchmark ids are `<case>/<events>ev_<keys>keys/threads/<n>`, e.g.
//! `tumbling_1m_count/1000000ev_1000keys/threads/1`.
//!
//! ```sh
//! cargo bench --bench throughput                         # everything, a few minutes
//! cargo bench --bench throughput -- tumbling_1m_count    # one case
//! WINDROW_BENCH_ROWS=200000 cargo bench --bench throughput   # a smaller dataset
//! ```

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, TimeDelta, Utc};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_main};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use windrow::prelude::*;

/// Events per run, unless `WINDROW_BENCH_ROWS` says otherwise.
const EVENTS: usize = 1_000_000;
/// Distinct keys.
const KEYS: usize = 1_000;
/// Rows per micro-batch.
const BATCH_ROWS: usize = 65_536;
/// Generator seed (the shared dataset's seed).
const SEED: u64 = 7;
/// Base time advances this much per event.
const SPACING_US: i64 = 18_000;
/// Each event lies up to this much before its base time.
const JITTER_US: i64 = 20_000_000;
/// Thread counts to measure.
const THREADS: [usize; 2] = [1, 2];

/// The benchmark dataset, already cut into micro-batches.
struct Dataset {
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
    events: usize,
    keys: usize,
}

/// 2024-01-01T00:00:00Z: the base time of event 0 and the window alignment.
fn t0() -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(1_704_067_200, 0).unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// Generates `events` events over `keys` keys (see the file docs), deterministically.
fn generate(events: usize, keys: usize, seed: u64) -> Dataset {
    let mut rng = SmallRng::seed_from_u64(seed);
    let t0_us = t0().timestamp_micros();
    let names: Vec<String> = (0..keys).map(|k| format!("k{k:04}")).collect();
    let mut key = Vec::with_capacity(events);
    let mut ts = Vec::with_capacity(events);
    let mut value = Vec::with_capacity(events);
    for i in 0..events {
        ts.push(t0_us + i as i64 * SPACING_US - rng.random_range(0..JITTER_US));
        key.push(names[rng.random_range(0..keys)].as_str());
        value.push(f64::from(rng.random_range(0..100_u8)));
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("key", DataType::Utf8, false),
        Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false),
        Field::new("value", DataType::Float64, false),
    ]));
    let whole = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(key)),
            Arc::new(TimestampMicrosecondArray::from(ts).with_timezone("UTC")),
            Arc::new(Float64Array::from(value)),
        ],
    )
    .unwrap_or_else(|e| panic!("benchmark data does not match its schema: {e}"));
    let batches = (0..events).step_by(BATCH_ROWS).map(|off| whole.slice(off, BATCH_ROWS.min(events - off))).collect();
    Dataset { schema, batches, events, keys }
}

/// The operators measured: the shared benchmark's case ids, plus sessions.
#[derive(Clone, Copy, Debug)]
enum Case {
    /// `count_window`, tumbling 1 min.
    TumblingCount,
    /// `agg_window` sum of `value`, tumbling 1 min.
    TumblingSum,
    /// `agg_window` sum of `value`, sliding 5 min every 1 min (each event in 5 windows).
    SlidingSum,
    /// `count_window`, sessions with a 30 s gap.
    SessionCount,
}

impl Case {
    const ALL: [Case; 4] = [Case::TumblingCount, Case::TumblingSum, Case::SlidingSum, Case::SessionCount];

    fn id(self) -> &'static str {
        match self {
            Case::TumblingCount => "tumbling_1m_count",
            Case::TumblingSum => "tumbling_1m_sum",
            Case::SlidingSum => "sliding_5m_1m_sum",
            Case::SessionCount => "session_30s_count",
        }
    }

    /// A fresh operator for one run.
    fn build(self, schema: &SchemaRef, threads: usize) -> windrow::Result<WindowOperator> {
        let clock = EventClock::new("ts").wait_for_system_duration(TimeDelta::seconds(10))?;
        let minute = TumblingWindower::new(TimeDelta::minutes(1))?.align_to(t0());
        let keyed = key_on(schema, ["key"]);
        let builder = match self {
            Case::TumblingCount => count_window(self.id(), schema, clock, minute, KeySpec::columns(["key"])),
            Case::TumblingSum => agg_window(self.id(), &keyed, clock, minute, vec![Agg::sum("value")]),
            Case::SlidingSum => {
                let sliding = SlidingWindower::new(TimeDelta::minutes(5), TimeDelta::minutes(1))?.align_to(t0());
                agg_window(self.id(), &keyed, clock, sliding, vec![Agg::sum("value")])
            }
            Case::SessionCount => {
                let sessions = SessionWindower::new(TimeDelta::seconds(30))?;
                count_window(self.id(), schema, clock, sessions, KeySpec::columns(["key"]))
            }
        };
        builder.scope(WatermarkScope::PerKey).threads(threads).build()
    }

    /// One full run: every batch, then end of input.
    fn run(self, data: &Dataset, threads: usize) -> windrow::Result<WindowOut> {
        self.build(&data.schema, threads)?.run(&data.batches)
    }
}

fn operators(c: &mut Criterion) {
    let events = std::env::var("WINDROW_BENCH_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(EVENTS);
    let data = generate(events, KEYS, SEED);
    for case in Case::ALL {
        let mut group = c.benchmark_group(format!("{}/{}ev_{}keys", case.id(), data.events, data.keys));
        group.throughput(Throughput::Elements(data.events as u64));
        for threads in THREADS {
            // Criterion calls this closure only for benchmarks its filter selects, possibly
            // several times; the sanity counts are printed once, outside the timing.
            let mut reported = false;
            group.bench_with_input(BenchmarkId::new("threads", threads), &threads, |b, &threads| {
                if !reported {
                    reported = true;
                    let out = case.run(&data, threads).unwrap_or_else(|e| panic!("{}: {e}", case.id()));
                    let [down, late, meta, errors] = out.row_counts();
                    eprintln!(
                        "{} threads={threads}: down {down}, late {late}, meta {meta}, errors {errors}",
                        case.id()
                    );
                }
                b.iter(|| {
                    let out = case.run(&data, threads).unwrap_or_else(|e| panic!("{}: {e}", case.id()));
                    black_box(out.row_counts())
                });
            });
        }
        group.finish();
    }
}

/// The benchmark group with small sample settings, so `cargo bench` finishes in minutes
/// (what `criterion_group!` would generate, written out so it can carry this comment).
fn benches() {
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .configure_from_args();
    operators(&mut c);
}

criterion_main!(benches);
