//! Voice pacing: how much of the working time the headset had already
//! dictated the next task, and how the pace drifts within a shift.

use super::{quantile, round, Ctx, Emit, Outcome, RuleId};
use crate::catalogue::facts;
use crate::shifts::{Shift, PROMPT_BOUNDS_S};

/// The `q` quantile of counts in the buckets of `PROMPT_BOUNDS_S`, by
/// linear interpolation inside the bucket that holds it (the open last
/// bucket gives its lower bound).
pub(crate) fn bucket_quantile(counts: &[u64], q: f64) -> Option<f64> {
    let n: u64 = counts.iter().sum();
    if n == 0 {
        return None;
    }
    let rank = q * n as f64;
    let mut below = 0u64;
    for (i, c) in counts.iter().enumerate() {
        let lo = if i == 0 { 0.0 } else { PROMPT_BOUNDS_S[i - 1] };
        if *c > 0 && (below + c) as f64 >= rank {
            return Some(match PROMPT_BOUNDS_S.get(i) {
                Some(hi) => lo + (hi - lo) * ((rank - below as f64) / *c as f64).clamp(0.0, 1.0),
                None => lo,
            });
        }
        below += c;
    }
    None
}

/// A shift's units per hour in its last hour over its first, minus 1, for
/// shifts of 2 hours or more with units in their first hour.
pub(crate) fn drift(s: &Shift) -> Option<f64> {
    (s.span_us() >= 2 * 3_600_000_000 && s.units_first_hour > 0)
        .then(|| s.units_last_hour as f64 / s.units_first_hour as f64 - 1.0)
}

pub(crate) fn evaluate(ctx: &Ctx, emit: &mut Emit) {
    ctx.whole(emit, RuleId::PaceSetBySystem, |_, members| {
        let prompts: u64 = members.iter().map(|r| r.s.prompts).sum();
        if prompts == 0 {
            return Some(Outcome::Nothing(facts("none")));
        }
        let voiced: Vec<&Shift> = members.iter().map(|r| r.s).filter(|s| s.prompts > 0).collect();
        let effective: i64 = voiced.iter().map(|s| s.effective_us()).sum();
        let dictated: i64 = voiced.iter().map(|s| s.dictated_us).sum();
        let mut conf = [0u64; PROMPT_BOUNDS_S.len() + 1];
        for s in &voiced {
            for (a, b) in conf.iter_mut().zip(s.prompt_conf) {
                *a += b;
            }
        }
        let share = if effective > 0 { dictated as f64 / effective as f64 } else { 0.0 };
        let per_hour = if effective > 0 { prompts as f64 / (effective as f64 / 3.6e9) } else { 0.0 };
        let mut f = facts("share")
            .n("share", round(100.0 * share, 1))
            .n("prompts", prompts as f64)
            .n("per_hour", round(per_hour, 1));
        f = match bucket_quantile(&conf, 0.5) {
            Some(p50) => f.n("p50_s", round(p50, 1)),
            None => f.n("p50_s", f64::NAN),
        };
        Some(Outcome::Value(Some(round(share, 4)), f))
    });
    ctx.whole(emit, RuleId::WithinShiftDrift, |_, members| {
        let mut d: Vec<f64> = members.iter().filter_map(|r| drift(r.s)).collect();
        if d.is_empty() {
            return Some(Outcome::Value(None, facts("none")));
        }
        d.sort_by(f64::total_cmp);
        let m = quantile(&d, 0.5).unwrap_or(0.0);
        let case = if m < 0.0 { "fell" } else { "rose" };
        Some(Outcome::Value(
            Some(round(m.abs(), 4)),
            facts(case).n("pct", round(100.0 * m.abs(), 1)).n("shifts", d.len() as f64),
        ))
    });
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{check, run_lines, Want};
    use super::*;
    use crate::findings::Status::*;

    #[test]
    fn bucket_quantiles_interpolate_inside_their_bucket() {
        // 10 waits in [1, 2) s and 10 in [2, 3) s: the median is at the
        // top of the first bucket, 2 s; the 75th percentile halfway
        // through the second, 2.5 s.
        let mut c = [0u64; PROMPT_BOUNDS_S.len() + 1];
        c[1] = 10;
        c[2] = 10;
        assert_eq!(bucket_quantile(&c, 0.5), Some(2.0));
        assert_eq!(bucket_quantile(&c, 0.75), Some(2.5));
        assert_eq!(bucket_quantile(&[0; 13], 0.5), None);
    }

    /// Five workers, 08:00-10:00: from 08:00:10, every 30 s a prompt, then
    /// its scan 20 s later (the next prompt 10 s after that scan: not
    /// chained, over 5 s); from 09:00:00, every 30 s a prompt 2 s after
    /// the previous scan (chained), then its scan 28 s later.
    fn voiced() -> String {
        let mut out = String::new();
        let mut n = 0;
        let mut push = |w: usize, t: i64, kind: &str, extra: &str| {
            n += 1;
            let ts = chrono::DateTime::from_timestamp(1_772_434_800 + t, 0).unwrap(); // 2026-03-02 07:00Z = 08:00+01:00
            out.push_str(&format!(
                "{{\"event_id\":\"v{n}\",\"ts\":\"{}Z\",\"site\":\"s1\",\"worker\":\"w{w}\",\"kind\":\"{kind}\"{extra}}}\n",
                ts.format("%Y-%m-%dT%H:%M:%S")
            ));
        };
        for w in 0..5 {
            push(w, 0, "shift_start", "");
            // First hour: 120 prompts at 10 s + 30 k, scans 20 s later.
            for k in 0..120 {
                push(w, 10 + 30 * k, "voice_prompt", "");
                push(w, 30 + 30 * k, "scan", "");
            }
            // Second hour: the first hour's last scan is at 3600 (k = 119);
            // prompts at 3602 + 30 k, 2 s after the previous scan, scans at
            // 3630 + 30 k; 119 of them (the last scan at 7170).
            for k in 0..119 {
                push(w, 3602 + 30 * k, "voice_prompt", "");
                push(w, 3630 + 30 * k, "scan", "");
            }
            push(w, 7200, "shift_end", "");
        }
        out
    }

    #[test]
    fn the_share_of_time_already_dictated_and_the_drift() {
        // Per worker: 239 prompts; chained ones are those of the second
        // hour (2 s after a scan), 119 of 28 s: 3332 s dictated over a
        // 2 h shift (7200 s): 0.4628. Waits: 120 of 20 s, in [20, 30);
        // 119 of 28 s, the same bucket: the median interpolates inside
        // [20, 30) at rank 119.5 of 239: 20 + 10 x 119.5 / 239 = 25 s.
        // Units: first hour, scans at 30..3600 with ts < 3600: 119 (the
        // 120th is at 3600, not before); last hour, ts > 3600: 119. Drift
        // 0: ok.
        let e = run_lines("fr", &voiced(), None);
        let f =
            e.findings.iter().find(|f| f.rule == "voice.pace_set_by_system" && f.group == "site").unwrap();
        assert_eq!(f.observed, Some(0.4628), "{}", f.explanation);
        assert!(f.explanation.contains("46.3 %") && f.explanation.contains("25 s"), "{}", f.explanation);
        let d =
            e.findings.iter().find(|f| f.rule == "cadence.within_shift_drift" && f.group == "site").unwrap();
        assert_eq!((d.observed, d.status), (Some(0.0), Ok));
        // Open data, week 10: 5 x 239 prompts over 5 x 2 h: 119.5 an hour;
        // the waits' 10th and 90th percentiles interpolate at ranks 23.9
        // and 215.1 of 239 inside [20, 30): 21 and 29 s.
        let a = e.aggregates.iter().find(|a| a.group == "site").unwrap();
        assert_eq!((a.prompts, a.prompts_per_hour), (1195, Some(119.5)));
        assert_eq!(
            (a.prompt_wait_p10, a.prompt_wait_p50, a.prompt_wait_p90),
            (Some(21.0), Some(25.0), Some(29.0))
        );
        assert_eq!((a.dictated_share, a.drift_p50), (Some(0.4628), Some(0.0)));
    }

    #[test]
    fn without_prompts_nothing_to_assess() {
        check(
            "fr",
            "Mon 08:00-12:00",
            &[
                Want::site("voice.pace_set_by_system", "all", Ok, f64::NAN),
                // 08:00-12:00, a scan every 5 min: 11 before 09:00
                // (08:05..08:55) and 11 after 11:00 (11:05..11:55; 11:00
                // itself is not after it): no drift.
                Want::site("cadence.within_shift_drift", "all", Ok, 0.0),
            ],
        );
    }
}
