//! The generator's scenarios produce the numbers they injected, and the
//! demo runs end to end.

use crate::common;

use vigie::generate::{Generator, Injected, NdjsonWriter, Scenario, SiteSpec};
use vigie_analyze::findings::Status;
use vigie_analyze::policy::Policy;
use vigie_analyze::rules::{self, Evaluation};
use vigie_analyze::shifts;
use vigie_ingest::store::EventBatch;

fn site(workers: u32, days: u32, scenario: Scenario) -> (Evaluation, Injected, u64) {
    site_seeded(workers, days, scenario, 11)
}

fn site_seeded(workers: u32, days: u32, scenario: Scenario, seed: u64) -> (Evaluation, Injected, u64) {
    let (e, inj, n, _) = site_with_shifts(workers, days, scenario, seed);
    (e, inj, n)
}

fn site_with_shifts(
    workers: u32,
    days: u32,
    scenario: Scenario,
    seed: u64,
) -> (Evaluation, Injected, u64, Vec<shifts::Shift>) {
    let mut g = Generator::new(SiteSpec::new(workers, days, seed, scenario));
    let w = NdjsonWriter::new(&g);
    let mut text = Vec::new();
    for d in 0..g.spec.days {
        for e in g.day(d) {
            let id = g.next_event_id();
            w.write(id, &e, &mut text);
        }
    }
    let events = common::ingest(std::str::from_utf8(&text).unwrap());
    let n = events.len() as u64;
    let mut batch = EventBatch::default();
    for e in events {
        batch.push(e);
    }
    let policy = Policy::profile("fr").unwrap();
    let s = shifts::frame_shifts(batch.take_frame().unwrap(), &policy.shift_model()).unwrap();
    (rules::evaluate(&s, &policy, None), g.injected.clone(), n, s)
}

fn site_total(e: &Evaluation, rule: &str) -> f64 {
    e.findings.iter().filter(|f| f.rule == rule && f.group == "site").filter_map(|f| f.observed).sum()
}

#[test]
fn worktime_scenario_finds_what_it_injected() {
    let (e, inj, _) = site(40, 28, Scenario::Worktime);
    assert_eq!((inj.break_after_6h, inj.daily_rest_11h, inj.daily_max_10h, inj.weekly_max_48h), (5, 4, 3, 2));
    assert_eq!(site_total(&e, "worktime.break_after_6h"), 5.0);
    assert_eq!(site_total(&e, "worktime.daily_rest_11h"), 4.0);
    assert_eq!(site_total(&e, "worktime.daily_max_10h"), 3.0);
    assert_eq!(site_total(&e, "worktime.weekly_max_48h"), 2.0);
    // Baseline employer: idle flags at 10 min, breaks excluded.
    let f = e.findings.iter().find(|f| f.rule == "pause.idle_flag_threshold" && f.group == "site").unwrap();
    assert_eq!(f.status, Status::Ok);
    assert_eq!(site_total(&e, "pause.flags_during_breaks"), 0.0);
}

#[test]
fn cnil_like_scenario_finds_what_it_injected() {
    let (e, inj, _) = site(40, 28, Scenario::CnilLike);
    let get = |rule: &str| {
        e.findings.iter().find(|f| f.rule == rule && f.group == "site" && f.period == "all").unwrap()
    };
    assert_eq!(get("pause.idle_flag_threshold").observed, Some(60.0));
    assert_eq!(get("pause.idle_flag_threshold").status, Status::Attention);
    assert!(inj.flags_during_breaks > 0);
    assert_eq!(get("pause.flags_during_breaks").observed, Some(inj.flags_during_breaks as f64));
    assert_eq!(get("speed.speed_flags").observed, Some(inj.speed_flags as f64));
    let just: u64 = e.aggregates.iter().filter(|a| a.group == "site").map(|a| a.justification_requests).sum();
    assert_eq!(just, inj.justification_requests);
    let idle: u64 = e.aggregates.iter().filter(|a| a.group == "site").map(|a| a.idle_flags).sum();
    assert_eq!(idle, inj.idle_flags);
    // 36 days of data (the scenario's minimum): more than 35 days.
    let r = get("retention.individual_data");
    assert!(r.observed.unwrap() > 35.0, "{:?}", r.observed);
    assert_eq!(r.status, Status::Attention);
    assert_eq!(get("cadence.rush_share").status, Status::Attention);
}

#[test]
fn intensification_scenario_is_found_on_its_date_with_its_size() {
    // The scenario speeds scans up by 1.14 from day 14 (Monday 16 March
    // 2026, the generator starting on Monday 2 March): about +12 % units
    // per effective hour.
    let (e, _, _) = site(40, 28, Scenario::Intensification);
    let f = e.findings.iter().find(|f| f.rule == "cadence.intensification" && f.group == "site").unwrap();
    let x = f.observed.unwrap();
    assert!((0.10..0.15).contains(&x), "{x}: {}", f.explanation);
    assert_eq!(f.status, Status::Attention);
    assert!(f.explanation.contains("2026-03-16"), "{}", f.explanation);
    let (b, _, _) = site(40, 28, Scenario::Baseline);
    let f = b.findings.iter().find(|f| f.rule == "cadence.intensification" && f.group == "site").unwrap();
    assert_eq!((f.observed, f.status), (Some(0.0), Status::Ok), "{}", f.explanation);
}

#[test]
fn a_change_of_mix_is_not_read_as_a_change_of_pace() {
    // From day 15 packing (35 % faster) goes from 20 % to 60 % of shifts;
    // the pace within picking and within packing does not change. The
    // site's weekly median units per hour rises by the mix alone, but no
    // group shows an intensification: the pace is followed per process.
    let (e, _, _) = site(40, 28, Scenario::MixChange);
    let week = |w: &str| {
        e.aggregates.iter().find(|a| a.group == "site" && a.week == w).and_then(|a| a.uph_p50).unwrap()
    };
    let rise = week("2026-W13") / week("2026-W10") - 1.0;
    assert!(rise > 0.08, "the mix should raise the site's median: {rise}");
    for f in e.findings.iter().filter(|f| f.rule == "cadence.intensification") {
        assert_ne!(f.status, Status::Attention, "{} {}: {}", f.group, f.period, f.explanation);
    }
}

#[test]
fn voice_paced_scenario_dates_and_sizes_the_rise_in_picking_only() {
    use vigie_analyze::findings::Fact;
    let (e, inj, _, shifts) = site_with_shifts(40, 28, Scenario::VoicePaced, 11);
    let find = |rule: &str| e.findings.iter().find(|f| f.rule == rule && f.group == "site").unwrap();
    let text = |f: &vigie_analyze::findings::Finding, k: &str| match f.facts.values.get(k) {
        Some(Fact::Text(t)) => t.clone(),
        other => panic!("{k}: {other:?}"),
    };
    // The truth, from the generated shifts themselves: picking's daily
    // median units per hour, before 16 March and from it.
    let day = |s: &shifts::Shift| {
        chrono::DateTime::from_timestamp_micros(s.start_us + i64::from(s.offset_s) * 1_000_000)
            .unwrap()
            .date_naive()
    };
    let change = chrono::NaiveDate::from_ymd_opt(2026, 3, 16).unwrap();
    let pick = vigie_ingest::event::Process::Pick.code();
    let mut by_day: std::collections::BTreeMap<chrono::NaiveDate, Vec<f64>> = Default::default();
    for s in shifts.iter().filter(|s| s.process == Some(pick)) {
        if let Some(u) = s.units_per_hour() {
            by_day.entry(day(s)).or_default().push(u);
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        let n = v.len();
        if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        }
    };
    let daily: Vec<(chrono::NaiveDate, f64)> = by_day.into_iter().map(|(d, v)| (d, median(v))).collect();
    let before = median(daily.iter().filter(|(d, _)| *d < change).map(|x| x.1).collect());
    let after = median(daily.iter().filter(|(d, _)| *d >= change).map(|x| x.1).collect());
    let truth = after / before - 1.0;
    let f = find("cadence.intensification");
    assert_eq!(f.status, Status::Attention, "{}", f.explanation);
    assert_eq!(text(f, "process"), "pick", "{}", f.explanation);
    let found = chrono::NaiveDate::parse_from_str(&text(f, "date"), "%Y-%m-%d").unwrap();
    assert!((found - change).num_days().abs() <= 1, "found {found}, injected {change}");
    let size = f.observed.unwrap();
    assert!((size - truth).abs() <= 0.02, "size {size}, truth {truth}");
    let num = |k: &str| match f.facts.values.get(k) {
        Some(Fact::Number(x)) => *x / 100.0,
        other => panic!("{k}: {other:?}"),
    };
    assert!(
        num("low") <= truth && truth <= num("high"),
        "interval {}..{} misses {truth}",
        num("low"),
        num("high")
    );
    // The target rose on the same date; requests about gaps of 3 minutes
    // or more, some of them under 10; the voice set part of the pace.
    assert_eq!(text(find("cadence.target_raised"), "date"), "2026-03-16");
    assert!(inj.justification_requests > 0 && find("pause.latency_flags").observed.unwrap() > 0.0);
    assert!(find("voice.pace_set_by_system").observed.unwrap() > 0.0);
    // The target in force in picking, as steps: 110 units an hour
    // announced on the Mondays before the change, 110 x 1.14 = 125.4 from
    // it. The pace around that step, over 14 days each side (here the
    // whole input), is the truth itself; in packing, whose pace did not
    // change, the interval covers zero.
    use vigie_analyze::dated::ChangeSource;
    let steps: Vec<(String, f64)> = e
        .target_steps
        .iter()
        .filter(|s| s.group == "site" && s.process == "pick")
        .map(|s| (s.from.to_string(), s.target_uph))
        .collect();
    assert_eq!(steps, [("2026-03-02".to_string(), 110.0), ("2026-03-16".to_string(), 125.4)]);
    let around = |process: &str| {
        e.comparisons
            .iter()
            .find(|c| c.group == "site" && c.process == process && c.source == ChangeSource::Target)
            .unwrap_or_else(|| panic!("no comparison in {process}: {:#?}", e.comparisons))
    };
    let c = around("pick");
    assert_eq!((c.date, c.target_from, c.target_to), (change, Some(110.0), Some(125.4)));
    assert!((c.relative.unwrap() - truth).abs() < 1e-3, "{c:?}, truth {truth}");
    assert!(c.low.unwrap() <= truth && truth <= c.high.unwrap(), "{c:?}");
    let p = around("pack");
    assert!(p.low.unwrap() <= 0.0 && 0.0 <= p.high.unwrap() && p.relative.unwrap().abs() < 0.03, "{p:?}");
}

#[test]
fn over_twenty_seeds_of_the_baseline_at_most_one_false_rise() {
    // No change is injected: every intensification finding is a false
    // alarm. The measured rate is written in docs/metrics.md.
    let mut alarms = Vec::new();
    for seed in 0..20 {
        let (e, _, _) = site_seeded(20, 28, Scenario::Baseline, 100 + seed);
        for f in e.findings.iter().filter(|f| f.rule == "cadence.intensification") {
            if f.status == Status::Attention {
                alarms.push(format!("seed {seed} {}: {}", f.group, f.explanation));
            }
        }
    }
    eprintln!("false alarms over 20 seeds: {}", alarms.len());
    assert!(alarms.len() <= 1, "{alarms:#?}");
}

#[test]
fn small_team_scenario_hides_the_small_team_and_one_more() {
    let (e, _, _) = site(46, 14, Scenario::SmallTeam);
    assert!(!e.findings.iter().any(|f| f.group == "team:night-crew"));
    assert!(e.suppressed >= 2);
}

#[test]
fn the_demo_runs_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    let o = common::run(&["demo", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    for needle in ["worktime.break_after_6h", "pause.idle_flag_threshold", "breach", "attention"] {
        assert!(stdout.contains(needle), "{needle} missing from the summary:\n{stdout}");
    }
    let f = common::read_json(&out.join("findings.json"));
    assert_eq!(f["input"]["rejected"], 5);
    assert_eq!(f["input"]["duplicates"], 1);
    assert_eq!(f["input"]["records_with_dropped_fields"], 1);
    assert!(f["privacy"]["suppressed_groups"].as_u64().unwrap() >= 2);
    assert!(out.join("report.html").is_file());
    assert!(out.join("aggregates/group_weeks.parquet").is_file());
    assert!(out.join("aggregates/group_weeks.csv").is_file());
    // The demo's folder has its manifest (every file, rejects included)
    // and verifies; its key was drawn for the run.
    assert_eq!(f["provenance"]["key_fingerprint"], "random key for this run");
    let m = common::read_json(&out.join("manifest.json"));
    let paths: Vec<&str> =
        m["files"].as_array().unwrap().iter().map(|e| e["path"].as_str().unwrap()).collect();
    assert_eq!(paths.len(), 9, "{paths:?}");
    assert!(paths.contains(&"rejects.ndjson") && paths.contains(&"aggregates/comparisons.csv"), "{paths:?}");
    let o = common::run(&["verify", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stdout));
}
