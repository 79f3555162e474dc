//! Time: units, exact duration conversion, injected time sources and clocks.
//!
//! windrow never reads the wall clock directly: every operator asks its [`TimeSource`]
//! (spec §11.1). Event time is kept as `i64` in the input's own unit; the watermark's
//! extremes `−∞`/`+∞` are `i64::MIN`/`i64::MAX` and are never used as instants.

mod clock;
mod source;

pub(crate) use clock::BoundTime;
pub use clock::{Clock, EventClock, SystemClock, TimeExpr, Wait, WatermarkScope};
pub use source::{ManualTime, TimeSource};

use arrow::datatypes::TimeUnit;
use chrono::{DateTime, TimeDelta, Utc};

use crate::error::{Result, config_err};

/// The watermark before anything happened (bytewax's `UTC_MIN`).
pub const NEG_INF: i64 = i64::MIN;
/// The watermark at end of input (bytewax's `UTC_MAX`).
pub const POS_INF: i64 = i64::MAX;

/// Nanoseconds in one tick of `unit`.
pub(crate) fn nanos_per_unit(unit: TimeUnit) -> i128 {
    match unit {
        TimeUnit::Second => 1_000_000_000,
        TimeUnit::Millisecond => 1_000_000,
        TimeUnit::Microsecond => 1_000,
        TimeUnit::Nanosecond => 1,
    }
}

/// Short name of a unit for messages.
pub(crate) fn unit_name(unit: TimeUnit) -> &'static str {
    match unit {
        TimeUnit::Second => "s",
        TimeUnit::Millisecond => "ms",
        TimeUnit::Microsecond => "µs",
        TimeUnit::Nanosecond => "ns",
    }
}

fn delta_nanos(d: TimeDelta) -> i128 {
    // num_seconds() rounds toward zero and subsec_nanos() carries the sign of d.
    i128::from(d.num_seconds()) * 1_000_000_000 + i128::from(d.subsec_nanos())
}

/// Converts a duration to ticks of `unit`, exactly.
///
/// # Errors
/// A duration that is not a whole number of ticks, or that does not fit `i64` ticks, is
/// rejected with a message naming `param` (spec §4.3).
pub(crate) fn duration_to_unit(d: TimeDelta, unit: TimeUnit, param: &str) -> Result<i64> {
    let ns = delta_nanos(d);
    let per = nanos_per_unit(unit);
    if ns % per != 0 {
        return config_err(format!(
            "`{param}` = {d} is not a whole number of {} (the input's timestamp unit)",
            unit_name(unit)
        ));
    }
    i64::try_from(ns / per)
        .or_else(|_| config_err(format!("`{param}` = {d} does not fit the range of {} timestamps", unit_name(unit))))
}

/// Converts an instant to ticks of `unit` since the Unix epoch, exactly.
///
/// # Errors
/// As [`duration_to_unit`].
pub(crate) fn instant_to_unit(t: DateTime<Utc>, unit: TimeUnit, param: &str) -> Result<i64> {
    duration_to_unit(t - DateTime::<Utc>::UNIX_EPOCH, unit, param)
}

/// Converts nanoseconds since the epoch to ticks of `unit`, rounding down (floor).
pub(crate) fn nanos_to_unit_floor(ns: i64, unit: TimeUnit) -> i64 {
    // The quotient of an i64 by a positive divisor >= 1 always fits i64.
    (i128::from(ns).div_euclid(nanos_per_unit(unit))) as i64
}

/// Converts ticks of `unit` to nanoseconds, saturating at the `i64` range.
pub(crate) fn unit_to_nanos_saturating(v: i64, unit: TimeUnit) -> i64 {
    let ns = i128::from(v) * nanos_per_unit(unit);
    ns.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_conversion_and_rejection() {
        let us = TimeUnit::Microsecond;
        assert_eq!(duration_to_unit(TimeDelta::seconds(5), us, "x").unwrap(), 5_000_000);
        assert_eq!(duration_to_unit(TimeDelta::milliseconds(-1500), TimeUnit::Millisecond, "x").unwrap(), -1500);
        let err = duration_to_unit(TimeDelta::milliseconds(1500), TimeUnit::Second, "length").unwrap_err();
        assert!(err.to_string().contains("`length`"), "{err}");
        assert_eq!(duration_to_unit(TimeDelta::nanoseconds(1), TimeUnit::Nanosecond, "x").unwrap(), 1);
        assert!(duration_to_unit(TimeDelta::nanoseconds(1), us, "x").is_err());
    }

    #[test]
    fn floor_of_negative_nanos() {
        assert_eq!(nanos_to_unit_floor(-1, TimeUnit::Microsecond), -1);
        assert_eq!(nanos_to_unit_floor(-1000, TimeUnit::Microsecond), -1);
        assert_eq!(nanos_to_unit_floor(1999, TimeUnit::Microsecond), 1);
    }
}
