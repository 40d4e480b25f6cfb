//! The version-1 rules, evaluated on shifts, per site, group and period,
//! with k-anonymity and complementary suppression applied before anything
//! is published.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Datelike};

use crate::employer::Employer;
use crate::findings::{Finding, Status};
use crate::policy::{Policy, RulePolicy};
use crate::privacy;
use crate::shifts::{Shift, GAP_CLASSES, HIST_BOUNDS_S};

const US_PER_H: f64 = 3.6e9;

/// California: one 10-minute rest period per `every_h` hours worked or
/// major fraction (none under 3.5 h), plus the meal period once work
/// exceeds `meal_h`.
pub fn ca_rest_required(worked_h: f64, every_h: f64, meal_h: f64) -> f64 {
    if worked_h < 3.5 {
        return 0.0;
    }
    let rest = ((worked_h - every_h / 2.0) / every_h).ceil().max(1.0);
    rest + if worked_h > meal_h { 1.0 } else { 0.0 }
}

/// The ISO week (`2026-W10`) and date of a local instant.
pub fn iso_week(local_us: i64) -> String {
    let dt = DateTime::from_timestamp_micros(local_us).unwrap_or_default().naive_utc();
    let w = dt.iso_week();
    format!("{:04}-W{:02}", w.year(), w.week())
}

/// The local calendar date of a local instant.
pub fn local_date(local_us: i64) -> chrono::NaiveDate {
    DateTime::from_timestamp_micros(local_us).unwrap_or_default().naive_utc().date()
}

/// Everything the analysis publishes.
#[derive(Debug, Clone, Default)]
pub struct Evaluation {
    pub findings: Vec<Finding>,
    /// Hidden (site, group, period) triples.
    pub suppressed: u64,
    pub suppressed_by_site: BTreeMap<String, u64>,
    pub aggregates: Vec<AggregateRow>,
    /// Data coverage per site and local day (site level only).
    pub coverage: Vec<DayCoverage>,
}

/// How much data a site has on one local day. Days with fewer than k
/// distinct workers are withheld: `shifts` is then `None`.
#[derive(Debug, Clone, PartialEq)]
pub struct DayCoverage {
    pub site: String,
    pub date: chrono::NaiveDate,
    pub shifts: Option<u64>,
}

/// One row of the open data: a published group in one ISO week.
#[derive(Debug, Clone, PartialEq)]
pub struct AggregateRow {
    pub site: String,
    pub group: String,
    pub week: String,
    pub workers: u64,
    pub shifts: u64,
    pub effective_hours: f64,
    pub units: u64,
    pub uph_p10: Option<f64>,
    pub uph_p50: Option<f64>,
    pub uph_p90: Option<f64>,
    pub hist: [u64; HIST_BOUNDS_S.len() + 1],
    pub gaps: [u64; GAP_CLASSES.len()],
    pub idle_flags: u64,
    pub speed_flags: u64,
    pub justification_requests: u64,
}

/// Quantile with linear interpolation between closest ranks (the
/// "linear" method of NumPy and Polars). `sorted` must be sorted.
pub fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    Some(sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64))
}

struct Row<'a> {
    s: &'a Shift,
    week: String,
    /// Local date of the shift start, `2026-03-02`.
    day: String,
    /// `site`, then `team:NAME` and `zone:NAME` when the shift has them.
    groups: Vec<String>,
    team: Option<String>,
    zone: Option<String>,
}

type Key = (Arc<str>, String, String);

fn groups_of(s: &Shift) -> Vec<String> {
    let mut g = vec!["site".to_string()];
    if let Some(t) = &s.team {
        g.push(format!("team:{t}"));
    }
    if let Some(z) = &s.zone {
        g.push(format!("zone:{z}"));
    }
    g
}

fn round(x: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits);
    (x * p).round() / p
}

/// Where a finding applies.
struct At<'a> {
    site: &'a str,
    group: &'a str,
    period: &'a str,
    population: u64,
}

impl At<'_> {
    fn finding(
        &self,
        id: &str,
        r: &RulePolicy,
        status: Status,
        observed: Option<f64>,
        explanation: String,
    ) -> Finding {
        Finding {
            rule: id.to_string(),
            status,
            site: self.site.to_string(),
            group: self.group.to_string(),
            period: self.period.to_string(),
            observed,
            threshold: r.threshold,
            unit: r.unit.clone(),
            population: self.population,
            sources: r.sources.clone(),
            explanation,
        }
    }
}

/// Distinct workers by (site, group, period).
type Populations = BTreeMap<Key, BTreeSet<u64>>;
/// Effective time, groups and ISO week of a (site, worker, local date).
type WorkerDays = BTreeMap<(Arc<str>, u64, String), (i64, BTreeSet<String>, String)>;
/// Effective time and groups of a (site, worker, week).
type WorkerWeeks = BTreeMap<(Arc<str>, u64, String), (i64, BTreeSet<String>)>;

struct Emit<'a> {
    policy: &'a Policy,
    out: Vec<Finding>,
}

impl Emit<'_> {
    fn rule(&self, id: &str) -> Option<RulePolicy> {
        self.policy.rule(id).cloned()
    }

    fn push(&mut self, id: &str, at: &At, observed: Option<f64>, explanation: String) {
        let Some(r) = self.rule(id) else { return };
        let status = match observed {
            None => Status::InsufficientData,
            Some(o) if r.compare.crossed(o, r.threshold) => match r.severity {
                crate::policy::Severity::Attention => Status::Attention,
                crate::policy::Severity::Breach => Status::Breach,
            },
            Some(_) => Status::Ok,
        };
        self.out.push(at.finding(id, &r, status, observed, explanation));
    }

    /// A rule whose value is "nothing to judge" but not a lack of data:
    /// status ok with no observed value.
    fn push_none(&mut self, id: &str, at: &At, explanation: String) {
        let Some(r) = self.rule(id) else { return };
        self.out.push(at.finding(id, &r, Status::Ok, None, explanation));
    }
}

const WEEKLY_RULES: [&str; 4] = [
    "worktime.break_after_6h",
    "worktime.daily_rest_11h",
    "worktime.daily_max_10h",
    "worktime.weekly_max_48h",
];

/// Evaluates every enabled rule. `shifts` must be sorted by site, worker
/// and start (as [`crate::shifts`] returns them).
pub fn evaluate(shifts: &[Shift], policy: &Policy, employer: Option<&Employer>) -> Evaluation {
    evaluate_with(shifts, policy, employer, &Evidence::default())
}

/// What the service observed of the source itself, beside the events.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Evidence {
    /// How long the source keeps individual events, days, and how that was
    /// seen (the earliest record still in the topic, its `retention.ms`).
    pub source_retention: Option<(f64, String)>,
}

/// [`evaluate`] with evidence about the source.
pub fn evaluate_with(
    shifts: &[Shift],
    policy: &Policy,
    employer: Option<&Employer>,
    evidence: &Evidence,
) -> Evaluation {
    let k = policy.k as usize;
    let rows: Vec<Row> = shifts
        .iter()
        .map(|s| Row {
            s,
            week: iso_week(s.local_start_us()),
            day: local_date(s.local_start_us()).to_string(),
            groups: groups_of(s),
            team: s.team.as_ref().map(|t| format!("team:{t}")),
            zone: s.zone.as_ref().map(|z| format!("zone:{z}")),
        })
        .collect();

    // Populations: distinct workers per (site, group, period); and the
    // rows of each, so that each group is read once.
    let mut pop: Populations = BTreeMap::new();
    let mut members_of: HashMap<Key, Vec<usize>> = HashMap::new();
    for (i, r) in rows.iter().enumerate() {
        for g in &r.groups {
            for period in [r.week.as_str(), "all"] {
                let key = (r.s.site.clone(), g.clone(), period.to_string());
                pop.entry(key.clone()).or_default().insert(r.s.worker);
                members_of.entry(key).or_default().push(i);
            }
        }
    }
    let sites: BTreeSet<Arc<str>> = rows.iter().map(|r| r.s.site.clone()).collect();

    // Suppression, per site, over every cell published about it: groups of
    // every kind, weeks, the whole input and days (docs/privacy.md).
    let mut hidden: BTreeSet<Key> = BTreeSet::new();
    let mut hidden_days: BTreeSet<(Arc<str>, String)> = BTreeSet::new();
    for site in &sites {
        let of_site = &members_of[&(site.clone(), "site".to_string(), "all".to_string())];
        if pop[&(site.clone(), "site".to_string(), "all".to_string())].len() < k {
            // The whole site is withheld; its groups are hidden.
            for ((s, g, p), _) in pop.range((site.clone(), String::new(), String::new())..) {
                if s != site {
                    break;
                }
                if g != "site" {
                    hidden.insert((s.clone(), g.clone(), p.clone()));
                }
            }
            continue;
        }
        let slots: Vec<privacy::Slot> = of_site
            .iter()
            .map(|i| {
                let r = &rows[*i];
                privacy::Slot {
                    worker: r.s.worker,
                    day: &r.day,
                    week: &r.week,
                    team: r.team.as_deref(),
                    zone: r.zone.as_deref(),
                }
            })
            .collect();
        for (group, period) in privacy::suppress_site(&slots, k) {
            if group == "day" {
                hidden_days.insert((site.clone(), period));
            } else {
                hidden.insert((site.clone(), group, period));
            }
        }
    }
    let mut suppressed_by_site: BTreeMap<String, u64> = BTreeMap::new();
    for (site, _, _) in &hidden {
        *suppressed_by_site.entry(site.to_string()).or_default() += 1;
    }
    let visible =
        |key: &Key| -> bool { !hidden.contains(key) && pop.get(key).map(|w| w.len() >= k).unwrap_or(false) };

    let mut emit = Emit { policy, out: Vec::new() };

    // Sites under k: nothing but insufficient_data.
    let mut small_sites = BTreeSet::new();
    for site in &sites {
        let n = pop.get(&(site.clone(), "site".into(), "all".into())).map(|w| w.len()).unwrap_or(0);
        if n < k {
            small_sites.insert(site.clone());
            let at = At { site, group: "site", period: "all", population: n as u64 };
            for id in policy.rules.keys().filter(|id| policy.rule(id).is_some()) {
                emit.push(id, &at, None, format!("The site has {n} distinct workers, fewer than k = {k}: nothing is published about it."));
            }
        }
    }

    // Weekly working-time counts.
    let break_limit = policy.limit("worktime.break_after_6h", 6.0) * US_PER_H;
    let break_inclusive = policy.limit_inclusive("worktime.break_after_6h");
    let break_crossed = |stretch_us: f64| {
        if break_inclusive {
            stretch_us >= break_limit
        } else {
            stretch_us > break_limit
        }
    };
    let rest_limit = policy.limit("worktime.daily_rest_11h", 11.0) * US_PER_H;
    let daily_limit = policy.limit("worktime.daily_max_10h", 10.0) * US_PER_H;
    let weekly_limit = policy.limit("worktime.weekly_max_48h", 48.0) * US_PER_H;
    let meal_limit_h = policy.limit("worktime.ca_meal_period", 5.0);
    let rest_every_h = policy.limit("worktime.ca_rest_period", 4.0);
    let mut weekly: HashMap<Key, [u64; 6]> = HashMap::new();
    let mut worker_week: WorkerWeeks = BTreeMap::new();
    // Effective time, groups and week of each (site, worker, local date).
    let mut worker_day: WorkerDays = BTreeMap::new();
    for (i, r) in rows.iter().enumerate() {
        let mut add = |slot: usize, groups: &[String], week: &str| {
            for g in groups {
                weekly.entry((r.s.site.clone(), g.clone(), week.to_string())).or_default()[slot] += 1;
            }
        };
        if break_crossed(r.s.longest_stretch_us as f64) {
            add(0, &r.groups, &r.week);
        }
        // Daily rest: between two working days (a shift belongs to the
        // local date it starts on). A gap between two shifts of the same
        // day (a lunch clock-out) is not a rest period.
        if i > 0 {
            let p = &rows[i - 1];
            if p.s.site == r.s.site
                && p.s.worker == r.s.worker
                && p.day != r.day
                && ((r.s.start_us - p.s.end_us) as f64) < rest_limit
            {
                add(1, &r.groups, &r.week);
            }
        }
        let worked_h = r.s.effective_us() as f64 / US_PER_H;
        if worked_h > meal_limit_h && r.s.meal_after_us.is_none_or(|m| m as f64 > meal_limit_h * US_PER_H) {
            add(4, &r.groups, &r.week);
        }
        if (r.s.rest_breaks as f64) < ca_rest_required(worked_h, rest_every_h, meal_limit_h) {
            add(5, &r.groups, &r.week);
        }
        let e = worker_week.entry((r.s.site.clone(), r.s.worker, r.week.clone())).or_default();
        e.0 += r.s.effective_us();
        e.1.extend(r.groups.iter().cloned());
        let d = worker_day.entry((r.s.site.clone(), r.s.worker, r.day.clone())).or_default();
        d.0 += r.s.effective_us();
        d.1.extend(r.groups.iter().cloned());
        d.2.clone_from(&r.week);
    }
    // Daily maximum: the effective time of a working day, summed over the
    // shifts that start on that local date; and the worker-days of each
    // group-week.
    let mut worker_days_in: HashMap<Key, u64> = HashMap::new();
    for ((site, _, _), (eff, groups, week)) in &worker_day {
        for g in groups {
            let key = (site.clone(), g.clone(), week.clone());
            if *eff as f64 > daily_limit {
                weekly.entry(key.clone()).or_default()[2] += 1;
            }
            *worker_days_in.entry(key).or_default() += 1;
        }
    }
    for ((site, _, week), (eff, groups)) in &worker_week {
        if *eff as f64 > weekly_limit {
            for g in groups {
                weekly.entry((site.clone(), g.clone(), week.clone())).or_default()[3] += 1;
            }
        }
    }
    let worker_weeks_in: HashMap<Key, u64> = {
        let mut m = HashMap::new();
        for ((site, _, week), (_, groups)) in &worker_week {
            for g in groups {
                *m.entry((site.clone(), g.clone(), week.clone())).or_default() += 1;
            }
        }
        m
    };
    for (key, workers) in &pop {
        let (site, group, period) = key;
        if period == "all" || small_sites.contains(site) {
            continue;
        }
        let n = workers.len() as u64;
        let at = At { site, group, period, population: n };
        if group == "site" && ((n as usize) < k || hidden.contains(key)) {
            let why = if (n as usize) < k {
                format!("Only {n} distinct workers this week, fewer than k = {k}: withheld.")
            } else {
                format!("Withheld: with the figures published for the other weeks or the whole input, this week's would single out fewer than k = {k} workers.")
            };
            for id in WEEKLY_RULES.iter().chain(&crate::policy::RULES_US_CA) {
                emit.push(id, &at, None, why.clone());
            }
            continue;
        }
        if !visible(key) {
            continue;
        }
        let c = weekly.get(key).copied().unwrap_or_default();
        let shifts = members_of.get(key).map_or(0, |m| m.len() as u64);
        let ww = worker_weeks_in.get(key).copied().unwrap_or(0);
        let h = |x: f64| x / US_PER_H;
        emit.push(
            WEEKLY_RULES[0],
            &at,
            Some(c[0] as f64),
            format!(
            "{} of {shifts} shifts held a stretch of {} {} h of activity with no break of {} min or more.",
            c[0], if break_inclusive { "at least" } else { "more than" },
            h(break_limit), policy.break_min_minutes),
        );
        emit.push(
            WEEKLY_RULES[1],
            &at,
            Some(c[1] as f64),
            format!(
                "{} times a worker started a working day less than {} h after the end of the previous one (a gap between two shifts of the same day is not counted).",
                c[1],
                h(rest_limit)
            ),
        );
        let wd = worker_days_in.get(key).copied().unwrap_or(0);
        emit.push(
            WEEKLY_RULES[2],
            &at,
            Some(c[2] as f64),
            format!(
                "{} of {wd} worker-days had more than {} h of effective time (the day's shifts summed, each its span minus declared breaks).",
                c[2],
                h(daily_limit)
            ),
        );
        emit.push(
            WEEKLY_RULES[3],
            &at,
            Some(c[3] as f64),
            format!("{} of {ww} worker-weeks had more than {} h of effective time.", c[3], h(weekly_limit)),
        );
        emit.push("worktime.ca_meal_period", &at, Some(c[4] as f64), format!(
            "{} of {shifts} shifts of more than {meal_limit_h} h had no break of 30 min or more starting within the first {meal_limit_h} h.",
            c[4]));
        emit.push("worktime.ca_rest_period", &at, Some(c[5] as f64), format!(
            "{} of {shifts} shifts had fewer breaks of 10 min or more than one per {rest_every_h} h worked (or major fraction), plus the meal period.",
            c[5]));
    }

    // Rules over the whole input, per group.
    let weeks_of_site: BTreeMap<Arc<str>, Vec<String>> = {
        let mut m: BTreeMap<Arc<str>, BTreeSet<String>> = BTreeMap::new();
        for r in &rows {
            m.entry(r.s.site.clone()).or_default().insert(r.week.clone());
        }
        m.into_iter().map(|(s, w)| (s, w.into_iter().collect())).collect()
    };
    let n_weeks = policy.intensification_weeks as usize;
    for (key, workers) in &pop {
        let (site, group, period) = key;
        if period != "all" || small_sites.contains(site) || !visible(key) {
            continue;
        }
        let n = workers.len() as u64;
        let at = At { site, group, period: "all", population: n };
        let members: Vec<&Row> = members_of[key].iter().map(|i| &rows[*i]).collect();
        let shifts = members.len() as u64;

        // pause.idle_flag_threshold
        let idle_min = members
            .iter()
            .filter_map(|r| r.s.idle_min_s)
            .fold(None, |a: Option<f64>, x| Some(a.map_or(x, |a| a.min(x))));
        let idle_n: u64 = members.iter().map(|r| r.s.idle_flags).sum();
        match idle_min {
            Some(t) => emit.push("pause.idle_flag_threshold", &at, Some(round(t, 2)), format!(
                "The employer's system raised {idle_n} inactivity flags; the smallest threshold seen is {} s.", round(t, 2))),
            None => emit.push_none("pause.idle_flag_threshold", &at, "No inactivity flag (idle_flag) in the input: there is no threshold to assess.".into()),
        }
        // pause.flags_during_breaks
        let in_breaks: u64 = members.iter().map(|r| r.s.flags_in_breaks).sum();
        emit.push(
            "pause.flags_during_breaks",
            &at,
            Some(in_breaks as f64),
            format!("{in_breaks} inactivity flags or justification requests fell inside declared breaks."),
        );
        // pause.justification_burden
        let with_just = members.iter().filter(|r| r.s.justifications > 0).count() as u64;
        let just_n: u64 = members.iter().map(|r| r.s.justifications).sum();
        let share = if shifts > 0 { Some(round(with_just as f64 / shifts as f64, 4)) } else { None };
        emit.push("pause.justification_burden", &at, share, format!(
            "{with_just} of {shifts} shifts had at least one request to justify a gap ({just_n} requests in all)."));
        // speed.speed_flags
        let speed_n: u64 = members.iter().map(|r| r.s.speed_flags).sum();
        let speed_min = members
            .iter()
            .filter_map(|r| r.s.speed_min_s)
            .fold(None, |a: Option<f64>, x| Some(a.map_or(x, |a| a.min(x))));
        emit.push(
            "speed.speed_flags",
            &at,
            Some(speed_n as f64),
            match speed_min {
                Some(t) => format!(
                    "The employer's system flagged {speed_n} gestures as too fast; its threshold is {} s.",
                    round(t, 3)
                ),
                None => format!("The employer's system flagged {speed_n} gestures as too fast."),
            },
        );
        // cadence.intensification
        let weeks = weeks_of_site.get(site).cloned().unwrap_or_default();
        if weeks.len() >= 2 * n_weeks {
            let first: BTreeSet<&String> = weeks[..n_weeks].iter().collect();
            let last: BTreeSet<&String> = weeks[weeks.len() - n_weeks..].iter().collect();
            let uph = |set: &BTreeSet<&String>| {
                let mut v: Vec<f64> = members
                    .iter()
                    .filter(|r| set.contains(&r.week))
                    .filter_map(|r| r.s.units_per_hour())
                    .collect();
                v.sort_by(f64::total_cmp);
                quantile(&v, 0.5)
            };
            match (uph(&first), uph(&last)) {
                (Some(a), Some(b)) if a > 0.0 => emit.push(
                    "cadence.intensification",
                    &at,
                    Some(round((b - a) / a, 4)),
                    format!(
                        "Median units per hour per shift went from {:.1} ({} to {}) to {:.1} ({} to {}).",
                        a,
                        weeks[0],
                        weeks[n_weeks - 1],
                        b,
                        weeks[weeks.len() - n_weeks],
                        weeks[weeks.len() - 1]
                    ),
                ),
                _ => emit.push(
                    "cadence.intensification",
                    &at,
                    None,
                    "No shift with scans in the first or in the last weeks: the pace cannot be compared."
                        .into(),
                ),
            }
        } else {
            emit.push("cadence.intensification", &at, None, format!(
                "The input covers {} ISO weeks; comparing the first {n_weeks} with the last {n_weeks} needs at least {}.",
                weeks.len(), 2 * n_weeks));
        }
        // cadence.rush_share
        let intervals: u64 = members.iter().map(|r| r.s.intervals).sum();
        let rush: u64 = members.iter().map(|r| r.s.rush).sum();
        let rush_s = policy.limit("cadence.rush_share", 1.25);
        if intervals > 0 {
            emit.push(
                "cadence.rush_share",
                &at,
                Some(round(rush as f64 / intervals as f64, 4)),
                format!(
                    "{rush} of {intervals} intervals between consecutive scans were shorter than {rush_s} s."
                ),
            );
        } else {
            emit.push("cadence.rush_share", &at, None, "No consecutive scans in the input.".into());
        }
        // retention.individual_data (site only)
        if group == "site" {
            let from = members.iter().map(|r| r.s.start_us).min().unwrap_or(0);
            let to = members.iter().map(|r| r.s.end_us).max().unwrap_or(0);
            let span_days = round((to - from) as f64 / 8.64e10, 2);
            let declared = employer.and_then(Employer::individual_retention_days);
            let (observed, text) = match declared {
                Some(d) => (span_days.max(d), format!(
                    "The employer declares keeping individual data {d} days; the input itself spans {span_days} days of individual events.")),
                None => (span_days, format!(
                    "The input spans {span_days} days of individual events: the employer keeps them at least that long.")),
            };
            let (observed, text) = match &evidence.source_retention {
                Some((days, how)) if *days > observed => (round(*days, 2), format!("{text} {how}")),
                Some((_, how)) => (observed, format!("{text} {how}")),
                None => (observed, text),
            };
            emit.push("retention.individual_data", &at, Some(observed), text);
        }
        // load.daily_mass (only when weights are present)
        if members.iter().any(|r| r.s.weight_kg.is_some()) {
            let limit = policy.limit("load.daily_mass", 7500.0);
            let heavy = members.iter().filter(|r| r.s.weight_kg.unwrap_or(0.0) > limit).count() as u64;
            emit.push(
                "load.daily_mass",
                &at,
                Some(heavy as f64),
                format!("{heavy} of {shifts} shifts handled more than {limit} kg in total."),
            );
        }
        // Employer declaration (site group only).
        if group == "site" {
            if let Some(e) = employer {
                // Compared with the first monitoring indicator (an idle,
                // speed or justification flag), not the first scan: the
                // consultation is due before a means of monitoring is used.
                let first_indicator = members
                    .iter()
                    .filter(|r| r.s.idle_flags + r.s.speed_flags + r.s.justifications > 0)
                    .map(|r| r.s.local_start_us())
                    .min()
                    .map(local_date);
                let (missing, text) = match (e.works_council_consulted, first_indicator) {
                    (Some(d), Some(first)) if d <= first => (0.0, format!("The employer declares the works council was consulted on {d}, before the first monitoring indicator of the input (an idle, speed or justification flag, {first}).")),
                    (Some(d), Some(first)) => (1.0, format!("The employer declares the works council was consulted on {d}, after the monitoring indicators were already in use ({first}).")),
                    (Some(d), None) => (0.0, format!("The employer declares the works council was consulted on {d}; the input holds no monitoring indicator to compare with.")),
                    (None, _) => (1.0, "The employer's declaration gives no date of works-council consultation.".to_string()),
                };
                emit.push("consultation.works_council", &at, Some(missing), text);
                let (missing, text) = match e.dpia {
                    Some(true) => (
                        Some(0.0),
                        "The employer declares a data protection impact assessment exists.".to_string(),
                    ),
                    Some(false) => {
                        (Some(1.0), "The employer declares no data protection impact assessment.".to_string())
                    }
                    // Nothing declared: nothing to judge.
                    None => {
                        (None, "The employer's declaration does not say whether a DPIA exists.".to_string())
                    }
                };
                emit.push("consultation.dpia", &at, missing, text);
            }
        }
    }

    // Open data, per visible group and week.
    let mut aggregates = Vec::new();
    for (key, workers) in &pop {
        let (site, group, period) = key;
        if period == "all" || small_sites.contains(site) || !visible(key) {
            continue;
        }
        let members: Vec<&Row> = members_of[key].iter().map(|i| &rows[*i]).collect();
        let mut uph: Vec<f64> = members.iter().filter_map(|r| r.s.units_per_hour()).collect();
        uph.sort_by(f64::total_cmp);
        let mut hist = [0u64; HIST_BOUNDS_S.len() + 1];
        let mut gaps = [0u64; GAP_CLASSES.len()];
        for r in &members {
            for (a, b) in hist.iter_mut().zip(r.s.hist) {
                *a += b;
            }
            for (a, b) in gaps.iter_mut().zip(r.s.gaps) {
                *a += b;
            }
        }
        aggregates.push(AggregateRow {
            site: site.to_string(),
            group: group.clone(),
            week: period.clone(),
            workers: workers.len() as u64,
            shifts: members.len() as u64,
            effective_hours: round(
                members.iter().map(|r| r.s.effective_us() as f64).sum::<f64>() / US_PER_H,
                3,
            ),
            units: members.iter().map(|r| r.s.units).sum(),
            uph_p10: quantile(&uph, 0.1).map(|x| round(x, 2)),
            uph_p50: quantile(&uph, 0.5).map(|x| round(x, 2)),
            uph_p90: quantile(&uph, 0.9).map(|x| round(x, 2)),
            hist,
            gaps,
            idle_flags: members.iter().map(|r| r.s.idle_flags).sum(),
            speed_flags: members.iter().map(|r| r.s.speed_flags).sum(),
            justification_requests: members.iter().map(|r| r.s.justifications).sum(),
        });
    }

    let mut findings = emit.out;
    let order: HashMap<&str, usize> = crate::policy::RULES_V1
        .iter()
        .chain(&crate::policy::RULES_US_CA)
        .chain(&crate::policy::RULES_EMPLOYER)
        .enumerate()
        .map(|(i, r)| (*r, i))
        .collect();
    let group_rank = |g: &str| if g == "site" { (0, g.to_string()) } else { (1, g.to_string()) };
    findings.sort_by(|a, b| {
        (&a.site, order.get(a.rule.as_str()), group_rank(&a.group), &a.period).cmp(&(
            &b.site,
            order.get(b.rule.as_str()),
            group_rank(&b.group),
            &b.period,
        ))
    });
    // Coverage per local day, site level, withheld under k.
    let mut days: BTreeMap<(Arc<str>, chrono::NaiveDate), (BTreeSet<u64>, u64)> = BTreeMap::new();
    for r in &rows {
        let e = days.entry((r.s.site.clone(), local_date(r.s.local_start_us()))).or_default();
        e.0.insert(r.s.worker);
        e.1 += 1;
    }
    let coverage = days
        .into_iter()
        .filter(|((site, _), _)| !small_sites.contains(site))
        .map(|((site, date), (workers, shifts))| DayCoverage {
            shifts: (workers.len() >= k && !hidden_days.contains(&(site.clone(), date.to_string())))
                .then_some(shifts),
            site: site.to_string(),
            date,
        })
        .collect();
    // Site weeks withheld under k are counted with the groups hidden.
    Evaluation { findings, suppressed: hidden.len() as u64, suppressed_by_site, aggregates, coverage }
}
