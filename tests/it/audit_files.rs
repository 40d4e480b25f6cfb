//! `vigie audit` on real files: rejects, counts, formats, privacy, exit
//! codes. Expected figures are worked out by hand in each test.

use crate::common;

use std::io::Write;
use std::path::{Path, PathBuf};

use common::*;

/// A good record for worker `w` at minute `m` after 08:00 on 2 March.
fn good(id: &str, w: &str, m: u32, kind: &str) -> String {
    format!(
        "{{\"event_id\":\"{id}\",\"ts\":\"2026-03-02T{:02}:{:02}:00+01:00\",\"site\":\"lyon-1\",\"worker\":\"{w}\",\"kind\":\"{kind}\"}}",
        8 + m / 60,
        m % 60
    )
}

#[test]
fn every_reject_reason_from_a_real_file() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("export.ndjson");
    let mut f = std::fs::File::create(&input).unwrap();
    // line 1: good
    writeln!(f, "{}", good("g1", "SECRET-0001", 0, "scan")).unwrap();
    // line 2: invalid_json
    writeln!(f, "{{\"event_id\":\"b2\",\"worker\":\"SECRET-0002\",").unwrap();
    // line 3: invalid_utf8
    f.write_all(b"{\"event_id\":\"b3\",\"worker\":\"SECRET-0003\",\"site\":\"lyon-\xff\"}\n").unwrap();
    // line 4: too_large (over 64 KiB)
    let pad = "a".repeat(70_000);
    writeln!(f, "{{\"event_id\":\"b4\",\"worker\":\"SECRET-0004\",\"pad\":\"{pad}\"}}").unwrap();
    // line 5: missing_field (no kind)
    writeln!(
        f,
        "{{\"event_id\":\"b5\",\"ts\":\"2026-03-02T08:00:00Z\",\"site\":\"s\",\"worker\":\"SECRET-0005\"}}"
    )
    .unwrap();
    // line 6: invalid_type
    writeln!(f, "{{\"event_id\":\"b6\",\"ts\":\"2026-03-02T08:00:00Z\",\"site\":\"s\",\"worker\":\"SECRET-0006\",\"kind\":\"scan\",\"weight_kg\":\"heavy\"}}").unwrap();
    // line 7: invalid_value
    writeln!(f, "{{\"event_id\":\"b7\",\"ts\":\"2026-03-02T08:00:00Z\",\"site\":\"s\",\"worker\":\"SECRET-0007\",\"kind\":\"scan\",\"quantity\":0}}").unwrap();
    // line 8: invalid_timestamp
    writeln!(f, "{{\"event_id\":\"b8\",\"ts\":\"2026-03-02 08:00\",\"site\":\"s\",\"worker\":\"SECRET-0008\",\"kind\":\"scan\"}}").unwrap();
    // line 9: blank (not a record); line 10: good
    writeln!(f).unwrap();
    writeln!(f, "{}", good("g2", "SECRET-0001", 1, "scan")).unwrap();
    drop(f);

    let (out, o) = audit_keyed(dir.path(), &input);

    let f = read_json(&out.join("findings.json"));
    assert_eq!(f["schema"], "vigie.findings.v1");
    assert_eq!(f["input"]["events"], 2);
    assert_eq!(f["input"]["rejected"], 7);
    assert_eq!(f["input"]["duplicates"], 0);
    for reason in [
        "invalid_json",
        "invalid_utf8",
        "too_large",
        "missing_field",
        "invalid_type",
        "invalid_value",
        "invalid_timestamp",
    ] {
        assert_eq!(f["input"]["rejected_by_reason"][reason], 1, "{reason}");
    }
    let lines = rejects_of(&out);
    let got: Vec<(u64, String)> = lines
        .iter()
        .map(|v| (v["source"]["line"].as_u64().unwrap(), v["reason"].as_str().unwrap().to_string()))
        .collect();
    let want: Vec<(u64, String)> = [
        (2, "invalid_json"),
        (3, "invalid_utf8"),
        (4, "too_large"),
        (5, "missing_field"),
        (6, "invalid_type"),
        (7, "invalid_value"),
        (8, "invalid_timestamp"),
    ]
    .iter()
    .map(|(l, r)| (*l, r.to_string()))
    .collect();
    assert_eq!(got, want);
    assert!(lines.iter().all(|v| v["message"].as_str().is_some_and(|m| !m.is_empty())));
    // A record that does not parse (bad JSON, bad UTF-8, cut for its size)
    // keeps no byte: vigie could not be sure where an identifier sat in it.
    for l in &lines[..3] {
        assert_eq!(l["raw_withheld"], true, "{l}");
        assert!(l["raw"].is_null() && l["raw_base64"].is_null(), "{l}");
        assert!(l["raw_bytes"].as_u64().unwrap() > 0);
    }
    assert!(lines[2]["raw_bytes"].as_u64().unwrap() > 70_000);
    // The others are kept parsed, their identifiers pseudonymised.
    for l in &lines[3..] {
        assert!(l["raw"].is_string() && l["raw_withheld"].is_null(), "{l}");
    }
    assert!(lines[0]["source"]["file"].as_str().unwrap().ends_with("export.ndjson"));

    // The identifiers received appear nowhere: not in the output, not in
    // the logs (base64 of the redacted record included).
    assert_no_secret(&out, &o, &["SECRET-"]);
}

/// `vigie audit` of one file into `dir/out`, with `extra` arguments; it
/// must succeed.
fn audit_ok(dir: &Path, input: &Path, extra: &[&str]) -> (std::path::PathBuf, std::process::Output) {
    let out = dir.join("out");
    let mut args = vec!["audit", "--input", input.to_str().unwrap(), "--out", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    let o = run(&args);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    (out, o)
}

/// [`audit_ok`] with a key file.
fn audit_keyed(dir: &Path, input: &Path) -> (std::path::PathBuf, std::process::Output) {
    let key = key_file(dir);
    audit_ok(dir, input, &["--key-file", key.to_str().unwrap()])
}

/// The lines of `out/rejects.ndjson`.
fn rejects_of(out: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(out.join("rejects.ndjson")).unwrap();
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn assert_no_secret(out: &Path, o: &std::process::Output, needles: &[&str]) {
    for file in files_under(out) {
        let bytes = std::fs::read(&file).unwrap();
        for n in needles {
            assert!(memchr_find(&bytes, n.as_bytes()).is_none(), "{n} found in {}", file.display());
        }
    }
    let logs = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    for n in needles {
        assert!(!logs.contains(n), "{n} found in the logs:\n{logs}");
    }
}

fn memchr_find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn a_thousand_good_records_among_bad_lines_and_repeats() {
    // 10 workers x (shift_start at 08:00, 98 scans at 08:01..09:38, shift_end
    // at 09:40) = 1,000 good records; 37 bad lines and 25 repeats mixed in.
    let mut good_lines = Vec::new();
    for w in 0..10 {
        let worker = format!("EMP-SECRET-{w:02}");
        good_lines.push(good(&format!("w{w}-start"), &worker, 0, "shift_start"));
        for m in 1..=98 {
            good_lines.push(good(&format!("w{w}-scan{m}"), &worker, m, "scan"));
        }
        good_lines.push(good(&format!("w{w}-end"), &worker, 100, "shift_end"));
    }
    assert_eq!(good_lines.len(), 1000);
    let mut lines = Vec::new();
    for (i, l) in good_lines.iter().enumerate() {
        lines.push(l.clone());
        if i % 27 == 5 {
            lines.push(format!("{{\"event_id\":\"bad{i}\",\"worker\":\"EMP-SECRET-99\"}}"));
            // missing_field
        }
        if i % 40 == 7 {
            lines.push(l.clone()); // repeat
        }
    }
    let bad = good_lines.iter().enumerate().filter(|(i, _)| i % 27 == 5).count();
    let repeats = good_lines.iter().enumerate().filter(|(i, _)| i % 40 == 7).count();
    assert_eq!((bad, repeats), (37, 25));

    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("mixed.jsonl");
    std::fs::write(&input, lines.join("\n")).unwrap();
    let out = dir.path().join("out");
    let o = run(&["audit", "--input", input.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let f = read_json(&out.join("findings.json"));
    assert_eq!(f["input"]["events"], 1000);
    assert_eq!(f["input"]["rejected"], 37);
    assert_eq!(f["input"]["rejected_by_reason"]["missing_field"], 37);
    assert_eq!(f["input"]["duplicates"], 25);
    assert_eq!(f["input"]["from"], "2026-03-02T07:00:00Z");
    assert_eq!(f["input"]["to"], "2026-03-02T08:40:00Z");

    // Every good record reached the analysis: 10 shifts, 980 units, each
    // shift 98 units in 100 min = 58.8 units per hour.
    let csv = std::fs::read_to_string(out.join("aggregates/group_weeks.csv")).unwrap();
    let mut rows = csv.lines();
    let header: Vec<&str> = rows.next().unwrap().split(',').collect();
    let site: Vec<&str> = rows.find(|r| r.contains(",site,")).unwrap().split(',').collect();
    let col = |n: &str| site[header.iter().position(|h| *h == n).unwrap()];
    assert_eq!(col("week"), "2026-W10");
    assert_eq!(col("workers"), "10");
    assert_eq!(col("shifts"), "10");
    assert_eq!(col("units"), "980");
    assert_eq!(col("uph_p50"), "58.8");
    // 97 intervals of 60 s per shift, all in the (30, 60] bucket.
    assert_eq!(col("iv_le_60s"), "970");
    assert_no_secret(&out, &o, &["EMP-SECRET"]);
}

fn to_csv(ndjson: &str) -> String {
    let cols = [
        "event_id",
        "ts",
        "site",
        "worker",
        "kind",
        "team",
        "zone",
        "process",
        "device",
        "quantity",
        "weight_kg",
        "threshold_s",
        "gap_s",
        "target_per_hour",
    ];
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(cols).unwrap();
    for l in ndjson.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        let row: Vec<String> = cols
            .iter()
            .map(|c| match &v[*c] {
                serde_json::Value::Null => String::new(),
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect();
        w.write_record(&row).unwrap();
    }
    String::from_utf8(w.into_inner().unwrap()).unwrap()
}

/// Generates a site's events into `out` (`extra`: more `generate`
/// options) and returns the NDJSON text when `out` is NDJSON.
fn generate(out: &Path, workers: &str, days: &str, seed: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "generate",
        "--out",
        out.to_str().unwrap(),
        "--workers",
        workers,
        "--days",
        days,
        "--seed",
        seed,
    ];
    args.extend_from_slice(extra);
    let o = run(&args);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    if out.extension().and_then(|e| e.to_str()) == Some("ndjson") {
        std::fs::read_to_string(out).unwrap()
    } else {
        String::new()
    }
}

#[test]
fn the_same_events_in_every_format_give_the_same_findings() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    for name in ["site.ndjson", "site.parquet"] {
        generate(&p(name), "24", "14", "5", &["--scenario", "worktime"]);
    }
    let text = std::fs::read_to_string(p("site.ndjson")).unwrap();
    std::fs::write(p("site.csv"), to_csv(&text)).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(text.as_bytes()).unwrap();
    std::fs::write(p("site.ndjson.gz"), gz.finish().unwrap()).unwrap();
    let key = key_file(dir.path());

    let mut results = Vec::new();
    for name in ["site.ndjson", "site.csv", "site.parquet", "site.ndjson.gz"] {
        let out = p(&format!("out-{name}"));
        let o = run(&[
            "audit",
            "--input",
            p(name).to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--key-file",
            key.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(0), "{name}: {}", String::from_utf8_lossy(&o.stderr));
        let mut f = read_json(&out.join("findings.json"));
        f["generated_at"] = serde_json::Value::Null;
        f["input"]["files"] = serde_json::Value::Null;
        // Each format is its own file, with its own name and hash.
        f["provenance"]["inputs"] = serde_json::Value::Null;
        let agg = std::fs::read_to_string(out.join("aggregates/group_weeks.csv")).unwrap();
        results.push((name, f, agg));
    }
    let (_, first, first_agg) = &results[0];
    assert!(first["input"]["events"].as_u64().unwrap() > 10_000);
    assert_eq!(first["input"]["rejected"], 0);
    for (name, f, agg) in &results[1..] {
        assert_eq!(f, first, "{name} differs from NDJSON");
        assert_eq!(agg, first_agg, "{name} aggregates differ");
    }
    // The identifiers of the export never reach an output.
    let labels: std::collections::BTreeSet<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["worker"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(labels.len(), 24);
    for (name, ..) in &results {
        let out = p(&format!("out-{name}"));
        for file in files_under(&out) {
            let bytes = std::fs::read(&file).unwrap();
            for l in &labels {
                assert!(memchr_find(&bytes, l.as_bytes()).is_none(), "{l} in {}", file.display());
            }
        }
        assert!(!out.join(".vigie-work").exists(), "the spill is purged");
    }
}

#[test]
fn exit_codes_and_messages() {
    let dir = tempfile::tempdir().unwrap();
    let good_file = dir.path().join("a.ndjson");
    std::fs::write(&good_file, good("g", "w", 0, "scan")).unwrap();
    let g = good_file.to_str().unwrap();
    let out = dir.path().join("o");
    let o = out.to_str().unwrap();

    let code = |args: &[&str]| {
        let r = run(args);
        (r.status.code(), String::from_utf8_lossy(&r.stderr).to_string())
    };
    let (c, e) = code(&["audit", "--input", g, "--bogus"]);
    assert_eq!(c, Some(2), "{e}");
    let (c, e) = code(&["audit", "--input", "/nonexistent/x.ndjson", "--out", o]);
    assert_eq!(c, Some(2));
    assert!(e.contains("/nonexistent/x.ndjson: no such file"), "{e}");
    let (c, e) = code(&["audit", "--input", g.replace(".ndjson", ".xml").as_str(), "--out", o]);
    assert_eq!(c, Some(2), "{e}");
    let short = dir.path().join("short.key");
    std::fs::write(&short, "tooshort").unwrap();
    let (c, e) = code(&["audit", "--input", g, "--out", o, "--key-file", short.to_str().unwrap()]);
    assert_eq!(c, Some(2));
    assert!(e.contains("at least 32"), "{e}");
    let (c, e) = code(&["audit", "--input", g, "--out", o, "--key-file", "/nonexistent/key"]);
    assert_eq!(c, Some(2));
    assert!(e.contains("cannot read the key file"), "{e}");
    let (c, e) = code(&["audit", "--input", g, "--out", o, "--profile", "mars"]);
    assert_eq!(c, Some(2));
    assert!(e.contains("unknown profile"), "{e}");
    // One line per problem, exit 2.
    let bad_policy = dir.path().join("p.toml");
    let mut p = vigie_analyze::policy::Policy::profile("eu").unwrap();
    p.k = 2;
    p.rules.remove("cadence.rush_share");
    std::fs::write(&bad_policy, p.to_toml()).unwrap();
    let (c, e) = code(&["check-policy", bad_policy.to_str().unwrap()]);
    assert_eq!(c, Some(2));
    assert!(e.contains("k = 2 is below the minimum of 5") && e.contains("cadence.rush_share"), "{e}");
    for sub in ["demo", "audit", "generate", "ingest", "check-policy"] {
        assert_eq!(run(&[sub, "--help"]).status.code(), Some(0), "{sub} --help");
    }
    // A run that works exits 0 even with a single event.
    let (c, e) = code(&["audit", "--input", g, "--out", o]);
    assert_eq!(c, Some(0), "{e}");
    assert!(out.join("report.html").is_file());
}

#[test]
fn documented_examples_match_the_schema_and_the_validator() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/events.md")).unwrap();
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema/event.v1.schema.json"))
            .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let mut blocks = 0;
    let mut lines = doc.lines();
    while let Some(l) = lines.next() {
        let Some(info) = l.strip_prefix("```json") else { continue };
        let body: Vec<&str> = lines.by_ref().take_while(|l| !l.starts_with("```")).collect();
        let body = body.join("\n");
        let value: serde_json::Value = serde_json::from_str(&body).unwrap();
        let raw = vigie_ingest::validate::parse_json(&body).unwrap();
        let ours = vigie_ingest::validate::validate(&raw, None);
        match info.trim().strip_prefix("reject:") {
            None => {
                assert!(validator.is_valid(&value), "schema rejects {body}");
                assert!(ours.is_ok(), "vigie rejects {body}: {:?}", ours.err());
            }
            Some(reason) => {
                assert!(!validator.is_valid(&value), "schema accepts {body}");
                assert_eq!(ours.unwrap_err().reason.as_str(), reason, "{body}");
            }
        }
        blocks += 1;
    }
    assert!(blocks >= 9, "found {blocks} examples");
}

#[test]
fn an_interrupted_audit_leaves_no_spill_and_the_spill_is_private() {
    if common::needs(common::Tool::Kill).is_none() {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("big.parquet");
    generate(&input, "300", "28", "9", &[]);
    let out = dir.path().join("out");
    let mut child = vigie()
        .args(["audit", "--input", input.to_str().unwrap(), "--out", out.to_str().unwrap()])
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let work = out.join(".vigie-work");
    // Wait for the first spilled part.
    let end = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let part = loop {
        let found = vigie_ingest::store::files_under(&work, "spill").into_iter().next();
        if let Some(p) = found {
            break p;
        }
        assert!(child.try_wait().unwrap().is_none(), "the audit ended before it could be interrupted");
        assert!(std::time::Instant::now() < end, "no spill appeared");
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    assert_eq!(std::fs::metadata(&work).unwrap().permissions().mode() & 0o777, 0o700, "spill folder");
    assert_eq!(std::fs::metadata(&part).unwrap().permissions().mode() & 0o777, 0o600, "spill file");
    let _ = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{status:?}");
    let left: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".vigie-work"))
        .collect();
    assert!(left.is_empty(), "the spill outlived the interrupted run: {left:?}");
}

#[test]
fn a_key_file_others_can_read_is_refused_unless_allowed() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ndjson");
    std::fs::write(&input, ndjson(&[ev("w1", "08:00:00", "scan")])).unwrap();
    let key = key_file(dir.path());
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = dir.path().join("out");
    let args = [
        "audit",
        "--input",
        input.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--key-file",
        key.to_str().unwrap(),
    ];
    let o = run(&args);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("can be read by its group or others (mode 0644)") && err.contains("chmod 600"),
        "{err}"
    );
    let mut allowed = args.to_vec();
    allowed.push("--allow-shared-key");
    let o = run(&allowed);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    // A key of printable characters only gets a warning about its entropy.
    std::fs::write(&key, "correct horse battery staple and more!!\n").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let o = run(&args);
    assert_eq!(o.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("bits of entropy"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn typed_timestamps_out_of_range_and_null_cells_are_rejected_not_fatal() {
    use polars::prelude::*;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.parquet");
    // Microseconds since the epoch: a good one, the year 10000, i64::MAX,
    // the year -1, and a null.
    let good = 1_772_434_800_000_000i64; // 2026-03-02T07:00:00Z
    let ts = Series::new(
        "ts".into(),
        [Some(good), Some(253_402_300_800_000_000), Some(i64::MAX), Some(-62_198_755_200_000_000), None],
    )
    .cast(&DataType::Datetime(TimeUnit::Microseconds, Some(TimeZone::UTC)))
    .unwrap();
    let mut df = DataFrame::new_infer_height(vec![
        Column::new("event_id".into(), ["e1", "e2", "e3", "e4", "e5"]),
        ts.into(),
        Column::new("site".into(), ["s1"; 5]),
        Column::new("worker".into(), ["SECRET-1"; 5]),
        Column::new("kind".into(), ["scan"; 5]),
    ])
    .unwrap();
    ParquetWriter::new(std::fs::File::create(&path).unwrap()).finish(&mut df).unwrap();
    let out = dir.path().join("out");
    let o = run(&["audit", "--input", path.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let f = read_json(&out.join("findings.json"));
    assert_eq!(f["input"]["events"], 1);
    assert_eq!(f["input"]["rejected_by_reason"]["invalid_timestamp"], 3, "{}", f["input"]);
    assert_eq!(f["input"]["rejected_by_reason"]["missing_field"], 1, "{}", f["input"]);
    assert_no_secret(&out, &o, &["SECRET-"]);
}

#[test]
fn past_its_cap_the_rejects_store_counts_and_keeps_nothing_more() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ndjson");
    let mut text = ndjson(&[ev("w1", "08:00:00", "scan")]);
    for i in 0..50 {
        text.push_str(&format!("{{\"event_id\":\"bad-{i}\",\"worker\":\"SECRET-{i}\"\n"));
    }
    std::fs::write(&input, text).unwrap();
    let (out, o) = audit_ok(dir.path(), &input, &["--max-rejects-mib", "0"]);
    let f = read_json(&out.join("findings.json"));
    assert_eq!(f["input"]["rejected"], 50);
    assert_eq!(f["input"]["rejects_not_kept"], 50);
    assert!(!out.join("rejects.ndjson").exists());
    assert!(String::from_utf8_lossy(&o.stderr).contains("rejects store is full"));
}

#[test]
fn a_hostile_csv_keeps_no_identifier_and_reads_on_past_a_record_cut_for_its_size() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("export.csv");
    let mut f = std::fs::File::create(&input).unwrap();
    let row = |id: &str, w: &str, m: u32| {
        format!("{id},2026-03-02T08:{m:02}:00+01:00,lyon-1,{w},scan,SECRET-EMP-{id}\n")
    };
    // line 1: header, with an identifier under another name.
    f.write_all(b"event_id,ts,site,worker,kind,employee_id\n").unwrap();
    // line 2: good
    f.write_all(row("g1", "SECRET-W1", 0).as_bytes()).unwrap();
    // lines 3-4: a quoted field over the limit, across two lines, cut
    // while it is read.
    let pad = "a".repeat(200_000);
    f.write_all(format!("b3,x,lyon-1,SECRET-W3,scan,\"{pad}\n{pad}\"\n").as_bytes()).unwrap();
    // line 5: bad UTF-8 in `site`; the `employee_id` cell must not be kept.
    f.write_all(b"b5,2026-03-02T08:05:00+01:00,lyon-\xff,SECRET-W5,scan,SECRET-EMP-b5\n").unwrap();
    // line 6: one cell too many (the extra cell has no column name).
    f.write_all(b"b6,2026-03-02T08:06:00+01:00,lyon-1,SECRET-W6,scan,SECRET-EMP-b6,SECRET-EXTRA\n").unwrap();
    // line 7: good
    f.write_all(row("g7", "SECRET-W1", 7).as_bytes()).unwrap();
    drop(f);
    let (out, o) = audit_keyed(dir.path(), &input);
    let f = read_json(&out.join("findings.json"));
    assert_eq!(f["input"]["events"], 2, "{}", f["input"]);
    let lines = rejects_of(&out);
    let got: Vec<(u64, &str)> = lines
        .iter()
        .map(|l| (l["source"]["line"].as_u64().unwrap(), l["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(got, vec![(3, "too_large"), (5, "invalid_utf8"), (6, "invalid_value")]);
    // 27 bytes of cells, two quotes, two pads, two line ends.
    assert_eq!(lines[0]["raw_bytes"].as_u64().unwrap(), 27 + 2 + 400_000 + 2);
    assert_eq!(lines[0]["raw_withheld"], true);
    assert_no_secret(&out, &o, &["SECRET-"]);
}

#[test]
fn a_byte_order_mark_at_the_start_of_an_ndjson_file_or_line_is_not_a_record_error() {
    // A file saved with a UTF-8 byte-order mark, plain and gzipped, and a
    // line that starts with one (two files concatenated): every record is
    // accepted.
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("\u{feff}");
    text.push_str(&good("m1", "W-1", 0, "scan"));
    text.push('\n');
    text.push_str(&good("m2", "W-1", 1, "scan"));
    text.push_str("\n\u{feff}");
    text.push_str(&good("m3", "W-1", 2, "scan"));
    text.push('\n');
    let plain = dir.path().join("bom.ndjson");
    std::fs::write(&plain, &text).unwrap();
    let gz = dir.path().join("bom.ndjson.gz");
    let mut enc =
        flate2::write::GzEncoder::new(std::fs::File::create(&gz).unwrap(), flate2::Compression::fast());
    enc.write_all(text.as_bytes()).unwrap();
    enc.finish().unwrap();
    for input in [&plain, &gz] {
        let sub = tempfile::tempdir_in(dir.path()).unwrap();
        let (out, o) = audit_ok(sub.path(), input, &[]);
        assert_eq!(o.status.code(), Some(0));
        let f = read_json(&out.join("findings.json"));
        assert_eq!(
            (f["input"]["events"].as_u64(), f["input"]["rejected"].as_u64()),
            (Some(3), Some(0)),
            "{input:?}"
        );
    }
}

/// A French spreadsheet export of the same events as an NDJSON file:
/// `;` between cells, decimal comma, Windows-1252 with a byte-order mark,
/// date and time in two columns in local time (Europe/Paris), vendor
/// event codes, and rows whose code has no kind.
fn french_export(ndjson: &str) -> Vec<u8> {
    let mut out: Vec<u8> = b"\xEF\xBB\xBF".to_vec();
    out.extend_from_slice(
        b"N\xB0 mouvement;Date;Heure;Matricule;Type de transaction;Qt\xE9;Poids;Seuil (s);Equipe;Zone\r\n",
    );
    for (i, line) in ndjson.lines().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let ts = v["ts"].as_str().unwrap();
        // The local wall-clock time: the timestamp without its offset.
        let (date, time) = ts[..ts.len() - 6].split_once('T').unwrap();
        let (y, rest) = date.split_once('-').unwrap();
        let (m, d) = rest.split_once('-').unwrap();
        let kind = v["kind"].as_str().unwrap();
        let code = VENDOR_CODES.iter().find(|c| c.1 == kind).unwrap().0;
        let num = |k: &str| v[k].as_f64().map(|x| x.to_string().replace('.', ",")).unwrap_or_default();
        let cell = |k: &str| v[k].as_str().unwrap_or("").to_string();
        let row = format!(
            "{};{d}/{m}/{y};{time};{};{code};{};{};{};{};{}\r\n",
            cell("event_id"),
            cell("worker"),
            num("quantity"),
            num("weight_kg"),
            num("threshold_s"),
            cell("team"),
            cell("zone")
        );
        out.extend(row.chars().map(|c| c as u32 as u8));
        if i % 1000 == 0 {
            // A row whose code the mapping does not know: counted, not
            // refused.
            out.extend_from_slice(
                format!("x{i};{d}/{m}/{y};{time};{};INVENTAIRE;;;;;\r\n", cell("worker")).as_bytes(),
            );
        }
    }
    out
}

const FRENCH_MAPPING: &str = r#"
name = "export-fr-exemple"
[csv]
delimiter = ";"
decimal = ","
encoding = "windows-1252"
[time]
format = "%d/%m/%Y %H:%M:%S%.f"
zone = "Europe/Paris"
[fields]
event_id = { column = "N° mouvement" }
ts = { columns = ["Date", "Heure"] }
site = { value = "lyon-1" }
worker = { column = "Matricule" }
kind = { column = "Type de transaction" }
quantity = { column = "Qté" }
weight_kg = { column = "Poids" }
threshold_s = { column = "Seuil (s)" }
team = { column = "Equipe" }
zone = { column = "Zone" }
[kinds]
PICK_CONFIRM = "scan"
VOCAL = "voice_prompt"
LOGIN = "shift_start"
LOGOUT = "shift_end"
PAUSE_DEB = "break_start"
PAUSE_FIN = "break_end"
INACTIF = "idle_flag"
VITESSE = "speed_flag"
JUSTIF = "justification_request"
OBJECTIF = "rate_target"
"#;

#[test]
fn a_french_spreadsheet_export_through_a_mapping_gives_the_findings_of_the_contract_file() {
    // Two weeks over the last Sunday of October (25 October 2026: the
    // repeated hour), with working-time breaches to find.
    let dir = tempfile::tempdir().unwrap();
    let nd = dir.path().join("site.ndjson");
    let text = generate(&nd, "24", "14", "5", &["--scenario", "worktime", "--start", "2026-10-19"]);
    let csv = dir.path().join("export.csv");
    std::fs::write(&csv, french_export(&text)).unwrap();
    let mapping = dir.path().join("mapping.toml");
    std::fs::write(&mapping, FRENCH_MAPPING).unwrap();
    let o = run(&["check-mapping", mapping.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));

    let a = tempfile::tempdir_in(dir.path()).unwrap();
    let (out_nd, _) = audit_keyed(a.path(), &nd);
    let b = tempfile::tempdir_in(dir.path()).unwrap();
    let (out_csv, _) = audit_ok(
        b.path(),
        &csv,
        &["--mapping", mapping.to_str().unwrap(), "--key-file", key_file(b.path()).to_str().unwrap()],
    );
    let fa = read_json(&out_nd.join("findings.json"));
    let fb = read_json(&out_csv.join("findings.json"));
    assert_eq!(fb["input"]["rejected"], 0, "{:#}", fb["input"]);
    assert_eq!(fa["input"]["events"], fb["input"]["events"]);
    let m = &fb["input"]["mapping"];
    assert_eq!(m["name"], "export-fr-exemple");
    assert_eq!(m["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(m["unmapped_codes"]["INVENTAIRE"].as_u64(), Some(text.lines().count().div_ceil(1000) as u64));
    assert_eq!(findings_key(&fa), findings_key(&fb));
    assert!(findings_key(&fa).iter().any(|r| r.contains("\"breach\"")), "the scenario's breaches are found");
}

/// Each finding's rule, place, period, status, figure and population.
fn findings_key(f: &serde_json::Value) -> Vec<String> {
    f["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            format!(
                "{} {} {} {} {} {} {}",
                x["rule"], x["site"], x["group"], x["period"], x["status"], x["observed"], x["population"]
            )
        })
        .collect()
}

#[test]
fn an_ndjson_export_with_its_own_keys_reads_through_a_mapping_like_the_contract_file() {
    // The same events with a vendor's keys (a nested worker key whose name
    // does not say it is one, epoch milliseconds, vendor codes, decimal
    // commas in strings), a byte-order mark, a record whose code has no
    // kind, one that is not JSON and one whose time is not a number.
    let dir = tempfile::tempdir().unwrap();
    let nd = dir.path().join("site.ndjson");
    let text = generate(&nd, "12", "10", "8", &["--scenario", "worktime", "--start", "2026-10-19"]);
    let mut vendor = b"\xEF\xBB\xBF".to_vec();
    for line in text.lines() {
        vendor.extend(vendor_json(line.as_bytes()));
        vendor.push(b'\n');
    }
    vendor.extend_from_slice(b"{\"TxnId\":\"inv-1\",\"Horodatage\":1792900000000,\"Depot\":\"lyon-1\",\"Qui\":{\"code\":\"SECRET-A\"},\"Code\":\"INVENTAIRE\"}\n");
    vendor.extend_from_slice(b"{\"TxnId\":\"bad-1\",\"Qui\":{\"code\":\"SECRET-B\"}\n");
    vendor.extend_from_slice(b"{\"TxnId\":\"bad-2\",\"Horodatage\":\"hier\",\"Depot\":\"lyon-1\",\"Qui\":{\"code\":\"SECRET-C\"},\"Code\":\"PICK_CONFIRM\"}\n");
    let input = dir.path().join("vendor.ndjson");
    std::fs::write(&input, vendor).unwrap();
    let mapping = dir.path().join("vendor.toml");
    std::fs::write(&mapping, vendor_mapping()).unwrap();

    let a = tempfile::tempdir_in(dir.path()).unwrap();
    let (out_nd, _) = audit_keyed(a.path(), &nd);
    let b = tempfile::tempdir_in(dir.path()).unwrap();
    let (out_v, o) = audit_ok(
        b.path(),
        &input,
        &["--mapping", mapping.to_str().unwrap(), "--key-file", key_file(b.path()).to_str().unwrap()],
    );
    let fa = read_json(&out_nd.join("findings.json"));
    let fb = read_json(&out_v.join("findings.json"));
    assert_eq!(fa["input"]["events"], fb["input"]["events"]);
    assert_eq!(fb["input"]["rejected"], 2, "{:#}", fb["input"]);
    assert_eq!(fb["input"]["mapping"]["unmapped_codes"]["INVENTAIRE"], 1);
    assert_eq!(findings_key(&fa), findings_key(&fb));
    let mut reasons: Vec<String> =
        rejects_of(&out_v).iter().map(|r| r["reason"].as_str().unwrap().to_string()).collect();
    reasons.sort();
    assert_eq!(reasons, ["invalid_json", "invalid_timestamp"]);
    let late = rejects_of(&out_v).into_iter().find(|r| r["reason"] == "invalid_timestamp").unwrap();
    let raw: serde_json::Value = serde_json::from_str(late["raw"].as_str().unwrap()).unwrap();
    assert!(raw["Qui"]["code"].as_str().unwrap().starts_with('~'), "{raw}");
    assert_eq!(raw["Horodatage"], "hier", "the rest of the record is kept to say what was wrong");
    // The worker value under a key the mapping names is pseudonymised in
    // the rejects store, whatever the key is called.
    assert_no_secret(&out_v, &o, &["SECRET-B", "SECRET-C"]);

    // `vigie inspect` reads the NDJSON keys (nested ones as `a.b`), finds
    // the epoch times and the codes, and shows no worker value in clear.
    let draft = dir.path().join("draft.toml");
    let o = run(&["inspect", input.to_str().unwrap(), "--out", draft.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let draft_text = std::fs::read_to_string(&draft).unwrap();
    for needle in [
        "format = \"epoch_ms\"",
        "kind = { column = \"Code\" }",
        "\"PICK_CONFIRM\" = \"scan\"",
        "\"Qui.code\": ~",
    ] {
        assert!(draft_text.contains(needle), "draft lacks {needle}:\n{draft_text}");
    }
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert!(!draft_text.contains(first["worker"].as_str().unwrap()), "a worker value in clear");
}

#[test]
fn a_shift_over_a_change_of_hour_counts_the_hours_worked() {
    // Ten workers, a night shift from 22:00 to 06:00 local time, a scan
    // every 10 minutes of real time: over the autumn change (24 to 25
    // October 2026) that is 9 hours of work, over the spring change (28
    // to 29 March 2026) 7 hours; written in local time, as an export
    // would.
    let dir = tempfile::tempdir().unwrap();
    let mapping = dir.path().join("mapping.toml");
    std::fs::write(
        &mapping,
        "name = \"local\"\n[time]\nformat = \"%Y-%m-%d %H:%M:%S\"\nzone = \"Europe/Paris\"\n[fields]\nevent_id = { line = true }\nts = { column = \"time\" }\nsite = { value = \"s1\" }\nworker = { column = \"worker\" }\nkind = { column = \"kind\" }\n",
    )
    .unwrap();
    for (start_utc, hours, week) in
        [("2026-10-24T20:00:00Z", 9.0, "2026-W43"), ("2026-03-28T21:00:00Z", 7.0, "2026-W13")]
    {
        let start = chrono::DateTime::parse_from_rfc3339(start_utc).unwrap().timestamp();
        let mut csv = String::from("time,worker,kind\n");
        for w in 0..10 {
            let steps = (hours * 6.0) as i64;
            for i in 0..=steps {
                let t = start + i * 600;
                // Paris local time: +2 h in summer time, +1 h in winter.
                let summer = if week == "2026-W43" { t < 1_792_890_000 } else { t >= 1_774_746_000 };
                let local =
                    chrono::DateTime::from_timestamp(t + if summer { 7200 } else { 3600 }, 0).unwrap();
                let kind = if i == 0 {
                    "shift_start"
                } else if i == steps {
                    "shift_end"
                } else {
                    "scan"
                };
                csv.push_str(&format!("{},w{w},{kind}\n", local.format("%Y-%m-%d %H:%M:%S")));
            }
        }
        let input = dir.path().join(format!("{week}.csv"));
        std::fs::write(&input, csv).unwrap();
        let sub = tempfile::tempdir_in(dir.path()).unwrap();
        let (out, _) = audit_ok(sub.path(), &input, &["--mapping", mapping.to_str().unwrap()]);
        let agg = std::fs::read_to_string(out.join("aggregates/group_weeks.csv")).unwrap();
        let mut rows = csv::Reader::from_reader(agg.as_bytes());
        let headers = rows.headers().unwrap().clone();
        let col = |n: &str| headers.iter().position(|h| h == n).unwrap();
        let row = rows.records().map(|r| r.unwrap()).find(|r| &r[col("group")] == "site").expect("site row");
        assert_eq!(&row[col("week")], week);
        let eff: f64 = row[col("effective_hours")].parse().unwrap();
        assert!(
            (eff - 10.0 * hours).abs() < 1e-6,
            "{week}: {eff} hours for 10 workers, want {}",
            10.0 * hours
        );
    }
}

#[test]
fn inspect_drafts_a_mapping_that_once_completed_accepts_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let nd = dir.path().join("site.ndjson");
    let text = generate(&nd, "12", "3", "6", &["--start", "2026-10-19"]);
    let csv = dir.path().join("export.csv");
    std::fs::write(&csv, french_export(&text)).unwrap();
    let draft = dir.path().join("draft.toml");
    let o = run(&["inspect", csv.to_str().unwrap(), "--out", draft.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let draft_text = std::fs::read_to_string(&draft).unwrap();
    // What it guessed: the dialect, the encoding, the time format, the
    // columns; no worker value in clear.
    for needle in [
        "delimiter = \";\"",
        "decimal = \",\"",
        "encoding = \"windows-1252\"",
        "format = \"%d/%m/%Y %H:%M:%S%.f\"",
        "ts = { columns = [\"Date\", \"Heure\"] }",
        "worker = { column = \"Matricule\" }",
        "kind = { column = \"Type de transaction\" }",
        "\"PICK_CONFIRM\" = \"scan\"",
        "\"LOGIN\" = \"shift_start\"",
    ] {
        assert!(draft_text.contains(needle), "draft lacks {needle}:\n{draft_text}");
    }
    let v: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert!(!draft_text.contains(v["worker"].as_str().unwrap()), "a worker value in clear");
    // Its blanks filled as a user would: the zone, the site, the codes it
    // could not name.
    let named: Vec<(&str, &str)> =
        VENDOR_CODES.into_iter().filter(|(c, _)| !matches!(*c, "PICK_CONFIRM" | "LOGIN")).collect();
    let mut done = String::new();
    for line in draft_text.lines() {
        let line = if line.starts_with("zone = \"TODO\"") {
            "zone = \"Europe/Paris\"".to_string()
        } else if line.starts_with("site = { value = \"TODO\" }") {
            "site = { value = \"lyon-1\" }".to_string()
        } else if let Some((code, kind)) = named.iter().find(|(c, _)| line.starts_with(&format!("# \"{c}\"")))
        {
            format!("\"{code}\" = \"{kind}\"")
        } else {
            line.to_string()
        };
        done.push_str(&line);
        done.push('\n');
    }
    for (code, kind) in named {
        if !done.contains(&format!("\"{code}\" =")) {
            done.push_str(&format!("\"{code}\" = \"{kind}\"\n"));
        }
    }
    // A code the user does not know stays commented out: counted, not
    // refused.
    assert!(done.lines().all(|l| l.starts_with('#') || !l.contains("TODO")), "{done}");
    let filled = dir.path().join("mapping.toml");
    std::fs::write(&filled, done).unwrap();
    let o = run(&["inspect", csv.to_str().unwrap(), "--try", filled.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let said = String::from_utf8_lossy(&o.stdout);
    let events = text.lines().count();
    assert!(said.contains(&format!("{events} accepted, 0 rejected")), "{said}");
    assert!(said.contains("code without a kind, \"INVENTAIRE\""), "{said}");
}

#[test]
fn each_ready_made_mapping_reads_its_sample_and_inspect_drafts_one_that_does_too() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings");
    let mut seen = 0;
    for entry in std::fs::read_dir(&root).unwrap().flatten() {
        let mapping = entry.path();
        if mapping.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        seen += 1;
        let stem = mapping.file_stem().unwrap().to_str().unwrap().to_string();
        let sample = root.join("samples").join(format!("{stem}.csv"));
        assert!(sample.exists(), "{stem}: no sample in mappings/samples/");
        let o = run(&["check-mapping", mapping.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
        let dir = tempfile::tempdir().unwrap();
        let (out, _) = audit_ok(dir.path(), &sample, &["--mapping", mapping.to_str().unwrap()]);
        let f = read_json(&out.join("findings.json"));
        let rows = std::fs::read_to_string(&sample).unwrap().lines().count() as u64 - 1;
        let skipped: u64 = f["input"]["mapping"]["unmapped_codes"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum();
        assert_eq!(f["input"]["rejected"], 0, "{stem}: {:#}", f["input"]);
        assert_eq!(f["input"]["events"].as_u64().unwrap() + skipped, rows, "{stem}");
        if stem == "sap-ewm-warehouse-orders" {
            // 406 confirmed orders, 6 open ones (status '') skipped; the
            // UTC time stamps read as UTC: the first confirmation,
            // 20260302050000, is 05:00 UTC (06:00 in Paris).
            assert_eq!((f["input"]["events"].as_u64(), skipped), (Some(406), 6));
            assert_eq!(f["input"]["from"], "2026-03-02T05:00:00Z");
            // The report says how the export was read.
            let report = std::fs::read_to_string(out.join("report.html")).unwrap();
            assert!(
                report.contains("« sap-ewm-warehouse-orders »")
                    && report.contains("6 enregistrements ont été écartés"),
                "the report does not say how the export was read"
            );
        }
        // The draft inspect writes for the sample, its blanks filled from
        // the ready-made mapping, accepts every record the mapping does.
        let draft = dir.path().join("draft.toml");
        let o = run(&["inspect", sample.to_str().unwrap(), "--out", draft.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
        let ready: toml::Table = toml::from_str(&std::fs::read_to_string(&mapping).unwrap()).unwrap();
        let zone = ready["time"]["zone"].as_str().unwrap();
        let mut done = String::new();
        for line in std::fs::read_to_string(&draft).unwrap().lines() {
            if line.starts_with("zone = \"TODO\"") {
                done.push_str(&format!("zone = {zone:?}\n"));
            } else if line.starts_with("# \"") && line.contains("= \"TODO\"") {
                let code = line[2..].split('"').nth(1).unwrap();
                let kind = ready["kinds"][code].as_str().unwrap();
                done.push_str(&format!("{code:?} = {kind:?}\n"));
            } else {
                assert!(!line.contains("TODO") || line.starts_with('#'), "{stem}: a blank left: {line}");
                done.push_str(line);
                done.push('\n');
            }
        }
        let completed = dir.path().join("completed.toml");
        std::fs::write(&completed, &done).unwrap();
        let o = run(&["inspect", sample.to_str().unwrap(), "--try", completed.to_str().unwrap()]);
        let text = String::from_utf8_lossy(&o.stdout);
        let events = f["input"]["events"].as_u64().unwrap();
        assert!(text.contains(&format!("{events} accepted, 0 rejected")), "{stem}: {text}\n{done}");
    }
    assert!(seen >= 1, "no ready-made mapping found");
}

/// findings.json without its `generated_at` line.
fn findings_text(out: &Path) -> String {
    std::fs::read_to_string(out.join("findings.json"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim_start().starts_with("\"generated_at\""))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_same_input_and_key_give_byte_identical_findings_in_every_format_on_one_or_two_threads() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    for name in ["site.ndjson", "site.parquet"] {
        generate(&p(name), "24", "14", "8", &["--scenario", "voice-paced"]);
    }
    std::fs::write(p("site.csv"), to_csv(&std::fs::read_to_string(p("site.ndjson")).unwrap())).unwrap();
    let key = key_file(dir.path());
    for name in ["site.ndjson", "site.csv", "site.parquet"] {
        let mut runs = Vec::new();
        for threads in ["1", "2", "2"] {
            let out = p(&format!("out-{name}-{threads}-{}", runs.len()));
            let o = vigie()
                .args(["audit", "--input", p(name).to_str().unwrap(), "--out", out.to_str().unwrap()])
                .args(["--key-file", key.to_str().unwrap()])
                .env("POLARS_MAX_THREADS", threads)
                .output()
                .unwrap();
            assert_eq!(o.status.code(), Some(0), "{name}: {}", String::from_utf8_lossy(&o.stderr));
            let agg: Vec<String> = ["group_weeks", "target_steps", "comparisons"]
                .iter()
                .map(|t| std::fs::read_to_string(out.join(format!("aggregates/{t}.csv"))).unwrap())
                .collect();
            runs.push((threads, findings_text(&out), agg));
        }
        let (_, first, first_agg) = &runs[0];
        assert!(first.contains("\"comparisons\"") && first.contains("\"provenance\""), "{name}");
        for (threads, f, agg) in &runs[1..] {
            if f != first {
                let line = first.lines().zip(f.lines()).position(|(a, b)| a != b).unwrap_or(0);
                panic!(
                    "{name}, {threads} thread(s): findings differ at line {line}: {:?} against {:?}",
                    first.lines().nth(line),
                    f.lines().nth(line)
                );
            }
            assert_eq!(agg, first_agg, "{name}, {threads} thread(s): the open data differ");
        }
    }
}

fn ssh_keygen(dir: &Path, name: &str) -> PathBuf {
    let key = dir.join(name);
    let o = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f", key.to_str().unwrap()])
        .output()
        .expect("ssh-keygen (openssh-client) is installed by scripts/test.sh");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    key
}

/// `vigie verify` with these arguments: exit code and the lines it printed.
fn verify(args: &[&str]) -> (Option<i32>, String) {
    let o = run(&[&["verify"], args].concat());
    (o.status.code(), String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr))
}

#[test]
fn verify_finds_every_tampered_file_a_changed_input_and_a_wrong_key() {
    if common::needs(common::Tool::SshKeygen).is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    let s = |x: &Path| x.to_str().unwrap().to_string();
    generate(&p("site.ndjson"), "20", "14", "2", &[]);
    let key = key_file(dir.path());
    let signer = ssh_keygen(dir.path(), "signer");
    let out = p("out");
    let o = run(&[
        "audit",
        "--input",
        &s(&p("site.ndjson")),
        "--key-file",
        &s(&key),
        "--out",
        &s(&out),
        "--sign-key",
        &s(&signer),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));

    // The provenance: the input by name, size and the hash sha256sum gives.
    let f = read_json(&out.join("findings.json"));
    let prov = &f["provenance"];
    let (bytes, sha) = vigie::custody::sha256_file(&p("site.ndjson")).unwrap();
    assert_eq!(prov["inputs"][0]["name"], "site.ndjson");
    assert_eq!(
        (prov["inputs"][0]["bytes"].as_u64(), prov["inputs"][0]["sha256"].as_str()),
        (Some(bytes), Some(sha.as_str()))
    );
    assert_eq!(prov["inputs"][0]["records"], f["input"]["events"]);
    assert_eq!(prov["policy"]["name"], "fr");
    assert!(prov["policy"]["resolved"].as_str().unwrap().contains("[rules.\"cadence.intensification\"]"));
    // The key's fingerprint is its slow, domain-separated hash, never the
    // key.
    let k = std::fs::read(&key).unwrap();
    let fp: String = vigie_ingest::pseudo::fingerprint_of(&k).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(prov["key_fingerprint"], fp.as_str());
    assert_ne!(prov["source_revision"], "");
    // The report's annex shows the input's hash and how to verify.
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        html.contains("<section id=\"provenance\">") && html.contains(&sha),
        "the annex names the input's hash"
    );
    // (in French, the `fr` profile's language)
    assert!(html.contains("vigie verify DOSSIER_DE_SORTIE --input site.ndjson"), "and how to verify it");

    // Everything verifies, the second run included; OpenSSH agrees on the
    // signature.
    let pubkey = s(&signer.with_extension("pub"));
    let all = [&s(&out), "--input", &s(&p("site.ndjson")), "--pub-key", &pubkey, "--key-file", &s(&key)];
    let (code, text) = verify(&all);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("signature: good")
            && text.contains("re-run: the audit made again gives the same files"),
        "{text}"
    );
    let allowed = p("allowed_signers");
    std::fs::write(&allowed, format!("vigie-signer {}", std::fs::read_to_string(&pubkey).unwrap())).unwrap();
    let o = std::process::Command::new("ssh-keygen")
        .args(["-Y", "verify", "-f", &s(&allowed), "-I", "vigie-signer", "-n", "vigie", "-s"])
        .arg(out.join("manifest.json.sig"))
        .stdin(std::fs::File::open(out.join("manifest.json")).unwrap())
        .output()
        .unwrap();
    assert!(o.status.success(), "ssh-keygen: {}", String::from_utf8_lossy(&o.stderr));

    // One byte changed in a report, a finding or an aggregate: found.
    for file in
        ["report.html", "findings.json", "aggregates/group_weeks.csv", "aggregates/comparisons.parquet"]
    {
        let path = out.join(file);
        let original = std::fs::read(&path).unwrap();
        let mut changed = original.clone();
        let i = changed.len() / 2;
        changed[i] ^= 0x01;
        std::fs::write(&path, &changed).unwrap();
        let (code, text) = verify(&[&s(&out)]);
        assert_eq!(code, Some(1), "{file}: {text}");
        assert!(text.contains(&format!("FAIL {file}: CHANGED")), "{file}: {text}");
        std::fs::write(&path, &original).unwrap();
    }
    // A file slipped in, and one removed.
    std::fs::write(out.join("extra.csv"), "a,b\n").unwrap();
    let (code, text) = verify(&[&s(&out)]);
    assert!(code == Some(1) && text.contains("FAIL extra.csv: not in the manifest"), "{text}");
    std::fs::remove_file(out.join("extra.csv")).unwrap();
    let report = std::fs::read(out.join("report.html")).unwrap();
    std::fs::remove_file(out.join("report.html")).unwrap();
    let (code, text) = verify(&[&s(&out)]);
    assert!(code == Some(1) && text.contains("FAIL report.html: MISSING"), "{text}");
    std::fs::write(out.join("report.html"), &report).unwrap();

    // A manifest rewritten to cover a changed file: the signature breaks,
    // with the public key or without it (the signature names its key).
    let manifest = std::fs::read_to_string(out.join("manifest.json")).unwrap();
    std::fs::write(out.join("manifest.json"), manifest.replacen("\"bytes\": ", "\"bytes\": 1", 1)).unwrap();
    for args in [vec![s(&out), "--pub-key".into(), pubkey.clone()], vec![s(&out)]] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, text) = verify(&args);
        assert!(code == Some(1) && text.contains("FAIL signature: BAD"), "{text}");
    }
    std::fs::write(out.join("manifest.json"), &manifest).unwrap();
    // A manifest that points outside the folder, and leaves findings.json
    // out.
    let copy = p("copy");
    for f in files_under(&out) {
        let to = copy.join(f.strip_prefix(&out).unwrap());
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&f, to).unwrap();
    }
    std::fs::remove_file(copy.join("manifest.json.sig")).unwrap();
    let outside = manifest.replacen("\"path\": \"findings.json\"", "\"path\": \"../out/findings.json\"", 1);
    std::fs::write(copy.join("manifest.json"), outside).unwrap();
    let (code, text) = verify(&[&s(&copy)]);
    assert!(
        code == Some(1) && text.contains("\"../out/findings.json\": a path outside the folder"),
        "{text}"
    );
    assert!(text.contains("FAIL findings.json: not in the manifest"), "{text}");

    // Another public key is refused.
    let other = ssh_keygen(dir.path(), "other");
    let (code, text) = verify(&[&s(&out), "--pub-key", &s(&other.with_extension("pub"))]);
    assert!(code == Some(1) && text.contains("FAIL signature: made with another key"), "{text}");

    // A renamed copy of the input is the same input, and the run made
    // again from it gives the same files.
    std::fs::copy(p("site.ndjson"), p("renamed.ndjson")).unwrap();
    let (code, text) = verify(&[&s(&out), "--input", &s(&p("renamed.ndjson")), "--key-file", &s(&key)]);
    assert_eq!(code, Some(0), "{text}");
    // A changed input: one line dropped.
    let input = std::fs::read_to_string(p("site.ndjson")).unwrap();
    let shorter: String = input.lines().skip(1).map(|l| format!("{l}\n")).collect();
    std::fs::write(p("changed.ndjson"), shorter).unwrap();
    let (code, text) = verify(&[&s(&out), "--input", &s(&p("changed.ndjson"))]);
    assert!(code == Some(1) && text.contains("NOT an input of the run"), "{text}");
    assert!(text.contains("input `site.ndjson` of the run") && text.contains("was not given"), "{text}");
    // Another key for the second run: refused before running.
    let other_key = p("other.key");
    std::fs::write(&other_key, [b'o'; 32]).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&other_key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let (code, text) = verify(&[&s(&out), "--input", &s(&p("site.ndjson")), "--key-file", &s(&other_key)]);
    assert!(code == Some(1) && text.contains("is not the key of the run"), "{text}");

    // Unsigned output checked with a key: the missing signature fails.
    let plain = p("plain");
    let o = run(&["audit", "--input", &s(&p("site.ndjson")), "--key-file", &s(&key), "--out", &s(&plain)]);
    assert_eq!(o.status.code(), Some(0));
    let (code, text) = verify(&[&s(&plain), "--pub-key", &pubkey]);
    assert!(code == Some(1) && text.contains("manifest.json.sig is missing"), "{text}");
    let (code, text) = verify(&[&s(&plain)]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("unsigned:"), "{text}");
    // A key vigie cannot sign with is refused before the audit runs.
    let rsa = p("rsa");
    let o = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "rsa", "-b", "2048", "-N", "", "-f", &s(&rsa)])
        .output()
        .unwrap();
    assert!(o.status.success());
    let none = p("not-written");
    let o = run(&["audit", "--input", &s(&p("site.ndjson")), "--out", &s(&none), "--sign-key", &s(&rsa)]);
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("an Ed25519 key is needed"));
    assert!(!none.join("findings.json").exists(), "nothing was audited");
}

#[test]
fn recent_synthetic_data_end_within_the_last_week() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("site.ndjson");
    let text = generate(&out, "12", "14", "3", &["--recent"]);
    let last = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["ts"].as_str().unwrap()[..10].to_string()
        })
        .max()
        .unwrap();
    let last = chrono::NaiveDate::parse_from_str(&last, "%Y-%m-%d").unwrap();
    let age = (chrono::Utc::now().date_naive() - last).num_days();
    // The last shift may end after midnight UTC: a day ahead at most.
    assert!((-1..=6).contains(&age), "the data end {age} days ago");
}

/// Duplicates are found after the read (from partition files, not a set
/// in memory): first seen wins, whatever the later copy says. A copy under
/// another worker, at another site and an earlier time changes nothing of
/// the findings, the period or the sites; each file's counts say where the
/// copies were.
#[test]
fn later_copies_of_an_event_id_change_nothing_but_the_duplicate_counts() {
    let dir = tempfile::tempdir().unwrap();
    // File a: six workers, each a shift of a start, 10 scans and an end
    // (72 events).
    let mut a = Vec::new();
    for w in 0..6 {
        let worker = format!("EMP-{w}");
        a.push(good(&format!("w{w}-start"), &worker, 0, "shift_start"));
        for m in 1..=10 {
            a.push(good(&format!("w{w}-scan{m}"), &worker, m * 8, "scan"));
        }
        a.push(good(&format!("w{w}-end"), &worker, 100, "shift_end"));
    }
    let fresh = good("w0-scan11", "EMP-0", 90, "scan");
    // File b: a copy of w0-scan1 under another worker, at another site,
    // at 07:00 (before anything else); an exact copy of w1-scan2; one new
    // event.
    let copy = good("w0-scan1", "EMP-OTHER", 0, "scan")
        .replace("lyon-1", "paris-2")
        .replace("T08:00:00+01:00", "T07:00:00+01:00");
    let with_copies = [copy, good("w1-scan2", "EMP-1", 16, "scan"), fresh.clone()].join("\n");
    let audit = |b: &str, name: &str| {
        let d = dir.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("a.ndjson"), a.join("\n")).unwrap();
        std::fs::write(d.join("b.ndjson"), b).unwrap();
        let out = d.join("out");
        let key = d.join("key");
        std::fs::write(&key, [9u8; 32]).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let (fa, fb, o, k) = (d.join("a.ndjson"), d.join("b.ndjson"), out.clone(), key);
        let args = ["audit", "--input", fa.to_str().unwrap(), "--input", fb.to_str().unwrap()];
        let o =
            run(&[&args[..], &["--out", o.to_str().unwrap(), "--key-file", k.to_str().unwrap()]].concat());
        assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
        (
            read_json(&out.join("findings.json")),
            std::fs::read(out.join("aggregates/group_weeks.csv")).unwrap(),
        )
    };
    let (with, with_csv) = audit(&with_copies, "copies");
    let (without, without_csv) = audit(&fresh, "plain");
    assert_eq!(with["input"]["events"], 73);
    assert_eq!(with["input"]["duplicates"], 2);
    assert_eq!(without["input"]["duplicates"], 0);
    for field in ["events", "from", "to", "sites"] {
        assert_eq!(with["input"][field], without["input"][field], "{field}");
    }
    assert_eq!(with["input"]["sites"], serde_json::json!(["lyon-1"]));
    assert_eq!(with["input"]["from"], "2026-03-02T07:00:00Z");
    assert_eq!(with["findings"], without["findings"]);
    assert_eq!(with["privacy"], without["privacy"]);
    assert_eq!(with_csv, without_csv);
    let inputs = &with["provenance"]["inputs"];
    let counts = |i: usize| {
        let f = &inputs[i];
        (f["records"].as_u64(), f["accepted"].as_u64(), f["duplicates"].as_u64())
    };
    assert_eq!(counts(0), (Some(72), Some(72), Some(0)));
    assert_eq!(counts(1), (Some(3), Some(1), Some(2)));
}
