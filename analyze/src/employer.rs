//! The employer's declaration (`--employer FILE`, docs/employer.md): what
//! the employer says about its monitoring, to be held against the data.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::AnalyzeError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Indicator {
    pub name: String,
    /// The event kind it produces, e.g. `idle_flag`, `speed_flag`.
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub threshold_s: Option<f64>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Employer {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub indicators: Vec<Indicator>,
    /// Retention in days, by data category (e.g. `individual_events`,
    /// `indicators`, `aggregates`).
    #[serde(default)]
    pub retention_days: BTreeMap<String, f64>,
    /// Whether declared breaks are excluded from inactivity measures.
    #[serde(default)]
    pub breaks_excluded_from_inactivity: Option<bool>,
    /// Date the works council was informed and consulted (a TOML date,
    /// `2026-02-01`, or the same as a string).
    #[serde(default, deserialize_with = "date")]
    pub works_council_consulted: Option<NaiveDate>,
    /// Whether a data protection impact assessment exists.
    #[serde(default)]
    pub dpia: Option<bool>,
    /// California: whether employer and workers agreed to waive the first
    /// meal period on days of at most 6 hours (Labor Code s. 512(a)).
    #[serde(default)]
    pub meal_waiver: Option<bool>,
    /// California: whether they agreed to waive the second meal period on
    /// days of at most 12 hours when the first was not waived.
    #[serde(default)]
    pub second_meal_waiver: Option<bool>,
    /// Whether the employer's system schedules breaks (then a rest period
    /// missing from the data was not permitted, not merely not taken).
    #[serde(default)]
    pub breaks_scheduled_by_system: Option<bool>,
}

fn date<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<NaiveDate>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Toml(toml::value::Datetime),
        Text(String),
    }
    let text = match Either::deserialize(d)? {
        Either::Toml(t) => t.to_string(),
        Either::Text(s) => s,
    };
    NaiveDate::parse_from_str(&text, "%Y-%m-%d")
        .map(Some)
        .map_err(|_| serde::de::Error::custom(format!("expected a date like 2026-02-01, got {text:?}")))
}

/// Categories that hold individual data (their retention feeds
/// `retention.individual_data`).
pub const INDIVIDUAL_CATEGORIES: [&str; 2] = ["individual_events", "indicators"];

impl Employer {
    pub fn from_file(path: &Path) -> Result<Employer, AnalyzeError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| AnalyzeError::Policy(vec![format!("{}: {e}", path.display())]))?;
        let e: Employer = toml::from_str(&text).map_err(|e| {
            AnalyzeError::Policy(vec![format!("{}: {}", path.display(), e.to_string().trim())])
        })?;
        let mut problems = Vec::new();
        for (cat, d) in &e.retention_days {
            if !(d.is_finite() && *d >= 0.0) {
                problems.push(format!("{}: retention_days.{cat} must be >= 0", path.display()));
            }
        }
        for i in &e.indicators {
            if let Some(t) = i.threshold_s {
                if t.is_nan() || t <= 0.0 {
                    problems.push(format!(
                        "{}: indicator `{}`: threshold_s must be > 0",
                        path.display(),
                        i.name
                    ));
                }
            }
        }
        if problems.is_empty() {
            Ok(e)
        } else {
            Err(AnalyzeError::Policy(problems))
        }
    }

    /// The longest declared retention of individual data, days.
    pub fn individual_retention_days(&self) -> Option<f64> {
        INDIVIDUAL_CATEGORIES
            .iter()
            .filter_map(|c| self.retention_days.get(*c).copied())
            .fold(None, |acc, d| Some(acc.map_or(d, |a: f64| a.max(d))))
    }
}
