//! Windowers and all window arithmetic (spec §5). This is the only module that computes
//! window ids and bounds.
//!
//! Tumbling and sliding windows are `[align_to + k·offset, align_to + k·offset + length)`,
//! numbered from `align_to` with floor division, so timestamps before `align_to` get negative
//! ids. Session windows group a key's rows that are at most `gap` apart (module `session`).

pub(crate) mod session;

use arrow::datatypes::TimeUnit;
use chrono::{DateTime, TimeDelta, Utc};

use crate::error::{Result, config_err};
use crate::time::{duration_to_unit, instant_to_unit};

/// The id reported on `late` for a row that is late for a session window.
pub const LATE_SESSION_ID: i64 = -1;

/// Fixed, non-overlapping windows of one `length` (bytewax's `TumblingWindower`).
///
/// ```
/// use windrow::window::TumblingWindower;
/// use chrono::{TimeDelta, TimeZone, Utc};
/// let w = TumblingWindower::new(TimeDelta::minutes(5)).unwrap();
/// let ts = Utc.with_ymd_and_hms(1970, 1, 1, 0, 12, 0).unwrap();
/// let ids: Vec<i64> = w.windows_for_time(ts).unwrap().iter().map(|m| m.0).collect();
/// assert_eq!(ids, vec![2]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TumblingWindower {
    length: TimeDelta,
    align_to: DateTime<Utc>,
}

impl TumblingWindower {
    /// Windows of `length`, aligned to the Unix epoch.
    ///
    /// # Errors
    /// `length` must be positive.
    pub fn new(length: TimeDelta) -> Result<Self> {
        if length <= TimeDelta::zero() {
            return config_err(format!("tumbling window `length` = {length} must be > 0"));
        }
        Ok(TumblingWindower { length, align_to: DateTime::<Utc>::UNIX_EPOCH })
    }

    /// Window 0 starts at `align_to` (any instant; time zones are irrelevant to instants).
    pub fn align_to(mut self, align_to: DateTime<Utc>) -> Self {
        self.align_to = align_to;
        self
    }

    /// The windows containing `ts`: `(window_id, start, end)`.
    ///
    /// # Errors
    /// When the bounds are not representable as nanosecond instants.
    pub fn windows_for_time(&self, ts: DateTime<Utc>) -> Result<Vec<WindowMetadata>> {
        Windower::from(*self).windows_for_time(ts)
    }
}

/// Overlapping windows of `length` starting every `offset` (bytewax's `SlidingWindower`).
///
/// ```
/// use windrow::window::SlidingWindower;
/// use chrono::{TimeDelta, TimeZone, Utc};
/// let nine = Utc.with_ymd_and_hms(2023, 3, 16, 9, 0, 0).unwrap();
/// let w = SlidingWindower::new(TimeDelta::seconds(10), TimeDelta::seconds(3)).unwrap().align_to(nine);
/// let ids: Vec<i64> = w.windows_for_time(nine + TimeDelta::seconds(5)).unwrap().iter().map(|m| m.0).collect();
/// assert_eq!(ids, vec![-1, 0, 1]);
/// assert!(SlidingWindower::new(TimeDelta::minutes(10), TimeDelta::minutes(15)).is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlidingWindower {
    length: TimeDelta,
    offset: TimeDelta,
    align_to: DateTime<Utc>,
}

impl SlidingWindower {
    /// Windows of `length` starting every `offset`, aligned to the Unix epoch.
    ///
    /// # Errors
    /// `length > 0`, `offset > 0` and `offset <= length` (gapped windows are impossible).
    pub fn new(length: TimeDelta, offset: TimeDelta) -> Result<Self> {
        if length <= TimeDelta::zero() {
            return config_err(format!("sliding window `length` = {length} must be > 0"));
        }
        if offset <= TimeDelta::zero() {
            return config_err(format!("sliding window `offset` = {offset} must be > 0"));
        }
        if offset > length {
            return config_err(format!(
                "sliding window `offset` ({offset}) can't be longer than `length` ({length}); \
                 there would be undefined gaps between windows"
            ));
        }
        Ok(SlidingWindower { length, offset, align_to: DateTime::<Utc>::UNIX_EPOCH })
    }

    /// Window 0 starts at `align_to`.
    pub fn align_to(mut self, align_to: DateTime<Utc>) -> Self {
        self.align_to = align_to;
        self
    }

    /// The windows containing `ts`, ascending by id: `(window_id, start, end)`.
    ///
    /// # Errors
    /// When the bounds are not representable as nanosecond instants.
    pub fn windows_for_time(&self, ts: DateTime<Utc>) -> Result<Vec<WindowMetadata>> {
        Windower::from(*self).windows_for_time(ts)
    }
}

/// Session windows: a key's rows at most `gap` apart share a window (bytewax's
/// `SessionWindower`). Ids are per-key sequence numbers 0, 1, 2, …
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionWindower {
    gap: TimeDelta,
}

impl SessionWindower {
    /// Sessions separated by more than `gap`.
    ///
    /// # Errors
    /// `gap` must not be negative (0 is allowed: only equal timestamps share a session).
    pub fn new(gap: TimeDelta) -> Result<Self> {
        if gap < TimeDelta::zero() {
            return config_err(format!("session window `gap` = {gap} must not be negative"));
        }
        Ok(SessionWindower { gap })
    }
}

/// `(window_id, window_start, window_end)`: the seed API's `WindowMetadata` tuple.
pub type WindowMetadata = (i64, DateTime<Utc>, DateTime<Utc>);

/// Any windower.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Windower {
    /// Tumbling windows.
    Tumbling(TumblingWindower),
    /// Sliding windows.
    Sliding(SlidingWindower),
    /// Session windows.
    Session(SessionWindower),
}

impl From<TumblingWindower> for Windower {
    fn from(w: TumblingWindower) -> Self {
        Windower::Tumbling(w)
    }
}
impl From<SlidingWindower> for Windower {
    fn from(w: SlidingWindower) -> Self {
        Windower::Sliding(w)
    }
}
impl From<SessionWindower> for Windower {
    fn from(w: SessionWindower) -> Self {
        Windower::Session(w)
    }
}

impl Windower {
    /// The windows containing `ts`, ascending by id.
    ///
    /// # Errors
    /// Session membership depends on each key's history, so a [`SessionWindower`] returns an
    /// error rather than a guess; also when bounds are not representable.
    pub fn windows_for_time(&self, ts: DateTime<Utc>) -> Result<Vec<WindowMetadata>> {
        let BoundWindower::Fixed(fixed) = self.bind(TimeUnit::Nanosecond)? else {
            return config_err(
                "windows_for_time is not defined for session windows: session membership depends on \
                 each key's earlier rows",
            );
        };
        let t = instant_to_unit(ts, TimeUnit::Nanosecond, "timestamp")?;
        let Some((first, last)) = fixed.ids(t) else {
            return config_err(format!("window ids for {ts} are out of range"));
        };
        (first..=last)
            .map(|id| {
                let (s, e) = fixed
                    .bounds(id)
                    .ok_or_else(|| crate::error::WindrowError::Config(format!("window {id} bounds out of range")))?;
                Ok((id, DateTime::from_timestamp_nanos(s), DateTime::from_timestamp_nanos(e)))
            })
            .collect()
    }

    /// Converts the parameters to ticks of `unit`, exactly (spec §4.3).
    pub(crate) fn bind(&self, unit: TimeUnit) -> Result<BoundWindower> {
        let fixed = |length, offset, align| -> Result<BoundWindower> {
            Ok(BoundWindower::Fixed(FixedWindows {
                length: duration_to_unit(length, unit, "length")?,
                offset: duration_to_unit(offset, unit, "offset")?,
                align: instant_to_unit(align, unit, "align_to")?,
            }))
        };
        match *self {
            Windower::Tumbling(w) => fixed(w.length, w.length, w.align_to),
            Windower::Sliding(w) => fixed(w.length, w.offset, w.align_to),
            Windower::Session(w) => Ok(BoundWindower::Session { gap: duration_to_unit(w.gap, unit, "gap")? }),
        }
    }
}

/// A windower with its parameters in the input's timestamp unit.
#[derive(Clone, Copy, Debug)]
pub(crate) enum BoundWindower {
    Fixed(FixedWindows),
    Session { gap: i64 },
}

/// Tumbling (`offset == length`) or sliding windows in ticks.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FixedWindows {
    pub length: i64,
    pub offset: i64,
    pub align: i64,
}

impl FixedWindows {
    /// The id range `first..=last` of the windows containing `ts`, or `None` when the
    /// arithmetic overflows.
    ///
    /// `first = floor((d − length) / offset) + 1`, `last = floor(d / offset)`, `d = ts − align`.
    #[inline]
    pub fn ids(&self, ts: i64) -> Option<(i64, i64)> {
        let d = ts.checked_sub(self.align)?;
        if self.offset == self.length {
            let id = d.div_euclid(self.length);
            return Some((id, id));
        }
        let first = d.checked_sub(self.length)?.div_euclid(self.offset) + 1;
        Some((first, d.div_euclid(self.offset)))
    }

    /// The *pane* of windows `first..=last` (as [`ids`](Self::ids) returns them for some
    /// time): the span `[start, end)` of all times whose windows are exactly these, or `None`
    /// when not representable. A time is in it when it is at or after the start of window
    /// `last` and the end of window `first − 1`, and before the start of window `last + 1`
    /// and the end of window `first`.
    #[inline]
    pub fn pane(&self, first: i64, last: i64) -> Option<(i64, i64)> {
        let (first_start, first_end) = self.bounds(first)?;
        let (last_start, _) = self.bounds(last)?;
        let start = last_start.max(first_start.checked_sub(self.offset)?.checked_add(self.length)?);
        let end = last_start.checked_add(self.offset)?.min(first_end);
        Some((start, end))
    }

    /// `[start, end)` of window `id`, or `None` when not representable.
    #[inline]
    pub fn bounds(&self, id: i64) -> Option<(i64, i64)> {
        let start = id.checked_mul(self.offset)?.checked_add(self.align)?;
        Some((start, start.checked_add(self.length)?))
    }

    /// Whether every window containing `ts` has representable bounds.
    #[inline]
    pub fn representable(&self, ts: i64) -> bool {
        // Fast path: with moderate parameters, |ts| <= MAX/4 keeps every intermediate value
        // of `ids` and `bounds` within ±7/8 of the range (offset <= length <= MAX/8,
        // |align| <= MAX/8), so nothing can overflow.
        const EIGHTH: i64 = i64::MAX / 8;
        if self.length <= EIGHTH
            && self.align.unsigned_abs() <= EIGHTH as u64
            && ts.unsigned_abs() <= (2 * EIGHTH) as u64
        {
            return true;
        }
        match self.ids(ts) {
            Some((first, last)) => self.bounds(first).is_some() && self.bounds(last).is_some(),
            None => false,
        }
    }

    /// Whether every time of `times` is [`representable`](Self::representable).
    pub fn all_representable(&self, times: &[i64]) -> bool {
        // Usually decided by one OR over the column, which vectorises: every |ts| < 2^60 (any
        // time in µs, ms or s; ns up to 2006) is within the fast path's bound of `representable`.
        const EIGHTH: i64 = i64::MAX / 8;
        const BOUND: i64 = 1 << 60;
        if self.length <= EIGHTH && self.align.unsigned_abs() <= EIGHTH as u64 {
            let outside = times.iter().fold(0u64, |acc, &t| acc | (t.wrapping_add(BOUND) as u64 >> 61));
            if outside == 0 {
                return true;
            }
        }
        // Otherwise the extremes decide: the representable times are an interval.
        let (lo, hi) = times.iter().fold((i64::MAX, i64::MIN), |(lo, hi), &t| (lo.min(t), hi.max(t)));
        times.is_empty() || (self.representable(lo) && self.representable(hi))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn ids(length: i64, offset: i64, ts: DateTime<Utc>) -> Vec<i64> {
        let nine = Utc.with_ymd_and_hms(2023, 3, 16, 9, 0, 0).unwrap();
        let w = SlidingWindower::new(TimeDelta::seconds(length), TimeDelta::seconds(offset)).unwrap().align_to(nine);
        w.windows_for_time(ts).unwrap().iter().map(|m| m.0).collect()
    }

    /// The 26 id cases of bytewax's sliding windower tests (spec §15).
    #[test]
    fn bytewax_sliding_ids() {
        let at = |h: u32, m: u32, s: u32, ms: i64| {
            Utc.with_ymd_and_hms(2023, 3, 16, h, m, s).unwrap() + TimeDelta::milliseconds(ms)
        };
        let cases: &[(i64, i64, DateTime<Utc>, &[i64])] = &[
            (10, 5, at(9, 0, 13, 0), &[1, 2]),
            (10, 5, at(8, 59, 57, 0), &[-2, -1]),
            (10, 5, at(9, 0, 3, 0), &[-1, 0]),
            (10, 5, at(9, 0, 7, 0), &[0, 1]),
            (10, 5, at(9, 0, 15, 0), &[2, 3]),
            (10, 5, at(8, 59, 55, 0), &[-2, -1]),
            (10, 5, at(9, 0, 0, 0), &[-1, 0]),
            (10, 5, at(9, 0, 10, 0), &[1, 2]),
            (10, 3, at(9, 0, 11, 0), &[1, 2, 3]),
            (10, 3, at(9, 0, 11, 500), &[1, 2, 3]),
            (10, 3, at(8, 59, 59, 0), &[-3, -2, -1]),
            (10, 3, at(8, 59, 58, 500), &[-3, -2, -1]),
            (10, 3, at(9, 0, 5, 0), &[-1, 0, 1]),
            (10, 7, at(9, 0, 14, 0), &[1, 2]),
            (10, 7, at(8, 59, 53, 0), &[-2, -1]),
            (10, 7, at(9, 0, 0, 0), &[-1, 0]),
            (10, 7, at(9, 0, 17, 0), &[2]),
            (10, 7, at(8, 59, 56, 0), &[-1]),
            (10, 7, at(9, 0, 10, 0), &[1]),
            (10, 10, at(9, 0, 15, 0), &[1]),
            (10, 10, at(8, 59, 55, 0), &[-1]),
            (10, 10, at(9, 0, 5, 0), &[0]),
            (10, 10, at(9, 0, 20, 0), &[2]),
            (10, 10, at(8, 59, 50, 0), &[-1]),
            (10, 10, at(9, 0, 0, 0), &[0]),
            (10, 10, at(9, 0, 10, 0), &[1]),
        ];
        for (length, offset, ts, want) in cases {
            assert_eq!(ids(*length, *offset, *ts), *want, "L {length} / O {offset} at {ts}");
        }
    }

    #[test]
    fn invalid_parameters_are_rejected_with_their_name() {
        let s = TimeDelta::seconds;
        for (result, name) in [
            (TumblingWindower::new(s(0)).map(|_| ()), "length"),
            (TumblingWindower::new(s(-10)).map(|_| ()), "length"),
            (SlidingWindower::new(s(0), s(1)).map(|_| ()), "length"),
            (SlidingWindower::new(s(10), s(0)).map(|_| ()), "offset"),
            (SlidingWindower::new(s(10), s(-1)).map(|_| ()), "offset"),
            (SlidingWindower::new(s(10), s(15)).map(|_| ()), "offset"),
            (SessionWindower::new(s(-1)).map(|_| ()), "gap"),
        ] {
            let err = result.expect_err(name).to_string();
            assert!(err.contains(&format!("`{name}`")), "{err}");
        }
        assert!(SlidingWindower::new(s(10), s(10)).is_ok());
        assert!(SessionWindower::new(s(0)).is_ok());
    }

    #[test]
    fn negative_timestamps_use_floor_division() {
        let f = FixedWindows { length: 10, offset: 10, align: 0 };
        assert_eq!(f.ids(-1), Some((-1, -1)));
        assert_eq!(f.ids(-10), Some((-1, -1)));
        assert_eq!(f.ids(-11), Some((-2, -2)));
        assert_eq!(f.bounds(-2), Some((-20, -10)));
        let s = FixedWindows { length: 10, offset: 3, align: 0 };
        assert_eq!(s.ids(-1), Some((-3, -1)));
    }

    #[test]
    fn all_representable_agrees_with_representable_row_by_row() {
        let edges = [i64::MIN, i64::MIN + 1, -(1 << 61), -(1 << 60) - 1, -(1 << 60), -1, 0, 1];
        let mut times: Vec<i64> = edges.iter().flat_map(|&t| [t, t.saturating_neg()]).collect();
        times.extend([
            (1 << 60) - 1,
            1 << 60,
            i64::MAX / 4,
            i64::MAX / 4 + 1,
            i64::MAX - (1 << 60),
            i64::MAX - 1,
            i64::MAX,
        ]);
        let day = 86_400_000_000i64;
        for (length, offset, align) in [
            (60, 60, 0),
            (300, 60, 7),
            (day, day, -day),
            (i64::MAX / 2, 1, 0),
            (10, 3, i64::MAX / 2),
            (10, 10, i64::MIN),
            (i64::MAX / 8, 1, i64::MAX / 8),
            (i64::MAX, 1, 0),
        ] {
            let f = FixedWindows { length, offset, align };
            for (i, &a) in times.iter().enumerate() {
                for &b in &times[i..] {
                    let pair = [a, b];
                    let row_by_row = pair.iter().all(|&t| f.representable(t));
                    assert_eq!(f.all_representable(&pair), row_by_row, "{pair:?} with ({length}, {offset}, {align})");
                }
            }
            assert!(f.all_representable(&[]));
        }
    }

    #[test]
    fn a_pane_is_exactly_the_times_with_the_same_windows() {
        // Every combination of small lengths, offsets (including gaps: offset > length) and
        // alignments, against `ids` at every time around the origin.
        for length in 1..=7 {
            for offset in 1..=9 {
                for align in -3..=3 {
                    let f = FixedWindows { length, offset, align };
                    for ts in -40..40 {
                        let (first, last) = f.ids(ts).unwrap();
                        let (start, end) = f.pane(first, last).unwrap();
                        assert!(start <= ts && ts < end, "{f:?} ts {ts}: pane {start}..{end}");
                        for t in start - 3..end + 3 {
                            let same = f.ids(t) == Some((first, last));
                            assert_eq!(same, (start..end).contains(&t), "{f:?} ts {ts}, t {t}: pane {start}..{end}");
                        }
                    }
                }
            }
        }
        let f = FixedWindows { length: 10, offset: 5, align: 0 };
        assert_eq!(f.pane(i64::MAX / 5, i64::MAX / 5), None);
    }

    #[test]
    fn bounds_near_the_extremes_are_detected() {
        let f = FixedWindows { length: 10, offset: 10, align: 0 };
        assert!(!f.representable(i64::MAX - 3));
        assert!(f.representable(i64::MAX - 20));
        assert!(!f.representable(i64::MIN + 3));
    }

    #[test]
    fn session_windower_has_no_windows_for_time() {
        let w = Windower::from(SessionWindower::new(TimeDelta::seconds(1)).unwrap());
        assert!(w.windows_for_time(Utc::now()).is_err());
    }

    #[test]
    fn durations_not_in_the_unit_are_rejected() {
        let w = Windower::from(TumblingWindower::new(TimeDelta::milliseconds(1500)).unwrap());
        assert!(w.bind(TimeUnit::Second).is_err());
        assert!(w.bind(TimeUnit::Millisecond).is_ok());
        let aligned = TumblingWindower::new(TimeDelta::seconds(1)).unwrap().align_to(DateTime::from_timestamp_nanos(5));
        assert!(Windower::from(aligned).bind(TimeUnit::Microsecond).is_err());
    }
}
