//! File readers: NDJSON/JSONL, CSV (each optionally gzipped) and Parquet.
//! Each streams its input (a line, a CSV record or a Parquet slice at a
//! time) into an [`Ingestor`], so memory does not grow with the file.

use std::borrow::Cow;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::Arc;

use flate2::read::MultiGzDecoder;
use polars::prelude::*;

use crate::columnar::{self, Fast};
use crate::event::{Origin, RejectReason, MAX_RECORD_BYTES};
use crate::rejects::RejectSink;
use crate::validate::{RawFields, Rejection, Scalar as Val, FIELDS};
use crate::{EventSink, IngestError, Ingestor};

/// Input formats, from the file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `.ndjson` or `.jsonl`, optionally gzipped.
    Ndjson {
        /// Gzip-compressed (`.ndjson.gz`, `.jsonl.gz`).
        gz: bool,
    },
    /// `.csv`, optionally gzipped.
    Csv {
        /// Gzip-compressed (`.csv.gz`).
        gz: bool,
    },
    /// `.parquet` (never gzipped).
    Parquet,
}

impl Format {
    /// `.ndjson`/`.jsonl`, `.csv` (each optionally `.gz`) or `.parquet`.
    pub fn from_path(path: &Path) -> Result<Format, IngestError> {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("").to_ascii_lowercase();
        let (stem, gz) = match name.strip_suffix(".gz") {
            Some(s) => (s, true),
            None => (name.as_str(), false),
        };
        let f = if stem.ends_with(".ndjson") || stem.ends_with(".jsonl") {
            Format::Ndjson { gz }
        } else if stem.ends_with(".csv") {
            Format::Csv { gz }
        } else if stem.ends_with(".parquet") && !gz {
            Format::Parquet
        } else {
            return Err(IngestError::Input(format!(
                "{}: unknown format; expected .ndjson, .jsonl or .csv (optionally .gz), or .parquet",
                path.display()
            )));
        };
        Ok(f)
    }
}

/// About how many events a file holds, from its size (text formats: about
/// 180 bytes a record, gzip about 8 times smaller) or its metadata
/// (Parquet). Used to size the spill, not to count.
pub fn estimate_events(path: &Path) -> u64 {
    let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    match Format::from_path(path) {
        // The footer's claim, but never more than the file's size could
        // hold (a footer may lie).
        Ok(Format::Parquet) => File::open(path)
            .ok()
            .filter(|_| check_footer(path).is_ok())
            .and_then(|f| ParquetReader::new(f).num_rows().ok())
            .map(|n| (n as u64).min(bytes.saturating_mul(64)))
            .unwrap_or(bytes / 16),
        Ok(Format::Ndjson { gz: true } | Format::Csv { gz: true }) => bytes * 8 / 180,
        _ => bytes / 180,
    }
}

/// Rows read from a Parquet file at a time.
pub const PARQUET_SLICE_ROWS: usize = 256 * 1024;

/// The size and SHA-256 of a file as a reader read it (docs/custody.md):
/// taken from the bytes as they stream past, not by a second pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileDigest {
    /// Size of the file, in bytes (as stored, before decompression).
    pub bytes: u64,
    /// SHA-256 of the file's bytes, as stored.
    pub sha256: [u8; 32],
}

impl FileDigest {
    /// The hash in lower-case hexadecimal, as `sha256sum` prints it.
    pub fn hex(&self) -> String {
        crate::hex(&self.sha256)
    }
}

/// What a reader takes from its file (before decompression): the bytes
/// read so far, for progress reports, and their running hash.
#[derive(Clone, Default)]
pub(crate) struct Tap {
    done: std::rc::Rc<std::cell::Cell<u64>>,
    hash: std::rc::Rc<std::cell::RefCell<sha2::Sha256>>,
}

impl Tap {
    fn wrap<R: Read>(&self, inner: R) -> Counting<R> {
        Counting { inner, tap: self.clone(), shared: None }
    }

    /// [`Self::wrap`], also counting the bytes read into `shared` (for
    /// another thread's progress reports).
    pub(crate) fn wrap_counted<R: Read>(
        &self,
        inner: R,
        shared: Arc<std::sync::atomic::AtomicU64>,
    ) -> Counting<R> {
        Counting { inner, tap: self.clone(), shared: Some(shared) }
    }

    /// The digest of the whole file: what the parser left unread (a
    /// trailer after a gzip stream, say) is hashed from where it stopped.
    pub(crate) fn finish(self, path: &Path) -> Result<FileDigest, IngestError> {
        use sha2::Digest;
        use std::io::{Seek, SeekFrom};
        let mut hash = self.hash.borrow().clone();
        let mut bytes = self.done.get();
        let mut f = File::open(path).map_err(|e| IngestError::io(path, e))?;
        f.seek(SeekFrom::Start(bytes)).map_err(|e| IngestError::io(path, e))?;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = f.read(&mut buf).map_err(|e| IngestError::io(path, e))?;
            if n == 0 {
                break;
            }
            hash.update(&buf[..n]);
            bytes += n as u64;
        }
        Ok(FileDigest { bytes, sha256: hash.finalize().into() })
    }
}

/// A file reader that feeds its [`Tap`].
pub(crate) struct Counting<R> {
    inner: R,
    tap: Tap,
    shared: Option<Arc<std::sync::atomic::AtomicU64>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use sha2::Digest;
        let n = self.inner.read(buf)?;
        self.tap.done.set(self.tap.done.get() + n as u64);
        if let Some(s) = &self.shared {
            s.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        }
        self.tap.hash.borrow_mut().update(&buf[..n]);
        Ok(n)
    }
}

/// The digest of a file read from start to end on its own: for Parquet,
/// whose decoder reads column chunks rather than front to back (a second
/// thread hashes the file beside it), and for files that are not inputs
/// (an output folder's manifest).
pub fn hash_file(path: &Path) -> Result<FileDigest, IngestError> {
    let f = File::open(path).map_err(|e| IngestError::io(path, e))?;
    let tap = Tap::default();
    let mut r = tap.wrap(f);
    std::io::copy(&mut r, &mut std::io::sink()).map_err(|e| IngestError::io(path, e))?;
    tap.finish(path)
}

/// Reads one file into the ingestor and returns its size and hash.
/// `progress` receives the fraction of the file done, from 0 to 1, now
/// and then.
pub fn read_file<S: EventSink, R: RejectSink>(
    path: &Path,
    ing: &mut Ingestor<S, R>,
    progress: &mut dyn FnMut(f64),
) -> Result<FileDigest, IngestError> {
    let name: Arc<str> = Arc::from(path.display().to_string());
    let tap = Tap::default();
    match Format::from_path(path)? {
        // Lines are checked on every core; the record-by-record read stays
        // for the differential tests (`set_columnar_check(false)`).
        Format::Ndjson { gz } if ing.columnar() => {
            return crate::lines::read_ndjson_parallel(path, gz, name, ing, progress)
        }
        Format::Ndjson { gz } => read_ndjson(path, gz, name, None, ing, progress, &tap)?,
        Format::Csv { gz } if ing.columnar() => {
            return crate::lines::read_csv_parallel(path, gz, name, ing, progress)
        }
        Format::Csv { gz } => read_csv(path, gz, name, ing, progress, &tap)?,
        Format::Parquet => {
            let owned = path.to_path_buf();
            let hasher = std::thread::Builder::new()
                .name("vigie-hash".into())
                .spawn(move || hash_file(&owned))
                .map_err(|e| IngestError::io(path, e))?;
            // The Parquet decoder is not ours: a crafted file that makes it
            // panic is an unreadable file, not a crash of the run.
            let label = name.clone();
            let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                read_parquet(path, name, ing, progress)
            }))
            .unwrap_or_else(|_| {
                Err(IngestError::Input(format!(
                    "{label}: not a readable Parquet file (the decoder failed on it)"
                )))
            });
            let digest = hasher
                .join()
                .unwrap_or_else(|_| Err(IngestError::Input(format!("{label}: could not hash the file"))));
            read?;
            return digest;
        }
    }
    tap.finish(path)
}

/// Reads the next line into `buf` (without its end), keeping at most
/// `MAX_RECORD_BYTES + 1` bytes of it. Returns the line's full length, or
/// `None` at the end of the input.
fn next_line(r: &mut dyn BufRead, buf: &mut Vec<u8>) -> std::io::Result<Option<usize>> {
    buf.clear();
    crate::lines::next_line_into(r, buf)
}

fn read_ndjson<S: EventSink, R: RejectSink>(
    path: &Path,
    gz: bool,
    name: Arc<str>,
    mut mapper: Option<&mut crate::mapping::Mapper>,
    ing: &mut Ingestor<S, R>,
    progress: &mut dyn FnMut(f64),
    tap: &Tap,
) -> Result<(), IngestError> {
    let size = std::fs::metadata(path).map_err(|e| IngestError::io(path, e))?.len().max(1);
    let f = File::open(path).map_err(|e| IngestError::io(path, e))?;
    let done = tap.done.clone();
    let shared = tap.wrap(f);
    let inner: Box<dyn Read> =
        if gz { Box::new(MultiGzDecoder::new(BufReader::new(shared))) } else { Box::new(shared) };
    let mut r: Box<dyn BufRead> = Box::new(BufReader::with_capacity(1 << 20, inner));
    let mut buf = Vec::with_capacity(4096);
    let mut line_no = 0u64;
    loop {
        let len = match next_line(&mut *r, &mut buf) {
            Ok(Some(n)) => n,
            Ok(None) => break,
            Err(e) => {
                return Err(IngestError::Input(format!("{name}: read failed after line {line_no}: {e}")))
            }
        };
        line_no += 1;
        if buf.iter().all(u8::is_ascii_whitespace) && len == buf.len() {
            continue;
        }
        let at = || Origin::File { file: name.clone(), line: line_no };
        if len > MAX_RECORD_BYTES {
            let rej = Rejection::too_large(len);
            // Cut: it cannot be parsed whole, so no byte of it is kept.
            ing.offer_refused(rej, at(), &[], len)?;
        } else {
            match mapper.as_deref_mut() {
                Some(m) => ing.offer_json_mapped(&buf, m, at)?,
                None => ing.offer_json(&buf, at)?,
            }
        }
        if line_no.is_multiple_of(65_536) {
            progress(done.get() as f64 / size as f64);
        }
    }
    progress(1.0);
    Ok(())
}

/// Renders split fields as a JSON object for the rejects store, with the
/// worker value replaced by its pseudonym.
fn render_cells(
    names: &[String],
    cells: &[Cow<'_, str>],
    pseudo: &mut crate::pseudo::Pseudonymiser,
) -> Vec<u8> {
    let mut obj = serde_json::Map::new();
    for (i, cell) in cells.iter().enumerate() {
        // A cell without a column name cannot be known not to be an
        // identifier: its value is withheld.
        let key = names.get(i).cloned().unwrap_or_else(|| format!("column_{}", i + 1));
        let value = redact_cell(names.get(i), cell, pseudo);
        obj.insert(key, serde_json::Value::String(value));
    }
    serde_json::to_vec(&obj).unwrap_or_default()
}

/// One step of [`CsvRecords`].
pub(crate) enum CsvNext {
    /// A record within the size limit: its fields and the line it starts
    /// on.
    Record {
        fields: csv::ByteRecord,
        line: u64,
    },
    /// A record over the limit, cut while reading: only its line and size.
    TooLarge {
        line: u64,
        bytes: usize,
    },
    End,
}

/// CSV records read with `csv_core`, so that a record over the size limit
/// is cut while it is read: at most `MAX_RECORD_BYTES` of its fields are
/// ever held, whatever its length (a file of one endless quoted field
/// included). RFC 4180 as the `csv` crate reads it by default: `,`, `"`,
/// doubled quotes, CRLF or LF; blank lines skipped; a leading UTF-8 BOM
/// dropped.
pub(crate) struct CsvRecords<R> {
    input: R,
    rdr: csv_core::Reader,
    out: Vec<u8>,
    ends: Vec<usize>,
    /// Line of the next byte to read, from 1.
    line: u64,
    started: bool,
}

impl<R: BufRead> CsvRecords<R> {
    pub(crate) fn new(input: R) -> Self {
        Self::with_dialect(input, b',', b'"')
    }

    fn with_dialect(input: R, delimiter: u8, quote: u8) -> Self {
        CsvRecords {
            input,
            rdr: csv_core::ReaderBuilder::new().delimiter(delimiter).quote(quote).build(),
            out: vec![0; MAX_RECORD_BYTES],
            ends: vec![0; MAX_RECORD_BYTES + 1],
            line: 1,
            started: false,
        }
    }

    pub(crate) fn next_record(&mut self) -> std::io::Result<CsvNext> {
        if !self.started {
            self.started = true;
            let buf = self.input.fill_buf()?;
            if buf.starts_with(b"\xEF\xBB\xBF") {
                self.input.consume(3);
            }
        }
        // Blank lines before the record: skipped here so that its line is
        // the one it starts on.
        loop {
            let buf = self.input.fill_buf()?;
            let blank = buf.iter().take_while(|b| **b == b'\n' || **b == b'\r').count();
            if blank == 0 {
                break;
            }
            self.line += memchr::memchr_iter(b'\n', &buf[..blank]).count() as u64;
            self.input.consume(blank);
        }
        let line = self.line;
        let (mut nout, mut nends, mut bytes, mut over) = (0usize, 0usize, 0usize, false);
        loop {
            let buf = self.input.fill_buf()?;
            let (res, nin, o, e) = self.rdr.read_record(buf, &mut self.out[nout..], &mut self.ends[nends..]);
            self.line += memchr::memchr_iter(b'\n', &buf[..nin]).count() as u64;
            self.input.consume(nin);
            bytes += nin;
            nout += o;
            nends += e;
            match res {
                csv_core::ReadRecordResult::InputEmpty => {}
                csv_core::ReadRecordResult::OutputFull | csv_core::ReadRecordResult::OutputEndsFull => {
                    // Over the limit: the rest of the record is read and
                    // dropped, into the same buffers.
                    over = true;
                    nout = 0;
                    nends = 0;
                }
                csv_core::ReadRecordResult::Record => {
                    if over || bytes > MAX_RECORD_BYTES {
                        return Ok(CsvNext::TooLarge { line, bytes });
                    }
                    let mut fields = csv::ByteRecord::with_capacity(nout, nends);
                    let mut from = 0;
                    for end in &self.ends[..nends] {
                        fields.push_field(&self.out[from..*end]);
                        from = *end;
                    }
                    return Ok(CsvNext::Record { fields, line });
                }
                csv_core::ReadRecordResult::End => return Ok(CsvNext::End),
            }
        }
    }
}

/// A CSV cell as the rejects store may keep it: identifier columns (by
/// header name, docs/security.md) pseudonymised, unnamed ones withheld.
fn redact_cell(name: Option<&String>, cell: &str, pseudo: &mut crate::pseudo::Pseudonymiser) -> String {
    match name {
        None => "~withheld".to_string(),
        Some(n) if crate::rejects::is_identifier_field(n) => pseudo.redacted(cell),
        Some(_) => cell.to_string(),
    }
}

/// A CSV record over the size limit, cut while reading: refused, no byte
/// of it kept.
pub(crate) fn refuse_too_large<S: EventSink, R: RejectSink>(
    ing: &mut Ingestor<S, R>,
    name: &Arc<str>,
    line: u64,
    bytes: usize,
) -> Result<(), IngestError> {
    let rej = Rejection::too_large(bytes);
    ing.offer_refused(rej, Origin::File { file: name.clone(), line }, &[], bytes)
}

fn read_csv<S: EventSink, R: RejectSink>(
    path: &Path,
    gz: bool,
    name: Arc<str>,
    ing: &mut Ingestor<S, R>,
    progress: &mut dyn FnMut(f64),
    tap: &Tap,
) -> Result<(), IngestError> {
    let done = tap.done.clone();
    let f = File::open(path).map_err(|e| IngestError::io(path, e))?;
    let counted = tap.wrap(f);
    let r: Box<dyn Read> =
        if gz { Box::new(MultiGzDecoder::new(BufReader::new(counted))) } else { Box::new(counted) };
    let mut rdr = CsvRecords::new(BufReader::with_capacity(1 << 20, r));
    let headers = csv_headers(&mut rdr, &name)?;
    let io_err = |e: std::io::Error| IngestError::Input(format!("{name}: CSV read failed: {e}"));
    let size = std::fs::metadata(path).map_err(|e| IngestError::io(path, e))?.len().max(1);
    let mut rows = 0u64;
    loop {
        match rdr.next_record().map_err(io_err)? {
            CsvNext::End => break,
            CsvNext::TooLarge { line, bytes } => refuse_too_large(ing, &name, line, bytes)?,
            CsvNext::Record { fields, line } => csv_record(ing, &name, &headers, &fields, line)?,
        }
        rows += 1;
        if rows.is_multiple_of(65_536) {
            progress(done.get() as f64 / size as f64);
        }
    }
    progress(1.0);
    Ok(())
}

/// Reads a CSV file's header (and warns of a missing required column).
pub(crate) fn csv_headers<R: BufRead>(
    rdr: &mut CsvRecords<R>,
    name: &str,
) -> Result<Vec<String>, IngestError> {
    let headers: Vec<String> =
        match rdr.next_record().map_err(|e| IngestError::Input(format!("{name}: CSV read failed: {e}")))? {
            CsvNext::Record { fields, .. } => {
                fields.iter().map(|c| String::from_utf8_lossy(c).trim().to_string()).collect()
            }
            CsvNext::TooLarge { bytes, .. } => {
                return Err(IngestError::Input(format!(
                "{name}: cannot read the CSV header: it is {bytes} bytes long, over the limit of {MAX_RECORD_BYTES}"
            )))
            }
            CsvNext::End => Vec::new(),
        };
    for required in ["event_id", "ts", "site", "worker", "kind"] {
        if !headers.iter().any(|h| h == required) {
            tracing::warn!(file = %name, column = required, "CSV header lacks a required column: every row will be rejected");
        }
    }
    Ok(headers)
}

/// One CSV record by the record path.
pub(crate) fn csv_record<S: EventSink, R: RejectSink>(
    ing: &mut Ingestor<S, R>,
    name: &Arc<str>,
    headers: &[String],
    rec: &csv::ByteRecord,
    line: u64,
) -> Result<(), IngestError> {
    let at = || Origin::File { file: name.clone(), line };
    let cells: Vec<Cow<'_, str>> = rec.iter().map(String::from_utf8_lossy).collect();
    let redacted = |ps: &mut crate::pseudo::Pseudonymiser| render_cells(headers, &cells, ps);
    if let Some(bad) = rec.iter().position(|c| std::str::from_utf8(c).is_err()) {
        let col = headers.get(bad).cloned().unwrap_or_default();
        let rej = Rejection::new(RejectReason::InvalidUtf8, format!("column `{col}` is not UTF-8"));
        // Kept as the raw cells, identifier columns pseudonymised (on
        // their lossy text) and unnamed ones withheld.
        let mut raw = Vec::new();
        for (i, c) in rec.iter().enumerate() {
            if i > 0 {
                raw.push(b',');
            }
            let h = headers.get(i);
            if h.is_some_and(|h| !crate::rejects::is_identifier_field(h)) {
                raw.extend_from_slice(c);
            } else {
                let text = String::from_utf8_lossy(c);
                raw.extend_from_slice(redact_cell(h, &text, ing.pseudonymiser()).as_bytes());
            }
        }
        return ing.offer_refused(rej, at(), &raw, rec.as_slice().len());
    }
    if rec.len() != headers.len() {
        let rej = Rejection::new(
            RejectReason::InvalidValue,
            format!("row has {} cells, the header has {}", rec.len(), headers.len()),
        );
        let raw = redacted(ing.pseudonymiser());
        return ing.offer_refused(rej, at(), &raw, raw.len());
    }
    let mut raw = RawFields::default();
    for (i, cell) in rec.iter().enumerate() {
        let h = &headers[i];
        // Checked UTF-8 above.
        let cell = std::str::from_utf8(cell).unwrap_or("");
        match raw.slot(h) {
            Some((_, slot)) => {
                if !cell.is_empty() {
                    *slot = Some(Val::Cell(cell));
                }
            }
            None => {
                if !cell.is_empty() {
                    raw.unknown.push(Cow::Borrowed(h.as_str()));
                }
            }
        }
    }
    ing.offer_fields(&raw, at, redacted)
}

/// A Parquet slice, each contract field's column seen through the type
/// the contract needs (in the order of [`FIELDS`]; `None` when absent).
struct Views {
    rows: usize,
    columns: Vec<(&'static str, Option<ColView>)>,
}

impl Views {
    fn of(df: &DataFrame) -> Result<Views, IngestError> {
        let columns = FIELDS.iter().map(|f| Ok((*f, view(df, f)?))).collect::<Result<_, IngestError>>()?;
        Ok(Views { rows: df.height(), columns })
    }
}

/// A column of a Parquet slice, seen through the type the contract needs.
enum ColView {
    Str(StringChunked),
    Int(Int64Chunked),
    Float(Float64Chunked),
    Bool(BooleanChunked),
    /// UTC microseconds and offset seconds.
    Instant(Int64Chunked, Int32Chunked),
    /// A naive timestamp: it carries no offset.
    Naive,
    Other,
}

impl ColView {
    /// The column for the columnar check (every view is one chunk).
    fn fast(&self) -> Fast<'_> {
        match self {
            ColView::Str(c) => Fast::Str(c.downcast_as_array()),
            ColView::Int(c) => Fast::Int(c.downcast_as_array()),
            ColView::Float(c) => Fast::Float(c.downcast_as_array()),
            ColView::Instant(t, o) => Fast::Instant(t.downcast_as_array(), o.downcast_as_array()),
            _ => Fast::Slow,
        }
    }

    fn get(&self, i: usize) -> Option<Val<'_>> {
        match self {
            ColView::Str(c) => c.get(i).map(|s| Val::Str(Cow::Borrowed(s))),
            ColView::Int(c) => c.get(i).map(Val::Int),
            ColView::Float(c) => c.get(i).map(Val::Float),
            ColView::Bool(c) => c.get(i).map(Val::Bool),
            ColView::Instant(t, o) => match (t.get(i), o.get(i)) {
                (Some(ts_us), Some(offset_s)) => Some(Val::Instant { ts_us, offset_s }),
                _ => None,
            },
            ColView::Naive => Some(Val::NaiveTimestamp),
            ColView::Other => Some(Val::Nested),
        }
    }
}

fn view(df: &DataFrame, name: &str) -> Result<Option<ColView>, IngestError> {
    let Ok(column) = df.column(name) else { return Ok(None) };
    let s = column.as_materialized_series();
    let v = match s.dtype() {
        DataType::String => ColView::Str(s.str()?.rechunk().into_owned()),
        d if d.is_integer() => ColView::Int(s.cast(&DataType::Int64)?.i64()?.rechunk().into_owned()),
        d if d.is_float() => ColView::Float(s.cast(&DataType::Float64)?.f64()?.rechunk().into_owned()),
        DataType::Boolean => ColView::Bool(s.bool()?.clone()),
        DataType::Datetime(unit, Some(tz)) if tz.as_str().parse::<chrono_tz::Tz>().is_ok() => {
            let zone: chrono_tz::Tz = tz.as_str().parse().expect("checked above");
            let utc = s.timestamp(TimeUnit::Microseconds)?.rechunk().into_owned();
            let physical = s.datetime()?.physical().rechunk();
            ColView::Instant(utc, zone_offsets(physical.downcast_as_array(), *unit, zone))
        }
        DataType::Datetime(_, Some(_)) => {
            let frame = DataFrame::new_infer_height(vec![s.clone().with_name("t".into()).into()])?;
            let out = frame
                .lazy()
                .select([
                    col("t").dt().timestamp(TimeUnit::Microseconds).alias("utc"),
                    polars_offset_expr("t"),
                ])
                .collect()?;
            ColView::Instant(
                out.column("utc")?.i64()?.rechunk().into_owned(),
                out.column("off")?.i32()?.rechunk().into_owned(),
            )
        }
        DataType::Datetime(_, None) => ColView::Naive,
        _ => ColView::Other,
    };
    Ok(Some(v))
}

/// Polars' statement of the offsets of a zoned column `t`, in seconds:
/// the wall-clock time minus the instant (column `off`). For a zone
/// chrono_tz does not know; [`zone_offsets`] is held to it.
fn polars_offset_expr(t: &str) -> Expr {
    ((col(t)
        .dt()
        .replace_time_zone(None, lit("raise"), NonExistent::Raise)
        .dt()
        .timestamp(TimeUnit::Microseconds)
        - col(t).dt().timestamp(TimeUnit::Microseconds))
        / lit(1_000_000i64))
    .cast(DataType::Int32)
    .alias("off")
}

/// The offset from UTC, in seconds, of each instant of a zoned column:
/// its wall-clock time in `zone` minus the instant, as Polars gives it
/// (`replace_time_zone(None)` minus the instant). The zone's rules are
/// searched once per hour of UTC time the column touches, not once per
/// row: an hour whose first and last instants have the same offset has
/// it throughout (no zone changes its offset twice within an hour);
/// the others are searched row by row.
fn zone_offsets(
    values: &polars_arrow::array::PrimitiveArray<i64>,
    unit: TimeUnit,
    zone: chrono_tz::Tz,
) -> Int32Chunked {
    use chrono::{Offset, TimeZone};
    let per_second: i64 = match unit {
        TimeUnit::Nanoseconds => 1_000_000_000,
        TimeUnit::Microseconds => 1_000_000,
        TimeUnit::Milliseconds => 1_000,
    };
    // An instant chrono cannot hold is hundreds of centuries away: the
    // check refuses it (`invalid_timestamp`) whatever its offset.
    let offset_at = |v: i64| -> Option<i32> {
        let secs = v.div_euclid(per_second);
        let nanos = (v.rem_euclid(per_second) * (1_000_000_000 / per_second)) as u32;
        let Some(utc) = chrono::DateTime::from_timestamp(secs, nanos) else { return Some(0) };
        Some(zone.offset_from_utc_datetime(&utc.naive_utc()).fix().local_minus_utc())
    };
    let hour = 3600 * per_second;
    let mut memo: std::collections::HashMap<i64, Option<i32>, foldhash::fast::RandomState> =
        Default::default();
    values
        .iter()
        .map(|v| {
            let v = *v?;
            let h = v.div_euclid(hour);
            let whole = *memo.entry(h).or_insert_with(|| {
                let start = h.checked_mul(hour)?;
                let (a, b) = (offset_at(start)?, offset_at(start.checked_add(hour - 1)?)?);
                (a == b).then_some(a)
            });
            whole.or_else(|| offset_at(v))
        })
        .collect()
}

fn read_parquet<S: EventSink, R: RejectSink>(
    path: &Path,
    name: Arc<str>,
    ing: &mut Ingestor<S, R>,
    progress: &mut dyn FnMut(f64),
) -> Result<(), IngestError> {
    let open = || File::open(path).map_err(|e| IngestError::io(path, e));
    // The reader's own message may quote the file's bytes: never shown.
    let bad = |_: PolarsError| {
        IngestError::Input(format!(
            "{name}: not a readable Parquet file (its footer or its pages do not decode)"
        ))
    };
    check_footer(path)
        .map_err(|why| IngestError::Input(format!("{name}: not a readable Parquet file ({why})")))?;
    let mut reader = ParquetReader::new(open()?);
    let total = reader.num_rows().map_err(bad)?;
    let columns: Vec<String> =
        reader.schema().map_err(bad)?.iter_names().map(polars::prelude::PlSmallStr::to_string).collect();
    let unknown: Vec<&str> = columns.iter().map(String::as_str).filter(|c| !FIELDS.contains(c)).collect();
    let wanted: Vec<String> = columns.iter().filter(|c| FIELDS.contains(&c.as_str())).cloned().collect();
    let groups = unknown_presence(&mut reader, &unknown).map_err(bad)?;
    check_pages(path, &mut reader, &wanted)
        .map_err(|why| IngestError::Input(format!("{name}: not a readable Parquet file ({why})")))?;
    // Slices are decoded on their own thread, one ahead of the check. A
    // slice holds whole row groups, as many as fit in it (a group is
    // decoded once per slice that reads part of it); only a group larger
    // than a slice is read in parts.
    let mut bounds: Vec<usize> = groups.iter().map(|(start, _)| *start).filter(|s| *s > 0).collect();
    bounds.push(total);
    std::thread::scope(|scope| -> Result<(), IngestError> {
        // A rendezvous: the decoder hands a slice over when the check takes
        // it, so one slice is checked while the next is decoded.
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<(usize, Views), IngestError>>(0);
        let wanted = &wanted;
        let decoder =
            std::thread::Builder::new().name("vigie-decode".into()).spawn_scoped(scope, move || {
                let mut offset = 0;
                while offset < total {
                    let reach = (offset + PARQUET_SLICE_ROWS).min(total);
                    let whole = bounds[..bounds.partition_point(|b| *b <= reach)].last().copied();
                    let len = whole.filter(|b| *b > offset).unwrap_or(reach) - offset;
                    // Only the contract's columns are read; unknown ones are
                    // never decoded (see `unknown_presence`).
                    // The columns are seen through the contract's types here
                    // too (casts, offsets of zoned times), off the checking
                    // thread.
                    let views = open()
                        .and_then(|f| {
                            ParquetReader::new(f)
                                .with_slice(Some((offset, len)))
                                .with_columns(Some(wanted.clone()))
                                .finish()
                                .map_err(bad)
                        })
                        .and_then(|df| Views::of(&df));
                    let stop = !matches!(&views, Ok(v) if v.rows > 0);
                    // The checking side has stopped: nothing more to read.
                    if tx.send(views.map(|v| (offset, v))).is_err() || stop {
                        return;
                    }
                    offset += len;
                }
            });
        decoder.map_err(|e| IngestError::io(path, e))?;
        for slice in rx {
            let (offset, views) = slice?;
            if views.rows == 0 {
                // The footer claimed more rows than the file holds.
                break;
            }
            read_slice(&views, offset, total, &name, &unknown, &groups, ing, progress)?;
        }
        Ok(())
    })?;
    progress(1.0);
    Ok(())
}

/// Checks the rows of one Parquet slice that starts at row `offset`.
#[allow(clippy::too_many_arguments)]
fn read_slice<S: EventSink, R: RejectSink>(
    slice: &Views,
    offset: usize,
    total: usize,
    name: &Arc<str>,
    unknown: &[&str],
    groups: &[(usize, Vec<bool>)],
    ing: &mut Ingestor<S, R>,
    progress: &mut dyn FnMut(f64),
) -> Result<(), IngestError> {
    let views = &slice.columns;
    let fast: [Fast<'_>; 14] =
        std::array::from_fn(|f| views[f].1.as_ref().map_or(Fast::Absent, ColView::fast));
    let (clock, columnar) = (ing.clock(), ing.columnar());
    let rows = slice.rows;
    // The text columns, checked (and the worker pseudonymised, the labels
    // interned) once per distinct value of the slice.
    let texts = if columnar { columnar::texts(&fast, rows, ing) } else { None };
    for i in 0..rows {
        let row = offset + i;
        let g = groups.partition_point(|(start, _)| *start <= row).saturating_sub(1);
        let present = groups.get(g).map(|(_, p)| p.as_slice()).unwrap_or(&[]);
        // Rows that pass every rule go on from the columns; the others
        // take the record path below, which says why.
        if let Some((v, resolved)) = texts.as_ref().and_then(|t| columnar::row(&fast, t, i, clock)) {
            let names = unknown.iter().zip(present).filter(|(_, p)| **p).map(|(n, _)| *n);
            ing.offer_resolved(&v, names, resolved)?;
            continue;
        }
        let mut raw = RawFields::default();
        for (field, v) in views {
            if let Some(v) = v {
                let (_, slot) = raw.slot(field).expect("a contract field");
                *slot = v.get(i);
            }
        }
        for (n, p) in unknown.iter().zip(present) {
            if *p {
                raw.unknown.push(Cow::Borrowed(n));
            }
        }
        let size: usize = [&raw.event_id, &raw.worker, &raw.site, &raw.zone, &raw.team, &raw.kind]
            .iter()
            .map(|v| match v {
                Some(Val::Str(s)) => s.len(),
                _ => 8,
            })
            .sum();
        let row = (offset + i + 1) as u64;
        let at = || Origin::File { file: name.clone(), line: row };
        let render = |ps: &mut crate::pseudo::Pseudonymiser| render_fields(&raw, ps);
        if size > MAX_RECORD_BYTES {
            let rej = Rejection::too_large(size);
            let rendered = render(ing.pseudonymiser());
            ing.offer_refused(rej, at(), &rendered, size)?;
            continue;
        }
        ing.offer_fields(&raw, at, render)?;
    }
    progress((offset + rows) as f64 / total.max(1) as f64);
    Ok(())
}

/// Most rows one row group may claim (a larger claim is refused: the
/// decoder would size buffers by it).
pub const MAX_ROW_GROUP_ROWS: usize = 64 << 20;
/// Largest Parquet page, compressed or not.
pub const MAX_PAGE_BYTES: usize = 256 << 20;

/// Reads the file's footer with a parser that charges every list it
/// declares against the footer's size, before the decoder reads it: a
/// footer that claims a list of billions of schema elements or row groups
/// in a few bytes is refused here, where the decoder would have tried to
/// allocate for them all and aborted.
fn check_footer(path: &Path) -> Result<(), String> {
    use polars_parquet_format::thrift::protocol::TCompactInputProtocol;
    use std::io::{Seek, SeekFrom};
    let mut f = File::open(path).map_err(|e| e.to_string())?;
    let size = f.metadata().map_err(|e| e.to_string())?.len();
    if size < 12 {
        return Err("it is too short".into());
    }
    let mut tail = [0u8; 8];
    f.seek(SeekFrom::End(-8)).map_err(|e| e.to_string())?;
    f.read_exact(&mut tail).map_err(|e| e.to_string())?;
    if &tail[4..] != b"PAR1" {
        return Err("it does not end with the Parquet magic bytes".into());
    }
    let len = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
    if len + 12 > size {
        return Err(format!("its footer claims {len} bytes in a file of {size}"));
    }
    let mut footer = vec![0u8; len as usize];
    f.seek(SeekFrom::End(-8 - len as i64)).map_err(|e| e.to_string())?;
    f.read_exact(&mut footer).map_err(|e| e.to_string())?;
    // Every element takes at least one byte; the parser charges 8 per
    // declared element, so this bound lets any honest footer through.
    let mut prot = TCompactInputProtocol::new(&footer[..], footer.len().saturating_mul(8) + (1 << 20));
    polars_parquet_format::FileMetaData::read_from_in_protocol(&mut prot)
        .map(|_| ())
        .map_err(|_| "its footer does not decode".to_string())
}

/// Reads the page headers of the columns vigie decodes, before the decoder
/// does, and refuses a file whose headers lie in a way that would make it
/// allocate without bound or abort: a negative or oversized count of
/// values, rows or nulls, a page larger than [`MAX_PAGE_BYTES`], a row
/// group of more than [`MAX_ROW_GROUP_ROWS`] rows, a column chunk outside
/// the file. Reads each column chunk once (no decompression, no decoding).
fn check_pages(path: &Path, reader: &mut ParquetReader<File>, wanted: &[String]) -> Result<(), String> {
    use polars_parquet_format::thrift::protocol::TCompactInputProtocol;
    use polars_parquet_format::{PageHeader, PageType};
    use std::io::{Seek, SeekFrom};
    let meta = reader.get_metadata().map_err(|_| "its footer does not decode".to_string())?.clone();
    let file = File::open(path).map_err(|e| e.to_string())?;
    let size = file.metadata().map_err(|e| e.to_string())?.len();
    // Only the headers are read: each page's data is skipped.
    let mut f = BufReader::with_capacity(64 << 10, file);
    for (g, rg) in meta.row_groups.iter().enumerate() {
        let rows = rg.num_rows();
        if rows > MAX_ROW_GROUP_ROWS {
            return Err(format!("row group {g} claims {rows} rows, over the limit of {MAX_ROW_GROUP_ROWS}"));
        }
        let rows = rows as i64;
        for name in wanted {
            let Some(chunks) = rg.columns_under_root_iter(name) else { continue };
            for chunk in chunks {
                let range = chunk.byte_range();
                if range.start > range.end || range.end > size {
                    return Err(format!("column `{name}` of row group {g} lies outside the file"));
                }
                f.seek(SeekFrom::Start(range.start)).map_err(|e| e.to_string())?;
                let bad = |what: &str| format!("a page of column `{name}` in row group {g} claims {what}");
                // The decoder reads pages until it has seen the chunk's
                // number of values; so does this check.
                let (total, mut seen, mut pos) = (chunk.num_values(), 0i64, range.start);
                while seen < total && pos < range.end {
                    let tap = Tap::default();
                    let mut counted = tap.wrap(&mut f);
                    let mut prot = TCompactInputProtocol::new(&mut counted, MAX_PAGE_BYTES);
                    let h = PageHeader::read_from_in_protocol(&mut prot)
                        .map_err(|_| format!("a page header of column `{name}` does not decode"))?;
                    pos += tap.done.get();
                    let size_ok = |n: i32| n >= 0 && n as usize <= MAX_PAGE_BYTES;
                    if !size_ok(h.compressed_page_size) || !size_ok(h.uncompressed_page_size) {
                        return Err(bad("an impossible size"));
                    }
                    let within = |n: i32| n >= 0 && i64::from(n) <= rows;
                    let ok = match h.type_ {
                        PageType::DICTIONARY_PAGE => h.dictionary_page_header.as_ref().is_some_and(|d| {
                            d.num_values >= 0 && d.num_values as usize <= MAX_ROW_GROUP_ROWS
                        }),
                        PageType::DATA_PAGE => h.data_page_header.as_ref().is_some_and(|d| {
                            seen += i64::from(d.num_values);
                            within(d.num_values)
                        }),
                        PageType::DATA_PAGE_V2 => h.data_page_header_v2.as_ref().is_some_and(|d| {
                            seen += i64::from(d.num_values);
                            within(d.num_values)
                                && within(d.num_rows)
                                && within(d.num_nulls)
                                && d.definition_levels_byte_length >= 0
                                && d.repetition_levels_byte_length >= 0
                        }),
                        _ => true,
                    };
                    if !ok {
                        return Err(bad("more values than its row group has rows, or fewer than none"));
                    }
                    let next = pos + h.compressed_page_size as u64;
                    if next > range.end {
                        return Err(bad("more bytes than its column chunk holds"));
                    }
                    f.seek_relative(i64::from(h.compressed_page_size)).map_err(|e| e.to_string())?;
                    pos = next;
                }
            }
        }
    }
    Ok(())
}

/// For each row group, its first row and, for each unknown column, whether
/// it may hold a value: true unless the file's statistics say every cell
/// of the chunk is null. Read from the footer only: an unknown column is
/// never decoded, whatever its size or dictionary (docs/events.md).
fn unknown_presence(
    reader: &mut ParquetReader<File>,
    unknown: &[&str],
) -> PolarsResult<Vec<(usize, Vec<bool>)>> {
    let meta = reader.get_metadata()?.clone();
    let mut start = 0usize;
    let mut out = Vec::new();
    for rg in &meta.row_groups {
        let rows = rg.num_rows();
        let present = unknown
            .iter()
            .map(|name| match rg.columns_under_root_iter(name) {
                None => false,
                Some(mut chunks) => chunks.any(|c| match c.statistics(&meta.footer_buf) {
                    Some(Ok(st)) => st.null_count().is_none_or(|n| n < 0 || (n as u64) < rows as u64),
                    _ => true,
                }),
            })
            .collect();
        out.push((start, present));
        start = start.saturating_add(rows);
    }
    Ok(out)
}

/// Renders typed fields as a JSON object for the rejects store.
fn render_fields(raw: &RawFields<'_>, pseudo: &mut crate::pseudo::Pseudonymiser) -> Vec<u8> {
    let mut copy = raw.clone();
    let mut obj = serde_json::Map::new();
    for f in FIELDS {
        let (_, slot) = copy.slot(f).expect("a contract field");
        let Some(v) = slot.take() else { continue };
        let value = match v {
            _ if f == "worker" => {
                let w = match &v {
                    Val::Str(s) => s.to_string(),
                    Val::Cell(s) => s.to_string(),
                    Val::Int(i) => i.to_string(),
                    Val::Float(x) => x.to_string(),
                    _ => String::new(),
                };
                serde_json::Value::String(pseudo.redacted(&w))
            }
            Val::Str(s) => s.into_owned().into(),
            Val::Cell(s) => s.into(),
            Val::Int(i) => i.into(),
            Val::Float(x) => {
                serde_json::Number::from_f64(x).map(Into::into).unwrap_or(serde_json::Value::Null)
            }
            Val::Bool(b) => b.into(),
            Val::Instant { ts_us, offset_s } => format!("{ts_us}us{offset_s:+}s").into(),
            Val::Nested => "(nested)".into(),
            Val::NaiveTimestamp => "(timestamp without time zone)".into(),
        };
        obj.insert(f.to_string(), value);
    }
    serde_json::to_vec(&obj).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` bytes of `a` inside an opening quote that never closes, made up
    /// as they are read (never held whole).
    struct Endless {
        left: u64,
        started: bool,
    }

    impl Read for Endless {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if !self.started {
                self.started = true;
                buf[..5].copy_from_slice(b"x,\"aa");
                return Ok(5);
            }
            let n = (buf.len() as u64).min(self.left) as usize;
            buf[..n].fill(b'a');
            self.left -= n as u64;
            Ok(n)
        }
    }

    #[test]
    fn a_record_over_the_limit_is_cut_while_it_is_read() {
        // 64 MiB in one field: the `csv` crate would grow one record to
        // hold it; here the buffers stay at the limit.
        let n = 64 << 20;
        let mut r = CsvRecords::new(BufReader::new(Endless { left: n, started: false }));
        match r.next_record().unwrap() {
            CsvNext::TooLarge { line, bytes } => {
                assert_eq!(line, 1);
                assert_eq!(bytes as u64, n + 5);
            }
            _ => panic!("expected a record over the limit"),
        }
        assert_eq!((r.out.capacity(), r.ends.capacity()), (MAX_RECORD_BYTES, MAX_RECORD_BYTES + 1));
        assert!(matches!(r.next_record().unwrap(), CsvNext::End));
    }

    #[test]
    fn records_lines_quotes_and_blank_lines_as_the_csv_crate_reads_them() {
        let big = "b".repeat(MAX_RECORD_BYTES + 10);
        let text = format!(
            "\u{feff}h1,h2\r\n\r\n1,\"two\nlines\"\n\n\n3,\"{big}\"\n4,\"a \"\"quoted\"\" word\"\n5,6"
        );
        let mut r = CsvRecords::new(BufReader::new(text.as_bytes()));
        let mut got = Vec::new();
        loop {
            match r.next_record().unwrap() {
                CsvNext::Record { fields, line } => {
                    let f: Vec<String> =
                        fields.iter().map(|c| String::from_utf8_lossy(c).into_owned()).collect();
                    got.push((line, f.join("|")));
                }
                CsvNext::TooLarge { line, bytes } => got.push((line, format!("too large: {bytes}"))),
                CsvNext::End => break,
            }
        }
        let want = vec![
            (1, "h1|h2".to_string()),
            (3, "1|two\nlines".to_string()),
            (7, format!("too large: {}", MAX_RECORD_BYTES + 10 + 5)),
            (8, "4|a \"quoted\" word".to_string()),
            (9, "5|6".to_string()),
        ];
        assert_eq!(got, want);
        // The same text through the `csv` crate (BOM aside): the same
        // records. (Its line numbers count from before blank lines; these
        // are the lines the records start on.)
        let plain = &text[3..];
        let mut c = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(plain.as_bytes());
        let theirs: Vec<String> = c
            .byte_records()
            .map(|r| {
                r.unwrap()
                    .iter()
                    .map(|c| String::from_utf8_lossy(c).into_owned())
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .filter(|r| r.len() < MAX_RECORD_BYTES)
            .collect();
        let ours: Vec<String> =
            got.iter().filter(|(_, r)| !r.starts_with("too large")).map(|(_, r)| r.clone()).collect();
        assert_eq!(ours, theirs);
    }
}

#[cfg(test)]
mod parquet_tests {
    use super::*;
    use crate::rejects::MemoryRejects;

    /// A file with the contract's columns, an unknown `notes` column that
    /// is filled (then damaged on disk) and an unknown `spare` column that
    /// is all null.
    fn write(path: &Path, rows: usize) {
        let notes: Vec<String> = (0..rows).map(|i| format!("note {i} {}", "x".repeat(4096))).collect();
        let mut df = DataFrame::new_infer_height(vec![
            Column::new("event_id".into(), (0..rows).map(|i| format!("e{i}")).collect::<Vec<_>>()),
            Column::new("ts".into(), vec!["2026-03-02T08:00:00+01:00"; rows]),
            Column::new("site".into(), vec!["s1"; rows]),
            Column::new("worker".into(), vec!["w1"; rows]),
            Column::new("kind".into(), vec!["scan"; rows]),
            Column::new("notes".into(), notes),
            Column::new("spare".into(), vec![None::<&str>; rows]),
        ])
        .unwrap();
        ParquetWriter::new(File::create(path).unwrap()).finish(&mut df).unwrap();
    }

    /// The offsets as Polars gives them: the wall-clock time minus the
    /// instant (what `view` computed before `zone_offsets`).
    fn polars_offsets(s: &Series) -> Vec<Option<i32>> {
        let frame = DataFrame::new_infer_height(vec![s.clone().with_name("t".into()).into()]).unwrap();
        let out = frame.lazy().select([polars_offset_expr("t")]).collect().unwrap();
        out.column("off").unwrap().i32().unwrap().iter().collect()
    }

    fn values_at(s: &Series, i: usize) -> Option<i64> {
        s.datetime().unwrap().physical().get(i)
    }

    /// Random instants, many near a change of offset (daylight saving,
    /// half-hour rules, local mean times of the nineteenth century, a
    /// skipped day), in three units: the offsets searched once per hour
    /// are Polars' row by row.
    #[test]
    fn property_zone_offsets_are_polars_offsets() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(31);
        let zones = [
            "Europe/Paris",
            "America/New_York",
            "Australia/Lord_Howe",
            "Asia/Kathmandu",
            "Europe/Amsterdam",
            "Africa/Monrovia",
            "Pacific/Apia",
            "Etc/GMT-14",
            "UTC",
        ];
        let mut changes = 0;
        for zone in zones {
            let tz: chrono_tz::Tz = zone.parse().unwrap();
            for unit in [TimeUnit::Nanoseconds, TimeUnit::Microseconds, TimeUnit::Milliseconds] {
                let per_second: i64 = match unit {
                    TimeUnit::Nanoseconds => 1_000_000_000,
                    TimeUnit::Microseconds => 1_000_000,
                    TimeUnit::Milliseconds => 1_000,
                };
                // ns reach 1677 to 2262 only.
                let (lo, hi) = if unit == TimeUnit::Nanoseconds {
                    (-9_000_000_000i64, 9_000_000_000i64)
                } else {
                    (-4_000_000_000, 4_000_000_000)
                };
                let mut values: Vec<Option<i64>> = Vec::new();
                for _ in 0..3000 {
                    // An hour, then instants around its edges and inside it.
                    let hour = rng.gen_range(lo / 3600..hi / 3600) * 3600;
                    for _ in 0..4 {
                        let within = match rng.gen_range(0..4) {
                            0 => 0,
                            1 => 3600 * per_second - 1,
                            2 => rng.gen_range(-2..3),
                            _ => rng.gen_range(0..3600 * per_second),
                        };
                        values.push(Some(hour * per_second + within));
                    }
                    if rng.gen_bool(0.05) {
                        values.push(None);
                    }
                }
                let s = Series::new("t".into(), values)
                    .cast(&DataType::Datetime(unit, Some(TimeZone::from_chrono(&tz))))
                    .unwrap();
                let expected = polars_offsets(&s);
                let physical = s.datetime().unwrap().physical().rechunk();
                let ours: Vec<Option<i32>> =
                    zone_offsets(physical.downcast_as_array(), unit, tz).iter().collect();
                if let Some(i) = (0..ours.len()).find(|i| ours[*i] != expected[*i]) {
                    panic!("{zone} {unit:?}: {:?} is {:?}, not {:?}", values_at(&s, i), ours[i], expected[i]);
                }
                let mut distinct: Vec<i32> = ours.iter().flatten().copied().collect();
                distinct.sort_unstable();
                distinct.dedup();
                changes += distinct.len();
            }
        }
        // Zones with changes were met on both sides of them.
        assert!(changes > 40, "{changes}");
    }

    #[test]
    fn unknown_columns_are_counted_from_the_footer_and_never_decoded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        write(&path, 50);
        // Overwrite every byte of the `notes` column chunk: decoding it
        // would fail; the footer still describes it.
        let range = {
            let mut r = ParquetReader::new(File::open(&path).unwrap());
            let meta = r.get_metadata().unwrap().clone();
            let mut chunks = meta.row_groups[0].columns_under_root_iter("notes").unwrap();
            chunks.next().unwrap().byte_range()
        };
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[range.start as usize..range.end as usize].fill(0xFF);
        std::fs::write(&path, &bytes).unwrap();
        // The damage is real: reading that column fails.
        let whole =
            ParquetReader::new(File::open(&path).unwrap()).with_columns(Some(vec!["notes".into()])).finish();
        assert!(whole.is_err());

        let pseudo = crate::pseudo::Pseudonymiser::new(&[1u8; 32]).unwrap();
        let mut ing = Ingestor::new(pseudo, None, Vec::new(), MemoryRejects::default());
        read_file(&path, &mut ing, &mut |_| {}).unwrap();
        let (events, rejects, stats) = ing.finish().unwrap();
        assert_eq!((events.len(), rejects.lines.len()), (50, 0));
        assert_eq!(stats.records_with_dropped_fields, 50);
        // `notes` is counted for every row, `spare` (all null) for none.
        assert_eq!(stats.dropped_fields.get("notes"), Some(&50));
        assert_eq!(stats.dropped_fields.get("spare"), None);
    }
}

#[cfg(test)]
mod property_tests {
    use super::*;
    use crate::planted::{leaks, Choose, Seeded, PLANTED};
    use crate::rejects::MemoryRejects;

    fn ingestor() -> Ingestor<Vec<crate::event::Event>, MemoryRejects> {
        let pseudo = crate::pseudo::Pseudonymiser::new(&[3u8; 32]).unwrap();
        Ingestor::new(pseudo, None, Vec::new(), MemoryRejects::default())
    }

    /// The CSV fuzz target's property on stable: seeded bodies made of the
    /// bytes that matter to a CSV parser (quotes, separators, line ends,
    /// bad UTF-8, long runs) after a header with an identifier look-alike
    /// column and a refused row that plants the identifier: the reader
    /// never fails or panics, and the identifier never reaches the rejects.
    #[test]
    fn property_csv_bodies_never_crash_the_reader_or_let_the_identifier_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.csv");
        let mut c = Seeded(0xC5C5_0BAD_F00D_1234);
        let alphabet: &[&[u8]] =
            &[b",", b"\"", b"\n", b"\r\n", b"a", b"scan", b"\xff", b"\xc3", b"\xe9", b" ", b"=1+2", b"\"\""];
        for round in 0..3_000 {
            let mut bytes =
                format!("event_id,ts,site,worker,kind,employee_id\ne1,bad,s,{PLANTED},scan,{PLANTED}\n")
                    .into_bytes();
            for _ in 0..c.pick(60) {
                let piece = alphabet[c.pick(alphabet.len() as u32) as usize];
                let times = if c.pick(50) == 0 { 4_000 + c.pick(40_000) } else { 1 };
                for _ in 0..times {
                    bytes.extend_from_slice(piece);
                }
            }
            std::fs::write(&path, &bytes).unwrap();
            let mut ing = ingestor();
            read_file(&path, &mut ing, &mut |_| {}).unwrap();
            let (_, rejects, stats) = ing.finish().unwrap();
            assert!(stats.records >= 1, "round {round}");
            for l in &rejects.lines {
                assert!(!leaks(l.as_bytes()), "round {round}: {l}");
            }
        }
    }

    /// The Parquet fuzz target's property on stable: a valid file with
    /// bytes overwritten, cut or inserted (footers and pages that lie) is
    /// read or refused with an error, never a panic or an abort.
    #[test]
    fn property_damaged_parquet_files_are_refused_never_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.parquet");
        let mut df = DataFrame::new_infer_height(vec![
            Column::new("event_id".into(), (0..40).map(|i| format!("e{i}")).collect::<Vec<_>>()),
            Column::new("ts".into(), vec!["2026-03-02T08:00:00+01:00"; 40]),
            Column::new("site".into(), vec!["s1"; 40]),
            Column::new("worker".into(), (0..40).map(|i| format!("w{}", i % 7)).collect::<Vec<_>>()),
            Column::new("kind".into(), vec!["scan"; 40]),
            Column::new("quantity".into(), (0..40i64).collect::<Vec<_>>()),
        ])
        .unwrap();
        ParquetWriter::new(File::create(&good).unwrap()).finish(&mut df).unwrap();
        let original = std::fs::read(&good).unwrap();
        let path = dir.path().join("bad.parquet");
        let mut c = Seeded(0x0BAD_C0DE_DEAD_BEEF);
        let (mut read, mut refused) = (0, 0);
        for _ in 0..1_500 {
            let mut bytes = original.clone();
            for _ in 0..1 + c.pick(4) {
                let at = c.pick(bytes.len() as u32) as usize;
                match c.pick(4) {
                    0 => bytes[at] = c.pick(256) as u8,
                    1 => bytes[at] ^= 1 << c.pick(8),
                    2 => bytes.truncate(at.max(1)),
                    _ => {
                        let v = [0xFFu8, 0x7F, 0, 0x80][c.pick(4) as usize];
                        bytes.splice(at..at, std::iter::repeat_n(v, 1 + c.pick(8) as usize));
                    }
                }
                if bytes.is_empty() {
                    break;
                }
            }
            std::fs::write(&path, &bytes).unwrap();
            let mut ing = ingestor();
            match read_file(&path, &mut ing, &mut |_| {}) {
                Ok(_) => read += 1,
                Err(e) => {
                    assert!(e.to_string().contains("Parquet"), "{e}");
                    refused += 1;
                }
            }
        }
        assert!(read > 0 && refused > 0, "read {read}, refused {refused}");
    }
}

#[cfg(test)]
mod regressions {
    use super::*;
    use crate::rejects::MemoryRejects;

    /// Every input a fuzz target once crashed on (`fuzz/regressions/`,
    /// each a whole file with its format's extension) is now read or
    /// refused with an error naming the file, never a crash.
    #[test]
    fn every_input_that_once_crashed_a_fuzz_target_is_read_or_refused() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions");
        let mut n = 0;
        for dir in std::fs::read_dir(&root).unwrap().flatten() {
            for file in std::fs::read_dir(dir.path()).unwrap().flatten() {
                let path = file.path();
                let pseudo = crate::pseudo::Pseudonymiser::new(&[5u8; 32]).unwrap();
                let mut ing = Ingestor::new(pseudo, None, Vec::new(), MemoryRejects::default());
                match read_file(&path, &mut ing, &mut |_| {}) {
                    Err(e) => {
                        let shown = e.to_string();
                        assert!(shown.contains(&*path.display().to_string()), "{shown}");
                    }
                    // Every Parquet file kept here lies about its structure.
                    Ok(_) => assert!(
                        path.extension().is_none_or(|e| e != "parquet"),
                        "{} was read",
                        path.display()
                    ),
                }
                n += 1;
            }
        }
        assert!(n >= 2, "no regression inputs under {}", root.display());
        // The footer that claims a list of billions of elements is refused
        // before the decoder allocates for it.
        let lying = root.join("parquet_reader/footer-list-of-billions.parquet");
        assert_eq!(check_footer(&lying), Err("its footer does not decode".to_string()));
    }
}

/// Reads one input file through a mapping (docs/mapping.md): a CSV file by
/// its columns, an NDJSON file by its keys. Parquet files carry their own
/// types and follow the contract.
pub fn read_mapped_file<S: EventSink, R: RejectSink>(
    path: &Path,
    mapper: &mut crate::mapping::Mapper,
    ing: &mut Ingestor<S, R>,
    progress: &mut dyn FnMut(f64),
) -> Result<FileDigest, IngestError> {
    let name: Arc<str> = Arc::from(path.display().to_string());
    let tap = Tap::default();
    match Format::from_path(path)? {
        Format::Ndjson { gz } => read_ndjson(path, gz, name, Some(mapper), ing, progress, &tap)?,
        Format::Csv { .. } => read_mapped_csv_tapped(path, mapper, ing, progress, &tap)?,
        Format::Parquet => {
            return Err(IngestError::Input(format!(
                "{name}: a mapping reads CSV and NDJSON files; a Parquet file follows the contract (audit it without --mapping)"
            )))
        }
    }
    tap.finish(path)
}

/// Reads one CSV file through a mapping (docs/mapping.md): the export's
/// dialect and encoding, its columns as contract fields, its codes as
/// kinds, its local times as instants. Each record then goes through the
/// door like any other; a record whose code has no kind is counted in
/// `stats`, not refused.
pub fn read_mapped_csv<S: EventSink, R: RejectSink>(
    path: &Path,
    mapper: &mut crate::mapping::Mapper,
    ing: &mut Ingestor<S, R>,
    progress: &mut dyn FnMut(f64),
) -> Result<(), IngestError> {
    read_mapped_csv_tapped(path, mapper, ing, progress, &Tap::default())
}

fn read_mapped_csv_tapped<S: EventSink, R: RejectSink>(
    path: &Path,
    mapper: &mut crate::mapping::Mapper,
    ing: &mut Ingestor<S, R>,
    progress: &mut dyn FnMut(f64),
    tap: &Tap,
) -> Result<(), IngestError> {
    use crate::mapping::{decode, Mapped};
    let mapping = mapper.mapping().clone();
    let name: Arc<str> = Arc::from(path.display().to_string());
    let Format::Csv { gz } = Format::from_path(path)? else {
        return Err(IngestError::Input(format!(
            "{name}: a mapping reads CSV files (.csv, .csv.gz); NDJSON and Parquet files follow the contract"
        )));
    };
    let done = tap.done.clone();
    let f = File::open(path).map_err(|e| IngestError::io(path, e))?;
    let counted = tap.wrap(f);
    let r: Box<dyn Read> =
        if gz { Box::new(MultiGzDecoder::new(BufReader::new(counted))) } else { Box::new(counted) };
    let d = &mapping.csv;
    let mut rdr =
        CsvRecords::with_dialect(BufReader::with_capacity(1 << 20, r), d.delimiter() as u8, d.quote as u8);
    let io_err = |e: std::io::Error| IngestError::Input(format!("{name}: CSV read failed: {e}"));
    let mut first: Option<(csv::ByteRecord, u64)> = None;
    let headers: Vec<String> = if d.header {
        match rdr.next_record().map_err(io_err)? {
            CsvNext::Record { fields, .. } => fields
                .iter()
                .map(|c| decode(c, &d.encoding).unwrap_or_else(|| String::from_utf8_lossy(c).into()).trim().to_string())
                .collect(),
            CsvNext::TooLarge { bytes, .. } => {
                return Err(IngestError::Input(format!(
                    "{name}: cannot read the CSV header: it is {bytes} bytes long, over the limit of {MAX_RECORD_BYTES}"
                )))
            }
            CsvNext::End => Vec::new(),
        }
    } else {
        // Columns are numbered from 1.
        match rdr.next_record().map_err(io_err)? {
            CsvNext::Record { fields, line } => {
                let n = fields.len();
                first = Some((fields, line));
                (1..=n).map(|i| i.to_string()).collect()
            }
            _ => Vec::new(),
        }
    };
    let column = |c: &str| headers.iter().position(|h| h == c);
    let mut missing = Vec::new();
    for src in mapping.fields.values() {
        for c in src.column.iter().chain(src.columns.iter().flatten()) {
            if column(c).is_none() {
                missing.push(c.clone());
            }
        }
    }
    if !missing.is_empty() {
        return Err(IngestError::Input(format!(
            "{name}: the mapping `{}` names columns the file does not have: {}",
            mapping.name,
            missing.join(", ")
        )));
    }
    // Columns an identifier comes from: pseudonymised in the rejects store.
    let identifier_cols: Vec<usize> = mapper.identifier_sources().iter().filter_map(|c| column(c)).collect();
    let used: Vec<usize> = mapper.sources().filter_map(column).collect();
    let size = std::fs::metadata(path).map_err(|e| IngestError::io(path, e))?.len().max(1);
    let mut rows = 0u64;
    loop {
        let (rec, line) = match first.take() {
            Some(x) => x,
            None => match rdr.next_record().map_err(io_err)? {
                CsvNext::End => break,
                CsvNext::TooLarge { line, bytes } => {
                    rows += 1;
                    refuse_too_large(ing, &name, line, bytes)?;
                    continue;
                }
                CsvNext::Record { fields, line } => (fields, line),
            },
        };
        rows += 1;
        let at = || Origin::File { file: name.clone(), line };
        let cells: Vec<Option<String>> = rec.iter().map(|c| decode(c, &d.encoding)).collect();
        let shown: Vec<Cow<'_, str>> = cells
            .iter()
            .zip(rec.iter())
            .map(|(c, raw)| c.as_deref().map(Cow::Borrowed).unwrap_or_else(|| String::from_utf8_lossy(raw)))
            .collect();
        let render = |ps: &mut crate::pseudo::Pseudonymiser| {
            let mut obj = serde_json::Map::new();
            for (i, cell) in shown.iter().enumerate() {
                let key = headers.get(i).cloned().unwrap_or_else(|| format!("column_{}", i + 1));
                let value = if identifier_cols.contains(&i) || i >= headers.len() {
                    ps.redacted(cell)
                } else {
                    cell.to_string()
                };
                obj.insert(key, serde_json::Value::String(value));
            }
            serde_json::to_vec(&obj).unwrap_or_default()
        };
        if let Some(bad) = cells.iter().position(Option::is_none) {
            let col = headers.get(bad).cloned().unwrap_or_default();
            let rej =
                Rejection::new(RejectReason::InvalidUtf8, format!("column `{col}` is not {}", d.encoding));
            let raw = render(ing.pseudonymiser());
            ing.offer_refused(rej, at(), &raw, rec.as_slice().len())?;
            continue;
        }
        if rec.len() != headers.len() {
            let rej = Rejection::new(
                RejectReason::InvalidValue,
                format!("row has {} cells, the header has {}", rec.len(), headers.len()),
            );
            let raw = render(ing.pseudonymiser());
            ing.offer_refused(rej, at(), &raw, raw.len())?;
            continue;
        }
        let cell = |c: &str| column(c).and_then(|i| cells[i].as_deref()).unwrap_or("").to_string();
        let rec = match mapper.map(cell, || format!("{name}:{line}")) {
            Mapped::Record(r) => r,
            Mapped::Skipped => continue,
            Mapped::BadTime(why) => {
                let rej = Rejection::new(RejectReason::InvalidTimestamp, format!("`ts`: {why}"));
                let raw = render(ing.pseudonymiser());
                ing.offer_refused(rej, at(), &raw, raw.len())?;
                continue;
            }
        };
        let unknown = headers
            .iter()
            .enumerate()
            .filter(|(i, _)| !used.contains(i) && cells[*i].as_deref().is_some_and(|c| !c.trim().is_empty()))
            .map(|(_, h)| Cow::Borrowed(h.as_str()))
            .collect();
        let raw = rec.raw(unknown);
        ing.offer_fields(&raw, at, render)?;
        if rows.is_multiple_of(65_536) {
            progress(done.get() as f64 / size as f64);
        }
    }
    progress(1.0);
    Ok(())
}
