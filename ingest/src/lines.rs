//! NDJSON on every core. One thread reads the file (and inflates it) into
//! chunks of whole lines; `work_threads()` threads parse and check each
//! line of a chunk against the contract and re-key its worker; the
//! ingesting thread then admits the chunks in file order.
//!
//! Only what the record path would accept as it is takes the fast way: a
//! line that is refused, carries a field outside the contract, a string
//! with escapes (its text is not a slice of the line), or sits in a chunk
//! that is not all UTF-8 goes back to the record path
//! ([`Ingestor::offer_json`]) on the ingesting thread, which gives the
//! reason and the redacted record exactly as a line-by-line read would.
//! The result, per line, is the same either way (the differential tests
//! in this module read the same files both ways).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use crate::columnar;
use crate::event::{Origin, MAX_RECORD_BYTES};
use crate::pseudo::Pseudonymiser;
use crate::reader::{CsvNext, CsvRecords};
use crate::rejects::RejectSink;
use crate::validate::{self, Clock, Rejection, Valid};
use crate::{EventSink, IngestError, Ingestor};

/// A chunk is sent once it holds this many bytes or lines.
#[cfg(not(test))]
const CHUNK_BYTES: usize = 1 << 20;
#[cfg(not(test))]
const CHUNK_LINES: usize = 8192;
// Small in the tests, so that a few hundred lines make many chunks.
#[cfg(test)]
const CHUNK_BYTES: usize = 700;
#[cfg(test)]
const CHUNK_LINES: usize = 7;

/// One line of a chunk.
struct Line {
    /// Its number in the file, from 1 (blank lines count).
    no: u64,
    /// Where it is in the chunk's text (empty for a line over the limit).
    at: Range<u32>,
    /// Its full length: over [`MAX_RECORD_BYTES`], the line is refused
    /// and no byte of it is kept.
    len: usize,
}

/// Lines as read, in file order.
struct Chunk {
    text: Vec<u8>,
    lines: Vec<Line>,
}

/// The text of a chunk: a `String` when it is all UTF-8.
enum Text {
    Utf8(String),
    Bytes(Vec<u8>),
}

impl Text {
    fn bytes(&self) -> &[u8] {
        match self {
            Text::Utf8(s) => s.as_bytes(),
            Text::Bytes(b) => b,
        }
    }
}

/// What a parsing thread found in a line.
enum Verdict {
    /// Valid as it is: its text fields are slices of the chunk's text.
    Checked(Checked),
    /// Everything else: read again by the record path.
    Again,
}

/// A record the columnar check passed, and where its texts are in its
/// own text.
struct Checked {
    at: Spans,
    passed: columnar::Passed,
}

/// What the reading thread sends: a chunk, or the read failure that
/// ended the file at this point.
enum Job {
    Chunk(Chunk),
    Failed { after_line: u64, error: std::io::Error },
}

/// A chunk after its lines were checked, or the failure, passed on.
enum Done {
    Parsed { text: Text, lines: Vec<Line>, verdicts: Vec<Verdict>, names: Vec<Box<str>> },
    Failed { after_line: u64, error: std::io::Error },
}

/// One reading thread, a checking thread per copy of the key in `forks`,
/// and the calling thread admitting the results in reading order: the
/// frame of the parallel readers. `read` hands items over (`false`: the
/// others stopped, it should too, and its result is then not used) and
/// returns its own result; `check` turns an item into a result on a
/// checking thread; `admit` takes them in the order read. Returns `read`'s
/// result once every item was admitted; the first error stops every
/// thread, and so does a check that panics (an error naming the chunk).
/// At most `4 × threads` items are between the reader and the admission
/// at any time, however slow one check is.
fn in_order<T: Send, U: Send, Rd: Send>(
    name: &str,
    forks: Vec<Pseudonymiser>,
    read: impl FnOnce(&mut dyn FnMut(T) -> bool) -> Result<Rd, IngestError> + Send,
    check: impl Fn(T, &mut Pseudonymiser) -> U + Sync,
    mut admit: impl FnMut(U) -> Result<(), IngestError>,
) -> Result<Rd, IngestError> {
    let threads = forks.len().max(1);
    let in_flight = threads * 4;
    std::thread::scope(|s| {
        let (job_tx, job_rx) = mpsc::sync_channel::<(u64, T)>(threads * 2);
        let (done_tx, done_rx) = mpsc::sync_channel::<(u64, Option<U>)>(in_flight);
        // A token per item between the reader and the admission.
        let (token_tx, token_rx) = mpsc::sync_channel::<()>(in_flight);
        for _ in 0..in_flight {
            let _ = token_tx.send(());
        }
        let reader = std::thread::Builder::new()
            .name("vigie-read".into())
            .spawn_scoped(s, move || {
                let mut n = 0u64;
                let out = read(&mut |item| {
                    let sent = token_rx.recv().is_ok() && job_tx.send((n, item)).is_ok();
                    n += 1;
                    sent
                });
                out.map(|r| (r, n))
            })
            .map_err(|e| IngestError::Input(format!("{name}: cannot start a thread: {e}")))?;
        let jobs = Arc::new(Mutex::new(job_rx));
        let check = &check;
        for mut pseudo in forks {
            let (jobs, done_tx) = (jobs.clone(), done_tx.clone());
            std::thread::Builder::new()
                .name("vigie-check".into())
                .spawn_scoped(s, move || loop {
                    let Ok((n, item)) = jobs.lock().unwrap_or_else(std::sync::PoisonError::into_inner).recv()
                    else {
                        return;
                    };
                    // A check that panics is reported, not waited for.
                    let out =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(item, &mut pseudo)));
                    let failed = out.is_err();
                    if done_tx.send((n, out.ok())).is_err() || failed {
                        return;
                    }
                })
                .map_err(|e| IngestError::Input(format!("{name}: cannot start a thread: {e}")))?;
        }
        // The checking threads hold the only ends left: when they stop,
        // the reader's sends fail and it stops too.
        drop(jobs);
        drop(done_tx);
        let mut waiting: BTreeMap<u64, Option<U>> = BTreeMap::new();
        let mut next = 0u64;
        let admitted = loop {
            let u = match waiting.remove(&next) {
                Some(u) => u,
                None => match done_rx.recv() {
                    Ok((n, u)) if n == next => u,
                    Ok((n, u)) => {
                        waiting.insert(n, u);
                        continue;
                    }
                    // Every checking thread stopped.
                    Err(_) => break Ok(next),
                },
            };
            let Some(u) = u else {
                break Err(IngestError::Input(format!(
                    "{name}: the check of chunk {next} failed (an internal error)"
                )));
            };
            next += 1;
            if let Err(e) = admit(u) {
                break Err(e);
            }
            let _ = token_tx.send(());
        };
        // On an error the other threads stop: their channels are closed.
        drop(done_rx);
        drop(token_tx);
        let read = reader
            .join()
            .unwrap_or_else(|_| Err(IngestError::Input(format!("{name}: the reading thread failed"))));
        let admitted = admitted?;
        let (out, sent) = read?;
        // Every item read was admitted.
        if admitted != sent {
            return Err(IngestError::Input(format!(
                "{name}: {admitted} of {sent} chunks were checked; a checking thread failed"
            )));
        }
        Ok(out)
    })
}

/// What a reader returns when the others stopped it: never used (the
/// error that stopped them is).
fn stopped() -> IngestError {
    IngestError::Input("the read was stopped".into())
}

/// Reads the next line, appending at most `MAX_RECORD_BYTES + 1` bytes of
/// it to `out` (without its end, nor a `\r` before it). Returns the line's
/// full length, or `None` at the end of the input.
pub(crate) fn next_line_into(r: &mut dyn BufRead, out: &mut Vec<u8>) -> std::io::Result<Option<usize>> {
    let start = out.len();
    let mut total = 0usize;
    let mut any = false;
    loop {
        let chunk = r.fill_buf()?;
        if chunk.is_empty() {
            return Ok(if any { Some(total) } else { None });
        }
        any = true;
        let (take, done) = match memchr::memchr(b'\n', chunk) {
            Some(i) => (i, true),
            None => (chunk.len(), false),
        };
        let room = (MAX_RECORD_BYTES + 1).saturating_sub(out.len() - start);
        out.extend_from_slice(&chunk[..take.min(room)]);
        total += take;
        r.consume(if done { take + 1 } else { take });
        if done {
            if out.len() > start && out.last() == Some(&b'\r') && total == out.len() - start {
                out.pop();
                total -= 1;
            }
            return Ok(Some(total));
        }
    }
}

/// The reading thread: lines into chunks, blank ones left out (they are
/// counted by their number only, as the record path does).
/// Returns false when it was stopped before the end.
fn read_chunks(r: &mut dyn BufRead, send: &mut dyn FnMut(Job) -> bool) -> bool {
    let mut line_no = 0u64;
    let fresh = || Chunk { text: Vec::with_capacity(CHUNK_BYTES + 4096), lines: Vec::new() };
    let mut chunk = fresh();
    loop {
        let start = chunk.text.len();
        let len = match next_line_into(r, &mut chunk.text) {
            Ok(Some(n)) => n,
            Ok(None) => break,
            Err(error) => {
                chunk.text.truncate(start);
                return send(Job::Chunk(chunk)) && send(Job::Failed { after_line: line_no, error });
            }
        };
        line_no += 1;
        let line = &chunk.text[start..];
        if line.iter().all(u8::is_ascii_whitespace) && len == line.len() {
            chunk.text.truncate(start);
            continue;
        }
        if len > MAX_RECORD_BYTES {
            chunk.text.truncate(start);
        }
        let at = start as u32..chunk.text.len() as u32;
        chunk.lines.push(Line { no: line_no, at, len });
        if (chunk.text.len() >= CHUNK_BYTES || chunk.lines.len() >= CHUNK_LINES)
            && !send(Job::Chunk(std::mem::replace(&mut chunk, fresh())))
        {
            return false;
        }
    }
    send(Job::Chunk(chunk))
}

/// The range of `s` in `text`, when `s` is a slice of it (an owned
/// string, the text of an escape, is not).
fn span(text: &str, s: &str) -> Option<Range<u32>> {
    let from = (s.as_ptr() as usize).checked_sub(text.as_ptr() as usize)?;
    let to = from.checked_add(s.len())?;
    (to <= text.len()).then_some(from as u32..to as u32)
}

/// Where a held record's text fields are in its own text.
struct Spans {
    event_id: Range<u32>,
    site: Range<u32>,
    worker: Range<u32>,
    zone: Option<Range<u32>>,
    team: Option<Range<u32>>,
}

impl Spans {
    /// The spans of a record's text fields in `text`; `None` when one of
    /// them is not a slice of it, or is missing.
    fn of(text: &str, cells: &columnar::Cells<'_>) -> Option<Spans> {
        let at = |f: usize| cells.text(f).map(|s| span(text, s));
        Some(Spans {
            event_id: at(0)??,
            site: at(2)??,
            worker: at(3)??,
            zone: match at(5) {
                Some(r) => Some(r?),
                None => None,
            },
            team: match at(6) {
                Some(r) => Some(r?),
                None => None,
            },
        })
    }
}

/// Records checked together as one batch of columns (the columnar check
/// the Parquet reader uses, [`columnar::Gathered::check`]): each record's
/// verdict, and the site, zone and team names its checked records refer
/// to by number.
struct Batch<'a> {
    gather: columnar::Gather<'a>,
    spans: Vec<Option<Spans>>,
}

impl<'a> Batch<'a> {
    fn with_capacity(n: usize) -> Batch<'a> {
        Batch { gather: columnar::Gather::with_capacity(n), spans: Vec::with_capacity(n) }
    }

    /// Adds a record: its text and fields, or `None` for one the record
    /// path must read (not UTF-8, too long, not a flat object).
    fn add(&mut self, record: Option<(&'a str, &columnar::Cells<'a>)>) {
        let held = self.gather.push(record.map(|(_, cells)| cells));
        self.spans.push(record.filter(|_| held).and_then(|(text, cells)| Spans::of(text, cells)));
    }

    /// Adds a JSON record (a line, a message), parsed straight into its
    /// row's cells by the flat parser, which reads exactly what the record
    /// path's parser reads in the records it takes (`crate::flat`); the
    /// others go to the record path.
    fn add_json(&mut self, text: Option<&'a str>) {
        match text {
            Some(t) => {
                let cells = crate::flat::parse_cells(t.strip_prefix('\u{FEFF}').unwrap_or(t));
                self.add(cells.as_ref().map(|c| (t, c)));
            }
            None => self.add(None),
        }
    }

    /// Checks the batch: a verdict per record, in order; the names its
    /// checked records refer to are added to `names`.
    fn check(
        self,
        clock: Option<Clock>,
        pseudo: &mut Pseudonymiser,
        names: &mut Vec<Box<str>>,
    ) -> Vec<Verdict> {
        let Batch { gather, spans } = self;
        let gathered = gather.finish();
        let passed = gathered.check(clock, &mut columnar::NamesByNumber { pseudo, names });
        passed
            .into_iter()
            .zip(spans)
            .map(|(passed, at)| match (passed, at) {
                (Some(passed), Some(at)) => Verdict::Checked(Checked { at, passed }),
                _ => Verdict::Again,
            })
            .collect()
    }
}

/// Rows in one batch of the columnar check. Its second pass reads the
/// texts the parse read: a batch of about 200 KB of records is still in
/// the processor's cache then, a whole chunk is not (measured: 1024 rows
/// check as fast as the record path, 8192 a quarter slower, 256 a tenth).
#[cfg(not(test))]
const BATCH_ROWS: usize = 1024;
// Small in the tests, so that chunks and message batches span several.
#[cfg(test)]
const BATCH_ROWS: usize = 3;

/// Checks `n` records in batches of [`BATCH_ROWS`], `add(i, batch)` adding
/// record `i` to its batch: a verdict per record, and the names their
/// checked records refer to.
fn check_in_batches<'a>(
    n: usize,
    clock: Option<Clock>,
    pseudo: &mut Pseudonymiser,
    mut add: impl FnMut(usize, &mut Batch<'a>),
) -> (Vec<Verdict>, Vec<Box<str>>) {
    let (mut verdicts, mut names) = (Vec::with_capacity(n), Vec::new());
    for start in (0..n).step_by(BATCH_ROWS) {
        let end = (start + BATCH_ROWS).min(n);
        let mut batch = Batch::with_capacity(end - start);
        for i in start..end {
            add(i, &mut batch);
        }
        verdicts.extend(batch.check(clock, pseudo, &mut names));
    }
    (verdicts, names)
}

/// A checking thread's work on one chunk of lines: its lines checked as
/// one batch of columns.
fn check_chunk(job: Job, clock: Option<Clock>, pseudo: &mut Pseudonymiser) -> Done {
    match job {
        Job::Failed { after_line, error } => Done::Failed { after_line, error },
        Job::Chunk(Chunk { text, lines }) => match String::from_utf8(text) {
            Ok(text) => {
                let (verdicts, names) = check_in_batches(lines.len(), clock, pseudo, |i, batch| {
                    let l = &lines[i];
                    batch.add_json(
                        (l.len <= MAX_RECORD_BYTES).then(|| &text[l.at.start as usize..l.at.end as usize]),
                    );
                });
                Done::Parsed { text: Text::Utf8(text), lines, verdicts, names }
            }
            // A line that is not UTF-8 somewhere in the chunk: the record
            // path reads all of it (rare).
            Err(e) => {
                let verdicts = lines.iter().map(|_| Verdict::Again).collect();
                Done::Parsed { text: Text::Bytes(e.into_bytes()), lines, verdicts, names: Vec::new() }
            }
        },
    }
}

/// Opens a file for a reading thread: counted into `counter` (progress)
/// and hashed (its digest), inflated when `gz`.
fn open_counted(
    file: std::fs::File,
    gz: bool,
    counter: Arc<AtomicU64>,
) -> (crate::reader::Tap, BufReader<Box<dyn Read>>) {
    let tap = crate::reader::Tap::default();
    let shared = tap.wrap_counted(file, counter);
    let inner: Box<dyn Read> = if gz {
        Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(shared)))
    } else {
        Box::new(shared)
    };
    (tap, BufReader::with_capacity(1 << 20, inner))
}

/// What both parallel readers start from: the file, its size (for
/// progress), the clock, a copy of the key per checking thread, and the
/// count of bytes read.
struct Start {
    size: u64,
    file: std::fs::File,
    clock: Option<Clock>,
    forks: Vec<Pseudonymiser>,
    read_bytes: Arc<AtomicU64>,
}

impl Start {
    fn of<S: EventSink, R: RejectSink>(path: &Path, ing: &mut Ingestor<S, R>) -> Result<Start, IngestError> {
        Ok(Start {
            size: std::fs::metadata(path).map_err(|e| IngestError::io(path, e))?.len().max(1),
            file: std::fs::File::open(path).map_err(|e| IngestError::io(path, e))?,
            clock: ing.clock(),
            forks: (0..crate::work_threads().max(1)).map(|_| ing.pseudonymiser().fork()).collect(),
            read_bytes: Arc::new(AtomicU64::new(0)),
        })
    }
}

/// Reads an NDJSON file (gzipped or not) on several threads into the
/// ingestor; returns the file's size and hash.
pub(crate) fn read_ndjson_parallel<S: EventSink, R: RejectSink>(
    path: &Path,
    gz: bool,
    name: Arc<str>,
    ing: &mut Ingestor<S, R>,
    progress: &mut dyn FnMut(f64),
) -> Result<crate::reader::FileDigest, IngestError> {
    let Start { size, file, clock, forks, read_bytes } = Start::of(path, ing)?;
    let counter = read_bytes.clone();
    let digest = in_order(
        &name.clone(),
        forks,
        move |send| {
            let (tap, mut r) = open_counted(file, gz, counter);
            if !read_chunks(&mut r, send) {
                // Stopped: the rest of the file is not read to hash it.
                return Err(stopped());
            }
            drop(r);
            tap.finish(path)
        },
        |job, pseudo| check_chunk(job, clock, pseudo),
        |done| {
            admit_chunk(done, &name, ing)?;
            progress(read_bytes.load(Ordering::Relaxed) as f64 / size as f64);
            Ok(())
        },
    )?;
    progress(1.0);
    Ok(digest)
}

/// The ingesting thread's work on one checked chunk: each line admitted
/// from its verdict or read again by the record path.
fn admit_chunk<S: EventSink, R: RejectSink>(
    done: Done,
    name: &Arc<str>,
    ing: &mut Ingestor<S, R>,
) -> Result<(), IngestError> {
    let (text, lines, verdicts, names) = match done {
        Done::Failed { after_line, error } => {
            return Err(IngestError::Input(format!("{name}: read failed after line {after_line}: {error}")))
        }
        Done::Parsed { text, lines, verdicts, names } => (text, lines, verdicts, names),
    };
    let mut names = ChunkNames::new(names);
    for (l, v) in lines.iter().zip(&verdicts) {
        let at = || Origin::File { file: name.clone(), line: l.no };
        match (v, &text) {
            (Verdict::Checked(c), Text::Utf8(t)) => {
                let line = &t[l.at.start as usize..l.at.end as usize];
                let resolved = names.resolve(c, ing);
                ing.offer_resolved(&c.valid(line), [], resolved)?;
            }
            _ if l.len > MAX_RECORD_BYTES => {
                let rej = Rejection::too_large(l.len);
                // Cut: it cannot be parsed whole, so no byte of it is kept.
                ing.offer_refused(rej, at(), &[], l.len)?;
            }
            _ => ing.offer_json(&text.bytes()[l.at.start as usize..l.at.end as usize], at)?,
        }
    }
    Ok(())
}

/// CSV records as read, with the file's header.
enum CsvJob {
    Chunk { headers: Arc<Vec<String>>, records: Vec<CsvNext> },
    Failed(std::io::Error),
}

/// Records after the check, or the failure, passed on.
enum CsvDone {
    Checked { headers: Arc<Vec<String>>, records: Vec<CsvNext>, verdicts: Vec<Verdict>, names: Vec<Box<str>> },
    Failed(std::io::Error),
}

/// The text and cells of a CSV record as [`crate::reader::csv_record`]
/// reads it, when it is in the form the columnar check takes (every cell
/// UTF-8 on its own, as many cells as the header, no filled column outside
/// the contract, none twice); `None` leaves it to the record path.
fn csv_cells<'r>(rec: &'r csv::ByteRecord, headers: &[String]) -> Option<(&'r str, columnar::Cells<'r>)> {
    if rec.len() != headers.len() {
        return None;
    }
    let text = std::str::from_utf8(rec.as_slice()).ok()?;
    let mut cells = columnar::Cells::default();
    for (i, h) in headers.iter().enumerate() {
        // Each cell on its own must be UTF-8: both its ends on a character.
        let r = rec.range(i)?;
        if !text.is_char_boundary(r.start) || !text.is_char_boundary(r.end) {
            return None;
        }
        let cell = &text[r];
        if cell.is_empty() {
            continue;
        }
        cells.set(validate::field_index(h)?, Some(validate::Scalar::Cell(cell)))?;
    }
    Some((text, cells))
}

/// Reads a CSV file (gzipped or not) on several threads into the
/// ingestor, as [`crate::reader::read_file`] reads it record by record;
/// returns the file's size and hash.
pub(crate) fn read_csv_parallel<S: EventSink, R: RejectSink>(
    path: &Path,
    gz: bool,
    name: Arc<str>,
    ing: &mut Ingestor<S, R>,
    progress: &mut dyn FnMut(f64),
) -> Result<crate::reader::FileDigest, IngestError> {
    let Start { size, file, clock, forks, read_bytes } = Start::of(path, ing)?;
    let counter = read_bytes.clone();
    let label = name.clone();
    let digest = in_order(
        &name.clone(),
        forks,
        move |send| {
            let (tap, r) = open_counted(file, gz, counter);
            let mut rdr = CsvRecords::new(r);
            let headers = Arc::new(crate::reader::csv_headers(&mut rdr, &label)?);
            let mut records = Vec::new();
            loop {
                match rdr.next_record() {
                    Ok(CsvNext::End) => break,
                    Ok(rec) => records.push(rec),
                    Err(e) => {
                        // The failure ends the file; what follows is not read.
                        let chunk = CsvJob::Chunk { headers: headers.clone(), records };
                        return if send(chunk) && send(CsvJob::Failed(e)) {
                            tap.finish(path)
                        } else {
                            Err(stopped())
                        };
                    }
                }
                if records.len() >= CHUNK_LINES {
                    let chunk =
                        CsvJob::Chunk { headers: headers.clone(), records: std::mem::take(&mut records) };
                    if !send(chunk) {
                        return Err(stopped());
                    }
                }
            }
            if !send(CsvJob::Chunk { headers, records }) {
                return Err(stopped());
            }
            drop(rdr);
            tap.finish(path)
        },
        |job, pseudo| match job {
            CsvJob::Failed(e) => CsvDone::Failed(e),
            CsvJob::Chunk { headers, records } => {
                let (verdicts, names) = check_in_batches(records.len(), clock, pseudo, |i, batch| {
                    let cells = match &records[i] {
                        CsvNext::Record { fields, .. } => csv_cells(fields, &headers),
                        _ => None,
                    };
                    batch.add(cells.as_ref().map(|(t, c)| (*t, c)));
                });
                CsvDone::Checked { headers, records, verdicts, names }
            }
        },
        |done| {
            let (headers, records, verdicts, names) = match done {
                CsvDone::Failed(e) => {
                    return Err(IngestError::Input(format!("{name}: CSV read failed: {e}")))
                }
                CsvDone::Checked { headers, records, verdicts, names } => (headers, records, verdicts, names),
            };
            let mut names = ChunkNames::new(names);
            for (rec, v) in records.iter().zip(&verdicts) {
                match (rec, v) {
                    (CsvNext::TooLarge { line, bytes }, _) => {
                        crate::reader::refuse_too_large(ing, &name, *line, *bytes)?;
                    }
                    (CsvNext::Record { fields, line }, v) => {
                        match (v, std::str::from_utf8(fields.as_slice())) {
                            (Verdict::Checked(c), Ok(text)) => {
                                let resolved = names.resolve(c, ing);
                                ing.offer_resolved(&c.valid(text), [], resolved)?;
                            }
                            _ => crate::reader::csv_record(ing, &name, &headers, fields, *line)?,
                        }
                    }
                    (CsvNext::End, _) => {}
                }
            }
            progress(read_bytes.load(Ordering::Relaxed) as f64 / size as f64);
            Ok(())
        },
    )?;
    progress(1.0);
    Ok(digest)
}

/// A message checked by [`Ingestor::check_json_batch`], for
/// [`Ingestor::offer_json_checked`].
pub struct CheckedJson(Verdict);

/// Batches smaller than this are checked on the calling thread.
const PARALLEL_FROM: usize = 256;

/// Checks payloads as one batch of columns.
fn check_payloads(payloads: &[&[u8]], clock: Option<Clock>, pseudo: &mut Pseudonymiser) -> Vec<CheckedJson> {
    let (verdicts, _) = check_in_batches(payloads.len(), clock, pseudo, |i, batch| {
        batch.add_json(std::str::from_utf8(payloads[i]).ok().filter(|t| t.len() <= MAX_RECORD_BYTES));
    });
    verdicts.into_iter().map(CheckedJson).collect()
}

impl<S: EventSink, R: RejectSink> Ingestor<S, R> {
    /// Checks a batch of JSON payloads (the messages of one poll) on the
    /// machine's cores, against the clock set now: each result then goes,
    /// in order, to [`Self::offer_json_checked`] with its payload. Nothing
    /// is counted or admitted here.
    pub fn check_json_batch(&mut self, payloads: &[&[u8]]) -> Vec<CheckedJson> {
        let threads = crate::work_threads().max(1);
        while self.forks.len() < threads {
            let fork = self.pseudonymiser().fork();
            self.forks.push(fork);
        }
        let clock = self.clock();
        if payloads.len() < PARALLEL_FROM || threads == 1 {
            return check_payloads(payloads, clock, &mut self.forks[0]);
        }
        let per = payloads.len().div_ceil(threads);
        std::thread::scope(|s| {
            let parts: Vec<_> = payloads
                .chunks(per)
                .zip(self.forks.iter_mut())
                .map(|(part, pseudo)| s.spawn(move || check_payloads(part, clock, pseudo)))
                .collect();
            parts
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        })
    }

    /// One payload with the result [`Self::check_json_batch`] gave it:
    /// the same outcome as [`Self::offer_json`], which takes every payload
    /// the check did not accept as it is.
    pub fn offer_json_checked(
        &mut self,
        bytes: &[u8],
        checked: CheckedJson,
        at: impl FnOnce() -> Origin,
    ) -> Result<(), IngestError> {
        // Checked against the clock of the poll: held to the clock of now,
        // as the record path would be (a day may have expired since).
        let now = |c: &Checked| {
            let (ts_us, offset_s) = c.passed.instant();
            self.clock.is_none_or(|k| k.admits(ts_us, offset_s))
        };
        match (checked.0, std::str::from_utf8(bytes)) {
            (Verdict::Checked(c), Ok(t)) if u32::try_from(t.len()).is_ok() && now(&c) => {
                let v = c.valid(t);
                self.offer_checked(&v, c.passed.worker)
            }
            _ => self.offer_json(bytes, at),
        }
    }
}

/// A chunk's names, each interned by the ingestor when the first record
/// that passed refers to it (a name met only in refused records is not).
struct ChunkNames {
    names: Vec<Box<str>>,
    interned: Vec<Option<Arc<str>>>,
}

impl ChunkNames {
    fn new(names: Vec<Box<str>>) -> ChunkNames {
        let interned = vec![None; names.len()];
        ChunkNames { names, interned }
    }

    /// A passed record's worker and names, as the door stores them.
    fn resolve<S: EventSink, R: RejectSink>(
        &mut self,
        c: &Checked,
        ing: &mut Ingestor<S, R>,
    ) -> crate::Resolved<'_> {
        let numbers = c.passed.names;
        for n in numbers.into_iter().flatten() {
            let slot = &mut self.interned[n as usize];
            if slot.is_none() {
                *slot = Some(ing.label(&self.names[n as usize]));
            }
        }
        let get = |n: Option<u32>| n.and_then(|n| self.interned[n as usize].as_ref());
        crate::Resolved {
            worker: c.passed.worker,
            site: get(numbers[0]).expect("a passed record has a site"),
            zone: get(numbers[1]),
            team: get(numbers[2]),
        }
    }
}

impl Checked {
    /// The record, its text fields borrowed from `t`, the text it was
    /// checked in.
    fn valid<'t>(&self, t: &'t str) -> Valid<'t> {
        let r = |r: &Range<u32>| &t[r.start as usize..r.end as usize];
        let at = &self.at;
        self.passed.valid((
            r(&at.event_id),
            r(&at.site),
            r(&at.worker),
            at.zone.as_ref().map(r),
            at.team.as_ref().map(r),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::both_paths_agree;
    use rand::{Rng, SeedableRng};

    /// One random line: valid records of every shape, and every way a
    /// line can be refused or must go back to the record path.
    fn random_line(rng: &mut rand::rngs::StdRng, i: usize) -> Vec<u8> {
        // The first value of a pool is valid, and the usual one.
        let pick = |rng: &mut rand::rngs::StdRng, xs: &[&str]| {
            if rng.gen_bool(0.9) {
                xs[0].to_string()
            } else {
                xs[rng.gen_range(0..xs.len())].to_string()
            }
        };
        let mut fields: Vec<(String, String)> = vec![
            ("event_id".into(), format!("\"e{}\"", rng.gen_range(0..(i + 2)))),
            (
                "ts".into(),
                pick(
                    rng,
                    &[
                        "\"2026-03-02T08:00:00+01:00\"",
                        "\"2026-03-02T08:00:01.250Z\"",
                        "\"2026-03-02 08:00:00\"",
                        "\"2026-03-02T08:00:00\"",
                        "1772434800",
                    ],
                ),
            ),
            ("site".into(), pick(rng, &["\"lyon-1\"", "\"lyon-1\"", "\"ly on\"", "\"\"", "7"])),
            ("worker".into(), {
                let w = pick(rng, &["\"w\"", "\"w\\u0031\"", "\"\"", "\"é\"", "12", "null"]);
                if w == "\"w\"" {
                    format!("\"w{}\"", rng.gen_range(0..5))
                } else {
                    w
                }
            }),
            (
                "kind".into(),
                pick(rng, &["\"scan\"", "\"voice_prompt\"", "\"break_start\"", "\"shift_start\"", "\"nap\""]),
            ),
        ];
        let optional: [(&str, &[&str]); 9] = [
            ("zone", &["\"A\"", "\"z\\u00e9\"", "\"\"", "3", "\"B\""]),
            ("team", &["\"t1\"", "\"night shift\"", "null"]),
            ("process", &["\"pick\"", "\"stow\"", "\"dance\""]),
            ("device", &["\"scanner\"", "\"voice\"", "\"phone\""]),
            ("quantity", &["1", "3", "0", "2.5", "\"4\""]),
            ("weight_kg", &["1.5", "-1", "2000", "\"x\""]),
            ("threshold_s", &["30", "0"]),
            ("gap_s", &["12.5", "-3"]),
            ("target_per_hour", &["120", "0"]),
        ];
        for (name, values) in optional {
            if rng.gen_bool(0.3) {
                fields.push((name.into(), pick(rng, values)));
            }
        }
        if rng.gen_bool(0.03) {
            fields.remove(rng.gen_range(0..5));
        }
        if rng.gen_bool(0.05) {
            fields.push(("badge".into(), "\"B7\"".into()));
        }
        if rng.gen_bool(0.02) {
            fields.push(("employee_id".into(), "\"E12\"".into()));
        }
        if rng.gen_bool(0.02) {
            fields.push(("site".into(), "\"lyon-2\"".into()));
        }
        let mut line: Vec<u8> = format!(
            "{{{}}}",
            fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect::<Vec<_>>().join(",")
        )
        .into_bytes();
        match rng.gen_range(0..100) {
            0 => line = b"not json".to_vec(),
            1 => line = b"[1,2]".to_vec(),
            2 => line.truncate(line.len() / 2),
            3 => line = Vec::new(),
            4 => line = b"  \t ".to_vec(),
            5 => {
                line.splice(0..0, *b"\xEF\xBB\xBF");
            }
            6 => line.push(b'\r'),
            7 => {
                line.splice(3..3, *b"\xFF\xFE");
            }
            8 => {
                // Over the limit: refused whole.
                line.truncate(line.len() - 1);
                line.extend_from_slice(format!(",\"pad\":\"{}\"}}", "x".repeat(MAX_RECORD_BYTES)).as_bytes());
            }
            9 => line.extend_from_slice(b" "),
            _ => {}
        }
        line
    }

    fn write(path: &Path, lines: &[Vec<u8>], gz: bool, last_newline: bool) {
        let mut body = lines.join(&b"\n"[..]);
        if last_newline {
            body.push(b'\n');
        }
        write_body(path, body, gz);
    }

    /// Writes `body` to `path`, gzipped when `gz`.
    fn write_body(path: &Path, body: Vec<u8>, gz: bool) {
        use std::io::Write;
        let body = if gz {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&body).unwrap();
            e.finish().unwrap()
        } else {
            body
        };
        std::fs::write(path, body).unwrap();
    }

    /// Random file `n` (gzipped one time in four, under the service's
    /// clock one in five), read both ways: the counts accepted and refused.
    fn both_ways(dir: &Path, n: usize, ext: &str, body: Vec<u8>) -> (usize, usize) {
        let gz = n % 4 == 1;
        let path = dir.join(if gz { format!("r{n}.{ext}.gz") } else { format!("r{n}.{ext}") });
        write_body(&path, body, gz);
        both_paths_agree(&path, clock_for(n))
    }

    /// The service's clock for one file in five (future timestamps).
    fn clock_for(n: usize) -> Option<Clock> {
        n.is_multiple_of(5).then_some(Clock {
            now_us: 1_772_434_800_000_000,
            skew_us: 1_000_000,
            oldest_local_day: None,
        })
    }

    /// Random files read on several threads and line by line: the same
    /// events, rejects, counts and digest (`testing::both_paths_agree`).
    #[test]
    fn property_random_ndjson_reads_the_same_on_several_threads_and_line_by_line() {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(2718);
        let (mut accepted, mut refused) = (0, 0);
        for n in 0..60 {
            let count = rng.gen_range(0..300);
            let lines: Vec<Vec<u8>> = (0..count).map(|i| random_line(&mut rng, i)).collect();
            let mut body = lines.join(&b"\n"[..]);
            if n % 3 != 0 {
                body.push(b'\n');
            }
            let (a, r) = both_ways(dir.path(), n, "ndjson", body);
            accepted += a;
            refused += r;
        }
        assert!(accepted > 1000 && refused > 1000, "{accepted} accepted, {refused} refused");
    }

    /// Messages offered one by one, and checked as a batch then offered:
    /// the same events, rejects and counts (a batch large enough to be
    /// checked on several threads, and small ones).
    #[test]
    fn property_a_checked_batch_offers_what_single_messages_do() {
        use crate::rejects::MemoryRejects;
        let mut rng = rand::rngs::StdRng::seed_from_u64(77);
        let clock = clock_for(0);
        let ingestor = || {
            let pseudo = Pseudonymiser::new(&[7u8; 32]).unwrap();
            crate::Ingestor::new(pseudo, clock, Vec::new(), MemoryRejects::default())
        };
        let (mut one, mut batched) = (ingestor(), ingestor());
        let mut n = 0u64;
        for size in [0, 1, 5, 255, 256, 700, 1500] {
            let msgs: Vec<Vec<u8>> = (0..size).map(|i| random_line(&mut rng, i)).collect();
            let at = |i: u64| move || Origin::Kafka { topic: "t".into(), partition: 0, offset: i as i64 };
            for (i, m) in msgs.iter().enumerate() {
                one.offer_json(m, at(n + i as u64)).unwrap();
            }
            let refs: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
            let checked = batched.check_json_batch(&refs);
            assert_eq!(checked.len(), msgs.len());
            for (i, (m, c)) in msgs.iter().zip(checked).enumerate() {
                batched.offer_json_checked(m, c, at(n + i as u64)).unwrap();
            }
            n += size as u64;
        }
        let (a, b) = (one.finish().unwrap(), batched.finish().unwrap());
        assert!(a.0.len() > 400, "{}", a.0.len());
        assert_eq!(a.0, b.0, "events");
        let strip = |lines: &[String]| -> Vec<serde_json::Value> {
            lines
                .iter()
                .map(|l| {
                    let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                    v.as_object_mut().unwrap().remove("rejected_at");
                    v
                })
                .collect()
        };
        assert!(a.1.lines.len() > 100);
        assert_eq!(strip(&a.1.lines), strip(&b.1.lines), "rejects");
        assert_eq!(a.2, b.2, "counts");
    }

    /// A message checked with the clock of its poll is held to the clock
    /// of the moment it is offered: a day that expired in between is
    /// refused as the record path refuses it.
    #[test]
    fn a_checked_message_is_held_to_the_clock_when_it_is_offered() {
        use crate::rejects::MemoryRejects;
        let msg = br#"{"event_id":"e1","ts":"2026-03-02T23:30:00+01:00","site":"lyon-1","worker":"w1","kind":"scan"}"#;
        // 2026-03-12, 12:00 UTC: ten days of retention keep 2026-03-02.
        let noon = 1_773_316_800_000_000i64;
        let clock = |now_us| Clock { now_us, skew_us: 0, oldest_local_day: None }.with_retention(10);
        let pseudo = Pseudonymiser::new(&[7u8; 32]).unwrap();
        let mut ing = crate::Ingestor::new(pseudo, Some(clock(noon)), Vec::new(), MemoryRejects::default());
        let at = || Origin::Kafka { topic: "t".into(), partition: 0, offset: 0 };
        let kept = ing.check_json_batch(&[msg.as_slice()]);
        let expired = ing.check_json_batch(&[msg.as_slice()]);
        assert!(kept.iter().chain(&expired).all(|c| matches!(c.0, Verdict::Checked(_))));
        ing.offer_json_checked(msg, kept.into_iter().next().unwrap(), at).unwrap();
        // The next day: 2026-03-02 is past the retention now.
        ing.set_clock(Some(clock(noon + 86_400_000_000)));
        ing.offer_json_checked(msg, expired.into_iter().next().unwrap(), at).unwrap();
        let (events, rejects, _) = ing.finish().unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(rejects.lines.len(), 1);
        assert!(rejects.lines[0].contains("expired_timestamp"), "{}", rejects.lines[0]);
    }

    /// One random CSV cell for a column.
    fn random_cell(rng: &mut rand::rngs::StdRng, column: &str, i: usize) -> Vec<u8> {
        let good: String = match column {
            "event_id" => format!("e{}", rng.gen_range(0..(i + 2))),
            "ts" => "2026-03-02T08:00:00+01:00".into(),
            "site" => "lyon-1".into(),
            "worker" => format!("w{}", rng.gen_range(0..5)),
            "kind" => "scan".into(),
            "zone" => "A".into(),
            "quantity" => "2".into(),
            "weight_kg" => "1.5".into(),
            _ => "B7".into(),
        };
        if rng.gen_bool(0.85) {
            return good.into_bytes();
        }
        let odd: [&[u8]; 12] = [
            b"",
            b"\"quoted, with a comma\"",
            b"\"two\nlines\"",
            b"\"\"\"w1\"\"\"",
            b"\xFF",
            b"\xC3",
            b"\xA9",
            b"\xC3\xA9",
            b"nap",
            b"-1",
            b" lyon-1 ",
            b"2026-03-02 08:00:00",
        ];
        odd[rng.gen_range(0..odd.len())].to_vec()
    }

    /// Random CSV files read on several threads and record by record: the
    /// same events, rejects, counts and digest.
    #[test]
    fn property_random_csv_reads_the_same_on_several_threads_and_record_by_record() {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(1618);
        let (mut accepted, mut refused) = (0, 0);
        for n in 0..60 {
            let mut columns =
                vec!["event_id", "ts", "site", "worker", "kind", "zone", "quantity", "weight_kg"];
            if rng.gen_bool(0.3) {
                columns.push("badge");
            }
            if rng.gen_bool(0.1) {
                columns.retain(|c| *c != "worker");
            }
            let k = columns.len();
            for i in (1..k).rev() {
                columns.swap(i, rng.gen_range(0..=i));
            }
            let mut body: Vec<u8> = if n % 7 == 0 { b"\xEF\xBB\xBF".to_vec() } else { Vec::new() };
            body.extend_from_slice(columns.join(",").as_bytes());
            body.extend_from_slice(if n % 2 == 0 { b"\r\n" } else { b"\n" });
            for i in 0..rng.gen_range(0..300) {
                let mut cells: Vec<Vec<u8>> = columns.iter().map(|c| random_cell(&mut rng, c, i)).collect();
                match rng.gen_range(0..60) {
                    0 => {
                        cells.pop();
                    }
                    1 => cells.push(b"extra".to_vec()),
                    2 => cells[0] = format!("\"{}\"", "x".repeat(MAX_RECORD_BYTES)).into_bytes(),
                    3 => body.extend_from_slice(b"\n"),
                    _ => {}
                }
                body.extend_from_slice(&cells.join(&b","[..]));
                body.extend_from_slice(if n % 2 == 0 { b"\r\n" } else { b"\n" });
            }
            let (a, r) = both_ways(dir.path(), n, "csv", body);
            accepted += a;
            refused += r;
        }
        assert!(accepted > 1000 && refused > 1000, "{accepted} accepted, {refused} refused");
    }

    /// A reader of 100,000 numbers that counts what it read.
    fn read_to(
        read: &std::sync::atomic::AtomicUsize,
    ) -> impl FnOnce(&mut dyn FnMut(u64) -> bool) -> Result<&'static str, IngestError> + Send + '_ {
        move |send| {
            for i in 0..100_000u64 {
                read.fetch_add(1, Ordering::SeqCst);
                if !send(i) {
                    return Err(stopped());
                }
            }
            Ok("end")
        }
    }

    fn forks(n: usize) -> Vec<Pseudonymiser> {
        (0..n).map(|_| Pseudonymiser::new(&[7u8; 32]).unwrap()).collect()
    }

    /// Results come back in reading order; an error while admitting stops
    /// the reader long before the end; a check that panics is an error,
    /// not a hang; at most a few items are ahead of the admission.
    #[test]
    fn the_frame_admits_in_order_and_stops_on_the_first_failure() {
        use std::sync::atomic::AtomicUsize;
        // In order, every item, with a slow check now and then.
        let (read, mut got) = (AtomicUsize::new(0), Vec::new());
        let ahead = AtomicUsize::new(0);
        let out = in_order(
            "t",
            forks(3),
            read_to(&read),
            |i, _| {
                if i % 997 == 0 {
                    std::thread::sleep(std::time::Duration::from_millis(2));
                }
                i
            },
            |i| {
                ahead.fetch_max(read.load(Ordering::SeqCst) - i as usize, Ordering::SeqCst);
                got.push(i);
                Ok(())
            },
        );
        assert_eq!(out.unwrap(), "end");
        assert_eq!(got, (0..100_000).collect::<Vec<_>>());
        // The reader may run a few items past the tokens it holds.
        assert!(ahead.load(Ordering::SeqCst) <= 3 * 4 + 2, "{}", ahead.load(Ordering::SeqCst));
        // An admission error: reported, and the reader stopped early.
        let read = AtomicUsize::new(0);
        let err = in_order(
            "t",
            forks(2),
            read_to(&read),
            |i, _| i,
            |i| {
                if i == 50 {
                    Err(IngestError::Input("full disk".into()))
                } else {
                    Ok(())
                }
            },
        );
        assert_eq!(err.unwrap_err().to_string(), IngestError::Input("full disk".into()).to_string());
        assert!(read.load(Ordering::SeqCst) < 200, "{}", read.load(Ordering::SeqCst));
        // A check that panics: an error naming the chunk.
        let read = AtomicUsize::new(0);
        let err = in_order(
            "t",
            forks(2),
            read_to(&read),
            |i, _| {
                assert!(i != 70, "a bug in a check");
                i
            },
            |_| Ok(()),
        );
        assert!(err.unwrap_err().to_string().contains("chunk 70"));
    }

    /// A file cut inside its gzip stream: the lines before the cut are
    /// admitted, then the read fails with the same message both ways.
    #[test]
    fn a_read_failure_ends_the_file_where_it_happened() {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let lines: Vec<Vec<u8>> = (0..2000).map(|i| random_line(&mut rng, i)).collect();
        let path = dir.path().join("cut.ndjson.gz");
        write(&path, &lines, true, true);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() * 2 / 3]).unwrap();
        let (a, _) = both_paths_agree(&path, None);
        assert!(a > 100, "{a}");
    }

    /// The usual records pass the columnar check, in batches, with the
    /// values, worker and names the record path gives them; records in
    /// any other form go back to it.
    #[test]
    fn usual_records_pass_by_columns_and_others_go_to_the_record_path() {
        let usual = [
            r#"{"event_id":"e1","ts":"2026-03-02T08:00:00.250+01:00","site":"lyon-1","worker":"w1","kind":"scan"}"#,
            r#"{"event_id":"e2","ts":"2026-03-02T08:00:01Z","site":"lyon-1","worker":"a-worker-name-longer-than-15","kind":"scan","quantity":3,"weight_kg":2,"zone":"z1","team":"t1","process":"pick","device":"voice"}"#,
            r#" { "kind" : "idle_flag", "threshold_s": 300.5, "worker": "w1", "site": "lyon-1", "ts": "2026-03-02T09:00:00-05:00", "event_id": "e3" } "#,
            r#"{"event_id":"e4","ts":"2026-03-02T10:00:00Z","site":"lyon-1","worker":"w2","kind":"rate_target","target_per_hour":120,"zone":null}"#,
            "\u{FEFF}{\"event_id\":\"e5\",\"ts\":\"2026-03-02T10:00:00Z\",\"site\":\"lyon-2\",\"worker\":\"w1\",\"kind\":\"break_start\"}",
        ];
        let unusual = [
            r#"{"event_id":"e\u0031","ts":"2026-03-02T08:00:00Z","site":"lyon-1","worker":"w1","kind":"scan"}"#,
            r#"{"event_id":"e1","ts":"2026-03-02T08:00:00Z","site":"lyon-1","worker":"w1","kind":"scan","badge":"B7"}"#,
            r#"{"event_id":"e1","ts":"2026-03-02T08:00:00Z","site":"lyon-1","worker":"w1","kind":"scan","kind":"scan"}"#,
            r#"{"event_id":"e1","ts":"2026-03-02T08:00:00Z","site":"lyon-1","worker":"w1","kind":"scan","quantity":2.0}"#,
            r#"{"event_id":"e1","ts":"2026-03-02T08:00:00Z","site":"lyon-1","worker":"w1","kind":"scan","weight_kg":"2"}"#,
            r#"{"event_id":"e1","ts":"2026-03-02T08:00:00Z","site":"lyon-1","worker":true,"kind":"scan"}"#,
            r#"{"event_id":"e1","ts":"2026-03-02 08:00:00Z","site":"lyon-1","worker":"w1","kind":"scan"}"#,
            r#"{"event_id":"e1","ts":"2026-03-02T08:00:00Z","site":"lyon 1","worker":"w1","kind":"scan"}"#,
            r#"{"event_id":"e1","ts":"2026-03-02T08:00:00Z","site":"lyon-1","worker":"w1","kind":"nap"}"#,
            r#"{"event_id":"e1","ts":"2026-03-02T08:00:00Z","site":"lyon-1","kind":"scan"}"#,
            "[1]",
        ];
        let records: Vec<&str> = usual.iter().chain(&unusual).copied().collect();
        let mut pseudo = Pseudonymiser::new(&[7u8; 32]).unwrap();
        let (verdicts, names) =
            check_in_batches(records.len(), None, &mut pseudo, |i, batch| batch.add_json(Some(records[i])));
        let mut reference = Pseudonymiser::new(&[7u8; 32]).unwrap();
        for (record, verdict) in records.iter().zip(&verdicts) {
            match verdict {
                Verdict::Checked(c) => {
                    assert!(usual.contains(record), "{record}");
                    let line = record.strip_prefix('\u{FEFF}').unwrap_or(record);
                    let v = validate::validate(&validate::parse_json(line).unwrap(), None).unwrap();
                    let got = c.valid(record);
                    assert_eq!(got, v, "{record}");
                    assert_eq!(c.passed.worker, reference.pseudonym(&v.worker));
                    let [site, zone, team] = c.passed.names.map(|n| n.map(|n| &*names[n as usize]));
                    assert_eq!((site, zone, team), (Some(&*v.site), v.zone.as_deref(), v.team.as_deref()));
                }
                Verdict::Again => assert!(unusual.contains(record), "{record}"),
            }
        }
    }

    #[test]
    fn lines_are_cut_as_the_record_path_cuts_them() {
        let mut r: &[u8] = b"a\r\nb\n\r\n\nlast";
        let mut out = Vec::new();
        let mut lens = Vec::new();
        while let Some(n) = next_line_into(&mut r, &mut out).unwrap() {
            lens.push(n);
        }
        assert_eq!(out, b"ablast");
        assert_eq!(lens, [1, 1, 0, 0, 4]);
    }
}
