//! The rejects store: one JSON object per refused record, with where it
//! came from, the reason code, a message and the raw record. The `worker`
//! value inside a raw record is replaced by its pseudonym before anything
//! is written.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use base64::Engine;
use serde::Serialize;

use crate::event::Origin;
use crate::pseudo::Pseudonymiser;
use crate::validate::Rejection;
use crate::IngestError;

/// Bytes of a raw record kept in the rejects store; longer records (they
/// can only be `too_large` ones) are cut and marked `truncated`.
pub const MAX_RAW_KEPT: usize = 4096;

/// Bytes of lines the rejects store (and the service's local dead-letter
/// store, per day) keeps by default; past it, refused records are counted,
/// not kept, so a flood of bad records cannot fill the disk.
pub const DEFAULT_REJECTS_CAP_BYTES: u64 = 64 << 20;

/// Where refused records go.
pub trait RejectSink {
    /// `raw` is already redacted; `full_len` is the size of the record as
    /// received (larger than `raw` when a reader kept only its start).
    fn reject(
        &mut self,
        origin: &Origin,
        rejection: &Rejection,
        raw: &[u8],
        full_len: usize,
    ) -> Result<(), IngestError>;
    /// Returns once the refused records given so far are durable (written and fsynced,
    /// or acknowledged by the broker); by default there is nothing to do.
    fn flush(&mut self) -> Result<(), IngestError> {
        Ok(())
    }
}

#[derive(Serialize)]
#[serde(untagged)]
enum SourceJson<'a> {
    File { file: &'a str, line: u64 },
    Kafka { topic: &'a str, partition: i32, offset: i64 },
}

#[derive(Serialize)]
struct RejectLine<'a> {
    source: SourceJson<'a>,
    reason: &'static str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    raw: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    raw_base64: Option<String>,
    raw_bytes: usize,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    truncated: bool,
    /// The record could not be parsed, so vigie could not be sure where an
    /// identifier sat in it: none of its bytes are kept.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    raw_withheld: bool,
    rejected_at: String,
}

/// Renders one rejects-store line (without the newline).
pub fn reject_json(origin: &Origin, rejection: &Rejection, raw: &[u8], full_len: usize) -> String {
    let full_len = full_len.max(raw.len());
    let truncated = full_len > raw.len().min(MAX_RAW_KEPT);
    let mut kept = &raw[..raw.len().min(MAX_RAW_KEPT)];
    // Cutting may split a UTF-8 sequence: drop its incomplete tail.
    if truncated {
        if let Err(e) = std::str::from_utf8(kept) {
            if e.error_len().is_none() {
                kept = &kept[..e.valid_up_to()];
            }
        }
    }
    let (text, b64) = match std::str::from_utf8(kept) {
        Ok(_) if kept.is_empty() => (None, None),
        Ok(s) => (Some(s), None),
        Err(_) => (None, Some(base64::engine::general_purpose::STANDARD.encode(kept))),
    };
    let source = match origin {
        Origin::File { file, line } => SourceJson::File { file, line: *line },
        Origin::Kafka { topic, partition, offset } => {
            SourceJson::Kafka { topic, partition: *partition, offset: *offset }
        }
    };
    let line = RejectLine {
        source,
        reason: rejection.reason.as_str(),
        message: &rejection.message,
        raw: text,
        raw_base64: b64,
        raw_bytes: full_len,
        truncated: truncated && !raw.is_empty(),
        raw_withheld: raw.is_empty() && full_len > 0,
        rejected_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    };
    serde_json::to_string(&line).unwrap_or_else(|_| String::from("{}"))
}

/// The rejects store of `vigie audit`: `OUT/rejects.ndjson`.
pub struct FileRejects {
    path: PathBuf,
    out: Option<BufWriter<File>>,
    cap: u64,
    written: u64,
    not_kept: u64,
}

impl FileRejects {
    /// The file is created at the first reject, and truncated then. It
    /// keeps at most [`DEFAULT_REJECTS_CAP_BYTES`].
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileRejects { path: path.into(), out: None, cap: DEFAULT_REJECTS_CAP_BYTES, written: 0, not_kept: 0 }
    }

    /// Keeps at most `bytes` of lines; the records past it are counted.
    pub fn with_cap(mut self, bytes: u64) -> Self {
        self.cap = bytes;
        self
    }

    /// The rejects file's path; the file is created at the first refused record.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Refused records counted but not written (past the cap).
    pub fn not_kept(&self) -> u64 {
        self.not_kept
    }
}

impl RejectSink for FileRejects {
    fn reject(
        &mut self,
        origin: &Origin,
        rejection: &Rejection,
        raw: &[u8],
        full_len: usize,
    ) -> Result<(), IngestError> {
        let line = reject_json(origin, rejection, raw, full_len);
        if self.written + line.len() as u64 + 1 > self.cap {
            if self.not_kept == 0 {
                tracing::warn!(path = %self.path.display(), cap_bytes = self.cap, "The rejects store is full: further refused records are counted, not kept");
            }
            self.not_kept += 1;
            return Ok(());
        }
        if self.out.is_none() {
            let f = File::create(&self.path).map_err(|e| IngestError::io(&self.path, e))?;
            self.out = Some(BufWriter::new(f));
        }
        let out = self.out.as_mut().expect("opened above");
        self.written += line.len() as u64 + 1;
        out.write_all(line.as_bytes())
            .and_then(|()| out.write_all(b"\n"))
            .map_err(|e| IngestError::io(&self.path, e))
    }

    fn flush(&mut self) -> Result<(), IngestError> {
        if let Some(out) = self.out.as_mut() {
            out.flush().map_err(|e| IngestError::io(&self.path, e))?;
            out.get_ref().sync_all().map_err(|e| IngestError::io(&self.path, e))?;
        }
        Ok(())
    }
}

/// Rejects kept in memory (tests and the demo).
#[derive(Default)]
pub struct MemoryRejects {
    /// The rejects-store lines, one JSON object each (no newline), in the order refused.
    pub lines: Vec<String>,
}

impl RejectSink for MemoryRejects {
    fn reject(
        &mut self,
        origin: &Origin,
        rejection: &Rejection,
        raw: &[u8],
        full_len: usize,
    ) -> Result<(), IngestError> {
        self.lines.push(reject_json(origin, rejection, raw, full_len));
        Ok(())
    }
}

/// Words that make a field name an identifier, whatever its case and
/// punctuation (`Worker`, `WORKER`, `worker_id`, `employeeId`,
/// `Badge-No`...): docs/privacy.md, "Identifier fields". The name's letters
/// and digits, lower-cased, are matched against these as substrings, and
/// `id` alone counts too.
pub const IDENTIFIER_WORDS: [&str; 16] = [
    "worker",
    "employe",
    "badge",
    "user",
    "operator",
    "picker",
    "associate",
    "matricule",
    "login",
    "staff",
    "person",
    "agent",
    "salarie",
    "uid",
    "driver",
    "name",
];

/// Whether a field name is (or looks like) a worker identifier: its value
/// is pseudonymised in a refused record, never written as received.
pub fn is_identifier_field(name: &str) -> bool {
    let n: String = name.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect();
    // `ts` and `event_id` are the contract's own; `id` alone is an identifier.
    n == "id" || IDENTIFIER_WORDS.iter().any(|w| n.contains(w))
}

/// Whether a field name may be published as it is (findings.json counts
/// dropped fields by name): short, lower-case ASCII, not an identifier.
pub fn is_safe_field_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 32
        && b[0].is_ascii_lowercase()
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
        && !is_identifier_field(name)
}

/// A refused JSON record as the rejects store keeps it: parsed, every value
/// under an identifier field (at any depth, keys compared after JSON
/// unescaping, in any case) replaced by `"~PSEUDONYM"`, and written back.
/// `None` when the record does not parse as a JSON object: vigie cannot be
/// sure where an identifier sits in it, so no byte of it is kept (its
/// reason, coordinates and size are).
pub fn redact_record(raw: &[u8], pseudo: &mut Pseudonymiser) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(raw).ok()?;
    let mut v: serde_json::Value = serde_json::from_str(text).ok()?;
    if !v.is_object() {
        return None;
    }
    redact_value(&mut v, pseudo);
    serde_json::to_vec(&v).ok()
}

pub(crate) fn redact_value(v: &mut serde_json::Value, pseudo: &mut Pseudonymiser) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                if is_identifier_field(k) {
                    let text = match &*val {
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    *val = serde_json::Value::String(pseudo.redacted(&text));
                } else {
                    redact_value(val, pseudo);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(|i| redact_value(i, pseudo)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> Pseudonymiser {
        Pseudonymiser::new(&[7u8; 32]).unwrap()
    }

    #[test]
    fn redaction_works_on_what_the_parser_sees() {
        let mut ps = p();
        for raw in [
            &br#"{"event_id":"e","worker" : "Jean Dupont","kind":"scan"}"#[..],
            br#"{"worker":12345}"#,
            // Escaped key, duplicate keys, values of every type, nesting.
            br#"{"worker":"Jean Dupont"}"#,
            br#"{"worker":"Jean Dupont","worker":"Jean Dupont"}"#,
            br#"{"worker":["Jean Dupont"]}"#,
            br#"{"worker":{"name":"Jean Dupont"}}"#,
            br#"{"meta":{"badge":"Jean Dupont","list":[{"Employee_ID":12345}]}}"#,
            br#"{"WORKER":"Jean Dupont","kind":"scan"}"#,
            br#"{"user":"Jean Dupont"}"#,
            br#"{"id":12345}"#,
        ] {
            let out = redact_record(raw, &mut ps).expect("an object");
            let s = String::from_utf8_lossy(&out);
            assert!(!s.contains("Dupont") && !s.contains("12345"), "{s}");
            assert!(s.contains("\"~"), "{s}");
        }
    }

    #[test]
    fn a_record_that_does_not_parse_keeps_no_bytes() {
        let mut ps = p();
        for raw in [
            &br#"{"event_id":"e","worker":"Jean Dupont"#[..],
            b"{\"worker\":\"Jean Dupont\xff\",\"x\":1}",
            br#"["Jean Dupont"]"#,
            br#""Jean Dupont""#,
            b"worker=Jean Dupont",
        ] {
            assert_eq!(redact_record(raw, &mut ps), None, "{}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn identifier_fields_in_any_spelling() {
        for name in
            ["worker", "Worker", "WORKER", "worker_id", "employee_id", "EmployeeID", "badge", "user", "id"]
        {
            assert!(is_identifier_field(name), "{name}");
        }
        for name in
            ["event_id", "ts", "site", "kind", "zone", "team", "process", "device", "quantity", "weight_kg"]
        {
            assert!(!is_identifier_field(name), "{name}");
        }
        assert!(is_safe_field_name("scanner_model"));
        for name in ["Jean Dupont", "badge_no", "x".repeat(40).as_str(), "=cmd", "é"] {
            assert!(!is_safe_field_name(name), "{name}");
        }
    }

    #[test]
    fn the_rejects_file_keeps_whole_lines_up_to_its_cap() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.ndjson");
        let o = Origin::File { file: "f".into(), line: 1 };
        let r = Rejection::new(crate::event::RejectReason::InvalidJson, "x");
        let one = reject_json(&o, &r, b"{}", 2).len() as u64 + 1;
        let mut f = FileRejects::new(&path).with_cap(one * 3 + one / 2);
        for _ in 0..10 {
            f.reject(&o, &r, b"{}", 2).unwrap();
        }
        f.flush().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 3);
        assert_eq!(f.not_kept(), 7);
    }

    #[test]
    fn leaves_other_fields_alone() {
        let mut ps = p();
        let raw = br#"{"event_id":"worker","site":"a"}"#;
        assert_eq!(redact_record(raw, &mut ps), Some(raw.to_vec()));
    }

    #[test]
    fn non_utf8_goes_to_base64_and_long_records_are_cut() {
        let o = Origin::File { file: "f.ndjson".into(), line: 3 };
        let r = Rejection::new(crate::event::RejectReason::InvalidUtf8, "x");
        let line = reject_json(&o, &r, b"{\xff}", 3);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["raw_base64"], "e/99");
        assert_eq!(v["source"]["line"], 3);
        let long = vec![b'a'; MAX_RAW_KEPT * 3];
        let v: serde_json::Value = serde_json::from_str(&reject_json(&o, &r, &long, long.len())).unwrap();
        assert_eq!(v["raw"].as_str().unwrap().len(), MAX_RAW_KEPT);
        assert_eq!(v["truncated"], true);
        assert_eq!(v["raw_bytes"], MAX_RAW_KEPT * 3);
    }
}
