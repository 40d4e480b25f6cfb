//! The Kafka ingestion service's consumer (`vigie ingest --config FILE`,
//! cargo feature `kafka`). The delivery guarantee is written down in
//! docs/design.md; this module follows it.
//!
//! One consumer per process, in a consumer group. Messages go through the
//! same door as files ([`crate::Ingestor`]); accepted events wait in a
//! buffer per partition; a flush makes a partition's buffer durable in the
//! store ([`crate::store`]), then commits. What happens is reported through
//! [`Telemetry`]; the binary counts it for Prometheus and runs the analysis
//! beside this loop.

// Every public item of this module is documented (issue 15, item 9).

pub mod client;
pub mod config;
pub mod deadletter;
pub mod events;
pub mod telemetry;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Statistics};

use crate::event::{Event, Origin};
use crate::pseudo::Pseudonymiser;
use crate::rejects::RejectSink;
use crate::store::{self, config::StoreConfig, Store};
use crate::validate::Clock;
use crate::{CheckedJson, IngestError, Ingestor};
use config::KafkaConfig;
use deadletter::DeadLetter;
use events::{
    BatchDurable, CheckpointDamaged, Emit, Fenced, IncompleteFlushRemoved, PartitionHeld, Quarantined,
    SourceSkipped, SourceWentBackwards, StoreRecovered, StoreRefused,
};
pub use telemetry::Telemetry;

/// One polled message: topic, partition, offset, payload.
pub type Polled<'a> = (&'a str, i32, i64, Option<&'a [u8]>);

/// Most messages taken from one poll and checked together
/// ([`Pipeline::check_batch`]); a rebalance ends a batch early.
const MAX_POLL_BATCH: usize = 1024;

/// Errors that stop the service (exit 1).
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The Kafka client failed (its configuration, the broker).
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    /// The door or the store failed.
    #[error("{0}")]
    Ingest(#[from] IngestError),
    /// The store cannot be written and this will not heal (permission
    /// refused, read-only, its folder gone), or a dead letter was lost.
    #[error("{0}")]
    Store(String),
    /// What the service needs besides the consumer cannot be used (the
    /// analysis's policy or employer's declaration).
    #[error("{0}")]
    Config(String),
}

/// Event ids the door remembers before its duplicate filter starts afresh
/// (about 160 MB).
pub const DEDUP_WINDOW_EVENTS: usize = 10_000_000;

/// A partition's messages since its last flush, and the flush under way.
struct PartBuf {
    /// The incarnation of the partition these offsets belong to.
    epoch: u32,
    /// Sequence of the partition's last checkpoint written.
    seq: u64,
    /// The last offset made durable (-1: none): an offset at or below it,
    /// or below one already buffered, means the source went backwards.
    durable_last: i64,
    events: Vec<Event>,
    /// The (site, local date) folders the buffered events fall in: one
    /// file each at the flush.
    folders: HashSet<(Arc<str>, chrono::NaiveDate)>,
    /// Offsets of the first and last message buffered (None: empty).
    range: Option<(i64, i64)>,
    /// Fingerprint of the last message buffered.
    last_fp: u64,
    /// When the first message of the buffer arrived, on tokio's clock (a
    /// test may pause and advance it).
    since: Option<tokio::time::Instant>,
    /// A flush that has not completed yet: retried as it is (the same
    /// files, the same names) before anything newer is flushed.
    pending: Option<Pending>,
}

struct Pending {
    frames: Vec<(String, chrono::NaiveDate, polars::prelude::DataFrame)>,
    first: i64,
    last: i64,
    fp: u64,
}

impl PartBuf {
    fn new(ck: Option<&store::Checkpoint>) -> PartBuf {
        PartBuf {
            epoch: ck.map_or(0, |c| c.epoch),
            seq: ck.map_or(0, |c| c.seq),
            durable_last: ck.map_or(-1, |c| c.last),
            events: Vec::new(),
            folders: HashSet::new(),
            range: None,
            last_fp: 0,
            since: None,
            pending: None,
        }
    }

    fn has_data(&self) -> bool {
        self.range.is_some() || self.pending.is_some()
    }
}

/// Why a flush did not complete.
#[derive(Debug)]
pub enum FlushError {
    /// The store cannot be written now but may heal (a full disk, an I/O
    /// error): the flush is kept and retried; consumption pauses.
    Retryable(String),
    /// It cannot heal (permission refused, read-only or vanished store, a
    /// dead letter lost): the service stops; nothing past the durable point
    /// was committed.
    Fatal(String),
}

impl std::fmt::Display for FlushError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FlushError::Retryable(m) | FlushError::Fatal(m) => f.write_str(m),
        }
    }
}

/// Whether a store error can heal by itself.
fn classify(root: &Store, e: &IngestError, context: String) -> FlushError {
    let msg = format!("{context}: {e}");
    match e {
        IngestError::Io { source, .. } => {
            use std::io::ErrorKind::*;
            if root.gone() {
                FlushError::Fatal(format!("{msg} (the store {root} is gone)"))
            } else if matches!(source.kind(), PermissionDenied | ReadOnlyFilesystem) {
                FlushError::Fatal(msg)
            } else {
                FlushError::Retryable(msg)
            }
        }
        // The dead-letter topic lost a record: only a replay brings it back.
        IngestError::DeadLetter(_) | IngestError::Durability(_) => FlushError::Fatal(msg),
        // Not a store error; no retry would change it.
        IngestError::Input(_) | IngestError::Key(_) => FlushError::Fatal(msg),
        IngestError::Polars(_) => FlushError::Retryable(msg),
    }
}

/// What the source looks like for one partition at assignment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SourceView {
    /// The group's committed offset.
    pub committed: Option<i64>,
    /// The partition's low and high watermarks.
    pub low: Option<i64>,
    /// The partition's high watermark (the next offset to be written).
    pub high: Option<i64>,
    /// The record read at the checkpoint's last offset, when it could be
    /// read: that offset and the record's fingerprint. The checkpoint is
    /// read again when the partition is assigned; a probe of another
    /// offset (the checkpoint moved in between) says nothing.
    pub fingerprint_at: Option<(i64, u64)>,
}

/// Where an assigned partition starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// At this offset.
    At(i64),
    /// The earliest offset the source holds.
    Beginning,
    /// Not consumed: the source was reset and `on_source_reset = "stop"`.
    Held,
}

/// The store's state as the loop sees it.
struct StoreState {
    writable: bool,
    failures: u32,
    next_attempt: Option<tokio::time::Instant>,
}

/// Everything the loop and the rebalance callback share.
pub struct Pipeline {
    root: Store,
    door: Ingestor<Vec<Event>, DeadLetter>,
    /// Partitions to seek after a fence: (topic, partition, offset).
    reseeks: Vec<(Arc<str>, i32, i64)>,
    /// Topics read through a mapping (`kafka.mappings`).
    mappers: HashMap<Arc<str>, crate::mapping::Mapper>,
    parts: HashMap<(Arc<str>, i32), PartBuf>,
    telemetry: Arc<dyn Telemetry>,
    max_retries: u32,
    max_backoff: Duration,
    skew_s: f64,
    raw_retention_days: u32,
    on_reset: config::OnSourceReset,
    faults: store::Faults,
    state: StoreState,
    /// Partitions held back after a source reset.
    held: std::collections::HashSet<(Arc<str>, i32)>,
    /// Partitions this instance gave up (revoked) and has not been given
    /// again: a message of theirs that arrives late (fetched before the
    /// revocation) is not this instance's to store. The new owner reads it
    /// from the committed offset.
    released: HashSet<(Arc<str>, i32)>,
    /// Set when the service must stop (an error that cannot heal).
    pub fatal: Option<String>,
}

impl Pipeline {
    /// A pipeline over the store `root` (configured by `stored`), for the
    /// service and its tests.
    pub fn new(
        kafka: &KafkaConfig,
        root: Store,
        stored: &StoreConfig,
        door: Ingestor<Vec<Event>, DeadLetter>,
        telemetry: Arc<dyn Telemetry>,
        faults: store::Faults,
    ) -> Pipeline {
        Pipeline {
            root,
            door,
            reseeks: Vec::new(),
            mappers: kafka
                .loaded_mappings
                .iter()
                .map(|(t, (m, _))| (Arc::from(t.as_str()), crate::mapping::Mapper::new(m.clone())))
                .collect(),
            parts: HashMap::new(),
            telemetry,
            max_retries: kafka.max_write_retries,
            max_backoff: kafka.max_retry_backoff(),
            skew_s: kafka.clock_skew_s as f64,
            raw_retention_days: stored.raw_retention_days,
            on_reset: kafka.on_source_reset,
            faults,
            state: StoreState { writable: true, failures: 0, next_attempt: None },
            held: Default::default(),
            released: HashSet::new(),
            fatal: None,
        }
    }

    /// The store.
    pub fn root(&self) -> &Store {
        &self.root
    }

    /// Whether the store takes writes (false while a flush waits to be
    /// retried: consumption is paused).
    pub fn writable(&self) -> bool {
        self.state.writable
    }

    fn part(&mut self, topic: &Arc<str>, partition: i32) -> &mut PartBuf {
        let root = &self.root;
        self.parts.entry((topic.clone(), partition)).or_insert_with(|| {
            // A partition is read only once assigned, and assignment reads
            // its checkpoint: this is a fallback.
            let read = root.read_checkpoint(topic, partition).unwrap_or_default();
            PartBuf::new(read.best.as_ref())
        })
    }

    /// Takes one message through the door into its partition's buffer.
    pub fn offer(
        &mut self,
        topic: &Arc<str>,
        partition: i32,
        offset: i64,
        payload: Option<&[u8]>,
    ) -> Result<(), IngestError> {
        self.offer_checked(topic, partition, offset, payload, None)
    }

    /// Checks the messages of one poll on the machine's cores
    /// ([`Ingestor::check_json_batch`]): one result per message, `None`
    /// for a topic read through a mapping (its messages take the mapped
    /// path in [`Self::offer_checked`]).
    pub fn check_batch(&mut self, msgs: &[(&str, Option<&[u8]>)]) -> Vec<Option<CheckedJson>> {
        self.door.set_clock(Some(Clock::now(self.skew_s).with_retention(self.raw_retention_days)));
        let plain: Vec<&[u8]> = msgs
            .iter()
            .filter(|(t, _)| !self.mappers.contains_key(*t))
            .map(|(_, p)| p.unwrap_or(b""))
            .collect();
        let mut checked = self.door.check_json_batch(&plain).into_iter();
        msgs.iter().map(|(t, _)| if self.mappers.contains_key(*t) { None } else { checked.next() }).collect()
    }

    /// The messages of one poll, in order: checked together, then each
    /// offered, its partition flushed when its buffer is full. A partition
    /// fenced by one of those flushes (another instance stored past this
    /// one's durable point) is not offered the rest of the batch: it is
    /// read again from the other's durable point once the loop seeks it,
    /// as librdkafka drops the messages fetched before a seek.
    pub fn offer_batch(
        &mut self,
        msgs: &[Polled<'_>],
        max_events: usize,
        max_folders: usize,
        commit: &dyn Fn(&TopicPartitionList) -> KafkaResult<()>,
    ) -> Result<(), IngestError> {
        let texts: Vec<(&str, Option<&[u8]>)> = msgs.iter().map(|m| (m.0, m.3)).collect();
        let checked = self.check_batch(&texts);
        for (&(topic, partition, offset, payload), c) in msgs.iter().zip(checked) {
            if self.awaits_reseek(topic, partition) {
                continue;
            }
            let topic: Arc<str> = Arc::from(topic);
            self.offer_checked(&topic, partition, offset, payload, c)?;
            if self.writable() && self.batch_full(&topic, partition, max_events, max_folders) {
                self.flush_some(&[(topic.clone(), partition)], commit);
            }
        }
        Ok(())
    }

    /// [`Self::offer`], with the message's result from
    /// [`Self::check_batch`] when it has one.
    pub fn offer_checked(
        &mut self,
        topic: &Arc<str>,
        partition: i32,
        offset: i64,
        payload: Option<&[u8]>,
        checked: Option<CheckedJson>,
    ) -> Result<(), IngestError> {
        if self.held.contains(&(topic.clone(), partition)) {
            // Held after a reset (on_source_reset = "stop"): not read.
            return Ok(());
        }
        if self.released.contains(&(topic.clone(), partition)) {
            // Revoked: another instance owns it now (a stale message must
            // not reopen a buffer here, nor look like the source going
            // backwards).
            tracing::debug!(topic = %topic, partition, offset, "A message of a revoked partition, left to its new owner");
            return Ok(());
        }
        let buf = self.part(topic, partition);
        let newest =
            buf.range.map(|r| r.1).or(buf.pending.as_ref().map(|p| p.last)).unwrap_or(buf.durable_last);
        if offset <= newest {
            self.rewound(topic, partition, offset, newest)?;
            if self.held.contains(&(topic.clone(), partition)) {
                return Ok(());
            }
        }
        let origin = || Origin::Kafka { topic: topic.clone(), partition, offset };
        self.door.set_clock(Some(Clock::now(self.skew_s).with_retention(self.raw_retention_days)));
        let epoch = self.part(topic, partition).epoch;
        self.door.rejects.set_epoch(epoch);
        let bytes = payload.unwrap_or(b"");
        match self.mappers.get_mut(topic) {
            Some(mapper) => {
                let skipped = mapper.stats.unmapped_codes.values().sum::<u64>();
                self.door.offer_json_mapped(bytes, mapper, origin)?;
                let now = mapper.stats.unmapped_codes.values().sum::<u64>();
                if now > skipped {
                    self.telemetry.unmapped(topic, now - skipped);
                }
            }
            None => match checked {
                Some(c) => self.door.offer_json_checked(bytes, c, origin)?,
                None => self.door.offer_json(bytes, origin)?,
            },
        }
        let mut accepted = std::mem::take(&mut self.door.sink);
        let buf = self.part(topic, partition);
        for e in &accepted {
            buf.folders.insert((e.site.clone(), store::local_date(e)));
        }
        buf.events.append(&mut accepted);
        buf.range = Some(match buf.range {
            Some((first, _)) => (first, offset),
            None => (offset, offset),
        });
        buf.last_fp = store::fingerprint(bytes);
        buf.since.get_or_insert_with(tokio::time::Instant::now);
        self.door.sink = accepted;
        Ok(())
    }

    /// The source handed an offset at or below one already taken: it went
    /// backwards while vigie was reading it (a broker that lost its state,
    /// a topic recreated, an offset out of range reset by the client). What
    /// was read before is made durable under the old epoch, then a new
    /// epoch begins at `offset` (or the partition is held, with
    /// `on_source_reset = "stop"`). When the old data cannot be made
    /// durable, the service stops: nothing past the durable point was
    /// committed.
    fn rewound(
        &mut self,
        topic: &Arc<str>,
        partition: i32,
        offset: i64,
        newest: i64,
    ) -> Result<(), IngestError> {
        SourceWentBackwards {
            topic,
            partition,
            detail: format!("while being read, offset {offset} after {newest}"),
            policy: self.on_reset,
        }
        .emit(&*self.telemetry);
        let no_commit = |_: &TopicPartitionList| Ok(());
        for _ in 0..2 {
            self.flush(topic, partition, &no_commit).map_err(|e| {
                IngestError::Durability(format!(
                    "{topic}/{partition} went backwards and what was read before cannot be made durable: {e}"
                ))
            })?;
        }
        if self.on_reset == config::OnSourceReset::Stop {
            if self.held.insert((topic.clone(), partition)) {
                PartitionHeld { topic, partition, held: true }.emit(&*self.telemetry);
            }
            return Ok(());
        }
        let buf = self.part(topic, partition);
        let current =
            store::Checkpoint { seq: buf.seq, epoch: buf.epoch, last: buf.durable_last, fingerprint: None };
        self.begin_epoch(topic, partition, &current, offset);
        self.forget_unstored();
        Ok(())
    }

    /// Starts the epoch after `current`'s at offset `from`: its checkpoint
    /// is written (best effort: without it a restart detects the reset
    /// again) and the partition's buffer starts afresh. Returns the new
    /// checkpoint.
    fn begin_epoch(
        &mut self,
        topic: &Arc<str>,
        partition: i32,
        current: &store::Checkpoint,
        from: i64,
    ) -> store::Checkpoint {
        let next = store::Checkpoint {
            seq: current.seq + 1,
            epoch: current.epoch + 1,
            last: from - 1,
            fingerprint: None,
        };
        // In a bucket, under the partition's lease (let go at the end);
        // in a folder the caller may hold the partition's lock already.
        let guard = match &self.root {
            Store::Folder(_) => Ok(store::PartitionGuard::Unlocked),
            Store::Bucket(_) => self.root.lock_partition(topic, partition),
        };
        let written =
            guard.and_then(|g| self.root.write_checkpoint(&g, topic, partition, &next, &self.faults));
        if let Err(e) = written {
            tracing::warn!(error = %e, "Could not record the new incarnation yet");
        }
        self.parts.insert((topic.clone(), partition), PartBuf::new(Some(&next)));
        next
    }

    /// Refused records the local dead-letter store counted but did not keep
    /// (its daily cap).
    pub fn dead_letters_not_kept(&self) -> u64 {
        self.door.rejects.not_kept()
    }

    /// Partitions held back after a source reset.
    pub fn held(&self) -> Vec<(Arc<str>, i32)> {
        self.held.iter().cloned().collect()
    }

    /// Whether a partition's buffer is due by size: `max_events` messages,
    /// or events spanning `max_folders` (site, date) folders (counted: a
    /// flood of sites or dates makes smaller flushes, never one file per
    /// folder without bound).
    pub fn batch_full(
        &self,
        topic: &Arc<str>,
        partition: i32,
        max_events: usize,
        max_folders: usize,
    ) -> bool {
        let Some(b) = self.parts.get(&(topic.clone(), partition)) else { return false };
        if b.events.len() >= max_events {
            return true;
        }
        if b.folders.len() >= max_folders {
            self.telemetry.folder_capped_flush();
            return true;
        }
        false
    }

    /// Events buffered for a partition (not yet flushed).
    pub fn buffered(&self, topic: &str, partition: i32) -> usize {
        self.parts
            .iter()
            .filter(|((t, p), _)| t.as_ref() == topic && *p == partition)
            .map(|(_, b)| b.events.len())
            .sum()
    }

    fn due(&self, max_events: usize, interval: Duration) -> Vec<(Arc<str>, i32)> {
        self.parts
            .iter()
            .filter(|(_, b)| {
                b.pending.is_some()
                    || (b.range.is_some()
                        && (b.events.len() >= max_events || b.since.is_some_and(|s| s.elapsed() >= interval)))
            })
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Makes one partition's buffer durable, then commits it with
    /// `commit` (docs/design.md, "One flush"):
    /// 1. the buffer becomes the pending flush (kept until it completes);
    /// 2. its files are written under temporary names, fsynced, renamed;
    /// 3. the dead letters are made durable;
    /// 4. the checkpoint is written: from here on the flush is durable;
    /// 5. the offset after it is committed (a failed commit is logged:
    ///    the checkpoint holds the durable point).
    ///
    /// On failure the files this attempt renamed are removed again, the
    /// pending flush stays, and the error says whether it can heal.
    pub fn flush(
        &mut self,
        topic: &Arc<str>,
        partition: i32,
        commit: &dyn Fn(&TopicPartitionList) -> KafkaResult<()>,
    ) -> Result<(), FlushError> {
        let root = self.root.clone();
        let buf = self.part(topic, partition);
        if buf.pending.is_none() {
            let Some((first, last)) = buf.range.take() else { return Ok(()) };
            buf.since = None;
            buf.folders.clear();
            let events = std::mem::take(&mut buf.events);
            let frames = match store::batch_frames(events) {
                Ok(f) => f,
                Err(e) => {
                    // The buffer is gone: nothing may be committed past it.
                    // The service stops; the next start reads it again.
                    let m = format!("{topic}/{partition} offsets {first}-{last}: {e}");
                    self.fatal.get_or_insert(m.clone());
                    return Err(FlushError::Fatal(m));
                }
            };
            buf.pending = Some(Pending { frames, first, last, fp: buf.last_fp });
        }
        let (epoch, seq) = (buf.epoch, buf.seq);
        // The fence: under the partition's lock, the durable point must
        // still be the one this instance last wrote or read. If another
        // instance moved it, the partition went to it while this one was
        // not yet told (a session that timed out): what is buffered here
        // is dropped, never written over the other's files.
        let lock = match root.lock_partition(topic, partition) {
            Ok(l) => l,
            Err(e) => {
                self.telemetry.store_write_failure("flush");
                return Err(classify(&root, &e, format!("{topic}/{partition}: the partition's lock")));
            }
        };
        let read = match root.read_checkpoint(topic, partition) {
            Ok(r) => r,
            Err(e) => {
                self.telemetry.store_write_failure("flush");
                return Err(classify(&root, &e, format!("{topic}/{partition}: the checkpoint")));
            }
        };
        if let Some(theirs) = read.best.filter(|c| c.seq > seq) {
            self.fenced(topic, partition, theirs);
            return Ok(());
        }
        let buf = self.part(topic, partition);
        let pending = buf.pending.take().expect("set above");
        let (first, last, fp) = (pending.first, pending.last, pending.fp);
        let name = store::RawName { topic: topic.to_string(), epoch, partition, first, last };
        let started = Instant::now();
        let ck = store::Checkpoint { seq: seq + 1, epoch, last, fingerprint: Some(fp) };
        let result = match root.write_frames(&lock, &pending.frames, &name, seq + 1, &self.faults) {
            Err((renamed, e)) => {
                // Not every file is in place, so no checkpoint names them:
                // the ones renamed go again (they free the room they took;
                // a retry writes them again, a restart reads them again).
                for f in renamed {
                    let _ = root.remove(&f);
                }
                Err(e)
            }
            // Every file is in place. From here a failure keeps them: the
            // checkpoint may already name them (its rename done, its
            // folder's fsync failed); a retry rewrites them under the same
            // names, and a restart removes them if no checkpoint does.
            Ok(_) => self
                .faults
                .step("dead letters")
                .map_err(|e| IngestError::io(Path::new(store::DEAD_LETTER), e))
                .and_then(|()| self.door.rejects.flush())
                .and_then(|()| root.write_checkpoint(&lock, topic, partition, &ck, &self.faults)),
        };
        if let Err(e) = result {
            self.part(topic, partition).pending = Some(pending);
            self.telemetry.store_write_failure("flush");
            return Err(classify(&root, &e, format!("{topic}/{partition} offsets {first}-{last}")));
        }
        drop(pending);
        drop(lock);
        let buf = self.part(topic, partition);
        buf.seq += 1;
        buf.durable_last = last;
        BatchDurable { topic, partition, first, last, took: started.elapsed() }.emit(&*self.telemetry);
        let mut tpl = TopicPartitionList::new();
        if let Err(e) = tpl.add_partition_offset(topic, partition, Offset::Offset(last + 1)) {
            tracing::warn!(error = %e, "Could not build the commit");
        } else if let Err(e) = commit(&tpl) {
            tracing::warn!(topic = %topic, partition, offset = last + 1, error = %e, "Commit failed; the store's checkpoint holds the durable point");
        }
        self.telemetry.ingested(&self.door.stats);
        // The duplicate filter holds 16 bytes an event: past this many ids
        // it starts afresh, and the analysis drops older repeats.
        if self.door.seen_len() > DEDUP_WINDOW_EVENTS {
            self.door.forget_seen();
        }
        Ok(())
    }

    /// Another instance moved this partition's durable point: the buffer
    /// is dropped (nothing of it was committed), the partition starts again
    /// from the other's checkpoint, and the consumer is asked to read from
    /// just after it (`take_reseeks`), so that nothing is stored twice and
    /// nothing between the two is skipped.
    fn fenced(&mut self, topic: &Arc<str>, partition: i32, theirs: store::Checkpoint) {
        let mine = self.parts.get(&(topic.clone(), partition)).map(|b| (b.seq, b.durable_last));
        Fenced { topic, partition, mine, theirs_seq: theirs.seq, theirs_last: theirs.last }
            .emit(&*self.telemetry);
        self.parts.insert((topic.clone(), partition), PartBuf::new(Some(&theirs)));
        self.forget_unstored();
        self.reseeks.push((topic.clone(), partition, theirs.last + 1));
    }

    /// Whether the partition was fenced and waits for the consumer loop
    /// to seek it (`take_reseeks`): the messages of it already fetched are
    /// left, as librdkafka drops those fetched before a seek.
    pub fn awaits_reseek(&self, topic: &str, partition: i32) -> bool {
        self.reseeks.iter().any(|(t, p, _)| t.as_ref() == topic && *p == partition)
    }

    /// A partition whose assignment was lost (another member may own it
    /// already): its buffer is dropped, uncommitted, and a message of it
    /// that arrives late is left to the new owner, as after a revocation.
    pub fn release_lost(&mut self, topic: &Arc<str>, partition: i32) {
        self.drop_unstored(topic, partition);
        self.released.insert((topic.clone(), partition));
        // Only if still this instance's (a conditional write).
        self.root.release_partitions(&[(topic.to_string(), partition)]);
    }

    /// Partitions to read again from an offset after a fence (see
    /// `fenced`), for the consumer loop to seek; those released since are
    /// left out.
    pub fn take_reseeks(&mut self) -> Vec<(Arc<str>, i32, i64)> {
        let all = std::mem::take(&mut self.reseeks);
        all.into_iter().filter(|(t, p, _)| !self.released.contains(&(t.clone(), *p))).collect()
    }

    /// Flushes the given partitions; on the first error that can heal, the
    /// store becomes unwritable (the caller pauses consumption) and the
    /// rest wait for the next attempt. An error that cannot heal is kept in
    /// `fatal` after `max_retries` attempts.
    pub fn flush_some(
        &mut self,
        keys: &[(Arc<str>, i32)],
        commit: &dyn Fn(&TopicPartitionList) -> KafkaResult<()>,
    ) {
        for (topic, partition) in keys {
            match self.flush(topic, *partition, commit) {
                Ok(()) => {}
                Err(e) => {
                    self.failed(e);
                    return;
                }
            }
        }
        if !self.state.writable {
            StoreRecovered { after_failures: self.state.failures }.emit(&*self.telemetry);
        }
        self.state = StoreState { writable: true, failures: 0, next_attempt: None };
    }

    fn failed(&mut self, e: FlushError) {
        self.state.failures += 1;
        let n = self.state.failures;
        let backoff = Duration::from_millis(100u64 << n.min(10)).min(self.max_backoff);
        let stopping = matches!(e, FlushError::Fatal(_) if n >= self.max_retries);
        let (FlushError::Fatal(m) | FlushError::Retryable(m)) = e;
        StoreRefused { error: &m, attempt: n, first: self.state.writable, stopping, retry_in: backoff }
            .emit(&*self.telemetry);
        if stopping {
            self.fatal.get_or_insert(m);
        }
        self.state.writable = false;
        self.state.next_attempt = Some(tokio::time::Instant::now() + backoff);
    }

    /// Flushes what is due; while the store is not writable, every
    /// partition with data once the back-off has passed (pending flushes
    /// first: nothing newer is made durable before them).
    pub fn flush_due(
        &mut self,
        max_events: usize,
        interval: Duration,
        commit: &dyn Fn(&TopicPartitionList) -> KafkaResult<()>,
    ) {
        self.door.tick_reject_log();
        if self.state.writable {
            let keys = self.due(max_events, interval);
            if !keys.is_empty() {
                self.flush_some(&keys, commit);
            }
            return;
        }
        if self.state.next_attempt.is_some_and(|t| tokio::time::Instant::now() < t) {
            return;
        }
        let mut keys: Vec<_> =
            self.parts.iter().filter(|(_, b)| b.has_data()).map(|(k, _)| k.clone()).collect();
        keys.sort_by_key(|k| self.parts[k].pending.is_none());
        self.flush_some(&keys, commit);
    }

    /// Flushes the partitions of `tpl` (all when None), once each, and
    /// forgets them. What cannot be flushed is dropped uncommitted: the next
    /// owner (or the next start) reads it again.
    pub fn flush_and_release(
        &mut self,
        which: Option<&TopicPartitionList>,
        commit: &dyn Fn(&TopicPartitionList) -> KafkaResult<()>,
    ) {
        let keys: Vec<(Arc<str>, i32)> = match which {
            Some(tpl) => tpl.elements().iter().map(|e| (Arc::from(e.topic()), e.partition())).collect(),
            None => self.parts.keys().cloned().collect(),
        };
        for (topic, partition) in keys {
            // The pending flush first, then what was buffered after it.
            let mut result = self.flush(&topic, partition, commit);
            if result.is_ok() && self.parts.get(&(topic.clone(), partition)).is_some_and(PartBuf::has_data) {
                result = self.flush(&topic, partition, commit);
            }
            if let Err(e) = result {
                tracing::error!(error = %e, "A partition's buffer could not be made durable: not committed, it will be read again");
                if let FlushError::Fatal(m) = e {
                    self.fatal.get_or_insert(m);
                }
                self.forget_unstored();
            }
            self.parts.remove(&(topic.clone(), partition));
            self.released.insert((topic.clone(), partition));
            // A bucket's partition lease is let go: the next owner need
            // not wait for its term.
            self.root.release_partitions(&[(topic.to_string(), partition)]);
            if self.held.remove(&(topic.clone(), partition)) {
                PartitionHeld { topic: &topic, partition, held: false }.emit(&*self.telemetry);
            }
        }
    }

    /// Drops buffered events that were never made durable (a lost
    /// assignment). Their ids leave the duplicate filter too, so that the
    /// records are accepted when they are read again.
    pub fn drop_unstored(&mut self, topic: &Arc<str>, partition: i32) {
        if self.parts.remove(&(topic.clone(), partition)).is_some_and(|b| b.has_data()) {
            self.forget_unstored();
        }
    }

    /// The duplicate filter may hold ids of events that were never stored:
    /// it starts afresh (the analysis still drops repeated ids).
    fn forget_unstored(&mut self) {
        self.door.forget_seen();
    }

    /// Decides where an assigned partition starts, after removing what an
    /// incomplete flush left (docs/design.md, "Where offsets live" and "A
    /// source that goes backwards").
    pub fn assign(&mut self, topic: &Arc<str>, partition: i32, view: SourceView) -> Start {
        self.released.remove(&(topic.clone(), partition));
        // In a folder, the partition's lock is held while its checkpoint is
        // read and an incomplete flush removed: a previous owner still
        // finishing a flush (not yet told it lost the partition) ends it
        // first. In a bucket that removal waits for the partition's first
        // flush, under its lease.
        let _lock = match &self.root {
            Store::Folder(_) => self.root.lock_partition(topic, partition).ok(),
            Store::Bucket(_) => {
                self.root.assigned(topic, partition);
                None
            }
        };
        // A store that does not answer (a bucket out of reach) is asked
        // again for a few seconds before the partition is held.
        let mut tries = 0;
        let read = loop {
            match self.root.read_checkpoint(topic, partition) {
                Err(e) if tries < 4 => {
                    tries += 1;
                    tracing::warn!(topic = %topic, partition, error = %e, "Could not read the partition's checkpoint; trying again");
                    std::thread::sleep(Duration::from_secs(1));
                }
                other => break other,
            }
        };
        let read = match read {
            Ok(r) => r,
            Err(e) => return self.hold_unreadable(topic, partition, &e),
        };
        for path in &read.damaged {
            CheckpointDamaged { path }.emit(&*self.telemetry);
        }
        self.drop_unstored(topic, partition);
        let Some(ck) = read.best else {
            return self.assign_without_checkpoint(topic, partition, view, !read.damaged.is_empty());
        };
        // (A folder's; a bucket's go at the first flush, under its lease.)
        let removed = match &self.root {
            Store::Folder(_) => match self.root.incomplete_files(topic, partition, &ck) {
                Ok(f) => f,
                Err(e) => return self.hold_unreadable(topic, partition, &e),
            },
            Store::Bucket(_) => Vec::new(),
        };
        let mut gone = 0;
        for f in &removed {
            match self.root.remove(f) {
                Ok(()) => gone += 1,
                Err(e) => {
                    tracing::error!(path = %f.display(), error = %e, "Could not remove a file of an incomplete flush");
                }
            }
        }
        if gone > 0 {
            IncompleteFlushRemoved { topic, partition, files: gone, durable: ck.last }.emit(&*self.telemetry);
        }
        let resume = ck.last + 1;
        let reset = if let Some(high) = view.high.filter(|h| *h < resume) {
            Some(format!("the store holds offsets up to {} but the partition ends at {high}", ck.last))
        } else if let (Some(want), Some((_, got))) =
            (ck.fingerprint, view.fingerprint_at.filter(|(at, _)| *at == ck.last))
        {
            (want != got).then(|| format!("the record now at offset {} is not the one stored there", ck.last))
        } else {
            None
        };
        if let Some(why) = reset {
            let detail =
                format!("{why} (low {:?}, high {:?}, committed {:?})", view.low, view.high, view.committed);
            SourceWentBackwards { topic, partition, detail, policy: self.on_reset }.emit(&*self.telemetry);
            if self.on_reset == config::OnSourceReset::Stop {
                if self.held.insert((topic.clone(), partition)) {
                    PartitionHeld { topic, partition, held: true }.emit(&*self.telemetry);
                }
                return Start::Held;
            }
            // A new incarnation: new file names, read from its first offset.
            let start = view.low.unwrap_or(0);
            let next = self.begin_epoch(topic, partition, &ck, start);
            tracing::warn!(topic = %topic, partition, epoch = next.epoch, from = start, "Reading the new incarnation from its earliest offset; repeated event ids are dropped");
            return view.low.map_or(Start::Beginning, Start::At);
        }
        match view.committed {
            None => {
                tracing::warn!(topic = %topic, partition, from = resume, "The group has no committed offset (new group, or its offsets were deleted): starting from the store's durable point");
            }
            Some(c) if c > resume => {
                tracing::info!(topic = %topic, partition, committed = c, from = resume, "The group's commit is ahead of the store: reading again from the store's durable point");
            }
            Some(_) => {}
        }
        self.parts.insert((topic.clone(), partition), PartBuf::new(Some(&ck)));
        if let Some(low) = view.low.filter(|l| *l > resume) {
            SourceSkipped { topic, partition, from: resume, low }.emit(&*self.telemetry);
            return Start::At(low);
        }
        tracing::info!(topic = %topic, partition, kafka = ?view.committed, stored = ?Some(resume), epoch = ck.epoch, "Partition assigned");
        Start::At(resume)
    }

    /// Without the durable point (or the partition's files) nothing can be
    /// stored safely: the partition waits, paused, for the next assignment.
    fn hold_unreadable(&mut self, topic: &Arc<str>, partition: i32, e: &IngestError) -> Start {
        tracing::error!(topic = %topic, partition, error = %e, "The store cannot be read: the partition is held");
        self.drop_unstored(topic, partition);
        if self.held.insert((topic.clone(), partition)) {
            PartitionHeld { topic, partition, held: true }.emit(&*self.telemetry);
        }
        Start::Held
    }

    /// No usable checkpoint: a new store, a crash before the partition's
    /// first checkpoint, or every slot damaged. Only the group's commit is
    /// known complete; raw files from there on cannot be trusted to be
    /// whole flushes and go to quarantine (their records are read again).
    fn assign_without_checkpoint(
        &mut self,
        topic: &Arc<str>,
        partition: i32,
        view: SourceView,
        damaged: bool,
    ) -> Start {
        let files = match self.root.partition_files(topic, partition) {
            Ok(f) => f,
            Err(e) => return self.hold_unreadable(topic, partition, &e),
        };
        let epoch = files.iter().map(|(_, n)| n.epoch).max().unwrap_or(0);
        let from = view.committed.or(view.low).unwrap_or(0);
        let mut moved = 0;
        for (path, n) in &files {
            if n.epoch == epoch && n.first >= from {
                match self.root.quarantine(path, "unverified_flush") {
                    Ok(_) => moved += 1,
                    Err(e) => {
                        tracing::error!(path = %path.display(), error = %e, "Could not quarantine a file");
                    }
                }
            }
        }
        if moved > 0 {
            let why = format!(
                "no checkpoint vouches for these raw files of {topic}/{partition} from offset {from}{}; their records are read again",
                if damaged { " (every checkpoint slot damaged)" } else { "" }
            );
            Quarantined { tier: "raw", reason: "unverified_flush", files: moved, why: &why }
                .emit(&*self.telemetry);
        }
        // Files kept that reach past `from` (a flush across it): start after
        // them, so that nothing is stored twice.
        let mut kept = Vec::new();
        for (p, n) in files.iter().filter(|(_, n)| n.epoch == epoch && n.first < from) {
            match self.root.exists(p) {
                Ok(true) => kept.push(n.last + 1),
                Ok(false) => {}
                Err(e) => return self.hold_unreadable(topic, partition, &e),
            }
        }
        let after_kept = kept.into_iter().max().filter(|a| *a > from);
        let mut buf = PartBuf::new(None);
        buf.epoch = epoch;
        buf.durable_last = after_kept.unwrap_or(from) - 1;
        self.parts.insert((topic.clone(), partition), buf);
        match (view.committed, after_kept) {
            (_, Some(a)) => {
                tracing::info!(topic = %topic, partition, kafka = ?view.committed, stored = a - 1, "Partition assigned");
                Start::At(a)
            }
            (Some(c), None) => {
                tracing::info!(topic = %topic, partition, kafka = c, stored = ?None::<i64>, "Partition assigned");
                Start::At(c)
            }
            (None, None) => {
                tracing::info!(topic = %topic, partition, "No durable point in the store nor in the group: starting from the earliest offset");
                Start::Beginning
            }
        }
    }
}

/// The consumer's context: rebalances and statistics.
pub struct Ctx {
    pipeline: Arc<Mutex<Pipeline>>,
    root: Store,
    telemetry: Arc<dyn Telemetry>,
    lag_labels: Mutex<std::collections::HashSet<(String, String)>>,
    /// A client configuration to read the source outside the group.
    probe: ClientConfig,
    /// Rebalance callbacks run so far: the loop stops gathering a poll's
    /// messages at the first one (see `MAX_POLL_BATCH`).
    rebalances: std::sync::atomic::AtomicU64,
}

impl ClientContext for Ctx {
    fn stats(&self, stats: Statistics) {
        let mut now = std::collections::HashSet::new();
        for (topic, t) in &stats.topics {
            for p in t.partitions.values() {
                if p.partition < 0 || p.fetch_state == "none" || p.fetch_state == "stopped" {
                    continue;
                }
                let lag = if p.consumer_lag >= 0 {
                    p.consumer_lag
                } else if p.hi_offset >= 0 && p.lo_offset >= 0 {
                    p.hi_offset - p.lo_offset
                } else {
                    continue;
                };
                let part = p.partition.to_string();
                self.telemetry.consumer_lag(topic, &part, Some(lag));
                now.insert((topic.clone(), part));
            }
        }
        // Partitions no longer ours lose their series; the others keep
        // theirs without a gap.
        let mut last = self.lag_labels.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for (t, p) in last.difference(&now) {
            self.telemetry.consumer_lag(t, p, None);
        }
        *last = now;
    }

    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(facility = fac, "librdkafka: {log_message}");
            }
            RDKafkaLogLevel::Warning => tracing::warn!(facility = fac, "librdkafka: {log_message}"),
            _ => tracing::debug!(facility = fac, "librdkafka: {log_message}"),
        }
    }
}

impl ConsumerContext for Ctx {
    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        if let Err(e) = result {
            tracing::warn!(partitions = offsets.count(), error = %e, "Commit failed; the store's checkpoint holds the durable point");
        }
    }

    /// Runs inside the loop's poll, between two messages. On revocation,
    /// the partitions' buffers are flushed and committed while vigie still
    /// owns them; on assignment, each partition starts at its durable point.
    fn rebalance(&self, base: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        self.rebalances.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                tracing::info!(partitions = tpl.count(), "Partitions revoked: flushing them");
                // Asynchronous: a rebalance callback must not wait without
                // a bound on the coordinator, which is itself rebalancing.
                // The store's checkpoint is the durable point, and the next
                // owner commits it at assignment if this commit is lost.
                let commit = |t: &TopicPartitionList| base.commit(t, CommitMode::Async);
                let mut p = self.pipeline.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if !base.assignment_lost() {
                    p.flush_and_release(Some(tpl), &commit);
                } else {
                    p.telemetry.group_joined(false);
                    tracing::warn!(partitions = tpl.count(), "Partitions lost (this member's session in the group ended): their buffers are dropped, uncommitted");
                    // Lost, not revoked: another member may already own
                    // them. Drop the buffers; their offsets were not committed.
                    for e in tpl.elements() {
                        p.release_lost(&Arc::from(e.topic()), e.partition());
                    }
                }
                drop(p);
                if let Err(e) = base.unassign() {
                    tracing::warn!(error = %e, "Unassign failed");
                }
                tracing::info!(partitions = tpl.count(), "Partitions released");
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let committed = base.committed_offsets(tpl.clone(), Duration::from_secs(10)).ok();
                let parts: Vec<(String, i32)> =
                    tpl.elements().iter().map(|e| (e.topic().to_string(), e.partition())).collect();
                let lasts: Vec<Option<store::Checkpoint>> = parts
                    .iter()
                    .map(|(t, p)| self.root.read_checkpoint(t, *p).ok().and_then(|r| r.best))
                    .collect();
                let probed = probe_source(&self.probe, &parts, &lasts);
                let mut p = self.pipeline.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let mut start = TopicPartitionList::new();
                // Partitions whose group commit is behind the store's
                // durable point: a commit that failed (an asynchronous one
                // cut by a rebalance), or a group whose offsets were lost.
                let mut behind = TopicPartitionList::new();
                for (((topic, partition), (low, high, fp)), ck) in parts.iter().zip(probed).zip(&lasts) {
                    let kafka = committed
                        .as_ref()
                        .and_then(|c| c.find_partition(topic, *partition))
                        .and_then(|c| match c.offset() {
                            Offset::Offset(o) => Some(o),
                            _ => None,
                        });
                    let view = SourceView { committed: kafka, low, high, fingerprint_at: fp };
                    let offset = match p.assign(&Arc::from(topic.as_str()), *partition, view) {
                        Start::At(o) => {
                            // Only a checkpoint vouches for an offset.
                            let vouched = ck.is_some_and(|ck| ck.last + 1 == o);
                            if vouched && kafka.is_none_or(|c| c < o) {
                                let _ = behind.add_partition_offset(topic, *partition, Offset::Offset(o));
                            }
                            Offset::Offset(o)
                        }
                        Start::Beginning => Offset::Beginning,
                        Start::Held => continue,
                    };
                    let _ = start.add_partition_offset(topic, *partition, offset);
                }
                let writable = p.writable();
                let telemetry = p.telemetry.clone();
                drop(p);
                match base.assign(&start) {
                    Ok(()) => {
                        telemetry.group_joined(true);
                        // The store is the durable point: the group's commit
                        // catches up with it now, not only at the
                        // partition's next flush (which may never come when
                        // nothing more is produced).
                        if behind.count() > 0 {
                            tracing::info!(partitions = behind.count(), "Committing the store's durable point for partitions whose group commit is behind it");
                            if let Err(e) = base.commit(&behind, CommitMode::Async) {
                                tracing::warn!(error = %e, "Commit failed; the store's checkpoint holds the durable point");
                            }
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "Assign failed"),
                }
                if !writable {
                    // The store cannot be written: these wait too.
                    let _ = base.pause(&start);
                } else if let Err(e) = base.resume(&start) {
                    // librdkafka keeps a partition's pause across its
                    // revocation: one paused while the store could not be
                    // written, revoked, then assigned again, would never
                    // be fetched.
                    tracing::warn!(error = %e, "Could not resume the partitions assigned");
                }
            }
            other => tracing::error!(error = ?other, "Rebalance error"),
        }
    }
}

/// The low and high watermarks of each partition, and the fingerprint of
/// the record now at its checkpoint's last offset (None when it cannot be
/// read: deleted by retention, beyond the end, or no answer in time). Read
/// with a consumer outside the group.
/// What a probe saw of one partition: its low and high watermarks, and
/// the offset read and the fingerprint of its record.
type Probed = (Option<i64>, Option<i64>, Option<(i64, u64)>);

fn probe_source(
    probe: &ClientConfig,
    parts: &[(String, i32)],
    checkpoints: &[Option<store::Checkpoint>],
) -> Vec<Probed> {
    let mut out = vec![(None, None, None); parts.len()];
    let consumer: BaseConsumer = match probe.create() {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "Could not read the source's watermarks");
            return out;
        }
    };
    let mut wanted = TopicPartitionList::new();
    let mut want: HashMap<(String, i32), (usize, i64)> = HashMap::new();
    for (i, ((topic, partition), ck)) in parts.iter().zip(checkpoints).enumerate() {
        match consumer.fetch_watermarks(topic, *partition, Duration::from_secs(5)) {
            Ok((low, high)) => {
                out[i].0 = Some(low);
                out[i].1 = Some(high);
                if let Some(ck) = ck.filter(|c| c.fingerprint.is_some() && c.last >= low && c.last < high) {
                    let _ = wanted.add_partition_offset(topic, *partition, Offset::Offset(ck.last));
                    want.insert((topic.clone(), *partition), (i, ck.last));
                }
            }
            Err(e) => {
                tracing::warn!(topic, partition, error = %e, "Could not read the partition's watermarks");
            }
        }
    }
    if want.is_empty() || consumer.assign(&wanted).is_err() {
        return out;
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while !want.is_empty() && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let key = (m.topic().to_string(), m.partition());
                if let Some(&(i, last)) = want.get(&key) {
                    if m.offset() == last {
                        out[i].2 = Some((last, store::fingerprint(m.payload().unwrap_or(b""))));
                    }
                    want.remove(&key);
                }
            }
            Some(Err(e)) => tracing::debug!(error = %e, "Probe read failed"),
            None => {}
        }
    }
    out
}

/// What a run did, for tests and the final log line.
#[derive(Debug, Default, Clone)]
pub struct RunSummary {
    /// Events accepted by the door.
    pub accepted: u64,
    /// Records refused (every reason).
    pub rejected: u64,
    /// Repeated event ids dropped.
    pub duplicates: u64,
}

/// Opens the store (a folder or a bucket, as the instance `holder`) and
/// checks it. A folder is created if need be, the temporary files of an
/// interrupted run are removed and its files checked (footers and
/// schemas, not every page); in a bucket, the names and checkpoints are
/// checked (an object is decoded when the analysis reads it). Files that
/// cannot be read go to quarantine at once; the rest is logged
/// (incomplete flushes are handled at assignment, old folders by the
/// purge).
pub fn open_store(
    stored: &StoreConfig,
    holder: &str,
    telemetry: &dyn Telemetry,
) -> Result<Store, IngestError> {
    let location = stored.location().map_err(IngestError::Input)?;
    let store = Store::open(&location, holder)?;
    let Store::Folder(root) = &store else {
        check_bucket(&store, telemetry)?;
        return Ok(store);
    };
    std::fs::create_dir_all(root).map_err(|e| IngestError::io(root, e))?;
    let leftovers = store::remove_abandoned_temporaries(root);
    if leftovers > 0 {
        tracing::info!(files = leftovers, "Removed temporary files of an interrupted run");
    }
    let report = store::check::check(root, &stored.retention(), chrono::Utc::now().date_naive(), false);
    for f in &report.findings {
        let unreadable =
            matches!(f.kind, "empty" | "not_parquet" | "wrong_schema" | "bad_name" | "undecodable");
        if unreadable && f.tier != store::AGGREGATES && f.tier != store::OFFSETS {
            match store::quarantine(root, &f.path, f.kind) {
                Ok(_) => {
                    let why = format!("the store check at start cannot read {}", f.path.display());
                    Quarantined { tier: f.tier, reason: f.kind, files: 1, why: &why }.emit(telemetry);
                }
                Err(e) => {
                    tracing::error!(path = %f.path.display(), error = %e, "Store check: could not quarantine a file");
                }
            }
        } else if f.severity == store::check::Severity::Problem {
            tracing::warn!(tier = f.tier, path = %f.path.display(), problem = f.kind, detail = %f.detail, "Store check");
        }
    }
    tracing::info!(files = report.files, problems = report.problems(), "Store checked");
    Ok(store)
}

/// The start's check of a bucket: it must answer; objects under `raw/`
/// whose names are not raw part names go to quarantine; damaged
/// checkpoint slots are logged (the other slot answers, or the partition
/// starts from the group's commit).
fn check_bucket(store: &Store, telemetry: &dyn Telemetry) -> Result<(), IngestError> {
    let Store::Bucket(b) = store else { return Ok(()) };
    let (parts, foreign) = b.raw_parts()?;
    for key in &foreign {
        match b.quarantine(&store::bucket::path_key(key), "bad_name") {
            Ok(_) => {
                let why = format!("the store check at start cannot read {}", key.display());
                Quarantined { tier: store::RAW, reason: "bad_name", files: 1, why: &why }.emit(telemetry);
            }
            Err(e) => {
                tracing::error!(key = %key.display(), error = %e, "Store check: could not quarantine an object");
            }
        }
    }
    let mut damaged = 0;
    for (t, p) in b.checkpointed_partitions()? {
        for key in b.read_checkpoint(&t, p)?.damaged {
            damaged += 1;
            tracing::warn!(tier = store::OFFSETS, key = %key.display(), problem = "damaged_checkpoint", "Store check");
        }
    }
    tracing::info!(store = %store, raw_parts = parts.len(), problems = foreign.len() + damaged, "Store checked");
    Ok(())
}

/// The consumer, opened and subscribed, not yet reading: what can fail
/// at start (the dead-letter producer, a librdkafka option the broker's
/// client refuses) fails in [`Service::open`], before the binary starts
/// anything else beside it.
pub struct Service {
    kafka: KafkaConfig,
    pipeline: Arc<Mutex<Pipeline>>,
    consumer: StreamConsumer<Ctx>,
}

impl Service {
    /// Opens the dead letters and builds the door and the consumer (a bad
    /// librdkafka option fails here). It does not subscribe yet: [`run`]
    /// does, just before it starts polling. A member that has joined the
    /// group but does not poll holds up every rebalance of the group, and
    /// one killed in that state leaves the group waiting for it.
    /// The store must have been opened ([`open_store`]); `pseudo` is the
    /// service's key ([`Pseudonymiser::resolve`]).
    ///
    /// [`run`]: Service::run
    pub fn open(
        kafka: &KafkaConfig,
        root: Store,
        stored: &StoreConfig,
        pseudo: Pseudonymiser,
        telemetry: Arc<dyn Telemetry>,
    ) -> Result<Service, ServiceError> {
        let dead = DeadLetter::open(kafka, &root, stored)?;
        let clock = Clock::now(kafka.clock_skew_s as f64);
        let door = Ingestor::new(pseudo, Some(clock), Vec::new(), dead);
        let pipeline = Arc::new(Mutex::new(Pipeline::new(
            kafka,
            root.clone(),
            stored,
            door,
            telemetry.clone(),
            store::Faults::from_env(),
        )));
        telemetry.store_writable(true);
        let ctx = Ctx {
            pipeline: pipeline.clone(),
            root: root.clone(),
            telemetry,
            lag_labels: Mutex::default(),
            probe: client::client_config(kafka, client::Role::Probe),
            rebalances: Default::default(),
        };
        let consumer: StreamConsumer<Ctx> =
            client::client_config(kafka, client::Role::Consumer).create_with_context(ctx)?;
        Ok(Service { kafka: kafka.clone(), pipeline, consumer })
    }

    /// Subscribes, then consumes until `shutdown` resolves (SIGTERM/SIGINT
    /// in the binary), then flushes, commits and returns (the binary
    /// enforces the deadline).
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<RunSummary, ServiceError> {
        let Service { kafka, pipeline, consumer } = self;
        let topics: Vec<&str> = kafka.topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topics)?;
        let root = pipeline.lock().unwrap_or_else(std::sync::PoisonError::into_inner).root().to_string();
        tracing::info!(topics = ?topics, group = %kafka.group_id, store = %root, "Consuming");
        consume(&kafka, pipeline, consumer, shutdown).await
    }
}

async fn consume(
    kafka: &KafkaConfig,
    pipeline: Arc<Mutex<Pipeline>>,
    consumer: StreamConsumer<Ctx>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<RunSummary, ServiceError> {
    let interval = kafka.flush_interval();
    let mut tick =
        tokio::time::interval(interval.min(Duration::from_millis(500)).max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    // In the loop, commits are asynchronous: the store's checkpoint already
    // holds the durable point, and a slow coordinator must not stall the
    // consumer. Shutdown commits synchronously (revocation asynchronously:
    // see the rebalance callback).
    let commit = |t: &TopicPartitionList| consumer.commit(t, CommitMode::Async);
    let commit_sync = |t: &TopicPartitionList| consumer.commit(t, CommitMode::Sync);
    // While the store cannot be written, the assigned partitions are
    // paused: librdkafka fetches nothing more, and the buffers wait.
    // Partitions held after a reset stay paused when the others resume.
    let pause = |paused: bool, held: &[(Arc<str>, i32)]| {
        if let Ok(a) = consumer.assignment() {
            let mut tpl = TopicPartitionList::new();
            for e in a.elements() {
                if paused || !held.iter().any(|(t, p)| t.as_ref() == e.topic() && *p == e.partition()) {
                    tpl.add_partition(e.topic(), e.partition());
                }
            }
            let r = if paused { consumer.pause(&tpl) } else { consumer.resume(&tpl) };
            if let Err(e) = r {
                tracing::warn!(error = %e, paused, "Could not pause or resume the partitions");
            }
        }
    };
    let mut result = Ok(());
    let mut held_paused = 0;
    loop {
        let writable_before = pipeline.lock().unwrap_or_else(std::sync::PoisonError::into_inner).writable();
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            _ = tick.tick() => {
                tokio::task::block_in_place(|| {
                    let mut p = pipeline.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    p.flush_due(kafka.max_batch_events, interval, &commit);
                });
            }
            msg = consumer.recv() => {
                let m = match msg {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::warn!(error = %e, "Consumer error; retrying");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                };
                // The messages of one poll: this one and those librdkafka
                // already holds (a zero timeout polls once, without waiting).
                // A rebalance ends the batch: the messages gathered before it
                // are then offered as if they had arrived just before it (a
                // revoked partition's are left to its new owner), and none
                // gathered before an assignment meets the partition's new
                // starting point.
                let mut msgs = vec![m];
                let rebalances = consumer.context().rebalances.load(std::sync::atomic::Ordering::SeqCst);
                while msgs.len() < MAX_POLL_BATCH {
                    let next = tokio::time::timeout(Duration::ZERO, consumer.recv()).await;
                    let moved =
                        consumer.context().rebalances.load(std::sync::atomic::Ordering::SeqCst) != rebalances;
                    match next {
                        Ok(Ok(m)) => {
                            msgs.push(m);
                            if moved {
                                break;
                            }
                        }
                        Ok(Err(e)) => {
                            tracing::warn!(error = %e, "Consumer error; retrying");
                            break;
                        }
                        Err(_) => break,
                    }
                    if moved {
                        break;
                    }
                }
                let r = tokio::task::block_in_place(|| {
                    let mut p = pipeline.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    let polled: Vec<Polled<'_>> =
                        msgs.iter().map(|m| (m.topic(), m.partition(), m.offset(), m.payload())).collect();
                    p.offer_batch(&polled, kafka.max_batch_events, kafka.max_batch_folders, &commit)
                });
                if let Err(e) = r { result = Err(ServiceError::Ingest(e)); break; }
            }
        }
        let (writable, fatal, held, reseeks) = {
            let mut p = pipeline.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            (p.writable(), p.fatal.take(), p.held(), p.take_reseeks())
        };
        for (topic, partition, offset) in reseeks {
            // After a fence: read again from just after the other
            // instance's durable point.
            let r = tokio::task::block_in_place(|| {
                consumer.seek(&topic, partition, Offset::Offset(offset), Duration::from_secs(10))
            });
            if let Err(e) = r {
                tracing::error!(topic = %topic, partition, offset, error = %e, "Could not seek after a fence; the partition is read again from its durable point at the next assignment");
            }
        }
        if let Some(e) = fatal {
            result = Err(ServiceError::Store(e));
            break;
        }
        if writable != writable_before {
            pause(!writable, &held);
        }
        if held.len() != held_paused {
            // A partition was just held (it went backwards while read).
            let mut tpl = TopicPartitionList::new();
            for (t, p) in &held {
                tpl.add_partition(t, *p);
            }
            if let Err(e) = consumer.pause(&tpl) {
                tracing::warn!(error = %e, "Could not pause a held partition");
            }
            held_paused = held.len();
        }
    }
    // Final flush and synchronous commit (the binary enforces the
    // deadline: past it, the process exits without committing).
    let summary = tokio::task::block_in_place(|| {
        let mut p = pipeline.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        p.flush_and_release(None, &commit_sync);
        p.root.release_all();
        p.door.close_reject_log();
        let stats = &p.door.stats;
        RunSummary {
            accepted: stats.accepted,
            rejected: stats.rejected_total(),
            duplicates: stats.duplicates,
        }
    });
    let fatal = pipeline.lock().unwrap_or_else(std::sync::PoisonError::into_inner).fatal.take();
    result?;
    if let Some(e) = fatal {
        return Err(ServiceError::Store(e));
    }
    tracing::info!(
        accepted = summary.accepted,
        rejected = summary.rejected,
        duplicates = summary.duplicates,
        "Stopped"
    );
    Ok(summary)
}
