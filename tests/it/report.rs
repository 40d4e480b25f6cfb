//! report.html: parses, fetches nothing, holds every finding with the same
//! numbers in both languages, renders in a real headless Chromium with its
//! charts, and prints to PDF.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use quick_xml::events::Event;
use quick_xml::Reader;

/// One audit of a generated site, shared by the tests of this file.
fn audited(lang: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("site.ndjson");
    let o = common::run(&[
        "generate",
        "--out",
        input.to_str().unwrap(),
        "--workers",
        "60",
        "--days",
        "28",
        "--seed",
        "9",
        "--scenario",
        "demo",
    ]);
    assert_eq!(o.status.code(), Some(0));
    let out = dir.path().join(format!("out-{lang}"));
    let o = common::run(&[
        "audit",
        "--input",
        input.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--lang",
        lang,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    (dir, out)
}

/// Parses the report strictly (as XML) and returns the attributes of every
/// finding row, and the ids of the charts.
fn parse(html: &str) -> (Vec<BTreeMap<String, String>>, Vec<String>) {
    let mut r = Reader::from_str(html);
    r.config_mut().check_end_names = true;
    let mut rows = Vec::new();
    let mut charts = Vec::new();
    loop {
        match r.read_event() {
            Ok(Event::Eof) => break,
            Ok(Event::Start(e) | Event::Empty(e)) => {
                let attrs: BTreeMap<String, String> = e
                    .attributes()
                    .map(|a| {
                        let a = a.unwrap();
                        (
                            String::from_utf8(a.key.as_ref().to_vec()).unwrap(),
                            a.unescape_value().unwrap().to_string(),
                        )
                    })
                    .collect();
                if e.name().as_ref() == b"tr" && attrs.contains_key("data-rule") {
                    rows.push(attrs.clone());
                }
                if e.name().as_ref() == b"figure" {
                    charts.push(attrs["id"].clone());
                }
            }
            Ok(_) => {}
            Err(err) => panic!("report.html is not well-formed at {}: {err}", r.buffer_position()),
        }
    }
    (rows, charts)
}

#[test]
fn the_report_holds_every_finding_in_both_languages_and_fetches_nothing() {
    for lang in ["fr", "en"] {
        let (_dir, out) = audited(lang);
        let html = std::fs::read_to_string(out.join("report.html")).unwrap();
        assert!(html.contains(&format!("<html lang=\"{lang}\">")));
        for needle in ["http:", "https:", "src=", "@import", "url(", "<script", "<link"] {
            assert!(!html.contains(needle), "{lang}: the report references {needle}");
        }
        let (rows, charts) = parse(&html);
        assert_eq!(
            charts,
            [
                "chart-uph",
                "chart-target",
                "chart-intervals",
                "chart-gaps",
                "chart-worktime",
                "chart-coverage"
            ]
        );
        // The demo's pace rises from Monday 16 March (week 12): the cadence
        // chart marks it, and its legend says so.
        assert!(html.contains("class=\"change\""), "{lang}: no change marked on the cadence chart");
        let caption = if lang == "fr" {
            "hausse de cadence détectée (à partir du 16"
        } else {
            "change of pace found (from"
        };
        assert!(html.contains(caption), "{lang}: no caption for the change");
        let f = common::read_json(&out.join("findings.json"));
        let findings = f["findings"].as_array().unwrap();
        assert!(findings.len() > 50);
        assert_eq!(rows.len(), findings.len(), "{lang}: one row per finding");
        for (row, x) in rows.iter().zip(findings) {
            for key in ["rule", "site", "group", "period", "status"] {
                assert_eq!(row[&format!("data-{key}")], x[key].as_str().unwrap(), "{lang} {key}");
            }
            let observed = row["data-observed"].parse::<f64>().ok();
            assert_eq!(observed, x["observed"].as_f64(), "{lang}: {x:?}");
            assert_eq!(row["data-threshold"].parse::<f64>().unwrap(), x["threshold"].as_f64().unwrap());
            assert_eq!(row["data-population"].parse::<u64>().unwrap(), x["population"].as_u64().unwrap());
        }
        // Both positions on the contested thresholds, and the annex.
        let (cnil, ce, ca, gdpr) = if lang == "fr" {
            (
                "CNIL, délib. n° SAN-2023-021 du 27 déc. 2023",
                "CE, 23 déc. 2025, n° 492830",
                "§ 2104",
                "RGPD, art. 15",
            )
        } else {
            (
                "CNIL, Deliberation No. SAN-2023-021, 27 Dec 2023",
                "Conseil d&#39;État, 23 Dec 2025, no. 492830",
                "s. 2104",
                "GDPR art. 15",
            )
        };
        assert!(html.contains(cnil) && html.contains(ce), "{lang}: both positions");
        assert!(html.contains(ca) && html.contains(gdpr), "{lang}: the letters");
        // The data-access letter rests on art. 15 (not 20, which does not
        // apply to processing based on legitimate interest), and the
        // quota request's deadline is 21 calendar days.
        assert!(!html.contains("15 and 20") && !html.contains("articles 15 et 20"), "{lang}");
        assert!(
            html.contains(if lang == "fr" { "21 jours calendaires" } else { "21 calendar days" }),
            "{lang}"
        );
        let questions =
            if lang == "fr" { "Questions à poser à l&#39;employeur" } else { "Questions for the employer" };
        assert!(html.contains(questions), "{lang}");
    }
}

/// Chromium's path; `None` (the test is skipped, and says so) outside
/// scripts/test.sh when it is not installed.
fn chromium() -> Option<PathBuf> {
    common::needs(common::Tool::Chromium).map(PathBuf::from)
}

/// Pixels of roughly this colour in the image.
fn count_colour(pixels: &[[u8; 3]], rgb: [u8; 3]) -> usize {
    pixels
        .iter()
        .filter(|p| p.iter().zip(rgb).all(|(a, b)| (i16::from(*a) - i16::from(b)).abs() <= 6))
        .count()
}

#[test]
fn the_report_renders_with_its_charts_in_headless_chromium() {
    let Some(chromium) = chromium() else { return };
    let (dir, out) = audited("en");
    let png = dir.path().join("report.png");
    let profile = dir.path().join("profile");
    let mut args = vigie::report::chromium_args(&profile);
    args.extend([
        "--hide-scrollbars".to_string(),
        "--window-size=1000,4200".to_string(),
        format!("--screenshot={}", png.display()),
        format!("file://{}", out.join("report.html").display()),
    ]);
    let o = std::process::Command::new(&chromium).args(&args).output().unwrap();
    assert!(png.is_file(), "no screenshot: {}", String::from_utf8_lossy(&o.stderr));
    let pixels = decode(&png);
    let white = pixels.iter().filter(|p| p.iter().all(|c| *c >= 250)).count();
    assert!(white < pixels.len() * 97 / 100, "the page is blank");
    // The bars of the interval histogram, gap classes, breaches and
    // coverage charts, each in its own colour.
    for (name, rgb) in [
        ("intervals", [0x1f, 0x77, 0xb4]),
        ("gaps", [0x2c, 0xa0, 0x2c]),
        ("breaches", [0xd6, 0x27, 0x28]),
        ("coverage", [0x94, 0x67, 0xbd]),
    ] {
        let n = count_colour(&pixels, rgb);
        assert!(n > 500, "{name} chart: only {n} pixels of its colour");
    }
}

fn decode(path: &Path) -> Vec<[u8; 3]> {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let step = info.color_type.samples();
    buf[..info.buffer_size()].chunks(step).map(|c| [c[0], c[1], c[2]]).collect()
}

#[test]
fn pdf_with_chromium_and_a_clear_message_without() {
    let Some(chromium) = chromium() else { return };
    if common::needs(common::Tool::Pdfinfo).is_none() {
        return;
    }
    let (dir, out) = audited("fr");
    let input = dir.path().join("site.ndjson");
    let o = common::vigie()
        .args(["audit", "--input", input.to_str().unwrap(), "--out", out.to_str().unwrap(), "--pdf"])
        .env("VIGIE_CHROMIUM", &chromium)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let pdf = std::fs::read(out.join("report.pdf")).unwrap();
    assert!(pdf.starts_with(b"%PDF-") && pdf.len() > 10_000);
    // A4 pages, a plausible number of them.
    let info = std::process::Command::new("pdfinfo")
        .arg(out.join("report.pdf"))
        .output()
        .expect("pdfinfo (poppler-utils)");
    let info = String::from_utf8_lossy(&info.stdout);
    let pages: u32 = info
        .lines()
        .find_map(|l| l.strip_prefix("Pages:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("page count");
    assert!((4..=80).contains(&pages), "{pages} pages");
    assert!(info.lines().any(|l| l.starts_with("Page size:") && l.contains("(A4)")), "not A4: {info}");

    let o = common::vigie()
        .args(["audit", "--input", input.to_str().unwrap(), "--out", out.to_str().unwrap(), "--pdf"])
        .env("VIGIE_CHROMIUM", "/nonexistent/chromium")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--pdf needs Chromium, which is not installed"), "{err}");
    assert!(out.join("report.html").is_file());
}

#[test]
fn past_a_readable_number_of_groups_the_report_shows_the_most_serious_and_counts_the_rest() {
    use vigie_analyze::findings::Status;
    // 30 sites of 20 groups, two weeks: 1,200 findings per rule.
    let (f, eval) = many_groups(30, 20);
    let policy = vigie_analyze::policy::Policy::profile("fr").unwrap();
    let html = vigie::report::render(&f, &eval, &policy, "en");
    let (rows, _) = parse(&html);
    let rule = "speed.speed_flags";
    let all: Vec<_> = f.findings.iter().filter(|x| x.rule == rule).collect();
    assert_eq!(all.len(), 1_200);
    let shown: Vec<_> = rows.iter().filter(|r| r["data-rule"] == rule).collect();
    assert_eq!(shown.len(), vigie::report::MAX_ROWS_PER_RULE);
    // Every breach of the rule is shown (there are fewer than the cap),
    // and the rest is counted.
    let breaches = all.iter().filter(|x| x.status == Status::Breach).count();
    assert!(breaches > 0 && breaches < vigie::report::MAX_ROWS_PER_RULE);
    assert_eq!(shown.iter().filter(|r| r["data-status"] == "breach").count(), breaches);
    assert!(
        html.contains("1,080 more findings of this rule"),
        "{} more findings, written 1,080",
        1_200 - vigie::report::MAX_ROWS_PER_RULE
    );
    // The header names 12 sites and counts the others.
    assert!(html.contains("site-11 and 18 more"), "sites not summarised");
    assert!(!html.contains("site-12,"));
}

/// Text a reader sees: the markup without tags, styles, titles and code.
fn visible_text(html: &str) -> String {
    let mut doc = html.to_string();
    for (open, close) in [("<style>", "</style>"), ("<code>", "</code>"), ("<title>", "</title>")] {
        while let Some(i) = doc.find(open) {
            let end = doc[i..].find(close).map_or(doc.len(), |j| i + j + close.len());
            doc.replace_range(i..end, " ");
        }
    }
    let mut text = String::new();
    let mut in_tag = false;
    for c in doc.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                text.push(' ');
            }
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    text.replace("&#39;", "'").replace("&amp;", "&").replace("&quot;", "\"")
}

/// The French report of a generated scenario.
fn french_report(scenario: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("site.ndjson");
    let args =
        ["generate", "--out", input.to_str().unwrap(), "--workers", "40", "--days", "21", "--seed", "4"];
    let o = common::run(&[&args[..], &["--scenario", scenario]].concat());
    assert_eq!(o.status.code(), Some(0));
    let out = dir.path().join("out");
    let o = common::run(&[
        "audit",
        "--input",
        input.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--lang",
        "fr",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::read_to_string(out.join("report.html")).unwrap()
}

#[test]
fn the_french_report_is_french() {
    let (_dir, out) = audited("fr");
    let mut reports = vec![std::fs::read_to_string(out.join("report.html")).unwrap()];
    for scenario in ["cnil-like", "worktime", "small-team"] {
        reports.push(french_report(scenario));
    }
    for html in &reports {
        french_only(html);
    }
    let text = visible_text(&reports[0]);
    // Numbers and dates as French writes them.
    assert!(text.contains("semaine 10 (du 2 au 8 mars 2026)") && text.contains(" mars 2026"), "dates");
}

fn french_only(html: &str) {
    let text = visible_text(html);
    // No sentence of the English locale.
    for key in vigie::report::locale_keys() {
        let l = vigie::report::sentence(&key, "en");
        let f = vigie::report::sentence(&key, "fr");
        if l != f && l.len() > 12 && !l.contains('{') {
            assert!(!text.contains(l), "English sentence `{key}` in the French report: {l}");
        }
    }
    // No English word (names from the data aside: sites, teams, zones).
    let words = [
        "shift",
        "shifts",
        "breach",
        "breaches",
        "worker",
        "workers",
        "rule",
        "rules",
        "week",
        "weeks",
        "threshold",
        "evidence",
        "findings",
        "insufficient",
        "flags",
        "intervals",
        "worker-days",
        "seen",
        "more",
        "of",
        "the",
        "and",
        "with",
        "per",
        "Labour",
    ];
    let cleaned =
        text.replace("findings.json", "").replace("rejects.ndjson", "").replace("docs/policy.md", "");
    for w in cleaned.split(|c: char| !(c.is_alphanumeric() || c == '-')) {
        assert!(!words.contains(&w), "English word {w:?} in the French report");
    }
    assert!(!text.contains("2026-W1") && !text.contains("T00:") && !text.contains("Z "), "raw timestamps");
    // Rows are never cut across printed pages, and headers repeat.
    assert!(html.contains("tr{break-inside:avoid") && html.contains("thead{display:table-header-group}"));
}

#[test]
fn chart_legends_and_captions_stay_out_of_the_plot_area() {
    let (_dir, out) = audited("en");
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    let (w, h) = (640.0, 220.0);
    let (left, top, right, bottom) = (56.0, 22.0, w - 8.0, h - 36.0);
    let mut texts = 0;
    for svg in html.split("<svg").skip(1) {
        let svg = &svg[..svg.find("</svg>").unwrap()];
        for t in svg.split("<text ").skip(1) {
            let attr = |name: &str| -> f64 {
                let key = format!("{name}=\"");
                let i = t.find(&key).unwrap() + key.len();
                t[i..i + t[i..].find('"').unwrap()].parse().unwrap()
            };
            let (x, y) = (attr("x"), attr("y"));
            texts += 1;
            // Axis labels sit left of the plot or under it; the unit above.
            let inside = x > left && x < right && y > top && y < bottom;
            assert!(!inside, "text at ({x}, {y}) inside the plot area: <text {}", &t[..t.len().min(120)]);
        }
    }
    assert!(texts > 20);
    // Each chart has its legend (when it has series) and its figures.
    assert_eq!(html.matches("<details class=\"chart-data\">").count(), 6);
    assert!(html.contains("<ul class=\"legend\">"));
}

#[test]
fn ten_thousand_groups_give_a_report_under_5_mb() {
    // 100 sites of 100 groups, two weeks.
    let (f, eval) = many_groups(100, 100);
    let policy = vigie_analyze::policy::Policy::profile("fr").unwrap();
    for lang in ["fr", "en"] {
        let html = vigie::report::render(&f, &eval, &policy, lang);
        assert!(html.len() < 5 << 20, "{lang}: {} bytes", html.len());
        parse(&html);
    }
}

/// Findings of `sites` sites of `groups` groups each, two weeks.
fn many_groups(
    sites: usize,
    groups: usize,
) -> (vigie_analyze::findings::Findings, vigie_analyze::rules::Evaluation) {
    use vigie_analyze::findings::{Findings, InputSummary, PrivacySummary};
    let eval = vigie::metrics::budget_fixture(sites, groups, 23);
    let input =
        InputSummary { sites: (0..sites).map(|s| format!("site-{s:02}")).collect(), ..Default::default() };
    let f = Findings {
        schema: "vigie.findings.v1".into(),
        generated_at: "2026-11-29T00:00:00Z".into(),
        policy: "fr".into(),
        input,
        privacy: PrivacySummary { k: 10, suppressed_groups: 0, pseudonymisation: "hmac-sha256".into() },
        findings: eval.findings.clone(),
        incomplete: vec![],
        target_steps: eval.target_steps.clone(),
        comparisons: vec![],
        provenance: None,
    };
    (f, eval)
}

#[test]
fn a_change_the_employer_declared_is_set_against_the_pace_in_report_and_open_data() {
    // Voice-paced: picking 1.14 x faster from Monday 16 March, and the
    // target raised that day. The employer declares a new software version
    // on that date.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("site.ndjson");
    let args =
        ["generate", "--out", input.to_str().unwrap(), "--workers", "40", "--days", "28", "--seed", "11"];
    assert_eq!(common::run(&[&args[..], &["--scenario", "voice-paced"]].concat()).status.code(), Some(0));
    let employer = dir.path().join("employer.toml");
    std::fs::write(
        &employer,
        "changes = [{ date = 2026-03-16, description = \"Nouvelle version <b>du</b> guidage vocal\" }]\n",
    )
    .unwrap();
    for lang in ["fr", "en"] {
        let out = dir.path().join(format!("out-{lang}"));
        let o = common::run(&[
            "audit",
            "--input",
            input.to_str().unwrap(),
            "--employer",
            employer.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--lang",
            lang,
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
        let html = std::fs::read_to_string(out.join("report.html")).unwrap();
        let (_, charts) = parse(&html);
        assert!(charts.contains(&"chart-target".to_string()), "{charts:?}");
        assert!(html.contains("class=\"series steps\""), "{lang}: the target is drawn as steps");
        assert!(html.contains("<section id=\"dated\">"), "{lang}");
        // The employer's words, escaped; the date as the language writes it.
        let (declared, date) = if lang == "fr" {
            (
                "déclaré par l&#39;employeur : Nouvelle version &#60;b&#62;du&#60;/b&#62; guidage vocal",
                "16 mars 2026",
            )
        } else {
            (
                "declared by the employer: Nouvelle version &#60;b&#62;du&#60;/b&#62; guidage vocal",
                "16 March 2026",
            )
        };
        assert!(html.contains(declared) && html.contains(date), "{lang}");
        assert!(!html.contains("<b>du</b>"), "{lang}: the description is text, not markup");
        // The finding names the declared change beside the one it found.
        let f = common::read_json(&out.join("findings.json"));
        let intens = f["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["rule"] == "cadence.intensification" && x["group"] == "site")
            .unwrap();
        assert_eq!(intens["facts"]["case"], "change_declared", "{intens}");
        // Open data: the comparisons and the steps, as CSV and Parquet.
        let csv = std::fs::read_to_string(out.join("aggregates/comparisons.csv")).unwrap();
        let header = csv.lines().next().unwrap();
        assert_eq!(
            header,
            "site,group,process,date,source,description,days_before,days_after,target_from,target_to,before_uph,after_uph,relative,low,high"
        );
        let pick_declared = csv
            .lines()
            .find(|l| l.contains(",site,pick,2026-03-16,declared,"))
            .unwrap_or_else(|| panic!("{csv}"));
        let relative: f64 = pick_declared.split(',').nth(12).unwrap().parse().unwrap();
        assert!(relative > 0.1 && relative < 0.2, "{pick_declared}");
        // findings.json carries the same rows.
        let c = f["comparisons"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["group"] == "site" && c["process"] == "pick" && c["source"] == "declared")
            .unwrap();
        assert_eq!(c["relative"].as_f64(), Some(relative));
        assert_eq!(c["date"], "2026-03-16");
        assert!(f["target_steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["target_uph"].as_f64() == Some(125.4)));
        let steps = std::fs::read_to_string(out.join("aggregates/target_steps.csv")).unwrap();
        assert!(steps.lines().any(|l| l.contains(",site,pick,2026-03-16,")), "{steps}");
        for name in ["comparisons", "target_steps"] {
            let p = out.join(format!("aggregates/{name}.parquet"));
            use polars::prelude::{ParquetReader, SerReader};
            let df = ParquetReader::new(std::fs::File::open(&p).unwrap()).finish().unwrap();
            assert!(df.height() > 0, "{name}");
        }
    }
}
