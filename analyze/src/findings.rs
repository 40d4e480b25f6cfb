//! findings.json, version 1 (docs/findings.md).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The `schema` of findings.json, version 1: a change that breaks the
/// shape gets a new name.
pub const FINDINGS_SCHEMA: &str = "vigie.findings.v1";

/// A finding's status (findings.json `status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// `ok`: the threshold is not crossed, or there is nothing to judge.
    Ok,
    /// `attention`: crossed where the policy (or the rule itself) says so, or
    /// a maximum crossed by the upper bound of effective time only.
    Attention,
    /// `breach`: crossed where the policy (or the rule itself) says it is one.
    Breach,
    /// `insufficient_data`: too few workers to publish, or nothing to
    /// measure; `observed` is then `None`.
    InsufficientData,
}

impl Status {
    /// The value of `vigie_finding_status`.
    pub fn gauge(self) -> i64 {
        match self {
            Status::Ok => 0,
            Status::Attention => 1,
            Status::Breach => 2,
            Status::InsufficientData => -1,
        }
    }

    /// The written form: `ok`, `attention`, `breach` or `insufficient_data`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Attention => "attention",
            Status::Breach => "breach",
            Status::InsufficientData => "insufficient_data",
        }
    }
}

/// One rule's result for one site, group and period: an entry of
/// findings.json `findings`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// The rule id, `family.name` (docs/metrics.md).
    pub rule: String,
    /// The status under the policy: `ok`, `attention`, `breach` or
    /// `insufficient_data`.
    pub status: Status,
    /// The site, as the events name it.
    pub site: String,
    /// `site`, `team:NAME` or `zone:NAME`.
    pub group: crate::group::Group,
    /// An ISO week (`2026-W10`) or `all`.
    pub period: crate::group::Period,
    /// The value the rule measures, in `unit`; `None` with
    /// `insufficient_data`, and with `ok` when there is nothing to judge.
    pub observed: Option<f64>,
    /// The policy's threshold, in `unit`; the status changes when
    /// `observed` crosses it.
    pub threshold: f64,
    /// The unit of `observed` and `threshold` (`worker-days`, `seconds`, ...).
    pub unit: String,
    /// Distinct workers of the group in the period.
    pub population: u64,
    /// Legal or field sources, in the profile's language and citation style;
    /// both positions where contested.
    pub sources: Vec<String>,
    /// The evidence sentence, in English (the report writes it in its
    /// own language from `facts` and the rule catalogue).
    pub explanation: String,
    /// The figures behind the explanation: the catalogue's evidence case
    /// and its values (docs/findings.md).
    #[serde(default, skip_serializing_if = "Facts::is_empty")]
    pub facts: Facts,
}

/// The figures behind a finding's evidence sentence.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Facts {
    /// The evidence case of the rule catalogue (`count`, `bounded`, ...).
    pub case: String,
    /// The case's placeholders by name, each a number or a label.
    #[serde(default)]
    pub values: BTreeMap<String, Fact>,
}

impl Facts {
    /// Whether there is neither a case nor a value (findings.json then
    /// leaves `facts` out).
    pub fn is_empty(&self) -> bool {
        self.case.is_empty() && self.values.is_empty()
    }
}

/// One value of a finding's facts: a number or a label (a week, a date).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Fact {
    /// A number: a count, hours, a share.
    Number(f64),
    /// A label: a week, a date, the employer's words.
    Text(String),
}

/// What the input held and what became of it (findings.json `input`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InputSummary {
    /// Accepted, unique events.
    pub events: u64,
    /// Records refused, whatever the reason.
    pub rejected: u64,
    /// Refused records by reason code (`invalid_json`, ...); codes with
    /// none are left out.
    pub rejected_by_reason: BTreeMap<String, u64>,
    /// Valid records whose `event_id` had already been accepted (dropped).
    pub duplicates: u64,
    /// The earliest accepted timestamp, RFC 3339 in UTC (the service: the
    /// earliest shift start); `None` when nothing was accepted.
    pub from: Option<String>,
    /// The latest accepted timestamp, RFC 3339 in UTC (the service: the
    /// latest shift end); `None` when nothing was accepted.
    pub to: Option<String>,
    /// The sites seen.
    pub sites: Vec<String>,
    /// Records that carried fields outside the contract (dropped, never
    /// stored), and those fields by name.
    pub records_with_dropped_fields: u64,
    /// Records that carried each dropped field, by name (at most 64 names,
    /// the rest under `(other)`).
    pub dropped_fields: BTreeMap<String, u64>,
    /// The inputs read, as given (the service: `store: PATH`).
    pub files: Vec<String>,
    /// Refused records counted but not written to the rejects store (it
    /// keeps a bounded amount); absent when none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rejects_not_kept: u64,
    /// Pairs of shifts of one worker that overlap in time (the same
    /// pseudonym at two sites at once, or clocks that disagree): an input
    /// problem; absent when none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub overlapping_shifts: u64,
    /// How the files were read when a mapping was used (docs/mapping.md);
    /// absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mapping: Option<MappingSummary>,
}

/// Where findings come from (docs/custody.md): the version that computed
/// them, each input file with its hash, the policy in force, and the key
/// by a fingerprint that does not reveal it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// The version of vigie that computed the findings (`0.1.0`).
    pub vigie_version: String,
    /// The source revision vigie was built from (`unknown` outside a
    /// repository).
    pub source_revision: String,
    /// Audit: each input file, in the order read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<InputFile>,
    /// The policy in force.
    pub policy: PolicySource,
    /// SHA-256 of the employer declaration file, when one was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub employer_sha256: Option<String>,
    /// SHA-256 of the mapping file, when one was used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mapping_sha256: Option<String>,
    /// The smallest group published: the policy's k, distinct workers.
    pub k: u32,
    /// A slow, domain-separated hash of the key (PBKDF2-HMAC-SHA256,
    /// docs/custody.md) in hexadecimal: the same key gives the same
    /// fingerprint; `random key for this run` when there was no key file.
    pub key_fingerprint: String,
    /// Service: the stored ranges of each topic's partitions that were
    /// analysed (one entry per contiguous run of offsets).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub streams: Vec<StreamRange>,
    /// Audit: the report's language and the rejects store's cap, so that
    /// the run can be repeated exactly.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub report_language: String,
    /// The rejects store's cap, bytes; 0 (left out) when not recorded, as
    /// in the service.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rejects_cap_bytes: u64,
}

/// One input file as it was read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InputFile {
    /// The file's name (without its folder, so that the same file audited
    /// from another folder gives the same findings).
    pub name: String,
    /// The file's size on disk, bytes.
    pub bytes: u64,
    /// SHA-256 of the file as on disk (before decompression), hexadecimal.
    pub sha256: String,
    /// Records read from it, and what became of them.
    pub records: u64,
    /// Of those records, the events accepted (valid and not duplicates).
    pub accepted: u64,
    /// Of those records, the ones refused, whatever the reason.
    pub rejected: u64,
    /// Of those records, the valid ones whose `event_id` had already been
    /// accepted (dropped).
    pub duplicates: u64,
}

/// The policy in force: its name, the SHA-256 of its file when it came
/// from one, and its full resolved content (TOML), so that it can be
/// applied again.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PolicySource {
    /// The policy's name (a built-in profile's id, or the file's `name`).
    pub name: String,
    /// SHA-256 of the policy file (`--policy`), hexadecimal; `None` for a
    /// built-in profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_sha256: Option<String>,
    /// The full resolved policy, as TOML.
    pub resolved: String,
}

/// The offsets of one partition analysed by the service.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StreamRange {
    /// The Kafka topic.
    pub topic: String,
    /// The topic's epoch: it tells two incarnations of a recreated topic
    /// apart.
    pub epoch: u64,
    /// The partition of the topic.
    pub partition: i32,
    /// The first offset of this contiguous run.
    pub first_offset: i64,
    /// The last offset of this contiguous run (included).
    pub last_offset: i64,
}

/// The mapping an audit read its files through.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MappingSummary {
    /// The mapping's `name`, from its file.
    pub name: String,
    /// SHA-256 of the mapping file, hexadecimal.
    pub sha256: String,
    /// Records skipped because their event code has no kind, by code.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub unmapped_codes: BTreeMap<String, u64>,
    /// Local times in the repeated autumn hour and in the skipped spring
    /// hour.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dst_ambiguous: u64,
    /// Local times in the skipped spring hour (read as if the clock had
    /// not yet moved).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dst_nonexistent: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// How the findings were protected (findings.json `privacy`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PrivacySummary {
    /// The policy's minimum group size, distinct workers.
    pub k: u32,
    /// (site, group, period) triples withheld, whether under k or hidden by
    /// complementary suppression (docs/privacy.md).
    pub suppressed_groups: u64,
    /// Pseudonymisation: "hmac-sha256" with a key from a file, or with a
    /// random key for this run only.
    pub pseudonymisation: String,
}

/// Data the analysis could not see: store files put in quarantine
/// (docs/findings.md, "incomplete").
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Incomplete {
    /// The store tier: `raw` or `summaries`.
    pub tier: String,
    /// The site folder the files sat in; `None` when not in one.
    pub site: Option<String>,
    /// The local date of the data the files held.
    pub date: Option<String>,
    /// How many store files were quarantined.
    pub files: u64,
    /// Why: `empty`, `not_parquet`, `wrong_schema`, `undecodable`, `bad_name`.
    pub reason: String,
}

/// Which key pseudonymised the workers (`privacy.pseudonymisation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyUse {
    /// A random key, for this run only: its pseudonyms match no other run's.
    RandomForThisRun,
    /// A key read from a file.
    FromFile,
}

/// findings.json, version 1 (docs/findings.md): the findings with their
/// input, privacy and provenance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Findings {
    /// The schema's name, [`FINDINGS_SCHEMA`].
    pub schema: String,
    /// When the findings were put together, RFC 3339 in UTC, to the second
    /// (or the time the caller gives, so that a run can be repeated).
    pub generated_at: String,
    /// The name of the policy in force.
    pub policy: String,
    /// What the input held.
    pub input: InputSummary,
    /// The k-anonymity applied.
    pub privacy: PrivacySummary,
    /// One entry per (rule, site, group, period) evaluated, `ok` ones
    /// included, sorted by site, rule (catalogue order), group and period.
    pub findings: Vec<Finding>,
    /// Days whose data was quarantined (service mode); absent when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub incomplete: Vec<Incomplete>,
    /// The target in force per published group and process, as steps;
    /// absent when the data carry no target (docs/findings.md).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_steps: Vec<crate::dated::TargetStep>,
    /// The pace before and after each dated change; absent when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub comparisons: Vec<crate::dated::Comparison>,
    /// Where these findings come from (docs/custody.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<Provenance>,
}

impl Findings {
    /// The one way findings are put together, by the audit and by the
    /// service: what `evaluation` found under `policy`, with what each path
    /// knows of its input, its key and where its figures come from.
    pub fn assemble(
        policy: &crate::policy::Policy,
        evaluation: &crate::rules::Evaluation,
        input: InputSummary,
        key: KeyUse,
        generated_at: Option<String>,
        provenance: Provenance,
        incomplete: Vec<Incomplete>,
    ) -> Findings {
        Findings {
            schema: FINDINGS_SCHEMA.into(),
            generated_at: generated_at
                .unwrap_or_else(|| chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            policy: policy.name.clone(),
            input: InputSummary { overlapping_shifts: evaluation.overlapping_shifts, ..input },
            privacy: PrivacySummary {
                k: policy.k,
                suppressed_groups: evaluation.suppressed,
                pseudonymisation: match key {
                    KeyUse::RandomForThisRun => "hmac-sha256, random key for this run",
                    KeyUse::FromFile => "hmac-sha256, key from file",
                }
                .into(),
            },
            findings: evaluation.findings.clone(),
            target_steps: evaluation.target_steps.clone(),
            comparisons: evaluation.comparisons.clone(),
            incomplete,
            provenance: Some(provenance),
        }
    }

    /// The findings as pretty-printed JSON (empty if serialisation fails).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Counts by status.
    pub fn status_counts(&self) -> BTreeMap<Status, usize> {
        let mut m = BTreeMap::new();
        for f in &self.findings {
            *m.entry(f.status).or_default() += 1;
        }
        m
    }
}
