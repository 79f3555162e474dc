//! Injected system time (spec §11.1): frozen for replay, real for live, hand-driven for tests.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, TimeDelta, Utc};

/// Where an operator gets "system time" from.
///
/// ```
/// use windrow::time::{ManualTime, TimeSource};
/// use chrono::TimeDelta;
/// let hand = ManualTime::at_epoch();
/// let source = TimeSource::Manual(hand.clone());
/// let t0 = source.now_nanos();
/// hand.advance(TimeDelta::seconds(2));
/// assert_eq!(source.now_nanos() - t0, 2_000_000_000);
/// ```
#[derive(Clone, Debug)]
pub enum TimeSource {
    /// Replay mode: system time is frozen at this instant for the whole run, so outputs depend
    /// only on the data (the default for files and in-memory inputs).
    Frozen(DateTime<Utc>),
    /// Live mode: the real clock (made monotonic by the operator).
    Real,
    /// Tests: frozen until the test advances it.
    Manual(ManualTime),
}

impl TimeSource {
    /// Replay mode frozen at the current wall-clock instant.
    pub fn replay() -> Self {
        TimeSource::Frozen(Utc::now())
    }

    /// Current system time in nanoseconds since the Unix epoch.
    pub fn now_nanos(&self) -> i64 {
        match self {
            TimeSource::Frozen(t) => t.timestamp_nanos_opt().unwrap_or(i64::MAX),
            TimeSource::Real => Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX),
            TimeSource::Manual(m) => m.now_nanos(),
        }
    }

    /// Whether system time can advance during the run (live mode).
    pub fn is_live(&self) -> bool {
        !matches!(self, TimeSource::Frozen(_))
    }
}

impl Default for TimeSource {
    fn default() -> Self {
        TimeSource::replay()
    }
}

/// A hand-driven clock for tests and simulations; clones share the same instant.
#[derive(Clone, Debug)]
pub struct ManualTime(Arc<AtomicI64>);

impl ManualTime {
    /// Starts at the given instant.
    pub fn new(start: DateTime<Utc>) -> Self {
        ManualTime(Arc::new(AtomicI64::new(start.timestamp_nanos_opt().unwrap_or(0))))
    }

    /// Starts at the Unix epoch.
    pub fn at_epoch() -> Self {
        Self::new(DateTime::<Utc>::UNIX_EPOCH)
    }

    /// Moves time forward (or backward, to test monotonicity guards).
    pub fn advance(&self, by: TimeDelta) {
        let ns = by.num_nanoseconds().unwrap_or(i64::MAX);
        self.0.fetch_add(ns, Ordering::SeqCst);
    }

    /// Current instant in nanoseconds since the epoch.
    pub fn now_nanos(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}
