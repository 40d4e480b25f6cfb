//! Pause rules: the employer's inactivity flags, flags inside declared
//! breaks, requests to justify a gap, flags about gaps of 1 to 10
//! minutes (latency).

use super::{round, Ctx, Emit, Outcome, RuleId};
use crate::catalogue::facts;

pub(crate) fn evaluate(ctx: &Ctx, emit: &mut Emit) {
    ctx.whole(emit, RuleId::IdleFlagThreshold, |_, members| {
        let min = members.iter().filter_map(|r| r.s.idle_min_s).reduce(f64::min);
        let flags: u64 = members.iter().map(|r| r.s.idle_flags).sum();
        Some(match min {
            Some(t) => Outcome::Value(
                Some(round(t, 2)),
                facts("min").n("flags", flags as f64).n("threshold", round(t, 2)),
            ),
            None => Outcome::Nothing(facts("none")),
        })
    });
    ctx.whole(emit, RuleId::FlagsDuringBreaks, |_, members| {
        let n: u64 = members.iter().map(|r| r.s.flags_in_breaks).sum();
        Some(Outcome::Value(Some(n as f64), facts("count").n("count", n as f64)))
    });
    ctx.whole(emit, RuleId::JustificationBurden, |_, members| {
        let shifts = members.len() as u64;
        let with = members.iter().filter(|r| r.s.justifications > 0).count() as u64;
        let requests: u64 = members.iter().map(|r| r.s.justifications).sum();
        let share = (shifts > 0).then(|| round(with as f64 / shifts as f64, 4));
        Some(Outcome::Value(
            share,
            facts("share").n("with", with as f64).n("shifts", shifts as f64).n("requests", requests as f64),
        ))
    });
    // Latency: idle flags at a threshold of 1 to 10 minutes, and requests
    // to justify a gap of 1 to 10 minutes (buckets 60-180, 180-300 and
    // 300-600 s of `JUSTIFY_GAP_BUCKETS`).
    ctx.whole(emit, RuleId::LatencyFlags, |_, members| {
        let idle: u64 = members.iter().map(|r| r.s.latency_idle_flags).sum();
        let mut g = [0u64; crate::shifts::JUSTIFY_GAP_BUCKETS.len()];
        for r in members {
            for (a, b) in g.iter_mut().zip(r.s.justify_gaps) {
                *a += b;
            }
        }
        let all: u64 = g.iter().sum();
        let requests = g[1] + g[2] + g[3];
        let known = all - g[5];
        let under10 = g[0] + g[1] + g[2] + g[3];
        let flags = idle + requests;
        let f = if known > 0 || all == 0 {
            facts("count").n("known", known as f64).n("under10", under10 as f64)
        } else {
            facts("count_unknown").n("all", all as f64)
        };
        Some(Outcome::Value(
            Some(flags as f64),
            f.n("flags", flags as f64).n("idle", idle as f64).n("requests", requests as f64),
        ))
    });
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{check, Want};
    use crate::findings::Status::*;

    #[test]
    fn no_flag_means_nothing_to_assess() {
        check(
            "fr",
            "Mon 08:00-12:00",
            &[
                Want::site("pause.idle_flag_threshold", "all", Ok, f64::NAN),
                Want::site("pause.flags_during_breaks", "all", Ok, 0.0),
                Want::site("pause.justification_burden", "all", Ok, 0.0),
                Want::site("pause.latency_flags", "all", Ok, 0.0),
            ],
        );
    }

    #[test]
    fn flags_and_requests_about_gaps_of_one_to_ten_minutes() {
        // Each of the 5 workers, Monday: idle flags at thresholds of 120 s
        // (latency) and 900 s (not); requests about gaps of 45 s (under a
        // minute: not latency), 200 s and 599 s (latency) and 600 s (10
        // minutes: not); Tuesday: a request that gives no gap. Per worker 1
        // idle flag + 2 requests = 3; for five workers 15. Requests with a
        // gap: 4 a worker, 20 in all, 15 of them under 10 minutes.
        let script = "Mon 08:00-12:00 idle@09:00/120 idle@09:30/900 justify@10:00/45 justify@10:10/200 justify@10:20/599 justify@10:30/600 | Tue 08:00-12:00 justify@09:00";
        check("fr", script, &[Want::site("pause.latency_flags", "all", Attention, 15.0)]);
        let e = super::super::testkit::run("fr", script, None);
        let f = e.findings.iter().find(|f| f.rule == "pause.latency_flags").unwrap();
        assert!(
            f.explanation.contains("5 idle flags") && f.explanation.contains("10 requests"),
            "{}",
            f.explanation
        );
        assert!(
            f.explanation.contains("Of the 20 requests whose gap was given, 15 were"),
            "{}",
            f.explanation
        );
    }

    #[test]
    fn flags_thresholds_and_requests() {
        // Each of the 5 workers: Monday with an idle flag (threshold 300 s)
        // and a request to justify, both inside a declared break; Tuesday
        // with nothing. 5 of the 10 shifts had a request: 0.5. The idle
        // threshold, 300 s, is under 600: attention. 10 flags fell inside
        // breaks (5 idle flags, 5 requests).
        check(
            "fr",
            "Mon 08:00-12:00 break 10:00-10:30 idle@10:10 justify@10:20 | Tue 08:00-12:00",
            &[
                Want::site("pause.idle_flag_threshold", "all", Attention, 300.0),
                Want::site("pause.flags_during_breaks", "all", Attention, 10.0),
                Want::site("pause.justification_burden", "all", Attention, 0.5),
            ],
        );
    }
}
