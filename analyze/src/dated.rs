//! Dated changes: the target in force per group and process as a step
//! series, and the pace before and after each dated change, whether the
//! employer declared it (`changes` in the employer declaration) or the
//! targets moved (docs/metrics.md, "Targets and dated changes").
//!
//! Both are published per group of k workers or more, like every figure:
//! a day enters the target series only when at least k distinct workers
//! had a target in force that day in that group and process, and a
//! before/after comparison gives its medians only when each side covers at
//! least k distinct workers and `min_segment_days` days with scans.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::rules::{fnv, process_name, quantile, round, Ctx, Row, RuleId};

/// One level of the target in force, for a group and process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetStep {
    /// The site.
    pub site: String,
    /// The published group: `site`, `team:NAME` or `zone:NAME`.
    pub group: crate::group::Group,
    /// The process of the shifts (`pick`, `stow`, ...; `(none)` when their
    /// scans give none).
    pub process: String,
    /// First and last local day at this level (days with shifts and a
    /// target; days in between without any are not counted).
    pub from: NaiveDate,
    /// Last local day at this level.
    pub to: NaiveDate,
    /// Days at this level.
    pub days: u64,
    /// The group's daily median target (units per hour).
    pub target_uph: f64,
}

/// Where a dated change comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeSource {
    /// The employer's declaration (`changes = [{date, description}]`).
    Declared,
    /// A step of the target series.
    Target,
}

impl ChangeSource {
    /// The written form in the open data: `declared` or `target`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeSource::Declared => "declared",
            ChangeSource::Target => "target",
        }
    }
}

/// The pace of a group in one process before and after a dated change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The site.
    pub site: String,
    /// The published group: `site`, `team:NAME` or `zone:NAME`.
    pub group: crate::group::Group,
    /// The process of the shifts (`pick`, `stow`, ...; `(none)` when their
    /// scans give none).
    pub process: String,
    /// The change's date; the "after" side starts on it.
    pub date: NaiveDate,
    /// Where the change comes from: the employer's declaration or a target
    /// step.
    pub source: ChangeSource,
    /// The employer's words for a declared change; empty for a target.
    pub description: String,
    /// For a target change: the level before and after.
    pub target_from: Option<f64>,
    /// The target level after the change, units per hour; `None` for a
    /// declared change.
    pub target_to: Option<f64>,
    /// Days with scans in the window before (`date - window` to the day
    /// before) and after (`date` to `date + window - 1`).
    pub days_before: u64,
    /// Days with scans in the window from `date` (`window_days`, default 14).
    pub days_after: u64,
    /// Medians of the daily median units per hour on each side, the
    /// relative change and its 95 % bootstrap interval; `None` when a side
    /// has too few days or fewer than k workers.
    pub before_uph: Option<f64>,
    /// Median of the daily median units per hour after the change.
    pub after_uph: Option<f64>,
    /// The relative change, median after over median before minus 1 (0.1 is
    /// +10 %).
    pub relative: Option<f64>,
    /// Lower bound of the 95 % bootstrap interval of `relative`.
    pub low: Option<f64>,
    /// Upper bound of the 95 % bootstrap interval of `relative`.
    pub high: Option<f64>,
}

/// A dated change, before the pace is measured around it.
struct When {
    date: NaiveDate,
    source: ChangeSource,
    description: String,
    /// A target change's levels before and after.
    levels: (Option<f64>, Option<f64>),
}

/// The pace of a group on one day in one process: the median units per
/// hour of its shifts with scans, and the distinct workers of those
/// shifts.
pub(crate) struct DayPace {
    pub uph: f64,
    pub workers: BTreeSet<u64>,
}

/// Days by process code.
pub(crate) type ByProcess<T> = BTreeMap<Option<u8>, BTreeMap<NaiveDate, T>>;

/// The daily pace of a group, by process code (`None`: shifts whose scans
/// give none): the series `cadence.intensification` searches for changes
/// and the before/after comparisons are made on.
pub(crate) fn daily_pace(members: &[&Row]) -> ByProcess<DayPace> {
    let mut by: ByProcess<(Vec<f64>, BTreeSet<u64>)> = BTreeMap::new();
    for r in members {
        if let Some(u) = r.s.units_per_hour() {
            let d = by.entry(r.s.process).or_default().entry(r.date).or_default();
            d.0.push(u);
            d.1.insert(r.s.worker);
        }
    }
    by.into_iter()
        .map(|(process, days)| {
            let days = days
                .into_iter()
                .filter_map(|(date, (uph, workers))| median(uph).map(|uph| (date, DayPace { uph, workers })))
                .collect();
            (process, days)
        })
        .collect()
}

/// One day of a group in one process.
#[derive(Default)]
struct Day {
    pace: Option<DayPace>,
    targets: Vec<f64>,
    target_workers: BTreeSet<u64>,
}

/// Days of a published group, by process name.
fn by_process(members: &[&Row]) -> BTreeMap<String, BTreeMap<NaiveDate, Day>> {
    let mut out: BTreeMap<String, BTreeMap<NaiveDate, Day>> = BTreeMap::new();
    for (process, days) in daily_pace(members) {
        let named = out.entry(process_name(process)).or_default();
        for (date, pace) in days {
            named.entry(date).or_default().pace = Some(pace);
        }
    }
    for r in members {
        if let Some(t) = r.s.target_uph {
            let d = out.entry(process_name(r.s.process)).or_default().entry(r.date).or_default();
            d.targets.push(t);
            d.target_workers.insert(r.s.worker);
        }
    }
    out
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    quantile(&v, 0.5)
}

/// The target steps and the before/after comparisons of every published
/// group (the site and its teams and zones, over the whole input).
pub(crate) fn dated(ctx: &Ctx) -> (Vec<TargetStep>, Vec<Comparison>) {
    let k = ctx.k;
    let id = RuleId::Intensification;
    let min_days = ctx.policy.param(id, "min_segment_days", 3.0).max(1.0) as usize;
    let window = ctx.policy.param(id, "window_days", 14.0).max(1.0) as i64;
    let declared = ctx.employer.map(|e| e.changes.as_slice()).unwrap_or_default();
    let mut steps = Vec::new();
    let mut comparisons = Vec::new();
    for (key, _) in ctx.published_all() {
        let (site, group) =
            (key.0.to_string(), crate::group::Group::parse(&key.1).expect("a published group"));
        let members = ctx.members(key);
        for (process, days) in by_process(&members) {
            // The step series: days with k workers or more under a target.
            let mut own: Vec<TargetStep> = Vec::new();
            for (date, d) in &days {
                if d.target_workers.len() < k {
                    continue;
                }
                let Some(t) = median(d.targets.clone()).map(|t| round(t, 2)) else { continue };
                match own.last_mut() {
                    Some(s) if s.target_uph == t => {
                        s.to = *date;
                        s.days += 1;
                    }
                    _ => own.push(TargetStep {
                        site: site.clone(),
                        group: group.clone(),
                        process: process.clone(),
                        from: *date,
                        to: *date,
                        days: 1,
                        target_uph: t,
                    }),
                }
            }
            // The dated changes this series is compared around.
            let mut dates: Vec<When> = declared
                .iter()
                .map(|c| When {
                    date: c.date,
                    source: ChangeSource::Declared,
                    description: c.description.clone(),
                    levels: (None, None),
                })
                .collect();
            dates.extend(own.windows(2).map(|w| When {
                date: w[1].from,
                source: ChangeSource::Target,
                description: String::new(),
                levels: (Some(w[0].target_uph), Some(w[1].target_uph)),
            }));
            dates.sort_by_key(|w| (w.date, w.source));
            for When { date, source, description, levels: (target_from, target_to) } in dates {
                let side = |lo: NaiveDate, hi: NaiveDate| {
                    let mut series = Vec::new();
                    let mut workers = BTreeSet::<u64>::new();
                    for p in days.range(lo..hi).filter_map(|(_, d)| d.pace.as_ref()) {
                        series.push(p.uph);
                        workers.extend(&p.workers);
                    }
                    (series, workers.len())
                };
                let (before, wb) = side(date - chrono::Duration::days(window), date);
                let (after, wa) = side(date, date + chrono::Duration::days(window));
                if before.is_empty() && after.is_empty() {
                    continue;
                }
                let enough = before.len() >= min_days && after.len() >= min_days && wb >= k && wa >= k;
                let seed = fnv(&format!("{site}|{group}|{process}|{date}|{}", source.as_str()));
                let c = enough.then(|| crate::changepoint::before_after(&before, &after, seed)).flatten();
                comparisons.push(Comparison {
                    site: site.clone(),
                    group: group.clone(),
                    process: process.clone(),
                    date,
                    source,
                    description,
                    target_from,
                    target_to,
                    days_before: before.len() as u64,
                    days_after: after.len() as u64,
                    before_uph: c.as_ref().map(|c| round(c.before, 2)),
                    after_uph: c.as_ref().map(|c| round(c.after, 2)),
                    relative: c.as_ref().map(|c| round(c.relative, 4)),
                    low: c.as_ref().map(|c| round(c.low, 4)),
                    high: c.as_ref().map(|c| round(c.high, 4)),
                });
            }
            steps.extend(own);
        }
    }
    (steps, comparisons)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::findings::Status::Attention;
    use crate::rules::testkit::{check_with, run, Want};

    /// Week 10 (2–6 March): a stop from 08:00 to 09:00 takes 11 of the 47
    /// scans away, 36 units in 4 h, 9 an hour. Week 11 (9–13 March): 47
    /// units, 11.75 an hour.
    const SLOW_THEN_FAST: &str = "Mon..Fri 08:00-12:00 gap 08:00-09:00 | week+1 Mon..Fri 08:00-12:00";

    #[test]
    fn the_pace_before_and_after_a_change_the_employer_declared() {
        let employer = r#"changes = [
            { date = 2026-03-09, description = "Nouvelle version du logiciel" },
            { date = 2026-03-02, description = "Début de l'export" },
            { date = 2025-01-01, description = "Bien avant" },
        ]"#;
        let e = run("fr", SLOW_THEN_FAST, Some(employer));
        let c: Vec<&Comparison> = e.comparisons.iter().filter(|c| c.group == "site").collect();
        // 2025-01-01: no day within 14 days either side, no row.
        assert_eq!(c.len(), 2, "{c:#?}");
        // 2 March: nothing before it; 10 days after (the window is 14
        // calendar days). No figure.
        assert_eq!((c[0].date.to_string(), c[0].days_before, c[0].days_after), ("2026-03-02".into(), 0, 10));
        assert_eq!((c[0].before_uph, c[0].relative), (None, None));
        // 9 March: five days at 9 before, five at 11.75 after: +30.56 %;
        // every day alike, so every resample too: the interval is the point.
        let d = c[1];
        assert_eq!(
            (d.source, d.description.as_str(), d.process.as_str()),
            (ChangeSource::Declared, "Nouvelle version du logiciel", "(none)")
        );
        assert_eq!((d.days_before, d.days_after, d.before_uph, d.after_uph), (5, 5, Some(9.0), Some(11.75)));
        assert_eq!((d.relative, d.low, d.high), (Some(0.3056), Some(0.3056), Some(0.3056)));
        // The change found in the data is on the declared date, and the
        // finding says so.
        check_with(
            "fr",
            SLOW_THEN_FAST,
            Some(employer),
            &[Want::site("cadence.intensification", "all", Attention, 0.3056)],
        );
        let f = e.findings.iter().find(|f| f.rule == "cadence.intensification" && f.group == "site").unwrap();
        assert_eq!(f.facts.case, "change_declared");
        assert!(
            f.explanation.contains("2026-03-09") && f.explanation.contains("Nouvelle version du logiciel"),
            "{}",
            f.explanation
        );
        // Without the declaration: the plain case, and no comparison.
        let e = run("fr", SLOW_THEN_FAST, None);
        let f = e.findings.iter().find(|f| f.rule == "cadence.intensification" && f.group == "site").unwrap();
        assert_eq!(f.facts.case, "change");
        assert!(e.comparisons.is_empty());
    }

    #[test]
    fn the_target_in_force_as_steps_and_the_pace_around_each_step() {
        // Targets of 100 in week 10, 115 in week 11, 115 again on Monday
        // of week 12: two steps, the second over six days; one dated
        // change, on 9 March.
        let e = run(
            "fr",
            "Mon..Fri 08:00-12:00 gap 08:00-09:00 target@08:01/100 | week+1 Mon..Fri 08:00-12:00 target@08:01/115 | week+2 Mon 08:00-12:00",
            None,
        );
        let s: Vec<(String, String, String, u64, f64)> = e
            .target_steps
            .iter()
            .map(|s| (s.group.to_string(), s.from.to_string(), s.to.to_string(), s.days, s.target_uph))
            .collect();
        assert_eq!(
            s,
            [
                ("site".into(), "2026-03-02".into(), "2026-03-06".into(), 5, 100.0),
                // Monday 16 March has no rate_target of its own: the
                // workers' last one, 115, is still in force.
                ("site".into(), "2026-03-09".into(), "2026-03-16".into(), 6, 115.0),
            ]
        );
        assert_eq!(e.comparisons.len(), 1);
        let c = &e.comparisons[0];
        assert_eq!((c.source, c.target_from, c.target_to), (ChangeSource::Target, Some(100.0), Some(115.0)));
        // After: 9–13 and 16 March (within 14 days), six days at 11.75.
        assert_eq!((c.days_before, c.days_after, c.relative), (5, 6, Some(0.3056)));
    }

    #[test]
    fn a_day_with_fewer_than_k_workers_under_a_target_is_not_in_the_series() {
        // Only the first 4 of the 5 workers get a target: every day has 4
        // workers under a target, under k = 5, so there is no step at all.
        let lines = crate::rules::testkit::events("Mon..Fri 08:00-12:00 target@08:01/100")
            .lines()
            .filter(|l| !(l.contains("rate_target") && l.contains("\"w4\"")))
            .map(|l| format!("{l}\n"))
            .collect::<String>();
        let e = crate::rules::testkit::run_lines("fr", &lines, None);
        assert!(e.target_steps.is_empty(), "{:?}", e.target_steps);
        assert!(
            e.aggregates.iter().any(|a| a.shifts_with_target == 20),
            "the shifts still have their targets"
        );
    }
}
