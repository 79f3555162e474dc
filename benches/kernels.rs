//! Kernel-level benchmarks: each stage of the engine's per-batch path on its own, with the
//! engine's code (`windrow::bench::kernels`), on the benchmark recipe's data (`windrow::bench::generate`).
//!
//! Benchmark ids are `<kernel>/<variant>`, e.g. `assign/sliding_5m_1m` or `intern/100000keys`;
//! throughput is rows per second.
//!
//! ```sh
//! cargo bench --bench kernels              # all kernels, about a minute
//! cargo bench --bench kernels -- intern    # one kernel
//! ```

use std::hint::black_box;
use std::time::Duration;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{TimeUnit, TimestampMicrosecondType};
use chrono::TimeDelta;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_main};
use windrow::bench::{generate, kernels};
use windrow::prelude::*;

/// Rows per kernel run: one micro-batch-sized slab times a few, to stay in cache like the
/// engine's per-batch work does.
const ROWS: usize = 262_144;
const SEED: u64 = 7;

fn timestamps(batches: &[RecordBatch]) -> Vec<i64> {
    batches.iter().flat_map(|b| b.column(1).as_primitive::<TimestampMicrosecondType>().values().to_vec()).collect()
}

fn assign(c: &mut Criterion) {
    let (_, batches) = generate(ROWS, 1000, SEED, ROWS);
    let times = timestamps(&batches);
    let mut group = c.benchmark_group("assign");
    group.throughput(Throughput::Elements(ROWS as u64));
    let windowers: [(&str, Windower); 3] = [
        ("tumbling_1m", TumblingWindower::new(TimeDelta::minutes(1)).map(Windower::from).expect("valid windower")),
        (
            "sliding_5m_1m",
            SlidingWindower::new(TimeDelta::minutes(5), TimeDelta::minutes(1))
                .map(Windower::from)
                .expect("valid windower"),
        ),
        (
            "sliding_90s_60s",
            SlidingWindower::new(TimeDelta::seconds(90), TimeDelta::seconds(60))
                .map(Windower::from)
                .expect("valid windower"),
        ),
    ];
    for (name, w) in windowers {
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| kernels::assign(&w, TimeUnit::Microsecond, black_box(&times)).expect("kernel run"))
        });
    }
    group.finish();
}

fn watermark(c: &mut Criterion) {
    let times = timestamps(&generate(ROWS, 1000, SEED, ROWS).1);
    let mut group = c.benchmark_group("watermark_and_late");
    group.throughput(Throughput::Elements(ROWS as u64));
    for keys in [100usize, 1000, 100_000] {
        let ids: Vec<u32> = (0..ROWS).map(|i| ((i as u64 * 2_654_435_761) % keys as u64) as u32).collect();
        group.bench_function(BenchmarkId::from_parameter(format!("{keys}keys")), |b| {
            b.iter(|| kernels::watermark_and_late(black_box(&ids), black_box(&times), keys, 10_000_000))
        });
    }
    group.finish();
}

fn intern(c: &mut Criterion) {
    let mut group = c.benchmark_group("intern");
    group.throughput(Throughput::Elements(ROWS as u64));
    for keys in [100usize, 1000, 100_000] {
        let (schema, batches) = generate(ROWS, keys, SEED, 65_536);
        group.bench_function(BenchmarkId::from_parameter(format!("{keys}keys")), |b| {
            b.iter(|| kernels::intern(&schema, &["key"], black_box(&batches)).expect("kernel run"))
        });
    }
    group.finish();
}

fn accumulate(c: &mut Criterion) {
    let (_, batches) = generate(ROWS, 1000, SEED, ROWS);
    let batch = &batches[0];
    let mut group = c.benchmark_group("accumulate");
    group.throughput(Throughput::Elements(ROWS as u64));
    // Slots as the engine sees them: about 3.5 rows per window, windows interleaved.
    let slots: Vec<u32> = (0..ROWS as u32).map(|i| (i / 4) ^ (i % 4)).collect();
    let cases: [(&str, Vec<Agg>); 4] = [
        ("count", vec![Agg::count()]),
        ("sum", vec![Agg::sum("value")]),
        ("mean", vec![Agg::mean("value")]),
        ("count_sum_min_max", vec![Agg::count(), Agg::sum("value"), Agg::min("value"), Agg::max("value")]),
    ];
    for (name, aggs) in cases {
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| kernels::accumulate(&aggs, black_box(batch), black_box(&slots)).expect("kernel run"))
        });
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

fn kernels_group() {
    let mut c = config().configure_from_args();
    assign(&mut c);
    watermark(&mut c);
    intern(&mut c);
    accumulate(&mut c);
}

criterion_main!(kernels_group);
