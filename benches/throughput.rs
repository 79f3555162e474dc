//! End-to-end operator throughput (events/s) on the shared benchmark dataset.
//!
//! Data and cases are `windrow::bench`'s (shared with `windrow bench`): the recipe of
//! `shared/bench/README.md`'s generator (row *i* at `2024-01-01 + i × 18 ms − U[0, 20 s)`,
//! keys `k0000`…, values 0..99), drawn with a seeded `SmallRng` rather than numpy, so rows and
//! sanity counts differ slightly from `peers.py`'s. Every case: key = `key`, event clock on
//! `ts` waiting 10 s, per-key watermark, windows aligned to 2024-01-01T00:00:00Z,
//! micro-batches of 65,536 rows. Data is generated once,
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
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_main};
use windrow::bench::{BenchCase, generate};

/// Events per run, unless `WINDROW_BENCH_ROWS` says otherwise.
const EVENTS: usize = 1_000_000;
/// Distinct keys.
const KEYS: usize = 1_000;
/// Rows per micro-batch.
const BATCH_ROWS: usize = 65_536;
/// Generator seed (the shared dataset's seed).
const SEED: u64 = 7;
/// Thread counts to measure.
const THREADS: [usize; 2] = [1, 2];

fn operators(c: &mut Criterion) {
    let events = std::env::var("WINDROW_BENCH_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(EVENTS);
    let (schema, batches) = generate(events, KEYS, SEED, BATCH_ROWS);
    for case in BenchCase::ALL {
        let mut group = c.benchmark_group(format!("{}/{events}ev_{KEYS}keys", case.name()));
        group.throughput(Throughput::Elements(events as u64));
        for threads in THREADS {
            let run = || {
                case.operator(&schema, threads)
                    .and_then(|mut op| op.run(&batches))
                    .unwrap_or_else(|e| panic!("{}: {e}", case.name()))
            };
            // Criterion calls this closure only for benchmarks its filter selects, possibly
            // several times; the sanity counts are printed once, outside the timing.
            let mut reported = false;
            group.bench_with_input(BenchmarkId::new("threads", threads), &threads, |b, &threads| {
                if !reported {
                    reported = true;
                    let [down, late, meta, errors] = run().row_counts();
                    eprintln!(
                        "{} threads={threads}: down {down}, late {late}, meta {meta}, errors {errors}",
                        case.name()
                    );
                }
                b.iter(|| black_box(run().row_counts()));
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
