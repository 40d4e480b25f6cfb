//! The Prometheus exporter (docs/metrics-exporter.md): one private
//! [`Registry`] per process, filled by the audit path (`vigie demo
//! --serve`) or the service, and served as text by [`crate::http`].
//!
//! Invariant: every label value comes from an enum of vigie, the policy,
//! the configuration, or a site/group name that passed k-suppression. No
//! label ever holds a worker, badge or device identifier.

use std::collections::BTreeMap;

use std::sync::Mutex;

use prometheus::{
    Gauge, GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use vigie_analyze::findings::{Finding, Status};
use vigie_analyze::group::{Group, Period};
use vigie_analyze::rules::{AggregateRow, Evaluation};
use vigie_analyze::shifts::{GAP_CLASSES, HIST_BOUNDS_S, JUSTIFY_GAP_BUCKETS};
use vigie_ingest::event::RejectReason;
use vigie_ingest::IngestStats;

/// Default series budget: 50 sites of 20 groups each fit in it (see
/// docs/metrics-exporter.md for the arithmetic).
pub const DEFAULT_MAX_SERIES: usize = 10_000;

/// Store tiers, as the `tier` label.
pub const TIERS: [&str; 3] = ["raw", "summaries", "aggregates"];

/// Percentiles of units per hour, as the `percentile` label (not
/// `quantile`: Prometheus reserves it for summaries).
pub const UPH_QUANTILES: [&str; 3] = ["10", "50", "90"];

/// What a publication left out to stay within the series budget.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Published {
    pub series: usize,
    /// Team and zone findings that are `ok`, left out when even the
    /// group details had to go.
    pub dropped_group_ok_findings: usize,
    /// Team and zone weeks whose details (percentiles, intervals, gaps) were
    /// left out first.
    pub dropped_group_details: usize,
    /// Every series left out, of every kind (`vigie_metrics_series_dropped`).
    pub dropped_series: usize,
}

/// The kinds of `vigie_metrics_series_dropped`, in the order the budget
/// serves them (the last two are left out first, as whole kinds).
pub const DROPPED_KINDS: [&str; 6] =
    ["sites", "site_findings", "group_findings", "site_details", "group_ok_findings", "group_details"];

/// Values by (site, group).
type ByGroup<V> = BTreeMap<(String, String), V>;

/// The value of an aggregate row's group.
fn of<'a, V>(m: &'a ByGroup<V>, r: &AggregateRow) -> Option<&'a V> {
    m.get(&(r.site.clone(), r.group.to_string()))
}

/// Every metric vigie exports.
pub struct Metrics {
    registry: Registry,
    max_series: usize,
    // Findings (latest period of each site, group and rule).
    finding_status: IntGaugeVec,
    finding_observed: GaugeVec,
    units_per_hour: GaugeVec,
    scan_intervals: IntGaugeVec,
    gaps: IntGaugeVec,
    justification_requests: IntGaugeVec,
    worktime_breaches: GaugeVec,
    suppressed_groups: IntGaugeVec,
    workers: IntGaugeVec,
    target_uph: GaugeVec,
    pace_change: GaugeVec,
    units_over_target: GaugeVec,
    shifts_under_target: IntGaugeVec,
    prompt_wait: GaugeVec,
    dictated_share: GaugeVec,
    justification_gaps: IntGaugeVec,
    series_dropped: IntGaugeVec,
    // Pipeline.
    pub events_ingested: IntCounter,
    pub events_rejected: IntCounterVec,
    pub events_duplicate: IntCounter,
    pub events_unmapped: IntCounterVec,
    pub store_fenced_flushes: IntCounter,
    pub consumer_lag: IntGaugeVec,
    /// 1 once this member of the consumer group has been given its
    /// partitions (service mode; an empty assignment counts).
    pub group_joined: IntGauge,
    /// Set by the service: readiness then waits for the group.
    pub expects_group: std::sync::atomic::AtomicBool,
    pub batch_write_seconds: Histogram,
    pub store_bytes: IntGaugeVec,
    pub store_oldest_age: GaugeVec,
    pub store_retention: GaugeVec,
    pub analysis_interval: Gauge,
    /// 1 while this instance holds the analysis lease (it analyses and
    /// publishes the findings), 0 otherwise.
    pub analysis_writer: IntGauge,
    pub analysis_last_success: Gauge,
    pub analysis_duration: Gauge,
    pub analysis_failures: IntCounter,
    pub resident_memory: IntGauge,
    // The store's health and the source's history (service mode).
    pub store_writable: IntGauge,
    pub store_write_failures: IntCounterVec,
    pub store_incomplete_removed: IntCounter,
    pub store_folder_capped_flushes: IntCounter,
    pub store_quarantined: IntCounterVec,
    pub store_damaged_checkpoints: IntCounter,
    pub source_resets: IntCounterVec,
    pub source_reset_blocked: IntGaugeVec,
    pub source_skipped: IntCounterVec,
    /// Published counts already added to the counters (the audit path
    /// publishes totals; counters only go up).
    seen: Mutex<IngestStats>,
    /// Held while findings are replaced and while the registry is
    /// rendered, so that a scrape never sees half a publication.
    publishing: Mutex<()>,
}

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help)
}

/// The consumer's reports (`vigie_ingest::kafka`), counted here.
impl vigie_ingest::kafka::Telemetry for Metrics {
    fn unmapped(&self, topic: &str, messages: u64) {
        self.events_unmapped.with_label_values(&[topic]).inc_by(messages);
    }
    fn source_reset(&self, topic: &str) {
        self.source_resets.with_label_values(&[topic]).inc();
    }
    fn reset_held(&self, topic: &str, held: bool) {
        let g = self.source_reset_blocked.with_label_values(&[topic]);
        if held {
            g.inc();
        } else {
            g.dec();
        }
    }
    fn source_skipped(&self, topic: &str, offsets: u64) {
        self.source_skipped.with_label_values(&[topic]).inc_by(offsets);
    }
    fn folder_capped_flush(&self) {
        self.store_folder_capped_flushes.inc();
    }
    fn store_write_failure(&self, step: &str) {
        self.store_write_failures.with_label_values(&[step]).inc();
    }
    fn batch_written(&self, took: std::time::Duration) {
        self.batch_write_seconds.observe(took.as_secs_f64());
    }
    fn ingested(&self, stats: &IngestStats) {
        self.count_ingest(stats);
    }
    fn fenced_flush(&self) {
        self.store_fenced_flushes.inc();
    }
    fn store_writable(&self, writable: bool) {
        self.store_writable.set(i64::from(writable));
    }
    fn damaged_checkpoint(&self) {
        self.store_damaged_checkpoints.inc();
    }
    fn incomplete_removed(&self, files: u64) {
        self.store_incomplete_removed.inc_by(files);
    }
    fn quarantined(&self, tier: &str, reason: &str, files: u64) {
        self.store_quarantined.with_label_values(&[tier, reason]).inc_by(files);
    }
    fn consumer_lag(&self, topic: &str, partition: &str, lag: Option<i64>) {
        match lag {
            Some(lag) => self.consumer_lag.with_label_values(&[topic, partition]).set(lag),
            None => {
                let _ = self.consumer_lag.remove_label_values(&[topic, partition]);
            }
        }
    }
    fn group_joined(&self, joined: bool) {
        self.group_joined.set(i64::from(joined));
    }
}

impl Metrics {
    pub fn new(max_series: usize) -> Metrics {
        let registry = Registry::new();
        macro_rules! reg {
            ($m:expr) => {{
                let m = $m.expect("metric definitions are static and valid");
                registry.register(Box::new(m.clone())).expect("metric names are unique");
                m
            }};
        }
        let finding_status = reg!(IntGaugeVec::new(
            opts(
                "vigie_finding_status",
                "Status of a rule for a site and group in its latest period: 0 ok, 1 attention, 2 breach, -1 insufficient data."
            ),
            &["site", "group", "rule"]
        ));
        let finding_observed = reg!(GaugeVec::new(
            opts(
                "vigie_finding_observed",
                "Observed value of a rule for a site and group in its latest period, in the rule's unit (docs/findings.md)."
            ),
            &["site", "group", "rule"]
        ));
        let units_per_hour = reg!(GaugeVec::new(
            opts(
                "vigie_units_per_hour",
                "Percentiles (10, 50, 90) over shifts of units handled per effective hour, latest ISO week, per published group."
            ),
            &["site", "group", "percentile"]
        ));
        let scan_intervals = reg!(IntGaugeVec::new(
            opts(
                "vigie_scan_intervals",
                "Intervals between consecutive scans of a shift in the latest ISO week, cumulative: at most `bound` seconds (+Inf: all)."
            ),
            &["site", "group", "bound"]
        ));
        let gaps = reg!(IntGaugeVec::new(
            opts(
                "vigie_gaps",
                "Gaps between consecutive activity events in the latest ISO week, by class (micro, latency, idle, break)."
            ),
            &["site", "group", "class"]
        ));
        let justification_requests = reg!(IntGaugeVec::new(
            opts(
                "vigie_justification_requests",
                "Requests to justify a pause (justification_request events) in the latest ISO week."
            ),
            &["site", "group"]
        ));
        let worktime_breaches = reg!(GaugeVec::new(
            opts(
                "vigie_worktime_breaches",
                "Working-time breaches of the latest ISO week, per rule: shifts or worker-weeks over the limit."
            ),
            &["site", "group", "rule"]
        ));
        let suppressed_groups = reg!(IntGaugeVec::new(
            opts(
                "vigie_privacy_suppressed_groups",
                "Group-periods withheld because they had fewer than k workers (or would reveal one by subtraction)."
            ),
            &["site"]
        ));
        let workers = reg!(IntGaugeVec::new(
            opts("vigie_group_workers", "Distinct workers of a published group in its latest ISO week."),
            &["site", "group"]
        ));
        let target_uph = reg!(GaugeVec::new(
            opts(
                "vigie_target_units_per_hour",
                "The target in force (group's daily median of rate_target), latest level of the step series, per published group and process."
            ),
            &["site", "group", "process"]
        ));
        let pace_change = reg!(GaugeVec::new(
            opts(
                "vigie_pace_change_relative",
                "The pace after the latest dated change against before it (median daily units per hour, after / before - 1), per published group, process and source (declared by the employer, or a target step)."
            ),
            &["site", "group", "process", "source"]
        ));
        let units_over_target = reg!(GaugeVec::new(
            opts(
                "vigie_units_over_target",
                "Median over shifts with a target of units per hour divided by the target, latest ISO week."
            ),
            &["site", "group"]
        ));
        let shifts_under_target = reg!(IntGaugeVec::new(
            opts(
                "vigie_shifts_under_target",
                "Shifts whose units per hour were under their target, latest ISO week."
            ),
            &["site", "group"]
        ));
        let prompt_wait = reg!(GaugeVec::new(
            opts(
                "vigie_prompt_wait_seconds",
                "Percentiles (10, 50, 90) of seconds from a voice prompt to the scan that confirms it, latest ISO week."
            ),
            &["site", "group", "percentile"]
        ));
        let dictated_share = reg!(GaugeVec::new(
            opts(
                "vigie_dictated_share",
                "Share of effective time of shifts with prompts spent on tasks dictated at once, latest ISO week."
            ),
            &["site", "group"]
        ));
        let justification_gaps = reg!(IntGaugeVec::new(
            opts(
                "vigie_justification_gaps",
                "Justification requests of the latest ISO week by the gap they are about (gap_s bucket; unknown: no gap_s)."
            ),
            &["site", "group", "gap"]
        ));
        let series_dropped = reg!(IntGaugeVec::new(
            opts(
                "vigie_metrics_series_dropped",
                "Series left out of the last publication to stay within the series budget, by kind (findings.json keeps everything)."
            ),
            &["kind"]
        ));
        let events_ingested = reg!(IntCounter::new(
            "vigie_events_ingested_total",
            "Unique events accepted at the door and stored."
        ));
        let events_rejected = reg!(IntCounterVec::new(
            opts("vigie_events_rejected_total", "Records refused at the door, by reason code."),
            &["reason"]
        ));
        let events_duplicate = reg!(IntCounter::new(
            "vigie_events_duplicate_total",
            "Valid records dropped because their event id was already accepted."
        ));
        let events_unmapped = reg!(IntCounterVec::new(
            opts(
                "vigie_events_unmapped_total",
                "Messages of a topic read through a mapping skipped because their event code has no kind in it (a mapping question, not bad data)."
            ),
            &["topic"]
        ));
        let group_joined = reg!(IntGauge::new(
            "vigie_consumer_group_joined",
            "Service: 1 once this instance has joined its consumer group and been given its partitions (none counts), 0 before and after an assignment is lost."
        ));
        let consumer_lag = reg!(IntGaugeVec::new(
            opts(
                "vigie_consumer_lag_messages",
                "Messages between the partition's high watermark and the next offset vigie will read."
            ),
            &["topic", "partition"]
        ));
        let batch_write_seconds = reg!(Histogram::with_opts(
            HistogramOpts::new(
                "vigie_batch_write_duration_seconds",
                "Time to make one partition's batch durable: Parquet files fsynced and renamed, dead letters flushed."
            )
            .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0])
        ));
        let store_bytes =
            reg!(IntGaugeVec::new(opts("vigie_store_bytes", "Bytes held by each store tier."), &["tier"]));
        let store_oldest_age = reg!(GaugeVec::new(
            opts(
                "vigie_store_oldest_event_age_seconds",
                "Age of the oldest record each store tier holds (0 when the tier is empty)."
            ),
            &["tier"]
        ));
        let store_retention = reg!(GaugeVec::new(
            opts("vigie_store_retention_seconds", "Configured retention of each store tier (service mode)."),
            &["tier"]
        ));
        let analysis_interval = reg!(Gauge::new(
            "vigie_analysis_interval_seconds",
            "Configured time between two analyses (service mode)."
        ));
        let analysis_writer = reg!(IntGauge::new(
            "vigie_analysis_writer",
            "1 while this instance holds the analysis lease: it analyses, purges and publishes the findings (service mode)."
        ));
        let analysis_last_success = reg!(Gauge::new(
            "vigie_analysis_last_success_timestamp_seconds",
            "Unix time at which the last analysis finished successfully."
        ));
        let analysis_duration =
            reg!(Gauge::new("vigie_analysis_duration_seconds", "Wall time of the last successful analysis."));
        let analysis_failures = reg!(IntCounter::new(
            "vigie_analysis_failures_total",
            "Analyses that failed (the previous findings stay published)."
        ));
        let resident_memory = reg!(IntGauge::new(
            "vigie_process_resident_memory_bytes",
            "Resident memory of the vigie process."
        ));
        let store_writable = reg!(IntGauge::new(
            "vigie_store_writable",
            "1 while the store takes writes; 0 while it cannot (a full disk): consumption is paused and resumes by itself."
        ));
        store_writable.set(1);
        let store_write_failures = reg!(IntCounterVec::new(
            opts(
                "vigie_store_write_failures_total",
                "Writes to the store that failed, by stage (flush: raw files, dead letters and checkpoint; analysis: summaries, aggregates, findings)."
            ),
            &["stage"]
        ));
        let store_incomplete_removed = reg!(IntCounter::new(
            "vigie_store_incomplete_flush_files_removed_total",
            "Raw files of flushes that never completed (beyond the checkpoint), removed before their records were read again."
        ));
        let store_fenced_flushes = reg!(IntCounter::new(
            "vigie_store_fenced_flushes_total",
            "Flushes dropped because another instance had stored the partition past this one's durable point (the partition had moved to it)."
        ));
        let store_folder_capped_flushes = reg!(IntCounter::new(
            "vigie_store_folder_capped_flushes_total",
            "Flushes started before max_batch_events because the buffer's events spanned max_batch_folders (site, date) folders."
        ));
        let store_quarantined = reg!(IntCounterVec::new(
            opts(
                "vigie_store_quarantined_files_total",
                "Store files moved to quarantine/ because they could not be trusted, by tier and reason."
            ),
            &["tier", "reason"]
        ));
        let store_damaged_checkpoints = reg!(IntCounter::new(
            "vigie_store_damaged_checkpoints_total",
            "Checkpoint slots that did not read (damaged); the other slot, or the group's commit, was used."
        ));
        let source_resets = reg!(IntCounterVec::new(
            opts(
                "vigie_source_resets_total",
                "Partitions found to have gone backwards (topic recreated, broker state lost): the store's durable point was not in the source."
            ),
            &["topic"]
        ));
        let source_reset_blocked = reg!(IntGaugeVec::new(
            opts(
                "vigie_source_reset_blocked_partitions",
                "Partitions held back after a reset of their source (kafka.on_source_reset = \"stop\") until an operator acts."
            ),
            &["topic"]
        ));
        let source_skipped = reg!(IntCounterVec::new(
            opts(
                "vigie_source_skipped_messages_total",
                "Messages the source deleted (its retention) before vigie could read them."
            ),
            &["topic"]
        ));
        for stage in ["flush", "analysis"] {
            store_write_failures.with_label_values(&[stage]);
        }
        for r in RejectReason::ALL {
            events_rejected.with_label_values(&[r.as_str()]);
        }
        for kind in DROPPED_KINDS {
            series_dropped.with_label_values(&[kind]);
        }
        Metrics {
            registry,
            max_series,
            finding_status,
            finding_observed,
            units_per_hour,
            scan_intervals,
            gaps,
            justification_requests,
            worktime_breaches,
            suppressed_groups,
            workers,
            target_uph,
            pace_change,
            units_over_target,
            shifts_under_target,
            prompt_wait,
            dictated_share,
            justification_gaps,
            series_dropped,
            events_ingested,
            events_rejected,
            events_duplicate,
            events_unmapped,
            store_fenced_flushes,
            consumer_lag,
            group_joined,
            expects_group: std::sync::atomic::AtomicBool::new(false),
            batch_write_seconds,
            store_bytes,
            store_oldest_age,
            store_retention,
            analysis_interval,
            analysis_writer,
            analysis_last_success,
            analysis_duration,
            analysis_failures,
            resident_memory,
            store_writable,
            store_write_failures,
            store_incomplete_removed,
            store_folder_capped_flushes,
            store_quarantined,
            store_damaged_checkpoints,
            source_resets,
            source_reset_blocked,
            source_skipped,
            seen: Mutex::new(IngestStats::default()),
            publishing: Mutex::new(()),
        }
    }

    /// Readiness of the service: `Err` with the reason while the store
    /// cannot be written or a partition is held back after a source reset.
    pub fn ready(&self) -> Result<(), String> {
        use prometheus::core::Collector;
        let mut why = Vec::new();
        if self.expects_group.load(std::sync::atomic::Ordering::Relaxed) && self.group_joined.get() != 1 {
            why.push("not yet a member of the consumer group".to_string());
        }
        if self.store_writable.get() != 1 {
            why.push("the store cannot be written (consumption paused)".to_string());
        }
        let families = self.source_reset_blocked.collect();
        let blocked: f64 = families
            .iter()
            .flat_map(prometheus::proto::MetricFamily::get_metric)
            .map(|m| m.get_gauge().get_value())
            .sum();
        if blocked > 0.0 {
            why.push(format!("{blocked} partition(s) held back after a source reset"));
        }
        if why.is_empty() {
            Ok(())
        } else {
            Err(why.join("; "))
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Brings the door's counters up to `stats` (totals of this process).
    pub fn count_ingest(&self, stats: &IngestStats) {
        let mut seen = self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        self.events_ingested.inc_by(stats.accepted.saturating_sub(seen.accepted));
        self.events_duplicate.inc_by(stats.duplicates.saturating_sub(seen.duplicates));
        for r in RejectReason::ALL {
            let i = r.code() as usize;
            let d = stats.rejected[i].saturating_sub(seen.rejected[i]);
            if d > 0 {
                self.events_rejected.with_label_values(&[r.as_str()]).inc_by(d);
            }
        }
        seen.accepted = stats.accepted;
        seen.duplicates = stats.duplicates;
        seen.rejected = stats.rejected;
    }

    /// Replaces the published findings with those of `eval`, within the
    /// series budget.
    pub fn publish(&self, eval: &Evaluation) -> Published {
        let _guard = self.publishing.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let latest = latest_findings(&eval.findings);
        let weeks = latest_weeks(&eval.aggregates);
        // Every series that depends on the findings goes; what is left is
        // the fixed part of the budget.
        self.finding_status.reset();
        self.finding_observed.reset();
        self.units_per_hour.reset();
        self.scan_intervals.reset();
        self.gaps.reset();
        self.justification_requests.reset();
        self.worktime_breaches.reset();
        self.suppressed_groups.reset();
        self.workers.reset();
        self.target_uph.reset();
        self.pace_change.reset();
        self.units_over_target.reset();
        self.shifts_under_target.reset();
        self.prompt_wait.reset();
        self.dictated_share.reset();
        self.justification_gaps.reset();
        // The latest target level of each (site, group, process).
        let mut targets: ByGroup<BTreeMap<&str, f64>> = BTreeMap::new();
        for t in &eval.target_steps {
            // Steps come in date order within a group and process.
            targets
                .entry((t.site.clone(), t.group.to_string()))
                .or_default()
                .insert(t.process.as_str(), t.target_uph);
        }
        // The latest dated change with a figure, per (site, group), by
        // process and source.
        let mut changes: ByGroup<BTreeMap<(&str, &str), f64>> = BTreeMap::new();
        for c in &eval.comparisons {
            if let Some(rel) = c.relative {
                // Comparisons come in date order within a group and process.
                changes
                    .entry((c.site.clone(), c.group.to_string()))
                    .or_default()
                    .insert((c.process.as_str(), c.source.as_str()), rel);
            }
        }

        // The budget is a hard cap. What is left after the fixed series
        // goes, in order, to: each site's suppression gauge; findings that
        // are not ok (site level first); site-level ok findings; site-level
        // details; then, as whole kinds and only if each fits entirely,
        // team and zone ok findings and team and zone details.
        let fixed = self.series_count();
        let mut left = self.max_series.saturating_sub(fixed);
        let is_site = |g: &str| g == "site";
        let per_detail = |r: &AggregateRow| {
            detail_series(
                r,
                of(&targets, r).map_or(0, std::collections::BTreeMap::len)
                    + of(&changes, r).map_or(0, std::collections::BTreeMap::len),
            )
        };
        // A finding is 2 series (status, observed), 3 for a working-time
        // rule (breaches); 1 when it has no observed value.
        let weight = |f: &Finding| match f.observed {
            None => 1,
            Some(_) if is_worktime(&f.rule) => 3,
            Some(_) => 2,
        };
        let mut published = Published::default();
        let mut dropped: BTreeMap<&'static str, usize> = BTreeMap::new();

        let mut sites: BTreeMap<&str, u64> = latest.iter().map(|f| (f.site.as_str(), 0)).collect();
        for (site, n) in &eval.suppressed_by_site {
            sites.insert(site.as_str(), *n);
        }
        for (site, n) in sites {
            if left == 0 {
                *dropped.entry("sites").or_default() += 1;
                continue;
            }
            left -= 1;
            self.suppressed_groups.with_label_values(&[site]).set(n as i64);
        }
        let put_finding =
            |f: &Finding, kind: &'static str, left: &mut usize, dropped: &mut BTreeMap<&str, usize>| {
                let w = weight(f);
                if w > *left {
                    *dropped.entry(kind).or_default() += w;
                    return;
                }
                *left -= w;
                let l = [f.site.as_str(), f.group.as_str(), f.rule.as_str()];
                self.finding_status.with_label_values(&l).set(f.status.gauge());
                if let Some(o) = f.observed {
                    self.finding_observed.with_label_values(&l).set(o);
                    if is_worktime(&f.rule) {
                        self.worktime_breaches.with_label_values(&l).set(o);
                    }
                }
            };
        let problems = latest.iter().filter(|f| f.status != Status::Ok);
        for f in problems.clone().filter(|f| is_site(&f.group)).chain(problems.filter(|f| !is_site(&f.group)))
        {
            put_finding(
                f,
                if is_site(&f.group) { "site_findings" } else { "group_findings" },
                &mut left,
                &mut dropped,
            );
        }
        for f in latest.iter().filter(|f| f.status == Status::Ok && is_site(&f.group)) {
            put_finding(f, "site_findings", &mut left, &mut dropped);
        }
        let put_details = |r: &AggregateRow| {
            let sg = [r.site.as_str(), r.group.as_str()];
            for (q, v) in UPH_QUANTILES.iter().zip([r.uph_p10, r.uph_p50, r.uph_p90]) {
                if let Some(v) = v {
                    self.units_per_hour.with_label_values(&[sg[0], sg[1], q]).set(v);
                }
            }
            let mut cum = 0u64;
            for (i, n) in r.hist.iter().enumerate() {
                cum += n;
                let bound = HIST_BOUNDS_S.get(i).map(|b| format!("{b}")).unwrap_or_else(|| "+Inf".into());
                self.scan_intervals.with_label_values(&[sg[0], sg[1], &bound]).set(cum as i64);
            }
            for (class, n) in GAP_CLASSES.iter().zip(r.gaps) {
                self.gaps.with_label_values(&[sg[0], sg[1], class]).set(n as i64);
            }
            self.justification_requests.with_label_values(&sg).set(r.justification_requests as i64);
            self.workers.with_label_values(&sg).set(r.workers as i64);
            for (process, t) in of(&targets, r).into_iter().flatten() {
                self.target_uph.with_label_values(&[sg[0], sg[1], process]).set(*t);
            }
            for ((process, source), rel) in of(&changes, r).into_iter().flatten() {
                self.pace_change.with_label_values(&[sg[0], sg[1], process, source]).set(*rel);
            }
            if let Some(v) = r.achieved_over_target_p50 {
                self.units_over_target.with_label_values(&sg).set(v);
            }
            if r.shifts_with_target > 0 {
                self.shifts_under_target.with_label_values(&sg).set(r.shifts_under_target as i64);
            }
            for (q, v) in UPH_QUANTILES.iter().zip([r.prompt_wait_p10, r.prompt_wait_p50, r.prompt_wait_p90])
            {
                if let Some(v) = v {
                    self.prompt_wait.with_label_values(&[sg[0], sg[1], q]).set(v);
                }
            }
            if let Some(v) = r.dictated_share {
                self.dictated_share.with_label_values(&sg).set(v);
            }
            if r.justification_requests > 0 {
                for (b, n) in JUSTIFY_GAP_BUCKETS.iter().zip(r.justify_gaps) {
                    self.justification_gaps.with_label_values(&[sg[0], sg[1], b]).set(n as i64);
                }
            }
        };
        for r in weeks.iter().filter(|r| is_site(&r.group)) {
            let w = per_detail(r);
            if w > left {
                *dropped.entry("site_details").or_default() += w;
                continue;
            }
            left -= w;
            put_details(r);
        }
        let group_ok: Vec<&&Finding> =
            latest.iter().filter(|f| f.status == Status::Ok && !is_site(&f.group)).collect();
        let group_ok_series: usize = group_ok.iter().map(|f| weight(f)).sum();
        if group_ok_series <= left {
            for f in &group_ok {
                put_finding(f, "group_ok_findings", &mut left, &mut dropped);
            }
        } else {
            published.dropped_group_ok_findings = group_ok.len();
            *dropped.entry("group_ok_findings").or_default() += group_ok_series;
        }
        let group_weeks: Vec<&&AggregateRow> = weeks.iter().filter(|r| !is_site(&r.group)).collect();
        // Details only when the group findings went out whole.
        let group_details: usize = group_weeks.iter().map(|r| per_detail(r)).sum();
        if published.dropped_group_ok_findings == 0 && group_details <= left {
            for r in group_weeks {
                put_details(r);
            }
        } else {
            published.dropped_group_details = group_weeks.len();
            *dropped.entry("group_details").or_default() += group_details;
        }
        for kind in DROPPED_KINDS {
            self.series_dropped
                .with_label_values(&[kind])
                .set(dropped.get(kind).copied().unwrap_or(0) as i64);
        }
        published.dropped_series = dropped.values().sum();
        published.series = self.series_count();
        published
    }

    /// Series the registry holds now (a histogram counts its buckets, sum
    /// and count).
    pub fn series_count(&self) -> usize {
        self.registry.gather().iter().map(series_of).sum()
    }

    /// The body of `/metrics`.
    pub fn render(&self) -> String {
        self.resident_memory.set(resident_bytes().unwrap_or(0) as i64);
        let families = {
            let _guard = self.publishing.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            self.registry.gather()
        };
        TextEncoder::new().encode_to_string(&families).unwrap_or_default()
    }
}

/// Detail series every published group has: 3 percentiles, 14 interval
/// buckets, 4 gap classes, justification requests and workers.
pub const DETAIL_SERIES: usize = UPH_QUANTILES.len() + HIST_BOUNDS_S.len() + 1 + GAP_CLASSES.len() + 2;

/// Detail series of one published group-week: the fixed ones, and those
/// it has data for (`dated`: targets per process and dated changes per
/// process and source; prompts, justification gaps).
/// The units-per-hour percentiles are counted even when a week has no
/// scans (an upper bound: the budget stays a hard cap).
pub fn detail_series(r: &AggregateRow, dated: usize) -> usize {
    let some = |v: &[Option<f64>]| v.iter().filter(|x| x.is_some()).count();
    DETAIL_SERIES
        + dated
        + some(&[
            r.achieved_over_target_p50,
            r.prompt_wait_p10,
            r.prompt_wait_p50,
            r.prompt_wait_p90,
            r.dictated_share,
        ])
        + usize::from(r.shifts_with_target > 0)
        + if r.justification_requests > 0 { JUSTIFY_GAP_BUCKETS.len() } else { 0 }
}

/// Whether a rule is of the working-time family (its counts also go to
/// `vigie_worktime_breaches`), as the rule catalogue says.
fn is_worktime(rule: &str) -> bool {
    vigie_analyze::catalogue::catalogue().rule(rule).is_some_and(|r| r.family == "worktime")
}

fn series_of(f: &prometheus::proto::MetricFamily) -> usize {
    let per = match f.get_field_type() {
        prometheus::proto::MetricType::HISTOGRAM => {
            f.get_metric().first().map(|m| m.get_histogram().get_bucket().len() + 3).unwrap_or(0)
        }
        _ => 1,
    };
    f.get_metric().len() * per
}

/// The latest period of each (site, group, rule): weeks sort as text
/// (`2026-W09` < `2026-W10`), and `all` is the only period of its rules.
pub fn latest_findings(findings: &[Finding]) -> Vec<&Finding> {
    let mut m: BTreeMap<(&str, &str, &str), &Finding> = BTreeMap::new();
    for f in findings {
        let k = (f.site.as_str(), f.group.as_str(), f.rule.as_str());
        match m.get(&k) {
            Some(prev) if prev.period >= f.period => {}
            _ => {
                m.insert(k, f);
            }
        }
    }
    m.into_values().collect()
}

/// The latest published week of each (site, group).
pub fn latest_weeks(rows: &[AggregateRow]) -> Vec<&AggregateRow> {
    let mut m: BTreeMap<(&str, &str), &AggregateRow> = BTreeMap::new();
    for r in rows {
        let k = (r.site.as_str(), r.group.as_str());
        match m.get(&k) {
            Some(prev) if prev.week >= r.week => {}
            _ => {
                m.insert(k, r);
            }
        }
    }
    m.into_values().collect()
}

/// Resident set size from /proc (Linux); None elsewhere.
pub fn resident_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = s.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// An evaluation the size of a deployment, for the series-budget test and
/// the scrape benchmark: `sites` sites of `groups` groups each (the site
/// itself and team groups), 11 rules each, two weeks of aggregates with
/// targets, prompts and justification requests, a target in one process
/// and a change of it;
/// `breach_every` makes one team finding in that many a breach.
pub fn budget_fixture(sites: usize, groups: usize, breach_every: usize) -> Evaluation {
    let rules = [
        "cadence.intensification",
        "cadence.rush_share",
        "load.daily_mass",
        "pause.flags_during_breaks",
        "pause.idle_flag_threshold",
        "pause.justification_burden",
        "speed.speed_flags",
        "worktime.break_after_6h",
        "worktime.daily_max_10h",
        "worktime.daily_rest_11h",
        "worktime.weekly_max_48h",
    ];
    let mut findings = Vec::new();
    let mut aggregates = Vec::new();
    let mut target_steps = Vec::new();
    let mut comparisons = Vec::new();
    let mut suppressed_by_site = BTreeMap::new();
    let mut n = 0;
    for s in 0..sites {
        let site = format!("site-{s:02}");
        suppressed_by_site.insert(site.clone(), 1);
        for g in 0..groups {
            let group = if g == 0 { Group::site() } else { Group::team(&format!("t{g:02}")) };
            for rule in rules {
                n += 1;
                let status = if n % breach_every == 0 { Status::Breach } else { Status::Ok };
                for period in ["2026-W44", "2026-W45"] {
                    findings.push(Finding {
                        rule: rule.into(),
                        status,
                        site: site.clone(),
                        group: group.clone(),
                        period: Period::parse(period).expect("a week"),
                        observed: Some(1.0),
                        threshold: 0.0,
                        unit: "x".into(),
                        population: 10,
                        sources: vec![],
                        explanation: String::new(),
                        facts: Default::default(),
                    });
                }
            }
            for week in ["2026-W44", "2026-W45"] {
                aggregates.push(AggregateRow {
                    site: site.clone(),
                    group: group.clone(),
                    week: week.into(),
                    workers: 10,
                    shifts: 50,
                    effective_hours: 350.0,
                    units: 1000,
                    uph_p10: Some(1.0),
                    uph_p50: Some(2.0),
                    uph_p90: Some(3.0),
                    hist: Default::default(),
                    gaps: Default::default(),
                    idle_flags: 0,
                    speed_flags: 0,
                    justification_requests: 3,
                    justify_gaps: [0, 1, 2, 0, 0, 0],
                    latency_idle_flags: 0,
                    shifts_with_target: 50,
                    target_p50: Some(100.0),
                    achieved_over_target_p50: Some(0.9),
                    shifts_under_target: 30,
                    prompts: 4000,
                    prompts_per_hour: Some(11.4),
                    prompt_wait_p10: Some(4.0),
                    prompt_wait_p50: Some(9.0),
                    prompt_wait_p90: Some(20.0),
                    dictated_share: Some(0.6),
                    drift_p50: Some(0.05),
                });
            }
            target_steps.push(vigie_analyze::dated::TargetStep {
                site: site.clone(),
                group: group.clone(),
                process: "pick".into(),
                from: chrono::NaiveDate::from_ymd_opt(2026, 10, 26).expect("date"),
                to: chrono::NaiveDate::from_ymd_opt(2026, 11, 6).expect("date"),
                days: 10,
                target_uph: 100.0,
            });
            comparisons.push(vigie_analyze::dated::Comparison {
                site: site.clone(),
                group: group.clone(),
                process: "pick".into(),
                date: chrono::NaiveDate::from_ymd_opt(2026, 11, 2).expect("date"),
                source: vigie_analyze::dated::ChangeSource::Target,
                description: String::new(),
                target_from: Some(90.0),
                target_to: Some(100.0),
                days_before: 5,
                days_after: 5,
                before_uph: Some(100.0),
                after_uph: Some(112.0),
                relative: Some(0.12),
                low: Some(0.1),
                high: Some(0.14),
            });
        }
    }
    Evaluation {
        findings,
        suppressed: sites as u64,
        suppressed_by_site,
        aggregates,
        coverage: vec![],
        overlapping_shifts: 0,
        target_steps,
        comparisons,
    }
}
