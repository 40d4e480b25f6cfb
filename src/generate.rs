//! The synthetic site: events calibrated on published warehouse figures
//! (docs/generator.md), with scenarios that inject known issues.
//!
//! Deterministic for a given seed: each worker has its own random stream,
//! derived from the seed and the worker's number.

use std::io::Write;

use chrono::NaiveDate;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal};

/// The scenarios of `vigie generate --scenario`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// Ordinary operation: lawful flags, breaks kept, steady pace.
    Baseline,
    /// About +12 % units per hour from week 3 on.
    Intensification,
    /// The employer flags idleness at 60 s (breaks included), asks for
    /// justifications of gaps of 3 min or more, flags scans under 1.25 s,
    /// and the data span more than 35 days.
    CnilLike,
    /// Working-time breaches injected in known numbers.
    Worktime,
    /// One team smaller than k = 10.
    SmallTeam,
    /// Everything an auditor should find at once (used by `vigie demo`).
    Demo,
    /// The pace within each process does not change, but from day 15 the
    /// share of packing (35 % faster than picking) rises from 20 % to 60 %
    /// of shifts: the site's pace rises by mix alone.
    MixChange,
    /// Every worker under voice guidance; half the shifts pick, half pack.
    /// From day 15 picking alone speeds up (scan intervals 1.14 x faster)
    /// and its weekly target rises with it; gaps of 3 minutes or more get a
    /// justification request.
    VoicePaced,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Baseline => "baseline",
            Scenario::Intensification => "intensification",
            Scenario::CnilLike => "cnil-like",
            Scenario::Worktime => "worktime",
            Scenario::SmallTeam => "small-team",
            Scenario::Demo => "demo",
            Scenario::MixChange => "mix-change",
            Scenario::VoicePaced => "voice-paced",
        }
    }
}

/// How the employer's own system flags workers (what vigie audits).
#[derive(Debug, Clone, PartialEq)]
pub struct EmployerPolicy {
    /// Inactivity longer than this raises an `idle_flag`.
    pub idle_flag_s: Option<f64>,
    /// Whether idle flags and justification requests also fire inside
    /// declared breaks.
    pub flags_during_breaks: bool,
    /// Gaps at least this long get a `justification_request`.
    pub justify_gap_s: Option<f64>,
    /// Scans closer than this raise a `speed_flag`.
    pub speed_flag_s: Option<f64>,
    /// Announced rate target (units per hour).
    pub target_per_hour: Option<f64>,
}

/// Numbers a scenario injected, for tests to compare with the findings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Injected {
    pub break_after_6h: u64,
    pub daily_rest_11h: u64,
    pub daily_max_10h: u64,
    pub weekly_max_48h: u64,
    /// Declared breaks that the employer's system flagged inside.
    pub flags_during_breaks: u64,
    pub speed_flags: u64,
    pub justification_requests: u64,
    pub idle_flags: u64,
}

/// Parameters of a generated site.
#[derive(Debug, Clone)]
pub struct SiteSpec {
    pub site: String,
    pub workers: u32,
    pub days: u32,
    pub seed: u64,
    pub scenario: Scenario,
    /// First day (a Monday).
    pub start: NaiveDate,
}

impl SiteSpec {
    pub fn new(workers: u32, days: u32, seed: u64, scenario: Scenario) -> Self {
        let days = match scenario {
            // More than 35 days of individual data.
            Scenario::CnilLike => days.max(36),
            // Two weeks before and two after the change, at least.
            Scenario::Intensification | Scenario::MixChange | Scenario::VoicePaced => days.max(28),
            _ => days,
        };
        SiteSpec {
            site: "lyon-1".into(),
            workers,
            days,
            seed,
            scenario,
            start: NaiveDate::from_ymd_opt(2026, 3, 2).expect("a valid date"),
        }
    }

    pub fn employer(&self) -> EmployerPolicy {
        match self.scenario {
            Scenario::CnilLike | Scenario::Demo => EmployerPolicy {
                idle_flag_s: Some(60.0),
                flags_during_breaks: true,
                justify_gap_s: Some(180.0),
                speed_flag_s: Some(1.25),
                target_per_hour: Some(110.0),
            },
            Scenario::VoicePaced => EmployerPolicy {
                idle_flag_s: Some(600.0),
                flags_during_breaks: false,
                justify_gap_s: Some(180.0),
                speed_flag_s: None,
                target_per_hour: Some(110.0),
            },
            _ => EmployerPolicy {
                idle_flag_s: Some(600.0),
                flags_during_breaks: false,
                justify_gap_s: None,
                speed_flag_s: None,
                target_per_hour: None,
            },
        }
    }

    fn teams(&self) -> Vec<(String, String, u32)> {
        // (team, zone, size)
        let n = self.workers;
        let mut teams = Vec::new();
        let small = matches!(self.scenario, Scenario::SmallTeam | Scenario::Demo);
        let small_size = if small { 6.min(n) } else { 0 };
        let rest = n - small_size;
        let big = (rest / 20).max(1);
        for t in 0..big {
            let size = rest / big + u32::from(t < rest % big);
            teams.push((
                format!("team-{}", (b'a' + (t % 26) as u8) as char),
                format!("zone-{}", t % 3 + 1),
                size,
            ));
        }
        if small_size > 0 {
            teams.push(("night-crew".into(), "zone-9".into(), small_size));
        }
        teams
    }
}

/// Offset of Central European time on that instant: +02:00 from the last
/// Sunday of March 01:00 UTC to the last Sunday of October 01:00 UTC.
/// Plain arithmetic: it runs once per generated event.
pub fn paris_offset_s(ts_us: i64) -> i32 {
    const DAY_US: i64 = 86_400_000_000;
    let (y, _, _) = civil_from_days(ts_us.div_euclid(DAY_US));
    let last_sunday_1h = |m: u32| {
        let d31 = days_from_civil(y, m, 31);
        // 1970-01-01 was a Thursday: (days + 4) mod 7 is 0 on Sundays.
        let sunday = d31 - (d31 + 4).rem_euclid(7);
        sunday * DAY_US + 3_600_000_000
    };
    if ts_us >= last_sunday_1h(3) && ts_us < last_sunday_1h(10) {
        7200
    } else {
        3600
    }
}

/// Days since 1970-01-01 of a civil date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// One generated event, before it is written out.
#[derive(Debug, Clone)]
pub struct GenEvent {
    pub ts_us: i64,
    pub kind: &'static str,
    pub worker: u32,
    pub quantity: Option<u32>,
    pub weight_kg: Option<f64>,
    pub threshold_s: Option<f64>,
    pub gap_s: Option<f64>,
    pub target_per_hour: Option<f64>,
    /// The process of a scan or voice prompt.
    pub process: Option<&'static str>,
}

struct Worker {
    team: usize,
    /// Voice picking (else hand scanner).
    voice: bool,
    /// Personal pace factor.
    pace: f64,
    /// 0: morning rotation on even weeks, 1: on odd weeks.
    rotation: u32,
    rng: ChaCha8Rng,
}

/// A planned shift: local start and end (seconds from the day's local
/// midnight) and declared breaks (start, length in seconds).
#[derive(Debug, Clone)]
struct Plan {
    start_s: i64,
    end_s: i64,
    breaks: Vec<(i64, i64)>,
}

/// Generates the site day by day; each day's events are sorted by time
/// and handed to `emit`.
pub struct Generator {
    pub spec: SiteSpec,
    employer: EmployerPolicy,
    teams: Vec<(String, String, u32)>,
    workers: Vec<Worker>,
    /// Worker-days that carry an injected breach, by kind.
    injections: Vec<(u32, u32, Injection)>,
    pub injected: Injected,
    next_id: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Injection {
    /// The declared break is skipped.
    NoBreak,
    /// An extra early shift the morning after an afternoon shift.
    ShortRest,
    /// An 11 h 30 shift with two breaks.
    LongDay,
    /// Six long days that week (marks the Monday).
    LongWeek,
}

const MORNING: i64 = 6 * 3600;
const AFTERNOON: i64 = 13 * 3600 + 30 * 60;
const SHIFT_LEN: i64 = 7 * 3600;

impl Generator {
    pub fn new(spec: SiteSpec) -> Self {
        let employer = spec.employer();
        let teams = spec.teams();
        let mut workers = Vec::new();
        let mut seeder = ChaCha8Rng::seed_from_u64(spec.seed);
        for (t, (_, _, size)) in teams.iter().enumerate() {
            for _ in 0..*size {
                let n = workers.len() as u64;
                let mut rng =
                    ChaCha8Rng::seed_from_u64(spec.seed ^ (n + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
                workers.push(Worker {
                    team: t,
                    voice: t % 2 == 0 || spec.scenario == Scenario::VoicePaced,
                    pace: rng.gen_range(0.85..1.15),
                    rotation: seeder.gen_range(0..2),
                    rng,
                });
            }
        }
        let mut g = Generator {
            spec,
            employer,
            teams,
            workers,
            injections: Vec::new(),
            injected: Injected::default(),
            next_id: 0,
        };
        g.plan_injections();
        g
    }

    /// Workers, teams and the injected breaches are fixed up front, so the
    /// expected counts are known before a single event is written.
    fn plan_injections(&mut self) {
        if !matches!(self.spec.scenario, Scenario::Worktime | Scenario::Demo) {
            return;
        }
        let n = self.workers.len() as u32;
        let weeks = self.spec.days / 7;
        if n < 4 || weeks < 2 {
            return;
        }
        // Distinct workers so that breaches do not overlap: a stride prime
        // to the head count visits every worker once.
        let stride = [7u32, 11, 13, 17].into_iter().find(|p| !n.is_multiple_of(*p)).unwrap_or(1);
        let mut k = 0u32;
        let mut pick = |what: Injection, count: u32, list: &mut Vec<(u32, u32, Injection)>| {
            for i in 0..count {
                let worker = (k * stride + 3) % n;
                k += 1;
                let week = (i % (weeks - 1)) + 1;
                // Tuesday of that week; Monday for a long week.
                let day = week * 7 + if what == Injection::LongWeek { 0 } else { 1 };
                list.push((worker, day, what));
            }
        };
        let mut list = Vec::new();
        pick(Injection::NoBreak, 5, &mut list);
        pick(Injection::ShortRest, 4, &mut list);
        pick(Injection::LongDay, 3, &mut list);
        pick(Injection::LongWeek, 2, &mut list);
        self.injections = list;
    }

    fn injection(&self, worker: u32, day: u32) -> Option<Injection> {
        self.injections
            .iter()
            .find(|(w, d, what)| {
                *w == worker && (*d == day || (*what == Injection::LongWeek && day >= *d && day < *d + 6))
            })
            .map(|(_, _, what)| *what)
    }

    fn week_of(&self, day: u32) -> u32 {
        day / 7
    }

    /// The shift plan of one worker on one day (day 0 is the start
    /// Monday), or None on a rest day.
    fn plan(&self, w: u32, day: u32) -> Vec<Plan> {
        let weekday = day % 7;
        let inj = self.injection(w, day);
        let long_week = inj == Some(Injection::LongWeek);
        if weekday >= 5 && !(long_week && weekday == 5) {
            return Vec::new();
        }
        let morning = (self.week_of(day) + self.workers[w as usize].rotation).is_multiple_of(2);
        let start = if morning { MORNING } else { AFTERNOON };
        let mut plans = Vec::new();
        match inj {
            // Long shifts start at the rotation's usual hour, so that they
            // shorten no rest period.
            Some(Injection::LongDay) => plans.push(Plan {
                start_s: start,
                end_s: start + 11 * 3600 + 30 * 60,
                breaks: vec![(start + 3 * 3600, 30 * 60), (start + 7 * 3600, 30 * 60)],
            }),
            Some(Injection::LongWeek) => plans.push(Plan {
                start_s: start,
                end_s: start + 9 * 3600,
                breaks: vec![(start + 3 * 3600, 20 * 60), (start + 6 * 3600, 20 * 60)],
            }),
            Some(Injection::NoBreak) => {
                plans.push(Plan { start_s: start, end_s: start + SHIFT_LEN, breaks: vec![] });
            }
            Some(Injection::ShortRest) => {
                // An afternoon shift this day, then an early shift the next
                // morning: 20:30 -> 06:00 is 9 h 30 of rest. The next day's
                // regular shift is replaced (see `worker_day`).
                plans.push(Plan {
                    start_s: AFTERNOON,
                    end_s: AFTERNOON + SHIFT_LEN,
                    breaks: vec![(AFTERNOON + 3 * 3600, 20 * 60)],
                });
            }
            None => plans.push(Plan {
                start_s: start,
                end_s: start + SHIFT_LEN,
                breaks: vec![(start + 3 * 3600 + 15 * 60, 20 * 60)],
            }),
        }
        // The morning after a short-rest day is an early shift.
        if day > 0 && self.injection(w, day - 1) == Some(Injection::ShortRest) {
            return vec![Plan {
                start_s: MORNING,
                end_s: MORNING + SHIFT_LEN,
                breaks: vec![(MORNING + 3 * 3600, 20 * 60)],
            }];
        }
        plans
    }

    /// Local midnight of a day, as UTC microseconds.
    fn midnight_us(&self, day: u32) -> i64 {
        let d = self.spec.start + chrono::Days::new(u64::from(day));
        let naive = d.and_hms_opt(0, 0, 0).expect("midnight").and_utc().timestamp_micros();
        // The offset in force at local noon is the day's offset (changes
        // happen at night).
        let off = paris_offset_s(naive + 12 * 3_600_000_000);
        naive - i64::from(off) * 1_000_000
    }

    /// Pace multiplier on scan intervals. Pauses do not speed up, so 1.14
    /// on intervals gives about +12 % units per effective hour.
    fn rate_factor(&self, day: u32) -> f64 {
        match self.spec.scenario {
            Scenario::Intensification | Scenario::Demo | Scenario::VoicePaced if day >= 14 => 1.14,
            _ => 1.0,
        }
    }

    /// All events of one day, sorted by time.
    pub fn day(&mut self, day: u32) -> Vec<GenEvent> {
        let mut out = Vec::new();
        for w in 0..self.workers.len() as u32 {
            for plan in self.plan(w, day) {
                self.shift(w, day, &plan, &mut out);
            }
        }
        // Exports carry milliseconds: every format then holds the same
        // instants.
        for e in &mut out {
            e.ts_us = e.ts_us.div_euclid(1000) * 1000;
        }
        out.sort_by_key(|e| (e.ts_us, e.worker));
        out
    }

    fn shift(&mut self, w: u32, day: u32, plan: &Plan, out: &mut Vec<GenEvent>) {
        let base = self.midnight_us(day);
        let factor = self.rate_factor(day);
        let employer = self.employer.clone();
        let inj = self.injection(w, day);
        let worker = &mut self.workers[w as usize];
        let rng = &mut worker.rng;
        let jitter = rng.gen_range(-300..=300) * 1_000_000i64;
        let s = |secs: i64| base + secs * 1_000_000;
        let start = s(plan.start_s) + jitter;
        let end = s(plan.end_s) + jitter;
        let ev = |ts_us: i64, kind: &'static str| GenEvent {
            ts_us,
            kind,
            worker: w,
            quantity: None,
            weight_kg: None,
            threshold_s: None,
            gap_s: None,
            target_per_hour: None,
            process: None,
        };
        // The shift's process: picking, or packing (faster) in the
        // mix-change scenario, more often from day 14.
        let pack_share = match self.spec.scenario {
            Scenario::MixChange if day >= 14 => 0.6,
            Scenario::MixChange => 0.2,
            Scenario::VoicePaced => 0.5,
            _ => 0.0,
        };
        let packing = pack_share > 0.0 && rng.gen_bool(pack_share);
        // In voice-paced, only picking speeds up (the target announced
        // rises for everyone on the day of the change).
        let day_factor = factor;
        let factor = if packing && self.spec.scenario == Scenario::VoicePaced { 1.0 } else { factor };
        let process = if packing { "pack" } else { "pick" };
        out.push(ev(start, "shift_start"));
        if let Some(t) = employer.target_per_hour {
            if day.is_multiple_of(7) {
                out.push(GenEvent {
                    target_per_hour: Some(t * day_factor),
                    ..ev(start + 1_000_000, "rate_target")
                });
            }
        }
        // Units per hour: about 100 by hand scanner (36 s between scans),
        // 120 with voice picking; log-normal intervals with sigma 0.5.
        let uph = if worker.voice { 120.0 } else { 100.0 }
            * worker.pace
            * factor
            * if packing { 1.35 } else { 1.0 };
        let median_s = 3600.0 / uph / (0.5f64 * 0.5 / 2.0).exp();
        let interval = LogNormal::new(median_s.ln(), 0.5).expect("valid log-normal");
        let breaks: Vec<(i64, i64)> =
            plan.breaks.iter().map(|(b, len)| (s(*b) + jitter, s(*b) + jitter + len * 1_000_000)).collect();
        let mut t = start + rng.gen_range(60..240) * 1_000_000;
        let mut last_activity = start;
        let mut next_break = 0usize;
        let rush_p = match self.spec.scenario {
            Scenario::CnilLike | Scenario::Demo => 0.06,
            _ => 0.02,
        };
        while t < end - 60_000_000 {
            // Declared break.
            if next_break < breaks.len() && t >= breaks[next_break].0 {
                let (b0, b1) = breaks[next_break];
                out.push(ev(b0, "break_start"));
                out.push(ev(b1, "break_end"));
                if employer.flags_during_breaks {
                    if let Some(idle) = employer.idle_flag_s {
                        let at = b0 + (idle * 1e6) as i64;
                        if at < b1 {
                            out.push(GenEvent { threshold_s: Some(idle), ..ev(at, "idle_flag") });
                            self.injected.idle_flags += 1;
                            self.injected.flags_during_breaks += 1;
                        }
                    }
                }
                last_activity = b1;
                t = b1 + rng.gen_range(30..120) * 1_000_000;
                next_break += 1;
                continue;
            }
            // Gaps: micro-stops, toilet breaks, stock or equipment faults.
            let r: f64 = rng.gen();
            let gap_s: f64 = if r < 0.004 {
                rng.gen_range(180.0..900.0) // toilet, 3 to 15 min
            } else if r < 0.005 {
                rng.gen_range(300.0..1140.0) // stock fault, under 19 min
            } else if r < 0.02 {
                rng.gen_range(60.0..180.0) // micro-stop over a minute
            } else {
                0.0
            };
            let step_s = if gap_s > 0.0 {
                gap_s
            } else if rng.gen_bool(rush_p) {
                rng.gen_range(0.4..1.2)
            } else {
                interval.sample(rng).clamp(1.3, 600.0)
            };
            let step = (step_s * 1e6) as i64;
            // Never run into the next break or the shift end with a gap.
            let limit = if next_break < breaks.len() { breaks[next_break].0 } else { end };
            if t + step >= limit {
                t = limit;
                continue;
            }
            let gap = (t + step - last_activity) as f64 / 1e6;
            if let Some(idle) = employer.idle_flag_s {
                if gap >= idle {
                    let at = last_activity + (idle * 1e6) as i64;
                    out.push(GenEvent { threshold_s: Some(idle), ..ev(at, "idle_flag") });
                    self.injected.idle_flags += 1;
                }
            }
            t += step;
            if worker.voice {
                let lead = (rng.gen_range(1.0f64..4.0).min(step_s * 0.8) * 1e6) as i64;
                out.push(GenEvent { process: Some(process), ..ev(t - lead, "voice_prompt") });
            }
            let quantity = if rng.gen_bool(0.1) { Some(rng.gen_range(2..=4)) } else { None };
            let weight = (rng.gen::<f64>() * 8.0 + 0.2) * f64::from(quantity.unwrap_or(1));
            out.push(GenEvent {
                quantity,
                weight_kg: Some((weight * 10.0).round() / 10.0),
                process: Some(process),
                ..ev(t, "scan")
            });
            if let Some(just) = employer.justify_gap_s {
                if gap >= just {
                    out.push(GenEvent { gap_s: Some(gap.round()), ..ev(t, "justification_request") });
                    self.injected.justification_requests += 1;
                }
            }
            if let Some(speed) = employer.speed_flag_s {
                if step_s < speed {
                    out.push(GenEvent { threshold_s: Some(speed), ..ev(t, "speed_flag") });
                    self.injected.speed_flags += 1;
                }
            }
            last_activity = t;
        }
        out.push(ev(end, "shift_end"));
        match inj {
            Some(Injection::NoBreak) => self.injected.break_after_6h += 1,
            Some(Injection::ShortRest) => self.injected.daily_rest_11h += 1,
            Some(Injection::LongDay) => self.injected.daily_max_10h += 1,
            Some(Injection::LongWeek) if day.is_multiple_of(7) => self.injected.weekly_max_48h += 1,
            _ => {}
        }
    }

    pub fn team_of(&self, w: u32) -> (&str, &str) {
        let (t, z, _) = &self.teams[self.workers[w as usize].team];
        (t, z)
    }

    pub fn is_voice(&self, w: u32) -> bool {
        self.workers[w as usize].voice
    }

    pub fn worker_count(&self) -> u32 {
        self.workers.len() as u32
    }

    /// The employer's pseudonym of a worker, as an export would carry it.
    pub fn worker_label(&self, w: u32) -> String {
        format!("E{:06}", (u64::from(w) * 7919 + self.spec.seed % 1000) % 1_000_000)
    }

    /// The next event id of the site.
    pub fn next_event_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }
}

/// Writes generated events as NDJSON lines, with each worker's constant
/// fields rendered once.
pub struct NdjsonWriter {
    site: String,
    fixed: Vec<Vec<u8>>,
    device: Vec<&'static str>,
}

impl NdjsonWriter {
    pub fn new(g: &Generator) -> Self {
        let fixed = (0..g.worker_count())
            .map(|w| {
                let (team, zone) = g.team_of(w);
                format!(
                    ",\"site\":\"{}\",\"worker\":\"{}\",\"team\":\"{team}\",\"zone\":\"{zone}\",\"kind\":\"",
                    g.spec.site,
                    g.worker_label(w)
                )
                .into_bytes()
            })
            .collect();
        let device = (0..g.worker_count()).map(|w| if g.is_voice(w) { "voice" } else { "scanner" }).collect();
        NdjsonWriter { site: g.spec.site.clone(), fixed, device }
    }

    /// Appends one event as a line.
    pub fn write(&self, id: u64, e: &GenEvent, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"event_id\":\"");
        out.extend_from_slice(self.site.as_bytes());
        out.push(b'-');
        push_digits(out, id, 10);
        out.extend_from_slice(b"\",\"ts\":\"");
        format_ts(e.ts_us, paris_offset_s(e.ts_us), out);
        out.push(b'"');
        out.extend_from_slice(&self.fixed[e.worker as usize]);
        out.extend_from_slice(e.kind.as_bytes());
        out.push(b'"');
        if let Some(p) = e.process {
            let _ = write!(out, ",\"process\":\"{p}\",\"device\":\"{}\"", self.device[e.worker as usize]);
        }
        if let Some(q) = e.quantity {
            let _ = write!(out, ",\"quantity\":{q}");
        }
        if let Some(x) = e.weight_kg {
            let _ = write!(out, ",\"weight_kg\":{x}");
        }
        if let Some(x) = e.threshold_s {
            let _ = write!(out, ",\"threshold_s\":{x}");
        }
        if let Some(x) = e.gap_s {
            let _ = write!(out, ",\"gap_s\":{x}");
        }
        if let Some(x) = e.target_per_hour {
            let _ = write!(out, ",\"target_per_hour\":{}", (x * 10.0).round() / 10.0);
        }
        out.extend_from_slice(b"}\n");
    }
}

/// Why `vigie generate` could not write.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{0}")]
    Format(String),
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("polars: {0}")]
    Polars(#[from] polars::error::PolarsError),
}

/// What was written.
pub struct Written {
    pub events: u64,
    pub days: u32,
}

/// Writes a generated site to `path`: NDJSON (`.ndjson`, `.jsonl`, or
/// `.ndjson.gz`) or Parquet (`.parquet`, with `ts` as a timestamp column
/// in Europe/Paris time).
pub fn write_file(spec: SiteSpec, path: &std::path::Path) -> Result<Written, WriteError> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("").to_ascii_lowercase();
    let io = |e: std::io::Error| WriteError::Io { path: path.display().to_string(), source: e };
    let days = spec.days;
    let mut g = Generator::new(spec);
    let mut events = 0u64;
    if name.ends_with(".parquet") {
        let mut w = ParquetOut::create(path).map_err(io)?;
        for d in 0..days {
            let day = g.day(d);
            events += day.len() as u64;
            w.write_day(&mut g, &day)?;
        }
        w.finish()?;
    } else if name.ends_with(".ndjson")
        || name.ends_with(".jsonl")
        || name.ends_with(".ndjson.gz")
        || name.ends_with(".jsonl.gz")
    {
        let f = std::fs::File::create(path).map_err(io)?;
        let mut out: Box<dyn Write> = if name.ends_with(".gz") {
            Box::new(flate2::write::GzEncoder::new(
                std::io::BufWriter::with_capacity(1 << 20, f),
                flate2::Compression::fast(),
            ))
        } else {
            Box::new(std::io::BufWriter::with_capacity(1 << 20, f))
        };
        let writer = NdjsonWriter::new(&g);
        let mut buf = Vec::with_capacity(8 << 20);
        for d in 0..days {
            for e in g.day(d) {
                let id = g.next_event_id();
                writer.write(id, &e, &mut buf);
                events += 1;
                if buf.len() > (4 << 20) {
                    out.write_all(&buf).map_err(io)?;
                    buf.clear();
                }
            }
        }
        out.write_all(&buf).map_err(io)?;
        out.flush().map_err(io)?;
        drop(out);
    } else {
        return Err(WriteError::Format(format!(
            "{}: unknown format; expected .ndjson, .jsonl, .ndjson.gz or .parquet",
            path.display()
        )));
    }
    Ok(Written { events, days })
}

/// Parquet output of the generator, one row group per day.
struct ParquetOut {
    writer: polars::io::parquet::write::BatchedWriter<std::fs::File>,
}

impl ParquetOut {
    fn create(path: &std::path::Path) -> std::io::Result<Self> {
        use polars::prelude::*;
        let f = std::fs::File::create(path)?;
        let schema = Self::schema();
        let writer = ParquetWriter::new(f)
            .with_compression(ParquetCompression::Zstd(None))
            .batched(&schema)
            .map_err(std::io::Error::other)?;
        Ok(ParquetOut { writer })
    }

    fn schema() -> polars::prelude::Schema {
        use polars::prelude::*;
        let tz = TimeZone::opt_try_new(Some("Europe/Paris")).ok().flatten();
        Schema::from_iter([
            Field::new("event_id".into(), DataType::String),
            Field::new("ts".into(), DataType::Datetime(TimeUnit::Microseconds, tz)),
            Field::new("site".into(), DataType::String),
            Field::new("worker".into(), DataType::String),
            Field::new("kind".into(), DataType::String),
            Field::new("team".into(), DataType::String),
            Field::new("zone".into(), DataType::String),
            Field::new("process".into(), DataType::String),
            Field::new("device".into(), DataType::String),
            Field::new("quantity".into(), DataType::Int32),
            Field::new("weight_kg".into(), DataType::Float64),
            Field::new("threshold_s".into(), DataType::Float64),
            Field::new("gap_s".into(), DataType::Float64),
            Field::new("target_per_hour".into(), DataType::Float64),
        ])
    }

    fn write_day(&mut self, g: &mut Generator, day: &[GenEvent]) -> Result<(), WriteError> {
        use polars::prelude::*;
        let n = day.len();
        let site = g.spec.site.clone();
        let ids: Vec<String> = day.iter().map(|_| format!("{site}-{:010}", g.next_event_id())).collect();
        let labels: Vec<String> = (0..g.worker_count()).map(|w| g.worker_label(w)).collect();
        let scanlike = |e: &GenEvent| e.kind == "scan" || e.kind == "voice_prompt";
        let ts = Series::new("ts".into(), day.iter().map(|e| e.ts_us).collect::<Vec<_>>())
            .cast(Self::schema().get("ts").expect("ts in schema"))?;
        let df = DataFrame::new_infer_height(vec![
            Column::new("event_id".into(), ids),
            ts.into(),
            Column::new("site".into(), vec![g.spec.site.as_str(); n]),
            Column::new(
                "worker".into(),
                day.iter().map(|e| labels[e.worker as usize].as_str()).collect::<Vec<_>>(),
            ),
            Column::new("kind".into(), day.iter().map(|e| e.kind).collect::<Vec<_>>()),
            Column::new("team".into(), day.iter().map(|e| g.team_of(e.worker).0).collect::<Vec<_>>()),
            Column::new("zone".into(), day.iter().map(|e| g.team_of(e.worker).1).collect::<Vec<_>>()),
            Column::new("process".into(), day.iter().map(|e| e.process).collect::<Vec<_>>()),
            Column::new(
                "device".into(),
                day.iter()
                    .map(|e| scanlike(e).then_some(if g.is_voice(e.worker) { "voice" } else { "scanner" }))
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "quantity".into(),
                day.iter().map(|e| e.quantity.map(|q| q as i32)).collect::<Vec<_>>(),
            ),
            Column::new("weight_kg".into(), day.iter().map(|e| e.weight_kg).collect::<Vec<_>>()),
            Column::new("threshold_s".into(), day.iter().map(|e| e.threshold_s).collect::<Vec<_>>()),
            Column::new("gap_s".into(), day.iter().map(|e| e.gap_s).collect::<Vec<_>>()),
            Column::new(
                "target_per_hour".into(),
                day.iter().map(|e| e.target_per_hour.map(|x| (x * 10.0).round() / 10.0)).collect::<Vec<_>>(),
            ),
        ])?;
        if df.height() > 0 {
            self.writer.write_batch(&df)?;
        }
        Ok(())
    }

    fn finish(self) -> Result<(), WriteError> {
        self.writer.finish()?;
        Ok(())
    }
}

/// Appends `v` as exactly `width` decimal digits (zero-padded).
fn push_digits(out: &mut Vec<u8>, mut v: u64, width: usize) {
    let start = out.len();
    out.resize(start + width, b'0');
    for i in (0..width).rev() {
        out[start + i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// Formats an instant as RFC 3339 with milliseconds and the given offset,
/// e.g. `2026-03-02T08:00:00.250+01:00`.
pub fn format_ts(ts_us: i64, offset_s: i32, out: &mut Vec<u8>) {
    let local = ts_us + i64::from(offset_s) * 1_000_000;
    let secs = local.div_euclid(1_000_000);
    let ms = local.rem_euclid(1_000_000) / 1000;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    push_digits(out, y.clamp(0, 9999) as u64, 4);
    out.push(b'-');
    push_digits(out, u64::from(m), 2);
    out.push(b'-');
    push_digits(out, u64::from(d), 2);
    out.push(b'T');
    push_digits(out, (sod / 3600) as u64, 2);
    out.push(b':');
    push_digits(out, (sod / 60 % 60) as u64, 2);
    out.push(b':');
    push_digits(out, (sod % 60) as u64, 2);
    out.push(b'.');
    push_digits(out, ms as u64, 3);
    out.push(if offset_s < 0 { b'-' } else { b'+' });
    let off = u64::from(offset_s.unsigned_abs());
    push_digits(out, off / 3600, 2);
    out.push(b':');
    push_digits(out, off / 60 % 60, 2);
}

/// Days since 1970-01-01 to a civil date (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_format_in_their_offset() {
        let (ts, _) = vigie_ingest::validate::parse_ts("2026-03-02T07:00:00.25Z").unwrap();
        let mut out = Vec::new();
        format_ts(ts, 3600, &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), "2026-03-02T08:00:00.250+01:00");
        let mut out = Vec::new();
        format_ts(0, -5 * 3600, &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), "1969-12-31T19:00:00.000-05:00");
    }

    #[test]
    fn civil_dates_round_trip() {
        for days in [-800_000, -1, 0, 1, 19_000, 20_513, 2_000_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        // 2026-03-02 is day 20514.
        assert_eq!(days_from_civil(2026, 3, 2), 20_514);
    }

    #[test]
    fn paris_summer_time_starts_on_the_last_sunday_of_march() {
        let at = |s: &str| vigie_ingest::validate::parse_ts(s).unwrap().0;
        assert_eq!(paris_offset_s(at("2026-03-29T00:59:59Z")), 3600);
        assert_eq!(paris_offset_s(at("2026-03-29T01:00:00Z")), 7200);
        assert_eq!(paris_offset_s(at("2026-10-25T00:59:59Z")), 7200);
        assert_eq!(paris_offset_s(at("2026-10-25T01:00:00Z")), 3600);
        // 2027: 28 March and 31 October.
        assert_eq!(paris_offset_s(at("2027-03-28T00:59:59Z")), 3600);
        assert_eq!(paris_offset_s(at("2027-03-28T01:00:00Z")), 7200);
        assert_eq!(paris_offset_s(at("2027-10-31T00:59:59Z")), 7200);
        assert_eq!(paris_offset_s(at("2027-10-31T01:00:00Z")), 3600);
    }

    #[test]
    fn same_seed_same_events() {
        let run = |seed| {
            let mut g = Generator::new(SiteSpec::new(12, 3, seed, Scenario::Baseline));
            let w = NdjsonWriter::new(&g);
            let mut out = Vec::new();
            for d in 0..3 {
                for e in g.day(d) {
                    let id = g.next_event_id();
                    w.write(id, &e, &mut out);
                }
            }
            out
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }
}
