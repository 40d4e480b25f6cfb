//! report.html: one self-contained file (inline CSS, no script, nothing
//! fetched) that lists every finding with its evidence and sources.

use vigie_analyze::findings::{Findings, Status};
use vigie_analyze::policy::Policy;
use vigie_analyze::rules::Evaluation;

/// Escapes text for HTML.
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

struct Words {
    title: &'static str,
    input: &'static str,
    findings: &'static str,
    rule: &'static str,
    group: &'static str,
    period: &'static str,
    status: &'static str,
    observed: &'static str,
    threshold: &'static str,
    workers: &'static str,
    sources: &'static str,
    methods: &'static str,
    methods_text: &'static str,
}

const EN: Words = Words {
    title: "vigie audit report",
    input: "Input",
    findings: "Findings",
    rule: "Rule",
    group: "Group",
    period: "Period",
    status: "Status",
    observed: "Observed",
    threshold: "Threshold",
    workers: "Workers",
    sources: "Sources",
    methods: "Methods",
    methods_text: "Worker identifiers were replaced by a keyed hash (HMAC-SHA256) when read; none appears here. No figure is given for a group of fewer than k workers, and further groups are withheld so that none can be recovered by subtraction. Scan activity is not working time: walking, waiting and time before the first scan are work too, so pause figures drawn from scans are upper bounds and work figures lower bounds. Thresholds are indicators for dialogue; where the law is contested, both positions are cited.",
};

const FR: Words = Words {
    title: "Rapport d'audit vigie",
    input: "Données",
    findings: "Constats",
    rule: "Règle",
    group: "Groupe",
    period: "Période",
    status: "Statut",
    observed: "Observé",
    threshold: "Seuil",
    workers: "Salariés",
    sources: "Sources",
    methods: "Méthode",
    methods_text: "Les identifiants des salariés ont été remplacés à la lecture par une empreinte à clé (HMAC-SHA256) ; aucun n'apparaît ici. Aucun chiffre n'est donné pour un groupe de moins de k salariés, et d'autres groupes sont masqués pour qu'aucun ne puisse être retrouvé par soustraction. L'activité de scan n'est pas le temps de travail : déplacements, attentes et temps avant le premier scan sont du travail, donc les pauses mesurées sont des majorants et le travail un minorant. Les seuils sont des indicateurs pour le dialogue ; quand le droit est discuté, les deux positions sont citées.",
};

fn status_label(s: Status, fr: bool) -> &'static str {
    match (s, fr) {
        (Status::Ok, false) => "ok",
        (Status::Attention, false) => "attention",
        (Status::Breach, false) => "breach",
        (Status::InsufficientData, false) => "insufficient data",
        (Status::Ok, true) => "conforme",
        (Status::Attention, true) => "à examiner",
        (Status::Breach, true) => "manquement",
        (Status::InsufficientData, true) => "données insuffisantes",
    }
}

/// Renders the report in `lang` (`fr` or `en`).
pub fn render(f: &Findings, _eval: &Evaluation, policy: &Policy, lang: &str) -> String {
    let fr = lang == "fr";
    let w = if fr { &FR } else { &EN };
    let mut h = String::new();
    h.push_str(&format!(
        "<!DOCTYPE html>\n<html lang=\"{}\"><head><meta charset=\"utf-8\"><title>{}</title>\n<style>\
body{{font-family:sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse;width:100%}}\
th,td{{border:1px solid #bbb;padding:.25em .5em;text-align:left;vertical-align:top}}\
.breach{{background:#f8d0d0}}.attention{{background:#fbe9c4}}.ok{{background:#e1f2e1}}.insufficient_data{{background:#eee}}\
@media print{{body{{margin:0}}tr{{page-break-inside:avoid}}}}</style></head><body>\n",
        if fr { "fr" } else { "en" },
        w.title
    ));
    h.push_str(&format!("<h1>{}</h1>\n", w.title));
    let i = &f.input;
    h.push_str(&format!(
        "<h2>{}</h2><p>{} events, {} rejected, {} duplicates; {} &rarr; {}; sites: {}. Policy: {}; k = {}; {} group-periods withheld.</p>\n",
        w.input,
        i.events,
        i.rejected,
        i.duplicates,
        esc(i.from.as_deref().unwrap_or("-")),
        esc(i.to.as_deref().unwrap_or("-")),
        esc(&i.sites.join(", ")),
        esc(&policy.name),
        f.privacy.k,
        f.privacy.suppressed_groups
    ));
    h.push_str(&format!(
        "<h2>{}</h2><table><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>\n",
        w.findings, w.rule, w.group, w.period, w.status, w.observed, w.threshold, w.workers, w.sources
    ));
    for x in &f.findings {
        h.push_str(&format!(
            "<tr class=\"{}\"><td><b>{}</b><br><small>{}</small></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} {}</td><td>{}</td><td>{}</td></tr>\n",
            x.status.as_str(),
            esc(&x.rule),
            esc(&x.explanation),
            esc(&x.group),
            esc(&x.period),
            status_label(x.status, fr),
            x.observed.map(|o| o.to_string()).unwrap_or_else(|| "-".into()),
            x.threshold,
            esc(&x.unit),
            x.population,
            esc(&x.sources.join("; "))
        ));
    }
    h.push_str("</table>\n");
    h.push_str(&format!("<h2>{}</h2><p>{}</p>\n", w.methods, w.methods_text));
    h.push_str("</body></html>\n");
    h
}
