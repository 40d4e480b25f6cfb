//! The service's configuration (docs/service.md): one typed [`Config`],
//! loaded from defaults, then the TOML file, then `VIGIE__SECTION__KEY`
//! environment variables. Every problem is collected and reported at once.

use std::path::{Path, PathBuf};

use serde::Deserialize;
pub use vigie_ingest::kafka::config::{KafkaConfig, OnSourceReset, MANAGED};
pub use vigie_ingest::store::config::{
    StoreConfig, MAX_AGGREGATE_RETENTION_DAYS, MAX_SUMMARY_RETENTION_DAYS,
};

/// The whole file: the ingestion sections (`kafka`, `store`) are defined
/// and checked in `vigie_ingest`, the analysis and metrics sections here.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub kafka: KafkaConfig,
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub analysis: AnalysisConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AnalysisConfig {
    #[serde(default = "d_interval_s")]
    pub interval_s: u64,
    #[serde(default = "d_profile")]
    pub profile: String,
    /// A policy file, instead of a built-in profile.
    #[serde(default)]
    pub policy: Option<PathBuf>,
    /// The employer's declaration.
    #[serde(default)]
    pub employer: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    #[serde(default = "d_listen")]
    pub listen: String,
    /// When set, `/metrics` wants `Authorization: Bearer TOKEN`.
    #[serde(default)]
    pub bearer_token_file: Option<PathBuf>,
    #[serde(default = "d_max_series")]
    pub max_series: usize,
}

fn d_interval_s() -> u64 {
    300
}
fn d_profile() -> String {
    "fr".into()
}
fn d_listen() -> String {
    "127.0.0.1:9464".into()
}
fn d_max_series() -> usize {
    crate::metrics::DEFAULT_MAX_SERIES
}

impl Default for AnalysisConfig {
    fn default() -> Self {
        AnalysisConfig { interval_s: d_interval_s(), profile: d_profile(), policy: None, employer: None }
    }
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig { listen: d_listen(), bearer_token_file: None, max_series: d_max_series() }
    }
}

/// Sections and their keys, to name every unknown key at once.
const KNOWN: [(&str, &[&str]); 4] = [
    ("kafka", KafkaConfig::KEYS),
    ("store", StoreConfig::KEYS),
    ("analysis", &["interval_s", "profile", "policy", "employer"]),
    ("metrics", &["listen", "bearer_token_file", "max_series"]),
];

/// Loads `path`, applies `env` overrides (pairs of name and value; pass
/// `std::env::vars()`), and checks everything. The error lists every
/// problem, one per line.
pub fn load(path: &Path, env: impl IntoIterator<Item = (String, String)>) -> Result<Config, Vec<String>> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| vec![format!("{file}: {e}")])?;
    let mut table: toml::Table =
        toml::from_str(&text).map_err(|e| vec![format!("{file}: {}", e.to_string().trim())])?;
    let mut problems = Vec::new();
    apply_env(&mut table, env, &mut problems);
    // Unknown sections and keys, all of them.
    for (section, value) in &table {
        match KNOWN.iter().find(|(s, _)| s == section) {
            None => problems.push(format!("{file}: unknown section [{section}]")),
            Some((_, keys)) => match value.as_table() {
                None => problems.push(format!("{file}: `{section}` must be a section")),
                Some(t) => {
                    for k in t.keys() {
                        if !keys.contains(&k.as_str()) {
                            problems.push(format!(
                                "{file}: unknown key `{section}.{k}` (known: {})",
                                keys.join(", ")
                            ));
                        }
                    }
                }
            },
        }
    }
    if !table.contains_key("kafka") {
        problems.push(format!("{file}: missing section [kafka]"));
    }
    // Types, section by section, so that one bad section does not hide
    // another.
    for (section, keys) in KNOWN {
        let Some(t) = table.get(section).and_then(|v| v.as_table()) else { continue };
        let mut known = t.clone();
        known.retain(|k, _| {
            let k: &str = k;
            keys.contains(&k)
        });
        let r = match section {
            "kafka" => known.try_into::<KafkaConfig>().map(|_| ()),
            "store" => known.try_into::<StoreConfig>().map(|_| ()),
            "analysis" => known.try_into::<AnalysisConfig>().map(|_| ()),
            _ => known.try_into::<MetricsConfig>().map(|_| ()),
        };
        if let Err(e) = r {
            problems.push(format!("{file}: [{section}] {}", e.to_string().trim()));
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let mut config: Config =
        table.try_into().map_err(|e: toml::de::Error| vec![format!("{file}: {}", e.to_string().trim())])?;
    let mut problems = config.problems(&file);
    // Each topic's mapping, read and checked now (every problem at once).
    let base = path.parent().unwrap_or(Path::new("."));
    for (topic, m) in &config.kafka.mappings {
        if !config.kafka.topics.contains(topic) {
            problems.push(format!("{file}: kafka.mappings.{topic:?} is not one of kafka.topics"));
        }
        match vigie_ingest::mapping::Mapping::from_file(&base.join(m)) {
            Ok(loaded) => {
                config.kafka.loaded_mappings.insert(topic.clone(), loaded);
            }
            Err(ps) => {
                problems.extend(ps.into_iter().map(|p| format!("{file}: kafka.mappings.{topic:?}: {p}")));
            }
        }
    }
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(problems)
    }
}

/// `VIGIE__KAFKA__BROKERS=...` sets `kafka.brokers`; the value is read as
/// a TOML value when it is one (`7`, `true`, `["a","b"]`), else as text.
/// `VIGIE__KAFKA__LIBRDKAFKA__SASL_USERNAME` sets the librdkafka option
/// `sasl.username` (underscores become dots).
fn apply_env(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
    problems: &mut Vec<String>,
) {
    for (name, value) in env {
        let Some(rest) = name.strip_prefix("VIGIE__") else { continue };
        let parts: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
        let parsed = toml::from_str::<toml::Table>(&format!("v = {value}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(value.clone()));
        match parts.as_slice() {
            [section, key] => {
                let s =
                    table.entry(section.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
                match s.as_table_mut() {
                    Some(t) => {
                        t.insert(key.clone(), parsed);
                    }
                    None => problems.push(format!("{name}: `{section}` is not a section")),
                }
            }
            [section, sub, key] if section == "kafka" && sub == "librdkafka" => {
                let k = table
                    .entry("kafka")
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                    .as_table_mut()
                    .map(|t| t.entry("librdkafka").or_insert_with(|| toml::Value::Table(toml::Table::new())));
                match k.and_then(|v| v.as_table_mut()) {
                    Some(t) => {
                        t.insert(key.replace('_', "."), toml::Value::String(value.clone()));
                    }
                    None => problems.push(format!("{name}: kafka.librdkafka is not a table")),
                }
            }
            _ => problems.push(format!("{name}: expected VIGIE__SECTION__KEY")),
        }
    }
}

impl Config {
    /// Value checks, all at once.
    pub fn problems(&self, file: &str) -> Vec<String> {
        let mut p = Vec::new();
        let mut bad = |m: String| p.push(format!("{file}: {m}"));
        self.kafka.problems(&mut bad);
        self.store.problems(&mut bad);
        let a = &self.analysis;
        if a.interval_s == 0 {
            bad("analysis.interval_s must be at least 1".into());
        }
        let profiles = vigie_analyze::catalogue::catalogue().profile_ids();
        if a.policy.is_none() && !profiles.contains(&a.profile.as_str()) {
            bad(format!("analysis.profile {:?}: one of {}", a.profile, profiles.join(", ")));
        }
        for f in a.policy.iter().chain(a.employer.iter()) {
            if !f.is_file() {
                bad(format!("{}: no such file", f.display()));
            }
        }
        let m = &self.metrics;
        if let Err(e) = crate::http::listen_addr(&m.listen) {
            bad(format!("metrics.listen: {e}"));
        }
        if let Some(f) = &m.bearer_token_file {
            if let Err(e) = crate::http::read_token(f) {
                bad(format!("metrics.bearer_token_file: {e}"));
            }
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(text: &str, env: &[(&str, &str)]) -> Result<Config, Vec<String>> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("vigie.toml");
        std::fs::write(&p, text).unwrap();
        load(&p, env.iter().map(|(a, b)| (a.to_string(), b.to_string())))
    }

    const MINIMAL: &str = "[kafka]\nbrokers = \"127.0.0.1:9092\"\ntopics = [\"ev\"]\ngroup_id = \"vigie\"\n";

    #[test]
    fn defaults_fill_what_the_file_leaves_out() {
        let c = load_str(MINIMAL, &[]).unwrap();
        assert_eq!(c.store.raw_retention_days, 7);
        assert_eq!(c.store.summary_retention_days, 91);
        assert_eq!(c.store.aggregate_retention_days, 396);
        assert_eq!(c.analysis.interval_s, 300);
        assert_eq!(c.analysis.profile, "fr");
        assert_eq!(c.metrics.listen, "127.0.0.1:9464");
        assert_eq!(c.kafka.clock_skew_s, 300);
        assert_eq!(c.kafka.dead_letter_topic, None);
    }

    #[test]
    fn environment_overrides_the_file() {
        let c = load_str(
            MINIMAL,
            &[
                ("VIGIE__KAFKA__BROKERS", "10.0.0.1:9093"),
                ("VIGIE__KAFKA__TOPICS", "a, b"),
                ("VIGIE__STORE__RAW_RETENTION_DAYS", "3"),
                ("VIGIE__KAFKA__LIBRDKAFKA__SASL_USERNAME", "auditor"),
                ("OTHER", "x"),
            ],
        )
        .unwrap();
        assert_eq!(c.kafka.brokers, "10.0.0.1:9093");
        assert_eq!(c.kafka.topics, ["a", "b"]);
        assert_eq!(c.store.raw_retention_days, 3);
        assert_eq!(c.kafka.librdkafka.get("sasl.username").map(String::as_str), Some("auditor"));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let text = "[kafka]\nbrokers = \"\"\ntopics = [\"ok\", \"bad topic\"]\ngroup_id = \"g\"\nbatch = 3\n\
                    [kafka.librdkafka]\n\"enable.auto.commit\" = \"true\"\n\
                    [store]\nraw_retention_days = \"seven\"\n\
                    [analysis]\nprofile = \"xx\"\n[metrics]\nlisten = \"nowhere\"\n[extra]\n";
        let errs = load_str(text, &[]).unwrap_err();
        let all = errs.join("\n");
        assert!(all.contains("unknown key `kafka.batch`"), "{all}");
        assert!(all.contains("unknown section [extra]"), "{all}");
        assert!(all.contains("[store]"), "{all}");
        assert_eq!(errs.len(), 3, "{all}");
        // Once the types are right, the values are checked, all of them.
        let text = "[kafka]\nbrokers = \"\"\ntopics = [\"ok\", \"bad topic\"]\ngroup_id = \"g\"\n\
                    [kafka.librdkafka]\n\"enable.auto.commit\" = \"true\"\n\
                    [store]\npath = \"s3://V/store\"\nsummary_retention_days = 200\n\
                    [analysis]\nprofile = \"xx\"\n[metrics]\nlisten = \"nowhere\"\n";
        let errs = load_str(text, &[]).unwrap_err();
        let all = errs.join("\n");
        for needle in [
            "kafka.brokers is empty",
            "\"bad topic\"",
            "enable.auto.commit",
            "summary_retention_days = 200",
            "store.path = \"s3://V/store\": s3://V/store: a bucket name has 3 to 63 characters",
            "analysis.profile",
            "metrics.listen",
        ] {
            assert!(all.contains(needle), "{needle} missing from:\n{all}");
        }
        assert_eq!(errs.len(), 7, "{all}");
    }

    #[test]
    fn a_missing_kafka_section_is_named() {
        let errs = load_str("[store]\npath = \"s\"\n", &[]).unwrap_err();
        assert!(errs.iter().any(|e| e.contains("missing section [kafka]")), "{errs:?}");
    }

    /// `SECTION.KEY` of every key a TOML text sets or shows commented out
    /// (`# key = ...`) under a `[section]` (`[kafka.librdkafka]`'s own keys
    /// are librdkafka's, not vigie's).
    fn keys_of(text: &str) -> std::collections::BTreeSet<String> {
        let mut out = std::collections::BTreeSet::new();
        let mut section = String::new();
        for line in text.lines() {
            let l = line.trim();
            let head = l.split('#').next().unwrap_or("").trim();
            if let Some(sec) = head.strip_prefix('[').and_then(|x| x.strip_suffix(']')) {
                section = sec.to_string();
                if let Some((parent, table)) = sec.split_once('.') {
                    out.insert(format!("{parent}.{table}"));
                }
                continue;
            }
            let l = l.trim_start_matches('#').trim();
            let Some((key, _)) = l.split_once('=') else { continue };
            let key = key.trim();
            let is_key = !key.is_empty()
                && key.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if is_key && !section.is_empty() && section != "kafka.librdkafka" {
                out.insert(format!("{section}.{key}"));
            }
        }
        out
    }

    /// The `VIGIE__SECTION__KEY: "value"` lines of a compose file.
    fn compose_env(text: &str) -> Vec<(String, String)> {
        text.lines()
            .filter_map(|l| {
                let (k, v) = l.trim().split_once(':')?;
                k.starts_with("VIGIE__").then(|| (k.to_string(), v.trim().trim_matches('"').to_string()))
            })
            .collect()
    }

    #[test]
    fn an_s3_store_takes_its_server_from_the_section_and_a_folder_refuses_it() {
        use vigie_ingest::store::objects::Location;
        let kafka = "[kafka]\nbrokers = \"b:9092\"\ntopics = [\"t\"]\ngroup_id = \"g\"\n";
        let text = format!(
            "{kafka}[store]\npath = \"s3://vigie-mirror/site-1\"\ns3_endpoint = \"http://10.0.0.7:9000\"\n\
             s3_region = \"eu-west-3\"\ns3_allow_http = true\n"
        );
        let c = load_str(&text, &[]).unwrap();
        let Ok(Location::S3(s)) = c.store.location() else { panic!("{:?}", c.store.location()) };
        assert_eq!((s.bucket.as_str(), s.prefix.as_str()), ("vigie-mirror", "site-1"));
        assert_eq!(s.endpoint.as_deref(), Some("http://10.0.0.7:9000"));
        assert_eq!(s.region.as_deref(), Some("eu-west-3"));
        assert!(s.allow_http);
        // The server can come from the environment too, as any key.
        let c = load_str(
            &format!("{kafka}[store]\npath = \"s3://vigie-mirror\"\n"),
            &[("VIGIE__STORE__S3_ENDPOINT", "http://127.0.0.1:9000")],
        )
        .unwrap();
        let Ok(Location::S3(s)) = c.store.location() else { panic!() };
        assert_eq!((s.prefix.as_str(), s.endpoint.as_deref()), ("", Some("http://127.0.0.1:9000")));
        // A folder store with S3 settings: a mistake, said.
        let errs = load_str(&format!("{kafka}[store]\npath = \"store\"\ns3_region = \"eu-west-3\"\n"), &[])
            .unwrap_err();
        assert!(errs.join("\n").contains("apply to an s3:// store.path only"), "{errs:?}");
    }

    #[test]
    fn every_deployment_holds_the_documented_keys_and_loads() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let doc = std::fs::read_to_string(root.join("docs/service.md")).unwrap();
        let block = doc.split("```toml").nth(1).unwrap().split("```").next().unwrap();
        let documented = keys_of(block);
        // The documentation shows every key vigie knows, and no other.
        let known: std::collections::BTreeSet<String> =
            KNOWN.iter().flat_map(|(s, ks)| ks.iter().map(move |k| format!("{s}.{k}"))).collect();
        assert_eq!(documented, known, "docs/service.md against the keys vigie reads");
        let compose = std::fs::read_to_string(root.join("deploy/compose/compose.yaml")).unwrap();
        let env = compose_env(&compose);
        assert!(env.len() >= 4, "{env:?}");
        for (file, env) in [
            ("deploy/container/vigie.toml", env.clone()),
            ("deploy/kubernetes/base/vigie.toml", vec![]),
            ("deploy/systemd/vigie.toml", vec![]),
        ] {
            let path = root.join(file);
            let text = std::fs::read_to_string(&path).unwrap();
            let keys = keys_of(&text);
            let unknown: Vec<&String> = keys.difference(&documented).collect();
            assert!(unknown.is_empty(), "{file}: keys not in docs/service.md: {unknown:?}");
            // The compose file's overrides name documented keys too.
            for (name, _) in &env {
                let k = name.trim_start_matches("VIGIE__").to_ascii_lowercase().replacen("__", ".", 1);
                assert!(documented.contains(&k), "compose.yaml: {name} is not a documented key");
            }
            // The only problems: the secret files, which exist inside the
            // deployment only.
            match load(&path, env) {
                Ok(c) => panic!("{file}: loaded with secrets that cannot exist here: {c:?}"),
                Err(problems) => {
                    for p in &problems {
                        let secret = p.contains("store.key_file") || p.contains("metrics.bearer_token_file");
                        assert!(secret && p.contains("o such file"), "{file}: {p}");
                    }
                    assert_eq!(problems.len(), 2, "{file}: {problems:?}");
                }
            }
            // Each deployment keeps its store on the volume or state
            // directory it mounts, and its secrets in files.
            let t: toml::Table = toml::from_str(&text).unwrap();
            assert_eq!(t["store"]["path"].as_str(), Some("/var/lib/vigie/store"), "{file}");
            assert!(
                t["store"].get("key_file").is_some() && t["metrics"].get("bearer_token_file").is_some(),
                "{file}"
            );
        }
    }
}
