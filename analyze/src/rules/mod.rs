//! The rules, evaluated on shifts per site, group and period, with
//! k-anonymity and complementary suppression applied before anything is
//! published. This module builds the shared context (groups, populations,
//! suppression) and hands it to one module per rule family; every rule's
//! definition, texts and sources live in the rule catalogue
//! (`analyze/catalogue/rules.toml`).

mod cadence;
mod consultation;
pub mod id;
mod pauses;
mod retention;
#[cfg(test)]
pub(crate) mod testkit;
mod voice;
mod worktime;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use chrono::Datelike;

use crate::catalogue::{catalogue, facts};
use crate::employer::Employer;
use crate::findings::{Facts, Finding, Status};
use crate::group::{Group, Period};
use crate::policy::{Policy, Severity};
use crate::privacy;
use crate::shifts::{Shift, GAP_CLASSES, HIST_BOUNDS_S, JUSTIFY_GAP_BUCKETS};
pub use id::RuleId;

pub use worktime::ca_rest_required;

pub(crate) const US_PER_H: f64 = 3.6e9;

/// The ISO week (`2026-W10`) of a local instant.
pub fn iso_week(local_us: i64) -> String {
    week_label(local_date(local_us))
}

/// The ISO week (`2026-W10`) of a date.
pub fn week_label(d: chrono::NaiveDate) -> String {
    let w = d.iso_week();
    Period::week(w.year(), w.week()).into()
}

pub use vigie_ingest::event::local_date;

/// Everything the analysis publishes.
#[derive(Debug, Clone, Default)]
pub struct Evaluation {
    /// Every finding, `ok` ones included, sorted by site, rule (catalogue
    /// order), group and period.
    pub findings: Vec<Finding>,
    /// Hidden (site, group, period) triples.
    pub suppressed: u64,
    /// Hidden (site, group, period) triples per site (withheld days not
    /// counted); sites with none are absent.
    pub suppressed_by_site: BTreeMap<String, u64>,
    /// The open data: one row per published group and ISO week.
    pub aggregates: Vec<AggregateRow>,
    /// Data coverage per site and local day (site level only).
    pub coverage: Vec<DayCoverage>,
    /// Pairs of shifts of one worker that overlap in time (at two sites,
    /// or by clock): an input problem, reported as such.
    pub overlapping_shifts: u64,
    /// The target in force per published group and process, as steps.
    pub target_steps: Vec<crate::dated::TargetStep>,
    /// The pace before and after each dated change (declared or target).
    pub comparisons: Vec<crate::dated::Comparison>,
}

/// How much data a site has on one local day. Days with fewer than k
/// distinct workers are withheld: `shifts` is then `None`.
#[derive(Debug, Clone, PartialEq)]
pub struct DayCoverage {
    /// The site.
    pub site: String,
    /// The local date the shifts started on.
    pub date: chrono::NaiveDate,
    /// Shifts that started that day; `None` when the day is withheld.
    pub shifts: Option<u64>,
}

/// One row of the open data: a published group in one ISO week.
#[derive(Debug, Clone, PartialEq)]
pub struct AggregateRow {
    /// The site.
    pub site: String,
    /// The published group: `site`, `team:NAME` or `zone:NAME`.
    pub group: Group,
    /// ISO week of the shifts' start, in their own offset (`2026-W10`).
    pub week: String,
    /// Distinct workers with a shift in the group that week.
    pub workers: u64,
    /// Shifts of the group that week.
    pub shifts: u64,
    /// Effective time (span minus declared breaks) summed, hours.
    pub effective_hours: f64,
    /// Units scanned (sum of `quantity`).
    pub units: u64,
    /// 10th percentile of units per effective hour across the shifts with
    /// scans; `None` without any.
    pub uph_p10: Option<f64>,
    /// Median of units per effective hour across the shifts with scans;
    /// `None` without any.
    pub uph_p50: Option<f64>,
    /// 90th percentile of units per effective hour across the shifts with
    /// scans; `None` without any.
    pub uph_p90: Option<f64>,
    /// Intervals between consecutive scans by bucket of [`HIST_BOUNDS_S`]
    /// (columns `iv_le_0_5s` ... `iv_gt_1800s`).
    pub hist: [u64; HIST_BOUNDS_S.len() + 1],
    /// Gaps between consecutive activity events by class of [`GAP_CLASSES`]
    /// (columns `gaps_micro` ... `gaps_break`).
    pub gaps: [u64; GAP_CLASSES.len()],
    /// The employer's `idle_flag` events.
    pub idle_flags: u64,
    /// The employer's `speed_flag` events.
    pub speed_flags: u64,
    /// `justification_request` events.
    pub justification_requests: u64,
    /// Justification requests by the gap they are about
    /// (`JUSTIFY_GAP_BUCKETS`).
    pub justify_gaps: [u64; JUSTIFY_GAP_BUCKETS.len()],
    /// Idle flags at a threshold of 1 to 10 minutes.
    pub latency_idle_flags: u64,
    /// Shifts with a target in force (`rate_target`), the median target,
    /// the median of units per hour over the target, and the shifts under
    /// their target.
    pub shifts_with_target: u64,
    /// Median target of the shifts with one, units per hour; `None` without
    /// any.
    pub target_p50: Option<f64>,
    /// Median over those shifts of units per hour divided by the target;
    /// `None` without any.
    pub achieved_over_target_p50: Option<f64>,
    /// Shifts whose units per hour were under their target.
    pub shifts_under_target: u64,
    /// Voice prompts, per hour of effective time of the shifts that had
    /// any; the time from a prompt to its confirming scan (10th, 50th,
    /// 90th percentiles, seconds); the share of those shifts' effective
    /// time spent on tasks dictated at once; the median drift within a
    /// shift (last hour over first, minus 1).
    pub prompts: u64,
    /// Prompts per effective hour of the shifts with prompts; `None`
    /// without any.
    pub prompts_per_hour: Option<f64>,
    /// 10th percentile of the seconds from a prompt to its confirming scan,
    /// interpolated inside its bucket; `None` without confirmed prompts.
    pub prompt_wait_p10: Option<f64>,
    /// Median of the seconds from a prompt to its confirming scan,
    /// interpolated inside its bucket; `None` without confirmed prompts.
    pub prompt_wait_p50: Option<f64>,
    /// 90th percentile of the seconds from a prompt to its confirming scan,
    /// interpolated inside its bucket; `None` without confirmed prompts.
    pub prompt_wait_p90: Option<f64>,
    /// Share (0 to 1) of the effective time of shifts with prompts spent
    /// on tasks dictated at once; `None` without any.
    pub dictated_share: Option<f64>,
    /// Median over shifts of 2 h or more (with units in their first hour) of
    /// units in the last hour over units in the first, minus 1; `None`
    /// without any.
    pub drift_p50: Option<f64>,
}

/// Of the shifts with voice prompts: hours dictated at once, effective
/// hours, prompts (None without any).
fn voice_hours(members: &[&Row<'_>]) -> Option<(f64, f64, u64)> {
    let voiced: Vec<&Shift> = members.iter().map(|r| r.s).filter(|s| s.prompts > 0).collect();
    let h = voiced.iter().map(|s| s.effective_us() as f64).sum::<f64>() / 3.6e9;
    (h > 0.0).then(|| {
        let d = voiced.iter().map(|s| s.dictated_us as f64).sum::<f64>() / 3.6e9;
        (d, h, voiced.iter().map(|s| s.prompts).sum())
    })
}

/// The prompt-to-confirmation buckets of a set of shifts, summed.
fn prompt_conf(members: &[&Row<'_>]) -> Vec<u64> {
    let mut c = vec![0u64; crate::shifts::PROMPT_BOUNDS_S.len() + 1];
    for r in members {
        for (a, b) in c.iter_mut().zip(r.s.prompt_conf) {
            *a += b;
        }
    }
    c
}

/// A shift's units per hour over the target in force, when it has both
/// (a target of 0 says nothing).
pub(crate) fn achieved_over_target(s: &Shift) -> Option<f64> {
    let t = s.target_uph.filter(|t| *t > 0.0)?;
    s.units_per_hour().map(|u| u / t)
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

/// One shift with where it belongs.
pub(crate) struct Row<'a> {
    pub s: &'a Shift,
    pub week: String,
    /// Local date of the shift start.
    pub date: chrono::NaiveDate,
    /// The same, `2026-03-02`.
    pub day: String,
    /// `site`, then `team:NAME` and `zone:NAME` when the shift has them.
    pub groups: Vec<String>,
    pub team: Option<String>,
    pub zone: Option<String>,
}

/// (site, group, period).
pub(crate) type Key = (Arc<str>, String, String);

fn groups_of(s: &Shift) -> Vec<String> {
    let mut g = vec![Group::site()];
    if let Some(t) = &s.team {
        g.push(Group::team(t));
    }
    if let Some(z) = &s.zone {
        g.push(Group::zone(z));
    }
    g.into_iter().map(String::from).collect()
}

/// FNV-1a: a seed from a text, the same on every machine.
pub(crate) fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// A shift's process by name; `(none)` for shifts without one.
pub(crate) fn process_name(code: Option<u8>) -> String {
    code.and_then(vigie_ingest::event::Process::from_code)
        .map_or("(none)".to_string(), |p| p.as_str().to_string())
}

pub(crate) fn round(x: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits);
    (x * p).round() / p
}

/// Hours from microseconds.
pub(crate) fn hours(us: f64) -> f64 {
    us / US_PER_H
}

/// Where a finding applies.
pub(crate) struct At<'a> {
    pub site: &'a str,
    pub group: &'a str,
    pub period: &'a str,
    pub population: u64,
}

/// What a rule found for one group and period.
pub(crate) enum Outcome {
    /// An observed value (none: insufficient data), held against the
    /// threshold.
    Value(Option<f64>, Facts),
    /// A maximum held against the two bounds of effective time: items over
    /// the limit by the lower bound (`certain`) and by the upper bound only
    /// (`possible`). Crossed by `certain`: the rule's status; by
    /// `certain + possible` only: attention. `observed` is `certain`.
    /// `severity` replaces the policy's when the rule's own logic sets it.
    Bounded { certain: u64, possible: u64, facts: Facts, severity: Option<Severity> },
    /// Nothing to judge, but not a lack of data: ok, no observed value.
    Nothing(Facts),
}

pub(crate) struct Emit<'a> {
    policy: &'a Policy,
    out: Vec<Finding>,
}

impl Emit<'_> {
    pub fn push(&mut self, id: RuleId, at: &At, outcome: Outcome) {
        let Some(r) = self.policy.rule(id) else { return };
        let crossed = |o: f64| r.compare.crossed(o, r.threshold);
        let severity = match &outcome {
            Outcome::Bounded { severity: Some(s), .. } => *s,
            _ => r.severity,
        };
        let severe = match severity {
            Severity::Attention => Status::Attention,
            Severity::Breach => Status::Breach,
        };
        let (status, observed, facts) = match outcome {
            Outcome::Value(None, f) => (Status::InsufficientData, None, f),
            Outcome::Value(Some(o), f) => (if crossed(o) { severe } else { Status::Ok }, Some(o), f),
            Outcome::Bounded { certain, possible, facts, .. } => {
                let status = if crossed(certain as f64) {
                    severe
                } else if crossed((certain + possible) as f64) {
                    Status::Attention
                } else {
                    Status::Ok
                };
                (
                    status,
                    Some(certain as f64),
                    facts.n("certain", certain as f64).n("possible", possible as f64),
                )
            }
            Outcome::Nothing(f) => (Status::Ok, None, f),
        };
        let explanation = catalogue().render(id.as_str(), &facts, "en");
        self.out.push(Finding {
            rule: id.as_str().to_string(),
            status,
            site: at.site.to_string(),
            // Groups and periods are built as such (`groups_of`,
            // `week_label`): each parses.
            group: Group::parse(at.group).expect("a group built by groups_of"),
            period: Period::parse(at.period).expect("a week built by week_label, or all"),
            observed,
            threshold: r.threshold,
            unit: r.unit.clone(),
            population: at.population,
            sources: r.sources.clone(),
            explanation,
            facts,
        });
    }
}

/// Distinct workers by (site, group, period).
type Populations = BTreeMap<Key, BTreeSet<u64>>;

/// What every rule family reads.
pub(crate) struct Ctx<'a> {
    pub policy: &'a Policy,
    pub employer: Option<&'a Employer>,
    pub evidence: &'a Evidence,
    pub k: usize,
    /// Shifts sorted by site, worker and start.
    pub rows: Vec<Row<'a>>,
    pub pop: Populations,
    pub members_of: HashMap<Key, Vec<usize>>,
    pub hidden: BTreeSet<Key>,
    pub small_sites: BTreeSet<Arc<str>>,
}

impl<'a> Ctx<'a> {
    /// Whether a (site, group, period) is published.
    pub fn visible(&self, key: &Key) -> bool {
        !self.hidden.contains(key) && self.pop.get(key).is_some_and(|w| w.len() >= self.k)
    }

    /// The published (site, group, ISO week) cells and their populations.
    pub fn published_weeks(&self) -> Vec<(&Key, u64)> {
        self.pop
            .iter()
            .filter(|(key, _)| key.2 != "all" && !self.small_sites.contains(&key.0) && self.visible(key))
            .map(|(key, w)| (key, w.len() as u64))
            .collect()
    }

    /// The published (site, group, `all`) cells and their populations.
    pub fn published_all(&self) -> Vec<(&Key, u64)> {
        self.pop
            .iter()
            .filter(|(key, _)| key.2 == "all" && !self.small_sites.contains(&key.0) && self.visible(key))
            .map(|(key, w)| (key, w.len() as u64))
            .collect()
    }

    pub fn members(&self, key: &Key) -> Vec<&Row<'a>> {
        self.members_of.get(key).map(|m| m.iter().map(|i| &self.rows[*i]).collect()).unwrap_or_default()
    }

    pub fn enabled(&self, id: RuleId) -> bool {
        self.policy.rule(id).is_some()
    }

    /// Runs a weekly rule over every published group-week.
    pub fn weekly(&self, emit: &mut Emit, id: RuleId, mut f: impl FnMut(&Key) -> Outcome) {
        if !self.enabled(id) {
            return;
        }
        for (key, n) in self.published_weeks() {
            let at = At { site: &key.0, group: &key.1, period: &key.2, population: n };
            emit.push(id, &at, f(key));
        }
    }

    /// Runs a whole-input rule over every published group.
    pub fn whole(
        &self,
        emit: &mut Emit,
        id: RuleId,
        mut f: impl FnMut(&Key, &[&Row<'a>]) -> Option<Outcome>,
    ) {
        if !self.enabled(id) {
            return;
        }
        for (key, n) in self.published_all() {
            let at = At { site: &key.0, group: &key.1, period: "all", population: n };
            let members = self.members(key);
            if let Some(o) = f(key, &members) {
                emit.push(id, &at, o);
            }
        }
    }
}

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

/// [`evaluate`] with evidence about the source: builds the context, then
/// runs each rule family.
pub fn evaluate_with(
    shifts: &[Shift],
    policy: &Policy,
    employer: Option<&Employer>,
    evidence: &Evidence,
) -> Evaluation {
    let ctx = context(shifts, policy, employer, evidence);
    let mut emit = Emit { policy, out: Vec::new() };
    withheld(&ctx, &mut emit);
    worktime::evaluate(&ctx, &mut emit);
    pauses::evaluate(&ctx, &mut emit);
    cadence::evaluate(&ctx, &mut emit);
    voice::evaluate(&ctx, &mut emit);
    retention::evaluate(&ctx, &mut emit);
    consultation::evaluate(&ctx, &mut emit);

    let mut findings = emit.out;
    let cat = catalogue();
    findings.sort_by(|a, b| {
        (&a.site, cat.order(&a.rule), &a.group, &a.period).cmp(&(
            &b.site,
            cat.order(&b.rule),
            &b.group,
            &b.period,
        ))
    });
    // Hidden days are counted apart (coverage shows them withheld).
    let mut suppressed_by_site: BTreeMap<String, u64> = BTreeMap::new();
    let mut suppressed = 0;
    for (site, group, _) in &ctx.hidden {
        if group != "day" {
            *suppressed_by_site.entry(site.to_string()).or_default() += 1;
            suppressed += 1;
        }
    }
    let (target_steps, comparisons) = crate::dated::dated(&ctx);
    Evaluation {
        findings,
        suppressed,
        suppressed_by_site,
        aggregates: aggregates(&ctx),
        coverage: coverage(&ctx),
        overlapping_shifts: overlaps(shifts),
        target_steps,
        comparisons,
    }
}

fn context<'a>(
    shifts: &'a [Shift],
    policy: &'a Policy,
    employer: Option<&'a Employer>,
    evidence: &'a Evidence,
) -> Ctx<'a> {
    let k = policy.k as usize;
    let rows: Vec<Row> = shifts
        .iter()
        .map(|s| {
            let date = local_date(s.local_start_us());
            Row {
                s,
                week: week_label(date),
                date,
                day: date.to_string(),
                groups: groups_of(s),
                team: s.team.as_deref().map(|t| Group::team(t).into()),
                zone: s.zone.as_deref().map(|z| Group::zone(z).into()),
            }
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
    let site_key = |site: &Arc<str>| (site.clone(), "site".to_string(), "all".to_string());
    let small_sites: BTreeSet<Arc<str>> = sites
        .iter()
        .filter(|s| pop.get(&site_key(s)).map_or(0, std::collections::BTreeSet::len) < k)
        .cloned()
        .collect();

    // Suppression, per site, over every cell published about it: groups of
    // every kind, weeks, the whole input and days (docs/privacy.md).
    let mut hidden: BTreeSet<Key> = BTreeSet::new();
    for site in &sites {
        if small_sites.contains(site) {
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
        let slots: Vec<privacy::Slot> = members_of[&site_key(site)]
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
            // Hidden days are `("day", date)`: coverage reads them there.
            hidden.insert((site.clone(), group, period));
        }
    }
    Ctx { policy, employer, evidence, k, rows, pop, members_of, hidden, small_sites }
}

/// Sites under k, and site weeks withheld: insufficient data for every
/// enabled rule (of the whole input, or weekly).
fn withheld(ctx: &Ctx, emit: &mut Emit) {
    let cat = catalogue();
    let k = ctx.k as f64;
    let enabled: Vec<RuleId> = RuleId::ALL.iter().copied().filter(|id| ctx.enabled(*id)).collect();
    for site in &ctx.small_sites {
        let n = ctx
            .pop
            .get(&(site.clone(), "site".into(), "all".into()))
            .map_or(0, std::collections::BTreeSet::len) as u64;
        let at = At { site, group: "site", period: "all", population: n };
        for id in enabled.iter().copied() {
            emit.push(id, &at, Outcome::Value(None, facts("site_small").n("workers", n as f64).n("k", k)));
        }
    }
    let weekly: Vec<RuleId> = enabled
        .iter()
        .copied()
        .filter(|id| cat.rule(id.as_str()).is_some_and(|r| r.counted.weekly()))
        .collect();
    for (key, workers) in &ctx.pop {
        let (site, group, period) = key;
        if period == "all" || group != "site" || ctx.small_sites.contains(site) {
            continue;
        }
        let n = workers.len() as u64;
        let case = if (n as usize) < ctx.k {
            "week_small"
        } else if ctx.hidden.contains(key) {
            "week_subtraction"
        } else {
            continue;
        };
        let at = At { site, group, period, population: n };
        for id in weekly.iter().copied() {
            emit.push(id, &at, Outcome::Value(None, facts(case).n("workers", n as f64).n("k", k)));
        }
    }
}

/// Open data, per visible group and week.
fn aggregates(ctx: &Ctx) -> Vec<AggregateRow> {
    let mut out = Vec::new();
    for (key, workers) in ctx.published_weeks() {
        let (site, group, period) = key;
        let members = ctx.members(key);
        let mut uph: Vec<f64> = members.iter().filter_map(|r| r.s.units_per_hour()).collect();
        uph.sort_by(f64::total_cmp);
        let mut hist = [0u64; HIST_BOUNDS_S.len() + 1];
        let mut gaps = [0u64; GAP_CLASSES.len()];
        let mut justify_gaps = [0u64; JUSTIFY_GAP_BUCKETS.len()];
        for r in &members {
            for (a, b) in hist.iter_mut().zip(r.s.hist) {
                *a += b;
            }
            for (a, b) in gaps.iter_mut().zip(r.s.gaps) {
                *a += b;
            }
            for (a, b) in justify_gaps.iter_mut().zip(r.s.justify_gaps) {
                *a += b;
            }
        }
        out.push(AggregateRow {
            site: site.to_string(),
            group: Group::parse(group).expect("a group built by groups_of"),
            week: period.clone(),
            workers,
            shifts: members.len() as u64,
            effective_hours: round(hours(members.iter().map(|r| r.s.effective_us() as f64).sum::<f64>()), 3),
            units: members.iter().map(|r| r.s.units).sum(),
            uph_p10: quantile(&uph, 0.1).map(|x| round(x, 2)),
            uph_p50: quantile(&uph, 0.5).map(|x| round(x, 2)),
            uph_p90: quantile(&uph, 0.9).map(|x| round(x, 2)),
            hist,
            gaps,
            idle_flags: members.iter().map(|r| r.s.idle_flags).sum(),
            speed_flags: members.iter().map(|r| r.s.speed_flags).sum(),
            justification_requests: members.iter().map(|r| r.s.justifications).sum(),
            justify_gaps,
            latency_idle_flags: members.iter().map(|r| r.s.latency_idle_flags).sum(),
            shifts_with_target: members.iter().filter(|r| r.s.target_uph.is_some()).count() as u64,
            target_p50: {
                let mut t: Vec<f64> = members.iter().filter_map(|r| r.s.target_uph).collect();
                t.sort_by(f64::total_cmp);
                quantile(&t, 0.5).map(|x| round(x, 2))
            },
            achieved_over_target_p50: {
                let mut a: Vec<f64> = members.iter().filter_map(|r| achieved_over_target(r.s)).collect();
                a.sort_by(f64::total_cmp);
                quantile(&a, 0.5).map(|x| round(x, 4))
            },
            shifts_under_target: members
                .iter()
                .filter(|r| achieved_over_target(r.s).is_some_and(|x| x < 1.0))
                .count() as u64,
            prompts: members.iter().map(|r| r.s.prompts).sum(),
            prompts_per_hour: voice_hours(&members).map(|(_, h, p)| round(p as f64 / h, 2)),
            prompt_wait_p10: voice::bucket_quantile(&prompt_conf(&members), 0.1).map(|x| round(x, 2)),
            prompt_wait_p50: voice::bucket_quantile(&prompt_conf(&members), 0.5).map(|x| round(x, 2)),
            prompt_wait_p90: voice::bucket_quantile(&prompt_conf(&members), 0.9).map(|x| round(x, 2)),
            dictated_share: voice_hours(&members).map(|(d, h, _)| round(d / h, 4)),
            drift_p50: {
                let mut d: Vec<f64> = members.iter().filter_map(|r| voice::drift(r.s)).collect();
                d.sort_by(f64::total_cmp);
                quantile(&d, 0.5).map(|x| round(x, 4))
            },
        });
    }
    out
}

/// Coverage per local day, site level, withheld under k or to protect a
/// cell.
fn coverage(ctx: &Ctx) -> Vec<DayCoverage> {
    let mut days: BTreeMap<(Arc<str>, chrono::NaiveDate), (BTreeSet<u64>, u64)> = BTreeMap::new();
    for r in &ctx.rows {
        let e = days.entry((r.s.site.clone(), r.date)).or_default();
        e.0.insert(r.s.worker);
        e.1 += 1;
    }
    days.into_iter()
        .filter(|((site, _), _)| !ctx.small_sites.contains(site))
        .map(|((site, date), (workers, shifts))| DayCoverage {
            shifts: (workers.len() >= ctx.k
                && !ctx.hidden.contains(&(site.clone(), "day".to_string(), date.to_string())))
            .then_some(shifts),
            site: site.to_string(),
            date,
        })
        .collect()
}

/// Pairs of shifts of one worker that overlap in time, across sites.
fn overlaps(shifts: &[Shift]) -> u64 {
    let mut by_worker: HashMap<u64, Vec<(i64, i64)>> = HashMap::new();
    for s in shifts {
        by_worker.entry(s.worker).or_default().push((s.start_us, s.end_us));
    }
    let mut n = 0;
    for spans in by_worker.values_mut() {
        spans.sort_unstable();
        let mut reach = i64::MIN;
        for (start, end) in spans.iter() {
            if *start < reach {
                n += 1;
            }
            reach = reach.max(*end);
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::testkit::{events, run_lines};

    #[test]
    fn overlapping_shifts_of_one_worker_are_an_input_problem() {
        // The same five workers at a second site from 10:00 to 11:00 while
        // their 08:00-12:00 shift runs at the first: five overlaps.
        let mut lines = events("Mon 08:00-12:00");
        lines.push_str(
            &events("Mon 10:00-11:00")
                .replace("\"s1\"", "\"s2\"")
                .replace("\"event_id\":\"e", "\"event_id\":\"x"),
        );
        assert_eq!(run_lines("fr", &lines, None).overlapping_shifts, 5);
        // One after the other: none.
        let mut lines = events("Mon 08:00-12:00");
        lines.push_str(
            &events("Mon 13:00-14:00")
                .replace("\"s1\"", "\"s2\"")
                .replace("\"event_id\":\"e", "\"event_id\":\"x"),
        );
        assert_eq!(run_lines("fr", &lines, None).overlapping_shifts, 0);
    }
}
