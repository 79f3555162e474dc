//! The throughput benchmark's cases, shared by `windrow bench` and the criterion benches.
//!
//! The cases are those of `shared/bench` (`peers.py`): per-key event-time windows on `ts`,
//! wait 10 s, per-key watermark, aligned to 2024-01-01T00:00:00Z, over a `key`/`ts`/`value`
//! stream. Timing covers a full streaming run over batches already in memory: every batch
//! through the operator, end of input, all outputs materialised.

use std::sync::Arc;
use std::time::Instant;

use arrow::array::{Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::error::{Result, WindrowError};
use crate::prelude::*;

/// One benchmark case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BenchCase {
    /// Tumbling 1 minute, count.
    TumblingCount,
    /// Tumbling 1 minute, sum of `value`.
    TumblingSum,
    /// Sliding 5 minutes every minute, sum of `value`.
    SlidingSum,
    /// Sessions with a 30 s gap, count.
    SessionCount,
}

impl BenchCase {
    /// Every case, in report order.
    pub const ALL: [BenchCase; 4] =
        [BenchCase::TumblingCount, BenchCase::TumblingSum, BenchCase::SlidingSum, BenchCase::SessionCount];

    /// The case id used by `peers.py`.
    pub fn name(self) -> &'static str {
        match self {
            BenchCase::TumblingCount => "tumbling_1m_count",
            BenchCase::TumblingSum => "tumbling_1m_sum",
            BenchCase::SlidingSum => "sliding_5m_1m_sum",
            BenchCase::SessionCount => "session_30s_count",
        }
    }

    /// Parses a case id.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The operator of this case for a `key`/`ts`/`value` schema.
    ///
    /// # Errors
    /// When the schema lacks the columns.
    pub fn operator(self, schema: &SchemaRef, threads: usize) -> Result<WindowOperator> {
        let align: DateTime<Utc> = Utc
            .with_ymd_and_hms(2024, 1, 1, 0, 0, 0)
            .single()
            .ok_or_else(|| WindrowError::Internal("bad alignment instant".into()))?;
        let clock = EventClock::new("ts").wait_for_system_duration(TimeDelta::seconds(10))?;
        let minute = TumblingWindower::new(TimeDelta::minutes(1))?.align_to(align);
        let keyed = key_on(schema, ["key"]);
        let key = KeySpec::columns(["key"]);
        let builder = match self {
            BenchCase::TumblingCount => count_window(self.name(), schema, clock, minute, key),
            BenchCase::TumblingSum => agg_window(self.name(), &keyed, clock, minute, vec![Agg::sum("value")]),
            BenchCase::SlidingSum => {
                let w = SlidingWindower::new(TimeDelta::minutes(5), TimeDelta::minutes(1))?.align_to(align);
                agg_window(self.name(), &keyed, clock, w, vec![Agg::sum("value")])
            }
            BenchCase::SessionCount => {
                count_window(self.name(), schema, clock, SessionWindower::new(TimeDelta::seconds(30))?, key)
            }
        };
        builder.threads(threads).build()
    }
}

/// The result of one timed run.
#[derive(Clone, Debug)]
pub struct BenchResult {
    /// The case.
    pub case: BenchCase,
    /// Input rows.
    pub rows: u64,
    /// Wall-clock seconds of the timed run.
    pub seconds: f64,
    /// Late `(row, window)` pairs.
    pub late: u64,
    /// Windows closed (`down` rows).
    pub windows: u64,
}

impl BenchResult {
    /// Input rows per second.
    pub fn events_per_s(&self) -> f64 {
        self.rows as f64 / self.seconds
    }
}

/// Runs `case` over batches already in memory: all batches, end of input, outputs kept.
///
/// # Errors
/// As [`WindowOperator::push`].
pub fn run_case(case: BenchCase, schema: &SchemaRef, batches: &[RecordBatch], threads: usize) -> Result<BenchResult> {
    let mut op = case.operator(schema, threads)?;
    let start = Instant::now();
    let out = op.run(batches)?;
    let seconds = start.elapsed().as_secs_f64();
    let [down, late, _, _] = out.row_counts();
    Ok(BenchResult {
        case,
        rows: batches.iter().map(|b| b.num_rows() as u64).sum(),
        seconds,
        late: late as u64,
        windows: down as u64,
    })
}

/// Base time between consecutive rows of the benchmark recipe, in microseconds (18 ms: with
/// 1000 keys, about 3.3 events per key and minute).
pub const SPACING_US: i64 = 18_000;

/// Generates the benchmark stream with the recipe of `shared/bench` (not bit-identical to
/// its numpy generator): row `i` has base time `2024-01-01 + i × 18 ms` and
/// `ts = base − U[0, 20 s)` in microseconds, a uniform key among `keys` (`k0000`, …), and an
/// integer value 0..99 as `f64`.
pub fn generate(rows: usize, keys: usize, seed: u64, batch_rows: usize) -> (SchemaRef, Vec<RecordBatch>) {
    let generator = Generator::new(rows, keys, seed, batch_rows);
    (generator.schema(), generator.collect())
}

/// The stream of [`generate`], produced one batch at a time (bounded memory for any size);
/// the same seed gives the same rows whatever the batch size.
pub struct Generator {
    schema: SchemaRef,
    rng: SmallRng,
    names: Vec<String>,
    rows: usize,
    next: usize,
    batch_rows: usize,
    spacing_us: i64,
}

impl Generator {
    /// `rows` rows over `keys` keys, `batch_rows` rows per batch.
    pub fn new(rows: usize, keys: usize, seed: u64, batch_rows: usize) -> Self {
        Generator {
            schema: bench_schema(),
            rng: SmallRng::seed_from_u64(seed),
            names: (0..keys.max(1)).map(|k| format!("k{k:04}")).collect(),
            rows,
            next: 0,
            batch_rows: batch_rows.max(1),
            spacing_us: SPACING_US,
        }
    }

    /// Sets the base time between consecutive rows (default [`SPACING_US`], 18 ms). The
    /// same seed gives the same keys, values and jitter whatever the spacing.
    ///
    /// Scaling the spacing with `1000 / keys` holds the events per key and minute at the
    /// benchmark's 3.3 as the key count grows: windows stay as full and as many, and only the
    /// per-key state grows. (At the default spacing, more keys means more, emptier windows.)
    ///
    /// ```
    /// use windrow::bench::{Generator, SPACING_US};
    ///
    /// let keys = 100_000;
    /// let mut g = Generator::new(1000, keys, 7, 1000).spacing_us(SPACING_US * 1000 / keys as i64);
    /// let batch = g.next().unwrap();
    /// assert_eq!(batch.num_rows(), 1000);
    /// ```
    pub fn spacing_us(mut self, spacing_us: i64) -> Self {
        self.spacing_us = spacing_us;
        self
    }

    /// [`bench_schema`].
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Rows produced so far.
    pub fn rows_done(&self) -> usize {
        self.next
    }
}

impl Iterator for Generator {
    type Item = RecordBatch;

    fn next(&mut self) -> Option<RecordBatch> {
        let base = 1_704_067_200_000_000i64; // 2024-01-01T00:00:00Z in µs
        let i = self.next;
        if i >= self.rows {
            return None;
        }
        let n = self.batch_rows.min(self.rows - i);
        let mut k = Vec::with_capacity(n);
        let mut ts = Vec::with_capacity(n);
        let mut v = Vec::with_capacity(n);
        for j in i..i + n {
            k.push(self.names[self.rng.random_range(0..self.names.len())].as_str());
            // (Saturating: an absurd spacing gives clamped times, not a panic.)
            ts.push(
                base.saturating_add((j as i64).saturating_mul(self.spacing_us)) - self.rng.random_range(0..20_000_000),
            );
            v.push(f64::from(self.rng.random_range(0..100u8)));
        }
        let cols: Vec<arrow::array::ArrayRef> = vec![
            Arc::new(StringArray::from(k)),
            Arc::new(TimestampMicrosecondArray::from(ts).with_timezone("UTC")),
            Arc::new(Float64Array::from(v)),
        ];
        self.next += n;
        // The columns match the schema by construction.
        RecordBatch::try_new(self.schema.clone(), cols).ok()
    }
}

/// `key: Utf8, ts: Timestamp(µs, UTC), value: Float64`, all nullable (none is null): the
/// schema of `shared/bench/peers.py`'s dataset, which checks it, so that a `windrow gen` file
/// (say with another key count) can be handed to it with `--data`.
pub fn bench_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("key", DataType::Utf8, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true),
        Field::new("value", DataType::Float64, true),
    ]))
}

/// Stage-level entry points for the kernel benchmarks (`benches/kernels.rs`): each runs one
/// stage of the engine's per-batch path — window assignment, per-key watermark and late mask,
/// key interning, accumulator updates — with the engine's own code, in isolation. They exist
/// to be timed; they are not a stable API.
pub mod kernels {
    use arrow::array::RecordBatch;
    use arrow::datatypes::{SchemaRef, TimeUnit};

    use crate::agg::{AggFactory, BatchStore, BatchView, BuiltinFactory};
    use crate::engine::{BoundKeys, ClockState, KeySpec, KeyTable};
    use crate::error::{Result, plan_err};
    use crate::prelude::Agg;
    use crate::window::{BoundWindower, Windower};

    /// Window assignment: the id range of every timestamp (in `unit` ticks) under a tumbling
    /// or sliding windower. Returns the number of (row, window) pairs.
    ///
    /// # Errors
    /// A session windower (sessions are assigned per key, not by arithmetic), or parameters
    /// not representable in `unit`.
    pub fn assign(windower: &Windower, unit: TimeUnit, times: &[i64]) -> Result<u64> {
        let BoundWindower::Fixed(f) = windower.bind(unit)? else {
            return plan_err("kernels::assign takes a tumbling or sliding windower");
        };
        let mut pairs = 0u64;
        for &ts in times {
            if let Some((first, last)) = f.ids(ts) {
                pairs += (last - first + 1) as u64;
            }
        }
        Ok(pairs)
    }

    /// Per-key watermark and late mask (spec §4.1, replay mode): `keys[i]` is row `i`'s dense
    /// key id (below `key_count`), `wait` in ticks. Returns the number of late rows.
    pub fn watermark_and_late(keys: &[u32], times: &[i64], key_count: usize, wait: i64) -> usize {
        let mut clocks = vec![ClockState::new(0); key_count];
        let mut late = 0;
        for (&k, &ts) in keys.iter().zip(times) {
            let w = clocks[k as usize].offer(ts.checked_sub(wait), 0);
            late += usize::from(ts < w);
        }
        late
    }

    /// Key interning: encodes and hashes each batch's `key_columns` and interns every row's
    /// key in one table. Rows with a null key are skipped, as the engine refuses them before
    /// interning. Returns the number of distinct keys.
    ///
    /// # Errors
    /// Missing key columns or unsupported key types.
    pub fn intern(schema: &SchemaRef, key_columns: &[&str], batches: &[RecordBatch]) -> Result<usize> {
        let keys = BoundKeys::bind(&KeySpec::columns(key_columns.iter().copied()), schema)?;
        let mut table = KeyTable::default();
        for batch in batches {
            let encoded = keys.encode(batch, None)?;
            for r in 0..batch.num_rows() {
                if encoded.null_key.as_ref().is_some_and(|nulls| nulls[r].is_some()) {
                    continue;
                }
                table.intern(&encoded, r)?;
            }
        }
        Ok(table.len())
    }

    /// Accumulator updates: applies every row of `batch` to slot `slots[row]` for the given
    /// built-in aggregates, then evaluates every slot. Returns the number of result rows.
    ///
    /// # Errors
    /// What binding the aggregates reports.
    pub fn accumulate(aggs: &[Agg], batch: &RecordBatch, slots: &[u32]) -> Result<usize> {
        let factory = BuiltinFactory::bind(aggs, &batch.schema())?;
        let mut agg = factory.create();
        let slot_count = slots.iter().max().map_or(0, |m| *m as usize + 1);
        agg.ensure_slots(slot_count);
        let mut store = BatchStore::default();
        store.pin(0, batch);
        let rows: Vec<u32> = (0..batch.num_rows() as u32).collect();
        agg.update(&BatchView { seq: 0, batch }, &rows, slots, &mut store)?;
        let all: Vec<u32> = (0..slot_count as u32).collect();
        let out = agg.evaluate(&all, &mut store)?;
        store.unpin(0);
        Ok(out.first().map_or(0, |a| a.len()))
    }
}

/// The process's peak resident set size so far (Linux `VmHWM`), in bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Resets the peak RSS counter (Linux), so each case reports its own peak.
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_case_runs_on_a_small_stream() {
        let (schema, batches) = generate(20_000, 50, 7, 4096);
        for case in BenchCase::ALL {
            let r = run_case(case, &schema, &batches, 2).unwrap();
            assert_eq!(r.rows, 20_000);
            assert!(r.windows > 0 && r.late > 0, "{case:?}: {r:?}");
            assert_eq!(BenchCase::from_name(case.name()), Some(case));
        }
    }

    #[test]
    fn batch_size_does_not_change_the_rows() {
        let (schema, big) = generate(10_000, 20, 3, 10_000);
        let (_, small) = generate(10_000, 20, 3, 999);
        let a = arrow::compute::concat_batches(&schema, &big).unwrap();
        let b = arrow::compute::concat_batches(&schema, &small).unwrap();
        assert_eq!(a, b);
        assert_eq!(small.len(), 11);
    }

    /// The interning kernel skips null keys as the engine does, including a dictionary column
    /// whose rows are all null and whose dictionary is empty (it used to index into it).
    #[test]
    fn the_interning_kernel_skips_null_keys() {
        use arrow::array::{DictionaryArray, Int32Array, StringArray};
        use arrow::datatypes::Int32Type;
        let all_null = DictionaryArray::<Int32Type>::try_new(
            Int32Array::from(vec![None, None]),
            Arc::new(StringArray::from(Vec::<&str>::new())),
        )
        .unwrap();
        let mixed = StringArray::from(vec![Some("a"), None, Some("b"), Some("a")]);
        for (column, distinct_keys) in [(Arc::new(all_null) as arrow::array::ArrayRef, 0), (Arc::new(mixed), 2)] {
            let schema = Arc::new(Schema::new(vec![Field::new("k", column.data_type().clone(), true)]));
            let batch = RecordBatch::try_new(schema.clone(), vec![column.clone()]).unwrap();
            assert_eq!(kernels::intern(&schema, &["k"], &[batch]).unwrap(), distinct_keys);
        }
    }
}
