//! report.html: one self-contained file (inline CSS and SVG, no script,
//! nothing fetched) that a works council can print and an inspector can
//! cite, in French or English (docs/report.md).
//!
//! The markup is well-formed XML (every element closed, text escaped), so
//! that the tests can parse it strictly.

use std::collections::BTreeMap;
use std::fmt::Write;

use vigie_analyze::catalogue::{catalogue, RuleDef};
use vigie_analyze::findings::{Finding, Findings, Status};
use vigie_analyze::policy::Policy;
use vigie_analyze::rules::Evaluation;
use vigie_analyze::shifts::HIST_BOUNDS_S;

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

/// Picks the French or English text.
fn t<'a>(fr: bool, en: &'a str, fr_text: &'a str) -> &'a str {
    if fr {
        fr_text
    } else {
        en
    }
}

/// Statuses worded for dialogue: the data can show a presumed breach or
/// that none was seen, not that all is in order.
fn status_label(s: Status, fr: bool) -> &'static str {
    match s {
        Status::Ok => t(fr, "no breach seen", "pas de dépassement relevé"),
        Status::Attention => t(fr, "to examine", "à examiner"),
        Status::Breach => t(fr, "presumed breach", "dépassement présumé"),
        Status::InsufficientData => t(fr, "insufficient data", "données insuffisantes"),
    }
}

/// The rule catalogue's entry for a rule (texts, sources, notes).
fn rule_def(id: &str) -> Option<&'static RuleDef> {
    catalogue().rule(id)
}

/// A finding's evidence sentence in the report's language, from its facts
/// and the catalogue; what was added to the English sentence afterwards
/// (the service's note on incomplete data) follows it.
fn evidence(x: &Finding, lang: &str) -> String {
    let cat = catalogue();
    let text = cat.render(&x.rule, &x.facts, lang);
    if text.is_empty() {
        return x.explanation.clone();
    }
    let en = cat.render(&x.rule, &x.facts, "en");
    match x.explanation.strip_prefix(en.as_str()) {
        Some(tail) => format!("{text}{tail}"),
        None => text,
    }
}

/// A catalogue text in the report's language, empty for unknown rules.
fn rule_name(id: &str, lang: &str) -> String {
    rule_def(id).map(|r| r.name.get(lang).to_string()).unwrap_or_else(|| id.to_string())
}

fn num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

// ---------------------------------------------------------------- charts

const W: f64 = 640.0;
const H: f64 = 220.0;
const PAD_L: f64 = 48.0;
const PAD_B: f64 = 36.0;
const PAD_T: f64 = 22.0;
const COLORS: [&str; 6] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"];

fn svg_open(out: &mut String, id: &str, title: &str) {
    let _ = write!(
        out,
        "<figure class=\"chart\" id=\"{id}\"><svg viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" role=\"img\"><title>{}</title>",
        esc(title)
    );
}

fn axis(out: &mut String, max: f64, label: &str) {
    let y0 = H - PAD_B;
    let _ = write!(out, "<line x1=\"{PAD_L}\" y1=\"{PAD_T}\" x2=\"{PAD_L}\" y2=\"{y0}\" stroke=\"#444\"/>");
    let _ = write!(out, "<line x1=\"{PAD_L}\" y1=\"{y0}\" x2=\"{}\" y2=\"{y0}\" stroke=\"#444\"/>", W - 8.0);
    for i in 0..=4 {
        let v = max * f64::from(i) / 4.0;
        let y = y0 - (y0 - PAD_T) * f64::from(i) / 4.0;
        let _ = write!(
            out,
            "<text x=\"{}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"end\">{}</text><line x1=\"{PAD_L}\" y1=\"{y:.1}\" x2=\"{}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>",
            PAD_L - 4.0,
            y + 3.0,
            short(v),
            W - 8.0
        );
    }
    let _ = write!(out, "<text x=\"4\" y=\"10\" font-size=\"10\">{}</text>", esc(label));
}

fn short(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v >= 10.0 || v == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// Bars, one per (label, value); `marks` draws vertical lines between
/// bars at the given fractional positions with a caption.
fn bar_chart(
    id: &str,
    title: &str,
    unit: &str,
    bars: &[(String, f64)],
    color: &str,
    mark: Option<(f64, &str)>,
) -> String {
    let mut o = String::new();
    svg_open(&mut o, id, title);
    let max = bars.iter().map(|b| b.1).fold(0.0, f64::max).max(1e-9);
    axis(&mut o, max, unit);
    let n = bars.len().max(1) as f64;
    let span = W - 8.0 - PAD_L;
    let bw = span / n;
    let y0 = H - PAD_B;
    for (i, (label, v)) in bars.iter().enumerate() {
        let h = (y0 - PAD_T) * v / max;
        let x = PAD_L + bw * i as f64;
        let _ = write!(
            o,
            "<rect class=\"bar\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"{color}\"><title>{}: {}</title></rect>",
            x + bw * 0.1,
            y0 - h,
            bw * 0.8,
            esc(label),
            num((v * 1000.0).round() / 1000.0)
        );
        if bars.len() <= 16 || i % (bars.len() / 12 + 1) == 0 {
            let _ = write!(
                o,
                "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"9\" text-anchor=\"middle\">{}</text>",
                x + bw / 2.0,
                y0 + 12.0,
                esc(label)
            );
        }
    }
    if let Some((pos, caption)) = mark {
        let x = PAD_L + bw * pos;
        let _ = write!(
            o,
            "<line class=\"mark\" x1=\"{x:.1}\" y1=\"{PAD_T}\" x2=\"{x:.1}\" y2=\"{y0}\" stroke=\"#d62728\" stroke-width=\"2\" stroke-dasharray=\"4 3\"/><text x=\"{:.1}\" y=\"{}\" font-size=\"10\" fill=\"#d62728\">{}</text>",
            x + 3.0,
            PAD_T + 10.0,
            esc(caption)
        );
    }
    o.push_str("</svg></figure>\n");
    o
}

/// Lines over weeks, one per series, and a dashed baseline.
fn line_chart(
    id: &str,
    title: &str,
    unit: &str,
    weeks: &[String],
    series: &[(String, Vec<Option<f64>>)],
    baseline: Option<(f64, &str)>,
) -> String {
    let mut o = String::new();
    svg_open(&mut o, id, title);
    let max = series
        .iter()
        .flat_map(|s| s.1.iter().flatten())
        .copied()
        .chain(baseline.map(|b| b.0))
        .fold(0.0, f64::max)
        .max(1e-9)
        * 1.1;
    axis(&mut o, max, unit);
    let y0 = H - PAD_B;
    let n = weeks.len().max(2) as f64 - 1.0;
    let x = |i: usize| PAD_L + 10.0 + (W - 30.0 - PAD_L) * i as f64 / n;
    let y = |v: f64| y0 - (y0 - PAD_T) * v / max;
    for (i, w) in weeks.iter().enumerate() {
        let _ = write!(
            o,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"9\" text-anchor=\"middle\">{}</text>",
            x(i),
            y0 + 12.0,
            esc(w)
        );
    }
    if let Some((b, caption)) = baseline {
        let _ = write!(
            o,
            "<line class=\"baseline\" x1=\"{PAD_L}\" y1=\"{:.1}\" x2=\"{}\" y2=\"{:.1}\" stroke=\"#888\" stroke-dasharray=\"5 4\"/><text x=\"{}\" y=\"{:.1}\" font-size=\"10\" fill=\"#555\">{}</text>",
            y(b),
            W - 8.0,
            y(b),
            PAD_L + 4.0,
            y(b) - 4.0,
            esc(caption)
        );
    }
    for (si, (name, values)) in series.iter().enumerate() {
        let color = COLORS[si % COLORS.len()];
        let pts: Vec<String> = values
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|v| format!("{:.1},{:.1}", x(i), y(v))))
            .collect();
        let width = if si == 0 { 3 } else { 1 };
        let _ = write!(
            o,
            "<polyline class=\"series\" points=\"{}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"{width}\"/>",
            pts.join(" ")
        );
        let _ = write!(
            o,
            "<text x=\"{}\" y=\"{}\" font-size=\"10\" fill=\"{color}\">{}</text>",
            W - 150.0,
            PAD_T + 12.0 * (si as f64 + 1.0),
            esc(name)
        );
    }
    o.push_str("</svg></figure>\n");
    o
}

// ---------------------------------------------------------------- report

/// Renders the report in `lang` (`fr` or `en`).
/// Rows of one rule's table a reader can take in: past this many, the
/// report shows the most serious and says how many more findings.json has.
pub const MAX_ROWS_PER_RULE: usize = 120;
/// Sites named in the header before "and N more".
pub const MAX_SITES_NAMED: usize = 12;

/// The rows shown for one rule: all of them up to [`MAX_ROWS_PER_RULE`],
/// else the most serious first (breach, attention, insufficient data, ok),
/// in their order within a status.
fn readable_rows(rows: &[&Finding]) -> std::collections::HashSet<usize> {
    let rank = |s: Status| match s {
        Status::Breach => 0,
        Status::Attention => 1,
        Status::InsufficientData => 2,
        Status::Ok => 3,
    };
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by_key(|i| rank(rows[*i].status));
    order.into_iter().take(MAX_ROWS_PER_RULE).collect()
}

fn readable_list(names: &[String], fr: bool) -> String {
    if names.len() <= MAX_SITES_NAMED {
        return names.join(", ");
    }
    format!(
        "{} {} {} {}",
        names[..MAX_SITES_NAMED].join(", "),
        t(fr, "and", "et"),
        names.len() - MAX_SITES_NAMED,
        t(fr, "more", "autres")
    )
}

pub fn render(f: &Findings, eval: &Evaluation, policy: &Policy, lang: &str) -> String {
    let fr = lang == "fr";
    let mut h = String::new();
    let title = t(fr, "vigie audit report", "Rapport d'audit vigie");
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"{}\"><head><meta charset=\"utf-8\"/><title>{title}</title>\n<style>{}</style></head><body>\n",
        if fr { "fr" } else { "en" },
        CSS
    );
    let i = &f.input;
    let _ = write!(h, "<h1>{title}</h1>\n<p class=\"meta\">");
    let _ = write!(
        h,
        "{}: {} &#8594; {} &#183; {}: {} &#183; {}: {} &#183; k = {} &#183; {}: {}</p>",
        t(fr, "Period", "Période"),
        esc(i.from.as_deref().unwrap_or("-")),
        esc(i.to.as_deref().unwrap_or("-")),
        t(fr, "Sites", "Sites"),
        esc(&readable_list(&i.sites, fr)),
        t(fr, "Profile", "Profil"),
        esc(&policy.name),
        f.privacy.k,
        t(fr, "Generated", "Produit le"),
        esc(&f.generated_at)
    );

    // At a glance.
    let counts = f.status_counts();
    let _ = write!(
        h,
        "<section id=\"summary\"><h2>{}</h2><ul class=\"counts\">",
        t(fr, "At a glance", "En bref")
    );
    for s in [Status::Breach, Status::Attention, Status::Ok, Status::InsufficientData] {
        let _ = write!(
            h,
            "<li class=\"{}\"><b>{}</b> {}</li>",
            s.as_str(),
            counts.get(&s).copied().unwrap_or(0),
            status_label(s, fr)
        );
    }
    h.push_str("</ul>");
    let _ = write!(
        h,
        "<p>{} {}; {} {}; {} {}. {} {}.</p>",
        i.events,
        t(fr, "events accepted", "événements retenus"),
        i.rejected,
        t(fr, "records rejected (see rejects.ndjson)", "enregistrements rejetés (voir rejects.ndjson)"),
        i.duplicates,
        t(fr, "duplicates dropped", "doublons écartés"),
        f.privacy.suppressed_groups,
        t(
            fr,
            "group-periods withheld to protect small groups",
            "groupes-périodes masqués pour protéger les petits groupes"
        )
    );
    if i.overlapping_shifts > 0 {
        let _ = write!(
            h,
            "<p class=\"note\">{} {}</p>",
            i.overlapping_shifts,
            t(
                fr,
                "pairs of shifts of one worker overlap in time (one pseudonym at two sites at once, or clocks that disagree): a question to put to whoever produced the export.",
                "paires de postes d'un même salarié se chevauchent dans le temps (un même pseudonyme sur deux sites à la fois, ou des horloges en désaccord) : une question à poser à qui a produit l'export."
            )
        );
    }
    let notable: Vec<&Finding> =
        f.findings.iter().filter(|x| matches!(x.status, Status::Breach | Status::Attention)).collect();
    if !notable.is_empty() {
        let mut by_rule: BTreeMap<&str, (usize, Status)> = BTreeMap::new();
        for x in &notable {
            let e = by_rule.entry(&x.rule).or_insert((0, x.status));
            e.0 += 1;
            e.1 = e.1.max(x.status);
        }
        let _ = write!(
            h,
            "<table class=\"glance\"><tr><th>{}</th><th>{}</th><th>{}</th></tr>",
            t(fr, "Rule", "Règle"),
            t(fr, "Worst status", "Statut le plus grave"),
            t(fr, "Findings", "Constats")
        );
        for (rule, (n, s)) in by_rule {
            let _ = write!(
                h,
                "<tr class=\"{}\"><td><a href=\"#rule-{}\">{}</a></td><td>{}</td><td>{n}</td></tr>",
                s.as_str(),
                esc(rule),
                esc(&rule_name(rule, lang)),
                status_label(s, fr)
            );
        }
        h.push_str("</table>");
    }
    h.push_str("</section>\n");

    // Charts.
    let _ = write!(h, "<section id=\"charts\"><h2>{}</h2>", t(fr, "Charts", "Graphiques"));
    h.push_str(&charts(f, eval, policy, fr));
    h.push_str("</section>\n");

    // Findings by rule.
    let _ = write!(
        h,
        "<section id=\"findings\"><h2>{}</h2>",
        t(fr, "Findings, rule by rule", "Constats, règle par règle")
    );
    let mut rules: Vec<&str> = Vec::new();
    for x in &f.findings {
        if !rules.contains(&x.rule.as_str()) {
            rules.push(&x.rule);
        }
    }
    // The policy is a built-in profile when its rules are the profile's:
    // then its sources and notes are given in the report's language.
    let builtin = Policy::profile(&policy.name).is_ok_and(|p| {
        p.rules
            .iter()
            .all(|(id, r)| policy.rules.get(id).is_some_and(|q| q.sources == r.sources && q.note == r.note))
    });
    for rule in rules {
        let def = rule_def(rule);
        let p = policy.rules.get(rule);
        let _ = write!(
            h,
            "<article class=\"rule\" id=\"rule-{}\"><h3>{} <code>{}</code></h3>",
            esc(rule),
            esc(&rule_name(rule, lang)),
            esc(rule)
        );
        if let Some(d) = def {
            let _ = write!(h, "<p>{}</p>", esc(d.description.get(lang)));
        }
        let profile_rule = def.and_then(|d| d.profiles.get(&policy.name)).filter(|_| builtin);
        if let Some(p) = p {
            let sources = match profile_rule {
                Some(pr) => pr.sources.get(lang).join("; "),
                None => p.sources.join("; "),
            };
            let _ = write!(
                h,
                "<p><b>{}</b> {} {} {} &#8594; {}. <b>{}</b> {}</p>",
                t(fr, "Threshold:", "Seuil :"),
                esc(p.compare.symbol()),
                num(p.threshold),
                esc(&p.unit),
                status_label(
                    if p.severity == vigie_analyze::policy::Severity::Breach {
                        Status::Breach
                    } else {
                        Status::Attention
                    },
                    fr
                ),
                t(fr, "Sources:", "Sources :"),
                esc(&sources)
            );
            let note = match profile_rule {
                Some(pr) => pr.note.get(lang).to_string(),
                None => p.note.clone(),
            };
            if !note.is_empty() {
                let _ = write!(h, "<p class=\"note\">{}</p>", esc(&note));
            }
        }
        if let Some(d) = def.filter(|d| !d.contested.is_empty()) {
            h.push_str("<div class=\"contested\">");
            for c in &d.contested {
                let _ =
                    write!(h, "<div><h4>{}</h4><p>{}</p></div>", esc(c.who.get(lang)), esc(c.held.get(lang)));
            }
            h.push_str("</div>");
        }
        let questions = def.map(|d| d.questions.get(lang)).unwrap_or_default();
        if !questions.is_empty() {
            let _ = write!(
                h,
                "<p><b>{}</b></p><ul class=\"questions\">",
                t(fr, "Questions for the employer:", "Questions à poser à l'employeur :")
            );
            for q in questions {
                let _ = write!(h, "<li>{}</li>", esc(q));
            }
            h.push_str("</ul>");
        }
        let _ = write!(
            h,
            "<table class=\"findings\"><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
            t(fr, "Group", "Groupe"),
            t(fr, "Period", "Période"),
            t(fr, "Status", "Statut"),
            t(fr, "Observed", "Observé"),
            t(fr, "Threshold", "Seuil"),
            t(fr, "Workers", "Salariés"),
            t(fr, "Evidence", "Éléments")
        );
        let rows: Vec<&Finding> = f.findings.iter().filter(|x| x.rule == rule).collect();
        let shown = readable_rows(&rows);
        for x in rows.iter().enumerate().filter(|(i, _)| shown.contains(i)).map(|(_, x)| x) {
            let obs = x.observed.map(num).unwrap_or_else(|| "-".into());
            let _ = write!(
                h,
                "<tr class=\"finding {}\" data-rule=\"{}\" data-site=\"{}\" data-group=\"{}\" data-period=\"{}\" data-status=\"{}\" data-observed=\"{}\" data-threshold=\"{}\" data-population=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{} {}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                x.status.as_str(),
                esc(&x.rule),
                esc(&x.site),
                esc(&x.group),
                esc(&x.period),
                x.status.as_str(),
                x.observed.map(num).unwrap_or_default(),
                num(x.threshold),
                x.population,
                esc(&x.group),
                esc(&x.period),
                status_label(x.status, fr),
                obs,
                esc(&x.unit),
                num(x.threshold),
                x.population,
                esc(&evidence(x, lang))
            );
        }
        if rows.len() > shown.len() {
            let _ = write!(
                h,
                "<tr class=\"more\"><td colspan=\"7\">{} {}</td></tr>",
                rows.len() - shown.len(),
                t(
                    fr,
                    "more findings of this rule (groups and weeks with the mildest status) are in findings.json.",
                    "autres constats de cette règle (groupes et semaines au statut le moins grave) figurent dans findings.json."
                )
            );
        }
        h.push_str("</table></article>\n");
    }
    h.push_str("</section>\n");

    // Methods and annex.
    h.push_str(&methods(f, policy, fr));
    h.push_str(&annex(fr));
    h.push_str("</body></html>\n");
    h
}

fn charts(f: &Findings, eval: &Evaluation, policy: &Policy, fr: bool) -> String {
    let mut o = String::new();
    let site = f.input.sites.first().cloned().unwrap_or_default();
    let agg: Vec<_> = eval.aggregates.iter().filter(|a| a.site == site).collect();
    let mut weeks: Vec<String> = agg.iter().map(|a| a.week.clone()).collect();
    weeks.sort();
    weeks.dedup();
    if agg.is_empty() {
        let _ = write!(
            o,
            "<p>{}</p>",
            t(fr, "No published group: no chart.", "Aucun groupe publié : pas de graphique.")
        );
        return o;
    }
    // 1. Units per hour per week and group, against the baseline.
    let mut groups: Vec<String> = agg.iter().map(|a| a.group.clone()).collect();
    groups.sort_by_key(|g| (g != "site", g.clone()));
    groups.dedup();
    groups.truncate(COLORS.len());
    let series: Vec<(String, Vec<Option<f64>>)> = groups
        .iter()
        .map(|g| {
            let vals = weeks
                .iter()
                .map(|w| agg.iter().find(|a| &a.group == g && &a.week == w).and_then(|a| a.uph_p50))
                .collect();
            (g.clone(), vals)
        })
        .collect();
    let n = policy.intensification_weeks as usize;
    let base: Vec<f64> =
        series.first().map(|s| s.1.iter().take(n).flatten().copied().collect()).unwrap_or_default();
    let baseline = (!base.is_empty()).then(|| base.iter().sum::<f64>() / base.len() as f64);
    let caption = t(fr, "baseline (first weeks)", "référence (premières semaines)");
    o.push_str(&line_chart(
        "chart-uph",
        t(fr, "Median units per hour per week", "Médiane des unités par heure, par semaine"),
        t(fr, "units/h", "unités/h"),
        &weeks,
        &series,
        baseline.map(|b| (b, caption)),
    ));
    // 2. Inter-scan interval histogram, site, all weeks.
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
                Some(b) => format!("≤{b}"),
                None => format!(">{}", HIST_BOUNDS_S[HIST_BOUNDS_S.len() - 1]),
            };
            (label, *v as f64)
        })
        .collect();
    // The 1.25 s line sits after the third bucket (upper bound 1.25 s).
    o.push_str(&bar_chart(
        "chart-intervals",
        t(
            fr,
            "Intervals between consecutive scans (seconds)",
            "Intervalles entre deux scans consécutifs (secondes)",
        ),
        t(fr, "intervals", "intervalles"),
        &bars,
        COLORS[0],
        Some((3.0, "1.25 s")),
    ));
    // 3. Gap classes.
    let mut gaps = [0u64; 4];
    for a in agg.iter().filter(|a| a.group == "site") {
        for (x, y) in gaps.iter_mut().zip(a.gaps) {
            *x += y;
        }
    }
    let names = if fr {
        ["< 60 s", "60-599 s", "≥ 600 s", "pause ≥ 20 min"]
    } else {
        ["< 60 s", "60-599 s", "≥ 600 s", "break ≥ 20 min"]
    };
    let bars: Vec<(String, f64)> = names.iter().zip(gaps).map(|(n, v)| (n.to_string(), v as f64)).collect();
    o.push_str(&bar_chart(
        "chart-gaps",
        t(fr, "Gaps between activity events", "Interruptions entre deux activités"),
        t(fr, "gaps", "interruptions"),
        &bars,
        COLORS[2],
        None,
    ));
    // 4. Working-time breaches per week (site).
    let bars: Vec<(String, f64)> = weeks
        .iter()
        .map(|w| {
            let n: f64 = f
                .findings
                .iter()
                .filter(|x| {
                    x.site == site && x.group == "site" && &x.period == w && x.rule.starts_with("worktime.")
                })
                .filter_map(|x| x.observed)
                .sum();
            (w.clone(), n)
        })
        .collect();
    o.push_str(&bar_chart(
        "chart-worktime",
        t(
            fr,
            "Working-time breaches per week (all rules)",
            "Manquements au temps de travail par semaine (toutes règles)",
        ),
        t(fr, "breaches", "manquements"),
        &bars,
        COLORS[1],
        None,
    ));
    // 5. Coverage per day.
    let bars: Vec<(String, f64)> = eval
        .coverage
        .iter()
        .filter(|c| c.site == site)
        .map(|c| (c.date.format("%m-%d").to_string(), c.shifts.unwrap_or(0) as f64))
        .collect();
    o.push_str(&bar_chart(
        "chart-coverage",
        t(
            fr,
            "Shifts in the data per day (days under k withheld)",
            "Postes présents dans les données par jour (jours sous k masqués)",
        ),
        t(fr, "shifts", "postes"),
        &bars,
        COLORS[3],
        None,
    ));
    o
}

fn methods(f: &Findings, policy: &Policy, fr: bool) -> String {
    let mut o = String::new();
    let _ = write!(o, "<section id=\"methods\"><h2>{}</h2><ul>", t(fr, "Methods", "Méthode"));
    let items: [(&str, &str); 5] = [
        ("Worker identifiers were replaced when read by a keyed hash (HMAC-SHA256); no identifier appears in this report or in any file vigie writes.",
         "Les identifiants des salariés ont été remplacés dès la lecture par une empreinte à clé (HMAC-SHA256) ; aucun n'apparaît dans ce rapport ni dans les fichiers produits."),
        ("No figure is given for a group of fewer than k workers; further groups are withheld so that none can be worked out by subtraction from the site's figures.",
         "Aucun chiffre n'est donné pour un groupe de moins de k salariés ; d'autres groupes sont masqués pour qu'aucun ne puisse être retrouvé par soustraction."),
        ("A shift runs from clock-in to clock-out, or is a run of activity without a gap of 3 hours. A break is a declared break or a gap of the profile's break length (20 minutes) or more. Effective time has two bounds: the span minus declared breaks (upper) and minus undeclared stops of the break length too (lower); a maximum is presumed breached only by the lower bound, and to examine when only the upper bound exceeds it. The law's limits are counted per working day (the shifts that start on one local date) and per calendar week, in each timestamp's own offset.",
         "Un poste va du badgeage d'entrée à celui de sortie, ou est une suite d'activité sans interruption de 3 heures. Une pause est une pause déclarée ou une interruption de la durée de pause du profil (20 minutes) ou plus. Le temps effectif a deux bornes : l'amplitude moins les pauses déclarées (borne haute), et moins aussi les arrêts non déclarés de la durée d'une pause (borne basse) ; une durée maximale n'est présumée dépassée que par la borne basse, et « à examiner » quand seule la borne haute la dépasse. Les limites légales sont comptées par journée de travail (les postes qui commencent à une même date locale) et par semaine civile, dans le fuseau de chaque horodatage."),
        ("Scans are not working time: walking, waiting and the time before the first scan are work too. Pauses measured from scans are therefore upper bounds, and work measured from scans lower bounds.",
         "Les scans ne sont pas le temps de travail : déplacements, attentes et temps avant le premier scan sont aussi du travail. Les pauses mesurées à partir des scans sont donc surestimées, et le travail sous-estimé."),
        ("Thresholds are indicators for dialogue. Where the law is contested, both positions are given.",
         "Les seuils sont des indicateurs pour le dialogue. Quand le droit est discuté, les deux positions sont données."),
    ];
    for (en, frt) in items {
        let _ = write!(o, "<li>{}</li>", esc(t(fr, en, frt)));
    }
    let _ = write!(
        o,
        "<li>k = {}; {} {}; {}: {}.</li></ul></section>",
        policy.k,
        f.privacy.suppressed_groups,
        t(fr, "group-periods withheld", "groupes-périodes masqués"),
        t(fr, "pseudonymisation", "pseudonymisation"),
        esc(&f.privacy.pseudonymisation)
    );
    o
}

fn annex(fr: bool) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        "<section id=\"annex\"><h2>{}</h2>",
        t(fr, "Annex: data request templates", "Annexe : modèles de demandes de données")
    );
    let lang = if fr { "fr" } else { "en" };
    for l in &catalogue().letter {
        let _ = write!(
            o,
            "<article class=\"letter\"><h3>{}</h3><p>{}</p>{}</article>",
            esc(l.title.get(lang)),
            esc(l.body.get(lang)),
            l.note
                .as_ref()
                .map(|n| format!("<p class=\"note\">{}</p>", esc(n.get(lang))))
                .unwrap_or_default()
        );
    }
    o.push_str("</section>\n");
    o
}

const CSS: &str = "body{font-family:'DejaVu Sans',Arial,sans-serif;margin:2em;color:#222;max-width:60em}\
h1{font-size:1.6em}h2{border-bottom:2px solid #333;margin-top:1.6em}h3{margin-bottom:.2em}\
table{border-collapse:collapse;width:100%;margin:.5em 0}th,td{border:1px solid #bbb;padding:.2em .4em;text-align:left;vertical-align:top;font-size:.9em}\
.breach{background:#f8d0d0}.attention{background:#fbe9c4}.ok{background:#e6f4e6}.insufficient_data{background:#eee}\
ul.counts{list-style:none;padding:0;display:flex;gap:1em}ul.counts li{padding:.3em .8em;border-radius:.3em}\
.meta{color:#555}.note{color:#444;font-style:italic}.contested{display:flex;gap:1em}.contested div{flex:1;border:1px solid #999;padding:.4em;background:#f7f7fb}\
figure.chart{margin:1em 0}svg{max-width:100%;height:auto}.letter{border-left:3px solid #999;padding-left:.8em}\
@media print{body{margin:0;max-width:none}h2{page-break-before:auto}article.rule,figure.chart,.letter{page-break-inside:avoid}tr{page-break-inside:avoid}a{color:inherit;text-decoration:none}}";

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
