//! Validation of one record against event contract v1.
//!
//! Every reader (NDJSON, CSV, Parquet, Kafka) turns a record into
//! [`RawFields`] and hands it to [`validate`]; there is one set of rules.

use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, FixedOffset};
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;

use crate::event::{Device, Kind, Process, RejectReason, MAX_RECORD_BYTES};

/// One field's value as the reader saw it.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar<'a> {
    /// A JSON string or a Parquet string column.
    Str(Cow<'a, str>),
    /// A CSV cell: untyped text, parsed as the field requires.
    Cell(&'a str),
    /// A JSON integer that fits an `i64`, or a value of a Parquet integer column.
    Int(i64),
    /// Any other JSON number (a fraction, an exponent, `-0`, an integer past `i64`),
    /// or a value of a Parquet float column.
    Float(f64),
    /// A JSON or Parquet boolean.
    Bool(bool),
    /// A Parquet timestamp with a time zone, already resolved.
    Instant {
        /// The instant, in microseconds since the Unix epoch (UTC).
        ts_us: i64,
        /// The zone's offset at that instant, in seconds east of UTC.
        offset_s: i32,
    },
    /// A Parquet timestamp without a time zone: its offset is unknown.
    NaiveTimestamp,
    /// An array or object where a scalar was expected.
    Nested,
}

impl<'de> Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scalar<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
                Ok(Scalar::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Scalar::Int(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
                Ok(i64::try_from(v).map(Scalar::Int).unwrap_or(Scalar::Float(v as f64)))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Scalar::Float(v))
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Scalar::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Scalar::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Scalar::Str(Cow::Owned(v)))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar::Nested)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar::Nested)
            }
        }
        d.deserialize_any(V)
    }
}

/// Known fields of a record, before validation. `None` is "absent"; a JSON
/// `null` and an empty CSV cell are absent too.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct RawFields<'a> {
    /// `event_id` as read: the record's id, unique per source.
    pub event_id: Option<Scalar<'a>>,
    /// `ts` as read: RFC 3339 text, or a Parquet timestamp.
    pub ts: Option<Scalar<'a>>,
    /// `site` as read: the site's name.
    pub site: Option<Scalar<'a>>,
    /// `worker` as read: the identifier received, before it is re-keyed; it is never
    /// written or logged.
    pub worker: Option<Scalar<'a>>,
    /// `kind` as read: what happened.
    pub kind: Option<Scalar<'a>>,
    /// `zone` as read (optional).
    pub zone: Option<Scalar<'a>>,
    /// `team` as read (optional).
    pub team: Option<Scalar<'a>>,
    /// `process` as read: the work process (optional).
    pub process: Option<Scalar<'a>>,
    /// `device` as read: the device that produced the event (optional).
    pub device: Option<Scalar<'a>>,
    /// `quantity` as read: units confirmed (optional).
    pub quantity: Option<Scalar<'a>>,
    /// `weight_kg` as read: mass handled by this scan, in kilograms (optional).
    pub weight_kg: Option<Scalar<'a>>,
    /// `threshold_s` as read: the threshold of an `idle_flag` or `speed_flag`, in
    /// seconds (optional).
    pub threshold_s: Option<Scalar<'a>>,
    /// `gap_s` as read: the gap a `justification_request` is about, in seconds
    /// (optional).
    pub gap_s: Option<Scalar<'a>>,
    /// `target_per_hour` as read: the quota of a `rate_target`, per hour (optional).
    pub target_per_hour: Option<Scalar<'a>>,
    /// Names of fields outside the contract: dropped, only counted.
    pub unknown: Vec<Cow<'a, str>>,
    /// A field given twice in one record.
    pub repeated: Option<&'static str>,
}

/// The place of a contract field's name in [`FIELDS`].
pub(crate) fn field_index(name: &str) -> Option<usize> {
    Some(match name {
        "event_id" => 0,
        "ts" => 1,
        "site" => 2,
        "worker" => 3,
        "kind" => 4,
        "zone" => 5,
        "team" => 6,
        "process" => 7,
        "device" => 8,
        "quantity" => 9,
        "weight_kg" => 10,
        "threshold_s" => 11,
        "gap_s" => 12,
        "target_per_hour" => 13,
        _ => return None,
    })
}

/// The names of the contract's fields, in documentation order.
pub const FIELDS: [&str; 14] = [
    "event_id",
    "ts",
    "site",
    "worker",
    "kind",
    "zone",
    "team",
    "process",
    "device",
    "quantity",
    "weight_kg",
    "threshold_s",
    "gap_s",
    "target_per_hour",
];

impl<'a> RawFields<'a> {
    /// The slot of a contract field, by name.
    pub fn slot(&mut self, name: &str) -> Option<(&'static str, &mut Option<Scalar<'a>>)> {
        let f = field_index(name)?;
        let slots = [
            &mut self.event_id,
            &mut self.ts,
            &mut self.site,
            &mut self.worker,
            &mut self.kind,
            &mut self.zone,
            &mut self.team,
            &mut self.process,
            &mut self.device,
            &mut self.quantity,
            &mut self.weight_kg,
            &mut self.threshold_s,
            &mut self.gap_s,
            &mut self.target_per_hour,
        ];
        Some((FIELDS[f], slots.into_iter().nth(f)?))
    }
}

impl<'de> Deserialize<'de> for RawFields<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawFields<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                let mut raw = RawFields::default();
                while let Some(key) = a.next_key::<Cow<'de, str>>()? {
                    if FIELDS.contains(&key.as_ref()) {
                        let v: Option<Scalar<'de>> = a.next_value()?;
                        let (name, slot) = raw.slot(&key).expect("a contract field");
                        // A repeat keeps the first value; the record is
                        // rejected anyway.
                        let repeated = slot.is_some();
                        if !repeated {
                            *slot = v;
                        }
                        if repeated && raw.repeated.is_none() {
                            raw.repeated = Some(name);
                        }
                    } else {
                        a.next_value::<IgnoredAny>()?;
                        raw.unknown.push(key);
                    }
                }
                Ok(raw)
            }
        }
        d.deserialize_map(V)
    }
}

/// A record that passed validation, before pseudonymisation.
#[derive(Debug, Clone, PartialEq)]
pub struct Valid<'a> {
    /// The record's `event_id`: 1 to 128 characters.
    pub event_id: Cow<'a, str>,
    /// Instant, microseconds since the Unix epoch (UTC).
    pub ts_us: i64,
    /// The offset carried by the timestamp, in seconds east of UTC.
    pub offset_s: i32,
    /// The site, `[A-Za-z0-9._-]{1,64}`.
    pub site: Cow<'a, str>,
    /// The identifier received: it lives only until it is re-keyed.
    pub worker: Cow<'a, str>,
    /// What happened.
    pub kind: Kind,
    /// The zone, same character set as `site`; `None` when absent.
    pub zone: Option<Cow<'a, str>>,
    /// The team, same character set as `site`; `None` when absent.
    pub team: Option<Cow<'a, str>>,
    /// The work process; `None` when absent.
    pub process: Option<Process>,
    /// The device that produced the event; `None` when absent.
    pub device: Option<Device>,
    /// Units confirmed, 1 to 10000; 1 for a scan that carried none, `None` for another
    /// kind without one.
    pub quantity: Option<u32>,
    /// Mass handled by this scan, in kilograms (0 to 1000); `None` when absent.
    pub weight_kg: Option<f64>,
    /// The threshold the employer's system used for an `idle_flag` or `speed_flag`, in
    /// seconds (> 0); `None` when absent.
    pub threshold_s: Option<f64>,
    /// The gap a `justification_request` is about, in seconds (>= 0); `None` when
    /// absent.
    pub gap_s: Option<f64>,
    /// The quota a `rate_target` sets or announces, per hour (> 0); `None` when absent.
    pub target_per_hour: Option<f64>,
}

/// Why a record was refused: a reason code and a message for people.
/// The message never quotes the `worker` value.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    /// The reason code, from the bounded set of [`RejectReason`].
    pub reason: RejectReason,
    /// What was wrong, for people: it may quote a value of the record, never the
    /// `worker` value.
    pub message: String,
}

impl Rejection {
    /// A rejection with this reason and message; the message must not quote the
    /// `worker` value.
    pub fn new(reason: RejectReason, message: impl Into<String>) -> Self {
        Rejection { reason, message: message.into() }
    }

    /// `too_large`, with the one message every reader gives for it.
    pub fn too_large(bytes: usize) -> Self {
        Rejection::new(
            RejectReason::TooLarge,
            format!("record of {bytes} bytes, over the limit of {MAX_RECORD_BYTES}"),
        )
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason, self.message)
    }
}

/// The live-ingest clock check: a timestamp more than `skew_us` ahead of
/// `now_us` is `future_timestamp`. Offline audits pass `None`.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// The clock's time, in microseconds since the Unix epoch (UTC).
    pub now_us: i64,
    /// How far ahead of `now_us` a timestamp may be, in microseconds, before it is
    /// `future_timestamp`.
    pub skew_us: i64,
    /// The service's store: an event whose local date is before this day
    /// (days since 1970-01-01) is older than the raw retention, in a folder
    /// the purge has removed or will remove: `expired_timestamp`.
    pub oldest_local_day: Option<i64>,
}

impl Clock {
    /// The current time, with a skew in seconds.
    pub fn now(skew_s: f64) -> Clock {
        Clock {
            now_us: chrono::Utc::now().timestamp_micros(),
            skew_us: (skew_s * 1e6).round() as i64,
            oldest_local_day: None,
        }
    }

    /// Whether an event at `ts_us` (UTC offset `offset_s`) is neither
    /// ahead of the clock beyond its skew nor on a local day the store no
    /// longer keeps: what [`validate`] checks of the clock.
    pub fn admits(&self, ts_us: i64, offset_s: i32) -> bool {
        let local_day = (ts_us + i64::from(offset_s) * 1_000_000).div_euclid(86_400_000_000);
        ts_us <= self.now_us.saturating_add(self.skew_us)
            && self.oldest_local_day.is_none_or(|o| local_day >= o)
    }

    /// Also refuses events older than `retention_days` before today (UTC),
    /// by their local date, as the purge counts.
    pub fn with_retention(mut self, retention_days: u32) -> Clock {
        let today = self.now_us.div_euclid(86_400_000_000);
        self.oldest_local_day = Some(today - i64::from(retention_days));
        self
    }
}

/// Parses one NDJSON line (already known to be UTF-8 and within size).
pub fn parse_json(line: &str) -> Result<RawFields<'_>, Rejection> {
    // The usual record, a flat object without escapes, the fast way; the
    // same fields as serde_json would give (crate::flat).
    if let Some(raw) = crate::flat::parse(line) {
        return Ok(raw);
    }
    let trimmed = line.trim_start();
    if !trimmed.starts_with('{') {
        return Err(Rejection::new(RejectReason::InvalidJson, "a record must be one JSON object"));
    }
    serde_json::from_str::<RawFields<'_>>(line)
        .map_err(|e| Rejection::new(RejectReason::InvalidJson, format!("not valid JSON: {e}")))
}

/// Checks the size and encoding of a raw record.
pub fn check_bytes(bytes: &[u8]) -> Result<&str, Rejection> {
    if bytes.len() > MAX_RECORD_BYTES {
        return Err(Rejection::too_large(bytes.len()));
    }
    std::str::from_utf8(bytes).map_err(|e| {
        Rejection::new(
            RejectReason::InvalidUtf8,
            format!("bytes are not UTF-8 (first bad byte at {})", e.valid_up_to()),
        )
    })
}

pub(crate) fn site_charset_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

fn required<'a, 'b>(v: &'b Option<Scalar<'a>>, name: &str) -> Result<&'b Scalar<'a>, Rejection> {
    v.as_ref().ok_or_else(|| Rejection::new(RejectReason::MissingField, format!("`{name}` is required")))
}

fn text<'a>(v: &Scalar<'a>, name: &str) -> Result<Cow<'a, str>, Rejection> {
    match v {
        Scalar::Str(s) => Ok(s.clone()),
        Scalar::Cell(s) => Ok(Cow::Borrowed(*s)),
        other => Err(Rejection::new(
            RejectReason::InvalidType,
            format!("`{name}` must be a string, got {}", type_name(other)),
        )),
    }
}

fn type_name(v: &Scalar<'_>) -> &'static str {
    match v {
        Scalar::Str(_) | Scalar::Cell(_) => "a string",
        Scalar::Int(_) => "an integer",
        Scalar::Float(_) => "a number",
        Scalar::Bool(_) => "a boolean",
        Scalar::Instant { .. } => "a timestamp",
        Scalar::NaiveTimestamp => "a timestamp without a time zone",
        Scalar::Nested => "an array or object",
    }
}

fn number(v: &Scalar<'_>, name: &str) -> Result<f64, Rejection> {
    let bad_type = || {
        Rejection::new(RejectReason::InvalidType, format!("`{name}` must be a number, got {}", type_name(v)))
    };
    let x = match v {
        Scalar::Int(i) => *i as f64,
        Scalar::Float(f) => *f,
        Scalar::Cell(s) => s.trim().parse::<f64>().map_err(|_| bad_type())?,
        _ => return Err(bad_type()),
    };
    if !x.is_finite() {
        return Err(Rejection::new(RejectReason::InvalidValue, format!("`{name}` must be finite")));
    }
    Ok(x)
}

fn integer(v: &Scalar<'_>, name: &str) -> Result<i64, Rejection> {
    let bad_type = || {
        Rejection::new(
            RejectReason::InvalidType,
            format!("`{name}` must be an integer, got {}", type_name(v)),
        )
    };
    match v {
        Scalar::Int(i) => Ok(*i),
        // Parquet float columns and JSON `3.0` carry whole numbers too.
        Scalar::Float(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(*f as i64),
        Scalar::Cell(s) => s.trim().parse::<i64>().map_err(|_| bad_type()),
        _ => Err(bad_type()),
    }
}

fn bounded_text<'a>(v: &Option<Scalar<'a>>, name: &str, max: usize) -> Result<Cow<'a, str>, Rejection> {
    let s = text(required(v, name)?, name)?;
    // Bytes bound characters from above: count them only past `max` bytes.
    if s.is_empty() || (s.len() > max && s.chars().count() > max) {
        let n = s.chars().count();
        return Err(Rejection::new(
            RejectReason::InvalidValue,
            format!("`{name}` must have 1 to {max} characters, has {n}"),
        ));
    }
    Ok(s)
}

fn label<'a>(v: &Option<Scalar<'a>>, name: &str) -> Result<Option<Cow<'a, str>>, Rejection> {
    let Some(v) = v else { return Ok(None) };
    let s = text(v, name)?;
    if !site_charset_ok(&s) {
        return Err(Rejection::new(
            RejectReason::InvalidValue,
            format!("`{name}` must match [A-Za-z0-9._-]{{1,64}}"),
        ));
    }
    Ok(Some(s))
}

fn enumerated<T>(
    v: &Option<Scalar<'_>>,
    name: &str,
    parse: fn(&str) -> Option<T>,
    allowed: &str,
) -> Result<Option<T>, Rejection> {
    let Some(v) = v else { return Ok(None) };
    let s = text(v, name)?;
    parse(&s).map(Some).ok_or_else(|| {
        Rejection::new(
            RejectReason::InvalidValue,
            format!("`{name}` must be one of {allowed}, got {:?}", truncate(&s, 40)),
        )
    })
}

fn ranged(
    v: &Option<Scalar<'_>>,
    name: &str,
    ok: fn(f64) -> bool,
    rule: &str,
) -> Result<Option<f64>, Rejection> {
    let Some(v) = v else { return Ok(None) };
    let x = number(v, name)?;
    if !ok(x) {
        return Err(Rejection::new(RejectReason::InvalidValue, format!("`{name}` must be {rule}, got {x}")));
    }
    Ok(Some(x))
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// Parses an RFC 3339 timestamp with an explicit offset into microseconds
/// since the epoch and the offset in seconds.
/// 0000-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z, in microseconds:
/// the range of an RFC 3339 timestamp.
pub const MIN_TS_US: i64 = -62_167_219_200_000_000;
/// 9999-12-31T23:59:59.999999Z, in microseconds since the Unix epoch: the latest
/// instant RFC 3339 text can express.
pub const MAX_TS_US: i64 = 253_402_300_799_999_999;

/// Parses an RFC 3339 timestamp with an explicit offset (`Z` or `+01:00`) into
/// microseconds since the Unix epoch (UTC) and the offset in seconds east of UTC;
/// `None` when `s` is not one.
pub fn parse_ts(s: &str) -> Option<(i64, i32)> {
    // The usual form the fast way (property-tested against chrono's).
    crate::columnar::parse_ts_fast(s).or_else(|| parse_ts_chrono(s))
}

/// [`parse_ts`] by chrono alone: the reference the fast parser is held to.
pub(crate) fn parse_ts_chrono(s: &str) -> Option<(i64, i32)> {
    let dt: DateTime<FixedOffset> = DateTime::parse_from_rfc3339(s).ok()?;
    // chrono accepts `-00:00` too; it still is an explicit offset.
    Some((dt.timestamp_micros(), dt.offset().local_minus_utc()))
}

/// Applies every rule of event contract v1 to one record.
pub fn validate<'a>(raw: &RawFields<'a>, clock: Option<Clock>) -> Result<Valid<'a>, Rejection> {
    if let Some(name) = raw.repeated {
        return Err(Rejection::new(RejectReason::InvalidValue, format!("`{name}` is given more than once")));
    }
    // Presence first, so that a record missing several fields names the
    // first missing one in documentation order.
    for (name, v) in [
        ("event_id", &raw.event_id),
        ("ts", &raw.ts),
        ("site", &raw.site),
        ("worker", &raw.worker),
        ("kind", &raw.kind),
    ] {
        required(v, name)?;
    }
    let event_id = bounded_text(&raw.event_id, "event_id", 128)?;
    let (ts_us, offset_s) = match required(&raw.ts, "ts")? {
        // A typed timestamp (Parquet) gets the range RFC 3339 text has:
        // years 0000 to 9999, an offset within a day.
        Scalar::Instant { ts_us, offset_s }
            if !(MIN_TS_US..=MAX_TS_US).contains(ts_us) || offset_s.abs() >= 86_400 =>
        {
            return Err(Rejection::new(
                RejectReason::InvalidTimestamp,
                "`ts` is outside the years 0000 to 9999, or its offset is a day or more",
            ))
        }
        Scalar::Instant { ts_us, offset_s } => (*ts_us, *offset_s),
        Scalar::NaiveTimestamp => {
            return Err(Rejection::new(
                RejectReason::InvalidTimestamp,
                "`ts` is a timestamp without a time zone: its offset is unknown",
            ))
        }
        v => {
            let s = text(v, "ts")?;
            parse_ts(&s).ok_or_else(|| {
                Rejection::new(
                    RejectReason::InvalidTimestamp,
                    format!("`ts` must be RFC 3339 with an explicit offset, got {:?}", truncate(&s, 40)),
                )
            })?
        }
    };
    if let Some(c) = clock {
        if ts_us > c.now_us.saturating_add(c.skew_us) {
            return Err(Rejection::new(
                RejectReason::FutureTimestamp,
                format!(
                    "`ts` is {:.0} s ahead of the clock (allowed skew {:.0} s)",
                    (ts_us - c.now_us) as f64 / 1e6,
                    c.skew_us as f64 / 1e6
                ),
            ));
        }
    }
    let site = label(&raw.site, "site")?.expect("required above");
    // The worker value is never quoted in a message.
    let worker = text(required(&raw.worker, "worker")?, "worker")?;
    if worker.is_empty() || (worker.len() > 128 && worker.chars().count() > 128) {
        let n = worker.chars().count();
        return Err(Rejection::new(
            RejectReason::InvalidValue,
            format!("`worker` must have 1 to 128 characters, has {n}"),
        ));
    }
    let kind =
        enumerated(&raw.kind, "kind", Kind::parse, "the kinds of docs/events.md")?.expect("required above");
    let zone = label(&raw.zone, "zone")?;
    let team = label(&raw.team, "team")?;
    let process = enumerated(
        &raw.process,
        "process",
        Process::parse,
        "pick, stow, pack, receive, replenish, load, other",
    )?;
    let device = enumerated(&raw.device, "device", Device::parse, "scanner, voice, other")?;
    let quantity = match &raw.quantity {
        None => None,
        Some(v) => {
            let q = integer(v, "quantity")?;
            if !(1..=10_000).contains(&q) {
                return Err(Rejection::new(
                    RejectReason::InvalidValue,
                    format!("`quantity` must be 1 to 10000, got {q}"),
                ));
            }
            Some(q as u32)
        }
    };
    let quantity = match (kind, quantity) {
        (Kind::Scan, None) => Some(1),
        (_, q) => q,
    };
    let weight_kg = ranged(&raw.weight_kg, "weight_kg", |x| (0.0..=1000.0).contains(&x), "0 to 1000")?;
    let threshold_s = ranged(&raw.threshold_s, "threshold_s", |x| x > 0.0, "> 0")?;
    let gap_s = ranged(&raw.gap_s, "gap_s", |x| x >= 0.0, ">= 0")?;
    let target_per_hour = ranged(&raw.target_per_hour, "target_per_hour", |x| x > 0.0, "> 0")?;
    // Last: a record otherwise valid whose day the store no longer keeps
    // (a defect of the record itself is reported first).
    if let Some(oldest) = clock.and_then(|c| c.oldest_local_day) {
        let local_day = (ts_us + i64::from(offset_s) * 1_000_000).div_euclid(86_400_000_000);
        if local_day < oldest {
            return Err(Rejection::new(
                RejectReason::ExpiredTimestamp,
                "`ts` is older than the store's raw retention: its day is already purged",
            ));
        }
    }
    Ok(Valid {
        event_id,
        ts_us,
        offset_s,
        site,
        worker,
        kind,
        zone,
        team,
        process,
        device,
        quantity,
        weight_kg,
        threshold_s,
        gap_s,
        target_per_hour,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(line: &str) -> Result<Valid<'_>, Rejection> {
        let s = check_bytes(line.as_bytes())?;
        let raw = parse_json(s)?;
        validate(&raw, None)
    }

    const OK: &str = r#"{"event_id":"e1","ts":"2026-03-02T08:00:00.250+01:00","site":"lyon-1","worker":"w1","kind":"scan"}"#;

    #[test]
    fn accepts_the_minimal_record_and_defaults_quantity() {
        let v = check(OK).unwrap();
        assert_eq!(v.offset_s, 3600);
        // 2026-03-02T07:00:00.25Z
        assert_eq!(v.ts_us, 1_772_434_800_250_000);
        assert_eq!(v.quantity, Some(1));
        assert_eq!(v.kind, Kind::Scan);
    }

    #[test]
    fn reason_codes() {
        let cases: &[(&str, RejectReason)] = &[
            ("{\"event_id\":", RejectReason::InvalidJson),
            ("[1,2]", RejectReason::InvalidJson),
            (
                r#"{"ts":"2026-03-02T08:00:00Z","site":"a","worker":"w","kind":"scan"}"#,
                RejectReason::MissingField,
            ),
            (
                r#"{"event_id":null,"ts":"2026-03-02T08:00:00Z","site":"a","worker":"w","kind":"scan"}"#,
                RejectReason::MissingField,
            ),
            (
                r#"{"event_id":7,"ts":"2026-03-02T08:00:00Z","site":"a","worker":"w","kind":"scan"}"#,
                RejectReason::InvalidType,
            ),
            (
                r#"{"event_id":"e","ts":"2026-03-02T08:00:00Z","site":"a","worker":"w","kind":"scan","quantity":"3"}"#,
                RejectReason::InvalidType,
            ),
            (
                r#"{"event_id":"e","ts":"2026-03-02T08:00:00Z","site":"a","worker":"w","kind":"scan","quantity":2.5}"#,
                RejectReason::InvalidType,
            ),
            (
                r#"{"event_id":"e","ts":"2026-03-02T08:00:00Z","site":"a b","worker":"w","kind":"scan"}"#,
                RejectReason::InvalidValue,
            ),
            (
                r#"{"event_id":"e","ts":"2026-03-02T08:00:00Z","site":"a","worker":"w","kind":"nap"}"#,
                RejectReason::InvalidValue,
            ),
            (
                r#"{"event_id":"e","ts":"2026-03-02T08:00:00Z","site":"a","worker":"w","kind":"scan","quantity":0}"#,
                RejectReason::InvalidValue,
            ),
            (
                r#"{"event_id":"e","ts":"2026-03-02T08:00:00Z","site":"a","worker":"w","kind":"scan","event_id":"f"}"#,
                RejectReason::InvalidValue,
            ),
            (
                r#"{"event_id":"","ts":"2026-03-02T08:00:00Z","site":"a","worker":"w","kind":"scan"}"#,
                RejectReason::InvalidValue,
            ),
            (
                r#"{"event_id":"e","ts":"2026-03-02T08:00:00","site":"a","worker":"w","kind":"scan"}"#,
                RejectReason::InvalidTimestamp,
            ),
            (
                r#"{"event_id":"e","ts":"yesterday","site":"a","worker":"w","kind":"scan"}"#,
                RejectReason::InvalidTimestamp,
            ),
        ];
        for (line, want) in cases {
            let got = check(line).expect_err(line);
            assert_eq!(got.reason, *want, "{line}: {}", got.message);
        }
    }

    /// Each contract field's name is found at its place, and in its slot.
    #[test]
    fn field_names_and_places_agree() {
        for (i, name) in FIELDS.iter().enumerate() {
            assert_eq!(field_index(name), Some(i), "{name}");
            let mut raw = RawFields::default();
            let (got, slot) = raw.slot(name).unwrap();
            assert_eq!(got, *name);
            *slot = Some(Scalar::Int(i as i64));
            assert_eq!(format!("{raw:?}").matches(&format!("Int({i})")).count(), 1, "{name}");
        }
        assert_eq!(field_index("badge"), None);
        assert!(RawFields::default().slot("Worker").is_none());
    }

    #[test]
    fn unknown_fields_are_listed_not_kept() {
        let line = r#"{"event_id":"e","ts":"2026-03-02T08:00:00Z","site":"a","worker":"w","kind":"scan","badge":"B7","name":"x"}"#;
        let raw = parse_json(line).unwrap();
        assert_eq!(raw.unknown, vec!["badge", "name"]);
        assert!(validate(&raw, None).is_ok());
    }

    #[test]
    fn future_timestamps_only_with_a_clock() {
        let raw = parse_json(OK).unwrap();
        let (ts, _) = parse_ts("2026-03-02T07:00:00.25Z").unwrap();
        let ahead = Clock { now_us: ts - 301_000_000, skew_us: 300_000_000, oldest_local_day: None };
        assert_eq!(validate(&raw, Some(ahead)).unwrap_err().reason, RejectReason::FutureTimestamp);
        let within = Clock { now_us: ts - 300_000_000, skew_us: 300_000_000, oldest_local_day: None };
        assert!(validate(&raw, Some(within)).is_ok());
    }

    #[test]
    fn with_a_retention_older_days_expire_by_their_local_date() {
        // OK is 2026-03-02T08:00:00+01:00: local day 2026-03-02, UTC
        // 07:00. With a clock on 2026-03-09 and 7 days of retention, the
        // oldest day kept is 2026-03-02: kept. With 6 days: expired.
        let raw = parse_json(OK).unwrap();
        let (now, _) = parse_ts("2026-03-09T23:00:00Z").unwrap();
        let clock = |days| Clock { now_us: now, skew_us: 0, oldest_local_day: None }.with_retention(days);
        assert!(validate(&raw, Some(clock(7))).is_ok());
        assert_eq!(validate(&raw, Some(clock(6))).unwrap_err().reason, RejectReason::ExpiredTimestamp);
        // The local date decides: 2026-03-01T23:30:00-01:00 is 00:30 UTC
        // on 03-02, but its local day is 03-01.
        let west = OK.replace("2026-03-02T08:00:00.250+01:00", "2026-03-01T23:30:00-01:00");
        let raw = parse_json(&west).unwrap();
        assert_eq!(validate(&raw, Some(clock(7))).unwrap_err().reason, RejectReason::ExpiredTimestamp);
    }

    #[test]
    fn csv_cells_are_parsed_as_the_field_needs() {
        let raw = RawFields {
            event_id: Some(Scalar::Cell("e")),
            ts: Some(Scalar::Cell("2026-03-02T08:00:00-05:00")),
            site: Some(Scalar::Cell("ny")),
            worker: Some(Scalar::Cell("w")),
            kind: Some(Scalar::Cell("scan")),
            quantity: Some(Scalar::Cell("4")),
            weight_kg: Some(Scalar::Cell("2.5")),
            ..Default::default()
        };
        let v = validate(&raw, None).unwrap();
        assert_eq!((v.quantity, v.weight_kg, v.offset_s), (Some(4), Some(2.5), -5 * 3600));
    }
}
