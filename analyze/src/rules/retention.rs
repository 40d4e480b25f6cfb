//! Retention of individual data: what the input itself shows, what the
//! employer declares, what the source still holds (site group only).

use super::{round, Ctx, Emit, Outcome};
use crate::catalogue::facts;
use crate::employer::Employer;

pub(crate) fn evaluate(ctx: &Ctx, emit: &mut Emit) {
    ctx.whole(emit, "retention.individual_data", |key, members| {
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
