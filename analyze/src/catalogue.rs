//! The rule catalogue (`analyze/catalogue/rules.toml`): one definition per
//! rule, read by the policy profiles, the evaluation's evidence sentences,
//! the report and the dashboards generator; `vigie rules` prints it.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::findings::{Fact, Facts};
use crate::policy::{Compare, Severity};

const SOURCE: &str = include_str!("../catalogue/rules.toml");

/// A text in each language of the report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Text {
    /// The text in English.
    pub en: String,
    /// The text in French.
    pub fr: String,
}

impl Text {
    /// The text in `lang`: French for `fr`, English for any other.
    pub fn get(&self, lang: &str) -> &str {
        if lang == "fr" {
            &self.fr
        } else {
            &self.en
        }
    }
}

/// A list of texts in each language.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Texts {
    /// The texts in English.
    pub en: Vec<String>,
    /// The texts in French.
    pub fr: Vec<String>,
}

impl Texts {
    /// The texts in `lang`: French for `fr`, English for any other.
    pub fn get(&self, lang: &str) -> &[String] {
        if lang == "fr" {
            &self.fr
        } else {
            &self.en
        }
    }
}

/// A built-in profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileDef {
    /// The profile's id, as `--profile` takes it (`fr`, `eu`, `de`, `us-ca`).
    pub id: String,
    /// The language of its report, sources and notes: `fr` or `en`.
    pub lang: String,
    /// Minimum distinct workers for a group to be published.
    pub k: u32,
    /// Shortest break, minutes.
    pub break_min_minutes: f64,
    /// The profile's title in each language.
    pub name: Text,
}

/// The period the law counts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Counted {
    /// A local calendar day (the day a shift starts on).
    CalendarDay,
    /// The rest between two working days.
    RestPeriod,
    /// A calendar (ISO) week, Monday to Sunday.
    CivilWeek,
    /// A rolling window of ISO weeks.
    RollingWeeks,
    /// One shift.
    Shift,
    /// The whole input.
    WholeInput,
}

impl Counted {
    /// Whether findings are given per ISO week (else once, period `all`).
    pub fn weekly(self) -> bool {
        !matches!(self, Counted::WholeInput | Counted::Shift)
    }

    /// The period as the rule table writes it (`per calendar day`), in French
    /// for `fr`, else in English.
    pub fn label(self, lang: &str) -> &'static str {
        let fr = lang == "fr";
        match self {
            Counted::CalendarDay => ["per calendar day", "par jour civil"][usize::from(fr)],
            Counted::RestPeriod => {
                ["per rest between working days", "par repos entre deux journées"][usize::from(fr)]
            }
            Counted::CivilWeek => ["per calendar week", "par semaine civile"][usize::from(fr)],
            Counted::RollingWeeks => ["over rolling weeks", "sur semaines glissantes"][usize::from(fr)],
            Counted::Shift => ["per shift", "par poste"][usize::from(fr)],
            Counted::WholeInput => ["over the whole input", "sur l'ensemble des données"][usize::from(fr)],
        }
    }
}

/// A position taken on a contested rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contested {
    /// Who took the position: the authority and its decision.
    pub who: Text,
    /// What it held.
    pub held: Text,
}

/// One rule's setting in one profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileRule {
    /// Whether the profile evaluates the rule (default true); a rule turned
    /// off stays in the profile, so that a policy file can turn it on.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The status when the threshold is crossed (the policy's `severity`).
    pub status: Severity,
    /// The threshold, in the rule's `unit`.
    pub threshold: f64,
    /// The rule's own parameter, in its `limit_unit` (6 h for the break
    /// rule); `None` for rules without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<f64>,
    /// Whether reaching `limit` already crosses it (`>=`) rather than only
    /// exceeding it (`>`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub limit_inclusive: bool,
    /// What the rule measures, for the rules of [`MEASURES`]; `None`: the
    /// rule's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measure: Option<String>,
    /// The rule's other parameters by name ([`crate::policy::PARAMS`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, f64>,
    /// Legal or field sources, in each language's citation style.
    pub sources: Texts,
    /// Plain-language note on where the threshold comes from.
    pub note: Text,
}

fn yes() -> bool {
    true
}

/// How a rule's limit applies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitKind {
    /// Values above the limit (or reaching it, when inclusive) count.
    #[default]
    Above,
    /// Values below the limit count (a minimum rest, a shortest interval).
    Below,
    /// One item is owed per each limit's worth (a rest period per 4 h).
    Every,
}

/// One rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleDef {
    /// The rule id, `family.name`.
    pub id: String,
    /// The unit of the profiles' `limit` (h, s, kg, days).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub limit_unit: String,
    /// How the profiles' `limit` applies (default: values above it count).
    #[serde(default)]
    pub limit_kind: LimitKind,
    /// The rule's family, the first part of its id (`worktime`, `pause`, ...).
    pub family: String,
    /// What `observed` counts (`worker-days`, `flags`, `seconds`, ...): the
    /// findings' `unit`.
    pub unit: String,
    /// The period the law counts in; it says whether findings are per ISO
    /// week or over `all`.
    pub counted: Counted,
    /// How `observed` is held against the threshold.
    pub compare: Compare,
    /// A maximum held against the two bounds of effective time.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bounded: bool,
    /// The rule's title.
    pub name: Text,
    /// What the rule counts, in plain words.
    pub description: Text,
    /// Questions for the employer, listed by the report.
    pub questions: Texts,
    /// Evidence sentences by case, with `{placeholders}`.
    pub evidence: BTreeMap<String, Text>,
    /// The positions taken where the rule is contested; empty when it is not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contested: Vec<Contested>,
    /// The rule's setting in each built-in profile that evaluates it, by
    /// profile id.
    pub profiles: BTreeMap<String, ProfileRule>,
}

/// A request letter of the report's annex.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Letter {
    /// The letter's title.
    pub title: Text,
    /// The letter's text.
    pub body: Text,
    /// What the letter rests on, when a reader should check it first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<Text>,
}

/// The whole catalogue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalogue {
    /// The built-in profiles, in the catalogue's order.
    pub profile: Vec<ProfileDef>,
    /// Evidence sentences shared by every rule (withheld weeks, ...).
    pub evidence: BTreeMap<String, Text>,
    /// Every rule, in report order (that of [`crate::rules::RuleId::ALL`]).
    pub rule: Vec<RuleDef>,
    /// The request letters of the report's annex.
    #[serde(default)]
    pub letter: Vec<Letter>,
}

/// The rules that can measure more than one thing, and their measures.
pub const MEASURES: [(&str, &[&str]); 1] =
    [("worktime.break_after_6h", &["first_stretch", "longest_stretch", "unbroken_day"])];

/// The catalogue built into vigie.
pub fn catalogue() -> &'static Catalogue {
    static CAT: OnceLock<Catalogue> = OnceLock::new();
    CAT.get_or_init(|| match toml::from_str(SOURCE) {
        Ok(c) => c,
        // The file is part of the build and checked by its tests.
        Err(e) => panic!("analyze/catalogue/rules.toml: {e}"),
    })
}

impl Catalogue {
    /// A rule by id; `None` when the catalogue has none.
    pub fn rule(&self, id: &str) -> Option<&RuleDef> {
        self.rule.iter().find(|r| r.id == id)
    }

    /// A built-in profile by id; `None` when there is none.
    pub fn profile(&self, id: &str) -> Option<&ProfileDef> {
        self.profile.iter().find(|p| p.id == id)
    }

    /// The built-in profiles' ids, in the catalogue's order.
    pub fn profile_ids(&self) -> Vec<&str> {
        self.profile.iter().map(|p| p.id.as_str()).collect()
    }

    /// Position of a rule in report order (unknown rules last).
    pub fn order(&self, id: &str) -> usize {
        self.rule.iter().position(|r| r.id == id).unwrap_or(usize::MAX)
    }

    /// The evidence template of a rule's case, in a language.
    pub fn template(&self, rule: &str, case: &str, lang: &str) -> Option<&str> {
        self.rule(rule)
            .and_then(|r| r.evidence.get(case))
            .or_else(|| self.evidence.get(case))
            .map(|t| t.get(lang))
    }

    /// A finding's evidence sentence in `lang`, from its facts (empty when
    /// the rule or case is unknown).
    pub fn render(&self, rule: &str, facts: &Facts, lang: &str) -> String {
        match self.template(rule, &facts.case, lang) {
            Some(t) => fill(t, &facts.values, lang),
            None => String::new(),
        }
    }

    /// Every problem of the catalogue (tests run it; empty when sound).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let profiles = self.profile_ids();
        let mut seen = std::collections::BTreeSet::new();
        for r in &self.rule {
            if !seen.insert(&r.id) {
                out.push(format!("{}: defined twice", r.id));
            }
            if !r.id.starts_with(&format!("{}.", r.family)) {
                out.push(format!("{}: id does not start with its family `{}`", r.id, r.family));
            }
            for (what, t) in [("name", &r.name), ("description", &r.description)] {
                if t.en.is_empty() || t.fr.is_empty() {
                    out.push(format!("{}: {what} needs en and fr", r.id));
                }
            }
            if r.questions.en.len() != r.questions.fr.len() || r.questions.en.is_empty() {
                out.push(format!("{}: questions need as many en as fr, at least one", r.id));
            }
            for (case, t) in &r.evidence {
                if placeholders(&t.en) != placeholders(&t.fr) {
                    out.push(format!("{}: evidence `{case}` has different placeholders in en and fr", r.id));
                }
            }
            if r.profiles.values().any(|p| p.limit.is_some()) && r.limit_unit.is_empty() {
                out.push(format!("{}: a limit needs a limit_unit", r.id));
            }
            if r.profiles.is_empty() {
                out.push(format!("{}: no profile evaluates it", r.id));
            }
            for (p, pr) in &r.profiles {
                if !profiles.contains(&p.as_str()) {
                    out.push(format!("{}: unknown profile `{p}`", r.id));
                }
                if pr.sources.en.is_empty() || pr.sources.en.len() != pr.sources.fr.len() {
                    out.push(format!("{}/{p}: sources need as many en as fr, at least one", r.id));
                }
                if let Some(m) = &pr.measure {
                    if !MEASURES.iter().any(|(rule, ms)| *rule == r.id && ms.contains(&m.as_str())) {
                        out.push(format!("{}/{p}: unknown measure {m:?}", r.id));
                    }
                }
                if pr.note.en.is_empty() || pr.note.fr.is_empty() {
                    out.push(format!("{}/{p}: note needs en and fr", r.id));
                }
            }
        }
        for (case, t) in &self.evidence {
            if placeholders(&t.en) != placeholders(&t.fr) {
                out.push(format!("evidence `{case}` has different placeholders in en and fr"));
            }
        }
        out
    }
}

/// The `{names}` of a template, sorted (a plural choice `{n|one|many}`
/// names `n`).
pub fn placeholders(t: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = t;
    while let Some(i) = rest.find('{') {
        let Some(j) = rest[i..].find('}') else { break };
        let inner = &rest[i + 1..i + j];
        out.push(inner.split('|').next().unwrap_or(inner).to_string());
        rest = &rest[i + j + 1..];
    }
    out.sort();
    out.dedup();
    out
}

/// Fills a template's `{names}` with values written the way `lang` writes
/// numbers; a name without a value is left as `{name}`. `{n|one|many}`
/// writes `one` or `many` as the number `n` asks in `lang` (French: one
/// below 2; English: one for exactly 1).
pub fn fill(template: &str, values: &BTreeMap<String, Fact>, lang: &str) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let Some(j) = rest[i..].find('}') else {
            out.push_str(&rest[i..]);
            return out;
        };
        let inner = &rest[i + 1..i + j];
        let mut parts = inner.split('|');
        let name = parts.next().unwrap_or(inner);
        let forms: Vec<&str> = parts.collect();
        match (values.get(name), forms.as_slice()) {
            (Some(Fact::Number(x)), [one, many]) => {
                let singular = if lang == "fr" { x.abs() < 2.0 } else { *x == 1.0 };
                out.push_str(if singular { one } else { many });
            }
            (Some(Fact::Number(x)), _) => out.push_str(&number(*x, lang)),
            (Some(Fact::Text(s)), _) => out.push_str(s),
            (None, _) => out.push_str(&rest[i..i + j + 1]),
        }
        rest = &rest[i + j + 1..];
    }
    out.push_str(rest);
    out
}

/// A number as `lang` writes it: at most 4 decimals, trailing zeros cut;
/// French groups thousands with a narrow no-break space and uses a decimal
/// comma, English a comma and a point.
pub fn number(x: f64, lang: &str) -> String {
    if !x.is_finite() {
        return x.to_string();
    }
    let r = (x * 1e4).round() / 1e4;
    let s = format!("{:.4}", r.abs());
    let (int, frac) = s.split_once('.').unwrap_or((&s, ""));
    let frac = frac.trim_end_matches('0');
    let (group, point) = if lang == "fr" { ('\u{202f}', ',') } else { (',', '.') };
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(group);
        }
        grouped.push(c);
    }
    let sign = if r < 0.0 { "-" } else { "" };
    if frac.is_empty() {
        format!("{sign}{grouped}")
    } else {
        format!("{sign}{grouped}{point}{frac}")
    }
}

/// The catalogue as a Markdown table (docs/metrics.md carries it): one row
/// per rule and profile, or per rule for one profile.
pub fn markdown(profile: Option<&str>, lang: &str) -> String {
    let cat = catalogue();
    let mut o = String::new();
    o.push_str("| rule | counted | unit | profile | status when crossed | threshold | limit | sources |\n");
    o.push_str("|---|---|---|---|---|---|---|---|\n");
    for r in &cat.rule {
        for (p, pr) in &r.profiles {
            if profile.is_some_and(|want| want != p) {
                continue;
            }
            let status = if !pr.enabled {
                "off".to_string()
            } else {
                match pr.status {
                    Severity::Breach => "breach".into(),
                    Severity::Attention => "attention".into(),
                }
            };
            let limit = match pr.limit {
                Some(l) => {
                    let op = match (r.limit_kind, pr.limit_inclusive) {
                        (LimitKind::Above, true) => ">= ",
                        (LimitKind::Above, false) => "> ",
                        (LimitKind::Below, _) => "< ",
                        (LimitKind::Every, _) => "per ",
                    };
                    let mut s = format!("{op}{} {}", number(l, lang), r.limit_unit);
                    if let Some(m) = &pr.measure {
                        s.push_str(&format!(", {m}"));
                    }
                    for (k, v) in &pr.params {
                        s.push_str(&format!(", {k} {}", number(*v, lang)));
                    }
                    s
                }
                None => "-".into(),
            };
            o.push_str(&format!(
                "| `{}` | {} | {} | {p} | {status} | {} {} | {limit} | {} |\n",
                r.id,
                r.counted.label(lang),
                r.unit,
                r.compare.symbol(),
                number(pr.threshold, lang),
                pr.sources.get(lang).join("; ")
            ));
        }
    }
    o
}

/// Facts built field by field.
pub fn facts(case: &str) -> Facts {
    Facts { case: case.to_string(), values: BTreeMap::new() }
}

impl Facts {
    /// Adds the number `x` under `name`.
    pub fn n(mut self, name: &str, x: impl Into<f64>) -> Self {
        self.values.insert(name.to_string(), Fact::Number(x.into()));
        self
    }

    /// Adds the label `s` under `name`.
    pub fn t(mut self, name: &str, s: impl Into<String>) -> Self {
        self.values.insert(name.to_string(), Fact::Text(s.into()));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogue_parses_and_is_complete() {
        let c = catalogue();
        assert!(c.problems().is_empty(), "{:#?}", c.problems());
        assert_eq!(c.profile_ids(), ["fr", "eu", "de", "us-ca"]);
    }

    #[test]
    fn numbers_are_written_per_language() {
        assert_eq!(number(3784577.0, "fr"), "3\u{202f}784\u{202f}577");
        assert_eq!(number(3784577.0, "en"), "3,784,577");
        assert_eq!(number(0.12, "fr"), "0,12");
        assert_eq!(number(1.25, "en"), "1.25");
        assert_eq!(number(-1234.5, "en"), "-1,234.5");
        assert_eq!(number(600.0, "en"), "600");
        assert_eq!(number(0.33333, "en"), "0.3333");
    }

    #[test]
    fn templates_are_filled_and_missing_names_kept() {
        let f = facts("x").n("count", 3).t("week", "2026-W10");
        assert_eq!(fill("{count} in {week}, {other}", &f.values, "en"), "3 in 2026-W10, {other}");
        assert_eq!(placeholders("{b} {a} {b}"), ["a", "b"]);
        let one = facts("x").n("n", 1);
        let two = facts("x").n("n", 2);
        let zero = facts("x").n("n", 0);
        let t = "{n} {n|journée|journées} {n|a|ont}";
        assert_eq!(fill(t, &one.values, "fr"), "1 journée a");
        assert_eq!(fill(t, &zero.values, "fr"), "0 journée a");
        assert_eq!(fill(t, &two.values, "fr"), "2 journées ont");
        assert_eq!(fill("{n} {n|flag|flags}", &zero.values, "en"), "0 flags");
        assert_eq!(fill("{n} {n|flag|flags}", &one.values, "en"), "1 flag");
        assert_eq!(placeholders("{n|a|b} {m}"), ["m", "n"]);
    }
}
