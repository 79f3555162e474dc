//! JSON helpers for the parity harness and its engine adapter.
//!
//! The adapter turns windrow's output into records of exactly the shapes of
//! the expected files (`shared/parity/README.md` §5.2–5.4). These helpers
//! build those shapes, format timestamps as `YYYY-MM-DDTHH:MM:SS.ffffffZ`
//! (§5.1) and convert scenario durations (seconds) to microseconds.
//!
//! Note: `serde_json` here does not preserve object field order, so the
//! records print with their fields in alphabetical order. The comparison does
//! not depend on field order.

// Not every helper is used by every adapter version.
#![allow(dead_code)]

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{Map, Number, Value};

/// Largest magnitude below which every integer is exact in `f64` (2^53).
const F64_EXACT_INT_LIMIT: f64 = 9_007_199_254_740_992.0;

/// Formats microseconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SS.ffffffZ`
/// (always UTC, exactly 6 fractional digits). Pre-epoch (negative) instants
/// work. An instant outside chrono's range (about ±262 000 years) gives a
/// `<out-of-range …>` marker, which never equals an expected timestamp.
pub fn format_ts_us(us: i64) -> String {
    match DateTime::<Utc>::from_timestamp_micros(us) {
        Some(dt) => dt.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
        None => format!("<out-of-range timestamp {us} us>"),
    }
}

/// Parses a timestamp in the format of README §5.1
/// (`2024-01-01T00:01:30.000000Z`) into microseconds since the Unix epoch.
/// The format is checked strictly: 6 fractional digits and a trailing `Z`.
pub fn parse_ts_us(s: &str) -> Result<i64, String> {
    let b = s.as_bytes();
    if b.len() != 27 || b[10] != b'T' || b[19] != b'.' || b[26] != b'Z' {
        return Err(format!("timestamp {s:?} is not in the format YYYY-MM-DDTHH:MM:SS.ffffffZ"));
    }
    let naive =
        NaiveDateTime::parse_from_str(&s[..26], "%Y-%m-%dT%H:%M:%S%.f").map_err(|e| format!("timestamp {s:?}: {e}"))?;
    Ok(naive.and_utc().timestamp_micros())
}

/// Converts a duration in seconds (a JSON number read as `f64`, README §3)
/// into whole microseconds. Fails on non-finite values, sub-microsecond
/// fractions and values that do not fit in `i64` microseconds (for example
/// the float rendering of Python's `timedelta.max`, which must be treated as
/// an infinite wait instead: see `clock.wait_is_timedelta_max`).
pub fn secs_to_us(secs: f64) -> Result<i64, String> {
    let us = secs * 1_000_000.0;
    if !us.is_finite() {
        return Err(format!("duration {secs} s is not finite"));
    }
    if us.fract() != 0.0 {
        return Err(format!("duration {secs} s is not a whole number of microseconds"));
    }
    // i64::MAX as f64 rounds up to 2^63, so `<` excludes it.
    if us >= i64::MAX as f64 || us < i64::MIN as f64 {
        return Err(format!("duration {secs} s does not fit in i64 microseconds"));
    }
    Ok(us as i64)
}

/// Reads `obj[field]` as a duration in seconds and converts it to
/// microseconds (see [`secs_to_us`]).
pub fn duration_field_us(obj: &Value, field: &str) -> Result<i64, String> {
    let secs = obj
        .get(field)
        .and_then(Value::as_f64)
        .ok_or_else(|| format!("missing or non-numeric duration field `{field}`"))?;
    secs_to_us(secs).map_err(|e| format!("`{field}`: {e}"))
}

/// Turns an `f64` into a JSON number. Integral values become JSON integers
/// (`15`, not `15.0`), like the expected files. Non-finite values become the
/// strings `"NaN"`, `"inf"`, `"-inf"`, which never equal an expected number
/// and show up plainly in a diff.
pub fn num(x: f64) -> Value {
    if x.is_finite() && x.fract() == 0.0 && x.abs() < F64_EXACT_INT_LIMIT {
        Value::from(x as i64)
    } else {
        match Number::from_f64(x) {
            Some(n) => Value::Number(n),
            None => Value::String(format!("{x}")),
        }
    }
}

/// A timestamp value (microseconds since the epoch) as a JSON string.
pub fn ts(us: i64) -> Value {
    Value::String(format_ts_us(us))
}

/// A `down` record (README §5.2): `{"key","window_id","result"}`.
pub fn down_record(key: &str, window_id: i64, result: Value) -> Value {
    let mut m = Map::new();
    m.insert("key".into(), Value::from(key));
    m.insert("window_id".into(), Value::from(window_id));
    m.insert("result".into(), result);
    Value::Object(m)
}

/// A `late` record (README §5.3): `{"key","window_id",["side",]"ts","value"}`.
/// `side` must be `Some(0|1)` for joins and `None` for every other operator.
pub fn late_record(key: &str, window_id: i64, side: Option<u8>, ts_us: i64, value: f64) -> Value {
    let mut m = Map::new();
    m.insert("key".into(), Value::from(key));
    m.insert("window_id".into(), Value::from(window_id));
    if let Some(side) = side {
        m.insert("side".into(), Value::from(side));
    }
    m.insert("ts".into(), ts(ts_us));
    m.insert("value".into(), num(value));
    Value::Object(m)
}

/// A `meta` record (README §5.4):
/// `{"key","window_id","open_time","close_time","merged_ids"}`.
/// `merged_ids` is written in ascending order whatever the input order.
pub fn meta_record(key: &str, window_id: i64, open_us: i64, close_us: i64, merged_ids: &[i64]) -> Value {
    let mut ids = merged_ids.to_vec();
    ids.sort_unstable();
    let mut m = Map::new();
    m.insert("key".into(), Value::from(key));
    m.insert("window_id".into(), Value::from(window_id));
    m.insert("open_time".into(), ts(open_us));
    m.insert("close_time".into(), ts(close_us));
    m.insert("merged_ids".into(), Value::Array(ids.into_iter().map(Value::from).collect()));
    Value::Object(m)
}

/// `count` result: an integer.
pub fn count_result(n: u64) -> Value {
    Value::from(n)
}

/// `collect` result: the list of values in the operator's order.
pub fn list_result(values: &[f64]) -> Value {
    Value::Array(values.iter().copied().map(num).collect())
}

/// `max`/`min` result: the chosen row as `{"ts","value"}`.
pub fn row_result(ts_us: i64, value: f64) -> Value {
    let mut m = Map::new();
    m.insert("ts".into(), ts(ts_us));
    m.insert("value".into(), num(value));
    Value::Object(m)
}

/// `join` result: `[left_or_null, right_or_null]`.
pub fn join_result(left: Option<f64>, right: Option<f64>) -> Value {
    let side = |v: Option<f64>| v.map_or(Value::Null, num);
    Value::Array(vec![side(left), side(right)])
}
