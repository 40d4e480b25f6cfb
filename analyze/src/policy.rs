//! Policies: for each rule, its threshold, the status when it is crossed
//! and its sources. Built-in profiles (`fr`, `eu`, `us-ca`) or a TOML file
//! (docs/policy.md).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::shifts::ShiftModel;
use crate::AnalyzeError;

/// The smallest k a policy may set.
pub const MIN_K: u32 = 5;

/// What a crossed threshold means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Attention,
    Breach,
}

/// How the observed value is compared with the threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compare {
    /// Crossed when observed > threshold.
    Above,
    /// Crossed when observed >= threshold.
    AtLeast,
    /// Crossed when observed < threshold.
    Below,
}

impl Compare {
    pub fn crossed(self, observed: f64, threshold: f64) -> bool {
        match self {
            Compare::Above => observed > threshold,
            Compare::AtLeast => observed >= threshold,
            Compare::Below => observed < threshold,
        }
    }

    pub fn symbol(self) -> &'static str {
        match self {
            Compare::Above => ">",
            Compare::AtLeast => ">=",
            Compare::Below => "<",
        }
    }
}

/// One rule's setting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulePolicy {
    #[serde(default = "yes")]
    pub enabled: bool,
    pub threshold: f64,
    pub compare: Compare,
    pub severity: Severity,
    pub unit: String,
    pub sources: Vec<String>,
    /// The rule's own parameter (e.g. 6 h for the break rule), in the unit
    /// its name says; absent for rules without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<f64>,
    /// Whether reaching `limit` already crosses it (`>=`, as the French
    /// "atteint six heures") rather than only exceeding it (`>`, as the
    /// Directive's "longer than six hours").
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub limit_inclusive: bool,
    /// Plain-language note on where the threshold comes from, including
    /// contested positions.
    #[serde(default)]
    pub note: String,
}

fn yes() -> bool {
    true
}

/// A whole policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub name: String,
    /// Minimum distinct workers for a group to be published.
    pub k: u32,
    /// Gap that splits shifts without markers, hours.
    #[serde(default = "d_shift_gap")]
    pub shift_gap_h: f64,
    /// Shortest break, minutes.
    #[serde(default = "d_break_min")]
    pub break_min_minutes: f64,
    /// Weeks at each end of the input compared by cadence.intensification.
    #[serde(default = "d_weeks")]
    pub intensification_weeks: u32,
    /// Language of the report.
    #[serde(default = "d_lang")]
    pub lang: String,
    pub rules: BTreeMap<String, RulePolicy>,
}

fn d_shift_gap() -> f64 {
    3.0
}
fn d_break_min() -> f64 {
    20.0
}
fn d_weeks() -> u32 {
    2
}
fn d_lang() -> String {
    "en".into()
}

/// Rule ids of version 1, in report order.
pub const RULES_V1: [&str; 12] = [
    "worktime.break_after_6h",
    "worktime.daily_rest_11h",
    "worktime.daily_max_10h",
    "worktime.weekly_max_48h",
    "pause.idle_flag_threshold",
    "pause.flags_during_breaks",
    "pause.justification_burden",
    "speed.speed_flags",
    "cadence.intensification",
    "cadence.rush_share",
    "retention.individual_data",
    "load.daily_mass",
];

/// Rules of the `us-ca` profile on top of version 1.
pub const RULES_US_CA: [&str; 2] = ["worktime.ca_meal_period", "worktime.ca_rest_period"];

/// Rules that only an employer declaration feeds.
pub const RULES_EMPLOYER: [&str; 2] = ["consultation.works_council", "consultation.dpia"];

fn rule(
    threshold: f64,
    compare: Compare,
    severity: Severity,
    unit: &str,
    sources: &[&str],
    limit: Option<f64>,
    note: &str,
) -> RulePolicy {
    RulePolicy {
        enabled: true,
        threshold,
        compare,
        severity,
        unit: unit.into(),
        sources: sources.iter().map(|s| s.to_string()).collect(),
        limit,
        limit_inclusive: false,
        note: note.into(),
    }
}

const CNIL: &str = "CNIL SAN-2023-021 (27 Dec 2023)";
const CE: &str = "Conseil d'Etat n. 492830 (23 Dec 2025)";

impl Policy {
    /// A built-in profile by name.
    pub fn profile(name: &str) -> Result<Policy, AnalyzeError> {
        use Compare::*;
        use Severity::*;
        let fr = name == "fr";
        let src = |fr_src: &'static str, eu_src: &'static str| if fr { fr_src } else { eu_src };
        let mut rules = BTreeMap::new();
        let mut add = |id: &str, r: RulePolicy| {
            rules.insert(id.to_string(), r);
        };
        match name {
            "fr" | "eu" | "us-ca" => {}
            other => {
                return Err(AnalyzeError::Policy(vec![format!(
                    "unknown profile `{other}`: the built-in profiles are fr, eu and us-ca"
                )]))
            }
        }
        add(
            "worktime.break_after_6h",
            rule(
                0.0,
                Above,
                Breach,
                "shifts",
                &[src("Code du travail L3121-16", "Directive 2003/88/EC art. 4")],
                Some(6.0),
                if fr {
                    "A break of at least 20 consecutive minutes is due as soon as daily work reaches 6 hours (L3121-16: \"atteint\")."
                } else {
                    "A rest break is due where the working day is longer than 6 hours (Directive art. 4); its length is set by national law or agreement (20 minutes here)."
                },
            ),
        );
        add(
            "worktime.daily_rest_11h",
            rule(
                0.0,
                Above,
                Breach,
                "rest periods",
                &[src("Code du travail L3131-1", "Directive 2003/88/EC art. 3")],
                Some(11.0),
                "At least 11 consecutive hours of rest between two working days.",
            ),
        );
        add(
            "worktime.daily_max_10h",
            rule(
                0.0,
                Above,
                Breach,
                "worker-days",
                &[src(
                    "Code du travail L3121-18",
                    "National law (Directive 2003/88/EC sets no daily maximum)",
                )],
                Some(10.0),
                "Effective daily work may not exceed 10 hours, save for derogations.",
            ),
        );
        add("worktime.weekly_max_48h", rule(0.0, Above, Breach, "worker-weeks",
            &[src("Code du travail L3121-20", "Directive 2003/88/EC art. 6")], Some(48.0),
            "No more than 48 hours of work in one week (the Directive averages over 4 months; this checks single weeks)."));
        add("pause.idle_flag_threshold", rule(600.0, Below, Attention, "seconds",
            &[CNIL, CE], None,
            "The CNIL found flagging scanner inactivity below 10 minutes excessive; the Conseil d'Etat held a flag at 10 minutes or more that excludes breaks lawful. Shorter thresholds are an indicator for dialogue, not a verdict."));
        add("pause.flags_during_breaks", rule(0.0, Above, Attention, "flags",
            &[CE, "GDPR art. 5(1)(c)"], None,
            "The Conseil d'Etat upheld the idle indicator because it excludes breaks: flags inside declared breaks lose that justification. No ruling makes them a breach in themselves."));
        add(
            "pause.justification_burden",
            rule(
                0.0,
                Above,
                Attention,
                "share of shifts",
                &[CNIL],
                None,
                "The CNIL found that asking workers to justify pauses of a few minutes was excessive.",
            ),
        );
        add("speed.speed_flags", rule(0.0, Above, Attention, "flags",
            &[CNIL, CE], None,
            "The CNIL found the 'stow machine gun' flag (scans under 1.25 s apart) excessive; the Conseil d'Etat held it lawful as error detection only. Present it as an indicator for dialogue."));
        add("cadence.intensification", rule(0.10, AtLeast, Attention, "relative change",
            &["INRS studies of voice picking", "Field study: about +20 % productivity after voice picking (Manor)"], None,
            "A rising median pace since a change of system is a question for the works council, not a breach."));
        add("cadence.rush_share", rule(0.05, AtLeast, Attention, "share of intervals",
            &[CNIL], Some(1.25),
            "Intervals under 1.25 s are the CNIL's 'machine gun' threshold; a large share suggests pressure for speed."));
        add("retention.individual_data", rule(30.0, Above, Attention, "days",
            &[CNIL, "GDPR art. 5(1)(c)"], None,
            "The CNIL found keeping all scanner data and indicators for 31 days excessive; real-time data and weekly aggregates were judged sufficient."));
        add(
            "load.daily_mass",
            rule(
                0.0,
                Above,
                Attention,
                "shifts",
                &["NF X35-109", "INRS ED 6161"],
                Some(7500.0),
                "A cumulative tonnage of about 7.5 t per 8 h is a recommended ceiling; sources differ.",
            ),
        );
        add("consultation.works_council", rule(0.0, Above, Breach, "missing consultations",
            &[src("Code du travail L2312-38", "Directive 2002/14/EC; BetrVG s. 87(1) no. 6")], None,
            "The works council must be informed and consulted before a means of monitoring activity is introduced."));
        add(
            "consultation.dpia",
            rule(
                0.0,
                Above,
                Breach,
                "missing DPIAs",
                &["GDPR art. 35(4)", "CNIL deliberation 2018-327 (list of processing requiring a DPIA: constant monitoring of employees' activity)"],
                None,
                "Systematic monitoring of employees calls for a data protection impact assessment.",
            ),
        );
        if name == "us-ca" {
            add("worktime.ca_meal_period", rule(0.0, Above, Breach, "shifts",
                &["Cal. Labor Code 512", "Cal. Labor Code 2100-2112 (AB 701)"], Some(5.0),
                "A 30-minute meal period is due before the end of the 5th hour of work; quotas may not prevent it (AB 701)."));
            add("worktime.ca_rest_period", rule(0.0, Above, Breach, "shifts",
                &["IWC Wage Order 9 s. 12", "Cal. Labor Code 2100-2112 (AB 701)"], Some(4.0),
                "A 10-minute rest period is due per 4 hours worked or major fraction; quotas may not prevent it (AB 701)."));
        }
        // The Directive sets no daily maximum of working time (its limits
        // are daily rest, art. 3, breaks, art. 4, weekly rest, art. 5, and
        // the average week, art. 6): the `eu` profile checks none. The
        // `us-ca` profile holds only California law: the French and EU
        // working-time limits are not checked there. Both keep the rules,
        // disabled, so that a policy file can turn them on.
        let disabled: &[&str] = match name {
            "eu" => &["worktime.daily_max_10h"],
            "us-ca" => &[
                "worktime.break_after_6h",
                "worktime.daily_rest_11h",
                "worktime.daily_max_10h",
                "worktime.weekly_max_48h",
            ],
            _ => &[],
        };
        for id in disabled {
            if let Some(r) = rules.get_mut(*id) {
                r.enabled = false;
            }
        }
        // L3121-16: the break is due once daily work "atteint" (reaches) six
        // hours; the Directive says "longer than six hours".
        if fr {
            if let Some(r) = rules.get_mut("worktime.break_after_6h") {
                r.limit_inclusive = true;
            }
        }
        Ok(Policy {
            name: name.to_string(),
            k: 10,
            shift_gap_h: d_shift_gap(),
            break_min_minutes: d_break_min(),
            intensification_weeks: d_weeks(),
            lang: if fr { "fr".into() } else { "en".into() },
            rules,
        })
    }

    /// Reads and checks a policy file; every problem is reported at once.
    pub fn from_file(path: &Path) -> Result<Policy, AnalyzeError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| AnalyzeError::Policy(vec![format!("{}: {e}", path.display())]))?;
        let p: Policy = toml::from_str(&text).map_err(|e| {
            AnalyzeError::Policy(vec![format!("{}: {}", path.display(), e.to_string().trim())])
        })?;
        let problems = p.problems();
        if problems.is_empty() {
            Ok(p)
        } else {
            Err(AnalyzeError::Policy(
                problems.into_iter().map(|m| format!("{}: {m}", path.display())).collect(),
            ))
        }
    }

    /// Every problem of a policy (empty when it is usable).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.k < MIN_K {
            out.push(format!("k = {} is below the minimum of {MIN_K}", self.k));
        }
        if self.shift_gap_h.is_nan() || self.shift_gap_h <= 0.0 {
            out.push("shift_gap_h must be > 0".into());
        }
        if self.break_min_minutes.is_nan() || self.break_min_minutes <= 0.0 {
            out.push("break_min_minutes must be > 0".into());
        }
        if self.intensification_weeks == 0 {
            out.push("intensification_weeks must be at least 1".into());
        }
        if !matches!(self.lang.as_str(), "fr" | "en") {
            out.push(format!("lang must be fr or en, not {:?}", self.lang));
        }
        let known: Vec<&str> = RULES_V1.iter().chain(&RULES_US_CA).chain(&RULES_EMPLOYER).copied().collect();
        for (id, r) in &self.rules {
            if !known.contains(&id.as_str()) {
                out.push(format!("unknown rule `{id}`"));
            }
            if !r.threshold.is_finite() {
                out.push(format!("rule `{id}`: threshold must be a number"));
            }
            if r.sources.is_empty() {
                out.push(format!("rule `{id}`: at least one source is required"));
            }
            if let Some(l) = r.limit {
                if l.is_nan() || l <= 0.0 {
                    out.push(format!("rule `{id}`: limit must be > 0"));
                }
            }
        }
        for id in RULES_V1 {
            if !self.rules.contains_key(id) {
                out.push(format!("rule `{id}` is missing (set enabled = false to skip it)"));
            }
        }
        out
    }

    pub fn rule(&self, id: &str) -> Option<&RulePolicy> {
        self.rules.get(id).filter(|r| r.enabled)
    }

    /// Whether reaching rule `id`'s limit already crosses it (`>=`), or
    /// only exceeding it does (`>`).
    pub fn limit_inclusive(&self, id: &str) -> bool {
        self.rules.get(id).is_some_and(|r| r.limit_inclusive)
    }

    pub fn limit(&self, id: &str, default: f64) -> f64 {
        self.rules.get(id).and_then(|r| r.limit).unwrap_or(default)
    }

    /// The shift model this policy implies.
    pub fn shift_model(&self) -> ShiftModel {
        ShiftModel {
            shift_gap_s: self.shift_gap_h * 3600.0,
            break_min_s: self.break_min_minutes * 60.0,
            rush_s: self.limit("cadence.rush_share", 1.25),
            ..ShiftModel::default()
        }
    }

    /// The policy as TOML (a starting point for a policy file).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_are_complete_and_round_trip() {
        for name in ["fr", "eu", "us-ca"] {
            let p = Policy::profile(name).unwrap();
            assert!(p.problems().is_empty(), "{name}: {:?}", p.problems());
            let back: Policy = toml::from_str(&p.to_toml()).unwrap();
            assert_eq!(back, p);
        }
        assert_eq!(Policy::profile("fr").unwrap().lang, "fr");
        assert!(Policy::profile("xx").is_err());
        // The Directive has no daily maximum; California's profile checks
        // no French or EU working-time limit.
        assert!(Policy::profile("fr").unwrap().rule("worktime.daily_max_10h").is_some());
        assert!(Policy::profile("eu").unwrap().rule("worktime.daily_max_10h").is_none());
        let ca = Policy::profile("us-ca").unwrap();
        for id in [
            "worktime.break_after_6h",
            "worktime.daily_rest_11h",
            "worktime.daily_max_10h",
            "worktime.weekly_max_48h",
        ] {
            assert!(ca.rule(id).is_none(), "{id} in us-ca");
        }
        assert!(ca.rule("worktime.ca_meal_period").is_some());
    }

    #[test]
    fn every_problem_is_reported() {
        let mut p = Policy::profile("eu").unwrap();
        p.k = 3;
        p.rules.remove("cadence.rush_share");
        p.rules.get_mut("speed.speed_flags").unwrap().sources.clear();
        let problems = p.problems();
        assert_eq!(problems.len(), 3, "{problems:?}");
    }
}
