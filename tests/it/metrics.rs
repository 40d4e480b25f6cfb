//! The exporter: metric names, types and label keys (golden), the values
//! published for a tiny input worked out by hand, the series budget, no
//! identifier in any label, and the dashboards' lint.

use crate::common;

use common::*;
use vigie::metrics::{Metrics, DEFAULT_MAX_SERIES};
use vigie_analyze::findings::Status;
use vigie_analyze::rules::Evaluation;

/// name, type, label keys: what Prometheus sees, from the registry.
fn shape(m: &Metrics) -> String {
    let mut out = Vec::new();
    for f in m.registry().gather() {
        let mut keys: Vec<String> = f
            .get_metric()
            .first()
            .map(|x| x.get_label().iter().map(|l| l.name().to_string()).collect())
            .unwrap_or_default();
        keys.sort();
        out.push(format!("{} {:?} {}", f.name(), f.get_field_type(), keys.join(",")));
    }
    out.sort();
    out.join("\n")
}

const GOLDEN: &str = "\
vigie_analysis_duration_seconds GAUGE 
vigie_analysis_failures_total COUNTER 
vigie_analysis_interval_seconds GAUGE 
vigie_analysis_last_success_timestamp_seconds GAUGE 
vigie_analysis_writer GAUGE 
vigie_batch_write_duration_seconds HISTOGRAM 
vigie_consumer_group_joined GAUGE 
vigie_consumer_lag_messages GAUGE partition,topic
vigie_dictated_share GAUGE group,site
vigie_events_duplicate_total COUNTER 
vigie_events_ingested_total COUNTER 
vigie_events_rejected_total COUNTER reason
vigie_finding_observed GAUGE group,rule,site
vigie_finding_status GAUGE group,rule,site
vigie_gaps GAUGE class,group,site
vigie_group_workers GAUGE group,site
vigie_justification_gaps GAUGE gap,group,site
vigie_justification_requests GAUGE group,site
vigie_metrics_series_dropped GAUGE kind
vigie_privacy_suppressed_groups GAUGE site
vigie_process_resident_memory_bytes GAUGE 
vigie_prompt_wait_seconds GAUGE group,percentile,site
vigie_scan_intervals GAUGE bound,group,site
vigie_shifts_under_target GAUGE group,site
vigie_store_bytes GAUGE tier
vigie_store_damaged_checkpoints_total COUNTER 
vigie_store_fenced_flushes_total COUNTER 
vigie_store_folder_capped_flushes_total COUNTER 
vigie_store_incomplete_flush_files_removed_total COUNTER 
vigie_store_oldest_event_age_seconds GAUGE tier
vigie_store_retention_seconds GAUGE tier
vigie_store_writable GAUGE 
vigie_store_write_failures_total COUNTER stage
vigie_target_units_per_hour GAUGE group,process,site
vigie_units_over_target GAUGE group,site
vigie_units_per_hour GAUGE group,percentile,site
vigie_worktime_breaches GAUGE group,rule,site";

/// Five workers of team A, one day: 08:00 start with a target of 0.4
/// units an hour, scans at 08:00:00, 08:00:01 and 08:00:31 (the last one
/// confirming a voice prompt of 08:00:03), then a justification request,
/// end at 16:00.
fn tiny() -> Evaluation {
    let names = names(5);
    let pattern = [
        ("08:00:00", "shift_start", ""),
        ("08:00:00", "rate_target", "\"target_per_hour\":0.4"),
        ("08:00:00", "scan", "\"quantity\":2"),
        ("08:00:01", "scan", ""),
        ("08:00:03", "voice_prompt", ""),
        ("08:00:31", "scan", ""),
        ("09:00:00", "justification_request", ""),
        ("16:00:00", "shift_end", ""),
    ];
    let events: Vec<E> = crew(5, &names, &pattern).into_iter().map(|e| e.team("A")).collect();
    evaluate(&events, &policy_k5())
}

#[test]
fn metric_names_types_and_label_keys_are_as_documented() {
    let m = Metrics::new(DEFAULT_MAX_SERIES);
    m.publish(&tiny());
    m.consumer_lag.with_label_values(&["events", "0"]).set(3);
    m.store_bytes.with_label_values(&["raw"]).set(1);
    m.store_oldest_age.with_label_values(&["raw"]).set(1.0);
    m.store_retention.with_label_values(&["raw"]).set(1.0);
    assert_eq!(shape(&m), GOLDEN);
}

fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')).map(|v| v.parse().unwrap()))
}

#[test]
fn published_values_match_a_tiny_input_worked_by_hand() {
    let m = Metrics::new(DEFAULT_MAX_SERIES);
    m.publish(&tiny());
    let text = m.render();
    // Each shift: 4 units over 8 h without breaks = 0.5 units per hour, the
    // same for all five workers, so every percentile is 0.5.
    for q in ["10", "50", "90"] {
        let s = format!("vigie_units_per_hour{{group=\"team:A\",percentile=\"{q}\",site=\"s1\"}}");
        assert_eq!(sample(&text, &s), Some(0.5), "{s}\n{text}");
    }
    // Intervals per shift: 1 s and 30 s; five shifts: 5 of 1 s, 5 of 30 s.
    // Cumulative: bound 0.5 -> 0, 1 -> 5, 15 -> 5, 30 -> 10.
    for (bound, n) in [("0.5", 0.0), ("1", 5.0), ("15", 5.0), ("30", 10.0), ("+Inf", 10.0)] {
        let s = format!("vigie_scan_intervals{{bound=\"{bound}\",group=\"team:A\",site=\"s1\"}}");
        assert_eq!(sample(&text, &s), Some(n), "{s}");
    }
    // One justification request each.
    assert_eq!(sample(&text, "vigie_justification_requests{group=\"team:A\",site=\"s1\"}"), Some(5.0));
    assert_eq!(sample(&text, "vigie_group_workers{group=\"team:A\",site=\"s1\"}"), Some(5.0));
    // The target in force, 0.4 (no process on the scans); 0.5 units an
    // hour against it is 1.25, and no shift under it.
    let target = "vigie_target_units_per_hour{group=\"team:A\",process=\"(none)\",site=\"s1\"}";
    assert_eq!(sample(&text, target), Some(0.4), "{text}");
    assert_eq!(sample(&text, "vigie_units_over_target{group=\"team:A\",site=\"s1\"}"), Some(1.25));
    assert_eq!(sample(&text, "vigie_shifts_under_target{group=\"team:A\",site=\"s1\"}"), Some(0.0));
    // One prompt a shift, 2 s after the scan before it (dictated at once),
    // confirmed 28 s later: five waits in the 20-30 s bucket; interpolated,
    // p10 = 20 + 10 x 0.5/5 = 21, p50 = 25, p90 = 29. Dictated: 28 s of
    // 8 h = 0.00097, 0.001 at 4 decimals.
    for (q, v) in [("10", 21.0), ("50", 25.0), ("90", 29.0)] {
        let s = format!("vigie_prompt_wait_seconds{{group=\"team:A\",percentile=\"{q}\",site=\"s1\"}}");
        assert_eq!(sample(&text, &s), Some(v), "{s}");
    }
    assert_eq!(sample(&text, "vigie_dictated_share{group=\"team:A\",site=\"s1\"}"), Some(0.001));
    // The requests say no gap: all five in `unknown`, none in the others.
    for (gap, n) in [("unknown", 5.0), ("60_180s", 0.0), ("ge_600s", 0.0)] {
        let s = format!("vigie_justification_gaps{{gap=\"{gap}\",group=\"team:A\",site=\"s1\"}}");
        assert_eq!(sample(&text, &s), Some(n), "{s}");
    }
    // Burden: all 5 shifts had a request, a share of 1.
    let burden = "vigie_finding_observed{group=\"team:A\",rule=\"pause.justification_burden\",site=\"s1\"}";
    assert_eq!(sample(&text, burden), Some(1.0), "{text}");
    // worktime.break_after_6h: the gaps 08:00:31-09:00 (29.5 min) and
    // 09:00-16:00 are both at least 20 min, so they count as breaks and no
    // stretch reaches 6 h: 0 shifts, ok.
    let brk = "vigie_worktime_breaches{group=\"team:A\",rule=\"worktime.break_after_6h\",site=\"s1\"}";
    assert_eq!(sample(&text, brk), Some(0.0), "{text}");
    let status = "vigie_finding_status{group=\"team:A\",rule=\"worktime.break_after_6h\",site=\"s1\"}";
    assert_eq!(sample(&text, status), Some(0.0));
    // Nothing withheld: the site's gauge is there, at 0.
    assert_eq!(sample(&text, "vigie_privacy_suppressed_groups{site=\"s1\"}"), Some(0.0));
    // Every reject reason is present from the start, at 0.
    assert_eq!(sample(&text, "vigie_events_rejected_total{reason=\"future_timestamp\"}"), Some(0.0));
    // No worker name and no pseudonym in any label.
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        assert!(!l.contains("\"w0\"") && !l.contains("\"w4\""), "{l}");
        let labels = l.split_once('{').map(|(_, r)| r).unwrap_or("");
        assert!(!labels.contains("worker"), "{l}");
    }
}

#[test]
fn counters_follow_the_door_and_never_go_down() {
    let m = Metrics::new(DEFAULT_MAX_SERIES);
    let mut s = vigie_ingest::IngestStats { accepted: 10, duplicates: 2, ..Default::default() };
    s.rejected[vigie_ingest::event::RejectReason::InvalidJson.code() as usize] = 3;
    m.count_ingest(&s);
    s.accepted = 15;
    m.count_ingest(&s);
    m.count_ingest(&s);
    assert_eq!(m.events_ingested.get(), 15);
    assert_eq!(m.events_duplicate.get(), 2);
    assert_eq!(m.events_rejected.with_label_values(&["invalid_json"]).get(), 3);
}

#[test]
fn fifty_sites_of_twenty_groups_fit_the_series_budget() {
    let eval = vigie::metrics::budget_fixture(50, 20, 7);
    let m = Metrics::new(DEFAULT_MAX_SERIES);
    let p = m.publish(&eval);
    let text = m.render();
    let series = text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')).count();
    assert!(series <= 10_000, "{series} series");
    assert_eq!(series, p.series);
    // Every site-level finding and every team finding that is not ok is
    // still published; what was left out is counted.
    let latest = vigie::metrics::latest_findings(&eval.findings);
    for f in latest.iter().filter(|f| f.group == "site" || f.status != Status::Ok) {
        let s =
            format!("vigie_finding_status{{group=\"{}\",rule=\"{}\",site=\"{}\"}}", f.group, f.rule, f.site);
        assert_eq!(sample(&text, &s), Some(f.status.gauge() as f64), "{s}");
    }
    let dropped: f64 = vigie::metrics::DROPPED_KINDS
        .iter()
        .map(|k| sample(&text, &format!("vigie_metrics_series_dropped{{kind=\"{k}\"}}")).unwrap())
        .sum();
    assert!(dropped > 0.0);
    // A site of that size alone keeps everything.
    let small = vigie::metrics::budget_fixture(2, 20, 7);
    let m = Metrics::new(DEFAULT_MAX_SERIES);
    let p = m.publish(&small);
    assert_eq!((p.dropped_group_details, p.dropped_group_ok_findings), (0, 0));
    // 2 sites x 20 groups x (11 rules x 2 + 4 working-time breaches + 23
    // details every group has + 14 of targets, prompts and requests: the
    // target of its one process and the pace around its change, units over
    // target, shifts under it, 3 prompt-wait percentiles, the dictated
    // share, 6 gap buckets) + 2 suppression gauges + the fixed series.
    let text = m.render();
    let fixed = text.lines().filter(|l| !l.starts_with('#') && !l.contains("site=")).count();
    assert_eq!(p.series, 2 * 20 * (11 * 2 + 4 + 23 + 14) + 2 + fixed);
    let change =
        "vigie_pace_change_relative{group=\"team:t01\",process=\"pick\",site=\"site-01\",source=\"target\"}";
    assert_eq!(sample(&text, change), Some(0.12), "{text}");
}

#[test]
fn the_series_budget_is_a_hard_cap_even_for_site_level_series() {
    // 400 sites with no group: site-level series alone (findings and
    // details) are about twice the default budget.
    let eval = vigie::metrics::budget_fixture(400, 1, 7);
    let unbounded = Metrics::new(usize::MAX);
    let all = unbounded.publish(&eval);
    assert!(all.series > 19_000, "{} series", all.series);
    assert_eq!(all.dropped_series, 0);
    for max in [DEFAULT_MAX_SERIES, 1_000, 100] {
        let m = Metrics::new(max);
        let p = m.publish(&eval);
        let text = m.render();
        let series = text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')).count();
        assert!(series <= max, "{series} series for a budget of {max}");
        assert_eq!(series, p.series);
        // Nothing is lost silently: what is published plus what is counted
        // as left out is what an unbounded exporter publishes.
        let counted: f64 = vigie::metrics::DROPPED_KINDS
            .iter()
            .map(|k| sample(&text, &format!("vigie_metrics_series_dropped{{kind=\"{k}\"}}")).unwrap())
            .sum();
        assert_eq!(counted as usize, p.dropped_series);
        assert_eq!(p.series + p.dropped_series, all.series, "budget {max}");
    }
    // Problems come first: with a budget of 1,000, every site finding that
    // is not ok is still there.
    let m = Metrics::new(1_000);
    m.publish(&eval);
    let text = m.render();
    let latest = vigie::metrics::latest_findings(&eval.findings);
    let problems: Vec<_> = latest.iter().filter(|f| f.status != Status::Ok).collect();
    assert!(!problems.is_empty());
    for f in problems.iter().take(100) {
        let s =
            format!("vigie_finding_status{{group=\"{}\",rule=\"{}\",site=\"{}\"}}", f.group, f.rule, f.site);
        assert_eq!(sample(&text, &s), Some(f.status.gauge() as f64), "{s}");
    }
}

fn dashboards() -> Vec<(String, serde_json::Value)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboards");
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| (p.file_name().unwrap().to_string_lossy().to_string(), read_json(&p)))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn dashboards_are_what_the_generator_and_the_rule_catalogue_make() {
    if common::needs(common::Tool::Python3).is_none() {
        return;
    }
    let out = std::process::Command::new("python3")
        .args([concat!(env!("CARGO_MANIFEST_DIR"), "/dashboards/generate.py"), "--check"])
        .output()
        .expect("python3 runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn dashboards_pass_the_lint() {
    let boards = dashboards();
    assert_eq!(boards.len(), 5, "five dashboards");
    let mut uids = std::collections::BTreeSet::new();
    for (name, d) in &boards {
        let uid = d["uid"].as_str().unwrap_or_default();
        assert!(uid.starts_with("vigie-") && uids.insert(uid.to_string()), "{name}: uid {uid:?}");
        assert_eq!(format!("{uid}.json"), *name);
        let vars: Vec<&str> =
            d["templating"]["list"].as_array().unwrap().iter().map(|v| v["name"].as_str().unwrap()).collect();
        for v in ["datasource", "site", "group"] {
            assert!(vars.contains(&v), "{name}: no ${v} variable");
        }
        let ds =
            d["templating"]["list"].as_array().unwrap().iter().find(|v| v["name"] == "datasource").unwrap();
        assert_eq!(ds["type"], "datasource");
        assert_eq!(ds["query"], "prometheus");
        let panels = d["panels"].as_array().unwrap();
        assert!(!panels.is_empty(), "{name}: no panel");
        for p in panels {
            let title = p["title"].as_str().unwrap_or_default();
            let at = format!("{name}: panel {title:?}");
            assert!(!title.is_empty(), "{at}: no title");
            assert!(p["description"].as_str().is_some_and(|s| s.len() > 20), "{at}: no description");
            assert!(
                p["fieldConfig"]["defaults"]["unit"].as_str().is_some_and(|u| !u.is_empty()),
                "{at}: no unit"
            );
            assert_eq!(p["datasource"]["uid"], "${datasource}", "{at}: datasource");
            let targets = p["targets"].as_array().unwrap();
            assert!(!targets.is_empty(), "{at}: no query");
            for t in targets {
                let expr = t["expr"].as_str().unwrap_or_default();
                assert!(!expr.trim().is_empty(), "{at}: empty query");
                assert_eq!(t["datasource"]["uid"], "${datasource}", "{at}: target datasource");
                if expr.contains("rate(") || expr.contains("increase(") {
                    assert!(
                        expr.contains("[$__rate_interval]"),
                        "{at}: rate without $__rate_interval: {expr}"
                    );
                }
                assert!(!expr.contains("worker"), "{at}: a query names workers");
            }
        }
    }
}

#[test]
fn a_service_is_ready_once_it_has_joined_its_group_and_its_store_takes_writes() {
    let m = Metrics::new(DEFAULT_MAX_SERIES);
    // The demo's exporter has no group to join.
    assert_eq!(m.ready(), Ok(()));
    m.expects_group.store(true, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(m.ready(), Err("not yet a member of the consumer group".to_string()));
    m.group_joined.set(1);
    assert_eq!(m.ready(), Ok(()));
    m.store_writable.set(0);
    assert!(m.ready().unwrap_err().contains("store cannot be written"));
}
