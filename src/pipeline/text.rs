//! The small text forms shared by pipeline files and the command line: durations
//! (`500ms`, `30s`, `1h30m`), waits (a duration or `forever`), aggregates (`sum:bytes`),
//! instants (RFC 3339) and column types (`utf8`, `timestamp_ms`).

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, TimeDelta, Utc};

use crate::agg::Agg;

/// The accepted duration forms, for help and error messages.
pub const DURATION_FORMS: &str = "an integer with a unit — ns, us, ms, s, m, h or d (e.g. 500ms, \
                                  30s, 5m, 1h) — or several of them (1h30m)";

/// The accepted aggregate forms, for help and error messages.
pub const AGGREGATE_FORMS: &str = "count, count:COL, sum:COL, mean:COL, min:COL, max:COL, first:COL, \
                                   last:COL or collect:COL";

/// The accepted column type names, for help and error messages.
pub const TYPE_NAMES: &str = "utf8, large_utf8, bool, int8, int16, int32, int64, uint8, uint16, uint32, \
                              uint64, float32, float64, timestamp_s, timestamp_ms, timestamp_us, timestamp_ns";

/// Parses `500ms`, `30s`, `5m`, `1h`, `1h30m`, …
///
/// ```
/// use windrow::pipeline::parse_duration;
/// assert_eq!(parse_duration("1h30m").unwrap(), chrono::TimeDelta::minutes(90));
/// assert!(parse_duration("30 seconds").is_err());
/// ```
///
/// # Errors
/// A message saying what was expected.
pub fn parse_duration(text: &str) -> Result<TimeDelta, String> {
    let bad = || format!("invalid duration \"{text}\": expected {DURATION_FORMS}");
    let s = text.trim();
    if s.is_empty() {
        return Err(bad());
    }
    let mut total = TimeDelta::zero();
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return Err(bad());
        }
        let n: i64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let part = match &rest[..unit_len] {
            "ns" => Some(TimeDelta::nanoseconds(n)),
            "us" | "µs" => Some(TimeDelta::microseconds(n)),
            "ms" => Some(TimeDelta::milliseconds(n)),
            "s" => TimeDelta::try_seconds(n),
            "m" | "min" => TimeDelta::try_minutes(n),
            "h" => TimeDelta::try_hours(n),
            "d" => TimeDelta::try_days(n),
            _ => return Err(bad()),
        };
        total = part.and_then(|p| total.checked_add(&p)).ok_or_else(|| format!("duration \"{text}\" is too large"))?;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

/// Shows a duration in the largest unit that divides it (`1m`, `90s`, `500ms`).
pub fn show_duration(d: TimeDelta) -> String {
    if d.is_zero() {
        return "0s".into();
    }
    let Some(ns) = d.num_nanoseconds() else {
        return format!("{}s", d.num_seconds());
    };
    const UNITS: [(i64, &str); 7] = [
        (86_400_000_000_000, "d"),
        (3_600_000_000_000, "h"),
        (60_000_000_000, "m"),
        (1_000_000_000, "s"),
        (1_000_000, "ms"),
        (1_000, "us"),
        (1, "ns"),
    ];
    UNITS.iter().find(|(per, _)| ns % per == 0).map_or_else(|| format!("{ns}ns"), |(per, u)| format!("{}{u}", ns / per))
}

/// A wait: a duration, or `None` for `forever`.
///
/// # Errors
/// A message saying what was expected.
pub fn parse_wait(text: &str) -> Result<Option<TimeDelta>, String> {
    if text.trim().eq_ignore_ascii_case("forever") {
        return Ok(None);
    }
    let d = parse_duration(text).map_err(|e| format!("{e}, or `forever`"))?;
    if d < TimeDelta::zero() {
        return Err(format!("invalid wait \"{text}\": it must not be negative"));
    }
    Ok(Some(d))
}

/// An RFC 3339 instant such as `2024-03-12T00:00:00Z`.
///
/// # Errors
/// A message saying what was expected.
pub fn parse_instant(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("invalid instant \"{text}\" ({e}): expected RFC 3339, e.g. 2024-03-12T00:00:00Z"))
}

/// An aggregate: `count`, `count:COL`, `sum:COL`, `mean:COL` (or `avg:COL`), `min:COL`,
/// `max:COL`, `first:COL`, `last:COL`, `collect:COL`.
///
/// # Errors
/// A message saying what was expected.
pub fn parse_aggregate(text: &str) -> Result<Agg, String> {
    let (func, column) = match text.split_once(':') {
        Some((f, c)) if !c.trim().is_empty() => (f.trim(), Some(c.trim())),
        Some(_) => {
            return Err(format!("invalid aggregate \"{text}\": the column is missing; expected {AGGREGATE_FORMS}"));
        }
        None => (text.trim(), None),
    };
    Ok(match (func.to_ascii_lowercase().as_str(), column) {
        ("count", None) => Agg::count(),
        ("count", Some(c)) => Agg::count_of(c),
        ("sum", Some(c)) => Agg::sum(c),
        ("mean" | "avg", Some(c)) => Agg::mean(c),
        ("min", Some(c)) => Agg::min(c),
        ("max", Some(c)) => Agg::max(c),
        ("first", Some(c)) => Agg::first(c),
        ("last", Some(c)) => Agg::last(c),
        ("collect", Some(c)) => Agg::collect(c),
        (f, None) if ["sum", "mean", "avg", "min", "max", "first", "last", "collect"].contains(&f) => {
            return Err(format!("invalid aggregate \"{text}\": `{f}` needs a column, e.g. {f}:bytes"));
        }
        _ => return Err(format!("invalid aggregate \"{text}\": expected {AGGREGATE_FORMS}")),
    })
}

/// A column type name (see [`TYPE_NAMES`]); timestamps take an optional zone (`tz`).
///
/// # Errors
/// A message listing the accepted names.
pub fn parse_type(name: &str, tz: Option<&str>) -> Result<DataType, String> {
    let ts = |unit| Ok(DataType::Timestamp(unit, tz.map(Arc::from)));
    let t = match name.trim().to_ascii_lowercase().as_str() {
        "utf8" | "string" | "str" => DataType::Utf8,
        "large_utf8" | "large_string" => DataType::LargeUtf8,
        "bool" | "boolean" => DataType::Boolean,
        "int8" => DataType::Int8,
        "int16" => DataType::Int16,
        "int32" => DataType::Int32,
        "int64" | "int" => DataType::Int64,
        "uint8" => DataType::UInt8,
        "uint16" => DataType::UInt16,
        "uint32" => DataType::UInt32,
        "uint64" => DataType::UInt64,
        "float32" => DataType::Float32,
        "float64" | "float" | "double" => DataType::Float64,
        "timestamp_s" => return ts(TimeUnit::Second),
        "timestamp_ms" => return ts(TimeUnit::Millisecond),
        "timestamp_us" => return ts(TimeUnit::Microsecond),
        "timestamp_ns" => return ts(TimeUnit::Nanosecond),
        other => return Err(format!("unknown column type \"{other}\"; the types are: {TYPE_NAMES}")),
    };
    if tz.is_some() {
        return Err(format!("`tz` applies to timestamp columns only, not to {name}"));
    }
    Ok(t)
}

/// A schema from `(name, type, tz, nullable)` column descriptions.
///
/// # Errors
/// An unknown type name, or a column named twice.
pub fn schema_of<'a>(
    columns: impl IntoIterator<Item = (&'a str, &'a str, Option<&'a str>, bool)>,
) -> Result<SchemaRef, String> {
    let mut fields: Vec<Field> = Vec::new();
    for (name, ty, tz, nullable) in columns {
        if fields.iter().any(|f| f.name() == name) {
            return Err(format!("column \"{name}\" is declared twice"));
        }
        let t = parse_type(ty, tz).map_err(|e| format!("column \"{name}\": {e}"))?;
        fields.push(Field::new(name, t, nullable));
    }
    if fields.is_empty() {
        return Err("the schema has no columns".into());
    }
    Ok(Arc::new(Schema::new(fields)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), TimeDelta::milliseconds(500));
        assert_eq!(parse_duration("1h30m").unwrap(), TimeDelta::minutes(90));
        assert_eq!(parse_duration("2d").unwrap(), TimeDelta::days(2));
        for bad in ["", "5", "m", "5 minutes", "1.5s", "-3s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(show_duration(TimeDelta::seconds(90)), "90s");
        assert_eq!(show_duration(TimeDelta::minutes(60)), "1h");
        assert_eq!(parse_wait("forever").unwrap(), None);
    }

    #[test]
    fn types() {
        assert_eq!(
            parse_type("timestamp_ms", Some("UTC")).unwrap(),
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
        );
        assert!(parse_type("utf8", Some("UTC")).is_err());
        assert!(parse_type("varchar", None).unwrap_err().contains("timestamp_ms"));
    }
}
