//! The pseudonymised event store: files written under a temporary name,
//! fsynced, then renamed, so that a reader never sees half a file. The
//! service's raw tier is Parquet; `vigie audit` spills to its own files
//! ([`crate::spill`]) under the output directory, purged at the end of the
//! run.
//!
//! - this module: atomic writes, the raw tier's schema, the audit's
//!   scratch folders and spill writer;
//! - [`tiers`]: the service's store on disk (raw events, summaries,
//!   aggregates in dated folders; offset checkpoints; quarantine; purge);
//! - [`check`]: `vigie store check` and the check at the service's start;
//! - `objects` and `lease` (feature `s3`): the store's objects in a folder
//!   or an S3 bucket, with conditional writes, and the lease that makes one
//!   instance the analysis writer;
//! - `bucket` (feature `s3`): the service's store in an S3 bucket, and
//!   [`Store`], a folder or a bucket, through which the consumer writes.

#[cfg(feature = "s3")]
pub mod bucket;
pub mod check;
pub mod config;
#[cfg(feature = "s3")]
pub mod lease;
#[cfg(feature = "s3")]
pub mod objects;
pub mod tiers;

#[cfg(feature = "s3")]
pub use bucket::{PartitionGuard, Store};
pub use tiers::*;

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use polars::prelude::*;

use crate::event::{Event, EventRef};
use crate::spill::{SpillBuilder, SpillColumns};
use crate::IngestError;

/// Rows buffered per bucket before a spill file is written: with 16
/// buckets, about 100 MB of column buffers at most.
pub const DEFAULT_ROWS_PER_FILE: usize = 32 * 1024;

/// Fewest buckets of the spill: the analysis holds one at a time per
/// thread.
pub const MIN_BUCKETS: usize = 16;

/// Most buckets (each is a folder of spill files).
pub const MAX_BUCKETS: usize = 1024;

/// Events the analysis should find in one bucket, so that its memory stays
/// about the same whatever the size of the input.
pub const EVENTS_PER_BUCKET: u64 = 1_000_000;

/// Buckets for an input of about `events` events.
pub fn buckets_for(events: u64) -> usize {
    (events.div_ceil(EVENTS_PER_BUCKET) as usize).clamp(MIN_BUCKETS, MAX_BUCKETS)
}

/// The columns of the store, in order. Times are UTC microseconds plus the
/// offset the record carried; enumerations are their `code()`.
pub fn store_schema() -> Schema {
    Schema::from_iter([
        Field::new("event_id".into(), DataType::String),
        Field::new("ts_us".into(), DataType::Int64),
        Field::new("offset_s".into(), DataType::Int32),
        Field::new("site".into(), DataType::String),
        Field::new("worker".into(), DataType::UInt64),
        Field::new("kind".into(), DataType::UInt8),
        Field::new("zone".into(), DataType::String),
        Field::new("team".into(), DataType::String),
        Field::new("process".into(), DataType::UInt8),
        Field::new("device".into(), DataType::UInt8),
        Field::new("quantity".into(), DataType::UInt32),
        Field::new("weight_kg".into(), DataType::Float64),
        Field::new("threshold_s".into(), DataType::Float64),
        Field::new("gap_s".into(), DataType::Float64),
        Field::new("target_per_hour".into(), DataType::Float64),
    ])
}

/// Column buffers for a batch of events: the store's columns and, for the
/// audit's spill, `seq` (see [`crate::dedup`]).
#[derive(Default)]
pub struct EventBatch {
    seq: Vec<u64>,
    /// Every event id of the batch, end to end, and where each ends.
    ids: String,
    id_ends: Vec<usize>,
    ts_us: Vec<i64>,
    offset_s: Vec<i32>,
    site: Vec<Arc<str>>,
    worker: Vec<u64>,
    kind: Vec<u8>,
    zone: Vec<Option<Arc<str>>>,
    team: Vec<Option<Arc<str>>>,
    process: Vec<Option<u8>>,
    device: Vec<Option<u8>>,
    quantity: Vec<Option<u32>>,
    weight_kg: Vec<Option<f64>>,
    threshold_s: Vec<Option<f64>>,
    gap_s: Vec<Option<f64>>,
    target_per_hour: Vec<Option<f64>>,
}

impl EventBatch {
    /// Events held.
    pub fn len(&self) -> usize {
        self.ts_us.len()
    }

    /// Whether no event is held.
    pub fn is_empty(&self) -> bool {
        self.ts_us.is_empty()
    }

    /// Appends an event.
    pub fn push(&mut self, e: Event) {
        self.push_ref(&e.as_ref());
    }

    fn push_ref(&mut self, e: &EventRef<'_>) {
        self.ids.push_str(e.event_id);
        self.id_ends.push(self.ids.len());
        self.seq.push(e.seq);
        self.ts_us.push(e.ts_us);
        self.offset_s.push(e.offset_s);
        self.site.push(e.site.clone());
        self.worker.push(e.worker.0);
        self.kind.push(e.kind.code());
        self.zone.push(e.zone.cloned());
        self.team.push(e.team.cloned());
        self.process.push(e.process.map(super::event::Process::code));
        self.device.push(e.device.map(super::event::Device::code));
        self.quantity.push(e.quantity);
        self.weight_kg.push(e.weight_kg);
        self.threshold_s.push(e.threshold_s);
        self.gap_s.push(e.gap_s);
        self.target_per_hour.push(e.target_per_hour);
    }

    /// Moves the buffers into a DataFrame with [`store_schema`].
    pub fn take_frame(&mut self) -> PolarsResult<DataFrame> {
        let b = std::mem::take(self);
        fn strs(v: &[Option<Arc<str>>]) -> Vec<Option<&str>> {
            v.iter().map(|s| s.as_deref()).collect()
        }
        let mut start = 0;
        let ids = b.id_ends.iter().map(|&end| {
            let id = &b.ids[start..end];
            start = end;
            id
        });
        let event_id = StringChunked::from_iter_values("event_id".into(), ids);
        let site: Vec<&str> = b.site.iter().map(std::convert::AsRef::as_ref).collect();
        let columns = vec![
            event_id.into_column(),
            Column::new("ts_us".into(), b.ts_us),
            Column::new("offset_s".into(), b.offset_s),
            Column::new("site".into(), site),
            Column::new("worker".into(), b.worker),
            Column::new("kind".into(), b.kind),
            Column::new("zone".into(), strs(&b.zone)),
            Column::new("team".into(), strs(&b.team)),
            Column::new("process".into(), b.process),
            Column::new("device".into(), b.device),
            Column::new("quantity".into(), b.quantity),
            Column::new("weight_kg".into(), b.weight_kg),
            Column::new("threshold_s".into(), b.threshold_s),
            Column::new("gap_s".into(), b.gap_s),
            Column::new("target_per_hour".into(), b.target_per_hour),
        ];
        DataFrame::new_infer_height(columns)
    }
}

/// Whether a write must survive a crash of the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// fsync the file and its folder before and after the rename (the
    /// service's store: offsets are committed after this returns).
    Synced,
    /// Rename only (a spill deleted at the end of the run).
    Scratch,
}

/// A step of an atomic write, for a caller that injects faults
/// (docs/design.md, "Testing the durable point").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteStep {
    /// Before the temporary file is created and written.
    Write,
    /// Before the temporary file is renamed to its final name.
    Rename,
}

/// Writes `df` to `path` atomically: a temporary name in the same folder,
/// then a rename; with [`Durability::Synced`], fsync of the file before and
/// of the folder after. On any failure the temporary file is removed, so a
/// full disk never leaves a partial file behind, under either name.
pub fn write_parquet_atomic(
    df: &mut DataFrame,
    path: &Path,
    durability: Durability,
) -> Result<(), IngestError> {
    write_parquet_atomic_with(df, path, durability, &mut |_| Ok(()))
}

/// [`write_parquet_atomic`], calling `step` before each step (a fault
/// injection seam: an error from it fails the write there).
pub fn write_parquet_atomic_with(
    df: &mut DataFrame,
    path: &Path,
    durability: Durability,
    step: &mut dyn FnMut(WriteStep) -> std::io::Result<()>,
) -> Result<(), IngestError> {
    let compression = parquet_compression(durability);
    write_atomic_with(path, durability, true, step, &mut |f| {
        ParquetWriter::new(f).with_compression(compression).finish(df).map_err(|e| match e {
            PolarsError::IO { error, .. } => std::io::Error::new(error.kind(), error.to_string()),
            other => std::io::Error::other(other.to_string()),
        })?;
        Ok(())
    })
}

/// The store's Parquet compression: zstd for what is kept; a scratch file
/// is read once and deleted, and LZ4 costs a fraction of zstd's time to
/// write.
pub(crate) fn parquet_compression(durability: Durability) -> ParquetCompression {
    match durability {
        Durability::Synced => ParquetCompression::Zstd(None),
        Durability::Scratch => ParquetCompression::Lz4Raw,
    }
}

/// Writes `bytes` to `path` atomically, like [`write_parquet_atomic`].
pub fn write_bytes_atomic(path: &Path, bytes: &[u8], durability: Durability) -> Result<(), IngestError> {
    write_bytes_atomic_with(path, bytes, durability, &mut |_| Ok(()))
}

/// [`write_bytes_atomic`] for a file of individual data (events, shifts):
/// only the owner may read it (0600), as Parquet parts.
pub fn write_private_bytes_atomic(
    path: &Path,
    bytes: &[u8],
    durability: Durability,
) -> Result<(), IngestError> {
    write_atomic_with(path, durability, true, &mut |_| Ok(()), &mut |f| f.write_all(bytes))
}

/// [`write_bytes_atomic`] with a fault injection seam, like
/// [`write_parquet_atomic_with`].
pub fn write_bytes_atomic_with(
    path: &Path,
    bytes: &[u8],
    durability: Durability,
    step: &mut dyn FnMut(WriteStep) -> std::io::Result<()>,
) -> Result<(), IngestError> {
    write_atomic_with(path, durability, false, step, &mut |f| f.write_all(bytes))
}

/// This machine's name, as the kernel gives it (`/proc/sys/kernel/hostname`,
/// else `$HOSTNAME`), with every character but `A-Z a-z 0-9 -` made `-`.
pub fn host_name() -> String {
    let raw = fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "host".into());
    raw.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' }).collect()
}

/// Who writes a temporary file: `HOST~PID`, so that an instance sweeping
/// the temporaries of an interrupted run at start can tell a dead
/// writer's from those of another instance still writing to a shared
/// store ([`abandoned`]).
pub fn writer_tag() -> String {
    static TAG: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TAG.get_or_init(|| format!("{}~{}", host_name(), std::process::id())).clone()
}

/// The atomic write under both: `fill` writes the temporary file.
fn write_atomic_with(
    path: &Path,
    durability: Durability,
    private: bool,
    step: &mut dyn FnMut(WriteStep) -> std::io::Result<()>,
    fill: &mut dyn FnMut(&mut File) -> std::io::Result<()>,
) -> Result<(), IngestError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    // Scratch folders are made up front, by whoever owns the scratch area.
    // One that vanished was removed on purpose (an interrupted audit purges
    // its spill while its threads still run): it is an error, never
    // re-created, so nothing outlives the purge.
    if durability != Durability::Scratch {
        fs::create_dir_all(dir).map_err(|e| IngestError::io(dir, e))?;
    }
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("part");
    // Unique per process and call: instances sharing a store may write the
    // same file (a summary, findings) at the same time.
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.{}.{n}.tmp", writer_tag()));
    let written = (|| {
        step(WriteStep::Write)?;
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        // Event and shift files hold pseudonymised individual data: only
        // the owner reads them.
        #[cfg(unix)]
        if private {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        #[cfg(not(unix))]
        let _ = private;
        let mut f = opts.open(&tmp)?;
        fill(&mut f)?;
        f.flush()?;
        if durability == Durability::Synced {
            f.sync_all()?;
        }
        step(WriteStep::Rename)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(IngestError::io(path, e));
    }
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(IngestError::io(path, e));
    }
    if durability == Durability::Synced {
        File::open(dir).and_then(|d| d.sync_all()).map_err(|e| IngestError::io(dir, e))?;
    }
    Ok(())
}

/// The name a scratch folder (the audit's spill) takes while it is removed.
pub fn scratch_tombstone(dir: &Path) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(".removing");
    dir.with_file_name(name)
}

/// Removes a scratch folder while threads may still be writing to it. The
/// folder is first renamed: nothing re-creates scratch folders (scratch
/// writes never create one), so every later write under the old name
/// fails instead of leaving a file behind. A file opened just before the
/// rename lands in the tombstone, which is removed until it is gone (at
/// most about a second).
pub fn remove_scratch(dir: &Path) {
    let grave = scratch_tombstone(dir);
    let target = if fs::rename(dir, &grave).is_ok() { grave } else { dir.to_path_buf() };
    for _ in 0..100 {
        match fs::remove_dir_all(&target) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            _ => break,
        }
    }
}

/// Accumulates events and writes them as numbered spill files
/// ([`crate::spill`]), in
/// `buckets` folders by worker pseudonym: every event of a worker lands in
/// the same bucket, so the analysis can take one bucket at a time and its
/// memory is bounded by the largest bucket, not by the input.
///
/// Coding the labels, encoding and compression run on a writer thread,
/// so that they overlap with reading and validation; at most two batches
/// wait for it.
pub struct SpillWriter {
    dir: PathBuf,
    batches: Vec<SpillBuilder>,
    spare: std::sync::mpsc::Receiver<SpillColumns>,
    rows_per_file: usize,
    parts: Vec<usize>,
    tx: Option<std::sync::mpsc::SyncSender<(SpillColumns, PathBuf)>>,
    writer: Option<std::thread::JoinHandle<Result<(), IngestError>>>,
}

fn bucket_name(b: usize) -> String {
    format!("bucket-{b:04}")
}

impl SpillWriter {
    /// A spill of `buckets` buckets under `dir`, each file of up to
    /// `rows_per_file` events, written by a thread of its own.
    pub fn new(
        dir: impl Into<PathBuf>,
        buckets: usize,
        rows_per_file: usize,
        durability: Durability,
    ) -> Result<Self, IngestError> {
        let dir = dir.into();
        let buckets = buckets.max(1);
        fs::create_dir_all(&dir).map_err(|e| IngestError::io(&dir, e))?;
        // Every bucket's folder now: scratch writes never create folders.
        for b in 0..buckets {
            let d = dir.join(bucket_name(b));
            fs::create_dir_all(&d).map_err(|e| IngestError::io(&d, e))?;
        }
        let (tx, rx) = std::sync::mpsc::sync_channel::<(SpillColumns, PathBuf)>(2);
        // Written files' buffers come back, emptied, for the next ones.
        let (spare_tx, spare) = std::sync::mpsc::channel::<SpillColumns>();
        let writer = std::thread::Builder::new()
            .name("vigie-spill".into())
            .spawn(move || {
                for (mut cols, path) in rx {
                    let bytes = crate::spill::encode(&cols).map_err(|e| IngestError::io(&path, e))?;
                    write_private_bytes_atomic(&path, &bytes, durability)?;
                    cols.clear();
                    let _ = spare_tx.send(cols);
                }
                Ok(())
            })
            .map_err(|e| IngestError::io(&dir, e))?;
        Ok(SpillWriter {
            dir,
            batches: (0..buckets).map(|_| SpillBuilder::default()).collect(),
            spare,
            rows_per_file,
            parts: vec![0; buckets],
            tx: Some(tx),
            writer: Some(writer),
        })
    }

    /// The spill's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The number of buckets.
    pub fn buckets(&self) -> usize {
        self.batches.len()
    }

    fn bucket_dir(&self, b: usize) -> PathBuf {
        self.dir.join(bucket_name(b))
    }

    /// Appends an event to its worker's bucket; a full buffer goes to the
    /// writer thread.
    pub fn push_ref(&mut self, e: EventRef<'_>) -> Result<(), IngestError> {
        // The pseudonym's top bits pick the bucket.
        let b = crate::dedup::bucket_of(e.worker.0, self.batches.len());
        self.batches[b].push(&e);
        if self.batches[b].len() >= self.rows_per_file {
            self.flush_bucket(b)?;
        }
        Ok(())
    }

    fn flush_bucket(&mut self, b: usize) -> Result<(), IngestError> {
        if self.batches[b].is_empty() {
            return Ok(());
        }
        let batch = self.batches[b].take(self.spare.try_recv().ok());
        let path = self.bucket_dir(b).join(format!("part-{:06}.spill", self.parts[b]));
        self.parts[b] += 1;
        let sent = self.tx.as_ref().map(|tx| tx.send((batch, path)).is_ok()).unwrap_or(false);
        if !sent {
            // The writer stopped: its error says why.
            return Err(self
                .join_writer()
                .err()
                .unwrap_or_else(|| IngestError::Input("the spill writer stopped".into())));
        }
        Ok(())
    }

    fn join_writer(&mut self) -> Result<(), IngestError> {
        self.tx = None;
        match self.writer.take() {
            Some(h) => h.join().map_err(|_| IngestError::Input("the spill writer panicked".into()))?,
            None => Ok(()),
        }
    }

    /// Flushes, waits for the writer and returns the folders of the
    /// buckets that hold data.
    pub fn finish(mut self) -> Result<Vec<PathBuf>, IngestError> {
        for b in 0..self.batches.len() {
            self.flush_bucket(b)?;
        }
        self.join_writer()?;
        Ok((0..self.batches.len()).filter(|b| self.parts[*b] > 0).map(|b| self.bucket_dir(b)).collect())
    }
}

impl Drop for SpillWriter {
    fn drop(&mut self) {
        let _ = self.join_writer();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, Kind, Pseudonym};

    fn event(i: u64) -> Event {
        Event {
            event_id: format!("e{i}"),
            ts_us: i as i64 * 1_000_000,
            offset_s: 0,
            site: "S1".into(),
            worker: Pseudonym(i.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            kind: Kind::Scan,
            zone: None,
            team: None,
            process: None,
            device: None,
            quantity: Some(1),
            weight_kg: None,
            threshold_s: None,
            gap_s: None,
            target_per_hour: None,
        }
    }

    /// An interrupted audit removes its spill while the spill's threads
    /// still write: later writes fail, and none re-creates a folder.
    #[test]
    fn a_spill_removed_under_its_writer_is_never_re_created() {
        let dir = tempfile::tempdir().unwrap();
        let spill = dir.path().join("events");
        let mut w = SpillWriter::new(&spill, 4, 8, Durability::Scratch).unwrap();
        for i in 0..40 {
            w.push_ref(event(i).as_ref()).unwrap();
        }
        // Removed as an interrupted audit removes it, while the writer
        // thread may be writing.
        remove_scratch(&spill);
        let mut failed = false;
        for i in 40..400 {
            if w.push_ref(event(i).as_ref()).is_err() {
                failed = true;
                break;
            }
        }
        let finished = w.finish();
        // A file the writer opened just before the rename may have landed
        // in the tombstone; the writer has stopped now.
        let _ = fs::remove_dir_all(scratch_tombstone(&spill));
        assert!(failed || finished.is_err(), "writes into a removed spill succeeded");
        assert!(!spill.exists(), "the spill was re-created");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    /// A durable write makes the folders it needs; a scratch write never.
    #[test]
    fn only_durable_writes_create_their_folder() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("a/b/part");
        assert!(write_private_bytes_atomic(&deep, b"x", Durability::Scratch).is_err());
        assert!(!dir.path().join("a").exists());
        write_private_bytes_atomic(&deep, b"x", Durability::Synced).unwrap();
        assert_eq!(fs::read(&deep).unwrap(), b"x");
    }
}
