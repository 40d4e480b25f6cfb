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
    use super::super::testkit::{run, Want};
    use crate::findings::Status;

    #[test]
    fn no_flag_means_nothing_to_assess() {
        let e = run("fr", "Mon 08:00-12:00", None);
        let f = e.findings.iter().find(|f| f.rule == "pause.idle_flag_threshold").expect("finding");
        assert_eq!((f.status, f.observed), (Status::Ok, None));
        let f = e.findings.iter().find(|f| f.rule == "pause.justification_burden").expect("finding");
        assert_eq!((f.status, f.observed), (Status::Ok, Some(0.0)));
        let _ = Want::site("pause.flags_during_breaks", "all", Status::Ok, 0.0);
    }
}
