//! Working-time rules. The law counts per calendar day, per rest between
//! working days, per calendar week or over rolling weeks, not per shift:
//! shifts are first gathered into working days (the shifts that start on
//! one local date) and working weeks (docs/metrics.md).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{Datelike, Duration, NaiveDate};

use super::{hours, week_label, Ctx, Emit, Key, Outcome, RuleId, US_PER_H};
use crate::catalogue::facts;
use crate::findings::Facts;
use crate::policy::Severity;

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

/// One working day of one worker: the shifts that start on one local date.
pub(crate) struct Day<'a> {
    pub site: &'a Arc<str>,
    pub worker: u64,
    pub date: NaiveDate,
    pub week: &'a str,
    pub groups: BTreeSet<&'a str>,
    /// Effective time, upper and lower bounds.
    pub upper_us: i64,
    pub lower_us: i64,
    /// First start and last end, UTC.
    pub start_us: i64,
    pub end_us: i64,
    pub longest_stretch_us: i64,
    /// Work before the day's first break; stretches in the day (1: no
    /// break at all).
    pub first_stretch_us: i64,
    pub stretches: u64,
    /// Breaks by their upper bound: declared, inferred, and stops of the
    /// break length between the day's shifts.
    pub breaks_us: i64,
    /// Stops of 10 min or more, and of 30 min or more.
    pub rest_breaks: u64,
    pub meal_breaks: u64,
    /// Whether a stop of 30 min or more began within the meal limit of the
    /// day's first start.
    pub meal_in_time: bool,
    /// Time inside the night period, over the shifts' spans.
    pub night_us: i64,
}

/// The working days of every worker, in (site, worker, date) order.
fn days<'a>(ctx: &'a Ctx, break_min_us: i64, meal_h: f64, night: (f64, f64)) -> Vec<Day<'a>> {
    let meal_us = (meal_h * US_PER_H) as i64;
    let mut out: Vec<Day<'a>> = Vec::new();
    for r in &ctx.rows {
        let s = r.s;
        let meal_at = s.meal_after_us.map(|m| s.start_us + m);
        let night_us = night_overlap_us(s.local_start_us(), s.local_start_us() + s.span_us(), night);
        let same = out.last().is_some_and(|d| d.site == &s.site && d.worker == s.worker && d.date == r.date);
        if same {
            let d = out.last_mut().expect("checked");
            let gap = s.start_us - d.end_us;
            let joined = gap < break_min_us;
            if joined {
                // A stop shorter than a break does not end a stretch: when
                // the day so far is one stretch, it runs on into this
                // shift's first. (When it is not, the day's last stretch is
                // not known and the two are kept apart: the break rules can
                // then only miss, never invent, a breach.)
                if d.stretches == 1 {
                    d.first_stretch_us += gap + s.first_stretch_us;
                    d.longest_stretch_us = d.longest_stretch_us.max(d.first_stretch_us);
                }
                d.stretches += s.stretches - 1;
            } else {
                d.breaks_us += gap;
                d.stretches += s.stretches;
            }
            if gap >= 600_000_000 {
                d.rest_breaks += 1;
            }
            if gap >= 1_800_000_000 {
                d.meal_breaks += 1;
                d.meal_in_time |= d.end_us - d.start_us <= meal_us;
            }
            d.upper_us += s.effective_us();
            d.lower_us += s.effective_lower_us();
            d.end_us = d.end_us.max(s.end_us);
            d.longest_stretch_us = d.longest_stretch_us.max(s.longest_stretch_us);
            d.breaks_us += s.break_us + s.inferred_break_us;
            d.rest_breaks += s.rest_breaks;
            d.meal_breaks += s.meal_breaks;
            d.meal_in_time |= meal_at.is_some_and(|m| m - d.start_us <= meal_us);
            d.night_us += night_us;
            d.groups.extend(r.groups.iter().map(String::as_str));
        } else {
            out.push(Day {
                site: &s.site,
                worker: s.worker,
                date: r.date,
                week: &r.week,
                groups: r.groups.iter().map(String::as_str).collect(),
                upper_us: s.effective_us(),
                lower_us: s.effective_lower_us(),
                start_us: s.start_us,
                end_us: s.end_us,
                longest_stretch_us: s.longest_stretch_us,
                first_stretch_us: s.first_stretch_us,
                stretches: s.stretches,
                breaks_us: s.break_us + s.inferred_break_us,
                rest_breaks: s.rest_breaks,
                meal_breaks: s.meal_breaks,
                meal_in_time: meal_at.is_some_and(|m| m - s.start_us <= meal_us),
                night_us,
            });
        }
    }
    out
}

/// Microseconds of `[from, to)` (local) inside the nightly windows that
/// start at `night.0` hours and end at `night.1` hours (the next day when
/// `night.1 <= night.0`).
pub(crate) fn night_overlap_us(from: i64, to: i64, night: (f64, f64)) -> i64 {
    if to <= from {
        return 0;
    }
    let day_us = 86_400_000_000i64;
    let start_off = (night.0 * US_PER_H) as i64;
    let end_off =
        if night.1 > night.0 { (night.1 * US_PER_H) as i64 } else { day_us + (night.1 * US_PER_H) as i64 };
    let mut total = 0;
    let mut d = from.div_euclid(day_us) - 1;
    while d * day_us + start_off < to {
        let (a, b) = (d * day_us + start_off, d * day_us + end_off);
        total += (to.min(b) - from.max(a)).max(0);
        d += 1;
    }
    total
}

/// One working week of one worker.
struct Week<'a> {
    groups: BTreeSet<&'a str>,
    upper_us: i64,
    lower_us: i64,
    dates: BTreeSet<NaiveDate>,
    week: &'a str,
}

fn monday(d: NaiveDate) -> NaiveDate {
    d - Duration::days(i64::from(d.weekday().num_days_from_monday()))
}

/// Counts per (site, group, week).
#[derive(Default, Clone, Copy)]
struct Tally {
    total: u64,
    certain: u64,
    possible: u64,
    extra: u64,
}

type Tallies = HashMap<Key, Tally>;

fn add<'x>(
    t: &mut Tallies,
    site: &Arc<str>,
    groups: impl Iterator<Item = &'x str>,
    week: &str,
    f: impl Fn(&mut Tally),
) {
    for g in groups {
        f(t.entry((site.clone(), g.to_string(), week.to_string())).or_default());
    }
}

fn get(t: &Tallies, key: &Key) -> Tally {
    t.get(key).copied().unwrap_or_default()
}

/// Whether a value over a limit crosses it (`>`), or reaching it does.
fn over(value_us: i64, limit_h: f64, inclusive: bool) -> bool {
    let (v, l) = (value_us as f64, limit_h * US_PER_H);
    if inclusive {
        v >= l
    } else {
        v > l
    }
}

pub(crate) fn evaluate(ctx: &Ctx, emit: &mut Emit) {
    let p = ctx.policy;
    let break_min = p.break_min_minutes;
    let break_min_us = (break_min * 60e6) as i64;
    let meal_h = p.limit(RuleId::CaMealPeriod, 5.0);
    let night = (
        p.param(RuleId::NightDaily8h, "night_from_h", 21.0),
        p.param(RuleId::NightDaily8h, "night_to_h", 6.0),
    );
    let days = days(ctx, break_min_us, meal_h, night);

    // Working weeks, and the first week of each site's input.
    let mut weeks: BTreeMap<(&Arc<str>, u64, NaiveDate), Week> = BTreeMap::new();
    let mut first_monday: HashMap<&Arc<str>, NaiveDate> = HashMap::new();
    for d in &days {
        let m = monday(d.date);
        let w = weeks.entry((d.site, d.worker, m)).or_insert_with(|| Week {
            groups: BTreeSet::new(),
            upper_us: 0,
            lower_us: 0,
            dates: BTreeSet::new(),
            week: d.week,
        });
        w.groups.extend(d.groups.iter().copied());
        w.upper_us += d.upper_us;
        w.lower_us += d.lower_us;
        w.dates.insert(d.date);
        let f = first_monday.entry(d.site).or_insert(m);
        *f = (*f).min(m);
    }

    let night_workers = night_workers(ctx, &days);
    per_day(ctx, emit, &days, break_min);
    rest_between_days(ctx, emit, &days);
    per_week(ctx, emit, &weeks, break_min);
    weekly_average(ctx, emit, RuleId::WeeklyAverage, &weeks, &first_monday, break_min, |_| true);
    weekly_average(ctx, emit, RuleId::NightWeeklyAverage, &weeks, &first_monday, break_min, |k| {
        night_workers.contains(k)
    });
    weekly_rest(ctx, emit, &weeks);
    night_days(ctx, emit, &days, &night_workers, break_min);
    california(ctx, emit, &days, meal_h);
}

/// Rules counted per working day: breaks, the daily maximum.
fn per_day(ctx: &Ctx, emit: &mut Emit, days: &[Day], break_min: f64) {
    let p = ctx.policy;
    let (b_limit, b_incl) = (p.limit(RuleId::BreakAfter6h, 6.0), p.limit_inclusive(RuleId::BreakAfter6h));
    let measure = p
        .rules
        .get(RuleId::BreakAfter6h.as_str())
        .and_then(|r| r.measure.as_deref())
        .unwrap_or("longest_stretch");
    let d_limit = p.limit(RuleId::DailyMax10h, 10.0);
    // Break total (ArbZG s. 4): minutes owed beyond each step of work.
    let first_h = p.limit(RuleId::BreakTotal, 6.0);
    let first_min = p.param(RuleId::BreakTotal, "first_min", 30.0);
    let second_h = p.param(RuleId::BreakTotal, "second_h", 9.0);
    let second_min = p.param(RuleId::BreakTotal, "second_min", 45.0);
    let block_min = p.param(RuleId::BreakTotal, "block_min", 15.0);
    let (mut brk, mut total, mut daily) = (Tallies::new(), Tallies::new(), Tallies::new());
    for d in days {
        let g = || d.groups.iter().copied();
        let crossed = match measure {
            // Work before the day's first break (French law: the break is
            // due once daily work reaches the limit).
            "first_stretch" => over(d.first_stretch_us, b_limit, b_incl),
            // A day with no break at all (the Directive: a working day
            // longer than the limit gives a right to a break).
            "unbroken_day" => d.stretches == 1 && over(d.longest_stretch_us, b_limit, b_incl),
            // Any stretch (German law: never more than the limit in a row).
            _ => over(d.longest_stretch_us, b_limit, b_incl),
        };
        add(&mut brk, d.site, g(), d.week, |t| {
            t.total += 1;
            t.certain += u64::from(crossed);
        });
        let work_h = hours(d.lower_us as f64);
        let owed = if work_h > second_h {
            second_min
        } else if work_h > first_h {
            first_min
        } else {
            0.0
        };
        let short = d.breaks_us as f64 / 60e6 < owed;
        add(&mut total, d.site, g(), d.week, |t| {
            t.total += 1;
            t.certain += u64::from(short);
        });
        let certain = over(d.lower_us, d_limit, false);
        let possible = !certain && over(d.upper_us, d_limit, false);
        add(&mut daily, d.site, g(), d.week, |t| {
            t.total += 1;
            t.certain += u64::from(certain);
            t.possible += u64::from(possible);
        });
    }
    let case = match (measure, b_incl) {
        ("first_stretch", _) => "first",
        ("unbroken_day", _) => "unbroken",
        (_, true) => "count_inclusive",
        (_, false) => "count",
    };
    ctx.weekly(emit, RuleId::BreakAfter6h, |key| {
        let t = get(&brk, key);
        Outcome::Value(
            Some(t.certain as f64),
            facts(case)
                .n("count", t.certain as f64)
                .n("days", t.total as f64)
                .n("limit", b_limit)
                .n("break_min", break_min),
        )
    });
    ctx.weekly(emit, RuleId::BreakTotal, |key| {
        let t = get(&total, key);
        Outcome::Value(
            Some(t.certain as f64),
            facts("count")
                .n("count", t.certain as f64)
                .n("days", t.total as f64)
                .n("first_h", first_h)
                .n("first_min", first_min)
                .n("second_h", second_h)
                .n("second_min", second_min)
                .n("block_min", block_min),
        )
    });
    ctx.weekly(emit, RuleId::DailyMax10h, |key| {
        let t = get(&daily, key);
        bounded(t, facts("bounded").n("days", t.total as f64).n("limit", d_limit).n("break_min", break_min))
    });
}

fn bounded(t: Tally, facts: Facts) -> Outcome {
    Outcome::Bounded { certain: t.certain, possible: t.possible, facts, severity: None }
}

/// Daily rest: between the end of one working day and the start of the
/// next working day of the same worker; counted in the later day's week.
fn rest_between_days(ctx: &Ctx, emit: &mut Emit, days: &[Day]) {
    let limit = ctx.policy.limit(RuleId::DailyRest11h, 11.0);
    let mut t = Tallies::new();
    for pair in days.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if a.site != b.site || a.worker != b.worker {
            continue;
        }
        let short = ((b.start_us - a.end_us) as f64) < limit * US_PER_H;
        add(&mut t, b.site, b.groups.iter().copied(), b.week, |x| {
            x.total += 1;
            x.certain += u64::from(short);
        });
    }
    ctx.weekly(emit, RuleId::DailyRest11h, |key| {
        let x = get(&t, key);
        Outcome::Value(
            Some(x.certain as f64),
            facts("count").n("count", x.certain as f64).n("pairs", x.total as f64).n("limit", limit),
        )
    });
}

/// A rest, local microseconds; `i64::MIN` or `i64::MAX` when it runs
/// past the worker's data.
type Span = (i64, i64);

type Weeks<'a> = BTreeMap<(&'a Arc<str>, u64, NaiveDate), Week<'a>>;

/// Rules counted per calendar week: the single-week maximum, six days.
fn per_week(ctx: &Ctx, emit: &mut Emit, weeks: &Weeks, break_min: f64) {
    let p = ctx.policy;
    let w_limit = p.limit(RuleId::WeeklyMax48h, 48.0);
    let d_limit = p.limit(RuleId::Max6Days, 6.0);
    let (mut max, mut six) = (Tallies::new(), Tallies::new());
    for ((site, _, _), w) in weeks {
        let certain = over(w.lower_us, w_limit, false);
        let possible = !certain && over(w.upper_us, w_limit, false);
        add(&mut max, site, w.groups.iter().copied(), w.week, |t| {
            t.total += 1;
            t.certain += u64::from(certain);
            t.possible += u64::from(possible);
        });
        let seven = w.dates.len() as f64 > d_limit;
        add(&mut six, site, w.groups.iter().copied(), w.week, |t| {
            t.total += 1;
            t.certain += u64::from(seven);
        });
    }
    ctx.weekly(emit, RuleId::WeeklyMax48h, |key| {
        let t = get(&max, key);
        bounded(t, facts("bounded").n("weeks", t.total as f64).n("limit", w_limit).n("break_min", break_min))
    });
    ctx.weekly(emit, RuleId::Max6Days, |key| {
        let t = get(&six, key);
        Outcome::Value(
            Some(t.certain as f64),
            facts("count").n("count", t.certain as f64).n("weeks", t.total as f64).n("limit", d_limit),
        )
    });
}

/// The average week over a rolling window ending with each week a worker
/// worked; weeks without work in the window count as 0 h. Only workers
/// `who` selects are counted.
fn weekly_average(
    ctx: &Ctx,
    emit: &mut Emit,
    id: RuleId,
    weeks: &Weeks,
    first_monday: &HashMap<&Arc<str>, NaiveDate>,
    break_min: f64,
    who: impl Fn(&(&Arc<str>, u64)) -> bool,
) {
    if !ctx.enabled(id) {
        return;
    }
    let p = ctx.policy;
    let limit = p.limit(id, 48.0);
    let n = p.param(id, "window_weeks", 17.0).max(1.0) as i64;
    let night = id == RuleId::NightWeeklyAverage;
    let mut t = Tallies::new();
    // (site, week) -> the window's first Monday.
    let mut window_of: HashMap<(Arc<str>, String), NaiveDate> = HashMap::new();
    for ((site, worker, m), w) in weeks {
        let start = *m - Duration::weeks(n - 1);
        window_of.insert(((*site).clone(), w.week.to_string()), start);
        if first_monday.get(site).is_some_and(|f| start < *f) || !who(&(*site, *worker)) {
            continue;
        }
        let (mut lower, mut upper) = (0i64, 0i64);
        for (_, x) in weeks.range((*site, *worker, start)..=(*site, *worker, *m)) {
            lower += x.lower_us;
            upper += x.upper_us;
        }
        let certain = over(lower / n, limit, false);
        let possible = !certain && over(upper / n, limit, false);
        add(&mut t, site, w.groups.iter().copied(), w.week, |x| {
            x.total += 1;
            x.certain += u64::from(certain);
            x.possible += u64::from(possible);
        });
    }
    ctx.weekly(emit, id, |key| {
        let start = window_of.get(&(key.0.clone(), key.2.clone())).copied();
        let first = first_monday.get(&key.0).copied();
        match (start, first) {
            (Some(s), Some(f)) if s < f => Outcome::Value(
                None,
                facts("window_short")
                    .n("window", n as f64)
                    .t("week", key.2.clone())
                    .t("first_week", week_label(f)),
            ),
            (_, _) if night && get(&t, key).total == 0 => {
                Outcome::Value(Some(0.0), facts("no_night_workers"))
            }
            (s, _) => {
                let x = get(&t, key);
                bounded(
                    x,
                    facts("bounded")
                        .n("workers", x.total as f64)
                        .n("limit", limit)
                        .n("window", n as f64)
                        .t("first_week", s.map(week_label).unwrap_or_default())
                        .t("week", key.2.clone())
                        .n("break_min", break_min),
                )
            }
        }
    });
}

/// Weekly rest: in each calendar week a worker worked, a rest of at least
/// the limit (35 h) of which 24 h fall inside the week. Rests that run
/// past the start or end of the worker's data count as long enough.
fn weekly_rest(ctx: &Ctx, emit: &mut Emit, weeks: &Weeks) {
    if !ctx.enabled(RuleId::WeeklyRest35h) {
        return;
    }
    let limit = ctx.policy.limit(RuleId::WeeklyRest35h, 35.0);
    let limit_us = (limit * US_PER_H) as i64;
    let in_week_us = 24 * 3_600_000_000i64;
    let day_us = 86_400_000_000i64;
    // Rests of each (site, worker), local time, sorted.
    let mut rests: HashMap<(&Arc<str>, u64), Vec<Span>> = HashMap::new();
    let mut last: Option<(&Arc<str>, u64, i64)> = None;
    for r in &ctx.rows {
        let s = r.s;
        let (from, to) = (s.local_start_us(), s.local_start_us() + s.span_us());
        let v = rests.entry((&s.site, s.worker)).or_default();
        match last {
            Some((site, w, end)) if site == &s.site && w == s.worker => v.push((end, from)),
            _ => v.push((i64::MIN, from)),
        }
        if let Some((site, w, end)) = last {
            if site != &s.site || w != s.worker {
                rests.entry((site, w)).or_default().push((end, i64::MAX));
            }
        }
        last = Some((&s.site, s.worker, to));
    }
    if let Some((site, w, end)) = last {
        rests.entry((site, w)).or_default().push((end, i64::MAX));
    }
    let mut t = Tallies::new();
    for ((site, worker, m), w) in weeks {
        let Some(gaps) = rests.get(&(*site, *worker)) else { continue };
        let ws = m.and_hms_opt(0, 0, 0).map(|d| d.and_utc().timestamp_micros()).unwrap_or(0);
        let we = ws + 7 * day_us;
        // Rests are in time order; their ends increase.
        let i = gaps.partition_point(|(_, end)| *end <= ws);
        let ok = gaps[i..].iter().take_while(|(start, _)| *start < we).any(|(a, b)| {
            let long = *a == i64::MIN || *b == i64::MAX || b - a >= limit_us;
            long && (*b).min(we) - (*a).max(ws) >= in_week_us
        });
        add(&mut t, site, w.groups.iter().copied(), w.week, |x| {
            x.total += 1;
            x.certain += u64::from(!ok);
        });
    }
    ctx.weekly(emit, RuleId::WeeklyRest35h, |key| {
        let x = get(&t, key);
        Outcome::Value(
            Some(x.certain as f64),
            facts("count").n("count", x.certain as f64).n("weeks", x.total as f64).n("limit", limit),
        )
    });
}

/// Night workers: at least `night_min_h` of night work on at least
/// `night_days` days in at least half of the weeks they worked (the
/// profile's reading of "habitually, at least twice a week").
fn night_workers<'a>(ctx: &Ctx, days: &[Day<'a>]) -> BTreeSet<(&'a Arc<str>, u64)> {
    if !ctx.enabled(RuleId::NightDaily8h) && !ctx.enabled(RuleId::NightWeeklyAverage) {
        return BTreeSet::new();
    }
    let p = ctx.policy;
    let min_us = (p.param(RuleId::NightDaily8h, "night_min_h", 3.0) * US_PER_H) as i64;
    let need_days = p.param(RuleId::NightDaily8h, "night_days", 2.0);
    // (site, worker) -> week -> days with enough night work.
    let mut nightly: BTreeMap<(&Arc<str>, u64), BTreeMap<&str, u64>> = BTreeMap::new();
    for d in days {
        *nightly.entry((d.site, d.worker)).or_default().entry(d.week).or_default() +=
            u64::from(d.night_us >= min_us);
    }
    nightly
        .iter()
        .filter(|(_, w)| {
            let qualifying = w.values().filter(|n| **n as f64 >= need_days).count();
            qualifying > 0 && 2 * qualifying >= w.len()
        })
        .map(|(k, _)| *k)
        .collect()
}

/// Night workers' daily maximum.
fn night_days(
    ctx: &Ctx,
    emit: &mut Emit,
    days: &[Day],
    night_worker: &BTreeSet<(&Arc<str>, u64)>,
    break_min: f64,
) {
    if !ctx.enabled(RuleId::NightDaily8h) {
        return;
    }
    let limit = ctx.policy.limit(RuleId::NightDaily8h, 8.0);
    let mut t = Tallies::new();
    let mut seen: BTreeSet<(&Arc<str>, u64, &str, &str)> = BTreeSet::new();
    for d in days.iter().filter(|d| night_worker.contains(&(d.site, d.worker))) {
        let certain = over(d.lower_us, limit, false);
        let possible = !certain && over(d.upper_us, limit, false);
        for g in &d.groups {
            let new_worker = seen.insert((d.site, d.worker, g, d.week));
            let x = t.entry((d.site.clone(), g.to_string(), d.week.to_string())).or_default();
            x.total += 1;
            x.certain += u64::from(certain);
            x.possible += u64::from(possible);
            x.extra += u64::from(new_worker);
        }
    }
    ctx.weekly(emit, RuleId::NightDaily8h, |key| {
        let x = get(&t, key);
        if x.extra == 0 {
            return Outcome::Value(Some(0.0), facts("no_night_workers"));
        }
        bounded(
            x,
            facts("bounded")
                .n("days", x.total as f64)
                .n("night_workers", x.extra as f64)
                .n("limit", limit)
                .n("break_min", break_min),
        )
    });
}

/// California meal and rest periods, per working day.
fn california(ctx: &Ctx, emit: &mut Emit, days: &[Day], meal_h: f64) {
    let p = ctx.policy;
    let second_h = p.param(RuleId::CaMealPeriod, "second_h", 10.0);
    let waiver_h = p.param(RuleId::CaMealPeriod, "waiver_max_h", 6.0);
    let second_waiver_h = p.param(RuleId::CaMealPeriod, "second_waiver_max_h", 12.0);
    let every_h = p.limit(RuleId::CaRestPeriod, 4.0);
    let e = ctx.employer;
    let waiver = e.and_then(|e| e.meal_waiver).unwrap_or(false);
    let second_waiver = e.and_then(|e| e.second_meal_waiver).unwrap_or(false);
    let scheduled = e.and_then(|e| e.breaks_scheduled_by_system).unwrap_or(false);
    // Whether a day with `work_h` of work lacks a meal period it is owed.
    let missing = |d: &Day, work_h: f64| {
        let first_waived = waiver && work_h <= waiver_h;
        let first = work_h > meal_h && !first_waived;
        let second = work_h > second_h && !(second_waiver && work_h <= second_waiver_h && !first_waived);
        (first && !d.meal_in_time) || (second && d.meal_breaks < 2)
    };
    let (mut meal, mut rest) = (Tallies::new(), Tallies::new());
    for d in days {
        let (lo, up) = (hours(d.lower_us as f64), hours(d.upper_us as f64));
        let certain = missing(d, lo);
        let possible = !certain && missing(d, up);
        let waived = waiver && up > meal_h && up <= waiver_h;
        add(&mut meal, d.site, d.groups.iter().copied(), d.week, |t| {
            t.total += 1;
            t.certain += u64::from(certain);
            t.possible += u64::from(possible);
            t.extra += u64::from(waived);
        });
        let short = |h: f64| (d.rest_breaks as f64) < ca_rest_required(h, every_h, meal_h);
        let certain = short(lo);
        let possible = !certain && short(up);
        add(&mut rest, d.site, d.groups.iter().copied(), d.week, |t| {
            t.total += 1;
            t.certain += u64::from(certain);
            t.possible += u64::from(possible);
        });
    }
    ctx.weekly(emit, RuleId::CaMealPeriod, |key| {
        let t = get(&meal, key);
        bounded(
            t,
            facts("bounded")
                .n("days", t.total as f64)
                .n("limit", meal_h)
                .n("second_h", second_h)
                .n("waived", t.extra as f64),
        )
    });
    ctx.weekly(emit, RuleId::CaRestPeriod, |key| {
        let t = get(&rest, key);
        Outcome::Bounded {
            certain: t.certain,
            possible: t.possible,
            facts: facts(if scheduled { "scheduled" } else { "bounded" })
                .n("days", t.total as f64)
                .n("limit", every_h),
            // Rest periods are "authorized and permitted": a missing one is
            // a breach only when the employer's system schedules breaks.
            severity: scheduled.then_some(Severity::Breach),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{check, Want};
    use super::*;
    use crate::findings::Status::*;

    #[test]
    fn night_windows_are_cut_at_21_and_6() {
        let h = |x: f64| (x * US_PER_H) as i64;
        let n = (21.0, 6.0);
        // 22:00 to 06:00 the next day, from day 10: 8 h of night.
        let d10 = 10 * 86_400_000_000i64;
        assert_eq!(night_overlap_us(d10 + h(22.0), d10 + h(30.0), n), h(8.0));
        // 18:00 to 23:00: 2 h; 05:00 to 09:00: 1 h; 08:00 to 20:00: none.
        assert_eq!(night_overlap_us(d10 + h(18.0), d10 + h(23.0), n), h(2.0));
        assert_eq!(night_overlap_us(d10 + h(5.0), d10 + h(9.0), n), h(1.0));
        assert_eq!(night_overlap_us(d10 + h(8.0), d10 + h(20.0), n), 0);
    }

    #[test]
    fn break_after_6h_reaches_under_fr_and_exceeds_under_eu() {
        // Exactly 6 h of activity with no break: French law's break is due
        // once work "reaches" 6 h (breach); the Directive's only beyond
        // 6 h (none). 6 h 00 min 01 s: crossed under both (eu: attention,
        // the Directive leaving the length to national law).
        let six = "Mon 08:00-14:00";
        check("fr", six, &[Want::site(RuleId::BreakAfter6h, "2026-W10", Breach, 5.0)]);
        check("eu", six, &[Want::site(RuleId::BreakAfter6h, "2026-W10", Ok, 0.0)]);
        let more = "Mon 08:00-14:00:01";
        check("eu", more, &[Want::site(RuleId::BreakAfter6h, "2026-W10", Attention, 5.0)]);
        check("fr", "Mon 08:00-13:59:59", &[Want::site(RuleId::BreakAfter6h, "2026-W10", Ok, 0.0)]);
    }

    #[test]
    fn each_text_counts_the_break_its_own_way() {
        // 2 h, a declared 30-min break, then 6 h 10: French law wants the
        // break before daily work reaches 6 h (it was: none); the Directive
        // a break in a day over 6 h (there was one: none); German law no
        // more than 6 h in a row (6 h 10: a breach).
        let late = "Mon 08:00-16:40 break 10:00-10:30";
        check("fr", late, &[Want::site(RuleId::BreakAfter6h, "2026-W10", Ok, 0.0)]);
        check("eu", late, &[Want::site(RuleId::BreakAfter6h, "2026-W10", Ok, 0.0)]);
        check("de", late, &[Want::site(RuleId::BreakAfter6h, "2026-W10", Breach, 5.0)]);
        // 4 h, a 10-min stop (not a break), 4 h: 8 h 10 without a break
        // under every text.
        let short_stop = "Mon 08:00-16:10 gap 12:00-12:10";
        check("fr", short_stop, &[Want::site(RuleId::BreakAfter6h, "2026-W10", Breach, 5.0)]);
        check("eu", short_stop, &[Want::site(RuleId::BreakAfter6h, "2026-W10", Attention, 5.0)]);
        check("de", short_stop, &[Want::site(RuleId::BreakAfter6h, "2026-W10", Breach, 5.0)]);
        // 6 h 30, a break, 1 h: the French break came too late (after 6 h
        // of work); the Directive's day had a break.
        let after = "Mon 08:00-16:00 break 14:30-15:00";
        check("fr", after, &[Want::site(RuleId::BreakAfter6h, "2026-W10", Breach, 5.0)]);
        check("eu", after, &[Want::site(RuleId::BreakAfter6h, "2026-W10", Ok, 0.0)]);
        // Two shifts 5 minutes apart (3 h 30 and 3 h): one stretch of 6 h
        // 35 for the day.
        check(
            "fr",
            "Mon 08:00-11:30 | Mon 11:35-14:35",
            &[Want::site(RuleId::BreakAfter6h, "2026-W10", Breach, 5.0)],
        );
    }

    #[test]
    fn de_counts_six_hours_in_a_row_and_the_days_total() {
        // ArbZG s. 4: 6 h in a row is lawful, more is not; a 15-min break
        // counts there (the profile's break length).
        check("de", "Mon 08:00-14:00", &[Want::site(RuleId::BreakAfter6h, "2026-W10", Ok, 0.0)]);
        check("de", "Mon 08:00-14:10", &[Want::site(RuleId::BreakAfter6h, "2026-W10", Breach, 5.0)]);
        // 08:00-15:15 with one declared 15-min break at 11:00: 7 h of work,
        // 15 min of break, 30 owed: short. With 30 min of breaks (two of
        // 15): none.
        check(
            "de",
            "Mon 08:00-15:15 break 11:00-11:15",
            &[
                Want::site(RuleId::BreakTotal, "2026-W10", Breach, 5.0),
                Want::site(RuleId::BreakAfter6h, "2026-W10", Ok, 0.0),
            ],
        );
        check(
            "de",
            "Mon 08:00-15:30 break 10:30-10:45 break 12:30-12:45",
            &[Want::site(RuleId::BreakTotal, "2026-W10", Ok, 0.0)],
        );
        // 9 h 30 of work with 30 min of breaks: 45 owed beyond 9 h.
        check(
            "de",
            "Mon 07:00-17:00 break 10:00-10:15 break 13:00-13:15",
            &[Want::site(RuleId::BreakTotal, "2026-W10", Breach, 5.0)],
        );
    }

    #[test]
    fn the_daily_maximum_sums_the_days_shifts_and_has_two_bounds() {
        // Two shifts of 6 h and 5 h on one day (lunch clock-out between):
        // 11 h of work, over 10 h, though neither shift is.
        let split = "Mon 07:00-13:00 | Mon 14:00-19:00";
        check(
            "fr",
            split,
            &[
                Want::site(RuleId::DailyMax10h, "2026-W10", Breach, 5.0),
                Want::site(RuleId::DailyRest11h, "2026-W10", Ok, 0.0),
            ],
        );
        // 10 h 30 of span with an undeclared 40-min stop: the upper bound
        // (10 h 30) is over 10 h, the lower bound (9 h 50) is not: attention.
        check(
            "fr",
            "Mon 07:00-17:30 gap 12:00-12:40",
            &[Want::site(RuleId::DailyMax10h, "2026-W10", Attention, 0.0)],
        );
        // Declared, the same stop is a break: 9 h 50 of work, ok.
        check(
            "fr",
            "Mon 07:00-17:30 break 12:00-12:40",
            &[Want::site(RuleId::DailyMax10h, "2026-W10", Ok, 0.0)],
        );
    }

    #[test]
    fn daily_rest_is_between_working_days() {
        // A lunch clock-out (09-12, 13-17) is not a rest period; 17:00 to
        // 04:00 the next day is 11 h exactly (kept); 17:00 to 03:59 is not.
        check(
            "fr",
            "Mon 09:00-12:00 | Mon 13:00-17:00",
            &[Want::site(RuleId::DailyRest11h, "2026-W10", Ok, 0.0)],
        );
        check(
            "fr",
            "Mon 09:00-17:00 | Tue 04:00-08:00",
            &[Want::site(RuleId::DailyRest11h, "2026-W10", Ok, 0.0)],
        );
        check(
            "fr",
            "Mon 09:00-17:00 | Tue 03:59-08:00",
            &[Want::site(RuleId::DailyRest11h, "2026-W10", Breach, 5.0)],
        );
    }

    #[test]
    fn a_night_shift_belongs_to_the_day_and_week_it_starts() {
        // Sunday 22:00 to Monday 07:00 (9 h): Sunday's day, week 10; a
        // Monday shift from 17:00 is 10 h later: a short rest, in week 11.
        check(
            "fr",
            "Sun 22:00-07:00 | week+1 Mon 17:00-20:00",
            &[
                Want::site(RuleId::DailyRest11h, "2026-W11", Breach, 5.0),
                Want::site(RuleId::DailyMax10h, "2026-W10", Ok, 0.0),
            ],
        );
    }

    #[test]
    fn french_weekly_limits() {
        // Mon-Fri 07:00-17:00 is 50 h a week: over 48 (single week).
        let week = "Mon..Fri 07:00-17:00";
        check("fr", week, &[Want::site(RuleId::WeeklyMax48h, "2026-W10", Breach, 5.0)]);
        // The eu profile averages instead: one week of 50 h is no average
        // over 17 weeks (the window is not covered by the input).
        check("eu", week, &[Want::site(RuleId::WeeklyAverage, "2026-W10", InsufficientData, f64::NAN)]);
    }

    #[test]
    fn the_44_hour_average_over_12_weeks() {
        // Eleven weeks of 45 h (Mon-Fri 08:00-17:00), then a 12th: the
        // average over weeks 10-21 is 45 h > 44 h, crossed in week 21 (the
        // 12th); weeks 10-20 have no full window.
        let mut script = String::new();
        for w in 0..12 {
            script.push_str(&format!("week+{w} Mon..Fri 08:00-17:00 | "));
        }
        check(
            "fr",
            script.trim_end_matches(" | "),
            &[
                Want::site(RuleId::WeeklyAverage, "2026-W20", InsufficientData, f64::NAN),
                Want::site(RuleId::WeeklyAverage, "2026-W21", Breach, 5.0),
            ],
        );
        // Eleven weeks of 45 h and a 12th of 35 h: 530 / 12 = 44.17 h,
        // over; a 12th of 30 h: 525 / 12 = 43.75 h, not.
        let mut eleven = String::new();
        for w in 0..11 {
            eleven.push_str(&format!("week+{w} Mon..Fri 08:00-17:00 | "));
        }
        let w21 = |status, n| [Want::site(RuleId::WeeklyAverage, "2026-W21", status, n)];
        check("fr", &format!("{eleven}week+11 Mon..Fri 08:00-15:00"), &w21(Breach, 5.0));
        check("fr", &format!("{eleven}week+11 Mon..Fri 08:00-14:00"), &w21(Ok, 0.0));
        // A light first week (30 h) then twelve of 45 h: the window ending
        // in week 21 averages 43.75 h (not crossed), the one ending in
        // week 22 averages 45 h (crossed).
        let mut script = String::from("Mon..Fri 08:00-14:00 | ");
        for w in 1..13 {
            script.push_str(&format!("week+{w} Mon..Fri 08:00-17:00 | "));
        }
        check(
            "fr",
            script.trim_end_matches(" | "),
            &[
                Want::site(RuleId::WeeklyAverage, "2026-W21", Ok, 0.0),
                Want::site(RuleId::WeeklyAverage, "2026-W22", Breach, 5.0),
            ],
        );
    }

    #[test]
    fn the_eu_48_hour_average_needs_17_weeks() {
        // 17 weeks of 50 h (Mon-Fri 07:00-17:00): crossed only once the
        // window of 17 weeks is covered (week 26).
        let mut script = String::new();
        for w in 0..17 {
            script.push_str(&format!("week+{w} Mon..Fri 07:00-17:00 | "));
        }
        check(
            "eu",
            script.trim_end_matches(" | "),
            &[
                Want::site(RuleId::WeeklyAverage, "2026-W25", InsufficientData, f64::NAN),
                Want::site(RuleId::WeeklyAverage, "2026-W26", Breach, 5.0),
            ],
        );
    }

    #[test]
    fn weekly_rest_of_35_hours_and_six_days() {
        // Mon-Sat 08:00-16:00, then the next Monday at 03:00: rest from
        // Saturday 16:00 to Monday 03:00 is 35 h, 32 of them in week 10:
        // kept. At 02:59: 34 h 59, not.
        check(
            "fr",
            "Mon..Sat 08:00-16:00 | week+1 Mon 03:00-08:00",
            &[
                Want::site(RuleId::WeeklyRest35h, "2026-W10", Ok, 0.0),
                Want::site(RuleId::Max6Days, "2026-W10", Ok, 0.0),
            ],
        );
        check(
            "fr",
            "Mon..Sat 08:00-16:00 | week+1 Mon 02:59-08:00",
            &[Want::site(RuleId::WeeklyRest35h, "2026-W10", Breach, 5.0)],
        );
        // Seven days of work in one calendar week.
        check("fr", "Mon..Sun 08:00-12:00", &[Want::site(RuleId::Max6Days, "2026-W10", Breach, 5.0)]);
    }

    #[test]
    fn night_workers_daily_limit() {
        // 21:00-06:00 (9 h, all night) Monday to Thursday: night workers,
        // each day over 8 h. A 9 h day shift is not night work.
        check("fr", "Mon..Thu 21:00-06:00", &[Want::site(RuleId::NightDaily8h, "2026-W10", Breach, 20.0)]);
        check("fr", "Mon..Thu 08:00-17:00", &[Want::site(RuleId::NightDaily8h, "2026-W10", Ok, 0.0)]);
        // Twice a week 22:00-01:00 (3 h of night work) is enough to be a
        // night worker; 22:00-00:59 is not.
        check(
            "fr",
            "Mon..Tue 22:00-01:00 | Wed 08:00-17:00",
            &[Want::site(RuleId::NightDaily8h, "2026-W10", Breach, 5.0)],
        );
        check(
            "fr",
            "Mon..Tue 22:00-00:59 | Wed 08:00-17:00",
            &[Want::site(RuleId::NightDaily8h, "2026-W10", Ok, 0.0)],
        );
    }

    #[test]
    fn night_workers_average_40_hours_over_12_weeks() {
        // Twelve weeks of four nights 21:00-08:00 (11 h, 44 h a week):
        // night workers over 40 h on average; the day workers' 44 h limit
        // over 12 weeks is not crossed (44 is not more than 44).
        let mut script = String::new();
        for w in 0..12 {
            script.push_str(&format!("week+{w} Mon..Thu 21:00-08:00 | "));
        }
        check(
            "fr",
            script.trim_end_matches(" | "),
            &[
                Want::site(RuleId::NightWeeklyAverage, "2026-W21", Breach, 5.0),
                Want::site(RuleId::WeeklyAverage, "2026-W21", Ok, 0.0),
            ],
        );
    }

    #[test]
    fn california_meal_periods() {
        // 5 h 00 without a meal: none owed. 5 h 01: owed, missing.
        check("us-ca", "Mon 08:00-13:00", &[Want::site(RuleId::CaMealPeriod, "2026-W10", Ok, 0.0)]);
        check("us-ca", "Mon 08:00-13:01", &[Want::site(RuleId::CaMealPeriod, "2026-W10", Breach, 5.0)]);
        // 6 h without a meal: missing, unless the employer declares the
        // waiver (6 h is within it).
        check("us-ca", "Mon 08:00-14:00", &[Want::site(RuleId::CaMealPeriod, "2026-W10", Breach, 5.0)]);
        super::super::testkit::check_with(
            "us-ca",
            "Mon 08:00-14:00",
            Some("meal_waiver = true"),
            &[Want::site(RuleId::CaMealPeriod, "2026-W10", Ok, 0.0)],
        );
        // 10 h 01 of work with one meal: the second is missing.
        check(
            "us-ca",
            "Mon 08:00-18:31 break 11:00-11:30",
            &[Want::site(RuleId::CaMealPeriod, "2026-W10", Breach, 5.0)],
        );
        // ... with two, none.
        check(
            "us-ca",
            "Mon 08:00-19:01 break 11:00-11:30 break 15:00-15:30",
            &[Want::site(RuleId::CaMealPeriod, "2026-W10", Ok, 0.0)],
        );
    }

    #[test]
    fn california_rest_periods_are_permitted_not_forced() {
        // 4 h with no stop: one rest period owed, missing: attention; a
        // breach when the employer's system schedules breaks.
        check("us-ca", "Mon 08:00-12:00", &[Want::site(RuleId::CaRestPeriod, "2026-W10", Attention, 5.0)]);
        super::super::testkit::check_with(
            "us-ca",
            "Mon 08:00-12:00",
            Some("breaks_scheduled_by_system = true"),
            &[Want::site(RuleId::CaRestPeriod, "2026-W10", Breach, 5.0)],
        );
        // 3 h 29 (under 3.5 h): none owed.
        check("us-ca", "Mon 08:00-11:29", &[Want::site(RuleId::CaRestPeriod, "2026-W10", Ok, 0.0)]);
        assert_eq!(ca_rest_required(3.5, 4.0, 5.0), 1.0);
        assert_eq!(ca_rest_required(6.0, 4.0, 5.0), 2.0); // 1 rest + the meal
        assert_eq!(ca_rest_required(6.01, 4.0, 5.0), 3.0);
    }
}
