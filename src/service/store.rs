//! The service's store on disk (docs/design.md, "Tiers"): raw events,
//! per-worker shift summaries and k-suppressed aggregates, each in date or
//! week folders that the purge deletes whole; offset checkpoints; the local
//! dead-letter store.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use chrono::{Datelike, NaiveDate};
use polars::prelude::DataFrame;
use vigie_ingest::event::Event;
use vigie_ingest::store::{write_parquet_atomic, Durability, EventBatch};
use vigie_ingest::IngestError;

pub const RAW: &str = "raw";
pub const SUMMARIES: &str = "summaries";
pub const AGGREGATES: &str = "aggregates";
pub const OFFSETS: &str = "offsets";
pub const DEAD_LETTER: &str = "dead-letter";

/// The local date of an event (in the offset it carried).
pub fn local_date(e: &Event) -> NaiveDate {
    let local_us = e.ts_us + i64::from(e.offset_s) * 1_000_000;
    vigie_analyze::rules::local_date(local_us)
}

/// `raw/site=S/date=D/TOPIC+PARTITION+FIRST+LAST.parquet`.
pub fn raw_file(
    root: &Path,
    site: &str,
    date: NaiveDate,
    topic: &str,
    partition: i32,
    first: i64,
    last: i64,
) -> PathBuf {
    root.join(RAW)
        .join(format!("site={site}"))
        .join(format!("date={date}"))
        .join(format!("{topic}+{partition}+{first}+{last}.parquet"))
}

/// The topic, partition and offset range a raw file's name carries.
pub fn parse_raw_name(name: &str) -> Option<(String, i32, i64, i64)> {
    let stem = name.strip_suffix(".parquet")?;
    let mut it = stem.rsplitn(4, '+');
    let last = it.next()?.parse().ok()?;
    let first = it.next()?.parse().ok()?;
    let partition = it.next()?.parse().ok()?;
    let topic = it.next()?.to_string();
    Some((topic, partition, first, last))
}

/// Splits one partition's batch into a frame per site and local date.
pub fn batch_frames(events: Vec<Event>) -> Result<Vec<(String, NaiveDate, DataFrame)>, IngestError> {
    let mut groups: BTreeMap<(String, NaiveDate), EventBatch> = BTreeMap::new();
    for e in events {
        let key = (e.site.to_string(), local_date(&e));
        groups.entry(key).or_default().push(e);
    }
    groups.into_iter().map(|((site, date), mut b)| Ok((site, date, b.take_frame()?))).collect()
}

/// Writes the frames of one partition's batch under
/// `raw/site=/date=/`, each fsynced and renamed. A retry rewrites the
/// same names.
pub fn write_frames(
    root: &Path,
    frames: &[(String, NaiveDate, DataFrame)],
    topic: &str,
    partition: i32,
    first: i64,
    last: i64,
) -> Result<(), IngestError> {
    for (site, date, df) in frames {
        let path = raw_file(root, site, *date, topic, partition, first, last);
        write_parquet_atomic(&mut df.clone(), &path, Durability::Synced)?;
    }
    Ok(())
}

fn checkpoint_path(root: &Path, topic: &str, partition: i32) -> PathBuf {
    root.join(OFFSETS).join(format!("{topic}+{partition}"))
}

/// Records `last` as the partition's last durable offset (temporary name,
/// fsync, rename, fsync of the folder).
pub fn write_checkpoint(root: &Path, topic: &str, partition: i32, last: i64) -> Result<(), IngestError> {
    use std::io::Write;
    let path = checkpoint_path(root, topic, partition);
    let dir = root.join(OFFSETS);
    fs::create_dir_all(&dir).map_err(|e| IngestError::io(&dir, e))?;
    let tmp = dir.join(format!(".{topic}+{partition}.{}.tmp", std::process::id()));
    let mut f = fs::File::create(&tmp).map_err(|e| IngestError::io(&tmp, e))?;
    f.write_all(format!("{last}\n").as_bytes()).map_err(|e| IngestError::io(&tmp, e))?;
    f.sync_all().map_err(|e| IngestError::io(&tmp, e))?;
    fs::rename(&tmp, &path).map_err(|e| IngestError::io(&path, e))?;
    fs::File::open(&dir).and_then(|d| d.sync_all()).map_err(|e| IngestError::io(&dir, e))?;
    Ok(())
}

/// The last offset of `topic`/`partition` the store holds durably: the
/// later of its checkpoint and the highest `LAST` among its raw files.
pub fn durable_offset(root: &Path, topic: &str, partition: i32) -> Option<i64> {
    let checkpoint = fs::read_to_string(checkpoint_path(root, topic, partition))
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok());
    let mut best = checkpoint;
    for file in files_under(&root.join(RAW), "parquet") {
        let Some(name) = file.file_name().and_then(|n| n.to_str()) else { continue };
        if let Some((t, p, _, last)) = parse_raw_name(name) {
            if t == topic && p == partition {
                best = Some(best.map_or(last, |b| b.max(last)));
            }
        }
    }
    best
}

/// Files with extension `ext` two folder levels under `dir`
/// (`site=/date=/` or `week=/`), skipping temporary names.
pub fn files_under(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), 0)];
    while let Some((d, depth)) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for entry in rd.flatten() {
            let p = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') {
                continue;
            }
            if p.is_dir() {
                if depth < 3 {
                    stack.push((p, depth + 1));
                }
            } else if p.extension().and_then(|e| e.to_str()) == Some(ext) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Temporary files a crash left behind (`.NAME.tmp`, never read as data).
pub fn temporaries(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack: Vec<PathBuf> =
        [RAW, SUMMARIES, AGGREGATES, OFFSETS].iter().map(|t| root.join(t)).collect();
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().to_string();
            if p.is_dir() {
                stack.push(p);
            } else if name.starts_with('.') && name.ends_with(".tmp") {
                out.push(p);
            }
        }
    }
    out
}

/// Removes what [`temporaries`] finds; returns how many.
pub fn remove_temporaries(root: &Path) -> usize {
    temporaries(root).iter().filter(|p| fs::remove_file(p).is_ok()).count()
}

/// The date of a `date=YYYY-MM-DD` folder, or of a `week=YYYY-Www` folder
/// (its Sunday, the last day it covers).
fn folder_date(name: &str) -> Option<NaiveDate> {
    if let Some(d) = name.strip_prefix("date=") {
        return NaiveDate::parse_from_str(d, "%Y-%m-%d").ok();
    }
    let w = name.strip_prefix("week=")?;
    let (y, wk) = w.split_once("-W")?;
    NaiveDate::from_isoywd_opt(y.parse().ok()?, wk.parse().ok()?, chrono::Weekday::Sun)
}

/// Dated folders of a tier: `(date, folder)`, oldest first.
pub fn dated_folders(tier_dir: &Path) -> Vec<(NaiveDate, PathBuf)> {
    let mut out = Vec::new();
    let mut visit = |dir: &Path| {
        if let Ok(rd) = fs::read_dir(dir) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                if let Some(d) = folder_date(&name) {
                    out.push((d, e.path()));
                }
            }
        }
    };
    visit(tier_dir);
    if let Ok(rd) = fs::read_dir(tier_dir) {
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with("site=") {
                visit(&e.path());
            }
        }
    }
    out.sort();
    out
}

/// Retention of each tier, days.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Retention {
    pub raw_days: u32,
    pub summary_days: u32,
    pub aggregate_days: u32,
}

impl Retention {
    pub fn days(&self, tier: &str) -> u32 {
        match tier {
            RAW | DEAD_LETTER => self.raw_days,
            SUMMARIES => self.summary_days,
            _ => self.aggregate_days,
        }
    }
}

/// What a purge removed, by tier.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PurgeReport {
    pub folders: BTreeMap<&'static str, u64>,
    pub files: BTreeMap<&'static str, u64>,
}

/// Deletes every folder (and local dead-letter file) whose date is more
/// than its tier's retention before `today`. A record of date D is kept
/// while `today - D <= retention days`.
pub fn purge(root: &Path, retention: &Retention, today: NaiveDate) -> Result<PurgeReport, IngestError> {
    let mut report = PurgeReport::default();
    for tier in [RAW, SUMMARIES, AGGREGATES] {
        let keep_from = today - chrono::Days::new(u64::from(retention.days(tier)));
        for (date, dir) in dated_folders(&root.join(tier)) {
            if date < keep_from {
                let n = files_under(&dir, "parquet").len() as u64;
                fs::remove_dir_all(&dir).map_err(|e| IngestError::io(&dir, e))?;
                *report.folders.entry(tier).or_default() += 1;
                *report.files.entry(tier).or_default() += n;
            }
        }
    }
    let keep_from = today - chrono::Days::new(u64::from(retention.raw_days));
    let dl = root.join(DEAD_LETTER);
    if let Ok(rd) = fs::read_dir(&dl) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let date =
                name.strip_suffix(".ndjson").and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok());
            if let Some(d) = date {
                if d < keep_from {
                    fs::remove_file(e.path()).map_err(|err| IngestError::io(&e.path(), err))?;
                    *report.files.entry(DEAD_LETTER).or_default() += 1;
                }
            }
        }
    }
    Ok(report)
}

/// Bytes and the age of the oldest record of one tier.
#[derive(Debug, Clone, PartialEq)]
pub struct TierStats {
    pub tier: &'static str,
    pub bytes: u64,
    /// Seconds from the start (00:00 UTC) of the oldest dated folder to
    /// `now`; 0 when the tier is empty.
    pub oldest_age_s: f64,
}

pub fn tier_stats(root: &Path, now: chrono::DateTime<chrono::Utc>) -> Vec<TierStats> {
    [RAW, SUMMARIES, AGGREGATES]
        .into_iter()
        .map(|tier| {
            let dir = root.join(tier);
            let bytes = files_under(&dir, "parquet")
                .iter()
                .filter_map(|f| fs::metadata(f).ok())
                .map(|m| m.len())
                .sum();
            let folders = dated_folders(&dir);
            let oldest = folders
                .iter()
                .filter(|(_, d)| !files_under(d, "parquet").is_empty())
                .map(|(date, _)| *date)
                .min()
                .map(|d| match tier {
                    // A week folder's records start on its Monday.
                    AGGREGATES => d - chrono::Days::new(6),
                    _ => d,
                });
            let oldest_age_s = oldest
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| (now.naive_utc() - t).num_seconds().max(0) as f64)
                .unwrap_or(0.0);
            TierStats { tier, bytes, oldest_age_s }
        })
        .collect()
}

/// `summaries/site=S/date=D/shifts.parquet`.
pub fn summary_file(root: &Path, site: &str, date: NaiveDate) -> PathBuf {
    root.join(SUMMARIES).join(format!("site={site}")).join(format!("date={date}")).join("shifts.parquet")
}

/// `aggregates/week=W/group_weeks.parquet`.
pub fn aggregate_file(root: &Path, week: &str) -> PathBuf {
    root.join(AGGREGATES).join(format!("week={week}")).join("group_weeks.parquet")
}

/// The ISO week of a date, as vigie writes it (`2026-W09`).
pub fn week_of(d: NaiveDate) -> String {
    let w = d.iso_week();
    format!("{}-W{:02}", w.year(), w.week())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_names_carry_their_offsets() {
        let d = NaiveDate::from_ymd_opt(2026, 11, 2).unwrap();
        let p = raw_file(Path::new("/s"), "lyon-1", d, "wh.events-v1", 3, 100, 250);
        assert_eq!(p, Path::new("/s/raw/site=lyon-1/date=2026-11-02/wh.events-v1+3+100+250.parquet"));
        let name = p.file_name().unwrap().to_str().unwrap();
        assert_eq!(parse_raw_name(name), Some(("wh.events-v1".into(), 3, 100, 250)));
        assert_eq!(parse_raw_name("x.parquet"), None);
    }

    #[test]
    fn week_folders_end_on_sunday() {
        assert_eq!(folder_date("week=2026-W45"), NaiveDate::from_ymd_opt(2026, 11, 8));
        assert_eq!(folder_date("date=2026-11-02"), NaiveDate::from_ymd_opt(2026, 11, 2));
        assert_eq!(folder_date("site=x"), None);
        assert_eq!(week_of(NaiveDate::from_ymd_opt(2026, 11, 8).unwrap()), "2026-W45");
    }
}
