//! `vigie inspect FILE`: looks at an employer's CSV export and drafts a
//! mapping (docs/mapping.md): encoding, delimiter, decimal mark, columns
//! with sample values (identifier-like columns shown as pseudonyms, never
//! in clear), the time format, which column is which, and the event codes.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use vigie_ingest::mapping::decode;
use vigie_ingest::pseudo::Pseudonymiser;

/// Bytes looked at.
const SAMPLE_BYTES: usize = 4 << 20;

/// What a column's name says it holds, by common French and English
/// names (lower case, accents kept).
const NAMES: [(&str, &[&str]); 10] = [
    (
        "worker",
        &[
            "matricule",
            "employee",
            "employee id",
            "worker",
            "salarié",
            "salarie",
            "operator",
            "opérateur",
            "user",
            "badge",
            "confirmed_by",
            "confirmed by",
            "processor",
        ],
    ),
    (
        "kind",
        &[
            "type de transaction",
            "transaction",
            "type",
            "code",
            "event",
            "événement",
            "evenement",
            "kind",
            "status",
        ],
    ),
    ("event_id", &["id", "event_id", "n° mouvement", "mouvement", "transaction id", "numéro"]),
    ("site", &["site", "entrepôt", "entrepot", "warehouse", "dépôt", "lgnum"]),
    ("team", &["equipe", "équipe", "team", "shift team"]),
    ("zone", &["zone", "area", "allée"]),
    ("quantity", &["qté", "qte", "quantité", "quantity", "qty"]),
    ("weight_kg", &["poids", "weight", "weight_kg", "kg"]),
    ("device", &["terminal", "device", "scanner", "casque"]),
    ("threshold_s", &["seuil", "threshold", "seuil (s)"]),
];

/// Vendor codes whose meaning is plain.
const CODES: [(&str, &str); 12] = [
    ("login", "shift_start"),
    ("logon", "shift_start"),
    ("logout", "shift_end"),
    ("logoff", "shift_end"),
    ("pause_deb", "break_start"),
    ("pause_fin", "break_end"),
    ("break_start", "break_start"),
    ("break_end", "break_end"),
    ("pick_confirm", "scan"),
    ("scan", "scan"),
    ("confirm", "scan"),
    ("prompt", "voice_prompt"),
];

/// The time formats tried, on the joined date and time cells.
const TIME_FORMATS: [&str; 7] = [
    "%Y%m%d%H%M%S",
    "%d/%m/%Y %H:%M:%S%.f",
    "%d/%m/%Y %H:%M",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%d.%m.%Y %H:%M:%S",
    "%m/%d/%Y %H:%M:%S",
];

/// The draft mapping and what was seen, as text.
pub fn inspect(path: &Path) -> anyhow::Result<String> {
    let mut bytes = Vec::new();
    let f = std::fs::File::open(path)?;
    f.take(SAMPLE_BYTES as u64).read_to_end(&mut bytes)?;
    let name = path.display().to_string();
    let bom = bytes.starts_with(b"\xEF\xBB\xBF");
    let body = if bom { &bytes[3..] } else { &bytes[..] };
    // Cut at the last full line.
    let body = &body[..body.iter().rposition(|b| *b == b'\n').map_or(body.len(), |i| i + 1)];
    let encoding = if std::str::from_utf8(body).is_ok() { "utf-8" } else { "windows-1252" };
    let text = decode(body, encoding).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).take(50_000).collect();
    // NDJSON (one JSON object a line) or CSV.
    let ndjson = lines.first().is_some_and(|l| l.trim_start().starts_with('{'));
    let (delimiter, headers, rows) = if ndjson { json_rows(&lines) } else { csv_rows(&lines) };
    let col = |i: usize| rows.iter().filter_map(move |r| r.get(i)).filter(|c| !c.is_empty());
    // Which column is which, by name.
    let mut role: BTreeMap<&str, usize> = BTreeMap::new();
    for (field, names) in NAMES {
        // A nested key (`a.b`) by its own name.
        let own = |h: &String| h.rsplit('.').next().unwrap_or(h).to_lowercase();
        if let Some(i) = headers.iter().position(|h| names.contains(&own(h).as_str())) {
            role.entry(field).or_insert(i);
        }
    }
    // Time: one column, or a date column and a time column.
    let lower: Vec<String> =
        headers.iter().map(|h| h.rsplit('.').next().unwrap_or(h).to_lowercase()).collect();
    let date_col = lower.iter().position(|h| {
        h.starts_with("date") || matches!(h.as_str(), "ts" | "timestamp" | "horodatage" | "confirmed_at")
    });
    let time_col =
        lower.iter().position(|h| h == "heure" || h == "time" || h == "hour" || h.starts_with("heure"));
    let ts_sample = |r: &Vec<String>| match (date_col, time_col) {
        (Some(d), Some(t)) if d != t => {
            format!("{} {}", r.get(d).map_or("", |s| s), r.get(t).map_or("", |s| s))
        }
        (Some(d), _) => r.get(d).cloned().unwrap_or_default(),
        _ => String::new(),
    };
    // An empty time, or zero (a time stamp not yet set), says nothing of
    // the format.
    let samples: Vec<String> = rows
        .iter()
        .take(200)
        .map(ts_sample)
        .filter(|s| !s.trim().is_empty() && !s.trim().bytes().all(|b| b == b'0'))
        .collect();
    let format = if !samples.is_empty()
        && samples.iter().all(|s| chrono::DateTime::parse_from_rfc3339(s).is_ok())
    {
        Some("rfc3339")
    } else if !samples.is_empty()
        && samples.iter().all(|s| s.len() == 10 && s.bytes().all(|b| b.is_ascii_digit()))
    {
        Some("epoch_s")
    } else if !samples.is_empty()
        && samples.iter().all(|s| s.len() == 13 && s.bytes().all(|b| b.is_ascii_digit()))
    {
        Some("epoch_ms")
    } else {
        TIME_FORMATS.into_iter().find(|f| {
            !samples.is_empty() && samples.iter().all(|s| chrono::NaiveDateTime::parse_from_str(s, f).is_ok())
        })
    };
    // Numbers written with a decimal comma.
    let decimal = if (delimiter != ',' || ndjson)
        && role
            .iter()
            .filter(|(f, _)| matches!(**f, "quantity" | "weight_kg" | "threshold_s"))
            .any(|(_, i)| col(*i).any(|c| c.contains(',') && c.replace(',', ".").parse::<f64>().is_ok()))
    {
        ','
    } else {
        '.'
    };
    // Only columns known not to identify anyone are shown in clear: those
    // taken for codes, places, teams, quantities and times. Any other
    // column may hold identifiers whatever its name (a "CONFIRMED_BY", a
    // "Qui"), so its values are shown as pseudonyms of a key used once.
    let mut pseudo = Pseudonymiser::ephemeral();
    let clear: Vec<usize> = ["kind", "site", "team", "zone", "quantity", "weight_kg", "threshold_s"]
        .iter()
        .filter_map(|f| role.get(f).copied())
        .chain(date_col)
        .chain(time_col)
        .filter(|i| !vigie_ingest::rejects::is_identifier_field(&headers[*i]))
        .collect();
    let masked = |i: usize| !clear.contains(&i);
    let mut o = String::new();
    o.push_str(&format!(
        "# Draft mapping for {name}, written by `vigie inspect` from its first {} rows.\n",
        rows.len()
    ));
    o.push_str("# Complete the lines marked TODO, then: vigie check-mapping THIS_FILE\n");
    o.push_str("#\n# Columns (values shown in clear only for columns taken for codes, places, teams,\n# quantities or times; any other as pseudonyms of a key used once):\n");
    for (i, h) in headers.iter().enumerate() {
        let mut seen: Vec<String> = Vec::new();
        for c in col(i) {
            let shown = if masked(i) { pseudo.redacted(c) } else { c.chars().take(30).collect() };
            if !seen.contains(&shown) {
                seen.push(shown);
            }
            if seen.len() == 3 {
                break;
            }
        }
        o.push_str(&format!("#   {:?}: {}\n", h, seen.join(" | ")));
    }
    let stem = path.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
    if ndjson {
        // Keys, not columns; the `[csv]` section only gives the decimal
        // mark of numbers written as strings.
        o.push_str(&format!("\nname = {stem:?}\n"));
        if decimal == ',' {
            o.push_str("\n[csv]\ndecimal = \",\"   # numbers written as strings with a decimal comma\n");
        }
    } else {
        o.push_str(&format!(
            "\nname = {:?}\n\n[csv]\ndelimiter = {:?}\ndecimal = {:?}\nencoding = {:?}\nheader = true\n",
            stem,
            delimiter.to_string(),
            decimal.to_string(),
            encoding
        ));
    }
    o.push_str("\n[time]\n");
    match format {
        Some(f) => o.push_str(&format!("format = {f:?}\n")),
        None => o.push_str("format = \"TODO\"   # no common format matched the samples\n"),
    }
    if format.is_some_and(|f| f.starts_with('%')) {
        o.push_str(
            "# utc = true     # if these times are UTC, not local (the zone then gives their local offset)\n",
        );
    }
    if format != Some("rfc3339") {
        // Epoch instants need no zone, but it gives their local offset.
        o.push_str("zone = \"TODO\"       # the IANA zone of the site, e.g. \"Europe/Paris\"\n");
    }
    o.push_str("\n[fields]\n");
    let q = |i: usize| format!("{:?}", headers[i]);
    let ts_line = match (date_col, time_col) {
        (Some(d), Some(t)) if d != t => format!("ts = {{ columns = [{}, {}] }}", q(d), q(t)),
        (Some(d), _) => format!("ts = {{ column = {} }}", q(d)),
        _ => "ts = { column = \"TODO\" }".to_string(),
    };
    for field in vigie_ingest::validate::FIELDS {
        let line = match (field, role.get(field)) {
            ("ts", _) => ts_line.clone(),
            (_, Some(i)) => format!("{field} = {{ column = {} }}", q(*i)),
            ("event_id", None) => {
                "event_id = { line = true }   # no id column: the file and line".to_string()
            }
            ("site", None) => "site = { value = \"TODO\" }   # the site's name".to_string(),
            ("worker" | "kind", None) => format!("{field} = {{ column = \"TODO\" }}"),
            _ => continue,
        };
        o.push_str(&line);
        o.push('\n');
    }
    if let Some(k) = role.get("kind") {
        let mut codes: BTreeMap<String, u64> = BTreeMap::new();
        for c in col(*k) {
            *codes.entry(c.clone()).or_default() += 1;
        }
        o.push_str("\n[kinds]   # the export's codes, by frequency in the sample; an unlisted code is counted, not refused\n");
        let mut by_count: Vec<(String, u64)> = codes.into_iter().collect();
        by_count.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        for (code, n) in by_count.into_iter().take(40) {
            let lc = code.to_lowercase();
            match CODES.iter().find(|(c, _)| *c == lc) {
                Some((_, kind)) => o.push_str(&format!("{code:?} = {kind:?}   # {n} rows\n")),
                None if vigie_ingest::event::Kind::parse(&lc).is_some() => {
                    o.push_str(&format!("{code:?} = {lc:?}   # {n} rows\n"));
                }
                None => o.push_str(&format!("# {code:?} = \"TODO\"   # {n} rows\n")),
            }
        }
    }
    Ok(o)
}

/// The keys of NDJSON records (a nested object's keys as `a.b`), in the
/// order first seen, and each record's values by key.
fn json_rows(lines: &[&str]) -> (char, Vec<String>, Vec<Vec<String>>) {
    let objects: Vec<serde_json::Map<String, serde_json::Value>> =
        lines.iter().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let mut headers: Vec<String> = Vec::new();
    for o in &objects {
        for (k, v) in o {
            let keys: Vec<String> = match v {
                serde_json::Value::Object(inner) => inner.keys().map(|i| format!("{k}.{i}")).collect(),
                _ => vec![k.clone()],
            };
            for key in keys {
                if !headers.contains(&key) && headers.len() < 200 {
                    headers.push(key);
                }
            }
        }
    }
    let rows = objects
        .iter()
        .map(|o| headers.iter().map(|h| vigie_ingest::mapping::json_text(o, h).trim().to_string()).collect())
        .collect();
    (',', headers, rows)
}

/// The delimiter that splits every line into the same number of cells,
/// the header and the rows.
fn csv_rows(lines: &[&str]) -> (char, Vec<String>, Vec<Vec<String>>) {
    // The delimiter that splits every line into the same number of cells.
    let delimiter = [';', ',', '\t', '|']
        .into_iter()
        .max_by_key(|d| {
            let counts: Vec<usize> = lines.iter().take(50).map(|l| l.matches(*d).count()).collect();
            let first = counts.first().copied().unwrap_or(0);
            if first > 0 && counts.iter().all(|c| *c == first) {
                first * 1000
            } else {
                first
            }
        })
        .unwrap_or(',');
    let joined = lines.join("\n");
    let mut rdr =
        csv::ReaderBuilder::new().delimiter(delimiter as u8).flexible(true).from_reader(joined.as_bytes());
    let headers: Vec<String> =
        rdr.headers().map(|h| h.iter().map(|c| c.trim().to_string()).collect()).unwrap_or_default();
    let rows: Vec<Vec<String>> =
        rdr.records().flatten().map(|r| r.iter().map(|c| c.trim().to_string()).collect()).collect();
    (delimiter, headers, rows)
}

/// Counts accepted events without keeping them.
struct Count(u64);

impl vigie_ingest::EventSink for Count {
    fn push(&mut self, _: vigie_ingest::event::Event) -> Result<(), vigie_ingest::IngestError> {
        self.0 += 1;
        Ok(())
    }
}

/// Keeps nothing of a refused record (the counts are in the stats).
struct Drop;

impl vigie_ingest::rejects::RejectSink for Drop {
    fn reject(
        &mut self,
        _: &vigie_ingest::event::Origin,
        _: &vigie_ingest::validate::Rejection,
        _: &[u8],
        _: usize,
    ) -> Result<(), vigie_ingest::IngestError> {
        Ok(())
    }
}

/// What a mapping would make of a file: read through it with a key used
/// once, nothing written.
pub fn try_mapping(path: &Path, mapping: &vigie_ingest::mapping::Mapping) -> anyhow::Result<String> {
    let mut ing = vigie_ingest::Ingestor::new(Pseudonymiser::ephemeral(), None, Count(0), Drop);
    let mut mapper = vigie_ingest::mapping::Mapper::new(mapping.clone());
    vigie_ingest::reader::read_mapped_file(path, &mut mapper, &mut ing, &mut |_| {})?;
    let (count, _, stats) = ing.finish()?;
    let ms = mapper.stats;
    let skipped: u64 = ms.unmapped_codes.values().sum();
    let mut o = format!(
        "{}: the mapping `{}` reads {} records: {} accepted, {} rejected, {} duplicates; {} skipped for codes without a kind",
        path.display(),
        mapping.name,
        stats.records + skipped,
        count.0,
        stats.rejected_total(),
        stats.duplicates,
        skipped
    );
    for (reason, n) in stats.rejected_by_reason() {
        o.push_str(&format!("\n  rejected, {reason}: {n}"));
    }
    for (code, n) in &ms.unmapped_codes {
        o.push_str(&format!("\n  code without a kind, {code:?}: {n}"));
    }
    o.push('\n');
    Ok(o)
}
