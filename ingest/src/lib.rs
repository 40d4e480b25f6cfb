//! vigie's door: event contract v1, validation, pseudonymisation, the
//! rejects store and the pseudonymised event store.
//!
//! Every source (a file reader, the Kafka consumer) hands raw records to an
//! [`Ingestor`], which validates them, re-keys the worker identifier,
//! drops repeated event ids and passes the result on. Nothing else in vigie
//! ever sees a received identifier.

#![warn(missing_docs)]

mod columnar;
pub mod dedup;
pub mod event;
mod flat;
mod lines;
pub use lines::CheckedJson;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod mapping;
pub mod planted;
pub mod pseudo;
pub mod reader;
pub mod rejects;
pub mod spill;
pub mod store;
#[cfg(test)]
mod testing;
pub mod validate;

/// Bytes in lower-case hexadecimal (hashes, key fingerprints), as
/// `sha256sum` prints them.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(2 * bytes.len()), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use event::{Event, EventRef, Origin, Pseudonym, RejectReason};
use pseudo::Pseudonymiser;
use rejects::RejectSink;
use validate::{Clock, RawFields, Rejection, Valid};

/// Errors that stop a source (not a record: records are rejected, never
/// fatal).
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// A file or folder could not be read or written (a source file, the
    /// store, the spill, the rejects store).
    #[error("{path}: {source}")]
    Io {
        /// The file or folder, as displayed.
        path: String,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The pseudonymisation key cannot be used (configuration).
    #[error("{0}")]
    Key(String),
    /// An input cannot be read as a whole (not one record: the file, its
    /// header, its footer). Records are never errors: they are refused
    /// with a reason and go to the rejects store.
    #[error("{0}")]
    Input(String),
    /// A refused record could not be delivered to the dead-letter topic:
    /// only a replay of the source brings it back.
    #[error("{0}")]
    DeadLetter(String),
    /// The source went backwards while read, and what was read before it
    /// cannot be made durable.
    #[error("{0}")]
    Durability(String),
    /// An error from Polars: reading a Parquet input, or building or writing the store's
    /// Parquet files.
    #[error("polars: {0}")]
    Polars(#[from] polars::error::PolarsError),
}

impl IngestError {
    /// An [`IngestError::Io`] naming `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        IngestError::Io { path: path.display().to_string(), source }
    }
}

/// Where accepted events go.
pub trait EventSink {
    /// An accepted event (valid, pseudonymised, not a duplicate); an error stops the
    /// source.
    fn push(&mut self, event: Event) -> Result<(), IngestError>;

    /// An accepted event, borrowed: a sink that stores columns copies what
    /// it needs without an owned [`Event`] in between.
    fn push_ref(&mut self, event: EventRef<'_>) -> Result<(), IngestError> {
        self.push(event.to_event())
    }
}

impl EventSink for Vec<Event> {
    fn push(&mut self, event: Event) -> Result<(), IngestError> {
        Vec::push(self, event);
        Ok(())
    }
}

impl EventSink for store::SpillWriter {
    fn push(&mut self, event: Event) -> Result<(), IngestError> {
        store::SpillWriter::push_ref(self, event.as_ref())
    }

    fn push_ref(&mut self, event: EventRef<'_>) -> Result<(), IngestError> {
        store::SpillWriter::push_ref(self, event)
    }
}

/// Site, team and zone names interned at once (see `Ingestor::label`).
pub const MAX_INTERNED_LABELS: usize = 65_536;

/// At most this many distinct dropped field names are listed; the rest
/// are counted under `(other)`.
const MAX_DROPPED_NAMES: usize = 64;

/// Rejects of one reason logged one by one in a window of
/// [`REJECT_LOG_WINDOW`] before the log goes quiet until the next window
/// (the totals are always counted, and a quiet window's count is logged).
const LOGGED_REJECTS_PER_REASON: u32 = 5;
/// The window of the reject log's rate limit.
const REJECT_LOG_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

/// The reject log's rate limit: per reason, the first
/// [`LOGGED_REJECTS_PER_REASON`] rejects of each window are logged one by
/// one, the others counted and summed up in one line when the window
/// ends. A long-running service thus keeps reporting a source that starts
/// sending bad records hours later, without one line per record.
struct RejectLog {
    window_start: std::time::Instant,
    logged: Vec<u32>,
    quiet: Vec<u64>,
}

impl RejectLog {
    fn new() -> RejectLog {
        let n = RejectReason::ALL.len();
        RejectLog { window_start: std::time::Instant::now(), logged: vec![0; n], quiet: vec![0; n] }
    }

    /// Whether this reject is logged one by one (a window that has ended
    /// is closed first).
    fn admit(&mut self, reason: RejectReason, now: std::time::Instant) -> bool {
        self.tick(now);
        let i = reason.code() as usize;
        if self.logged[i] < LOGGED_REJECTS_PER_REASON {
            self.logged[i] += 1;
            if self.logged[i] == LOGGED_REJECTS_PER_REASON {
                tracing::warn!(reason = %reason, window_s = REJECT_LOG_WINDOW.as_secs(), "Further rejects of this reason are counted, not logged, until the window ends");
            }
            true
        } else {
            self.quiet[i] += 1;
            false
        }
    }

    /// Ends the window if it has run its time.
    fn tick(&mut self, now: std::time::Instant) {
        if now.duration_since(self.window_start) >= REJECT_LOG_WINDOW {
            self.close();
            self.window_start = now;
        }
    }

    /// Logs the count of each reason kept quiet in the window, and starts
    /// afresh.
    fn close(&mut self) {
        for r in RejectReason::ALL {
            let i = r.code() as usize;
            if self.quiet[i] > 0 {
                tracing::warn!(reason = %r, rejects = self.quiet[i], "Rejects counted but not logged one by one in the last window");
            }
        }
        self.logged.iter_mut().for_each(|n| *n = 0);
        self.quiet.iter_mut().for_each(|n| *n = 0);
    }
}

/// What came through the door.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct IngestStats {
    /// Records read (blank lines are not records).
    pub records: u64,
    /// Accepted unique events.
    pub accepted: u64,
    /// Valid records whose event id was already accepted.
    pub duplicates: u64,
    /// Refused records, by [`RejectReason`] code.
    pub rejected: [u64; RejectReason::ALL.len()],
    /// Records that carried fields outside the contract.
    pub records_with_dropped_fields: u64,
    /// Those fields, by name (bounded).
    pub dropped_fields: BTreeMap<String, u64>,
    /// Earliest `ts` of the accepted events, in microseconds since the Unix epoch (UTC);
    /// `None` when none was accepted.
    pub min_ts_us: Option<i64>,
    /// Latest `ts` of the accepted events, in microseconds since the Unix epoch (UTC);
    /// `None` when none was accepted.
    pub max_ts_us: Option<i64>,
    /// Names of the sites of the accepted events.
    pub sites: BTreeSet<String>,
}

impl IngestStats {
    /// Refused records, every reason together.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.iter().sum()
    }

    /// Rejections by reason name, reasons with none left out.
    pub fn rejected_by_reason(&self) -> BTreeMap<&'static str, u64> {
        RejectReason::ALL
            .iter()
            .filter(|r| self.rejected[r.code() as usize] > 0)
            .map(|r| (r.as_str(), self.rejected[r.code() as usize]))
            .collect()
    }
}

/// How repeated event ids are found.
enum Dedup {
    /// xxh3-128 of every accepted event id, in memory: 16 bytes an event
    /// (the service, which bounds it by forgetting). The table's hasher is
    /// seeded per run: event ids crafted so that part of their (unseeded)
    /// xxh3 hash collides cannot make the table slow.
    Memory(HashSet<u128, foldhash::fast::RandomState>),
    /// Logged to partition files and resolved after the read (the audit:
    /// memory flat in the input; see [`dedup`]).
    Deferred(dedup::IdLog),
}

impl<S: EventSink, R: RejectSink> columnar::Resolve for Ingestor<S, R> {
    type Label = Arc<str>;

    fn pseudonym(&mut self, worker: &str) -> Pseudonym {
        self.pseudo.pseudonym(worker)
    }

    /// The shared copy of a site, team or zone name.
    fn intern(&mut self, label: &str) -> Arc<str> {
        self.label(label)
    }
}

/// A valid record's worker pseudonym and labels, as the door stores them
/// (`L`, the shared copy of a name), or as a checking thread refers to
/// them (a number in its batch's list of names).
pub(crate) struct Resolved<'r, L = Arc<str>> {
    pub worker: Pseudonym,
    pub site: &'r L,
    pub zone: Option<&'r L>,
    pub team: Option<&'r L>,
}

/// Validation, pseudonymisation and de-duplication, in front of a sink.
pub struct Ingestor<S, R> {
    pseudo: Pseudonymiser,
    clock: Option<Clock>,
    dedup: Dedup,
    labels: HashMap<Box<str>, Arc<str>, foldhash::fast::RandomState>,
    /// Sites by number, in the order they were met, and the site of the
    /// last event admitted (records come in runs of one site).
    site_codes: HashMap<Arc<str>, u32, foldhash::fast::RandomState>,
    site_names: Vec<Arc<str>>,
    last_site: Option<(Arc<str>, u32)>,
    /// Whether columnar readers may accept rows from their columns.
    columnar: bool,
    /// The key, one copy per checking thread, for batches of messages
    /// (`check_json_batch`): each keeps its memo from batch to batch.
    forks: Vec<Pseudonymiser>,
    reject_log: RejectLog,
    /// What came through the door so far.
    pub stats: IngestStats,
    /// Where accepted events go.
    pub sink: S,
    /// Where refused records go, redacted: identifier fields pseudonymised, and no byte
    /// kept of a record that does not parse.
    pub rejects: R,
}

impl<S: EventSink, R: RejectSink> Ingestor<S, R> {
    /// A door that re-keys workers with `pseudo` and checks timestamps against `clock`
    /// (`None` offline: no `future_timestamp` nor `expired_timestamp`). Duplicates are
    /// found in memory unless [`Self::defer_duplicates`] is called.
    pub fn new(pseudo: Pseudonymiser, clock: Option<Clock>, sink: S, rejects: R) -> Self {
        Ingestor {
            pseudo,
            clock,
            dedup: Dedup::Memory(HashSet::default()),
            labels: HashMap::default(),
            site_codes: HashMap::default(),
            site_names: Vec::new(),
            last_site: None,
            columnar: true,
            forks: Vec::new(),
            reject_log: RejectLog::new(),
            stats: IngestStats::default(),
            sink,
            rejects,
        }
    }

    /// Moves the clock that `future_timestamp` is checked against (the
    /// service calls it as time passes).
    pub fn set_clock(&mut self, clock: Option<Clock>) {
        self.clock = clock;
    }

    /// With `false`, every record takes the record path, even from a
    /// columnar reader (the differential tests compare the two; the
    /// outcome is the same either way, only slower).
    pub fn set_columnar_check(&mut self, on: bool) {
        self.columnar = on;
    }

    /// Whether columnar readers may check rows from their columns.
    pub(crate) fn columnar(&self) -> bool {
        self.columnar
    }

    /// The clock records are checked against, if any.
    pub(crate) fn clock(&self) -> Option<Clock> {
        self.clock
    }

    /// Event ids held by the duplicate filter in memory.
    pub fn seen_len(&self) -> usize {
        match &self.dedup {
            Dedup::Memory(seen) => seen.len(),
            Dedup::Deferred(_) => 0,
        }
    }

    /// Empties the duplicate filter (a long-running source bounds its
    /// memory this way; repeats older than that are dropped downstream).
    pub fn forget_seen(&mut self) {
        if let Dedup::Memory(seen) = &mut self.dedup {
            *seen = HashSet::default();
        }
    }

    /// Makes room for about `events` accepted events in the duplicate
    /// filter, so that it is not rebuilt as it grows.
    pub fn reserve(&mut self, events: usize) {
        if let Dedup::Memory(seen) = &mut self.dedup {
            seen.reserve(events);
        }
    }

    /// Finds repeated event ids after the read instead of in memory
    /// ([`dedup`]): every valid record goes to the sink with its sequence
    /// number, and [`Self::resolve_duplicates`] then says which to leave
    /// out. Until then `stats.accepted` counts valid records and
    /// `stats.duplicates` none. Call before the first record.
    pub fn defer_duplicates(&mut self, dir: &std::path::Path, partitions: usize) -> Result<(), IngestError> {
        self.dedup = Dedup::Deferred(dedup::IdLog::create(dir, partitions)?);
        Ok(())
    }

    /// The sequence number the next valid record will get: a source's
    /// records are those between its first and last.
    pub fn next_seq(&self) -> u64 {
        match &self.dedup {
            Dedup::Deferred(log) => log.next_seq(),
            Dedup::Memory(_) => self.stats.accepted,
        }
    }

    /// With deferred duplicates: resolves them (`buckets` is the spill's
    /// number of buckets) and sets the counts, period and sites to those
    /// of the records kept. `None` when duplicates were dropped in memory.
    pub fn resolve_duplicates(&mut self, buckets: usize) -> Result<Option<dedup::Resolved>, IngestError> {
        let Dedup::Deferred(log) = std::mem::replace(&mut self.dedup, Dedup::Memory(HashSet::default()))
        else {
            return Ok(None);
        };
        let r = log.resolve(buckets)?;
        self.stats.duplicates += r.duplicates();
        self.stats.accepted = r.kept;
        self.stats.min_ts_us = r.min_ts_us;
        self.stats.max_ts_us = r.max_ts_us;
        self.stats.sites = r.sites.iter().map(|c| self.site_names[*c as usize].to_string()).collect();
        Ok(Some(r))
    }

    /// One NDJSON line or Kafka message payload. A leading UTF-8
    /// byte-order mark (a file saved by a spreadsheet or an editor, a
    /// producer that writes one) is not part of the record.
    pub fn offer_json(&mut self, bytes: &[u8], at: impl FnOnce() -> Origin) -> Result<(), IngestError> {
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        self.stats.records += 1;
        // Whatever step refuses the record, it is redacted and stored once.
        let rej = match validate::check_bytes(bytes).and_then(validate::parse_json) {
            Ok(raw) => match self.accept(&raw)? {
                Ok(()) => return Ok(()),
                Err(rej) => rej,
            },
            Err(rej) => rej,
        };
        // Kept only when it parses: then every identifier field is
        // pseudonymised; otherwise no byte of it is kept.
        let rej = self.name_the_identifier(rej, bytes);
        let redacted = rejects::redact_record(bytes, &mut self.pseudo).unwrap_or_default();
        self.reject(&at(), &rej, &redacted, bytes.len())
    }

    /// One NDJSON line or Kafka message payload read through a mapping
    /// (docs/mapping.md): the mapping names the keys (`a.b` reaches into a
    /// nested object); a record whose code has no kind is counted in the
    /// mapper's stats and skipped.
    pub fn offer_json_mapped(
        &mut self,
        bytes: &[u8],
        mapper: &mut mapping::Mapper,
        at: impl Fn() -> Origin,
    ) -> Result<(), IngestError> {
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        let parsed = validate::check_bytes(bytes).and_then(|b| match serde_json::from_str(b) {
            Ok(serde_json::Value::Object(map)) => Ok(map),
            Ok(_) => Err(Rejection::new(RejectReason::InvalidJson, "not a JSON object".to_string())),
            Err(e) => Err(Rejection::new(RejectReason::InvalidJson, format!("not JSON: {e}"))),
        });
        let obj = match parsed {
            Ok(obj) => obj,
            Err(rej) => {
                // Nothing of a record that does not parse is kept.
                self.stats.records += 1;
                return self.reject(&at(), &rej, &[], bytes.len());
            }
        };
        let get = |key: &str| mapping::json_text(&obj, key);
        let rec = match mapper.map(get, || at().to_string()) {
            mapping::Mapped::Record(r) => r,
            mapping::Mapped::Skipped => return Ok(()),
            mapping::Mapped::BadTime(why) => {
                self.stats.records += 1;
                let rej = Rejection::new(RejectReason::InvalidTimestamp, format!("`ts`: {why}"));
                let raw = mapping::redact_json(&obj, mapper.identifier_sources(), &mut self.pseudo);
                return self.reject(&at(), &rej, &raw, bytes.len());
            }
        };
        let unknown = obj
            .iter()
            .filter(|(k, v)| !mapper.top_keys().contains(k) && !v.is_null())
            .map(|(k, _)| std::borrow::Cow::Borrowed(k.as_str()))
            .collect();
        let raw = rec.raw(unknown);
        self.offer_fields(&raw, at, |ps| mapping::redact_json(&obj, mapper.identifier_sources(), ps))
    }

    /// A record refused for a missing `worker` that carries an identifier
    /// under another name (`Worker`, `employee_id`...): the message says
    /// which field was expected (the other name is quoted only when it is
    /// safe to publish).
    fn name_the_identifier(&self, rej: Rejection, bytes: &[u8]) -> Rejection {
        if rej.reason != RejectReason::MissingField || !rej.message.starts_with("`worker`") {
            return rej;
        }
        let Ok(serde_json::Value::Object(map)) = serde_json::from_slice::<serde_json::Value>(bytes) else {
            return rej;
        };
        match map.keys().find(|k| k.as_str() != "worker" && rejects::is_identifier_field(k)) {
            Some(k) => {
                let named = if rejects::is_safe_field_name(k) { format!("`{k}`") } else { "a field".into() };
                Rejection::new(
                    rej.reason,
                    format!("`worker` is required; {named} looks like a worker identifier under another name: the export should call it `worker` (its value was pseudonymised here)"),
                )
            }
            None => rej,
        }
    }

    /// A record whose fields a reader has already split (CSV, Parquet).
    /// `render` gives the record as it should appear in the rejects store;
    /// it is only called on a reject and receives the pseudonymiser to
    /// replace the worker value.
    pub fn offer_fields(
        &mut self,
        raw: &RawFields<'_>,
        at: impl FnOnce() -> Origin,
        render: impl FnOnce(&mut Pseudonymiser) -> Vec<u8>,
    ) -> Result<(), IngestError> {
        self.stats.records += 1;
        match self.accept(raw)? {
            Ok(()) => Ok(()),
            Err(rej) => {
                let bytes = render(&mut self.pseudo);
                self.reject(&at(), &rej, &bytes, bytes.len())
            }
        }
    }

    /// A record refused before its fields could be read (bad UTF-8 or size);
    /// `raw` must already be redacted, `full_len` is the size received.
    pub fn offer_refused(
        &mut self,
        rej: Rejection,
        at: Origin,
        raw: &[u8],
        full_len: usize,
    ) -> Result<(), IngestError> {
        self.stats.records += 1;
        self.reject(&at, &rej, raw, full_len)
    }

    /// The pseudonymiser, for readers that redact their own raw records.
    pub fn pseudonymiser(&mut self) -> &mut Pseudonymiser {
        &mut self.pseudo
    }

    /// The outer error is fatal (the sink failed); the inner one rejects
    /// the record.
    fn accept(&mut self, raw: &RawFields<'_>) -> Result<Result<(), Rejection>, IngestError> {
        let v = match validate::validate(raw, self.clock) {
            Ok(v) => v,
            Err(rej) => return Ok(Err(rej)),
        };
        self.count_unknown(raw.unknown.iter().map(std::convert::AsRef::as_ref));
        self.admit(&v)?;
        Ok(Ok(()))
    }

    /// A record a columnar reader has already checked against every rule
    /// of the contract (`validate::validate` would accept it and give
    /// `v`), with the names of the fields outside the contract it carried,
    /// and its worker and labels resolved once per distinct value of its
    /// slice (`columnar::Resolve`).
    pub(crate) fn offer_resolved<'n>(
        &mut self,
        v: &Valid<'_>,
        unknown: impl IntoIterator<Item = &'n str>,
        resolved: Resolved<'_>,
    ) -> Result<(), IngestError> {
        self.stats.records += 1;
        self.count_unknown(unknown);
        self.admit_resolved(v, resolved)
    }

    /// Counts the fields of a valid record that are outside the contract.
    fn count_unknown<'n>(&mut self, names: impl IntoIterator<Item = &'n str>) {
        let mut any = false;
        for name in names {
            any = true;
            // Names are data too: published only when safe.
            let key = if !rejects::is_safe_field_name(name) {
                "(unnamed)".to_string()
            } else if self.stats.dropped_fields.len() < MAX_DROPPED_NAMES
                || self.stats.dropped_fields.contains_key(name)
            {
                name.to_string()
            } else {
                "(other)".to_string()
            };
            *self.stats.dropped_fields.entry(key).or_default() += 1;
        }
        if any {
            self.stats.records_with_dropped_fields += 1;
        }
    }

    /// A record another thread has checked against every rule of the
    /// contract (`validate::validate` gave `v`, and it carried no field
    /// outside the contract), with `worker` the pseudonym of `v.worker`
    /// under this ingestor's key ([`Pseudonymiser::fork`]).
    pub(crate) fn offer_checked(
        &mut self,
        v: &Valid<'_>,
        worker: crate::event::Pseudonym,
    ) -> Result<(), IngestError> {
        self.stats.records += 1;
        self.admit_as(v, worker)
    }

    /// A valid record past the duplicate filter, re-keyed, to the sink.
    fn admit(&mut self, v: &Valid<'_>) -> Result<(), IngestError> {
        let worker = self.pseudo.pseudonym(&v.worker);
        self.admit_as(v, worker)
    }

    fn admit_as(&mut self, v: &Valid<'_>, worker: crate::event::Pseudonym) -> Result<(), IngestError> {
        let site = match &self.last_site {
            Some((a, _)) if a.as_ref() == v.site.as_ref() => a.clone(),
            _ => self.label(&v.site),
        };
        let zone = v.zone.as_deref().map(|z| self.label(z));
        let team = v.team.as_deref().map(|t| self.label(t));
        self.admit_resolved(v, Resolved { worker, site: &site, zone: zone.as_ref(), team: team.as_ref() })
    }

    fn admit_resolved(&mut self, v: &Valid<'_>, r: Resolved<'_>) -> Result<(), IngestError> {
        let h = xxhash_rust::xxh3::xxh3_128(v.event_id.as_bytes());
        if let Dedup::Memory(seen) = &mut self.dedup {
            if !seen.insert(h) {
                self.stats.duplicates += 1;
                return Ok(());
            }
        }
        let Resolved { worker, site, zone, team } = r;
        let site_code = match &self.last_site {
            Some((a, code)) if Arc::ptr_eq(a, site) || a.as_ref() == site.as_ref() => *code,
            _ => {
                let code = match self.site_codes.get(site) {
                    Some(c) => *c,
                    None => {
                        let c = self.site_names.len() as u32;
                        self.site_codes.insert(site.clone(), c);
                        self.site_names.push(site.clone());
                        self.stats.sites.insert(site.to_string());
                        c
                    }
                };
                self.last_site = Some((site.clone(), code));
                code
            }
        };
        let seq = match &mut self.dedup {
            Dedup::Deferred(log) => log.log(h, worker.0, v.ts_us, site_code)?,
            Dedup::Memory(_) => self.stats.accepted,
        };
        self.stats.accepted += 1;
        self.stats.min_ts_us = Some(self.stats.min_ts_us.map_or(v.ts_us, |m| m.min(v.ts_us)));
        self.stats.max_ts_us = Some(self.stats.max_ts_us.map_or(v.ts_us, |m| m.max(v.ts_us)));
        self.sink.push_ref(EventRef {
            seq,
            event_id: &v.event_id,
            ts_us: v.ts_us,
            offset_s: v.offset_s,
            site,
            worker,
            kind: v.kind,
            zone,
            team,
            process: v.process,
            device: v.device,
            quantity: v.quantity,
            weight_kg: v.weight_kg,
            threshold_s: v.threshold_s,
            gap_s: v.gap_s,
            target_per_hour: v.target_per_hour,
        })
    }

    fn label(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.labels.get(s) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(s);
        // Interning only saves memory: past this many distinct names (a
        // flood of sites, teams or zones) the table starts afresh instead
        // of growing with the input.
        if self.labels.len() >= MAX_INTERNED_LABELS {
            self.labels.clear();
        }
        self.labels.insert(s.into(), a.clone());
        a
    }

    fn reject(
        &mut self,
        at: &Origin,
        rej: &Rejection,
        raw: &[u8],
        full_len: usize,
    ) -> Result<(), IngestError> {
        self.stats.rejected[rej.reason.code() as usize] += 1;
        if self.reject_log.admit(rej.reason, std::time::Instant::now()) {
            // Coordinates, size and reason only: the message may quote a
            // value of the record, and a log keeps no record content (the
            // rejects store has the message).
            tracing::warn!(source = %at, reason = %rej.reason, bytes = full_len, "Record rejected");
        }
        self.rejects.reject(at, rej, raw, full_len)
    }

    /// Ends the reject log's window when it has run its time, logging
    /// what it kept quiet: a long-running caller (the service, on every
    /// tick of its loop) calls it, so that a burst of rejects that then
    /// stops is still summed up when its minute ends.
    pub fn tick_reject_log(&mut self) {
        self.reject_log.tick(std::time::Instant::now());
    }

    /// Logs what the reject log kept quiet so far (at the end of a run).
    pub fn close_reject_log(&mut self) {
        self.reject_log.close();
    }

    /// Flushes the rejects store and hands back the sinks and counts.
    pub fn finish(mut self) -> Result<(S, R, IngestStats), IngestError> {
        self.reject_log.close();
        self.rejects.flush()?;
        Ok((self.sink, self.rejects, self.stats))
    }
}

/// Runs `f` on each item on up to `threads` threads (at least one), one
/// item at a time per thread, and returns the results in the items'
/// order; stops at the first error. Memory: one item in work per thread.
pub fn map_parallel<T: Sync, R: Send, E: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> Result<R, E> + Sync,
) -> Result<Vec<R>, E> {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let threads = threads.clamp(1, items.len().max(1));
    let mut done: Vec<(usize, Result<R, E>)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut out = Vec::new();
                    while !failed.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        // A panic stops the others too, then goes on up.
                        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(item)))
                            .unwrap_or_else(|p| {
                                failed.store(true, Ordering::Relaxed);
                                std::panic::resume_unwind(p)
                            });
                        if r.is_err() {
                            failed.store(true, Ordering::Relaxed);
                        }
                        out.push((i, r));
                    }
                    out
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p))).collect()
    });
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

/// The threads the audit's parallel passes use: the machine's cores, at
/// most 4 (each holds one bucket or partition in memory), and at most
/// `POLARS_MAX_THREADS` when it is set (docs/cli.md), so one setting caps
/// every pool of the run.
pub fn work_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get).min(4);
    match std::env::var("POLARS_MAX_THREADS").ok().and_then(|v| v.trim().parse::<usize>().ok()) {
        Some(cap) if cap > 0 => cores.min(cap),
        _ => cores,
    }
}

#[cfg(test)]
mod parallel_tests {
    use super::map_parallel;

    #[test]
    fn results_come_back_in_the_items_order_and_the_first_error_wins() {
        let items: Vec<u64> = (0..200).collect();
        for threads in [0, 1, 2, 7, 500] {
            let out = map_parallel(&items, threads, |x| Ok::<_, String>(x * 2)).unwrap();
            assert_eq!(out, items.iter().map(|x| x * 2).collect::<Vec<_>>(), "{threads} threads");
            let err = map_parallel(&items, threads, |x| if *x == 57 { Err(*x) } else { Ok(*x) }).unwrap_err();
            assert_eq!(err, 57);
        }
        assert!(map_parallel(&[] as &[u8], 2, |_| Ok::<u8, ()>(0)).unwrap().is_empty());
    }
}

#[cfg(test)]
mod reject_log_tests {
    use super::*;

    #[test]
    fn each_reason_is_logged_five_times_a_window_then_counted_until_the_next() {
        let mut log = RejectLog::new();
        let t0 = log.window_start;
        let r = RejectReason::InvalidJson;
        let admitted: Vec<bool> = (0..8).map(|_| log.admit(r, t0)).collect();
        assert_eq!(admitted, [true, true, true, true, true, false, false, false]);
        assert_eq!(log.quiet[r.code() as usize], 3);
        // Another reason has its own five.
        assert!(log.admit(RejectReason::TooLarge, t0 + std::time::Duration::from_secs(59)));
        assert!(!log.admit(r, t0 + std::time::Duration::from_secs(59)));
        // The next window logs again, and its counts start afresh.
        let t1 = t0 + REJECT_LOG_WINDOW;
        assert!(log.admit(r, t1));
        assert_eq!((log.logged[r.code() as usize], log.quiet[r.code() as usize]), (1, 0));
        assert_eq!(log.logged[RejectReason::TooLarge.code() as usize], 0);
        // A window that has run its time is closed by a tick too.
        log.tick(t1 + REJECT_LOG_WINDOW);
        assert_eq!((log.logged[r.code() as usize], log.window_start), (0, t1 + REJECT_LOG_WINDOW));
        let t1 = log.window_start;
        // The new window logs five again.
        let admitted: Vec<bool> = (0..6).map(|_| log.admit(r, t1 + REJECT_LOG_WINDOW / 2)).collect();
        assert_eq!(admitted, [true, true, true, true, true, false]);
    }
}
