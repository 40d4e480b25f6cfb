//! Pause rules: the employer's inactivity flags, flags inside declared
//! breaks, requests to justify a gap.

use super::{round, Ctx, Emit, Outcome};
use crate::catalogue::facts;

pub(crate) fn evaluate(ctx: &Ctx, emit: &mut Emit) {
    ctx.whole(emit, "pause.idle_flag_threshold", |_, members| {
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
    ctx.whole(emit, "pause.flags_during_breaks", |_, members| {
        let n: u64 = members.iter().map(|r| r.s.flags_in_breaks).sum();
        Some(Outcome::Value(Some(n as f64), facts("count").n("count", n as f64)))
    });
    ctx.whole(emit, "pause.justification_burden", |_, members| {
        let shifts = members.len() as u64;
        let with = members.iter().filter(|r| r.s.justifications > 0).count() as u64;
        let requests: u64 = members.iter().map(|r| r.s.justifications).sum();
        let share = (shifts > 0).then(|| round(with as f64 / shifts as f64, 4));
        Some(Outcome::Value(
            share,
            facts("share").n("with", with as f64).n("shifts", shifts as f64).n("requests", requests as f64),
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
            ],
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
