//! The `[store]` section of the service's configuration (docs/service.md):
//! where the store is, how long each tier is kept, the pseudonymisation
//! key. Checked with [`StoreConfig::problems`].

use std::path::PathBuf;

use serde::Deserialize;

/// The longest the per-worker daily summaries may be kept: 13 weeks, enough
/// for a 12-week average and the week in progress.
pub const MAX_SUMMARY_RETENTION_DAYS: u32 = 91;
/// The longest the k-suppressed group aggregates may be kept: 13 months.
pub const MAX_AGGREGATE_RETENTION_DAYS: u32 = 396;

/// The `[store]` section (docs/service.md).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// The store: a folder, or `s3://BUCKET/PREFIX` (docs/service.md,
    /// "A store in a bucket").
    #[serde(default = "d_store_path")]
    pub path: PathBuf,
    /// An S3 store's server (`http://127.0.0.1:9000`); else
    /// `$AWS_ENDPOINT_URL`, else AWS itself.
    #[serde(default)]
    pub s3_endpoint: Option<String>,
    /// An S3 store's region; else `$AWS_REGION`, else `us-east-1`.
    #[serde(default)]
    pub s3_region: Option<String>,
    /// Allow plain HTTP to the S3 server (loopback, a private network);
    /// else `$AWS_ALLOW_HTTP`.
    #[serde(default)]
    pub s3_allow_http: bool,
    /// Days raw events (and local dead letters) are kept.
    #[serde(default = "d_raw_days")]
    pub raw_retention_days: u32,
    /// Days per-worker daily summaries are kept (at most 91).
    #[serde(default = "d_summary_days")]
    pub summary_retention_days: u32,
    /// Days k-suppressed group aggregates are kept (at most 396).
    #[serde(default = "d_aggregate_days")]
    pub aggregate_retention_days: u32,
    /// Seconds between two purges.
    #[serde(default = "d_purge_s")]
    pub purge_interval_s: u64,
    /// Pseudonymisation key (32 bytes or more); else `$VIGIE_KEY_FILE`;
    /// else a key created once as `vigie.key` in the store (mode 0600).
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Accept a key file its group or others can read.
    #[serde(default)]
    pub allow_shared_key: bool,
    /// MiB of refused records the local dead-letter store keeps a day;
    /// past it they are counted, not kept.
    #[serde(default = "d_dead_letter_mib")]
    pub max_dead_letter_mib: u64,
}

fn d_store_path() -> PathBuf {
    PathBuf::from("vigie-store")
}
fn d_dead_letter_mib() -> u64 {
    crate::rejects::DEFAULT_REJECTS_CAP_BYTES >> 20
}
fn d_raw_days() -> u32 {
    7
}
fn d_summary_days() -> u32 {
    MAX_SUMMARY_RETENTION_DAYS
}
fn d_aggregate_days() -> u32 {
    MAX_AGGREGATE_RETENTION_DAYS
}
fn d_purge_s() -> u64 {
    3600
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            path: d_store_path(),
            s3_endpoint: None,
            s3_region: None,
            s3_allow_http: false,
            raw_retention_days: d_raw_days(),
            summary_retention_days: d_summary_days(),
            aggregate_retention_days: d_aggregate_days(),
            purge_interval_s: d_purge_s(),
            key_file: None,
            allow_shared_key: false,
            max_dead_letter_mib: d_dead_letter_mib(),
        }
    }
}

impl StoreConfig {
    /// The section's keys, to name every unknown one at once.
    pub const KEYS: &'static [&'static str] = &[
        "path",
        "s3_endpoint",
        "s3_region",
        "s3_allow_http",
        "raw_retention_days",
        "summary_retention_days",
        "aggregate_retention_days",
        "purge_interval_s",
        "key_file",
        "allow_shared_key",
        "max_dead_letter_mib",
    ];

    /// Value checks of the section, each problem given to `bad`.
    pub fn problems(&self, bad: &mut dyn FnMut(String)) {
        let s = self;
        #[cfg(feature = "s3")]
        match self.location() {
            Err(e) => bad(format!("store.path = {:?}: {e}", s.path.display().to_string())),
            Ok(super::objects::Location::Folder(_)) => {
                if s.s3_endpoint.is_some() || s.s3_region.is_some() || s.s3_allow_http {
                    bad("store.s3_endpoint, s3_region and s3_allow_http apply to an s3:// store.path only"
                        .into());
                }
            }
            Ok(super::objects::Location::S3(_)) => {}
        }
        // Without the S3 client, a URL would be taken for a folder named `s3:`.
        #[cfg(not(feature = "s3"))]
        if let Some(url) = s.path.to_str().filter(|p| p.contains("://")) {
            bad(format!("store.path = {url:?}: this build has no S3 client"));
        }
        if s.raw_retention_days == 0 {
            bad("store.raw_retention_days must be at least 1".into());
        }
        if s.summary_retention_days > MAX_SUMMARY_RETENTION_DAYS {
            bad(format!(
                "store.summary_retention_days = {}: at most {MAX_SUMMARY_RETENTION_DAYS} (13 weeks)",
                s.summary_retention_days
            ));
        }
        if s.summary_retention_days < s.raw_retention_days {
            bad("store.summary_retention_days must not be shorter than raw_retention_days".into());
        }
        if s.aggregate_retention_days > MAX_AGGREGATE_RETENTION_DAYS {
            bad(format!(
                "store.aggregate_retention_days = {}: at most {MAX_AGGREGATE_RETENTION_DAYS} (13 months)",
                s.aggregate_retention_days
            ));
        }
        if s.purge_interval_s == 0 {
            bad("store.purge_interval_s must be at least 1".into());
        }
        if let Some(f) = &s.key_file {
            if !f.is_file() {
                bad(format!("store.key_file {}: no such file", f.display()));
            }
        }
    }

    /// Where the store is: a folder, or a bucket completed by `s3_*`.
    #[cfg(feature = "s3")]
    pub fn location(&self) -> Result<super::objects::Location, String> {
        let text = self.path.to_str().ok_or("not UTF-8")?;
        let mut loc = super::objects::Location::parse(text)?;
        if let super::objects::Location::S3(s) = &mut loc {
            s.endpoint.clone_from(&self.s3_endpoint);
            s.region.clone_from(&self.s3_region);
            s.allow_http = self.s3_allow_http;
        }
        Ok(loc)
    }

    /// How long each tier is kept.
    pub fn retention(&self) -> super::Retention {
        super::Retention {
            raw_days: self.raw_retention_days,
            summary_days: self.summary_retention_days,
            aggregate_days: self.aggregate_retention_days,
        }
    }
}
