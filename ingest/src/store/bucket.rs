//! The service's store in an S3 bucket (docs/design.md, "Past one
//! machine"): the same tiers, names and checkpoints as a folder store
//! ([`super::tiers`]), written as objects.
//!
//! - A raw part is one PUT (atomic on S3: it is there whole or not at all).
//!   No temporary names, no renames.
//! - A partition's durable point is written only by the holder of the
//!   partition's lease (`leases/partitions/TOPIC+PARTITION.json`), taken
//!   and renewed by conditional PUTs ([`super::lease`]); the checkpoint
//!   itself is a conditional PUT on the version that holder last wrote or
//!   read. The lease does what the folder store's file lock does: two
//!   instances that both believe they own a partition never both move its
//!   durable point, and the one that did not is fenced.
//! - The analysis reads a copy of the tiers it needs in a private local
//!   folder ([`Bucket::mirror`]), raw parts downloaded once (a raw part
//!   never changes under its name), and writes its outputs back.
//!
//! Calls are synchronous, as the folder store's: each runs on the
//! bucket's own small runtime and the caller waits for it.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use chrono::NaiveDate;
use polars::prelude::{DataFrame, ParquetWriter};

use super::lease::{FenceError, Lease, Standing};
use super::objects::{Location, ObjectError, Objects, S3Location};
use super::tiers::{
    flush_completed, folder_date, Checkpoint, CheckpointRead, Faults, PurgeReport, RawName, Retention,
    TierStats, AGGREGATES, DEAD_LETTER, OFFSETS, QUARANTINE, RAW, SUMMARIES,
};
use crate::IngestError;

/// How long a partition's lease lasts without a renewal. Every flush
/// renews it; an instance that crashed holds its partitions' leases this
/// long at most (its successor in the group waits for it to run out).
pub const PARTITION_LEASE_TERM: Duration = Duration::from_secs(15);

/// The longest one request to the server can take, retries included
/// (objects.rs: 3 s a try, retried within 4 s): a part is PUT only while
/// the partition's lease has at least this long to run, so that it lands,
/// or the client gives it up, before another instance can take the lease.
pub const REQUEST_BOUND: Duration = Duration::from_secs(8);

/// The parts a flush attempt wrote that no checkpoint is known to vouch
/// for: its own (their names carry its lease's generation), deleted at the
/// partition's next flush unless the checkpoint turns out to be the one it
/// wrote (a write whose answer was lost).
#[derive(Debug, Clone)]
struct Attempt {
    generation: u64,
    seq: u64,
    keys: Vec<String>,
}

/// The store in a bucket: its objects, the runtime their requests run on,
/// and the leases this instance holds on partitions.
pub struct Bucket {
    objects: Objects,
    rt: Option<tokio::runtime::Runtime>,
    holder: String,
    term: Duration,
    leases: Mutex<HashMap<(String, i32), Lease>>,
    /// Parts of failed flush attempts, by partition.
    attempts: Mutex<HashMap<(String, i32), Attempt>>,
    /// Partitions assigned whose parts beyond the checkpoint (a flush that
    /// never completed) are still to be removed, under the lease.
    unswept: Mutex<std::collections::HashSet<(String, i32)>>,
}

impl std::fmt::Debug for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bucket({})", self.objects.location())
    }
}

impl Drop for Bucket {
    fn drop(&mut self) {
        // Dropped from async code too (the service's end): never block.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// An object error as the store's error: the key stands for the path.
fn err(e: ObjectError) -> IngestError {
    let kind = match &e {
        ObjectError::Conflict { .. } => std::io::ErrorKind::AlreadyExists,
        ObjectError::BadKey { .. } => std::io::ErrorKind::InvalidInput,
        ObjectError::Failed { .. } => std::io::ErrorKind::Other,
        // Credentials or permissions refused: the flush's error is fatal
        // (the service exits 1 after its retries), as a folder's EACCES.
        ObjectError::Denied { .. } => std::io::ErrorKind::PermissionDenied,
    };
    IngestError::Io { path: "s3".into(), source: std::io::Error::new(kind, e.to_string()) }
}

/// A key as the path-like name the store's callers pass around.
fn key_path(key: &str) -> PathBuf {
    PathBuf::from(key)
}

/// A path-like name back to its key.
pub fn path_key(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// A frame as the bytes of a Parquet file, as the folder store writes it.
pub fn parquet_bytes(df: &mut DataFrame) -> Result<Vec<u8>, IngestError> {
    let mut out = Vec::new();
    let compression = super::parquet_compression(super::Durability::Synced);
    ParquetWriter::new(&mut out).with_compression(compression).finish(df)?;
    Ok(out)
}

impl Bucket {
    /// Opens the store at `location` for the instance called `holder`
    /// (nothing is sent to the server yet).
    pub fn open(location: &S3Location, holder: &str) -> Result<Bucket, IngestError> {
        let objects = Objects::open(&Location::S3(location.clone())).map_err(err)?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("vigie-s3")
            .enable_all()
            .build()
            .map_err(|e| IngestError::io(Path::new("s3"), e))?;
        Ok(Bucket {
            objects,
            rt: Some(rt),
            holder: holder.to_string(),
            term: PARTITION_LEASE_TERM,
            leases: Mutex::default(),
            attempts: Mutex::default(),
            unswept: Mutex::default(),
        })
    }

    /// The same, with another lease term (tests).
    pub fn with_term(mut self, term: Duration) -> Bucket {
        self.term = term;
        self
    }

    /// The store's objects.
    pub fn objects(&self) -> &Objects {
        &self.objects
    }

    /// Runs `f` on the bucket's runtime and waits for it: callable from a
    /// plain thread, a blocking task or a worker of another runtime.
    pub fn wait<T: Send + 'static>(&self, f: impl Future<Output = T> + Send + 'static) -> T {
        // On the bucket's own thread this would wait for itself.
        assert_ne!(std::thread::current().name(), Some("vigie-s3"), "Bucket::wait on the bucket's runtime");
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.rt.as_ref().expect("runs until dropped").spawn(async move {
            let _ = tx.send(f.await);
        });
        rx.recv().expect("the bucket's runtime runs until the bucket is dropped")
    }

    /// The object's bytes; `None` when there is none.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, IngestError> {
        let (o, k) = (self.objects.clone(), key.to_string());
        self.wait(async move { o.get(&k).await }).map(|g| g.map(|(b, _)| b)).map_err(err)
    }

    /// Writes the object whole.
    pub fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), IngestError> {
        let (o, k) = (self.objects.clone(), key.to_string());
        self.wait(async move { o.put(&k, &bytes).await }).map(|_| ()).map_err(err)
    }

    /// Deletes the object; whether there was one.
    pub fn delete(&self, key: &str) -> Result<bool, IngestError> {
        let (o, k) = (self.objects.clone(), key.to_string());
        self.wait(async move { o.delete(&k).await }).map_err(err)
    }

    /// Keys under `prefix` with their sizes, sorted.
    pub fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>, IngestError> {
        let (o, p) = (self.objects.clone(), prefix.to_string());
        self.wait(async move { o.list(&p).await }).map_err(err)
    }

    fn lease_of(&self, topic: &str, partition: i32) -> Lease {
        let mut leases = self.leases.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        leases.remove(&(topic.to_string(), partition)).unwrap_or_else(|| {
            let slots = [slot_key(topic, partition, 0), slot_key(topic, partition, 1)];
            let fenced: Vec<&str> = slots.iter().map(String::as_str).collect();
            Lease::new(
                self.objects.clone(),
                &format!("partitions/{topic}+{partition}"),
                &self.holder,
                self.term,
                &fenced,
            )
        })
    }

    fn lease_back(&self, topic: &str, partition: i32, lease: Lease) {
        let mut leases = self.leases.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        leases.insert((topic.to_string(), partition), lease);
    }

    /// Takes or renews the lease of a partition before a flush. Another
    /// instance's lease still in its term is an error that heals: the
    /// flush is tried again (or the partition is fenced, once the other
    /// moved its durable point).
    pub fn lock_partition(&self, topic: &str, partition: i32) -> Result<u64, IngestError> {
        let mut lease = self.lease_of(topic, partition);
        let (lease, r) = self.wait(async move {
            let r = lease.tick().await;
            (lease, r)
        });
        self.lease_back(topic, partition, lease);
        match r.map_err(err)? {
            Standing::Held { generation } => {
                // Under the lease, no other instance writes this partition's
                // parts: what earlier attempts left can go.
                self.sweep(topic, partition)?;
                Ok(generation)
            }
            Standing::Other { holder, .. } => Err(IngestError::Io {
                path: format!("leases/partitions/{topic}+{partition}.json"),
                source: std::io::Error::new(
                    std::io::ErrorKind::WouldBlock,
                    format!("held by {holder} until its term runs out"),
                ),
            }),
        }
    }

    /// Whether this instance holds the partition's lease now (within 4/5
    /// of its term since the last renewal).
    pub fn holds(&self, topic: &str, partition: i32) -> bool {
        let leases = self.leases.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        leases.get(&(topic.to_string(), partition)).is_some_and(|l| l.held().is_some())
    }

    /// Makes sure the lease, at `generation`, has at least
    /// [`REQUEST_BOUND`] left to run: renews it if not (never takes it).
    fn hold_for_a_request(&self, topic: &str, partition: i32, generation: u64) -> Result<(), IngestError> {
        let lost = |why: &str| IngestError::Io {
            path: format!("leases/partitions/{topic}+{partition}.json"),
            source: std::io::Error::new(std::io::ErrorKind::WouldBlock, why.to_string()),
        };
        let mut lease = self.lease_of(topic, partition);
        if lease.held() == Some(generation) && lease.held_for() >= REQUEST_BOUND {
            self.lease_back(topic, partition, lease);
            return Ok(());
        }
        let (lease, r) = self.wait(async move {
            let r = lease.fence().await;
            (lease, r)
        });
        let left = lease.held_for();
        self.lease_back(topic, partition, lease);
        match r {
            Ok(g) if g == generation && left >= REQUEST_BOUND => Ok(()),
            Ok(_) => Err(lost("the partition's lease changed hands during the flush")),
            Err(FenceError::Store(e)) => Err(err(e)),
            Err(_) => Err(lost("the partition's lease was lost during the flush")),
        }
    }

    /// Marks a partition just assigned: its parts beyond the checkpoint are
    /// removed at its first flush, under the lease (not at assignment,
    /// when a previous owner may still be finishing a flush).
    pub fn assigned(&self, topic: &str, partition: i32) {
        let mut u = self.unswept.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        u.insert((topic.to_string(), partition));
    }

    /// Under the partition's lease: deletes the parts of this instance's
    /// failed attempts (unless the checkpoint is the one the attempt wrote,
    /// its answer lost), and, after an assignment, every part beyond the
    /// checkpoint (flushes that never completed, whoever wrote them).
    fn sweep(&self, topic: &str, partition: i32) -> Result<(), IngestError> {
        let key = (topic.to_string(), partition);
        let attempt = self.attempts.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&key);
        let unswept = self.unswept.lock().unwrap_or_else(std::sync::PoisonError::into_inner).contains(&key);
        if attempt.is_none() && !unswept {
            return Ok(());
        }
        let (read, gens) = self.read_checkpoint_generations(topic, partition)?;
        if let Some(a) = attempt {
            let applied =
                read.best.is_some_and(|ck| ck.seq == a.seq) && gens.get(&a.seq) == Some(&a.generation);
            if !applied {
                for (i, k) in a.keys.iter().enumerate() {
                    if let Err(e) = self.delete(k) {
                        let rest = Attempt { keys: a.keys[i..].to_vec(), ..a.clone() };
                        self.attempts
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .insert(key, rest);
                        return Err(e);
                    }
                }
            }
        }
        if unswept {
            if let Some(ck) = read.best {
                for f in self.incomplete_files(topic, partition, &ck)? {
                    self.delete(&path_key(&f))?;
                    tracing::info!(topic, partition, key = %f.display(), durable = ck.last, "Removed a part of a flush that never completed");
                }
            }
            self.unswept.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&key);
        }
        Ok(())
    }

    /// Lets the partitions' leases go (the end of a flush, a revocation,
    /// the service's end): the next flush, this instance's or another's,
    /// need not wait for their term. A lease another instance took since is
    /// left as it is (the release is a conditional write).
    pub fn release_partitions(&self, parts: &[(String, i32)]) {
        for (topic, partition) in parts {
            let lease = {
                let mut leases = self.leases.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                leases.remove(&(topic.clone(), *partition))
            };
            if let Some(mut lease) = lease {
                if !lease.was_taken() {
                    self.lease_back(topic, *partition, lease);
                    continue;
                }
                let (lease, r) = self.wait(async move {
                    let r = lease.release().await;
                    (lease, r)
                });
                if let Err(e) = r {
                    tracing::warn!(topic = %topic, partition, error = %e, "Could not let a partition's lease go; the next owner waits for its term");
                }
                self.lease_back(topic, *partition, lease);
            }
        }
    }

    /// Every partition lease this instance holds, let go.
    pub fn release_all(&self) {
        let parts: Vec<(String, i32)> = {
            let leases = self.leases.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            leases.keys().cloned().collect()
        };
        self.release_partitions(&parts);
    }

    /// Writes a flush's frames as raw parts, one PUT each, while this
    /// instance holds the partition's lease. Returns the keys written, also
    /// on failure (beside the error), so that the caller can delete them.
    pub fn write_frames(
        &self,
        generation: u64,
        frames: &[(String, NaiveDate, DataFrame)],
        name: &RawName,
        seq: u64,
        faults: &Faults,
    ) -> Result<Vec<PathBuf>, (Vec<PathBuf>, IngestError)> {
        let mut done: Vec<PathBuf> = Vec::with_capacity(frames.len());
        for (site, date, df) in frames {
            // The part's name carries the lease's generation: no other
            // attempt, this instance's or another's, writes that name.
            let key = raw_key_of(site, *date, name, generation);
            let r = (|| {
                let bytes = parquet_bytes(&mut df.clone())?;
                self.hold_for_a_request(&name.topic, name.partition, generation)?;
                faults.step("write").map_err(|e| IngestError::io(Path::new(&key), e))?;
                // Recorded before the PUT: a PUT that fails may still have
                // been applied.
                self.attempted(&name.topic, name.partition, generation, seq, &key);
                self.put(&key, bytes)
            })();
            match r {
                Ok(()) => done.push(key_path(&key)),
                Err(e) => return Err((done, e)),
            }
        }
        Ok(done)
    }

    fn attempted(&self, topic: &str, partition: i32, generation: u64, seq: u64, key: &str) {
        let mut a = self.attempts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let e = a.entry((topic.to_string(), partition)).or_insert_with(|| Attempt {
            generation,
            seq,
            keys: Vec::new(),
        });
        if e.generation != generation || e.seq != seq {
            // An older attempt's parts not yet swept stay listed.
            e.generation = generation;
            e.seq = seq;
        }
        e.keys.push(key.to_string());
    }

    /// Writes a partition's durable point as the holder of its lease: a
    /// PUT only if the slot is still the one this holder last wrote or read
    /// (a conflict means another instance owns the partition now).
    pub fn write_checkpoint(
        &self,
        generation: u64,
        topic: &str,
        partition: i32,
        ck: &Checkpoint,
        faults: &Faults,
    ) -> Result<(), IngestError> {
        let key = slot_key(topic, partition, ck.seq % 2);
        faults.step("checkpoint write").map_err(|e| IngestError::io(Path::new(&key), e))?;
        let mut lease = self.lease_of(topic, partition);
        // The slot says which generation of the lease wrote it: a holder
        // whose write's answer was lost knows it by that.
        let (bytes, k) = (ck.line_with_generation(Some(generation)).into_bytes(), key.clone());
        let (lease, r) = self.wait(async move {
            let r = match lease.fence().await {
                Ok(g) if g == generation => lease.write(&k, &bytes).await,
                Ok(_) => Err(FenceError::NotHeld(k.clone())),
                Err(e) => Err(e),
            };
            (lease, r)
        });
        self.lease_back(topic, partition, lease);
        match r {
            Ok(_) => {
                let mut a = self.attempts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                a.remove(&(topic.to_string(), partition));
                Ok(())
            }
            Err(FenceError::Store(e)) => Err(err(e)),
            Err(e) => Err(IngestError::Io {
                path: key,
                source: std::io::Error::new(std::io::ErrorKind::WouldBlock, e.to_string()),
            }),
        }
    }

    /// Reads both checkpoint slots of a partition.
    pub fn read_checkpoint(&self, topic: &str, partition: i32) -> Result<CheckpointRead, IngestError> {
        self.read_checkpoint_generations(topic, partition).map(|(r, _)| r)
    }

    /// Both slots, and the lease generation that wrote each (by `seq`).
    fn read_checkpoint_generations(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<(CheckpointRead, HashMap<u64, u64>), IngestError> {
        let mut read = CheckpointRead::default();
        let mut gens = HashMap::new();
        for slot in 0..2 {
            let key = slot_key(topic, partition, slot);
            let Some(bytes) = self.get(&key)? else { continue };
            match std::str::from_utf8(&bytes).ok().and_then(Checkpoint::parse_with_generation) {
                Some((ck, g)) => {
                    if let Some(g) = g {
                        gens.insert(ck.seq, g);
                    }
                    if read.best.is_none_or(|b| ck.seq > b.seq) {
                        read.best = Some(ck);
                    }
                }
                None => read.damaged.push(key_path(&key)),
            }
        }
        Ok((read, gens))
    }

    /// Every partition with a checkpoint.
    pub fn checkpointed_partitions(&self) -> Result<Vec<(String, i32)>, IngestError> {
        let mut out = std::collections::BTreeSet::new();
        for (key, _) in self.list(OFFSETS)? {
            let name = key.rsplit('/').next().unwrap_or("");
            let stem = name.strip_suffix(".0").or_else(|| name.strip_suffix(".1")).unwrap_or(name);
            if let Some((t, p)) = stem.rsplit_once('+') {
                if let Ok(p) = p.parse::<i32>() {
                    out.insert((t.to_string(), p));
                }
            }
        }
        Ok(out.into_iter().collect())
    }

    /// The newest valid checkpoint of every partition.
    pub fn checkpoints(&self) -> Result<BTreeMap<(String, i32), Checkpoint>, IngestError> {
        let mut out = BTreeMap::new();
        for (t, p) in self.checkpointed_partitions()? {
            if let Some(ck) = self.read_checkpoint(&t, p)?.best {
                out.insert((t, p), ck);
            }
        }
        Ok(out)
    }

    /// Every raw part's key with its parsed name; keys under `raw/` whose
    /// names are not raw part names in the second list.
    pub fn raw_parts(&self) -> Result<RawParts, IngestError> {
        let (mut parts, mut foreign) = (Vec::new(), Vec::new());
        for (key, _) in self.list(RAW)? {
            let name = key.rsplit('/').next().unwrap_or("");
            match RawName::parse(name) {
                Some(n) if key.split('/').count() == 4 => parts.push((key_path(&key), n)),
                _ => foreign.push(key_path(&key)),
            }
        }
        Ok((parts, foreign))
    }

    /// The raw parts of one partition.
    pub fn partition_files(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<Vec<(PathBuf, RawName)>, IngestError> {
        Ok(self
            .raw_parts()?
            .0
            .into_iter()
            .filter(|(_, n)| n.topic == topic && n.partition == partition)
            .collect())
    }

    /// The raw parts of flushes beyond the checkpoint (never completed).
    pub fn incomplete_files(
        &self,
        topic: &str,
        partition: i32,
        ck: &Checkpoint,
    ) -> Result<Vec<PathBuf>, IngestError> {
        Ok(self
            .partition_files(topic, partition)?
            .into_iter()
            .filter(|(_, n)| !flush_completed(n, Some(ck)))
            .map(|(p, _)| p)
            .collect())
    }

    /// Moves an object to `quarantine/KEY`, with `KEY.reason` beside it:
    /// a copy, then the original deleted. Returns the new key.
    pub fn quarantine(&self, key: &str, reason: &str) -> Result<PathBuf, IngestError> {
        let dest = format!("{QUARANTINE}/{key}");
        if let Some(bytes) = self.get(key)? {
            self.put(&dest, bytes)?;
        }
        self.put(&format!("{dest}.reason"), super::tiers::quarantine_note(reason).into_bytes())?;
        self.delete(key)?;
        Ok(key_path(&dest))
    }

    /// Deletes every dated folder (and dead-letter object) past its tier's
    /// retention, as [`super::tiers::purge`] does in a folder.
    pub fn purge(&self, retention: &Retention, today: NaiveDate) -> Result<PurgeReport, IngestError> {
        let mut report = PurgeReport::default();
        for tier in [RAW, SUMMARIES, AGGREGATES] {
            let keep_from = today - chrono::Days::new(u64::from(retention.days(tier)));
            for base in [tier.to_string(), format!("{QUARANTINE}/{tier}")] {
                for (date, folder, keys) in dated_groups(&self.list(&base)?) {
                    if date < keep_from {
                        let files = keys.iter().filter(|k| k.ends_with(".parquet")).count() as u64;
                        let (o, f) = (self.objects.clone(), folder);
                        self.wait(async move { o.delete_prefix(&f).await }).map_err(err)?;
                        *report.folders.entry(tier).or_default() += 1;
                        *report.files.entry(tier).or_default() += files;
                    }
                }
            }
        }
        let keep_from = today - chrono::Days::new(u64::from(retention.raw_days));
        for (key, _) in self.list(DEAD_LETTER)? {
            let name = key.rsplit('/').next().unwrap_or("");
            if super::tiers::dead_letter_date(name).is_some_and(|d| d < keep_from) {
                self.delete(&key)?;
                *report.files.entry(DEAD_LETTER).or_default() += 1;
            }
        }
        Ok(report)
    }

    /// Bytes and the oldest record's age of the raw, summaries and
    /// aggregates tiers, as [`super::tiers::tier_stats`].
    pub fn tier_stats(&self, now: chrono::DateTime<chrono::Utc>) -> Result<Vec<TierStats>, IngestError> {
        let mut out = Vec::new();
        for tier in [RAW, SUMMARIES, AGGREGATES] {
            let listed = self.list(tier)?;
            let parquet: Vec<(String, u64)> =
                listed.into_iter().filter(|(k, _)| k.ends_with(".parquet")).collect();
            let bytes = parquet.iter().map(|(_, s)| s).sum();
            let oldest = dated_groups(&parquet).iter().map(|(d, _, _)| *d).min();
            out.push(super::tiers::tier_stats_of(tier, bytes, oldest, now));
        }
        Ok(out)
    }

    /// Makes `dir` (a private local folder) a copy of the objects under
    /// `prefixes`: objects missing or of another size are downloaded
    /// (those under `always`, which change in place, every time; those
    /// under `names_only` are empty files of their names, but `.reason`
    /// notes), and local files no longer in the bucket are removed, so that
    /// a purge of the bucket reaches the copy at the next call. Returns how
    /// many objects were downloaded.
    pub fn mirror(
        &self,
        dir: &Path,
        prefixes: &[&str],
        always: &[&str],
        names_only: &[&str],
    ) -> Result<usize, IngestError> {
        let under = |set: &[&str], key: &str| set.iter().any(|a| key.starts_with(&format!("{a}/")));
        let mut fetched = 0;
        for prefix in prefixes {
            let listed = self.list(prefix)?;
            let keys: std::collections::HashSet<&str> = listed.iter().map(|(k, _)| k.as_str()).collect();
            for (key, size) in &listed {
                let path = dir.join(key);
                if under(names_only, key) && !key.ends_with(".reason") {
                    if !path.exists() {
                        let parent = path.parent().unwrap_or(dir);
                        std::fs::create_dir_all(parent).map_err(|e| IngestError::io(parent, e))?;
                        std::fs::write(&path, b"").map_err(|e| IngestError::io(&path, e))?;
                    }
                    continue;
                }
                let fresh = !under(always, key) && std::fs::metadata(&path).is_ok_and(|m| m.len() == *size);
                if fresh {
                    continue;
                }
                let Some(bytes) = self.get(key)? else { continue };
                let parent = path.parent().unwrap_or(dir);
                std::fs::create_dir_all(parent).map_err(|e| IngestError::io(parent, e))?;
                super::write_private_bytes_atomic(&path, &bytes, super::Durability::Scratch)?;
                fetched += 1;
            }
            for local in local_files(&dir.join(prefix)) {
                let rel = local.strip_prefix(dir).map(path_key).unwrap_or_default();
                if !keys.contains(rel.as_str()) {
                    let _ = std::fs::remove_file(&local);
                }
            }
        }
        Ok(fetched)
    }

    /// Uploads the files under `prefixes` of the local copy `dir` that were
    /// written at or after `since` (what an analysis produced).
    pub fn upload_since(
        &self,
        dir: &Path,
        prefixes: &[&str],
        since: std::time::SystemTime,
    ) -> Result<usize, IngestError> {
        let mut n = 0;
        for prefix in prefixes {
            for local in local_files(&dir.join(prefix)) {
                if std::fs::metadata(&local).and_then(|m| m.modified()).is_ok_and(|m| m >= since) {
                    let key = local.strip_prefix(dir).map(path_key).unwrap_or_default();
                    let bytes = std::fs::read(&local).map_err(|e| IngestError::io(&local, e))?;
                    self.put(&key, bytes)?;
                    n += 1;
                }
            }
        }
        Ok(n)
    }
}

/// The raw parts of a bucket (key, name) and the foreign keys under `raw/`.
pub type RawParts = (Vec<(PathBuf, RawName)>, Vec<PathBuf>);

/// Every file under `dir`, at any depth, but temporaries (`.NAME`).
fn local_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            if e.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Keys grouped by the dated folder they are in (`date=` or `week=`, at
/// any depth): `(date, folder key, keys)`.
fn dated_groups(listed: &[(String, u64)]) -> Vec<(NaiveDate, String, Vec<String>)> {
    let mut groups: BTreeMap<String, (NaiveDate, Vec<String>)> = BTreeMap::new();
    for (key, _) in listed {
        let segs: Vec<&str> = key.split('/').collect();
        if let Some(i) = segs.iter().position(|s| folder_date(s).is_some()) {
            let date = folder_date(segs[i]).expect("checked");
            let folder = segs[..=i].join("/");
            groups.entry(folder).or_insert_with(|| (date, Vec::new())).1.push(key.clone());
        }
    }
    groups.into_iter().map(|(f, (d, k))| (d, f, k)).collect()
}

/// `offsets/TOPIC+PARTITION.SLOT`.
pub fn slot_key(topic: &str, partition: i32, slot: u64) -> String {
    format!("{OFFSETS}/{topic}+{partition}.{slot}")
}

/// `raw/site=S/date=D/NAME.gGENERATION.parquet`: a bucket's raw part, its
/// name unique to the lease generation that wrote it.
pub fn raw_key_of(site: &str, date: NaiveDate, name: &RawName, generation: u64) -> String {
    let file = name.file_name();
    let stem = file.strip_suffix(".parquet").unwrap_or(&file);
    format!("{RAW}/site={site}/date={date}/{stem}.g{generation}.parquet")
}

/// Where the service's store is: a folder, or a bucket. What the consumer
/// does to the store goes through here; file names in a bucket are keys
/// (relative paths), in a folder paths.
#[derive(Debug, Clone)]
pub enum Store {
    /// A folder (one machine, or a network file system with locks).
    Folder(PathBuf),
    /// A bucket of an S3 server.
    Bucket(std::sync::Arc<Bucket>),
}

/// What a flush holds while it moves a partition's durable point: the
/// folder's file lock, or the bucket's lease on the partition. Either is
/// let go when the guard is dropped, at the end of the flush.
pub enum PartitionGuard {
    /// The lock file, released when dropped.
    File(std::fs::File),
    /// The lease (at its generation), marked free when dropped.
    Lease(std::sync::Arc<Bucket>, String, i32, u64),
    /// Nothing held: a folder's write whose caller holds the lock already.
    Unlocked,
}

impl PartitionGuard {
    fn generation(&self) -> u64 {
        match self {
            PartitionGuard::File(_) | PartitionGuard::Unlocked => 0,
            PartitionGuard::Lease(_, _, _, g) => *g,
        }
    }
}

impl Drop for PartitionGuard {
    fn drop(&mut self) {
        if let PartitionGuard::Lease(b, topic, partition, _) = self {
            b.release_partitions(&[(std::mem::take(topic), *partition)]);
        }
    }
}

impl std::fmt::Display for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Store::Folder(p) => write!(f, "{}", p.display()),
            Store::Bucket(b) => write!(f, "{}", b.objects.location()),
        }
    }
}

impl Store {
    /// Opens the store at `path` (a folder, or `s3://BUCKET/PREFIX` with
    /// `s3` completing how to reach it) for the instance `holder`.
    pub fn open(location: &Location, holder: &str) -> Result<Store, IngestError> {
        match location {
            Location::Folder(p) => Ok(Store::Folder(p.clone())),
            Location::S3(s) => Ok(Store::Bucket(std::sync::Arc::new(Bucket::open(s, holder)?))),
        }
    }

    /// The folder, for a folder store.
    pub fn folder(&self) -> Option<&Path> {
        match self {
            Store::Folder(p) => Some(p),
            Store::Bucket(_) => None,
        }
    }

    /// Whether the store itself is gone (a folder removed): no retry helps.
    pub fn gone(&self) -> bool {
        match self {
            Store::Folder(p) => !p.is_dir(),
            Store::Bucket(_) => false,
        }
    }

    /// Both checkpoint slots of a partition, read.
    pub fn read_checkpoint(&self, topic: &str, partition: i32) -> Result<CheckpointRead, IngestError> {
        match self {
            Store::Folder(p) => Ok(super::tiers::read_checkpoint(p, topic, partition)),
            Store::Bucket(b) => b.read_checkpoint(topic, partition),
        }
    }

    /// Writes a partition's durable point, under `guard`.
    pub fn write_checkpoint(
        &self,
        guard: &PartitionGuard,
        topic: &str,
        partition: i32,
        ck: &Checkpoint,
        faults: &Faults,
    ) -> Result<(), IngestError> {
        match self {
            Store::Folder(p) => super::tiers::write_checkpoint(p, topic, partition, ck, faults),
            Store::Bucket(b) => b.write_checkpoint(guard.generation(), topic, partition, ck, faults),
        }
    }

    /// Takes what a flush of the partition holds while it checks and moves
    /// the durable point.
    pub fn lock_partition(&self, topic: &str, partition: i32) -> Result<PartitionGuard, IngestError> {
        match self {
            Store::Folder(p) => super::tiers::lock_partition(p, topic, partition).map(PartitionGuard::File),
            Store::Bucket(b) => b
                .lock_partition(topic, partition)
                .map(|g| PartitionGuard::Lease(b.clone(), topic.to_string(), partition, g)),
        }
    }

    /// Lets the partitions go (a revocation): a bucket's leases are marked
    /// free.
    pub fn release_partitions(&self, parts: &[(String, i32)]) {
        if let Store::Bucket(b) = self {
            b.release_partitions(parts);
        }
    }

    /// Every partition let go (the service's end).
    pub fn release_all(&self) {
        if let Store::Bucket(b) = self {
            b.release_all();
        }
    }

    /// Writes one flush's raw parts, under `guard`, for the checkpoint
    /// `seq` to vouch for.
    pub fn write_frames(
        &self,
        guard: &PartitionGuard,
        frames: &[(String, NaiveDate, DataFrame)],
        name: &RawName,
        seq: u64,
        faults: &Faults,
    ) -> Result<Vec<PathBuf>, (Vec<PathBuf>, IngestError)> {
        match self {
            Store::Folder(p) => super::tiers::write_frames(p, frames, name, faults),
            Store::Bucket(b) => b.write_frames(guard.generation(), frames, name, seq, faults),
        }
    }

    /// A partition was assigned: in a bucket, its incomplete flushes are
    /// removed at its first flush, under the lease; in a folder, by the
    /// caller now, under the file lock.
    pub fn assigned(&self, topic: &str, partition: i32) {
        if let Store::Bucket(b) = self {
            b.assigned(topic, partition);
        }
    }

    /// Removes a file (a path, or a key).
    pub fn remove(&self, path: &Path) -> Result<(), IngestError> {
        match self {
            Store::Folder(_) => std::fs::remove_file(path).map_err(|e| IngestError::io(path, e)),
            Store::Bucket(b) => b.delete(&path_key(path)).map(|_| ()),
        }
    }

    /// Whether a file (a path, or a key) is there.
    pub fn exists(&self, path: &Path) -> Result<bool, IngestError> {
        match self {
            Store::Folder(_) => Ok(path.exists()),
            Store::Bucket(b) => {
                let (o, k) = (b.objects.clone(), path_key(path));
                b.wait(async move { o.exists(&k).await }).map_err(err)
            }
        }
    }

    /// The raw files of one partition.
    pub fn partition_files(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<Vec<(PathBuf, RawName)>, IngestError> {
        match self {
            Store::Folder(p) => Ok(super::tiers::partition_files(p, topic, partition)),
            Store::Bucket(b) => b.partition_files(topic, partition),
        }
    }

    /// The raw files of flushes beyond the checkpoint.
    pub fn incomplete_files(
        &self,
        topic: &str,
        partition: i32,
        ck: &Checkpoint,
    ) -> Result<Vec<PathBuf>, IngestError> {
        match self {
            Store::Folder(p) => Ok(super::tiers::incomplete_files(p, topic, partition, ck)),
            Store::Bucket(b) => b.incomplete_files(topic, partition, ck),
        }
    }

    /// Moves a file to quarantine, with its reason beside it.
    pub fn quarantine(&self, path: &Path, reason: &str) -> Result<PathBuf, IngestError> {
        match self {
            Store::Folder(p) => super::tiers::quarantine(p, path, reason),
            Store::Bucket(b) => b.quarantine(&path_key(path), reason),
        }
    }

    /// Deletes what is past its retention.
    pub fn purge(&self, retention: &Retention, today: NaiveDate) -> Result<PurgeReport, IngestError> {
        match self {
            Store::Folder(p) => super::tiers::purge(p, retention, today),
            Store::Bucket(b) => b.purge(retention, today),
        }
    }

    /// Bytes and oldest record of each tier.
    pub fn tier_stats(&self, now: chrono::DateTime<chrono::Utc>) -> Result<Vec<TierStats>, IngestError> {
        match self {
            Store::Folder(p) => Ok(super::tiers::tier_stats(p, now)),
            Store::Bucket(b) => b.tier_stats(now),
        }
    }
}
