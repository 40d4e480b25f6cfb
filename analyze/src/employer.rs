//! The employer's declaration (`--employer FILE`, docs/employer.md): what
//! the employer says about its monitoring, to be held against the data.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::AnalyzeError;

/// A monitoring indicator the employer declares (`[[indicators]]`);
/// checked for form only for now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Indicator {
    /// The indicator's name, in the employer's words.
    pub name: String,
    /// The event kind it produces, e.g. `idle_flag`, `speed_flag`.
    #[serde(default)]
    pub kind: Option<String>,
    /// The threshold at which it flags, seconds (> 0); `None` when not
    /// declared.
    #[serde(default)]
    pub threshold_s: Option<f64>,
    /// What it flags, in the employer's words; `None` when not given.
    #[serde(default)]
    pub description: Option<String>,
}

/// A dated change the employer declares (new software version, new
/// targets, new layout): vigie compares the pace before and after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclaredChange {
    /// The date of the change (a TOML date or the same as a string); the
    /// pace "after" is measured from it.
    #[serde(deserialize_with = "required_date")]
    pub date: NaiveDate,
    /// The change in the employer's words: one line of 1 to
    /// [`DESCRIPTION_MAX`] characters.
    pub description: String,
}

/// The longest description kept (characters): it is quoted in findings
/// and in the report.
pub const DESCRIPTION_MAX: usize = 200;

/// The employer's declaration, read from TOML; every key is optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Employer {
    /// The employer's name; `None` when not given.
    #[serde(default)]
    pub name: Option<String>,
    /// The monitoring indicators it declares; empty when none.
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
    /// Dated changes: `changes = [{ date = 2026-03-16, description = "..." }]`.
    #[serde(default)]
    pub changes: Vec<DeclaredChange>,
}

fn required_date<'de, D: serde::Deserializer<'de>>(d: D) -> Result<NaiveDate, D::Error> {
    date(d).map(|o| o.expect("date() returns a date or an error"))
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
    /// Reads and checks a declaration file; every problem is reported at
    /// once (as [`AnalyzeError::Policy`]).
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
        for (i, c) in e.changes.iter().enumerate() {
            let d = &c.description;
            if d.trim().is_empty() || d.chars().count() > DESCRIPTION_MAX || d.chars().any(char::is_control) {
                problems.push(format!(
                    "{}: changes[{i}] ({}): description must be 1 to {DESCRIPTION_MAX} characters on one line",
                    path.display(),
                    c.date
                ));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Employer, Vec<String>> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("employer.toml");
        std::fs::write(&p, text).unwrap();
        Employer::from_file(&p).map_err(|e| match e {
            AnalyzeError::Policy(p) => p,
            other => vec![other.to_string()],
        })
    }

    #[test]
    fn declared_changes_are_dated_and_described_on_one_line() {
        let e = load("changes = [{ date = 2026-03-16, description = \"Objectifs relevés\" }]").unwrap();
        assert_eq!(e.changes[0].date, NaiveDate::from_ymd_opt(2026, 3, 16).unwrap());
        // The date as a string works too.
        assert!(load("changes = [{ date = \"2026-03-16\", description = \"v2\" }]").is_ok());
        // Empty, on two lines, over 200 characters: one problem each,
        // all listed at once.
        let long = "x".repeat(DESCRIPTION_MAX + 1);
        let text = format!(
            "changes = [{{ date = 2026-03-16, description = \" \" }}, {{ date = 2026-03-17, description = \"a\\nb\" }}, {{ date = 2026-03-18, description = \"{long}\" }}]"
        );
        let p = load(&text).unwrap_err();
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p[1].contains("changes[1] (2026-03-17)"), "{p:?}");
        // No date, or not a date: refused.
        assert!(load("changes = [{ description = \"v2\" }]").is_err());
        assert!(load("changes = [{ date = \"mars\", description = \"v2\" }]").is_err());
    }
}
