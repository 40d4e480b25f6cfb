//! The version-1 rules on tiny inputs. Every expected figure is worked out
//! by hand in the comment above it. Five workers follow the same pattern
//! so that k = 5 (the smallest a policy allows) publishes the site.

use crate::common;

use common::*;
use vigie_analyze::findings::{Finding, Status};
use vigie_analyze::rules::{iso_week, local_date, Evaluation};

const H: i64 = 3_600_000_000;

fn find<'a>(e: &'a Evaluation, rule: &str, group: &str, period: &str) -> &'a Finding {
    e.findings.iter().find(|f| f.rule == rule && f.group == group && f.period == period).unwrap_or_else(
        || {
            panic!(
                "no finding {rule} {group} {period} in {:#?}",
                e.findings.iter().map(|f| (&f.rule, &f.group, &f.period)).collect::<Vec<_>>()
            )
        },
    )
}

/// `HH:MM:SS` from seconds after midnight.
fn hms(s: u32) -> String {
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// A shift pattern: start, scans every `step` seconds strictly between
/// `from` and `to`, end; plus extra (time, kind) events.
fn pattern(start: u32, end: u32, step: u32, extra: &[(u32, &'static str)]) -> Vec<(String, &'static str)> {
    let mut p = vec![(hms(start), "shift_start")];
    let mut t = start + step;
    while t < end {
        p.push((hms(t), "scan"));
        t += step;
    }
    p.push((hms(end), "shift_end"));
    for (t, k) in extra {
        p.push((hms(*t), *k));
    }
    p
}

/// The pattern for five workers, on day `day` of March.
fn five<'a>(names: &'a [String], p: &'a [(String, &'static str)], day: u32) -> Vec<E<'a>> {
    let mut out = Vec::new();
    for n in names.iter().take(5) {
        for (t, k) in p {
            out.push(ev(n, t, k).day(day));
        }
    }
    out
}

const T8: u32 = 8 * 3600;

#[test]
fn break_after_6h_edges() {
    let names = names(5);
    let policy = policy_k5();
    let mut eu = vigie_analyze::policy::Policy::profile("eu").unwrap();
    eu.k = 5;
    // 08:00:00 to 14:00:00 with a scan every 10 min: one stretch of exactly
    // 6 h. Under French law the break is due once work "reaches" 6 h
    // (L3121-16): each of the 5 shifts breaches. Under the Directive, only
    // a day "longer than" 6 h (art. 4): none.
    let p = pattern(T8, T8 + 6 * 3600, 600, &[]);
    let e = evaluate(&five(&names, &p, 2), &policy);
    let f = find(&e, "worktime.break_after_6h", "site", "2026-W10");
    assert_eq!((f.observed, f.status, f.population), (Some(5.0), Status::Breach, 5));
    assert!(f.explanation.contains("at least 6 h"), "{}", f.explanation);
    let e = evaluate(&five(&names, &p, 2), &eu);
    let f = find(&e, "worktime.break_after_6h", "site", "2026-W10");
    assert_eq!((f.observed, f.status), (Some(0.0), Status::Ok));
    // Ending at 13:59:59, 1 s short of 6 h: none under either.
    let p = pattern(T8, T8 + 6 * 3600 - 1, 600, &[]);
    let e = evaluate(&five(&names, &p, 2), &policy);
    assert_eq!(find(&e, "worktime.break_after_6h", "site", "2026-W10").observed, Some(0.0));
    // Ending at 14:00:01: 6 h 00 min 01 s, each of the 5 days is over
    // under both: a breach of the French text; under the Directive, which
    // leaves the break's length to national law, a question.
    let p = pattern(T8, T8 + 6 * 3600 + 1, 600, &[]);
    for (pol, want) in [(&policy, Status::Breach), (&eu, Status::Attention)] {
        let e = evaluate(&five(&names, &p, 2), pol);
        let f = find(&e, "worktime.break_after_6h", "site", "2026-W10");
        assert_eq!((f.observed, f.status), (Some(5.0), want), "{}", pol.name);
    }
    let e = evaluate(&five(&names, &p, 2), &policy);
    let f = find(&e, "worktime.break_after_6h", "site", "2026-W10");
    assert_eq!(f.sources, vec!["C. trav., art. L. 3121-16"]);
}

#[test]
fn a_gap_of_20_min_is_a_break_and_19_min_59_is_not() {
    let names = names(5);
    let policy = policy_k5();
    // 08:00-15:00; scans every 10 min to 11:00, then from `resume` every
    // 10 min. resume = 11:20:00: gap of 20 min, stretches 3 h and 3 h 40:
    // no breach. resume = 11:19:59: no break, one 7 h stretch: breach.
    for (resume, want) in [(11 * 3600 + 1200, 0.0), (11 * 3600 + 1199, 5.0)] {
        let mut p = vec![(hms(T8), "shift_start")];
        let mut t = T8 + 600;
        while t <= 11 * 3600 {
            p.push((hms(t), "scan"));
            t += 600;
        }
        let mut t = resume;
        while t < 15 * 3600 {
            p.push((hms(t), "scan"));
            t += 600;
        }
        p.push((hms(15 * 3600), "shift_end"));
        let e = evaluate(&five(&names, &p, 2), &policy);
        assert_eq!(
            find(&e, "worktime.break_after_6h", "site", "2026-W10").observed,
            Some(want),
            "resume {resume}"
        );
    }
}

#[test]
fn a_declared_break_counts_only_from_20_min() {
    let policy = policy_k5();
    // 08:00-15:00, scans every 10 min except during a declared break; a
    // scan at 11:05 inside the break is set aside.
    for (len, want_longest_h) in [(20 * 60, 3.5), (15 * 60, 7.0)] {
        let b0 = 11 * 3600;
        let mut p = vec![(hms(T8), "shift_start".to_string())];
        let mut t = T8 + 600;
        while t < 15 * 3600 {
            if !(b0..=b0 + len).contains(&t) {
                p.push((hms(t), "scan".into()));
            }
            t += 600;
        }
        p.push((hms(b0), "break_start".into()));
        p.push((hms(b0 + 300), "scan".into()));
        p.push((hms(b0 + len), "break_end".into()));
        p.push((hms(15 * 3600), "shift_end".into()));
        let events: Vec<E> = p.iter().map(|(t, k)| ev("w", t, k)).collect();
        let s = shifts_of(&events, &policy);
        assert_eq!(s.len(), 1);
        // 20 min: stretches 08:00-11:00 (3 h) and 11:20-15:00 (3 h 40): the
        // longest is 3 h 40 min... with a break of 20 min; with 15 min the
        // break does not cut: 7 h.
        let longest = s[0].longest_stretch_us as f64 / H as f64;
        let want = if len == 1200 { 3.0 + 40.0 / 60.0 } else { want_longest_h };
        assert!((longest - want).abs() < 1e-9, "{len}: {longest}");
        // Effective time: 7 h minus the declared break.
        assert_eq!(s[0].effective_us(), 7 * H - i64::from(len) * 1_000_000);
    }
}

#[test]
fn a_shift_over_midnight_and_a_week_boundary_belongs_to_its_start() {
    let policy = policy_k5();
    // Sunday 8 March 22:00 (+01:00) to Monday 9 March 05:00, a declared break
    // 01:00-01:30: one shift, day 8 March, ISO week 2026-W10, effective
    // 7 h - 30 min = 6.5 h.
    let mut events = vec![ev("w", "22:00:00", "shift_start").day(8)];
    let times: Vec<(u32, String)> =
        (1..=41).map(|i| 22 * 3600 + i * 600).map(|s| (s, hms(s % 86_400))).collect();
    for (s, t) in &times {
        let day = if *s >= 86_400 { 9 } else { 8 };
        let in_break = (86_400 + 3600..=86_400 + 5400).contains(s);
        if !in_break {
            events.push(ev("w", t, "scan").day(day));
        }
    }
    events.push(ev("w", "01:00:00", "break_start").day(9));
    events.push(ev("w", "01:30:00", "break_end").day(9));
    events.push(ev("w", "05:00:00", "shift_end").day(9));
    let s = shifts_of(&events, &policy);
    assert_eq!(s.len(), 1);
    assert_eq!(iso_week(s[0].local_start_us()), "2026-W10");
    assert_eq!(local_date(s[0].local_start_us()).to_string(), "2026-03-08");
    assert_eq!(s[0].effective_us(), 6 * H + H / 2);
    assert_eq!(s[0].break_us, H / 2);
}

#[test]
fn inferred_shifts_split_on_a_gap_of_3_h() {
    let policy = policy_k5();
    // Scans only, every 10 min 08:00-12:00, then again from `resume` to
    // 18:00. A 3 h gap (resume 15:00) splits: 2 shifts; 2 h 59 min 59 s
    // (resume 14:59:59) does not: 1 shift of 10 h.
    for (resume, shifts) in [(15 * 3600, 2), (15 * 3600 - 1, 1)] {
        let mut events = Vec::new();
        let mut times = Vec::new();
        let mut t = T8;
        while t <= 12 * 3600 {
            times.push(hms(t));
            t += 600;
        }
        let mut t = resume;
        while t <= 18 * 3600 {
            times.push(hms(t));
            t += 600;
        }
        for t in &times {
            events.push(ev("w", t, "scan"));
        }
        let s = shifts_of(&events, &policy);
        assert_eq!(s.len(), shifts, "resume {resume}");
        if shifts == 2 {
            assert_eq!((s[0].span_us(), s[0].scans), (4 * H, 25));
            // A gap of 3 h is a break too: the stretch is the second run.
            assert_eq!(s[1].span_us(), 3 * H);
        } else {
            assert_eq!(s[0].span_us(), 10 * H - 1_000_000);
        }
    }
}

#[test]
fn days_and_weeks_are_taken_in_each_timestamp_offset() {
    let policy = policy_k5();
    // The same instant, 2026-03-08T23:30:00Z, is Sunday (W10) in UTC and
    // Monday 00:30 (W11) at +01:00.
    for (day, time, week, date) in
        [(8, "23:30:00Z", "2026-W10", "2026-03-08"), (9, "00:30:00+01:00", "2026-W11", "2026-03-09")]
    {
        let events = vec![ev("w", time, "shift_start").day(day), ev("w", time, "scan").day(day)];
        let s = shifts_of(&events, &policy);
        assert_eq!(iso_week(s[0].local_start_us()), week);
        assert_eq!(local_date(s[0].local_start_us()).to_string(), date);
    }
}

#[test]
fn daily_rest_of_exactly_11_h_is_kept() {
    let names = names(5);
    let policy = policy_k5();
    // Shift A: Monday 08:00-16:00 (break 12:00-12:30). Shift B: Tuesday from
    // `b` for 4 h. b = 03:00: rest 16:00 -> 03:00 = 11 h exactly: no breach.
    // b = 02:59:59: 11 h minus 1 s: one pair per worker, in B's week (W10).
    for (b, want) in [(3 * 3600, 0.0), (3 * 3600 - 1, 5.0)] {
        let a = pattern(T8, 16 * 3600, 600, &[(12 * 3600, "break_start"), (12 * 3600 + 1800, "break_end")]);
        let bp = pattern(b, b + 4 * 3600, 600, &[]);
        let mut events = five(&names, &a, 2);
        events.extend(five(&names, &bp, 3));
        let e = evaluate(&events, &policy);
        let f = find(&e, "worktime.daily_rest_11h", "site", "2026-W10");
        assert_eq!(f.observed, Some(want), "b = {b}");
        assert_eq!(f.status, if want > 0.0 { Status::Breach } else { Status::Ok });
    }
}

#[test]
fn the_daily_limits_count_per_working_day_not_per_shift() {
    let names = names(5);
    let policy = policy_k5();
    // Two shifts on Monday, 06:00-12:00 and 13:00-18:00 (each with its
    // markers): 6 h + 5 h = 11 h of work that day > 10 h, though neither
    // shift is over 10 h: one worker-day each, 5 in all. The 1 h between
    // them is a lunch clock-out, not a daily rest of less than 11 h.
    let (a, b) = (pattern(6 * 3600, 12 * 3600, 600, &[]), pattern(13 * 3600, 18 * 3600, 600, &[]));
    let mut events = five(&names, &a, 2);
    events.extend(five(&names, &b, 2));
    let e = evaluate(&events, &policy);
    let f = find(&e, "worktime.daily_max_10h", "site", "2026-W10");
    assert_eq!((f.observed, f.status, f.unit.as_str()), (Some(5.0), Status::Breach, "worker-days"));
    assert!(f.explanation.contains("5 of 5 worker-days"), "{}", f.explanation);
    assert_eq!(find(&e, "worktime.daily_rest_11h", "site", "2026-W10").observed, Some(0.0));
    // A lunch clock-out (09:00-12:00, 13:00-17:00): 7 h, no breach at all.
    let (a, b) = (pattern(9 * 3600, 12 * 3600, 600, &[]), pattern(13 * 3600, 17 * 3600, 600, &[]));
    let mut events = five(&names, &a, 2);
    events.extend(five(&names, &b, 2));
    let e = evaluate(&events, &policy);
    assert_eq!(find(&e, "worktime.daily_max_10h", "site", "2026-W10").observed, Some(0.0));
    assert_eq!(find(&e, "worktime.daily_rest_11h", "site", "2026-W10").observed, Some(0.0));
}

#[test]
fn a_night_shift_belongs_to_the_day_it_starts() {
    let names = names(5);
    let policy = policy_k5();
    // Monday 22:00 to Tuesday 06:00, then Tuesday 14:00-22:00: the night shift is Monday's working day, so the
    // 8 h between them is a daily rest of less than 11 h (one per worker).
    let night: Vec<(u32, String, &str)> = (0..=48)
        .map(|i| {
            let s = 22 * 3600 + i * 600;
            let kind = match i {
                0 => "shift_start",
                48 => "shift_end",
                _ => "scan",
            };
            (if s >= 86_400 { 3 } else { 2 }, hms(s % 86_400), kind)
        })
        .collect();
    let mut events = Vec::new();
    for n in &names {
        events.extend(night.iter().map(|(d, t, k)| ev(n, t, k).day(*d)));
    }
    let day = pattern(14 * 3600, 22 * 3600, 600, &[]);
    events.extend(five(&names, &day, 3));
    let e = evaluate(&events, &policy);
    assert_eq!(find(&e, "worktime.daily_rest_11h", "site", "2026-W10").observed, Some(5.0));
    // Each working day has 8 h: no daily maximum crossed.
    assert_eq!(find(&e, "worktime.daily_max_10h", "site", "2026-W10").observed, Some(0.0));
}

#[test]
fn daily_and_weekly_maxima() {
    let names = names(5);
    let policy = policy_k5();
    let with_break = |end: u32| {
        let mut p =
            pattern(6 * 3600, end, 600, &[(11 * 3600, "break_start"), (11 * 3600 + 1800, "break_end")]);
        // No scan inside the declared break.
        p.retain(|(t, k)| *k != "scan" || !(t.as_str() > "11:00:00" && t.as_str() < "11:30:00"));
        p
    };
    // 06:00-17:00 minus a 30 min declared break = 10.5 h > 10 h: 5 shifts.
    let p = with_break(17 * 3600);
    let e = evaluate(&five(&names, &p, 2), &policy);
    assert_eq!(find(&e, "worktime.daily_max_10h", "site", "2026-W10").observed, Some(5.0));
    // 06:00-16:30 minus 30 min = 10 h exactly: none.
    let p = with_break(16 * 3600 + 1800);
    let e = evaluate(&five(&names, &p, 2), &policy);
    assert_eq!(find(&e, "worktime.daily_max_10h", "site", "2026-W10").observed, Some(0.0));
    // That 10 h day on Monday to Friday (2-6 March): 50 h > 48 h, one
    // worker-week per worker = 5; on Monday to Thursday, 40 h: none.
    for (days, want) in [(2..=6, 5.0), (2..=5, 0.0)] {
        let mut events = Vec::new();
        for d in days {
            events.extend(five(&names, &p, d));
        }
        let e = evaluate(&events, &policy);
        let f = find(&e, "worktime.weekly_max_48h", "site", "2026-W10");
        assert_eq!(f.observed, Some(want));
        assert_eq!(f.unit, "worker-weeks");
    }
}

#[test]
fn pause_and_speed_rules() {
    let names = names(5);
    let policy = policy_k5();
    // Five workers, 08:00-12:00, scans every 10 min, declared break
    // 10:00-10:20 with no scan inside.
    let base = {
        let mut p =
            pattern(T8, 12 * 3600, 600, &[(10 * 3600, "break_start"), (10 * 3600 + 1200, "break_end")]);
        p.retain(|(t, k)| *k != "scan" || !(t.as_str() > "10:00:00" && t.as_str() < "10:20:00"));
        p
    };
    let mut events = five(&names, &base, 2);
    // w0: an idle flag inside the break (threshold 120 s) and a
    // justification request outside it.
    events.push(ev("w0", "10:05:00", "idle_flag").extra("\"threshold_s\":120"));
    events.push(ev("w0", "11:05:00", "justification_request").extra("\"gap_s\":300"));
    // w1: an idle flag with no threshold, 180 s after its last scan (11:00).
    events.push(ev("w1", "11:03:00", "idle_flag"));
    // w2: a justification request; w3: two speed flags at 1.25 s.
    events.push(ev("w2", "11:35:00", "justification_request"));
    events.push(ev("w3", "09:00:00", "speed_flag").extra("\"threshold_s\":1.25"));
    events.push(ev("w3", "09:10:00", "speed_flag").extra("\"threshold_s\":1.25"));
    let e = evaluate(&events, &policy);
    // Smallest idle threshold: min(120, 180) = 120 s < 600 s: attention.
    let f = find(&e, "pause.idle_flag_threshold", "site", "all");
    assert_eq!((f.observed, f.status), (Some(120.0), Status::Attention));
    // One flag inside a declared break: attention (no ruling makes it a
    // breach in itself).
    let f = find(&e, "pause.flags_during_breaks", "site", "all");
    assert_eq!((f.observed, f.status), (Some(1.0), Status::Attention));
    // Shifts with a justification request: w0 and w2, 2 of 5 = 0.4.
    let f = find(&e, "pause.justification_burden", "site", "all");
    assert_eq!((f.observed, f.status), (Some(0.4), Status::Attention));
    // Two speed flags; the threshold reported is 1.25 s.
    let f = find(&e, "speed.speed_flags", "site", "all");
    assert_eq!((f.observed, f.status), (Some(2.0), Status::Attention));
    assert!(f.explanation.contains("1.25 s"), "{}", f.explanation);
}

#[test]
fn no_idle_flag_means_nothing_to_assess() {
    let names = names(5);
    let p = pattern(T8, 12 * 3600, 600, &[]);
    let e = evaluate(&five(&names, &p, 2), &policy_k5());
    let f = find(&e, "pause.idle_flag_threshold", "site", "all");
    assert_eq!((f.observed, f.status), (None, Status::Ok));
}

#[test]
fn intensification_finds_the_date_the_pace_rose() {
    let names = names(5);
    let policy = policy_k5();
    // One shift a day per worker: 08:00-09:00 with one scan of `q` units
    // at 08:30, so units per hour = q. Monday 2 to Friday 6 March: 100;
    // Monday 9 to Friday 13 March: 115. The daily medians step from 100
    // to 115 on 9 March: +0.15, and every resample of the two flat
    // segments gives 0.15, so the interval is [15 %, 15 %]: attention.
    let shift = |q: &'static str| {
        vec![
            ("08:00:00".to_string(), "shift_start", ""),
            ("08:30:00".to_string(), "scan", q),
            ("09:00:00".to_string(), "shift_end", ""),
        ]
    };
    let (a, b) = (shift("\"quantity\":100"), shift("\"quantity\":115"));
    let mut events = Vec::new();
    for (day, p) in
        [(2, &a), (3, &a), (4, &a), (5, &a), (6, &a), (9, &b), (10, &b), (11, &b), (12, &b), (13, &b)]
    {
        for n in &names {
            for (t, k, x) in p {
                events.push(ev(n, t, k).day(day).extra(x));
            }
        }
    }
    let e = evaluate(&events, &policy);
    let f = find(&e, "cadence.intensification", "site", "all");
    assert_eq!((f.observed, f.status), (Some(0.15), Status::Attention));
    assert!(
        f.explanation.contains("From 2026-03-09") && f.explanation.contains("15 % to 15 %"),
        "{}",
        f.explanation
    );
    // The same ten days at 100: no change, nothing to report.
    let flat: Vec<E> = events
        .iter()
        .cloned()
        .map(|e| if e.day >= 9 && e.kind == "scan" { e.extra("\"quantity\":100") } else { e })
        .collect();
    let e = evaluate(&flat, &policy);
    let f = find(&e, "cadence.intensification", "site", "all");
    assert_eq!((f.observed, f.status), (Some(0.0), Status::Ok));
    // Five days cannot hold two segments of three.
    let five: Vec<E> = events.into_iter().filter(|e| e.day <= 6).collect();
    let e = evaluate(&five, &policy);
    let f = find(&e, "cadence.intensification", "site", "all");
    assert_eq!((f.observed, f.status), (None, Status::InsufficientData));
}

#[test]
fn rush_share_histogram_and_gap_classes() {
    let names = names(5);
    let policy = policy_k5();
    // Scans at 08:00:00, :01, :02.5, :03: intervals 1.0, 1.5, 0.5 s; 2 of 3
    // under 1.25 s = 0.6667.
    let mut events = Vec::new();
    for n in &names {
        events.push(ev(n, "07:59:00", "shift_start"));
        for t in ["08:00:00", "08:00:01", "08:00:02.5", "08:00:03"] {
            events.push(ev(n, t, "scan"));
        }
        events.push(ev(n, "08:00:10", "shift_end"));
    }
    let e = evaluate(&events, &policy);
    let f = find(&e, "cadence.rush_share", "site", "all");
    assert_eq!((f.observed, f.status), (Some(0.6667), Status::Attention));
    let site = e.aggregates.iter().find(|a| a.group == "site").unwrap();
    // Buckets: 0.5 -> [0, 0.5], 1.0 -> (0.5, 1], 1.5 -> (1.25, 2]; x5.
    assert_eq!(&site.hist[..4], &[5, 5, 0, 5]);
    assert_eq!(site.hist.iter().sum::<u64>(), 15);

    // Gaps between activity events: 30 s (micro), 120 s (latency), 660 s
    // (idle), 1590 s (break), 10 s (micro).
    let mut events = Vec::new();
    for n in &names {
        for (t, k) in [
            ("08:00:00", "shift_start"),
            ("08:00:30", "scan"),
            ("08:02:30", "scan"),
            ("08:13:30", "scan"),
            ("08:40:00", "scan"),
            ("08:40:10", "shift_end"),
        ] {
            events.push(ev(n, t, k));
        }
    }
    let e = evaluate(&events, &policy);
    let site = e.aggregates.iter().find(|a| a.group == "site").unwrap();
    assert_eq!(site.gaps, [10, 5, 5, 5]);
    assert_eq!((site.workers, site.shifts, site.units), (5, 5, 20));
}

#[test]
fn retention_and_load() {
    let names = names(5);
    let policy = policy_k5();
    // First event 2026-03-02T07:00Z, last 2026-04-03T07:00Z: 32 days > 30.
    let mut events = Vec::new();
    for n in &names {
        events.push(ev(n, "2026-03-02T08:00:00+01:00", "scan"));
        events.push(ev(n, "2026-04-03T09:00:00+02:00", "scan"));
    }
    let e = evaluate(&events, &policy);
    let f = find(&e, "retention.individual_data", "site", "all");
    assert_eq!((f.observed, f.status), (Some(32.0), Status::Attention));
    // No weight in the input: no load finding at all.
    assert!(!e.findings.iter().any(|f| f.rule == "load.daily_mass"));

    // Ten scans of 750 kg and one of `last`: 7500 + 100 = 7600 kg > 7500 in
    // each of 5 shifts; with 7500 + 0, none.
    let times: Vec<String> = (0..11).map(|i| hms(T8 + i * 600)).collect();
    for (last, want) in [("100", 5.0), ("0", 0.0)] {
        let mut events = Vec::new();
        let w = format!("\"weight_kg\":{last}");
        for n in &names {
            for t in &times[..10] {
                events.push(ev(n, t, "scan").extra("\"weight_kg\":750"));
            }
            events.push(ev(n, &times[10], "scan").extra(&w));
        }
        let e = evaluate(&events, &policy);
        assert_eq!(find(&e, "load.daily_mass", "site", "all").observed, Some(want));
    }
}

#[test]
fn small_groups_are_suppressed_with_their_complement() {
    let policy = policy_k5();
    let names = names(11);
    // Team a: 7 workers, team b: 4 (< k = 5). Hiding b alone would let it be
    // computed as site - a, so a is hidden too; in week W10 and in "all":
    // 4 hidden group-periods.
    let p = pattern(T8, 12 * 3600, 600, &[]);
    let mut events = Vec::new();
    for (i, n) in names.iter().enumerate() {
        let team = if i < 7 { "a" } else { "b" };
        for (t, k) in &p {
            events.push(ev(n, t, k).team(team));
        }
    }
    let e = evaluate(&events, &policy);
    assert!(e.findings.iter().all(|f| f.group == "site"), "no team is published");
    assert!(e.aggregates.iter().all(|a| a.group == "site"));
    assert_eq!(e.suppressed, 4);
    assert_eq!(find(&e, "cadence.rush_share", "site", "all").population, 11);

    // With 12 workers, 6 in each team, both teams are published.
    let names12 = common::names(12);
    let mut events12 = Vec::new();
    for (i, n) in names12.iter().enumerate() {
        let team = if i < 6 { "a" } else { "b" };
        for (t, k) in &p {
            events12.push(ev(n, t, k).team(team));
        }
    }
    let e = evaluate(&events12, &policy);
    assert_eq!(find(&e, "cadence.rush_share", "team:b", "all").population, 6);
    assert_eq!(e.suppressed, 0);
}

/// Every (group, period) published in findings or open data, besides
/// withheld `insufficient_data` findings.
fn published(e: &Evaluation) -> std::collections::BTreeSet<(String, String)> {
    let mut out: std::collections::BTreeSet<(String, String)> = e
        .findings
        .iter()
        .filter(|f| f.status != Status::InsufficientData || f.observed.is_some())
        .map(|f| (f.group.to_string(), f.period.to_string()))
        .collect();
    out.extend(e.aggregates.iter().map(|a| (a.group.to_string(), a.week.clone())));
    out
}

#[test]
fn a_zone_that_contains_a_team_and_one_more_worker_does_not_single_him_out() {
    // k = 5. Team a: w0..w4, all in zone z; w5 is in team b and zone z;
    // w6..w13 in team b and zone y. Zone z - team a = w5 alone; and
    // team a = site - team b, so hiding team a alone would not do.
    let policy = policy_k5();
    let names = names(14);
    let p = pattern(T8, 12 * 3600, 600, &[]);
    let mut events = Vec::new();
    for (i, n) in names.iter().enumerate() {
        let (team, zone) = match i {
            0..=4 => ("a", r#""zone":"z""#),
            5 => ("b", r#""zone":"z""#),
            _ => ("b", r#""zone":"y""#),
        };
        for (t, k) in &p {
            events.push(ev(n, t, k).team(team).extra(zone));
        }
    }
    let e = evaluate(&events, &policy);
    let shown = published(&e);
    let members = |g: &str| -> std::collections::BTreeSet<usize> {
        (0..14)
            .filter(|i| match g {
                "site" => true,
                "team:a" => *i <= 4,
                "team:b" => *i >= 5,
                "zone:z" => *i <= 5,
                "zone:y" => *i >= 6,
                _ => unreachable!(),
            })
            .collect()
    };
    let groups: Vec<&str> = ["site", "team:a", "team:b", "zone:z", "zone:y"]
        .into_iter()
        .filter(|g| shown.contains(&(g.to_string(), "all".to_string())))
        .collect();
    assert!(groups.contains(&"site"));
    // No two published groups differ by 1 to 4 workers.
    for a in &groups {
        for b in &groups {
            let d = members(a).symmetric_difference(&members(b)).count();
            assert!(d == 0 || d >= 5, "{a} and {b} published, {d} workers apart: {shown:?}");
        }
    }
    // No published kind leaves 1 to 4 workers when taken from the site.
    for kind in ["team:", "zone:"] {
        let covered: std::collections::BTreeSet<usize> =
            groups.iter().filter(|g| g.starts_with(kind)).flat_map(|g| members(g)).collect();
        let rest = 14 - covered.len();
        assert!(rest == 0 || rest >= 5, "site minus the published {kind} groups leaves {rest}: {shown:?}");
    }
    // Week and whole input agree (one week): the same groups in both.
    for g in &groups {
        assert!(shown.contains(&(g.to_string(), "2026-W10".to_string())), "{g} in 2026-W10");
    }
    assert!(e.suppressed >= 6, "suppressed {}", e.suppressed);
}

#[test]
fn a_short_week_is_not_the_whole_input_minus_the_others() {
    // k = 5. Twelve workers in week 10 (Monday 2 March); three of them
    // again on Monday 9 March (week 11). Week 11 (3 workers) is withheld;
    // the whole input minus week 10 would be week 11, so week 10 is
    // withheld too, and so are the two days' shift counts.
    let policy = policy_k5();
    let names = names(12);
    let p = pattern(T8, 12 * 3600, 600, &[]);
    let mut events = Vec::new();
    for (i, n) in names.iter().enumerate() {
        for (t, k) in &p {
            events.push(ev(n, t, k));
            if i < 3 {
                events.push(ev(n, t, k).day(9));
            }
        }
    }
    let e = evaluate(&events, &policy);
    let (w10, w11) = ("2026-W10", "2026-W11");
    for w in [w10, w11] {
        let f = find(&e, "worktime.daily_max_10h", "site", w);
        assert_eq!((f.status, f.observed), (Status::InsufficientData, None), "{w}");
        assert!(e.aggregates.iter().all(|a| a.week != w), "{w} in the open data");
    }
    assert!(find(&e, "worktime.daily_max_10h", "site", w10).explanation.contains("Withheld"));
    // The whole input is still published: 12 workers.
    let all = find(&e, "speed.speed_flags", "site", "all");
    assert_eq!((all.population, all.status == Status::InsufficientData), (12, false));
    assert!(e.coverage.iter().all(|d| d.shifts.is_none()), "{:?}", e.coverage);
    assert_eq!(e.coverage.len(), 2);

    // With five workers in week 11, both weeks are published.
    let mut events = Vec::new();
    for (i, n) in names.iter().enumerate() {
        for (t, k) in &p {
            events.push(ev(n, t, k));
            if i < 5 {
                events.push(ev(n, t, k).day(9));
            }
        }
    }
    let e = evaluate(&events, &policy);
    assert_eq!(find(&e, "worktime.daily_max_10h", "site", w11).observed, Some(0.0));
    assert_eq!(find(&e, "worktime.daily_max_10h", "site", w10).observed, Some(0.0));
    assert_eq!(e.coverage.iter().map(|d| d.shifts).collect::<Vec<_>>(), vec![Some(12), Some(5)]);
}

#[test]
fn a_site_under_k_gets_only_insufficient_data() {
    let names = names(4);
    let p = pattern(T8, 12 * 3600, 600, &[]);
    let mut events = Vec::new();
    for n in &names {
        for (t, k) in &p {
            events.push(ev(n, t, k));
        }
    }
    let e = evaluate(&events, &policy_k5());
    assert!(!e.findings.is_empty());
    assert!(e
        .findings
        .iter()
        .all(|f| f.status == Status::InsufficientData && f.observed.is_none() && f.group == "site"));
    assert!(e.aggregates.is_empty());
}

#[test]
fn employer_declaration() {
    let names = names(5);
    let policy = policy_k5();
    // An inactivity flag at 10:00: the first monitoring indicator (2 March).
    let p = pattern(T8, 12 * 3600, 600, &[(10 * 3600 + 1, "idle_flag")]);
    let shifts = shifts_of(&five(&names, &p, 2), &policy);
    let employer: vigie_analyze::employer::Employer = toml::from_str(
        "works_council_consulted = 2026-02-01\ndpia = false\n[retention_days]\nindividual_events = 45\naggregates = 400\n",
    )
    .unwrap();
    let e = vigie_analyze::rules::evaluate(&shifts, &policy, Some(&employer));
    // Consulted on 1 February, before the first indicator (2 March): 0, ok.
    let f = find(&e, "consultation.works_council", "site", "all");
    assert_eq!((f.observed, f.status), (Some(0.0), Status::Ok));
    // No DPIA: 1 missing, breach.
    let f = find(&e, "consultation.dpia", "site", "all");
    assert_eq!((f.observed, f.status), (Some(1.0), Status::Breach));
    // Declared 45 days of individual events, longer than the 4 h of input.
    let f = find(&e, "retention.individual_data", "site", "all");
    assert_eq!((f.observed, f.status), (Some(45.0), Status::Attention));
    // Consulted after monitoring data existed: 1, breach.
    let late: vigie_analyze::employer::Employer =
        toml::from_str("works_council_consulted = 2026-03-10\ndpia = true\n").unwrap();
    let e = vigie_analyze::rules::evaluate(&shifts, &policy, Some(&late));
    assert_eq!(find(&e, "consultation.works_council", "site", "all").observed, Some(1.0));
    assert_eq!(find(&e, "consultation.dpia", "site", "all").status, Status::Ok);
    // A declaration silent on the DPIA: insufficient data, not a breach.
    let silent: vigie_analyze::employer::Employer =
        toml::from_str("works_council_consulted = 2026-02-01\n").unwrap();
    let e = vigie_analyze::rules::evaluate(&shifts, &policy, Some(&silent));
    let f = find(&e, "consultation.dpia", "site", "all");
    assert_eq!((f.observed, f.status), (None, Status::InsufficientData));
    // Consulted on 5 March, after the first scan (2 March) but before the
    // first indicator: scans on 2 March, the first flag on 5 March.
    let scans = pattern(T8, 12 * 3600, 600, &[]);
    let mut events = five(&names, &scans, 2);
    events.extend(five(&names, &p, 5));
    let shifts2 = shifts_of(&events, &policy);
    let mid: vigie_analyze::employer::Employer =
        toml::from_str("works_council_consulted = 2026-03-05\ndpia = true\n").unwrap();
    let e = vigie_analyze::rules::evaluate(&shifts2, &policy, Some(&mid));
    assert_eq!(find(&e, "consultation.works_council", "site", "all").observed, Some(0.0));
    // Without a declaration, neither rule is evaluated.
    let e = vigie_analyze::rules::evaluate(&shifts, &policy, None);
    assert!(!e.findings.iter().any(|f| f.rule.starts_with("consultation.")));
}

#[test]
fn california_meal_and_rest_periods() {
    let names = names(5);
    let mut policy = vigie_analyze::policy::Policy::profile("us-ca").unwrap();
    policy.k = 5;
    // 08:00-14:00, a scan every 5 min, no pause: 6 h worked, no meal
    // period (breach) and 0 of the 2 breaks due (1 rest + 1 meal): breach.
    let p = pattern(T8, 14 * 3600, 300, &[]);
    let e = evaluate(&five(&names, &p, 2), &policy);
    assert_eq!(find(&e, "worktime.ca_meal_period", "site", "2026-W10").observed, Some(5.0));
    assert_eq!(find(&e, "worktime.ca_rest_period", "site", "2026-W10").observed, Some(5.0));
    // 08:00-14:30 with a declared 10 min rest at 10:00 and a 30 min meal at
    // 12:00 (4 h after the start): 5 h 50 worked; the meal begins within 5
    // h and 2 breaks of 10 min or more cover the 2 due: no breach.
    let mut p = pattern(
        T8,
        14 * 3600 + 1800,
        300,
        &[
            (10 * 3600, "break_start"),
            (10 * 3600 + 600, "break_end"),
            (12 * 3600, "break_start"),
            (12 * 3600 + 1800, "break_end"),
        ],
    );
    p.retain(|(t, k)| {
        *k != "scan"
            || !((t.as_str() > "10:00:00" && t.as_str() < "10:10:00")
                || (t.as_str() > "12:00:00" && t.as_str() < "12:30:00"))
    });
    let e = evaluate(&five(&names, &p, 2), &policy);
    assert_eq!(find(&e, "worktime.ca_meal_period", "site", "2026-W10").observed, Some(0.0));
    assert_eq!(find(&e, "worktime.ca_rest_period", "site", "2026-W10").observed, Some(0.0));
    // The fr profile has no California rules.
    let e = evaluate(&five(&names, &p, 2), &policy_k5());
    assert!(!e.findings.iter().any(|f| f.rule.starts_with("worktime.ca_")));
}

#[test]
fn open_data_row_by_hand() {
    let names = names(5);
    let policy = policy_k5();
    // Worker i: 08:00-09:00 with one scan of 100 + 10 i units: units per
    // hour 100, 110, 120, 130, 140. Linear quantiles: p10 at rank 0.4 ->
    // 104, p50 -> 120, p90 at rank 3.6 -> 136. Effective hours 5 x 1 = 5.
    let qty: Vec<String> = (0..5).map(|i| format!("\"quantity\":{}", 100 + 10 * i)).collect();
    let mut events = Vec::new();
    for (i, n) in names.iter().enumerate() {
        events.push(ev(n, "08:00:00", "shift_start"));
        events.push(ev(n, "08:30:00", "scan").extra(&qty[i]));
        events.push(ev(n, "09:00:00", "shift_end"));
    }
    // One idle flag (w0), two speed flags (w1), one justification (w2).
    events.push(ev("w0", "08:40:00", "idle_flag").extra("\"threshold_s\":600"));
    events.push(ev("w1", "08:30:00", "speed_flag"));
    events.push(ev("w1", "08:30:01", "speed_flag"));
    events.push(ev("w2", "08:45:00", "justification_request"));
    // And one justification about a gap of 200 s (w3), one about 30 s
    // (w4), and an idle flag at 120 s (w4): a latency threshold.
    events.push(ev("w3", "08:50:00", "justification_request").extra("\"gap_s\":200"));
    events.push(ev("w4", "08:50:00", "justification_request").extra("\"gap_s\":30"));
    events.push(ev("w4", "08:55:00", "idle_flag").extra("\"threshold_s\":120"));
    let e = evaluate(&events, &policy);
    let a = e.aggregates.iter().find(|a| a.group == "site").unwrap();
    assert_eq!((a.site.as_str(), a.week.as_str()), ("s1", "2026-W10"));
    assert_eq!((a.workers, a.shifts, a.units), (5, 5, 600));
    assert_eq!(a.effective_hours, 5.0);
    assert_eq!((a.uph_p10, a.uph_p50, a.uph_p90), (Some(104.0), Some(120.0), Some(136.0)));
    assert_eq!((a.idle_flags, a.speed_flags, a.justification_requests), (2, 2, 3));
    // Requests by their gap: under 60 s, 60-180, 180-300, 300-600, 600
    // and over, not given. One idle flag at a threshold of 1-10 minutes.
    assert_eq!(a.justify_gaps, [1, 0, 1, 0, 0, 1]);
    assert_eq!(a.latency_idle_flags, 1);
    // One scan per shift: no interval between scans.
    assert_eq!(a.hist.iter().sum::<u64>(), 0);
    // Gaps: start -> scan 30 min (break), scan -> end 30 min (break).
    assert_eq!(a.gaps, [0, 0, 0, 10]);
}

// The rule catalogue round-trips: `vigie rules` lists every rule each
// profile evaluates, and docs/metrics.md carries its table.

#[test]
fn docs_metrics_carries_the_catalogue_table() {
    let out = run(&["rules"]);
    assert!(out.status.success());
    let table = String::from_utf8(out.stdout).unwrap();
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/metrics.md")).unwrap();
    let (_, rest) = doc.split_once("<!-- rules:begin -->\n").expect("begin marker");
    let (block, _) = rest.split_once("<!-- rules:end -->").expect("end marker");
    assert_eq!(
        block, table,
        "docs/metrics.md is stale: paste `target/release/vigie rules` between the markers"
    );
}

#[test]
fn rules_json_lists_every_rule_each_profile_evaluates() {
    for profile in ["fr", "eu", "de", "us-ca"] {
        let out = run(&["rules", "--profile", profile, "--format", "json"]);
        assert!(out.status.success(), "{profile}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let listed: Vec<&str> =
            v["rules"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
        let policy = vigie_analyze::policy::Policy::profile(profile).unwrap();
        let evaluated: Vec<&str> = policy.rules.keys().map(String::as_str).collect();
        let mut sorted = listed.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, evaluated, "{profile}");
        for r in v["rules"].as_array().unwrap() {
            let id = r["id"].as_str().unwrap();
            let setting = &r["setting"];
            assert_eq!(setting["enabled"], policy.rules[id].enabled, "{profile} {id}");
            assert!(!r["name"]["fr"].as_str().unwrap().is_empty(), "{profile} {id}");
            assert!(!setting["sources"].as_array().unwrap().is_empty(), "{profile} {id}");
        }
    }
    let out = run(&["rules", "--profile", "xx"]);
    assert_eq!(out.status.code(), Some(2));
    let whole: serde_json::Value =
        serde_json::from_slice(&run(&["rules", "--format", "json"]).stdout).unwrap();
    assert_eq!(whole["profile"].as_array().unwrap().len(), 4);
}
