//! findings.json, version 1 (docs/findings.md).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub const FINDINGS_SCHEMA: &str = "vigie.findings.v1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    Attention,
    Breach,
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

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Attention => "attention",
            Status::Breach => "breach",
            Status::InsufficientData => "insufficient_data",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub rule: String,
    pub status: Status,
    pub site: String,
    /// `site`, `team:NAME` or `zone:NAME`.
    pub group: crate::group::Group,
    /// An ISO week (`2026-W10`) or `all`.
    pub period: crate::group::Period,
    pub observed: Option<f64>,
    pub threshold: f64,
    pub unit: String,
    /// Distinct workers of the group in the period.
    pub population: u64,
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
    #[serde(default)]
    pub values: BTreeMap<String, Fact>,
}

impl Facts {
    pub fn is_empty(&self) -> bool {
        self.case.is_empty() && self.values.is_empty()
    }
}

/// One value of a finding's facts: a number or a label (a week, a date).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Fact {
    Number(f64),
    Text(String),
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InputSummary {
    pub events: u64,
    pub rejected: u64,
    pub rejected_by_reason: BTreeMap<String, u64>,
    pub duplicates: u64,
    pub from: Option<String>,
    pub to: Option<String>,
    pub sites: Vec<String>,
    /// Records that carried fields outside the contract (dropped, never
    /// stored), and those fields by name.
    pub records_with_dropped_fields: u64,
    pub dropped_fields: BTreeMap<String, u64>,
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
    pub vigie_version: String,
    /// The source revision vigie was built from (`unknown` outside a
    /// repository).
    pub source_revision: String,
    /// Audit: each input file, in the order read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<InputFile>,
    pub policy: PolicySource,
    /// SHA-256 of the employer declaration file, when one was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub employer_sha256: Option<String>,
    /// SHA-256 of the mapping file, when one was used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mapping_sha256: Option<String>,
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
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rejects_cap_bytes: u64,
}

/// One input file as it was read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InputFile {
    /// The file's name (without its folder, so that the same file audited
    /// from another folder gives the same findings).
    pub name: String,
    pub bytes: u64,
    pub sha256: String,
    /// Records read from it, and what became of them.
    pub records: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub duplicates: u64,
}

/// The policy in force: its name, the SHA-256 of its file when it came
/// from one, and its full resolved content (TOML), so that it can be
/// applied again.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PolicySource {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_sha256: Option<String>,
    pub resolved: String,
}

/// The offsets of one partition analysed by the service.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StreamRange {
    pub topic: String,
    pub epoch: u64,
    pub partition: i32,
    pub first_offset: i64,
    pub last_offset: i64,
}

/// The mapping an audit read its files through.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MappingSummary {
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
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dst_nonexistent: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PrivacySummary {
    pub k: u32,
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
    pub site: Option<String>,
    /// The local date of the data the files held.
    pub date: Option<String>,
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Findings {
    pub schema: String,
    pub generated_at: String,
    pub policy: String,
    pub input: InputSummary,
    pub privacy: PrivacySummary,
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
