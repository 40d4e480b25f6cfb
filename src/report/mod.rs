//! report.html: one self-contained file (inline CSS and SVG, no script,
//! nothing fetched) that a works council can print and an inspector can
//! cite, in French or English (docs/report.md).
//!
//! This module prepares the data; the page is the askama template
//! `templates/report.html` (escaping on), its own sentences are in
//! `src/report/locale.toml` and the rules' texts in the rule catalogue.
//! The markup is well-formed XML (every element closed, text escaped), so
//! that the tests can parse it strictly.

mod charts;
pub mod format;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use askama::Template;
use vigie_analyze::catalogue::{catalogue, fill, Text};
use vigie_analyze::findings::{Fact, Finding, Findings, Status};
use vigie_analyze::policy::{Policy, Severity};
use vigie_analyze::rules::{AggregateRow, Evaluation};
use vigie_analyze::shifts::HIST_BOUNDS_S;

use charts::{Chart, COLORS};
use format::{number, percent};

/// Escapes text for HTML and XML.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// The report's own sentences (`locale.toml`).
fn locale() -> &'static BTreeMap<String, Text> {
    static L: OnceLock<BTreeMap<String, Text>> = OnceLock::new();
    L.get_or_init(|| match toml::from_str(include_str!("locale.toml")) {
        Ok(m) => m,
        // The file is part of the build and checked by its tests.
        Err(e) => panic!("src/report/locale.toml: {e}"),
    })
}

/// The report's sentences in one language.
pub struct Locale {
    lang: &'static str,
}

impl Locale {
    /// A sentence; an unknown key shows as itself (a test forbids them).
    pub fn t(&self, key: &str) -> &'static str {
        match locale().get(key) {
            Some(t) => {
                if self.lang == "fr" {
                    &t.fr
                } else {
                    &t.en
                }
            }
            None => "",
        }
    }

    /// A sentence with its `{placeholders}` filled.
    fn f(&self, key: &str, values: &[(&str, String)]) -> String {
        let values: BTreeMap<String, Fact> =
            values.iter().map(|(k, v)| (k.to_string(), Fact::Text(v.clone()))).collect();
        fill(self.t(key), &values, self.lang)
    }

    fn status(&self, s: Status) -> &'static str {
        self.t(&format!("status_{}", s.as_str()))
    }

    /// A unit of the catalogue in the report's language.
    fn unit(&self, unit: &str) -> String {
        let t = self.t(&format!("unit_{unit}"));
        if t.is_empty() {
            unit.to_string()
        } else {
            t.to_string()
        }
    }

    fn group(&self, group: &str) -> String {
        match group.split_once(':') {
            Some(("team", name)) => self.f("group_team", &[("name", name.to_string())]),
            Some(("zone", name)) => self.f("group_zone", &[("name", name.to_string())]),
            _ if group == "site" => self.t("group_site").to_string(),
            _ => group.to_string(),
        }
    }

    fn period(&self, period: &str) -> String {
        if period == "all" {
            self.t("period_all").to_string()
        } else {
            format::week(period, self.lang)
        }
    }
}

/// Every key of the locale file, for its tests.
pub fn locale_keys() -> Vec<String> {
    locale().keys().cloned().collect()
}

/// One sentence of the locale file in a language (tests).
pub fn sentence(key: &str, lang: &str) -> &'static str {
    Locale { lang: if lang == "fr" { "fr" } else { "en" } }.t(key)
}

/// A finding's evidence sentence in the report's language, from its facts
/// and the catalogue (weeks and dates written out); what was added to the
/// English sentence afterwards (the service's note on incomplete data)
/// follows it.
fn evidence(x: &Finding, lang: &str) -> String {
    let cat = catalogue();
    let mut facts = x.facts.clone();
    for v in facts.values.values_mut() {
        if let Fact::Text(t) = v {
            *t = format::label(t, lang);
        }
    }
    let text = cat.render(&x.rule, &facts, lang);
    if text.is_empty() {
        return x.explanation.clone();
    }
    let en = cat.render(&x.rule, &x.facts, "en");
    match x.explanation.strip_prefix(en.as_str()) {
        Some(tail) => format!("{text}{tail}"),
        None => text,
    }
}

/// A number as the data attributes carry it (Rust's shortest form, which
/// reads back to the same value).
fn raw(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

/// An observed value in the report's language and the rule's unit.
fn observed_label(x: Option<f64>, unit: &str, l: &Locale) -> String {
    match x {
        None => "–".to_string(),
        Some(v) if unit.starts_with("share") || unit == "relative change" => percent(v, l.lang),
        Some(v) => format!("{} {}", number(v, l.lang), l.unit(unit)),
    }
}

fn threshold_label(symbol: &str, threshold: f64, unit: &str, l: &Locale) -> String {
    let value = if unit.starts_with("share") || unit == "relative change" {
        percent(threshold, l.lang)
    } else {
        number(threshold, l.lang)
    };
    format!("{symbol} {value}")
}

/// Rows of one rule's table a reader can take in: past this many, the
/// report shows the most serious and says how many more findings.json has.
pub const MAX_ROWS_PER_RULE: usize = 120;
/// Sites named in the header before "and N more".
pub const MAX_SITES_NAMED: usize = 12;
/// Findings put first, on page one.
pub const TOP_FINDINGS: usize = 5;
/// Up to this many groups, units per hour get one small chart per group;
/// past it, one chart with the site and the groups whose median moved
/// most.
pub const SMALL_MULTIPLES: usize = 6;

fn rank(s: Status) -> u8 {
    match s {
        Status::Breach => 0,
        Status::Attention => 1,
        Status::InsufficientData => 2,
        Status::Ok => 3,
    }
}

/// The rows shown for one rule: all of them up to [`MAX_ROWS_PER_RULE`],
/// else the most serious first (breach, attention, insufficient data, ok),
/// in their order within a status.
fn readable_rows(rows: &[&Finding]) -> std::collections::HashSet<usize> {
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by_key(|i| rank(rows[*i].status));
    order.into_iter().take(MAX_ROWS_PER_RULE).collect()
}

fn readable_list(names: &[String], l: &Locale) -> String {
    if names.len() <= MAX_SITES_NAMED {
        return names.join(", ");
    }
    l.f(
        "sites_more",
        &[
            ("list", names[..MAX_SITES_NAMED].join(", ")),
            ("n", number((names.len() - MAX_SITES_NAMED) as f64, l.lang)),
        ],
    )
}

/// One row of a rule's table.
struct Row {
    status: &'static str,
    rule: String,
    site: String,
    group: String,
    period: String,
    observed: String,
    threshold: String,
    population: u64,
    group_label: String,
    period_label: String,
    status_label: &'static str,
    observed_label: String,
    threshold_label: String,
    population_label: String,
    evidence: String,
}

/// One rule's section.
struct RuleSection {
    id: String,
    name: String,
    description: String,
    threshold: String,
    sources: String,
    note: String,
    contested: Vec<(String, String)>,
    questions: Vec<String>,
    site_rows: Vec<Row>,
    group_rows: Vec<Row>,
    groups_summary: String,
    more: String,
}

/// One of the findings put first.
struct Top {
    class: &'static str,
    status: &'static str,
    rule: String,
    name: String,
    where_: String,
    sentence: String,
    ask: String,
}

#[derive(Template)]
#[template(path = "report.html")]
struct Page {
    lang: &'static str,
    l: Locale,
    css: &'static str,
    identity: String,
    intro: String,
    audited: Vec<(String, String)>,
    contained: Vec<String>,
    top: Vec<Top>,
    counts: Vec<(&'static str, String)>,
    limits: (String, String),
    charts: Vec<Chart>,
    rules: Vec<RuleSection>,
    cannot: Vec<String>,
    inspection: Vec<String>,
    levers: Vec<String>,
    letters: Vec<(String, String, String)>,
    methods: Vec<String>,
    dated: Dated,
    provenance: ProvenanceView,
    footer: String,
}

/// The annex on where the findings come from and how to check them.
#[derive(Default)]
struct ProvenanceView {
    intro: String,
    rows: Vec<(String, String)>,
    how: String,
    command: String,
}

fn provenance_view(f: &Findings, l: &Locale) -> ProvenanceView {
    let Some(p) = &f.provenance else { return ProvenanceView::default() };
    let mut rows = vec![
        (l.t("prov_version").to_string(), format!("vigie {} ({})", p.vigie_version, p.source_revision)),
        (
            l.t("prov_policy").to_string(),
            match &p.policy.file_sha256 {
                Some(sha) => format!("{} · SHA-256 {sha}", p.policy.name),
                None => l.f("prov_profile", &[("name", p.policy.name.clone())]),
            },
        ),
    ];
    for i in &p.inputs {
        rows.push((
            l.f("prov_input", &[("name", i.name.clone())]),
            format!(
                "SHA-256 {} · {} · {}",
                i.sha256,
                l.f("prov_bytes", &[("n", number(i.bytes as f64, l.lang))]),
                l.f("prov_records", &[("n", number(i.records as f64, l.lang))])
            ),
        ));
    }
    for s in &p.streams {
        rows.push((
            l.f("prov_stream", &[("topic", s.topic.clone()), ("partition", s.partition.to_string())]),
            format!("epoch {} · offsets {}–{}", s.epoch, s.first_offset, s.last_offset),
        ));
    }
    if let Some(sha) = &p.employer_sha256 {
        rows.push((l.t("prov_employer").to_string(), format!("SHA-256 {sha}")));
    }
    if let Some(sha) = &p.mapping_sha256 {
        rows.push((l.t("prov_mapping").to_string(), format!("SHA-256 {sha}")));
    }
    let key = if p.key_fingerprint == vigie_ingest::pseudo::RANDOM_KEY {
        l.t("prov_key_random").to_string()
    } else {
        p.key_fingerprint.clone()
    };
    rows.push((l.t("prov_key").to_string(), key));
    let inputs: Vec<String> = p.inputs.iter().map(|i| format!("--input {}", i.name)).collect();
    ProvenanceView {
        intro: l.t("prov_intro").to_string(),
        rows,
        how: l.t("prov_how").to_string(),
        command: format!(
            "vigie verify {} {} --pub-key {}\nsha256sum {}",
            l.t("prov_out_folder"),
            inputs.join(" "),
            l.t("prov_signer"),
            p.inputs.iter().map(|i| i.name.as_str()).collect::<Vec<_>>().join(" ")
        )
        .trim_end()
        .to_string(),
    }
}

/// The pace before and after dated changes, and the target steps (site
/// level).
#[derive(Default)]
struct Dated {
    show: bool,
    intro: String,
    /// process, date, what changed, days before / after, median before,
    /// after, change with its interval.
    rows: Vec<[String; 6]>,
    /// process, from, to, days, target.
    steps: Vec<[String; 4]>,
}

fn dated(eval: &Evaluation, policy: &Policy, l: &Locale) -> Dated {
    let lang = l.lang;
    let sites: BTreeSet<&str> = eval.comparisons.iter().map(|c| c.site.as_str()).collect();
    let place = |site: &str, process: &str| {
        let p = if process == "(none)" { l.t("process_none").to_string() } else { process.to_string() };
        if sites.len() > 1 {
            format!("{site} · {p}")
        } else {
            p
        }
    };
    let uph = |v: Option<f64>| v.map_or("–".to_string(), |v| number((v * 10.0).round() / 10.0, lang));
    let rows: Vec<[String; 6]> = eval
        .comparisons
        .iter()
        .filter(|c| c.group == "site")
        .map(|c| {
            let what = match c.source {
                vigie_analyze::dated::ChangeSource::Declared => {
                    l.f("dated_declared", &[("description", c.description.clone())])
                }
                vigie_analyze::dated::ChangeSource::Target => {
                    l.f("dated_target", &[("from", uph(c.target_from)), ("to", uph(c.target_to))])
                }
            };
            let change = match (c.relative, c.low, c.high) {
                (Some(r), Some(lo), Some(hi)) => format!(
                    "{} [{} ; {}]",
                    signed(100.0 * r, lang),
                    signed(100.0 * lo, lang),
                    signed(100.0 * hi, lang)
                ),
                _ => "–".to_string(),
            };
            [
                place(&c.site, &c.process),
                format::date(c.date, lang),
                what,
                format!("{} / {}", c.days_before, c.days_after),
                format!("{} → {}", uph(c.before_uph), uph(c.after_uph)),
                change,
            ]
        })
        .collect();
    let steps: Vec<[String; 4]> = eval
        .target_steps
        .iter()
        .filter(|t| t.group == "site")
        .map(|t| {
            [
                place(&t.site, &t.process),
                format::range(t.from, t.to, lang),
                t.days.to_string(),
                uph(Some(t.target_uph)),
            ]
        })
        .collect();
    let id = "cadence.intensification";
    Dated {
        show: !rows.is_empty() || !steps.is_empty(),
        intro: l.f(
            "dated_intro",
            &[
                ("days", number(policy.param(id, "window_days", 14.0), lang)),
                ("min", number(policy.param(id, "min_segment_days", 3.0), lang)),
                ("k", policy.k.to_string()),
            ],
        ),
        rows,
        steps,
    }
}

/// A percentage with its sign and one decimal: `+12.3 %`.
fn signed(pct: f64, lang: &str) -> String {
    let r = (pct * 10.0).round() / 10.0;
    let sign = if r > 0.0 { "+" } else { "" };
    format!("{sign}{} %", number(r, lang))
}

/// Renders the report in `lang` (`fr` or `en`).
pub fn render(f: &Findings, eval: &Evaluation, policy: &Policy, lang: &str) -> String {
    let lang: &'static str = if lang == "fr" { "fr" } else { "en" };
    let l = Locale { lang };
    let cat = catalogue();
    let k = policy.k.to_string();
    let i = &f.input;
    let (from, to) =
        (i.from.as_deref().and_then(format::instant_date), i.to.as_deref().and_then(format::instant_date));
    let period = match (from, to) {
        (Some(a), Some(b)) => format::range(a, b, lang),
        _ => "–".to_string(),
    };
    let profile_name = cat
        .profile(&policy.name)
        .map(|p| p.name.get(lang).to_string())
        .unwrap_or_else(|| policy.name.clone());
    let generated = format::instant_date(&f.generated_at)
        .map(|d| format::date(d, lang))
        .unwrap_or_else(|| f.generated_at.clone());

    // Page one: what was audited.
    let workers: u64 = {
        let mut by_site: BTreeMap<&str, u64> = BTreeMap::new();
        for x in f.findings.iter().filter(|x| x.group == "site" && x.period == "all") {
            let e = by_site.entry(&x.site).or_default();
            *e = (*e).max(x.population);
        }
        by_site.values().sum()
    };
    let n = |x: u64| number(x as f64, lang);
    let audited = vec![
        (l.t("period").to_string(), period.clone()),
        (l.t("sites").to_string(), readable_list(&i.sites, &l)),
        (l.t("workers").to_string(), n(workers)),
        (l.t("events").to_string(), n(i.events)),
        (l.t("rejected").to_string(), n(i.rejected)),
        (l.t("duplicates").to_string(), n(i.duplicates)),
        (l.t("withheld").to_string(), n(f.privacy.suppressed_groups)),
        (l.t("profile").to_string(), format!("{profile_name} ({})", policy.name)),
        (l.t("generated").to_string(), generated.clone()),
    ];
    let site_rows = eval.aggregates.iter().filter(|a| a.group == "site");
    let (idle, speed, justify) = site_rows
        .fold((0, 0, 0), |(a, b, c), r| (a + r.idle_flags, b + r.speed_flags, c + r.justification_requests));
    let mut contained = vec![
        l.f("contained_idle", &[("n", n(idle))]),
        l.f("contained_speed", &[("n", n(speed))]),
        l.f("contained_justify", &[("n", n(justify))]),
        l.t(if f.findings.iter().any(|x| x.rule == "load.daily_mass") {
            "contained_weights"
        } else {
            "contained_no_weights"
        })
        .to_string(),
    ];
    if i.overlapping_shifts > 0 {
        contained.push(l.f("contained_overlap", &[("n", n(i.overlapping_shifts))]));
    }

    // The findings that matter most: one per rule, the most serious, the
    // site's before a group's.
    let mut best: BTreeMap<&str, &Finding> = BTreeMap::new();
    for x in f.findings.iter().filter(|x| matches!(x.status, Status::Breach | Status::Attention)) {
        let key = |y: &Finding| (rank(y.status), y.group != "site", std::cmp::Reverse(y.period.clone()));
        let e = best.entry(&x.rule).or_insert(x);
        if key(x) < key(e) {
            *e = x;
        }
    }
    let mut tops: Vec<&Finding> = best.into_values().collect();
    tops.sort_by_key(|x| (rank(x.status), cat.order(&x.rule)));
    let top = tops
        .into_iter()
        .take(TOP_FINDINGS)
        .map(|x| Top {
            class: x.status.as_str(),
            status: l.status(x.status),
            rule: x.rule.clone(),
            name: cat.rule(&x.rule).map(|r| r.name.get(lang).to_string()).unwrap_or_else(|| x.rule.clone()),
            where_: format!("{} · {} · {}", x.site, l.group(&x.group), l.period(&x.period)),
            sentence: evidence(x, lang),
            ask: cat.rule(&x.rule).and_then(|r| r.questions.get(lang).first().cloned()).unwrap_or_default(),
        })
        .collect();
    let status_counts = f.status_counts();
    let counts = [Status::Breach, Status::Attention, Status::InsufficientData, Status::Ok]
        .into_iter()
        .map(|s| {
            let count = status_counts.get(&s).copied().unwrap_or(0) as f64;
            let mut v = BTreeMap::new();
            v.insert("n".to_string(), Fact::Number(count));
            (s.as_str(), fill(l.t(&format!("count_{}", s.as_str())), &v, lang))
        })
        .collect();
    let limits = (l.t("limit_scans").to_string(), l.f("limit_k", &[("k", k.clone())]));

    // Rule by rule.
    let builtin = Policy::profile(&policy.name).is_ok_and(|p| {
        p.rules
            .iter()
            .all(|(id, r)| policy.rules.get(id).is_some_and(|q| q.sources == r.sources && q.note == r.note))
    });
    let mut order: Vec<&str> = Vec::new();
    for x in &f.findings {
        if !order.contains(&x.rule.as_str()) {
            order.push(&x.rule);
        }
    }
    let mut rules = Vec::new();
    for rule in order {
        let def = cat.rule(rule);
        let p = policy.rules.get(rule);
        let profile_rule = def.and_then(|d| d.profiles.get(&policy.name)).filter(|_| builtin);
        let (threshold, sources, note) = match p {
            Some(p) => {
                let severe = if p.severity == Severity::Breach { Status::Breach } else { Status::Attention };
                (
                    format!(
                        "{} {} → {}",
                        threshold_label(p.compare.symbol(), p.threshold, &p.unit, &l),
                        if p.unit.starts_with("share") || p.unit == "relative change" {
                            String::new()
                        } else {
                            l.unit(&p.unit)
                        },
                        l.status(severe)
                    ),
                    match profile_rule {
                        Some(pr) => pr
                            .sources
                            .get(lang)
                            .join(" ; ")
                            .replace(" ; ", if lang == "fr" { " ; " } else { "; " }),
                        None => p.sources.join("; "),
                    },
                    match profile_rule {
                        Some(pr) => pr.note.get(lang).to_string(),
                        None => p.note.clone(),
                    },
                )
            }
            None => (String::new(), String::new(), String::new()),
        };
        let all: Vec<&Finding> = f.findings.iter().filter(|x| x.rule == rule).collect();
        let shown = readable_rows(&all);
        let row = |x: &Finding| Row {
            status: x.status.as_str(),
            rule: x.rule.clone(),
            site: x.site.clone(),
            group: x.group.to_string(),
            period: x.period.to_string(),
            observed: x.observed.map(raw).unwrap_or_default(),
            threshold: raw(x.threshold),
            population: x.population,
            group_label: if i.sites.len() > 1 {
                format!("{} · {}", x.site, l.group(&x.group))
            } else {
                l.group(&x.group)
            },
            period_label: l.period(&x.period),
            status_label: l.status(x.status),
            observed_label: observed_label(x.observed, &x.unit, &l),
            threshold_label: threshold_label(p.map_or(">", |p| p.compare.symbol()), x.threshold, &x.unit, &l),
            population_label: n(x.population),
            evidence: evidence(x, lang),
        };
        let mut site_rows = Vec::new();
        let mut group_rows = Vec::new();
        for (j, x) in all.iter().enumerate() {
            if !shown.contains(&j) {
                continue;
            }
            if x.group == "site" {
                site_rows.push(row(x));
            } else {
                group_rows.push(row(x));
            }
        }
        let groups_total = all.iter().filter(|x| x.group != "site").count();
        let notable = all
            .iter()
            .filter(|x| x.group != "site" && matches!(x.status, Status::Breach | Status::Attention))
            .count();
        rules.push(RuleSection {
            id: rule.to_string(),
            name: def.map(|d| d.name.get(lang).to_string()).unwrap_or_else(|| rule.to_string()),
            description: def.map(|d| d.description.get(lang).to_string()).unwrap_or_default(),
            threshold,
            sources,
            note,
            contested: def
                .map(|d| {
                    d.contested
                        .iter()
                        .map(|c| (c.who.get(lang).to_string(), c.held.get(lang).to_string()))
                        .collect()
                })
                .unwrap_or_default(),
            questions: def.map(|d| d.questions.get(lang).to_vec()).unwrap_or_default(),
            site_rows,
            group_rows,
            groups_summary: l
                .f("groups_folded", &[("n", n(groups_total as u64)), ("notable", n(notable as u64))]),
            more: if all.len() > shown.len() {
                l.f("more_rows", &[("n", n((all.len() - shown.len()) as u64))])
            } else {
                String::new()
            },
        });
    }

    let withheld = n(f.privacy.suppressed_groups);
    let cannot = vec![
        l.t("cannot_scans").to_string(),
        l.f("cannot_people", &[("k", k.clone())]),
        l.f("cannot_withheld", &[("n", withheld.clone()), ("k", k.clone())]),
        l.t("cannot_context").to_string(),
    ];
    let inspection = vec![
        l.f("inspection_k", &[("k", k.clone())]),
        l.t("inspection_records").to_string(),
        l.t("inspection_point").to_string(),
    ];
    let levers = vec![
        l.t("lever_consult").to_string(),
        l.t("lever_expert").to_string(),
        l.t("lever_letters").to_string(),
    ];
    let letters = cat
        .letter
        .iter()
        .map(|x| {
            (
                x.title.get(lang).to_string(),
                x.body.get(lang).to_string(),
                x.note.as_ref().map(|t| t.get(lang).to_string()).unwrap_or_default(),
            )
        })
        .collect();
    let mut methods = vec![
        l.f("method_pseudo", &[("pseudo", f.privacy.pseudonymisation.clone())]),
        l.f("method_k", &[("k", k.clone()), ("n", withheld)]),
        l.f("method_shifts", &[("break_min", number(policy.break_min_minutes, lang))]),
        l.t("method_thresholds").to_string(),
    ];
    if let Some(m) = &f.input.mapping {
        // How the export was read: the mapping, what it skipped, the
        // changes of hour it met.
        let skipped: u64 = m.unmapped_codes.values().sum();
        let mut by_count: Vec<(&String, &u64)> = m.unmapped_codes.iter().collect();
        by_count.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
        let codes = by_count
            .iter()
            .take(5)
            .map(|(c, k)| {
                let c = if c.is_empty() { "—" } else { c.as_str() };
                if lang == "fr" {
                    format!("« {c} » ({})", n(**k))
                } else {
                    format!("“{c}” ({})", n(**k))
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
        methods.push(l.f(
            "method_mapping",
            &[
                ("name", m.name.clone()),
                ("sha", m.sha256.chars().take(16).collect()),
                ("skipped", n(skipped)),
                ("codes", if codes.is_empty() { "—".into() } else { codes }),
                ("dst", n(m.dst_ambiguous + m.dst_nonexistent)),
            ],
        ));
    }
    let footer = l.f(
        "footer",
        &[
            ("version", env!("CARGO_PKG_VERSION").to_string()),
            ("profile", policy.name.clone()),
            ("period", period.clone()),
            ("k", k.clone()),
            ("generated", generated),
        ],
    );
    let page = Page {
        lang,
        css: CSS,
        identity: format!("{} · {} · {period}", readable_list(&i.sites, &l), profile_name),
        intro: l.f("intro", &[("k", k)]),
        audited,
        contained,
        top,
        counts,
        limits,
        charts: charts(f, eval, policy, &l),
        rules,
        cannot,
        inspection,
        levers,
        letters,
        methods,
        dated: dated(eval, policy, &l),
        provenance: provenance_view(f, &l),
        footer,
        l,
    };
    page.render().unwrap_or_else(|e| {
        format!("<!DOCTYPE html><html><body><p>{}</p></body></html>", esc(&e.to_string()))
    })
}

/// The charts of the first site: units per hour per week (the site and at
/// most five groups, against the first weeks), intervals between scans,
/// gap classes, working-time findings per week, data per day.
fn charts(f: &Findings, eval: &Evaluation, policy: &Policy, l: &Locale) -> Vec<Chart> {
    let lang = l.lang;
    let site = f.input.sites.first().cloned().unwrap_or_default();
    let agg: Vec<_> = eval.aggregates.iter().filter(|a| a.site == site).collect();
    let weeks: Vec<String> =
        agg.iter().map(|a| a.week.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    if agg.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    let week_labels: Vec<(String, String)> = weeks
        .iter()
        .map(|w| {
            let short =
                format::week_monday(w).map(|m| format::short_date(m, lang)).unwrap_or_else(|| w.clone());
            (short, format::week(w, lang))
        })
        .collect();
    // 1. Units per hour: the site, then the groups whose median moved most.
    let uph = |g: &str| -> Vec<Option<f64>> {
        weeks
            .iter()
            .map(|w| agg.iter().find(|a| a.group == g && &a.week == w).and_then(|a| a.uph_p50))
            .collect()
    };
    let mut groups: Vec<(f64, String)> = agg
        .iter()
        .map(|a| a.group.to_string())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter(|g| g != "site")
        .map(|g| {
            let v: Vec<f64> = uph(&g).into_iter().flatten().collect();
            let moved = match (v.first(), v.last()) {
                (Some(a), Some(b)) if *a > 0.0 => ((b - a) / a).abs(),
                _ => 0.0,
            };
            (moved, g)
        })
        .collect();
    groups.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    let n_base = policy.intensification_weeks as usize;
    let site_uph = uph("site");
    let base: Vec<f64> = site_uph.iter().take(n_base).flatten().copied().collect();
    let reference = (!base.is_empty())
        .then(|| (base.iter().sum::<f64>() / base.len() as f64, l.t("chart_baseline").to_string()));
    // The site's change of pace, when one was found: the week it fell in.
    let change = f
        .findings
        .iter()
        .find(|x| x.rule == "cadence.intensification" && x.group == "site" && x.status == Status::Attention)
        .and_then(|x| match x.facts.values.get("date") {
            Some(vigie_analyze::findings::Fact::Text(d)) => {
                chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok()
            }
            _ => None,
        })
        .and_then(|d| {
            use chrono::Datelike;
            let w = d.iso_week();
            let label = format!("{}-W{:02}", w.year(), w.week());
            weeks.iter().position(|x| *x == label).map(|i| (i, d))
        });
    let change_legend = change
        .map(|(_, d)| (charts::CHANGE.to_string(), l.f("chart_change", &[("date", format::date(d, lang))])));
    let change = change.map(|(i, _)| i);
    if !groups.is_empty() && groups.len() <= SMALL_MULTIPLES {
        // Few groups: one small chart per group, the site beside it.
        let mut svg = String::from("<div class=\"multiples\">");
        let mut legend: Vec<(String, String)> = Vec::new();
        let mut table = Vec::new();
        let mut names: Vec<String> = groups.iter().map(|(_, g)| g.clone()).collect();
        names.sort();
        for g in names {
            let c = charts::lines(
                "chart-uph",
                l.group(&g),
                l.t("chart_uph_unit"),
                &week_labels,
                &[(l.group(&g), uph(&g)), (l.group("site"), site_uph.clone())],
                charts::Marks { reference: reference.clone(), change, steps: None },
                lang,
            );
            svg.push_str(&format!("<div class=\"small\"><p>{}</p>{}</div>", esc(&l.group(&g)), c.svg));
            let (mark, group_line, site_line) = (c.legend.first(), c.legend.get(1), c.legend.get(2));
            for item in [mark, site_line].into_iter().flatten() {
                if !legend.iter().any(|x| x.1 == item.1) {
                    legend.push(item.clone());
                }
            }
            if let Some((color, _)) = group_line {
                if !legend.iter().any(|x| x.0 == *color) {
                    legend.push((color.clone(), l.t("chart_uph_group").to_string()));
                }
            }
            let site_name = l.group("site");
            table.extend(c.table.into_iter().filter(|(label, _)| !label.starts_with(&site_name)));
        }
        svg.push_str("</div>");
        legend.extend(change_legend);
        out.push(Chart { id: "chart-uph", title: l.t("chart_uph_groups").to_string(), svg, legend, table });
    } else {
        // Many groups: the site and those whose median moved most.
        let mut series = vec![(l.group("site"), site_uph)];
        for (_, g) in groups.into_iter().take(COLORS.len() - 1) {
            series.push((l.group(&g), uph(&g)));
        }
        let mut c = charts::lines(
            "chart-uph",
            l.t("chart_uph").to_string(),
            l.t("chart_uph_unit"),
            &week_labels,
            &series,
            charts::Marks { reference, change, steps: None },
            lang,
        );
        c.legend.extend(change_legend);
        out.push(c);
    }
    // 1b. The target in force against what was achieved (site, weekly
    // medians), when the data carry targets.
    let site_rows: Vec<_> = agg.iter().filter(|a| a.group == "site").collect();
    if site_rows.iter().any(|a| a.target_p50.is_some()) {
        let by_week = |get: fn(&AggregateRow) -> Option<f64>| -> Vec<Option<f64>> {
            weeks.iter().map(|w| site_rows.iter().find(|a| &a.week == w).and_then(|a| get(a))).collect()
        };
        out.push(charts::lines(
            "chart-target",
            l.t("chart_target").to_string(),
            l.t("chart_uph_unit"),
            &week_labels,
            &[
                (l.t("chart_target_achieved").to_string(), by_week(|a| a.uph_p50)),
                (l.t("chart_target_level").to_string(), by_week(|a| a.target_p50)),
            ],
            charts::Marks { reference: None, change: None, steps: Some(1) },
            lang,
        ));
    }
    // 2. Intervals between scans, site, all weeks, with the rush limit.
    let mut hist = [0u64; HIST_BOUNDS_S.len() + 1];
    for a in agg.iter().filter(|a| a.group == "site") {
        for (x, y) in hist.iter_mut().zip(a.hist) {
            *x += y;
        }
    }
    let bars: Vec<(String, f64)> = hist
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let label = match HIST_BOUNDS_S.get(i) {
                Some(b) => format!("≤ {}", number(*b, lang)),
                None => format!("> {}", number(HIST_BOUNDS_S[HIST_BOUNDS_S.len() - 1], lang)),
            };
            (label, *v as f64)
        })
        .collect();
    let rush = policy.limit("cadence.rush_share", 1.25);
    let after = HIST_BOUNDS_S.iter().take_while(|b| **b <= rush).count() as f64;
    out.push(charts::bars(
        "chart-intervals",
        format!("{} ({})", l.t("chart_intervals"), l.t("chart_seconds")),
        l.t("chart_intervals_unit"),
        &bars,
        COLORS[0],
        Some((after, format!("{} s", number(rush, lang)))),
        lang,
    ));
    // 3. Gap classes.
    let mut gaps = [0u64; 4];
    for a in agg.iter().filter(|a| a.group == "site") {
        for (x, y) in gaps.iter_mut().zip(a.gaps) {
            *x += y;
        }
    }
    let names = [
        "< 60 s".to_string(),
        "60-599 s".to_string(),
        "≥ 600 s".to_string(),
        l.f("chart_gap_break", &[("n", number(policy.break_min_minutes, lang))]),
    ];
    let bars: Vec<(String, f64)> = names.into_iter().zip(gaps).map(|(n, v)| (n, v as f64)).collect();
    out.push(charts::bars(
        "chart-gaps",
        l.t("chart_gaps").to_string(),
        l.t("chart_gaps_unit"),
        &bars,
        COLORS[2],
        None,
        lang,
    ));
    // 4. Working-time findings over a limit per week (site).
    let cat = catalogue();
    let bars: Vec<(String, f64)> = weeks
        .iter()
        .zip(&week_labels)
        .map(|(w, (short, _))| {
            let v: f64 = f
                .findings
                .iter()
                .filter(|x| {
                    x.site == site
                        && x.group == "site"
                        && x.period.as_str() == w.as_str()
                        && cat.rule(&x.rule).is_some_and(|r| r.family == "worktime")
                })
                .filter_map(|x| x.observed)
                .sum();
            (short.clone(), v)
        })
        .collect();
    out.push(charts::bars(
        "chart-worktime",
        l.t("chart_worktime").to_string(),
        l.t("chart_worktime_unit"),
        &bars,
        COLORS[1],
        None,
        lang,
    ));
    // 5. Data per day.
    let bars: Vec<(String, f64)> = eval
        .coverage
        .iter()
        .filter(|c| c.site == site)
        .map(|c| (format::short_date(c.date, lang), c.shifts.unwrap_or(0) as f64))
        .collect();
    out.push(charts::bars(
        "chart-coverage",
        l.t("chart_coverage").to_string(),
        l.t("chart_coverage_unit"),
        &bars,
        COLORS[3],
        None,
        lang,
    ));
    out
}

const CSS: &str = "body{font-family:'DejaVu Sans',Arial,sans-serif;margin:2em;color:#222;max-width:60em;line-height:1.35}\
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:2px solid #333;margin-top:1.6em}h3{margin-bottom:.2em}\
table{border-collapse:collapse;width:100%;margin:.5em 0}th,td{border:1px solid #bbb;padding:.2em .4em;text-align:left;vertical-align:top;font-size:.9em}\
table.audited{width:auto}table.audited th{font-weight:normal;color:#444}\
.breach{background:#f8d0d0}.attention{background:#fbe9c4}.ok{background:#e6f4e6}.insufficient_data{background:#eee}\
ol.top li{margin:.4em 0;padding:.3em .5em;border-radius:.2em}p.counts span{padding:0 .3em}\
.meta{color:#555}.note{color:#444;font-style:italic}.contested{display:flex;gap:1em}.contested div{flex:1;border:1px solid #999;padding:.4em;background:#f7f7fb}\
figure.chart{margin:1em 0}figure.chart figcaption{font-weight:bold;margin:.3em 0}svg{max-width:100%;height:auto}\
div.multiples{display:flex;flex-wrap:wrap;gap:.5em}div.multiples div.small{width:48%}div.multiples p{margin:.2em 0;font-size:.85em;font-weight:bold}\
ul.legend{list-style:none;padding:0;margin:.2em 0;display:flex;flex-wrap:wrap;gap:1em;font-size:.85em}\
ul.legend .swatch{display:inline-block;width:1.2em;height:.6em;margin-right:.3em;vertical-align:middle}\
details.chart-data summary,details.groups summary{cursor:pointer;color:#333}\
.letter{border-left:3px solid #999;padding-left:.8em}footer.identity{margin-top:2em;color:#666;font-size:.8em;border-top:1px solid #ccc;padding-top:.4em}\
@page{size:A4;margin:16mm 14mm 18mm 14mm;@bottom-right{content:counter(page) ' / ' counter(pages);font-size:9pt;color:#666}}\
@media print{body{margin:0;max-width:none;font-size:10pt}details.chart-data{display:none}details>summary{list-style:none}\
thead{display:table-header-group}tr{break-inside:avoid;page-break-inside:avoid}figure.chart,.letter,.contested,ol.top li{break-inside:avoid;page-break-inside:avoid}\
h2,h3{break-after:avoid;page-break-after:avoid}a{color:inherit;text-decoration:none}footer.identity{position:fixed;bottom:0;left:0;right:0;border:0}}";

/// Finds a headless Chromium: `$VIGIE_CHROMIUM`, else `chromium`,
/// `chromium-browser` or `google-chrome` on the PATH.
pub fn find_chromium() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("VIGIE_CHROMIUM") {
        let p = std::path::PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|d| ["chromium", "chromium-browser", "google-chrome"].map(|n| d.join(n)))
        .find(|p| p.is_file())
}

/// The flags vigie gives Chromium: headless, no network of its own, a
/// fresh profile.
pub fn chromium_args(profile: &std::path::Path) -> Vec<String> {
    vec![
        "--headless".into(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--disable-background-networking".into(),
        "--disable-component-update".into(),
        "--disable-sync".into(),
        "--no-first-run".into(),
        format!("--user-data-dir={}", profile.display()),
    ]
}

/// Prints `html` to `pdf` with headless Chromium.
pub fn print_pdf(html: &std::path::Path, pdf: &std::path::Path) -> Result<(), String> {
    let chromium = find_chromium().ok_or_else(|| {
        "--pdf needs Chromium, which is not installed (apt-get install chromium, or set VIGIE_CHROMIUM); report.html is written".to_string()
    })?;
    let profile = std::env::temp_dir().join(format!("vigie-chromium-{}", std::process::id()));
    let html = std::fs::canonicalize(html).map_err(|e| format!("{}: {e}", html.display()))?;
    let mut args = chromium_args(&profile);
    args.push(format!("--print-to-pdf={}", pdf.display()));
    args.push("--no-pdf-header-footer".into());
    args.push(format!("file://{}", html.display()));
    let out = std::process::Command::new(&chromium).args(&args).output();
    let _ = std::fs::remove_dir_all(&profile);
    let out = out.map_err(|e| format!("cannot run {}: {e}", chromium.display()))?;
    if !pdf.is_file() {
        return Err(format!(
            "Chromium did not write {} (exit {:?}): {}",
            pdf.display(),
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("")
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every sentence the template and this module ask for exists, in both
    /// languages and not empty.
    #[test]
    fn every_sentence_used_is_in_the_locale_in_both_languages() {
        let used = [include_str!("../../templates/report.html"), include_str!("mod.rs")];
        let mut keys = BTreeSet::new();
        for text in used {
            for call in ["l.t(\"", "l.f(\"", "self.t(\""] {
                for part in text.split(call).skip(1) {
                    if let Some(end) = part.find('"') {
                        keys.insert(part[..end].to_string());
                    }
                }
            }
        }
        assert!(keys.len() > 40, "{keys:?}");
        for key in keys.iter().filter(|k| !k.is_empty()) {
            let t = locale().get(key).unwrap_or_else(|| panic!("no sentence `{key}` in locale.toml"));
            assert!(!t.en.is_empty() && !t.fr.is_empty(), "{key}");
        }
        for (key, t) in locale() {
            assert_eq!(
                vigie_analyze::catalogue::placeholders(&t.en),
                vigie_analyze::catalogue::placeholders(&t.fr),
                "{key}: placeholders differ"
            );
        }
    }
}
