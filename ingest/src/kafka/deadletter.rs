//! The dead-letter target of the service (docs/design.md): a Kafka topic,
//! with the record as value and its coordinates as headers, or, without
//! one, `dead-letter/DATE.INSTANCE.ndjson` in the store. The record is the one the
//! door redacted: its `worker` value is already a pseudonym.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::event::Origin;
use crate::rejects::{reject_json, RejectSink, MAX_RAW_KEPT};
use crate::validate::Rejection;
use crate::IngestError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;

use super::client::{client_config, Role};
use super::config::KafkaConfig;
use crate::store::config::StoreConfig;
use crate::store::Store;

/// Counts failed deliveries of dead-letter records.
#[derive(Default)]
pub struct DeliveryCount {
    failed: Arc<AtomicU64>,
}

impl ClientContext for DeliveryCount {}

impl ProducerContext for DeliveryCount {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, (): ()) {
        if let Err((e, _)) = result {
            tracing::error!(error = %e, "A dead-letter record was not delivered");
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Where refused records go: a dead-letter topic, or the store's
/// `dead-letter/` folder.
pub enum DeadLetter {
    /// `kafka.dead_letter_topic`: each refused record as a message, its
    /// reason and coordinates in headers.
    Topic {
        /// The producer (every acknowledgement asked for).
        producer: ThreadedProducer<DeliveryCount>,
        /// The dead-letter topic.
        topic: String,
        /// Once a dead letter is lost, no later flush succeeds: the service
        /// stops and the next start replays from the durable point.
        failed: Arc<AtomicU64>,
        /// Whether messages were produced since the last flush.
        pending: bool,
        /// The epoch of the partition whose records are being offered.
        epoch: u32,
    },
    /// `dead-letter/DATE.INSTANCE.ndjson`. Lines wait in memory until a flush
    /// appends them and fsyncs the file; a failed append is cut back to the
    /// file's last durable length, so a full disk never leaves half a line.
    Local {
        /// `dead-letter/` in a folder store.
        dir: PathBuf,
        /// A bucket store: each flush's lines are one object,
        /// `dead-letter/DATE.INSTANCE.N.ndjson` (an object is never
        /// appended to), and `dir` is not used.
        bucket: Option<Arc<crate::store::bucket::Bucket>>,
        /// Objects written to the bucket so far (their `N`).
        objects: u64,
        /// Lines not yet durable, by date.
        pending: BTreeMap<String, Vec<u8>>,
        /// The epoch of the partition whose records are being offered.
        epoch: u32,
        /// Bytes a day's file may hold, and what it holds (by date).
        cap: u64,
        /// Bytes each day's file holds (by date).
        kept: BTreeMap<String, u64>,
        /// Refused records counted but not written (past the cap).
        not_kept: Arc<AtomicU64>,
        /// This process's part of the day's files: instances sharing a
        /// store never append to (or cut back) each other's file.
        instance: String,
    },
}

impl DeadLetter {
    /// The dead-letter topic when one is configured, else the store's
    /// `dead-letter/` folder.
    pub fn open(kafka: &KafkaConfig, store: &Store, stored: &StoreConfig) -> Result<DeadLetter, IngestError> {
        match &kafka.dead_letter_topic {
            Some(topic) => {
                let c = client_config(kafka, Role::DeadLetter);
                let ctx = DeliveryCount::default();
                let failed = ctx.failed.clone();
                let producer = c
                    .create_with_context(ctx)
                    .map_err(|e| IngestError::DeadLetter(format!("dead-letter producer: {e}")))?;
                Ok(DeadLetter::Topic { producer, topic: topic.clone(), failed, pending: false, epoch: 0 })
            }
            None => {
                let (dir, bucket) = match store {
                    Store::Folder(root) => {
                        let dir = root.join(crate::store::DEAD_LETTER);
                        std::fs::create_dir_all(&dir).map_err(|e| IngestError::io(&dir, e))?;
                        (dir, None)
                    }
                    Store::Bucket(b) => (PathBuf::from(crate::store::DEAD_LETTER), Some(b.clone())),
                };
                Ok(DeadLetter::Local {
                    dir,
                    bucket,
                    objects: 0,
                    pending: BTreeMap::new(),
                    epoch: 0,
                    cap: stored.max_dead_letter_mib.saturating_mul(1 << 20),
                    kept: BTreeMap::new(),
                    not_kept: Arc::default(),
                    instance: format!("{:08x}", rand::random::<u32>()),
                })
            }
        }
    }
}

impl DeadLetter {
    /// Refused records counted but not kept by the local store (its cap).
    pub fn not_kept(&self) -> u64 {
        match self {
            DeadLetter::Local { not_kept, .. } => not_kept.load(Ordering::Relaxed),
            DeadLetter::Topic { .. } => 0,
        }
    }

    /// The incarnation of the partition whose records come next: dead
    /// letters carry it beside their coordinates, which two incarnations of
    /// a topic share (docs/design.md, "A source that goes backwards").
    pub fn set_epoch(&mut self, e: u32) {
        match self {
            DeadLetter::Topic { epoch, .. } | DeadLetter::Local { epoch, .. } => *epoch = e,
        }
    }
}

impl RejectSink for DeadLetter {
    fn reject(
        &mut self,
        origin: &Origin,
        rej: &Rejection,
        raw: &[u8],
        full_len: usize,
    ) -> Result<(), IngestError> {
        match self {
            DeadLetter::Topic { producer, topic, pending, epoch, .. } => {
                let kept = &raw[..raw.len().min(MAX_RAW_KEPT)];
                let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                let full = full_len.to_string();
                let mut headers = OwnedHeaders::new()
                    .insert(Header { key: "vigie-reason", value: Some(rej.reason.as_str()) })
                    .insert(Header { key: "vigie-message", value: Some(rej.message.as_str()) })
                    .insert(Header { key: "vigie-rejected-at", value: Some(now.as_str()) })
                    .insert(Header { key: "vigie-raw-bytes", value: Some(full.as_str()) });
                if let Origin::Kafka { topic: t, partition, offset } = origin {
                    let (p, o, e) = (partition.to_string(), offset.to_string(), epoch.to_string());
                    headers = headers
                        .insert(Header { key: "vigie-source-topic", value: Some(t.as_ref()) })
                        .insert(Header { key: "vigie-source-partition", value: Some(p.as_str()) })
                        .insert(Header { key: "vigie-source-offset", value: Some(o.as_str()) })
                        .insert(Header { key: "vigie-source-epoch", value: Some(e.as_str()) });
                }
                let mut record = BaseRecord::<(), [u8]>::to(topic).payload(kept).headers(headers);
                loop {
                    match producer.send(record) {
                        Ok(()) => break,
                        Err((
                            rdkafka::error::KafkaError::MessageProduction(
                                rdkafka::types::RDKafkaErrorCode::QueueFull,
                            ),
                            r,
                        )) => {
                            record = r;
                            std::thread::sleep(Duration::from_millis(10));
                        }
                        Err((e, _)) => {
                            return Err(IngestError::DeadLetter(format!("dead-letter topic {topic}: {e}")))
                        }
                    }
                }
                *pending = true;
                Ok(())
            }
            DeadLetter::Local { dir, pending, epoch, cap, kept, not_kept, instance, .. } => {
                let date = chrono::Utc::now().format("%Y-%m-%d").to_string();
                // What the day's file already holds (a restart counts it
                // from the file), plus what waits.
                let held = kept.entry(date.clone()).or_insert_with(|| {
                    std::fs::metadata(dir.join(format!("{date}.{instance}.ndjson")))
                        .map(|m| m.len())
                        .unwrap_or(0)
                });
                let waiting = pending.get(&date).map_or(0, |b| b.len() as u64);
                if *held + waiting >= *cap {
                    if not_kept.fetch_add(1, Ordering::Relaxed) == 0 {
                        tracing::warn!(cap_bytes = *cap, "The local dead-letter store is full for today: further refused records are counted, not kept");
                    }
                    return Ok(());
                }
                let buf = pending.entry(date).or_default();
                let mut line = reject_json(origin, rej, raw, full_len);
                if let Ok(mut v) = serde_json::from_str::<serde_json::Value>(&line) {
                    if let Some(src) = v.get_mut("source").and_then(|s| s.as_object_mut()) {
                        src.insert("epoch".into(), (*epoch).into());
                        line = v.to_string();
                    }
                }
                buf.extend_from_slice(line.as_bytes());
                buf.push(b'\n');
                Ok(())
            }
        }
    }

    /// Returns once every dead letter so far is durable: acknowledged by
    /// the broker, or written and fsynced.
    fn flush(&mut self) -> Result<(), IngestError> {
        match self {
            DeadLetter::Topic { producer, topic, failed, pending, .. } => {
                if *pending {
                    producer
                        .flush(Duration::from_secs(30))
                        .map_err(|e| IngestError::DeadLetter(format!("dead-letter topic {topic}: {e}")))?;
                }
                let lost = failed.load(Ordering::Relaxed);
                if lost > 0 {
                    return Err(IngestError::DeadLetter(format!(
                        "dead-letter topic {topic}: {lost} records not delivered"
                    )));
                }
                *pending = false;
                Ok(())
            }
            DeadLetter::Local { bucket: Some(b), pending, kept, instance, objects, .. } => {
                while let Some((date, bytes)) = pending.pop_first() {
                    let key = format!("{}/{date}.{instance}.{objects}.ndjson", crate::store::DEAD_LETTER);
                    let len = bytes.len() as u64;
                    if let Err(e) = b.put(&key, bytes.clone()) {
                        pending.insert(date, bytes);
                        return Err(e);
                    }
                    *objects += 1;
                    *kept.entry(date).or_default() += len;
                }
                Ok(())
            }
            DeadLetter::Local { dir, pending, kept, instance, .. } => {
                while let Some((date, bytes)) = pending.pop_first() {
                    let path = dir.join(format!("{date}.{instance}.ndjson"));
                    if let Err(e) = append_durably(&path, &bytes) {
                        pending.insert(date, bytes);
                        return Err(IngestError::io(&path, e));
                    }
                    *kept.entry(date).or_default() += bytes.len() as u64;
                }
                Ok(())
            }
        }
    }
}

/// Appends whole lines to `path` and fsyncs it. On failure the file is cut
/// back to the length it had (a line is in the file whole, or not at all).
fn append_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = OpenOptions::new().create(true).read(true).append(true).open(path)?;
    let len = f.metadata()?.len();
    let result = (|| {
        // A line cut by an earlier failure whose truncation failed too:
        // end it, so that the lines after it stay readable.
        if len > 0 {
            let mut last = [0u8; 1];
            f.seek(SeekFrom::Start(len - 1))?;
            f.read_exact(&mut last)?;
            if last[0] != b'\n' {
                f.write_all(b"\n")?;
            }
        }
        f.write_all(bytes)?;
        f.sync_data()
    })();
    if result.is_err() {
        let _ = f.set_len(len).and_then(|()| f.sync_data());
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_cut_by_a_crash_is_ended_before_the_next_append() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.ndjson");
        append_durably(&path, b"{\"a\":1}\n").unwrap();
        // A cut line left by a crash is ended before the next append.
        std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(b"{\"b\"").unwrap();
        append_durably(&path, b"{\"c\":3}\n").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "{\"a\":1}\n{\"b\"\n{\"c\":3}\n");
    }
}
