//! `vigie store check STORE [--repair]` (docs/service.md, "Checking a
//! store"): reads every file of every tier and reports what cannot be
//! trusted. The service runs the same check at start.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use chrono::NaiveDate;

use crate::store::{self, RawName, Retention};

/// How bad a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Worth knowing, not wrong in itself (a gap left by refused records,
    /// a temporary file of a write under way).
    Note,
    /// The store holds something it should not, or cannot be read.
    Problem,
}

/// One thing the check found.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    /// How bad it is.
    pub severity: Severity,
    /// The tier the file is in.
    pub tier: &'static str,
    /// A bounded set: `empty`, `not_parquet`, `wrong_schema`,
    /// `undecodable`, `unreadable`, `bad_name`, `damaged_checkpoint`,
    /// `incomplete_flush`, `overlap`, `gap`, `past_retention`, `temporary`.
    pub kind: &'static str,
    /// The file or folder.
    pub path: PathBuf,
    /// What was seen, in words.
    pub detail: String,
}

/// What a check found.
#[derive(Debug, Default, Clone)]
pub struct Report {
    /// Files read.
    pub files: usize,
    /// What was found, notes and problems.
    pub findings: Vec<Finding>,
}

impl Report {
    /// The number of findings that are problems.
    pub fn problems(&self) -> usize {
        self.findings.iter().filter(|f| f.severity == Severity::Problem).count()
    }

    /// The table `vigie store check` prints.
    pub fn table(&self, root: &Path) -> String {
        let mut out = String::new();
        if !self.findings.is_empty() {
            out.push_str(&format!(
                "{:<8} {:<11} {:<19} {:<60} {}\n",
                "severity", "tier", "problem", "path", "detail"
            ));
        }
        for f in &self.findings {
            let sev = if f.severity == Severity::Problem { "problem" } else { "note" };
            let path = f.path.strip_prefix(root).unwrap_or(&f.path).display().to_string();
            out.push_str(&format!("{sev:<8} {:<11} {:<19} {path:<60} {}\n", f.tier, f.kind, f.detail));
        }
        out.push_str(&format!(
            "{} files checked: {} problems, {} notes\n",
            self.files,
            self.problems(),
            self.findings.len() - self.problems()
        ));
        out
    }
}

fn push(
    r: &mut Report,
    severity: Severity,
    tier: &'static str,
    kind: &'static str,
    path: &Path,
    detail: String,
) {
    r.findings.push(Finding { severity, tier, kind, path: path.to_path_buf(), detail });
}

fn explain(kind: &str) -> &'static str {
    match kind {
        "empty" => "zero bytes",
        "not_parquet" => "not a whole Parquet file (truncated, or wrong magic bytes)",
        "wrong_schema" => "not the tier's columns and types",
        "undecodable" => "its pages do not decode",
        "bad_name" => "not a name the store writes",
        _ => "cannot be read",
    }
}

/// The readable raw files of one incarnation of a partition, by offset range.
type Ranges = BTreeMap<(i64, i64), PathBuf>;

/// Checks every file of the store at `root`. With `deep`, every Parquet
/// file is decoded whole; otherwise only footers and schemas are read.
pub fn check(root: &Path, retention: &Retention, today: NaiveDate, deep: bool) -> Report {
    let mut r = Report::default();
    let raw_schema = crate::store::store_schema();
    // Files, tier by tier.
    let mut ranges: BTreeMap<(String, u32, i32), Ranges> = BTreeMap::new();
    for tier in [store::RAW, store::SUMMARIES, store::AGGREGATES] {
        for f in store::files_under(&root.join(tier), "parquet") {
            r.files += 1;
            let name = f.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let raw_name = if tier == store::RAW { RawName::parse(name) } else { None };
            let name_ok = match tier {
                t if t == store::RAW => raw_name.is_some(),
                t if t == store::SUMMARIES => name == "shifts.parquet",
                _ => name == "group_weeks.parquet",
            };
            if !name_ok {
                push(&mut r, Severity::Problem, tier, "bad_name", &f, explain("bad_name").into());
                continue;
            }
            let schema = (tier == store::RAW).then_some(&raw_schema);
            let verdict = store::check_parquet(&f, schema).and_then(|()| {
                if deep {
                    store::decode_parquet(&f)
                } else {
                    Ok(())
                }
            });
            if let Err(kind) = verdict {
                push(&mut r, Severity::Problem, tier, kind, &f, explain(kind).into());
                continue;
            }
            if let Some(n) = raw_name {
                ranges.entry((n.topic, n.epoch, n.partition)).or_default().insert((n.first, n.last), f);
            }
        }
    }
    // Checkpoints and offset ranges, partition by partition.
    let mut partitions: BTreeSet<(String, i32)> = store::checkpointed_partitions(root).into_iter().collect();
    partitions.extend(ranges.keys().map(|(t, _, p)| (t.clone(), *p)));
    for (topic, partition) in partitions {
        let read = store::read_checkpoint(root, &topic, partition);
        for slot in &read.damaged {
            r.files += 1;
            push(
                &mut r,
                Severity::Problem,
                store::OFFSETS,
                "damaged_checkpoint",
                slot,
                "does not read (checksum or format)".into(),
            );
        }
        for ((t, epoch, p), files) in ranges.iter().filter(|((t, _, p), _)| *t == topic && *p == partition) {
            let mut next: Option<i64> = None;
            for (&(first, last), path) in files {
                let name = RawName { topic: t.clone(), epoch: *epoch, partition: *p, first, last };
                if !store::flush_completed(&name, read.best.as_ref()) {
                    let durable =
                        read.best.map(|c| format!("epoch {} offset {}", c.epoch, c.last)).unwrap_or_default();
                    push(
                        &mut r,
                        Severity::Problem,
                        store::RAW,
                        "incomplete_flush",
                        path,
                        format!("beyond the checkpoint ({durable}): a flush that never completed"),
                    );
                    continue;
                }
                match next {
                    Some(n) if first < n => push(&mut r, Severity::Problem, store::RAW, "overlap", path, format!("{t} epoch {epoch} partition {p}: offsets {first}-{last} overlap a range up to {}", n - 1)),
                    Some(n) if first > n => push(&mut r, Severity::Note, store::RAW, "gap", path, format!("{t} epoch {epoch} partition {p}: offsets {n}-{} are in no file (only refused records, or a purged day)", first - 1)),
                    _ => {}
                }
                next = Some(next.map_or(last + 1, |n| n.max(last + 1)));
            }
        }
    }
    // Retention: nothing older than its tier allows.
    for tier in [store::RAW, store::SUMMARIES, store::AGGREGATES] {
        let keep_from = today - chrono::Days::new(u64::from(retention.days(tier)));
        for (date, dir) in store::dated_folders(&root.join(tier)) {
            if date < keep_from {
                push(
                    &mut r,
                    Severity::Problem,
                    tier,
                    "past_retention",
                    &dir,
                    format!("{date} is older than the tier's {} days", retention.days(tier)),
                );
            }
        }
    }
    for t in store::temporaries(root) {
        push(
            &mut r,
            Severity::Note,
            "store",
            "temporary",
            &t,
            "a temporary file: a write under way, or one a crash cut".into(),
        );
    }
    r.findings.sort();
    r
}

/// Puts right what a check found: unreadable, foreign and incomplete files
/// and damaged checkpoint slots go to `quarantine/`, folders past their
/// retention are purged. Overlaps and gaps are reported only. Run it with
/// the service stopped (a flush under way looks incomplete). Returns how
/// many findings it acted on.
pub fn repair(
    root: &Path,
    report: &Report,
    retention: &Retention,
    today: NaiveDate,
) -> Result<usize, String> {
    repair_with(
        report,
        &mut |path, reason| store::quarantine(root, path, reason).map(|_| ()).map_err(|e| e.to_string()),
        &mut || {
            let purged = store::purge(root, retention, today).map_err(|e| e.to_string())?;
            Ok(purged.folders.values().sum::<u64>() as usize)
        },
    )
}

/// [`repair`] through `quarantine` (a finding's path and reason) and
/// `purge` (folders purged): a bucket store's check runs on a local copy
/// and puts things right in the bucket.
pub fn repair_with(
    report: &Report,
    quarantine: &mut dyn FnMut(&Path, &str) -> Result<(), String>,
    purge: &mut dyn FnMut() -> Result<usize, String>,
) -> Result<usize, String> {
    let mut done = 0;
    for f in report.findings.iter().filter(|f| f.severity == Severity::Problem) {
        match f.kind {
            "overlap" | "past_retention" => {}
            kind => {
                let reason = if kind == "incomplete_flush" { "unverified_flush" } else { kind };
                quarantine(&f.path, reason)?;
                done += 1;
            }
        }
    }
    if report.findings.iter().any(|f| f.kind == "past_retention") {
        done += purge()?;
    }
    Ok(done)
}
