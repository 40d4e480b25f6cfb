//! The service's analysis and purge cycles (docs/design.md, "The analysis
//! cycle" and "Tiers"), and the evidence of the source's own retention.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use polars::prelude::*;
use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use vigie_analyze::employer::Employer;
use vigie_analyze::findings::{Findings, InputSummary, KeyUse, Provenance};
use vigie_analyze::policy::Policy;
use vigie_analyze::rules::{self, Evaluation, Evidence};
use vigie_analyze::shifts;
use vigie_ingest::store::lease::{Lease, Standing};
use vigie_ingest::store::objects::{Location, Objects};
use vigie_ingest::store::{write_parquet_atomic, Durability};

use super::config::Config;
use crate::metrics::Metrics;
use vigie_ingest::store::{self, Retention, Store};

/// What one analysis produced.
pub struct Cycle {
    pub evaluation: Evaluation,
    pub findings: Findings,
    pub shifts: usize,
    pub summaries_written: usize,
    /// Store files this cycle put in quarantine.
    pub quarantined: Vec<Quarantined>,
}

/// A store file moved to `quarantine/` because it could not be read.
#[derive(Debug, Clone, PartialEq)]
pub struct Quarantined {
    pub tier: &'static str,
    /// Where it was, in the store.
    pub path: PathBuf,
    pub reason: &'static str,
}

/// Moves `path` to quarantine, logs it once (path and reason, never the
/// file's bytes) and records it.
fn set_aside(root: &Path, tier: &'static str, path: &Path, reason: &'static str, out: &mut Vec<Quarantined>) {
    match store::quarantine(root, path, reason) {
        Ok(to) => {
            tracing::error!(tier, path = %path.display(), reason, quarantine = %to.display(), "A store file cannot be read: quarantined, the analysis goes on without it");
            out.push(Quarantined { tier, path: path.to_path_buf(), reason });
        }
        Err(e) => {
            tracing::error!(tier, path = %path.display(), reason, error = %e, "A store file cannot be read and could not be quarantined");
        }
    }
}

/// Keeps the files that pass `check`; the others go to quarantine.
fn screen(
    root: &Path,
    tier: &'static str,
    files: Vec<PathBuf>,
    check: impl Fn(&Path) -> Result<(), &'static str>,
    out: &mut Vec<Quarantined>,
) -> Vec<PathBuf> {
    files
        .into_iter()
        .filter(|f| match check(f) {
            Ok(()) => true,
            Err(reason) => {
                set_aside(root, tier, f, reason, out);
                false
            }
        })
        .collect()
}

/// Runs `read` over `files`; when it fails, decodes each file alone,
/// quarantines those that do not decode, and runs it once more. The error
/// left names no file content.
fn read_or_isolate<T>(
    root: &Path,
    tier: &'static str,
    files: Vec<PathBuf>,
    read: impl Fn(&[PathBuf]) -> anyhow::Result<T>,
    out: &mut Vec<Quarantined>,
) -> anyhow::Result<T> {
    match read(&files) {
        Ok(v) => Ok(v),
        Err(_) => {
            // Each file alone, through the same read: what fails it does
            // not decode, or is not what the tier holds.
            let check = |f: &Path| match store::decode_parquet(f) {
                Err(reason) => Err(reason),
                Ok(()) => read(&[f.to_path_buf()]).map(|_| ()).map_err(|_| "wrong_schema"),
            };
            let good = screen(root, tier, files, check, out);
            read(&good).map_err(|_| {
                anyhow::anyhow!("the {tier} tier could not be read, even without the files that fail alone")
            })
        }
    }
}

/// What `findings.json` says of quarantined data (every file still in
/// `quarantine/`, this cycle's and earlier ones), by tier, site, date and
/// reason. Files quarantined because their records are read again from
/// the source (`unverified_flush`) are not missing and are left out.
fn incomplete_of(root: &Path) -> Vec<vigie_analyze::findings::Incomplete> {
    let mut by: BTreeMap<(String, Option<String>, Option<String>, String), u64> = BTreeMap::new();
    for tier in [store::RAW, store::SUMMARIES] {
        for f in store::files_under(&root.join(store::QUARANTINE).join(tier), "parquet") {
            let mut note = f.clone().into_os_string();
            note.push(".reason");
            let text = std::fs::read_to_string(std::path::PathBuf::from(note)).unwrap_or_default();
            let reason = text.split_whitespace().nth(1).unwrap_or("unknown").to_string();
            if reason == "unverified_flush" {
                continue;
            }
            let (site, date) = store::site_and_date(&f);
            *by.entry((tier.to_string(), site, date, reason)).or_default() += 1;
        }
    }
    by.into_iter()
        .map(|((tier, site, date, reason), files)| vigie_analyze::findings::Incomplete {
            tier,
            site,
            date,
            files,
            reason,
        })
        .collect()
}

/// Whether a finding's period covers a date (`YYYY-MM-DD`).
fn period_covers(period: &str, date: &str) -> bool {
    if period == "all" {
        return true;
    }
    chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").is_ok_and(|d| store::week_of(d) == period)
}

/// One analysis over the store: raw events to shift summaries, summaries
/// to findings and aggregates. `events_seen` is the door's count so far.
pub fn analysis_cycle(
    root: &Path,
    policy: &Policy,
    employer: Option<&Employer>,
    evidence: &Evidence,
    events_seen: u64,
) -> anyhow::Result<Cycle> {
    let path = root.join("findings.json");
    analysis_cycle_with(root, policy, employer, evidence, events_seen, &Custody::default(), &mut |b| {
        crate::audit::write_atomic(&path, b)
    })
}

/// What the service's provenance records besides the store: the key's
/// fingerprint and the hashes of the policy and employer files.
#[derive(Debug, Clone, Default)]
pub struct Custody {
    pub key_fingerprint: String,
    pub policy_file_sha256: Option<String>,
    pub employer_sha256: Option<String>,
    /// The store as findings.json names it, when the analysis reads a
    /// local copy of it (a bucket): `s3://BUCKET/PREFIX`.
    pub store: Option<String>,
}

/// The offsets of the raw files an analysis read, per topic, epoch and
/// partition, one range per contiguous run (a gap, such as a purged or
/// quarantined file, starts another).
fn streams_of(files: &[PathBuf]) -> Vec<vigie_analyze::findings::StreamRange> {
    let mut m: BTreeMap<(String, u32, i32), Vec<(i64, i64)>> = BTreeMap::new();
    for f in files {
        let Some(n) = f.file_name().and_then(|n| n.to_str()).and_then(store::RawName::parse) else {
            continue;
        };
        m.entry((n.topic, n.epoch, n.partition)).or_default().push((n.first, n.last));
    }
    let mut out = Vec::new();
    for ((topic, epoch, partition), mut ranges) in m {
        ranges.sort_unstable();
        let mut runs: Vec<(i64, i64)> = Vec::new();
        for (first, last) in ranges {
            match runs.last_mut() {
                Some(r) if first <= r.1.saturating_add(1) => r.1 = r.1.max(last),
                _ => runs.push((first, last)),
            }
        }
        out.extend(runs.into_iter().map(|(first_offset, last_offset)| {
            vigie_analyze::findings::StreamRange {
                topic: topic.clone(),
                epoch: u64::from(epoch),
                partition,
                first_offset,
                last_offset,
            }
        }));
    }
    out
}

/// [`analysis_cycle`] with the provenance's custody details, and
/// `write_findings` to write `findings.json` (the service writes it as the
/// holder of the analysis lease, fenced).
pub fn analysis_cycle_with(
    root: &Path,
    policy: &Policy,
    employer: Option<&Employer>,
    evidence: &Evidence,
    events_seen: u64,
    custody: &Custody,
    write_findings: &mut dyn FnMut(&[u8]) -> anyhow::Result<()>,
) -> anyhow::Result<Cycle> {
    let model = policy.shift_model();
    let raw_dir = root.join(store::RAW);
    let mut quarantined = Vec::new();
    // Only whole flushes: a flush under way, or one a crash cut, is not
    // read (its records will be stored again, whole). A file that cannot
    // be read goes to quarantine; the analysis goes on with the rest.
    let (raw_files, foreign) = store::raw_files_by_kind(root);
    for f in foreign {
        set_aside(root, store::RAW, &f, "bad_name", &mut quarantined);
    }
    let schema = vigie_ingest::store::store_schema();
    let raw_files =
        screen(root, store::RAW, raw_files, |f| store::check_parquet(f, Some(&schema)), &mut quarantined);
    let offered = raw_files.clone();
    let frame = read_or_isolate(
        root,
        store::RAW,
        raw_files,
        |files| Ok(shifts::files_shift_frame(files, &model)?),
        &mut quarantined,
    )?;
    // The offsets of the files read: those not set aside just now.
    let streams = streams_of(&offered.into_iter().filter(|f| f.exists()).collect::<Vec<_>>());
    let oldest_raw = store::dated_folders(&raw_dir).first().map(|(d, _)| *d);
    let mut summaries_written = 0;
    if frame.height() > 0 {
        let day = ((col("start_us") + col("offset_s").cast(DataType::Int64) * lit(1_000_000i64))
            .floor_div(lit(86_400_000_000i64)))
        .alias("vigie_day");
        let with_day = frame.lazy().with_column(day).collect()?;
        for part in with_day.partition_by(["site", "vigie_day"], true)? {
            let site = part.column("site")?.str()?.get(0).unwrap_or("").to_string();
            let day = part.column("vigie_day")?.i64()?.get(0).unwrap_or(0);
            let date = vigie_analyze::rules::local_date(day * 86_400_000_000);
            let path = store::summary_file(root, &site, date);
            // The oldest raw day may miss the start of a night shift that
            // began the day before (already purged): keep its summary.
            if Some(date) == oldest_raw && path.exists() {
                continue;
            }
            let mut part = part.drop("vigie_day")?;
            write_parquet_atomic(&mut part, &path, Durability::Synced)?;
            summaries_written += 1;
        }
    }
    let summary_files = store::files_under(&root.join(store::SUMMARIES), "parquet");
    let summary_files = screen(
        root,
        store::SUMMARIES,
        summary_files,
        |f| {
            if f.file_name().is_some_and(|n| n == "shifts.parquet") {
                store::check_parquet(f, None)
            } else {
                Err("bad_name")
            }
        },
        &mut quarantined,
    );
    let all = read_or_isolate(
        root,
        store::SUMMARIES,
        summary_files,
        |files| Ok(shifts::read_shift_files(files)?),
        &mut quarantined,
    )?;
    let mut evaluation = rules::evaluate_with(&all, policy, employer, evidence);
    // Findings say what they did not see: a quiet week may be a missing one.
    let incomplete = incomplete_of(root);
    for f in &mut evaluation.findings {
        let n: u64 = incomplete
            .iter()
            .filter(|i| i.site.as_deref().is_none_or(|s| s == f.site))
            .filter(|i| i.date.as_deref().is_none_or(|d| period_covers(&f.period, d)))
            .map(|i| i.files)
            .sum();
        if n > 0 {
            f.explanation.push_str(&format!(
                " Incomplete: {n} store file(s) of this period were quarantined (unreadable); see `incomplete`."
            ));
        }
    }

    let rfc = |us: Option<i64>| {
        us.and_then(chrono::DateTime::from_timestamp_micros)
            .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    };
    let mut sites: Vec<String> = all.iter().map(|s| s.site.to_string()).collect();
    sites.dedup();
    sites.sort();
    sites.dedup();
    let input = InputSummary {
        events: events_seen,
        from: rfc(all.iter().map(|s| s.start_us).min()),
        to: rfc(all.iter().map(|s| s.end_us).max()),
        sites,
        files: vec![format!(
            "store: {}",
            custody.store.clone().unwrap_or_else(|| root.display().to_string())
        )],
        ..Default::default()
    };
    let key_fingerprint = if custody.key_fingerprint.is_empty() {
        "not recorded".into()
    } else {
        custody.key_fingerprint.clone()
    };
    let provenance = Provenance {
        streams,
        ..crate::audit::base_provenance(
            policy,
            custody.policy_file_sha256.clone(),
            custody.employer_sha256.clone(),
            key_fingerprint,
        )
    };
    let findings =
        Findings::assemble(policy, &evaluation, input, KeyUse::FromFile, None, provenance, incomplete);
    write_findings(findings.to_json().as_bytes())?;
    let mut by_week: BTreeMap<&str, Vec<_>> = BTreeMap::new();
    for r in &evaluation.aggregates {
        by_week.entry(r.week.as_str()).or_default().push(r.clone());
    }
    for (week, rows) in by_week {
        let mut df = vigie_analyze::aggregates::frame(&rows)?;
        write_parquet_atomic(&mut df, &store::aggregate_file(root, week), Durability::Synced)?;
    }
    // The target steps and before/after comparisons of the latest
    // analysis, beside findings.json.
    let mut steps = vigie_analyze::aggregates::steps_frame(&evaluation.target_steps)?;
    write_parquet_atomic(
        &mut steps,
        &root.join(store::DATED).join("target_steps.parquet"),
        Durability::Synced,
    )?;
    let mut cmp = vigie_analyze::aggregates::comparisons_frame(&evaluation.comparisons)?;
    write_parquet_atomic(&mut cmp, &root.join(store::DATED).join("comparisons.parquet"), Durability::Synced)?;
    Ok(Cycle { shifts: all.len(), summaries_written, evaluation, findings, quarantined })
}

/// Purges the store and refreshes the tier metrics.
pub fn purge_cycle(
    root: &Store,
    retention: &Retention,
    metrics: &Metrics,
) -> anyhow::Result<store::PurgeReport> {
    let now = chrono::Utc::now();
    let report = root.purge(retention, now.date_naive())?;
    for (tier, n) in &report.folders {
        tracing::info!(tier, folders = n, files = report.files.get(tier).copied().unwrap_or(0), "Purged");
    }
    tier_metrics(root, metrics);
    Ok(report)
}

pub fn tier_metrics(root: &Store, metrics: &Metrics) {
    let stats = match root.tier_stats(chrono::Utc::now()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "Could not measure the store's tiers");
            return;
        }
    };
    for t in stats {
        metrics.store_bytes.with_label_values(&[t.tier]).set(t.bytes as i64);
        metrics.store_oldest_age.with_label_values(&[t.tier]).set(t.oldest_age_s);
    }
}

type Inputs = (Policy, Option<Employer>, Evidence, Custody);

/// An analysis cycle that published its findings: logged and counted in
/// one place (as the consumer's events, `vigie_ingest::kafka::events`).
struct AnalysisDone {
    shifts: usize,
    findings: usize,
    series: usize,
    took: Duration,
}

impl AnalysisDone {
    fn emit(self, metrics: &Metrics) {
        tracing::info!(
            shifts = self.shifts,
            findings = self.findings,
            series = self.series,
            seconds = self.took.as_secs_f64(),
            "Analysis done"
        );
        metrics.analysis_duration.set(self.took.as_secs_f64());
        metrics.analysis_last_success.set(chrono::Utc::now().timestamp_millis() as f64 / 1e3);
    }
}

/// An analysis cycle that failed; `store` when the store could not be
/// read or written. The previous findings stay published.
struct AnalysisFailed<'a> {
    error: &'a str,
    store: bool,
}

impl AnalysisFailed<'_> {
    fn emit(self, metrics: &Metrics) {
        tracing::error!(error = self.error, "Analysis failed; the previous findings stay published");
        metrics.analysis_failures.inc();
        if self.store {
            metrics.store_write_failures.with_label_values(&["analysis"]).inc();
        }
    }
}

/// The name this instance holds the analysis lease under: host, process
/// and a random part (two instances on one host, or a restart with the
/// same process id, never share one).
pub fn holder_name() -> String {
    format!("{}:{}:{:08x}", store::host_name(), std::process::id(), rand::random::<u32>())
}

/// The analysis writer's lease over the store (docs/design.md, "Past one
/// machine"): renewed three times a term (one analysis interval) by a task
/// of its own, so that a long analysis cycle does not let it lapse.
struct Writer {
    lease: Arc<tokio::sync::Mutex<Lease>>,
    renewals: tokio::task::JoinHandle<()>,
    /// Told when this instance becomes the writer: it analyses at once.
    became: Arc<tokio::sync::Notify>,
    /// Whether this instance's findings series are published.
    published: Arc<std::sync::atomic::AtomicBool>,
}

impl Writer {
    fn start(
        root: &Store,
        holder: &str,
        term: Duration,
        metrics: Arc<Metrics>,
        mut shutdown: crate::shutdown::Listener,
    ) -> anyhow::Result<Writer> {
        let objects = match root {
            Store::Folder(p) => Objects::open(&Location::Folder(p.clone()))?,
            Store::Bucket(b) => b.objects().clone(),
        };
        let lease = Arc::new(tokio::sync::Mutex::new(Lease::new(
            objects,
            "analysis",
            holder,
            term,
            &["findings.json"],
        )));
        let became = Arc::new(tokio::sync::Notify::new());
        let published = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let renewals = {
            let (lease, became, published) = (lease.clone(), became.clone(), published.clone());
            tokio::spawn(async move {
                let mut every = tokio::time::interval((term / 3).max(Duration::from_millis(50)));
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let (mut was, mut seen) = (false, None::<u64>);
                loop {
                    tokio::select! {
                        biased;
                        () = shutdown.recv() => break,
                        _ = every.tick() => {
                            let standing = lease.lock().await.tick().await;
                            let held = match standing {
                                Ok(Standing::Held { generation }) => {
                                    if !was {
                                        tracing::info!(generation, "This instance is the analysis writer");
                                        became.notify_one();
                                    }
                                    true
                                }
                                Ok(Standing::Other { holder, generation }) => {
                                    if seen != Some(generation) {
                                        tracing::info!(writer = %holder, generation, "Another instance is the analysis writer");
                                        seen = Some(generation);
                                    }
                                    false
                                }
                                Err(e) => {
                                    tracing::warn!(error = %e, "Could not renew or read the analysis lease");
                                    lease.lock().await.held().is_some()
                                }
                            };
                            if !held && published.swap(false, std::sync::atomic::Ordering::SeqCst) {
                                // Another instance publishes the findings now:
                                // this one's series go, so that Prometheus
                                // sees one copy (checked at every renewal: a
                                // cycle may publish just after the loss).
                                metrics.publish(&Evaluation::default());
                            }
                            metrics.analysis_writer.set(i64::from(held));
                            was = held;
                        }
                    }
                }
            })
        };
        Ok(Writer { lease, renewals, became, published })
    }

    /// Renews the lease now (a conditional write): whether this instance
    /// holds it. Checked before each cycle, so that a holder whose term ran
    /// out (a stalled or suspended host) starts none.
    async fn fence(&self) -> bool {
        self.lease.lock().await.fence().await.is_ok()
    }

    /// At shutdown: the lease is let go, so that another instance writes at
    /// once instead of after a term.
    async fn stop(self) {
        let _ = self.renewals.await;
        if let Err(e) = self.lease.lock().await.release().await {
            tracing::warn!(error = %e, "Could not let the analysis lease go; another instance takes it after its term");
        }
    }
}

/// Analysis and purge on their schedules, each in `spawn_blocking`; the
/// first of each runs at once. Only the holder of the analysis lease runs
/// them: with several instances on one store, one analyses, purges and
/// publishes the findings; the others ingest. The task returns when
/// `shutdown` is triggered, once the cycle under way (if any) has ended.
#[allow(clippy::too_many_arguments)]
pub fn spawn_background(
    root: Store,
    holder: String,
    retention: Retention,
    analysis_every: Duration,
    purge_every: Duration,
    inputs: Arc<Inputs>,
    metrics: Arc<Metrics>,
    mut shutdown: crate::shutdown::Listener,
) -> tokio::task::JoinHandle<()> {
    let stage = stage_folder();
    tokio::spawn(async move {
        let writer = match Writer::start(&root, &holder, analysis_every, metrics.clone(), shutdown.clone()) {
            Ok(w) => w,
            Err(e) => {
                tracing::error!(error = %e, "Could not open the analysis lease; no analysis runs");
                return;
            }
        };
        // The first renewal decides who writes before the first cycle and
        // the first purge (both run at once).
        let _ = writer.lease.lock().await.tick().await;
        let mut analysis = tokio::time::interval(analysis_every);
        let mut purge = tokio::time::interval(purge_every);
        analysis.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        purge.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                // Checked between cycles only: a cycle under way (in
                // `spawn_blocking`) is awaited to its end.
                biased;
                () = shutdown.recv() => break,
                () = writer.became.notified() => {
                    // Just became the writer: analyse now, not at the next tick.
                    analysis.reset_immediately();
                }
                _ = purge.tick() => {
                    if !writer.fence().await {
                        continue;
                    }
                    let (root, metrics) = (root.clone(), metrics.clone());
                    let r = tokio::task::spawn_blocking(move || purge_cycle(&root, &retention, &metrics)).await;
                    if let Ok(Err(e)) = r {
                        tracing::error!(error = %e, "Purge failed");
                    }
                }
                _ = analysis.tick() => {
                    if !writer.fence().await {
                        // Not the writer: no local copy of a bucket is kept
                        // (raw events would outlive the bucket's purge), and
                        // the tiers' sizes are listed off the runtime's threads.
                        let (root, metrics, stage) = (root.clone(), metrics.clone(), stage.clone());
                        let _ = tokio::task::spawn_blocking(move || {
                            if matches!(root, Store::Bucket(_)) {
                                let _ = std::fs::remove_dir_all(&stage);
                            }
                            tier_metrics(&root, &metrics);
                        })
                        .await;
                        continue;
                    }
                    let (root, m, inputs, lease) = (root.clone(), metrics.clone(), inputs.clone(), writer.lease.clone());
                    let stage = stage.clone();
                    let published = writer.published.clone();
                    let seen = metrics.events_ingested.get();
                    let r = tokio::task::spawn_blocking(move || {
                        let metrics = m;
                        let started = Instant::now();
                        // findings.json is written as the lease's holder:
                        // renewed first, and only over the version this
                        // holder last wrote (a stale holder writes nothing).
                        let handle = tokio::runtime::Handle::current();
                        let mut write = |b: &[u8]| -> anyhow::Result<()> {
                            handle.block_on(async { lease.lock().await.write("findings.json", b).await })?;
                            Ok(())
                        };
                        let c = match &root {
                            Store::Folder(p) => analysis_cycle_with(p, &inputs.0, inputs.1.as_ref(), &inputs.2, seen, &inputs.3, &mut write)?,
                            Store::Bucket(b) => {
                                let custody = Custody { store: Some(root.to_string()), ..inputs.3.clone() };
                                let analyse = |dir: &Path, write: &mut dyn FnMut(&[u8]) -> anyhow::Result<()>| {
                                    analysis_cycle_with(dir, &inputs.0, inputs.1.as_ref(), &inputs.2, seen, &custody, write)
                                };
                                bucket_cycle(b, &stage, analyse, &mut write)?
                            }
                        };
                        for q in &c.quarantined {
                            metrics.store_quarantined.with_label_values(&[q.tier, q.reason]).inc();
                        }
                        // Published only while this instance still holds
                        // the lease (the renewal task withdraws it otherwise).
                        let holds = handle.block_on(async { lease.lock().await.held().is_some() });
                        let series = if holds {
                            published.store(true, std::sync::atomic::Ordering::SeqCst);
                            metrics.publish(&c.evaluation).series
                        } else {
                            0
                        };
                        tier_metrics(&root, &metrics);
                        AnalysisDone {
                            shifts: c.shifts,
                            findings: c.findings.findings.len(),
                            series,
                            took: started.elapsed(),
                        }
                        .emit(&metrics);
                        Ok::<(), anyhow::Error>(())
                    })
                    .await;
                    match r {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => {
                            let store = e.chain().any(|c| matches!(c.downcast_ref::<vigie_ingest::IngestError>(), Some(vigie_ingest::IngestError::Io { .. })));
                            AnalysisFailed { error: &format!("{e:#}"), store }.emit(&metrics);
                        }
                        Err(e) => AnalysisFailed { error: &format!("the analysis task: {e}"), store: false }.emit(&metrics),
                    }
                }
            }
        }
        writer.stop().await;
        if let Store::Bucket(_) = &root {
            if let Err(e) = std::fs::remove_dir_all(&stage) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(path = %stage.display(), error = %e, "Could not remove the analysis's local copy of the bucket");
                }
            }
        }
    })
}

/// The local folder where the analysis of a bucket store reads its copy
/// of the tiers: `$TMPDIR/vigie-stage-PID-RANDOM`, made by
/// [`bucket_cycle`], only this user's (0700). Copies that instances gone
/// left on this host are removed first.
fn stage_folder() -> PathBuf {
    let tmp = std::env::temp_dir();
    if let Ok(rd) = std::fs::read_dir(&tmp) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let pid =
                name.strip_prefix("vigie-stage-").and_then(|p| p.split('-').next()?.parse::<u32>().ok());
            let Some(pid) = pid else { continue };
            if !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    tmp.join(format!("vigie-stage-{}-{:08x}", std::process::id(), rand::random::<u32>()))
}

/// Makes the stage folder if need be: a new folder, never one found in
/// place (a name another local user could have made first); one in place
/// must be this process's own (this user's, 0700, not a link).
fn private_folder(stage: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let made = std::fs::DirBuilder::new().mode(0o700).create(stage);
    match made {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let m = std::fs::symlink_metadata(stage)?;
            let me = std::fs::metadata("/proc/self")?.uid();
            if m.is_dir() && m.uid() == me && m.mode() & 0o077 == 0 {
                Ok(())
            } else {
                anyhow::bail!("{}: not a private folder of this user", stage.display())
            }
        }
        Err(e) => Err(anyhow::anyhow!("{}: {e}", stage.display())),
    }
}

/// One analysis of a bucket store: the tiers it reads copied to `stage`
/// (raw parts only when new: a part never changes under its name), the
/// analysis run there by `analyse`, then what it wrote (summaries,
/// aggregates, dated) put back in the bucket and what it set aside moved
/// to the bucket's quarantine.
fn bucket_cycle(
    b: &store::bucket::Bucket,
    stage: &Path,
    analyse: impl Fn(&Path, &mut dyn FnMut(&[u8]) -> anyhow::Result<()>) -> anyhow::Result<Cycle>,
    write: &mut dyn FnMut(&[u8]) -> anyhow::Result<()>,
) -> anyhow::Result<Cycle> {
    private_folder(stage)?;
    // Quarantined objects count by their names and reasons only: their
    // content is not copied.
    let fetched = b.mirror(
        stage,
        &[store::RAW, store::SUMMARIES, store::OFFSETS, store::QUARANTINE],
        &[store::SUMMARIES, store::OFFSETS],
        &[store::QUARANTINE],
    )?;
    tracing::debug!(objects = fetched, "Copied the bucket's new objects for the analysis");
    let since = std::time::SystemTime::now();
    let c = analyse(stage, write)?;
    for q in &c.quarantined {
        let key = q.path.strip_prefix(stage).map(store::bucket::path_key).unwrap_or_default();
        if let Err(e) = b.quarantine(&key, q.reason) {
            tracing::error!(key = %key, error = %e, "Could not move an unreadable object to the bucket's quarantine");
        }
    }
    b.upload_since(stage, &[store::SUMMARIES, store::AGGREGATES, store::DATED], since)?;
    Ok(c)
}

/// At start: how long the source topics keep individual events. The
/// earliest record still held (its timestamp) and `retention.ms` where the
/// broker reports it. Failures are logged; the evidence is then partial.
pub async fn source_retention(cfg: &Config) -> Evidence {
    let mut notes = Vec::new();
    let mut days: Option<f64> = None;
    let client =
        vigie_ingest::kafka::client::client_config(&cfg.kafka, vigie_ingest::kafka::client::Role::Admin);
    // retention.ms, from the broker's topic configuration.
    if let Ok(admin) = client.create::<AdminClient<DefaultClientContext>>() {
        let specs: Vec<ResourceSpecifier> =
            cfg.kafka.topics.iter().map(|t| ResourceSpecifier::Topic(t)).collect();
        let opts = AdminOptions::new().request_timeout(Some(Duration::from_secs(5)));
        match tokio::time::timeout(Duration::from_secs(8), admin.describe_configs(&specs, &opts)).await {
            Ok(Ok(results)) => {
                for (topic, r) in cfg.kafka.topics.iter().zip(results) {
                    let Ok(res) = r else { continue };
                    let Some(ms) = res.get("retention.ms").and_then(|e| e.value.clone()) else { continue };
                    let Ok(ms) = ms.parse::<i64>() else { continue };
                    if ms < 0 {
                        notes.push(format!("Topic {topic} reports retention.ms = -1 (no time limit)."));
                    } else {
                        let d = ms as f64 / 8.64e7;
                        days = Some(days.map_or(d, |x: f64| x.max(d)));
                        notes.push(format!("Topic {topic} reports retention.ms = {ms} ({d:.1} days)."));
                    }
                }
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "The broker did not describe the topics' retention"),
            Err(_) => tracing::warn!("The broker did not describe the topics' retention in time"),
        }
    }
    // The earliest record still held.
    let topics = cfg.kafka.topics.clone();
    let cfg_client = client.clone();
    let earliest = tokio::task::spawn_blocking(move || earliest_record_ms(&cfg_client, &topics)).await;
    if let Ok(Some((topic, ts_ms))) = earliest {
        let age_d = (chrono::Utc::now().timestamp_millis() - ts_ms) as f64 / 8.64e7;
        if let Some(t) = chrono::DateTime::from_timestamp_millis(ts_ms) {
            notes.push(format!(
                "At start, topic {topic} still held a record from {} ({age_d:.1} days before).",
                t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ));
            days = Some(days.map_or(age_d, |x| x.max(age_d)));
        }
    }
    if notes.is_empty() {
        return Evidence::default();
    }
    tracing::info!(evidence = %notes.join(" "), "Source retention");
    Evidence { source_retention: Some((days.unwrap_or(0.0).max(0.0), notes.join(" "))) }
}

/// The timestamp of the earliest record the source topics hold (reads one
/// record at the low watermark of each partition, outside the group).
fn earliest_record_ms(client: &rdkafka::config::ClientConfig, topics: &[String]) -> Option<(String, i64)> {
    let mut c = client.clone();
    c.set("group.id", "vigie-retention-probe").set("enable.auto.commit", "false");
    let consumer: BaseConsumer = c.create().ok()?;
    let mut best: Option<(String, i64)> = None;
    for topic in topics {
        let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(5)).ok()?;
        let Some(t) = md.topics().first() else { continue };
        for p in t.partitions() {
            let Ok((low, high)) = consumer.fetch_watermarks(topic, p.id(), Duration::from_secs(5)) else {
                continue;
            };
            if high <= low {
                continue;
            }
            let mut tpl = TopicPartitionList::new();
            if tpl.add_partition_offset(topic, p.id(), Offset::Offset(low)).is_err()
                || consumer.assign(&tpl).is_err()
            {
                continue;
            }
            let deadline = Instant::now() + Duration::from_secs(2);
            while Instant::now() < deadline {
                match consumer.poll(Duration::from_millis(200)) {
                    Some(Ok(m)) => {
                        if let Some(ts) = m.timestamp().to_millis() {
                            if best.as_ref().is_none_or(|(_, b)| ts < *b) {
                                best = Some((topic.clone(), ts));
                            }
                        }
                        break;
                    }
                    Some(Err(_)) => break,
                    None => {}
                }
            }
        }
    }
    let _ = consumer.unassign();
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offsets_read_are_given_as_contiguous_runs() {
        let f = |n: &str| PathBuf::from(format!("raw/site=s/date=2026-03-02/{n}"));
        let files = [
            f("events+e0+0+10+19.parquet"),
            f("events+e0+0+0+9.parquet"),
            f("events+e0+0+30+39.parquet"),
            f("events+e1+0+0+4.parquet"),
            f("other.parquet"),
        ];
        let runs: Vec<(u64, i64, i64)> =
            streams_of(&files).iter().map(|s| (s.epoch, s.first_offset, s.last_offset)).collect();
        // 0-9 and 10-19 join; 30-39 is after a gap; epoch 1 is its own.
        assert_eq!(runs, [(0, 0, 19), (0, 30, 39), (1, 0, 4)]);
    }
}
