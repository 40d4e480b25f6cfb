//! Mappings (`--mapping FILE`, docs/mapping.md): how an employer's own
//! export is read. Source columns become contract fields (a constant, or
//! date and time split over two columns, included), vendor event codes
//! become contract kinds, local times become instants in an IANA zone,
//! and the CSV dialect (delimiter, quote, decimal mark, encoding, header)
//! is the export's. Every record then goes through the same door as any
//! other: nothing is accepted that the contract refuses.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::str::FromStr;

use chrono::{NaiveDate, NaiveDateTime, Offset, TimeZone};
use chrono_tz::Tz;
use serde::Deserialize;

use crate::event::Kind;
use crate::validate::FIELDS;

/// Where one contract field comes from.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// A column, by header name (or by number from 1 without a header).
    #[serde(default)]
    pub column: Option<String>,
    /// Several columns joined with a space (a date and a time).
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    /// A constant (the site of a one-site export).
    #[serde(default)]
    pub value: Option<String>,
    /// The record's file and line (`FILE:LINE`), for an export without
    /// event ids.
    #[serde(default)]
    pub line: bool,
}

/// The CSV dialect of the export.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dialect {
    /// Between cells; by default `;` when the decimal mark is a comma (as
    /// spreadsheets write it), else `,`.
    #[serde(default)]
    pub delimiter: Option<char>,
    /// The character that quotes a cell; `"` by default.
    #[serde(default = "dquote")]
    pub quote: char,
    /// The decimal mark of numbers: `.` or `,`.
    #[serde(default = "point")]
    pub decimal: char,
    /// `utf-8` (a byte-order mark is dropped), `windows-1252` or
    /// `iso-8859-1`.
    #[serde(default = "utf8")]
    pub encoding: String,
    /// Whether the first line names the columns.
    #[serde(default = "yes")]
    pub header: bool,
}

fn dquote() -> char {
    '"'
}
fn point() -> char {
    '.'
}
fn utf8() -> String {
    "utf-8".into()
}
fn yes() -> bool {
    true
}

impl Default for Dialect {
    fn default() -> Self {
        Dialect { delimiter: None, quote: '"', decimal: '.', encoding: utf8(), header: true }
    }
}

impl Dialect {
    /// The delimiter given, or the one that goes with the decimal mark.
    pub fn delimiter(&self) -> char {
        self.delimiter.unwrap_or(if self.decimal == ',' { ';' } else { ',' })
    }
}

/// How timestamps are written.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeSpec {
    /// `rfc3339`; `epoch_s` or `epoch_ms` (UTC instants); `excel` (days
    /// since 1899-12-30, local); or a strftime pattern such as
    /// `%d/%m/%Y %H:%M:%S` (local unless it holds `%z`).
    #[serde(default = "rfc3339")]
    pub format: String,
    /// The IANA zone of local times (`Europe/Paris`); also gives the
    /// offset of epoch instants.
    #[serde(default)]
    pub zone: Option<String>,
    /// The pattern's times are UTC (SAP's UTC time stamps, Odoo's stored
    /// date-times), not local: `zone` then only gives each instant's local
    /// offset, as for epoch instants.
    #[serde(default)]
    pub utc: bool,
}

fn rfc3339() -> String {
    "rfc3339".into()
}

impl Default for TimeSpec {
    fn default() -> Self {
        TimeSpec { format: rfc3339(), zone: None, utc: false }
    }
}

/// A whole mapping.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// The mapping's name, recorded in findings.json (`input.mapping`).
    pub name: String,
    /// The `[csv]` table: the dialect of CSV exports.
    #[serde(default)]
    pub csv: Dialect,
    /// The `[time]` table: how timestamps are written.
    #[serde(default)]
    pub time: TimeSpec,
    /// Contract field -> source.
    pub fields: BTreeMap<String, Source>,
    /// Source event code -> contract kind. Empty: the codes are the
    /// contract's kinds.
    #[serde(default)]
    pub kinds: BTreeMap<String, String>,
}

/// The encodings a mapping can name.
pub const ENCODINGS: [&str; 3] = ["utf-8", "windows-1252", "iso-8859-1"];

impl Mapping {
    /// Reads and checks a mapping file; every problem is reported at once.
    pub fn from_file(path: &Path) -> Result<(Mapping, [u8; 32]), Vec<String>> {
        use sha2::Digest;
        let bytes = std::fs::read(path).map_err(|e| vec![format!("{}: {e}", path.display())])?;
        let text =
            String::from_utf8(bytes.clone()).map_err(|_| vec![format!("{}: not UTF-8", path.display())])?;
        let m: Mapping = toml::from_str(&text)
            .map_err(|e| vec![format!("{}: {}", path.display(), e.to_string().trim())])?;
        let problems = m.problems();
        if problems.is_empty() {
            Ok((m, sha2::Sha256::digest(&bytes).into()))
        } else {
            Err(problems.into_iter().map(|p| format!("{}: {p}", path.display())).collect())
        }
    }

    /// Every problem of a mapping (empty when it is usable).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (field, src) in &self.fields {
            if !FIELDS.contains(&field.as_str()) {
                out.push(format!("fields.{field}: not a field of the contract ({})", FIELDS.join(", ")));
            }
            let given = [src.column.is_some(), src.columns.is_some(), src.value.is_some(), src.line]
                .iter()
                .filter(|x| **x)
                .count();
            if given != 1 {
                out.push(format!("fields.{field}: give exactly one of column, columns, value, line"));
            }
            if src.columns.as_ref().is_some_and(|c| c.len() < 2) {
                out.push(format!("fields.{field}: columns needs at least two columns"));
            }
            if !self.csv.header {
                for c in src.column.iter().chain(src.columns.iter().flatten()) {
                    if c.parse::<usize>().map_or(true, |n| n == 0) {
                        out.push(format!(
                            "fields.{field}: without a header, columns are numbered from 1, not {c:?}"
                        ));
                    }
                }
            }
        }
        for required in ["event_id", "ts", "site", "worker", "kind"] {
            if !self.fields.contains_key(required) {
                out.push(format!("fields.{required} is required"));
            }
        }
        if self.fields.get("worker").is_some_and(|s| s.value.is_some() || s.line) {
            out.push("fields.worker must come from the data (column or columns)".into());
        }
        for (code, kind) in &self.kinds {
            if Kind::parse(kind).is_none() {
                out.push(format!("kinds.{code:?}: `{kind}` is not a kind of the contract"));
            }
        }
        let d = &self.csv;
        for (what, c) in [("delimiter", d.delimiter()), ("quote", d.quote)] {
            if !c.is_ascii() || c.is_ascii_alphanumeric() || c == '\n' || c == '\r' {
                out.push(format!("csv.{what} must be one ASCII punctuation or space character, not {c:?}"));
            }
        }
        if d.delimiter() == d.quote {
            out.push("csv.delimiter and csv.quote must differ".into());
        }
        if !matches!(d.decimal, '.' | ',') {
            out.push(format!("csv.decimal must be `.` or `,`, not {:?}", d.decimal));
        }
        if d.decimal == d.delimiter() {
            out.push("csv.decimal and csv.delimiter must differ".into());
        }
        if !ENCODINGS.contains(&d.encoding.to_ascii_lowercase().as_str()) {
            out.push(format!("csv.encoding must be one of {}, not {:?}", ENCODINGS.join(", "), d.encoding));
        }
        let f = self.time.format.as_str();
        let local = !matches!(f, "rfc3339" | "epoch_s" | "epoch_ms")
            && !f.contains("%z")
            && !f.contains("%:z")
            && !self.time.utc;
        if self.time.utc
            && (matches!(f, "rfc3339" | "epoch_s" | "epoch_ms") || f.contains("%z") || f.contains("%:z"))
        {
            out.push(format!(
                "time.utc: the format {f:?} carries its own offset; utc = true is for patterns without one"
            ));
        }
        if !matches!(f, "rfc3339" | "epoch_s" | "epoch_ms" | "excel") && !f.contains('%') {
            out.push(format!("time.format {f:?}: rfc3339, epoch_s, epoch_ms, excel or a strftime pattern"));
        }
        match &self.time.zone {
            Some(z) if Tz::from_str(z).is_err() => out.push(format!("time.zone {z:?} is not an IANA zone")),
            None if local => out.push(format!("time.format {f:?} gives local times: time.zone is required")),
            _ => {}
        }
        out
    }

    /// The zone of local times.
    fn zone(&self) -> Option<Tz> {
        self.time.zone.as_deref().and_then(|z| Tz::from_str(z).ok())
    }
}

/// What reading through a mapping saw besides the records.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MappingStats {
    /// Records skipped because their event code has no kind, by code
    /// (bounded: past 64 codes, `(other)`).
    pub unmapped_codes: BTreeMap<String, u64>,
    /// Local times in the repeated autumn hour (resolved by each worker's
    /// order of events), and in the skipped spring hour (read as if the
    /// clock had not yet moved).
    pub dst_ambiguous: u64,
    /// Local times in the skipped spring hour (read as if the clock had not yet moved).
    pub dst_nonexistent: u64,
}

/// Reads timestamps of one mapping, keeping each worker's last instant to
/// resolve the repeated autumn hour.
pub struct Clock {
    format: String,
    zone: Option<Tz>,
    utc: bool,
    last: HashMap<u64, i64>,
}

/// Why a timestamp could not be read.
pub type TimeError = String;

impl Clock {
    /// The timestamp reader of `m`'s `[time]` table, with no worker's last instant yet.
    pub fn new(m: &Mapping) -> Self {
        Clock { format: m.time.format.clone(), zone: m.zone(), utc: m.time.utc, last: HashMap::new() }
    }

    /// The instant (UTC microseconds) and offset (seconds) of `text`, for
    /// the worker whose value hashes to `worker`.
    pub fn read(
        &mut self,
        text: &str,
        worker: u64,
        stats: &mut MappingStats,
    ) -> Result<(i64, i32), TimeError> {
        let text = text.trim();
        let at_zone = |utc_us: i64, zone: Option<Tz>| -> (i64, i32) {
            let off = zone
                .and_then(|z| {
                    chrono::DateTime::from_timestamp_micros(utc_us)
                        .map(|t| z.offset_from_utc_datetime(&t.naive_utc()).fix().local_minus_utc())
                })
                .unwrap_or(0);
            (utc_us, off)
        };
        let local = match self.format.as_str() {
            "rfc3339" => {
                let t = chrono::DateTime::parse_from_rfc3339(text)
                    .map_err(|_| format!("{text:?} is not an RFC 3339 timestamp with an offset"))?;
                return Ok((t.timestamp_micros(), t.offset().local_minus_utc()));
            }
            "epoch_s" | "epoch_ms" => {
                let v: f64 = text.parse().map_err(|_| format!("{text:?} is not a number of seconds"))?;
                let us = if self.format == "epoch_s" { v * 1e6 } else { v * 1e3 };
                if !us.is_finite() || us.abs() > 1e17 {
                    return Err(format!("{text:?} is out of range"));
                }
                return Ok(at_zone(us.round() as i64, self.zone));
            }
            "excel" => {
                let v: f64 =
                    text.replace(',', ".").parse().map_err(|_| format!("{text:?} is not an Excel date"))?;
                if !(1.0..2_958_466.0).contains(&v) {
                    return Err(format!("{text:?} is out of range for an Excel date"));
                }
                let base = NaiveDate::from_ymd_opt(1899, 12, 30)
                    .and_then(|d| d.and_hms_opt(0, 0, 0))
                    .ok_or("date")?;
                base + chrono::Duration::milliseconds((v * 86_400_000.0).round() as i64)
            }
            f if f.contains("%z") || f.contains("%:z") => {
                let t = chrono::DateTime::parse_from_str(text, f)
                    .map_err(|_| format!("{text:?} does not match the format {f:?}"))?;
                return Ok((t.timestamp_micros(), t.offset().local_minus_utc()));
            }
            f => NaiveDateTime::parse_from_str(text, f)
                .map_err(|_| format!("{text:?} does not match the format {f:?}"))?,
        };
        if self.utc {
            return Ok(at_zone(local.and_utc().timestamp_micros(), self.zone));
        }
        let zone = self.zone.ok_or_else(|| "local time without a zone".to_string())?;
        let (utc_us, off) = match zone.from_local_datetime(&local) {
            chrono::LocalResult::Single(t) => (t.timestamp_micros(), t.offset().fix().local_minus_utc()),
            chrono::LocalResult::Ambiguous(a, b) => {
                // The repeated autumn hour: the first pass unless that would
                // take this worker back in time.
                stats.dst_ambiguous += 1;
                let last = self.last.get(&worker).copied().unwrap_or(i64::MIN);
                let t = if a.timestamp_micros() >= last { a } else { b };
                (t.timestamp_micros(), t.offset().fix().local_minus_utc())
            }
            chrono::LocalResult::None => {
                // The skipped spring hour: read as if the clock had not yet
                // moved (the offset before the change).
                stats.dst_nonexistent += 1;
                let before = zone
                    .from_local_datetime(&(local - chrono::Duration::hours(1)))
                    .earliest()
                    .ok_or_else(|| format!("{text:?} does not exist in {zone}"))?;
                let t = before + chrono::Duration::hours(1);
                (t.timestamp_micros(), before.offset().fix().local_minus_utc())
            }
        };
        self.last.insert(worker, utc_us);
        Ok((utc_us, off))
    }
}

/// The contract fields whose text is a number (the mapping's decimal mark
/// applies to them).
const NUMERIC: [&str; 5] = ["quantity", "weight_kg", "threshold_s", "gap_s", "target_per_hour"];

/// A mapping being applied to a stream of records (a CSV file, an NDJSON
/// file, a Kafka topic): its clock and what it saw. The same reading
/// serves every source, which only says how a column or key is looked up.
pub struct Mapper {
    mapping: Mapping,
    clock: Clock,
    /// The columns or keys an identifier comes from, and the top-level
    /// keys the mapping reads (worked out once, not per record).
    identifiers: Vec<String>,
    top_keys: Vec<String>,
    /// Codes skipped, changes of hour met.
    pub stats: MappingStats,
}

/// One record read through a mapping.
pub enum Mapped {
    /// The record, ready for the door.
    Record(MappedRecord),
    /// Its event code has no kind in the mapping: counted by code in the
    /// stats, and skipped (a mapping question, not bad data).
    Skipped,
    /// Its time could not be read (why).
    BadTime(String),
}

/// The contract fields of one mapped record, as text (numbers with a `.`
/// decimal mark), with its instant and kind already read.
pub struct MappedRecord {
    values: Vec<(&'static str, String)>,
    ts: (i64, i32),
    kind: String,
}

impl MappedRecord {
    /// The record as the door's fields; `unknown` names the source columns
    /// or keys the mapping does not use (counted, never stored).
    pub fn raw<'a>(&'a self, unknown: Vec<std::borrow::Cow<'a, str>>) -> crate::validate::RawFields<'a> {
        use crate::validate::Scalar;
        let mut raw = crate::validate::RawFields::default();
        for (field, text) in &self.values {
            if text.is_empty() || *field == "ts" || *field == "kind" {
                continue;
            }
            // Untyped text, parsed as the field requires (as a CSV cell).
            if let Some((_, slot)) = raw.slot(field) {
                *slot = Some(Scalar::Cell(text));
            }
        }
        raw.ts = Some(Scalar::Instant { ts_us: self.ts.0, offset_s: self.ts.1 });
        raw.kind = Some(Scalar::Str(std::borrow::Cow::Borrowed(&self.kind)));
        raw.unknown = unknown;
        raw
    }
}

impl Mapper {
    /// A reader of records through `mapping`, its stats at zero.
    pub fn new(mapping: Mapping) -> Self {
        let clock = Clock::new(&mapping);
        let sources = |fields: &[&str]| -> Vec<String> {
            mapping
                .fields
                .iter()
                .filter(|(f, _)| fields.is_empty() || fields.contains(&f.as_str()))
                .flat_map(|(_, s)| s.column.iter().chain(s.columns.iter().flatten()))
                .cloned()
                .collect()
        };
        let identifiers = sources(&["worker", "device"]);
        let top_keys = sources(&[]).iter().map(|k| k.split('.').next().unwrap_or(k).to_string()).collect();
        Mapper { mapping, clock, identifiers, top_keys, stats: MappingStats::default() }
    }

    /// The mapping records are read through.
    pub fn mapping(&self) -> &Mapping {
        &self.mapping
    }

    /// Every column or key the mapping reads.
    pub fn sources(&self) -> impl Iterator<Item = &str> {
        self.mapping
            .fields
            .values()
            .flat_map(|s| s.column.iter().chain(s.columns.iter().flatten()))
            .map(String::as_str)
    }

    /// The columns or keys an identifier (`worker`, `device`) comes from:
    /// pseudonymised in the rejects store whatever their name.
    pub fn identifier_sources(&self) -> &[String] {
        &self.identifiers
    }

    /// The top-level keys of a JSON record the mapping reads (`a` of
    /// `a.b`): the others are dropped fields.
    pub fn top_keys(&self) -> &[String] {
        &self.top_keys
    }

    /// Reads one record: `get` gives the text of a source column or key
    /// (empty when the record has none), `position` the record's place
    /// (`FILE:LINE`, or a Kafka message's `topic/partition@offset`) for
    /// `line = true`.
    pub fn map(&mut self, get: impl Fn(&str) -> String, position: impl Fn() -> String) -> Mapped {
        let mut values: Vec<(&'static str, String)> = Vec::with_capacity(self.mapping.fields.len());
        for (field, src) in &self.mapping.fields {
            let Some(f) = crate::validate::FIELDS.iter().find(|f| **f == field.as_str()) else { continue };
            let text = if let Some(c) = &src.column {
                get(c).trim().to_string()
            } else if let Some(cs) = &src.columns {
                cs.iter().map(|c| get(c).trim().to_string()).collect::<Vec<_>>().join(" ")
            } else if let Some(v) = &src.value {
                v.clone()
            } else {
                position()
            };
            values.push((f, text));
        }
        let get = |f: &str| values.iter().find(|(n, _)| *n == f).map(|(_, v)| v.as_str()).unwrap_or("");
        // The event code: its kind, or counted and skipped.
        let code = get("kind");
        let kind = if self.mapping.kinds.is_empty() {
            code.to_string()
        } else {
            match self.mapping.kinds.get(code) {
                Some(k) => k.clone(),
                None => {
                    count_code(&mut self.stats, code);
                    return Mapped::Skipped;
                }
            }
        };
        let worker_key = xxhash_rust::xxh3::xxh3_64(get("worker").as_bytes());
        let ts = match self.clock.read(get("ts"), worker_key, &mut self.stats) {
            Ok(ts) => ts,
            Err(why) => return Mapped::BadTime(why),
        };
        if self.mapping.csv.decimal == ',' {
            for (field, text) in &mut values {
                if NUMERIC.contains(field) {
                    *text = text.replace(',', ".");
                }
            }
        }
        Mapped::Record(MappedRecord { values, ts, kind })
    }
}

/// The text of a key of a JSON record (`a.b` reaches into a nested
/// object): a string as it is, a number or a boolean as written, empty
/// when absent or null.
pub fn json_text(obj: &serde_json::Map<String, serde_json::Value>, key: &str) -> String {
    let value = obj.get(key).or_else(|| {
        let mut parts = key.split('.');
        let mut v = obj.get(parts.next()?)?;
        for p in parts {
            v = v.as_object()?.get(p)?;
        }
        Some(v)
    });
    match value {
        None | Some(serde_json::Value::Null) => String::new(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// A JSON record as the rejects store keeps it: the keys the mapping takes
/// an identifier from are replaced by pseudonyms whatever their name, and
/// every field whose name says it holds one, as in any record.
pub fn redact_json(
    obj: &serde_json::Map<String, serde_json::Value>,
    identifier_keys: &[String],
    pseudo: &mut crate::pseudo::Pseudonymiser,
) -> Vec<u8> {
    let mut v = serde_json::Value::Object(obj.clone());
    for key in identifier_keys {
        // A key whose own name says it holds an identifier is replaced
        // below, with every other such key.
        if crate::rejects::is_identifier_field(key.rsplit('.').next().unwrap_or(key)) {
            continue;
        }
        let mut parts = key.split('.').peekable();
        let mut at = &mut v;
        // The exact key first, then the nested path.
        if let Some(slot) = at.as_object_mut().and_then(|m| m.get_mut(key.as_str())) {
            let text = json_value_text(slot);
            *slot = serde_json::Value::String(pseudo.redacted(&text));
            continue;
        }
        while let Some(p) = parts.next() {
            let Some(next) = at.as_object_mut().and_then(|m| m.get_mut(p)) else { break };
            if parts.peek().is_none() {
                let text = json_value_text(next);
                *next = serde_json::Value::String(pseudo.redacted(&text));
                break;
            }
            at = next;
        }
    }
    crate::rejects::redact_value(&mut v, pseudo);
    serde_json::to_vec(&v).unwrap_or_default()
}

fn json_value_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Decodes a cell in the mapping's encoding.
pub fn decode(bytes: &[u8], encoding: &str) -> Option<String> {
    match encoding.to_ascii_lowercase().as_str() {
        "windows-1252" => Some(bytes.iter().map(|b| cp1252(*b)).collect()),
        "iso-8859-1" => Some(bytes.iter().map(|b| char::from(*b)).collect()),
        _ => String::from_utf8(bytes.to_vec()).ok(),
    }
}

/// One byte of Windows-1252 (0x80-0x9F differ from ISO-8859-1; the five
/// bytes it leaves undefined read as the replacement character).
fn cp1252(b: u8) -> char {
    const HIGH: [char; 32] = [
        '€', '\u{fffd}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{fffd}', 'Ž', '\u{fffd}',
        '\u{fffd}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{fffd}', 'ž', 'Ÿ',
    ];
    match b {
        0x80..=0x9F => HIGH[(b - 0x80) as usize],
        _ => char::from(b),
    }
}

/// Adds one unmapped code to the bounded count.
pub fn count_code(stats: &mut MappingStats, code: &str) {
    let key = if stats.unmapped_codes.len() < 64 || stats.unmapped_codes.contains_key(code) {
        code.chars().take(64).collect()
    } else {
        "(other)".to_string()
    };
    *stats.unmapped_codes.entry(key).or_default() += 1;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(extra: &str) -> Mapping {
        let text = format!(
            "name = \"t\"\n[time]\nformat = \"%d/%m/%Y %H:%M:%S\"\nzone = \"Europe/Paris\"\n[fields]\nevent_id = {{ line = true }}\nts = {{ columns = [\"Date\", \"Heure\"] }}\nsite = {{ value = \"lyon-1\" }}\nworker = {{ column = \"Matricule\" }}\nkind = {{ column = \"Code\" }}\n{extra}"
        );
        toml::from_str(&text).unwrap()
    }

    #[test]
    fn a_sound_mapping_has_no_problem_and_a_bad_one_lists_them_all() {
        assert!(mapping("").problems().is_empty(), "{:?}", mapping("").problems());
        let mut m = mapping("badge = { column = \"B\" }\n[kinds]\nPICK = \"pick\"\n");
        m.csv.decimal = ';';
        m.csv.encoding = "ebcdic".into();
        m.time.zone = Some("Europe/Lyon".into());
        m.fields.remove("kind");
        let p = m.problems();
        assert_eq!(p.len(), 6, "{p:#?}");
    }

    #[test]
    fn the_autumn_hour_follows_each_workers_order_and_the_spring_hour_moves_on() {
        let m = mapping("");
        let mut clock = Clock::new(&m);
        let mut stats = MappingStats::default();
        let h = 3_600_000_000i64;
        // 25 October 2026: 03:00 +02:00 becomes 02:00 +01:00. A worker
        // seen at 02:30 (first pass, +02:00), then 02:10 (the second pass,
        // +01:00, since the first would go back in time).
        let (a, oa) = clock.read("25/10/2026 02:30:00", 1, &mut stats).unwrap();
        let (b, ob) = clock.read("25/10/2026 02:10:00", 1, &mut stats).unwrap();
        assert_eq!((oa, ob), (7200, 3600));
        assert_eq!(b - a, 40 * 60_000_000, "02:30 +02:00 to 02:10 +01:00 is 40 minutes");
        assert_eq!(stats.dst_ambiguous, 2);
        // 29 March 2026: 02:00 +01:00 becomes 03:00 +02:00; 02:30 does not
        // exist and reads as 02:30 +01:00 (= 03:30 +02:00).
        let (c, oc) = clock.read("29/03/2026 02:30:00", 2, &mut stats).unwrap();
        let (d, _) = clock.read("29/03/2026 01:30:00", 2, &mut stats).unwrap();
        assert_eq!((c - d, oc, stats.dst_nonexistent), (h, 3600, 1));
    }

    #[test]
    fn other_time_formats() {
        let mut m = mapping("");
        let mut stats = MappingStats::default();
        m.time.format = "excel".into();
        // 46083.5 is 2 March 2026 at noon, Paris (+01:00).
        let (t, off) = Clock::new(&m).read("46083,5", 1, &mut stats).unwrap();
        assert_eq!((t, off), (1_772_449_200_000_000, 3600));
        m.time.format = "epoch_ms".into();
        assert_eq!(
            Clock::new(&m).read("1772449200000", 1, &mut stats).unwrap(),
            (1_772_449_200_000_000, 3600)
        );
        m.time.format = "rfc3339".into();
        assert!(Clock::new(&m).read("2026-03-02 12:00", 1, &mut stats).is_err());
        // SAP's UTC time stamps (YYYYMMDDhhmmss): read as UTC, the zone
        // giving the local offset; 11:00 UTC is noon in Paris in March,
        // and 13:00 in July.
        m.time.format = "%Y%m%d%H%M%S".into();
        m.time.utc = true;
        assert!(m.problems().is_empty(), "{:?}", m.problems());
        assert_eq!(
            Clock::new(&m).read("20260302110000", 1, &mut stats).unwrap(),
            (1_772_449_200_000_000, 3600)
        );
        assert_eq!(Clock::new(&m).read("20260702110000", 1, &mut stats).unwrap().1, 7200);
        m.time.format = "epoch_s".into();
        assert_eq!(m.problems().len(), 1, "utc = true with a format that has its own offset");
    }

    #[test]
    fn windows_1252_and_latin_1() {
        assert_eq!(decode(b"Qt\xe9 \x80", "windows-1252").unwrap(), "Qté €");
        assert_eq!(decode(b"Qt\xe9", "iso-8859-1").unwrap(), "Qté");
        assert!(decode(b"Qt\xe9", "utf-8").is_none());
    }
}
