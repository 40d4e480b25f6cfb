//! The dead-letter target of the service (docs/design.md): a Kafka topic,
//! with the record as value and its coordinates as headers, or, without
//! one, `dead-letter/DATE.ndjson` in the store. The record is the one the
//! door redacted: its `worker` value is already a pseudonym.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;
use vigie_ingest::event::Origin;
use vigie_ingest::rejects::{reject_json, RejectSink, MAX_RAW_KEPT};
use vigie_ingest::validate::Rejection;
use vigie_ingest::IngestError;

use super::config::Config;

/// Counts failed deliveries of dead-letter records.
#[derive(Default)]
pub struct DeliveryCount {
    failed: Arc<AtomicU64>,
}

impl ClientContext for DeliveryCount {}

impl ProducerContext for DeliveryCount {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            tracing::error!(error = %e, "A dead-letter record was not delivered");
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

pub enum DeadLetter {
    Topic {
        producer: ThreadedProducer<DeliveryCount>,
        topic: String,
        /// Once a dead letter is lost, no later flush succeeds: the service
        /// stops and the next start replays from the durable point.
        failed: Arc<AtomicU64>,
        pending: bool,
    },
    Local {
        dir: PathBuf,
        file: Option<(String, BufWriter<File>)>,
    },
}

impl DeadLetter {
    pub fn open(cfg: &Config) -> Result<DeadLetter, IngestError> {
        match &cfg.kafka.dead_letter_topic {
            Some(topic) => {
                let mut c = rdkafka::config::ClientConfig::new();
                for (k, v) in &cfg.kafka.librdkafka {
                    if !k.starts_with("auto.") && !k.starts_with("fetch.") && k != "statistics.interval.ms" {
                        c.set(k, v);
                    }
                }
                c.set("bootstrap.servers", &cfg.kafka.brokers).set("acks", "all");
                let ctx = DeliveryCount::default();
                let failed = ctx.failed.clone();
                let producer = c
                    .create_with_context(ctx)
                    .map_err(|e| IngestError::Input(format!("dead-letter producer: {e}")))?;
                Ok(DeadLetter::Topic { producer, topic: topic.clone(), failed, pending: false })
            }
            None => {
                let dir = cfg.store.path.join(super::store::DEAD_LETTER);
                std::fs::create_dir_all(&dir).map_err(|e| IngestError::io(&dir, e))?;
                Ok(DeadLetter::Local { dir, file: None })
            }
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
            DeadLetter::Topic { producer, topic, pending, .. } => {
                let kept = &raw[..raw.len().min(MAX_RAW_KEPT)];
                let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                let full = full_len.to_string();
                let mut headers = OwnedHeaders::new()
                    .insert(Header { key: "vigie-reason", value: Some(rej.reason.as_str()) })
                    .insert(Header { key: "vigie-message", value: Some(rej.message.as_str()) })
                    .insert(Header { key: "vigie-rejected-at", value: Some(now.as_str()) })
                    .insert(Header { key: "vigie-raw-bytes", value: Some(full.as_str()) });
                if let Origin::Kafka { topic: t, partition, offset } = origin {
                    let (p, o) = (partition.to_string(), offset.to_string());
                    headers = headers
                        .insert(Header { key: "vigie-source-topic", value: Some(t.as_ref()) })
                        .insert(Header { key: "vigie-source-partition", value: Some(p.as_str()) })
                        .insert(Header { key: "vigie-source-offset", value: Some(o.as_str()) });
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
                            return Err(IngestError::Input(format!("dead-letter topic {topic}: {e}")))
                        }
                    }
                }
                *pending = true;
                Ok(())
            }
            DeadLetter::Local { dir, file } => {
                let date = chrono::Utc::now().format("%Y-%m-%d").to_string();
                if file.as_ref().is_none_or(|(d, _)| *d != date) {
                    if let Some((_, mut w)) = file.take() {
                        w.flush().map_err(|e| IngestError::io(dir, e))?;
                        w.get_ref().sync_all().map_err(|e| IngestError::io(dir, e))?;
                    }
                    let path = dir.join(format!("{date}.ndjson"));
                    let f = OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&path)
                        .map_err(|e| IngestError::io(&path, e))?;
                    *file = Some((date, BufWriter::new(f)));
                }
                let (_, w) = file.as_mut().expect("opened above");
                let mut line = reject_json(origin, rej, raw, full_len);
                line.push('\n');
                w.write_all(line.as_bytes()).map_err(|e| IngestError::io(dir, e))
            }
        }
    }

    /// Returns once every dead letter so far is durable: acknowledged by
    /// the broker, or written and fsynced.
    fn flush(&mut self) -> Result<(), IngestError> {
        match self {
            DeadLetter::Topic { producer, topic, failed, pending } => {
                if *pending {
                    producer
                        .flush(Duration::from_secs(30))
                        .map_err(|e| IngestError::Input(format!("dead-letter topic {topic}: {e}")))?;
                }
                let lost = failed.load(Ordering::Relaxed);
                if lost > 0 {
                    return Err(IngestError::Input(format!(
                        "dead-letter topic {topic}: {lost} records not delivered"
                    )));
                }
                *pending = false;
                Ok(())
            }
            DeadLetter::Local { dir, file } => {
                if let Some((_, w)) = file.as_mut() {
                    w.flush().map_err(|e| IngestError::io(dir, e))?;
                    w.get_ref().sync_data().map_err(|e| IngestError::io(dir, e))?;
                }
                Ok(())
            }
        }
    }
}
