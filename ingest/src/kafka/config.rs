//! The `[kafka]` section of the service's configuration (docs/service.md):
//! where to read, how the partitions' buffers are flushed, what to do when
//! a source goes backwards. The file as a whole (with the analysis and
//! metrics sections) is loaded by the binary, which checks this section
//! with [`KafkaConfig::problems`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// The `[kafka]` section: where to read, and how a partition's buffer is
/// flushed (docs/service.md).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap servers, comma-separated.
    pub brokers: String,
    /// The source topics (a TOML list, or one comma-separated string).
    #[serde(deserialize_with = "string_list")]
    pub topics: Vec<String>,
    /// The consumer group the instances share.
    pub group_id: String,
    /// Refused records go to this topic; else to `dead-letter/` in the store.
    #[serde(default)]
    pub dead_letter_topic: Option<String>,
    /// librdkafka options passed through as they are (TLS, SASL...).
    #[serde(default)]
    pub librdkafka: BTreeMap<String, String>,
    /// A partition's buffer is flushed at this many messages...
    #[serde(default = "d_max_batch")]
    pub max_batch_events: usize,
    /// ...or when its events span this many (site, local date) folders,
    /// each of which a flush writes as one fsynced file...
    #[serde(default = "d_max_batch_folders")]
    pub max_batch_folders: usize,
    /// ...or this long after its first message.
    #[serde(default = "d_flush_ms")]
    pub flush_interval_ms: u64,
    /// Timestamps further than this in the future are `future_timestamp`.
    #[serde(default = "d_skew")]
    pub clock_skew_s: u64,
    /// SIGTERM/SIGINT: flush, commit and exit within this.
    #[serde(default = "d_shutdown_ms")]
    pub shutdown_deadline_ms: u64,
    /// Attempts to make a batch durable when the error cannot heal (a
    /// permission refused, a read-only store) before the service stops.
    /// Errors that can heal (a full disk) are retried until they do.
    #[serde(default = "d_retries")]
    pub max_write_retries: u32,
    /// Longest wait between two attempts while the store cannot be written.
    #[serde(default = "d_max_backoff_ms")]
    pub max_retry_backoff_ms: u64,
    /// What to do when a partition's source went backwards (topic
    /// recreated, broker state lost): `earliest` reads the new incarnation
    /// from its first offset, `stop` holds the partition back until an
    /// operator decides (docs/design.md, "A source that goes backwards").
    #[serde(default)]
    pub on_source_reset: OnSourceReset,
    /// Topic -> mapping file (docs/mapping.md): that topic's messages are
    /// read by the mapping's keys, codes and times. A path is relative to
    /// the configuration file's folder.
    #[serde(default)]
    pub mappings: BTreeMap<String, PathBuf>,
    /// The mappings of `mappings`, read and checked when the configuration
    /// is loaded: topic -> mapping and its file's SHA-256.
    #[serde(skip)]
    pub loaded_mappings: BTreeMap<String, (crate::mapping::Mapping, [u8; 32])>,
}

/// `kafka.on_source_reset`.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OnSourceReset {
    /// Read the new incarnation from its earliest offset.
    #[default]
    Earliest,
    /// Hold the partition back until an operator decides.
    Stop,
}

fn d_max_batch() -> usize {
    100_000
}
fn d_max_batch_folders() -> usize {
    256
}
fn d_flush_ms() -> u64 {
    5_000
}
fn d_skew() -> u64 {
    300
}
fn d_shutdown_ms() -> u64 {
    10_000
}
fn d_retries() -> u32 {
    5
}
fn d_max_backoff_ms() -> u64 {
    10_000
}

/// A list given as a TOML array, or as one comma-separated string (the
/// form an environment variable takes).
fn string_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        List(Vec<String>),
        Text(String),
    }
    Ok(match Either::deserialize(d)? {
        Either::List(v) => v,
        Either::Text(s) => s.split(',').map(|t| t.trim().to_string()).filter(|t| !t.is_empty()).collect(),
    })
}

impl KafkaConfig {
    /// `flush_interval_ms` as a duration.
    pub fn flush_interval(&self) -> Duration {
        Duration::from_millis(self.flush_interval_ms)
    }
    /// `shutdown_deadline_ms` as a duration.
    pub fn shutdown_deadline(&self) -> Duration {
        Duration::from_millis(self.shutdown_deadline_ms)
    }
    /// `max_retry_backoff_ms` as a duration (at least 1 ms).
    pub fn max_retry_backoff(&self) -> Duration {
        Duration::from_millis(self.max_retry_backoff_ms.max(1))
    }
}

impl KafkaConfig {
    /// The section's keys, to name every unknown one at once.
    pub const KEYS: &'static [&'static str] = &[
        "brokers",
        "topics",
        "group_id",
        "dead_letter_topic",
        "librdkafka",
        "max_batch_events",
        "max_batch_folders",
        "flush_interval_ms",
        "clock_skew_s",
        "shutdown_deadline_ms",
        "max_write_retries",
        "max_retry_backoff_ms",
        "on_source_reset",
        "mappings",
    ];

    /// Value checks of the section, each problem given to `bad`.
    pub fn problems(&self, bad: &mut dyn FnMut(String)) {
        let k = self;
        if k.brokers.trim().is_empty() {
            bad("kafka.brokers is empty".into());
        }
        if k.topics.is_empty() {
            bad("kafka.topics is empty".into());
        }
        for t in k.topics.iter().chain(k.dead_letter_topic.iter()) {
            if !valid_topic(t) {
                bad(format!("topic {t:?}: a topic name is 1-249 of a-z A-Z 0-9 . _ -"));
            }
        }
        if let Some(d) = &k.dead_letter_topic {
            if k.topics.contains(d) {
                bad(format!("kafka.dead_letter_topic {d:?} is also a source topic"));
            }
        }
        if k.group_id.trim().is_empty() {
            bad("kafka.group_id is empty".into());
        }
        for key in k.librdkafka.keys() {
            if MANAGED.contains(&key.as_str()) {
                bad(format!(
                    "kafka.librdkafka.{key:?} is set by vigie (its delivery guarantee depends on it)"
                ));
            }
        }
        if k.max_batch_folders == 0 {
            bad("kafka.max_batch_folders must be at least 1".into());
        }
        if k.max_batch_events == 0 {
            bad("kafka.max_batch_events must be at least 1".into());
        }
        if k.flush_interval_ms == 0 {
            bad("kafka.flush_interval_ms must be at least 1".into());
        }
        if k.max_write_retries == 0 {
            bad("kafka.max_write_retries must be at least 1".into());
        }
    }
}

/// librdkafka options vigie sets itself.
pub const MANAGED: [&str; 7] = [
    "enable.auto.commit",
    // Where to start is the store's decision, never `latest`.
    "auto.offset.reset",
    "enable.auto.offset.store",
    "group.id",
    "bootstrap.servers",
    "isolation.level",
    // The rebalance handling assumes the eager protocol.
    "partition.assignment.strategy",
];

fn valid_topic(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 249
        && t != "."
        && t != ".."
        && t.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}
