//! The service's store without a broker: the purge removes what is past
//! each tier's retention and nothing else; tier ages; the analysis cycle
//! turns raw events into summaries, findings and aggregates that agree with
//! the audit path on the same events.

use crate::common;

use std::path::Path;

use chrono::{Days, NaiveDate};
use common::*;
use vigie_ingest::store::{self, Retention};

fn touch_parquet(path: &Path) {
    use polars::prelude::*;
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut df = df!("x" => [1i64]).unwrap();
    vigie_ingest::store::write_parquet_atomic(&mut df, path, vigie_ingest::store::Durability::Scratch)
        .unwrap();
}

#[test]
fn the_purge_removes_what_is_past_retention_and_nothing_else() {
    purge_on(&Backend::Folder);
}

#[test]
fn the_purge_of_a_bucket_removes_what_is_past_retention_and_nothing_else() {
    if let Some(loc) = s3_location("purge") {
        purge_on(&Backend::S3(loc));
    }
}

/// The store is laid out in a folder, then (for a bucket) uploaded whole;
/// the purge runs on the backend, and what is left is read back.
fn purge_on(backend: &Backend) {
    let dir = tempfile::tempdir().unwrap();
    let root = &dir.path().join("store");
    std::fs::create_dir_all(root).unwrap();
    let today = NaiveDate::from_ymd_opt(2026, 11, 28).unwrap();
    let ago = |d: u64| today - Days::new(d);
    let name = store::RawName { topic: "events".into(), epoch: 0, partition: 0, first: 0, last: 9 };
    let raw = |d: NaiveDate, site: &str| store::raw_file(root, site, d, &name);
    // raw: 7 days. Day today-7 is kept (7 days old), today-8 goes.
    let raw_gone = [raw(ago(8), "lyon-1"), raw(ago(30), "nantes")];
    let raw_kept = [raw(ago(7), "lyon-1"), raw(ago(0), "lyon-1"), raw(ago(1), "nantes")];
    // summaries: 91 days.
    let sum_gone = [store::summary_file(root, "lyon-1", ago(92))];
    let sum_kept =
        [store::summary_file(root, "lyon-1", ago(91)), store::summary_file(root, "lyon-1", ago(8))];
    // aggregates: 396 days, by the week's Sunday. 2025-W44 ends Sunday
    // 2025-11-02 (391 days before), 2025-W43 ends 2025-10-26 (398 days).
    let agg_gone = [store::aggregate_file(root, "2025-W43")];
    let agg_kept = [store::aggregate_file(root, "2025-W44"), store::aggregate_file(root, "2026-W48")];
    for p in
        raw_gone.iter().chain(&raw_kept).chain(&sum_gone).chain(&sum_kept).chain(&agg_gone).chain(&agg_kept)
    {
        touch_parquet(p);
    }
    // The local dead-letter store follows the raw retention.
    let dl = root.join("dead-letter");
    std::fs::create_dir_all(&dl).unwrap();
    for d in [ago(8), ago(7)] {
        std::fs::write(dl.join(format!("{d}.ndjson")), "{}\n").unwrap();
    }
    // Offsets checkpoints are not data: never purged.
    let ck = store::Checkpoint { seq: 1, epoch: 0, last: 41, fingerprint: None };
    store::write_checkpoint(root, "events", 0, &ck, &store::Faults::default()).unwrap();

    let on = match backend {
        Backend::Folder => store::Store::Folder(root.clone()),
        Backend::S3(_) => {
            let s = backend.open(root, "purger");
            let store::Store::Bucket(b) = &s else { unreachable!() };
            let all = ["raw", "summaries", "aggregates", "dead-letter", "offsets"];
            assert_eq!(b.upload_since(root, &all, std::time::UNIX_EPOCH).unwrap(), 14);
            s
        }
    };

    let r = Retention { raw_days: 7, summary_days: 91, aggregate_days: 396 };
    let report = on.purge(&r, today).unwrap();
    // What is left, read back (a copy of the bucket's objects).
    let copy = dir.path().join("copy");
    let left = backend.contents(root, &copy);
    let there = |p: &Path| left.join(p.strip_prefix(root).unwrap());
    for p in raw_gone.iter().chain(&sum_gone).chain(&agg_gone) {
        let p = there(p);
        assert!(!p.exists() && !p.parent().unwrap().exists(), "{} should be gone", p.display());
    }
    for p in raw_kept.iter().chain(&sum_kept).chain(&agg_kept) {
        assert!(there(p).exists(), "{} should be kept", p.display());
    }
    let dl = left.join("dead-letter");
    assert!(!dl.join(format!("{}.ndjson", ago(8))).exists());
    assert!(dl.join(format!("{}.ndjson", ago(7))).exists());
    assert_eq!(store::durable_offset(&left, "events", 0), Some(41));
    assert_eq!(report.folders.get("raw"), Some(&2));
    assert_eq!(report.folders.get("summaries"), Some(&1));
    assert_eq!(report.folders.get("aggregates"), Some(&1));
    assert_eq!(report.files.get("dead-letter"), Some(&1));
    // A second purge finds nothing more.
    assert_eq!(on.purge(&r, today).unwrap(), store::PurgeReport::default());

    // Ages: the oldest raw folder is today-7, 00:00 UTC; at today 12:00 UTC
    // that is 7.5 days. Aggregates start on the Monday of 2025-W44
    // (2025-10-27): 397.5 days.
    let now = today.and_hms_opt(12, 0, 0).unwrap().and_utc();
    let stats = on.tier_stats(now).unwrap();
    let age = |t: &str| stats.iter().find(|s| s.tier == t).unwrap().oldest_age_s;
    assert_eq!(age("raw"), 7.5 * 86_400.0);
    assert_eq!(age("summaries"), 91.5 * 86_400.0);
    assert_eq!(age("aggregates"), 397.5 * 86_400.0);
    assert!(stats.iter().all(|s| s.bytes > 0));
}

#[test]
fn the_durable_offset_is_the_checkpoint_never_a_file_name() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let d = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
    let name =
        |p, first, last| store::RawName { topic: "events".into(), epoch: 0, partition: p, first, last };
    assert_eq!(store::durable_offset(root, "events", 1), None);
    // Two flushes of partition 1; the second never reached its checkpoint
    // (a full disk between two of its renames): its one renamed file must
    // not make its whole range look durable.
    touch_parquet(&store::raw_file(root, "lyon-1", d, &name(1, 0, 99)));
    touch_parquet(&store::raw_file(root, "nantes", d, &name(1, 0, 99)));
    touch_parquet(&store::raw_file(root, "lyon-1", d, &name(1, 100, 250)));
    touch_parquet(&store::raw_file(root, "lyon-1", d, &name(2, 0, 900)));
    let ck = store::Checkpoint { seq: 1, epoch: 0, last: 99, fingerprint: None };
    store::write_checkpoint(root, "events", 1, &ck, &store::Faults::default()).unwrap();
    assert_eq!(store::durable_offset(root, "events", 1), Some(99));
    let incomplete = store::incomplete_files(root, "events", 1, &ck);
    assert_eq!(incomplete, vec![store::raw_file(root, "lyon-1", d, &name(1, 100, 250))]);
    // The analysis reads the complete flushes, and partition 2's file
    // (no checkpoint: it cannot tell).
    let complete = store::complete_raw_files(root);
    assert_eq!(complete.len(), 3);
    assert!(!complete.contains(&incomplete[0]));
}

/// Five workers of team A on 2 and 3 March 2026, following `pattern`.
fn team_a_two_days<'a>(names: &'a [String], pattern: &'a [(&'a str, &'a str, &'a str)]) -> Vec<E<'a>> {
    let mut events: Vec<E> = crew(5, names, pattern).into_iter().map(|e| e.team("A")).collect();
    events.extend(crew(5, names, pattern).into_iter().map(|e| e.team("A").day(3)));
    events
}

#[test]
fn the_analysis_cycle_agrees_with_the_audit_on_the_same_events() {
    // Five workers of team A over two days; one event sent twice.
    let names = names(5);
    let pattern = [
        ("08:00:00", "shift_start", ""),
        ("08:00:00", "scan", ""),
        ("08:00:02", "scan", ""),
        ("12:00:00", "break_start", ""),
        ("12:30:00", "break_end", ""),
        ("15:00:00", "scan", "\"quantity\":3"),
        ("15:30:00", "shift_end", ""),
    ];
    let events = team_a_two_days(&names, &pattern);
    let policy = policy_k5();
    let expected = evaluate(&events, &policy);

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let stored = ingest(&ndjson(&events));
    let mut dup = stored.clone();
    dup.push(stored[3].clone());
    let frames = store::batch_frames(dup).unwrap();
    assert_eq!(frames.len(), 2, "one file per site and day");
    let name = store::RawName { topic: "events".into(), epoch: 0, partition: 0, first: 0, last: 70 };
    store::write_frames(root, &frames, &name, &store::Faults::default()).unwrap();

    let c = vigie::service::analysis::analysis_cycle(root, &policy, None, &Default::default(), 70).unwrap();
    assert_eq!(c.shifts, 10, "5 workers x 2 days, the repeated event dropped");
    assert_eq!(c.summaries_written, 2);
    for day in [2, 3] {
        let d = NaiveDate::from_ymd_opt(2026, 3, day).unwrap();
        assert!(store::summary_file(root, "s1", d).exists());
    }
    assert_eq!(c.evaluation.findings, expected.findings);
    assert_eq!(c.evaluation.aggregates, expected.aggregates);
    let f = read_json(&root.join("findings.json"));
    assert_eq!(f["findings"].as_array().unwrap().len(), expected.findings.len());
    // The provenance names the offsets the analysis read: the two files
    // of partition 0, offsets 0 to 70.
    let s = &f["provenance"]["streams"];
    assert_eq!(s.as_array().unwrap().len(), 1, "{s}");
    assert_eq!(
        (&s[0]["topic"], &s[0]["partition"], &s[0]["first_offset"], &s[0]["last_offset"]),
        (&serde_json::json!("events"), &serde_json::json!(0), &serde_json::json!(0), &serde_json::json!(70))
    );
    assert_eq!(f["provenance"]["policy"]["name"], policy.name.as_str());
    assert!(store::aggregate_file(root, "2026-W10").exists());
    // The target steps and dated comparisons of this analysis: no target
    // and no declared change here, so both tables are empty, and written.
    assert_eq!((c.evaluation.target_steps.len(), c.evaluation.comparisons.len()), (0, 0));
    for name in ["target_steps", "comparisons"] {
        assert!(root.join(store::DATED).join(format!("{name}.parquet")).exists(), "{name}");
    }

    // Once the first day's raw folder is the oldest and its summary exists,
    // a later cycle keeps that summary as it is (night shifts crossing
    // midnight would otherwise be cut).
    let first = store::summary_file(root, "s1", NaiveDate::from_ymd_opt(2026, 3, 2).unwrap());
    let before = std::fs::metadata(&first).unwrap().modified().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let c2 = vigie::service::analysis::analysis_cycle(root, &policy, None, &Default::default(), 70).unwrap();
    assert_eq!(c2.summaries_written, 1);
    assert_eq!(std::fs::metadata(&first).unwrap().modified().unwrap(), before);
    assert_eq!(c2.evaluation.findings, expected.findings);
}

#[test]
fn a_bad_service_configuration_lists_every_problem_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("vigie.toml");
    std::fs::write(
        &cfg,
        "[kafka]\nbrokers = \"\"\ntopics = [\"bad topic\"]\ngroup_id = \"g\"\n\
         [store]\nsummary_retention_days = 120\n[metrics]\nlisten = \"somewhere\"\n",
    )
    .unwrap();
    let out = vigie().args(["ingest", "--config", cfg.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in
        ["kafka.brokers is empty", "\"bad topic\"", "summary_retention_days = 120", "metrics.listen"]
    {
        assert!(err.contains(needle), "{needle} missing from:\n{err}");
    }
    // An environment override is checked like the file.
    let out = vigie()
        .args(["ingest", "--config", cfg.to_str().unwrap()])
        .env("VIGIE__STORE__RAW_RETENTION_DAYS", "soon")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("[store]"));
    // A store in a bucket without a key file: the key cannot be kept in
    // the bucket, nor created per instance.
    std::fs::write(
        &cfg,
        "[kafka]\nbrokers = \"127.0.0.1:1\"\ntopics = [\"t\"]\ngroup_id = \"g\"\n\
         [store]\npath = \"s3://vigie-mirror/site-1\"\n",
    )
    .unwrap();
    let out = vigie()
        .args(["ingest", "--config", cfg.to_str().unwrap()])
        .env_remove("VIGIE_KEY_FILE")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("store.key_file or VIGIE_KEY_FILE"));
    // demo --serve with an address that is not one.
    let out = vigie().args(["demo", "--serve", "nowhere"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn an_unreadable_store_file_is_quarantined_and_the_analysis_goes_on() {
    use polars::prelude::*;
    // The store of the analysis test above: five workers, two days.
    let names = names(5);
    let pattern = [("08:00:00", "shift_start", ""), ("08:00:00", "scan", ""), ("15:30:00", "shift_end", "")];
    let events = team_a_two_days(&names, &pattern);
    let policy = policy_k5();
    let expected = evaluate(&events, &policy);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let frames = store::batch_frames(ingest(&ndjson(&events))).unwrap();
    let name = store::RawName { topic: "events".into(), epoch: 0, partition: 0, first: 0, last: 29 };
    let written = store::write_frames(root, &frames, &name, &store::Faults::default()).unwrap();
    let d4 = NaiveDate::from_ymd_opt(2026, 3, 4).unwrap();
    let other =
        |first| store::RawName { topic: "events".into(), epoch: 0, partition: 1, first, last: first + 9 };
    // A table of damaged files, each with the reason it must be given.
    let truncated = store::raw_file(root, "s1", d4, &other(0));
    let bytes = std::fs::read(&written[0]).unwrap();
    std::fs::create_dir_all(truncated.parent().unwrap()).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let empty = store::raw_file(root, "s1", d4, &other(10));
    std::fs::write(&empty, b"").unwrap();
    let foreign = root.join("raw/site=s1/date=2026-03-04/notes.parquet");
    std::fs::copy(&written[0], &foreign).unwrap();
    let wrong = store::raw_file(root, "s1", d4, &other(20));
    let mut df = df!("event_id" => ["x"], "ts_us" => ["not a time"]).unwrap();
    vigie_ingest::store::write_parquet_atomic(&mut df, &wrong, vigie_ingest::store::Durability::Scratch)
        .unwrap();
    // A summary that is not Parquet at all.
    let bad_summary = store::summary_file(root, "s1", d4);
    std::fs::create_dir_all(bad_summary.parent().unwrap()).unwrap();
    std::fs::write(&bad_summary, b"PAR1 but not really").unwrap();
    // A whole Parquet file that is not a summary (raw events), where a
    // summary should be; and a foreign name among the summaries.
    let d5 = NaiveDate::from_ymd_opt(2026, 3, 5).unwrap();
    let not_a_summary = store::summary_file(root, "s1", d5);
    std::fs::create_dir_all(not_a_summary.parent().unwrap()).unwrap();
    std::fs::copy(&written[0], &not_a_summary).unwrap();
    let foreign_summary = not_a_summary.with_file_name("old-shifts.parquet");
    std::fs::copy(&written[0], &foreign_summary).unwrap();
    let want = [
        ("summaries", &not_a_summary, "wrong_schema"),
        ("summaries", &foreign_summary, "bad_name"),
        ("raw", &truncated, "not_parquet"),
        ("raw", &empty, "empty"),
        ("raw", &foreign, "bad_name"),
        ("raw", &wrong, "wrong_schema"),
        ("summaries", &bad_summary, "not_parquet"),
    ];

    let c = vigie::service::analysis::analysis_cycle(root, &policy, None, &Default::default(), 30).unwrap();
    assert_eq!(c.evaluation.aggregates, expected.aggregates, "the rest was analysed");
    assert_eq!(c.shifts, 10);
    for (tier, path, reason) in want {
        assert!(!path.exists(), "{} still in the store", path.display());
        let q = c
            .quarantined
            .iter()
            .find(|q| q.path == *path)
            .unwrap_or_else(|| panic!("{} not quarantined", path.display()));
        assert_eq!((q.tier, q.reason), (tier, reason), "{}", path.display());
        let moved = root.join("quarantine").join(path.strip_prefix(root).unwrap());
        assert!(moved.exists(), "{}", moved.display());
    }
    assert_eq!(c.quarantined.len(), want.len());
    // findings.json says which days are incomplete, and the findings of
    // that week say so.
    let f = read_json(&root.join("findings.json"));
    let inc = f["incomplete"].as_array().unwrap();
    let files: u64 = inc.iter().map(|i| i["files"].as_u64().unwrap()).sum();
    assert_eq!(files, 7);
    assert!(
        inc.iter().all(|i| i["site"] == "s1" && (i["date"] == "2026-03-04" || i["date"] == "2026-03-05")),
        "{inc:?}"
    );
    let week = f["findings"].as_array().unwrap().iter().filter(|x| x["period"] == "2026-W10").count();
    let flagged = f["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["explanation"].as_str().unwrap().contains("Incomplete: 7 store file(s)"))
        .count();
    assert!(week > 0 && flagged >= week, "{flagged} of {week}");
    // The next cycle runs clean and still says what is missing.
    let c2 = vigie::service::analysis::analysis_cycle(root, &policy, None, &Default::default(), 30).unwrap();
    assert!(c2.quarantined.is_empty());
    assert_eq!(read_json(&root.join("findings.json"))["incomplete"], f["incomplete"]);
}

/// A clean store of two partitions, two flushes each, recent days; returns
/// the raw files by partition.
fn clean_store(root: &Path) -> Vec<Vec<std::path::PathBuf>> {
    let lines: Vec<String> =
        recent_records(4, 3, 71).into_iter().map(|l| String::from_utf8(l).unwrap()).collect();
    let events = ingest(&lines.join("\n"));
    let half = events.len() / 2;
    let mut out = Vec::new();
    for (p, part) in [&events[..half], &events[half..]].into_iter().enumerate() {
        let mut files = Vec::new();
        let mid = part.len() / 2;
        for (first, chunk) in [(0, &part[..mid]), (mid as i64, &part[mid..])] {
            let last = first + chunk.len() as i64 - 1;
            let name = store::RawName { topic: "events".into(), epoch: 0, partition: p as i32, first, last };
            let frames = store::batch_frames(chunk.to_vec()).unwrap();
            files.extend(store::write_frames(root, &frames, &name, &store::Faults::default()).unwrap());
            let ck =
                store::Checkpoint { seq: if first == 0 { 1 } else { 2 }, epoch: 0, last, fingerprint: None };
            store::write_checkpoint(root, "events", p as i32, &ck, &store::Faults::default()).unwrap();
        }
        out.push(files);
    }
    out
}

/// The name of the last raw file of a partition's list.
fn last_name(files: &[std::path::PathBuf]) -> store::RawName {
    store::RawName::parse(files.last().unwrap().file_name().unwrap().to_str().unwrap()).unwrap()
}

/// A copy of `from` planted in today's folder under `name`.
fn plant(root: &Path, from: &Path, name: &store::RawName) -> std::path::PathBuf {
    let p = store::raw_file(root, "s1", chrono::Utc::now().date_naive(), name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::copy(from, &p).unwrap();
    p
}

fn store_check(root: &Path, repair: bool) -> (Option<i32>, String) {
    // The days are recent: a raw retention of 30 days keeps them.
    let cfg = root.with_extension("toml");
    std::fs::write(&cfg, service_toml("127.0.0.1:1", "events", "g", root, "")).unwrap();
    let mut args = vec!["store", "check", root.to_str().unwrap(), "--config", cfg.to_str().unwrap()];
    if repair {
        args.push("--repair");
    }
    let out = vigie().args(&args).output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stdout).to_string())
}

type Damage = fn(&Path, &[Vec<std::path::PathBuf>]) -> std::path::PathBuf;

/// Each kind of damage `vigie store check` reports: its kind, how to do
/// it to a clean store, whether `--repair` puts it right.
fn damage_cases() -> [(&'static str, Damage, bool); 8] {
    [
        (
            "not_parquet",
            |_, f| {
                let b = std::fs::read(&f[0][0]).unwrap();
                std::fs::write(&f[0][0], &b[..b.len() - 9]).unwrap();
                f[0][0].clone()
            },
            true,
        ),
        (
            "empty",
            |_, f| {
                std::fs::write(&f[1][0], b"").unwrap();
                f[1][0].clone()
            },
            true,
        ),
        (
            "bad_name",
            |_, f| {
                let p = f[0][0].with_file_name("copy-of-events.parquet");
                std::fs::copy(&f[0][0], &p).unwrap();
                p
            },
            true,
        ),
        (
            "wrong_schema",
            |_, f| {
                use polars::prelude::*;
                let mut df = df!("event_id" => ["x"]).unwrap();
                vigie_ingest::store::write_parquet_atomic(
                    &mut df,
                    &f[0][0],
                    vigie_ingest::store::Durability::Scratch,
                )
                .unwrap();
                f[0][0].clone()
            },
            true,
        ),
        (
            "damaged_checkpoint",
            |root, _| {
                let p = root.join("offsets/events+1.0");
                std::fs::write(&p, "vigie-checkpoint v2 seq=9 epoch=0 last=1 fp=- sum=0000000000000000\n")
                    .unwrap();
                p
            },
            true,
        ),
        (
            "incomplete_flush",
            |root, f| {
                let n = last_name(&f[1]);
                plant(root, &f[1][0], &store::RawName { first: n.last + 1, last: n.last + 10, ..n })
            },
            true,
        ),
        (
            "overlap",
            |root, f| {
                let n = last_name(&f[0]);
                plant(root, &f[0][0], &store::RawName { first: n.first - 5, last: n.last - 5, ..n })
            },
            false,
        ),
        (
            "gap",
            |root, f| {
                // The second flush of partition 0 held only refused records:
                // its files never existed.
                let n = last_name(&f[0]);
                for p in &f[0] {
                    if store::RawName::parse(p.file_name().unwrap().to_str().unwrap()).unwrap().first
                        == n.first
                    {
                        std::fs::remove_file(p).unwrap();
                    }
                }
                // A third flush after the gap.
                let p = plant(
                    root,
                    &f[0][0],
                    &store::RawName { first: n.last + 1, last: n.last + 1, ..n.clone() },
                );
                let ck = store::Checkpoint { seq: 3, epoch: 0, last: n.last + 1, fingerprint: None };
                store::write_checkpoint(root, "events", 0, &ck, &store::Faults::default()).unwrap();
                p
            },
            false,
        ),
    ]
}

#[test]
fn vigie_store_check_reports_each_kind_of_damage_and_repair_quarantines_it() {
    for (kind, damage, repairable) in damage_cases() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let files = clean_store(root);
        let (code, out) = store_check(root, false);
        assert_eq!(code, Some(0), "{kind}: the clean store\n{out}");
        let path = damage(root, &files);
        let rel = path.strip_prefix(root).unwrap().display().to_string();
        let (code, out) = store_check(root, false);
        let row = out
            .lines()
            .find(|l| l.contains(&rel))
            .unwrap_or_else(|| panic!("{kind}: {rel} not reported\n{out}"));
        assert!(row.contains(kind), "{kind}: {row}");
        if kind == "gap" {
            assert!(row.starts_with("note"), "a gap is a note: {row}");
            assert_eq!(code, Some(0), "{kind}\n{out}");
            continue;
        }
        assert_eq!(code, Some(1), "{kind}\n{out}");
        let (code, out) = store_check(root, true);
        assert_eq!(code, Some(1), "{kind}: problems were found\n{out}");
        let (code, out) = store_check(root, false);
        if repairable {
            assert_eq!(code, Some(0), "{kind}: repaired\n{out}");
            assert!(!path.exists() && root.join("quarantine").join(&rel).exists(), "{kind}: quarantined");
        } else {
            assert_eq!(code, Some(1), "{kind}: reported, not repaired\n{out}");
        }
    }
}

/// `vigie store check` of a store in a bucket, as the service's
/// configuration reaches it (`--config`: `s3_endpoint`, ...; the keys from
/// the AWS environment variables).
fn bucket_check(
    loc: &vigie_ingest::store::objects::S3Location,
    dir: &Path,
    repair: bool,
) -> (Option<i32>, String) {
    let cfg = dir.join("bucket.toml");
    let target = format!("s3://{}/{}", loc.bucket, loc.prefix);
    let here = dir.join("unused");
    let toml = service_toml("127.0.0.1:1", "events", "g", &here, "").replace(
        &format!("path = \"{}\"", here.display()),
        &format!(
            "path = \"{target}\"\ns3_endpoint = \"{}\"\ns3_region = \"us-east-1\"\ns3_allow_http = true",
            loc.endpoint.clone().unwrap()
        ),
    );
    std::fs::write(&cfg, toml).unwrap();
    let mut args = vec!["store", "check", &target, "--config", cfg.to_str().unwrap()];
    if repair {
        args.push("--repair");
    }
    let (id, secret) = loc.credentials.clone().unwrap();
    let out = vigie()
        .args(&args)
        .env("AWS_ACCESS_KEY_ID", id)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .output()
        .unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stdout).to_string())
}

/// A store laid out in a folder, put whole in a fresh prefix of the bucket.
fn uploaded(
    root: &Path,
    test: &str,
) -> (vigie_ingest::store::objects::S3Location, vigie_ingest::store::bucket::Bucket) {
    let loc = s3_location(test).unwrap();
    let b = vigie_ingest::store::bucket::Bucket::open(&loc, "uploader").unwrap();
    b.upload_since(root, &["raw", "summaries", "aggregates", "offsets"], std::time::UNIX_EPOCH).unwrap();
    (loc, b)
}

#[test]
fn vigie_store_check_of_a_bucket_reports_each_kind_of_damage_and_repair_quarantines_it() {
    if s3_location("probe").is_none() {
        return;
    }
    for (kind, damage, repairable) in damage_cases() {
        let dir = tempfile::tempdir().unwrap();
        let root = &dir.path().join("store");
        let files = clean_store(root);
        let (clean, _) = uploaded(root, "check-clean");
        let (code, out) = bucket_check(&clean, dir.path(), false);
        assert_eq!(code, Some(0), "{kind}: the clean store\n{out}");
        let path = damage(root, &files);
        let rel = path.strip_prefix(root).unwrap().display().to_string();
        let (loc, b) = uploaded(root, "check-damaged");
        let (code, out) = bucket_check(&loc, dir.path(), false);
        let row = out
            .lines()
            .find(|l| l.contains(&rel))
            .unwrap_or_else(|| panic!("{kind}: {rel} not reported\n{out}"));
        assert!(row.contains(kind), "{kind}: {row}");
        if kind == "gap" {
            assert_eq!(code, Some(0), "{kind}\n{out}");
            continue;
        }
        assert_eq!(code, Some(1), "{kind}\n{out}");
        let (code, out) = bucket_check(&loc, dir.path(), true);
        assert_eq!(code, Some(1), "{kind}: problems were found\n{out}");
        let (code, out) = bucket_check(&loc, dir.path(), false);
        if repairable {
            assert_eq!(code, Some(0), "{kind}: repaired\n{out}");
            assert!(b.get(&rel).unwrap().is_none(), "{kind}: still in place");
            assert!(b.get(&format!("quarantine/{rel}")).unwrap().is_some(), "{kind}: quarantined");
        } else {
            assert_eq!(code, Some(1), "{kind}: reported, not repaired\n{out}");
        }
        // Nothing of the bucket is left on this machine.
        let copies = std::fs::read_dir(std::env::temp_dir())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("vigie-check-"))
            .count();
        assert_eq!(copies, 0, "a local copy of the bucket was left behind");
    }
}
