//! Retention of individual data: what the input itself shows, what the
//! employer declares, what the source still holds (site group only).

use super::{round, Ctx, Emit, Outcome, RuleId};
use crate::catalogue::facts;
use crate::employer::Employer;

pub(crate) fn evaluate(ctx: &Ctx, emit: &mut Emit) {
    ctx.whole(emit, RuleId::IndividualData, |key, members| {
        if key.1 != "site" {
            return None;
        }
        let from = members.iter().map(|r| r.s.start_us).min().unwrap_or(0);
        let to = members.iter().map(|r| r.s.end_us).max().unwrap_or(0);
        let span = round((to - from) as f64 / 8.64e10, 2);
        let declared = ctx.employer.and_then(Employer::individual_retention_days);
        let (mut observed, f) = match declared {
            Some(d) => (span.max(d), facts("declared").n("declared", d).n("span", span)),
            None => (span, facts("span").n("span", span)),
        };
        // What the service saw of the source (an English sentence).
        let f = match &ctx.evidence.source_retention {
            Some((days, how)) => {
                if *days > observed {
                    observed = round(*days, 2);
                }
                f.t("source", format!(" {how}"))
            }
            None => f.t("source", ""),
        };
        Some(Outcome::Value(Some(observed), f))
    });
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{check, check_with, Want};
    use crate::findings::Status::*;

    #[test]
    fn the_span_of_the_data_and_the_declared_retention() {
        // Monday 2 March 08:00 to Wednesday 4 March 12:00: 2 days and 4 h,
        // 2.17 days.
        check(
            "fr",
            "Mon 08:00-12:00 | Wed 08:00-12:00",
            &[Want::site("retention.individual_data", "all", Ok, 2.17)],
        );
        // Declared 45 days: the longer of the two, over 30.
        check_with(
            "fr",
            "Mon 08:00-12:00 | Wed 08:00-12:00",
            Some("[retention_days]\nindividual_events = 45"),
            &[Want::site("retention.individual_data", "all", Attention, 45.0)],
        );
    }
}
