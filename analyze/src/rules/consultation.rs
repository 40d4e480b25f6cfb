//! Consultation rules, fed by the employer's declaration (site group
//! only): the works council before monitoring, the impact assessment.

use super::{local_date, Ctx, Emit, Outcome, RuleId};
use crate::catalogue::facts;

pub(crate) fn evaluate(ctx: &Ctx, emit: &mut Emit) {
    let Some(e) = ctx.employer else { return };
    ctx.whole(emit, RuleId::WorksCouncil, |key, members| {
        if key.1 != "site" {
            return None;
        }
        // Compared with the first monitoring indicator (an idle, speed or
        // justification flag), not the first scan: the consultation is due
        // before a means of monitoring is used.
        let first = members
            .iter()
            .filter(|r| r.s.idle_flags + r.s.speed_flags + r.s.justifications > 0)
            .map(|r| r.s.local_start_us())
            .min()
            .map(local_date);
        Some(match (e.works_council_consulted, first) {
            (Some(d), Some(f)) if d <= f => {
                Outcome::Value(Some(0.0), facts("before").t("date", d.to_string()).t("first", f.to_string()))
            }
            (Some(d), Some(f)) => {
                Outcome::Value(Some(1.0), facts("after").t("date", d.to_string()).t("first", f.to_string()))
            }
            (Some(d), None) => Outcome::Value(Some(0.0), facts("no_indicator").t("date", d.to_string())),
            (None, _) => Outcome::Value(Some(1.0), facts("undated")),
        })
    });
    ctx.whole(emit, RuleId::Dpia, |key, _| {
        if key.1 != "site" {
            return None;
        }
        Some(match e.dpia {
            Some(true) => Outcome::Value(Some(0.0), facts("yes")),
            Some(false) => Outcome::Value(Some(1.0), facts("no")),
            // Nothing declared: nothing to judge.
            None => Outcome::Value(None, facts("silent")),
        })
    });
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{check_with, Want};
    use crate::findings::Status::*;

    #[test]
    fn the_works_council_before_the_first_indicator_and_the_impact_assessment() {
        // The first indicator is Tuesday 3 March's idle flag (Monday has
        // none): a consultation on 3 March is in time, on 4 March late.
        let script = "Mon 08:00-12:00 | Tue 08:00-12:00 idle@09:00";
        check_with(
            "fr",
            script,
            Some("works_council_consulted = 2026-03-03\ndpia = true"),
            &[
                Want::site("consultation.works_council", "all", Ok, 0.0),
                Want::site("consultation.dpia", "all", Ok, 0.0),
            ],
        );
        check_with(
            "fr",
            script,
            Some("works_council_consulted = 2026-03-04"),
            &[
                Want::site("consultation.works_council", "all", Breach, 1.0),
                Want::site("consultation.dpia", "all", InsufficientData, f64::NAN),
            ],
        );
        // In the eu profile the Directive was not checked here: attention.
        check_with(
            "eu",
            script,
            Some("dpia = false"),
            &[
                Want::site("consultation.works_council", "all", Attention, 1.0),
                Want::site("consultation.dpia", "all", Breach, 1.0),
            ],
        );
    }
}
