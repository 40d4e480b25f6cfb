//! The rule families' data-driven test helper: a small schedule written
//! as text, followed by five workers (k = 5, the smallest a policy
//! allows), and the findings expected of it, worked out by hand.
//!
//! A schedule is items separated by `|`, each:
//! `[week+N] DAYS HH:MM[:SS]-HH:MM[:SS] [break HH:MM-HH:MM]... [gap HH:MM-HH:MM]...`
//! where DAYS is `Mon` or a range `Mon..Fri`, in ISO week 10 of 2026
//! (Monday 2 March) plus N weeks, at +01:00. Each item is one shift:
//! `shift_start`, a scan every 5 minutes of the shift's clock strictly
//! inside it, `shift_end`; an end before the start is on the next day. A
//! `break` adds `break_start`/`break_end` and no scan strictly inside it;
//! a `gap` is an undeclared stop (no scan strictly inside it). `idle@HH:MM`,
//! `justify@HH:MM` and `speed@HH:MM` add the employer's `idle_flag` (with
//! `threshold_s` 300), `justification_request` and `speed_flag` (with
//! `threshold_s` 1.25) at that time; `idle@HH:MM/120` gives the flag a
//! `threshold_s` of 120, `justify@HH:MM/200` the request a `gap_s` of 200;
//! `target@HH:MM/110` announces a `rate_target` of 110 units per hour.

use chrono::{Duration, NaiveDate, NaiveTime};

use crate::employer::Employer;
use crate::findings::Status;
use crate::policy::Policy;
use crate::rules::{evaluate, Evaluation};
use crate::shifts::frame_shifts;
use vigie_ingest::event::Origin;
use vigie_ingest::pseudo::Pseudonymiser;
use vigie_ingest::rejects::MemoryRejects;
use vigie_ingest::store::EventBatch;
use vigie_ingest::Ingestor;

/// One expected finding.
pub struct Want {
    pub rule: &'static str,
    pub group: &'static str,
    pub period: &'static str,
    pub status: Status,
    /// `NaN` for no observed value.
    pub observed: f64,
}

/// A rule as a test names it: its id or its written form.
pub trait TestRule {
    fn id(self) -> &'static str;
}

impl TestRule for &'static str {
    fn id(self) -> &'static str {
        self
    }
}

impl TestRule for super::RuleId {
    fn id(self) -> &'static str {
        self.as_str()
    }
}

impl Want {
    /// An expected finding of the `site` group.
    pub fn site(rule: impl TestRule, period: &'static str, status: Status, observed: f64) -> Want {
        Want { rule: rule.id(), group: "site", period, status, observed }
    }
}

const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

fn time(s: &str) -> NaiveTime {
    NaiveTime::parse_from_str(s, "%H:%M:%S")
        .or_else(|_| NaiveTime::parse_from_str(s, "%H:%M"))
        .unwrap_or_else(|_| panic!("bad time {s:?}"))
}

fn span(s: &str) -> (NaiveTime, NaiveTime) {
    let (a, b) = s.split_once('-').unwrap_or_else(|| panic!("bad span {s:?}"));
    (time(a), time(b))
}

/// The NDJSON lines of a schedule, for five workers.
pub fn events(script: &str) -> String {
    let monday = NaiveDate::from_ymd_opt(2026, 3, 2).expect("date");
    let mut out = String::new();
    let mut n = 0;
    for item in script.split('|').map(str::trim).filter(|s| !s.is_empty()) {
        let mut words = item.split_whitespace().peekable();
        let mut week = 0;
        if let Some(w) = words.peek().and_then(|w| w.strip_prefix("week+")) {
            week = w.parse::<i64>().expect("week+N");
            words.next();
        }
        let days = words.next().expect("days");
        let (d0, d1) = days.split_once("..").unwrap_or((days, days));
        let idx =
            |d: &str| DAYS.iter().position(|x| *x == d).unwrap_or_else(|| panic!("bad day {d:?}")) as i64;
        let (from, to) = span(words.next().expect("span"));
        let mut breaks = Vec::new();
        let mut gaps = Vec::new();
        let mut flags = Vec::new();
        while let Some(w) = words.next() {
            if let Some((kind, at)) = w.split_once('@') {
                let (at, value) = at.split_once('/').map_or((at, None), |(a, v)| (a, Some(v)));
                let (kind, extra) = match (kind, value) {
                    ("idle", v) => ("idle_flag", format!(",\"threshold_s\":{}", v.unwrap_or("300"))),
                    ("justify", None) => ("justification_request", String::new()),
                    ("justify", Some(v)) => ("justification_request", format!(",\"gap_s\":{v}")),
                    ("speed", v) => ("speed_flag", format!(",\"threshold_s\":{}", v.unwrap_or("1.25"))),
                    ("target", Some(v)) => ("rate_target", format!(",\"target_per_hour\":{v}")),
                    (other, _) => panic!("unknown flag {other:?}"),
                };
                flags.push((time(at), kind, extra));
                continue;
            }
            let s = span(words.next().expect("span after break/gap"));
            match w {
                "break" => breaks.push(s),
                "gap" => gaps.push(s),
                other => panic!("unknown word {other:?}"),
            }
        }
        for d in idx(d0)..=idx(d1) {
            let date = monday + Duration::weeks(week) + Duration::days(d);
            let start = date.and_time(from);
            let end = if to <= from { (date + Duration::days(1)).and_time(to) } else { date.and_time(to) };
            let at = |t: NaiveTime| {
                if t < from {
                    (date + Duration::days(1)).and_time(t)
                } else {
                    date.and_time(t)
                }
            };
            let mut evs = vec![(start, "shift_start", ""), (end, "shift_end", "")];
            for (b0, b1) in &breaks {
                evs.push((at(*b0), "break_start", ""));
                evs.push((at(*b1), "break_end", ""));
            }
            for (t, kind, extra) in &flags {
                evs.push((at(*t), kind, extra.as_str()));
            }
            let mut t = start + Duration::minutes(5);
            while t < end {
                let inside = |(a, b): &(NaiveTime, NaiveTime), strict: bool| {
                    let (a, b) = (at(*a), at(*b));
                    if strict {
                        t > a && t < b
                    } else {
                        t >= a && t <= b
                    }
                };
                if !breaks.iter().any(|b| inside(b, false)) && !gaps.iter().any(|g| inside(g, true)) {
                    evs.push((t, "scan", ""));
                }
                t += Duration::minutes(5);
            }
            for w in 0..5 {
                for (t, kind, extra) in &evs {
                    n += 1;
                    out.push_str(&format!(
                        "{{\"event_id\":\"e{n}\",\"ts\":\"{}+01:00\",\"site\":\"s1\",\"worker\":\"w{w}\",\"kind\":\"{kind}\"{extra}}}\n",
                        t.format("%Y-%m-%dT%H:%M:%S")
                    ));
                }
            }
        }
    }
    out
}

/// Evaluates a schedule under a profile (k = 5), with an optional
/// employer declaration (TOML).
pub fn run(profile: &str, script: &str, employer: Option<&str>) -> Evaluation {
    run_lines(profile, &events(script), employer)
}

/// Evaluates NDJSON events under a profile (k = 5).
pub fn run_lines(profile: &str, lines: &str, employer: Option<&str>) -> Evaluation {
    let mut policy = Policy::profile(profile).expect("profile");
    policy.k = 5;
    let pseudo = Pseudonymiser::new(&[b'k'; 32]).expect("key");
    let mut ing = Ingestor::new(pseudo, None, Vec::new(), MemoryRejects::default());
    for (i, l) in lines.lines().enumerate() {
        ing.offer_json(l.as_bytes(), || Origin::File { file: "t".into(), line: i as u64 + 1 })
            .expect("offer");
    }
    let (events, rejects, _) = ing.finish().expect("finish");
    assert!(rejects.lines.is_empty(), "test input rejected: {:?}", rejects.lines);
    let mut batch = EventBatch::default();
    for e in events {
        batch.push(e);
    }
    let frame = batch.take_frame().expect("frame");
    let model = policy.shift_model();
    let shifts = frame_shifts(frame.clone(), &model).expect("shifts");
    // The audit's fold must find the same shifts as the query on every
    // hand-worked schedule.
    let folded = crate::fold::fold_shifts(&frame, &model).expect("fold").expect("no null key");
    crate::fold::assert_same(&folded, &shifts);
    let employer: Option<Employer> = employer.map(|t| toml::from_str(t).expect("employer"));
    evaluate(&shifts, &policy, employer.as_ref())
}

/// Checks the expected findings of a schedule.
pub fn check(profile: &str, script: &str, wants: &[Want]) {
    check_with(profile, script, None, wants);
}

/// [`check`] with an employer declaration.
pub fn check_with(profile: &str, script: &str, employer: Option<&str>, wants: &[Want]) {
    let e = run(profile, script, employer);
    for w in wants {
        let Some(f) =
            e.findings.iter().find(|f| f.rule == w.rule && f.group == w.group && f.period == w.period)
        else {
            panic!(
                "{profile} {script:?}: no finding {} {} {}; {} has {:?}",
                w.rule,
                w.group,
                w.period,
                w.rule,
                e.findings
                    .iter()
                    .filter(|f| f.rule == w.rule)
                    .map(|f| (&f.group, &f.period))
                    .collect::<Vec<_>>()
            )
        };
        let observed_ok = match f.observed {
            None => w.observed.is_nan(),
            Some(o) => (o - w.observed).abs() < 1e-9,
        };
        assert!(
            f.status == w.status && observed_ok,
            "{profile} {script:?}: {} {} {}: got {:?} {:?}, want {:?} {}\n{}",
            w.rule,
            w.group,
            w.period,
            f.status,
            f.observed,
            w.status,
            w.observed,
            f.explanation
        );
        assert!(!f.explanation.contains('{'), "unfilled evidence: {}", f.explanation);
    }
}
