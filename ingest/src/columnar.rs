//! The columnar check: a record read from typed columns (a Parquet slice)
//! is checked against every rule of event contract v1 straight from its
//! columns, without building [`RawFields`](crate::validate::RawFields).
//! It accepts only what [`validate`](crate::validate::validate) accepts,
//! with the same values; anything else, a defect or merely an unusual
//! form (a leap second, a lower-case `z`, a float quantity), goes to the
//! record path, which gives the reason and the redacted record. The
//! differential tests in `tests` hold the two paths to the same outcome.

use std::borrow::Cow;
use std::sync::Arc;

use polars::prelude::*;
use polars_arrow::array::Array;

use crate::event::{Device, Kind, Process, Pseudonym, MAX_RECORD_BYTES};
use crate::validate::{site_charset_ok, Clock, Valid, MAX_TS_US, MIN_TS_US};
use crate::Resolved;

type StrArray = <StringType as PolarsDataType>::Array;
type I64Array = <Int64Type as PolarsDataType>::Array;
type I32Array = <Int32Type as PolarsDataType>::Array;
type F64Array = <Float64Type as PolarsDataType>::Array;

/// One column of a slice, as the columnar check reads it.
#[derive(Clone, Copy)]
pub(crate) enum Fast<'a> {
    /// The file has no such column.
    Absent,
    Str(&'a StrArray),
    Int(&'a I64Array),
    Float(&'a F64Array),
    /// UTC microseconds and offset seconds.
    Instant(&'a I64Array, &'a I32Array),
    /// A type left to the record path.
    Slow,
}

/// A cell: `Err` when the record path must decide.
type Cell<T> = Result<Option<T>, ()>;

impl<'a> Fast<'a> {
    fn text(self, i: usize) -> Cell<&'a str> {
        match self {
            Fast::Absent => Ok(None),
            Fast::Str(a) => Ok(a.get(i)),
            _ => Err(()),
        }
    }

    fn number(self, i: usize) -> Cell<f64> {
        let x = match self {
            Fast::Absent => return Ok(None),
            Fast::Int(a) => a.get(i).map(|v| v as f64),
            Fast::Float(a) => a.get(i),
            _ => return Err(()),
        };
        match x {
            Some(x) if !x.is_finite() => Err(()),
            x => Ok(x),
        }
    }

    /// Bytes the record path counts for this field in its size check.
    fn size(self, i: usize) -> usize {
        match self {
            Fast::Str(a) => a.get(i).map_or(8, str::len),
            _ => 8,
        }
    }
}

fn required<T>(c: Cell<T>) -> Result<T, ()> {
    c?.ok_or(())
}

/// A text of 1 to 128 bytes (a longer one may still have 128 characters
/// or fewer: the record path counts them).
fn short_text(s: &str) -> Result<&str, ()> {
    if s.is_empty() || s.len() > 128 {
        return Err(());
    }
    Ok(s)
}

fn ranged(c: Cell<f64>, ok: fn(f64) -> bool) -> Cell<f64> {
    match c? {
        Some(x) if !ok(x) => Err(()),
        v => Ok(v),
    }
}

/// The distinct values of a text column of a slice, each checked once (a
/// worker appears thousands of times), and each row's value.
pub(crate) struct Distinct<R> {
    codes: Vec<u32>,
    values: Vec<R>,
}

impl<R> Distinct<R> {
    fn get(&self, i: usize) -> &R {
        &self.values[self.codes[i] as usize]
    }
}

/// A text value checked once: the text (for the size check and the
/// record), and the value the door keeps, `Err` when the record path must
/// decide.
pub(crate) struct Checked<'a, T> {
    text: Option<&'a str>,
    value: Result<Option<T>, ()>,
}

impl<T> Checked<'_, T> {
    /// Bytes the record path counts for this field in its size check.
    fn size(&self) -> usize {
        self.text.map_or(8, str::len)
    }
}

/// Checks each distinct value of a text column once, with `f` (`f(None)`
/// for a missing value). A value of up to 12 bytes is held whole in its
/// Arrow view, so the view is the key, without hashing the bytes. `None`
/// when the column is not text: no row of the slice can pass then.
fn distinct<'a, T>(
    col: Fast<'a>,
    rows: usize,
    mut f: impl FnMut(Option<&'a str>) -> Result<Option<T>, ()>,
) -> Option<Distinct<Checked<'a, T>>> {
    type Map<K> = std::collections::HashMap<K, u32, foldhash::fast::RandomState>;
    let mut check = |text: Option<&'a str>| Checked { text, value: f(text) };
    match col {
        Fast::Absent => Some(Distinct { codes: vec![0; rows], values: vec![check(None)] }),
        Fast::Str(a) => {
            let views = a.views();
            let (mut inline, mut long): (Map<u128>, Map<&'a str>) = Default::default();
            let mut values: Vec<Checked<'a, T>> = Vec::new();
            let mut null: Option<u32> = None;
            let mut last: Option<(u128, u32)> = None;
            let mut codes = Vec::with_capacity(rows);
            let mut add = |values: &mut Vec<Checked<'a, T>>, text| {
                values.push(check(text));
                (values.len() - 1) as u32
            };
            for (i, view) in views.iter().enumerate().take(rows) {
                let code = if !a.is_valid(i) {
                    *null.get_or_insert_with(|| add(&mut values, None))
                } else if view.length <= 12 {
                    let key = view.as_u128();
                    match last {
                        Some((k, code)) if k == key => code,
                        _ => {
                            let code =
                                *inline.entry(key).or_insert_with(|| add(&mut values, Some(a.value(i))));
                            last = Some((key, code));
                            code
                        }
                    }
                } else {
                    *long.entry(a.value(i)).or_insert_with(|| add(&mut values, Some(a.value(i))))
                };
                codes.push(code);
            }
            (codes.len() == rows).then_some(Distinct { codes, values })
        }
        _ => None,
    }
}

/// What the door needs to resolve once per distinct value.
pub(crate) trait Resolve {
    fn pseudonym(&mut self, worker: &str) -> Pseudonym;
    fn intern(&mut self, label: &str) -> Arc<str>;
}

/// The text columns of a slice, checked once per distinct value.
pub(crate) struct Texts<'a> {
    site: Distinct<Checked<'a, Arc<str>>>,
    worker: Distinct<Checked<'a, Pseudonym>>,
    kind: Distinct<Checked<'a, Kind>>,
    zone: Distinct<Checked<'a, Arc<str>>>,
    team: Distinct<Checked<'a, Arc<str>>>,
    process: Distinct<Checked<'a, Process>>,
    device: Distinct<Checked<'a, Device>>,
}

/// Checks the text columns of a slice, once per distinct value; `None`
/// when one is not text (no row passes then: the record path says why).
pub(crate) fn texts<'a>(c: &[Fast<'a>; 14], rows: usize, r: &mut impl Resolve) -> Option<Texts<'a>> {
    let [_, _, site, worker, kind, zone, team, process, device, ..] = *c;
    let label = |c, r: &mut dyn FnMut(&str) -> Arc<str>| {
        distinct(c, rows, |s: Option<&str>| match s {
            Some(s) if !site_charset_ok(s) => Err(()),
            Some(s) => Ok(Some(r(s))),
            None => Ok(None),
        })
    };
    Some(Texts {
        site: label(site, &mut |s| r.intern(s))?,
        zone: label(zone, &mut |s| r.intern(s))?,
        team: label(team, &mut |s| r.intern(s))?,
        worker: distinct(worker, rows, |w| match w {
            Some(w) => short_text(w).map(|w| Some(r.pseudonym(w))),
            None => Ok(None),
        })?,
        kind: distinct(kind, rows, |k| k.map(|k| Kind::parse(k).ok_or(())).transpose())?,
        process: distinct(process, rows, |p| p.map(|p| Process::parse(p).ok_or(())).transpose())?,
        device: distinct(device, rows, |d| d.map(|d| Device::parse(d).ok_or(())).transpose())?,
    })
}

/// Row `i` of a slice whose columns are in [`crate::validate::FIELDS`]
/// order, when it passes every rule, with the worker's pseudonym and the
/// labels the door keeps; `None` sends it to the record path.
pub(crate) fn row<'a, 't>(
    cols: &[Fast<'a>; 14],
    texts: &'t Texts<'a>,
    i: usize,
    clock: Option<Clock>,
) -> Option<(Valid<'a>, Resolved<'t>)> {
    checked_row(cols, texts, i, clock).ok()
}

fn checked_row<'a, 't>(
    c: &[Fast<'a>; 14],
    t: &'t Texts<'a>,
    i: usize,
    clock: Option<Clock>,
) -> Result<(Valid<'a>, Resolved<'t>), ()> {
    let [event_id, ts, _, _, _, _, _, _, _, quantity, weight_kg, threshold_s, gap_s, target_per_hour] = *c;
    let (site, worker, kind, zone, team) =
        (t.site.get(i), t.worker.get(i), t.kind.get(i), t.zone.get(i), t.team.get(i));
    let size = event_id.size(i) + worker.size() + site.size() + zone.size() + team.size() + kind.size();
    if size > MAX_RECORD_BYTES {
        return Err(());
    }
    let id = short_text(required(event_id.text(i))?)?;
    let (ts_us, offset_s) = match ts {
        Fast::Instant(t, o) => {
            let (Some(t), Some(o)) = (t.get(i), o.get(i)) else { return Err(()) };
            if !(MIN_TS_US..=MAX_TS_US).contains(&t) || o.abs() >= 86_400 {
                return Err(());
            }
            (t, o)
        }
        Fast::Str(a) => parse_ts_fast(a.get(i).ok_or(())?).ok_or(())?,
        _ => return Err(()),
    };
    if let Some(c) = clock {
        if ts_us > c.now_us.saturating_add(c.skew_us) {
            return Err(());
        }
        if let Some(oldest) = c.oldest_local_day {
            if (ts_us + i64::from(offset_s) * 1_000_000).div_euclid(86_400_000_000) < oldest {
                return Err(());
            }
        }
    }
    let site_label = site.value.as_ref().or(Err(()))?.as_ref().ok_or(())?;
    let pseudonym = (*worker.value.as_ref().or(Err(()))?).ok_or(())?;
    let kind = (*kind.value.as_ref().or(Err(()))?).ok_or(())?;
    let zone_label = zone.value.as_ref().or(Err(()))?.as_ref();
    let team_label = team.value.as_ref().or(Err(()))?.as_ref();
    let process = *t.process.get(i).value.as_ref().or(Err(()))?;
    let device = *t.device.get(i).value.as_ref().or(Err(()))?;
    let quantity = match quantity {
        Fast::Absent => None,
        Fast::Int(a) => match a.get(i) {
            Some(q) if (1..=10_000).contains(&q) => Some(q as u32),
            Some(_) => return Err(()),
            None => None,
        },
        _ => return Err(()),
    };
    let quantity = match (kind, quantity) {
        (Kind::Scan, None) => Some(1),
        (_, q) => q,
    };
    let valid = Valid {
        event_id: Cow::Borrowed(id),
        ts_us,
        offset_s,
        site: Cow::Borrowed(site.text.ok_or(())?),
        worker: Cow::Borrowed(worker.text.ok_or(())?),
        kind,
        zone: zone.text.map(Cow::Borrowed),
        team: team.text.map(Cow::Borrowed),
        process,
        device,
        quantity,
        weight_kg: ranged(weight_kg.number(i), |x| (0.0..=1000.0).contains(&x))?,
        threshold_s: ranged(threshold_s.number(i), |x| x > 0.0)?,
        gap_s: ranged(gap_s.number(i), |x| x >= 0.0)?,
        target_per_hour: ranged(target_per_hour.number(i), |x| x > 0.0)?,
    };
    let resolved = Resolved { worker: pseudonym, site: site_label, zone: zone_label, team: team_label };
    Ok((valid, resolved))
}

/// The usual form of an RFC 3339 timestamp, `YYYY-MM-DDTHH:MM:SS`, an
/// optional fraction of 1 to 9 digits, then `Z` or `±HH:MM`: microseconds
/// since the epoch and the offset in seconds, exactly as
/// [`crate::validate::parse_ts`] gives them. Any other form (lower-case
/// letters, a space, a leap second, more digits) is `None`, left to it.
pub fn parse_ts_fast(s: &str) -> Option<(i64, i32)> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let d2 = |i: usize| -> Option<u32> {
        let (x, y) = (b[i].wrapping_sub(b'0'), b[i + 1].wrapping_sub(b'0'));
        (x < 10 && y < 10).then_some(u32::from(x) * 10 + u32::from(y))
    };
    let sep = |i: usize, c: u8| (b[i] == c).then_some(());
    let year = d2(0)? * 100 + d2(2)?;
    sep(4, b'-')?;
    let month = d2(5)?;
    sep(7, b'-')?;
    let day = d2(8)?;
    sep(10, b'T')?;
    let hour = d2(11)?;
    sep(13, b':')?;
    let minute = d2(14)?;
    sep(16, b':')?;
    let second = d2(17)?;
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut pos = 19;
    let mut nanos = 0u32;
    if b[pos] == b'.' {
        pos += 1;
        let start = pos;
        while pos < b.len() && b[pos].is_ascii_digit() {
            pos += 1;
        }
        let digits = pos - start;
        if digits == 0 || digits > 9 {
            return None;
        }
        for &c in &b[start..pos] {
            nanos = nanos * 10 + u32::from(c - b'0');
        }
        nanos *= 10u32.pow(9 - digits as u32);
    }
    let offset_s: i32 = match &b[pos..] {
        [b'Z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (h, m) = (d2(pos + 1)?, d2(pos + 4)?);
            if h > 23 || m > 59 {
                return None;
            }
            let off = (h * 3600 + m * 60) as i32;
            if *sign == b'-' {
                -off
            } else {
                off
            }
        }
        _ => return None,
    };
    let date = chrono::NaiveDate::from_ymd_opt(year as i32, month, day)?;
    let local = date.and_hms_opt(hour, minute, second)?.and_utc().timestamp();
    let secs = local - i64::from(offset_s);
    Some((secs * 1_000_000 + i64::from(nanos / 1000), offset_s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::parse_ts_chrono;
    use rand::{Rng, SeedableRng};

    #[test]
    fn the_usual_forms_parse_as_chrono_parses_them() {
        for s in [
            "2026-03-02T08:00:00Z",
            "2026-03-02T08:00:00.250+01:00",
            "2026-03-02T08:00:00.123456789-05:30",
            "2024-02-29T23:59:59.9Z",
            "0000-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999999Z",
            "2026-03-02T00:30:00-00:00",
            "1969-12-31T23:59:59.999999+23:59",
        ] {
            assert_eq!(parse_ts_fast(s), parse_ts_chrono(s), "{s}");
            assert!(parse_ts_fast(s).is_some(), "{s}");
        }
        // Forms chrono may accept that the fast parser leaves to it.
        for s in [
            "2026-03-02t08:00:00Z",
            "2026-03-02 08:00:00Z",
            "2026-03-02T08:00:00z",
            "2026-12-31T23:59:60Z",
            "2026-03-02T08:00:00.1234567891Z",
            "2023-02-29T08:00:00Z",
            "2026-03-02T08:00:00+24:00",
        ] {
            assert_eq!(parse_ts_fast(s), None, "{s}");
        }
    }

    /// Random strings near the usual form: whatever the fast parser
    /// accepts, chrono accepts with the same value.
    #[test]
    fn property_never_accepts_what_chrono_refuses_or_reads_differently() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(14);
        let alphabet = b"0123456789-:T.Z+zt ";
        let mut accepted = 0;
        for n in 0..200_000 {
            let mut s: Vec<u8> = b"2026-03-02T08:00:00.250+01:00".to_vec();
            if n % 3 == 0 {
                s = format!(
                    "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{}{}",
                    rng.gen_range(0..10000),
                    rng.gen_range(0..14),
                    rng.gen_range(0..33),
                    rng.gen_range(0..26),
                    rng.gen_range(0..62),
                    rng.gen_range(0..62),
                    [".5", "", ".123456789", ".0000001", "."][rng.gen_range(0..5)],
                    ["Z", "+01:00", "-23:59", "+24:00", "-00:60", "+0100"][rng.gen_range(0..6)]
                )
                .into_bytes();
            } else {
                for _ in 0..rng.gen_range(1..4) {
                    let i = rng.gen_range(0..s.len());
                    match rng.gen_range(0..3) {
                        0 => s[i] = alphabet[rng.gen_range(0..alphabet.len())],
                        1 => {
                            s.remove(i);
                        }
                        _ => s.insert(i, alphabet[rng.gen_range(0..alphabet.len())]),
                    }
                }
            }
            let s = String::from_utf8(s).unwrap();
            if let Some(v) = parse_ts_fast(&s) {
                accepted += 1;
                assert_eq!(Some(v), parse_ts_chrono(&s), "{s}");
            }
        }
        assert!(accepted > 20_000, "{accepted}");
    }

    use crate::testing::both_paths_agree;

    /// A column of `rows` random cells of one of several types, valid and
    /// not, with nulls.
    fn random_column(rng: &mut rand::rngs::StdRng, name: &str, rows: usize) -> Option<Column> {
        // The first value of a pool is the usual one.
        let pick = |rng: &mut rand::rngs::StdRng, xs: &[&str]| {
            if rng.gen_bool(0.85) {
                xs[0].to_string()
            } else {
                xs[rng.gen_range(0..xs.len())].to_string()
            }
        };
        let strings = |rng: &mut rand::rngs::StdRng, pool: &[&str], null: f64| -> Vec<Option<String>> {
            (0..rows).map(|_| (!rng.gen_bool(null)).then(|| pick(rng, pool))).collect()
        };
        let long = "é".repeat(100); // 200 bytes, 100 characters
        let longer = "x".repeat(129);
        let huge = "y".repeat(70_000);
        // Style 0 is a wrong type for the field; it is rare.
        let style = if rng.gen_bool(0.05) { 0 } else { rng.gen_range(1..10) };
        let col = match name {
            "event_id" => match style {
                0 => Column::new(name.into(), (0..rows as i64).collect::<Vec<_>>()),
                _ => {
                    let ids: Vec<Option<String>> = (0..rows)
                        .map(|i| match rng.gen_range(0..100) {
                            0 => None,
                            1 => Some(String::new()),
                            2 => Some(long.clone()),
                            3 => Some(longer.clone()),
                            4 => Some(huge.clone()),
                            5..=9 => Some(format!("e{}", rng.gen_range(0..rows.max(1)))),
                            _ => Some(format!("e{i}")),
                        })
                        .collect();
                    Column::new(name.into(), ids)
                }
            },
            "ts" => match style {
                0 => Column::new(name.into(), vec![1_772_434_800_000_000i64; rows]),
                1..=3 => {
                    let ts: Vec<Option<String>> = (0..rows)
                        .map(|_| {
                            (!rng.gen_bool(0.03)).then(|| {
                                pick(
                                    rng,
                                    &[
                                        "2026-03-02T08:00:00Z",
                                        "2026-03-02T08:00:00.25+01:00",
                                        "2026-03-02t08:00:00Z",
                                        "2026-03-02 08:00:00-05:00",
                                        "2026-03-02T08:00:60Z",
                                        "2026-03-02T08:00:00",
                                        "9999-12-31T23:59:59Z",
                                        "2027-01-01T00:00:00Z",
                                        "2026-02-30T08:00:00Z",
                                        "yesterday",
                                    ],
                                )
                            })
                        })
                        .collect();
                    Column::new(name.into(), ts)
                }
                _ => {
                    let us: Vec<Option<i64>> = (0..rows)
                        .map(|_| {
                            (!rng.gen_bool(0.03)).then(|| match rng.gen_range(0..20) {
                                0 => i64::MAX / 2,
                                1 => 1_803_000_000_000_000,
                                _ => 1_772_434_800_000_000 + rng.gen_range(0..20 * 86_400_000_000i64),
                            })
                        })
                        .collect();
                    let zone = match style {
                        4..=6 => Some(TimeZone::UTC),
                        7 | 8 => TimeZone::opt_try_new(Some("Europe/Paris")).expect("a zone Polars knows"),
                        _ => None,
                    };
                    Int64Chunked::new(name.into(), us)
                        .into_datetime(TimeUnit::Microseconds, zone)
                        .into_column()
                }
            },
            "site" | "zone" | "team" => {
                if name != "site" && style < 4 {
                    return None;
                }
                match style {
                    0 => Column::new(name.into(), vec![3i32; rows]),
                    _ => Column::new(
                        name.into(),
                        strings(rng, &["lyon-1", "a.b_c", "a b", "", "z", &"s".repeat(65)], 0.05),
                    ),
                }
            }
            "worker" => match style {
                0 => Column::new(name.into(), (0..rows as i64).map(|i| i % 7).collect::<Vec<_>>()),
                _ => Column::new(name.into(), strings(rng, &["E1", "E2", "E3", "", &long, &longer], 0.03)),
            },
            "kind" => Column::new(
                name.into(),
                strings(
                    rng,
                    &["scan", "scan", "shift_start", "break_start", "rate_target", "nap", "Scan"],
                    0.02,
                ),
            ),
            "process" | "device" => {
                if style < 3 {
                    return None;
                }
                let pool: &[&str] = if name == "process" {
                    &["pick", "pack", "voice", "PICK", ""]
                } else {
                    &["voice", "scanner", "pick", "Voice", ""]
                };
                Column::new(name.into(), strings(rng, pool, 0.3))
            }
            "quantity" => match style {
                1 | 2 => return None,
                0 => Column::new(name.into(), vec!["3"; rows]),
                3 => Column::new(name.into(), vec![2.0f64; rows]),
                _ => {
                    let q: Vec<Option<i32>> = (0..rows)
                        .map(|_| {
                            (!rng.gen_bool(0.3))
                                .then(|| [1, 5, 1, 1, 0, -2, 10_000, 10_001][rng.gen_range(0..8)])
                        })
                        .collect();
                    Column::new(name.into(), q)
                }
            },
            _ => match style {
                0 => Column::new(name.into(), vec![true; rows]),
                1..=3 => return None,
                4 => Column::new(
                    name.into(),
                    (0..rows as i64).map(|i| if i % 50 == 0 { -1 } else { i % 3 + 1 }).collect::<Vec<_>>(),
                ),
                _ => {
                    let xs = [30.0, 2.5, 30.0, 0.0, 1000.0, -1.0, 1000.5, f64::NAN, f64::INFINITY];
                    let v: Vec<Option<f64>> = (0..rows)
                        .map(|_| {
                            (!rng.gen_bool(0.5)).then(|| {
                                if rng.gen_bool(0.9) {
                                    30.0
                                } else {
                                    xs[rng.gen_range(0..xs.len())]
                                }
                            })
                        })
                        .collect();
                    Column::new(name.into(), v)
                }
            },
        };
        Some(col)
    }

    #[test]
    fn property_random_typed_parquet_reads_the_same_by_columns_and_by_records() {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(1414);
        let (mut accepted, mut refused) = (0, 0);
        for n in 0..80 {
            let rows = rng.gen_range(1..400);
            let mut cols: Vec<Column> =
                crate::validate::FIELDS.iter().filter_map(|f| random_column(&mut rng, f, rows)).collect();
            if rng.gen_bool(0.3) {
                cols.push(Column::new("badge".into(), vec![Some("B7"); rows]));
            }
            let mut df = DataFrame::new_infer_height(cols).unwrap();
            let path = dir.path().join(format!("r{n}.parquet"));
            ParquetWriter::new(std::fs::File::create(&path).unwrap())
                .with_row_group_size(Some(rng.gen_range(16..200)))
                .finish(&mut df)
                .unwrap();
            // The service's clock too: future and expired timestamps.
            let clock = (n % 3 == 0).then(|| {
                Clock { now_us: 1_774_000_000_000_000, skew_us: 300_000_000, oldest_local_day: None }
                    .with_retention(10)
            });
            let (a, r) = both_paths_agree(&path, clock);
            accepted += a;
            refused += r;
        }
        // Both outcomes were exercised, many times.
        assert!(accepted > 2000 && refused > 2000, "{accepted} accepted, {refused} refused");
    }

    /// The seeds and every crash found by fuzzing, through both paths.
    #[test]
    fn the_fuzzing_inputs_read_the_same_by_columns_and_by_records() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
        let mut n = 0;
        for sub in ["seeds/parquet_reader", "regressions/parquet_reader"] {
            let Ok(entries) = std::fs::read_dir(root.join(sub)) else { continue };
            for e in entries.flatten() {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("f.parquet");
                std::fs::copy(e.path(), &path).unwrap();
                both_paths_agree(&path, None);
                n += 1;
            }
        }
        assert!(n >= 2, "{n}");
    }
}
