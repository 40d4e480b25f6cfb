//! What the consumer counts as it goes: the events of `events.rs` (which
//! also log) call these. The binary counts it in its
//! Prometheus registry (`src/metrics.rs`, docs/metrics.md); tests may
//! count it themselves or drop it ([`Silent`]). Labels are topics,
//! partitions, tiers and reasons, never a worker or a record.

use std::time::Duration;

use crate::IngestStats;

/// One method per thing the consumer reports.
pub trait Telemetry: Send + Sync {
    /// Messages of a mapped topic the mapping did not read as events.
    fn unmapped(&self, topic: &str, messages: u64);
    /// A partition's source went backwards (topic recreated, broker state
    /// lost).
    fn source_reset(&self, topic: &str);
    /// A partition of `topic` is held back after a reset (`held`), or is
    /// no longer (`!held`).
    fn reset_held(&self, topic: &str, held: bool);
    /// Offsets the source no longer held when a partition resumed.
    fn source_skipped(&self, topic: &str, offsets: u64);
    /// A flush triggered by the number of (site, date) folders.
    fn folder_capped_flush(&self);
    /// A write to the store failed at `step`.
    fn store_write_failure(&self, step: &str);
    /// A partition's batch was made durable in this long.
    fn batch_written(&self, took: Duration);
    /// The door's counts so far (accepted, duplicates, rejects by reason).
    fn ingested(&self, stats: &IngestStats);
    /// A flush refused because another instance stored past this one's
    /// durable point.
    fn fenced_flush(&self);
    /// Whether the store takes writes.
    fn store_writable(&self, writable: bool);
    /// A checkpoint that could not be read at assignment.
    fn damaged_checkpoint(&self);
    /// Files of a flush found incomplete at assignment, removed.
    fn incomplete_removed(&self, files: u64);
    /// Files moved to quarantine, by tier and reason.
    fn quarantined(&self, tier: &str, reason: &str, files: u64);
    /// A partition's consumer lag (`None`: the partition is no longer
    /// this instance's, its series goes).
    fn consumer_lag(&self, topic: &str, partition: &str, lag: Option<i64>);
    /// Whether this instance is a member of its group with partitions.
    fn group_joined(&self, joined: bool);
}

/// Telemetry that reports nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Telemetry for Silent {
    fn unmapped(&self, _: &str, _: u64) {}
    fn source_reset(&self, _: &str) {}
    fn reset_held(&self, _: &str, _: bool) {}
    fn source_skipped(&self, _: &str, _: u64) {}
    fn folder_capped_flush(&self) {}
    fn store_write_failure(&self, _: &str) {}
    fn batch_written(&self, _: Duration) {}
    fn ingested(&self, _: &IngestStats) {}
    fn fenced_flush(&self) {}
    fn store_writable(&self, _: bool) {}
    fn damaged_checkpoint(&self) {}
    fn incomplete_removed(&self, _: u64) {}
    fn quarantined(&self, _: &str, _: &str, _: u64) {}
    fn consumer_lag(&self, _: &str, _: &str, _: Option<i64>) {}
    fn group_joined(&self, _: bool) {}
}
