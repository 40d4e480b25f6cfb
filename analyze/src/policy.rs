//! Policies: for each rule, its threshold, the status when it is crossed
//! and its sources. Built-in profiles (`fr`, `eu`, `us-ca`) or a TOML file
//! (docs/policy.md).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::catalogue::catalogue;
use crate::rules::RuleId;
use crate::shifts::ShiftModel;
use crate::AnalyzeError;

/// The smallest k a policy may set.
pub const MIN_K: u32 = 5;

/// What a crossed threshold means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Crossing gives the status `attention`.
    Attention,
    /// Crossing gives the status `breach`.
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
    /// Whether `observed` crosses `threshold` under this comparison.
    pub fn crossed(self, observed: f64, threshold: f64) -> bool {
        match self {
            Compare::Above => observed > threshold,
            Compare::AtLeast => observed >= threshold,
            Compare::Below => observed < threshold,
        }
    }

    /// The comparison as the rule table writes it: `>`, `>=` or `<`.
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
    /// Whether the rule is evaluated (default true); a disabled rule gives
    /// no finding.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The threshold, in `unit`: the status changes when `observed` crosses it.
    pub threshold: f64,
    /// How `observed` is held against `threshold`.
    pub compare: Compare,
    /// The status when the threshold is crossed.
    pub severity: Severity,
    /// What `observed` counts (`worker-days`, `seconds`, ...), copied into
    /// each finding.
    pub unit: String,
    /// Legal or field sources, copied into each finding; at least one.
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
    /// What a rule measures, where it can measure more than one thing
    /// (`worktime.break_after_6h`: `first_stretch`, `longest_stretch` or
    /// `unbroken_day`; docs/policy.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measure: Option<String>,
    /// The rule's other parameters (e.g. `window_weeks` of the weekly
    /// average), by name; docs/policy.md lists them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, f64>,
    /// Plain-language note on where the threshold comes from, including
    /// contested positions.
    #[serde(default)]
    pub note: String,
}

fn yes() -> bool {
    true
}

/// The parameters each rule reads (docs/policy.md): any other name in a
/// policy is a typo, refused rather than silently left at its default.
pub const PARAMS: [(&str, &[&str]); 6] = [
    ("worktime.break_total", &["first_min", "second_h", "second_min", "block_min"]),
    ("worktime.weekly_average", &["window_weeks"]),
    ("worktime.night_weekly_average", &["window_weeks"]),
    ("worktime.night_daily_8h", &["night_from_h", "night_to_h", "night_min_h", "night_days"]),
    ("worktime.ca_meal_period", &["second_h", "waiver_max_h", "second_waiver_max_h"]),
    ("cadence.intensification", &["min_segment_days", "window_days"]),
];

/// A whole policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// The policy's name (a built-in profile's id, or the file's own):
    /// findings.json's `policy`.
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
    /// Each rule's setting, by rule id; every version-1 rule must be there.
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

/// Rule ids of version 1: a policy file must name each (enabled or not).
pub const RULES_V1: [RuleId; 12] = [
    RuleId::BreakAfter6h,
    RuleId::DailyRest11h,
    RuleId::DailyMax10h,
    RuleId::WeeklyMax48h,
    RuleId::IdleFlagThreshold,
    RuleId::FlagsDuringBreaks,
    RuleId::JustificationBurden,
    RuleId::SpeedFlags,
    RuleId::Intensification,
    RuleId::RushShare,
    RuleId::IndividualData,
    RuleId::DailyMass,
];

impl Policy {
    /// A built-in profile by name, from the rule catalogue
    /// (`analyze/catalogue/rules.toml`): every rule the profile lists,
    /// with its sources and note in the profile's language.
    pub fn profile(name: &str) -> Result<Policy, AnalyzeError> {
        let cat = catalogue();
        let Some(p) = cat.profile(name) else {
            return Err(AnalyzeError::Policy(vec![format!(
                "unknown profile `{name}`: the built-in profiles are {}",
                cat.profile_ids().join(", ")
            )]));
        };
        let lang = p.lang.as_str();
        let mut rules = BTreeMap::new();
        for r in &cat.rule {
            let Some(pr) = r.profiles.get(name) else { continue };
            rules.insert(
                r.id.clone(),
                RulePolicy {
                    enabled: pr.enabled,
                    threshold: pr.threshold,
                    compare: r.compare,
                    severity: pr.status,
                    unit: r.unit.clone(),
                    sources: pr.sources.get(lang).to_vec(),
                    limit: pr.limit,
                    limit_inclusive: pr.limit_inclusive,
                    measure: pr.measure.clone(),
                    params: pr.params.clone(),
                    note: pr.note.get(lang).to_string(),
                },
            );
        }
        Ok(Policy {
            name: name.to_string(),
            k: p.k,
            shift_gap_h: d_shift_gap(),
            break_min_minutes: p.break_min_minutes,
            intensification_weeks: d_weeks(),
            lang: p.lang.clone(),
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
        let cat = catalogue();
        for (id, r) in &self.rules {
            if cat.rule(id).is_none() {
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
            let known = PARAMS.iter().find(|(rule, _)| rule == id).map_or(&[][..], |(_, names)| *names);
            for (name, v) in &r.params {
                if !known.contains(&name.as_str()) {
                    out.push(if known.is_empty() {
                        format!("rule `{id}`: unknown parameter `{name}` (this rule takes none)")
                    } else {
                        format!("rule `{id}`: unknown parameter `{name}` (known: {})", known.join(", "))
                    });
                } else if !v.is_finite() || *v < 0.0 {
                    out.push(format!("rule `{id}`: params.{name} must be a number >= 0"));
                }
            }
            if let Some(m) = &r.measure {
                if !crate::catalogue::MEASURES.iter().any(|(rule, ms)| rule == id && ms.contains(&m.as_str()))
                {
                    out.push(format!("rule `{id}`: unknown measure {m:?}"));
                }
            }
            if let Some(w) = r.params.get("window_weeks") {
                if *w < 1.0 || w.fract() != 0.0 {
                    out.push(format!("rule `{id}`: params.window_weeks must be a whole number of weeks"));
                }
            }
        }
        for id in RULES_V1 {
            if !self.rules.contains_key(id.as_str()) {
                out.push(format!("rule `{id}` is missing (set enabled = false to skip it)"));
            }
        }
        out
    }

    /// Rule `id`'s setting when it is present and enabled; `None` otherwise.
    pub fn rule(&self, id: impl AsRef<str>) -> Option<&RulePolicy> {
        self.rules.get(id.as_ref()).filter(|r| r.enabled)
    }

    /// Whether reaching rule `id`'s limit already crosses it (`>=`), or
    /// only exceeding it does (`>`).
    pub fn limit_inclusive(&self, id: impl AsRef<str>) -> bool {
        self.rules.get(id.as_ref()).is_some_and(|r| r.limit_inclusive)
    }

    /// Rule `id`'s `limit`, or `default` when the rule or its limit is
    /// absent (enabled or not).
    pub fn limit(&self, id: impl AsRef<str>, default: f64) -> f64 {
        self.rules.get(id.as_ref()).and_then(|r| r.limit).unwrap_or(default)
    }

    /// A parameter of rule `id`, or `default` (`name` must be in
    /// [`PARAMS`]).
    pub fn param(&self, id: impl AsRef<str>, name: &str, default: f64) -> f64 {
        self.rules.get(id.as_ref()).and_then(|r| r.params.get(name).copied()).unwrap_or(default)
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
        for name in ["fr", "eu", "de", "us-ca"] {
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
        // A misspelt parameter, and one given to a rule that takes none.
        p.rules.get_mut("cadence.intensification").unwrap().params.insert("window_day".into(), 7.0);
        p.rules.get_mut("speed.speed_flags").unwrap().params.insert("window_days".into(), 7.0);
        let problems = p.problems();
        assert_eq!(problems.len(), 5, "{problems:?}");
        assert!(problems.iter().any(|x| x
            == "rule `cadence.intensification`: unknown parameter `window_day` (known: min_segment_days, window_days)"));
        assert!(
            problems
                .iter()
                .any(|x| x
                    == "rule `speed.speed_flags`: unknown parameter `window_days` (this rule takes none)")
        );
    }
}
