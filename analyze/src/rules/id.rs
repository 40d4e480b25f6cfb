//! Rule ids as a type: every rule of the catalogue
//! (`analyze/catalogue/rules.toml`) is one [`RuleId`], so that a rule
//! family cannot name a rule that does not exist, and a rule added to the
//! catalogue without its variant (or the reverse) fails a test. On disk
//! (findings.json, policies, metrics) an id stays its written form,
//! `family.name`.

// Every public item of this module is documented (issue 15, item 9).

use std::fmt;

macro_rules! rule_ids {
    ($($variant:ident => $text:literal),+ $(,)?) => {
        /// A rule of the catalogue.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum RuleId { $(#[doc = $text] $variant),+ }

        impl RuleId {
            /// Every rule, in the catalogue's order.
            pub const ALL: &'static [RuleId] = &[$(RuleId::$variant),+];

            /// The written form, `family.name`.
            pub fn as_str(self) -> &'static str {
                match self { $(RuleId::$variant => $text),+ }
            }

            /// A rule from its written form.
            pub fn parse(s: &str) -> Option<RuleId> {
                match s { $($text => Some(RuleId::$variant),)+ _ => None }
            }
        }
    };
}

rule_ids! {
    BreakAfter6h => "worktime.break_after_6h",
    BreakTotal => "worktime.break_total",
    DailyRest11h => "worktime.daily_rest_11h",
    DailyMax10h => "worktime.daily_max_10h",
    WeeklyMax48h => "worktime.weekly_max_48h",
    WeeklyAverage => "worktime.weekly_average",
    WeeklyRest35h => "worktime.weekly_rest_35h",
    Max6Days => "worktime.max_6_days",
    NightDaily8h => "worktime.night_daily_8h",
    NightWeeklyAverage => "worktime.night_weekly_average",
    CaMealPeriod => "worktime.ca_meal_period",
    CaRestPeriod => "worktime.ca_rest_period",
    IdleFlagThreshold => "pause.idle_flag_threshold",
    FlagsDuringBreaks => "pause.flags_during_breaks",
    JustificationBurden => "pause.justification_burden",
    LatencyFlags => "pause.latency_flags",
    SpeedFlags => "speed.speed_flags",
    Intensification => "cadence.intensification",
    TargetRaised => "cadence.target_raised",
    WithinShiftDrift => "cadence.within_shift_drift",
    PaceSetBySystem => "voice.pace_set_by_system",
    RushShare => "cadence.rush_share",
    IndividualData => "retention.individual_data",
    DailyMass => "load.daily_mass",
    WorksCouncil => "consultation.works_council",
    Dpia => "consultation.dpia",
}

impl AsRef<str> for RuleId {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<RuleId> for String {
    fn eq(&self, other: &RuleId) -> bool {
        self == other.as_str()
    }
}

impl PartialEq<RuleId> for str {
    fn eq(&self, other: &RuleId) -> bool {
        self == other.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::catalogue;

    #[test]
    fn the_ids_are_the_catalogues_in_its_order() {
        let cat: Vec<&str> = catalogue().rule.iter().map(|r| r.id.as_str()).collect();
        let ours: Vec<&str> = RuleId::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(ours, cat);
        for r in RuleId::ALL {
            assert_eq!(RuleId::parse(r.as_str()), Some(*r));
        }
        assert_eq!(RuleId::parse("worktime.daily_max"), None);
    }
}
