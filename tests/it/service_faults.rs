//! The service's durable point under faults, without a broker: the
//! pipeline that `vigie ingest` runs, fed message by message, with the
//! store's fault-injection seam failing (or crashing at) every step of
//! every flush in turn. After recovery the raw tier holds each event
//! exactly once. Also: what happens when the source goes backwards.

use crate::common;

use std::cell::Cell;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use rdkafka::TopicPartitionList;
use vigie::metrics::Metrics;
use vigie::service::config;
use vigie_ingest::kafka::{deadletter::DeadLetter, Pipeline, SourceView, Start};
use vigie_ingest::pseudo::Pseudonymiser;
use vigie_ingest::store::{self, FaultMode, Faults};
use vigie_ingest::Ingestor;

const TOPIC: &str = "events";

fn cfg(dir: &Path, extra: &str) -> config::Config {
    let p = dir.join("vigie.toml");
    std::fs::write(&p, service_toml("127.0.0.1:1", TOPIC, "g", &dir.join("store"), extra)).unwrap();
    config::load(&p, std::iter::empty()).unwrap()
}

fn pipeline(cfg: &config::Config, faults: Faults) -> (Pipeline, Arc<Metrics>) {
    pipeline_on(&Backend::Folder, cfg, faults)
}

/// A pipeline over the store of `backend` (a folder: `store.path`), as a
/// new instance (its own lease holder name on a bucket).
fn pipeline_on(backend: &Backend, cfg: &config::Config, faults: Faults) -> (Pipeline, Arc<Metrics>) {
    let key = key_file(cfg.store.path.parent().unwrap());
    let pseudo = Pseudonymiser::from_key_file(&key).unwrap();
    let holder = format!("test-{:08x}", rand::random::<u32>());
    let root = backend.open(&cfg.store.path, &holder);
    let door =
        Ingestor::new(pseudo, None, Vec::new(), DeadLetter::open(&cfg.kafka, &root, &cfg.store).unwrap());
    let metrics = Arc::new(Metrics::new(10_000));
    (Pipeline::new(&cfg.kafka, root, &cfg.store, door, metrics.clone(), faults), metrics)
}

/// Store steps of one flush of `records()` (three files: one a day, the
/// dead letters, the checkpoint): in a folder each file and the checkpoint
/// are written then renamed; in a bucket each is one PUT.
fn steps_per_flush(backend: &Backend) -> u64 {
    match backend {
        Backend::Folder => 9,
        Backend::S3(_) => 5,
    }
}

/// Records of three days, interleaved so that every flush writes one file
/// per day (three files, so a fault can fall between two renames), with
/// bad records among them for the dead-letter store.
fn records() -> Vec<Vec<u8>> {
    let good = recent_records(3, 3, 5);
    let per_day = good.len() / 3;
    let mut out = Vec::new();
    for i in 0..per_day.min(200) {
        for d in 0..3 {
            out.push(good[d * per_day + i].clone());
        }
        if i % 90 == 45 {
            out.push(BAD_RECORDS[(i / 90) % BAD_RECORDS.len()].0.as_bytes().to_vec());
        }
    }
    out
}

fn is_bad(r: &[u8]) -> bool {
    BAD_RECORDS.iter().any(|(b, _)| b.as_bytes() == r)
}

fn good_ids(records: &[Vec<u8>]) -> Vec<String> {
    let mut ids: Vec<String> = records.iter().filter(|r| !is_bad(r)).map(|r| event_id(r)).collect();
    ids.sort();
    ids.dedup();
    ids
}

/// Two flushes of 301 messages (602 in all).
const BATCH: usize = 301;

/// Feeds `records[from..]` to partition 0, flushing every BATCH messages
/// and at the end. Returns at the first flush that fails.
fn feed(
    p: &mut Pipeline,
    records: &[Vec<u8>],
    from: i64,
    committed: &Cell<Option<i64>>,
) -> Result<(), String> {
    feed_by(p, records, from, committed, BATCH)
}

/// [`feed`] with flushes every `batch` messages: a replay after a restart
/// does not cut its flushes where the first run did (they are time-based
/// too), so its files never simply replace the first run's.
fn feed_by(
    p: &mut Pipeline,
    records: &[Vec<u8>],
    from: i64,
    committed: &Cell<Option<i64>>,
    batch: usize,
) -> Result<(), String> {
    let topic: Arc<str> = Arc::from(TOPIC);
    let commit = |t: &TopicPartitionList| {
        let o = t.elements()[0].offset().to_raw();
        committed.set(o);
        Ok(())
    };
    for (i, r) in records.iter().enumerate().skip(from as usize) {
        p.offer(&topic, 0, i as i64, Some(r)).unwrap();
        if (i + 1) % batch == 0 || i + 1 == records.len() {
            p.flush(&topic, 0, &commit).map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

fn view(committed: Option<i64>, end: usize) -> SourceView {
    SourceView { committed, low: Some(0), high: Some(end as i64), fingerprint_at: None }
}

fn start_offset(s: Start) -> i64 {
    match s {
        Start::At(o) => o,
        Start::Beginning => 0,
        Start::Held => panic!("held"),
    }
}

/// The raw tier holds each good event once, its files tile the offsets
/// without overlap, and no temporary file is left.
fn assert_exactly_once(store: &Path, want: &[String], what: &str) {
    let (ids, rows) = raw_event_ids(store);
    assert_eq!(rows, want.len(), "{what}: {rows} rows for {} events", want.len());
    assert_eq!(ids, want, "{what}");
    assert_eq!(range_problems(store, TOPIC), Vec::<String>::new(), "{what}");
    assert!(store::temporaries(store).is_empty(), "{what}: temporary files left");
}

#[test]
fn a_fault_at_any_step_of_any_flush_loses_nothing_and_stores_nothing_twice() {
    fault_at_any_step(&|_| Backend::Folder);
}

#[test]
fn in_a_bucket_a_fault_at_any_step_of_any_flush_loses_nothing_and_stores_nothing_twice() {
    if s3_location("probe").is_none() {
        return;
    }
    fault_at_any_step(&|n| Backend::S3(s3_location(&format!("faults-{n}")).unwrap()));
}

/// Every step of every flush fails, or crashes, in turn; a restart then
/// stores each event exactly once. `backend(n)`: a fresh store for case n.
fn fault_at_any_step(backend: &dyn Fn(u64) -> Backend) {
    let records = records();
    let want = good_ids(&records);
    // A clean run counts the steps.
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(dir.path(), "");
    let counter = Faults::default();
    let b = backend(0);
    let (mut p, _) = pipeline_on(&b, &c, counter.clone());
    feed(&mut p, &records, 0, &Cell::new(None)).unwrap();
    let steps = counter.steps();
    let flushes = records.len().div_ceil(BATCH) as u64;
    // Each flush: one file per day (three days), the dead letters, the
    // checkpoint.
    assert_eq!(records.len(), 2 * BATCH);
    assert_eq!(steps, flushes * steps_per_flush(&b), "steps of a clean run");
    assert_exactly_once(&b.contents(&c.store.path, &dir.path().join("copy")), &want, "clean run");

    for mode in [FaultMode::Fail, FaultMode::Panic] {
        for n in 1..=steps {
            let what = format!("{mode:?} at step {n}");
            let dir = tempfile::tempdir().unwrap();
            let c = cfg(dir.path(), "");
            let b = backend(n);
            let committed = Cell::new(None);
            // First run: stops at the fault (an error ends the process; a
            // panic is a crash, nothing after it runs).
            let (mut p, _) = pipeline_on(&b, &c, Faults::new(mode, n));
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let _ = feed(&mut p, &records, 0, &committed);
            }));
            assert_eq!(r.is_err(), mode == FaultMode::Panic, "{what}");
            drop(p);
            // Second run, as after a restart: temporary files are swept
            // (as `vigie ingest` does at start), the durable point decides.
            store::remove_temporaries(&c.store.path);
            let (mut p, m) = pipeline_on(&b, &c, Faults::default());
            let from = start_offset(p.assign(&Arc::from(TOPIC), 0, view(committed.get(), records.len())));
            assert!(committed.get().is_none_or(|k| k <= from), "{what}: committed beyond the store");
            feed_by(&mut p, &records, from, &committed, 97).unwrap();
            let contents = b.contents(&c.store.path, &dir.path().join("copy"));
            assert_exactly_once(&contents, &want, &what);
            assert_eq!(m.source_resets.with_label_values(&[TOPIC]).get(), 0, "{what}");
            // The dead letters: every bad record at least once, whole lines.
            // (One file per process and day, or per flush in a bucket.)
            let text: String = std::fs::read_dir(contents.join("dead-letter"))
                .unwrap()
                .flatten()
                .map(|f| std::fs::read_to_string(f.path()).unwrap())
                .collect();
            let n_bad = records.iter().filter(|r| is_bad(r)).count();
            let mut offsets: Vec<i64> = text
                .lines()
                .map(|l| {
                    serde_json::from_str::<serde_json::Value>(l).unwrap()["source"]["offset"]
                        .as_i64()
                        .unwrap()
                })
                .collect();
            offsets.sort_unstable();
            offsets.dedup();
            assert_eq!(offsets.len(), n_bad, "{what}: every bad record dead-lettered");
            for l in text.lines() {
                serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("{what}: {e}: {l}"));
            }
        }
    }
}

#[test]
fn a_store_that_cannot_be_written_keeps_the_batch_and_heals_without_a_restart() {
    heals_without_a_restart(&|_| Backend::Folder);
}

#[test]
fn a_bucket_that_cannot_be_written_keeps_the_batch_and_heals_without_a_restart() {
    if s3_location("probe").is_none() {
        return;
    }
    heals_without_a_restart(&|n| Backend::S3(s3_location(&format!("heals-{n}")).unwrap()));
}

fn heals_without_a_restart(backend: &dyn Fn(u64) -> Backend) {
    let records = records();
    let want = good_ids(&records);
    // Every step of the second flush fails once, in turn; the same
    // pipeline retries and goes on.
    let per_flush = steps_per_flush(&backend(0));
    for n in 1..=per_flush {
        let dir = tempfile::tempdir().unwrap();
        let c = cfg(dir.path(), "");
        let b = backend(n);
        let (mut p, m) = pipeline_on(&b, &c, Faults::new(FaultMode::Fail, n + per_flush));
        let topic: Arc<str> = Arc::from(TOPIC);
        let committed = Cell::new(None);
        let commit = |t: &TopicPartitionList| {
            committed.set(t.elements()[0].offset().to_raw());
            Ok(())
        };
        let mut failures = 0;
        for (i, r) in records.iter().enumerate() {
            p.offer(&topic, 0, i as i64, Some(r)).unwrap();
            if (i + 1) % BATCH == 0 || i + 1 == records.len() {
                p.flush_some(&[(topic.clone(), 0)], &commit);
                if !p.writable() {
                    failures += 1;
                    // Nothing past the last whole flush is committed.
                    assert_eq!(committed.get(), Some(BATCH as i64), "step {n}");
                    assert_eq!(m.store_writable.get(), 0);
                    assert!(m.ready().is_err());
                    // The retry writes the kept batch again, then goes on.
                    p.flush_some(&[(topic.clone(), 0)], &commit);
                    assert!(p.writable(), "step {n}: healed");
                }
            }
        }
        assert_eq!(failures, 1, "step {n}");
        assert_eq!(m.store_write_failures.with_label_values(&["flush"]).get(), 1);
        assert_eq!(m.store_writable.get(), 1);
        assert!(m.ready().is_ok());
        assert_eq!(committed.get(), Some(records.len() as i64));
        let contents = b.contents(&c.store.path, &dir.path().join("copy"));
        assert_exactly_once(&contents, &want, &format!("retried step {n}"));
    }
}

/// Stores `records` in a fresh pipeline and returns the store's checkpoint.
fn stored(c: &config::Config, records: &[Vec<u8>]) -> store::Checkpoint {
    let (mut p, _) = pipeline(c, Faults::default());
    p.assign(&Arc::from(TOPIC), 0, view(None, records.len()));
    feed(&mut p, records, 0, &Cell::new(None)).unwrap();
    store::read_checkpoint(&c.store.path, TOPIC, 0).best.unwrap()
}

#[test]
fn a_source_that_went_backwards_starts_a_new_incarnation_and_skips_nothing() {
    let all = records();
    let (old, new) = all.split_at(400);
    let new = &new[..200];
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(dir.path(), "");
    let ck = stored(&c, old);
    assert_eq!((ck.epoch, ck.last), (0, 399));

    // The topic was recreated and holds 300 records: the store's durable
    // point is beyond its end.
    let (mut p, m) = pipeline(&c, Faults::default());
    let v = SourceView { committed: None, low: Some(0), high: Some(200), fingerprint_at: None };
    assert_eq!(p.assign(&Arc::from(TOPIC), 0, v), Start::At(0));
    assert_eq!(m.source_resets.with_label_values(&[TOPIC]).get(), 1);
    feed(&mut p, new, 0, &Cell::new(None)).unwrap();
    let ck = store::read_checkpoint(&c.store.path, TOPIC, 0).best.unwrap();
    assert_eq!((ck.epoch, ck.last), (1, 199));
    // Both incarnations are stored whole, their files apart.
    let mut want = good_ids(old);
    want.extend(good_ids(new));
    want.sort();
    let (ids, rows) = raw_event_ids(&c.store.path);
    assert_eq!(rows, want.len());
    assert_eq!(ids, want);
    let files = store::partition_files(&c.store.path, TOPIC, 0);
    assert!(files.iter().any(|(_, n)| n.epoch == 0 && n.last == 399));
    assert!(files.iter().any(|(_, n)| n.epoch == 1 && n.first == 0));
    assert_eq!(store::complete_raw_files(&c.store.path).len(), files.len());

    // Grown past the old offsets: the record at the checkpoint is not the
    // one stored there.
    let (mut p, m) = pipeline(&c, Faults::default());
    let same = SourceView {
        committed: None,
        low: Some(0),
        high: Some(900),
        fingerprint_at: ck.fingerprint.map(|f| (ck.last, f)),
    };
    assert_eq!(p.assign(&Arc::from(TOPIC), 0, same), Start::At(200), "the same record: no reset");
    // A probe of another offset (the checkpoint moved between the probe
    // and the assignment: another instance's last flush) says nothing.
    let elsewhere = SourceView { fingerprint_at: Some((ck.last - 7, ck.fingerprint.unwrap() ^ 1)), ..same };
    assert_eq!(
        p.assign(&Arc::from(TOPIC), 0, elsewhere),
        Start::At(200),
        "a probe of another offset: no reset"
    );
    let other = SourceView { fingerprint_at: Some((ck.last, ck.fingerprint.unwrap() ^ 1)), ..same };
    assert_eq!(p.assign(&Arc::from(TOPIC), 0, other), Start::At(0));
    assert_eq!(m.source_resets.with_label_values(&[TOPIC]).get(), 1);
    assert_eq!(store::read_checkpoint(&c.store.path, TOPIC, 0).best.unwrap().epoch, 2);
}

#[test]
fn with_on_source_reset_stop_the_partition_is_held_and_reported() {
    let all = records();
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(dir.path(), "on_source_reset = \"stop\"");
    stored(&c, &all[..400]);
    let (mut p, m) = pipeline(&c, Faults::default());
    let v = SourceView { committed: Some(400), low: Some(0), high: Some(10), fingerprint_at: None };
    assert_eq!(p.assign(&Arc::from(TOPIC), 0, v), Start::Held);
    assert_eq!(m.source_resets.with_label_values(&[TOPIC]).get(), 1);
    assert_eq!(m.source_reset_blocked.with_label_values(&[TOPIC]).get(), 1);
    assert!(m.ready().unwrap_err().contains("source reset"));
    // Nothing moved in the store.
    assert_eq!(store::read_checkpoint(&c.store.path, TOPIC, 0).best.unwrap().epoch, 0);
}

#[test]
fn records_the_source_deleted_before_vigie_read_them_are_counted() {
    let all = records();
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(dir.path(), "");
    stored(&c, &all[..300]);
    let (mut p, m) = pipeline(&c, Faults::default());
    // Retention removed offsets up to 449; the topic goes on to 600.
    let v = SourceView { committed: Some(300), low: Some(450), high: Some(602), fingerprint_at: None };
    assert_eq!(p.assign(&Arc::from(TOPIC), 0, v), Start::At(450));
    assert_eq!(m.source_skipped.with_label_values(&[TOPIC]).get(), 150);
    assert_eq!(m.source_resets.with_label_values(&[TOPIC]).get(), 0);
}

#[test]
fn a_damaged_checkpoint_falls_back_and_reads_the_last_flush_again() {
    let records = records();
    let want = good_ids(&records);
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(dir.path(), "");
    let ck = stored(&c, &records);
    // Damage the newest slot: the other one is a flush older.
    let newest = c.store.path.join(format!("offsets/{TOPIC}+0.{}", ck.seq % 2));
    std::fs::write(&newest, "vigie-checkpoint v2 garbage\n").unwrap();
    let (mut p, m) = pipeline(&c, Faults::default());
    let from = start_offset(p.assign(&Arc::from(TOPIC), 0, view(Some(records.len() as i64), records.len())));
    let last_flush = ((records.len() - 1) / BATCH * BATCH) as i64;
    assert_eq!(from, last_flush, "reads the last flush again");
    assert_eq!(m.store_damaged_checkpoints.get(), 1);
    assert!(m.store_incomplete_removed.get() >= 1);
    feed(&mut p, &records, from, &Cell::new(None)).unwrap();
    assert_exactly_once(&c.store.path, &want, "after a damaged checkpoint");

    // Both slots damaged: only the group's commit is known; the files from
    // it on go to quarantine and are read again.
    for slot in 0..2 {
        std::fs::write(c.store.path.join(format!("offsets/{TOPIC}+0.{slot}")), "x").unwrap();
    }
    let (mut p, m) = pipeline(&c, Faults::default());
    let from = start_offset(p.assign(&Arc::from(TOPIC), 0, view(Some(BATCH as i64), records.len())));
    assert_eq!(from, BATCH as i64);
    assert!(m.store_quarantined.with_label_values(&["raw", "unverified_flush"]).get() >= 1);
    assert!(c.store.path.join("quarantine/raw").is_dir());
    feed(&mut p, &records, from, &Cell::new(None)).unwrap();
    assert_exactly_once(&c.store.path, &want, "after two damaged slots");
}

#[test]
fn an_event_older_than_the_raw_retention_is_refused_not_written_into_a_purged_day() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(dir.path(), "");
    assert_eq!(c.store.raw_retention_days, 30);
    let (mut p, _) = pipeline(&c, Faults::default());
    let day =
        |ago: u64| (chrono::Utc::now() - chrono::Duration::days(ago as i64)).format("%Y-%m-%dT12:00:00Z");
    let rec = |id: &str, ago| {
        format!(
            "{{\"event_id\":\"{id}\",\"ts\":\"{}\",\"site\":\"s1\",\"worker\":\"w\",\"kind\":\"scan\"}}",
            day(ago)
        )
    };
    let topic: Arc<str> = Arc::from(TOPIC);
    p.offer(&topic, 0, 0, Some(rec("old", 31).as_bytes())).unwrap();
    p.offer(&topic, 0, 1, Some(rec("kept", 30).as_bytes())).unwrap();
    p.flush(&topic, 0, &|_| Ok(())).unwrap();
    let (ids, _) = raw_event_ids(&c.store.path);
    assert_eq!(ids, ["kept"]);
    let dl = std::fs::read_dir(c.store.path.join("dead-letter")).unwrap().flatten().next().unwrap();
    let line: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(dl.path()).unwrap().lines().next().unwrap()).unwrap();
    assert_eq!(line["reason"], "expired_timestamp");
    assert_eq!(line["source"]["offset"], 0);
}

#[test]
fn a_source_that_goes_backwards_while_read_starts_a_new_epoch_without_a_rebalance() {
    let all = records();
    let (old, new) = all.split_at(400);
    let new = &new[..150];
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(dir.path(), "");
    let (mut p, m) = pipeline(&c, Faults::default());
    p.assign(&Arc::from(TOPIC), 0, view(None, old.len()));
    let topic: Arc<str> = Arc::from(TOPIC);
    // 400 records read, 301 of them flushed, 99 still buffered; then the
    // broker loses its state and offsets start again at 0.
    for (i, r) in old.iter().enumerate() {
        p.offer(&topic, 0, i as i64, Some(r)).unwrap();
        if i + 1 == BATCH {
            p.flush(&topic, 0, &|_| Ok(())).unwrap();
        }
    }
    for (i, r) in new.iter().enumerate() {
        p.offer(&topic, 0, i as i64, Some(r)).unwrap();
    }
    p.flush(&topic, 0, &|_| Ok(())).unwrap();
    assert_eq!(m.source_resets.with_label_values(&[TOPIC]).get(), 1);
    let ck = store::read_checkpoint(&c.store.path, TOPIC, 0).best.unwrap();
    assert_eq!((ck.epoch, ck.last), (1, 149));
    let mut want = good_ids(old);
    want.extend(good_ids(new));
    want.sort();
    let (ids, rows) = raw_event_ids(&c.store.path);
    assert_eq!(rows, want.len(), "both incarnations whole, nothing overwritten");
    assert_eq!(ids, want);
    assert_eq!(
        store::complete_raw_files(&c.store.path).len(),
        store::partition_files(&c.store.path, TOPIC, 0).len()
    );

    // With on_source_reset = "stop", what was read is kept and the
    // partition is held: nothing of the new incarnation is taken.
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(dir.path(), "on_source_reset = \"stop\"");
    let (mut p, m) = pipeline(&c, Faults::default());
    for (i, r) in old.iter().enumerate() {
        p.offer(&topic, 0, i as i64, Some(r)).unwrap();
    }
    for (i, r) in new.iter().enumerate() {
        p.offer(&topic, 0, i as i64, Some(r)).unwrap();
    }
    p.flush(&topic, 0, &|_| Ok(())).unwrap();
    assert_eq!(m.source_reset_blocked.with_label_values(&[TOPIC]).get(), 1);
    assert_eq!(p.held().len(), 1);
    assert_eq!(raw_event_ids(&c.store.path).0, good_ids(old));
}

#[test]
fn past_its_daily_cap_the_local_dead_letter_store_counts_and_keeps_nothing_more() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("vigie.toml");
    let text = service_toml("127.0.0.1:1", TOPIC, "g", &dir.path().join("store"), "")
        .replace("raw_retention_days = 30", "raw_retention_days = 30\nmax_dead_letter_mib = 0");
    std::fs::write(&p, text).unwrap();
    let c = config::load(&p, std::iter::empty()).unwrap();
    let (mut p, _) = pipeline(&c, Faults::default());
    let topic: Arc<str> = Arc::from(TOPIC);
    for (i, (bad, _)) in BAD_RECORDS.iter().enumerate() {
        p.offer(&topic, 0, i as i64, Some(bad.as_bytes())).unwrap();
    }
    p.flush(&topic, 0, &|_| Ok(())).unwrap();
    let files: Vec<_> = std::fs::read_dir(c.store.path.join("dead-letter")).unwrap().flatten().collect();
    assert!(files.iter().all(|f| f.metadata().unwrap().len() == 0), "nothing kept past the cap");
    assert_eq!(p.dead_letters_not_kept(), BAD_RECORDS.len() as u64);
    // The offsets are durable all the same: the refusals are counted.
    assert_eq!(store::durable_offset(&c.store.path, TOPIC, 0), Some(BAD_RECORDS.len() as i64 - 1));
}

#[test]
fn a_flood_of_sites_makes_smaller_flushes_never_one_file_per_site_without_bound() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(dir.path(), "max_batch_folders = 8");
    assert_eq!(c.kafka.max_batch_folders, 8);
    let (mut p, metrics) = pipeline(&c, Faults::default());
    // An hour ago: within the store's retention and never ahead of the
    // service's clock, whatever the time of day the test runs (08:00 of
    // the current day was refused as a future timestamp before 07:55 UTC).
    let recent = (chrono::Utc::now() - chrono::Duration::hours(1)).format("%Y-%m-%dT%H:%M:%SZ");
    let topic: Arc<str> = Arc::from(TOPIC);
    let mut written_per_flush = Vec::new();
    let mut flushed_files = 0;
    // 100 messages, each from a site of its own: the service's own loop
    // flushes when `batch_full` says so (as here).
    for i in 0..100i64 {
        let r = format!(
            "{{\"event_id\":\"e{i}\",\"ts\":\"{recent}\",\"site\":\"site-{i}\",\"worker\":\"w\",\"kind\":\"scan\"}}"
        );
        p.offer(&topic, 0, i, Some(r.as_bytes())).unwrap();
        if p.batch_full(&topic, 0, c.kafka.max_batch_events, c.kafka.max_batch_folders) {
            p.flush(&topic, 0, &|_| Ok(())).unwrap();
            let files = store::complete_raw_files(&c.store.path).len();
            written_per_flush.push(files - flushed_files);
            flushed_files = files;
        }
    }
    p.flush(&topic, 0, &|_| Ok(())).unwrap();
    // 12 flushes of 8 folders each, then the last 4 at the end.
    assert_eq!(written_per_flush, vec![8; 12]);
    assert_eq!(store::complete_raw_files(&c.store.path).len(), 100);
    assert_eq!(metrics.store_folder_capped_flushes.get(), 12);
    let (ids, _) = raw_event_ids(&c.store.path);
    assert_eq!(ids.len(), 100);
}

#[test]
fn a_message_that_arrives_after_its_partition_was_revoked_is_left_to_the_new_owner() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(dir.path(), "");
    let (mut p, _) = pipeline(&c, Faults::default());
    let records = recent_records(3, 2, 9);
    let topic: Arc<str> = Arc::from(TOPIC);
    assert_eq!(start_offset(p.assign(&topic, 0, view(None, records.len()))), 0);
    for (i, r) in records.iter().enumerate().take(100) {
        p.offer(&topic, 0, i as i64, Some(r)).unwrap();
    }
    // Revoked: what was read is flushed and committed up to 99.
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(TOPIC, 0);
    let committed = Cell::new(None);
    let commit = |t: &TopicPartitionList| {
        committed.set(Some(t.elements()[0].offset().to_raw().unwrap()));
        Ok(())
    };
    p.flush_and_release(Some(&tpl), &commit);
    assert_eq!(committed.get(), Some(100));
    // Messages fetched before the revocation still arrive, among them one
    // already stored (it must not look like the source going backwards):
    // they belong to the new owner, who reads them from offset 100.
    for i in [100usize, 101, 50] {
        p.offer(&topic, 0, i as i64, Some(&records[i])).unwrap();
    }
    p.flush(&topic, 0, &commit).unwrap();
    assert_eq!(range_problems(&c.store.path, TOPIC), Vec::<String>::new());
    let (_, rows) = raw_event_ids(&c.store.path);
    assert_eq!(rows, good_ids(&records[..100]).len());
    assert_eq!(store::read_checkpoint(&c.store.path, TOPIC, 0).best.unwrap().last, 99);
    // Given back, the partition is read on from its checkpoint.
    assert_eq!(start_offset(p.assign(&topic, 0, view(Some(100), records.len()))), 100);
    p.offer(&topic, 0, 100, Some(&records[100])).unwrap();
    p.flush(&topic, 0, &commit).unwrap();
    assert_eq!(store::read_checkpoint(&c.store.path, TOPIC, 0).best.unwrap().last, 100);
}

#[test]
fn a_fence_in_the_middle_of_a_poll_is_not_taken_for_a_source_that_went_backwards() {
    // As above, but A meets the fence inside one poll's batch of messages:
    // the flush that finds B's durable point ahead comes at message 450,
    // and the batch goes on to 800. The messages after the fence are left
    // (the loop seeks to 301 after the batch), none is taken for the source
    // going backwards, and every event is stored once.
    let dir = tempfile::tempdir().unwrap();
    let cfg = cfg(dir.path(), "");
    let (mut a, ma) = pipeline(&cfg, Faults::default());
    let (mut b, _) = pipeline(&cfg, Faults::default());
    let recs = records();
    let want = good_ids(&recs);
    let topic: Arc<str> = Arc::from(TOPIC);
    let commit = |_: &TopicPartitionList| Ok(());
    let end = recs.len();
    let polled = |from: usize, to: usize| -> Vec<vigie_ingest::kafka::Polled<'_>> {
        (from..to.min(end)).map(|i| (TOPIC, 0, i as i64, Some(recs[i].as_slice()))).collect()
    };
    assert_eq!(start_offset(a.assign(&topic, 0, view(None, end))), 0);
    a.offer_batch(&polled(0, 400), 100_000, 1000, &commit).unwrap();
    assert_eq!(start_offset(b.assign(&topic, 0, view(None, end))), 0);
    b.offer_batch(&polled(0, 301), 100_000, 1000, &commit).unwrap();
    b.flush(&topic, 0, &commit).unwrap();
    // A's buffer fills at 450 events within this batch: its flush is fenced.
    a.offer_batch(&polled(400, 800), 450, 1000, &commit).unwrap();
    assert_eq!(ma.store_fenced_flushes.get(), 1);
    assert_eq!(ma.source_resets.with_label_values(&[TOPIC]).get(), 0, "a fence taken for a reset");
    assert_eq!(a.take_reseeks(), vec![(topic.clone(), 0, 301)]);
    // After the seek A reads on from 301.
    a.offer_batch(&polled(301, end), 100_000, 1000, &commit).unwrap();
    a.flush(&topic, 0, &commit).unwrap();
    assert_eq!(ma.source_resets.with_label_values(&[TOPIC]).get(), 0);
    assert_exactly_once(&dir.path().join("store"), &want, "a fence inside a poll");
}

#[test]
fn two_instances_that_both_believe_they_own_a_partition_never_store_it_twice() {
    two_owners(&Backend::Folder);
}

#[test]
fn two_instances_that_both_believe_they_own_a_partition_of_a_bucket_never_store_it_twice() {
    if let Some(loc) = s3_location("two-owners") {
        two_owners(&Backend::S3(loc));
    }
}

fn two_owners(backend: &Backend) {
    // A owns partition 0 from offset 0 and buffers the first 400 records;
    // its session times out unseen and B, given the partition from the
    // group's commit (none: offset 0), reads and stores 0..300 first. A's
    // flush then finds the durable point moved under it: it writes nothing
    // and asks to read again after B's. A then stores 301.. and B, fenced
    // in turn, resumes after A: each event is stored once, the ranges tile
    // the offsets, and the consumers were told where to read from.
    let dir = tempfile::tempdir().unwrap();
    let cfg = cfg(dir.path(), "");
    let (mut a, ma) = pipeline_on(backend, &cfg, Faults::default());
    let (mut b, mb) = pipeline_on(backend, &cfg, Faults::default());
    let recs = records();
    let want = good_ids(&recs);
    let topic: Arc<str> = Arc::from(TOPIC);
    let commit = |_: &TopicPartitionList| Ok(());
    let end = recs.len();
    assert_eq!(start_offset(a.assign(&topic, 0, view(None, end))), 0);
    for (i, r) in recs.iter().enumerate().take(400) {
        a.offer(&topic, 0, i as i64, Some(r)).unwrap();
    }
    assert_eq!(start_offset(b.assign(&topic, 0, view(None, end))), 0);
    for (i, r) in recs.iter().enumerate().take(301) {
        b.offer(&topic, 0, i as i64, Some(r)).unwrap();
    }
    b.flush(&topic, 0, &commit).unwrap();
    assert!(b.take_reseeks().is_empty());
    // A's flush is fenced: nothing written, read again from 301.
    a.flush(&topic, 0, &commit).unwrap();
    assert_eq!(a.take_reseeks(), vec![(topic.clone(), 0, 301)]);
    assert_eq!(ma.store_fenced_flushes.get(), 1);
    assert_eq!(a.root().read_checkpoint(TOPIC, 0).unwrap().best.unwrap().last, 300);
    // A reads on from 301 and stores the rest; B, which read on to 500
    // meanwhile, is fenced in turn and told to resume after A.
    for (i, r) in recs.iter().enumerate().skip(301).take(200) {
        b.offer(&topic, 0, i as i64, Some(r)).unwrap();
    }
    for (i, r) in recs.iter().enumerate().skip(301) {
        a.offer(&topic, 0, i as i64, Some(r)).unwrap();
    }
    a.flush(&topic, 0, &commit).unwrap();
    b.flush(&topic, 0, &commit).unwrap();
    assert_eq!(b.take_reseeks(), vec![(topic.clone(), 0, end as i64)]);
    assert_eq!(mb.store_fenced_flushes.get(), 1);
    let contents = backend.contents(&cfg.store.path, &dir.path().join("copy"));
    assert_exactly_once(&contents, &want, "two owners of one partition");
}

/// A partition's buffer is flushed `flush_interval_ms` after its first
/// message, and a flush the store refused is retried after its back-off,
/// both on tokio's clock: paused and advanced here, never slept.
#[tokio::test(start_paused = true)]
async fn buffers_and_back_off_follow_tokios_clock() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(dir.path(), "");
    // The first write of the store fails ("no space left"), as a full
    // disk would; the next ones succeed.
    let faults = Faults::new(FaultMode::Fail, 1);
    let (mut p, m) = pipeline(&c, faults.clone());
    let records = records();
    let topic: Arc<str> = Arc::from(TOPIC);
    let committed = Cell::new(None);
    let commit = |t: &TopicPartitionList| {
        committed.set(t.elements()[0].offset().to_raw());
        Ok(())
    };
    for (i, r) in records.iter().take(10).enumerate() {
        p.offer(&topic, 0, i as i64, Some(r)).unwrap();
    }
    let interval = Duration::from_secs(5);
    let due = |p: &mut Pipeline| p.flush_due(1_000_000, interval, &commit);
    due(&mut p);
    tokio::time::advance(Duration::from_millis(4_999)).await;
    due(&mut p);
    assert_eq!((faults.steps(), committed.get()), (0, None), "not due before its interval");
    tokio::time::advance(Duration::from_millis(1)).await;
    due(&mut p);
    assert_eq!(faults.steps(), 1, "due at its interval: the first write fails");
    assert!(!p.writable());
    assert_eq!(m.store_writable.get(), 0);
    // The first back-off is 200 ms.
    tokio::time::advance(Duration::from_millis(199)).await;
    due(&mut p);
    assert_eq!((faults.steps(), committed.get()), (1, None), "no attempt within the back-off");
    tokio::time::advance(Duration::from_millis(1)).await;
    due(&mut p);
    assert_eq!(committed.get(), Some(10), "retried after the back-off, then committed");
    assert!(p.writable());
    assert_eq!(m.store_writable.get(), 1);
    let want: Vec<String> = good_ids(&records[..10]);
    assert_exactly_once(&c.store.path, &want, "after the retry");
}
