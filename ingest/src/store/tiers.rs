//! The service's store on disk (docs/design.md, "Tiers"): raw events,
//! per-worker shift summaries and k-suppressed aggregates, each in date or
//! week folders that the purge deletes whole; offset checkpoints; the local
//! dead-letter store.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::{write_bytes_atomic_with, write_parquet_atomic_with, Durability, EventBatch, WriteStep};
use crate::event::Event;
use crate::IngestError;
use chrono::{Datelike, NaiveDate};
use polars::prelude::DataFrame;
use xxhash_rust::xxh3::xxh3_64;

/// Raw events, by site and local date.
pub const RAW: &str = "raw";
/// Per-worker daily shift summaries, by site and local date.
pub const SUMMARIES: &str = "summaries";
/// k-suppressed group aggregates, by ISO week.
pub const AGGREGATES: &str = "aggregates";
/// The latest analysis's target steps and before/after comparisons
/// (replaced at each analysis, not a dated tier).
pub const DATED: &str = "dated";
/// Offset checkpoints, by topic and partition.
pub const OFFSETS: &str = "offsets";
/// Refused records, when no dead-letter topic is configured.
pub const DEAD_LETTER: &str = "dead-letter";
/// Files that could not be read, set aside.
pub const QUARANTINE: &str = "quarantine";

/// The local date of an event (in the offset it carried).
pub fn local_date(e: &Event) -> NaiveDate {
    let local_us = e.ts_us + i64::from(e.offset_s) * 1_000_000;
    crate::event::local_date(local_us)
}

/// The name of a raw file: which incarnation of which partition, and the
/// offset range of the flush that wrote it,
/// `TOPIC+eEPOCH+PARTITION+FIRST+LAST.parquet`. The epoch tells two
/// incarnations of one topic apart (docs/design.md, "A source that goes
/// backwards"); names of version 1 stores, `TOPIC+PARTITION+FIRST+LAST`,
/// read as epoch 0.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RawName {
    /// The source topic.
    pub topic: String,
    /// The incarnation of the partition.
    pub epoch: u32,
    /// The partition.
    pub partition: i32,
    /// The flush's first offset.
    pub first: i64,
    /// The flush's last offset.
    pub last: i64,
}

impl RawName {
    /// The file's name.
    pub fn file_name(&self) -> String {
        format!("{}+e{}+{}+{}+{}.parquet", self.topic, self.epoch, self.partition, self.first, self.last)
    }

    /// Parses a file name; `None` for anything else (Kafka topic names
    /// cannot hold `+`).
    pub fn parse(name: &str) -> Option<RawName> {
        let stem = name.strip_suffix(".parquet")?;
        // A bucket's part ends in `.gGENERATION` (the lease generation that
        // wrote it, bucket.rs): the same flush of the same offsets.
        let stem = match stem.rsplit_once(".g") {
            Some((s, g)) if !g.is_empty() && g.bytes().all(|b| b.is_ascii_digit()) => s,
            _ => stem,
        };
        let parts: Vec<&str> = stem.split('+').collect();
        let (topic, epoch, rest) = match parts.as_slice() {
            [t, e, rest @ ..] if rest.len() == 3 => (*t, e.strip_prefix('e')?.parse().ok()?, rest),
            [t, rest @ ..] if rest.len() == 3 => (*t, 0, rest),
            _ => return None,
        };
        if topic.is_empty() {
            return None;
        }
        let name = RawName {
            topic: topic.to_string(),
            epoch,
            partition: rest[0].parse().ok()?,
            first: rest[1].parse().ok()?,
            last: rest[2].parse().ok()?,
        };
        (name.partition >= 0 && name.first >= 0 && name.first <= name.last).then_some(name)
    }
}

/// `raw/site=S/date=D/` and the file's name.
pub fn raw_file(root: &Path, site: &str, date: NaiveDate, name: &RawName) -> PathBuf {
    root.join(RAW).join(format!("site={site}")).join(format!("date={date}")).join(name.file_name())
}

/// The topic, partition and offset range a raw file's name carries.
pub fn parse_raw_name(name: &str) -> Option<(String, i32, i64, i64)> {
    RawName::parse(name).map(|n| (n.topic, n.partition, n.first, n.last))
}

/// Splits one partition's batch into a frame per site and local date.
pub fn batch_frames(events: Vec<Event>) -> Result<Vec<(String, NaiveDate, DataFrame)>, IngestError> {
    let mut groups: BTreeMap<(String, NaiveDate), EventBatch> = BTreeMap::new();
    for e in events {
        let key = (e.site.to_string(), local_date(&e));
        groups.entry(key).or_default().push(e);
    }
    groups.into_iter().map(|((site, date), mut b)| Ok((site, date, b.take_frame()?))).collect()
}

/// How an injected fault behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultMode {
    /// The step fails with "no space left on device".
    Fail,
    /// The step panics (an in-process crash: nothing after it runs).
    Panic,
    /// The process aborts at the step (a real crash, for the binary).
    Abort,
}

/// The store's fault-injection seam (docs/design.md, "Testing the durable
/// point"). Every step of a flush (each file's write and rename, the dead
/// letters, the checkpoint's write and rename) counts one; the plan makes
/// step N fail, panic or abort the process. Off unless a test sets it, or
/// `VIGIE_TEST_STORE_FAULT=fail:N|abort:N` is in the environment.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    plan: Option<(FaultMode, u64)>,
    steps: Arc<AtomicU64>,
}

impl Faults {
    /// A plan: step `at_step` (from 1) fails, panics or aborts.
    pub fn new(mode: FaultMode, at_step: u64) -> Faults {
        Faults { plan: Some((mode, at_step)), steps: Arc::default() }
    }

    /// The plan of `VIGIE_TEST_STORE_FAULT`, if set (the binary's tests).
    pub fn from_env() -> Faults {
        let Ok(v) = std::env::var("VIGIE_TEST_STORE_FAULT") else { return Faults::default() };
        let (mode, n) = v.split_once(':').unwrap_or(("", ""));
        let mode = match mode {
            "fail" => FaultMode::Fail,
            "abort" => FaultMode::Abort,
            _ => return Faults::default(),
        };
        match n.parse() {
            Ok(n) => {
                tracing::warn!(step = n, ?mode, "A store fault is planned (test seam)");
                Faults::new(mode, n)
            }
            Err(_) => Faults::default(),
        }
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.steps.load(Ordering::SeqCst)
    }

    /// Called before each step.
    pub fn step(&self, what: &str) -> std::io::Result<()> {
        let n = self.steps.fetch_add(1, Ordering::SeqCst) + 1;
        match self.plan {
            Some((FaultMode::Fail, at)) if at == n => Err(std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                format!("injected fault at step {n} ({what})"),
            )),
            Some((FaultMode::Panic, at)) if at == n => panic!("injected crash at step {n} ({what})"),
            Some((FaultMode::Abort, at)) if at == n => {
                eprintln!("vigie: injected crash at store step {n} ({what})");
                std::process::abort()
            }
            _ => Ok(()),
        }
    }
}

/// Writes the frames of one partition's flush under `raw/site=/date=/`,
/// each fsynced and renamed. Returns the files it renamed into place,
/// also on failure (beside the error), so that the caller can remove them.
pub fn write_frames(
    root: &Path,
    frames: &[(String, NaiveDate, DataFrame)],
    name: &RawName,
    faults: &Faults,
) -> Result<Vec<PathBuf>, (Vec<PathBuf>, IngestError)> {
    let mut done = Vec::with_capacity(frames.len());
    for (site, date, df) in frames {
        let path = raw_file(root, site, *date, name);
        let mut step = |s: WriteStep| faults.step(if s == WriteStep::Write { "write" } else { "rename" });
        match write_parquet_atomic_with(&mut df.clone(), &path, Durability::Synced, &mut step) {
            Ok(()) => done.push(path),
            Err(e) => return Err((done, e)),
        }
    }
    Ok(done)
}

/// A partition's durable point: the last offset whose record is in the
/// store (or the dead-letter target), in which incarnation of the
/// partition, and a fingerprint of that record to recognise it later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    /// Grows by one at each write; picks the newer of the two slots.
    pub seq: u64,
    /// The incarnation of the partition (see [`RawName`]).
    pub epoch: u32,
    /// The last durable offset (-1: none yet in this epoch).
    pub last: i64,
    /// xxh3 of the record at `last` as it was read (payload bytes).
    pub fingerprint: Option<u64>,
}

impl Checkpoint {
    pub(crate) fn line(&self) -> String {
        self.line_with_generation(None)
    }

    /// The slot's line; in a bucket it also names the partition lease's
    /// generation that wrote it (`gen=`).
    pub(crate) fn line_with_generation(&self, generation: Option<u64>) -> String {
        let fp = self.fingerprint.map(|f| format!("{f:016x}")).unwrap_or_else(|| "-".into());
        let mut body =
            format!("vigie-checkpoint v2 seq={} epoch={} last={} fp={fp}", self.seq, self.epoch, self.last);
        if let Some(g) = generation {
            body.push_str(&format!(" gen={g}"));
        }
        format!("{body} sum={:016x}\n", xxh3_64(body.as_bytes()))
    }

    pub(crate) fn parse(text: &str) -> Option<Checkpoint> {
        Self::parse_with_generation(text).map(|(ck, _)| ck)
    }

    pub(crate) fn parse_with_generation(text: &str) -> Option<(Checkpoint, Option<u64>)> {
        let line = text.strip_suffix('\n')?;
        let (body, sum) = line.rsplit_once(" sum=")?;
        if u64::from_str_radix(sum, 16).ok()? != xxh3_64(body.as_bytes()) {
            return None;
        }
        let mut it = body.split(' ');
        if it.next()? != "vigie-checkpoint" || it.next()? != "v2" {
            return None;
        }
        let mut field = |k: &str| it.next()?.strip_prefix(k).map(str::to_string);
        let seq = field("seq=")?.parse().ok()?;
        let epoch = field("epoch=")?.parse().ok()?;
        let last: i64 = field("last=")?.parse().ok()?;
        let fp = field("fp=")?;
        let fingerprint = if fp == "-" { None } else { Some(u64::from_str_radix(&fp, 16).ok()?) };
        let generation = match it.next() {
            None => None,
            Some(g) => Some(g.strip_prefix("gen=")?.parse().ok()?),
        };
        if it.next().is_some() {
            return None;
        }
        (last >= -1).then_some((Checkpoint { seq, epoch, last, fingerprint }, generation))
    }
}

/// The fingerprint of a record as the checkpoint keeps it.
pub fn fingerprint(payload: &[u8]) -> u64 {
    xxh3_64(payload)
}

fn slot_path(root: &Path, topic: &str, partition: i32, slot: u64) -> PathBuf {
    root.join(OFFSETS).join(format!("{topic}+{partition}.{slot}"))
}

/// Records a partition's durable point. Two slots are written in turn
/// (`offsets/TOPIC+PARTITION.0` and `.1`), each whole (temporary name,
/// fsync, rename, fsync of the folder) and with a checksum: a damaged slot
/// leaves the other, one flush older, and that flush is then replayed.
pub fn write_checkpoint(
    root: &Path,
    topic: &str,
    partition: i32,
    ck: &Checkpoint,
    faults: &Faults,
) -> Result<(), IngestError> {
    let path = slot_path(root, topic, partition, ck.seq % 2);
    let mut step = |s: WriteStep| {
        faults.step(if s == WriteStep::Write { "checkpoint write" } else { "checkpoint rename" })
    };
    write_bytes_atomic_with(&path, ck.line().as_bytes(), Durability::Synced, &mut step)?;
    // A version 1 checkpoint is now stale: it must never be read again.
    let _ = fs::remove_file(root.join(OFFSETS).join(format!("{topic}+{partition}")));
    Ok(())
}

/// Takes the exclusive lock of one partition's durable point (a file lock
/// on `offsets/.TOPIC+PARTITION.lock`, released when the returned file is
/// dropped). A flush holds it while it checks the checkpoint and moves it,
/// so that two instances that both believe they own a partition (one of
/// them not yet told that it lost it) never both write past the same
/// point (docs/design.md, "Two writers for one partition").
pub fn lock_partition(root: &Path, topic: &str, partition: i32) -> Result<fs::File, IngestError> {
    let dir = root.join(OFFSETS);
    fs::create_dir_all(&dir).map_err(|e| IngestError::io(&dir, e))?;
    let path = dir.join(format!(".{topic}+{partition}.lock"));
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| IngestError::io(&path, e))?;
    fs4::FileExt::lock(&f).map_err(|e| IngestError::io(&path, e))?;
    Ok(f)
}

/// What the store says of a partition's durable point.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CheckpointRead {
    /// The newest valid slot (or a version 1 checkpoint).
    pub best: Option<Checkpoint>,
    /// Slots that exist but do not read (damaged, or not a checkpoint).
    pub damaged: Vec<PathBuf>,
}

/// Reads both slots (and a version 1 checkpoint, a bare offset).
pub fn read_checkpoint(root: &Path, topic: &str, partition: i32) -> CheckpointRead {
    let mut read = CheckpointRead::default();
    for slot in 0..2 {
        let path = slot_path(root, topic, partition, slot);
        let Ok(bytes) = fs::read(&path) else { continue };
        match std::str::from_utf8(&bytes).ok().and_then(Checkpoint::parse) {
            Some(ck) if read.best.is_none_or(|b| ck.seq > b.seq) => read.best = Some(ck),
            Some(_) => {}
            None => read.damaged.push(path),
        }
    }
    // A version 1 checkpoint counts only in a store that never had a
    // version 2 slot for the partition (a damaged slot is newer than it).
    if read.best.is_none() && read.damaged.is_empty() {
        let v1 = root.join(OFFSETS).join(format!("{topic}+{partition}"));
        if let Ok(text) = fs::read_to_string(&v1) {
            match text.trim().parse::<i64>() {
                Ok(last) if last >= -1 => {
                    read.best = Some(Checkpoint { seq: 0, epoch: 0, last, fingerprint: None });
                }
                _ => read.damaged.push(v1),
            }
        }
    }
    read
}

/// Every partition with a checkpoint: `(topic, partition)`, from the
/// names under `offsets/`.
pub fn checkpointed_partitions(root: &Path) -> Vec<(String, i32)> {
    let mut out = std::collections::BTreeSet::new();
    if let Ok(rd) = fs::read_dir(root.join(OFFSETS)) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with('.') {
                continue;
            }
            let stem = name.strip_suffix(".0").or_else(|| name.strip_suffix(".1")).unwrap_or(&name);
            if let Some((t, p)) = stem.rsplit_once('+') {
                if let Ok(p) = p.parse::<i32>() {
                    out.insert((t.to_string(), p));
                }
            }
        }
    }
    out.into_iter().collect()
}

/// The newest valid checkpoint of every partition.
pub fn checkpoints(root: &Path) -> BTreeMap<(String, i32), Checkpoint> {
    checkpointed_partitions(root)
        .into_iter()
        .filter_map(|(t, p)| read_checkpoint(root, &t, p).best.map(|ck| ((t, p), ck)))
        .collect()
}

/// The last offset of `topic`/`partition` the store holds durably, by its
/// checkpoint (never by a file's name: a flush is durable only once every
/// one of its files is).
pub fn durable_offset(root: &Path, topic: &str, partition: i32) -> Option<i64> {
    read_checkpoint(root, topic, partition).best.map(|c| c.last)
}

/// Whether a raw file belongs to a flush that completed: an earlier
/// incarnation, or at or below the checkpoint of its own. A partition
/// without a checkpoint cannot say: its files count as complete.
pub fn flush_completed(name: &RawName, ck: Option<&Checkpoint>) -> bool {
    match ck {
        None => true,
        Some(ck) => name.epoch < ck.epoch || (name.epoch == ck.epoch && name.last <= ck.last),
    }
}

/// The raw files of one partition, with their parsed names.
pub fn partition_files(root: &Path, topic: &str, partition: i32) -> Vec<(PathBuf, RawName)> {
    files_under(&root.join(RAW), "parquet")
        .into_iter()
        .filter_map(|p| {
            let n = RawName::parse(p.file_name()?.to_str()?)?;
            (n.topic == topic && n.partition == partition).then_some((p, n))
        })
        .collect()
}

/// The raw files of flushes that never completed (beyond the checkpoint):
/// a crash, a full disk or an I/O error between two of a flush's renames
/// leaves them. Their records are read again from the source.
pub fn incomplete_files(root: &Path, topic: &str, partition: i32, ck: &Checkpoint) -> Vec<PathBuf> {
    partition_files(root, topic, partition)
        .into_iter()
        .filter(|(_, n)| !flush_completed(n, Some(ck)))
        .map(|(p, _)| p)
        .collect()
}

/// Every raw file of a completed flush (what the analysis reads), and the
/// files under `raw/` whose names are not raw file names.
pub fn complete_raw_files(root: &Path) -> Vec<PathBuf> {
    raw_files_by_kind(root).0
}

/// `(complete flushes, foreign names)` under `raw/`.
pub fn raw_files_by_kind(root: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let cks = checkpoints(root);
    let (mut complete, mut foreign) = (Vec::new(), Vec::new());
    for p in files_under(&root.join(RAW), "parquet") {
        match p.file_name().and_then(|n| n.to_str()).and_then(RawName::parse) {
            None => foreign.push(p),
            Some(n) if flush_completed(&n, cks.get(&(n.topic.clone(), n.partition))) => complete.push(p),
            Some(_) => {}
        }
    }
    (complete, foreign)
}

/// Checks that a file is a whole Parquet file (its footer reads) and, with
/// `expected`, that it holds those columns with those types. Reads the
/// footer only. The error is a reason code (a bounded set, a metric label):
/// never the file's bytes.
pub fn check_parquet(path: &Path, expected: Option<&polars::prelude::Schema>) -> Result<(), &'static str> {
    use polars::prelude::{DataType, ParquetReader, SerReader};
    let len = fs::metadata(path).map_err(|_| "unreadable")?.len();
    if len == 0 {
        return Err("empty");
    }
    let file = fs::File::open(path).map_err(|_| "unreadable")?;
    let schema = ParquetReader::new(file).schema().map_err(|_| "not_parquet")?;
    if let Some(expected) = expected {
        for (name, dtype) in expected.iter() {
            match schema.get(name.as_str()) {
                Some(f) if DataType::from_arrow_field(f) == *dtype => {}
                _ => return Err("wrong_schema"),
            }
        }
    }
    Ok(())
}

/// Reads a whole Parquet file (every page decoded); the error is a reason
/// code, never the file's bytes.
pub fn decode_parquet(path: &Path) -> Result<(), &'static str> {
    use polars::prelude::{ParquetReader, SerReader};
    let file = fs::File::open(path).map_err(|_| "unreadable")?;
    ParquetReader::new(file).finish().map(|_| ()).map_err(|_| "undecodable")
}

/// The site and date folders a store file sits in (`site=S/date=D`).
pub fn site_and_date(path: &Path) -> (Option<String>, Option<String>) {
    let mut site = None;
    let mut date = None;
    for c in path.components() {
        let c = c.as_os_str().to_string_lossy();
        if let Some(s) = c.strip_prefix("site=") {
            site = Some(s.to_string());
        } else if let Some(d) = c.strip_prefix("date=") {
            date = Some(d.to_string());
        }
    }
    (site, date)
}

/// Moves a file of the store to `quarantine/TIER/...` (its path below the
/// store kept), with `NAME.reason` beside it. Returns the new path.
pub fn quarantine(root: &Path, path: &Path, reason: &str) -> Result<PathBuf, IngestError> {
    let rel = path.strip_prefix(root).unwrap_or(path);
    let dest = root.join(QUARANTINE).join(rel);
    let dir = dest.parent().unwrap_or(root);
    fs::create_dir_all(dir).map_err(|e| IngestError::io(dir, e))?;
    fs::rename(path, &dest).map_err(|e| IngestError::io(path, e))?;
    let mut note = dest.clone().into_os_string();
    note.push(".reason");
    let _ = fs::write(PathBuf::from(note), quarantine_note(reason));
    Ok(dest)
}

/// What `NAME.reason` beside a quarantined file says: when, and why.
pub(crate) fn quarantine_note(reason: &str) -> String {
    let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    format!("{at} {reason}\n")
}

/// The date of a dead-letter file: `DATE.ndjson`, `DATE.INSTANCE.ndjson`
/// (a folder) or `DATE.INSTANCE.N.ndjson` (a bucket).
pub(crate) fn dead_letter_date(name: &str) -> Option<NaiveDate> {
    let d = name.strip_suffix(".ndjson")?.split('.').next()?;
    NaiveDate::parse_from_str(d, "%Y-%m-%d").ok()
}

/// Files with extension `ext` two folder levels under `dir`
/// (`site=/date=/` or `week=/`), skipping temporary names.
pub fn files_under(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), 0)];
    while let Some((d, depth)) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for entry in rd.flatten() {
            let p = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') {
                continue;
            }
            if p.is_dir() {
                if depth < 3 {
                    stack.push((p, depth + 1));
                }
            } else if p.extension().and_then(|e| e.to_str()) == Some(ext) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Temporary files a crash left behind (`.NAME.tmp`, never read as data).
pub fn temporaries(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack: Vec<PathBuf> =
        [RAW, SUMMARIES, AGGREGATES, OFFSETS].iter().map(|t| root.join(t)).collect();
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().to_string();
            if p.is_dir() {
                stack.push(p);
            } else if name.starts_with('.') && name.ends_with(".tmp") {
                out.push(p);
            }
        }
    }
    out
}

/// Removes what [`temporaries`] finds, whoever wrote it (a store that no
/// other process writes); returns how many.
pub fn remove_temporaries(root: &Path) -> usize {
    temporaries(root).iter().filter(|p| fs::remove_file(p).is_ok()).count()
}

/// Removes the temporaries of writers that are gone ([`abandoned`]), and
/// leaves those of instances still writing to a shared store; returns how
/// many. The service runs it at start.
pub fn remove_abandoned_temporaries(root: &Path) -> usize {
    temporaries(root).iter().filter(|p| abandoned(p) && fs::remove_file(p).is_ok()).count()
}

/// How old another host's temporary file must be before it counts as
/// abandoned: no write of vigie's takes this long.
pub const FOREIGN_TEMPORARY_AGE: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// Whether a temporary file (`.NAME.HOST~PID.N.tmp`) was left by a writer
/// that is gone: of this host, when process PID does not run, or runs but
/// started after the file was last written (the number was reused, as
/// PID 1 is in every container); of another host, or without a writer in
/// its name, when it is older than [`FOREIGN_TEMPORARY_AGE`].
pub fn abandoned(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let Ok(modified) = fs::metadata(path).and_then(|m| m.modified()) else { return false };
    let writer =
        name.strip_suffix(".tmp").and_then(|s| s.rsplit_once('.')).and_then(|(s, _)| s.rsplit_once('.'));
    let tagged =
        writer.and_then(|(_, w)| w.rsplit_once('~')).and_then(|(h, p)| Some((h, p.parse::<u32>().ok()?)));
    match tagged {
        Some((host, pid)) if host == super::host_name() => match process_start(pid) {
            None => true,
            // A second of slack: the start time is read in clock ticks.
            Some(started) => started > modified + std::time::Duration::from_secs(1),
        },
        _ => modified.elapsed().is_ok_and(|age| age >= FOREIGN_TEMPORARY_AGE),
    }
}

/// When process `pid` of this host started; `None` when it does not run.
/// Its start in clock ticks after boot (`/proc/PID/stat`, field 22; the
/// kernel gives user space 100 ticks a second) plus the boot time
/// (`/proc/stat`, `btime`).
fn process_start(pid: u32) -> Option<std::time::SystemTime> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: fields are counted after
    // its closing parenthesis (field 3 is the first one there).
    let after = &stat[stat.rfind(')')? + 1..];
    let ticks: u64 = after.split_whitespace().nth(19)?.parse().ok()?;
    let boot: u64 = fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    Some(std::time::UNIX_EPOCH + std::time::Duration::from_millis(boot * 1000 + ticks * 10))
}

/// The date of a `date=YYYY-MM-DD` folder, or of a `week=YYYY-Www` folder
/// (its Sunday, the last day it covers).
pub(crate) fn folder_date(name: &str) -> Option<NaiveDate> {
    if let Some(d) = name.strip_prefix("date=") {
        return NaiveDate::parse_from_str(d, "%Y-%m-%d").ok();
    }
    let w = name.strip_prefix("week=")?;
    let (y, wk) = w.split_once("-W")?;
    NaiveDate::from_isoywd_opt(y.parse().ok()?, wk.parse().ok()?, chrono::Weekday::Sun)
}

/// Dated folders of a tier: `(date, folder)`, oldest first.
pub fn dated_folders(tier_dir: &Path) -> Vec<(NaiveDate, PathBuf)> {
    let mut out = Vec::new();
    let mut visit = |dir: &Path| {
        if let Ok(rd) = fs::read_dir(dir) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                if let Some(d) = folder_date(&name) {
                    out.push((d, e.path()));
                }
            }
        }
    };
    visit(tier_dir);
    if let Ok(rd) = fs::read_dir(tier_dir) {
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with("site=") {
                visit(&e.path());
            }
        }
    }
    out.sort();
    out
}

/// Retention of each tier, days.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Retention {
    /// Raw events and local dead letters.
    pub raw_days: u32,
    /// Per-worker daily summaries.
    pub summary_days: u32,
    /// Group aggregates.
    pub aggregate_days: u32,
}

impl Retention {
    /// The retention of `tier`, days.
    pub fn days(&self, tier: &str) -> u32 {
        match tier {
            RAW | DEAD_LETTER => self.raw_days,
            SUMMARIES => self.summary_days,
            _ => self.aggregate_days,
        }
    }
}

/// What a purge removed, by tier.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PurgeReport {
    /// Dated folders removed, by tier.
    pub folders: BTreeMap<&'static str, u64>,
    /// Files removed, by tier.
    pub files: BTreeMap<&'static str, u64>,
}

/// Deletes every folder (and local dead-letter file) whose date is more
/// than its tier's retention before `today`. A record of date D is kept
/// while `today - D <= retention days`.
pub fn purge(root: &Path, retention: &Retention, today: NaiveDate) -> Result<PurgeReport, IngestError> {
    let mut report = PurgeReport::default();
    // Quarantined files are still personal data: they follow their tier's
    // retention.
    let tiers = [RAW, SUMMARIES, AGGREGATES]
        .into_iter()
        .flat_map(|t| [(t, root.join(t)), (t, root.join(QUARANTINE).join(t))]);
    for (tier, tier_dir) in tiers {
        let keep_from = today - chrono::Days::new(u64::from(retention.days(tier)));
        for (date, dir) in dated_folders(&tier_dir) {
            if date < keep_from {
                let n = files_under(&dir, "parquet").len() as u64;
                fs::remove_dir_all(&dir).map_err(|e| IngestError::io(&dir, e))?;
                *report.folders.entry(tier).or_default() += 1;
                *report.files.entry(tier).or_default() += n;
            }
        }
    }
    let keep_from = today - chrono::Days::new(u64::from(retention.raw_days));
    let dl = root.join(DEAD_LETTER);
    if let Ok(rd) = fs::read_dir(&dl) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if let Some(d) = dead_letter_date(&name) {
                if d < keep_from {
                    fs::remove_file(e.path()).map_err(|err| IngestError::io(&e.path(), err))?;
                    *report.files.entry(DEAD_LETTER).or_default() += 1;
                }
            }
        }
    }
    Ok(report)
}

/// Bytes and the age of the oldest record of one tier.
#[derive(Debug, Clone, PartialEq)]
pub struct TierStats {
    /// The tier.
    pub tier: &'static str,
    /// Bytes of its files.
    pub bytes: u64,
    /// Seconds from the start (00:00 UTC) of the oldest dated folder to
    /// `now`; 0 when the tier is empty.
    pub oldest_age_s: f64,
}

/// Bytes and the oldest record's age of the raw, summaries and
/// aggregates tiers.
pub fn tier_stats(root: &Path, now: chrono::DateTime<chrono::Utc>) -> Vec<TierStats> {
    [RAW, SUMMARIES, AGGREGATES]
        .into_iter()
        .map(|tier| {
            let dir = root.join(tier);
            let bytes = files_under(&dir, "parquet")
                .iter()
                .filter_map(|f| fs::metadata(f).ok())
                .map(|m| m.len())
                .sum();
            let folders = dated_folders(&dir);
            let oldest = folders
                .iter()
                .filter(|(_, d)| !files_under(d, "parquet").is_empty())
                .map(|(date, _)| *date)
                .min();
            tier_stats_of(tier, bytes, oldest, now)
        })
        .collect()
}

/// A tier's stats from its bytes and its oldest dated folder's date (a
/// week folder's date is its Sunday: its records start on its Monday).
pub(crate) fn tier_stats_of(
    tier: &'static str,
    bytes: u64,
    oldest: Option<NaiveDate>,
    now: chrono::DateTime<chrono::Utc>,
) -> TierStats {
    let oldest = oldest.map(|d| if tier == AGGREGATES { d - chrono::Days::new(6) } else { d });
    let oldest_age_s = oldest
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| (now.naive_utc() - t).num_seconds().max(0) as f64)
        .unwrap_or(0.0);
    TierStats { tier, bytes, oldest_age_s }
}

/// `summaries/site=S/date=D/shifts.parquet`.
pub fn summary_file(root: &Path, site: &str, date: NaiveDate) -> PathBuf {
    root.join(SUMMARIES).join(format!("site={site}")).join(format!("date={date}")).join("shifts.parquet")
}

/// `aggregates/week=W/group_weeks.parquet`.
pub fn aggregate_file(root: &Path, week: &str) -> PathBuf {
    root.join(AGGREGATES).join(format!("week={week}")).join("group_weeks.parquet")
}

/// The ISO week of a date, as vigie writes it (`2026-W09`).
pub fn week_of(d: NaiveDate) -> String {
    let w = d.iso_week();
    format!("{}-W{:02}", w.year(), w.week())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A temporary file named for `writer`, last written at `at`.
    fn temp(dir: &Path, writer: &str, at: std::time::SystemTime) -> PathBuf {
        let p = dir.join(format!(".part.parquet.{writer}.7.tmp"));
        let f = fs::File::create(&p).unwrap();
        f.set_modified(at).unwrap();
        p
    }

    #[test]
    fn only_the_temporaries_of_writers_that_are_gone_count_as_abandoned() {
        let dir = tempfile::tempdir().unwrap();
        let (host, now) = (crate::store::host_name(), std::time::SystemTime::now());
        let me = std::process::id();
        // A pid that runs no process: past the kernel's largest.
        let max: u32 = fs::read_to_string("/proc/sys/kernel/pid_max").unwrap().trim().parse().unwrap();
        let long_ago = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1);
        let twenty_min = now - std::time::Duration::from_secs(20 * 60);
        let cases = [
            // This host, a process that no longer runs: its write was cut.
            (temp(dir.path(), &format!("{host}~{}", max + 1), now), true),
            // This process, writing now: another instance's view of it.
            (temp(dir.path(), &format!("{host}~{me}"), now), false),
            // This host, a process that runs but started after the file was
            // written (the number was reused: PID 1 in a restarted container).
            (temp(dir.path(), &format!("{host}~1"), long_ago), true),
            // Another host, just written: may be under way.
            (temp(dir.path(), "other-host~42", now), false),
            // Another host, twenty minutes old: no write takes that long.
            (temp(dir.path(), "other-host~43", twenty_min), true),
        ];
        for (p, want) in &cases {
            assert_eq!(abandoned(p), *want, "{}", p.display());
        }
        // An old name without a writer (one pid only) counts by its age.
        let untagged = dir.path().join(".part.parquet.1234.0.tmp");
        fs::File::create(&untagged).unwrap();
        assert!(!abandoned(&untagged));
        fs::File::options().write(true).open(&untagged).unwrap().set_modified(twenty_min).unwrap();
        assert!(abandoned(&untagged));
        // The start's sweep removes exactly the abandoned ones.
        let raw = dir.path().join(RAW);
        fs::create_dir_all(&raw).unwrap();
        for (p, _) in &cases {
            fs::rename(p, raw.join(p.file_name().unwrap())).unwrap();
        }
        let removed = remove_abandoned_temporaries(dir.path());
        let left: Vec<String> = temporaries(dir.path())
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(removed, 3);
        assert_eq!(left.len(), 2, "{left:?}");
        assert!(
            left.iter().all(|n| n.contains(&format!("~{me}.")) || n.contains("other-host~42")),
            "{left:?}"
        );
    }

    #[test]
    fn raw_names_carry_their_incarnation_and_offsets() {
        let d = NaiveDate::from_ymd_opt(2026, 11, 2).unwrap();
        let n = RawName { topic: "wh.events-v1".into(), epoch: 2, partition: 3, first: 100, last: 250 };
        let p = raw_file(Path::new("/s"), "lyon-1", d, &n);
        assert_eq!(p, Path::new("/s/raw/site=lyon-1/date=2026-11-02/wh.events-v1+e2+3+100+250.parquet"));
        let name = p.file_name().unwrap().to_str().unwrap();
        assert_eq!(RawName::parse(name), Some(n));
        // Version 1 names read as the first incarnation.
        let v1 = RawName::parse("wh.events-v1+3+100+250.parquet").unwrap();
        assert_eq!((v1.epoch, v1.partition, v1.first, v1.last), (0, 3, 100, 250));
        // A bucket's part carries the lease generation that wrote it.
        assert_eq!(RawName::parse("wh.events-v1+e2+3+100+250.g17.parquet"), RawName::parse(name));
        for bad in [
            "x.parquet",
            "t+1+2.parquet",
            "t+x1+0+1+2.parquet",
            "t+0+9+2.parquet",
            "+0+1+2.parquet",
            "t+e0+0+1+2.g.parquet",
            "t+e0+0+1+2.gx.parquet",
        ] {
            assert_eq!(RawName::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn checkpoints_alternate_between_two_slots_and_survive_a_damaged_one() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let f = Faults::default();
        let ck = |seq, last| Checkpoint { seq, epoch: 1, last, fingerprint: Some(0xabc) };
        assert_eq!(read_checkpoint(root, "t", 0), CheckpointRead::default());
        write_checkpoint(root, "t", 0, &ck(1, 99), &f).unwrap();
        write_checkpoint(root, "t", 0, &ck(2, 199), &f).unwrap();
        assert_eq!(read_checkpoint(root, "t", 0).best, Some(ck(2, 199)));
        // The newer slot is damaged (one byte changed): the older one
        // answers, and the damaged slot is named.
        let newer = root.join("offsets/t+0.0");
        let text = std::fs::read_to_string(&newer).unwrap().replace("last=199", "last=999");
        std::fs::write(&newer, text).unwrap();
        let read = read_checkpoint(root, "t", 0);
        assert_eq!(read.best, Some(ck(1, 99)));
        assert_eq!(read.damaged, vec![newer.clone()]);
        // A bucket's slot names the lease generation that wrote it.
        let line = ck(5, 7).line_with_generation(Some(42));
        assert_eq!(Checkpoint::parse_with_generation(&line), Some((ck(5, 7), Some(42))));
        assert_eq!(Checkpoint::parse(&line), Some(ck(5, 7)));
        assert_eq!(Checkpoint::parse(&line.replace("gen=42", "gen=43")), None, "the sum covers it");
        // Both damaged: nothing is known.
        std::fs::write(root.join("offsets/t+0.1"), "").unwrap();
        assert_eq!(read_checkpoint(root, "t", 0).best, None);
        // A version 1 checkpoint (a bare offset) still reads.
        std::fs::write(root.join("offsets/u+4"), "41\n").unwrap();
        assert_eq!(
            read_checkpoint(root, "u", 4).best,
            Some(Checkpoint { seq: 0, epoch: 0, last: 41, fingerprint: None })
        );
        assert_eq!(checkpointed_partitions(root), vec![("t".to_string(), 0), ("u".to_string(), 4)]);
    }

    #[test]
    fn only_whole_flushes_count_as_complete() {
        let ck = Checkpoint { seq: 3, epoch: 1, last: 99, fingerprint: None };
        let n = |epoch, first, last| RawName { topic: "t".into(), epoch, partition: 0, first, last };
        assert!(flush_completed(&n(1, 50, 99), Some(&ck)));
        assert!(!flush_completed(&n(1, 100, 120), Some(&ck)), "beyond the checkpoint");
        assert!(flush_completed(&n(0, 500, 900), Some(&ck)), "an earlier incarnation");
        assert!(!flush_completed(&n(2, 0, 10), Some(&ck)), "a later incarnation not yet checkpointed");
        assert!(flush_completed(&n(0, 0, 10), None), "no checkpoint: cannot say");
    }

    #[test]
    fn week_folders_end_on_sunday() {
        assert_eq!(folder_date("week=2026-W45"), NaiveDate::from_ymd_opt(2026, 11, 8));
        assert_eq!(folder_date("date=2026-11-02"), NaiveDate::from_ymd_opt(2026, 11, 2));
        assert_eq!(folder_date("site=x"), None);
        assert_eq!(week_of(NaiveDate::from_ymd_opt(2026, 11, 8).unwrap()), "2026-W45");
    }
}
