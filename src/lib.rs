//! # windrow
//!
//! bytewax's windowing operators — `collect_window`, `fold_window`, `reduce_window`,
//! `count_window`, `max_window`, `min_window` — with bytewax 0.21.1's exact semantics, on
//! Apache Arrow micro-batches. Events arrive as `RecordBatch`es; window assignment, the
//! per-key watermark and late detection run in one pass per batch; aggregation state is
//! columnar and sharded by key over a rayon pool; closed windows leave as `RecordBatch`es.
//!
//! The semantic contract is `spec/windowing-semantics.md` (shipped beside the project);
//! module docs cite its sections as "spec §n".
//!
//! ```
//! use std::sync::Arc;
//! use arrow::array::{Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
//! use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
//! use chrono::TimeDelta;
//! use windrow::prelude::*;
//!
//! let schema = Arc::new(Schema::new(vec![
//!     Field::new("key", DataType::Utf8, false),
//!     Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false),
//!     Field::new("value", DataType::Float64, false),
//! ]));
//! let s = 1_000_000;
//! let batch = RecordBatch::try_new(schema.clone(), vec![
//!     Arc::new(StringArray::from(vec!["a", "a", "a", "a"])),
//!     Arc::new(TimestampMicrosecondArray::from(vec![s, 5 * s, 12 * s, 11 * s]).with_timezone("UTC")),
//!     Arc::new(Float64Array::from(vec![1.0, 2.0, 3.0, 4.0])),
//! ]).unwrap();
//!
//! let events = key_on(&schema, ["key"]);
//! let mut op = agg_window("sums", &events, EventClock::new("ts"),
//!                         TumblingWindower::new(TimeDelta::seconds(10)).unwrap(),
//!                         vec![Agg::count(), Agg::sum("value")])
//!     .build().unwrap();
//! let out = op.run([&batch]).unwrap();
//! // window 0 holds 1 s and 5 s; 11 s arrived after 12 s pushed the watermark: it is late.
//! assert_eq!(out.row_counts(), [2, 1, 2, 0]);
//! ```

pub mod agg;
pub mod bench;
pub mod checkpoint;
mod cpu;
pub mod engine;
pub mod error;
pub mod flight;
pub mod flow;
pub mod ops;
pub mod pipeline;
pub mod sink;
pub mod source;
pub mod sql;
pub mod time;
pub mod window;

pub use error::{Result, WindrowError};

/// The README's Rust examples, compiled and run as doc tests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// The names most programs need.
pub mod prelude {
    pub use crate::agg::{Agg, AggFunc, CollectInto, EmitMode, FoldFns, InsertMode, Row, RowView};
    pub use crate::engine::{KeySpec, WindowOpBuilder, WindowOperator, WindowOut};
    pub use crate::ops::{
        JoinOpBuilder, JoinOperator, KeyedStream, WindowConfig, agg_window, collect_window, count_window, fold_window,
        join_window, key_on, max_window, min_window, reduce_window,
    };
    pub use crate::time::{Clock, EventClock, ManualTime, SystemClock, TimeSource, WatermarkScope};
    pub use crate::window::{SessionWindower, SlidingWindower, TumblingWindower, Windower};
    pub use crate::{Result, WindrowError};
}
