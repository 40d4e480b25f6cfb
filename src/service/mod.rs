//! `vigie ingest --config FILE`: the Kafka ingestion service. The delivery
//! guarantee is written down in docs/design.md; this module follows it.
//!
//! One consumer per process, in a consumer group. Messages go through the
//! same door as files ([`vigie_ingest::Ingestor`]); accepted events wait in
//! a buffer per partition; a flush makes a partition's buffer durable in the
//! store, then commits. Analysis and purge run beside the loop, on their own
//! schedules, in `spawn_blocking`.

pub mod analysis;
pub mod config;
pub mod deadletter;
pub mod store;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Statistics};
use vigie_analyze::employer::Employer;
use vigie_analyze::policy::Policy;
use vigie_ingest::event::{Event, Origin};
use vigie_ingest::pseudo::Pseudonymiser;
use vigie_ingest::rejects::RejectSink;
use vigie_ingest::validate::Clock;
use vigie_ingest::{IngestError, Ingestor};

use crate::metrics::Metrics;
use config::Config;
use deadletter::DeadLetter;

/// Errors that stop the service (exit 1).
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("{0}")]
    Ingest(#[from] IngestError),
    #[error("{0}")]
    Other(String),
}

/// Event ids the door remembers before its duplicate filter starts afresh
/// (about 160 MB).
pub const DEDUP_WINDOW_EVENTS: usize = 10_000_000;

/// A partition's messages since its last flush.
#[derive(Default)]
struct PartBuf {
    events: Vec<Event>,
    /// Offsets of the first and last message buffered (None: empty).
    range: Option<(i64, i64)>,
    since: Option<Instant>,
}

/// Everything the loop and the rebalance callback share.
pub struct Pipeline {
    root: PathBuf,
    door: Ingestor<Vec<Event>, DeadLetter>,
    parts: HashMap<(Arc<str>, i32), PartBuf>,
    metrics: Arc<Metrics>,
    max_retries: u32,
    skew_s: f64,
    /// Set when a batch could not be made durable: the loop stops.
    pub fatal: Option<String>,
}

impl Pipeline {
    fn offer(
        &mut self,
        topic: &Arc<str>,
        partition: i32,
        offset: i64,
        payload: Option<&[u8]>,
    ) -> Result<(), IngestError> {
        let origin = || Origin::Kafka { topic: topic.clone(), partition, offset };
        self.door.set_clock(Some(Clock::now(self.skew_s)));
        self.door.offer_json(payload.unwrap_or(b""), origin)?;
        let buf = self.parts.entry((topic.clone(), partition)).or_default();
        buf.events.append(&mut self.door.sink);
        buf.range = Some(match buf.range {
            Some((first, _)) => (first, offset),
            None => (offset, offset),
        });
        buf.since.get_or_insert_with(Instant::now);
        Ok(())
    }

    fn due(&self, max_events: usize, interval: Duration) -> Vec<(Arc<str>, i32)> {
        self.parts
            .iter()
            .filter(|(_, b)| {
                b.range.is_some()
                    && (b.events.len() >= max_events || b.since.is_some_and(|s| s.elapsed() >= interval))
            })
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Makes one partition's buffer durable, then commits it with
    /// `commit`. A commit failure is logged, not fatal: the checkpoint in
    /// the store already holds the durable point.
    fn flush(
        &mut self,
        topic: &Arc<str>,
        partition: i32,
        commit: &dyn Fn(&TopicPartitionList) -> KafkaResult<()>,
    ) -> Result<(), String> {
        let Some(buf) = self.parts.get_mut(&(topic.clone(), partition)) else { return Ok(()) };
        let Some((first, last)) = buf.range else { return Ok(()) };
        let events = std::mem::take(&mut buf.events);
        let started = Instant::now();
        let frames = store::batch_frames(events).map_err(|e| e.to_string())?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let r = store::write_frames(&self.root, &frames, topic, partition, first, last)
                .and_then(|_| self.door.rejects.flush())
                .and_then(|_| store::write_checkpoint(&self.root, topic, partition, last));
            match r {
                Ok(()) => break,
                Err(e) if attempt < self.max_retries => {
                    tracing::warn!(topic = %topic, partition, attempt, error = %e, "Batch not durable yet, retrying");
                    std::thread::sleep(Duration::from_millis(100 << attempt.min(6)));
                }
                Err(e) => {
                    return Err(format!(
                    "{topic}/{partition} offsets {first}-{last}: not durable after {attempt} attempts: {e}"
                ))
                }
            }
        }
        self.metrics.batch_write_seconds.observe(started.elapsed().as_secs_f64());
        if let Some(buf) = self.parts.get_mut(&(topic.clone(), partition)) {
            buf.range = None;
            buf.since = None;
        }
        let mut tpl = TopicPartitionList::new();
        if let Err(e) = tpl.add_partition_offset(topic, partition, Offset::Offset(last + 1)) {
            tracing::warn!(error = %e, "Could not build the commit");
        } else if let Err(e) = commit(&tpl) {
            tracing::warn!(topic = %topic, partition, offset = last + 1, error = %e, "Commit failed; the store's checkpoint holds the durable point");
        }
        self.metrics.count_ingest(&self.door.stats);
        // The duplicate filter holds 16 bytes an event: past this many ids
        // it starts afresh, and the analysis drops older repeats.
        if self.door.seen_len() > DEDUP_WINDOW_EVENTS {
            self.door.forget_seen();
        }
        Ok(())
    }

    /// Flushes the partitions of `tpl` (all when None) and forgets them.
    fn flush_and_release(
        &mut self,
        which: Option<&TopicPartitionList>,
        commit: &dyn Fn(&TopicPartitionList) -> KafkaResult<()>,
    ) {
        let keys: Vec<(Arc<str>, i32)> = match which {
            Some(tpl) => tpl.elements().iter().map(|e| (Arc::from(e.topic()), e.partition())).collect(),
            None => self.parts.keys().cloned().collect(),
        };
        for (topic, partition) in keys {
            if let Err(e) = self.flush(&topic, partition, commit) {
                // Not committed: the next owner reads these records again.
                tracing::error!(error = %e, "Dropping a revoked partition's buffer");
                self.fatal.get_or_insert(e);
            }
            self.parts.remove(&(topic, partition));
        }
    }
}

/// The consumer's context: rebalances and statistics.
pub struct Ctx {
    pipeline: Arc<Mutex<Pipeline>>,
    root: PathBuf,
    metrics: Arc<Metrics>,
    lag_labels: Mutex<std::collections::HashSet<(String, String)>>,
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
                self.metrics.consumer_lag.with_label_values(&[topic.as_str(), part.as_str()]).set(lag);
                now.insert((topic.clone(), part));
            }
        }
        // Partitions no longer ours lose their series; the others keep
        // theirs without a gap.
        let mut last = self.lag_labels.lock().unwrap_or_else(|e| e.into_inner());
        for (t, p) in last.difference(&now) {
            let _ = self.metrics.consumer_lag.remove_label_values(&[t.as_str(), p.as_str()]);
        }
        *last = now;
    }

    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(facility = fac, "librdkafka: {log_message}")
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
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                tracing::info!(partitions = tpl.count(), "Partitions revoked: flushing them");
                let commit = |t: &TopicPartitionList| base.commit(t, CommitMode::Sync);
                let mut p = self.pipeline.lock().unwrap_or_else(|e| e.into_inner());
                if !base.assignment_lost() {
                    p.flush_and_release(Some(tpl), &commit);
                } else {
                    // Lost, not revoked: another member may already own
                    // them. Drop the buffers; their offsets were not committed.
                    for e in tpl.elements() {
                        p.parts.remove(&(Arc::from(e.topic()), e.partition()));
                    }
                }
                drop(p);
                if let Err(e) = base.unassign() {
                    tracing::warn!(error = %e, "Unassign failed");
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let committed = base.committed_offsets(tpl.clone(), Duration::from_secs(10)).ok();
                let mut start = TopicPartitionList::new();
                for e in tpl.elements() {
                    let (topic, partition) = (e.topic(), e.partition());
                    let kafka =
                        committed.as_ref().and_then(|c| c.find_partition(topic, partition)).and_then(|c| {
                            match c.offset() {
                                Offset::Offset(o) => Some(o),
                                _ => None,
                            }
                        });
                    let stored = store::durable_offset(&self.root, topic, partition).map(|o| o + 1);
                    let offset = match (kafka, stored) {
                        (Some(k), Some(s)) => Offset::Offset(k.max(s)),
                        (Some(k), None) => Offset::Offset(k),
                        (None, Some(s)) => Offset::Offset(s),
                        (None, None) => Offset::Invalid,
                    };
                    tracing::info!(topic, partition, ?kafka, ?stored, "Partition assigned");
                    let _ = start.add_partition_offset(topic, partition, offset);
                }
                if let Err(e) = base.assign(&start) {
                    tracing::error!(error = %e, "Assign failed");
                }
            }
            other => tracing::error!(error = ?other, "Rebalance error"),
        }
    }
}

/// What a run did, for tests and the final log line.
#[derive(Debug, Default, Clone)]
pub struct RunSummary {
    pub accepted: u64,
    pub rejected: u64,
    pub duplicates: u64,
}

/// Builds the consumer's librdkafka configuration.
pub fn consumer_config(cfg: &Config) -> ClientConfig {
    let mut c = ClientConfig::new();
    for (k, v) in &cfg.kafka.librdkafka {
        c.set(k, v);
    }
    c.set("bootstrap.servers", &cfg.kafka.brokers)
        .set("group.id", &cfg.kafka.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("isolation.level", "read_committed");
    if !cfg.kafka.librdkafka.contains_key("auto.offset.reset") {
        c.set("auto.offset.reset", "earliest");
    }
    if !cfg.kafka.librdkafka.contains_key("statistics.interval.ms") {
        c.set("statistics.interval.ms", "5000");
    }
    c
}

/// The pseudonymisation key of the service: the configured file,
/// `$VIGIE_KEY_FILE`, or `vigie.key` in the store (created once, 0600).
pub fn service_key(cfg: &Config) -> Result<Pseudonymiser, String> {
    let path = cfg
        .store
        .key_file
        .clone()
        .or_else(|| std::env::var_os("VIGIE_KEY_FILE").map(PathBuf::from))
        .unwrap_or_else(|| cfg.store.path.join("vigie.key"));
    if !path.exists() {
        create_key(&path)?;
        tracing::warn!(path = %path.display(), "No key file configured: using a key kept in the store; keep it apart from the store where you can");
    }
    Pseudonymiser::from_key_file(&path).map_err(|e| e.to_string())
}

fn create_key(path: &Path) -> Result<(), String> {
    use rand::RngCore;
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    // Written whole under a temporary name, then linked into place: when
    // instances start together, one key wins and every instance reads it.
    let tmp = dir.join(format!(".vigie.key.{}.new", std::process::id()));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    f.write_all(hex.as_bytes()).and_then(|_| f.sync_all()).map_err(|e| format!("{}: {e}", tmp.display()))?;
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Loads what the analysis needs from the configuration.
pub fn analysis_inputs(cfg: &Config) -> Result<(Policy, Option<Employer>), String> {
    let policy = match &cfg.analysis.policy {
        Some(f) => Policy::from_file(f),
        None => Policy::profile(&cfg.analysis.profile),
    }
    .map_err(|e| e.to_string())?;
    let employer = match &cfg.analysis.employer {
        Some(f) => Some(Employer::from_file(f).map_err(|e| e.to_string())?),
        None => None,
    };
    Ok((policy, employer))
}

/// Runs the service until `shutdown` resolves (SIGTERM/SIGINT in the
/// binary), then flushes, commits and returns within the deadline.
pub async fn run(
    cfg: Config,
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<RunSummary, ServiceError> {
    let root = cfg.store.path.clone();
    std::fs::create_dir_all(&root).map_err(|e| IngestError::io(&root, e))?;
    let leftovers = store::remove_temporaries(&root);
    if leftovers > 0 {
        tracing::info!(files = leftovers, "Removed temporary files of an interrupted run");
    }
    let (policy, employer) = analysis_inputs(&cfg).map_err(ServiceError::Other)?;
    let pseudo = service_key(&cfg).map_err(ServiceError::Other)?;
    let dead = DeadLetter::open(&cfg)?;
    let clock = Clock::now(cfg.kafka.clock_skew_s as f64);
    let door = Ingestor::new(pseudo, Some(clock), Vec::new(), dead);
    let pipeline = Arc::new(Mutex::new(Pipeline {
        root: root.clone(),
        door,
        parts: HashMap::new(),
        metrics: metrics.clone(),
        max_retries: cfg.kafka.max_write_retries,
        skew_s: cfg.kafka.clock_skew_s as f64,
        fatal: None,
    }));
    let ctx = Ctx {
        pipeline: pipeline.clone(),
        root: root.clone(),
        metrics: metrics.clone(),
        lag_labels: Mutex::default(),
    };
    let consumer: StreamConsumer<Ctx> = consumer_config(&cfg).create_with_context(ctx)?;
    let topics: Vec<&str> = cfg.kafka.topics.iter().map(String::as_str).collect();

    // Evidence of the source's own retention, before anything is read.
    let evidence = analysis::source_retention(&cfg).await;
    consumer.subscribe(&topics)?;
    tracing::info!(topics = ?topics, group = %cfg.kafka.group_id, store = %root.display(), "Consuming");

    let retention = store::Retention {
        raw_days: cfg.store.raw_retention_days,
        summary_days: cfg.store.summary_retention_days,
        aggregate_days: cfg.store.aggregate_retention_days,
    };
    for tier in crate::metrics::TIERS {
        metrics.store_retention.with_label_values(&[tier]).set(f64::from(retention.days(tier)) * 86_400.0);
    }
    metrics.analysis_interval.set(cfg.analysis.interval_s as f64);
    let background = analysis::spawn_background(
        root.clone(),
        retention,
        Duration::from_secs(cfg.analysis.interval_s),
        Duration::from_secs(cfg.store.purge_interval_s),
        Arc::new((policy, employer, evidence)),
        metrics.clone(),
    );

    let interval = cfg.kafka.flush_interval();
    let mut tick =
        tokio::time::interval(interval.min(Duration::from_millis(500)).max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    // In the loop, commits are asynchronous: the store's checkpoint already
    // holds the durable point, and a slow coordinator must not stall the
    // consumer. Revocation and shutdown commit synchronously.
    let commit = |t: &TopicPartitionList| consumer.commit(t, CommitMode::Async);
    let commit_sync = |t: &TopicPartitionList| consumer.commit(t, CommitMode::Sync);
    let mut result = Ok(());
    loop {
        tokio::select! {
            biased;
            _ = &mut shutdown => break,
            _ = tick.tick() => {
                let r = tokio::task::block_in_place(|| {
                    let mut p = pipeline.lock().unwrap_or_else(|e| e.into_inner());
                    for (t, part) in p.due(cfg.kafka.max_batch_events, interval) {
                        p.flush(&t, part, &commit)?;
                    }
                    match p.fatal.take() { Some(e) => Err(e), None => Ok(()) }
                });
                if let Err(e) = r { result = Err(ServiceError::Other(e)); break; }
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
                let topic: Arc<str> = Arc::from(m.topic());
                let (partition, offset) = (m.partition(), m.offset());
                let r = tokio::task::block_in_place(|| {
                    let mut p = pipeline.lock().unwrap_or_else(|e| e.into_inner());
                    p.offer(&topic, partition, offset, m.payload())?;
                    let full = p.parts.get(&(topic.clone(), partition)).is_some_and(|b| b.events.len() >= cfg.kafka.max_batch_events);
                    if full {
                        p.flush(&topic, partition, &commit).map_err(IngestError::Input)?;
                    }
                    Ok::<(), IngestError>(())
                });
                if let Err(e) = r { result = Err(ServiceError::Ingest(e)); break; }
            }
        }
    }
    background.abort();

    // Final flush and synchronous commit (the binary enforces the
    // deadline: past it, the process exits without committing).
    let summary = tokio::task::block_in_place(|| {
        let mut p = pipeline.lock().unwrap_or_else(|e| e.into_inner());
        p.flush_and_release(None, &commit_sync);
        let stats = &p.door.stats;
        RunSummary {
            accepted: stats.accepted,
            rejected: stats.rejected_total(),
            duplicates: stats.duplicates,
        }
    });
    let fatal = pipeline.lock().unwrap_or_else(|e| e.into_inner()).fatal.take();
    result?;
    if let Some(e) = fatal {
        return Err(ServiceError::Other(e));
    }
    tracing::info!(
        accepted = summary.accepted,
        rejected = summary.rejected,
        duplicates = summary.duplicates,
        "Stopped"
    );
    Ok(summary)
}

/// The binary's entry: configuration (exit 2 on any problem), metrics
/// endpoint, signals, the loop (exit 1 when it fails).
pub fn main(config_path: &Path) -> Result<(), crate::cli::Failure> {
    use crate::cli::Failure;
    let cfg = config::load(config_path, std::env::vars())
        .map_err(|problems| Failure::usage(format!("bad configuration:\n  {}", problems.join("\n  "))))?;
    analysis_inputs(&cfg).map_err(Failure::usage)?;
    let token = match &cfg.metrics.bearer_token_file {
        Some(f) => Some(crate::http::read_token(f).map_err(Failure::usage)?),
        None => None,
    };
    if std::env::var_os("POLARS_MAX_THREADS").is_none() {
        // The analysis shares the machine with the consumer.
        std::env::set_var("POLARS_MAX_THREADS", "2");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(2)
        .build()
        .map_err(|e| Failure::run(e.to_string()))?;
    let deadline = cfg.kafka.shutdown_deadline();
    rt.block_on(async move {
        let metrics = Arc::new(Metrics::new(cfg.metrics.max_series));
        let listener = crate::http::bind(&cfg.metrics.listen).await.map_err(Failure::run)?;
        tracing::info!(listen = %cfg.metrics.listen, "Serving /metrics");
        let server = tokio::spawn(crate::http::serve(listener, metrics.clone(), token));
        let shutdown = async move {
            crate::cli::interrupted().await;
            tracing::info!(
                deadline_ms = deadline.as_millis() as u64,
                "Signal received: flushing and committing"
            );
            // Past the deadline, exit without committing what is not durable.
            std::thread::spawn(move || {
                std::thread::sleep(deadline + Duration::from_millis(500));
                eprintln!("vigie: shutdown deadline passed; exiting without a final commit");
                std::process::exit(1);
            });
        };
        let r = run(cfg, metrics, shutdown).await;
        server.abort();
        r.map(|_| ()).map_err(|e| Failure::run(e.to_string()))
    })
}
