//! Cadence rules: the change of pace, very short intervals between scans,
//! the employer's speed flags, the load handled.

use super::{fnv, process_name, quantile, round, Ctx, Emit, Outcome, RuleId};
use crate::catalogue::facts;

pub(crate) fn evaluate(ctx: &Ctx, emit: &mut Emit) {
    let p = ctx.policy;
    ctx.whole(emit, RuleId::SpeedFlags, |_, members| {
        let n: u64 = members.iter().map(|r| r.s.speed_flags).sum();
        let min = members.iter().filter_map(|r| r.s.speed_min_s).reduce(f64::min);
        let f = match min {
            Some(t) => facts("count_threshold").n("flags", n as f64).n("threshold", round(t, 3)),
            None => facts("count").n("flags", n as f64),
        };
        Some(Outcome::Value(Some(n as f64), f))
    });

    // cadence.intensification: changes in each process's daily median
    // units per hour (changepoint.rs); the largest rise whose 95 %
    // interval excludes zero.
    let min_days = p.param(RuleId::Intensification, "min_segment_days", 3.0).max(1.0) as usize;
    ctx.whole(emit, RuleId::Intensification, |key, members| {
        let by = crate::dated::daily_pace(members);
        if by.is_empty() {
            return Some(Outcome::Value(None, facts("no_scans")));
        }
        let longest = by.values().map(std::collections::BTreeMap::len).max().unwrap_or(0);
        if longest < 2 * min_days {
            return Some(Outcome::Value(
                None,
                facts("too_short").n("days", longest as f64).n("need", (2 * min_days) as f64),
            ));
        }
        let mut detected = 0usize;
        let mut best: Option<(String, chrono::NaiveDate, crate::changepoint::Change)> = None;
        for (process, days) in by {
            let name = process_name(process);
            let dates: Vec<chrono::NaiveDate> = days.keys().copied().collect();
            let series: Vec<f64> = days.into_values().map(|d| d.uph).collect();
            // Seeded by the group and the process: the same input gives the
            // same interval on every run.
            let seed = fnv(&format!("{}|{}|{}|{name}", key.0, key.1, key.2));
            for c in crate::changepoint::changes(&series, min_days, seed) {
                detected += 1;
                if c.low > 0.0 && best.as_ref().is_none_or(|b| c.relative > b.2.relative) {
                    best = Some((name.clone(), dates[c.at], c));
                }
            }
        }
        // A change the employer declared within `min_segment_days` of the
        // one found: the finding names it.
        let near = |d: chrono::NaiveDate| {
            ctx.employer.and_then(|e| {
                e.changes
                    .iter()
                    .filter(|c| (c.date - d).num_days().unsigned_abs() <= min_days as u64)
                    .min_by_key(|c| ((c.date - d).num_days().abs(), c.date))
            })
        };
        Some(match best {
            Some((process, date, c)) => Outcome::Value(
                Some(round(c.relative, 4)),
                match near(date) {
                    Some(d) => facts("change_declared")
                        .t("declared_date", d.date.to_string())
                        .t("declared", d.description.clone()),
                    None => facts("change"),
                }
                .t("process", process)
                .t("date", date.to_string())
                .n("from_uph", round(c.before, 1))
                .n("to_uph", round(c.after, 1))
                .n("low", round(100.0 * c.low, 1))
                .n("high", round(100.0 * c.high, 1)),
            ),
            None => Outcome::Value(Some(0.0), facts("no_rise").n("changes", detected as f64)),
        })
    });

    // cadence.target_raised: the group's daily median target in force,
    // date by date; its largest rise from one level to the next.
    ctx.whole(emit, RuleId::TargetRaised, |_, members| {
        let mut by_day: std::collections::BTreeMap<chrono::NaiveDate, Vec<f64>> = Default::default();
        for r in members {
            if let Some(t) = r.s.target_uph {
                by_day.entry(r.date).or_default().push(t);
            }
        }
        if by_day.is_empty() {
            return Some(Outcome::Nothing(facts("none")));
        }
        let levels: Vec<(chrono::NaiveDate, f64)> = by_day
            .into_iter()
            .filter_map(|(d, mut v)| {
                v.sort_by(f64::total_cmp);
                quantile(&v, 0.5).map(|m| (d, m))
            })
            .collect();
        let changes: Vec<(chrono::NaiveDate, f64, f64)> = levels
            .windows(2)
            .filter(|w| (w[1].1 - w[0].1).abs() > 1e-9)
            .map(|w| (w[1].0, w[0].1, w[1].1))
            .collect();
        let (first, last) = (levels[0].1, levels[levels.len() - 1].1);
        let rise = |c: &(chrono::NaiveDate, f64, f64)| if c.1 > 0.0 { (c.2 - c.1) / c.1 } else { 0.0 };
        let best = changes.iter().filter(|c| rise(c) > 0.0).max_by(|a, b| rise(a).total_cmp(&rise(b)));
        let f = |case: &str| {
            facts(case)
                .n("changes", changes.len() as f64)
                .n("first", round(first, 1))
                .n("last", round(last, 1))
        };
        Some(match best {
            Some(c) => Outcome::Value(
                Some(round(rise(c), 4)),
                f("raised").t("date", c.0.to_string()).n("from", round(c.1, 1)).n("to", round(c.2, 1)),
            ),
            None => Outcome::Value(Some(0.0), f("not_raised")),
        })
    });

    let rush_s = p.limit(RuleId::RushShare, 1.25);
    ctx.whole(emit, RuleId::RushShare, |_, members| {
        let intervals: u64 = members.iter().map(|r| r.s.intervals).sum();
        let rush: u64 = members.iter().map(|r| r.s.rush).sum();
        Some(if intervals > 0 {
            Outcome::Value(
                Some(round(rush as f64 / intervals as f64, 4)),
                facts("share").n("rush", rush as f64).n("intervals", intervals as f64).n("limit", rush_s),
            )
        } else {
            Outcome::Value(None, facts("none"))
        })
    });

    // load.daily_mass: only when weights are present.
    let limit = p.limit(RuleId::DailyMass, 7500.0);
    ctx.whole(emit, RuleId::DailyMass, |_, members| {
        if !members.iter().any(|r| r.s.weight_kg.is_some()) {
            return None;
        }
        let heavy = members.iter().filter(|r| r.s.weight_kg.unwrap_or(0.0) > limit).count() as u64;
        Some(Outcome::Value(
            Some(heavy as f64),
            facts("count").n("count", heavy as f64).n("shifts", members.len() as f64).n("limit", limit),
        ))
    });
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{check, Want};
    use crate::findings::Status::*;

    #[test]
    fn a_target_raised_by_15_percent_on_a_date() {
        // Each of the 5 workers: a target of 100 units an hour announced
        // each day of week 10, 115 each day of week 11. The daily median
        // target goes from 100 (Friday 6 March) to 115 (Monday 9 March):
        // one change, a rise of 0.15, over the 0.10 threshold.
        let script = "Mon..Fri 08:00-12:00 target@08:01/100 | week+1 Mon..Fri 08:00-12:00 target@08:01/115";
        check("fr", script, &[Want::site("cadence.target_raised", "all", Attention, 0.15)]);
        let e = super::super::testkit::run("fr", script, None);
        let f = e.findings.iter().find(|f| f.rule == "cadence.target_raised").unwrap();
        assert!(
            f.explanation.contains("2026-03-09") && f.explanation.contains("from 100 to 115"),
            "{}",
            f.explanation
        );
        // Open data: 47 scans between 08:05 and 11:55 over 4 h is 11.75
        // units an hour: 0.1175 of 100 and 0.1022 of 115; every shift under
        // its target.
        let w = |week: &str| e.aggregates.iter().find(|a| a.group == "site" && a.week == week).unwrap();
        let (a, b) = (w("2026-W10"), w("2026-W11"));
        assert_eq!(
            (a.shifts_with_target, a.target_p50, a.achieved_over_target_p50),
            (25, Some(100.0), Some(0.1175))
        );
        assert_eq!(
            (b.target_p50, b.achieved_over_target_p50, b.shifts_under_target),
            (Some(115.0), Some(0.1022), 25)
        );
        // A target that does not move, or none at all.
        check(
            "fr",
            "Mon..Fri 08:00-12:00 target@08:01/100",
            &[Want::site("cadence.target_raised", "all", Ok, 0.0)],
        );
        check("fr", "Mon..Fri 08:00-12:00", &[Want::site("cadence.target_raised", "all", Ok, f64::NAN)]);
    }

    #[test]
    fn speed_flags_and_the_pace() {
        // Two speed flags a worker: 10, with the employer's 1.25 s. Scans
        // 5 min apart: no interval under 1.25 s (share 0). Two working
        // days only: too few to find a change (two segments of 3 days).
        check(
            "fr",
            "Mon 08:00-12:00 speed@09:00 speed@10:00 | week+1 Mon 08:00-12:00",
            &[
                Want::site("speed.speed_flags", "all", Attention, 10.0),
                Want::site("cadence.rush_share", "all", Ok, 0.0),
                Want::site("cadence.intensification", "all", InsufficientData, f64::NAN),
            ],
        );
        // Two weeks of the same pace, ten working days: no change.
        check(
            "fr",
            "Mon..Fri 08:00-12:00 | week+1 Mon..Fri 08:00-12:00",
            &[Want::site("cadence.intensification", "all", Ok, 0.0)],
        );
    }
}
