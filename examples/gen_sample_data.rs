//! Generates the bundled sample dataset `data/clicks.parquet`: one day of a website's click
//! stream, deterministically (seeded `SmallRng`), so the file can be regenerated bit for bit.
//!
//! ```sh
//! cargo run --example gen_sample_data            # writes data/clicks.parquet
//! cargo run --example gen_sample_data -- OUT.parquet
//! ```
//!
//! How the clicks are made (see `data/README.md` for the result):
//!
//! * **Visits.** A visit (a browsing session) belongs to one of 4,000 users drawn from a
//!   Zipf–Mandelbrot law (weight 1/(rank + 20)^1.2): the most active user makes about 1.5 % of
//!   the visits, the top 100 about half, and many users visit once or twice or not at all. Visits start
//!   on 2024-03-12 (UTC) with a daily rhythm: quiet at night, busiest around 16:00.
//! * **Clicks.** A visit has 1 + Geometric(mean 5) clicks. Each click's `duration_ms` (time on
//!   the page) is log-normal (median 8 s), and the next click of the visit follows after that
//!   duration, so about one gap in ten exceeds 30 s and splits a 30 s session.
//! * **Pages and bytes.** Pages are drawn from 32 paths (Zipf, s = 1.0); `bytes` is the page's
//!   typical transfer size times a random factor in [0.6, 1.4).
//! * **Arrival order.** Rows are written in *arrival* order: event time plus a delivery
//!   delay of 0–1.5 s (80 %), 1.5–30 s (19 %) or 1–10 minutes (1 %, e.g. a phone that was
//!   offline). Event times are therefore mostly increasing, and with a 30 s wait some
//!   minutes-delayed clicks are late.

use std::error::Error;
use std::f64::consts::PI;
use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{Float64Array, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use chrono::{TimeZone, Utc};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Rows in the file.
const ROWS: usize = 200_000;
/// Distinct users.
const USERS: usize = 4_000;
/// Generator seed.
const SEED: u64 = 20_240_312;
/// Milliseconds in a day.
const DAY_MS: i64 = 86_400_000;

/// The site's pages and their typical transfer size in bytes, most popular first.
const PAGES: [(&str, f64); 32] = [
    ("/", 412_000.0),
    ("/search", 96_000.0),
    ("/category/shoes", 388_000.0),
    ("/product/1042", 512_000.0),
    ("/cart", 74_000.0),
    ("/category/jackets", 371_000.0),
    ("/product/2210", 498_000.0),
    ("/login", 38_000.0),
    ("/category/sale", 402_000.0),
    ("/product/3375", 530_000.0),
    ("/checkout", 88_000.0),
    ("/account", 61_000.0),
    ("/product/4410", 476_000.0),
    ("/category/bags", 356_000.0),
    ("/checkout/payment", 92_000.0),
    ("/product/5127", 505_000.0),
    ("/wishlist", 143_000.0),
    ("/account/orders", 83_000.0),
    ("/checkout/confirm", 57_000.0),
    ("/help", 45_000.0),
    ("/product/6093", 489_000.0),
    ("/blog", 231_000.0),
    ("/help/shipping", 41_000.0),
    ("/product/7781", 517_000.0),
    ("/signup", 42_000.0),
    ("/blog/spring-sale", 684_000.0),
    ("/help/returns", 43_000.0),
    ("/compare", 166_000.0),
    ("/product/8802", 461_000.0),
    ("/blog/how-we-ship", 592_000.0),
    ("/about", 128_000.0),
    ("/contact", 36_000.0),
];

/// Draws ranks from a finite Zipf–Mandelbrot law, weight(k) = 1 / (k + q)^s for k = 1..=n,
/// by binary search in the cumulative weights.
struct Zipf {
    cumulative: Vec<f64>,
}

impl Zipf {
    fn new(n: usize, q: f64, s: f64) -> Self {
        let mut total = 0.0;
        let cumulative = (1..=n)
            .map(|k| {
                total += 1.0 / (k as f64 + q).powf(s);
                total
            })
            .collect();
        Zipf { cumulative }
    }

    /// A 0-based rank: 0 is the most popular.
    fn sample(&self, rng: &mut SmallRng) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(0.0);
        let u = rng.random::<f64>() * total;
        self.cumulative.partition_point(|&c| c <= u).min(self.cumulative.len() - 1)
    }
}

/// A standard normal draw (Box–Muller).
fn normal(rng: &mut SmallRng) -> f64 {
    let u1 = 1.0 - rng.random::<f64>(); // (0, 1], so ln is finite
    let u2 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (2.0 * PI * u2).cos()
}

/// A visit start within the day, with a daily rhythm peaking at 16:00 UTC.
fn visit_start(rng: &mut SmallRng) -> i64 {
    loop {
        let t = rng.random_range(0..DAY_MS);
        let phase = 2.0 * PI * (t as f64 / DAY_MS as f64 - 16.0 / 24.0);
        let density = 0.2 + 0.8 * (0.5 + 0.5 * phase.cos());
        if rng.random::<f64>() < density {
            return t;
        }
    }
}

/// One click before it is written.
struct Click {
    arrival: i64,
    ts: i64,
    user: usize,
    page: usize,
    duration_ms: i64,
    bytes: f64,
}

fn main() -> Result<(), Box<dyn Error>> {
    let out: PathBuf = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/clicks.parquet"));

    let mut rng = SmallRng::seed_from_u64(SEED);
    let users = Zipf::new(USERS, 20.0, 1.2);
    let pages = Zipf::new(PAGES.len(), 0.0, 1.0);
    let day_start = Utc.with_ymd_and_hms(2024, 3, 12, 0, 0, 0).single().ok_or("invalid start date")?.timestamp_millis();

    // Visits until there are enough clicks; the last visit is cut to hit ROWS exactly.
    let mut clicks: Vec<Click> = Vec::with_capacity(ROWS + 64);
    while clicks.len() < ROWS {
        let user = users.sample(&mut rng);
        let mut t = visit_start(&mut rng);
        // 1 + Geometric with mean 5 more clicks.
        let mut n = 1;
        while rng.random::<f64>() < 5.0 / 6.0 {
            n += 1;
        }
        for _ in 0..n {
            if t >= DAY_MS || clicks.len() == ROWS {
                break;
            }
            let duration_ms = (8_000.0 * normal(&mut rng).exp()).clamp(150.0, 1_800_000.0) as i64;
            let page = pages.sample(&mut rng);
            let bytes = (PAGES[page].1 * rng.random_range(0.6..1.4)).round();
            let delay = match rng.random::<f64>() {
                p if p < 0.80 => rng.random_range(0..1_500),
                p if p < 0.99 => rng.random_range(1_500..30_000),
                _ => rng.random_range(60_000..600_000),
            };
            clicks.push(Click { arrival: t + delay, ts: t, user, page, duration_ms, bytes });
            t += duration_ms;
        }
    }
    // Arrival order; the sort is stable, so ties keep generation order.
    clicks.sort_by_key(|c| c.arrival);

    let schema = Arc::new(Schema::new(vec![
        Field::new("user", DataType::Utf8, false),
        Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())), false),
        Field::new("page", DataType::Utf8, false),
        Field::new("duration_ms", DataType::Int64, false),
        Field::new("bytes", DataType::Float64, false),
    ]));
    let user_names: Vec<String> = (0..USERS).map(|u| format!("u{:04}", u + 1)).collect();
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from_iter_values(clicks.iter().map(|c| user_names[c.user].as_str()))),
            Arc::new(
                TimestampMillisecondArray::from_iter_values(clicks.iter().map(|c| day_start + c.ts))
                    .with_timezone("UTC"),
            ),
            Arc::new(StringArray::from_iter_values(clicks.iter().map(|c| PAGES[c.page].0))),
            Arc::new(Int64Array::from_iter_values(clicks.iter().map(|c| c.duration_ms))),
            Arc::new(Float64Array::from_iter_values(clicks.iter().map(|c| c.bytes))),
        ],
    )?;

    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(9)?))
        .set_max_row_group_row_count(Some(65_536))
        .build();
    let mut writer = ArrowWriter::try_new(File::create(&out)?, schema, Some(props))?;
    writer.write(&batch)?;
    writer.close()?;

    // A few facts for data/README.md.
    let mut per_user = vec![0usize; USERS];
    clicks.iter().for_each(|c| per_user[c.user] += 1);
    let distinct_users = per_user.iter().filter(|&&n| n > 0).count();
    let busiest = per_user.iter().copied().max().unwrap_or(0);
    let out_of_order = clicks.windows(2).filter(|w| w[1].ts < w[0].ts).count();
    let delayed_30s = clicks.iter().filter(|c| c.arrival - c.ts > 30_000).count();
    let first = clicks.iter().map(|c| c.ts).min().unwrap_or(0);
    let last = clicks.iter().map(|c| c.ts).max().unwrap_or(0);
    let show =
        |t: i64| chrono::DateTime::from_timestamp_millis(day_start + t).map_or_else(String::new, |t| t.to_rfc3339());
    println!("wrote {} ({} bytes)", out.display(), std::fs::metadata(&out)?.len());
    println!("  rows: {}; users: {distinct_users} (the busiest has {busiest} clicks)", clicks.len());
    println!("  event times: {} to {}", show(first), show(last));
    println!(
        "  rows with an earlier event time than the row before: {out_of_order}; delayed by more than 30 s: {delayed_30s}"
    );
    Ok(())
}
