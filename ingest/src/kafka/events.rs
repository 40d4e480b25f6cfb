//! The consumer's telemetry events (as vector's `internal_events`): each
//! thing worth telling is one type, and its [`Emit::emit`] both logs it and
//! counts it through [`Telemetry`], so that the log line and the metric
//! cannot drift apart. Fields are topics, partitions, offsets, files and
//! counts: never a worker or a record's content.

use std::path::Path;
use std::time::Duration;

use super::config::OnSourceReset;
use super::telemetry::Telemetry;

/// A telemetry event.
pub trait Emit {
    /// Logs the event and counts it.
    fn emit(self, t: &dyn Telemetry);
}

/// A partition's source went backwards (a topic recreated, a broker that
/// lost its state): `detail` says how it was seen.
pub struct SourceWentBackwards<'a> {
    /// The source topic.
    pub topic: &'a str,
    /// The partition.
    pub partition: i32,
    /// How it was seen (offsets, watermarks, a fingerprint that differs).
    pub detail: String,
    /// What the service does about it (`kafka.on_source_reset`).
    pub policy: OnSourceReset,
}

impl Emit for SourceWentBackwards<'_> {
    fn emit(self, t: &dyn Telemetry) {
        tracing::error!(topic = self.topic, partition = self.partition, policy = ?self.policy, "The source went backwards: {}", self.detail);
        t.source_reset(self.topic);
    }
}

/// A partition held back after its source went backwards
/// (`on_source_reset = "stop"`), or released.
pub struct PartitionHeld<'a> {
    /// The source topic.
    pub topic: &'a str,
    /// The partition.
    pub partition: i32,
    /// Held (true) or released (false).
    pub held: bool,
}

impl Emit for PartitionHeld<'_> {
    fn emit(self, t: &dyn Telemetry) {
        if self.held {
            tracing::warn!(topic = self.topic, partition = self.partition, "Partition held back until an operator decides (docs/design.md, \"A source that goes backwards\")");
        } else {
            tracing::info!(topic = self.topic, partition = self.partition, "Partition no longer held back");
        }
        t.reset_held(self.topic, self.held);
    }
}

/// Records the source deleted (its retention) before vigie read them.
pub struct SourceSkipped<'a> {
    /// The source topic.
    pub topic: &'a str,
    /// The partition.
    pub partition: i32,
    /// The first offset vigie had not read.
    pub from: i64,
    /// The partition's low watermark: the first offset it still holds.
    pub low: i64,
}

impl Emit for SourceSkipped<'_> {
    fn emit(self, t: &dyn Telemetry) {
        tracing::error!(
            topic = self.topic,
            partition = self.partition,
            from = self.from,
            low = self.low,
            "The source deleted records before vigie read them (its retention): they are lost to the audit"
        );
        t.source_skipped(self.topic, (self.low - self.from).max(0) as u64);
    }
}

/// Another instance stored a partition past this one's durable point.
pub struct Fenced<'a> {
    /// The source topic.
    pub topic: &'a str,
    /// The partition.
    pub partition: i32,
    /// This instance's checkpoint sequence and last durable offset.
    pub mine: Option<(u64, i64)>,
    /// The other instance's checkpoint sequence.
    pub theirs_seq: u64,
    /// The other instance's last durable offset.
    pub theirs_last: i64,
}

impl Emit for Fenced<'_> {
    fn emit(self, t: &dyn Telemetry) {
        tracing::warn!(topic = self.topic, partition = self.partition, mine = ?self.mine, theirs_seq = self.theirs_seq, theirs_last = self.theirs_last, "Another instance stored this partition past this one's durable point: its buffer is dropped and reading resumes after the other's");
        t.fenced_flush();
    }
}

/// A partition's batch made durable (files, dead letters, checkpoint).
pub struct BatchDurable<'a> {
    /// The source topic.
    pub topic: &'a str,
    /// The partition.
    pub partition: i32,
    /// The batch's first offset.
    pub first: i64,
    /// The batch's last offset.
    pub last: i64,
    /// How long the files, dead letters and checkpoint took.
    pub took: Duration,
}

impl Emit for BatchDurable<'_> {
    fn emit(self, t: &dyn Telemetry) {
        tracing::debug!(
            topic = self.topic,
            partition = self.partition,
            first = self.first,
            last = self.last,
            ms = self.took.as_millis() as u64,
            "Batch durable"
        );
        t.batch_written(self.took);
    }
}

/// The store refused a write: the batch is kept and retried, or, when it
/// cannot heal and the attempts are spent, the service stops.
pub struct StoreRefused<'a> {
    /// The error, with what was being written.
    pub error: &'a str,
    /// Attempts since the store last took writes.
    pub attempt: u32,
    /// The first failure since the store last took writes.
    pub first: bool,
    /// The attempts are spent and the error cannot heal: the service stops.
    pub stopping: bool,
    /// The wait before the next attempt.
    pub retry_in: Duration,
}

impl Emit for StoreRefused<'_> {
    fn emit(self, t: &dyn Telemetry) {
        if self.stopping {
            tracing::error!(
                attempts = self.attempt,
                error = self.error,
                "The store cannot be written and this will not heal: stopping"
            );
        } else if self.first {
            tracing::error!(
                error = self.error,
                "The store cannot be written: pausing consumption, keeping the batch, retrying"
            );
        } else {
            tracing::warn!(
                attempt = self.attempt,
                retry_in_ms = self.retry_in.as_millis() as u64,
                error = self.error,
                "The store still cannot be written"
            );
        }
        t.store_writable(false);
    }
}

/// The store takes writes again.
pub struct StoreRecovered {
    /// Attempts that failed before this one succeeded.
    pub after_failures: u32,
}

impl Emit for StoreRecovered {
    fn emit(self, t: &dyn Telemetry) {
        tracing::info!(after_failures = self.after_failures, "The store takes writes again: resuming");
        t.store_writable(true);
    }
}

/// A checkpoint slot that does not read.
pub struct CheckpointDamaged<'a> {
    /// The slot's file.
    pub path: &'a Path,
}

impl Emit for CheckpointDamaged<'_> {
    fn emit(self, t: &dyn Telemetry) {
        tracing::error!(path = %self.path.display(), "A checkpoint slot does not read; using what is known to be complete");
        t.damaged_checkpoint();
    }
}

/// The files of a flush that never completed, removed at assignment.
pub struct IncompleteFlushRemoved<'a> {
    /// The source topic.
    pub topic: &'a str,
    /// The partition.
    pub partition: i32,
    /// Files removed.
    pub files: u64,
    /// The partition's durable point (the checkpoint's last offset).
    pub durable: i64,
}

impl Emit for IncompleteFlushRemoved<'_> {
    fn emit(self, t: &dyn Telemetry) {
        tracing::warn!(
            topic = self.topic,
            partition = self.partition,
            files = self.files,
            durable = self.durable,
            "Removed the files of a flush that never completed; its records are read again"
        );
        t.incomplete_removed(self.files);
    }
}

/// Files moved to quarantine: `why` says what vouched against them.
pub struct Quarantined<'a> {
    /// The tier (`raw`, `summaries`, ...).
    pub tier: &'a str,
    /// A bounded reason code (a metric label).
    pub reason: &'a str,
    /// Files moved.
    pub files: u64,
    /// What vouched against them, for the log.
    pub why: &'a str,
}

impl Emit for Quarantined<'_> {
    fn emit(self, t: &dyn Telemetry) {
        tracing::warn!(
            tier = self.tier,
            reason = self.reason,
            files = self.files,
            "Quarantined: {}",
            self.why
        );
        t.quarantined(self.tier, self.reason, self.files);
    }
}
