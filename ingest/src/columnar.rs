//! The columnar check: a record read from typed columns (a Parquet slice)
//! is checked against every rule of event contract v1 straight from its
//! columns, without building [`RawFields`](crate::validate::RawFields).
//! It accepts only what [`validate`](crate::validate::validate) accepts,
//! with the same values; anything else, a defect or merely an unusual
//! form (a leap second, a lower-case `z`, a float quantity), goes to the
//! record path, which gives the reason and the redacted record. The
//! differential tests in `tests` hold the two paths to the same outcome.

use polars::prelude::*;
use polars_arrow::array::Array;
use std::borrow::Cow;

use crate::event::{Device, Kind, Process, Pseudonym, MAX_RECORD_BYTES};
use crate::validate::{site_charset_ok, Clock, Scalar, Valid, MAX_TS_US, MIN_TS_US};
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
    /// Texts borrowed from the records they were parsed from (NDJSON
    /// lines, CSV records, messages): [`Gather`]'s text columns.
    Refs(&'a [Option<&'a str>]),
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
            Fast::Refs(a) => Ok(a[i]),
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
            Fast::Refs(a) => a[i].map_or(8, str::len),
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
/// for a missing value). A short value is its own key, without hashing
/// its bytes: in a Parquet slice's view array, a value of up to 12 bytes
/// is held whole in its view; in a batch of text records, a value of up
/// to 15 bytes is packed into an integer ([`short_key`]). `None` when the
/// column is not text: no row of the slice can pass then.
fn distinct<'a, T>(
    col: Fast<'a>,
    rows: usize,
    mut f: impl FnMut(Option<&'a str>) -> Result<Option<T>, ()>,
) -> Option<Distinct<Checked<'a, T>>> {
    match col {
        Fast::Absent => {
            Some(Distinct { codes: vec![0; rows], values: vec![Checked { text: None, value: f(None) }] })
        }
        Fast::Str(a) => {
            let keys = a.views().iter().take(rows).enumerate();
            let keys = keys.map(|(i, v)| a.is_valid(i).then(|| (v.length <= 12).then(|| v.as_u128())));
            distinct_by(rows, keys, |i| a.value(i), f)
        }
        // As a view array does: a text of up to 15 bytes is its own key
        // (its bytes and its length in one integer).
        Fast::Refs(a) => {
            let keys = a.iter().take(rows).map(|v| v.map(|s| short_key(s.as_bytes())));
            distinct_by(rows, keys, |i| a[i].expect("a value where its key is"), f)
        }
        _ => None,
    }
}

/// [`distinct`] over a column's keys, one per row: `None` for a missing
/// value, `Some(Some(key))` for a short value that is its own key,
/// `Some(None)` for a longer one, then looked up by its text (`value`).
/// Runs of one short value (a site, a kind) cost one comparison a row.
fn distinct_by<'a, T>(
    rows: usize,
    keys: impl Iterator<Item = Option<Option<u128>>>,
    value: impl Fn(usize) -> &'a str,
    mut f: impl FnMut(Option<&'a str>) -> Result<Option<T>, ()>,
) -> Option<Distinct<Checked<'a, T>>> {
    type Map<K> = std::collections::HashMap<K, u32, foldhash::fast::RandomState>;
    let (mut short, mut long): (Map<u128>, Map<&'a str>) = Default::default();
    let mut values: Vec<Checked<'a, T>> = Vec::new();
    let mut null: Option<u32> = None;
    let mut last: Option<(u128, u32)> = None;
    let mut codes = Vec::with_capacity(rows);
    let mut add = |values: &mut Vec<Checked<'a, T>>, text: Option<&'a str>| {
        values.push(Checked { text, value: f(text) });
        (values.len() - 1) as u32
    };
    for (i, key) in keys.enumerate() {
        let code = match key {
            None => *null.get_or_insert_with(|| add(&mut values, None)),
            Some(Some(key)) => match last {
                Some((k, code)) if k == key => code,
                _ => {
                    let code = *short.entry(key).or_insert_with(|| add(&mut values, Some(value(i))));
                    last = Some((key, code));
                    code
                }
            },
            Some(None) => {
                let v = value(i);
                *long.entry(v).or_insert_with(|| add(&mut values, Some(v)))
            }
        };
        codes.push(code);
    }
    (codes.len() == rows).then_some(Distinct { codes, values })
}

/// A text of up to 15 bytes as one integer: its bytes, and its length in
/// the last byte (so that no two texts share a key). Read with whole-word
/// loads: building it in memory and reading it back, or byte by byte,
/// costs more than the lookup it saves.
fn short_key(b: &[u8]) -> Option<u128> {
    let n = b.len();
    let le4 = |s: &[u8]| u64::from(u32::from_le_bytes(s.try_into().expect("four bytes")));
    let le8 = |s: &[u8]| u64::from_le_bytes(s.try_into().expect("eight bytes"));
    // Overlapping loads: the bytes read twice are the same.
    let (lo, hi) = match n {
        0 => (0, 0),
        1..=3 => {
            (u64::from(b[0]) | u64::from(b[n / 2]) << (8 * (n / 2)) | u64::from(b[n - 1]) << (8 * (n - 1)), 0)
        }
        4..=7 => (le4(&b[..4]) | le4(&b[n - 4..]) << (8 * (n - 4)), 0),
        8 => (le8(b), 0),
        9..=15 => (le8(&b[..8]), le8(&b[n - 8..]) >> (8 * (16 - n))),
        _ => return None,
    };
    Some(u128::from(lo) | (u128::from(hi | ((n as u64) << 56)) << 64))
}

/// What the door needs to resolve once per distinct value.
pub(crate) trait Resolve {
    /// What a site, zone or team name becomes.
    type Label;
    fn pseudonym(&mut self, worker: &str) -> Pseudonym;
    fn intern(&mut self, label: &str) -> Self::Label;
}

/// The text columns of a slice, checked once per distinct value.
pub(crate) struct Texts<'a, L> {
    site: Distinct<Checked<'a, L>>,
    worker: Distinct<Checked<'a, Pseudonym>>,
    kind: Distinct<Checked<'a, Kind>>,
    zone: Distinct<Checked<'a, L>>,
    team: Distinct<Checked<'a, L>>,
    process: Distinct<Checked<'a, Process>>,
    device: Distinct<Checked<'a, Device>>,
}

/// Checks the text columns of a slice, once per distinct value; `None`
/// when one is not text (no row passes then: the record path says why).
pub(crate) fn texts<'a, R: Resolve>(
    c: &[Fast<'a>; 14],
    rows: usize,
    r: &mut R,
) -> Option<Texts<'a, R::Label>> {
    let [_, _, site, worker, kind, zone, team, process, device, ..] = *c;
    let label = |c, r: &mut dyn FnMut(&str) -> R::Label| {
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
pub(crate) fn row<'a, 't, L>(
    cols: &[Fast<'a>; 14],
    texts: &'t Texts<'a, L>,
    i: usize,
    clock: Option<Clock>,
) -> Option<(Valid<'a>, Resolved<'t, L>)> {
    checked_row(cols, texts, i, clock).ok()
}

fn checked_row<'a, 't, L>(
    c: &[Fast<'a>; 14],
    t: &'t Texts<'a, L>,
    i: usize,
    clock: Option<Clock>,
) -> Result<(Valid<'a>, Resolved<'t, L>), ()> {
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
        Fast::Refs(a) => parse_ts_fast(a[i].ok_or(())?).ok_or(())?,
        _ => return Err(()),
    };
    if clock.is_some_and(|c| !c.admits(ts_us, offset_s)) {
        return Err(());
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

/// A row the columnar check passed, as a checking thread hands it to the
/// ingesting thread: every value but the texts (read again from the
/// record, by [`Passed::valid`]), the worker's pseudonym, and the numbers
/// of its site, zone and team in the batch's names.
#[derive(Clone, Copy)]
pub(crate) struct Passed {
    pub(crate) worker: Pseudonym,
    pub(crate) names: [Option<u32>; 3],
    ts_us: i64,
    offset_s: i32,
    kind: Kind,
    process: Option<Process>,
    device: Option<Device>,
    quantity: Option<u32>,
    weight_kg: Option<f64>,
    threshold_s: Option<f64>,
    gap_s: Option<f64>,
    target_per_hour: Option<f64>,
}

/// A passed record's texts: `event_id`, `site`, `worker`, `zone`, `team`.
pub(crate) type RowTexts<'t> = (&'t str, &'t str, &'t str, Option<&'t str>, Option<&'t str>);

impl Passed {
    fn of(v: &Valid<'_>, r: &Resolved<'_, u32>) -> Passed {
        Passed {
            worker: r.worker,
            names: [Some(*r.site), r.zone.copied(), r.team.copied()],
            ts_us: v.ts_us,
            offset_s: v.offset_s,
            kind: v.kind,
            process: v.process,
            device: v.device,
            quantity: v.quantity,
            weight_kg: v.weight_kg,
            threshold_s: v.threshold_s,
            gap_s: v.gap_s,
            target_per_hour: v.target_per_hour,
        }
    }

    /// The record, with its texts.
    pub(crate) fn valid<'t>(&self, (event_id, site, worker, zone, team): RowTexts<'t>) -> Valid<'t> {
        Valid {
            event_id: Cow::Borrowed(event_id),
            ts_us: self.ts_us,
            offset_s: self.offset_s,
            site: Cow::Borrowed(site),
            worker: Cow::Borrowed(worker),
            kind: self.kind,
            zone: zone.map(Cow::Borrowed),
            team: team.map(Cow::Borrowed),
            process: self.process,
            device: self.device,
            quantity: self.quantity,
            weight_kg: self.weight_kg,
            threshold_s: self.threshold_s,
            gap_s: self.gap_s,
            target_per_hour: self.target_per_hour,
        }
    }

    /// Its time and offset from UTC, in microseconds and seconds.
    pub(crate) fn instant(&self) -> (i64, i32) {
        (self.ts_us, self.offset_s)
    }
}

/// Resolves a batch's values on a checking thread: the worker under that
/// thread's copy of the key, a name as its number in the batch's list
/// (the ingesting thread interns each name once per batch).
pub(crate) struct NamesByNumber<'p> {
    pub(crate) pseudo: &'p mut crate::pseudo::Pseudonymiser,
    pub(crate) names: &'p mut Vec<Box<str>>,
}

impl Resolve for NamesByNumber<'_> {
    type Label = u32;

    fn pseudonym(&mut self, worker: &str) -> Pseudonym {
        self.pseudo.pseudonym(worker)
    }

    fn intern(&mut self, label: &str) -> u32 {
        self.names.push(label.into());
        (self.names.len() - 1) as u32
    }
}

/// Checks the first `rows` rows of a slice's columns on a checking
/// thread: each row's [`Passed`], or `None` for the record path; the
/// names they refer to are added to `r`'s list. `held(i)`: whether row
/// `i` may pass at all.
pub(crate) fn check_rows(
    cols: &[Fast<'_>; 14],
    rows: usize,
    clock: Option<Clock>,
    r: &mut NamesByNumber<'_>,
    held: impl Fn(usize) -> bool,
) -> Vec<Option<Passed>> {
    let texts = texts(cols, rows, r);
    (0..rows)
        .map(|i| {
            let t = texts.as_ref().filter(|_| held(i))?;
            row(cols, t, i, clock).map(|(v, r)| Passed::of(&v, &r))
        })
        .collect()
}

/// Records read as text (JSON objects, CSV records) gathered into columns
/// of the contract's types, so that the columnar check reads them as it
/// reads a Parquet slice: the texts as slices of the records they were
/// read from ([`Fast::Refs`]; a copy into Arrow views cost more than the
/// check, docs/benchmarks.md), `quantity` as
/// integers, the other numbers as floats. A record whose value is not in
/// its column's usual form (a number given as a JSON string, a boolean, a
/// JSON float for `quantity`, a field outside the contract, a repeated
/// one) is not held: its row is null in every column and the record path
/// reads it, as it reads any row the check refuses.
pub(crate) struct Gather<'a> {
    /// A column is made at its first value: a field no record of the
    /// batch has costs nothing per row.
    texts: [Option<Vec<Option<&'a str>>>; 9],
    quantity: Option<Vec<Option<i64>>>,
    numbers: [Option<Vec<Option<f64>>>; 4],
    held: Vec<bool>,
    capacity: usize,
}

/// Adds a cell to a column, made when its first value comes (with a
/// null for each row before it).
fn put<T: Copy>(col: &mut Option<Vec<Option<T>>>, rows: usize, capacity: usize, v: Option<T>) {
    match (col.as_mut(), v) {
        (Some(c), v) => c.push(v),
        (None, Some(v)) => {
            let mut c = Vec::with_capacity(capacity.max(rows + 1));
            c.resize(rows, None);
            c.push(Some(v));
            *col = Some(c);
        }
        (None, None) => {}
    }
}

/// One record's row of the columnar check, in the columns' types.
#[derive(Default)]
pub(crate) struct Cells<'a> {
    /// The text fields, in [`crate::validate::FIELDS`] order.
    texts: [Option<&'a str>; 9],
    quantity: Option<i64>,
    /// `weight_kg`, `threshold_s`, `gap_s`, `target_per_hour`.
    numbers: [Option<f64>; 4],
    /// The fields given so far, one bit each.
    given: u16,
}

impl<'a> Cells<'a> {
    /// Sets field `f` (its place in `FIELDS`) to the value read; `None`
    /// when the row cannot be held: a field given twice, or a value not
    /// in its column's usual form.
    pub(crate) fn set(&mut self, f: usize, v: Option<Scalar<'a>>) -> Option<()> {
        let bit = 1u16 << f;
        if self.given & bit != 0 {
            return None;
        }
        self.given |= bit;
        let v = &v;
        match f {
            0..=8 => self.texts[f] = text_cell(v).ok()?,
            9 => self.quantity = integer_cell(v).ok()?,
            _ => *self.numbers.get_mut(f - 10)? = number_cell(v).ok()?,
        }
        Some(())
    }

    /// A text field by its place in `FIELDS` (0 to 8).
    pub(crate) fn text(&self, f: usize) -> Option<&'a str> {
        self.texts[f]
    }

    /// The values held, as text (`Debug` tells -0.0 from 0.0).
    #[cfg(test)]
    pub(crate) fn values(&self) -> String {
        format!("{:?} {:?} {:?}", self.texts, self.quantity, self.numbers)
    }
}

/// A cell of a text column as gathered: `Err` when it cannot be held.
/// Only a text borrowed from the record is held: an owned one (the text
/// of an escape) goes to the record path.
fn text_cell<'a>(v: &Option<Scalar<'a>>) -> Result<Option<&'a str>, ()> {
    match v {
        None => Ok(None),
        Some(Scalar::Str(Cow::Borrowed(s)) | Scalar::Cell(s)) => Ok(Some(s)),
        Some(_) => Err(()),
    }
}

/// `quantity` as gathered: a JSON integer, or a CSV cell read as the
/// record path reads it (`integer` in validate.rs). A JSON float is left
/// to the record path.
fn integer_cell(v: &Option<Scalar<'_>>) -> Result<Option<i64>, ()> {
    match v {
        None => Ok(None),
        Some(Scalar::Int(i)) => Ok(Some(*i)),
        Some(Scalar::Cell(s)) => s.trim().parse::<i64>().map(Some).map_err(|_| ()),
        Some(_) => Err(()),
    }
}

/// A number as gathered, as the record path reads it (`number` in
/// validate.rs); whether it is finite is the check's question.
fn number_cell(v: &Option<Scalar<'_>>) -> Result<Option<f64>, ()> {
    match v {
        None => Ok(None),
        Some(Scalar::Int(i)) => Ok(Some(*i as f64)),
        Some(Scalar::Float(f)) => Ok(Some(*f)),
        Some(Scalar::Cell(s)) => s.trim().parse::<f64>().map(Some).map_err(|_| ()),
        Some(_) => Err(()),
    }
}

impl<'a> Gather<'a> {
    /// Room for `rows` records.
    pub(crate) fn with_capacity(rows: usize) -> Gather<'a> {
        Gather {
            texts: Default::default(),
            quantity: None,
            numbers: Default::default(),
            held: Vec::with_capacity(rows),
            capacity: rows,
        }
    }

    /// Adds a record's cells (`None`: a record the record path must
    /// read); returns whether its row is held.
    pub(crate) fn push(&mut self, cells: Option<&Cells<'a>>) -> bool {
        let (rows, capacity) = (self.held.len(), self.capacity);
        let empty = Cells::default();
        let c = cells.unwrap_or(&empty);
        for (col, v) in self.texts.iter_mut().zip(c.texts) {
            put(col, rows, capacity, v);
        }
        put(&mut self.quantity, rows, capacity, c.quantity);
        for (col, v) in self.numbers.iter_mut().zip(c.numbers) {
            put(col, rows, capacity, v);
        }
        self.held.push(cells.is_some());
        cells.is_some()
    }

    /// The columns, read only.
    pub(crate) fn finish(self) -> Gathered<'a> {
        // A column made at row r was given the nulls of the rows before
        // it, and a cell for every row after: each has every row.
        Gathered {
            texts: self.texts,
            quantity: self.quantity.map(I64Array::from),
            numbers: self.numbers.map(|c| c.map(F64Array::from)),
            held: self.held,
        }
    }
}

/// The columns of gathered records.
pub(crate) struct Gathered<'a> {
    /// `None`: no record of the batch has the field.
    texts: [Option<Vec<Option<&'a str>>>; 9],
    quantity: Option<I64Array>,
    numbers: [Option<F64Array>; 4],
    held: Vec<bool>,
}

impl Gathered<'_> {
    /// Checks every held row as a Parquet slice's rows are checked
    /// ([`check_rows`]).
    pub(crate) fn check(&self, clock: Option<Clock>, r: &mut NamesByNumber<'_>) -> Vec<Option<Passed>> {
        check_rows(&self.columns(), self.held.len(), clock, r, |i| self.held[i])
    }

    /// The columns, as the check reads them; one no record has is absent.
    fn columns(&self) -> [Fast<'_>; 14] {
        std::array::from_fn(|f| {
            let made = match f {
                0..=8 => self.texts[f].as_deref().map(Fast::Refs),
                9 => self.quantity.as_ref().map(Fast::Int),
                _ => self.numbers[f - 10].as_ref().map(Fast::Float),
            };
            made.unwrap_or(Fast::Absent)
        })
    }
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

    /// Two texts of up to 15 bytes have the same key only when they are
    /// the same; the key holds the bytes in order and the length.
    #[test]
    fn short_keys_tell_every_short_text_apart() {
        let texts = [
            "",
            "a",
            "a\0",
            "\0a",
            "zone-1",
            "zone-10",
            "zone-1\0",
            "abcdefgh",
            "abcdefghi",
            "abcdefghijklmno",
        ];
        let keys: Vec<u128> = texts.iter().map(|t| short_key(t.as_bytes()).unwrap()).collect();
        for i in 0..keys.len() {
            for j in 0..keys.len() {
                assert_eq!(keys[i] == keys[j], i == j, "{:?} {:?}", texts[i], texts[j]);
            }
        }
        assert_eq!(short_key(b"ab"), Some(u128::from(0x6261u64) | (2u128 << 120)));
        assert_eq!(short_key(&[b'x'; 16]), None);
        // Against the key built byte by byte, at every length.
        let mut rng = rand::rngs::StdRng::seed_from_u64(16);
        for _ in 0..20_000 {
            let b: Vec<u8> = (0..rng.gen_range(0..16)).map(|_| rng.gen()).collect();
            let mut k = [0u8; 16];
            k[..b.len()].copy_from_slice(&b);
            k[15] = b.len() as u8;
            assert_eq!(short_key(&b), Some(u128::from_le_bytes(k)), "{b:?}");
        }
    }

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
