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
        truncated,
        rejected_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    };
    serde_json::to_string(&line).unwrap_or_else(|_| String::from("{}"))
}

/// The rejects store of `vigie audit`: `OUT/rejects.ndjson`.
pub struct FileRejects {
    path: PathBuf,
    out: Option<BufWriter<File>>,
}

impl FileRejects {
    /// The file is created at the first reject, and truncated then.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileRejects { path: path.into(), out: None }
    }

    pub fn path(&self) -> &Path {
        &self.path
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
        if self.out.is_none() {
            let f = File::create(&self.path).map_err(|e| IngestError::io(&self.path, e))?;
            self.out = Some(BufWriter::new(f));
        }
        let out = self.out.as_mut().expect("opened above");
        let line = reject_json(origin, rejection, raw, full_len);
        out.write_all(line.as_bytes())
            .and_then(|_| out.write_all(b"\n"))
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

/// Replaces the value of every `"worker"` key in a raw JSON-ish record by
/// `"~<pseudonym>"`, whether or not the record parses. The value is taken
/// as a string up to its closing quote, or as a bare token up to `,`, `}`,
/// `]` or a line end.
pub fn redact_json_worker(raw: &[u8], pseudo: &mut Pseudonymiser) -> Vec<u8> {
    const KEY: &[u8] = b"\"worker\"";
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while let Some(pos) = memchr::memmem::find(&raw[i..], KEY) {
        let key_end = i + pos + KEY.len();
        let mut j = key_end;
        while j < raw.len() && raw[j].is_ascii_whitespace() {
            j += 1;
        }
        if j >= raw.len() || raw[j] != b':' {
            out.extend_from_slice(&raw[i..key_end]);
            i = key_end;
            continue;
        }
        j += 1;
        while j < raw.len() && raw[j].is_ascii_whitespace() {
            j += 1;
        }
        let start = j;
        let end = if j < raw.len() && raw[j] == b'"' {
            let mut k = j + 1;
            while k < raw.len() && raw[k] != b'"' {
                k += if raw[k] == b'\\' { 2 } else { 1 };
            }
            (k + 1).min(raw.len())
        } else {
            let mut k = j;
            while k < raw.len() && !matches!(raw[k], b',' | b'}' | b']' | b'\n' | b'\r') {
                k += 1;
            }
            k
        };
        out.extend_from_slice(&raw[i..start]);
        if end > start {
            let value = String::from_utf8_lossy(&raw[start..end]);
            let value = value.trim_matches('"');
            out.extend_from_slice(format!("\"~{}\"", pseudo.pseudonym(value)).as_bytes());
        }
        i = end;
    }
    out.extend_from_slice(&raw[i..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> Pseudonymiser {
        Pseudonymiser::new(&[7u8; 32]).unwrap()
    }

    #[test]
    fn redacts_strings_bare_tokens_and_broken_records() {
        let mut ps = p();
        for raw in [
            &br#"{"event_id":"e","worker" : "Jean Dupont","kind":"scan"}"#[..],
            br#"{"worker":12345}"#,
            br#"{"event_id":"e","worker":"Jean Dupont"#,
            b"{\"worker\":\"Jean Dupont\xff\",\"x\":1}",
            br#"{"worker":"a\"Jean Dupont","worker":"Jean Dupont"}"#,
        ] {
            let out = redact_json_worker(raw, &mut ps);
            let s = String::from_utf8_lossy(&out);
            assert!(!s.contains("Dupont") && !s.contains("12345"), "{s}");
            assert!(s.contains("\"~"), "{s}");
        }
    }

    #[test]
    fn leaves_other_fields_alone() {
        let mut ps = p();
        let raw = br#"{"event_id":"worker","site":"a"}"#;
        assert_eq!(redact_json_worker(raw, &mut ps), raw.to_vec());
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
